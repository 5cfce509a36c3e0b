// Module KVM.
