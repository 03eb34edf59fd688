//! Schema evolution guard: every schema stays fully compatible with each released version.
//!
//! Released versions live in `schemas/avro/history/<Record>/vN.avsc`. The current schema must
//! read data written with each of them (BACKWARD) and each of them must read data written with the
//! current one (FORWARD), and every field added since a release must carry a default.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;

fn avro_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("avro")
}

fn field_names(json: &serde_json::Value) -> BTreeSet<String> {
    json["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Why `current` is not a compatible evolution of `released`, if it is not.
fn evolution_problems(released: &str, current: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (Ok(old), Ok(new)) = (Schema::parse_str(released), Schema::parse_str(current)) else {
        return vec!["does not parse".into()];
    };
    if let Err(e) = SchemaCompatibility::can_read(&old, &new) {
        problems.push(format!("current cannot read released data: {e}"));
    }
    if let Err(e) = SchemaCompatibility::can_read(&new, &old) {
        problems.push(format!("released readers cannot read current data: {e}"));
    }
    let (Ok(oj), Ok(nj)) = (
        serde_json::from_str::<serde_json::Value>(released),
        serde_json::from_str::<serde_json::Value>(current),
    ) else {
        return problems;
    };
    let old_fields = field_names(&oj);
    for f in nj["fields"].as_array().into_iter().flatten() {
        let name = f["name"].as_str().unwrap_or_default();
        if !old_fields.contains(name) && f.get("default").is_none() {
            problems.push(format!("new field {name:?} has no default"));
        }
    }
    problems
}

#[test]
fn every_schema_evolves_compatibly_from_each_release() {
    let mut checked = 0;
    for entry in std::fs::read_dir(avro_dir()).expect("schemas/avro") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("avsc") {
            continue;
        }
        let record = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let current = std::fs::read_to_string(&path).expect("read");
        let history = avro_dir().join("history").join(&record);
        let releases: Vec<PathBuf> = std::fs::read_dir(&history)
            .unwrap_or_else(|_| {
                panic!(
                    "{record} has no released version under {}",
                    history.display()
                )
            })
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(!releases.is_empty(), "{record}: no released version");
        for r in releases {
            let released = std::fs::read_to_string(&r).expect("read");
            let problems = evolution_problems(&released, &current);
            assert!(
                problems.is_empty(),
                "{record} vs {}: {problems:?}",
                r.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 14, "checked {checked} schema releases");
}

#[test]
fn the_guard_catches_incompatible_changes() {
    let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    let with_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    let without_default = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;
    let retyped = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    assert!(evolution_problems(v1, with_default).is_empty());
    assert!(!evolution_problems(v1, without_default).is_empty());
    assert!(!evolution_problems(v1, retyped).is_empty());
}
