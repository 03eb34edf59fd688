//! DMTF Redfish mockups, read from disk (or the small built-in one) into a resource tree.
//!
//! A mockup is a directory tree whose `index.json` files are the resources at the matching
//! URIs under `/redfish/v1`. Loading strips the `@Redfish.Copyright` annotations (allowed only
//! in mockups, as DMTF's own mockup server does) and repairs the few data errors the public
//! mockups carry, so that a simulated BMC is a fair stand-in for a conforming service.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::SimError;

/// The service root every resource path starts with.
pub const ROOT: &str = "/redfish/v1";

/// One mockup: its resources by URI (no trailing slash), plus `$metadata` and plain files.
#[derive(Debug)]
pub struct Mockup {
    /// The mockup's name (its directory name).
    pub name: String,
    /// Resources by URI, e.g. `/redfish/v1/Systems/1`.
    pub resources: BTreeMap<String, Value>,
    /// The CSDL `$metadata` document, when the mockup has one.
    pub metadata: Option<String>,
    /// Files served as they are (registries shipped as `.json` files), by URI.
    pub files: BTreeMap<String, Arc<Vec<u8>>>,
}

/// The mockup compiled into the binary, so that `simulate` works with no mockup directory: a
/// trimmed copy of DMTF's `public-rackmount1` (BSD-3-Clause, see `builtin/LICENSE-DMTF.md`).
const BUILTIN: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/builtin_files.rs"));

impl Mockup {
    /// Reads the mockup in `dir` (a directory holding `index.json` at its top).
    pub fn load(dir: &Path) -> Result<Self, SimError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mockup".into());
        if !dir.join("index.json").is_file() {
            return Err(SimError::Mockup {
                path: dir.to_path_buf(),
                message: "no index.json at its top: not a Redfish mockup".into(),
            });
        }
        let mut m = Mockup {
            name,
            resources: BTreeMap::new(),
            metadata: None,
            files: BTreeMap::new(),
        };
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| io_err(&d, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&d, e))?;
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                let rel = rel.to_string_lossy().replace('\\', "/");
                let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
                m.add_file(&rel, bytes)
                    .map_err(|message| SimError::Mockup { path, message })?;
            }
        }
        m.finish();
        Ok(m)
    }

    /// The built-in mockup.
    pub fn builtin() -> Self {
        let mut m = Mockup {
            name: "builtin-rackmount".into(),
            resources: BTreeMap::new(),
            metadata: None,
            files: BTreeMap::new(),
        };
        for (rel, text) in BUILTIN {
            // The built-in files are checked by a unit test; a bad one is skipped, not fatal.
            if let Err(e) = m.add_file(rel, text.as_bytes().to_vec()) {
                tracing::warn!(file = rel, error = %e, "built-in mockup file skipped");
            }
        }
        m.finish();
        m
    }

    /// Every mockup under `dir`: `dir` itself when it is one, else each subdirectory that is.
    pub fn load_all(dir: &Path) -> Result<Vec<Self>, SimError> {
        if dir.join("index.json").is_file() {
            return Ok(vec![Self::load(dir)?]);
        }
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("index.json").is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(SimError::Mockup {
                path: dir.to_path_buf(),
                message: "holds no Redfish mockup (no index.json in it or its subdirectories)"
                    .into(),
            });
        }
        dirs.iter().map(|d| Self::load(d)).collect()
    }

    fn add_file(&mut self, rel: &str, bytes: Vec<u8>) -> Result<(), String> {
        let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
        let uri = if dir.is_empty() {
            ROOT.to_string()
        } else {
            format!("{ROOT}/{dir}")
        };
        match file {
            "index.json" => {
                let mut v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| format!("not JSON: {e}"))?;
                strip_copyright(&mut v);
                self.resources.insert(uri, v);
            }
            "index.xml" if dir == "$metadata" => {
                self.metadata = Some(String::from_utf8_lossy(&bytes).into_owned());
            }
            f if f.ends_with(".json") && !f.starts_with("explorer_config") => {
                let key = if dir.is_empty() {
                    format!("{ROOT}/{f}")
                } else {
                    format!("{uri}/{f}")
                };
                let mut v: Value = match serde_json::from_slice(&bytes) {
                    Ok(v) => v,
                    Err(_) => return Ok(()),
                };
                strip_copyright(&mut v);
                let body = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
                self.files.insert(key, Arc::new(body));
            }
            _ => {}
        }
        Ok(())
    }

    /// Repairs, once all resources are in.
    fn finish(&mut self) {
        // The sample sessions are not sessions anyone opened: a BMC starts with none.
        let sessions = format!("{ROOT}/SessionService/Sessions/");
        self.resources.retain(|u, _| !u.starts_with(&sessions));
        let known: HashSet<String> = self
            .resources
            .keys()
            .chain(self.files.keys())
            .cloned()
            .collect();
        for (uri, v) in self.resources.iter_mut() {
            repair(uri, v, &known);
        }
    }

    /// URIs of resources whose `@odata.type` is of `kind` (for example `ComputerSystem`).
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.resources
            .iter()
            .filter(move |(_, v)| type_name(v) == Some(kind))
            .map(|(k, _)| k.as_str())
    }
}

/// The bare type name of a resource: `#ComputerSystem.v1_20_0.ComputerSystem` → `ComputerSystem`.
pub fn type_name(v: &Value) -> Option<&str> {
    let t = v.get("@odata.type")?.as_str()?;
    t.rsplit('.').next()
}

fn io_err(path: &Path, e: std::io::Error) -> SimError {
    SimError::Mockup {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn strip_copyright(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("@Redfish.Copyright");
            m.values_mut().for_each(strip_copyright);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_copyright),
        _ => {}
    }
}

/// Fixes data errors of the public mockups that a real service would not have, found by
/// running DMTF's Redfish Service Validator against them: links to resources the mockup does
/// not contain, `Id` and `@odata.id` that disagree with the URI, action targets that are not
/// `<resource>/Actions/<action>`, date-times without seconds or offset, member `@odata.id`s
/// that point into another resource, and required properties left out (`RoleId`,
/// `SubscriptionType`, `Name`).
fn repair(uri: &str, v: &mut Value, known: &HashSet<String>) {
    fix_tree(uri, v, known, &mut Vec::new());
    let Value::Object(m) = v else { return };
    let ns = m
        .get("@odata.type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix('#'))
        .and_then(|t| t.split('.').next())
        .unwrap_or("")
        .to_string();
    if ns.is_empty() {
        return;
    }
    if uri != ROOT {
        m.insert("@odata.id".into(), Value::String(uri.to_string()));
    }
    if !ns.ends_with("Collection") && ns != "ServiceRoot" {
        let id = uri.rsplit('/').next().unwrap_or_default().to_string();
        m.insert("Id".into(), Value::String(id.clone()));
        m.entry("Name").or_insert(Value::String(id.clone()));
        if ns == "Role" {
            m.insert("RoleId".into(), Value::String(id));
        }
        if ns == "EventDestination" {
            m.entry("SubscriptionType")
                .or_insert(Value::String("RedfishEvent".into()));
        }
    }
    fix_dates(m);
}

/// Whether `uri` names something this mockup serves (URIs outside the service are not ours
/// to judge).
fn resolves(uri: &str, known: &HashSet<String>) -> bool {
    if !uri.starts_with(ROOT) || uri.contains('#') {
        return true;
    }
    let u = uri.trim_end_matches('/');
    u == ROOT || u == "/redfish/v1/$metadata" || known.contains(u)
}

fn dangling(v: &Value, known: &HashSet<String>) -> bool {
    v.get("@odata.id")
        .and_then(Value::as_str)
        .is_some_and(|id| id.starts_with('/') && !resolves(id, known))
}

fn fix_tree(uri: &str, v: &mut Value, known: &HashSet<String>, path: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            m.retain(|k, x| {
                let dangling_source =
                    k == "DataSourceUri" && x.as_str().is_some_and(|s| !resolves(s, known));
                !(dangling(x, known) || dangling_source)
            });
            for (k, x) in m.iter_mut() {
                if let Value::Array(a) = x {
                    a.retain(|e| !dangling(e, known));
                }
                if k == "@odata.id"
                    && !path.is_empty()
                    && let Value::String(s) = x
                    && let Some((_, frag)) = s.split_once('#')
                {
                    *s = format!("{}#{frag}", uri.trim_end_matches('/'));
                }
                if let Value::String(s) = x
                    && let Some(fixed) = complete_date(s)
                {
                    *s = fixed;
                }
                path.push(k.clone());
                fix_tree(uri, x, known, path);
                path.pop();
            }
            let counts: Vec<(String, usize)> = m
                .iter()
                .filter_map(|(k, _)| {
                    let base = k.strip_suffix("@odata.count")?;
                    Some((k.clone(), m.get(base)?.as_array()?.len()))
                })
                .collect();
            for (k, n) in counts {
                m.insert(k, Value::from(n));
            }
            if path.first().map(String::as_str) == Some("Actions") {
                let prefix = format!("{}/{}", uri.trim_end_matches('/'), path.join("/"));
                for (k, x) in m.iter_mut() {
                    if let Some(action) = k.strip_prefix('#')
                        && let Some(t) = x.get_mut("target")
                    {
                        *t = Value::String(format!("{prefix}/{action}"));
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                path.push("[]".into());
                fix_tree(uri, x, known, path);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `2012-03-07T14:44+06:00` → `2012-03-07T14:44:00+06:00`; `2017-12-06T12:00:00` →
/// `2017-12-06T12:00:00Z`: seconds and an offset are required in Redfish date-times.
fn complete_date(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let shape = b.len() >= 16
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16);
    if !shape {
        return None;
    }
    let mut rest = &s[16..];
    let mut out = s[..16].to_string();
    match rest.strip_prefix(':') {
        Some(r) if r.len() >= 2 && r.as_bytes()[..2].iter().all(u8::is_ascii_digit) => {
            out.push_str(&rest[..3]);
            rest = &r[2..];
        }
        Some(_) => return None,
        None => out.push_str(":00"),
    }
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        out.push_str(&rest[..=n]);
        rest = &r[n..];
    }
    let zone_ok = rest == "Z"
        || (rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && rest.as_bytes()[3] == b':');
    match rest {
        "" => out.push('Z'),
        _ if zone_ok => out.push_str(rest),
        _ => return None,
    }
    (out != s).then_some(out)
}

/// Date-times such as `2016-03-07T14:44.30-05:00` (no seconds field) fail the Edm.DateTimeOffset
/// pattern: normalise them to RFC 3339 when they can be read, recursively.
fn fix_dates(m: &mut Map<String, Value>) {
    for (k, v) in m.iter_mut() {
        match v {
            Value::String(s) if is_date_key(k) => {
                if chrono::DateTime::parse_from_rfc3339(s).is_err()
                    && let Some(fixed) = reparse_date(s)
                {
                    *s = fixed;
                }
            }
            Value::Object(inner) => fix_dates(inner),
            Value::Array(a) => {
                for item in a {
                    if let Value::Object(inner) = item {
                        fix_dates(inner);
                    }
                }
            }
            _ => {}
        }
    }
}

fn is_date_key(k: &str) -> bool {
    k == "Time"
        || k.ends_with("Time")
        || k.ends_with("Date")
        || k == "Created"
        || k == "Modified"
        || k == "DateTime"
        || k.ends_with("Timestamp")
}

fn reparse_date(s: &str) -> Option<String> {
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M.%S%:z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%:z",
    ];
    FORMATS
        .iter()
        .find_map(|f| chrono::DateTime::parse_from_str(s, f).ok())
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_mockup_is_whole() {
        let m = Mockup::builtin();
        let sample_sessions = BUILTIN
            .iter()
            .filter(|(p, _)| {
                p.starts_with("SessionService/Sessions/")
                    && p.ends_with("/index.json")
                    && *p != "SessionService/Sessions/index.json"
            })
            .count();
        assert_eq!(
            m.resources.len() + sample_sessions,
            BUILTIN
                .iter()
                .filter(|(p, _)| p.ends_with("index.json"))
                .count()
        );
        assert!(m.resources.contains_key(ROOT));
        assert_eq!(m.of_type("ComputerSystem").count(), 1);
        assert!(m.metadata.is_some());
        let text = serde_json::to_string(&m.resources).unwrap_or_default();
        assert!(!text.contains("@Redfish.Copyright"));
    }

    #[test]
    fn dates_get_seconds_and_an_offset() {
        assert_eq!(
            complete_date("2012-03-07T14:44+06:00").as_deref(),
            Some("2012-03-07T14:44:00+06:00")
        );
        assert_eq!(
            complete_date("2017-12-06T12:00:00").as_deref(),
            Some("2017-12-06T12:00:00Z")
        );
        assert_eq!(complete_date("2017-12-06T12:00:00.5Z"), None);
        assert_eq!(complete_date("P79 v1.45"), None);
    }

    #[test]
    fn links_to_missing_resources_go_and_actions_point_home() {
        let known: HashSet<String> = ["/redfish/v1/Chassis/1".to_string()].into();
        let mut v = serde_json::json!({
            "@odata.type": "#Chassis.v1_0_0.Chassis",
            "Id": "wrong",
            "Sensors": [{"@odata.id": "/redfish/v1/Chassis/1"}, {"@odata.id": "/redfish/v1/Chassis/1/Sensors/Gone"}],
            "Sensors@odata.count": 2,
            "Actions": {"#Chassis.Reset": {"target": "/redfish/v1/Chassis/1/Chassis.Reset"}},
        });
        repair("/redfish/v1/Chassis/1", &mut v, &known);
        assert_eq!(v["Sensors@odata.count"], 1);
        assert_eq!(v["Id"], "1");
        assert_eq!(
            v["Actions"]["#Chassis.Reset"]["target"],
            "/redfish/v1/Chassis/1/Actions/Chassis.Reset"
        );
    }

    #[test]
    fn dates_without_seconds_are_repaired() {
        assert_eq!(
            reparse_date("2016-03-07T14:44.30-05:00").as_deref(),
            Some("2016-03-07T14:44:30-05:00")
        );
    }
}
