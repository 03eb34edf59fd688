//! Redfish log ingestion and event streams: DMTF's mockups and real vendor captures mapped
//! entry by entry; the simulator over real HTTP for dedup, clearing, paging, malformed entries
//! and Server-Sent Events; a raw socket server for streams that misbehave.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use automata_bmc::redfish::events::{self, SseError, SseMessage, SseOptions};
use automata_bmc::redfish::logs::{self, LogCursor, LogOptions, LogOrder};
use automata_bmc::{ClientOptions, Credentials, RedfishClient};
use automata_schemas::types::{HardwareLogEntry, LogSeverity};
use automata_simulator::faults::{FaultKind, FaultSpec};
use automata_simulator::mockup::Mockup;
use automata_simulator::{Fleet, SimConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

// ---- helpers ------------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start(mut cfg: SimConfig) -> Fleet {
    for _ in 0..20 {
        let base = free_port();
        if base > 60_000 {
            continue;
        }
        cfg.addressing = automata_simulator::Addressing::PortPerServer {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            first_port: base,
        };
        if let Ok(f) = Fleet::start(cfg.clone()).await {
            return f;
        }
    }
    panic!("no run of free ports for the simulator");
}

async fn fleet(page_size: usize) -> Fleet {
    let mut cfg = SimConfig::local(1, 0);
    cfg.page_size = page_size;
    // The model warming up crosses CPU thresholds at its own pace: these tests count entries.
    cfg.threshold_events = false;
    start(cfg).await
}

fn client(address: &str) -> RedfishClient {
    RedfishClient::new(
        address,
        Credentials::new("admin", "simulated"),
        ClientOptions::default(),
    )
    .expect("client")
}

fn fault(kind: FaultKind, component: Option<&str>) -> FaultSpec {
    FaultSpec {
        server: 0,
        kind,
        at: None,
        duration: None,
        component: component.map(str::to_string),
    }
}

fn shared_mockups() -> Option<PathBuf> {
    let base = std::env::var_os("MA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let d = base.join("redfish-mockups");
    d.is_dir().then_some(d)
}

fn read_json(p: &Path) -> Value {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fixture(rel: &str) -> Value {
    read_json(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/vendor-logs")
            .join(rel),
    )
}

fn expected_severity(v: &Value) -> LogSeverity {
    match v
        .get("Severity")
        .or_else(|| v.get("MessageSeverity"))
        .and_then(Value::as_str)
    {
        Some("Critical") => LogSeverity::Critical,
        Some("Warning") => LogSeverity::Warning,
        _ => LogSeverity::Info,
    }
}

/// Checks one mapped entry against the LogEntry JSON it came from.
fn check_entry(raw: &Value, e: &HardwareLogEntry, log_id: &str, observed: i64) {
    let id = raw["Id"].as_str().expect("Id");
    assert_eq!(e.entry_id, id);
    assert_eq!(e.log_id, log_id);
    assert_eq!(e.severity, expected_severity(raw), "entry {id}");
    match raw.get("Message").and_then(Value::as_str) {
        Some(m) if !m.trim().is_empty() => assert_eq!(e.message, m.trim(), "entry {id}"),
        _ => {
            let mid = raw["MessageId"].as_str().unwrap_or_default();
            assert!(e.message.starts_with(mid), "entry {id}: {}", e.message);
        }
    }
    assert_eq!(
        e.message_id.as_deref(),
        raw.get("MessageId").and_then(Value::as_str)
    );
    let created = raw
        .get("Created")
        .and_then(Value::as_str)
        .and_then(logs::parse_time)
        .unwrap_or(observed);
    assert_eq!(e.created, created, "entry {id}");
    assert_eq!(e.source, "redfish");
}

fn map_all(coll: &Value, log_id: &str) -> Vec<HardwareLogEntry> {
    coll["Members"]
        .as_array()
        .expect("Members")
        .iter()
        .map(|m| logs::map_entry(m, "srv", log_id, 7).expect("maps"))
        .collect()
}

// ---- (a) DMTF mockups, as files -----------------------------------------------------------

fn entries_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            entries_files(&p, out);
        } else if p.ends_with("Entries/index.json") && p.to_string_lossy().contains("/LogServices/")
        {
            out.push(p);
        }
    }
}

#[test]
fn every_dmtf_mockup_log_entry_maps_to_its_id_severity_and_message() {
    let Some(root) = shared_mockups() else {
        eprintln!("shared/redfish-mockups not found: skipped");
        return;
    };
    let mut files = Vec::new();
    entries_files(&root, &mut files);
    assert!(files.len() >= 10, "log entry collections in the mockups");
    let mut checked = 0;
    for f in &files {
        let coll = read_json(f);
        let service = coll["@odata.id"]
            .as_str()
            .and_then(|u| u.strip_suffix("/Entries"))
            .unwrap_or("x")
            .to_string();
        let log_id = format!("redfish:{service}");
        let members = coll["Members"].as_array().cloned().unwrap_or_default();
        for m in &members {
            let e = logs::map_entry(m, "srv", &log_id, 7)
                .unwrap_or_else(|why| panic!("{}: {why}", f.display()));
            check_entry(m, &e, &log_id, 7);
            checked += 1;
        }
        // Each entry also as its own resource (`Entries/<id>/index.json`), where there is one.
        for m in &members {
            let id = m["Id"].as_str().unwrap_or_default();
            let own = f.with_file_name(id).join("index.json");
            if own.is_file() {
                let v = read_json(&own);
                let e = logs::map_entry(&v, "srv", &log_id, 7).expect("maps");
                check_entry(&v, &e, &log_id, 7);
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} entries checked");
    // A concrete one: public-rackmount1's system log, entry 1.
    let f = root.join("public-rackmount1/Systems/437XR1138R2/LogServices/Log1/Entries/index.json");
    let v = read_json(&f);
    let e = map_all(
        &v,
        "redfish:/redfish/v1/Systems/437XR1138R2/LogServices/Log1",
    );
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].message, "Temperature threshold exceeded");
    assert_eq!(e[0].severity, LogSeverity::Critical);
    assert_eq!(e[0].created, 1_331_131_440_000);
    assert_eq!(e[0].component_id.as_deref(), Some("chassis:1U"));
    assert_eq!(
        logs::detect_order(v["Members"].as_array().expect("m")),
        Some(LogOrder::OldestFirst)
    );
}

#[tokio::test]
async fn the_simulator_serves_public_rackmount1_logs_and_poll_finds_every_entry() {
    let Some(root) = shared_mockups() else {
        eprintln!("shared/redfish-mockups not found: skipped");
        return;
    };
    let dir = root.join("public-rackmount1");
    let m = Mockup::load(&dir).expect("mockup");
    let mut cfg = SimConfig::local(1, 0);
    cfg.mockups = vec![Arc::new(m)];
    let f = start(cfg).await;
    let c = client(&f.endpoints[0].address);
    let mut cursors = HashMap::new();
    let p = logs::poll_logs(&c, &f.endpoints[0].server_id, &mut cursors)
        .await
        .expect("poll");
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    for (service, coll) in [
        (
            "/redfish/v1/Systems/437XR1138R2/LogServices/Log1",
            "Systems/437XR1138R2/LogServices/Log1/Entries/index.json",
        ),
        (
            "/redfish/v1/Managers/BMC/LogServices/Log",
            "Managers/BMC/LogServices/Log/Entries/index.json",
        ),
    ] {
        let log_id = format!("redfish:{service}");
        let file = read_json(&dir.join(coll));
        for raw in file["Members"].as_array().expect("members") {
            let id = raw["Id"].as_str().expect("id");
            let got = p
                .entries
                .iter()
                .find(|e| e.log_id == log_id && e.entry_id == id)
                .unwrap_or_else(|| panic!("{log_id} entry {id} not polled: {:?}", p.entries));
            assert_eq!(got.server_id, f.endpoints[0].server_id);
            check_entry(raw, got, &log_id, got.observed_at);
        }
    }
    c.logout().await;
    f.stop().await;
}

// ---- (b) vendor captures --------------------------------------------------------------------

#[test]
fn vendor_log_captures_map_and_their_order_is_detected() {
    let cases = [
        (
            "dell/sel.json",
            "dell/sel-entries.json",
            LogOrder::NewestFirst,
        ),
        (
            "dell/lclog.json",
            "dell/lclog-entries.json",
            LogOrder::NewestFirst,
        ),
        (
            "hpe/iml.json",
            "hpe/iml-entries.json",
            LogOrder::OldestFirst,
        ),
        (
            "hpe/iel.json",
            "hpe/iel-entries.json",
            LogOrder::OldestFirst,
        ),
        (
            "lenovo/platform-log.json",
            "lenovo/platform-log-entries.json",
            LogOrder::OldestFirst,
        ),
        (
            "supermicro/log1.json",
            "supermicro/log1-entries.json",
            LogOrder::OldestFirst,
        ),
    ];
    for (service, entries, order) in cases {
        let s = logs::service_info(&fixture(service)).expect("a log service");
        let coll = fixture(entries);
        assert_eq!(
            coll["@odata.id"].as_str(),
            Some(s.entries.as_str()),
            "{service}"
        );
        assert_eq!(s.log_id, format!("redfish:{}", s.uri));
        let members = coll["Members"].as_array().expect("members");
        assert_eq!(logs::detect_order(members), Some(order), "{entries}");
        let mapped = map_all(&coll, &s.log_id);
        assert_eq!(mapped.len(), members.len());
        for (raw, e) in members.iter().zip(&mapped) {
            check_entry(raw, e, &s.log_id, 7);
        }
    }
    assert_eq!(
        logs::service_info(&fixture("hpe/iml.json")).map(|s| s.id),
        Some("IML".into())
    );
    assert_eq!(
        logs::service_info(&fixture("dell/lclog.json")).and_then(|s| s.entry_type),
        Some("OEM".into())
    );
    // Dell: a critical Lifecycle Controller entry, and one about the iDRAC itself.
    let lc = map_all(&fixture("dell/lclog-entries.json"), "l");
    let crit: Vec<_> = lc
        .iter()
        .filter(|e| e.severity == LogSeverity::Critical)
        .collect();
    assert_eq!(crit.len(), 1);
    assert_eq!(crit[0].entry_id, "83432");
    assert_eq!(crit[0].message_id.as_deref(), Some("IDRAC.2.7.SWC9005"));
    assert_eq!(lc[0].component_id.as_deref(), Some("bmc:iDRAC.Embedded.1"));
    // HPE IML: power supply warnings.
    let iml = map_all(&fixture("hpe/iml-entries.json"), "l");
    assert_eq!(iml[2].severity, LogSeverity::Warning);
    assert!(iml[2].message.contains("Power Supply"));
    // Lenovo: OriginOfCondition names a sensor: the id telemetry gives it.
    let lenovo = map_all(&fixture("lenovo/platform-log-entries.json"), "l");
    assert_eq!(lenovo[0].sensor_id.as_deref(), Some("redfish.1.209L0"));
    assert_eq!(lenovo[0].created, 1_721_340_055_851);
    // Supermicro: every severity appears.
    let smc = map_all(&fixture("supermicro/log1-entries.json"), "l");
    for s in [
        LogSeverity::Info,
        LogSeverity::Warning,
        LogSeverity::Critical,
    ] {
        assert!(smc.iter().any(|e| e.severity == s), "{s:?}");
    }
}

#[test]
fn origin_of_condition_names_sensors_and_inventory_components() {
    let cases: [(&str, Option<&str>, Option<&str>); 12] = [
        (
            "/redfish/v1/Chassis/1/Sensors/CPU1Temp",
            Some("redfish.1.CPU1Temp"),
            None,
        ),
        (
            "/redfish/v1/Chassis/1U/Thermal#/Fans/0",
            Some("redfish.1U.thermal.fan.0"),
            None,
        ),
        (
            "/redfish/v1/Chassis/1U/Thermal#/Temperatures/2",
            Some("redfish.1U.thermal.temperature.2"),
            None,
        ),
        (
            "/redfish/v1/Chassis/1U/Power#/Voltages/1",
            Some("redfish.1U.power.voltage.1"),
            None,
        ),
        ("/redfish/v1/Chassis/1U/Thermal", None, Some("chassis:1U")),
        (
            "/redfish/v1/Systems/1/Processors/CPU1",
            None,
            Some("cpu:CPU1"),
        ),
        (
            "/redfish/v1/Systems/1/Memory/DIMM1",
            None,
            Some("dimm:DIMM1"),
        ),
        ("/redfish/v1/Managers/BMC", None, Some("bmc:BMC")),
        (
            "/redfish/v1/Chassis/1U/PowerSubsystem/PowerSupplies/0",
            None,
            Some("psu:1U/0"),
        ),
        (
            "/redfish/v1/Systems/1/Storage/1/Controllers/0",
            None,
            Some("storage:1/0"),
        ),
        ("/redfish/v1/Systems/1", None, None),
        (
            "/redfish/v1/Systems/1/Storage/1/Drives/0",
            None,
            Some("/redfish/v1/Systems/1/Storage/1/Drives/0"),
        ),
    ];
    for (uri, sensor, component) in cases {
        let (s, c) = logs::origin_ids(uri);
        assert_eq!(s.as_deref(), sensor, "{uri}");
        assert_eq!(c.as_deref(), component, "{uri}");
    }
}

#[test]
fn messages_fall_back_to_the_message_id_and_severities_to_message_severity() {
    let v = json!({"Id": "9", "MessageId": "Base.1.0.Test", "MessageArgs": ["a", 3],
                   "MessageSeverity": "Warning", "Created": "not a date"});
    let e = logs::map_entry(&v, "s", "l", 42).expect("maps");
    assert_eq!(e.message, "Base.1.0.Test(a, 3)");
    assert_eq!(e.severity, LogSeverity::Warning);
    assert_eq!(
        e.created, 42,
        "an unreadable Created falls back to the observation time"
    );
    assert!(logs::map_entry(&json!({"Id": 5}), "s", "l", 0).is_err());
    assert!(logs::map_entry(&json!({"Id": "5", "Severity": 2}), "s", "l", 0).is_err());
    assert!(logs::map_entry(&json!("x"), "s", "l", 0).is_err());
}

// ---- (c) the simulator over HTTP ------------------------------------------------------------

async fn poll(c: &RedfishClient, cursors: &mut HashMap<String, LogCursor>) -> logs::LogPoll {
    let p = logs::poll_logs(c, "srv", cursors).await.expect("poll");
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p
}

#[tokio::test]
async fn a_fan_failure_is_one_new_entry_once_and_clearing_the_log_starts_again() {
    let f = fleet(0).await;
    let c = client(&f.endpoints[0].address);
    let mut cursors = HashMap::new();
    let first = poll(&c, &mut cursors).await;
    assert!(
        first.entries.len() >= 2,
        "the mockup's entries on a first poll"
    );
    let again = poll(&c, &mut cursors).await.entries;
    assert!(again.is_empty(), "nothing new on a second poll: {again:?}");

    f.bmcs[0]
        .inject(&fault(FaultKind::FanFailure, Some("0")), "test")
        .expect("inject");
    let p = poll(&c, &mut cursors).await;
    assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
    let e = &p.entries[0];
    assert_eq!(e.severity, LogSeverity::Critical);
    assert!(e.message.contains("failed"), "{}", e.message);
    assert!(e.log_id.starts_with("redfish:/redfish/v1/Systems/"));
    assert!(e.sensor_id.is_some() || e.component_id.is_some(), "{e:?}");
    assert!(poll(&c, &mut cursors).await.entries.is_empty(), "no repeat");

    // ClearLog: ids start again at 1; the next fault is exactly one entry.
    let log = e.log_id.trim_start_matches("redfish:").to_string();
    c.post(&format!("{log}/Actions/LogService.ClearLog"), &json!({}))
        .await
        .expect("ClearLog");
    assert!(
        poll(&c, &mut cursors).await.entries.is_empty(),
        "a cleared log"
    );
    f.bmcs[0]
        .inject(&fault(FaultKind::DiskPredictedFailure, None), "test")
        .expect("inject");
    let p = poll(&c, &mut cursors).await;
    assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
    assert_eq!(
        p.entries[0].entry_id, "1",
        "the simulator restarts ids after a clear"
    );
    assert_eq!(p.entries[0].severity, LogSeverity::Warning);
    assert!(poll(&c, &mut cursors).await.entries.is_empty());

    // Clear without polling in between, then a fault: the id and time restart under the cursor.
    c.post(&format!("{log}/Actions/LogService.ClearLog"), &json!({}))
        .await
        .expect("ClearLog");
    f.bmcs[0]
        .inject(&fault(FaultKind::PsuLoss, Some("0")), "test")
        .expect("inject");
    let p = poll(&c, &mut cursors).await;
    assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
    assert!(p.entries[0].message.contains("lost its input"));
    assert!(poll(&c, &mut cursors).await.entries.is_empty());
    // The cursor survives serialisation (the collector keeps it across restarts).
    let saved = serde_json::to_string(&cursors).expect("ser");
    let mut restored: HashMap<String, LogCursor> = serde_json::from_str(&saved).expect("de");
    assert!(poll(&c, &mut restored).await.entries.is_empty());
    c.logout().await;
    f.stop().await;
}

async fn restart_bmc(c: &RedfishClient) {
    // Each Manager.Reset appends one entry ("The BMC restarted.").
    c.post(
        "/redfish/v1/Managers/BMC/Actions/Manager.Reset",
        &json!({"ResetType": "GracefulRestart"}),
    )
    .await
    .expect("reset");
}

#[tokio::test]
async fn paged_logs_are_read_whole_oldest_first_and_only_to_the_cursor_newest_first() {
    let f = fleet(2).await;
    let c = client(&f.endpoints[0].address);
    for _ in 0..7 {
        restart_bmc(&c).await;
    }
    let opts = LogOptions::default();
    let (services, errors) = logs::discover(&c, &opts).await.expect("discover");
    assert!(errors.is_empty(), "{errors:?}");
    let mut cursors = HashMap::new();
    let p = logs::poll_services(&c, "srv", &services, &mut cursors, &opts).await;
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let restarts = p
        .entries
        .iter()
        .filter(|e| e.message == "The BMC restarted.")
        .count();
    assert_eq!(restarts, 7, "every page read");
    let ids: Vec<(&str, &str)> = p
        .entries
        .iter()
        .map(|e| (e.log_id.as_str(), e.entry_id.as_str()))
        .collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        uniq.len(),
        ids.len(),
        "no entry twice across pages: {ids:?}"
    );

    // A first poll bounded to the newest N.
    let small = LogOptions {
        max_entries: 3,
        ..LogOptions::default()
    };
    let mut fresh = HashMap::new();
    let p = logs::poll_services(&c, "srv", &services, &mut fresh, &small).await;
    let sys: Vec<_> = p
        .entries
        .iter()
        .filter(|e| e.log_id.contains("/Systems/"))
        .collect();
    assert_eq!(sys.len(), 3);
    assert!(sys.iter().all(|e| e.message == "The BMC restarted."));

    // Newest first: one new entry costs one page per log.
    f.bmcs[0].set_log_newest_first(true);
    restart_bmc(&c).await;
    // The restart ended the session: log in again before counting.
    c.get("/redfish/v1/Systems").await.expect("systems");
    let before = c.requests_sent();
    let p = logs::poll_services(&c, "srv", &services, &mut cursors, &opts).await;
    let sent = c.requests_sent() - before;
    assert_eq!(p.entries.len(), 1, "{:?}", p.entries);
    assert_eq!(sent, services.len() as u64, "one page per log, no more");
    let sys_log = &p.entries[0].log_id;
    assert_eq!(cursors[sys_log].order, Some(LogOrder::NewestFirst));
    assert!(
        logs::poll_services(&c, "srv", &services, &mut cursors, &opts)
            .await
            .entries
            .is_empty()
    );
    c.logout().await;
    f.stop().await;
}

#[tokio::test]
async fn a_malformed_log_entry_is_an_error_and_the_others_are_read() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../simulator/builtin/public-rackmount1");
    let tmp = tempfile::tempdir().expect("tmp");
    copy_dir(&src, tmp.path());
    let entries = tmp
        .path()
        .join("Systems/437XR1138R2/LogServices/Log1/Entries");
    std::fs::create_dir_all(entries.join("3")).expect("mkdir");
    std::fs::write(
        entries.join("3/index.json"),
        json!({
            "@odata.type": "#LogEntry.v1_15_0.LogEntry",
            "@odata.id": "/redfish/v1/Systems/437XR1138R2/LogServices/Log1/Entries/3",
            "Id": "3", "Name": "bad", "Severity": 3, "Message": {"not": "text"},
            "Created": 17,
        })
        .to_string(),
    )
    .expect("write");
    let m = Mockup::load(tmp.path()).expect("mockup");
    let mut cfg = SimConfig::local(1, 0);
    cfg.mockups = vec![Arc::new(m)];
    cfg.threshold_events = false;
    let f = start(cfg).await;
    let c = client(&f.endpoints[0].address);
    let mut cursors = HashMap::new();
    let p = logs::poll_logs(&c, "srv", &mut cursors)
        .await
        .expect("poll");
    let sys: Vec<_> = p
        .entries
        .iter()
        .filter(|e| e.log_id.contains("/Systems/"))
        .collect();
    assert!(sys.iter().any(|e| e.entry_id == "1") && sys.iter().any(|e| e.entry_id == "2"));
    assert!(!sys.iter().any(|e| e.entry_id == "3"));
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert!(p.errors[0].contains("entry 3"), "{}", p.errors[0]);
    // Reported once: the bad entry is remembered like the others.
    let p = logs::poll_logs(&c, "srv", &mut cursors)
        .await
        .expect("poll");
    assert!(p.entries.is_empty() && p.errors.is_empty(), "{p:?}");
    c.logout().await;
    f.stop().await;
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            std::fs::create_dir_all(&t).expect("mkdir");
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).expect("copy");
        }
    }
}

// ---- (d) Server-Sent Events -----------------------------------------------------------------

fn quick() -> SseOptions {
    SseOptions {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        max_failures: 3,
        ..SseOptions::default()
    }
}

async fn next_msg(rx: &mut mpsc::Receiver<SseMessage>) -> SseMessage {
    match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        Ok(Some(m)) => m,
        other => panic!("no message from the event stream: {other:?}"),
    }
}

async fn next_entry(rx: &mut mpsc::Receiver<SseMessage>) -> HardwareLogEntry {
    loop {
        if let SseMessage::Entry(e) = next_msg(rx).await {
            return e;
        }
    }
}

#[tokio::test]
async fn sse_delivers_a_fault_once_and_survives_a_dropped_connection() {
    let f = fleet(0).await;
    let c = Arc::new(client(&f.endpoints[0].address));
    let es = c
        .get("/redfish/v1/EventService")
        .await
        .expect("EventService");
    assert_eq!(
        events::supports_sse(&es).as_deref(),
        Some("/redfish/v1/EventService/SSE")
    );
    let (tx, mut rx) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let task = {
        let (c, cancel) = (c.clone(), cancel.clone());
        tokio::spawn(async move { events::run_sse(&c, "srv", tx, cancel, &quick()).await })
    };
    assert_eq!(next_msg(&mut rx).await, SseMessage::Connected);

    f.bmcs[0]
        .inject(&fault(FaultKind::FanFailure, Some("0")), "test")
        .expect("inject");
    // Sensors crossing thresholds on their own may log too: wait for the fan's event.
    let e = loop {
        let e = next_entry(&mut rx).await;
        if e.message.contains("failed") {
            break e;
        }
    };
    assert_eq!(e.log_id, "redfish:events");
    assert_eq!(e.severity, LogSeverity::Critical);
    assert!(e.message.contains("failed"), "{}", e.message);
    assert!(e.sensor_id.is_some() || e.component_id.is_some(), "{e:?}");
    // Nothing else about that fan arrives.
    let quiet = tokio::time::timeout(Duration::from_millis(400), async {
        loop {
            if let SseMessage::Entry(x) = next_msg(&mut rx).await
                && x.message.contains("failed")
            {
                return x;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a second fan event: {quiet:?}");

    // A BMC restart drops the stream (and the session); the event it logs while the client is
    // away arrives after the reconnect, by Last-Event-ID.
    restart_bmc(&c).await;
    let mut saw_problem = false;
    let restarted = loop {
        match next_msg(&mut rx).await {
            SseMessage::Problem(_) => saw_problem = true,
            SseMessage::Connected => {}
            SseMessage::Entry(x) if x.message == "The BMC restarted." => break x,
            SseMessage::Entry(_) => {}
        }
    };
    assert!(saw_problem, "the drop was reported");
    assert_eq!(restarted.severity, LogSeverity::Info);
    f.bmcs[0]
        .inject(&fault(FaultKind::DiskPredictedFailure, None), "test")
        .expect("inject");
    let d = loop {
        let d = next_entry(&mut rx).await;
        if d.message.contains("predicts") {
            break d;
        }
    };
    assert_eq!(d.severity, LogSeverity::Warning);
    assert!(d.message.contains("predicts its failure"));
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), task).await;
    assert!(matches!(r, Ok(Ok(Ok(())))), "{r:?}");
    c.logout().await;
    f.stop().await;
}

/// A one-request-per-connection HTTP server: session logins get 404 (so basic auth is used),
/// the SSE path gets `body` with `content_type`.
async fn raw_server(content_type: &'static str, body: fn() -> Vec<u8>) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if head.starts_with("POST") {
                    let _ = s
                        .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                    return;
                }
                // The service root and EventService point at `/sse`; anything else is `body`.
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (ct, data) = match path.trim_end_matches('/') {
                    "/redfish/v1" => (
                        "application/json",
                        br#"{"EventService":{"@odata.id":"/redfish/v1/EventService"}}"#.to_vec(),
                    ),
                    "/redfish/v1/EventService" => (
                        "application/json",
                        br#"{"ServiceEnabled":true,"ServerSentEventUri":"/sse"}"#.to_vec(),
                    ),
                    _ => (content_type, body()),
                };
                let h = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    data.len()
                );
                let _ = s.write_all(h.as_bytes()).await;
                for chunk in data.chunks(4096) {
                    if s.write_all(chunk).await.is_err() {
                        return;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_garbage_stream_is_an_error_not_unbounded_memory() {
    let opts = SseOptions::default();
    let endless = raw_server("text/event-stream", || vec![b'x'; 1 << 20]).await;
    let c = client(&endless);
    let mut conn = events::connect(&c, "/sse", None, &opts)
        .await
        .expect("connect");
    assert!(matches!(
        conn.next_event().await,
        Err(SseError::LineTooLong { .. })
    ));

    let junk = raw_server("text/event-stream", || b"hello world\n".repeat(1000)).await;
    let c = client(&junk);
    let mut conn = events::connect(&c, "/sse", None, &opts)
        .await
        .expect("connect");
    assert!(matches!(
        conn.next_event().await,
        Err(SseError::Garbage { .. })
    ));

    let huge = raw_server("text/event-stream", || {
        let mut v = Vec::new();
        for _ in 0..40 {
            v.extend_from_slice(b"data: ");
            v.extend(std::iter::repeat_n(b'y', 60_000));
            v.push(b'\n');
        }
        v
    })
    .await;
    let c = client(&huge);
    let mut conn = events::connect(&c, "/sse", None, &opts)
        .await
        .expect("connect");
    assert!(matches!(
        conn.next_event().await,
        Err(SseError::EventTooLarge { .. })
    ));

    let json = raw_server("application/json", || b"{}".to_vec()).await;
    let c = client(&json);
    assert!(matches!(
        events::connect(&c, "/sse", None, &opts).await,
        Err(SseError::NotEventStream { .. })
    ));

    // A stream that ends is reported; good events before it arrive.
    let short = raw_server("text/event-stream", || {
        b": hi\n\nid: 7\nevent: Event\ndata: {\"Events\":[{\"EventId\":\"a\",\ndata: \"Severity\":\"Critical\",\"Message\":\"m\"}]}\n\n".to_vec()
    })
    .await;
    let c = client(&short);
    let mut conn = events::connect(&c, "/sse", None, &opts)
        .await
        .expect("connect");
    let ev = conn.next_event().await.expect("an event");
    assert_eq!(ev.id.as_deref(), Some("7"));
    let mapped = events::event_entries(&ev.data, ev.id.as_deref(), "s", 1);
    let e = mapped[0].as_ref().expect("maps");
    assert_eq!(
        (e.entry_id.as_str(), e.severity),
        ("a", LogSeverity::Critical)
    );
    assert!(matches!(conn.next_event().await, Err(SseError::Closed)));

    // A BMC that accepts the stream and hangs up at once, every time: run_sse gives up (the
    // caller then polls logs) instead of hammering it.
    let hangs_up = raw_server("text/event-stream", Vec::new).await;
    let c = client(&hangs_up);
    let (tx, mut rx) = mpsc::channel(64);
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        events::run_sse(&c, "s", tx, CancellationToken::new(), &quick()),
    )
    .await;
    assert!(
        matches!(r, Ok(Err(SseError::GaveUp { failures: 3, .. }))),
        "{r:?}"
    );
    let mut problems = 0;
    while let Ok(m) = rx.try_recv() {
        problems += usize::from(matches!(m, SseMessage::Problem(_)));
    }
    assert_eq!(problems, 2, "each drop before giving up is reported");
}

#[tokio::test]
async fn without_sse_the_caller_is_told_to_poll() {
    assert_eq!(events::supports_sse(&json!({"ServiceEnabled": true})), None);
    assert_eq!(
        events::supports_sse(&json!({"ServiceEnabled": false, "ServerSentEventUri": "/x"})),
        None
    );
    // A BMC whose SSE URI answers JSON: not an event stream, so run_sse returns at once.
    let f = fleet(0).await;
    let c = client(&f.endpoints[0].address);
    let r = events::connect(&c, "/redfish/v1/EventService", None, &quick()).await;
    assert!(matches!(r, Err(SseError::NotEventStream { .. })), "{r:?}");
    c.logout().await;
    f.stop().await;
}

// ---- cursor rules against a scripted BMC ----------------------------------------------------

type Routes = Arc<std::sync::Mutex<HashMap<String, Value>>>;

const ENTRIES: &str = "/redfish/v1/Systems/1/LogServices/SEL/Entries";

/// A BMC serving `routes` (path with query → JSON body) and counting GETs of the entries.
async fn scripted_bmc(routes: Routes, entry_gets: Arc<std::sync::atomic::AtomicUsize>) -> String {
    {
        let mut r = routes.lock().expect("routes");
        r.insert(
            "/redfish/v1".into(),
            json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}}),
        );
        r.insert(
            "/redfish/v1/Systems".into(),
            json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}),
        );
        r.insert(
            "/redfish/v1/Systems/1".into(),
            json!({"@odata.id": "/redfish/v1/Systems/1", "Id": "1",
                   "LogServices": {"@odata.id": "/redfish/v1/Systems/1/LogServices"}}),
        );
        r.insert(
            "/redfish/v1/Systems/1/LogServices".into(),
            json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1/LogServices/SEL"}]}),
        );
        r.insert(
            "/redfish/v1/Systems/1/LogServices/SEL".into(),
            json!({"@odata.id": "/redfish/v1/Systems/1/LogServices/SEL", "Id": "SEL",
                   "LogEntryType": "SEL", "Entries": {"@odata.id": ENTRIES}}),
        );
    }
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (routes, gets) = (routes.clone(), entry_gets.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let path = path.trim_end_matches('/').replace("%24", "$");
                if path.starts_with(ENTRIES) {
                    gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let body = routes.lock().ok().and_then(|r| r.get(&path).cloned());
                let (status, body) = match (head.starts_with("GET"), body) {
                    (true, Some(b)) => ("200 OK", b.to_string()),
                    _ => ("404 Not Found", String::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn entry(id: u64, secs: i64, msg: &str) -> Value {
    let t = chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("time");
    json!({"@odata.id": format!("{ENTRIES}/{id}"), "Id": id.to_string(),
           "Created": t.to_rfc3339(), "Severity": "OK", "Message": msg})
}

/// Serves `entries` in pages of `page`, with or without `Members@odata.count`.
fn serve(routes: &Routes, entries: &[Value], page: usize, count: bool) {
    let mut r = routes.lock().expect("routes");
    r.retain(|k, _| !k.starts_with(ENTRIES));
    let chunks: Vec<&[Value]> = if entries.is_empty() {
        vec![&[]]
    } else {
        entries.chunks(page).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let key = if i == 0 {
            ENTRIES.to_string()
        } else {
            format!("{ENTRIES}?$skip={}", i * page)
        };
        let mut v = json!({"@odata.id": ENTRIES, "Members": c});
        if count {
            v["Members@odata.count"] = json!(entries.len());
        }
        if i + 1 < chunks.len() {
            v["Members@odata.nextLink"] = json!(format!("{ENTRIES}?$skip={}", (i + 1) * page));
        }
        r.insert(key, v);
    }
}

fn msgs(p: &logs::LogPoll) -> Vec<String> {
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p.entries.iter().map(|e| e.message.clone()).collect()
}

#[tokio::test]
async fn oldest_first_repeats_wraps_and_clears_follow_the_cursor_rules() {
    let routes: Routes = Arc::default();
    let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client(&scripted_bmc(routes.clone(), gets.clone()).await);
    let mut cur = HashMap::new();
    let e = |i: u64| entry(i, i as i64 * 10, &format!("m{i}"));

    // The same entry twice on one page and again across pages: each once.
    serve(&routes, &[e(1), e(1), e(2), e(2), e(3)], 2, true);
    let p = logs::poll_logs(&c, "s", &mut cur).await.expect("poll");
    assert_eq!(msgs(&p), ["m1", "m2", "m3"]);
    serve(&routes, &[e(1), e(2), e(3), e(4), e(5)], 2, true);
    assert_eq!(
        msgs(&logs::poll_logs(&c, "s", &mut cur).await.expect("poll")),
        ["m4", "m5"]
    );

    // A log at capacity that wrapped: the cursor's entry (5) fell off; newer entries are new.
    serve(&routes, &[e(8), e(9), e(10), e(11), e(12)], 2, true);
    assert_eq!(
        msgs(&logs::poll_logs(&c, "s", &mut cur).await.expect("poll")),
        ["m8", "m9", "m10", "m11", "m12"]
    );
    assert!(
        logs::poll_logs(&c, "s", &mut cur)
            .await
            .expect("poll")
            .entries
            .is_empty()
    );

    // Cleared, ids reused, no Members@odata.count: the hand count shrank; new entries once.
    serve(&routes, &[e(12)], 2, false);
    let _ = logs::poll_logs(&c, "s", &mut cur).await.expect("poll");
    let reused = [
        entry(1, 500, "after clear 1"),
        entry(2, 510, "after clear 2"),
    ];
    serve(&routes, &reused, 2, false);
    assert_eq!(
        msgs(&logs::poll_logs(&c, "s", &mut cur).await.expect("poll")),
        ["after clear 1", "after clear 2"]
    );
    assert!(
        logs::poll_logs(&c, "s", &mut cur)
            .await
            .expect("poll")
            .entries
            .is_empty()
    );
    let log = "redfish:/redfish/v1/Systems/1/LogServices/SEL";
    assert!(cur[log].resets >= 1);
    assert_eq!(cur[log].order, Some(LogOrder::OldestFirst));
}

#[tokio::test]
async fn newest_first_reads_only_to_the_cursor_and_a_clear_starts_again() {
    let routes: Routes = Arc::default();
    let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = client(&scripted_bmc(routes.clone(), gets.clone()).await);
    let mut cur = HashMap::new();
    let e = |i: u64| entry(i, i as i64 * 10, &format!("m{i}"));
    let newest_first = |n: u64| (1..=n).rev().map(e).collect::<Vec<_>>();

    serve(&routes, &newest_first(9), 2, true);
    let p = logs::poll_logs(&c, "s", &mut cur).await.expect("poll");
    assert_eq!(p.entries.len(), 9);
    assert_eq!(p.entries[0].message, "m1", "emitted oldest first");
    // Two new entries: pages [11,10] and [9,8]: the second page holds the cursor; no more read.
    serve(&routes, &newest_first(11), 2, true);
    let before = gets.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        msgs(&logs::poll_logs(&c, "s", &mut cur).await.expect("poll")),
        ["m10", "m11"]
    );
    assert_eq!(gets.load(std::sync::atomic::Ordering::Relaxed) - before, 2);
    assert!(
        logs::poll_logs(&c, "s", &mut cur)
            .await
            .expect("poll")
            .entries
            .is_empty()
    );

    // Cleared; ids restart under the cursor's, later in time.
    serve(&routes, &[entry(1, 900, "fresh")], 2, true);
    assert_eq!(
        msgs(&logs::poll_logs(&c, "s", &mut cur).await.expect("poll")),
        ["fresh"]
    );
    assert!(
        logs::poll_logs(&c, "s", &mut cur)
            .await
            .expect("poll")
            .entries
            .is_empty()
    );

    // A first poll of a long log takes the newest N only, reading no further than needed.
    let mut fresh_cursors = HashMap::new();
    serve(&routes, &newest_first(50), 5, true);
    let before = gets.load(std::sync::atomic::Ordering::Relaxed);
    let opts = LogOptions {
        max_entries: 10,
        ..LogOptions::default()
    };
    let p = logs::poll_logs_with(&c, "s", &mut fresh_cursors, &opts)
        .await
        .expect("poll");
    assert_eq!(msgs(&p).first().map(String::as_str), Some("m41"));
    assert_eq!(p.entries.len(), 10);
    assert_eq!(gets.load(std::sync::atomic::Ordering::Relaxed) - before, 2);
}
