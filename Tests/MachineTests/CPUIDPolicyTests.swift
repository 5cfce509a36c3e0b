import Testing
@testable import Machine
import KVM

@Suite struct CPUIDPolicyTests {
    let host: [CPUIDEntry] = [
        CPUIDEntry(function: 0, eax: 0xd, ebx: 0x756e_6547),
        CPUIDEntry(function: 1, eax: 0x306a9, ebx: 0x0810_0800, ecx: 0x1, edx: 0x1789_fbff),
        CPUIDEntry(function: 0xb, index: 0), CPUIDEntry(function: 0xb, index: 1), CPUIDEntry(function: 0xb, index: 2),
    ]

    @Test func hypervisorBitAndAPICIDs() {
        for id in UInt32(0)..<4 {
            let e = CPUIDPolicy.entries(supported: host, apicID: id, cpuCount: 4)
            let leaf1 = e.first { $0.function == 1 }!
            #expect(leaf1.ecx & (1 << 31) != 0)
            #expect(leaf1.ebx >> 24 == id)
            #expect((leaf1.ebx >> 16) & 0xff == 4)
            #expect(leaf1.ebx & 0xffff == 0x0800)          // brand/CLFLUSH kept
            #expect(leaf1.eax == 0x306a9)
            let topo = e.filter { $0.function == 0xb }
            #expect(topo.allSatisfy { $0.edx == id })
            #expect(topo[1].ebx == 4 && topo[1].eax == 2)
            #expect(topo[2].ecx & 0xff00 == 0)              // invalid level ends the list
        }
    }

    @Test func uniprocessorClearsHTT() {
        let e = CPUIDPolicy.entries(supported: host, apicID: 0, cpuCount: 1)
        #expect(e.first { $0.function == 1 }!.edx & (1 << 28) == 0)
    }

    @Test func otherLeavesUntouched() {
        let e = CPUIDPolicy.entries(supported: host, apicID: 2, cpuCount: 2)
        #expect(e[0] == host[0])
    }
}
