//! Exports the fleet's latest sensor readings as Prometheus gauges on the service's `/metrics`,
//! named after the OpenTelemetry hardware semantic conventions (`hw.power`, `hw.temperature`,
//! `hw.fan.speed`, …; Prometheus spells the dots as underscores).

use automata_log::{ConsumedRecord, StartFrom, TopicPartitionOffset, offsets_to_commit};
use automata_schemas::catalog::{TELEMETRY_READINGS, topic};
use automata_schemas::types::{SensorKind, TelemetryReading};
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
