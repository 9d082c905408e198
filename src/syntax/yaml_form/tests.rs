//! The YAML form read as a whole: every key of the full example, shapes and
//! scalars, and what is reported for a wrong shape.

use super::parse_str;
use crate::diagnostics::{Diagnostic, codes};
use crate::source::{FileId, Span};
use crate::syntax::ast::{
    DirectiveKind, ExprKind, ForeachItems, Item, Module, Param, Step, Value, ValueKind,
};
use crate::syntax::yaml_tree;

const FULL: &str = include_str!("../../../tests/fixtures/yaml/full.yaml");

/// The `Debug` form of a module with every span blanked out, so two
/// modules can be compared "modulo spans".
pub(crate) fn strip(m: &Module) -> String {
    let text = format!("{m:#?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        out.push('S');
        let after = &rest[i..];
        let close = after.find('}').map_or(after.len(), |c| c + 1);
        rest = &after[close..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn parse_ok(src: &str) -> Module {
    let (m, d) = parse_str(src, FileId(0));
    assert!(
        d.is_empty(),
        "unexpected diagnostics: {d:#?}\n--- in:\n{src}"
    );
    m.expect("a module when there are no diagnostics")
}

pub(super) fn diags(src: &str) -> Vec<Diagnostic> {
    let (_, d) = parse_str(src, FileId(0));
    for x in &d {
        assert!(
            x.span.start <= x.span.end && x.span.end <= src.len(),
            "{x:?}"
        );
    }
    d
}

pub(super) fn step<'m>(m: &'m Module, name: &str) -> &'m Step {
    m.items
        .iter()
        .find_map(|i| match i {
            Item::Step(s) if s.name.name == name => Some(s),
            _ => None,
        })
        .expect("step exists")
}

fn kinds(s: &Step) -> Vec<&'static str> {
    s.body.iter().map(|d| d.kind.keyword()).collect()
}

#[test]
fn full_example_maps_every_key() {
    let m = parse_ok(FULL);
    let shown: Vec<String> = m
        .items
        .iter()
        .map(|i| match i {
            Item::Pipeline(n) => format!("pipeline {}", n.name),
            Item::Param(p) => format!("param {}", p.name.name),
            Item::Secret(n) => format!("secret {}", n.name),
            Item::Image(_) => "image".into(),
            Item::Queue(_) => "queue".into(),
            Item::Env(e) => format!("env {}", e.name.name),
            Item::Import(i) => {
                format!("import {} {:?}", i.path, i.alias.as_ref().map(|a| &a.name))
            }
            Item::Template(t) => format!("template {} {}", t.name.name, t.params.len()),
            Item::Step(s) => format!("step {}", s.name.name),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "pipeline release",
            "param region",
            "param version",
            "param replicas",
            "param regions",
            "param dry_run",
            "secret REGISTRY_TOKEN",
            "image",
            "env LOG_LEVEL",
            "import std/notify None",
            "import ./lib.topsail Some(\"lib\")",
            "template docker-build 2",
            "step build",
            "step unit-test",
            "step approve",
            "step deploy",
            "step fanout",
            "step publish",
            "step notify",
            "step rollback",
        ]
    );
    let build = step(&m, "build");
    assert_eq!(
        kinds(build),
        [
            "image", "run", "shell", "workdir", "output", "timeout", "retry"
        ]
    );
    let deploy = step(&m, "deploy");
    assert_eq!(
        deploy
            .needs
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["approve", "build"]
    );
    assert_eq!(
        kinds(deploy),
        [
            "image",
            "when",
            "foreach",
            "env",
            "env",
            "secret",
            "heartbeat",
            "retry",
            "catch",
            "run"
        ]
    );
    assert_eq!(kinds(step(&m, "unit-test")), ["run", "run"]);
    // keyword_span is the key; the span runs from the key to the value's end.
    let d = &deploy.body[0];
    assert_eq!(&FULL[d.keyword_span.start..d.keyword_span.end], "image");
    assert_eq!(&FULL[d.span.start..d.span.end], "image: amazon/aws-cli:2");
}

#[test]
fn params_take_three_shapes() {
    let m = parse_ok(
        "params:\n  a: x\n  b: {type: string}\n  c: {type: int, default: 3}\n  d: [1, 2]\n  e:\n",
    );
    let ps: Vec<&Param> = m
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Param(p) => Some(p),
            _ => None,
        })
        .collect();
    assert!(ps[0].ty.is_none());
    assert!(
        matches!(&ps[0].default, Some(Value { kind: ValueKind::Str(i), .. }) if i.as_literal().as_deref() == Some("x"))
    );
    assert_eq!(ps[1].ty.as_ref().map(|t| t.name.as_str()), Some("string"));
    assert!(ps[1].default.is_none());
    assert!(matches!(
        ps[2].default,
        Some(Value {
            kind: ValueKind::Int(3),
            ..
        })
    ));
    assert!(matches!(&ps[3].default, Some(Value { kind: ValueKind::List(l), .. }) if l.len() == 2));
    assert!(ps[4].ty.is_none() && ps[4].default.is_none());
}

fn env_value(src: &str) -> ValueKind {
    let m = parse_ok(&format!("env: {{V: {src}}}"));
    match &m.items[0] {
        Item::Env(e) => e.value.kind.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn scalars_follow_the_core_schema_plus_durations() {
    assert_eq!(env_value("3"), ValueKind::Int(3));
    assert_eq!(env_value("-12"), ValueKind::Int(-12));
    assert_eq!(env_value("0x1F"), ValueKind::Int(31));
    assert_eq!(env_value("0o17"), ValueKind::Int(15));
    assert_eq!(env_value("2.5"), ValueKind::Float(2.5));
    assert_eq!(env_value("1e3"), ValueKind::Float(1000.0));
    assert_eq!(env_value("true"), ValueKind::Bool(true));
    assert_eq!(env_value("False"), ValueKind::Bool(false));
    assert_eq!(env_value("90s"), ValueKind::Duration("90s".into()));
    assert_eq!(env_value("24h"), ValueKind::Duration("24h".into()));
    for quoted in [
        "\"3\"", "'true'", "\"90s\"", "yes", "on", "1.2.3", "!!str 3",
    ] {
        assert!(matches!(env_value(quoted), ValueKind::Str(_)), "{quoted}");
    }
    assert_eq!(env_value("!!int \"7\""), ValueKind::Int(7));
}

#[test]
fn null_and_oversized_values_are_shape_errors() {
    let d = diags("env: {A: ~, B: 99999999999999999999}");
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().all(|x| x.code == codes::YAML_SHAPE));
}

#[test]
fn list_keys_expand_into_one_directive_each() {
    let src = "steps:\n  s:\n    outputs: [A, B]\n    secrets: [T, U]\n    env: {X: 1, Y: two}\n    run: [a, b, c]\n";
    let m = parse_ok(src);
    let s = step(&m, "s");
    assert_eq!(
        kinds(s),
        [
            "output", "output", "secret", "secret", "env", "env", "run", "run", "run"
        ]
    );
    for d in &s.body {
        assert_eq!(
            &src[d.keyword_span.start..d.keyword_span.end].len(),
            &d.keyword_span.len()
        );
    }
    // A single scalar is a one-item list for needs/outputs/secrets.
    let m = parse_ok("steps:\n  a: {}\n  b:\n    needs: a\n    outputs: V\n");
    assert_eq!(step(&m, "b").needs.len(), 1);
    assert_eq!(kinds(step(&m, "b")), ["output"]);
}

#[test]
fn retry_foreach_use_catch_and_when() {
    let m = parse_ok(FULL);
    let build = step(&m, "build");
    let DirectiveKind::Retry(r) = &build.body[6].kind else {
        panic!()
    };
    assert_eq!(r.attempts.kind, ValueKind::Int(2));
    assert_eq!(
        r.every.as_ref().map(|v| v.kind.clone()),
        Some(ValueKind::Duration("10s".into()))
    );
    assert_eq!(
        r.backoff.as_ref().map(|v| v.kind.clone()),
        Some(ValueKind::Float(2.0))
    );
    let deploy = step(&m, "deploy");
    let DirectiveKind::Retry(r) = &deploy.body[7].kind else {
        panic!()
    };
    assert!(r.every.is_none() && r.backoff.is_none());
    let DirectiveKind::When(e) = &deploy.body[1].kind else {
        panic!()
    };
    assert!(
        matches!(&e.kind, ExprKind::Not(inner) if matches!(&inner.kind, ExprKind::Ref(r) if r.dotted() == "dry_run"))
    );
    // The expression's spans point into the quoted scalar.
    assert_eq!(&FULL[e.span.start..e.span.end], "!dry_run");
    let DirectiveKind::Foreach(f) = &deploy.body[2].kind else {
        panic!()
    };
    assert!(
        matches!(&f.items, ForeachItems::List(v) if matches!(&v.kind, ValueKind::List(l) if l.len() == 2))
    );
    let DirectiveKind::Foreach(f) = &step(&m, "fanout").body[0].kind else {
        panic!()
    };
    assert!(matches!(&f.items, ForeachItems::Param(p) if p.name == "regions"));
    let DirectiveKind::Catch(c) = &deploy.body[8].kind else {
        panic!()
    };
    assert_eq!(c.name, "rollback");
    let DirectiveKind::Use(u) = &step(&m, "notify").body[0].kind else {
        panic!()
    };
    let names: Vec<&str> = u.template.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lib", "ping"]);
    assert_eq!(
        &FULL[u.template[1].span.start..u.template[1].span.end],
        "ping"
    );
    assert_eq!(u.args.len(), 2);
    assert_eq!(u.args[1].value.kind, ValueKind::Bool(true));
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    let d = diags(
        "stesp: {}\nsteps:\n  a:\n    imgae: x\n    retry: {attempts: 1, evry: 2s}\n    bogus: 1\n",
    );
    let shown: Vec<(&str, &str)> = d.iter().map(|x| (x.code, x.help.as_str())).collect();
    assert_eq!(
        shown,
        [
            (codes::UNKNOWN_KEY, "did you mean `steps`?"),
            (codes::UNKNOWN_KEY, "did you mean `image`?"),
            (codes::UNKNOWN_KEY, "did you mean `every`?"),
            (
                codes::UNKNOWN_KEY,
                "the keys allowed in a step are: needs, image, run, shell, env, workdir, outputs, secrets, timeout, heartbeat, retry, when, foreach, approval, catch, use, queue, aws"
            ),
        ]
    );
    // The label sits on the key itself.
    assert_eq!(d[1].span, Span::new(FileId(0), 26, 31));
    // `needs` is a step key, not a template key.
    let d = diags("templates:\n  t:\n    needs: [a]\n");
    assert_eq!(d[0].code, codes::UNKNOWN_KEY);
}

#[test]
fn wrong_shapes_say_what_was_expected_and_all_are_reported() {
    let cases = [
        ("steps: [a, b]\n", "expected a map of steps, found a list"),
        (
            "steps:\n  1: {run: x}\n",
            "expected a step name, found an integer",
        ),
        (
            "steps:\n  a:\n    image: {x: y}\n",
            "expected a string, found a map",
        ),
        (
            "steps:\n  a: [x]\n",
            "expected a map of step keys, found a list",
        ),
        ("- a\n", "expected a map of top-level keys, found a list"),
        (
            "params:\n  p: {type: [int]}\n",
            "expected a type name, found a list",
        ),
        (
            "steps:\n  a:\n    retry: {every: 1s}\n",
            "`retry` without `attempts`",
        ),
        (
            "steps:\n  a:\n    foreach: {var: r}\n",
            "`foreach` without `in`",
        ),
        (
            "steps:\n  a:\n    use: {with: {}}\n",
            "`use` without `template`",
        ),
        ("imports: [{as: x}]\n", "import without `path`"),
        (
            "steps:\n  a:\n    when:\n",
            "expected an expression, found nothing (null)",
        ),
    ];
    for (src, message) in cases {
        let d = diags(src);
        assert!(
            d.iter()
                .any(|x| x.code == codes::YAML_SHAPE && x.message == message),
            "{src:?}: {d:#?}"
        );
    }
    let d = diags("steps:\n  a:\n    image: [x]\n    run: {y: z}\n    imgae: q\n");
    assert_eq!(d.len(), 3);
}

#[test]
fn bad_names_are_reported() {
    let d = diags("secrets: [bad-name]\nsteps:\n  \"a b\": {}\n");
    assert_eq!(d.iter().filter(|x| x.code == codes::BAD_NAME).count(), 2);
}

#[test]
fn a_yaml_tag_in_when_asks_for_quotes() {
    let d = diags("steps:\n  a:\n    when: !dry_run\n    run: x\n");
    assert!(
        d.iter()
            .any(|x| x.code == codes::YAML_SHAPE && x.help.contains("when: \"!dry_run\"")),
        "{d:#?}"
    );
}

#[test]
fn anchors_aliases_and_merge_keys_resolve() {
    let src = "x-rust: &rust\n  image: rust:1.80\n  timeout: 20m\nsteps:\n  build:\n    <<: *rust\n    run: cargo build\n  test:\n    <<: [*rust]\n    timeout: 5m\n    run: &t cargo test\n  again:\n    run: *t\n";
    let m = parse_ok(src);
    assert_eq!(kinds(step(&m, "build")), ["image", "timeout", "run"]);
    // A key written in the map wins over the merged one.
    let test = step(&m, "test");
    assert_eq!(kinds(test), ["image", "timeout", "run"]);
    assert!(
        matches!(&test.body[1].kind, DirectiveKind::Timeout(v) if v.kind == ValueKind::Duration("5m".into()))
    );
    assert_eq!(kinds(step(&m, "again")), ["run"]);
}

#[test]
fn duplicate_steps_reach_the_checker() {
    let m = parse_ok("steps:\n  a: {run: x}\n  a: {run: y}\n");
    assert_eq!(m.items.len(), 2);
}

/// `cargo test --release --lib yaml_form::tests::big -- --ignored --nocapture`
#[test]
#[ignore = "timing; run in release mode"]
fn big_file_parses_in_linear_time() {
    let mut src = String::from("pipeline: big\nparams:\n  region: us-east-1\nsteps:\n");
    for i in 0..100_000_u32 {
        let _ = std::fmt::Write::write_fmt(
            &mut src,
            format_args!(
                "  s{i}:\n    needs: [s{}]\n    image: rust:1.80\n    timeout: 20m\n    env: {{REGION: \"{{{{ region }}}}\"}}\n    run: |\n      echo step {i} in {{{{ region }}}}\n      cargo build\n",
                i.saturating_sub(1)
            ),
        );
    }
    let t = std::time::Instant::now();
    let _ = yaml_tree::read(&src, FileId(0));
    eprintln!("events -> nodes alone: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let (m, d) = parse_str(&src, FileId(0));
    let took = t.elapsed();
    assert!(d.is_empty());
    assert_eq!(m.map(|m| m.items.len()), Some(100_002));
    eprintln!("100,000 steps, {} bytes: {took:?}", src.len());
}
