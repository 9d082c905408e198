//! The step cache (issue 17, LANGUAGE.md section 9): the parts that do not
//! depend on the pipeline's syntax, built first so the runner and the worker
//! can share them.
//!
//! - [`key`]: the key of a step's result, a sha256 over everything the
//!   result depends on, with a format version, and a readable form that
//!   never holds a secret's value;
//! - [`store`]: a minimal content store shaped like the one of issue 14
//!   (blobs by sha256 digest, small records by key) under a directory, to be
//!   joined with that store when it is merged.
//!
//! NOT YET WIRED: no `inputs` / `cache` syntax, no lookup in the scheduler,
//! no `--no-cache`, no `topsail cache`. See the closing note.

pub mod key;
pub mod store;
