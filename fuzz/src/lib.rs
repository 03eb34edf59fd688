//! Shared settings of the fuzz targets, so every target scans with the same bounds and clock.

use std::sync::OnceLock;

use automata_fwscan::{Limits, RulePack};

/// A fixed "now" (2026-12-01), so certificate-expiry rules give the same answer on every run.
pub const NOW: i64 = 1_796_083_200;

/// Unpack bounds small enough for libFuzzer's 2 GiB RSS limit, large enough for real images.
pub fn limits() -> Limits {
    Limits {
        max_depth: 8,
        max_total_bytes: 64 << 20,
        max_ratio: 100,
        max_entries: 2_000,
    }
}

/// The builtin rule pack, parsed once per process rather than once per input.
pub fn rules() -> &'static RulePack {
    static RULES: OnceLock<RulePack> = OnceLock::new();
    RULES.get_or_init(RulePack::builtin)
}
