//! Red-team review of issues 11 and 12 as merged: each finding's reproducer
//! through the real binary (and the worker, fed crafted task inputs by the
//! fake Step Functions endpoint of tests/worker.rs).

use std::time::Duration;

use serde_json::json;

use crate::common::Test;
use crate::worker::{Answer, FakeSfn, FakeWorker, task};

/// Bash (and ksh, zsh) evaluate more than `$(( ))` as arithmetic, and an
/// array subscript there runs command substitutions in what a variable
/// expands to: `x='a[$(cmd)]'; let y=$x` runs `cmd`. Each of these ran
/// `touch` from a `--param` on main; the value must be refused (it is not an
/// integer) and nothing may run.
const BASH_ARITH_IDIOMS: &[&str] = &[
    "arr[{{ v }}]=1",
    "arr[\"{{ v }}\"]=1",
    "a=([{{ v }}]=1)",
    "declare -i n={{ v }}",
    "typeset -i n={{ v }}",
    "f() { local -i n={{ v }}; }; f",
    "declare -ia a=({{ v }} 2)",
    "declare -n r={{ v }}; echo \"$r\"",
    "let m={{ v }}",
    "let \"m={{ v }}\"",
    "let 'm={{ v }}'",
    "echo \"$(let m={{ v }})\"",
    "if let m={{ v }}; then :; fi",
    "[[ -v {{ v }} ]]",
    "[ -v {{ v }} ]",
    "test -v {{ v }}",
    "printf -v {{ v }} %s 1",
];

fn arith_pipeline(idiom: &str) -> String {
    format!("pipeline p\n\nparam v\n\ns:\n    shell \"bash\"\n    run:\n        {idiom}\n")
}

#[test]
fn values_bash_evaluates_as_arithmetic_or_names_must_be_integers() {
    for idiom in BASH_ARITH_IDIOMS {
        let t = Test::new().file("pipeline.topsail", &arith_pipeline(idiom));
        let marker = t.path("PWNED");
        let value = format!("x[$(touch {})]", marker.display());
        let t = t.args(&["run", "--param", &format!("v={value}")]);
        let r = t.run();
        assert!(!marker.exists(), "`{idiom}` ran the value as a command");
        assert_eq!(r.status, 1, "`{idiom}`: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("must be an integer") || r.stderr.contains("must be an integer"),
            "`{idiom}`: {}{}",
            r.stdout,
            r.stderr
        );
    }
}

#[test]
fn integers_still_reach_bash_arithmetic_and_other_words_stay_data() {
    let t = Test::new().file(
        "pipeline.topsail",
        "pipeline p\n\nparam n\nparam s\n\ns:\n    shell \"bash\"\n    run:\n        \
         arr[{{ n }}]=1; let m={{ n }}+1; declare -i k={{ n }}\n        \
         [[ -v arr[{{ n }}] ]] && echo \"m=$m k=$k ${!arr[@]}\"\n        \
         x={{ s }}; declare y={{ s }}; printf '%s|%s|%s\\n' \"$x\" \"$y\" {{ s }}\n",
    );
    let marker = t.path("PWNED");
    let s = format!("x[$(touch {})]", marker.display());
    let r = t
        .args(&["run", "--param", "n=3", "--param", &format!("s={s}")])
        .run();
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("m=4 k=3 3"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("{s}|{s}|{s}")), "{}", r.stdout);
    assert!(!marker.exists());
}

/// The same idioms as a crafted task input: the worker refuses the value
/// and runs nothing.
#[test]
fn the_worker_refuses_a_non_integer_where_bash_evaluates_arithmetic() {
    let t = Test::new();
    let mut sfn = FakeSfn::start();
    let mut w = FakeWorker::start(t.dir.path(), &sfn, &[], &["--allow-host"]);
    let marker = t.path("PWNED");
    let value = format!("x[$(touch {})]", marker.display());
    for idiom in [
        "let m={{ v }}",
        "arr[{{ v }}]=1",
        "declare -i n={{ v }}",
        "[[ -v {{ v }} ]]",
    ] {
        let token = sfn.push(&task(
            idiom,
            &json!({"shell": "bash", "values": {"params": {"v": value}}}),
        ));
        match sfn.answer(&token, Duration::from_secs(30)) {
            Answer::Failure { cause, .. } => {
                assert!(cause.contains("must be an integer"), "`{idiom}`: {cause}");
            }
            Answer::Success(out) => panic!("`{idiom}` succeeded: {out}"),
        }
        assert!(!marker.exists(), "`{idiom}` ran the value on the worker");
    }
    w.stop();
}
