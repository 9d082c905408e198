//! AWS credentials for `aws` / `aws role "ARN"` steps (LANGUAGE.md section
//! 9), resolved by whoever runs the step (`topsail run`, or a worker:
//! [`crate::sfn::fleet::creds`] says what its operator allows): the
//! standard aws-config chain (env, profile, SSO, instance or task role) of
//! the runner itself, or, with
//! a role, short-lived credentials from STS AssumeRole with a session name
//! from pipeline, step and run and a duration bounded by the step's
//! timeout. The keys go to the step as secrets (masked in every line, never
//! in a record or a log); `AWS_REGION` as a plain variable.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_sts::config::ProvideCredentials;

use crate::model::Aws;

/// The error name of a step whose credentials could not be had.
pub const AWS_CREDENTIALS: &str = "topsail.AwsCredentials";

/// STS limits on a role session: 15 minutes to 12 hours.
pub const MIN_SESSION: Duration = Duration::from_mins(15);
pub const MAX_SESSION: Duration = Duration::from_hours(12);
/// A session for a step without a timeout: STS's own default.
pub const DEFAULT_SESSION: Duration = Duration::from_hours(1);

/// Where credentials come from: the runner's own configuration.
#[derive(Clone, Debug)]
pub struct Source {
    config: aws_config::SdkConfig,
    sts: aws_sdk_sts::Client,
}

/// What a step is given: secrets (the keys) and plain variables (the region).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepAws {
    pub secrets: Vec<(String, String)>,
    pub plain: Vec<(String, String)>,
}

impl Source {
    /// The standard chain, with `--endpoint-url` / `--region` as for the
    /// other AWS clients (so STS is the emulator's in the tests).
    pub async fn new(endpoint_url: Option<&str>, region: Option<&str>) -> Source {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        let config = loader.load().await;
        let sts = aws_sdk_sts::Client::new(&config);
        Source { config, sts }
    }

    /// The credentials a step asked for. `Err` says why none could be had
    /// (without any value).
    pub async fn for_step(
        &self,
        aws: &Aws,
        pipeline: &str,
        step: &str,
        run_id: &str,
        timeout: Option<Duration>,
    ) -> Result<StepAws, String> {
        let (key, secret, token) = match &aws.role {
            None => {
                let provider = self.config.credentials_provider().ok_or_else(|| {
                    "no AWS credentials are configured for this runner (env, profile, SSO, instance or task role)".to_string()
                })?;
                let c = provider
                    .provide_credentials()
                    .await
                    .map_err(|e| format!("cannot load AWS credentials: {}", err(e)))?;
                (
                    c.access_key_id().to_string(),
                    c.secret_access_key().to_string(),
                    c.session_token().map(str::to_string),
                )
            }
            Some(role) => {
                let out = self
                    .sts
                    .assume_role()
                    .role_arn(role)
                    .role_session_name(session_name(pipeline, step, run_id))
                    .duration_seconds(session_seconds(timeout))
                    .send()
                    .await
                    .map_err(|e| format!("cannot assume role {role}: {}", err(e)))?;
                let c = out
                    .credentials()
                    .ok_or_else(|| format!("STS answered no credentials for role {role}"))?;
                (
                    c.access_key_id().to_string(),
                    c.secret_access_key().to_string(),
                    Some(c.session_token().to_string()),
                )
            }
        };
        let mut secrets = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), key),
            ("AWS_SECRET_ACCESS_KEY".to_string(), secret),
        ];
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            secrets.push(("AWS_SESSION_TOKEN".to_string(), t));
        }
        let mut plain = Vec::new();
        if let Some(r) = self.config.region() {
            plain.push(("AWS_REGION".to_string(), r.to_string()));
            plain.push(("AWS_DEFAULT_REGION".to_string(), r.to_string()));
        }
        Ok(StepAws { secrets, plain })
    }
}

/// `topsail.PIPELINE.STEP.RUN` in STS's alphabet (`[\w+=,.@-]`), 2 to 64
/// characters: CloudTrail then shows which step of which run used the role.
pub fn session_name(pipeline: &str, step: &str, run_id: &str) -> String {
    let clean = |s: &str, n: usize| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(n)
            .collect()
    };
    let name = format!(
        "topsail.{}.{}.{}",
        clean(pipeline, 16),
        clean(step, 16),
        clean(run_id, 64)
    );
    name.chars().take(64).collect()
}

/// The session's length: the step's timeout (it cannot outlive it by
/// design), within STS's 15 minutes to 12 hours; 1 hour without a timeout.
pub fn session_seconds(timeout: Option<Duration>) -> i32 {
    let d = timeout.map_or(DEFAULT_SESSION, |t| t.clamp(MIN_SESSION, MAX_SESSION));
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

/// Add `extra` to a step's environment where the step does not set the
/// name itself (its own `env` wins over what the runner adds).
pub fn add_env(env: &mut Vec<(String, String)>, extra: Vec<(String, String)>) {
    for (k, v) in extra {
        if !env.iter().any(|(n, _)| *n == k) {
            env.push((k, v));
        }
    }
}

fn err<E: std::error::Error>(e: E) -> String {
    aws_sdk_sts::error::DisplayErrorContext(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        let n = session_name("release", "publish", "r-20261202-1");
        assert_eq!(n, "topsail.release.publish.r-20261202-1");
        let n = session_name("p q", "s/t", &"x".repeat(100));
        assert!(n.len() <= 64 && n.len() >= 2, "{n}");
        assert!(n.starts_with("topsail.p-q.s-t."), "{n}");
    }

    #[test]
    fn sessions_are_bounded_by_the_timeout_and_sts() {
        assert_eq!(session_seconds(None), 3600);
        assert_eq!(session_seconds(Some(Duration::from_mins(1))), 900);
        assert_eq!(session_seconds(Some(Duration::from_mins(30))), 1800);
        assert_eq!(session_seconds(Some(Duration::from_secs(100_000))), 43_200);
    }
}
