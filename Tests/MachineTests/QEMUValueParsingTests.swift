import Testing
@testable import Machine

@Suite struct QEMUValueParsingTests {
    static let sizes: [(String, UInt64)] = [
        ("256", 256 << 20), ("256M", 256 << 20), ("256m", 256 << 20), ("2G", 2 << 30),
        ("1.5G", 3 << 29), ("1024K", 1 << 20), ("size=512M", 512 << 20), ("128M,slots=2,maxmem=1G", 128 << 20),
        ("0x100", 256 << 20), ("1T", 1 << 40),
    ]

    @Test(arguments: sizes)
    func memorySizes(text: String, bytes: UInt64) throws {
        #expect(try QEMUValueParsing.memorySize(text) == bytes)
    }

    @Test(arguments: ["", "M", "12q", "-5", "1.2.3", "1000000000000000000000", "512K", "2T", "abc", "1.G"])
    func badMemorySizes(text: String) {
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.memorySize(text) }
    }

    @Test func smp() throws {
        #expect(try QEMUValueParsing.smp("4") == (4, 4))
        #expect(try QEMUValueParsing.smp("2,maxcpus=8") == (2, 8))
        #expect(try QEMUValueParsing.smp("cpus=3") == (3, 3))
        #expect(try QEMUValueParsing.smp("sockets=2,cores=2,threads=2") == (8, 8))
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("0") }
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("4,maxcpus=2") }
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("x") }
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("2,bogus=1") }
    }

    /// Values that overflow or make no sense: one `ConfigurationError`, never a trap (the
    /// topology product used to multiply unchecked).
    @Test(arguments: ["sockets=4294967296,cores=4294967296,threads=4294967296", "sockets=9223372036854775807,cores=2",
                      "sockets=-1,cores=-1", "cpus=0", "2,maxcpus=0", "4,sockets=0", "-1", "100000",
                      "99999999999999999999", "maxcpus=9223372036854775807", "cpus=", "=4", ",", ""])
    func hostileSMP(_ text: String) {
        #expect(throws: ConfigurationError.self, "\(text)") { try QEMUValueParsing.smp(text) }
    }

    @Test func smpErrorsNameTheParameter() {
        let e = #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("8,sockets=0") }
        #expect(e?.message == "-smp: sockets=0: CPU topology parameters must be greater than zero")
        let big = #expect(throws: ConfigurationError.self) { try QEMUValueParsing.smp("sockets=65536,cores=65536,threads=65536,dies=65536,clusters=65536") }
        #expect(big?.message.hasPrefix("-smp: CPU count") == true, "\(big?.message ?? "")")
    }

    @Test(arguments: ["99999999999T", "16E", "15E", "1.9999E", "0xffffffffffffffffM", "0x10000000000000000",
                      "18446744073709551615", "18446744073709551616", "1.5E", ".", "0x", "1..5G", "+-1", "1G,size=", "size"])
    func hostileMemorySizes(_ text: String) {
        #expect(throws: ConfigurationError.self, "\(text)") { try QEMUValueParsing.memorySize(text) }
    }

    @Test(arguments: ["isa-debug-exit,iobase=0xffffffffffffffff", "isa-debug-exit,iobase=18446744073709551616",
                      "isa-debug-exit,iosize=0xffffffffffffffff", "isa-debug-exit,iosize=4294967296",
                      "isa-debug-exit,iobase=0x", "isa-debug-exit,iobase=09", "isa-debug-exit,iobase=0xffff,iosize=2",
                      "isa-debug-exit,iobase=-1"])
    func hostileDeviceProperties(_ text: String) {
        #expect(throws: ConfigurationError.self, "\(text)") { try MachineConfiguration(qemu: QEMUArguments(device: [text])) }
    }

    @Test func keyValuesHonourDoubledCommas() {
        let kv = QEMUValueParsing.keyValues("pc,accel=kvm,name=a,,b,flag", impliedKey: "type")
        #expect(kv.map(\.key) == ["type", "accel", "name", "flag"])
        #expect(kv.map(\.value) == ["pc", "kvm", "a,b", "on"])
    }

    @Test func devices() throws {
        let exit = try MachineConfiguration.device("isa-debug-exit,iobase=0xf4,iosize=0x4")
        #expect(exit.driver == "isa-debug-exit" && exit.unsigned("iobase") == 0xf4 && exit.unsigned("iosize") == 4)
        let defaults = try MachineConfiguration.device("isa-debug-exit")
        #expect(defaults.unsigned("iobase") == 0x501 && defaults.unsigned("iosize") == 2)
        #expect(try MachineConfiguration.device("pc-testdev").values.isEmpty)
        #expect(try MachineConfiguration.device("pci-testdev,id=t0").id == "t0")
        for bad in ["e1000", "isa-debug-exit,iobase=0x10000", "isa-debug-exit,iosize=0", "pc-testdev,foo=1",
                    "isa-debug-exit,iobase=0xfffe,iosize=4", ",iobase=1"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try MachineConfiguration(qemu: QEMUArguments(device: [bad])) }
        }
    }

    @Test func serial() throws {
        #expect(try QEMUValueParsing.serial("stdio") == .stdio)
        #expect(try QEMUValueParsing.serial("file:/tmp/x") == .file("/tmp/x"))
        #expect(try QEMUValueParsing.serial("none") == nil)
        #expect(try QEMUValueParsing.serial("null") == .null)
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.serial("tcp::4444") }
        #expect(throws: ConfigurationError.self) { try QEMUValueParsing.serial("file:") }
    }
}

@Suite struct PCMemoryLayoutTests {
    @Test func smallRAMIsAllBelow4G() {
        let l = PCMemoryLayout(ramSize: 128 << 20)
        #expect(l.below4G == 128 << 20 && l.above4G == 0)
        #expect(l.memoryMap.first == .init(base: 0, length: 0x9fc00, kind: .usable))
        #expect(l.memoryMap.contains(.init(base: 0x100000, length: (128 << 20) - 0x100000 - 0x20000, kind: .usable)))
        #expect(l.memoryMap.contains(.init(base: (128 << 20) - 0x20000, length: 0x20000, kind: .reserved)))
    }

    @Test func largeRAMSplitsAtPCIHole() {
        let l = PCMemoryLayout(ramSize: 3 << 30)
        #expect(l.below4G == 3 << 30 && l.above4G == 0)
        let m = PCMemoryLayout(ramSize: 4 << 30)
        #expect(m.below4G == 0xc000_0000 && m.above4G == 1 << 30)
        #expect(m.memoryMap.last == .init(base: 1 << 32, length: 1 << 30, kind: .usable))
        let usable = m.memoryMap.filter { $0.kind == .usable }.map(\.length).reduce(0, +)
        #expect(usable == (4 << 30) - 0x100000 - 0x20000 + 0x9fc00)
    }
}
