import Foundation
import ProcessSupport
import Testing
import TestSupport
import VMMSys

/// The TUN/TAP request numbers and flags spelled out in Swift, against the C headers (built
/// with gcc), and a tap opened for real in a private network namespace.
@Suite struct TapABITests {
    @Test(.enabled(if: TestHost.toolchainAvailable, "needs gcc to read the C headers"))
    func requestNumbersMatchTheHeaders() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tapabi-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = dir.appendingPathComponent("abi.c").path, exe = dir.appendingPathComponent("abi").path
        try """
        #include <linux/if_tun.h>
        #include <net/if.h>
        #include <stdio.h>
        #include <stddef.h>
        #include <sys/ioctl.h>
        int main(void) {
            printf("%lu %lu %lu %lu %lu %lu %lu\\n", (unsigned long)TUNSETIFF, (unsigned long)TUNGETFEATURES, (unsigned long)TUNSETOFFLOAD,
                   (unsigned long)TUNGETIFF, (unsigned long)TUNGETVNETHDRSZ, (unsigned long)TUNSETVNETHDRSZ, (unsigned long)TUNSETQUEUE);
            printf("%d %d %d %d %d %d\\n", IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE, IFF_ATTACH_QUEUE, IFF_DETACH_QUEUE);
            printf("%d %d %d %d %d\\n", TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO);
            printf("%zu %zu %zu\\n", sizeof(struct ifreq), offsetof(struct ifreq, ifr_flags), (size_t)IFNAMSIZ);
            printf("%lu %lu\\n", (unsigned long)TIOCSPTLCK, (unsigned long)TIOCGPTN);
            return 0;
        }
        """.write(toFile: c, atomically: true, encoding: .utf8)
        let build = try ChildProcess.run(["gcc", "-o", exe, c])
        try #require(build.status == 0, "\(build.output)")
        let lines = try ChildProcess.run([exe]).output.split(separator: "\n").map { $0.split(separator: " ").compactMap { UInt($0) } }
        #expect(lines[0] == [TunABI.setIFF, TunABI.getFeatures, TunABI.setOffload, TunABI.getIFF, TunABI.getVnetHeaderSize,
                             TunABI.setVnetHeaderSize, TunABI.setQueue])
        #expect(lines[1] == [TunABI.iffTap, TunABI.iffNoPI, TunABI.iffVnetHeader, TunABI.iffMultiQueue, TunABI.iffAttachQueue,
                             TunABI.iffDetachQueue].map(UInt.init))
        #expect(lines[2] == [TunABI.offloadChecksum, TunABI.offloadTSO4, TunABI.offloadTSO6, TunABI.offloadTSOECN, TunABI.offloadUFO].map(UInt.init))
        #expect(lines[3] == [UInt(TunABI.ifreqSize), UInt(TunABI.flagsOffset), UInt(TunABI.nameSize)])
        #expect(lines[4] == [PseudoTerminal.setLock, PseudoTerminal.getNumber])
    }

    /// Opened as QEMU opens it: the name kept, the vnet header on, UFO probed, queues attached
    /// and detached; the kernel's refusals are one clear line.
    @Test(.enabled(if: NetworkNamespace.available, "needs root, /dev/net/tun and iproute2"))
    func openInANamespace() throws {
        let result = try NetworkNamespace.run { () throws -> [String] in
            var notes: [String] = []
            let tap = try TapDevice.open(name: "vt0", queues: 2)
            notes.append("\(tap.name) \(tap.queues.count) \(tap.vnetHeader)")
            try tap.setQueueEnabled(1, false)
            try tap.setQueueEnabled(1, true)
            let offload = tap.setOffload(checksum: true, tso4: true, tso6: true, ecn: false, ufo: false)
            notes.append("offload \(offload)")
            do { _ = try TapDevice.open(name: "vt0", queues: 1) } catch { notes.append("\(error)") }
            do { _ = try TapDevice.open(name: "a/b") } catch { notes.append("\(error)") }
            return notes
        }
        #expect(result[0] == "vt0 2 true")
        #expect(result[1] == "offload \(TunABI.offloadChecksum | TunABI.offloadTSO4 | TunABI.offloadTSO6)")
        #expect(result[2].hasPrefix("could not configure /dev/net/tun (vt0): Invalid argument: 'vt0' exists but is not a single-queue tap device"), "\(result[2])")
        #expect(result[3].contains("not a valid interface name"))
    }
}
