//! PE images and Authenticode on real peers: Debian's shim-signed (two Microsoft signatures) and
//! fwupd-amd64-signed (Debian CA), checked against `sbverify --list` and `pesign -h`.

use std::collections::BTreeSet;
use std::process::Command;

use automata_fwscan::{Limits, RulePack, ScanReport, authenticode, pe, scan_at};

const NOW: i64 = 1_796_083_200;
const SHIM: &str = "/usr/lib/shim/shimx64.efi.signed";
const SHIM_UNSIGNED: &str = "/usr/lib/shim/shimx64.efi";
const FWUPD: &str = "/usr/libexec/fwupd/efi/fwupdx64.efi.signed";

fn read(p: &str) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| {
        panic!("{p}: {e}; install shim-signed and fwupd-amd64-signed (scripts/install-deps.sh)")
    })
}

fn scan(b: &[u8]) -> ScanReport {
    scan_at(b, "t", &RulePack::builtin(), &Limits::default(), NOW)
}

fn cn(s: &str) -> String {
    s.split(['/', ','])
        .map(str::trim)
        .find_map(|p| p.strip_prefix("CN="))
        .unwrap_or_default()
        .to_string()
}

/// `sbverify --list`: per signature, the CNs of the certificates it carries.
fn sbverify_list(path: &str) -> Vec<BTreeSet<String>> {
    let out = Command::new("sbverify")
        .args(["--list", path])
        .output()
        .expect("sbverify (Debian sbsigntool) installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sigs: Vec<BTreeSet<String>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("signature ") {
            sigs.push(BTreeSet::new());
        } else if let (Some(s), Some(last)) =
            (line.trim().strip_prefix("- subject:"), sigs.last_mut())
        {
            last.insert(cn(s));
        }
    }
    sigs
}

fn pesign_hash(path: &str) -> Option<String> {
    let out = Command::new("pesign")
        .args(["-h", "-i", path])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("hash: ").map(str::to_string))
}

#[test]
fn shim_has_two_valid_signatures_agreeing_with_sbverify() {
    let b = read(SHIM);
    let r = authenticode::verify(&b, &RulePack::builtin().authenticode_roots).expect("pe");
    assert_eq!(r.signatures.len(), 2, "{r:#?}");
    for s in &r.signatures {
        assert!(s.valid, "{s:#?}");
        assert!(s.problems.is_empty(), "{s:#?}");
        assert_eq!(s.signed_digest, r.authenticode_sha256);
    }
    let roots: Vec<_> = r
        .signatures
        .iter()
        .map(|s| s.trusted_root.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        roots,
        [
            "Microsoft Corporation UEFI CA 2011",
            "Microsoft UEFI CA 2023"
        ]
    );
    let ours: Vec<BTreeSet<String>> = r
        .signatures
        .iter()
        .map(|s| s.chain.iter().map(|c| cn(&c.subject)).collect())
        .collect();
    assert_eq!(ours, sbverify_list(SHIM));
    let report = scan(&b);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn digests_agree_with_pesign() {
    // Signed images only: for unsigned ones with gaps between sections (shimx64.efi) pesign
    // hashes differently; signed images are what signatures and dbx entries cover.
    for p in [SHIM, FWUPD] {
        let Some(want) = pesign_hash(p) else {
            eprintln!("pesign missing: skipped");
            return;
        };
        let r = authenticode::verify(&read(p), &[]).expect("pe");
        assert_eq!(r.authenticode_sha256, want, "{p}");
    }
}

#[test]
fn unsigned_shim_is_pe_sig_001() {
    let report = scan(&read(SHIM_UNSIGNED));
    assert_eq!(
        report.rule_ids(),
        BTreeSet::from(["PE-SIG-001".to_string()])
    );
}

#[test]
fn fwupd_is_valid_but_not_under_microsoft_roots() {
    let b = read(FWUPD);
    let report = scan(&b);
    assert_eq!(
        report.rule_ids(),
        BTreeSet::from(["PE-SIG-003".to_string()])
    );
    let f = &report.findings[0];
    assert!(
        f.evidence
            .cert_subject
            .as_deref()
            .unwrap_or("")
            .contains("Debian Secure Boot Signer")
    );
    let ours: Vec<BTreeSet<String>> = authenticode::verify(&b, &[])
        .expect("pe")
        .signatures
        .iter()
        .map(|s| s.chain.iter().map(|c| cn(&c.subject)).collect())
        .collect();
    assert_eq!(ours, sbverify_list(FWUPD));
    // An operator who trusts the Debian signer's certificate gets no finding.
    let mut pack = RulePack::builtin();
    pack.authenticode_roots.push(automata_fwscan::TrustedRoot {
        sha1: f.evidence.cert_sha1.clone().expect("sha1"),
        name: "Debian".into(),
        der: String::new(),
    });
    assert!(
        scan_at(&b, "t", &pack, &Limits::default(), NOW)
            .findings
            .is_empty()
    );
}

#[test]
fn tampering_is_pe_sig_002() {
    let b = read(SHIM);
    // A byte in .text: both signatures' image digests stop matching.
    let mut t = b.clone();
    t[0x1000] ^= 0xFF;
    let r = scan(&t);
    assert_eq!(r.rule_ids(), BTreeSet::from(["PE-SIG-002".to_string()]));
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    // A byte in the second signature's RSA value: only that one fails.
    let img = pe::parse(&b).expect("pe");
    let certs = img.certificates(&b).expect("certs");
    assert_eq!(certs.len(), 2);
    let sd = automata_fwscan::pkcs7::parse_content_info(&certs[1].data).expect("pkcs7");
    let rsa = &sd.signers[0].signature;
    let at = b
        .windows(rsa.len())
        .position(|w| w == rsa.as_slice())
        .expect("signature bytes");
    let mut t = b.clone();
    t[at + 10] ^= 0x01;
    let r = authenticode::verify(&t, &[]).expect("pe");
    let valid: Vec<bool> = r.signatures.iter().map(|s| s.valid).collect();
    assert_eq!(valid, [true, false], "{r:#?}");
}

#[test]
fn cert_table_outside_the_file_is_fw_fmt_001() {
    let mut b = read(SHIM);
    let e_lfanew = u32::from_le_bytes(b[0x3C..0x40].try_into().expect("4")) as usize;
    // PE32+: data directories at optional header + 112, security is entry 4.
    let sec = e_lfanew + 24 + 112 + 4 * 8;
    b[sec + 4..sec + 8].copy_from_slice(&0x7FFF_0000u32.to_le_bytes());
    let r = scan(&b);
    assert!(r.rule_ids().contains("FW-FMT-001"), "{:#?}", r.findings);
    assert!(matches!(
        pe::parse(&b),
        Err(pe::PeError::CertTableOutside { .. })
    ));
}

#[test]
fn dbx_listed_hash_is_pe_dbx_001() {
    let b = read(SHIM);
    let hash = authenticode::verify(&b, &[])
        .expect("pe")
        .authenticode_sha256;
    let mut pack = RulePack::builtin();
    pack.dbx_reference
        .images
        .push(automata_fwscan::rules::DbxImage {
            sha256: hash.clone(),
            filename: "shimx64.efi".into(),
            description: "test".into(),
        });
    let r = scan_at(&b, "t", &pack, &Limits::default(), NOW);
    assert_eq!(r.rule_ids(), BTreeSet::from(["PE-DBX-001".to_string()]));
    assert_eq!(r.findings[0].evidence.hash.as_deref(), Some(hash.as_str()));
}
