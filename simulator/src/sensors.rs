//! Sensors that move: every reading in a mockup bound to a small thermal and power model.
//!
//! The mockup's readings are taken as the server's values at a reference operating point.
//! A model per server (load, power draw, heat, fan duty, ambient) moves them: power follows
//! load and power state, heat follows power, fans follow heat, temperatures follow heat over
//! cooling; every reading carries a little noise. All of it is a pure function of the seed,
//! the server and the simulated second, so a run can be replayed.

use serde_json::Value;

use crate::identity::{mix, mix_str, unit};
use crate::mockup::Mockup;

/// What a reading measures, with its normalised unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    /// °C.
    Temperature,
    /// Inlet or ambient air, °C: follows the room, not the load.
    Ambient,
    /// W.
    Power,
    /// kWh, accumulating.
    Energy,
    /// V.
    Voltage,
    /// A.
    Current,
    /// RPM.
    FanRpm,
    /// %.
    FanPercent,
    /// Anything else (frequency, humidity, …): baseline plus noise.
    Other,
}

/// One number in one resource that the model drives.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The resource's URI.
    pub uri: String,
    /// JSON pointer to the number inside it.
    pub pointer: String,
    /// JSON pointer to the object holding the reading (its `Status` and thresholds).
    pub holder: String,
    /// What it measures.
    pub kind: SensorKind,
    /// The mockup's value: the reading at the reference operating point.
    pub baseline: f64,
    /// The power supply it belongs to (0-based), if any.
    pub psu: Option<usize>,
    /// The fan it is (0-based within its family), for fan readings.
    pub fan: Option<usize>,
    /// Name for logs: the sensor's `Name` or its URI.
    pub name: String,
    /// Upper thresholds from the mockup: (non-critical, critical).
    pub upper: (Option<f64>, Option<f64>),
    noise_key: u64,
}

/// Finds every reading in `mockup` and binds it to the model.
pub fn bind(mockup: &Mockup) -> Vec<Binding> {
    let mut out = Vec::new();
    for (uri, v) in &mockup.resources {
        let mut ctx = Ctx {
            uri,
            out: &mut out,
            fan_ids: Default::default(),
        };
        walk(&mut ctx, v, String::new(), None);
    }
    out
}

struct Ctx<'a> {
    uri: &'a str,
    out: &'a mut Vec<Binding>,
    /// Fan numbers by family, then by the fan's identity.
    fan_ids: std::collections::HashMap<String, std::collections::HashMap<String, usize>>,
}

fn walk(ctx: &mut Ctx<'_>, v: &Value, pointer: String, parent_key: Option<&str>) {
    match v {
        Value::Object(m) => {
            for (k, inner) in m {
                let p = format!("{pointer}/{}", escape(k));
                if let Some(x) = inner.as_f64()
                    && let Some(kind) = classify(ctx.uri, m, k, parent_key)
                {
                    add(ctx, m, &pointer, p, kind, x);
                } else {
                    walk(ctx, inner, p, Some(k));
                }
            }
        }
        Value::Array(a) => {
            for (i, inner) in a.iter().enumerate() {
                walk(ctx, inner, format!("{pointer}/{i}"), parent_key);
            }
        }
        _ => {}
    }
}

fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

fn add(
    ctx: &mut Ctx<'_>,
    holder: &serde_json::Map<String, Value>,
    holder_ptr: &str,
    pointer: String,
    kind: SensorKind,
    baseline: f64,
) {
    let name = holder
        .get("Name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            holder
                .get("DataSourceUri")
                .and_then(Value::as_str)
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
        })
        .unwrap_or_else(|| format!("{}{}", ctx.uri, pointer));
    // The same physical sensor appears in several places (a Sensor resource, an excerpt in
    // ThermalMetrics pointing at it): key the noise by the sensor, so they agree.
    let source = holder
        .get("DataSourceUri")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}{}", ctx.uri, holder_ptr));
    let psu = psu_of(ctx.uri, &name, holder_ptr);
    // A fan's number: the same for every place the same fan shows (a Sensor, the fan
    // resource whose reading points at it); legacy Thermal arrays number their own fans.
    let fan = matches!(kind, SensorKind::FanRpm | SensorKind::FanPercent).then(|| {
        let family = if ctx.uri.ends_with("/Thermal") {
            ctx.uri.to_string()
        } else {
            "sensors".to_string()
        };
        let ids = ctx.fan_ids.entry(family).or_default();
        let next = ids.len();
        *ids.entry(source.clone()).or_insert(next)
    });
    let upper = (
        num(holder, "UpperThresholdNonCritical").or_else(|| threshold(holder, "UpperCaution")),
        num(holder, "UpperThresholdCritical").or_else(|| threshold(holder, "UpperCritical")),
    );
    ctx.out.push(Binding {
        uri: ctx.uri.to_string(),
        pointer,
        holder: holder_ptr.to_string(),
        kind,
        baseline,
        psu,
        fan,
        name,
        upper,
        noise_key: mix_str(0, &source),
    });
}

fn num(m: &serde_json::Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64)
}

fn threshold(m: &serde_json::Map<String, Value>, k: &str) -> Option<f64> {
    m.get("Thresholds")?.get(k)?.get("Reading")?.as_f64()
}

fn psu_of(uri: &str, name: &str, holder: &str) -> Option<usize> {
    let digit_after = |s: &str, tag: &str| -> Option<usize> {
        let i = s.find(tag)? + tag.len();
        let d: String = s[i..].chars().take_while(char::is_ascii_digit).collect();
        d.parse::<usize>().ok().map(|n| n.saturating_sub(1))
    };
    if let Some(i) = uri.find("/PowerSupplies/") {
        let rest = &uri[i + "/PowerSupplies/".len()..];
        let id = rest.split('/').next().unwrap_or_default();
        let d: String = id.chars().filter(char::is_ascii_digit).collect();
        return d
            .parse::<usize>()
            .ok()
            .map(|n| n.saturating_sub(1))
            .or(Some(0));
    }
    if uri.ends_with("/Power") && holder.starts_with("/PowerSupplies/") {
        return holder["/PowerSupplies/".len()..]
            .split('/')
            .next()
            .and_then(|s| s.parse().ok());
    }
    let last = uri.rsplit('/').next().unwrap_or_default();
    digit_after(last, "PS").or_else(|| digit_after(name, "PS"))
}

/// Which model quantity drives the number at key `k` of the object `m`, if any.
fn classify(
    uri: &str,
    m: &serde_json::Map<String, Value>,
    k: &str,
    parent_key: Option<&str>,
) -> Option<SensorKind> {
    let ambient = |m: &serde_json::Map<String, Value>| {
        let ctx = m
            .get("PhysicalContext")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = m.get("Name").and_then(Value::as_str).unwrap_or("");
        let src = m.get("DataSourceUri").and_then(Value::as_str).unwrap_or("");
        ["Intake", "Room", "Ambient"].contains(&ctx)
            || ["Inlet", "Intake", "Ambient"]
                .iter()
                .any(|w| name.contains(w) || src.contains(w))
    };
    let temp = |m| {
        if ambient(m) {
            SensorKind::Ambient
        } else {
            SensorKind::Temperature
        }
    };
    match k {
        "ReadingCelsius" => Some(temp(m)),
        "PowerConsumedWatts"
        | "PowerInputWatts"
        | "PowerOutputWatts"
        | "LastPowerOutputWatts"
        | "AverageConsumedWatts" => Some(SensorKind::Power),
        "LineInputVoltage" | "ReadingVolts" => Some(SensorKind::Voltage),
        "Reading" => {
            if let Some(t) = m.get("ReadingType").and_then(Value::as_str) {
                return Some(match t {
                    "Temperature" => temp(m),
                    "Power" => SensorKind::Power,
                    "EnergykWh" | "EnergyJoules" | "EnergyWh" => SensorKind::Energy,
                    "Voltage" => SensorKind::Voltage,
                    "Current" => SensorKind::Current,
                    "Rotational" => SensorKind::FanRpm,
                    "Percent" if uri.contains("Fan") => SensorKind::FanPercent,
                    _ => SensorKind::Other,
                });
            }
            if let Some(u) = m.get("ReadingUnits").and_then(Value::as_str) {
                // UCUM units, as Sensor resources give them, or the legacy names.
                return Some(match u {
                    "Cel" => temp(m),
                    "RPM" | "{rev}/min" => SensorKind::FanRpm,
                    "Percent" | "%" if uri.contains("Fan") || uri.contains("Thermal") => {
                        SensorKind::FanPercent
                    }
                    "W" => SensorKind::Power,
                    "V" => SensorKind::Voltage,
                    "A" => SensorKind::Current,
                    "kW.h" | "kWh" => SensorKind::Energy,
                    _ => SensorKind::Other,
                });
            }
            // Excerpts (`"PowerWatts": {"Reading": 12}`): the key above names the quantity.
            let p = parent_key.unwrap_or("");
            Some(if p.contains("Temperature") || p.contains("Celsius") {
                temp(m)
            } else if p.contains("Watts") {
                SensorKind::Power
            } else if p.contains("Energy") {
                SensorKind::Energy
            } else if p.contains("Volt") {
                SensorKind::Voltage
            } else if p.contains("Amps") || p.contains("Current") {
                SensorKind::Current
            } else if p == "SpeedPercent" {
                SensorKind::FanPercent
            } else if p.contains("RPM") {
                SensorKind::FanRpm
            } else {
                return None;
            })
        }
        _ => None,
    }
}

/// What the active faults do to the model of one server.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    /// Fans (by index within their family) that have stopped.
    pub failed_fans: Vec<usize>,
    /// Power supplies (0-based) that have lost input.
    pub lost_psus: Vec<usize>,
    /// Extra degrees on the air the server takes in.
    pub ambient_rise: f64,
}

/// The state of one server's model, advanced one simulated second at a time.
#[derive(Debug, Clone)]
pub struct Model {
    seed: u64,
    /// Simulated seconds since the fleet started.
    pub t: u64,
    /// Fraction of peak power drawn, 0..1.
    pub power: f64,
    /// Heat in the chassis, on the same scale as power.
    pub heat: f64,
    /// Fan duty, 0..1.
    pub fan: f64,
    /// kWh consumed since the start, as a fraction-of-peak × hours.
    pub energy: f64,
}

/// The operating point at which the mockup's readings hold.
const REF_POWER: f64 = 0.6;
const REF_FAN: f64 = 0.5;
const REF_AMBIENT: f64 = 24.0;

impl Model {
    /// A server's model at t = 0, powered on and settled.
    pub fn new(seed: u64, server: usize) -> Self {
        let seed = mix(seed, server as u64 + 0x5EED);
        Model {
            seed,
            t: 0,
            power: REF_POWER,
            heat: REF_POWER,
            fan: REF_FAN,
            energy: 0.0,
        }
    }

    /// The load the workload puts on the server at second `t`: two slow waves and noise.
    fn load(&self, t: u64) -> f64 {
        let phase = unit(mix(self.seed, 1)) * std::f64::consts::TAU;
        let period = 1800.0 + 3600.0 * unit(mix(self.seed, 2));
        let x = t as f64;
        let wave = 0.5
            + 0.25 * (x / period * std::f64::consts::TAU + phase).sin()
            + 0.1 * (x / 97.0 + phase * 3.0).sin();
        (wave + 0.05 * (unit(mix(self.seed, 1000 + t)) - 0.5)).clamp(0.05, 1.0)
    }

    /// Advances one simulated second.
    pub fn step(&mut self, on: bool, fx: &Effects) {
        let target = if on {
            0.35 + 0.5 * self.load(self.t)
        } else {
            0.03
        };
        self.power += (target - self.power) * 0.5;
        // Heat follows power with a time constant of about a minute.
        self.heat += (self.power - self.heat) / 60.0;
        let ambient = fx.ambient_rise / 20.0;
        let want = (0.25 + 1.1 * (self.heat + ambient - 0.35)).clamp(0.2, 1.0);
        self.fan += (want - self.fan) / 8.0;
        self.energy += self.power / 3600.0;
        self.t += 1;
    }

    /// Cooling as a fraction of the reference, given how many fans run.
    fn cooling(&self, fx: &Effects, fans: usize) -> f64 {
        let working = if fans == 0 {
            1.0
        } else {
            (fans.saturating_sub(fx.failed_fans.len()) as f64 / fans as f64).max(0.2)
        };
        (self.fan / REF_FAN) * working
    }

    /// The reading of `b` now.
    pub fn reading(&self, b: &Binding, fx: &Effects, fans: usize) -> f64 {
        let n = unit(mix(mix(self.seed, b.noise_key), self.t)) - 0.5;
        let p = self.power / REF_POWER;
        let psu_lost = b.psu.is_some_and(|i| fx.lost_psus.contains(&i));
        // With a PSU down, the others carry its share.
        let share = match (b.psu, fx.lost_psus.len()) {
            (Some(_), lost) if lost > 0 => 2.0_f64.min(1.0 + lost as f64),
            _ => 1.0,
        };
        let v = match b.kind {
            SensorKind::Ambient => b.baseline + fx.ambient_rise + 0.6 * n,
            SensorKind::Temperature => {
                let ambient = REF_AMBIENT + fx.ambient_rise;
                let rise = (b.baseline - REF_AMBIENT).max(1.0);
                ambient + rise * (self.heat / REF_POWER) / self.cooling(fx, fans).max(0.2) + 0.8 * n
            }
            SensorKind::Power if psu_lost => 0.0,
            SensorKind::Power => b.baseline * p * share * (1.0 + 0.02 * n),
            SensorKind::Current if psu_lost => 0.0,
            SensorKind::Current => b.baseline * p * share * (1.0 + 0.02 * n),
            SensorKind::Voltage if psu_lost => 0.0,
            SensorKind::Voltage => b.baseline * (1.0 + 0.01 * n),
            SensorKind::Energy => b.baseline + self.energy * b.baseline.max(1.0) / 1000.0,
            SensorKind::FanRpm | SensorKind::FanPercent => {
                if b.fan.is_some_and(|i| fx.failed_fans.contains(&i)) {
                    0.0
                } else {
                    let v = b.baseline * (self.fan / REF_FAN) * (1.0 + 0.02 * n);
                    if b.kind == SensorKind::FanPercent {
                        v.min(100.0)
                    } else {
                        v
                    }
                }
            }
            SensorKind::Other => b.baseline * (1.0 + 0.005 * n),
        };
        v.max(0.0)
    }
}

/// Rounds a reading the way BMCs report it: whole units for temperatures, fans and power,
/// two decimals for the rest.
pub fn round(kind: SensorKind, v: f64) -> f64 {
    match kind {
        SensorKind::Temperature | SensorKind::Ambient | SensorKind::FanRpm | SensorKind::Power => {
            v.round()
        }
        _ => (v * 100.0).round() / 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_mockup_has_every_kind_of_sensor() {
        let b = bind(&Mockup::builtin());
        for kind in [
            SensorKind::Temperature,
            SensorKind::Ambient,
            SensorKind::Power,
            SensorKind::Voltage,
            SensorKind::FanRpm,
        ] {
            assert!(b.iter().any(|x| x.kind == kind), "no {kind:?} sensor");
        }
        assert!(b.iter().any(|x| x.psu == Some(0)));
        // The CPU1 fan is one fan wherever it shows.
        let cpu1: Vec<_> = b
            .iter()
            .filter(|x| x.uri.ends_with("Sensors/CPUFan1") || x.uri.ends_with("Fans/CPU1"))
            .map(|x| x.fan)
            .collect();
        assert_eq!(cpu1.len(), 2);
        assert_eq!(cpu1[0], cpu1[1]);
    }

    #[test]
    fn power_off_cools_the_server_and_a_failed_fan_heats_it() {
        let m = Mockup::builtin();
        let binds = bind(&m);
        let Some(cpu) = binds.iter().find(|b| b.kind == SensorKind::Temperature) else {
            panic!("no temperature sensor");
        };
        let fx = Effects::default();
        let mut on = Model::new(1, 0);
        let mut off = on.clone();
        for _ in 0..600 {
            on.step(true, &fx);
            off.step(false, &fx);
        }
        assert!(off.reading(cpu, &fx, 4) < on.reading(cpu, &fx, 4) - 5.0);
        let broken = Effects {
            failed_fans: vec![0, 1, 2],
            ..Default::default()
        };
        assert!(on.reading(cpu, &broken, 4) > on.reading(cpu, &fx, 4) + 5.0);
    }

    #[test]
    fn a_seed_replays() {
        let m = Mockup::builtin();
        let binds = bind(&m);
        let fx = Effects::default();
        let run = || {
            let mut x = Model::new(42, 3);
            (0..100)
                .map(|_| {
                    x.step(true, &fx);
                    x.reading(&binds[0], &fx, 4)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
