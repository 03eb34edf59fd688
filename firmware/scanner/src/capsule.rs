//! UEFI capsules: EFI_CAPSULE_HEADER and FMP capsules (UEFI 2.10 §23.3) down to each image's
//! EFI_FIRMWARE_IMAGE_AUTHENTICATION, so CAP-00x rules see what a platform would be asked to flash.

use thiserror::Error;

use crate::guid::{self, Guid};
use crate::pe::WIN_CERT_TYPE_EFI_GUID;
use crate::util::{slice, u8_at, u16_at, u32_at, u64_at};

/// Size of EFI_CAPSULE_HEADER.
pub const CAPSULE_HEADER_SIZE: usize = 28;
/// Known upper flag bits (persist across reset, populate system table, initiate reset).
const KNOWN_FLAGS: u32 = 0x0007_0000;
/// An FMP capsule never holds more items than this (the 16-bit counts allow 131070).
const MAX_ITEMS: usize = 1024;

/// Why a capsule is inconsistent (CAP-001).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CapsuleError {
    /// Fewer bytes than EFI_CAPSULE_HEADER.
    #[error("capsule header truncated")]
    Truncated,
    /// HeaderSize smaller than the header or beyond the file or the image.
    #[error("capsule HeaderSize {header_size:#x} outside [{min:#x}, {len:#x}]")]
    HeaderSize {
        /// Declared.
        header_size: u32,
        /// The header itself.
        min: usize,
        /// Bytes available.
        len: usize,
    },
    /// CapsuleImageSize beyond the file.
    #[error("CapsuleImageSize {image_size:#x} exceeds the file ({len:#x} bytes)")]
    ImageSize {
        /// Declared.
        image_size: u32,
        /// File length.
        len: usize,
    },
    /// An FMP structure is inconsistent.
    #[error("FMP capsule at {offset:#x}: {reason}")]
    Fmp {
        /// Offset in the capsule.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
}

/// EFI_CAPSULE_HEADER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapsuleHeader {
    /// CapsuleGuid: what the payload is.
    pub guid: Guid,
    /// HeaderSize: where the payload starts.
    pub header_size: u32,
    /// Flags.
    pub flags: u32,
    /// CapsuleImageSize: header plus payload.
    pub image_size: u32,
}

impl CapsuleHeader {
    /// The validated payload range (CAP-001 when the sizes do not fit the file).
    pub fn payload(&self, len: usize) -> Result<std::ops::Range<usize>, CapsuleError> {
        let image = self.image_size as usize;
        if image > len {
            return Err(CapsuleError::ImageSize {
                image_size: self.image_size,
                len,
            });
        }
        let hs = self.header_size as usize;
        if hs < CAPSULE_HEADER_SIZE || hs > image {
            return Err(CapsuleError::HeaderSize {
                header_size: self.header_size,
                min: CAPSULE_HEADER_SIZE,
                len: image.min(len),
            });
        }
        Ok(hs..image)
    }
}

/// Reads the 28-byte header.
pub fn parse_header(buf: &[u8]) -> Result<CapsuleHeader, CapsuleError> {
    let (Some(guid), Some(header_size), Some(flags), Some(image_size)) = (
        Guid::read(buf, 0),
        u32_at(buf, 16),
        u32_at(buf, 20),
        u32_at(buf, 24),
    ) else {
        return Err(CapsuleError::Truncated);
    };
    Ok(CapsuleHeader {
        guid,
        header_size,
        flags,
        image_size,
    })
}

/// Whether `buf` is a capsule: a known capsule GUID, or (as fwupd's `add_capsule_header.py`
/// decides) an image size equal to the file with sane header size and flags.
pub fn detect(buf: &[u8]) -> bool {
    let Ok(h) = parse_header(buf) else {
        return false;
    };
    if [guid::FMP_CAPSULE, guid::EFI_CAPSULE, guid::UX_CAPSULE].contains(&h.guid) {
        return true;
    }
    h.image_size as usize == buf.len()
        && h.header_size as usize >= CAPSULE_HEADER_SIZE
        && h.header_size <= h.image_size
        && h.flags & !KNOWN_FLAGS & 0xFFFF_0000 == 0
}

/// One item of an FMP capsule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FmpItem {
    /// An embedded driver (a PE image), with its range in the capsule.
    Driver {
        /// Byte range in the capsule.
        range: std::ops::Range<usize>,
    },
    /// An update image.
    Image(FmpImage),
}

/// EFI_FIRMWARE_MANAGEMENT_CAPSULE_IMAGE_HEADER and what follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FmpImage {
    /// Offset of the image header in the capsule.
    pub offset: usize,
    /// Header version (1-3).
    pub version: u32,
    /// UpdateImageTypeId: which FMP instance takes the image.
    pub type_id: Guid,
    /// UpdateImageIndex.
    pub index: u8,
    /// UpdateHardwareInstance (version 2+).
    pub hardware_instance: Option<u64>,
    /// ImageCapsuleSupport (version 3+).
    pub capsule_support: Option<u64>,
    /// EFI_FIRMWARE_IMAGE_AUTHENTICATION, when the image starts with one.
    pub auth: Option<FmpAuth>,
    /// The image bytes after the authentication, in the capsule.
    pub payload: std::ops::Range<usize>,
    /// The vendor code bytes, in the capsule.
    pub vendor_code: std::ops::Range<usize>,
}

/// EFI_FIRMWARE_IMAGE_AUTHENTICATION.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FmpAuth {
    /// MonotonicCount.
    pub monotonic_count: u64,
    /// CertType of the WIN_CERTIFICATE_UEFI_GUID (PKCS#7 expected).
    pub cert_type: Guid,
    /// CertData range in the capsule.
    pub cert_data: std::ops::Range<usize>,
}

/// An FMP capsule's header and items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FmpCapsule {
    /// FMP_CAPSULE_HEADER Version (1).
    pub version: u32,
    /// The items, drivers first.
    pub items: Vec<FmpItem>,
}

fn fmp_err(offset: usize, reason: impl Into<String>) -> CapsuleError {
    CapsuleError::Fmp {
        offset,
        reason: reason.into(),
    }
}

/// Parses the FMP structures of the payload `range` of `buf`.
pub fn parse_fmp(buf: &[u8], range: std::ops::Range<usize>) -> Result<FmpCapsule, CapsuleError> {
    let base = range.start;
    let end = range.end.min(buf.len());
    let (Some(version), Some(drivers), Some(payloads)) = (
        u32_at(buf, base),
        u16_at(buf, base + 4),
        u16_at(buf, base + 6),
    ) else {
        return Err(fmp_err(base, "FMP_CAPSULE_HEADER truncated"));
    };
    let count = usize::from(drivers) + usize::from(payloads);
    if count > MAX_ITEMS {
        return Err(fmp_err(base, format!("{count} items")));
    }
    let mut offsets = Vec::with_capacity(count);
    for i in 0..count {
        let o = u64_at(buf, base + 8 + 8 * i)
            .filter(|&o| o < end as u64)
            .and_then(|o| base.checked_add(usize::try_from(o).ok()?))
            .filter(|&o| o < end)
            .ok_or_else(|| fmp_err(base + 8 + 8 * i, "ItemOffsetList entry outside the capsule"))?;
        offsets.push(o);
    }
    let mut items = Vec::with_capacity(count);
    for (i, &o) in offsets.iter().enumerate() {
        if i < usize::from(drivers) {
            let next = offsets.get(i + 1).copied().unwrap_or(end).clamp(o, end);
            items.push(FmpItem::Driver { range: o..next });
        } else {
            items.push(FmpItem::Image(parse_image(buf, o, end)?));
        }
    }
    Ok(FmpCapsule { version, items })
}

fn parse_image(buf: &[u8], o: usize, end: usize) -> Result<FmpImage, CapsuleError> {
    let region = buf.get(..end).unwrap_or(&[]);
    let (Some(version), Some(type_id), Some(index), Some(size), Some(vendor)) = (
        u32_at(region, o),
        Guid::read(region, o + 4),
        u8_at(region, o + 20),
        u32_at(region, o + 24),
        u32_at(region, o + 28),
    ) else {
        return Err(fmp_err(o, "image header truncated"));
    };
    let (hsize, hardware_instance, capsule_support) = match version {
        1 => (32, None, None),
        2 => (40, u64_at(region, o + 32), None),
        _ => (48, u64_at(region, o + 32), u64_at(region, o + 40)),
    };
    let start = o + hsize;
    let img_end = start
        .checked_add(size as usize)
        .filter(|&e| e <= end)
        .ok_or_else(|| {
            fmp_err(
                o,
                format!("UpdateImageSize {size:#x} runs past the capsule"),
            )
        })?;
    let vend = img_end
        .checked_add(vendor as usize)
        .filter(|&e| e <= end)
        .ok_or_else(|| {
            fmp_err(
                o,
                format!("UpdateVendorCodeSize {vendor:#x} runs past the capsule"),
            )
        })?;
    let image = slice(region, start, size as usize).unwrap_or(&[]);
    let auth = parse_auth(image).map(|(a, used)| {
        (
            FmpAuth {
                monotonic_count: a.monotonic_count,
                cert_type: a.cert_type,
                cert_data: start + a.cert_data.start..start + a.cert_data.end,
            },
            used,
        )
    });
    let payload_start = start + auth.as_ref().map_or(0, |(_, used)| *used);
    Ok(FmpImage {
        offset: o,
        version,
        type_id,
        index,
        hardware_instance,
        capsule_support,
        auth: auth.map(|(a, _)| a),
        payload: payload_start..img_end,
        vendor_code: img_end..vend,
    })
}

/// Reads an EFI_FIRMWARE_IMAGE_AUTHENTICATION at the start of `image`; returns it (ranges
/// relative to `image`) and the bytes it takes.
fn parse_auth(image: &[u8]) -> Option<(FmpAuth, usize)> {
    let monotonic_count = u64_at(image, 0)?;
    let len = u32_at(image, 8)? as usize;
    let revision = u16_at(image, 12)?;
    let cert_type = u16_at(image, 14)?;
    if cert_type != WIN_CERT_TYPE_EFI_GUID || revision != 0x0200 || len < 24 {
        return None;
    }
    let guid = Guid::read(image, 16)?;
    let used = 8usize.checked_add(len)?;
    if used > image.len() {
        return None;
    }
    Some((
        FmpAuth {
            monotonic_count,
            cert_type: guid,
            cert_data: 32..used,
        },
        used,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_are_checked() {
        let mut b = guid::FMP_CAPSULE.0.to_vec();
        b.extend(0x1000u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(40u32.to_le_bytes());
        b.resize(40, 0);
        let h = parse_header(&b).expect("header");
        assert!(detect(&b));
        assert!(matches!(
            h.payload(b.len()),
            Err(CapsuleError::HeaderSize { .. })
        ));
        assert!(parse_header(&b[..20]).is_err());
    }
}
