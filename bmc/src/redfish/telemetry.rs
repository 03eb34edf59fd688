//! Redfish → sensor readings: every chassis's `Sensors` collection where the BMC has one (the
//! newer model, which `PowerSubsystem`, `ThermalSubsystem` and `EnvironmentMetrics` point into),
//! else the legacy `Power` and `Thermal` resources. Readings carry normalised units (W, Cel, RPM,
//! %, V, A, kWh), the BMC's own thresholds, and a sensor id that is the same from poll to poll.

use std::collections::HashMap;

use automata_schemas::types::{SensorKind, TelemetryReading, Thresholds};
use serde_json::Value;

use super::inventory::{server_id, text};
use super::{RedfishClient, SERVICE_ROOT, odata_id};
use crate::BmcError;

/// Where a chassis's readings go: the server id of the system it holds.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Chassis URI → (chassis id, server id).
    pub chassis: Vec<(String, String, String)>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|f| f.is_finite())
}

fn nested(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
}

/// Reads which chassis belong to which server (cached by the caller between sweeps).
pub async fn topology(client: &RedfishClient, address: &str) -> Result<Topology, BmcError> {
    let root = client.get(SERVICE_ROOT).await?;
    let mut systems: HashMap<String, String> = HashMap::new();
    if let Some(u) = root.get("Systems").and_then(odata_id) {
        for s in client.members(&u).await? {
            if let Some(id) = odata_id(&s) {
                systems.insert(id, server_id(&s, address).0);
            }
        }
    }
    let only = (systems.len() == 1)
        .then(|| systems.values().next().cloned())
        .flatten();
    let mut chassis = Vec::new();
    if let Some(u) = root.get("Chassis").and_then(odata_id) {
        for c in client.members(&u).await? {
            let Some(uri) = odata_id(&c) else { continue };
            let linked = c
                .pointer("/Links/ComputerSystems")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .filter_map(odata_id)
                        .find_map(|s| systems.get(&s).cloned())
                });
            if let Some(sid) = linked.or_else(|| only.clone()) {
                let cid = text(&c, "Id")
                    .unwrap_or_else(|| uri.rsplit('/').next().unwrap_or("chassis").to_string());
                chassis.push((uri, cid, sid));
            }
        }
    }
    Ok(Topology { chassis })
}

/// The kind and normalised unit of a reading given in `units` (Redfish `ReadingUnits`).
pub fn kind_of(
    reading_type: Option<&str>,
    units: Option<&str>,
    id: &str,
) -> (SensorKind, &'static str, f64) {
    let id_l = id.to_ascii_lowercase();
    match (reading_type, units) {
        (Some("Temperature"), _) | (_, Some("Cel")) => (SensorKind::Temperature, "Cel", 1.0),
        (Some("Power"), _) | (_, Some("W")) => (SensorKind::Power, "W", 1.0),
        (_, Some("kW")) => (SensorKind::Power, "W", 1000.0),
        (Some("Voltage"), _) | (_, Some("V")) => (SensorKind::Voltage, "V", 1.0),
        (Some("Current"), _) | (_, Some("A")) => (SensorKind::Current, "A", 1.0),
        (Some("EnergykWh"), _) | (_, Some("kW.h")) => (SensorKind::Energy, "kWh", 1.0),
        (Some("EnergyJoules"), _) | (_, Some("J")) => (SensorKind::Energy, "kWh", 1.0 / 3.6e6),
        (_, Some("RPM")) => (SensorKind::Fan, "RPM", 1.0),
        (_, Some("%")) if id_l.contains("fan") => (SensorKind::Fan, "%", 1.0),
        (_, Some("%")) => (SensorKind::Utilization, "%", 1.0),
        _ => (SensorKind::Other, "", 1.0),
    }
}

/// A `Sensor` resource as a reading (`None` without a numeric reading).
pub fn sensor(v: &Value, server: &str, chassis_id: &str, at: i64) -> Option<TelemetryReading> {
    let value = num(v, "Reading")?;
    let id = text(v, "Id")?;
    let (kind, unit, scale) = kind_of(
        v.get("ReadingType").and_then(Value::as_str),
        v.get("ReadingUnits").and_then(Value::as_str),
        &id,
    );
    let t = |k: &str| nested(v, &format!("/Thresholds/{k}/Reading")).map(|x| x * scale);
    let thresholds = Thresholds {
        lower_critical: t("LowerCritical"),
        lower_caution: t("LowerCaution"),
        upper_caution: t("UpperCaution"),
        upper_critical: t("UpperCritical"),
    };
    Some(TelemetryReading {
        timestamp: at,
        server_id: server.to_string(),
        sensor_id: format!("redfish.{chassis_id}.{id}"),
        name: text(v, "Name").unwrap_or(id),
        kind,
        value: value * scale,
        unit: unit.to_string(),
        component_id: related(v),
        thresholds: has_any(&thresholds).then_some(thresholds),
        source: "redfish".into(),
    })
}

fn has_any(t: &Thresholds) -> bool {
    t.lower_critical.is_some()
        || t.lower_caution.is_some()
        || t.upper_caution.is_some()
        || t.upper_critical.is_some()
}

fn related(v: &Value) -> Option<String> {
    v.pointer("/RelatedItem/0/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Readings of a legacy `Thermal` resource: temperatures and fans.
pub fn thermal(v: &Value, server: &str, chassis_id: &str, at: i64) -> Vec<TelemetryReading> {
    let mut out = Vec::new();
    let legacy = |x: &Value, k: &str| num(x, k);
    for (i, t) in v
        .get("Temperatures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(value) = legacy(t, "ReadingCelsius") else {
            continue;
        };
        let key = text(t, "MemberId").unwrap_or_else(|| i.to_string());
        let thresholds = Thresholds {
            lower_critical: legacy(t, "LowerThresholdCritical"),
            lower_caution: legacy(t, "LowerThresholdNonCritical"),
            upper_caution: legacy(t, "UpperThresholdNonCritical"),
            upper_critical: legacy(t, "UpperThresholdCritical"),
        };
        out.push(TelemetryReading {
            timestamp: at,
            server_id: server.to_string(),
            sensor_id: format!("redfish.{chassis_id}.thermal.temperature.{key}"),
            name: text(t, "Name").unwrap_or_else(|| format!("Temperature {key}")),
            kind: SensorKind::Temperature,
            value,
            unit: "Cel".into(),
            component_id: related(t),
            thresholds: has_any(&thresholds).then_some(thresholds),
            source: "redfish".into(),
        });
    }
    for (i, f) in v
        .get("Fans")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(value) = legacy(f, "Reading") else {
            continue;
        };
        let key = text(f, "MemberId").unwrap_or_else(|| i.to_string());
        let unit = match f.get("ReadingUnits").and_then(Value::as_str) {
            Some("Percent") => "%",
            _ => "RPM",
        };
        let thresholds = Thresholds {
            lower_critical: legacy(f, "LowerThresholdCritical")
                .or_else(|| legacy(f, "LowerThresholdFatal")),
            lower_caution: legacy(f, "LowerThresholdNonCritical"),
            upper_caution: legacy(f, "UpperThresholdNonCritical"),
            upper_critical: legacy(f, "UpperThresholdCritical"),
        };
        out.push(TelemetryReading {
            timestamp: at,
            server_id: server.to_string(),
            sensor_id: format!("redfish.{chassis_id}.thermal.fan.{key}"),
            name: text(f, "Name")
                .or_else(|| text(f, "FanName"))
                .unwrap_or_else(|| format!("Fan {key}")),
            kind: SensorKind::Fan,
            value,
            unit: unit.into(),
            component_id: related(f),
            thresholds: has_any(&thresholds).then_some(thresholds),
            source: "redfish".into(),
        });
    }
    out
}

/// Readings of a legacy `Power` resource: consumption, PSUs, voltages.
pub fn power(v: &Value, server: &str, chassis_id: &str, at: i64) -> Vec<TelemetryReading> {
    let mut out = Vec::new();
    let mut push = |id: String,
                    name: String,
                    kind: SensorKind,
                    unit: &str,
                    value: f64,
                    th: Option<Thresholds>,
                    component: Option<String>| {
        out.push(TelemetryReading {
            timestamp: at,
            server_id: server.to_string(),
            sensor_id: format!("redfish.{chassis_id}.power.{id}"),
            name,
            kind,
            value,
            unit: unit.into(),
            component_id: component,
            thresholds: th,
            source: "redfish".into(),
        });
    };
    for (i, c) in v
        .get("PowerControl")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(w) = num(c, "PowerConsumedWatts") {
            let key = text(c, "MemberId").unwrap_or_else(|| i.to_string());
            push(
                format!("consumed.{key}"),
                text(c, "Name").unwrap_or_else(|| "Power consumed".into()),
                SensorKind::Power,
                "W",
                w,
                None,
                None,
            );
        }
    }
    for (i, p) in v
        .get("PowerSupplies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let key = text(p, "MemberId").unwrap_or_else(|| i.to_string());
        let name = text(p, "Name").unwrap_or_else(|| format!("PSU {key}"));
        let comp = odata_id(p);
        if let Some(w) = num(p, "PowerInputWatts") {
            push(
                format!("psu.{key}.input"),
                format!("{name} input power"),
                SensorKind::Power,
                "W",
                w,
                None,
                comp.clone(),
            );
        } else if let Some(w) = num(p, "LastPowerOutputWatts") {
            push(
                format!("psu.{key}.output"),
                format!("{name} output power"),
                SensorKind::Power,
                "W",
                w,
                None,
                comp.clone(),
            );
        }
        if let Some(vin) = num(p, "LineInputVoltage") {
            push(
                format!("psu.{key}.input_voltage"),
                format!("{name} input voltage"),
                SensorKind::Voltage,
                "V",
                vin,
                None,
                comp,
            );
        }
    }
    for (i, x) in v
        .get("Voltages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(value) = num(x, "ReadingVolts") else {
            continue;
        };
        let key = text(x, "MemberId").unwrap_or_else(|| i.to_string());
        let th = Thresholds {
            lower_critical: num(x, "LowerThresholdCritical"),
            lower_caution: num(x, "LowerThresholdNonCritical"),
            upper_caution: num(x, "UpperThresholdNonCritical"),
            upper_critical: num(x, "UpperThresholdCritical"),
        };
        let th = has_any(&th).then_some(th);
        push(
            format!("voltage.{key}"),
            text(x, "Name").unwrap_or_else(|| format!("Voltage {key}")),
            SensorKind::Voltage,
            "V",
            value,
            th,
            related(x),
        );
    }
    out
}

/// One poll of every chassis in `topology`.
pub async fn poll(
    client: &RedfishClient,
    topology: &Topology,
) -> (Vec<TelemetryReading>, Vec<String>) {
    let mut readings = Vec::new();
    let mut errors = Vec::new();
    for (uri, cid, sid) in &topology.chassis {
        let at = chrono::Utc::now().timestamp_millis();
        let ch = match client.get(uri).await {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("Chassis {uri}: {e}"));
                continue;
            }
        };
        if let Some(s) = ch.get("Sensors").and_then(odata_id) {
            match client.members(&s).await {
                Ok(ms) if !ms.is_empty() => {
                    readings.extend(ms.iter().filter_map(|m| sensor(m, sid, cid, at)));
                    continue;
                }
                Ok(_) => {}
                Err(e) => errors.push(format!("Sensors {s}: {e}")),
            }
        }
        for (key, f) in [
            (
                "Thermal",
                thermal as fn(&Value, &str, &str, i64) -> Vec<TelemetryReading>,
            ),
            ("Power", power),
        ] {
            if let Some(u) = ch.get(key).and_then(odata_id) {
                match client.get(&u).await {
                    Ok(v) => readings.extend(f(&v, sid, cid, at)),
                    Err(e) => errors.push(format!("{key} {u}: {e}")),
                }
            }
        }
    }
    (readings, errors)
}
