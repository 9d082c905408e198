//! Starting a step's command without a shell, as make does, when that keeps
//! exactly what `sh -e -c SCRIPT` would do.
//!
//! A script qualifies when it is one simple command: words of plain
//! characters separated by spaces or tabs, on one line, whose first word is
//! neither a shell builtin nor a reserved word, holds no `=` (an assignment)
//! and no hole. For such a script `sh -e -c` only looks the program up on
//! `PATH` and runs it with those words: no expansion, quoting or globbing
//! can change a word, and `-e` has nothing to stop. Anything else (a quote,
//! `$`, a glob, `~`, `;`, `&`, `|`, a redirection, a second line, a comment,
//! a non-ASCII character) goes to the shell as before.
//!
//! A word may also hold a hole: the script builder writes one outside
//! quotes as `"${TOPSAIL_V<n>_name}"`, which `sh` expands to the variable's
//! value as exactly one word (no splitting or globbing inside double
//! quotes), so the word is its literal parts and the value put together.
//! Never the first word: `sh` would look its value up as a builtin.
//!
//! `true` and `false` without arguments are builtins that `sh` never looks
//! up; they are run directly only when `PATH` finds them in `/bin` or
//! `/usr/bin` (the system's, which do the same), else by the shell.
//!
//! If starting the program fails (not found, not executable, a script
//! without `#!`), the caller runs the shell instead, which fails (or runs
//! it) with its own message and exit status: the result is the shell's.
//!
//! One edge: where `/bin/sh` is bash, a function exported in the runner's
//! environment (`export -f cc`) would shadow a program under `sh` but not
//! here. dash, Debian's and Ubuntu's `sh`, imports no functions.

/// Shell builtins and reserved words (POSIX, dash and bash): a command that
/// starts with one of these must go through the shell.
const SHELL_WORDS: &[&str] = &[
    // reserved words
    "!",
    "{",
    "}",
    "case",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "function",
    "if",
    "in",
    "select",
    "then",
    "time",
    "until",
    "while",
    "[[",
    "]]",
    "coproc",
    // builtins (dash and bash)
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "chdir",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

/// Builtins whose system program does the same when given no argument.
pub const SAME_AS_PROGRAM: &[&str] = &["true", "false"];

/// Directories whose `true` and `false` are the system's.
pub const SYSTEM_DIRS: &[&str] = &["/bin", "/usr/bin"];

/// The words to start `script` with directly, with `env` (the step's
/// environment, the hole variables last) serving its holes; `None`: the
/// script needs the shell.
pub fn words(script: &str, env: &[(String, String)]) -> Option<Vec<String>> {
    let line = script.trim_matches([' ', '\t', '\n']);
    if line.is_empty() || line.contains('\n') {
        return None;
    }
    let mut out = Vec::new();
    for (i, raw) in line
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        let word = word(raw, env, i == 0)?;
        out.push(word);
    }
    let first = out.first()?;
    if first.contains('=') {
        return None;
    }
    if SHELL_WORDS.contains(&first.as_str())
        && !(out.len() == 1 && SAME_AS_PROGRAM.contains(&first.as_str()))
    {
        return None;
    }
    Some(out)
}

/// One word: plain characters and (not in the first word) hole references.
fn word(raw: &str, env: &[(String, String)], first: bool) -> Option<String> {
    let mut out = String::new();
    let mut rest = raw;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("\"${") {
            if first {
                return None;
            }
            let end = after.find("}\"")?;
            let name = &after[..end];
            if !name.starts_with(crate::model::HOLE_VAR_PREFIX)
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return None;
            }
            let (_, value) = env.iter().rev().find(|(k, _)| k == name)?;
            out.push_str(value);
            rest = &after[end + 2..];
            continue;
        }
        let c = rest.chars().next()?;
        if !plain(c) {
            return None;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// A character with no meaning to the shell anywhere in a word.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '-' | '_' | '.' | '/' | ',' | ':' | '+' | '%' | '@' | '=')
}

/// Whether a builtin run as a program was found where it does the same.
pub fn program_allowed(program: &str, resolved: Option<&std::path::Path>) -> bool {
    if !SAME_AS_PROGRAM.contains(&program) {
        return true;
    }
    resolved
        .and_then(std::path::Path::parent)
        .is_some_and(|d| SYSTEM_DIRS.iter().any(|s| d == std::path::Path::new(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Option<Vec<String>> {
        words(s, &[("TOPSAIL_V1_name".into(), "a b *".into())])
    }

    #[test]
    fn plain_commands_start_directly() {
        assert_eq!(w("true"), Some(vec!["true".to_string()]));
        assert_eq!(
            w("  cc -O2 -c src/a.c -o out/a.o\n"),
            Some(
                ["cc", "-O2", "-c", "src/a.c", "-o", "out/a.o"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(w("env A=b x").map(|v| v.len()), Some(3));
    }

    #[test]
    fn shell_syntax_goes_to_the_shell() {
        for s in [
            "echo hi",
            "true x",
            "cd src",
            "exit 3",
            "A=b cmd",
            "ls *.c",
            "ls ~/x",
            "a; b",
            "a && b",
            "a | b",
            "a > f",
            "a < f",
            "a 'x'",
            "a \"x\"",
            "a $HOME",
            "a `b`",
            "a \\x",
            "a # c",
            "a\nb",
            "a {b,c}",
            "a [x]",
            "a (b)",
            "a ?",
            "if true",
            "! a",
            "a é",
            "a\rb",
            "",
            "   ",
            "\"${TOPSAIL_V1_name}\"",
            "a \"${HOME}\"",
            "a \"${TOPSAIL_V2_missing}\"",
            "a \"${TOPSAIL_V1_name}",
            "a ${TOPSAIL_V1_name}",
        ] {
            assert_eq!(w(s), None, "{s:?}");
        }
    }

    #[test]
    fn a_quoted_hole_is_one_word_with_its_value() {
        assert_eq!(
            w("cmd --n=\"${TOPSAIL_V1_name}\"x \"${TOPSAIL_V1_name}\""),
            Some(["cmd", "--n=a b *x", "a b *"].map(String::from).to_vec())
        );
    }

    #[test]
    fn true_runs_as_a_program_only_from_the_system() {
        use std::path::Path;
        assert!(program_allowed("true", Some(Path::new("/usr/bin/true"))));
        assert!(!program_allowed(
            "true",
            Some(Path::new("/home/u/bin/true"))
        ));
        assert!(!program_allowed("true", None));
        assert!(program_allowed("cc", None));
    }
}
