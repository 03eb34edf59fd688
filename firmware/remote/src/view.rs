//! The remote as files: which stored blobs it offers (installable LVFS cabs), the metadata that
//! describes them and its signed jcat, rebuilt only when the store changes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automata_fwstore::{BlobRange, FirmwareStore, Manifest, is_installable};
use futures::StreamExt;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::RemoteError;
use crate::jcat::signed_jcat;
use crate::metadata::{CabFile, Component, metadata_xml};
use crate::signing::SigningIdentity;

/// The metadata's file name; fwupd fetches `<MetadataURI>.jcat` beside it.
pub const METADATA_FILE: &str = "metadata.xml.zst";
/// The jcat's file name.
pub const JCAT_FILE: &str = "metadata.xml.zst.jcat";
/// The largest cab the view reads to find its metainfo (LVFS caps uploads well below this).
pub const MAX_CAB: u64 = 1 << 30;
/// How long a built view is served before the store is listed again.
const RECHECK: Duration = Duration::from_secs(5);

/// The files of the remote at one moment.
#[derive(Debug, Clone)]
pub struct RemoteView {
    /// `metadata.xml.zst`.
    pub metadata: Vec<u8>,
    /// `metadata.xml.zst.jcat`, signed.
    pub jcat: Vec<u8>,
    /// Download name (`<sha256>-<name>.cab`, beside the metadata) → blob SHA-256.
    pub files: BTreeMap<String, String>,
    /// Stored blobs left out, with why (not a cab, not installable, unreadable metainfo).
    pub skipped: BTreeMap<String, String>,
    /// A digest of the store state the view was built from.
    pub state: String,
}

impl RemoteView {
    /// The blob behind a download name, if the view offers it.
    pub fn blob_for(&self, file: &str) -> Option<&str> {
        self.files.get(file).map(String::as_str)
    }
}

/// What one blob contributes, cached by its SHA-256 (blobs never change).
#[derive(Debug, Clone)]
enum Offer {
    Cab(CabFile, Vec<Component>),
    Skip(String),
}

/// Builds views and keeps the last one; cheap to clone and share between requests.
#[derive(Clone)]
pub struct RemoteBuilder {
    store: FirmwareStore,
    identity: Arc<SigningIdentity>,
    origin: String,
    inner: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for RemoteBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBuilder")
            .field("identity", &self.identity)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Cache {
    offers: HashMap<String, Offer>,
    last: Option<(Instant, Arc<RemoteView>)>,
}

/// A safe download name for a blob: `<sha256>-<name from its source>.cab`.
fn download_name(m: &Manifest) -> String {
    let from_source = m
        .sources
        .iter()
        .filter_map(|s| s.url.as_deref())
        .filter_map(|u| u.split(['?', '#']).next())
        .filter_map(|u| u.rsplit(['/', '\\']).next())
        .find(|n| n.to_ascii_lowercase().ends_with(".cab"))
        .unwrap_or("firmware.cab");
    let clean: String = from_source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{}-{}", m.sha256, clean.trim_start_matches('.'))
}

impl RemoteBuilder {
    /// A builder over `store`, signing with `identity`; `origin` names the remote in metadata.
    pub fn new(store: FirmwareStore, identity: SigningIdentity, origin: &str) -> Self {
        Self {
            store,
            identity: Arc::new(identity),
            origin: origin.to_string(),
            inner: Arc::new(Mutex::new(Cache::default())),
        }
    }

    /// The signing identity (for its certificate).
    pub fn identity(&self) -> &SigningIdentity {
        &self.identity
    }

    /// The current view: the cached one while fresh and the store unchanged, else a new one.
    pub async fn view(&self) -> Result<Arc<RemoteView>, RemoteError> {
        let mut cache = self.inner.lock().await;
        if let Some((at, v)) = &cache.last
            && at.elapsed() < RECHECK
        {
            return Ok(v.clone());
        }
        let manifests = self.manifests().await?;
        let state = state_digest(&manifests);
        if let Some((_, v)) = &cache.last
            && v.state == state
        {
            let v = v.clone();
            cache.last = Some((Instant::now(), v.clone()));
            return Ok(v);
        }
        let view = Arc::new(self.build(&mut cache, &manifests, state).await?);
        tracing::info!(
            releases = view.files.len(),
            skipped = view.skipped.len(),
            signer = %self.identity.fingerprint(),
            "firmware remote metadata rebuilt"
        );
        cache.last = Some((Instant::now(), view.clone()));
        Ok(view)
    }

    async fn manifests(&self) -> Result<Vec<Manifest>, RemoteError> {
        let mut out = Vec::new();
        for sha in self.store.list().await? {
            if let Some(m) = self.store.manifest(&sha).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn build(
        &self,
        cache: &mut Cache,
        manifests: &[Manifest],
        state: String,
    ) -> Result<RemoteView, RemoteError> {
        let mut components = Vec::new();
        let mut files = BTreeMap::new();
        let mut skipped = BTreeMap::new();
        for m in manifests {
            if !is_installable(m, false) {
                let why = match &m.quarantine {
                    Some(q) => format!("quarantined: {}", q.reason),
                    None => format!("integrity {:?} is not installable", m.integrity),
                };
                skipped.insert(m.sha256.clone(), why);
                continue;
            }
            let offer = match cache.offers.get(&m.sha256) {
                Some(o) => o.clone(),
                None => {
                    let o = self.offer(m).await?;
                    cache.offers.insert(m.sha256.clone(), o.clone());
                    o
                }
            };
            match offer {
                Offer::Cab(cab, comps) => {
                    files.insert(cab.location.clone(), m.sha256.clone());
                    components.extend(comps);
                }
                Offer::Skip(why) => {
                    skipped.insert(m.sha256.clone(), why);
                }
            }
        }
        let xml = metadata_xml(&self.origin, components);
        let metadata = zstd::encode_all(xml.as_slice(), 19).map_err(|source| RemoteError::Io {
            path: METADATA_FILE.into(),
            source,
        })?;
        let jcat = signed_jcat(
            METADATA_FILE,
            &metadata,
            &self.identity,
            chrono::Utc::now().timestamp(),
        )?;
        Ok(RemoteView {
            metadata,
            jcat,
            files,
            skipped,
            state,
        })
    }

    /// Reads one blob: a cab with metainfo becomes an offer, anything else a skip with its reason.
    async fn offer(&self, m: &Manifest) -> Result<Offer, RemoteError> {
        if m.size > MAX_CAB {
            return Ok(Offer::Skip(format!(
                "{} bytes, above the view's cap",
                m.size
            )));
        }
        let mut body = self.store.blob_range(&m.sha256, BlobRange::Full).await?;
        let mut bytes = Vec::with_capacity(usize::try_from(m.size).unwrap_or(0));
        while let Some(chunk) = body.stream.next().await {
            bytes.write_all(&chunk?).map_err(|source| RemoteError::Io {
                path: m.sha256.clone(),
                source,
            })?;
            if bytes.len() >= 4 && !bytes.starts_with(b"MSCF") {
                return Ok(Offer::Skip("not a cabinet".into()));
            }
        }
        if !bytes.starts_with(b"MSCF") {
            return Ok(Offer::Skip("not a cabinet".into()));
        }
        let contents = match automata_fwcatalog::lvfs::read_cab("store", &bytes) {
            Ok(c) => c,
            Err(e) => return Ok(Offer::Skip(format!("unreadable cabinet: {e}"))),
        };
        let cab = CabFile {
            // A bare name: fwupd resolves it against the metadata's directory (or the remote's
            // FirmwareBaseURI) and refuses relative paths with a `/`.
            location: download_name(m),
            sha1: hex::encode(Sha1::digest(&bytes)),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        };
        let mut comps = Vec::new();
        let mut problems = Vec::new();
        for f in contents
            .files
            .iter()
            .filter(|f| f.to_ascii_lowercase().ends_with(".metainfo.xml"))
        {
            let read = automata_fwcatalog::lvfs::read_cab_member(&bytes, f)
                .map_err(|e| RemoteError::Metainfo(e.to_string()))
                .and_then(|xml| Component::from_metainfo(&xml, &cab));
            match read {
                Ok(c) => comps.push(c),
                Err(e) => problems.push(format!("{f}: {e}")),
            }
        }
        if comps.is_empty() {
            let why = if problems.is_empty() {
                "a cabinet without .metainfo.xml".to_string()
            } else {
                problems.join("; ")
            };
            return Ok(Offer::Skip(why));
        }
        Ok(Offer::Cab(cab, comps))
    }
}

/// Digest over what decides the view: each blob, whether it is installable.
fn state_digest(manifests: &[Manifest]) -> String {
    let mut h = Sha256::new();
    for m in manifests {
        h.update(m.sha256.as_bytes());
        h.update([u8::from(is_installable(m, false))]);
    }
    hex::encode(h.finalize())
}
