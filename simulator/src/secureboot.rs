//! Secure Boot databases for simulated systems: what a fleet in the Microsoft 2011 → 2023 CA
//! rollover looks like over Redfish (`SecureBoot/SecureBootDatabases/{PK,KEK,db,dbx}`).
//!
//! A profile replaces (or adds) every system's `SecureBoot` subtree with certificates from
//! `simulator/secureboot/` (Microsoft's public CA certificates and two made-up platform keys),
//! so the collectors and the Secure Boot rules can be tested on servers in every state an
//! operator meets: not yet rolled over, rolled over, and shipped with a test Platform Key.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::identity;
use crate::mockup::Mockup;

const MS_KEK_2011: &str = include_str!("../secureboot/ms-kek-2011.pem");
const MS_KEK_2023: &str = include_str!("../secureboot/ms-kek-2023.pem");
const MS_UEFI_2011: &str = include_str!("../secureboot/ms-uefi-2011.pem");
const MS_UEFI_2023: &str = include_str!("../secureboot/ms-uefi-2023.pem");
const MS_ROM_2023: &str = include_str!("../secureboot/ms-uefi-rom-2023.pem");
const WINDOWS_2011: &str = include_str!("../secureboot/windows-2011.pem");
const WINDOWS_2023: &str = include_str!("../secureboot/windows-2023.pem");
const OEM_PK: &str = include_str!("../secureboot/oem-pk.pem");
const TEST_PK: &str = include_str!("../secureboot/test-pk-ami.pem");

/// Microsoft's owner GUID for the keys it enrolls (`MicrosoftSignatureOwner` in edk2).
const MICROSOFT_OWNER: &str = "77fa9abd-0359-4d32-bd60-28f4e78f784b";
/// The owner GUID the simulated OEM enrolls its keys under.
const OEM_OWNER: &str = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072";

/// Which Secure Boot keys the simulated systems carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureBootProfile {
    /// What the mockup has (or nothing when it has no `SecureBoot`).
    Mockup,
    /// Only the 2011 Microsoft CAs (KEK CA 2011, UEFI CA 2011, Windows PCA 2011): a server
    /// whose keys were never rolled over.
    Ms2011,
    /// The 2011 and the 2023 Microsoft CAs: rolled over.
    Ms2023,
    /// A "DO NOT TRUST - AMI Test PK" Platform Key (PKfail) over the 2011 CAs.
    TestPk,
    /// Per server from the seed: most rolled over, some not, a few with a test PK.
    Mixed,
}

impl SecureBootProfile {
    /// Every profile, by its command-line name.
    pub const NAMES: [(&'static str, SecureBootProfile); 5] = [
        ("mockup", SecureBootProfile::Mockup),
        ("ms-2011", SecureBootProfile::Ms2011),
        ("ms-2023", SecureBootProfile::Ms2023),
        ("test-pk", SecureBootProfile::TestPk),
        ("mixed", SecureBootProfile::Mixed),
    ];

    /// The profile server `index` of a fleet seeded with `seed` gets: `Mixed` resolved.
    pub fn for_server(self, seed: u64, index: usize) -> SecureBootProfile {
        if self != SecureBootProfile::Mixed {
            return self;
        }
        let u = identity::unit(identity::mix(
            identity::mix(seed, 0x5EC0_B007),
            index as u64,
        ));
        if u < 0.6 {
            SecureBootProfile::Ms2023
        } else if u < 0.9 {
            SecureBootProfile::Ms2011
        } else {
            SecureBootProfile::TestPk
        }
    }

    /// The concrete profiles a fleet with this setting may use.
    pub fn variants(self) -> Vec<SecureBootProfile> {
        match self {
            SecureBootProfile::Mixed => vec![
                SecureBootProfile::Ms2023,
                SecureBootProfile::Ms2011,
                SecureBootProfile::TestPk,
            ],
            p => vec![p],
        }
    }
}

impl std::str::FromStr for SecureBootProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<_> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown Secure Boot profile {s:?}; one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// The keys of one database: PEM certificates with their owner, or SHA-256 hashes.
struct Database {
    id: &'static str,
    name: &'static str,
    certs: Vec<(&'static str, &'static str)>,
    hashes: Vec<String>,
}

fn databases(profile: SecureBootProfile) -> Vec<Database> {
    let ms = |pem| (pem, MICROSOFT_OWNER);
    let pk = match profile {
        SecureBootProfile::TestPk => TEST_PK,
        _ => OEM_PK,
    };
    let mut kek = vec![(OEM_PK, OEM_OWNER), ms(MS_KEK_2011)];
    let mut db = vec![ms(WINDOWS_2011), ms(MS_UEFI_2011)];
    if profile == SecureBootProfile::Ms2023 {
        kek.push(ms(MS_KEK_2023));
        db.extend([ms(WINDOWS_2023), ms(MS_UEFI_2023), ms(MS_ROM_2023)]);
    }
    vec![
        Database {
            id: "PK",
            name: "PK - Platform Key",
            certs: vec![(pk, OEM_OWNER)],
            hashes: Vec::new(),
        },
        Database {
            id: "KEK",
            name: "KEK - Key Exchange Key Database",
            certs: kek,
            hashes: Vec::new(),
        },
        Database {
            id: "db",
            name: "db - Authorized Signature Database",
            certs: db,
            hashes: Vec::new(),
        },
        Database {
            id: "dbx",
            name: "dbx - Forbidden Signature Database",
            certs: Vec::new(),
            // The placeholder edk2 platforms ship before their first dbx update: the SHA-256
            // of nothing.
            hashes: vec!["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()],
        },
    ]
}

/// `mockup` with every ComputerSystem's Secure Boot replaced by `profile`'s keys.
pub fn apply(mockup: &Mockup, profile: SecureBootProfile) -> Mockup {
    let mut resources = mockup.resources.clone();
    if profile != SecureBootProfile::Mockup {
        let systems: Vec<String> = mockup
            .of_type("ComputerSystem")
            .map(str::to_string)
            .collect();
        for system in systems {
            install(&mut resources, &system, profile);
        }
    }
    Mockup {
        name: match profile {
            SecureBootProfile::Mockup => mockup.name.clone(),
            p => format!("{}+{}", mockup.name, name(p)),
        },
        resources,
        metadata: mockup.metadata.clone(),
        files: mockup.files.clone(),
    }
}

fn name(p: SecureBootProfile) -> &'static str {
    SecureBootProfile::NAMES
        .iter()
        .find(|(_, q)| *q == p)
        .map_or("custom", |(n, _)| n)
}

fn collection(uri: &str, odata_type: &str, name: &str, members: &[String]) -> Value {
    json!({
        "@odata.id": uri,
        "@odata.type": odata_type,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.iter().map(|m| json!({"@odata.id": m})).collect::<Vec<_>>(),
    })
}

fn install(resources: &mut BTreeMap<String, Value>, system: &str, profile: SecureBootProfile) {
    let sb = format!("{system}/SecureBoot");
    resources.retain(|u, _| u != &sb && !u.starts_with(&format!("{sb}/")));
    if let Some(Value::Object(s)) = resources.get_mut(system) {
        s.insert("SecureBoot".into(), json!({"@odata.id": sb}));
    }
    let dbs_uri = format!("{sb}/SecureBootDatabases");
    resources.insert(
        sb.clone(),
        json!({
            "@odata.id": sb,
            "@odata.type": "#SecureBoot.v1_1_0.SecureBoot",
            "Id": "SecureBoot",
            "Name": "UEFI Secure Boot",
            "SecureBootEnable": true,
            "SecureBootCurrentBoot": "Enabled",
            "SecureBootMode": "DeployedMode",
            "SecureBootDatabases": {"@odata.id": dbs_uri},
        }),
    );
    let mut members = Vec::new();
    for d in databases(profile) {
        let uri = format!("{dbs_uri}/{}", d.id);
        members.push(uri.clone());
        let mut db = json!({
            "@odata.id": uri,
            "@odata.type": "#SecureBootDatabase.v1_0_3.SecureBootDatabase",
            "Id": d.id,
            "Name": d.name,
            "DatabaseId": d.id,
        });
        if !d.certs.is_empty() {
            let certs_uri = format!("{uri}/Certificates");
            db["Certificates"] = json!({"@odata.id": certs_uri});
            let mut ids = Vec::new();
            for (i, (pem, owner)) in d.certs.iter().enumerate() {
                let c = format!("{certs_uri}/{}", i + 1);
                ids.push(c.clone());
                resources.insert(
                    c.clone(),
                    json!({
                        "@odata.id": c,
                        "@odata.type": "#Certificate.v1_11_0.Certificate",
                        "Id": (i + 1).to_string(),
                        "Name": format!("{} certificate {}", d.id, i + 1),
                        "CertificateString": pem,
                        "CertificateType": "PEM",
                        "UefiSignatureOwner": owner,
                    }),
                );
            }
            resources.insert(
                certs_uri.clone(),
                collection(
                    &certs_uri,
                    "#CertificateCollection.CertificateCollection",
                    "Certificates",
                    &ids,
                ),
            );
        }
        if !d.hashes.is_empty() {
            let sigs_uri = format!("{uri}/Signatures");
            db["Signatures"] = json!({"@odata.id": sigs_uri});
            let mut ids = Vec::new();
            for (i, h) in d.hashes.iter().enumerate() {
                let s = format!("{sigs_uri}/{}", i + 1);
                ids.push(s.clone());
                resources.insert(
                    s.clone(),
                    json!({
                        "@odata.id": s,
                        "@odata.type": "#Signature.v1_0_3.Signature",
                        "Id": (i + 1).to_string(),
                        "Name": "SHA256 Signature",
                        "SignatureString": h,
                        "SignatureTypeRegistry": "UEFI",
                        "SignatureType": "EFI_CERT_SHA256_GUID",
                        "UefiSignatureOwner": MICROSOFT_OWNER,
                    }),
                );
            }
            resources.insert(
                sigs_uri.clone(),
                collection(
                    &sigs_uri,
                    "#SignatureCollection.SignatureCollection",
                    "Signatures",
                    &ids,
                ),
            );
        }
        resources.insert(uri, db);
    }
    resources.insert(
        dbs_uri.clone(),
        collection(
            &dbs_uri,
            "#SecureBootDatabaseCollection.SecureBootDatabaseCollection",
            "UEFI SecureBoot Database Collection",
            &members,
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_install_the_databases_of_every_system() {
        let m = Mockup::builtin();
        let systems: Vec<String> = m.of_type("ComputerSystem").map(str::to_string).collect();
        assert!(!systems.is_empty());
        let s = apply(&m, SecureBootProfile::Ms2011);
        for sys in &systems {
            let kek =
                &s.resources[&format!("{sys}/SecureBoot/SecureBootDatabases/KEK/Certificates")];
            assert_eq!(kek["Members@odata.count"], 2);
            let c =
                &s.resources[&format!("{sys}/SecureBoot/SecureBootDatabases/KEK/Certificates/2")];
            assert!(
                c["CertificateString"]
                    .as_str()
                    .is_some_and(|p| p.contains("BEGIN CERTIFICATE"))
            );
            assert_eq!(
                s.resources[sys]["SecureBoot"]["@odata.id"],
                format!("{sys}/SecureBoot")
            );
        }
        let s = apply(&m, SecureBootProfile::Ms2023);
        let sys = &systems[0];
        let db = &s.resources[&format!("{sys}/SecureBoot/SecureBootDatabases/db/Certificates")];
        assert_eq!(db["Members@odata.count"], 5);
        assert_eq!(apply(&m, SecureBootProfile::Mockup).resources, m.resources);
    }

    #[test]
    fn mixed_fleets_are_mostly_rolled_over_and_stable() {
        let picks: Vec<_> = (0..200)
            .map(|i| SecureBootProfile::Mixed.for_server(7, i))
            .collect();
        let n = |p| picks.iter().filter(|q| **q == p).count();
        assert!(n(SecureBootProfile::Ms2023) > n(SecureBootProfile::Ms2011));
        assert!(n(SecureBootProfile::TestPk) > 0);
        assert_eq!(picks[3], SecureBootProfile::Mixed.for_server(7, 3));
        assert!("ms-2011".parse::<SecureBootProfile>().is_ok());
        assert!("nope".parse::<SecureBootProfile>().is_err());
    }
}
