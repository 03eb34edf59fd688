//! KEY-LEAK-001: public keys whose private halves leaked (MSI's Boot Guard and capsule keys,
//! Intel's Alder Lake BIOS keys, the BXT debug key), found by their bytes anywhere in a blob.

use aho_corasick::AhoCorasick;
use serde::{Deserialize, Serialize};

/// The built-in list, converted from FwHunt's SupplyChain rules (CC0-1.0).
const BUILTIN_LEAKED_KEYS: &str = include_str!("../rules/leaked_keys_fwhunt.json");

/// Rule id: key material whose private half is public.
pub const KEY_LEAK_001: &str = "KEY-LEAK-001";

/// One leaked key family: its byte patterns and whether one or all must be present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakedKey {
    /// Short name (the FwHunt rule's).
    pub name: String,
    /// What leaked and what it lets an attacker sign.
    #[serde(default)]
    pub description: String,
    /// Where the patterns come from.
    #[serde(default)]
    pub source: String,
    /// `any` (one pattern suffices) or `all`.
    #[serde(rename = "match", default)]
    pub mode: MatchMode,
    /// Hex byte patterns (key moduli or their parts).
    pub patterns: Vec<String>,
}

/// How a leaked key's patterns combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchMode {
    /// One pattern present is a hit.
    #[default]
    Any,
    /// Every pattern must be present.
    All,
}

#[derive(Deserialize)]
struct LeakedKeyFile {
    leaked_keys: Vec<LeakedKey>,
}

/// The shipped list (empty only if the shipped file were broken, which a unit test rules out).
pub fn builtin_leaked_keys() -> Vec<LeakedKey> {
    serde_json::from_str::<LeakedKeyFile>(BUILTIN_LEAKED_KEYS)
        .map(|f| f.leaked_keys)
        .unwrap_or_default()
}

/// The matcher for `keys`, built once per distinct key list: building the automaton costs far
/// more than one scan, and every scan of a rescan or import uses the same pack.
pub fn matcher_for(keys: &[LeakedKey]) -> std::sync::Arc<KeyMatcher> {
    use std::sync::{Arc, Mutex};
    type Cached = (Vec<LeakedKey>, Arc<KeyMatcher>);
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((k, m)) = cache.as_ref()
        && k.as_slice() == keys
    {
        return m.clone();
    }
    let m = Arc::new(KeyMatcher::new(keys));
    *cache = Some((keys.to_vec(), m.clone()));
    m
}

/// One leaked key found in a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHit {
    /// Index into the key list.
    pub key: usize,
    /// Offset of the first pattern found.
    pub offset: u64,
}

/// The patterns of a key list compiled into one automaton (one pass over a blob for all keys).
#[derive(Debug)]
pub struct KeyMatcher {
    automaton: Option<AhoCorasick>,
    /// Pattern index → (key index, pattern index within the key).
    owners: Vec<(usize, usize)>,
    counts: Vec<usize>,
    modes: Vec<MatchMode>,
}

impl KeyMatcher {
    /// Compiles `keys`; a pattern that is not even-length hex is skipped (the pack loader
    /// refuses such packs, so this only guards the built-in list).
    pub fn new(keys: &[LeakedKey]) -> Self {
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        let mut counts = Vec::new();
        for (k, key) in keys.iter().enumerate() {
            let mut n = 0;
            for p in &key.patterns {
                if let Ok(bytes) = hex::decode(p.trim())
                    && bytes.len() >= 16
                {
                    owners.push((k, n));
                    patterns.push(bytes);
                    n += 1;
                }
            }
            counts.push(n);
        }
        let automaton = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::new(&patterns).ok()
        };
        KeyMatcher {
            automaton,
            owners,
            counts,
            modes: keys.iter().map(|k| k.mode).collect(),
        }
    }

    /// The keys present in `data`, each once, with the offset of its first pattern.
    pub fn find(&self, data: &[u8]) -> Vec<KeyHit> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let mut seen: Vec<Vec<bool>> = self.counts.iter().map(|n| vec![false; *n]).collect();
        let mut first: Vec<Option<u64>> = vec![None; self.counts.len()];
        for m in ac.find_overlapping_iter(data) {
            let Some(&(k, p)) = self.owners.get(m.pattern().as_usize()) else {
                continue;
            };
            if let Some(slot) = seen.get_mut(k).and_then(|v| v.get_mut(p)) {
                *slot = true;
            }
            if let Some(f) = first.get_mut(k)
                && f.is_none()
            {
                *f = Some(m.start() as u64);
            }
        }
        let mut hits = Vec::new();
        for (k, found) in seen.iter().enumerate() {
            let hit = match self.modes.get(k).copied().unwrap_or_default() {
                MatchMode::Any => found.iter().any(|b| *b),
                MatchMode::All => !found.is_empty() && found.iter().all(|b| *b),
            };
            if hit && let Some(Some(offset)) = first.get(k) {
                hits.push(KeyHit {
                    key: k,
                    offset: *offset,
                });
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_loads_and_every_pattern_compiles() {
        let keys = builtin_leaked_keys();
        assert_eq!(keys.len(), 4);
        let m = KeyMatcher::new(&keys);
        let total: usize = keys.iter().map(|k| k.patterns.len()).sum();
        assert_eq!(m.owners.len(), total, "every shipped pattern is usable");
    }

    #[test]
    fn a_pattern_anywhere_is_found_once_with_its_offset() {
        let keys = builtin_leaked_keys();
        let m = KeyMatcher::new(&keys);
        let pat = hex::decode(&keys[1].patterns[2]).expect("hex");
        let mut blob = vec![0xffu8; 4096];
        blob.extend_from_slice(&pat);
        blob.extend_from_slice(&pat);
        assert_eq!(
            m.find(&blob),
            vec![KeyHit {
                key: 1,
                offset: 4096
            }]
        );
        assert!(
            m.find(&blob[..4096 + pat.len() - 1]).is_empty(),
            "a cut pattern is no hit"
        );
    }

    #[test]
    fn all_mode_needs_every_pattern() {
        let keys = vec![LeakedKey {
            name: "two".into(),
            description: String::new(),
            source: String::new(),
            mode: MatchMode::All,
            patterns: vec!["11".repeat(16), "22".repeat(16)],
        }];
        let m = KeyMatcher::new(&keys);
        let a = vec![0x11u8; 16];
        assert!(m.find(&a).is_empty());
        let mut both = a.clone();
        both.extend_from_slice(&[0x22u8; 16]);
        assert_eq!(m.find(&both).len(), 1);
    }
}
