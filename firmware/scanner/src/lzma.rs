//! LZMA sections (edk2's LzmaCustomDecompress: "lzma_alone" streams) and the x86 BCJ filter.

use std::io::Read;

use liblzma::read::XzDecoder;
use liblzma::stream::Stream;
use thiserror::Error;

use crate::util::u64_at;

/// Why an LZMA section could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LzmaError {
    /// Shorter than the 13-byte header.
    #[error("LZMA header truncated")]
    Truncated,
    /// The header's size exceeds what the limits allow.
    #[error("LZMA output of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Declared size.
        size: u64,
        /// Allowed size.
        limit: u64,
    },
    /// liblzma rejected the stream.
    #[error("LZMA stream corrupt: {0}")]
    Corrupt(String),
    /// The output length differs from the header.
    #[error("LZMA output is {got} bytes, header says {want}")]
    SizeMismatch {
        /// Actual size.
        got: u64,
        /// Declared size.
        want: u64,
    },
}

/// The uncompressed size an LZMA section header declares.
pub fn declared_size(data: &[u8]) -> Option<u64> {
    u64_at(data, 5)
}

/// Decodes an edk2 LZMA section payload, refusing outputs larger than `limit`.
pub fn decompress(data: &[u8], limit: u64) -> Result<Vec<u8>, LzmaError> {
    let size = declared_size(data).ok_or(LzmaError::Truncated)?;
    if size > limit {
        return Err(LzmaError::TooLarge { size, limit });
    }
    let stream = Stream::new_lzma_decoder(limit.saturating_add(1 << 26))
        .map_err(|e| LzmaError::Corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(64 << 20));
    XzDecoder::new_stream(data, stream)
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| LzmaError::Corrupt(e.to_string()))?;
    let got = out.len() as u64;
    if got != size {
        return Err(LzmaError::SizeMismatch { got, want: size });
    }
    Ok(out)
}

/// Decodes an LZMA-F86 section: LZMA, then the x86 branch-call-jump filter undone.
pub fn decompress_f86(data: &[u8], limit: u64) -> Result<Vec<u8>, LzmaError> {
    let mut out = decompress(data, limit)?;
    x86_convert(&mut out, false);
    Ok(out)
}

/// The LZMA SDK's x86 BCJ converter (Bra86.c), `encoding` false to decode.
pub fn x86_convert(data: &mut [u8], encoding: bool) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BIT: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let test = |b: u8| b == 0 || b == 0xFF;
    let size = data.len();
    if size < 5 {
        return;
    }
    let ip: u32 = 5;
    let mut prev_mask: u32 = 0;
    let mut prev_pos: usize = usize::MAX; // (SizeT)0 - 1
    let mut pos: usize = 0;
    let limit = size - 4;
    loop {
        while pos < limit && data.get(pos).is_some_and(|&b| b & 0xFE != 0xE8) {
            pos += 1;
        }
        if pos >= limit {
            break;
        }
        let d = pos.wrapping_sub(prev_pos);
        if d > 3 {
            prev_mask = 0;
        } else {
            prev_mask = (prev_mask << (d - 1)) & 7;
            if prev_mask != 0 {
                let idx = pos + 4 - BIT[prev_mask as usize] as usize;
                let b = data.get(idx).copied().unwrap_or(0);
                if !ALLOWED[prev_mask as usize] || test(b) {
                    prev_pos = pos;
                    prev_mask = ((prev_mask << 1) & 7) | 1;
                    pos += 1;
                    continue;
                }
            }
        }
        prev_pos = pos;
        let Some(p) = data.get_mut(pos..pos + 5) else {
            break;
        };
        if test(p[4]) {
            let mut src = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
            let mut dest;
            loop {
                let here = ip.wrapping_add(pos as u32);
                dest = if encoding {
                    here.wrapping_add(src)
                } else {
                    src.wrapping_sub(here)
                };
                if prev_mask == 0 {
                    break;
                }
                let index = BIT[prev_mask as usize] * 8;
                let b = (dest >> (24 - index)) as u8;
                if !test(b) {
                    break;
                }
                src = dest ^ ((1u32 << (32 - index)) - 1);
            }
            p[4] = !((((dest >> 24) & 1) as u8).wrapping_sub(1));
            p[3] = (dest >> 16) as u8;
            p[2] = (dest >> 8) as u8;
            p[1] = dest as u8;
            pos += 5;
        } else {
            prev_mask = ((prev_mask << 1) & 7) | 1;
            pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_round_trip() {
        let mut data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        for i in (0..4000).step_by(37) {
            data[i] = 0xE8;
            data[i + 4] = 0;
        }
        let orig = data.clone();
        x86_convert(&mut data, true);
        assert_ne!(data, orig);
        x86_convert(&mut data, false);
        assert_eq!(data, orig);
    }

    #[test]
    fn corrupt_is_an_error() {
        assert_eq!(decompress(&[0; 4], 100), Err(LzmaError::Truncated));
        let mut hdr = vec![0x5d, 0, 0, 1, 0];
        hdr.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decompress(&hdr, 100),
            Err(LzmaError::TooLarge { .. })
        ));
        let mut hdr = vec![0x5d, 0, 0, 1, 0];
        hdr.extend_from_slice(&10u64.to_le_bytes());
        hdr.extend_from_slice(&[0xAB; 8]);
        assert!(decompress(&hdr, 100).is_err());
    }
}
