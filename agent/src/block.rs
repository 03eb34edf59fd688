//! Disks from `/sys/block` (loop, ram, zram, dm, md, nbd and hidden NVMe multipath paths are
//! skipped, as is anything without a `device` link): model, serial, firmware revision, capacity;
//! NVMe health from the SMART log page through the NVMe admin ioctl (root only; the sysfs hwmon
//! temperature otherwise); SATA/SAS health from `smartctl -j` when allowed and installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil;
use crate::{component, set_prop, sys};

/// Block device name prefixes that are never physical disks.
const VIRTUAL_PREFIXES: &[&str] = &["loop", "ram", "zram", "dm-", "md", "nbd", "fd"];

/// One disk.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disk {
    /// Block device name (`sda`, `nvme0n1`, `vda`).
    pub name: String,
    /// NVMe controller name (`nvme0`) for NVMe namespaces.
    pub nvme_controller: Option<String>,
    /// NVMe namespace id.
    pub nsid: Option<u32>,
    /// Vendor (SCSI `vendor`, `ATA` dropped).
    pub vendor: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial.
    pub serial: Option<String>,
    /// Firmware revision.
    pub firmware: Option<String>,
    /// World-wide id.
    pub wwid: Option<String>,
    /// Capacity in bytes.
    pub size_bytes: Option<u64>,
    /// Rotational (spinning) medium.
    pub rotational: Option<bool>,
    /// Transport guessed from the name or path (`nvme`, `sata/sas`, `virtio`, `usb`, ...).
    pub transport: Option<String>,
    /// PCI address of the controller it hangs off.
    pub pci_address: Option<String>,
    /// Health facts (`health`, `temperature_c`, `percentage_used`, ...).
    pub health: Vec<(String, String)>,
}

/// True for block devices that are never physical disks (loop, dm, md, nbd, NVMe path nodes).
pub fn is_virtual(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p)) || is_nvme_path_device(name)
}

/// `nvme0c1n1`: a hidden per-controller path of a multipath namespace.
fn is_nvme_path_device(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("nvme") else {
        return false;
    };
    let digits = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    digits.starts_with('c')
}

/// Parses the serial out of a SCSI VPD page 0x80 (unit serial number) dump.
pub fn parse_vpd_pg80(b: &[u8]) -> Option<String> {
    if b.get(1) != Some(&0x80) {
        return None;
    }
    let len = usize::from(*b.get(3)?);
    let s = b.get(4..4 + len).or_else(|| b.get(4..))?;
    Some(fsutil::clean_text(s)).filter(|s| !s.is_empty())
}

/// Reads the disks under `root`; ioctls only when `live`, smartctl only when `tools`.
pub fn read_disks(root: &Path, live: bool, tools: bool, errors: &mut Vec<String>) -> Vec<Disk> {
    let base = "sys/block";
    let names = match fsutil::list_dir(root, base) {
        Ok(n) => n,
        Err(e) => {
            errors.push(format!("disks: {e}"));
            return Vec::new();
        }
    };
    let smartctl = if tools { find_smartctl() } else { None };
    let mut out = Vec::new();
    for name in names {
        let dir = format!("{base}/{name}");
        if is_virtual(&name) || !fsutil::at(root, format!("{dir}/device")).exists() {
            continue;
        }
        if fsutil::attr(root, format!("{dir}/hidden")).as_deref() == Some("1") {
            continue;
        }
        let a = |f: &str| fsutil::attr(root, format!("{dir}/{f}"));
        let dev_path = fsutil::device_path(root, format!("{dir}/device"));
        let is_nvme = name.starts_with("nvme");
        let nvme_controller = if is_nvme {
            nvme_controller(root, &dir)
        } else {
            None
        };
        let serial = a("device/serial").or_else(|| a("serial")).or_else(|| {
            fsutil::read_bytes(root, format!("{dir}/device/vpd_pg80"))
                .ok()
                .flatten()
                .and_then(|b| parse_vpd_pg80(&b))
        });
        let transport = if is_nvme {
            Some("nvme")
        } else if name.starts_with("vd") {
            Some("virtio")
        } else if name.starts_with("sd") {
            let p = dev_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            Some(if p.contains("/usb") {
                "usb"
            } else if p.contains("/ata") {
                "sata"
            } else {
                "scsi"
            })
        } else if name.starts_with("mmcblk") {
            Some("mmc")
        } else {
            None
        };
        let mut d = Disk {
            nvme_controller,
            nsid: a("nsid").and_then(|s| s.parse().ok()),
            // virtio shows its PCI vendor id (0x1af4) here: not a maker
            vendor: a("device/vendor").filter(|v| v != "ATA" && !v.starts_with("0x")),
            model: a("device/model"),
            serial,
            firmware: a("device/firmware_rev").or_else(|| a("device/rev")),
            wwid: a("wwid").or_else(|| a("device/wwid")),
            size_bytes: a("size")
                .and_then(|s| s.parse::<u64>().ok())
                .map(|s| s.saturating_mul(512)),
            rotational: a("queue/rotational").map(|r| r == "1"),
            transport: transport.map(str::to_string),
            pci_address: dev_path.as_deref().and_then(fsutil::pci_address_in),
            name: name.clone(),
            health: Vec::new(),
        };
        if let Some(ctrl) = d.nvme_controller.clone() {
            nvme_health(root, live, &ctrl, &mut d, errors);
        } else if let Some(tool) = &smartctl {
            smart_health(tool, &name, &mut d, errors);
        }
        out.push(d);
    }
    out
}

/// The controller (`nvme0`) behind an NVMe namespace directory.
fn nvme_controller(root: &Path, dir: &str) -> Option<String> {
    let link = fsutil::link_name(root, format!("{dir}/device"))?;
    if link.starts_with("nvme") && !link.starts_with("nvme-subsys") {
        return Some(link);
    }
    // Native multipath: the namespace hangs off the subsystem, which lists its controllers.
    fsutil::list_dir(root, format!("{dir}/device"))
        .ok()?
        .into_iter()
        .find(|n| n.starts_with("nvme") && n[4..].chars().all(|c| c.is_ascii_digit()))
}

/// The fields of an NVMe SMART / Health Information log page (NVMe base spec, log 02h) that the
/// inventory and the telemetry both use; `None` where a short page does not reach the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NvmeSmartLog {
    /// Critical warning bit field (byte 0): spare low, temperature, reliability, read-only, ...
    pub critical_warning: u8,
    /// Composite temperature in kelvin (`None` when the page is short or reports 0).
    pub temperature_k: Option<u16>,
    /// Available spare, percent.
    pub available_spare_pct: Option<u8>,
    /// Available spare threshold, percent.
    pub available_spare_threshold_pct: Option<u8>,
    /// Vendor estimate of life used, percent (may exceed 100).
    pub percentage_used: Option<u8>,
    /// Data units read (thousands of 512-byte units).
    pub data_units_read: Option<u128>,
    /// Data units written.
    pub data_units_written: Option<u128>,
    /// Power cycles.
    pub power_cycles: Option<u128>,
    /// Power-on hours.
    pub power_on_hours: Option<u128>,
    /// Unsafe shutdowns.
    pub unsafe_shutdowns: Option<u128>,
    /// Unrecovered data integrity errors.
    pub media_errors: Option<u128>,
    /// Error log entries over the controller's life.
    pub error_log_entries: Option<u128>,
}

impl NvmeSmartLog {
    /// Decodes a log page; `None` for an empty buffer, any other length is read as far as it goes.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let &critical_warning = b.first()?;
        let u16le = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
        let u128le = |o: usize| {
            b.get(o..o + 16)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
                .map(u128::from_le_bytes)
        };
        Some(Self {
            critical_warning,
            temperature_k: u16le(1).filter(|k| *k > 0),
            available_spare_pct: b.get(3).copied(),
            available_spare_threshold_pct: b.get(4).copied(),
            percentage_used: b.get(5).copied(),
            data_units_read: u128le(32),
            data_units_written: u128le(48),
            power_cycles: u128le(112),
            power_on_hours: u128le(128),
            unsafe_shutdowns: u128le(144),
            media_errors: u128le(160),
            error_log_entries: u128le(176),
        })
    }

    /// Composite temperature in degrees Celsius.
    pub fn temperature_c(&self) -> Option<i32> {
        self.temperature_k.map(|k| i32::from(k) - 273)
    }

    /// The page as the inventory's health facts (`health`, `temperature_c`, ...).
    pub fn health_facts(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "health".to_string(),
                if self.critical_warning == 0 {
                    "OK"
                } else {
                    "WARNING"
                }
                .to_string(),
            ),
            (
                "critical_warning".to_string(),
                format!("{:#04x}", self.critical_warning),
            ),
        ];
        if let Some(t) = self.temperature_c() {
            v.push(("temperature_c".to_string(), t.to_string()));
        }
        for (key, x) in [
            ("available_spare_pct", self.available_spare_pct),
            (
                "available_spare_threshold_pct",
                self.available_spare_threshold_pct,
            ),
            ("percentage_used", self.percentage_used),
        ] {
            if let Some(x) = x {
                v.push((key.to_string(), x.to_string()));
            }
        }
        for (key, x) in [
            ("data_units_read", self.data_units_read),
            ("data_units_written", self.data_units_written),
            ("power_cycles", self.power_cycles),
            ("power_on_hours", self.power_on_hours),
            ("unsafe_shutdowns", self.unsafe_shutdowns),
            ("media_errors", self.media_errors),
            ("error_log_entries", self.error_log_entries),
        ] {
            if let Some(x) = x {
                v.push((key.to_string(), x.to_string()));
            }
        }
        v
    }
}

/// Health facts from an NVMe SMART / Health Information log page (NVMe base spec, log 02h).
pub fn parse_nvme_smart_log(b: &[u8]) -> Vec<(String, String)> {
    NvmeSmartLog::parse(b)
        .map(|l| l.health_facts())
        .unwrap_or_default()
}

/// Reads the SMART log of NVMe controller `ctrl` (`nvme0`) through `<root>/dev/<ctrl>` with the
/// admin ioctl; needs root (CAP_SYS_ADMIN) and a real device node.
pub fn read_nvme_smart_log(root: &Path, ctrl: &str) -> Result<NvmeSmartLog, fsutil::ReadError> {
    let rel = format!("dev/{ctrl}");
    let page = std::fs::File::open(fsutil::at(root, &rel))
        .and_then(|f| sys::nvme_smart_log(&f))
        .map_err(|e| fsutil::ReadError::new(&rel, e))?;
    NvmeSmartLog::parse(&page)
        .ok_or_else(|| fsutil::ReadError::new(&rel, std::io::Error::other("empty SMART log page")))
}

/// One NVMe controller as `/sys/class/nvme` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NvmeController {
    /// Kernel name (`nvme0`); not stable across boots.
    pub name: String,
    /// Serial number, the inventory's identity for the disk.
    pub serial: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// PCI address of the controller (`None` for fabrics controllers).
    pub pci_address: Option<String>,
}

impl NvmeController {
    /// The inventory component of the controller's (first) namespace: `disk:<serial>`.
    pub fn component_id(&self) -> Option<String> {
        self.serial.as_ref().map(|s| format!("disk:{s}"))
    }

    /// A stable key for sensor ids: the serial, else the PCI address, else the kernel name.
    pub fn stable_key(&self) -> String {
        self.serial
            .clone()
            .or_else(|| self.pci_address.clone())
            .unwrap_or_else(|| self.name.clone())
    }
}

/// Lists the NVMe controllers under `<root>/sys/class/nvme`.
pub fn nvme_controllers(root: &Path) -> Result<Vec<NvmeController>, fsutil::ReadError> {
    let base = "sys/class/nvme";
    Ok(fsutil::list_dir(root, base)?
        .into_iter()
        .filter(|n| n.starts_with("nvme") && n[4..].chars().all(|c| c.is_ascii_digit()))
        .map(|name| {
            let dir = format!("{base}/{name}");
            let dev = fsutil::device_path(root, &dir);
            NvmeController {
                serial: fsutil::attr(root, format!("{dir}/serial")),
                model: fsutil::attr(root, format!("{dir}/model")),
                pci_address: dev.as_deref().and_then(fsutil::pci_address_in),
                name,
            }
        })
        .collect())
}

fn nvme_health(root: &Path, live: bool, ctrl: &str, d: &mut Disk, errors: &mut Vec<String>) {
    if live {
        match read_nvme_smart_log(root, ctrl) {
            Ok(log) => {
                d.health = log.health_facts();
                return;
            }
            Err(e) => errors.push(format!("NVMe health {ctrl}: {e}")),
        }
    }
    // Without the log page: the controller's hwmon temperature, readable by anyone.
    let hw = format!("sys/class/nvme/{ctrl}");
    let temp = fsutil::list_dir(root, &hw)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("hwmon"))
        .find_map(|h| fsutil::attr(root, format!("{hw}/{h}/temp1_input")))
        .and_then(|t| t.parse::<i64>().ok());
    if let Some(t) = temp {
        d.health
            .push(("temperature_c".to_string(), (t / 1000).to_string()));
    }
    if let Some(s) = fsutil::attr(root, format!("{hw}/state")) {
        d.health.push(("controller_state".to_string(), s));
    }
}

fn find_smartctl() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("smartctl"))
        .find(|p| p.is_file())
}

/// Health facts from `smartctl -j` output (smartmontools 7+ JSON); tolerant of any input.
pub fn parse_smartctl_json(text: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let Ok(j) = serde_json::from_str::<serde_json::Value>(text) else {
        return v;
    };
    if let Some(p) = j.pointer("/smart_status/passed").and_then(|x| x.as_bool()) {
        v.push((
            "health".to_string(),
            if p { "OK" } else { "CRITICAL" }.to_string(),
        ));
    }
    for (key, ptr) in [
        ("temperature_c", "/temperature/current"),
        ("power_on_hours", "/power_on_time/hours"),
        ("power_cycles", "/power_cycle_count"),
        ("smart_firmware_version", "/firmware_version"),
        ("rotation_rate_rpm", "/rotation_rate"),
    ] {
        if let Some(x) = j.pointer(ptr) {
            let s = match x {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            v.push((key.to_string(), s));
        }
    }
    if let Some(table) = j
        .pointer("/ata_smart_attributes/table")
        .and_then(|t| t.as_array())
    {
        for a in table {
            let id = a.get("id").and_then(|x| x.as_u64());
            let raw = a.pointer("/raw/value").and_then(|x| x.as_u64());
            let key = match id {
                Some(5) => "reallocated_sectors",
                Some(197) => "pending_sectors",
                Some(198) => "offline_uncorrectable",
                _ => continue,
            };
            if let Some(r) = raw {
                v.push((key.to_string(), r.to_string()));
            }
        }
    }
    if let Some(n) = j
        .pointer("/scsi_grown_defect_list")
        .and_then(|x| x.as_u64())
    {
        v.push(("grown_defects".to_string(), n.to_string()));
    }
    v
}

fn smart_health(tool: &Path, name: &str, d: &mut Disk, errors: &mut Vec<String>) {
    let dev = format!("/dev/{name}");
    match run_with_timeout(
        Command::new(tool).args(["-j", "-H", "-A", "-i", &dev]),
        Duration::from_secs(3),
    ) {
        // smartctl's exit status is a bit mask of findings; the JSON is what counts.
        Ok(out) if !out.is_empty() => d.health = parse_smartctl_json(&out),
        Ok(_) => errors.push(format!("SMART {name}: smartctl printed nothing")),
        Err(e) => errors.push(format!("SMART {name}: smartctl: {e}")),
    }
}

fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> std::io::Result<String> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "timed out",
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    reader
        .join()
        .map_err(|_| std::io::Error::other("reader thread failed"))
}

/// The inventory component id of block device `name` (`sda`, `nvme0n1`), as [`to_component`]
/// names it, from sysfs alone (no ioctls); `None` for virtual or unknown devices.
pub fn disk_component_id(root: &Path, name: &str) -> Option<String> {
    if name.is_empty() || name.contains('/') || is_virtual(name) {
        return None;
    }
    let dir = format!("sys/block/{name}");
    if !fsutil::at(root, format!("{dir}/device")).exists() {
        return None;
    }
    let a = |f: &str| fsutil::attr(root, format!("{dir}/{f}"));
    let serial = a("device/serial").or_else(|| a("serial")).or_else(|| {
        fsutil::read_bytes(root, format!("{dir}/device/vpd_pg80"))
            .ok()
            .flatten()
            .and_then(|b| parse_vpd_pg80(&b))
    });
    let d = Disk {
        name: name.to_string(),
        nsid: a("nsid").and_then(|s| s.parse().ok()),
        serial,
        ..Disk::default()
    };
    Some(to_component(&d).component_id)
}

/// Reads the disks as components: `disk:<serial>` (plus `/ns<nsid>` for further namespaces),
/// `disk:<name>` when there is no serial; kind NVME for NVMe namespaces.
pub fn read(root: &Path, live: bool, tools: bool, errors: &mut Vec<String>) -> Vec<Component> {
    read_disks(root, live, tools, errors)
        .iter()
        .map(to_component)
        .collect()
}

/// One disk as a component.
pub fn to_component(d: &Disk) -> Component {
    let mut id = format!("disk:{}", d.serial.as_deref().unwrap_or(&d.name));
    if d.serial.is_some()
        && let Some(ns) = d.nsid.filter(|n| *n > 1)
    {
        id = format!("{id}/ns{ns}");
    }
    let kind = if d.nvme_controller.is_some() || d.name.starts_with("nvme") {
        ComponentKind::Nvme
    } else {
        ComponentKind::Disk
    };
    let mut c = component(id, kind, d.name.clone());
    c.manufacturer = d.vendor.clone();
    c.model = d.model.clone();
    c.serial = d.serial.clone();
    c.firmware_version = d.firmware.clone();
    c.location = d.pci_address.clone();
    set_prop(&mut c, "device", Some(format!("/dev/{}", d.name)));
    set_prop(&mut c, "size_bytes", d.size_bytes);
    set_prop(&mut c, "rotational", d.rotational);
    set_prop(&mut c, "transport", d.transport.clone());
    set_prop(&mut c, "wwid", d.wwid.clone());
    set_prop(&mut c, "nvme_controller", d.nvme_controller.clone());
    set_prop(&mut c, "nsid", d.nsid);
    set_prop(&mut c, "pci_address", d.pci_address.clone());
    for (k, v) in &d.health {
        c.properties.insert(k.clone(), v.clone());
    }
    c
}
