//! The BIOS attribute registry a simulated BMC publishes, made from the mockup's attributes.
//!
//! The public mockups name an attribute registry but ship none. Clients (and DMTF's
//! `rf_bios_settings.py`) read it to learn each attribute's type and allowed values, and a
//! BMC refuses a setting the registry does not allow, so the simulator makes one: attribute
//! types from the current values, allowed values from what servers of this kind commonly offer.

use serde_json::{Map, Value, json};

/// A BIOS attribute registry and its published form.
#[derive(Debug, Clone)]
pub struct AttributeRegistry {
    /// The registry id the Bios resource names (`AttributeRegistry`).
    pub id: String,
    /// The `AttributeRegistry` document.
    pub registry: Value,
    attributes: Vec<Attribute>,
}

#[derive(Debug, Clone)]
struct Attribute {
    name: String,
    kind: Kind,
    default: Value,
}

#[derive(Debug, Clone)]
enum Kind {
    Enumeration(Vec<String>),
    String,
    Integer(i64, i64),
    Boolean,
}

/// Allowed values of attributes common on server BIOSes, by name.
const KNOWN: &[(&str, &[&str])] = &[
    ("BootMode", &["Uefi", "LegacyBios"]),
    ("EmbeddedSata", &["Raid", "Ahci", "Off"]),
    (
        "PowerProfile",
        &["MaxPerf", "Balanced", "PowerSaver", "OsControl"],
    ),
    (
        "UsbControl",
        &["UsbEnabled", "UsbDisabled", "ExternalUsbDisabled"],
    ),
    ("NicBoot1", &["NetworkBoot", "Disabled"]),
    ("NicBoot2", &["NetworkBoot", "Disabled"]),
    ("SriovGlobalEnable", &["Enabled", "Disabled"]),
];

/// The registry for the attributes of `bios` (a Bios resource).
pub fn from_bios(bios: &Value) -> AttributeRegistry {
    let id = bios
        .get("AttributeRegistry")
        .and_then(Value::as_str)
        .unwrap_or("BiosAttributeRegistry.v1_0_0")
        .to_string();
    let mut attributes = Vec::new();
    if let Some(attrs) = bios.get("Attributes").and_then(Value::as_object) {
        for (name, v) in attrs {
            let kind = match v {
                Value::Bool(_) => Kind::Boolean,
                Value::Number(_) => Kind::Integer(0, 256),
                Value::String(s) => match KNOWN.iter().find(|(n, _)| n == name) {
                    Some((_, values)) => {
                        Kind::Enumeration(values.iter().map(|v| v.to_string()).collect())
                    }
                    None if s == "Enabled" || s == "Disabled" => {
                        Kind::Enumeration(vec!["Enabled".into(), "Disabled".into()])
                    }
                    None => Kind::String,
                },
                _ => Kind::String,
            };
            attributes.push(Attribute {
                name: name.clone(),
                kind,
                default: v.clone(),
            });
        }
    }
    let entries: Vec<Value> = attributes.iter().map(entry).collect();
    let (registry_prefix, version) = id
        .split_once(".v")
        .map(|(p, v)| (p.to_string(), v.replace('_', ".")))
        .unwrap_or((id.clone(), "1.0.0".into()));
    let registry = json!({
        "@odata.type": "#AttributeRegistry.v1_3_8.AttributeRegistry",
        "Id": id,
        "Name": "BIOS Attribute Registry",
        "Language": "en",
        "OwningEntity": "Metal Automata simulator",
        "RegistryVersion": version,
        "Description": format!("{registry_prefix}: the BIOS attributes of this simulated server."),
        "SupportedSystems": [],
        "RegistryEntries": {"Attributes": entries},
    });
    AttributeRegistry {
        id,
        registry,
        attributes,
    }
}

fn entry(a: &Attribute) -> Value {
    let mut e = json!({
        "AttributeName": a.name,
        "DisplayName": a.name,
        "HelpText": format!("The {} setting.", a.name),
        "ReadOnly": false,
        "ResetRequired": true,
        "DefaultValue": a.default,
    });
    match &a.kind {
        Kind::Enumeration(values) => {
            e["Type"] = json!("Enumeration");
            e["Value"] = json!(
                values
                    .iter()
                    .map(|v| json!({"ValueName": v, "ValueDisplayName": v}))
                    .collect::<Vec<_>>()
            );
        }
        Kind::String => {
            e["Type"] = json!("String");
            e["MaxLength"] = json!(64);
        }
        Kind::Integer(lo, hi) => {
            e["Type"] = json!("Integer");
            e["LowerBound"] = json!(lo);
            e["UpperBound"] = json!(hi);
        }
        Kind::Boolean => e["Type"] = json!("Boolean"),
    }
    e
}

impl AttributeRegistry {
    /// Checks a value for an attribute; the error is (Base message id, message).
    pub fn check(&self, name: &str, v: &Value) -> Result<(), (&'static str, String)> {
        let Some(a) = self.attributes.iter().find(|a| a.name == name) else {
            return Err((
                "PropertyUnknown",
                format!("The attribute {name} is not in the registry."),
            ));
        };
        let ok = match (&a.kind, v) {
            (Kind::Enumeration(values), Value::String(s)) => values.contains(s),
            (Kind::String, Value::String(s)) => s.len() <= 64,
            (Kind::Integer(lo, hi), Value::Number(n)) => {
                n.as_i64().is_some_and(|n| n >= *lo && n <= *hi)
            }
            (Kind::Boolean, Value::Bool(_)) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err((
                "PropertyValueNotInList",
                format!("The value {v} is not allowed for the attribute {name}."),
            ))
        }
    }

    /// Every attribute at its default, for `Bios.ResetBios`.
    pub fn defaults(&self) -> Map<String, Value> {
        self.attributes
            .iter()
            .map(|a| (a.name.clone(), a.default.clone()))
            .collect()
    }

    /// The `MessageRegistryFile` that points clients at the registry.
    pub fn file_json(&self, uri: &str) -> Value {
        json!({
            "@odata.id": uri,
            "@odata.type": "#MessageRegistryFile.v1_1_4.MessageRegistryFile",
            "Id": self.id,
            "Name": "BIOS Attribute Registry File",
            "Languages": ["en"],
            "Registry": self.id,
            "Location": [{"Language": "en", "Uri": format!("{uri}/Registry")}],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_outside_the_registry_are_refused() {
        let r = from_bios(&json!({
            "AttributeRegistry": "Reg.v1_0_0",
            "Attributes": {"BootMode": "Uefi", "ProcCoreDisable": 0, "ProcTurboMode": "Enabled", "AdminPhone": ""}
        }));
        assert!(r.check("BootMode", &json!("LegacyBios")).is_ok());
        assert!(r.check("BootMode", &json!("Floppy")).is_err());
        assert!(r.check("ProcTurboMode", &json!("Disabled")).is_ok());
        assert!(r.check("ProcCoreDisable", &json!("x")).is_err());
        assert!(r.check("Nope", &json!(1)).is_err());
        assert_eq!(r.defaults().len(), 4);
    }
}
