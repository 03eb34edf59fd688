//! Sync against a local HTTP server: 200 then 304 (ETag and Last-Modified), the exact diff of a
//! changed catalog, the last good copy kept on failure, and LVFS jcat-first fetching.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use automata_fwcatalog::sync::{load_snapshot, sync_with};
use automata_fwcatalog::{CatalogError, CatalogFormat, CatalogSource, SyncOutcome};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::*;

#[derive(Clone, Default)]
struct Doc {
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// (path, If-None-Match, If-Modified-Since) of each request.
type RequestLog = Vec<(String, Option<String>, Option<String>)>;

#[derive(Clone, Default)]
struct Server {
    docs: Arc<Mutex<HashMap<String, Doc>>>,
    log: Arc<Mutex<RequestLog>>,
}

impl Server {
    fn put(&self, path: &str, doc: Doc) {
        self.docs
            .lock()
            .expect("lock")
            .insert(path.to_string(), doc);
    }
    fn requests(&self) -> RequestLog {
        self.log.lock().expect("lock").clone()
    }
}

async fn serve_doc(
    State(s): State<Server>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let h = |n: header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let inm = h(header::IF_NONE_MATCH);
    let ims = h(header::IF_MODIFIED_SINCE);
    s.log
        .lock()
        .expect("lock")
        .push((path.clone(), inm.clone(), ims.clone()));
    let Some(doc) = s.docs.lock().expect("lock").get(&path).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let not_modified = match (&doc.etag, &inm, &doc.last_modified, &ims) {
        (Some(e), Some(i), _, _) => e == i,
        (None, None, Some(l), Some(i)) => l == i,
        _ => false,
    };
    let mut out = HeaderMap::new();
    if let Some(e) = &doc.etag {
        out.insert(header::ETAG, e.parse().expect("etag"));
    }
    if let Some(l) = &doc.last_modified {
        out.insert(header::LAST_MODIFIED, l.parse().expect("lm"));
    }
    if not_modified {
        return (StatusCode::NOT_MODIFIED, out).into_response();
    }
    (StatusCode::OK, out, doc.body).into_response()
}

async fn start() -> (Server, String) {
    let s = Server::default();
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::get(serve_doc))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (s, format!("http://{addr}"))
}

fn catalog(entries: &[(&str, &str)]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(id, v)| serde_json::json!({"id": id, "url": format!("https://fw.example/{id}.bin"), "component": "bios", "version": v, "models": ["R1"]}))
        .collect();
    serde_json::to_vec(&list).expect("json")
}

fn keys(list: &[automata_fwcatalog::CatalogEntry]) -> Vec<String> {
    list.iter().map(|e| e.key()).collect()
}

#[tokio::test]
async fn etag_200_then_304_then_exact_diff_and_last_good_kept() {
    let (srv, base) = start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let snap_path = dir.path().join("snapshots/ops.json");
    let mut source = CatalogSource::new(
        "ops",
        format!("{base}/catalog.json"),
        CatalogFormat::Generic,
    );
    source.snapshot_path = Some(snap_path.clone());
    let client = reqwest::Client::new();

    srv.put(
        "catalog.json",
        Doc {
            body: catalog(&[("a", "1.0"), ("b", "2.0"), ("c", "3.0")]),
            etag: Some("\"v1\"".into()),
            last_modified: None,
        },
    );
    let SyncOutcome::Updated {
        snapshot: first,
        diff,
    } = sync_with(&client, &source, None).await
    else {
        panic!("first sync must update");
    };
    assert_eq!(keys(&diff.added), vec!["ops/a", "ops/b", "ops/c"]);
    assert!(diff.changed.is_empty() && diff.removed.is_empty());
    assert_eq!(first.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        load_snapshot(&snap_path).expect("load").as_ref(),
        Some(&first)
    );

    let again = sync_with(&client, &source, Some(&first)).await;
    assert!(matches!(again, SyncOutcome::NotModified), "{again:?}");
    assert_eq!(
        srv.requests().last().and_then(|r| r.1.clone()).as_deref(),
        Some("\"v1\"")
    );

    srv.put(
        "catalog.json",
        Doc {
            body: catalog(&[("a", "1.0"), ("b", "2.1"), ("d", "4.0")]),
            etag: Some("\"v2\"".into()),
            last_modified: None,
        },
    );
    let SyncOutcome::Updated {
        snapshot: second,
        diff,
    } = sync_with(&client, &source, Some(&first)).await
    else {
        panic!("changed catalog must update");
    };
    assert_eq!(keys(&diff.added), vec!["ops/d"]);
    assert_eq!(diff.changed.len(), 1);
    assert_eq!(diff.changed[0].before.version, "2.0");
    assert_eq!(diff.changed[0].after.version, "2.1");
    assert_eq!(keys(&diff.removed), vec!["ops/c"]);
    let saved = std::fs::read(&snap_path).expect("saved");

    // A broken catalog: the sync fails by name and the last good snapshot stays as it was.
    let mut broken = catalog(&[("a", "1.0")]);
    broken.truncate(broken.len() - 5);
    srv.put(
        "catalog.json",
        Doc {
            body: broken,
            etag: Some("\"v3\"".into()),
            last_modified: None,
        },
    );
    let failed = sync_with(&client, &source, Some(&second)).await;
    let SyncOutcome::Failed { error } = failed else {
        panic!("must fail: {failed:?}")
    };
    assert!(matches!(error, CatalogError::Json { .. }), "{error}");
    assert_eq!(std::fs::read(&snap_path).expect("kept"), saved);
    let leftovers: Vec<_> = std::fs::read_dir(snap_path.parent().expect("dir"))
        .expect("ls")
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");

    // A 404 is a named error too.
    let missing = CatalogSource::new("ops", format!("{base}/nope.json"), CatalogFormat::Generic);
    assert!(matches!(
        sync_with(&client, &missing, None).await,
        SyncOutcome::Failed {
            error: CatalogError::HttpStatus { status: 404, .. }
        }
    ));
}

#[tokio::test]
async fn if_modified_since_without_etag() {
    let (srv, base) = start().await;
    let lm = "Wed, 21 Oct 2026 07:28:00 GMT";
    srv.put(
        "fwrepodata/fwrepo.json",
        Doc {
            body: read("hpe-fwrepo.json"),
            etag: None,
            last_modified: Some(lm.into()),
        },
    );
    let source = CatalogSource::new(
        "hpe",
        format!("{base}/fwrepodata/fwrepo.json"),
        CatalogFormat::HpeSdr { base_url: None },
    );
    let client = reqwest::Client::new();
    let SyncOutcome::Updated { snapshot, .. } = sync_with(&client, &source, None).await else {
        panic!("update")
    };
    let e = snapshot
        .entries
        .get("hpe/test-firmware-v1.0.0.fwpkg")
        .expect("entry");
    assert_eq!(
        e.url.as_deref(),
        Some(format!("{base}/test-firmware-v1.0.0.fwpkg").as_str())
    );
    assert!(matches!(
        sync_with(&client, &source, Some(&snapshot)).await,
        SyncOutcome::NotModified
    ));
    assert_eq!(
        srv.requests().last().and_then(|r| r.2.clone()).as_deref(),
        Some(lm)
    );
}

#[tokio::test]
async fn lvfs_jcat_first_then_immutable_metadata() {
    let (srv, base) = start().await;
    let meta = gzip(&read("lvfs-metadata.xml"));
    let newer = gzip(b"<components origin=\"lvfs\"></components>");
    // The alias has already moved on (the CDN race); the jcat still names the older real file.
    srv.put(
        "downloads/firmware.xml.gz",
        Doc {
            body: newer,
            etag: Some("\"new\"".into()),
            last_modified: None,
        },
    );
    srv.put(
        "downloads/firmware-07078-stable.xml.gz",
        Doc {
            body: meta.clone(),
            etag: Some("\"m1\"".into()),
            last_modified: None,
        },
    );
    srv.put(
        "downloads/firmware.xml.gz.jcat",
        Doc {
            body: jcat(
                "firmware-07078-stable.xml.gz",
                &["firmware.xml.gz"],
                &[(1, sha256(&meta))],
            ),
            etag: None,
            last_modified: None,
        },
    );
    let source = CatalogSource::new(
        "lvfs",
        format!("{base}/downloads/firmware.xml.gz"),
        CatalogFormat::Lvfs {
            jcat_url: None,
            firmware_base_url: Some("https://fwupd.org/downloads".into()),
            // Signed metadata under the LVFS CA is tested in lvfs_jcat.rs on fwupd's own files.
            require_signature: false,
            trust_roots: Vec::new(),
        },
    );
    let client = reqwest::Client::new();
    let out = sync_with(&client, &source, None).await;
    let SyncOutcome::Updated { snapshot, diff } = out else {
        panic!("update: {out:?}")
    };
    assert_eq!(
        snapshot.url,
        format!("{base}/downloads/firmware-07078-stable.xml.gz")
    );
    assert_eq!(diff.added.len(), 2);
    assert_eq!(
        snapshot.jcat.as_ref().map(|j| j.item_id.as_str()),
        Some("firmware-07078-stable.xml.gz")
    );
    let reqs: Vec<String> = srv.requests().into_iter().map(|r| r.0).collect();
    assert_eq!(
        reqs,
        vec![
            "downloads/firmware.xml.gz.jcat",
            "downloads/firmware-07078-stable.xml.gz"
        ]
    );
    assert!(matches!(
        sync_with(&client, &source, Some(&snapshot)).await,
        SyncOutcome::NotModified
    ));

    // A jcat whose item does not name the metadata: the race, reported by name.
    srv.put(
        "downloads/firmware.xml.gz.jcat",
        Doc {
            body: jcat(
                "firmware-07077-stable.xml.gz",
                &["firmware-old.xml.gz"],
                &[(1, sha256(&meta))],
            ),
            etag: None,
            last_modified: None,
        },
    );
    assert!(matches!(
        sync_with(&client, &source, Some(&snapshot)).await,
        SyncOutcome::Failed {
            error: CatalogError::JcatItemMissing { .. }
        }
    ));
    // A jcat whose digest does not match the body.
    srv.put(
        "downloads/firmware.xml.gz.jcat",
        Doc {
            body: jcat("firmware.xml.gz", &[], &[(1, sha256(b"other"))]),
            etag: None,
            last_modified: None,
        },
    );
    assert!(matches!(
        sync_with(&client, &source, None).await,
        SyncOutcome::Failed {
            error: CatalogError::JcatChecksumMismatch { .. }
        }
    ));
    // A PKCS#7 blob that is not a signature over the body: refused, the last good copy kept.
    srv.put(
        "downloads/firmware.xml.gz.jcat",
        Doc {
            body: jcat(
                "firmware-07078-stable.xml.gz",
                &["firmware.xml.gz"],
                &[
                    (1, sha256(&meta)),
                    (
                        3,
                        "-----BEGIN PKCS7-----\nMAA=\n-----END PKCS7-----\n".into(),
                    ),
                ],
            ),
            etag: None,
            last_modified: None,
        },
    );
    assert!(matches!(
        sync_with(&client, &source, None).await,
        SyncOutcome::Failed {
            error: CatalogError::JcatSignatureInvalid { .. }
        }
    ));
}

#[tokio::test]
async fn dell_catalog_over_http() {
    let (srv, base) = start().await;
    srv.put(
        "catalog/Catalog.xml.gz",
        Doc {
            body: read("Catalog.xml.gz"),
            etag: Some("\"d1\"".into()),
            last_modified: None,
        },
    );
    let mut source = CatalogSource::new(
        "dell",
        format!("{base}/catalog/Catalog.xml.gz"),
        CatalogFormat::Dell,
    );
    let client = reqwest::Client::new();
    let SyncOutcome::Updated { snapshot, .. } = sync_with(&client, &source, None).await else {
        panic!("update")
    };
    assert_eq!(snapshot.entries.len(), 2);
    assert!(snapshot.entries.contains_key("dell/7K3MN"));
    source.max_bytes = 10;
    assert!(matches!(
        sync_with(&client, &source, None).await,
        SyncOutcome::Failed {
            error: CatalogError::TooLarge { .. }
        }
    ));
}

#[tokio::test]
async fn generic_entries_get_hashes_from_supermicro_checksum_txt() {
    let (srv, base) = start().await;
    let yaml = format!(
        "- id: bios\n  url: https://www.supermicro.com/Bios/softfiles/14075/BIOS_X11SCH-F-1B11_20210525_1.6_STDsp.zip\n  checksum_url: {base}/softfiles/14075/checksum.txt\n  component: bios\n  version: \"1.6\"\n- id: bmc\n  url: https://x/BMC.zip\n  checksum_url: {base}/softfiles/missing/checksum.txt\n  component: bmc\n  version: \"1.0\"\n"
    );
    srv.put(
        "catalog.yaml",
        Doc {
            body: yaml.into_bytes(),
            etag: None,
            last_modified: None,
        },
    );
    srv.put(
        "softfiles/14075/checksum.txt",
        Doc {
            body: read("supermicro-checksum-2.txt"),
            etag: None,
            last_modified: None,
        },
    );
    let source = CatalogSource::new(
        "smc",
        format!("{base}/catalog.yaml"),
        CatalogFormat::Generic,
    );
    let out = sync_with(&reqwest::Client::new(), &source, None).await;
    let SyncOutcome::Updated { snapshot, .. } = out else {
        panic!("update: {out:?}")
    };
    assert_eq!(
        snapshot.entries["smc/bios"].hashes.md5.as_deref(),
        Some("9cd49a78f10d513f43f861e674d51c10")
    );
    assert_eq!(
        snapshot.entries["smc/bmc"].hashes.md5, None,
        "an unusable checksum.txt leaves the entry unverified"
    );
}

#[tokio::test]
async fn lenovo_directory_over_http_reads_every_package_its_listing_names() {
    let (srv, base) = start().await;
    let doc = |body: Vec<u8>| Doc {
        body,
        etag: None,
        last_modified: None,
    };
    // An Apache/nginx-style index page: sort links, the parent, a stray README and two packages.
    let listing = r#"<html><body><h1>Index of /lenovo</h1>
        <a href="?C=N;O=D">Name</a> <a href="../">Parent Directory</a>
        <a href="README.txt">README.txt</a>
        <a href="lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml">lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml</a>
        <a href='lnvgy_fw_uefi_ive184j-3.30_anyos_comp.zip'>lnvgy_fw_uefi_ive184j-3.30_anyos_comp.zip</a>
        <a href="https://elsewhere.example/lnvgy_fw_evil-1.0_anyos_noarch.xml">elsewhere</a>
        </body></html>"#;
    srv.put("lenovo/", doc(listing.as_bytes().to_vec()));
    srv.put(
        "lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml",
        doc(read("lenovo/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch.xml")),
    );
    let index = br#"{"version":"3.30","machineTypes":["7D73"],"severity":"recommended"}"#;
    srv.put(
        "lenovo/lnvgy_fw_uefi_ive184j-3.30_anyos_comp.zip",
        doc(zip(&[("index.json", index)])),
    );
    let source = CatalogSource::new("lnv", format!("{base}/lenovo/"), CatalogFormat::Lenovo);
    let out = sync_with(&reqwest::Client::new(), &source, None).await;
    let SyncOutcome::Updated { snapshot, diff } = out else {
        panic!("update: {out:?}")
    };
    assert_eq!(
        snapshot.entries.keys().collect::<Vec<_>>(),
        [
            "lnv/lnvgy_fw_uefi_ive184j-3.30_anyos_comp",
            "lnv/lnvgy_fw_xcc_cdi3a4e-8.30_anyos_noarch"
        ]
    );
    assert_eq!(diff.added.len(), 2);
    let uefi = &snapshot.entries["lnv/lnvgy_fw_uefi_ive184j-3.30_anyos_comp"];
    assert_eq!(
        uefi.url.as_deref(),
        Some(format!("{base}/lenovo/lnvgy_fw_uefi_ive184j-3.30_anyos_comp.zip").as_str())
    );
    assert!(uefi.hashes.sha256.is_some());
    let fetched: Vec<String> = srv.requests().into_iter().map(|r| r.0).collect();
    assert!(
        !fetched
            .iter()
            .any(|p| p.contains("README") || p.contains("evil"))
    );

    // A package the listing names but the server lacks fails the sync; nothing half-read stands.
    srv.put(
        "lenovo/",
        doc(format!("{listing}<a href=\"lnvgy_fw_gone-1.0_anyos_noarch.xml\">x</a>").into_bytes()),
    );
    assert!(matches!(
        sync_with(&reqwest::Client::new(), &source, Some(&snapshot)).await,
        SyncOutcome::Failed {
            error: CatalogError::HttpStatus { status: 404, .. }
        }
    ));
}
