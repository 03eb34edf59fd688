//! Faults injected into simulated servers, scripted or at random, each kept with its ground
//! truth (what, when, which component) so tests and the diagnosis service can be scored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The faults a simulated server can suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A fan stops: its reading drops to 0 and the chassis heats up.
    FanFailure,
    /// The air the server takes in is 18 °C hotter: temperatures cross their thresholds.
    Overheat,
    /// A power supply loses input; the other carries the load.
    PsuLoss,
    /// A DIMM logs a storm of correctable ECC errors, then an uncorrectable one.
    DimmErrors,
    /// A drive predicts its own failure.
    DiskPredictedFailure,
    /// The BMC stops answering (requests hang until the fault clears).
    BmcHang,
    /// The BMC answers after seconds.
    BmcSlow,
    /// The next firmware update fails.
    UpdateFails,
    /// The next firmware update leaves the component unusable until an update succeeds.
    UpdateBricks,
    /// A pending BIOS setting does not stick at the next reset.
    BiosSettingLost,
}

impl FaultKind {
    /// Every kind, for random injection.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::FanFailure,
        FaultKind::Overheat,
        FaultKind::PsuLoss,
        FaultKind::DimmErrors,
        FaultKind::DiskPredictedFailure,
        FaultKind::BmcHang,
        FaultKind::BmcSlow,
        FaultKind::UpdateFails,
        FaultKind::UpdateBricks,
        FaultKind::BiosSettingLost,
    ];

    /// The kebab-case name used in scripts and ground truth.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::FanFailure => "fan-failure",
            FaultKind::Overheat => "overheat",
            FaultKind::PsuLoss => "psu-loss",
            FaultKind::DimmErrors => "dimm-errors",
            FaultKind::DiskPredictedFailure => "disk-predicted-failure",
            FaultKind::BmcHang => "bmc-hang",
            FaultKind::BmcSlow => "bmc-slow",
            FaultKind::UpdateFails => "update-fails",
            FaultKind::UpdateBricks => "update-bricks",
            FaultKind::BiosSettingLost => "bios-setting-lost",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault {s:?}; one of: {}", names.join(", "))
            })
    }
}

/// A fault to inject: from a script, the control API or the random injector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The server's index in the fleet (0-based).
    pub server: usize,
    /// The fault.
    pub kind: FaultKind,
    /// When, after the fleet starts (scripts only): "90s", "5m".
    #[serde(default, with = "opt_duration")]
    pub at: Option<Duration>,
    /// How long it lasts (default: until cleared).
    #[serde(default, with = "opt_duration")]
    pub duration: Option<Duration>,
    /// Which component (fan or PSU number, DIMM or drive URI, BIOS attribute, firmware id);
    /// default: one chosen from the seed.
    #[serde(default)]
    pub component: Option<String>,
}

/// A fault script: `{"faults": [ {server, kind, at, duration, component}, … ]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultScript {
    /// The faults, in any order.
    pub faults: Vec<FaultSpec>,
}

/// One injected fault and the truth about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundTruth {
    /// Sequence number in the fleet.
    pub id: u64,
    /// The server's index in the fleet.
    pub server: usize,
    /// The server's system UUID (its fleet identity).
    pub server_id: String,
    /// The fault.
    pub kind: FaultKind,
    /// The component it hit: a Redfish URI where there is one, else a name.
    pub component: String,
    /// When it was injected (RFC 3339).
    pub injected_at: String,
    /// When it was cleared, if it was.
    pub cleared_at: Option<String>,
    /// Where it came from: script, random or api.
    pub source: String,
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Random faults: each kind at a rate per server per hour.
#[derive(Debug, Clone, Default)]
pub struct FaultRates {
    /// (kind, faults per server per hour).
    pub rates: Vec<(FaultKind, f64)>,
    /// How long a random fault lasts before it clears (hangs and slowness only; hardware
    /// faults stay until a reset or an update, like the real thing).
    pub transient: Duration,
}

impl FaultRates {
    /// Parses `kind=rate` pairs (rate per server per hour), `all=rate` for every kind.
    pub fn parse(specs: &[String]) -> Result<Self, String> {
        let mut rates = Vec::new();
        for s in specs {
            let (k, r) = s
                .split_once('=')
                .ok_or_else(|| format!("{s:?}: expected kind=rate-per-hour"))?;
            let r: f64 = r
                .parse()
                .map_err(|_| format!("{s:?}: the rate is not a number"))?;
            if !(0.0..=3600.0).contains(&r) {
                return Err(format!(
                    "{s:?}: the rate must be between 0 and 3600 per hour"
                ));
            }
            if k == "all" {
                rates.extend(FaultKind::ALL.iter().map(|k| (*k, r)));
            } else {
                rates.push((k.parse()?, r));
            }
        }
        Ok(FaultRates {
            rates,
            transient: Duration::from_secs(120),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_reads() {
        let s: FaultScript = serde_json::from_str(
            r#"{"faults":[{"server":2,"kind":"fan-failure","at":"90s","component":"1"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(s.faults.len(), 1);
        assert_eq!(s.faults[0].at, Some(Duration::from_secs(90)));
        assert!(
            serde_json::from_str::<FaultScript>(r#"{"faults":[{"server":1,"kind":"meteor"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn rates_parse() {
        let r = FaultRates::parse(&["fan-failure=0.5".into(), "all=0.01".into()]);
        assert_eq!(r.map(|r| r.rates.len()).unwrap_or(0), 11);
        assert!(FaultRates::parse(&["fan-failure".into()]).is_err());
    }
}
