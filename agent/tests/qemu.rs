//! End to end on a real Linux kernel under qemu: this test binary is copied into a busybox
//! initramfs and run again inside the guest (as root, root path `/`), where it calls `collect`
//! against real SMBIOS tables, a real NVMe controller (the SMART log ioctl), a virtio NIC (the
//! ethtool ioctl) and, when swtpm is installed, a TPM 2.0 (GetCapability through /dev/tpmrm0).
//!
//! Runs only when `AGENT_QEMU_KERNEL` names a vmlinuz and `AGENT_QEMU_MODULES` that kernel's
//! `lib/modules/<version>` folder (for the virtio modules), e.g. from Debian's
//! `linux-image-6.1.0-*-cloud-amd64-unsigned` unpacked with `dpkg-deb -x`, and
//! `qemu-system-x86_64` and `busybox` are installed; otherwise it prints why and passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automata_schemas::types::{ComponentKind, InventorySnapshot};

const BEGIN: &str = "AGENT-JSON-BEGIN";
const END: &str = "AGENT-JSON-END";
const UUID: &str = "5a1e0000-0042-4c6f-8e11-00000000beef";

/// The guest half: prints the snapshot between markers. A no-op outside the guest.
#[test]
fn guest_dump() {
    if std::env::var("AGENT_GUEST").as_deref() != Ok("1") {
        return;
    }
    let r = automata_agent::collect(&automata_agent::Options::default());
    let json = serde_json::to_string(&r.snapshot).unwrap_or_default();
    println!("{BEGIN}\n{json}\n{END}\nelapsed {:?}", r.elapsed);
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn libs_of(exe: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(exe).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let p = l.split("=>").last()?.split_whitespace().next()?;
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

fn copy_into(root: &Path, src: &Path) {
    let dst = root.join(src.strip_prefix("/").expect("absolute"));
    std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
    std::fs::copy(src, &dst).expect("copy");
}

#[test]
fn collect_in_a_qemu_guest() {
    if std::env::var("AGENT_GUEST").as_deref() == Ok("1") {
        return;
    }
    let (Ok(kernel), Ok(modules)) = (
        std::env::var("AGENT_QEMU_KERNEL"),
        std::env::var("AGENT_QEMU_MODULES"),
    ) else {
        // CI prepares the VM (scripts/agent-vm.sh): there, a missing kernel is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI the qemu test must run: eval \"$(scripts/agent-vm.sh)\""
        );
        eprintln!("skipped: set AGENT_QEMU_KERNEL and AGENT_QEMU_MODULES to run the qemu test");
        return;
    };
    let (Some(qemu), Some(busybox)) = (which("qemu-system-x86_64"), which("busybox")) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI qemu-system-x86_64 and busybox must be installed"
        );
        eprintln!("skipped: qemu-system-x86_64 or busybox not installed");
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let root = work.path().join("root");
    for d in ["bin", "proc", "sys", "dev", "tmp", "mods"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).expect("busybox");
    let exe = std::env::current_exe().expect("current exe");
    std::fs::copy(&exe, root.join("agent-test")).expect("copy test binary");
    for lib in libs_of(&exe) {
        copy_into(&root, &lib);
    }
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
    ];
    let mut insmods = String::new();
    for m in mods {
        let src = Path::new(&modules).join("kernel").join(m);
        let name = src
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        std::fs::copy(&src, root.join("mods").join(&name)).expect("module");
        insmods.push_str(&format!("insmod /mods/{name}\n"));
    }
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\nmount -t devtmpfs dev /dev\n{insmods}\
         echo 3d1219c7c4c5404aaa1f6d2a48adf000 > /etc/machine-id 2>/dev/null\n\
         AGENT_GUEST=1 /agent-test --exact guest_dump --nocapture > /dev/ttyS1 2>&1\n\
         poweroff -f\n"
    );
    std::fs::write(root.join("init"), init).expect("init");
    let st = Command::new("chmod")
        .args(["+x"])
        .arg(root.join("init"))
        .status()
        .expect("chmod");
    assert!(st.success());
    let initrd = work.path().join("initrd.cpio");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc > {} 2>/dev/null",
            root.display(),
            initrd.display()
        ))
        .status()
        .expect("cpio");
    assert!(st.success());

    // swtpm for the TPM, when installed.
    let tpm_sock = work.path().join("swtpm.sock");
    let mut swtpm = which("swtpm").and_then(|swtpm| {
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
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg", "-m", "512", "-nographic", "-no-reboot"])
        .args(["-machine", "pc,smbios-entry-point-type=64"])
        .args(["-smp", "2,sockets=2,cores=1,threads=1"])
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .args(["-serial", "null", "-serial"])
        .arg(format!("file:{}", out.display()))
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
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu");
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            panic!("qemu did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(s) = swtpm.as_mut() {
        let _ = s.kill();
        let _ = s.wait();
    }
    let text = std::fs::read_to_string(&out)
        .unwrap_or_default()
        .replace('\r', "");
    eprintln!("{text}");
    let json = text
        .split_once(BEGIN)
        .and_then(|(_, r)| r.split_once(END))
        .map(|(j, _)| j.trim())
        .expect("guest printed a snapshot");
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
}
