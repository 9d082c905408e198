//! Lowering: the declarations of all loaded files -> the model. Runs in
//! phases so that every phase can report all it finds, in this order:
//! declarations (params, secrets, defaults, templates), step names, template
//! expansion ([`templates`](super::templates)), the DAG (unknown needs,
//! cycles: [`dag`](super::dag)), each step's directives (types and references
//! checked: [`directives`](super::directives)), then whole-pipeline checks
//! (catch handlers, unused names). What the phases share is in
//! [`scope`](super::scope); literal values, names and limits are judged in
//! [`values`](super::values).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::diagnostics::{Diagnostic, Involved, codes, suggest};
use crate::model::limits::MAX_STATE_NAME;
use crate::model::text::is_env_name;
use crate::model::{Param, Pipeline, Secret, Step, Type, Value};
use crate::source::Span;
use crate::syntax::ast::{self, DirectiveKind, Item, Part};

use super::Unit;
use super::dag::{report_cycles, resolve_needs};
use super::directives::{StepDefaults, lower_step};
use super::scope::{Decl, Env, StepInfo, Template, Templates};
use super::templates::expand;
use super::values::{bad_env_name, check_image, check_name, literal};

/// A file's own `image` and `env`, the defaults of its steps.
struct Defaults {
    image: Option<ast::Interp>,
    queue: Option<ast::Interp>,
    env: Vec<ast::EnvVar>,
}

/// What the declarations of all files say, before any step is looked into.
struct Declarations<'a> {
    pipeline_name: Option<&'a ast::Ident>,
    params: IndexMap<String, Param>,
    /// Each secret, and whether it comes from an imported module.
    secrets: IndexMap<String, (Secret, bool)>,
    templates: Templates<'a>,
    decls: Vec<Decl<'a>>,
    /// One per unit, in the order of `units`.
    defaults: Vec<Defaults>,
}

pub(super) fn lower(
    units: &[Unit],
    default_name: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Pipeline> {
    let Declarations {
        pipeline_name,
        params,
        secrets,
        templates,
        decls,
        defaults,
    } = declarations(units, diags);
    let (decls, by_name) = step_names(decls, diags);
    // Expand templates now: outputs and foreach must be known before any
    // reference is resolved.
    let bodies: Vec<Cow<[ast::Directive]>> = decls
        .iter()
        .map(|d| expand(d, units, &templates, diags))
        .collect();
    let mut env = Env {
        params,
        used_params: RefCell::new(HashSet::new()),
        steps: step_infos(&decls, &bodies, units),
        by_name,
        needs: Vec::new(),
    };
    // Phase 3: the DAG.
    let (graph, needs) = resolve_needs(&decls, &env, diags);
    let acyclic = report_cycles(&graph, &decls, &needs, diags);
    env.needs = needs;
    let used_secrets: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
    let steps = lower_steps(
        &decls,
        &bodies,
        &defaults,
        &env,
        &secrets,
        &used_secrets,
        diags,
    );
    final_checks(
        &decls,
        &bodies,
        &env,
        &secrets,
        &used_secrets.borrow(),
        diags,
    );

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

/// Phase 1: the pipeline name, params, secrets, templates, file defaults and
/// the steps as declared, from every file.
fn declarations<'a>(units: &'a [Unit], diags: &mut Vec<Diagnostic>) -> Declarations<'a> {
    let mut pipeline_name: Option<&ast::Ident> = None;
    let mut params: IndexMap<String, Param> = IndexMap::new();
    let mut secrets: IndexMap<String, (Secret, bool)> = IndexMap::new();
    let mut templates: Templates = HashMap::new();
    let mut decls: Vec<Decl> = Vec::new();
    let mut defaults: Vec<Defaults> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let mut image: Option<&ast::Interp> = None;
        let mut queue: Option<&ast::Interp> = None;
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
                Item::Queue(q) => {
                    super::fleet::check_queue(q, diags);
                    if let Some(first) = queue {
                        diags.push(duplicate_decl("queue", q.span, first.span));
                    } else {
                        queue = Some(q);
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
            queue: queue.cloned(),
            env,
        });
    }
    Declarations {
        pipeline_name,
        params,
        secrets,
        templates,
        decls,
        defaults,
    }
}

/// Phase 2: each step's name checked, a step declared twice reported and
/// dropped. Returns the steps kept and their index by name.
fn step_names<'a>(
    decls: Vec<Decl<'a>>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Decl<'a>>, HashMap<String, usize>) {
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
    (kept, by_name)
}

/// What references to each step resolve against: its name, outputs, whether
/// it loops, and its module's alias, from its body with templates expanded.
fn step_infos(decls: &[Decl], bodies: &[Cow<[ast::Directive]>], units: &[Unit]) -> Vec<StepInfo> {
    decls
        .iter()
        .zip(bodies)
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
        .collect()
}

/// Phase 4: each step's directives, with the defaults of its file (and the
/// root file's where its own file has none). `None` for a step with errors.
fn lower_steps(
    decls: &[Decl],
    bodies: &[Cow<[ast::Directive]>],
    defaults: &[Defaults],
    env: &Env,
    secrets: &IndexMap<String, (Secret, bool)>,
    used_secrets: &RefCell<HashSet<String>>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Option<Step>> {
    // A module's own defaults apply to its steps; the root's fill the gaps.
    let root_defaults = Defaults {
        image: defaults.first().and_then(|d| d.image.clone()),
        queue: defaults.first().and_then(|d| d.queue.clone()),
        env: defaults.first().map(|d| d.env.clone()).unwrap_or_default(),
    };
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
    let secret_names: IndexMap<String, Span> = secrets
        .iter()
        .map(|(n, (s, _))| (n.clone(), s.span))
        .collect();
    let mut steps = Vec::with_capacity(decls.len());
    for (i, (d, body)) in decls.iter().zip(bodies).enumerate() {
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
                queue: unit_defaults
                    .queue
                    .as_ref()
                    .or(root_defaults.queue.as_ref()),
                env: &env_defaults,
            },
            env,
            handlers.contains(&i),
            &secret_names,
            used_secrets,
            diags,
        );
        steps.push(step);
    }
    steps
}

/// Phase 5: the checks that need every step lowered: catch handlers, and
/// params and secrets that nothing uses.
fn final_checks(
    decls: &[Decl],
    bodies: &[Cow<[ast::Directive]>],
    env: &Env,
    secrets: &IndexMap<String, (Secret, bool)>,
    used_secrets: &HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    check_catch(decls, bodies, env, diags);
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
    for (name, (secret, from_module)) in secrets {
        if !from_module && !used_secrets.contains(name) {
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
