//! This machine's own readings, so a fresh `serve` shows real data flowing at once.
//!
//! Reads the kernel's interfaces directly: `/proc/loadavg`, `/proc/meminfo`, `/proc/stat` and,
//! where the machine has them, hwmon sensors (`/sys/class/hwmon/*/{temp,fan,power,in}*_input`).
//! Anything missing is skipped, never an error: a VM has no hwmon, a container may hide /proc.

use std::path::{Path, PathBuf};

/// What a reading measures, mirroring the telemetry schema's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    /// Watts.
    Power,
    /// Degrees Celsius.
    Temperature,
    /// RPM.
    Fan,
    /// Volts.
    Voltage,
    /// Percent.
    Utilization,
}

/// One reading of this host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSample {
    /// Stable sensor id, the same from poll to poll.
    pub sensor_id: String,
    /// Human-readable sensor name.
    pub name: String,
    /// What it measures.
    pub kind: SampleKind,
    /// The value in `unit`.
    pub value: f64,
    /// Normalised unit: W, Cel, RPM, V or %.
    pub unit: &'static str,
}

/// CPU time counters from `/proc/stat`, to turn into utilisation between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Samples this host; `root` is `/` except in tests.
pub struct HostSampler {
    root: PathBuf,
    last_cpu: Option<CpuTimes>,
}

impl HostSampler {
    /// A sampler reading below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostSampler {
            root: root.into(),
            last_cpu: None,
        }
    }

    /// Takes one sample of everything readable.
    pub fn sample(&mut self) -> Vec<HostSample> {
        let mut out = Vec::new();
        if let Some(cpu) = read_cpu_times(&self.root.join("proc/stat")) {
            if let Some(prev) = self.last_cpu {
                let total = cpu.total.saturating_sub(prev.total);
                if total > 0 {
                    let busy = cpu.busy.saturating_sub(prev.busy);
                    out.push(util(
                        "host.cpu.utilization",
                        "CPU utilization",
                        100.0 * busy as f64 / total as f64,
                    ));
                }
            }
            self.last_cpu = Some(cpu);
        }
        if let Some(m) = read_memory_used_percent(&self.root.join("proc/meminfo")) {
            out.push(util("host.memory.utilization", "Memory utilization", m));
        }
        out.extend(read_hwmon(&self.root.join("sys/class/hwmon")));
        out
    }
}

fn util(id: &str, name: &str, value: f64) -> HostSample {
    HostSample {
        sensor_id: id.to_string(),
        name: name.to_string(),
        kind: SampleKind::Utilization,
        value,
        unit: "%",
    }
}

fn read_cpu_times(path: &Path) -> Option<CpuTimes> {
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

fn read_memory_used_percent(path: &Path) -> Option<f64> {
    let s = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<f64> {
        s.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    (total > 0.0).then(|| 100.0 * (total - avail) / total)
}

/// hwmon inputs: `tempN_input` (m°C), `fanN_input` (RPM), `powerN_input` (µW), `inN_input` (mV).
fn read_hwmon(dir: &Path) -> Vec<HostSample> {
    let mut out = Vec::new();
    let Ok(chips) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut chips: Vec<PathBuf> = chips.filter_map(|e| e.ok().map(|e| e.path())).collect();
    chips.sort();
    for chip in chips {
        let chip_name = std::fs::read_to_string(chip.join("name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "hwmon".into());
        let Ok(files) = std::fs::read_dir(&chip) else {
            continue;
        };
        let mut files: Vec<String> = files
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|f| f.ends_with("_input"))
            .collect();
        files.sort();
        for f in files {
            let stem = f.trim_end_matches("_input");
            let (kind, unit, scale) = if stem.starts_with("temp") {
                (SampleKind::Temperature, "Cel", 1e-3)
            } else if stem.starts_with("fan") {
                (SampleKind::Fan, "RPM", 1.0)
            } else if stem.starts_with("power") {
                (SampleKind::Power, "W", 1e-6)
            } else if stem.starts_with("in") {
                (SampleKind::Voltage, "V", 1e-3)
            } else {
                continue;
            };
            let Some(raw) = std::fs::read_to_string(chip.join(&f))
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
            else {
                continue;
            };
            let label = std::fs::read_to_string(chip.join(format!("{stem}_label")))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| stem.to_string());
            out.push(HostSample {
                sensor_id: format!("hwmon.{chip_name}.{stem}"),
                name: format!("{chip_name} {label}"),
                kind,
                value: raw * scale,
                unit,
            });
        }
    }
    out
}

/// This host's inventory as the in-band agent reads it (so the host and its agent are one server
/// id), plus its host name for the `servers` view. External tools are not run from the service.
pub fn local_inventory(root: &Path) -> automata_schemas::types::InventorySnapshot {
    use automata_schemas::types::{Component, ComponentKind};
    let mut snap = automata_agent::collect(&automata_agent::Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    })
    .snapshot;
    if let Some(h) = std::fs::read_to_string(root.join("proc/sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|h| !h.is_empty())
    {
        snap.components.push(Component {
            component_id: "os".into(),
            kind: ComponentKind::Other,
            name: "Operating system".into(),
            manufacturer: None,
            model: None,
            serial: None,
            part_number: None,
            firmware_version: None,
            location: None,
            properties: [("hostname".to_string(), h)].into_iter().collect(),
        });
    }
    snap
}

fn reading(server_id: &str, s: HostSample, now: i64) -> automata_schemas::types::TelemetryReading {
    use automata_schemas::types::SensorKind;
    automata_schemas::types::TelemetryReading {
        timestamp: now,
        server_id: server_id.to_string(),
        sensor_id: s.sensor_id,
        name: s.name,
        kind: match s.kind {
            SampleKind::Power => SensorKind::Power,
            SampleKind::Temperature => SensorKind::Temperature,
            SampleKind::Fan => SensorKind::Fan,
            SampleKind::Voltage => SensorKind::Voltage,
            SampleKind::Utilization => SensorKind::Utilization,
        },
        value: s.value,
        unit: s.unit.to_string(),
        component_id: None,
        thresholds: None,
        source: "host".into(),
    }
}

/// Samples this host every `every` and publishes telemetry (and an inventory each hour) until
/// `shutdown`. A failed send is logged and retried at the next tick; nothing panics.
pub async fn run(
    log: automata_log::MessageLog,
    ids: automata_schemas::SchemaIds,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), crate::ProducerError> {
    use automata_schemas::catalog::{INVENTORY_SNAPSHOTS, TELEMETRY_READINGS, topic};
    const NAME: &str = "host";
    let root = Path::new("/");
    let first = tokio::task::spawn_blocking(|| local_inventory(Path::new("/")))
        .await
        .ok();
    let Some(server_id) = first
        .as_ref()
        .map(|s| s.server_id.clone())
        .filter(|id| id != "unknown")
    else {
        tracing::warn!(
            "this host has no SMBIOS UUID, /etc/machine-id or host name: not collecting its telemetry"
        );
        shutdown.cancelled().await;
        return Ok(());
    };
    let tel =
        topic(TELEMETRY_READINGS).ok_or(crate::ProducerError::NoSchema(TELEMETRY_READINGS))?;
    let inv =
        topic(INVENTORY_SNAPSHOTS).ok_or(crate::ProducerError::NoSchema(INVENTORY_SNAPSHOTS))?;
    let tel_id = ids
        .get(TELEMETRY_READINGS)
        .ok_or(crate::ProducerError::NoSchema(TELEMETRY_READINGS))?;
    let inv_id = ids
        .get(INVENTORY_SNAPSHOTS)
        .ok_or(crate::ProducerError::NoSchema(INVENTORY_SNAPSHOTS))?;
    tracing::info!(server_id, every = ?every, "collecting this host's telemetry");
    let mut sampler = HostSampler::new(root);
    let mut tick = tokio::time::interval(every);
    let mut last_inventory: Option<std::time::Instant> = None;
    let mut pending = first;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = automata_log::now_ms();
        if last_inventory.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(3600)) {
            let snap = match pending.take() {
                Some(s) => Some(s),
                None => tokio::task::spawn_blocking(|| local_inventory(Path::new("/")))
                    .await
                    .ok(),
            };
            let published = match snap {
                None => Err("the inventory collection failed".to_string()),
                Some(snap) => {
                    let bytes = automata_schemas::encode(inv, inv_id, &snap).map_err(|source| {
                        crate::ProducerError::Encode {
                            collector: NAME,
                            source,
                        }
                    })?;
                    log.send(
                        INVENTORY_SNAPSHOTS,
                        automata_log::Record::new(server_id.clone(), bytes),
                    )
                    .await
                    .map_err(|e| e.to_string())
                }
            };
            match published {
                Ok(_) => last_inventory = Some(std::time::Instant::now()),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot publish this host's inventory; retrying next tick")
                }
            }
        }
        let mut records = Vec::new();
        for s in sampler.sample() {
            let bytes = automata_schemas::encode(tel, tel_id, &reading(&server_id, s, now))
                .map_err(|source| crate::ProducerError::Encode {
                    collector: NAME,
                    source,
                })?;
            records.push(automata_log::Record::new(server_id.clone(), bytes).with_timestamp(now));
        }
        if records.is_empty() {
            continue;
        }
        let n = records.len();
        match log.send_batch(TELEMETRY_READINGS, records).await {
            Ok(_) => metrics::counter!("automata_collector_readings_total", "collector" => NAME)
                .increment(n as u64),
            Err(e) => {
                metrics::counter!("automata_collector_errors_total", "collector" => NAME)
                    .increment(1);
                tracing::warn!(error = %e, "cannot publish this host's readings; retrying next tick");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    #[test]
    fn reads_proc_and_hwmon_with_normalised_units() {
        let d = tempfile::tempdir().expect("tempdir");
        let r = d.path();
        write(r, "proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n");
        write(
            r,
            "proc/meminfo",
            "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 250 kB\n",
        );
        write(r, "sys/class/hwmon/hwmon0/name", "coretemp\n");
        write(r, "sys/class/hwmon/hwmon0/temp1_input", "45500\n");
        write(r, "sys/class/hwmon/hwmon0/temp1_label", "Package id 0\n");
        write(r, "sys/class/hwmon/hwmon0/fan2_input", "garbage\n");
        write(r, "sys/class/hwmon/hwmon1/name", "psu\n");
        write(r, "sys/class/hwmon/hwmon1/power1_input", "250000000\n");
        let mut s = HostSampler::new(r);
        let first = s.sample();
        assert!(
            first.iter().all(|x| x.sensor_id != "host.cpu.utilization"),
            "needs two samples"
        );
        write(r, "proc/stat", "cpu  150 0 150 900 0 0 0 0 0 0\n");
        let second = s.sample();
        let get = |id: &str| second.iter().find(|x| x.sensor_id == id).cloned();
        assert_eq!(
            get("host.cpu.utilization").map(|x| x.value.round()),
            Some(50.0)
        );
        assert_eq!(get("host.memory.utilization").map(|x| x.value), Some(75.0));
        let t = get("hwmon.coretemp.temp1").expect("temperature");
        assert_eq!(
            (t.value, t.unit, t.name.as_str()),
            (45.5, "Cel", "coretemp Package id 0")
        );
        assert!(
            get("hwmon.coretemp.fan2").is_none(),
            "unparsable input is skipped"
        );
        assert_eq!(get("hwmon.psu.power1").map(|x| x.value), Some(250.0));
    }

    #[test]
    fn a_missing_proc_gives_no_samples_and_no_error() {
        let d = tempfile::tempdir().expect("tempdir");
        assert!(HostSampler::new(d.path()).sample().is_empty());
        assert_eq!(local_inventory(d.path()).server_id, "unknown");
    }
}
