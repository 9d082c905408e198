//! The `.topsail` front end: text -> [`ast::Module`] with a byte span on every
//! node, and every syntax problem of the file as a diagnostic.
//!
//! Layout is handled here, line by line: the file is cut into top-level items
//! (an item starts at a code line in column 0), a step or template body into
//! directive lines, and a `run:` into its indented block. Each line is then
//! parsed with one rule of the pest grammar (`grammar/topsail.pest`), chosen
//! by its first word. Working per line keeps one bad line from hiding the
//! errors of the others, lets an unknown keyword get a "did you mean", and
//! keeps the whole parse linear in the size of the file.
//!
//! Only syntax is reported here; names, types and the DAG are the checker's.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::text;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Comment, Directive, DirectiveKind, Expr, ExprKind, Ident};
use crate::syntax::interp;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/topsail.pest"]
struct Grammar;

/// Words that start a top-level declaration.
const DECLARATIONS: &[&str] = &[
    "pipeline", "param", "secret", "image", "env", "import", "template",
];

/// Words that start a step directive.
const DIRECTIVES: &[&str] = &[
    "image",
    "run",
    "shell",
    "env",
    "workdir",
    "output",
    "secret",
    "timeout",
    "heartbeat",
    "retry",
    "when",
    "foreach",
    "approval",
    "catch",
    "use",
];

/// Deeper nesting than this in one line is refused before pest sees it, so
/// that neither pest's recursion nor the drop of a deep `Expr` can overflow
/// the stack.
const MAX_NESTING: usize = 64;

/// More binary operators (`&&`, `||`, `==`, `!=`) than this in one `when`
/// are refused before pest sees them: a chain builds an `Expr` as deep as it
/// is long, and the checker, the evaluator and the ASL compiler all recurse
/// over it.
const MAX_OPERATORS: usize = 256;

/// Parse one `.topsail` file. The module is always returned, holding every
/// item that parsed (a step with a bad directive keeps its other directives);
/// the diagnostics are every syntax problem found, in file order.
pub fn parse(sources: &SourceMap, file: FileId) -> (Option<ast::Module>, Vec<Diagnostic>) {
    let text = sources.get(file).text.as_str();
    let mut parser = FileParser::new(text, file);
    let module = parser.module();
    let mut diags = parser.diags;
    crate::diagnostics::sort(&mut diags);
    (Some(module), diags)
}

/// Parse a `when` expression on its own. The YAML front end calls this for
/// `when:` strings; spans are `offset` plus the position in `text`.
#[allow(
    clippy::result_large_err,
    reason = "one diagnostic, on an error path; the signature the YAML front end calls"
)]
pub fn parse_expr(text: &str, file: FileId, offset: usize) -> Result<Expr, Diagnostic> {
    let mut diags = Vec::new();
    let mut comments = Vec::new();
    if let Some(at) = too_deep(text) {
        return Err(nesting_error(file, offset + at));
    }
    if let Some(at) = too_many_operators(text) {
        return Err(operators_error(file, offset + at));
    }
    let pairs = match Grammar::parse(Rule::expr_only, text) {
        Ok(pairs) => pairs,
        Err(err) => {
            return Err(syntax_error(
                &err,
                text,
                file,
                offset,
                "the end of the expression",
                "write an expression like `!dry_run && region == \"eu-west-1\"`",
            ));
        }
    };
    let mut build = Build {
        file,
        base: offset,
        diags: &mut diags,
        comments: &mut comments,
    };
    let expr = pairs
        .flatten()
        .find(|p| p.as_rule() == Rule::or_expr)
        .map(|p| build.expr(p));
    match (expr, diags.into_iter().next()) {
        (_, Some(diag)) => Err(diag),
        (Some(expr), None) => Ok(expr),
        (None, None) => Err(Diagnostic::error(
            codes::SYNTAX,
            Span::new(file, offset, offset + text.len()),
            "expected an expression",
        )
        .label("no expression here")
        .help("write an expression like `!dry_run && region == \"eu-west-1\"`")),
    }
}

// ------------------------------------------------------------------ lines

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blank,
    Comment,
    Code,
}

/// One source line. `end` excludes the line break (and a `\r` before it).
#[derive(Clone, Copy)]
struct Line {
    start: usize,
    end: usize,
    /// Bytes of leading spaces and tabs.
    ws: usize,
    /// Leading spaces before the first other character (tab included).
    spaces: usize,
    /// Columns of the leading whitespace, a tab counting as 4, so that layout
    /// can still be followed after a tab was reported.
    width: usize,
    /// Absolute offset of the first tab in the leading whitespace.
    tab: Option<usize>,
    kind: Kind,
}

fn scan_lines(text: &str) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(text.len() / 24 + 1);
    let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    loop {
        let (content_end, next) = match text[start..].find('\n') {
            Some(p) => (start + p, Some(start + p + 1)),
            None => (text.len(), None),
        };
        let end = if content_end > start && bytes[content_end - 1] == b'\r' {
            content_end - 1
        } else {
            content_end
        };
        let mut ws = 0;
        let mut width = 0;
        let mut tab = None;
        let mut spaces = None;
        while start + ws < end {
            match bytes[start + ws] {
                b' ' => width += 1,
                b'\t' => {
                    tab.get_or_insert(start + ws);
                    spaces.get_or_insert(ws);
                    width = (width / 4 + 1) * 4;
                }
                _ => break,
            }
            ws += 1;
        }
        let kind = if start + ws == end {
            Kind::Blank
        } else if bytes[start + ws] == b'#' {
            Kind::Comment
        } else {
            Kind::Code
        };
        lines.push(Line {
            start,
            end,
            ws,
            spaces: spaces.unwrap_or(ws),
            width,
            tab,
            kind,
        });
        match next {
            Some(n) => start = n,
            None => break,
        }
    }
    lines
}

/// The leading `[A-Za-z0-9_-]*` of a line: its keyword or step name.
fn leading_word(s: &str) -> &str {
    let n = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        .count();
    &s[..n]
}

/// What a step, param, output or loop variable name may hold.
pub const NAME_PATTERN: &str = "[A-Za-z_][A-Za-z0-9_-]*";

/// `text` made into a name: other characters become `_`, and a `_` goes in
/// front when it does not start with a letter or `_`.
pub fn valid_name(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        out.insert(0, '_');
    }
    out
}

/// The names a line mentions: words outside strings, and the first part of
/// each `{{ }}` hole (in a string or not). Comments are left out.
pub(crate) fn mentioned_names(line: &str) -> Vec<&str> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut in_string, mut in_hole) = (0, false, false);
    while i < bytes.len() {
        let c = bytes[i];
        if bytes[i..].starts_with(b"{{") {
            in_hole = true;
            i += 2;
            continue;
        }
        if in_hole && bytes[i..].starts_with(b"}}") {
            in_hole = false;
            i += 2;
            continue;
        }
        if !in_hole {
            match c {
                b'\\' if in_string => {
                    i += 2;
                    continue;
                }
                b'"' => in_string = !in_string,
                b'#' if !in_string => break,
                _ => {}
            }
        }
        if (c.is_ascii_alphabetic() || c == b'_') && (in_hole || !in_string) {
            // `c` is ASCII, so `i` is a char boundary.
            let word = leading_word(&line[i..]);
            let after_dot = i > 0 && bytes[i - 1] == b'.';
            if !after_dot {
                out.push(word);
            }
            i += word.len();
            continue;
        }
        i += 1;
    }
    out
}

/// Mark a syntax error on a line with what the line would have declared and
/// used, so that the checker's reports that only follow from it (an unknown
/// step the line would have declared, a param it would have used) are dropped.
fn involve_line(diag: Diagnostic, rule: Rule, content: &str) -> Diagnostic {
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

// ------------------------------------------------------------------ file structure

struct FileParser<'t> {
    text: &'t str,
    file: FileId,
    lines: Vec<Line>,
    diags: Vec<Diagnostic>,
    comments: Vec<Comment>,
    /// One tab diagnostic per item is enough to point the way.
    tab_reported: bool,
}

impl<'t> FileParser<'t> {
    fn new(text: &'t str, file: FileId) -> Self {
        Self {
            text,
            file,
            lines: scan_lines(text),
            diags: Vec::new(),
            comments: Vec::new(),
            tab_reported: false,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn build(&mut self, base: usize) -> Build<'_> {
        Build {
            file: self.file,
            base,
            diags: &mut self.diags,
            comments: &mut self.comments,
        }
    }

    fn module(&mut self) -> ast::Module {
        let mut items = Vec::new();
        let n = self.lines.len();
        let mut i = 0;
        while i < n {
            let line = self.lines[i];
            match line.kind {
                Kind::Blank => i += 1,
                Kind::Comment => {
                    self.own_comment(line);
                    i += 1;
                }
                Kind::Code if line.ws == 0 => {
                    let mut j = i + 1;
                    while j < n && !(self.lines[j].kind == Kind::Code && self.lines[j].ws == 0) {
                        j += 1;
                    }
                    self.tab_reported = false;
                    if let Some(item) = self.item(i, j) {
                        items.push(item);
                    }
                    i = j;
                }
                Kind::Code => {
                    // Indented code before the first item belongs to nothing.
                    let first = line;
                    while i < n
                        && (self.lines[i].kind == Kind::Blank
                            || self.lines[i].kind == Kind::Code && self.lines[i].ws > 0)
                    {
                        i += 1;
                    }
                    self.diags.push(
                        Diagnostic::error(
                            codes::BAD_INDENT,
                            self.span(first.start, first.start + first.ws),
                            "indented line outside of any step",
                        )
                        .label("this line is indented, but no step or template is open")
                        .help("start declarations and step headers in column 0; only their bodies are indented"),
                    );
                }
            }
        }
        self.comments.sort_by_key(|c| c.span.start);
        ast::Module {
            items,
            comments: std::mem::take(&mut self.comments),
            span: self.span(0, self.text.len()),
        }
    }

    fn own_comment(&mut self, line: Line) {
        let hash = line.start + line.ws;
        let rest = &self.text[line.end..];
        let blank_after = rest
            .strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .and_then(|r| r.split_once('\n'))
            .is_some_and(|(next, _)| next.trim().is_empty());
        self.comments.push(Comment {
            text: self.text[hash + 1..line.end].trim_end().to_string(),
            span: self.span(hash, line.end),
            own_line: true,
            blank_after,
        });
    }

    /// The item whose header is line `i` and whose other lines run to `j`.
    fn item(&mut self, i: usize, j: usize) -> Option<ast::Item> {
        let line = self.lines[i];
        let text = self.text;
        let content = &text[line.start..line.end];
        let word = leading_word(content);
        let after = content[word.len()..].trim_start_matches([' ', '\t']);
        if !word.is_empty() && after.starts_with(':') {
            return self.step(i, j);
        }
        let (rule, usage) = match word {
            "template" => return self.template(i, j),
            "pipeline" => (Rule::pipeline_line, "`pipeline NAME`"),
            "param" => (Rule::param_line, "`param NAME[: TYPE] [= DEFAULT]`"),
            "secret" => (Rule::secret_line, "`secret NAME`"),
            "image" => (Rule::image_line, "`image \"REF\"`"),
            "env" => (Rule::env_line, "`env NAME = VALUE`"),
            "import" => (Rule::import_line, "`import \"std/MOD\" [as NAME]`"),
            _ => {
                self.unknown_top_level(line, word);
                let header_error = self.diags.len() - 1;
                // Most likely a step whose `:` is missing: still look for
                // errors in its body.
                let _ = self.body(i + 1, j);
                self.involve_body(header_error, i + 1, j);
                return None;
            }
        };
        let item = self
            .parse_line(rule, line.start, content, usage)
            .map(|pair| {
                let mut b = self.build(line.start);
                b.declaration(pair)
            });
        self.stray_body(i + 1, j, word);
        item
    }

    /// The names the discarded body `from..to` of a broken header uses
    /// belong to the header's error: they are not unused.
    fn involve_body(&mut self, error: usize, from: usize, to: usize) {
        let text = self.text;
        let names: Vec<&str> = self.lines[from..to]
            .iter()
            .filter(|l| l.kind == Kind::Code)
            .flat_map(|l| mentioned_names(&text[l.start..l.end]))
            .collect();
        if let Some(d) = self.diags.get_mut(error) {
            d.involves.extend(
                names
                    .into_iter()
                    .map(|n| crate::diagnostics::Involved::Uses(n.to_string())),
            );
        }
    }

    fn unknown_top_level(&mut self, line: Line, word: &str) {
        let start = line.start;
        let content = &self.text[line.start..line.end];
        let uses = mentioned_names(content);
        // `liblua.a:` or `.PHONY:`: a header whose name holds other characters.
        let head = content
            .split_once(':')
            .map(|(h, _)| h.trim_end_matches([' ', '\t']))
            .filter(|h| {
                !h.is_empty()
                    && !h.contains([' ', '\t', '"', '#', '{', '}', '(', ')', '='])
                    && !DECLARATIONS.contains(h)
                    && !text::is_name(h)
            });
        if let Some(head) = head {
            let fixed = valid_name(head);
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    self.span(start, start + head.len()),
                    format!("`{head}` is not a valid step name"),
                )
                .label(format!("a name matches `{NAME_PATTERN}`"))
                .help(format!(
                    "a name holds letters, digits, `_` and `-`, and starts with a letter or `_`: \
                     write `{fixed}:`, say (a make target that is a file becomes a step that writes it)"
                ))
                .fix(fixed)
                .declares(head)
                .uses(uses),
            );
            return;
        }
        let diag = if word.is_empty() {
            let found = found_text(content, 0, "the end of the line");
            Diagnostic::error(
                codes::SYNTAX,
                self.span(start, start + first_char_len(content, 0)),
                format!("expected a declaration or a step header, found {found}"),
            )
            .label("expected a declaration or a step name here")
            .help(
                "a step header is `NAME: NEEDED-STEP ...`; declarations start with \
                 pipeline, param, secret, image, env, import or template",
            )
        } else if let Some(best) = suggest(word, DECLARATIONS.iter().copied()) {
            Diagnostic::error(
                codes::SYNTAX,
                self.span(start, start + word.len()),
                format!("unknown declaration `{word}`"),
            )
            .label("not a declaration")
            .help(format!("did you mean `{best}`?"))
        } else if DIRECTIVES.contains(&word) {
            Diagnostic::error(
                codes::SYNTAX,
                self.span(start, start + word.len()),
                format!("`{word}` is a step directive, but it is not inside a step"),
            )
            .label("directive in column 0")
            .help("indent it under a step header (4 spaces), or add a step header above it")
        } else {
            let at = start + word.len();
            Diagnostic::error(
                codes::SYNTAX,
                self.span(at, at + first_char_len(content, word.len())),
                format!("expected `:` after the step name `{word}`"),
            )
            .label("expected `:` here")
            .help(
                "a step header is `NAME: NEEDED-STEP ...`; declarations start with \
                 pipeline, param, secret, image, env, import or template",
            )
            .declares(word)
        };
        self.diags.push(diag.uses(uses));
    }

    /// Lines after a declaration that takes no body: comments are kept, any
    /// code line is an indentation error (reported once).
    fn stray_body(&mut self, from: usize, to: usize, word: &str) {
        let mut reported = false;
        for k in from..to {
            let line = self.lines[k];
            match line.kind {
                Kind::Blank => {}
                Kind::Comment => self.own_comment(line),
                Kind::Code if !reported => {
                    reported = true;
                    self.diags.push(
                        Diagnostic::error(
                            codes::BAD_INDENT,
                            self.span(line.start, line.start + line.ws),
                            format!("unexpected indented line after `{word}`"),
                        )
                        .label("this line is indented")
                        .help(
                            "only steps and templates have an indented body; \
                             start this line in column 0, or add a step header above it",
                        ),
                    );
                }
                Kind::Code => {}
            }
        }
    }

    fn step(&mut self, i: usize, j: usize) -> Option<ast::Item> {
        let line = self.lines[i];
        let content = &self.text[line.start..line.end];
        let errors = self.diags.len();
        let header = self.step_header(line.start, content);
        let header_error = (header.is_none() && self.diags.len() > errors).then_some(errors);
        let body = self.body(i + 1, j);
        if let Some(e) = header_error {
            self.involve_body(e, i + 1, j);
        }
        let (name, needs, header_end) = header?;
        let end = body
            .last()
            .map_or(header_end, |d| d.span.end.max(header_end));
        Some(ast::Item::Step(ast::Step {
            name,
            needs,
            body,
            span: self.span(line.start, end),
        }))
    }

    /// A step header: name, needs, and where its code ends.
    fn step_header(&mut self, base: usize, content: &'t str) -> Option<(Ident, Vec<Ident>, usize)> {
        if let Some(quick) = quick_header(self.file, base, content) {
            return Some(quick);
        }
        self.parse_line(Rule::step_line, base, content, "`NAME: NEEDED-STEP ...`")
            .map(|pair| {
                let mut b = self.build(base);
                let (parts, end) = b.parts(pair);
                let mut parts = parts.into_iter();
                let name = b.ident(parts.next().expect("a step line starts with its name"));
                let needs = parts.map(|p| b.ident(p)).collect::<Vec<_>>();
                (name, needs, end)
            })
    }

    /// A directive line other than `run`: kind and where its code ends.
    fn directive_line(
        &mut self,
        rule: Rule,
        base: usize,
        content: &'t str,
        usage: &str,
    ) -> Option<(DirectiveKind, usize)> {
        let word = leading_word(content);
        if let Some(quick) = self.build(base).quick_directive(word, content) {
            return Some(quick);
        }
        self.parse_line(rule, base, content, usage)
            .map(|pair| self.build(base).directive(pair))
    }

    fn template(&mut self, i: usize, j: usize) -> Option<ast::Item> {
        let line = self.lines[i];
        let content = &self.text[line.start..line.end];
        let header = self
            .parse_line(
                Rule::template_line,
                line.start,
                content,
                "`template NAME(PARAM, PARAM = DEFAULT, ...):`",
            )
            .map(|pair| {
                let mut b = self.build(line.start);
                let (parts, end) = b.parts(pair);
                let mut parts = parts.into_iter();
                let name = b.ident(parts.next().expect("a template line starts with its name"));
                let params = parts.map(|p| b.param(p)).collect::<Vec<_>>();
                (name, params, end)
            });
        let body = self.body(i + 1, j);
        let (name, params, header_end) = header?;
        let end = body
            .last()
            .map_or(header_end, |d| d.span.end.max(header_end));
        Some(ast::Item::Template(ast::Template {
            name,
            params,
            body,
            span: self.span(line.start, end),
        }))
    }

    fn report_tab(&mut self, at: usize) {
        if !self.tab_reported {
            self.tab_reported = true;
            self.diags.push(
                Diagnostic::error(
                    codes::TAB_INDENT,
                    self.span(at, at + 1),
                    "tab in indentation",
                )
                .label("this is a tab")
                .help("indent with spaces (4 per level is the convention)"),
            );
        }
    }

    /// The directives of a step or template body: lines `from..to`.
    fn body(&mut self, from: usize, to: usize) -> Vec<Directive> {
        let mut out = Vec::new();
        // The width of the body's first directive, and where it stands.
        let mut indent: Option<(usize, Line)> = None;
        let mut after_run_text = false;
        let mut k = from;
        while k < to {
            let line = self.lines[k];
            match line.kind {
                Kind::Blank => {
                    k += 1;
                    continue;
                }
                Kind::Comment => {
                    self.own_comment(line);
                    k += 1;
                    continue;
                }
                Kind::Code => {}
            }
            if line.tab.is_some()
                && !DIRECTIVES.contains(&leading_word(&self.text[line.start + line.ws..line.end]))
            {
                k = self.recipe(k, to);
                continue;
            }
            if let Some(tab) = line.tab {
                self.report_tab(tab);
            }
            let (width, first) = *indent.get_or_insert((line.width, line));
            if line.width > width {
                // Skip the whole deeper run of lines: one diagnostic for it.
                let skipped = k;
                k += 1;
                while k < to
                    && (self.lines[k].kind == Kind::Blank
                        || self.lines[k].kind == Kind::Code && self.lines[k].width > width)
                {
                    k += 1;
                }
                let help = if after_run_text {
                    "to give `run` several lines, write `run:` and indent the script below it"
                } else {
                    "indent every directive of a body by the same number of spaces; \
                     only the lines of a `run:` block go deeper"
                };
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_INDENT,
                        self.span(line.start, line.start + line.ws),
                        "unexpected indentation",
                    )
                    .label(format!(
                        "indented deeper than the directives above ({width} columns)"
                    ))
                    .help(help),
                );
                // The skipped lines are not read: the names they use are not unused.
                self.involve_body(self.diags.len() - 1, skipped, k);
                continue;
            }
            if line.width < width {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_INDENT,
                        self.span(line.start, line.start + line.ws),
                        "inconsistent indentation",
                    )
                    .label(format!("{} columns here", line.width))
                    .secondary(
                        self.span(first.start, first.start + first.ws),
                        format!("the body is indented {width} columns here"),
                    )
                    .help("indent every directive of a body by the same number of spaces"),
                );
            }
            let (directive, next, run_text) = self.directive(k, to);
            after_run_text = run_text;
            out.extend(directive);
            k = next;
        }
        out
    }

    /// Tab-indented commands that are not directives, from line `k` on: a
    /// Makefile recipe. One error for the whole block, showing it under
    /// `run:`, instead of a tab error and an unknown directive per line.
    /// Returns the line after the block.
    fn recipe(&mut self, k: usize, to: usize) -> usize {
        let text = self.text;
        let first = self.lines[k];
        let mut last = first;
        let mut m = k;
        let mut commands = Vec::new();
        while m < to {
            let line = self.lines[m];
            match line.kind {
                Kind::Blank => {}
                Kind::Comment | Kind::Code if line.tab.is_some() => {
                    commands.push(text[line.start + line.ws..line.end].trim_end());
                    last = line;
                }
                _ => break,
            }
            m += 1;
        }
        let mut fixed = String::from("    run:");
        for c in &commands {
            fixed.push_str("\n        ");
            fixed.push_str(c);
        }
        let uses: Vec<&str> = commands.iter().flat_map(|c| mentioned_names(c)).collect();
        self.tab_reported = true;
        self.diags.push(
            Diagnostic::error(
                codes::TAB_INDENT,
                self.span(first.start, last.end),
                "this body is a Makefile-style recipe: commands indented with tabs",
            )
            .label("tab-indented commands, not directives")
            .help(format!(
                "indent with spaces, and put the commands under `run:`:\n{fixed}"
            ))
            .fix(fixed)
            .uses(uses),
        );
        m
    }

    /// Parse the directive on line `k`; returns it (if it parsed), the next
    /// line to look at (after a `run:` block), and whether it was `run TEXT`.
    fn directive(&mut self, k: usize, to: usize) -> (Option<Directive>, usize, bool) {
        let line = self.lines[k];
        let text = self.text;
        let cstart = line.start + line.ws;
        let content = &text[cstart..line.end];
        let word = leading_word(content);
        let keyword_span = self.span(cstart, cstart + word.len());
        let (rule, usage) = match word {
            "run" => return self.run(k, to, keyword_span),
            "image" => (Rule::image_line, "`image \"REF\"`"),
            "shell" => (Rule::shell_line, "`shell \"bash\"`"),
            "env" => (Rule::env_line, "`env NAME = VALUE`"),
            "workdir" => (Rule::workdir_line, "`workdir \"/path\"`"),
            "output" => (Rule::output_line, "`output NAME`"),
            "secret" => (Rule::secret_line, "`secret NAME`"),
            "timeout" => (Rule::timeout_line, "`timeout DURATION` (like `20m`)"),
            "heartbeat" => (Rule::heartbeat_line, "`heartbeat DURATION` (like `60s`)"),
            "retry" => (
                Rule::retry_line,
                "`retry N [every DURATION] [backoff FACTOR]`",
            ),
            "when" => (
                Rule::when_line,
                "`when EXPR` (like `!dry_run && region == \"eu-west-1\"`)",
            ),
            "foreach" => (
                Rule::foreach_line,
                "`foreach VAR in [\"a\", \"b\"]` or `foreach VAR in LIST_PARAM`",
            ),
            "approval" => (Rule::approval_line, "`approval \"MESSAGE\"`"),
            "catch" => (Rule::catch_line, "`catch STEP`"),
            "use" => (Rule::use_line, "`use TEMPLATE(ARG = VALUE, ...)`"),
            _ => {
                self.unknown_directive(cstart, content, word);
                return (None, k + 1, false);
            }
        };
        let directive = self
            .directive_line(rule, cstart, content, usage)
            .map(|(kind, end)| Directive {
                kind,
                span: Span::new(self.file, cstart, end),
                keyword_span,
            });
        (directive, k + 1, false)
    }

    fn unknown_directive(&mut self, cstart: usize, content: &str, word: &str) {
        let diag = if word.is_empty() {
            let found = found_text(content, 0, "the end of the line");
            Diagnostic::error(
                codes::SYNTAX,
                self.span(cstart, cstart + first_char_len(content, 0)),
                format!("expected a directive, found {found}"),
            )
            .label("expected a directive here")
            .help(format!("the directives are {}", DIRECTIVES.join(", ")))
        } else {
            let span = self.span(cstart, cstart + word.len());
            let is_header = content[word.len()..]
                .trim_start_matches([' ', '\t'])
                .starts_with(':');
            let help = if let Some(best) = suggest(word, DIRECTIVES.iter().copied()) {
                format!("did you mean `{best}`?")
            } else if is_header {
                "a step header must start in column 0".to_string()
            } else {
                format!("the directives are {}", DIRECTIVES.join(", "))
            };
            Diagnostic::error(codes::SYNTAX, span, format!("unknown directive `{word}`"))
                .label("not a directive")
                .help(help)
        };
        self.diags.push(diag);
    }

    /// `run TEXT` or `run:` plus the block below it.
    fn run(&mut self, k: usize, to: usize, keyword_span: Span) -> (Option<Directive>, usize, bool) {
        let line = self.lines[k];
        let text = self.text;
        let cstart = line.start + line.ws;
        let content = &text[cstart..line.end];
        let rest = content[3..].trim_start_matches([' ', '\t']);
        if let Some(after) = rest.strip_prefix(':') {
            let after = after.trim_start_matches([' ', '\t']);
            if !after.is_empty() && !after.starts_with('#') {
                let at = line.end - after.len();
                self.diags.push(
                    Diagnostic::error(
                        codes::SYNTAX,
                        self.span(at, line.end),
                        "`run:` starts a block: the script goes on the lines below it",
                    )
                    .label("script text after `run:`")
                    .help("write `run COMMAND` on one line (no `:`), or move this to an indented line below `run:`"),
                );
                return (None, k + 1, false);
            }
        }
        // Fast path (see `quick_header`): `run:` alone, or `run ` + text.
        let text_start = if rest.trim_end_matches([' ', '\t']) == ":" {
            None
        } else if content
            .as_bytes()
            .get(3)
            .is_some_and(|c| *c == b' ' || *c == b'\t')
            && !rest.is_empty()
            && !rest.starts_with(':')
        {
            Some(line.end - rest.len())
        } else {
            let usage = "`run COMMAND`, or `run:` followed by an indented block";
            let pair = self.parse_line(Rule::run_line, cstart, content, usage);
            let mut b = self.build(cstart);
            let Some(first) = pair.and_then(|pair| b.parts(pair).0.into_iter().next()) else {
                return (None, k + 1, false);
            };
            (first.as_rule() == Rule::run_text).then(|| cstart + first.as_span().start())
        };
        if let Some(start) = text_start {
            let script = self.text[start..line.end].trim_end_matches([' ', '\t']);
            let (interp, diags) = interp::split_contiguous(script, self.file, start);
            self.diags.extend(diags);
            let directive = Directive {
                kind: DirectiveKind::Run(interp),
                span: self.span(cstart, start + script.len()),
                keyword_span,
            };
            return (Some(directive), k + 1, true);
        }
        self.run_block(k, to, keyword_span)
    }

    fn run_block(
        &mut self,
        k: usize,
        to: usize,
        keyword_span: Span,
    ) -> (Option<Directive>, usize, bool) {
        let dir = self.lines[k];
        let mut last = None;
        let mut m = k + 1;
        while m < to {
            let line = self.lines[m];
            if line.kind != Kind::Blank {
                if line.width <= dir.width {
                    break;
                }
                last = Some(m);
            }
            m += 1;
        }
        let Some(last) = last else {
            self.diags.push(
                Diagnostic::error(
                    codes::SYNTAX,
                    self.span(keyword_span.start, dir.end),
                    "`run:` has no script below it",
                )
                .label("expected an indented block after this")
                .help("indent the script's lines deeper than `run:`, or write `run COMMAND` on one line"),
            );
            return (None, k + 1, false);
        };
        let block = k + 1..=last;
        // A tab among the columns that must be deeper than `run` is layout,
        // not script text.
        let mut common = usize::MAX;
        for m in block.clone() {
            let line = self.lines[m];
            if line.kind == Kind::Blank {
                continue;
            }
            match line.tab {
                Some(tab) if tab - line.start <= dir.width => self.report_tab(tab),
                _ => common = common.min(line.spaces),
            }
        }
        if common == usize::MAX {
            common = 0;
        }
        let mut script = String::new();
        // (offset in `script`, offset in the file) where each line starts.
        let mut segments: Vec<(usize, usize)> = Vec::with_capacity(last - k);
        for m in block {
            let line = self.lines[m];
            if m > k + 1 {
                script.push('\n');
            }
            let from = if line.kind == Kind::Blank {
                line.end
            } else {
                line.start + line.spaces.min(common)
            };
            segments.push((script.len(), from));
            script.push_str(&self.text[from..line.end]);
        }
        let first = segments.first().map_or(dir.end, |s| s.1);
        let end = self.lines[last].end;
        let map = |i: usize| {
            let at = segments.partition_point(|s| s.0 <= i).saturating_sub(1);
            segments.get(at).map_or(end, |(d, s)| s + (i - d))
        };
        let whole = self.span(first, end);
        let (interp, diags) = interp::split(&script, self.file, whole, &map);
        self.diags.extend(diags);
        let directive = Directive {
            kind: DirectiveKind::Run(interp),
            span: self.span(keyword_span.start, end),
            keyword_span,
        };
        (Some(directive), last + 1, false)
    }

    /// Parse `content` (which starts at file offset `base`) with `rule`;
    /// on failure report what was expected and return `None`.
    fn parse_line(
        &mut self,
        rule: Rule,
        base: usize,
        content: &'t str,
        usage: &str,
    ) -> Option<Pair<'t, Rule>> {
        if rule != Rule::run_line
            && let Some(at) = too_deep(content)
        {
            self.diags.push(nesting_error(self.file, base + at));
            return None;
        }
        if rule == Rule::when_line
            && let Some(at) = too_many_operators(content)
        {
            self.diags.push(operators_error(self.file, base + at));
            return None;
        }
        match Grammar::parse(rule, content) {
            Ok(mut pairs) => pairs.next(),
            Err(err) => {
                let help = format!("write it as {usage}");
                let mut diag =
                    syntax_error(&err, content, self.file, base, "the end of the line", &help);
                // `image: "x"` is the YAML habit; say so.
                let word = leading_word(content);
                let after = content[word.len()..].trim_start_matches([' ', '\t']);
                let colon_at = base + content.len() - after.len();
                if rule != Rule::step_line && after.starts_with(':') && diag.span.start == colon_at
                {
                    diag.help = format!(
                        "write `{word} ...` without the `:` (only `run:` opens a block; the `key: value` form is YAML)"
                    );
                }
                self.diags.push(involve_line(diag, rule, content));
                None
            }
        }
    }
}

// ------------------------------------------------------------------ fast paths
//
// Pest spends about a microsecond per line here, most of it in per-combinator
// bookkeeping, which is too slow for files of 100,000 steps. The most common
// line shapes (a step header, `output NAME`, `image "plain"`, `run:`) are
// therefore recognised by hand first. A fast path only accepts a line it
// understands completely and builds exactly what the grammar would (a test
// checks this); anything else, including every error, goes to pest.

/// Length of the name (`[A-Za-z_][A-Za-z0-9_-]*`) at the start of `b`.
fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
            1 + b[1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                .count()
        }
        _ => 0,
    }
}

fn skip_spaces(b: &[u8], mut i: usize) -> usize {
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// `NAME: NEED NEED ...` with single spaces or more, nothing else.
fn quick_header(file: FileId, base: usize, content: &str) -> Option<(Ident, Vec<Ident>, usize)> {
    let b = content.as_bytes();
    let n = name_len(b);
    if n == 0 || b.get(n) != Some(&b':') {
        return None;
    }
    let ident = |from: usize, to: usize| Ident {
        name: content[from..to].to_string(),
        span: Span::new(file, base + from, base + to),
    };
    let name = ident(0, n);
    let mut end = n + 1;
    let mut needs = Vec::new();
    let mut i = skip_spaces(b, end);
    while i < b.len() {
        if i == end {
            return None;
        }
        let m = name_len(&b[i..]);
        if m == 0 {
            return None;
        }
        needs.push(ident(i, i + m));
        end = i + m;
        i = skip_spaces(b, end);
    }
    Some((name, needs, base + end))
}

impl Build<'_> {
    /// `output NAME`, `secret NAME`, `catch NAME`, or `image`, `shell`,
    /// `workdir`, `approval` with a string free of escapes.
    fn quick_directive(&mut self, word: &str, content: &str) -> Option<(DirectiveKind, usize)> {
        let b = content.as_bytes();
        let from = skip_spaces(b, word.len());
        if from == word.len() {
            return None;
        }
        let (kind, end) = match word {
            "output" | "secret" | "catch" => {
                let n = name_len(&b[from..]);
                if n == 0 {
                    return None;
                }
                let ident = Ident {
                    name: content[from..from + n].to_string(),
                    span: Span::new(self.file, self.base + from, self.base + from + n),
                };
                let kind = match word {
                    "output" => DirectiveKind::Output(ident),
                    "secret" => DirectiveKind::Secret(self.check_env_name(ident, "secret")),
                    _ => DirectiveKind::Catch(ident),
                };
                (kind, from + n)
            }
            "image" | "shell" | "workdir" | "approval" => {
                if b.get(from) != Some(&b'"') {
                    return None;
                }
                let len = b[from + 1..].iter().position(|c| *c == b'"')?;
                let body = &content[from + 1..from + 1 + len];
                if body.contains('\\') {
                    return None;
                }
                let end = from + len + 2;
                let whole = Span::new(self.file, self.base + from, self.base + end);
                let start = self.base + from + 1;
                let (interp, diags) = interp::split(body, self.file, whole, &|i| start + i);
                self.diags.extend(diags);
                let kind = match word {
                    "image" => DirectiveKind::Image(interp),
                    "shell" => DirectiveKind::Shell(interp),
                    "workdir" => DirectiveKind::Workdir(interp),
                    _ => DirectiveKind::Approval(interp),
                };
                (kind, end)
            }
            "timeout" | "heartbeat" => {
                // `90s`: digits then a unit (any letters; the checker judges them).
                let digits = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
                let letters = b[from + digits..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .count();
                if digits == 0 || letters == 0 {
                    return None;
                }
                let end = from + digits + letters;
                let value = ast::Value {
                    kind: ast::ValueKind::Duration(content[from..end].to_string()),
                    span: Span::new(self.file, self.base + from, self.base + end),
                };
                let kind = if word == "timeout" {
                    DirectiveKind::Timeout(value)
                } else {
                    DirectiveKind::Heartbeat(value)
                };
                (kind, end)
            }
            "env" => {
                // `NAME = "text"` with no escapes in the text.
                let n = name_len(&b[from..]);
                if n == 0 {
                    return None;
                }
                let eq = skip_spaces(b, from + n);
                if b.get(eq) != Some(&b'=') {
                    return None;
                }
                let q = skip_spaces(b, eq + 1);
                if q == eq + 1 || b.get(q) != Some(&b'"') {
                    return None;
                }
                let len = b[q + 1..].iter().position(|c| *c == b'"')?;
                let body = &content[q + 1..q + 1 + len];
                if body.contains('\\') {
                    return None;
                }
                let end = q + len + 2;
                let ident = Ident {
                    name: content[from..from + n].to_string(),
                    span: Span::new(self.file, self.base + from, self.base + from + n),
                };
                let name = self.check_env_name(ident, "environment variable");
                let whole = Span::new(self.file, self.base + q, self.base + end);
                let start = self.base + q + 1;
                let (interp, diags) = interp::split(body, self.file, whole, &|i| start + i);
                self.diags.extend(diags);
                let value = ast::Value {
                    kind: ast::ValueKind::Str(interp),
                    span: whole,
                };
                let span = name.span.to(value.span);
                (
                    DirectiveKind::Env(Box::new(ast::EnvVar { name, value, span })),
                    end,
                )
            }
            _ => return None,
        };
        if skip_spaces(b, end) != b.len() {
            return None;
        }
        Some((kind, self.base + end))
    }
}

fn first_char_len(s: &str, at: usize) -> usize {
    s.get(at..)
        .and_then(|r| r.chars().next())
        .map_or(0, char::len_utf8)
}

/// "`token`" at `at` in `s`, or `eol` when nothing is left.
fn found_text(s: &str, at: usize, eol: &str) -> String {
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
fn too_deep(s: &str) -> Option<usize> {
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
fn too_many_operators(s: &str) -> Option<usize> {
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

fn operators_error(file: FileId, at: usize) -> Diagnostic {
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

fn nesting_error(file: FileId, at: usize) -> Diagnostic {
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
fn syntax_error(
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
        | Rule::kw_use => return None,
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
        | Rule::use_line => "a line",
    })
}

// ------------------------------------------------------------------ pairs -> AST

/// Turns the pairs of one parsed line into AST nodes. Pest positions are
/// relative to the line; `base` makes them file offsets.
struct Build<'d> {
    file: FileId,
    base: usize,
    diags: &'d mut Vec<Diagnostic>,
    comments: &'d mut Vec<Comment>,
}

impl Build<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, self.base + s.start(), self.base + s.end())
    }

    /// The meaningful children of a line: comments are recorded, punctuation
    /// and EOI dropped. Also returns where the line's code ends.
    fn parts<'i>(&mut self, line: Pair<'i, Rule>) -> (Vec<Pair<'i, Rule>>, usize) {
        let mut out = Vec::new();
        let mut end = self.base + line.as_span().start();
        for pair in line.into_inner() {
            match pair.as_rule() {
                Rule::EOI => {}
                Rule::comment => {
                    let span = self.span(&pair);
                    self.comments.push(Comment {
                        text: pair.as_str()[1..].trim_end().to_string(),
                        span,
                        own_line: false,
                        blank_after: false,
                    });
                }
                Rule::kw_pipeline
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
                | Rule::colon
                | Rule::equals
                | Rule::comma
                | Rule::lparen
                | Rule::rparen
                | Rule::lbracket
                | Rule::rbracket => end = end.max(self.span(&pair).end),
                _ => {
                    end = end.max(self.span(&pair).end);
                    out.push(pair);
                }
            }
        }
        (out, end)
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    /// An env or secret name: stricter than other names (no `-`).
    fn env_ident(&mut self, pair: Pair<'_, Rule>, what: &str) -> Ident {
        let ident = self.ident(pair);
        self.check_env_name(ident, what)
    }

    fn check_env_name(&mut self, ident: Ident, what: &str) -> Ident {
        if !text::is_env_name(&ident.name) {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_NAME,
                    ident.span,
                    format!("`{}` is not a valid {what} name", ident.name),
                )
                .label("not usable as an environment variable")
                .help(format!(
                    "{what} names use letters, digits and `_` only, like `{}`",
                    ident.name.replace('-', "_")
                )),
            );
        }
        ident
    }

    fn declaration(&mut self, pair: Pair<'_, Rule>) -> ast::Item {
        let rule = pair.as_rule();
        let start = self.base + pair.as_span().start();
        let (parts, end) = self.parts(pair);
        let mut parts = parts.into_iter();
        let mut next = || parts.next().expect("the grammar rule has this part");
        match rule {
            Rule::pipeline_line => ast::Item::Pipeline(self.ident(next())),
            Rule::param_line => {
                let mut param = self.param(next());
                param.span.start = start;
                ast::Item::Param(param)
            }
            Rule::secret_line => ast::Item::Secret(self.env_ident(next(), "secret")),
            Rule::image_line => ast::Item::Image(self.string(next())),
            Rule::env_line => {
                let name = self.env_ident(next(), "environment variable");
                let value = self.value(next());
                ast::Item::Env(ast::EnvVar {
                    name,
                    value,
                    span: Span::new(self.file, start, end),
                })
            }
            _ => {
                debug_assert_eq!(rule, Rule::import_line);
                let path = next();
                let path_span = self.span(&path);
                let (path, _) = self.decode(&path);
                let alias = parts.nth(1).map(|p| self.ident(p));
                ast::Item::Import(ast::Import {
                    path,
                    path_span,
                    alias,
                    span: Span::new(self.file, start, end),
                })
            }
        }
    }

    fn directive(&mut self, pair: Pair<'_, Rule>) -> (DirectiveKind, usize) {
        let rule = pair.as_rule();
        let (parts, end) = self.parts(pair);
        let mut parts = parts.into_iter();
        let mut next = || parts.next().expect("the grammar rule has this part");
        let kind = match rule {
            Rule::image_line => DirectiveKind::Image(self.string(next())),
            Rule::shell_line => DirectiveKind::Shell(self.string(next())),
            Rule::workdir_line => DirectiveKind::Workdir(self.string(next())),
            Rule::approval_line => DirectiveKind::Approval(self.string(next())),
            Rule::env_line => {
                let name = self.env_ident(next(), "environment variable");
                let value = self.value(next());
                let span = name.span.to(value.span);
                DirectiveKind::Env(Box::new(ast::EnvVar { name, value, span }))
            }
            Rule::output_line => DirectiveKind::Output(self.ident(next())),
            Rule::secret_line => DirectiveKind::Secret(self.env_ident(next(), "secret")),
            Rule::catch_line => DirectiveKind::Catch(self.ident(next())),
            Rule::timeout_line => DirectiveKind::Timeout(self.value(next())),
            Rule::heartbeat_line => DirectiveKind::Heartbeat(self.value(next())),
            Rule::retry_line => {
                let attempts = self.value(next());
                let (mut every, mut backoff) = (None, None);
                while let Some(kw) = parts.next() {
                    let value = parts.next().map(|p| self.value(p));
                    if kw.as_rule() == Rule::kw_every {
                        every = value;
                    } else {
                        backoff = value;
                    }
                }
                DirectiveKind::Retry(Box::new(ast::Retry {
                    attempts,
                    every,
                    backoff,
                }))
            }
            Rule::when_line => DirectiveKind::When(Box::new(self.expr(next()))),
            Rule::foreach_line => {
                let var = self.ident(next());
                let _in = next();
                let items = next();
                let items = if items.as_rule() == Rule::list {
                    ast::ForeachItems::List(self.value(items))
                } else {
                    ast::ForeachItems::Param(self.ident(items))
                };
                DirectiveKind::Foreach(Box::new(ast::Foreach { var, items }))
            }
            _ => {
                debug_assert_eq!(rule, Rule::use_line);
                let template_ref = next();
                let start = self.span(&template_ref).start;
                let template = template_ref
                    .into_inner()
                    .map(|p| self.ident(p))
                    .collect::<Vec<_>>();
                let args = parts
                    .map(|arg| {
                        let mut inner = arg.into_inner().filter(|p| p.as_rule() != Rule::equals);
                        let name = self.ident(inner.next().expect("an argument has a name"));
                        let value = self.value(inner.next().expect("an argument has a value"));
                        ast::Arg { name, value }
                    })
                    .collect();
                DirectiveKind::Use(ast::Use {
                    template,
                    args,
                    span: Span::new(self.file, start, end),
                })
            }
        };
        (kind, end)
    }

    /// `NAME[: TYPE] [= DEFAULT]`
    fn param(&mut self, pair: Pair<'_, Rule>) -> ast::Param {
        let span = self.span(&pair);
        let mut param = ast::Param {
            name: Ident {
                name: String::new(),
                span,
            },
            ty: None,
            default: None,
            span,
        };
        for part in pair.into_inner() {
            match part.as_rule() {
                Rule::param_name => param.name = self.ident(part),
                Rule::type_name => param.ty = Some(self.ident(part)),
                Rule::value => param.default = Some(self.value(part)),
                _ => {}
            }
        }
        param
    }

    /// The decoded text of a string literal and, for each of its bytes (and
    /// one past the end), the file offset it came from.
    fn decode(&mut self, pair: &Pair<'_, Rule>) -> (String, Vec<usize>) {
        let body = pair
            .clone()
            .into_inner()
            .find(|p| p.as_rule() == Rule::string_body);
        let (raw, start) = body.map_or(("", self.span(pair).start + 1), |b| {
            (b.as_str(), self.base + b.as_span().start())
        });
        let mut text = String::with_capacity(raw.len());
        let mut map = Vec::with_capacity(raw.len() + 1);
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                text.push(c);
                map.extend((0..c.len_utf8()).map(|n| start + i + n));
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            let decoded = match e {
                '"' => '"',
                '\\' => '\\',
                'n' => '\n',
                't' => '\t',
                other => {
                    let end = start + i + 1 + other.len_utf8();
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            Span::new(self.file, start + i, end),
                            format!("unknown escape `\\{other}` in a string"),
                        )
                        .label("not an escape")
                        .help("the escapes are \\\", \\\\, \\n and \\t; write a backslash as \\\\"),
                    );
                    other
                }
            };
            text.push(decoded);
            map.extend((0..decoded.len_utf8()).map(|_| start + i));
        }
        map.push(start + raw.len());
        (text, map)
    }

    fn string(&mut self, pair: Pair<'_, Rule>) -> ast::Interp {
        let whole = self.span(&pair);
        let (text, map) = self.decode(&pair);
        let last = map.len() - 1;
        let (interp, diags) = interp::split(&text, self.file, whole, &|i| map[i.min(last)]);
        self.diags.extend(diags);
        interp
    }

    fn value(&mut self, pair: Pair<'_, Rule>) -> ast::Value {
        let pair = if matches!(pair.as_rule(), Rule::value | Rule::literal) {
            pair.into_inner()
                .next()
                .expect("a value is one of its alternatives")
        } else {
            pair
        };
        let span = self.span(&pair);
        let text = pair.as_str();
        let kind = match pair.as_rule() {
            Rule::string => ast::ValueKind::Str(self.string(pair)),
            Rule::int => ast::ValueKind::Int(text.parse().unwrap_or_else(|_| {
                self.diags.push(
                    Diagnostic::error(codes::BAD_VALUE, span, "integer out of range")
                        .label("does not fit in 64 bits")
                        .help("integers range from -9223372036854775808 to 9223372036854775807"),
                );
                0
            })),
            Rule::float => ast::ValueKind::Float(text.parse().unwrap_or(0.0)),
            Rule::bool => ast::ValueKind::Bool(text == "true"),
            Rule::duration => ast::ValueKind::Duration(text.to_string()),
            _ => {
                debug_assert_eq!(pair.as_rule(), Rule::list);
                let items = pair
                    .into_inner()
                    .filter(|p| p.as_rule() == Rule::value)
                    .map(|p| self.value(p))
                    .collect();
                ast::ValueKind::List(items)
            }
        };
        ast::Value { kind, span }
    }

    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let span = self.span(&pair);
        match pair.as_rule() {
            Rule::or_expr | Rule::and_expr | Rule::cmp_expr => {
                let mut inner = pair.into_inner();
                let first = inner.next().expect("an operator chain has a first operand");
                let mut acc = self.expr(first);
                while let Some(op) = inner.next() {
                    let Some(rhs) = inner.next() else { break };
                    let rhs = self.expr(rhs);
                    let span = acc.span.to(rhs.span);
                    let (l, r) = (Box::new(acc), Box::new(rhs));
                    let kind = match op.as_rule() {
                        Rule::or_op => ExprKind::Or(l, r),
                        Rule::and_op => ExprKind::And(l, r),
                        Rule::eq_op => ExprKind::Eq(l, r),
                        _ => ExprKind::Ne(l, r),
                    };
                    acc = Expr { kind, span };
                }
                acc
            }
            Rule::unary => {
                let mut nots = Vec::new();
                let mut operand = None;
                for part in pair.into_inner() {
                    if part.as_rule() == Rule::not_op {
                        nots.push(self.span(&part).start);
                    } else {
                        operand = Some(self.expr(part));
                    }
                }
                let mut acc = operand.expect("a unary expression has an operand");
                for start in nots.into_iter().rev() {
                    let span = Span::new(self.file, start, acc.span.end);
                    acc = Expr {
                        kind: ExprKind::Not(Box::new(acc)),
                        span,
                    };
                }
                acc
            }
            Rule::paren => {
                let inner = pair
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::or_expr)
                    .expect("parentheses hold an expression");
                Expr {
                    kind: ExprKind::Paren(Box::new(self.expr(inner))),
                    span,
                }
            }
            Rule::literal => Expr {
                kind: ExprKind::Lit(self.value(pair)),
                span,
            },
            _ => {
                debug_assert_eq!(pair.as_rule(), Rule::reference);
                let path: Vec<Ident> = pair.into_inner().map(|p| self.ident(p)).collect();
                if path.len() > 2 {
                    self.diags.push(
                        Diagnostic::error(
                            codes::SYNTAX,
                            span,
                            format!("`{}` has too many parts", pair_text(&path)),
                        )
                        .label("expected `name` or `step.OUTPUT`")
                        .help("a reference is a name (`region`) or `step.OUTPUT`"),
                    );
                }
                Expr {
                    kind: ExprKind::Ref(ast::Ref { path, span }),
                    span,
                }
            }
        }
    }
}

fn pair_text(path: &[Ident]) -> String {
    path.iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod speed {
    use super::*;
    use crate::source::Format;
    use std::fmt::Write as _;

    /// `cargo test --release --lib parse_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, run by hand in release mode"]
    fn parse_speed() {
        let mut text = String::from("pipeline big\nimage \"alpine:3.20\"\n");
        for i in 0..100_000 {
            let needs: Vec<String> = (1..=(i % 3 + 1))
                .filter(|d| *d <= i)
                .map(|d| format!("step-{}", i - d))
                .collect();
            write!(
                text,
                "\nstep-{i}: {}\n    image \"rust:1.80\"\n    output OUT\n    run:\n        echo building {i} {{{{ pipeline.name }}}}\n        echo \"OUT=$RANDOM\" >> \"$TOPSAIL_OUTPUT\"\n",
                needs.join(" ")
            )
            .expect("writing to a String cannot fail");
        }
        let mut sources = SourceMap::new();
        let file = sources.add("big.topsail", None, text, Format::Topsail);
        // The best of three: this machine is shared, the minimum is the
        // least disturbed run.
        let mut took = std::time::Duration::MAX;
        let mut result = None;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let parsed = parse(&sources, file);
            took = took.min(started.elapsed());
            result = Some(parsed);
        }
        let (module, diags) = result.expect("parsed three times");
        assert!(diags.is_empty(), "{:?}", diags.first());
        let module = module.expect("a module");
        eprintln!(
            "parsed {} bytes, {} items in {took:?}",
            sources.get(file).text.len(),
            module.items.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;
    use crate::syntax::ast::{ForeachItems, Item, Part, ValueKind};

    const RELEASE: &str = include_str!("../../tests/fixtures/parse/release.topsail");

    fn parse_str(text: &str) -> (ast::Module, Vec<Diagnostic>) {
        let mut sources = SourceMap::new();
        let file = sources.add("test.topsail", None, text.to_string(), Format::Topsail);
        let (module, diags) = parse(&sources, file);
        (module.expect("the parser always returns a module"), diags)
    }

    fn clean(text: &str) -> ast::Module {
        let (m, d) = parse_str(text);
        assert!(d.is_empty(), "unexpected diagnostics for {text:?}: {d:#?}");
        m
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        let (_, d) = parse_str(text);
        assert!(!d.is_empty(), "expected diagnostics for {text:?}");
        for diag in &d {
            assert!(diag.span.start <= diag.span.end && diag.span.end <= text.len());
            assert!(!diag.help.is_empty(), "no help on {diag:?}");
            assert!(!diag.label.is_empty(), "no label on {diag:?}");
        }
        d
    }

    fn at(text: &str, span: Span) -> &str {
        &text[span.start..span.end]
    }

    fn step<'m>(m: &'m ast::Module, name: &str) -> &'m ast::Step {
        m.items
            .iter()
            .find_map(|i| match i {
                Item::Step(s) if s.name.name == name => Some(s),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no step {name}"))
    }

    fn body(text: &str) -> Vec<DirectiveKind> {
        let m = clean(text);
        match &m.items[0] {
            Item::Step(s) => s.body.iter().map(|d| d.kind.clone()).collect(),
            Item::Template(t) => t.body.iter().map(|d| d.kind.clone()).collect(),
            other => panic!("not a step: {other:?}"),
        }
    }

    fn script(kind: &DirectiveKind) -> String {
        match kind {
            DirectiveKind::Run(i) => i.source_text(),
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn parses_the_language_example() {
        let m = clean(RELEASE);
        let kinds: Vec<&str> = m
            .items
            .iter()
            .map(|i| match i {
                Item::Pipeline(_) => "pipeline",
                Item::Param(_) => "param",
                Item::Secret(_) => "secret",
                Item::Image(_) => "image",
                Item::Env(_) => "env",
                Item::Import(_) => "import",
                Item::Template(_) => "template",
                Item::Step(_) => "step",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "pipeline", "param", "param", "param", "param", "secret", "image", "env", "import",
                "step", "step", "step", "step", "step", "step"
            ]
        );
        let deploy = step(&m, "deploy");
        assert_eq!(deploy.needs[0].name, "approve");
        let words: Vec<&str> = deploy.body.iter().map(|d| d.kind.keyword()).collect();
        assert_eq!(
            words,
            [
                "image",
                "when",
                "foreach",
                "env",
                "secret",
                "heartbeat",
                "catch",
                "run"
            ]
        );
        for d in &deploy.body {
            assert_eq!(at(RELEASE, d.keyword_span), d.kind.keyword());
        }
        // Every span is exact: the step covers header to the end of its last line.
        let build = step(&m, "build");
        assert!(at(RELEASE, build.span).starts_with("build:\n"));
        assert!(at(RELEASE, build.span).ends_with(">> \"$TOPSAIL_OUTPUT\""));
        assert_eq!(m.comments.len(), 7);
        assert!(m.comments[0].own_line && m.comments[0].text == " release.topsail");
        assert!(!m.comments[1].own_line && m.comments[1].text == " required: no default");
    }

    #[test]
    fn declarations() {
        let m = clean(
            "pipeline release\nparam a\nparam b: int\nparam c = \"x\"\nparam d: list = [\"x\", [1, 2]]\n\
             secret TOKEN\nimage \"alpine\"\nenv LOG = \"info\"\nimport \"std/notify\"\nimport \"./lib.topsail\" as lib\n",
        );
        let Item::Param(d) = &m.items[4] else {
            panic!()
        };
        assert_eq!(d.ty.as_ref().map(|t| t.name.as_str()), Some("list"));
        let Some(ast::Value {
            kind: ValueKind::List(items),
            ..
        }) = &d.default
        else {
            panic!()
        };
        assert!(matches!(&items[1].kind, ValueKind::List(inner) if inner.len() == 2));
        let Item::Param(a) = &m.items[1] else {
            panic!()
        };
        assert!(a.ty.is_none() && a.default.is_none());
        let Item::Import(lib) = &m.items[9] else {
            panic!()
        };
        assert_eq!(lib.path, "./lib.topsail");
        assert_eq!(lib.alias.as_ref().map(|a| a.name.as_str()), Some("lib"));
        let Item::Env(env) = &m.items[7] else {
            panic!()
        };
        assert_eq!(env.name.name, "LOG");
    }

    #[test]
    fn values() {
        let m = clean(
            "param a = -3\nparam b = 2.0\nparam c = true\nparam d = 90s\nparam e = 5fortnights\n\
             param f = \"q\\\"uote\\\\ \\n\\t\"\nparam g = []\nparam h = [[\"a\"], [], [1, -2.5, false, 1h,]]\n",
        );
        let defaults: Vec<ValueKind> = m
            .items
            .iter()
            .map(|i| match i {
                Item::Param(p) => p.default.clone().expect("a default").kind,
                _ => panic!(),
            })
            .collect();
        assert_eq!(defaults[0], ValueKind::Int(-3));
        assert_eq!(defaults[1], ValueKind::Float(2.0));
        assert_eq!(defaults[2], ValueKind::Bool(true));
        assert_eq!(defaults[3], ValueKind::Duration("90s".into()));
        assert_eq!(defaults[4], ValueKind::Duration("5fortnights".into()));
        let ValueKind::Str(s) = &defaults[5] else {
            panic!()
        };
        assert_eq!(s.as_literal().as_deref(), Some("q\"uote\\ \n\t"));
        assert_eq!(defaults[6], ValueKind::List(vec![]));
        let ValueKind::List(h) = &defaults[7] else {
            panic!()
        };
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn hole_spans_are_exact_after_escapes() {
        let text = "approve:\n    approval \"say \\\"hi\\\" to {{ build.VERSION }}\\n{{x}}\"\n";
        let m = clean(text);
        let DirectiveKind::Approval(i) = &step(&m, "approve").body[0].kind else {
            panic!()
        };
        let refs: Vec<&str> = i
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Ref(r) => Some(at(text, r.span)),
                Part::Lit(_) | Part::Value(..) => None,
            })
            .collect();
        assert_eq!(refs, ["{{ build.VERSION }}", "{{x}}"]);
        let Part::Ref(r) = &i.parts[1] else { panic!() };
        assert_eq!(at(text, r.path[1].span), "VERSION");
        assert_eq!(
            at(text, i.span),
            "\"say \\\"hi\\\" to {{ build.VERSION }}\\n{{x}}\""
        );
    }

    #[test]
    fn run_lines_and_blocks() {
        let text = "s:\n    run echo a # not a comment  \n    run:\n        if true; then\n            echo {{ x }}  # script\n\n        fi\n\n\n    run:   # a comment\n          one\n    output X\n";
        let m = clean(text);
        let s = step(&m, "s");
        assert_eq!(script(&s.body[0].kind), "echo a # not a comment");
        assert_eq!(
            script(&s.body[1].kind),
            "if true; then\n    echo {{ x }}  # script\n\nfi"
        );
        assert_eq!(script(&s.body[2].kind), "one");
        assert!(matches!(&s.body[3].kind, DirectiveKind::Output(o) if o.name == "X"));
        let DirectiveKind::Run(block) = &s.body[1].kind else {
            panic!()
        };
        let Part::Ref(r) = &block.parts[1] else {
            panic!()
        };
        assert_eq!(at(text, r.span), "{{ x }}");
        assert!(at(text, s.body[1].span).starts_with("run:\n"));
        assert!(at(text, s.body[1].span).ends_with("fi"));
        assert_eq!(m.comments.len(), 1);
        assert_eq!(m.comments[0].text, " a comment");
        assert!(!m.comments[0].own_line);
    }

    #[test]
    fn directives() {
        let kinds = body(
            "s: a b\n    shell \"bash\"\n    workdir \"/src\"\n    env N = 3\n    secret TOKEN\n    timeout 20m\n\
             \x20   heartbeat 60s\n    retry 2\n    retry 3 every 10s\n    retry 4 backoff 1.5\n    retry 5 every 1s backoff 2.0\n\
             \x20   foreach r in [\"a\", \"b\"]\n    foreach r in regions\n    catch rollback\n    approval \"ok?\"\n\
             \x20   use docker-build(tag = \"app\", n = 3,)\n    use notify.webhook(url = \"u\")\n    use bare\n",
        );
        let words: Vec<&str> = kinds.iter().map(DirectiveKind::keyword).collect();
        assert_eq!(
            words,
            [
                "shell",
                "workdir",
                "env",
                "secret",
                "timeout",
                "heartbeat",
                "retry",
                "retry",
                "retry",
                "retry",
                "foreach",
                "foreach",
                "catch",
                "approval",
                "use",
                "use",
                "use"
            ]
        );
        let DirectiveKind::Retry(r) = &kinds[9] else {
            panic!()
        };
        assert_eq!(r.attempts.kind, ValueKind::Int(5));
        assert_eq!(
            r.every.as_ref().map(|v| v.kind.clone()),
            Some(ValueKind::Duration("1s".into()))
        );
        assert_eq!(
            r.backoff.as_ref().map(|v| v.kind.clone()),
            Some(ValueKind::Float(2.0))
        );
        let DirectiveKind::Retry(r) = &kinds[8] else {
            panic!()
        };
        assert!(r.every.is_none() && r.backoff.is_some());
        assert!(
            matches!(&kinds[11], DirectiveKind::Foreach(f) if matches!(&f.items, ForeachItems::Param(p) if p.name == "regions"))
        );
        assert!(
            matches!(&kinds[10], DirectiveKind::Foreach(f) if matches!(&f.items, ForeachItems::List(_)))
        );
        let DirectiveKind::Use(u) = &kinds[14] else {
            panic!()
        };
        assert_eq!(u.args.len(), 2);
        let DirectiveKind::Use(u) = &kinds[15] else {
            panic!()
        };
        assert_eq!(
            u.template
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>(),
            ["notify", "webhook"]
        );
        let DirectiveKind::Use(u) = &kinds[16] else {
            panic!()
        };
        assert!(u.args.is_empty() && u.template[0].name == "bare");
    }

    #[test]
    fn templates() {
        let text = "template docker-build(context = \".\", tag, n: int = 3):\n    image \"docker:27-cli\"\n    run docker build -t {{ tag }} {{ context }}\n\ntemplate none:\n    run true\n";
        let m = clean(text);
        let Item::Template(t) = &m.items[0] else {
            panic!()
        };
        assert_eq!(t.name.name, "docker-build");
        let names: Vec<&str> = t.params.iter().map(|p| p.name.name.as_str()).collect();
        assert_eq!(names, ["context", "tag", "n"]);
        assert_eq!(at(text, t.params[2].span), "n: int = 3");
        assert_eq!(t.body.len(), 2);
        let Item::Template(none) = &m.items[1] else {
            panic!()
        };
        assert!(none.params.is_empty());
    }

    fn when(text: &str) -> String {
        fn show(e: &Expr) -> String {
            match &e.kind {
                ExprKind::Or(l, r) => format!("or({}, {})", show(l), show(r)),
                ExprKind::And(l, r) => format!("and({}, {})", show(l), show(r)),
                ExprKind::Eq(l, r) => format!("eq({}, {})", show(l), show(r)),
                ExprKind::Ne(l, r) => format!("ne({}, {})", show(l), show(r)),
                ExprKind::Not(x) => format!("not({})", show(x)),
                ExprKind::Paren(x) => format!("({})", show(x)),
                ExprKind::Lit(v) => format!("{:?}", v.kind),
                ExprKind::Ref(r) => r.dotted(),
            }
        }
        let e = parse_expr(text, FileId(0), 100).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!((e.span.start, e.span.end), (100, 100 + text.len()));
        show(&e)
    }

    #[test]
    fn when_precedence() {
        assert_eq!(when("a || b && c"), "or(a, and(b, c))");
        assert_eq!(when("!a == b"), "eq(not(a), b)");
        assert_eq!(
            when("a == \"x\" && b.OUT != 3 || !!c"),
            "or(and(eq(a, Str(Interp { parts: [Lit(\"x\")], span: Span { file: FileId(0), start: 105, end: 108 } })), ne(b.OUT, Int(3))), not(not(c)))"
        );
        assert_eq!(when("(a || b) && !(c)"), "and((or(a, b)), not((c)))");
        assert_eq!(
            when("x == true || y != 2.5 || z == 10s"),
            "or(or(eq(x, Bool(true)), ne(y, Float(2.5))), eq(z, Duration(\"10s\")))"
        );
        assert_eq!(when("true_thing"), "true_thing");
        let body =
            body("s:\n    when !dry_run && region == \"eu\"  # only outside the EU dry runs\n");
        assert!(matches!(&body[0], DirectiveKind::When(e) if matches!(e.kind, ExprKind::And(..))));
    }

    #[test]
    fn parse_expr_reports_with_offsets() {
        let d = parse_expr("a &&", FileId(3), 50).expect_err("incomplete");
        assert_eq!(d.code, codes::SYNTAX);
        assert_eq!((d.span.file, d.span.start), (FileId(3), 54));
        assert!(
            d.message.contains("found the end of the expression"),
            "{}",
            d.message
        );
        let d = parse_expr("a.b.c", FileId(0), 0).expect_err("too many parts");
        assert!(d.message.contains("too many parts"));
        assert!(parse_expr(&"(".repeat(10_000), FileId(0), 0).is_err());
        assert!(parse_expr(&"!".repeat(10_000), FileId(0), 0).is_err());
        assert!(parse_expr("", FileId(0), 0).is_err());
    }

    #[test]
    fn syntax_errors_say_what_was_expected() {
        let d = errors("param x: = 3\n");
        assert_eq!(
            d[0].message,
            "expected a type (string, int, bool, duration or list), found `=`"
        );
        assert_eq!((d[0].span.start, d[0].span.end), (9, 10));
        let d = errors("build: a, b\n");
        assert_eq!(
            d[0].message,
            "expected the name of a step it needs or the end of the line, found `,`"
        );
        let d = errors("image alpine:3.20\n");
        assert_eq!(d[0].message, "expected a string, found `alpine:3.20`");
        assert!(d[0].help.contains("double quotes"));
        let d = errors("s:\n    image: \"x\"\n");
        assert!(d[0].help.contains("without the `:`"), "{}", d[0].help);
        let d = errors("s:\n    retry 3 every\n");
        assert_eq!(d[0].message, "expected a value, found the end of the line");
        let d = errors("s:\n    image \"abc\n");
        assert_eq!(
            d[0].message,
            "expected a closing `\"`, found the end of the line"
        );
        let d = errors("s:\n    when a b\n");
        assert_eq!(
            d[0].message,
            "expected `||`, `&&`, `==`, `!=` or the end of the line, found `b`"
        );
        let d = errors("s:\n    foreach r of [\"a\"]\n");
        assert_eq!(d[0].message, "expected `in`, found `of`");
        for diag in d {
            assert!(
                !diag.message.contains('_'),
                "a rule name leaked: {}",
                diag.message
            );
        }
    }

    #[test]
    fn unknown_keywords_get_suggestions() {
        let d = errors("s:\n    imgae \"x\"\n");
        assert_eq!(d[0].message, "unknown directive `imgae`");
        assert_eq!(d[0].help, "did you mean `image`?");
        assert_eq!((d[0].span.start, d[0].span.end), (7, 12));
        let d = errors("s:\n    outputs X\n");
        assert_eq!(d[0].help, "did you mean `output`?");
        let d = errors("pipelin x\n");
        assert_eq!(d[0].help, "did you mean `pipeline`?");
        let d = errors("build\n    run make\n");
        assert_eq!(d[0].message, "expected `:` after the step name `build`");
        let d = errors("run make\n");
        assert!(d[0].message.contains("not inside a step"));
        let d = errors("s:\n    other:\n");
        assert_eq!(d[0].help, "a step header must start in column 0");
    }

    #[test]
    fn tabs_and_indentation() {
        let d = errors("s:\n\timage \"x\"\n\trun y\nt:\n  \trun z\n");
        let tabs: Vec<_> = d.iter().filter(|d| d.code == codes::TAB_INDENT).collect();
        assert_eq!(tabs.len(), 2, "one per item: {d:#?}");
        assert_eq!((tabs[0].span.start, tabs[0].span.end), (3, 4));
        assert_eq!(
            tabs[0].help,
            "indent with spaces (4 per level is the convention)"
        );

        let d = errors("s:\n    image \"x\"\n  run y\n");
        assert_eq!(d[0].code, codes::BAD_INDENT);
        assert_eq!(d[0].message, "inconsistent indentation");
        assert_eq!(d[0].secondary.len(), 1);

        let d = errors("s:\n    run make\n        more\n        lines\n    output X\n");
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].code, codes::BAD_INDENT);
        assert!(d[0].help.contains("`run:`"));

        let d = errors("param x = 1\n    run y\n");
        assert_eq!(d[0].code, codes::BAD_INDENT);
        let d = errors("    image \"x\"\ns:\n    run y\n");
        assert_eq!(d[0].code, codes::BAD_INDENT);
        assert_eq!(d.len(), 1);
        // A tab inside a run block, after the block's indentation, is script.
        let kinds = body("s:\n    run:\n        cat <<-EOF\n        \tx\n        EOF\n");
        assert_eq!(script(&kinds[0]), "cat <<-EOF\n\tx\nEOF");
        let d = errors("s:\n    run:\n    \techo\n");
        assert!(d.iter().any(|d| d.code == codes::TAB_INDENT));
    }

    #[test]
    fn run_mistakes() {
        let d = errors("s:\n    run: make all\n");
        assert!(d[0].message.contains("`run:` starts a block"));
        assert_eq!(at("s:\n    run: make all\n", d[0].span), "make all");
        let d = errors("s:\n    run:\n    output X\n");
        assert_eq!(d[0].message, "`run:` has no script below it");
        let d = errors("s:\n    run\n");
        assert_eq!(
            d[0].message,
            "expected `:` or the script, found the end of the line"
        );
        let d = errors("s:\n    run echo {{ x\n");
        assert_eq!(d[0].code, codes::BAD_INTERPOLATION);
    }

    #[test]
    fn bad_literals() {
        let d = errors("s:\n    env A = \"\\q\"\n");
        assert_eq!(d[0].message, "unknown escape `\\q` in a string");
        assert_eq!((d[0].span.start, d[0].span.end), (16, 18));
        let d = errors("param n = 99999999999999999999\n");
        assert_eq!(d[0].code, codes::BAD_VALUE);
        let d = errors("secret MY-TOKEN\n");
        assert_eq!(d[0].code, codes::BAD_NAME);
        let d = errors("s:\n    secret MY-TOKEN\n");
        assert_eq!(d[0].code, codes::BAD_NAME);
        let d = errors(&format!("param p = {}\n", "[".repeat(100)));
        assert!(d[0].message.contains("nested too deeply"));
        let d = errors("s:\n    when a.b.c\n");
        assert!(d[0].message.contains("too many parts"));
    }

    #[test]
    fn reports_every_error_and_keeps_the_rest() {
        let text = "pipeline p\nparam = 3\n\nbuild:\n    imgae \"x\"\n    run make\n    timeout\n\ntest: build\n    run make test\n\nbad header here\n    run x\n\ndeploy: test\n    when (a\n    run ./deploy\n";
        let (m, d) = parse_str(text);
        assert_eq!(d.len(), 5, "{d:#?}");
        let lines: Vec<usize> = d
            .iter()
            .map(|d| text[..d.span.start].lines().count())
            .collect();
        assert_eq!(lines, [2, 5, 7, 12, 16]);
        let names: Vec<&str> = m
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Step(s) => Some(s.name.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["build", "test", "deploy"]);
        assert_eq!(step(&m, "build").body.len(), 1);
        assert_eq!(step(&m, "deploy").body.len(), 1);
    }

    #[test]
    fn odd_files() {
        assert!(clean("").items.is_empty());
        assert!(clean("\n\n   \n# only a comment\n").items.is_empty());
        let m = clean("\u{feff}pipeline p\r\ns:\r\n    run:\r\n        a\r\n        b\r\n");
        assert_eq!(script(&step(&m, "s").body[0].kind), "a\nb");
        let m = clean("s:\n    run héllo {{ x }} wörld\n");
        let DirectiveKind::Run(i) = &step(&m, "s").body[0].kind else {
            panic!()
        };
        assert_eq!(i.parts.len(), 3);
        let _ = parse_str("é:\n  ü\n\t\"\n[[[[\n");
    }

    /// The fast paths must build exactly what the grammar builds.
    fn both_ways(line: &str) -> Option<(String, String)> {
        let base = 7;
        let file = FileId(0);
        let word = leading_word(line);
        if let Some(quick) = quick_header(file, base, line) {
            let mut p = FileParser::new(line, file);
            let slow = p.parse_line(Rule::step_line, base, line, "").map(|pair| {
                let mut b = p.build(base);
                let (parts, end) = b.parts(pair);
                let mut parts = parts.into_iter();
                let name = b.ident(parts.next().expect("a name"));
                (name, parts.map(|x| b.ident(x)).collect::<Vec<_>>(), end)
            });
            return Some((format!("{:?}", Some(quick)), format!("{slow:?}")));
        }
        let rule = match word {
            "output" => Rule::output_line,
            "secret" => Rule::secret_line,
            "catch" => Rule::catch_line,
            "image" => Rule::image_line,
            "shell" => Rule::shell_line,
            "workdir" => Rule::workdir_line,
            "approval" => Rule::approval_line,
            _ => return None,
        };
        let (mut d1, mut d2, mut c1, mut c2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut quick_b = Build {
            file,
            base,
            diags: &mut d1,
            comments: &mut c1,
        };
        let quick = quick_b.quick_directive(word, line)?;
        let pair = Grammar::parse(rule, line).ok()?.next()?;
        let mut slow_b = Build {
            file,
            base,
            diags: &mut d2,
            comments: &mut c2,
        };
        let slow = slow_b.directive(pair);
        Some((
            format!("{quick:?} {d1:?} {c1:?}"),
            format!("{slow:?} {d2:?} {c2:?}"),
        ))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_paths_agree_with_the_grammar(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("output".to_string()),
                    proptest::strategy::Just("secret".to_string()),
                    proptest::strategy::Just("image".to_string()),
                    proptest::strategy::Just("catch".to_string()),
                    proptest::strategy::Just("approval".to_string()),
                    proptest::strategy::Just("timeout".to_string()),
                    proptest::strategy::Just("heartbeat".to_string()),
                    proptest::strategy::Just("env".to_string()),
                    proptest::strategy::Just("=".to_string()),
                    "[0-9]{1,3}[a-z]{0,3}",
                    "[a-zA-Z_][a-zA-Z0-9_-]{0,6}",
                    "\"[a-z {}\\\\.\"é]{0,8}\"",
                    "[ :#.\\-]{1,2}",
                ],
                1..6,
            )
        ) {
            let line = words.join(" ");
            let line = line.trim_start();
            if let Some((quick, slow)) = both_ways(line) {
                proptest::prop_assert_eq!(quick, slow, "line {:?}", line);
            }
        }
    }

    fn check_invariants(text: &str) {
        let (m, d) = parse_str(text);
        for diag in &d {
            assert!(
                diag.span.start <= diag.span.end && diag.span.end <= text.len(),
                "span {:?} outside {} bytes: {diag:?}",
                diag.span,
                text.len()
            );
            for (span, _) in &diag.secondary {
                assert!(span.start <= span.end && span.end <= text.len());
            }
        }
        // Every node span the printer relies on lies inside the text too.
        for item in &m.items {
            let span = item.span();
            assert!(span.start <= span.end && span.end <= text.len());
        }
    }

    #[derive(Clone, Debug)]
    enum Edit {
        DeleteChar(usize),
        InsertChar(usize, char),
        DuplicateLine(usize),
        DeleteLine(usize),
        SwapLines(usize, usize),
    }

    fn apply(text: &str, edits: &[Edit]) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for edit in edits {
            match *edit {
                Edit::DeleteChar(i) if !chars.is_empty() => {
                    chars.remove(i % chars.len());
                }
                Edit::InsertChar(i, c) => chars.insert(i % (chars.len() + 1), c),
                Edit::DuplicateLine(i) | Edit::DeleteLine(i) | Edit::SwapLines(i, _) => {
                    let s: String = chars.iter().collect();
                    let mut lines: Vec<&str> = s.split('\n').collect();
                    let n = lines.len();
                    let i = i % n;
                    match *edit {
                        Edit::DuplicateLine(_) => lines.insert(i, lines[i]),
                        Edit::DeleteLine(_) => {
                            lines.remove(i);
                        }
                        Edit::SwapLines(_, j) => lines.swap(i, j % n),
                        _ => {}
                    }
                    chars = lines.join("\n").chars().collect();
                }
                Edit::DeleteChar(_) => {}
            }
        }
        chars.into_iter().collect()
    }

    fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
        use proptest::prelude::*;
        prop_oneof![
            any::<usize>().prop_map(Edit::DeleteChar),
            (
                any::<usize>(),
                proptest::sample::select(vec![
                    ' ', '\t', '\n', ':', '"', '\\', '#', '{', '}', '(', ')', '[', ']', '=', '!',
                    '|', '&', ',', '.', 'x', '9', 'é'
                ])
            )
                .prop_map(|(i, c)| Edit::InsertChar(i, c)),
            any::<usize>().prop_map(Edit::DuplicateLine),
            any::<usize>().prop_map(Edit::DeleteLine),
            (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::SwapLines(i, j)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        #[test]
        fn never_panics_on_arbitrary_text(text in "(?s).{0,300}") {
            check_invariants(&text);
        }

        #[test]
        fn never_panics_on_line_soup(lines in proptest::collection::vec(
            "[ \t]{0,9}[a-z:\"#{}()\\[\\]=!&|,. 0-9\\\\-]{0,30}", 0..12)) {
            check_invariants(&lines.join("\n"));
        }

        #[test]
        fn never_panics_on_mutated_pipelines(edits in proptest::collection::vec(edit(), 1..8)) {
            check_invariants(&apply(RELEASE, &edits));
        }
    }
}
