//! Physical NICs from `/sys/class/net` (interfaces without a `device` link, like `lo`, bridges,
//! bonds and VLANs, are virtual and skipped), with firmware from the ethtool GDRVINFO ioctl.

use std::path::Path;

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil;
use crate::pci::PciDevice;
use crate::{component, set_prop, sys};

/// One physical network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nic {
    /// Interface name (`eth0`, `enp59s0f0`).
    pub ifname: String,
    /// PCI address of the function behind it, if it is on PCI.
    pub pci_address: Option<String>,
    /// `dev_port` (ports sharing one PCI function).
    pub dev_port: Option<u32>,
    /// Kernel driver.
    pub driver: Option<String>,
    /// Permanent or current MAC address.
    pub mac: Option<String>,
    /// Link speed, Mb/s (`None` when down or unknown).
    pub speed_mbps: Option<u64>,
    /// `operstate`.
    pub operstate: Option<String>,
    /// Duplex.
    pub duplex: Option<String>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Whether it is an SR-IOV virtual function.
    pub virtual_function: bool,
    /// Firmware version (ethtool).
    pub firmware: Option<String>,
    /// Expansion ROM version (ethtool).
    pub erom_version: Option<String>,
    /// Driver version (ethtool).
    pub driver_version: Option<String>,
}

/// Reads the physical NICs under `root`; ethtool is asked only when `live`.
pub fn read_nics(root: &Path, live: bool, errors: &mut Vec<String>) -> Vec<Nic> {
    let base = "sys/class/net";
    let names = match fsutil::list_dir(root, base) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("NICs: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for ifname in names {
        let dir = format!("{base}/{ifname}");
        if ifname == "lo" || !fsutil::at(root, format!("{dir}/device")).exists() {
            continue;
        }
        let a = |f: &str| fsutil::attr(root, format!("{dir}/{f}"));
        let dev_path = fsutil::device_path(root, format!("{dir}/device"));
        let mut nic = Nic {
            pci_address: dev_path.as_deref().and_then(fsutil::pci_address_in),
            dev_port: a("dev_port").and_then(|s| s.parse().ok()),
            driver: fsutil::link_name(root, format!("{dir}/device/driver")),
            mac: a("address").filter(|m| m != "00:00:00:00:00:00"),
            // Reading `speed` fails with EINVAL while the link is down; -1 means unknown.
            speed_mbps: a("speed")
                .and_then(|s| s.parse::<i64>().ok())
                .and_then(|v| u64::try_from(v).ok()),
            operstate: a("operstate"),
            duplex: a("duplex").filter(|d| d != "unknown"),
            mtu: a("mtu").and_then(|s| s.parse().ok()),
            virtual_function: fsutil::at(root, format!("{dir}/device/physfn")).exists(),
            ifname: ifname.clone(),
            ..Nic::default()
        };
        if live {
            match sys::ethtool_drvinfo(&ifname) {
                Ok(d) => {
                    let some = |s: String| Some(s).filter(|s| !s.is_empty() && s != "N/A");
                    nic.firmware = some(d.fw_version);
                    nic.erom_version = some(d.erom_version);
                    nic.driver_version = some(d.version);
                    if nic.driver.is_none() {
                        nic.driver = some(d.driver);
                    }
                }
                Err(e) => errors.push(format!("NIC {ifname} firmware: ethtool GDRVINFO: {e}")),
            }
        }
        out.push(nic);
    }
    out
}

/// Reads the NICs as components; `nic:<pci address>` (plus `:p<dev_port>` for further ports on
/// one function) so renaming an interface does not change its id, `nic:<ifname>` off PCI.
pub fn read(
    root: &Path,
    live: bool,
    pci: &[PciDevice],
    errors: &mut Vec<String>,
) -> Vec<Component> {
    read_nics(root, live, errors)
        .iter()
        .map(|n| to_component(n, pci))
        .collect()
}

/// One NIC as a component, named from its PCI function when known.
pub fn to_component(n: &Nic, pci: &[PciDevice]) -> Component {
    let id = match (&n.pci_address, n.dev_port) {
        (Some(a), Some(p)) if p > 0 => format!("nic:{a}:p{p}"),
        (Some(a), _) => format!("nic:{a}"),
        (None, _) => format!("nic:{}", n.ifname),
    };
    let dev = n
        .pci_address
        .as_ref()
        .and_then(|a| pci.iter().find(|d| &d.address == a));
    let mut c = component(id, ComponentKind::Nic, n.ifname.clone());
    c.manufacturer = dev.and_then(|d| d.vendor_name.clone());
    c.model = dev.and_then(|d| d.device_name.clone());
    c.firmware_version = n.firmware.clone();
    c.location = n.pci_address.clone();
    set_prop(&mut c, "interface", Some(&n.ifname));
    set_prop(&mut c, "mac", n.mac.clone());
    set_prop(&mut c, "driver", n.driver.clone());
    set_prop(&mut c, "driver_version", n.driver_version.clone());
    set_prop(&mut c, "erom_version", n.erom_version.clone());
    set_prop(&mut c, "speed_mbps", n.speed_mbps);
    set_prop(&mut c, "operstate", n.operstate.clone());
    set_prop(&mut c, "duplex", n.duplex.clone());
    set_prop(&mut c, "mtu", n.mtu);
    set_prop(&mut c, "pci_address", n.pci_address.clone());
    if n.virtual_function {
        set_prop(&mut c, "virtual_function", Some("true"));
    }
    c
}
