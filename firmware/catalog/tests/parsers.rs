//! Each vendor parser on its fixture, in the vendor's field names.

mod common;

use automata_fwcatalog::model::HashStrength;
use automata_fwcatalog::{Criticality, PciId, dell, generic, hpe, lenovo, lvfs, supermicro};
use common::*;

#[test]
fn dell_utf16_gzip_catalog() {
    let entries = dell::parse("dell", &read("Catalog.xml.gz")).expect("parse");
    assert_eq!(entries.len(), 2);
    let bios = &entries[0];
    assert_eq!(bios.key(), "dell/7K3MN");
    assert_eq!(bios.vendor, "Dell");
    assert_eq!(bios.name, "Dell PowerEdge R750 BIOS");
    assert_eq!(bios.component_type, "BIOS");
    assert_eq!(bios.version, "2.10.2");
    assert_eq!(bios.release_date.as_deref(), Some("2026-09-14"));
    assert_eq!(bios.criticality, Criticality::Critical);
    assert_eq!(
        bios.url.as_deref(),
        Some("https://downloads.dell.com/FOLDER11223344M/1/BIOS_7K3MN_WN64_2.10.2.EXE")
    );
    assert_eq!(bios.size, Some(33554432));
    assert_eq!(bios.reboot, Some(true));
    assert_eq!(
        bios.hashes.md5.as_deref(),
        Some("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    );
    assert_eq!(
        bios.hashes.sha256.as_deref(),
        Some("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
    );
    assert_eq!(bios.hashes.strength(), HashStrength::Sha256);
    assert_eq!(bios.applies_to.system_ids, vec!["0A6B", "0A6C"]);
    assert_eq!(bios.applies_to.models, vec!["R750", "R750xa"]);
    assert_eq!(bios.applies_to.software_ids, vec!["159"]);
    assert_eq!(
        bios.extra.get("dellVersion").map(String::as_str),
        Some("2.10.2")
    );

    let nic = &entries[1];
    assert_eq!(nic.criticality, Criticality::Recommended);
    assert_eq!(nic.reboot, Some(false));
    assert_eq!(
        nic.hashes.strength(),
        HashStrength::WeakMd5Sha1,
        "md5 only is weak provenance"
    );
    assert_eq!(
        nic.applies_to.pci_ids,
        vec![
            "14e4:16d7:1028:0a6f".parse::<PciId>().expect("pci"),
            "14e4:16d7".parse::<PciId>().expect("pci")
        ]
    );
    assert_eq!(nic.applies_to.software_ids, vec!["108734", "108735"]);
}

#[test]
fn dell_firmirror_fixture_utf8_and_utf16_agree() {
    let a = dell::parse("dell", &read("dell-firmirror-utf8.xml")).expect("utf8");
    let b = dell::parse("dell", &read("dell-firmirror-utf16le.xml")).expect("utf16");
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    assert_eq!(
        a[0].url.as_deref(),
        Some("https://dl.dell.com/FOLDER01/firmware1.exe")
    );
    assert_eq!(a[0].applies_to.system_ids, vec!["0C60", "0C61"]);
    assert_eq!(a[1].criticality, Criticality::Critical);
    assert_eq!(a[2].criticality, Criticality::Optional);
    // firmirror's md5 values are not hex: they are dropped rather than trusted.
    assert_eq!(a[0].hashes.md5, None);
}

#[test]
fn dell_streaming_bench_helper() {
    let report = dell::bench_parse(2_000_000).expect("bench");
    assert!(report.bytes >= 2_000_000);
    assert!(report.entries > 100);
    assert!(report.mb_per_s > 0.0);
    eprintln!(
        "dell parse (debug build): {} bytes, {} entries, {:.1} MB/s",
        report.bytes, report.entries, report.mb_per_s
    );
}

#[test]
fn hpe_sdr_fwrepo() {
    let mut json: serde_json::Value =
        serde_json::from_slice(&read("hpe-fwrepo.json")).expect("json");
    json["test-ilo-firmware-v2.1.0.fwpkg.compsig"] =
        serde_json::json!({"version": "1.48", "target": []});
    let bytes = serde_json::to_vec(&json).expect("json");
    let entries = hpe::parse_fwrepo(
        "hpe-gen11",
        "https://downloads.linux.hpe.com/SDR/repo/fwpp-gen11/current",
        &bytes,
    )
    .expect("parse");
    assert_eq!(entries.len(), 3, "the .compsig is not an entry of its own");
    let nic = entries
        .iter()
        .find(|e| e.entry_id == "test-firmware-v1.0.0.fwpkg")
        .expect("nic");
    assert_eq!(nic.version, "16.29.1016");
    assert_eq!(nic.release_date.as_deref(), Some("2024-01-15"));
    assert_eq!(nic.reboot, Some(true));
    assert_eq!(
        nic.applies_to.guids,
        vec!["a6b1a447-382a-5a4f-15b3-101715900346"]
    );
    assert_eq!(
        nic.url.as_deref(),
        Some(
            "https://downloads.linux.hpe.com/SDR/repo/fwpp-gen11/current/test-firmware-v1.0.0.fwpkg"
        )
    );
    assert!(nic.signature.is_none());
    let ilo = entries
        .iter()
        .find(|e| e.entry_id == "test-ilo-firmware-v2.1.0.fwpkg")
        .expect("ilo");
    assert_eq!(ilo.reboot, Some(false));
    assert_eq!(
        ilo.signature.as_ref().map(|s| s.kind.as_str()),
        Some("compsig")
    );
    let other = entries
        .iter()
        .find(|e| e.entry_id == "other-file.zip")
        .expect("zip");
    assert!(
        other.applies_to.guids.is_empty(),
        "\"null\" targets are dropped"
    );
}

#[test]
fn hpe_fwpkg_payload() {
    let payload = read("hpe-payload.json");
    let pkg_bytes = zip(&[
        ("payload.json", &payload),
        ("22_41_1000-MCX623106AS-CDA_Ax.pldm.signed", b"image"),
        ("22_41_1000-MCX623106AS-CDA_Ax.pldm.signed.compsig", b"sig"),
    ]);
    let pkg = hpe::read_fwpkg(&pkg_bytes).expect("fwpkg");
    assert_eq!(pkg.package_format.as_deref(), Some("FWPKG-v2"));
    assert_eq!(pkg.updatable_by, vec!["Bmc"]);
    assert_eq!(pkg.devices.len(), 1);
    assert_eq!(pkg.devices[0].firmware_images[0].reset_required, Some(true));
    assert_eq!(pkg.name.as_deref(), Some("Test Network Firmware"));
    assert_eq!(pkg.release_date.as_deref(), Some("2024-06-21"));
    assert_eq!(pkg.compsigs.len(), 1);
    let entries = hpe::fwpkg_entries("hpe", "nic.fwpkg", Some("https://x/nic.fwpkg"), &pkg);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].version, "22.41.1000");
    assert_eq!(
        entries[0].applies_to.guids,
        vec!["a6b1a447-382a-5a4f-15b3-101d15b30042"]
    );
    assert_eq!(
        entries[0].hashes.sha256.as_deref(),
        Some(sha256(&pkg_bytes).as_str())
    );
    assert_eq!(entries[0].reboot, Some(true));
    assert_eq!(
        entries[0].extra.get("UpdatableBy").map(String::as_str),
        Some("Bmc")
    );
    assert!(hpe::read_fwpkg(&zip(&[("other.txt", b"x")])).is_err());
}

#[test]
fn lenovo_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(
        fixture("lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml"),
        dir.path()
            .join("lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml"),
    )
    .expect("copy");
    let index = br#"{"packageName":"lnvgy_fw_uefi_ive184j-3.30_anyos_comp","version":"3.30","buildId":"IVE184J",
        "description":"Lenovo UEFI","machineTypes":["7D73","7D74"],"severity":"recommended",
        "payload":[{"fileName":"payload/ive184j.bin","sha256":"FCDE2B2EDBA56BF408601FB721FE9B5C338D10EE429EA04FAE5511B68FBF8FB9"}]}"#;
    std::fs::write(
        dir.path().join("lnvgy_fw_uefi_ive184j-3.30_anyos_comp.zip"),
        zip(&[("index.json", index), ("payload/ive184j.bin", b"bin")]),
    )
    .expect("write");
    std::fs::write(dir.path().join("README.txt"), "ignored").expect("write");
    let entries =
        lenovo::parse_directory("lenovo", dir.path(), Some("https://repo.example/lenovo"))
            .expect("dir");
    assert_eq!(entries.len(), 2);
    let uefi = &entries[0];
    assert_eq!(uefi.entry_id, "lnvgy_fw_uefi_ive184j-3.30_anyos_comp");
    assert_eq!(uefi.component_type, "uefi");
    assert_eq!(uefi.version, "3.30");
    assert_eq!(uefi.applies_to.system_ids, vec!["7D73", "7D74"]);
    assert_eq!(uefi.criticality, Criticality::Recommended);
    assert!(uefi.hashes.sha256.is_some());
    let xcc = &entries[1];
    assert_eq!(xcc.component_type, "xcc");
    assert_eq!(xcc.version, "8.30");
    assert_eq!(
        xcc.extra.get("build_id").map(String::as_str),
        Some("cdi3a4e")
    );
    assert_eq!(xcc.applies_to.system_ids, vec!["7Z72", "7Z73", "7D2V"]);
    assert_eq!(xcc.criticality, Criticality::Critical);
    assert_eq!(xcc.reboot, Some(false));
    assert_eq!(xcc.release_date.as_deref(), Some("2026-07-15"));
    assert_eq!(
        xcc.hashes.sha256.as_deref(),
        Some("c0535e4be2b79ffd93291305436bf889314e4a3faec05ecffcbb7df31ad9e51a")
    );
    assert_eq!(
        xcc.url.as_deref(),
        Some("https://repo.example/lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.uxz")
    );
    let pn =
        lenovo::parse_package_name("lnvgy_fw_lxpm_pdl142e-5.00_anyos_noarch.xml").expect("name");
    assert_eq!(
        (
            pn.component.as_str(),
            pn.build_id.as_str(),
            pn.version.as_str()
        ),
        ("lxpm", "pdl142e", "5.00")
    );
    assert!(lenovo::parse_package_name("random.xml").is_none());
}

#[test]
fn lvfs_metadata() {
    let xml = read("lvfs-metadata.xml");
    for bytes in [
        xml.clone(),
        gzip(&xml),
        zstd::encode_all(xml.as_slice(), 3).expect("zstd"),
    ] {
        let entries = lvfs::parse_metadata("lvfs", Some("https://fwupd.org/downloads"), &bytes)
            .expect("parse");
        assert_eq!(
            entries.len(),
            2,
            "one per release; the desktop app is skipped"
        );
        let new = &entries[0];
        assert_eq!(new.key(), "lvfs/com.dell.uefi8a3b9b3e.firmware/2.10.2");
        assert_eq!(new.vendor, "Dell");
        assert_eq!(new.criticality, Criticality::Critical);
        assert_eq!(new.release_date.as_deref(), Some("2025-09-14"));
        assert_eq!(new.size, Some(16777216));
        assert_eq!(
            new.applies_to.guids,
            vec!["8a3b9b3e-1c4e-4f1b-9d1a-1a2b3c4d5e6f"]
        );
        assert_eq!(new.hashes.strength(), HashStrength::Sha256);
        assert!(new.extra.contains_key("content_sha256"));
        assert_eq!(
            new.extra.get("LVFS::VersionFormat").map(String::as_str),
            Some("triplet")
        );
        let old = &entries[1];
        assert_eq!(
            old.url.as_deref(),
            Some("https://fwupd.org/downloads/dell-r750-2.9.4.cab")
        );
        assert_eq!(old.release_date.as_deref(), Some("2026-03-01"));
        assert_eq!(old.criticality, Criticality::Optional);
        assert_eq!(old.hashes.strength(), HashStrength::WeakMd5Sha1);
    }
}

#[test]
fn supermicro_three_layouts() {
    let one = supermicro::parse_checksum_txt(&read("supermicro-checksum-1.txt")).expect("1");
    assert_eq!(one.len(), 1);
    assert_eq!(
        one[0].file_name,
        "BMC_X11AST2500-4101MS_20210510_01.73.12_STDsp.zip"
    );
    assert_eq!(
        one[0].hashes.md5.as_deref(),
        Some("1a18d5d94fad55dc6fc51630383b1e7f")
    );
    assert_eq!(one[0].crc32.as_deref(), Some("5d32ec4b"));
    let two = supermicro::parse_checksum_txt(&read("supermicro-checksum-2.txt")).expect("2");
    assert_eq!(two.len(), 2);
    assert_eq!(
        two[0].file_name,
        "BIOS_X11SCH-F-1B11_20210525_1.6_STDsp.zip"
    );
    assert_eq!(
        two[0].hashes.md5.as_deref(),
        Some("9cd49a78f10d513f43f861e674d51c10")
    );
    assert_eq!(
        two[1].hashes.md5.as_deref(),
        Some("3f5cecadf92192d86d049a99b36939ab")
    );
    let three = supermicro::parse_checksum_txt(&read("supermicro-checksum-3.txt")).expect("3");
    assert_eq!(three.len(), 1);
    assert_eq!(three[0].file_name, "SMT_MBIPMI_339_REDFISH.zip");
    assert_eq!(
        three[0].hashes.md5.as_deref(),
        Some("33cdcd726f36f8ac35d8a0e4cea4a2a8")
    );
    assert_eq!(
        three[0].hashes.sha1.as_deref(),
        Some("103a717fbaf3b88f23e64e7bfe81e97ce2af10c3")
    );
    let four = supermicro::parse_checksum_txt(b"9cd49a78f10d513f43f861e674d51c10  BIOS.zip\n")
        .expect("sums");
    assert_eq!(four[0].file_name, "BIOS.zip");
    assert!(supermicro::parse_checksum_txt(b"\n/softfiles/MD5\n").is_err());

    // Generic entries reference checksum.txt: fill their hashes from it.
    let mut entries = generic::parse("generic", &read("generic.yaml")).expect("yaml");
    assert_eq!(supermicro::apply_checksums(&mut entries, &two), 1);
    assert_eq!(
        entries[0].hashes.md5.as_deref(),
        Some("9cd49a78f10d513f43f861e674d51c10")
    );
}

#[test]
fn generic_yaml_ironic_and_modeldata() {
    let y = generic::parse("ops", &read("generic.yaml")).expect("yaml");
    assert_eq!(y.len(), 2);
    assert_eq!(y[0].key(), "ops/smc-x11sch-bios-1.6");
    assert_eq!(y[0].applies_to.models, vec!["X11SCH-F"]);
    assert_eq!(
        y[0].extra.get("checksum_url").map(String::as_str),
        Some("https://www.supermicro.com/Bios/softfiles/14075/checksum.txt")
    );
    assert_eq!(y[1].entry_id, "nic/mlx-22.41.1000.bin");
    assert_eq!(y[1].criticality, Criticality::High);
    assert_eq!(y[1].applies_to.pci_ids.len(), 2);
    assert_eq!(
        y[1].applies_to.guids,
        vec!["a6b1a447-382a-5a4f-15b3-101d15b30042"]
    );
    assert_eq!(y[1].hashes.strength(), HashStrength::Sha256);

    let ironic = generic::parse("ironic", &read("ironic-firmware-images.json")).expect("ironic");
    assert_eq!(ironic.len(), 2);
    assert_eq!(ironic[0].entry_id, "bios-2.10.2.exe");
    assert_eq!(
        ironic[0].hashes.sha256.as_deref(),
        Some("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae")
    );
    assert_eq!(ironic[0].extra.get("wait").map(String::as_str), Some("300"));
    assert!(ironic[1].hashes.sha256.is_some());

    let md = generic::parse("fleetdb", &read("modeldata.json")).expect("modeldata");
    assert_eq!(md.len(), 2);
    let bmc = md.iter().find(|e| e.component_type == "bmc").expect("bmc");
    assert_eq!(bmc.vendor, "supermicro");
    assert_eq!(bmc.version, "01.73.12");
    assert_eq!(bmc.applies_to.models, vec!["X11SCH-F"]);
    assert_eq!(
        bmc.hashes.md5.as_deref(),
        Some("1a18d5d94fad55dc6fc51630383b1e7f")
    );
    assert_eq!(
        bmc.url.as_deref(),
        Some(
            "https://www.supermicro.com/Bios/softfiles/14021/BMC_X11AST2500-4101MS_20210510_01.73.12_STDsp.zip"
        )
    );
}

/// The figure for `metal-automata bench firmware`: run with
/// `cargo test -p automata-fwcatalog --test parsers -- --ignored bench_dell_50mb --nocapture`.
#[test]
#[ignore = "benchmark: 50 MB, meaningful only with optimisation"]
fn bench_dell_50mb() {
    let r = dell::bench_parse(50_000_000).expect("bench");
    eprintln!(
        "dell parse: {:.1} MB UTF-16, {} entries, {:.3} s, {:.1} MB/s",
        r.bytes as f64 / 1e6,
        r.entries,
        r.seconds,
        r.mb_per_s
    );
}
