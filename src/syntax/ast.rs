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
            Item::Image(s) => s.span,
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
}

impl DirectiveKind {
    /// The keyword as written in `.topsail` (YAML uses the same word, plural
    /// for the list-valued `outputs` / `secrets`).
    pub fn keyword(&self) -> &'static str {
        match self {
            DirectiveKind::Image(_) => "image",
            DirectiveKind::Run(_) => "run",
            DirectiveKind::Shell(_) => "shell",
            DirectiveKind::Env(_) => "env",
            DirectiveKind::Workdir(_) => "workdir",
            DirectiveKind::Output(_) => "output",
            DirectiveKind::Secret(_) => "secret",
            DirectiveKind::Timeout(_) => "timeout",
            DirectiveKind::Heartbeat(_) => "heartbeat",
            DirectiveKind::Retry(_) => "retry",
            DirectiveKind::When(_) => "when",
            DirectiveKind::Foreach(_) => "foreach",
            DirectiveKind::Approval(_) => "approval",
            DirectiveKind::Catch(_) => "catch",
            DirectiveKind::Use(_) => "use",
        }
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
