//! The second dialect of the first topsail, run by its `executor-handler.pl`:
//! a state's `Parameters` name a `step_name`, the program of that name in a
//! tool directory (`/opt/bin` there; the `tool_dir` param here), which gets
//! every other parameter as `--key value` (`_` in a key as `-`, a list as
//! the flag repeated). A key ending in `.$` takes its value from an earlier
//! state's results (`$.RESULTPATH.KEY`) or from the execution's input
//! (`$.NAME`, a param here). `output_file` names the file the tool writes its
//! results to, read into the state's `ResultPath`.

// Shell text is assembled line by line, as in script.rs.
#![allow(clippy::format_push_string)]

use super::script::quote;
use super::tree::{Kind, Node};
use crate::diagnostics::{Diagnostic, codes};
use crate::source::Span;

/// The param holding the tool directory, and its default (the old handler's).
pub(super) const TOOL_DIR_PARAM: &str = "tool_dir";
pub(super) const TOOL_DIR_DEFAULT: &str = "/opt/bin";
/// The env var that carries the tool directory into the run text.
pub(super) const TOOL_DIR_ENV: &str = "LEGACY_TOOL_DIR";

pub(super) struct Tool {
    pub name: String,
    pub name_span: Span,
    pub args: Vec<Arg>,
    /// `output_file`, also passed to the tool as `--output-file`.
    pub output_file: Option<String>,
}

pub(super) struct Arg {
    /// `--cloud-spec-json`.
    pub flag: String,
    pub value: ArgValue,
    pub span: Span,
}

pub(super) enum ArgValue {
    /// The values of the flag, in order (a list repeats the flag).
    Literal(Vec<String>),
    /// A `.$` key: the path after `$.`.
    Lookup(Vec<String>),
}

/// `Parameters` of a state: a [`Tool`] when they name a `step_name`.
pub(super) fn read(diags: &mut Vec<Diagnostic>, key: &Node, value: &Node) -> Option<Tool> {
    let Some(entries) = value.as_map() else {
        diags.push(
            Diagnostic::error(
                codes::LEGACY,
                value.span,
                format!("`Parameters` must be a map, not {}", value.type_name()),
            )
            .label("expected a map")
            .help("write `Parameters: {step_name: TOOL, KEY: VALUE, ...}`"),
        );
        return None;
    };
    if entries.is_empty() {
        return None;
    }
    let Some((name_key, name_node)) = entries
        .iter()
        .find(|(k, _)| k.key_text().as_deref() == Some("step_name"))
    else {
        diags.push(
            Diagnostic::warning(codes::LEGACY, key.span, "`Parameters` without `step_name` are ignored")
                .label("no tool to run")
                .help("the executor dialect runs the tool `step_name` names; a script gets its input from `variables`"),
        );
        return None;
    };
    let name = match name_node.as_str() {
        Some(n) if is_tool_name(n) => n.to_string(),
        _ => {
            diags.push(
                Diagnostic::error(
                    codes::LEGACY,
                    name_node.span,
                    "`step_name` must be a program's file name",
                )
                .label("not a file name")
                .help("letters, digits, `_`, `-` and `.`: the tool is looked up in the tool directory, never elsewhere"),
            );
            return None;
        }
    };
    let mut tool = Tool {
        name,
        name_span: name_key.span.to(name_node.span),
        args: Vec::new(),
        output_file: None,
    };
    for (k, v) in entries {
        let raw = k.key_text().unwrap_or_default();
        if raw == "step_name" {
            continue;
        }
        let span = k.span.to(v.span);
        let (base, value) = if let Some(base) = raw.strip_suffix(".$") {
            let Some(path) = lookup_path(v) else {
                diags.push(
                        Diagnostic::error(
                            codes::LEGACY,
                            v.span,
                            format!("`{raw}` must hold a `$.` path"),
                        )
                        .label("expected `$.NAME` or `$.RESULTPATH.KEY`")
                        .help("a key ending in `.$` reads its value from the state, as the old handler required"),
                    );
                continue;
            };
            (base.to_string(), ArgValue::Lookup(path))
        } else {
            let values = match &v.kind {
                Kind::Seq(items) => items
                    .iter()
                    .map(|i| i.scalar_text().unwrap_or_else(|| i.to_json().to_string()))
                    .collect(),
                _ => vec![v.scalar_text().unwrap_or_else(|| v.to_json().to_string())],
            };
            if raw == "output_file" {
                tool.output_file = values.first().cloned();
            }
            (raw.clone(), ArgValue::Literal(values))
        };
        if !is_flag(&base) {
            diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    k.span,
                    format!("`{raw}` cannot be a `--flag`"),
                )
                .label("not a parameter name")
                .help("letters and digits, with `_` or `-` inside (the old handler's rule)"),
            );
            continue;
        }
        tool.args.push(Arg {
            flag: format!("--{}", base.replace('_', "-")),
            value,
            span,
        });
    }
    Some(tool)
}

/// `$.a.b` -> `[a, b]`, with the old handler's rule for each name.
fn lookup_path(v: &Node) -> Option<Vec<String>> {
    let rest = v.as_str()?.strip_prefix("$.")?;
    let parts: Vec<String> = rest.split('.').map(str::to_string).collect();
    parts
        .iter()
        .all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .then_some(parts)
}

fn is_flag(s: &str) -> bool {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    ends_ok(s.chars().next())
        && ends_ok(s.chars().last())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_tool_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// The run text of a tool state. `args` are the words after the tool: each
/// either literal text or the name of the env var holding a looked-up value.
pub(super) fn run_text(state: &str, tool: &Tool, args: &[Word], outputs: &[String]) -> String {
    let mut out = format!(
        "# State \"{state}\" (the executor dialect): the tool `{}` from the tool directory, run by perl as the old handler did, its parameters as `--key value`.\n",
        tool.name
    );
    out.push_str(&format!("perl \"${TOOL_DIR_ENV}/{}\"", tool.name));
    for w in args {
        out.push_str(" \\\n    ");
        match w {
            Word::Literal(t) => out.push_str(&quote(t)),
            Word::Env(e) => out.push_str(&format!("\"${e}\"")),
        }
    }
    out.push('\n');
    if let (Some(file), false) = (&tool.output_file, outputs.is_empty()) {
        out.push_str(&format!(
            "# `output_file`: a JSON object, or KEY=VALUE lines, read into the state's `ResultPath`.\nperl -MJSON::PP -e {} {} {} >> \"$TOPSAIL_OUTPUT\"\n",
            quote(READ_OUTPUT),
            quote(file),
            outputs.iter().map(|k| quote(k)).collect::<Vec<_>>().join(" ")
        ));
    }
    out
}

/// Perl that prints `KEY=VALUE` for the wanted keys of the output file
/// (ARGV[0]): a JSON object's members (collections as JSON), else its
/// KEY=VALUE lines (split at the first `=`, a later line winning). Values
/// with a newline are written in the `KEY<<DELIM` form.
const READ_OUTPUT: &str = r#"my ($file, @want) = @ARGV;
open(my $fh, '<', $file) or die "topsail: cannot read output_file $file: $!\n";
my $text = do { local $/; <$fh> };
my %out;
if ($text =~ /\A\s*\{/) {
    my $doc = JSON::PP->new->allow_nonref->decode($text);
    die "topsail: output_file $file is not a JSON object\n" unless ref $doc eq 'HASH';
    for my $k (keys %$doc) {
        my $v = $doc->{$k};
        $out{$k} = !defined $v ? '' : ref $v ? JSON::PP->new->canonical->encode($v) : "$v";
    }
} else {
    for my $line (split /\n/, $text) {
        my ($k, $v) = split /=/, $line, 2;
        $out{$k} = $v if defined $v;
    }
}
for my $k (@want) {
    next unless exists $out{$k};
    my $v = $out{$k};
    if ($v =~ /\n/) { print "$k<<TOPSAIL_EOF\n$v\nTOPSAIL_EOF\n" } else { print "$k=$v\n" }
}
"#;

/// One word of a tool's command line.
pub(super) enum Word {
    Literal(String),
    Env(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_the_old_rule() {
        assert!(is_flag("cloud_spec_json"));
        assert!(is_flag("a1"));
        assert!(!is_flag("_x"));
        assert!(!is_flag("x-"));
        assert!(!is_flag("a b"));
    }

    #[test]
    fn tool_names_stay_in_the_tool_directory() {
        assert!(is_tool_name("validate_cloud_spec"));
        assert!(!is_tool_name("../bin/sh"));
        assert!(!is_tool_name("a/b"));
        assert!(!is_tool_name(".."));
    }
}
