//! The worker's side of step logs: a [`Shipper`] per task attempt takes
//! each masked line as the step prints it and sends it to the attempt's
//! log stream from a task of its own, so a slow or failing log service
//! never slows or fails the step:
//!
//! - lines wait in a buffer bounded by [`BUFFER_BYTES`]; a line that does
//!   not fit is dropped and counted, and the stream says so in its place
//!   (`[topsail] N lines not shipped ...`), in order;
//! - batches stay within PutLogEvents' limits ([`MAX_BATCH_EVENTS`] events,
//!   [`MAX_BATCH_BYTES`] counting 26 bytes per event, [`MAX_EVENT_BYTES`]
//!   per event) and go out [`LINGER`] after their first line at the latest;
//! - a batch that fails in a way that may pass (throttling, a 5xx, the
//!   network) is sent again with backoff, [`TRIES`] times; one that still
//!   fails is counted lost and the stream says so;
//! - timestamps never go back, so a stream reads in the order printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::encode;
use crate::run::runtime::Stream;

/// Bytes of lines that may wait to be shipped, per task attempt.
pub const BUFFER_BYTES: usize = 8 << 20;
/// PutLogEvents: at most 10,000 events and 1,048,576 bytes per call, each
/// event counted as its UTF-8 message plus 26 bytes, at most 256 KiB each.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD: usize = 26;
pub const MAX_EVENT_BYTES: usize = 262_144 - EVENT_OVERHEAD;
/// How long the first line of a batch waits for company.
pub const LINGER: Duration = Duration::from_millis(200);
/// Sends of one batch before its lines are counted lost.
pub const TRIES: u32 = 5;

struct Event {
    ms: i64,
    message: String,
}

/// What a shipper did, for the worker's log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shipped {
    pub sent: u64,
    /// Lines dropped (full buffer) or lost (a batch that failed every try).
    pub lost: u64,
    /// The last error from CloudWatch Logs, one line.
    pub error: Option<String>,
}

pub struct Shipper {
    tx: Option<mpsc::UnboundedSender<Event>>,
    buffered: Arc<AtomicUsize>,
    /// Dropped since the last gap note, and in all.
    dropped: u64,
    dropped_total: u64,
    last_ms: i64,
    task: Option<JoinHandle<Shipped>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Shipper {
    /// Logs off: every push is a no-op.
    pub fn off() -> Shipper {
        Shipper {
            tx: None,
            buffered: Arc::new(AtomicUsize::new(0)),
            dropped: 0,
            dropped_total: 0,
            last_ms: 0,
            task: None,
        }
    }

    /// Ship to `stream` of `group` (the stream is created; the group too,
    /// should `deploy` not have made it).
    pub fn start(client: Client, group: String, stream: String) -> Shipper {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(
            Sink::Cloud {
                client,
                group,
                stream,
            },
            rx,
            buffered.clone(),
        ));
        Shipper {
            tx: Some(tx),
            buffered,
            dropped: 0,
            dropped_total: 0,
            last_ms: 0,
            task: Some(task),
        }
    }

    #[cfg(test)]
    fn start_with(sink: Sink) -> Shipper {
        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(run(sink, rx, buffered.clone()));
        Shipper {
            tx: Some(tx),
            buffered,
            dropped: 0,
            dropped_total: 0,
            last_ms: 0,
            task: Some(task),
        }
    }

    /// Queue one line; never waits.
    pub fn push(&mut self, stream: Stream, text: &str) {
        let Some(tx) = &self.tx else { return };
        let mut message = encode(stream, text);
        if message.len() > MAX_EVENT_BYTES {
            let mut cut = MAX_EVENT_BYTES - 40;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [topsail: cut for CloudWatch]");
        }
        let size = message.len() + EVENT_OVERHEAD;
        if self.buffered.load(Ordering::Relaxed) + size > BUFFER_BYTES {
            self.dropped += 1;
            self.dropped_total += 1;
            return;
        }
        let ms = now_ms().max(self.last_ms);
        self.last_ms = ms;
        if self.dropped > 0 {
            let note = encode(
                Stream::System,
                &format!(
                    "{} line{} not shipped here: the log buffer was full (CloudWatch Logs slow or unreachable); the worker's own log has them",
                    self.dropped,
                    if self.dropped == 1 { "" } else { "s" }
                ),
            );
            self.buffered
                .fetch_add(note.len() + EVENT_OVERHEAD, Ordering::Relaxed);
            let _ = tx.send(Event { ms, message: note });
        }
        self.buffered.fetch_add(size, Ordering::Relaxed);
        if tx.send(Event { ms, message }).is_ok() {
            self.dropped = 0;
        }
    }

    /// No more lines: wait up to `within` for what is buffered to be sent.
    pub async fn finish(mut self, within: Duration) -> Shipped {
        let dropped = self.dropped_total;
        self.tx = None;
        let Some(mut task) = self.task.take() else {
            return Shipped::default();
        };
        match tokio::time::timeout(within, &mut task).await {
            Ok(Ok(mut s)) => {
                s.lost += dropped;
                s
            }
            Ok(Err(e)) => Shipped {
                sent: 0,
                lost: dropped,
                error: Some(format!("the log shipper ended abnormally: {e}")),
            },
            Err(_) => {
                task.abort();
                let left = self.buffered.load(Ordering::Relaxed);
                Shipped {
                    sent: 0,
                    lost: dropped,
                    error: Some(format!(
                        "{left} bytes of lines not shipped within {}s",
                        within.as_secs()
                    )),
                }
            }
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        // Unfinished (the task was abandoned): the lines already queued are
        // still sent; the shipper ends when its queue is empty.
        self.tx = None;
    }
}

enum Sink {
    Cloud {
        client: Client,
        group: String,
        stream: String,
    },
    #[cfg(test)]
    Test(Arc<std::sync::Mutex<TestSink>>),
}

#[cfg(test)]
#[derive(Default)]
struct TestSink {
    batches: Vec<Vec<(i64, String)>>,
    fail_next: u32,
    delay: Duration,
}

/// Why a send failed, and whether another try may mend it.
struct SendError {
    why: String,
    may_pass: bool,
}

impl Sink {
    async fn prepare(&self) -> Result<(), String> {
        match self {
            Sink::Cloud {
                client,
                group,
                stream,
            } => {
                for _ in 0..2 {
                    match client
                        .create_log_stream()
                        .log_group_name(group)
                        .log_stream_name(stream)
                        .send()
                        .await
                    {
                        Ok(_) => return Ok(()),
                        Err(e) => match e.as_service_error() {
                            Some(s) if s.is_resource_already_exists_exception() => return Ok(()),
                            Some(s) if s.is_resource_not_found_exception() => {
                                // `deploy` makes the group; a worker may
                                // have the right to as well.
                                let _ =
                                    client.create_log_group().log_group_name(group).send().await;
                            }
                            _ => return Err(short(&e)),
                        },
                    }
                }
                Err(format!(
                    "log group {group} does not exist (`topsail deploy` creates it)"
                ))
            }
            #[cfg(test)]
            Sink::Test(_) => Ok(()),
        }
    }

    async fn send(&self, batch: &[Event]) -> Result<(), SendError> {
        match self {
            Sink::Cloud {
                client,
                group,
                stream,
            } => {
                let events: Vec<InputLogEvent> = batch
                    .iter()
                    .filter_map(|e| {
                        InputLogEvent::builder()
                            .timestamp(e.ms)
                            .message(&e.message)
                            .build()
                            .ok()
                    })
                    .collect();
                match client
                    .put_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .set_log_events(Some(events))
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        if e.as_service_error()
                            .is_some_and(aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsError::is_data_already_accepted_exception)
                        {
                            return Ok(());
                        }
                        let may_pass = match e.as_service_error() {
                            None => true,
                            Some(s) => {
                                s.is_service_unavailable_exception()
                                    || matches!(
                                        s.code(),
                                        Some(
                                            "ThrottlingException"
                                                | "Throttling"
                                                | "InternalFailure"
                                        )
                                    )
                            }
                        };
                        Err(SendError {
                            why: short(&e),
                            may_pass,
                        })
                    }
                }
            }
            #[cfg(test)]
            Sink::Test(t) => {
                let delay = t.lock().unwrap().delay;
                tokio::time::sleep(delay).await;
                let mut t = t.lock().unwrap();
                if t.fail_next > 0 {
                    t.fail_next -= 1;
                    return Err(SendError {
                        why: "ThrottlingException".into(),
                        may_pass: true,
                    });
                }
                t.batches
                    .push(batch.iter().map(|e| (e.ms, e.message.clone())).collect());
                Ok(())
            }
        }
    }
}

/// An SDK error in one line: its code and message, no debug dump.
fn short<E, R>(e: &aws_sdk_cloudwatchlogs::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => match (s.code(), s.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => "service error".to_string(),
        },
        None => match e {
            aws_sdk_cloudwatchlogs::error::SdkError::TimeoutError(_) => "timed out".into(),
            aws_sdk_cloudwatchlogs::error::SdkError::DispatchFailure(_) => {
                "cannot reach CloudWatch Logs".into()
            }
            _ => "request failed".into(),
        },
    }
}

async fn run(
    sink: Sink,
    mut rx: mpsc::UnboundedReceiver<Event>,
    buffered: Arc<AtomicUsize>,
) -> Shipped {
    let mut shipped = Shipped::default();
    let ready = sink.prepare().await;
    if let Err(why) = ready {
        // Nowhere to write: count what comes, keep the bound.
        while let Some(e) = rx.recv().await {
            buffered.fetch_sub(e.message.len() + EVENT_OVERHEAD, Ordering::Relaxed);
            shipped.lost += 1;
        }
        shipped.error = Some(why);
        return shipped;
    }
    let mut carry: Option<Event> = None;
    let mut lost_since: u64 = 0;
    loop {
        let first = match carry.take() {
            Some(e) => e,
            None => match rx.recv().await {
                Some(e) => e,
                None => break,
            },
        };
        let mut batch: Vec<Event> = Vec::new();
        let mut bytes = 0usize;
        if lost_since > 0 {
            let note = encode(
                Stream::System,
                &format!(
                    "{lost_since} line{} lost here: CloudWatch Logs refused them ({})",
                    if lost_since == 1 { "" } else { "s" },
                    shipped.error.as_deref().unwrap_or("error")
                ),
            );
            bytes += note.len() + EVENT_OVERHEAD;
            batch.push(Event {
                ms: first.ms,
                message: note,
            });
            lost_since = 0;
        }
        bytes += first.message.len() + EVENT_OVERHEAD;
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut closed = false;
        while batch.len() < MAX_BATCH_EVENTS {
            let next = tokio::select! {
                e = rx.recv() => e,
                () = tokio::time::sleep_until(deadline) => break,
            };
            let Some(e) = next else {
                closed = true;
                break;
            };
            let size = e.message.len() + EVENT_OVERHEAD;
            // One batch spans at most 24 hours; far less here, but keep it.
            if bytes + size > MAX_BATCH_BYTES || e.ms - batch[0].ms > 23 * 3_600_000 {
                carry = Some(e);
                break;
            }
            bytes += size;
            batch.push(e);
        }
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        let n = batch.len() as u64;
        loop {
            tries += 1;
            match sink.send(&batch).await {
                Ok(()) => {
                    shipped.sent += n;
                    break;
                }
                Err(e) if e.may_pass && tries < TRIES => {
                    shipped.error = Some(e.why);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    shipped.error = Some(e.why);
                    shipped.lost += n;
                    lost_since += n;
                    break;
                }
            }
        }
        let freed: usize = batch.iter().map(|e| e.message.len() + EVENT_OVERHEAD).sum();
        buffered.fetch_sub(
            freed.min(buffered.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if closed && carry.is_none() {
            break;
        }
    }
    shipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn lines(t: &Arc<Mutex<TestSink>>) -> Vec<String> {
        t.lock()
            .unwrap()
            .batches
            .iter()
            .flatten()
            .map(|(_, m)| m.clone())
            .collect()
    }

    #[tokio::test]
    async fn lines_arrive_in_order_with_times_that_never_go_back() {
        let t = Arc::new(Mutex::new(TestSink::default()));
        let mut s = Shipper::start_with(Sink::Test(t.clone()));
        for i in 0..2000 {
            s.push(
                if i % 2 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                },
                &format!("line {i}"),
            );
        }
        let done = s.finish(Duration::from_secs(5)).await;
        assert_eq!(done.sent, 2000);
        assert_eq!(done.lost, 0);
        let got = lines(&t);
        assert_eq!(got.len(), 2000);
        assert_eq!(got[0], "line 0");
        assert_eq!(got[1], "[stderr] line 1");
        assert_eq!(got[1999], "[stderr] line 1999");
        let times: Vec<i64> = t
            .lock()
            .unwrap()
            .batches
            .iter()
            .flatten()
            .map(|e| e.0)
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[tokio::test]
    async fn batches_keep_within_put_log_events_limits() {
        let t = Arc::new(Mutex::new(TestSink::default()));
        let mut s = Shipper::start_with(Sink::Test(t.clone()));
        let big = "x".repeat(60_000);
        for _ in 0..50 {
            s.push(Stream::Stdout, &big);
        }
        for _ in 0..12_000 {
            s.push(Stream::Stdout, "y");
        }
        let done = s.finish(Duration::from_secs(10)).await;
        assert_eq!(done.sent, 12_050);
        let t = t.lock().unwrap();
        assert!(t.batches.len() >= 3, "{}", t.batches.len());
        for b in &t.batches {
            assert!(b.len() <= MAX_BATCH_EVENTS);
            let bytes: usize = b.iter().map(|(_, m)| m.len() + EVENT_OVERHEAD).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        }
    }

    #[tokio::test]
    async fn a_throttled_batch_is_sent_again() {
        let t = Arc::new(Mutex::new(TestSink {
            fail_next: 2,
            ..TestSink::default()
        }));
        let mut s = Shipper::start_with(Sink::Test(t.clone()));
        s.push(Stream::Stdout, "a");
        s.push(Stream::Stdout, "b");
        let done = s.finish(Duration::from_secs(10)).await;
        assert_eq!((done.sent, done.lost), (2, 0));
        assert_eq!(lines(&t), ["a", "b"]);
    }

    #[tokio::test]
    async fn a_slow_service_never_blocks_a_push_and_the_gap_is_said() {
        let t = Arc::new(Mutex::new(TestSink {
            delay: Duration::from_millis(300),
            ..TestSink::default()
        }));
        let mut s = Shipper::start_with(Sink::Test(t.clone()));
        let line = "z".repeat(60_000);
        let t0 = std::time::Instant::now();
        // 30 MB against an 8 MB buffer.
        for _ in 0..500 {
            s.push(Stream::Stdout, &line);
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        s.push(Stream::Stdout, "after the gap");
        let done = s.finish(Duration::from_secs(30)).await;
        assert!(done.lost > 300, "{done:?}");
        let got = lines(&t);
        let gap = got
            .iter()
            .position(|l| l.contains("not shipped here"))
            .expect("a gap note");
        assert!(got[gap].starts_with("[topsail] "), "{}", got[gap]);
        assert_eq!(got.last().map(String::as_str), Some("after the gap"));
        assert_eq!(done.sent as usize, got.len());
    }
}
