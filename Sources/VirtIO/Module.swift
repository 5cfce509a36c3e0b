// Module VirtIO.
