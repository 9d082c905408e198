//! Lowering: the declarations of all loaded files -> the model. Runs in
//! phases so that every phase can report all it finds: declarations (params,
//! secrets, defaults, templates), step names, the DAG (unknown needs, cycles),
//! then each step's directives (templates expanded, types and references
//! checked), then whole-pipeline checks (catch handlers, unused names).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indexmap::IndexMap;
use petgraph::graph::DiGraph;

use crate::diagnostics::{Diagnostic, Involved, codes, suggest};
use crate::model::limits::MAX_STATE_NAME;
use crate::model::text::{is_env_name, is_name};
use crate::model::{
    self, Action, Foreach, ForeachItems, Param, Pipeline, Retry, Script, Secret, Step, StepId,
    Text, Type, Value,
};
use crate::source::Span;
use crate::syntax::ast::{self, DirectiveKind, Item, Part};

use super::Unit;
use super::refs::{self, Ctx};

/// The most seconds Step Functions accepts in `TimeoutSeconds`,
/// `HeartbeatSeconds` and a retrier's `IntervalSeconds` (and the most
/// `MaxAttempts`).
pub const MAX_ASL_SECONDS: u64 = 99_999_999;

/// What references are resolved against.
pub(crate) struct Env {
    pub params: IndexMap<String, Param>,
    pub used_params: RefCell<HashSet<String>>,
    pub steps: Vec<StepInfo>,
    by_name: HashMap<String, usize>,
    /// Direct needs, resolved (filled once the DAG is built).
    needs: Vec<Vec<usize>>,
}

pub(crate) struct StepInfo {
    pub name: String,
    pub span: Span,
    pub outputs: Vec<String>,
    pub foreach: bool,
    /// `as` alias of the module the step came from.
    pub alias: Option<String>,
}

impl Env {
    /// Find a step by name; inside an aliased module, its own steps first.
    pub fn step_index(&self, name: &str, from: Option<usize>) -> Option<usize> {
        if let Some(alias) = from.and_then(|f| self.steps[f].alias.as_deref())
            && let Some(&i) = self.by_name.get(&format!("{alias}.{name}"))
        {
            return Some(i);
        }
        self.by_name.get(name).copied()
    }

    /// Is `a` among the steps `b` needs, directly or through others?
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        // Direct needs answer almost every real reference at once; only then walk.
        if self.needs[b].contains(&a) {
            return true;
        }
        let mut seen = HashSet::new();
        let mut stack = self.needs[b].clone();
        while let Some(s) = stack.pop() {
            if s == a {
                return true;
            }
            if seen.insert(s) {
                stack.extend(self.needs[s].iter().copied());
            }
        }
        false
    }
}

/// A step as declared, with the file-level defaults that apply to it.
struct Decl<'a> {
    ast: &'a ast::Step,
    unit: usize,
    name: String,
}

struct Template<'a> {
    ast: &'a ast::Template,
}

struct Defaults {
    image: Option<ast::Interp>,
    env: Vec<ast::EnvVar>,
}

pub(crate) fn lower(
    units: &[Unit],
    default_name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Pipeline> {
    // Phase 1: declarations.
    let mut pipeline_name: Option<&ast::Ident> = None;
    let mut params: IndexMap<String, Param> = IndexMap::new();
    let mut secrets: IndexMap<String, (Secret, bool)> = IndexMap::new();
    let mut templates: HashMap<(Option<String>, String), Template> = HashMap::new();
    let mut decls: Vec<Decl> = Vec::new();
    let mut defaults: Vec<Defaults> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let mut image: Option<&ast::Interp> = None;
        let mut env: Vec<ast::EnvVar> = Vec::new();
        for item in &unit.module.items {
            match item {
                Item::Pipeline(name) => {
                    if !unit.is_root {
                        continue;
                    }
                    if let Some(first) = pipeline_name {
                        diags.push(duplicate_decl("pipeline", name.span, first.span));
                    } else {
                        check_name(&name.name, name.span, "pipeline", diags);
                        pipeline_name = Some(name);
                    }
                }
                Item::Param(p) => {
                    if let Some(first) = params.get(&p.name.name) {
                        diags.push(
                            Diagnostic::error(
                                codes::DUPLICATE_PARAM,
                                p.name.span,
                                format!("param `{}` is declared twice", p.name.name),
                            )
                            .label("declared again here")
                            .secondary(first.span, "first declared here")
                            .help("remove one of them, or rename one"),
                        );
                    } else {
                        let before = diags.len();
                        if let Some(param) = lower_param(p, diags) {
                            params.insert(p.name.name.clone(), param);
                        } else {
                            // The param is not declared now, and the names its
                            // default uses are not used: both follow from the
                            // errors just reported.
                            let uses = p.default.as_ref().map(value_refs).unwrap_or_default();
                            for d in diags[before..].iter_mut().filter(|d| d.is_error()) {
                                d.involves.push(Involved::Declares(p.name.name.clone()));
                                d.involves.extend(uses.iter().cloned().map(Involved::Uses));
                            }
                        }
                    }
                }
                Item::Secret(s) => {
                    if !is_env_name(&s.name) {
                        diags.push(bad_env_name(&s.name, s.span, "secret"));
                    }
                    if let Some((first, _)) = secrets.get(&s.name) {
                        if unit.is_root && first.span.file == s.span.file {
                            diags.push(duplicate_decl(
                                &format!("secret {}", s.name),
                                s.span,
                                first.span,
                            ));
                        }
                    } else {
                        secrets.insert(
                            s.name.clone(),
                            (
                                Secret {
                                    name: s.name.clone(),
                                    span: s.span,
                                },
                                !unit.is_root,
                            ),
                        );
                    }
                }
                Item::Image(i) => {
                    check_image(i, diags);
                    if let Some(first) = image {
                        diags.push(duplicate_decl("image", i.span, first.span));
                    } else {
                        image = Some(i);
                    }
                }
                Item::Env(e) => {
                    if !is_env_name(&e.name.name) {
                        diags.push(bad_env_name(&e.name.name, e.name.span, "env"));
                    }
                    if let Some(first) = env.iter().find(|x| x.name.name == e.name.name) {
                        diags.push(duplicate_decl(
                            &format!("env {}", e.name.name),
                            e.name.span,
                            first.name.span,
                        ));
                    } else {
                        env.push(e.clone());
                    }
                }
                Item::Import(_) => {}
                Item::Template(t) => {
                    let key = (unit.alias.clone(), t.name.name.clone());
                    if let Some(first) = templates.get(&key) {
                        diags.push(duplicate_decl(
                            &format!("template {}", t.name.name),
                            t.name.span,
                            first.ast.name.span,
                        ));
                    } else {
                        templates.insert(key, Template { ast: t });
                    }
                }
                Item::Step(s) => {
                    let name = match &unit.alias {
                        Some(a) => format!("{a}.{}", s.name.name),
                        None => s.name.name.clone(),
                    };
                    decls.push(Decl {
                        ast: s,
                        unit: u,
                        name,
                    });
                }
            }
        }
        defaults.push(Defaults {
            image: image.cloned(),
            env,
        });
    }
    // A module's own defaults apply to its steps; the root's fill the gaps.
    let root_defaults = Defaults {
        image: defaults.first().and_then(|d| d.image.clone()),
        env: defaults.first().map(|d| d.env.clone()).unwrap_or_default(),
    };

    // Phase 2: step names.
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(decls.len());
    let mut kept: Vec<Decl> = Vec::with_capacity(decls.len());
    for decl in decls {
        check_name(&decl.ast.name.name, decl.ast.name.span, "step", diags);
        if decl.name.len() > MAX_STATE_NAME {
            diags.push(
                Diagnostic::error(
                    codes::STATE_NAME,
                    decl.ast.name.span,
                    format!(
                        "step name is {} characters; Step Functions allows at most {MAX_STATE_NAME}",
                        decl.name.len()
                    ),
                )
                .label("too long for a Step Functions state name")
                .help("shorten the name"),
            );
        }
        if let Some(&first) = by_name.get(&decl.name) {
            diags.push(
                Diagnostic::error(
                    codes::DUPLICATE_STEP,
                    decl.ast.name.span,
                    format!("step `{}` is declared twice", decl.name),
                )
                .label("declared again here")
                .secondary(kept[first].ast.name.span, "first declared here")
                .help("rename one of them, or merge their bodies"),
            );
            continue;
        }
        by_name.insert(decl.name.clone(), kept.len());
        kept.push(decl);
    }
    let decls = kept;

    // Expand templates now: outputs and foreach must be known before any
    // reference is resolved.
    let bodies: Vec<Cow<[ast::Directive]>> = decls
        .iter()
        .map(|d| expand(d, units, &templates, diags))
        .collect();

    let steps_info: Vec<StepInfo> = decls
        .iter()
        .zip(&bodies)
        .map(|(d, body)| StepInfo {
            name: d.name.clone(),
            span: d.ast.name.span,
            outputs: body
                .iter()
                .filter_map(|x| match &x.kind {
                    DirectiveKind::Output(o) => Some(o.name.clone()),
                    _ => None,
                })
                .collect(),
            foreach: body
                .iter()
                .any(|x| matches!(x.kind, DirectiveKind::Foreach(_))),
            alias: units[d.unit].alias.clone(),
        })
        .collect();
    let mut env = Env {
        params,
        used_params: RefCell::new(HashSet::new()),
        steps: steps_info,
        by_name,
        needs: Vec::new(),
    };

    // Phase 3: the DAG.
    let mut graph: DiGraph<StepId, ()> = DiGraph::with_capacity(decls.len(), decls.len() * 2);
    for i in 0..decls.len() {
        graph.add_node(StepId(i));
    }
    let mut needs: Vec<Vec<usize>> = Vec::with_capacity(decls.len());
    for (i, d) in decls.iter().enumerate() {
        let mut mine: Vec<usize> = Vec::with_capacity(d.ast.needs.len());
        for need in &d.ast.needs {
            if let Some(j) = env.step_index(&need.name, Some(i)) {
                if mine.contains(&j) {
                    diags.push(
                        Diagnostic::warning(
                            codes::DUPLICATE_DIRECTIVE,
                            need.span,
                            format!(
                                "`{}` is listed twice in the needs of `{}`",
                                need.name, d.name
                            ),
                        )
                        .label("listed again")
                        .help("remove the repetition"),
                    );
                } else {
                    mine.push(j);
                    graph.add_edge(StepId(j).node(), StepId(i).node(), ());
                }
            } else {
                let mut diag = Diagnostic::error(
                    codes::UNKNOWN_STEP,
                    need.span,
                    format!(
                        "step `{}` needs `{}`, which does not exist",
                        d.name, need.name
                    ),
                )
                .label("no step has this name")
                .about_unknown(need.name.clone());
                diag = match suggest(&need.name, env.steps.iter().map(|s| s.name.as_str())) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!(
                        "declare a step `{}:` or remove it from the needs",
                        need.name
                    )),
                };
                diags.push(diag);
            }
        }
        needs.push(mine);
    }
    let acyclic = report_cycles(&graph, &decls, &needs, diags);
    env.needs = needs;

    // Phase 4: each step.
    let handlers: HashSet<usize> = bodies
        .iter()
        .enumerate()
        .flat_map(|(i, body)| {
            body.iter().filter_map(move |x| match &x.kind {
                DirectiveKind::Catch(c) => Some((i, c)),
                _ => None,
            })
        })
        .filter_map(|(i, c)| env.step_index(&c.name, Some(i)))
        .collect();
    let used_secrets: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    let secret_names: IndexMap<String, Span> = secrets
        .iter()
        .map(|(n, (s, _))| (n.clone(), s.span))
        .collect();
    let mut steps = Vec::with_capacity(decls.len());
    for (i, (d, body)) in decls.iter().zip(&bodies).enumerate() {
        let unit_defaults = &defaults[d.unit];
        let image_default = unit_defaults
            .image
            .as_ref()
            .or(root_defaults.image.as_ref());
        let mut env_defaults: Vec<&ast::EnvVar> = root_defaults.env.iter().collect();
        if d.unit != 0 {
            for e in &unit_defaults.env {
                env_defaults.retain(|x| x.name.name != e.name.name);
                env_defaults.push(e);
            }
        }
        let step = lower_step(
            i,
            d,
            body,
            &StepDefaults {
                image: image_default,
                env: &env_defaults,
            },
            &env,
            handlers.contains(&i),
            &secret_names,
            &used_secrets,
            diags,
        );
        steps.push(step);
    }

    // Phase 5: whole-pipeline checks.
    check_catch(&decls, &bodies, &env, diags);
    for (name, param) in &env.params {
        if !env.used_params.borrow().contains(name) {
            diags.push(
                Diagnostic::warning(
                    codes::UNUSED_PARAM,
                    param.span,
                    format!("param `{name}` is never used"),
                )
                .label("declared here, used nowhere")
                .help(format!("use it as `{{{{ {name} }}}}`, or remove it"))
                .about_unused(name.clone()),
            );
        }
    }
    for (name, (secret, from_module)) in &secrets {
        if !from_module && !used_secrets.borrow().contains(name) {
            diags.push(
                Diagnostic::warning(
                    codes::UNUSED_SECRET,
                    secret.span,
                    format!("secret `{name}` is never given to a step"),
                )
                .label("declared here, requested by no step")
                .help(format!(
                    "add `secret {name}` to the steps that need it, or remove the declaration"
                ))
                .about_unused(name.clone()),
            );
        }
    }

    if !acyclic {
        return None;
    }
    let steps: Vec<Step> = steps.into_iter().collect::<Option<_>>()?;
    let name = pipeline_name.map_or_else(|| default_name.to_string(), |n| n.name.clone());
    Some(Pipeline {
        name,
        params: env.params,
        secrets: secrets.into_iter().map(|(n, (s, _))| (n, s)).collect(),
        steps,
        graph,
    })
}

/// The names the `{{ }}` holes of a value refer to (their first part).
fn value_refs(v: &ast::Value) -> Vec<String> {
    match &v.kind {
        ast::ValueKind::Str(i) => i
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Ref(r) => r.path.first().map(|x| x.name.clone()),
                Part::Lit(_) | Part::Value(..) => None,
            })
            .collect(),
        ast::ValueKind::List(items) => items.iter().flat_map(value_refs).collect(),
        _ => Vec::new(),
    }
}

/// An image reference Docker would refuse is an error here, not at run time.
/// With `{{ }}` holes only the literal text can be judged: the reference must
/// parse with the holes filled by one of a few placeholders (a short name, a
/// long hex-like word, a digest), and the runner checks the rendered one.
fn check_image(i: &ast::Interp, diags: &mut Vec<Diagnostic>) {
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

fn duplicate_decl(what: &str, span: Span, first: Span) -> Diagnostic {
    Diagnostic::error(
        codes::DUPLICATE_DECL,
        span,
        format!("`{what}` is declared twice"),
    )
    .label("declared again here")
    .secondary(first, "first declared here")
    .help("keep one of them")
}

fn bad_env_name(name: &str, span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        codes::BAD_NAME,
        span,
        format!("`{name}` is not a valid {what} name"),
    )
    .label("not an environment variable name")
    .help("use letters, digits and `_`, not starting with a digit (e.g. `API_TOKEN`)")
}

fn check_name(name: &str, span: Span, what: &str, diags: &mut Vec<Diagnostic>) {
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

/// Report every cycle (one diagnostic per strongly connected component),
/// naming each step and labelling each edge. Returns true when there is none.
fn report_cycles(
    graph: &DiGraph<StepId, ()>,
    decls: &[Decl],
    needs: &[Vec<usize>],
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut acyclic = true;
    for scc in petgraph::algo::tarjan_scc(graph) {
        let members: HashSet<usize> = scc.iter().map(|n| n.index()).collect();
        let start = *members.iter().min().expect("an SCC is never empty");
        if members.len() == 1 && !needs[start].contains(&start) {
            continue;
        }
        acyclic = false;
        // Walk needs inside the component from `start` until we return to it.
        let path = cycle_path(start, &members, needs);
        let names: Vec<&str> = path.iter().map(|&i| decls[i].name.as_str()).collect();
        let mut shown = names.clone();
        shown.push(names[0]);
        let mut d = Diagnostic::error(
            codes::CYCLE,
            decls[start].ast.name.span,
            format!("steps form a cycle: {}", shown.join(" -> ")),
        )
        .label(format!("`{}` is part of the cycle", names[0]))
        .help("a step cannot wait for itself: remove one of these needs");
        for (k, &i) in path.iter().enumerate() {
            let next = path[(k + 1) % path.len()];
            if let Some(ident) = decls[i]
                .ast
                .needs
                .iter()
                .find(|n| n.name == decls[next].ast.name.name || n.name == decls[next].name)
            {
                d = d.secondary(
                    ident.span,
                    format!("`{}` needs `{}`", decls[i].name, decls[next].name),
                );
            }
        }
        diags.push(d);
    }
    acyclic
}

fn cycle_path(start: usize, members: &HashSet<usize>, needs: &[Vec<usize>]) -> Vec<usize> {
    // Depth-first search for a path start -> ... -> start along needs.
    let mut stack = vec![(start, 0usize)];
    let mut on_path = vec![start];
    let mut visited = HashSet::from([start]);
    while let Some((node, idx)) = stack.pop() {
        let nexts: Vec<usize> = needs[node]
            .iter()
            .copied()
            .filter(|n| members.contains(n))
            .collect();
        if idx < nexts.len() {
            stack.push((node, idx + 1));
            let n = nexts[idx];
            if n == start {
                return on_path;
            }
            if visited.insert(n) {
                stack.push((n, 0));
                on_path.push(n);
            }
        } else {
            on_path.pop();
        }
    }
    vec![start]
}

fn lower_param(p: &ast::Param, diags: &mut Vec<Diagnostic>) -> Option<Param> {
    check_name(&p.name.name, p.name.span, "param", diags);
    let declared = match &p.ty {
        Some(t) => {
            if let Some(ty) = Type::parse(&t.name) {
                Some(ty)
            } else {
                let kinds = ["string", "int", "bool", "duration", "list"];
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_TYPE,
                    t.span,
                    format!("unknown type `{}`", t.name),
                )
                .label("not a type");
                d = match suggest(&t.name, kinds) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help("the types are string, int, bool, duration and list"),
                };
                diags.push(d);
                return None;
            }
        }
        None => None,
    };
    let default = match &p.default {
        Some(v) => Some(literal(v, declared, "a param default", diags)?),
        None => None,
    };
    let ty = declared
        .or_else(|| default.as_ref().map(Value::ty))
        .unwrap_or(Type::String);
    Some(Param {
        name: p.name.name.clone(),
        ty,
        default,
        span: p.name.span,
    })
}

/// A literal value, converted to `expected` when given. Strings may stand for
/// durations, ints for floats; anything else that does not fit is a mismatch.
pub(crate) fn literal(
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
                    .help("use a plain literal here"),
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

fn article(t: Type) -> String {
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

/// The step's directives with `use TEMPLATE(...)` replaced by the template's
/// body (arguments substituted). The step's own single-valued directives win
/// over the template's; its `run` replaces the template's.
fn expand<'a>(
    d: &Decl<'a>,
    units: &[Unit],
    templates: &HashMap<(Option<String>, String), Template>,
    diags: &mut Vec<Diagnostic>,
) -> Cow<'a, [ast::Directive]> {
    let body = &d.ast.body;
    let uses: Vec<(&ast::Directive, &ast::Use)> = body
        .iter()
        .filter_map(|x| match &x.kind {
            DirectiveKind::Use(u) => Some((x, u)),
            _ => None,
        })
        .collect();
    let Some(&(first_dir, use_)) = uses.first() else {
        return Cow::Borrowed(body.as_slice());
    };
    for (dup, _) in uses.iter().skip(1) {
        diags.push(
            Diagnostic::error(
                codes::DUPLICATE_DIRECTIVE,
                dup.keyword_span,
                format!("step `{}` uses more than one template", d.name),
            )
            .label("second `use`")
            .secondary(first_dir.keyword_span, "first `use`")
            .help("a step fills its body from one template; split it into two steps"),
        );
    }
    let path: Vec<&str> = use_.template.iter().map(|i| i.name.as_str()).collect();
    let own_alias = units[d.unit].alias.clone();
    let key = match path.as_slice() {
        [name] => {
            let local = (own_alias.clone(), (*name).to_string());
            if templates.contains_key(&local) {
                local
            } else {
                (None, (*name).to_string())
            }
        }
        [module, name] => (Some((*module).to_string()), (*name).to_string()),
        _ => (None, path.join(".")),
    };
    let name_span = use_.template.first().map_or(use_.span, |f| {
        f.span.to(use_.template.last().map_or(f.span, |l| l.span))
    });
    let Some(template) = templates.get(&key) else {
        let written = path.join(".");
        let known: Vec<String> = templates
            .keys()
            .map(|(m, n)| match m {
                Some(m) => format!("{m}.{n}"),
                None => n.clone(),
            })
            .collect();
        let mut diag = Diagnostic::error(
            codes::UNKNOWN_TEMPLATE,
            name_span,
            format!("unknown template `{written}`"),
        )
        .label("no template has this name")
        .about_unknown(written.clone());
        diag = match suggest(&written, known.iter().map(String::as_str)) {
            Some(s) => diag.help(format!("did you mean `{s}`?")),
            None => diag.help(
                "declare it with `template NAME(...):`, or import the module that has it (e.g. `import \"std/notify\"`)",
            ),
        };
        diags.push(diag);
        return body
            .iter()
            .filter(|x| !matches!(x.kind, DirectiveKind::Use(_)))
            .cloned()
            .collect();
    };
    let t = template.ast;
    // Arguments against the template's parameters.
    let mut args: HashMap<String, ast::Value> = HashMap::new();
    for arg in &use_.args {
        let Some(p) = t.params.iter().find(|p| p.name.name == arg.name.name) else {
            let mut diag = Diagnostic::error(
                codes::TEMPLATE_ARGS,
                arg.name.span,
                format!(
                    "template `{}` has no parameter `{}`",
                    t.name.name, arg.name.name
                ),
            )
            .label("unknown argument")
            .secondary(t.name.span, "template declared here");
            diag = match suggest(
                &arg.name.name,
                t.params.iter().map(|p| p.name.name.as_str()),
            ) {
                Some(s) => diag.help(format!("did you mean `{s}`?")),
                None => diag.help(format!(
                    "its parameters are: {}",
                    t.params
                        .iter()
                        .map(|p| p.name.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            diags.push(diag);
            continue;
        };
        if args.contains_key(&arg.name.name) {
            diags.push(
                Diagnostic::error(
                    codes::TEMPLATE_ARGS,
                    arg.name.span,
                    format!("argument `{}` is given twice", arg.name.name),
                )
                .label("given again")
                .help("give each argument once"),
            );
            continue;
        }
        // Type-check literal arguments; strings may hold `{{ }}` (checked where used).
        let ty = p.ty.as_ref().and_then(|t| Type::parse(&t.name));
        let is_text = matches!(arg.value.kind, ast::ValueKind::Str(_));
        if !(is_text && matches!(ty, None | Some(Type::String))) {
            let _ = literal(&arg.value, ty, "a template argument", diags);
        }
        args.insert(arg.name.name.clone(), arg.value.clone());
    }
    for p in &t.params {
        if !args.contains_key(&p.name.name) {
            if let Some(v) = &p.default {
                args.insert(p.name.name.clone(), v.clone());
            } else {
                // Stand in an empty value so the body does not also
                // report `{{ name }}` as unknown: one problem, one error.
                args.insert(
                    p.name.name.clone(),
                    ast::Value {
                        kind: ast::ValueKind::Str(ast::Interp::literal("", use_.span)),
                        span: use_.span,
                    },
                );
                diags.push(
                    Diagnostic::error(
                        codes::TEMPLATE_ARGS,
                        use_.span,
                        format!(
                            "template `{}` needs the argument `{}`",
                            t.name.name, p.name.name
                        ),
                    )
                    .label(format!("`{}` is missing", p.name.name))
                    .secondary(p.name.span, "required parameter declared here")
                    .help(format!("add `{} = ...` to the arguments", p.name.name)),
                );
            }
        }
    }
    // The template's body with parameters substituted, then the step's own
    // directives, which override single-valued ones.
    let own: Vec<&ast::Directive> = body
        .iter()
        .filter(|x| !matches!(x.kind, DirectiveKind::Use(_)))
        .collect();
    let own_has = |kw: &str| own.iter().any(|x| x.kind.keyword() == kw);
    let mut out: Vec<ast::Directive> = Vec::new();
    for x in &t.body {
        let kw = x.kind.keyword();
        let multi = matches!(kw, "env" | "output" | "secret");
        if !multi && own_has(kw) {
            continue;
        }
        if let DirectiveKind::Env(e) = &x.kind
            && own
                .iter()
                .any(|o| matches!(&o.kind, DirectiveKind::Env(oe) if oe.name.name == e.name.name))
        {
            continue;
        }
        out.push(substitute(x, &args));
    }
    out.extend(own.into_iter().cloned());
    Cow::Owned(out)
}

fn substitute(x: &ast::Directive, args: &HashMap<String, ast::Value>) -> ast::Directive {
    let sub = |i: &ast::Interp| subst_interp(i, args, false);
    let kind = match &x.kind {
        DirectiveKind::Image(i) => DirectiveKind::Image(sub(i)),
        // In a script an argument is a value like any other: data, not code.
        DirectiveKind::Run(i) => DirectiveKind::Run(subst_interp(i, args, true)),
        DirectiveKind::Shell(i) => DirectiveKind::Shell(sub(i)),
        DirectiveKind::Workdir(i) => DirectiveKind::Workdir(sub(i)),
        DirectiveKind::Approval(i) => DirectiveKind::Approval(sub(i)),
        DirectiveKind::Env(e) => DirectiveKind::Env(Box::new(ast::EnvVar {
            value: subst_value(&e.value, args),
            ..(**e).clone()
        })),
        DirectiveKind::Timeout(v) => DirectiveKind::Timeout(subst_value(v, args)),
        DirectiveKind::Heartbeat(v) => DirectiveKind::Heartbeat(subst_value(v, args)),
        DirectiveKind::When(e) => DirectiveKind::When(Box::new(subst_expr(e, args))),
        other => other.clone(),
    };
    ast::Directive {
        kind,
        span: x.span,
        keyword_span: x.keyword_span,
    }
}

/// The template's text with its parameters' holes filled from the
/// arguments. `data` (a `run`): an argument's literal text becomes
/// [`Part::Value`], a value the script gets as data, at the hole's span; the
/// holes inside an argument (`"app:{{ build.VERSION }}"`) stay holes.
fn subst_interp(i: &ast::Interp, args: &HashMap<String, ast::Value>, data: bool) -> ast::Interp {
    let mut parts = Vec::with_capacity(i.parts.len());
    let lit = |s: String, span: Span| {
        if data {
            Part::Value(s, span)
        } else {
            Part::Lit(s)
        }
    };
    for p in &i.parts {
        match p {
            Part::Ref(r) if r.path.len() == 1 && args.contains_key(&r.path[0].name) => {
                match &args[&r.path[0].name].kind {
                    ast::ValueKind::Str(s) if s.parts.is_empty() => {
                        parts.push(lit(String::new(), r.span));
                    }
                    ast::ValueKind::Str(s) => parts.extend(s.parts.iter().map(|q| match q {
                        Part::Lit(t) => lit(t.clone(), r.span),
                        other => other.clone(),
                    })),
                    other => parts.push(lit(value_text(other), r.span)),
                }
            }
            other => parts.push(other.clone()),
        }
    }
    // Merge neighbouring literals so the result looks like parsed text.
    let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
    for p in parts {
        match (merged.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    ast::Interp {
        parts: merged,
        span: i.span,
    }
}

fn subst_value(v: &ast::Value, args: &HashMap<String, ast::Value>) -> ast::Value {
    match &v.kind {
        ast::ValueKind::Str(i) => {
            // A whole-string hole naming a non-string argument takes its value as is
            // (so `timeout {{ limit }}`-style uses keep their type).
            if let [Part::Ref(r)] = i.parts.as_slice()
                && r.path.len() == 1
                && let Some(arg) = args.get(&r.path[0].name)
            {
                return arg.clone();
            }
            ast::Value {
                kind: ast::ValueKind::Str(subst_interp(i, args, false)),
                span: v.span,
            }
        }
        _ => v.clone(),
    }
}

fn subst_expr(e: &ast::Expr, args: &HashMap<String, ast::Value>) -> ast::Expr {
    use ast::ExprKind as K;
    let b = |x: &ast::Expr| Box::new(subst_expr(x, args));
    let kind = match &e.kind {
        K::Or(x, y) => K::Or(b(x), b(y)),
        K::And(x, y) => K::And(b(x), b(y)),
        K::Eq(x, y) => K::Eq(b(x), b(y)),
        K::Ne(x, y) => K::Ne(b(x), b(y)),
        K::Not(x) => K::Not(b(x)),
        K::Paren(x) => K::Paren(b(x)),
        K::Ref(r) if r.path.len() == 1 && args.contains_key(&r.path[0].name) => {
            K::Lit(args[&r.path[0].name].clone())
        }
        other => other.clone(),
    };
    ast::Expr { kind, span: e.span }
}

fn value_text(v: &ast::ValueKind) -> String {
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

struct StepDefaults<'a> {
    image: Option<&'a ast::Interp>,
    env: &'a [&'a ast::EnvVar],
}

/// One step's directives -> a model step. `None` when something was wrong
/// (already reported).
#[allow(clippy::too_many_arguments)]
fn lower_step(
    i: usize,
    d: &Decl,
    body: &[ast::Directive],
    defaults: &StepDefaults,
    env: &Env,
    is_handler: bool,
    secrets: &IndexMap<String, Span>,
    used_secrets: &RefCell<HashSet<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Step> {
    let errors_before = diags.iter().filter(|x| x.is_error()).count();
    // Single-valued directives may appear once.
    let mut first_of: HashMap<&'static str, &ast::Directive> = HashMap::new();
    for x in body {
        let kw = x.kind.keyword();
        if matches!(kw, "run" | "env" | "output" | "secret" | "use") {
            continue;
        }
        if let Some(first) = first_of.get(kw) {
            diags.push(
                Diagnostic::error(
                    codes::DUPLICATE_DIRECTIVE,
                    x.keyword_span,
                    format!("`{kw}` is given twice in step `{}`", d.name),
                )
                .label("given again here")
                .secondary(first.keyword_span, "first given here")
                .help(format!("keep one `{kw}`")),
            );
        } else {
            first_of.insert(kw, x);
        }
    }
    let foreach_var = body.iter().find_map(|x| match &x.kind {
        DirectiveKind::Foreach(f) => Some(f.var.name.as_str()),
        _ => None,
    });
    let ctx = Ctx {
        step: Some(i),
        foreach_var,
        is_handler,
    };
    let text =
        |interp: &ast::Interp, diags: &mut Vec<Diagnostic>| refs::text(interp, &ctx, env, diags);

    let mut image = None;
    let mut image_dir = None;
    let mut run_parts: Vec<(&ast::Directive, Text)> = Vec::new();
    let mut shell = None;
    let mut step_env: IndexMap<String, Text> = IndexMap::new();
    let mut workdir = None;
    let mut outputs: Vec<String> = Vec::new();
    let mut step_secrets: Vec<String> = Vec::new();
    let mut timeout = None;
    let mut heartbeat: Option<(Duration, Span)> = None;
    let mut retry = None;
    let mut when = None;
    let mut foreach = None;
    let mut approval: Option<(&ast::Directive, Text)> = None;
    let mut catch = None;
    for x in body {
        match &x.kind {
            DirectiveKind::Image(i) => {
                check_image(i, diags);
                image = Some(text(i, diags));
                image_dir = Some(x);
            }
            DirectiveKind::Run(r) => {
                // A YAML `|` block ends in a newline, a `.topsail` block does
                // not; the script means the same, so the model drops it.
                let mut t = text(r, diags);
                if let Some(model::Piece::Lit(last)) = t.parts.last_mut() {
                    let kept = last.trim_end_matches(['\n', '\r']).len();
                    last.truncate(kept);
                    if last.is_empty() {
                        t.parts.pop();
                    }
                }
                run_parts.push((x, t));
            }
            DirectiveKind::Shell(s) => match s.as_literal() {
                Some(sh) if !sh.trim().is_empty() => shell = Some(sh),
                _ => diags.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        s.span,
                        "`shell` must be a plain program name",
                    )
                    .label("empty or computed")
                    .help("write the interpreter, e.g. `shell \"bash\"`"),
                ),
            },
            DirectiveKind::Env(e) => {
                if !is_env_name(&e.name.name) {
                    diags.push(bad_env_name(&e.name.name, e.name.span, "env"));
                }
                let value = env_value(&e.value, &ctx, env, diags);
                if step_env.insert(e.name.name.clone(), value).is_some() {
                    diags.push(
                        Diagnostic::error(
                            codes::DUPLICATE_DIRECTIVE,
                            e.name.span,
                            format!("env `{}` is set twice in step `{}`", e.name.name, d.name),
                        )
                        .label("set again here")
                        .help("set each variable once"),
                    );
                }
            }
            DirectiveKind::Workdir(w) => workdir = Some(text(w, diags)),
            DirectiveKind::Output(o) => {
                check_name(&o.name, o.span, "output", diags);
                if outputs.contains(&o.name) {
                    diags.push(
                        Diagnostic::warning(
                            codes::DUPLICATE_DIRECTIVE,
                            o.span,
                            format!("output `{}` is declared twice", o.name),
                        )
                        .label("declared again")
                        .help("declare each output once"),
                    );
                } else {
                    outputs.push(o.name.clone());
                }
            }
            DirectiveKind::Secret(s) => {
                if secrets.contains_key(&s.name) {
                    used_secrets.borrow_mut().insert(s.name.clone());
                    if !step_secrets.contains(&s.name) {
                        step_secrets.push(s.name.clone());
                    }
                } else {
                    let mut diag = Diagnostic::error(
                        codes::UNDECLARED_SECRET,
                        s.span,
                        format!("secret `{}` is not declared", s.name),
                    )
                    .label("unknown secret")
                    .about_unknown(s.name.clone());
                    diag = match suggest(&s.name, secrets.keys().map(String::as_str)) {
                        Some(found) => diag.help(format!("did you mean `{found}`?")),
                        None => diag.help(format!(
                            "declare it at the top of the file: `secret {}`",
                            s.name
                        )),
                    };
                    diags.push(diag);
                }
            }
            DirectiveKind::Timeout(v) => {
                timeout = positive_duration(v, "timeout", diags).map(|t| (t, v.span));
            }
            DirectiveKind::Heartbeat(v) => {
                heartbeat = positive_duration(v, "heartbeat", diags).map(|t| (t, v.span));
            }
            DirectiveKind::Retry(r) => retry = lower_retry(r, diags),
            DirectiveKind::When(e) => when = refs::cond(e, &ctx, env, diags),
            DirectiveKind::Foreach(f) => foreach = lower_foreach(f, env, diags),
            DirectiveKind::Approval(m) => approval = Some((x, text(m, diags))),
            DirectiveKind::Catch(c) => catch = Some(c),
            DirectiveKind::Use(_) => {}
        }
    }
    // Environment variables named in the script that are secrets but not requested.
    for (_, run) in &run_parts {
        for piece in &run.parts {
            let model::Piece::Lit(s) = piece else {
                continue;
            };
            for name in secrets.keys() {
                if step_secrets.contains(name) || !mentions_var(s, name) {
                    continue;
                }
                diags.push(
                    Diagnostic::warning(
                        codes::SECRET_NOT_REQUESTED,
                        run_parts[0].0.span,
                        format!("the script uses `${name}`, a secret this step did not ask for"),
                    )
                    .label("the variable will be empty here")
                    .help(format!("add `secret {name}` to step `{}`", d.name)),
                );
            }
        }
    }
    if approval.is_none() {
        hole_problems(&run_parts, shell.as_deref(), diags);
    }
    if let (Some((hb, hb_span)), Some((t, t_span))) = (heartbeat, timeout)
        && hb >= t
    {
        diags.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                hb_span,
                "the heartbeat interval must be shorter than the timeout",
            )
            .label("heartbeat")
            .secondary(t_span, "timeout")
            .help("Step Functions requires HeartbeatSeconds < TimeoutSeconds"),
        );
    }
    if let Some((appr, _)) = &approval {
        let mut conflicts: Vec<(Span, &str)> = Vec::new();
        if let Some(img) = image_dir {
            conflicts.push((img.keyword_span, "image"));
        }
        for (r, _) in &run_parts {
            conflicts.push((r.keyword_span, "run"));
        }
        if let Some(sh) = first_of.get("shell") {
            conflicts.push((sh.keyword_span, "shell"));
        }
        if !conflicts.is_empty() {
            let what: Vec<&str> = conflicts.iter().map(|(_, w)| *w).collect();
            let mut diag = Diagnostic::error(
                codes::APPROVAL_CONFLICT,
                appr.keyword_span,
                format!(
                    "step `{}` is an approval gate and cannot also have {}",
                    d.name,
                    what.iter()
                        .map(|w| format!("`{w}`"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )
            .label("a manual gate runs nothing");
            for (span, w) in &conflicts {
                diag = diag.secondary(*span, format!("`{w}` here"));
            }
            diags.push(diag.help("move the commands into a separate step that needs this gate"));
        }
    }
    let errors_after = diags.iter().filter(|x| x.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let mut merged_env: IndexMap<String, Text> = IndexMap::new();
    for e in defaults.env {
        let value = env_value(
            &e.value,
            &Ctx {
                step: None,
                foreach_var: None,
                is_handler: false,
            },
            env,
            diags,
        );
        merged_env.insert(e.name.name.clone(), value);
    }
    for (k, v) in step_env {
        merged_env.shift_remove(&k);
        merged_env.insert(k, v);
    }
    let action = if let Some((_, message)) = approval {
        Action::Approval { message }
    } else {
        let mut run = Text::default();
        for (k, (_, t)) in run_parts.into_iter().enumerate() {
            if k > 0 {
                run.parts.push(model::Piece::Lit("\n".into()));
            }
            run.parts.extend(t.parts);
        }
        merge_lits(&mut run);
        // A step with nothing to run (`all: build test`) only groups its
        // needs: it runs on the host and does nothing.
        let image = if run.parts.is_empty() {
            None
        } else {
            image.or_else(|| {
                defaults.image.map(|i| {
                    refs::text(
                        i,
                        &Ctx {
                            step: None,
                            foreach_var: None,
                            is_handler: false,
                        },
                        env,
                        diags,
                    )
                })
            })
        };
        Action::Script(Script { image, shell, run })
    };
    Some(Step {
        id: StepId(i),
        name: d.name.clone(),
        span: d.ast.name.span,
        needs: env.needs[i].iter().map(|&n| StepId(n)).collect(),
        need_names: env.needs[i]
            .iter()
            .map(|&n| env.steps[n].name.clone())
            .collect(),
        action,
        env: merged_env,
        workdir,
        outputs,
        secrets: step_secrets,
        timeout: timeout.map(|(t, _)| t),
        heartbeat: heartbeat.map(|(h, _)| h),
        retry,
        when,
        foreach,
        catch: catch
            .and_then(|c| env.step_index(&c.name, Some(i)))
            .map(|c| env.steps[c].name.clone()),
        is_handler,
    })
}

/// Holes in the script that no reference to their value can serve
/// (LANGUAGE.md section 5): an error on each, with a fix.
fn hole_problems(
    run_parts: &[(&ast::Directive, Text)],
    shell: Option<&str>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut run = Text::default();
    let mut spans = Vec::new();
    for (k, (x, t)) in run_parts.iter().enumerate() {
        if k > 0 {
            run.parts.push(model::Piece::Lit("\n".into()));
        }
        run.parts.extend(t.parts.iter().cloned());
        if let DirectiveKind::Run(i) = &x.kind {
            spans.extend(i.parts.iter().filter_map(|p| match p {
                Part::Ref(r) => Some(r.span),
                Part::Value(_, span) => Some(*span),
                Part::Lit(_) => None,
            }));
        }
    }
    merge_lits(&mut run);
    let holes = run
        .parts
        .iter()
        .filter(|p| !matches!(p, model::Piece::Lit(_)))
        .count();
    // A hole that did not resolve is reported already and missing here.
    if holes != spans.len() {
        return;
    }
    let shown: Vec<String> = run
        .parts
        .iter()
        .filter_map(|p| match p {
            model::Piece::Ref(r) => Some(format!("{{{{ {r} }}}}")),
            model::Piece::Value(_) => Some("{{ ... }}".to_string()),
            model::Piece::Lit(_) => None,
        })
        .collect();
    for (h, problem) in model::script_problems(&run, shell) {
        let span = spans[h];
        let hole = &shown[h];
        diags.push(match problem {
            model::HoleProblem::QuotedHeredoc => Diagnostic::error(
                codes::HOLE_IN_QUOTED_HEREDOC,
                span,
                "a value cannot stand in a heredoc whose delimiter is quoted",
            )
            .label("nothing expands in this heredoc, so the value cannot reach it")
            .help(format!(
                "unquote the delimiter (`<<EOF`; then a `$`, `` ` `` or `\\` meant literally in \
                 the body needs a `\\` before it), or keep it quoted and give the value to the \
                 program that reads the heredoc: `env NAME = \"{hole}\"`, and `$NAME` there \
                 (e.g. `sh <<'EOF'` ... `echo \"$NAME\"`)",
            )),
            model::HoleProblem::NotPosixShell => Diagnostic::error(
                codes::HOLE_NOT_POSIX_SHELL,
                span,
                format!(
                    "a value cannot stand in a script for `{}`, which is not a POSIX shell",
                    shell.unwrap_or_default()
                ),
            )
            .label("topsail cannot pass this value to the interpreter as data")
            .help(format!(
                "pass it through the environment: `env NAME = \"{hole}\"`, and read it in the \
                 script (`os.environ[\"NAME\"]` in Python, `process.env.NAME` in Node, \
                 `$ENV{{NAME}}` in Perl)",
            )),
        });
    }
}

fn merge_lits(t: &mut Text) {
    let mut merged: Vec<model::Piece> = Vec::with_capacity(t.parts.len());
    for p in std::mem::take(&mut t.parts) {
        match (merged.last_mut(), p) {
            (Some(model::Piece::Lit(a)), model::Piece::Lit(b)) => a.push_str(&b),
            (_, p) => merged.push(p),
        }
    }
    t.parts = merged;
}

/// Does the script text mention `$NAME` or `${NAME}`?
fn mentions_var(script: &str, name: &str) -> bool {
    script.match_indices(name).any(|(at, _)| {
        let before = &script[..at];
        let after = &script[at + name.len()..];
        let ends = !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        (before.ends_with('$') && ends) || (before.ends_with("${") && after.starts_with('}'))
    })
}

fn env_value(v: &ast::Value, ctx: &Ctx, env: &Env, diags: &mut Vec<Diagnostic>) -> Text {
    match &v.kind {
        ast::ValueKind::Str(i) => refs::text(i, ctx, env, diags),
        other => Text::literal(value_text(other)),
    }
}

fn positive_duration(v: &ast::Value, what: &str, diags: &mut Vec<Diagnostic>) -> Option<Duration> {
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

fn lower_retry(r: &ast::Retry, diags: &mut Vec<Diagnostic>) -> Option<Retry> {
    let attempts = literal(&r.attempts, Some(Type::Int), "the retry count", diags);
    let every = match &r.every {
        Some(v) => positive_duration(v, "retry every", diags),
        None => Some(Duration::from_secs(1)),
    };
    let backoff = match &r.backoff {
        Some(v) => match literal(v, Some(Type::Float), "the backoff factor", diags)? {
            Value::Float(f) if f >= 1.0 && f.is_finite() => Some(f),
            _ => {
                diags.push(
                    Diagnostic::error(
                        codes::BAD_VALUE,
                        v.span,
                        "the backoff factor must be at least 1.0",
                    )
                    .label("each wait is the previous one times this")
                    .help("use `backoff 1.0` for equal waits, `backoff 2.0` to double them (Step Functions' BackoffRate is at least 1.0)")
                    .fix("1.0")
                    .fix("2.0"),
                );
                None
            }
        },
        None => Some(2.0),
    };
    let max_attempts = match attempts? {
        Value::Int(n) if (0..=99_999_999).contains(&n) => u32::try_from(n).ok()?,
        _ => {
            diags.push(
                Diagnostic::error(
                    codes::BAD_VALUE,
                    r.attempts.span,
                    "the retry count must be between 0 and 99999999",
                )
                .label("out of range")
                .help("give how many more attempts to make after a failure, at most 99999999 (Step Functions' MaxAttempts), e.g. `retry 2`")
                .fix("2"),
            );
            return None;
        }
    };
    Some(Retry {
        max_attempts,
        interval: every?,
        backoff: backoff?,
    })
}

fn lower_foreach(f: &ast::Foreach, env: &Env, diags: &mut Vec<Diagnostic>) -> Option<Foreach> {
    check_name(&f.var.name, f.var.span, "loop variable", diags);
    let items = match &f.items {
        ast::ForeachItems::List(v) => match literal(v, Some(Type::List), "`foreach`", diags)? {
            Value::List(items) => ForeachItems::List(items),
            _ => return None,
        },
        ast::ForeachItems::Param(p) => match env.params.get(&p.name) {
            Some(param) if param.ty == Type::List => {
                env.used_params.borrow_mut().insert(p.name.clone());
                ForeachItems::Param(p.name.clone())
            }
            Some(param) => {
                diags.push(
                    Diagnostic::error(
                        codes::TYPE_MISMATCH,
                        p.span,
                        format!(
                            "`foreach` needs a list, but param `{}` is {}",
                            p.name,
                            article(param.ty)
                        ),
                    )
                    .label("not a list")
                    .secondary(param.span, "declared here")
                    .help(format!("declare it as `param {}: list`", p.name))
                    .uses([p.name.clone()]),
                );
                return None;
            }
            None => {
                let mut diag = Diagnostic::error(
                    codes::UNKNOWN_REFERENCE,
                    p.span,
                    format!("unknown param `{}`", p.name),
                )
                .label("not a param")
                .about_unknown(p.name.clone());
                diag = match suggest(&p.name, env.params.keys().map(String::as_str)) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!(
                        "declare `param {}: list = [...]`, or write the list here: `foreach {} in [\"a\", \"b\"]`",
                        p.name, f.var.name
                    )),
                };
                diags.push(diag);
                return None;
            }
        },
    };
    Some(Foreach {
        var: f.var.name.clone(),
        items,
    })
}

/// A catch handler must exist, must not catch itself, must have no needs,
/// and no other step may need it.
fn check_catch(
    decls: &[Decl],
    bodies: &[Cow<[ast::Directive]>],
    env: &Env,
    diags: &mut Vec<Diagnostic>,
) {
    let mut reported_needs: HashSet<usize> = HashSet::new();
    for (i, body) in bodies.iter().enumerate() {
        for x in body.iter() {
            let DirectiveKind::Catch(c) = &x.kind else {
                continue;
            };
            let Some(h) = env.step_index(&c.name, Some(i)) else {
                let mut diag = Diagnostic::error(
                    codes::UNKNOWN_STEP,
                    c.span,
                    format!("catch handler `{}` does not exist", c.name),
                )
                .label("no step has this name")
                .about_unknown(c.name.clone());
                diag = match suggest(&c.name, env.steps.iter().map(|s| s.name.as_str())) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!(
                        "declare a step `{}:` with no needs to handle the failure",
                        c.name
                    )),
                };
                diags.push(diag);
                continue;
            };
            if h == i {
                diags.push(
                    Diagnostic::error(
                        codes::CATCH_NEEDED,
                        c.span,
                        "a step cannot be its own catch handler",
                    )
                    .label("names this step")
                    .help("declare a separate handler step"),
                );
                continue;
            }
            if !decls[h].ast.needs.is_empty() && reported_needs.insert(h) {
                let first = &decls[h].ast.needs[0];
                diags.push(
                    Diagnostic::error(
                        codes::CATCH_HAS_NEEDS,
                        first.span,
                        format!("catch handler `{}` must not need other steps", decls[h].name),
                    )
                    .label("a handler runs when a failure happens, whatever ran before")
                    .secondary(c.span, format!("used as a handler by `{}`", decls[i].name))
                    .help(format!("remove the needs of `{}`; it sees `{{{{ failed.step }}}}` and `{{{{ failed.error }}}}`", decls[h].name)),
                );
            }
            for (j, d) in decls.iter().enumerate() {
                if let Some(need) = d
                    .ast
                    .needs
                    .iter()
                    .find(|n| env.step_index(&n.name, Some(j)) == Some(h))
                {
                    diags.push(
                        Diagnostic::error(
                            codes::CATCH_NEEDED,
                            need.span,
                            format!(
                                "step `{}` needs `{}`, which is a catch handler",
                                d.name, decls[h].name
                            ),
                        )
                        .label("a handler runs only when a step fails")
                        .secondary(
                            c.span,
                            format!(
                                "`{}` is the catch handler of `{}`",
                                decls[h].name, decls[i].name
                            ),
                        )
                        .help(format!(
                            "remove `{}` from these needs, or use a separate step as the handler",
                            decls[h].name
                        )),
                    );
                }
            }
        }
    }
}
