//! `topsail compile --to cloudformation`: one template with what `topsail
//! deploy` makes, for teams that deploy with CloudFormation, SAM or the CDK:
//! the state machine (its definition exactly as `compile --to asl` gives
//! it, the placeholders replaced through `DefinitionSubstitutions`), the
//! pipeline's activity and one per queue, the approval queue (when there
//! are approvals), a log group, the store's bucket, the state machine's
//! role, a role for workers and a managed policy for whoever starts
//! executions ([`crate::iam`] writes the same permissions for `deploy`
//! users).

use serde_json::{Map, Value as Json, json};

use crate::asl::{self, Compiled, Options};
use crate::diagnostics::Diagnostic;
use crate::model::Pipeline;
use crate::sfn::fleet::{queue_activity_name, queues};
use crate::sfn::{activity_name, queue_name, resource_name};

/// The substitution variable of the pipeline's activity, of queue number
/// `i` (in sorted order), and of the approval queue's URL.
pub const ACTIVITY_VAR: &str = "TopsailActivity";
pub const APPROVALS_VAR: &str = "TopsailApprovalQueue";

pub fn queue_var(i: usize) -> String {
    format!("TopsailQueueActivity{i}")
}

/// The template (JSON, which CloudFormation reads as it reads YAML), and
/// the compiler's notes; `Err` with the compiler's errors.
pub fn template(
    p: &Pipeline,
    durations: Vec<Option<f64>>,
) -> Result<(Json, Compiled), Vec<Diagnostic>> {
    let name = resource_name(&p.name);
    let qs: Vec<String> = queues(p).into_iter().collect();
    let approvals = crate::sfn::deploy::has_approvals(p);
    let options = Options {
        activity_arn: format!("${{{ACTIVITY_VAR}}}"),
        queue_arns: qs
            .iter()
            .enumerate()
            .map(|(i, q)| (q.clone(), format!("${{{}}}", queue_var(i))))
            .collect(),
        approval_queue_url: format!("${{{APPROVALS_VAR}}}"),
        durations,
    };
    let compiled = asl::compile(p, &options)?;
    let mut resources = Map::new();
    let mut subs = Map::new();
    let mut activity_arns = vec![json!({"Ref": "Activity"})];
    resources.insert(
        "Activity".into(),
        json!({"Type": "AWS::StepFunctions::Activity", "Properties": {"Name": activity_name(&name)}}),
    );
    subs.insert(ACTIVITY_VAR.into(), json!({"Ref": "Activity"}));
    for (i, q) in qs.iter().enumerate() {
        let id = format!("QueueActivity{i}");
        resources.insert(
            id.clone(),
            json!({
                "Type": "AWS::StepFunctions::Activity",
                "Properties": {"Name": queue_activity_name(&name, q)}
            }),
        );
        subs.insert(queue_var(i), json!({"Ref": id}));
        activity_arns.push(json!({"Ref": id}));
    }
    let mut sm_statements = vec![json!({
        "Effect": "Allow",
        "Action": [
            "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
            "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
            "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"
        ],
        "Resource": "*"
    })];
    if approvals {
        resources.insert(
            "ApprovalQueue".into(),
            json!({
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": queue_name(&name), "MessageRetentionPeriod": 1_209_600}
            }),
        );
        subs.insert(APPROVALS_VAR.into(), json!({"Ref": "ApprovalQueue"}));
        sm_statements.push(json!({
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": {"Fn::GetAtt": ["ApprovalQueue", "Arn"]}
        }));
    }
    resources.insert(
        "LogGroup".into(),
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": format!("/topsail/{name}"), "RetentionInDays": 30}
        }),
    );
    resources.insert(
        "StoreBucket".into(),
        json!({
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": true, "BlockPublicPolicy": true,
                    "IgnorePublicAcls": true, "RestrictPublicBuckets": true
                },
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]}
            }
        }),
    );
    resources.insert(
        "StateMachineRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": trust("states.amazonaws.com"),
                "Policies": [{
                    "PolicyName": "topsail-state-machine",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": sm_statements}
                }]
            }
        }),
    );
    let mut worker_statements = vec![
        json!({"Effect": "Allow", "Action": ["states:GetActivityTask"], "Resource": activity_arns}),
        json!({
            "Effect": "Allow",
            "Action": ["states:SendTaskSuccess", "states:SendTaskFailure",
                       "states:SendTaskHeartbeat", "states:ListActivities"],
            "Resource": "*"
        }),
        json!({
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": {"Fn::Sub": "${StoreBucket.Arn}/*"}
        }),
        json!({
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": ["LogGroup", "Arn"]}
        }),
    ];
    let roles = crate::iam::step_roles(p);
    if !roles.is_empty() {
        worker_statements
            .push(json!({"Effect": "Allow", "Action": ["sts:AssumeRole"], "Resource": roles}));
    }
    resources.insert(
        "WorkerRole".into(),
        json!({
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": {"Service": ["ec2.amazonaws.com", "ecs-tasks.amazonaws.com"]},
                        "Action": "sts:AssumeRole"
                    }]
                },
                "Policies": [{
                    "PolicyName": "topsail-worker",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": worker_statements}
                }]
            }
        }),
    );
    let mut starter_statements = vec![
        json!({
            "Effect": "Allow",
            "Action": ["states:StartExecution", "states:DescribeStateMachine"],
            "Resource": {"Ref": "StateMachine"}
        }),
        json!({
            "Effect": "Allow",
            "Action": ["states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"],
            "Resource": {"Fn::Sub": format!("arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:execution:{name}:*")}
        }),
        json!({"Effect": "Allow", "Action": ["states:ListStateMachines"], "Resource": "*"}),
    ];
    if approvals {
        starter_statements.push(json!({
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ChangeMessageVisibility"],
            "Resource": {"Fn::GetAtt": ["ApprovalQueue", "Arn"]}
        }));
        starter_statements.push(json!({
            "Effect": "Allow",
            "Action": ["states:SendTaskSuccess", "states:SendTaskFailure"],
            "Resource": "*"
        }));
    }
    resources.insert(
        "StarterPolicy".into(),
        json!({
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "Description": format!("start, follow and approve executions of {name}"),
                "PolicyDocument": {"Version": "2012-10-17", "Statement": starter_statements}
            }
        }),
    );
    resources.insert(
        "StateMachine".into(),
        json!({
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": name,
                "RoleArn": {"Fn::GetAtt": ["StateMachineRole", "Arn"]},
                "Definition": compiled.definition.clone(),
                "DefinitionSubstitutions": subs,
                "LoggingConfiguration": {
                    "Level": "ERROR",
                    "IncludeExecutionData": false,
                    "Destinations": [{"CloudWatchLogsLogGroup": {
                        "LogGroupArn": {"Fn::GetAtt": ["LogGroup", "Arn"]}
                    }}]
                }
            }
        }),
    );
    let mut outputs = Map::new();
    outputs.insert(
        "StateMachineArn".into(),
        json!({"Value": {"Ref": "StateMachine"}}),
    );
    outputs.insert("ActivityArn".into(), json!({"Value": {"Ref": "Activity"}}));
    for (i, q) in qs.iter().enumerate() {
        outputs.insert(
            format!("QueueActivity{i}Arn"),
            json!({"Description": format!("queue {q}"), "Value": {"Ref": format!("QueueActivity{i}")}}),
        );
    }
    outputs.insert(
        "StoreBucketName".into(),
        json!({"Value": {"Ref": "StoreBucket"}}),
    );
    outputs.insert(
        "WorkerRoleArn".into(),
        json!({"Value": {"Fn::GetAtt": ["WorkerRole", "Arn"]}}),
    );
    let t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": format!("topsail pipeline {} (topsail compile --to cloudformation)", p.name),
        "Resources": resources,
        "Outputs": outputs,
    });
    Ok((t, compiled))
}

fn trust(service: &str) -> Json {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
}
