//! The only unsafe code in the agent: three read-only ioctls that have no sysfs equivalent.
//!
//! - `SIOCETHTOOL` / `ETHTOOL_GDRVINFO`: a NIC's driver, firmware and bus info (`ethtool -i`).
//!   The ethtool netlink interface has no driver-info message (ethtool itself still uses this
//!   ioctl), and the netlink crates would bring an async runtime for one call.
//! - OpenIPMI `IPMICTL_SEND_COMMAND` / `IPMICTL_RECEIVE_MSG_TRUNC` on `/dev/ipmi0`: the BMC's
//!   Get Device ID (its firmware revision).
//! - `NVME_IOCTL_ADMIN_CMD`: Get Log Page 02h (SMART / health information), read-only.
//!
//! `nix`'s ioctl macros would still need `unsafe` at each call and a second libc wrapper, so we
//! call `libc::ioctl` directly on `#[repr(C)]` mirrors of the kernel's uapi structs, with the
//! request numbers computed from their sizes exactly as the kernel's `_IOC` macros do. Every
//! buffer handed to the kernel is owned by the calling Rust frame and outlives the call.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// The kernel's `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u32, ty: u8, nr: u8, size: usize) -> u32 {
    (dir << 30) | ((size as u32 & 0x3fff) << 16) | ((ty as u32) << 8) | nr as u32
}

fn c_str(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

// ---------------------------------------------------------------- ethtool

const SIOCETHTOOL: u32 = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x0000_0003;

/// `struct ethtool_drvinfo` (include/uapi/linux/ethtool.h).
#[repr(C)]
struct EthtoolDrvinfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union (padded to the union's size).
#[repr(C)]
struct IfreqData {
    name: [u8; 16],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// What `ethtool -i` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DrvInfo {
    pub driver: String,
    pub version: String,
    pub fw_version: String,
    pub bus_info: String,
    pub erom_version: String,
}

/// Runs ETHTOOL_GDRVINFO on interface `ifname`.
pub(crate) fn ethtool_drvinfo(ifname: &str) -> io::Result<DrvInfo> {
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= 16 || name.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: socket(2) takes no pointers; the returned descriptor is checked, then owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid value for this plain-old-data struct.
    let mut info: EthtoolDrvinfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    let mut req = IfreqData {
        name: [0; 16],
        data: (&raw mut info).cast(),
        _pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name);
    // SAFETY: SIOCETHTOOL reads `req` (a NUL-terminated name and a pointer) and writes at most
    // size_of::<EthtoolDrvinfo>() bytes into `info`; both live on this frame until it returns.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL as _, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(DrvInfo {
        driver: c_str(&info.driver),
        version: c_str(&info.version),
        fw_version: c_str(&info.fw_version),
        bus_info: c_str(&info.bus_info),
        erom_version: c_str(&info.erom_version),
    })
}

// ---------------------------------------------------------------- OpenIPMI

/// `struct ipmi_msg`.
#[repr(C)]
struct IpmiMsg {
    netfn: u8,
    cmd: u8,
    data_len: u16,
    data: *mut u8,
}

/// `struct ipmi_req`.
#[repr(C)]
struct IpmiReq {
    addr: *mut u8,
    addr_len: u32,
    msgid: libc::c_long,
    msg: IpmiMsg,
}

/// `struct ipmi_recv`.
#[repr(C)]
struct IpmiRecv {
    recv_type: libc::c_int,
    addr: *mut u8,
    addr_len: u32,
    msgid: libc::c_long,
    msg: IpmiMsg,
}

/// `struct ipmi_system_interface_addr`.
#[repr(C)]
struct IpmiSystemInterfaceAddr {
    addr_type: libc::c_int,
    channel: libc::c_short,
    lun: u8,
}

const IPMI_IOC_MAGIC: u8 = b'i';
const IPMICTL_RECEIVE_MSG_TRUNC: u32 = ioc(
    IOC_READ | IOC_WRITE,
    IPMI_IOC_MAGIC,
    11,
    size_of::<IpmiRecv>(),
);
const IPMICTL_SEND_COMMAND: u32 = ioc(IOC_READ, IPMI_IOC_MAGIC, 13, size_of::<IpmiReq>());
const IPMI_SYSTEM_INTERFACE_ADDR_TYPE: libc::c_int = 0x0c;
const IPMI_BMC_CHANNEL: libc::c_short = 0x0f;
const IPMI_RESPONSE_RECV_TYPE: libc::c_int = 1;
/// `IPMI_MAX_ADDR_SIZE`.
const IPMI_MAX_ADDR_SIZE: usize = 32;

/// Sends one request to the BMC through the OpenIPMI device and returns the response data
/// (completion code first). Waits at most `timeout` for the answer.
pub(crate) fn ipmi_request(
    dev: &File,
    netfn: u8,
    cmd: u8,
    data: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let fd = dev.as_raw_fd();
    let mut addr = IpmiSystemInterfaceAddr {
        addr_type: IPMI_SYSTEM_INTERFACE_ADDR_TYPE,
        channel: IPMI_BMC_CHANNEL,
        lun: 0,
    };
    let mut payload = data.to_vec();
    let msgid: libc::c_long = 0x4d41; // "MA"
    let mut req = IpmiReq {
        addr: (&raw mut addr).cast(),
        addr_len: size_of::<IpmiSystemInterfaceAddr>() as u32,
        msgid,
        msg: IpmiMsg {
            netfn,
            cmd,
            data_len: u16::try_from(payload.len()).unwrap_or(u16::MAX),
            data: payload.as_mut_ptr(),
        },
    };
    // SAFETY: the kernel copies `req`, the address (addr_len bytes) and data_len bytes of
    // payload during the call; all three are owned by this frame.
    let rc = unsafe { libc::ioctl(fd, IPMICTL_SEND_COMMAND as _, &raw mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no answer from the BMC",
            ));
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis())
            .unwrap_or(libc::c_int::MAX)
            .max(1);
        // SAFETY: one pollfd owned by this frame, count 1.
        let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            continue;
        }
        let mut raddr = [0u8; IPMI_MAX_ADDR_SIZE];
        let mut rdata = [0u8; 256];
        let mut recv = IpmiRecv {
            recv_type: 0,
            addr: raddr.as_mut_ptr(),
            addr_len: IPMI_MAX_ADDR_SIZE as u32,
            msgid: 0,
            msg: IpmiMsg {
                netfn: 0,
                cmd: 0,
                data_len: rdata.len() as u16,
                data: rdata.as_mut_ptr(),
            },
        };
        // SAFETY: the kernel writes at most addr_len bytes to `raddr` and data_len bytes to
        // `rdata` (truncating, as _TRUNC says) and updates `recv`; all owned by this frame.
        let rc = unsafe { libc::ioctl(fd, IPMICTL_RECEIVE_MSG_TRUNC as _, &raw mut recv) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // EMSGSIZE: truncated, data is still valid.
            if e.raw_os_error() != Some(libc::EMSGSIZE) {
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        }
        if recv.recv_type == IPMI_RESPONSE_RECV_TYPE && recv.msgid == msgid {
            let len = usize::from(recv.msg.data_len).min(rdata.len());
            return Ok(rdata[..len].to_vec());
        }
    }
}

/// Opens an IPMI device node read-write, as the driver requires.
pub(crate) fn open_rw(path: &std::path::Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

// ---------------------------------------------------------------- NVMe

/// `struct nvme_passthru_cmd` / `nvme_admin_cmd` (include/uapi/linux/nvme_ioctl.h).
#[repr(C)]
#[derive(Default)]
struct NvmeAdminCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const NVME_IOCTL_ADMIN_CMD: u32 = ioc(IOC_READ | IOC_WRITE, b'N', 0x41, size_of::<NvmeAdminCmd>());

/// Reads the 512-byte SMART / Health Information log (log page 02h, all namespaces) from an
/// NVMe controller character device such as `/dev/nvme0`.
pub(crate) fn nvme_smart_log(dev: &File) -> io::Result<[u8; 512]> {
    let mut buf = [0u8; 512];
    let numd: u32 = (buf.len() / 4) as u32 - 1;
    let mut cmd = NvmeAdminCmd {
        opcode: 0x02, // Get Log Page
        nsid: 0xffff_ffff,
        addr: buf.as_mut_ptr() as u64,
        data_len: buf.len() as u32,
        cdw10: (numd << 16) | 0x02,
        timeout_ms: 1000,
        ..NvmeAdminCmd::default()
    };
    // SAFETY: the kernel maps `data_len` bytes at `addr` (our 512-byte buffer, alive for the
    // call) for the device to write, and updates `cmd.result`.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), NVME_IOCTL_ADMIN_CMD as _, &raw mut cmd) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if rc > 0 {
        return Err(io::Error::other(format!("NVMe status {rc:#x}")));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel_on_64_bit() {
        assert_eq!(size_of::<EthtoolDrvinfo>(), 196);
        assert_eq!(size_of::<IfreqData>(), 40);
        assert_eq!(size_of::<NvmeAdminCmd>(), 72);
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(size_of::<IpmiReq>(), 40);
            assert_eq!(size_of::<IpmiRecv>(), 48);
            assert_eq!(IPMICTL_SEND_COMMAND, 0x8028_690d);
            assert_eq!(IPMICTL_RECEIVE_MSG_TRUNC, 0xc030_690b);
        }
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xc048_4e41);
    }

    #[test]
    fn ethtool_on_loopback_answers_or_refuses_cleanly() {
        // lo has no driver info on most kernels (EOPNOTSUPP); either way no crash.
        let _ = ethtool_drvinfo("lo");
        assert!(ethtool_drvinfo("this-name-is-too-long").is_err());
    }
}
