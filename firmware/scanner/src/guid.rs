//! EFI GUIDs in their mixed-endian on-disk form, printed the way edk2 and UEFITool print them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A GUID as stored in firmware (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Reads a GUID from 16 bytes at `off`, `None` when out of bounds.
    pub fn read(buf: &[u8], off: usize) -> Option<Guid> {
        let b: [u8; 16] = crate::util::slice(buf, off, 16)?.try_into().ok()?;
        Some(Guid(b))
    }

    /// Parses the textual form `8be4df61-93ca-11d2-aa0d-00e098032b8c` (constants, rule packs).
    pub fn parse(s: &str) -> Option<Guid> {
        let hex: String = s
            .trim()
            .trim_matches(|c| c == '{' || c == '}')
            .split('-')
            .collect();
        if hex.len() != 32 {
            return None;
        }
        let raw = hex::decode(hex).ok()?;
        let mut b = [0u8; 16];
        b.copy_from_slice(&raw);
        // Text order → on-disk order: swap the first three fields.
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
        Some(Guid(b))
    }

    /// Builds a constant from its text form; only for literals known to be valid.
    pub(crate) const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Guid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Guid::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("bad GUID {s}")))
    }
}

/// FFS version 2 file system (EFI_FIRMWARE_FILE_SYSTEM2_GUID).
pub const FFS2: Guid = Guid::from_fields(
    0x8c8ce578,
    0x8a3d,
    0x4f1c,
    [0x99, 0x35, 0x89, 0x61, 0x85, 0xc3, 0x2d, 0xd3],
);
/// FFS version 3 file system (large files).
pub const FFS3: Guid = Guid::from_fields(
    0x5473c07a,
    0x3dcb,
    0x4dca,
    [0xbd, 0x6f, 0x1e, 0x96, 0x89, 0xe7, 0x34, 0x9a],
);
/// gEfiSystemNvDataFvGuid: the FV holding the edk2 variable store.
pub const NV_DATA_FV: Guid = Guid::from_fields(
    0xfff12b8d,
    0x7696,
    0x4c8b,
    [0xa9, 0x85, 0x27, 0x47, 0x07, 0x5b, 0x4f, 0x50],
);
/// gEfiVariableGuid: a VSS store of plain variable headers.
pub const VARIABLE_STORE: Guid = Guid::from_fields(
    0xddcf3616,
    0x3275,
    0x4164,
    [0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d],
);
/// gEfiAuthenticatedVariableGuid: a VSS2 store of authenticated variable headers.
pub const AUTH_VARIABLE_STORE: Guid = Guid::from_fields(
    0xaaf32c78,
    0x947b,
    0x439a,
    [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92],
);
/// gEfiAuthenticatedVariableBasedTimeGuid: older edk2 name of the VSS2 store signature.
pub const AUTH_VARIABLE_TIME_STORE: Guid = Guid::from_fields(
    0x9a3a3b00,
    0x5b3e,
    0x4d2a,
    [0x8a, 0x0a, 0x6b, 0x4e, 0x6b, 0x97, 0xe3, 0x31],
);
/// EFI_GLOBAL_VARIABLE: owner of PK and KEK.
pub const GLOBAL_VARIABLE: Guid = Guid::from_fields(
    0x8be4df61,
    0x93ca,
    0x11d2,
    [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
);
/// EFI_IMAGE_SECURITY_DATABASE_GUID: owner of db and dbx.
pub const IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(
    0xd719b2cb,
    0x3d3a,
    0x4596,
    [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
);
/// EFI_CERT_X509_GUID: an ESL of DER certificates.
pub const CERT_X509: Guid = Guid::from_fields(
    0xa5c059a1,
    0x94e4,
    0x4aa7,
    [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
);
/// EFI_CERT_SHA256_GUID: an ESL of SHA-256 hashes.
pub const CERT_SHA256: Guid = Guid::from_fields(
    0xc1c41626,
    0x504c,
    0x4092,
    [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
);
/// LZMA GUID-defined section (LzmaCustomDecompressGuid).
pub const LZMA: Guid = Guid::from_fields(
    0xee4e5898,
    0x3914,
    0x4259,
    [0x9d, 0x6e, 0xdc, 0x7b, 0xd7, 0x94, 0x03, 0xcf],
);
/// LZMA with the x86 branch filter (LzmaF86CustomDecompressGuid).
pub const LZMA_F86: Guid = Guid::from_fields(
    0xd42ae6bd,
    0x1352,
    0x4bfb,
    [0x90, 0x9a, 0xca, 0x72, 0xa6, 0xea, 0xe8, 0x89],
);
/// Tiano compression GUID-defined section (TianoCustomDecompressGuid).
pub const TIANO: Guid = Guid::from_fields(
    0xa31280ad,
    0x481e,
    0x41b6,
    [0x95, 0xe8, 0x12, 0x7f, 0x4c, 0x98, 0x47, 0x79],
);
/// Brotli GUID-defined section.
pub const BROTLI: Guid = Guid::from_fields(
    0x3d532050,
    0x5cda,
    0x4fd0,
    [0x87, 0x9e, 0x0f, 0x7f, 0x63, 0x0d, 0x5a, 0xfb],
);
/// CRC32 GUID-defined section (payload follows a 4-byte CRC).
pub const CRC32: Guid = Guid::from_fields(
    0xfc1bcdb0,
    0x7d31,
    0x49aa,
    [0x93, 0x6a, 0xa4, 0x60, 0x0d, 0x9d, 0xd0, 0x83],
);

/// EFI_FIRMWARE_MANAGEMENT_CAPSULE_ID_GUID: an FMP capsule.
pub const FMP_CAPSULE: Guid = Guid::from_fields(
    0x6dcbd5ed,
    0xe82d,
    0x4c44,
    [0xbd, 0xa1, 0x71, 0x94, 0x19, 0x9a, 0xd9, 0x2a],
);
/// EFI_CAPSULE_GUID: a capsule holding a firmware volume.
pub const EFI_CAPSULE: Guid = Guid::from_fields(
    0x3b6686bd,
    0x0d76,
    0x4030,
    [0xb7, 0x0e, 0xb5, 0x51, 0x9e, 0x2f, 0xc5, 0xa0],
);
/// WINDOWS_UX_CAPSULE_GUID: the firmware update progress bitmap capsule.
pub const UX_CAPSULE: Guid = Guid::from_fields(
    0x3b8c8162,
    0x188c,
    0x46a4,
    [0xae, 0xc9, 0xbe, 0x43, 0xf1, 0xd6, 0x56, 0x97],
);
/// EFI_CERT_TYPE_PKCS7_GUID: WIN_CERTIFICATE_UEFI_GUID data is a PKCS#7 SignedData.
pub const CERT_TYPE_PKCS7: Guid = Guid::from_fields(
    0x4aafd29d,
    0x68df,
    0x49ee,
    [0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7],
);
/// EFI_CERT_TYPE_RSA2048_SHA256_GUID: a raw RSA-2048 key and signature.
pub const CERT_TYPE_RSA2048_SHA256: Guid = Guid::from_fields(
    0xa7717414,
    0xc616,
    0x4977,
    [0x94, 0x20, 0x84, 0x47, 0x12, 0xa7, 0x35, 0xbf],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip() {
        assert_eq!(
            GLOBAL_VARIABLE.to_string(),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
        assert_eq!(
            Guid::parse("8BE4DF61-93CA-11D2-AA0D-00E098032B8C"),
            Some(GLOBAL_VARIABLE)
        );
        assert_eq!(
            Guid::parse("{ee4e5898-3914-4259-9d6e-dc7bd79403cf}"),
            Some(LZMA)
        );
        assert_eq!(Guid::parse("nope"), None);
        assert_eq!(
            Guid::parse("6dcbd5ed-e82d-4c44-bda1-7194199ad92a"),
            Some(FMP_CAPSULE)
        );
        assert_eq!(
            CERT_TYPE_PKCS7.to_string(),
            "4aafd29d-68df-49ee-8aa9-347d375665a7"
        );
    }
}
