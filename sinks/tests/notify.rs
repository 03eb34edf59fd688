//! The notifier against real receivers on loopback: an HTTP server (axum) that records webhook
//! and Slack POSTs, and a real SMTP server (Python's aiosmtpd, storing to a Maildir).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automata_log::{ConsumedRecord, Record};
use automata_schemas::catalog::{HEALTH_EVENTS, topic};
use automata_schemas::types::{Evidence, Health, HealthEvent};
use automata_schemas::{SchemaIds, encode};
use automata_sinks::Sink;
use automata_sinks::notify::{EmailConfig, NotifyConfig, NotifySink, Route, Scope, Secret};
use axum::Router;
use axum::extract::{Json, State};
use axum::http::{StatusCode, Uri};
use axum::routing::post;

const SCHEMA_ID: u32 = 31;

#[derive(Clone, Default)]
struct Hits {
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    attempts: Arc<AtomicU32>,
}

impl Hits {
    fn on(&self, path: &str) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn record(State(h): State<Hits>, uri: Uri, Json(v): Json<serde_json::Value>) -> StatusCode {
    h.got
        .lock()
        .expect("lock")
        .push((uri.path().to_string(), v));
    StatusCode::OK
}

/// 500 twice, then takes the POST.
async fn flaky(State(h): State<Hits>, uri: Uri, Json(v): Json<serde_json::Value>) -> StatusCode {
    if h.attempts.fetch_add(1, Ordering::SeqCst) < 2 {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    record(State(h), uri, Json(v)).await
}

async fn broken(State(h): State<Hits>) -> StatusCode {
    h.attempts.fetch_add(1, Ordering::SeqCst);
    StatusCode::SERVICE_UNAVAILABLE
}

/// An HTTP receiver on loopback; returns its base URL and what it received.
async fn receiver() -> (String, Hits) {
    let hits = Hits::default();
    let app = Router::new()
        .route("/hook/{token}", post(record))
        .route("/slack/{*path}", post(record))
        .route("/flaky", post(flaky))
        .route("/broken", post(broken))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), hits)
}

/// aiosmtpd on loopback, storing what it accepts into a Maildir; stopped on drop.
struct Smtp {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Smtp {
    fn start() -> Smtp {
        let venv = std::env::var_os("MA_TEST_VENV")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/metal-automata/venv"))
            })
            .expect("a venv");
        let python = venv.join("bin/python");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = std::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("maildir"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start aiosmtpd with {} ({e}); pip install aiosmtpd",
                    python.display()
                )
            });
        let mut smtp = Smtp { child, dir, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = smtp.child.try_wait() {
                panic!("aiosmtpd exited: {status} (is aiosmtpd installed in the venv?)");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        smtp.port = port;
        smtp
    }

    /// The messages received so far, as text.
    fn messages(&self) -> Vec<String> {
        let new = self.dir.path().join("maildir/new");
        let Ok(rd) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn event(server: &str, component: &str, health: Health, at: i64) -> HealthEvent {
    HealthEvent {
        server_id: server.into(),
        component_id: Some(component.into()),
        previous: Health::Ok,
        health,
        classification: "overtemperature".into(),
        message: "CPU1 Temp at 92.0 °C is above its critical threshold 90.0 °C".into(),
        evidence: vec![Evidence {
            kind: "reading".into(),
            detail: "CPU1 Temp = 92.0 °C".into(),
            observed_at: at,
        }],
        raised_at: at,
    }
}

fn records(events: &[HealthEvent], first_offset: i64) -> Vec<ConsumedRecord> {
    let spec = topic(HEALTH_EVENTS).expect("spec");
    events
        .iter()
        .enumerate()
        .map(|(i, e)| ConsumedRecord {
            topic: HEALTH_EVENTS.into(),
            partition: 2,
            offset: first_offset + i as i64,
            record: Record::new(
                e.server_id.clone(),
                encode(spec, SCHEMA_ID, e).expect("encode"),
            ),
        })
        .collect()
}

fn ids() -> SchemaIds {
    SchemaIds::new(HashMap::from([(HEALTH_EVENTS.to_string(), SCHEMA_ID)]))
}

fn route(name: &str) -> Route {
    Route {
        name: name.into(),
        min_health: Health::Warning,
        servers: "*".into(),
        scope: Scope::All,
        recoveries: true,
        rate_per_minute: 30,
        webhook: None,
        slack: None,
        email: None,
    }
}

fn config(routes: Vec<Route>) -> NotifyConfig {
    NotifyConfig {
        routes,
        retry_base_ms: 10,
        timeout_secs: 5,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_is_one_webhook_one_slack_message_one_email_and_a_repeat_is_none() {
    let (base, hits) = receiver().await;
    let smtp = Smtp::start();
    let mut r = route("oncall");
    r.webhook = Some(Secret::new(format!("{base}/hook/t0ken")));
    r.slack = Some(Secret::new(format!("{base}/slack/T000/B000/xoxb")));
    r.email = Some(EmailConfig {
        to: vec!["oncall@example.com".into()],
        from: "Metal Automata <automata@example.com>".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port: smtp.port,
        starttls: false,
        username: None,
        password: None,
    });
    let mut sink = NotifySink::new(ids(), config(vec![r])).expect("sink");
    let at = now_ms();
    let batch = records(&[event("srv-1", "cpu:1", Health::Critical, at)], 7);
    let offsets = sink.write(&batch).await.expect("write");
    assert_eq!(offsets.len(), 1);
    assert_eq!((offsets[0].partition, offsets[0].offset), (2, 8));

    let hooks = hits.on("/hook/t0ken");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["server_id"], "srv-1");
    assert_eq!(hooks[0]["component_id"], "cpu:1");
    assert_eq!(hooks[0]["health"], "CRITICAL");
    assert_eq!(hooks[0]["classification"], "overtemperature");
    let slack = hits.on("/slack/T000/B000/xoxb");
    assert_eq!(slack.len(), 1);
    let text = slack[0]["text"].as_str().expect("text");
    assert!(
        text.contains("CRITICAL") && text.contains("srv-1 cpu:1") && text.contains("92.0 °C"),
        "{text}"
    );
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: [metal-automata] CRITICAL srv-1 cpu:1: overtemperature"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("oncall@example.com"));

    // The same server, component and health again within the window: nothing is sent.
    let again = records(&[event("srv-1", "cpu:1", Health::Critical, at + 30_000)], 8);
    let offsets = sink.write(&again).await.expect("write");
    assert_eq!(offsets[0].offset, 9, "handled, so committed");
    assert_eq!(hits.on("/hook/t0ken").len(), 1);
    assert_eq!(hits.on("/slack/T000/B000/xoxb").len(), 1);
    assert_eq!(smtp.messages().len(), 1);

    // Its recovery is news, and goes out.
    let mut ok = event("srv-1", "cpu:1", Health::Ok, at + 60_000);
    ok.previous = Health::Critical;
    sink.write(&records(&[ok], 9)).await.expect("write");
    assert_eq!(hits.on("/hook/t0ken").len(), 2);
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_by_severity_and_server_group() {
    let (base, hits) = receiver().await;
    let mut critical_rack1 = route("rack1-critical");
    critical_rack1.min_health = Health::Critical;
    critical_rack1.servers = "rack1-*".into();
    critical_rack1.webhook = Some(Secret::new(format!("{base}/hook/rack1")));
    let mut all = route("all-warnings");
    all.webhook = Some(Secret::new(format!("{base}/hook/all")));
    let mut sink = NotifySink::new(ids(), config(vec![critical_rack1, all])).expect("sink");
    let at = now_ms();
    let batch = records(
        &[
            event("rack1-srv-1", "cpu:1", Health::Critical, at),
            event("rack1-srv-2", "cpu:1", Health::Warning, at),
            event("rack2-srv-1", "cpu:1", Health::Critical, at),
            event("rack1-srv-3", "cpu:1", Health::Ok, at),
        ],
        0,
    );
    sink.write(&batch).await.expect("write");
    let rack1: Vec<_> = hits
        .on("/hook/rack1")
        .iter()
        .map(|v| v["server_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(rack1, vec!["rack1-srv-1"]);
    assert_eq!(
        hits.on("/hook/all").len(),
        3,
        "the OK from OK is no recovery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_twice_gets_the_notification_once() {
    let (base, hits) = receiver().await;
    let mut r = route("flaky");
    r.webhook = Some(Secret::new(format!("{base}/flaky")));
    let mut sink = NotifySink::new(ids(), config(vec![r])).expect("sink");
    sink.write(&records(
        &[event("srv-1", "psu:1", Health::Critical, now_ms())],
        0,
    ))
    .await
    .expect("write");
    assert_eq!(hits.attempts.load(Ordering::SeqCst), 3);
    assert_eq!(hits.on("/flaky").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeliverable_notification_is_given_up_and_the_batch_committed() {
    let (base, hits) = receiver().await;
    let mut r = route("broken");
    r.webhook = Some(Secret::new(format!("{base}/broken")));
    // And a port where nothing listens.
    let mut gone = route("gone");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    gone.webhook = Some(Secret::new(format!("http://127.0.0.1:{port}/hook")));
    let mut cfg = config(vec![r, gone]);
    cfg.retries = 2;
    let mut sink = NotifySink::new(ids(), cfg).expect("sink");
    let started = std::time::Instant::now();
    let offsets = tokio::time::timeout(
        Duration::from_secs(30),
        sink.write(&records(
            &[event("srv-1", "fan:1", Health::Critical, now_ms())],
            41,
        )),
    )
    .await
    .expect("never blocks")
    .expect("write");
    assert_eq!(offsets[0].offset, 42);
    assert_eq!(hits.attempts.load(Ordering::SeqCst), 3, "1 + 2 retries");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_held_to_the_rate_limit() {
    let (base, hits) = receiver().await;
    let mut r = route("limited");
    r.rate_per_minute = 5;
    r.webhook = Some(Secret::new(format!("{base}/hook/limited")));
    let mut sink = NotifySink::new(ids(), config(vec![r])).expect("sink");
    let at = now_ms();
    let burst: Vec<HealthEvent> = (0..50)
        .map(|i| event(&format!("srv-{i}"), "cpu:1", Health::Critical, at))
        .collect();
    let offsets = sink.write(&records(&burst, 0)).await.expect("write");
    assert_eq!(offsets[0].offset, 50);
    let got = hits.on("/hook/limited").len();
    assert_eq!(got, 5, "the burst is the bucket's capacity");
}

#[test]
fn secrets_never_show_in_debug_or_serialized_config() {
    let cfg: NotifyConfig = serde_json::from_value(serde_json::json!({
        "routes": [{
            "name": "oncall",
            "min_health": "CRITICAL",
            "servers": "rack1-*",
            "webhook": "https://hooks.example.com/services/T0/B0/s3cr3t-token",
            "slack": "https://hooks.slack.example/services/T1/B1/xoxb-s3cr3t",
            "email": {
                "to": ["oncall@example.com"],
                "from": "automata@example.com",
                "smtp_host": "smtp.example.com",
                "username": "automata",
                "password": "hunter2-s3cr3t"
            }
        }],
        "dedup_window_secs": 300
    }))
    .expect("config");
    let r = &cfg.routes[0];
    assert_eq!(r.min_health, Health::Critical);
    assert_eq!(r.rate_per_minute, 30);
    let email = r.email.as_ref().expect("email");
    assert_eq!((email.smtp_port, email.starttls), (587, true));
    assert_eq!(cfg.retries, 3);
    let debug = format!("{cfg:?}");
    let json = serde_json::to_string(&cfg).expect("json");
    for shown in [debug, json] {
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("***"));
    }
    assert!(
        NotifySink::new(ids(), cfg).is_ok(),
        "STARTTLS relay config builds"
    );
}

#[test]
fn bad_addresses_are_refused_at_start() {
    let mut r = route("bad");
    r.email = Some(EmailConfig {
        to: vec!["not an address".into()],
        from: "automata@example.com".into(),
        smtp_host: "127.0.0.1".into(),
        smtp_port: 25,
        starttls: false,
        username: None,
        password: None,
    });
    assert!(NotifySink::new(ids(), config(vec![r])).is_err());
    let mut r = route("bad-url");
    r.webhook = Some(Secret::new("ftp://example.com/x"));
    let err = NotifySink::new(ids(), config(vec![r]))
        .err()
        .expect("refused");
    assert!(!format!("{err}").contains("example.com"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_scope_sends_the_server_change_not_each_component() {
    let (base, hits) = receiver().await;
    let mut r = route("servers-only");
    r.scope = Scope::default();
    r.webhook = Some(Secret::new(format!("{base}/hook/scoped")));
    let mut sink = NotifySink::new(ids(), config(vec![r])).expect("sink");
    let at = now_ms();
    let mut server = event("srv-9", "x", Health::Critical, at);
    server.component_id = None;
    let batch = records(
        &[event("srv-9", "sensor:fan2", Health::Critical, at), server],
        0,
    );
    sink.write(&batch).await.expect("write");
    let hooks = hits.on("/hook/scoped");
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert!(hooks[0]["component_id"].is_null());

    let mut bad = route("bad-glob");
    bad.servers = "rack-[".into();
    let refused = NotifySink::new(ids(), config(vec![bad]));
    assert!(
        refused.is_err(),
        "an invalid server glob is a configuration error"
    );
}
