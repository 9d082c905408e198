//! The contract between a compiled state machine and the activity worker:
//! what a step's Task state sends ([`TaskInput`]) and what the worker answers
//! ([`TaskOutput`]). A generic worker runs any step from its `TaskInput` alone,
//! without the pipeline file.
//!
//! # Task input (the activity task's `input`, JSON)
//! ```json
//! {
//!   "version": 1,
//!   "pipeline": "release",
//!   "run_id": "<$$.Execution.Name>",
//!   "step": "deploy",
//!   "image": "amazon/aws-cli:2",            // null: run on the host with /bin/sh
//!   "shell": null,                          // null: `sh -e`
//!   "script": "./deploy.sh --version {{ build.VERSION }}",
//!   "env": {"REGION": "{{ r }}"},
//!   "workdir": null,                        // null: /workspace
//!   "outputs": [{"name": "VERSION", "key": "VERSION"}],
//!   "secrets": ["REGISTRY_TOKEN"],          // names only; values come from the worker's env
//!   "timeout_seconds": 1200,                // null: none (Step Functions enforces it too)
//!   "heartbeat_seconds": 60,                // the state's HeartbeatSeconds (absent: none)
//!   "loop_var": "r",                        // the foreach variable, or null
//!   "values": {
//!     "params": {"region": "us-east-1"},
//!     "steps": {"build": {"VERSION": "1.2"}},
//!     "item": "eu-west-1",                  // the foreach item (as text), or absent
//!     "failed": {"step": "deploy", "error": "topsail.StepFailed"}  // catch handlers only
//!   }
//! }
//! ```
//! `script`, `image`, `env` values and `workdir` are texts in their source
//! form: `{{ name }}` holes, a literal `{{` written `{{ "{{" }}`. The worker
//! turns them back into [`Text`] with [`TaskInput::text`] and renders them with
//! [`crate::model::render_script`] / [`crate::model::render_text`], using the
//! input itself as the [`Scope`]; so a value is quoted exactly as locally.
//!
//! # Task output (the worker's `SendTaskSuccess` output, JSON)
//! `{"version": 1, "outputs": {"<key>": "<value>", ...}}`: one entry per
//! declared output, keyed by its `key` (a JSONPath-safe spelling of the name;
//! the state machine picks each one by path). Failures are reported with
//! `SendTaskFailure` and an error name from [`errors`].

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::model::{Piece, Ref, Scope, Text, Value};

/// Bumped when the shape changes incompatibly; the worker refuses others.
pub const TASK_INPUT_VERSION: u32 = 1;

/// Error names a worker reports with `SendTaskFailure` (timeouts are
/// reported by Step Functions itself as `States.Timeout`).
pub mod errors {
    /// A step failed and its catch handler ran (the execution's error).
    pub const STEP_FAILED: &str = "topsail.StepFailed";
    /// A declared output was not set (the local runner's name).
    pub const MISSING_OUTPUT: &str = crate::run::runtime::errors::OUTPUT_MISSING;
    /// The outputs do not fit in a Step Functions payload (256 KiB).
    pub const OUTPUT_TOO_LARGE: &str = "topsail.OutputTooLarge";
    /// The worker does not run this image (`--allow-image`) or host steps (`--allow-host`).
    pub const IMAGE_NOT_ALLOWED: &str = "topsail.ImageNotAllowed";
    /// The worker was stopped (SIGTERM) before the task finished within its grace period.
    pub const WORKER_SHUTDOWN: &str = "topsail.WorkerShutdown";
    /// Step Functions' name for a task whose worker stopped sending heartbeats.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// An approval was rejected.
    pub const REJECTED: &str = "topsail.Rejected";
    /// The task input could not be understood (wrong version, bad text).
    pub const BAD_INPUT: &str = "topsail.BadTaskInput";
    /// A required param was missing from the execution input (a Fail state).
    pub const MISSING_PARAM: &str = "topsail.MissingParam";
    /// A param in the execution input has the wrong JSON type (a Fail state).
    pub const BAD_PARAM: &str = "topsail.BadParam";
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    pub version: u32,
    pub pipeline: String,
    pub run_id: String,
    pub step: String,
    pub image: Option<String>,
    pub shell: Option<String>,
    pub script: String,
    pub env: IndexMap<String, String>,
    pub workdir: Option<String>,
    pub outputs: Vec<OutputDecl>,
    pub secrets: Vec<String>,
    pub timeout_seconds: Option<u64>,
    /// Absent in inputs from before the field existed: then the worker
    /// heartbeats at a fixed interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    pub loop_var: Option<String>,
    pub values: Values,
}

/// A declared output: its name in the language and the key the worker
/// writes it under in [`TaskOutput::outputs`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDecl {
    pub name: String,
    pub key: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Values {
    /// Every param, as in the execution input after defaults were filled.
    #[serde(default)]
    pub params: IndexMap<String, serde_json::Value>,
    /// The outputs of earlier steps this step refers to: step -> output -> value.
    #[serde(default)]
    pub steps: IndexMap<String, IndexMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Failed>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub step: String,
    pub error: String,
}

/// What the worker answers on success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    pub version: u32,
    pub outputs: IndexMap<String, String>,
}

impl TaskInput {
    /// Parse one of this input's texts (script, image, env value, workdir).
    pub fn text(&self, source: &str) -> Result<Text, String> {
        decode_text(source, self.loop_var.as_deref())
    }
}

impl Scope for TaskInput {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        let v = &self.values;
        match r {
            Ref::Param(name) => v.params.get(name).and_then(Value::from_json),
            Ref::Loop(_) => v.item.clone().map(Value::Str),
            Ref::Output { step, output } => v
                .steps
                .get(step)
                .and_then(|o| o.get(output))
                .map(|s| Value::Str(s.clone())),
            Ref::PipelineName => Some(Value::Str(self.pipeline.clone())),
            Ref::RunId => Some(Value::Str(self.run_id.clone())),
            Ref::StepName => Some(Value::Str(self.step.clone())),
            Ref::FailedStep => v.failed.as_ref().map(|f| Value::Str(f.step.clone())),
            Ref::FailedError => v.failed.as_ref().map(|f| Value::Str(f.error.clone())),
        }
    }
}

/// A text in source form, with a literal `{{` written `{{ "{{" }}` so that
/// [`decode_text`] gives back exactly the same pieces.
pub fn encode_text(text: &Text) -> String {
    let mut out = String::new();
    for p in &text.parts {
        match p {
            Piece::Lit(s) => out.push_str(&s.replace("{{", "{{ \"{{\" }}")),
            Piece::Ref(r) => {
                out.push_str("{{ ");
                out.push_str(&r.to_string());
                out.push_str(" }}");
            }
        }
    }
    out
}

/// The inverse of [`encode_text`]. `loop_var` tells a bare name that is the
/// foreach variable from a param.
pub fn decode_text(source: &str, loop_var: Option<&str>) -> Result<Text, String> {
    let mut parts: Vec<Piece> = Vec::new();
    let mut lit = String::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        lit.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = find_close(after).ok_or_else(|| format!("unclosed `{{{{` in `{source}`"))?;
        let inner = after[..close].trim();
        rest = &after[close + 2..];
        if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            lit.push_str(
                &crate::syntax::interp::unescape(quoted)
                    .ok_or_else(|| format!("bad string `{inner}`"))?,
            );
            continue;
        }
        if !lit.is_empty() {
            parts.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        parts.push(Piece::Ref(decode_ref(inner, loop_var)?));
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Piece::Lit(lit));
    }
    Ok(Text { parts })
}

/// The `}}` closing a hole, skipping over a quoted string inside it.
fn find_close(s: &str) -> Option<usize> {
    let mut in_str = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'}' if !in_str && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn decode_ref(inner: &str, loop_var: Option<&str>) -> Result<Ref, String> {
    Ok(match inner {
        "pipeline.name" => Ref::PipelineName,
        "run.id" => Ref::RunId,
        "step.name" => Ref::StepName,
        "failed.step" => Ref::FailedStep,
        "failed.error" => Ref::FailedError,
        _ => match inner.rsplit_once('.') {
            Some((step, output)) if !step.is_empty() && !output.is_empty() => Ref::Output {
                step: step.to_string(),
                output: output.to_string(),
            },
            Some(_) => return Err(format!("bad reference `{inner}`")),
            None if Some(inner) == loop_var => Ref::Loop(inner.to_string()),
            None if crate::syntax::interp::is_name(inner) => Ref::Param(inner.to_string()),
            None => return Err(format!("bad reference `{inner}`")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_survive_the_trip() {
        let t = Text {
            parts: vec![
                Piece::Lit("docker inspect -f '{{.Id}}' ".into()),
                Piece::Ref(Ref::Output {
                    step: "mod.build".into(),
                    output: "VERSION".into(),
                }),
                Piece::Lit(" ".into()),
                Piece::Ref(Ref::Loop("r".into())),
                Piece::Ref(Ref::Param("region".into())),
                Piece::Ref(Ref::FailedError),
            ],
        };
        let src = encode_text(&t);
        assert_eq!(decode_text(&src, Some("r")), Ok(t));
        assert!(decode_text("{{ oops", None).is_err());
    }

    #[test]
    fn input_is_a_scope() {
        let input: TaskInput = serde_json::from_value(serde_json::json!({
            "version": 1, "pipeline": "p", "run_id": "r1", "step": "s",
            "image": null, "shell": null, "script": "echo {{ b.V }} {{ n }}",
            "env": {}, "workdir": null, "outputs": [], "secrets": [],
            "timeout_seconds": null, "loop_var": null,
            "values": {"params": {"n": 3}, "steps": {"b": {"V": "x y"}}}
        }))
        .unwrap();
        let script = input.text(&input.script).unwrap();
        let out = crate::model::render_script(&script, &input, None).unwrap();
        assert_eq!(out, "echo 'x y' 3");
    }
}
