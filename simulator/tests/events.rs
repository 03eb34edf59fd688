//! The simulated EventService over real HTTP: `ServerSentEventUri`, a log entry per fault as
//! one SSE event, replay after `Last-Event-ID`, streams that end on a BMC restart and when the
//! fleet stops; and the log's own behaviour that collectors meet (ids after ClearLog, order).

use std::time::{Duration, Instant};

use automata_simulator::faults::{FaultKind, FaultSpec};
use automata_simulator::{Fleet, SimConfig};
use serde_json::{Value, json};

fn free_port_base(n: u16) -> u16 {
    // As in fleet.rs, in another band so the two test binaries never collide.
    28000 + (std::process::id() as u16 % 400) * 20 + n * 5
}

async fn fleet(slot: u16) -> Fleet {
    let cfg = SimConfig::local(1, free_port_base(slot));
    match Fleet::start(cfg).await {
        Ok(f) => f,
        Err(e) => panic!("fleet did not start: {e}"),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default()
}

async fn get(base: &str, path: &str) -> Value {
    let r = http()
        .get(format!("{base}{path}"))
        .basic_auth("admin", Some("simulated"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

async fn post(base: &str, path: &str, body: Value) -> u16 {
    let r = http()
        .post(format!("{base}{path}"))
        .basic_auth("admin", Some("simulated"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match r {
        Ok(r) => r.status().as_u16(),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

async fn open(base: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut r = http()
        .get(format!("{base}/redfish/v1/EventService/SSE"))
        .basic_auth("admin", Some("simulated"))
        .header("Accept", "text/event-stream");
    if let Some(id) = last_id {
        r = r.header("Last-Event-ID", id);
    }
    match r.send().await {
        Ok(r) => r,
        Err(e) => panic!("SSE: {e}"),
    }
}

/// Reads the stream until it holds `n` events (`id:` + `data:`), or it ends; the raw text.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> (Vec<(u64, Value)>, bool) {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ended = false;
    loop {
        let evs = frames(&text);
        if evs.len() >= n || Instant::now() > deadline {
            return (evs, ended);
        }
        match tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await {
            Ok(Ok(Some(b))) => text.push_str(&String::from_utf8_lossy(&b)),
            _ => {
                ended = true;
                return (frames(&text), ended);
            }
        }
    }
}

fn frames(text: &str) -> Vec<(u64, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))?
                .parse()
                .ok()?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((id, serde_json::from_str(data).ok()?))
        })
        .collect()
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

#[tokio::test]
async fn a_fault_is_one_event_on_the_sse_stream_and_a_reconnect_replays() {
    let f = fleet(0).await;
    let base = f.endpoints[0].address.clone();
    let es = get(&base, "/redfish/v1/EventService").await;
    assert_eq!(es["ServerSentEventUri"], "/redfish/v1/EventService/SSE");
    assert_eq!(es["ServiceEnabled"], true);

    let anonymous = http()
        .get(format!("{base}/redfish/v1/EventService/SSE"))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(anonymous.ok(), Some(401));

    let mut s = open(&base, None).await;
    assert_eq!(s.status().as_u16(), 200);
    let ct = s
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(ct, "text/event-stream");
    let greeting = tokio::time::timeout(Duration::from_secs(5), s.chunk()).await;
    assert!(
        matches!(&greeting, Ok(Ok(Some(b))) if b.starts_with(b":")),
        "a comment first: {greeting:?}"
    );

    f.bmcs[0]
        .inject(&fault(FaultKind::FanFailure, Some("0")), "test")
        .unwrap_or_else(|e| panic!("inject: {e}"));
    let (evs, _) = read_events(&mut s, 1).await;
    let fan: Vec<_> = evs
        .iter()
        .filter(|(_, e)| {
            e["Events"][0]["Message"]
                .as_str()
                .is_some_and(|m| m.contains("failed"))
        })
        .collect();
    assert_eq!(fan.len(), 1, "{evs:?}");
    let (id, ev) = fan[0];
    assert_eq!(ev["@odata.type"], "#Event.v1_7_0.Event");
    let rec = &ev["Events"][0];
    assert_eq!(rec["Severity"], "Critical");
    assert_eq!(rec["EventId"], id.to_string());
    // The event links the log entry it reports, which is there to read.
    let entry = rec["LogEntry"]["@odata.id"].as_str().unwrap_or_default();
    assert_eq!(get(&base, entry).await["Message"], rec["Message"]);

    // A client that comes back with the id before the fan's gets it again, and only what follows.
    drop(s);
    let mut again = open(&base, Some(&(id - 1).to_string())).await;
    let (replayed, _) = read_events(&mut again, 1).await;
    assert_eq!(replayed.first().map(|(i, _)| *i), Some(*id));
    drop(again);
    f.stop().await;
}

#[tokio::test]
async fn streams_end_when_the_bmc_restarts_and_when_the_fleet_stops() {
    let f = fleet(1).await;
    let base = f.endpoints[0].address.clone();
    let mut s = open(&base, None).await;
    assert_eq!(
        post(
            &base,
            "/redfish/v1/Managers/BMC/Actions/Manager.Reset",
            json!({"ResetType": "GracefulRestart"})
        )
        .await,
        204
    );
    let (_, ended) = read_events(&mut s, usize::MAX).await;
    assert!(ended, "a BMC restart drops the stream");

    let _open = open(&base, None).await;
    let t = Instant::now();
    f.stop().await;
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "an open stream does not hold the fleet up: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn clear_log_restarts_ids_and_the_log_can_be_listed_newest_first() {
    let f = fleet(2).await;
    let base = f.endpoints[0].address.clone();
    let sys = get(&base, "/redfish/v1/Systems").await["Members"][0]["@odata.id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let log = get(&base, &format!("{sys}/LogServices")).await["Members"][0]["@odata.id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ids = |v: Value| -> Vec<String> {
        v["Members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["Id"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        post(
            &base,
            &format!("{log}/Actions/LogService.ClearLog"),
            json!({})
        )
        .await,
        204
    );
    for kind in [FaultKind::FanFailure, FaultKind::DiskPredictedFailure] {
        f.bmcs[0]
            .inject(&fault(kind, None), "test")
            .unwrap_or_else(|e| panic!("inject: {e}"));
    }
    let listed = ids(get(&base, &format!("{log}/Entries")).await);
    assert_eq!(listed.first().map(String::as_str), Some("1"));
    assert!(listed.len() >= 2);
    f.bmcs[0].set_log_newest_first(true);
    let mut reversed = ids(get(&base, &format!("{log}/Entries")).await);
    reversed.reverse();
    // (A sensor may log one more entry in between: it comes last.)
    assert!(reversed.starts_with(&listed), "{reversed:?} vs {listed:?}");
    f.stop().await;
}
