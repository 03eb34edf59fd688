//! Memory error counters from EDAC (`/sys/devices/system/edac/mc/mc*/`) as readings, and
//! [`EdacTracker`], which turns their increases into hardware log entries.
//!
//! Per DIMM: `dimm*/` (or `rank*/` for chip-select based drivers) with `dimm_label`,
//! `dimm_location`, `dimm_ce_count`, `dimm_ue_count`; on kernels that only have the legacy
//! layout, `csrow*/ch*_ce_count` (label `ch*_dimm_label`) and `csrow*/ue_count`. Per controller:
//! `ce_count`, `ue_count`, `ce_noinfo_count`, `ue_noinfo_count`. Counts only grow until the
//! driver is reloaded (or the machine reboots), which resets them to zero.

use std::collections::BTreeMap;
use std::path::Path;

use automata_schemas::types::{HardwareLogEntry, LogSeverity, SensorKind};
use serde::{Deserialize, Serialize};

use crate::telemetry::{SOURCE, Sensor};
use crate::{fsutil, smbios};

/// The `log_id` of EDAC entries.
pub const LOG_ID: &str = "host:edac";

/// Corrected or uncorrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Corrected error (CE): the ECC fixed it.
    Corrected,
    /// Uncorrected error (UE): data was lost.
    Uncorrected,
}

/// One EDAC counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdacCounter {
    /// Sensor id, e.g. `edac.mc0.dimm3.ce`.
    pub sensor_id: String,
    /// Memory controller (`mc0`).
    pub mc: String,
    /// The DIMM-level unit (`dimm3`, `rank2`, `csrow0.ch1`, `csrow0`), `None` for the controller.
    pub unit: Option<String>,
    /// The driver's label for the DIMM (`dimm_label`), when it has one.
    pub label: Option<String>,
    /// The driver's location text (`dimm_location`).
    pub location: Option<String>,
    /// CE or UE.
    pub kind: ErrorKind,
    /// Whether the count is of errors the driver could not attribute to a DIMM (`*_noinfo`).
    pub noinfo: bool,
    /// Whether increases of this counter become log entries (the controller's totals do not when
    /// its DIMMs have counters of their own, so one error yields one entry).
    pub events: bool,
    /// The count since the driver loaded.
    pub count: u64,
}

impl EdacCounter {
    /// The counter as a reading (kind Other, unit `count`), attached to the DIMM it names.
    pub fn sensor(&self, dimms: &[smbios::Dimm]) -> Sensor {
        let what = match self.kind {
            ErrorKind::Corrected => "corrected errors",
            ErrorKind::Uncorrected => "uncorrected errors",
        };
        let on = match (&self.label, &self.unit) {
            (Some(l), _) => l.clone(),
            (None, Some(u)) => format!("{} {u}", self.mc),
            (None, None) if self.noinfo => format!("{} (no DIMM information)", self.mc),
            (None, None) => self.mc.clone(),
        };
        Sensor {
            sensor_id: self.sensor_id.clone(),
            name: format!("{on} {what}"),
            kind: SensorKind::Other,
            value: self.count as f64,
            unit: "count",
            component_id: self
                .label
                .as_deref()
                .and_then(|l| dimm_component_id(l, dimms)),
            thresholds: None,
        }
    }
}

/// Reads every EDAC counter under `root` (none when EDAC is absent, which is not an error).
pub fn read(root: &Path, errors: &mut Vec<String>) -> Vec<EdacCounter> {
    let base = "sys/devices/system/edac/mc";
    let mcs = match fsutil::list_dir(root, base) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("EDAC: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for mc in mcs.into_iter().filter(|n| is_numbered(n, "mc")) {
        let dir = format!("{base}/{mc}");
        let entries = match fsutil::list_dir(root, &dir) {
            Ok(e) => e,
            Err(e) => {
                errors.push(format!("EDAC {mc}: {e}"));
                continue;
            }
        };
        let count = |rel: &str| {
            fsutil::attr(root, format!("{dir}/{rel}")).and_then(|v| v.parse::<u64>().ok())
        };
        let text = |rel: &str| fsutil::attr(root, format!("{dir}/{rel}"));
        let mut per_dimm = Vec::new();
        let mut units: Vec<&String> = entries
            .iter()
            .filter(|n| is_numbered(n, "dimm") || is_numbered(n, "rank"))
            .collect();
        units.sort_by_key(|n| numbered_key(n));
        for u in units {
            let label = text(&format!("{u}/dimm_label"));
            let location = text(&format!("{u}/dimm_location"));
            for (file, kind, suffix) in [
                ("dimm_ce_count", ErrorKind::Corrected, "ce"),
                ("dimm_ue_count", ErrorKind::Uncorrected, "ue"),
            ] {
                if let Some(c) = count(&format!("{u}/{file}")) {
                    per_dimm.push(EdacCounter {
                        sensor_id: format!("edac.{mc}.{u}.{suffix}"),
                        mc: mc.clone(),
                        unit: Some(u.clone()),
                        label: label.clone(),
                        location: location.clone(),
                        kind,
                        noinfo: false,
                        events: true,
                        count: c,
                    });
                }
            }
        }
        if per_dimm.is_empty() {
            // The legacy layout: channels of chip-select rows.
            let mut rows: Vec<&String> =
                entries.iter().filter(|n| is_numbered(n, "csrow")).collect();
            rows.sort_by_key(|n| numbered_key(n));
            for row in rows {
                let mut files = fsutil::list_dir(root, format!("{dir}/{row}")).unwrap_or_default();
                files.retain(|f| f.ends_with("_ce_count") && f.starts_with("ch"));
                files.sort_by_key(|f| numbered_key(f.trim_end_matches("_ce_count")));
                for f in files {
                    let ch = f.trim_end_matches("_ce_count").to_string();
                    if !is_numbered(&ch, "ch") {
                        continue;
                    }
                    if let Some(c) = count(&format!("{row}/{f}")) {
                        per_dimm.push(EdacCounter {
                            sensor_id: format!("edac.{mc}.{row}.{ch}.ce"),
                            mc: mc.clone(),
                            unit: Some(format!("{row}.{ch}")),
                            label: text(&format!("{row}/{ch}_dimm_label")),
                            location: None,
                            kind: ErrorKind::Corrected,
                            noinfo: false,
                            events: true,
                            count: c,
                        });
                    }
                }
                if let Some(c) = count(&format!("{row}/ue_count")) {
                    per_dimm.push(EdacCounter {
                        sensor_id: format!("edac.{mc}.{row}.ue"),
                        mc: mc.clone(),
                        unit: Some(row.clone()),
                        label: None,
                        location: None,
                        kind: ErrorKind::Uncorrected,
                        noinfo: false,
                        events: true,
                        count: c,
                    });
                }
            }
        }
        let has_dimm_counters = !per_dimm.is_empty();
        out.extend(per_dimm);
        for (file, kind, noinfo, suffix) in [
            ("ce_count", ErrorKind::Corrected, false, "ce"),
            ("ue_count", ErrorKind::Uncorrected, false, "ue"),
            ("ce_noinfo_count", ErrorKind::Corrected, true, "ce_noinfo"),
            ("ue_noinfo_count", ErrorKind::Uncorrected, true, "ue_noinfo"),
        ] {
            if let Some(c) = count(file) {
                out.push(EdacCounter {
                    sensor_id: format!("edac.{mc}.{suffix}"),
                    mc: mc.clone(),
                    unit: None,
                    label: None,
                    location: None,
                    kind,
                    noinfo,
                    events: noinfo || !has_dimm_counters,
                    count: c,
                });
            }
        }
    }
    out
}

/// `mc0`, `dimm12`: the prefix followed by digits only.
fn is_numbered(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
}

/// Sorts `dimm2` before `dimm10`.
fn numbered_key(name: &str) -> (String, u64) {
    let digits = name.trim_start_matches(|c: char| !c.is_ascii_digit());
    (
        name[..name.len() - digits.len()].to_string(),
        digits.parse().unwrap_or(u64::MAX),
    )
}

/// Lowercase letters and digits only, so `P0 CHANNEL A DIMM_A1` and `p0channeladimma1` meet.
fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The inventory id (`dimm:<locator>`, see [`smbios::dimm_component`]) of the one DIMM whose
/// SMBIOS locator, or bank locator followed by locator, is the EDAC label (ignoring case, spaces
/// and punctuation); `None` when no DIMM or more than one matches. ghes_edac labels DIMMs
/// `"<bank> <locator>"` from SMBIOS; `edac-ctl` label databases use the board's silkscreen names,
/// which are the locators.
pub fn dimm_component_id(label: &str, dimms: &[smbios::Dimm]) -> Option<String> {
    let l = norm(label);
    if l.is_empty() {
        return None;
    }
    let mut matches = dimms.iter().enumerate().filter(|(_, d)| {
        let loc = d.locator.as_deref().map(norm).unwrap_or_default();
        let bank = d.bank.as_deref().map(norm).unwrap_or_default();
        (!loc.is_empty() && (l == loc || l == format!("{bank}{loc}")))
            || (loc.is_empty() && !bank.is_empty() && l == bank)
    });
    let (i, first) = matches.next()?;
    if matches.next().is_some() {
        return None;
    }
    // The inventory suffixes repeated ids `#2`, `#3` in SMBIOS order (`dedupe_ids`).
    let id = smbios::dimm_component(first).component_id;
    let n = dimms
        .iter()
        .take(i + 1)
        .filter(|d| smbios::dimm_component(d).component_id == id)
        .count();
    Some(if n > 1 { format!("{id}#{n}") } else { id })
}

/// The last EDAC counts seen; turns increases into log entries. Serialisable so the caller can
/// persist it: counts survive an agent restart but not a driver reload or reboot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdacTracker {
    /// Last count per sensor id.
    pub counts: BTreeMap<String, u64>,
}

impl EdacTracker {
    /// Compares `counters` with the previous counts and returns one entry per counter that grew
    /// (WARNING for corrected, CRITICAL for uncorrected errors); the first sight of a counter
    /// and a counter that went down (driver reload) only set the baseline.
    pub fn update(
        &mut self,
        counters: &[EdacCounter],
        dimms: &[smbios::Dimm],
        server_id: &str,
        observed_at: i64,
    ) -> Vec<HardwareLogEntry> {
        let mut out = Vec::new();
        for c in counters {
            let prev = self.counts.insert(c.sensor_id.clone(), c.count);
            let Some(prev) = prev else { continue };
            if c.count <= prev || !c.events {
                continue;
            }
            let delta = c.count - prev;
            let (severity, what, id) = match c.kind {
                ErrorKind::Corrected => (LogSeverity::Warning, "corrected", "EDAC.CE"),
                ErrorKind::Uncorrected => (LogSeverity::Critical, "uncorrected", "EDAC.UE"),
            };
            let plural = if delta == 1 { "" } else { "s" };
            let on = match (&c.label, &c.unit) {
                (Some(l), Some(u)) => format!("on {l} ({} {u})", c.mc),
                (None, Some(u)) => format!("on {} {u}", c.mc),
                (Some(l), None) => format!("on {l} ({})", c.mc),
                (None, None) if c.noinfo => {
                    format!("on {} (not attributed to a DIMM)", c.mc)
                }
                (None, None) => format!("on {}", c.mc),
            };
            let location = c
                .location
                .as_deref()
                .map(|l| format!(", location {l}"))
                .unwrap_or_default();
            out.push(HardwareLogEntry {
                server_id: server_id.to_string(),
                log_id: LOG_ID.to_string(),
                entry_id: format!("{}:{prev}-{}@{observed_at}", c.sensor_id, c.count),
                created: observed_at,
                observed_at,
                severity,
                message: format!(
                    "{delta} new {what} memory error{plural} {on}{location}: {} since the driver loaded",
                    c.count
                ),
                message_id: Some(id.to_string()),
                component_id: c.label.as_deref().and_then(|l| dimm_component_id(l, dimms)),
                sensor_id: Some(c.sensor_id.clone()),
                source: SOURCE.to_string(),
            });
        }
        // Counters that disappeared (controller gone) are forgotten.
        self.counts
            .retain(|id, _| counters.iter().any(|c| &c.sensor_id == id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dimm(bank: &str, loc: &str) -> smbios::Dimm {
        smbios::Dimm {
            bank: Some(bank.to_string()),
            locator: Some(loc.to_string()),
            ..smbios::Dimm::default()
        }
    }

    #[test]
    fn labels_match_smbios_locators() {
        let dimms = [
            dimm("P0 CHANNEL A", "DIMM_A1"),
            dimm("P0 CHANNEL B", "DIMM_B1"),
            dimm("CPU2", "DIMM 0"),
            dimm("CPU1", "DIMM 0"),
        ];
        assert_eq!(
            dimm_component_id("DIMM_A1", &dimms).as_deref(),
            Some("dimm:DIMM_A1")
        );
        // ghes_edac: "<bank> <locator>".
        assert_eq!(
            dimm_component_id("P0 CHANNEL B DIMM_B1", &dimms).as_deref(),
            Some("dimm:DIMM_B1")
        );
        // The second "DIMM 0" in SMBIOS order is `#2` in the inventory.
        assert_eq!(
            dimm_component_id("CPU1_DIMM_0", &dimms).as_deref(),
            Some("dimm:DIMM_0#2")
        );
        assert_eq!(
            dimm_component_id("cpu2 dimm 0", &dimms).as_deref(),
            Some("dimm:DIMM_0")
        );
        // Two DIMMs share the locator: ambiguous.
        assert_eq!(dimm_component_id("DIMM 0", &dimms), None);
        // Driver default labels match nothing.
        assert_eq!(
            dimm_component_id("CPU_SrcID#0_MC#0_Chan#0_DIMM#0", &dimms),
            None
        );
        assert_eq!(dimm_component_id("", &dimms), None);
    }

    #[test]
    fn numbered_names() {
        assert!(is_numbered("mc0", "mc"));
        assert!(is_numbered("dimm12", "dimm"));
        assert!(!is_numbered("mc", "mc"));
        assert!(!is_numbered("mc0x", "mc"));
        let mut v = vec!["dimm10", "dimm2", "dimm1"];
        v.sort_by_key(|n| numbered_key(n));
        assert_eq!(v, ["dimm1", "dimm2", "dimm10"]);
    }
}
