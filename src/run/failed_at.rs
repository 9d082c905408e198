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
    Some(d.render_within(sources, color, width()))
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
