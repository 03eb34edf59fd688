//! Per-server identity: serials, UUIDs and MAC addresses varied deterministically from the seed.
//!
//! Every mockup ships one set of identifiers; a fleet built from it needs each server to be
//! distinct and the same from run to run. The identifiers found in the mockup are mapped to
//! per-server replacements once, and each response is rewritten with that map.

use std::collections::HashMap;

use serde_json::Value;

use crate::mockup::Mockup;

/// A 64-bit mix of its inputs (SplitMix64's finaliser): the simulator's one source of
/// determinism. Owned here, not taken from an RNG crate, because its output must never change
/// with a dependency's version: a seed must give the same fleet forever.
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a string into the mix.
pub fn mix_str(a: u64, s: &str) -> u64 {
    s.bytes()
        .fold(mix(a, s.len() as u64), |h, b| mix(h, u64::from(b)))
}

/// A value in [0, 1) from `h`.
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One server's replacements for the mockup's identifiers.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Original identifier → this server's.
    map: HashMap<String, String>,
    /// The server's SMBIOS system UUID (lowercase), as its ComputerSystem reports it.
    pub system_uuid: String,
    /// The system's serial number.
    pub serial: String,
}

const SERIAL_KEYS: [&str; 3] = ["SerialNumber", "SparePartNumber", "AssetTag"];
const UUID_KEYS: [&str; 2] = ["UUID", "ServiceIdentification"];
const MAC_KEYS: [&str; 3] = ["MACAddress", "PermanentMACAddress", "MacAddress"];

impl Identity {
    /// The identity of server `index` of a fleet seeded with `seed`.
    pub fn new(mockup: &Mockup, seed: u64, index: usize) -> Self {
        let base = mix(seed, index as u64 + 1);
        let mut id = Identity::default();
        let mut seen = Vec::new();
        for v in mockup.resources.values() {
            collect(v, &mut seen);
        }
        for (kind, original) in seen {
            if id.map.contains_key(&original) {
                continue;
            }
            let h = mix_str(base, &original);
            let new = match kind {
                Kind::Serial => vary_serial(&original, h),
                Kind::Uuid => match uuid::Uuid::parse_str(&original) {
                    Ok(_) => uuid::Builder::from_random_bytes(
                        [h.to_le_bytes(), mix(h, 1).to_le_bytes()]
                            .concat()
                            .try_into()
                            .unwrap_or([0; 16]),
                    )
                    .into_uuid()
                    .to_string(),
                    Err(_) => vary_serial(&original, h),
                },
                Kind::Mac => vary_mac(&original, h),
            };
            id.map.insert(original, new);
        }
        for uri in mockup.of_type("ComputerSystem") {
            if let Some(v) = mockup.resources.get(uri) {
                if id.system_uuid.is_empty()
                    && let Some(u) = v.get("UUID").and_then(Value::as_str)
                {
                    id.system_uuid = id.replace(u).to_lowercase();
                }
                if id.serial.is_empty()
                    && let Some(s) = v.get("SerialNumber").and_then(Value::as_str)
                {
                    id.serial = id.replace(s);
                }
            }
        }
        id
    }

    fn replace(&self, s: &str) -> String {
        self.map.get(s).cloned().unwrap_or_else(|| s.to_string())
    }

    /// Rewrites every identifier in `v` to this server's.
    pub fn apply(&self, v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, inner) in m.iter_mut() {
                    match inner {
                        Value::String(s) if is_identity_key(k) => {
                            if let Some(new) = self.map.get(s.as_str()) {
                                *s = new.clone();
                            }
                        }
                        _ => self.apply(inner),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.apply(x)),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Serial,
    Uuid,
    Mac,
}

fn is_identity_key(k: &str) -> bool {
    SERIAL_KEYS.contains(&k) || UUID_KEYS.contains(&k) || MAC_KEYS.contains(&k)
}

fn collect(v: &Value, out: &mut Vec<(Kind, String)>) {
    match v {
        Value::Object(m) => {
            for (k, inner) in m {
                match inner {
                    Value::String(s) if !s.is_empty() => {
                        let kind = if SERIAL_KEYS.contains(&k.as_str()) {
                            Some(Kind::Serial)
                        } else if UUID_KEYS.contains(&k.as_str()) {
                            Some(Kind::Uuid)
                        } else if MAC_KEYS.contains(&k.as_str()) {
                            Some(Kind::Mac)
                        } else {
                            None
                        };
                        if let Some(kind) = kind {
                            out.push((kind, s.clone()));
                        }
                    }
                    _ => collect(inner, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// Keeps the serial's shape (letters stay letters, digits digits, hex stays hex) with new
/// characters.
fn vary_serial(s: &str, h: u64) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let hex = s.chars().any(|c| c.is_ascii_hexdigit())
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '-');
    let mut h = h;
    s.chars()
        .map(|c| {
            h = mix(h, 7);
            if hex && c.is_ascii_hexdigit() {
                let x = char::from(HEX[(h % 16) as usize]);
                if c.is_ascii_uppercase() {
                    x.to_ascii_uppercase()
                } else {
                    x
                }
            } else if c.is_ascii_digit() {
                char::from(b'0' + (h % 10) as u8)
            } else if c.is_ascii_uppercase() {
                char::from(b'A' + (h % 26) as u8)
            } else if c.is_ascii_lowercase() {
                char::from(b'a' + (h % 26) as u8)
            } else {
                c
            }
        })
        .collect()
}

/// Keeps the vendor part (OUI) and the separator, varies the device part.
fn vary_mac(s: &str, h: u64) -> String {
    let sep = if s.contains('-') { '-' } else { ':' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6 || parts.iter().any(|p| u8::from_str_radix(p, 16).is_err()) {
        return vary_serial(s, h);
    }
    let upper = s.chars().any(|c| c.is_ascii_uppercase());
    let tail = h.to_le_bytes();
    let mut out: Vec<String> = parts[..3].iter().map(|p| p.to_string()).collect();
    for b in &tail[..3] {
        out.push(if upper {
            format!("{b:02X}")
        } else {
            format!("{b:02x}")
        });
    }
    out.join(&sep.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_differ_and_a_seed_gives_the_same_fleet() {
        let m = Mockup::builtin();
        let a = Identity::new(&m, 7, 0);
        let b = Identity::new(&m, 7, 1);
        let a2 = Identity::new(&m, 7, 0);
        assert_ne!(a.system_uuid, b.system_uuid);
        assert_ne!(a.serial, b.serial);
        assert_eq!(a.system_uuid, a2.system_uuid);
        assert!(uuid::Uuid::parse_str(&a.system_uuid).is_ok());
        assert_eq!(a.system_uuid, a.system_uuid.to_lowercase());
    }

    #[test]
    fn hex_serials_stay_hex() {
        let v = vary_serial("3f:0a:B2", 5);
        assert!(v.chars().all(|c| c.is_ascii_hexdigit() || c == ':'), "{v}");
        assert_eq!(vary_serial("2M220100SL", 5).len(), 10);
    }

    #[test]
    fn macs_keep_their_vendor_part() {
        assert!(vary_mac("12:44:6A:3B:04:11", 99).starts_with("12:44:6A:"));
        assert_eq!(vary_mac("12:44:6A:3B:04:11", 99).len(), 17);
    }
}
