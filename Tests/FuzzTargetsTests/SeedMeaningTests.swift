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

/// The device and monitor seeds reach what they are meant to: traffic both ways, control
/// commands acknowledged, the MULTIPORT handshake, host input and output, replies to generated
/// requests.
@Suite struct DeviceSeedMeaningTests {
    func seed(_ target: FuzzTarget, _ name: String) throws -> [UInt8] {
        try #require(target.seeds.first { $0.name == name }).bytes
    }

    @Test func netSeedsMoveFramesAndCommands() throws {
        let a = try seed(.virtioNet, "mrg-rxbuf-offloads-control")
        let (received, dropped, sent, acks, mac) = try VirtIONetFixture.withHeader.with { f throws(FuzzFailure) in
            let c = f.net.counters
            let before = (c.received, c.receiveDropped, c.transmitted)
            try f.run(a)
            let acks = f.bench.ram.read(offset: SeedCorpus.netAckBase, count: 6) ?? []
            return (c.received - before.0, c.receiveDropped - before.1, c.transmitted - before.2, acks, f.net.currentMAC)
        }
        #expect(received == 3 && dropped == 1 && sent == 1)      // broadcast, merged, new MAC; one filtered
        #expect(acks == [0, 0, 0, 0, 0, 0])                       // rx mode, MAC, VLAN, offloads, table, announce ack
        #expect(mac == MACAddress(SeedCorpus.otherMAC))

        let m = try seed(.virtioNet, "two-queue-pairs")
        let (pairs, mReceived, mDropped, mFrames) = try VirtIONetFixture.withHeader.with { f throws(FuzzFailure) in
            let c = f.net.counters
            let before = (c.received, c.receiveDropped)
            try f.run(m)
            return (f.net.currentQueuePairs, c.received - before.0, c.receiveDropped - before.1, f.framesReceived)
        }
        #expect(pairs == 2 && mReceived == 2 && mDropped == 1 && mFrames == [0, 1])

        let n = try seed(.virtioNet, "no-vnet-header")
        let nFrames = try VirtIONetFixture.withoutHeader.with { f throws(FuzzFailure) in
            let before = f.net.counters.received
            try f.run(n)
            return (f.net.counters.received - before, f.framesReceived)
        }
        #expect(nFrames.0 == 1 && nFrames.1 == [1, 0])

        let t = try seed(.virtioNet, "transmit-backpressure")
        let tFrames = try VirtIONetFixture.withHeader.with { f throws(FuzzFailure) in
            try f.run(t)
            return (f.framesReceived, f.model.queues[1]?.usedTotal)
        }
        #expect(tFrames.0 == [6, 0] && tFrames.1 == 6)
    }

    @Test func serialSeedsHandshakeAndCarryData() throws {
        let s = try seed(.virtioSerial, "multiport-handshake-data")
        let r = try VirtIOSerialFixture.shared.with { f throws(FuzzFailure) in
            try f.run(s)
            return (f.hostReceived, f.model.queues[2]?.usedTotal, f.model.queues[0]?.usedTotal, f.model.queues[4]?.usedTotal,
                    f.ports.map(\.guestConnected), f.bench.status)
        }
        #expect(r.0[0] == Array("to the console\n!".utf8))
        #expect(r.0[1] == Array("to the named port".utf8))
        // DEVICE_ADD ×3, CONSOLE_PORT 0, PORT_OPEN 0, PORT_NAME 1, PORT_OPEN 1, PORT_NAME 2 (no
        // chardev: never open); PORT_OPEN 1 = 0 and 1 as its host side leaves and comes back.
        #expect(r.1 == 10)
        #expect(r.2 == 1 && r.3 == 3)                            // console input, 680 bytes in 256-byte buffers
        #expect(r.4 == [true, true, false] && r.5 & 0x40 == 0)

        let c = try seed(.virtioSerial, "console-without-multiport")
        let cr = try VirtIOSerialFixture.shared.with { f throws(FuzzFailure) in
            try f.run(c)
            return (f.hostReceived[0], f.model.queues[0]?.usedTotal)
        }
        #expect(cr.0 == Array("console output".utf8) && cr.1 == 1)

        let h = try seed(.virtioSerial, "hostile-control-messages")
        let hr = try VirtIOSerialFixture.shared.with { f throws(FuzzFailure) in
            try f.run(h)
            return (f.model.queues[3]?.usedTotal, f.bench.status)
        }
        #expect(hr.0 == 6 && hr.1 & 0x40 == 0)
    }

    @Test func qmpSeedsGetReplies() throws {
        func run(_ name: String) throws -> QMPFuzzRun {
            var r = QMPFuzzRun()
            try r.run(try seed(.qmp, name))
            return r
        }
        let session = try run("negotiate-and-commands")
        #expect(session.returns == 6 && session.errors == 4 && session.negotiated)
        let split = try run("split-and-broken-input")
        // Echo before negotiation, [1, 2], {"execute": tru}, "bare", 12, ], ping before negotiation.
        #expect(split.returns == 0 && split.errors == 7)
        let generated = try run("generated-request")
        #expect(generated.generatedAnswered == 1 && generated.returns == 2)
        let deep = try run("deep-and-long")
        #expect(deep.returns >= 2 && deep.longestReply > 2000)
    }
}
