//! What the producer tests share: a log with every topic, reading a topic back, and a simulated
//! Redfish fleet on free loopback ports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use automata_bmc::registry::BmcEntry;
use automata_bmc::{Protocol, TlsPolicy};
use automata_log::{LogConfig, MessageLog, StartFrom};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{topic, topics};
use automata_simulator::{Fleet, SimConfig};

/// An embedded log with every topic, and schema ids for the topics a test writes.
pub async fn open_log(dir: &Path, ids: &[(&str, u32)]) -> (MessageLog, SchemaIds) {
    let log = MessageLog::open(&LogConfig::default(), dir).expect("log");
    let cfgs: Vec<_> = topics().iter().map(|t| t.log_config()).collect();
    log.ensure_topics(&cfgs).await.expect("topics");
    let ids = SchemaIds::new(
        ids.iter()
            .map(|(t, id)| (t.to_string(), *id))
            .collect::<HashMap<_, _>>(),
    );
    (log, ids)
}

/// Every record of `topic_name` so far, decoded (a fresh consumer group each time).
pub async fn read_all<T: serde::de::DeserializeOwned>(
    log: &MessageLog,
    topic_name: &str,
    schema_id: u32,
) -> Vec<T> {
    static GROUP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let g = GROUP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let spec = topic(topic_name).expect("topic");
    let mut c = log
        .consumer(&format!("test-{g}"), &[topic_name], StartFrom::Earliest)
        .expect("consumer");
    let mut out = Vec::new();
    loop {
        let batch = c
            .recv_batch(10_000, Duration::from_millis(300))
            .await
            .expect("recv");
        if batch.is_empty() {
            return out;
        }
        for r in batch {
            let v = r.record.value.expect("a value");
            out.push(automata_schemas::decode(spec, schema_id, &v).expect("decodes"));
        }
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts `cfg`'s fleet on loopback, one port per server from a free port.
pub async fn start_fleet(mut cfg: SimConfig) -> Fleet {
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

/// A registry entry for a BMC at `address`.
pub fn entry(name: &str, address: &str, protocol: Protocol) -> BmcEntry {
    BmcEntry {
        name: name.into(),
        address: address.into(),
        username: "admin".into(),
        protocol,
        tls: TlsPolicy::Verify,
        added_at: String::new(),
        labels: Default::default(),
    }
}
