import Synchronization
import SystemPackage
import Testing
import TestSupport
import VMMSys
#if canImport(Glibc)
import Glibc
#endif

/// The host layer on swift-system: errors name the call and the errno (the names come from the
/// C library, not a table of ours), EINTR is retried in one place, files and sockets are
/// `FileDescriptor`s, threads are pthreads.
@Suite struct SystemErrorTests {
    @Test func namesComeFromTheCLibrary() {
        #expect(SystemError(operation: "x", errno: EEXIST).errnoName == "EEXIST")
        #expect(SystemError(operation: "x", errno: ENOENT).errnoName == "ENOENT")
        // Not in the old hand-written table: proves the names are glibc's.
        #expect(SystemError(operation: "x", errno: EHOSTUNREACH).errnoName == "EHOSTUNREACH")
        #expect(SystemError(operation: "x", errno: 4242).errnoName == "errno 4242")
    }

    @Test func carriesTheErrnoAndStrerror() {
        let e = SystemError(operation: "KVM_IOEVENTFD", arguments: "addr=0xf4", code: .fileExists)
        #expect(e.errno == EEXIST)
        #expect(e == SystemError(operation: "KVM_IOEVENTFD", arguments: "addr=0xf4", errno: EEXIST))
        #expect(e.description == "KVM_IOEVENTFD(addr=0xf4) failed: EEXIST (17): File exists")
        #expect(SystemError(operation: "eventfd", errno: EMFILE).description.hasPrefix("eventfd failed: EMFILE (24)"))
    }

    @Test func systemCallNamesTheOperationOfASwiftSystemError() {
        #expect {
            try systemCall("open", arguments: "/nonexistent/image") {
                try FileDescriptor.open("/nonexistent/image", .readOnly)
            }
        } throws: { error in
            let e = error as? SystemError
            return e?.operation == "open" && e?.arguments == "/nonexistent/image" && e?.code == .noSuchFileOrDirectory
        }
    }

    @Test func retryingOnInterruptRetriesEINTROnlyAndThrowsTheRest() throws {
        var calls = 0
        let value = try retryingOnInterrupt("fake") { () -> Int32 in
            calls += 1
            if calls < 4 { Glibc.errno = EINTR; return -1 }
            return 7
        }
        #expect(value == 7 && calls == 4)
        calls = 0
        #expect(throws: SystemError(operation: "fake", arguments: "a", errno: EBADF)) {
            try retryingOnInterrupt("fake", arguments: "a") { () -> Int32 in
                calls += 1
                Glibc.errno = EBADF
                return -1
            }
        }
        #expect(calls == 1)
    }
}

@Suite struct RawImageFileTests {
    /// A new empty file in /tmp, removed when `body` returns.
    func withTemporaryFile(_ body: (String) throws -> Void) throws {
        let path = "/tmp/vmm-raw-image-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.create, .exclusiveCreate],
                                         permissions: .ownerReadWrite)
        try fd.close()
        defer { unlink(path) }
        try body(path)
    }

    @Test func writesAndReadsAtOffsetsAndPadsPastTheEnd() throws {
        try withTemporaryFile { path in
            let image = try RawImageFile(path: path, readOnly: false)
            try image.write([1, 2, 3, 4][...], at: 4096)
            #expect(try image.size() == 4100)
            var buffer = [UInt8](repeating: 0xee, count: 8)
            try image.read(into: &buffer, count: 8, at: 4098)
            #expect(buffer == [3, 4, 0, 0, 0, 0, 0, 0])          // past the end reads as zeros
            try image.read(into: &buffer, count: 2, at: 4095)
            #expect(buffer[0..<2] == [0, 1])
            try image.flush()
        }
    }

    @Test func anOffsetBeyondWhatTheFileCanHoldIsAnErrorNotATrap() throws {
        try withTemporaryFile { path in
            let image = try RawImageFile(path: path, readOnly: false)
            var buffer = [UInt8](repeating: 0, count: 4)
            #expect(throws: SystemError.self) { try image.read(into: &buffer, count: 4, at: UInt64.max - 1) }
            #expect(throws: SystemError.self) { try image.write([1][...], at: UInt64(Int64.max)) }
            do throws(SystemError) {
                try image.write([1][...], at: 1 << 63)
                Issue.record("an offset of 2^63 was accepted")
            } catch {
                #expect(error.operation == "pwrite" && error.code == .invalidArgument)
            }
        }
    }

    @Test func aReadOnlyImageRefusesWrites() throws {
        try withTemporaryFile { path in
            let image = try RawImageFile(path: path, readOnly: true)
            do throws(SystemError) {
                try image.write([1][...], at: 0)
                Issue.record("a read-only image accepted a write")
            } catch {
                #expect(error.operation == "pwrite" && error.code == .badFileDescriptor)
            }
        }
    }

    @Test func aMissingImageNamesThePath() {
        do {
            _ = try RawImageFile(path: "/nonexistent/disk.img", readOnly: true)
            Issue.record("opened a missing file")
        } catch {
            #expect(error.description.hasPrefix("open(/nonexistent/disk.img, O_RDONLY) failed: ENOENT (2)"))
        }
    }
}

@Suite struct HostThreadTests {
    @Test func runsTheBodyOnAThreadWithTheGivenName() throws {
        let seen = Mutex<String?>(nil)
        try HostThread.start(name: "a-rather-long-thread-name", stackSize: 1 << 20) {
            var bytes = [UInt8](repeating: 0, count: 64)
            let fd = try? FileDescriptor.open("/proc/thread-self/comm", .readOnly)
            let n = (try? bytes.withUnsafeMutableBytes { try fd?.read(into: $0) }) ?? nil
            try? fd?.close()
            seen.withLock { $0 = String(decoding: bytes[0..<(n ?? 0)], as: UTF8.self) }
        }
        #expect(pollUntil { seen.withLock { $0 } != nil })
        // Linux keeps 15 bytes of a thread's name.
        #expect(seen.withLock { $0 } == "a-rather-long-t\n")
    }

    @Test func aStackBelowTheMinimumIsRefused() {
        #expect(throws: SystemError(operation: "pthread_attr_setstacksize", arguments: "tiny 1", errno: EINVAL)) {
            try HostThread.start(name: "tiny", stackSize: 1) {}
        }
    }
}

@Suite struct RecursiveLockTests {
    final class Counter: @unchecked Sendable {
        // @unchecked: `value` is guarded by `lock`, which is what this test checks.
        let lock = RecursiveLock()
        var value = 0
    }

    @Test func reentersOnOneThreadAndExcludesOthers() throws {
        let counter = Counter()
        let finished = Atomic<Int>(0)
        let threads = 4, rounds = 20_000
        for i in 0..<threads {
            try HostThread.start(name: "lock\(i)") {
                for _ in 0..<rounds {
                    counter.lock.lock()
                    counter.lock.lock()                          // re-entered, as a transaction does
                    counter.value += 1
                    counter.lock.unlock()
                    counter.value += 1
                    counter.lock.unlock()
                }
                finished.add(1, ordering: .releasing)
            }
        }
        #expect(pollUntil(timeout: .seconds(60)) { finished.load(ordering: .acquiring) == threads })
        counter.lock.lock()
        #expect(counter.value == 2 * threads * rounds)
        counter.lock.unlock()
    }
}

@Suite struct SocketAndMappingTests {
    @Test func aUnixSocketCarriesBytesBothWays() throws {
        let path = "/tmp/vmm-socket-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let listener = try SocketListener(.unix(path))
        let client = try SocketConnection(connectingTo: .unix(path))
        let server = try listener.accept()
        #expect(client.write(Array("ping".utf8)))
        #expect(try server.read() == Array("ping".utf8))
        #expect(server.write([0, 1, 2]))
        #expect(try client.read(maxBytes: 3) == [0, 1, 2])
        client.shutdown()
        #expect(try server.read() == [])                          // the peer closed
    }

    @Test func aUnixPathTooLongIsRefusedByName() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        #expect(throws: SystemError(operation: "bind", arguments: "unix:\(path) (path too long)", code: .fileNameTooLong)) {
            _ = try SocketListener(.unix(path))
        }
    }

    @Test func guestRAMIsAlignedToHugePages() throws {
        let ram = try MappedMemory(guestRAM: 4 << 20)
        #expect(ram.hostAddress % (2 << 20) == 0)
        #expect(ram.length == 4 << 20)
    }

    @Test func clocksAreTheKernels() {
        let a = HostClock.monotonicNanoseconds()
        let b = HostClock.monotonicNanoseconds()
        #expect(b >= a)
        let now = HostClock.realtime()
        #expect(now.seconds > 1_577_836_800)                      // after 2020-01-01
        #expect((0..<1_000_000_000).contains(now.nanoseconds))
    }

    @Test func entropyFillsTheRequestedBytes() throws {
        var bytes = [UInt8](repeating: 0, count: 80)
        try Entropy.fill(&bytes, count: 64)
        #expect(bytes[64...].allSatisfy { $0 == 0 })              // nothing past `count`
        #expect(bytes[..<64].contains { $0 != 0 })                // 2^-512 to fail by chance
    }
}
