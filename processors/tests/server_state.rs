//! The server-state processor end to end on the embedded log: state out, garbage dead-lettered,
//! and the processor goes on.

use std::collections::HashMap;
use std::time::Duration;

mod common;

use automata_log::{Record, StartFrom, dead_letter_headers};
use automata_processors::server_state::ServerStateProcessor;
use automata_processors::{RunnerConfig, run};
use automata_schemas::catalog::{DIAGNOSES, SERVERS_STATE, TELEMETRY_READINGS, topic};
use automata_schemas::types::ServerState;
use automata_schemas::{SchemaIds, decode, encode, sample};
use common::open_log;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_telemetry_into_state_and_dead_letters_garbage() {
    let (_dir, log) = open_log().await;
    let ids = SchemaIds::new(HashMap::from([
        (TELEMETRY_READINGS.to_string(), 11),
        (SERVERS_STATE.to_string(), 12),
        (DIAGNOSES.to_string(), 13),
    ]));
    let tel = topic(TELEMETRY_READINGS).expect("spec");
    let mut recs = Vec::new();
    for i in 0..10 {
        let r = sample::telemetry_reading("srv-1", i);
        recs.push(Record::new("srv-1", encode(tel, 11, &r).expect("encode")));
    }
    recs.insert(
        3,
        Record::new("srv-1", b"\x00\x00\x00\x00\x0bnot avro".to_vec()),
    );
    recs.insert(5, Record::new("srv-1", b"{\"json\": true}".to_vec()));
    log.send_batch(TELEMETRY_READINGS, recs)
        .await
        .expect("send");

    let shutdown = CancellationToken::new();
    let ids2 = ids.clone();
    let task = tokio::spawn(run(
        log.clone(),
        move || ServerStateProcessor::new(ids2.clone()),
        RunnerConfig::default(),
        shutdown.clone(),
    ));

    let mut dlq = log
        .consumer("check-dlq", &["dead-letters"], StartFrom::Earliest)
        .expect("consumer");
    let mut dead = Vec::new();
    while dead.len() < 2 {
        dead.extend(
            dlq.recv_batch(10, Duration::from_secs(10))
                .await
                .expect("recv"),
        );
    }
    for d in &dead {
        let reason = d
            .record
            .header(dead_letter_headers::REASON)
            .expect("reason header");
        assert!(
            String::from_utf8_lossy(reason).contains("cannot decode"),
            "{reason:?}"
        );
        assert_eq!(
            d.record
                .header(dead_letter_headers::TOPIC)
                .map(|v| v.to_vec()),
            Some(TELEMETRY_READINGS.as_bytes().to_vec())
        );
    }

    let mut states = log
        .consumer("check-state", &[SERVERS_STATE], StartFrom::Earliest)
        .expect("consumer");
    let spec = topic(SERVERS_STATE).expect("spec");
    let mut latest: Option<ServerState> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while latest.as_ref().is_none_or(|s| s.readings_count < 10) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "state never reached 10 readings: {latest:?}"
        );
        for r in states
            .recv_batch(100, Duration::from_millis(500))
            .await
            .expect("recv")
        {
            latest =
                Some(decode(spec, 12, r.record.value.as_deref().expect("value")).expect("decode"));
        }
    }
    let s = latest.expect("state");
    assert_eq!(s.server_id, "srv-1");
    assert!(
        s.latest_readings
            .contains_key("/redfish/v1/Chassis/1U/Sensors/InletTemperature")
    );

    // The processor went on after the bad records and committed its input offsets.
    let committed = log
        .committed(
            "server-state",
            TELEMETRY_READINGS,
            automata_log::partitioner::partition_for_key(b"srv-1", 6),
        )
        .await
        .expect("committed");
    assert_eq!(committed, Some(12));
    shutdown.cancel();
    task.await.expect("join").expect("processor");
}
