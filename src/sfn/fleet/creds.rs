//! What a worker's operator allows of AWS credentials for steps: its own
//! only with `--allow-aws`, a role only when it matches `--allow-role`. The
//! credentials themselves are resolved as for `topsail run`
//! ([`crate::run::aws`]).

use std::time::Duration;

pub use crate::run::aws::{AWS_CREDENTIALS, Source, StepAws};

/// The credentials a task asks for (`aws` in its input), if the worker's
/// operator allows them: its own with `--allow-aws`, a role's when the role
/// matches an `--allow-role` glob. `Err` says why not (no value in it).
pub async fn task_aws(
    opts: &super::FleetOptions,
    worker: &str,
    ti: &crate::asl::task::TaskInput,
) -> Result<StepAws, String> {
    let Some(aws) = &ti.aws else {
        return Ok(StepAws::default());
    };
    match &aws.role {
        None if !opts.allow_own_aws => {
            return Err(format!(
                "the step asks for AWS credentials (`aws`) and worker {worker} hands out its own only with --allow-aws; \
                 prefer `aws role \"ARN\"` with --allow-role"
            ));
        }
        Some(role) if !role_allowed(&opts.allow_roles, role) => {
            return Err(format!(
                "the step asks for role {role}, which worker {worker} does not assume ({}); \
                 its operator allows it with --allow-role '{role}' (globs allowed)",
                if opts.allow_roles.is_empty() {
                    "it assumes none".to_string()
                } else {
                    format!("it assumes: {}", opts.allow_roles.join(" "))
                }
            ));
        }
        _ => {}
    }
    let Some(source) = &opts.creds else {
        return Err(format!("worker {worker} has no AWS configuration"));
    };
    source
        .for_step(
            aws,
            &ti.pipeline,
            &ti.step,
            &ti.run_id,
            ti.timeout_seconds.map(Duration::from_secs),
        )
        .await
}

/// Whether `role` matches one of the `--allow-role` globs (`*` within a
/// segment and across; a malformed glob matches nothing).
pub fn role_allowed(globs: &[String], role: &str) -> bool {
    globs.iter().any(|g| {
        globset::GlobBuilder::new(g)
            .literal_separator(false)
            .build()
            .is_ok_and(|g| g.compile_matcher().is_match(role))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_assumed_only_when_allowed() {
        let allow = vec!["arn:aws:iam::123456789012:role/ci-*".to_string()];
        assert!(role_allowed(
            &allow,
            "arn:aws:iam::123456789012:role/ci-publish"
        ));
        assert!(!role_allowed(
            &allow,
            "arn:aws:iam::123456789012:role/admin"
        ));
        assert!(!role_allowed(
            &[],
            "arn:aws:iam::123456789012:role/ci-publish"
        ));
        assert!(role_allowed(&["*".to_string()], "arn:aws:iam::1:role/x"));
    }
}
