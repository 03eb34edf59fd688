//! Staging on local disk without the `object_store` multipart detour.
//!
//! `LocalFileSystem::put_multipart` copies every part into its own buffer, writes it from a
//! spawned task and never fsyncs; on two cores the read → hash → multipart chain cost a quarter
//! of the throughput. Here one thread reads and writes (`read` into a reused buffer, `write` of
//! the same buffer into `staging/<uuid>`) while a second one only hashes, so ingest runs at the
//! speed of SHA-256 (or of the disk, whichever is slower). Memory stays bounded: [`BUFFERS`]
//! buffers of [`CHUNK`] bytes (2 MiB) circulate between the two threads and are never reallocated.
//!
//! Durability: writeback of each written window is started early (`POSIX_FADV_DONTNEED` on
//! Linux starts asynchronous writeback of the range's dirty pages, the safe stand-in for
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the disk works while hashing goes on, and the
//! staged file is fsynced once at the end, before anything is linked under `blobs/`.
//! The commit stays the store's: a hard link (`CopyMode::Create`), so a racing writer of the
//! same blob finds it existing and is a no-op.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::Path as FsPath;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use object_store::path::Path;
use uuid::Uuid;

use crate::error::StoreError;
use crate::hash::{Hashes, MultiHasher};
use crate::layout::staging_path;

/// Bytes moved per `read`/`write` and handed to the hasher at a time.
///
/// Small enough that a chunk is still in cache when the write copies it out and when the hasher
/// reads it on the other core (2 MiB chunks cost the hasher ~30% more CPU), large enough that
/// syscalls and channel hand-offs are noise.
pub(crate) const CHUNK: usize = 256 << 10;
/// Buffers in circulation: the reader may run this many chunks ahead of the hasher.
pub(crate) const BUFFERS: usize = 8;
/// Writeback is started every this many bytes written.
pub(crate) const WRITEBACK_WINDOW: u64 = 16 << 20;

/// What [`stage_reader`] produced: `staging/<uuid>`, written and fsynced.
#[derive(Debug)]
pub(crate) struct LocalStaged {
    /// The staging object's path (relative to the store root).
    pub(crate) path: Path,
    /// Bytes written.
    pub(crate) size: u64,
    /// Digests of those bytes.
    pub(crate) hashes: Hashes,
}

/// Copies `src` into `root/staging/<uuid>` while hashing it on a second thread; blocking.
///
/// The file is fsynced before this returns. On any error (read, write, `cap` exceeded, hasher
/// gone) the staging file is removed and nothing else was touched.
pub(crate) fn stage_reader(
    root: &FsPath,
    src: &mut dyn Read,
    src_name: &FsPath,
    hasher: MultiHasher,
    cap: Option<u64>,
) -> Result<LocalStaged, StoreError> {
    let path = staging_path(Uuid::new_v4());
    let file_path = root.join(path.as_ref());
    let mut file = match create_new(&file_path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            // Someone removed `staging/` (a hand clean-up): make it again.
            if let Some(dir) = file_path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display(), e))?;
            }
            create_new(&file_path)
        }
        r => r,
    }
    .map_err(|e| StoreError::io(file_path.display(), e))?;
    let copied = copy_hashing(src, src_name, &mut file, &file_path, hasher, cap).and_then(|r| {
        file.sync_all()
            .map_err(|e| StoreError::io(file_path.display(), e))?;
        Ok(r)
    });
    drop(file);
    match copied {
        Ok((size, hashes)) => Ok(LocalStaged { path, size, hashes }),
        Err(e) => {
            let _ = std::fs::remove_file(&file_path);
            Err(e)
        }
    }
}

fn create_new(path: &FsPath) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// The two-thread copy: this thread reads and writes, a scoped thread hashes.
fn copy_hashing(
    src: &mut dyn Read,
    src_name: &FsPath,
    dst: &mut File,
    dst_name: &FsPath,
    hasher: MultiHasher,
    cap: Option<u64>,
) -> Result<(u64, Hashes), StoreError> {
    // Full buffers go to the hasher, which sends them back empty for the next read.
    let (to_hash, hash_rx) = sync_channel::<(Vec<u8>, usize)>(BUFFERS);
    let (to_free, free_rx) = sync_channel::<Vec<u8>>(BUFFERS);
    std::thread::scope(|s| {
        let hashing = s.spawn(move || hash_loop(hasher, hash_rx, to_free));
        let copied = read_write_loop(src, src_name, dst, dst_name, cap, to_hash, free_rx);
        // `to_hash` was moved into the loop and dropped there, so the hasher sees the end.
        let hashes = hashing
            .join()
            .map_err(|_| StoreError::Internal("hash thread panicked".into()));
        Ok((copied?, hashes?))
    })
}

fn hash_loop(
    mut hasher: MultiHasher,
    full: Receiver<(Vec<u8>, usize)>,
    free: SyncSender<Vec<u8>>,
) -> Hashes {
    while let Ok((buf, n)) = full.recv() {
        hasher.update(&buf[..n]);
        // The reader may have stopped (an error): then the buffer is simply dropped.
        let _ = free.send(buf);
    }
    hasher.finish()
}

fn read_write_loop(
    src: &mut dyn Read,
    src_name: &FsPath,
    dst: &mut File,
    dst_name: &FsPath,
    cap: Option<u64>,
    to_hash: SyncSender<(Vec<u8>, usize)>,
    free: Receiver<Vec<u8>>,
) -> Result<u64, StoreError> {
    let mut allocated = 0usize;
    let mut size = 0u64;
    let mut kicked = 0u64;
    loop {
        let mut buf = match free.try_recv() {
            Ok(b) => b,
            Err(_) if allocated < BUFFERS => {
                allocated += 1;
                vec![0u8; CHUNK]
            }
            Err(_) => free
                .recv()
                .map_err(|_| StoreError::Internal("hash thread ended early".into()))?,
        };
        let n = read_full(src, &mut buf).map_err(|e| StoreError::io(src_name.display(), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if let Some(cap) = cap
            && size > cap
        {
            return Err(StoreError::TooLarge { cap });
        }
        dst.write_all(&buf[..n])
            .map_err(|e| StoreError::io(dst_name.display(), e))?;
        if size - kicked >= WRITEBACK_WINDOW {
            start_writeback(dst, kicked, size - kicked);
            kicked = size;
        }
        to_hash
            .send((buf, n))
            .map_err(|_| StoreError::Internal("hash thread ended early".into()))?;
    }
    Ok(size)
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full(src: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Starts asynchronous writeback of `len` bytes at `offset` (a hint: errors are ignored, the
/// final fsync is what counts).
///
/// Linux's `POSIX_FADV_DONTNEED` writes back the range's dirty pages with `WB_SYNC_NONE` (what
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` does) and then only drops pages that are already
/// clean, which freshly written ones are not. `nix` because the workspace forbids `unsafe` and
/// std has no fadvise; on tmpfs it is a no-op.
#[cfg(target_os = "linux")]
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    if let (Ok(offset), Ok(len)) = (offset.try_into(), len.try_into()) {
        let _ = posix_fadvise(file, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    }
}

/// Starts asynchronous writeback (no-op off Linux; the final fsync does it all).
#[cfg(not(target_os = "linux"))]
pub(crate) fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

/// Tells the kernel a source file will be read once, front to back (larger readahead).
#[cfg(target_os = "linux")]
pub(crate) fn advise_sequential(file: &File) {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    let _ = posix_fadvise(file, 0, 0, PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL);
}

/// Tells the kernel a source file will be read once, front to back (no-op off Linux).
#[cfg(not(target_os = "linux"))]
pub(crate) fn advise_sequential(_file: &File) {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Expected;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn staged_files(root: &FsPath) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(root.join("staging"))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }

    #[test]
    fn copies_and_hashes_across_chunk_boundaries() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("staging")).expect("mkdir");
        // More chunks than buffers, and a ragged tail.
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK * (BUFFERS + 3) + 7] {
            let data = pattern(len);
            let staged = stage_reader(
                dir.path(),
                &mut &data[..],
                FsPath::new("test"),
                MultiHasher::for_expected(&Expected {
                    md5: Some(String::new()),
                    ..Expected::default()
                }),
                None,
            )
            .expect("staged");
            assert_eq!(staged.size, len as u64);
            assert_eq!(staged.hashes.sha256, hex::encode(Sha256::digest(&data)));
            assert!(staged.hashes.md5.is_some());
            let on_disk = std::fs::read(dir.path().join(staged.path.as_ref())).expect("read");
            assert!(on_disk == data, "staged bytes differ for len {len}");
        }
    }

    #[test]
    fn cap_is_enforced_while_streaming_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("staging")).expect("mkdir");
        let data = pattern(CHUNK * 3);
        let cap = (CHUNK * 2) as u64;
        let err = stage_reader(
            dir.path(),
            &mut &data[..],
            FsPath::new("test"),
            MultiHasher::for_expected(&Expected::default()),
            Some(cap),
        )
        .expect_err("over the cap");
        assert!(matches!(err, StoreError::TooLarge { cap: c } if c == cap));
        assert!(staged_files(dir.path()).is_empty());
        // Exactly at the cap is fine.
        let data = pattern(CHUNK * 2);
        let staged = stage_reader(
            dir.path(),
            &mut &data[..],
            FsPath::new("test"),
            MultiHasher::for_expected(&Expected::default()),
            Some(cap),
        )
        .expect("at the cap");
        assert_eq!(staged.size, cap);
    }

    /// A source failing half-way (a crash-equivalent for the writer) leaves no staging file.
    #[test]
    fn failing_source_leaves_nothing() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk went away"));
                }
                let n = buf.len().min(self.0).min(1 << 20);
                buf[..n].fill(0xa5);
                self.0 -= n;
                Ok(n)
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("staging")).expect("mkdir");
        let err = stage_reader(
            dir.path(),
            &mut Failing(CHUNK * 3 + 5),
            FsPath::new("test"),
            MultiHasher::for_expected(&Expected::default()),
            None,
        )
        .expect_err("read error");
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert!(staged_files(dir.path()).is_empty());
    }

    #[test]
    fn missing_staging_directory_is_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let staged = stage_reader(
            dir.path(),
            &mut &b"abc"[..],
            FsPath::new("test"),
            MultiHasher::for_expected(&Expected::default()),
            None,
        )
        .expect("staged");
        assert_eq!(staged.size, 3);
    }
}
