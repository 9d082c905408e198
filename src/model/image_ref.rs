//! Container image references as Docker parses them (the grammar of
//! `github.com/distribution/reference`):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path
//! domain     := host [ ":" port ]         host: DNS name, IPv4, or [IPv6]
//! path       := component ( "/" component )*
//! component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex{32,}    algorithm: [A-Za-z][A-Za-z0-9]* ( [+._-] ... )*
//! ```
//!
//! The first `/`-part of a name is the registry when it holds a `.` or a
//! `:`, is `localhost`, or is not all lowercase, as Docker decides it. The
//! checker validates an image's literal text with this, and the runner (and
//! so the worker) the rendered reference before it asks Docker anything.

/// The longest name (registry and path) Docker accepts.
const MAX_NAME: usize = 255;

/// Why `reference` is not one Docker would accept; `Ok` when it is.
pub fn validate(reference: &str) -> Result<(), String> {
    if reference.is_empty() {
        return Err("the reference is empty".into());
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        check_digest(d)?;
    }
    // A tag follows the last `:` after the last `/`.
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "the repository name is {} characters; Docker allows at most {MAX_NAME}",
            name.len()
        ));
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && is_domain_like(parts[0]) {
        check_domain(parts[0])?;
        parts.remove(0);
    }
    for part in parts {
        check_component(part)?;
    }
    if let Some(t) = tag {
        check_tag(t)?;
    }
    Ok(())
}

/// A reference close to `reference` that [`validate`] accepts, if one is
/// easy to see: lowercase, other characters as `-`, stray `:` and `@` gone.
pub fn suggest(reference: &str) -> Option<String> {
    let trimmed = reference.trim().trim_end_matches([':', '@']);
    let slash = trimmed.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match trimmed[slash..].rfind(':') {
        Some(i) => (&trimmed[..slash + i], Some(&trimmed[slash + i + 1..])),
        None => (trimmed, None),
    };
    let mut components = Vec::new();
    for part in name.split('/') {
        let mut c = String::new();
        for ch in part.chars() {
            let ch = ch.to_ascii_lowercase();
            if ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.' || ch == '_' {
                c.push(ch);
            } else if !c.ends_with('-') {
                c.push('-');
            }
        }
        let c = c.trim_matches(['-', '.', '_']).to_string();
        if !c.is_empty() {
            components.push(c);
        }
    }
    let mut out = components.join("/");
    if let Some(t) = tag {
        let t: String = t
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(128)
            .collect();
        let t = t.trim_start_matches(['.', '-']);
        if !t.is_empty() {
            out.push(':');
            out.push_str(t);
        }
    }
    (validate(&out).is_ok() && out != reference).then_some(out)
}

fn is_domain_like(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost" || first.to_ascii_lowercase() != first
}

fn check_domain(domain: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{domain}` is not a registry host (a DNS name or IP address, with an optional `:PORT`)"
        ))
    };
    let (host, port) = if let Some(v6) = domain.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match after {
            "" => ("", None),
            p => match p.strip_prefix(':') {
                Some(p) => ("", Some(p)),
                None => return bad(),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("the registry port `{p}` is not a number"));
    }
    if !domain.starts_with('[') {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return bad();
        }
    }
    Ok(())
}

fn check_component(part: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err("the repository name has an empty part (`//`, or a `/` at an end)".into());
    }
    if part.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("the repository name must be lowercase (`{part}`)"));
    }
    let explain = || {
        format!(
            "`{part}` is not a repository name part: lowercase letters and digits, \
             with `.`, `_`, `__` or `-` only between them"
        )
    };
    let b = part.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut i = 0;
    loop {
        // alpha-numeric run
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(explain());
        }
        if i == b.len() {
            return Ok(());
        }
        // separator: `.`, `_`, `__` or `-`+
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err(explain()),
        }
    }
}

fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the tag `{tag}` is not valid: 1 to 128 letters, digits, `_`, `.` and `-`, \
             starting with a letter, digit or `_`"
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "the digest `{digest}` is not valid: `ALGORITHM:HEX`, like `sha256:` and 64 hex digits"
        ))
    };
    let Some((algo, hex)) = digest.split_once(':') else {
        return bad();
    };
    let algo_ok = algo.split(['+', '.', '_', '-']).all(|c| {
        c.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && c.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_docker_accepts() {
        for ok in [
            "alpine",
            "alpine:3.20",
            "rust:1.80",
            "amazon/aws-cli:2",
            "topsail-test/busybox:latest",
            "docker:27-cli",
            "ghcr.io/owner/app:v1.2.3",
            "localhost:5000/app",
            "localhost/app",
            "registry.example.com:443/a/b/c:tag_1",
            "my__app/x.y-z--w",
            "[::1]:5000/app",
            "10.0.0.1:5000/app:1",
            "Registry.Example.com/app",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "alpine:3.20@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in [
            "",
            "Bad Image::",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine:.x",
            "a//b",
            "/alpine",
            "alpine/",
            "app_",
            "app.",
            "a___b",
            "host:port/app",
            "alpine@sha256:abc",
            "alpine@",
            "alpine:3.20 ",
            "bad host/app",
            &format!("a:{}", "t".repeat(129)),
            &"a".repeat(256),
        ] {
            assert!(validate(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn suggestions_are_valid() {
        assert_eq!(suggest("Bad Image::").as_deref(), Some("bad-image"));
        assert_eq!(suggest("My App:Latest").as_deref(), Some("my-app:Latest"));
        assert_eq!(suggest("alpine"), None);
        assert_eq!(suggest(""), None);
    }
}
