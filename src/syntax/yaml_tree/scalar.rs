//! What a scalar means: the YAML 1.2 core schema, plus `^[0-9]+[A-Za-z]+$`
//! as a duration. The YAML printer ([`crate::syntax::print_yaml`]) quotes by
//! the same rule, so what it writes reads back the same.

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    BigInt,
    Float(f64),
    Duration,
    Str,
    BadTagged,
}

/// How a plain (unquoted) scalar reads: the YAML 1.2 core schema, plus
/// `^[0-9]+[A-Za-z]+$` as a duration. The YAML printer quotes every string for
/// which this is not [`Plain::Str`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in i64.
    BigInt,
    Float(f64),
    Duration,
    Str,
}

impl From<Plain> for Scalar {
    fn from(p: Plain) -> Self {
        match p {
            Plain::Null => Scalar::Null,
            Plain::Bool(b) => Scalar::Bool(b),
            Plain::Int(i) => Scalar::Int(i),
            Plain::BigInt => Scalar::BigInt,
            Plain::Float(f) => Scalar::Float(f),
            Plain::Duration => Scalar::Duration,
            Plain::Str => Scalar::Str,
        }
    }
}

pub(crate) fn classify_plain(s: &str) -> Plain {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "true" | "True" | "TRUE" => return Plain::Bool(true),
        "false" | "False" | "FALSE" => return Plain::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = s.strip_prefix("0x")
        && digits(hex, 16)
    {
        return i64::from_str_radix(hex, 16).map_or(Plain::BigInt, Plain::Int);
    }
    if let Some(oct) = s.strip_prefix("0o")
        && digits(oct, 8)
    {
        return i64::from_str_radix(oct, 8).map_or(Plain::BigInt, Plain::Int);
    }
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits(unsigned, 10) {
        return s.parse::<i64>().map_or(Plain::BigInt, Plain::Int);
    }
    if is_core_float(unsigned)
        && let Ok(f) = s.parse::<f64>()
    {
        return Plain::Float(f);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if split > 0 && split < s.len() && s[split..].chars().all(|c| c.is_ascii_alphabetic()) {
        return Plain::Duration;
    }
    Plain::Str
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (sign already stripped).
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}
