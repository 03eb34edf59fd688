//! No bytes make the PE, certificate-table, PKCS#7, capsule or archive readers panic: random
//! input, random input behind valid magic, and mutations of shim's signatures and a capsule.

use std::sync::OnceLock;

use automata_fwscan::{Limits, RulePack, archive, authenticode, capsule, pe, pkcs7, scan_at};
use proptest::prelude::*;

fn limits() -> Limits {
    Limits {
        max_depth: 8,
        max_total_bytes: 64 << 20,
        max_ratio: 100,
        max_entries: 2_000,
    }
}

/// Shim's headers plus its certificate table (the section data is not needed to reach the
/// certificate and PKCS#7 code), and its first WIN_CERTIFICATE body.
fn shim() -> &'static (Vec<u8>, Vec<u8>) {
    static S: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    S.get_or_init(|| {
        let b = std::fs::read("/usr/lib/shim/shimx64.efi.signed").expect("shim-signed");
        let img = pe::parse(&b).expect("pe");
        let certs = img.certificates(&b).expect("certs");
        (b, certs[0].data.clone())
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
        let _ = pe::parse(&bytes);
        let _ = authenticode::verify(&bytes, &[]);
        let _ = pkcs7::parse_content_info(&bytes);
        let _ = pkcs7::parse_signed_data(&bytes);
        let _ = pkcs7::spc_indirect_digest(&bytes);
        let _ = capsule::parse_header(&bytes);
        let _ = capsule::parse_fmp(&bytes, 0..bytes.len());
        let (start, end) = (bytes.len().min(16), bytes.len().min(4));
        let _ = capsule::parse_fmp(&bytes, start..end);
    }

    #[test]
    fn random_bytes_behind_magic(tail in proptest::collection::vec(any::<u8>(), 0..2048), which in 0..7usize) {
        let head: Vec<u8> = match which {
            0 => vec![0x1F, 0x8B, 8, 0],
            1 => vec![0x28, 0xB5, 0x2F, 0xFD],
            2 => vec![0xFD, b'7', b'z', b'X', b'Z', 0],
            3 => b"PK\x03\x04".to_vec(),
            4 => b"MSCF\0\0\0\0".to_vec(),
            5 => automata_fwscan::guid::FMP_CAPSULE.0.to_vec(),
            _ => {
                let mut h = b"MZ".to_vec();
                h.resize(0x3C, 0);
                h.extend(0x40u32.to_le_bytes());
                h.extend(b"PE\0\0");
                h
            }
        };
        let mut b = head;
        b.extend_from_slice(&tail);
        let _ = scan_at(&b, "m", &RulePack::builtin(), &limits(), 0);
        if let Some(kind) = archive::detect(&b) {
            let budget = archive::Budget { remaining: 1 << 20, max_ratio: 100, max_entries: 100 };
            let _ = archive::for_each_entry(kind, &b, budget, &mut |_| true);
        }
    }

    #[test]
    fn mutated_pkcs7(flips in proptest::collection::vec((0usize..0x2800, any::<u8>()), 1..12)) {
        let sig = mutate(&shim().1, &flips);
        if let Ok(sd) = pkcs7::parse_content_info(&sig) {
            for s in &sd.signers {
                let _ = s.signed_attrs_for_signature();
            }
            if let Some(c) = &sd.content {
                let _ = pkcs7::spc_indirect_digest(c);
            }
        }
    }

    #[test]
    fn mutated_pe_headers_and_cert_table(flips in proptest::collection::vec((0usize..0x400, any::<u8>()), 1..8), tail_flips in proptest::collection::vec((0usize..0x4000, any::<u8>()), 0..8)) {
        let b = &shim().0;
        let mut m = mutate(b, &flips);
        let n = m.len();
        for (p, v) in tail_flips {
            // Flips in the certificate table at the end of the file.
            if let Some(x) = m.get_mut(n - 1 - (p % n.min(0x4000))) {
                *x = v;
            }
        }
        let _ = authenticode::verify(&m, &RulePack::builtin().authenticode_roots);
    }

    #[test]
    fn mutated_capsule(flips in proptest::collection::vec((0usize..160, any::<u8>()), 1..8)) {
        let mut b = automata_fwscan::guid::FMP_CAPSULE.0.to_vec();
        for v in [32u32, 0x50000, 160] {
            b.extend(v.to_le_bytes());
        }
        b.resize(32, 0);
        b.extend(1u32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(24u64.to_le_bytes());
        b.extend(40u64.to_le_bytes());
        b.resize(160, 0);
        let m = mutate(&b, &flips);
        let _ = scan_at(&m, "c", &RulePack::builtin(), &limits(), 0);
    }
}
