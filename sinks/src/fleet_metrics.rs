//! Exports the fleet's latest sensor readings as Prometheus gauges on the service's `/metrics`,
//! named after the OpenTelemetry hardware semantic conventions (`hw.power`, `hw.temperature`,
//! `hw.fan.speed`, …; Prometheus spells the dots as underscores), and the fleet's health as
//! `hw.status` (1 for the state a component is in, 0 for the others, as the convention has it).

use automata_log::{ConsumedRecord, StartFrom, TopicPartitionOffset, offsets_to_commit};
use automata_schemas::catalog::{HEALTH_STATE, TELEMETRY_READINGS, topic};
use automata_schemas::types::{Health, HealthState, SensorKind, TelemetryReading};
use automata_schemas::{SchemaIds, decode};

use crate::runtime::{Sink, SinkError};

/// The gauge a reading of `kind` is exported as.
pub fn metric_name(kind: SensorKind) -> &'static str {
    match kind {
        SensorKind::Power => "hw_power",
        SensorKind::Temperature => "hw_temperature",
        SensorKind::Fan => "hw_fan_speed",
        SensorKind::Voltage => "hw_voltage",
        SensorKind::Current => "hw_current",
        SensorKind::Energy => "hw_energy",
        SensorKind::Utilization => "hw_utilization",
        SensorKind::Other => "hw_sensor",
    }
}

/// Latest reading per sensor as a gauge; a live view, so it starts from new records.
pub struct FleetMetricsSink {
    ids: SchemaIds,
}

impl FleetMetricsSink {
    /// A sink decoding with the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        FleetMetricsSink { ids }
    }
}

impl Sink for FleetMetricsSink {
    fn name(&self) -> &'static str {
        "fleet-metrics"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![TELEMETRY_READINGS]
    }

    fn start_from(&self) -> StartFrom {
        StartFrom::Latest
    }

    async fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let (Some(spec), Some(id)) = (topic(TELEMETRY_READINGS), self.ids.get(TELEMETRY_READINGS))
        else {
            return Err(SinkError::Write {
                sink: "fleet-metrics",
                message: "no registered schema for telemetry.readings".into(),
            });
        };
        for r in batch {
            let Some(value) = r.record.value.as_deref() else {
                continue;
            };
            match decode::<TelemetryReading>(spec, id, value) {
                Ok(t) => metrics::gauge!(
                    metric_name(t.kind),
                    "server_id" => t.server_id,
                    "sensor_id" => t.sensor_id,
                    "sensor" => t.name,
                    "unit" => t.unit,
                )
                .set(t.value),
                // A metrics view skips what it cannot read; the processors dead-letter it.
                Err(e) => {
                    tracing::debug!(offset = r.offset, error = %e, "unreadable reading skipped")
                }
            }
        }
        Ok(offsets_to_commit(batch))
    }
}

/// The `hw.state` values of the hardware semantic conventions that our health maps to.
const HW_STATES: [&str; 3] = ["ok", "degraded", "failed"];

/// The `hw.state` a health is exported as; `None` for unknown (no evidence: no series).
pub fn hw_state(h: Health) -> Option<&'static str> {
    match h {
        Health::Unknown => None,
        Health::Ok => Some("ok"),
        Health::Warning => Some("degraded"),
        Health::Critical => Some("failed"),
    }
}

/// The `hw.type` of a health subject, from its component id's prefix (`dimm:A1` → `memory`).
pub fn hw_type(component_id: Option<&str>) -> &'static str {
    let Some(c) = component_id.filter(|c| !c.is_empty()) else {
        return "enclosure"; // the server as a whole
    };
    let (prefix, rest) = c.split_once(':').unwrap_or((c, ""));
    match prefix {
        "sensor" => "sensor",
        "log" => hw_type(Some(rest)),
        "cpu" => "cpu",
        "dimm" | "memory" => "memory",
        "psu" => "power_supply",
        "fan" => "fan",
        "disk" | "nvme" | "drive" => "physical_disk",
        "nic" | "port" => "network",
        "gpu" => "gpu",
        "storage" | "controller" => "disk_controller",
        "chassis" => "enclosure",
        _ => "other",
    }
}

/// `hw.status` per server and component from the compacted `health.state`. It never commits
/// offsets and is its own consumer group: every process reads the whole topic from its start, so
/// each process's `/metrics` shows the whole fleet's health, also after a restart.
pub struct HealthMetricsSink {
    ids: SchemaIds,
    group: &'static str,
}

impl HealthMetricsSink {
    /// A sink decoding with the registered schema `ids` (one per process: its group name is made
    /// once and kept for the process's life).
    pub fn new(ids: SchemaIds) -> Self {
        let group = format!("health-metrics-{:016x}", rand::random::<u64>());
        HealthMetricsSink {
            ids,
            group: Box::leak(group.into_boxed_str()),
        }
    }
}

impl Sink for HealthMetricsSink {
    fn name(&self) -> &'static str {
        self.group
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![HEALTH_STATE]
    }

    async fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let (Some(spec), Some(id)) = (topic(HEALTH_STATE), self.ids.get(HEALTH_STATE)) else {
            return Err(SinkError::Write {
                sink: "health-metrics",
                message: "no registered schema for health.state".into(),
            });
        };
        for r in batch {
            let Some(value) = r.record.value.as_deref() else {
                continue;
            };
            let st: HealthState = match decode(spec, id, value) {
                Ok(st) => st,
                Err(e) => {
                    tracing::debug!(offset = r.offset, error = %e, "unreadable health state skipped");
                    continue;
                }
            };
            let Some(now) = hw_state(st.health) else {
                continue;
            };
            let component = st.component_id.as_deref().filter(|c| !c.is_empty());
            let hw_id = component.unwrap_or("server").to_string();
            let kind = hw_type(component);
            for state in HW_STATES {
                metrics::gauge!(
                    "hw_status",
                    "server_id" => st.server_id.clone(),
                    "hw_id" => hw_id.clone(),
                    "hw_type" => kind,
                    "hw_state" => state,
                )
                .set(if state == now { 1.0 } else { 0.0 });
            }
        }
        Ok(Vec::new())
    }
}
