//! The BMC's firmware through IPMI Get Device ID (NetFn App 06h, Cmd 01h) on the OpenIPMI
//! device `/dev/ipmi0` (also `/dev/ipmi/0`, `/dev/ipmidev/0`). No device node is normal (no BMC,
//! or the ipmi_devintf module not loaded) and is not reported as an error.

use std::path::Path;
use std::time::Duration;

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil;
use crate::{component, set_prop, sys};

/// Device nodes the OpenIPMI driver may create, relative to the root.
pub const DEVICE_PATHS: &[&str] = &["dev/ipmi0", "dev/ipmi/0", "dev/ipmidev/0"];

/// A decoded Get Device ID response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    /// Device ID.
    pub device_id: u8,
    /// Device revision (low nibble).
    pub device_revision: u8,
    /// Firmware revision as `major.minor` (minor is BCD, printed as two hex digits like ipmitool).
    pub firmware: String,
    /// IPMI version, e.g. `2.0`.
    pub ipmi_version: String,
    /// IANA enterprise number of the manufacturer.
    pub manufacturer_id: u32,
    /// Product ID.
    pub product_id: u16,
    /// Auxiliary firmware revision bytes, hex, when present.
    pub aux_firmware: Option<String>,
    /// Whether the device is in firmware update / self-init (bit 7 of firmware rev 1).
    pub updating: bool,
}

/// Parses Get Device ID response data (completion code first).
pub fn parse_device_id(b: &[u8]) -> Option<DeviceId> {
    if *b.first()? != 0 || b.len() < 12 {
        return None;
    }
    let ver = b[5];
    Some(DeviceId {
        device_id: b[1],
        device_revision: b[2] & 0x0f,
        firmware: format!("{}.{:02x}", b[3] & 0x7f, b[4]),
        ipmi_version: format!("{}.{}", ver & 0x0f, ver >> 4),
        manufacturer_id: u32::from_le_bytes([b[7], b[8], b[9] & 0x0f, 0]),
        product_id: u16::from_le_bytes([b[10], b[11]]),
        aux_firmware: b
            .get(12..16)
            .map(|a| a.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        updating: b[3] & 0x80 != 0,
    })
}

/// Well-known IANA enterprise numbers of BMC makers.
pub fn manufacturer_name(iana: u32) -> Option<&'static str> {
    Some(match iana {
        2 => "IBM",
        11 => "HPE",
        343 => "Intel",
        674 => "Dell",
        2011 => "Huawei",
        10876 => "Supermicro",
        19046 => "Lenovo",
        20301 => "IBM",
        7244 => "Quanta",
        15370 => "GIGABYTE",
        40092 => "ASRock Rack",
        49622 => "OpenBMC",
        _ => return None,
    })
}

/// Asks the BMC for its identity (`None` when there is no IPMI device node).
pub fn read(root: &Path, errors: &mut Vec<String>) -> Option<Component> {
    let rel = DEVICE_PATHS.iter().find(|p| fsutil::at(root, p).exists())?;
    let result = sys::open_rw(&fsutil::at(root, rel))
        .and_then(|f| sys::ipmi_request(&f, 0x06, 0x01, &[], Duration::from_millis(1500)));
    let data = match result {
        Ok(d) => d,
        Err(e) => {
            errors.push(format!("BMC: {}", fsutil::ReadError::new(rel, e)));
            return None;
        }
    };
    match parse_device_id(&data) {
        Some(id) => Some(to_component(&id)),
        None => {
            errors.push(format!(
                "BMC: /{rel}: Get Device ID failed (completion code {:#04x})",
                data.first().copied().unwrap_or(0xff)
            ));
            None
        }
    }
}

/// The BMC as component `bmc:0`.
pub fn to_component(id: &DeviceId) -> Component {
    let mut c = component("bmc:0".to_string(), ComponentKind::Bmc, "BMC".to_string());
    c.manufacturer = Some(
        manufacturer_name(id.manufacturer_id)
            .map(str::to_string)
            .unwrap_or_else(|| format!("IANA {}", id.manufacturer_id)),
    );
    c.model = Some(format!("product {:#06x}", id.product_id));
    c.firmware_version = Some(id.firmware.clone());
    set_prop(&mut c, "ipmi_version", Some(&id.ipmi_version));
    set_prop(&mut c, "manufacturer_id", Some(id.manufacturer_id));
    set_prop(
        &mut c,
        "product_id",
        Some(format!("{:#06x}", id.product_id)),
    );
    set_prop(&mut c, "device_id", Some(id.device_id));
    set_prop(&mut c, "device_revision", Some(id.device_revision));
    set_prop(&mut c, "aux_firmware", id.aux_firmware.clone());
    if id.updating {
        set_prop(&mut c, "updating", Some("true"));
    }
    c
}
