import Foundation
import Testing
import VMMSys

/// The executable's own outputs, as a user sees them.
@Suite struct CLITests {
    /// `vmm -n N --json`: exactly the documented shape, and the numbers say what the paths are.
    @Test(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"))
    func mainJobJSON() throws {
        let run = try Harness.vmm(["-n", "500", "--json"])
        #expect(run.status == 0, "\(run.output)")
        let object = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        let paths = try #require(object?["paths"] as? [[String: Any]])
        #expect(object?.count == 1)
        #expect(paths.map { $0["path"] as? String } == [
            "pio-no-eventfd", "pio-wildcard-eventfd", "pio-datamatch-eventfd", "pio-datamatch-miss",
            "mmio-no-eventfd", "mmio-wildcard-eventfd", "mmio-datamatch-eventfd",
        ])
        for p in paths {
            #expect(Set(p.keys) == ["path", "writes", "userspaceExits", "eventfdSignals", "nsPerWrite"])
            let name = p["path"] as? String ?? ""
            let exits = p["userspaceExits"] as? Int, signals = p["eventfdSignals"] as? Int
            #expect(p["writes"] as? Int == 500)
            let exiting = name.hasSuffix("no-eventfd") || name.hasSuffix("miss")
            #expect(exits == (exiting ? 500 : 0) && signals == (exiting ? 0 : 500), "\(name)")
            #expect((p["nsPerWrite"] as? Double ?? 0) > 0)
        }
    }

    @Test(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"))
    func mtreeCommand() throws {
        let tree = try Harness.vmm(["mtree"])
        #expect(tree.status == 0)
        #expect(tree.output.contains("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"))
        #expect(tree.output.contains("(prio 0, i/o): doorbell-mmio"))
        let flat = try Harness.vmm(["mtree", "-f"])
        #expect(flat.output.contains("FlatView #0\n AS \"memory\", root: system"))
        #expect(flat.output.contains("0000000000006000 size=1 data=0x42"))
    }

    @Test func badWritesCount() throws {
        let run = try Harness.vmm(["-n", "0"])
        #expect(run.status == 1 && run.output.hasPrefix("vmm: ") && run.output.split(separator: "\n").count == 1)
    }
}
