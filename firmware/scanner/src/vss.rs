//! edk2 variable stores ($VSS, VSS with gEfiVariableGuid, VSS2 with gEfiAuthenticatedVariableGuid).

use serde::{Deserialize, Serialize};

use crate::esl::{SignatureEntry, parse_signature_lists};
use crate::guid::{self, Guid};
use crate::report::ScanIssue;
use crate::rules::SecureBootDb;
use crate::util::{align_up, slice, u8_at, u16_at, u32_at};

/// Marks the start of every variable header.
const START_ID: u16 = 0x55AA;
/// VAR_ADDED: the variable is live.
const VAR_ADDED: u8 = 0x3F;
/// VAR_ADDED & VAR_IN_DELETED_TRANSITION: still live until its replacement lands.
const VAR_IN_TRANSITION: u8 = 0x3E;
/// Plain VARIABLE_HEADER size.
const PLAIN_HEADER: usize = 32;
/// AUTHENTICATED_VARIABLE_HEADER size.
const AUTH_HEADER: usize = 60;
/// EFI_VARIABLE_AUTHENTICATED_WRITE_ACCESS | EFI_VARIABLE_TIME_BASED_AUTHENTICATED_WRITE_ACCESS.
const AUTH_ATTRS: u32 = 0x10 | 0x20;

/// Which header flavour a store uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// GUID signature gEfiVariableGuid: plain headers.
    Vss,
    /// GUID signature gEfiAuthenticatedVariableGuid: authenticated headers.
    Vss2,
    /// `$VSS` 4-byte signature (vendor stores); header flavour chosen per variable.
    DollarVss,
}

/// One variable as found in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Name (UCS-2 decoded).
    pub name: String,
    /// Vendor GUID.
    pub vendor: Guid,
    /// Raw State byte.
    pub state: u8,
    /// Attributes.
    pub attributes: u32,
    /// Offset of the header inside the store buffer.
    pub offset: usize,
    /// Offset of the data inside the store buffer.
    pub data_offset: usize,
    /// Data bytes.
    pub data: Vec<u8>,
}

impl Variable {
    /// Whether the variable is live (added, or added and being replaced).
    pub fn is_live(&self) -> bool {
        self.state == VAR_ADDED || self.state == VAR_IN_TRANSITION
    }
}

/// A parsed variable store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VarStore {
    /// Header flavour.
    pub kind: StoreKind,
    /// Store size from its header, clipped to the buffer.
    pub size: usize,
    /// All variables, live and deleted, in store order.
    pub variables: Vec<Variable>,
}

/// Recognises a store header at the start of `buf`: kind and header length.
pub fn detect(buf: &[u8]) -> Option<(StoreKind, usize)> {
    if buf.get(0..4) == Some(b"$VSS") {
        return Some((StoreKind::DollarVss, 16));
    }
    let g = Guid::read(buf, 0)?;
    if g == guid::AUTH_VARIABLE_STORE || g == guid::AUTH_VARIABLE_TIME_STORE {
        Some((StoreKind::Vss2, 28))
    } else if g == guid::VARIABLE_STORE {
        Some((StoreKind::Vss, 28))
    } else {
        None
    }
}

/// Parses a store at the start of `buf`; structural problems go to `issues` with `path`.
pub fn parse(buf: &[u8], path: &str, issues: &mut Vec<ScanIssue>) -> Option<VarStore> {
    let (kind, header) = detect(buf)?;
    let size_off = if kind == StoreKind::DollarVss { 4 } else { 16 };
    let mut issue = |offset: usize, message: String| {
        issues.push(ScanIssue {
            path: path.to_string(),
            offset: offset as u64,
            message,
        })
    };
    let Some(declared) = u32_at(buf, size_off) else {
        issue(0, "variable store header truncated".into());
        return None;
    };
    let declared = declared as usize;
    if declared < header {
        issue(
            size_off,
            format!("variable store Size {declared:#x} smaller than its header"),
        );
        return None;
    }
    let size = if declared > buf.len() {
        issue(
            size_off,
            format!(
                "variable store Size {declared:#x} runs past the data ({:#x} bytes)",
                buf.len()
            ),
        );
        buf.len()
    } else {
        declared
    };
    let store = buf.get(..size).unwrap_or(buf);
    let mut variables = Vec::new();
    let mut off = header;
    while let Some(aligned) = align_up(off, 4) {
        off = aligned;
        if u16_at(store, off) != Some(START_ID) {
            break; // free space (0xFFFF) or end of store
        }
        let (Some(state), Some(attributes)) = (u8_at(store, off + 2), u32_at(store, off + 4))
        else {
            issue(off, "variable header truncated".into());
            break;
        };
        let auth = match kind {
            StoreKind::Vss2 => true,
            StoreKind::Vss => false,
            StoreKind::DollarVss => attributes & AUTH_ATTRS != 0,
        };
        let (hdr, sizes) = if auth {
            (AUTH_HEADER, 36)
        } else {
            (PLAIN_HEADER, 8)
        };
        let (Some(name_size), Some(data_size), Some(vendor)) = (
            u32_at(store, off + sizes),
            u32_at(store, off + sizes + 4),
            Guid::read(store, off + sizes + 8),
        ) else {
            issue(off, "variable header truncated".into());
            break;
        };
        let name_off = off + hdr;
        let data_off = name_off.saturating_add(name_size as usize);
        let end = data_off.saturating_add(data_size as usize);
        let (Some(name), Some(data)) = (
            slice(store, name_off, name_size as usize),
            slice(store, data_off, data_size as usize),
        ) else {
            issue(
                off,
                format!(
                    "variable NameSize {name_size:#x}/DataSize {data_size:#x} run past the store end {size:#x}"
                ),
            );
            break;
        };
        variables.push(Variable {
            name: crate::util::ucs2(name),
            vendor,
            state,
            attributes,
            offset: off,
            data_offset: data_off,
            data: data.to_vec(),
        });
        off = end;
    }
    Some(VarStore {
        kind,
        size,
        variables,
    })
}

impl VarStore {
    /// The live variable `name` under `vendor` (the last live copy wins).
    pub fn get(&self, name: &str, vendor: Guid) -> Option<&Variable> {
        self.variables
            .iter()
            .rfind(|v| v.is_live() && v.name == name && v.vendor == vendor)
    }

    /// PK/KEK/db/dbx as signature lists; unreadable lists go to `issues`.
    pub fn secure_boot(&self, path: &str, issues: &mut Vec<ScanIssue>) -> SecureBootDb {
        let mut read = |name: &str, vendor: Guid| -> Option<Vec<SignatureEntry>> {
            let v = self.get(name, vendor)?;
            match parse_signature_lists(&v.data) {
                Ok(list) => Some(list),
                Err(e) => {
                    issues.push(ScanIssue {
                        path: format!("{path}/var {name}"),
                        offset: (v.data_offset + e.offset()) as u64,
                        message: e.to_string(),
                    });
                    None
                }
            }
        };
        SecureBootDb {
            pk: read("PK", guid::GLOBAL_VARIABLE),
            kek: read("KEK", guid::GLOBAL_VARIABLE),
            db: read("db", guid::IMAGE_SECURITY_DATABASE),
            dbx: read("dbx", guid::IMAGE_SECURITY_DATABASE),
        }
    }

    /// Whether this store holds any of the Secure Boot variables (only then do SB rules run).
    pub fn has_secure_boot_state(&self) -> bool {
        // A formatted store holding variables is a real platform store; one that never ran has none.
        !self.variables.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a VSS2 store holding `vars` (name, vendor, data).
    pub(crate) fn build_vss2(vars: &[(&str, Guid, &[u8])], size: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&guid::AUTH_VARIABLE_STORE.0);
        b.extend_from_slice(&(size as u32).to_le_bytes());
        b.extend_from_slice(&[0x5A, 0xFE, 0, 0, 0, 0, 0, 0]);
        for (name, vendor, data) in vars {
            while b.len() % 4 != 0 {
                b.push(0xFF);
            }
            let name16: Vec<u8> = name
                .encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect();
            b.extend_from_slice(&START_ID.to_le_bytes());
            b.push(VAR_ADDED);
            b.push(0);
            b.extend_from_slice(&0x27u32.to_le_bytes());
            b.extend_from_slice(&[0u8; 8 + 16 + 4]);
            b.extend_from_slice(&(name16.len() as u32).to_le_bytes());
            b.extend_from_slice(&(data.len() as u32).to_le_bytes());
            b.extend_from_slice(&vendor.0);
            b.extend_from_slice(&name16);
            b.extend_from_slice(data);
        }
        b.resize(size.max(b.len()), 0xFF);
        b
    }

    #[test]
    fn parses_and_bounds() {
        let store = build_vss2(&[("PK", guid::GLOBAL_VARIABLE, b"abc")], 256);
        let mut issues = Vec::new();
        let vs = parse(&store, "vs", &mut issues).expect("store");
        assert!(issues.is_empty());
        assert_eq!(
            vs.get("PK", guid::GLOBAL_VARIABLE).map(|v| v.data.clone()),
            Some(b"abc".to_vec())
        );
        // A bogus DataSize is an issue, not a panic.
        let mut bad = store.clone();
        let ds = 28 + 36 + 4;
        bad[ds..ds + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let vs = parse(&bad, "vs", &mut issues).expect("store");
        assert!(vs.variables.is_empty());
        assert_eq!(issues.len(), 1);
    }
}
