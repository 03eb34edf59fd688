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
