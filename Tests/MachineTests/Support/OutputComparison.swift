import Testing

/// Line-by-line comparison of a guest's serial output under vmm and under QEMU, with every
/// exception spelled out: a `Mask` rewrites text that legitimately varies (cycle counts, table
/// addresses) in both outputs before the comparison, and an `OutputDifference` names lines that
/// only one side prints because vmm differs from QEMU + SeaBIOS — deliberately (documented in
/// README) or as a known issue (recorded with `withKnownIssue`, so the suite shows it). Every
/// other line must be equal and in the same order, and every mask and difference must still
/// be needed: one that no longer matches anything is reported, so the exceptions cannot
/// outlive the behaviour they describe.
struct Mask: Sendable, CustomStringConvertible {
    /// A regular expression matched against each line.
    var pattern: String
    /// What each match becomes (in both outputs).
    var replacement: String
    /// Why this text may differ between runs or between the two VMMs.
    var why: String
    init(_ pattern: String, _ replacement: String, _ why: String) {
        self.pattern = pattern
        self.replacement = replacement
        self.why = why
    }
    var description: String { "mask /\(pattern)/ (\(why))" }
}

/// Lines printed by one side only, each matching `vmm` (lines only vmm prints) or `qemu`
/// (lines only QEMU prints), after masking.
struct OutputDifference: Sendable, CustomStringConvertible {
    enum Kind: Sendable {
        /// vmm differs on purpose; README says so.
        case deliberate
        /// vmm is wrong here; the comparison records a known issue until it is fixed.
        case knownIssue
    }
    var vmm: String?
    var qemu: String?
    var kind: Kind
    var why: String
    static func deliberate(vmm: String? = nil, qemu: String? = nil, _ why: String) -> OutputDifference {
        OutputDifference(vmm: vmm, qemu: qemu, kind: .deliberate, why: why)
    }
    static func knownIssue(vmm: String? = nil, qemu: String? = nil, _ why: String) -> OutputDifference {
        OutputDifference(vmm: vmm, qemu: qemu, kind: .knownIssue, why: why)
    }
    var description: String { "\(kind == .deliberate ? "deliberate difference" : "known issue"): \(why)" }
}

enum OutputComparison {
    /// `line` with every mask applied; `used` collects the indices of masks that matched.
    static func masked(_ line: String, _ masks: [Mask], used: inout Set<Int>) throws -> String {
        var out = line
        for (i, m) in masks.enumerated() {
            let r = try Regex(m.pattern)
            if out.contains(r) {
                used.insert(i)
                out = out.replacing(r, with: m.replacement)
            }
        }
        return out
    }

    static func matches(_ pattern: String?, _ line: String) throws -> Bool {
        guard let pattern else { return false }
        return line.wholeMatch(of: try Regex(pattern)) != nil
    }

    struct Result {
        /// Lines only one side printed that no difference explains (side, line).
        var unexplained: [(side: String, line: String)] = []
        /// Lines explained by a known issue (difference, side, line).
        var knownIssues: [(difference: OutputDifference, side: String, line: String)] = []
        /// Masks and differences that matched nothing: stale exceptions.
        var unusedMasks: [Mask] = []
        var unusedDifferences: [OutputDifference] = []
        var maskedVMM: [String] = []
        var maskedQEMU: [String] = []
    }

    /// Compares the two outputs (already split into serial lines).
    static func compare(vmm: [String], qemu: [String], masks: [Mask], differences: [OutputDifference]) throws -> Result {
        var usedMasks = Set<Int>(), usedDifferences = Set<Int>()
        var r = Result()
        r.maskedVMM = try vmm.map { try masked($0, masks, used: &usedMasks) }
        r.maskedQEMU = try qemu.map { try masked($0, masks, used: &usedMasks) }
        for change in r.maskedQEMU.difference(from: r.maskedVMM) {
            // A removal is a line only vmm printed, an insertion one only QEMU printed.
            let (side, line): (String, String)
            switch change {
            case .remove(_, let l, _): (side, line) = ("vmm", l)
            case .insert(_, let l, _): (side, line) = ("qemu", l)
            }
            let index = try differences.firstIndex { d in try matches(side == "vmm" ? d.vmm : d.qemu, line) }
            guard let index else { r.unexplained.append((side, line)); continue }
            usedDifferences.insert(index)
            if differences[index].kind == .knownIssue { r.knownIssues.append((differences[index], side, line)) }
        }
        r.unusedMasks = masks.indices.filter { !usedMasks.contains($0) }.map { masks[$0] }
        r.unusedDifferences = differences.indices.filter { !usedDifferences.contains($0) }.map { differences[$0] }
        return r
    }

    /// Compares and records an issue for every unexplained or stale line, and a known issue for
    /// every line a known issue explains. `names` labels the two sides in messages (a test
    /// comparing two vmm runs, e.g. the direct path against firmware, names them so).
    static func expectSame(vmm: [String], qemu: [String], masks: [Mask] = [], differences: [OutputDifference] = [],
                           names: (vmm: String, qemu: String) = ("vmm", "qemu"),
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let r = try compare(vmm: vmm, qemu: qemu, masks: masks, differences: differences)
        let both = "\(names.vmm) (masked):\n\(r.maskedVMM.joined(separator: "\n"))\n\(names.qemu) (masked):\n\(r.maskedQEMU.joined(separator: "\n"))"
        for u in r.unexplained {
            Issue.record("only \(u.side == "vmm" ? names.vmm : names.qemu) prints: \(u.line)\n\(both)", sourceLocation: sourceLocation)
        }
        for m in r.unusedMasks {
            Issue.record("stale \(m): it matches neither output", sourceLocation: sourceLocation)
        }
        for d in r.unusedDifferences {
            Issue.record("stale \(d): neither output shows it any more; remove it", sourceLocation: sourceLocation)
        }
        for k in r.knownIssues {
            withKnownIssue(Comment(rawValue: k.difference.why)) {
                Issue.record("only \(k.side) prints: \(k.line)", sourceLocation: sourceLocation)
            }
        }
    }
}
