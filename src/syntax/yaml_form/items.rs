//! The top level: the pipeline's name, params, secrets, image, env,
//! imports, templates and steps.

use std::rc::Rc;

use super::scalars::NameKind;
use super::{Cx, IMPORT_KEYS, PARAM_KEYS, TOP_KEYS, body_keys};
use crate::source::Span;
use crate::syntax::ast::{EnvVar, Import, Item, Module, Param, Step, Template};
use crate::syntax::yaml_tree::{Kind, Node, Scalar};

impl Cx<'_> {
    pub(super) fn module(&mut self, root: Option<&Rc<Node>>) -> Module {
        let span = Span::new(self.pos.file, 0, self.text.len());
        let mut items = Vec::new();
        if let Some(root) = root {
            let entries = self.map_entries(
                root,
                "a map of top-level keys",
                "a pipeline file is a map with keys like `pipeline`, `params` and `steps`",
            );
            let mut seen = Vec::new();
            for (k, v) in entries {
                if let Some(key) = self.key_text(&k)
                    && self.first_time(&mut seen, &key, &k, "at the top level")
                {
                    self.top_item(&key, &k, &v, &mut items);
                }
            }
        }
        Module {
            items,
            comments: Vec::new(),
            span,
        }
    }

    fn top_item(&mut self, key: &str, k: &Node, v: &Node, items: &mut Vec<Item>) {
        match key {
            "pipeline" => {
                if let Some(name) = self.name(v, "pipeline", NameKind::Name) {
                    items.push(Item::Pipeline(name));
                }
            }
            "params" => {
                for (pk, pv) in self.map_entries(
                    v,
                    "a map of params",
                    "write `params:` then one `NAME: DEFAULT` or `NAME: {type: TYPE}` per line",
                ) {
                    if let Some(p) = self.param(&pk, &pv) {
                        items.push(Item::Param(p));
                    }
                }
            }
            "secrets" => {
                for name in self.names(v, "secret", NameKind::Env) {
                    items.push(Item::Secret(name));
                }
            }
            "image" => {
                if let Some(i) =
                    self.interp(v, "write the image reference, e.g. `image: alpine:3.20`")
                {
                    items.push(Item::Image(i));
                }
            }
            "queue" => {
                if let Some(i) = self.interp(v, "write the queue's name, e.g. `queue: gpu`") {
                    items.push(Item::Queue(i));
                }
            }
            "env" => {
                for (ek, ev) in self.map_entries(
                    v,
                    "a map of environment variables",
                    "write `env: {NAME: VALUE}`",
                ) {
                    if let Some(e) = self.env_var(&ek, &ev) {
                        items.push(Item::Env(e));
                    }
                }
            }
            "imports" => match &v.kind {
                Kind::Seq(list) => {
                    for entry in list {
                        if let Some(i) = self.import(entry) {
                            items.push(Item::Import(i));
                        }
                    }
                }
                _ if v.is_null() => {}
                _ => self.expected(
                    v,
                    "a list of imports",
                    "write `imports: [std/notify]` or a list of `{path: ..., as: NAME}`",
                ),
            },
            "templates" => {
                for (tk, tv) in self.map_entries(
                    v,
                    "a map of templates",
                    "write `templates:` then `NAME:` and the template's keys",
                ) {
                    if let Some(t) = self.template(&tk, &tv) {
                        items.push(Item::Template(t));
                    }
                }
            }
            "steps" => {
                for (sk, sv) in self.map_entries(
                    v,
                    "a map of steps",
                    "write `steps:` then `NAME:` and the step's keys, one step per entry",
                ) {
                    if let Some(s) = self.step(&sk, &sv) {
                        items.push(Item::Step(s));
                    }
                }
            }
            extension if extension.starts_with("x-") => {}
            other => self.unknown_key(k, other, TOP_KEYS, "at the top level"),
        }
    }

    fn param(&mut self, k: &Node, v: &Node) -> Option<Param> {
        let name = self.name(k, "param", NameKind::Name)?;
        let span = k.span.to(v.span);
        let (ty, default) = match &v.kind {
            Kind::Map(_) => {
                let mut ty = None;
                let mut default = None;
                for (field, _, fv) in self.fields(v, PARAM_KEYS, "in a param") {
                    if field == "type" {
                        ty = self.name(&fv, "type", NameKind::Name);
                    } else {
                        default = self.value(&fv);
                    }
                }
                (ty, default)
            }
            _ if v.is_null() => (None, None),
            _ => (None, Some(self.value(v)?)),
        };
        Some(Param {
            name,
            ty,
            default,
            span,
        })
    }

    pub(super) fn env_var(&mut self, k: &Node, v: &Node) -> Option<EnvVar> {
        let name = self.name(k, "environment variable", NameKind::Env)?;
        let value = self.value(v)?;
        Some(EnvVar {
            name,
            value,
            span: k.span.to(v.span),
        })
    }

    fn import(&mut self, entry: &Rc<Node>) -> Option<Import> {
        let (path_node, alias) = match &entry.kind {
            Kind::Map(_) => {
                let mut path = None;
                let mut alias = None;
                for (field, _, fv) in self.fields(entry, IMPORT_KEYS, "in an import") {
                    if field == "path" {
                        path = Some(fv);
                    } else {
                        alias = self.name(&fv, "module alias", NameKind::Name);
                    }
                }
                let Some(path) = path else {
                    self.shape(
                        entry.span,
                        "import without `path`",
                        "write `{path: ./lib.topsail, as: lib}`",
                    );
                    return None;
                };
                (path, alias)
            }
            _ => (Rc::clone(entry), None),
        };
        if path_node.scalar() != Some(Scalar::Str) {
            self.expected(
                &path_node,
                "a module path",
                "write `std/NAME` or a relative path like `./lib.topsail`",
            );
            return None;
        }
        Some(Import {
            path: path_node.text().unwrap_or_default().to_owned(),
            path_span: path_node.span,
            alias,
            span: entry.span,
        })
    }

    fn template(&mut self, k: &Node, v: &Node) -> Option<Template> {
        let name = self.name(k, "template", NameKind::Name)?;
        let mut params = Vec::new();
        let mut body = Vec::new();
        let mut seen = Vec::new();
        let place = format!("in template `{}`", name.name);
        for (dk, dv) in self.map_entries(
            v,
            "a map of template keys",
            "a template has `params` and the same keys as a step",
        ) {
            let Some(key) = self.key_text(&dk) else {
                continue;
            };
            if !self.first_time(&mut seen, &key, &dk, &place) {
                continue;
            }
            if key == "params" {
                for (pk, pv) in self.map_entries(
                    &dv,
                    "a map of params",
                    "write `params: {NAME: DEFAULT, OTHER: {type: string}}`",
                ) {
                    params.extend(self.param(&pk, &pv));
                }
            } else if !self.directive(&key, &dk, &dv, &mut body) {
                self.unknown_key(&dk, &key, &body_keys("params"), "in a template");
            }
        }
        Some(Template {
            name,
            params,
            body,
            span: k.span.to(v.span),
        })
    }

    fn step(&mut self, k: &Node, v: &Node) -> Option<Step> {
        let name = self.name(k, "step", NameKind::Name)?;
        let mut needs = Vec::new();
        let mut body = Vec::new();
        let mut seen = Vec::new();
        let place = format!("in step `{}`", name.name);
        for (dk, dv) in self.map_entries(
            v,
            "a map of step keys",
            "a step is a map with keys like `needs`, `image` and `run`",
        ) {
            let Some(key) = self.key_text(&dk) else {
                continue;
            };
            if !self.first_time(&mut seen, &key, &dk, &place) {
                continue;
            }
            if key == "needs" {
                needs.extend(self.names(&dv, "step", NameKind::Name));
            } else if !self.directive(&key, &dk, &dv, &mut body) {
                self.unknown_key(&dk, &key, &body_keys("needs"), "in a step");
            }
        }
        Some(Step {
            name,
            needs,
            body,
            span: k.span.to(v.span),
        })
    }
}
