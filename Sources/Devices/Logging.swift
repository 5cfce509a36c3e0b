import Logging

/// The device models' logger (guest mistakes worth noting, configuration errors).
let devicesLogger = Logger(label: "vmm.devices")
