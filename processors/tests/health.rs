//! The health processor driven record by record: one change per threshold crossing, no storm
//! from a sensor hovering at its threshold, recovery only after it holds, inventory statuses, and
//! no re-emission after a restart that restores from its own `health.state` output.

use std::collections::HashMap;

use automata_log::{ConsumedRecord, Record};
use automata_processors::Processor;
use automata_processors::health::{
    HealthConfig, HealthProcessor, ThresholdOverride, compile_glob, state_key,
};
use automata_schemas::catalog::{
    HEALTH_EVENTS, HEALTH_STATE, INVENTORY_SNAPSHOTS, TELEMETRY_LOGS, TELEMETRY_READINGS, topic,
};
use automata_schemas::types::{
    Component, ComponentKind, HardwareLogEntry, Health, HealthEvent, HealthState,
    InventorySnapshot, InventorySource, LogSeverity, SensorKind, SystemIdentity, TelemetryReading,
    Thresholds,
};
use automata_schemas::{SchemaIds, decode, encode};

const SRV: &str = "srv-1";
const T0: i64 = 1_790_000_000_000;

fn ids() -> SchemaIds {
    SchemaIds::new(HashMap::from([
        (TELEMETRY_READINGS.to_string(), 21),
        (INVENTORY_SNAPSHOTS.to_string(), 22),
        (HEALTH_EVENTS.to_string(), 23),
        (HEALTH_STATE.to_string(), 24),
        (TELEMETRY_LOGS.to_string(), 25),
    ]))
}

/// The processor with what it has put out so far, as decoded events and states.
struct Harness {
    p: HealthProcessor,
    offset: i64,
    events: Vec<HealthEvent>,
    states: Vec<(String, HealthState)>,
    raw_states: Vec<Record>,
}

impl Harness {
    fn new(cfg: HealthConfig) -> Self {
        Harness {
            p: HealthProcessor::new(ids(), cfg),
            offset: 0,
            events: Vec::new(),
            states: Vec::new(),
            raw_states: Vec::new(),
        }
    }

    fn feed(&mut self, topic_name: &str, value: Vec<u8>) {
        let r = ConsumedRecord {
            topic: topic_name.to_string(),
            partition: 0,
            offset: self.offset,
            record: Record::new(SRV, value).with_timestamp(T0),
        };
        self.offset += 1;
        let mut out = Vec::new();
        self.p.process(&r, &mut out).expect("processed");
        for (t, rec) in out {
            let value = rec.value.as_deref().expect("value");
            match t.as_str() {
                HEALTH_EVENTS => self
                    .events
                    .push(decode(topic(HEALTH_EVENTS).expect("spec"), 23, value).expect("event")),
                HEALTH_STATE => {
                    let key = String::from_utf8_lossy(rec.key.as_deref().expect("key")).to_string();
                    let st: HealthState =
                        decode(topic(HEALTH_STATE).expect("spec"), 24, value).expect("state");
                    self.states.push((key, st));
                    self.raw_states.push(rec);
                }
                other => panic!("unexpected output topic {other}"),
            }
        }
    }

    fn reading(&mut self, r: &TelemetryReading) {
        let bytes = encode(topic(TELEMETRY_READINGS).expect("spec"), 21, r).expect("encode");
        self.feed(TELEMETRY_READINGS, bytes);
    }

    fn snapshot(&mut self, s: &InventorySnapshot) {
        let bytes = encode(topic(INVENTORY_SNAPSHOTS).expect("spec"), 22, s).expect("encode");
        self.feed(INVENTORY_SNAPSHOTS, bytes);
    }

    fn log(&mut self, e: &HardwareLogEntry) {
        let bytes = encode(topic(TELEMETRY_LOGS).expect("spec"), 25, e).expect("encode");
        self.feed(TELEMETRY_LOGS, bytes);
    }

    fn clear(&mut self) {
        self.events.clear();
        self.states.clear();
    }

    fn events_for(&self, component: Option<&str>) -> Vec<&HealthEvent> {
        self.events
            .iter()
            .filter(|e| e.component_id.as_deref() == component)
            .collect()
    }
}

fn cpu_temp(seq: i64, value: f64) -> TelemetryReading {
    TelemetryReading {
        timestamp: T0 + seq * 1000,
        server_id: SRV.into(),
        sensor_id: "redfish.1U.CPU1Temp".into(),
        name: "CPU1 Temp".into(),
        kind: SensorKind::Temperature,
        value,
        unit: "Cel".into(),
        component_id: Some("cpu:1".into()),
        thresholds: Some(Thresholds {
            lower_critical: None,
            lower_caution: None,
            upper_caution: Some(80.0),
            upper_critical: Some(90.0),
        }),
        source: "redfish".into(),
    }
}

const CPU: &str = "sensor:redfish.1U.CPU1Temp";

#[test]
fn a_crossing_makes_one_event_and_one_state_per_subject() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    // Baseline OK: states for the sensor and the server, but no event.
    assert!(h.events.is_empty(), "{:?}", h.events);
    let keys: Vec<&str> = h.states.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec![state_key(SRV, Some(CPU)), state_key(SRV, None)]);
    h.clear();

    h.reading(&cpu_temp(1, 92.0));
    for i in 2..10 {
        h.reading(&cpu_temp(i, 92.0 + (i % 3) as f64));
    }
    let ev = h.events_for(Some(CPU));
    assert_eq!(ev.len(), 1, "{:?}", h.events);
    let e = ev[0];
    assert_eq!((e.previous, e.health), (Health::Ok, Health::Critical));
    assert_eq!(e.classification, "overtemperature");
    assert_eq!(
        e.message,
        "CPU1 Temp at 92.0 °C is above its critical threshold 90.0 °C"
    );
    assert_eq!(e.raised_at, T0 + 1000);
    assert!(
        e.evidence
            .iter()
            .any(|x| x.kind == "reading" && x.detail.contains("92.0 °C"))
    );
    assert!(
        e.evidence
            .iter()
            .any(|x| x.kind == "threshold" && x.detail == "upper_critical = 90.0 °C (BMC)")
    );
    // The server rolls up to CRITICAL once, with the cause.
    let srv = h.events_for(None);
    assert_eq!(srv.len(), 1, "{:?}", h.events);
    assert_eq!(srv[0].health, Health::Critical);
    assert!(srv[0].message.contains("CPU1 Temp"), "{}", srv[0].message);
    assert_eq!(h.states.len(), 2);
    assert_eq!(h.states[0].1.component_id.as_deref(), Some(CPU));
    assert_eq!(h.states[1].1.component_id, None);
    assert_eq!(h.p.health(SRV, None), Some(Health::Critical));
}

#[test]
fn caution_then_critical_are_two_changes() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    h.reading(&cpu_temp(1, 82.0));
    h.reading(&cpu_temp(2, 83.0));
    h.reading(&cpu_temp(3, 95.0));
    let ev = h.events_for(Some(CPU));
    let got: Vec<(Health, Health)> = ev.iter().map(|e| (e.previous, e.health)).collect();
    assert_eq!(
        got,
        vec![
            (Health::Ok, Health::Warning),
            (Health::Warning, Health::Critical)
        ]
    );
    assert_eq!(
        ev[0].message,
        "CPU1 Temp at 82.0 °C is above its caution threshold 80.0 °C"
    );
}

#[test]
fn a_value_oscillating_at_the_threshold_changes_once() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    h.clear();
    for i in 1..=100 {
        let v = if i % 2 == 0 { 89.5 } else { 90.5 };
        h.reading(&cpu_temp(i, v));
    }
    assert_eq!(h.events_for(Some(CPU)).len(), 1, "{:?}", h.events);
    assert_eq!(h.events_for(None).len(), 1);
    assert_eq!(h.states.len(), 2);
    assert_eq!(h.p.health(SRV, Some(CPU)), Some(Health::Critical));
}

#[test]
fn recovery_needs_clear_after_readings_past_the_margin() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    h.reading(&cpu_temp(1, 92.0));
    h.clear();
    // Inside the margin (90 - 2 % = 88.2): still critical, however long.
    for i in 2..10 {
        h.reading(&cpu_temp(i, 89.0));
    }
    assert!(h.events.is_empty(), "{:?}", h.events);
    // One good reading, then one back in the band: the streak starts over.
    h.reading(&cpu_temp(10, 70.0));
    h.reading(&cpu_temp(11, 89.0));
    h.reading(&cpu_temp(12, 70.0));
    assert!(h.events.is_empty(), "{:?}", h.events);
    h.reading(&cpu_temp(13, 71.0));
    let ev = h.events_for(Some(CPU));
    assert_eq!(ev.len(), 1, "{:?}", h.events);
    let e = ev[0];
    assert_eq!((e.previous, e.health), (Health::Critical, Health::Ok));
    assert_eq!(
        e.classification, "overtemperature",
        "a recovery names what cleared"
    );
    assert_eq!(e.raised_at, T0 + 13_000);
    assert_eq!(
        e.evidence.iter().filter(|x| x.kind == "reading").count(),
        2,
        "both readings of the streak are the evidence: {:?}",
        e.evidence
    );
    assert_eq!(h.events_for(None).len(), 1);
    let st = &h.states[0].1;
    assert_eq!((st.health, st.classification.as_str()), (Health::Ok, ""));
    h.clear();
    for i in 14..20 {
        h.reading(&cpu_temp(i, 70.0));
    }
    assert!(h.events.is_empty() && h.states.is_empty());
}

#[test]
fn critical_drops_to_warning_before_ok() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    h.reading(&cpu_temp(1, 95.0));
    h.clear();
    h.reading(&cpu_temp(2, 84.0));
    h.reading(&cpu_temp(3, 84.0));
    let ev = h.events_for(Some(CPU));
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].previous, ev[0].health),
        (Health::Critical, Health::Warning)
    );
}

#[test]
fn a_restarted_processor_does_not_re_emit() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&cpu_temp(0, 70.0));
    h.reading(&cpu_temp(1, 92.0));
    let disk = snapshot(
        10,
        vec![drive("disk:SN1", &[("predicted_failure", "true")])],
        InventorySource::Redfish,
    );
    h.snapshot(&disk);
    assert_eq!(h.events.len(), 3, "{:?}", h.events);

    // A new instance restores from everything the first one wrote to health.state.
    let mut again = Harness::new(HealthConfig::default());
    for (i, rec) in h.raw_states.iter().enumerate() {
        again.p.restore(&ConsumedRecord {
            topic: HEALTH_STATE.into(),
            partition: 0,
            offset: i as i64,
            record: rec.clone(),
        });
    }
    assert_eq!(again.p.health(SRV, None), Some(Health::Critical));
    // The same facts again (a replay of uncommitted input, or the next poll): nothing new.
    again.reading(&cpu_temp(1, 92.0));
    again.reading(&cpu_temp(2, 89.9));
    again.snapshot(&disk);
    let mut later = disk.clone();
    later.collected_at += 1;
    later.source = InventorySource::Agent;
    later.components[0].properties.clear();
    again.snapshot(&later);
    assert!(again.events.is_empty(), "{:?}", again.events);
    assert!(again.states.is_empty(), "{:?}", again.states);
    // And it still recovers as it should.
    again.reading(&cpu_temp(3, 70.0));
    again.reading(&cpu_temp(4, 70.0));
    let ev = again.events_for(Some(CPU));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].previous, Health::Critical);
    let srv = again.events_for(None);
    assert_eq!(srv.len(), 1, "{:?}", again.events);
    assert_eq!(
        (srv[0].previous, srv[0].health),
        (Health::Critical, Health::Warning),
        "the drive's predicted failure still holds the server at WARNING"
    );
}

fn fan(seq: i64, rpm: f64) -> TelemetryReading {
    TelemetryReading {
        timestamp: T0 + seq * 1000,
        server_id: SRV.into(),
        sensor_id: "redfish.1U.thermal.fan.3".into(),
        name: "Fan 3".into(),
        kind: SensorKind::Fan,
        value: rpm,
        unit: "RPM".into(),
        component_id: None,
        thresholds: Some(Thresholds {
            lower_critical: Some(0.0),
            lower_caution: None,
            upper_caution: None,
            upper_critical: None,
        }),
        source: "redfish".into(),
    }
}

#[test]
fn a_stopped_fan_is_critical() {
    let mut h = Harness::new(HealthConfig::default());
    h.reading(&fan(0, 6200.0));
    h.reading(&fan(1, 0.0));
    let ev = h.events_for(Some("sensor:redfish.1U.thermal.fan.3"));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].health, Health::Critical);
    assert_eq!(ev[0].classification, "fan-failure");
    assert!(ev[0].message.contains("stopped"), "{}", ev[0].message);
}

#[test]
fn a_lost_psu_input_is_critical_without_thresholds() {
    let mut h = Harness::new(HealthConfig::default());
    let mut r = fan(0, 230.0);
    r.kind = SensorKind::Voltage;
    r.unit = "V".into();
    r.name = "PSU1 Input Voltage".into();
    r.sensor_id = "redfish.1U.psu1.vin".into();
    r.thresholds = None;
    h.reading(&r);
    r.value = 0.0;
    r.timestamp += 1000;
    h.reading(&r);
    let ev = h.events_for(Some("sensor:redfish.1U.psu1.vin"));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].classification, "psu-failure");
    assert_eq!(ev[0].health, Health::Critical);
}

#[test]
fn operator_overrides_replace_the_bmc_thresholds() {
    let cfg = HealthConfig {
        overrides: vec![ThresholdOverride {
            sensor: Some("CPU? Temp".into()),
            kind: Some(SensorKind::Temperature),
            thresholds: Thresholds {
                upper_critical: Some(75.0),
                ..Default::default()
            },
        }],
        ..Default::default()
    };
    let mut h = Harness::new(cfg);
    h.reading(&cpu_temp(0, 70.0));
    h.reading(&cpu_temp(1, 76.0));
    let ev = h.events_for(Some(CPU));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].health, Health::Critical);
    assert!(
        ev[0]
            .evidence
            .iter()
            .any(|x| x.detail == "upper_critical = 75.0 °C (override)"),
        "{:?}",
        ev[0].evidence
    );
    // A sensor without thresholds of its own and no matching override is not judged.
    let mut other = cpu_temp(2, 150.0);
    other.name = "Inlet Temp".into();
    other.sensor_id = "inlet".into();
    other.thresholds = None;
    h.clear();
    h.reading(&other);
    assert!(h.events.is_empty() && h.states.is_empty());
}

#[test]
fn override_config_reads_from_toml_like_json() {
    let cfg: HealthConfig = serde_json::from_str(
        r#"{"overrides":[{"sensor":"CPU*","kind":"TEMPERATURE","upper_critical":85.0}],"clear_after":3}"#,
    )
    .expect("config");
    assert_eq!(cfg.clear_after, 3);
    assert_eq!(cfg.hysteresis, 0.02);
    assert_eq!(cfg.overrides[0].thresholds.upper_critical, Some(85.0));
    assert_eq!(cfg.overrides[0].thresholds.upper_caution, None);
}

fn drive(id: &str, props: &[(&str, &str)]) -> Component {
    comp(id, ComponentKind::Disk, props)
}

fn comp(id: &str, kind: ComponentKind, props: &[(&str, &str)]) -> Component {
    Component {
        component_id: id.into(),
        kind,
        name: format!("Drive {id}"),
        manufacturer: None,
        model: None,
        serial: None,
        part_number: None,
        firmware_version: None,
        location: None,
        properties: props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn snapshot(seq: i64, components: Vec<Component>, source: InventorySource) -> InventorySnapshot {
    InventorySnapshot {
        server_id: SRV.into(),
        source,
        collected_at: T0 + seq * 1000,
        system: SystemIdentity::default(),
        bios: None,
        components,
        errors: Vec::new(),
    }
}

#[test]
fn inventory_status_and_predicted_failure_are_judged() {
    let mut h = Harness::new(HealthConfig::default());
    let ok = [("health", "OK")];
    h.snapshot(&snapshot(
        0,
        vec![
            drive("disk:SN1", &ok),
            comp("psu:1", ComponentKind::Psu, &ok),
            comp("dimm:A1", ComponentKind::Dimm, &ok),
        ],
        InventorySource::Redfish,
    ));
    assert!(h.events.is_empty());
    h.snapshot(&snapshot(
        1,
        vec![
            drive(
                "disk:SN1",
                &[("health", "OK"), ("predicted_failure", "true")],
            ),
            comp("psu:1", ComponentKind::Psu, &[("health", "Critical")]),
            comp("dimm:A1", ComponentKind::Dimm, &[("health", "Warning")]),
        ],
        InventorySource::Redfish,
    ));
    let class = |c: &str| {
        h.events_for(Some(c))
            .iter()
            .map(|e| (e.health, e.classification.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        class("disk:SN1"),
        vec![(Health::Warning, "disk-predicted-failure".to_string())]
    );
    assert_eq!(
        class("psu:1"),
        vec![(Health::Critical, "psu-failure".to_string())]
    );
    assert_eq!(
        class("dimm:A1"),
        vec![(Health::Warning, "memory-errors".to_string())]
    );
    let srv = h.events_for(None);
    assert_eq!(srv.len(), 1, "one roll-up per snapshot: {:?}", h.events);
    assert_eq!(srv[0].health, Health::Critical);
    assert_eq!(srv[0].classification, "psu-failure");
    h.clear();
    // The PSU disappears from the next snapshot: that alone changes nothing.
    h.snapshot(&snapshot(
        2,
        vec![
            drive(
                "disk:SN1",
                &[("health", "OK"), ("predicted_failure", "true")],
            ),
            comp("dimm:A1", ComponentKind::Dimm, &[("health", "Warning")]),
        ],
        InventorySource::Redfish,
    ));
    assert!(h.events.is_empty() && h.states.is_empty(), "{:?}", h.events);
    // A late, older snapshot changes nothing either.
    h.snapshot(&snapshot(
        1,
        vec![comp("psu:1", ComponentKind::Psu, &ok)],
        InventorySource::Redfish,
    ));
    assert!(h.events.is_empty());
    assert_eq!(h.p.health(SRV, Some("psu:1")), Some(Health::Critical));
}

#[test]
fn globs_match_like_a_shell() {
    let m = |p: &str, t: &str| compile_glob(p).matches(t);
    assert!(m("CPU* Temp", "CPU1 Temp"));
    assert!(m("*", ""));
    assert!(m("rack-?-*", "rack-3-srv-12"));
    assert!(!m("rack-?-*", "rack-12-srv"));
    assert!(m("*a*b", "xxaxxab"));
    assert!(!m("CPU*", "GPU1"));
    // Not a glob: matched literally rather than refused.
    assert!(m("Temp [", "Temp ["));
}

fn sel(id: u32, at_s: i64, severity: LogSeverity, message: &str) -> HardwareLogEntry {
    HardwareLogEntry {
        server_id: SRV.into(),
        log_id: "redfish:/redfish/v1/Systems/1/LogServices/SEL".into(),
        entry_id: id.to_string(),
        created: T0 + at_s * 1000,
        observed_at: T0 + at_s * 1000 + 500,
        severity,
        message: message.into(),
        message_id: Some("Platform.1.0.Memory".into()),
        component_id: Some("dimm:A1".into()),
        sensor_id: None,
        source: "redfish".into(),
    }
}

#[test]
fn a_storm_of_log_entries_is_one_change_and_an_escalation_another() {
    let mut h = Harness::new(HealthConfig::default());
    for i in 0..50 {
        h.log(&sel(
            i,
            i64::from(i),
            LogSeverity::Warning,
            "Correctable ECC on DIMM A1",
        ));
    }
    let comp = h.events_for(Some("log:dimm:A1"));
    assert_eq!(comp.len(), 1, "{comp:?}");
    assert_eq!(comp[0].health, Health::Warning);
    assert_eq!(comp[0].classification, "memory-errors");
    assert!(
        comp[0].evidence[0].detail.contains("SEL #0"),
        "{:?}",
        comp[0].evidence
    );
    assert_eq!(h.events_for(None).len(), 1);
    h.clear();

    h.log(&sel(
        50,
        60,
        LogSeverity::Critical,
        "Uncorrectable ECC on DIMM A1",
    ));
    let comp = h.events_for(Some("log:dimm:A1"));
    assert_eq!(comp.len(), 1);
    assert_eq!(
        (comp[0].previous, comp[0].health),
        (Health::Warning, Health::Critical)
    );
    assert_eq!(h.events_for(None).len(), 1, "the server escalates once");
    h.clear();

    // An informational entry about the same DIMM clears it.
    h.log(&sel(
        51,
        120,
        LogSeverity::Info,
        "DIMM A1 returned to normal",
    ));
    let comp = h.events_for(Some("log:dimm:A1"));
    assert_eq!(comp.len(), 1);
    assert_eq!(comp[0].health, Health::Ok);
    assert_eq!(
        comp[0].classification, "memory-errors",
        "a recovery keeps its class"
    );
}

#[test]
fn log_problems_clear_after_the_hold_and_old_entries_are_history() {
    let cfg = HealthConfig {
        log_hold_secs: 600,
        ..Default::default()
    };
    let mut h = Harness::new(cfg);
    // Read on the first poll, an hour after it was made: history, not a current problem.
    let mut old = sel(1, 0, LogSeverity::Critical, "Fan 2 failed");
    old.observed_at = old.created + 3_600_000;
    h.log(&old);
    assert!(h.events.is_empty(), "{:?}", h.events);

    h.log(&sel(2, 4000, LogSeverity::Critical, "Fan 2 failed"));
    assert_eq!(h.events_for(Some("log:dimm:A1")).len(), 1);
    h.clear();
    // Readings keep coming; 11 minutes without a new entry clears the log subject.
    h.reading(&cpu_temp(4300, 50.0));
    assert!(h.events_for(Some("log:dimm:A1")).is_empty());
    h.reading(&cpu_temp(4000 + 661, 50.0));
    let cleared = h.events_for(Some("log:dimm:A1"));
    assert_eq!(cleared.len(), 1, "{:?}", h.events);
    assert_eq!(cleared[0].health, Health::Ok);
    assert_eq!(h.p.health(SRV, None), Some(Health::Ok));
}

#[test]
fn a_restart_restores_log_problems_without_new_events() {
    let mut h = Harness::new(HealthConfig::default());
    h.log(&sel(1, 10, LogSeverity::Critical, "Uncorrectable ECC"));
    assert_eq!(h.events_for(Some("log:dimm:A1")).len(), 1);
    let mut fresh = HealthProcessor::new(ids(), HealthConfig::default());
    for (i, rec) in h.raw_states.iter().enumerate() {
        fresh.restore(&ConsumedRecord {
            topic: HEALTH_STATE.into(),
            partition: 0,
            offset: i as i64,
            record: rec.clone(),
        });
    }
    h.p = fresh;
    h.clear();
    h.log(&sel(2, 20, LogSeverity::Critical, "Uncorrectable ECC"));
    assert!(h.events.is_empty(), "{:?}", h.events);
    assert_eq!(h.p.health(SRV, Some("log:dimm:A1")), Some(Health::Critical));
}

#[test]
fn a_log_entry_is_classed_by_the_part_that_failed_not_the_part_it_sits_on() {
    let cases = [
        ("Fan CPUFan1 failed.", "redfish.1U.CPUFan1", "fan-failure"),
        (
            "CPU #1 Temperature: Upper Critical - going high, reading 91.",
            "redfish.1U.CPU1Temp",
            "overtemperature",
        ),
        ("Uncorrectable ECC on DIMM A1", "dimm:A1", "memory-errors"),
        ("Processor IERR", "cpu:CPU1", "cpu-errors"),
        ("Login attempt failed", "bmc:BMC", "hardware-log"),
    ];
    for (i, (message, component, want)) in cases.into_iter().enumerate() {
        let mut h = Harness::new(HealthConfig::default());
        let mut e = sel(i as u32, 0, LogSeverity::Critical, message);
        e.message_id = None;
        e.component_id = Some(component.into());
        h.log(&e);
        let got = h.events_for(Some(&format!("log:{component}")));
        assert_eq!(got.len(), 1, "{message}: {got:?}");
        assert_eq!(got[0].classification, want, "{message}");
    }
}
