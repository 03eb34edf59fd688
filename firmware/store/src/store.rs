//! [`FirmwareStore`]: staging, the write-once commit into `blobs/`, manifests, imports.
//!
//! Durability on local disk: `object_store`'s `LocalFileSystem` writes a temporary file and
//! renames (put, multipart) or hard-links (`CopyMode::Create`) it into place, but it never calls
//! `fsync`. The store therefore fsyncs the staged file itself *before* linking it under `blobs/`,
//! and fsyncs the blob's directories afterwards, so a blob name never points at bytes that only
//! lived in the page cache. Manifests are fsynced after their (tmp + rename) put.
//!
//! On S3, staging is a multipart upload (visible only once completed) and the commit is a copy
//! with `CopyMode::Create` (`S3CopyIfNotExists::Multipart`: a part copy completed with
//! `If-None-Match: *`), so a racing writer gets `AlreadyExists`, which is success once the size
//! matches.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{Stream, StreamExt};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyMode, CopyOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload,
};
use uuid::Uuid;

use crate::error::StoreError;
use crate::hash::{Expected, Hashes, MultiHasher, validate_sha256};
use crate::layout::{
    blob_path, blob_prefix, manifest_path, manifest_prefix, staging_path, staging_prefix,
};
use crate::manifest::{
    Manifest, Quarantine, QuarantineEvent, ScanRecord, SignatureStatus, Source, SourceKind,
};

/// Size of one staged part (S3 needs ≥ 5 MiB for all but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently while the next one fills.
const PARTS_IN_FLIGHT: usize = 4;
/// Read size for local files (imports).
const READ_CHUNK: usize = 4 << 20;

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    /// A local directory (the default).
    Local(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Location),
}

/// An S3 bucket and prefix; credentials come from the standard `AWS_*` environment only.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix under which the layout lives (may be empty).
    pub prefix: String,
    /// Endpoint for S3-compatible services (MinIO, Ceph, moto).
    pub endpoint: Option<String>,
    /// Region (defaults to the environment's).
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub allow_http: bool,
}

/// Bytes written to `staging/<uuid>`, hashed, not yet committed.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) path: Path,
    pub(crate) size: u64,
    pub(crate) hashes: Hashes,
    /// Already fsynced by whoever staged it (the local path); the commit need not do it again.
    pub(crate) synced: bool,
}

/// The content-addressed firmware store over `object_store` (local disk or S3).
#[derive(Clone)]
pub struct FirmwareStore {
    inner: Arc<Inner>,
}

struct Inner {
    os: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    manifest_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for FirmwareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirmwareStore")
            .field("store", &self.inner.os.to_string())
            .field("local_root", &self.inner.local_root)
            .finish()
    }
}

impl FirmwareStore {
    /// Opens the store at `location` (creating the local directory if needed).
    pub fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        match location {
            StoreLocation::Local(root) => Self::local(root),
            StoreLocation::S3(s3) => Self::s3(s3),
        }
    }

    /// A store in a local directory.
    pub fn local(root: impl AsRef<FsPath>) -> Result<Self, StoreError> {
        let root = root.as_ref();
        std::fs::create_dir_all(root.join("staging"))
            .map_err(|e| StoreError::io(root.display(), e))?;
        let root = root
            .canonicalize()
            .map_err(|e| StoreError::io(root.display(), e))?;
        let fs = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self::from_parts(Arc::new(fs), Some(root)))
    }

    /// A store in an S3 bucket (conditional put and conditional copy enabled).
    pub fn s3(location: &S3Location) -> Result<Self, StoreError> {
        Self::s3_with(location, |b| b)
    }

    /// Like [`FirmwareStore::s3`], letting the caller adjust the builder (credentials in tests, client options).
    pub fn s3_with(
        location: &S3Location,
        configure: impl FnOnce(AmazonS3Builder) -> AmazonS3Builder,
    ) -> Result<Self, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
            .with_allow_http(location.allow_http);
        if let Some(endpoint) = &location.endpoint {
            b = b.with_endpoint(endpoint);
        }
        if let Some(region) = &location.region {
            b = b.with_region(region);
        }
        let s3 = configure(b).build()?;
        let prefix = location.prefix.trim_matches('/');
        let os: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self::from_parts(os, None))
    }

    /// A store over any object store; `local_root` only when it is a `LocalFileSystem` there (for fsync).
    pub fn from_parts(os: Arc<dyn ObjectStore>, local_root: Option<PathBuf>) -> Self {
        FirmwareStore {
            inner: Arc::new(Inner {
                os,
                local_root,
                manifest_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The local directory, when the store is on local disk (downloads keep `.part` files under it).
    pub fn local_root(&self) -> Option<&FsPath> {
        self.inner.local_root.as_deref()
    }

    /// The underlying object store, for callers that list or serve objects themselves.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.os
    }

    /// Whether a blob with this digest is stored.
    pub async fn has_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        validate_sha256(sha256)?;
        match self.inner.os.head(&blob_path(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Imports a file, or every regular file under a directory, for air-gapped sites (source `import`).
    ///
    /// Returns one result per file, so one unreadable file does not hide the others.
    pub async fn import(
        &self,
        path: impl AsRef<FsPath>,
    ) -> Result<Vec<(PathBuf, Result<Manifest, StoreError>)>, StoreError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| StoreError::io(path.display(), e))?;
        let files = if meta.is_dir() {
            walk_files(path)?
        } else {
            vec![path.to_path_buf()]
        };
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            let r = self.import_file(&f, &Expected::default()).await;
            out.push((f, r));
        }
        Ok(out)
    }

    /// Imports one file, checked against `expected` (e.g. a sidecar checksum) before it is committed.
    pub async fn import_file(
        &self,
        path: impl AsRef<FsPath>,
        expected: &Expected,
    ) -> Result<Manifest, StoreError> {
        let path = path.as_ref();
        let staged = self
            .stage_file(path, MultiHasher::for_expected(expected), None)
            .await?;
        let source = Source {
            kind: SourceKind::Import,
            catalog: None,
            entry: None,
            url: Some(path.display().to_string()),
            fetched_at: Utc::now(),
            expected: expected.clone(),
            hashes: staged.hashes.clone(),
            size: staged.size,
            etag: None,
        };
        self.commit(staged, source).await
    }

    /// Copies a local file into `staging/<uuid>` while hashing it: on local disk with
    /// [`crate::local::stage_reader`] (plain `read`/`write`, fsynced), elsewhere through
    /// [`FirmwareStore::stage_stream`].
    pub(crate) async fn stage_file(
        &self,
        file: &FsPath,
        hasher: MultiHasher,
        cap: Option<u64>,
    ) -> Result<Staged, StoreError> {
        let Some(root) = self.inner.local_root.clone() else {
            let stream = read_file_stream(file.to_path_buf())?;
            return self.stage_stream(stream, hasher, cap).await;
        };
        let name = file.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let staged = crate::local::stage_file(&root, &name, hasher, cap)?;
            Ok(Staged {
                path: staged.path,
                size: staged.size,
                hashes: staged.hashes,
                synced: true,
            })
        })
        .await
        .map_err(|e| StoreError::Internal(format!("staging task: {e}")))?
    }

    /// Streams `input` into `staging/<uuid>` while hashing it on a separate thread.
    pub(crate) async fn stage_stream<S>(
        &self,
        input: S,
        hasher: MultiHasher,
        cap: Option<u64>,
    ) -> Result<Staged, StoreError>
    where
        S: Stream<Item = Result<Bytes, StoreError>> + Send + Unpin,
    {
        let path = staging_path(Uuid::new_v4());
        let mut upload = self.inner.os.put_multipart(&path).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let hash_task = tokio::task::spawn_blocking(move || {
            let mut h = hasher;
            while let Some(b) = rx.blocking_recv() {
                h.update(&b);
            }
            h.finish()
        });
        let pumped = pump(upload.as_mut(), input, tx, cap).await;
        let size = match pumped {
            Ok(size) => match upload.complete().await {
                Ok(_) => size,
                Err(e) => {
                    let _ = upload.abort().await;
                    let _ = self.inner.os.delete(&path).await;
                    return Err(e.into());
                }
            },
            Err(e) => {
                let _ = upload.abort().await;
                return Err(e);
            }
        };
        let hashes = match hash_task.await {
            Ok(h) => h,
            Err(e) => {
                let _ = self.inner.os.delete(&path).await;
                return Err(StoreError::Internal(format!("hash task: {e}")));
            }
        };
        Ok(Staged {
            path,
            size,
            hashes,
            synced: false,
        })
    }

    /// Moves an already hashed local file (a finished `.part`) into staging: a rename on local disk, an upload otherwise.
    pub(crate) async fn stage_local_file(
        &self,
        file: &FsPath,
        size: u64,
        hashes: &Hashes,
        expected: &Expected,
    ) -> Result<Staged, StoreError> {
        if let Some(root) = &self.inner.local_root {
            let path = staging_path(Uuid::new_v4());
            let target = root.join(path.as_ref());
            match tokio::fs::rename(file, &target).await {
                Ok(()) => {
                    // The downloader fsynced the `.part` before handing it over.
                    return Ok(Staged {
                        path,
                        size,
                        hashes: hashes.clone(),
                        synced: true,
                    });
                }
                Err(e) => tracing::debug!(error = %e, "rename into staging failed; copying"),
            }
        }
        let staged = self
            .stage_file(file, MultiHasher::for_expected(expected), None)
            .await?;
        if staged.hashes.sha256 != hashes.sha256 {
            let _ = self.inner.os.delete(&staged.path).await;
            return Err(StoreError::ChecksumMismatch {
                algorithm: crate::hash::HashAlgorithm::Sha256,
                expected: hashes.sha256.clone(),
                actual: staged.hashes.sha256.clone(),
                actual_sha256: staged.hashes.sha256,
            });
        }
        Ok(staged)
    }

    /// Checks the staged bytes against the source's announcement, links them under `blobs/` once, and records the source.
    ///
    /// On a mismatch (FW-INT-001) the staged bytes are deleted and nothing is written under `blobs/`.
    pub(crate) async fn commit(
        &self,
        staged: Staged,
        source: Source,
    ) -> Result<Manifest, StoreError> {
        let os = &self.inner.os;
        if let Err(e) = source.expected.check(staged.size, &staged.hashes) {
            let _ = os.delete(&staged.path).await;
            return Err(e);
        }
        let sha = staged.hashes.sha256.clone();
        let blob = blob_path(&sha);
        let linked = async {
            if let Some(root) = &self.inner.local_root
                && !staged.synced
            {
                fsync(root.join(staged.path.as_ref()), false).await?;
            }
            let opts = CopyOptions::new().with_mode(CopyMode::Create);
            match os.copy_opts(&staged.path, &blob, opts).await {
                Ok(()) => {}
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let existing = os.head(&blob).await?.size;
                    if existing != staged.size {
                        return Err(StoreError::BlobConflict {
                            sha256: sha.clone(),
                            existing,
                            expected: staged.size,
                        });
                    }
                    tracing::debug!(sha256 = %sha, "blob already stored");
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(root) = &self.inner.local_root {
                let file = root.join(blob.as_ref());
                if let Some(dir) = file.parent() {
                    fsync(dir.to_path_buf(), true).await?;
                    if let Some(up) = dir.parent() {
                        fsync(up.to_path_buf(), true).await?;
                    }
                }
            }
            Ok(())
        }
        .await;
        let _ = os.delete(&staged.path).await;
        linked?;
        self.update_manifest_with(&sha, |m| match m {
            Some(mut m) => {
                m.add_source(source);
                Ok(m)
            }
            None => Ok(Manifest::new(source)),
        })
        .await
    }

    /// Adds a provenance record to an existing blob's manifest (no bytes moved).
    pub(crate) async fn add_source(
        &self,
        sha256: &str,
        source: Source,
    ) -> Result<Manifest, StoreError> {
        self.update_existing(sha256, move |m| m.add_source(source))
            .await
    }

    /// The manifest of a blob, if stored.
    pub async fn manifest(&self, sha256: &str) -> Result<Option<Manifest>, StoreError> {
        validate_sha256(sha256)?;
        match self.inner.os.get(&manifest_path(sha256)).await {
            Ok(r) => {
                let bytes = r.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Manifest {
                        sha256: sha256.to_string(),
                        source,
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every digest that has a manifest.
    pub async fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut listing = self.inner.os.list(Some(&manifest_prefix()));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if let Some(name) = meta.location.filename()
                && let Some(sha) = name.strip_suffix(".json")
                && validate_sha256(sha).is_ok()
            {
                out.push(sha.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Records a package-signature verdict (a valid one makes the blob `verified-signature`).
    pub async fn set_signature(
        &self,
        sha256: &str,
        status: SignatureStatus,
    ) -> Result<Manifest, StoreError> {
        self.update_existing(sha256, move |m| m.set_signature(status))
            .await
    }

    /// Records the scanner's last scan (rule-pack version and summary are opaque JSON).
    pub async fn record_scan(
        &self,
        sha256: &str,
        rule_pack: serde_json::Value,
        result: serde_json::Value,
    ) -> Result<Manifest, StoreError> {
        self.update_existing(sha256, move |m| {
            m.last_scan = Some(ScanRecord {
                at: Utc::now(),
                rule_pack,
                result,
            })
        })
        .await
    }

    /// Quarantines a blob (a critical finding, or an operator); it stays stored but is not installable.
    pub async fn quarantine(
        &self,
        sha256: &str,
        reason: &str,
        by: &str,
    ) -> Result<Manifest, StoreError> {
        let (reason, by, at) = (reason.to_string(), by.to_string(), Utc::now());
        self.update_existing(sha256, move |m| {
            m.quarantine_log.push(QuarantineEvent {
                action: "quarantine".into(),
                reason: reason.clone(),
                by: by.clone(),
                at,
            });
            m.quarantine = Some(Quarantine { reason, by, at });
        })
        .await
    }

    /// Lifts a quarantine; the reason is kept in the manifest's audit trail.
    pub async fn release(
        &self,
        sha256: &str,
        reason: &str,
        by: &str,
    ) -> Result<Manifest, StoreError> {
        let (reason, by, at) = (reason.to_string(), by.to_string(), Utc::now());
        self.update_existing(sha256, move |m| {
            m.quarantine_log.push(QuarantineEvent {
                action: "release".into(),
                reason,
                by,
                at,
            });
            m.quarantine = None;
        })
        .await
    }

    /// Deletes staging objects older than `before` (left by crashed writers).
    pub async fn clean_staging(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut listing = self.inner.os.list(Some(&staging_prefix()));
        let mut old = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified < before {
                old.push(meta.location);
            }
        }
        drop(listing);
        for p in &old {
            match self.inner.os.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(old.len())
    }

    /// Blobs without a manifest last written before `before` (a writer stopped between the
    /// blob and its manifest, or a manifest was deleted by hand): deleted unless `dry_run`.
    /// Returns their digests.
    pub async fn clean_orphans(
        &self,
        before: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<String>, StoreError> {
        let known: std::collections::HashSet<String> = self.list().await?.into_iter().collect();
        let mut listing = self.inner.os.list(Some(&blob_prefix()));
        let mut orphans = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            if validate_sha256(name).is_ok() && !known.contains(name) && meta.last_modified < before
            {
                orphans.push((name.to_string(), meta.location.clone()));
            }
        }
        drop(listing);
        if !dry_run {
            for (_, p) in &orphans {
                match self.inner.os.delete(p).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(orphans.into_iter().map(|(sha, _)| sha).collect())
    }

    async fn update_existing(
        &self,
        sha256: &str,
        f: impl FnOnce(&mut Manifest),
    ) -> Result<Manifest, StoreError> {
        validate_sha256(sha256)?;
        let sha = sha256.to_string();
        self.update_manifest_with(sha256, move |m| match m {
            Some(mut m) => {
                f(&mut m);
                Ok(m)
            }
            None => Err(StoreError::NotFound(sha)),
        })
        .await
    }

    /// Read-modify-write of one manifest, serialised per digest within this process.
    async fn update_manifest_with(
        &self,
        sha256: &str,
        f: impl FnOnce(Option<Manifest>) -> Result<Manifest, StoreError>,
    ) -> Result<Manifest, StoreError> {
        let lock = {
            let mut locks = self
                .inner
                .manifest_locks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks.entry(sha256.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let current = self.manifest(sha256).await?;
        let updated = f(current)?;
        let json = serde_json::to_vec_pretty(&updated).map_err(|source| StoreError::Manifest {
            sha256: sha256.to_string(),
            source,
        })?;
        let path = manifest_path(sha256);
        self.inner
            .os
            .put_opts(
                &path,
                PutPayload::from(json),
                PutOptions::from(PutMode::Overwrite),
            )
            .await?;
        if let Some(root) = &self.inner.local_root {
            let file = root.join(path.as_ref());
            fsync(file.clone(), false).await?;
            if let Some(dir) = file.parent() {
                fsync(dir.to_path_buf(), true).await?;
            }
        }
        Ok(updated)
    }
}

/// Feeds `input` into `upload` in parts (several in flight) and each chunk to the hasher.
async fn pump<S>(
    upload: &mut dyn MultipartUpload,
    mut input: S,
    hasher: tokio::sync::mpsc::Sender<Bytes>,
    cap: Option<u64>,
) -> Result<u64, StoreError>
where
    S: Stream<Item = Result<Bytes, StoreError>> + Unpin,
{
    let mut size = 0u64;
    let mut part: Vec<Bytes> = Vec::new();
    let mut pending = 0usize;
    let mut in_flight = FuturesUnordered::new();
    let mut parts_sent = 0usize;
    while let Some(chunk) = input.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if let Some(cap) = cap
            && size > cap
        {
            return Err(StoreError::TooLarge { cap });
        }
        hasher
            .send(chunk.clone())
            .await
            .map_err(|_| StoreError::Internal("hash task ended early".into()))?;
        pending += chunk.len();
        part.push(chunk);
        if pending >= PART_SIZE {
            let payload: PutPayload = std::mem::take(&mut part).into_iter().collect();
            pending = 0;
            in_flight.push(tokio::spawn(upload.put_part(payload)));
            parts_sent += 1;
            while in_flight.len() >= PARTS_IN_FLIGHT {
                join_part(in_flight.next().await)?;
            }
        }
    }
    if pending > 0 || parts_sent == 0 {
        let payload: PutPayload = part.into_iter().collect();
        in_flight.push(tokio::spawn(upload.put_part(payload)));
    }
    while let Some(done) = in_flight.next().await {
        join_part(Some(done))?;
    }
    Ok(size)
}

fn join_part(
    done: Option<Result<object_store::Result<()>, tokio::task::JoinError>>,
) -> Result<(), StoreError> {
    match done {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e.into()),
        Some(Err(e)) => Err(StoreError::Internal(format!("upload task: {e}"))),
    }
}

/// Reads a local file on a blocking thread in large chunks.
pub(crate) fn read_file_stream(
    path: PathBuf,
) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
    use std::io::Read;
    let mut file = std::fs::File::open(&path).map_err(|e| StoreError::io(path.display(), e))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = BytesMut::zeroed(READ_CHUNK);
            let mut filled = 0;
            while filled < buf.len() {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(StoreError::io(path.display(), e)));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            if tx.blocking_send(Ok(buf.freeze())).is_err() {
                return;
            }
        }
    });
    Ok(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed())
}

/// fsyncs a file or directory on a blocking thread.
async fn fsync(path: PathBuf, _dir: bool) -> Result<(), StoreError> {
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io(path.display(), e))
    })
    .await
    .map_err(|e| StoreError::Internal(format!("fsync task: {e}")))?
}

/// Regular files under `dir`, depth first, symlinks not followed.
fn walk_files(dir: &FsPath) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|e| StoreError::io(d.display(), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| StoreError::io(d.display(), e))?;
            let ft = entry
                .file_type()
                .map_err(|e| StoreError::io(entry.path().display(), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}
