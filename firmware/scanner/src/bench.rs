//! A dependency-free timing helper for `metal-automata bench firmware`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Limits, RulePack, ScanError, scan};

/// Timing of scanning a set of files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResult {
    /// Files scanned each round.
    pub files: Vec<PathBuf>,
    /// Rounds run.
    pub rounds: u32,
    /// Bytes per round.
    pub bytes: u64,
    /// Fastest round.
    pub best: Duration,
    /// Median round.
    pub median: Duration,
    /// Findings per round (sanity check that the scan did its work).
    pub findings: usize,
    /// Containers per round.
    pub nodes: usize,
}

/// Scans `files` (read once, up front) `rounds` times and reports the best and median time.
pub fn bench_scan(
    files: &[&Path],
    rounds: u32,
    rules: &RulePack,
    limits: &Limits,
) -> Result<BenchResult, ScanError> {
    let mut blobs = Vec::new();
    for f in files {
        let b = std::fs::read(f).map_err(|source| ScanError::Io {
            path: f.display().to_string(),
            source,
        })?;
        blobs.push((f.display().to_string(), b));
    }
    let mut times = Vec::new();
    let (mut findings, mut nodes) = (0, 0);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        findings = 0;
        nodes = 0;
        for (name, b) in &blobs {
            let r = scan(b, name, rules, limits);
            findings += r.findings.len();
            nodes += r.nodes().len();
        }
        times.push(t.elapsed());
    }
    times.sort();
    Ok(BenchResult {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        rounds: rounds.max(1),
        bytes: blobs.iter().map(|(_, b)| b.len() as u64).sum(),
        best: times.first().copied().unwrap_or_default(),
        median: times.get(times.len() / 2).copied().unwrap_or_default(),
        findings,
        nodes,
    })
}
