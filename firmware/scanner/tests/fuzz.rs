//! No bytes make the FV/FFS, section, VSS or ESL parsers panic: random input and mutations of
//! real OVMF images.

use std::sync::OnceLock;

use automata_fwscan::{Limits, RulePack, ScanIssue, ffs, fv, parse_signature_lists, scan_at, vss};
use proptest::prelude::*;

fn limits() -> Limits {
    Limits {
        max_depth: 8,
        max_total_bytes: 64 << 20,
        max_ratio: 100,
        max_entries: 2_000,
    }
}

/// The SEC volume at the end of OVMF_CODE_4M.fd (small, uncompressed) and the first 16 KiB of
/// the Microsoft varstore (FV header, VSS2 header, PK/KEK/db/dbx).
fn seeds() -> &'static (Vec<u8>, Vec<u8>) {
    static SEEDS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let code = std::fs::read("/usr/share/OVMF/OVMF_CODE_4M.fd").expect("ovmf installed");
        let vars = std::fs::read("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").expect("ovmf installed");
        let sec = code.get(0x348000..).expect("SECFV").to_vec();
        (sec, vars.get(..0x4000).expect("vars").to_vec())
    })
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = scan_at(&bytes, "r", &RulePack::builtin(), &limits(), 0);
        let _ = parse_signature_lists(&bytes);
        let _ = fv::parse_header(&bytes);
        let _ = ffs::parse_header(&bytes, 0, true);
        let mut issues: Vec<ScanIssue> = Vec::new();
        let _ = vss::parse(&bytes, "r", &mut issues);
    }

    #[test]
    fn random_bytes_behind_headers(tail in proptest::collection::vec(any::<u8>(), 0..2048), which in 0..4usize) {
        // Valid-looking headers followed by garbage reach deeper code.
        let (sec, vars) = seeds();
        let head: &[u8] = match which {
            0 => sec.get(..0x48).unwrap_or(&[]),
            1 => vars.get(..0x48 + 28).unwrap_or(&[]),
            2 => b"$VSS\x00\x10\x00\x00",
            _ => vars.get(0x48..0x48 + 28).unwrap_or(&[]),
        };
        let mut b = head.to_vec();
        b.extend_from_slice(&tail);
        let _ = scan_at(&b, "h", &RulePack::builtin(), &limits(), 0);
    }

    #[test]
    fn mutated_sec_volume(flips in proptest::collection::vec((0usize..0x34000, any::<u8>()), 1..16)) {
        let b = mutate(&seeds().0, &flips);
        let _ = scan_at(&b, "sec", &RulePack::builtin(), &limits(), 0);
    }

    #[test]
    fn mutated_varstore(flips in proptest::collection::vec((0usize..0x4000, any::<u8>()), 1..16)) {
        let b = mutate(&seeds().1, &flips);
        let _ = scan_at(&b, "vars", &RulePack::builtin(), &limits(), 0);
    }

    #[test]
    fn mutated_headers_only(flips in proptest::collection::vec((0usize..0x800, any::<u8>()), 1..8)) {
        // Concentrate on the FV, VSS and first variable headers, where lengths live.
        let b = mutate(&seeds().1, &flips);
        let _ = scan_at(&b, "vars", &RulePack::builtin(), &limits(), 0);
        let b = mutate(&seeds().0, &flips);
        let _ = scan_at(&b, "sec", &RulePack::builtin(), &limits(), 0);
    }
}
