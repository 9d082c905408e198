//! Worker fleets (issue 16): what lets many workers serve many pipelines.
//! Queues ([`queues`], [`queue_activity_name`]: one activity per `queue` a
//! pipeline names, created by `deploy` and found again by `worker FILE
//! --queue NAME`), AWS credentials for steps ([`creds`]) and the worker's
//! operator options that are not about one task ([`FleetOptions`]:
//! `--pass-env`, `--once`, `--idle-timeout`).
//!
//! The worker loop itself stays in [`crate::sfn::worker`]; it calls in here
//! through small hooks.

pub mod creds;
pub mod metrics;
pub mod paths;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::model::{Action, Pipeline};
use crate::sfn::activity_name;

/// The queues a pipeline's script steps name, sorted (approvals run on no
/// worker).
pub fn queues(p: &Pipeline) -> BTreeSet<String> {
    p.steps
        .iter()
        .filter(|s| matches!(s.action, Action::Script(_)))
        .filter_map(|s| s.queue.clone())
        .collect()
}

/// The activity of `queue` for state machine `state_machine`:
/// `topsail-NAME--QUEUE`, the pipeline's activity name cut short enough
/// that the whole stays within Step Functions' 80 characters.
pub fn queue_activity_name(state_machine: &str, queue: &str) -> String {
    let base = activity_name(state_machine);
    let room = 80usize.saturating_sub(queue.len() + 2);
    let base: String = base.chars().take(room).collect();
    format!("{base}--{queue}")
}

/// The ARN of the activity named `name`, if it exists.
pub async fn find_activity(c: &crate::sfn::Clients, name: &str) -> Result<Option<String>, String> {
    let mut pages = c.sfn.list_activities().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(crate::sfn::err)?;
        if let Some(a) = page.activities().iter().find(|a| a.name() == name) {
            return Ok(Some(a.activity_arn().to_string()));
        }
    }
    Ok(None)
}

/// The activities `topsail worker FILE... [--queue NAME]...` serves: for
/// each pipeline, the activity of each queue asked for (that pipeline's
/// steps must name it in some file), or its own activity without
/// `--queue`. Each must have been deployed.
pub async fn activities_for(
    c: &crate::sfn::Clients,
    pipelines: &[(String, Pipeline)],
    asked: &[String],
) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for (state_machine, p) in pipelines {
        if asked.is_empty() {
            names.push(activity_name(state_machine));
            continue;
        }
        let has = queues(p);
        for q in asked {
            if has.contains(q) {
                names.push(queue_activity_name(state_machine, q));
            }
        }
    }
    for q in asked {
        if !pipelines.iter().any(|(_, p)| queues(p).contains(q)) {
            let known: BTreeSet<String> = pipelines.iter().flat_map(|(_, p)| queues(p)).collect();
            return Err(format!(
                "--queue {q}: no step of {} names queue `{q}` ({})",
                if pipelines.len() == 1 {
                    "the pipeline"
                } else {
                    "these pipelines"
                },
                if known.is_empty() {
                    "they name no queue".to_string()
                } else {
                    format!(
                        "queues: {}",
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    )
                }
            ));
        }
    }
    let mut arns = Vec::new();
    for name in names {
        match find_activity(c, &name).await? {
            Some(arn) => arns.push(arn),
            None => {
                return Err(format!(
                    "activity {name} does not exist: deploy the pipeline first (`topsail deploy FILE`)"
                ));
            }
        }
    }
    Ok(arns)
}

/// The worker options about the worker as a whole rather than one task.
#[derive(Clone, Debug, Default)]
pub struct FleetOptions {
    /// `--pass-env NAME`: variables of the worker's own environment its
    /// operator hands to every step (a step's own `env` wins).
    pub pass_env: Vec<String>,
    /// `--once`: take one task, finish it, exit.
    pub once: bool,
    /// `--idle-timeout D`: exit after D with no task running or taken.
    pub idle_timeout: Option<Duration>,
    /// Where `aws` steps' credentials come from (`None`: from nowhere; a
    /// task asking for them fails with [`creds::AWS_CREDENTIALS`]).
    pub creds: Option<creds::Source>,
    /// `--allow-aws`: `aws` steps (no role) may have the worker's own
    /// credentials. Off by default: whoever can start an execution would
    /// otherwise hold the worker's identity.
    pub allow_own_aws: bool,
    /// `--allow-role GLOB`: the roles `aws role` steps may have assumed for
    /// them (none by default).
    pub allow_roles: Vec<String>,
}

pub use crate::run::aws::add_env;

/// `--pass-env` values the worker has, for a step whose env does not set
/// them already (names only are logged, never values).
pub fn pass_env(opts: &FleetOptions, step_env: &[(String, String)]) -> Vec<(String, String)> {
    opts.pass_env
        .iter()
        .filter(|n| !step_env.iter().any(|(k, _)| k == *n))
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.clone(), v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_activities_fit_step_functions_names() {
        assert_eq!(
            queue_activity_name("release", "gpu"),
            "topsail-release--gpu"
        );
        let long = "p".repeat(100);
        let name = queue_activity_name(&long, "arm64");
        assert_eq!(name.len(), 80);
        assert!(name.ends_with("--arm64"));
    }

    #[test]
    fn pass_env_does_not_override_the_step() {
        let opts = FleetOptions {
            pass_env: vec!["PATH".into(), "TOPSAIL_FLEET_SURELY_UNSET".into()],
            ..FleetOptions::default()
        };
        assert!(pass_env(&opts, &[("PATH".into(), "/x".into())]).is_empty());
        let got = pass_env(&opts, &[]);
        assert_eq!(got.len(), usize::from(std::env::var_os("PATH").is_some()));
    }
}
