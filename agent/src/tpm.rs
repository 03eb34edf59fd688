//! The TPM from `/sys/class/tpm/tpm0`: presence, `tpm_version_major`, and for TPM 1.2 the
//! manufacturer and firmware from `device/caps`. TPM 2.0 exposes neither in sysfs, so on the
//! live system the agent asks the TPM itself (TPM2_GetCapability of the TPM properties
//! `TPM_PT_MANUFACTURER`..`TPM_PT_FIRMWARE_VERSION_2`) through `/dev/tpmrm0`, which is a plain
//! read/write of command bytes (no ioctl).

use std::io::{Read, Write};
use std::path::Path;

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil;
use crate::{component, set_prop};

/// TPM facts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TpmInfo {
    /// Spec version, "1.2" or "2.0".
    pub version: Option<String>,
    /// Manufacturer id as the TPM reports it ("IFX", "NTC", "STM").
    pub manufacturer_id: Option<String>,
    /// Vendor string ("SLB9670").
    pub vendor_string: Option<String>,
    /// Firmware version.
    pub firmware: Option<String>,
    /// Kernel driver.
    pub driver: Option<String>,
    /// ACPI description / hid.
    pub description: Option<String>,
}

/// The TPM2_GetCapability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MANUFACTURER, 8) command.
pub const GET_CAPABILITY_CMD: [u8; 22] = [
    0x80, 0x01, // TPM_ST_NO_SESSIONS
    0x00, 0x00, 0x00, 0x16, // size 22
    0x00, 0x00, 0x01, 0x7a, // TPM_CC_GetCapability
    0x00, 0x00, 0x00, 0x06, // TPM_CAP_TPM_PROPERTIES
    0x00, 0x00, 0x01, 0x05, // TPM_PT_MANUFACTURER
    0x00, 0x00, 0x00, 0x08, // count
];

fn ascii4(v: u32) -> String {
    v.to_be_bytes()
        .iter()
        .filter(|c| c.is_ascii_graphic() || **c == b' ')
        .map(|c| char::from(*c))
        .collect::<String>()
        .trim()
        .to_string()
}

/// Parses a TPM2_GetCapability response for the properties asked by [`GET_CAPABILITY_CMD`].
pub fn parse_get_capability(b: &[u8]) -> Option<TpmInfo> {
    let u32be = |o: usize| {
        b.get(o..o.checked_add(4)?)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let rc = u32be(6)?;
    if rc != 0 || u32be(11)? != 6 {
        return None;
    }
    let count = usize::try_from(u32be(15)?).ok()?.min(64);
    let mut info = TpmInfo {
        version: Some("2.0".to_string()),
        ..TpmInfo::default()
    };
    let (mut vendor, mut fw1, mut fw2) = (String::new(), None, None);
    for i in 0..count {
        let off = 19 + i * 8;
        let (Some(p), Some(v)) = (u32be(off), u32be(off + 4)) else {
            break;
        };
        match p {
            0x105 => info.manufacturer_id = Some(ascii4(v)).filter(|s| !s.is_empty()),
            0x106..=0x109 => vendor.push_str(&ascii4(v)),
            0x10B => fw1 = Some(v),
            0x10C => fw2 = Some(v),
            _ => {}
        }
    }
    info.vendor_string = Some(vendor.trim().to_string()).filter(|s| !s.is_empty());
    info.firmware = fw1.map(|f1| {
        let f2 = fw2.unwrap_or(0);
        format!("{}.{}.{}.{}", f1 >> 16, f1 & 0xffff, f2 >> 16, f2 & 0xffff)
    });
    Some(info)
}

/// Parses a TPM 1.2 `caps` file ("Manufacturer: 0x49465800", "Firmware version: 6.40").
pub fn parse_caps(text: &str) -> TpmInfo {
    let mut info = TpmInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "Manufacturer" => {
                info.manufacturer_id = fsutil::parse_num(v)
                    .and_then(|n| u32::try_from(n).ok())
                    .map(ascii4)
                    .filter(|s| !s.is_empty())
                    .or_else(|| Some(v.to_string()))
            }
            "TCG version" => info.version = Some(v.to_string()),
            "Firmware version" => info.firmware = Some(v.to_string()),
            _ => {}
        }
    }
    info
}

/// The TCG vendor id registry's best-known names.
pub fn manufacturer_name(id: &str) -> Option<&'static str> {
    Some(match id {
        "IFX" => "Infineon",
        "NTC" => "Nuvoton",
        "STM" => "STMicroelectronics",
        "INTC" => "Intel",
        "AMD" => "AMD",
        "ATML" => "Atmel",
        "BRCM" => "Broadcom",
        "IBM" => "IBM",
        "MSFT" => "Microsoft",
        "NTZ" => "Nationz",
        "GOOG" => "Google",
        "QCOM" => "Qualcomm",
        "HPE" => "HPE",
        "ROCC" => "Fuzhou Rockchip",
        "SMSC" => "SMSC",
        "TXN" => "Texas Instruments",
        "WEC" => "Winbond",
        _ => return None,
    })
}

fn ask_tpm2(root: &Path) -> Result<TpmInfo, String> {
    let rel = "dev/tpmrm0";
    let path = fsutil::at(root, rel);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| fsutil::ReadError::new(rel, e).to_string())?;
    f.write_all(&GET_CAPABILITY_CMD)
        .map_err(|e| fsutil::ReadError::new(rel, e).to_string())?;
    let mut buf = [0u8; 4096];
    let n = f
        .read(&mut buf)
        .map_err(|e| fsutil::ReadError::new(rel, e).to_string())?;
    parse_get_capability(buf.get(..n).unwrap_or(&[]))
        .ok_or_else(|| format!("/{rel}: unexpected GetCapability response"))
}

/// Reads the TPM under `root` (`None` when there is none, which is not an error).
pub fn read(root: &Path, live: bool, errors: &mut Vec<String>) -> Option<Component> {
    let dir = "sys/class/tpm/tpm0";
    if !fsutil::at(root, dir).exists() {
        return None;
    }
    let a = |f: &str| fsutil::attr(root, format!("{dir}/{f}"));
    let major = a("tpm_version_major");
    let mut info = a("device/caps").map(|c| parse_caps(&c)).unwrap_or_default();
    if info.version.is_none() {
        info.version = major.as_deref().map(|m| match m {
            "2" => "2.0".to_string(),
            "1" => "1.2".to_string(),
            other => other.to_string(),
        });
    }
    if live && major.as_deref() == Some("2") {
        match ask_tpm2(root) {
            Ok(t) => {
                info.manufacturer_id = t.manufacturer_id;
                info.vendor_string = t.vendor_string;
                info.firmware = t.firmware;
            }
            Err(e) => errors.push(format!("TPM manufacturer and firmware: {e}")),
        }
    }
    info.driver = fsutil::link_name(root, format!("{dir}/device/driver"));
    info.description = a("device/description").or_else(|| a("device/hid"));
    Some(to_component(&info))
}

/// The TPM as component `tpm:0`.
pub fn to_component(t: &TpmInfo) -> Component {
    let mut c = component("tpm:0".to_string(), ComponentKind::Tpm, "TPM".to_string());
    c.manufacturer = t.manufacturer_id.as_deref().map(|id| {
        manufacturer_name(id)
            .map(str::to_string)
            .unwrap_or_else(|| id.to_string())
    });
    c.model = t.vendor_string.clone();
    c.firmware_version = t.firmware.clone();
    set_prop(&mut c, "tpm_version", t.version.clone());
    set_prop(&mut c, "manufacturer_id", t.manufacturer_id.clone());
    set_prop(&mut c, "driver", t.driver.clone());
    set_prop(&mut c, "description", t.description.clone());
    c
}
