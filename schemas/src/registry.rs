//! A Confluent-compatible schema registry, storage-agnostic.
//!
//! State is rebuilt by replaying the `_schemas` topic ([`SchemaRegistry::apply`]) and every
//! registration is appended there in Confluent's own record format, so any number of API
//! processes converge on the same registry by reading the same compacted topic.
//!
//! Ids are derived from the schema's Parsing Canonical Form (the first 31 bits of its SHA-256,
//! probing upwards on a collision) rather than from a counter: two processes that register the
//! same schema at the same time write identical records, with no leader to elect. Versions are
//! assigned in log order when records are applied, so every replica numbers them the same way.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where registrations are appended (the `_schemas` topic in the service).
#[async_trait::async_trait]
pub trait RegistryLog: Send + Sync {
    /// Appends one registry record.
    async fn append(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), String>;
}

/// Which version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    /// The newest.
    Latest,
    /// A version number (from 1).
    Number(u32),
}

/// A schema as registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Subject.
    pub subject: String,
    /// Version under the subject.
    pub version: u32,
    /// Global id.
    pub id: u32,
    /// Schema text.
    pub schema: String,
}

/// Answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityResult {
    /// Whether the schema can read data written with the compared version.
    pub is_compatible: bool,
    /// Why not.
    pub messages: Vec<String>,
}

/// Registry errors, with Confluent's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// No such subject.
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// No such version.
    #[error("Version not found.")]
    VersionNotFound,
    /// No such schema.
    #[error("Schema not found")]
    SchemaNotFound,
    /// Not a valid Avro schema.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// Not BACKWARD compatible with the latest version.
    #[error("Schema being registered is incompatible with an earlier schema: {0}")]
    Incompatible(String),
    /// The `_schemas` topic could not be written.
    #[error("Error while storing the schema: {0}")]
    Storage(String),
}

impl RegistryError {
    /// Confluent's error code.
    pub fn error_code(&self) -> u32 {
        match self {
            Self::SubjectNotFound(_) => 40401,
            Self::VersionNotFound => 40402,
            Self::SchemaNotFound => 40403,
            Self::InvalidSchema(_) => 42201,
            Self::Incompatible(_) => 409,
            Self::Storage(_) => 50001,
        }
    }

    /// The HTTP status Confluent answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::SubjectNotFound(_) | Self::VersionNotFound | Self::SchemaNotFound => 404,
            Self::InvalidSchema(_) => 422,
            Self::Incompatible(_) => 409,
            Self::Storage(_) => 500,
        }
    }
}

/// Key of a `_schemas` record (Confluent's format).
#[derive(Debug, Serialize, Deserialize)]
struct RecordKey {
    keytype: String,
    subject: Option<String>,
    version: Option<u32>,
    magic: u32,
}

/// Value of a `_schemas` SCHEMA record (Confluent's format).
#[derive(Debug, Serialize, Deserialize)]
struct RecordValue {
    subject: String,
    version: u32,
    id: u32,
    schema: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Default)]
struct State {
    /// id -> (schema text, canonical form)
    by_id: HashMap<u32, (String, String)>,
    /// canonical form -> id
    by_canonical: HashMap<String, u32>,
    /// subject -> ids in version order
    subjects: BTreeMap<String, Vec<u32>>,
}

/// The registry; clones share state.
#[derive(Clone)]
pub struct SchemaRegistry {
    state: Arc<RwLock<State>>,
    log: Arc<dyn RegistryLog>,
}

fn parse(text: &str) -> Result<(Schema, String), RegistryError> {
    let s = Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let c = s.canonical_form();
    Ok((s, c))
}

fn derived_id(canonical: &str) -> u32 {
    let h = Sha256::digest(canonical.as_bytes());
    (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff).max(1)
}

impl SchemaRegistry {
    /// An empty registry that appends to `log`.
    pub fn new(log: Arc<dyn RegistryLog>) -> Self {
        SchemaRegistry {
            state: Arc::default(),
            log,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one `_schemas` record (replay at start-up, or tailing other processes' writes).
    /// Records that are not SCHEMA records, or not valid, are ignored.
    pub fn apply(&self, key: &[u8], value: Option<&[u8]>) {
        let Ok(k) = serde_json::from_slice::<RecordKey>(key) else {
            return;
        };
        if k.keytype != "SCHEMA" {
            return;
        }
        let Some(Ok(v)) = value.map(serde_json::from_slice::<RecordValue>) else {
            return;
        };
        if v.deleted {
            return;
        }
        let Ok((_, canonical)) = parse(&v.schema) else {
            return;
        };
        let mut st = self.write();
        st.by_id
            .entry(v.id)
            .or_insert_with(|| (v.schema.clone(), canonical.clone()));
        st.by_canonical.entry(canonical).or_insert(v.id);
        let ids = st.subjects.entry(v.subject).or_default();
        if !ids.contains(&v.id) {
            ids.push(v.id);
        }
    }

    /// Every subject.
    pub fn subjects(&self) -> Vec<String> {
        self.read().subjects.keys().cloned().collect()
    }

    /// The versions of a subject.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let st = self.read();
        let ids = st
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        Ok((1..=ids.len() as u32).collect())
    }

    /// One version of a subject.
    pub fn version(
        &self,
        subject: &str,
        sel: VersionSelector,
    ) -> Result<RegisteredSchema, RegistryError> {
        let st = self.read();
        let ids = st
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
        let n = match sel {
            VersionSelector::Latest => ids.len() as u32,
            VersionSelector::Number(n) => n,
        };
        let id = *ids
            .get((n as usize).wrapping_sub(1))
            .ok_or(RegistryError::VersionNotFound)?;
        let schema = st
            .by_id
            .get(&id)
            .map(|(s, _)| s.clone())
            .ok_or(RegistryError::SchemaNotFound)?;
        Ok(RegisteredSchema {
            subject: subject.into(),
            version: n,
            id,
            schema,
        })
    }

    /// A schema by global id (subject and version left empty).
    pub fn schema_by_id(&self, id: u32) -> Result<RegisteredSchema, RegistryError> {
        let st = self.read();
        let (schema, _) = st.by_id.get(&id).ok_or(RegistryError::SchemaNotFound)?;
        Ok(RegisteredSchema {
            subject: String::new(),
            version: 0,
            id,
            schema: schema.clone(),
        })
    }

    /// The subject/version pairs a schema id is registered under.
    pub fn subject_versions_of(&self, id: u32) -> Vec<(String, u32)> {
        let st = self.read();
        st.subjects
            .iter()
            .filter_map(|(s, ids)| {
                ids.iter()
                    .position(|x| *x == id)
                    .map(|p| (s.clone(), p as u32 + 1))
            })
            .collect()
    }

    /// Whether `text` is registered under `subject` (compared in canonical form).
    pub fn lookup(&self, subject: &str, text: &str) -> Result<RegisteredSchema, RegistryError> {
        let (_, canonical) = parse(text)?;
        let (id, pos) = {
            let st = self.read();
            let ids = st
                .subjects
                .get(subject)
                .ok_or_else(|| RegistryError::SubjectNotFound(subject.into()))?;
            let id = *st
                .by_canonical
                .get(&canonical)
                .ok_or(RegistryError::SchemaNotFound)?;
            let pos = ids
                .iter()
                .position(|x| *x == id)
                .ok_or(RegistryError::SchemaNotFound)?;
            (id, pos)
        };
        self.version(subject, VersionSelector::Number(pos as u32 + 1))
            .map(|r| RegisteredSchema { id, ..r })
    }

    /// Checks that `text` can read data written with a version (Confluent's BACKWARD rule).
    pub fn check_compatibility(
        &self,
        subject: &str,
        sel: VersionSelector,
        text: &str,
    ) -> Result<CompatibilityResult, RegistryError> {
        let (new, _) = parse(text)?;
        let old = self.version(subject, sel)?;
        let (old, _) = parse(&old.schema)?;
        Ok(match SchemaCompatibility::can_read(&old, &new) {
            Ok(_) => CompatibilityResult {
                is_compatible: true,
                messages: vec![],
            },
            Err(e) => CompatibilityResult {
                is_compatible: false,
                messages: vec![e.to_string()],
            },
        })
    }

    /// Registers `text` under `subject` (idempotent) and returns its global id.
    pub async fn register(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let (_, canonical) = parse(text)?;
        let (id, version) = {
            let st = self.read();
            let existing = st.by_canonical.get(&canonical).copied();
            let ids = st.subjects.get(subject);
            if let (Some(id), Some(ids)) = (existing, ids)
                && ids.contains(&id)
            {
                return Ok(id);
            }
            let id = existing.unwrap_or_else(|| {
                let mut id = derived_id(&canonical);
                while st.by_id.contains_key(&id) {
                    id = id.wrapping_add(1).max(1) & 0x7fff_ffff;
                }
                id
            });
            (id, ids.map_or(0, Vec::len) as u32 + 1)
        };
        if version > 1 {
            let c = self.check_compatibility(subject, VersionSelector::Latest, text)?;
            if !c.is_compatible {
                return Err(RegistryError::Incompatible(c.messages.join("; ")));
            }
        }
        let key = serde_json::to_vec(&RecordKey {
            keytype: "SCHEMA".into(),
            subject: Some(subject.into()),
            version: Some(version),
            magic: 1,
        })
        .map_err(|e| RegistryError::Storage(e.to_string()))?;
        let value = serde_json::to_vec(&RecordValue {
            subject: subject.into(),
            version,
            id,
            schema: text.into(),
            deleted: false,
        })
        .map_err(|e| RegistryError::Storage(e.to_string()))?;
        self.log
            .append(key.clone(), value.clone())
            .await
            .map_err(RegistryError::Storage)?;
        self.apply(&key, Some(&value));
        Ok(id)
    }

    /// Registers every catalog topic's schema under its subject; returns topic -> id.
    pub async fn register_catalog(&self) -> Result<HashMap<String, u32>, RegistryError> {
        let mut out = HashMap::new();
        for t in crate::catalog::topics() {
            if let Some(json) = t.schema_json {
                let id = self.register(&t.subject(), json).await?;
                out.insert(t.name.to_string(), id);
            }
        }
        Ok(out)
    }
}

/// A registry log that keeps records in memory, for tests and for tools without a log.
#[derive(Default)]
pub struct MemoryRegistryLog {
    /// Appended records.
    pub records: std::sync::Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl RegistryLog for MemoryRegistryLog {
    async fn append(&self, key: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        self.records
            .lock()
            .map_err(|e| e.to_string())?
            .push((key, value));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"c","type":"int"}]}"#;

    #[tokio::test]
    async fn register_evolve_refuse_and_replay() {
        let log = Arc::new(MemoryRegistryLog::default());
        let r = SchemaRegistry::new(log.clone());
        let id1 = r.register("t-value", V1).await.expect("v1");
        assert_eq!(
            r.register("t-value", V1).await.expect("again"),
            id1,
            "idempotent"
        );
        let id2 = r
            .register("t-value", V2)
            .await
            .expect("v2 adds a field with a default");
        assert_ne!(id1, id2);
        let e = r.register("t-value", BAD).await.expect_err("no default");
        assert_eq!(e.error_code(), 409);
        assert_eq!(r.versions("t-value").expect("versions"), vec![1, 2]);
        assert_eq!(
            r.version("t-value", VersionSelector::Latest)
                .expect("latest")
                .id,
            id2
        );
        assert_eq!(r.lookup("t-value", V1).expect("lookup").version, 1);
        assert_eq!(
            r.register("other-value", V1).await.expect("same schema"),
            id1,
            "ids are global"
        );
        assert!(
            !r.check_compatibility("t-value", VersionSelector::Latest, BAD)
                .expect("check")
                .is_compatible
        );
        assert_eq!(
            r.version("nope", VersionSelector::Latest)
                .expect_err("x")
                .error_code(),
            40401
        );
        assert_eq!(r.schema_by_id(12345).expect_err("x").error_code(), 40403);
        assert_eq!(
            r.register("t-value", "{not json")
                .await
                .expect_err("x")
                .error_code(),
            42201
        );

        // A second registry replaying the records converges on the same state.
        let replica = SchemaRegistry::new(Arc::new(MemoryRegistryLog::default()));
        for (k, v) in log.records.lock().expect("lock").iter() {
            replica.apply(k, Some(v));
        }
        assert_eq!(replica.subjects(), r.subjects());
        assert_eq!(
            replica.version("t-value", VersionSelector::Number(2)),
            r.version("t-value", VersionSelector::Number(2))
        );
        replica.apply(b"garbage", Some(b"{"));
        replica.apply(br#"{"keytype":"NOOP","magic":0}"#, None);
    }

    #[tokio::test]
    async fn the_catalog_registers() {
        let r = SchemaRegistry::new(Arc::new(MemoryRegistryLog::default()));
        let ids = r.register_catalog().await.expect("catalog");
        assert!(ids.contains_key(crate::catalog::TELEMETRY_READINGS));
        assert_eq!(
            r.register_catalog().await.expect("again"),
            ids,
            "stable ids"
        );
    }
}
