//! A small streaming XML walker over quick-xml shared by the Dell, LVFS and Lenovo parsers:
//! local names, unescaped attributes and text, DTD entity rejection, truncation detection.

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{CatalogError, Result};
use crate::input::map_read_error;

/// The attributes of one start tag, unescaped, by local name.
#[derive(Debug, Default)]
pub struct Attrs {
    items: Vec<(String, String)>,
}

impl Attrs {
    /// The value of an attribute by local name (case-sensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of an attribute by local name, ignoring ASCII case (tolerant parsers).
    pub fn get_ci(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All attributes.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One event of the walk.
#[derive(Debug)]
pub enum XmlEvent<'a> {
    /// An element opens (empty elements give Start then End).
    Start(&'a str, &'a Attrs),
    /// The text of the element just before the next tag, trimmed, entities resolved; never empty.
    Text(&'a str),
    /// An element closes.
    End(&'a str),
}

fn xml_err<R>(reader: &Reader<R>, e: quick_xml::Error) -> CatalogError {
    let e = match e {
        // Our own reader stack wraps named errors in io errors; unwrap them.
        quick_xml::Error::Io(arc) => {
            return match std::sync::Arc::try_unwrap(arc) {
                Ok(io) => map_read_error(io),
                Err(arc) => map_read_error(std::io::Error::new(arc.kind(), arc.to_string())),
            };
        }
        other => other,
    };
    CatalogError::Xml {
        position: reader.error_position(),
        detail: e.to_string(),
    }
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn resolve_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// Walks a UTF-8 XML stream, calling `f` for each element start, text and end.
/// Rejects DTDs that declare entities, unknown entity references, malformed and truncated XML.
pub fn walk<R: BufRead>(input: R, mut f: impl FnMut(XmlEvent<'_>) -> Result<()>) -> Result<()> {
    let mut reader = Reader::from_reader(input);
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = true;
    cfg.check_end_names = true;
    let mut buf = Vec::with_capacity(4096);
    let mut text = String::new();
    let mut attrs = Attrs::default();
    let mut name = String::new();
    let mut depth: usize = 0;
    let mut seen_root = false;
    // Before the root: ignore stray text; it cannot hold data.
    let flush = |text: &mut String, f: &mut dyn FnMut(XmlEvent<'_>) -> Result<()>| -> Result<()> {
        let t = text.trim();
        if !t.is_empty() {
            f(XmlEvent::Text(t))?;
        }
        text.clear();
        Ok(())
    };
    loop {
        buf.clear();
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_err(&reader, e))?;
        match ev {
            Event::Start(e) => {
                flush(&mut text, &mut f)?;
                if seen_root && depth == 0 {
                    return Err(CatalogError::Xml {
                        position: reader.buffer_position(),
                        detail: "content after the root element".into(),
                    });
                }
                seen_root = true;
                depth += 1;
                name.clear();
                name.push_str(
                    std::str::from_utf8(local(e.name().as_ref()))
                        .map_err(|e| CatalogError::Encoding(e.to_string()))?,
                );
                attrs.items.clear();
                for a in e.attributes() {
                    let a = a.map_err(|e| CatalogError::Xml {
                        position: reader.buffer_position(),
                        detail: e.to_string(),
                    })?;
                    let k = std::str::from_utf8(local(a.key.as_ref()))
                        .map_err(|e| CatalogError::Encoding(e.to_string()))?
                        .to_string();
                    let v = a
                        .unescape_value()
                        .map_err(|e| xml_err(&reader, e))?
                        .into_owned();
                    attrs.items.push((k, v));
                }
                f(XmlEvent::Start(&name, &attrs))?;
            }
            Event::End(e) => {
                flush(&mut text, &mut f)?;
                depth = depth.saturating_sub(1);
                let qname = e.name();
                let n = std::str::from_utf8(local(qname.as_ref()))
                    .map_err(|e| CatalogError::Encoding(e.to_string()))?;
                f(XmlEvent::End(n))?;
            }
            Event::Text(t) => {
                if depth > 0 {
                    text.push_str(
                        &t.decode()
                            .map_err(|e| CatalogError::Encoding(e.to_string()))?,
                    );
                }
            }
            Event::CData(t) => {
                if depth > 0 {
                    text.push_str(
                        &t.decode()
                            .map_err(|e| CatalogError::Encoding(e.to_string()))?,
                    );
                }
            }
            Event::GeneralRef(r) => {
                let n = r
                    .decode()
                    .map_err(|e| CatalogError::Encoding(e.to_string()))?;
                match resolve_entity(&n) {
                    Some(c) => {
                        if depth > 0 {
                            text.push(c);
                        }
                    }
                    None => {
                        return Err(CatalogError::Xml {
                            position: reader.buffer_position(),
                            detail: format!("unknown entity &{n};"),
                        });
                    }
                }
            }
            Event::DocType(d) => {
                let body = String::from_utf8_lossy(d.as_ref()).to_ascii_uppercase();
                if body.contains("<!ENTITY") || body.contains("SYSTEM") || body.contains("PUBLIC") {
                    return Err(CatalogError::XmlEntityDeclaration);
                }
            }
            Event::Eof => {
                if depth > 0 {
                    return Err(CatalogError::Truncated(format!(
                        "{depth} element(s) still open at end of input"
                    )));
                }
                if !seen_root {
                    return Err(CatalogError::Truncated("no root element".into()));
                }
                return Ok(());
            }
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
}
