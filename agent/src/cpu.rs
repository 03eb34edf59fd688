//! CPU packages: model and vendor from `/proc/cpuinfo`, cores and threads from
//! `/sys/devices/system/cpu/cpu*/topology` (arch-neutral), microcode from
//! `/sys/devices/system/cpu/cpu*/microcode/version` or cpuinfo, socket names from SMBIOS type 4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use automata_schemas::types::{Component, ComponentKind};

use crate::fsutil::{self, ReadError};
use crate::smbios::Processor;
use crate::{component, set_prop};

/// One logical CPU as `/proc/cpuinfo` describes it (fields absent on some architectures).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuInfoEntry {
    /// `processor`: the logical CPU number.
    pub processor: Option<u32>,
    /// `vendor_id` (x86) or `CPU implementer` (arm).
    pub vendor: Option<String>,
    /// `model name` (or `Processor`/`cpu model` on other arches).
    pub model_name: Option<String>,
    /// `cpu family`.
    pub family: Option<String>,
    /// `model`.
    pub model: Option<String>,
    /// `stepping`.
    pub stepping: Option<String>,
    /// `microcode`.
    pub microcode: Option<String>,
    /// `physical id`.
    pub physical_id: Option<u32>,
    /// `core id`.
    pub core_id: Option<u32>,
}

/// Parses `/proc/cpuinfo` text into one entry per logical CPU; tolerant of any input.
pub fn parse_cpuinfo(text: &str) -> Vec<CpuInfoEntry> {
    let mut out = Vec::new();
    let mut cur = CpuInfoEntry::default();
    let mut any = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() && any {
                out.push(std::mem::take(&mut cur));
                any = false;
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let s = || Some(v.to_string()).filter(|s| !s.is_empty());
        match k {
            "processor" => {
                // On arm64 "processor" starts each block too; on old arm it is the model name.
                if let Ok(n) = v.parse() {
                    if any && cur.processor.is_some() {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur.processor = Some(n);
                } else {
                    cur.model_name = s();
                }
            }
            "vendor_id" | "CPU implementer" | "vendor" => cur.vendor = s(),
            "model name" | "cpu model" | "Processor" | "cpu" => {
                cur.model_name = cur.model_name.take().or_else(s)
            }
            "cpu family" => cur.family = s(),
            "model" => cur.model = s(),
            "stepping" => cur.stepping = s(),
            "microcode" => cur.microcode = s(),
            "physical id" => cur.physical_id = v.parse().ok(),
            "core id" => cur.core_id = v.parse().ok(),
            _ => continue,
        }
        any = true;
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parses a kernel CPU list like `0-3,8,10-11`; invalid pieces are skipped.
pub fn parse_cpu_list(s: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in s.trim().split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>())
                && a <= b
                && b - a < 65536
            {
                set.extend(a..=b);
            }
        } else if let Ok(n) = part.parse() {
            set.insert(n);
        }
    }
    set
}

/// One CPU package (socket).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    /// `physical_package_id`.
    pub id: u32,
    /// Vendor (`GenuineIntel`, `AuthenticAMD`, ...).
    pub vendor: Option<String>,
    /// Model name.
    pub model_name: Option<String>,
    /// Family/model/stepping as `f/m/s`.
    pub signature: Option<String>,
    /// Microcode revision.
    pub microcode: Option<String>,
    /// Physical cores online.
    pub cores: u32,
    /// Logical CPUs (threads) online.
    pub threads: u32,
}

/// Reads the CPU packages under `root`.
pub fn read(root: &Path) -> Result<Vec<Package>, ReadError> {
    let info = fsutil::read_trimmed(root, "proc/cpuinfo")?
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_default();
    let by_cpu: BTreeMap<u32, &CpuInfoEntry> = info
        .iter()
        .filter_map(|e| Some((e.processor?, e)))
        .collect();

    // package id -> (core sets, threads, first cpu)
    let mut pkgs: BTreeMap<u32, (BTreeSet<String>, u32, u32)> = BTreeMap::new();
    let cpu_dir = "sys/devices/system/cpu";
    let mut cpus: Vec<u32> = fsutil::list_dir(root, cpu_dir)?
        .iter()
        .filter_map(|n| n.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    let online = fsutil::attr(root, format!("{cpu_dir}/online")).map(|s| parse_cpu_list(&s));
    for n in &cpus {
        if let Some(on) = &online
            && !on.contains(n)
        {
            continue;
        }
        let topo = format!("{cpu_dir}/cpu{n}/topology");
        let pkg = fsutil::attr(root, format!("{topo}/physical_package_id"))
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|v| u32::try_from(v).ok())
            .or_else(|| by_cpu.get(n).and_then(|e| e.physical_id))
            .unwrap_or(0);
        let core = fsutil::attr(root, format!("{topo}/core_cpus_list"))
            .or_else(|| fsutil::attr(root, format!("{topo}/thread_siblings_list")))
            .or_else(|| {
                by_cpu
                    .get(n)
                    .and_then(|e| e.core_id)
                    .map(|c| format!("core{c}"))
            })
            .unwrap_or_else(|| format!("cpu{n}"));
        let e = pkgs.entry(pkg).or_insert((BTreeSet::new(), 0, *n));
        e.0.insert(core);
        e.1 += 1;
    }
    // No sysfs (odd containers): fall back to cpuinfo alone.
    if pkgs.is_empty() {
        for e in &info {
            let pkg = e.physical_id.unwrap_or(0);
            let core = e
                .core_id
                .map(|c| format!("core{c}"))
                .unwrap_or_else(|| format!("cpu{}", e.processor.unwrap_or(0)));
            let entry = pkgs
                .entry(pkg)
                .or_insert((BTreeSet::new(), 0, e.processor.unwrap_or(0)));
            entry.0.insert(core);
            entry.1 += 1;
        }
    }
    Ok(pkgs
        .into_iter()
        .map(|(id, (cores, threads, first))| {
            let e = by_cpu
                .get(&first)
                .copied()
                .or_else(|| info.iter().find(|e| e.physical_id == Some(id)))
                .or_else(|| info.first());
            let microcode = fsutil::attr(root, format!("{cpu_dir}/cpu{first}/microcode/version"))
                .or_else(|| e.and_then(|e| e.microcode.clone()));
            let signature = e.and_then(|e| match (&e.family, &e.model, &e.stepping) {
                (Some(f), Some(m), Some(s)) => Some(format!("{f}/{m}/{s}")),
                _ => None,
            });
            Package {
                id,
                vendor: e.and_then(|e| e.vendor.clone()),
                model_name: e.and_then(|e| e.model_name.clone()),
                signature,
                microcode,
                cores: u32::try_from(cores.len()).unwrap_or(u32::MAX),
                threads,
            }
        })
        .collect())
}

fn vendor_name(v: &str) -> String {
    match v {
        "GenuineIntel" => "Intel".to_string(),
        "AuthenticAMD" => "AMD".to_string(),
        "HygonGenuine" => "Hygon".to_string(),
        "CentaurHauls" => "Centaur".to_string(),
        "0x41" => "ARM".to_string(),
        "0x61" => "Apple".to_string(),
        "0xc0" => "Ampere".to_string(),
        other => other.to_string(),
    }
}

/// CPU packages as components `cpu:<package id>`, named after the matching populated SMBIOS
/// type 4 socket (the n-th populated socket for the n-th package, the kernel's order).
pub fn components(pkgs: &[Package], sockets: &[Processor]) -> Vec<Component> {
    let populated: Vec<&Processor> = sockets.iter().filter(|p| p.populated).collect();
    pkgs.iter()
        .enumerate()
        .map(|(i, p)| {
            let sock = populated.get(i).copied();
            let name = sock
                .and_then(|s| s.socket.clone())
                .unwrap_or_else(|| format!("CPU {}", p.id));
            let mut c = component(format!("cpu:{}", p.id), ComponentKind::Cpu, name);
            c.manufacturer = p
                .vendor
                .as_deref()
                .map(vendor_name)
                .or_else(|| sock.and_then(|s| s.manufacturer.clone()));
            c.model = p
                .model_name
                .clone()
                .or_else(|| sock.and_then(|s| s.version.clone()));
            c.firmware_version = p.microcode.clone();
            c.location = sock.and_then(|s| s.socket.clone());
            c.serial = sock.and_then(|s| s.serial.clone());
            c.part_number = sock.and_then(|s| s.part_number.clone());
            set_prop(&mut c, "cores", Some(p.cores));
            set_prop(&mut c, "threads", Some(p.threads));
            set_prop(&mut c, "microcode", p.microcode.clone());
            set_prop(&mut c, "signature", p.signature.clone());
            if let Some(s) = sock {
                set_prop(&mut c, "max_speed_mhz", s.max_speed_mhz);
                set_prop(&mut c, "current_speed_mhz", s.current_speed_mhz);
                set_prop(&mut c, "smbios_cores", s.cores);
                set_prop(&mut c, "smbios_threads", s.threads);
                set_prop(&mut c, "processor_id", s.id.clone());
            }
            c
        })
        .collect()
}
