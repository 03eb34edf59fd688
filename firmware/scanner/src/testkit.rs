//! Well-formed firmware structures built in code, for the tests and the fuzz harnesses: one
//! builder, so a fix to the layout reaches every one of them. Not part of the scanner's API.

use crate::guid;

/// An FFS section of `kind` around `body`; `None` when it outgrows the 24-bit size field.
pub fn section(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(4 + body.len())
        .ok()
        .filter(|&s| s < 0x00FF_FFFF)?;
    let mut s = size.to_le_bytes()[..3].to_vec();
    s.push(kind);
    s.extend_from_slice(body);
    Some(s)
}

/// An FFS2 volume (erase polarity 1) holding one driver file whose body is `sections`, its
/// length a multiple of 8 as edk2 writes them; `None` when the file outgrows its size field.
pub fn ffs2_volume(sections: &[u8]) -> Option<Vec<u8>> {
    let size = u32::try_from(24 + sections.len())
        .ok()
        .filter(|&s| s < 0x00FF_FFFF)?;
    let mut file = vec![0x11; 16];
    file.extend([0, 0xAA, 0x07, 0]);
    file.extend(&size.to_le_bytes()[..3]);
    file.push(0xF8);
    // The header checksum covers the header but its own State and file checksum bytes.
    let sum = file
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 17 && *i != 23)
        .fold(0u8, |a, (_, &b)| a.wrapping_add(b));
    file[16] = sum.wrapping_neg();
    file.extend_from_slice(sections);
    let len = (72 + file.len() + 8).next_multiple_of(8);
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
