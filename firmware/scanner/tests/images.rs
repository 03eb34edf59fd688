//! Real images: Debian's ovmf builds and varstores generated with virt-fw-vars must produce
//! exactly the rule ids in tests/expected/*.json; structure and subjects must agree with
//! UEFIExtract and virt-fw-vars.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use automata_fwscan::{Limits, RulePack, ScanReport, Severity, scan_at};

/// 2026-12-01T00:00:00Z: fixes SB-CERT-001 (the 2011 Microsoft CAs expired in 2026).
const NOW: i64 = 1_796_083_200;
const OVMF: &str = "/usr/share/OVMF";
const MS_OWNER: &str = "77fa9abd-0359-4d32-bd60-28f4e78f784b";

fn ovmf(name: &str) -> Vec<u8> {
    let p = Path::new(OVMF).join(name);
    std::fs::read(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; install Debian's ovmf (scripts/install-deps.sh)",
            p.display()
        )
    })
}

fn venv_bin(tool: &str) -> PathBuf {
    let venv = std::env::var_os("MA_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/metal-automata/venv")
        });
    let p = venv.join("bin").join(tool);
    assert!(
        p.exists(),
        "{} missing: run scripts/install-deps.sh (virt-firmware in tests/python/requirements.txt)",
        p.display()
    );
    p
}

fn scan(bytes: &[u8], name: &str) -> ScanReport {
    scan_at(bytes, name, &RulePack::builtin(), &Limits::default(), NOW)
}

fn expected(file: &str) -> BTreeSet<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/expected")
        .join(format!("{file}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("expected file")).expect("json");
    v["rule_ids"]
        .as_array()
        .expect("rule_ids")
        .iter()
        .map(|s| s.as_str().expect("id").to_string())
        .collect()
}

fn check(report: &ScanReport, file: &str) {
    let want = expected(file);
    let got = report.rule_ids();
    assert_eq!(got, want, "{file}: findings {:#?}", report.findings);
    // The report is what goes on the topic: it must serialise.
    assert!(serde_json::to_string(report).is_ok());
}

fn msft_cert(name: &str) -> PathBuf {
    let site = venv_bin("python3")
        .parent()
        .and_then(Path::parent)
        .expect("venv")
        .join("lib");
    let dir = std::fs::read_dir(&site)
        .expect("venv lib")
        .flatten()
        .next()
        .expect("python dir")
        .path();
    dir.join("site-packages/virt/firmware/certs/microsoft.com")
        .join(name)
}

/// Builds a varstore with a generated PK named `cn`, the 2023 Microsoft KEK and db, and a dbx
/// holding the rule pack's reference hashes plus the revoked PCA 2011.
fn generate(dir: &Path, cn: &str) -> Vec<u8> {
    let out = dir.join("vars.fd");
    let mut cmd = Command::new(venv_bin("virt-fw-vars"));
    cmd.arg("-i")
        .arg(Path::new(OVMF).join("OVMF_VARS_4M.fd"))
        .arg("-o")
        .arg(&out);
    cmd.args([
        "--enroll-generate",
        cn,
        "--microsoft-kek",
        "2023",
        "--microsoft-db",
        "win+rom23",
        "--sb",
    ]);
    cmd.args(["--add-db", MS_OWNER])
        .arg(msft_cert("ms-uefi-2023.pem"));
    cmd.args(["--add-dbx-cert", MS_OWNER])
        .arg(msft_cert("windows-2011.pem"));
    for img in RulePack::builtin().dbx_reference.images {
        cmd.args(["--add-dbx-hash", MS_OWNER, &img.sha256]);
    }
    let st = cmd.output().expect("virt-fw-vars runs");
    assert!(
        st.status.success(),
        "virt-fw-vars: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).expect("generated store")
}

#[test]
fn ovmf_vars_ms() {
    let r = scan(&ovmf("OVMF_VARS_4M.ms.fd"), "OVMF_VARS_4M.ms.fd");
    check(&r, "ovmf-vars-4m-ms");
    let kek = r
        .findings
        .iter()
        .find(|f| f.rule_id == "SB-KEK-001")
        .expect("SB-KEK-001");
    assert_eq!(kek.severity, Severity::High);
    assert_eq!(
        kek.evidence.cert_not_after.as_deref(),
        Some("2026-06-24T20:51:29Z")
    );
    assert!(
        kek.evidence
            .container_path
            .as_deref()
            .is_some_and(|p| p.contains("vss"))
    );
}

#[test]
fn ovmf_vars_snakeoil() {
    let r = scan(
        &ovmf("OVMF_VARS_4M.snakeoil.fd"),
        "OVMF_VARS_4M.snakeoil.fd",
    );
    check(&r, "ovmf-vars-4m-snakeoil");
    let pk = r
        .findings
        .iter()
        .find(|f| f.rule_id == "SB-PK-001")
        .expect("SB-PK-001");
    assert_eq!(pk.severity, Severity::Critical);
    assert_eq!(
        pk.evidence.cert_sha1.as_deref(),
        Some("d3d12f907e937b33362f523a8110ad897fd8dfc8")
    );
    assert_eq!(pk.evidence.variable.as_deref(), Some("PK"));
}

#[test]
fn ovmf_vars_blank_and_code_are_clean() {
    check(
        &scan(&ovmf("OVMF_VARS_4M.fd"), "OVMF_VARS_4M.fd"),
        "ovmf-vars-4m",
    );
    let r = scan(&ovmf("OVMF_CODE_4M.fd"), "OVMF_CODE_4M.fd");
    check(&r, "ovmf-code-4m");
    assert!(r.errors.is_empty(), "{:#?}", r.errors);
}

#[test]
fn truncated_code_is_fw_fmt_001() {
    let code = ovmf("OVMF_CODE_4M.fd");
    let r = scan(code.get(..2 << 20).expect("2 MiB"), "OVMF_CODE_4M.fd (cut)");
    check(&r, "ovmf-code-4m-truncated");
    let f = r
        .findings
        .iter()
        .find(|f| f.rule_id == "FW-FMT-001")
        .expect("finding");
    assert_eq!(f.evidence.offset, Some(0));
    // Any cut, anywhere, reports and never panics.
    for cut in (0..code.len()).step_by(0x3_1000) {
        let r = scan(code.get(..cut).expect("cut"), "cut");
        assert!(
            r.rule_ids().iter().all(|id| id == "FW-FMT-001"),
            "cut {cut:#x}: {:?}",
            r.rule_ids()
        );
    }
}

#[test]
fn generated_ami_test_pk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = scan(&generate(dir.path(), "DO NOT TRUST - AMI Test PK"), "ami");
    check(&r, "generated-ami-test-pk");
    assert!(r.findings.iter().any(|f| f.rule_id == "SB-PK-002"
        && f.evidence.cert_subject.as_deref() == Some("CN=DO NOT TRUST - AMI Test PK")));
}

#[test]
fn generated_all_2023_has_nothing_above_info() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = scan(
        &generate(dir.path(), "Example Corp Platform Key"),
        "all-2023",
    );
    check(&r, "generated-all-2023");
    assert!(
        r.max_severity().is_none_or(|s| s <= Severity::Info),
        "{:#?}",
        r.findings
    );
}

/// Subject CNs per Secure Boot variable as `virt-fw-vars --print --verbose` shows them.
fn virt_fw_subjects(image: &Path) -> Vec<(String, String)> {
    let out = Command::new(venv_bin("virt-fw-vars"))
        .arg("-i")
        .arg(image)
        .args(["--print", "--verbose"])
        .output()
        .expect("virt-fw-vars");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut var = String::new();
    let mut subjects = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("name=") {
            var = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let Some(cn) = line.trim().strip_prefix("subject CN=")
            && ["PK", "KEK", "db", "dbx"].contains(&var.as_str())
        {
            subjects.push((var.clone(), cn.to_string()));
        }
    }
    subjects.sort();
    subjects
}

#[test]
fn subjects_agree_with_virt_fw_vars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = dir.path().join("ami.fd");
    std::fs::write(
        &generated,
        generate(dir.path(), "DO NOT TRUST - AMI Test PK"),
    )
    .expect("write");
    for image in [Path::new(OVMF).join("OVMF_VARS_4M.ms.fd"), generated] {
        let r = scan(&std::fs::read(&image).expect("image"), "x");
        let mut ours: Vec<(String, String)> = Vec::new();
        for sb in &r.secure_boot {
            for v in &sb.variables {
                for s in &v.cert_subjects {
                    // virt-fw-vars prints the CN only.
                    if let Some(cn) = s.split(", ").find_map(|p| p.strip_prefix("CN=")) {
                        ours.push((v.name.clone(), cn.to_string()));
                    }
                }
            }
        }
        ours.sort();
        let theirs = virt_fw_subjects(&image);
        assert!(!theirs.is_empty());
        assert_eq!(ours, theirs, "{}", image.display());
    }
}

#[test]
fn volumes_and_files_agree_with_uefiextract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = dir.path().join("OVMF_CODE_4M.fd");
    std::fs::write(&img, ovmf("OVMF_CODE_4M.fd")).expect("copy");
    let st = Command::new("UEFIExtract")
        .arg(&img)
        .arg("report")
        .output()
        .expect("UEFIExtract (Debian uefitool-cli, scripts/install-deps.sh)");
    assert!(st.status.success());
    let report =
        std::fs::read_to_string(dir.path().join("OVMF_CODE_4M.fd.report.txt")).expect("report");
    let (mut volumes, mut files) = (Vec::new(), Vec::new());
    for line in report.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(kind), Some(name)) = (cols.first(), cols.get(5)) else {
            continue;
        };
        let name = name.trim_start_matches('-').trim().to_lowercase();
        if name.len() != 36 {
            continue; // padding files and free space carry no GUID
        }
        match *kind {
            "Volume" => volumes.push(name),
            "File" => files.push(name),
            _ => {}
        }
    }
    let r = scan(&std::fs::read(&img).expect("image"), "OVMF_CODE_4M.fd");
    let nodes = r.nodes();
    let our_volumes: Vec<String> = nodes
        .iter()
        .filter(|n| n.format == "fv")
        .filter_map(|n| n.name.clone())
        .collect();
    let our_files: Vec<String> = nodes
        .iter()
        .filter(|n| n.format == "ffs" && !n.detail.as_deref().unwrap_or("").starts_with("pad"))
        .filter_map(|n| n.guid.clone())
        .collect();
    assert_eq!(volumes.len(), 4);
    assert_eq!(our_volumes, volumes);
    assert_eq!(our_files, files);
}

#[test]
fn limits_are_enforced() {
    let code = ovmf("OVMF_CODE_4M.fd");
    let shallow = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let r = scan_at(&code, "code", &RulePack::builtin(), &shallow, NOW);
    assert!(r.rule_ids().contains("FW-FMT-002"), "{:?}", r.rule_ids());
    let small = Limits {
        max_total_bytes: 1 << 20,
        ..Limits::default()
    };
    assert!(
        scan_at(&code, "code", &RulePack::builtin(), &small, NOW)
            .rule_ids()
            .contains("FW-FMT-002")
    );
    let few = Limits {
        max_entries: 50,
        ..Limits::default()
    };
    let r = scan_at(&code, "code", &RulePack::builtin(), &few, NOW);
    assert!(r.rule_ids().contains("FW-FMT-002"));
}

#[test]
fn bench_helper_runs() {
    let files = [
        Path::new(OVMF).join("OVMF_CODE_4M.fd"),
        Path::new(OVMF).join("OVMF_VARS_4M.ms.fd"),
    ];
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let b = automata_fwscan::bench::bench_scan(&refs, 1, &RulePack::builtin(), &Limits::default())
        .expect("bench");
    assert!(b.nodes > 600 && b.findings > 0);
    eprintln!(
        "scan OVMF_CODE_4M + OVMF_VARS_4M.ms: best {:?} (debug build)",
        b.best
    );
}
