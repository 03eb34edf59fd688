//! Redfish → inventory: walks a BMC's systems, chassis, managers and firmware inventory and maps
//! them to one [`InventorySnapshot`] per ComputerSystem.
//!
//! Every read is tolerant: a missing property is `None`, a sub-collection that fails is recorded
//! in the snapshot's `errors` and the rest is still collected. Only an unreachable service root or
//! Systems collection fails the whole BMC. The mapping functions are pure over JSON, so they are
//! fuzzed directly.

use std::collections::HashMap;

use automata_schemas::types::{
    BiosInfo, Component, ComponentKind, InventorySnapshot, InventorySource, SystemIdentity,
};
use serde_json::Value;

use super::oem::{self, Vendor};
use super::{RedfishClient, SERVICE_ROOT, odata_id};
use crate::BmcError;

/// Property holding the Redfish URI a component was read from (links firmware to components,
/// and tells a command executor where to act).
pub const URI_PROPERTY: &str = "redfish_uri";

/// A string property, trimmed; empty strings and placeholders count as absent.
pub fn text(v: &Value, key: &str) -> Option<String> {
    let s = v.get(key)?.as_str()?.trim();
    (!s.is_empty() && !matches!(s, "N/A" | "NA" | "Not Available" | "Unknown" | "null"))
        .then(|| s.to_string())
}

fn at(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(odata_id)
}

fn links(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(odata_id).collect())
        .unwrap_or_default()
}

fn absent(v: &Value) -> bool {
    v.pointer("/Status/State").and_then(Value::as_str) == Some("Absent")
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The server id Redfish gives a system: its SMBIOS UUID, lowercase (the agent reads the same
/// UUID in-band, so both meet under one id); without a UUID, the BMC address and system Id.
pub fn server_id(system: &Value, bmc: &str) -> (String, Option<String>) {
    match text(system, "UUID").and_then(|u| uuid::Uuid::parse_str(&u).ok()) {
        Some(u) if !u.is_nil() => (u.hyphenated().to_string(), None),
        _ => {
            let sys = text(system, "Id").unwrap_or_else(|| "system".into());
            (
                format!("bmc:{bmc}/{sys}"),
                Some(format!(
                    "ComputerSystem {sys} has no usable UUID: identified by BMC address until it reports one"
                )),
            )
        }
    }
}

/// A component being filled from one Redfish resource.
struct Builder {
    c: Component,
}

impl Builder {
    fn new(kind: ComponentKind, id: String, name: String, v: &Value) -> Self {
        let mut c = Component {
            component_id: id,
            kind,
            name,
            manufacturer: text(v, "Manufacturer"),
            model: text(v, "Model"),
            serial: text(v, "SerialNumber"),
            part_number: text(v, "PartNumber"),
            firmware_version: text(v, "FirmwareVersion"),
            location: at(v, "/Location/PartLocation/ServiceLabel"),
            properties: HashMap::new(),
        };
        if let Some(u) = odata_id(v) {
            c.properties.insert(URI_PROPERTY.into(), u);
        }
        if let Some(h) = at(v, "/Status/Health") {
            c.properties.insert("health".into(), h);
        }
        Builder { c }
    }
    fn prop(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(v) = value {
            self.c.properties.insert(key.into(), v);
        }
        self
    }
    fn done(self) -> Component {
        self.c
    }
}

fn id_of(v: &Value) -> String {
    text(v, "Id")
        .or_else(|| text(v, "MemberId"))
        .or_else(|| {
            odata_id(v).and_then(|u| u.rsplit('/').find(|s| !s.is_empty()).map(str::to_string))
        })
        .unwrap_or_else(|| "unknown".into())
}

fn name_of(v: &Value, fallback: &str) -> String {
    text(v, "Name").unwrap_or_else(|| fallback.to_string())
}

/// A Processor resource as a component (CPU, or GPU/accelerator by ProcessorType).
pub fn processor(v: &Value) -> Component {
    let kind = match v.get("ProcessorType").and_then(Value::as_str) {
        Some("GPU") | Some("Accelerator") | Some("FPGA") => ComponentKind::Gpu,
        _ => ComponentKind::Cpu,
    };
    let id = id_of(v);
    let prefix = if kind == ComponentKind::Gpu {
        "gpu"
    } else {
        "cpu"
    };
    let mut b = Builder::new(kind, format!("{prefix}:{id}"), name_of(v, &id), v)
        .prop("cores", at(v, "/TotalCores"))
        .prop("threads", at(v, "/TotalThreads"))
        .prop("max_speed_mhz", at(v, "/MaxSpeedMHz"))
        .prop("architecture", at(v, "/InstructionSet"))
        .prop("microcode", at(v, "/ProcessorId/MicrocodeInfo"))
        .prop("processor_type", at(v, "/ProcessorType"));
    if b.c.location.is_none() {
        b.c.location = text(v, "Socket");
    }
    b.done()
}

/// A Memory resource (DIMM).
pub fn memory(v: &Value) -> Component {
    let id = id_of(v);
    let mut b = Builder::new(
        ComponentKind::Dimm,
        format!("dimm:{id}"),
        name_of(v, &id),
        v,
    )
    .prop("size_mib", at(v, "/CapacityMiB"))
    .prop("type", at(v, "/MemoryDeviceType"))
    .prop("speed_mhz", at(v, "/OperatingSpeedMhz"))
    .prop("rank_count", at(v, "/RankCount"))
    .prop("error_correction", at(v, "/ErrorCorrection"));
    if b.c.location.is_none() {
        b.c.location = text(v, "DeviceLocator");
    }
    if b.c.firmware_version.is_none() {
        b.c.firmware_version = text(v, "FirmwareRevision");
    }
    b.done()
}

/// A Drive resource (NVMe or disk), keyed by serial so a moved drive keeps its id.
pub fn drive(v: &Value) -> Component {
    let kind = match v.get("Protocol").and_then(Value::as_str) {
        Some("NVMe") => ComponentKind::Nvme,
        _ => ComponentKind::Disk,
    };
    let key = text(v, "SerialNumber").unwrap_or_else(|| id_of(v));
    let mut b = Builder::new(kind, format!("disk:{key}"), name_of(v, &id_of(v)), v)
        .prop("capacity_bytes", at(v, "/CapacityBytes"))
        .prop("media", at(v, "/MediaType"))
        .prop("protocol", at(v, "/Protocol"))
        .prop("predicted_failure", at(v, "/FailurePredicted"))
        .prop("life_left_percent", at(v, "/PredictedMediaLifeLeftPercent"));
    if b.c.firmware_version.is_none() {
        b.c.firmware_version = text(v, "Revision");
    }
    b.done()
}

/// A storage controller, from `StorageControllers[]` or the `Controllers` collection.
pub fn storage_controller(storage_id: &str, v: &Value) -> Component {
    let id = id_of(v);
    Builder::new(
        ComponentKind::StorageController,
        format!("storage:{storage_id}/{id}"),
        name_of(v, &id),
        v,
    )
    .prop("speed_gbps", at(v, "/SpeedGbps"))
    .prop(
        "protocols",
        v.get("SupportedControllerProtocols").map(|p| p.to_string()),
    )
    .done()
}

/// A device inside a SimpleStorage resource (older BMCs list disks only there).
pub fn simple_storage_device(storage_id: &str, index: usize, v: &Value) -> Component {
    let name = name_of(v, &format!("device {index}"));
    Builder::new(
        ComponentKind::Disk,
        format!("disk:{storage_id}/{index}"),
        name,
        v,
    )
    .prop("capacity_bytes", at(v, "/CapacityBytes"))
    .done()
}

/// An EthernetInterface of a system (a NIC port as the host sees it).
pub fn ethernet_interface(v: &Value) -> Component {
    let id = id_of(v);
    Builder::new(ComponentKind::Nic, format!("nic:{id}"), name_of(v, &id), v)
        .prop(
            "mac",
            text(v, "PermanentMACAddress").or_else(|| text(v, "MACAddress")),
        )
        .prop("speed_mbps", at(v, "/SpeedMbps"))
        .prop("link", at(v, "/LinkStatus"))
        .done()
}

/// A NetworkAdapter of a chassis: the card, with its controllers' firmware.
pub fn network_adapter(v: &Value) -> Component {
    let id = id_of(v);
    let mut b = Builder::new(
        ComponentKind::Nic,
        format!("nic-adapter:{id}"),
        name_of(v, &id),
        v,
    );
    if b.c.firmware_version.is_none() {
        b.c.firmware_version = at(v, "/Controllers/0/FirmwarePackageVersion");
    }
    b.prop(
        "ports",
        at(v, "/Controllers/0/ControllerCapabilities/NetworkPortCount"),
    )
    .done()
}

/// A PCIeDevice.
pub fn pcie_device(v: &Value) -> Component {
    let id = id_of(v);
    let kind = if text(v, "Name").is_some_and(|n| n.contains("GPU")) {
        ComponentKind::Gpu
    } else {
        ComponentKind::PciDevice
    };
    Builder::new(kind, format!("pci:{id}"), name_of(v, &id), v)
        .prop("device_type", at(v, "/DeviceType"))
        .prop("pcie_type", at(v, "/PCIeInterface/PCIeType"))
        .prop("lanes", at(v, "/PCIeInterface/LanesInUse"))
        .prop("slot", at(v, "/Slot/Location/PartLocation/ServiceLabel"))
        .done()
}

/// A chassis.
pub fn chassis(v: &Value) -> Component {
    let id = id_of(v);
    Builder::new(
        ComponentKind::Chassis,
        format!("chassis:{id}"),
        name_of(v, &id),
        v,
    )
    .prop("chassis_type", at(v, "/ChassisType"))
    .prop("sku", at(v, "/SKU"))
    .prop("asset_tag", at(v, "/AssetTag"))
    .done()
}

/// A power supply, from `Power.PowerSupplies[]` or `PowerSubsystem/PowerSupplies`.
pub fn power_supply(chassis_id: &str, v: &Value) -> Component {
    let id = id_of(v);
    Builder::new(
        ComponentKind::Psu,
        format!("psu:{chassis_id}/{id}"),
        name_of(v, &id),
        v,
    )
    .prop("capacity_w", at(v, "/PowerCapacityWatts"))
    .prop("type", at(v, "/PowerSupplyType"))
    .done()
}

/// A manager: the BMC itself, with its firmware.
pub fn manager(v: &Value, address: &str) -> Component {
    let id = id_of(v);
    Builder::new(ComponentKind::Bmc, format!("bmc:{id}"), name_of(v, &id), v)
        .prop("manager_type", at(v, "/ManagerType"))
        .prop("address", Some(address.to_string()))
        .done()
}

/// The Bios resource: BIOS version from the system, attributes as `attr.<Name>` properties.
pub fn bios(system: &Value, bios: Option<&Value>) -> Component {
    let mut b = Builder::new(
        ComponentKind::Bios,
        "bios".into(),
        "BIOS".into(),
        bios.unwrap_or(&Value::Null),
    );
    b.c.firmware_version = text(system, "BiosVersion");
    if let Some(bios) = bios {
        b = b.prop("attribute_registry", text(bios, "AttributeRegistry"));
        if let Some(attrs) = bios.get("Attributes").and_then(Value::as_object) {
            for (k, v) in attrs.iter().take(2000) {
                if let Some(s) = scalar(v) {
                    b.c.properties.insert(format!("attr.{k}"), s);
                }
            }
        }
    }
    b.done()
}

/// A FirmwareInventory entry (SoftwareInventory), with what the vendor's OEM data says about it.
pub fn firmware_entry(vendor: Vendor, v: &Value) -> Component {
    let id = id_of(v);
    let kind = oem::firmware_kind(&id, text(v, "Name").as_deref());
    let mut b = Builder::new(kind, format!("firmware:{id}"), name_of(v, &id), v)
        .prop("software_id", text(v, "SoftwareId"))
        .prop("updateable", at(v, "/Updateable"))
        .prop("release_date", text(v, "ReleaseDate"))
        .prop(
            "image",
            Some(oem::firmware_image(vendor, &id, v).as_str().to_string()),
        );
    b.c.firmware_version = text(v, "Version");
    if let Some(loc) = oem::firmware_location(vendor, v) {
        b.c.location = Some(loc);
    }
    let related: Vec<String> = links(v, "/RelatedItem");
    if !related.is_empty() {
        b = b.prop("related", Some(related.join(" ")));
    }
    b.done()
}

/// System identity and BIOS from a ComputerSystem.
pub fn identity(system: &Value) -> (SystemIdentity, BiosInfo) {
    let sys = SystemIdentity {
        manufacturer: text(system, "Manufacturer"),
        product: text(system, "Model"),
        serial: text(system, "SerialNumber"),
        uuid: text(system, "UUID").map(|u| u.to_lowercase()),
        sku: text(system, "SKU"),
        asset_tag: text(system, "AssetTag"),
    };
    let bios = BiosInfo {
        vendor: None,
        version: text(system, "BiosVersion"),
        release_date: None,
    };
    (sys, bios)
}

/// What one collection pass of a BMC found.
#[derive(Debug)]
pub struct BmcInventory {
    /// One snapshot per ComputerSystem.
    pub snapshots: Vec<InventorySnapshot>,
    /// Secure Boot state and keys per server id, for systems whose BMC reports them.
    pub secure_boot: Vec<(String, super::secureboot::SecureBootState)>,
    /// The vendor, as detected.
    pub vendor: Vendor,
    /// Requests sent (retries included).
    pub requests: u64,
}

impl BmcInventory {
    /// An IPMI BMC's inventory: its one snapshot (no vendor detection, no Redfish requests).
    pub fn ipmi(snapshot: InventorySnapshot) -> Self {
        BmcInventory {
            snapshots: vec![snapshot],
            secure_boot: Vec::new(),
            vendor: Vendor::Generic,
            requests: 0,
        }
    }
}

/// Reads the BMC at `client` and returns a snapshot per system. `address` is how the operator
/// registered it (recorded on the BMC component, and the fallback identity).
pub async fn collect(client: &RedfishClient, address: &str) -> Result<BmcInventory, BmcError> {
    let root = client.get(SERVICE_ROOT).await?;
    // A manager without systems (an enclosure or rack manager) has nothing to inventory here.
    let systems = match link(&root, "Systems") {
        Some(uri) => client.members(&uri).await?,
        None => Vec::new(),
    };

    let mut shared_errors = Vec::new();
    let managers = members_or_note(
        client,
        link(&root, "Managers"),
        "Managers",
        &mut shared_errors,
    )
    .await;
    let chassis_all = members_or_note(
        client,
        link(&root, "Chassis"),
        "Chassis",
        &mut shared_errors,
    )
    .await;
    let vendor = oem::detect(&root, &managers);
    let firmware_uri = match link(&root, "UpdateService") {
        Some(u) => match client.get(&u).await {
            Ok(us) => link(&us, "FirmwareInventory"),
            Err(e) => {
                shared_errors.push(format!("UpdateService: {e}"));
                None
            }
        },
        None => None,
    };
    let firmware = members_or_note(
        client,
        firmware_uri,
        "FirmwareInventory",
        &mut shared_errors,
    )
    .await;

    let mut snapshots = Vec::new();
    let mut secure_boot = Vec::new();
    let single = systems.len() == 1;
    for system in &systems {
        let mut errors = shared_errors.clone();
        let (server_id, id_note) = server_id(system, address);
        errors.extend(id_note);
        let mut components = Vec::new();

        for p in members_or_note(
            client,
            link(system, "Processors"),
            "Processors",
            &mut errors,
        )
        .await
        {
            if !absent(&p) {
                components.push(processor(&p));
            }
        }
        for m in members_or_note(client, link(system, "Memory"), "Memory", &mut errors).await {
            let empty = m.get("CapacityMiB").and_then(Value::as_u64) == Some(0);
            if !absent(&m) && !empty {
                components.push(memory(&m));
            }
        }
        let mut drives_found = 0;
        for s in members_or_note(client, link(system, "Storage"), "Storage", &mut errors).await {
            let sid = id_of(&s);
            let inline: Vec<Value> = s
                .get("StorageControllers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ctrls = if inline.is_empty() {
                members_or_note(
                    client,
                    link(&s, "Controllers"),
                    "Storage controllers",
                    &mut errors,
                )
                .await
            } else {
                inline
            };
            components.extend(
                ctrls
                    .iter()
                    .filter(|c| !absent(c))
                    .map(|c| storage_controller(&sid, c)),
            );
            let drive_links = links(&s, "/Drives");
            // Built before awaiting (the client's own limit bounds the concurrency).
            let gets: Vec<_> = drive_links.iter().map(|d| client.get(d)).collect();
            let fetched = futures::future::join_all(gets).await;
            for (uri, d) in drive_links.iter().zip(fetched) {
                match d {
                    Ok(d) if !absent(&d) => {
                        drives_found += 1;
                        components.push(drive(&d));
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(format!("Drive {uri}: {e}")),
                }
            }
        }
        if drives_found == 0 {
            for s in members_or_note(
                client,
                link(system, "SimpleStorage"),
                "SimpleStorage",
                &mut errors,
            )
            .await
            {
                let sid = id_of(&s);
                for (i, d) in s
                    .get("Devices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    if !absent(d) {
                        components.push(simple_storage_device(&sid, i, d));
                    }
                }
            }
        }
        for e in members_or_note(
            client,
            link(system, "EthernetInterfaces"),
            "EthernetInterfaces",
            &mut errors,
        )
        .await
        {
            components.push(ethernet_interface(&e));
        }
        // PCIe devices: a collection on newer systems, an array of links on older ones.
        let pcie_uris = links(system, "/PCIeDevices");
        if pcie_uris.is_empty() {
            for p in members_or_note(
                client,
                link(system, "PCIeDevices"),
                "PCIeDevices",
                &mut errors,
            )
            .await
            {
                components.push(pcie_device(&p));
            }
        } else {
            for u in pcie_uris {
                match client.get(&u).await {
                    Ok(p) => components.push(pcie_device(&p)),
                    Err(e) => errors.push(format!("PCIeDevice {u}: {e}")),
                }
            }
        }
        let bios_res = match link(system, "Bios") {
            Some(u) => match client.get(&u).await {
                Ok(b) => Some(b),
                Err(e) => {
                    errors.push(format!("Bios: {e}"));
                    None
                }
            },
            None => None,
        };
        components.push(bios(system, bios_res.as_ref()));

        // Chassis and managers this system links to (all of them for a single-system BMC).
        let chassis_links = links(system, "/Links/Chassis");
        for ch in chassis_all.iter().filter(|c| {
            (single && chassis_links.is_empty())
                || odata_id(c).is_some_and(|u| chassis_links.contains(&u))
        }) {
            let cid = id_of(ch);
            components.push(chassis(ch));
            for a in members_or_note(
                client,
                link(ch, "NetworkAdapters"),
                "NetworkAdapters",
                &mut errors,
            )
            .await
            {
                components.push(network_adapter(&a));
            }
            if pcie_uris_missing(&components) {
                for p in
                    members_or_note(client, link(ch, "PCIeDevices"), "PCIeDevices", &mut errors)
                        .await
                {
                    components.push(pcie_device(&p));
                }
            }
            let mut psus = Vec::new();
            if let Some(ps) = link(ch, "PowerSubsystem") {
                match client.get(&ps).await {
                    Ok(ps) => {
                        psus = members_or_note(
                            client,
                            link(&ps, "PowerSupplies"),
                            "PowerSupplies",
                            &mut errors,
                        )
                        .await
                    }
                    Err(e) => errors.push(format!("PowerSubsystem: {e}")),
                }
            }
            if psus.is_empty()
                && let Some(p) = link(ch, "Power")
            {
                match client.get(&p).await {
                    Ok(p) => {
                        psus = p
                            .get("PowerSupplies")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    }
                    Err(e) => errors.push(format!("Power: {e}")),
                }
            }
            components.extend(
                psus.iter()
                    .filter(|p| !absent(p))
                    .map(|p| power_supply(&cid, p)),
            );
        }
        let managed_by = links(system, "/Links/ManagedBy");
        for m in managers.iter().filter(|m| {
            (single && managed_by.is_empty())
                || odata_id(m).is_some_and(|u| managed_by.contains(&u))
        }) {
            components.push(manager(m, address));
        }
        attach_firmware(&mut components, vendor, &firmware, single);
        if let Some(uri) = link(system, "SecureBoot") {
            match super::secureboot::read(client, &uri).await {
                Ok(sb) => {
                    errors.extend(sb.notes.iter().map(|n| format!("SecureBoot: {n}")));
                    secure_boot.push((server_id.clone(), sb));
                }
                Err(e) => errors.push(format!("SecureBoot: {e}")),
            }
        }
        let (system_id, bios_info) = identity(system);
        snapshots.push(InventorySnapshot {
            server_id,
            source: InventorySource::Redfish,
            collected_at: chrono::Utc::now().timestamp_millis(),
            system: system_id,
            bios: Some(bios_info),
            components,
            errors,
        });
    }
    Ok(BmcInventory {
        snapshots,
        secure_boot,
        vendor,
        requests: client.requests_sent(),
    })
}

/// A collection's members, or none with a note in `errors` when it cannot be read.
async fn members_or_note(
    client: &RedfishClient,
    uri: Option<String>,
    what: &str,
    errors: &mut Vec<String>,
) -> Vec<Value> {
    let Some(uri) = uri else {
        return Vec::new();
    };
    match client.members(&uri).await {
        Ok(v) => v,
        Err(e) => {
            errors.push(format!("{what}: {e}"));
            Vec::new()
        }
    }
}

fn pcie_uris_missing(components: &[Component]) -> bool {
    !components
        .iter()
        .any(|c| c.component_id.starts_with("pci:"))
}

/// Gives each component the firmware version its FirmwareInventory entry reports (matched by
/// `RelatedItem`, or by kind for the BIOS and the BMC), and keeps the entries that match nothing
/// as components of their own, so every firmware the BMC lists is in the inventory.
pub fn attach_firmware(
    components: &mut Vec<Component>,
    vendor: Vendor,
    firmware: &[Value],
    single_system: bool,
) {
    let by_uri: HashMap<String, usize> = components
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.properties.get(URI_PROPERTY)?.clone(), i)))
        .collect();
    let mut extra = Vec::new();
    let mut attached_by_kind = std::collections::HashSet::new();
    for f in oem::dedupe(firmware) {
        if oem::is_placeholder(f) {
            continue;
        }
        let entry = firmware_entry(vendor, f);
        let running = entry.properties.get("image").map(String::as_str) == Some("running");
        let related = links(f, "/RelatedItem");
        let target = related
            .iter()
            .find_map(|u| by_uri.get(u).copied())
            .or_else(|| {
                // The BIOS and the BMC are listed without RelatedItem by most vendors.
                let kind = entry.kind;
                // The first running entry of the kind is the one that runs.
                (running
                    && matches!(kind, ComponentKind::Bios | ComponentKind::Bmc)
                    && attached_by_kind.insert(kind))
                .then(|| components.iter().position(|c| c.kind == kind))
                .flatten()
            });
        match target {
            Some(i) if running => {
                let c = &mut components[i];
                if c.firmware_version.is_none() {
                    c.firmware_version = entry.firmware_version.clone();
                }
                if let Some(sid) = entry.properties.get("software_id") {
                    c.properties.insert("software_id".into(), sid.clone());
                }
                if let Some(u) = entry.properties.get(URI_PROPERTY) {
                    c.properties.insert("firmware_uri".into(), u.clone());
                }
            }
            // On a multi-system BMC an entry that matches none of this system's parts belongs
            // to another system.
            _ if single_system => extra.push(entry),
            _ => {}
        }
    }
    components.extend(extra);
}
