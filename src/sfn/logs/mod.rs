//! Step logs in CloudWatch Logs (issue 15). The worker ships every line a
//! step prints ([`ship::Shipper`]: bounded, batched, retried, ordered, gaps
//! said), masked as under `topsail run`, to the pipeline's log group
//! ([`group_name`], created by `deploy`), one stream per execution, unit
//! (step or foreach item) and attempt ([`stream_name`]). `start --follow`
//! and `topsail logs` read them back ([`Reader`]).
//!
//! A line's message is the text the local run record keeps: stdout as
//! printed, stderr after `[stderr] `, topsail's own notes after
//! `[topsail] ` ([`encode`], [`decode`]).

pub mod ship;

use std::collections::HashSet;

use aws_sdk_cloudwatchlogs::Client;

use crate::run::runtime::Stream;
use crate::sfn::err;

/// `deploy`'s default retention of step logs.
pub const DEFAULT_RETENTION_DAYS: i32 = 30;

/// The log group of state machine `sm` (`/topsail/<name>`).
pub fn group_name(state_machine: &str) -> String {
    format!("/topsail/{}", crate::sfn::resource_name(state_machine))
}

/// The log group a worker serving `activity_arn` writes to: the activity is
/// `topsail-<state machine>` ([`crate::sfn::activity_name`]).
/// A queue's activity, `topsail-<state machine>--<queue>`
/// ([`crate::sfn::fleet::queue_activity_name`]), writes to its state
/// machine's group too.
pub fn group_for_activity(activity_arn: &str) -> String {
    let name = activity_arn.rsplit(':').next().unwrap_or(activity_arn);
    let name = name.strip_prefix("topsail-").unwrap_or(name);
    let name = name
        .rsplit_once("--")
        .map_or(name, |(machine, _queue)| machine);
    group_name(name)
}

/// The retention periods CloudWatch Logs accepts, in days.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// Create log group `group` with `retention` days (None: kept for ever),
/// or set its retention; what changed.
pub async fn ensure_group(
    client: &Client,
    group: &str,
    retention: Option<i32>,
) -> Result<crate::sfn::deploy::Change, String> {
    use crate::sfn::deploy::Change;
    let existing = client
        .describe_log_groups()
        .log_group_name_prefix(group)
        .send()
        .await
        .map_err(err)?
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(group))
        .map(aws_sdk_cloudwatchlogs::types::LogGroup::retention_in_days);
    let change = match existing {
        None => {
            match client.create_log_group().log_group_name(group).send().await {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError::is_resource_already_exists_exception) => {}
                Err(e) => return Err(err(e)),
            }
            Change::Created
        }
        Some(r) if r == retention => return Ok(Change::Unchanged),
        Some(_) => Change::Updated,
    };
    match retention {
        Some(days) => {
            client
                .put_retention_policy()
                .log_group_name(group)
                .retention_in_days(days)
                .send()
                .await
                .map_err(err)?;
        }
        None if change == Change::Updated => {
            client
                .delete_retention_policy()
                .log_group_name(group)
                .send()
                .await
                .map_err(err)?;
        }
        None => {}
    }
    Ok(change)
}

/// Longest log stream name CloudWatch accepts.
const MAX_STREAM: usize = 512;

/// `<execution>/<unit>/<attempt>`: the unit is the step, or `step[item]`;
/// the attempt tag is when it started (UTC, sortable) and on which worker.
/// `:` and `*` (refused by CloudWatch) and control characters become `_`.
pub fn stream_name(run_id: &str, unit: &str, attempt: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c == ':' || c == '*' || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    // The attempt tag is last and has no `/`, so the unit may hold one.
    let attempt = clean(attempt).replace('/', "_");
    let head = format!("{}/{}", clean(run_id), clean(unit));
    let room = MAX_STREAM.saturating_sub(attempt.len() + 1);
    let head: String = if head.len() > room {
        let mut cut = room;
        while !head.is_char_boundary(cut) {
            cut -= 1;
        }
        head[..cut].to_string()
    } else {
        head
    };
    format!("{head}/{attempt}")
}

/// The unit a stream of execution `run_id` belongs to (None: another's).
pub fn unit_of_stream<'a>(run_id: &str, stream: &'a str) -> Option<&'a str> {
    let rest = stream.strip_prefix(run_id)?.strip_prefix('/')?;
    Some(rest.rsplit_once('/').map_or(rest, |(unit, _)| unit))
}

/// A line as a log event's message (CloudWatch refuses an empty one).
pub fn encode(stream: Stream, text: &str) -> String {
    match stream {
        Stream::Stdout if text.is_empty() => "[stdout] ".to_string(),
        Stream::Stdout => text.to_string(),
        Stream::Stderr => format!("[stderr] {text}"),
        Stream::System => format!("[topsail] {text}"),
    }
}

/// A line as the local run record's `run.log` keeps it.
pub fn record_text(stream: Stream, text: &str) -> String {
    match stream {
        Stream::Stdout => text.to_string(),
        s => encode(s, text),
    }
}

/// A message back as the line it was.
pub fn decode(message: &str) -> (Stream, &str) {
    if let Some(t) = message.strip_prefix("[stderr] ") {
        (Stream::Stderr, t)
    } else if let Some(t) = message.strip_prefix("[topsail] ") {
        (Stream::System, t)
    } else if let Some(t) = message.strip_prefix("[stdout] ") {
        (Stream::Stdout, t)
    } else {
        (Stream::Stdout, message)
    }
}

/// One line read back: its unit, stream, text and time (ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub unit: String,
    pub stream: Stream,
    pub text: String,
    pub ms: i64,
}

/// Reads an execution's lines, each once, as they arrive: every [`poll`]
/// asks for what came since a little before the newest line seen (lines
/// are shipped in batches, and a batch may land late).
///
/// [`poll`]: Reader::poll
pub struct Reader {
    client: Client,
    group: String,
    run_id: String,
    seen: HashSet<String>,
    newest: i64,
}

/// How far back each poll looks again for a batch that landed late.
const LOOK_BACK_MS: i64 = 60_000;

impl Reader {
    pub fn new(client: Client, group: String, run_id: String) -> Reader {
        Reader {
            client,
            group,
            run_id,
            seen: HashSet::new(),
            newest: 0,
        }
    }

    /// The lines not returned before, in time order. A missing log group
    /// (nothing shipped yet, or logs off) is no line, not an error.
    pub async fn poll(&mut self) -> Result<Vec<LogLine>, String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        let prefix = format!("{}/", self.run_id);
        loop {
            let mut req = self
                .client
                .filter_log_events()
                .log_group_name(&self.group)
                .log_stream_name_prefix(&prefix)
                .set_next_token(token.take());
            if self.newest > 0 {
                req = req.start_time((self.newest - LOOK_BACK_MS).max(0));
            }
            let page = match req.send().await {
                Ok(p) => p,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError::is_resource_not_found_exception) =>
                {
                    return Ok(out);
                }
                Err(e) => return Err(err(e)),
            };
            for ev in page.events() {
                let (Some(stream), Some(message)) = (ev.log_stream_name(), ev.message()) else {
                    continue;
                };
                let id = ev.event_id().map_or_else(
                    || format!("{stream}/{}/{message}", ev.timestamp().unwrap_or(0)),
                    str::to_string,
                );
                if !self.seen.insert(id) {
                    continue;
                }
                let Some(unit) = unit_of_stream(&self.run_id, stream) else {
                    continue;
                };
                let (s, text) = decode(message);
                out.push(LogLine {
                    unit: unit.to_string(),
                    stream: s,
                    text: text.to_string(),
                    ms: ev.timestamp().unwrap_or(0),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && !page.events().is_empty() => {
                    token = Some(t.to_string());
                }
                _ => break,
            }
        }
        // Stable: lines of one stream with the same time keep their order.
        out.sort_by_key(|l| l.ms);
        if let Some(last) = out.last() {
            self.newest = self.newest.max(last.ms);
        }
        Ok(out)
    }
}

/// An execution ARN's state machine and execution name
/// (`arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME`).
pub fn split_execution_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(7, ':');
    let (_partition, service, _region, _account, kind) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if service != "states" || kind != "execution" {
        return None;
    }
    let machine = parts.next()?;
    let name = parts.next()?;
    (!machine.is_empty() && !name.is_empty()).then_some((machine, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_name_the_execution_unit_and_attempt() {
        let s = stream_name("r1", "deploy[eu/west:1]", "20261202T070000.123Z-w1");
        assert_eq!(s, "r1/deploy[eu/west_1]/20261202T070000.123Z-w1");
        assert_eq!(unit_of_stream("r1", &s), Some("deploy[eu/west_1]"));
        assert_eq!(unit_of_stream("r2", &s), None);
        assert_eq!(unit_of_stream("r", &s), None);
        let long = stream_name("r1", &"x".repeat(600), "a/b*");
        assert!(long.len() <= MAX_STREAM, "{}", long.len());
        assert!(long.ends_with("/a_b_"), "{long}");
    }

    #[test]
    fn lines_round_trip_through_messages() {
        for (stream, text) in [
            (Stream::Stdout, "hello"),
            (Stream::Stdout, ""),
            (Stream::Stderr, "oops"),
            (Stream::System, "started on the host"),
        ] {
            let m = encode(stream, text);
            assert!(!m.is_empty());
            assert_eq!(decode(&m), (stream, text));
        }
    }

    #[test]
    fn groups_and_execution_arns() {
        assert_eq!(group_name("my app"), "/topsail/my-app");
        assert_eq!(
            group_for_activity("arn:aws:states:us-east-1:123456789012:activity:topsail-hello"),
            "/topsail/hello"
        );
        assert_eq!(
            split_execution_arn("arn:aws:states:us-east-1:1:execution:hello:run-1"),
            Some(("hello", "run-1"))
        );
        assert_eq!(
            split_execution_arn("arn:aws:states:us-east-1:1:stateMachine:hello"),
            None
        );
        assert_eq!(split_execution_arn("run-1"), None);
    }
}
