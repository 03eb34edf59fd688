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
    let (path, file_path, mut file) = create_staging(root)?;
    let copied = copy_hashing(src, src_name, &mut file, &file_path, hasher, cap);
    finish_staging(path, &file_path, file, copied)
}

/// Copies the local file `src_name` into `root/staging/<uuid>` while hashing it; blocking.
///
/// The kernel copies (`copy_file_range`: no user-space copy, and a reflink where the file system
/// has them) on a second thread while this one reads the file again and hashes it: the import
/// costs what `openssl dgst -sha256` of the file costs, the copy running beside it. Where the
/// kernel cannot copy between the two (another file system, an old kernel) it is
/// [`stage_reader`]. Same guarantees: fsynced, removed on any error, `cap` enforced, and a file
/// that changes size while it is imported is refused.
pub(crate) fn stage_file(
    root: &FsPath,
    src_name: &FsPath,
    hasher: MultiHasher,
    cap: Option<u64>,
) -> Result<LocalStaged, StoreError> {
    let open = || File::open(src_name).map_err(|e| StoreError::io(src_name.display(), e));
    let mut src = open()?;
    advise_sequential(&src);
    let (path, file_path, mut file) = create_staging(root)?;
    match kernel_copy::first_window(&open()?, &file) {
        Ok(Some(first)) => {
            let copied = kernel_copy::copy_hashing(
                &mut src, src_name, first, &mut file, &file_path, hasher, cap,
            );
            finish_staging(path, &file_path, file, copied)
        }
        Ok(None) => {
            drop(file);
            let _ = std::fs::remove_file(&file_path);
            stage_reader(root, &mut src, src_name, hasher, cap)
        }
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&file_path);
            Err(StoreError::io(file_path.display(), e))
        }
    }
}

/// A new `staging/<uuid>` file (the directory made again if a clean-up removed it).
fn create_staging(root: &FsPath) -> Result<(Path, std::path::PathBuf, File), StoreError> {
    let path = staging_path(Uuid::new_v4());
    let file_path = root.join(path.as_ref());
    let file = match create_new(&file_path) {
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
    Ok((path, file_path, file))
}

/// Fsyncs a staged file after a successful copy; removes it after a failed one.
fn finish_staging(
    path: Path,
    file_path: &FsPath,
    file: File,
    copied: Result<(u64, Hashes), StoreError>,
) -> Result<LocalStaged, StoreError> {
    let copied = copied.and_then(|r| {
        file.sync_all()
            .map_err(|e| StoreError::io(file_path.display(), e))?;
        Ok(r)
    });
    drop(file);
    match copied {
        Ok((size, hashes)) => Ok(LocalStaged { path, size, hashes }),
        Err(e) => {
            let _ = std::fs::remove_file(file_path);
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

/// The in-kernel copy beside the hashing read.
#[cfg(target_os = "linux")]
mod kernel_copy {
    use std::fs::File;
    use std::io::Read;
    use std::path::Path as FsPath;
    use std::sync::atomic::{AtomicBool, Ordering};

    use nix::errno::Errno;

    use super::{CHUNK, WRITEBACK_WINDOW, read_full, start_writeback};
    use crate::error::StoreError;
    use crate::hash::{Hashes, MultiHasher};

    /// The copy's source (its own descriptor, so its offset is its own) and what the first
    /// window moved.
    pub(super) struct First {
        src: File,
        copied: u64,
    }

    /// Copies the first window; `None` when the kernel cannot copy between these two files
    /// (then nothing was written and the caller copies through user space).
    pub(super) fn first_window(src: &File, dst: &File) -> std::io::Result<Option<First>> {
        match window(src, dst) {
            Ok(copied) => Ok(Some(First {
                src: src.try_clone()?,
                copied,
            })),
            Err(Errno::EXDEV | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EINVAL) => Ok(None),
            Err(e) => Err(std::io::Error::from(e)),
        }
    }

    /// Up to one writeback window, copied in the kernel at both files' offsets.
    fn window(src: &File, dst: &File) -> nix::Result<u64> {
        let mut done = 0u64;
        while done < WRITEBACK_WINDOW {
            let want = usize::try_from(WRITEBACK_WINDOW - done).unwrap_or(usize::MAX);
            match nix::fcntl::copy_file_range(src, None, dst, None, want) {
                Ok(0) => break,
                Ok(n) => done += n as u64,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// This thread reads `src` and hashes; a scoped thread copies the rest in the kernel.
    pub(super) fn copy_hashing(
        src: &mut File,
        src_name: &FsPath,
        first: First,
        dst: &mut File,
        dst_name: &FsPath,
        mut hasher: MultiHasher,
        cap: Option<u64>,
    ) -> Result<(u64, Hashes), StoreError> {
        let stop = AtomicBool::new(false);
        let dst_ref: &File = dst;
        std::thread::scope(|s| {
            let copier = s.spawn(|| -> Result<u64, StoreError> {
                let mut copied = first.copied;
                let mut kicked = 0u64;
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(copied);
                    }
                    let n = window(&first.src, dst_ref)
                        .map_err(|e| StoreError::io(dst_name.display(), e.into()))?;
                    if n == 0 {
                        return Ok(copied);
                    }
                    copied += n;
                    start_writeback(dst_ref, kicked, copied - kicked);
                    kicked = copied;
                }
            });
            let hashed = hash_all(src, src_name, &mut hasher, cap);
            if hashed.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            let copied = copier
                .join()
                .map_err(|_| StoreError::Internal("copy thread panicked".into()))?;
            let (hashed, copied) = (hashed?, copied?);
            if hashed != copied {
                return Err(StoreError::io(
                    src_name.display(),
                    std::io::Error::other(format!(
                        "the file changed while it was imported ({hashed} bytes hashed, \
                         {copied} copied)"
                    )),
                ));
            }
            Ok((hashed, hasher.finish()))
        })
    }

    /// Reads `src` to its end into the hasher; the bytes read.
    fn hash_all(
        src: &mut dyn Read,
        src_name: &FsPath,
        hasher: &mut MultiHasher,
        cap: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = read_full(src, &mut buf).map_err(|e| StoreError::io(src_name.display(), e))?;
            if n == 0 {
                return Ok(size);
            }
            size += n as u64;
            if let Some(cap) = cap
                && size > cap
            {
                return Err(StoreError::TooLarge { cap });
            }
            hasher.update(&buf[..n]);
        }
    }
}

/// Off Linux there is no in-kernel copy: every file goes through [`stage_reader`].
#[cfg(not(target_os = "linux"))]
mod kernel_copy {
    use std::fs::File;

    /// Never: the caller copies through user space.
    pub(super) fn first_window(_src: &File, _dst: &File) -> std::io::Result<Option<First>> {
        Ok(None)
    }

    /// Nothing is ever copied here.
    pub(super) enum First {}

    /// Unreachable: [`first_window`] never gives a [`First`].
    pub(super) fn copy_hashing(
        _src: &mut File,
        _src_name: &std::path::Path,
        first: First,
        _dst: &mut File,
        _dst_name: &std::path::Path,
        _hasher: crate::hash::MultiHasher,
        _cap: Option<u64>,
    ) -> Result<(u64, crate::hash::Hashes), crate::error::StoreError> {
        match first {}
    }
}

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
    fn a_local_file_is_copied_by_the_kernel_and_hashed_across_windows() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().expect("tempdir");
        let window = WRITEBACK_WINDOW as usize;
        for len in [0, 1, CHUNK + 1, window, window * 2 + 7] {
            let data = pattern(len);
            let input = dir.path().join(format!("input-{len}"));
            std::fs::write(&input, &data).expect("write");
            let staged = stage_file(
                dir.path(),
                &input,
                MultiHasher::for_expected(&Expected::default()),
                None,
            )
            .expect("staged");
            assert_eq!(staged.size, len as u64);
            assert_eq!(staged.hashes.sha256, hex::encode(Sha256::digest(&data)));
            let on_disk = std::fs::read(dir.path().join(staged.path.as_ref())).expect("read");
            assert!(on_disk == data, "staged bytes differ for len {len}");
        }
        // Over the cap: refused, and nothing is left in staging.
        let input = dir.path().join("big");
        std::fs::write(&input, pattern(window * 2)).expect("write");
        let before = staged_files(dir.path()).len();
        let err = stage_file(
            dir.path(),
            &input,
            MultiHasher::for_expected(&Expected::default()),
            Some(window as u64),
        )
        .expect_err("over the cap");
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert_eq!(staged_files(dir.path()).len(), before);
        // A missing file is a clear error, and nothing is staged.
        let err = stage_file(
            dir.path(),
            &dir.path().join("absent"),
            MultiHasher::for_expected(&Expected::default()),
            None,
        )
        .expect_err("absent");
        assert!(err.to_string().contains("absent"), "{err}");
        assert_eq!(staged_files(dir.path()).len(), before);
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
