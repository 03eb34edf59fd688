//! FFS file headers (EFI_FFS_FILE_HEADER and the FFS3 large-file EFI_FFS_FILE_HEADER2).

use crate::guid::Guid;
use crate::util::{slice, u8_at, u24_at, u64_at};

/// FFS_ATTRIB_LARGE_FILE: the 64-bit size follows the header.
const LARGE_FILE: u8 = 0x01;
/// FFS_ATTRIB_CHECKSUM: the file checksum covers the data.
const CHECKSUM: u8 = 0x40;
/// Value of IntegrityCheck.File when the data is not checksummed.
const FIXED_CHECKSUM: u8 = 0xAA;

/// A parsed FFS file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FfsHeader {
    /// File name GUID.
    pub name: Guid,
    /// EFI_FV_FILETYPE.
    pub file_type: u8,
    /// Attributes.
    pub attributes: u8,
    /// Whole file size including the header.
    pub size: u64,
    /// Header size (24, or 32 for large files).
    pub header_size: usize,
    /// State after undoing erase polarity.
    pub state: u8,
    /// IntegrityCheck.File.
    pub file_checksum: u8,
}

/// Why a file header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FfsError {
    /// Header bytes run past the volume.
    #[error("FFS file header truncated")]
    Truncated,
    /// Size smaller than the header.
    #[error("FFS file size {0:#x} smaller than its header")]
    BadSize(u64),
    /// Header checksum does not sum to zero.
    #[error("FFS header checksum mismatch (sum {0:#04x})")]
    HeaderChecksum(u8),
}

/// Whether the 24 bytes at `off` are erased flash (free space, end of files).
pub fn is_free(fv: &[u8], off: usize, erase_byte: u8) -> bool {
    slice(fv, off, 24).is_none_or(|h| h.iter().all(|&b| b == erase_byte))
}

/// Parses the header at `off`; `erase_polarity` inverts State as edk2 does.
pub fn parse_header(fv: &[u8], off: usize, erase_polarity: bool) -> Result<FfsHeader, FfsError> {
    let name = Guid::read(fv, off).ok_or(FfsError::Truncated)?;
    let (
        Some(header_ck),
        Some(file_checksum),
        Some(file_type),
        Some(attributes),
        Some(size24),
        Some(raw_state),
    ) = (
        u8_at(fv, off + 16),
        u8_at(fv, off + 17),
        u8_at(fv, off + 18),
        u8_at(fv, off + 19),
        u24_at(fv, off + 20),
        u8_at(fv, off + 23),
    )
    else {
        return Err(FfsError::Truncated);
    };
    let _ = header_ck;
    let (size, header_size) = if attributes & LARGE_FILE != 0 {
        (u64_at(fv, off + 24).ok_or(FfsError::Truncated)?, 32)
    } else {
        (u64::from(size24), 24)
    };
    if size < header_size as u64 {
        return Err(FfsError::BadSize(size));
    }
    let header = slice(fv, off, header_size).ok_or(FfsError::Truncated)?;
    // The header checksum excludes State and IntegrityCheck.File.
    let sum = header
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 17 && *i != 23)
        .fold(0u8, |a, (_, &b)| a.wrapping_add(b));
    if sum != 0 {
        return Err(FfsError::HeaderChecksum(sum));
    }
    let state = if erase_polarity {
        !raw_state
    } else {
        raw_state
    };
    Ok(FfsHeader {
        name,
        file_type,
        attributes,
        size,
        header_size,
        state,
        file_checksum,
    })
}

impl FfsHeader {
    /// Checks IntegrityCheck.File against the data; `None` when it matches.
    pub fn data_checksum_error(&self, data: &[u8]) -> Option<String> {
        if self.attributes & CHECKSUM != 0 {
            let sum = data
                .iter()
                .fold(self.file_checksum, |a, &b| a.wrapping_add(b));
            (sum != 0).then(|| format!("FFS file checksum mismatch (sum {sum:#04x})"))
        } else {
            (self.file_checksum != FIXED_CHECKSUM).then(|| {
                format!(
                    "FFS file checksum {:#04x}, expected the fixed {FIXED_CHECKSUM:#04x}",
                    self.file_checksum
                )
            })
        }
    }

    /// The edk2 state name (highest set bit wins).
    pub fn state_name(&self) -> &'static str {
        let s = self.state;
        if s & 0x20 != 0 {
            "header-invalid"
        } else if s & 0x10 != 0 {
            "deleted"
        } else if s & 0x08 != 0 {
            "marked-for-update"
        } else if s & 0x04 != 0 {
            "data-valid"
        } else if s & 0x02 != 0 {
            "header-valid"
        } else {
            "under-construction"
        }
    }

    /// The EFI_FV_FILETYPE name.
    pub fn type_name(&self) -> &'static str {
        match self.file_type {
            0x01 => "raw",
            0x02 => "freeform",
            0x03 => "sec-core",
            0x04 => "pei-core",
            0x05 => "dxe-core",
            0x06 => "peim",
            0x07 => "driver",
            0x08 => "combined-peim-driver",
            0x09 => "application",
            0x0A => "mm",
            0x0B => "fv-image",
            0x0C => "combined-mm-dxe",
            0x0D => "mm-core",
            0x0E => "mm-standalone",
            0x0F => "mm-core-standalone",
            0xC0..=0xDF => "oem",
            0xE0..=0xEF => "debug",
            0xF0 => "pad",
            _ => "unknown",
        }
    }

    /// Whether the file body is a sequence of sections.
    pub fn has_sections(&self) -> bool {
        (0x02..=0x0F).contains(&self.file_type)
    }
}
