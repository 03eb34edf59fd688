//! `collect` on the machine the tests run on (root `/`), checked against facts read here
//! independently. On a VM without SMBIOS or a TPM those parts are simply absent and explained.

use std::path::Path;
use std::time::{Duration, Instant};

use automata_agent::{Options, collect};
use automata_schemas::types::ComponentKind;

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn collect_on_this_machine() {
    let started = Instant::now();
    let report = collect(&Options::default());
    let wall = started.elapsed();
    let s = &report.snapshot;
    eprintln!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
    eprintln!("elapsed {:?}", report.elapsed);
    assert!(wall < Duration::from_secs(2), "took {wall:?}");
    assert!(report.elapsed <= wall);

    // CPUs: model and logical CPU count from /proc/cpuinfo.
    let cpuinfo = read("/proc/cpuinfo").expect("/proc/cpuinfo");
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let cpus: Vec<_> = s
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::Cpu)
        .collect();
    assert!(!cpus.is_empty());
    let threads: usize = cpus
        .iter()
        .filter_map(|c| c.properties.get("threads")?.parse::<usize>().ok())
        .sum();
    assert_eq!(threads, logical);
    if let Some(model) = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
    {
        assert!(
            cpus.iter()
                .all(|c| c.model.as_deref() == Some(model.as_str()))
        );
    }

    // NICs: every interface with a device link, by MAC.
    let macs: Vec<&str> = s
        .components
        .iter()
        .filter(|c| c.kind == ComponentKind::Nic)
        .filter_map(|c| c.properties.get("mac").map(String::as_str))
        .collect();
    for e in std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lo" || !e.path().join("device").exists() {
            continue;
        }
        let mac = read(&format!("/sys/class/net/{name}/address")).expect("address");
        assert!(macs.contains(&mac.as_str()), "{name} {mac} not in {macs:?}");
    }
    assert!(
        !s.components
            .iter()
            .any(|c| c.properties.get("interface").map(String::as_str) == Some("lo"))
    );

    // Disks: every non-virtual block device by name.
    for e in std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let virt = ["loop", "ram", "zram", "dm-", "md", "nbd"]
            .iter()
            .any(|p| name.starts_with(p));
        if virt || !e.path().join("device").exists() {
            continue;
        }
        let disk = s
            .components
            .iter()
            .find(|c| c.name == name && matches!(c.kind, ComponentKind::Disk | ComponentKind::Nvme))
            .unwrap_or_else(|| panic!("disk {name} missing"));
        let sectors: u64 = read(&format!("/sys/block/{name}/size"))
            .and_then(|s| s.parse().ok())
            .expect("size");
        assert_eq!(
            disk.properties.get("size_bytes"),
            Some(&(sectors * 512).to_string())
        );
    }

    // Identity: the SMBIOS UUID if the kernel shows one, else the machine id.
    if !Path::new("/sys/firmware/dmi/tables/DMI").exists()
        && !Path::new("/sys/class/dmi/id").exists()
    {
        if let Some(id) = read("/etc/machine-id").filter(|s| !s.is_empty()) {
            assert_eq!(s.server_id, format!("machine-id:{}", id.to_lowercase()));
        }
        assert!(
            s.errors.iter().any(|e| e.starts_with("SMBIOS:")),
            "{:?}",
            s.errors
        );
    }
    if !Path::new("/sys/class/tpm/tpm0").exists() {
        assert!(!s.components.iter().any(|c| c.kind == ComponentKind::Tpm));
    }
}
