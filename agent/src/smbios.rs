//! SMBIOS (DMI) tables: types 0 (BIOS), 1 (system), 2 (baseboard), 3 (chassis), 4 (processor)
//! and 17 (memory device), read from `/sys/firmware/dmi/tables/{smbios_entry_point,DMI}`, falling
//! back to the world-readable parts of `/sys/class/dmi/id/*`.
//!
//! Why our own parser rather than `smbios-lib` or `dmidecode`: we need six structure types and
//! a hard guarantee that arbitrary bytes never panic us (this runs as root on every server, on
//! whatever the firmware wrote). `smbios-lib` brings a large typed model of every structure type
//! (plus its own file and `/dev/mem` readers) for the six we use, and `dmidecode` (the crate) is
//! a `no_std` decoder whose structures we would still map field by field. A structure walk over
//! a byte slice with bounds-checked accessors is ~150 lines, is fuzzed by proptest in
//! `tests/smbios.rs`, and follows the DMTF SMBIOS 3.x layout (DSP0134) directly.

use std::collections::HashMap;
use std::path::Path;

use automata_schemas::types::{BiosInfo, Component, ComponentKind, SystemIdentity};

use crate::fsutil;
use crate::{component, set_prop};

/// Where the raw tables live in sysfs.
pub const ENTRY_POINT_PATH: &str = "sys/firmware/dmi/tables/smbios_entry_point";
/// The structure table itself.
pub const TABLE_PATH: &str = "sys/firmware/dmi/tables/DMI";
/// The kernel's decoded fallback.
pub const DMI_ID_DIR: &str = "sys/class/dmi/id";

/// Why SMBIOS bytes could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmbiosError {
    /// The entry point is not `_SM_` (2.x) or `_SM3_` (3.x).
    #[error("entry point has no _SM_ or _SM3_ anchor")]
    BadAnchor,
    /// The entry point is shorter than its anchor's layout.
    #[error("entry point truncated ({0} bytes)")]
    Truncated(usize),
    /// The entry point's checksum does not add up to zero.
    #[error("entry point checksum mismatch")]
    BadChecksum,
    /// A structure header claims a formatted length below 4.
    #[error("structure at offset {offset} has invalid length {len}")]
    BadLength {
        /// Byte offset of the structure in the table.
        offset: usize,
        /// The length it claims.
        len: u8,
    },
    /// A structure or its string set runs past the end of the table.
    #[error("structure at offset {0} runs past the end of the table")]
    Overrun(usize),
}

/// The SMBIOS version and table size the entry point announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryPoint {
    /// Major version (2 or 3).
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Docrev (3.x only, else 0).
    pub docrev: u8,
    /// Table length (2.x) or maximum table size (3.x).
    pub table_len: u32,
}

impl EntryPoint {
    /// `major.minor.docrev` as text.
    pub fn version(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.docrev)
    }
    /// True when the UUID's first three fields are little-endian (SMBIOS 2.6 and later).
    pub fn uuid_little_endian(&self) -> bool {
        (self.major, self.minor) >= (2, 6)
    }
}

/// Parses `smbios_entry_point` (the 2.1 32-bit `_SM_` or the 3.0 64-bit `_SM3_` form).
pub fn parse_entry_point(b: &[u8]) -> Result<EntryPoint, SmbiosError> {
    let checksum_ok = |len: usize| {
        b.get(..len)
            .map(|s| s.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0)
            .unwrap_or(false)
    };
    if b.starts_with(b"_SM3_") {
        if b.len() < 24 {
            return Err(SmbiosError::Truncated(b.len()));
        }
        let len = usize::from(b[6]).clamp(24, b.len());
        if !checksum_ok(len) {
            return Err(SmbiosError::BadChecksum);
        }
        Ok(EntryPoint {
            major: b[7],
            minor: b[8],
            docrev: b[9],
            table_len: le32(b, 12).unwrap_or(0),
        })
    } else if b.starts_with(b"_SM_") {
        if b.len() < 31 {
            return Err(SmbiosError::Truncated(b.len()));
        }
        let len = usize::from(b[5]).clamp(31, b.len());
        if !checksum_ok(len) {
            return Err(SmbiosError::BadChecksum);
        }
        Ok(EntryPoint {
            major: b[6],
            minor: b[7],
            docrev: 0,
            table_len: u32::from(le16(b, 22).unwrap_or(0)),
        })
    } else {
        Err(SmbiosError::BadAnchor)
    }
}

/// One SMBIOS structure: its formatted area (header included) and its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure<'a> {
    /// Structure type.
    pub ty: u8,
    /// Handle.
    pub handle: u16,
    /// The formatted area, starting with the 4-byte header.
    pub data: &'a [u8],
    /// The string set, in order (string number 1 is index 0).
    pub strings: Vec<&'a [u8]>,
}

impl Structure<'_> {
    /// A byte of the formatted area, `None` past its end (older structure versions are shorter).
    pub fn u8(&self, off: usize) -> Option<u8> {
        self.data.get(off).copied()
    }
    /// A little-endian word of the formatted area.
    pub fn u16(&self, off: usize) -> Option<u16> {
        le16(self.data, off)
    }
    /// A little-endian dword of the formatted area.
    pub fn u32(&self, off: usize) -> Option<u32> {
        le32(self.data, off)
    }
    /// A little-endian qword of the formatted area.
    pub fn u64(&self, off: usize) -> Option<u64> {
        let s = self.data.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(s.try_into().ok()?))
    }
    /// The string the byte at `off` refers to, trimmed, without placeholders like "Not Specified".
    pub fn string(&self, off: usize) -> Option<String> {
        let n = usize::from(self.u8(off)?);
        let raw = self.strings.get(n.checked_sub(1)?)?;
        clean(&String::from_utf8_lossy(raw))
    }
}

fn le16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn le32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Values firmware writes where it has nothing to say; they are reported as absent.
const PLACEHOLDERS: &[&str] = &[
    "not specified",
    "not applicable",
    "not available",
    "not present",
    "to be filled by o.e.m.",
    "to be filled by o.e.m",
    "default string",
    "system serial number",
    "system product name",
    "system manufacturer",
    "base board serial number",
    "chassis serial number",
    "asset tag",
    "asset-1234567890",
    "no asset tag",
    "none",
    "n/a",
    "na",
    "0123456789",
    "serial number",
    "part number",
    "unknown",
    "undefined",
    "empty",
    "oem",
    "o.e.m.",
];

/// Trims a firmware string; `None` for empty strings and known placeholders.
pub fn clean(s: &str) -> Option<String> {
    let t = s
        .trim_matches(|c: char| c.is_whitespace() || c == '\0' || c.is_control())
        .to_string();
    if t.is_empty() || PLACEHOLDERS.contains(&t.to_ascii_lowercase().as_str()) {
        return None;
    }
    // All 0x00/0xFF/space-like padding shows as replacement characters or repeated '0'/'F'/' '.
    if t.chars().all(|c| c == '\u{fffd}') {
        return None;
    }
    Some(t)
}

/// Walks the structure table; returns the structures read and the error that stopped the walk,
/// if any (everything before a malformed structure is still returned). Stops at type 127.
pub fn parse_table(b: &[u8]) -> (Vec<Structure<'_>>, Option<SmbiosError>) {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < b.len() {
        let Some(header) = b.get(off..off.saturating_add(4)) else {
            // Trailing padding shorter than a header: not an error.
            break;
        };
        let (ty, len) = (header[0], header[1]);
        let handle = u16::from_le_bytes([header[2], header[3]]);
        if len < 4 {
            return (out, Some(SmbiosError::BadLength { offset: off, len }));
        }
        let Some(data) = b.get(off..off + usize::from(len)) else {
            return (out, Some(SmbiosError::Overrun(off)));
        };
        // The string set: NUL-terminated strings ending with an extra NUL ("\0\0" when empty).
        let str_start = off + usize::from(len);
        let rest = b.get(str_start..).unwrap_or(&[]);
        let Some(end) = rest.windows(2).position(|w| w == [0, 0]) else {
            return (out, Some(SmbiosError::Overrun(off)));
        };
        let strings: Vec<&[u8]> = if end == 0 {
            Vec::new()
        } else {
            rest[..end].split(|c| *c == 0).collect()
        };
        out.push(Structure {
            ty,
            handle,
            data,
            strings,
        });
        off = str_start + end + 2;
        if ty == 127 {
            break;
        }
    }
    (out, None)
}

/// An SMBIOS type 4 processor socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Processor {
    /// Structure handle.
    pub handle: u16,
    /// Socket designation ("CPU0", "P1").
    pub socket: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Version string (usually the model).
    pub version: Option<String>,
    /// Whether the socket is populated (status bit 6).
    pub populated: bool,
    /// Processor family code.
    pub family: Option<u16>,
    /// Max speed, MHz.
    pub max_speed_mhz: Option<u16>,
    /// Current speed, MHz.
    pub current_speed_mhz: Option<u16>,
    /// Core count.
    pub cores: Option<u16>,
    /// Enabled cores.
    pub cores_enabled: Option<u16>,
    /// Thread count.
    pub threads: Option<u16>,
    /// Serial number.
    pub serial: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
    /// Processor ID (CPUID signature and feature flags on x86), hex.
    pub id: Option<String>,
}

/// An SMBIOS type 17 memory device (only populated slots are returned by [`decode`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dimm {
    /// Structure handle.
    pub handle: u16,
    /// Device locator ("DIMM_A1").
    pub locator: Option<String>,
    /// Bank locator ("P0 CHANNEL A").
    pub bank: Option<String>,
    /// Size in MiB (`None` when the firmware says unknown).
    pub size_mib: Option<u64>,
    /// Memory type ("DDR4").
    pub memory_type: Option<String>,
    /// Form factor ("DIMM").
    pub form_factor: Option<String>,
    /// Maximum speed, MT/s.
    pub speed_mts: Option<u32>,
    /// Configured speed, MT/s.
    pub configured_speed_mts: Option<u32>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Asset tag.
    pub asset_tag: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Rank count.
    pub rank: Option<u8>,
    /// Data width in bits.
    pub data_width: Option<u16>,
    /// Total width in bits (more than data width with ECC).
    pub total_width: Option<u16>,
}

/// Everything decoded from one table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Type 1 (plus the chassis or baseboard asset tag).
    pub system: SystemIdentity,
    /// Type 0.
    pub bios: Option<BiosInfo>,
    /// Type 0 extras: `bios_revision`, `ec_firmware_revision`, `smbios_version`.
    pub bios_extra: HashMap<String, String>,
    /// Type 1 family and version, type 2 and type 3 as components.
    pub other_components: Vec<Component>,
    /// Type 4 sockets, in table order.
    pub processors: Vec<Processor>,
    /// Type 17 populated slots, in table order.
    pub dimms: Vec<Dimm>,
}

/// Formats the 16 UUID bytes; the first three fields are little-endian from SMBIOS 2.6 on.
/// `None` when all bytes are 0x00 (not present) or 0xFF (not set).
pub fn format_uuid(b: &[u8], little_endian: bool) -> Option<String> {
    let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    if b.iter().all(|x| *x == 0) || b.iter().all(|x| *x == 0xff) {
        return None;
    }
    let mut o = *b;
    if little_endian {
        o[..4].reverse();
        o[4..6].reverse();
        o[6..8].reverse();
    }
    let h: Vec<String> = o.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    ))
}

/// Decodes the structure types the agent uses. `ep` gives the version (for the UUID byte order);
/// without it SMBIOS 2.6+ is assumed, as on every server of the last fifteen years.
pub fn decode(structures: &[Structure<'_>], ep: Option<&EntryPoint>) -> Decoded {
    let le = ep.map(EntryPoint::uuid_little_endian).unwrap_or(true);
    let mut d = Decoded::default();
    let mut chassis_tag = None;
    let mut board_tag = None;
    if let Some(ep) = ep {
        d.bios_extra
            .insert("smbios_version".to_string(), ep.version());
    }
    for s in structures {
        match s.ty {
            0 => {
                d.bios = Some(BiosInfo {
                    vendor: s.string(0x04),
                    version: s.string(0x05),
                    release_date: s.string(0x08),
                });
                if let (Some(maj), Some(min)) = (s.u8(0x14), s.u8(0x15))
                    && maj != 0xff
                {
                    d.bios_extra
                        .insert("bios_revision".to_string(), format!("{maj}.{min}"));
                }
                if let (Some(maj), Some(min)) = (s.u8(0x16), s.u8(0x17))
                    && maj != 0xff
                {
                    d.bios_extra
                        .insert("ec_firmware_revision".to_string(), format!("{maj}.{min}"));
                }
            }
            1 => {
                d.system.manufacturer = s.string(0x04);
                d.system.product = s.string(0x05);
                d.system.serial = s.string(0x07);
                d.system.uuid = s.data.get(0x08..0x18).and_then(|u| format_uuid(u, le));
                d.system.sku = s.string(0x19);
                let mut c = component(
                    "system".to_string(),
                    ComponentKind::Other,
                    d.system
                        .product
                        .clone()
                        .unwrap_or_else(|| "System".to_string()),
                );
                c.manufacturer = d.system.manufacturer.clone();
                c.model = d.system.product.clone();
                c.serial = d.system.serial.clone();
                set_prop(&mut c, "version", s.string(0x06));
                set_prop(&mut c, "family", s.string(0x1A));
                set_prop(&mut c, "sku", d.system.sku.clone());
                d.other_components.push(c);
            }
            2 => {
                board_tag = board_tag.or(s.string(0x08));
                let mut c = component(
                    format!(
                        "baseboard:{}",
                        d.other_components
                            .iter()
                            .filter(|c| c.kind == ComponentKind::Baseboard)
                            .count()
                    ),
                    ComponentKind::Baseboard,
                    s.string(0x05).unwrap_or_else(|| "Baseboard".to_string()),
                );
                c.manufacturer = s.string(0x04);
                c.model = s.string(0x05);
                c.serial = s.string(0x07);
                c.location = s.string(0x0A);
                set_prop(&mut c, "version", s.string(0x06));
                set_prop(&mut c, "asset_tag", s.string(0x08));
                d.other_components.push(c);
            }
            3 => {
                chassis_tag = chassis_tag.or(s.string(0x08));
                let mut c = component(
                    format!(
                        "chassis:{}",
                        d.other_components
                            .iter()
                            .filter(|c| c.kind == ComponentKind::Chassis)
                            .count()
                    ),
                    ComponentKind::Chassis,
                    "Chassis".to_string(),
                );
                c.manufacturer = s.string(0x04);
                c.serial = s.string(0x07);
                set_prop(&mut c, "version", s.string(0x06));
                set_prop(&mut c, "asset_tag", s.string(0x08));
                set_prop(
                    &mut c,
                    "chassis_type",
                    s.u8(0x05).map(|t| chassis_type(t & 0x7f)),
                );
                if let Some(h) = s.u8(0x11).filter(|h| *h != 0) {
                    set_prop(&mut c, "height_u", Some(h));
                }
                d.other_components.push(c);
            }
            4 => d.processors.push(processor(s)),
            17 => {
                if let Some(m) = dimm(s) {
                    d.dimms.push(m);
                }
            }
            _ => {}
        }
    }
    d.system.asset_tag = chassis_tag.or(board_tag);
    d
}

fn processor(s: &Structure<'_>) -> Processor {
    let status = s.u8(0x18).unwrap_or(0);
    let family = match s.u8(0x06) {
        Some(0xfe) => s.u16(0x28),
        f => f.map(u16::from),
    };
    // Counts above 255 live in the 3.0 "2" fields, flagged by 0xFF in the byte field.
    let count = |byte: usize, word: usize| match s.u8(byte) {
        Some(0xff) => s.u16(word),
        Some(0) | None => None,
        Some(n) => Some(u16::from(n)),
    };
    Processor {
        handle: s.handle,
        socket: s.string(0x04),
        manufacturer: s.string(0x07),
        version: s.string(0x10),
        populated: status & 0x40 != 0,
        family,
        max_speed_mhz: s.u16(0x14).filter(|v| *v != 0),
        current_speed_mhz: s.u16(0x16).filter(|v| *v != 0),
        cores: count(0x23, 0x2A),
        cores_enabled: count(0x24, 0x2C),
        threads: count(0x25, 0x2E),
        serial: s.string(0x20),
        asset_tag: s.string(0x21),
        part_number: s.string(0x22),
        id: s.u64(0x08).filter(|v| *v != 0).map(|v| format!("{v:016x}")),
    }
}

fn dimm(s: &Structure<'_>) -> Option<Dimm> {
    // Size: 0 = no device installed; 0xFFFF = unknown; 0x7FFF = see extended size (MiB);
    // bit 15 set = KiB granularity, else MiB.
    let size_mib = match s.u16(0x0C)? {
        0 => return None,
        0xffff => None,
        0x7fff => s.u32(0x1C).map(|v| u64::from(v & 0x7fff_ffff)),
        v if v & 0x8000 != 0 => Some(u64::from(v & 0x7fff) / 1024),
        v => Some(u64::from(v)),
    };
    let speed = |word: usize, ext: usize| match s.u16(word) {
        Some(0) | None => None,
        Some(0xffff) => s.u32(ext).filter(|v| *v != 0),
        Some(v) => Some(u32::from(v)),
    };
    let width = |off: usize| s.u16(off).filter(|w| *w != 0 && *w != 0xffff);
    Some(Dimm {
        handle: s.handle,
        locator: s.string(0x10),
        bank: s.string(0x11),
        size_mib,
        memory_type: s.u8(0x12).and_then(memory_type).map(str::to_string),
        form_factor: s.u8(0x0E).and_then(form_factor).map(str::to_string),
        speed_mts: speed(0x15, 0x54),
        configured_speed_mts: speed(0x20, 0x58),
        manufacturer: s.string(0x17),
        serial: s.string(0x18),
        asset_tag: s.string(0x19),
        part_number: s.string(0x1A),
        rank: s.u8(0x1B).map(|r| r & 0x0f).filter(|r| *r != 0),
        data_width: width(0x0A),
        total_width: width(0x08),
    })
}

/// DSP0134 7.18.2 memory types.
pub fn memory_type(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "Other",
        0x03 => "DRAM",
        0x04 => "EDRAM",
        0x05 => "VRAM",
        0x06 => "SRAM",
        0x07 => "RAM",
        0x08 => "ROM",
        0x09 => "Flash",
        0x0A => "EEPROM",
        0x0B => "FEPROM",
        0x0C => "EPROM",
        0x0D => "CDRAM",
        0x0E => "3DRAM",
        0x0F => "SDRAM",
        0x10 => "SGRAM",
        0x11 => "RDRAM",
        0x12 => "DDR",
        0x13 => "DDR2",
        0x14 => "DDR2 FB-DIMM",
        0x18 => "DDR3",
        0x19 => "FBD2",
        0x1A => "DDR4",
        0x1B => "LPDDR",
        0x1C => "LPDDR2",
        0x1D => "LPDDR3",
        0x1E => "LPDDR4",
        0x1F => "Logical non-volatile device",
        0x20 => "HBM",
        0x21 => "HBM2",
        0x22 => "DDR5",
        0x23 => "LPDDR5",
        0x24 => "HBM3",
        _ => return None,
    })
}

/// DSP0134 7.18.1 form factors.
pub fn form_factor(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "Other",
        0x03 => "SIMM",
        0x04 => "SIP",
        0x05 => "Chip",
        0x06 => "DIP",
        0x07 => "ZIP",
        0x08 => "Proprietary Card",
        0x09 => "DIMM",
        0x0A => "TSOP",
        0x0B => "Row of chips",
        0x0C => "RIMM",
        0x0D => "SODIMM",
        0x0E => "SRIMM",
        0x0F => "FB-DIMM",
        0x10 => "Die",
        _ => return None,
    })
}

/// DSP0134 7.4.1 chassis types (the number itself when unknown to us).
pub fn chassis_type(t: u8) -> String {
    const NAMES: &[&str] = &[
        "Other",
        "Unknown",
        "Desktop",
        "Low Profile Desktop",
        "Pizza Box",
        "Mini Tower",
        "Tower",
        "Portable",
        "Laptop",
        "Notebook",
        "Hand Held",
        "Docking Station",
        "All in One",
        "Sub Notebook",
        "Space-saving",
        "Lunch Box",
        "Main Server Chassis",
        "Expansion Chassis",
        "SubChassis",
        "Bus Expansion Chassis",
        "Peripheral Chassis",
        "RAID Chassis",
        "Rack Mount Chassis",
        "Sealed-case PC",
        "Multi-system chassis",
        "Compact PCI",
        "Advanced TCA",
        "Blade",
        "Blade Enclosure",
        "Tablet",
        "Convertible",
        "Detachable",
        "IoT Gateway",
        "Embedded PC",
        "Mini PC",
        "Stick PC",
    ];
    usize::from(t)
        .checked_sub(1)
        .and_then(|i| NAMES.get(i))
        .map(|s| (*s).to_string())
        .unwrap_or_else(|| t.to_string())
}

/// What [`read`] found, ready for the snapshot, with what it could not read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dmi {
    /// Decoded identity, BIOS, sockets and DIMMs.
    pub decoded: Decoded,
    /// Where it came from: `"table"`, `"dmi-id"` or `"none"`.
    pub source: &'static str,
    /// What could not be read.
    pub errors: Vec<String>,
}

impl std::ops::Deref for Dmi {
    type Target = Decoded;
    fn deref(&self) -> &Decoded {
        &self.decoded
    }
}

/// Reads SMBIOS from the raw sysfs tables, else from `/sys/class/dmi/id`.
pub fn read(root: &Path) -> Dmi {
    let mut errors = Vec::new();
    let table = fsutil::read_bytes(root, TABLE_PATH);
    match table {
        Ok(Some(bytes)) => {
            let ep = match fsutil::read_bytes(root, ENTRY_POINT_PATH) {
                Ok(Some(b)) => match parse_entry_point(&b) {
                    Ok(ep) => Some(ep),
                    Err(e) => {
                        errors.push(format!("SMBIOS: /{ENTRY_POINT_PATH}: {e}"));
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    errors.push(format!("SMBIOS: {e}"));
                    None
                }
            };
            let (structures, err) = parse_table(&bytes);
            if let Some(e) = err {
                errors.push(format!(
                    "SMBIOS: /{TABLE_PATH}: {e} (structures before it were used)"
                ));
            }
            let decoded = decode(&structures, ep.as_ref());
            return Dmi {
                decoded,
                source: "table",
                errors,
            };
        }
        Ok(None) => {}
        Err(e) => {
            errors.push(format!("DIMMs: {e}"));
            errors.push(format!("CPU sockets: {e}"));
        }
    }
    let (decoded, found) = read_dmi_id(root, &mut errors);
    if !found {
        errors.push(format!(
            "SMBIOS: neither /{TABLE_PATH} nor /{DMI_ID_DIR} exists (no SMBIOS on this machine)"
        ));
        return Dmi {
            decoded,
            source: "none",
            errors,
        };
    }
    if !errors.iter().any(|e| e.starts_with("DIMMs:")) {
        errors.push(format!(
            "DIMMs: /{TABLE_PATH} not found (the kernel exposes no raw SMBIOS table)"
        ));
    }
    Dmi {
        decoded,
        source: "dmi-id",
        errors,
    }
}

/// The kernel's decoded type 0-3 fields. Serials and the UUID are root-only there.
fn read_dmi_id(root: &Path, errors: &mut Vec<String>) -> (Decoded, bool) {
    let mut d = Decoded::default();
    let dir = Path::new(DMI_ID_DIR);
    if !fsutil::at(root, dir).is_dir() {
        return (d, false);
    }
    let mut get = |name: &str, what: &str| -> Option<String> {
        match fsutil::read_trimmed(root, dir.join(name)) {
            Ok(v) => v.and_then(|v| clean(&v)),
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                None
            }
        }
    };
    let bios = BiosInfo {
        vendor: get("bios_vendor", "BIOS vendor"),
        version: get("bios_version", "BIOS version"),
        release_date: get("bios_date", "BIOS date"),
    };
    d.system = SystemIdentity {
        manufacturer: get("sys_vendor", "system manufacturer"),
        product: get("product_name", "system product"),
        serial: get("product_serial", "system serial"),
        uuid: get("product_uuid", "system UUID").map(|u| u.to_ascii_lowercase()),
        sku: get("product_sku", "system SKU"),
        asset_tag: None,
    };
    let chassis_tag = get("chassis_asset_tag", "chassis asset tag");
    let board_tag = get("board_asset_tag", "baseboard asset tag");
    d.system.asset_tag = chassis_tag.clone().or(board_tag.clone());
    let mut b = component(
        "baseboard:0".to_string(),
        ComponentKind::Baseboard,
        "Baseboard".to_string(),
    );
    b.manufacturer = get("board_vendor", "baseboard manufacturer");
    b.model = get("board_name", "baseboard product");
    b.serial = get("board_serial", "baseboard serial");
    set_prop(&mut b, "version", get("board_version", "baseboard version"));
    set_prop(&mut b, "asset_tag", board_tag);
    if let Some(m) = &b.model {
        b.name = m.clone();
    }
    let mut c = component(
        "chassis:0".to_string(),
        ComponentKind::Chassis,
        "Chassis".to_string(),
    );
    c.manufacturer = get("chassis_vendor", "chassis manufacturer");
    c.serial = get("chassis_serial", "chassis serial");
    set_prop(&mut c, "version", get("chassis_version", "chassis version"));
    set_prop(&mut c, "asset_tag", chassis_tag);
    set_prop(
        &mut c,
        "chassis_type",
        get("chassis_type", "chassis type")
            .and_then(|t| t.parse::<u8>().ok())
            .map(chassis_type),
    );
    if bios.vendor.is_some() || bios.version.is_some() || bios.release_date.is_some() {
        d.bios = Some(bios);
    }
    d.other_components.push(b);
    d.other_components.push(c);
    (d, true)
}

/// The BIOS as a component, so firmware tracking sees its version like any other.
pub fn bios_component(b: &BiosInfo, extra: &HashMap<String, String>) -> Component {
    let mut c = component("bios".to_string(), ComponentKind::Bios, "BIOS".to_string());
    c.manufacturer = b.vendor.clone();
    c.firmware_version = b.version.clone();
    set_prop(&mut c, "release_date", b.release_date.clone());
    for (k, v) in extra {
        c.properties.insert(k.clone(), v.clone());
    }
    c
}

/// A DIMM as a component with id `dimm:<locator>` (else `dimm:handle-<n>`).
pub fn dimm_component(d: &Dimm) -> Component {
    let loc = d
        .locator
        .clone()
        .or_else(|| d.bank.clone())
        .unwrap_or_else(|| format!("handle-{:#06x}", d.handle));
    let mut c = component(
        format!("dimm:{}", loc.replace(' ', "_")),
        ComponentKind::Dimm,
        loc.clone(),
    );
    c.manufacturer = d.manufacturer.clone();
    c.model = d.part_number.clone();
    c.part_number = d.part_number.clone();
    c.serial = d.serial.clone();
    c.location = Some(match &d.bank {
        Some(b) => format!("{b} / {loc}"),
        None => loc,
    });
    set_prop(&mut c, "bank", d.bank.clone());
    set_prop(&mut c, "size_mib", d.size_mib);
    set_prop(&mut c, "type", d.memory_type.clone());
    set_prop(&mut c, "form_factor", d.form_factor.clone());
    set_prop(&mut c, "speed_mts", d.speed_mts);
    set_prop(&mut c, "configured_speed_mts", d.configured_speed_mts);
    set_prop(&mut c, "rank", d.rank);
    set_prop(&mut c, "asset_tag", d.asset_tag.clone());
    set_prop(&mut c, "data_width", d.data_width);
    set_prop(&mut c, "total_width", d.total_width);
    if let (Some(dw), Some(tw)) = (d.data_width, d.total_width) {
        c.properties
            .insert("ecc".to_string(), (tw > dw).to_string());
    }
    c
}
