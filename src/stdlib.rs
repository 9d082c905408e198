//! The standard library: modules written in the language, embedded in the
//! binary so `import "std/NAME"` works anywhere with no files installed.

/// `(name, source)` of every shipped module; `name` is what follows `std/`.
const MODULES: &[(&str, &str)] = &[("notify", include_str!("../stdlib/std/notify.topsail"))];

/// The source of `std/NAME`.
pub fn get(name: &str) -> Option<&'static str> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Names of all shipped modules, for "did you mean" and `--help`.
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(n, _)| *n)
}
