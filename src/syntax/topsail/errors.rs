//! The wording of syntax errors: pest's expectations in a user's words, the
//! nesting and operator limits checked before pest runs, and the marking of
//! a bad line with the names it would have declared and used.

use pest::error::{ErrorVariant, InputLocation};

use super::{MAX_NESTING, MAX_OPERATORS, Rule, mentioned_names};
use crate::diagnostics::{Diagnostic, codes};
use crate::source::{FileId, Span};

/// Mark a syntax error on a line with what the line would have declared and
/// used, so that the checker's reports that only follow from it (an unknown
/// step the line would have declared, a param it would have used) are dropped.
pub(super) fn involve_line(diag: Diagnostic, rule: Rule, content: &str) -> Diagnostic {
    let words = mentioned_names(content);
    let declared = match rule {
        Rule::step_line => words.first(),
        Rule::param_line
        | Rule::secret_line
        | Rule::template_line
        | Rule::output_line
        | Rule::foreach_line => words.get(1),
        _ => None,
    };
    let diag = match declared {
        Some(name) => diag.declares(*name),
        None => diag,
    };
    diag.uses(words)
}

pub(super) fn first_char_len(s: &str, at: usize) -> usize {
    s.get(at..)
        .and_then(|r| r.chars().next())
        .map_or(0, char::len_utf8)
}

/// "`token`" at `at` in `s`, or `eol` when nothing is left.
pub(super) fn found_text(s: &str, at: usize, eol: &str) -> String {
    let rest = s.get(at..).unwrap_or("");
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(24)
        .collect();
    if token.is_empty() {
        eol.to_string()
    } else {
        format!("`{token}`")
    }
}

/// Where a line nests `(`, `[` or `!` deeper than [`MAX_NESTING`], outside
/// strings and comments.
pub(super) fn too_deep(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut bangs = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'#' => return None,
            b'(' | b'[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b')' | b']' => depth = depth.saturating_sub(1),
            b'!' => {
                bangs += 1;
                if bangs > MAX_NESTING {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Where a condition has its operator number [`MAX_OPERATORS`] + 1,
/// outside strings and comments.
pub(super) fn too_many_operators(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut ops = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match (c, b.get(i + 1)) {
            (b'"', _) => in_string = true,
            (b'#', _) => return None,
            (b'&', Some(b'&')) | (b'|', Some(b'|')) | (b'=' | b'!', Some(b'=')) => {
                ops += 1;
                if ops > MAX_OPERATORS {
                    return Some(i);
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) fn operators_error(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(
        codes::SYNTAX,
        Span::new(file, at, at + 2),
        "condition too long",
    )
    .label(format!(
        "more than {MAX_OPERATORS} operators (`&&`, `||`, `==`, `!=`) by here"
    ))
    .help("simplify the condition, or compute it in a step and test that step's output")
}

pub(super) fn nesting_error(file: FileId, at: usize) -> Diagnostic {
    Diagnostic::error(
        codes::SYNTAX,
        Span::new(file, at, at + 1),
        "nested too deeply",
    )
    .label(format!(
        "more than {MAX_NESTING} levels of `(`, `[` or `!` here"
    ))
    .help("simplify the expression or the list")
}

/// A pest error as a diagnostic: what was expected, in words, at the exact
/// position. `text` is what was parsed and starts at file offset `base`.
pub(super) fn syntax_error(
    err: &pest::error::Error<Rule>,
    text: &str,
    file: FileId,
    base: usize,
    eol: &str,
    help: &str,
) -> Diagnostic {
    let pos = match err.location {
        InputLocation::Pos(p) | InputLocation::Span((p, _)) => p.min(text.len()),
    };
    let mut words: Vec<&str> = Vec::new();
    if let ErrorVariant::ParsingError { positives, .. } = &err.variant {
        for rule in positives {
            let word = if *rule == Rule::EOI {
                Some(eol)
            } else {
                describe(*rule)
            };
            if let Some(word) = word
                && !words.contains(&word)
            {
                words.push(word);
            }
        }
    }
    // "the end of the line" reads best last.
    words.sort_by_key(|w| *w == eol);
    let expected = match words.as_slice() {
        [] => "something else".to_string(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    let found = found_text(text, pos, eol);
    let at = base + pos;
    let span = Span::new(file, at, at + first_char_len(text, pos));
    let wants_value = words
        .iter()
        .any(|w| *w == "a value" || *w == "a string" || *w == "a list");
    let bare_word = text[pos..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '.');
    let help = if wants_value && bare_word {
        "strings are written in double quotes, like `\"alpine:3.20\"`".to_string()
    } else {
        help.to_string()
    };
    Diagnostic::error(
        codes::SYNTAX,
        span,
        format!("expected {expected}, found {found}"),
    )
    .label(format!("expected {expected} here"))
    .help(help)
}

/// A grammar rule in the words a user reads; `None` for rules never worth
/// naming (a comment is always allowed where a line may end).
fn describe(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::comment
        | Rule::WHITESPACE
        | Rule::end
        | Rule::name_start
        | Rule::name_char
        | Rule::ident
        | Rule::kw_pipeline
        | Rule::kw_param
        | Rule::kw_secret
        | Rule::kw_image
        | Rule::kw_env
        | Rule::kw_import
        | Rule::kw_template
        | Rule::kw_run
        | Rule::kw_shell
        | Rule::kw_workdir
        | Rule::kw_output
        | Rule::kw_timeout
        | Rule::kw_heartbeat
        | Rule::kw_retry
        | Rule::kw_when
        | Rule::kw_foreach
        | Rule::kw_approval
        | Rule::kw_catch
        | Rule::kw_use
        | Rule::kw_queue
        | Rule::kw_aws => return None,
        Rule::kw_role => "`role`",
        Rule::EOI => "the end of the line",
        Rule::pipeline_name => "the pipeline's name",
        Rule::param_name => "a parameter name",
        Rule::type_name => "a type (string, int, bool, duration or list)",
        Rule::secret_name => "a secret name",
        Rule::env_name => "an environment variable name",
        Rule::module_name => "a module name",
        Rule::template_name | Rule::template_ref => "a template name",
        Rule::step_name => "a step name",
        Rule::need => "the name of a step it needs",
        Rule::output_name => "an output name",
        Rule::catch_target => "the name of the handler step",
        Rule::var_name => "a loop variable name",
        Rule::list_param => "a list param",
        Rule::arg_name => "an argument name",
        Rule::ref_name | Rule::reference => "a name",
        Rule::colon => "`:`",
        Rule::equals => "`=`",
        Rule::comma => "`,`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::kw_as => "`as`",
        Rule::kw_in => "`in`",
        Rule::kw_every => "`every`",
        Rule::kw_backoff => "`backoff`",
        Rule::string => "a string",
        Rule::string_body | Rule::string_end => "a closing `\"`",
        Rule::duration => "a duration (like `90s`)",
        Rule::float => "a number",
        Rule::int => "an integer",
        Rule::bool => "`true` or `false`",
        Rule::list => "a list",
        Rule::value => "a value",
        Rule::or_op => "`||`",
        Rule::and_op => "`&&`",
        Rule::eq_op => "`==`",
        Rule::ne_op => "`!=`",
        Rule::not_op => "`!`",
        Rule::or_expr
        | Rule::and_expr
        | Rule::cmp_expr
        | Rule::unary
        | Rule::paren
        | Rule::literal
        | Rule::expr_only => "an expression",
        Rule::param => "a parameter",
        Rule::arg => "an argument (`NAME = VALUE`)",
        Rule::run_block => "`:`",
        Rule::run_text => "the script",
        Rule::pipeline_line
        | Rule::param_line
        | Rule::secret_line
        | Rule::image_line
        | Rule::env_line
        | Rule::import_line
        | Rule::template_line
        | Rule::step_line
        | Rule::run_line
        | Rule::shell_line
        | Rule::workdir_line
        | Rule::output_line
        | Rule::timeout_line
        | Rule::heartbeat_line
        | Rule::retry_line
        | Rule::when_line
        | Rule::foreach_line
        | Rule::approval_line
        | Rule::catch_line
        | Rule::use_line
        | Rule::queue_line
        | Rule::aws_line => "a line",
    })
}

// ------------------------------------------------------------------ pairs -> AST
