import Foundation
import FuzzTargets
import Testing

/// Replays every committed fuzz input — the seed corpus (`Fuzz/corpus/<target>/`) and every
/// crash the fuzzer found (`Fuzz/regressions/<target>/`) — through exactly the functions
/// libFuzzer runs, so `swift test` keeps each fixed crash fixed. A reproducer whose fix has not
/// landed yet is listed in `Fuzz/regressions/KNOWN-OPEN` and skipped (with its name printed).
@Suite(.serialized) struct FuzzCorpusTests {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    /// `target/file` entries of KNOWN-OPEN (text after `#` ignored).
    static var knownOpen: Set<String> {
        let url = fuzzDirectory.appendingPathComponent("regressions/KNOWN-OPEN")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return Set(text.split(separator: "\n").compactMap { line in
            let entry = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimmingCharacters(in: .whitespaces) ?? ""
            return entry.isEmpty ? nil : entry
        })
    }

    static func files(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedCorpusReplaysClean(_ target: FuzzTarget) throws {
        let files = Self.files("corpus", target)
        #expect(!files.isEmpty, "no seed corpus for \(target.rawValue)")
        for url in files {
            let data = [UInt8](try Data(contentsOf: url))
            #expect(throws: Never.self, "\(target.rawValue)/\(url.lastPathComponent)") { try target.run(data) }
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func regressionsReplayClean(_ target: FuzzTarget) throws {
        let open = Self.knownOpen
        for url in Self.files("regressions", target) {
            let key = "\(target.rawValue)/\(url.lastPathComponent)"
            if open.contains(key) {
                print("FuzzCorpusTests: skipping \(key), listed in Fuzz/regressions/KNOWN-OPEN (fix not landed)")
                continue
            }
            let data = [UInt8](try Data(contentsOf: url))
            #expect(throws: Never.self, "\(key)") { try target.run(data) }
        }
    }

    /// Every run of a target starts from the same state: the same input run twice, with other
    /// inputs in between, behaves the same (here: passes both times, and leaves the target able
    /// to run its seeds again).
    @Test(arguments: FuzzTarget.allCases)
    func runsAreIndependent(_ target: FuzzTarget) throws {
        for seed in target.seeds {
            #expect(throws: Never.self) { try target.run(seed.bytes) }
            #expect(throws: Never.self) { try target.run([]) }
            #expect(throws: Never.self) { try target.run(Array(seed.bytes.reversed())) }
            #expect(throws: Never.self) { try target.run(seed.bytes) }
        }
    }

    /// The committed seed files are exactly `SeedCorpus`'s (VMM_FUZZ_WRITE_SEEDS=1 rewrites them).
    @Test(arguments: FuzzTarget.allCases)
    func committedSeedsAreCurrent(_ target: FuzzTarget) throws {
        let dir = Self.fuzzDirectory.appendingPathComponent("corpus").appendingPathComponent(target.rawValue)
        let write = ProcessInfo.processInfo.environment["VMM_FUZZ_WRITE_SEEDS"] != nil
        if write { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
        for seed in target.seeds {
            let url = dir.appendingPathComponent(seed.name)
            if write { try Data(seed.bytes).write(to: url) }
            let committed = try? Data(contentsOf: url)
            #expect(committed.map { [UInt8]($0) } == seed.bytes, "Fuzz/corpus/\(target.rawValue)/\(seed.name) is missing or stale")
        }
    }
}
