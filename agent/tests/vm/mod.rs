//! The qemu guest the agent's end-to-end tests boot: a busybox initramfs holding the running test
//! binary, which `/init` runs again inside the guest (as root, with `AGENT_GUEST=1`) and whose
//! output comes back through the guest's second serial port (ttyS1, a file on the host).
//!
//! The kernel comes from `AGENT_QEMU_KERNEL` (a vmlinuz) and its modules from
//! `AGENT_QEMU_MODULES` (its `lib/modules/<version>` folder), e.g. Debian's
//! `linux-image-6.1.0-*-amd64-unsigned` unpacked by `scripts/agent-vm.sh`; `qemu-system-x86_64`
//! and `busybox` must be installed. Outside CI a test without them prints why and passes; under
//! CI it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether this process is the guest half (run by the guest's `/init`).
pub fn is_guest() -> bool {
    std::env::var("AGENT_GUEST").as_deref() == Ok("1")
}

/// Skips the test outside CI (printing why); fails it under CI, where it must run.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "under CI the qemu tests must run (eval \"$(scripts/agent-vm.sh)\"): {why}"
    );
    eprintln!("skipped: {why}");
}

/// An executable on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// What booting a guest needs from the host.
pub struct Vm {
    /// The guest kernel (vmlinuz).
    pub kernel: PathBuf,
    /// That kernel's `lib/modules/<version>` folder.
    pub modules: PathBuf,
    /// `qemu-system-x86_64`.
    pub qemu: PathBuf,
    /// A static busybox for the initramfs.
    pub busybox: PathBuf,
}

impl Vm {
    /// The VM from the environment; `None` (after [`skip`]) when something is missing.
    pub fn from_env() -> Option<Vm> {
        let (Ok(kernel), Ok(modules)) = (
            std::env::var("AGENT_QEMU_KERNEL"),
            std::env::var("AGENT_QEMU_MODULES"),
        ) else {
            skip("set AGENT_QEMU_KERNEL and AGENT_QEMU_MODULES to run the qemu tests");
            return None;
        };
        let (Some(qemu), Some(busybox)) = (which("qemu-system-x86_64"), which("busybox")) else {
            skip("qemu-system-x86_64 or busybox not installed");
            return None;
        };
        Some(Vm {
            kernel: kernel.into(),
            modules: modules.into(),
            qemu,
            busybox,
        })
    }

    /// Writes `dir/initrd.cpio`: busybox, this test binary and its shared libraries, the kernel
    /// modules `mods` (paths under `kernel/`, loaded in this order; one that does not exist is
    /// taken as built in, except a non-NVMe driver, which must be there), and an `/init` that
    /// mounts proc, sys and dev, loads the modules, runs the shell lines `setup`, then this binary's
    /// test `guest_test` with `AGENT_GUEST=1`, its output on ttyS1, and powers off.
    pub fn initramfs(&self, dir: &Path, mods: &[&str], setup: &str, guest_test: &str) -> PathBuf {
        let root = dir.join("root");
        for d in ["bin", "proc", "sys", "dev", "tmp", "mods"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        std::fs::copy(&self.busybox, root.join("bin/busybox")).expect("busybox");
        let exe = std::env::current_exe().expect("current exe");
        // Without its debug info (a debug test binary is ~100 MB, too big an initrd for OVMF
        // in 512 MiB); a plain copy where binutils' strip is missing.
        let stripped = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(root.join("agent-test"))
            .arg(&exe)
            .status()
            .is_ok_and(|s| s.success());
        if !stripped {
            std::fs::copy(&exe, root.join("agent-test")).expect("copy test binary");
        }
        for lib in libs_of(&exe) {
            copy_into(&root, &lib);
        }
        let mut insmods = String::new();
        for m in mods {
            let src = self.modules.join("kernel").join(m);
            if !src.exists() && (m.contains("nvme") || !m.starts_with("drivers/")) {
                continue; // built into this kernel
            }
            let name = src
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            std::fs::copy(&src, root.join("mods").join(&name))
                .unwrap_or_else(|e| panic!("module {}: {e}", src.display()));
            insmods.push_str(&format!("insmod /mods/{name}\n"));
        }
        let init = format!(
            "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t proc proc /proc\n\
             mount -t sysfs sysfs /sys\nmount -t devtmpfs dev /dev\n\
             {insmods}{setup}\n\
             AGENT_GUEST=1 /agent-test --exact {guest_test} --nocapture > /dev/ttyS1 2>&1\n\
             poweroff -f\n"
        );
        std::fs::write(root.join("init"), init).expect("init");
        let st = Command::new("chmod")
            .args(["+x"])
            .arg(root.join("init"))
            .status()
            .expect("chmod");
        assert!(st.success());
        let initrd = dir.join("initrd.cpio");
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
        initrd
    }

    /// qemu under TCG booting the kernel with `initrd`: 512 MiB, no display, no reboot, ttyS0
    /// discarded and ttyS1 written to `ttys1`. The caller adds the machine and its devices.
    pub fn command(&self, initrd: &Path, ttys1: &Path) -> Command {
        let mut cmd = Command::new(&self.qemu);
        cmd.args(["-accel", "tcg", "-m", "512", "-nographic", "-no-reboot"])
            .arg("-kernel")
            .arg(&self.kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", "console=ttyS0 quiet panic=-1"])
            .args(["-serial", "null", "-serial"])
            .arg(format!("file:{}", ttys1.display()));
        cmd
    }
}

/// Runs `cmd` until the guest powers off, calling `poll` with what ttyS1 holds so far every
/// 200 ms; kills it and fails after `limit`. Returns ttyS1's text (without `\r`), also printed.
pub fn run(mut cmd: Command, ttys1: &Path, limit: Duration, mut poll: impl FnMut(&str)) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu");
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        poll(&std::fs::read_to_string(ttys1).unwrap_or_default());
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qemu did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("guest ran {:.1} s", t.elapsed().as_secs_f64());
    let text = std::fs::read_to_string(ttys1)
        .unwrap_or_default()
        .replace('\r', "");
    eprintln!("{text}");
    text
}

/// The text between the markers `begin` and `end`, trimmed.
pub fn between<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    text.split_once(begin)
        .and_then(|(_, r)| r.split_once(end))
        .map(|(j, _)| j.trim())
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
