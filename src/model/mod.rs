//! The checked pipeline: the one intermediate representation every back end
//! reads (the local runner, the ASL compiler, `graph`, the worker). Only the
//! checker (`crate::check`) builds it, so a `Pipeline` is always well formed:
//! every name is resolved, every type checked, the DAG acyclic, templates
//! expanded. Spans are kept for diagnostics that later stages report (ASL
//! limits) but are not part of a pipeline's meaning: the serialized form
//! (`to_canonical_json`) leaves them out, and two pipelines mean the same
//! thing when that form is equal.

pub mod errors;
mod eval;
pub mod image_ref;
pub mod limits;
pub mod text;

pub use eval::{
    EvalError, HOLE_VAR_PREFIX, HoleProblem, Place, RenderedScript, Scope, env_value_fits,
    place_holes, render_script, render_text, script_problems, truthy,
};

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Serialize, Serializer};

use crate::source::Span;

/// Index of a step in [`Pipeline::steps`] (and of its node in the graph).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StepId(pub usize);

impl StepId {
    pub fn node(self) -> NodeIndex {
        NodeIndex::new(self.0)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Pipeline {
    pub name: String,
    pub params: IndexMap<String, Param>,
    pub secrets: IndexMap<String, Secret>,
    /// Steps in declaration order (imported modules' steps after the root's).
    pub steps: Vec<Step>,
    /// `needs` edges: an edge a -> b means b needs a. Node i is `StepId(i)`.
    #[serde(skip)]
    pub graph: DiGraph<StepId, ()>,
}

impl Pipeline {
    pub fn step(&self, id: StepId) -> &Step {
        &self.steps[id.0]
    }

    pub fn step_by_name(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// Steps in an order where every step comes after all it needs
    /// (declaration order among independent steps).
    pub fn topo_order(&self) -> Vec<StepId> {
        let mut indegree: Vec<usize> = self.steps.iter().map(|s| s.needs.len()).collect();
        let mut ready: std::collections::BTreeSet<usize> = indegree
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == 0)
            .map(|(i, _)| i)
            .collect();
        let mut order = Vec::with_capacity(self.steps.len());
        while let Some(i) = ready.pop_first() {
            order.push(StepId(i));
            for next in self.graph.neighbors(NodeIndex::new(i)) {
                let j = next.index();
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.insert(j);
                }
            }
        }
        order
    }

    /// The steps that need `id` directly.
    pub fn dependants(&self, id: StepId) -> impl Iterator<Item = StepId> + '_ {
        self.graph.neighbors(id.node()).map(|n| StepId(n.index()))
    }

    /// Every step `id` needs, directly or through others.
    pub fn ancestors(&self, id: StepId) -> Vec<StepId> {
        let mut seen = vec![false; self.steps.len()];
        let mut stack: Vec<StepId> = self.step(id).needs.clone();
        let mut out = Vec::new();
        while let Some(s) = stack.pop() {
            if !std::mem::replace(&mut seen[s.0], true) {
                out.push(s);
                stack.extend(self.step(s).needs.iter().copied());
            }
        }
        out.sort();
        out
    }

    /// The pipeline's meaning as JSON: everything but spans and the graph
    /// (which `needs` already says). Equal JSON means equal pipelines.
    pub fn to_canonical_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the model serializes to JSON")
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    /// `None`: required.
    pub default: Option<Value>,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct Secret {
    pub name: String,
    #[serde(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Type {
    String,
    Int,
    Bool,
    Duration,
    List,
    /// Floats appear only as `backoff` factors and template arguments.
    Float,
}

impl Type {
    pub fn parse(name: &str) -> Option<Type> {
        Some(match name {
            "string" => Type::String,
            "int" => Type::Int,
            "bool" => Type::Bool,
            "duration" => Type::Duration,
            "list" => Type::List,
            _ => return None,
        })
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Type::String => "string",
            Type::Int => "int",
            Type::Bool => "bool",
            Type::Duration => "duration",
            Type::List => "list",
            Type::Float => "float",
        })
    }
}

/// A typed value: a param default, a `--param`, a list item.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(Duration),
    List(Vec<Value>),
}

impl Value {
    pub fn ty(&self) -> Type {
        match self {
            Value::Str(_) => Type::String,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::Bool(_) => Type::Bool,
            Value::Duration(_) => Type::Duration,
            Value::List(_) => Type::List,
        }
    }

    /// Parse a command-line or execution-input value as `ty`.
    pub fn parse_as(ty: Type, text: &str) -> Result<Value, String> {
        match ty {
            Type::String => Ok(Value::Str(text.to_string())),
            Type::Int => text
                .trim()
                .parse()
                .map(Value::Int)
                .map_err(|_| format!("`{text}` is not an int")),
            Type::Float => text
                .trim()
                .parse()
                .map(Value::Float)
                .map_err(|_| format!("`{text}` is not a number")),
            Type::Bool => match text.trim() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("`{text}` is not a bool (use true or false)")),
            },
            Type::Duration => parse_duration(text.trim())
                .map(Value::Duration)
                .map_err(|e| format!("`{text}` is not a duration: {e}")),
            Type::List => {
                let t = text.trim();
                if t.starts_with('[') {
                    let json: serde_json::Value = serde_json::from_str(t)
                        .map_err(|e| format!("`{text}` is not a list: {e}"))?;
                    Value::from_json(&json).ok_or_else(|| format!("`{text}` is not a list"))
                } else if t.is_empty() {
                    Ok(Value::List(Vec::new()))
                } else {
                    Ok(Value::List(
                        t.split(',')
                            .map(|s| Value::Str(s.trim().to_string()))
                            .collect(),
                    ))
                }
            }
        }
    }

    pub fn from_json(json: &serde_json::Value) -> Option<Value> {
        Some(match json {
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64()?),
            },
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect::<Option<_>>()?)
            }
            _ => return None,
        })
    }

    /// The JSON form used in run records and Step Functions input.
    /// Durations travel as their text (`90s`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Duration(d) => serde_json::Value::String(format_duration(*d)),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
        }
    }

    /// The text a value becomes when substituted into a string or script.
    /// Lists become their items separated by spaces.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_float(*f),
            Value::Bool(b) => b.to_string(),
            Value::Duration(d) => format_duration(*d),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Floats print with at least one decimal (`2.0`), as the language writes them.
pub fn format_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Parse `90s`, `15m`, `24h`, `500ms`, `2d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(digits_end);
    if num.is_empty() {
        return Err("a duration starts with a whole number".into());
    }
    let n: u64 = num
        .parse()
        .map_err(|_| "the number is too large".to_string())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        "" => return Err("the unit is missing (ms, s, m, h or d)".into()),
        other => return Err(format!("`{other}` is not a unit (ms, s, m, h or d)")),
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| "the duration is too large".to_string())
}

/// The shortest exact form: `90s` stays `90s`, `3600s` becomes `1h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

// serde's `serialize_with` hands over `&Option<T>`.
#[allow(clippy::ref_option)]
fn ser_opt_duration<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&format_duration(*d)),
        None => s.serialize_none(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub id: StepId,
    pub name: String,
    /// The step's name where it was declared.
    #[serde(skip)]
    pub span: Span,
    /// Direct needs, in the order written.
    #[serde(serialize_with = "ser_step_names")]
    pub needs: Vec<StepId>,
    #[serde(skip)]
    pub need_names: Vec<String>,
    pub action: Action,
    /// Pipeline env, then the step's own (which overrides), in order.
    pub env: IndexMap<String, Text>,
    /// Working directory inside the container; `None` means `/workspace`.
    pub workdir: Option<Text>,
    pub outputs: Vec<String>,
    /// Names of the declared secrets this step asked for.
    pub secrets: Vec<String>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub timeout: Option<Duration>,
    #[serde(serialize_with = "ser_opt_duration")]
    pub heartbeat: Option<Duration>,
    pub retry: Option<Retry>,
    pub when: Option<Cond>,
    pub foreach: Option<Foreach>,
    /// The handler to run when this step fails after its retries.
    pub catch: Option<String>,
    /// True when some step names this one in `catch`: it runs only as a handler.
    pub is_handler: bool,
    /// The worker queue that serves the step on Step Functions (`queue`,
    /// or the file's default); `None`: the pipeline's own activity.
    pub queue: Option<String>,
    /// AWS credentials for the step (`aws` / `aws role "ARN"`).
    pub aws: Option<Aws>,
}

/// `aws` (the runner's own credentials) or `aws role "ARN"` (short-lived
/// ones for that role, assumed by whoever runs the step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Aws {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

fn ser_step_names<S: Serializer>(ids: &[StepId], s: S) -> Result<S::Ok, S::Error> {
    // Needs are serialized by index; names would need the pipeline. Indices
    // are stable for equal pipelines, since steps keep declaration order.
    s.collect_seq(ids.iter().map(|i| i.0))
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Script(Script),
    Approval { message: Text },
}

#[derive(Clone, Debug, Serialize)]
pub struct Script {
    /// The image; `None` runs on the host.
    pub image: Option<Text>,
    /// The interpreter; `None` means `sh -e`.
    pub shell: Option<String>,
    /// All `run` texts of the step, joined with newlines.
    pub run: Text,
}

/// Retry with the meaning of an ASL Retrier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Retry {
    /// Attempts after the first (ASL `MaxAttempts`).
    pub max_attempts: u32,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub backoff: f64,
}

impl Retry {
    /// The wait before retry number `n` (1-based): interval * backoff^(n-1).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = self.backoff.powi(n.saturating_sub(1) as i32);
        Duration::from_secs_f64((self.interval.as_secs_f64() * factor).min(1e9))
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Foreach {
    pub var: String,
    pub items: ForeachItems,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeachItems {
    List(Vec<Value>),
    Param(String),
}

/// Text with resolved holes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Text {
    pub parts: Vec<Piece>,
}

impl Text {
    pub fn literal(s: impl Into<String>) -> Text {
        Text {
            parts: vec![Piece::Lit(s.into())],
        }
    }

    /// The text as written in the language (`{{ build.VERSION }}` for holes).
    pub fn source_text(&self) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Ref(r) => {
                    out.push_str("{{ ");
                    out.push_str(&r.to_string());
                    out.push_str(" }}");
                }
                Piece::Value(v) => {
                    out.push_str("{{ \"");
                    out.push_str(&text::escape(v));
                    out.push_str("\" }}");
                }
            }
        }
        out
    }

    pub fn refs(&self) -> impl Iterator<Item = &Ref> {
        self.parts.iter().filter_map(|p| match p {
            Piece::Ref(r) => Some(r),
            Piece::Lit(_) | Piece::Value(_) => None,
        })
    }

    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Piece::Lit(s) | Piece::Value(s) => out.push_str(s),
                Piece::Ref(_) => return None,
            }
        }
        Some(out)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source_text())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Text as written: in a `run`, shell code.
    Lit(String),
    Ref(Ref),
    /// A value known when the pipeline is checked: a template's argument.
    /// In a `run` it is data like a [`Piece::Ref`]'s value, never code;
    /// elsewhere it is text like a [`Piece::Lit`].
    Value(String),
}

/// What a hole or a `when` operand names, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ref {
    Param(String),
    /// The `foreach` variable of the step.
    Loop(String),
    Output {
        step: String,
        output: String,
    },
    PipelineName,
    RunId,
    StepName,
    /// `{{ failed.step }}` in a catch handler.
    FailedStep,
    /// `{{ failed.error }}` in a catch handler.
    FailedError,
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Param(n) | Ref::Loop(n) => f.write_str(n),
            Ref::Output { step, output } => write!(f, "{step}.{output}"),
            Ref::PipelineName => f.write_str("pipeline.name"),
            Ref::RunId => f.write_str("run.id"),
            Ref::StepName => f.write_str("step.name"),
            Ref::FailedStep => f.write_str("failed.step"),
            Ref::FailedError => f.write_str("failed.error"),
        }
    }
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A checked `when` condition.
///
/// Meaning (the same locally and in ASL): `==`/`!=` compare two operands of
/// the same type (outputs and loop variables are strings); a bare operand is
/// true when it is the bool `true` or the string `"true"`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cond {
    Or(Box<Cond>, Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Eq(Operand, Operand),
    Ne(Operand, Operand),
    Truthy(Operand),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operand {
    Lit(Value),
    /// A reference and the type it has (params: their type; outputs and loop
    /// variables: string).
    Ref(Ref, Type),
}

impl Operand {
    pub fn ty(&self) -> Type {
        match self {
            Operand::Lit(v) => v.ty(),
            Operand::Ref(_, t) => *t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_mins(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10").is_err());
        assert_eq!(format_duration(Duration::from_hours(1)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn retry_delay_follows_backoff() {
        let r = Retry {
            max_attempts: 3,
            interval: Duration::from_secs(2),
            backoff: 2.0,
        };
        assert_eq!(r.delay(1), Duration::from_secs(2));
        assert_eq!(r.delay(3), Duration::from_secs(8));
    }

    #[test]
    fn params_parse_by_type() {
        assert_eq!(Value::parse_as(Type::Int, "3"), Ok(Value::Int(3)));
        assert!(Value::parse_as(Type::Int, "x").is_err());
        assert_eq!(Value::parse_as(Type::Bool, "true"), Ok(Value::Bool(true)));
        assert_eq!(
            Value::parse_as(Type::List, "a, b"),
            Ok(Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
        assert_eq!(
            Value::parse_as(Type::List, r#"["a","b"]"#),
            Ok(Value::List(vec![
                Value::Str("a".into()),
                Value::Str("b".into())
            ]))
        );
    }
}
