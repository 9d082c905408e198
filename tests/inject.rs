//! Values are data (issue 11, "Values run as commands"): every idiom the
//! security review broke, with every hostile value, through the real binary:
//! host steps, a busybox container, and (tests/sfn.rs) the worker. Each value
//! must arrive byte for byte, and the marker file its `touch` names must
//! never appear.

use std::fmt::Write as _;

use crate::common::{Test, run_json, unit};
use crate::run::run_test;

/// Hostile values; `X` stands for the marker file's path.
pub const VALUES: &[&str] = &[
    "a;touch X",
    "$(touch X)",
    "`touch X`",
    "; touch X",
    "\\' ; touch X ; #",
    "'; touch X; '",
    "\"; touch X; \"",
    "x\ntouch X",
    "EOF\ntouch X\nEOF",
    "}; touch X; {",
    "$(touch X)'\"`*#\\ ${IFS}",
    "  two  spaces  ",
];

/// The idioms: the script (`{{V}}` the hole, `>OUT` where it writes), what it
/// writes (`{}` the value) and whether it needs bash. The review's
/// reproducers come first.
pub const IDIOMS: &[(&str, &str, bool)] = &[
    ("echo \"$(echo {{V}})\" >OUT", "{}", false),
    ("echo \"`echo {{V}}`\" >OUT", "{}", false),
    ("echo \"$(echo \"{{V}}\")\" >OUT", "{}", false),
    ("echo \"${UNSET:-\"{{V}}\"}\" >OUT", "{}", false),
    ("cat <<EOF >OUT\n{{V}}\nEOF", "{}", false),
    ("echo $(echo hi)#{{V}} >OUT", "hi#{}", false),
    ("echo $'{{V}}' >OUT", "{}", true),
    ("echo {{V}} >OUT", "{}", false),
    ("echo \"v={{V}}\" >OUT", "v={}", false),
    ("echo 'v={{V}}' >OUT", "v={}", false),
    ("echo \"${UNSET:-{{V}}}\" >OUT", "{}", false),
    ("echo ${UNSET:-{{V}}} >OUT", "{}", false),
    ("echo \"a'{{V}}'b\" >OUT", "a'{}'b", false),
    (
        "cat <<-EOF >OUT\n{{V}} and $(echo \"{{V}}\")\nEOF",
        "{} and {}",
        false,
    ),
    ("# a comment {{V}} ' \" $(\necho {{V}} >OUT", "{}", false),
    (
        "x=$(cat <<'EOF'\n$(quoted)\nEOF\n)\necho \"$x\" {{V}} >OUT",
        "$(quoted) {}",
        false,
    ),
];

/// A pipeline running every idiom with every value: step `sN` (sh) and `bN`
/// (bash) for value N, param `vN`, output `R<idiom>` holding what the idiom
/// wrote. The params to pass (`vN=...`, with `marker` for `X`) and, per
/// step, the outputs it must have.
pub struct Table {
    pub pipeline: String,
    pub params: Vec<String>,
    pub expect: Vec<(String, String, String)>,
}

pub fn table(marker: &str, image: Option<&str>, bash: bool) -> Table {
    let mut p = String::from("pipeline inject\n");
    if let Some(i) = image {
        let _ = writeln!(p, "image \"{i}\"");
    }
    for n in 0..VALUES.len() {
        let _ = writeln!(p, "param v{n}");
    }
    let mut params = Vec::new();
    let mut expect = Vec::new();
    for (n, value) in VALUES.iter().enumerate() {
        let value = value.replace('X', marker);
        params.push(format!("v{n}={value}"));
        for (step, with_bash) in [(format!("s{n}"), false), (format!("b{n}"), true)] {
            if with_bash && !bash {
                continue;
            }
            let _ = writeln!(p, "\n{step}:");
            if with_bash {
                p.push_str("    shell \"bash -e\"\n");
            }
            let mine: Vec<(usize, &(&str, &str, bool))> = IDIOMS
                .iter()
                .enumerate()
                .filter(|(_, (_, _, b))| *b == with_bash)
                .collect();
            for (k, _) in &mine {
                let _ = writeln!(p, "    output R{k}");
            }
            p.push_str("    run:\n");
            // `echo` as printf: sh's own echo reads backslashes in its argument.
            p.push_str("        echo() { printf '%s\\n' \"$*\"; }\n");
            for (k, (idiom, wrote, _)) in mine {
                let script = idiom
                    .replace("{{V}}", &format!("{{{{ v{n} }}}}"))
                    .replace(">OUT", "> \"$TMPDIR/got\"");
                for line in script.lines() {
                    let _ = writeln!(p, "        {line}");
                }
                let _ = writeln!(
                    p,
                    "        {{ echo 'R{k}<<__END__'; cat \"$TMPDIR/got\"; echo '__END__'; }} >> \"$TOPSAIL_OUTPUT\""
                );
                expect.push((step.clone(), format!("R{k}"), wrote.replace("{}", &value)));
            }
        }
    }
    Table {
        pipeline: p,
        params,
        expect,
    }
}

/// The values every idiom wrote, against what it should have.
pub fn check_outputs(t: &Table, outputs: impl Fn(&str, &str) -> Option<String>) {
    let mut wrong = Vec::new();
    for (step, output, want) in &t.expect {
        let got = outputs(step, output);
        if got.as_deref() != Some(want.as_str()) {
            wrong.push(format!("{step}.{output}: want {want:?}, got {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn run_table(image: Option<&str>, marker: &str, bash: bool) {
    let t0 = Test::new();
    let abs = if marker.is_empty() {
        t0.path("X").display().to_string()
    } else {
        marker.to_string()
    };
    let table = table(&abs, image, bash);
    let mut args = vec!["run".to_string(), "--jobs".into(), "2".into()];
    for p in &table.params {
        args.extend(["--param".to_string(), p.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = run_test(&table.pipeline).args(&args);
    let r = t.run();
    let json = run_json(&t);
    assert!(
        !t0.path("X").exists() && !t.path("X").exists(),
        "a value ran"
    );
    assert_eq!(r.status, 0, "{}{}", r.stdout, r.stderr);
    check_outputs(&table, |step, output| {
        unit(&json, step)["outputs"][output]
            .as_str()
            .map(str::to_string)
    });
}

#[test]
fn values_arrive_as_data_in_every_idiom_on_the_host() {
    run_table(None, "", true);
}

#[test]
fn values_arrive_as_data_in_every_idiom_in_a_busybox_container() {
    crate::common::require_docker();
    // In the container `X` is in /workspace, the pipeline's directory.
    run_table(Some(crate::common::IMAGE), "X", false);
}

#[test]
fn a_value_in_shell_arithmetic_must_be_an_integer() {
    let t = run_test(
        "param n\nsum:\n    run echo $(( {{ n }} + 1 ))\nbash:\n    shell \"bash\"\n    run [[ {{ n }} -eq 1 ]] && echo one\n",
    );
    let marker = t.path("X").display().to_string();
    let t = t.args(&["run", "--param", &format!("n=a[$(touch {marker})]")]);
    let r = t.run();
    assert_eq!(r.status, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("must be an integer"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(!t.path("X").exists());
}

#[test]
fn a_value_too_big_or_with_nul_fails_the_step_clearly() {
    // An argument list cannot carry such a value: an output does.
    let t = run_test(
        "make:\n    output BIG\n    output NUL\n    run:\n        printf 'BIG=%0204800d\\n' 0 >> \"$TOPSAIL_OUTPUT\"\n        printf 'NUL=a\\000b\\n' >> \"$TOPSAIL_OUTPUT\"\n\nbig: make\n    run echo {{ make.BIG }} | wc -c\n\nnul: make\n    run echo {{ make.NUL }}\n",
    )
    .args(&["run", "--keep-going"])
    .status(1);
    let r = t.run();
    assert!(
        r.stdout
            .contains("is 204800 bytes, over the 128 KiB an environment variable"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout
            .contains("has a NUL byte, which an environment variable"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let json = run_json(&t);
    assert_eq!(unit(&json, "make")["status"], "succeeded");
    assert_eq!(unit(&json, "big")["status"], "failed");
    assert_eq!(unit(&json, "nul")["status"], "failed");
}

/// The same limits for a step's `env` values: a clear step failure, not
/// `Argument list too long` from exec.
#[test]
fn an_env_value_too_big_or_with_nul_fails_the_step_clearly() {
    let t = run_test(
        "make:\n    output BIG\n    output NUL\n    run:\n        printf 'BIG=%0204800d\\n' 0 >> \"$TOPSAIL_OUTPUT\"\n        printf 'NUL=a\\000b\\n' >> \"$TOPSAIL_OUTPUT\"\n\nbig: make\n    env HUGE = \"{{ make.BIG }}\"\n    run echo \"$HUGE\" | wc -c\n\nnul: make\n    env WITH_NUL = \"{{ make.NUL }}\"\n    run echo \"$WITH_NUL\"\n",
    )
    .args(&["run", "--keep-going"])
    .status(1);
    let r = t.run();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("env HUGE: the value is 204800 bytes, over the 128 KiB"),
        "{all}"
    );
    assert!(
        all.contains("env WITH_NUL: the value has a NUL byte"),
        "{all}"
    );
    assert!(!all.contains("Argument list too long"), "{all}");
    let json = run_json(&t);
    assert_eq!(unit(&json, "big")["status"], "failed");
    assert_eq!(unit(&json, "nul")["status"], "failed");
}

#[test]
fn template_arguments_are_values_not_code() {
    let t = run_test(
        "import \"std/notify\"\n\nparam v = \"1.2\"\n\nbuild:\n    output VERSION\n    run echo 'VERSION=v$(touch X)' >> \"$TOPSAIL_OUTPUT\"\n\ndone: build\n    use log(message = \"done; echo INJECTED; touch X {{ build.VERSION }}\")\n",
    );
    let t = t.args(&["run"]).status(0);
    let r = t.run();
    assert!(
        r.stdout
            .contains("done; echo INJECTED; touch X v$(touch X)"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout
            .lines()
            .any(|l| l.trim_end().ends_with("| INJECTED") || l.trim() == "INJECTED"),
        "{}",
        r.stdout
    );
    assert!(!t.path("X").exists());
}

#[test]
fn the_notify_webhook_sends_a_message_with_spaces_and_quotes() {
    let t = run_test(
        "import \"std/notify\"\n\nannounce:\n    use webhook(message = \"Deployed \\\"v1.2\\\" to prod; it's done & \\\\ ok $(touch X)\")\n",
    );
    let bin = t.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let curl = bin.join("curl");
    std::fs::write(&curl, "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$CURL_ARGS\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = t.path("curl.args").display().to_string();
    let t = t
        .env("PATH", &path)
        .env("CURL_ARGS", &args)
        .env("NOTIFY_WEBHOOK_URL", "http://127.0.0.1:9/hook")
        .args(&["run"])
        .status(0);
    t.run();
    let sent = std::fs::read_to_string(&args).unwrap();
    let body = sent
        .lines()
        .skip_while(|l| *l != "-d")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        body, r#"{"text": "Deployed \"v1.2\" to prod; it's done & \\ ok $(touch X)"}"#,
        "{sent}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        json["text"],
        "Deployed \"v1.2\" to prod; it's done & \\ ok $(touch X)"
    );
    assert!(!t.path("X").exists());
}

#[test]
fn dry_run_shows_references_and_the_values_they_carry() {
    // `--jobs` given, so the plan's header does not depend on the machine.
    Test::new()
        .pipeline(
            r#"
            param v
            say:
                run echo "v={{ v }}"
            "#,
        )
        .args(&["run", "--dry-run", "--jobs", "2", "--param", "v=a b;c"])
        .stdout(
            r#"
            plan for pipeline `pipeline` (dry run: nothing is run; --jobs 2)
            params: v=a b;c

            1. say
               on the host
               run:
                 echo "v=${TOPSAIL_V1_v}"
                 with TOPSAIL_V1_v="a b;c"
            "#,
        )
        .stderr("")
        .status(0)
        .run();
}

#[test]
fn a_value_equal_to_a_secret_is_masked_in_the_log_and_the_plan() {
    let pipeline = r#"
        param v
        secret TOKEN
        say:
            run echo "v={{ v }}"
        use:
            secret TOKEN
            run true
    "#;
    Test::new()
        .pipeline(pipeline)
        .tmpdir()
        .env("TOKEN", "hunter2-secret")
        .args(&["run", "--param", "v=hunter2-secret"])
        .stdout_contains("v=***")
        .stdout_lacks("hunter2")
        .stderr_lacks("hunter2")
        .status(0)
        .run();
    Test::new()
        .pipeline(pipeline)
        .tmpdir()
        .env("TOKEN", "hunter2-secret")
        .args(&["run", "--dry-run", "--param", "v=hunter2-secret"])
        .stdout_contains("with TOPSAIL_V1_v=***")
        .stdout_lacks("hunter2")
        .run();
}
