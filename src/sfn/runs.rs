//! `topsail runs --cloud`: the recent executions of a deployed pipeline,
//! with status, start, duration and, for one that failed, the step that
//! failed (read from its history, [`crate::sfn::history`]).

use aws_sdk_sfn::types::ExecutionStatus;

use crate::run::report::Status;
use crate::sfn::history::{Tracker, fetch};
use crate::sfn::{Clients, err, find_state_machine};

/// One execution as `runs --cloud` lists it.
#[derive(Clone, Debug)]
pub struct CloudRun {
    pub name: String,
    pub status: String,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub failed: Vec<String>,
}

/// The newest `limit` executions of state machine `machine`.
pub async fn list(c: &Clients, machine: &str, limit: usize) -> Result<Vec<CloudRun>, String> {
    let sm = find_state_machine(&c.sfn, machine).await?.ok_or_else(|| {
        format!("no state machine `{machine}`: deploy it first with `topsail deploy`")
    })?;
    let mut out = Vec::new();
    let mut pages = c
        .sfn
        .list_executions()
        .state_machine_arn(&sm)
        .into_paginator()
        .send();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    while let Some(page) = pages.next().await {
        for e in page.map_err(err)?.executions() {
            let start = e.start_date().to_millis().unwrap_or(0);
            let end = e
                .stop_date()
                .and_then(|d| d.to_millis().ok())
                .unwrap_or(now);
            let failed = match e.status() {
                ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted => {
                    failed_steps(c, e.execution_arn()).await
                }
                _ => Vec::new(),
            };
            out.push(CloudRun {
                name: e.name().to_string(),
                status: e.status().as_str().to_lowercase(),
                start_ms: start,
                duration_ms: (end - start).max(0),
                failed,
            });
        }
        if out.len() >= limit {
            break;
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.start_ms));
    out.truncate(limit);
    Ok(out)
}

/// The units that failed in execution `arn` (empty when its history cannot be read).
async fn failed_steps(c: &Clients, arn: &str) -> Vec<String> {
    let Ok(events) = fetch(&c.sfn, arn).await else {
        return Vec::new();
    };
    let mut t = Tracker::new(arn);
    t.feed(&events);
    t.units
        .values()
        .filter(|u| u.status == Some(Status::Failed))
        .map(|u| match &u.item {
            Some(i) => format!("{}[{i}]", u.step),
            None => u.step.clone(),
        })
        .collect()
}
