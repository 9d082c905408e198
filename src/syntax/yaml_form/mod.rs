//! The YAML form: YAML text -> the same [`Module`] the `.topsail`
//! parser builds (LANGUAGE.md section 8), with a byte span on every node.
//! The text is read once into the bounded tree of [`crate::syntax::yaml_tree`];
//! this module reads the pipeline's shape off that tree.
//!
//! Top-level keys starting with `x-` are ignored (the docker-compose
//! convention), so shared defaults can be written once with an anchor
//! (`x-rust: &rust {image: rust:1.80}`) and merged into steps (`<<: *rust`).
//!
//! This module only checks *shape* (which keys, maps, lists and scalars go
//! where) and name syntax; meaning (types, references, the DAG) is the
//! checker's job. Every problem becomes a diagnostic; no input panics.
//!
//! One job a file: `items.rs` the top level (params, imports, templates,
//! steps), `directives.rs` a step's keys, `maps.rs` reading maps (merge keys,
//! repeated keys, fixed fields), `scalars.rs` names and values, `text.rs`
//! strings with `{{ }}` holes mapped back onto the source, and `wording.rs`
//! the shape errors' wording.

mod directives;
mod items;
mod maps;
mod scalars;
mod text;
mod wording;

use std::collections::HashSet;

use crate::diagnostics::Diagnostic;
use crate::source::{FileId, SourceMap};
use crate::syntax::ast::{Keyword, Module};
use crate::syntax::yaml_tree::{self, Positions, Tree};

const TOP_KEYS: &[&str] = &[
    "pipeline",
    "params",
    "secrets",
    "image",
    "queue",
    "env",
    "imports",
    "templates",
    "steps",
];
/// The keys of a step or template body: the key that only that kind of body
/// has (`needs` for a step, `params` for a template), then one per directive.
/// Wanted only to word an unknown key, so built then.
fn body_keys(first: &'static str) -> Vec<&'static str> {
    std::iter::once(first)
        .chain(Keyword::ALL.into_iter().map(Keyword::yaml_key))
        .collect()
}
const PARAM_KEYS: &[&str] = &["type", "default"];
const RETRY_KEYS: &[&str] = &["attempts", "every", "backoff"];
const FOREACH_KEYS: &[&str] = &["var", "in"];
const USE_KEYS: &[&str] = &["template", "with"];
const AWS_KEYS: &[&str] = &["role"];
const IMPORT_KEYS: &[&str] = &["path", "as"];

/// Parse the YAML file `file` of `sources`.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<Module>, Vec<Diagnostic>) {
    parse_str(&sources.get(file).text, file)
}

/// Parse YAML text that is file `file`. `None` only when the YAML itself is
/// unreadable (a syntax error); shape errors still give a partial module.
pub fn parse_str(text: &str, file: FileId) -> (Option<Module>, Vec<Diagnostic>) {
    parse_tree(text, yaml_tree::read(text, file))
}

/// The pipeline a [`Tree`] of `text` holds.
pub(crate) fn parse_tree(text: &str, tree: Tree) -> (Option<Module>, Vec<Diagnostic>) {
    let Tree {
        pos,
        root,
        mut diags,
    } = tree;
    let Ok(root) = root else {
        return (None, diags);
    };
    let mut cx = Cx {
        text,
        pos: &pos,
        diags: Vec::new(),
        reported: HashSet::new(),
    };
    let module = cx.module(root.as_ref());
    diags.append(&mut cx.diags);
    (Some(module), diags)
}

/// The reading of one tree: the source text (for exact spans) and what was
/// found wrong so far.
struct Cx<'a> {
    text: &'a str,
    pos: &'a Positions,
    diags: Vec<Diagnostic>,
    /// Repeated merge keys already reported (a map reached through several
    /// aliases is read several times, and reported once).
    reported: HashSet<usize>,
}

#[cfg(test)]
pub(crate) mod tests;
