// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]
/// For modules that hold unsafe code: every unsafe site is marked `unsafe` with a `// SAFETY:` note.
let strictUnsafe: [SwiftSetting] = strict + [.strictMemorySafety()]

let package = Package(
    name: "swift-vmm",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "vmm", targets: ["vmm"]),
        // The library's stable surface (README: "Using the library").
        .library(name: "Memory", targets: ["Memory"]),
        .library(name: "KVM", targets: ["KVM"]),
        .library(name: "KVMAccel", targets: ["KVMAccel"]),
        .library(name: "VMMSys", targets: ["VMMSys"]),
        .library(name: "Machine", targets: ["Machine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // C shim: <linux/kvm.h>, <sys/eventfd.h>, fixed-arity ioctl wrappers. No logic.
        .target(name: "CKVM"),
        // Host primitives on swift-system: eventfd, epoll, mmap, threads, the I/O thread, errors.
        .target(
            name: "VMMSys",
            dependencies: [
                "CKVM", .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictUnsafe),
        // Safe Swift over /dev/kvm.
        .target(
            name: "KVM",
            dependencies: ["CKVM", "VMMSys", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strictUnsafe),
        // QEMU's memory API. Knows nothing of KVM.
        .target(
            name: "Memory",
            dependencies: ["VMMSys", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictUnsafe),
        // The KVM accelerator: listeners, irqfd, vCPU run loop.
        .target(
            name: "KVMAccel",
            dependencies: ["KVM", "Memory", "VMMSys", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictUnsafe),
        // Running other programs (posix_spawn + wait4) for the benchmarks and the tests; the
        // machine never links it.
        .target(name: "ProcessSupport", dependencies: ["CKVM", "VMMSys"], swiftSettings: strictUnsafe),
        // Device models, wired only through the memory API.
        .target(
            name: "Devices",
            dependencies: ["Memory", "VMMSys", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictUnsafe),
        // Virtio devices over PCI, their virtqueues and the I/O thread that serves them.
        .target(
            name: "VirtIO",
            dependencies: ["Devices", "Memory", "VMMSys", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictUnsafe),
        // Boot loaders (Multiboot, Linux boot protocol) and firmware tables (ACPI).
        .target(name: "Loader", dependencies: ["Memory", "VMMSys"], swiftSettings: strictUnsafe),
        // QMP, QEMU's machine protocol: JSON, the protocol state machine, commands and events.
        .target(name: "QMP", dependencies: ["VMMSys"], swiftSettings: strictUnsafe),
        // The PC machine.
        .target(
            name: "Machine",
            dependencies: [
                "KVM", "KVMAccel", "Memory", "Devices", "VirtIO", "Loader", "VMMSys", "QMP",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictUnsafe),
        .executableTarget(
            name: "vmm",
            dependencies: [
                "Machine", "Memory", "KVM", "KVMAccel", "Devices", "Loader", "VMMSys", "ProcessSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictUnsafe,
            // The release binary carries the Swift runtime and standard library itself: no
            // shared Swift libraries to map and relocate at start-up (README: start-up figures).
            linkerSettings: [.unsafeFlags(["-static-executable", "-l_FoundationCollections", "-l_FoundationCShims", "-use-ld=lld"],
                                          .when(configuration: .release))]),
        // README's library example, built and run by ExampleProgramTests.
        .executableTarget(
            name: "doorbell-example", dependencies: ["KVM", "Machine", "Memory", "VMMSys"],
            path: "Examples/Doorbell", swiftSettings: strict),
        // What several test targets share: host checks (KVM, toolchain, QEMU, the built vmm),
        // polling against a deadline, IRQ recorders, a test bus, a seeded generator.
        .target(
            name: "TestSupport",
            dependencies: ["Devices", "Memory", "ProcessSupport"],
            path: "Tests/TestSupport",
            swiftSettings: strict),
        .testTarget(name: "QMPTests", dependencies: ["QMP", "VMMSys"], swiftSettings: strict),
        .testTarget(name: "VMMSysTests", dependencies: ["VMMSys", "ProcessSupport", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "MemoryTests", dependencies: ["Memory", "MemoryOracle", "VMMSys", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "KVMTests", dependencies: ["KVM", "VMMSys", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "KVMAccelTests", dependencies: ["KVMAccel", "KVM", "Memory", "VMMSys", "Machine", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "Memory", "VMMSys", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "VirtIOTests", dependencies: ["VirtIO", "Devices", "Memory", "VMMSys", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "LoaderTests", dependencies: ["Loader", "Memory", "VMMSys"], swiftSettings: strict),
        // The naive flat-view oracle, shared by MemoryTests and the memory-dispatch fuzz target.
        .target(name: "MemoryOracle", dependencies: ["Memory"], path: "Fuzz/Sources/MemoryOracle", swiftSettings: strict),
        // One function per fuzz target, always built: libFuzzer (Fuzz/run.sh) and the corpus
        // replay tests run the same code.
        .target(
            name: "FuzzTargets",
            dependencies: ["Memory", "MemoryOracle", "Devices", "VirtIO", "Loader", "Machine", "VMMSys", "QMP",
                           .product(name: "SystemPackage", package: "swift-system")],
            path: "Fuzz/Sources/FuzzTargets", swiftSettings: strict),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets", "Loader", "Machine", "Memory", "VirtIO"], swiftSettings: strict),
        .testTarget(
            name: "MachineTests",
            dependencies: ["Machine", "KVMAccel", "KVM", "Memory", "Devices", "Loader", "VMMSys", "ProcessSupport", "TestSupport"],
            swiftSettings: strict),
    ]
)

// The libFuzzer driver, only when building for fuzzing (`VMM_FUZZ=1`, see Fuzz/run.sh): its
// entry points need `-sanitize=fuzzer`, which an ordinary build must not link.
if Context.environment["VMM_FUZZ"] != nil {
    package.products.append(.executable(name: "vmm-fuzz", targets: ["vmm-fuzz"]))
    package.targets.append(.executableTarget(
        name: "vmm-fuzz",
        dependencies: ["FuzzTargets", .product(name: "Logging", package: "swift-log")],
        path: "Fuzz/Sources/vmm-fuzz",
        swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]))
}
