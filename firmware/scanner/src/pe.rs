//! PE/COFF images (EFI applications, drivers, option ROM images): headers via `object`, the
//! certificate table (WIN_CERTIFICATE entries) and the Authenticode digest dbx entries use.

use object::LittleEndian as LE;
use object::pe::{self, ImageDosHeader, ImageNtHeaders32, ImageNtHeaders64};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use sha2::Digest;
use thiserror::Error;

use crate::util::{slice, u16_at, u32_at};

/// WIN_CERT_TYPE_PKCS_SIGNED_DATA: an Authenticode signature.
pub const WIN_CERT_TYPE_PKCS_SIGNED_DATA: u16 = 0x0002;
/// WIN_CERT_TYPE_EFI_GUID: a UEFI GUID-typed certificate (capsules, authenticated variables).
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;

/// Why a PE image could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PeError {
    /// No MZ/PE signatures: not a PE image at all.
    #[error("not a PE image")]
    NotPe,
    /// Headers or sections are inconsistent with the file.
    #[error("PE malformed: {0}")]
    Malformed(String),
    /// The security directory points outside the file.
    #[error(
        "PE certificate table at {offset:#x} of {size:#x} bytes lies outside the file ({len:#x} bytes)"
    )]
    CertTableOutside {
        /// File offset from the data directory.
        offset: u64,
        /// Size from the data directory.
        size: u64,
        /// File length.
        len: u64,
    },
    /// A WIN_CERTIFICATE entry's length is impossible.
    #[error("WIN_CERTIFICATE at {offset:#x}: {reason}")]
    BadEntry {
        /// File offset of the entry.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

/// The layout facts of one PE image that signature checks need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeImage {
    /// PE32+ (64-bit optional header).
    pub pe32_plus: bool,
    /// IMAGE_FILE_MACHINE_*.
    pub machine: u16,
    /// IMAGE_SUBSYSTEM_* (10-13 are EFI).
    pub subsystem: u16,
    /// SizeOfHeaders.
    pub size_of_headers: u32,
    /// File offset of the CheckSum field.
    checksum_offset: usize,
    /// File offset of the security data directory entry, when the header has one.
    security_entry_offset: Option<usize>,
    /// (PointerToRawData, SizeOfRawData) of each section.
    sections: Vec<(u32, u32)>,
    /// The certificate table's file range, when present.
    pub cert_table: Option<(u32, u32)>,
}

/// One WIN_CERTIFICATE entry of the certificate table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WinCertificate {
    /// File offset of the entry.
    pub offset: u64,
    /// wRevision (0x0200 expected).
    pub revision: u16,
    /// wCertificateType.
    pub cert_type: u16,
    /// bCertificate (the PKCS#7 ContentInfo for Authenticode).
    pub data: Vec<u8>,
}

/// Cheap check for the MZ and PE signatures, used to route a buffer to the PE reader.
pub fn is_pe(data: &[u8]) -> bool {
    data.starts_with(b"MZ")
        && u32_at(data, 0x3C)
            .and_then(|o| slice(data, o as usize, 4))
            .is_some_and(|s| s == b"PE\0\0")
}

/// Parses the headers, section table and security directory of a PE image.
pub fn parse(data: &[u8]) -> Result<PeImage, PeError> {
    if !is_pe(data) {
        return Err(PeError::NotPe);
    }
    let dos = ImageDosHeader::parse(data).map_err(|e| PeError::Malformed(e.to_string()))?;
    let nt_off = u64::from(dos.nt_headers_offset());
    let magic = u16_at(data, nt_off as usize + 24).ok_or(PeError::NotPe)?;
    match magic {
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => parse_as::<ImageNtHeaders64>(data, nt_off, 112),
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => parse_as::<ImageNtHeaders32>(data, nt_off, 96),
        m => Err(PeError::Malformed(format!("optional header magic {m:#x}"))),
    }
}

fn parse_as<Pe: ImageNtHeaders>(
    data: &[u8],
    nt_off: u64,
    dirs_at: usize,
) -> Result<PeImage, PeError> {
    let mut off = nt_off;
    let (nt, dirs) = Pe::parse(data, &mut off).map_err(|e| PeError::Malformed(e.to_string()))?;
    let table = nt
        .sections(data, off)
        .map_err(|e| PeError::Malformed(e.to_string()))?;
    let opt = nt_off as usize + 24;
    let sec = dirs.get(pe::IMAGE_DIRECTORY_ENTRY_SECURITY);
    let cert_table = sec
        .map(|d| (d.virtual_address.get(LE), d.size.get(LE)))
        .filter(|&(va, size)| va != 0 && size != 0);
    if let Some((va, size)) = cert_table {
        let end = u64::from(va) + u64::from(size);
        if end > data.len() as u64 {
            return Err(PeError::CertTableOutside {
                offset: va.into(),
                size: size.into(),
                len: data.len() as u64,
            });
        }
    }
    Ok(PeImage {
        pe32_plus: nt.is_type_64(),
        machine: nt.file_header().machine.get(LE),
        subsystem: nt.optional_header().subsystem(),
        size_of_headers: nt.optional_header().size_of_headers(),
        checksum_offset: opt + 64,
        security_entry_offset: sec.map(|_| opt + dirs_at + 8 * pe::IMAGE_DIRECTORY_ENTRY_SECURITY),
        sections: table
            .iter()
            .map(|s| (s.pointer_to_raw_data.get(LE), s.size_of_raw_data.get(LE)))
            .collect(),
        cert_table,
    })
}

impl PeImage {
    /// Computes the Authenticode digest with `D` (the image hash signatures and dbx carry).
    ///
    /// The algorithm is sbsigntool's and the `authenticode` crate's: headers without CheckSum and
    /// the security entry, sections by file offset, then trailing data without the certificate
    /// table.
    pub fn authenticode_digest<D: Digest>(&self, data: &[u8]) -> Result<Vec<u8>, PeError> {
        let bad = |what: &str| PeError::Malformed(what.to_string());
        let mut h = D::new();
        let headers = self.size_of_headers as usize;
        let mut cut = vec![(self.checksum_offset, 4usize)];
        if let Some(s) = self.security_entry_offset {
            cut.push((s, 8));
        }
        let mut pos = 0usize;
        for (at, len) in cut {
            h.update(
                data.get(pos..at)
                    .ok_or_else(|| bad("headers shorter than CheckSum"))?,
            );
            pos = at + len;
        }
        h.update(
            data.get(pos..headers)
                .ok_or_else(|| bad("SizeOfHeaders inconsistent"))?,
        );
        let mut sections: Vec<(u32, u32)> = self
            .sections
            .iter()
            .copied()
            .filter(|&(_, s)| s != 0)
            .collect();
        sections.sort_unstable();
        let mut hashed = headers as u64;
        for (ptr, size) in sections {
            let s = slice(data, ptr as usize, size as usize)
                .ok_or_else(|| bad("section raw data runs past the file"))?;
            h.update(s);
            hashed += u64::from(size);
        }
        let cert = u64::from(self.cert_table.map_or(0, |(_, s)| s));
        let len = data.len() as u64;
        // `len > hashed` is implied by a positive remainder.
        if let Some(extra) = len.checked_sub(hashed + cert).filter(|&e| e > 0) {
            h.update(
                slice(data, hashed as usize, extra as usize).ok_or_else(|| bad("trailing data"))?,
            );
        }
        Ok(h.finalize().to_vec())
    }

    /// The WIN_CERTIFICATE entries of the certificate table (8-byte aligned, several allowed).
    pub fn certificates(&self, data: &[u8]) -> Result<Vec<WinCertificate>, PeError> {
        let Some((va, size)) = self.cert_table else {
            return Ok(Vec::new());
        };
        let table = slice(data, va as usize, size as usize).ok_or(PeError::CertTableOutside {
            offset: va.into(),
            size: size.into(),
            len: data.len() as u64,
        })?;
        let mut out = Vec::new();
        let mut off = 0usize;
        while off + 8 <= table.len() {
            let at = u64::from(va) + off as u64;
            let (Some(len), Some(revision), Some(cert_type)) = (
                u32_at(table, off),
                u16_at(table, off + 4),
                u16_at(table, off + 6),
            ) else {
                break;
            };
            let len = len as usize;
            let body = (len >= 8)
                .then(|| slice(table, off + 8, len - 8))
                .flatten()
                .ok_or_else(|| PeError::BadEntry {
                    offset: at,
                    reason: format!(
                        "dwLength {len:#x} outside the table ({:#x} left)",
                        table.len() - off
                    ),
                })?;
            out.push(WinCertificate {
                offset: at,
                revision,
                cert_type,
                data: body.to_vec(),
            });
            off = crate::util::align_up(off + len, 8).unwrap_or(usize::MAX);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_pe() {
        assert_eq!(parse(b"MZ"), Err(PeError::NotPe));
        assert!(!is_pe(&[]));
        let mut b = vec![0u8; 0x100];
        b[0] = b'M';
        b[1] = b'Z';
        b[0x3C] = 0x40;
        b[0x40..0x44].copy_from_slice(b"PE\0\0");
        assert!(is_pe(&b));
        assert!(parse(&b).is_err());
    }
}
