//! Fuzzes the edk2 variable-store reader and the Secure Boot lookups and rules on what it finds.
#![no_main]

use automata_fuzz::{NOW, rules};
use automata_fwscan::{Source, guid, secure_boot_findings_at, vss};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vss::detect(data);
    let mut issues = Vec::new();
    let Some(store) = vss::parse(data, "vss", &mut issues) else {
        return;
    };
    assert!(
        store.size <= data.len(),
        "store size {} > {}",
        store.size,
        data.len()
    );
    for v in &store.variables {
        assert!(
            v.data_offset >= v.offset && v.data_offset <= data.len(),
            "{v:?}"
        );
        let _ = v.is_live();
    }
    let _ = store.get("PK", guid::GLOBAL_VARIABLE);
    if store.has_secure_boot_state() {
        let db = store.secure_boot("vss", &mut issues);
        let _ = db.summary();
        let _ = secure_boot_findings_at(&db, Source::Blob, rules(), NOW, Some("vss"));
    }
    let _ = serde_json::to_string(&store);
});
