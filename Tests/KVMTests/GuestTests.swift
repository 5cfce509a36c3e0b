import CKVM
import Foundation
import TestSupport
import Testing
import VMMSys
@testable import KVM

/// Real guests: hand-assembled 16-bit code run to `hlt`, checking every exit it produces.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct GuestTests {
    @Test func portAndMMIOExits() throws {
        let code: [UInt8] = [
            0xB0, 0x42,                         // mov al, 0x42
            0xE6, 0x10,                         // out 0x10, al
            0xB8, 0x00, 0x20,                   // mov ax, 0x2000
            0x8E, 0xD8,                         // mov ds, ax          (ds base 0x20000: no RAM)
            0xC6, 0x06, 0x10, 0x00, 0x99,       // mov byte [0x10], 0x99
            0xC7, 0x06, 0x20, 0x00, 0xEF, 0xBE, // mov word [0x20], 0xbeef
            0xA1, 0x30, 0x00,                   // mov ax, [0x30]
            0xE7, 0x11,                         // out 0x11, ax
            0xE4, 0x20,                         // in al, 0x20
            0xE6, 0x21,                         // out 0x21, al
            0x31, 0xDB,                         // xor bx, bx
            0x8E, 0xDB,                         // mov ds, bx
            0xA2, 0x00, 0x10,                   // mov [0x1000], al    (RAM: no exit)
            0x66, 0xB8, 0x78, 0x56, 0x34, 0x12, // mov eax, 0x12345678
            0x66, 0xE7, 0x12,                   // out 0x12, eax
            0xF4,                               // hlt
        ]
        let guest = try RealModeGuest(code: code)
        let exits = try guest.runUntilHalt { exit in
            switch exit {
            case .mmioRead(0x20030, 2): try guest.vcpu.completeMmioRead(value: 0x1234)
            case .ioIn(0x20, 1): try guest.vcpu.completeIoIn(value: 0x5A)
            default: break
            }
        }
        #expect(exits == [
            .ioOut(port: 0x10, size: 1, value: 0x42),
            .mmioWrite(address: 0x20010, length: 1, value: 0x99),
            .mmioWrite(address: 0x20020, length: 2, value: 0xBEEF),
            .mmioRead(address: 0x20030, length: 2),
            .ioOut(port: 0x11, size: 2, value: 0x1234),
            .ioIn(port: 0x20, size: 1),
            .ioOut(port: 0x21, size: 1, value: 0x5A),
            .ioOut(port: 0x12, size: 4, value: 0x1234_5678),
            .hlt,
        ])
        #expect(guest.peek(0x1000, 1) == [0x5A])
    }

    @Test func stringIODeliversEveryByte() throws {
        let code: [UInt8] = [
            0x31, 0xC0,       // xor ax, ax
            0x8E, 0xD8,       // mov ds, ax
            0x8E, 0xC0,       // mov es, ax
            0xBE, 0x00, 0x01, // mov si, 0x100
            0xB9, 0x05, 0x00, // mov cx, 5
            0xBA, 0xF8, 0x03, // mov dx, 0x3f8
            0xFC,             // cld
            0xF3, 0x6E,       // rep outsb
            0xBF, 0x00, 0x02, // mov di, 0x200
            0xB9, 0x04, 0x00, // mov cx, 4
            0xBA, 0xF9, 0x03, // mov dx, 0x3f9
            0xF3, 0x6C,       // rep insb
            0xF4,             // hlt
        ]
        let guest = try RealModeGuest(code: code, data: [0x100: Array("Hello".utf8)])
        var written: [UInt8] = []
        var input = Array("WXYZ".utf8)[...]
        _ = try guest.runUntilHalt { exit in
            switch exit {
            case .ioOutString(0x3F8, 1, let count, let data):
                #expect(data.count == count)
                written += data
            case .ioOut(0x3F8, 1, let value):
                written.append(UInt8(value))
            case .ioInString(0x3F9, 1, let count):
                try guest.vcpu.completeIoIn(bytes: Array(input.prefix(count)))
                input = input.dropFirst(count)
            case .ioIn(0x3F9, 1):
                try guest.vcpu.completeIoIn(value: UInt64(input.removeFirst()))
            default:
                Issue.record("unexpected exit \(exit)")
            }
        }
        #expect(written == Array("Hello".utf8))
        #expect(input.isEmpty)
        #expect(guest.peek(0x200, 4) == Array("WXYZ".utf8))
    }

    /// Writes matching an ioeventfd complete in the kernel (no exit, counter bumps);
    /// a datamatch miss still exits.
    @Test func ioeventfdSwallowsMatchingWrites() throws {
        let code: [UInt8] = [
            0xB0, 0xFA,  // mov al, 0xfa
            0xE6, 0x30,  // out 0x30, al
            0xE6, 0x30,  // out 0x30, al
            0xE6, 0x30,  // out 0x30, al
            0xB0, 0x01,  // mov al, 1
            0xE6, 0x30,  // out 0x30, al   (datamatch miss)
            0xB8, 0x00, 0x20,             // mov ax, 0x2000
            0x8E, 0xD8,                   // mov ds, ax
            0xC6, 0x06, 0x10, 0x00, 0x99, // mov byte [0x10], 0x99   (MMIO ioeventfd)
            0xC6, 0x06, 0x10, 0x00, 0x98, // mov byte [0x10], 0x98
            0xF4,        // hlt
        ]
        let guest = try RealModeGuest(code: code)
        let pio = try EventNotifier()
        let mmio = try EventNotifier()
        try guest.vm.ioeventfd(pio, address: .pio(0x30), length: 1, datamatch: 0xFA)
        try guest.vm.ioeventfd(mmio, address: .mmio(0x20010), length: 1)
        let exits = try guest.runUntilHalt()
        #expect(exits == [.ioOut(port: 0x30, size: 1, value: 0x01), .hlt])
        #expect(pio.testAndClear() == 3)
        #expect(mmio.testAndClear() == 2)

        // The same registration again: EEXIST, reported with the ioctl and its arguments.
        #expect {
            try guest.vm.ioeventfd(pio, address: .pio(0x30), length: 1, datamatch: 0xFA)
        } throws: { error in
            guard let e = error as? SystemError else { return false }
            return e.operation == "KVM_IOEVENTFD" && e.errno == EEXIST
                && e.arguments.contains("addr=0x30 len=1 datamatch=0xfa flags=pio|datamatch")
                && e.description.contains("EEXIST")
        }
        try guest.vm.ioeventfd(pio, address: .pio(0x30), length: 1, datamatch: 0xFA, deassign: true)
        try guest.vm.ioeventfd(pio, address: .pio(0x30), length: 1, datamatch: 0xFA)
    }

    @Test func immediateExitReturnsInterrupted() throws {
        let guest = try RealModeGuest(code: [0xF4])
        guest.vcpu.immediateExit = true
        #expect(guest.vcpu.immediateExit)
        #expect(try guest.vcpu.run() == .interrupted)
        guest.vcpu.immediateExit = false
        #expect(try guest.vcpu.run() == .hlt)
    }

    @Test func completionWithoutPendingExitThrows() throws {
        let guest = try RealModeGuest(code: [0xF4])
        #expect(try guest.vcpu.run() == .hlt)
        #expect(throws: SystemError.self) { try guest.vcpu.completeIoIn(value: 1) }
        #expect(throws: SystemError.self) { try guest.vcpu.completeMmioRead(value: 1) }
    }
}
