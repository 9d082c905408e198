//! A step's [`StepSpec`], built in one place for `topsail run` (from the
//! checked model) and for the activity worker (from a task input), so that a
//! step means the same in both: every text rendered from the scope, the
//! script's values passed through the environment, the requested secrets
//! added after the step's own env, the names and limits the same.
//!
//! Both callers describe the step as a [`StepView`] (the worker decodes its
//! task input's texts first). What differs between them is only policy,
//! which the caller passes as a [`Policy`]: the worker admits only the
//! images and host steps its operator allowed, refuses scripts the checker
//! would have refused and workdirs that are not absolute paths; locally the
//! checker has done all of that already.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::errors;
use crate::model::{EvalError, Scope, Text, render_script, render_text};
use crate::run::Secrets;
use crate::run::runtime::StepSpec;

/// A step whose env sets this to `1` ends only when its whole process group
/// has exited (bounded by its timeout), not when its script does: what a
/// service manifest's state meant, whose background processes ran to their
/// end in the first topsail (docs/legacy.md). The legacy reader sets it;
/// the converted `.topsail` keeps it, so the file runs the same.
pub const WAIT_GROUP_ENV: &str = "TOPSAIL_WAIT_PROCESS_GROUP";

/// Why a step did not get a spec: the error name it fails with (what
/// `{{ failed.error }}` holds, what a worker sends to Step Functions) and
/// the cause, without running anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepError {
    pub error: &'static str,
    pub cause: String,
}

impl StepError {
    pub fn new(error: &'static str, cause: impl Into<String>) -> StepError {
        StepError {
            error,
            cause: cause.into(),
        }
    }
}

/// A step as the builder reads it: the same fields whether it comes from
/// the model or from a task input. The texts still have their holes.
#[derive(Clone, Debug)]
pub struct StepView<'a> {
    pub run_id: &'a str,
    pub pipeline: &'a str,
    /// The step's name in the pipeline.
    pub step: &'a str,
    /// The unit's display name: the step's, or `step[item]` for a foreach
    /// instance (the runner's own spelling: it masks and numbers items).
    pub name: &'a str,
    pub image: Option<&'a Text>,
    pub script: &'a Text,
    pub shell: Option<&'a str>,
    pub env: Vec<(&'a str, &'a Text)>,
    pub workdir: Option<&'a Text>,
    pub secrets: &'a [String],
    pub timeout: Option<Duration>,
    pub outputs: Vec<String>,
}

/// Where the step runs: what the builder takes from its runner rather than
/// from the step.
pub struct Place<'a> {
    /// The secrets' values (only those the step may have).
    pub secrets: &'a Secrets,
    /// Who must have a missing secret in its environment, for the message:
    /// "`topsail run`", "worker NAME".
    pub secrets_from: &'a str,
    /// Variables the host runtime must not pass on (declared secrets the
    /// step did not ask for).
    pub env_remove: Vec<String>,
    pub pipeline_dir: PathBuf,
}

/// The caller's own rules, checked while the spec is built (each in the
/// order below, so a refusal names the first thing refused).
pub trait Policy {
    /// With the image rendered (`None`: a host step): may it run here?
    fn admit(&self, view: &StepView<'_>, image: Option<&str>) -> Result<(), StepError> {
        let _ = (view, image);
        Ok(())
    }

    /// Before the script is rendered: may its holes stand where they do?
    fn script(&self, script: &Text, shell: Option<&str>) -> Result<(), StepError> {
        let _ = (script, shell);
        Ok(())
    }

    /// With the workdir rendered.
    fn workdir(&self, workdir: &str) -> Result<(), StepError> {
        let _ = workdir;
        Ok(())
    }
}

/// No rules beyond the checker's: `topsail run`.
pub struct Checked;

impl Policy for Checked {}

/// The step as a [`StepSpec`], every `{{ }}` rendered from `scope`; or the
/// error name and cause to fail it with.
pub fn build(
    view: &StepView<'_>,
    scope: &dyn Scope,
    place: Place<'_>,
    policy: &dyn Policy,
) -> Result<StepSpec, StepError> {
    let bad = |what: &str, e: EvalError| StepError::new(errors::RUNTIME, format!("{what}: {e}"));
    let image = match view.image {
        Some(t) => Some(render_text(t, scope).map_err(|e| bad("image", e))?),
        None => None,
    };
    policy.admit(view, image.as_deref())?;
    policy.script(view.script, view.shell)?;
    let run = render_script(view.script, scope, view.shell).map_err(|e| bad("run", e))?;
    let mut env = Vec::new();
    for (k, t) in &view.env {
        let value = render_text(t, scope).map_err(|e| bad(k, e))?;
        // As for the script's holes: a clear failure, not `Argument list
        // too long` from exec (or a value cut at a NUL).
        crate::model::env_value_fits(k, &value)
            .map_err(|e| StepError::new(errors::RUNTIME, format!("env {k}: {e}")))?;
        env.push(((*k).to_string(), value));
    }
    // After the step's own: the values of the script's holes win.
    env.extend(run.env);
    for name in view.secrets {
        let Some(value) = place.secrets.get(name) else {
            return Err(StepError::new(
                errors::SECRET_MISSING,
                format!(
                    "secret `{name}` is not set: export {name}=... in the environment of {}",
                    place.secrets_from
                ),
            ));
        };
        env.push((name.clone(), value.to_string()));
    }
    let workdir = match view.workdir {
        Some(t) => Some(render_text(t, scope).map_err(|e| bad("workdir", e))?),
        None => None,
    };
    if let Some(w) = &workdir {
        policy.workdir(w)?;
    }
    let wait_group = env.iter().any(|(k, v)| k == WAIT_GROUP_ENV && v == "1");
    Ok(StepSpec {
        run_id: view.run_id.to_string(),
        pipeline: view.pipeline.to_string(),
        name: view.name.to_string(),
        step: view.step.to_string(),
        image,
        script: run.script,
        shell: view.shell.map(str::to_string),
        env,
        secret_names: view.secrets.to_vec(),
        env_remove: place.env_remove,
        workdir,
        timeout: view.timeout,
        outputs: view.outputs.clone(),
        pipeline_dir: place.pipeline_dir,
        wait_group,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Piece, Ref, Value};

    struct Params;

    impl Scope for Params {
        fn lookup(&self, r: &Ref) -> Option<Value> {
            match r {
                Ref::Param(n) if n == "img" => Some(Value::Str("alpine:3".into())),
                Ref::Param(n) if n == "n" => Some(Value::Int(3)),
                _ => None,
            }
        }
    }

    /// Refuses every image and records nothing else: a refusal stops the
    /// build before the script is rendered.
    struct NoImages;

    impl Policy for NoImages {
        fn admit(&self, _: &StepView<'_>, image: Option<&str>) -> Result<(), StepError> {
            match image {
                Some(i) => Err(StepError::new("test.NoImage", i)),
                None => Ok(()),
            }
        }
    }

    fn hole(name: &str) -> Piece {
        Piece::Ref(Ref::Param(name.into()))
    }

    #[test]
    fn one_builder_renders_checks_and_adds_secrets_in_order() {
        let image = Text {
            parts: vec![hole("img")],
        };
        let script = Text {
            parts: vec![Piece::Lit("echo ".into()), hole("n")],
        };
        let env_text = Text {
            parts: vec![Piece::Lit("v".into()), hole("n")],
        };
        let secrets_named = vec!["TOKEN".to_string()];
        let view = StepView {
            run_id: "r1",
            pipeline: "p",
            step: "s",
            name: "s[x]",
            image: Some(&image),
            script: &script,
            shell: None,
            env: vec![("A", &env_text)],
            workdir: None,
            secrets: &secrets_named,
            timeout: Some(Duration::from_secs(7)),
            outputs: vec!["OUT".into()],
        };
        let secrets = Secrets::new([("TOKEN".to_string(), "t0k".to_string())]);
        let place = |s| Place {
            secrets: s,
            secrets_from: "`topsail run`",
            env_remove: vec!["OTHER".into()],
            pipeline_dir: PathBuf::from("/p"),
        };
        let spec = build(&view, &Params, place(&secrets), &Checked).unwrap();
        assert_eq!(spec.image.as_deref(), Some("alpine:3"));
        assert_eq!(spec.name, "s[x]");
        assert_eq!(spec.script, "echo \"${TOPSAIL_V1_n}\"");
        // The step's env, then the holes' values, then the secrets.
        let names: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["A", "TOPSAIL_V1_n", "TOKEN"]);
        assert_eq!(spec.env[0].1, "v3");
        assert_eq!(spec.env_remove, ["OTHER"]);
        assert_eq!(spec.timeout, Some(Duration::from_secs(7)));
        assert_eq!(spec.outputs, ["OUT"]);

        let e = build(&view, &Params, place(&secrets), &NoImages).unwrap_err();
        assert_eq!(e, StepError::new("test.NoImage", "alpine:3"));

        let none = Secrets::default();
        let e = build(&view, &Params, place(&none), &Checked).unwrap_err();
        assert_eq!(e.error, errors::SECRET_MISSING);
        assert!(
            e.cause
                .contains("export TOKEN=... in the environment of `topsail run`"),
            "{e:?}"
        );

        let missing = Text {
            parts: vec![hole("nope")],
        };
        let view = StepView {
            workdir: Some(&missing),
            ..view
        };
        let e = build(&view, &Params, place(&secrets), &Checked).unwrap_err();
        assert_eq!(e.error, errors::RUNTIME);
        assert!(e.cause.starts_with("workdir: "), "{e:?}");
    }
}
