//! Integration tests: drive the real binary against fixture files, the way a
//! user would. One test binary (`autotests = false`), one module per area.

mod check;
mod common;
mod editors;
mod examples;
mod lsp;
