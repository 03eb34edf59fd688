//! DCMI power reading (DCMI v1.5 §6.6.1, Get Power Reading: NetFn 2Ch, group extension DCh,
//! command 02h, mode 01h "system power statistics").
//!
//! Many BMCs (and OpenIPMI's `ipmi_sim`) do not implement DCMI: they answer "invalid command"
//! (C1h), "insufficient privilege" (D4h: `ipmi_sim` at User privilege) or answer for another
//! group extension. That is reported as
//! [`DcmiPower::NotSupported`], not as an error, so a poll does not fill logs with it.

use super::IpmiError;
use super::session::{NETFN_GROUP, Session};
use super::wire::WireError;

/// The DCMI group extension identifier.
pub const GROUP_DCMI: u8 = 0xdc;
/// Get Power Reading.
pub const CMD_GET_POWER_READING: u8 = 0x02;
/// Mode 01h: system power statistics.
pub const MODE_SYSTEM_POWER: u8 = 0x01;

/// A Get Power Reading answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerReading {
    /// Current power, W.
    pub current_watts: u16,
    /// Minimum over the sampling period, W.
    pub min_watts: u16,
    /// Maximum over the sampling period, W.
    pub max_watts: u16,
    /// Average over the sampling period, W.
    pub average_watts: u16,
    /// IPMI timestamp of the reading (seconds).
    pub timestamp: u32,
    /// Statistics reporting period, ms.
    pub period_ms: u32,
    /// "Power measurement active" (state bit 6): the numbers are meaningful only when set.
    pub active: bool,
}

/// What the BMC said about DCMI power.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DcmiPower {
    /// A reading.
    Reading(PowerReading),
    /// The BMC does not do DCMI (why, in a few words).
    NotSupported(String),
}

/// The request data of Get Power Reading (mode 01h, no attributes).
pub fn power_reading_request() -> [u8; 4] {
    [GROUP_DCMI, MODE_SYSTEM_POWER, 0x00, 0x00]
}

/// Decodes a Get Power Reading answer from its completion code and data.
pub fn parse_power_reading(completion: u8, b: &[u8]) -> Result<DcmiPower, WireError> {
    match completion {
        0 => {}
        0xc1 | 0xc2 => {
            return Ok(DcmiPower::NotSupported(format!(
                "Get Power Reading: completion {completion:#04x} (invalid command)"
            )));
        }
        // DCMI makes Get Power Reading a User-privilege command; a BMC that wants more for it
        // (ipmi_sim does, for every command it does not know) does not serve DCMI to us.
        0xd4 => {
            return Ok(DcmiPower::NotSupported(
                "Get Power Reading: insufficient privilege (D4h) at User level".into(),
            ));
        }
        c => {
            return Err(WireError::Invalid(format!(
                "Get Power Reading: completion code {c:#04x}"
            )));
        }
    }
    match b.first() {
        Some(&GROUP_DCMI) => {}
        Some(g) => {
            return Ok(DcmiPower::NotSupported(format!(
                "group extension {g:#04x} instead of DCh"
            )));
        }
        None => return Ok(DcmiPower::NotSupported("empty answer".into())),
    }
    if b.len() < 18 {
        return Err(WireError::Short {
            what: "DCMI Get Power Reading",
            got: b.len(),
            need: 18,
        });
    }
    let w = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let d = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok(DcmiPower::Reading(PowerReading {
        current_watts: w(1),
        min_watts: w(3),
        max_watts: w(5),
        average_watts: w(7),
        timestamp: d(9),
        period_ms: d(13),
        active: b[17] & 0x40 != 0,
    }))
}

/// Asks the BMC for its DCMI power reading.
pub(crate) async fn power_reading(s: &mut Session) -> Result<DcmiPower, IpmiError> {
    let r = s
        .command(NETFN_GROUP, CMD_GET_POWER_READING, &power_reading_request())
        .await?;
    if !matches!(r.completion, 0 | 0xc1 | 0xc2 | 0xd4) {
        return Err(IpmiError::Completion {
            address: s.address().to_string(),
            what: "DCMI Get Power Reading".into(),
            code: r.completion,
        });
    }
    parse_power_reading(r.completion, &r.data).map_err(|e| s.malformed(e.to_string()))
}
