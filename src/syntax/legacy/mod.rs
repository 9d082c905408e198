//! The third front end: "service manifests" of the first (Perl) topsail,
//! YAML files with a top-level `deployment_spec`. They are read with the
//! active `--context` names, collapsed the way the old runner did, and turned
//! into the same [`ast::Module`] the `.topsail` and YAML front ends produce, so
//! the checker, the model, the runner and the ASL compiler need no legacy
//! code. Everything the old runner silently ignored is reported as a warning
//! (`topsail::legacy`) pointing into the YAML.
//!
//! Boundaries: this module only reads YAML and builds AST; it never runs
//! anything. [`crate::syntax::parse_with`] calls [`parse`] for YAML files; it reads the
//! same bounded tree ([`crate::syntax::yaml_tree`]) as the YAML front end, beside it.

mod executor;
mod lower;
mod script;
mod tree;

use crate::diagnostics::{Diagnostic, codes};
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::{ast, yaml_tree};

/// Read `file`, whose bounded YAML tree has the root `root`, as a service
/// manifest with `contexts` active, in order. `None` when it is not one (no
/// `deployment_spec` at the top), so the ordinary YAML front end can take it.
pub(crate) fn parse(
    sources: &SourceMap,
    file: FileId,
    root: &yaml_tree::Node,
    contexts: &[String],
) -> Option<(Option<ast::Module>, Vec<Diagnostic>)> {
    let source = sources.get(file);
    let is_manifest = matches!(&root.kind, yaml_tree::Kind::Map(entries)
        if entries.iter().any(|(k, _)| k.text() == Some("deployment_spec")));
    if !is_manifest {
        return None;
    }
    let root = tree::from_yaml(root, &source.text);
    let (ds_key, ds) = root.get("deployment_spec")?;
    let mut diags = Vec::new();
    for (key, _) in root.as_map().unwrap_or_default() {
        let name = key.key_text().unwrap_or_default();
        if name != "deployment_spec" && name != "cloud_spec" {
            diags.push(
                Diagnostic::warning(
                    codes::LEGACY,
                    key.span,
                    format!("top-level key `{name}` is not used"),
                )
                .label("ignored, as the old runner did")
                .help("a service manifest runs `deployment_spec`; other keys are free data for its scripts"),
            );
        }
    }
    let stem = source
        .path
        .as_deref()
        .and_then(std::path::Path::file_stem)
        .and_then(|s| s.to_str())
        .unwrap_or("manifest");
    let whole = Span::new(file, 0, source.text.len());
    let module = lower::lower(&lower::Input {
        ds,
        ds_key: ds_key.span,
        contexts,
        name: stem,
        whole,
    });
    diags.extend(module.1);
    Some((module.0, diags))
}

/// The warning for `--context` given with a file that is not a service
/// manifest: it selects nothing there, and saying nothing would hide a
/// wrong file name.
pub(crate) fn contexts_unused(
    sources: &SourceMap,
    file: FileId,
    contexts: &[String],
) -> Diagnostic {
    let text = &sources.get(file).text;
    let first = text.find('\n').unwrap_or(text.len());
    Diagnostic::warning(
        codes::LEGACY,
        Span::new(file, 0, first),
        format!("`--context {}` is ignored: this file is not a service manifest", contexts.join(" --context ")),
    )
    .label("no top-level `deployment_spec` here")
    .help("contexts select the workflow of a legacy service manifest; remove `--context` for other pipelines")
}

/// The warning for a flow collection's closers written left of their key,
/// which the manifest's old reader (PyYAML) took and saphyr does not.
pub(crate) fn dedented_closer(span: Span) -> Diagnostic {
    Diagnostic::warning(
        codes::LEGACY,
        span,
        "this closing bracket is indented left of the key it belongs to",
    )
    .label("read as if it ended the line above, as the first topsail's YAML reader did")
    .help("indent it deeper than its key (or put it at the end of the line above); YAML 1.2 readers refuse it")
}

#[cfg(test)]
mod tests;
