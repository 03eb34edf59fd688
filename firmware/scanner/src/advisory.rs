//! VULN-<CVE>: advisories matched by vendor, component, name, model and version range, the
//! same way for a stored artifact (from its catalog entry) and a server's installed firmware
//! (from the inventory). Some firmware vulnerabilities cannot be seen in the bytes at all
//! (LogoFAIL, PixieFAIL): the vendor's fixed version is the only reliable signal.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::report::{Evidence, Finding, Severity, Source};
use crate::rules::RulePack;

/// One advisory: which firmware it affects, and how badly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advisory {
    /// The CVE (or vendor advisory) id; the rule id is `VULN-<id>`.
    pub id: String,
    /// A short title for the finding.
    pub title: String,
    /// Finding severity.
    pub severity: Severity,
    /// Vendor, matched case-insensitively as a substring (`AMI`, `Insyde`, `Dell`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Component kind (`bios`, `bmc`, `nic`, …), matched case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Substrings of the component or package name, any of which must match when given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Substrings of the server model, any of which must match when given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Affected version ranges; a version in any of them is affected.
    pub ranges: Vec<VersionRange>,
    /// Where to read more.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// `introduced <= v < fixed`, or `<= last_affected`; an absent bound is open.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRange {
    /// First affected version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// First fixed version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Last affected version, when no fix is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
}

impl VersionRange {
    /// Whether `v` lies in the range.
    pub fn contains(&self, v: &str) -> bool {
        self.introduced
            .as_deref()
            .is_none_or(|i| compare_versions(v, i) != Ordering::Less)
            && self
                .fixed
                .as_deref()
                .is_none_or(|f| compare_versions(v, f) == Ordering::Less)
            && self
                .last_affected
                .as_deref()
                .is_none_or(|l| compare_versions(v, l) != Ordering::Greater)
    }
}

/// What an advisory is matched against: a component on a server, or an artifact's catalog entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// Vendor or manufacturer.
    pub vendor: Option<String>,
    /// Component kind.
    pub component: Option<String>,
    /// Component or package name.
    pub name: Option<String>,
    /// Server model (or the models a package applies to, joined).
    pub model: Option<String>,
    /// The firmware version.
    pub version: String,
}

fn contains_ci(haystack: Option<&str>, needle: &str) -> bool {
    haystack.is_some_and(|h| h.to_lowercase().contains(&needle.to_lowercase()))
}

impl Advisory {
    /// The rule id of its findings.
    pub fn rule_id(&self) -> String {
        format!("VULN-{}", self.id)
    }

    /// Whether the subject is affected.
    pub fn affects(&self, s: &Subject) -> bool {
        !s.version.trim().is_empty()
            && self
                .vendor
                .as_deref()
                .is_none_or(|v| contains_ci(s.vendor.as_deref(), v))
            && self.component.as_deref().is_none_or(|c| {
                s.component
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(c))
            })
            && (self.names.is_empty()
                || self.names.iter().any(|n| contains_ci(s.name.as_deref(), n)))
            && (self.models.is_empty()
                || self
                    .models
                    .iter()
                    .any(|m| contains_ci(s.model.as_deref(), m)))
            && self.ranges.iter().any(|r| r.contains(s.version.trim()))
    }

    /// The first fixed version of the range that holds `v`, for the finding's text.
    fn fixed_for(&self, v: &str) -> Option<&str> {
        self.ranges
            .iter()
            .find(|r| r.contains(v))
            .and_then(|r| r.fixed.as_deref())
    }
}

/// VULN-<id> findings for one subject under the pack's advisories.
pub fn advisory_findings(
    subject: &Subject,
    pack: &RulePack,
    source: Source,
    where_: &str,
) -> Vec<Finding> {
    pack.advisories
        .iter()
        .filter(|a| a.affects(subject))
        .map(|a| {
            let what = [subject.vendor.as_deref(), subject.name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let fix = a.fixed_for(subject.version.trim()).map_or_else(
                || "no fixed version known".to_string(),
                |f| format!("fixed in {f}"),
            );
            Finding {
                rule_id: a.rule_id(),
                severity: a.severity,
                source,
                subject: format!("{}: {what} {} ({fix})", a.title, subject.version.trim()),
                evidence: Evidence {
                    container_path: Some(where_.to_string()),
                    detail: Some(
                        std::iter::once(format!("{} {}", a.id, a.title))
                            .chain(a.references.iter().cloned())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    ..Default::default()
                },
                rule_pack: pack.version.clone(),
            }
        })
        .collect()
}

/// Orders vendor firmware versions, which are rarely semver (`2.19.1`, `A05`, `U46 v2.90`,
/// `edk2-stable202311`, `1.2.3-rc1`): both strings are cut into runs of digits and of letters;
/// digit runs compare as numbers, letter runs case-insensitively, separators only split runs.
/// A version that is a prefix of another is older (`1.2` < `1.2.1`). The scheme is fwupd's
/// `fu_version_compare` in spirit; no crate covers the vendor formats (semver refuses most).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (tokens(a), tokens(b));
    for (x, y) in ta.iter().zip(&tb) {
        let o = x.cmp(y);
        if o != Ordering::Equal {
            return o;
        }
    }
    ta.len().cmp(&tb.len())
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    /// Digits, leading zeros dropped so `05` == `5`; compared by length, then lexically, so
    /// any number of digits works without overflow.
    Num(String),
    Alpha(String),
}

impl Ord for Token {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Token::Num(a), Token::Num(b)) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
            (Token::Alpha(a), Token::Alpha(b)) => a.cmp(b),
            // A number sorts after letters: `1.2a` (a pre-release style) < `1.2.1`.
            (Token::Num(_), Token::Alpha(_)) => Ordering::Greater,
            (Token::Alpha(_), Token::Num(_)) => Ordering::Less,
        }
    }
}

impl PartialOrd for Token {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn tokens(v: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    let flush = |cur: &mut String, digits: bool, out: &mut Vec<Token>| {
        if cur.is_empty() {
            return;
        }
        let t = std::mem::take(cur);
        out.push(if digits {
            let trimmed = t.trim_start_matches('0');
            Token::Num(if trimmed.is_empty() {
                "0".into()
            } else {
                trimmed.into()
            })
        } else {
            Token::Alpha(t.to_lowercase())
        });
    };
    for c in v.trim().chars() {
        if c.is_ascii_digit() {
            if !digits {
                flush(&mut cur, digits, &mut out);
                digits = true;
            }
            cur.push(c);
        } else if c.is_alphabetic() {
            if digits {
                flush(&mut cur, digits, &mut out);
                digits = false;
            }
            cur.push(c);
        } else {
            flush(&mut cur, digits, &mut out);
        }
    }
    flush(&mut cur, digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn vendor_versions_order_naturally() {
        for (a, b, o) in [
            ("1.2.10", "1.2.9", Greater),
            ("1.2", "1.2.1", Less),
            ("A05", "A10", Less),
            ("a05", "A5", Equal),
            ("U46 v2.90", "U46 v2.100", Less),
            ("edk2-stable202311", "edk2-stable202402", Less),
            ("2.19.1", "2.19.1", Equal),
            ("1.2a", "1.2.1", Less),
            ("99999999999999999999999", "1", Greater),
            ("", "0", Less),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn ranges_and_matching() {
        let adv = Advisory {
            id: "CVE-0000-0001".into(),
            title: "test".into(),
            severity: Severity::High,
            vendor: Some("acme".into()),
            component: Some("bios".into()),
            names: vec![],
            models: vec!["R650".into()],
            ranges: vec![VersionRange {
                introduced: Some("1.0".into()),
                fixed: Some("1.4.2".into()),
                last_affected: None,
            }],
            references: vec![],
        };
        let mut s = Subject {
            vendor: Some("ACME Corp".into()),
            component: Some("BIOS".into()),
            name: Some("System BIOS".into()),
            model: Some("PowerEdge R650".into()),
            version: "1.4.1".into(),
        };
        assert!(adv.affects(&s));
        s.version = "1.4.2".into();
        assert!(!adv.affects(&s));
        s.version = "0.9".into();
        assert!(!adv.affects(&s));
        s.version = "1.0".into();
        assert!(adv.affects(&s));
        s.model = Some("R750".into());
        assert!(!adv.affects(&s));
        s.model = Some("R650".into());
        s.vendor = None;
        assert!(!adv.affects(&s));
        s.vendor = Some("acme".into());
        s.version = " ".into();
        assert!(!adv.affects(&s));
    }
}
