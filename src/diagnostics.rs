//! The one diagnostic type every stage reports with: parse errors, checker
//! errors and warnings, compile-time limits. A diagnostic points at a span of
//! a source file in the [`SourceMap`]; it is rendered with miette for people
//! and as JSON for editors and CI. Codes are stable: tools match on them.

use std::fmt;
use std::fmt::Write as _;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::source::{SourceMap, Span};

/// Stable diagnostic codes. Tests, docs and editors match on these strings.
pub mod codes {
    pub const SYNTAX: &str = "topsail::syntax";
    pub const TAB_INDENT: &str = "topsail::tab-indent";
    pub const BAD_INDENT: &str = "topsail::bad-indent";
    pub const YAML: &str = "topsail::yaml";
    pub const YAML_SHAPE: &str = "topsail::yaml-shape";
    pub const UNKNOWN_KEY: &str = "topsail::unknown-key";
    pub const BAD_INTERPOLATION: &str = "topsail::bad-interpolation";
    pub const DUPLICATE_STEP: &str = "topsail::duplicate-step";
    pub const DUPLICATE_PARAM: &str = "topsail::duplicate-param";
    pub const DUPLICATE_DECL: &str = "topsail::duplicate-declaration";
    pub const DUPLICATE_DIRECTIVE: &str = "topsail::duplicate-directive";
    pub const UNKNOWN_STEP: &str = "topsail::unknown-step";
    pub const CYCLE: &str = "topsail::cycle";
    pub const UNKNOWN_REFERENCE: &str = "topsail::unknown-reference";
    pub const OUTPUT_NOT_NEEDED: &str = "topsail::output-not-needed";
    pub const UNKNOWN_OUTPUT: &str = "topsail::unknown-output";
    pub const FOREACH_OUTPUT: &str = "topsail::foreach-output";
    pub const UNDECLARED_SECRET: &str = "topsail::undeclared-secret";
    pub const SECRET_NOT_REQUESTED: &str = "topsail::secret-not-requested";
    pub const BAD_DURATION: &str = "topsail::bad-duration";
    pub const TYPE_MISMATCH: &str = "topsail::type-mismatch";
    pub const UNKNOWN_TYPE: &str = "topsail::unknown-type";
    pub const APPROVAL_CONFLICT: &str = "topsail::approval-conflict";
    pub const NO_RUN: &str = "topsail::no-run";
    pub const CATCH_NEEDED: &str = "topsail::catch-handler-needed";
    pub const CATCH_HAS_NEEDS: &str = "topsail::catch-handler-needs";
    pub const UNKNOWN_TEMPLATE: &str = "topsail::unknown-template";
    pub const TEMPLATE_ARGS: &str = "topsail::template-arguments";
    pub const UNUSED_PARAM: &str = "topsail::unused-param";
    pub const UNUSED_SECRET: &str = "topsail::unused-secret";
    pub const STATE_NAME: &str = "topsail::state-name";
    pub const IMPORT: &str = "topsail::import";
    pub const BAD_NAME: &str = "topsail::bad-name";
    pub const BAD_VALUE: &str = "topsail::bad-value";
    /// A `{{ }}` in a heredoc body whose delimiter is quoted (`<<'EOF'`).
    pub const HOLE_IN_QUOTED_HEREDOC: &str = "topsail::hole-in-quoted-heredoc";
    /// A `{{ }}` in a script whose `shell` is not a POSIX shell.
    pub const HOLE_NOT_POSIX_SHELL: &str = "topsail::hole-in-non-posix-shell";
    pub const UNDECLARED_OUTPUT_SET: &str = "topsail::undeclared-output";
    pub const ASL_WAIT: &str = "topsail::asl-added-wait";
    pub const ASL_LIMIT: &str = "topsail::asl-limit";
    pub const ASL_PAYLOAD: &str = "topsail::asl-payload";
    pub const LEGACY: &str = "topsail::legacy";
    /// A step failed when run (shown at its source by `run` and `start --follow`).
    pub const STEP_FAILED: &str = "topsail::step-failed";
    /// A file could not be read (`check --format json` reports it as a diagnostic).
    pub const READ: &str = "topsail::read";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Note,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        })
    }
}

/// A problem found in a source file: a stable code, a message, a label on the
/// exact span, optional secondary labels, and a help line saying what to try.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    pub label: String,
    pub secondary: Vec<(Span, String)>,
    pub help: String,
    /// Replacements for the primary span that the help proposes. Each one,
    /// put in place of the span, is accepted by the checker (a test feeds
    /// every one back), so an editor may offer them as quick fixes.
    pub fixes: Vec<String>,
    /// Names a construct this error stopped from being read declared or
    /// used. Reports that follow from the error (an unknown name that the
    /// broken construct would have declared, a param it would have used) are
    /// dropped by [`drop_consequences`].
    pub involves: Vec<Involved>,
    /// For a report about one name (unknown, or never used): that name, so
    /// that it can be recognised as a consequence of an earlier error.
    pub about: Option<Involved>,
}

/// A name in [`Diagnostic::involves`] / [`Diagnostic::about`], with its role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Involved {
    /// The name is declared by the construct (unknown elsewhere if it breaks).
    Declares(String),
    /// The name is used by the construct (unused elsewhere if it breaks).
    Uses(String),
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, span, message)
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, span, message)
    }

    pub fn note(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self::new(Severity::Note, code, span, message)
    }

    fn new(severity: Severity, code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Self {
            code,
            severity,
            message: bounded(message.into()),
            span,
            label: String::new(),
            secondary: Vec::new(),
            help: String::new(),
            fixes: Vec::new(),
            involves: Vec::new(),
            about: None,
        }
    }

    #[must_use]
    pub fn label(mut self, text: impl Into<String>) -> Self {
        self.label = bounded(text.into());
        self
    }

    #[must_use]
    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help = bounded(text.into());
        self
    }

    /// A replacement for the primary span that the help proposes.
    #[must_use]
    pub fn fix(mut self, text: impl Into<String>) -> Self {
        // A fix for a 5 MB name would be as long: such a fix is left out
        // (the help still says what to do), so diagnostics stay bounded.
        let text = text.into();
        if text.len() > MAX_TEXT {
            return self;
        }
        self.fixes.push(text);
        self
    }

    /// This error stopped a construct from being read that declared `name`.
    #[must_use]
    pub fn declares(mut self, name: impl Into<String>) -> Self {
        self.involves.push(Involved::Declares(name.into()));
        self
    }

    /// This error stopped a construct from being read that used these names.
    #[must_use]
    pub fn uses<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.involves
            .extend(names.into_iter().map(|n| Involved::Uses(n.into())));
        self
    }

    /// This report says that `name` is unknown: it follows from an error
    /// whose broken construct declared `name`.
    #[must_use]
    pub fn about_unknown(mut self, name: impl Into<String>) -> Self {
        self.about = Some(Involved::Declares(name.into()));
        self
    }

    /// This report says that `name` is never used: it follows from an error
    /// whose broken construct used `name`.
    #[must_use]
    pub fn about_unused(mut self, name: impl Into<String>) -> Self {
        self.about = Some(Involved::Uses(name.into()));
        self
    }

    #[must_use]
    pub fn secondary(mut self, span: Span, text: impl Into<String>) -> Self {
        self.secondary.push((span, bounded(text.into())));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render for a person, with the source snippet. `color` picks ANSI styles.
    /// A snippet whose lines are too long to show (a minified file, a 5 MB
    /// name) is left out: the place is given as `file:line:column` instead.
    pub fn render(&self, sources: &SourceMap, color: bool, width: usize) -> String {
        if !snippet_fits(sources, self.span) {
            return self.render_place(sources, " (the line is too long to show)", None);
        }
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(width)
            .with_links(false);
        let report = Report::new(self, sources);
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            // Rendering into a String cannot fail for I/O reasons; fall back to the plain form.
            out = self.to_string();
        }
        out
    }

    /// As [`Diagnostic::render`], but no line wider than `width` columns
    /// (a terminal's): when the snippet's frame would be (a source line
    /// wider than the terminal), the place is given as `file:line:column`
    /// and the words are wrapped.
    pub fn render_within(&self, sources: &SourceMap, color: bool, width: usize) -> String {
        let text = self.render(sources, color, width);
        if text.lines().all(|l| visible_width(l) <= width) {
            return text;
        }
        self.render_place(sources, "", Some(width))
    }

    /// The diagnostic without a snippet: its place as `file:line:column`
    /// (followed by `note`), its label and help; wrapped at `wrap` columns.
    fn render_place(&self, sources: &SourceMap, note: &str, wrap: Option<usize>) -> String {
        let file = sources.get(self.span.file);
        let (line, column) = sources.line_col(self.span.file, self.span.start);
        let mut parts = vec![
            (
                format!("{}[{}]: ", self.severity, self.code),
                self.message.clone(),
            ),
            (
                "  --> ".to_string(),
                format!("{}:{line}:{column}{note}", file.name),
            ),
        ];
        if !self.label.is_empty() {
            parts.push(("  = ".to_string(), self.label.clone()));
        }
        if !self.help.is_empty() {
            parts.push(("  help: ".to_string(), self.help.clone()));
        }
        let mut out = String::new();
        for (first, rest) in parts {
            match wrap {
                None => {
                    let _ = writeln!(out, "{first}{rest}");
                }
                Some(width) => {
                    let opts = textwrap::Options::new(width.max(20))
                        .initial_indent(&first)
                        .subsequent_indent("    ");
                    for l in textwrap::wrap(&rest, opts) {
                        let _ = writeln!(out, "{l}");
                    }
                }
            }
        }
        out
    }

    /// The JSON shape promised to editors and CI by `topsail check --format json`.
    pub fn to_json(&self, sources: &SourceMap) -> serde_json::Value {
        let file = sources.get(self.span.file);
        let (line, column) = sources.line_col(self.span.file, self.span.start);
        let mut json = serde_json::json!({
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": file.name,
            "line": line,
            "column": column,
            "span": { "start": self.span.start, "end": self.span.end },
            "label": self.label,
            "help": self.help,
        });
        if !self.fixes.is_empty() {
            json["fixes"] = serde_json::json!(self.fixes);
        }
        json["related"] = serde_json::json!(
            self.secondary
                .iter()
                .map(|(span, text)| {
                    let (line, column) = sources.line_col(span.file, span.start);
                    serde_json::json!({
                        "file": sources.get(span.file).name,
                        "line": line,
                        "column": column,
                        "span": { "start": span.start, "end": span.end },
                        "message": text,
                    })
                })
                .collect::<Vec<_>>()
        );
        json
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)
    }
}

/// Sort by file, then position, then severity: the order people read them in.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.span.file, a.span.start, a.severity, a.span.end).cmp(&(
            b.span.file,
            b.span.start,
            b.severity,
            b.span.end,
        ))
    });
}

/// The longest quoted text (between backticks) a diagnostic repeats, and the
/// longest message, label or help line: a diagnostic about a 5 MB name says
/// how long the name is instead of echoing it.
const MAX_QUOTED: usize = 80;
const MAX_TEXT: usize = 1000;
/// The longest source line a snippet shows, and the longest span.
const MAX_SNIPPET_LINE: usize = 1000;
const MAX_SNIPPET_SPAN: usize = 20_000;

/// `text` with every backtick-quoted part longer than [`MAX_QUOTED`]
/// characters replaced by its length, and cut at [`MAX_TEXT`] characters.
fn bounded(text: String) -> String {
    if text.len() <= MAX_QUOTED {
        return text;
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let quoted = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        let chars = quoted.chars().count();
        // Only a name-like part (no spaces) is described: a quoted code
        // span in a help (`` ` ``, `<<EOF` ... `EOF`) pairs backticks
        // across prose, and that must stay as written. [`MAX_TEXT`] bounds
        // the rest.
        if chars > MAX_QUOTED && !quoted.contains(char::is_whitespace) {
            let _ = write!(
                out,
                "a name of {} characters",
                crate::source::read::group(chars as u64)
            );
        } else {
            out.push('`');
            out.push_str(quoted);
            out.push('`');
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    if out.chars().count() > MAX_TEXT {
        out = out.chars().take(MAX_TEXT).collect::<String>() + "…";
    }
    out
}

/// Whether the snippet of `span` (its lines and one on each side, as the
/// renderer shows them) is small enough to print.
/// Columns a rendered line takes on screen (ANSI escapes take none).
fn visible_width(line: &str) -> usize {
    let mut n = 0;
    let mut escape = false;
    for c in line.chars() {
        match (escape, c) {
            (false, '\x1b') => escape = true,
            (true, c) if c.is_ascii_alphabetic() => escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

fn snippet_fits(sources: &SourceMap, span: Span) -> bool {
    let text = &sources.get(span.file).text;
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    if end - start > MAX_SNIPPET_SPAN {
        return false;
    }
    let bytes = text.as_bytes();
    // From the start of the line before to the end of the line after.
    let mut from = bytes[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap_or(0);
    from = bytes[..from]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let mut to = bytes[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| end + i);
    if to < bytes.len() {
        to = bytes[to + 1..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| to + 1 + i);
    }
    bytes[from..to]
        .split(|&b| b == b'\n')
        .all(|line| line.len() <= MAX_SNIPPET_LINE)
}

/// Drop every report that follows from an error: one whose [`Diagnostic::about`]
/// is among the names an error [`Diagnostic::involves`]. One mistake, one
/// diagnostic.
pub fn drop_consequences(diags: &mut Vec<Diagnostic>) {
    let involved: std::collections::HashSet<Involved> = diags
        .iter()
        .filter(|d| d.is_error())
        .flat_map(|d| d.involves.iter().cloned())
        .collect();
    if involved.is_empty() {
        return;
    }
    diags.retain(|d| d.about.as_ref().is_none_or(|a| !involved.contains(a)));
}

pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// Adapter that lets miette render a [`Diagnostic`] against its source text.
struct Report<'a> {
    diag: &'a Diagnostic,
    source: NamedSource<String>,
    labels: Vec<LabeledSpan>,
    related: Vec<Related>,
}

impl<'a> Report<'a> {
    fn new(diag: &'a Diagnostic, sources: &SourceMap) -> Self {
        let file = sources.get(diag.span.file);
        let source = NamedSource::new(file.name.clone(), file.text.clone());
        let clamp = |span: Span| -> SourceSpan {
            let len = file.text.len();
            let start = span.start.min(len);
            let end = span.end.clamp(start, len);
            SourceSpan::new(start.into(), end - start)
        };
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            (!diag.label.is_empty()).then(|| diag.label.clone()),
            clamp(diag.span),
        )];
        let mut related = Vec::new();
        for (span, text) in &diag.secondary {
            if span.file == diag.span.file {
                labels.push(LabeledSpan::new_with_span(Some(text.clone()), clamp(*span)));
            } else {
                let other = sources.get(span.file);
                let (line, col) = sources.line_col(span.file, span.start);
                related.push(Related(format!("{text} ({}:{line}:{col})", other.name)));
            }
        }
        Self {
            diag,
            source,
            labels,
            related,
        }
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        (!self.diag.help.is_empty()).then(|| Box::new(&self.diag.help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }

    fn related<'b>(&'b self) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }
}

#[derive(Debug)]
struct Related(String);

impl fmt::Display for Related {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Related {}

impl miette::Diagnostic for Related {
    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Advice)
    }
}

/// "did you mean" support: the closest candidate within a small edit distance.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (levenshtein(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_rendered_within_a_width_never_exceeds_it() {
        let mut sources = SourceMap::new();
        let text = format!(
            "a-step-with-a-long-name: {}\n    run true\n",
            "b ".repeat(40)
        );
        let file = sources.add("p.topsail", None, text, crate::source::Format::Topsail);
        let d = Diagnostic::error(
            codes::STEP_FAILED,
            Span::new(file, 0, 23),
            "step `a-step-with-a-long-name` failed",
        )
        .label("this step")
        .help("its whole output: `topsail logs RUN a-step-with-a-long-name`");
        // Wide enough: the usual snippet.
        let wide = d.render_within(&sources, false, 200);
        assert!(wide.contains("╭─[p.topsail:1:1]"), "{wide}");
        // Narrower than the source line: the place, the words wrapped.
        let narrow = d.render_within(&sources, true, 40);
        assert!(narrow.lines().all(|l| visible_width(l) <= 40), "{narrow}");
        assert!(narrow.contains("--> p.topsail:1:1"), "{narrow}");
        assert!(narrow.contains("topsail::step-failed"), "{narrow}");
        assert!(narrow.contains("help: "), "{narrow}");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(suggest("biuld", ["build", "test", "lint"]), Some("build"));
        assert_eq!(suggest("deploy", ["build", "test"]), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}
