//! A system's UEFI Secure Boot state and keys as its BMC reports them
//! (`ComputerSystem.SecureBoot` → `SecureBootDatabases/{PK,KEK,db,dbx}`).
//!
//! The databases are read as they are enrolled now; the `*Default` databases (factory
//! defaults) are skipped. Certificates come as PEM (`CertificateString`), hashes as hex
//! (`SignatureString`); anything unreadable is noted and skipped, so one odd entry does not hide
//! the rest of the keys.

use rustls_pki_types::CertificateDer;
// Why rustls-pki-types for PEM: it is already in the tree under rustls, and its PEM reader
// handles chains and stray text around the blocks (BMCs put both in `CertificateString`).
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use super::{RedfishClient, odata_id};
use crate::BmcError;

/// The four databases the Secure Boot rules read, by `DatabaseId`.
pub const DATABASES: [&str; 4] = ["PK", "KEK", "db", "dbx"];

/// One enrolled signature that is not a certificate (a dbx hash, typically).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    /// The UEFI signature type (`EFI_CERT_SHA256_GUID`, …).
    pub signature_type: String,
    /// The signature bytes (a hash).
    pub data: Vec<u8>,
}

/// One Secure Boot database as the BMC reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecureBootDatabase {
    /// `PK`, `KEK`, `db` or `dbx`.
    pub id: String,
    /// DER certificates, in the BMC's order.
    pub certificates: Vec<Vec<u8>>,
    /// Non-certificate signatures.
    pub signatures: Vec<SignatureRecord>,
}

/// A system's Secure Boot state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecureBootState {
    /// `SecureBootEnable`: whether the operator enabled it.
    pub enabled: Option<bool>,
    /// `SecureBootCurrentBoot`: Enabled or Disabled for the current boot.
    pub current_boot: Option<String>,
    /// `SecureBootMode`: SetupMode, UserMode, AuditMode, DeployedMode.
    pub mode: Option<String>,
    /// The databases found (a BMC that reports no `SecureBootDatabases` gives none).
    pub databases: Vec<SecureBootDatabase>,
    /// Entries that could not be read, one line each.
    pub notes: Vec<String>,
}

impl SecureBootState {
    /// The database `id`, when the BMC reports it.
    pub fn database(&self, id: &str) -> Option<&SecureBootDatabase> {
        self.databases.iter().find(|d| d.id == id)
    }
}

/// Reads the `SecureBoot` resource at `uri` and its four databases.
pub async fn read(client: &RedfishClient, uri: &str) -> Result<SecureBootState, BmcError> {
    let sb = client.get(uri).await?;
    let mut state = SecureBootState {
        enabled: sb.get("SecureBootEnable").and_then(Value::as_bool),
        current_boot: text(&sb, "SecureBootCurrentBoot"),
        mode: text(&sb, "SecureBootMode"),
        ..Default::default()
    };
    let Some(dbs) = sb.get("SecureBootDatabases").and_then(odata_id) else {
        return Ok(state);
    };
    for db in client.members(&dbs).await? {
        let id = text(&db, "DatabaseId")
            .or_else(|| text(&db, "Id"))
            .unwrap_or_default();
        if !DATABASES.contains(&id.as_str()) {
            continue;
        }
        let mut out = SecureBootDatabase {
            id: id.clone(),
            ..Default::default()
        };
        if let Some(certs) = db.get("Certificates").and_then(odata_id) {
            match client.members(&certs).await {
                Ok(list) => {
                    for c in &list {
                        read_certificate(c, &mut out, &mut state.notes);
                    }
                }
                Err(e) => state.notes.push(format!("{id} certificates: {e}")),
            }
        }
        if let Some(sigs) = db.get("Signatures").and_then(odata_id) {
            match client.members(&sigs).await {
                Ok(list) => {
                    for s in &list {
                        read_signature(s, &mut out, &mut state.notes);
                    }
                }
                Err(e) => state.notes.push(format!("{id} signatures: {e}")),
            }
        }
        state.databases.push(out);
    }
    Ok(state)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn where_(v: &Value) -> String {
    odata_id(v).unwrap_or_else(|| "an entry without @odata.id".into())
}

fn read_certificate(c: &Value, db: &mut SecureBootDatabase, notes: &mut Vec<String>) {
    let Some(pem) = c.get("CertificateString").and_then(Value::as_str) else {
        notes.push(format!("{}: no CertificateString", where_(c)));
        return;
    };
    let before = (db.certificates.len(), notes.len());
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        match der {
            Ok(der) => db.certificates.push(der.as_ref().to_vec()),
            Err(e) => notes.push(format!("{}: unreadable PEM: {e}", where_(c))),
        }
    }
    if (db.certificates.len(), notes.len()) == before {
        notes.push(format!(
            "{}: no certificate in CertificateString",
            where_(c)
        ));
    }
}

fn read_signature(s: &Value, db: &mut SecureBootDatabase, notes: &mut Vec<String>) {
    let kind = text(s, "SignatureType").unwrap_or_default();
    let Some(hex_text) = s.get("SignatureString").and_then(Value::as_str) else {
        notes.push(format!("{}: no SignatureString", where_(s)));
        return;
    };
    match hex::decode(hex_text.trim()) {
        Ok(data) => db.signatures.push(SignatureRecord {
            signature_type: kind,
            data,
        }),
        Err(e) => notes.push(format!("{}: SignatureString is not hex: {e}", where_(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn odd_entries_are_noted_not_fatal() {
        let mut db = SecureBootDatabase::default();
        let mut notes = Vec::new();
        read_certificate(
            &json!({"@odata.id": "/c/1", "CertificateString": "garbage"}),
            &mut db,
            &mut notes,
        );
        read_certificate(&json!({"@odata.id": "/c/2"}), &mut db, &mut notes);
        read_signature(
            &json!({"@odata.id": "/s/1", "SignatureString": "zz", "SignatureType": "EFI_CERT_SHA256_GUID"}),
            &mut db,
            &mut notes,
        );
        read_signature(
            &json!({"SignatureString": "00ff", "SignatureType": "EFI_CERT_SHA256_GUID"}),
            &mut db,
            &mut notes,
        );
        assert!(db.certificates.is_empty());
        assert_eq!(db.signatures.len(), 1);
        assert_eq!(db.signatures[0].data, vec![0, 0xff]);
        assert_eq!(notes.len(), 3, "{notes:?}");
    }
}
