//! Integration tests: mount.
