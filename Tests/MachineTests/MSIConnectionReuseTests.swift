import KVMAccel
import Logging
import Testing
import VMMSys
@testable import Machine

/// `KVMMSIController` keeps a disconnected vector's route, irqfd and eventfd idle and hands
/// them back to a `connect` with the same message without an ioctl; the kernel's route table
/// stays bounded by the live connections plus `idleLimit`, and idle connections give way when
/// the table is full.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"))
struct MSIConnectionReuseTests {
    static let address: UInt64 = 0xfee0_0000
    /// The first MSI GSI (after the IOAPIC's 24 pins).
    static let firstGSI: UInt32 = 24

    func controller() throws -> (MachineCore, KVMMSIController) {
        let m = try MachineCore(irqchip: true)
        return (m, KVMMSIController(accelerator: m.accelerator, logger: Logger(label: "test")))
    }

    @Test func reconnectingTheSameMessageReusesTheConnection() throws {
        let (m, c) = try controller()
        let a = try #require(c.connect(address: Self.address, data: 0x41))
        #expect(m.accelerator.msiRouteGSIs == [Self.firstGSI])
        c.disconnect(a)
        #expect(c.idleConnections == 1 && m.accelerator.msiRouteGSIs == [Self.firstGSI])
        let b = try #require(c.connect(address: Self.address, data: 0x41))
        #expect(a === b, "the idle eventfd (and its irqfd and route) is taken back")
        #expect(c.idleConnections == 0 && m.accelerator.msiRouteGSIs == [Self.firstGSI])
        // Another message is a new route; the first stays live.
        let other = try #require(c.connect(address: Self.address, data: 0x43))
        #expect(other !== b && m.accelerator.msiRouteGSIs == [Self.firstGSI, Self.firstGSI + 1])
    }

    /// A vector flipping between two messages (what msixstorm does) settles on two routes.
    @Test func alternatingMessagesSettleOnTwoRoutes() throws {
        let (m, c) = try controller()
        for round in 0..<1000 {
            let n = try #require(c.connect(address: Self.address, data: round % 2 == 0 ? 0x41 : 0x43))
            c.disconnect(n)
        }
        #expect(m.accelerator.msiRouteGSIs == [Self.firstGSI, Self.firstGSI + 1])
        #expect(c.idleConnections == 2)
    }

    @Test func idleConnectionsAreBounded() throws {
        let (m, c) = try controller()
        let live = try #require(c.connect(address: Self.address, data: 0x30))
        for data in UInt32(0x40)..<0x80 {
            c.disconnect(try #require(c.connect(address: Self.address, data: data)))
            #expect(c.idleConnections <= KVMMSIController.idleLimit)
            #expect(m.accelerator.msiRouteGSIs.count <= 1 + KVMMSIController.idleLimit)
        }
        #expect(c.idleConnections == KVMMSIController.idleLimit)
        // The most recent messages are the ones kept.
        let recent = try #require(c.connect(address: Self.address, data: 0x7f))
        #expect(c.idleConnections == KVMMSIController.idleLimit - 1)
        c.disconnect(recent)
        c.disconnect(live)
        #expect(c.idleConnections == KVMMSIController.idleLimit)
    }

    /// With the route table full, idle connections are released so a live vector still gets
    /// a route (not KVM_SIGNAL_MSI).
    @Test func idleConnectionsGiveWayWhenTheTableIsFull() throws {
        let (m, c) = try controller()
        for data in UInt32(0x40)..<0x44 { c.disconnect(try #require(c.connect(address: Self.address, data: data))) }
        #expect(c.idleConnections == 4)
        while m.accelerator.msiRouteGSIs.count < KVMAccelerator.maxMSIRoutes {
            _ = try m.accelerator.addMSIRoute(address: Self.address, data: 0x50)
        }
        let n = c.connect(address: Self.address, data: 0x60)
        #expect(n != nil)
        #expect(c.idleConnections == 0)
        #expect(m.accelerator.msiRouteGSIs.count == KVMAccelerator.maxMSIRoutes - 3)
    }
}
