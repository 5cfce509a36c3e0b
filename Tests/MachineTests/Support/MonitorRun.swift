import Foundation
import Synchronization

/// A VMM process (vmm or QEMU, the same command line) driven through its human monitor on
/// standard input/output, with the guest's serial console in a file: the test waits for a line
/// from the guest, then asks the monitor. Every wait polls for its condition against a
/// generous deadline (no sleeps as synchronization).
final class MonitorRun {
    let process = Process()
    private let input = Pipe()
    private final class Text: Sendable { let value = Mutex("") }
    private let text = Text()
    private let readerDone = DispatchSemaphore(value: 0)
    let serialPath: String
    let deadline: Date

    /// Starts `executable` with `arguments` plus `-serial file:… -monitor stdio`.
    init(executable: String, arguments: [String], deadlineSeconds: TimeInterval = 120) throws {
        serialPath = FileManager.default.temporaryDirectory
            .appendingPathComponent("monitor-serial-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).txt").path
        deadline = Date().addingTimeInterval(deadlineSeconds)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments + ["-serial", "file:\(serialPath)", "-monitor", "stdio"]
        let out = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = out
        let reader = out.fileHandleForReading
        let text = self.text, done = readerDone
        Thread {
            while true {
                let d = reader.availableData
                if d.isEmpty { break }
                text.value.withLock { $0 += String(decoding: d, as: UTF8.self) }
            }
            done.signal()
        }.start()
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(atPath: serialPath)
    }

    /// The monitor's output so far (stdout and stderr).
    var output: String { text.value.withLock { $0 } }

    /// The guest's serial output so far.
    var serial: String { (try? String(contentsOfFile: serialPath, encoding: .utf8)) ?? "" }

    /// Polls until `condition` holds, the process exits or the deadline passes.
    private func poll(_ condition: () -> Bool) -> Bool {
        while !condition() {
            if !process.isRunning || Date() >= deadline { return condition() }
            usleep(2000)
        }
        return true
    }

    /// Waits until the serial console has printed `line`.
    func waitForSerial(_ line: String) -> Bool { poll { serial.contains(line) } }

    /// Sends one monitor command and returns what the monitor printed until its next prompt.
    func command(_ line: String) -> String {
        let before = output
        let prompts = before.components(separatedBy: "(qemu)").count
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        _ = poll { output.components(separatedBy: "(qemu)").count > prompts }
        return String(output.dropFirst(before.count))
    }

    /// Sends `quit` and waits for the process to end; returns its exit status (nil if it had
    /// to be killed).
    func quit() -> Int32? {
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        let ended = poll { !process.isRunning }
        if !ended { process.terminate() }
        process.waitUntilExit()
        _ = readerDone.wait(timeout: .now() + 10)
        return ended ? process.terminationStatus : nil
    }

    /// The ranges of address space `name`'s flat view in `info mtree -f` output, as printed
    /// (carriage returns and QEMU's " KVM" slot marker dropped).
    static func flatView(_ name: String, in output: String) -> [String] {
        let lines = output.replacingOccurrences(of: "\r", with: "").split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let header = lines.firstIndex(where: { $0.hasPrefix(" AS \"\(name)\"") }) else { return [] }
        let rest = lines[(header + 1)...].drop { !$0.hasPrefix("  ") }
        return rest.prefix { $0.hasPrefix("  ") }.map { $0.hasSuffix(" KVM") ? String($0.dropLast(4)) : $0 }
    }
}
