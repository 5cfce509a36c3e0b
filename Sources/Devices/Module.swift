// Module Devices.
