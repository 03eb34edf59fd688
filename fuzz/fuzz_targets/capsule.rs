//! Fuzzes the capsule reader (header, FMP items, image auth) and the walker's capsule rules.
#![no_main]

use automata_fuzz::{NOW, limits, rules};
use automata_fwscan::capsule::{self, FmpCapsule, FmpItem};
use automata_fwscan::scan_at;
use libfuzzer_sys::fuzz_target;

/// Every range the FMP reader returns must lie inside the capsule it was read from.
fn check_ranges(data: &[u8], fmp: &FmpCapsule) {
    for item in &fmp.items {
        match item {
            FmpItem::Driver { range } => assert!(data.get(range.clone()).is_some(), "{range:?}"),
            FmpItem::Image(img) => {
                assert!(data.get(img.payload.clone()).is_some(), "{img:?}");
                assert!(data.get(img.vendor_code.clone()).is_some(), "{img:?}");
                assert!(img.offset <= img.payload.start, "{img:?}");
                if let Some(a) = &img.auth {
                    assert!(data.get(a.cert_data.clone()).is_some(), "{img:?}");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The FMP structures alone, as if the whole input were a capsule payload.
    if let Ok(fmp) = capsule::parse_fmp(data, 0..data.len()) {
        check_ranges(data, &fmp);
    }
    let Ok(header) = capsule::parse_header(data) else {
        return;
    };
    let detected = capsule::detect(data);
    if let Ok(range) = header.payload(data.len()) {
        assert!(data.get(range.clone()).is_some(), "{range:?}");
        if let Ok(fmp) = capsule::parse_fmp(data, range) {
            check_ranges(data, &fmp);
        }
    }
    if detected {
        let _ = scan_at(data, "capsule", rules(), &limits(), NOW);
    }
});
