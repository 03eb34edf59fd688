//! Fuzzes the scanner's whole-blob entry point as `firmware scan FILE` runs it, report included.
#![no_main]

use automata_fuzz::{NOW, limits, rules};
use automata_fwscan::scan_at;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = scan_at(data, "fuzz", rules(), &limits(), NOW);
    assert_eq!(report.size, data.len() as u64);
    let _ = (
        report.rule_ids(),
        report.max_severity(),
        report.nodes().len(),
    );
    let _ = report.guids_of("fv");
    let _ = serde_json::to_string(&report);
});
