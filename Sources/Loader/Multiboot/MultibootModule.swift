/// A Multiboot boot module: a file loaded into guest RAM next to the kernel, described to the
/// kernel by its address range and a string (QEMU: one `-initrd` entry).
public struct MultibootModule: Equatable, Sendable {
    /// The module's string as the kernel sees it: "FILE ARGS". QEMU passes the whole entry.
    public var commandLine: String

    /// The module whose string is `commandLine` ("FILE ARGS").
    public init(commandLine: String) { self.commandLine = commandLine }

    /// The file to load: the string up to its first space.
    public var path: String {
        String(commandLine.prefix { $0 != " " })
    }

    /// Splits QEMU's `-initrd` syntax: entries separated by commas, ",," standing for a literal
    /// comma. Empty entries are dropped.
    public static func parseList(_ list: String) -> [MultibootModule] {
        var modules: [MultibootModule] = []
        var current = ""
        var chars = list.makeIterator()
        var pending = chars.next()
        while let c = pending {
            pending = chars.next()
            if c == "," {
                if pending == "," {
                    current.append(",")
                    pending = chars.next()
                    continue
                }
                if !current.isEmpty { modules.append(MultibootModule(commandLine: current)) }
                current = ""
            } else {
                current.append(c)
            }
        }
        if !current.isEmpty { modules.append(MultibootModule(commandLine: current)) }
        return modules
    }
}
