//! Integration tests: drive the real binary against fixture files.
