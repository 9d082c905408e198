//! An execution's history read back as a run: which step ran how many
//! times, on which worker, with what outputs or error. `topsail start
//! --follow` prints it as it happens in the look of a local run and writes
//! the same `run.json` record a local run writes, so the two can be compared.
//!
//! Events are tied to steps through the task input of their
//! `ActivityScheduled` (or the approval message of their `TaskScheduled`)
//! and the `previousEventId` chain, which stays within one branch of a
//! Parallel or Map. Attempts count the way the local runner counts them: a
//! task retried because its worker was lost (`States.HeartbeatTimeout`,
//! `topsail.WorkerShutdown`) is the same attempt run elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;

use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType as T};
use indexmap::IndexMap;
use serde_json::Value as Json;

use crate::asl::task::{OutputDecl, TaskInput, TaskOutput};
use crate::model::errors;
use crate::model::{ForeachItems, Pipeline, Value};
use crate::run::report::{RunReport, RunStatus, Status, UnitReport};
use crate::sfn::err;

/// What the follower prints for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    System(String, String),
    Failure(String, String),
}

#[derive(Clone, Debug, Default)]
pub struct Unit {
    pub step: String,
    pub item: Option<String>,
    pub scheduled: u32,
    /// Attempts that ended because the worker was lost or stopped.
    pub lost: u32,
    pub status: Option<Status>,
    pub reason: Option<String>,
    pub outputs: IndexMap<String, String>,
    pub error: Option<(String, String)>,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub workers: Vec<String>,
    decls: Vec<OutputDecl>,
}

impl Unit {
    /// Attempts with the local runner's meaning.
    pub fn attempts(&self) -> u32 {
        self.scheduled.saturating_sub(self.lost)
    }
}

/// How an execution ended: status, error and cause of a failure, when (ms).
pub type End = (RunStatus, Option<(String, String)>, i64);

/// The state of one execution, fed event by event.
#[derive(Debug, Default)]
pub struct Tracker {
    pub units: IndexMap<String, Unit>,
    unit_of: HashMap<i64, String>,
    pub last_id: i64,
    pub started_ms: Option<i64>,
    /// Set by the terminal event: status and, for a failure, error and cause.
    pub end: Option<End>,
    pub execution: String,
}

fn ms(e: &HistoryEvent) -> i64 {
    e.timestamp().to_millis().unwrap_or(0)
}

fn is_lost(error: &str) -> bool {
    error == errors::HEARTBEAT_TIMEOUT || error == errors::WORKER_SHUTDOWN
}

impl Tracker {
    pub fn new(execution: &str) -> Tracker {
        Tracker {
            execution: execution.to_string(),
            ..Tracker::default()
        }
    }

    fn unit_for(&mut self, e: &HistoryEvent) -> Option<String> {
        let u = self.unit_of.get(&e.previous_event_id()).cloned()?;
        self.unit_of.insert(e.id(), u.clone());
        Some(u)
    }

    /// Feed the events not seen yet (ids above `last_id`), in order.
    pub fn feed(&mut self, events: &[HistoryEvent]) -> Vec<Note> {
        let mut notes = Vec::new();
        let last = self.last_id;
        for e in events.iter().filter(|e| e.id() > last) {
            self.last_id = e.id();
            self.event(e, &mut notes);
        }
        notes
    }

    fn event(&mut self, e: &HistoryEvent, notes: &mut Vec<Note>) {
        let t = ms(e);
        match e.r#type() {
            T::ExecutionStarted => self.started_ms = Some(t),
            T::ActivityScheduled => {
                let Some(input) = e.activity_scheduled_event_details().and_then(|d| d.input())
                else {
                    return;
                };
                let Ok(ti) = serde_json::from_str::<TaskInput>(input) else {
                    return;
                };
                let name = match &ti.values.item {
                    Some(i) => format!("{}[{i}]", ti.step),
                    None => ti.step.clone(),
                };
                self.unit_of.insert(e.id(), name.clone());
                let u = self.units.entry(name).or_default();
                u.step = ti.step;
                u.item = ti.values.item;
                u.decls = ti.outputs;
                u.scheduled += 1;
                u.status = Some(Status::Running);
                u.started_ms.get_or_insert(t);
            }
            T::ActivityStarted => {
                let Some(name) = self.unit_for(e) else { return };
                let worker = e
                    .activity_started_event_details()
                    .and_then(|d| d.worker_name())
                    .unwrap_or("?")
                    .to_string();
                let u = &mut self.units[&name];
                let n = u.scheduled;
                u.workers.push(worker.clone());
                let text = if n == 1 {
                    format!("started on worker {worker}")
                } else {
                    format!("attempt {n} started on worker {worker}")
                };
                notes.push(Note::System(name, text));
            }
            T::ActivitySucceeded => {
                let Some(name) = self.unit_for(e) else { return };
                let out = e
                    .activity_succeeded_event_details()
                    .and_then(|d| d.output())
                    .and_then(|o| serde_json::from_str::<TaskOutput>(o).ok())
                    .unwrap_or_default();
                let u = &mut self.units[&name];
                u.outputs = u
                    .decls
                    .iter()
                    .map(|d| {
                        (
                            d.name.clone(),
                            out.outputs.get(&d.key).cloned().unwrap_or_default(),
                        )
                    })
                    .collect();
                u.status = Some(Status::Succeeded);
                u.error = None;
                u.ended_ms = Some(t);
                let secs = (t - u.started_ms.unwrap_or(t)) as f64 / 1000.0;
                notes.push(Note::System(name, format!("succeeded in {secs:.1}s")));
            }
            T::ActivityFailed | T::ActivityTimedOut => {
                let Some(name) = self.unit_for(e) else { return };
                let (error, cause) = if let Some(d) = e.activity_failed_event_details() {
                    (d.error(), d.cause())
                } else if let Some(d) = e.activity_timed_out_event_details() {
                    (d.error(), d.cause())
                } else {
                    (None, None)
                };
                let error = error.unwrap_or("States.Timeout").to_string();
                let cause = cause.unwrap_or("").to_string();
                let u = &mut self.units[&name];
                if is_lost(&error) {
                    u.lost += 1;
                }
                u.status = Some(Status::Failed);
                u.error = Some((error.clone(), cause.clone()));
                u.ended_ms = Some(t);
                let first = cause.lines().next().unwrap_or("").to_string();
                notes.push(Note::Failure(name, format!("failed: {first} [{error}]")));
            }
            T::TaskScheduled => {
                let Some(params) = e
                    .task_scheduled_event_details()
                    .map(aws_sdk_sfn::types::TaskScheduledEventDetails::parameters)
                else {
                    return;
                };
                let Ok(p) = serde_json::from_str::<Json>(params) else {
                    return;
                };
                let body = match &p["MessageBody"] {
                    Json::String(s) => serde_json::from_str::<Json>(s).unwrap_or(Json::Null),
                    other => other.clone(),
                };
                let Some(step) = body["step"].as_str() else {
                    return;
                };
                let item = body["item"].as_str().map(str::to_string);
                let name = match &item {
                    Some(i) => format!("{step}[{i}]"),
                    None => step.to_string(),
                };
                self.unit_of.insert(e.id(), name.clone());
                let u = self.units.entry(name.clone()).or_default();
                u.step = step.to_string();
                u.item = item;
                u.scheduled += 1;
                u.status = Some(Status::Running);
                u.started_ms.get_or_insert(t);
                let message = body["message"].as_str().unwrap_or("");
                notes.push(Note::System(
                    name,
                    format!(
                        "waiting for approval: {message} (topsail approve {} {step})",
                        self.execution
                    ),
                ));
            }
            T::TaskStarted | T::TaskSubmitted => {
                self.unit_for(e);
            }
            T::TaskSucceeded => {
                let Some(name) = self.unit_for(e) else { return };
                let u = &mut self.units[&name];
                u.status = Some(Status::Succeeded);
                u.ended_ms = Some(t);
                notes.push(Note::System(name, "approved".into()));
            }
            T::TaskFailed | T::TaskTimedOut => {
                let Some(name) = self.unit_for(e) else { return };
                let (error, cause) = match e.task_failed_event_details() {
                    Some(d) => (d.error(), d.cause()),
                    None => (Some("States.Timeout"), None),
                };
                let error = error.unwrap_or("").to_string();
                let cause = cause.unwrap_or("").to_string();
                let u = &mut self.units[&name];
                u.status = Some(Status::Failed);
                u.error = Some((error.clone(), cause.clone()));
                u.ended_ms = Some(t);
                notes.push(Note::Failure(
                    name,
                    format!("not approved: {cause} [{error}]"),
                ));
            }
            _ => {
                if let Some(d) = e.state_entered_event_details()
                    && let Some(base) = d.name().strip_suffix(" (skipped)")
                {
                    let step = base.split(" (catching ").next().unwrap_or(base).to_string();
                    let u = self.units.entry(step.clone()).or_default();
                    u.step.clone_from(&step);
                    u.status = Some(Status::Skipped);
                    u.reason = Some("`when` is false".into());
                    notes.push(Note::System(step, "skipped (`when` is false)".into()));
                }
                let end = match e.r#type() {
                    T::ExecutionSucceeded => Some((RunStatus::Succeeded, None)),
                    T::ExecutionFailed => Some((
                        RunStatus::Failed,
                        e.execution_failed_event_details().map(|d| {
                            (
                                d.error().unwrap_or("").to_string(),
                                d.cause().unwrap_or("").to_string(),
                            )
                        }),
                    )),
                    T::ExecutionAborted => Some((
                        RunStatus::Interrupted,
                        Some(("aborted".into(), "the execution was stopped".into())),
                    )),
                    T::ExecutionTimedOut => Some((
                        RunStatus::Failed,
                        Some(("States.Timeout".into(), "the execution timed out".into())),
                    )),
                    _ => None,
                };
                if let Some((s, why)) = end {
                    self.end = Some((s, why, t));
                }
            }
        }
    }

    /// The run record of this execution, units in the pipeline's order like
    /// a local run's (steps never reached: cancelled, or skipped for catch
    /// handlers nothing needed).
    pub fn report(
        &self,
        pipeline: &Pipeline,
        file: PathBuf,
        params: &IndexMap<String, Value>,
    ) -> RunReport {
        let mut steps = Vec::new();
        for step in &pipeline.steps {
            let mut seen: Vec<(&String, &Unit)> = self
                .units
                .iter()
                .filter(|(_, u)| u.step == step.name)
                .collect();
            let items: Option<Vec<String>> = step.foreach.as_ref().map(|f| match &f.items {
                ForeachItems::List(l) => l.iter().map(Value::to_text).collect(),
                ForeachItems::Param(p) => match params.get(p) {
                    Some(Value::List(l)) => l.iter().map(Value::to_text).collect(),
                    Some(v) => vec![v.to_text()],
                    None => Vec::new(),
                },
            });
            if let Some(items) = &items {
                seen.sort_by_key(|(_, u)| {
                    u.item
                        .as_ref()
                        .and_then(|i| items.iter().position(|x| x == i))
                        .unwrap_or(usize::MAX)
                });
            }
            let skipped_whole = seen
                .iter()
                .any(|(_, u)| u.item.is_none() && u.status == Some(Status::Skipped));
            if seen.is_empty() || (items.is_some() && skipped_whole) {
                let (status, reason) = if step.is_handler {
                    (Status::Skipped, "catch handler: nothing it handles failed")
                } else if skipped_whole {
                    (Status::Skipped, "`when` is false")
                } else {
                    (
                        Status::Cancelled,
                        "not run: a step it needs did not succeed",
                    )
                };
                let names: Vec<(String, Option<String>)> = match &items {
                    Some(items) => items
                        .iter()
                        .map(|i| (format!("{}[{i}]", step.name), Some(i.clone())))
                        .collect(),
                    None => vec![(step.name.clone(), None)],
                };
                for (name, item) in names {
                    steps.push(UnitReport {
                        name,
                        step: step.name.clone(),
                        item: item.map(Json::String),
                        status,
                        reason: Some(reason.into()),
                        attempts: 0,
                        started_ms: None,
                        duration_ms: 0,
                        outputs: IndexMap::new(),
                        error: None,
                        cause: None,
                    });
                }
                continue;
            }
            for (name, u) in seen {
                let status = u.status.unwrap_or(Status::Pending);
                steps.push(UnitReport {
                    name: name.clone(),
                    step: step.name.clone(),
                    item: u.item.clone().map(Json::String),
                    status,
                    reason: u.reason.clone(),
                    attempts: if status == Status::Skipped {
                        0
                    } else {
                        u.attempts()
                    },
                    started_ms: u.started_ms.map(|t| t as u64),
                    duration_ms: match (u.started_ms, u.ended_ms) {
                        (Some(a), Some(b)) => (b - a).max(0) as u64,
                        _ => 0,
                    },
                    outputs: u.outputs.clone(),
                    error: u.error.as_ref().map(|e| e.0.clone()),
                    cause: u.error.as_ref().map(|e| e.1.clone()),
                });
            }
        }
        let started = self.started_ms.unwrap_or(0);
        let (status, end) = match &self.end {
            Some((s, _, t)) => (*s, *t),
            None => (RunStatus::Running, started),
        };
        RunReport {
            run_id: self
                .execution
                .rsplit(':')
                .next()
                .unwrap_or(&self.execution)
                .to_string(),
            pipeline: pipeline.name.clone(),
            file,
            status,
            started_ms: started.max(0) as u64,
            duration_ms: (end - started).max(0) as u64,
            params: params.clone(),
            steps,
            owner: None,
        }
    }
}

/// Every event of an execution so far.
pub async fn fetch(
    sfn: &aws_sdk_sfn::Client,
    execution: &str,
) -> Result<Vec<HistoryEvent>, String> {
    let mut events = Vec::new();
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(execution)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        events.extend(page.map_err(err)?.events().iter().cloned());
    }
    events.sort_by_key(HistoryEvent::id);
    Ok(events)
}
