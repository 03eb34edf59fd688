//! Vendor quirks, on responses captured from real BMCs (see fixtures/vendors/SOURCES.md).

use automata_bmc::redfish::inventory::{
    attach_firmware, bios, identity, manager, power_supply, server_id,
};
use automata_bmc::redfish::oem::{self, FirmwareImage, Vendor};
use automata_schemas::types::ComponentKind;
use serde_json::Value;

fn fixture(path: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/vendors/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn image(vendor: Vendor, v: &Value) -> FirmwareImage {
    oem::firmware_image(vendor, v["Id"].as_str().unwrap_or_default(), v)
}

#[test]
fn vendors_are_detected_from_their_managers() {
    for (dir, want) in [
        ("dell", Vendor::Dell),
        ("hpe", Vendor::Hpe),
        ("lenovo", Vendor::Lenovo),
        ("supermicro", Vendor::Supermicro),
    ] {
        let m = fixture(&format!("{dir}/manager.json"));
        assert_eq!(oem::detect(&Value::Null, &[m]), want, "{dir}");
    }
}

#[test]
fn dell_installed_is_running_previous_is_not_and_current_is_a_duplicate() {
    let installed = fixture("dell/firmware-inventory-installed-bios.json");
    let current = fixture("dell/firmware-inventory-current-bios.json");
    let previous = fixture("dell/firmware-inventory-previous-bios.json");
    assert_eq!(image(Vendor::Dell, &installed), FirmwareImage::Running);
    assert_eq!(image(Vendor::Dell, &previous), FirmwareImage::Previous);
    let all = [current.clone(), installed.clone(), previous.clone()];
    let kept: Vec<&str> = oem::dedupe(&all)
        .iter()
        .filter_map(|v| v["Id"].as_str())
        .collect();
    assert_eq!(
        kept,
        [
            "Installed-159-1.8.2__BIOS.Setup.1-1",
            "Previous-159-1.2.4__BIOS.Setup.1-1"
        ]
    );

    // The system's BIOS component keeps BiosVersion; the previous image is listed, not running.
    let system = fixture("dell/system.json");
    let mut comps = vec![
        bios(&system, None),
        manager(&fixture("dell/manager.json"), "idrac.example"),
    ];
    let idrac = [
        fixture("dell/firmware-inventory-installed-idrac.json"),
        fixture("dell/firmware-inventory-previous-idrac.json"),
    ];
    let firmware: Vec<Value> = all.iter().chain(idrac.iter()).cloned().collect();
    attach_firmware(&mut comps, Vendor::Dell, &firmware, true);
    let bios_c = comps
        .iter()
        .find(|c| c.kind == ComponentKind::Bios)
        .expect("bios");
    assert_eq!(bios_c.firmware_version.as_deref(), Some("1.8.2"));
    assert_eq!(
        bios_c.properties.get("software_id").map(String::as_str),
        Some("159")
    );
    let bmc = comps
        .iter()
        .find(|c| c.kind == ComponentKind::Bmc)
        .expect("bmc");
    assert_eq!(bmc.firmware_version.as_deref(), Some("6.00.30.00"));
    let previous: Vec<_> = comps
        .iter()
        .filter(|c| c.properties.get("image").map(String::as_str) == Some("previous"))
        .map(|c| c.firmware_version.clone().unwrap_or_default())
        .collect();
    assert_eq!(previous, ["1.2.4", "4.40.29.00"]);
    // Identity: the system UUID (lowercase), the service tag in SKU.
    let (id, note) = server_id(&system, "idrac.example");
    assert_eq!(id, "4c4c4544-0035-3410-8050-c6c04f314733");
    assert!(note.is_none());
    let (sys, _) = identity(&system);
    assert_eq!(sys.product.as_deref(), Some("PowerEdge R750"));
    assert_eq!(sys.sku.as_deref(), Some("F54P1G3"));
}

#[test]
fn hpe_device_context_is_the_location_and_the_redundant_rom_is_a_backup() {
    let rom = fixture("hpe/firmware-inventory-2-system-rom.json");
    let redundant = fixture("hpe/firmware-inventory-8-redundant-system-rom.json");
    assert_eq!(image(Vendor::Hpe, &rom), FirmwareImage::Running);
    assert_eq!(image(Vendor::Hpe, &redundant), FirmwareImage::Backup);
    let nic = automata_bmc::redfish::inventory::firmware_entry(
        Vendor::Hpe,
        &fixture("hpe/firmware-inventory-16-nic-pcie-slot1.json"),
    );
    assert_eq!(nic.location.as_deref(), Some("PCI-E Slot 1"));
    assert_eq!(nic.firmware_version.as_deref(), Some("20.29.1016"));
    let ilo = fixture("hpe/firmware-inventory-1-ilo5.json");
    assert_eq!(
        oem::firmware_kind("1", ilo["Name"].as_str()),
        ComponentKind::Bmc
    );
    let system = fixture("hpe/system.json");
    let (id, _) = server_id(&system, "ilo.example");
    assert_eq!(id, id.to_lowercase(), "HPE reports the UUID in upper case");
    // The SSD's entry names its drive: the firmware lands on that component.
    let ssd_fw = fixture("hpe/firmware-inventory-37-sata-ssd-with-softwareid.json");
    let drive = serde_json::json!({"@odata.id": "/redfish/v1/Systems/1/Storage/DE081000/Drives/0", "Id": "0", "SerialNumber": "S1"});
    let mut comps = vec![automata_bmc::redfish::inventory::drive(&drive)];
    attach_firmware(&mut comps, Vendor::Hpe, &[ssd_fw], true);
    assert_eq!(comps.len(), 1, "matched by RelatedItem, not added");
    assert_eq!(comps[0].firmware_version.as_deref(), Some("HPG0"));
}

#[test]
fn lenovo_backup_and_pending_images_and_bundles() {
    let primary = fixture("lenovo/firmware-inventory-bmc-primary.json");
    let backup = fixture("lenovo/firmware-inventory-bmc-backup.json");
    let pending = fixture("lenovo/firmware-inventory-bmc-primary-pending.json");
    let uefi_pending = fixture("lenovo/firmware-inventory-uefi-pending.json");
    assert_eq!(image(Vendor::Lenovo, &primary), FirmwareImage::Running);
    assert_eq!(image(Vendor::Lenovo, &backup), FirmwareImage::Backup);
    assert!(oem::is_placeholder(&pending), "Version -* is an empty slot");
    assert!(
        oem::is_placeholder(&uefi_pending),
        "Version null is an empty slot"
    );
    let slot = fixture("lenovo/firmware-inventory-slot-15.1.json");
    let bundle = fixture("lenovo/firmware-inventory-slot-15.bundle.json");
    let all = [slot, bundle];
    assert_eq!(
        oem::dedupe(&all).len(),
        1,
        "the bundle repeats the slot's entry"
    );
    // The PSU entry's RelatedItem is a JSON pointer into Power: it lands on that PSU.
    let psu = serde_json::json!({"@odata.id": "/redfish/v1/Chassis/1/Power#/PowerSupplies/0", "MemberId": "0", "Name": "PSU1"});
    let mut comps = vec![power_supply("1", &psu)];
    attach_firmware(
        &mut comps,
        Vendor::Lenovo,
        &[fixture("lenovo/firmware-inventory-psu1.json")],
        true,
    );
    assert_eq!(comps.len(), 1);
    assert_eq!(comps[0].firmware_version.as_deref(), Some("7.52"));
}

#[test]
fn supermicro_golden_staging_and_absent_images() {
    for (f, want) in [
        (
            "supermicro/firmware-inventory-bmc.json",
            FirmwareImage::Running,
        ),
        (
            "supermicro/firmware-inventory-golden-bmc.json",
            FirmwareImage::Backup,
        ),
        (
            "supermicro/firmware-inventory-staging-bmc.json",
            FirmwareImage::Available,
        ),
        (
            "supermicro/firmware-inventory-capsule-bios.json",
            FirmwareImage::Available,
        ),
        (
            "supermicro/firmware-inventory-golden-bios.json",
            FirmwareImage::Backup,
        ),
    ] {
        assert_eq!(image(Vendor::Supermicro, &fixture(f)), want, "{f}");
    }
    assert!(oem::is_placeholder(&fixture(
        "supermicro/firmware-inventory-backup-bmc.json"
    )));
    let me = fixture("supermicro/firmware-inventory-bios-me.json");
    assert_eq!(
        oem::firmware_kind("BIOS_ME", me["Name"].as_str()),
        ComponentKind::Other
    );
    let system = fixture("supermicro/system.json");
    let mut comps = vec![
        bios(&system, None),
        manager(&fixture("supermicro/manager.json"), "smc"),
    ];
    let files = [
        "bmc",
        "backup-bmc",
        "golden-bmc",
        "staging-bmc",
        "bios",
        "backup-bios",
        "golden-bios",
        "capsule-bios",
        "bios-me",
        "cpld-motherboard",
        "gpu1",
    ];
    let fw: Vec<Value> = files
        .iter()
        .map(|f| fixture(&format!("supermicro/firmware-inventory-{f}.json")))
        .collect();
    attach_firmware(&mut comps, Vendor::Supermicro, &fw, true);
    let bios_c = comps
        .iter()
        .find(|c| c.component_id == "bios")
        .expect("bios");
    assert_eq!(
        bios_c.firmware_version.as_deref(),
        Some("1.4"),
        "BiosVersion, not the inventory's long form"
    );
    assert!(
        bios_c
            .properties
            .get("firmware_uri")
            .is_some_and(|u| u.ends_with("/BIOS"))
    );
    let bmc = comps
        .iter()
        .find(|c| c.kind == ComponentKind::Bmc)
        .expect("bmc");
    assert_eq!(bmc.firmware_version.as_deref(), Some("11.01.01"));
    assert!(
        !comps
            .iter()
            .any(|c| c.firmware_version.as_deref() == Some("Not Present"))
    );
    let gpu = comps
        .iter()
        .find(|c| c.component_id == "firmware:GPU1")
        .expect("gpu firmware");
    assert_eq!(gpu.kind, ComponentKind::Gpu);
}
