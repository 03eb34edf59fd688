//! Where the history tables are stored: a local directory, or S3-compatible object storage.
//!
//! S3 goes through `object_store`'s own S3 client, registered with deltalake for `s3://` URLs.
//! Delta commits are made with S3's conditional put (`If-None-Match: *`), which AWS S3, MinIO,
//! Ceph RGW and moto all honour, so two writers can never both create the same log version.
//! That is why the `deltalake` `s3` feature is not used: it brings the whole AWS SDK and a
//! DynamoDB lock, which conditional put made unnecessary.
//!
//! Credentials come from the standard `AWS_*` environment (or instance metadata and web
//! identity, as `object_store` resolves them), never from the configuration file, so they do
//! not land in a config dump or a log line.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Once};

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path;
use url::Url;

use crate::HistoryError;

/// Option keys that carry secrets: refused in [`HistoryLocation::with_options`].
const SECRET_MARKERS: &[&str] = &["secret", "access_key", "token", "password"];

/// The history root plus the object-store options needed to reach it.
#[derive(Clone, Default)]
pub struct HistoryLocation {
    root: String,
    options: HashMap<String, String>,
}

impl std::fmt::Debug for HistoryLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option names only: values are not secret (see with_options) but stay out of logs.
        let keys: BTreeMap<&str, &str> = self.options.keys().map(|k| (k.as_str(), "…")).collect();
        f.debug_struct("HistoryLocation")
            .field("root", &self.root)
            .field("options", &keys)
            .finish()
    }
}

impl From<String> for HistoryLocation {
    fn from(root: String) -> Self {
        HistoryLocation::new(root)
    }
}

impl From<&str> for HistoryLocation {
    fn from(root: &str) -> Self {
        HistoryLocation::new(root)
    }
}

impl HistoryLocation {
    /// Tables under `root`: a local path, `file://…` or `s3://bucket/prefix`.
    pub fn new(root: impl Into<String>) -> Self {
        register_s3();
        HistoryLocation {
            root: root.into().trim_end_matches('/').to_string(),
            options: HashMap::new(),
        }
    }

    /// Adds object-store options (`aws_endpoint`, `aws_region`, `aws_allow_http`, …).
    ///
    /// Credentials are refused here: they come from the environment, so that no configuration
    /// file or dump ever holds them.
    pub fn with_options<K: Into<String>, V: Into<String>>(
        mut self,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, HistoryError> {
        for (k, v) in options {
            let k = k.into();
            let lower = k.to_ascii_lowercase();
            if SECRET_MARKERS.iter().any(|m| lower.contains(m)) {
                return Err(HistoryError::Location(format!(
                    "option {k} carries a credential: set it in the environment (AWS_ACCESS_KEY_ID, \
                     AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) instead"
                )));
            }
            self.options.insert(k, v.into());
        }
        Ok(self)
    }

    /// The root location.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Whether the tables live on this machine's disk.
    pub fn is_local(&self) -> bool {
        !self.root.contains("://") || self.root.starts_with("file://")
    }

    /// Where a topic's table lives under the root.
    pub fn table_uri(&self, topic: &str) -> String {
        format!("{}/{}", self.root, topic)
    }

    /// The options handed to the object store.
    pub(crate) fn options(&self) -> &HashMap<String, String> {
        &self.options
    }

    /// An object store at `url` with these options (for exports and other plain files).
    pub fn object_store(&self, url: &Url) -> Result<(ObjectStoreRef, Path), HistoryError> {
        register_s3();
        let scheme = Url::parse(&format!("{}://", url.scheme()))
            .map_err(|e| HistoryError::Location(format!("{url}: {e}")))?;
        let factory = object_store_factories()
            .get(&scheme)
            .map(|f| f.value().clone())
            .ok_or_else(|| HistoryError::Location(format!("{url}: no storage for this scheme")))?;
        let config = StorageConfig::parse_options(self.options.clone())
            .map_err(|e| HistoryError::Location(format!("{url}: {e}")))?;
        factory
            .parse_url_opts(url, &config)
            .map_err(|e| HistoryError::Location(format!("{url}: {e}")))
    }
}

/// Registers the S3 object store and log store with deltalake, once per process.
pub fn register_s3() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            if let Ok(url) = Url::parse(scheme) {
                object_store_factories().insert(url.clone(), Arc::new(S3StoreFactory));
                logstore_factories().insert(url, Arc::new(ConditionalPutLogStore));
            }
        }
    });
}

/// Builds `object_store`'s S3 client for `s3://bucket/…` URLs.
struct S3StoreFactory;

impl ObjectStoreFactory for S3StoreFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let mut builder = AmazonS3Builder::from_env()
            .with_url(url.as_str())
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        for (k, v) in &config.raw {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&k.to_ascii_lowercase()) {
                builder = builder.with_config(key, v);
            }
        }
        let store: ObjectStoreRef = Arc::new(builder.build()?);
        let path = Path::from_url_path(url.path())
            .map_err(|e| deltalake::DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        Ok((store, path))
    }
}

/// Delta's default log store, whose commits use conditional put: safe on S3 as on disk.
struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refused_in_options() {
        let loc = HistoryLocation::new("s3://b/p");
        assert!(
            loc.clone()
                .with_options([("aws_secret_access_key", "x")])
                .is_err()
        );
        assert!(loc.with_options([("aws_endpoint", "http://x")]).is_ok());
    }

    #[test]
    fn debug_shows_option_names_not_values() {
        let loc = HistoryLocation::new("s3://b/p/")
            .with_options([("aws_endpoint", "http://internal:9000")])
            .expect("options");
        let s = format!("{loc:?}");
        assert!(s.contains("aws_endpoint") && !s.contains("internal"));
        assert_eq!(loc.table_uri("t"), "s3://b/p/t");
    }
}
