//! The fleet directives (LANGUAGE.md section 9): `queue "NAME"` and `aws` /
//! `aws role "ARN"`, checked and lowered. Both must be literal: a queue names
//! an activity created at deploy time, and a role is granted in IAM policies
//! printed before any run, so neither can depend on a run's params.

use crate::diagnostics::{Diagnostic, codes};
use crate::model::Aws;
use crate::syntax::ast::Interp;

/// Longest queue name: the activity `topsail-PIPELINE--QUEUE` must stay
/// within the 80 characters Step Functions allows.
pub const MAX_QUEUE_NAME: usize = 32;

/// A queue's name, or `None` (reported) when it is computed or malformed.
pub(super) fn check_queue(q: &Interp, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let Some(name) = q.as_literal() else {
        diags.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                q.span,
                "a queue's name must be written out, not computed",
            )
            .label("uses a `{{ }}` hole")
            .help("queues are created by `topsail deploy`: write the name, e.g. `queue \"gpu\"`"),
        );
        return None;
    };
    if !is_queue_name(&name) {
        diags.push(
            Diagnostic::error(
                codes::BAD_NAME,
                q.span,
                format!("`{name}` is not a valid queue name"),
            )
            .label("not usable as a queue")
            .help(format!(
                "a queue name has 1 to {MAX_QUEUE_NAME} letters, digits, `-` or `_`, like `gpu` or `arm64`"
            )),
        );
        return None;
    }
    Some(name)
}

pub fn is_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_QUEUE_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `aws` / `aws role "ARN"` -> the model's [`Aws`]; `None` (reported) for a
/// role that is computed or not an IAM role ARN.
pub(super) fn lower_aws(role: Option<&Interp>, diags: &mut Vec<Diagnostic>) -> Option<Aws> {
    let Some(role) = role else {
        return Some(Aws { role: None });
    };
    let Some(arn) = role.as_literal() else {
        diags.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                role.span,
                "a role's ARN must be written out, not computed",
            )
            .label("uses a `{{ }}` hole")
            .help("the role is granted in IAM policies before any run: write its ARN"),
        );
        return None;
    };
    if !is_role_arn(&arn) {
        diags.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                role.span,
                format!("`{arn}` is not an IAM role ARN"),
            )
            .label("expected arn:aws:iam::ACCOUNT:role/NAME")
            .help(
                "write the role's ARN, e.g. `aws role \"arn:aws:iam::123456789012:role/deployer\"`",
            ),
        );
        return None;
    }
    Some(Aws { role: Some(arn) })
}

/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME` with a 12-digit account and
/// a name of IAM's characters (what STS AssumeRole accepts).
pub fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_kw, partition, service, region, account, resource] = parts.as_slice() else {
        return false;
    };
    let Some(name) = resource.strip_prefix("role/") else {
        return false;
    };
    *arn_kw == "arn"
        && partition.starts_with("aws")
        && *service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && arn.len() <= 2048
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/publisher"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/team/ci"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:user/alice"));
        assert!(!is_role_arn("arn:aws:iam::12345:role/x"));
        assert!(!is_role_arn("arn:aws:s3:::bucket"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:role/"));
        assert!(!is_role_arn("arn:aws:iam::123456789012:role/a b"));
    }

    #[test]
    fn queue_names() {
        assert!(is_queue_name("gpu"));
        assert!(is_queue_name("arm64_big-1"));
        assert!(!is_queue_name(""));
        assert!(!is_queue_name("a.b"));
        assert!(!is_queue_name(&"q".repeat(MAX_QUEUE_NAME + 1)));
    }
}
