//! IPMI over LAN (IPMI v2.0 RMCP+) for BMCs without Redfish: inventory from Get Device ID, Get
//! System GUID and FRU device 0.
//!
//! [`collect`] opens one RMCP+ session, proposing cipher suite 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96,
//! AES-CBC-128) and, if the BMC refuses it, suite 17 (RAKP-HMAC-SHA256, HMAC-SHA256-128,
//! AES-CBC-128). Suite 0 and the other unauthenticated or unencrypted suites are never used:
//! they let anyone in who knows a user name. The session asks for User privilege (all these
//! commands need) with name-only lookup; a BMC key (K_G) is not supported (K_G = the password,
//! the default on every BMC). The password lives only in [`Credentials`] and in the zeroized,
//! `Debug`-redacted key material of [`wire::Rakp`] / [`wire::SessionCrypto`]; nothing logs it.
//!
//! Sensors (SDR + Get Sensor Reading), DCMI power and the SEL: [`read_sdr`], [`poll_sensors`]
//! and [`read_sel`] (each in its own session), or the same on one [`IpmiSession`]; see
//! [`telemetry`] for the sensor id scheme.
//!
//! Like the Redfish collector, anything unreadable after the session is open lands in the
//! snapshot's `errors`; only failing to open a session at all is an error.
//!
//! ## The system GUID's byte order
//! The IPMI specification (v2.0, Get System GUID, table 20-10) sends the GUID with every field
//! least significant byte first, i.e. the RFC 4122 bytes wholly reversed. Many BMCs instead copy
//! the SMBIOS bytes, where only the first three fields are little-endian. The UUID this module
//! reports is the SMBIOS system UUID as `dmidecode`, the in-band agent and Redfish print it, so
//! the same server meets under one `server_id`. [`decode_system_guid`] reads the bytes in SMBIOS
//! order when that gives a well-formed RFC 4122 UUID (version 1–5, variant 10xx), else in IPMI
//! order when that does, else in SMBIOS order; the choice is recorded on the BMC component as
//! `system_guid_encoding`. (`ipmitool mc guid` guesses similarly.)

pub mod dcmi;
pub mod fru;
pub mod sdr;
pub mod sel;
mod session;
pub mod telemetry;
pub mod wire;

use std::collections::HashMap;
use std::time::Duration;

use automata_schemas::types::{
    Component, ComponentKind, HardwareLogEntry, InventorySnapshot, InventorySource, SystemIdentity,
    TelemetryReading,
};

use crate::Credentials;
use session::{NETFN_APP, NETFN_STORAGE, Session};
pub use telemetry::IpmiSession;

/// The RMCP port BMCs listen on.
pub const DEFAULT_PORT: u16 = 623;

/// How patient to be with a BMC over UDP.
#[derive(Debug, Clone)]
pub struct IpmiOptions {
    /// How long to wait for each answer before resending (per attempt, so one request takes at
    /// most `timeout × (retries + 1)`).
    pub timeout: Duration,
    /// Resends of an unanswered request (UDP loses packets; BMCs are slow).
    pub retries: u32,
}

impl Default for IpmiOptions {
    fn default() -> Self {
        IpmiOptions {
            timeout: Duration::from_secs(2),
            retries: 2,
        }
    }
}

/// Why an IPMI collection failed (only session set-up failures reach the caller).
#[derive(Debug, thiserror::Error)]
pub enum IpmiError {
    /// The address is not `host[:port]`, or does not resolve.
    #[error("invalid IPMI address {address:?}: {reason}")]
    Address {
        /// What was given.
        address: String,
        /// Why it is not usable.
        reason: String,
    },
    /// The credentials cannot be used with IPMI (too long).
    #[error("{address}: unusable credentials: {reason}")]
    Credentials {
        /// The BMC.
        address: String,
        /// Why.
        reason: String,
    },
    /// The local socket failed.
    #[error("{address}: network error: {reason}")]
    Io {
        /// The BMC.
        address: String,
        /// The OS message.
        reason: String,
    },
    /// The host answered ICMP port unreachable: nothing listens for IPMI there.
    #[error("{address}: UDP port unreachable (no IPMI service there)")]
    Unreachable {
        /// The BMC.
        address: String,
    },
    /// No answer.
    #[error("{address}: no answer within {secs:.1} s ({attempts} attempts)")]
    Timeout {
        /// The BMC.
        address: String,
        /// Per-attempt timeout.
        secs: f64,
        /// Attempts made.
        attempts: u32,
    },
    /// RAKP failed: wrong user name or password, or a privilege the user lacks.
    #[error("{address}: IPMI authentication failed: {reason}")]
    Auth {
        /// The BMC.
        address: String,
        /// What the handshake said.
        reason: String,
    },
    /// The BMC refused this cipher suite (internal: the next suite is tried).
    #[error("{address}: cipher suite refused (status {status:#04x})")]
    SuiteRejected {
        /// The BMC.
        address: String,
        /// RMCP+ status code.
        status: u8,
    },
    /// The BMC accepts none of the cipher suites this client supports (3, 17).
    #[error("{address}: no supported RMCP+ cipher suite (3 or 17) accepted: {reason}")]
    NoCipherSuite {
        /// The BMC.
        address: String,
        /// What each proposal got.
        reason: String,
    },
    /// The BMC refused or botched the session.
    #[error("{address}: RMCP+ session failed: {reason}")]
    Session {
        /// The BMC.
        address: String,
        /// What happened.
        reason: String,
    },
    /// A command completed with an error code.
    #[error("{address}: {what}: completion code {code:#04x} ({})", wire::completion_text(*code))]
    Completion {
        /// The BMC.
        address: String,
        /// The command.
        what: String,
        /// Completion code.
        code: u8,
    },
    /// An answer that is not valid IPMI.
    #[error("{address}: malformed answer: {reason}")]
    Malformed {
        /// The BMC.
        address: String,
        /// What was wrong.
        reason: String,
    },
}

impl IpmiError {
    /// Worth retrying later: the BMC may answer next time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IpmiError::Timeout { .. } | IpmiError::Io { .. } | IpmiError::Unreachable { .. }
        ) || matches!(self, IpmiError::Session { reason, .. } if reason.contains("insufficient resources"))
    }
}

/// Splits `host[:port]` (IPv6 as `[addr]:port` or bare) into host and port.
pub fn split_address(address: &str) -> Result<(String, u16), IpmiError> {
    let bad = |reason: &str| IpmiError::Address {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let a = address.trim();
    if a.is_empty() {
        return Err(bad("empty"));
    }
    if let Some(rest) = a.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None if tail.is_empty() => DEFAULT_PORT,
            None => return Err(bad("junk after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    match a.rsplit_once(':') {
        // More than one ':' and no brackets: a bare IPv6 address.
        Some((h, _)) if h.contains(':') => Ok((a.to_string(), DEFAULT_PORT)),
        Some((h, p)) if !h.is_empty() => {
            Ok((h.to_string(), p.parse().map_err(|_| bad("bad port"))?))
        }
        Some(_) => Err(bad("no host")),
        None => Ok((a.to_string(), DEFAULT_PORT)),
    }
}

/// A decoded Get Device ID response (IPMI v2.0 §20.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    /// Device ID.
    pub device_id: u8,
    /// Device revision (low nibble).
    pub device_revision: u8,
    /// Firmware as `major.minor`, the minor BCD printed as two hex digits (like ipmitool).
    pub firmware: String,
    /// IPMI version, e.g. `2.0`.
    pub ipmi_version: String,
    /// IANA enterprise number of the manufacturer.
    pub manufacturer_id: u32,
    /// Product ID.
    pub product_id: u16,
    /// Auxiliary firmware revision bytes as hex, when sent.
    pub aux_firmware: Option<String>,
    /// Device in firmware update or self-initialisation (bit 7 of firmware revision 1).
    pub updating: bool,
}

/// Parses Get Device ID response data (after the completion code).
pub fn parse_device_id(b: &[u8]) -> Option<DeviceId> {
    let h = b.get(..11)?;
    let ver = h[4];
    Some(DeviceId {
        device_id: h[0],
        device_revision: h[1] & 0x0f,
        firmware: format!("{}.{:02x}", h[2] & 0x7f, h[3]),
        ipmi_version: format!("{}.{}", ver & 0x0f, ver >> 4),
        manufacturer_id: u32::from_le_bytes([h[6], h[7], h[8] & 0x0f, 0]),
        product_id: u16::from_le_bytes([h[9], h[10]]),
        aux_firmware: b
            .get(11..15)
            .map(|a| a.iter().map(|x| format!("{x:02x}")).collect()),
        updating: h[2] & 0x80 != 0,
    })
}

/// The byte order a system GUID was read in (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuidEncoding {
    /// First three fields little-endian, the rest as is (SMBIOS; most BMCs).
    Smbios,
    /// All 16 bytes reversed (the IPMI specification).
    Ipmi,
}

fn well_formed(u: &uuid::Uuid) -> bool {
    (1..=5).contains(&u.get_version_num()) && u.get_variant() == uuid::Variant::RFC4122
}

/// Decodes the 16 bytes of Get System GUID (after the completion code) into the SMBIOS system
/// UUID, choosing the byte order as the module documentation says.
pub fn decode_system_guid(b: &[u8]) -> Option<(uuid::Uuid, GuidEncoding)> {
    let raw: [u8; 16] = b.get(..16)?.try_into().ok()?;
    let smbios = uuid::Uuid::from_bytes_le(raw);
    let mut rev = raw;
    rev.reverse();
    let ipmi = uuid::Uuid::from_bytes(rev);
    Some(if well_formed(&smbios) {
        (smbios, GuidEncoding::Smbios)
    } else if well_formed(&ipmi) {
        (ipmi, GuidEncoding::Ipmi)
    } else {
        (smbios, GuidEncoding::Smbios)
    })
}

/// UUIDs firmware ships unset (same list as the agent's): they identify nothing.
pub const PLACEHOLDER_UUIDS: &[&str] = &[
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
];

/// Well-known IANA enterprise numbers of BMC makers (same table as the agent's).
pub fn manufacturer_name(iana: u32) -> Option<&'static str> {
    Some(match iana {
        2 => "IBM",
        11 => "HPE",
        343 => "Intel",
        674 => "Dell",
        2011 => "Huawei",
        10876 => "Supermicro",
        19046 => "Lenovo",
        20301 => "IBM",
        7244 => "Quanta",
        15370 => "GIGABYTE",
        40092 => "ASRock Rack",
        49622 => "OpenBMC",
        _ => return None,
    })
}

/// What [`collect`] read, before mapping: kept separate so the mapping is a pure, tested
/// function.
#[derive(Debug, Clone, Default)]
pub struct IpmiReadings {
    /// Get Device ID.
    pub device: Option<DeviceId>,
    /// Get System GUID, raw 16 bytes.
    pub system_guid: Option<Vec<u8>>,
    /// FRU device 0.
    pub fru: Option<fru::FruInventory>,
    /// Negotiated cipher suite id.
    pub cipher_suite: Option<u8>,
    /// What could not be read.
    pub errors: Vec<String>,
}

fn component(id: &str, kind: ComponentKind, name: String) -> Component {
    Component {
        component_id: id.to_string(),
        kind,
        name,
        manufacturer: None,
        model: None,
        serial: None,
        part_number: None,
        firmware_version: None,
        location: None,
        properties: HashMap::new(),
    }
}

fn prop(c: &mut Component, k: &str, v: Option<String>) {
    if let Some(v) = v {
        c.properties.insert(k.to_string(), v);
    }
}

/// Maps what was read to an inventory snapshot (`collected_at` in ms).
pub fn to_snapshot(address: &str, r: IpmiReadings, collected_at: i64) -> InventorySnapshot {
    let mut errors = r.errors;
    let guid = r.system_guid.as_deref().and_then(decode_system_guid);
    let usable =
        guid.filter(|(u, _)| !PLACEHOLDER_UUIDS.contains(&u.hyphenated().to_string().as_str()));
    let server_id = match usable {
        Some((u, _)) => u.hyphenated().to_string(),
        None => {
            errors.push(match guid {
                Some((u, _)) => {
                    format!("system GUID {u} is a placeholder: server identified as ipmi:{address}")
                }
                None => format!("no system GUID: server identified as ipmi:{address}"),
            });
            format!("ipmi:{address}")
        }
    };
    let fru = r.fru.unwrap_or_default();
    let (product, board) = (fru.product.as_ref(), fru.board.as_ref());
    let system = SystemIdentity {
        manufacturer: product
            .and_then(|p| p.manufacturer.clone())
            .or_else(|| board.and_then(|b| b.manufacturer.clone())),
        product: product
            .and_then(|p| p.name.clone())
            .or_else(|| board.and_then(|b| b.product.clone())),
        serial: product
            .and_then(|p| p.serial.clone())
            .or_else(|| fru.chassis.as_ref().and_then(|c| c.serial.clone())),
        uuid: usable.map(|(u, _)| u.hyphenated().to_string()),
        sku: product.and_then(|p| p.part_number.clone()),
        asset_tag: product.and_then(|p| p.asset_tag.clone()),
    };

    let mut components = Vec::new();
    let mut bmc = component("bmc:0", ComponentKind::Bmc, "BMC".into());
    if let Some(d) = &r.device {
        bmc.manufacturer = Some(
            manufacturer_name(d.manufacturer_id)
                .map(str::to_string)
                .unwrap_or_else(|| format!("IANA {}", d.manufacturer_id)),
        );
        bmc.model = Some(format!("product {:#06x}", d.product_id));
        bmc.firmware_version = Some(d.firmware.clone());
        prop(&mut bmc, "ipmi_version", Some(d.ipmi_version.clone()));
        prop(
            &mut bmc,
            "manufacturer_id",
            Some(d.manufacturer_id.to_string()),
        );
        prop(
            &mut bmc,
            "product_id",
            Some(format!("{:#06x}", d.product_id)),
        );
        prop(&mut bmc, "device_id", Some(d.device_id.to_string()));
        prop(
            &mut bmc,
            "device_revision",
            Some(d.device_revision.to_string()),
        );
        prop(&mut bmc, "aux_firmware", d.aux_firmware.clone());
        if d.updating {
            prop(&mut bmc, "updating", Some("true".into()));
        }
    }
    prop(&mut bmc, "address", Some(address.to_string()));
    prop(
        &mut bmc,
        "cipher_suite",
        r.cipher_suite.map(|s| s.to_string()),
    );
    if let Some((u, enc)) = guid {
        prop(&mut bmc, "system_guid", Some(u.hyphenated().to_string()));
        prop(
            &mut bmc,
            "system_guid_encoding",
            Some(match enc {
                GuidEncoding::Smbios => "smbios".into(),
                GuidEncoding::Ipmi => "ipmi".into(),
            }),
        );
    }
    components.push(bmc);

    if let Some(c) = &fru.chassis {
        let name = fru::chassis_type_name(c.chassis_type)
            .unwrap_or("Chassis")
            .to_string();
        let mut x = component("chassis:0", ComponentKind::Chassis, name);
        x.serial = c.serial.clone();
        x.part_number = c.part_number.clone();
        prop(&mut x, "chassis_type", Some(c.chassis_type.to_string()));
        for (i, v) in c.custom.iter().enumerate() {
            prop(&mut x, &format!("custom.{i}"), Some(v.clone()));
        }
        components.push(x);
    }
    if let Some(b) = &fru.board {
        let mut x = component(
            "board:0",
            ComponentKind::Baseboard,
            b.product.clone().unwrap_or_else(|| "Board".into()),
        );
        x.manufacturer = b.manufacturer.clone();
        x.model = b.product.clone();
        x.serial = b.serial.clone();
        x.part_number = b.part_number.clone();
        prop(&mut x, "mfg_date", b.mfg_date.clone());
        prop(&mut x, "fru_file_id", b.fru_file_id.clone());
        for (i, v) in b.custom.iter().enumerate() {
            prop(&mut x, &format!("custom.{i}"), Some(v.clone()));
        }
        components.push(x);
    }
    if let Some(p) = product {
        // The product area has no component of its own in the schema: what SystemIdentity does
        // not hold rides on the chassis (or BMC) component.
        let target = components
            .iter()
            .position(|c| c.kind == ComponentKind::Chassis)
            .unwrap_or(0);
        if let Some(c) = components.get_mut(target) {
            prop(c, "product_version", p.version.clone());
            prop(c, "product_part_number", p.part_number.clone());
            prop(c, "product_fru_file_id", p.fru_file_id.clone());
            for (i, v) in p.custom.iter().enumerate() {
                prop(c, &format!("product_custom.{i}"), Some(v.clone()));
            }
        }
    }
    errors.extend(fru.errors);

    InventorySnapshot {
        server_id,
        source: InventorySource::Ipmi,
        collected_at,
        system,
        bios: None,
        components,
        errors,
    }
}

/// Collects a BMC's inventory over RMCP+: `address` is `host[:port]` (port 623 by default).
/// Fails only when no session can be opened; anything unreadable after that is in `errors`.
pub async fn collect(
    address: &str,
    creds: &Credentials,
    opts: &IpmiOptions,
) -> Result<InventorySnapshot, IpmiError> {
    let peer = telemetry::resolve(address).await?;
    let mut s = Session::open(address, peer, creds, opts.timeout, opts.retries).await?;
    let mut r = IpmiReadings {
        cipher_suite: Some(s.suite().id()),
        ..Default::default()
    };
    read_all(&mut s, address, &mut r).await;
    if let Err(e) = s.close().await {
        tracing::debug!(address, error = %e, "Close Session failed");
    }
    Ok(to_snapshot(
        address,
        r,
        chrono::Utc::now().timestamp_millis(),
    ))
}

/// Reads a BMC's SDR repository in its own session, for the caller to keep between polls.
pub async fn read_sdr(
    address: &str,
    creds: &Credentials,
    opts: &IpmiOptions,
) -> Result<sdr::SdrRepository, IpmiError> {
    let mut s = IpmiSession::open(address, creds, opts).await?;
    let r = s.read_sdr().await;
    close_quietly(s, address).await;
    r
}

/// Polls a BMC's sensors (and DCMI power) in its own session; `sdr` from [`read_sdr`] is
/// re-read in place when the BMC's repository changed. See [`telemetry`] for the sensor ids.
pub async fn poll_sensors(
    address: &str,
    creds: &Credentials,
    opts: &IpmiOptions,
    server_id: &str,
    sdr: &mut sdr::SdrRepository,
) -> Result<Vec<TelemetryReading>, IpmiError> {
    let mut s = IpmiSession::open(address, creds, opts).await?;
    let r = s.poll_sensors(sdr, server_id).await;
    close_quietly(s, address).await;
    r
}

/// Reads a BMC's SEL entries after record `after` (all when None) in its own session, with the
/// last record id to pass next time; `sdr` (optional) names the sensors in messages.
pub async fn read_sel(
    address: &str,
    creds: &Credentials,
    opts: &IpmiOptions,
    server_id: &str,
    after: Option<u16>,
    sdr: Option<&sdr::SdrRepository>,
) -> Result<(Vec<HardwareLogEntry>, Option<u16>), IpmiError> {
    let mut s = IpmiSession::open(address, creds, opts).await?;
    let r = s.read_sel(server_id, after, sdr).await;
    close_quietly(s, address).await;
    r
}

async fn close_quietly(s: IpmiSession, address: &str) {
    if let Err(e) = s.close().await {
        tracing::debug!(address, error = %e, "Close Session failed");
    }
}

/// A command that must succeed with completion code 0.
async fn ok_command(
    s: &mut Session,
    address: &str,
    what: &str,
    netfn: u8,
    cmd: u8,
    data: &[u8],
) -> Result<Vec<u8>, IpmiError> {
    let r = s.command(netfn, cmd, data).await?;
    if r.completion != 0 {
        return Err(IpmiError::Completion {
            address: address.to_string(),
            what: what.to_string(),
            code: r.completion,
        });
    }
    Ok(r.data)
}

async fn read_all(s: &mut Session, address: &str, r: &mut IpmiReadings) {
    match ok_command(s, address, "Get Device ID", NETFN_APP, 0x01, &[]).await {
        Ok(d) => match parse_device_id(&d) {
            Some(d) => r.device = Some(d),
            None => r
                .errors
                .push(format!("Get Device ID: {} byte answer, need 11", d.len())),
        },
        Err(e) => {
            let dead = matches!(e, IpmiError::Timeout { .. });
            r.errors.push(e.to_string());
            if dead {
                r.errors
                    .push("BMC stopped answering: GUID and FRU not read".into());
                return;
            }
        }
    }
    match ok_command(s, address, "Get System GUID", NETFN_APP, 0x37, &[]).await {
        Ok(d) if d.len() >= 16 => r.system_guid = Some(d),
        Ok(d) => r
            .errors
            .push(format!("Get System GUID: {} byte answer, need 16", d.len())),
        Err(e) => {
            let dead = matches!(e, IpmiError::Timeout { .. });
            r.errors.push(e.to_string());
            if dead {
                r.errors.push("BMC stopped answering: FRU not read".into());
                return;
            }
        }
    }
    match read_fru(s, address, 0).await {
        Ok(image) => r.fru = Some(fru::parse(&image)),
        Err(e) => r.errors.push(format!("FRU device 0: {e}")),
    }
}

/// Reads the part of FRU device `id` that the parser uses: header, then the info areas.
async fn read_fru(s: &mut Session, address: &str, id: u8) -> Result<Vec<u8>, IpmiError> {
    let info = ok_command(
        s,
        address,
        "Get FRU Inventory Area Info",
        NETFN_STORAGE,
        0x10,
        &[id],
    )
    .await?;
    let (size, words) = match info.as_slice() {
        [lo, hi, access, ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), access & 1 != 0),
        _ => {
            return Err(IpmiError::Malformed {
                address: address.to_string(),
                reason: "Get FRU Inventory Area Info: short answer".into(),
            });
        }
    };
    if size < 8 {
        return Err(IpmiError::Malformed {
            address: address.to_string(),
            reason: format!("FRU inventory area is {size} bytes"),
        });
    }
    let mut reader = FruReader {
        id,
        size,
        words,
        chunk: 32,
        image: Vec::new(),
    };
    reader.fill(s, address, 8).await?;
    let header = match fru::parse_header(&reader.image) {
        Ok(h) => h,
        // Hand the header to the parser, which records why it is unusable.
        Err(_) => return Ok(reader.image),
    };
    // Each area's length byte, then everything up to the end of the last area.
    for off in [header.chassis, header.board, header.product] {
        if off != 0 && off + 2 <= size {
            reader.fill(s, address, off + 2).await?;
        }
    }
    let end = fru::needed_len(&header, |off| reader.image.get(off + 1).copied()).min(size);
    reader.fill(s, address, end).await?;
    Ok(reader.image)
}

struct FruReader {
    id: u8,
    size: usize,
    words: bool,
    chunk: usize,
    image: Vec<u8>,
}

impl FruReader {
    /// Reads on from the current end of `image` until it holds `end` bytes (or the area ends).
    async fn fill(&mut self, s: &mut Session, address: &str, end: usize) -> Result<(), IpmiError> {
        let end = end.min(self.size);
        let mut busy = 0;
        while self.image.len() < end {
            let unit = if self.words { 2 } else { 1 };
            let off = self.image.len() / unit;
            let want = ((end - self.image.len()).min(self.chunk) / unit).max(1);
            let Ok(off16) = u16::try_from(off) else { break };
            let [lo, hi] = off16.to_le_bytes();
            let r = s
                .command(NETFN_STORAGE, 0x11, &[self.id, lo, hi, want as u8])
                .await?;
            match r.completion {
                0 => {}
                // Too much asked for this BMC's buffers: ask for less.
                0xc7 | 0xc8 | 0xca if self.chunk > 8 => {
                    self.chunk /= 2;
                    continue;
                }
                0x81 if busy < 5 => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                code => {
                    return Err(IpmiError::Completion {
                        address: address.to_string(),
                        what: format!("Read FRU Data at offset {}", self.image.len()),
                        code,
                    });
                }
            }
            let count = usize::from(r.data.first().copied().unwrap_or(0)) * unit;
            let data = r.data.get(1..).unwrap_or_default();
            if count == 0 || data.len() < count {
                return Err(IpmiError::Malformed {
                    address: address.to_string(),
                    reason: format!(
                        "Read FRU Data at offset {}: {} bytes announced, {} sent",
                        self.image.len(),
                        count,
                        data.len()
                    ),
                });
            }
            self.image
                .extend_from_slice(data.get(..count).unwrap_or_default());
        }
        Ok(())
    }
}
