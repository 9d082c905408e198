//! The answers to requests: definition, hover, completion, document symbols
//! and formatting, each from the open document's index and text.

use std::fmt::Write as _;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, DocumentSymbol, DocumentSymbolResponse,
    GotoDefinitionResponse, Hover, HoverContents, Location, MarkupContent, MarkupKind, Position,
    SymbolKind, TextEdit, Uri,
};

use super::Document;
use super::index::{BUILTINS, Index, Target};
use crate::source::{Format, SourceMap};
use crate::syntax::ast::{DECLARATIONS, Keyword};
use crate::syntax::{self, ast};

pub fn definition(doc: &mut Document, uri: &Uri, pos: Position) -> Option<GotoDefinitionResponse> {
    let (index, lines, text) = doc.view();
    let offset = lines.offset(text, pos);
    let (_, target) = index.at(offset)?;
    let span = index.definition(target)?;
    let range = lines.range(text, span.start, span.end);
    Some(GotoDefinitionResponse::Scalar(Location::new(
        uri.clone(),
        range,
    )))
}

pub fn hover(doc: &mut Document, pos: Position) -> Option<Hover> {
    let (index, lines, text) = doc.view();
    let offset = lines.offset(text, pos);
    let (span, target) = index.at(offset)?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: describe(index, target)?,
        }),
        range: Some(lines.range(text, span.start, span.end)),
    })
}

fn describe(index: &Index, target: &Target) -> Option<String> {
    Some(match target {
        Target::Step(name) => {
            let s = index.step(name)?;
            let mut out = format!("**step** `{name}`\n\n");
            let image = if s.approval {
                "none (manual approval)".to_string()
            } else if let Some(t) = &s.uses {
                s.image
                    .clone()
                    .map_or_else(|| format!("from template `{t}`"), |i| format!("`{i}`"))
            } else {
                match (&s.image, &index.default_image) {
                    (Some(i), _) => format!("`{i}`"),
                    (None, Some(d)) => format!("`{d}` (pipeline default)"),
                    (None, None) => "none: runs on the host with `/bin/sh`".into(),
                }
            };
            let _ = writeln!(out, "- image: {image}");
            let needs = list(s.needs.iter().map(|n| n.name.as_str()));
            let _ = writeln!(out, "- needs: {needs}");
            let outputs = list(s.outputs.iter().map(|n| n.name.as_str()));
            let _ = writeln!(out, "- outputs: {outputs}");
            if let Some(v) = &s.foreach {
                let _ = writeln!(out, "- foreach: `{}`", v.name);
            }
            if let Some(c) = &s.catch {
                let _ = writeln!(out, "- catch: `{}`", c.name);
            }
            out
        }
        Target::Param(name) => {
            let p = index.param(name)?;
            param_text("param", p)
        }
        Target::TemplateParam(t, name) => {
            let p = index
                .template(t)?
                .params
                .iter()
                .find(|p| p.name.name == *name)?;
            param_text(&format!("parameter of template `{t}`:"), p)
        }
        Target::Template(name) => {
            let t = index.template(name)?;
            let params = t
                .params
                .iter()
                .map(|p| match &p.default {
                    Some(d) => format!("{} = {d}", p.name.name),
                    None => p.name.name.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("**template** `{name}({params})`")
        }
        Target::Output(step, name) => {
            let declared = index
                .step(step)
                .is_some_and(|s| s.outputs.iter().any(|o| o.name == *name));
            if declared {
                format!(
                    "**output** `{name}` of step `{step}`\n\nset by appending `{name}=value` to `$TOPSAIL_OUTPUT`"
                )
            } else {
                format!("`{step}.{name}`: step `{step}` declares no output `{name}`")
            }
        }
        Target::Secret(name) => format!(
            "**secret** `{name}`\n\ntaken from the environment of whoever runs the step; never printed"
        ),
        Target::LoopVar(step, name) => {
            format!("**loop variable** `{name}` of step `{step}`: the current item")
        }
        Target::Builtin(name) => format!("**built-in** `{name}`"),
    })
}

fn param_text(what: &str, p: &super::index::ParamInfo) -> String {
    let ty =
        p.ty.clone()
            .or_else(|| p.inferred.map(|t| format!("{t} (inferred)")))
            .unwrap_or_else(|| "string".into());
    let default = p
        .default
        .as_ref()
        .map_or_else(|| "none (required)".to_string(), |d| format!("`{d}`"));
    format!(
        "**{what}** `{}`\n\n- type: {ty}\n- default: {default}",
        p.name.name
    )
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = items.map(|s| format!("`{s}`")).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub fn completion(doc: &mut Document, pos: Position) -> CompletionResponse {
    let (index, lines, text) = doc.view();
    let offset = lines.offset(text, pos);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..offset];
    let item = |label: &str, kind: CompletionItemKind, detail: String| CompletionItem {
        label: label.to_string(),
        kind: Some(kind),
        detail: Some(detail),
        ..CompletionItem::default()
    };
    let steps = || {
        index
            .steps
            .iter()
            .map(|s| item(&s.name.name, CompletionItemKind::FUNCTION, "step".into()))
            .collect::<Vec<_>>()
    };
    // Just after the last character that cannot be part of a word (which
    // may be wider than one byte: `é`, an emoji).
    let word_start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let word = &before[word_start..];
    let in_hole = before
        .rfind("{{")
        .is_some_and(|o| before[o..].find("}}").is_none());
    let trimmed = before.trim_start();
    let indented = before.len() > trimmed.len();

    // `step.` -> that step's outputs (or a built-in's fields).
    if let Some((head, _)) = word.split_once('.') {
        let mut items: Vec<CompletionItem> = Vec::new();
        if let Some(s) = index.step(head) {
            items = s
                .outputs
                .iter()
                .map(|o| {
                    item(
                        &o.name,
                        CompletionItemKind::FIELD,
                        format!("output of {head}"),
                    )
                })
                .collect();
        } else if let Some((_, fields)) = BUILTINS.iter().find(|(b, _)| *b == head) {
            items = fields
                .iter()
                .map(|f| item(f, CompletionItemKind::FIELD, format!("{head}.{f}")))
                .collect();
        }
        return CompletionResponse::Array(items);
    }
    let values = |index: &Index| {
        let mut items: Vec<CompletionItem> = index
            .params
            .iter()
            .map(|p| {
                let ty =
                    p.ty.clone()
                        .or(p.inferred.map(str::to_string))
                        .unwrap_or_default();
                item(
                    &p.name.name,
                    CompletionItemKind::VARIABLE,
                    format!("param: {ty}"),
                )
            })
            .collect();
        items.extend(
            index
                .steps
                .iter()
                .filter(|s| !s.outputs.is_empty())
                .map(|s| {
                    item(
                        &s.name.name,
                        CompletionItemKind::MODULE,
                        "step (outputs after `.`)".into(),
                    )
                }),
        );
        items
    };
    if in_hole {
        let mut items = values(index);
        items.extend(
            BUILTINS
                .iter()
                .map(|(b, _)| item(b, CompletionItemKind::KEYWORD, "built-in".into())),
        );
        return CompletionResponse::Array(items);
    }
    let first_word = trimmed.split_whitespace().next().unwrap_or("");
    let after_first =
        !trimmed.is_empty() && (trimmed.len() > first_word.len() || before.ends_with(' '));
    if indented {
        if !after_first {
            return CompletionResponse::Array(
                Keyword::ALL
                    .iter()
                    .map(|k| item(k.name(), CompletionItemKind::KEYWORD, k.summary().into()))
                    .collect(),
            );
        }
        return CompletionResponse::Array(match first_word {
            "catch" => steps(),
            "use" => index
                .templates
                .iter()
                .map(|t| item(&t.name.name, CompletionItemKind::CLASS, "template".into()))
                .collect(),
            "when" | "foreach" => values(index),
            "secret" => index
                .secrets
                .iter()
                .map(|s| item(&s.name, CompletionItemKind::CONSTANT, "secret".into()))
                .collect(),
            _ => Vec::new(),
        });
    }
    // Column 0: after `NAME:` the needs are step names; else a declaration or a new step.
    if let Some(colon) = trimmed.find(':')
        && !DECLARATIONS.contains(&first_word)
        && !trimmed[..colon].contains(' ')
    {
        let this = &trimmed[..colon];
        return CompletionResponse::Array(
            steps().into_iter().filter(|i| i.label != this).collect(),
        );
    }
    if !after_first {
        return CompletionResponse::Array(
            DECLARATIONS
                .iter()
                .map(|k| item(k, CompletionItemKind::KEYWORD, "declaration".into()))
                .collect(),
        );
    }
    CompletionResponse::Array(Vec::new())
}

#[allow(deprecated, reason = "DocumentSymbol::deprecated must still be given")]
pub fn symbols(doc: &mut Document) -> DocumentSymbolResponse {
    let (index, lines, text) = doc.view();
    let sym = |name: &str,
               detail: Option<String>,
               kind,
               full: crate::source::Span,
               sel: crate::source::Span,
               children| {
        DocumentSymbol {
            name: name.to_string(),
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: lines.range(text, full.start.min(sel.start), full.end.max(sel.end)),
            selection_range: lines.range(text, sel.start, sel.end),
            children,
        }
    };
    let mut out = Vec::new();
    for p in &index.params {
        let ty = p.ty.clone().or(p.inferred.map(str::to_string));
        out.push(sym(
            &p.name.name,
            ty,
            SymbolKind::VARIABLE,
            p.name.span,
            p.name.span,
            None,
        ));
    }
    for s in &index.secrets {
        out.push(sym(
            &s.name,
            Some("secret".into()),
            SymbolKind::CONSTANT,
            s.span,
            s.span,
            None,
        ));
    }
    for t in &index.templates {
        out.push(sym(
            &t.name.name,
            Some("template".into()),
            SymbolKind::CLASS,
            t.span,
            t.name.span,
            None,
        ));
    }
    for s in &index.steps {
        let outputs: Vec<DocumentSymbol> = s
            .outputs
            .iter()
            .map(|o| {
                sym(
                    &o.name,
                    Some("output".into()),
                    SymbolKind::FIELD,
                    o.span,
                    o.span,
                    None,
                )
            })
            .collect();
        let needs = s
            .needs
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let detail = (!needs.is_empty()).then(|| format!("needs {needs}"));
        let children = (!outputs.is_empty()).then_some(outputs);
        out.push(sym(
            &s.name.name,
            detail,
            SymbolKind::FUNCTION,
            s.span,
            s.name.span,
            children,
        ));
    }
    out.sort_by_key(|s| (s.range.start.line, s.range.start.character));
    DocumentSymbolResponse::Nested(out)
}

/// The whole document in canonical layout, as `topsail fmt` would write it;
/// nothing when it has syntax errors (formatting must never lose text).
pub fn format(doc: &mut Document) -> Option<Vec<TextEdit>> {
    let mut sources = SourceMap::new();
    let file = sources.add("<lsp>", None, doc.text.clone(), Format::Topsail);
    let (module, diags) = syntax::parse(&sources, file);
    let module: ast::Module = module.filter(|_| !crate::diagnostics::has_errors(&diags))?;
    let formatted = syntax::print::print(&module);
    if formatted == doc.text {
        return Some(Vec::new());
    }
    let end = doc.lines.position(&doc.text, doc.text.len());
    Some(vec![TextEdit::new(
        lsp_types::Range::new(Position::new(0, 0), end),
        formatted,
    )])
}
