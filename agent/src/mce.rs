//! Hardware errors from the kernel log (`/dev/kmsg`): machine checks, APEI/GHES firmware error
//! records, EDAC memory errors, NVMe controller failures and block I/O errors, as hardware log
//! entries (`log_id` `host:kmsg`).
//!
//! `/dev/kmsg` hands out one record per `read` as `pri,seq,ts_usec,flags;message`, followed by
//! ` KEY=value` continuation lines; `seq` numbers every record of the boot, `ts_usec` is the time
//! since boot. [`parse_hardware_error`] turns one record into an event or nothing, without any
//! I/O; [`read_new`] reads the records after a remembered [`KmsgCursor`] without blocking.
//! Only kernel records (facility 0) count, so a program writing to `/dev/kmsg` cannot forge one.
//! `/sys/devices/system/machinecheck` is not an event source: the kernel logs every machine check
//! it handles here.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use automata_schemas::types::{HardwareLogEntry, LogSeverity};
use serde::{Deserialize, Serialize};

use crate::telemetry::SOURCE;
use crate::{block, edac, fsutil, smbios};

/// The `log_id` of kernel log entries.
pub const LOG_ID: &str = "host:kmsg";

/// The kernel's longest record (`CONSOLE_EXT_LOG_MAX`) with room to spare; a shorter buffer makes
/// `read` fail with EINVAL.
const RECORD_BUF: usize = 16 * 1024;

/// Records read per poll at most, so a flooding kernel cannot keep one poll busy forever.
const MAX_RECORDS: usize = 200_000;

/// One `/dev/kmsg` record's header and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// syslog facility (0 = kernel).
    pub facility: u32,
    /// syslog level (0 emerg .. 7 debug).
    pub level: u8,
    /// Sequence number within this boot.
    pub seq: u64,
    /// Microseconds since boot.
    pub ts_usec: u64,
    /// The message, as the kernel escaped it (`\xNN` for unprintable bytes).
    pub message: String,
}

/// Parses the first line of a record, `pri,seq,ts_usec,flags[,...];message`.
pub fn parse_record(line: &str) -> Option<KmsgRecord> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let (head, message) = line.split_once(';')?;
    let mut f = head.split(',');
    let pri: u32 = f.next()?.trim().parse().ok()?;
    let seq: u64 = f.next()?.trim().parse().ok()?;
    let ts_usec: u64 = f.next()?.trim().parse().ok()?;
    Some(KmsgRecord {
        facility: pri >> 3,
        level: u8::try_from(pri & 7).unwrap_or(7),
        seq,
        ts_usec,
        message: message.lines().next().unwrap_or("").to_string(),
    })
}

/// What a hardware error line is about, for finding its inventory component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A block or NVMe device by kernel name (`sda`, `nvme0n1`, `nvme0`).
    Device(String),
    /// A DIMM by the EDAC label.
    DimmLabel(String),
}

/// A kernel log record that reports a hardware error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardwareError {
    /// The record's sequence number.
    pub seq: u64,
    /// Microseconds since boot.
    pub ts_usec: u64,
    /// Normalised severity.
    pub severity: LogSeverity,
    /// Which family of messages: `kmsg.mce`, `kmsg.ghes`, `kmsg.edac`, `kmsg.nvme`,
    /// `kmsg.io_error`, `kmsg.memory_failure`.
    pub message_id: &'static str,
    /// The message text.
    pub message: String,
    /// What it is about, when the line says.
    pub subject: Option<Subject>,
}

/// Turns one `/dev/kmsg` record line into a hardware error, or `None` for anything else
/// (including records not from the kernel). Pure: no I/O.
pub fn parse_hardware_error(line: &str) -> Option<HardwareError> {
    hardware_error(parse_record(line)?)
}

/// The hardware error a parsed record reports, if any (kernel records only).
pub fn hardware_error(r: KmsgRecord) -> Option<HardwareError> {
    if r.facility != 0 {
        return None;
    }
    let (severity, message_id, subject) = classify(&r.message)?;
    Some(HardwareError {
        seq: r.seq,
        ts_usec: r.ts_usec,
        severity,
        message_id,
        message: r.message,
        subject,
    })
}

/// Classifies a kernel message text: severity, message family and subject.
pub fn classify(msg: &str) -> Option<(LogSeverity, &'static str, Option<Subject>)> {
    let lower = msg.to_ascii_lowercase();
    // Machine checks (arch/x86/kernel/cpu/mce): "mce: [Hardware Error]: ...".
    if msg.starts_with("mce: ")
        && (msg.contains("[Hardware Error]") || lower.contains("machine check events logged"))
    {
        return Some((mce_severity(msg, &lower), "kmsg.mce", None));
    }
    if lower.contains("fatal machine check") || lower.contains("fatal local machine check") {
        return Some((LogSeverity::Critical, "kmsg.mce", None));
    }
    // EDAC core: "EDAC MC0: 1 CE memory read error on DIMM_A1 (channel:0 ...)".
    if let Some(rest) = msg.strip_prefix("EDAC MC")
        && let Some((idx, rest)) = rest.split_once(": ")
        && !idx.is_empty()
        && idx.chars().all(|c| c.is_ascii_digit())
    {
        let mut words = rest.split_whitespace();
        let first = words.next().unwrap_or("");
        let kind = if first.chars().all(|c| c.is_ascii_digit()) && !first.is_empty() {
            words.next().unwrap_or("")
        } else {
            first
        };
        let severity = match kind {
            "CE" => LogSeverity::Warning,
            "UE" => LogSeverity::Critical,
            _ => return None,
        };
        let label = rest
            .split_once(" on ")
            .map(|(_, l)| l.split_once(" (").map_or(l, |(l, _)| l).trim())
            .filter(|l| !l.is_empty())
            .map(|l| Subject::DimmLabel(l.to_string()));
        return Some((severity, "kmsg.edac", label));
    }
    // APEI/GHES and other firmware-first reports: "{1}[Hardware Error]: ...".
    if msg.contains("[Hardware Error]") {
        let severity = match lower.split_once("event severity:").map(|(_, s)| s.trim()) {
            Some(s) if s.starts_with("fatal") || s.starts_with("recoverable") => {
                LogSeverity::Critical
            }
            Some(s) if s.starts_with("corrected") => LogSeverity::Warning,
            // The rest of one report (section type, address, ...) is context: one report, one
            // WARNING or CRITICAL entry, from its "event severity" line.
            _ => LogSeverity::Info,
        };
        return Some((severity, "kmsg.ghes", None));
    }
    // mm/memory-failure.c: "Memory failure: 0x12345: recovery action for ...".
    if msg.starts_with("Memory failure: ") || lower.contains("uncorrected hardware memory error") {
        return Some((LogSeverity::Critical, "kmsg.memory_failure", None));
    }
    // NVMe core/pci: "nvme nvme0: controller is down; will reset: CSTS=0xffffffff, ...".
    if let Some(rest) = msg.strip_prefix("nvme ")
        && let Some((dev, what)) = rest.split_once(": ")
        && dev.starts_with("nvme")
    {
        let subject = Some(Subject::Device(dev.to_string()));
        if what.contains("controller is down")
            || what.contains("Removing after probe failure")
            || what.contains("Device not ready")
        {
            return Some((LogSeverity::Critical, "kmsg.nvme", subject));
        }
        if what.contains(" timeout, ") {
            return Some((LogSeverity::Warning, "kmsg.nvme", subject));
        }
        return None;
    }
    // Block layer: "I/O error, dev sda, sector 2048 op 0x0:(READ) ..." (older kernels prefix
    // "blk_update_request: "), also "critical medium error, dev ...".
    if let Some((what, rest)) = msg.split_once(" error, dev ") {
        if what.ends_with("operation not supported") {
            return None;
        }
        let dev = rest.split([',', ' ']).next().unwrap_or("").to_string();
        if dev.is_empty() || block::is_virtual(&dev) {
            return None;
        }
        let severity = if what.ends_with("critical medium") {
            LogSeverity::Critical
        } else {
            LogSeverity::Warning
        };
        return Some((severity, "kmsg.io_error", Some(Subject::Device(dev))));
    }
    None
}

/// Severity of one machine check line.
fn mce_severity(msg: &str, lower: &str) -> LogSeverity {
    // "CPU 2: Machine Check: 0 Bank 7: cc00008000010090": bit 61 of MCi_STATUS is UC.
    if let Some((_, after)) = msg.split_once(" Bank ")
        && let Some((_, status)) = after.split_once(": ")
    {
        let hex = status.split_whitespace().next().unwrap_or("");
        if let Ok(s) = u64::from_str_radix(hex.trim_start_matches("0x"), 16) {
            return if s & (1 << 61) != 0 {
                LogSeverity::Critical
            } else {
                LogSeverity::Warning
            };
        }
    }
    if lower.contains("machine check events logged") {
        return LogSeverity::Warning;
    }
    // mce_panic() reasons: "Machine check: Processor context corrupt", "Fatal machine check", ...
    if lower.contains("machine check:")
        || lower.contains("uncorrected")
        || lower.contains("fatal")
        || lower.contains("panic")
    {
        return LogSeverity::Critical;
    }
    // Context lines of one report: TSC, ADDR, MISC, PROCESSOR, "Run the above through mcelog".
    LogSeverity::Info
}

/// Where reading `/dev/kmsg` continues: the boot it belongs to and the next sequence number.
/// The open device is kept between polls (not serialised) so each poll reads only new records.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct KmsgCursor {
    /// `/proc/sys/kernel/random/boot_id` of the boot `next_seq` belongs to.
    pub boot_id: Option<String>,
    /// The first sequence number not yet handled.
    pub next_seq: u64,
    #[serde(skip)]
    open: Option<OpenKmsg>,
}

impl Clone for KmsgCursor {
    fn clone(&self) -> Self {
        Self {
            boot_id: self.boot_id.clone(),
            next_seq: self.next_seq,
            open: None,
        }
    }
}

impl PartialEq for KmsgCursor {
    fn eq(&self, other: &Self) -> bool {
        self.boot_id == other.boot_id && self.next_seq == other.next_seq
    }
}

/// The open device and any partial line (only a regular file, as in tests, splits records).
#[derive(Debug)]
struct OpenKmsg {
    file: File,
    pending: Vec<u8>,
}

/// Why the kernel log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KmsgError {
    /// Opening or reading `/dev/kmsg` failed.
    #[error("kernel log: {0}")]
    Read(#[from] fsutil::ReadError),
}

/// Reads the records after `cursor` (all of this boot's on the first call or after a reboot)
/// and returns the new ones; advances the cursor. A missing `/dev/kmsg` yields nothing.
pub fn read_records(root: &Path, cursor: &mut KmsgCursor) -> Result<Vec<KmsgRecord>, KmsgError> {
    let boot_id = fsutil::attr(root, "proc/sys/kernel/random/boot_id");
    if boot_id.is_some() && cursor.boot_id != boot_id {
        if cursor.boot_id.is_some() {
            cursor.next_seq = 0;
        }
        cursor.boot_id = boot_id;
        cursor.open = None;
    }
    let rel = "dev/kmsg";
    if cursor.open.is_none() {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(fsutil::at(root, rel))
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fsutil::ReadError::new(rel, e).into()),
        };
        cursor.open = Some(OpenKmsg {
            file,
            pending: Vec::new(),
        });
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; RECORD_BUF];
    let mut reads = 0usize;
    let mut failed = None;
    if let Some(open) = cursor.open.as_mut() {
        while reads < MAX_RECORDS {
            reads += 1;
            match open.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    open.pending
                        .extend_from_slice(buf.get(..n).unwrap_or_default());
                    while let Some(i) = open.pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = open.pending.drain(..=i).collect();
                        // Continuation lines (" KEY=value") start with a space.
                        if line.first() == Some(&b' ') {
                            continue;
                        }
                        if let Some(r) = parse_record(&String::from_utf8_lossy(&line))
                            && r.seq >= cursor.next_seq
                        {
                            cursor.next_seq = r.seq.saturating_add(1);
                            out.push(r);
                        }
                    }
                    // No record is this long: not a kernel log, drop it rather than grow.
                    if open.pending.len() > RECORD_BUF {
                        open.pending.clear();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EPIPE: records were overwritten before we read them; reading goes on after them.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
    }
    if let Some(e) = failed {
        cursor.open = None;
        return Err(fsutil::ReadError::new(rel, e).into());
    }
    Ok(out)
}

/// Milliseconds since the epoch at boot: now minus `/proc/uptime`, else `btime` of `/proc/stat`.
pub fn boot_time_ms(root: &Path, now_ms: i64) -> Option<i64> {
    if let Some(up) = fsutil::attr(root, "proc/uptime")
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .filter(|u| u.is_finite() && *u >= 0.0)
    {
        return Some(now_ms - (up * 1000.0) as i64);
    }
    let stat = fsutil::read_trimmed(root, "proc/stat").ok().flatten()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|s| s.saturating_mul(1000))
}

/// The new hardware error records since `cursor` as log entries of `server_id`; read failures
/// are added to `errors`. Each record is returned once per cursor.
pub fn read_new(
    root: &Path,
    cursor: &mut KmsgCursor,
    server_id: &str,
    observed_at: i64,
    errors: &mut Vec<String>,
) -> Vec<HardwareLogEntry> {
    let records = match read_records(root, cursor) {
        Ok(r) => r,
        Err(e) => {
            errors.push(e.to_string());
            return Vec::new();
        }
    };
    let events: Vec<HardwareError> = records.into_iter().filter_map(hardware_error).collect();
    if events.is_empty() {
        return Vec::new();
    }
    let boot_ms = boot_time_ms(root, observed_at);
    let dimms = if events
        .iter()
        .any(|e| matches!(e.subject, Some(Subject::DimmLabel(_))))
    {
        smbios::read(root).decoded.dimms
    } else {
        Vec::new()
    };
    events
        .into_iter()
        .map(|e| {
            let component_id = match &e.subject {
                Some(Subject::DimmLabel(l)) => edac::dimm_component_id(l, &dimms),
                Some(Subject::Device(d)) => device_component_id(root, d),
                None => None,
            };
            to_log_entry(
                e,
                cursor.boot_id.as_deref(),
                boot_ms,
                server_id,
                observed_at,
                component_id,
            )
        })
        .collect()
}

/// One hardware error as a log entry. `entry_id` is `<boot_id>:<seq>`: sequence numbers start
/// again at every boot, so the boot id keeps entries of different boots apart.
pub fn to_log_entry(
    e: HardwareError,
    boot_id: Option<&str>,
    boot_ms: Option<i64>,
    server_id: &str,
    observed_at: i64,
    component_id: Option<String>,
) -> HardwareLogEntry {
    let ts_ms = i64::try_from(e.ts_usec / 1000).unwrap_or(i64::MAX);
    HardwareLogEntry {
        server_id: server_id.to_string(),
        log_id: LOG_ID.to_string(),
        entry_id: match boot_id {
            Some(b) => format!("{b}:{}", e.seq),
            None => e.seq.to_string(),
        },
        created: boot_ms.map_or(observed_at, |b| b.saturating_add(ts_ms)),
        observed_at,
        severity: e.severity,
        message: e.message,
        message_id: Some(e.message_id.to_string()),
        component_id,
        sensor_id: None,
        source: SOURCE.to_string(),
    }
}

/// The inventory id of a device a kernel line names: an NVMe controller (`nvme0`) or a block
/// device (`sda`, `nvme0n1`).
fn device_component_id(root: &Path, dev: &str) -> Option<String> {
    if dev.starts_with("nvme") && dev[4..].chars().all(|c| c.is_ascii_digit()) {
        return fsutil::attr(root, format!("sys/class/nvme/{dev}/serial"))
            .map(|s| format!("disk:{s}"));
    }
    block::disk_component_id(root, dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(line: &str) -> Option<(LogSeverity, &'static str, Option<Subject>)> {
        parse_hardware_error(line).map(|e| (e.severity, e.message_id, e.subject))
    }

    #[test]
    fn records() {
        let r = parse_record(
            "6,1290,4271367410,-;mce: [Hardware Error]: Machine check events logged\n",
        )
        .expect("record");
        assert_eq!(
            (r.facility, r.level, r.seq, r.ts_usec),
            (0, 6, 1290, 4_271_367_410)
        );
        assert_eq!(
            r.message,
            "mce: [Hardware Error]: Machine check events logged"
        );
        // Extra header fields (caller id on newer kernels) are ignored.
        let r = parse_record("4,77,12,c,caller=T12;hello").expect("record");
        assert_eq!((r.seq, r.message.as_str()), (77, "hello"));
        assert_eq!(parse_record("garbage"), None);
        assert_eq!(parse_record("x,1,2,-;msg"), None);
        assert_eq!(parse_record(""), None);
    }

    #[test]
    fn machine_checks_as_the_kernel_prints_them() {
        // A corrected error found by polling (arch/x86/kernel/cpu/mce/core.c).
        let e = parse_hardware_error(
            "6,1290,4271367410,-;mce: [Hardware Error]: Machine check events logged",
        )
        .expect("event");
        assert_eq!((e.seq, e.ts_usec), (1290, 4_271_367_410));
        assert_eq!(
            (e.severity, e.message_id),
            (LogSeverity::Warning, "kmsg.mce")
        );
        assert_eq!(
            ev(
                "0,1291,4271367415,-;mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 1: 9000000000000001"
            ),
            Some((LogSeverity::Warning, "kmsg.mce", None))
        );
        // An uncorrected one (MCi_STATUS bit 61), then mce_panic's reason and the panic.
        assert_eq!(
            ev(
                "0,2001,99000000,-;mce: [Hardware Error]: CPU 1: Machine Check Exception: 5 Bank 4: b200000000070005"
            ),
            Some((LogSeverity::Critical, "kmsg.mce", None))
        );
        assert_eq!(
            ev("0,2002,99000001,-;mce: [Hardware Error]: TSC 49587bb1c0a5 "),
            Some((LogSeverity::Info, "kmsg.mce", None))
        );
        assert_eq!(
            ev(
                "0,2003,99000002,-;mce: [Hardware Error]: PROCESSOR 0:206d7 TIME 1449675232 SOCKET 0 APIC 20 microcode 710"
            ),
            Some((LogSeverity::Info, "kmsg.mce", None))
        );
        assert_eq!(
            ev("0,2004,99000003,-;mce: [Hardware Error]: Machine check: Processor context corrupt"),
            Some((LogSeverity::Critical, "kmsg.mce", None))
        );
        assert_eq!(
            ev("0,2005,99000004,-;Kernel panic - not syncing: Fatal machine check"),
            Some((LogSeverity::Critical, "kmsg.mce", None))
        );
        // Thermal throttling shares the prefix but is no hardware error.
        assert_eq!(
            ev(
                "4,2006,99000005,-;mce: CPU3: Core temperature above threshold, cpu clock throttled (total events = 1)"
            ),
            None
        );
    }

    #[test]
    fn ghes_records_as_the_kernel_prints_them() {
        // drivers/acpi/apei/ghes.c + drivers/firmware/efi/cper.c, a corrected memory error.
        let lines = [
            (
                "4,3000,5,-;{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 1",
                LogSeverity::Info,
            ),
            (
                "4,3001,5,-;{1}[Hardware Error]: It has been corrected by h/w and requires no further action",
                LogSeverity::Info,
            ),
            (
                "4,3002,5,-;{1}[Hardware Error]: event severity: corrected",
                LogSeverity::Warning,
            ),
            (
                "4,3003,5,-;{1}[Hardware Error]:  Error 0, type: corrected",
                LogSeverity::Info,
            ),
            (
                "4,3004,5,-;{1}[Hardware Error]:   section_type: memory error",
                LogSeverity::Info,
            ),
            (
                "4,3005,5,-;{1}[Hardware Error]:   physical_address: 0x00000011ccbfe6c0",
                LogSeverity::Info,
            ),
            (
                "3,3006,5,-;{2}[Hardware Error]: event severity: recoverable",
                LogSeverity::Critical,
            ),
            (
                "0,3007,5,-;{3}[Hardware Error]: event severity: fatal",
                LogSeverity::Critical,
            ),
            (
                "0,3009,5,-;{3}[Hardware Error]:  Error 0, type: fatal",
                LogSeverity::Info,
            ),
            (
                "3,3008,5,-;[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 0",
                LogSeverity::Info,
            ),
        ];
        for (line, sev) in lines {
            assert_eq!(ev(line), Some((sev, "kmsg.ghes", None)), "{line}");
        }
    }

    #[test]
    fn edac_nvme_and_block_lines() {
        assert_eq!(
            ev(
                "4,4000,7,-;EDAC MC0: 1 CE memory read error on CPU_SrcID#0_MC#0_Chan#0_DIMM#0 (channel:0 slot:0 page:0x12345 offset:0x0 grain:32 syndrome:0x0 - err_code:0x0000:0x009f socket:0 imc:0 rank:0 bg:0 ba:0 row:0x1234 col:0x0)"
            ),
            Some((
                LogSeverity::Warning,
                "kmsg.edac",
                Some(Subject::DimmLabel("CPU_SrcID#0_MC#0_Chan#0_DIMM#0".into()))
            ))
        );
        assert_eq!(
            ev(
                "0,4001,7,-;EDAC MC1: 1 UE multi-bit ECC on P0 CHANNEL A DIMM_A1 (node:0 card:0 module:0 page:0x0 offset:0x0 grain:1)"
            ),
            Some((
                LogSeverity::Critical,
                "kmsg.edac",
                Some(Subject::DimmLabel("P0 CHANNEL A DIMM_A1".into()))
            ))
        );
        // Driver registration is no error.
        assert_eq!(
            ev(
                "6,4002,7,-;EDAC MC0: Giving out device to module skx_edac controller Skylake Socket#0 IMC#0: DEV 0000:3a:0a.0 (INTERRUPT)"
            ),
            None
        );
        assert_eq!(
            ev(
                "4,4003,7,-;nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff"
            ),
            Some((
                LogSeverity::Critical,
                "kmsg.nvme",
                Some(Subject::Device("nvme0".into()))
            ))
        );
        assert_eq!(
            ev("4,4004,7,-;nvme nvme0: I/O 123 QID 4 timeout, aborting"),
            Some((
                LogSeverity::Warning,
                "kmsg.nvme",
                Some(Subject::Device("nvme0".into()))
            ))
        );
        assert_eq!(
            ev("6,4005,7,-;nvme nvme0: 8/0/0 default/read/poll queues"),
            None
        );
        assert_eq!(
            ev(
                "3,4006,7,-;I/O error, dev sda, sector 1234 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"
            ),
            Some((
                LogSeverity::Warning,
                "kmsg.io_error",
                Some(Subject::Device("sda".into()))
            ))
        );
        assert_eq!(
            ev(
                "3,4007,7,-;blk_update_request: I/O error, dev nvme0n1, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0"
            ),
            Some((
                LogSeverity::Warning,
                "kmsg.io_error",
                Some(Subject::Device("nvme0n1".into()))
            ))
        );
        assert_eq!(
            ev(
                "3,4008,7,-;critical medium error, dev sdb, sector 77 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"
            ),
            Some((
                LogSeverity::Critical,
                "kmsg.io_error",
                Some(Subject::Device("sdb".into()))
            ))
        );
        assert_eq!(
            ev("3,4009,7,-;I/O error, dev loop3, sector 0 op 0x0:(READ)"),
            None
        );
        assert_eq!(
            ev("3,4010,7,-;Buffer I/O error on dev sda1, logical block 0, async page read"),
            None
        );
        // Written by a program (facility user): never a hardware error.
        assert_eq!(ev("11,4011,7,-;I/O error, dev sda, sector 1"), None);
    }

    #[test]
    fn any_input_is_safe() {
        for s in [
            "",
            ";",
            ",,,;",
            "0,1,2,-;",
            "0,1,2,-;EDAC MC: x",
            "0,1,2,-;EDAC MC0: ",
            "0,1,2,-;nvme : x",
            "0,1,2,-;mce: [Hardware Error]: Bank : zz",
            "0,1,2,-; error, dev ",
            "0,1,2,-;nvme nvme: timeout, x",
            "0,18446744073709551615,18446744073709551615,-;mce: [Hardware Error]: x",
        ] {
            let _ = parse_hardware_error(s);
        }
        let e = parse_hardware_error(
            "0,1,18446744073709551615,-;mce: [Hardware Error]: Machine check events logged",
        )
        .expect("event");
        let l = to_log_entry(e, None, Some(i64::MAX), "s", 1, None);
        assert_eq!(l.entry_id, "1");
    }
}
