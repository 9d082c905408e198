//! Issue 17, through the real binary: a host step whose script is one plain
//! command starts without a shell, and means exactly what `sh -e` would.

use std::os::unix::fs::PermissionsExt;

use crate::common::Test;

fn executable(t: Test, name: &str, text: &str) -> Test {
    let t = t.file(name, text);
    let path = t.path(name);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("make the fixture executable");
    t
}

fn read(t: &Test, name: &str) -> String {
    std::fs::read_to_string(t.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The program's parent is topsail itself for a plain command, and `sh`
/// (dash does not `exec` a `-c` command) as soon as there is shell syntax.
#[test]
fn a_plain_command_starts_without_a_shell_and_shell_syntax_keeps_it() {
    let parent = "#!/bin/sh\ncat /proc/$PPID/comm > \"$1\"\n";
    let t = executable(Test::new(), "parent.sh", parent)
        .pipeline(
            r#"
            plain:
                run ./parent.sh plain.txt
            quoted:
                run ./parent.sh "quoted.txt"
            two:
                run:
                    ./parent.sh two.txt
                    true
            "#,
        )
        .args(&["run", "--jobs", "1"])
        .status(0);
    t.run();
    assert_eq!(read(&t, "plain.txt").trim(), "topsail");
    assert_eq!(read(&t, "quoted.txt").trim(), "sh");
    assert_eq!(read(&t, "two.txt").trim(), "sh");
}

/// Words are passed as they are; a hole's value stays one word whatever it
/// holds (spaces, a glob), as `"${V}"` does in the shell.
#[test]
fn arguments_and_holes_reach_the_program_as_the_shell_gives_them() {
    let args = "#!/bin/sh\nprintf '%s|' \"$#\" \"$@\" > \"$1.txt\"\n";
    let t = executable(Test::new(), "args.sh", args)
        .file("a.c", "")
        .pipeline(
            r#"
            param name = "a b *.c"
            direct:
                run ./args.sh direct -x=1 "{{ name }}" --n={{ name }}
            shell:
                run ./args.sh shell -x=1 "{{ name }}" --n={{ name }} ; true
            "#,
        )
        .args(&["run", "--jobs", "1"])
        .status(0);
    t.run();
    assert_eq!(read(&t, "direct.txt"), "4|direct|-x=1|a b *.c|--n=a b *.c|");
    assert_eq!(read(&t, "shell.txt"), "4|shell|-x=1|a b *.c|--n=a b *.c|");
}

/// What cannot be started is run by the shell, which decides: a script
/// without `#!` runs as a shell script, a missing program fails with the
/// shell's message and 127, a program that is not executable with 126.
#[test]
fn what_cannot_be_started_directly_gets_the_shells_meaning() {
    let t = executable(Test::new(), "noshebang", "echo ran > ran.txt\n")
        .file("notexec", "#!/bin/sh\ntrue\n")
        .pipeline(
            r"
            script:
                run ./noshebang
            missing:
                run no-such-program-topsail arg
            notexec:
                run ./notexec
            ",
        )
        .args(&["run", "--jobs", "1", "--keep-going"])
        .status(1)
        .stdout_contains("not found")
        .stdout_contains("Permission denied");
    let r = t.run();
    assert_eq!(read(&t, "ran.txt").trim(), "ran", "{}", r.show());
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("127"), "{}", r.show());
    assert!(all.contains("126"), "{}", r.show());
}

/// `true` and `false` are builtins; alone they run as the system's
/// programs, with the same result; `exit` and `cd` stay builtins.
#[test]
fn builtins_keep_their_meaning() {
    let t = Test::new()
        .pipeline(
            r"
            yes:
                run true
            no:
                run false
            leave:
                run exit 3
            ",
        )
        .args(&["run", "--jobs", "1", "--keep-going"])
        .status(1);
    let r = t.run();
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("yes   | > succeeded"), "{}", r.show());
    assert!(
        all.contains("no    | ! failed: exit code 1 "),
        "{}",
        r.show()
    );
    assert!(
        all.contains("leave | ! failed: exit code 3 "),
        "{}",
        r.show()
    );
}

/// `sh` exports `PWD` as the step's directory (not the runner's): so does a
/// step started directly, through a symlink too.
#[test]
fn a_plain_command_sees_the_pwd_the_shell_would_give() {
    let pwd = "#!/bin/sh\nprintf '%s' \"$PWD\" > \"$1\"\n";
    let t = executable(Test::new(), "sub/pwd.sh", pwd).write(
        "sub/pipeline.topsail",
        r"
        direct:
            run ./pwd.sh direct.txt
        shell:
            run ./pwd.sh shell.txt; true
        ",
    );
    std::os::unix::fs::symlink(t.path("sub"), t.path("link")).expect("symlink");
    let outside = t.dir.path().display().to_string();
    let mut t = t.env("PWD", &outside);
    for dir in ["sub", "link"] {
        let file = format!("{dir}/pipeline.topsail");
        t = t.next().args(&["run", &file, "--jobs", "1"]).status(0);
        let r = t.run();
        let direct = read(&t, "sub/direct.txt");
        assert_eq!(direct, read(&t, "sub/shell.txt"), "{dir}: {}", r.show());
        assert!(direct.ends_with("/sub"), "{dir}: {direct}");
    }
}
