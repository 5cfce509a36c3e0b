/// The version `vmm -version` prints.
public enum VMMVersion {
    /// This release of vmm and its library products: what `vmm --version` prints and QMP's
    /// query-version reports as its `package`.
    public static let current = "0.15.0"
    /// The QEMU release whose command line, QMP and device behaviour vmm follows.
    public static let qemuCompatibility = "7.2"
}
