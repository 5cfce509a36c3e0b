/// The version `vmm -version` prints.
public enum VMMVersion {
    public static let current = "0.15.0"
    /// The QEMU release whose command line, QMP and device behaviour vmm follows.
    public static let qemuCompatibility = "7.2"
}
