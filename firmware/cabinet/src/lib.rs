//! Cabinets (`.cab`, LVFS firmware packages and vendor archives) opened safely: `cab` 0.6, the
//! maintained reader, indexes out of bounds on a file that starts past its folder's data and
//! subtracts with overflow on a stored block shorter than it claims (both found by fuzzing). The
//! catalog reader and the scanner open cabinets only through [`open`], which checks the layout
//! first, so a hostile cabinet is an error and never a panic.

use std::io::Cursor;

pub use cab::{Cabinet, CompressionType};

/// What the `cab` crate (0.6) would panic on rather than report: a file starting past the data
/// its folder's blocks declare, or a stored block whose size differs from its uncompressed size.
/// Offsets follow [MS-CAB]; a truncated structure is left to the crate, which reports it.
pub fn layout_problem(b: &[u8]) -> Option<String> {
    let at = |off: usize, n: usize| -> Option<u32> {
        let s = b.get(off..off.checked_add(n)?)?;
        Some(s.iter().rev().fold(0u32, |v, &x| (v << 8) | u32::from(x)))
    };
    let (folders, files, flags) = (at(26, 2)?, at(28, 2)?, at(30, 2)?);
    // cfhdrRESERVE_PRESENT: header, folder and data reserve sizes follow the fixed header.
    let (mut off, folder_reserve, data_reserve) = if flags & 0x4 != 0 {
        (
            40 + at(36, 2)? as usize,
            at(38, 1)? as usize,
            at(39, 1)? as usize,
        )
    } else {
        (36, 0, 0)
    };
    // cfhdrPREV_CABINET and cfhdrNEXT_CABINET: two NUL-terminated strings each.
    for _ in 0..2 * usize::from(flags & 0x1 != 0) + 2 * usize::from(flags & 0x2 != 0) {
        off += b.get(off..)?.iter().position(|&c| c == 0)? + 1;
    }
    // Per folder, the uncompressed bytes its blocks declare (None when a block header is cut).
    let mut totals = Vec::new();
    for f in 0..folders {
        let (start, blocks, compression) = (at(off, 4)?, at(off + 4, 2)?, at(off + 6, 2)?);
        off += 8 + folder_reserve;
        let mut pos = start as usize;
        let mut total = Some(0u64);
        for blk in 0..blocks {
            let (Some(packed), Some(unpacked)) =
                (at(pos.saturating_add(4), 2), at(pos.saturating_add(6), 2))
            else {
                total = None;
                break;
            };
            if compression & 0xF == 0 && packed != unpacked {
                return Some(format!(
                    "folder {f} block {blk}: stored block of {packed} bytes claims {unpacked}"
                ));
            }
            total = total.map(|t| t + u64::from(unpacked));
            pos = pos.saturating_add(8 + data_reserve + packed as usize);
        }
        totals.push(total);
    }
    let mut off = at(16, 4)? as usize;
    for _ in 0..files {
        let (start, folder) = (at(off.checked_add(4)?, 4)?, at(off.checked_add(8)?, 2)?);
        if let Some(Some(total)) = totals.get(folder as usize)
            && u64::from(start) > *total
        {
            return Some(format!(
                "a file starts at {start:#x} of folder {folder}, which holds {total:#x} bytes"
            ));
        }
        off = off.checked_add(16)?;
        off += b.get(off..)?.iter().position(|&c| c == 0)? + 1;
    }
    None
}

/// Opens a cabinet held in memory once [`layout_problem`] has found nothing the crate would
/// panic on; the error is a sentence for the caller's own error type.
pub fn open(bytes: &[u8]) -> Result<Cabinet<Cursor<&[u8]>>, String> {
    if let Some(why) = layout_problem(bytes) {
        return Err(why);
    }
    Cabinet::new(Cursor::new(bytes)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_short_input_are_errors() {
        assert!(open(b"").is_err());
        assert!(open(b"MSCF").is_err());
        assert!(open(&[0u8; 64]).is_err());
    }
}
