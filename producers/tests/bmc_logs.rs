//! The sensor and log poller against real peers: the Redfish simulator (SEL entries published
//! once, cursors persisted across a restart, Server-Sent Events) and OpenIPMI's `ipmi_sim`
//! (IPMI readings and SEL entries; a dead BMC costs only its timeout).

use std::collections::HashSet;
use std::net::UdpSocket as StdUdp;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use automata_bmc::redfish::events::SseOptions;
use automata_bmc::registry::BmcEntry;
use automata_bmc::{ClientOptions, Credentials, Protocol};
use automata_log::MessageLog;
use automata_producers::bmc::{BmcCollectorConfig, LogCollectorConfig, SensorPoller};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{TELEMETRY_LOGS, TELEMETRY_READINGS};
use automata_schemas::types::{HardwareLogEntry, LogSeverity, TelemetryReading};
use automata_simulator::faults::{FaultKind, FaultSpec};
use automata_simulator::{Fleet, SimConfig};

mod common;

use common::{entry, read_all};

async fn open_log(dir: &Path) -> (MessageLog, SchemaIds) {
    common::open_log(dir, &[(TELEMETRY_READINGS, 1), (TELEMETRY_LOGS, 2)]).await
}

async fn log_entries(log: &MessageLog) -> Vec<HardwareLogEntry> {
    read_all(log, TELEMETRY_LOGS, 2).await
}

async fn readings(log: &MessageLog) -> Vec<TelemetryReading> {
    read_all(log, TELEMETRY_READINGS, 1).await
}

/// Panics if any entry (log, id, creation time) was published twice.
fn assert_no_repeats(entries: &[HardwareLogEntry]) {
    let mut seen = HashSet::new();
    for e in entries {
        assert!(
            seen.insert((e.log_id.clone(), e.entry_id.clone(), e.created)),
            "published twice: {e:?}"
        );
    }
}

// ---- the Redfish simulator -------------------------------------------------------------------

async fn fleet() -> Fleet {
    let mut cfg = SimConfig::local(1, 0);
    // The warming model's CPU threshold crossings would add entries to the exact counts below.
    cfg.threshold_events = false;
    common::start_fleet(cfg).await
}

fn redfish_bmcs(f: &Fleet) -> Vec<(BmcEntry, Credentials)> {
    vec![(
        entry("sim-0", &f.endpoints[0].address, Protocol::Redfish),
        Credentials::new("admin", "simulated"),
    )]
}

fn fan_fault() -> FaultSpec {
    FaultSpec {
        server: 0,
        kind: FaultKind::FanFailure,
        at: None,
        duration: None,
        component: Some("0".into()),
    }
}

fn polled_fan_failures(entries: &[HardwareLogEntry]) -> Vec<&HardwareLogEntry> {
    entries
        .iter()
        .filter(|e| {
            e.log_id.starts_with("redfish:/redfish/v1/Systems/") && e.message.contains("failed")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sel_fan_failure_is_published_once_and_a_restarted_poller_publishes_nothing_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(&dir.path().join("log")).await;
    let f = fleet().await;
    let cursor_file = dir.path().join("bmc").join("log-cursors.json");
    let lcfg = LogCollectorConfig {
        sse: false,
        ..LogCollectorConfig::persisted(&cursor_file)
    };
    let mut poller = SensorPoller::with_logs(BmcCollectorConfig::default(), lcfg.clone());

    let r = poller
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    assert_eq!(r.ok, 1, "{r:?}");
    assert!(r.readings > 0 && r.log_entries >= 2, "{r:?}");
    assert!(cursor_file.is_file(), "cursors saved after the append");
    let first = log_entries(&log).await;
    assert_eq!(first.len(), r.log_entries);
    assert!(polled_fan_failures(&first).is_empty(), "{first:?}");
    let server_id = &f.endpoints[0].server_id;
    assert!(first.iter().all(|e| &e.server_id == server_id));

    f.bmcs[0].inject(&fan_fault(), "test").expect("inject");
    poller
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    let after = log_entries(&log).await;
    let fans = polled_fan_failures(&after);
    assert_eq!(fans.len(), 1, "{fans:?}");
    assert_eq!(fans[0].severity, LogSeverity::Critical);
    assert!(fans[0].sensor_id.is_some() || fans[0].component_id.is_some());
    assert_no_repeats(&after);

    // A second sweep: nothing published again.
    poller
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    let again = log_entries(&log).await;
    assert_eq!(polled_fan_failures(&again).len(), 1);
    assert_no_repeats(&again);

    // A fresh poller from the cursor file: nothing old (new threshold crossings may appear).
    drop(poller);
    let mut fresh = SensorPoller::with_logs(BmcCollectorConfig::default(), lcfg);
    let r = fresh
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    assert_eq!(r.ok, 1);
    let restarted = log_entries(&log).await;
    assert_eq!(polled_fan_failures(&restarted).len(), 1);
    assert_no_repeats(&restarted);
    // Whatever the restarted poller published is new: the fan heats the chassis, so fresh
    // threshold crossings may appear, but no entry published before the restart.
    let before: HashSet<_> = again
        .iter()
        .map(|e| (e.log_id.clone(), e.entry_id.clone()))
        .collect();
    for e in &restarted[again.len()..] {
        assert!(
            !before.contains(&(e.log_id.clone(), e.entry_id.clone())),
            "republished after the restart: {e:?}"
        );
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_pushed_over_sse_is_published_as_it_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(&dir.path().join("log")).await;
    let f = fleet().await;
    let lcfg = LogCollectorConfig {
        sse_options: SseOptions {
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            max_failures: 3,
            ..SseOptions::default()
        },
        ..LogCollectorConfig::persisted(dir.path().join("log-cursors.json"))
    };
    let mut poller = SensorPoller::with_logs(BmcCollectorConfig::default(), lcfg);
    poller
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    let start = Instant::now();
    while !poller.sse_connected("sim-0") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the stream never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = log_entries(&log).await.len();
    f.bmcs[0].inject(&fan_fault(), "test").expect("inject");
    // No sweep runs: the entry can only come from the stream.
    let start = Instant::now();
    let pushed = loop {
        let all = log_entries(&log).await;
        let fans: Vec<_> = all
            .iter()
            .filter(|e| e.log_id == "redfish:events" && e.message.contains("failed"))
            .cloned()
            .collect();
        if !fans.is_empty() {
            break (fans, all.len());
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no pushed entry");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pushed.0.len(), 1, "{:?}", pushed.0);
    assert!(pushed.1 > before);
    let e = &pushed.0[0];
    assert_eq!(e.severity, LogSeverity::Critical);
    assert_eq!(&e.server_id, &f.endpoints[0].server_id);
    assert!(e.sensor_id.is_some() || e.component_id.is_some(), "{e:?}");

    // While the stream is connected the log is polled every 10th sweep only; when it is, the
    // SEL's copy of the fault names the same sensor or component as the pushed one, so the
    // health processor files both under one subject (the second changes nothing).
    assert!(poller.sse_connected("sim-0"));
    for _ in 0..9 {
        let r = poller
            .sweep(&log, &ids, redfish_bmcs(&f))
            .await
            .expect("sweep");
        assert_eq!(r.log_entries, 0, "polling slowed while events flow: {r:?}");
    }
    assert!(polled_fan_failures(&log_entries(&log).await).is_empty());
    poller
        .sweep(&log, &ids, redfish_bmcs(&f))
        .await
        .expect("sweep");
    let all = log_entries(&log).await;
    let polled = polled_fan_failures(&all);
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert_eq!(
        polled[0]
            .component_id
            .as_deref()
            .or(polled[0].sensor_id.as_deref()),
        e.component_id.as_deref().or(e.sensor_id.as_deref()),
        "one health subject for both copies"
    );
    assert_no_repeats(&all);

    // A BMC that leaves the registry loses its stream.
    poller.sweep(&log, &ids, Vec::new()).await.expect("sweep");
    assert!(!poller.sse_connected("sim-0"));
    drop(poller);
    f.stop().await;
}

// ---- ipmi_sim (the minimum of bmc/tests/ipmi_sim.rs) -------------------------------------------

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn sim_available() -> bool {
    if have("ipmi_sim") {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("ipmi_sim not installed: CI must `apt-get install -y openipmi`");
    }
    eprintln!("SKIPPED: ipmi_sim not installed (Debian: apt-get install openipmi)");
    false
}

fn free_udp_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

struct Sim {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SYSTEM_UUID: &str = "4c4c4544-0042-3510-8052-b3c04f4d3732";

/// CPU Temp, a Full Sensor Record owned by the BMC: y = 0.5x − 20 °C, thresholds readable.
fn cpu_temp_sdr() -> Vec<u8> {
    let (m, b): (u16, u16) = (5, (-20i16 as u16) & 0x3ff);
    let t: [u8; 6] = [0x8c, 0x78, 0x64, 0xc8, 0xdc, 0xf0]; // LNC LC LNR UNC UC UNR
    let name = "CPU Temp";
    let mut body = vec![
        0x20,
        0,
        0x01,
        0x03,
        0x01,
        0x7f,
        0x68,
        0x01,
        0x01,
        0x95,
        0x0a,
        0x95,
        0x0a,
        0x3f,
        0x3f,
        0,
        1,
        0,
        0,
        (m & 0xff) as u8,
        (((m >> 8) as u8) << 6) | 2,
        (b & 0xff) as u8,
        ((b >> 8) as u8) << 6,
        0,
        (((-1i8 as u8) & 0x0f) << 4) | 1,
        0x07,
        0x80,
        0xff,
        0,
        0xff,
        0,
        t[5],
        t[4],
        t[3],
        t[2],
        t[1],
        t[0],
        2,
        2,
        0,
        0,
        0,
        0xc0 | name.len() as u8,
    ];
    body.extend_from_slice(name.as_bytes());
    let mut r = vec![1, 0, 0x51, 0x01, body.len() as u8];
    r.extend(body);
    r
}

fn start_sim() -> Sim {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = free_udp_port();
    let guid: String = uuid_smbios_bytes(SYSTEM_UUID)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect();
    std::fs::write(
        d.join("lan.conf"),
        format!(
            r#"name "ma-ipmi"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid {guid}
  endlan
  user 2 true  "admin" "secret" admin 10 none md2 md5 straight
"#
        ),
    )
    .expect("lan.conf");
    let sdr: Vec<String> = cpu_temp_sdr().iter().map(|x| format!("{x:#04x}")).collect();
    let events = "000111111111111";
    std::fs::write(
        d.join("bmc.emu"),
        format!(
            "mc_setbmc 0x20\n\
             mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n\
             sel_enable 0x20 1000 0x0a\n\
             main_sdr_add 0x20 {}\n\
             sensor_add 0x20 0 1 0x01 0x01\n\
             sensor_set_threshold 0x20 0 1 settable 111111 0xf0 0xdc 0xc8 0x64 0x78 0x8c\n\
             sensor_set_event_support 0x20 0 1 enable scanning per-state {events} {events} {events} {events}\n\
             sensor_set_value 0x20 0 1 0x96 0\n\
             sel_add 0x20 0x02 0 0 0 0 0x20 0x00 0x04 0x0c 0x10 0x6f 0x01 0xff 0x00\n\
             sel_add 0x20 0x02 0 0 0 0 0x20 0x00 0x04 0x04 0x30 0x01 0x02 0xff 0xff\n\
             mc_enable 0x20\n",
            sdr.join(" ")
        ),
    )
    .expect("emu");
    std::fs::create_dir(d.join("state")).expect("state");
    let log = std::fs::File::create(d.join("sim.log")).expect("log");
    let child = Command::new("ipmi_sim")
        .arg("-c")
        .arg(d.join("lan.conf"))
        .arg("-f")
        .arg(d.join("bmc.emu"))
        .arg("-s")
        .arg(d.join("state"))
        .arg("-n")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn ipmi_sim");
    let sim = Sim {
        child,
        port,
        _dir: dir,
    };
    wait_ready(&sim);
    sim
}

fn uuid_smbios_bytes(u: &str) -> [u8; 16] {
    // SMBIOS order: the first three fields little-endian.
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, x) in b.iter_mut().enumerate() {
        *x = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    b[..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

fn wait_ready(sim: &Sim) {
    let s = StdUdp::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let ping = [0x06, 0, 0xff, 0x06, 0, 0, 0x11, 0xbe, 0x80, 0, 0, 0];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let _ = s.send_to(&ping, ("127.0.0.1", sim.port));
        let mut buf = [0u8; 64];
        if s.recv(&mut buf).is_ok() {
            return;
        }
    }
    panic!("ipmi_sim did not come up on port {}", sim.port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_readings_and_sel_are_published_and_a_dead_bmc_costs_only_its_timeout() {
    if !sim_available() {
        return;
    }
    let sim = start_sim();
    // A BMC that never answers: a bound UDP socket nobody reads.
    let silent = StdUdp::bind("127.0.0.1:0").expect("bind");
    let dead = format!("127.0.0.1:{}", silent.local_addr().expect("addr").port());
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(&dir.path().join("log")).await;
    let cfg = BmcCollectorConfig {
        client: ClientOptions {
            timeout: Duration::from_millis(500),
            retries: 1,
            ..ClientOptions::default()
        },
        ..BmcCollectorConfig::default()
    };
    let cursor_file = dir.path().join("log-cursors.json");
    let lcfg = LogCollectorConfig::persisted(&cursor_file);
    let bmcs = || {
        vec![
            (
                entry("dead", &dead, Protocol::Ipmi),
                Credentials::new("admin", "secret"),
            ),
            (
                entry("sim", &format!("127.0.0.1:{}", sim.port), Protocol::Ipmi),
                Credentials::new("admin", "secret"),
            ),
        ]
    };
    let mut poller = SensorPoller::with_logs(cfg.clone(), lcfg.clone());
    let r = poller.sweep(&log, &ids, bmcs()).await.expect("sweep");
    assert_eq!((r.bmcs, r.ok), (2, 1), "{r:?}");
    // The dead BMC: one unanswered request (0.5 s × 2 attempts), well inside the sweep.
    assert!(r.elapsed_ms < 8_000, "{r:?}");

    let rs = readings(&log).await;
    let cpu: Vec<_> = rs
        .iter()
        .filter(|x| x.sensor_id == "ipmi.20.0.01")
        .collect();
    assert_eq!(cpu.len(), 1, "{rs:?}");
    assert_eq!(cpu[0].server_id, SYSTEM_UUID, "the inventory's server id");
    assert_eq!(cpu[0].source, "ipmi");
    assert!((cpu[0].value - 55.0).abs() < 1.0, "{:?}", cpu[0]);
    assert!(cpu[0].thresholds.is_some());

    let es = log_entries(&log).await;
    let sel: Vec<_> = es.iter().filter(|e| e.log_id == "ipmi:sel").collect();
    assert!(sel.len() >= 2, "{es:?}");
    assert!(
        sel.iter()
            .all(|e| e.server_id == SYSTEM_UUID && e.source == "ipmi")
    );
    assert!(
        sel.iter().any(|e| e.severity == LogSeverity::Critical
            && e.sensor_id.as_deref() == Some("ipmi.20.0.10")),
        "the uncorrectable ECC entry: {sel:?}"
    );

    // Second sweep: readings again, no SEL entry twice.
    let r = poller.sweep(&log, &ids, bmcs()).await.expect("sweep");
    assert_eq!(r.ok, 1);
    assert_eq!(r.log_entries, 0, "{r:?}");
    // A restarted poller reads the SEL from the persisted record id.
    drop(poller);
    let mut fresh = SensorPoller::with_logs(cfg, lcfg);
    let r = fresh.sweep(&log, &ids, bmcs()).await.expect("sweep");
    assert_eq!((r.ok, r.log_entries), (1, 0), "{r:?}");
    assert_no_repeats(&log_entries(&log).await);
    assert_eq!(
        readings(&log)
            .await
            .iter()
            .filter(|x| x.sensor_id == "ipmi.20.0.01")
            .count(),
        3
    );
    drop(silent);
}
