//! The ingest figure for `metal-automata bench firmware`: hash + store of a generated file.
//!
//! Fairness with `openssl dgst -sha256`: both read the *same* file, generated once and fsynced
//! before anything is timed, so it sits clean in the page cache for both and no writeback of the
//! input competes with the store's own writes. The ingest figure includes everything an import
//! does (read, SHA-256, staging write, fsync, hard link into `blobs/`, directory fsyncs,
//! manifest); [`bench_write_ceiling`] gives the disk's durable-write speed (`dd bs=4M
//! conv=fsync`) so a disk-bound figure can be told from a slow one.

use std::io::Write;
use std::path::Path as FsPath;
use std::time::Instant;

use sha2::{Digest, Sha256};

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
    tokio::task::spawn_blocking(move || generate_input(&gen_path, size))
        .await
        .map_err(|e| StoreError::Internal(format!("generate task: {e}")))??;
    bench_ingest_file(&input, &dir.path().join("store")).await
}

/// Imports `input` into a new local store at `store_root` (which must not exist yet, and is
/// removed afterwards), timed.
pub async fn bench_ingest_file(
    input: &FsPath,
    store_root: &FsPath,
) -> Result<IngestFigure, StoreError> {
    let store = FirmwareStore::local(store_root)?;
    let start = Instant::now();
    let manifest = store.import_file(input, &Expected::default()).await;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let root = store_root.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(root)).await;
    let manifest = manifest?;
    Ok(IngestFigure {
        bytes: manifest.size,
        seconds,
        bytes_per_sec: manifest.size as f64 / seconds,
        sha256: manifest.sha256,
    })
}

/// Writes `size` pseudo-random bytes (xorshift64, incompressible enough) to `path` and fsyncs
/// them, so the file is clean in the page cache when a measurement reads it.
pub fn generate_input(path: &FsPath, size: u64) -> Result<(), StoreError> {
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
    let f = w
        .into_inner()
        .map_err(|e| StoreError::io(path.display(), e.into_error()))?;
    f.sync_all()
        .map_err(|e| StoreError::io(path.display(), e))?;
    Ok(())
}

/// The disk's durable-write ceiling in bytes/s: `size` bytes written in 4 MiB blocks to a new
/// file in `dir`, then one fsync, timed together; the file is removed.
///
/// Without `early_writeback` this is `dd bs=4M conv=fsync` (the kernel holds everything until
/// the fsync when the file is below its dirty thresholds); with it, writeback of every 16 MiB
/// written is started at once, as the store's staging does, which is the disk's real
/// sequential speed.
pub fn bench_write_ceiling(
    dir: &FsPath,
    size: u64,
    early_writeback: bool,
) -> Result<f64, StoreError> {
    let path = dir.join("write-ceiling.bin");
    let mut block = vec![0u8; 4 << 20];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for word in block.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        let start = Instant::now();
        let (mut written, mut kicked) = (0u64, 0u64);
        while written < size {
            let n = (size - written).min(block.len() as u64) as usize;
            f.write_all(&block[..n])?;
            written += n as u64;
            if early_writeback && written - kicked >= crate::local::WRITEBACK_WINDOW {
                crate::local::start_writeback(&f, kicked, written - kicked);
                kicked = written;
            }
        }
        f.sync_all()?;
        Ok(start.elapsed().as_secs_f64().max(1e-9))
    })();
    let _ = std::fs::remove_file(&path);
    let seconds = result.map_err(|e| StoreError::io(path.display(), e))?;
    Ok(size as f64 / seconds)
}

/// The store's SHA-256 alone (the `sha2` crate, SHA-NI when the CPU has it) over `input`, read
/// in 1 MiB blocks on one thread as `openssl dgst` does; bytes/s.
pub fn bench_sha256_file(input: &FsPath) -> Result<f64, StoreError> {
    use std::io::Read;
    let start = Instant::now();
    let mut f = std::fs::File::open(input).map_err(|e| StoreError::io(input.display(), e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::io(input.display(), e)),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    std::hint::black_box(h.finalize());
    Ok(total as f64 / start.elapsed().as_secs_f64().max(1e-9))
}
