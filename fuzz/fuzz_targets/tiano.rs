//! Fuzzes the EFI 1.1 / Tiano decoder (both variants and the fallback), then the walker on the
//! input wrapped as an EFI compression section and as a Tiano GUID-defined section.
#![no_main]

use automata_fuzz::{NOW, limits, rules};
use automata_fwscan::tiano::{self, Algorithm};
use automata_fwscan::{guid, scan_at};
use libfuzzer_sys::fuzz_target;

/// Output cap of one stream here.
const CAP: u64 = 4 << 20;

fn section(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(4 + body.len())
        .ok()
        .filter(|&s| s < 0x00FF_FFFF)?;
    let mut s = size.to_le_bytes()[..3].to_vec();
    s.push(kind);
    s.extend_from_slice(body);
    Some(s)
}

/// An FFS2 volume (erase polarity 1) holding one driver file whose body is `sections`.
fn volume(sections: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(24 + sections.len())
        .ok()
        .filter(|&s| s < 0x00FF_FFFF)?;
    let mut file = vec![0x5A; 16];
    file.extend([0, 0xAA, 0x07, 0]);
    file.extend(&size.to_le_bytes()[..3]);
    file.push(0xF8);
    let sum = file
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 17 && *i != 23)
        .fold(0u8, |a, (_, &b)| a.wrapping_add(b));
    file[16] = sum.wrapping_neg();
    file.extend_from_slice(sections);
    let len = 72 + file.len() + 8;
    let mut fv = vec![0u8; 16];
    fv.extend(guid::FFS2.0);
    fv.extend((len as u64).to_le_bytes());
    fv.extend(b"_FVH");
    fv.extend(0x0004_FEFFu32.to_le_bytes());
    fv.extend([72, 0, 0, 0, 0, 0, 0, 2]);
    fv.extend(1u32.to_le_bytes());
    fv.extend(u32::try_from(len).ok()?.to_le_bytes());
    fv.extend([0u8; 8]);
    let sum = fv.chunks_exact(2).fold(0u16, |a, w| {
        a.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    fv[50..52].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
    fv.extend(file);
    fv.resize(len, 0xFF);
    Some(fv)
}

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
