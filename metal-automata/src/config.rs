//! Configuration: built-in defaults, then a TOML file, then `METAL_AUTOMATA_*` environment.
//!
//! Nested keys use a double underscore in the environment: `METAL_AUTOMATA_LOG__BACKEND=kafka`
//! sets `[log] backend = "kafka"`. figment does the layering (and reports which layer a bad
//! value came from), which is why it is used rather than hand-rolled merging.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything `metal-automata` can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where local state lives (embedded log, stores). Default: `$XDG_DATA_HOME/metal-automata`.
    pub data_dir: Option<PathBuf>,
    /// The message log.
    pub log: automata_log::LogConfig,
    /// The HTTP API.
    pub api: automata_query::ApiConfig,
    /// Logs, traces and metrics.
    pub observability: automata_observability::ObservabilityConfig,
    /// The schema registry.
    pub registry: RegistryConfig,
    /// The collector role.
    pub collector: CollectorConfig,
    /// Object storage for history and firmware blobs.
    pub storage: StorageConfig,
    /// The history sink (Delta Lake tables).
    pub history: HistoryConfig,
    /// Limits of SQL queries over history.
    pub sql: automata_query::sql::SqlConfig,
    /// How the health processor judges readings (threshold overrides, hysteresis).
    pub health: automata_processors::health::HealthConfig,
    /// Where health events are sent (webhooks, Slack, e-mail).
    pub notify: automata_sinks::notify::NotifyConfig,
    /// TPM enrollment: trusted EK roots and the challenge key.
    pub tpm: TpmConfig,
}

/// How the service checks TPM enrollments.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpmConfig {
    /// Operator roots for EK certificates, added to the shipped vendor roots: PEM or DER files,
    /// and intermediates in its `intermediates/` subdirectory. Default: `<data>/tpm/roots`.
    pub roots_dir: Option<PathBuf>,
    /// The key sealing challenges (32 random bytes, made on first use); every API replica needs
    /// the same one. Default: `<data>/tpm/challenge.key`.
    pub challenge_key_file: Option<PathBuf>,
}

impl TpmConfig {
    /// The trust roots: shipped vendor roots plus the operator's directory, when it exists.
    pub fn roots(&self, data_dir: &Path) -> Result<automata_tpm::TrustRoots> {
        let dir = self
            .roots_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("tpm").join("roots"));
        let mut roots = automata_tpm::TrustRoots::shipped();
        if dir.exists() {
            let n = roots
                .add_dir(&dir)
                .with_context(|| format!("TPM roots in {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), certificates = n, "operator TPM roots loaded");
        }
        Ok(roots)
    }

    /// The challenge key, made (0600) when it does not exist yet.
    pub fn challenge_key(&self, data_dir: &Path) -> Result<[u8; 32]> {
        let path = self
            .challenge_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("tpm").join("challenge.key"));
        let bytes = automata_query::keyfile::load_or_create(&path)
            .with_context(|| format!("the TPM challenge key {}", path.display()))?;
        bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()))
    }
}

/// When the history sink writes its buffers out as Parquet files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Rows per table that trigger a write (a file with one row group of about this size).
    pub max_rows: usize,
    /// Seconds the oldest buffered row may wait before a write.
    pub max_age_secs: u64,
    /// Seconds between compaction, retention and vacuum passes (0: never).
    pub upkeep_every_secs: u64,
    /// Days each table keeps, by topic (`"telemetry.readings" = 90`); absent: forever.
    pub retention_days: std::collections::BTreeMap<String, u64>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            max_rows: 100_000,
            max_age_secs: 30,
            upkeep_every_secs: 600,
            retention_days: std::collections::BTreeMap::new(),
        }
    }
}

/// Where history tables and firmware blobs are stored.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// A local directory or an `s3://bucket/prefix` URL (credentials from the usual `AWS_*`
    /// environment); unset, `<data_dir>/storage`.
    pub url: Option<String>,
    /// How to reach S3-compatible storage other than AWS itself.
    pub s3: S3Config,
}

/// Settings for S3-compatible storage. Credentials are not here on purpose: they come from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` or the instance's role.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of a non-AWS service (MinIO, Ceph RGW, …), e.g. `https://minio.lab:9000`.
    pub endpoint: Option<String>,
    /// Region (AWS); most other services accept any value.
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint (off: TLS is required).
    pub allow_http: bool,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    pub virtual_hosted_style: bool,
}

impl S3Config {
    /// The object-store options these settings stand for.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(e) = &self.endpoint {
            out.push(("aws_endpoint", e.clone()));
        }
        if let Some(r) = &self.region {
            out.push(("aws_region", r.clone()));
        }
        if self.allow_http {
            out.push(("aws_allow_http", "true".into()));
        }
        if self.virtual_hosted_style {
            out.push(("aws_virtual_hosted_style_request", "true".into()));
        }
        out
    }
}

/// Where schemas are registered.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// An external Confluent-compatible registry; unset, the service runs its own on the API.
    pub url: Option<String>,
}

/// Settings of the collector role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Collect this machine's own telemetry (load, memory, hwmon sensors).
    pub local_host: bool,
    /// Seconds between local samples.
    pub interval_secs: u64,
    /// Seconds between inventory sweeps of the registered BMCs.
    pub bmc_inventory_secs: u64,
    /// Seconds between sensor polls of the registered BMCs (0: no BMC sensor polling).
    pub bmc_sensor_secs: u64,
    /// BMCs collected at once across the fleet.
    pub bmc_concurrency: usize,
    /// Requests in flight to one BMC at once.
    pub bmc_requests_per_bmc: usize,
    /// Seconds per BMC request.
    pub bmc_timeout_secs: u64,
    /// Retries of a transient BMC failure (with jittered exponential backoff).
    pub bmc_retries: u32,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            local_host: true,
            interval_secs: 10,
            bmc_inventory_secs: 600,
            bmc_sensor_secs: 60,
            bmc_concurrency: 128,
            bmc_requests_per_bmc: 4,
            bmc_timeout_secs: 15,
            bmc_retries: 2,
        }
    }
}

impl CollectorConfig {
    /// The BMC collector's settings.
    pub fn bmc(&self) -> automata_producers::bmc::BmcCollectorConfig {
        automata_producers::bmc::BmcCollectorConfig {
            every: std::time::Duration::from_secs(self.bmc_inventory_secs.max(10)),
            fleet_concurrency: self.bmc_concurrency.max(1),
            client: automata_bmc::ClientOptions {
                timeout: std::time::Duration::from_secs(self.bmc_timeout_secs.max(1)),
                retries: self.bmc_retries,
                concurrency: self.bmc_requests_per_bmc.max(1),
                ..Default::default()
            },
            secure_boot: Default::default(),
        }
    }
}

/// Environment variables read by the CLI itself, not part of the config tree.
const CLI_ENV: &[&str] = &["server", "token", "config", "output"];

/// Where the config file is looked for when `--config` is not given.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("metal-automata").join("config.toml"))
}

/// Loads the layered configuration; an explicit `path` must exist.
pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    let used = match path {
        Some(p) => {
            anyhow::ensure!(p.exists(), "config file {} does not exist", p.display());
            Some(p.to_path_buf())
        }
        None => default_config_path().filter(|p| p.exists()),
    };
    if let Some(p) = &used {
        fig = fig.merge(Toml::file(p));
    }
    fig = fig.merge(Env::prefixed("METAL_AUTOMATA_").split("__").ignore(CLI_ENV));
    let cfg: Config = fig.extract().context("invalid configuration")?;
    Ok((cfg, used))
}

impl Config {
    /// The storage location, resolved.
    pub fn storage_url(&self) -> String {
        self.storage
            .url
            .clone()
            .unwrap_or_else(|| self.data_dir().join("storage").display().to_string())
    }

    /// Where the history tables live: `<storage>/history`.
    pub fn history_root(&self) -> String {
        format!("{}/history", self.storage_url().trim_end_matches('/'))
    }

    /// The history root with the options its storage needs.
    pub fn history_location(&self) -> Result<automata_history::HistoryLocation> {
        automata_history::HistoryLocation::new(self.history_root())
            .with_options(self.storage.s3.options())
            .context("storage settings")
    }

    /// The data directory, resolved.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("metal-automata")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "[log]\nbackend = \"kafka\"\n[log.kafka]\nbrokers = \"a:1\"\n",
            )?;
            jail.set_env("METAL_AUTOMATA_LOG__KAFKA__BROKERS", "b:2");
            jail.set_env("METAL_AUTOMATA_SERVER", "http://x");
            let (cfg, used) = load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert!(used.is_some());
            assert_eq!(cfg.log.backend, automata_log::Backend::Kafka);
            assert_eq!(cfg.log.kafka.brokers, "b:2");
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("c.toml", "[log]\nbackedn = \"kafka\"\n")?;
            assert!(load(Some(Path::new("c.toml"))).is_err());
            Ok(())
        });
    }
}
