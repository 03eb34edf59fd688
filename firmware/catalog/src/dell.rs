//! Dell `Catalog.xml(.gz)` (the DSU/OME/iDRAC repository catalog, UTF-16 LE), streamed.
//!
//! Fields read (Dell's names): `Manifest@baseLocation`, `SoftwareComponent@{releaseID,
//! packageID, path, hashMD5, vendorVersion, dellVersion, releaseDate, rebootRequired, size,
//! packageType}`, `Name/Display`, `ComponentType@value`, `Category@value`, `Criticality@value`
//! (1 Recommended, 2 Urgent, 3 Optional), `Cryptography/Hash@algorithm` (SHA256 when present;
//! else only `hashMD5`, which is weak provenance), `SupportedDevices/Device@componentID`
//! (= Redfish `SoftwareId` on iDRAC) with `PCIInfo@{vendorID,deviceID,subVendorID,subDeviceID}`,
//! and `SupportedSystems/Brand/Model@systemID` with its `Display` (model name).

use std::io::Read;
use std::time::Instant;

use crate::error::{CatalogError, Result};
use crate::input::open_text;
use crate::model::{CatalogEntry, Criticality, PciId, normalize_date, parse_bool, push_unique};
use crate::xml::{XmlEvent, walk};

/// What the `Manifest` root says about the catalog as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DellManifest {
    /// `baseLocation` with a scheme: the prefix of every `path`.
    pub base_url: String,
    /// `version` of the catalog.
    pub version: Option<String>,
    /// `dateTime` of the catalog.
    pub date_time: Option<String>,
    /// Number of `SoftwareComponent`s read.
    pub components: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tag {
    Manifest,
    Component,
    Name,
    Display,
    ComponentType,
    Device,
    Model,
    Hash,
    Other,
}

fn tag(name: &str) -> Tag {
    match name {
        "Manifest" => Tag::Manifest,
        "SoftwareComponent" => Tag::Component,
        "Name" => Tag::Name,
        "Display" => Tag::Display,
        "ComponentType" => Tag::ComponentType,
        "Device" => Tag::Device,
        "Model" => Tag::Model,
        "Hash" => Tag::Hash,
        _ => Tag::Other,
    }
}

fn hex_pci(v: Option<&str>) -> Option<u16> {
    let v = v?.trim();
    u16::from_str_radix(v.trim_start_matches("0x"), 16).ok()
}

/// Parses a whole Dell catalog held in memory (gzip or plain; UTF-16 or UTF-8).
pub fn parse(catalog: &str, bytes: &[u8]) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    parse_reader(catalog, bytes, |e| out.push(e))?;
    Ok(out)
}

/// Streams a Dell catalog from any reader, handing each entry to `sink` as it completes, so a
/// 50 MB catalog never sits in memory as a DOM.
pub fn parse_reader<R: Read>(
    catalog: &str,
    reader: R,
    mut sink: impl FnMut(CatalogEntry),
) -> Result<DellManifest> {
    let text = open_text(reader)?;
    let mut manifest = DellManifest::default();
    let mut stack: Vec<Tag> = Vec::with_capacity(16);
    let mut cur: Option<CatalogEntry> = None;
    let mut display_lang_en = true;
    let mut name_is_en = false;
    let mut hash_algo = String::new();
    let mut saw_manifest = false;
    walk(text, |ev| {
        match ev {
            XmlEvent::Start(name, a) => {
                let t = tag(name);
                match t {
                    Tag::Manifest => {
                        saw_manifest = true;
                        let base = a
                            .get("baseLocation")
                            .unwrap_or("downloads.dell.com")
                            .trim_end_matches('/');
                        manifest.base_url = if base.contains("://") {
                            base.to_string()
                        } else {
                            let proto = a
                                .get("baseLocationAccessProtocols")
                                .and_then(|p| p.split(',').next())
                                .unwrap_or("HTTPS")
                                .to_ascii_lowercase();
                            format!("{proto}://{base}")
                        };
                        manifest.version = a.get("version").map(str::to_string);
                        manifest.date_time = a.get("dateTime").map(str::to_string);
                    }
                    Tag::Component if cur.is_none() => {
                        let path = a.get("path").unwrap_or_default();
                        let id = a
                            .get("releaseID")
                            .or_else(|| a.get("packageID"))
                            .filter(|s| !s.is_empty())
                            .unwrap_or(path);
                        if id.is_empty() {
                            return Err(CatalogError::invalid(
                                "SoftwareComponent",
                                "no releaseID, packageID or path",
                            ));
                        }
                        let mut e = CatalogEntry::new(catalog, id, "Dell");
                        e.version = a.get("vendorVersion").unwrap_or_default().to_string();
                        if !path.is_empty() {
                            e.url = Some(format!(
                                "{}/{}",
                                manifest.base_url,
                                path.trim_start_matches('/')
                            ));
                        }
                        if let Some(h) = a.get("hashMD5") {
                            e.hashes.set("md5", h);
                        }
                        e.release_date = a
                            .get("releaseDate")
                            .map(|d| normalize_date(d).unwrap_or_else(|| d.to_string()));
                        e.reboot = a.get("rebootRequired").and_then(parse_bool);
                        e.size = a.get("size").and_then(|s| s.trim().parse().ok());
                        for key in ["dellVersion", "packageType", "packageID", "path"] {
                            if let Some(v) = a.get(key) {
                                e.extra.insert(key.to_string(), v.to_string());
                            }
                        }
                        name_is_en = false;
                        cur = Some(e);
                    }
                    _ => {}
                }
                if let Some(e) = cur.as_mut() {
                    let parent = stack.last().copied();
                    match (t, name) {
                        (Tag::ComponentType, _) => {
                            e.component_type = a.get("value").unwrap_or_default().to_string();
                        }
                        (_, "Criticality") => {
                            e.criticality = match a.get("value").map(str::trim) {
                                Some("2") => Criticality::Critical,
                                Some("1") => Criticality::Recommended,
                                Some("3") | Some("0") => Criticality::Optional,
                                _ => Criticality::Unknown,
                            };
                        }
                        (_, "Category") => {
                            if let Some(v) = a.get("value") {
                                e.extra.insert("category".into(), v.to_string());
                            }
                        }
                        (Tag::Device, _) => {
                            if let Some(id) = a.get("componentID").filter(|s| !s.is_empty()) {
                                push_unique(&mut e.applies_to.software_ids, id.to_string());
                            }
                        }
                        (_, "PCIInfo") => {
                            if let (Some(vendor), Some(device)) =
                                (hex_pci(a.get("vendorID")), hex_pci(a.get("deviceID")))
                            {
                                let sv = hex_pci(a.get("subVendorID"));
                                let sd = hex_pci(a.get("subDeviceID"));
                                let both = sv.is_some() && sd.is_some();
                                push_unique(
                                    &mut e.applies_to.pci_ids,
                                    PciId {
                                        vendor,
                                        device,
                                        subvendor: if both { sv } else { None },
                                        subdevice: if both { sd } else { None },
                                    },
                                );
                            }
                        }
                        (Tag::Model, _) => {
                            if let Some(id) = a.get("systemID").filter(|s| !s.is_empty()) {
                                push_unique(&mut e.applies_to.system_ids, id.to_ascii_uppercase());
                            }
                        }
                        (Tag::Display, _) => {
                            display_lang_en =
                                a.get("lang").is_none_or(|l| l.eq_ignore_ascii_case("en"));
                            let _ = parent;
                        }
                        (Tag::Hash, _) => {
                            hash_algo.clear();
                            hash_algo.push_str(a.get("algorithm").unwrap_or_default());
                        }
                        _ => {}
                    }
                }
                stack.push(t);
            }
            XmlEvent::Text(text) => {
                if let Some(e) = cur.as_mut() {
                    let n = stack.len();
                    let top = stack.last().copied();
                    let parent = if n >= 2 { Some(stack[n - 2]) } else { None };
                    let grand = if n >= 3 { Some(stack[n - 3]) } else { None };
                    match (top, parent, grand) {
                        (Some(Tag::Display), Some(Tag::Name), Some(Tag::Component))
                            if e.name.is_empty() || (display_lang_en && !name_is_en) =>
                        {
                            e.name = text.to_string();
                            name_is_en = display_lang_en;
                        }
                        (Some(Tag::Display), Some(Tag::Model), _) => {
                            push_unique(&mut e.applies_to.models, text.to_string());
                        }
                        (Some(Tag::Hash), _, _) => {
                            e.hashes.set(&hash_algo, text);
                        }
                        _ => {}
                    }
                }
            }
            XmlEvent::End(_) => {
                if stack.pop() == Some(Tag::Component)
                    && !stack.contains(&Tag::Component)
                    && let Some(e) = cur.take()
                {
                    manifest.components += 1;
                    sink(e);
                }
            }
        }
        Ok(())
    })?;
    if !saw_manifest {
        return Err(CatalogError::invalid(
            "Manifest",
            "root element is not a Dell Manifest",
        ));
    }
    Ok(manifest)
}

/// The result of a parse-throughput run (`metal-automata bench firmware`).
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Size of the UTF-16 catalog parsed.
    pub bytes: u64,
    /// Entries read.
    pub entries: usize,
    /// Wall time of the parse alone.
    pub seconds: f64,
    /// `bytes / seconds` in MB/s (10^6).
    pub mb_per_s: f64,
}

/// Makes a synthetic Dell catalog of about `target_bytes`, UTF-16 LE with BOM, in the real
/// layout (names, systems, devices, PCI ids, hashes), for benchmarks and tests.
pub fn synthetic_catalog(target_bytes: usize) -> Vec<u8> {
    let mut xml = String::with_capacity(target_bytes / 2 + 4096);
    xml.push_str("<?xml version=\"1.0\" encoding=\"utf-16\"?>\r\n<Manifest baseLocation=\"downloads.dell.com\" baseLocationAccessProtocols=\"HTTPS\" dateTime=\"2026-11-20T02:01:27+05:30\" identifier=\"9a5c2d9e\" releaseID=\"XG6JF\" version=\"26.11.00\" predecessorID=\"1c2b\" schemaVersion=\"3.0\" xmlns=\"openmanage/cm/dm\">\r\n");
    let mut i: u64 = 0;
    while xml.len() * 2 < target_bytes {
        let id = format!("{:05X}", i % 0xFFFFF);
        xml.push_str(&format!(
            "  <SoftwareComponent schemaVersion=\"3.0\" packageID=\"{id}\" releaseID=\"R{i}\" hashMD5=\"{md5:032x}\" path=\"FOLDER{i:08}M/1/Firmware_{id}_WN64_{maj}.{min}.{pat}_A00.EXE\" dateTime=\"2026-10-01T10:00:00+05:30\" releaseDate=\"October 01, 2026\" vendorVersion=\"{maj}.{min}.{pat}\" dellVersion=\"A00\" packageType=\"LW64\" rebootRequired=\"true\" size=\"{size}\">\r\n    <Name><Display lang=\"en\"><![CDATA[Dell Synthetic Firmware {i}]]></Display></Name>\r\n    <ComponentType value=\"FRMW\"><Display lang=\"en\"><![CDATA[Firmware]]></Display></ComponentType>\r\n    <Description><Display lang=\"en\"><![CDATA[This release provides firmware for synthetic device {i} with fixes &amp; improvements.]]></Display></Description>\r\n    <LUCategory value=\"Network\"><Display lang=\"en\"><![CDATA[Network]]></Display></LUCategory>\r\n    <Category value=\"NI\"><Display lang=\"en\"><![CDATA[Network]]></Display></Category>\r\n    <SupportedDevices>\r\n      <Device componentID=\"{cid}\" embedded=\"1\"><Display lang=\"en\"><![CDATA[Synthetic NIC {i}]]></Display><PCIInfo deviceID=\"{dev:04X}\" subDeviceID=\"{sd:04X}\" subVendorID=\"1028\" vendorID=\"14E4\" /></Device>\r\n    </SupportedDevices>\r\n    <SupportedSystems>\r\n      <Brand key=\"3\" prefix=\"PE\"><Display lang=\"en\"><![CDATA[PowerEdge]]></Display>\r\n        <Model systemID=\"{s1:04X}\" systemIDType=\"BIOS\"><Display lang=\"en\"><![CDATA[R{m1}]]></Display></Model>\r\n        <Model systemID=\"{s2:04X}\" systemIDType=\"BIOS\"><Display lang=\"en\"><![CDATA[R{m2}]]></Display></Model>\r\n      </Brand>\r\n    </SupportedSystems>\r\n    <ImportantInfo URL=\"https://www.dell.com/support\"><Display lang=\"en\"><![CDATA[NA]]></Display></ImportantInfo>\r\n    <Criticality value=\"{crit}\"><Display lang=\"en\"><![CDATA[Recommended-Dell recommends applying this update.]]></Display></Criticality>\r\n  </SoftwareComponent>\r\n",
            md5 = u128::from(i) * 0x9E37_79B9_7F4A_7C15,
            maj = 1 + i % 30,
            min = i % 17,
            pat = i % 9,
            size = 1_000_000 + i * 7,
            cid = 100_000 + i % 50_000,
            dev = 0x1600 + (i % 0x100),
            sd = i % 0x10000,
            s1 = 0x0A00 + (i % 0x500),
            s2 = 0x0A01 + (i % 0x500),
            m1 = 600 + i % 400,
            m2 = 601 + i % 400,
            crit = 1 + i % 3,
        ));
        i += 1;
    }
    xml.push_str("</Manifest>\r\n");
    let mut out = Vec::with_capacity(xml.len() * 2 + 2);
    out.extend_from_slice(&[0xff, 0xfe]);
    for u in xml.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

/// Generates a synthetic UTF-16 catalog of `target_bytes` and times its streaming parse.
pub fn bench_parse(target_bytes: usize) -> Result<BenchReport> {
    let data = synthetic_catalog(target_bytes);
    let start = Instant::now();
    let mut entries = 0usize;
    parse_reader("bench", data.as_slice(), |_| entries += 1)?;
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Ok(BenchReport {
        bytes: data.len() as u64,
        entries,
        seconds,
        mb_per_s: data.len() as f64 / 1e6 / seconds,
    })
}
