//! The System Event Log (IPMI v2.0 §31, §32): reading entries after a known record id,
//! decoding system event records and OEM records, a severity from the sensor-type / event-offset
//! tables (§42), and a message in the words of `ipmitool sel elist`.
//!
//! Parsing is pure and never panics; a record that does not decode is kept as
//! [`SelRecord::Undecodable`] with its bytes, so nothing in the log is silently lost.

use std::collections::HashSet;

use automata_schemas::types::{HardwareLogEntry, LogSeverity};

use super::IpmiError;
use super::sdr::{LAST_RECORD, MAX_RECORDS, SdrRepository, SensorRecord, sensor_id};
use super::session::{NETFN_STORAGE, Session};
use super::wire::WireError;

/// The `log_id` of SEL entries.
pub const LOG_ID: &str = "ipmi:sel";
/// SEL timestamps up to this value count seconds since the BMC started, not since 1970.
pub const PRE_INIT_MAX: u32 = 0x2000_0000;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Get SEL Info (§31.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelInfo {
    /// SEL version (51h).
    pub version: u8,
    /// Number of entries.
    pub entries: u16,
    /// Free space in bytes.
    pub free_space: u16,
    /// Most recent addition timestamp.
    pub last_addition: u32,
    /// Most recent erase timestamp.
    pub last_erase: u32,
    /// Operation support (bit 7 overflow, bit 1 Reserve SEL supported, …).
    pub operations: u8,
}

/// Parses Get SEL Info response data (after the completion code).
pub fn parse_sel_info(b: &[u8]) -> Result<SelInfo, WireError> {
    let at = |i: usize| b.get(i).copied().unwrap_or_default();
    if b.len() < 14 {
        return Err(WireError::Short {
            what: "Get SEL Info",
            got: b.len(),
            need: 14,
        });
    }
    let u32_at = |i: usize| u32::from_le_bytes([at(i), at(i + 1), at(i + 2), at(i + 3)]);
    Ok(SelInfo {
        version: at(0),
        entries: u16::from_le_bytes([at(1), at(2)]),
        free_space: u16::from_le_bytes([at(3), at(4)]),
        last_addition: u32_at(5),
        last_erase: u32_at(9),
        operations: at(13),
    })
}

/// A system event record (record type 02h, §32.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemEvent {
    /// SEL timestamp (seconds; pre-init when ≤ [`PRE_INIT_MAX`]).
    pub timestamp: u32,
    /// Generator id: byte 1 = IPMB slave address or software id, byte 2 = channel and LUN.
    pub generator_id: u16,
    /// Event message format revision (04h for IPMI 1.5/2.0).
    pub evm_rev: u8,
    /// Sensor type (table 42-3).
    pub sensor_type: u8,
    /// Sensor number.
    pub sensor_number: u8,
    /// Event/Reading Type code (01h threshold, 02h–0Ch generic, 6Fh sensor-specific).
    pub event_type: u8,
    /// Deassertion event (direction bit set).
    pub deasserted: bool,
    /// Event data 1–3 (data 1 bits 3:0 are the offset).
    pub event_data: [u8; 3],
}

impl SystemEvent {
    /// The event offset (event data 1 bits 3:0).
    pub fn offset(&self) -> u8 {
        self.event_data[0] & 0x0f
    }

    /// The generating controller's address (or software id).
    pub fn generator_owner(&self) -> u8 {
        (self.generator_id & 0xff) as u8
    }

    /// The generator's LUN.
    pub fn generator_lun(&self) -> u8 {
        ((self.generator_id >> 8) & 0x03) as u8
    }
}

/// One SEL record, decoded as far as its type allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelRecord {
    /// A system event (type 02h).
    System {
        /// Record id.
        record_id: u16,
        /// The event.
        event: SystemEvent,
    },
    /// Timestamped OEM record (types C0h–DFh).
    OemTimestamped {
        /// Record id.
        record_id: u16,
        /// Record type.
        record_type: u8,
        /// Timestamp.
        timestamp: u32,
        /// Manufacturer IANA number.
        manufacturer_id: u32,
        /// The six OEM-defined bytes.
        data: Vec<u8>,
    },
    /// Non-timestamped OEM record (types E0h–FFh) or a type the specification leaves open.
    Oem {
        /// Record id.
        record_id: u16,
        /// Record type.
        record_type: u8,
        /// The 13 bytes after the record type.
        data: Vec<u8>,
    },
    /// A record that does not decode, kept with its bytes and the reason.
    Undecodable {
        /// Record id (as asked for).
        record_id: u16,
        /// What was wrong.
        reason: String,
        /// The bytes received.
        data: Vec<u8>,
    },
}

impl SelRecord {
    /// The record's id.
    pub fn record_id(&self) -> u16 {
        match self {
            SelRecord::System { record_id, .. }
            | SelRecord::OemTimestamped { record_id, .. }
            | SelRecord::Oem { record_id, .. }
            | SelRecord::Undecodable { record_id, .. } => *record_id,
        }
    }

    /// The source's timestamp, when the record has one.
    pub fn timestamp(&self) -> Option<u32> {
        match self {
            SelRecord::System { event, .. } => Some(event.timestamp),
            SelRecord::OemTimestamped { timestamp, .. } => Some(*timestamp),
            _ => None,
        }
    }
}

/// Decodes a 16-byte SEL record.
pub fn parse_record(b: &[u8]) -> Result<SelRecord, WireError> {
    let r: &[u8; 16] = b
        .get(..16)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Short {
            what: "SEL record",
            got: b.len(),
            need: 16,
        })?;
    let record_id = u16::from_le_bytes([r[0], r[1]]);
    let ts = u32::from_le_bytes([r[3], r[4], r[5], r[6]]);
    Ok(match r[2] {
        0x02 => SelRecord::System {
            record_id,
            event: SystemEvent {
                timestamp: ts,
                generator_id: u16::from_le_bytes([r[7], r[8]]),
                evm_rev: r[9],
                sensor_type: r[10],
                sensor_number: r[11],
                event_type: r[12] & 0x7f,
                deasserted: r[12] & 0x80 != 0,
                event_data: [r[13], r[14], r[15]],
            },
        },
        t @ 0xc0..=0xdf => SelRecord::OemTimestamped {
            record_id,
            record_type: t,
            timestamp: ts,
            manufacturer_id: u32::from_le_bytes([r[7], r[8], r[9], 0]),
            data: r[10..16].to_vec(),
        },
        t => SelRecord::Oem {
            record_id,
            record_type: t,
            data: r[3..16].to_vec(),
        },
    })
}

/// ipmitool's name of a sensor type (IPMI table 42-3).
pub fn sensor_type_name(t: u8) -> &'static str {
    const NAMES: [&str; 0x2d] = [
        "reserved",
        "Temperature",
        "Voltage",
        "Current",
        "Fan",
        "Physical Security",
        "Platform Security",
        "Processor",
        "Power Supply",
        "Power Unit",
        "Cooling Device",
        "Other",
        "Memory",
        "Drive Slot / Bay",
        "POST Memory Resize",
        "System Firmwares",
        "Event Logging Disabled",
        "Watchdog1",
        "System Event",
        "Critical Interrupt",
        "Button",
        "Module / Board",
        "Microcontroller",
        "Add-in Card",
        "Chassis",
        "Chip Set",
        "Other FRU",
        "Cable / Interconnect",
        "Terminator",
        "System Boot Initiated",
        "Boot Error",
        "OS Boot",
        "OS Critical Stop",
        "Slot / Connector",
        "System ACPI Power State",
        "Watchdog2",
        "Platform Alert",
        "Entity Presence",
        "Monitor ASIC",
        "LAN",
        "Management Subsys Health",
        "Battery",
        "Session Audit",
        "Version Change",
        "FRU State",
    ];
    NAMES
        .get(usize::from(t))
        .copied()
        .unwrap_or(if t >= 0xc0 { "OEM" } else { "Unknown" })
}

const THRESHOLD_EVENTS: [&str; 12] = [
    "Lower Non-critical going low",
    "Lower Non-critical going high",
    "Lower Critical going low",
    "Lower Critical going high",
    "Lower Non-recoverable going low",
    "Lower Non-recoverable going high",
    "Upper Non-critical going low",
    "Upper Non-critical going high",
    "Upper Critical going low",
    "Upper Critical going high",
    "Upper Non-recoverable going low",
    "Upper Non-recoverable going high",
];

/// Generic (event/reading types 02h–0Ch) offset texts, as ipmitool prints them.
fn generic_text(event_type: u8, offset: u8) -> Option<&'static str> {
    let table: &[&str] = match event_type {
        0x02 => &[
            "Transition to Idle",
            "Transition to Active",
            "Transition to Busy",
        ],
        0x03 => &["State Deasserted", "State Asserted"],
        0x04 => &[
            "Predictive Failure Deasserted",
            "Predictive Failure Asserted",
        ],
        0x05 => &["Limit Not Exceeded", "Limit Exceeded"],
        0x06 => &["Performance Met", "Performance Lags"],
        0x07 => &[
            "Transition to OK",
            "Transition to Non-critical from OK",
            "Transition to Critical from less severe",
            "Transition to Non-recoverable from less severe",
            "Transition to Non-critical from more severe",
            "Transition to Critical from Non-recoverable",
            "Transition to Non-recoverable",
            "Monitor",
            "Informational",
        ],
        0x08 => &["Device Absent", "Device Present"],
        0x09 => &["Device Disabled", "Device Enabled"],
        0x0a => &[
            "Transition to Running",
            "Transition to In Test",
            "Transition to Power Off",
            "Transition to On Line",
            "Transition to Off Line",
            "Transition to Off Duty",
            "Transition to Degraded",
            "Transition to Power Save",
            "Install Error",
        ],
        0x0b => &[
            "Fully Redundant",
            "Redundancy Lost",
            "Redundancy Degraded",
            "Non-Redundant: Sufficient from Redundant",
            "Non-Redundant: Sufficient from Insufficient",
            "Non-Redundant: Insufficient Resources",
            "Redundancy Degraded from Fully Redundant",
            "Redundancy Degraded from Non-Redundant",
        ],
        0x0c => &[
            "D0 Power State",
            "D1 Power State",
            "D2 Power State",
            "D3 Power State",
        ],
        _ => return None,
    };
    table.get(usize::from(offset)).copied()
}

/// Sensor-specific (event/reading type 6Fh) offset texts for the common sensor types.
fn specific_text(sensor_type: u8, offset: u8) -> Option<&'static str> {
    let table: &[&str] = match sensor_type {
        0x05 => &[
            "General Chassis intrusion",
            "Drive Bay intrusion",
            "I/O Card area intrusion",
            "Processor area intrusion",
            "System unplugged from LAN",
            "Unauthorized dock",
            "FAN area intrusion",
        ],
        0x07 => &[
            "IERR",
            "Thermal Trip",
            "FRB1/BIST failure",
            "FRB2/Hang in POST failure",
            "FRB3/Processor startup/init failure",
            "Configuration Error",
            "SM BIOS Uncorrectable CPU-complex Error",
            "Presence detected",
            "Disabled",
            "Terminator presence detected",
            "Throttled",
            "Uncorrectable machine check exception",
            "Correctable machine check error",
        ],
        0x08 => &[
            "Presence detected",
            "Failure detected",
            "Predictive failure",
            "Power Supply AC lost",
            "AC lost or out-of-range",
            "AC out-of-range, but present",
            "Config Error",
        ],
        0x09 => &[
            "Power off/down",
            "Power cycle",
            "240VA power down",
            "Interlock power down",
            "AC lost",
            "Soft-power control failure",
            "Failure detected",
            "Predictive failure",
        ],
        0x0c => &[
            "Correctable ECC",
            "Uncorrectable ECC",
            "Parity",
            "Memory Scrub Failed",
            "Memory Device Disabled",
            "Correctable ECC logging limit reached",
            "Presence Detected",
            "Configuration Error",
            "Spare",
            "Throttled",
            "Critical Overtemperature",
        ],
        0x0d => &[
            "Drive Present",
            "Drive Fault",
            "Predictive Failure",
            "Hot Spare",
            "Parity Check In Progress",
            "In Critical Array",
            "In Failed Array",
            "Rebuild In Progress",
            "Rebuild Aborted",
        ],
        0x0f => &[
            "System Firmware Error",
            "System Firmware Hang",
            "System Firmware Progress",
        ],
        0x10 => &[
            "Correctable memory error logging disabled",
            "Event logging disabled",
            "Log area reset/cleared",
            "All event logging disabled",
            "Log full",
            "Log almost full",
        ],
        0x12 => &[
            "System Reconfigured",
            "OEM System boot event",
            "Undetermined system hardware failure",
            "Entry added to auxiliary log",
            "PEF Action",
            "Timestamp Clock Sync",
        ],
        0x13 => &[
            "NMI/Diag Interrupt",
            "Bus Timeout",
            "I/O Channel check NMI",
            "Software NMI",
            "PCI PERR",
            "PCI SERR",
            "EISA failsafe timeout",
            "Bus Correctable error",
            "Bus Uncorrectable error",
            "Fatal NMI",
            "Bus Fatal Error",
            "Bus Degraded",
        ],
        0x20 => &[
            "Stop during OS load/init",
            "Run-time stop",
            "OS graceful stop",
            "OS graceful shutdown",
            "PEF initiated soft shutdown",
            "Agent not responding",
        ],
        _ => return None,
    };
    table.get(usize::from(offset)).copied()
}

/// What an event means, in ipmitool's words where it has them.
pub fn event_description(e: &SystemEvent) -> String {
    let off = e.offset();
    let text = match e.event_type {
        0x01 => THRESHOLD_EVENTS.get(usize::from(off)).copied(),
        0x02..=0x0c => generic_text(e.event_type, off),
        0x6f => specific_text(e.sensor_type, off),
        _ => None,
    };
    match (text, e.event_type) {
        (Some(t), _) => t.to_string(),
        (None, 0x70..=0x7f) => format!("OEM event type {:#04x} offset {off:#04x}", e.event_type),
        (None, _) => format!("Event type {:#04x} offset {off:#04x}", e.event_type),
    }
}

/// The severity of a system event: asserted failures are CRITICAL, asserted degradations
/// WARNING, everything else (deassertions included) INFO.
pub fn severity(e: &SystemEvent) -> LogSeverity {
    if e.deasserted {
        return LogSeverity::Info;
    }
    let off = e.offset();
    let (critical, warning): (&[u8], &[u8]) = match (e.event_type, e.sensor_type) {
        // Thresholds: critical / non-recoverable crossed going away from normal.
        (0x01, _) => (&[0x02, 0x04, 0x09, 0x0b], &[0x00, 0x07]),
        (0x04, _) => (&[], &[0x01]),
        (0x05, _) => (&[], &[0x01]),
        (0x07, _) => (&[0x02, 0x03, 0x05, 0x06], &[0x01, 0x04]),
        (0x0b, _) => (&[0x01, 0x05], &[0x02, 0x06, 0x07]),
        (0x6f, 0x05) => (&[], &[0x00, 0x01, 0x02, 0x03, 0x06]),
        (0x6f, 0x07) => (
            &[0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x0b],
            &[0x05, 0x08, 0x0a, 0x0c],
        ),
        (0x6f, 0x08) => (&[0x01, 0x03], &[0x02, 0x04, 0x05, 0x06]),
        (0x6f, 0x09) => (&[0x04, 0x05, 0x06], &[0x07]),
        (0x6f, 0x0c) => (&[0x01, 0x02, 0x0a], &[0x00, 0x03, 0x04, 0x05, 0x07]),
        (0x6f, 0x0d) => (&[0x01, 0x06], &[0x02, 0x05, 0x08]),
        (0x6f, 0x0f) => (&[0x00, 0x01], &[]),
        (0x6f, 0x10) => (&[], &[0x00, 0x01, 0x03, 0x04, 0x05]),
        (0x6f, 0x12) => (&[0x02], &[]),
        (0x6f, 0x13) => (
            &[0x04, 0x05, 0x08, 0x09, 0x0a],
            &[0x00, 0x01, 0x02, 0x03, 0x07, 0x0b],
        ),
        (0x6f, 0x20) => (&[0x00, 0x01], &[]),
        _ => (&[], &[]),
    };
    if critical.contains(&off) {
        LogSeverity::Critical
    } else if warning.contains(&off) {
        LogSeverity::Warning
    } else {
        LogSeverity::Info
    }
}

/// The sensor's SDR: by owner, LUN and number, else (as ipmitool does) by number and type.
fn find_sensor<'a>(sdr: Option<&'a SdrRepository>, e: &SystemEvent) -> Option<&'a SensorRecord> {
    let sdr = sdr?;
    sdr.find(e.generator_owner(), e.generator_lun(), e.sensor_number)
        .or_else(|| {
            sdr.sensors
                .iter()
                .find(|s| s.number == e.sensor_number && s.sensor_type == e.sensor_type)
        })
}

/// ipmitool's number format: no decimals for whole numbers, else two.
fn num(v: f64) -> String {
    if v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The message of a system event, as `ipmitool sel elist` prints it after the time columns
/// (`Temperature CPU Temp | Upper Critical going high | Asserted | Reading 92 > Threshold 90
/// degrees C`); without the sensor's SDR as `sel list` does (`Temperature #0x01 | …`).
pub fn event_message(e: &SystemEvent, sdr: Option<&SdrRepository>) -> String {
    let record = find_sensor(sdr, e);
    let who = match record {
        Some(r) => format!("{} {}", sensor_type_name(e.sensor_type), r.name),
        None if e.sensor_number != 0 => {
            format!(
                "{} #{:#04x}",
                sensor_type_name(e.sensor_type),
                e.sensor_number
            )
        }
        None => sensor_type_name(e.sensor_type).to_string(),
    };
    let dir = if e.deasserted {
        "Deasserted"
    } else {
        "Asserted"
    };
    let mut m = format!("{who} | {} | {dir}", event_description(e));
    if let Some(r) = record.filter(|r| e.event_type == 0x01 && r.conversion.is_some()) {
        let d = e.event_data;
        let conv = |present: bool, raw: u8| {
            if present {
                r.convert(raw).unwrap_or(0.0)
            } else {
                0.0
            }
        };
        let reading = conv((d[0] >> 6) & 3 == 1, d[1]);
        let threshold = conv((d[0] >> 4) & 3 == 1, d[2]);
        m.push_str(&format!(
            " | Reading {} {} Threshold {} {}",
            num(reading),
            if e.offset() % 2 == 1 { ">" } else { "<" },
            num(threshold),
            r.units.text()
        ));
    }
    m
}

/// The message of any record (OEM records as `OEM record c1 | 000157 | 010203040506`).
pub fn message(r: &SelRecord, sdr: Option<&SdrRepository>) -> String {
    match r {
        SelRecord::System { event, .. } => event_message(event, sdr),
        SelRecord::OemTimestamped {
            record_type,
            manufacturer_id,
            data,
            ..
        } => format!(
            "OEM record {record_type:02x} | {manufacturer_id:06x} | {}",
            hex(data)
        ),
        SelRecord::Oem {
            record_type, data, ..
        } => format!("OEM record {record_type:02x} | {}", hex(data)),
        SelRecord::Undecodable {
            record_id,
            reason,
            data,
        } => format!(
            "SEL record {record_id:#06x} not decoded ({reason}): {}",
            hex(data)
        ),
    }
}

/// A SEL timestamp as ms since the epoch; None for pre-init (relative) and unspecified ones.
pub fn timestamp_ms(ts: u32) -> Option<i64> {
    (ts > PRE_INIT_MAX && ts != u32::MAX).then(|| i64::from(ts) * 1000)
}

/// The `entry_id` of a record: its record id as four lowercase hex digits (`0x0001`).
pub fn entry_id(record_id: u16) -> String {
    format!("{record_id:#06x}")
}

/// Maps a record to the log entry contract (`created` falls back to `observed_at` when the
/// record has no wall-clock timestamp).
pub fn to_log_entry(
    r: &SelRecord,
    server_id: &str,
    observed_at: i64,
    sdr: Option<&SdrRepository>,
) -> HardwareLogEntry {
    let (severity, message_id, sensor) = match r {
        SelRecord::System { event: e, .. } => (
            severity(e),
            format!(
                "sel:{:02x}:{:02x}:{:02x}",
                e.sensor_type,
                e.event_type,
                e.offset()
            ),
            Some(sensor_id(
                e.generator_owner(),
                e.generator_lun(),
                e.sensor_number,
            )),
        ),
        SelRecord::OemTimestamped { record_type, .. } | SelRecord::Oem { record_type, .. } => (
            LogSeverity::Info,
            format!("sel:oem:{record_type:02x}"),
            None,
        ),
        SelRecord::Undecodable { .. } => (LogSeverity::Info, "sel:undecodable".into(), None),
    };
    HardwareLogEntry {
        server_id: server_id.to_string(),
        log_id: LOG_ID.to_string(),
        entry_id: entry_id(r.record_id()),
        created: r.timestamp().and_then(timestamp_ms).unwrap_or(observed_at),
        observed_at,
        severity,
        message: message(r, sdr),
        message_id: Some(message_id),
        component_id: None,
        sensor_id: sensor,
        source: "ipmi".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the SEL from a BMC

/// Get SEL Info.
pub(crate) async fn sel_info(s: &mut Session) -> Result<SelInfo, IpmiError> {
    let d = s
        .ok_lun("Get SEL Info", NETFN_STORAGE, 0, 0x40, &[])
        .await?;
    parse_sel_info(&d).map_err(|e| s.malformed(e.to_string()))
}

/// One Get SEL Entry answer: the next record id and the record (or why it did not decode).
async fn get_entry(
    s: &mut Session,
    reservation: u16,
    id: u16,
) -> Result<Option<(u16, SelRecord)>, IpmiError> {
    let [rl, rh] = reservation.to_le_bytes();
    let [il, ih] = id.to_le_bytes();
    let r = s
        .command(NETFN_STORAGE, 0x43, &[rl, rh, il, ih, 0, 0xff])
        .await?;
    match (r.completion, r.data.as_slice()) {
        (0xcb, _) => Ok(None),
        (0, [nl, nh, rest @ ..]) => {
            let next = u16::from_le_bytes([*nl, *nh]);
            let rec = parse_record(rest).unwrap_or_else(|e| SelRecord::Undecodable {
                record_id: id,
                reason: e.to_string(),
                data: rest.to_vec(),
            });
            Ok(Some((next, rec)))
        }
        (0, _) => Err(s.malformed(format!("Get SEL Entry {id:#06x}: short answer"))),
        (code, _) => Err(IpmiError::Completion {
            address: s.address().to_string(),
            what: format!("Get SEL Entry {id:#06x}"),
            code,
        }),
    }
}

/// Reads the SEL: every record when `after` is None, else the records after record `after`
/// (all of them again if that record is gone: the SEL was cleared). Returns the records and the
/// id of the last one (`after` itself when nothing is new; None when the SEL is empty).
pub(crate) async fn read(
    s: &mut Session,
    after: Option<u16>,
) -> Result<(Vec<SelRecord>, Option<u16>), IpmiError> {
    let info = sel_info(s).await?;
    if info.entries == 0 {
        return Ok((Vec::new(), None));
    }
    // Full-record reads (offset 0, FFh bytes) need no reservation (§31.5).
    let reservation = 0;
    let mut next = 0x0000;
    let mut last = None;
    if let Some(a) = after {
        match get_entry(s, reservation, a).await? {
            Some((n, _)) => {
                next = n;
                last = Some(a);
            }
            None => tracing::debug!(
                address = s.address(),
                after = a,
                "SEL record gone (cleared?): reading from the start"
            ),
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    while next != LAST_RECORD && seen.insert(next) && seen.len() <= MAX_RECORDS {
        let Some((n, rec)) = get_entry(s, reservation, next).await? else {
            break;
        };
        // Record 0000h asks for the first record: the answer names the real id.
        let id = match &rec {
            SelRecord::Undecodable { .. } => next,
            r => r.record_id(),
        };
        last = Some(id);
        out.push(rec);
        next = n;
    }
    Ok((out, last))
}
