//! Comparing firmware versions across vendor styles: `1.2.3`, `2.10` vs `2.9`, Dell `A04`,
//! dates (`2024-01-15`, `20240115`), `v1.2`, hex `0x0102`, and pre-release words.
//!
//! No crate fits all of these (semver rejects most vendor strings), so this is a small
//! comparator: versions split into digit runs (compared as numbers, any length) and letter runs
//! (compared case-insensitively); separators only separate. A missing tail counts as zeros, so
//! `1.2` equals `1.2.0`; a tail starting with `alpha`/`beta`/`rc`/`pre`/`dev` sorts before the
//! release (`1.2-rc1` < `1.2`); otherwise a longer version is newer. A number beats a word in
//! the same position.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Num(String),
    Word(String),
}

fn tokens(v: &str) -> Vec<Tok> {
    let mut v = v.trim();
    if let Some(rest) = v.strip_prefix(['v', 'V'])
        && rest.starts_with(|c: char| c.is_ascii_digit())
    {
        v = rest;
    }
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"))
        && !hex.is_empty()
        && hex.chars().all(|c| c.is_ascii_hexdigit())
        && let Ok(n) = u128::from_str_radix(hex, 16)
    {
        return vec![Tok::Num(n.to_string())];
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digit = false;
    for c in v.chars() {
        let d = c.is_ascii_digit();
        let a = c.is_alphabetic();
        if !(d || a) {
            flush(&mut out, &mut cur, digit);
            continue;
        }
        if !cur.is_empty() && d != digit {
            flush(&mut out, &mut cur, digit);
        }
        digit = d;
        cur.extend(c.to_lowercase());
    }
    flush(&mut out, &mut cur, digit);
    out
}

fn flush(out: &mut Vec<Tok>, cur: &mut String, digit: bool) {
    if cur.is_empty() {
        return;
    }
    if digit {
        let t = cur.trim_start_matches('0');
        out.push(Tok::Num(if t.is_empty() {
            "0".into()
        } else {
            t.to_string()
        }));
    } else {
        out.push(Tok::Word(cur.clone()));
    }
    cur.clear();
}

fn is_pre(t: &Tok) -> bool {
    matches!(t, Tok::Word(w) if ["alpha", "beta", "rc", "pre", "dev", "a", "b"].contains(&w.as_str()))
}

fn cmp_tok(a: &Tok, b: &Tok) -> Ordering {
    match (a, b) {
        (Tok::Num(x), Tok::Num(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Tok::Word(x), Tok::Word(y)) => x.cmp(y),
        (Tok::Num(_), Tok::Word(_)) => Ordering::Greater,
        (Tok::Word(_), Tok::Num(_)) => Ordering::Less,
    }
}

fn tail_order(tail: &[Tok]) -> Ordering {
    match tail.first() {
        None => Ordering::Equal,
        Some(t) if is_pre(t) => Ordering::Less,
        Some(_) if tail.iter().all(|t| *t == Tok::Num("0".into())) => Ordering::Equal,
        Some(_) => Ordering::Greater,
    }
}

/// Orders two firmware versions (see the module doc for the rules).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(tb.iter()) {
        let o = cmp_tok(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    let n = ta.len().min(tb.len());
    match ta.len().cmp(&tb.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater => tail_order(&ta[n..]),
        Ordering::Less => tail_order(&tb[n..]).reverse(),
    }
}

/// Whether two version strings name the same version (`1.2` = `1.2.0` = `v1.02`).
pub fn same_version(a: &str, b: &str) -> bool {
    compare_versions(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn vendor_styles() {
        let cases = [
            ("1.2.3", "1.2.10", Less),
            ("2.10", "2.9", Greater),
            ("A04", "A10", Less),
            ("A10", "A09", Greater),
            ("2024-01-15", "2023-12-31", Greater),
            ("20240115", "20231231", Greater),
            ("1.2", "1.2.0", Equal),
            ("v1.02", "1.2", Equal),
            ("1.2-rc1", "1.2", Less),
            ("1.2.1", "1.2", Greater),
            ("0x0102", "0x00ff", Greater),
            ("16.29.1016", "16.29.1016", Equal),
            ("22.41.1000", "16.29.1016", Greater),
            ("1.48", "1.5", Greater),
            ("U46 v2.10 (10/25/2023)", "U46 v2.9 (01/01/2024)", Greater),
            (
                "99999999999999999999999999999999999999999.1",
                "1.0",
                Greater,
            ),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
