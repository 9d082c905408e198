//! A failed step shown at its source (issue 15): `topsail run`, `start
//! --follow` and `topsail logs` print the step's declaration in the
//! `.topsail` (or YAML) file with the error, the way `topsail check` shows
//! a diagnostic ([`crate::diagnostics`]).

use crate::diagnostics::{Diagnostic, codes};
use crate::model::Pipeline;
use crate::source::SourceMap;

/// The snippet for unit `unit` (a step, or `step[item]`) that failed with
/// `error` and the first line of its cause; None when the step is unknown.
pub fn render(
    pipeline: &Pipeline,
    sources: &SourceMap,
    run_id: &str,
    unit: &str,
    error: &str,
    why: &str,
    color: bool,
) -> Option<String> {
    let step_name = unit.split_once('[').map_or(unit, |(s, _)| s);
    let step = pipeline.steps.iter().find(|s| s.name == step_name)?;
    let why = why.lines().next().unwrap_or("").trim();
    let message = if why.is_empty() {
        format!("step `{unit}` failed [{error}]")
    } else {
        format!("step `{unit}` failed: {why} [{error}]")
    };
    let d = Diagnostic::error(codes::STEP_FAILED, step.span, message)
        .label("this step")
        .help(format!(
            "its whole output: `topsail logs {run_id} {step_name}`"
        ));
    let width = width();
    let text = d.render(sources, color, width);
    if text.lines().all(|l| visible_width(l) <= width) {
        return Some(text);
    }
    // A source line wider than the terminal would wrap the snippet's frame:
    // name the place instead, and wrap the words.
    let (line, column) = sources.line_col(step.span.file, step.span.start);
    let file = &sources.get(step.span.file).name;
    let mut out = String::new();
    for (first, rest) in [
        (
            format!("error[{}]: ", codes::STEP_FAILED),
            d.message.as_str(),
        ),
        ("  --> ".to_string(), &format!("{file}:{line}:{column}")),
        ("  help: ".to_string(), d.help.as_str()),
    ] {
        let opts = textwrap::Options::new(width.max(20))
            .initial_indent(&first)
            .subsequent_indent("    ");
        for l in textwrap::wrap(rest, opts) {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Some(out)
}

/// Columns a rendered line takes on screen (ANSI escapes take none).
fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in line.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, c) if c.is_ascii_alphabetic() => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Every failed unit of `report`, each at its source (empty: none failed).
pub fn render_report(
    pipeline: &Pipeline,
    sources: &SourceMap,
    report: &crate::run::report::RunReport,
    color: bool,
) -> String {
    report
        .steps
        .iter()
        .filter(|u| u.status == crate::run::report::Status::Failed)
        .filter_map(|u| {
            render(
                pipeline,
                sources,
                &report.run_id,
                &u.name,
                u.error.as_deref().unwrap_or("failed"),
                u.cause.as_deref().unwrap_or(""),
                color,
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The width to render for: stderr's terminal when it is one, else
/// `$COLUMNS`, else 100.
fn width() -> usize {
    use std::io::IsTerminal;
    let err = std::io::stderr();
    if err.is_terminal()
        && let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size_of(&err)
        && w > 0
    {
        return usize::from(w);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&w: &usize| w > 0)
        .unwrap_or(100)
}
