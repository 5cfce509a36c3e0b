// Tests for Devices.
