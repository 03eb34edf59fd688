//! SMBIOS parser tests: real tables written by qemu and read back by a Linux guest (see
//! `fixtures/README.md`), hand-built structures for the corners qemu does not produce, and
//! proptest fuzzing (arbitrary bytes never panic).

use automata_agent::smbios::{self, Structure};
use proptest::prelude::*;

const SM2_EP: &[u8] = include_bytes!("fixtures/qemu-sm2.smbios_entry_point.bin");
const SM2_DMI: &[u8] = include_bytes!("fixtures/qemu-sm2.DMI.bin");
const SM3_EP: &[u8] = include_bytes!("fixtures/qemu-sm3.smbios_entry_point.bin");
const SM3_DMI: &[u8] = include_bytes!("fixtures/qemu-sm3.DMI.bin");

fn check_qemu_table(ep: &[u8], dmi: &[u8], major: u8) {
    let ep = smbios::parse_entry_point(ep).expect("entry point parses");
    assert_eq!(ep.major, major);
    let (structures, err) = smbios::parse_table(dmi);
    assert_eq!(err, None);
    assert_eq!(
        structures.last().map(|s| s.ty),
        Some(127),
        "ends with type 127"
    );
    let d = smbios::decode(&structures, Some(&ep));

    let bios = d.bios.as_ref().expect("type 0");
    assert_eq!(bios.vendor.as_deref(), Some("Metal BIOS Co"));
    assert_eq!(bios.version.as_deref(), Some("2.17.4"));
    assert_eq!(bios.release_date.as_deref(), Some("03/14/2025"));
    assert_eq!(
        d.bios_extra.get("bios_revision").map(String::as_str),
        Some("2.17")
    );

    assert_eq!(d.system.manufacturer.as_deref(), Some("Metal Automata"));
    assert_eq!(d.system.product.as_deref(), Some("MA-R640"));
    assert_eq!(d.system.serial.as_deref(), Some("SRV-0042"));
    assert_eq!(
        d.system.uuid.as_deref(),
        Some("4c4c4544-0042-3510-8052-b4c04f4e3232"),
        "UUID as given to qemu, i.e. as /sys/class/dmi/id/product_uuid shows it"
    );
    assert_eq!(d.system.sku.as_deref(), Some("SKU-R640-X"));
    assert_eq!(
        d.system.asset_tag.as_deref(),
        Some("ASSET-7"),
        "chassis asset tag"
    );

    let board = d
        .other_components
        .iter()
        .find(|c| c.component_id == "baseboard:0")
        .expect("baseboard");
    assert_eq!(board.manufacturer.as_deref(), Some("Metal Boards"));
    assert_eq!(board.model.as_deref(), Some("MB-9000"));
    assert_eq!(board.serial.as_deref(), Some("BRD-77"));
    assert_eq!(board.location.as_deref(), Some("Mainboard"));
    let chassis = d
        .other_components
        .iter()
        .find(|c| c.component_id == "chassis:0")
        .expect("chassis");
    assert_eq!(chassis.serial.as_deref(), Some("CHS-99"));
    assert_eq!(chassis.manufacturer.as_deref(), Some("Metal Chassis"));

    assert_eq!(d.processors.len(), 2, "-smp sockets=2");
    let p = &d.processors[0];
    assert_eq!(p.socket.as_deref(), Some("CPU 0"));
    assert_eq!(d.processors[1].socket.as_deref(), Some("CPU 1"));
    assert!(p.populated);
    assert_eq!(p.manufacturer.as_deref(), Some("Metal CPUs"));
    assert_eq!(p.version.as_deref(), Some("Metal Xeon 9999"));
    assert_eq!(p.serial.as_deref(), Some("CPU-SN"));
    assert_eq!(p.part_number.as_deref(), Some("CPU-PN"));
    assert_eq!(p.cores, Some(1));
    assert_eq!(p.threads, Some(1));

    assert_eq!(d.dimms.len(), 1, "-m 512 is one DIMM");
    let m = &d.dimms[0];
    assert_eq!(m.locator.as_deref(), Some("DIMM 0"));
    assert_eq!(m.bank.as_deref(), Some("BANK"));
    assert_eq!(m.size_mib, Some(512));
    assert_eq!(m.manufacturer.as_deref(), Some("Metal RAM"));
    assert_eq!(m.serial.as_deref(), Some("DIMM-SN-1"));
    assert_eq!(m.part_number.as_deref(), Some("MR-DDR4-16G"));
    assert_eq!(m.speed_mts, Some(3200));
    assert_eq!(m.memory_type.as_deref(), Some("RAM"));
    assert_eq!(m.form_factor.as_deref(), Some("DIMM"));
    let c = smbios::dimm_component(m);
    assert_eq!(c.component_id, "dimm:DIMM_0");
    assert_eq!(
        c.properties.get("size_mib").map(String::as_str),
        Some("512")
    );
}

#[test]
fn qemu_smbios_2_table() {
    check_qemu_table(SM2_EP, SM2_DMI, 2);
}

#[test]
fn qemu_smbios_3_table() {
    check_qemu_table(SM3_EP, SM3_DMI, 3);
}

#[test]
fn entry_point_errors() {
    assert_eq!(
        smbios::parse_entry_point(b"nope"),
        Err(smbios::SmbiosError::BadAnchor)
    );
    assert!(matches!(
        smbios::parse_entry_point(b"_SM3_\x00"),
        Err(smbios::SmbiosError::Truncated(6))
    ));
    let mut bad = SM3_EP.to_vec();
    bad[7] ^= 1;
    assert_eq!(
        smbios::parse_entry_point(&bad),
        Err(smbios::SmbiosError::BadChecksum)
    );
}

/// Builds one structure: header, formatted area after it, then the string set.
fn structure(ty: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
    let mut v = vec![ty, u8::try_from(body.len() + 4).expect("small"), 0, 0];
    v[2..4].copy_from_slice(&handle.to_le_bytes());
    v.extend_from_slice(body);
    if strings.is_empty() {
        v.extend_from_slice(&[0, 0]);
    } else {
        for s in strings {
            v.extend_from_slice(s.as_bytes());
            v.push(0);
        }
        v.push(0);
    }
    v
}

/// A type 17 (SMBIOS 3.2 layout, 0x5C bytes) with the given size/extended size/type/speed.
fn type17(
    handle: u16,
    size: u16,
    ext_size: u32,
    mem_type: u8,
    speed: u16,
    ext_speed: u32,
) -> Vec<u8> {
    let mut f = vec![0u8; 0x5C - 4];
    let mut put =
        |off: usize, bytes: &[u8]| f[off - 4..off - 4 + bytes.len()].copy_from_slice(bytes);
    put(0x08, &72u16.to_le_bytes()); // total width (ECC)
    put(0x0A, &64u16.to_le_bytes()); // data width
    put(0x0C, &size.to_le_bytes());
    put(0x0E, &[0x09]); // DIMM
    put(0x10, &[1, 2]); // locator, bank
    put(0x12, &[mem_type]);
    put(0x15, &speed.to_le_bytes());
    put(0x17, &[3, 4, 5, 6]); // manufacturer, serial, asset, part
    put(0x1B, &[2]); // rank
    put(0x1C, &ext_size.to_le_bytes());
    put(0x20, &speed.to_le_bytes());
    put(0x54, &ext_speed.to_le_bytes());
    put(0x58, &ext_speed.to_le_bytes());
    structure(
        17,
        handle,
        &f,
        &[
            "DIMM_A1",
            "P0 CHANNEL A",
            "Samsung",
            "S3R14L",
            "Not Specified",
            "M321R8GA0BB0-CQKZJ",
        ],
    )
}

#[test]
fn hand_built_type17_variants() {
    let mut t = Vec::new();
    t.extend(type17(0x1100, 0x7fff, 64 * 1024, 0x22, 0xffff, 4800)); // 64 GiB DDR5, ext speed
    t.extend(type17(0x1101, 0, 0, 0x22, 0, 0)); // empty slot
    t.extend(type17(0x1102, 0x8000 | 2048, 0, 0x1A, 2666, 0)); // 2 MiB in KiB units, DDR4
    t.extend(type17(0x1103, 0xffff, 0, 0x1A, 2666, 0)); // unknown size
    t.extend(structure(127, 0xfeff, &[], &[]));
    let (s, err) = smbios::parse_table(&t);
    assert_eq!(err, None);
    assert_eq!(s.len(), 5);
    let d = smbios::decode(&s, None);
    assert_eq!(d.dimms.len(), 3, "the empty slot is skipped");
    let a = &d.dimms[0];
    assert_eq!(a.size_mib, Some(64 * 1024));
    assert_eq!(a.memory_type.as_deref(), Some("DDR5"));
    assert_eq!(a.speed_mts, Some(4800));
    assert_eq!(a.configured_speed_mts, Some(4800));
    assert_eq!(a.manufacturer.as_deref(), Some("Samsung"));
    assert_eq!(a.asset_tag, None, "placeholder dropped");
    assert_eq!(a.part_number.as_deref(), Some("M321R8GA0BB0-CQKZJ"));
    assert_eq!(a.rank, Some(2));
    let c = smbios::dimm_component(a);
    assert_eq!(c.component_id, "dimm:DIMM_A1");
    assert_eq!(c.properties.get("ecc").map(String::as_str), Some("true"));
    assert_eq!(d.dimms[1].size_mib, Some(2));
    assert_eq!(d.dimms[1].memory_type.as_deref(), Some("DDR4"));
    assert_eq!(d.dimms[2].size_mib, None);
}

#[test]
fn uuid_byte_order_follows_the_version() {
    let raw = [
        0x44, 0x45, 0x4c, 0x4c, 0x42, 0x00, 0x10, 0x35, 0x80, 0x52, 0xb4, 0xc0, 0x4f, 0x4e, 0x32,
        0x32,
    ];
    assert_eq!(
        smbios::format_uuid(&raw, true).as_deref(),
        Some("4c4c4544-0042-3510-8052-b4c04f4e3232")
    );
    assert_eq!(
        smbios::format_uuid(&raw, false).as_deref(),
        Some("44454c4c-4200-1035-8052-b4c04f4e3232")
    );
    assert_eq!(smbios::format_uuid(&[0; 16], true), None);
    assert_eq!(smbios::format_uuid(&[0xff; 16], true), None);
    assert_eq!(smbios::format_uuid(&[1; 4], true), None, "short");
}

#[test]
fn malformed_tables_keep_what_came_before() {
    let mut t = structure(1, 1, &[1, 2, 0, 0], &["Vendor", "Product"]);
    // A header with length 2: invalid.
    t.extend_from_slice(&[4, 2, 0, 0, 0, 0]);
    let (s, err) = smbios::parse_table(&t);
    assert_eq!(s.len(), 1);
    assert!(matches!(
        err,
        Some(smbios::SmbiosError::BadLength { len: 2, .. })
    ));
    // A string set without its terminator.
    let mut t = structure(0, 0, &[1, 2, 0, 0], &[]);
    t.extend_from_slice(&[1, 8, 0, 0, 1, 2, 3, 4, b'a', b'b']);
    let (s, err) = smbios::parse_table(&t);
    assert_eq!(s.len(), 1);
    assert!(matches!(err, Some(smbios::SmbiosError::Overrun(_))));
    // A structure shorter than its fields: absent fields are None, not a panic.
    let short = Structure {
        ty: 4,
        handle: 0,
        data: &[4, 4, 0, 0],
        strings: vec![],
    };
    let d = smbios::decode(&[short], None);
    assert_eq!(d.processors.len(), 1);
    assert!(!d.processors[0].populated);
}

#[test]
fn placeholders_are_absent() {
    for s in [
        "",
        "  ",
        "To Be Filled By O.E.M.",
        "Not Specified",
        "Default string",
        "0123456789",
    ] {
        assert_eq!(smbios::clean(s), None, "{s:?}");
    }
    assert_eq!(
        smbios::clean(" PowerEdge R640 ").as_deref(),
        Some("PowerEdge R640")
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_table_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (s, _) = smbios::parse_table(&bytes);
        let d = smbios::decode(&s, None);
        for m in &d.dimms {
            let _ = smbios::dimm_component(m);
        }
    }

    #[test]
    fn arbitrary_entry_points_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = smbios::parse_entry_point(&bytes);
        let mut sm3 = b"_SM3_".to_vec();
        sm3.extend_from_slice(&bytes);
        let _ = smbios::parse_entry_point(&sm3);
        let mut sm2 = b"_SM_".to_vec();
        sm2.extend_from_slice(&bytes);
        let _ = smbios::parse_entry_point(&sm2);
    }

    #[test]
    fn mutated_real_tables_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        which in any::<bool>(),
    ) {
        let mut t = if which { SM2_DMI.to_vec() } else { SM3_DMI.to_vec() };
        for (i, b) in &flips {
            let i = i.index(t.len());
            t[i] = *b;
        }
        t.truncate(cut.index(t.len() + 1));
        let (s, _) = smbios::parse_table(&t);
        let d = smbios::decode(&s, None);
        for m in &d.dimms {
            let _ = smbios::dimm_component(m);
        }
    }
}
