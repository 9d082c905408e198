//! Limits and timing rules that the checker, the ASL compiler and the
//! activity worker must agree on, defined once here.

use std::time::Duration;

use super::Step;

/// Step Functions: a state name has at most 80 characters (so a step name
/// may have no more).
pub const MAX_STATE_NAME: usize = 80;

/// HeartbeatSeconds of a script step that sets no `heartbeat`: a worker that
/// dies (SIGKILL, lost machine) leaves its task to time out after this long,
/// and the task is then retried on another worker. Nothing is lost, at the
/// price of up to this delay; a step can set `heartbeat` to shorten it.
pub const DEFAULT_HEARTBEAT_SECONDS: u64 = 60;

/// Whole seconds, rounded up, at least 1: how Step Functions is given a
/// duration (`TimeoutSeconds`, `HeartbeatSeconds`, `IntervalSeconds`).
pub fn ceil_seconds(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// The heartbeat of a step in seconds: its own `heartbeat`, else
/// [`DEFAULT_HEARTBEAT_SECONDS`] kept below the step's timeout (Step
/// Functions needs HeartbeatSeconds < TimeoutSeconds); none for a timeout of
/// 1 s, whose expiry then stands for the lost worker.
pub fn heartbeat_seconds(step: &Step) -> Option<u64> {
    if let Some(h) = step.heartbeat {
        return Some(ceil_seconds(h));
    }
    match step.timeout.map(ceil_seconds) {
        None => Some(DEFAULT_HEARTBEAT_SECONDS),
        Some(t) if t > 1 => Some(DEFAULT_HEARTBEAT_SECONDS.min(t - 1)),
        Some(_) => None,
    }
}
