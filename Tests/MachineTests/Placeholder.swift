// Tests for Machine.
