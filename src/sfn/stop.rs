//! Stopping cloud executions (issue 15): `topsail stop EXECUTION` calls
//! StopExecution; the worker running one of its tasks learns of it from its
//! next heartbeat, which goes at least every [`CHECK_EVERY`] (whatever the
//! step's HeartbeatSeconds), kills the step and says so in one line.
//! Finding an execution by its name, as every cloud command does, is here
//! too ([`resolve`]).

use std::time::Duration;

use crate::sfn::{Clients, err, find_state_machine, logs::split_execution_arn};

/// The longest a worker goes without asking Step Functions whether its task
/// is still wanted (a heartbeat): a stopped execution's step is killed
/// within this, plus the kill's own grace.
pub const CHECK_EVERY: Duration = Duration::from_secs(3);

/// The error a stop records (AWS keeps it in the ExecutionAborted event).
pub const STOPPED: &str = "topsail.Stopped";

/// An execution named by its ARN, or by its name within state machine
/// `machine`; its ARN, checked to exist.
pub async fn resolve(c: &Clients, spec: &str, machine: Option<&str>) -> Result<String, String> {
    let arn = if split_execution_arn(spec).is_some() {
        spec.to_string()
    } else {
        let Some(machine) = machine else {
            return Err(format!(
                "`{spec}` is not an execution ARN: give the ARN, or run this next to the pipeline file (or pass it) so that its state machine is known"
            ));
        };
        let sm = find_state_machine(&c.sfn, machine).await?.ok_or_else(|| {
            format!("no state machine `{machine}`: deploy it first with `topsail deploy`")
        })?;
        format!("{}:{spec}", sm.replacen(":stateMachine:", ":execution:", 1))
    };
    match c.sfn.describe_execution().execution_arn(&arn).send().await {
        Ok(_) => Ok(arn),
        Err(e)
            if e.as_service_error()
                .is_some_and(aws_sdk_sfn::operation::describe_execution::DescribeExecutionError::is_execution_does_not_exist) =>
        {
            Err(format!("no execution {arn}"))
        }
        Err(e) => Err(err(e)),
    }
}

/// Stop execution `arn`; whether it was running (false: it had ended).
pub async fn stop(c: &Clients, arn: &str, reason: Option<&str>) -> Result<bool, String> {
    let d = c
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .map_err(err)?;
    if d.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
        return Ok(false);
    }
    let mut req = c.sfn.stop_execution().execution_arn(arn).error(STOPPED);
    if let Some(r) = reason {
        // StopExecution's cause holds at most 32768 characters.
        req = req.cause(r.chars().take(32_768).collect::<String>());
    }
    req.send().await.map_err(err)?;
    Ok(true)
}

/// The worker's one line for a task whose execution was stopped or failed
/// elsewhere (its heartbeat was refused): the error's code, no SDK dump.
pub fn gone_line<R>(
    e: &aws_sdk_sfn::error::SdkError<
        aws_sdk_sfn::operation::send_task_heartbeat::SendTaskHeartbeatError,
        R,
    >,
) -> String {
    use aws_sdk_sfn::error::ProvideErrorMetadata;
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("TaskTimedOut");
    format!("stopped: the execution was stopped or has failed elsewhere ({code})")
}

/// On shutdown: wait for the outstanding GetActivityTask to return and
/// hand a task it got straight back as `topsail.WorkerShutdown`, which the
/// compiled Retry sends to another worker.
pub async fn finish_poll<F>(c: &Clients, worker: &str, poll: F)
where
    F: std::future::Future<
            Output = Result<
                aws_sdk_sfn::operation::get_activity_task::GetActivityTaskOutput,
                aws_sdk_sfn::error::SdkError<
                    aws_sdk_sfn::operation::get_activity_task::GetActivityTaskError,
                    aws_sdk_sfn::config::http::HttpResponse,
                >,
            >,
        >,
{
    crate::sfn::worker::log(
        worker,
        "",
        "stopping: finishing the outstanding poll first (up to a minute), so that no task is left with a stopped worker",
    );
    let Ok(out) = poll.await else { return };
    let Some(token) = out.task_token().filter(|t| !t.is_empty()) else {
        return;
    };
    let sent = c
        .sfn
        .send_task_failure()
        .task_token(token)
        .error(crate::model::errors::WORKER_SHUTDOWN)
        .cause(format!(
            "worker {worker} was handed this task while stopping; it is retried on another worker"
        ))
        .send()
        .await;
    match sent {
        Ok(_) => crate::sfn::worker::log(
            worker,
            "",
            "handed back a task it got while stopping [topsail.WorkerShutdown]",
        ),
        Err(e) => crate::sfn::worker::log(
            worker,
            "",
            &format!(
                "could not hand back a task it got while stopping: {}",
                err(e)
            ),
        ),
    }
}
