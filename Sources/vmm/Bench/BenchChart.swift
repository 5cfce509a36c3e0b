import VMMSys

/// A vmm-vs-QEMU bar chart as a standalone SVG document (`vmm bench … --svg FILE`): one group
/// per measured quantity, a vmm bar and a QEMU bar in each, every group scaled to its own larger
/// value (quantities differ in unit and size), the value printed at the end of each bar. Plain
/// SVG 1.1 with no scripts or external references, so README can show it as an image.
struct BenchChart: Sendable {
    struct Group: Sendable {
        var label: String
        var vmm: Double?
        var qemu: Double?
    }

    var title: String
    var groups: [Group]
    /// A line under the title (e.g. "lower is better").
    var note: String = ""

    static let width = 760
    static let labelWidth = 250
    static let barHeight = 16
    static let groupHeight = 52
    static let top = 70

    /// The SVG document.
    var svg: String {
        let height = Self.top + groups.count * Self.groupHeight + 20
        let barSpace = Double(Self.width - Self.labelWidth - 110)
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Self.width)" height="\(height)" \
            viewBox="0 0 \(Self.width) \(height)" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="10" y="22" font-size="15" font-weight="bold">\(Self.escape(title))</text>
            <text x="10" y="40" fill="#555">\(Self.escape(note))</text>
            <rect x="\(Self.width - 190)" y="48" width="12" height="12" fill="#2f6db5"/>
            <text x="\(Self.width - 173)" y="58">vmm</text>
            <rect x="\(Self.width - 120)" y="48" width="12" height="12" fill="#e08a2c"/>
            <text x="\(Self.width - 103)" y="58">QEMU</text>

            """
        for (i, g) in groups.enumerated() {
            let y = Self.top + i * Self.groupHeight
            let scale = max(g.vmm ?? 0, g.qemu ?? 0)
            out += "<text x=\"10\" y=\"\(y + 22)\">\(Self.escape(g.label))</text>\n"
            for (j, (value, color)) in [(g.vmm, "#2f6db5"), (g.qemu, "#e08a2c")].enumerated() {
                let barY = y + 4 + j * (Self.barHeight + 4)
                guard let value else {
                    out += "<text x=\"\(Self.labelWidth)\" y=\"\(barY + 12)\" fill=\"#888\">not measured</text>\n"
                    continue
                }
                let w = scale > 0 ? max(1, Int((value / scale * barSpace).rounded())) : 1
                out += "<rect x=\"\(Self.labelWidth)\" y=\"\(barY)\" width=\"\(w)\" height=\"\(Self.barHeight)\" fill=\"\(color)\"/>\n"
                out += "<text x=\"\(Self.labelWidth + w + 6)\" y=\"\(barY + 12)\">\(Self.format(value))</text>\n"
            }
        }
        return out + "</svg>\n"
    }

    /// Writes the SVG to `path`.
    static func write(_ chart: BenchChart, to path: String) throws {
        guard writeWholeFile(path, Array(chart.svg.utf8)) else {
            throw BenchError("cannot write the chart to \(path)")
        }
    }

    /// Three significant figures, at most three decimals.
    static func format(_ v: Double) -> String {
        let places = v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3
        return fixed(v, places)
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }
}
