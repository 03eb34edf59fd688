//! The EFI 1.1 / Tiano decoder against a peer: streams made by edk2's BaseTools EfiCompress and
//! TianoCompress (the C extension of PyPI's uefi_firmware, see fixtures/tiano/make.py), a volume
//! with EFI- and Tiano-compressed sections walked by the scanner, the unpack limits, and random
//! or mutated streams that must never panic.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use automata_fwscan::tiano::{self, Algorithm, TianoError};
use automata_fwscan::{FW_FMT_001, FW_FMT_002, Limits, Node, RulePack, ScanReport, scan_at};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const NOW: i64 = 1_796_083_200;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiano")
}

/// One compressed fixture and what it must decode to.
struct Fixture {
    file: String,
    algorithm: Algorithm,
    size: u64,
    sha256: String,
    data: Vec<u8>,
}

/// The streams listed in expected.tsv, read once.
fn fixtures() -> &'static [Fixture] {
    static ALL: OnceLock<Vec<Fixture>> = OnceLock::new();
    ALL.get_or_init(|| {
        let manifest = std::fs::read_to_string(dir().join("expected.tsv")).expect("manifest");
        manifest
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 4, "{l}");
                Fixture {
                    file: f[0].to_string(),
                    algorithm: match f[1] {
                        "efi" => Algorithm::Efi,
                        "tiano" => Algorithm::Tiano,
                        other => panic!("algorithm {other}"),
                    },
                    size: f[2].parse().expect("size"),
                    sha256: f[3].to_string(),
                    data: std::fs::read(dir().join(f[0])).expect("fixture"),
                }
            })
            .collect()
    })
}

fn fixture(file: &str) -> &'static Fixture {
    fixtures()
        .iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("{file} not in expected.tsv"))
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[test]
fn peer_streams_decode_to_the_originals() {
    assert!(fixtures().len() >= 12, "fixtures missing");
    for f in fixtures() {
        let out = tiano::decompress(&f.data, f.algorithm, f.size)
            .unwrap_or_else(|e| panic!("{}: {e}", f.file));
        assert_eq!(out.len() as u64, f.size, "{}", f.file);
        assert_eq!(sha(&out), f.sha256, "{}", f.file);
        assert_eq!(tiano::declared_size(&f.data), Some(f.size));
        let (out, used) = tiano::decompress_either(&f.data, f.algorithm, f.size).expect("either");
        assert_eq!((sha(&out), used), (f.sha256.clone(), f.algorithm));
    }
}

#[test]
fn the_two_variants_are_told_apart() {
    // Streams with a real position tree do not decode as the other variant.
    for name in ["text", "repetitive", "far", "ovmf-secfv"] {
        for (algorithm, other) in [
            (Algorithm::Efi, Algorithm::Tiano),
            (Algorithm::Tiano, Algorithm::Efi),
        ] {
            let f = fixture(&format!("{name}.{}.bin", algorithm.name()));
            assert!(
                tiano::decompress(&f.data, other, f.size).is_err(),
                "{} decoded as {other:?}",
                f.file
            );
            let (_, used) = tiano::decompress_either(&f.data, other, f.size).expect("fallback");
            assert_eq!(used, algorithm, "{}", f.file);
        }
    }
    // Matches 9 KiB back: Tiano's window, not EFI's (whose stream is three times larger).
    let efi = fixture("far.efi.bin");
    let tiano = fixture("far.tiano.bin");
    assert!(tiano.data.len() * 3 < efi.data.len());
}

#[test]
fn declared_size_is_checked_before_decoding() {
    for f in fixtures().iter().filter(|f| f.size > 0) {
        assert_eq!(
            tiano::decompress(&f.data, f.algorithm, f.size - 1),
            Err(TianoError::TooLarge {
                size: f.size,
                limit: f.size - 1
            }),
            "{}",
            f.file
        );
    }
    // 4 GiB declared in 16 bytes: refused without allocating.
    let mut s = 8u32.to_le_bytes().to_vec();
    s.extend(u32::MAX.to_le_bytes());
    s.extend([0u8; 8]);
    assert!(matches!(
        tiano::decompress(&s, Algorithm::Tiano, 64 << 20),
        Err(TianoError::TooLarge { .. })
    ));
}

#[test]
fn truncated_streams_are_errors() {
    for f in fixtures().iter().filter(|f| f.size > 0) {
        let comp = u32::from_le_bytes(f.data[..4].try_into().expect("4"));
        // The bytes end before the compressed size.
        let cut = &f.data[..8 + comp as usize - 1];
        assert_eq!(
            tiano::decompress(cut, f.algorithm, f.size),
            Err(TianoError::TruncatedStream {
                declared: comp,
                available: comp as usize - 1
            }),
            "{}",
            f.file
        );
        // The compressed size says less than the stream needs: decoding must not go on into
        // zero padding. The last byte may be the encoder's flush (zero bits only), so without
        // it a stream may still decode, to the same bytes.
        for keep in [comp / 4, comp / 2, comp - 1] {
            let mut short = f.data.clone();
            short[..4].copy_from_slice(&keep.to_le_bytes());
            match tiano::decompress(&short, f.algorithm, f.size) {
                Err(_) => {}
                Ok(out) if keep == comp - 1 => assert_eq!(sha(&out), f.sha256, "{}", f.file),
                Ok(_) => panic!("{} with {keep} of {comp} bytes decoded", f.file),
            }
        }
    }
    assert_eq!(
        tiano::decompress(&[0; 7], Algorithm::Efi, 10),
        Err(TianoError::TruncatedHeader { len: 7 })
    );
}

/// The builtin rule pack, parsed once (it is most of a small scan's time).
fn rules() -> &'static RulePack {
    static RULES: OnceLock<RulePack> = OnceLock::new();
    RULES.get_or_init(RulePack::builtin)
}

fn scan_with(b: &[u8], limits: &Limits) -> ScanReport {
    scan_at(b, "tiano.fv", rules(), limits, NOW)
}

fn sections_fv() -> Vec<u8> {
    std::fs::read(dir().join("sections.fv")).expect("sections.fv")
}

/// The node with this UI name, and the chain of nodes above it.
fn find_named<'a>(nodes: &'a [Node], name: &str, chain: &mut Vec<&'a Node>) -> bool {
    for n in nodes {
        chain.push(n);
        if n.name.as_deref() == Some(name) && n.format == "section:user-interface" {
            return true;
        }
        if find_named(&n.children, name, chain) {
            return true;
        }
        chain.pop();
    }
    false
}

#[test]
fn scanner_walks_into_efi_and_tiano_sections() {
    let report = scan_with(&sections_fv(), &Limits::default());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        !report.notes.iter().any(|n| n.contains("not supported")),
        "{:?}",
        report.notes
    );
    for (name, container, detail) in [
        ("EfiInner", "section:compression", "efi compression"),
        ("TianoInner", "section:guid-defined", "tiano"),
        // A Tiano stream in an EFI compression section, decoded by the fallback.
        ("QuirkInner", "section:compression", "tiano compression"),
    ] {
        let mut chain = Vec::new();
        assert!(
            find_named(&report.tree, name, &mut chain),
            "{name} not found: {:#?}",
            report.tree
        );
        let parent = chain[chain.len() - 2];
        assert_eq!(parent.format, container, "{name}");
        assert_eq!(parent.detail.as_deref(), Some(detail), "{name}");
        assert!(parent.path.ends_with(&format!("/sec@{:#x}", parent.offset)));
        // The decompressed sections start a new buffer.
        assert_eq!(chain[chain.len() - 1].offset, 0, "{name}");
        assert!(parent.children.len() >= 2, "{name}: {:?}", parent.children);
    }
    let nodes = report.nodes();
    let pe = nodes
        .iter()
        .find(|n| n.format == "section:pe32")
        .expect("PE32 section inside the Tiano section");
    assert!(pe.path.contains("/sec@"), "{}", pe.path);
    let raw: Vec<_> = nodes.iter().filter(|n| n.format == "section:raw").collect();
    assert_eq!(raw.len(), 2, "raw sections in both compression sections");
    // The guid-defined section carries the Tiano GUID.
    assert!(
        nodes
            .iter()
            .any(|n| n.guid.as_deref() == Some("a31280ad-481e-41b6-95e8-127f4c984779"))
    );
}

#[test]
fn limits_apply_to_efi_and_tiano_output() {
    let image = sections_fv();
    // The ratio cap has a 1 MiB floor; a small volume hits the total-size budget instead.
    let tight = Limits {
        max_total_bytes: 100,
        ..Limits::default()
    };
    let report = scan_with(&image, &tight);
    let limited: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == FW_FMT_002)
        .collect();
    assert!(
        limited
            .iter()
            .any(|f| f.subject.contains("EFI compression output of")),
        "{limited:?}"
    );
    assert!(
        limited
            .iter()
            .any(|f| f.subject.contains("Tiano compression output of")),
        "{limited:?}"
    );
    // Depth: the FV and the file use two levels; no room left to decompress into.
    let shallow = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    let report = scan_with(&image, &shallow);
    assert!(report.rule_ids().contains(FW_FMT_002));
    assert!(
        !report
            .nodes()
            .iter()
            .any(|n| n.name.as_deref() == Some("TianoInner"))
    );
}

/// Offset of the first compressed stream in sections.fv: the EFI compression section after
/// the UI section at the start of the one file's body.
fn first_stream(image: &[u8]) -> usize {
    // FV header (72 bytes), FFS header (24), then the sections.
    let ui = 72 + 24;
    assert_eq!(image[ui + 3], 0x15, "UI section first");
    let size = u32::from_le_bytes([image[ui], image[ui + 1], image[ui + 2], 0]) as usize;
    let sec = (ui + size + 3) & !3;
    assert_eq!(image[sec + 3], 0x01, "compression section second");
    // Section header (4), UncompressedLength (4), CompressionType (1), then the stream.
    assert_eq!(image[sec + 8], 1);
    sec + 9
}

#[test]
fn corrupt_streams_in_a_volume_are_findings() {
    let image = sections_fv();
    let at = first_stream(&image);
    // The stream's bits flipped past its header: a decode error (FW-FMT-001), never a panic.
    let mut bad = image.clone();
    for b in &mut bad[at + 8..at + 16] {
        *b ^= 0x5A;
    }
    let report = scan_with(&bad, &Limits::default());
    assert!(
        report.rule_ids().contains(FW_FMT_001),
        "{:?}",
        report.errors
    );
    // Still walks the other two streams.
    assert!(
        report
            .nodes()
            .iter()
            .any(|n| n.name.as_deref() == Some("TianoInner"))
    );
    // A declared size of 4 GiB is a limit hit, not an allocation.
    let mut huge = image.clone();
    huge[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let report = scan_with(&huge, &Limits::default());
    assert!(
        report.errors.iter().any(|e| e
            .message
            .contains("EFI compression output of 4294967295 bytes")),
        "{:?}",
        report.errors
    );
}

fn mutate(base: &[u8], flips: &[(usize, u8)]) -> Vec<u8> {
    let mut b = base.to_vec();
    for &(pos, val) in flips {
        let len = b.len();
        if let Some(x) = b.get_mut(pos % len.max(1)) {
            *x = val;
        }
    }
    b
}

/// Decodes both ways; whatever comes out obeys the header and the limit.
fn check_decode(data: &[u8], limit: u64) {
    for algorithm in [Algorithm::Efi, Algorithm::Tiano] {
        if let Ok(out) = tiano::decompress(data, algorithm, limit) {
            assert_eq!(Some(out.len() as u64), tiano::declared_size(data));
            assert!(out.len() as u64 <= limit);
        }
    }
    let _ = tiano::decompress_either(data, Algorithm::Efi, limit);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_decode(&bytes, 1 << 20);
    }

    #[test]
    fn random_bits_behind_a_plausible_header(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        size in 0u32..(256 << 10),
        slack in 0usize..4,
    ) {
        // A compressed size that matches the body, so decoding reaches the bit stream.
        let comp = body.len().saturating_sub(slack) as u32;
        let mut s = comp.to_le_bytes().to_vec();
        s.extend(size.to_le_bytes());
        s.extend(&body);
        check_decode(&s, 1 << 20);
    }

    #[test]
    fn mutated_peer_streams_never_panic(
        which in 0usize..64,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<Option<usize>>(),
    ) {
        let all = fixtures();
        let f = &all[which % all.len()];
        // Mutations past the 8-byte header, so the sizes stay plausible and decoding runs.
        let mut s = f.data.clone();
        let body = mutate(&s[8..], &flips);
        s.truncate(8);
        s.extend(body);
        if let Some(c) = cut {
            s.truncate(8 + c % (f.data.len() - 7));
            let comp = (s.len() - 8) as u32;
            s[..4].copy_from_slice(&comp.to_le_bytes());
        }
        check_decode(&s, f.size.max(1));
        // And header mutations too.
        check_decode(&mutate(&f.data, &flips), 1 << 20);
    }
}

proptest! {
    // A whole scan per case (the rule pack's blob-wide rules included): fewer cases.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn mutated_volumes_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        static IMAGE: OnceLock<Vec<u8>> = OnceLock::new();
        let image = IMAGE.get_or_init(sections_fv);
        // Flips land in the compressed sections (past the FV and FFS headers) most of the time.
        let body: Vec<(usize, u8)> = flips.iter().map(|&(p, v)| (0x60 + p % (image.len() - 0x60), v)).collect();
        let bad = mutate(image, &body);
        let _ = scan_with(&bad, &Limits { max_total_bytes: 64 << 20, ..Limits::default() });
    }
}

/// Decode speed on the 64 KiB repetitive input and the 32 KiB OVMF SEC volume chunk. Timing is
/// meaningless in a debug build: run with
/// `cargo test --release -p automata-fwscan --test tiano -- --ignored --nocapture decode_speed`.
#[test]
#[ignore = "timing; run in release by hand"]
fn decode_speed() {
    for file in [
        "repetitive.efi.bin",
        "repetitive.tiano.bin",
        "ovmf-secfv.efi.bin",
        "ovmf-secfv.tiano.bin",
        "text.tiano.bin",
        "random.tiano.bin",
    ] {
        let f = fixture(file);
        let rounds = (16 << 20) / f.size.max(1) as usize;
        let start = Instant::now();
        let mut total = 0usize;
        for _ in 0..rounds {
            let out = tiano::decompress(&f.data, f.algorithm, f.size).expect("decodes");
            total += out.len();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{file}: {} -> {} bytes, {rounds} rounds, {:.0} MB/s of output",
            f.data.len(),
            f.size,
            total as f64 / secs / 1e6
        );
    }
}
