import Logging

/// The memory API's logger (errors a caller made that QEMU would assert on are logged here).
let memoryLogger = Logger(label: "vmm.memory")
