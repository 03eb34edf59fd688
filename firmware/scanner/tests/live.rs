//! The SB rules on live-server data (Redfish, efivars) and rule packs loaded from files.

use automata_fwscan::esl::{
    SignatureData, SignatureEntry, efivarfs_payload, encode_signature_lists,
};
use automata_fwscan::{
    Guid, RulePack, SecureBootDb, Source, parse_signature_lists, secure_boot_findings_at, vss,
};

const NOW: i64 = 1_796_083_200;

/// The Microsoft varstore's PK/KEK/db/dbx, as an agent or a BMC would hand them over.
fn ms_db() -> SecureBootDb {
    let vars = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").expect("ovmf installed");
    let mut issues = Vec::new();
    let store = vss::parse(vars.get(0x48..).expect("store"), "vars", &mut issues).expect("vss2");
    let db = store.secure_boot("vars", &mut issues);
    assert!(issues.is_empty());
    db
}

#[test]
fn redfish_certificates_give_the_blob_findings() {
    // Redfish gives certificates one by one (CertificateString): rebuild entries from DER.
    let blob = ms_db();
    let only_certs = |l: &Option<Vec<SignatureEntry>>| {
        l.as_ref().map(|l| {
            l.iter()
                .filter(|e| matches!(e.data, SignatureData::X509 { .. }))
                .map(|e| SignatureEntry {
                    owner: Guid([0; 16]),
                    data: e.data.clone(),
                })
                .collect::<Vec<_>>()
        })
    };
    let live = SecureBootDb {
        pk: only_certs(&blob.pk),
        kek: only_certs(&blob.kek),
        db: only_certs(&blob.db),
        dbx: blob.dbx.clone(),
    };
    let f = secure_boot_findings_at(&live, Source::Redfish, &RulePack::builtin(), NOW, None);
    let ids: std::collections::BTreeSet<_> = f.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "SB-CERT-001",
            "SB-DB-001",
            "SB-DB-002",
            "SB-DBX-001",
            "SB-KEK-001"
        ]
        .into()
    );
    assert!(
        f.iter()
            .all(|f| f.source == Source::Redfish && f.rule_pack == RulePack::builtin().version)
    );
}

#[test]
fn efivarfs_files_parse() {
    let kek = ms_db().kek.expect("KEK");
    let mut file = 0x27u32.to_le_bytes().to_vec();
    file.extend_from_slice(&encode_signature_lists(&kek));
    let parsed = parse_signature_lists(efivarfs_payload(&file).expect("payload")).expect("esl");
    assert_eq!(parsed, kek);
}

#[test]
fn rule_packs_load_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pack = RulePack::builtin();
    pack.version = "2027.01-1".into();
    pack.test_keys.push(automata_fwscan::rules::TestKey {
        sha1: "00".repeat(20),
        name: "operator key".into(),
    });
    let ours = dir.path().join("pack.json");
    std::fs::write(&ours, pack.to_json()).expect("write");
    assert_eq!(RulePack::load(&ours).expect("load"), pack);
    // Microsoft's dbx_info_msft_latest.json format replaces the dbx reference.
    let msft = dir.path().join("dbx_info_msft_latest.json");
    std::fs::write(
        &msft,
        r#"{"images":{"x64":[{"authenticodeHash":"AA00000000000000000000000000000000000000000000000000000000000000","hashType":"SHA256","filename":"x.efi"}]},"certificates":[],"svns":[]}"#,
    )
    .expect("write");
    let loaded = RulePack::load(&msft).expect("msft format");
    assert_eq!(loaded.dbx_reference.images.len(), 1);
    assert!(loaded.version.ends_with("+dbx"));
    std::fs::write(&msft, "{\"images\": 3}").expect("write");
    assert!(RulePack::load(&msft).is_err());
}
