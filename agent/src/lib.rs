//! The in-band agent: reads the inventory of the Linux server it runs on straight from the kernel's
//! interfaces (SMBIOS tables, sysfs, a few ioctls) and returns it as an [`InventorySnapshot`].
//!
//! [`collect`] never fails and never panics on what it reads: whatever cannot be read (missing
//! files, permissions as a non-root user, malformed tables) is described in the snapshot's
//! `errors`, and everything else is still reported. Every reader takes a root path, so tests point
//! it at a fixture tree instead of `/`.
//!
//! [`collect_telemetry`] is the periodic counterpart: sensor readings (hwmon, EDAC counters, NVMe
//! SMART) and new hardware error log entries (EDAC increases, kernel log), see [`telemetry`].
//!
//! Server identity (`server_id`): the SMBIOS system UUID in lowercase (from the raw table, else
//! `/sys/class/dmi/id/product_uuid`), skipping the all-zero, all-`ff` and the well-known
//! `03000200-0400-0500-0006-000700080009` placeholder UUIDs; else `machine-id:<id>` from
//! `/etc/machine-id`; else `hostname:<name>` from `/proc/sys/kernel/hostname`; else `unknown`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use automata_schemas::types::{
    Component, ComponentKind, InventorySnapshot, InventorySource, SystemIdentity,
};

pub mod block;
pub mod cpu;
pub mod edac;
pub mod efivars;
pub mod fsutil;
pub mod hwmon;
pub mod ipmi;
pub mod mce;
pub mod net;
pub mod pci;
pub mod smbios;
mod sys;
pub mod telemetry;
pub mod tpm;

pub use fsutil::ReadError;
pub use telemetry::{TelemetrySample, TelemetryState, collect_telemetry};

/// What [`collect`] reads and how; `Default` reads the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Root of the file system to read (`/`, or a fixture tree in tests). Device ioctls (ethtool,
    /// IPMI, NVMe) are only issued when this is `/`.
    pub root: PathBuf,
    /// Whether external tools (`smartctl -j`) may be run where no kernel interface exists.
    pub run_external_tools: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            run_external_tools: true,
        }
    }
}

impl Options {
    /// True when reading the live system, the only case where ioctls and tools make sense.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/")
    }
}

/// The result of one [`collect`]: the snapshot and how long reading took.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The inventory, with what could not be read in its `errors`.
    pub snapshot: InventorySnapshot,
    /// Wall time spent collecting.
    pub elapsed: Duration,
}

/// Reads the whole inventory of the server under `options.root`; never fails, see `errors`.
pub fn collect(options: &Options) -> Report {
    let started = Instant::now();
    let root = options.root.as_path();
    let mut errors: Vec<String> = Vec::new();
    let mut components: Vec<Component> = Vec::new();

    // SMBIOS: identity, BIOS, baseboard, chassis, CPU sockets, DIMMs.
    let dmi = smbios::read(root);
    errors.extend(dmi.errors.iter().cloned());
    let system = dmi.system.clone();
    let bios = dmi.bios.clone();
    if let Some(b) = &bios {
        components.push(smbios::bios_component(b, &dmi.bios_extra));
    }
    components.extend(dmi.other_components.iter().cloned());

    // CPUs, joined with the SMBIOS type 4 sockets.
    match cpu::read(root) {
        Ok(cpus) => components.extend(cpu::components(&cpus, &dmi.processors)),
        Err(e) => errors.push(format!("CPUs: {e}")),
    }
    // DIMMs.
    components.extend(dmi.dimms.iter().map(smbios::dimm_component));

    // PCI devices (GPUs among them), NICs, disks, TPM, BMC.
    let pci = pci::read(root, &mut errors);
    components.extend(pci.iter().map(pci::to_component));
    components.extend(net::read(root, options.is_live(), &pci, &mut errors));
    components.extend(block::read(
        root,
        options.is_live(),
        options.run_external_tools && options.is_live(),
        &mut errors,
    ));
    if let Some(t) = tpm::read(root, options.is_live(), &mut errors) {
        components.push(t);
    }
    if options.is_live()
        && let Some(b) = ipmi::read(root, &mut errors)
    {
        components.push(b);
    }

    dedupe_ids(&mut components);
    let server_id = server_id(root, &system);
    let snapshot = InventorySnapshot {
        server_id,
        source: InventorySource::Agent,
        collected_at: now_millis(),
        system,
        bios,
        components,
        errors,
    };
    let elapsed = started.elapsed();
    tracing::debug!(
        ?elapsed,
        components = snapshot.components.len(),
        errors = snapshot.errors.len(),
        "inventory collected"
    );
    Report { snapshot, elapsed }
}

/// UUIDs firmware ships unset; they identify nothing.
const PLACEHOLDER_UUIDS: &[&str] = &[
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
];

/// The stable server identity, as documented at the top of this crate.
pub fn server_id(root: &Path, system: &SystemIdentity) -> String {
    if let Some(u) = system.uuid.as_deref().map(str::to_ascii_lowercase)
        && !PLACEHOLDER_UUIDS.contains(&u.as_str())
    {
        return u;
    }
    if let Ok(Some(id)) = fsutil::read_trimmed(root, "etc/machine-id")
        && !id.is_empty()
    {
        return format!("machine-id:{}", id.to_ascii_lowercase());
    }
    if let Ok(Some(h)) = fsutil::read_trimmed(root, "proc/sys/kernel/hostname")
        && !h.is_empty()
    {
        return format!("hostname:{h}");
    }
    "unknown".to_string()
}

/// Makes component ids unique (two NVMe namespaces of one controller, odd firmware) by suffixing
/// `#2`, `#3` in order, so the snapshot never carries two components under one id.
fn dedupe_ids(components: &mut [Component]) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    for c in components.iter_mut() {
        let n = seen.entry(c.component_id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.component_id = format!("{}#{}", c.component_id, n);
        }
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A component with only its id, kind and name set; readers fill in the rest.
pub(crate) fn component(id: String, kind: ComponentKind, name: String) -> Component {
    Component {
        component_id: id,
        kind,
        name,
        manufacturer: None,
        model: None,
        serial: None,
        part_number: None,
        firmware_version: None,
        location: None,
        properties: HashMap::new(),
    }
}

/// Sets a property when the value is known.
pub(crate) fn set_prop(c: &mut Component, key: &str, value: Option<impl ToString>) {
    if let Some(v) = value {
        let v = v.to_string();
        if !v.is_empty() {
            c.properties.insert(key.to_string(), v);
        }
    }
}
