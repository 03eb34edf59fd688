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
    fn tpm_registrations_and_log_entries_round_trip() {
        use crate::catalog::{TELEMETRY_LOGS, TPM_ENROLLMENTS};
        use crate::codec::encode;
        use crate::types::{HardwareLogEntry, LogSeverity, TpmRegistration, TpmStatus};
        let reg = TpmRegistration {
            server_id: "srv-1".into(),
            ek_fingerprint: "ab".repeat(32),
            ek_certificate_der: Some(vec![0x30, 0x82, 0, 1]),
            ak_name: "000b".into(),
            ak_public: vec![0, 1, 2, 255],
            status: TpmStatus::EkChangedAwaitingApproval,
            ek_public: None,
            certificate_status: "trusted".into(),
            attempted_at: Some(1),
            ..Default::default()
        };
        let spec = topic(TPM_ENROLLMENTS).expect("topic");
        let bytes = encode(spec, 9, &reg).expect("encode");
        let back: TpmRegistration = decode(spec, 9, &bytes).expect("decode");
        assert_eq!(back, reg);
        let entry = HardwareLogEntry {
            server_id: "srv-1".into(),
            log_id: "ipmi:sel".into(),
            entry_id: "0x0012".into(),
            created: 5,
            observed_at: 6,
            severity: LogSeverity::Critical,
            message: "Fan #0x30 | Lower Critical going low | Asserted".into(),
            message_id: None,
            component_id: Some("fan:1".into()),
            sensor_id: None,
            source: "ipmi".into(),
        };
        let spec = topic(TELEMETRY_LOGS).expect("topic");
        let back: HardwareLogEntry =
            decode(spec, 9, &encode(spec, 9, &entry).expect("encode")).expect("decode");
        assert_eq!(back, entry);
    }

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
