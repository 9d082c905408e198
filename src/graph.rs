//! The DAG as text for people and tools: Graphviz dot and Mermaid. Shared by
//! `topsail graph` and `topsail compile --to dot|mermaid`.
//!
//! Shapes say what a step is: a box runs a script, a hexagon is an approval
//! gate, a box with a double border runs once per item (`foreach`), a dashed
//! box is a catch handler and a dashed edge leads to it; a step with `when`
//! is marked `?`.

use std::fmt::Write as _;

use crate::model::{Action, Pipeline, Step};

fn label(step: &Step) -> String {
    let mut label = step.name.clone();
    if step.when.is_some() {
        label.push_str(" ?");
    }
    if let Some(f) = &step.foreach {
        let _ = write!(label, " (each {})", f.var);
    }
    label
}

fn dot_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz dot.
pub fn dot(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", dot_quote(&p.name));
    out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for s in &p.steps {
        let mut attrs = vec![format!("label={}", dot_quote(&label(s)))];
        match &s.action {
            Action::Approval { .. } => attrs.push("shape=hexagon".into()),
            Action::Script(_) if s.foreach.is_some() => attrs.push("peripheries=2".into()),
            Action::Script(_) => {}
        }
        if s.is_handler {
            attrs.push("style=\"rounded,dashed\"".into());
        }
        let _ = writeln!(out, "  {} [{}];", dot_quote(&s.name), attrs.join(", "));
    }
    for s in &p.steps {
        for n in &s.needs {
            let _ = writeln!(
                out,
                "  {} -> {};",
                dot_quote(&p.step(*n).name),
                dot_quote(&s.name)
            );
        }
        if let Some(c) = &s.catch {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed, color=red, label=\"on failure\"];",
                dot_quote(&s.name),
                dot_quote(c)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// A Mermaid flowchart. Node ids are `s0`, `s1`, ... so any step name is safe.
pub fn mermaid(p: &Pipeline) -> String {
    let mut out = String::from("flowchart LR\n");
    let esc = |s: &str| s.replace('"', "#quot;");
    for s in &p.steps {
        let id = format!("s{}", s.id.0);
        let text = esc(&label(s));
        let node = match &s.action {
            Action::Approval { .. } => format!("{id}{{{{\"{text}\"}}}}"),
            Action::Script(_) if s.foreach.is_some() => format!("{id}[[\"{text}\"]]"),
            Action::Script(_) => format!("{id}[\"{text}\"]"),
        };
        let _ = writeln!(out, "  {node}");
    }
    for s in &p.steps {
        for n in &s.needs {
            let _ = writeln!(out, "  s{} --> s{}", n.0, s.id.0);
        }
        if let Some(c) = s.catch.as_deref().and_then(|c| p.step_by_name(c)) {
            let _ = writeln!(out, "  s{} -. on failure .-> s{}", s.id.0, c.id.0);
        }
    }
    let handlers: Vec<String> = p
        .steps
        .iter()
        .filter(|s| s.is_handler)
        .map(|s| format!("s{}", s.id.0))
        .collect();
    if !handlers.is_empty() {
        out.push_str("  classDef handler stroke-dasharray: 5 5\n");
        let _ = writeln!(out, "  class {} handler", handlers.join(","));
    }
    out
}
