//! UEFI Firmware Volume headers (EFI_FIRMWARE_VOLUME_HEADER, `_FVH`).

use crate::guid::Guid;
use crate::util::{align_up, u8_at, u16_at, u32_at, u64_at};

/// Offset of the `_FVH` signature inside the header.
pub const SIGNATURE_OFFSET: usize = 40;
/// The signature.
pub const SIGNATURE: &[u8; 4] = b"_FVH";
/// Smallest header: fixed part plus one block-map entry and the terminator.
const MIN_HEADER: usize = 56 + 16;
/// EFI_FVB2_ERASE_POLARITY.
const ERASE_POLARITY: u32 = 0x800;

/// A validated FV header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FvHeader {
    /// File-system GUID (FFS2, FFS3, NV data, …).
    pub fs_guid: Guid,
    /// FvLength from the header.
    pub length: u64,
    /// Attributes.
    pub attributes: u32,
    /// HeaderLength.
    pub header_length: usize,
    /// Revision.
    pub revision: u8,
    /// Name GUID from the extended header, when present.
    pub name: Option<Guid>,
    /// Where FFS files start, relative to the FV.
    pub data_offset: usize,
}

impl FvHeader {
    /// Whether erased flash reads as 0xFF (state bits are then inverted).
    pub fn erase_polarity(&self) -> bool {
        self.attributes & ERASE_POLARITY != 0
    }
}

/// Parses and validates the header at the start of `fv`; `None` when it is not an FV
/// (bad signature, header checksum or geometry), so a stray `_FVH` in code is ignored.
pub fn parse_header(fv: &[u8]) -> Option<FvHeader> {
    if fv.get(SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4)? != SIGNATURE {
        return None;
    }
    let fs_guid = Guid::read(fv, 16)?;
    let length = u64_at(fv, 32)?;
    let attributes = u32_at(fv, 44)?;
    let header_length = usize::from(u16_at(fv, 48)?);
    let ext_offset = usize::from(u16_at(fv, 52)?);
    let revision = u8_at(fv, 55)?;
    if header_length < MIN_HEADER || header_length % 2 != 0 || (header_length as u64) > length {
        return None;
    }
    let header = fv.get(..header_length)?;
    let mut sum = 0u16;
    for w in header.chunks_exact(2) {
        if let [a, b] = w {
            sum = sum.wrapping_add(u16::from_le_bytes([*a, *b]));
        }
    }
    if sum != 0 {
        return None;
    }
    let mut data_offset = header_length;
    let mut name = None;
    if ext_offset != 0 {
        // EFI_FIRMWARE_VOLUME_EXT_HEADER { FvName, ExtHeaderSize }.
        if let (Some(g), Some(ext_size)) = (Guid::read(fv, ext_offset), u32_at(fv, ext_offset + 16))
        {
            name = Some(g);
            data_offset = ext_offset.saturating_add(ext_size as usize);
        }
    }
    let data_offset = align_up(data_offset, 8)?;
    Some(FvHeader {
        fs_guid,
        length,
        attributes,
        header_length,
        revision,
        name,
        data_offset,
    })
}
