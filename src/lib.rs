//! topsail: a pipeline language, checked like a compiler, run locally or on
//! AWS Step Functions.
//!
//! Data flows one way: text -> [`syntax`] (AST) -> [`check`] (the checked
//! [`model`]) -> a back end ([`run`], [`asl`], [`graph`]). Under them all,
//! [`source`] (files, spans, line index) and [`diagnostics`]. No module
//! reaches back up (`tests/layers.rs` checks it); the CLI in [`cli`] only
//! wires them together.

// First: its `outln!` / `errln!` are used by every module below.
#[macro_use]
mod out;

pub mod asl;
pub mod cache;
pub mod check;
pub mod cli;
pub mod diagnostics;
pub mod graph;
pub mod iam;
pub mod lsp;
pub mod model;
pub mod run;
pub mod sfn;
pub mod source;
pub mod stdlib;
pub mod syntax;
