//! Package signatures (PKG-SIG-001/002/003) on real peers: fwupd-tests' `fakedevice124.cab`,
//! whose jcat carries a PKCS#7 by the LVFS CA (the builtin pack's package root), cabs rebuilt
//! from its members without the jcat or with a changed payload, and a Windows executable (a
//! DUP's shape) signed with `sbsign`.

use std::collections::BTreeSet;
use std::io::{Cursor, Read, Write};
use std::process::Command;

use automata_fwscan::signed::Verdict;
use automata_fwscan::{Limits, RulePack, ScanReport, TrustedRoot, scan_at};

const NOW: i64 = 1_796_083_200;
const CAB: &str = "/usr/share/installed-tests/fwupd/fakedevice124.cab";
const SHIM_UNSIGNED: &str = "/usr/lib/shim/shimx64.efi";

fn read(p: &str) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| {
        panic!("{p}: {e}; install fwupd-tests and shim-unsigned (scripts/install-deps.sh)")
    })
}

fn scan_with(b: &[u8], pack: &RulePack) -> ScanReport {
    scan_at(b, "t", pack, &Limits::default(), NOW)
}

fn pkg_rules(r: &ScanReport) -> BTreeSet<String> {
    r.rule_ids()
        .into_iter()
        .filter(|id| id.starts_with("PKG-SIG"))
        .collect()
}

fn state(r: &ScanReport) -> &'static str {
    r.package.as_ref().map_or("none", |p| p.state())
}

/// The members of a cab, in order.
fn members(cab: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut c = automata_cabinet::open(cab).expect("cab");
    let names: Vec<String> = c
        .folder_entries()
        .flat_map(|f| {
            f.file_entries()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    names
        .into_iter()
        .map(|n| {
            let mut data = Vec::new();
            c.read_file(&n)
                .expect("member")
                .read_to_end(&mut data)
                .expect("read");
            (n, data)
        })
        .collect()
}

/// A cab of these members, with the `cab` crate's writer.
fn build_cab(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = cab::CabinetBuilder::new();
    {
        let folder = b.add_folder(cab::CompressionType::MsZip);
        for (name, _) in files {
            folder.add_file(name.clone());
        }
    }
    let mut w = b.build(Cursor::new(Vec::new())).expect("build");
    let mut i = 0;
    while let Some(mut f) = w.next_file().expect("next") {
        f.write_all(&files[i].1).expect("write");
        i += 1;
    }
    w.finish().expect("finish").into_inner()
}

#[test]
fn fakedevice124_cab_is_signed_under_the_lvfs_ca() {
    let cab = read(CAB);
    let r = scan_with(&cab, &RulePack::builtin());
    assert!(pkg_rules(&r).is_empty(), "{:?}", r.findings);
    let p = r.package.as_ref().expect("package verdict");
    assert_eq!(p.format, "cab-jcat");
    assert_eq!(p.verdict, Some(Verdict::Valid), "{p:?}");
    assert_eq!(p.signer.as_deref(), Some("CN=Richard Hughes"));
    assert!(
        p.trusted_root
            .as_deref()
            .is_some_and(|r| r.starts_with("LVFS CA")),
        "{p:?}"
    );

    // Without the LVFS CA among the package roots: signed, but not by anyone we trust.
    let r = scan_with(&cab, &RulePack::empty("no roots"));
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-003".to_string()]));
    assert_eq!(state(&r), "untrusted");
}

#[test]
fn rebuilt_cabs_without_jcat_or_with_a_changed_payload() {
    let files = members(&read(CAB));
    let pack = RulePack::builtin();
    // Rebuilt faithfully: still valid (the check reads members, not the container's bytes).
    let r = scan_with(&build_cab(&files), &pack);
    assert_eq!(state(&r), "valid", "{:?}", r.findings);

    let unsigned: Vec<_> = files
        .iter()
        .filter(|(n, _)| !n.ends_with(".jcat"))
        .cloned()
        .collect();
    let r = scan_with(&build_cab(&unsigned), &pack);
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-001".to_string()]));
    assert_eq!(state(&r), "missing");

    let mut changed = files.clone();
    let bin = changed
        .iter_mut()
        .find(|(n, _)| n.ends_with(".bin"))
        .expect("payload");
    bin.1[0] ^= 1;
    let r = scan_with(&build_cab(&changed), &pack);
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-002".to_string()]));
    assert_eq!(state(&r), "invalid");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "PKG-SIG-002")
        .expect("finding");
    assert_eq!(f.severity, automata_fwscan::Severity::High);
    assert!(
        f.evidence
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("sha256")),
        "{f:?}"
    );
}

/// The unsigned shim with its subsystem set to Windows console: a DUP's shape.
fn windows_exe() -> Vec<u8> {
    let mut b = read(SHIM_UNSIGNED);
    let pe = u32::from_le_bytes(b[0x3C..0x40].try_into().expect("e_lfanew")) as usize;
    let subsystem = pe + 24 + 68;
    b[subsystem..subsystem + 2].copy_from_slice(&3u16.to_le_bytes());
    b
}

#[test]
fn windows_executable_package_signature() {
    let dir = tempfile::tempdir().expect("tmp");
    let exe = dir.path().join("dup.exe");
    std::fs::write(&exe, windows_exe()).expect("write");
    let pack = RulePack::builtin();

    let r = scan_with(&windows_exe(), &pack);
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-001".to_string()]));
    assert!(!r.rule_ids().contains("PE-SIG-001"), "{:?}", r.rule_ids());
    assert_eq!(
        r.package.as_ref().map(|p| p.format.as_str()),
        Some("dup-authenticode")
    );

    // Signed by a vendor key of our own making, with sbsign (Debian sbsigntool).
    let key = dir.path().join("vendor.key");
    let cert = dir.path().join("vendor.pem");
    let ok = Command::new("openssl")
        .args([
            "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=Example Vendor Update Signing"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let signed = dir.path().join("dup-signed.exe");
    let ok = Command::new("sbsign")
        .arg("--key")
        .arg(&key)
        .arg("--cert")
        .arg(&cert)
        .arg("--output")
        .arg(&signed)
        .arg(&exe)
        .output()
        .expect("sbsign (Debian sbsigntool) installed");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let signed = std::fs::read(&signed).expect("signed");

    let r = scan_with(&signed, &pack);
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-003".to_string()]));
    assert_eq!(state(&r), "untrusted");

    let mut trusting = RulePack::builtin();
    trusting
        .package_roots
        .push(TrustedRoot::from_pem(&std::fs::read(&cert).expect("pem")).expect("root"));
    let r = scan_with(&signed, &trusting);
    assert!(pkg_rules(&r).is_empty(), "{:?}", r.findings);
    let p = r.package.as_ref().expect("package");
    assert_eq!(p.verdict, Some(Verdict::Valid));
    assert_eq!(
        p.signer.as_deref(),
        Some("CN=Example Vendor Update Signing")
    );

    // One byte changed in the signed image: the Authenticode digest no longer matches.
    let mut tampered = signed.clone();
    let at = 0x400;
    tampered[at] ^= 0xFF;
    let r = scan_with(&tampered, &trusting);
    assert_eq!(pkg_rules(&r), BTreeSet::from(["PKG-SIG-002".to_string()]));
    assert_eq!(state(&r), "invalid");
}
