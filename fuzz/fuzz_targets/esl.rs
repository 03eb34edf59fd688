//! Fuzzes EFI_SIGNATURE_LIST reading (with encode round trip) and the Secure Boot rules on it.
#![no_main]

use automata_fuzz::{NOW, rules};
use automata_fwscan::esl::{efivarfs_payload, encode_signature_lists};
use automata_fwscan::{SecureBootDb, Source, parse_signature_lists, secure_boot_findings_at};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // An efivarfs file is 4 attribute bytes and the list; try both readings.
    for bytes in [Some(data), efivarfs_payload(data)].into_iter().flatten() {
        let entries = match parse_signature_lists(bytes) {
            Ok(entries) => entries,
            Err(e) => {
                assert!(e.offset() <= bytes.len(), "{e:?}");
                let _ = e.to_string();
                continue;
            }
        };
        let again = parse_signature_lists(&encode_signature_lists(&entries));
        assert!(again.as_ref() == Ok(&entries), "round trip: {again:?}");
        let db = SecureBootDb {
            pk: Some(entries.iter().take(1).cloned().collect()),
            kek: Some(entries.clone()),
            db: Some(entries.clone()),
            dbx: Some(entries),
        };
        let _ = db.summary();
        let _ = secure_boot_findings_at(&db, Source::Blob, rules(), NOW, None);
    }
});
