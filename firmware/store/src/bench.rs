//! The ingest figure for `metal-automata bench firmware`: hash + store of a generated file.

use std::io::Write;
use std::time::Instant;

use crate::error::StoreError;
use crate::hash::Expected;
use crate::store::FirmwareStore;

/// One ingest measurement.
#[derive(Debug, Clone)]
pub struct IngestFigure {
    /// Bytes ingested.
    pub bytes: u64,
    /// Wall time of the import (read, SHA-256, staging write, fsync, commit, manifest).
    pub seconds: f64,
    /// `bytes / seconds`.
    pub bytes_per_sec: f64,
    /// The blob's SHA-256 (to cross-check with `openssl dgst -sha256`).
    pub sha256: String,
}

/// Hashes and stores a generated file of `size` bytes in a temporary local store; returns bytes/s.
pub async fn bench_ingest(size: u64) -> Result<f64, StoreError> {
    Ok(bench_ingest_figure(size).await?.bytes_per_sec)
}

/// Like [`bench_ingest`], with the whole figure (and the generated file kept until the end).
pub async fn bench_ingest_figure(size: u64) -> Result<IngestFigure, StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::io("tempdir", e))?;
    let input = dir.path().join("input.bin");
    let gen_path = input.clone();
    tokio::task::spawn_blocking(move || generate(&gen_path, size))
        .await
        .map_err(|e| StoreError::Internal(format!("generate task: {e}")))??;
    let store = FirmwareStore::local(dir.path().join("store"))?;
    let start = Instant::now();
    let manifest = store.import_file(&input, &Expected::default()).await?;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Ok(IngestFigure {
        bytes: manifest.size,
        seconds,
        bytes_per_sec: manifest.size as f64 / seconds,
        sha256: manifest.sha256,
    })
}

/// Writes `size` pseudo-random bytes (xorshift, incompressible enough) to `path`.
fn generate(path: &std::path::Path, size: u64) -> Result<(), StoreError> {
    let f = std::fs::File::create(path).map_err(|e| StoreError::io(path.display(), e))?;
    let mut w = std::io::BufWriter::with_capacity(4 << 20, f);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n])
            .map_err(|e| StoreError::io(path.display(), e))?;
        left -= n as u64;
    }
    w.flush().map_err(|e| StoreError::io(path.display(), e))?;
    Ok(())
}
