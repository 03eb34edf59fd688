//! The Sensor Data Record repository (IPMI v2.0 §33, §43) and sensor readings (§35.14).
//!
//! The SDR is read once per BMC (Get SDR Repository Info, Reserve SDR Repository, Get SDR in
//! partial reads, re-reserving when the BMC cancels the reservation) and kept by the caller: it
//! only changes when the BMC says so through the repository's last-addition / last-erase
//! timestamps. Full (type 01h) and Compact (type 02h) sensor records are decoded; other record
//! types (locators, entity associations, OEM) are counted but not kept. A record that does not
//! decode is skipped with its reason in [`SdrRepository::skipped`].
//!
//! Everything that parses bytes is pure and never panics, whatever the BMC sends.

use std::collections::HashSet;
use std::time::Duration;

use super::IpmiError;
use super::session::{NETFN_SENSOR, NETFN_STORAGE, Session};
use super::wire::WireError;

/// Record type of a Full Sensor Record.
pub const RECORD_FULL: u8 = 0x01;
/// Record type of a Compact Sensor Record.
pub const RECORD_COMPACT: u8 = 0x02;
/// Event/Reading Type code of threshold-based (analog) sensors.
pub const EVENT_TYPE_THRESHOLD: u8 = 0x01;
/// Record id meaning "the last record" (as next id) or "no record".
pub const LAST_RECORD: u16 = 0xffff;
/// Upper bound on records read, so a BMC whose next-record chain loops cannot hold a poll.
pub const MAX_RECORDS: usize = 4096;

fn short(what: &'static str, b: &[u8], need: usize) -> WireError {
    WireError::Short {
        what,
        got: b.len(),
        need,
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Sign-extends the low `bits` bits of `v` (two's complement).
fn signed(v: u16, bits: u32) -> i16 {
    let shift = 16 - bits;
    ((v << shift) as i16) >> shift
}

/// Get SDR Repository Info (§33.9): how many records, and when the repository last changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SdrRepositoryInfo {
    /// SDR version (51h for IPMI 1.5/2.0).
    pub version: u8,
    /// Number of records.
    pub record_count: u16,
    /// Free space in bytes.
    pub free_space: u16,
    /// Most recent addition, seconds (SEL time scale).
    pub last_addition: u32,
    /// Most recent erase, seconds.
    pub last_erase: u32,
    /// Operation support flags (bit 1: Reserve SDR Repository supported).
    pub operations: u8,
}

impl SdrRepositoryInfo {
    /// Whether a repository read under `self` is stale now that the BMC reports `now`.
    pub fn changed(&self, now: &SdrRepositoryInfo) -> bool {
        self.last_addition != now.last_addition
            || self.last_erase != now.last_erase
            || self.record_count != now.record_count
    }
}

/// Parses Get SDR Repository Info response data (after the completion code).
pub fn parse_repository_info(b: &[u8]) -> Result<SdrRepositoryInfo, WireError> {
    if b.len() < 14 {
        return Err(short("Get SDR Repository Info", b, 14));
    }
    Ok(SdrRepositoryInfo {
        version: b[0],
        record_count: u16_le(b, 1).unwrap_or_default(),
        free_space: u16_le(b, 3).unwrap_or_default(),
        last_addition: u32_le(b, 5).unwrap_or_default(),
        last_erase: u32_le(b, 9).unwrap_or_default(),
        operations: b[13],
    })
}

/// How a sensor encodes its raw reading (Sensor Units 1, bits 7:6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalogFormat {
    /// 0–255.
    Unsigned,
    /// One's complement (−127…127; FFh is −0).
    OnesComplement,
    /// Two's complement (−128…127).
    TwosComplement,
    /// The sensor has no analog reading.
    None,
}

impl AnalogFormat {
    fn from_bits(b: u8) -> AnalogFormat {
        match b & 0x03 {
            0 => AnalogFormat::Unsigned,
            1 => AnalogFormat::OnesComplement,
            2 => AnalogFormat::TwosComplement,
            _ => AnalogFormat::None,
        }
    }

    /// The raw byte as the signed or unsigned number the formula takes (None: no analog value).
    pub fn decode(self, raw: u8) -> Option<f64> {
        match self {
            AnalogFormat::Unsigned => Some(f64::from(raw)),
            AnalogFormat::OnesComplement if raw & 0x80 != 0 => Some(-f64::from(!raw & 0x7f)),
            AnalogFormat::OnesComplement => Some(f64::from(raw)),
            AnalogFormat::TwosComplement => Some(f64::from(raw as i8)),
            AnalogFormat::None => None,
        }
    }
}

/// The linear part of a Full Sensor Record's conversion, y = L[(M·x + B·10^K1)·10^K2] (§36.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conversion {
    /// M, 10-bit signed.
    pub m: i16,
    /// B, 10-bit signed.
    pub b: i16,
    /// K1, the B exponent (4-bit signed).
    pub b_exp: i8,
    /// K2, the result exponent (4-bit signed).
    pub r_exp: i8,
    /// Linearisation code L (0 linear, 1 ln, 2 log10, 3 log2, 4 e, 5 exp10, 6 exp2, 7 1/x,
    /// 8 sqr, 9 cube, 10 sqrt, 11 cube⁻¹; 70h–7Fh non-linear OEM, computed as linear).
    pub linearization: u8,
    /// Tolerance in ± half raw counts (6 bits).
    pub tolerance: u8,
    /// Accuracy in 0.01 % steps before its exponent (10 bits).
    pub accuracy: u16,
    /// Accuracy exponent (2 bits).
    pub accuracy_exp: u8,
    /// How the raw byte is encoded.
    pub format: AnalogFormat,
}

impl Conversion {
    /// A raw reading in the sensor's unit (None: no analog reading, or not a finite number).
    pub fn value(&self, raw: u8) -> Option<f64> {
        let x = self.format.decode(raw)?;
        let linear = scale(
            f64::from(self.m) * x + scale(f64::from(self.b), self.b_exp),
            self.r_exp,
        );
        let y = linearize(self.linearization, linear)?;
        y.is_finite().then_some(y)
    }

    /// The tolerance in the sensor's unit (±), from the half-count tolerance and M.
    pub fn tolerance_value(&self) -> f64 {
        scale(
            f64::from(self.m) * f64::from(self.tolerance) / 2.0,
            self.r_exp,
        )
        .abs()
    }

    /// The accuracy in percent.
    pub fn accuracy_percent(&self) -> f64 {
        f64::from(self.accuracy) * 10f64.powi(i32::from(self.accuracy_exp)) / 100.0
    }
}

/// `v·10^exp`, dividing for negative exponents so that integral `v` gives the correctly
/// rounded decimal (−1262·10⁻³ is −1.262, not −1.2620000000000002).
fn scale(v: f64, exp: i8) -> f64 {
    if exp < 0 {
        v / 10f64.powi(-i32::from(exp))
    } else {
        v * 10f64.powi(i32::from(exp))
    }
}

/// Applies linearisation function `l` (§43.1, byte 24); unknown codes give None.
fn linearize(l: u8, v: f64) -> Option<f64> {
    Some(match l & 0x7f {
        0 | 0x70..=0x7f => v,
        1 => v.ln(),
        2 => v.log10(),
        3 => v.log2(),
        4 => v.exp(),
        5 => 10f64.powf(v),
        6 => v.exp2(),
        7 => 1.0 / v,
        8 => v * v,
        9 => v * v * v,
        10 => v.sqrt(),
        11 => v.cbrt(),
        _ => return None,
    })
}

/// Sensor units (§43.1 bytes 21–23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Units {
    /// The reading is a percentage (Units 1 bit 0).
    pub percentage: bool,
    /// Modifier unit use: 0 none, 1 base/modifier, 2 base×modifier.
    pub modifier_use: u8,
    /// Rate unit: 0 none, 1 per µs … 6 per day.
    pub rate: u8,
    /// Base unit code (table 43-15: 1 °C, 2 °F, 3 K, 4 V, 5 A, 6 W, 7 J, 18 RPM, …).
    pub base: u8,
    /// Modifier unit code.
    pub modifier: u8,
}

impl Units {
    fn from_bytes(u1: u8, base: u8, modifier: u8) -> Units {
        Units {
            percentage: u1 & 0x01 != 0,
            modifier_use: (u1 >> 1) & 0x03,
            rate: (u1 >> 3) & 0x07,
            base,
            modifier,
        }
    }

    /// The unit as ipmitool prints it (`degrees C`, `RPM`, `Volts`, …), for SEL messages.
    pub fn text(&self) -> String {
        let base = unit_name(self.base);
        let mut s = match self.modifier_use {
            1 => format!("{base}/{}", unit_name(self.modifier)),
            2 => format!("{base}*{}", unit_name(self.modifier)),
            _ => base.to_string(),
        };
        if self.percentage {
            s = format!("% {s}");
        }
        s
    }
}

/// ipmitool's names of the base unit codes (IPMI table 43-15), for the codes BMCs use.
pub fn unit_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "degrees C",
        2 => "degrees F",
        3 => "degrees K",
        4 => "Volts",
        5 => "Amps",
        6 => "Watts",
        7 => "Joules",
        8 => "Coulombs",
        9 => "VA",
        17 => "CFM",
        18 => "RPM",
        19 => "Hz",
        20 => "microsecond",
        21 => "millisecond",
        22 => "second",
        23 => "minute",
        24 => "hour",
        25 => "day",
        26 => "week",
        41 => "revolutions",
        42 => "cycles",
        65 => "bit",
        69 => "byte",
        80 => "retry",
        81 => "reset",
        82 => "overflow",
        83 => "underrun",
        84 => "collision",
        85 => "packets",
        86 => "messages",
        87 => "characters",
        88 => "error",
        89 => "correctable error",
        90 => "uncorrectable error",
        91 => "fatal error",
        _ => "unknown",
    }
}

/// Raw threshold bytes, each present when the record or the BMC says it is readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawThresholds {
    /// Lower non-critical.
    pub lower_non_critical: Option<u8>,
    /// Lower critical.
    pub lower_critical: Option<u8>,
    /// Lower non-recoverable.
    pub lower_non_recoverable: Option<u8>,
    /// Upper non-critical.
    pub upper_non_critical: Option<u8>,
    /// Upper critical.
    pub upper_critical: Option<u8>,
    /// Upper non-recoverable.
    pub upper_non_recoverable: Option<u8>,
}

impl RawThresholds {
    /// Thresholds from a readable mask (bit 0 LNC … bit 5 UNR) and the six values in the order
    /// LNC, LC, LNR, UNC, UC, UNR.
    pub fn from_mask(mask: u8, v: [u8; 6]) -> RawThresholds {
        let pick = |bit: u8, x: u8| (mask & (1 << bit) != 0).then_some(x);
        RawThresholds {
            lower_non_critical: pick(0, v[0]),
            lower_critical: pick(1, v[1]),
            lower_non_recoverable: pick(2, v[2]),
            upper_non_critical: pick(3, v[3]),
            upper_critical: pick(4, v[4]),
            upper_non_recoverable: pick(5, v[5]),
        }
    }

    /// Whether any threshold is present.
    pub fn any(&self) -> bool {
        *self != RawThresholds::default()
    }
}

/// Parses Get Sensor Thresholds response data (§35.9): readable mask then six values.
pub fn parse_thresholds(b: &[u8]) -> Result<RawThresholds, WireError> {
    match b {
        [mask, lnc, lc, lnr, unc, uc, unr, ..] => Ok(RawThresholds::from_mask(
            *mask,
            [*lnc, *lc, *lnr, *unc, *uc, *unr],
        )),
        _ => Err(short("Get Sensor Thresholds", b, 7)),
    }
}

/// How an SDR ID string is encoded (type/length byte, bits 7:6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdEncoding {
    /// 00b: "Unicode" in the specification; every BMC seen sends ASCII here.
    Unicode,
    /// 01b: BCD plus.
    BcdPlus,
    /// 10b: 6-bit packed ASCII.
    SixBitAscii,
    /// 11b: 8-bit ASCII + Latin-1.
    Latin1,
}

/// Decodes an ID string from its type/length byte and the bytes after it (tolerant: a length
/// past the end uses what is there; trailing NULs and spaces are dropped).
pub fn decode_id_string(type_len: u8, bytes: &[u8]) -> (String, IdEncoding) {
    let len = usize::from(type_len & 0x1f);
    let data = bytes.get(..len).unwrap_or(bytes);
    let enc = match type_len >> 6 {
        0 => IdEncoding::Unicode,
        1 => IdEncoding::BcdPlus,
        2 => IdEncoding::SixBitAscii,
        _ => IdEncoding::Latin1,
    };
    let s = match enc {
        IdEncoding::BcdPlus => super::fru::bcd_plus(data),
        IdEncoding::SixBitAscii => super::fru::six_bit_ascii(data),
        // Latin-1 maps byte for byte onto the first 256 code points.
        IdEncoding::Unicode | IdEncoding::Latin1 => data
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| char::from(*b))
            .collect(),
    };
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    (s.trim_end().to_string(), enc)
}

/// A Full or Compact Sensor Record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorRecord {
    /// The record's id in the repository.
    pub record_id: u16,
    /// [`RECORD_FULL`] or [`RECORD_COMPACT`].
    pub record_type: u8,
    /// Sensor owner id: IPMB slave address (bit 0 = 0) or system software id (bit 0 = 1).
    pub owner_id: u8,
    /// Sensor owner LUN (0–3).
    pub owner_lun: u8,
    /// Channel of the owner (0 = primary IPMB).
    pub channel: u8,
    /// Sensor number.
    pub number: u8,
    /// Entity id (table 43-13: 3 processor, 7 system board, 10 power supply, 29 fan, …).
    pub entity_id: u8,
    /// Entity instance (without the logical/physical bit).
    pub entity_instance: u8,
    /// Sensor type (table 42-3: 1 temperature, 2 voltage, 3 current, 4 fan, …).
    pub sensor_type: u8,
    /// Event/Reading Type code (1 threshold, 2–0Ch generic discrete, 6Fh sensor-specific).
    pub event_type: u8,
    /// Threshold access support (capabilities bits 3:2: 0 none, 1 readable, 2 readable and
    /// settable, 3 fixed and unreadable).
    pub threshold_access: u8,
    /// Units.
    pub units: Units,
    /// Conversion factors (Full records only; Compact records carry none).
    pub conversion: Option<Conversion>,
    /// Thresholds held in the record (Full records only).
    pub thresholds: RawThresholds,
    /// The ID string ("CPU Temp").
    pub name: String,
    /// How the ID string was encoded.
    pub name_encoding: IdEncoding,
}

impl SensorRecord {
    /// Whether this is a threshold-based (analog) sensor.
    pub fn is_threshold(&self) -> bool {
        self.event_type == EVENT_TYPE_THRESHOLD
    }

    /// A raw value (reading or threshold) in the sensor's unit, when the record says how.
    pub fn convert(&self, raw: u8) -> Option<f64> {
        self.conversion.as_ref()?.value(raw)
    }

    /// Whether Get Sensor Thresholds may be asked for this sensor.
    pub fn thresholds_readable(&self) -> bool {
        self.is_threshold() && matches!(self.threshold_access, 1 | 2)
    }

    /// The stable sensor id: `ipmi.<owner id, 2 hex>.<LUN>.<sensor number, 2 hex>`.
    pub fn sensor_id(&self) -> String {
        sensor_id(self.owner_id, self.owner_lun, self.number)
    }
}

/// The stable sensor id scheme shared by readings and SEL entries:
/// `ipmi.<owner id as 2 lowercase hex digits>.<LUN 0–3>.<sensor number as 2 hex digits>`.
pub fn sensor_id(owner_id: u8, lun: u8, number: u8) -> String {
    format!("ipmi.{owner_id:02x}.{}.{number:02x}", lun & 0x03)
}

/// Decodes one SDR (5-byte header included). `Ok(None)`: a valid record of another type.
pub fn parse_record(b: &[u8]) -> Result<Option<SensorRecord>, WireError> {
    if b.len() < 5 {
        return Err(short("SDR header", b, 5));
    }
    let record_id = u16_le(b, 0).unwrap_or_default();
    let record_type = b[3];
    let body_len = usize::from(b[4]);
    if b.len() < 5 + body_len {
        return Err(WireError::Invalid(format!(
            "SDR {record_id:#06x}: {} body bytes, header announces {body_len}",
            b.len() - 5
        )));
    }
    let r = &b[..5 + body_len];
    match record_type {
        RECORD_FULL => parse_full(record_id, r).map(Some),
        RECORD_COMPACT => parse_compact(record_id, r).map(Some),
        _ => Ok(None),
    }
}

/// Fields at the same offsets in Full and Compact records (bytes 6–23, 0-based 5–22).
fn common(record_id: u16, record_type: u8, r: &[u8]) -> SensorRecord {
    let units = Units::from_bytes(r[20], r[21], r[22]);
    SensorRecord {
        record_id,
        record_type,
        owner_id: r[5],
        owner_lun: r[6] & 0x03,
        channel: r[6] >> 4,
        number: r[7],
        entity_id: r[8],
        entity_instance: r[9] & 0x7f,
        sensor_type: r[12],
        event_type: r[13],
        threshold_access: (r[11] >> 2) & 0x03,
        units,
        conversion: None,
        thresholds: RawThresholds::default(),
        name: String::new(),
        name_encoding: IdEncoding::Latin1,
    }
}

fn parse_full(record_id: u16, r: &[u8]) -> Result<SensorRecord, WireError> {
    // Through the ID string type/length byte (byte 48, 0-based 47).
    if r.len() < 48 {
        return Err(WireError::Invalid(format!(
            "Full Sensor Record {record_id:#06x}: {} bytes, need 48",
            r.len()
        )));
    }
    let mut s = common(record_id, RECORD_FULL, r);
    s.conversion = Some(Conversion {
        m: signed(u16::from(r[24]) | (u16::from(r[25] >> 6) << 8), 10),
        tolerance: r[25] & 0x3f,
        b: signed(u16::from(r[26]) | (u16::from(r[27] >> 6) << 8), 10),
        accuracy: u16::from(r[27] & 0x3f) | (u16::from(r[28] >> 4) << 6),
        accuracy_exp: (r[28] >> 2) & 0x03,
        r_exp: signed(u16::from(r[29] >> 4), 4) as i8,
        b_exp: signed(u16::from(r[29] & 0x0f), 4) as i8,
        linearization: r[23] & 0x7f,
        format: AnalogFormat::from_bits(r[20] >> 6),
    });
    if s.is_threshold() {
        // Readable threshold mask (byte 19); values: UNR, UC, UNC, LNR, LC, LNC (bytes 37–42).
        s.thresholds =
            RawThresholds::from_mask(r[18] & 0x3f, [r[41], r[40], r[39], r[38], r[37], r[36]]);
    }
    (s.name, s.name_encoding) = decode_id_string(r[47], r.get(48..).unwrap_or_default());
    Ok(s)
}

fn parse_compact(record_id: u16, r: &[u8]) -> Result<SensorRecord, WireError> {
    // Through the ID string type/length byte (byte 32, 0-based 31).
    if r.len() < 32 {
        return Err(WireError::Invalid(format!(
            "Compact Sensor Record {record_id:#06x}: {} bytes, need 32",
            r.len()
        )));
    }
    let mut s = common(record_id, RECORD_COMPACT, r);
    (s.name, s.name_encoding) = decode_id_string(r[31], r.get(32..).unwrap_or_default());
    Ok(s)
}

/// The sensor records of one BMC's repository, as read at `info`.
#[derive(Debug, Clone, Default)]
pub struct SdrRepository {
    /// The repository info the records were read under (compared on each poll).
    pub info: SdrRepositoryInfo,
    /// Full and Compact sensor records, in repository order.
    pub sensors: Vec<SensorRecord>,
    /// Records of other types (locators, associations, OEM), counted.
    pub other_records: usize,
    /// Records that could not be read or decoded, with the reason.
    pub skipped: Vec<String>,
    /// Whether the BMC answers DCMI Get Power Reading (learned on the first poll and kept with
    /// the SDR, so a BMC without DCMI is not asked again).
    pub dcmi_supported: Option<bool>,
}

impl SdrRepository {
    /// Builds a repository from raw records (each with its 5-byte header).
    pub fn from_records<'a>(
        info: SdrRepositoryInfo,
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> SdrRepository {
        let mut repo = SdrRepository {
            info,
            ..Default::default()
        };
        for r in records {
            repo.add(r);
        }
        repo
    }

    fn add(&mut self, raw: &[u8]) {
        match parse_record(raw) {
            Ok(Some(s)) => self.sensors.push(s),
            Ok(None) => self.other_records += 1,
            Err(e) => self.skipped.push(format!("SDR record skipped: {e}")),
        }
    }

    /// The record of a sensor, by owner, LUN and number.
    pub fn find(&self, owner_id: u8, lun: u8, number: u8) -> Option<&SensorRecord> {
        self.sensors
            .iter()
            .find(|s| s.owner_id == owner_id && s.owner_lun == lun && s.number == number)
    }
}

/// A decoded Get Sensor Reading response.
#[derive(Debug, Clone, PartialEq)]
pub struct SensorReading {
    /// The raw reading byte.
    pub raw: u8,
    /// The reading in the sensor's unit (threshold sensors with a Full record and a valid
    /// reading only).
    pub value: Option<f64>,
    /// "Reading/state unavailable" (byte 2 bit 5).
    pub unavailable: bool,
    /// Sensor scanning disabled (byte 2 bit 6 clear): the reading is stale or meaningless.
    pub scanning_disabled: bool,
    /// All event messages from this sensor disabled (byte 2 bit 7 clear).
    pub events_disabled: bool,
    /// Threshold sensors: comparison status (bit 0 at or below LNC … bit 5 at or above UNR).
    pub threshold_status: Option<u8>,
    /// Discrete sensors: asserted state bits 0–14.
    pub states: Option<u16>,
}

impl SensorReading {
    /// Whether the reading holds a usable value.
    pub fn valid(&self) -> bool {
        !self.unavailable && !self.scanning_disabled && self.value.is_some()
    }
}

/// Decodes Get Sensor Reading response data (after the completion code) with the sensor's SDR.
pub fn parse_reading(b: &[u8], record: &SensorRecord) -> Result<SensorReading, WireError> {
    let (raw, flags) = match b {
        [raw, flags, ..] => (*raw, *flags),
        _ => return Err(short("Get Sensor Reading", b, 2)),
    };
    let unavailable = flags & 0x20 != 0;
    let scanning_disabled = flags & 0x40 == 0;
    let status = b.get(2).copied();
    let mut r = SensorReading {
        raw,
        value: None,
        unavailable,
        scanning_disabled,
        events_disabled: flags & 0x80 == 0,
        threshold_status: None,
        states: None,
    };
    if record.is_threshold() {
        r.threshold_status = status.map(|s| s & 0x3f);
        if !unavailable && !scanning_disabled {
            r.value = record.convert(raw);
        }
    } else if let Some(lo) = status {
        let hi = b.get(3).copied().unwrap_or(0) & 0x7f;
        r.states = Some(u16::from(lo) | (u16::from(hi) << 8));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Reading the repository from a BMC

/// Get SDR Repository Info.
pub(crate) async fn repository_info(s: &mut Session) -> Result<SdrRepositoryInfo, IpmiError> {
    let d = s
        .ok_lun("Get SDR Repository Info", NETFN_STORAGE, 0, 0x20, &[])
        .await?;
    parse_repository_info(&d).map_err(|e| s.malformed(e.to_string()))
}

/// Reserve SDR Repository; 0 (no reservation) when the BMC does not support it.
async fn reserve(s: &mut Session) -> Result<u16, IpmiError> {
    let r = s.command(NETFN_STORAGE, 0x22, &[]).await?;
    match (r.completion, r.data.as_slice()) {
        (0, [lo, hi, ..]) => Ok(u16::from_le_bytes([*lo, *hi])),
        _ => Ok(0),
    }
}

/// Why reading one record stopped.
enum RecordError {
    /// The reservation was cancelled (the repository changed): reserve again and retry.
    Cancelled,
    /// Anything else.
    Failed(IpmiError),
}

impl From<IpmiError> for RecordError {
    fn from(e: IpmiError) -> Self {
        RecordError::Failed(e)
    }
}

/// Reads the whole repository: every record from id 0000h until the next id is FFFFh.
pub(crate) async fn read_repository(s: &mut Session) -> Result<SdrRepository, IpmiError> {
    let info = repository_info(s).await?;
    let mut repo = SdrRepository {
        info,
        ..Default::default()
    };
    if info.record_count == 0 {
        return Ok(repo);
    }
    let mut reader = RecordReader {
        reservation: reserve(s).await?,
        chunk: 32,
    };
    let mut id = 0u16;
    let mut seen = HashSet::new();
    while id != LAST_RECORD && seen.insert(id) && seen.len() <= MAX_RECORDS {
        match reader.read(s, id).await {
            Ok((next, raw)) => {
                repo.add(&raw);
                id = next;
            }
            // A record that will not read: skip it only if the chain can go on, which it cannot
            // without the record's next id.
            Err(e) => {
                if repo.sensors.is_empty() && repo.other_records == 0 {
                    return Err(e);
                }
                repo.skipped
                    .push(format!("SDR {id:#06x} and after not read: {e}"));
                break;
            }
        }
    }
    Ok(repo)
}

/// Reads records in pieces that fit the BMC's buffers, re-reserving when cancelled.
struct RecordReader {
    reservation: u16,
    chunk: u8,
}

impl RecordReader {
    /// One record, header included, and the next record's id.
    async fn read(&mut self, s: &mut Session, id: u16) -> Result<(u16, Vec<u8>), IpmiError> {
        for _ in 0..5 {
            match self.try_read(s, id).await {
                Ok(r) => return Ok(r),
                Err(RecordError::Cancelled) => {
                    self.reservation = reserve(s).await?;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(RecordError::Failed(e)) => return Err(e),
            }
        }
        Err(IpmiError::Completion {
            address: s.address().to_string(),
            what: format!("Get SDR {id:#06x} (reservation cancelled 5 times)"),
            code: 0xc5,
        })
    }

    async fn try_read(&mut self, s: &mut Session, id: u16) -> Result<(u16, Vec<u8>), RecordError> {
        let (next, mut raw) = self.piece(s, id, 0, 5).await?;
        if raw.len() < 5 {
            return Err(RecordError::Failed(s.malformed(format!(
                "Get SDR {id:#06x}: {} header bytes",
                raw.len()
            ))));
        }
        let total = 5 + usize::from(raw[4]);
        while raw.len() < total {
            if raw.len() > usize::from(u8::MAX) {
                return Err(RecordError::Failed(s.malformed(format!(
                    "Get SDR {id:#06x}: {total} byte record, past the largest offset"
                ))));
            }
            let want = (total - raw.len()).min(usize::from(self.chunk)) as u8;
            let offset = raw.len() as u8;
            let (_, piece) = self.piece(s, id, offset, want).await?;
            if piece.is_empty() {
                return Err(RecordError::Failed(s.malformed(format!(
                    "Get SDR {id:#06x}: empty piece at offset {offset}"
                ))));
            }
            raw.extend_from_slice(&piece[..piece.len().min(total - raw.len())]);
        }
        raw.truncate(total);
        Ok((next, raw))
    }

    /// One Get SDR: `want` bytes from `offset`, shrinking the piece size when the BMC asks.
    async fn piece(
        &mut self,
        s: &mut Session,
        id: u16,
        offset: u8,
        want: u8,
    ) -> Result<(u16, Vec<u8>), RecordError> {
        let mut want = want;
        loop {
            let [rl, rh] = self.reservation.to_le_bytes();
            let [il, ih] = id.to_le_bytes();
            let r = s
                .command(NETFN_STORAGE, 0x23, &[rl, rh, il, ih, offset, want])
                .await?;
            match (r.completion, r.data.as_slice()) {
                (0, [nl, nh, rest @ ..]) => {
                    return Ok((u16::from_le_bytes([*nl, *nh]), rest.to_vec()));
                }
                (0xc5, _) => return Err(RecordError::Cancelled),
                // Too much asked for this BMC's buffers: ask for less.
                (0xc7 | 0xc8 | 0xca | 0xff, _) if want > 4 && offset > 0 => {
                    self.chunk = (self.chunk / 2).max(4);
                    want = want.min(self.chunk);
                }
                (0, _) => {
                    return Err(RecordError::Failed(
                        s.malformed(format!("Get SDR {id:#06x}: short answer")),
                    ));
                }
                (code, _) => {
                    return Err(RecordError::Failed(IpmiError::Completion {
                        address: s.address().to_string(),
                        what: format!("Get SDR {id:#06x} offset {offset}"),
                        code,
                    }));
                }
            }
        }
    }
}

/// Get Sensor Reading for one sensor (on its owner LUN).
pub(crate) async fn read_sensor(
    s: &mut Session,
    record: &SensorRecord,
) -> Result<SensorReading, IpmiError> {
    let d = s
        .ok_lun(
            &format!("Get Sensor Reading {:#04x}", record.number),
            NETFN_SENSOR,
            record.owner_lun,
            0x2d,
            &[record.number],
        )
        .await?;
    parse_reading(&d, record).map_err(|e| s.malformed(e.to_string()))
}

/// Get Sensor Thresholds for one sensor.
pub(crate) async fn read_thresholds(
    s: &mut Session,
    record: &SensorRecord,
) -> Result<RawThresholds, IpmiError> {
    let d = s
        .ok_lun(
            &format!("Get Sensor Thresholds {:#04x}", record.number),
            NETFN_SENSOR,
            record.owner_lun,
            0x27,
            &[record.number],
        )
        .await?;
    parse_thresholds(&d).map_err(|e| s.malformed(e.to_string()))
}
