//! The text and binary parsers besides SMBIOS: known inputs, then proptest fuzzing (no input
//! panics any of them).

use automata_agent::{block, cpu, ipmi, pci, tpm};
use proptest::prelude::*;

#[test]
fn cpuinfo_and_cpu_lists() {
    let e = cpu::parse_cpuinfo(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nmicrocode\t: 0x1000065\n\
         physical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nphysical id\t: 0\ncore id\t: 1\n",
    );
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].model_name.as_deref(), Some("AMD EPYC"));
    assert_eq!(e[0].microcode.as_deref(), Some("0x1000065"));
    assert_eq!(e[1].core_id, Some(1));
    assert_eq!(
        cpu::parse_cpu_list("0-3,8,10-11\n")
            .into_iter()
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 8, 10, 11]
    );
    assert!(cpu::parse_cpu_list("5-2,x,-").is_empty());
}

#[test]
fn ipmi_get_device_id() {
    // Dell iDRAC-like answer: fw 4.40, IPMI 2.0, IANA 674, product 0x0100, aux fw.
    let r = [
        0x00, 0x20, 0x81, 0x04, 0x40, 0x02, 0xdf, 0xa2, 0x02, 0x00, 0x00, 0x01, 0x00, 0x1e, 0x00,
        0x00,
    ];
    let id = ipmi::parse_device_id(&r).expect("parses");
    assert_eq!(id.firmware, "4.40");
    assert_eq!(id.ipmi_version, "2.0");
    assert_eq!(id.manufacturer_id, 674);
    assert_eq!(id.product_id, 0x0100);
    assert_eq!(id.aux_firmware.as_deref(), Some("001e0000"));
    let c = ipmi::to_component(&id);
    assert_eq!(c.component_id, "bmc:0");
    assert_eq!(c.manufacturer.as_deref(), Some("Dell"));
    assert_eq!(ipmi::parse_device_id(&[0xc1]), None, "completion code");
}

#[test]
fn tpm2_get_capability_and_tpm12_caps() {
    let mut r = vec![
        0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 4,
    ];
    for (p, v) in [
        (0x105u32, *b"IFX\0"),
        (0x106, *b"SLB9"),
        (0x107, *b"670\0"),
        (0x10B, [0, 7, 0, 85]),
    ] {
        r.extend_from_slice(&p.to_be_bytes());
        r.extend_from_slice(&v);
    }
    let t = tpm::parse_get_capability(&r).expect("parses");
    assert_eq!(t.manufacturer_id.as_deref(), Some("IFX"));
    assert_eq!(t.vendor_string.as_deref(), Some("SLB9670"));
    assert_eq!(t.firmware.as_deref(), Some("7.85.0.0"));
    assert_eq!(
        tpm::to_component(&t).manufacturer.as_deref(),
        Some("Infineon")
    );
    let c = tpm::parse_caps("Manufacturer: 0x49465800\nTCG version: 1.2\nFirmware version: 6.40\n");
    assert_eq!(c.manufacturer_id.as_deref(), Some("IFX"));
    assert_eq!(c.version.as_deref(), Some("1.2"));
    assert_eq!(c.firmware.as_deref(), Some("6.40"));
}

#[test]
fn nvme_smart_log_and_smartctl() {
    let mut log = [0u8; 512];
    log[1..3].copy_from_slice(&310u16.to_le_bytes());
    log[3] = 100;
    log[5] = 3;
    log[128] = 0x10;
    log[128 + 1] = 0x27; // 10000 hours
    let h: std::collections::HashMap<_, _> =
        block::parse_nvme_smart_log(&log).into_iter().collect();
    assert_eq!(h.get("health").map(String::as_str), Some("OK"));
    assert_eq!(h.get("temperature_c").map(String::as_str), Some("37"));
    assert_eq!(h.get("percentage_used").map(String::as_str), Some("3"));
    assert_eq!(h.get("power_on_hours").map(String::as_str), Some("10000"));
    let j = r#"{"smart_status":{"passed":false},"temperature":{"current":41},"power_on_time":{"hours":1234},
        "ata_smart_attributes":{"table":[{"id":5,"raw":{"value":8}},{"id":9,"raw":{"value":1234}}]}}"#;
    let h: std::collections::HashMap<_, _> = block::parse_smartctl_json(j).into_iter().collect();
    assert_eq!(h.get("health").map(String::as_str), Some("CRITICAL"));
    assert_eq!(h.get("temperature_c").map(String::as_str), Some("41"));
    assert_eq!(h.get("reallocated_sectors").map(String::as_str), Some("8"));
    assert!(block::parse_smartctl_json("not json").is_empty());
}

#[test]
fn pci_ids_subset() {
    let text = "8086  Intel Corporation\n\t1572  X710\n\t\t8086 0006  Ethernet 10G 2P X710\n\
                10de  NVIDIA\n\t20b5  A100\nC 02  Network controller\n\t00  Ethernet controller\n";
    let only_intel: std::collections::BTreeSet<u16> = [0x8086].into();
    let ids = pci::PciIds::parse(text, Some(&only_intel));
    assert_eq!(
        ids.vendors.get(&0x8086).map(String::as_str),
        Some("Intel Corporation")
    );
    assert!(!ids.vendors.contains_key(&0x10de));
    assert_eq!(
        ids.subsystems
            .get(&(0x8086, 0x1572, 0x8086, 0x0006))
            .map(String::as_str),
        Some("Ethernet 10G 2P X710")
    );
    assert_eq!(
        ids.subclasses.get(&(2, 0)).map(String::as_str),
        Some("Ethernet controller")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn text_parsers_never_panic(s in "\\PC*", t in "([0-9a-fA-Fx:, \t\n-]|processor|model name|C |\t\t){0,80}") {
        for x in [&s, &t] {
            let _ = cpu::parse_cpuinfo(x);
            let _ = cpu::parse_cpu_list(x);
            let _ = pci::PciIds::parse(x, None);
            let _ = tpm::parse_caps(x);
            let _ = block::parse_smartctl_json(x);
            let _ = automata_agent::smbios::clean(x);
            let _ = automata_agent::fsutil::parse_num(x);
            let _ = automata_agent::fsutil::is_pci_address(x);
        }
    }

    #[test]
    fn binary_parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ipmi::parse_device_id(&b);
        let _ = tpm::parse_get_capability(&b);
        let _ = block::parse_nvme_smart_log(&b);
        let _ = block::parse_vpd_pg80(&b);
        let _ = cpu::parse_cpuinfo(&String::from_utf8_lossy(&b));
        let _ = pci::PciIds::parse(&String::from_utf8_lossy(&b), None);
    }
}
