//! The local runner (`topsail run`): executes a checked [`Pipeline`] with the
//! meaning of LANGUAGE.md section 7, each step on the host or in a container.
//!
//! Layout: [`scheduler`] walks the DAG and decides what starts, is skipped or
//! is not run; `attempt` runs one unit's attempts (retries, lines, log) and
//! `approval` decides a local approval; [`spec`] builds a step's [`runtime::StepSpec`] from the model
//! (the one builder, shared with the Step Functions activity worker);
//! [`runtime`] is the contract for running one step (shared with the
//! worker too), implemented by [`host`] and
//! [`docker`]; [`outputs`] reads `$TOPSAIL_OUTPUT`; [`record`] writes
//! `.topsail/runs/<id>/`; [`ui`] prints; [`plan`] is `--dry-run`; [`watch`]
//! is `--watch`. This module holds the options and what they share: params,
//! secrets and their masking, the evaluation scope.

mod approval;
mod attempt;
pub mod aws;
pub mod direct;
pub mod docker;
pub mod failed_at;
pub mod host;
pub mod outputs;
pub mod plan;
pub mod record;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod spec;
pub mod ui;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::model::{Pipeline, Ref, Scope, Value};
use crate::run::runtime::Runtime;

pub use report::{RunReport, RunStatus};
pub use scheduler::execute;

/// What `topsail run` was asked to do, resolved and validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The directory holding the pipeline file: the steps' working directory.
    pub pipeline_dir: PathBuf,
    pub pipeline_file: PathBuf,
    pub jobs: usize,
    pub params: IndexMap<String, Value>,
    /// Only these steps and what they need; empty: every step.
    pub targets: Vec<String>,
    pub keep_going: bool,
    pub approve: Vec<String>,
    pub approve_all: bool,
    /// Colours in the log prefixes and the summary.
    pub color: bool,
    /// Live progress line and approval prompts.
    pub interactive: bool,
    /// Where attempt directories (TMPDIR, outputs) are made.
    pub tmp_base: PathBuf,
}

/// The two runtimes a run may use: the host, and containers for steps with an image.
#[derive(Clone)]
pub struct Runtimes {
    pub host: Arc<dyn Runtime>,
    pub container: Arc<dyn Runtime>,
}

impl Runtimes {
    pub fn real() -> Runtimes {
        Runtimes {
            host: Arc::new(host::HostRuntime::default()),
            container: Arc::new(docker::DockerRuntime::default()),
        }
    }

    /// The runtime for `spec`: a container when it names an image, the host
    /// otherwise.
    pub fn for_spec(&self, spec: &runtime::StepSpec) -> Arc<dyn Runtime> {
        if spec.image.is_some() {
            self.container.clone()
        } else {
            self.host.clone()
        }
    }

    /// For the activity worker: host steps do not inherit its environment
    /// (see [`host`]).
    pub fn worker() -> Runtimes {
        Runtimes {
            host: Arc::new(host::HostRuntime::clean_env()),
            container: Arc::new(docker::DockerRuntime::default()),
        }
    }
}

/// Type-check `--param NAME=VALUE` against the declared params and fill in
/// defaults. Unknown and missing params are errors (the CLI exits 2).
pub fn resolve_params(
    pipeline: &Pipeline,
    raw: &[String],
) -> Result<IndexMap<String, Value>, String> {
    let mut given: HashMap<&str, Value> = HashMap::new();
    for item in raw {
        let Some((name, text)) = item.split_once('=') else {
            return Err(format!("`--param {item}`: expected NAME=VALUE"));
        };
        let Some(param) = pipeline.params.get(name) else {
            let hint =
                crate::diagnostics::suggest(name, pipeline.params.keys().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
            let known = if pipeline.params.is_empty() {
                "the pipeline declares no params".to_string()
            } else {
                format!(
                    "declared: {}",
                    pipeline
                        .params
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            return Err(format!("unknown param `{name}`{hint}; {known}"));
        };
        let value = Value::parse_as(param.ty, text)
            .map_err(|e| format!("--param {name}: {e} (`{name}` is a {})", param.ty))?;
        given.insert(name, value);
    }
    let mut out = IndexMap::new();
    let mut missing = Vec::new();
    for (name, param) in &pipeline.params {
        match given
            .remove(name.as_str())
            .or_else(|| param.default.clone())
        {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => missing.push(format!("`{name}` ({})", param.ty)),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing required param{} {}: pass --param NAME=VALUE",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", ")
        ));
    }
    Ok(out)
}

/// Sortable to the millisecond and unique enough for one machine:
/// `20260507-142301-3f2a`.
pub fn new_run_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    // The millisecond in the high 10 bits, so runs of the same second still
    // sort by time (`topsail runs`, `--watch`); 6 bits apart processes.
    let salt = (now.subsec_millis() << 6) | ((now.subsec_nanos() ^ std::process::id()) & 0x3f);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{salt:04x}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) in the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The values of the declared secrets, read from the runner's environment,
/// and the masking of those values in anything printed or written.
///
/// Output is masked line by line, as it comes. A multi-line value is masked
/// as one unit ([`LineMasker`]): where its lines come one after the other,
/// every one of them is masked, however short. A line of it is also masked
/// wherever it stands alone, when it has at least [`MIN_MASKED_LINE`]
/// characters: masking `}` or `ab` wherever they appear would destroy every
/// log, so such a line printed on its own is shown (the run warns about such
/// secrets when it starts, see [`Secrets::short_lines`]).
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    values: HashMap<String, String>,
    /// Longest first, so a value containing another is masked whole.
    needles: Vec<String>,
    /// The lines of each multi-line value, as output gives them.
    multi: Vec<Vec<String>>,
}

/// The shortest line of a multi-line secret masked where it stands alone.
pub const MIN_MASKED_LINE: usize = 3;

impl Secrets {
    pub fn from_env(pipeline: &Pipeline) -> Secrets {
        Secrets::with_extra(pipeline, std::iter::empty())
    }

    /// The pipeline's secrets from the environment, and `extra` values to
    /// mask as well (a step's AWS credentials).
    pub fn with_extra(
        pipeline: &Pipeline,
        extra: impl IntoIterator<Item = (String, String)>,
    ) -> Secrets {
        Secrets::new(
            pipeline
                .secrets
                .keys()
                .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
                .chain(extra),
        )
    }

    pub fn new(values: impl IntoIterator<Item = (String, String)>) -> Secrets {
        let values: HashMap<String, String> = values.into_iter().collect();
        let mut needles: Vec<String> = Vec::new();
        let mut multi = Vec::new();
        for v in values.values() {
            needles.push(v.clone());
            let lines = output_lines(v);
            // Output is masked line by line: mask each line of a multi-line value too.
            needles.extend(
                lines
                    .iter()
                    .map(|l| l.trim())
                    .filter(|l| l.len() >= MIN_MASKED_LINE)
                    .map(str::to_string),
            );
            if lines.len() >= 2 {
                multi.push(lines);
            }
        }
        needles.retain(|n| !n.trim().is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Secrets {
            values,
            needles,
            multi,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Names of the secrets with a line too short to be masked on its own
    /// (see the type's doc), sorted.
    pub fn short_lines(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .values
            .iter()
            .filter(|(_, v)| {
                let lines = output_lines(v);
                lines.len() >= 2
                    && lines.iter().any(|l| {
                        let l = l.trim();
                        l.len() < MIN_MASKED_LINE && l.chars().any(char::is_alphanumeric)
                    })
            })
            .map(|(k, _)| k.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// `text` with every occurrence of a secret value replaced by `***`.
    /// A line cut at [`runtime::MAX_LINE_BYTES`] may end in the first part
    /// of a secret: that part is masked too.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), "***");
            }
        }
        if let Some(body) = out.strip_suffix(runtime::CUT_MARKER) {
            let keep = self
                .needles
                .iter()
                .filter_map(|n| {
                    (1..n.len())
                        .rev()
                        .filter(|&k| n.is_char_boundary(k))
                        .find(|&k| body.ends_with(&n[..k]))
                        .map(|k| body.len() - k)
                })
                .min();
            if let Some(keep) = keep {
                out = format!("{}***{}", &body[..keep], runtime::CUT_MARKER);
            }
        }
        out
    }

    /// A value with every string in it masked (params, `foreach` items).
    pub fn mask_value(&self, value: &Value) -> Value {
        match value {
            Value::Str(s) => Value::Str(self.mask(s)),
            Value::List(items) => Value::List(items.iter().map(|v| self.mask_value(v)).collect()),
            other => {
                let text = other.to_text();
                let masked = self.mask(&text);
                if masked == text {
                    other.clone()
                } else {
                    Value::Str(masked)
                }
            }
        }
    }

    /// A masker for one stream of output lines.
    pub fn line_masker(&self) -> LineMasker<'_> {
        LineMasker {
            secrets: self,
            held: Vec::new(),
        }
    }

    /// A masker for all of a step's lines: stdout and stderr each through
    /// its own [`LineMasker`], system lines masked one by one.
    pub fn step_masker(&self) -> StepMasker<'_> {
        StepMasker {
            secrets: self,
            streams: [self.line_masker(), self.line_masker()],
        }
    }
}

/// Masks the lines of one attempt of a step, as `topsail run` and the
/// worker both show and log them.
pub struct StepMasker<'a> {
    secrets: &'a Secrets,
    streams: [LineMasker<'a>; 2],
}

impl StepMasker<'_> {
    /// Take `line`; the lines that may now be shown, masked, in order.
    pub fn push(&mut self, line: runtime::Line) -> Vec<(runtime::Stream, String)> {
        let i = match line.stream {
            runtime::Stream::System => {
                return vec![(runtime::Stream::System, self.secrets.mask(&line.text))];
            }
            runtime::Stream::Stdout => 0,
            runtime::Stream::Stderr => 1,
        };
        let stream = line.stream;
        self.streams[i]
            .push(line.text)
            .into_iter()
            .map(|t| (stream, t))
            .collect()
    }

    /// The attempt ended: what is still held, masked (stdout's, then stderr's).
    pub fn finish(&mut self) -> Vec<(runtime::Stream, String)> {
        let mut out = Vec::new();
        for (m, stream) in self
            .streams
            .iter_mut()
            .zip([runtime::Stream::Stdout, runtime::Stream::Stderr])
        {
            out.extend(m.finish().into_iter().map(|t| (stream, t)));
        }
        out
    }
}

/// The lines a value gives when printed and read back line by line (the
/// runtimes drop a `\r` before a line break); no empty first or last line.
fn output_lines(v: &str) -> Vec<String> {
    let mut lines: Vec<String> = v
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    while lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    lines
}

/// Masks one stream of lines (one step's stdout, say) with multi-line
/// values masked as a unit: a line that may begin such a value is held back
/// until the lines after it show whether it does (at most as many lines as
/// the longest value has), then given out masked. [`LineMasker::finish`]
/// gives out what is held when the stream ends.
pub struct LineMasker<'a> {
    secrets: &'a Secrets,
    held: Vec<String>,
}

impl LineMasker<'_> {
    /// Take `line`; the lines that may now be shown, masked, in order.
    pub fn push(&mut self, line: String) -> Vec<String> {
        self.held.push(line);
        let mut out = Vec::new();
        loop {
            if self.held.is_empty() {
                return out;
            }
            match self.matching() {
                Match::Whole(n) => {
                    let seq = &self.secrets.multi[n];
                    let last = self.held.len() - 1;
                    let first = &self.held[0];
                    let head = &first[..first.len() - seq[0].len()];
                    let tail = &self.held[last][seq[last].len()..];
                    out.push(format!("{}***", self.secrets.mask(head)));
                    out.extend((1..last).map(|_| "***".to_string()));
                    out.push(format!("***{}", self.secrets.mask(tail)));
                    self.held.clear();
                }
                Match::Partial => return out,
                Match::None => {
                    let line = self.held.remove(0);
                    out.push(self.secrets.mask(&line));
                }
            }
        }
    }

    /// The stream ended: what is still held, masked.
    pub fn finish(&mut self) -> Vec<String> {
        std::mem::take(&mut self.held)
            .iter()
            .map(|l| self.secrets.mask(l))
            .collect()
    }

    /// Whether the held lines are a whole multi-line value (preferring the
    /// longest), the start of one, or neither.
    fn matching(&self) -> Match {
        let held = &self.held;
        let mut partial = false;
        let mut whole: Option<(usize, usize)> = None;
        for (i, seq) in self.secrets.multi.iter().enumerate() {
            if held.len() > seq.len() || !held[0].ends_with(seq[0].as_str()) {
                continue;
            }
            let last = seq.len() - 1;
            let fits = held.iter().enumerate().skip(1).all(|(j, l)| {
                if j == last {
                    l.starts_with(seq[j].as_str())
                } else {
                    *l == seq[j]
                }
            });
            if !fits {
                continue;
            }
            if held.len() == seq.len() {
                if whole.is_none_or(|(_, len)| seq.len() > len) {
                    whole = Some((i, seq.len()));
                }
            } else {
                partial = true;
            }
        }
        match (whole, partial) {
            // A longer value may still complete: wait for it.
            (_, true) => Match::Partial,
            (Some((i, _)), false) => Match::Whole(i),
            (None, false) => Match::None,
        }
    }
}

enum Match {
    Whole(usize),
    Partial,
    None,
}

/// Where `{{ }}` values come from while a run is going on.
pub struct RunScope<'a> {
    pub pipeline: &'a str,
    pub run_id: &'a str,
    pub step: &'a str,
    pub params: &'a IndexMap<String, Value>,
    /// Outputs of finished steps (skipped steps: empty strings).
    pub outputs: &'a HashMap<String, IndexMap<String, String>>,
    pub item: Option<(&'a str, &'a Value)>,
    /// `(failed.step, failed.error)` for a catch handler.
    pub failed: Option<&'a (String, String)>,
}

impl Scope for RunScope<'_> {
    fn lookup(&self, r: &Ref) -> Option<Value> {
        match r {
            Ref::Param(n) => self.params.get(n).cloned(),
            Ref::Loop(n) => self
                .item
                .filter(|(var, _)| var == n)
                .map(|(_, v)| v.clone()),
            Ref::Output { step, output } => self
                .outputs
                .get(step)
                .map(|o| Value::Str(o.get(output).cloned().unwrap_or_default())),
            Ref::PipelineName => Some(Value::Str(self.pipeline.to_string())),
            Ref::RunId => Some(Value::Str(self.run_id.to_string())),
            Ref::StepName => Some(Value::Str(self.step.to_string())),
            Ref::FailedStep => self.failed.map(|f| Value::Str(f.0.clone())),
            Ref::FailedError => self.failed.map(|f| Value::Str(f.1.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_covers_values_and_their_lines() {
        let s = Secrets::new([
            ("A".to_string(), "hunter2".to_string()),
            ("B".to_string(), "line-one\nline-two".to_string()),
        ]);
        assert_eq!(s.mask("pw=hunter2!"), "pw=***!");
        assert_eq!(s.mask("x line-two y"), "x *** y");
        assert_eq!(s.mask("nothing"), "nothing");
    }

    #[test]
    fn a_multi_line_value_is_masked_as_a_unit_short_lines_too() {
        let s = Secrets::new([("K".to_string(), "{\nab\nlong-line\nx\n}\n".to_string())]);
        assert_eq!(s.short_lines(), ["K"]);
        let mut m = s.line_masker();
        let mut out = Vec::new();
        for l in [
            "before",
            "key: {",
            "ab",
            "long-line",
            "x",
            "} after",
            "x",
            "ab",
        ] {
            out.extend(m.push(l.to_string()));
        }
        out.extend(m.finish());
        assert_eq!(
            out,
            [
                "before",
                "key: ***",
                "***",
                "***",
                "***",
                "*** after",
                "x",
                "ab"
            ]
        );
        // A start that does not go on is given back as it was.
        let mut m = s.line_masker();
        assert!(m.push("{".into()).is_empty());
        assert_eq!(m.push("zz".into()), ["{", "zz"]);
        assert!(m.push("{".into()).is_empty());
        assert_eq!(m.finish(), ["{"]);
    }

    #[test]
    fn a_secret_cut_with_its_line_is_masked_in_part() {
        let s = Secrets::new([("A".to_string(), "hunter2-xyz".to_string())]);
        let cut = format!("aaa hunter{}", runtime::CUT_MARKER);
        assert_eq!(s.mask(&cut), format!("aaa ***{}", runtime::CUT_MARKER));
        let whole = format!("aaa hunter2-xyz{}", runtime::CUT_MARKER);
        assert_eq!(s.mask(&whole), format!("aaa ***{}", runtime::CUT_MARKER));
    }

    #[test]
    fn run_ids_sort_by_time() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        let id = new_run_id();
        assert_eq!(id.len(), 20, "{id}");
        std::thread::sleep(std::time::Duration::from_millis(3));
        let later = new_run_id();
        assert!(later > id, "{later} should sort after {id}");
    }
}
