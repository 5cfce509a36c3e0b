import Testing
@testable import VMMSys

@Suite struct EpollTests {
    @Test func reportsSignalledNotifiersByToken() throws {
        let ep = try Epoll()
        let a = try EventNotifier(), b = try EventNotifier()
        try ep.add(a.fileDescriptor, token: 1)
        try ep.add(b.fileDescriptor, token: 2)
        #expect(try ep.wait(timeoutMilliseconds: 0).isEmpty)
        b.set()
        let ready = try ep.wait(timeoutMilliseconds: 100)
        #expect(ready.map(\.token) == [2])
        #expect(b.testAndClear() == 1)
        try ep.remove(b.fileDescriptor)
        b.set()
        a.set(3)
        #expect(try ep.wait(timeoutMilliseconds: 100).map(\.token) == [1])
        #expect(throws: SystemError.self) { try ep.remove(b.fileDescriptor) }
    }
}
