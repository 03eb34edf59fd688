//! AppStream metadata as LVFS publishes it: each cab's `.metainfo.xml` component, its releases
//! completed with where to download the cab, its container checksums and size, and components
//! of the same id merged into one (as fwupd expects one component per id).

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};

use crate::RemoteError;

/// The most one `.metainfo.xml` may be; real ones are a few KiB.
pub const MAX_METAINFO: usize = 1 << 20;

/// The cab a release is downloaded as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CabFile {
    /// The name fwupd downloads (`<sha256>-<name>.cab`), beside the metadata.
    pub location: String,
    /// SHA-1 of the cab (fwupd still checks it on older clients).
    pub sha1: String,
    /// SHA-256 of the cab.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One component read from a metainfo file: its id, everything but the releases, and the
/// releases completed with the cab's download facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The AppStream `<id>`.
    pub id: String,
    /// The opening `<component …>` tag and its children other than `<releases>`.
    head: Vec<u8>,
    /// Each `<release>` element, serialised.
    releases: Vec<Vec<u8>>,
}

fn xml_err(e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Metainfo(e.to_string())
}

/// Where events go while rewriting: the component head, or the release being copied.
struct Sink {
    head: Writer<Vec<u8>>,
    release: Option<Writer<Vec<u8>>>,
}

impl Sink {
    fn write(&mut self, ev: Event<'_>) -> Result<(), RemoteError> {
        match self.release.as_mut() {
            Some(w) => w.write_event(ev),
            None => self.head.write_event(ev),
        }
        .map_err(xml_err)
    }
}

/// Whether a release child is one we replace: `<location>`, `<size type="download">` and
/// container checksums (we publish the cab's own).
fn replaced(e: &BytesStart<'_>) -> bool {
    let attr = |k: &[u8]| {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == k)
            .map(|a| a.value.into_owned())
    };
    match e.name().as_ref() {
        b"location" => true,
        b"size" => attr(b"type").as_deref() == Some(b"download"),
        b"checksum" => attr(b"target").as_deref() == Some(b"container"),
        _ => false,
    }
}

fn text_element(
    w: &mut Writer<Vec<u8>>,
    name: &str,
    attrs: &[(&str, &str)],
    text: &str,
) -> Result<(), RemoteError> {
    let mut start = BytesStart::new(name);
    for (k, v) in attrs {
        start.push_attribute((*k, *v));
    }
    w.write_event(Event::Start(start)).map_err(xml_err)?;
    w.write_event(Event::Text(BytesText::new(text)))
        .map_err(xml_err)?;
    w.write_event(Event::End(BytesEnd::new(name)))
        .map_err(xml_err)
}

/// The download facts LVFS adds to each release.
fn inject(w: &mut Writer<Vec<u8>>, cab: &CabFile) -> Result<(), RemoteError> {
    let file = cab.location.as_str();
    text_element(w, "location", &[], &cab.location)?;
    for (alg, hex) in [("sha1", &cab.sha1), ("sha256", &cab.sha256)] {
        text_element(
            w,
            "checksum",
            &[("type", alg), ("filename", file), ("target", "container")],
            hex,
        )?;
    }
    text_element(w, "size", &[("type", "download")], &cab.size.to_string())
}

impl Component {
    /// Reads a `.metainfo.xml` (`<component type="firmware">` root) and completes its releases
    /// with `cab`'s download facts.
    pub fn from_metainfo(metainfo: &[u8], cab: &CabFile) -> Result<Self, RemoteError> {
        if metainfo.len() > MAX_METAINFO {
            return Err(RemoteError::Metainfo(format!(
                "{} bytes, more than the {MAX_METAINFO} a metainfo file may be",
                metainfo.len()
            )));
        }
        let mut reader = Reader::from_reader(metainfo);
        reader.config_mut().check_end_names = true;
        let mut sink = Sink {
            head: Writer::new(Vec::new()),
            release: None,
        };
        let mut id = String::new();
        let mut depth = 0usize;
        let mut in_releases = false;
        let mut in_id = false;
        let mut skip_depth: Option<usize> = None;
        let mut releases = Vec::new();
        let mut saw_root = false;
        let mut buf = Vec::new();
        loop {
            let ev = reader.read_event_into(&mut buf).map_err(xml_err)?;
            match ev {
                Event::Eof => break,
                Event::Decl(_) | Event::DocType(_) | Event::PI(_) => {}
                Event::Start(e) => {
                    depth += 1;
                    if skip_depth.is_some() {
                    } else if depth == 1 {
                        if e.name().as_ref() != b"component" {
                            return Err(RemoteError::Metainfo(format!(
                                "root element <{}>, not <component>",
                                String::from_utf8_lossy(e.name().as_ref())
                            )));
                        }
                        saw_root = true;
                        sink.write(Event::Start(e.into_owned()))?;
                    } else if depth == 2 && e.name().as_ref() == b"releases" {
                        in_releases = true;
                    } else if in_releases && depth == 3 && e.name().as_ref() == b"release" {
                        let mut w = Writer::new(Vec::new());
                        w.write_event(Event::Start(e.into_owned()))
                            .map_err(xml_err)?;
                        inject(&mut w, cab)?;
                        sink.release = Some(w);
                    } else if in_releases && (depth == 3 || (depth == 4 && replaced(&e))) {
                        // Not a release, or a download fact we publish ourselves.
                        skip_depth = Some(depth);
                    } else {
                        in_id = depth == 2 && e.name().as_ref() == b"id";
                        sink.write(Event::Start(e.into_owned()))?;
                    }
                }
                Event::End(e) => {
                    let closing = depth;
                    depth = depth.saturating_sub(1);
                    if let Some(d) = skip_depth {
                        if closing == d {
                            skip_depth = None;
                        }
                        continue;
                    }
                    in_id = false;
                    if closing == 1 {
                        // The root's end is written when components are merged.
                    } else if closing == 2 && in_releases && e.name().as_ref() == b"releases" {
                        in_releases = false;
                    } else if closing == 3 && sink.release.is_some() {
                        let mut w = sink
                            .release
                            .take()
                            .unwrap_or_else(|| Writer::new(Vec::new()));
                        w.write_event(Event::End(e.into_owned())).map_err(xml_err)?;
                        releases.push(w.into_inner());
                    } else {
                        sink.write(Event::End(e.into_owned()))?;
                    }
                }
                Event::Empty(e) => {
                    if skip_depth.is_some() || (in_releases && depth == 3 && replaced(&e)) {
                        continue;
                    }
                    if in_releases && depth == 2 && e.name().as_ref() == b"release" {
                        let mut w = Writer::new(Vec::new());
                        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                        w.write_event(Event::Start(e.into_owned()))
                            .map_err(xml_err)?;
                        inject(&mut w, cab)?;
                        w.write_event(Event::End(BytesEnd::new(name)))
                            .map_err(xml_err)?;
                        releases.push(w.into_inner());
                    } else if depth == 1 && e.name().as_ref() == b"releases" {
                    } else if depth >= 1 {
                        sink.write(Event::Empty(e.into_owned()))?;
                    }
                }
                Event::Text(t) => {
                    if skip_depth.is_some() || depth == 0 || (in_releases && sink.release.is_none())
                    {
                        continue;
                    }
                    if in_id {
                        id.push_str(&t.decode().map_err(xml_err)?);
                    }
                    sink.write(Event::Text(t.into_owned()))?;
                }
                Event::GeneralRef(r) => {
                    let known = r.is_char_ref()
                        || matches!(&*r, b"amp" | b"lt" | b"gt" | b"apos" | b"quot");
                    if !known {
                        return Err(RemoteError::Metainfo(format!(
                            "undefined entity &{};",
                            String::from_utf8_lossy(r.as_ref())
                        )));
                    }
                    if skip_depth.is_none()
                        && depth >= 1
                        && !(in_releases && sink.release.is_none())
                    {
                        sink.write(Event::GeneralRef(r.into_owned()))?;
                    }
                }
                other => {
                    if skip_depth.is_none()
                        && depth >= 1
                        && !(in_releases && sink.release.is_none())
                    {
                        sink.write(other.into_owned())?;
                    }
                }
            }
            buf.clear();
        }
        if !saw_root {
            return Err(RemoteError::Metainfo("no <component> element".into()));
        }
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(RemoteError::Metainfo("the component has no <id>".into()));
        }
        if releases.is_empty() {
            return Err(RemoteError::Metainfo(format!(
                "component {id} has no <release>"
            )));
        }
        Ok(Component {
            id,
            head: sink.head.into_inner(),
            releases,
        })
    }
}

/// The whole `metadata.xml`: components merged by id (the first one's description wins, the
/// releases of all are kept), in id order so the same store gives the same bytes.
pub fn metadata_xml(origin: &str, components: Vec<Component>) -> Vec<u8> {
    let mut merged: BTreeMap<String, Component> = BTreeMap::new();
    for c in components {
        match merged.get_mut(&c.id) {
            Some(first) => {
                for r in c.releases {
                    if !first.releases.contains(&r) {
                        first.releases.push(r);
                    }
                }
            }
            None => {
                merged.insert(c.id.clone(), c);
            }
        }
    }
    let origin = quick_xml::escape::escape(origin);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<components origin=\"{origin}\" version=\"0.9\">\n"
    )
    .into_bytes();
    for c in merged.into_values() {
        out.extend_from_slice(&c.head);
        out.extend_from_slice(b"<releases>");
        for r in &c.releases {
            out.extend_from_slice(r);
        }
        out.extend_from_slice(b"</releases></component>\n");
    }
    out.extend_from_slice(b"</components>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<component type="firmware">
  <id>org.fwupd.fakedevice.firmware</id>
  <name>FakeDevice</name>
  <provides><firmware type="flashed">b585990a-003e-5270-89d5-3705a17f9a43</firmware></provides>
  <releases>
    <release version="1.2.4" date="2024-01-21" urgency="medium">
      <location>https://elsewhere.example/x.cab</location>
      <checksum type="sha1" filename="fakedevice124.bin" target="content">c2ef</checksum>
      <checksum type="sha1" filename="old.cab" target="container">dead</checksum>
      <description><p>Fixes &amp; more.</p></description>
    </release>
  </releases>
</component>"#;

    fn cab(n: u8) -> CabFile {
        CabFile {
            location: format!("{n:064x}-fakedevice.cab"),
            sha1: "11".repeat(20),
            sha256: format!("{n:064x}"),
            size: 1163,
        }
    }

    #[test]
    fn a_release_gets_the_cab_facts_and_loses_foreign_ones() {
        let c = Component::from_metainfo(META.as_bytes(), &cab(1)).expect("reads");
        assert_eq!(c.id, "org.fwupd.fakedevice.firmware");
        let xml = String::from_utf8(metadata_xml("metal-automata", vec![c])).expect("utf8");
        assert!(xml.contains("<location>0000"), "{xml}");
        assert!(xml.contains(r#"target="container">1111"#), "{xml}");
        assert!(
            xml.contains(r#"<size type="download">1163</size>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"target="content">c2ef</checksum>"#), "{xml}");
        assert!(xml.contains("Fixes &amp; more."), "{xml}");
        assert!(!xml.contains("elsewhere.example"), "{xml}");
        assert!(!xml.contains("dead"), "{xml}");
        assert!(xml.contains("<provides>"), "{xml}");
        assert_eq!(xml.matches("<component").count(), 2, "{xml}"); // <components> + one
    }

    #[test]
    fn two_cabs_of_one_component_merge_their_releases() {
        let a = Component::from_metainfo(META.as_bytes(), &cab(1)).expect("a");
        let b = Component::from_metainfo(META.replace("1.2.4", "1.2.3").as_bytes(), &cab(2))
            .expect("b");
        let xml = String::from_utf8(metadata_xml("o", vec![a, b])).expect("utf8");
        assert_eq!(xml.matches("<component type").count(), 1, "{xml}");
        assert_eq!(xml.matches("<release ").count(), 2, "{xml}");
    }

    #[test]
    fn hostile_metainfo_is_an_error() {
        for bad in [
            "",
            "<application><id>x</id></application>",
            "<component><id>x</id></component>",
            "<component><releases><release version='1'/></releases></component>",
            "<component><id>x</id><releases><release></component>",
            "<!DOCTYPE x [<!ENTITY a 'aaaa'>]><component><id>&a;</id></component>",
        ] {
            assert!(
                Component::from_metainfo(bad.as_bytes(), &cab(1)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_self_closed_release_is_completed() {
        let m = "<component><id>x</id><releases><release version='1'/></releases></component>";
        let c = Component::from_metainfo(m.as_bytes(), &cab(3)).expect("reads");
        let xml = String::from_utf8(metadata_xml("o", vec![c])).expect("utf8");
        assert!(xml.contains("<release version='1'><location>"), "{xml}");
    }
}
