//! `topsail deploy`: the activity, the approval queue (when the pipeline has
//! approval steps) and the state machine, each created only when missing;
//! the state machine is updated only when its definition or role changed, so
//! deploying twice reports "unchanged".

use serde_json::Value as Json;

use crate::asl;
use crate::model::{Action, Pipeline};
use crate::sfn::{Clients, activity_name, err, find_state_machine, queue_name};

/// What a deploy did, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Deployed {
    pub state_machine_arn: String,
    pub state_machine: Change,
    pub activity_arn: String,
    pub activity: Change,
    /// One activity per `queue` the pipeline's steps name: (queue, ARN, change).
    pub queue_activities: Vec<(String, String, Change)>,
    pub queue_url: Option<(String, Change)>,
}

/// Why a deploy did not happen, by kind: the caller may tell a pipeline
/// that has no Step Functions form from a missing role or an AWS failure.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The compiler's errors (their messages).
    #[error("the pipeline cannot be compiled for Step Functions (see `topsail compile`): {}", .0.join("; "))]
    Compile(Vec<String>),
    /// The state machine (named here) does not exist, and creating it
    /// needs a role that was not given.
    #[error(
        "state machine `{0}` does not exist yet and creating it needs an IAM role: \
         pass --role-arn ARN (a role Step Functions can assume, allowed to use the \
         activity and the approval queue)"
    )]
    NeedsRole(String),
    /// An AWS call failed (the SDK's error with its causes).
    #[error("{0}")]
    Aws(String),
}

impl From<String> for DeployError {
    fn from(e: String) -> DeployError {
        DeployError::Aws(e)
    }
}

/// SQS keeps a message at most 14 days: an approval nobody answered for
/// longer would vanish from `approve --list`, so keep them that long.
const QUEUE_RETENTION_SECONDS: &str = "1209600";

pub fn has_approvals(p: &Pipeline) -> bool {
    p.steps
        .iter()
        .any(|s| matches!(s.action, Action::Approval { .. }))
}

pub async fn deploy(
    c: &Clients,
    pipeline: &Pipeline,
    name: &str,
    role_arn: Option<&str>,
    durations: Vec<Option<f64>>,
) -> Result<Deployed, DeployError> {
    let (activity_arn, activity) = ensure_activity(c, &activity_name(name)).await?;
    let mut queue_activities = Vec::new();
    for q in crate::sfn::fleet::queues(pipeline) {
        let (arn, change) =
            ensure_activity(c, &crate::sfn::fleet::queue_activity_name(name, &q)).await?;
        queue_activities.push((q, arn, change));
    }
    let queue_url = if has_approvals(pipeline) {
        Some(ensure_queue(c, &queue_name(name)).await?)
    } else {
        None
    };
    let options = asl::Options {
        activity_arn: activity_arn.clone(),
        queue_arns: queue_activities
            .iter()
            .map(|(q, arn, _)| (q.clone(), arn.clone()))
            .collect(),
        approval_queue_url: queue_url
            .as_ref()
            .map_or_else(|| asl::APPROVAL_QUEUE_PLACEHOLDER.into(), |q| q.0.clone()),
        durations,
    };
    let compiled = asl::compile(pipeline, &options)
        .map_err(|diags| DeployError::Compile(diags.iter().map(|d| d.message.clone()).collect()))?;
    // Compact: Step Functions counts indentation against its size limit too.
    let definition = compiled.to_compact_json();
    let existing = find_state_machine(&c.sfn, name).await?;
    let (state_machine_arn, state_machine) = if let Some(arn) = existing {
        let d = c
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .map_err(err)?;
        let same_definition =
            serde_json::from_str::<Json>(d.definition()).ok() == Some(compiled.definition.clone());
        let same_role = role_arn.is_none_or(|r| r == d.role_arn());
        if same_definition && same_role {
            (arn, Change::Unchanged)
        } else {
            let mut req = c
                .sfn
                .update_state_machine()
                .state_machine_arn(&arn)
                .definition(&definition);
            if let Some(r) = role_arn {
                req = req.role_arn(r);
            }
            req.send().await.map_err(err)?;
            (arn, Change::Updated)
        }
    } else {
        let Some(role) = role_arn else {
            return Err(DeployError::NeedsRole(name.to_string()));
        };
        let out = c
            .sfn
            .create_state_machine()
            .name(name)
            .definition(&definition)
            .role_arn(role)
            .send()
            .await
            .map_err(err)?;
        (out.state_machine_arn().to_string(), Change::Created)
    };
    Ok(Deployed {
        state_machine_arn,
        state_machine,
        activity_arn,
        activity,
        queue_activities,
        queue_url,
    })
}

async fn ensure_activity(c: &Clients, name: &str) -> Result<(String, Change), String> {
    let mut pages = c.sfn.list_activities().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(err)?;
        if let Some(a) = page.activities().iter().find(|a| a.name() == name) {
            return Ok((a.activity_arn().to_string(), Change::Unchanged));
        }
    }
    let out = c
        .sfn
        .create_activity()
        .name(name)
        .send()
        .await
        .map_err(err)?;
    Ok((out.activity_arn().to_string(), Change::Created))
}

async fn ensure_queue(c: &Clients, name: &str) -> Result<(String, Change), String> {
    if let Ok(out) = c.sqs.get_queue_url().queue_name(name).send().await
        && let Some(url) = out.queue_url()
    {
        return Ok((url.to_string(), Change::Unchanged));
    }
    let out = c
        .sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
            QUEUE_RETENTION_SECONDS,
        )
        .send()
        .await
        .map_err(err)?;
    let url = out
        .queue_url()
        .ok_or("CreateQueue answered without a queue URL")?;
    Ok((url.to_string(), Change::Created))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds are for callers; users read the same words as before.
    #[test]
    fn deploy_errors_say_what_to_do() {
        let e = DeployError::NeedsRole("hello".into());
        assert_eq!(
            e.to_string(),
            "state machine `hello` does not exist yet and creating it needs an IAM role: \
             pass --role-arn ARN (a role Step Functions can assume, allowed to use the \
             activity and the approval queue)"
        );
        let e = DeployError::Compile(vec!["a".into(), "b".into()]);
        assert_eq!(
            e.to_string(),
            "the pipeline cannot be compiled for Step Functions (see `topsail compile`): a; b"
        );
        assert!(matches!(DeployError::from("x".to_string()), DeployError::Aws(m) if m == "x"));
    }
}
