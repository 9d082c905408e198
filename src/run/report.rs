//! What a run reports: the status of each unit and of the whole run, as the
//! scheduler produces it, the run record stores it (`run.json`), the UI
//! prints it, and `topsail start --follow` rebuilds it from a Step Functions
//! execution's history. Plain data, so each of those reads it without
//! importing the others.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Serialize;

use crate::model::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl Status {
    pub fn is_done(self) -> bool {
        !matches!(self, Status::Pending | Status::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Succeeded => 0,
            RunStatus::Failed | RunStatus::Running => 1,
            RunStatus::Interrupted => 130,
        }
    }
}

/// One unit in the record and the summary. Outputs are masked.
#[derive(Clone, Debug, Serialize)]
pub struct UnitReport {
    pub name: String,
    pub step: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<serde_json::Value>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    pub duration_ms: u64,
    pub outputs: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub pipeline: String,
    pub file: PathBuf,
    pub status: RunStatus,
    pub started_ms: u64,
    pub duration_ms: u64,
    pub params: IndexMap<String, Value>,
    pub steps: Vec<UnitReport>,
    /// The process running it (see [`crate::run::record::sweep_lost`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::run::record::Owner>,
}
