//! The layout of a file: top-level items (an item starts at a code line in
//! column 0), a step or template body cut into directive lines, a `run:`
//! into its indented block, and the layout mistakes (tabs, stray indentation,
//! unknown keywords). Each line is handed to one grammar rule, chosen by its
//! first word, and the pairs to [`Build`].

use pest::Parser as _;
use pest::iterators::Pair;

use super::errors::{
    first_char_len, found_text, involve_line, nesting_error, operators_error, syntax_error,
    too_deep, too_many_operators,
};
use super::fast::quick_header;
use super::lines::{Kind, Line, leading_word, scan_lines};
use super::lower::Build;
use super::{Grammar, NAME_PATTERN, Rule, mentioned_names, valid_name};
use crate::diagnostics::{Diagnostic, codes, suggest};
use crate::model::text;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Comment, DECLARATIONS, Directive, DirectiveKind, Ident, Keyword};
use crate::syntax::interp;

// ------------------------------------------------------------------ file structure

pub(super) struct FileParser<'t> {
    text: &'t str,
    file: FileId,
    lines: Vec<Line>,
    pub(super) diags: Vec<Diagnostic>,
    comments: Vec<Comment>,
    /// One tab diagnostic per item is enough to point the way.
    tab_reported: bool,
}

impl<'t> FileParser<'t> {
    pub(super) fn new(text: &'t str, file: FileId) -> Self {
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

    pub(super) fn build(&mut self, base: usize) -> Build<'_> {
        Build {
            file: self.file,
            base,
            diags: &mut self.diags,
            comments: &mut self.comments,
        }
    }

    pub(super) fn module(&mut self) -> ast::Module {
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
            "queue" => (Rule::queue_line, "`queue \"NAME\"`"),
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
        } else if Keyword::from_name(word).is_some() {
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
                && Keyword::from_name(leading_word(&self.text[line.start + line.ws..line.end]))
                    .is_none()
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
        let Some(keyword) = Keyword::from_name(word) else {
            self.unknown_directive(cstart, content, word);
            return (None, k + 1, false);
        };
        let (rule, usage) = match keyword {
            Keyword::Run => return self.run(k, to, keyword_span),
            Keyword::Image => (Rule::image_line, "`image \"REF\"`"),
            Keyword::Shell => (Rule::shell_line, "`shell \"bash\"`"),
            Keyword::Env => (Rule::env_line, "`env NAME = VALUE`"),
            Keyword::Workdir => (Rule::workdir_line, "`workdir \"/path\"`"),
            Keyword::Output => (Rule::output_line, "`output NAME`"),
            Keyword::Secret => (Rule::secret_line, "`secret NAME`"),
            Keyword::Timeout => (Rule::timeout_line, "`timeout DURATION` (like `20m`)"),
            Keyword::Heartbeat => (Rule::heartbeat_line, "`heartbeat DURATION` (like `60s`)"),
            Keyword::Retry => (
                Rule::retry_line,
                "`retry N [every DURATION] [backoff FACTOR]`",
            ),
            Keyword::When => (
                Rule::when_line,
                "`when EXPR` (like `!dry_run && region == \"eu-west-1\"`)",
            ),
            Keyword::Foreach => (
                Rule::foreach_line,
                "`foreach VAR in [\"a\", \"b\"]` or `foreach VAR in LIST_PARAM`",
            ),
            Keyword::Approval => (Rule::approval_line, "`approval \"MESSAGE\"`"),
            Keyword::Catch => (Rule::catch_line, "`catch STEP`"),
            Keyword::Use => (Rule::use_line, "`use TEMPLATE(ARG = VALUE, ...)`"),
            Keyword::Queue => (Rule::queue_line, "`queue \"NAME\"`"),
            Keyword::Aws => (Rule::aws_line, "`aws` or `aws role \"ARN\"`"),
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
            .help(format!(
                "the directives are {}",
                Keyword::ALL.map(Keyword::name).join(", ")
            ))
        } else {
            let span = self.span(cstart, cstart + word.len());
            let is_header = content[word.len()..]
                .trim_start_matches([' ', '\t'])
                .starts_with(':');
            let help = if let Some(best) = suggest(word, Keyword::names()) {
                format!("did you mean `{best}`?")
            } else if is_header {
                "a step header must start in column 0".to_string()
            } else {
                format!(
                    "the directives are {}",
                    Keyword::ALL.map(Keyword::name).join(", ")
                )
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
            // A whitespace-only line keeps its spaces beyond the block's
            // indentation, as in a YAML literal block (a heredoc or a Python
            // script may mean them).
            let from = if line.kind == Kind::Blank {
                if line.tab.is_none() && line.ws > common {
                    line.start + common
                } else {
                    line.end
                }
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
    pub(super) fn parse_line(
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
