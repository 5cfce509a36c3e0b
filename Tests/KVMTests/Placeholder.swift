// Tests for KVM.
