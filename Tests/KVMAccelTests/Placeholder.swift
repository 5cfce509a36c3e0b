// Tests for KVMAccel.
