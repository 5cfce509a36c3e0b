import KVM
import Machine

/// The no-argument job: the bundled doorbell guest over every doorbell path.
enum MainJob {
    static func run(writes: UInt64, json: Bool) throws {
        let machine = try DoorbellMachine()
        let results = try DoorbellBenchmark.run(writes: writes, machine: machine)
        if json {
            print(DoorbellBenchmark.json(results))
        } else {
            print("doorbell guest: \(writes) writes per path (fast MMIO: \(machine.accelerator.anyLengthIoeventfds ? "yes" : "no"))")
            print(DoorbellBenchmark.table(results))
        }
    }
}
