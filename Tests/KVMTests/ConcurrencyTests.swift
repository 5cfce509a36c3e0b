import Foundation
import TestSupport
import Testing
import VMMSys
@testable import KVM

/// The types cross isolation domains as Swift 6 requires: a VM shared by tasks, each vCPU
/// created on one task and run on another.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct ConcurrencyTests {
    @Test func vcpusRunOnOtherTasks() async throws {
        let guest = try RealModeGuest(code: [0xB0, 0x07, 0xE6, 0x10, 0xF4])  // mov al,7; out 0x10,al; hlt
        let vcpu = guest.vcpu
        let exits = try await Task.detached { () throws -> [VCPUExit] in
            [try vcpu.run(), try vcpu.run()]
        }.value
        #expect(exits == [.ioOut(port: 0x10, size: 1, value: 7), .hlt])

        let vm = guest.vm
        let ids = try await withThrowingTaskGroup(of: UInt32.self) { group in
            for id in UInt32(1)...3 {
                group.addTask { try vm.createVCPU(id: id).id }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(ids) == [1, 2, 3])
    }
}
