//! YARA-<rule>: YARA rules from the shipped pack and the operator's directory, compiled once per
//! rule set with VirusTotal's yara-x (the maintained Rust YARA; only its core and the light
//! hash/math/string modules are built, not the PE module, whose crypto pins clash with ours),
//! and run over the blob and over everything the walker decompresses, where compressed volumes
//! would otherwise hide strings.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::report::{Evidence, Finding, Severity, Source};

/// Prefix of every YARA finding's rule id: `YARA-<rule name>`.
pub const YARA_PREFIX: &str = "YARA-";

/// The shipped rules, compiled into the binary.
const SHIPPED: &[(&str, &str)] = &[
    (
        "private_keys.yar",
        include_str!("../rules/yara/private_keys.yar"),
    ),
    (
        "credentials.yar",
        include_str!("../rules/yara/credentials.yar"),
    ),
];

/// Longest a single buffer's YARA scan may run (yara-x counts whole seconds).
pub(crate) const SCAN_TIMEOUT: Duration = Duration::from_secs(10);

/// YARA time one blob may use in all, so a hostile blob of many streams cannot multiply it.
pub(crate) const BLOB_BUDGET: Duration = Duration::from_secs(30);

/// Matches kept per pattern: a finding needs only the first, and a pattern that hits every
/// byte of a large image would otherwise hold millions.
const MAX_MATCHES_PER_PATTERN: usize = 1000;

/// One YARA source file of a rule pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct YaraSource {
    /// File name (`private_keys.yar`): names it in errors, and a file of the same name replaces it.
    pub name: String,
    /// The rule text.
    pub source: String,
}

/// Why a set of YARA sources cannot be used; names the file so the operator knows which.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("YARA rule file {file}: {message}")]
pub struct YaraError {
    /// The source's name.
    pub file: String,
    /// What is wrong (yara-x's report, with line and column).
    pub message: String,
}

/// The shipped pack's YARA sources (the rule pack's default).
pub fn builtin_yara() -> Vec<YaraSource> {
    SHIPPED
        .iter()
        .map(|(name, source)| YaraSource {
            name: (*name).to_string(),
            source: (*source).to_string(),
        })
        .collect()
}

/// Whether `name` is a YARA file name the operator's directory and `rules update` take.
pub fn is_yara_file(name: &Path) -> bool {
    name.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara"))
}

/// Reads one `.yar`/`.yara` file as a pack source named by its file name.
pub fn read_file(path: &Path) -> Result<YaraSource, YaraError> {
    let file = path.display().to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !is_yara_file(path) {
        return Err(YaraError {
            file,
            message: "not a .yar or .yara file".into(),
        });
    }
    let source = std::fs::read_to_string(path).map_err(|e| YaraError {
        file,
        message: format!("reading: {e}"),
    })?;
    Ok(YaraSource { name, source })
}

/// The `.yar`/`.yara` files of a directory, sorted by name (so the rule set, and the version tag
/// derived from it, do not depend on directory order); none when the directory does not exist.
pub fn read_dir(dir: &Path) -> Result<Vec<YaraSource>, YaraError> {
    let failed = |e: std::io::Error| YaraError {
        file: dir.display().to_string(),
        message: format!("reading the directory: {e}"),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed(e)),
    };
    let mut paths = Vec::new();
    for e in entries {
        let p = e.map_err(failed)?.path();
        if p.is_file() && is_yara_file(&p) {
            paths.push(p);
        }
    }
    paths.sort();
    paths.iter().map(|p| read_file(p)).collect()
}

/// Compiled rules and, per namespace index, the file each came from.
pub(crate) struct Compiled {
    rules: yara_x::Rules,
    files: Vec<String>,
}

/// Checks a source's name: a plain file name, since replacing goes by it.
fn check_name(name: &str) -> Result<(), YaraError> {
    let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
    if plain {
        return Ok(());
    }
    Err(YaraError {
        file: name.to_string(),
        message: "a YARA source needs a plain file name (no directories)".into(),
    })
}

/// The `severity` a rule's metadata asks for; `None` when the value is not one we know.
fn severity_of(value: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|s| s.as_str().eq_ignore_ascii_case(value))
}

/// Refuses a rule whose `severity` metadata is not critical, high, medium or info: a typo
/// would otherwise turn a critical (quarantining) rule into a medium one without a word.
fn check_severities(c: &Compiled) -> Result<(), YaraError> {
    for rule in c.rules.iter() {
        for (key, value) in rule.metadata() {
            if key != "severity" {
                continue;
            }
            let ok = matches!(value, yara_x::MetaValue::String(s) if severity_of(s).is_some());
            if !ok {
                return Err(YaraError {
                    file: c.file_of(rule.namespace()).to_string(),
                    message: format!(
                        "rule {}: severity {value:?} is not one of critical, high, medium, info",
                        rule.identifier()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Compiles sources, each in its own namespace so rule names may repeat across files.
/// `include` is off (a pack must not read files on the scanning host), and slow patterns or
/// loops are errors rather than warnings: the rules run over every stream of every image.
pub(crate) fn compile(sources: &[YaraSource]) -> Result<Compiled, YaraError> {
    let mut c = yara_x::Compiler::new();
    c.enable_includes(false)
        .error_on_slow_pattern(true)
        .error_on_slow_loop(true);
    for (i, s) in sources.iter().enumerate() {
        check_name(&s.name)?;
        c.new_namespace(&format!("pack{i}"));
        c.add_source(yara_x::SourceCode::from(s.source.as_str()).with_origin(s.name.clone()))
            .map_err(|e| YaraError {
                file: s.name.clone(),
                message: e.to_string(),
            })?;
    }
    let compiled = Compiled {
        rules: c.build(),
        files: sources.iter().map(|s| s.name.clone()).collect(),
    };
    check_severities(&compiled)?;
    Ok(compiled)
}

/// Checks that `sources` compile; returns how many rules they hold (`rules show`).
pub fn check(sources: &[YaraSource]) -> Result<usize, YaraError> {
    Ok(rules_for(sources)?.map_or(0, |c| c.rules.iter().len()))
}

/// The compiled rules for `sources`, built once per distinct set (compiling costs far more than
/// scanning one image, and a pack is checked on load and then used for every scan); `None`
/// when there are none. A few sets are kept: the builtin pack and an operator's alternate.
pub(crate) fn rules_for(sources: &[YaraSource]) -> Result<Option<Arc<Compiled>>, YaraError> {
    type Cached = (Vec<YaraSource>, Result<Arc<Compiled>, YaraError>);
    const KEEP: usize = 4;
    static CACHE: Mutex<Vec<Cached>> = Mutex::new(Vec::new());
    if sources.is_empty() {
        return Ok(None);
    }
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(pos) = cache.iter().position(|(k, _)| k.as_slice() == sources) {
        let hit = cache.remove(pos);
        let result = hit.1.clone();
        cache.push(hit);
        return result.map(Some);
    }
    let result = compile(sources).map(Arc::new);
    if cache.len() >= KEEP {
        drop(cache.remove(0));
    }
    cache.push((sources.to_vec(), result.clone()));
    result.map(Some)
}

impl Compiled {
    /// The file a rule's namespace (`pack<i>`) came from.
    fn file_of(&self, namespace: &str) -> &str {
        namespace
            .strip_prefix("pack")
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.files.get(i))
            .map_or("?", String::as_str)
    }
}

/// Why one buffer's scan produced no findings.
#[derive(Debug)]
pub(crate) enum ScanFailure {
    /// The timeout passed (an FW-FMT-002: the scan was bounded, the result incomplete).
    Timeout,
    /// Anything else yara-x reports (a note).
    Other(String),
}

/// The rules with one scanner over them, made once per blob: a yara-x scanner is a wasm
/// instance, too costly to make again for every stream an image decompresses into.
pub(crate) struct Session<'r> {
    compiled: &'r Compiled,
    scanner: yara_x::Scanner<'r>,
}

impl<'r> Session<'r> {
    /// A scanner over `compiled`.
    pub(crate) fn new(compiled: &'r Compiled) -> Self {
        let mut scanner = yara_x::Scanner::new(&compiled.rules);
        scanner.max_matches_per_pattern(MAX_MATCHES_PER_PATTERN);
        Session { compiled, scanner }
    }

    /// Runs the rules over one buffer; `path` places the offsets in the blob's tree.
    pub(crate) fn scan(
        &mut self,
        data: &[u8],
        path: &str,
        pack_version: &str,
        timeout: Duration,
    ) -> Result<Vec<Finding>, ScanFailure> {
        let compiled = self.compiled;
        let results = self
            .scanner
            .set_timeout(timeout)
            .scan(data)
            .map_err(|e| match e {
                yara_x::ScanError::Timeout => ScanFailure::Timeout,
                other => ScanFailure::Other(other.to_string()),
            })?;
        Ok(results
            .matching_rules()
            .map(|r| finding(compiled, &r, path, pack_version))
            .collect())
    }
}

/// One matching rule as a finding: severity and subject from its metadata, the first match's
/// offset and pattern as evidence.
fn finding(
    compiled: &Compiled,
    r: &yara_x::Rule<'_, '_>,
    path: &str,
    pack_version: &str,
) -> Finding {
    let mut severity = Severity::Medium;
    let mut description = String::new();
    for (key, value) in r.metadata() {
        match (key, value) {
            ("severity", yara_x::MetaValue::String(s)) => {
                severity = severity_of(s).unwrap_or(Severity::Medium);
            }
            ("description", yara_x::MetaValue::String(s)) => description = s.to_string(),
            _ => {}
        }
    }
    let first = r
        .patterns()
        .filter_map(|p| {
            let start = p.matches().map(|m| m.range().start).min()?;
            Some((start, p.identifier().to_string()))
        })
        .min();
    let file = compiled.file_of(r.namespace());
    let detail = match &first {
        Some((_, pattern)) => format!("{file}: rule {} pattern {pattern}", r.identifier()),
        None => format!("{file}: rule {} (condition only)", r.identifier()),
    };
    Finding {
        rule_id: format!("{YARA_PREFIX}{}", r.identifier()),
        severity,
        source: Source::Blob,
        subject: if description.is_empty() {
            format!("YARA rule {} matched", r.identifier())
        } else {
            description
        },
        evidence: Evidence {
            container_path: Some(if path.is_empty() {
                "/".into()
            } else {
                path.into()
            }),
            offset: first.map(|(o, _)| o as u64),
            detail: Some(detail),
            ..Default::default()
        },
        rule_pack: pack_version.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(name: &str, text: &str) -> YaraSource {
        YaraSource {
            name: name.into(),
            source: text.into(),
        }
    }

    fn scan_ok(c: &Compiled, data: &[u8]) -> Vec<Finding> {
        Session::new(c)
            .scan(data, "/fv@0x0", "t", SCAN_TIMEOUT)
            .expect("scan")
    }

    #[test]
    fn shipped_rules_compile_and_bad_ones_name_their_file() {
        assert_eq!(
            check(&builtin_yara()),
            Ok(3),
            "PrivateKeyInFirmware and two root rules"
        );
        let e = compile(&[source("broken.yar", "rule x { condition: nonsense }")])
            .err()
            .expect("refused");
        assert_eq!(e.file, "broken.yar");
        assert!(e.message.contains("nonsense"), "{}", e.message);
        assert!(e.to_string().starts_with("YARA rule file broken.yar: "));
    }

    #[test]
    fn includes_bad_severities_slow_patterns_and_path_names_are_refused() {
        let cases = [
            source(
                "inc.yar",
                "include \"/etc/passwd\"\nrule x { condition: true }",
            ),
            source(
                "sev.yar",
                "rule x { meta: severity = \"urgent\" condition: true }",
            ),
            source("sev2.yar", "rule x { meta: severity = 3 condition: true }"),
            source("slow.yar", "rule x { strings: $a = { 00 } condition: $a }"),
            source("../x.yar", "rule x { condition: true }"),
        ];
        for s in cases {
            let e = compile(std::slice::from_ref(&s)).err();
            assert_eq!(e.map(|e| e.file), Some(s.name.clone()), "{}", s.source);
        }
    }

    #[test]
    fn a_match_is_a_finding_with_offset_severity_and_file() {
        let c = compile(&builtin_yara()).expect("compile");
        let mut blob = vec![0u8; 100];
        blob.extend_from_slice(b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n");
        let f = scan_ok(&c, &blob);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule_id, "YARA-PrivateKeyInFirmware");
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence.offset, Some(100));
        assert_eq!(f[0].evidence.container_path.as_deref(), Some("/fv@0x0"));
        let detail = f[0].evidence.detail.clone().unwrap_or_default();
        assert!(detail.starts_with("private_keys.yar: "), "{detail}");
        assert!(scan_ok(&c, &[0u8; 64]).is_empty());
    }

    #[test]
    fn the_same_rule_name_in_two_files_compiles_and_severity_defaults_to_medium() {
        let rule = "rule Marker { strings: $a = \"lab-marker-1234\" condition: $a }";
        let c = compile(&[source("a.yar", rule), source("b.yar", rule)]).expect("compile");
        let f = scan_ok(&c, b"xx lab-marker-1234 xx");
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.severity == Severity::Medium));
        assert!(f.iter().all(|f| f.rule_id == "YARA-Marker"));
    }

    #[test]
    fn a_root_password_hash_is_found_but_a_locked_root_is_not() {
        let c = compile(&builtin_yara()).expect("compile");
        let shadow = b"root:$6$Ab3dEf9h$6Ws0tVq1LmHxzcuaP1Gj9hVQyQ0RkS1.Fbq9mYx7v3uTt2Qv7Xk0fWcB9pLzN2sR8eH4aY6oUiJ3lK5nM7bC1/:19000:0:99999:7:::\n";
        let f = scan_ok(&c, shadow);
        assert_eq!(
            f.iter().map(|f| f.rule_id.as_str()).collect::<Vec<_>>(),
            ["YARA-RootPasswordHashInFirmware"]
        );
        assert!(scan_ok(&c, b"root:*:19000:0:99999:7:::\nroot:!:19000::::::\n").is_empty());
    }

    #[test]
    fn the_cache_returns_the_same_rules_and_remembers_errors() {
        let a = rules_for(&builtin_yara()).expect("ok").expect("some");
        let b = rules_for(&builtin_yara()).expect("ok").expect("some");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(rules_for(&[]).expect("ok").is_none());
        let bad = [source("b.yar", "rule {")];
        assert!(rules_for(&bad).is_err());
        assert!(rules_for(&bad).is_err());
    }
}
