import Foundation
import ProcessSupport
import TestSupport
import Testing

/// README's library example is the file that is built, and it does what README says.
struct ExampleProgramTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The ```swift block after README's `<!-- example: Examples/Doorbell/main.swift -->` marker.
    static func readmeProgram() throws -> String {
        let readme = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        let marker = "<!-- example: Examples/Doorbell/main.swift -->\n```swift\n"
        let start = try #require(readme.range(of: marker), "README has the example marker")
        let end = try #require(readme.range(of: "\n```\n", range: start.upperBound..<readme.endIndex))
        return String(readme[start.upperBound..<end.lowerBound]) + "\n"
    }

    @Test func readmeShowsTheBuiltProgram() throws {
        let file = try String(contentsOf: Self.root.appendingPathComponent("Examples/Doorbell/main.swift"), encoding: .utf8)
        #expect(try Self.readmeProgram() == file)
        #expect(file.split(separator: "\n").count <= 26, "about 20 lines")
    }

    @Test(.enabled(if: TestHost.kvmAvailable, "requires read/write access to /dev/kvm"))
    func runsAndEveryDoorbellStaysInTheKernel() throws {
        let vmm = try #require(TestHost.vmmPath)
        let example = URL(fileURLWithPath: vmm).deletingLastPathComponent().appendingPathComponent("doorbell-example").path
        #expect(FileManager.default.isExecutableFile(atPath: example), "built next to vmm")
        let run = try ChildProcess.run([example], timeoutSeconds: 60)
        #expect(run.status == 0)
        #expect(run.output == "halted: 1000 doorbells, 0 port I/O exits\n", "\(run.output)")
    }
}
