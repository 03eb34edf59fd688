//! The whole-blob rules through `scan`: KEY-LEAK-001 (a leaked public key embedded anywhere) and
//! HW-ROT-001 (a full SPI image without Boot Guard manifests), and a pack's own leaked keys.

use automata_fwscan::{Limits, RulePack, Severity, scan};

fn ids(r: &automata_fwscan::ScanReport) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule_id.as_str()).collect()
}

#[test]
fn a_leaked_boot_guard_key_inside_a_blob_is_critical_with_its_offset() {
    let pack = RulePack::builtin();
    let key = pack
        .leaked_keys
        .iter()
        .find(|k| k.name.contains("BootGuard"))
        .expect("FwHunt's MSI Boot Guard list ships");
    let modulus = hex::decode(&key.patterns[0]).expect("hex");
    let mut blob = vec![0x5au8; 10_000];
    blob.extend_from_slice(&modulus);
    blob.extend(std::iter::repeat_n(0u8, 1000));
    let r = scan(&blob, "bios.bin", &pack, &Limits::default());
    let f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "KEY-LEAK-001")
        .unwrap_or_else(|| panic!("no KEY-LEAK-001 in {:?}", ids(&r)));
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.evidence.offset, Some(10_000));
    assert!(f.subject.contains(&key.name), "{}", f.subject);
}

#[test]
fn real_images_carry_no_leaked_key_and_are_not_flash_images() {
    let pack = RulePack::builtin();
    for img in [
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    ] {
        let Ok(bytes) = std::fs::read(img) else {
            continue;
        };
        let r = scan(&bytes, img, &pack, &Limits::default());
        assert!(
            !ids(&r)
                .iter()
                .any(|i| *i == "KEY-LEAK-001" || *i == "HW-ROT-001"),
            "{img}: {:?}",
            ids(&r)
        );
    }
}

#[test]
fn a_descriptor_image_without_fit_is_hw_rot_001_info() {
    let mut img = vec![0xffu8; 1 << 20];
    img[0x10..0x14].copy_from_slice(&[0x5a, 0xa5, 0xf0, 0x0f]);
    let r = scan(&img, "spi.bin", &RulePack::builtin(), &Limits::default());
    let f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "HW-ROT-001")
        .unwrap_or_else(|| panic!("no HW-ROT-001 in {:?}", ids(&r)));
    assert_eq!(f.severity, Severity::Info);
}

#[test]
fn an_operator_pack_names_its_own_leaked_keys_and_bad_hex_is_refused() {
    let pack = RulePack::from_json(&format!(
        r#"{{"version": "lab-1", "leaked_keys": [{{"name": "lab test key", "patterns": ["{}"]}}]}}"#,
        "ab".repeat(32)
    ))
    .expect("pack");
    assert_eq!(pack.leaked_keys.len(), 1);
    let mut blob = vec![0u8; 64];
    blob.extend(std::iter::repeat_n(0xabu8, 32));
    let r = scan(&blob, "x.bin", &pack, &Limits::default());
    assert!(ids(&r).contains(&"KEY-LEAK-001"), "{:?}", ids(&r));

    let without = RulePack::from_json(r#"{"version": "lab-2"}"#).expect("pack");
    assert_eq!(
        without.leaked_keys.len(),
        4,
        "FwHunt's list unless the pack names its own"
    );

    for bad in ["zz", "abcd"] {
        let e = RulePack::from_json(&format!(
            r#"{{"version": "v", "leaked_keys": [{{"name": "n", "patterns": ["{bad}"]}}]}}"#
        ));
        assert!(e.is_err(), "{bad}");
    }
}
