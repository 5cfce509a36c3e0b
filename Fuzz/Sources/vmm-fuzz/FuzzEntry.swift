import FuzzTargets
import Foundation
import Logging

/// libFuzzer's entry points. The target is chosen by `VMM_FUZZ_TARGET` (Fuzz/run.sh sets it);
/// a failed check of the target is a crash, like a trap in the code under test.

nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let name = ProcessInfo.processInfo.environment["VMM_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: " ")
        FileHandle.standardError.write(Data("vmm-fuzz: set VMM_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    selected = target
    // Guest-triggered errors are logged by devices; the fuzzer triggers millions of them.
    LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try selected?.run(bytes)
    } catch {
        fatalError("\(error)")
    }
    return 0
}
