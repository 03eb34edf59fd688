//! Fuzzes the scanner's bounded zip/cab/gzip/zstd/xz unpacker: no panic, budget and names kept.
#![no_main]

use automata_fwscan::archive::{self, ArchiveKind, Budget};
use libfuzzer_sys::fuzz_target;

/// What one archive may produce here: small, so bombs are cut quickly.
const BUDGET: Budget = Budget {
    remaining: 16 << 20,
    max_ratio: 100,
    max_entries: 64,
};

fuzz_target!(|data: &[u8]| {
    // Zip readers find the central directory from the end: any bytes without another
    // format's magic go to the zip reader.
    let kind = archive::detect(data).unwrap_or(ArchiveKind::Zip);
    let mut total = 0u64;
    let mut entries = 0usize;
    let problems = archive::for_each_entry(kind, data, BUDGET, &mut |e| {
        total += e.data.len() as u64;
        entries += 1;
        assert!(
            e.name.is_empty() || archive::safe_name(&e.name),
            "unsafe entry name {:?} handed out",
            e.name
        );
        true
    });
    assert!(total <= BUDGET.remaining, "{total} bytes unpacked");
    assert!(entries <= BUDGET.max_entries, "{entries} entries unpacked");
    let _ = format!("{problems:?}");
});
