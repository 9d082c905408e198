//! Reading the file a step wrote through `$TOPSAIL_OUTPUT` (LANGUAGE.md
//! section 5): `NAME=value` lines and `NAME<<DELIM` blocks for multi-line
//! values. Shared by the local runner and, later, the activity worker.

use indexmap::IndexMap;

/// The outputs set in `text`, in the order first set (a later line wins).
/// Lines that are neither form are returned as problems, not errors: the
/// step decides what it writes, the runner only warns.
pub fn parse(text: &str) -> (IndexMap<String, String>, Vec<String>) {
    let mut out = IndexMap::new();
    let mut problems = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some((name, delim)) = heredoc(line) {
            let mut value: Vec<&str> = Vec::new();
            let mut closed = false;
            for l in lines.by_ref() {
                if l == delim {
                    closed = true;
                    break;
                }
                value.push(l);
            }
            if !closed {
                problems.push(format!(
                    "`{name}<<{delim}` is not closed by a `{delim}` line"
                ));
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            if crate::syntax::interp::is_name(name) {
                out.insert(name.to_string(), value.to_string());
            } else {
                problems.push(format!("`{name}` is not an output name"));
            }
        } else {
            problems.push(format!(
                "ignored line `{line}` (expected NAME=value or NAME<<DELIM)"
            ));
        }
    }
    (out, problems)
}

fn heredoc(line: &str) -> Option<(&str, &str)> {
    let (name, delim) = line.split_once("<<")?;
    if crate::syntax::interp::is_name(name) && !delim.is_empty() && !name.contains('=') {
        Some((name, delim))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_and_multiline() {
        let (o, p) = parse("A=1\nB<<EOF\nx\ny=z\nEOF\nC=a=b\nA=2\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(o["A"], "2");
        assert_eq!(o["B"], "x\ny=z");
        assert_eq!(o["C"], "a=b");
        assert_eq!(o.keys().collect::<Vec<_>>(), ["A", "B", "C"]);
    }

    #[test]
    fn empty_value_and_problems() {
        let (o, p) = parse("A=\nnonsense\nB<<END\nx\n");
        assert_eq!(o["A"], "");
        assert_eq!(o["B"], "x");
        assert_eq!(p.len(), 2);
    }
}
