//! Fuzzes FV, FFS and section headers, LZMA sections and the BCJ filter, then the FV walker.
#![no_main]

use automata_fuzz::{NOW, limits, rules};
use automata_fwscan::{ffs, fv, guid, lzma, scan_at, section};
use libfuzzer_sys::fuzz_target;

/// Output cap of one LZMA section here.
const LZMA_CAP: u64 = 4 << 20;
/// Bytes of each input the BCJ round trip runs on.
const BCJ_PREFIX: usize = 16 << 10;

/// Reads a section stream the way the walker does; one level of LZMA nesting at most.
fn sections(data: &[u8], nested: bool) {
    let mut off = 0usize;
    while off < data.len() {
        let Ok(sh) = section::parse_header(data, off) else {
            return;
        };
        let Some(sect) = off.checked_add(sh.size).and_then(|end| data.get(off..end)) else {
            panic!("section {sh:?} at {off:#x} accepted past {:#x}", data.len());
        };
        let _ = section::type_name(sh.section_type);
        if sh.section_type == 0x02
            && let Some((g, data_offset, _attrs)) = section::guid_defined(sect, sh.header_size)
            && (g == guid::LZMA || g == guid::LZMA_F86)
            && let Some(payload) = sect.get(data_offset..)
        {
            let _ = lzma::declared_size(payload);
            let out = if g == guid::LZMA {
                lzma::decompress(payload, LZMA_CAP)
            } else {
                lzma::decompress_f86(payload, LZMA_CAP)
            };
            if let Ok(out) = out {
                assert!(out.len() as u64 <= LZMA_CAP);
                if !nested {
                    sections(&out, true);
                }
            }
        }
        let Some(next) = off
            .checked_add(sh.size.max(4))
            .and_then(|o| o.checked_add(3))
        else {
            return;
        };
        off = next & !3;
    }
}

/// Reads the FFS files of a volume whose header parsed.
fn files(vol: &[u8], h: &fv::FvHeader) {
    let erase = if h.erase_polarity() { 0xFF } else { 0x00 };
    let mut off = h.data_offset;
    while off.saturating_add(24) <= vol.len() && !ffs::is_free(vol, off, erase) {
        let Ok(fh) = ffs::parse_header(vol, off, h.erase_polarity()) else {
            return;
        };
        let _ = (fh.state_name(), fh.type_name());
        let Some(end) = usize::try_from(fh.size)
            .ok()
            .and_then(|s| off.checked_add(s))
            .filter(|&e| e <= vol.len())
        else {
            return;
        };
        let body = vol.get(off + fh.header_size..end).unwrap_or(&[]);
        let _ = fh.data_checksum_error(body);
        if fh.has_sections() {
            sections(body, false);
        }
        let Some(next) = end.checked_add(7) else {
            return;
        };
        off = next & !7;
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as a bare section stream and as a bare FFS file, both polarities.
    sections(data, false);
    for polarity in [false, true] {
        if let Ok(fh) = ffs::parse_header(data, 0, polarity) {
            assert!(fh.size >= fh.header_size as u64);
            let _ = fh.data_checksum_error(data.get(fh.header_size..).unwrap_or(&[]));
        }
    }
    // The BCJ filter is its own inverse: decode(encode(x)) == x for any bytes (a prefix, so
    // volume-sized inputs stay fast).
    let head = data.get(..BCJ_PREFIX).unwrap_or(data);
    let mut bcj = head.to_vec();
    lzma::x86_convert(&mut bcj, true);
    lzma::x86_convert(&mut bcj, false);
    assert!(bcj == head, "x86 BCJ round trip changed the data");

    let Some(h) = fv::parse_header(data) else {
        return;
    };
    assert!(
        h.header_length <= data.len() && h.data_offset % 8 == 0,
        "{h:?}"
    );
    let len = usize::try_from(h.length).map_or(data.len(), |l| l.min(data.len()));
    files(data.get(..len).unwrap_or(data), &h);
    let _ = scan_at(data, "fv", rules(), &limits(), NOW);
});
