//! The run text of a converted state: plain POSIX sh that writes the state's
//! `scriptString` to a file in `$TMPDIR`, runs it with the interpreter its
//! `#!` line names (so Perl, Python and bash scripts keep working, and a
//! non-zero exit fails the step through `sh -e`), and maps the old output
//! contract (a file `X` of `KEY=VALUE` lines plus an empty marker `X.type` in
//! `$TMPDIR`) onto `$TOPSAIL_OUTPUT`. A catch handler runs a whole workflow of
//! such states in one step, since a handler has no needs to chain through.

// Shell text is assembled line by line; `format!` + `push_str` reads closer
// to the shell it makes than `write!` with an ignored infallible result.
#![allow(clippy::format_push_string)]

/// The file name the script is written to inside its `$TMPDIR`. It has no
/// `.type` marker, so the output scan never reads it.
const SCRIPT_FILE: &str = "legacy-script";

/// What runs a script: the words of its `#!` line, or `None` without one.
pub(crate) fn interpreter(script: &str) -> Option<Vec<String>> {
    let first = script.lines().next()?;
    let rest = first.strip_prefix("#!")?;
    let words: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

/// The env var a manifest's step sets so that the runner waits for its whole
/// process group (background processes a state started) before the step
/// ends.
pub(crate) use crate::run::spec::WAIT_GROUP_ENV;

/// The env var carrying the value an earlier state with the same
/// `ResultPath` wrote for `key`.
pub(crate) fn prev_env(key: &str) -> String {
    format!("TOPSAIL_LEGACY_PREV_{}", key.replace('-', "_"))
}

/// `cat > FILE <<'DELIM'` + the script + `DELIM`, then the line that runs it
/// with `prefix` (env assignments) in front.
fn write_and_run(out: &mut String, dir: &str, script: &str, prefix: &str) {
    let mut delim = "TOPSAIL_LEGACY_SCRIPT".to_string();
    while script.lines().any(|l| l == delim) {
        delim.push('_');
    }
    let file = format!("\"{dir}/{SCRIPT_FILE}\"");
    out.push_str(&format!("cat > {file} <<'{delim}'\n"));
    out.push_str(script);
    if !script.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&delim);
    out.push('\n');
    let runner = match interpreter(script) {
        Some(words) => words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "),
        // The old runner handed every script to perl (`$^X FILE`), which
        // runs a file without a `#!` line as Perl.
        None => "perl".to_string(),
    };
    out.push_str(&format!("{prefix}{runner} {file}\n"));
}

/// The outputs a state declares (the keys later states read), and the
/// state before it that wrote under the same `ResultPath`, if any.
pub(crate) struct StepOutputs<'a> {
    pub keys: &'a [String],
    pub prev: Option<&'a str>,
}

/// The run text of one state that is a step of its own.
pub(crate) fn step_run(state: &str, script: &str, outputs: &StepOutputs<'_>) -> String {
    let mut out = format!(
        "# State \"{state}\" of the service manifest, run by its own `#!` line (perl without one).\n"
    );
    out.push_str("# The old runner's contracts: KEY=VALUE lines in $OUTPUT_FILE; HOST_TEMPORARY_DIRECTORY is the state's own temp dir.\n");
    out.push_str(
        "export OUTPUT_FILE=\"$TMPDIR/legacy-output-file\" HOST_TEMPORARY_DIRECTORY=\"$TMPDIR\"\n",
    );
    write_and_run(&mut out, "$TMPDIR", script, "");
    if !outputs.keys.is_empty() {
        collect_outputs(&mut out, state, outputs);
    }
    out
}

/// The old runner's output contract mapped onto `$TOPSAIL_OUTPUT`: each
/// file X with a marker X.type in `$TMPDIR`, then `$OUTPUT_FILE`, holds
/// KEY=VALUE lines (a later line wins). When the state wrote any, a key it
/// did not write is empty; when it wrote none, the values stored under its
/// `ResultPath` stay those of the state before it. Both with a warning,
/// never a failure, as the old runner did.
fn collect_outputs(out: &mut String, state: &str, outputs: &StepOutputs<'_>) {
    let all = "\"$TMPDIR/legacy-outputs\"";
    out.push_str("# The old output contract: files X with a marker X.type in $TMPDIR, then $OUTPUT_FILE, hold KEY=VALUE lines.\n");
    out.push_str(&format!(": > {all}\nlegacy_wrote=\n"));
    out.push_str("for legacy_file in \"$TMPDIR\"/*.type \"$OUTPUT_FILE.type\"; do\n");
    out.push_str("    legacy_file=\"${legacy_file%.type}\"\n");
    out.push_str("    if [ -f \"$legacy_file\" ]; then\n");
    out.push_str(&format!(
        "        legacy_wrote=1; cat \"$legacy_file\" >> {all}; echo >> {all}\n"
    ));
    out.push_str("    fi\n");
    out.push_str("done\n");
    let warn = |text: &str| {
        format!(
            "        echo {} >&2\n",
            quote(&format!("topsail: warning: state \"{state}\" {text}"))
        )
    };
    for key in outputs.keys {
        let pattern = format!("^{key}=");
        out.push_str("if [ -n \"$legacy_wrote\" ]; then\n");
        out.push_str(&format!("    if grep -q '{pattern}' {all}; then\n"));
        out.push_str(&format!(
            "        printf '%s=%s\\n' {key} \"$(sed -n 's/{pattern}//p' {all} | tail -n 1)\" >> \"$TOPSAIL_OUTPUT\"\n"
        ));
        out.push_str("    else\n");
        out.push_str(&warn(&format!(
            "wrote no `{key}`: later states read it empty, as the old runner did"
        )));
        out.push_str(&format!("        echo '{key}=' >> \"$TOPSAIL_OUTPUT\"\n"));
        out.push_str("    fi\n");
        out.push_str("else\n");
        if let Some(prev) = outputs.prev {
            out.push_str(&warn(&format!(
                    "wrote no outputs: `{key}` keeps the value state \"{prev}\" wrote, as the old runner did"
                )));
            out.push_str(&format!(
                "        printf '%s=%s\\n' {key} \"${}\" >> \"$TOPSAIL_OUTPUT\"\n",
                prev_env(key)
            ));
        } else {
            out.push_str(&warn(&format!(
                "wrote no outputs: later states read `{key}` empty, as the old runner did"
            )));
            out.push_str(&format!("        echo '{key}=' >> \"$TOPSAIL_OUTPUT\"\n"));
        }
        out.push_str("fi\n");
    }
}

/// One env var of a state inside a handler's run text.
pub(crate) enum HandlerValue {
    /// Literal text, shell-quoted into the run text.
    Literal(String),
    /// The handler step's env var that carries a param (holes stay out of
    /// the run text: a quote in a heredoc would confuse the hole quoting).
    Env(String),
    /// An output of an earlier state of the same handler: (state index, key).
    Output(usize, String),
}

/// One state of a workflow run inside a handler step.
pub(crate) struct HandlerState {
    pub name: String,
    /// `None` for a `Pass` state or a task without a script.
    pub script: Option<String>,
    pub env: Vec<(String, HandlerValue)>,
    /// Keys of this state's outputs that later states read.
    pub outputs: Vec<String>,
}

/// The run text of a catch handler that runs a whole workflow, state after
/// state, each in a `$TMPDIR` of its own; outputs travel in shell variables.
pub(crate) fn handler_run(contexts: &[String], states: &[HandlerState]) -> String {
    let mut text = format!(
        "# On a failure the old runner switched to the contexts [{}] and ran that workflow: its states, in order.\n",
        contexts.join(", ")
    );
    if states.iter().any(|s| !s.outputs.is_empty()) {
        text.push_str(
            "legacy_output() { # DIR KEY: the value of KEY in the `.type` outputs in DIR\n",
        );
        text.push_str("    for marker in \"$1\"/*.type \"$1/legacy-output-file.type\"; do\n");
        text.push_str(
            "        if [ -f \"${marker%.type}\" ]; then sed -n \"s/^$2=//p\" \"${marker%.type}\"; fi\n",
        );
        text.push_str("    done | tail -n 1\n");
        text.push_str("}\n");
    }
    for (i, state) in states.iter().enumerate() {
        let n = i + 1;
        text.push_str(&format!("# {n}. {}\n", state.name));
        let Some(script) = &state.script else {
            continue;
        };
        let dir = format!("$TMPDIR/{n}");
        text.push_str(&format!("mkdir -p \"{dir}\"\n"));
        let mut prefix = format!(
            "TMPDIR=\"{dir}\" OUTPUT_FILE=\"{dir}/legacy-output-file\" HOST_TEMPORARY_DIRECTORY=\"{dir}\" "
        );
        for (name, value) in &state.env {
            match value {
                HandlerValue::Literal(s) => prefix.push_str(&format!("{name}={} ", quote(s))),
                HandlerValue::Env(e) => prefix.push_str(&format!("{name}=\"${e}\" ")),
                HandlerValue::Output(k, key) => {
                    prefix.push_str(&format!("{name}=\"${}\" ", var(*k, key)));
                }
            }
        }
        write_and_run(&mut text, &dir, script, &prefix);
        for key in &state.outputs {
            text.push_str(&format!(
                "{}=$(legacy_output \"{dir}\" {key})\n",
                var(i, key)
            ));
        }
    }
    text
}

/// The shell variable holding output `key` of handler state `i`.
fn var(i: usize, key: &str) -> String {
    format!("out_{}_{}", i + 1, key.replace('-', "_"))
}

/// Quote a word for POSIX sh unless it is plain.
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_words() {
        assert_eq!(
            interpreter("#!/usr/bin/env perl\nsay 1;\n"),
            Some(vec!["/usr/bin/env".to_string(), "perl".to_string()])
        );
        assert_eq!(interpreter("\n#!/bin/sh\n"), None);
        assert_eq!(interpreter("echo hi\n"), None);
    }

    #[test]
    fn delimiter_avoids_the_script() {
        let run = step_run(
            "S",
            "#!/bin/sh\nTOPSAIL_LEGACY_SCRIPT\n",
            &StepOutputs {
                keys: &[],
                prev: None,
            },
        );
        assert!(run.contains("<<'TOPSAIL_LEGACY_SCRIPT_'\n"));
        assert!(run.ends_with("/bin/sh \"$TMPDIR/legacy-script\"\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("abc"), "abc");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote(""), "''");
    }
}
