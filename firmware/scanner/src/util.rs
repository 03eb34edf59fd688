//! Bounds-checked little-endian reads: every blob access goes through these, so nothing panics.

/// `len` bytes at `off`, or `None` when any of them lies outside `buf`.
pub(crate) fn slice(buf: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    buf.get(off..off.checked_add(len)?)
}

/// The byte at `off`.
pub(crate) fn u8_at(buf: &[u8], off: usize) -> Option<u8> {
    buf.get(off).copied()
}

/// A little-endian u16 at `off`.
pub(crate) fn u16_at(buf: &[u8], off: usize) -> Option<u16> {
    let b = slice(buf, off, 2)?;
    Some(u16::from_le_bytes([
        b.first().copied()?,
        b.get(1).copied()?,
    ]))
}

/// A little-endian 24-bit size (FFS files and sections) at `off`.
pub(crate) fn u24_at(buf: &[u8], off: usize) -> Option<u32> {
    let b = slice(buf, off, 3)?;
    Some(u32::from_le_bytes([
        b.first().copied()?,
        b.get(1).copied()?,
        b.get(2).copied()?,
        0,
    ]))
}

/// A little-endian u32 at `off`.
pub(crate) fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = slice(buf, off, 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// A little-endian u64 at `off`.
pub(crate) fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    let b: [u8; 8] = slice(buf, off, 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Rounds `v` up to a multiple of `align` (a power of two), `None` on overflow.
pub(crate) fn align_up(v: usize, align: usize) -> Option<usize> {
    let mask = align.checked_sub(1)?;
    Some(v.checked_add(mask)? & !mask)
}

/// Decodes a NUL-terminated UCS-2 string (names of variables, UI and version sections).
pub(crate) fn ucs2(buf: &[u8]) -> String {
    let units: Vec<u16> = buf
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Formats a UNIX time as RFC 3339 UTC (certificate dates in evidence).
pub(crate) fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let b = [1u8, 2, 3];
        assert_eq!(u16_at(&b, 1), Some(0x0302));
        assert_eq!(u32_at(&b, 0), None);
        assert_eq!(u64_at(&b, usize::MAX), None);
        assert_eq!(slice(&b, usize::MAX, 2), None);
        assert_eq!(align_up(usize::MAX, 8), None);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_782_259_200), "2026-06-24T00:00:00Z");
    }
}
