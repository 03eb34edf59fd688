//! IPMI → sensor readings and hardware log entries, the IPMI twin of `redfish::telemetry`.
//!
//! The SDR is static, so the caller reads it once ([`IpmiSession::read_sdr`] or
//! [`super::read_sdr`]) and hands it to every poll; a poll first asks Get SDR Repository Info
//! and re-reads the repository only when its record count or last-addition / last-erase
//! timestamps changed.
//!
//! ## Sensor ids
//! `ipmi.<owner>.<lun>.<number>`: the SDR's sensor owner id as two lowercase hex digits (the
//! IPMB slave address, 20h for the BMC, or a software id with bit 0 set), the owner LUN (0–3) and
//! the sensor number as two lowercase hex digits, e.g. `ipmi.20.0.01`. These three fields are
//! what IPMI itself addresses a sensor by, so the id survives SDR re-reads, renames and record
//! renumbering. SEL entries name their sensor with the same scheme (generator id, LUN, sensor
//! number). The DCMI power reading is `ipmi.dcmi.power`.
//!
//! Only threshold-based sensors with a Full record become readings (discrete sensors have
//! states, not values: [`IpmiSession::sensor_reading`] returns their state bits). Sensors owned by
//! another controller than the BMC would need IPMB bridging and are skipped, as are sensors whose
//! reading is unavailable or whose scanning is disabled.

use std::net::SocketAddr;

use automata_schemas::types::{HardwareLogEntry, SensorKind, TelemetryReading, Thresholds};

use super::dcmi::{self, DcmiPower};
use super::sdr::{self, RawThresholds, SdrRepository, SensorReading, SensorRecord, Units};
use super::sel::{self, SelRecord};
use super::session::Session;
use super::wire::BMC_ADDR;
use super::{IpmiError, IpmiOptions};
use crate::Credentials;

/// The sensor id of the DCMI power reading.
pub const DCMI_POWER_ID: &str = "ipmi.dcmi.power";

/// The kind and normalised unit of a sensor, and how to bring its value into that unit.
pub fn normalise(sensor_type: u8, units: &Units) -> (SensorKind, String, fn(f64) -> f64) {
    fn same(v: f64) -> f64 {
        v
    }
    fn from_f(v: f64) -> f64 {
        (v - 32.0) * 5.0 / 9.0
    }
    fn from_k(v: f64) -> f64 {
        v - 273.15
    }
    fn to_kwh(v: f64) -> f64 {
        v / 3.6e6
    }
    if units.modifier_use != 0 || units.rate != 0 {
        return (SensorKind::Other, units.text(), same);
    }
    if units.percentage {
        let kind = if sensor_type == 0x04 {
            SensorKind::Fan
        } else {
            SensorKind::Utilization
        };
        return (kind, "%".into(), same);
    }
    let (kind, unit, f): (SensorKind, &str, fn(f64) -> f64) = match (units.base, sensor_type) {
        (1, _) | (0, 0x01) => (SensorKind::Temperature, "Cel", same),
        (2, _) => (SensorKind::Temperature, "Cel", from_f),
        (3, _) => (SensorKind::Temperature, "Cel", from_k),
        (4, _) | (0, 0x02) => (SensorKind::Voltage, "V", same),
        (5, _) | (0, 0x03) => (SensorKind::Current, "A", same),
        (6, _) => (SensorKind::Power, "W", same),
        (7, _) => (SensorKind::Energy, "kWh", to_kwh),
        (18, _) | (0, 0x04) => (SensorKind::Fan, "RPM", same),
        _ => return (SensorKind::Other, units.text(), same),
    };
    (kind, unit.to_string(), f)
}

/// Converts raw thresholds with the sensor's record into the reading's normalised unit
/// (critical = critical, caution = non-critical; non-recoverable is not in the contract).
pub fn thresholds(record: &SensorRecord, raw: &RawThresholds) -> Option<Thresholds> {
    let (_, _, f) = normalise(record.sensor_type, &record.units);
    let conv = |x: Option<u8>| x.and_then(|r| record.convert(r)).map(f);
    let t = Thresholds {
        lower_critical: conv(raw.lower_critical),
        lower_caution: conv(raw.lower_non_critical),
        upper_caution: conv(raw.upper_non_critical),
        upper_critical: conv(raw.upper_critical),
    };
    (t != Thresholds::default()).then_some(t)
}

/// A reading of a threshold sensor as the telemetry contract wants it (None: no usable value).
pub fn to_reading(
    record: &SensorRecord,
    reading: &SensorReading,
    raw_thresholds: &RawThresholds,
    server_id: &str,
    at: i64,
) -> Option<TelemetryReading> {
    if !reading.valid() {
        return None;
    }
    let (kind, unit, f) = normalise(record.sensor_type, &record.units);
    let value = f(reading.value?);
    Some(TelemetryReading {
        timestamp: at,
        server_id: server_id.to_string(),
        sensor_id: record.sensor_id(),
        name: if record.name.is_empty() {
            record.sensor_id()
        } else {
            record.name.clone()
        },
        kind,
        value,
        unit,
        component_id: None,
        thresholds: thresholds(record, raw_thresholds),
        source: "ipmi".into(),
    })
}

/// The DCMI reading as a telemetry reading (None unless the BMC says measurement is active).
pub fn dcmi_reading(p: &DcmiPower, server_id: &str, at: i64) -> Option<TelemetryReading> {
    let DcmiPower::Reading(r) = p else {
        return None;
    };
    r.active.then(|| TelemetryReading {
        timestamp: at,
        server_id: server_id.to_string(),
        sensor_id: DCMI_POWER_ID.into(),
        name: "DCMI power reading".into(),
        kind: SensorKind::Power,
        value: f64::from(r.current_watts),
        unit: "W".into(),
        component_id: None,
        thresholds: None,
        source: "ipmi".into(),
    })
}

/// Whether a sensor can be read through the BMC over LAN without bridging.
fn readable_here(r: &SensorRecord) -> bool {
    r.is_threshold() && r.conversion.is_some() && r.owner_id == BMC_ADDR && r.channel == 0
}

/// Whether an error means the BMC (or the session) is gone, so the poll should stop.
fn fatal(e: &IpmiError) -> bool {
    !matches!(
        e,
        IpmiError::Completion { .. } | IpmiError::Malformed { .. }
    )
}

/// Resolves `host[:port]` to one socket address.
pub(crate) async fn resolve(address: &str) -> Result<SocketAddr, IpmiError> {
    let (host, port) = super::split_address(address)?;
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| IpmiError::Address {
            address: address.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| IpmiError::Address {
            address: address.to_string(),
            reason: "resolves to no address".into(),
        })
}

/// An open RMCP+ session for several reads (SDR, readings, SEL, DCMI) without
/// re-authenticating for each.
pub struct IpmiSession {
    s: Session,
}

impl IpmiSession {
    /// Opens a session to `address` (`host[:port]`) with the module's cipher-suite policy.
    pub async fn open(
        address: &str,
        creds: &Credentials,
        opts: &IpmiOptions,
    ) -> Result<IpmiSession, IpmiError> {
        let peer = resolve(address).await?;
        let s = Session::open(address, peer, creds, opts.timeout, opts.retries).await?;
        Ok(IpmiSession { s })
    }

    /// Closes the session (the BMC keeps a handful of session slots: free ours).
    pub async fn close(self) -> Result<(), IpmiError> {
        self.s.close().await
    }

    /// Reads the whole SDR repository.
    pub async fn read_sdr(&mut self) -> Result<SdrRepository, IpmiError> {
        sdr::read_repository(&mut self.s).await
    }

    /// Re-reads `sdr` if the BMC's repository changed since it was read; true if it did.
    pub async fn refresh_sdr(&mut self, sdr: &mut SdrRepository) -> Result<bool, IpmiError> {
        let now = sdr::repository_info(&mut self.s).await?;
        if !sdr.info.changed(&now) {
            return Ok(false);
        }
        let dcmi = sdr.dcmi_supported;
        *sdr = self.read_sdr().await?;
        sdr.dcmi_supported = dcmi;
        Ok(true)
    }

    /// Get Sensor Reading for one sensor, decoded with its record (discrete sensors: states).
    pub async fn sensor_reading(
        &mut self,
        record: &SensorRecord,
    ) -> Result<SensorReading, IpmiError> {
        sdr::read_sensor(&mut self.s, record).await
    }

    /// The sensor's thresholds: Get Sensor Thresholds when the record says they are readable,
    /// else (or when that fails) those in the record.
    pub async fn sensor_thresholds(
        &mut self,
        record: &SensorRecord,
    ) -> Result<RawThresholds, IpmiError> {
        if !record.thresholds_readable() {
            return Ok(record.thresholds);
        }
        match sdr::read_thresholds(&mut self.s, record).await {
            Ok(t) => Ok(t),
            Err(e) if !fatal(&e) => {
                tracing::debug!(error = %e, "Get Sensor Thresholds failed: using the SDR's");
                Ok(record.thresholds)
            }
            Err(e) => Err(e),
        }
    }

    /// DCMI Get Power Reading.
    pub async fn dcmi_power(&mut self) -> Result<DcmiPower, IpmiError> {
        dcmi::power_reading(&mut self.s).await
    }

    /// One poll: refreshes `sdr` if the BMC changed it, reads every threshold sensor the BMC
    /// owns and the DCMI power reading (when the BMC does DCMI). Sensors that cannot be read
    /// are skipped (logged at debug); only a BMC that stops answering is an error.
    pub async fn poll_sensors(
        &mut self,
        sdr: &mut SdrRepository,
        server_id: &str,
    ) -> Result<Vec<TelemetryReading>, IpmiError> {
        self.refresh_sdr(sdr).await?;
        let mut out = Vec::new();
        for record in sdr.sensors.iter().filter(|r| readable_here(r)) {
            let at = chrono::Utc::now().timestamp_millis();
            let reading = match self.sensor_reading(record).await {
                Ok(r) => r,
                Err(e) if !fatal(&e) => {
                    tracing::debug!(sensor = %record.sensor_id(), error = %e, "sensor skipped");
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !reading.valid() {
                continue;
            }
            let th = self.sensor_thresholds(record).await?;
            out.extend(to_reading(record, &reading, &th, server_id, at));
        }
        if sdr.dcmi_supported != Some(false) {
            match self.dcmi_power().await {
                Ok(p) => {
                    sdr.dcmi_supported = Some(matches!(p, DcmiPower::Reading(_)));
                    let at = chrono::Utc::now().timestamp_millis();
                    out.extend(dcmi_reading(&p, server_id, at));
                }
                Err(e) if !fatal(&e) => {
                    tracing::debug!(error = %e, "DCMI power reading failed");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The SEL records after record `after` (all when None) and the last record id seen.
    pub async fn sel_records(
        &mut self,
        after: Option<u16>,
    ) -> Result<(Vec<SelRecord>, Option<u16>), IpmiError> {
        sel::read(&mut self.s, after).await
    }

    /// The SEL entries after record `after` (all when None) as log entries (`log_id`
    /// `ipmi:sel`, `entry_id` the record id as `0x0001`), and the last record id to pass as
    /// `after` next time. `sdr` names sensors and converts threshold events' readings.
    pub async fn read_sel(
        &mut self,
        server_id: &str,
        after: Option<u16>,
        sdr: Option<&SdrRepository>,
    ) -> Result<(Vec<HardwareLogEntry>, Option<u16>), IpmiError> {
        let (records, last) = self.sel_records(after).await?;
        let at = chrono::Utc::now().timestamp_millis();
        let entries = records
            .iter()
            .map(|r| sel::to_log_entry(r, server_id, at, sdr))
            .collect();
        Ok((entries, last))
    }
}
