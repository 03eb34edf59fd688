//! The firmware-updates processor end to end on the embedded log: servers are matched against
//! the catalog when it arrives, again when their inventory changes (a BIOS update) and when the
//! catalog changes (an entry withdrawn), and a restart publishes nothing new.

use std::collections::HashMap;
use std::time::Duration;

mod common;

use automata_log::{ConsumedRecord, MessageLog, Record, StartFrom};
use automata_processors::firmware_updates::FirmwareUpdatesProcessor;
use automata_processors::{RunnerConfig, run};
use automata_schemas::catalog::{
    FIRMWARE_ADVISORIES, FIRMWARE_CATALOG, FIRMWARE_FINDINGS, FIRMWARE_UPDATES, INVENTORY_LATEST,
    topic,
};
use automata_schemas::types::{
    Component, ComponentKind, FirmwareAdvisory, FirmwareAdvisoryRange, FirmwareCatalogEntry,
    FirmwareFinding, FirmwareUpdateStatus, InventorySnapshot, InventorySource, SystemIdentity,
};
use automata_schemas::{SchemaIds, decode, encode};
use common::open_log;
use tokio_util::sync::CancellationToken;

const A: &str = "4c4c4544-0000-0000-0000-00000000000a";
const B: &str = "4c4c4544-0000-0000-0000-00000000000b";

fn ids() -> SchemaIds {
    SchemaIds::new(HashMap::from([
        (INVENTORY_LATEST.to_string(), 21),
        (FIRMWARE_CATALOG.to_string(), 22),
        (FIRMWARE_UPDATES.to_string(), 23),
        (FIRMWARE_ADVISORIES.to_string(), 24),
        (FIRMWARE_FINDINGS.to_string(), 25),
    ]))
}

fn inventory(server: &str, at: i64, bios: &str) -> Record {
    let snap = InventorySnapshot {
        server_id: server.into(),
        source: InventorySource::Redfish,
        collected_at: at,
        system: SystemIdentity {
            product: Some("PowerEdge R750".into()),
            ..Default::default()
        },
        bios: None,
        components: vec![
            Component {
                component_id: "bios".into(),
                kind: ComponentKind::Bios,
                name: "BIOS".into(),
                manufacturer: None,
                model: None,
                serial: None,
                part_number: None,
                firmware_version: Some(bios.into()),
                location: None,
                properties: HashMap::new(),
            },
            Component {
                component_id: "dimm:A1".into(),
                kind: ComponentKind::Dimm,
                name: "DIMM A1".into(),
                manufacturer: None,
                model: None,
                serial: None,
                part_number: None,
                firmware_version: None,
                location: None,
                properties: HashMap::new(),
            },
        ],
        errors: vec![],
    };
    let spec = topic(INVENTORY_LATEST).expect("spec");
    Record::new(
        format!("{server}/redfish"),
        encode(spec, 21, &snap).expect("encode"),
    )
}

/// Two NVMe drives of one model as `source` saw them at `at`, with their firmware versions.
fn drives(server: &str, source: InventorySource, at: i64, versions: [&str; 2]) -> Record {
    let drive = |i: usize, version: &str| Component {
        component_id: format!("nvme:{i}"),
        kind: ComponentKind::Nvme,
        name: "Lab NVMe SSD".into(),
        manufacturer: None,
        model: None,
        serial: None,
        part_number: None,
        firmware_version: Some(version.into()),
        location: None,
        properties: HashMap::new(),
    };
    let snap = InventorySnapshot {
        server_id: server.into(),
        source,
        collected_at: at,
        system: SystemIdentity {
            product: Some("PowerEdge R750".into()),
            ..Default::default()
        },
        bios: None,
        components: versions
            .iter()
            .enumerate()
            .map(|(i, v)| drive(i, v))
            .collect(),
        errors: vec![],
    };
    let name = match source {
        InventorySource::Agent => "agent",
        _ => "redfish",
    };
    let spec = topic(INVENTORY_LATEST).expect("spec");
    Record::new(
        format!("{server}/{name}"),
        encode(spec, 21, &snap).expect("encode"),
    )
}

fn entry(id: &str, version: &str, criticality: &str) -> Record {
    let e = FirmwareCatalogEntry {
        catalog: "lab".into(),
        entry_id: id.into(),
        vendor: "Dell".into(),
        component_type: "bios".into(),
        name: "BIOS".into(),
        version: version.into(),
        release_date: None,
        criticality: criticality.into(),
        url: None,
        size: None,
        sha256: Some("00".repeat(32)),
        sha1: None,
        md5: None,
        reboot: Some(true),
        system_ids: vec![],
        models: vec!["PowerEdge R750".into()],
        pci_ids: vec![],
        guids: vec![],
        software_ids: vec![],
        change: "added".into(),
        synced_at: 1,
    };
    let spec = topic(FIRMWARE_CATALOG).expect("spec");
    Record::new(format!("lab/{id}"), encode(spec, 22, &e).expect("encode"))
}

fn advisory(id: &str, fixed: &str, withdrawn: bool) -> Record {
    advisory_for(id, "bios", fixed, withdrawn)
}

fn advisory_for(id: &str, component: &str, fixed: &str, withdrawn: bool) -> Record {
    let a = FirmwareAdvisory {
        id: id.into(),
        title: format!("Test {component} advisory"),
        severity: "critical".into(),
        vendor: None,
        component: Some(component.into()),
        names: vec![],
        models: vec!["R750".into()],
        ranges: vec![FirmwareAdvisoryRange {
            fixed: Some(fixed.into()),
            ..Default::default()
        }],
        references: vec![],
        rule_pack: "test-pack".into(),
        withdrawn,
        published_at: 1,
    };
    let spec = topic(FIRMWARE_ADVISORIES).expect("spec");
    Record::new(id.to_string(), encode(spec, 24, &a).expect("encode"))
}

/// `firmware.findings` records (server, rule, state) until `n` arrived, or none for `quiet`.
async fn findings(
    c: &mut automata_log::LogConsumer,
    n: usize,
    quiet: Duration,
) -> Vec<(String, String, String, String)> {
    let spec = topic(FIRMWARE_FINDINGS).expect("spec");
    let mut got = Vec::new();
    while got.len() < n {
        let batch: Vec<ConsumedRecord> = c.recv_batch(100, quiet).await.expect("recv");
        if batch.is_empty() {
            break;
        }
        for r in batch {
            let f: FirmwareFinding =
                decode(spec, 25, r.record.value.as_deref().expect("value")).expect("decode");
            got.push((f.target, f.rule_id, f.state, f.subject));
        }
    }
    got
}

/// `firmware.updates` records until `n` arrived, or none for `quiet`.
async fn updates(
    c: &mut automata_log::LogConsumer,
    n: usize,
    quiet: Duration,
) -> Vec<(String, Option<FirmwareUpdateStatus>)> {
    let spec = topic(FIRMWARE_UPDATES).expect("spec");
    let mut got = Vec::new();
    while got.len() < n {
        let batch: Vec<ConsumedRecord> = c.recv_batch(100, quiet).await.expect("recv");
        if batch.is_empty() {
            break;
        }
        for r in batch {
            let key =
                String::from_utf8_lossy(r.record.key.as_deref().unwrap_or_default()).into_owned();
            let value = r
                .record
                .value
                .as_deref()
                .map(|v| decode::<FirmwareUpdateStatus>(spec, 23, v).expect("decode"));
            got.push((key, value));
        }
    }
    got
}

fn of<'a>(
    got: &'a [(String, Option<FirmwareUpdateStatus>)],
    server: &str,
) -> Option<&'a FirmwareUpdateStatus> {
    got.iter()
        .rev()
        .find(|(k, _)| k == server)
        .and_then(|(_, v)| v.as_ref())
}

fn start(log: &MessageLog, shutdown: &CancellationToken) -> tokio::task::JoinHandle<()> {
    let (log, shutdown) = (log.clone(), shutdown.clone());
    tokio::spawn(async move {
        run(
            log,
            || FirmwareUpdatesProcessor::new(ids()),
            RunnerConfig::default(),
            shutdown,
        )
        .await
        .expect("processor");
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_follow_their_inventory_and_the_catalog() {
    let (_dir, log) = open_log().await;
    log.send_batch(
        FIRMWARE_CATALOG,
        vec![
            entry("bios-2.1", "2.1.0", "critical"),
            entry("bios-1.9", "1.9.0", "recommended"),
        ],
    )
    .await
    .expect("catalog");
    log.send_batch(
        INVENTORY_LATEST,
        vec![inventory(A, 1, "1.9.0"), inventory(B, 1, "2.1.0")],
    )
    .await
    .expect("inventory");

    let shutdown = CancellationToken::new();
    let task = start(&log, &shutdown);
    let mut out = log
        .consumer("check-updates", &[FIRMWARE_UPDATES], StartFrom::Earliest)
        .expect("consumer");
    let got = updates(&mut out, 2, Duration::from_secs(20)).await;
    let a = of(&got, A).expect("A matched");
    assert_eq!((a.updates_available, a.critical_updates), (1, 1), "{a:?}");
    assert_eq!(a.catalog_entries, 2);
    assert_eq!(a.components.len(), 1, "only the versioned BIOS: {a:?}");
    let bios = &a.components[0];
    assert_eq!(bios.verdict, "update-available");
    assert_eq!(bios.latest.as_deref(), Some("2.1.0"));
    assert_eq!(bios.criticality.as_deref(), Some("critical"));
    assert_eq!(bios.entry_key.as_deref(), Some("lab/bios-2.1"));
    let b = of(&got, B).expect("B matched");
    assert_eq!(b.updates_available, 0);
    assert_eq!(b.components[0].verdict, "current");

    // A's BIOS is updated: its next inventory makes it current.
    log.send(INVENTORY_LATEST, inventory(A, 2, "2.1.0"))
        .await
        .expect("send");
    let got = updates(&mut out, 1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let a = of(&got, A).expect("A again");
    assert_eq!(a.updates_available, 0);
    assert_eq!(a.components[0].verdict, "current");

    // The vendor withdraws 2.1.0: both servers now run a version the catalog no longer lists.
    log.send(FIRMWARE_CATALOG, Record::tombstone("lab/bios-2.1"))
        .await
        .expect("send");
    let got = updates(&mut out, 2, Duration::from_secs(20)).await;
    for s in [A, B] {
        let st = of(&got, s).expect("matched again");
        assert_eq!(st.catalog_entries, 1);
        assert_eq!(st.components[0].verdict, "not-listed", "{st:?}");
        assert_eq!(st.components[0].latest.as_deref(), Some("1.9.0"));
    }

    // A restart reads everything again and publishes nothing.
    shutdown.cancel();
    task.await.expect("join");
    let shutdown = CancellationToken::new();
    let task = start(&log, &shutdown);
    let got = updates(&mut out, 1, Duration::from_secs(5)).await;
    assert!(got.is_empty(), "a restart republished: {got:?}");

    // The last entry goes: no catalog applies any more, and the records are removed.
    log.send(FIRMWARE_CATALOG, Record::tombstone("lab/bios-1.9"))
        .await
        .expect("send");
    let got = updates(&mut out, 2, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, v)| v.is_none()), "{got:?}");
    shutdown.cancel();
    task.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisories_open_and_resolve_findings_as_servers_and_the_pack_change() {
    let (_dir, log) = open_log().await;
    log.send(FIRMWARE_ADVISORIES, advisory("TEST-1", "2.0.0", false))
        .await
        .expect("advisory");
    log.send_batch(
        INVENTORY_LATEST,
        vec![inventory(A, 1, "1.9.0"), inventory(B, 1, "2.1.0")],
    )
    .await
    .expect("inventory");

    let shutdown = CancellationToken::new();
    let task = start(&log, &shutdown);
    let mut out = log
        .consumer("check-updates", &[FIRMWARE_UPDATES], StartFrom::Earliest)
        .expect("consumer");
    let mut found = log
        .consumer("check-findings", &[FIRMWARE_FINDINGS], StartFrom::Earliest)
        .expect("consumer");
    // No catalog at all: A runs an affected BIOS, B a fixed one.
    let got = updates(&mut out, 1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "only A is affected: {got:?}");
    let a = of(&got, A).expect("A");
    assert_eq!(a.components.len(), 0);
    assert_eq!(a.advisories.len(), 1, "{a:?}");
    assert_eq!(a.advisories[0].id, "TEST-1");
    assert_eq!(a.advisories[0].installed, "1.9.0");
    let f = findings(&mut found, 1, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].0.as_str(), f[0].1.as_str(), f[0].2.as_str()),
        (A, "VULN-TEST-1", "open")
    );
    assert!(f[0].3.contains("fixed in 2.0.0"), "{f:?}");

    // A is updated past the fix: its finding resolves and its record goes.
    log.send(INVENTORY_LATEST, inventory(A, 2, "2.1.0"))
        .await
        .expect("send");
    let got = updates(&mut out, 1, Duration::from_secs(20)).await;
    assert_eq!(got, vec![(A.to_string(), None)]);
    let f = findings(&mut found, 1, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].0.as_str(), f[0].2.as_str()), (A, "resolved"));

    // A newer advisory range catches both; withdrawing it resolves both.
    log.send(FIRMWARE_ADVISORIES, advisory("TEST-1", "3.0.0", false))
        .await
        .expect("send");
    let f = findings(&mut found, 2, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(
        f.iter()
            .all(|x| x.2 == "open" && x.3.contains("fixed in 3.0.0")),
        "{f:?}"
    );
    log.send(FIRMWARE_ADVISORIES, advisory("TEST-1", "3.0.0", true))
        .await
        .expect("send");
    let f = findings(&mut found, 2, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 2, "{f:?}");
    assert!(f.iter().all(|x| x.2 == "resolved"), "{f:?}");
    let got = updates(&mut out, 4, Duration::from_secs(20)).await;
    assert!(of(&got, A).is_none() && of(&got, B).is_none(), "{got:?}");
    shutdown.cancel();
    task.await.expect("join");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_parts_share_a_finding_and_the_newest_source_decides() {
    let (_dir, log) = open_log().await;
    log.send(
        FIRMWARE_ADVISORIES,
        advisory_for("TEST-D", "nvme", "2.0", false),
    )
    .await
    .expect("advisory");
    log.send(
        INVENTORY_LATEST,
        drives(A, InventorySource::Redfish, 1, ["1.0", "1.0"]),
    )
    .await
    .expect("inventory");

    let shutdown = CancellationToken::new();
    let task = start(&log, &shutdown);
    let mut found = log
        .consumer("check-findings", &[FIRMWARE_FINDINGS], StartFrom::Earliest)
        .expect("consumer");
    let f = findings(&mut found, 1, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 1, "two identical drives, one finding: {f:?}");
    assert_eq!((f[0].1.as_str(), f[0].2.as_str()), ("VULN-TEST-D", "open"));

    // One drive is updated: the other is still affected, so the finding stays open.
    log.send(
        INVENTORY_LATEST,
        drives(A, InventorySource::Redfish, 2, ["2.0", "1.0"]),
    )
    .await
    .expect("send");
    let f = findings(&mut found, 1, Duration::from_secs(3)).await;
    assert!(f.is_empty(), "nothing changed for the finding: {f:?}");

    // The agent sees both updated after the BMC's last poll: the newer report decides.
    log.send(
        INVENTORY_LATEST,
        drives(A, InventorySource::Agent, 3, ["2.0", "2.0"]),
    )
    .await
    .expect("send");
    let f = findings(&mut found, 1, Duration::from_secs(20)).await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].1.as_str(), f[0].2.as_str()),
        ("VULN-TEST-D", "resolved")
    );
    shutdown.cancel();
    task.await.expect("join");
}
