//! Capsules built here byte by byte (UEFI 2.10 §23.3) and signed with openssl and the snakeoil
//! key Debian's ovmf ships; archives made with Python's zipfile/gzip, fwupd-tests' real cabs and
//! the cab crate's writer. Limits must turn into FW-FMT-002, never a panic.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Command;

use automata_fwscan::{Limits, RulePack, ScanReport, guid, scan_at};

const NOW: i64 = 1_796_083_200;

fn scan_with(b: &[u8], limits: &Limits) -> ScanReport {
    scan_at(b, "t", &RulePack::builtin(), limits, NOW)
}

fn scan(b: &[u8]) -> ScanReport {
    scan_with(b, &Limits::default())
}

fn ids(r: &ScanReport) -> BTreeSet<String> {
    r.rule_ids()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn capsule_header(g: &guid::Guid, header_size: u32, flags: u32, image_size: u32) -> Vec<u8> {
    let mut b = g.0.to_vec();
    b.extend(header_size.to_le_bytes());
    b.extend(flags.to_le_bytes());
    b.extend(image_size.to_le_bytes());
    b
}

/// An FMP capsule with one v3 image whose data is `image` (authentication included or not).
fn fmp_capsule(image: &[u8]) -> Vec<u8> {
    let hs = 32u32;
    let mut fmp = Vec::new();
    fmp.extend(1u32.to_le_bytes());
    fmp.extend(0u16.to_le_bytes());
    fmp.extend(1u16.to_le_bytes());
    fmp.extend(16u64.to_le_bytes()); // item 0 right after this 16-byte header
    fmp.extend(3u32.to_le_bytes());
    fmp.extend(
        guid::Guid::parse("11111111-2222-3333-4444-555555555555")
            .expect("g")
            .0,
    );
    fmp.extend([1u8, 0, 0, 0]);
    fmp.extend((image.len() as u32).to_le_bytes());
    fmp.extend(0u32.to_le_bytes());
    fmp.extend(0u64.to_le_bytes());
    fmp.extend(0u64.to_le_bytes());
    fmp.extend(image);
    let total = hs + fmp.len() as u32;
    let mut b = capsule_header(&guid::FMP_CAPSULE, hs, 0x50000, total);
    b.resize(hs as usize, 0);
    b.extend(fmp);
    b
}

/// EFI_FIRMWARE_IMAGE_AUTHENTICATION with PKCS#7 `sig`, followed by `payload`.
fn authenticated(payload: &[u8], count: u64, sig: &[u8]) -> Vec<u8> {
    let mut b = count.to_le_bytes().to_vec();
    b.extend((24 + sig.len() as u32).to_le_bytes());
    b.extend(0x0200u16.to_le_bytes());
    b.extend(0x0EF1u16.to_le_bytes());
    b.extend(guid::CERT_TYPE_PKCS7.0);
    b.extend(sig);
    b.extend(payload);
    b
}

/// Signs payload ‖ MonotonicCount the way edk2's GenerateCapsule does (openssl smime, detached).
fn snakeoil_sign(msg: &[u8]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().ok()?;
    let input = dir.path().join("msg");
    std::fs::write(&input, msg).ok()?;
    let out = dir.path().join("sig");
    let st = Command::new("openssl")
        .args([
            "smime", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
        ])
        .args(["-signer", "/usr/share/ovmf/PkKek-1-snakeoil.pem"])
        .args([
            "-inkey",
            "/usr/share/ovmf/PkKek-1-snakeoil.key",
            "-passin",
            "pass:snakeoil",
        ])
        .arg("-in")
        .arg(&input)
        .arg("-out")
        .arg(&out)
        .status()
        .ok()?;
    st.success().then(|| std::fs::read(&out).ok()).flatten()
}

#[test]
fn fmp_image_without_authentication_is_cap_002() {
    let r = scan(&fmp_capsule(b"firmware payload"));
    assert_eq!(ids(&r), set(&["CAP-002"]), "{:#?}", r.findings);
}

#[test]
fn fmp_image_signed_with_openssl_verifies() {
    let payload = b"firmware payload bytes".to_vec();
    let mut msg = payload.clone();
    msg.extend(7u64.to_le_bytes());
    let sig = snakeoil_sign(&msg).expect("openssl and ovmf's snakeoil key");
    let r = scan(&fmp_capsule(&authenticated(&payload, 7, &sig)));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let img = r
        .nodes()
        .into_iter()
        .find(|n| n.format == "fmp-image")
        .expect("image");
    assert!(
        img.detail.as_deref().unwrap_or("").contains("SnakeOil"),
        "{img:#?}"
    );
    // The wrong MonotonicCount breaks it.
    let r = scan(&fmp_capsule(&authenticated(&payload, 8, &sig)));
    assert_eq!(ids(&r), set(&["CAP-002"]));
}

#[test]
fn inconsistent_capsules_are_cap_001() {
    let mut b = fmp_capsule(b"x");
    b[16..20].copy_from_slice(&0x10_0000u32.to_le_bytes()); // HeaderSize beyond the file
    assert_eq!(ids(&scan(&b)), set(&["CAP-001"]));
    let mut b = fmp_capsule(b"x");
    b[24..28].copy_from_slice(&0x10_0000u32.to_le_bytes()); // CapsuleImageSize beyond the file
    assert_eq!(ids(&scan(&b)), set(&["CAP-001"]));
    let mut b = fmp_capsule(b"x");
    b[40..48].copy_from_slice(&0xFFFF_FFFFu64.to_le_bytes()); // item offset outside
    assert_eq!(ids(&scan(&b)), set(&["CAP-001"]));
    let mut b = fmp_capsule(b"xyz");
    b[32 + 16 + 24..32 + 16 + 28].copy_from_slice(&0x1000u32.to_le_bytes()); // image size
    assert_eq!(ids(&scan(&b)), set(&["CAP-001"]));
}

#[test]
fn fwupd_capsule_header_wraps_a_volume() {
    // fwupd's add_capsule_header.py layout: 4 KiB header, flags 0x70000, a GUID of its own.
    let code = std::fs::read("/usr/share/OVMF/OVMF_CODE_4M.fd").expect("ovmf");
    let sec = &code[0x348000..];
    let g = guid::Guid::parse("cc4cbfa9-bf9d-540b-b92b-172ce31013c1").expect("g");
    let mut b = capsule_header(&g, 4096, 0x70000, 4096 + sec.len() as u32);
    b.resize(4096, 0);
    b.extend_from_slice(sec);
    let r = scan(&b);
    assert_eq!(r.tree[0].format, "capsule");
    assert!(!r.guids_of("fv").is_empty(), "{:#?}", r.tree);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

fn python(script: &str, dir: &std::path::Path) -> Vec<u8> {
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .status()
        .expect("python3");
    assert!(st.success());
    std::fs::read(dir.join("out")).expect("out")
}

#[test]
fn zip_bomb_and_escapes_are_fw_fmt_002() {
    let dir = tempfile::tempdir().expect("tmp");
    let bomb = python(
        "import zipfile\nz=zipfile.ZipFile('out','w',zipfile.ZIP_DEFLATED)\nz.writestr('zeros.bin', b'\\0'*(64<<20))\nz.close()",
        dir.path(),
    );
    assert!(bomb.len() < 200_000);
    let r = scan(&bomb);
    assert_eq!(ids(&r), set(&["FW-FMT-002"]), "{:#?}", r.findings);
    let esc = python(
        "import zipfile\nz=zipfile.ZipFile('out','w')\nz.writestr('../evil', b'x')\nz.writestr('/abs', b'y')\nz.writestr('ok/shim.efi', open('/usr/lib/shim/shimx64.efi.signed','rb').read())\nz.close()",
        dir.path(),
    );
    let r = scan(&esc);
    assert_eq!(ids(&r), set(&["FW-FMT-002"]), "{:#?}", r.findings);
    assert_eq!(r.findings.len(), 2, "{:#?}", r.findings);
    // The safe entry was still unpacked and its signatures checked.
    assert!(r.nodes().iter().any(|n| n.format == "authenticode"));
}

#[test]
fn gzip_over_ratio_and_too_deep_nesting() {
    let dir = tempfile::tempdir().expect("tmp");
    let gz = python(
        "import gzip\nopen('out','wb').write(gzip.compress(b'\\0'*(32<<20)))",
        dir.path(),
    );
    assert_eq!(ids(&scan(&gz)), set(&["FW-FMT-002"]));
    // gzip(gzip(…(unsigned shim)…)) ten times: depth 8 stops it.
    let mut b = std::fs::read("/usr/lib/shim/shimx64.efi").expect("shim");
    for _ in 0..10 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b).expect("gz");
        b = e.finish().expect("gz");
    }
    let r = scan(&b);
    assert_eq!(ids(&r), set(&["FW-FMT-002"]), "{:#?}", r.findings);
    assert!(
        r.errors
            .iter()
            .any(|e| e.message.contains("nesting deeper than 8"))
    );
    // Three levels are fine: the shim inside is reached.
    let mut b = std::fs::read("/usr/lib/shim/shimx64.efi").expect("shim");
    for _ in 0..3 {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&b).expect("gz");
        b = e.finish().expect("gz");
    }
    assert_eq!(ids(&scan(&b)), set(&["PE-SIG-001"]));
}

#[test]
fn entry_count_limit() {
    let dir = tempfile::tempdir().expect("tmp");
    let z = python(
        "import zipfile\nz=zipfile.ZipFile('out','w')\n[z.writestr(f'f{i}', b'x') for i in range(50)]\nz.close()",
        dir.path(),
    );
    let limits = Limits {
        max_entries: 20,
        ..Limits::default()
    };
    assert_eq!(ids(&scan_with(&z, &limits)), set(&["FW-FMT-002"]));
    assert!(scan(&z).findings.is_empty());
}

#[test]
fn real_lvfs_cab_unpacks() {
    let b =
        std::fs::read("/usr/share/installed-tests/fwupd/fakedevice124.cab").expect("fwupd-tests");
    let r = scan(&b);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let names: Vec<_> = r.nodes().iter().filter_map(|n| n.name.clone()).collect();
    assert!(
        names.iter().any(|n| n.ends_with(".metainfo.xml")),
        "{names:?}"
    );
}

#[test]
fn cab_with_escaping_name() {
    let mut builder = cab::CabinetBuilder::new();
    let folder = builder.add_folder(cab::CompressionType::MsZip);
    folder.add_file("good.bin");
    folder.add_file("..\\evil.bin");
    let mut w = builder
        .build(std::io::Cursor::new(Vec::new()))
        .expect("cab");
    while let Some(mut f) = w.next_file().expect("next") {
        f.write_all(b"data").expect("write");
    }
    let b = w.finish().expect("finish").into_inner();
    let r = scan(&b);
    // The cab carries no jcat either: PKG-SIG-001 beside the escape.
    assert_eq!(
        ids(&r),
        set(&["FW-FMT-002", "PKG-SIG-001"]),
        "{:#?}",
        r.findings
    );
    assert!(
        r.nodes()
            .iter()
            .any(|n| n.name.as_deref() == Some("good.bin"))
    );
}

#[test]
fn zstd_and_xz_streams_unpack() {
    let shim = std::fs::read("/usr/lib/shim/shimx64.efi").expect("shim");
    let z = zstd::encode_all(shim.as_slice(), 1).expect("zstd");
    assert_eq!(ids(&scan(&z)), set(&["PE-SIG-001"]));
    let dir = tempfile::tempdir().expect("tmp");
    let xz = python(
        "import lzma\nopen('out','wb').write(lzma.compress(open('/usr/lib/shim/shimx64.efi','rb').read()))",
        dir.path(),
    );
    assert_eq!(ids(&scan(&xz)), set(&["PE-SIG-001"]));
}
