import Foundation
import TestSupport
import VMMSys

/// The test kernels under Guests/, built once per test process with the system's gcc/as/ld.
enum GuestKernels {
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Whether the toolchain to build them is present (`TestHost.toolchainAvailable`).
    static var toolchainAvailable: Bool { TestHost.toolchainAvailable }
    static let toolchainSkipReason = "needs gcc, as and ld to build the test kernels"

    /// The build directory, or the build's error output.
    static let built: Result<String, HarnessError> = {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("swift-vmm-kernels-\(getpid())").path
        do {
            let run = try ChildProcess.run(["/bin/sh", repositoryRoot.appendingPathComponent("Guests/build.sh").path, out],
                                           timeoutSeconds: 300)
            guard run.status == 0 else { return .failure(HarnessError("Guests/build.sh failed: \(run.output)")) }
            return .success(out)
        } catch {
            return .failure(HarnessError("Guests/build.sh: \(error)"))
        }
    }()

    /// A 1 MiB raw image of zeros for runs that need a drive but read nothing from it (attach
    /// it with readonly=on); created once per test process, next to the built kernels.
    static let scratchImage: String = {
        let dir = (try? built.get()) ?? FileManager.default.temporaryDirectory.path
        let path = dir + "/scratch-\(getpid()).img"
        _ = FileManager.default.createFile(atPath: path, contents: Data(count: 1 << 20))
        return path
    }()

    /// The path of kernel `name` (e.g. "hello" → OUT/hello.elf).
    static func path(_ name: String) throws -> String {
        try built.get() + "/\(name).elf"
    }
}
