//! Typed Rust views of the records, field for field as in `schemas/avro/*.avsc`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Health of a server or component.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// Not enough evidence.
    #[default]
    Unknown,
    /// Healthy.
    Ok,
    /// Degraded.
    Warning,
    /// Failed or failing.
    Critical,
}

/// What a sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SensorKind {
    /// Anything else.
    Other,
    /// Watts.
    Power,
    /// Degrees Celsius.
    Temperature,
    /// RPM or percent.
    Fan,
    /// Volts.
    Voltage,
    /// Amperes.
    Current,
    /// Joules.
    Energy,
    /// Percent.
    Utilization,
}

/// A sensor's thresholds, in the reading's unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Thresholds {
    /// Lower critical.
    pub lower_critical: Option<f64>,
    /// Lower caution.
    pub lower_caution: Option<f64>,
    /// Upper caution.
    pub upper_caution: Option<f64>,
    /// Upper critical.
    pub upper_critical: Option<f64>,
}

/// One sensor reading (`telemetry.readings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryReading {
    /// When the value was read, ms since the epoch.
    pub timestamp: i64,
    /// Server identity.
    pub server_id: String,
    /// Stable sensor id.
    pub sensor_id: String,
    /// Sensor name as the source calls it.
    pub name: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Value in the normalised unit.
    pub value: f64,
    /// Normalised unit.
    pub unit: String,
    /// Component the sensor belongs to.
    pub component_id: Option<String>,
    /// The source's thresholds.
    pub thresholds: Option<Thresholds>,
    /// Collector that produced it.
    pub source: String,
}

/// Severity of a hardware log entry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LogSeverity {
    /// Informational.
    #[default]
    Info,
    /// Needs attention.
    Warning,
    /// A failure.
    Critical,
}

/// One hardware log entry (`telemetry.logs`): published once per (server, log, entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareLogEntry {
    /// Server identity.
    pub server_id: String,
    /// Which log, e.g. `redfish:/redfish/v1/Systems/1/LogServices/SEL`, `ipmi:sel`, `host:edac`.
    pub log_id: String,
    /// The entry's id within its log.
    pub entry_id: String,
    /// When the source made it, ms since the epoch.
    pub created: i64,
    /// When the collector read it, ms since the epoch.
    pub observed_at: i64,
    /// Normalised severity.
    pub severity: LogSeverity,
    /// Human-readable text.
    pub message: String,
    /// Registry message id or SEL event code.
    pub message_id: Option<String>,
    /// Component it is about, when known.
    pub component_id: Option<String>,
    /// Sensor it is about, when known.
    pub sensor_id: Option<String>,
    /// Collector that produced it.
    pub source: String,
}

/// Where a server's TPM registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TpmStatus {
    /// Not decided yet.
    #[default]
    Pending,
    /// EK certificate trusted and the AK proven to live on that TPM.
    Verified,
    /// The enrollment failed; `reason` says why.
    Rejected,
    /// A verified server came back with another EK: waits for `tpm approve`.
    EkChangedAwaitingApproval,
}

/// A server's TPM keys and their verification (`tpm.enrollments`, `tpm.registrations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TpmRegistration {
    /// Server identity.
    pub server_id: String,
    /// SHA-256 of the EK's SubjectPublicKeyInfo, hex.
    pub ek_fingerprint: String,
    /// EK certificate, DER.
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    pub ek_certificate_der: Option<Vec<u8>>,
    /// EK certificate issuer.
    pub ek_issuer: Option<String>,
    /// TPM manufacturer.
    pub manufacturer: Option<String>,
    /// TPM firmware version.
    pub firmware_version: Option<String>,
    /// AK name, hex.
    pub ak_name: String,
    /// AK public area (TPM2B_PUBLIC).
    #[serde(with = "apache_avro::serde::bytes")]
    pub ak_public: Vec<u8>,
    /// Status.
    pub status: TpmStatus,
    /// Why rejected or pending.
    pub reason: String,
    /// When verified, ms since the epoch.
    pub verified_at: Option<i64>,
    /// Operator who approved an EK change.
    pub approved_by: Option<String>,
    /// EK public area (TPM2B_PUBLIC).
    #[serde(with = "apache_avro::serde::bytes_opt", default)]
    pub ek_public: Option<Vec<u8>>,
    /// The EK certificate's verdict: trusted, untrusted, malformed, missing.
    pub certificate_status: String,
    /// The verified EK this one replaces.
    pub previous_ek_fingerprint: Option<String>,
    /// When the enrollment or approval behind this record was made, ms since the epoch.
    pub attempted_at: Option<i64>,
}

/// Latest known state of one server (`servers.state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ServerState {
    /// Server identity.
    pub server_id: String,
    /// System serial.
    pub serial: Option<String>,
    /// SMBIOS UUID.
    pub uuid: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// BMC address.
    pub bmc_address: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Power state.
    pub power_state: Option<String>,
    /// Rolled-up health.
    pub health: Health,
    /// Component id to firmware version.
    pub firmware: HashMap<String, String>,
    /// Last time anything was heard, ms.
    pub last_seen: i64,
    /// Last inventory snapshot, ms.
    pub last_inventory_at: Option<i64>,
    /// Last telemetry reading, ms.
    pub last_telemetry_at: Option<i64>,
    /// Components in the last inventory.
    pub component_count: i32,
    /// Readings seen.
    pub readings_count: i64,
    /// Sensor id to latest value.
    pub latest_readings: HashMap<String, f64>,
    /// Operator labels.
    pub labels: HashMap<String, String>,
}

/// Who collected an inventory snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InventorySource {
    /// Unknown.
    Unknown,
    /// The in-band agent.
    Agent,
    /// The BMC over Redfish.
    Redfish,
    /// The BMC over IPMI.
    Ipmi,
}

/// SMBIOS-style identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SystemIdentity {
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Product.
    pub product: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// UUID.
    pub uuid: Option<String>,
    /// SKU.
    pub sku: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
}

/// BIOS identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct BiosInfo {
    /// Vendor.
    pub vendor: Option<String>,
    /// Version.
    pub version: Option<String>,
    /// Release date.
    pub release_date: Option<String>,
}

/// Kind of hardware component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum ComponentKind {
    Other,
    Cpu,
    Dimm,
    Disk,
    Nvme,
    Nic,
    Gpu,
    PciDevice,
    Psu,
    Fan,
    Bmc,
    Bios,
    Tpm,
    StorageController,
    Chassis,
    Baseboard,
}

/// One hardware component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Stable id within the server.
    pub component_id: String,
    /// Kind.
    pub kind: ComponentKind,
    /// Name.
    pub name: String,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Firmware version.
    pub firmware_version: Option<String>,
    /// Slot or bay.
    pub location: Option<String>,
    /// Further properties.
    pub properties: HashMap<String, String>,
}

/// A full inventory snapshot (`inventory.snapshots`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventorySnapshot {
    /// Server identity.
    pub server_id: String,
    /// Who collected it.
    pub source: InventorySource,
    /// When, ms.
    pub collected_at: i64,
    /// System identity.
    pub system: SystemIdentity,
    /// BIOS identity.
    pub bios: Option<BiosInfo>,
    /// Components.
    pub components: Vec<Component>,
    /// What could not be read.
    pub errors: Vec<String>,
}

/// What changed about a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// Anything else.
    Other,
    /// It appeared.
    Added,
    /// It disappeared.
    Removed,
    /// Its firmware version changed.
    FirmwareChanged,
    /// Another property changed (serial, model, …).
    PropertyChanged,
}

/// A difference between two inventory snapshots of a server (`inventory.changes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentChange {
    /// Server identity.
    pub server_id: String,
    /// Component id.
    pub component_id: String,
    /// Kind.
    pub kind: ComponentKind,
    /// What changed.
    pub change: ChangeKind,
    /// Before: the firmware version, or the component as JSON.
    pub before: Option<String>,
    /// After.
    pub after: Option<String>,
    /// When it was detected, ms.
    pub detected_at: i64,
}

/// One fact behind a health change or a diagnosis (`Evidence` in the health schemas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// What sort of fact: reading, threshold, log_entry, status, …
    pub kind: String,
    /// The fact itself, human-readable.
    pub detail: String,
    /// When the fact was observed, ms.
    pub observed_at: i64,
}

/// A change of health of a server or component, with its evidence (`health.events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// Server identity.
    pub server_id: String,
    /// Component, or `None` for the server.
    pub component_id: Option<String>,
    /// Health before.
    pub previous: Health,
    /// Health now.
    pub health: Health,
    /// Class of the problem, e.g. `overtemperature`.
    pub classification: String,
    /// Human-readable summary.
    pub message: String,
    /// Facts that caused the change.
    pub evidence: Vec<Evidence>,
    /// When the change was decided, ms.
    pub raised_at: i64,
}

/// Latest health of a server or component (compacted `health.state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthState {
    /// Server identity.
    pub server_id: String,
    /// Component, or `None` for the server.
    pub component_id: Option<String>,
    /// Health now.
    pub health: Health,
    /// Class of the problem, empty when OK.
    pub classification: String,
    /// Summary.
    pub message: String,
    /// Facts behind it.
    pub evidence: Vec<Evidence>,
    /// Since when this health holds, ms.
    pub since: i64,
}

/// A blob in the firmware store (compacted `firmware.artifacts`, key sha256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareArtifact {
    /// SHA-256 of the blob, hex.
    pub sha256: String,
    /// Bytes.
    pub size: i64,
    /// Vendor (empty for an import without a catalog).
    pub vendor: String,
    /// Component it applies to.
    pub component: ComponentKind,
    /// Name.
    pub name: String,
    /// Version (empty when unknown).
    pub version: String,
    /// Catalog it came from (`import` for air-gapped imports).
    pub catalog: String,
    /// Where it was downloaded from.
    pub url: Option<String>,
    /// When it was stored, ms.
    pub stored_at: i64,
    /// Path or URL in the store.
    pub storage_path: String,
    /// Integrity state (`verified-sha256`, `verified-signature`, `weak-md5-sha1`, `unverified`).
    pub integrity: String,
    /// Whether it is quarantined.
    pub quarantined: bool,
    /// Why it is quarantined.
    pub quarantine_reason: Option<String>,
    /// Worst severity of the last scan.
    pub max_severity: Option<String>,
}

/// Overall outcome of a firmware scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanVerdict {
    /// Nothing the scanner understood.
    Unsupported,
    /// No findings.
    Clean,
    /// At least one finding.
    Finding,
    /// The scan failed.
    Error,
}

/// One finding in a `firmware.scans` record (the short form; details go to `firmware.findings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanFinding {
    /// Rule that matched.
    pub rule: String,
    /// info, medium, high, critical.
    pub severity: String,
    /// What was found.
    pub detail: String,
}

/// What a scanner found in a blob (`firmware.scans`, key sha256).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareScanResult {
    /// Blob scanned.
    pub sha256: String,
    /// Scanner name and version.
    pub scanner: String,
    /// Outcome.
    pub verdict: ScanVerdict,
    /// Findings.
    pub findings: Vec<ScanFinding>,
    /// When, ms.
    pub scanned_at: i64,
    /// Rule pack version.
    pub rule_pack: String,
    /// Worst severity, `None` when clean.
    pub max_severity: Option<String>,
}

/// One vendor catalog entry (compacted `firmware.catalog`, key `catalog/entry`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareCatalogEntry {
    /// Catalog name.
    pub catalog: String,
    /// Entry id inside the catalog.
    pub entry_id: String,
    /// Vendor.
    pub vendor: String,
    /// Component type as the vendor names it.
    pub component_type: String,
    /// Human name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Release date.
    pub release_date: Option<String>,
    /// Vendor urgency.
    pub criticality: String,
    /// Download URL.
    pub url: Option<String>,
    /// Size in bytes.
    pub size: Option<i64>,
    /// Published SHA-256.
    pub sha256: Option<String>,
    /// Published SHA-1.
    pub sha1: Option<String>,
    /// Published MD5.
    pub md5: Option<String>,
    /// Whether installing needs a reboot.
    pub reboot: Option<bool>,
    /// System ids it applies to.
    pub system_ids: Vec<String>,
    /// Models it applies to.
    pub models: Vec<String>,
    /// PCI ids it applies to.
    pub pci_ids: Vec<String>,
    /// Firmware GUIDs it applies to.
    pub guids: Vec<String>,
    /// Redfish SoftwareIds it applies to.
    pub software_ids: Vec<String>,
    /// `added` or `changed`.
    pub change: String,
    /// When the sync saw it, ms.
    pub synced_at: i64,
}

impl FirmwareCatalogEntry {
    /// The record key `catalog/entry`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.catalog, self.entry_id)
    }
}

/// One scanner rule hit for a blob or a server (`firmware.findings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareFinding {
    /// Blob sha256 or server SMBIOS UUID (the key).
    pub target: String,
    /// `blob` or `server`.
    pub target_kind: String,
    /// Rule id.
    pub rule_id: String,
    /// info, medium, high, critical.
    pub severity: String,
    /// blob, redfish, efivars.
    pub source: String,
    /// One-line subject.
    pub subject: String,
    /// Container path or variable.
    pub container_path: Option<String>,
    /// Offset inside the container.
    pub offset: Option<i64>,
    /// Secure Boot variable.
    pub variable: Option<String>,
    /// Certificate subject.
    pub cert_subject: Option<String>,
    /// Certificate issuer.
    pub cert_issuer: Option<String>,
    /// Certificate SHA-1.
    pub cert_sha1: Option<String>,
    /// Certificate notAfter.
    pub cert_not_after: Option<String>,
    /// Hash the rule is about.
    pub hash: Option<String>,
    /// Free-text detail.
    pub detail: Option<String>,
    /// Rule pack version.
    pub rule_pack: String,
    /// First seen for this target, ms.
    pub first_seen: i64,
    /// `open`, or `resolved` when a live server's finding went away.
    #[serde(default = "open_state")]
    pub state: String,
}

fn open_state() -> String {
    "open".into()
}

/// One Secure Boot variable, summarised (`firmware.secureboot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureBootVariable {
    /// PK, KEK, db or dbx.
    pub name: String,
    /// Whether the variable exists.
    pub present: bool,
    /// Certificate subjects, in order.
    pub cert_subjects: Vec<String>,
    /// SHA-256 entries.
    pub sha256_count: i64,
    /// Entries of other types.
    pub other_count: i64,
}

/// A live server's Secure Boot state and keys with the rules' verdict (`firmware.secureboot`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureBootSnapshot {
    /// SMBIOS UUID (the key).
    pub server_id: String,
    /// redfish or efivars.
    pub source: String,
    /// When the keys were read, ms.
    pub observed_at: i64,
    /// SecureBootEnable.
    pub enabled: Option<bool>,
    /// SecureBootCurrentBoot.
    pub current_boot: Option<String>,
    /// SecureBootMode.
    pub mode: Option<String>,
    /// PK, KEK, db, dbx.
    pub variables: Vec<SecureBootVariable>,
    /// Rule ids open now.
    pub open_findings: Vec<String>,
    /// The worst open finding's severity.
    pub worst_severity: Option<String>,
    /// Rule pack version.
    pub rule_pack: String,
}

/// One sync of one vendor catalog (`firmware.catalog.syncs`, key the catalog name): the
/// operator's record of what each sync fetched and changed, or why the last good copy stood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareCatalogSync {
    /// The catalog's name (the key).
    pub catalog: String,
    /// dell, hpe-sdr, lvfs, generic or lenovo.
    pub format: String,
    /// What was fetched.
    pub url: String,
    /// updated, not-modified or failed.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Entries after the sync (the last good copy's on failure).
    #[serde(default)]
    pub entries: Option<i64>,
    /// Entries new in this sync.
    pub added: i64,
    /// Entries whose fields changed.
    pub changed: i64,
    /// Entries that left the catalog.
    pub removed: i64,
    /// SHA-256 of the body read.
    #[serde(default)]
    pub sha256: Option<String>,
    /// The jcat verdict of an LVFS catalog.
    #[serde(default)]
    pub signature: Option<String>,
    /// When the sync ended, ms.
    pub synced_at: i64,
}

/// One component's firmware against the synced catalogs (in `firmware.updates`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareUpdateComponent {
    /// The inventory's component id.
    pub component_id: String,
    /// bios, bmc, nic, disk, ...
    pub kind: String,
    /// The component's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The running version.
    pub installed: String,
    /// update-available, current or not-listed.
    pub verdict: String,
    /// The newest version listed.
    #[serde(default)]
    pub latest: Option<String>,
    /// The highest criticality among newer entries.
    #[serde(default)]
    pub criticality: Option<String>,
    /// catalog/entry of the newest (or the running) version.
    #[serde(default)]
    pub entry_key: Option<String>,
}

/// A server's firmware against the synced catalogs (`firmware.updates`, key SMBIOS UUID): what
/// an operator plans a maintenance window from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareUpdateStatus {
    /// SMBIOS UUID (the key).
    pub server_id: String,
    /// When matched, ms.
    pub evaluated_at: i64,
    /// Catalog entries matched against.
    pub catalog_entries: i64,
    /// Components with a newer version listed.
    pub updates_available: i64,
    /// Of those, with a critical newer entry.
    pub critical_updates: i64,
    /// Every component a catalog entry applies to.
    pub components: Vec<FirmwareUpdateComponent>,
    /// Advisories affecting what the server runs (its VULN-* findings, source inventory).
    #[serde(default)]
    pub advisories: Vec<FirmwareUpdateAdvisory>,
}

/// One advisory that affects one installed component (in `firmware.updates`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FirmwareUpdateAdvisory {
    /// The advisory id; the finding's rule id is `VULN-<id>`.
    pub id: String,
    /// critical, high, medium or info.
    pub severity: String,
    /// The advisory's title.
    pub title: String,
    /// The inventory's component id.
    pub component_id: String,
    /// The running version, in an affected range.
    pub installed: String,
    /// The finding's subject (what runs, and the fixed version when known).
    pub subject: String,
}

/// An affected version range of a [`FirmwareAdvisory`]: `introduced <= v < fixed`, or
/// `v <= last_affected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareAdvisoryRange {
    /// First affected version.
    #[serde(default)]
    pub introduced: Option<String>,
    /// First fixed version.
    #[serde(default)]
    pub fixed: Option<String>,
    /// Last affected version, when no fix is known.
    #[serde(default)]
    pub last_affected: Option<String>,
}

/// One advisory of the rule pack in force (`firmware.advisories`, key its id): the fleet-wide
/// copy the firmware-updates processor matches installed firmware against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareAdvisory {
    /// The CVE or vendor advisory id (the key).
    pub id: String,
    /// A short title.
    pub title: String,
    /// critical, high, medium or info.
    pub severity: String,
    /// Vendor substring.
    #[serde(default)]
    pub vendor: Option<String>,
    /// Component kind.
    #[serde(default)]
    pub component: Option<String>,
    /// Name substrings.
    #[serde(default)]
    pub names: Vec<String>,
    /// Server model substrings.
    #[serde(default)]
    pub models: Vec<String>,
    /// Affected version ranges.
    pub ranges: Vec<FirmwareAdvisoryRange>,
    /// Where to read more.
    #[serde(default)]
    pub references: Vec<String>,
    /// The version of the pack that published it.
    pub rule_pack: String,
    /// The pack in force no longer lists it.
    #[serde(default)]
    pub withdrawn: bool,
    /// When the pack was installed, ms.
    pub published_at: i64,
}

#[cfg(test)]
mod firmware_tests {
    use super::*;
    use crate::catalog::{
        FIRMWARE_ADVISORIES, FIRMWARE_ARTIFACTS, FIRMWARE_CATALOG, FIRMWARE_CATALOG_SYNCS,
        FIRMWARE_FINDINGS, FIRMWARE_SCANS, FIRMWARE_SECUREBOOT, FIRMWARE_UPDATES, topic,
    };
    use crate::codec::{decode, encode};

    fn round_trip<T>(topic_name: &str, v: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let spec = topic(topic_name).expect("topic");
        let bytes = encode(spec, 7, v).expect("encode");
        let back: T = decode(spec, 7, &bytes).expect("decode");
        assert_eq!(&back, v);
    }

    #[test]
    fn firmware_records_round_trip() {
        let sha = "ab".repeat(32);
        round_trip(
            FIRMWARE_ARTIFACTS,
            &FirmwareArtifact {
                sha256: sha.clone(),
                size: 540_672,
                vendor: String::new(),
                component: ComponentKind::Bios,
                name: "OVMF_VARS_4M.ms.fd".into(),
                version: String::new(),
                catalog: "import".into(),
                url: Some("/tmp/x".into()),
                stored_at: 5,
                storage_path: "blobs/sha256/ab/ab/x".into(),
                integrity: "unverified".into(),
                quarantined: true,
                quarantine_reason: Some("critical finding SB-PK-001".into()),
                max_severity: Some("critical".into()),
            },
        );
        round_trip(
            FIRMWARE_SCANS,
            &FirmwareScanResult {
                sha256: sha.clone(),
                scanner: "automata-fwscan 0.1".into(),
                verdict: ScanVerdict::Finding,
                findings: vec![ScanFinding {
                    rule: "SB-KEK-001".into(),
                    severity: "high".into(),
                    detail: "KEK CA 2011 only".into(),
                }],
                scanned_at: 6,
                rule_pack: "2026.11".into(),
                max_severity: Some("high".into()),
            },
        );
        round_trip(
            FIRMWARE_CATALOG,
            &FirmwareCatalogEntry {
                catalog: "dell".into(),
                entry_id: "ABCDE".into(),
                vendor: "Dell".into(),
                component_type: "FRMW".into(),
                name: "NIC".into(),
                version: "1.2.3".into(),
                release_date: Some("2026-10-01".into()),
                criticality: "recommended".into(),
                url: None,
                size: Some(10),
                sha256: None,
                sha1: None,
                md5: Some("00".repeat(16)),
                reboot: Some(true),
                system_ids: vec!["0A00".into()],
                models: vec![],
                pci_ids: vec!["14e4:1600".into()],
                guids: vec![],
                software_ids: vec![],
                change: "added".into(),
                synced_at: 7,
            },
        );
        round_trip(
            FIRMWARE_CATALOG_SYNCS,
            &FirmwareCatalogSync {
                catalog: "dell".into(),
                format: "dell".into(),
                url: "http://127.0.0.1/Catalog.xml.gz".into(),
                status: "failed".into(),
                error: Some("HTTP 404".into()),
                entries: Some(2),
                added: 0,
                changed: 0,
                removed: 0,
                sha256: None,
                signature: None,
                synced_at: 8,
            },
        );
        round_trip(
            FIRMWARE_UPDATES,
            &FirmwareUpdateStatus {
                server_id: "4c4c4544-0000".into(),
                evaluated_at: 9,
                catalog_entries: 3,
                updates_available: 1,
                critical_updates: 1,
                components: vec![FirmwareUpdateComponent {
                    component_id: "bios".into(),
                    kind: "bios".into(),
                    name: None,
                    installed: "1.0".into(),
                    verdict: "update-available".into(),
                    latest: Some("1.1".into()),
                    criticality: Some("critical".into()),
                    entry_key: Some("lab/bios-1.1".into()),
                }],
                advisories: vec![FirmwareUpdateAdvisory {
                    id: "CVE-2023-45230".into(),
                    severity: "high".into(),
                    title: "PixieFAIL".into(),
                    component_id: "bios".into(),
                    installed: "1.0".into(),
                    subject: "bios 1.0 (fixed in 1.1)".into(),
                }],
            },
        );
        round_trip(
            FIRMWARE_ADVISORIES,
            &FirmwareAdvisory {
                id: "CVE-2023-45230".into(),
                title: "PixieFAIL".into(),
                severity: "high".into(),
                vendor: None,
                component: Some("bios".into()),
                names: vec!["edk2".into()],
                models: Vec::new(),
                ranges: vec![FirmwareAdvisoryRange {
                    introduced: None,
                    fixed: Some("edk2-stable202402".into()),
                    last_affected: None,
                }],
                references: Vec::new(),
                rule_pack: "2026.12".into(),
                withdrawn: false,
                published_at: 10,
            },
        );
        round_trip(
            FIRMWARE_FINDINGS,
            &FirmwareFinding {
                target: sha,
                target_kind: "blob".into(),
                rule_id: "SB-PK-001".into(),
                severity: "critical".into(),
                source: "blob".into(),
                subject: "test PK".into(),
                container_path: Some("/vss".into()),
                offset: Some(12),
                variable: Some("PK".into()),
                cert_subject: Some("CN=Snakeoil".into()),
                cert_issuer: None,
                cert_sha1: Some("d3".repeat(20)),
                cert_not_after: None,
                hash: None,
                detail: None,
                rule_pack: "2026.11".into(),
                first_seen: 8,
                state: "open".into(),
            },
        );
        round_trip(
            FIRMWARE_SECUREBOOT,
            &SecureBootSnapshot {
                server_id: "4c4c4544-0000-1000-8000-000000000001".into(),
                source: "redfish".into(),
                observed_at: 9,
                enabled: Some(true),
                current_boot: Some("Enabled".into()),
                mode: None,
                variables: vec![SecureBootVariable {
                    name: "KEK".into(),
                    present: true,
                    cert_subjects: vec!["CN=Microsoft Corporation KEK CA 2011".into()],
                    sha256_count: 0,
                    other_count: 0,
                }],
                open_findings: vec!["SB-KEK-001".into()],
                worst_severity: Some("high".into()),
                rule_pack: "2026.11".into(),
            },
        );
    }
}
