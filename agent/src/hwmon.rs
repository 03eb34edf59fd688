//! hwmon sensors from `/sys/class/hwmon/hwmon*/`: temperatures, fans, voltages, currents, power
//! and energy, with their labels and limits, under ids that survive hwmon renumbering.
//!
//! Attributes follow the kernel's sysfs-interface ABI (Documentation/hwmon/sysfs-interface):
//! `temp*_input` m°C, `fan*_input` RPM, `in*_input` mV, `curr*_input` mA, `power*_input` /
//! `power*_average` µW, `energy*_input` µJ; limits `*_lcrit`, `*_min`, `*_max`, `*_crit`,
//! `*_emergency` in the same unit. A sensor whose value cannot be read (drivers answer EIO,
//! ENODATA or EAGAIN for absent or sleeping sensors) is skipped without an error, as is one the
//! driver flags as disabled (`*_enable` = 0) or faulty (`*_fault` = 1).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use automata_schemas::types::{SensorKind, Thresholds};

use crate::fsutil;
use crate::telemetry::{Sensor, some_thresholds};

/// The hwmon attribute families read, with kind, unit and the divisor to that unit.
const FAMILIES: &[(&str, SensorKind, &str, f64)] = &[
    ("temp", SensorKind::Temperature, "Cel", 1_000.0),
    ("fan", SensorKind::Fan, "RPM", 1.0),
    ("in", SensorKind::Voltage, "V", 1_000.0),
    ("curr", SensorKind::Current, "A", 1_000.0),
    ("power", SensorKind::Power, "W", 1_000_000.0),
    ("energy", SensorKind::Energy, "J", 1_000_000.0),
];

/// Splits an attribute file name such as `temp12_crit` into (`temp`, 12, `crit`).
pub fn parse_attr_name(file: &str) -> Option<(&'static str, u32, &str)> {
    let (head, item) = file.split_once('_')?;
    // Longest family first is not needed: no family name is a prefix of another followed by a digit.
    FAMILIES.iter().find_map(|(fam, ..)| {
        let idx = head.strip_prefix(fam)?;
        if idx.is_empty() || !idx.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some((*fam, idx.parse().ok()?, item))
    })
}

/// One hwmon device's identity: where its sensors' ids come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwmonDevice {
    /// `hwmonN` (unstable, for messages only).
    pub hwmon: String,
    /// The chip name (`name` attribute): `coretemp`, `nct6775`, `nvme`.
    pub chip: String,
    /// The stable device part of the sensor id (see [`crate::telemetry`]).
    pub device: String,
    /// The inventory component the sensors belong to, when known.
    pub component_id: Option<String>,
}

/// Identifies hwmon device `hwmon` (a name under `sys/class/hwmon`).
pub fn identify(root: &Path, hwmon: &str) -> HwmonDevice {
    let dir = format!("sys/class/hwmon/{hwmon}");
    let chip = fsutil::attr(root, format!("{dir}/name"))
        .map(|n| sanitize(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let parent = fsutil::device_path(root, format!("{dir}/device"));
    let pci = parent.as_deref().and_then(fsutil::pci_address_in);
    let device = match (&pci, &parent) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p
            .file_name()
            .map(|n| sanitize(&n.to_string_lossy()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "virtual".to_string()),
        (None, None) => "virtual".to_string(),
    };
    // An NVMe controller's hwmon is the disk's; other PCI devices are their PCI component.
    let under_nvme = parent
        .as_deref()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "nvme");
    let component_id = if under_nvme {
        fsutil::attr(root, format!("{dir}/device/serial"))
            .map(|s| format!("disk:{s}"))
            .or_else(|| pci.as_ref().map(|p| format!("pci:{p}")))
    } else {
        pci.as_ref().map(|p| format!("pci:{p}"))
    };
    HwmonDevice {
        hwmon: hwmon.to_string(),
        chip,
        device,
        component_id,
    }
}

/// Keeps ids on one token: whitespace and control characters become `_`.
fn sanitize(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Reads every hwmon device under `root`; unreadable sensors are skipped (see the module docs).
pub fn read(root: &Path, errors: &mut Vec<String>) -> Vec<Sensor> {
    let base = "sys/class/hwmon";
    let names = match fsutil::list_dir(root, base) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("hwmon: {e}"));
            return Vec::new();
        }
    };
    let mut devices: Vec<HwmonDevice> = names
        .iter()
        .filter(|n| n.starts_with("hwmon"))
        .map(|n| identify(root, n))
        .collect();
    // Stable order (not by hwmonN) so duplicate identities get the same suffix every boot.
    devices.sort_by(|a, b| (&a.device, &a.chip).cmp(&(&b.device, &b.chip)));
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::new();
    for d in devices {
        let mut prefix = format!("hwmon.{}.{}", d.device, d.chip);
        let n = seen.entry(prefix.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            prefix = format!("{prefix}#{n}");
        }
        match read_device(root, &d, &prefix) {
            Ok(s) => out.extend(s),
            Err(e) => errors.push(format!("hwmon {}: {e}", d.chip)),
        }
    }
    out
}

/// The sensors of one hwmon device, ids prefixed with `prefix`.
fn read_device(
    root: &Path,
    d: &HwmonDevice,
    prefix: &str,
) -> Result<Vec<Sensor>, fsutil::ReadError> {
    let dir = format!("sys/class/hwmon/{}", d.hwmon);
    // (family, index) -> item -> file name, sorted so output order is stable.
    let mut groups: BTreeMap<(usize, u32), Vec<String>> = BTreeMap::new();
    for f in fsutil::list_dir(root, &dir)? {
        if let Some((fam, idx, item)) = parse_attr_name(&f) {
            let fi = FAMILIES.iter().position(|(n, ..)| *n == fam).unwrap_or(0);
            groups.entry((fi, idx)).or_default().push(item.to_string());
        }
    }
    let mut out = Vec::new();
    for ((fi, idx), items) in groups {
        let Some(&(fam, kind, unit, div)) = FAMILIES.get(fi) else {
            continue;
        };
        let has = |item: &str| items.iter().any(|i| i == item);
        let raw = |item: &str| -> Option<f64> {
            if !has(item) {
                return None;
            }
            fsutil::read_trimmed(root, format!("{dir}/{fam}{idx}_{item}"))
                .ok()
                .flatten()
                .and_then(|v| v.parse::<i64>().ok())
                .map(|v| v as f64)
        };
        if raw("enable") == Some(0.0) || raw("fault") == Some(1.0) {
            continue;
        }
        let value =
            match raw("input").or_else(|| (fam == "power").then(|| raw("average")).flatten()) {
                Some(v) => v / div,
                None => continue,
            };
        // Below absolute zero is a driver's "not set" (NVMe reports -273.15 °C minimums).
        let limit = |item: &str| {
            raw(item)
                .map(|v| v / div)
                .filter(|v| fam != "temp" || *v > -273.0)
        };
        // An upper limit of zero or less is a driver's "not set"; so is a fan minimum of zero.
        let upper = |item: &str| limit(item).filter(|v| *v > 0.0);
        let lower = |item: &str| limit(item).filter(|v| fam != "fan" || *v > 0.0);
        let thresholds = Thresholds {
            lower_critical: lower("lcrit"),
            lower_caution: lower("min"),
            upper_caution: upper("max"),
            upper_critical: upper("crit").or_else(|| upper("emergency")),
        };
        let label = if has("label") {
            fsutil::attr(root, format!("{dir}/{fam}{idx}_label"))
        } else {
            None
        };
        out.push(Sensor {
            sensor_id: format!("{prefix}.{fam}{idx}"),
            name: label.unwrap_or_else(|| format!("{} {fam}{idx}", d.chip)),
            kind,
            value,
            unit,
            component_id: d.component_id.clone(),
            thresholds: some_thresholds(thresholds),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert_eq!(parse_attr_name("temp1_input"), Some(("temp", 1, "input")));
        assert_eq!(parse_attr_name("in0_lcrit"), Some(("in", 0, "lcrit")));
        assert_eq!(
            parse_attr_name("power12_average"),
            Some(("power", 12, "average"))
        );
        assert_eq!(parse_attr_name("fan2_min"), Some(("fan", 2, "min")));
        assert_eq!(parse_attr_name("name"), None);
        assert_eq!(parse_attr_name("temp_input"), None);
        assert_eq!(parse_attr_name("intrusion0_alarm"), None);
        assert_eq!(parse_attr_name("pwm1_enable"), None);
        assert_eq!(parse_attr_name("update_interval"), None);
    }
}
