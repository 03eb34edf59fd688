//! Live Secure Boot over Redfish: the inventory sweep reads each system's
//! `SecureBootDatabases` from the simulator (profiles built from Microsoft's public CA
//! certificates) and DMTF's `public-tower` mockup, runs the `SB-*` rules and publishes
//! `firmware.findings` keyed by server, once per change.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automata_bmc::registry::{BmcEntry, StatusBoard};
use automata_bmc::{Credentials, Protocol};
use automata_log::MessageLog;
use automata_producers::bmc::{BmcCollectorConfig, sweep};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{FIRMWARE_FINDINGS, FIRMWARE_SECUREBOOT, INVENTORY_SNAPSHOTS};
use automata_schemas::types::{FirmwareFinding, SecureBootSnapshot};
use automata_simulator::mockup::Mockup;
use automata_simulator::secureboot::SecureBootProfile;
use automata_simulator::{Fleet, SimConfig};

mod common;

async fn open_log(dir: &Path) -> (MessageLog, SchemaIds) {
    common::open_log(
        dir,
        &[
            (INVENTORY_SNAPSHOTS, 1),
            (FIRMWARE_FINDINGS, 2),
            (FIRMWARE_SECUREBOOT, 3),
        ],
    )
    .await
}

async fn findings(log: &MessageLog) -> Vec<FirmwareFinding> {
    common::read_all(log, FIRMWARE_FINDINGS, 2).await
}

async fn snapshots(log: &MessageLog) -> Vec<SecureBootSnapshot> {
    common::read_all(log, FIRMWARE_SECUREBOOT, 3).await
}

async fn fleet(profile: SecureBootProfile, mockup: Option<Mockup>) -> Fleet {
    let mut cfg = SimConfig::local(1, 0);
    cfg.secure_boot = profile;
    if let Some(m) = mockup {
        cfg.mockups = vec![Arc::new(m)];
    }
    common::start_fleet(cfg).await
}

fn bmcs(f: &Fleet) -> Vec<(BmcEntry, Credentials)> {
    vec![(
        common::entry("sim-0", &f.endpoints[0].address, Protocol::Redfish),
        Credentials::new("admin", "simulated"),
    )]
}

fn rules(fs: &[FirmwareFinding]) -> BTreeSet<&str> {
    fs.iter().map(|f| f.rule_id.as_str()).collect()
}

#[tokio::test]
async fn a_server_on_the_2011_keys_is_flagged_once_per_change() {
    let f = fleet(SecureBootProfile::Ms2011, None).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(dir.path()).await;
    let cfg = BmcCollectorConfig::default();
    let board = StatusBoard::default();
    let r = sweep(&log, &ids, bmcs(&f), &cfg, &board)
        .await
        .expect("sweep");
    assert_eq!(r.ok, 1);
    let first = findings(&log).await;
    assert_eq!(
        rules(&first),
        [
            "SB-CERT-001",
            "SB-DB-001",
            "SB-DB-002",
            "SB-DBX-001",
            "SB-KEK-001"
        ]
        .into(),
        "{first:#?}"
    );
    let server = &f.endpoints[0].server_id;
    for x in &first {
        assert_eq!(&x.target, server);
        assert_eq!(
            (x.target_kind.as_str(), x.source.as_str(), x.state.as_str()),
            ("server", "redfish", "open")
        );
    }
    let kek = first
        .iter()
        .find(|x| x.rule_id == "SB-KEK-001")
        .expect("kek");
    assert_eq!(kek.severity, "high");
    assert_eq!(kek.variable.as_deref(), Some("KEK"));

    let snaps = snapshots(&log).await;
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    assert_eq!(
        (s.server_id.as_str(), s.source.as_str()),
        (server.as_str(), "redfish")
    );
    assert_eq!(s.worst_severity.as_deref(), Some("high"));
    assert!(s.open_findings.contains(&"SB-KEK-001".to_string()));
    let kek = s.variables.iter().find(|v| v.name == "KEK").expect("KEK");
    assert!(
        kek.cert_subjects.iter().any(|c| c.contains("KEK CA 2011")),
        "{kek:?}"
    );
    assert!(
        !kek.cert_subjects.iter().any(|c| c.contains("2023")),
        "{kek:?}"
    );
    assert_eq!(s.mode.as_deref(), Some("DeployedMode"));

    // The same keys again: nothing new to say.
    let r = sweep(&log, &ids, bmcs(&f), &cfg, &board)
        .await
        .expect("sweep");
    assert_eq!(r.secure_boot_findings, 0);
    assert_eq!(findings(&log).await.len(), first.len());
    assert_eq!(snapshots(&log).await.len(), 1);
}

#[tokio::test]
async fn rolled_over_and_test_pk_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(dir.path()).await;
    let cfg = BmcCollectorConfig::default();
    let board = StatusBoard::default();

    let rolled = fleet(SecureBootProfile::Ms2023, None).await;
    sweep(&log, &ids, bmcs(&rolled), &cfg, &board)
        .await
        .expect("sweep");
    let got = findings(&log).await;
    let ids_found = rules(&got);
    for r in [
        "SB-KEK-001",
        "SB-DB-001",
        "SB-DB-002",
        "SB-PK-001",
        "SB-PK-002",
    ] {
        assert!(
            !ids_found.contains(r),
            "{r} on a rolled-over server: {got:#?}"
        );
    }
    drop(rolled);

    let pkfail = fleet(SecureBootProfile::TestPk, None).await;
    let before = got.len();
    sweep(&log, &ids, bmcs(&pkfail), &cfg, &board)
        .await
        .expect("sweep");
    let got = findings(&log).await;
    let new = &got[before..];
    let pk = new
        .iter()
        .find(|x| x.rule_id == "SB-PK-002")
        .expect("SB-PK-002");
    assert_eq!(pk.severity, "critical");
    assert!(
        pk.cert_subject
            .as_deref()
            .is_some_and(|s| s.contains("DO NOT TRUST"))
    );
}

fn public_tower() -> Option<PathBuf> {
    let base = std::env::var_os("MA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let d = base.join("redfish-mockups/public-tower");
    d.is_dir().then_some(d)
}

#[tokio::test]
async fn the_dmtf_public_tower_keys_are_read_as_published() {
    let Some(dir) = public_tower() else {
        eprintln!("shared/redfish-mockups/public-tower not found: skipped");
        return;
    };
    let f = fleet(
        SecureBootProfile::Mockup,
        Some(Mockup::load(&dir).expect("mockup")),
    )
    .await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, ids) = open_log(tmp.path()).await;
    let cfg = BmcCollectorConfig::default();
    let board = StatusBoard::default();
    let r = sweep(&log, &ids, bmcs(&f), &cfg, &board)
        .await
        .expect("sweep");
    assert_eq!(r.ok, 1);
    let got = findings(&log).await;
    // Its dbx holds one all-zero SHA-256, none of the revocations a current dbx has.
    assert!(rules(&got).contains("SB-DBX-002"), "{got:#?}");
    // Its db has Microsoft's Windows PCA 2011 without the 2023 CA; its KEK is an OEM's.
    assert!(rules(&got).contains("SB-DB-002"), "{got:#?}");
    assert!(!rules(&got).contains("SB-KEK-001"), "{got:#?}");
}

/// The in-band path on real key data: the Debian OVMF Microsoft varstore's PK/KEK/db/dbx written
/// out as efivarfs files (attributes + EFI_SIGNATURE_LISTs, as the kernel shows them), read by
/// the agent's efivars reader and judged by the same rules as over Redfish.
#[test]
fn efivars_from_the_ovmf_microsoft_varstore() {
    use automata_fwscan::esl::encode_signature_lists;
    use automata_fwscan::vss;
    use automata_producers::findings::{LiveKeys, SecureBootCheck};

    let Ok(vars) = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.ms.fd") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI the ovmf package must be installed"
        );
        eprintln!("ovmf not installed: skipped");
        return;
    };
    let mut issues = Vec::new();
    let store = vss::parse(vars.get(0x48..).expect("store"), "vars", &mut issues).expect("vss2");
    let db = store.secure_boot("vars", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");

    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join(automata_agent::efivars::EFIVARS);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let g = automata_agent::efivars::GLOBAL;
    let i = automata_agent::efivars::IMAGE_SECURITY;
    for (name, guid, list) in [
        ("PK", g, &db.pk),
        ("KEK", g, &db.kek),
        ("db", i, &db.db),
        ("dbx", i, &db.dbx),
    ] {
        let mut file = vec![0x27, 0, 0, 0];
        file.extend(encode_signature_lists(list.as_deref().unwrap_or_default()));
        std::fs::write(dir.join(format!("{name}-{guid}")), file).expect("write");
    }
    std::fs::write(dir.join(format!("SecureBoot-{g}")), [6, 0, 0, 0, 1]).expect("write");
    std::fs::write(dir.join(format!("SetupMode-{g}")), [6, 0, 0, 0, 0]).expect("write");

    let efi = automata_agent::efivars::read(root.path())
        .expect("read")
        .expect("efivarfs");
    let (keys, notes) = LiveKeys::from_efivars(&efi);
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(
        keys.db, db,
        "what the agent reads is what the varstore holds"
    );
    let out = SecureBootCheck::default().check_keys("server-1", &keys, 1);
    let ids: BTreeSet<&str> = out.findings.iter().map(|f| f.rule_id.as_str()).collect();
    for r in ["SB-KEK-001", "SB-DB-001", "SB-DB-002", "SB-DBX-001"] {
        assert!(ids.contains(r), "{r} missing: {ids:?}");
    }
    assert!(out.findings.iter().all(|f| f.source == "efivars"));
    let snap = out.snapshot.expect("a first summary");
    assert_eq!(
        (
            snap.enabled,
            snap.current_boot.as_deref(),
            snap.mode.as_deref()
        ),
        (Some(true), Some("Enabled"), Some("UserMode"))
    );
}
