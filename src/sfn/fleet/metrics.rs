//! The worker's metrics (issue 16): what an autoscaler or a dashboard reads
//! from `topsail worker --metrics ADDR`, in the Prometheus text format, with
//! a health answer beside it.
//!
//! - `topsail_worker_tasks_in_flight`: tasks taken and not yet answered;
//! - `topsail_worker_tasks_finished_total{outcome, error}`: tasks answered,
//!   by outcome (`succeeded`, `failed`, `stopped`: the execution stopped or
//!   the task was lost elsewhere) and Step Functions error name;
//! - `topsail_worker_poll_seconds`: how long a GetActivityTask took to be
//!   answered (a long poll that returns empty counts too: it is the wait);
//! - `topsail_worker_task_seconds`: from the task taken to it answered.
//!
//! The counts are process-wide (one worker per process) and kept whether
//! or not an endpoint serves them; recording is a few atomic operations.
//! The endpoint listens on loopback only: it is for a sidecar or a local
//! agent, not for the network.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Finished {
    outcome: String,
    error: String,
}

struct Metrics {
    registry: Registry,
    in_flight: Gauge,
    finished: Family<Finished, Counter>,
    poll: Histogram,
    task: Histogram,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("topsail_worker");
        let in_flight = Gauge::default();
        registry.register(
            "tasks_in_flight",
            "Tasks taken and not yet answered",
            in_flight.clone(),
        );
        let finished = Family::<Finished, Counter>::default();
        registry.register(
            "tasks_finished",
            "Tasks answered, by outcome and error name",
            finished.clone(),
        );
        // 10 ms .. about 82 s: a poll waits up to 60 s; tasks run longer
        // than the last bucket land in +Inf.
        let poll = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        registry.register(
            "poll_seconds",
            "Time until a GetActivityTask long poll was answered",
            poll.clone(),
        );
        let task = Histogram::new(exponential_buckets(0.01, 2.0, 20));
        registry.register(
            "task_seconds",
            "Time from a task taken to it answered",
            task.clone(),
        );
        Metrics {
            registry,
            in_flight,
            finished,
            poll,
            task,
        }
    })
}

/// A task was taken; [`finished`] ends it.
pub fn task_taken() {
    metrics().in_flight.inc();
}

/// A task taken was answered (or given up) after `took`.
pub fn finished(outcome: &str, error: &str, took: Duration) {
    let m = metrics();
    m.in_flight.dec();
    m.finished
        .get_or_create(&Finished {
            outcome: outcome.to_string(),
            error: error.to_string(),
        })
        .inc();
    m.task.observe(took.as_secs_f64());
}

/// A GetActivityTask call was answered after `took`.
pub fn polled(took: Duration) {
    metrics().poll.observe(took.as_secs_f64());
}

/// The metrics in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    // Encoding into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics().registry);
    out
}

/// Why `--metrics ADDR` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "--metrics {0}: not a loopback address; the endpoint is for a local agent or sidecar (e.g. --metrics 127.0.0.1:9464)"
    )]
    NotLoopback(SocketAddr),
    #[error("--metrics {0}: cannot listen there: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Listen on `addr` (loopback only) and serve `GET /metrics` and
/// `GET /healthz` until the process ends; the address bound (port 0 picks
/// one).
pub async fn serve(addr: SocketAddr) -> Result<SocketAddr, EndpointError> {
    if !addr.ip().is_loopback() {
        return Err(EndpointError::NotLoopback(addr));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| EndpointError::Bind(addr, e))?;
    let bound = listener.local_addr().unwrap_or(addr);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                // One request per connection; the head is all we read, bounded.
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while len < buf.len() {
                        match conn.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                })
                .await;
                if read.is_err() {
                    return;
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let path = head
                    .lines()
                    .next()
                    .and_then(|l| l.strip_prefix("GET "))
                    .and_then(|l| l.split(' ').next())
                    .unwrap_or("");
                let (status, kind, body) = match path {
                    "/metrics" => (
                        "200 OK",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        render(),
                    ),
                    "/healthz" | "/health" => ("200 OK", "text/plain", "ok\n".to_string()),
                    _ => (
                        "404 Not Found",
                        "text/plain",
                        "GET /metrics or /healthz\n".to_string(),
                    ),
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
                let _ = conn.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rendered_by_outcome_and_error() {
        task_taken();
        finished("failed", "test.OnlyHere", Duration::from_millis(20));
        let text = render();
        assert!(
            text.contains(
                "topsail_worker_tasks_finished_total{outcome=\"failed\",error=\"test.OnlyHere\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("topsail_worker_task_seconds_count"), "{text}");
        assert!(text.contains("topsail_worker_tasks_in_flight"), "{text}");
    }
}
