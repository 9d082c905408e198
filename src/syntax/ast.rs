//! The AST: what a file says, before any name is resolved or type checked.
//! Both front ends build it; every node has a [`Span`] into its file. The
//! checker (`crate::check`) turns it into the model; nothing else reads it
//! except `fmt` and `convert`, which print it back.

use crate::source::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// One parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub items: Vec<Item>,
    /// Comments are kept only where `fmt` can put them back: the text of each
    /// comment line (without `#`) and the item it precedes. YAML keeps none.
    pub comments: Vec<Comment>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comment {
    /// The comment's text after `#`, as written.
    pub text: String,
    pub span: Span,
    /// True when the comment stands alone on its line (not after code).
    pub own_line: bool,
    /// True when a blank line follows an own-line comment (kept by `fmt`,
    /// so a file's header comment stays apart from what follows).
    pub blank_after: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `pipeline NAME`
    Pipeline(Ident),
    /// `param NAME[: TYPE] [= DEFAULT]`
    Param(Param),
    /// `secret NAME`
    Secret(Ident),
    /// `image "REF"` (pipeline default)
    Image(Interp),
    /// `queue "NAME"` (pipeline default, LANGUAGE.md section 9)
    Queue(Interp),
    /// `env NAME = VALUE` (pipeline default)
    Env(EnvVar),
    /// `import "std/MOD" [as ALIAS]`
    Import(Import),
    /// `template NAME(PARAMS):` + body
    Template(Template),
    /// `NAME: NEEDS...` + body
    Step(Step),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Pipeline(i) | Item::Secret(i) => i.span,
            Item::Param(p) => p.span,
            Item::Image(s) | Item::Queue(s) => s.span,
            Item::Env(e) => e.span,
            Item::Import(i) => i.span,
            Item::Template(t) => t.span,
            Item::Step(s) => s.span,
        }
    }
}

/// `NAME[: TYPE] [= DEFAULT]` — a pipeline param or a template param.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    /// The type as written (`string`, `int`, `bool`, `duration`, `list`);
    /// unknown names are reported by the checker.
    pub ty: Option<Ident>,
    pub default: Option<Value>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EnvVar {
    pub name: Ident,
    pub value: Value,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    /// `std/notify` or `./lib/common.topsail`, as written (unescaped).
    pub path: String,
    pub path_span: Span,
    pub alias: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Directive>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: Ident,
    pub needs: Vec<Ident>,
    pub body: Vec<Directive>,
    /// The whole step: header and body.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Directive {
    pub kind: DirectiveKind,
    /// The whole directive (keyword to end of its value or block).
    pub span: Span,
    /// Just the keyword (`image`, `run`, ...); in YAML, the key.
    pub keyword_span: Span,
}

#[derive(Clone, Debug, PartialEq)]
///
/// The larger, rarer payloads are boxed so that a directive stays small: a
/// 100,000-step file holds over half a million of them.
pub enum DirectiveKind {
    Image(Interp),
    /// One `run` line or block. A step's `run`s are joined with newlines.
    Run(Interp),
    Shell(Interp),
    Env(Box<EnvVar>),
    Workdir(Interp),
    Output(Ident),
    Secret(Ident),
    Timeout(Value),
    Heartbeat(Value),
    Retry(Box<Retry>),
    When(Box<Expr>),
    Foreach(Box<Foreach>),
    Approval(Interp),
    Catch(Ident),
    Use(Use),
    /// `queue "NAME"`: the worker queue serving the step on Step Functions.
    Queue(Interp),
    /// `aws` (None) or `aws role "ARN"`: AWS credentials for the step.
    Aws(Option<Interp>),
}

impl DirectiveKind {
    /// The keyword as written in `.topsail` (YAML uses the same word, plural
    /// for the list-valued `outputs` / `secrets`).
    pub fn keyword(&self) -> &'static str {
        self.kind().name()
    }

    /// Which directive this is.
    pub fn kind(&self) -> Keyword {
        match self {
            DirectiveKind::Image(_) => Keyword::Image,
            DirectiveKind::Run(_) => Keyword::Run,
            DirectiveKind::Shell(_) => Keyword::Shell,
            DirectiveKind::Env(_) => Keyword::Env,
            DirectiveKind::Workdir(_) => Keyword::Workdir,
            DirectiveKind::Output(_) => Keyword::Output,
            DirectiveKind::Secret(_) => Keyword::Secret,
            DirectiveKind::Timeout(_) => Keyword::Timeout,
            DirectiveKind::Heartbeat(_) => Keyword::Heartbeat,
            DirectiveKind::Retry(_) => Keyword::Retry,
            DirectiveKind::When(_) => Keyword::When,
            DirectiveKind::Foreach(_) => Keyword::Foreach,
            DirectiveKind::Approval(_) => Keyword::Approval,
            DirectiveKind::Catch(_) => Keyword::Catch,
            DirectiveKind::Use(_) => Keyword::Use,
            DirectiveKind::Queue(_) => Keyword::Queue,
            DirectiveKind::Aws(_) => Keyword::Aws,
        }
    }
}

/// The words that start a top-level declaration in `.topsail` (LANGUAGE.md
/// section 3); every other top-level line is a step header.
pub const DECLARATIONS: &[&str] = &[
    "pipeline", "param", "secret", "image", "env", "import", "template", "queue",
];

/// The directives of a step or template body (LANGUAGE.md section 4): the one
/// list the `.topsail` reader, the YAML reader and the editor all read, so a
/// new directive is added here once. A test checks it against the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    Image,
    Run,
    Shell,
    Env,
    Workdir,
    Output,
    Secret,
    Timeout,
    Heartbeat,
    Retry,
    When,
    Foreach,
    Approval,
    Catch,
    Use,
    Queue,
    Aws,
}

impl Keyword {
    /// Every directive, in the order the language documents them (and in which
    /// "the directives are ..." help lists them).
    pub const ALL: [Keyword; 17] = [
        Keyword::Image,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Env,
        Keyword::Workdir,
        Keyword::Output,
        Keyword::Secret,
        Keyword::Timeout,
        Keyword::Heartbeat,
        Keyword::Retry,
        Keyword::When,
        Keyword::Foreach,
        Keyword::Approval,
        Keyword::Catch,
        Keyword::Use,
        Keyword::Queue,
        Keyword::Aws,
    ];

    /// The `.topsail` keyword, the YAML key, and what it takes (shown by the
    /// editor).
    fn row(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Keyword::Image => (
                "image",
                "image",
                "image \"REF\": run the step in this container image",
            ),
            Keyword::Run => (
                "run",
                "run",
                "run TEXT, or run: and an indented block: the script",
            ),
            Keyword::Shell => (
                "shell",
                "shell",
                "shell \"bash\": another interpreter for the script",
            ),
            Keyword::Env => ("env", "env", "env NAME = VALUE: environment for this step"),
            Keyword::Workdir => (
                "workdir",
                "workdir",
                "workdir \"/path\": working directory in the container",
            ),
            Keyword::Output => (
                "output",
                "outputs",
                "output NAME: the step promises to set NAME",
            ),
            Keyword::Secret => (
                "secret",
                "secrets",
                "secret NAME: expose a declared secret to this step",
            ),
            Keyword::Timeout => (
                "timeout",
                "timeout",
                "timeout DURATION: kill the attempt after this long",
            ),
            Keyword::Heartbeat => (
                "heartbeat",
                "heartbeat",
                "heartbeat DURATION: Step Functions heartbeat interval",
            ),
            Keyword::Retry => (
                "retry",
                "retry",
                "retry N [every DURATION] [backoff FACTOR]",
            ),
            Keyword::When => (
                "when",
                "when",
                "when EXPR: run only if EXPR is true, else skip",
            ),
            Keyword::Foreach => (
                "foreach",
                "foreach",
                "foreach VAR in LIST: run once per item",
            ),
            Keyword::Approval => (
                "approval",
                "approval",
                "approval \"MESSAGE\": a manual gate",
            ),
            Keyword::Catch => ("catch", "catch", "catch STEP: run STEP if this step fails"),
            Keyword::Use => (
                "use",
                "use",
                "use TEMPLATE(ARG = VALUE, ...): fill the body from a template",
            ),
            Keyword::Queue => (
                "queue",
                "queue",
                "queue \"NAME\": served by the workers of that queue on Step Functions",
            ),
            Keyword::Aws => (
                "aws",
                "aws",
                "aws [role \"ARN\"]: AWS credentials for the step (secrets)",
            ),
        }
    }

    /// The keyword as written in `.topsail`.
    pub fn name(self) -> &'static str {
        self.row().0
    }

    /// The key in the YAML form: the `.topsail` word, plural for the
    /// list-valued `outputs` and `secrets`.
    pub fn yaml_key(self) -> &'static str {
        self.row().1
    }

    /// What the directive takes, in one line (completion details).
    pub fn summary(self) -> &'static str {
        self.row().2
    }

    /// The directive a `.topsail` line starting with `word` is.
    pub fn from_name(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.name() == word)
    }

    /// The directive a YAML body key is.
    pub fn from_yaml_key(key: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.yaml_key() == key)
    }

    /// Every `.topsail` directive keyword, in [`Keyword::ALL`] order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Keyword::ALL.into_iter().map(Keyword::name)
    }
}

/// `retry N [every DURATION] [backoff FACTOR]`
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub attempts: Value,
    pub every: Option<Value>,
    pub backoff: Option<Value>,
}

/// `foreach VAR in LIST`
#[derive(Clone, Debug, PartialEq)]
pub struct Foreach {
    pub var: Ident,
    pub items: ForeachItems,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ForeachItems {
    /// A list literal (a `Value` of kind `List`).
    List(Value),
    /// The name of a `list` param.
    Param(Ident),
}

/// `use TEMPLATE(ARG = VALUE, ...)`; `template` is `NAME` or `MOD.NAME`.
#[derive(Clone, Debug, PartialEq)]
pub struct Use {
    pub template: Vec<Ident>,
    pub args: Vec<Arg>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Ident,
    pub value: Value,
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub kind: ValueKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ValueKind {
    Str(Interp),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A duration as written (`90s`, `15m`); validated by the checker.
    Duration(String),
    List(Vec<Value>),
}

/// Text with `{{ EXPR }}` holes: a string literal, a `run` script, an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Interp {
    pub parts: Vec<Part>,
    /// The whole text (for a string literal: including its quotes).
    pub span: Span,
}

impl Interp {
    /// A plain text with no holes.
    pub fn literal(text: impl Into<String>, span: Span) -> Self {
        let text = text.into();
        Self {
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Lit(text)]
            },
            span,
        }
    }

    /// The text as written in the language: literal parts as they are, holes
    /// as `{{ a.b }}`.
    pub fn source_text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref(r) => {
                    out.push_str("{{ ");
                    out.push_str(&r.dotted());
                    out.push_str(" }}");
                }
                Part::Value(v, _) => {
                    out.push_str("{{ \"");
                    out.push_str(&crate::model::text::escape(v));
                    out.push_str("\" }}");
                }
            }
        }
        out
    }

    /// The literal text when there is no hole.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) | Part::Value(s, _) => out.push_str(s),
                Part::Ref(_) => return None,
            }
        }
        Some(out)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Lit(String),
    Ref(Ref),
    /// A template argument's value put where the template's `{{ PARAM }}`
    /// stood (that hole's span): in a `run` it stays data, never code. Only
    /// template expansion makes these; parsers never do.
    Value(String, Span),
}

/// A reference inside `{{ }}` or a `when` expression: `name` or `a.b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ref {
    pub path: Vec<Ident>,
    pub span: Span,
}

impl Ref {
    pub fn dotted(&self) -> String {
        self.path
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// A `when` expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
    /// `( EXPR )`, kept so that `fmt` prints what was written.
    Paren(Box<Expr>),
    Lit(Value),
    Ref(Ref),
}

#[cfg(test)]
mod tests {
    use super::{DECLARATIONS, Keyword};

    const GRAMMAR: &str = include_str!("../../grammar/topsail.pest");

    /// `(rule name, first keyword)` of every `NAME_line = { SOI ~ kw_WORD ...`
    /// rule, and whether it is in the grammar's "step directives" section.
    fn keyword_lines() -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        let mut in_directives = false;
        let mut lines = GRAMMAR.lines();
        while let Some(line) = lines.next() {
            if line.starts_with("// ----") {
                in_directives = line.ends_with("step directives");
            }
            let Some((rule, body)) = line.split_once('=') else {
                continue;
            };
            let rule = rule.trim();
            let Some(body) = body.trim().strip_prefix('{') else {
                continue;
            };
            if !rule.ends_with("_line") {
                continue;
            }
            // A rule written over several lines starts on the next one.
            let body = if body.trim().is_empty() {
                lines.next().unwrap_or("")
            } else {
                body
            };
            let first = body
                .trim()
                .strip_prefix("SOI ~ kw_")
                .and_then(|r| r.split_whitespace().next());
            match first {
                Some(first) => out.push((rule.to_string(), first.to_string(), in_directives)),
                None => assert!(
                    !in_directives,
                    "directive rule `{rule}` does not start with `SOI ~ kw_WORD`"
                ),
            }
        }
        out
    }

    /// The literal a `kw_WORD` rule matches.
    fn keyword_literal(word: &str) -> Option<&'static str> {
        let head = format!("kw_{word} ");
        let line = GRAMMAR.lines().find(|l| l.starts_with(&head))?;
        line.split('"').nth(1)
    }

    #[test]
    fn every_directive_of_the_grammar_is_in_the_list() {
        let lines = keyword_lines();
        assert!(lines.len() > 15, "the grammar's line rules were not found");
        for (rule, word, in_directives) in &lines {
            assert_eq!(
                rule,
                &format!("{word}_line"),
                "rule `{rule}` starts with `kw_{word}`"
            );
            let known = Keyword::from_name(word).is_some() || DECLARATIONS.contains(&word.as_str());
            assert!(
                known,
                "`{word}` ({rule}) is in the grammar but in neither list"
            );
            if *in_directives {
                assert!(
                    Keyword::from_name(word).is_some(),
                    "directive `{word}` is not a Keyword"
                );
            }
        }
        for keyword in Keyword::ALL {
            let name = keyword.name();
            assert_eq!(keyword_literal(name), Some(name), "no `kw_{name}` rule");
            assert!(
                lines.iter().any(|(_, w, _)| w == name),
                "no `{name}_line` rule in the grammar"
            );
        }
        for name in DECLARATIONS {
            assert_eq!(keyword_literal(name), Some(*name), "no `kw_{name}` rule");
            assert!(
                lines.iter().any(|(_, w, d)| w == name && !d),
                "no top-level `{name}_line` rule in the grammar"
            );
        }
    }

    #[test]
    fn keywords_round_trip_through_their_names_and_yaml_keys() {
        for keyword in Keyword::ALL {
            assert_eq!(Keyword::from_name(keyword.name()), Some(keyword));
            assert_eq!(Keyword::from_yaml_key(keyword.yaml_key()), Some(keyword));
        }
        assert_eq!(Keyword::from_yaml_key("output"), None);
        assert_eq!(Keyword::from_name("outputs"), None);
    }
}
