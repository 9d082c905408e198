//! The contract between a compiled state machine and the activity worker:
//! what a step's Task state sends ([`TaskInput`]) and what the worker answers
//! ([`TaskOutput`]). A generic worker runs any step from its `TaskInput` alone,
//! without the pipeline file.
//!
//! # Task input (the activity task's `input`, JSON)
//! ```json
//! {
//!   "version": 2,
//!   "pipeline": "release",
//!   "run_id": "<$$.Execution.Name>",
//!   "step": "deploy",
//!   "image": "amazon/aws-cli:2",            // absent: run on the host with /bin/sh
//!   "shell": "bash -e",                     // absent: `sh -e`
//!   "script": "./deploy.sh --version {{ build.VERSION }}",
//!   "env": {"REGION": "{{ r }}"},           // absent: none
//!   "workdir": "/src",                      // absent: /workspace
//!   "outputs": [{"name": "VERSION"}, {"name": "image-id", "key": "image_id"}],  // absent: none
//!   "secrets": ["REGISTRY_TOKEN"],          // names only; values from the worker's env, if it allows them (--secret); absent: none
//!   "aws": {"role": "arn:aws:iam::123456789012:role/publisher"},  // `aws` ({}) or `aws role`; absent: no AWS credentials
//!   "timeout_seconds": 1200,                // absent: none (Step Functions enforces it too)
//!   "heartbeat_seconds": 30,                // the state's HeartbeatSeconds; absent: 60 or none
//!   "loop_var": "r",                        // the foreach variable; absent: none
//!   "values": {                             // absent when all its fields are
//!     "params": {"region": "us-east-1"},    // every param; absent: the texts use none
//!     "steps": {"build": {"VERSION": "1.2"}},  // outputs of the steps the texts use; absent: none
//!     "item": "eu-west-1",                  // the foreach item (as text), or absent
//!     "failed": {"step": "deploy", "error": "topsail.StepFailed"}  // catch handlers only
//!   }
//! }
//! ```
//! The state machine leaves out every field at its default (absent above):
//! every Task state carries an input, and these are most of the definition.
//! An output's `key` is absent when it is the name. (`null`, which version 1
//! wrote for the optional texts and numbers, reads as absent.)
//!
//! `script`, `image`, `env` values and `workdir` are texts in their source
//! form: `{{ name }}` holes, a literal `{{` written `{{ "{{" }}`, and a
//! template argument's value (data, not script text) `{{ value "..." }}`.
//! The worker turns them back into [`Text`] with [`TaskInput::text`] and
//! renders them with [`crate::model::render_script`] /
//! [`crate::model::render_text`], using the input itself as the [`Scope`];
//! so a value reaches the script exactly as locally: through an environment
//! variable, never as script text.
//!
//! Version 1 had every field present (`null`, `{}` or `[]` at the default),
//! every output's `key` and always the params. It reads the same way, so a
//! worker reads versions [`OLDEST_TASK_INPUT_VERSION`] to
//! [`TASK_INPUT_VERSION`]; a worker older than version 2 cannot read
//! version 2 inputs (it fails them as `topsail.BadTaskInput`).
//!
//! # Task output (the worker's `SendTaskSuccess` output, JSON)
//! `{"version": 2, "outputs": {"<key>": "<value>", ...}}`: one entry per
//! declared output, keyed by its `key` (a JSONPath-safe spelling of the name;
//! the state machine picks each one by path). Failures are reported with
//! `SendTaskFailure` and an error name from [`crate::model::errors`].

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::model::{Piece, Ref, Scope, Text, Value};

/// Bumped when the shape changes incompatibly; the worker refuses versions
/// outside [`OLDEST_TASK_INPUT_VERSION`]..=this.
pub const TASK_INPUT_VERSION: u32 = 2;
/// The oldest version a worker still reads (see the module doc).
pub const OLDEST_TASK_INPUT_VERSION: u32 = 1;

// Fields at their default are left out when written and read as the
// default when absent, as the module doc says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskInput {
    pub version: u32,
    pub pipeline: String,
    pub run_id: String,
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    pub script: String,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputDecl>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// `aws` (`{}`: the worker's own credentials) or `aws role` (`{"role":
    /// ARN}`: assumed through STS); absent: the step gets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<crate::model::Aws>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Absent: the state's HeartbeatSeconds is the default 60 s
    /// ([`crate::model::limits::DEFAULT_HEARTBEAT_SECONDS`]), or it has none, or the
    /// input is from before the field existed; the worker then heartbeats
    /// every 20 s, which suits all three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_var: Option<String>,
    #[serde(default, skip_serializing_if = "Values::is_empty")]
    pub values: Values,
}

/// A declared output: its name in the language and the key the worker
/// writes it under in [`TaskOutput::outputs`] (in the input, `key` is
/// absent when it is the name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OutputDeclText", into = "OutputDeclText")]
pub struct OutputDecl {
    pub name: String,
    pub key: String,
}

#[derive(Serialize, Deserialize)]
struct OutputDeclText {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl From<OutputDeclText> for OutputDecl {
    fn from(o: OutputDeclText) -> Self {
        let key = o.key.unwrap_or_else(|| o.name.clone());
        OutputDecl { name: o.name, key }
    }
}

impl From<OutputDecl> for OutputDeclText {
    fn from(o: OutputDecl) -> Self {
        let key = (o.key != o.name).then_some(o.key);
        OutputDeclText { name: o.name, key }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Values {
    /// Every param, as in the execution input after defaults were filled
    /// (none when the step's texts use no param).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub params: IndexMap<String, serde_json::Value>,
    /// The outputs of earlier steps this step refers to: step -> output ->
    /// value (a step's outputs used, or all of them).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
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

impl Values {
    fn is_empty(&self) -> bool {
        self.params.is_empty()
            && self.steps.is_empty()
            && self.item.is_none()
            && self.failed.is_none()
    }
}

/// What the worker answers on success.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutput {
    pub version: u32,
    pub outputs: IndexMap<String, String>,
}

impl TaskInput {
    /// Read a task input: its version first, so that an input of a version
    /// this worker does not read is refused as such, whatever its shape.
    pub fn read(input: &str) -> Result<TaskInput, String> {
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let v: Versioned =
            serde_json::from_str(input).map_err(|e| format!("cannot read the task input: {e}"))?;
        if !(OLDEST_TASK_INPUT_VERSION..=TASK_INPUT_VERSION).contains(&v.version) {
            return Err(format!(
                "task input version {} (this worker reads versions {OLDEST_TASK_INPUT_VERSION} to {TASK_INPUT_VERSION}): upgrade topsail on the worker or redeploy",
                v.version
            ));
        }
        serde_json::from_str(input).map_err(|e| format!("cannot read the task input: {e}"))
    }

    /// Parse one of this input's texts (script, image, env value, workdir).
    /// `a.b` is an output of step `a` when the input carries that step's
    /// outputs, as the checker resolves it: a step named `failed` (or `run`,
    /// `pipeline`, `step`) wins over the built-in of the same spelling, and
    /// the state machine passes the outputs of every step the texts use.
    pub fn text(&self, source: &str) -> Result<Text, String> {
        decode_text_with(source, self.loop_var.as_deref(), &|step| {
            self.values.steps.contains_key(step)
        })
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
    let mut parts = Vec::new();
    encode_text_parts(text, &mut parts);
    parts.concat()
}

/// [`encode_text`] as pieces to join, appended to `parts`: nothing is built
/// (the state machine writes thousands of them).
pub fn encode_text_parts<'t>(text: &'t Text, parts: &mut Vec<&'t str>) {
    for p in &text.parts {
        match p {
            Piece::Lit(s) => {
                let mut rest = s.as_str();
                while let Some(i) = rest.find("{{") {
                    parts.push(&rest[..i]);
                    parts.push("{{ \"{{\" }}");
                    rest = &rest[i + 2..];
                }
                parts.push(rest);
            }
            Piece::Ref(r) => {
                parts.push("{{ ");
                // As `Ref`'s Display writes it.
                match r {
                    Ref::Param(n) | Ref::Loop(n) => parts.push(n),
                    Ref::Output { step, output } => parts.extend([step.as_str(), ".", output]),
                    Ref::PipelineName => parts.push("pipeline.name"),
                    Ref::RunId => parts.push("run.id"),
                    Ref::StepName => parts.push("step.name"),
                    Ref::FailedStep => parts.push("failed.step"),
                    Ref::FailedError => parts.push("failed.error"),
                }
                parts.push(" }}");
            }
            Piece::Value(v) => {
                // `{{ value "..." }}`, escaped without building a string.
                parts.push("{{ value \"");
                let mut rest = v.as_str();
                while let Some(i) = rest.find(['"', '\\']) {
                    parts.push(&rest[..i]);
                    parts.push(if rest[i..].starts_with('"') {
                        "\\\""
                    } else {
                        "\\\\"
                    });
                    rest = &rest[i + 1..];
                }
                parts.push(rest);
                parts.push("\" }}");
            }
        }
    }
}

/// The inverse of [`encode_text`]. `loop_var` tells a bare name that is the
/// foreach variable from a param. Without the task input's values it cannot
/// tell an output of a step named like a built-in (`failed.step`) from the
/// built-in: [`TaskInput::text`] can.
pub fn decode_text(source: &str, loop_var: Option<&str>) -> Result<Text, String> {
    decode_text_with(source, loop_var, &|_| false)
}

/// [`decode_text`], with `is_step(a)` true when `a.b` names an output of
/// step `a` even where `a.b` is a built-in's spelling.
fn decode_text_with(
    source: &str,
    loop_var: Option<&str>,
    is_step: &dyn Fn(&str) -> bool,
) -> Result<Text, String> {
    let mut parts: Vec<Piece> = Vec::new();
    let mut lit = String::new();
    let mut rest = source;
    while let Some(open) = rest.find("{{") {
        lit.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        // The front ends' rule (`interp::split`): a hole ends at the first
        // `}}`. Only a value, which only the writer makes, may hold `}}`.
        let close = if after.trim_start().starts_with("value") {
            find_close(after)
        } else {
            after.find("}}")
        }
        .ok_or_else(|| format!("unclosed `{{{{` in `{source}`"))?;
        let inner = after[..close].trim();
        rest = &after[close + 2..];
        if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            lit.push_str(
                &crate::model::text::unescape(quoted)
                    .ok_or_else(|| format!("bad string `{inner}`"))?,
            );
            continue;
        }
        if !lit.is_empty() {
            parts.push(Piece::Lit(std::mem::take(&mut lit)));
        }
        if let Some(quoted) = inner
            .strip_prefix("value")
            .map(str::trim_start)
            .and_then(|s| s.strip_prefix('"'))
            .and_then(|s| s.strip_suffix('"'))
        {
            parts.push(Piece::Value(
                crate::model::text::unescape(quoted)
                    .ok_or_else(|| format!("bad string `{inner}`"))?,
            ));
            continue;
        }
        parts.push(Piece::Ref(decode_ref(inner, loop_var, is_step)?));
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Piece::Lit(lit));
    }
    Ok(Text { parts })
}

/// The `}}` closing a `{{ value "..." }}` hole, skipping over its string.
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

fn decode_ref(
    inner: &str,
    loop_var: Option<&str>,
    is_step: &dyn Fn(&str) -> bool,
) -> Result<Ref, String> {
    // As the front ends read a hole: one to three names, joined by dots.
    let names = inner.split('.');
    if names.clone().count() > 3 || !names.into_iter().all(crate::model::text::is_name) {
        return Err(format!("bad reference `{inner}`"));
    }
    let builtin = inner.split_once('.').is_none_or(|(a, _)| !is_step(a));
    Ok(match inner {
        _ if !builtin => match inner.rsplit_once('.') {
            Some((step, output)) if !output.is_empty() => Ref::Output {
                step: step.to_string(),
                output: output.to_string(),
            },
            _ => return Err(format!("bad reference `{inner}`")),
        },
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
            None if crate::model::text::is_name(inner) => Ref::Param(inner.to_string()),
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
        for r in [
            Ref::PipelineName,
            Ref::RunId,
            Ref::StepName,
            Ref::FailedStep,
            Ref::FailedError,
        ] {
            let t = Text {
                parts: vec![Piece::Ref(r.clone())],
            };
            assert_eq!(encode_text(&t), format!("{{{{ {r} }}}}"));
        }
        let t = Text::literal("a{{b{{{c}}");
        assert_eq!(encode_text(&t), "a{{ \"{{\" }}b{{ \"{{\" }}{c}}");
        assert_eq!(decode_text(&encode_text(&t), None), Ok(t));
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
        assert_eq!(out.script, "echo \"${TOPSAIL_V1_b_V}\" \"${TOPSAIL_V2_n}\"");
        assert_eq!(
            out.env,
            vec![
                ("TOPSAIL_V1_b_V".to_string(), "x y".to_string()),
                ("TOPSAIL_V2_n".to_string(), "3".to_string())
            ]
        );
    }

    #[test]
    fn template_values_survive_the_trip() {
        let t = Text {
            parts: vec![
                Piece::Lit("echo ".into()),
                Piece::Value("a \"b\" \\ }} {{ c\n".into()),
                Piece::Ref(Ref::Param("n".into())),
                Piece::Value(String::new()),
            ],
        };
        assert_eq!(decode_text(&encode_text(&t), None), Ok(t));
    }

    #[test]
    fn version_1_and_version_2_inputs_read_the_same() {
        let v1 = serde_json::json!({
            "version": 1, "pipeline": "p", "run_id": "r1", "step": "s",
            "image": null, "shell": null, "script": "echo",
            "env": {}, "workdir": null,
            "outputs": [{"name": "A", "key": "A"}, {"name": "B-C", "key": "B_C"}],
            "secrets": [], "timeout_seconds": null, "heartbeat_seconds": 60,
            "loop_var": null, "values": {"params": {}, "steps": {}}
        });
        let v2 = serde_json::json!({
            "version": 2, "pipeline": "p", "run_id": "r1", "step": "s", "script": "echo",
            "outputs": [{"name": "A"}, {"name": "B-C", "key": "B_C"}],
            "heartbeat_seconds": 60
        });
        let a = TaskInput::read(&v1.to_string()).unwrap();
        let b = TaskInput::read(&v2.to_string()).unwrap();
        assert_eq!(TaskInput { version: 2, ..a }, b);
        assert_eq!(b.outputs[0].key, "A");
        // Written back, the defaults are left out again.
        assert_eq!(serde_json::to_value(&b).unwrap(), v2);
    }

    #[test]
    fn other_versions_are_refused_before_their_shape_is_read() {
        for v in [0, TASK_INPUT_VERSION + 1] {
            let e = TaskInput::read(&format!(r#"{{"version": {v}, "something": "else"}}"#))
                .unwrap_err();
            assert!(e.starts_with(&format!("task input version {v} ")), "{e}");
        }
        let e = TaskInput::read(r#"{"version": 2}"#).unwrap_err();
        assert!(
            e.starts_with("cannot read the task input: missing field"),
            "{e}"
        );
    }
}
