//! Fuzzes the EFI 1.1 / Tiano decoder (both variants and the fallback), then the walker on the
//! input wrapped as an EFI compression section and as a Tiano GUID-defined section.
#![no_main]

use automata_fuzz::{NOW, limits, rules};
use automata_fwscan::testkit::{ffs2_volume as volume, section};
use automata_fwscan::tiano::{self, Algorithm};
use automata_fwscan::{guid, scan_at};
use libfuzzer_sys::fuzz_target;

/// Output cap of one stream here.
const CAP: u64 = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let declared = tiano::declared_size(data);
    for algorithm in [Algorithm::Efi, Algorithm::Tiano] {
        if let Ok(out) = tiano::decompress(data, algorithm, CAP) {
            assert_eq!(Some(out.len() as u64), declared);
            assert!(out.len() as u64 <= CAP);
        }
    }
    if let Ok((out, _)) = tiano::decompress_either(data, Algorithm::Tiano, CAP) {
        assert_eq!(Some(out.len() as u64), declared);
    }

    // The same bytes as the stream of an EFI compression section and of a Tiano GUID-defined
    // section, side by side in one file, through the whole scan.
    let original = u32::try_from(declared.unwrap_or(0)).unwrap_or(0);
    let mut compressed = original.to_le_bytes().to_vec();
    compressed.push(1);
    compressed.extend_from_slice(data);
    let mut guided = guid::TIANO.0.to_vec();
    guided.extend(24u16.to_le_bytes());
    guided.extend(1u16.to_le_bytes());
    guided.extend_from_slice(data);
    let (Some(a), Some(b)) = (section(0x01, &compressed), section(0x02, &guided)) else {
        return;
    };
    let mut body = a;
    body.resize(body.len().next_multiple_of(4), 0);
    body.extend(b);
    if let Some(image) = volume(&body) {
        let report = scan_at(&image, "tiano", rules(), &limits(), NOW);
        assert_eq!(report.size, image.len() as u64);
    }
});
