//! Fuzzes the vendor catalog parsers, picked by the first byte: bad input is an error, no panic.
#![no_main]

use automata_fwcatalog::{
    CatalogEntry, CatalogError, dell, generic, hpe, lenovo, lvfs, supermicro,
};
use libfuzzer_sys::fuzz_target;

/// Formats an error the way callers log it, so Display and kind() run on fuzzed data too.
fn seen<T>(r: Result<T, CatalogError>) -> Option<T> {
    r.map_err(|e| (e.kind(), e.to_string())).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, doc)) = data.split_first() else {
        return;
    };
    match which % 11 {
        0 => {
            if let Some(entries) = seen(dell::parse("fuzz", doc)) {
                let _ = serde_json::to_string(&entries);
            }
        }
        1 => {
            let _ = seen(hpe::parse_fwrepo("fuzz", "https://fw.invalid/", doc));
        }
        2 => {
            if let Some(pkg) = seen(hpe::parse_payload_json(doc)) {
                let _ = hpe::fwpkg_entries("fuzz", "a.fwpkg", Some("https://fw.invalid/"), &pkg);
            }
        }
        3 => {
            if let Some(pkg) = seen(hpe::read_fwpkg(doc)) {
                let _ = hpe::fwpkg_entries("fuzz", "a.fwpkg", None, &pkg);
            }
        }
        4 => {
            let _ = seen(generic::parse("fuzz", doc));
        }
        5 => {
            let _ = seen(lvfs::parse_metadata(
                "fuzz",
                Some("https://fw.invalid"),
                doc,
            ));
        }
        6 => {
            let _ = seen(lvfs::parse_metadata("fuzz", None, doc));
        }
        7 => {
            let _ = seen(lenovo::parse_descriptor(
                "fuzz",
                "lnvgy_fw_xcc_abc123-1.00_anyos_noarch.xml",
                doc,
                Some("https://fw.invalid"),
            ));
        }
        8 => {
            let _ = seen(lenovo::parse_comp_zip(
                "fuzz",
                "lnvgy_fw_uefi_abc123-1.00_anyos_comp.zip",
                doc,
                None,
            ));
        }
        9 => {
            if let Some(files) = seen(supermicro::parse_checksum_txt(doc)) {
                let mut entries: Vec<CatalogEntry> = files
                    .iter()
                    .map(|f| {
                        let mut e = CatalogEntry::new("fuzz", f.file_name.clone(), "Supermicro");
                        e.url = Some(format!("https://fw.invalid/{}", f.file_name));
                        e
                    })
                    .collect();
                let _ = supermicro::apply_checksums(&mut entries, &files);
                // A text that names no file applies to the single entry given.
                entries.truncate(1);
                let _ = supermicro::apply_checksums(&mut entries, &files);
            }
        }
        _ => {
            if let Some(cab) = seen(lvfs::read_cab("fuzz", doc)) {
                for f in &cab.files {
                    let _ = seen(lvfs::read_cab_member(doc, f));
                }
            }
        }
    }
});
