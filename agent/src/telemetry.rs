//! In-band telemetry: what the agent publishes every poll, as opposed to the inventory.
//!
//! [`collect_telemetry`] reads hwmon sensors ([`crate::hwmon`]), EDAC memory error counters
//! ([`crate::edac`]), NVMe SMART health (through [`crate::block`]'s admin ioctl, live only) and
//! new hardware error records in the kernel log ([`crate::mce`]). Like [`crate::collect`] it never
//! fails and never panics on what it reads: what could not be read is in `errors`.
//!
//! Sensor ids (stable across reboots and hwmon renumbering):
//! - `hwmon.<device>.<chip>.<attr>`: `<device>` is the PCI address of the hwmon's parent device
//!   when it has one (`0000:5e:00.0` for an NVMe controller), else the parent's sysfs name
//!   (`coretemp.0`, `nct6775.656`, `0-004c`), else `virtual`; `<attr>` is `temp1`, `fan2`,
//!   `in0`, `power1`, `curr1`, `energy1`.
//! - `edac.mc<N>.dimm<M>.ce|ue` (or `rank<M>`), `edac.mc<N>.csrow<R>.ch<C>.ce`,
//!   `edac.mc<N>.csrow<R>.ue` on kernels without per-DIMM counters, and per controller
//!   `edac.mc<N>.ce|ue|ce_noinfo|ue_noinfo`.
//! - `nvme.<serial, else PCI address>.temperature|percentage_used|available_spare|media_errors|
//!   critical_warning`.
//!
//! [`TelemetryState`] carries what must survive between polls (EDAC baselines, the kernel log
//! cursor); it is serde-serialisable so the caller can persist it across agent restarts.

use std::path::Path;

use automata_schemas::types::{HardwareLogEntry, SensorKind, TelemetryReading, Thresholds};
use serde::{Deserialize, Serialize};

use crate::edac::EdacTracker;
use crate::mce::KmsgCursor;
use crate::{Options, block, edac, fsutil, hwmon, mce, smbios};

/// The `source` of everything the agent publishes.
pub const SOURCE: &str = "agent";

/// One sensor value before it is stamped with server and time; what each reader returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensor {
    /// Stable sensor id (see the module docs).
    pub sensor_id: String,
    /// Human-readable name (the hwmon label when there is one).
    pub name: String,
    /// What it measures.
    pub kind: SensorKind,
    /// Value in `unit`.
    pub value: f64,
    /// Normalised unit: `Cel`, `RPM`, `W`, `V`, `A`, `J`, `%` or `count`.
    pub unit: &'static str,
    /// The inventory component it belongs to, when known.
    pub component_id: Option<String>,
    /// Limits the source reports, in `unit`.
    pub thresholds: Option<Thresholds>,
}

impl Sensor {
    /// The sensor as a schema reading of `server_id` at `timestamp` (ms).
    pub fn into_reading(self, server_id: &str, timestamp: i64) -> TelemetryReading {
        TelemetryReading {
            timestamp,
            server_id: server_id.to_string(),
            sensor_id: self.sensor_id,
            name: self.name,
            kind: self.kind,
            value: self.value,
            unit: self.unit.to_string(),
            component_id: self.component_id,
            thresholds: self.thresholds,
            source: SOURCE.to_string(),
        }
    }
}

/// `Some(t)` when any threshold is set, so readings without limits carry `None`.
pub(crate) fn some_thresholds(t: Thresholds) -> Option<Thresholds> {
    (t.lower_critical.is_some()
        || t.lower_caution.is_some()
        || t.upper_caution.is_some()
        || t.upper_critical.is_some())
    .then_some(t)
}

/// What survives between polls; persist it (JSON) so a restarted agent neither republishes old
/// kernel log records nor reports EDAC counts it had already seen as new.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelemetryState {
    /// Last seen EDAC counters, to turn increases into log entries.
    #[serde(default)]
    pub edac: EdacTracker,
    /// Where reading `/dev/kmsg` continues.
    #[serde(default)]
    pub kmsg: KmsgCursor,
}

/// One poll's output, ready to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetrySample {
    /// Sensor readings (`telemetry.readings`).
    pub readings: Vec<TelemetryReading>,
    /// New hardware log entries (`telemetry.logs`), each produced once.
    pub logs: Vec<HardwareLogEntry>,
    /// What could not be read, one line each.
    pub errors: Vec<String>,
}

/// Reads one telemetry sample of the server under `options.root`, updating `state`; never fails.
pub fn collect_telemetry(options: &Options, state: &mut TelemetryState) -> TelemetrySample {
    let root = options.root.as_path();
    let timestamp = crate::now_millis();
    let mut errors = Vec::new();
    // SMBIOS for the server id and the DIMMs EDAC labels are matched against; its own errors
    // are the inventory's to report.
    let dmi = smbios::read(root);
    let server_id = crate::server_id(root, &dmi.system);

    let mut sensors = hwmon::read(root, &mut errors);
    if options.is_live() {
        sensors.extend(nvme_sensors(root, &mut errors));
    }
    let counters = edac::read(root, &mut errors);
    sensors.extend(counters.iter().map(|c| c.sensor(&dmi.dimms)));
    let mut logs = state
        .edac
        .update(&counters, &dmi.dimms, &server_id, timestamp);
    logs.extend(mce::read_new(
        root,
        &mut state.kmsg,
        &server_id,
        timestamp,
        &mut errors,
    ));

    let readings = sensors
        .into_iter()
        .map(|s| s.into_reading(&server_id, timestamp))
        .collect();
    TelemetrySample {
        readings,
        logs,
        errors,
    }
}

/// SMART health of every NVMe controller as sensors (needs the admin ioctl: live and root).
fn nvme_sensors(root: &Path, errors: &mut Vec<String>) -> Vec<Sensor> {
    let ctrls = match block::nvme_controllers(root) {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("NVMe: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in ctrls {
        match block::read_nvme_smart_log(root, &c.name) {
            Ok(log) => {
                let temp_limits = nvme_temperature_limits(root, &c.name);
                out.extend(nvme_smart_sensors(&c, &log, temp_limits));
            }
            Err(e) => errors.push(format!("NVMe health {}: {e}", c.name)),
        }
    }
    out
}

/// The controller's warning (`temp1_max`) and critical (`temp1_crit`) composite temperatures
/// from its hwmon device, which the kernel fills from Identify Controller (WCTEMP/CCTEMP).
fn nvme_temperature_limits(root: &Path, ctrl: &str) -> Thresholds {
    let dir = format!("sys/class/nvme/{ctrl}");
    let hw = fsutil::list_dir(root, &dir)
        .unwrap_or_default()
        .into_iter()
        .find(|n| n.starts_with("hwmon"));
    let read = |f: &str| {
        hw.as_ref()
            .and_then(|h| fsutil::attr(root, format!("{dir}/{h}/{f}")))
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v > 0)
            .map(|v| v as f64 / 1000.0)
    };
    Thresholds {
        upper_caution: read("temp1_max"),
        upper_critical: read("temp1_crit"),
        ..Thresholds::default()
    }
}

/// The SMART log of controller `c` as sensors: `nvme.<key>.temperature` (°C),
/// `.percentage_used` (%), `.available_spare` (% with its threshold as lower critical),
/// `.media_errors` and `.critical_warning` (the bit field's value; any bit set is critical).
pub fn nvme_smart_sensors(
    c: &block::NvmeController,
    log: &block::NvmeSmartLog,
    temperature_limits: Thresholds,
) -> Vec<Sensor> {
    let key = c.stable_key();
    let who = c.model.clone().unwrap_or_else(|| c.name.clone());
    let mk = |what: &str,
              name: &str,
              kind: SensorKind,
              value: f64,
              unit: &'static str,
              thresholds: Thresholds| Sensor {
        sensor_id: format!("nvme.{key}.{what}"),
        name: format!("{who} {name}"),
        kind,
        value,
        unit,
        component_id: c.component_id(),
        thresholds: some_thresholds(thresholds),
    };
    let mut out = Vec::new();
    if let Some(t) = log.temperature_c() {
        out.push(mk(
            "temperature",
            "composite temperature",
            SensorKind::Temperature,
            f64::from(t),
            "Cel",
            temperature_limits,
        ));
    }
    if let Some(p) = log.percentage_used {
        out.push(mk(
            "percentage_used",
            "percentage used",
            SensorKind::Other,
            f64::from(p),
            "%",
            Thresholds {
                upper_caution: Some(100.0),
                ..Thresholds::default()
            },
        ));
    }
    if let Some(s) = log.available_spare_pct {
        out.push(mk(
            "available_spare",
            "available spare",
            SensorKind::Other,
            f64::from(s),
            "%",
            Thresholds {
                lower_critical: log
                    .available_spare_threshold_pct
                    .filter(|t| *t > 0 && *t <= 100)
                    .map(f64::from),
                ..Thresholds::default()
            },
        ));
    }
    if let Some(m) = log.media_errors {
        out.push(mk(
            "media_errors",
            "media errors",
            SensorKind::Other,
            m as f64,
            "count",
            Thresholds::default(),
        ));
    }
    out.push(mk(
        "critical_warning",
        "critical warning bits",
        SensorKind::Other,
        f64::from(log.critical_warning),
        "count",
        Thresholds {
            upper_critical: Some(1.0),
            ..Thresholds::default()
        },
    ));
    out
}
