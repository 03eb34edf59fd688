//! Secure Boot variables on a real UEFI machine: a qemu guest booted by OVMF (Debian's `ovmf`:
//! `OVMF_CODE_4M.fd` with a copy of a variable store as its second flash), which starts the
//! kernel's EFI stub through fw_cfg. In the guest this test binary reads efivarfs with the agent
//! (`efivars::read`), once before efivarfs is mounted (an error, not an empty key store) and
//! once after; the host parses PK/KEK/db/dbx as EFI_SIGNATURE_LISTs, checks them against the
//! variable store the guest booted from, and runs the SB rules over them, which must give
//! exactly the rule ids the scanner's image test expects for that store
//! (`firmware/scanner/tests/expected/`), with source `efivars`.
//!
//! Needs what `tests/qemu.rs` needs (`eval "$(scripts/agent-vm.sh)"`) and the `ovmf` package;
//! outside CI it prints what is missing and passes.

mod vm;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use automata_fwscan::{
    RulePack, SecureBootDb, Source, parse_signature_lists, secure_boot_findings_at, vss,
};

const BEGIN: &str = "EFIVARS-JSON-BEGIN";
const END: &str = "EFIVARS-JSON-END";
const OVMF: &str = "/usr/share/OVMF";
/// The scanner's image tests judge certificate expiry at this time (2026-12-01); so does this.
const NOW: i64 = 1_796_083_200;

/// The guest half: what the agent reads from efivarfs, unmounted then mounted, as JSON between
/// markers (payloads in hex). A no-op outside the guest.
#[test]
fn guest_efivars() {
    if !vm::is_guest() {
        return;
    }
    let root = Path::new("/");
    let unmounted = match automata_agent::efivars::read(root) {
        Ok(r) => format!("read: {r:?}"),
        Err(e) => format!("error: {e}"),
    };
    let mount = std::process::Command::new("mount")
        .args(["-t", "efivarfs", "efivarfs"])
        .arg(Path::new("/").join(automata_agent::efivars::EFIVARS))
        .status()
        .map(|s| s.success());
    let json = match automata_agent::efivars::read(root) {
        Ok(Some(efi)) => serde_json::json!({
            "unmounted": unmounted,
            "mounted": format!("{mount:?}"),
            "secure_boot": efi.secure_boot,
            "setup_mode": efi.setup_mode,
            "variables": efi
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), v.as_deref().map_or(serde_json::Value::Null, hex)))
                .collect::<serde_json::Map<_, _>>(),
        }),
        other => serde_json::json!({
            "unmounted": unmounted,
            "mounted": format!("{mount:?}"),
            "error": format!("{other:?}"),
        }),
    };
    println!("{BEGIN}\n{json}\n{END}");
}

fn hex(b: &[u8]) -> serde_json::Value {
    b.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// PK/KEK/db/dbx of an OVMF variable store file, as the scanner reads it offline.
fn varstore_db(vars: &[u8]) -> SecureBootDb {
    let mut issues = Vec::new();
    let store = vss::parse(vars.get(0x48..).expect("store"), "vars", &mut issues).expect("vss2");
    let db = store.secure_boot("vars", &mut issues);
    assert!(issues.is_empty(), "{issues:?}");
    db
}

/// The rule ids the scanner's image test expects for an OVMF variable store.
fn expected(name: &str) -> BTreeSet<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../firmware/scanner/tests/expected")
        .join(format!("{name}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("expected file")).expect("json");
    v["rule_ids"]
        .as_array()
        .expect("rule_ids")
        .iter()
        .map(|r| r.as_str().expect("id").to_string())
        .collect()
}

/// Boots OVMF with a copy of the variable store `vars_file`, runs the agent in the guest and
/// checks what it read; returns the SB rule ids.
fn boot_with(vm: &vm::Vm, code: &Path, vars_file: &str, expected_name: &str) -> BTreeSet<String> {
    let vars = std::fs::read(Path::new(OVMF).join(vars_file)).expect("variable store");
    let work = tempfile::tempdir().expect("tempdir");
    let copy = work.path().join("vars.fd");
    std::fs::write(&copy, &vars).expect("copy of the variable store");
    // efivarfs is a module in Debian's kernel (built in elsewhere: then skipped).
    let initrd = vm.initramfs(
        work.path(),
        &["fs/efivarfs/efivarfs.ko"],
        "",
        "guest_efivars",
    );
    let out = work.path().join("ttyS1.out");
    let mut cmd = vm.command(&initrd, &out);
    cmd.args(["-machine", "q35", "-monitor", "none"])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            code.display()
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            copy.display()
        ));
    let text = vm::run(cmd, &out, Duration::from_secs(180), |_| {});
    let json = vm::between(&text, BEGIN, END).expect("guest printed its efivars");
    let got: serde_json::Value = serde_json::from_str(json).expect("efivars JSON");

    // Before the mount, /sys/firmware/efi/efivars is an empty mount point: not "no keys".
    let unmounted = got["unmounted"].as_str().expect("unmounted");
    assert!(
        unmounted.starts_with("error:") && unmounted.contains("efivarfs is not mounted"),
        "{unmounted}"
    );
    assert_eq!(got["mounted"], "Ok(true)", "mount -t efivarfs: {got}");
    assert!(got.get("error").is_none(), "efivars::read: {got}");
    // Both stores hold a PK, so the firmware is in user mode and enforces Secure Boot.
    assert_eq!(got["secure_boot"], true, "{got}");
    assert_eq!(got["setup_mode"], false, "{got}");

    let var = |name: &str| {
        let hex = got["variables"][name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} present: {got}"));
        let entries = parse_signature_lists(&unhex(hex))
            .unwrap_or_else(|e| panic!("{name} as EFI_SIGNATURE_LISTs: {e}"));
        assert!(!entries.is_empty(), "{name} holds entries");
        Some(entries)
    };
    let db = SecureBootDb {
        pk: var("PK"),
        kek: var("KEK"),
        db: var("db"),
        dbx: var("dbx"),
    };
    assert_eq!(
        db,
        varstore_db(&vars),
        "what the agent reads is what the varstore holds"
    );
    let findings = secure_boot_findings_at(&db, Source::Efivars, &RulePack::builtin(), NOW, None);
    assert!(findings.iter().all(|f| f.source == Source::Efivars));
    let ids: BTreeSet<String> = findings.iter().map(|f| f.rule_id.clone()).collect();
    assert_eq!(ids, expected(expected_name), "{findings:#?}");
    eprintln!("{vars_file}: {ids:?}");
    ids
}

/// The OVMF firmware and the variable stores; `None` (after [`vm::skip`]) without them.
fn ovmf_code() -> Option<std::path::PathBuf> {
    let code = Path::new(OVMF).join("OVMF_CODE_4M.fd");
    if !code.is_file() {
        vm::skip("the ovmf package is not installed (/usr/share/OVMF/OVMF_CODE_4M.fd)");
        return None;
    }
    Some(code)
}

#[test]
fn efivars_on_ovmf_with_the_microsoft_keys() {
    if vm::is_guest() {
        return;
    }
    let (Some(vm), Some(code)) = (vm::Vm::from_env(), ovmf_code()) else {
        return;
    };
    let ids = boot_with(&vm, &code, "OVMF_VARS_4M.ms.fd", "ovmf-vars-4m-ms");
    // The 2011-only Microsoft keys and the placeholder dbx, whatever the expected file adds.
    for r in ["SB-KEK-001", "SB-DB-001", "SB-DB-002", "SB-DBX-001"] {
        assert!(ids.contains(r), "{r}: {ids:?}");
    }
}

#[test]
fn efivars_on_ovmf_with_the_snakeoil_keys() {
    if vm::is_guest() {
        return;
    }
    let (Some(vm), Some(code)) = (vm::Vm::from_env(), ovmf_code()) else {
        return;
    };
    let ids = boot_with(
        &vm,
        &code,
        "OVMF_VARS_4M.snakeoil.fd",
        "ovmf-vars-4m-snakeoil",
    );
    // The PK is Debian's SnakeOil test key, whose private half ships in the package.
    assert!(ids.contains("SB-PK-001"), "{ids:?}");
}
