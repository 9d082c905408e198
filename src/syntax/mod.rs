//! Source text in, AST out. Two front ends produce the same [`ast::Module`]:
//! `.topsail` through the pest grammar in `grammar/topsail.pest`
//! ([`topsail`]), and the YAML form ([`yaml_form`]) through a bounded node
//! tree built from saphyr-parser events ([`yaml_tree`]), which the legacy manifest reader
//! ([`legacy`], the third front end, beside it) reads too. Files are read
//! from disk by [`crate::source::read`] only; spans ([`crate::source::Span`])
//! are made here once and carried by every AST node.
//! The reverse direction (AST -> `.topsail` text, AST -> YAML text) lives in
//! [`print`] and [`print_yaml`] and is used by `topsail fmt` and `topsail convert`.

pub mod ast;
pub mod interp;
pub mod legacy;
pub mod print;
pub mod print_yaml;
pub mod topsail;
pub mod yaml_form;
pub mod yaml_tree;

use crate::diagnostics::Diagnostic;
use crate::source::{FileId, Format, SourceMap};

/// Parse one file with the front end its format asks for. Returns the module
/// (possibly partial) and every syntax diagnostic found.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    parse_with(sources, file, &[])
}

/// [`parse`], with the `--context` names a legacy service manifest (a YAML
/// file with a top-level `deployment_spec`, see [`legacy`]) is read with.
pub fn parse_with(
    sources: &SourceMap,
    file: FileId,
    contexts: &[String],
) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let (module, mut diags) = match sources.get(file).format {
        Format::Topsail => topsail::parse(sources, file),
        Format::Yaml => {
            // One bounded reading of the YAML, whichever reader then takes it.
            let text = &sources.get(file).text;
            let tree = yaml_tree::read(text, file);
            if let Ok(Some(root)) = &tree.root
                && let Some((module, mut diags)) = legacy::parse(sources, file, root, contexts)
            {
                let mut all = tree.diags;
                all.append(&mut diags);
                return (module, all);
            }
            // The first topsail's manifests were read by PyYAML, which
            // takes a flow collection's closers dedented below their key.
            if tree.root.is_err()
                && let Some((lenient, moved)) = yaml_tree::read_lenient(text, file)
                && let Ok(Some(root)) = &lenient.root
                && let Some((module, mut diags)) = legacy::parse(sources, file, root, contexts)
            {
                let mut all = lenient.diags;
                all.extend(moved.into_iter().map(legacy::dedented_closer));
                all.append(&mut diags);
                return (module, all);
            }
            yaml_form::parse_tree(text, tree)
        }
    };
    if !contexts.is_empty() {
        diags.push(legacy::contexts_unused(sources, file, contexts));
    }
    (module, diags)
}
