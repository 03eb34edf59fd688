//! End to end on a real Linux kernel under qemu: this test binary is copied into a busybox
//! initramfs and run again inside the guest (as root, root path `/`), where it calls `collect`
//! against real SMBIOS tables, a real NVMe controller (the SMART log ioctl), a virtio NIC (the
//! ethtool ioctl) and, when swtpm is installed, a TPM 2.0 (GetCapability through /dev/tpmrm0);
//! then `collect_telemetry`: the NVMe controller's hwmon temperature and SMART readings, and a
//! corrected machine check that the host injects through the qemu monitor (`mce`) once the
//! guest polls its banks every second, which the guest kernel logs and the agent reads back from
//! `/dev/kmsg`.
//!
//! Runs only when `AGENT_QEMU_KERNEL` names a vmlinuz and `AGENT_QEMU_MODULES` that kernel's
//! `lib/modules/<version>` folder (for the virtio and NVMe modules), e.g. from Debian's
//! `linux-image-6.1.0-*-amd64-unsigned` unpacked with `dpkg-deb -x` (the generic kernel: the
//! cloud one has neither CONFIG_HWMON nor CONFIG_X86_MCE), and
//! `qemu-system-x86_64` and `busybox` are installed; otherwise it prints why and passes (under
//! CI it fails). The guest (initramfs, qemu, serial capture) is `tests/vm`, shared with the
//! UEFI guest of `tests/efivars_vm.rs`.

mod vm;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automata_schemas::types::{
    ComponentKind, HardwareLogEntry, InventorySnapshot, LogSeverity, SensorKind, TelemetryReading,
};

const BEGIN: &str = "AGENT-JSON-BEGIN";
const END: &str = "AGENT-JSON-END";
const TBEGIN: &str = "TELEMETRY-JSON-BEGIN";
const TEND: &str = "TELEMETRY-JSON-END";
/// The guest prints this on ttyS1 once its machine check poller runs every second.
const MCE_READY: &str = "MCE-READY";
const UUID: &str = "5a1e0000-0042-4c6f-8e11-00000000beef";

/// The guest half: prints the snapshot between markers. A no-op outside the guest.
#[test]
fn guest_dump() {
    if !vm::is_guest() {
        return;
    }
    let r = automata_agent::collect(&automata_agent::Options::default());
    let json = serde_json::to_string(&r.snapshot).unwrap_or_default();
    println!("{BEGIN}\n{json}\n{END}\nelapsed {:?}", r.elapsed);
    let mut state = automata_agent::TelemetryState::default();
    let t = automata_agent::collect_telemetry(&automata_agent::Options::default(), &mut state);
    let json = serde_json::json!({"readings": t.readings, "logs": t.logs, "errors": t.errors});
    println!("{TBEGIN}\n{json}\n{TEND}");
}

#[test]
fn collect_in_a_qemu_guest() {
    if vm::is_guest() {
        return;
    }
    let Some(vm) = vm::Vm::from_env() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let mods = [
        "net/core/failover.ko",
        "drivers/net/net_failover.ko",
        // virtio_ring first: newer 6.1 kernels make virtio depend on it.
        "drivers/virtio/virtio_ring.ko",
        "drivers/virtio/virtio.ko",
        "drivers/virtio/virtio_pci_legacy_dev.ko",
        "drivers/virtio/virtio_pci_modern_dev.ko",
        "drivers/virtio/virtio_pci.ko",
        "drivers/net/virtio_net.ko",
        // NVMe, a module in Debian's generic kernel (built in elsewhere: then skipped), with
        // its integrity-checksum dependencies.
        "crypto/crct10dif_common.ko",
        "lib/crc-t10dif.ko",
        "lib/crc64.ko",
        "lib/crc64-rocksoft.ko",
        "block/t10-pi.ko",
        "drivers/nvme/host/nvme-core.ko",
        "drivers/nvme/host/nvme.ko",
    ];
    let setup = format!(
        "mc=/sys/devices/system/machinecheck/machinecheck0\n\
         if [ -e $mc/check_interval ]; then echo 1 > $mc/check_interval; echo {MCE_READY} > /dev/ttyS1; fi\n\
         echo 3d1219c7c4c5404aaa1f6d2a48adf000 > /etc/machine-id 2>/dev/null\n\
         i=0; while [ -e $mc ] && [ $i -lt 15 ] && ! dmesg | grep -q 'Hardware Error'; do sleep 1; i=$((i+1)); done"
    );
    let initrd = vm.initramfs(work.path(), &mods, &setup, "guest_dump");

    // swtpm for the TPM, when installed.
    let tpm_sock = work.path().join("swtpm.sock");
    let mut swtpm = vm::which("swtpm").and_then(|swtpm| {
        let state = work.path().join("tpmstate");
        std::fs::create_dir_all(&state).ok()?;
        Command::new(swtpm)
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", tpm_sock.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    });
    if swtpm.is_some() {
        let t = Instant::now();
        while !tpm_sock.exists() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let out = work.path().join("ttyS1.out");
    let monitor = work.path().join("monitor.sock");
    let mut cmd = vm.command(&initrd, &out);
    cmd.args(["-machine", "pc,smbios-entry-point-type=64"])
        .args(["-smp", "2,sockets=2,cores=1,threads=1"])
        .arg("-monitor")
        .arg(format!("unix:{},server=on,wait=off", monitor.display()))
        .args([
            "-smbios",
            &format!(
                "type=1,manufacturer=Metal Automata,product=MA-Q35,serial=QEMU-SRV-1,uuid={UUID}"
            ),
        ])
        .args([
            "-smbios",
            "type=17,loc_pfx=DIMM,manufacturer=Metal RAM,serial=QDIMM-1,part=MR-1",
        ])
        .args([
            "-drive",
            "if=none,id=nv0,format=raw,file=null-co://,size=1G",
        ])
        .args(["-device", "nvme,serial=NVME-SN-42,drive=nv0"])
        .args(["-netdev", "hubport,id=n0,hubid=0"])
        .args(["-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56"]);
    if swtpm.is_some() {
        cmd.arg("-chardev")
            .arg(format!("socket,id=chrtpm,path={}", tpm_sock.display()))
            .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
            .args(["-device", "tpm-tis,tpmdev=tpm0"]);
    }
    let mut injected = None;
    let text = vm::run(cmd, &out, Duration::from_secs(180), |ttys1| {
        // Once the guest polls its machine check banks every second, a corrected error in
        // bank 1 of CPU 0 (MCi_STATUS VAL|EN, no UC): the kernel finds it and logs it.
        if injected.is_none() && ttys1.contains(MCE_READY) {
            injected = Some(hmp(&monitor, "mce 0 1 0x9000000000000001 0 0 0"));
        }
    });
    if let Some(s) = swtpm.as_mut() {
        let _ = s.kill();
        let _ = s.wait();
    }
    let json = vm::between(&text, BEGIN, END).expect("guest printed a snapshot");
    let s: InventorySnapshot = serde_json::from_str(json).expect("snapshot JSON");
    let find = |id: &str| s.components.iter().find(|c| c.component_id == id);

    assert_eq!(s.server_id, UUID);
    assert_eq!(s.system.serial.as_deref(), Some("QEMU-SRV-1"));
    let dimm = find("dimm:DIMM_0").expect("DIMM from type 17");
    assert_eq!(dimm.serial.as_deref(), Some("QDIMM-1"));
    assert_eq!(
        find("cpu:1").and_then(|c| c.location.as_deref()),
        Some("CPU 1")
    );

    let nvme = s
        .components
        .iter()
        .find(|c| c.kind == ComponentKind::Nvme)
        .expect("NVMe");
    assert_eq!(nvme.component_id, "disk:NVME-SN-42");
    assert!(nvme.firmware_version.is_some());
    assert_eq!(
        nvme.properties.get("health").map(String::as_str),
        Some("OK"),
        "SMART log via the NVMe admin ioctl: {:?}",
        s.errors
    );
    assert!(nvme.properties.contains_key("power_on_hours"));

    let nic = s
        .components
        .iter()
        .find(|c| c.kind == ComponentKind::Nic)
        .expect("NIC");
    assert!(
        nic.component_id.starts_with("nic:0000:00:"),
        "{}",
        nic.component_id
    );
    assert_eq!(
        nic.properties.get("mac").map(String::as_str),
        Some("52:54:00:12:34:56")
    );
    assert!(
        nic.properties.contains_key("driver_version"),
        "ethtool GDRVINFO answered: {:?}",
        s.errors
    );

    if swtpm.is_some() {
        let tpm = find("tpm:0").expect("TPM");
        assert_eq!(
            tpm.properties.get("tpm_version").map(String::as_str),
            Some("2.0")
        );
        assert!(tpm.manufacturer.is_some(), "GetCapability: {:?}", s.errors);
        assert!(tpm.firmware_version.is_some());
    }
    assert!(
        !s.components.iter().any(|c| c.kind == ComponentKind::Bmc),
        "no IPMI in this guest"
    );

    // Telemetry: the NVMe controller's hwmon device (CONFIG_NVME_HWMON) and its SMART log.
    let json = vm::between(&text, TBEGIN, TEND).expect("guest printed telemetry");
    let t: serde_json::Value = serde_json::from_str(json).expect("telemetry JSON");
    let readings: Vec<TelemetryReading> =
        serde_json::from_value(t["readings"].clone()).expect("readings");
    let logs: Vec<HardwareLogEntry> = serde_json::from_value(t["logs"].clone()).expect("logs");
    assert_eq!(t["errors"], serde_json::json!([]), "telemetry errors");
    let hw = readings
        .iter()
        .find(|r| r.sensor_id.starts_with("hwmon.0000:00:") && r.sensor_id.ends_with(".nvme.temp1"))
        .unwrap_or_else(|| {
            panic!(
                "no NVMe hwmon temperature (the kernel needs CONFIG_HWMON and CONFIG_NVME_HWMON: \
                 Debian's generic kernel, not cloud; rerun scripts/agent-vm.sh): {readings:?}"
            )
        });
    assert_eq!(hw.kind, SensorKind::Temperature);
    assert_eq!(hw.name, "Composite");
    assert_eq!(hw.component_id.as_deref(), Some("disk:NVME-SN-42"));
    assert_eq!(hw.server_id, UUID);
    // qemu's controller reports 323 K and warns at 343 K (WCTEMP), critical at 373 K.
    assert!((hw.value - 49.85).abs() < 0.01, "{hw:?}");
    let th = hw.thresholds.clone().expect("WCTEMP/CCTEMP as limits");
    assert_eq!(th.upper_caution, Some(69.85));
    assert_eq!(th.upper_critical, Some(99.85));
    let smart = |what: &str| {
        readings
            .iter()
            .find(|r| r.sensor_id == format!("nvme.NVME-SN-42.{what}"))
            .unwrap_or_else(|| panic!("nvme.NVME-SN-42.{what} in {readings:?}"))
    };
    assert_eq!(smart("temperature").value, 50.0);
    assert_eq!(smart("temperature").thresholds, Some(th));
    assert_eq!(smart("critical_warning").value, 0.0);
    assert_eq!(smart("media_errors").value, 0.0);
    assert_eq!(smart("percentage_used").value, 0.0);
    // qemu leaves available spare and its threshold at 0; a threshold of 0 is no limit.
    let spare = smart("available_spare");
    assert_eq!((spare.value, spare.unit.as_str()), (0.0, "%"));
    assert_eq!(spare.thresholds, None);

    // The machine check injected through the monitor, from the guest's kernel log.
    match injected {
        Some(Ok(())) => {
            let mce: Vec<_> = logs
                .iter()
                .filter(|l| l.message_id.as_deref() == Some("kmsg.mce"))
                .collect();
            assert!(
                mce.iter().any(|l| l.severity == LogSeverity::Warning
                    && l.log_id == "host:kmsg"
                    && l.server_id == UUID),
                "the injected machine check in the kernel log: {logs:?}"
            );
        }
        Some(Err(e)) => panic!("qemu monitor: {e}"),
        None => panic!("the guest never armed its machine check poller (CONFIG_X86_MCE)"),
    }
}

/// Sends one HMP command to qemu's monitor socket and waits briefly for it to be handled.
fn hmp(sock: &Path, command: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    // The monitor echoes the command and prints its prompt again when done.
    let mut seen = String::new();
    let mut buf = [0u8; 1024];
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if seen.matches("(qemu)").count() >= 2 {
                    break;
                }
            }
        }
    }
    if seen.contains("not supported") || seen.contains("unknown command") {
        return Err(seen);
    }
    Ok(())
}
