// Module KVMAccel.
