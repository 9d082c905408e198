//! The definition while it is built, and its printers.
//!
//! A 10,000-step definition is about ten megabytes of JSON. As
//! `serde_json::Value`s every object is a hash map and every key and string
//! an allocation, and building, printing and freeing them was most of the
//! compile time. Here:
//! - [`J`] is the tree of the states: objects are plain vectors in
//!   insertion order, keys and most strings are borrowed (from the
//!   pipeline, the options, or `'static` text);
//! - a script step's Task state, which is most of the definition, is a
//!   [`J::Lazy`] node: a function that writes its JSON when printed, from
//!   the pipeline, instead of a subtree built for it (so are a few other
//!   repeated parts);
//! - printing goes through [`Out`]: pretty text, a count of the bytes of
//!   the compact text, or a `serde_json::Value`, all three in the same
//!   order. The text is what serde_json writes for that `Value` (see the
//!   tests), so the output is byte-stable.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value as Json;

pub(crate) type Str<'a> = Cow<'a, str>;

pub(crate) enum J<'a> {
    Null,
    Bool(bool),
    Int(u64),
    /// A negative integer (a param's default or item).
    Neg(i64),
    Float(f64),
    Str(Str<'a>),
    Arr(Vec<J<'a>>),
    Obj(Obj<'a>),
    /// Written by the function when printed (one value).
    Lazy(Box<Write<'a>>),
}

/// Writes one JSON value.
pub(crate) type Write<'a> = dyn Fn(&mut dyn Out) + 'a;

impl<'a> J<'a> {
    pub(crate) fn lazy(f: impl Fn(&mut dyn Out) + 'a) -> Self {
        J::Lazy(Box::new(f))
    }
}

/// A JSON object: keys in insertion order.
#[derive(Default)]
pub(crate) struct Obj<'a>(Vec<(Str<'a>, J<'a>)>);

impl<'a> Obj<'a> {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }

    /// Append a key the object does not have yet (not checked: objects are
    /// built with distinct keys).
    pub(crate) fn push(&mut self, key: impl Into<Str<'a>>, value: impl Into<J<'a>>) {
        self.0.push((key.into(), value.into()));
    }

    /// Set `key`, in place when present (like `serde_json::Map::insert`).
    pub(crate) fn insert(&mut self, key: impl Into<Str<'a>>, value: impl Into<J<'a>>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut J<'a>> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a, K: Into<Str<'a>>> FromIterator<(K, J<'a>)> for Obj<'a> {
    fn from_iter<I: IntoIterator<Item = (K, J<'a>)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl<'a> From<&'a str> for J<'a> {
    fn from(s: &'a str) -> Self {
        J::Str(Cow::Borrowed(s))
    }
}

impl From<String> for J<'_> {
    fn from(s: String) -> Self {
        J::Str(Cow::Owned(s))
    }
}

impl<'a> From<Str<'a>> for J<'a> {
    fn from(s: Str<'a>) -> Self {
        J::Str(s)
    }
}

impl From<u64> for J<'_> {
    fn from(n: u64) -> Self {
        J::Int(n)
    }
}

impl From<u32> for J<'_> {
    fn from(n: u32) -> Self {
        J::Int(n.into())
    }
}

impl From<bool> for J<'_> {
    fn from(b: bool) -> Self {
        J::Bool(b)
    }
}

impl From<f64> for J<'_> {
    fn from(x: f64) -> Self {
        J::Float(x)
    }
}

impl<'a> From<Obj<'a>> for J<'a> {
    fn from(o: Obj<'a>) -> Self {
        J::Obj(o)
    }
}

impl<'a> From<Vec<J<'a>>> for J<'a> {
    fn from(a: Vec<J<'a>>) -> Self {
        J::Arr(a)
    }
}

impl From<&Json> for J<'static> {
    fn from(v: &Json) -> Self {
        match v {
            Json::Null => J::Null,
            Json::Bool(b) => J::Bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => J::Int(u),
                (None, Some(i)) => J::Neg(i),
                (None, None) => J::Float(n.as_f64().unwrap_or(0.0)),
            },
            Json::String(s) => J::Str(Cow::Owned(s.clone())),
            Json::Array(a) => J::Arr(a.iter().map(J::from).collect()),
            Json::Object(m) => J::Obj(Obj::from(m)),
        }
    }
}

impl From<&serde_json::Map<String, Json>> for Obj<'static> {
    fn from(m: &serde_json::Map<String, Json>) -> Self {
        m.iter().map(|(k, v)| (k.clone(), J::from(v))).collect()
    }
}

/// Where JSON goes, one token at a time, in document order. Keys and
/// strings come in parts, written joined (`["$.steps.", key]`), which saves
/// building them.
pub(crate) trait Out {
    fn begin_obj(&mut self);
    fn end_obj(&mut self);
    fn begin_arr(&mut self);
    fn end_arr(&mut self);
    fn key(&mut self, parts: &[&str]);
    fn string(&mut self, parts: &[&str]);
    fn scalar(&mut self, v: &J<'_>);

    /// Enough has been written: the rest may be skipped.
    fn full(&self) -> bool {
        false
    }
}

impl dyn Out + '_ {
    pub(crate) fn str(&mut self, s: &str) {
        self.string(&[s]);
    }

    pub(crate) fn int(&mut self, n: u64) {
        self.scalar(&J::Int(n));
    }

    /// `"key": "value"`.
    pub(crate) fn field(&mut self, key: &str, value: &str) {
        self.key(&[key]);
        self.string(&[value]);
    }
}

impl J<'_> {
    pub(crate) fn emit(&self, out: &mut dyn Out) {
        match self {
            J::Str(s) => out.string(&[s]),
            J::Arr(items) => {
                out.begin_arr();
                for v in items {
                    if out.full() {
                        break;
                    }
                    v.emit(out);
                }
                out.end_arr();
            }
            J::Obj(o) => {
                out.begin_obj();
                for (k, v) in &o.0 {
                    if out.full() {
                        break;
                    }
                    out.key(&[k]);
                    v.emit(out);
                }
                out.end_obj();
            }
            J::Lazy(f) => f(out),
            scalar => out.scalar(scalar),
        }
    }

    /// Pretty text (two-space indent), as `serde_json::to_string_pretty`.
    pub(crate) fn pretty(&self) -> String {
        let mut t = Text::new(String::with_capacity(1 << 16), true);
        self.emit(&mut t);
        t.sink
    }

    /// The length of the compact text, as `serde_json::to_string`, without
    /// building it; counted only up to the first byte past `limit` (a
    /// 10,000-step definition is several times any limit).
    pub(crate) fn compact_len(&self, limit: usize) -> usize {
        let mut t = Text::new(Count { n: 0, limit }, false);
        self.emit(&mut t);
        t.sink.n
    }

    /// The same tree as a `serde_json::Value`.
    pub(crate) fn to_value(&self) -> Json {
        let mut b = Build::default();
        self.emit(&mut b);
        b.root.unwrap_or(Json::Null)
    }
}

/// Where text goes: a buffer, or a counter of its bytes.
trait Sink {
    fn put(&mut self, s: &str);

    fn full(&self) -> bool {
        false
    }

    /// The contents of a JSON string literal, escaped as serde_json escapes
    /// them: `"`, `\` and control characters only, the short forms where
    /// JSON has them.
    fn escaped(&mut self, s: &str) {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match ESCAPE[usize::from(b)] {
                0 => continue,
                b'u' => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    let code = [
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xf)],
                    ];
                    // Every escaped byte is ASCII, so the slices below are on
                    // char boundaries and this is valid UTF-8.
                    self.put(&s[start..i]);
                    self.put(std::str::from_utf8(&code).unwrap_or_default());
                    start = i + 1;
                    continue;
                }
                c => [b'\\', c],
            };
            self.put(&s[start..i]);
            self.put(std::str::from_utf8(&esc).unwrap_or_default());
            start = i + 1;
        }
        self.put(&s[start..]);
    }
}

/// The escape of each byte: 0 none, `u` a `\u00XX` form, else `\` and it.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

struct Count {
    n: usize,
    limit: usize,
}

impl Sink for Count {
    fn put(&mut self, s: &str) {
        self.n += s.len();
    }

    fn escaped(&mut self, s: &str) {
        self.n += s.len();
        for b in s.bytes() {
            self.n += match ESCAPE[usize::from(b)] {
                0 => 0,
                b'u' => 5,
                _ => 1,
            };
        }
    }

    fn full(&self) -> bool {
        self.n > self.limit
    }
}

const SPACES: &str = "                                                                ";

/// JSON text: serde_json's compact format, or its pretty one.
struct Text<S> {
    sink: S,
    pretty: bool,
    depth: usize,
    /// No item yet in the innermost open object or array.
    first: bool,
    /// A key was just written: its value follows.
    after_key: bool,
}

impl<S: Sink> Text<S> {
    fn new(sink: S, pretty: bool) -> Self {
        Self {
            sink,
            pretty,
            depth: 0,
            first: true,
            after_key: false,
        }
    }

    fn newline(&mut self) {
        self.sink.put("\n");
        let mut n = self.depth * 2;
        while n > 0 {
            let k = n.min(SPACES.len());
            self.sink.put(&SPACES[..k]);
            n -= k;
        }
    }

    /// Before an item of an object or array.
    fn separator(&mut self) {
        if !self.first {
            self.sink.put(",");
        }
        self.first = false;
        if self.pretty {
            self.newline();
        }
    }

    fn before_value(&mut self) {
        if self.after_key {
            self.after_key = false;
        } else if self.depth > 0 {
            self.separator();
        }
    }

    fn open(&mut self, bracket: &str) {
        self.before_value();
        self.sink.put(bracket);
        self.depth += 1;
        self.first = true;
    }

    fn close(&mut self, bracket: &str) {
        self.depth -= 1;
        if self.pretty && !self.first {
            self.newline();
        }
        self.sink.put(bracket);
        self.first = false;
    }

    fn quoted(&mut self, parts: &[&str]) {
        self.sink.put("\"");
        for p in parts {
            self.sink.escaped(p);
        }
        self.sink.put("\"");
    }
}

impl<S: Sink> Out for Text<S> {
    fn begin_obj(&mut self) {
        self.open("{");
    }

    fn end_obj(&mut self) {
        self.close("}");
    }

    fn begin_arr(&mut self) {
        self.open("[");
    }

    fn end_arr(&mut self) {
        self.close("]");
    }

    fn full(&self) -> bool {
        self.sink.full()
    }

    fn key(&mut self, parts: &[&str]) {
        self.separator();
        self.quoted(parts);
        self.sink.put(if self.pretty { ": " } else { ":" });
        self.after_key = true;
    }

    fn string(&mut self, parts: &[&str]) {
        self.before_value();
        self.quoted(parts);
    }

    fn scalar(&mut self, v: &J<'_>) {
        self.before_value();
        match v {
            J::Bool(true) => self.sink.put("true"),
            J::Bool(false) => self.sink.put("false"),
            J::Int(n) => uint(&mut self.sink, *n),
            J::Neg(n) => {
                if *n < 0 {
                    self.sink.put("-");
                }
                uint(&mut self.sink, n.unsigned_abs());
            }
            // serde_json's own digits, written without a String.
            J::Float(x) => {
                let _ = write!(Adapter(&mut self.sink), "{}", Json::from(*x));
            }
            _ => self.sink.put("null"),
        }
    }
}

struct Adapter<'s, S>(&'s mut S);

impl<S: Sink> std::fmt::Write for Adapter<'_, S> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.put(s);
        Ok(())
    }
}

fn uint(out: &mut impl Sink, n: u64) {
    out.put(decimal(n, &mut [0u8; 20]));
}

/// `n` in decimal, written in `buf` (no String for the thousands of
/// numbers in a definition).
pub(crate) fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Builds a `serde_json::Value`.
#[derive(Default)]
struct Build {
    /// Open objects and arrays, each with the key it goes under in its parent.
    stack: Vec<(Json, Option<String>)>,
    key: Option<String>,
    root: Option<Json>,
}

impl Build {
    fn add(&mut self, v: Json) {
        match self.stack.last_mut() {
            Some((Json::Object(m), _)) => {
                m.insert(self.key.take().unwrap_or_default(), v);
            }
            Some((Json::Array(a), _)) => a.push(v),
            _ => self.root = Some(v),
        }
    }

    fn close(&mut self) {
        if let Some((v, key)) = self.stack.pop() {
            self.key = key;
            self.add(v);
        }
    }
}

impl Out for Build {
    fn begin_obj(&mut self) {
        let key = self.key.take();
        self.stack.push((Json::Object(serde_json::Map::new()), key));
    }

    fn end_obj(&mut self) {
        self.close();
    }

    fn begin_arr(&mut self) {
        let key = self.key.take();
        self.stack.push((Json::Array(Vec::new()), key));
    }

    fn end_arr(&mut self) {
        self.close();
    }

    fn key(&mut self, parts: &[&str]) {
        self.key = Some(parts.concat());
    }

    fn string(&mut self, parts: &[&str]) {
        self.add(Json::String(parts.concat()));
    }

    fn scalar(&mut self, v: &J<'_>) {
        self.add(match v {
            J::Bool(b) => Json::Bool(*b),
            J::Int(n) => Json::from(*n),
            J::Neg(n) => Json::from(*n),
            J::Float(x) => Json::from(*x),
            _ => Json::Null,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(v: &Json) {
        let j = J::from(v);
        assert_eq!(j.pretty(), serde_json::to_string_pretty(v).unwrap());
        let len = serde_json::to_string(v).unwrap().len();
        assert_eq!(j.compact_len(usize::MAX), len);
        assert_eq!(j.compact_len(len), len);
        assert!(j.compact_len(len / 2) > len / 2);
        assert_eq!(&j.to_value(), v);
    }

    #[test]
    fn prints_as_serde_json_does() {
        let tricky: String = (0u8..0x80).map(char::from).collect::<String>() + "é€😀\u{7f}";
        check(&json!({
            "a": [1, -2, 2.5, 1e300, 0.1, true, null, "x", [], {}, [[]], {"b": {}}],
            "s": tricky,
            "k\"\\\n": {"deep": [{"x": [1, {"y": "z"}]}]},
            "f": 2.0,
            "n": u64::MAX,
            "m": i64::MIN,
        }));
        check(&json!([]));
        check(&json!("top"));
        // Deep indentation (past the width of SPACES).
        let mut deep = json!("leaf");
        for _ in 0..60 {
            deep = json!({ "d": [deep, {}] });
        }
        check(&deep);
    }

    #[test]
    fn lazy_nodes_write_in_place() {
        let mut o = Obj::new();
        o.push("a", J::from(1u64));
        o.push(
            "b",
            J::lazy(|out| {
                out.begin_obj();
                out.key(&["x", ".$"]);
                out.string(&["$.steps.", "k"]);
                out.end_obj();
            }),
        );
        o.push("c", J::Arr(vec![J::lazy(|out| out.int(7)), J::Null]));
        let v = json!({"a": 1, "b": {"x.$": "$.steps.k"}, "c": [7, null]});
        let j = J::Obj(o);
        assert_eq!(j.pretty(), serde_json::to_string_pretty(&v).unwrap());
        assert_eq!(
            j.compact_len(usize::MAX),
            serde_json::to_string(&v).unwrap().len()
        );
        assert_eq!(j.to_value(), v);
    }

    #[test]
    fn insert_replaces_in_place() {
        let mut o = Obj::new();
        o.push("a", J::from(1u64));
        o.push("b", J::from(2u64));
        o.insert("a", J::from(3u64));
        assert!(o.get_mut("a").is_some());
        o.insert("c", J::from(4u64));
        assert_eq!(J::Obj(o).to_value(), json!({"a": 3, "b": 2, "c": 4}));
    }
}
