//! Tests of the `.topsail` reader, through [`super::parse`].

use super::*;
use crate::source::Format;
use crate::source::{FileId, Span};
use crate::syntax::ast::{DirectiveKind, ExprKind, ForeachItems, Item, Part, ValueKind};

const RELEASE: &str = include_str!("../../../tests/fixtures/parse/release.topsail");

fn parse_str(text: &str) -> (ast::Module, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    let file = sources.add("test.topsail", None, text.to_string(), Format::Topsail);
    let (module, diags) = parse(&sources, file);
    (module.expect("the parser always returns a module"), diags)
}

fn clean(text: &str) -> ast::Module {
    let (m, d) = parse_str(text);
    assert!(d.is_empty(), "unexpected diagnostics for {text:?}: {d:#?}");
    m
}

fn errors(text: &str) -> Vec<Diagnostic> {
    let (_, d) = parse_str(text);
    assert!(!d.is_empty(), "expected diagnostics for {text:?}");
    for diag in &d {
        assert!(diag.span.start <= diag.span.end && diag.span.end <= text.len());
        assert!(!diag.help.is_empty(), "no help on {diag:?}");
        assert!(!diag.label.is_empty(), "no label on {diag:?}");
    }
    d
}

fn at(text: &str, span: Span) -> &str {
    &text[span.start..span.end]
}

fn step<'m>(m: &'m ast::Module, name: &str) -> &'m ast::Step {
    m.items
        .iter()
        .find_map(|i| match i {
            Item::Step(s) if s.name.name == name => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no step {name}"))
}

fn body(text: &str) -> Vec<DirectiveKind> {
    let m = clean(text);
    match &m.items[0] {
        Item::Step(s) => s.body.iter().map(|d| d.kind.clone()).collect(),
        Item::Template(t) => t.body.iter().map(|d| d.kind.clone()).collect(),
        other => panic!("not a step: {other:?}"),
    }
}

fn script(kind: &DirectiveKind) -> String {
    match kind {
        DirectiveKind::Run(i) => i.source_text(),
        other => panic!("not a run: {other:?}"),
    }
}

#[test]
fn parses_the_language_example() {
    let m = clean(RELEASE);
    let kinds: Vec<&str> = m
        .items
        .iter()
        .map(|i| match i {
            Item::Pipeline(_) => "pipeline",
            Item::Param(_) => "param",
            Item::Secret(_) => "secret",
            Item::Image(_) => "image",
            Item::Queue(_) => "queue",
            Item::Env(_) => "env",
            Item::Import(_) => "import",
            Item::Template(_) => "template",
            Item::Step(_) => "step",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "pipeline", "param", "param", "param", "param", "secret", "image", "env", "import",
            "step", "step", "step", "step", "step", "step"
        ]
    );
    let deploy = step(&m, "deploy");
    assert_eq!(deploy.needs[0].name, "approve");
    let words: Vec<&str> = deploy.body.iter().map(|d| d.kind.keyword()).collect();
    assert_eq!(
        words,
        [
            "image",
            "when",
            "foreach",
            "env",
            "secret",
            "heartbeat",
            "catch",
            "run"
        ]
    );
    for d in &deploy.body {
        assert_eq!(at(RELEASE, d.keyword_span), d.kind.keyword());
    }
    // Every span is exact: the step covers header to the end of its last line.
    let build = step(&m, "build");
    assert!(at(RELEASE, build.span).starts_with("build:\n"));
    assert!(at(RELEASE, build.span).ends_with(">> \"$TOPSAIL_OUTPUT\""));
    assert_eq!(m.comments.len(), 7);
    assert!(m.comments[0].own_line && m.comments[0].text == " release.topsail");
    assert!(!m.comments[1].own_line && m.comments[1].text == " required: no default");
}

#[test]
fn declarations() {
    let m = clean(
        "pipeline release\nparam a\nparam b: int\nparam c = \"x\"\nparam d: list = [\"x\", [1, 2]]\n\
         secret TOKEN\nimage \"alpine\"\nenv LOG = \"info\"\nimport \"std/notify\"\nimport \"./lib.topsail\" as lib\n",
    );
    let Item::Param(d) = &m.items[4] else {
        panic!()
    };
    assert_eq!(d.ty.as_ref().map(|t| t.name.as_str()), Some("list"));
    let Some(ast::Value {
        kind: ValueKind::List(items),
        ..
    }) = &d.default
    else {
        panic!()
    };
    assert!(matches!(&items[1].kind, ValueKind::List(inner) if inner.len() == 2));
    let Item::Param(a) = &m.items[1] else {
        panic!()
    };
    assert!(a.ty.is_none() && a.default.is_none());
    let Item::Import(lib) = &m.items[9] else {
        panic!()
    };
    assert_eq!(lib.path, "./lib.topsail");
    assert_eq!(lib.alias.as_ref().map(|a| a.name.as_str()), Some("lib"));
    let Item::Env(env) = &m.items[7] else {
        panic!()
    };
    assert_eq!(env.name.name, "LOG");
}

#[test]
fn values() {
    let m = clean(
        "param a = -3\nparam b = 2.0\nparam c = true\nparam d = 90s\nparam e = 5fortnights\n\
         param f = \"q\\\"uote\\\\ \\n\\t\"\nparam g = []\nparam h = [[\"a\"], [], [1, -2.5, false, 1h,]]\n",
    );
    let defaults: Vec<ValueKind> = m
        .items
        .iter()
        .map(|i| match i {
            Item::Param(p) => p.default.clone().expect("a default").kind,
            _ => panic!(),
        })
        .collect();
    assert_eq!(defaults[0], ValueKind::Int(-3));
    assert_eq!(defaults[1], ValueKind::Float(2.0));
    assert_eq!(defaults[2], ValueKind::Bool(true));
    assert_eq!(defaults[3], ValueKind::Duration("90s".into()));
    assert_eq!(defaults[4], ValueKind::Duration("5fortnights".into()));
    let ValueKind::Str(s) = &defaults[5] else {
        panic!()
    };
    assert_eq!(s.as_literal().as_deref(), Some("q\"uote\\ \n\t"));
    assert_eq!(defaults[6], ValueKind::List(vec![]));
    let ValueKind::List(h) = &defaults[7] else {
        panic!()
    };
    assert_eq!(h.len(), 3);
}

#[test]
fn hole_spans_are_exact_after_escapes() {
    let text = "approve:\n    approval \"say \\\"hi\\\" to {{ build.VERSION }}\\n{{x}}\"\n";
    let m = clean(text);
    let DirectiveKind::Approval(i) = &step(&m, "approve").body[0].kind else {
        panic!()
    };
    let refs: Vec<&str> = i
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Ref(r) => Some(at(text, r.span)),
            Part::Lit(_) | Part::Value(..) => None,
        })
        .collect();
    assert_eq!(refs, ["{{ build.VERSION }}", "{{x}}"]);
    let Part::Ref(r) = &i.parts[1] else { panic!() };
    assert_eq!(at(text, r.path[1].span), "VERSION");
    assert_eq!(
        at(text, i.span),
        "\"say \\\"hi\\\" to {{ build.VERSION }}\\n{{x}}\""
    );
}

#[test]
fn run_lines_and_blocks() {
    let text = "s:\n    run echo a # not a comment  \n    run:\n        if true; then\n            echo {{ x }}  # script\n\n        fi\n\n\n    run:   # a comment\n          one\n    output X\n";
    let m = clean(text);
    let s = step(&m, "s");
    assert_eq!(script(&s.body[0].kind), "echo a # not a comment");
    assert_eq!(
        script(&s.body[1].kind),
        "if true; then\n    echo {{ x }}  # script\n\nfi"
    );
    assert_eq!(script(&s.body[2].kind), "one");
    assert!(matches!(&s.body[3].kind, DirectiveKind::Output(o) if o.name == "X"));
    let DirectiveKind::Run(block) = &s.body[1].kind else {
        panic!()
    };
    let Part::Ref(r) = &block.parts[1] else {
        panic!()
    };
    assert_eq!(at(text, r.span), "{{ x }}");
    assert!(at(text, s.body[1].span).starts_with("run:\n"));
    assert!(at(text, s.body[1].span).ends_with("fi"));
    assert_eq!(m.comments.len(), 1);
    assert_eq!(m.comments[0].text, " a comment");
    assert!(!m.comments[0].own_line);
}

#[test]
fn directives() {
    let kinds = body(
        "s: a b\n    shell \"bash\"\n    workdir \"/src\"\n    env N = 3\n    secret TOKEN\n    timeout 20m\n\
         \x20   heartbeat 60s\n    retry 2\n    retry 3 every 10s\n    retry 4 backoff 1.5\n    retry 5 every 1s backoff 2.0\n\
         \x20   foreach r in [\"a\", \"b\"]\n    foreach r in regions\n    catch rollback\n    approval \"ok?\"\n\
         \x20   use docker-build(tag = \"app\", n = 3,)\n    use notify.webhook(url = \"u\")\n    use bare\n",
    );
    let words: Vec<&str> = kinds.iter().map(DirectiveKind::keyword).collect();
    assert_eq!(
        words,
        [
            "shell",
            "workdir",
            "env",
            "secret",
            "timeout",
            "heartbeat",
            "retry",
            "retry",
            "retry",
            "retry",
            "foreach",
            "foreach",
            "catch",
            "approval",
            "use",
            "use",
            "use"
        ]
    );
    let DirectiveKind::Retry(r) = &kinds[9] else {
        panic!()
    };
    assert_eq!(r.attempts.kind, ValueKind::Int(5));
    assert_eq!(
        r.every.as_ref().map(|v| v.kind.clone()),
        Some(ValueKind::Duration("1s".into()))
    );
    assert_eq!(
        r.backoff.as_ref().map(|v| v.kind.clone()),
        Some(ValueKind::Float(2.0))
    );
    let DirectiveKind::Retry(r) = &kinds[8] else {
        panic!()
    };
    assert!(r.every.is_none() && r.backoff.is_some());
    assert!(
        matches!(&kinds[11], DirectiveKind::Foreach(f) if matches!(&f.items, ForeachItems::Param(p) if p.name == "regions"))
    );
    assert!(
        matches!(&kinds[10], DirectiveKind::Foreach(f) if matches!(&f.items, ForeachItems::List(_)))
    );
    let DirectiveKind::Use(u) = &kinds[14] else {
        panic!()
    };
    assert_eq!(u.args.len(), 2);
    let DirectiveKind::Use(u) = &kinds[15] else {
        panic!()
    };
    assert_eq!(
        u.template
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["notify", "webhook"]
    );
    let DirectiveKind::Use(u) = &kinds[16] else {
        panic!()
    };
    assert!(u.args.is_empty() && u.template[0].name == "bare");
}

#[test]
fn templates() {
    let text = "template docker-build(context = \".\", tag, n: int = 3):\n    image \"docker:27-cli\"\n    run docker build -t {{ tag }} {{ context }}\n\ntemplate none:\n    run true\n";
    let m = clean(text);
    let Item::Template(t) = &m.items[0] else {
        panic!()
    };
    assert_eq!(t.name.name, "docker-build");
    let names: Vec<&str> = t.params.iter().map(|p| p.name.name.as_str()).collect();
    assert_eq!(names, ["context", "tag", "n"]);
    assert_eq!(at(text, t.params[2].span), "n: int = 3");
    assert_eq!(t.body.len(), 2);
    let Item::Template(none) = &m.items[1] else {
        panic!()
    };
    assert!(none.params.is_empty());
}

fn when(text: &str) -> String {
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Or(l, r) => format!("or({}, {})", show(l), show(r)),
            ExprKind::And(l, r) => format!("and({}, {})", show(l), show(r)),
            ExprKind::Eq(l, r) => format!("eq({}, {})", show(l), show(r)),
            ExprKind::Ne(l, r) => format!("ne({}, {})", show(l), show(r)),
            ExprKind::Not(x) => format!("not({})", show(x)),
            ExprKind::Paren(x) => format!("({})", show(x)),
            ExprKind::Lit(v) => format!("{:?}", v.kind),
            ExprKind::Ref(r) => r.dotted(),
        }
    }
    let e = parse_expr(text, FileId(0), 100).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!((e.span.start, e.span.end), (100, 100 + text.len()));
    show(&e)
}

#[test]
fn when_precedence() {
    assert_eq!(when("a || b && c"), "or(a, and(b, c))");
    assert_eq!(when("!a == b"), "eq(not(a), b)");
    assert_eq!(
        when("a == \"x\" && b.OUT != 3 || !!c"),
        "or(and(eq(a, Str(Interp { parts: [Lit(\"x\")], span: Span { file: FileId(0), start: 105, end: 108 } })), ne(b.OUT, Int(3))), not(not(c)))"
    );
    assert_eq!(when("(a || b) && !(c)"), "and((or(a, b)), not((c)))");
    assert_eq!(
        when("x == true || y != 2.5 || z == 10s"),
        "or(or(eq(x, Bool(true)), ne(y, Float(2.5))), eq(z, Duration(\"10s\")))"
    );
    assert_eq!(when("true_thing"), "true_thing");
    let body = body("s:\n    when !dry_run && region == \"eu\"  # only outside the EU dry runs\n");
    assert!(matches!(&body[0], DirectiveKind::When(e) if matches!(e.kind, ExprKind::And(..))));
}

#[test]
fn parse_expr_reports_with_offsets() {
    let d = parse_expr("a &&", FileId(3), 50).expect_err("incomplete");
    assert_eq!(d.code, codes::SYNTAX);
    assert_eq!((d.span.file, d.span.start), (FileId(3), 54));
    assert!(
        d.message.contains("found the end of the expression"),
        "{}",
        d.message
    );
    let d = parse_expr("a.b.c", FileId(0), 0).expect_err("too many parts");
    assert!(d.message.contains("too many parts"));
    assert!(parse_expr(&"(".repeat(10_000), FileId(0), 0).is_err());
    assert!(parse_expr(&"!".repeat(10_000), FileId(0), 0).is_err());
    assert!(parse_expr("", FileId(0), 0).is_err());
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let d = errors("param x: = 3\n");
    assert_eq!(
        d[0].message,
        "expected a type (string, int, bool, duration or list), found `=`"
    );
    assert_eq!((d[0].span.start, d[0].span.end), (9, 10));
    let d = errors("build: a, b\n");
    assert_eq!(
        d[0].message,
        "expected the name of a step it needs or the end of the line, found `,`"
    );
    let d = errors("image alpine:3.20\n");
    assert_eq!(d[0].message, "expected a string, found `alpine:3.20`");
    assert!(d[0].help.contains("double quotes"));
    let d = errors("s:\n    image: \"x\"\n");
    assert!(d[0].help.contains("without the `:`"), "{}", d[0].help);
    let d = errors("s:\n    retry 3 every\n");
    assert_eq!(d[0].message, "expected a value, found the end of the line");
    let d = errors("s:\n    image \"abc\n");
    assert_eq!(
        d[0].message,
        "expected a closing `\"`, found the end of the line"
    );
    let d = errors("s:\n    when a b\n");
    assert_eq!(
        d[0].message,
        "expected `||`, `&&`, `==`, `!=` or the end of the line, found `b`"
    );
    let d = errors("s:\n    foreach r of [\"a\"]\n");
    assert_eq!(d[0].message, "expected `in`, found `of`");
    for diag in d {
        assert!(
            !diag.message.contains('_'),
            "a rule name leaked: {}",
            diag.message
        );
    }
}

#[test]
fn unknown_keywords_get_suggestions() {
    let d = errors("s:\n    imgae \"x\"\n");
    assert_eq!(d[0].message, "unknown directive `imgae`");
    assert_eq!(d[0].help, "did you mean `image`?");
    assert_eq!((d[0].span.start, d[0].span.end), (7, 12));
    let d = errors("s:\n    outputs X\n");
    assert_eq!(d[0].help, "did you mean `output`?");
    let d = errors("pipelin x\n");
    assert_eq!(d[0].help, "did you mean `pipeline`?");
    let d = errors("build\n    run make\n");
    assert_eq!(d[0].message, "expected `:` after the step name `build`");
    let d = errors("run make\n");
    assert!(d[0].message.contains("not inside a step"));
    let d = errors("s:\n    other:\n");
    assert_eq!(d[0].help, "a step header must start in column 0");
}

#[test]
fn tabs_and_indentation() {
    let d = errors("s:\n\timage \"x\"\n\trun y\nt:\n  \trun z\n");
    let tabs: Vec<_> = d.iter().filter(|d| d.code == codes::TAB_INDENT).collect();
    assert_eq!(tabs.len(), 2, "one per item: {d:#?}");
    assert_eq!((tabs[0].span.start, tabs[0].span.end), (3, 4));
    assert_eq!(
        tabs[0].help,
        "indent with spaces (4 per level is the convention)"
    );

    let d = errors("s:\n    image \"x\"\n  run y\n");
    assert_eq!(d[0].code, codes::BAD_INDENT);
    assert_eq!(d[0].message, "inconsistent indentation");
    assert_eq!(d[0].secondary.len(), 1);

    let d = errors("s:\n    run make\n        more\n        lines\n    output X\n");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].code, codes::BAD_INDENT);
    assert!(d[0].help.contains("`run:`"));

    let d = errors("param x = 1\n    run y\n");
    assert_eq!(d[0].code, codes::BAD_INDENT);
    let d = errors("    image \"x\"\ns:\n    run y\n");
    assert_eq!(d[0].code, codes::BAD_INDENT);
    assert_eq!(d.len(), 1);
    // A tab inside a run block, after the block's indentation, is script.
    let kinds = body("s:\n    run:\n        cat <<-EOF\n        \tx\n        EOF\n");
    assert_eq!(script(&kinds[0]), "cat <<-EOF\n\tx\nEOF");
    let d = errors("s:\n    run:\n    \techo\n");
    assert!(d.iter().any(|d| d.code == codes::TAB_INDENT));
}

#[test]
fn run_mistakes() {
    let d = errors("s:\n    run: make all\n");
    assert!(d[0].message.contains("`run:` starts a block"));
    assert_eq!(at("s:\n    run: make all\n", d[0].span), "make all");
    let d = errors("s:\n    run:\n    output X\n");
    assert_eq!(d[0].message, "`run:` has no script below it");
    let d = errors("s:\n    run\n");
    assert_eq!(
        d[0].message,
        "expected `:` or the script, found the end of the line"
    );
    let d = errors("s:\n    run echo {{ x\n");
    assert_eq!(d[0].code, codes::BAD_INTERPOLATION);
}

#[test]
fn bad_literals() {
    let d = errors("s:\n    env A = \"\\q\"\n");
    assert_eq!(d[0].message, "unknown escape `\\q` in a string");
    assert_eq!((d[0].span.start, d[0].span.end), (16, 18));
    let d = errors("param n = 99999999999999999999\n");
    assert_eq!(d[0].code, codes::BAD_VALUE);
    let d = errors("secret MY-TOKEN\n");
    assert_eq!(d[0].code, codes::BAD_NAME);
    let d = errors("s:\n    secret MY-TOKEN\n");
    assert_eq!(d[0].code, codes::BAD_NAME);
    let d = errors(&format!("param p = {}\n", "[".repeat(100)));
    assert!(d[0].message.contains("nested too deeply"));
    let d = errors("s:\n    when a.b.c\n");
    assert!(d[0].message.contains("too many parts"));
}

#[test]
fn reports_every_error_and_keeps_the_rest() {
    let text = "pipeline p\nparam = 3\n\nbuild:\n    imgae \"x\"\n    run make\n    timeout\n\ntest: build\n    run make test\n\nbad header here\n    run x\n\ndeploy: test\n    when (a\n    run ./deploy\n";
    let (m, d) = parse_str(text);
    assert_eq!(d.len(), 5, "{d:#?}");
    let lines: Vec<usize> = d
        .iter()
        .map(|d| text[..d.span.start].lines().count())
        .collect();
    assert_eq!(lines, [2, 5, 7, 12, 16]);
    let names: Vec<&str> = m
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Step(s) => Some(s.name.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["build", "test", "deploy"]);
    assert_eq!(step(&m, "build").body.len(), 1);
    assert_eq!(step(&m, "deploy").body.len(), 1);
}

#[test]
fn odd_files() {
    assert!(clean("").items.is_empty());
    assert!(clean("\n\n   \n# only a comment\n").items.is_empty());
    let m = clean("\u{feff}pipeline p\r\ns:\r\n    run:\r\n        a\r\n        b\r\n");
    assert_eq!(script(&step(&m, "s").body[0].kind), "a\nb");
    let m = clean("s:\n    run héllo {{ x }} wörld\n");
    let DirectiveKind::Run(i) = &step(&m, "s").body[0].kind else {
        panic!()
    };
    assert_eq!(i.parts.len(), 3);
    let _ = parse_str("é:\n  ü\n\t\"\n[[[[\n");
}

fn check_invariants(text: &str) {
    let (m, d) = parse_str(text);
    for diag in &d {
        assert!(
            diag.span.start <= diag.span.end && diag.span.end <= text.len(),
            "span {:?} outside {} bytes: {diag:?}",
            diag.span,
            text.len()
        );
        for (span, _) in &diag.secondary {
            assert!(span.start <= span.end && span.end <= text.len());
        }
    }
    // Every node span the printer relies on lies inside the text too.
    for item in &m.items {
        let span = item.span();
        assert!(span.start <= span.end && span.end <= text.len());
    }
}

#[derive(Clone, Debug)]
enum Edit {
    DeleteChar(usize),
    InsertChar(usize, char),
    DuplicateLine(usize),
    DeleteLine(usize),
    SwapLines(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match *edit {
            Edit::DeleteChar(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::InsertChar(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::DuplicateLine(i) | Edit::DeleteLine(i) | Edit::SwapLines(i, _) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split('\n').collect();
                let n = lines.len();
                let i = i % n;
                match *edit {
                    Edit::DuplicateLine(_) => lines.insert(i, lines[i]),
                    Edit::DeleteLine(_) => {
                        lines.remove(i);
                    }
                    Edit::SwapLines(_, j) => lines.swap(i, j % n),
                    _ => {}
                }
                chars = lines.join("\n").chars().collect();
            }
            Edit::DeleteChar(_) => {}
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl proptest::strategy::Strategy<Value = Edit> {
    use proptest::prelude::*;
    prop_oneof![
        any::<usize>().prop_map(Edit::DeleteChar),
        (
            any::<usize>(),
            proptest::sample::select(vec![
                ' ', '\t', '\n', ':', '"', '\\', '#', '{', '}', '(', ')', '[', ']', '=', '!', '|',
                '&', ',', '.', 'x', '9', 'é'
            ])
        )
            .prop_map(|(i, c)| Edit::InsertChar(i, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DeleteLine),
        (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::SwapLines(i, j)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

    #[test]
    fn never_panics_on_arbitrary_text(text in "(?s).{0,300}") {
        check_invariants(&text);
    }

    #[test]
    fn never_panics_on_line_soup(lines in proptest::collection::vec(
        "[ \t]{0,9}[a-z:\"#{}()\\[\\]=!&|,. 0-9\\\\-]{0,30}", 0..12)) {
        check_invariants(&lines.join("\n"));
    }

    #[test]
    fn never_panics_on_mutated_pipelines(edits in proptest::collection::vec(edit(), 1..8)) {
        check_invariants(&apply(RELEASE, &edits));
    }
}

mod speed {
    use super::*;
    use crate::source::Format;
    use std::fmt::Write as _;

    /// `cargo test --release --lib parse_speed -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, run by hand in release mode"]
    fn parse_speed() {
        let mut text = String::from("pipeline big\nimage \"alpine:3.20\"\n");
        for i in 0..100_000 {
            let needs: Vec<String> = (1..=(i % 3 + 1))
                .filter(|d| *d <= i)
                .map(|d| format!("step-{}", i - d))
                .collect();
            write!(
                text,
                "\nstep-{i}: {}\n    image \"rust:1.80\"\n    output OUT\n    run:\n        echo building {i} {{{{ pipeline.name }}}}\n        echo \"OUT=$RANDOM\" >> \"$TOPSAIL_OUTPUT\"\n",
                needs.join(" ")
            )
            .expect("writing to a String cannot fail");
        }
        let mut sources = SourceMap::new();
        let file = sources.add("big.topsail", None, text, Format::Topsail);
        // The best of three: this machine is shared, the minimum is the
        // least disturbed run.
        let mut took = std::time::Duration::MAX;
        let mut result = None;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let parsed = parse(&sources, file);
            took = took.min(started.elapsed());
            result = Some(parsed);
        }
        let (module, diags) = result.expect("parsed three times");
        assert!(diags.is_empty(), "{:?}", diags.first());
        let module = module.expect("a module");
        eprintln!(
            "parsed {} bytes, {} items in {took:?}",
            sources.get(file).text.len(),
            module.items.len()
        );
    }
}
