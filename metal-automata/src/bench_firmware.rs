//! `metal-automata bench firmware`: store ingest against `openssl dgst -sha256`, the scan of the
//! OVMF images against `UEFIExtract`, the UTF-16 Dell catalog parse, and Secure Boot findings for
//! a simulated fleet, in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use automata_fwscan::esl::{SignatureData, SignatureEntry};
use automata_fwscan::{Guid, Limits, RulePack, SecureBootDb, Source, vss};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

/// `bench firmware` options.
#[derive(Debug, clap::Args)]
pub struct FirmwareBenchArgs {
    /// Size of the ingested file, MiB.
    #[arg(long, default_value_t = 1024)]
    pub ingest_mib: u64,
    /// Where the Debian `ovmf` images are.
    #[arg(long, default_value = "/usr/share/OVMF")]
    pub ovmf_dir: PathBuf,
    /// Size of the synthetic UTF-16 Dell catalog, MB.
    #[arg(long, default_value_t = 50)]
    pub catalog_mb: usize,
    /// Simulated servers for the Secure Boot findings.
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// Rounds of the scan comparison (the best counts).
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
}

/// One line of the result: a figure, its peer and the goal.
#[derive(Debug, Clone, Serialize)]
pub struct BenchLine {
    /// What was measured.
    pub what: String,
    /// Our figure, in `unit`.
    pub ours: f64,
    /// The peer's figure, when there is one.
    pub peer: Option<f64>,
    /// The peer's name.
    pub peer_name: Option<String>,
    /// Unit of `ours` and `peer`.
    pub unit: String,
    /// ours/peer (or the figure itself when there is no peer), as the goal reads it.
    pub ratio: Option<f64>,
    /// The goal, in words.
    pub goal: String,
    /// Whether the goal is met.
    pub met: Option<bool>,
    /// Anything else worth knowing.
    pub note: String,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct FirmwareBench {
    /// Whether this binary was built with optimisations (debug figures mean nothing).
    pub optimised: bool,
    /// The figures.
    pub lines: Vec<BenchLine>,
}

fn peak_rss_kib() -> Option<i64> {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .ok()
        .map(|u| u.max_rss())
}

/// The filesystem type holding `dir` (the longest mount point above it in `/proc/mounts`).
fn fs_type(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(at).then(|| (at.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// `openssl dgst -sha256` over `input`: (seconds, digest).
fn openssl_sha256(input: &Path) -> Result<(f64, String)> {
    let t = Instant::now();
    let o = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(input)
        .output()
        .context("running openssl")?;
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    if !o.status.success() {
        bail!("openssl failed: {}", o.status);
    }
    let text = String::from_utf8_lossy(&o.stdout);
    Ok((
        secs,
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// Store ingest against openssl on the same fsynced, page-cached file (best of up to 3 rounds
/// each, alternating), plus two reference lines: the directory's durable-write ceiling and
/// `sha2` alone, so the note can say whether the figure is disk-bound or CPU-bound.
async fn ingest(args: &FirmwareBenchArgs) -> Result<Vec<BenchLine>> {
    let size = args.ingest_mib << 20;
    let mib = |bytes_per_sec: f64| bytes_per_sec / (1 << 20) as f64;
    let rounds = args.rounds.clamp(1, 3);
    let dir = tempfile::tempdir().context("temporary directory")?;
    let place = format!(
        "{} ({})",
        std::env::temp_dir().display(),
        fs_type(dir.path()).unwrap_or_else(|| "?".into())
    );
    let input = dir.path().join("input.bin");
    let p = input.clone();
    tokio::task::spawn_blocking(move || automata_fwstore::generate_input(&p, size))
        .await
        .context("generate task")??;
    let mut ours: Option<f64> = None;
    let mut peer: Option<f64> = None;
    let mut checked = 0usize;
    let mut mismatch = false;
    let mut peer_err = None;
    for round in 0..rounds {
        let openssl_digest;
        let p = input.clone();
        match tokio::task::spawn_blocking(move || openssl_sha256(&p))
            .await
            .context("openssl task")?
        {
            Ok((secs, digest)) => {
                peer = Some(peer.map_or(0.0, |p: f64| p).max(mib(size as f64 / secs)));
                openssl_digest = Some(digest);
            }
            Err(e) => {
                peer_err = Some(format!("{e:#}"));
                openssl_digest = None;
            }
        }
        let fig =
            automata_fwstore::bench_ingest_file(&input, &dir.path().join(format!("store-{round}")))
                .await
                .context("store ingest")?;
        if let Some(d) = openssl_digest {
            checked += 1;
            mismatch |= d != fig.sha256;
        }
        ours = Some(ours.map_or(0.0, |o: f64| o).max(mib(fig.bytes_per_sec)));
    }
    let ours = ours.unwrap_or_default();
    let mut ceiling: f64 = 0.0;
    let mut dd: f64 = 0.0;
    for _ in 0..rounds {
        for early in [true, false] {
            let d = dir.path().to_path_buf();
            let r = tokio::task::spawn_blocking(move || {
                automata_fwstore::bench_write_ceiling(&d, size, early)
            })
            .await
            .context("write ceiling task")?
            .context("write ceiling")?;
            if early {
                ceiling = ceiling.max(mib(r));
            } else {
                dd = dd.max(mib(r));
            }
        }
    }
    let mut hash_only: f64 = 0.0;
    for _ in 0..rounds {
        let p = input.clone();
        let r = tokio::task::spawn_blocking(move || automata_fwstore::bench_sha256_file(&p))
            .await
            .context("sha256 task")?
            .context("sha256 alone")?;
        hash_only = hash_only.max(mib(r));
    }
    drop(dir);
    let ratio = peer.map(|p| ours / p);
    let bound = match peer {
        Some(p) if ceiling < 0.9 * p => format!(
            "disk-bound: the durable-write ceiling is {:.2}× openssl; ingest is at {:.0}% of it",
            ceiling / p,
            100.0 * ours / ceiling
        ),
        Some(_) => format!(
            "ingest is at {:.0}% of the durable-write ceiling",
            100.0 * ours / ceiling
        ),
        None => String::new(),
    };
    let note = match (checked, &peer_err) {
        (1.., _) => format!(
            "SHA-256 {} openssl; best of {rounds}; {bound}",
            if mismatch {
                "DISAGREES with"
            } else {
                "agrees with"
            }
        ),
        (0, Some(e)) => format!("openssl not measured: {e}"),
        (0, None) => "openssl not measured".into(),
    };
    let openssl = Some("openssl dgst -sha256".to_string());
    Ok(vec![
        BenchLine {
            what: format!(
                "store ingest of {} MiB in {place} (read, SHA-256, write, fsync, link, manifest)",
                args.ingest_mib
            ),
            ours,
            peer,
            peer_name: openssl.clone(),
            unit: "MiB/s".into(),
            ratio,
            goal: "≥ 0.9× openssl".into(),
            met: ratio.map(|r| r >= 0.9),
            note,
        },
        BenchLine {
            what: format!(
                "durable-write ceiling in {place} (4 MiB writes, writeback started every 16 MiB, fsync)"
            ),
            ours: ceiling,
            peer,
            peer_name: openssl.clone(),
            unit: "MiB/s".into(),
            ratio: peer.map(|p| ceiling / p),
            goal: "reference".into(),
            met: None,
            note: format!(
                "no durable ingest can beat this here; dd bs=4M conv=fsync (writeback only at the \
                 fsync): {dd:.0} MiB/s = {:.2}× openssl",
                peer.map_or(0.0, |p| dd / p)
            ),
        },
        BenchLine {
            what: "SHA-256 alone (sha2 crate, 1 MiB reads, one thread)".into(),
            ours: hash_only,
            peer,
            peer_name: openssl,
            unit: "MiB/s".into(),
            ratio: peer.map(|p| hash_only / p),
            goal: "reference".into(),
            met: None,
            note: "the store hashes on its own thread while another reads and writes".into(),
        },
    ])
}

fn scan(args: &FirmwareBenchArgs) -> Result<BenchLine> {
    let files = [
        args.ovmf_dir.join("OVMF_CODE_4M.fd"),
        args.ovmf_dir.join("OVMF_VARS_4M.ms.fd"),
    ];
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let r = automata_fwscan::bench::bench_scan(
        &refs,
        args.rounds,
        &RulePack::builtin(),
        &Limits::default(),
    )
    .context("scanning the OVMF images (Debian package ovmf)")?;
    let ours = r.best.as_secs_f64() * 1000.0;
    // UEFIExtract writes next to its input: give it copies in a scratch directory.
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut copies = Vec::new();
    for f in &files {
        let c = dir.path().join(f.file_name().unwrap_or_default());
        std::fs::copy(f, &c).with_context(|| format!("copying {}", f.display()))?;
        copies.push(c);
    }
    let mut best: Option<f64> = None;
    let mut note = format!("{} containers, {} findings", r.nodes, r.findings);
    for _ in 0..args.rounds.max(1) {
        let t = Instant::now();
        let mut ok = true;
        for c in &copies {
            match Command::new("UEFIExtract").arg(c).arg("report").output() {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    ok = false;
                    note = format!("UEFIExtract failed: {}", o.status);
                }
                Err(e) => {
                    ok = false;
                    note = format!("UEFIExtract not run (Debian uefitool-cli): {e}");
                }
            }
        }
        if !ok {
            break;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        best = Some(best.map_or(ms, |b| b.min(ms)));
    }
    let ratio = best.map(|p| ours / p);
    Ok(BenchLine {
        what: "full scan of OVMF_CODE_4M.fd + OVMF_VARS_4M.ms.fd (best round)".into(),
        ours,
        peer: best,
        peer_name: Some("UEFIExtract … report (fwupdtool: not measured)".into()),
        unit: "ms".into(),
        ratio,
        goal: "≤ 0.5× the faster peer".into(),
        met: ratio.map(|r| r <= 0.5),
        note,
    })
}

fn catalog(args: &FirmwareBenchArgs) -> Result<BenchLine> {
    let r = automata_fwcatalog::dell::bench_parse(args.catalog_mb * 1_000_000)
        .context("parsing the synthetic Dell catalog")?;
    let rss = peak_rss_kib();
    Ok(BenchLine {
        what: format!(
            "parse of a {:.0} MB UTF-16 Dell catalog ({} entries)",
            r.bytes as f64 / 1e6,
            r.entries
        ),
        ours: r.mb_per_s,
        peer: None,
        peer_name: None,
        unit: "MB/s".into(),
        ratio: Some(r.mb_per_s),
        goal: "≥ 100 MB/s".into(),
        met: Some(r.mb_per_s >= 100.0),
        note: rss.map_or("peak RSS unknown".into(), |k| {
            format!(
                "process peak RSS {} MiB (holds the generated catalog in memory)",
                k / 1024
            )
        }),
    })
}

/// Secure Boot databases as a BMC or agent would report them, read from the OVMF varstores.
fn fleet_dbs(ovmf: &Path) -> Result<Vec<SecureBootDb>> {
    let mut out = Vec::new();
    for name in ["OVMF_VARS_4M.ms.fd", "OVMF_VARS_4M.snakeoil.fd"] {
        let path = ovmf.join(name);
        let vars = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let start = automata_fwscan::fv::parse_header(&vars).map_or(0, |h| h.header_length);
        let mut issues = Vec::new();
        let Some(store) = vars
            .get(start..)
            .and_then(|b| vss::parse(b, name, &mut issues))
        else {
            bail!("{}: no variable store", path.display());
        };
        let db = store.secure_boot(name, &mut issues);
        // Redfish hands certificates over one by one: the same lists without owners.
        let certs_only = |l: &Option<Vec<SignatureEntry>>| {
            l.as_ref().map(|l| {
                l.iter()
                    .filter(|e| matches!(e.data, SignatureData::X509 { .. }))
                    .map(|e| SignatureEntry {
                        owner: Guid([0; 16]),
                        data: e.data.clone(),
                    })
                    .collect::<Vec<_>>()
            })
        };
        out.push(SecureBootDb {
            pk: certs_only(&db.pk),
            kek: certs_only(&db.kek),
            db: certs_only(&db.db),
            dbx: db.dbx.clone(),
        });
        out.push(db);
    }
    Ok(out)
}

fn secure_boot(args: &FirmwareBenchArgs) -> Result<BenchLine> {
    let kinds = fleet_dbs(&args.ovmf_dir)?;
    let fleet: Vec<SecureBootDb> = (0..args.servers)
        .map(|i| kinds[i % kinds.len()].clone())
        .collect();
    let pack = RulePack::builtin();
    let t = Instant::now();
    let mut findings = 0usize;
    for (i, db) in fleet.iter().enumerate() {
        let source = if i % 2 == 0 {
            Source::Redfish
        } else {
            Source::Efivars
        };
        findings += automata_fwscan::secure_boot_findings(db, source, &pack).len();
    }
    let secs = t.elapsed().as_secs_f64();
    Ok(BenchLine {
        what: format!("SB-* findings for {} simulated servers", args.servers),
        ours: secs,
        peer: None,
        peer_name: None,
        unit: "s".into(),
        ratio: Some(secs),
        goal: "≤ 60 s".into(),
        met: Some(secs <= 60.0),
        note: format!("{findings} findings (ms and snakeoil varstores, Redfish and efivars forms)"),
    })
}

/// Runs every part; a part that fails becomes a line saying why, so the others still report.
pub async fn run(args: FirmwareBenchArgs, progress: bool) -> Result<FirmwareBench> {
    let bar = crate::bench::progress_bar(progress, 4, "bench firmware");
    let mut lines = Vec::new();
    let failed = |what: &str, e: anyhow::Error| BenchLine {
        what: what.into(),
        ours: 0.0,
        peer: None,
        peer_name: None,
        unit: "-".into(),
        ratio: None,
        goal: "-".into(),
        met: None,
        note: format!("failed: {e:#}"),
    };
    // The catalog first, so the process's peak RSS is the parse's.
    bar.set_message("catalog parse");
    lines.push(catalog(&args).unwrap_or_else(|e| failed("catalog parse", e)));
    bar.inc(1);
    bar.set_message("scan");
    lines.push(scan(&args).unwrap_or_else(|e| failed("scan", e)));
    bar.inc(1);
    bar.set_message("secure boot findings");
    lines.push(secure_boot(&args).unwrap_or_else(|e| failed("secure boot findings", e)));
    bar.inc(1);
    bar.set_message("store ingest");
    match ingest(&args).await {
        Ok(l) => lines.extend(l),
        Err(e) => lines.push(failed("store ingest", e)),
    }
    bar.inc(1);
    bar.finish_and_clear();
    Ok(FirmwareBench {
        optimised: !cfg!(debug_assertions),
        lines,
    })
}

/// Prints the result as a table.
pub fn print(r: &FirmwareBench) {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
        "measure", "ours", "peer", "ratio", "goal", "met", "note",
    ]);
    for l in &r.lines {
        t.add_row(vec![
            l.what.clone(),
            format!("{:.2} {}", l.ours, l.unit),
            match (&l.peer, &l.peer_name) {
                (Some(p), Some(n)) => format!("{p:.2} {} ({n})", l.unit),
                (None, Some(n)) => format!("- ({n})"),
                _ => "-".into(),
            },
            l.ratio.map_or("-".into(), |r| format!("{r:.2}")),
            l.goal.clone(),
            match l.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
            .into(),
            l.note.clone(),
        ]);
    }
    println!("{t}");
    if !r.optimised {
        println!("note: a debug build; these figures mean nothing (build with --release)");
    }
}
