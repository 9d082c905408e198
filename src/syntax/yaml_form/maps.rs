//! Reading maps: `<<` merge keys resolved, a repeated key reported at both
//! places, and the fields of small fixed-shape maps.

use std::collections::HashSet;
use std::rc::Rc;

use saphyr_parser::ScalarStyle;

use super::Cx;
use crate::diagnostics::{Diagnostic, codes};
use crate::source::Span;
use crate::syntax::yaml_tree::{Kind, Node, Scalar};

impl Cx<'_> {
    /// The entries of a map with `<<` merge keys resolved: merged entries take
    /// the merge key's place, and keys written in the map itself win.
    pub(super) fn entries(&mut self, map: &Node) -> Vec<(Rc<Node>, Rc<Node>)> {
        let Kind::Map(entries) = &map.kind else {
            return Vec::new();
        };
        let is_merge = |k: &Node| matches!(&k.kind, Kind::Scalar { text, style: ScalarStyle::Plain, tag: None } if text == "<<");
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return entries.clone();
        }
        let mut seen: HashSet<String> = entries
            .iter()
            .filter(|(k, _)| !is_merge(k))
            .filter_map(|(k, _)| k.text().map(str::to_owned))
            .collect();
        let mut out = Vec::new();
        let mut first_merge: Option<Span> = None;
        for (k, v) in entries {
            if !is_merge(k) {
                out.push((Rc::clone(k), Rc::clone(v)));
                continue;
            }
            if let Some(first) = first_merge {
                if self.reported.insert(k.span.start) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::YAML_SHAPE,
                            k.span,
                            "a second `<<` merge key in one map",
                        )
                        .label("repeated merge key")
                        .secondary(first, "the first `<<` is here")
                        .help("YAML allows each key once in a map: merge several maps with one key, `<<: [*a, *b]`"),
                    );
                }
            } else {
                first_merge = Some(k.span);
            }
            let sources: Vec<Rc<Node>> = match &v.kind {
                Kind::Map(_) => vec![Rc::clone(v)],
                Kind::Seq(items) if items.iter().all(|i| matches!(i.kind, Kind::Map(_))) => {
                    items.clone()
                }
                _ => {
                    self.expected(
                        v,
                        "a map or a list of maps to merge",
                        "`<<: *anchor` merges the map defined with `&anchor`",
                    );
                    continue;
                }
            };
            for source in sources {
                for (mk, mv) in self.entries(&source) {
                    let fresh = match mk.text() {
                        Some(t) => seen.insert(t.to_owned()),
                        None => true,
                    };
                    if fresh {
                        out.push((mk, mv));
                    }
                }
            }
        }
        out
    }

    /// Whether `key` (the key node `k`) is new among `seen`; a repeated key
    /// is reported, pointing at both: YAML allows a key once per map, and
    /// reading both (or only one) would silently change the pipeline.
    pub(super) fn first_time(
        &mut self,
        seen: &mut Vec<(String, Span)>,
        key: &str,
        k: &Node,
        place: &str,
    ) -> bool {
        if let Some((_, first)) = seen.iter().find(|(s, _)| s == key) {
            self.diags.push(
                Diagnostic::error(
                    codes::YAML_SHAPE,
                    k.span,
                    format!("`{key}` is given twice {place}"),
                )
                .label("repeated key")
                .secondary(*first, "first given here")
                .help(format!(
                    "a key may appear once in a map: merge the two into one `{key}`"
                )),
            );
            return false;
        }
        seen.push((key.to_owned(), k.span));
        true
    }

    /// A map's entries, or none (with a diagnostic) when `node` is not a map.
    /// A null value is an empty map.
    pub(super) fn map_entries(
        &mut self,
        node: &Node,
        expected: &str,
        help: &str,
    ) -> Vec<(Rc<Node>, Rc<Node>)> {
        match &node.kind {
            Kind::Map(_) => self.entries(node),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.expected(node, expected, help);
                Vec::new()
            }
        }
    }

    /// The text of a key, which must be a string scalar.
    pub(super) fn key_text(&mut self, key: &Node) -> Option<String> {
        if let Some(Scalar::Str) = key.scalar() {
            key.text().map(str::to_owned)
        } else {
            self.expected(
                key,
                "a key name",
                "keys are plain words like `image` or `steps`",
            );
            None
        }
    }

    /// Fields of a small fixed-shape map (`retry`, `foreach`, ...): unknown
    /// and repeated keys are reported here.
    pub(super) fn fields(
        &mut self,
        map: &Node,
        allowed: &[&str],
        place: &str,
    ) -> Vec<(String, Rc<Node>, Rc<Node>)> {
        let mut out: Vec<(String, Rc<Node>, Rc<Node>)> = Vec::new();
        for (k, v) in self.entries(map) {
            let Some(name) = self.key_text(&k) else {
                continue;
            };
            if !allowed.contains(&name.as_str()) {
                self.unknown_key(&k, &name, allowed, place);
            } else if out.iter().any(|(n, _, _)| *n == name) {
                self.shape(
                    k.span,
                    format!("`{name}` is given twice"),
                    "keep one of them",
                );
            } else {
                out.push((name, k, v));
            }
        }
        out
    }

    pub(super) fn has_field(&mut self, map: &Node, name: &str) -> bool {
        self.entries(map)
            .iter()
            .any(|(k, _)| k.text() == Some(name))
    }
}
