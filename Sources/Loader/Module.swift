// Module Loader.
