//! PCI devices from `/sys/bus/pci/devices`, named from the pci.ids database.
//!
//! Why the system's pci.ids file rather than the `pci-ids` crate: the crate compiles the whole
//! database (~1.3 MB of text, tens of thousands of entries) into the binary through a build
//! script, which makes every agent binary bigger and its build slower, and freezes the names at
//! build time. Servers almost always carry the file (`pciutils` / `hwdata` install it) and the
//! OS keeps it current; we read it from the root being inspected, keep only the vendors present
//! on the machine, and when no file exists we report the numeric ids and say so in `errors`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil::{self, parse_num};
use crate::{component, set_prop};

/// Where pci.ids may live, in order of preference (relative to the root).
pub const PCI_IDS_PATHS: &[&str] = &[
    "usr/share/hwdata/pci.ids",
    "usr/share/misc/pci.ids",
    "usr/share/pci.ids",
];

/// Names looked up in pci.ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PciIds {
    /// Vendor id to name.
    pub vendors: HashMap<u16, String>,
    /// (vendor, device) to name.
    pub devices: HashMap<(u16, u16), String>,
    /// (vendor, device, subvendor, subdevice) to name.
    pub subsystems: HashMap<(u16, u16, u16, u16), String>,
    /// Class byte to name.
    pub classes: HashMap<u8, String>,
    /// (class, subclass) to name.
    pub subclasses: HashMap<(u8, u8), String>,
}

impl PciIds {
    /// Parses pci.ids text, keeping only the given vendors' entries (all when `vendors` is
    /// `None`) and all classes. Malformed lines are skipped.
    pub fn parse(text: &str, vendors: Option<&BTreeSet<u16>>) -> Self {
        let mut ids = Self::default();
        let keep = |v: u16| vendors.is_none_or(|set| set.contains(&v));
        let hex16 = |s: &str| u16::from_str_radix(s, 16).ok();
        let hex8 = |s: &str| u8::from_str_radix(s, 16).ok();
        let mut vendor: Option<u16> = None;
        let mut device: Option<u16> = None;
        let mut class: Option<u8> = None;
        let mut in_classes = false;
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let tabs = line.bytes().take_while(|b| *b == b'\t').count();
            let body = &line[tabs..];
            let (id, name) = match body.split_once("  ") {
                Some((id, name)) => (id.trim(), name.trim().to_string()),
                None => (body.trim(), String::new()),
            };
            match tabs {
                0 => {
                    vendor = None;
                    device = None;
                    class = None;
                    if let Some(c) = id.strip_prefix("C ") {
                        in_classes = true;
                        class = hex8(c.trim());
                        if let Some(c) = class {
                            ids.classes.insert(c, name);
                        }
                    } else if !in_classes && id.len() == 4 {
                        vendor = hex16(id);
                        if let Some(v) = vendor.filter(|v| keep(*v)) {
                            ids.vendors.insert(v, name);
                        }
                    } else {
                        // Another section (device classes "C" ended, "X"/"ISA" lists...).
                        in_classes = id.starts_with("C ");
                    }
                }
                1 => {
                    if let Some(c) = class {
                        if let Some(sc) = hex8(id) {
                            ids.subclasses.insert((c, sc), name);
                        }
                    } else if let Some(v) = vendor {
                        device = hex16(id);
                        if let Some(d) = device
                            && keep(v)
                        {
                            ids.devices.insert((v, d), name);
                        }
                    }
                }
                2 => {
                    if let (Some(v), Some(d)) = (vendor, device)
                        && keep(v)
                        && let Some((sv, sd)) = id.split_once(' ')
                        && let (Some(sv), Some(sd)) = (hex16(sv.trim()), hex16(sd.trim()))
                    {
                        ids.subsystems.insert((v, d, sv, sd), name);
                    }
                }
                _ => {}
            }
        }
        ids
    }
}

/// One PCI function.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PciDevice {
    /// `dddd:bb:dd.f`.
    pub address: String,
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Subsystem vendor id.
    pub subsystem_vendor_id: Option<u16>,
    /// Subsystem device id.
    pub subsystem_device_id: Option<u16>,
    /// 24-bit class code (class, subclass, prog-if).
    pub class: u32,
    /// Revision.
    pub revision: Option<u8>,
    /// Bound driver.
    pub driver: Option<String>,
    /// NUMA node (`None` when the kernel says -1).
    pub numa_node: Option<i32>,
    /// Current link speed, e.g. `16.0 GT/s PCIe`.
    pub link_speed: Option<String>,
    /// Current link width.
    pub link_width: Option<String>,
    /// Maximum link speed.
    pub max_link_speed: Option<String>,
    /// Physical slot name from `/sys/bus/pci/slots`.
    pub slot: Option<String>,
    /// Firmware label (`label` attribute, from ACPI _DSM or SMBIOS type 41).
    pub label: Option<String>,
    /// Video BIOS version for GPUs (amdgpu `vbios_version`, NVIDIA's /proc file).
    pub vbios: Option<String>,
    /// Vendor name from pci.ids.
    pub vendor_name: Option<String>,
    /// Device name from pci.ids.
    pub device_name: Option<String>,
    /// Subsystem name from pci.ids.
    pub subsystem_name: Option<String>,
    /// Subsystem vendor name from pci.ids.
    pub subsystem_vendor_name: Option<String>,
    /// Class (subclass) name from pci.ids.
    pub class_name: Option<String>,
}

/// Reads all PCI functions under `root`, naming them from pci.ids when one is found; problems
/// go into `errors`.
pub fn read(root: &Path, errors: &mut Vec<String>) -> Vec<PciDevice> {
    let base = "sys/bus/pci/devices";
    let names = match fsutil::list_dir(root, base) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("PCI devices: {e}"));
            return Vec::new();
        }
    };
    let slots = slot_map(root);
    let mut devs: Vec<PciDevice> = names
        .iter()
        .filter(|n| fsutil::is_pci_address(n))
        .filter_map(|addr| {
            let dir = format!("{base}/{addr}");
            let num =
                |f: &str| fsutil::attr(root, format!("{dir}/{f}")).and_then(|s| parse_num(&s));
            let vendor_id = u16::try_from(num("vendor")?).ok()?;
            let device_id = u16::try_from(num("device")?).ok()?;
            let a = |f: &str| fsutil::attr(root, format!("{dir}/{f}"));
            let vbios = a("vbios_version").or_else(|| nvidia_vbios(root, addr));
            Some(PciDevice {
                address: addr.clone(),
                vendor_id,
                device_id,
                subsystem_vendor_id: num("subsystem_vendor").and_then(|v| u16::try_from(v).ok()),
                subsystem_device_id: num("subsystem_device").and_then(|v| u16::try_from(v).ok()),
                class: num("class")
                    .and_then(|v| u32::try_from(v).ok())
                    .unwrap_or(0),
                revision: num("revision").and_then(|v| u8::try_from(v).ok()),
                driver: fsutil::link_name(root, format!("{dir}/driver")),
                numa_node: a("numa_node")
                    .and_then(|s| s.parse::<i32>().ok())
                    .filter(|n| *n >= 0),
                link_speed: a("current_link_speed"),
                link_width: a("current_link_width"),
                max_link_speed: a("max_link_speed"),
                slot: slots.get(&addr[..addr.len().saturating_sub(2)]).cloned(),
                label: a("label"),
                vbios,
                ..PciDevice::default()
            })
        })
        .collect();
    if devs.is_empty() {
        return devs;
    }
    let vendors: BTreeSet<u16> = devs
        .iter()
        .flat_map(|d| [Some(d.vendor_id), d.subsystem_vendor_id])
        .flatten()
        .collect();
    let ids = PCI_IDS_PATHS
        .iter()
        .find_map(|p| fsutil::read_bytes(root, p).ok().flatten())
        .map(|b| PciIds::parse(&String::from_utf8_lossy(&b), Some(&vendors)));
    match ids {
        Some(ids) => devs.iter_mut().for_each(|d| name(d, &ids)),
        None => errors.push(format!(
            "PCI names: no pci.ids at /{} (install pciutils or hwdata); numeric ids only",
            PCI_IDS_PATHS.join(" or /")
        )),
    }
    devs
}

fn name(d: &mut PciDevice, ids: &PciIds) {
    d.vendor_name = ids.vendors.get(&d.vendor_id).cloned();
    d.device_name = ids.devices.get(&(d.vendor_id, d.device_id)).cloned();
    if let (Some(sv), Some(sd)) = (d.subsystem_vendor_id, d.subsystem_device_id) {
        d.subsystem_name = ids
            .subsystems
            .get(&(d.vendor_id, d.device_id, sv, sd))
            .cloned();
        d.subsystem_vendor_name = ids.vendors.get(&sv).cloned();
    }
    let (c, sc) = ((d.class >> 16) as u8, (d.class >> 8) as u8);
    d.class_name = ids
        .subclasses
        .get(&(c, sc))
        .or_else(|| ids.classes.get(&c))
        .cloned();
}

/// `/sys/bus/pci/slots/<name>/address` (`dddd:bb:dd`) to slot name.
fn slot_map(root: &Path) -> HashMap<String, String> {
    let base = "sys/bus/pci/slots";
    fsutil::list_dir(root, base)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|slot| {
            let addr = fsutil::attr(root, format!("{base}/{slot}/address"))?;
            Some((addr, slot))
        })
        .collect()
}

fn nvidia_vbios(root: &Path, addr: &str) -> Option<String> {
    let text = fsutil::attr(root, format!("proc/driver/nvidia/gpus/{addr}/information"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Video BIOS:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty() && !v.starts_with("??"))
}

/// A PCI function as a component `pci:<address>`: GPU for display controllers (class 0x03),
/// storage controller for class 0x01, else PCI device.
pub fn to_component(d: &PciDevice) -> Component {
    let class = (d.class >> 16) as u8;
    let kind = match class {
        0x03 => ComponentKind::Gpu,
        0x01 => ComponentKind::StorageController,
        _ => ComponentKind::PciDevice,
    };
    let name = d
        .device_name
        .clone()
        .or_else(|| d.class_name.clone())
        .unwrap_or_else(|| format!("PCI device {:04x}:{:04x}", d.vendor_id, d.device_id));
    let mut c = component(format!("pci:{}", d.address), kind, name);
    c.manufacturer = d.vendor_name.clone();
    c.model = d.subsystem_name.clone().or_else(|| d.device_name.clone());
    c.firmware_version = d.vbios.clone();
    c.location = d
        .slot
        .clone()
        .or_else(|| d.label.clone())
        .or_else(|| Some(d.address.clone()));
    set_prop(&mut c, "address", Some(&d.address));
    set_prop(&mut c, "vendor_id", Some(format!("0x{:04x}", d.vendor_id)));
    set_prop(&mut c, "device_id", Some(format!("0x{:04x}", d.device_id)));
    set_prop(
        &mut c,
        "subsystem_vendor_id",
        d.subsystem_vendor_id.map(|v| format!("0x{v:04x}")),
    );
    set_prop(
        &mut c,
        "subsystem_device_id",
        d.subsystem_device_id.map(|v| format!("0x{v:04x}")),
    );
    set_prop(&mut c, "subsystem_vendor", d.subsystem_vendor_name.clone());
    set_prop(&mut c, "device", d.device_name.clone());
    set_prop(&mut c, "class", Some(format!("0x{:06x}", d.class)));
    set_prop(&mut c, "class_name", d.class_name.clone());
    set_prop(&mut c, "revision", d.revision.map(|r| format!("0x{r:02x}")));
    set_prop(&mut c, "driver", d.driver.clone());
    set_prop(&mut c, "numa_node", d.numa_node);
    set_prop(&mut c, "link_speed", d.link_speed.clone());
    set_prop(&mut c, "link_width", d.link_width.clone());
    set_prop(&mut c, "max_link_speed", d.max_link_speed.clone());
    set_prop(&mut c, "label", d.label.clone());
    c
}
