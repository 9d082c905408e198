//! `topsail start [FILE | --state-machine-arn ARN] [--param NAME=VALUE]
//! [--name EXEC] [--follow]`: start an execution with typed params; with
//! `--follow`, print each step's progress from the execution history in the
//! look of a local run, write the same run record (`.topsail/runs/<EXEC>/`
//! next to FILE) and exit 0 or 1 by the outcome.

use super::Error;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Value as Json, json};

use crate::model::Value;
use crate::run::report::RunStatus;
use crate::sfn::{AwsArgs, Clients, err, find_state_machine, follow};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pipeline (its params are checked, and the state machine is found by its name)
    #[arg(conflicts_with = "state_machine_arn")]
    pub file: Option<PathBuf>,
    /// Start this state machine instead (params are then checked by the state machine)
    #[arg(long, value_name = "ARN")]
    pub state_machine_arn: Option<String>,
    /// The state machine's name if it was deployed with `deploy --name`
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,
    /// Set a param (type-checked against its declaration)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// The execution's name, also the run id (default: a new run id)
    #[arg(long, value_name = "EXEC")]
    pub name: Option<String>,
    /// Follow the execution until it ends; exit 0 if it succeeded, else 1
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub context: super::ContextArgs,
}

pub fn run(args: Args) -> Result<(), Error> {
    let (sources, pipeline) = if args.state_machine_arn.is_some() {
        (None, None)
    } else {
        let (checked, p) =
            super::load_pipeline_with(args.file.as_deref(), &args.context.load_options())?;
        (Some(checked.sources), Some(p))
    };
    let params = match &pipeline {
        Some(p) => match crate::run::resolve_params(p, &args.params) {
            Ok(v) => v,
            Err(e) => return Err(Error::usage(e)),
        },
        None => match untyped_params(&args.params) {
            Ok(v) => v,
            Err(e) => return Err(Error::usage(e)),
        },
    };
    let input = json!({"params": params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<serde_json::Map<String, Json>>()});
    let exec_name = args.name.clone().unwrap_or_else(crate::run::new_run_id);
    let file = args
        .file
        .clone()
        .or_else(|| super::find_file(None).ok())
        .unwrap_or_default();
    let rt = match crate::sfn::runtime() {
        Ok(rt) => rt,
        Err(e) => return Err(Error::usage(e)),
    };
    let code: Result<u8, String> = rt.block_on(async {
        let c = Clients::new(&args.aws).await?;
        let sm = match (&args.state_machine_arn, &pipeline) {
            (Some(arn), _) => arn.clone(),
            (None, Some(p)) => {
                let name = crate::sfn::resource_name(args.machine.as_deref().unwrap_or(&p.name));
                find_state_machine(&c.sfn, &name).await?.ok_or_else(|| {
                    format!("no state machine `{name}`: deploy it first with `topsail deploy`")
                })?
            }
            (None, None) => return Err("give a pipeline file or --state-machine-arn".into()),
        };
        let out = c
            .sfn
            .start_execution()
            .state_machine_arn(&sm)
            .name(&exec_name)
            .input(input.to_string())
            .send()
            .await
            .map_err(err)?;
        let arn = out.execution_arn().to_string();
        outln!("execution {exec_name} started: {arn}");
        if !args.follow {
            return Ok(0);
        }
        let known = pipeline.as_ref().zip(sources.as_ref());
        let status = follow::follow(&c, &arn, known, &file, &params).await?;
        Ok(u8::from(status != RunStatus::Succeeded))
    });
    code.map_err(Error::Usage).and_then(Error::code)
}

/// Without the pipeline: numbers and booleans as JSON, anything else as text.
fn untyped_params(raw: &[String]) -> Result<IndexMap<String, Value>, String> {
    let mut out = IndexMap::new();
    for item in raw {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("`--param {item}`: expected NAME=VALUE"))?;
        let value = serde_json::from_str::<Json>(v)
            .ok()
            .and_then(|j| Value::from_json(&j))
            .unwrap_or_else(|| Value::Str(v.to_string()));
        out.insert(k.to_string(), value);
    }
    Ok(out)
}
