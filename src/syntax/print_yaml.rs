//! AST -> YAML text (`topsail convert --to yaml`), in the form of LANGUAGE.md
//! section 8 as read by [`super::yaml_form`]. The promise: for every module `m`
//! either front end produces, `yaml_form::parse(emit(m))` is `m` again, apart from
//! spans and one thing YAML cannot say: items of one kind (params, steps, ...)
//! and repeatable directives of one key (`run`, `env`, `outputs`, `secrets`)
//! are grouped under one key, at the place of the first of them.
//!
//! Output is deterministic: keys in AST order, flow style for short lists and
//! small maps, `|` blocks for multi-line scripts, and quotes only where a
//! plain scalar would read back as something else.

use std::fmt::Write as _;

use crate::syntax::ast::{
    Directive, DirectiveKind, EnvVar, Expr, ExprKind, ForeachItems, Ident, Interp, Item, Module,
    Param, Part, Retry, Use, Value, ValueKind,
};
use crate::syntax::yaml_tree::{Plain, classify_plain};

/// Lists and maps longer than this go in block style.
const FLOW_WIDTH: usize = 72;

pub fn emit(module: &Module) -> String {
    let mut out = String::new();
    for (key, items) in group(&module.items, |item| match item {
        Item::Pipeline(_) => ("pipeline", false),
        Item::Param(_) => ("params", true),
        Item::Secret(_) => ("secrets", true),
        Item::Image(_) => ("image", false),
        Item::Queue(_) => ("queue", false),
        Item::Env(_) => ("env", true),
        Item::Import(_) => ("imports", true),
        Item::Template(_) => ("templates", true),
        Item::Step(_) => ("steps", true),
    }) {
        match key {
            "pipeline" | "image" | "queue" => {
                for item in items {
                    match item {
                        Item::Pipeline(name) => {
                            let _ = writeln!(out, "pipeline: {}", scalar(&name.name, false));
                        }
                        Item::Image(i) => {
                            let _ = writeln!(out, "image: {}", string(&interp_text(i), 0));
                        }
                        Item::Queue(i) => {
                            let _ = writeln!(out, "queue: {}", string(&interp_text(i), 0));
                        }
                        _ => {}
                    }
                }
            }
            "params" => {
                out.push_str("params:\n");
                for item in items {
                    if let Item::Param(p) = item {
                        let _ = writeln!(out, "  {}: {}", key_text(&p.name.name), param_text(p));
                    }
                }
            }
            "secrets" => {
                let names: Vec<&Ident> = items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Secret(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                out.push_str("secrets:");
                out.push_str(&name_list(&names, 0));
            }
            "env" => {
                let vars: Vec<&EnvVar> = items
                    .iter()
                    .filter_map(|i| match i {
                        Item::Env(e) => Some(e),
                        _ => None,
                    })
                    .collect();
                out.push_str("env:");
                out.push_str(&env_map(&vars, 0));
            }
            "imports" => {
                out.push_str("imports:\n");
                for item in items {
                    if let Item::Import(i) = item {
                        match &i.alias {
                            None => {
                                let _ = writeln!(out, "  - {}", scalar(&i.path, false));
                            }
                            Some(alias) => {
                                let _ = writeln!(
                                    out,
                                    "  - {{path: {}, as: {}}}",
                                    scalar(&i.path, true),
                                    scalar(&alias.name, true)
                                );
                            }
                        }
                    }
                }
            }
            "templates" => {
                out.push_str("templates:\n");
                for item in items {
                    if let Item::Template(t) = item {
                        let _ = write!(out, "  {}:", key_text(&t.name.name));
                        if t.params.is_empty() && t.body.is_empty() {
                            out.push_str(" {}\n");
                            continue;
                        }
                        out.push('\n');
                        if !t.params.is_empty() {
                            let params: Vec<String> = t
                                .params
                                .iter()
                                .map(|p| {
                                    format!("{}: {}", scalar(&p.name.name, true), param_text(p))
                                })
                                .collect();
                            let _ = writeln!(out, "    params: {{{}}}", params.join(", "));
                        }
                        body(&mut out, &t.body);
                    }
                }
            }
            _ => {
                out.push_str("steps:\n");
                for item in items {
                    if let Item::Step(s) = item {
                        let _ = write!(out, "  {}:", key_text(&s.name.name));
                        if s.needs.is_empty() && s.body.is_empty() {
                            out.push_str(" {}\n");
                            continue;
                        }
                        out.push('\n');
                        if !s.needs.is_empty() {
                            let needs: Vec<&Ident> = s.needs.iter().collect();
                            out.push_str("    needs:");
                            out.push_str(&name_list(&needs, 4));
                        }
                        body(&mut out, &s.body);
                    }
                }
            }
        }
    }
    out
}

/// Group `items` by key in order of first appearance. Keys marked `false`
/// (single-valued) are still grouped; their items are written one by one.
fn group<T>(items: &[T], key: impl Fn(&T) -> (&'static str, bool)) -> Vec<(&'static str, Vec<&T>)> {
    let mut groups: Vec<(&'static str, Vec<&T>)> = Vec::new();
    for item in items {
        let (k, _) = key(item);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, list)) => list.push(item),
            None => groups.push((k, vec![item])),
        }
    }
    groups
}

/// A step's or template's directives, at indentation 4.
fn body(out: &mut String, directives: &[Directive]) {
    let groupable = |k: &str| matches!(k, "run" | "env" | "outputs" | "secrets");
    // Repeatable keys gather under their first occurrence; any other key
    // given twice (a checker error anyway) is written twice, in place.
    let mut groups: Vec<(&'static str, Vec<&DirectiveKind>)> = Vec::new();
    for d in directives {
        let key = yaml_key(&d.kind);
        match groups.iter_mut().find(|(g, _)| *g == key && groupable(key)) {
            Some((_, list)) => list.push(&d.kind),
            None => groups.push((key, vec![&d.kind])),
        }
    }
    for (key, kinds) in groups {
        out.push_str("    ");
        out.push_str(key);
        out.push(':');
        match key {
            "run" if kinds.len() > 1 => {
                out.push('\n');
                for k in kinds {
                    if let DirectiveKind::Run(i) = k {
                        let text = interp_text(i);
                        let _ = write!(out, "      - {}", string_in_seq(&text));
                        if !out.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                }
            }
            "env" => {
                let vars: Vec<&EnvVar> = kinds
                    .iter()
                    .filter_map(|k| match k {
                        DirectiveKind::Env(e) => Some(&**e),
                        _ => None,
                    })
                    .collect();
                out.push_str(&env_map(&vars, 4));
            }
            "outputs" | "secrets" => {
                let names: Vec<&Ident> = kinds
                    .iter()
                    .filter_map(|k| match k {
                        DirectiveKind::Output(n) | DirectiveKind::Secret(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                out.push_str(&name_list(&names, 4));
            }
            _ => {
                out.push(' ');
                out.push_str(&single_directive(kinds[0]));
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
}

fn yaml_key(kind: &DirectiveKind) -> &'static str {
    match kind {
        DirectiveKind::Output(_) => "outputs",
        DirectiveKind::Secret(_) => "secrets",
        other => other.keyword(),
    }
}

/// The value of a single-valued directive, after `key: `.
fn single_directive(kind: &DirectiveKind) -> String {
    match kind {
        DirectiveKind::Image(i)
        | DirectiveKind::Run(i)
        | DirectiveKind::Shell(i)
        | DirectiveKind::Workdir(i)
        | DirectiveKind::Approval(i)
        | DirectiveKind::Queue(i) => string(&interp_text(i), 4),
        DirectiveKind::Aws(None) => "true".to_string(),
        DirectiveKind::Aws(Some(role)) => format!("{{role: {}}}", scalar(&interp_text(role), true)),
        DirectiveKind::Timeout(v) | DirectiveKind::Heartbeat(v) => value_text(v, false),
        DirectiveKind::Retry(r) => retry_text(r),
        DirectiveKind::When(e) => scalar(&expr_text(e), false),
        DirectiveKind::Foreach(f) => {
            let items = match &f.items {
                ForeachItems::List(v) => value_text(v, true),
                ForeachItems::Param(p) => scalar(&p.name, true),
            };
            format!("{{var: {}, in: {items}}}", scalar(&f.var.name, true))
        }
        DirectiveKind::Catch(n) => scalar(&n.name, false),
        DirectiveKind::Use(u) => use_text(u),
        // Grouped keys are written by `body`; kept total for safety.
        DirectiveKind::Env(e) => env_map(&[e], 4),
        DirectiveKind::Output(n) | DirectiveKind::Secret(n) => name_list(&[n], 4),
    }
}

fn retry_text(r: &Retry) -> String {
    if r.every.is_none() && r.backoff.is_none() {
        return value_text(&r.attempts, false);
    }
    let mut fields = vec![format!("attempts: {}", value_text(&r.attempts, true))];
    if let Some(every) = &r.every {
        fields.push(format!("every: {}", value_text(every, true)));
    }
    if let Some(backoff) = &r.backoff {
        fields.push(format!("backoff: {}", value_text(backoff, true)));
    }
    format!("{{{}}}", fields.join(", "))
}

fn use_text(u: &Use) -> String {
    let name = u
        .template
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(".");
    let mut out = format!("{{template: {}", scalar(&name, true));
    if !u.args.is_empty() {
        let args: Vec<String> = u
            .args
            .iter()
            .map(|a| {
                format!(
                    "{}: {}",
                    scalar(&a.name.name, true),
                    value_text(&a.value, true)
                )
            })
            .collect();
        let _ = write!(out, ", with: {{{}}}", args.join(", "));
    }
    out.push('}');
    out
}

/// `NAME: ` value of a param: a bare default, or `{type: T, default: V}`.
fn param_text(p: &Param) -> String {
    match (&p.ty, &p.default) {
        (None, Some(d)) => value_text(d, true),
        (None, None) => "{}".to_owned(),
        (Some(t), None) => format!("{{type: {}}}", scalar(&t.name, true)),
        (Some(t), Some(d)) => format!(
            "{{type: {}, default: {}}}",
            scalar(&t.name, true),
            value_text(d, true)
        ),
    }
}

/// ` [a, b]\n`, or a block list under the key when long.
fn name_list(names: &[&Ident], indent: usize) -> String {
    let items: Vec<String> = names.iter().map(|n| scalar(&n.name, true)).collect();
    let flow = format!(" [{}]\n", items.join(", "));
    if flow.len() + indent <= FLOW_WIDTH {
        return flow;
    }
    let mut out = String::from("\n");
    for n in names {
        let _ = writeln!(out, "{:indent$}  - {}", "", scalar(&n.name, false));
    }
    out
}

/// ` {A: b}\n` when short, else a block map under the key.
fn env_map(vars: &[&EnvVar], indent: usize) -> String {
    let items: Vec<String> = vars
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                scalar(&e.name.name, true),
                value_text(&e.value, true)
            )
        })
        .collect();
    let flow = format!(" {{{}}}\n", items.join(", "));
    if flow.len() + indent <= FLOW_WIDTH {
        return flow;
    }
    let mut out = String::from("\n");
    for e in vars {
        let _ = writeln!(
            out,
            "{:indent$}  {}: {}",
            "",
            key_text(&e.name.name),
            value_text(&e.value, false)
        );
    }
    out
}

fn value_text(v: &Value, flow: bool) -> String {
    match &v.kind {
        ValueKind::Str(i) => scalar(&interp_text(i), flow),
        ValueKind::Int(n) => n.to_string(),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Float(f) => float_text(*f),
        ValueKind::Duration(d) if classify_plain(d) == Plain::Duration => d.clone(),
        ValueKind::Duration(d) => scalar(d, flow),
        ValueKind::List(items) => {
            let items: Vec<String> = items.iter().map(|i| value_text(i, true)).collect();
            format!("[{}]", items.join(", "))
        }
    }
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        ".nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.to_owned()
    } else {
        // Debug prints the shortest text that reads back as the same f64,
        // always with a `.` or an exponent, so it reads back as a float.
        format!("{f:?}")
    }
}

/// Text with holes, as written: `{{ a.b }}` for a hole, and a literal `{{`
/// as `{{ "{{" }}` (a lone `{` right before a hole as `{{ "{" }}`).
fn interp_text(i: &Interp) -> String {
    let mut out = String::new();
    let mut lit = String::new();
    let flush = |lit: &mut String, out: &mut String, before_hole: bool| {
        let chars: Vec<char> = lit.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            if chars[k] == '{' && chars.get(k + 1) == Some(&'{') {
                out.push_str("{{ \"{{\" }}");
                k += 2;
            } else if chars[k] == '{' && k + 1 == chars.len() && before_hole {
                out.push_str("{{ \"{\" }}");
                k += 1;
            } else {
                out.push(chars[k]);
                k += 1;
            }
        }
        lit.clear();
    };
    for part in &i.parts {
        match part {
            Part::Lit(s) | Part::Value(s, _) => lit.push_str(s),
            Part::Ref(r) => {
                flush(&mut lit, &mut out, true);
                out.push_str("{{ ");
                out.push_str(&r.dotted());
                out.push_str(" }}");
            }
        }
    }
    flush(&mut lit, &mut out, false);
    out
}

fn expr_text(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Or(a, b) => format!("{} || {}", expr_text(a), expr_text(b)),
        ExprKind::And(a, b) => format!("{} && {}", expr_text(a), expr_text(b)),
        ExprKind::Eq(a, b) => format!("{} == {}", expr_text(a), expr_text(b)),
        ExprKind::Ne(a, b) => format!("{} != {}", expr_text(a), expr_text(b)),
        ExprKind::Not(a) => format!("!{}", expr_text(a)),
        ExprKind::Paren(a) => format!("({})", expr_text(a)),
        ExprKind::Ref(r) => r.dotted(),
        ExprKind::Lit(v) => expr_lit(v),
    }
}

fn expr_lit(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(i) => format!("\"{}\"", crate::model::text::escape(&interp_text(i))),
        ValueKind::Int(n) => n.to_string(),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Float(f) => float_text(*f),
        ValueKind::Duration(d) => d.clone(),
        ValueKind::List(items) => format!(
            "[{}]",
            items.iter().map(expr_lit).collect::<Vec<_>>().join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------
// Scalars.

fn key_text(s: &str) -> String {
    if s == "<<" {
        return single_quoted(s);
    }
    scalar(s, false)
}

/// A string value after `key: ` at indentation `indent`: a `|` block when it
/// has several lines and a block can hold it exactly, else one line.
fn string(text: &str, indent: usize) -> String {
    match block(text, indent + 2, true) {
        Some(b) => b,
        None => scalar(text, false),
    }
}

/// A string as a block-sequence item (`- ...`).
fn string_in_seq(text: &str) -> String {
    match block(text, 8, false) {
        Some(b) => b,
        None => scalar(text, false),
    }
}

/// `|` block text, lines indented by `indent`, or `None` when a block
/// cannot carry `text` exactly (control characters, lines of only blanks,
/// tabs at a line start, or leading blanks when no indicator is allowed).
fn block(text: &str, indent: usize, indicator_ok: bool) -> Option<String> {
    if !text.contains('\n') || text.trim().is_empty() {
        return None;
    }
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    let lines: Vec<&str> = body.split('\n').collect();
    for line in &lines {
        if line.chars().any(|c| needs_double(c) && c != '\t')
            || (!line.is_empty() && line.trim().is_empty())
            || line.starts_with('\t')
        {
            return None;
        }
    }
    let first = lines.iter().find(|l| !l.is_empty())?;
    let needs_indicator = first.starts_with(' ');
    if needs_indicator && !indicator_ok {
        return None;
    }
    let mut out = String::from("|");
    if needs_indicator {
        out.push('2');
    }
    out.push_str(match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    });
    out.push('\n');
    for line in &lines {
        if !line.is_empty() {
            out.push_str(&" ".repeat(indent));
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
    }
    Some(out)
}

fn needs_double(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}'
        )
}

/// One scalar on one line: plain when it reads back as this same string;
/// quoted when only YAML syntax is in the way (double quotes unless that
/// needs escapes); double-quoted with escapes for characters a single line
/// cannot show.
pub(crate) fn scalar(s: &str, flow: bool) -> String {
    if s.chars().any(needs_double) {
        double_quoted(s)
    } else if plain_ok(s, flow) {
        s.to_owned()
    } else if !s.contains(['"', '\\']) {
        format!("\"{s}\"")
    } else {
        single_quoted(s)
    }
}

fn plain_ok(s: &str, flow: bool) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    classify_plain(s) == Plain::Str
        && !"-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
        && !(flow && s.contains([',', '[', ']', '{', '}']))
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if needs_double(c) => {
                let n = u32::from(c);
                if n <= 0xFFFF {
                    let _ = write!(out, "\\u{n:04X}");
                } else {
                    let _ = write!(out, "\\U{n:08X}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Diagnostic;
    use crate::source::{FileId, Span};
    use crate::syntax::ast::{Foreach, Ref, Step};
    use crate::syntax::yaml_form::parse_str;
    use crate::syntax::yaml_form::tests::{parse_ok, strip};
    use proptest::prelude::*;

    const FULL: &str = include_str!("../../tests/fixtures/yaml/full.yaml");

    /// parse -> emit -> parse gives the same module, and emitting again gives
    /// the same text (the emitter is a fixed point).
    fn round_trip(src: &str) -> String {
        let first = parse_ok(src);
        let yaml = emit(&first);
        let second = parse_ok(&yaml);
        assert_eq!(strip(&first), strip(&second), "--- emitted:\n{yaml}");
        assert_eq!(emit(&second), yaml);
        yaml
    }

    #[test]
    fn full_example_round_trips_readably() {
        let yaml = round_trip(FULL);
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn strings_that_look_like_other_things_stay_strings() {
        let src = r#"env:
  A: "true"
  B: "3"
  C: "2.0"
  D: "null"
  E: "~"
  F: "yes"
  G: "90s"
  H: " lead"
  I: "trail "
  J: "a: b"
  K: "a #b"
  L: "-x"
  M: ""
  N: "{{ \"{{\" }} and { {{ x }}"
  O: "[a]"
  P: "*star"
  Q: "line\nbreak"
  R: "tab\there"
  S: "it's \"q\""
  T: "0x1F"
  U: ".inf"
  V: "FALSE"
  W: "key:"
  X: "@at"
  Y: "%pct"
  Z: "`tick"
"#;
        let yaml = round_trip(src);
        for quoted in [
            "\"true\"",
            "\"3\"",
            "\"2.0\"",
            "\"null\"",
            "\"~\"",
            "\"90s\"",
            "\" lead\"",
            "\"a: b\"",
            "\"\"",
            "S: it's \"q\"\n",
            "N: '{{ \"{{\" }} and { {{ x }}'",
        ] {
            assert!(yaml.contains(quoted), "{quoted} in:\n{yaml}");
        }
        assert!(
            yaml.contains("F: yes\n"),
            "yes is a plain string in YAML 1.2:\n{yaml}"
        );
        assert!(yaml.contains(r#""line\nbreak""#));
    }

    #[test]
    fn values_of_every_kind_round_trip() {
        round_trip(
            "params:\n  a: 3\n  b: -2.5\n  c: 1e100\n  d: true\n  e: 15m\n  f: [1, \"two\", [3.0, x], 4h]\n  g: {type: list}\n  h: {type: duration, default: 90s}\n  i: .inf\n",
        );
    }

    #[test]
    fn multi_line_runs_use_block_literals() {
        let yaml = round_trip(
            "steps:\n  a:\n    run: |\n      one {{ x }}\n\n        two\n  b:\n    run: |-\n      no newline\n      at end\n  c:\n    run: |+\n      kept\n\n\n  d:\n    run: |2\n        leading spaces\n      then less\n  e:\n    run:\n      - echo one\n      - |\n        multi\n        line\n      - \"  lead\\nx\"\n",
        );
        assert!(
            yaml.contains("    run: |\n      one {{ x }}\n\n        two\n"),
            "{yaml}"
        );
        assert!(yaml.contains("    run: |-\n"));
        assert!(yaml.contains("    run: |+\n"));
        assert!(
            yaml.contains("    run: |2\n        leading spaces\n      then less\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("      - |\n        multi\n        line\n      - "),
            "{yaml}"
        );
    }

    #[test]
    fn templates_imports_foreach_and_use_round_trip() {
        let yaml = round_trip(
            "imports:\n  - std/notify\n  - {path: ./lib.topsail, as: lib}\ntemplates:\n  t:\n    params: {context: \".\", tag: {type: string}, n: {type: int, default: 2}}\n    run: build {{ tag }}\n  empty: {}\nsteps:\n  a:\n    foreach: {var: r, in: regions}\n    run: echo {{ r }}\n  b:\n    foreach: {var: r, in: [\"us-east-1\", eu-west-1, 3]}\n    use: {template: lib.t, with: {tag: \"v:{{ r }}\", n: 2}}\n  c:\n    use: {template: t}\n",
        );
        assert!(
            yaml.contains("  - {path: ./lib.topsail, as: lib}\n"),
            "{yaml}"
        );
        assert!(yaml.contains("foreach: {var: r, in: regions}"));
        assert!(
            yaml.contains("use: {template: lib.t, with: {tag: \"v:{{ r }}\", n: 2}}"),
            "{yaml}"
        );
    }

    #[test]
    fn when_expressions_round_trip() {
        round_trip(
            "steps:\n  a:\n    when: \"!dry_run && (env == \\\"prod\\\" || x.Y != 3)\"\n  b:\n    when: true\n",
        );
    }

    #[test]
    fn repeated_keys_group_under_the_first() {
        let span = Span::default();
        let id = |n: &str| Ident {
            name: n.into(),
            span,
        };
        let d = |kind| Directive {
            kind,
            span,
            keyword_span: span,
        };
        let run = |t: &str| d(DirectiveKind::Run(Interp::literal(t, span)));
        let m = Module {
            items: vec![Item::Step(Step {
                name: id("s"),
                needs: vec![],
                body: vec![
                    run("a"),
                    d(DirectiveKind::Output(id("X"))),
                    run("b"),
                    d(DirectiveKind::Output(id("Y"))),
                ],
                span,
            })],
            comments: vec![],
            span,
        };
        assert_eq!(
            emit(&m),
            "steps:\n  s:\n    run:\n      - a\n      - b\n    outputs: [X, Y]\n"
        );
    }

    /// An arbitrary string as the only part of a literal, or around a hole.
    fn interp_strategy() -> impl Strategy<Value = Interp> {
        let text = "[a-z{}\"' :#\\-\\n\\t\\\\|>!&*%@`\\[\\],é€😀\u{85}\u{2028}\r]{0,12}";
        (text, text, proptest::bool::ANY).prop_map(|(a, b, hole)| {
            let span = Span::default();
            let mut parts = Vec::new();
            if hole {
                if !a.is_empty() {
                    parts.push(Part::Lit(a));
                }
                parts.push(Part::Ref(Ref {
                    path: vec![Ident {
                        name: "x".into(),
                        span,
                    }],
                    span,
                }));
                if !b.is_empty() {
                    parts.push(Part::Lit(b));
                }
            } else if !(a.is_empty() && b.is_empty()) {
                parts.push(Part::Lit(a + &b));
            }
            Interp { parts, span }
        })
    }

    /// One step per text, so no regrouping happens on the way out.
    fn module_with(texts: Vec<Interp>) -> Module {
        let span = Span::default();
        let d = |kind| Directive {
            kind,
            span,
            keyword_span: span,
        };
        let id = |name: &str| Ident {
            name: name.into(),
            span,
        };
        let value = |kind| Value { kind, span };
        let mut items = Vec::new();
        for (k, t) in texts.into_iter().enumerate() {
            let directive = d(match k % 4 {
                0 => DirectiveKind::Run(t),
                1 => DirectiveKind::Approval(t),
                2 => DirectiveKind::Env(Box::new(EnvVar {
                    name: id("E"),
                    value: value(ValueKind::Str(t)),
                    span,
                })),
                _ => DirectiveKind::Foreach(Box::new(Foreach {
                    var: id("r"),
                    items: ForeachItems::List(value(ValueKind::List(vec![value(ValueKind::Str(
                        t,
                    ))]))),
                })),
            });
            items.push(Item::Step(Step {
                name: id(&format!("s{k}")),
                needs: vec![],
                body: vec![directive],
                span,
            }));
        }
        Module {
            items,
            comments: vec![],
            span,
        }
    }

    proptest! {
        #[test]
        fn any_text_survives_emit_then_parse(texts in proptest::collection::vec(interp_strategy(), 1..6)) {
            let m = module_with(texts);
            let yaml = emit(&m);
            let (back, diags): (Option<Module>, Vec<Diagnostic>) = parse_str(&yaml, FileId(0));
            prop_assert!(diags.is_empty(), "{diags:#?}\n--- emitted:\n{yaml}");
            let back = back.expect("no diagnostics, so a module");
            prop_assert_eq!(strip(&m), strip(&back), "--- emitted:\n{}", yaml);
        }
    }
}
