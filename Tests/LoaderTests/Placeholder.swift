// Tests for Loader.
