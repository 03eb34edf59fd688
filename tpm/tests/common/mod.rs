//! A real software TPM for tests: `swtpm_setup` provisions an EK and its certificate (issued by
//! swtpm's local CA in /var/lib/swtpm-localca), then `swtpm socket` serves it on free loopback
//! ports until the guard is dropped.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where swtpm_setup's default configuration puts the local CA.
pub const LOCALCA_DIR: &str = "/var/lib/swtpm-localca";

/// swtpm_setup serialises on the local CA's files; one at a time keeps parallel tests tidy.
static SETUP: Mutex<()> = Mutex::new(());

/// A running swtpm, killed on drop.
pub struct Swtpm {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Swtpm {
    /// Provisions and starts a fresh TPM (its own EK, its own state).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir(&state).expect("state dir");
        {
            let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
            let out = Command::new("swtpm_setup")
                .args(["--tpm2", "--tpmstate"])
                .arg(&state)
                .args(["--create-ek-cert", "--create-platform-cert", "--overwrite"])
                .output()
                .expect("swtpm_setup must be installed (scripts/install-deps.sh)");
            assert!(
                out.status.success(),
                "swtpm_setup failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // libtss2's swtpm TCTI expects the control channel on the next port.
        let (port, ctrl) = free_port_pair();
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--tpmstate"])
            .arg(format!("dir={}", state.display()))
            .args([
                "--server",
                &format!("type=tcp,port={port},bindaddr=127.0.0.1"),
            ])
            .args([
                "--ctrl",
                &format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"),
            ])
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm must be installed (scripts/install-deps.sh)");
        let tpm = Self { child, port, dir };
        tpm.wait_listening();
        tpm
    }

    /// The TCTI string for tss-esapi and tpm2-tools.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// A scratch directory that lives as long as the TPM.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a tpm2-tools command against this TPM (no other client may be connected: swtpm
    /// serves one connection at a time); returns stdout.
    pub fn tpm2(&self, tool: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(tool)
            .args(args)
            .env("TPM2TOOLS_TCTI", self.tcti())
            .current_dir(self.scratch())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "swtpm did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Two consecutive free loopback ports.
fn free_port_pair() -> (u16, u16) {
    for _ in 0..100 {
        let port = free_port();
        if let Some(next) = port.checked_add(1)
            && TcpListener::bind(("127.0.0.1", next)).is_ok()
        {
            return (port, next);
        }
    }
    panic!("no two consecutive free ports");
}

/// The local CA's directory, as an operator would add it to the trust roots.
pub fn localca_dir() -> PathBuf {
    PathBuf::from(LOCALCA_DIR)
}
