import CKVM
import Foundation
import TestSupport
import Testing
import VMMSys
@testable import KVM

/// The decoder never trusts kvm_run's geometry: planted out-of-range payloads decode as
/// `.unknown` and are not read.
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct ExitDecodingTests {
    private func plantIO(_ vcpu: VCPU, direction: UInt8, size: UInt8, port: UInt16, count: UInt32, offset: UInt64) {
        let base = vcpu.runBase
        base.storeBytes(of: UInt32(KVM_EXIT_IO), toByteOffset: CKVM_RUN_EXIT_REASON, as: UInt32.self)
        base.storeBytes(of: direction, toByteOffset: CKVM_RUN_IO_DIRECTION, as: UInt8.self)
        base.storeBytes(of: size, toByteOffset: CKVM_RUN_IO_SIZE, as: UInt8.self)
        base.storeBytes(of: port, toByteOffset: CKVM_RUN_IO_PORT, as: UInt16.self)
        base.storeBytes(of: count, toByteOffset: CKVM_RUN_IO_COUNT, as: UInt32.self)
        base.storeBytes(of: offset, toByteOffset: CKVM_RUN_IO_DATA_OFFSET, as: UInt64.self)
    }

    @Test func ioGeometryIsBoundsChecked() throws {
        let vm = try KVMSystem().createVM()
        let vcpu = try vm.createVCPU(id: 0)
        let size = UInt64(vcpu.runSize)
        let out = UInt8(KVM_EXIT_IO_OUT)
        let unknownIO = VCPUExit.unknown(UInt32(KVM_EXIT_IO))

        // A well-formed string out at the end of the mapping decodes with every byte.
        for i in 0..<4 { vcpu.runBase.storeBytes(of: UInt8(0x61 + i), toByteOffset: Int(size) - 4 + i, as: UInt8.self) }
        plantIO(vcpu, direction: out, size: 2, port: 0x3f8, count: 2, offset: size - 4)
        #expect(vcpu.decodeExit() == .ioOutString(port: 0x3f8, size: 2, count: 2, data: Array("abcd".utf8)))
        plantIO(vcpu, direction: out, size: 4, port: 0x80, count: 1, offset: size - 4)
        #expect(vcpu.decodeExit() == .ioOut(port: 0x80, size: 4, value: 0x6463_6261))

        // One byte past the end, a huge count, an offset inside the header, odd sizes.
        plantIO(vcpu, direction: out, size: 1, port: 0x3f8, count: 5, offset: size - 4)
        #expect(vcpu.decodeExit() == unknownIO)
        plantIO(vcpu, direction: out, size: 4, port: 0x3f8, count: .max, offset: 4096)
        #expect(vcpu.decodeExit() == unknownIO)
        plantIO(vcpu, direction: out, size: 1, port: 0x3f8, count: 1, offset: .max)
        #expect(vcpu.decodeExit() == unknownIO)
        plantIO(vcpu, direction: out, size: 1, port: 0x3f8, count: 1, offset: 16)
        #expect(vcpu.decodeExit() == unknownIO)
        plantIO(vcpu, direction: out, size: 3, port: 0x3f8, count: 1, offset: 4096)
        #expect(vcpu.decodeExit() == unknownIO)
        plantIO(vcpu, direction: out, size: 1, port: 0x3f8, count: 0, offset: 4096)
        #expect(vcpu.decodeExit() == unknownIO)
        // And a completion for such an exit is refused rather than written out of bounds.
        plantIO(vcpu, direction: UInt8(KVM_EXIT_IO_IN), size: 4, port: 0x3f8, count: 2, offset: size - 4)
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(bytes: [UInt8](repeating: 0, count: 8)) }
    }

    @Test func mmioLengthIsBoundsChecked() throws {
        let vm = try KVMSystem().createVM()
        let vcpu = try vm.createVCPU(id: 0)
        let base = vcpu.runBase
        base.storeBytes(of: UInt32(KVM_EXIT_MMIO), toByteOffset: CKVM_RUN_EXIT_REASON, as: UInt32.self)
        base.storeBytes(of: UInt64(0xfee0_0000), toByteOffset: CKVM_RUN_MMIO_PHYS_ADDR, as: UInt64.self)
        base.storeBytes(of: UInt64(0x1122_3344_5566_7788), toByteOffset: CKVM_RUN_MMIO_DATA, as: UInt64.self)
        base.storeBytes(of: UInt8(1), toByteOffset: CKVM_RUN_MMIO_IS_WRITE, as: UInt8.self)
        base.storeBytes(of: UInt32(8), toByteOffset: CKVM_RUN_MMIO_LEN, as: UInt32.self)
        #expect(vcpu.decodeExit() == .mmioWrite(address: 0xfee0_0000, length: 8, value: 0x1122_3344_5566_7788))
        base.storeBytes(of: UInt32(3), toByteOffset: CKVM_RUN_MMIO_LEN, as: UInt32.self)
        #expect(vcpu.decodeExit() == .mmioWrite(address: 0xfee0_0000, length: 3, value: 0x66_7788))
        for bad: UInt32 in [0, 9, .max] {
            base.storeBytes(of: bad, toByteOffset: CKVM_RUN_MMIO_LEN, as: UInt32.self)
            #expect(vcpu.decodeExit() == .unknown(UInt32(KVM_EXIT_MMIO)))
        }
    }

    /// The largest string I/O the mapping can hold decodes and completes; every completion for
    /// an exit whose geometry is wrong, or that is not the pending kind, throws EINVAL instead
    /// of writing. (QEMU trusts kvm_run: `kvm_handle_io()` walks `count * size` bytes from
    /// `data_offset` unchecked.)
    @Test func completionsRefuseHostileGeometry() throws {
        let vm = try KVMSystem().createVM()
        let vcpu = try vm.createVCPU(id: 0)
        let size = UInt64(vcpu.runSize)
        let first = UInt64(CKVM_RUN_SIZE)
        let inDirection = UInt8(KVM_EXIT_IO_IN)

        // A string `ins` filling everything after the kvm_run header, byte by byte.
        let count = UInt32(size - first)
        plantIO(vcpu, direction: inDirection, size: 1, port: 0x3f8, count: count, offset: first)
        #expect(vcpu.decodeExit() == .ioInString(port: 0x3f8, size: 1, count: Int(count)))
        try vcpu.completeIoIn(bytes: [UInt8](repeating: 0x5a, count: Int(count)))
        #expect(vcpu.runBase.load(fromByteOffset: Int(size) - 1, as: UInt8.self) == 0x5a)
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(bytes: [UInt8](repeating: 0, count: Int(count) + 1)) }
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(value: 1) }     // not a single in

        // One more item than fits; sizes 0, 3, 8, 255; an `out` pending: all refused.
        plantIO(vcpu, direction: inDirection, size: 1, port: 0x3f8, count: count + 1, offset: first)
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(bytes: [UInt8](repeating: 0, count: Int(count) + 1)) }
        for bad: UInt8 in [0, 3, 8, 255] {
            plantIO(vcpu, direction: inDirection, size: bad, port: 0x70, count: 1, offset: first)
            #expect(throws: SystemError.self, "size \(bad)") { try vcpu.completeIoIn(value: 0) }
        }
        plantIO(vcpu, direction: UInt8(KVM_EXIT_IO_OUT), size: 1, port: 0x70, count: 1, offset: first)
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(value: 0) }
        #expect(throws: SystemError.self) { try vcpu.completeMmioRead(value: 0) }

        // MMIO: a read completion needs a pending read of 1...8 bytes.
        let base = vcpu.runBase
        base.storeBytes(of: UInt32(KVM_EXIT_MMIO), toByteOffset: CKVM_RUN_EXIT_REASON, as: UInt32.self)
        base.storeBytes(of: UInt8(0), toByteOffset: CKVM_RUN_MMIO_IS_WRITE, as: UInt8.self)
        for bad: UInt32 in [0, 9, 4096, .max] {
            base.storeBytes(of: bad, toByteOffset: CKVM_RUN_MMIO_LEN, as: UInt32.self)
            #expect(throws: SystemError.self, "len \(bad)") { try vcpu.completeMmioRead(value: 0) }
        }
        base.storeBytes(of: UInt32(8), toByteOffset: CKVM_RUN_MMIO_LEN, as: UInt32.self)
        try vcpu.completeMmioRead(value: 0x0102_0304_0506_0708)
        #expect(base.load(fromByteOffset: CKVM_RUN_MMIO_DATA, as: UInt64.self) == 0x0102_0304_0506_0708)
        base.storeBytes(of: UInt8(1), toByteOffset: CKVM_RUN_MMIO_IS_WRITE, as: UInt8.self)
        #expect(throws: SystemError.self) { try vcpu.completeMmioRead(value: 0) }
        base.storeBytes(of: UInt32(KVM_EXIT_HLT), toByteOffset: CKVM_RUN_EXIT_REASON, as: UInt32.self)
        #expect(throws: SystemError.self) { try vcpu.completeMmioRead(value: 0) }
        #expect(throws: SystemError.self) { try vcpu.completeIoIn(value: 0) }
    }
}

/// Kicking a vCPU from another thread writes only `immediate_exit` (one byte of kvm_run): the
/// exit being handled at that moment must not change under the handler (it once did: an
/// 8-byte store clobbered `exit_reason`, and a QMP stop during a port read failed the vCPU).
@Suite(.enabled(if: TestHost.kvmAvailable, "requires read/write /dev/kvm"))
struct ImmediateExitTests {
    @Test func settingImmediateExitLeavesTheExitAlone() throws {
        let vm = try KVMSystem().createVM()
        let vcpu = try vm.createVCPU(id: 0)
        let base = vcpu.runBase
        base.storeBytes(of: UInt32(KVM_EXIT_IO), toByteOffset: CKVM_RUN_EXIT_REASON, as: UInt32.self)
        base.storeBytes(of: UInt8(KVM_EXIT_IO_IN), toByteOffset: CKVM_RUN_IO_DIRECTION, as: UInt8.self)
        base.storeBytes(of: UInt8(4), toByteOffset: CKVM_RUN_IO_SIZE, as: UInt8.self)
        base.storeBytes(of: UInt16(0x608), toByteOffset: CKVM_RUN_IO_PORT, as: UInt16.self)
        base.storeBytes(of: UInt32(1), toByteOffset: CKVM_RUN_IO_COUNT, as: UInt32.self)
        base.storeBytes(of: UInt64(4096), toByteOffset: CKVM_RUN_IO_DATA_OFFSET, as: UInt64.self)
        let exit = vcpu.decodeExit()
        let snapshot = (0..<64).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        vcpu.immediateExit = true
        #expect(vcpu.immediateExit)
        #expect(vcpu.decodeExit() == exit && exit == .ioIn(port: 0x608, size: 4))
        let after = (0..<64).map { base.load(fromByteOffset: $0, as: UInt8.self) }
        #expect(after.enumerated().allSatisfy { $0.offset == CKVM_RUN_IMMEDIATE_EXIT || $0.element == snapshot[$0.offset] })
        try vcpu.completeIoIn(value: 0x1234)
        vcpu.immediateExit = false
        #expect(!vcpu.immediateExit && vcpu.decodeExit() == exit)
    }
}
