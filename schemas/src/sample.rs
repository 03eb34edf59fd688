//! Realistic sample records, for benchmarks and tests.

use crate::catalog::{TELEMETRY_READINGS, topic};
use crate::codec::{CodecError, encode};
use crate::types::{SensorKind, TelemetryReading, Thresholds};

/// The schema id samples are framed with when no registry assigned one.
pub const SAMPLE_SCHEMA_ID: u32 = 1;

/// A typical inlet-temperature reading of `server`.
pub fn telemetry_reading(server: &str, seq: u64) -> TelemetryReading {
    TelemetryReading {
        timestamp: 1_790_000_000_000 + seq as i64,
        server_id: server.to_string(),
        sensor_id: "/redfish/v1/Chassis/1U/Sensors/InletTemperature".into(),
        name: "Inlet Temperature".into(),
        kind: SensorKind::Temperature,
        value: 21.0 + (seq % 100) as f64 / 10.0,
        unit: "Cel".into(),
        component_id: Some("/redfish/v1/Chassis/1U".into()),
        thresholds: Some(Thresholds {
            lower_critical: Some(5.0),
            lower_caution: Some(10.0),
            upper_caution: Some(40.0),
            upper_critical: Some(45.0),
        }),
        source: "redfish".into(),
    }
}

/// That reading, encoded in the Confluent wire format.
pub fn telemetry_reading_bytes(server: &str, seq: u64) -> Result<Vec<u8>, CodecError> {
    let spec =
        topic(TELEMETRY_READINGS).ok_or_else(|| CodecError::NotAvro(TELEMETRY_READINGS.into()))?;
    encode(spec, SAMPLE_SCHEMA_ID, &telemetry_reading(server, seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode;
    use crate::types::{InventorySnapshot, ServerState};

    #[test]
    fn telemetry_round_trips_at_a_compact_size() {
        let bytes = telemetry_reading_bytes("srv-00001", 3).expect("encode");
        assert!((150..=220).contains(&bytes.len()), "{} bytes", bytes.len());
        let spec = topic(TELEMETRY_READINGS).expect("topic");
        let back: TelemetryReading = decode(spec, SAMPLE_SCHEMA_ID, &bytes).expect("decode");
        assert_eq!(back, telemetry_reading("srv-00001", 3));
    }

    #[test]
    fn server_state_and_inventory_round_trip() {
        let spec = topic(crate::catalog::SERVERS_STATE).expect("topic");
        let mut s = ServerState {
            server_id: "s1".into(),
            model: Some("R650".into()),
            last_seen: 5,
            ..Default::default()
        };
        s.firmware.insert("bios".into(), "1.2.3".into());
        s.latest_readings.insert("inlet".into(), 22.5);
        let b = encode(spec, 9, &s).expect("encode");
        assert_eq!(decode::<ServerState>(spec, 9, &b).expect("decode"), s);

        let spec = topic(crate::catalog::INVENTORY_SNAPSHOTS).expect("topic");
        let inv = InventorySnapshot {
            server_id: "s1".into(),
            source: crate::types::InventorySource::Agent,
            collected_at: 1,
            system: Default::default(),
            bios: None,
            components: vec![crate::types::Component {
                component_id: "cpu:0".into(),
                kind: crate::types::ComponentKind::Cpu,
                name: "CPU 0".into(),
                manufacturer: None,
                model: Some("EPYC".into()),
                serial: None,
                part_number: None,
                firmware_version: Some("0xa0011d1".into()),
                location: Some("CPU0".into()),
                properties: Default::default(),
            }],
            errors: vec![],
        };
        let b = encode(spec, 2, &inv).expect("encode");
        assert_eq!(
            decode::<InventorySnapshot>(spec, 2, &b).expect("decode"),
            inv
        );
    }

    #[test]
    fn bad_bytes_are_errors_not_panics() {
        let spec = topic(TELEMETRY_READINGS).expect("topic");
        let good = telemetry_reading_bytes("s", 1).expect("encode");
        for n in 0..good.len() {
            let _ = decode::<TelemetryReading>(spec, SAMPLE_SCHEMA_ID, &good[..n]);
        }
        assert!(
            decode::<TelemetryReading>(spec, SAMPLE_SCHEMA_ID, &good[..good.len() - 1]).is_err()
        );
        assert!(
            decode::<TelemetryReading>(spec, 2, &good).is_err(),
            "wrong schema id"
        );
        let mut garbage = good.clone();
        for b in garbage.iter_mut().skip(5) {
            *b = 0xff;
        }
        assert!(decode::<TelemetryReading>(spec, SAMPLE_SCHEMA_ID, &garbage).is_err());
    }
}
