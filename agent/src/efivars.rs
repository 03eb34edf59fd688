//! UEFI Secure Boot variables from efivarfs (`/sys/firmware/efi/efivars`): PK and KEK under the
//! global variable GUID, db and dbx under the image security database GUID, and the
//! `SecureBoot`/`SetupMode` flags. The payloads are handed over raw (EFI_SIGNATURE_LISTs); the
//! Secure Boot rules read them the way they read a firmware image's variable store.

use std::collections::BTreeMap;
use std::path::Path;

use crate::fsutil::{ReadError, read_bytes};

/// Where the kernel exposes UEFI variables.
pub const EFIVARS: &str = "sys/firmware/efi/efivars";
/// `EFI_GLOBAL_VARIABLE`: PK, KEK, SecureBoot, SetupMode.
pub const GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";
/// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx.
pub const IMAGE_SECURITY: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";

/// The Secure Boot variables of this machine, as efivarfs has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EfiSecureBoot {
    /// `SecureBoot`: whether this boot enforced Secure Boot.
    pub secure_boot: Option<bool>,
    /// `SetupMode`: no Platform Key, so keys can be enrolled without authentication.
    pub setup_mode: Option<bool>,
    /// PK, KEK, db and dbx payloads (EFI_SIGNATURE_LISTs, the 4-byte attributes removed);
    /// `None` for a variable that does not exist.
    pub variables: BTreeMap<String, Option<Vec<u8>>>,
}

/// Reads the Secure Boot variables under `root`; `Ok(None)` on a machine that did not boot
/// through UEFI (no efivarfs). An empty `efivars` folder is an error: on a UEFI machine it is
/// efivarfs's mount point with nothing mounted (the kernel module not loaded, or not mounted),
/// and reading it as "no PK, no dbx" would report setup mode and an empty dbx that are not so.
pub fn read(root: &Path) -> Result<Option<EfiSecureBoot>, ReadError> {
    let dir = crate::fsutil::at(root, EFIVARS);
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut entries = std::fs::read_dir(&dir).map_err(|e| ReadError::new(EFIVARS, e))?;
    if entries.next().is_none() {
        return Err(ReadError::new(
            EFIVARS,
            std::io::Error::other(
                "efivarfs is not mounted (mount -t efivarfs efivarfs /sys/firmware/efi/efivars)",
            ),
        ));
    }
    let payload = |name: &str, guid: &str| -> Result<Option<Vec<u8>>, ReadError> {
        // efivarfs: a 4-byte little-endian attribute word, then the data.
        Ok(read_bytes(root, format!("{EFIVARS}/{name}-{guid}"))?
            .map(|b| b.get(4..).map(<[u8]>::to_vec).unwrap_or_default()))
    };
    let flag = |name: &str| -> Result<Option<bool>, ReadError> {
        Ok(payload(name, GLOBAL)?.and_then(|d| d.first().map(|b| *b == 1)))
    };
    let mut variables = BTreeMap::new();
    for (name, guid) in [
        ("PK", GLOBAL),
        ("KEK", GLOBAL),
        ("db", IMAGE_SECURITY),
        ("dbx", IMAGE_SECURITY),
    ] {
        variables.insert(name.to_string(), payload(name, guid)?);
    }
    Ok(Some(EfiSecureBoot {
        secure_boot: flag("SecureBoot")?,
        setup_mode: flag("SetupMode")?,
        variables,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_efivarfs_is_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read(dir.path()).expect("read"), None);
    }

    #[test]
    fn an_unmounted_efivarfs_is_an_error_not_an_empty_key_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join(EFIVARS)).expect("mkdir");
        let e = read(dir.path()).expect_err("an empty mount point");
        assert_eq!(e.shown, Path::new("/").join(EFIVARS));
        assert!(e.to_string().contains("efivarfs is not mounted"), "{e}");
    }

    #[test]
    fn flags_and_payloads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v = dir.path().join(EFIVARS);
        std::fs::create_dir_all(&v).expect("mkdir");
        std::fs::write(v.join(format!("SecureBoot-{GLOBAL}")), [6, 0, 0, 0, 1]).expect("w");
        std::fs::write(v.join(format!("SetupMode-{GLOBAL}")), [6, 0, 0, 0, 0]).expect("w");
        std::fs::write(v.join(format!("KEK-{GLOBAL}")), [0x27, 0, 0, 0, 0xaa, 0xbb]).expect("w");
        std::fs::write(v.join(format!("dbx-{IMAGE_SECURITY}")), [0x27, 0, 0]).expect("w");
        let sb = read(dir.path()).expect("read").expect("efivarfs");
        assert_eq!(sb.secure_boot, Some(true));
        assert_eq!(sb.setup_mode, Some(false));
        assert_eq!(sb.variables["KEK"], Some(vec![0xaa, 0xbb]));
        assert_eq!(sb.variables["PK"], None);
        assert_eq!(
            sb.variables["dbx"],
            Some(Vec::new()),
            "a short file is an empty payload"
        );
    }
}
