//! `when` conditions -> Choice rules, with the meaning documented on
//! [`Cond`]: `==`/`!=` compare by the operands' type, a bare operand is true
//! when it is the bool `true` or the string `"true"`. Operands known at
//! compile time (literals, the pipeline and step names) fold to constants,
//! so a rule may come out always true or always false.

// Operands are `a`/`b`, values `x`/`y`, paths `p`/`q`: the names of the algebra.
#![allow(clippy::many_single_char_names)]

use serde_json::{Map, Value as Json, json};

use crate::model::{Cond, Operand, Ref, Type, Value, format_duration, truthy};

pub(crate) enum Rule {
    Const(bool),
    Json(Map<String, Json>),
}

/// An operand once resolved: a constant or a JSONPath into the state.
enum Opnd {
    Const(Value),
    Path(String, Type),
}

/// `path_of` gives the state path of a reference, or `None` when the value
/// is a compile-time constant given by `const_of`.
pub(crate) struct Resolver<'a> {
    pub path_of: &'a dyn Fn(&Ref) -> Result<Option<String>, String>,
    pub const_of: &'a dyn Fn(&Ref) -> Option<Value>,
}

pub(crate) fn rule(c: &Cond, r: &Resolver) -> Result<Rule, String> {
    Ok(match c {
        Cond::Not(a) => match rule(a, r)? {
            Rule::Const(b) => Rule::Const(!b),
            Rule::Json(j) => Rule::Json(obj([("Not", Json::Object(j))])),
        },
        Cond::And(a, b) => join("And", rule(a, r)?, rule(b, r)?, false),
        Cond::Or(a, b) => join("Or", rule(a, r)?, rule(b, r)?, true),
        Cond::Eq(a, b) => eq(a, b, r)?,
        Cond::Ne(a, b) => match eq(a, b, r)? {
            Rule::Const(x) => Rule::Const(!x),
            Rule::Json(j) => Rule::Json(obj([("Not", Json::Object(j))])),
        },
        Cond::Truthy(a) => match resolve(a, r)? {
            Opnd::Const(v) => Rule::Const(truthy(&v)),
            Opnd::Path(p, Type::Bool) => Rule::Json(var(&p, "BooleanEquals", json!(true))),
            Opnd::Path(p, Type::String) => Rule::Json(var(&p, "StringEquals", json!("true"))),
            Opnd::Path(..) => Rule::Const(false),
        },
    })
}

/// `absorbing` is the value that decides the whole (`true` for Or).
fn join(op: &str, a: Rule, b: Rule, absorbing: bool) -> Rule {
    match (a, b) {
        (Rule::Const(x), _) | (_, Rule::Const(x)) if x == absorbing => Rule::Const(absorbing),
        (Rule::Const(_), other) | (other, Rule::Const(_)) => other,
        (Rule::Json(a), Rule::Json(b)) => {
            let mut items = Vec::new();
            for side in [a, b] {
                // Flatten nested And/And so the rule stays shallow.
                match side.get(op) {
                    Some(Json::Array(inner)) if side.len() == 1 => items.extend(inner.clone()),
                    _ => items.push(Json::Object(side)),
                }
            }
            Rule::Json(obj([(op, Json::Array(items))]))
        }
    }
}

fn eq(a: &Operand, b: &Operand, r: &Resolver) -> Result<Rule, String> {
    let ty = a.ty();
    Ok(match (resolve(a, r)?, resolve(b, r)?) {
        (Opnd::Const(x), Opnd::Const(y)) => Rule::Const(as_typed(ty, x) == as_typed(ty, y)),
        (Opnd::Path(p, _), Opnd::Const(v)) | (Opnd::Const(v), Opnd::Path(p, _)) => {
            let (op, lit) = match ty {
                Type::String => ("StringEquals", json!(v.to_text())),
                Type::Duration => (
                    "StringEquals",
                    json!(match &v {
                        Value::Duration(d) => format_duration(*d),
                        other => other.to_text(),
                    }),
                ),
                Type::Int | Type::Float => ("NumericEquals", v.to_json()),
                Type::Bool => ("BooleanEquals", v.to_json()),
                Type::List => return Err("lists cannot be compared in Step Functions".into()),
            };
            Rule::Json(var(&p, op, lit))
        }
        (Opnd::Path(p, _), Opnd::Path(q, _)) => {
            let op = match ty {
                Type::String | Type::Duration => "StringEqualsPath",
                Type::Int | Type::Float => "NumericEqualsPath",
                Type::Bool => "BooleanEqualsPath",
                Type::List => return Err("lists cannot be compared in Step Functions".into()),
            };
            Rule::Json(var(&p, op, json!(q)))
        }
    })
}

fn as_typed(ty: Type, v: Value) -> Value {
    match ty {
        Type::String => Value::Str(v.to_text()),
        _ => v,
    }
}

fn resolve(op: &Operand, r: &Resolver) -> Result<Opnd, String> {
    Ok(match op {
        Operand::Lit(v) => Opnd::Const(v.clone()),
        Operand::Ref(re, ty) => match (r.path_of)(re)? {
            Some(p) => Opnd::Path(p, *ty),
            None => {
                Opnd::Const((r.const_of)(re).ok_or_else(|| format!("`{re}` has no value here"))?)
            }
        },
    })
}

fn var(path: &str, op: &str, value: Json) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("Variable".into(), json!(path));
    m.insert(op.into(), value);
    m
}

fn obj<const N: usize>(items: [(&str, Json); N]) -> Map<String, Json> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
