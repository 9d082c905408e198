//! Least-privilege IAM policies for a deployed pipeline (issue 16), printed
//! by `topsail compile --to iam`: one policy document each for the state
//! machine's role, for the workers that serve its activities, and for
//! whoever starts and follows executions (and answers approvals). Each
//! names only the resources `topsail deploy` makes for this pipeline, by the
//! names it gives them, in `REGION` and `ACCOUNT` unless those are given.

use serde_json::{Value as Json, json};

use crate::model::Pipeline;
use crate::sfn::deploy::has_approvals;
use crate::sfn::fleet::{queue_activity_name, queues};
use crate::sfn::{activity_name, queue_name};

/// Where the resources live: `REGION` / `ACCOUNT` placeholders by default.
#[derive(Clone, Debug)]
pub struct Scope {
    pub state_machine: String,
    pub region: String,
    pub account: String,
    pub partition: String,
}

impl Scope {
    pub fn new(state_machine: &str) -> Scope {
        Scope {
            state_machine: state_machine.to_string(),
            region: "REGION".into(),
            account: "ACCOUNT".into(),
            partition: "aws".into(),
        }
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// Every activity of the pipeline: its own, then one per queue.
    pub fn activity_arns(&self, p: &Pipeline) -> Vec<String> {
        std::iter::once(activity_name(&self.state_machine))
            .chain(
                queues(p)
                    .iter()
                    .map(|q| queue_activity_name(&self.state_machine, q)),
            )
            .map(|name| self.arn("states", &format!("activity:{name}")))
            .collect()
    }

    fn state_machine_arn(&self) -> String {
        self.arn("states", &format!("stateMachine:{}", self.state_machine))
    }

    fn executions_arn(&self) -> String {
        self.arn("states", &format!("execution:{}:*", self.state_machine))
    }

    fn approval_queue_arn(&self) -> String {
        self.arn("sqs", &queue_name(&self.state_machine))
    }
}

/// The roles `aws role` steps name, sorted, each once.
pub fn step_roles(p: &Pipeline) -> Vec<String> {
    let mut roles: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| s.aws.as_ref()?.role.clone())
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Json {
    json!({"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources})
}

fn document(statements: Vec<Json>) -> Json {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The state machine's role: post approvals to its queue (activity tasks
/// need no permission of the state machine's own).
pub fn state_machine_policy(p: &Pipeline, s: &Scope) -> Json {
    let mut st = Vec::new();
    if has_approvals(p) {
        st.push(statement(
            "PostApprovals",
            &["sqs:SendMessage"],
            vec![s.approval_queue_arn()],
        ));
    }
    // Step Functions' logging to CloudWatch Logs needs these on "*" (they
    // have no resource-level permissions).
    st.push(statement(
        "DeliverLogs",
        &[
            "logs:CreateLogDelivery",
            "logs:GetLogDelivery",
            "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery",
            "logs:ListLogDeliveries",
            "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies",
            "logs:DescribeLogGroups",
        ],
        vec!["*".into()],
    ));
    document(st)
}

/// A worker: poll the pipeline's activities, answer and heartbeat its tasks
/// (task-token calls have no resource-level permissions), and assume the
/// roles its `aws role` steps name (each role's trust policy must also
/// trust the worker's role).
pub fn worker_policy(p: &Pipeline, s: &Scope) -> Json {
    let mut st = vec![
        statement(
            "PollActivities",
            &["states:GetActivityTask"],
            s.activity_arns(p),
        ),
        statement(
            "AnswerTasks",
            &[
                "states:SendTaskSuccess",
                "states:SendTaskFailure",
                "states:SendTaskHeartbeat",
            ],
            vec!["*".into()],
        ),
        statement(
            "FindActivities",
            &["states:ListActivities"],
            vec!["*".into()],
        ),
    ];
    let roles = step_roles(p);
    if !roles.is_empty() {
        st.push(statement("AssumeStepRoles", &["sts:AssumeRole"], roles));
    }
    document(st)
}

/// Whoever starts executions: start, follow and stop them, and answer the
/// approval queue.
pub fn starter_policy(p: &Pipeline, s: &Scope) -> Json {
    let mut st = vec![
        statement(
            "StartExecutions",
            &["states:StartExecution", "states:DescribeStateMachine"],
            vec![s.state_machine_arn()],
        ),
        statement(
            "FollowExecutions",
            &[
                "states:DescribeExecution",
                "states:GetExecutionHistory",
                "states:StopExecution",
            ],
            vec![s.executions_arn()],
        ),
        statement(
            "FindStateMachine",
            &["states:ListStateMachines"],
            vec!["*".into()],
        ),
    ];
    if has_approvals(p) {
        st.push(statement(
            "AnswerApprovals",
            &[
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueUrl",
                "sqs:ChangeMessageVisibility",
            ],
            vec![s.approval_queue_arn()],
        ));
        st.push(statement(
            "AnswerApprovalTokens",
            &["states:SendTaskSuccess", "states:SendTaskFailure"],
            vec!["*".into()],
        ));
    }
    document(st)
}

/// The three policies, keyed by who holds them.
pub fn policies(p: &Pipeline, s: &Scope) -> Json {
    json!({
        "state_machine_role": state_machine_policy(p, s),
        "worker": worker_policy(p, s),
        "starter": starter_policy(p, s),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(text: &str) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.topsail");
        std::fs::write(&path, text).unwrap();
        let checked =
            crate::check::load_with(&path, &crate::check::LoadOptions::default()).unwrap();
        checked.pipeline.clone().unwrap()
    }

    #[test]
    fn policies_name_only_this_pipelines_resources() {
        let p = pipeline(
            "pipeline rel\n\nb:\n    run true\n\nt: b\n    queue \"gpu\"\n    aws role \"arn:aws:iam::123456789012:role/pub\"\n    run true\n\nok: t\n    approval \"ship?\"\n",
        );
        let s = Scope::new("rel");
        let all = policies(&p, &s);
        let w = &all["worker"]["Statement"];
        assert_eq!(
            w[0]["Resource"],
            json!([
                "arn:aws:states:REGION:ACCOUNT:activity:topsail-rel",
                "arn:aws:states:REGION:ACCOUNT:activity:topsail-rel--gpu"
            ])
        );
        assert_eq!(
            w[3]["Resource"],
            json!(["arn:aws:iam::123456789012:role/pub"])
        );
        let sm = &all["state_machine_role"]["Statement"][0];
        assert_eq!(
            sm["Resource"],
            json!(["arn:aws:sqs:REGION:ACCOUNT:topsail-rel-approvals"])
        );
        let st = &all["starter"]["Statement"];
        assert_eq!(
            st[1]["Resource"],
            json!(["arn:aws:states:REGION:ACCOUNT:execution:rel:*"])
        );
        assert_eq!(st.as_array().unwrap().len(), 5);
    }
}
