//! Property tests of everything that parses bytes from the network or the log: the Confluent
//! header, Avro bodies of every topic, and registry records. Nothing may panic.

use automata_schemas::catalog::topics;
use automata_schemas::registry::{MemoryRegistryLog, SchemaRegistry};
use automata_schemas::types::{InventorySnapshot, ServerState, TelemetryReading};
use automata_schemas::{decode, sample, wire};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn unframe_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = wire::unframe(&bytes);
    }

    #[test]
    fn avro_bodies_of_every_topic_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), id in 0u32..4) {
        let framed = wire::frame(id, &body);
        for t in topics() {
            if t.schema().is_none() { continue; }
            let _ = decode::<serde_json::Value>(t, id, &framed);
            let _ = decode::<TelemetryReading>(t, id, &framed);
            let _ = decode::<ServerState>(t, id, &framed);
            let _ = decode::<InventorySnapshot>(t, id, &framed);
        }
    }

    #[test]
    fn mutated_telemetry_never_panics(i in any::<usize>(), b in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = sample::telemetry_reading_bytes("srv", 1).expect("encode");
        let n = bytes.len();
        bytes[i % n] = b;
        bytes.truncate(cut % (n + 1));
        let spec = automata_schemas::catalog::topic(automata_schemas::catalog::TELEMETRY_READINGS).expect("spec");
        let _ = decode::<TelemetryReading>(spec, sample::SAMPLE_SCHEMA_ID, &bytes);
    }

    #[test]
    fn registry_records_never_panic(key in ".{0,80}", value in ".{0,200}") {
        let r = SchemaRegistry::new(std::sync::Arc::new(MemoryRegistryLog::default()));
        r.apply(key.as_bytes(), Some(value.as_bytes()));
        let k = br#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#;
        r.apply(k, Some(value.as_bytes()));
    }
}
