//! The CLI's edges: one error type prints and maps every subcommand's
//! failure (src/cli/error.rs); what a user sees around it.

use crate::common::{Test, repo, unique};
use crate::support::{ROLE, run};

/// `start --state-machine-arn` needs no pipeline file; in a directory with
/// none it used to print "error: no pipeline file given" while it went on
/// and started the execution (exit 0).
#[test]
fn start_by_arn_without_a_pipeline_file_says_no_error() {
    let hello = repo().join("examples/hello.topsail");
    let name = unique("edges");
    let here = Test::new();
    let (code, out, err) = run(
        here.dir.path(),
        &[
            "deploy",
            hello.to_str().expect("a UTF-8 path"),
            "--name",
            &name,
            "--role-arn",
            ROLE,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let arn = out
        .lines()
        .find_map(|l| l.strip_prefix("state machine ")?.split(": ").nth(1))
        .expect("deploy prints the state machine's ARN")
        .to_string();
    let empty = Test::new();
    let (code, out, err) = run(empty.dir.path(), &["start", "--state-machine-arn", &arn]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("started"), "{out}");
    assert_eq!(err, "", "nothing went wrong, so nothing is said on stderr");
    // Errors still reach the user, once, with their exit code.
    let (code, _, err) = run(empty.dir.path(), &["start"]);
    assert_eq!(code, 2);
    assert_eq!(
        err.matches("error: no pipeline file given").count(),
        1,
        "{err}"
    );
}
