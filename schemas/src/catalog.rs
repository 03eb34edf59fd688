//! Every topic the pipeline uses: its schema, key and cleanup policy.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use apache_avro::Schema;

/// Topic of full inventory snapshots.
pub const INVENTORY_SNAPSHOTS: &str = "inventory.snapshots";
/// Compacted topic of the latest inventory per server and source (the inventory processor's
/// state; not copied to history, which has every snapshot already).
pub const INVENTORY_LATEST: &str = "inventory.latest";
/// Topic of component changes between snapshots.
pub const INVENTORY_CHANGES: &str = "inventory.changes";
/// Compacted topic of the latest state per server.
pub const SERVERS_STATE: &str = "servers.state";
/// Topic of sensor readings.
pub const TELEMETRY_READINGS: &str = "telemetry.readings";
/// Topic of hardware log entries (BMC LogServices, IPMI SEL, EDAC, machine checks), each once.
pub const TELEMETRY_LOGS: &str = "telemetry.logs";
/// Topic of health changes.
pub const HEALTH_EVENTS: &str = "health.events";
/// Compacted topic of the latest health per server and component.
pub const HEALTH_STATE: &str = "health.state";
/// Compacted topic of stored firmware blobs.
pub const FIRMWARE_ARTIFACTS: &str = "firmware.artifacts";
/// Topic of firmware scan results.
pub const FIRMWARE_SCANS: &str = "firmware.scans";
/// Compacted topic of vendor catalog entries (key `catalog/entry`, tombstone on removal).
pub const FIRMWARE_CATALOG: &str = "firmware.catalog";
/// Topic of firmware scanner findings (key: blob sha256 or server SMBIOS UUID).
pub const FIRMWARE_FINDINGS: &str = "firmware.findings";
/// Compacted topic of live servers' Secure Boot state and keys (key SMBIOS UUID).
pub const FIRMWARE_SECUREBOOT: &str = "firmware.secureboot";
/// One record per catalog sync: fetched, not modified or failed, with its counts.
pub const FIRMWARE_CATALOG_SYNCS: &str = "firmware.catalog.syncs";
/// Compacted topic of each server's firmware against the synced catalogs (key SMBIOS UUID).
pub const FIRMWARE_UPDATES: &str = "firmware.updates";
/// Compacted topic of the rule pack's firmware advisories (key the advisory id): what the
/// firmware-updates processor matches every server's installed firmware against.
pub const FIRMWARE_ADVISORIES: &str = "firmware.advisories";
/// Topic of authorised commands.
pub const COMMANDS_REQUESTS: &str = "commands.requests";
/// Topic of command progress and outcomes.
pub const COMMANDS_RESULTS: &str = "commands.results";
/// Topic of workflow steps.
pub const WORKFLOWS_EVENTS: &str = "workflows.events";
/// Every TPM enrollment outcome and operator approval, from the API (the TPM processor's input).
pub const TPM_ENROLLMENTS: &str = "tpm.enrollments";
/// Compacted topic of TPM registrations.
pub const TPM_REGISTRATIONS: &str = "tpm.registrations";
/// Topic of benchmark figures.
pub const BENCH_RESULTS: &str = "bench.results";
/// Topic of ML diagnoses.
pub const DIAGNOSES: &str = "diagnoses";
/// The schema registry's own compacted storage (Confluent's record format, JSON).
pub const SCHEMAS: &str = "_schemas";

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A topic of the pipeline and its contract.
#[derive(Debug)]
pub struct TopicSpec {
    /// Topic name.
    pub name: &'static str,
    /// The Avro record it carries (file `schemas/avro/<record>.avsc`); `None` for non-Avro topics.
    pub record: Option<&'static str>,
    /// The schema text, embedded at build time.
    pub schema_json: Option<&'static str>,
    /// What the record key is.
    pub key: &'static str,
    /// Keep only the latest record per key.
    pub compacted: bool,
    /// Partitions.
    pub partitions: u32,
    /// Retention, ms; `None` keeps everything.
    pub retention_ms: Option<i64>,
}

macro_rules! avro {
    ($name:expr, $record:literal, $key:literal, $compacted:expr, $partitions:expr, $retention:expr) => {
        TopicSpec {
            name: $name,
            record: Some($record),
            schema_json: Some(include_str!(concat!("../avro/", $record, ".avsc"))),
            key: $key,
            compacted: $compacted,
            partitions: $partitions,
            retention_ms: $retention,
        }
    };
}

static TOPICS: &[TopicSpec] = &[
    avro!(
        INVENTORY_SNAPSHOTS,
        "InventorySnapshot",
        "server_id",
        false,
        6,
        Some(30 * DAY_MS)
    ),
    avro!(
        INVENTORY_LATEST,
        "InventorySnapshot",
        "server_id/source",
        true,
        6,
        None
    ),
    avro!(
        INVENTORY_CHANGES,
        "ComponentChange",
        "server_id",
        false,
        6,
        None
    ),
    avro!(SERVERS_STATE, "ServerState", "server_id", true, 6, None),
    avro!(
        TELEMETRY_READINGS,
        "TelemetryReading",
        "server_id",
        false,
        6,
        Some(7 * DAY_MS)
    ),
    avro!(
        TELEMETRY_LOGS,
        "HardwareLogEntry",
        "server_id",
        false,
        6,
        Some(30 * DAY_MS)
    ),
    avro!(HEALTH_EVENTS, "HealthEvent", "server_id", false, 6, None),
    avro!(
        HEALTH_STATE,
        "HealthState",
        "server_id/component_id",
        true,
        6,
        None
    ),
    avro!(
        FIRMWARE_ARTIFACTS,
        "FirmwareArtifact",
        "sha256",
        true,
        3,
        None
    ),
    avro!(
        FIRMWARE_SCANS,
        "FirmwareScanResult",
        "sha256",
        false,
        3,
        None
    ),
    avro!(
        FIRMWARE_CATALOG,
        "FirmwareCatalogEntry",
        "catalog/entry",
        true,
        3,
        None
    ),
    avro!(
        FIRMWARE_CATALOG_SYNCS,
        "FirmwareCatalogSync",
        "catalog",
        false,
        1,
        None
    ),
    avro!(
        FIRMWARE_UPDATES,
        "FirmwareUpdateStatus",
        "server_id",
        true,
        3,
        None
    ),
    avro!(FIRMWARE_ADVISORIES, "FirmwareAdvisory", "id", true, 1, None),
    avro!(
        FIRMWARE_FINDINGS,
        "FirmwareFinding",
        "sha256 or server_id",
        false,
        3,
        None
    ),
    avro!(
        FIRMWARE_SECUREBOOT,
        "SecureBootSnapshot",
        "server_id",
        true,
        3,
        None
    ),
    avro!(
        COMMANDS_REQUESTS,
        "CommandRequest",
        "server_id",
        false,
        6,
        None
    ),
    avro!(
        COMMANDS_RESULTS,
        "CommandResult",
        "server_id",
        false,
        6,
        None
    ),
    avro!(
        WORKFLOWS_EVENTS,
        "WorkflowEvent",
        "workflow_id",
        false,
        6,
        None
    ),
    avro!(
        TPM_ENROLLMENTS,
        "TpmRegistration",
        "server_id",
        false,
        3,
        None
    ),
    avro!(
        TPM_REGISTRATIONS,
        "TpmRegistration",
        "server_id",
        true,
        3,
        None
    ),
    avro!(
        BENCH_RESULTS,
        "BenchmarkResult",
        "server_id",
        false,
        3,
        None
    ),
    avro!(DIAGNOSES, "Diagnosis", "server_id", false, 3, None),
    TopicSpec {
        name: SCHEMAS,
        record: None,
        schema_json: None,
        key: "subject/version (Confluent registry key)",
        compacted: true,
        partitions: 1,
        retention_ms: None,
    },
    TopicSpec {
        name: automata_log::DEAD_LETTER_TOPIC,
        record: None,
        schema_json: None,
        key: "the rejected record's key",
        compacted: false,
        partitions: 3,
        retention_ms: Some(7 * DAY_MS),
    },
];

/// Every topic of the pipeline.
pub fn topics() -> &'static [TopicSpec] {
    TOPICS
}

/// Whether the history sink keeps this topic as a table: every Avro topic except state that is
/// only a copy of another topic's records.
pub fn in_history(t: &TopicSpec) -> bool {
    t.schema_json.is_some() && t.name != INVENTORY_LATEST
}

/// The spec of one topic.
pub fn topic(name: &str) -> Option<&'static TopicSpec> {
    TOPICS.iter().find(|t| t.name == name)
}

static PARSED: LazyLock<HashMap<&'static str, Schema>> = LazyLock::new(|| {
    TOPICS
        .iter()
        .filter_map(|t| {
            let json = t.schema_json?;
            // The schemas are part of the build; a test parses every one of them.
            Schema::parse_str(json).ok().map(|s| (t.name, s))
        })
        .collect()
});

impl TopicSpec {
    /// Confluent's TopicNameStrategy subject for the value.
    pub fn subject(&self) -> String {
        format!("{}-value", self.name)
    }

    /// The parsed Avro schema, for Avro topics.
    pub fn schema(&self) -> Option<&'static Schema> {
        PARSED.get(self.name)
    }

    /// The log's view of this topic.
    pub fn log_config(&self) -> automata_log::TopicConfig {
        automata_log::TopicConfig {
            name: self.name.to_string(),
            partitions: self.partitions,
            compacted: self.compacted,
            retention_ms: self.retention_ms,
        }
    }
}

/// Registry ids of the schemas this process writes with, per topic.
#[derive(Debug, Clone, Default)]
pub struct SchemaIds(Arc<HashMap<String, u32>>);

impl SchemaIds {
    /// Ids from a topic-to-id map.
    pub fn new(map: HashMap<String, u32>) -> Self {
        SchemaIds(Arc::new(map))
    }

    /// The id to write `topic` records with.
    pub fn get(&self, topic: &str) -> Option<u32> {
        self.0.get(topic).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_avro_topic_has_a_parsable_schema() {
        for t in topics() {
            if let Some(json) = t.schema_json {
                let s = Schema::parse_str(json);
                assert!(s.is_ok(), "{}: {:?}", t.name, s.err());
                assert!(t.schema().is_some(), "{}", t.name);
            }
            assert!(automata_log::config::validate_topic_name(t.name).is_ok());
        }
    }
}
