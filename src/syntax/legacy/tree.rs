//! The manifest as an owned tree with byte spans: the bounded YAML tree of
//! [`crate::syntax::yaml_tree`] (the one reading of YAML for every reader, with
//! alias expansion and nesting bounded) with aliases copied out and merge
//! keys (`<<`) applied. The context collapse and JSON encoding of
//! the old runner work on this tree, so they keep every span for diagnostics.

#[cfg(test)]
use crate::source::FileId;
use crate::source::Span;
use crate::syntax::yaml_tree::{self, Scalar};

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; a later duplicate key replaces an earlier one.
    Map(Vec<(Node, Node)>),
    /// A scalar its tag cannot parse.
    Bad,
}

impl Node {
    /// A scalar's text as a script gets it (docs/legacy.md: booleans are
    /// `true`/`false`); `None` for collections.
    pub fn scalar_text(&self) -> Option<String> {
        Some(match &self.kind {
            Kind::Null | Kind::Bad => String::new(),
            // As written (JSON's spelling), not Perl's `1` / empty: a script
            // can tell `false` from a value never set.
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => s.clone(),
            Kind::Seq(_) | Kind::Map(_) => return None,
        })
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The value of a map entry whose key reads `key`, with the key node.
    pub fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_text().as_deref() == Some(key))
            .map(|(k, v)| (k, v))
    }

    /// How a map key compares with a context name or a field name.
    pub fn key_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Null => Some("null".into()),
            _ => self.scalar_text(),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map",
            Kind::Bad => "an invalid value",
        }
    }

    /// The compact JSON the old runner made of maps and lists (`encode_json`),
    /// keys in document order.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null | Kind::Bad => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Int(i) => J::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Kind::Str(s) => J::String(s.clone()),
            Kind::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Read `text` into its first document's tree; `None` for an empty file or
/// invalid YAML (which the ordinary YAML front end then reports).
#[cfg(test)]
pub(crate) fn load(text: &str, file: FileId) -> Option<Node> {
    let tree = yaml_tree::read(text, file);
    let root = tree.root.ok()??;
    Some(from_yaml(&root, text))
}

/// The owned tree of a node of the bounded YAML tree, aliases copied. The
/// copies are bounded: the YAML reader refuses a document whose aliases
/// expand past its limit, so this makes at most `node.size` nodes.
pub(crate) fn from_yaml(node: &yaml_tree::Node, text: &str) -> Node {
    let mut span = node.span;
    let kind = match &node.kind {
        yaml_tree::Kind::Scalar { text: t, .. } => {
            // A block scalar's span ends at the next token: stop at its text.
            span.end = span.start
                + text
                    .get(span.start..span.end)
                    .map_or(0, |t| t.trim_end().len());
            match node.scalar() {
                Some(Scalar::Null) => Kind::Null,
                Some(Scalar::Bool(b)) => Kind::Bool(b),
                Some(Scalar::Int(i)) => Kind::Int(i),
                // Too big for an integer: a number, as the old loader read it.
                Some(Scalar::BigInt) => {
                    t.parse().map_or_else(|_| Kind::Str(t.clone()), Kind::Float)
                }
                Some(Scalar::Float(f)) => Kind::Float(f),
                Some(Scalar::Duration | Scalar::Str) => Kind::Str(t.clone()),
                Some(Scalar::BadTagged) | None => Kind::Bad,
            }
        }
        yaml_tree::Kind::Seq(items) => {
            Kind::Seq(items.iter().map(|n| from_yaml(n, text)).collect())
        }
        yaml_tree::Kind::Map(map) => {
            let mut entries: Vec<(Node, Node)> = Vec::new();
            let mut merged: Vec<(Node, Node)> = Vec::new();
            for (k, v) in map {
                let key = from_yaml(k, text);
                let value = from_yaml(v, text);
                if key.as_str() == Some("<<") {
                    // Merge keys: earlier sources win among themselves, and
                    // keys written in the map itself win over all of them.
                    let sources = match value.kind {
                        Kind::Seq(items) => items,
                        _ => vec![value],
                    };
                    for source in sources {
                        if let Kind::Map(m) = source.kind {
                            for (mk, mv) in m {
                                if !contains(&merged, &mk) {
                                    merged.push((mk, mv));
                                }
                            }
                        }
                    }
                    continue;
                }
                insert(&mut entries, key, value);
            }
            for (k, v) in merged {
                if !contains(&entries, &k) {
                    entries.push((k, v));
                }
            }
            Kind::Map(entries)
        }
    };
    Node { kind, span }
}

fn contains(entries: &[(Node, Node)], key: &Node) -> bool {
    let k = key.key_text();
    entries.iter().any(|(e, _)| e.key_text() == k)
}

fn insert(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    let k = key.key_text();
    if let Some(slot) = entries.iter_mut().find(|(e, _)| e.key_text() == k) {
        *slot = (key, value);
    } else {
        entries.push((key, value));
    }
}

/// The old runner's context collapse: for each context in order, every map
/// (anywhere) holding that context as a key is replaced by that key's value,
/// which is collapsed in turn.
pub(crate) fn collapse(node: &Node, contexts: &[String]) -> Node {
    contexts
        .iter()
        .fold(node.clone(), |n, c| collapse_one(&n, c))
}

fn collapse_one(node: &Node, context: &str) -> Node {
    match &node.kind {
        Kind::Map(entries) => {
            if let Some((_, v)) = entries
                .iter()
                .find(|(k, _)| k.key_text().as_deref() == Some(context))
            {
                return collapse_one(v, context);
            }
            Node {
                kind: Kind::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (k.clone(), collapse_one(v, context)))
                        .collect(),
                ),
                span: node.span,
            }
        }
        Kind::Seq(items) => Node {
            kind: Kind::Seq(items.iter().map(|n| collapse_one(n, context)).collect()),
            span: node.span,
        },
        _ => node.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node {
        load(text, FileId(0)).expect("test YAML parses")
    }

    #[test]
    fn aliases_and_merge_keys() {
        let t = tree("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  j: 3\nc: *x\n");
        let (_, b) = t.get("b").expect("b");
        assert_eq!(b.to_json(), serde_json::json!({"j": 3, "k": 1}));
        let (_, c) = t.get("c").expect("c");
        assert_eq!(c.to_json(), serde_json::json!({"k": 1, "j": 2}));
    }

    #[test]
    fn collapse_in_order_and_recursively() {
        let t = tree("x: {prod: {blue: 1, green: 2}, dev: 0}\ny: [{prod: a}]\n");
        let one = collapse(&t, &["prod".into()]);
        assert_eq!(
            one.to_json(),
            serde_json::json!({"x": {"blue": 1, "green": 2}, "y": ["a"]})
        );
        let two = collapse(&t, &["prod".into(), "green".into()]);
        assert_eq!(two.to_json(), serde_json::json!({"x": 2, "y": ["a"]}));
        // Order matters: the first context decides which branch is taken.
        let t = tree("x: {prod: {green: 1}, green: {prod: 2}}\n");
        let pg = collapse(&t, &["prod".into(), "green".into()]);
        assert_eq!(pg.to_json(), serde_json::json!({"x": 1}));
        let gp = collapse(&t, &["green".into(), "prod".into()]);
        assert_eq!(gp.to_json(), serde_json::json!({"x": 2}));
    }

    #[test]
    fn spans_are_bytes() {
        let text = "é: ü\nkey: value\n";
        let t = tree(text);
        let (k, v) = t.get("key").expect("key");
        assert_eq!(&text[k.span.start..k.span.end], "key");
        assert_eq!(&text[v.span.start..v.span.start + 5], "value");
    }
}
