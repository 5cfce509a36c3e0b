import Loader
import Memory
import Testing
import VirtIO
@testable import FuzzTargets

/// The hand-made seeds reach the success paths they are meant to seed (a fuzzer starting from
/// inputs that are all refused early would spend its time rediscovering the format).
@Suite struct SeedMeaningTests {
    func guestMemory(_ size: UInt64) throws -> GuestMemory {
        let system = MemorySystem()
        let root = MemoryRegion.container(name: "root", size: UInt128(1) << 64)
        root.addSubregion(try MemoryRegion.ram(name: "ram", size: size), at: 0)
        return AddressSpace(root: root, name: "memory", system: system).guestMemory
    }

    @Test func multibootSeedsLoad() throws {
        for kernel in [SeedCorpus.elf(is64: false), SeedCorpus.elf(is64: true), SeedCorpus.aout()] {
            let memory = try guestMemory(LoaderFixture.ramSize)
            let c = MultibootConfiguration(kernelPath: "k", usableRAM: [0..<0x9fc00, 0x100000..<LoaderFixture.ramSize],
                                           ramBelow4G: LoaderFixture.ramSize)
            let info = try MultibootLoader.load(kernel: kernel, configuration: c, into: memory)
            #expect(info.kernelRange.lowerBound == 0x100000)
            #expect(info.entryPoint == 0x100020)
        }
    }

    @Test func bzImageSeedLoads() throws {
        let memory = try guestMemory(LoaderFixture.ramSize)
        let c = LinuxBootConfiguration(kernelPath: "k", commandLine: "console=ttyS0", initrd: [1, 2, 3],
                                       ramBelow4G: LoaderFixture.ramSize)
        let info = try LinuxLoader.load(kernel: SeedCorpus.bzImage(), configuration: c, into: memory)
        #expect(info.entryPoint64 == 0x100200)
        #expect(info.initrdRange != nil)
    }

    @Test func ringSeedPopsEveryChain() throws {
        let memory = try guestMemory(0x10000)
        try memory.write(SeedCorpus.ringImage(published: 3), at: 0)
        let q = VirtQueue(maxSize: 256)
        try q.configure(size: 8, desc: 0x1000, avail: 0x2000, used: 0x3000, memory: memory)
        let a = try #require(try q.pop(memory)), b = try #require(try q.pop(memory)), c = try #require(try q.pop(memory))
        #expect(a.buffers.map(\.address) == [0x5000, 0x6000])
        #expect(b.buffers.map(\.address) == [0x6000])
        #expect(c.buffers.map(\.address) == [0x7000, 0x7100])     // through the indirect table
        #expect(try q.pop(memory) == nil)
    }

    /// Each seed command line is accepted (they are the README's and Guests/README.md's).
    @Test func commandLineSeedsAreAccepted() throws {
        for seed in SeedCorpus.cmdline() {
            let argv = seed.1.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            #expect(throws: Never.self, "\(seed.0)") { _ = try MachineConfigurationProbe.make(try QEMUCommandLine.parse(argv).arguments) }
        }
    }
}

import Machine

enum MachineConfigurationProbe {
    static func make(_ a: QEMUArguments) throws -> MachineConfiguration { try MachineConfiguration(qemu: a) }
}
