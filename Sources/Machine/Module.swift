// Module Machine.
