import Foundation
import Testing
import VMMSys

/// A guest that throws seeded random port, PCI-config and MMIO accesses at the VMM. The VMM
/// must neither crash nor hang: the guest finishes its rounds and exits with status 67.
@Suite(.enabled(if: Harness.kvmAvailable, "requires read/write access to /dev/kvm"),
       .enabled(if: GuestKernels.toolchainAvailable, "needs gcc, as and ld to build the hostile guest"))
struct HostileGuestTests {
    static let kernel: Result<String, HarnessError> = {
        let src = GuestKernels.repositoryRoot.appendingPathComponent("Guests/hostile").path
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swift-vmm-hostile-\(getpid())").path
        let cflags = ["-m32", "-ffreestanding", "-fno-pic", "-fno-stack-protector", "-nostdlib", "-O2", "-c"]
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for (file, obj) in [("start.S", "start.o"), ("hostile.c", "hostile.o")] {
                let r = try ChildProcess.run(["gcc"] + cflags + ["\(src)/\(file)", "-o", "\(out)/\(obj)"])
                guard r.status == 0 else { return .failure(HarnessError("gcc \(file): \(r.output)")) }
            }
            let r = try ChildProcess.run(["ld", "-m", "elf_i386", "-Ttext", "0x100000", "-z", "noseparate-code",
                                          "-o", "\(out)/hostile.elf", "\(out)/start.o", "\(out)/hostile.o"])
            guard r.status == 0 else { return .failure(HarnessError("ld: \(r.output)")) }
            return .success("\(out)/hostile.elf")
        } catch {
            return .failure(HarnessError("\(error)"))
        }
    }()

    @Test(arguments: [1, 0xdead, UInt32.random(in: 2...UInt32.max)])
    func survivesRandomAttacks(seed: UInt32) throws {
        let kernel = try Self.kernel.get()
        // virtio-rng-pci too, so its BARs, MSI-X table and queues take random writes as well.
        let run = try Harness.vmm(Harness.qemuFlags(kernel: kernel, append: "seed=\(seed) rounds=20000",
                                                    extra: ["-device", "virtio-rng-pci"]), timeoutSeconds: 300)
        #expect(run.output.contains("hostile: survived 20000 rounds"), "seed \(seed): \(run.output.suffix(600))")
        #expect(run.status == 67, "seed \(seed): exit status \(run.status)")
    }
}
