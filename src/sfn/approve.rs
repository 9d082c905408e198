//! `topsail approve`: the approval steps waiting on SQS. An approval step
//! sends `{"kind": "topsail.approval", "execution", "run_id", "step",
//! "message", "token"}` to the pipeline's queue and waits for its task token.
//!
//! Reading a queue must not lose or hide messages: each message read is made
//! visible again at once (ChangeMessageVisibility 0). A message is deleted
//! only once it is answered here, or when its execution is no longer running.
//! Two readers at the same moment may each see part of a queue.

use std::collections::HashSet;

use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::Value as Json;

use crate::asl::APPROVAL_KIND;
use crate::model::errors;
use crate::sfn::{Clients, err, queue_name};

#[derive(Clone, Debug)]
pub struct Pending {
    pub queue_url: String,
    pub receipt: String,
    pub sent_ms: u64,
    pub pipeline: String,
    pub execution: String,
    pub run_id: String,
    pub step: String,
    pub message: String,
    pub token: String,
}

/// Queue URLs: the one of `state_machine`, or every topsail approval queue.
pub async fn queues(c: &Clients, state_machine: Option<&str>) -> Result<Vec<String>, String> {
    if let Some(name) = state_machine {
        let out = c
            .sqs
            .get_queue_url()
            .queue_name(queue_name(name))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "no approval queue for `{name}` (was it deployed with approval steps?): {}",
                    err(e)
                )
            })?;
        return Ok(out.queue_url().map(str::to_string).into_iter().collect());
    }
    let mut urls = Vec::new();
    let mut pages = c
        .sqs
        .list_queues()
        .queue_name_prefix("topsail-")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        urls.extend(
            page.map_err(err)?
                .queue_urls()
                .iter()
                .filter(|u| u.ends_with("-approvals"))
                .cloned(),
        );
    }
    Ok(urls)
}

/// Every pending approval in `queues`, newest message per (execution, step).
/// The messages stay on their queues.
pub async fn pending(c: &Clients, queues: &[String]) -> Result<Vec<Pending>, String> {
    let mut all: Vec<Pending> = Vec::new();
    for q in queues {
        let mut seen: HashSet<String> = HashSet::new();
        let mut receipts: Vec<String> = Vec::new();
        // Read until a round brings nothing new; what was read stays hidden
        // (30 s) meanwhile, so every round makes progress through the queue.
        for _ in 0..100 {
            let out = c
                .sqs
                .receive_message()
                .queue_url(q)
                .max_number_of_messages(10)
                .visibility_timeout(30)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                .send()
                .await
                .map_err(err)?;
            let mut new = 0;
            for m in out.messages() {
                let (Some(id), Some(receipt)) = (m.message_id(), m.receipt_handle()) else {
                    continue;
                };
                receipts.push(receipt.to_string());
                if !seen.insert(id.to_string()) {
                    continue;
                }
                new += 1;
                let Some(body) = m.body().and_then(|b| serde_json::from_str::<Json>(b).ok()) else {
                    continue;
                };
                if body["kind"] != APPROVAL_KIND {
                    continue;
                }
                let s = |k: &str| body[k].as_str().unwrap_or("").to_string();
                let sent_ms = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                all.push(Pending {
                    queue_url: q.clone(),
                    receipt: receipt.to_string(),
                    sent_ms,
                    pipeline: s("pipeline"),
                    execution: s("execution"),
                    run_id: s("run_id"),
                    step: s("step"),
                    message: s("message"),
                    token: s("token"),
                });
            }
            if new == 0 {
                break;
            }
        }
        let mut hidden = 0;
        let mut last = String::new();
        for r in receipts {
            if let Err(e) = c
                .sqs
                .change_message_visibility()
                .queue_url(q)
                .receipt_handle(r)
                .visibility_timeout(0)
                .send()
                .await
            {
                hidden += 1;
                last = err(e);
            }
        }
        if hidden > 0 {
            errln!(
                "warning: {hidden} message{} of {q} could not be made visible again ({last}): \
                 other readers see {} only after 30 s",
                if hidden == 1 { "" } else { "s" },
                if hidden == 1 { "it" } else { "them" }
            );
        }
    }
    // Newest first; an older message for the same step is an earlier attempt.
    all.sort_by_key(|p| std::cmp::Reverse(p.sent_ms));
    let mut keep: Vec<Pending> = Vec::new();
    let mut running: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
    for p in all {
        // Unknown (the call failed): keep the message, never delete on doubt.
        let alive = if let Some(a) = running.get(&p.execution) {
            *a
        } else {
            let a = c
                .sfn
                .describe_execution()
                .execution_arn(&p.execution)
                .send()
                .await
                .map_or(true, |d| d.status().as_str() == "RUNNING");
            running.insert(p.execution.clone(), a);
            a
        };
        let dup = keep
            .iter()
            .any(|k| k.execution == p.execution && k.step == p.step);
        if !alive || dup {
            // Answered or finished: nothing will ever wait for it again.
            delete(c, &p).await;
            continue;
        }
        keep.push(p);
    }
    keep.sort_by(|a, b| (a.sent_ms, &a.execution).cmp(&(b.sent_ms, &b.execution)));
    Ok(keep)
}

/// Delete an answered or stale message. A failure is reported, not fatal:
/// the message stays, and the next read finds its execution no longer
/// waiting and deletes it then.
async fn delete(c: &Clients, p: &Pending) {
    if let Err(e) = c
        .sqs
        .delete_message()
        .queue_url(&p.queue_url)
        .receipt_handle(&p.receipt)
        .send()
        .await
    {
        errln!(
            "warning: cannot delete the approval message of step `{}` in {} from {}: {} \
             (it stays on the queue until a later `topsail approve` finds it answered)",
            p.step,
            p.run_id,
            p.queue_url,
            err(e)
        );
    }
}

/// Approve (or reject) the pending approval of `step` in `execution` (its
/// ARN or name).
pub async fn answer(
    c: &Clients,
    queues: &[String],
    execution: &str,
    step: &str,
    reject: Option<&str>,
    by: &str,
) -> Result<Pending, String> {
    let list = pending(c, queues).await?;
    let Some(p) = list
        .iter()
        .find(|p| (p.execution == execution || p.run_id == execution) && p.step == step)
    else {
        let known: Vec<String> = list
            .iter()
            .map(|p| format!("{} {}", p.run_id, p.step))
            .collect();
        return Err(format!(
            "no pending approval of step `{step}` in execution `{execution}`{}",
            if known.is_empty() {
                " (nothing is waiting for approval)".to_string()
            } else {
                format!("; pending: {}", known.join(", "))
            }
        ));
    };
    let sent = match reject {
        None => c
            .sfn
            .send_task_success()
            .task_token(&p.token)
            .output(serde_json::json!({"approved": true, "by": by}).to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(err),
        Some(reason) => c
            .sfn
            .send_task_failure()
            .task_token(&p.token)
            .error(errors::REJECTED)
            .cause(format!("rejected by {by}: {reason}"))
            .send()
            .await
            .map(|_| ())
            .map_err(err),
    };
    sent?;
    delete(c, p).await;
    Ok(p.clone())
}
