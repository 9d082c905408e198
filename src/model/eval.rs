//! Evaluating the model at run time: substituting `{{ }}` holes and deciding
//! `when` conditions. The local runner and the activity worker both call
//! these, so a pipeline means the same thing in both places.
//!
//! Holes in `run` text are substituted *as shell-quoted data* (LANGUAGE.md
//! section 5): the scanner tracks whether a hole stands unquoted, inside
//! `"..."` or inside `'...'`, and quotes the value for exactly that context,
//! so no value can inject shell syntax.

use std::fmt;

use crate::model::{Cond, Operand, Piece, Ref, Text, Type, Value};

/// Where values come from: params, loop variables, outputs, built-ins.
pub trait Scope {
    fn lookup(&self, r: &Ref) -> Option<Value>;
}

#[derive(Clone, Debug, PartialEq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

fn lookup(scope: &dyn Scope, r: &Ref) -> Result<Value, EvalError> {
    scope
        .lookup(r)
        .ok_or_else(|| EvalError(format!("no value for `{{{{ {r} }}}}`")))
}

/// Substitute holes as plain text (images, env values, messages, workdir).
pub fn render_text(text: &Text, scope: &dyn Scope) -> Result<String, EvalError> {
    let mut out = String::new();
    for p in &text.parts {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Ref(r) => out.push_str(&lookup(scope, r)?.to_text()),
        }
    }
    Ok(out)
}

/// Substitute holes in a script so each value arrives as literal data.
/// For a non-POSIX `shell` (python, node, ...) values are inserted as text.
pub fn render_script(
    text: &Text,
    scope: &dyn Scope,
    shell: Option<&str>,
) -> Result<String, EvalError> {
    if !is_posix_shell(shell) {
        return render_text(text, scope);
    }
    let mut out = String::new();
    let mut state = Quote::None;
    for p in &text.parts {
        match p {
            Piece::Lit(s) => {
                state = scan(s, state);
                out.push_str(s);
            }
            Piece::Ref(r) => {
                let v = lookup(scope, r)?.to_text();
                out.push_str(&quote_for(&v, state));
            }
        }
    }
    Ok(out)
}

fn is_posix_shell(shell: Option<&str>) -> bool {
    let Some(shell) = shell else { return true };
    let prog = shell.split_whitespace().next().unwrap_or("");
    let base = prog.rsplit('/').next().unwrap_or(prog);
    matches!(
        base,
        "sh" | "bash" | "dash" | "ash" | "ksh" | "zsh" | "mksh" | "busybox"
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quote {
    /// Outside quotes, at the start of a word (where `#` starts a comment).
    None,
    /// Outside quotes, inside a word.
    Word,
    Single,
    Double,
    Comment,
}

/// Advance the quoting state over literal script text.
fn scan(s: &str, mut state: Quote) -> Quote {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        state = match (state, c) {
            (Quote::Comment, '\n') => Quote::None,
            (Quote::Comment, _) => Quote::Comment,
            (Quote::Single, '\'') => Quote::Word,
            (Quote::Single, _) => Quote::Single,
            (Quote::Double, '\\') => {
                chars.next();
                Quote::Double
            }
            (Quote::Double, '"') => Quote::Word,
            (Quote::Double, _) => Quote::Double,
            (Quote::None | Quote::Word, '\\') => {
                chars.next();
                Quote::Word
            }
            (Quote::None | Quote::Word, '\'') => Quote::Single,
            (Quote::None | Quote::Word, '"') => Quote::Double,
            (Quote::None, '#') => Quote::Comment,
            (_, c) if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')') => Quote::None,
            (_, _) => Quote::Word,
        };
    }
    state
}

fn quote_for(value: &str, state: Quote) -> String {
    match state {
        // In a comment nothing runs; keep the text readable.
        Quote::Comment => value.replace('\n', " "),
        Quote::None | Quote::Word => {
            if !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
            {
                value.to_string()
            } else {
                format!("'{}'", value.replace('\'', "'\\''"))
            }
        }
        Quote::Single => value.replace('\'', "'\\''"),
        Quote::Double => {
            let mut out = String::with_capacity(value.len());
            for c in value.chars() {
                if matches!(c, '$' | '`' | '"' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    }
}

impl Cond {
    /// Decide the condition. See [`Cond`] for the meaning.
    pub fn eval(&self, scope: &dyn Scope) -> Result<bool, EvalError> {
        Ok(match self {
            Cond::Or(a, b) => a.eval(scope)? || b.eval(scope)?,
            Cond::And(a, b) => a.eval(scope)? && b.eval(scope)?,
            Cond::Not(a) => !a.eval(scope)?,
            Cond::Eq(a, b) => operand(a, scope)? == operand(b, scope)?,
            Cond::Ne(a, b) => operand(a, scope)? != operand(b, scope)?,
            Cond::Truthy(a) => truthy(&operand_value(a, scope)?),
        })
    }
}

/// Compare by the operand's declared type; strings compare as text.
fn operand(op: &Operand, scope: &dyn Scope) -> Result<Value, EvalError> {
    let v = operand_value(op, scope)?;
    Ok(match (op.ty(), v) {
        (Type::String, v) => Value::Str(v.to_text()),
        (_, v) => v,
    })
}

fn operand_value(op: &Operand, scope: &dyn Scope) -> Result<Value, EvalError> {
    match op {
        Operand::Lit(v) => Ok(v.clone()),
        Operand::Ref(r, _) => lookup(scope, r),
    }
}

/// The bool `true` or the string `"true"`.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Str(s) => s == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<String, Value>);
    impl Scope for Map {
        fn lookup(&self, r: &Ref) -> Option<Value> {
            self.0.get(&r.to_string()).cloned()
        }
    }

    fn script(parts: &[Result<&str, &str>]) -> Text {
        Text {
            parts: parts
                .iter()
                .map(|p| match p {
                    Ok(l) => Piece::Lit((*l).to_string()),
                    Err(r) => Piece::Ref(Ref::Param((*r).to_string())),
                })
                .collect(),
        }
    }

    #[test]
    fn values_cannot_inject_shell() {
        let evil = "a'b\"c $(touch /tmp/x) `id`; rm";
        let scope = Map([("v".to_string(), Value::Str(evil.into()))].into());
        for (before, after) in [("echo ", ""), ("echo \"v=", "\""), ("echo 'v=", "'")] {
            let t = script(&[Ok(before), Err("v"), Ok(after)]);
            let s = render_script(&t, &scope, None).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&s)
                .output()
                .unwrap();
            let printed = String::from_utf8_lossy(&out.stdout);
            let prefix = if before.contains("v=") { "v=" } else { "" };
            assert_eq!(printed.trim_end(), format!("{prefix}{evil}"), "script: {s}");
        }
    }

    #[test]
    fn conditions_follow_types() {
        let scope = Map([
            ("dry".to_string(), Value::Bool(false)),
            ("b.CHANGED".to_string(), Value::Str("true".into())),
            ("n".to_string(), Value::Int(3)),
        ]
        .into());
        let dry = Operand::Ref(Ref::Param("dry".into()), Type::Bool);
        let changed = Operand::Ref(
            Ref::Output {
                step: "b".into(),
                output: "CHANGED".into(),
            },
            Type::String,
        );
        let n = Operand::Ref(Ref::Param("n".into()), Type::Int);
        assert!(Cond::Not(Box::new(Cond::Truthy(dry))).eval(&scope).unwrap());
        assert!(Cond::Truthy(changed.clone()).eval(&scope).unwrap());
        assert!(
            Cond::Eq(changed, Operand::Lit(Value::Str("true".into())))
                .eval(&scope)
                .unwrap()
        );
        assert!(
            Cond::Ne(n, Operand::Lit(Value::Int(4)))
                .eval(&scope)
                .unwrap()
        );
    }
}
