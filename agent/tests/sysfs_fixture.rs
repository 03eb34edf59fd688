//! The readers on a fixture tree laid out like a two-socket server's sysfs and procfs, through
//! the public `collect` with a non-`/` root (so no ioctls are issued).

use std::path::Path;

use automata_agent::{Options, collect};
use automata_schemas::types::{Component, ComponentKind, InventorySource};

fn w(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::write(p, content).expect("write");
}

fn link(root: &Path, rel: &str, target_rel: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::create_dir_all(root.join(target_rel)).expect("mkdir target");
    std::os::unix::fs::symlink(root.join(target_rel), p).expect("symlink");
}

fn pci_fn(
    root: &Path,
    addr: &str,
    vendor: &str,
    device: &str,
    sub: (&str, &str),
    class: &str,
    driver: &str,
) {
    let dir = format!("sys/devices/pci0000:00/{addr}");
    w(root, &format!("{dir}/vendor"), format!("{vendor}\n"));
    w(root, &format!("{dir}/device"), format!("{device}\n"));
    w(
        root,
        &format!("{dir}/subsystem_vendor"),
        format!("{}\n", sub.0),
    );
    w(
        root,
        &format!("{dir}/subsystem_device"),
        format!("{}\n", sub.1),
    );
    w(root, &format!("{dir}/class"), format!("{class}\n"));
    w(root, &format!("{dir}/revision"), "0x02\n");
    w(root, &format!("{dir}/numa_node"), "1\n");
    w(
        root,
        &format!("{dir}/current_link_speed"),
        "8.0 GT/s PCIe\n",
    );
    w(root, &format!("{dir}/current_link_width"), "8\n");
    link(
        root,
        &format!("{dir}/driver"),
        &format!("sys/bus/pci/drivers/{driver}"),
    );
    link(root, &format!("sys/bus/pci/devices/{addr}"), &dir);
}

const PCI_IDS: &str = "\
# test pci.ids
8086  Intel Corporation
\t1572  Ethernet Controller X710 for 10GbE SFP+
\t\t8086 0006  Ethernet 10G 2P X710 Adapter
\ta282  200 Series PCH SATA controller [AHCI mode]
10de  NVIDIA Corporation
\t20b5  GA100 [A100 PCIe 80GB]
144d  Samsung Electronics Co Ltd
\ta824  NVMe SSD Controller PM173X
C 01  Mass storage controller
\t06  SATA controller
\t08  Non-Volatile memory controller
C 02  Network controller
\t00  Ethernet controller
C 03  Display controller
\t02  3D controller
";

fn cpu_tree(root: &Path) {
    // 2 sockets x 2 cores x 2 threads; cpu N: package N/4, core (N/2)%2.
    let mut info = String::new();
    for n in 0..8 {
        let pkg = n / 4;
        let core = (n / 2) % 2;
        let first = n - n % 2;
        let t = format!("sys/devices/system/cpu/cpu{n}/topology");
        w(
            root,
            &format!("{t}/physical_package_id"),
            format!("{pkg}\n"),
        );
        w(
            root,
            &format!("{t}/core_cpus_list"),
            format!("{first}-{}\n", first + 1),
        );
        w(
            root,
            &format!("sys/devices/system/cpu/cpu{n}/microcode/version"),
            "0x2007006\n",
        );
        info.push_str(&format!(
            "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n\
             model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\nstepping\t: 7\n\
             microcode\t: 0x2007006\nphysical id\t: {pkg}\ncore id\t\t: {core}\n\n"
        ));
    }
    w(root, "sys/devices/system/cpu/online", "0-7\n");
    w(root, "sys/devices/system/cpu/possible", "0-7\n");
    w(root, "proc/cpuinfo", info);
}

fn server_tree(root: &Path) {
    cpu_tree(root);
    w(root, "etc/machine-id", "0123456789abcdef0123456789ABCDEF\n");
    w(root, "usr/share/misc/pci.ids", PCI_IDS);

    // PCI: SATA controller, NIC, GPU, NVMe.
    pci_fn(
        root,
        "0000:00:17.0",
        "0x8086",
        "0xa282",
        ("0x1028", "0x0000"),
        "0x010601",
        "ahci",
    );
    pci_fn(
        root,
        "0000:3b:00.0",
        "0x8086",
        "0x1572",
        ("0x8086", "0x0006"),
        "0x020000",
        "i40e",
    );
    pci_fn(
        root,
        "0000:af:00.0",
        "0x10de",
        "0x20b5",
        ("0x10de", "0x1533"),
        "0x030200",
        "nvidia",
    );
    pci_fn(
        root,
        "0000:5e:00.0",
        "0x144d",
        "0xa824",
        ("0x144d", "0xa809"),
        "0x010802",
        "nvme",
    );
    w(root, "sys/bus/pci/slots/3/address", "0000:af:00\n");
    w(
        root,
        "proc/driver/nvidia/gpus/0000:af:00.0/information",
        "Model: \t\t NVIDIA A100 80GB PCIe\nVideo BIOS: \t 92.00.68.00.01\n",
    );

    // NICs: eth0 on the X710, lo and bond0 virtual.
    let eth0 = "sys/class/net/eth0";
    w(root, &format!("{eth0}/address"), "3c:fd:fe:aa:bb:cc\n");
    w(root, &format!("{eth0}/speed"), "10000\n");
    w(root, &format!("{eth0}/operstate"), "up\n");
    w(root, &format!("{eth0}/duplex"), "full\n");
    w(root, &format!("{eth0}/mtu"), "9000\n");
    w(root, &format!("{eth0}/dev_port"), "0\n");
    link(
        root,
        &format!("{eth0}/device"),
        "sys/devices/pci0000:00/0000:3b:00.0",
    );
    w(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
    w(root, "sys/class/net/bond0/address", "3c:fd:fe:aa:bb:cc\n");

    // Disks: NVMe namespace, SATA disk, loop and zram (skipped).
    let ctrl = "sys/devices/pci0000:00/0000:5e:00.0/nvme/nvme0";
    w(
        root,
        &format!("{ctrl}/model"),
        "SAMSUNG MZWLJ3T8HBLS-00007           \n",
    );
    w(root, &format!("{ctrl}/serial"), "S4YPNE0N800123      \n");
    w(root, &format!("{ctrl}/firmware_rev"), "EPK9GB5Q\n");
    w(root, &format!("{ctrl}/state"), "live\n");
    w(root, &format!("{ctrl}/hwmon3/temp1_input"), "36850\n");
    link(root, "sys/class/nvme/nvme0", ctrl);
    w(root, "sys/block/nvme0n1/size", "7501476528\n");
    w(root, "sys/block/nvme0n1/nsid", "1\n");
    w(root, "sys/block/nvme0n1/queue/rotational", "0\n");
    w(
        root,
        "sys/block/nvme0n1/wwid",
        "eui.36344630528001230025384100000001\n",
    );
    link(root, "sys/block/nvme0n1/device", ctrl);

    let sda = "sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
    w(root, &format!("{sda}/model"), "MTFDDAK480TDC   \n");
    w(root, &format!("{sda}/vendor"), "ATA     \n");
    w(root, &format!("{sda}/rev"), "J004\n");
    let mut vpd = vec![0x00, 0x80, 0x00, 0x14];
    vpd.extend_from_slice(b"    18211C9E07F1    ");
    w(root, &format!("{sda}/vpd_pg80"), vpd);
    w(root, "sys/block/sda/size", "937703088\n");
    w(root, "sys/block/sda/queue/rotational", "0\n");
    link(root, "sys/block/sda/device", sda);
    w(root, "sys/block/loop0/size", "0\n");
    w(root, "sys/block/zram0/size", "100\n");
    link(root, "sys/block/zram0/device", "sys/devices/virtual/zram0");

    // TPM 2.0.
    w(root, "sys/class/tpm/tpm0/tpm_version_major", "2\n");
    w(
        root,
        "sys/class/tpm/tpm0/device/description",
        "TPM 2.0 Device\n",
    );

    // No raw SMBIOS tables (non-root view): the kernel's dmi/id files, serial unreadable.
    let id = "sys/class/dmi/id";
    w(root, &format!("{id}/sys_vendor"), "Dell Inc.\n");
    w(root, &format!("{id}/product_name"), "PowerEdge R640\n");
    w(
        root,
        &format!("{id}/product_sku"),
        "SKU=NotProvided;ModelName=PowerEdge R640\n",
    );
    w(root, &format!("{id}/bios_vendor"), "Dell Inc.\n");
    w(root, &format!("{id}/bios_version"), "2.17.1\n");
    w(root, &format!("{id}/bios_date"), "11/14/2022\n");
    w(root, &format!("{id}/board_vendor"), "Dell Inc.\n");
    w(root, &format!("{id}/board_name"), "0H28RR\n");
    w(root, &format!("{id}/chassis_type"), "23\n");
    w(root, &format!("{id}/chassis_asset_tag"), "\n");
    // A directory where a file should be: reading it fails (tests run as root, so a chmod 000
    // file would still be readable).
    std::fs::create_dir_all(root.join(format!("{id}/product_serial"))).expect("mkdir");
}

fn find<'a>(cs: &'a [Component], id: &str) -> &'a Component {
    cs.iter().find(|c| c.component_id == id).unwrap_or_else(|| {
        panic!(
            "no component {id} in {:#?}",
            cs.iter().map(|c| &c.component_id).collect::<Vec<_>>()
        )
    })
}

fn prop<'a>(c: &'a Component, k: &str) -> Option<&'a str> {
    c.properties.get(k).map(String::as_str)
}

#[test]
fn collect_on_a_fixture_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    server_tree(root);
    let report = collect(&Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    });
    let s = &report.snapshot;
    let cs = &s.components;
    assert_eq!(s.source, InventorySource::Agent);
    assert_eq!(
        s.server_id, "machine-id:0123456789abcdef0123456789abcdef",
        "no UUID readable"
    );
    assert_eq!(s.system.manufacturer.as_deref(), Some("Dell Inc."));
    assert_eq!(s.system.product.as_deref(), Some("PowerEdge R640"));
    assert_eq!(s.system.serial, None);
    assert_eq!(
        s.bios.as_ref().and_then(|b| b.version.as_deref()),
        Some("2.17.1")
    );
    assert_eq!(find(cs, "bios").firmware_version.as_deref(), Some("2.17.1"));
    assert_eq!(
        prop(find(cs, "chassis:0"), "chassis_type"),
        Some("Rack Mount Chassis")
    );
    assert_eq!(find(cs, "baseboard:0").model.as_deref(), Some("0H28RR"));
    assert!(
        s.errors
            .iter()
            .any(|e| e.starts_with("system serial: /sys/class/dmi/id/product_serial")),
        "{:?}",
        s.errors
    );
    assert!(
        s.errors
            .iter()
            .any(|e| e.starts_with("DIMMs: /sys/firmware/dmi/tables/DMI")),
        "{:?}",
        s.errors
    );

    // CPUs.
    let cpus: Vec<&Component> = cs.iter().filter(|c| c.kind == ComponentKind::Cpu).collect();
    assert_eq!(cpus.len(), 2);
    let c0 = find(cs, "cpu:0");
    assert_eq!(
        c0.model.as_deref(),
        Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
    );
    assert_eq!(c0.manufacturer.as_deref(), Some("Intel"));
    assert_eq!(c0.firmware_version.as_deref(), Some("0x2007006"));
    assert_eq!(prop(c0, "cores"), Some("2"));
    assert_eq!(prop(c0, "threads"), Some("4"));
    assert_eq!(prop(find(cs, "cpu:1"), "threads"), Some("4"));

    // PCI.
    let sata = find(cs, "pci:0000:00:17.0");
    assert_eq!(sata.kind, ComponentKind::StorageController);
    assert_eq!(sata.manufacturer.as_deref(), Some("Intel Corporation"));
    assert_eq!(prop(sata, "driver"), Some("ahci"));
    assert_eq!(prop(sata, "class_name"), Some("SATA controller"));
    assert_eq!(prop(sata, "numa_node"), Some("1"));
    let gpu = find(cs, "pci:0000:af:00.0");
    assert_eq!(gpu.kind, ComponentKind::Gpu);
    assert_eq!(gpu.name, "GA100 [A100 PCIe 80GB]");
    assert_eq!(gpu.firmware_version.as_deref(), Some("92.00.68.00.01"));
    assert_eq!(gpu.location.as_deref(), Some("3"), "physical slot");
    let nicfn = find(cs, "pci:0000:3b:00.0");
    assert_eq!(
        nicfn.model.as_deref(),
        Some("Ethernet 10G 2P X710 Adapter"),
        "subsystem name"
    );
    assert_eq!(prop(nicfn, "link_speed"), Some("8.0 GT/s PCIe"));

    // NICs: only eth0, keyed by PCI address.
    let nics: Vec<&Component> = cs.iter().filter(|c| c.kind == ComponentKind::Nic).collect();
    assert_eq!(nics.len(), 1, "lo and bond0 are virtual");
    let eth0 = find(cs, "nic:0000:3b:00.0");
    assert_eq!(prop(eth0, "mac"), Some("3c:fd:fe:aa:bb:cc"));
    assert_eq!(prop(eth0, "driver"), Some("i40e"));
    assert_eq!(prop(eth0, "speed_mbps"), Some("10000"));
    assert_eq!(prop(eth0, "interface"), Some("eth0"));
    assert_eq!(eth0.manufacturer.as_deref(), Some("Intel Corporation"));

    // Disks.
    let nvme = find(cs, "disk:S4YPNE0N800123");
    assert_eq!(nvme.kind, ComponentKind::Nvme);
    assert_eq!(nvme.model.as_deref(), Some("SAMSUNG MZWLJ3T8HBLS-00007"));
    assert_eq!(nvme.firmware_version.as_deref(), Some("EPK9GB5Q"));
    assert_eq!(prop(nvme, "size_bytes"), Some("3840755982336"));
    assert_eq!(prop(nvme, "temperature_c"), Some("36"));
    assert_eq!(prop(nvme, "pci_address"), Some("0000:5e:00.0"));
    let sda = find(cs, "disk:18211C9E07F1");
    assert_eq!(sda.kind, ComponentKind::Disk);
    assert_eq!(sda.manufacturer, None, "'ATA' is not a vendor");
    assert_eq!(sda.firmware_version.as_deref(), Some("J004"));
    assert_eq!(prop(sda, "transport"), Some("sata"));
    assert!(!cs.iter().any(|c| c.name == "loop0" || c.name == "zram0"));

    // TPM (no ioctl or device access off the live root).
    let tpm = find(cs, "tpm:0");
    assert_eq!(prop(tpm, "tpm_version"), Some("2.0"));
    assert_eq!(prop(tpm, "description"), Some("TPM 2.0 Device"));
    assert!(!cs.iter().any(|c| c.kind == ComponentKind::Bmc));

    // Ids are unique and the snapshot serialises.
    let mut ids: Vec<&str> = cs.iter().map(|c| c.component_id.as_str()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n);
    serde_json::to_string(s).expect("serialises");
}

#[test]
fn raw_tables_win_over_dmi_id_and_give_the_server_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    server_tree(root);
    w(
        root,
        "sys/firmware/dmi/tables/smbios_entry_point",
        include_bytes!("fixtures/qemu-sm3.smbios_entry_point.bin"),
    );
    w(
        root,
        "sys/firmware/dmi/tables/DMI",
        include_bytes!("fixtures/qemu-sm3.DMI.bin"),
    );
    let s = collect(&Options {
        root: root.to_path_buf(),
        run_external_tools: false,
    })
    .snapshot;
    assert_eq!(s.server_id, "4c4c4544-0042-3510-8052-b4c04f4e3232");
    assert_eq!(s.system.serial.as_deref(), Some("SRV-0042"));
    let cs = &s.components;
    let dimm = find(cs, "dimm:DIMM_0");
    assert_eq!(dimm.serial.as_deref(), Some("DIMM-SN-1"));
    assert_eq!(
        find(cs, "cpu:0").location.as_deref(),
        Some("CPU 0"),
        "socket from type 4"
    );
    assert_eq!(find(cs, "cpu:1").location.as_deref(), Some("CPU 1"));
    assert!(
        !s.errors.iter().any(|e| e.contains("DIMMs")),
        "{:?}",
        s.errors
    );
}

#[test]
fn an_empty_root_reports_errors_and_does_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = collect(&Options {
        root: dir.path().to_path_buf(),
        run_external_tools: false,
    })
    .snapshot;
    assert_eq!(s.server_id, "unknown");
    assert!(
        s.errors.iter().any(|e| e.starts_with("SMBIOS:")),
        "{:?}",
        s.errors
    );
}
