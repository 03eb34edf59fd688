//! HW-ROT-001: a full SPI image (Intel flash descriptor or AMD embedded firmware structure)
//! that carries no hardware root of trust configuration: no Boot Guard Key and Boot Policy
//! Manifests in the FIT (types 0x0B and 0x0C), or no AMD PSP directory. Informational: the
//! fused hashes that make them enforced cannot be read from a file.

/// Rule id: no Boot Guard manifests / PSP directory in a full SPI image.
pub const HW_ROT_001: &str = "HW-ROT-001";

/// The Intel flash descriptor signature (`0x0FF0A55A`, little-endian).
const IFD_SIGNATURE: [u8; 4] = [0x5a, 0xa5, 0xf0, 0x0f];
/// AMD's embedded firmware structure signature.
const EFS_SIGNATURE: [u8; 4] = [0xaa, 0x55, 0xaa, 0x55];
/// Where AMD platforms look for the EFS, as offsets in a 16 MiB flash.
const EFS_OFFSETS: [usize; 6] = [
    0x2_0000, 0x82_0000, 0xc2_0000, 0xe2_0000, 0xf2_0000, 0xfa_0000,
];
/// FIT entry types of the Boot Guard Key Manifest and Boot Policy Manifest.
const FIT_KM: u8 = 0x0b;
const FIT_BPM: u8 = 0x0c;

/// What the root-of-trust check found in a full image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotGap {
    /// Offset of the structure that made it a full image (descriptor, EFS) or of the FIT.
    pub offset: u64,
    /// What is missing, in a sentence.
    pub detail: String,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The FIT's entry types, if the image's FIT pointer (at end − 0x40) leads to a valid header.
fn fit_types(image: &[u8]) -> Option<(usize, Vec<u8>)> {
    let len = image.len();
    let ptr = u32_at(image, len.checked_sub(0x40)?)? as u64;
    let base = (1u64 << 32).checked_sub(len as u64)?;
    let off = usize::try_from(ptr.checked_sub(base)?).ok()?;
    let header = image.get(off..off.checked_add(16)?)?;
    if &header[..8] != b"_FIT_   " {
        return None;
    }
    let entries = u32::from_le_bytes([header[8], header[9], header[10], 0]) as usize;
    let types = (1..entries.min(4096))
        .filter_map(|i| image.get(off + i * 16 + 14).map(|t| t & 0x7f))
        .collect();
    Some((off, types))
}

/// Checks one blob; `None` when it is not a full SPI image or has its root of trust set up.
pub fn check(image: &[u8]) -> Option<RotGap> {
    let ifd = [0x10usize, 0]
        .into_iter()
        .find(|&o| image.get(o..o + 4) == Some(&IFD_SIGNATURE[..]));
    if let Some(ifd) = ifd {
        return match fit_types(image) {
            None => Some(RotGap {
                offset: ifd as u64,
                detail: "Intel flash image (descriptor) without a Firmware Interface Table: no \
                         Boot Guard manifests"
                    .into(),
            }),
            Some((fit, types)) => {
                let km = types.contains(&FIT_KM);
                let bpm = types.contains(&FIT_BPM);
                (!(km && bpm)).then(|| RotGap {
                    offset: fit as u64,
                    detail: format!(
                        "Intel flash image whose FIT lacks the Boot Guard {}",
                        match (km, bpm) {
                            (false, false) => "Key Manifest (0x0B) and Boot Policy Manifest (0x0C)",
                            (false, true) => "Key Manifest (0x0B)",
                            _ => "Boot Policy Manifest (0x0C)",
                        }
                    ),
                })
            }
        };
    }
    let efs = EFS_OFFSETS
        .into_iter()
        .find(|&o| image.get(o..o + 4) == Some(&EFS_SIGNATURE[..]))?;
    let has_psp = [b"$PSP", b"$PL2"]
        .iter()
        .any(|cookie| image.windows(4).any(|w| w == *cookie));
    (!has_psp).then(|| RotGap {
        offset: efs as u64,
        detail: "AMD flash image (embedded firmware structure) without a PSP directory".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 MiB "flash" with a descriptor and a FIT holding `types`.
    fn intel(types: &[u8]) -> Vec<u8> {
        let len = 1 << 20;
        let mut img = vec![0xffu8; len];
        img[0x10..0x14].copy_from_slice(&IFD_SIGNATURE);
        let fit = len - 0x1000;
        img[fit..fit + 8].copy_from_slice(b"_FIT_   ");
        let n = (types.len() + 1) as u32;
        img[fit + 8..fit + 11].copy_from_slice(&n.to_le_bytes()[..3]);
        img[fit + 14] = 0;
        for (i, t) in types.iter().enumerate() {
            img[fit + (i + 1) * 16 + 14] = *t;
        }
        let ptr = ((1u64 << 32) - len as u64 + fit as u64) as u32;
        img[len - 0x40..len - 0x3c].copy_from_slice(&ptr.to_le_bytes());
        img
    }

    #[test]
    fn boot_guard_manifests_present_is_quiet() {
        assert_eq!(check(&intel(&[0x01, 0x07, FIT_KM, FIT_BPM])), None);
    }

    #[test]
    fn a_fit_without_manifests_is_reported() {
        let gap = check(&intel(&[0x01, 0x07])).expect("gap");
        assert!(
            gap.detail.contains("Key Manifest (0x0B) and Boot Policy"),
            "{gap:?}"
        );
        let gap = check(&intel(&[0x01, FIT_KM | 0x80])).expect("gap");
        assert!(
            gap.detail.ends_with("Boot Policy Manifest (0x0C)"),
            "{gap:?}"
        );
    }

    #[test]
    fn a_descriptor_without_fit_is_reported_and_bogus_pointers_do_not_panic() {
        let mut img = vec![0u8; 4096];
        img[0x10..0x14].copy_from_slice(&IFD_SIGNATURE);
        let n = img.len();
        img[n - 0x40..n - 0x3c].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check(&img).is_some());
        img[n - 0x40..n - 0x3c].copy_from_slice(&0u32.to_le_bytes());
        assert!(check(&img).is_some());
        assert!(check(&img[..0x14]).is_some());
    }

    #[test]
    fn amd_images_need_a_psp_directory_and_other_blobs_are_not_flash_images() {
        let mut img = vec![0u8; 0x3_0000];
        img[0x2_0000..0x2_0004].copy_from_slice(&EFS_SIGNATURE);
        assert!(check(&img).is_some());
        img[0x2_1000..0x2_1004].copy_from_slice(b"$PSP");
        assert_eq!(check(&img), None);
        assert_eq!(check(b"just a capsule"), None);
        assert_eq!(check(&[]), None);
    }
}
