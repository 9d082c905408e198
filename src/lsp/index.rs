//! What the language server knows about one open file: its declarations
//! (steps, params, templates, secrets) and every place a name is used, with
//! spans, built from the AST of `crate::syntax::parse`. Only the open file
//! is indexed; names that come from imports are known by name, not place.

use crate::source::{FileId, Format, SourceMap, Span};
use crate::syntax::ast::{self, DirectiveKind, ExprKind, Ident, Interp, Part, Value, ValueKind};

/// Built-in names usable in `{{ }}` (LANGUAGE.md section 5 and 7).
pub const BUILTINS: &[(&str, &[&str])] = &[
    ("pipeline", &["name"]),
    ("run", &["id"]),
    ("step", &["name"]),
    ("failed", &["step", "error"]),
];

/// What a name at some place refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Step(String),
    Param(String),
    Template(String),
    /// `step.OUTPUT`
    Output(String, String),
    Secret(String),
    /// A parameter of the template whose body the use is in.
    TemplateParam(String, String),
    /// A loop variable of a step's `foreach`.
    LoopVar(String, String),
    /// `pipeline.name`, `run.id`, ...
    Builtin(String),
}

pub struct StepInfo {
    pub name: Ident,
    pub needs: Vec<Ident>,
    pub image: Option<String>,
    pub outputs: Vec<Ident>,
    pub foreach: Option<Ident>,
    pub approval: bool,
    pub catch: Option<Ident>,
    pub uses: Option<String>,
    pub span: Span,
}

pub struct ParamInfo {
    pub name: Ident,
    pub ty: Option<String>,
    pub default: Option<String>,
    /// The type of the default when no type is written.
    pub inferred: Option<&'static str>,
}

pub struct TemplateInfo {
    pub name: Ident,
    pub params: Vec<ParamInfo>,
    pub span: Span,
}

#[derive(Default)]
pub struct Index {
    pub steps: Vec<StepInfo>,
    pub params: Vec<ParamInfo>,
    pub templates: Vec<TemplateInfo>,
    pub secrets: Vec<Ident>,
    pub default_image: Option<String>,
    /// `as MOD` names of imports.
    pub aliases: Vec<String>,
    /// Every use and definition of a name: its span and what it means.
    pub occurrences: Vec<(Span, Target)>,
}

impl Index {
    /// Parse `text` as `.topsail` and index what parsed (a partial module
    /// after syntax errors still gives what came before them).
    pub fn build(text: &str) -> Index {
        let mut sources = SourceMap::new();
        let file = sources.add("<lsp>", None, text.to_string(), Format::Topsail);
        let (module, _) = crate::syntax::parse(&sources, file);
        let mut index = Index::default();
        if let Some(module) = module {
            index.add_module(&module, file);
        }
        index
    }

    pub fn step(&self, name: &str) -> Option<&StepInfo> {
        self.steps.iter().find(|s| s.name.name == name)
    }

    pub fn param(&self, name: &str) -> Option<&ParamInfo> {
        self.params.iter().find(|p| p.name.name == name)
    }

    pub fn template(&self, name: &str) -> Option<&TemplateInfo> {
        self.templates.iter().find(|t| t.name.name == name)
    }

    /// The innermost name at a byte offset (ends inclusive, so a cursor just
    /// after a name still finds it).
    pub fn at(&self, offset: usize) -> Option<&(Span, Target)> {
        self.occurrences
            .iter()
            .filter(|(s, _)| s.start <= offset && offset <= s.end)
            .min_by_key(|(s, _)| s.len())
    }

    /// Where a target is declared.
    pub fn definition(&self, target: &Target) -> Option<Span> {
        match target {
            Target::Step(s) => self.step(s).map(|s| s.name.span),
            Target::Param(p) => self.param(p).map(|p| p.name.span),
            Target::Template(t) => self.template(t).map(|t| t.name.span),
            Target::Output(s, o) => self
                .step(s)
                .and_then(|s| s.outputs.iter().find(|i| i.name == *o))
                .map(|i| i.span),
            Target::Secret(n) => self.secrets.iter().find(|i| i.name == *n).map(|i| i.span),
            Target::TemplateParam(t, p) => self
                .template(t)
                .and_then(|t| t.params.iter().find(|q| q.name.name == *p))
                .map(|p| p.name.span),
            Target::LoopVar(s, _) => self
                .step(s)
                .and_then(|s| s.foreach.as_ref())
                .map(|v| v.span),
            Target::Builtin(_) => None,
        }
    }

    fn add_module(&mut self, module: &ast::Module, _file: FileId) {
        // Declarations first, so uses can be resolved whatever the order.
        for item in &module.items {
            match item {
                ast::Item::Param(p) => self.params.push(param_info(p)),
                ast::Item::Secret(s) => self.secrets.push(s.clone()),
                ast::Item::Image(i) => self.default_image = Some(i.source_text()),
                ast::Item::Import(i) => {
                    if let Some(a) = &i.alias {
                        self.aliases.push(a.name.clone());
                    }
                }
                ast::Item::Template(t) => self.templates.push(TemplateInfo {
                    name: t.name.clone(),
                    params: t.params.iter().map(param_info).collect(),
                    span: t.span,
                }),
                ast::Item::Step(s) => self.steps.push(step_info(s)),
                ast::Item::Pipeline(_) | ast::Item::Env(_) | ast::Item::Queue(_) => {}
            }
        }
        for item in &module.items {
            match item {
                ast::Item::Param(p) => {
                    self.def(p.name.span, Target::Param(p.name.name.clone()));
                    if let Some(v) = &p.default {
                        self.value(v, &Scope::Top);
                    }
                }
                ast::Item::Secret(s) => self.def(s.span, Target::Secret(s.name.clone())),
                ast::Item::Image(i) | ast::Item::Queue(i) => self.interp(i, &Scope::Top),
                ast::Item::Env(e) => self.value(&e.value, &Scope::Top),
                ast::Item::Template(t) => {
                    self.def(t.name.span, Target::Template(t.name.name.clone()));
                    for p in &t.params {
                        let target =
                            Target::TemplateParam(t.name.name.clone(), p.name.name.clone());
                        self.def(p.name.span, target);
                    }
                    let scope = Scope::Template(t.name.name.clone());
                    for d in &t.body {
                        self.directive(d, &scope);
                    }
                }
                ast::Item::Step(s) => {
                    self.def(s.name.span, Target::Step(s.name.name.clone()));
                    for n in &s.needs {
                        self.def(n.span, Target::Step(n.name.clone()));
                    }
                    let scope = Scope::Step {
                        name: s.name.name.clone(),
                        var: step_info(s).foreach.map(|v| v.name),
                    };
                    for d in &s.body {
                        self.directive(d, &scope);
                    }
                }
                ast::Item::Pipeline(_) | ast::Item::Import(_) => {}
            }
        }
    }

    fn def(&mut self, span: Span, target: Target) {
        self.occurrences.push((span, target));
    }

    fn directive(&mut self, d: &ast::Directive, scope: &Scope) {
        match &d.kind {
            DirectiveKind::Image(i)
            | DirectiveKind::Run(i)
            | DirectiveKind::Shell(i)
            | DirectiveKind::Workdir(i)
            | DirectiveKind::Approval(i)
            | DirectiveKind::Queue(i)
            | DirectiveKind::Aws(Some(i)) => self.interp(i, scope),
            DirectiveKind::Aws(None) => {}
            DirectiveKind::Env(e) => self.value(&e.value, scope),
            DirectiveKind::Output(o) => {
                if let Scope::Step { name, .. } = scope {
                    self.def(o.span, Target::Output(name.clone(), o.name.clone()));
                }
            }
            DirectiveKind::Secret(s) => self.def(s.span, Target::Secret(s.name.clone())),
            DirectiveKind::Timeout(v) | DirectiveKind::Heartbeat(v) => self.value(v, scope),
            DirectiveKind::Retry(r) => {
                for v in [Some(&r.attempts), r.every.as_ref(), r.backoff.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    self.value(v, scope);
                }
            }
            DirectiveKind::When(e) => self.expr(e, scope),
            DirectiveKind::Foreach(f) => {
                if let Scope::Step { name, .. } = scope {
                    self.def(
                        f.var.span,
                        Target::LoopVar(name.clone(), f.var.name.clone()),
                    );
                }
                match &f.items {
                    ast::ForeachItems::List(v) => self.value(v, scope),
                    ast::ForeachItems::Param(p) => {
                        let t = self.resolve_single(&p.name, scope);
                        self.def(p.span, t);
                    }
                }
            }
            DirectiveKind::Catch(c) => self.def(c.span, Target::Step(c.name.clone())),
            DirectiveKind::Use(u) => {
                if let [t] = u.template.as_slice() {
                    self.def(t.span, Target::Template(t.name.clone()));
                }
                for a in &u.args {
                    self.value(&a.value, scope);
                }
            }
        }
    }

    fn value(&mut self, v: &Value, scope: &Scope) {
        match &v.kind {
            ValueKind::Str(i) => self.interp(i, scope),
            ValueKind::List(items) => {
                for item in items {
                    self.value(item, scope);
                }
            }
            _ => {}
        }
    }

    fn interp(&mut self, i: &Interp, scope: &Scope) {
        for part in &i.parts {
            if let Part::Ref(r) = part {
                self.reference(&r.path, scope);
            }
        }
    }

    fn expr(&mut self, e: &ast::Expr, scope: &Scope) {
        match &e.kind {
            ExprKind::Or(a, b) | ExprKind::And(a, b) | ExprKind::Eq(a, b) | ExprKind::Ne(a, b) => {
                self.expr(a, scope);
                self.expr(b, scope);
            }
            ExprKind::Not(a) | ExprKind::Paren(a) => self.expr(a, scope),
            ExprKind::Lit(v) => self.value(v, scope),
            ExprKind::Ref(r) => self.reference(&r.path, scope),
        }
    }

    fn reference(&mut self, path: &[Ident], scope: &Scope) {
        match path {
            [one] => {
                let t = self.resolve_single(&one.name, scope);
                self.def(one.span, t);
            }
            [first, second] => {
                if BUILTINS.iter().any(|(b, _)| *b == first.name)
                    && self.step(&first.name).is_none()
                {
                    let dotted = format!("{}.{}", first.name, second.name);
                    self.def(first.span.to(second.span), Target::Builtin(dotted));
                } else {
                    self.def(first.span, Target::Step(first.name.clone()));
                    let t = Target::Output(first.name.clone(), second.name.clone());
                    self.def(second.span, t);
                }
            }
            _ => {}
        }
    }

    /// A bare name: a loop variable, a template parameter, else a param.
    fn resolve_single(&self, name: &str, scope: &Scope) -> Target {
        match scope {
            Scope::Step { name: step, var } if var.as_deref() == Some(name) => {
                Target::LoopVar(step.clone(), name.to_string())
            }
            Scope::Template(t)
                if self
                    .template(t)
                    .is_some_and(|t| t.params.iter().any(|p| p.name.name == name)) =>
            {
                Target::TemplateParam(t.clone(), name.to_string())
            }
            _ => Target::Param(name.to_string()),
        }
    }
}

enum Scope {
    Top,
    Step { name: String, var: Option<String> },
    Template(String),
}

fn param_info(p: &ast::Param) -> ParamInfo {
    ParamInfo {
        name: p.name.clone(),
        ty: p.ty.as_ref().map(|t| t.name.clone()),
        default: p.default.as_ref().map(value_text),
        inferred: p.default.as_ref().map(|v| match v.kind {
            ValueKind::Str(_) => "string",
            ValueKind::Int(_) => "int",
            ValueKind::Float(_) => "float",
            ValueKind::Bool(_) => "bool",
            ValueKind::Duration(_) => "duration",
            ValueKind::List(_) => "list",
        }),
    }
}

fn step_info(s: &ast::Step) -> StepInfo {
    let mut info = StepInfo {
        name: s.name.clone(),
        needs: s.needs.clone(),
        image: None,
        outputs: Vec::new(),
        foreach: None,
        approval: false,
        catch: None,
        uses: None,
        span: s.span,
    };
    for d in &s.body {
        match &d.kind {
            DirectiveKind::Image(i) => info.image = Some(i.source_text()),
            DirectiveKind::Output(o) => info.outputs.push(o.clone()),
            DirectiveKind::Foreach(f) => info.foreach = Some(f.var.clone()),
            DirectiveKind::Approval(_) => info.approval = true,
            DirectiveKind::Catch(c) => info.catch = Some(c.clone()),
            DirectiveKind::Use(u) => {
                info.uses = Some(
                    u.template
                        .iter()
                        .map(|i| i.name.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                );
            }
            _ => {}
        }
    }
    info
}

/// A value as it would be written in the language.
pub fn value_text(v: &Value) -> String {
    match &v.kind {
        ValueKind::Str(i) => format!("\"{}\"", crate::model::text::escape(&i.source_text())),
        ValueKind::Int(n) => n.to_string(),
        ValueKind::Float(f) => format!("{f:?}"),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Duration(d) => d.clone(),
        ValueKind::List(items) => format!(
            "[{}]",
            items.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
    }
}
