//! Editor grammars: the generated files are current, a real TextMate engine
//! (textmate-grammar-python, a port of vscode-textmate, in .venv/) gives the
//! expected scopes on every example and on a fixture with every construct,
//! and syntect (what bat uses) gives them with the sublime-syntax.

use std::path::{Path, PathBuf};
use std::process::Command;

use syntect::parsing::{ParseState, ScopeStack, SyntaxDefinition, SyntaxSetBuilder};

use crate::common::repo;

const FIXTURE: &str = "editors/tests/all-constructs.topsail";

/// One token: 1-based line, its text, its scopes (outermost first).
#[derive(Debug)]
struct Token {
    line: usize,
    text: String,
    scopes: Vec<String>,
}

/// The scopes of the `nth` token on `line` whose text is `text`.
fn scopes<'a>(tokens: &'a [Token], line: usize, text: &str, nth: usize) -> &'a [String] {
    tokens
        .iter()
        .filter(|t| t.line == line && t.text.trim() == text)
        .nth(nth)
        .map_or_else(
            || {
                let on_line: Vec<_> = tokens.iter().filter(|t| t.line == line).collect();
                panic!("no token {text:?} (#{nth}) on line {line}; the line has {on_line:#?}")
            },
            |t| t.scopes.as_slice(),
        )
}

fn assert_scope(tokens: &[Token], line: usize, text: &str, nth: usize, want: &str) {
    let got = scopes(tokens, line, text, nth);
    assert!(
        got.iter()
            .any(|s| s == want || s.starts_with(&format!("{want}."))),
        "line {line}, token {text:?}: want scope {want}, got {got:?}"
    );
}

/// (line, token, nth occurrence, scope): one or more tokens of each construct
/// of LANGUAGE.md in editors/tests/all-constructs.topsail. Both engines must
/// agree on all of them.
const EXPECTED: &[(usize, &str, usize, &str)] = &[
    (1, "#", 0, "comment.line.number-sign.topsail"),
    (2, "pipeline", 0, "keyword.declaration.pipeline.topsail"),
    (2, "showcase", 0, "entity.name.namespace.pipeline.topsail"),
    (4, "param", 0, "keyword.declaration.param.topsail"),
    (4, "version", 0, "variable.parameter.topsail"),
    (4, "string", 0, "storage.type.topsail"),
    (5, "int", 0, "storage.type.topsail"),
    (5, "=", 0, "keyword.operator.assignment.topsail"),
    (5, "3", 0, "constant.numeric.integer.topsail"),
    (6, "2.5", 0, "constant.numeric.float.topsail"),
    (7, "duration", 0, "storage.type.topsail"),
    (7, "15m", 0, "constant.numeric.duration.topsail"),
    (8, "list", 0, "storage.type.topsail"),
    (8, "[", 0, "punctuation.section.brackets.begin.topsail"),
    (8, "us-east-1", 0, "string.quoted.double.topsail"),
    (8, ",", 0, "punctuation.separator.comma.topsail"),
    (9, "false", 0, "constant.language.boolean.topsail"),
    (10, "secret", 0, "keyword.declaration.secret.topsail"),
    (10, "API_TOKEN", 0, "variable.other.constant.secret.topsail"),
    (12, "image", 0, "keyword.declaration.image.topsail"),
    (12, "alpine:3.20", 0, "string.quoted.double.topsail"),
    (13, "env", 0, "keyword.declaration.env.topsail"),
    (13, "LOG_LEVEL", 0, "variable.other.env.topsail"),
    (13, "\\\"", 0, "constant.character.escape.topsail"),
    (
        13,
        "{{",
        0,
        "punctuation.section.interpolation.begin.topsail",
    ),
    (13, "version", 0, "variable.other.reference.topsail"),
    (13, "}}", 0, "meta.interpolation.topsail"),
    (15, "import", 0, "keyword.declaration.import.topsail"),
    (15, "std/notify", 0, "string.quoted.double.topsail"),
    (15, "as", 0, "keyword.control.as.topsail"),
    (15, "notify", 0, "entity.name.namespace.topsail"),
    (17, "template", 0, "keyword.declaration.template.topsail"),
    (
        17,
        "docker-build",
        0,
        "entity.name.function.template.topsail",
    ),
    (17, "context", 0, "variable.parameter.topsail"),
    (17, "tag", 0, "variable.parameter.topsail"),
    (18, "image", 0, "keyword.other.directive.image.topsail"),
    (19, "run", 0, "keyword.other.directive.run.topsail"),
    (19, "tag", 0, "variable.other.reference.topsail"),
    (19, "tag", 0, "meta.embedded.line.shell.topsail"),
    (21, "build", 0, "entity.name.function.step.topsail"),
    (21, ":", 0, "punctuation.separator.step.topsail"),
    (22, "image", 0, "keyword.other.directive.image.topsail"),
    (23, "shell", 0, "keyword.other.directive.shell.topsail"),
    (24, "workdir", 0, "keyword.other.directive.workdir.topsail"),
    (25, "timeout", 0, "keyword.other.directive.timeout.topsail"),
    (25, "20m", 0, "constant.numeric.duration.topsail"),
    (
        26,
        "heartbeat",
        0,
        "keyword.other.directive.heartbeat.topsail",
    ),
    (26, "60s", 0, "constant.numeric.duration.topsail"),
    (27, "retry", 0, "keyword.other.directive.retry.topsail"),
    (27, "2", 0, "constant.numeric.integer.topsail"),
    (27, "every", 0, "keyword.other.retry.topsail"),
    (27, "10s", 0, "constant.numeric.duration.topsail"),
    (27, "backoff", 0, "keyword.other.retry.topsail"),
    (27, "2.0", 0, "constant.numeric.float.topsail"),
    (28, "output", 0, "keyword.other.directive.output.topsail"),
    (28, "VERSION", 0, "variable.other.output.topsail"),
    (29, "secret", 0, "keyword.other.directive.secret.topsail"),
    (29, "API_TOKEN", 0, "variable.other.constant.secret.topsail"),
    (30, "env", 0, "keyword.other.directive.env.topsail"),
    (30, "MODE", 0, "variable.other.env.topsail"),
    (31, "run", 0, "keyword.other.directive.run.topsail"),
    (31, ":", 0, "punctuation.section.block.begin.topsail"),
    // run: block text is embedded shell, holes inside it still holes,
    // also inside the shell's own quotes.
    (33, "{{", 0, "meta.embedded.block.shell.topsail"),
    (
        33,
        "{{",
        0,
        "punctuation.section.interpolation.begin.topsail",
    ),
    (33, "version", 0, "variable.other.reference.topsail"),
    // `{{ "{{" }}`: the inner `{{` is a string, not a hole.
    (
        34,
        "{{",
        0,
        "punctuation.section.interpolation.begin.topsail",
    ),
    (34, "}}", 0, "punctuation.section.interpolation.end.topsail"),
    // The block ends at the next directive.
    (35, "catch", 0, "keyword.other.directive.catch.topsail"),
    (35, "rollback", 0, "variable.function.step.topsail"),
    (37, "deploy", 0, "entity.name.function.step.topsail"),
    (37, "build", 0, "variable.function.step.topsail"),
    (38, "when", 0, "keyword.other.directive.when.topsail"),
    (38, "!", 0, "keyword.operator.logical.topsail"),
    (38, "dry_run", 0, "variable.other.reference.topsail"),
    (38, "&&", 0, "keyword.operator.logical.topsail"),
    (38, "(", 0, "punctuation.section.parens.begin.topsail"),
    (38, "!=", 0, "keyword.operator.comparison.topsail"),
    (38, "0.0.0", 0, "string.quoted.double.topsail"),
    (38, "||", 0, "keyword.operator.logical.topsail"),
    (38, "==", 0, "keyword.operator.comparison.topsail"),
    (39, "foreach", 0, "keyword.other.directive.foreach.topsail"),
    (39, "r", 0, "variable.other.loop.topsail"),
    (39, "in", 0, "keyword.control.in.topsail"),
    (39, "regions", 0, "variable.other.reference.topsail"),
    (
        40,
        "approval",
        0,
        "keyword.other.directive.approval.topsail",
    ),
    (40, "build", 0, "variable.other.reference.topsail"),
    (40, ".", 0, "punctuation.accessor.dot.topsail"),
    (40, "VERSION", 0, "variable.other.reference.topsail"),
    (41, "run", 0, "keyword.other.directive.run.topsail"),
    (41, "r", 0, "variable.other.reference.topsail"),
    (41, "VERSION", 0, "meta.interpolation.topsail"),
    (44, "use", 0, "keyword.other.directive.use.topsail"),
    (
        44,
        "docker-build",
        0,
        "entity.name.function.template.topsail",
    ),
    (44, "tag", 0, "variable.parameter.topsail"),
    (47, "notify", 0, "entity.name.function.template.topsail"),
    (47, "webhook", 0, "entity.name.function.template.topsail"),
    (50, "failed", 0, "variable.other.reference.topsail"),
];

#[test]
fn generated_grammars_are_current() {
    let out = Command::new("python3")
        .arg(repo().join("editors/grammar/generate.py"))
        .arg("--check")
        .output()
        .expect("python3 runs (the grammar generator needs only its standard library)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Tokenize files with the TextMate engine in .venv (scripts/setup/editors.sh).
fn textmate_tokens(files: &[PathBuf]) -> Vec<(PathBuf, Vec<Token>)> {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup/editors.sh (it installs textmate-grammar-python into .venv)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(repo().join("editors/tests/tm_tokens.py"))
        .arg(repo().join("editors/vscode/syntaxes/topsail.tmLanguage.json"))
        .args(files)
        .output()
        .expect("the venv's python runs");
    assert!(
        out.status.success(),
        "the TextMate tokenizer failed (is textmate-grammar-python installed? run scripts/setup/editors.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut result: Vec<(PathBuf, Vec<Token>)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).expect("the tokenizer prints JSON lines");
        if let Some(file) = v["file"].as_str() {
            result.push((PathBuf::from(file), Vec::new()));
            continue;
        }
        let token = Token {
            line: v["line"].as_u64().expect("line") as usize,
            text: v["text"].as_str().expect("text").to_string(),
            scopes: v["scopes"]
                .as_array()
                .expect("scopes")
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        };
        result
            .last_mut()
            .expect("a file line comes first")
            .1
            .push(token);
    }
    result
}

fn examples() -> Vec<PathBuf> {
    crate::common::examples()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "topsail"))
        .collect()
}

/// Checks that hold on any file: comment lines, step headers, the first word
/// of every directive line, every `{{` outside comments, run blocks as shell.
fn check_structure(path: &Path, tokens: &[Token], has_scope: &dyn Fn(&[String], &str) -> bool) {
    let text = std::fs::read_to_string(path).expect("read example");
    let mut run_indent: Option<usize> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let at = |word: &str| {
            tokens
                .iter()
                .find(|t| t.line == n && t.text.trim() == word)
                .unwrap_or_else(|| panic!("{}:{n}: no token {word:?}", path.display()))
        };
        let indent = line.len() - line.trim_start().len();
        if let Some(ri) = run_indent {
            if line.trim().is_empty() || indent > ri {
                for t in tokens
                    .iter()
                    .filter(|t| t.line == n && !t.text.trim().is_empty())
                {
                    assert!(
                        has_scope(&t.scopes, "meta.embedded.block.shell.topsail"),
                        "{}:{n}: run text {:?} not scoped as shell: {:?}",
                        path.display(),
                        t.text,
                        t.scopes
                    );
                }
                continue;
            }
            run_indent = None;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            let t = at("#");
            assert!(
                has_scope(&t.scopes, "comment.line.number-sign.topsail"),
                "{}:{n}: {:?}",
                path.display(),
                t
            );
            continue;
        }
        let first = trimmed.split([' ', ':', '(']).next().unwrap_or("");
        if first.is_empty() {
            continue;
        }
        if indent == 0 && line[first.len()..].trim_start().starts_with(':') {
            let t = at(first);
            assert!(
                has_scope(&t.scopes, "entity.name.function.step.topsail"),
                "{}:{n}: {t:?}",
                path.display()
            );
        } else if indent == 0 {
            let t = at(first);
            let want = format!("keyword.declaration.{first}.topsail");
            assert!(
                has_scope(&t.scopes, &want),
                "{}:{n}: want {want}, got {t:?}",
                path.display()
            );
        } else {
            let t = at(first);
            let want = format!("keyword.other.directive.{first}.topsail");
            assert!(
                has_scope(&t.scopes, &want),
                "{}:{n}: want {want}, got {t:?}",
                path.display()
            );
            if trimmed.trim_end() == "run:" {
                run_indent = Some(indent);
            }
        }
        if !trimmed.starts_with('#') {
            for t in tokens
                .iter()
                .filter(|t| t.line == n && t.text.trim() == "{{")
            {
                assert!(
                    has_scope(&t.scopes, "meta.interpolation.topsail"),
                    "{}:{n}: {t:?}",
                    path.display()
                );
            }
        }
    }
}

fn has_scope(scopes: &[String], want: &str) -> bool {
    scopes.iter().any(|s| s == want)
}

#[test]
fn textmate_engine_scopes_every_example_and_every_construct() {
    let mut files = examples();
    files.push(repo().join(FIXTURE));
    let results = textmate_tokens(&files);
    assert_eq!(results.len(), files.len());
    for (path, tokens) in &results {
        assert!(!tokens.is_empty(), "{} gave no tokens", path.display());
        check_structure(path, tokens, &has_scope);
    }
    let (_, fixture) = results.last().expect("the fixture was tokenized");
    for (line, text, nth, want) in EXPECTED {
        assert_scope(fixture, *line, text, *nth, want);
    }
}

/// Tokenize with syntect and the sublime-syntax, plus a small stand-in for
/// Sublime's Bash syntax (strings only), so the embedding is exercised.
fn syntect_tokens(path: &Path) -> Vec<Token> {
    let syntax_text =
        std::fs::read_to_string(repo().join("editors/sublime/topsail.sublime-syntax"))
            .expect("the sublime-syntax exists");
    let topsail = SyntaxDefinition::load_from_str(&syntax_text, true, None)
        .unwrap_or_else(|e| panic!("the sublime-syntax loads: {e}"));
    let bash = SyntaxDefinition::load_from_str(
        "%YAML 1.2\n---\nname: Bash\nscope: source.shell.bash\ncontexts:\n  main:\n    - match: '\"'\n      scope: punctuation.definition.string.begin.shell\n      push:\n        - meta_scope: string.quoted.double.shell\n        - match: '\"'\n          scope: punctuation.definition.string.end.shell\n          pop: true\n    - match: '#.*$'\n      scope: comment.line.number-sign.shell\n",
        true,
        None,
    )
    .expect("the bash stand-in loads");
    let mut builder = SyntaxSetBuilder::new();
    builder.add(topsail);
    builder.add(bash);
    let set = builder.build();
    let syntax = set
        .find_syntax_by_extension("topsail")
        .expect("registered for .topsail");
    let mut state = ParseState::new(syntax);
    let mut stack = ScopeStack::new();
    let mut tokens = Vec::new();
    let text = std::fs::read_to_string(path).expect("read");
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let ops = state
            .parse_line(line, &set)
            .expect("syntect parses the line");
        let mut pos = 0;
        let mut emit = |from: usize, to: usize, stack: &ScopeStack| {
            if to > from {
                tokens.push(Token {
                    line: i + 1,
                    text: line[from..to].to_string(),
                    scopes: stack.as_slice().iter().map(ToString::to_string).collect(),
                });
            }
        };
        for (at, op) in ops {
            emit(pos, at, &stack);
            pos = at;
            stack.apply(&op).expect("scope ops apply");
        }
        emit(pos, line.len(), &stack);
    }
    // syntect's tokens are split only at scope changes; split them at
    // spaces too, the way the checks name tokens.
    let mut words = Vec::new();
    for t in tokens {
        for w in t.text.split_inclusive([' ', '\n']) {
            words.push(Token {
                line: t.line,
                text: w.to_string(),
                scopes: t.scopes.clone(),
            });
        }
    }
    words
}

#[test]
fn syntect_loads_the_sublime_syntax_and_scopes_every_construct() {
    for path in examples() {
        let tokens = syntect_tokens(&path);
        check_structure(&path, &tokens, &has_scope);
    }
    let tokens = syntect_tokens(&repo().join(FIXTURE));
    for (line, text, nth, want) in EXPECTED {
        assert_scope(&tokens, *line, text, *nth, want);
    }
    // With a shell syntax present, a hole inside the shell's own quotes is
    // still a hole (with_prototype), and the quotes are the shell's.
    let hole = scopes(&tokens, 33, "{{", 0);
    assert!(has_scope(hole, "string.quoted.double.shell"), "{hole:?}");
    assert!(has_scope(hole, "meta.interpolation.topsail"), "{hole:?}");
}

/// vim's syntax file, when vim is installed: the groups under chosen tokens
/// of the fixture (vim is optional, so its absence skips with a note).
#[test]
fn vim_syntax_groups_of_chosen_tokens() {
    if Command::new("vim").arg("--version").output().is_err() {
        eprintln!("vim is not installed; skipping the vim syntax check");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("groups.txt");
    // (line, column, group expected in the syntax stack there)
    let checks: &[(usize, usize, &str)] = &[
        (2, 1, "topsailDecl"),
        (4, 16, "topsailType"),
        (13, 47, "topsailHoleDelim"),
        (21, 1, "topsailStepName"),
        (25, 5, "topsailDirective"),
        (25, 13, "topsailDuration"),
        (33, 9, "topsailRunBlock"),
        (33, 43, "topsailHole"),
        (35, 5, "topsailDirective"),
        (37, 9, "topsailNeed"),
        (38, 10, "topsailOperator"),
        (41, 42, "topsailHole"),
    ];
    let list = checks
        .iter()
        .map(|(l, c, _)| format!("[{l},{c}]"))
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        "set nocompatible\nlet &rtp = '{rtp},' . &rtp\nfiletype on\nsyntax on\nedit {file}\n\
         let out = [&filetype]\nfor [l, c] in [{list}]\n  \
         call add(out, join(map(synstack(l, c), 'synIDattr(v:val, \"name\")'), ','))\nendfor\n\
         call writefile(out, '{out}')\nqa!\n",
        rtp = repo().join("editors/vim").display(),
        file = repo().join(FIXTURE).display(),
        out = out.display(),
    );
    let script_path = dir.path().join("check.vim");
    std::fs::write(&script_path, script).expect("write script");
    let status = Command::new("vim")
        .args(["-Nu", "NONE", "-es", "-S"])
        .arg(&script_path)
        .status()
        .expect("vim runs");
    assert!(status.success(), "vim exited with {status}");
    let got = std::fs::read_to_string(&out).expect("vim wrote the groups");
    let mut lines = got.lines();
    assert_eq!(lines.next(), Some("topsail"), "filetype");
    for ((l, c, want), stack) in checks.iter().zip(lines) {
        assert!(
            stack.split(',').any(|g| g == *want),
            "{l}:{c}: want {want}, got {stack}"
        );
    }
}
