//! FFS section headers (EFI_COMMON_SECTION_HEADER and the extended-size form).

use crate::guid::Guid;
use crate::util::{slice, u8_at, u16_at, u24_at, u32_at};

/// A parsed section header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// EFI_SECTION_TYPE.
    pub section_type: u8,
    /// Whole section size.
    pub size: usize,
    /// Header size (4 or 8).
    pub header_size: usize,
}

/// Reads the section header at `off`, checking its size against `data`.
pub fn parse_header(data: &[u8], off: usize) -> Result<SectionHeader, String> {
    let (Some(size24), Some(section_type)) = (u24_at(data, off), u8_at(data, off + 3)) else {
        return Err("section header truncated".into());
    };
    let (size, header_size) = if size24 == 0x00FF_FFFF {
        (
            u32_at(data, off + 4).ok_or("extended section header truncated")? as usize,
            8,
        )
    } else {
        (size24 as usize, 4)
    };
    if size < header_size {
        return Err(format!("section size {size:#x} smaller than its header"));
    }
    if slice(data, off, size).is_none() {
        return Err(format!(
            "section of {size:#x} bytes runs past its file ({:#x} left)",
            data.len().saturating_sub(off)
        ));
    }
    Ok(SectionHeader {
        section_type,
        size,
        header_size,
    })
}

/// The EFI_SECTION_TYPE name.
pub fn type_name(t: u8) -> &'static str {
    match t {
        0x01 => "compression",
        0x02 => "guid-defined",
        0x03 => "disposable",
        0x10 => "pe32",
        0x11 => "pic",
        0x12 => "te",
        0x13 => "dxe-depex",
        0x14 => "version",
        0x15 => "user-interface",
        0x16 => "compatibility16",
        0x17 => "firmware-volume-image",
        0x18 => "freeform-subtype-guid",
        0x19 => "raw",
        0x1B => "pei-depex",
        0x1C => "mm-depex",
        _ => "unknown",
    }
}

/// The GUID-defined section fields: definition GUID, data offset, attributes.
pub fn guid_defined(section: &[u8], header_size: usize) -> Option<(Guid, usize, u16)> {
    Some((
        Guid::read(section, header_size)?,
        usize::from(u16_at(section, header_size + 16)?),
        u16_at(section, header_size + 18)?,
    ))
}

/// EFI_GUIDED_SECTION_PROCESSING_REQUIRED.
pub const PROCESSING_REQUIRED: u16 = 0x01;
