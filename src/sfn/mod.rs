//! Running pipelines on AWS Step Functions (issue 5): `topsail deploy`
//! ([`deploy`]), `start --follow` ([`follow`]; [`history`] reads an execution's history
//! into the same report a local run writes), `worker` ([`worker`], the
//! activity worker that runs each task through the local runner's
//! [`crate::run::runtime`]) and `approve` ([`approve`], the SQS approval queue).
//!
//! This module owns the AWS side only: the state machine comes from
//! [`crate::asl`], a step runs through [`crate::run::runtime::run_attempt`].
//! Clients use the standard aws-config chain (env, profiles, SSO, IMDS), with
//! `--endpoint-url` / `AWS_ENDPOINT_URL` for a local emulator.

pub mod approve;
pub mod cloudformation;
pub mod deploy;
pub mod fleet;
pub mod follow;
pub mod history;
pub mod logs;
pub mod runs;
pub mod stop;
pub mod worker;

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;

/// Where to talk to AWS, shared by every Step Functions command.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AwsArgs {
    /// Send every AWS request here (a local emulator); also AWS_ENDPOINT_URL
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The AWS region (default: AWS_REGION, then the profile's)
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
}

/// GetActivityTask holds the connection for up to 60 s; the client must wait
/// longer than that, or a task handed out at second 59 is lost until its
/// heartbeat times out.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(75);

/// Both clients from one configuration.
#[derive(Clone, Debug)]
pub struct Clients {
    pub sfn: aws_sdk_sfn::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// CloudWatch Logs: step logs ([`logs`]).
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub async fn new(args: &AwsArgs) -> Result<Clients, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(POLL_TIMEOUT)
                .build(),
        );
        if let Some(url) = &args.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(r) = &args.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err("no AWS region: pass --region or set AWS_REGION".into());
        }
        Ok(Clients {
            sfn: aws_sdk_sfn::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
        })
    }
}

/// An SDK error with its whole chain of causes (the default Display says
/// only "service error").
pub fn err<E: std::error::Error>(e: E) -> String {
    aws_sdk_sfn::error::DisplayErrorContext(e).to_string()
}

/// The names `deploy` gives a pipeline's resources, derived from the state
/// machine's name so that every command can find them again.
pub fn activity_name(state_machine: &str) -> String {
    resource_name(&format!("topsail-{state_machine}"))
}

pub fn queue_name(state_machine: &str) -> String {
    resource_name(&format!("topsail-{state_machine}-approvals"))
}

/// Letters, digits, `-` and `_` only, at most 80 characters (the tighter of
/// the Step Functions and SQS name rules).
pub fn resource_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect()
}

/// A multi-thread runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

/// Find a state machine by name (None: there is none).
pub async fn find_state_machine(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
) -> Result<Option<String>, String> {
    let mut pages = sfn.list_state_machines().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(err)?;
        if let Some(sm) = page.state_machines().iter().find(|s| s.name() == name) {
            return Ok(Some(sm.state_machine_arn().to_string()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names_are_safe() {
        assert_eq!(activity_name("hello"), "topsail-hello");
        assert_eq!(queue_name("my app.v2"), "topsail-my-app-v2-approvals");
        assert_eq!(resource_name(&"x".repeat(100)).len(), 80);
    }
}
