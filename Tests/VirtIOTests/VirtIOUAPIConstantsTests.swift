import CVirtIO
import Foundation
import Testing
@testable import VirtIO

/// The virtio constants the devices take from the kernel's uapi headers (through CVirtIO),
/// pinned to the numbers of the virtio 1.x specification: if a header on some host ever said
/// otherwise, the devices would speak another protocol, and this fails first. Each expectation
/// reads the value the device code uses (its statics), not the header macro again, wherever
/// the code keeps one.
@Suite struct VirtIOUAPIConstantsTests {
    /// §2.1 status, §6 reserved feature bits, §4.1.4 virtio-pci. VIRTIO_MSI_NO_VECTOR and the
    /// ISR bits.
    @Test func transport() {
        #expect(VirtIOPCI.statusDriverOK == 4 && VirtIOPCI.statusFeaturesOK == 8 && VirtIOPCI.statusNeedsReset == 0x40)
        #expect(VirtIOPCI.versionOne == 1 << 32 && VirtIOPCI.indirectDesc == 1 << 28 && VirtIOPCI.eventIdx == 1 << 29)
        #expect(VirtIOPCI.noVector == 0xffff)
        #expect(VirtIOPCI.isrQueue == 1 && VirtIOPCI.isrConfig == 2)
        // §4.1.2: the transitional PCI device IDs, and 0x1040 + ID for the others.
        #expect(VirtIOPCI.transitionalDeviceIDs == [1: 0x1000, 2: 0x1001, 5: 0x1002, 3: 0x1003, 8: 0x1004, 4: 0x1005, 9: 0x1009])
        #expect(VirtIOPCI.pciVendorID == 0x1af4 && VirtIOPCI.modernDeviceIDBase == 0x1040)
    }

    /// §4.1.4: cfg_type numbers, struct virtio_pci_cap / _notify_cap / _cfg_cap, byte for byte
    /// as the device adds them (vendor capability 0x09, BAR 4, 4 KiB structures).
    @Test func pciCapabilities() {
        #expect([VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_CAP_ISR_CFG,
                 VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_PCI_CFG] == [1, 2, 3, 4, 5])
        #expect(PCI_CAP_ID_VNDR == 0x09)
        #expect(VirtIOPCI.structureCapability(VIRTIO_PCI_CAP_ISR_CFG, at: 0x1000)
                == [0x09, 0, 16, 3, 4, 0, 0, 0, 0x00, 0x10, 0, 0, 0x00, 0x10, 0, 0])
        #expect(VirtIOPCI.structureCapability(VIRTIO_PCI_CAP_NOTIFY_CFG, at: 0x3000, notifyMultiplier: 4)
                == [0x09, 0, 20, 2, 4, 0, 0, 0, 0x00, 0x30, 0, 0, 0x00, 0x10, 0, 0, 4, 0, 0, 0])
        #expect(VirtIOPCI.pciCfgType == 5 && VirtIOPCI.pciCfgBarField == 4 && VirtIOPCI.pciCfgOffsetField == 8)
        #expect(VirtIOPCI.pciCfgLengthField == 12 && VirtIOPCI.pciCfgDataField == 16 && VirtIOPCI.pciCfgLength == 20)
        #expect(VirtIOPCI.pciCfgCapability().bytes == [0x09, 0, 20, 5] + [UInt8](repeating: 0, count: 16))
    }

    /// §4.1.4.3: struct virtio_pci_common_cfg, the offsets the common-configuration switch uses.
    @Test func commonConfigurationLayout() {
        let offsets = [VIRTIO_PCI_COMMON_DFSELECT, VIRTIO_PCI_COMMON_DF, VIRTIO_PCI_COMMON_GFSELECT, VIRTIO_PCI_COMMON_GF,
                       VIRTIO_PCI_COMMON_MSIX, VIRTIO_PCI_COMMON_NUMQ, VIRTIO_PCI_COMMON_STATUS,
                       VIRTIO_PCI_COMMON_CFGGENERATION, VIRTIO_PCI_COMMON_Q_SELECT, VIRTIO_PCI_COMMON_Q_SIZE,
                       VIRTIO_PCI_COMMON_Q_MSIX, VIRTIO_PCI_COMMON_Q_ENABLE, VIRTIO_PCI_COMMON_Q_NOFF,
                       VIRTIO_PCI_COMMON_Q_DESCLO, VIRTIO_PCI_COMMON_Q_DESCHI, VIRTIO_PCI_COMMON_Q_AVAILLO,
                       VIRTIO_PCI_COMMON_Q_AVAILHI, VIRTIO_PCI_COMMON_Q_USEDLO, VIRTIO_PCI_COMMON_Q_USEDHI]
        #expect(offsets == [0x00, 0x04, 0x08, 0x0c, 0x10, 0x12, 0x14, 0x15, 0x16, 0x18, 0x1a, 0x1c, 0x1e,
                            0x20, 0x24, 0x28, 0x2c, 0x30, 0x34])
    }

    /// §2.7: descriptor flags, ring flags, and the split rings' byte layout.
    @Test func splitVirtqueue() {
        #expect(VirtQueue.descNext == 1 && VirtQueue.descWrite == 2 && VirtQueue.descIndirect == 4)
        #expect(VirtQueue.availNoInterrupt == 1 && VirtQueue.usedNoNotify == 1)
        #expect(VirtQueue.descriptorSize == 16 && VirtQueue.descLength == 8)
        #expect(VirtQueue.descFlagsShift == 32 && VirtQueue.descNextShift == 48)
        #expect(VirtQueue.availFlags == 0 && VirtQueue.availIndex == 2 && VirtQueue.availRing == 4 && VirtQueue.availEntrySize == 2)
        #expect(VirtQueue.usedFlags == 0 && VirtQueue.usedIndex == 2 && VirtQueue.usedRing == 4)
        #expect(VirtQueue.usedEntrySize == 8 && VirtQueue.usedEntryLength == 4 && VirtQueue.eventSize == 2)
        // desc 16n, avail 6 + 2n, used 6 + 8n (EVENT_IDX trailers included).
        #expect(VirtQueue.ringSizes(256) == (4096, 518, 2054))
    }

    /// §5.2: virtio-blk feature bits, request types and status, and the configuration layout.
    @Test func block() {
        #expect(VirtIOBlock.featureSegMax == 1 << 2 && VirtIOBlock.featureGeometry == 1 << 4 && VirtIOBlock.featureRO == 1 << 5)
        #expect(VirtIOBlock.featureBlkSize == 1 << 6 && VirtIOBlock.featureFlush == 1 << 9 && VirtIOBlock.featureTopology == 1 << 10)
        #expect(VirtIOBlock.featureConfigWCE == 1 << 11 && VirtIOBlock.featureDiscard == 1 << 13)
        #expect(VirtIOBlock.featureWriteZeroes == 1 << 14)
        #expect([VirtIOBlock.typeIn, VirtIOBlock.typeOut, VirtIOBlock.typeFlush, VirtIOBlock.typeGetID,
                  VirtIOBlock.typeDiscard, VirtIOBlock.typeWriteZeroes, VirtIOBlock.typeBarrier] == [0, 1, 4, 8, 11, 13, 0x8000_0000])
        #expect(VirtIOBlock.writeZeroesUnmap == 1)
        #expect(VirtIOBlock.statusOK == 0 && VirtIOBlock.statusIOErr == 1 && VirtIOBlock.statusUnsupported == 2)
        #expect(VirtIOBlock.idBytes == 20 && VirtIOBlock.headerBytes == 16 && VirtIOBlock.segmentBytes == 16)
        #expect([CVIRTIO_BLK_OUTHDR_TYPE, CVIRTIO_BLK_OUTHDR_SECTOR] as [Int] == [0, 8])
        #expect([CVIRTIO_BLK_SEGMENT_SECTOR, CVIRTIO_BLK_SEGMENT_NUM_SECTORS, CVIRTIO_BLK_SEGMENT_FLAGS] as [Int] == [0, 8, 12])
        let config = [CVIRTIO_BLK_CFG_CAPACITY, CVIRTIO_BLK_CFG_SEG_MAX, CVIRTIO_BLK_CFG_CYLINDERS, CVIRTIO_BLK_CFG_HEADS,
                      CVIRTIO_BLK_CFG_SECTORS, CVIRTIO_BLK_CFG_BLK_SIZE, CVIRTIO_BLK_CFG_WCE, CVIRTIO_BLK_CFG_NUM_QUEUES,
                      CVIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, CVIRTIO_BLK_CFG_MAX_DISCARD_SEG, CVIRTIO_BLK_CFG_DISCARD_ALIGNMENT,
                      CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SECTORS, CVIRTIO_BLK_CFG_MAX_WRITE_ZEROES_SEG,
                      CVIRTIO_BLK_CFG_WRITE_ZEROES_MAY_UNMAP, CVIRTIO_BLK_CFG_SIZE_THROUGH_WRITE_ZEROES]
        #expect(config == [0, 12, 16, 18, 19, 20, 32, 34, 36, 40, 44, 48, 52, 56, 60])
    }

    /// §5.1: virtio-net feature bits, status bits, headers, configuration and control queue.
    @Test func net() {
        let bits: [(UInt64, Int)] = [
            (VirtIONetFeature.csum, 0), (VirtIONetFeature.guestCsum, 1), (VirtIONetFeature.ctrlGuestOffloads, 2),
            (VirtIONetFeature.mac, 5), (VirtIONetFeature.guestTSO4, 7), (VirtIONetFeature.guestTSO6, 8),
            (VirtIONetFeature.guestECN, 9), (VirtIONetFeature.guestUFO, 10), (VirtIONetFeature.hostTSO4, 11),
            (VirtIONetFeature.hostTSO6, 12), (VirtIONetFeature.hostECN, 13), (VirtIONetFeature.hostUFO, 14),
            (VirtIONetFeature.mrgRxBuf, 15), (VirtIONetFeature.status, 16), (VirtIONetFeature.ctrlVQ, 17),
            (VirtIONetFeature.ctrlRx, 18), (VirtIONetFeature.ctrlVLAN, 19), (VirtIONetFeature.ctrlRxExtra, 20),
            (VirtIONetFeature.guestAnnounce, 21), (VirtIONetFeature.mq, 22), (VirtIONetFeature.ctrlMACAddr, 23),
        ]
        for (mask, bit) in bits { #expect(mask == UInt64(1) << bit, "bit \(bit)") }
        #expect(VirtIONet.statusLinkUp == 1 && VirtIONet.statusAnnounce == 2)
        #expect(VirtIONet.headerSize == 12 && VirtIONet.tapHeaderSize == 10 && VirtIONet.numBuffersOffset == 10)
        #expect([CVIRTIO_NET_CFG_MAC, CVIRTIO_NET_CFG_STATUS, CVIRTIO_NET_CFG_MAX_VQ_PAIRS, CVIRTIO_NET_CFG_MTU] as [Int] == [0, 6, 8, 10])
        #expect(VirtIONetControl.headerSize == 2 && VirtIONetControl.ok == 0 && VirtIONetControl.err == 1)
        #expect([VirtIONetControl.classRx, VirtIONetControl.classMAC, VirtIONetControl.classVLAN, VirtIONetControl.classAnnounce,
                 VirtIONetControl.classMQ, VirtIONetControl.classGuestOffloads] == [0, 1, 2, 3, 4, 5])
        #expect([VirtIONetControl.rxPromisc, VirtIONetControl.rxAllMulti, VirtIONetControl.rxAllUni, VirtIONetControl.rxNoMulti,
                 VirtIONetControl.rxNoUni, VirtIONetControl.rxNoBroadcast] == [0, 1, 2, 3, 4, 5])
        #expect(VirtIONetControl.macTableSet == 0 && VirtIONetControl.macAddrSet == 1)
        #expect(VirtIONetControl.vlanAdd == 0 && VirtIONetControl.vlanDel == 1 && VirtIONetControl.announceAck == 0)
        #expect(VirtIONetControl.mqPairsSet == 0 && VirtIONetControl.guestOffloadsSet == 0)
        #expect(VirtIONetControl.pairsMin == 1 && VirtIONetControl.pairsMax == 0x8000)
    }

    /// §5.3: virtio-console feature bits, control events and layouts.
    @Test func console() {
        #expect(VirtIOSerial.featureMultiport == 1 << 1 && VirtIOSerial.featureEmergencyWrite == 1 << 2)
        #expect(VirtIOSerial.Event.allCases.map(\.rawValue) == [0, 1, 2, 3, 4, 5, 6, 7])
        #expect(VirtIOSerial.controlMessageSize == 8)
        #expect([CVIRTIO_CONSOLE_CONTROL_ID, CVIRTIO_CONSOLE_CONTROL_EVENT, CVIRTIO_CONSOLE_CONTROL_VALUE] as [Int] == [0, 4, 6])
        #expect([CVIRTIO_CONSOLE_CFG_COLS, CVIRTIO_CONSOLE_CFG_ROWS, CVIRTIO_CONSOLE_CFG_MAX_NR_PORTS,
                 CVIRTIO_CONSOLE_CFG_EMERG_WR, CVIRTIO_CONSOLE_CFG_SIZE] as [Int] == [0, 2, 4, 8, 12])
    }

    /// §5: device IDs, as each device reports it.
    @Test func deviceIDs() throws {
        #expect(try VirtIONet(mac: .qemuDefault(index: 0), backend: nil).deviceType == 1)
        #expect(try VirtIOSerial().deviceType == 3)
        #expect(VirtIORNG().deviceType == 4)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("uapi-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).img").path
        try Data(count: 512).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try VirtIOBlock(path: path, readOnly: true).deviceType == 2)
    }
}
