//! A small deterministic JSON -> YAML printer for `--to asl-yaml` (block
//! style, keys in the JSON's order). Strings that YAML could read as
//! something else are written as JSON strings, which are valid YAML
//! double-quoted scalars, so the YAML loads back to the same JSON.

use serde_json::Value as Json;

pub fn to_yaml(v: &Json) -> String {
    let mut out = String::new();
    match v {
        Json::Object(m) if !m.is_empty() => object(m, 0, &mut out),
        Json::Array(a) if !a.is_empty() => array(a, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn object(m: &serde_json::Map<String, Json>, indent: usize, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of an object inside a list item shares the `- ` line.
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str(&string(k));
        out.push(':');
        value(v, indent, out);
    }
}

fn array(a: &[Json], indent: usize, out: &mut String) {
    for v in a {
        pad(out, indent);
        out.push_str("- ");
        match v {
            Json::Object(m) if !m.is_empty() => object(m, indent + 2, out),
            Json::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                array(inner, indent + 2, out);
            }
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

/// After `key:`.
fn value(v: &Json, indent: usize, out: &mut String) {
    match v {
        Json::Object(m) if !m.is_empty() => {
            out.push('\n');
            object(m, indent + 2, out);
        }
        Json::Array(a) if !a.is_empty() => {
            out.push('\n');
            array(a, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Json) -> String {
    match v {
        Json::Null => "null".into(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => string(s),
        Json::Array(_) => "[]".into(),
        Json::Object(_) => "{}".into(),
    }
}

fn string(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string always serializes")
    }
}

/// Conservative: letters, digits and a few punctuation marks that mean
/// nothing to YAML in the middle of a plain scalar, and nothing YAML 1.1 or
/// 1.2 would read as a bool, null or number.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '_' || first == '/') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _-./()$".contains(c))
    {
        return false;
    }
    if s.ends_with(' ') {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null" | "nan" | "inf"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Load YAML with saphyr and turn it into JSON, to check the round trip.
    fn load(text: &str) -> Json {
        use saphyr::{LoadableYamlNode, Yaml};
        fn conv(y: &Yaml) -> Json {
            match y {
                Yaml::Value(s) => match s {
                    saphyr::Scalar::Null => Json::Null,
                    saphyr::Scalar::Boolean(b) => json!(b),
                    saphyr::Scalar::Integer(i) => json!(i),
                    saphyr::Scalar::FloatingPoint(f) => json!(f.into_inner()),
                    saphyr::Scalar::String(s) => json!(s.to_string()),
                },
                Yaml::Sequence(a) => Json::Array(a.iter().map(conv).collect()),
                Yaml::Mapping(m) => Json::Object(
                    m.iter()
                        .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), conv(v)))
                        .collect(),
                ),
                other => panic!("unexpected {other:?}"),
            }
        }
        conv(&Yaml::load_from_str(text).unwrap()[0])
    }

    #[test]
    fn round_trips() {
        let v = json!({
            "Comment": "topsail pipeline x",
            "States": {"a-b (when)": {"Choices": [{"Variable": "$.params.x", "BooleanEquals": true, "Next": "a"}],
                "Result": {}, "List": [], "Nested": [[1, 2], {"k": null}], "Rate": 2.5, "n": 3,
                "yes": "no", "s": "it's: a \"test\"\nline 2", "e": "", "num": "12"}}
        });
        let y = to_yaml(&v);
        assert_eq!(load(&y), v, "{y}");
    }
}
