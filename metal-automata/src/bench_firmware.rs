//! `metal-automata bench firmware`: store ingest against `openssl dgst -sha256`, the scan of the
//! OVMF images against `UEFIExtract`, the UTF-16 Dell catalog parse, and Secure Boot findings for
//! a simulated fleet, in one run.

use std::io::Write;
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

/// The same pseudo-random bytes `bench_ingest_figure` ingests (xorshift64), so the SHA-256s agree.
fn generate(path: &Path, size: u64) -> Result<()> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
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
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

fn ingest(args: &FirmwareBenchArgs) -> impl std::future::Future<Output = Result<BenchLine>> {
    let size = args.ingest_mib << 20;
    async move {
        let fig = automata_fwstore::bench_ingest_figure(size)
            .await
            .context("store ingest")?;
        let ours = fig.bytes_per_sec / (1 << 20) as f64;
        let dir = tempfile::tempdir().context("temporary directory")?;
        let input = dir.path().join("input.bin");
        let p = input.clone();
        tokio::task::spawn_blocking(move || generate(&p, size))
            .await
            .context("generate task")??;
        let t = Instant::now();
        let o = Command::new("openssl")
            .args(["dgst", "-sha256", "-r"])
            .arg(&input)
            .output();
        let secs = t.elapsed().as_secs_f64().max(1e-9);
        let (peer, note) = match o {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let hash = text.split_whitespace().next().unwrap_or_default();
                let agree = if hash == fig.sha256 {
                    "SHA-256 agrees with openssl"
                } else {
                    "SHA-256 DISAGREES with openssl"
                };
                (
                    Some(size as f64 / secs / (1 << 20) as f64),
                    agree.to_string(),
                )
            }
            Ok(o) => (None, format!("openssl failed: {}", o.status)),
            Err(e) => (None, format!("openssl not run: {e}")),
        };
        let ratio = peer.map(|p| ours / p);
        Ok(BenchLine {
            what: format!("store ingest of {} MiB (hash + write)", args.ingest_mib),
            ours,
            peer,
            peer_name: Some("openssl dgst -sha256".into()),
            unit: "MiB/s".into(),
            ratio,
            goal: "≥ 0.9× openssl".into(),
            met: ratio.map(|r| r >= 0.9),
            note,
        })
    }
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
    lines.push(
        ingest(&args)
            .await
            .unwrap_or_else(|e| failed("store ingest", e)),
    );
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
