//! Literal values as the checker judges them: a literal converted to its
//! declared type, durations and the limits Step Functions puts on them, names
//! (of params, steps, outputs, env variables) and image references.

use std::time::Duration;

use crate::diagnostics::{Diagnostic, codes};
use crate::model::text::is_name;
use crate::model::{self, Type, Value};
use crate::source::Span;
use crate::syntax::ast::{self, Part};

/// The most seconds Step Functions accepts in `TimeoutSeconds`,
/// `HeartbeatSeconds` and a retrier's `IntervalSeconds` (and the most
/// `MaxAttempts`).
pub const MAX_ASL_SECONDS: u64 = 99_999_999;

/// An image reference Docker would refuse is an error here, not at run time.
/// With `{{ }}` holes only the literal text can be judged: the reference must
/// parse with the holes filled by one of a few placeholders (a short name, a
/// long hex-like word, a digest), and the runner checks the rendered one.
pub(super) fn check_image(i: &ast::Interp, diags: &mut Vec<Diagnostic>) {
    let has_holes = i.parts.iter().any(|p| matches!(p, Part::Ref(_)));
    let render = |hole: &str| -> String {
        i.parts
            .iter()
            .map(|p| match p {
                // A template argument's value is known text here.
                Part::Lit(s) | Part::Value(s, _) => s.as_str(),
                Part::Ref(_) => hole,
            })
            .collect()
    };
    let first = render("0");
    let Err(why) = model::image_ref::validate(&first) else {
        return;
    };
    if has_holes {
        let long = "0".repeat(64);
        let digest = format!("sha256:{long}");
        if [long.as_str(), digest.as_str()]
            .iter()
            .any(|h| model::image_ref::validate(&render(h)).is_ok())
        {
            return;
        }
    }
    let shown = i.source_text();
    let mut d = if i.parts.is_empty() {
        Diagnostic::error(codes::BAD_VALUE, i.span, "the image reference is empty")
            .label("no image named")
            .help("name an image, like `\"alpine:3.20\"`, or remove `image` to run the step on the host")
            .fix("\"alpine:3.20\"")
    } else {
        Diagnostic::error(
            codes::BAD_VALUE,
            i.span,
            format!("`{shown}` is not a valid image reference: {why}"),
        )
        .label("Docker cannot parse this")
        .help("a reference is `[REGISTRY[:PORT]/]PATH[:TAG][@DIGEST]`, the path in lowercase, like `\"alpine:3.20\"` or `\"ghcr.io/owner/app:v1\"`")
    };
    if !has_holes && let Some(s) = model::image_ref::suggest(&first) {
        d.help = format!("{}; did you mean `\"{s}\"`?", d.help);
        d = d.fix(format!("{s:?}"));
    }
    diags.push(d);
}

pub(super) fn bad_env_name(name: &str, span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        codes::BAD_NAME,
        span,
        format!("`{name}` is not a valid {what} name"),
    )
    .label("not an environment variable name")
    .help("use letters, digits and `_`, not starting with a digit (e.g. `API_TOKEN`)")
}

pub(super) fn check_name(name: &str, span: Span, what: &str, diags: &mut Vec<Diagnostic>) {
    if !is_name(name) {
        diags.push(
            Diagnostic::error(
                codes::BAD_NAME,
                span,
                format!("`{name}` is not a valid {what} name"),
            )
            .label("invalid name")
            .help("names use letters, digits, `_` and `-`, and start with a letter or `_`"),
        );
    }
}

/// A literal value, converted to `expected` when given. Strings may stand for
/// durations, ints for floats; anything else that does not fit is a mismatch.
pub(super) fn literal(
    v: &ast::Value,
    expected: Option<Type>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Value> {
    use ast::ValueKind as K;
    let value = match &v.kind {
        K::Str(i) => {
            let Some(s) = i.as_literal() else {
                diags.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        v.span,
                        format!("{what} cannot contain `{{{{ }}}}`"),
                    )
                    .label("a value known only at run time")
                    .help("use a plain literal here")
                    // Its holes' names were used, if wrongly: no "never used".
                    .uses(i.parts.iter().filter_map(|p| match p {
                        ast::Part::Ref(r) => r.path.first().map(|x| x.name.clone()),
                        _ => None,
                    })),
                );
                return None;
            };
            match expected {
                Some(Type::Duration) => return duration(&s, v.span, diags).map(Value::Duration),
                _ => Value::Str(s),
            }
        }
        K::Int(i) => match expected {
            Some(Type::Float) => Value::Float(*i as f64),
            _ => Value::Int(*i),
        },
        K::Float(f) => Value::Float(*f),
        K::Bool(b) => Value::Bool(*b),
        K::Duration(text) => match expected {
            Some(Type::String) => Value::Str(text.clone()),
            _ => Value::Duration(duration(text, v.span, diags)?),
        },
        K::List(items) => Value::List(
            items
                .iter()
                .map(|x| literal(x, None, "a list item", diags))
                .collect::<Option<_>>()?,
        ),
    };
    if let Some(want) = expected
        && value.ty() != want
    {
        let quoted = format!("{:?}", value_text(&v.kind));
        let (help, fixes): (String, Vec<String>) = match want {
            Type::String => (
                format!("write it in double quotes: `{quoted}`"),
                vec![quoted],
            ),
            Type::Int => ("write a whole number, e.g. `3`".into(), vec!["3".into()]),
            Type::Bool => (
                "write `true` or `false`".into(),
                vec!["true".into(), "false".into()],
            ),
            Type::Duration => (
                "write a duration such as `90s`, `15m` or `2h`".into(),
                vec!["90s".into(), "15m".into(), "2h".into()],
            ),
            Type::List => (
                format!("write a list such as `[{quoted}]`"),
                vec![format!("[{quoted}]")],
            ),
            Type::Float => ("write a number such as `2.0`".into(), vec!["2.0".into()]),
        };
        let mut d = Diagnostic::error(
            codes::TYPE_MISMATCH,
            v.span,
            format!("{what} of type {want} cannot be {}", article(value.ty())),
        )
        .label(format!("this is {}", article(value.ty())))
        .help(help);
        for f in fixes {
            d = d.fix(f);
        }
        diags.push(d);
        return None;
    }
    Some(value)
}

pub(super) fn article(t: Type) -> String {
    match t {
        Type::Int => "an int".to_string(),
        other => format!("a {other}"),
    }
}

/// `1157d`: the longest duration, in days, that Step Functions takes in seconds.
fn max_asl_days() -> String {
    format!("{}d", MAX_ASL_SECONDS / 86_400)
}

fn duration(text: &str, span: Span, diags: &mut Vec<Diagnostic>) -> Option<Duration> {
    match model::parse_duration(text) {
        Ok(d) => Some(d),
        Err(e) => {
            // Suggest durations that every use of one accepts: whole seconds,
            // within what Step Functions takes.
            let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
            let fixes = match digits.parse::<u64>() {
                Ok(n) if n > 0 && n <= MAX_ASL_SECONDS => vec![format!("{n}s"), format!("{n}m")],
                Ok(_) if !digits.is_empty() && digits.trim_start_matches('0').is_empty() => {
                    vec!["30s".to_string()]
                }
                Ok(_) | Err(_) if digits.len() > 8 => vec![max_asl_days()],
                _ => vec!["90s".to_string(), "15m".to_string()],
            };
            let mut d = Diagnostic::error(
                codes::BAD_DURATION,
                span,
                format!("`{text}` is not a duration"),
            )
            .label(e)
            .help(format!(
                "write a whole number and a unit (s, m, h or d), like `{}`; also `90s`, `15m`, `24h` or `2d`",
                fixes[0]
            ));
            for f in fixes {
                d = d.fix(f);
            }
            diags.push(d);
            None
        }
    }
}

pub(super) fn positive_duration(
    v: &ast::Value,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let value = literal(v, Some(Type::Duration), &format!("`{what}`"), diags)?;
    let Value::Duration(d) = value else {
        return None;
    };
    if d.is_zero() {
        diags.push(
            Diagnostic::error(
                codes::BAD_DURATION,
                v.span,
                format!("`{what}` cannot be zero"),
            )
            .label("zero")
            .help("give a positive duration, e.g. `30s`")
            .fix("30s"),
        );
        return None;
    }
    if d.subsec_millis() != 0 {
        let up = format!("{}s", d.as_secs() + 1);
        diags.push(
            Diagnostic::error(
                codes::BAD_DURATION,
                v.span,
                format!("`{what}` must be a whole number of seconds"),
            )
            .label("Step Functions counts this in whole seconds")
            .help(format!("round it to whole seconds: `{up}`"))
            .fix(up),
        );
        return None;
    }
    if d.as_secs() > MAX_ASL_SECONDS {
        let field = match what {
            "timeout" => "TimeoutSeconds",
            "heartbeat" => "HeartbeatSeconds",
            _ => "IntervalSeconds",
        };
        let max = max_asl_days();
        diags.push(
            Diagnostic::error(
                codes::ASL_LIMIT,
                v.span,
                format!(
                    "`{what}` is {} seconds; Step Functions accepts at most {MAX_ASL_SECONDS}",
                    d.as_secs()
                ),
            )
            .label(format!("too long for `{field}`"))
            .help(format!(
                "Step Functions takes at most {MAX_ASL_SECONDS} seconds (about {} days) in `{field}`: write `{max}` or less",
                MAX_ASL_SECONDS / 86_400
            ))
            .fix(max),
        );
        return None;
    }
    Some(d)
}

pub(super) fn value_text(v: &ast::ValueKind) -> String {
    match v {
        ast::ValueKind::Str(i) => i.source_text(),
        ast::ValueKind::Int(i) => i.to_string(),
        ast::ValueKind::Float(f) => model::format_float(*f),
        ast::ValueKind::Bool(b) => b.to_string(),
        ast::ValueKind::Duration(d) => d.clone(),
        ast::ValueKind::List(items) => items
            .iter()
            .map(|x| value_text(&x.kind))
            .collect::<Vec<_>>()
            .join(" "),
    }
}
