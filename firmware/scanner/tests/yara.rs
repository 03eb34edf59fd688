//! YARA-<rule> through `scan`: no false positive on Debian's ovmf images, a private key hidden in
//! an LZMA section, a gzip stream and a zip member found with its container path, an operator's
//! directory of rules, and packs whose rules do not compile refused with the file's name.

use std::io::Write;
use std::path::Path;

use automata_fwscan::testkit;
use automata_fwscan::yara::{self, YaraSource};
use automata_fwscan::{Finding, Limits, RulePack, RulePackError, ScanReport, Severity, scan_at};

/// 2026-12-01T00:00:00Z, as the other image tests.
const NOW: i64 = 1_796_083_200;
const PEM: &[u8] = b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB1fakefakefakefakefakefakefakefakefakefakeoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n";
/// edk2's LZMA custom decompress GUID-defined section, EE4E5898-3914-4259-9D6E-DC7BD79403CF.
const LZMA_GUID: [u8; 16] = [
    0x98, 0x58, 0x4e, 0xee, 0x14, 0x39, 0x59, 0x42, 0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03, 0xcf,
];
fn scan_with(b: &[u8], pack: &RulePack) -> ScanReport {
    scan_at(b, "t", pack, &Limits::default(), NOW)
}

fn yara_findings(r: &ScanReport) -> Vec<&Finding> {
    r.findings
        .iter()
        .filter(|f| f.rule_id.starts_with(yara::YARA_PREFIX))
        .collect()
}

fn find<'r>(r: &'r ScanReport, id: &str) -> &'r Finding {
    r.findings
        .iter()
        .find(|f| f.rule_id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", r.findings))
}

fn section(kind: u8, body: &[u8]) -> Vec<u8> {
    testkit::section(kind, body).expect("small")
}

/// An lzma_alone stream with its size in the header, as edk2's LzmaCompress writes it.
fn lzma_alone(data: &[u8]) -> Vec<u8> {
    let opts = liblzma::stream::LzmaOptions::new_preset(6).expect("preset");
    let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).expect("encoder");
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data).expect("compress");
    let mut out = e.finish().expect("finish");
    out[5..13].copy_from_slice(&(data.len() as u64).to_le_bytes());
    out
}

/// A GUID-defined LZMA section (processing required) around `inner` sections.
fn lzma_section(inner: &[u8]) -> Vec<u8> {
    let mut body = LZMA_GUID.to_vec();
    body.extend(24u16.to_le_bytes()); // DataOffset: after the 24-byte header
    body.extend(1u16.to_le_bytes()); // EFI_GUIDED_SECTION_PROCESSING_REQUIRED
    body.extend(lzma_alone(inner));
    section(0x02, &body)
}

fn volume(body: &[u8]) -> Vec<u8> {
    testkit::ffs2_volume(body).expect("small")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn zip_with(name: &str, data: &[u8]) -> Vec<u8> {
    zip_as(name, data, zip::CompressionMethod::Deflated)
}

fn zip_as(name: &str, data: &[u8], method: zip::CompressionMethod) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    z.start_file(name, opts).expect("zip entry");
    z.write_all(data).expect("zip data");
    z.finish().expect("zip").into_inner()
}

fn with_key_at(offset: usize) -> Vec<u8> {
    let mut raw = vec![0x5au8; offset];
    raw.extend_from_slice(PEM);
    raw.extend(vec![0x5au8; 3000]);
    raw
}

#[test]
fn debian_ovmf_images_raise_no_yara_finding() {
    let pack = RulePack::builtin();
    let mut seen = 0;
    for e in std::fs::read_dir("/usr/share/OVMF").expect("install Debian's ovmf") {
        let p = e.expect("entry").path();
        if p.extension().is_none_or(|x| x != "fd") {
            continue;
        }
        let r = scan_with(&std::fs::read(&p).expect("read"), &pack);
        assert!(yara_findings(&r).is_empty(), "{}: {:#?}", p.display(), r);
        assert!(!r.notes.iter().any(|n| n.contains("YARA")), "{:?}", r.notes);
        seen += 1;
    }
    assert!(seen >= 4, "only {seen} ovmf images");
}

#[test]
fn the_rules_reach_ovmfs_lzma_compressed_volumes() {
    // CpuExceptionHandlerLib's message is only inside OVMF_CODE's LZMA-compressed volumes: a
    // rule for it matches there, with the section's path and never at the top level.
    let code = std::fs::read("/usr/share/OVMF/OVMF_CODE_4M.fd").expect("ovmf");
    let needle = "!!!! Can't find image information. !!!!";
    assert!(!code.windows(needle.len()).any(|w| w == needle.as_bytes()));
    let pack = RulePack::builtin()
        .with_operator_yara(vec![YaraSource {
            name: "dxe.yar".into(),
            source: format!("rule InsideLzma {{ strings: $a = \"{needle}\" condition: $a }}"),
        }])
        .expect("compiles");
    let r = scan_with(&code, &pack);
    let hits = yara_findings(&r);
    assert!(!hits.is_empty(), "{:#?}", r.findings);
    for f in hits {
        assert_eq!(f.rule_id, "YARA-InsideLzma");
        let path = f.evidence.container_path.clone().unwrap_or_default();
        let node = r
            .nodes()
            .into_iter()
            .find(|n| n.path == path)
            .unwrap_or_else(|| panic!("{path} is not in the tree"));
        assert!(
            node.detail.as_deref().unwrap_or("").contains("lzma"),
            "{node:?}"
        );
    }
}

#[test]
fn a_private_key_in_an_lzma_section_is_found_with_its_path_and_offset() {
    let raw = section(0x19, &with_key_at(1000)); // a RAW section inside the stream
    let image = volume(&lzma_section(&raw));
    assert!(
        !image.windows(PEM.len()).any(|w| w == PEM),
        "the key must be hidden by the compression"
    );
    let r = scan_with(&image, &RulePack::builtin());
    let f = find(&r, "YARA-PrivateKeyInFirmware");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(
        f.evidence.container_path.as_deref(),
        Some("/fv@0x0/ffs@0x48/sec@0x0")
    );
    assert_eq!(
        f.evidence.offset,
        Some(4 + 1000),
        "offset in the decompressed stream"
    );
    assert_eq!(yara_findings(&r).len(), 1);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn a_private_key_in_gzip_and_zip_is_found_in_the_member() {
    let pack = RulePack::builtin();
    let r = scan_with(&gzip(&with_key_at(500)), &pack);
    let f = find(&r, "YARA-PrivateKeyInFirmware");
    assert_eq!(f.evidence.container_path.as_deref(), Some("/gzip@0x0"));
    assert_eq!(f.evidence.offset, Some(500));

    let r = scan_with(&zip_with("etc/ssl/server.key", &with_key_at(64)), &pack);
    let f = find(&r, "YARA-PrivateKeyInFirmware");
    assert_eq!(
        f.evidence.container_path.as_deref(),
        Some("/zip@0x0/etc/ssl/server.key")
    );
    assert_eq!(f.evidence.offset, Some(64));
    assert_eq!(
        yara_findings(&r).len(),
        1,
        "deflated: not visible at the top"
    );

    // Stored: the bytes are in the archive itself, found there once, not again in the member.
    let stored = zip_as(
        "etc/ssl/server.key",
        &with_key_at(64),
        zip::CompressionMethod::Stored,
    );
    let r = scan_with(&stored, &pack);
    let found = yara_findings(&r);
    assert_eq!(found.len(), 1, "one match, one finding: {found:?}");
    assert_eq!(found[0].evidence.container_path.as_deref(), Some("/"));
}

#[test]
fn a_root_password_hash_in_a_gzipped_shadow_file_is_medium() {
    let shadow = b"root:$y$j9T$Qm0rW8xN2pL5kV7cD1fG3h$Xb4nT6yU8iO0pA2sD4fG6hJ8kL0zX2cV4bN6mQ8wE1r:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n";
    let r = scan_with(&gzip(shadow), &RulePack::builtin());
    let f = find(&r, "YARA-RootPasswordHashInFirmware");
    assert_eq!(f.severity, Severity::Medium);
    assert_eq!(f.evidence.offset, Some(0));
}

#[test]
fn an_operator_directory_adds_rules_replaces_by_name_and_tags_the_version() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("lab.yar"),
        "rule LabBackdoor { meta: severity = \"critical\" description = \"lab backdoor marker\" \
         strings: $a = \"lab-backdoor-7f3a\" condition: $a }",
    )
    .expect("write");
    // An operator's private_keys.yar replaces the shipped one (here: with nothing to find).
    std::fs::write(
        dir.path().join("private_keys.yar"),
        "rule Quiet { condition: false }",
    )
    .expect("write");
    std::fs::write(dir.path().join("README.txt"), "not a rule").expect("write");
    let files = yara::read_dir(dir.path()).expect("read");
    assert_eq!(
        files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["lab.yar", "private_keys.yar"]
    );
    let base = RulePack::builtin();
    let pack = base.clone().with_operator_yara(files).expect("compiles");
    assert!(
        pack.version.starts_with(&format!("{}+yara-", base.version)),
        "{}",
        pack.version
    );
    assert_eq!(pack.yara.len(), base.yara.len() + 1);

    let mut blob = with_key_at(10);
    blob.extend_from_slice(b"...lab-backdoor-7f3a...");
    let r = scan_with(&blob, &pack);
    let f = find(&r, "YARA-LabBackdoor");
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(f.subject, "lab backdoor marker");
    assert_eq!(f.rule_pack, pack.version);
    assert_eq!(
        yara_findings(&r).len(),
        1,
        "the shipped key rule was replaced"
    );
    assert_eq!(r.max_severity(), Some(Severity::Critical));

    assert_eq!(
        yara::read_dir(&dir.path().join("absent")).expect("none"),
        vec![]
    );
    let same = RulePack::builtin()
        .with_operator_yara(Vec::new())
        .expect("no-op");
    assert_eq!(same, RulePack::builtin());
}

#[test]
fn packs_with_rules_that_do_not_compile_are_refused_with_the_file_name() {
    let json = r#"{"version": "lab", "yara": [
        {"name": "good.yar", "source": "rule Good { condition: false }"},
        {"name": "broken.yar", "source": "rule Broken { strings: $a = \"x\" condition: $b }"}]}"#;
    match RulePack::from_json(json) {
        Err(RulePackError::Yara(e)) => {
            assert_eq!(e.file, "broken.yar");
            assert!(e.to_string().contains("broken.yar"), "{e}");
        }
        other => panic!("not refused: {other:?}"),
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("pack.json");
    std::fs::write(&path, json).expect("write");
    let e = RulePack::load(&path).expect_err("refused");
    assert!(e.to_string().contains("broken.yar"), "{e}");

    std::fs::write(dir.path().join("op.yara"), "rule Op { condition: $nope }").expect("write");
    let files = yara::read_dir(dir.path()).expect("read");
    let e = RulePack::builtin()
        .with_operator_yara(files)
        .expect_err("refused");
    assert!(e.to_string().contains("op.yara"), "{e}");
}

#[test]
fn old_packs_get_the_shipped_rules_and_an_empty_list_turns_them_off() {
    let old = RulePack::from_json(r#"{"version": "2025.01-1"}"#).expect("pack");
    assert_eq!(old.yara, yara::builtin_yara());
    let off = RulePack::from_json(r#"{"version": "no-yara", "yara": []}"#).expect("pack");
    assert!(off.yara.is_empty());
    let r = scan_with(&with_key_at(0), &off);
    assert!(yara_findings(&r).is_empty());
    let round = RulePack::from_json(&RulePack::builtin().to_json()).expect("round trip");
    assert_eq!(round, RulePack::builtin());
}

#[test]
fn a_pack_built_in_code_with_broken_rules_scans_without_them_and_says_so() {
    let mut pack = RulePack::builtin();
    pack.yara.push(YaraSource {
        name: "bad.yar".into(),
        source: "rule {".into(),
    });
    let leaked = pack
        .leaked_keys
        .first()
        .and_then(|k| k.patterns.first())
        .map(|p| hex::decode(p).expect("hex"))
        .expect("a leaked key");
    let mut blob = with_key_at(0);
    blob.extend(leaked);
    let r = scan_with(&blob, &pack);
    assert!(yara_findings(&r).is_empty());
    assert!(
        r.rule_ids().contains("KEY-LEAK-001"),
        "other rules still run"
    );
    assert!(
        r.notes.iter().any(|n| n.contains("bad.yar")),
        "{:?}",
        r.notes
    );
}

#[test]
fn yara_files_are_read_by_extension() {
    assert!(yara::is_yara_file(Path::new("a/b.yar")));
    assert!(yara::is_yara_file(Path::new("B.YARA")));
    assert!(!yara::is_yara_file(Path::new("pack.json")));
    let dir = tempfile::tempdir().expect("tmp");
    let p = dir.path().join("x.json");
    std::fs::write(&p, "{}").expect("write");
    assert!(yara::read_file(&p).is_err());
}

/// What YARA adds to a scan of OVMF_CODE_4M.fd and OVMF_VARS_4M.ms.fd (best of 10 rounds, with
/// and without the shipped rules). Meaningless in a debug build: run with
/// `cargo test --release -p automata-fwscan --test yara -- --ignored --nocapture yara_cost`.
#[test]
#[ignore = "timing; run in release by hand"]
fn yara_cost() {
    let files = [
        Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd"),
        Path::new("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
    ];
    let with = RulePack::builtin();
    let mut without = with.clone();
    without.yara.clear();
    for (label, pack) in [("without YARA", &without), ("with YARA", &with)] {
        let b = automata_fwscan::bench::bench_scan(&files, 10, pack, &Limits::default())
            .expect("bench");
        println!(
            "{label}: best {:.1} ms, median {:.1} ms, {} findings",
            b.best.as_secs_f64() * 1e3,
            b.median.as_secs_f64() * 1e3,
            b.findings
        );
        // The fixed cost (one yara-x scanner per blob), on a blob with nothing inside.
        let small = vec![0x5au8; 4096];
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            scan_with(&small, pack);
        }
        println!(
            "{label}: {:.1} µs per 4 KiB scan",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
