//! Redfish → hardware log entries: every `LogService` under the BMC's Managers, Systems and
//! Chassis (SEL, manager and event logs, and the vendors' own: HPE `IML`/`IEL`, Dell
//! `Sel`/`Lclog`, Lenovo `PlatformLog`/`AuditLog`), read page by page and mapped to
//! [`HardwareLogEntry`], with a [`LogCursor`] per log so each entry is published once.
//!
//! # Dedup rules
//! - An entry is marked by its `Id`, `Created` and fingerprint (the cursor's `newest`); the
//!   fingerprint is
//!   SHA-256 over `Id`, `Created`, `Severity`, `MessageId` and `Message`; the cursor's `seen`
//!   holds the last [`LogOptions::seen`] of them.
//! - A fingerprint already in `seen` is never emitted again: this drops an entry a BMC returns
//!   twice (across pages, or on two polls) and keeps a reused id with new content new.
//! - Newest-first logs are read until the cursor's entry, an entry older than it (by
//!   `Created`) or an entry seen in an earlier poll; the pages after it are not read.
//! - Oldest-first logs are read whole (Redfish has no reverse paging); what follows the
//!   cursor's entry is new. If that entry is gone and the log was cleared (fewer entries than
//!   last time, a newest id below the cursor's, or a newest `Created` before it), the cursor is
//!   reset and every entry not in `seen` is new; otherwise (a wrapped log) entries created
//!   after the cursor's are new.
//! - The order is detected from the first page (`Created`, else numeric `Id`) and remembered;
//!   undetected, a log is read as oldest-first (slower, never wrong).
//! - A first poll, or a reset one, takes at most [`LogOptions::max_entries`] newest entries.
//!
//! # Paging
//! `Members@odata.nextLink` is followed (as in [`RedfishClient::members`]); a bare top-level
//! `@odata.nextLink` is not (DMTF's own mockups carry one that points nowhere).
//!
//! # Sensor and component ids
//! `Links.OriginOfCondition` (or a top-level `OriginOfCondition`) is mapped by its URI:
//! `/Chassis/<c>/Sensors/<s>` → sensor `redfish.<c>.<s>`; `/Chassis/<c>/Thermal#/Fans/<i>` and
//! `#/Temperatures/<i>` → sensor `redfish.<c>.thermal.fan.<i>` / `….temperature.<i>` (telemetry
//! keys legacy arrays by `MemberId`, which BMCs set to the index); `Power#/Voltages/<i>` →
//! `redfish.<c>.power.voltage.<i>`. Components take [`inventory`](super::inventory)'s ids
//! where the URI alone gives them: `Processors/<p>` → `cpu:<p>`, `Memory/<m>` → `dimm:<m>`,
//! `EthernetInterfaces/<e>` → `nic:<e>`, `NetworkAdapters/<n>` → `nic-adapter:<n>`,
//! `PCIeDevices/<p>` → `pci:<p>`, `Storage/<s>/Controllers/<c>` → `storage:<s>/<c>`,
//! `PowerSupplies/<p>` → `psu:<c>/<p>`, `/Chassis/<c>` (and its `Thermal`, `Power`) →
//! `chassis:<c>`, `/Managers/<m>` → `bmc:<m>`. Other URIs (drives, keyed by serial in the
//! inventory; fans of a `ThermalSubsystem`) are kept as the URI itself, as telemetry does; the
//! ComputerSystem itself is the server, not a component. `SensorNumber` alone (an IPMI number)
//! names no Redfish sensor and is not mapped.

use std::collections::{HashMap, HashSet, VecDeque};

use automata_schemas::types::{HardwareLogEntry, LogSeverity};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::inventory::text;
use super::{RedfishClient, SERVICE_ROOT, odata_id};
use crate::BmcError;

/// The `source` of every entry read here.
pub const SOURCE: &str = "redfish";

/// How much to read and remember per log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Most entries taken from one log in one poll (the newest ones).
    pub max_entries: usize,
    /// Most pages read from one log in one poll.
    pub max_pages: usize,
    /// Fingerprints remembered per log to drop exact repeats.
    pub seen: usize,
    /// Skip diagnostic-data logs (crash dumps, whose entries are attachments, not events).
    pub skip_diagnostic: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_entries: 1000,
            max_pages: 1000,
            seen: 1024,
            skip_diagnostic: true,
        }
    }
}

/// The order a log lists its entries in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogOrder {
    /// Oldest entry first (append order).
    OldestFirst,
    /// Newest entry first (Dell, many SELs).
    NewestFirst,
}

/// One entry's position mark: its id, `Created` (ms since the epoch, when given) and
/// fingerprint (a reused id with other content is another entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// The entry's `Id`.
    pub id: String,
    /// Its `Created`, when the BMC gave one.
    pub created: Option<i64>,
    /// Its [`fingerprint`].
    pub fingerprint: u64,
}

/// Where reading one log got to, kept by the caller between polls (and across restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// The newest entry emitted so far.
    pub newest: Option<Mark>,
    /// Fingerprints of recently seen entries, oldest first.
    pub seen: VecDeque<u64>,
    /// How many entries the log held at the last poll.
    pub count: Option<u64>,
    /// The order detected for this log.
    pub order: Option<LogOrder>,
    /// Times the log was found cleared (or its cursor lost) and the cursor reset.
    pub resets: u64,
}

impl LogCursor {
    fn remember(&mut self, fp: u64, cap: usize) {
        self.seen.push_back(fp);
        while self.seen.len() > cap.max(1) {
            self.seen.pop_front();
        }
    }
}

/// A log service found on the BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogServiceInfo {
    /// The LogService's `@odata.id`.
    pub uri: String,
    /// Its `Entries` collection.
    pub entries: String,
    /// Its `Id` (`SEL`, `Sel`, `Lclog`, `IML`, `IEL`, `Log1`, …).
    pub id: String,
    /// `LogEntryType` when given (`SEL`, `Event`, `Multiple`, `OEM`).
    pub entry_type: Option<String>,
    /// The log id used in [`HardwareLogEntry::log_id`]: `redfish:<uri>`.
    pub log_id: String,
}

/// The outcome of one poll: new entries (oldest first per log) and what could not be read.
#[derive(Debug, Default)]
pub struct LogPoll {
    /// New entries.
    pub entries: Vec<HardwareLogEntry>,
    /// Logs or entries that failed, one line each.
    pub errors: Vec<String>,
}

/// Every log service of the BMC's Systems, Managers and Chassis, each once.
pub async fn discover(
    client: &RedfishClient,
    opts: &LogOptions,
) -> Result<(Vec<LogServiceInfo>, Vec<String>), BmcError> {
    let root = client.get(SERVICE_ROOT).await?;
    let mut errors = Vec::new();
    let mut collections = Vec::new();
    for key in ["Systems", "Managers", "Chassis"] {
        let Some(uri) = root.get(key).and_then(odata_id) else {
            continue;
        };
        match client.members(&uri).await {
            Ok(ms) => collections.extend(
                ms.iter()
                    .filter_map(|m| m.get("LogServices").and_then(odata_id)),
            ),
            Err(e) => errors.push(format!("{key}: {e}")),
        }
    }
    let mut done = HashSet::new();
    let mut out = Vec::new();
    for c in collections {
        if !done.insert(c.clone()) {
            continue;
        }
        match client.members(&c).await {
            Ok(services) => {
                for s in &services {
                    if let Some(info) = service_info(s)
                        && !(opts.skip_diagnostic && is_diagnostic(s))
                        && !out.iter().any(|o: &LogServiceInfo| o.uri == info.uri)
                    {
                        out.push(info);
                    }
                }
            }
            Err(e) => errors.push(format!("LogServices {c}: {e}")),
        }
    }
    Ok((out, errors))
}

/// A LogService resource as a log to poll (`None` without an id or entries, or disabled).
pub fn service_info(v: &Value) -> Option<LogServiceInfo> {
    let uri = odata_id(v)?;
    if v.get("ServiceEnabled").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let entries = v
        .get("Entries")
        .and_then(odata_id)
        .unwrap_or_else(|| format!("{}/Entries", uri.trim_end_matches('/')));
    let id = text(v, "Id").unwrap_or_else(|| last_segment(&uri).to_string());
    Some(LogServiceInfo {
        log_id: format!("redfish:{uri}"),
        entry_type: text(v, "LogEntryType"),
        uri,
        entries,
        id,
    })
}

fn is_diagnostic(v: &Value) -> bool {
    let id = text(v, "Id").unwrap_or_default().to_ascii_lowercase();
    v.get("DiagnosticDataType").is_some_and(|d| !d.is_null())
        || id.contains("diagnostic")
        || id.contains("dump")
        || id.contains("crash")
}

fn last_segment(uri: &str) -> &str {
    uri.trim_end_matches('/').rsplit('/').next().unwrap_or(uri)
}

/// Discovers the BMC's logs and polls each; see [`poll_services`].
pub async fn poll_logs(
    client: &RedfishClient,
    server_id: &str,
    cursors: &mut HashMap<String, LogCursor>,
) -> Result<LogPoll, BmcError> {
    poll_logs_with(client, server_id, cursors, &LogOptions::default()).await
}

/// [`poll_logs`] with explicit limits.
pub async fn poll_logs_with(
    client: &RedfishClient,
    server_id: &str,
    cursors: &mut HashMap<String, LogCursor>,
    opts: &LogOptions,
) -> Result<LogPoll, BmcError> {
    let (services, errors) = discover(client, opts).await?;
    let mut poll = poll_services(client, server_id, &services, cursors, opts).await;
    poll.errors.splice(0..0, errors);
    Ok(poll)
}

/// Polls known logs (discovery cached by the caller): new entries only, cursors moved on.
/// Cursors are keyed by log id (`redfish:<LogService uri>`).
pub async fn poll_services(
    client: &RedfishClient,
    server_id: &str,
    services: &[LogServiceInfo],
    cursors: &mut HashMap<String, LogCursor>,
    opts: &LogOptions,
) -> LogPoll {
    let mut poll = LogPoll::default();
    for s in services {
        let cursor = cursors.entry(s.log_id.clone()).or_default();
        match poll_one(client, server_id, s, cursor, opts).await {
            Ok((entries, errors)) => {
                poll.entries.extend(entries);
                poll.errors.extend(errors);
            }
            Err(e) => poll.errors.push(format!("log {}: {e}", s.uri)),
        }
    }
    poll
}

/// A raw entry read from a log, with what dedup needs.
struct Raw {
    value: Value,
    mark: Option<Mark>,
    fp: u64,
}

fn raw(value: Value) -> Raw {
    let mark = raw_mark(&value);
    let fp = fingerprint(&value);
    Raw { value, mark, fp }
}

/// A stable fingerprint of an entry's identity and content (survives restarts and upgrades).
pub fn fingerprint(v: &Value) -> u64 {
    let mut h = Sha256::new();
    for k in ["Id", "Created", "Severity", "MessageId", "Message"] {
        h.update(k.as_bytes());
        h.update([0]);
        match v.get(k) {
            Some(Value::String(s)) => h.update(s.as_bytes()),
            Some(x) => h.update(x.to_string().as_bytes()),
            None => {}
        }
        h.update([0xff]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// An RFC 3339 time as ms since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

fn numeric_id(m: &Mark) -> Option<u64> {
    m.id.parse().ok()
}

/// The order of a page of entries, when its ends tell it.
pub fn detect_order(entries: &[Value]) -> Option<LogOrder> {
    let marks: Vec<Mark> = entries.iter().filter_map(raw_mark).collect();
    let (first, last) = (marks.first()?, marks.last()?);
    let by = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) if a < b => Some(LogOrder::OldestFirst),
        (Some(a), Some(b)) if a > b => Some(LogOrder::NewestFirst),
        _ => None,
    };
    let to_i = |m: &Mark| numeric_id(m).and_then(|n| i64::try_from(n).ok());
    by(first.created, last.created).or_else(|| by(to_i(first), to_i(last)))
}

fn raw_mark(v: &Value) -> Option<Mark> {
    Some(Mark {
        id: text(v, "Id")?,
        created: v
            .get("Created")
            .and_then(Value::as_str)
            .and_then(parse_time),
        fingerprint: fingerprint(v),
    })
}

/// Reads one page of an entries collection: its members and the next page's link.
async fn page(
    client: &RedfishClient,
    uri: &str,
) -> Result<(Vec<Value>, Option<String>, Option<u64>), BmcError> {
    let mut v = client.get(uri).await?;
    let members = match v.get_mut("Members") {
        Some(Value::Array(a)) => std::mem::take(a),
        Some(_) => {
            return Err(BmcError::Malformed {
                url: uri.to_string(),
                reason: "Members is not an array".into(),
            });
        }
        None => Vec::new(),
    };
    let next = v
        .get("Members@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_string);
    let count = v.get("Members@odata.count").and_then(Value::as_u64);
    Ok((members, next, count))
}

/// Resolves a member given as a bare link.
async fn resolve(client: &RedfishClient, m: Value) -> Result<Value, BmcError> {
    let bare = m.as_object().is_some_and(|o| o.len() <= 1);
    match (bare, odata_id(&m)) {
        (true, Some(id)) => client.get(&id).await,
        _ => Ok(m),
    }
}

/// One log: the new entries, mapped, oldest first; errors for entries that could not be.
async fn poll_one(
    client: &RedfishClient,
    server_id: &str,
    s: &LogServiceInfo,
    cursor: &mut LogCursor,
    opts: &LogOptions,
) -> Result<(Vec<HardwareLogEntry>, Vec<String>), BmcError> {
    let (first, mut next, count) = page(client, &s.entries).await?;
    let order = detect_order(&first)
        .or(cursor.order)
        .unwrap_or(LogOrder::OldestFirst);
    cursor.order = Some(order);
    let seen: HashSet<u64> = cursor.seen.iter().copied().collect();
    let mut errors = Vec::new();
    let mut read: Vec<Raw> = Vec::new();
    let mut pages = 1;
    let mut members = first;
    let mut stopped = false;
    let mut capped = false;
    'pages: loop {
        for m in members {
            let v = match resolve(client, m).await {
                Ok(v) => v,
                Err(e) => {
                    errors.push(format!("log {}: entry: {e}", s.uri));
                    continue;
                }
            };
            let r = raw(v);
            if order == LogOrder::NewestFirst && reached(cursor, &seen, &r) {
                stopped = true;
                break 'pages;
            }
            read.push(r);
            if order == LogOrder::NewestFirst && read.len() >= opts.max_entries {
                capped = true;
                break 'pages;
            }
        }
        match next.take() {
            Some(link) if pages < opts.max_pages => {
                let (ms, n, _) = page(client, &link).await?;
                members = ms;
                next = n;
                pages += 1;
            }
            _ => break,
        }
    }
    if order == LogOrder::NewestFirst {
        read.reverse();
    }
    // Without Members@odata.count, a log read whole is counted by hand.
    let count = count.or((order == LogOrder::OldestFirst).then_some(read.len() as u64));
    let fresh = select_new(cursor, &seen, read, count, order, stopped || capped, opts);
    cursor.count = count.or(cursor.count);
    let observed = chrono::Utc::now().timestamp_millis();
    let mut out = Vec::new();
    let mut emitted = HashSet::new();
    for r in fresh {
        if seen.contains(&r.fp) || !emitted.insert(r.fp) {
            continue;
        }
        cursor.remember(r.fp, opts.seen);
        if let Some(m) = &r.mark {
            cursor.newest = Some(m.clone());
        }
        match map_entry(&r.value, server_id, &s.log_id, observed) {
            Ok(e) => out.push(e),
            Err(why) => errors.push(format!("log {}: {why}", s.uri)),
        }
    }
    Ok((out, errors))
}

/// Newest-first reading stops here: the cursor's entry, one older than it, or one seen before.
fn reached(cursor: &LogCursor, seen: &HashSet<u64>, r: &Raw) -> bool {
    let Some(mark) = &cursor.newest else {
        return false;
    };
    if seen.contains(&r.fp) || r.mark.as_ref() == Some(mark) {
        return true;
    }
    matches!(
        (r.mark.as_ref().and_then(|m| m.created), mark.created),
        (Some(a), Some(b)) if a < b
    )
}

/// Which of the entries read (oldest first) are new, by the rules in the module docs.
fn select_new(
    cursor: &mut LogCursor,
    seen: &HashSet<u64>,
    read: Vec<Raw>,
    count: Option<u64>,
    order: LogOrder,
    stopped: bool,
    opts: &LogOptions,
) -> Vec<Raw> {
    let keep_newest = |mut v: Vec<Raw>| {
        let n = v.len();
        if n > opts.max_entries {
            v.drain(..n - opts.max_entries);
        }
        v
    };
    let Some(mark) = cursor.newest.clone() else {
        return keep_newest(read);
    };
    if read.is_empty() && !stopped {
        // The log is empty (cleared): its next entry starts it again.
        cursor.newest = None;
        cursor.resets += 1;
        return read;
    }
    if order == LogOrder::NewestFirst {
        // Everything read lies above the cursor; a log read to its end without finding the
        // cursor was cleared (or wrapped past it): the cursor starts again.
        if !stopped {
            cursor.resets += 1;
        }
        return keep_newest(read);
    }
    if let Some(pos) = read.iter().rposition(|r| r.mark.as_ref() == Some(&mark)) {
        return keep_newest(read.into_iter().skip(pos + 1).collect());
    }
    let newest = read.last().and_then(|r| r.mark.clone());
    let shrank = matches!((count, cursor.count), (Some(c), Some(p)) if c < p);
    let ids_restarted = matches!(
        (newest.as_ref().and_then(numeric_id), numeric_id(&mark)),
        (Some(a), Some(b)) if a < b
    );
    let time_back = matches!(
        (newest.as_ref().and_then(|m| m.created), mark.created),
        (Some(a), Some(b)) if a < b
    );
    if shrank || ids_restarted || time_back {
        cursor.resets += 1;
        return keep_newest(read.into_iter().filter(|r| !seen.contains(&r.fp)).collect());
    }
    // A wrapped log: the cursor's entry fell off the front; what is newer than it is new.
    let after = |r: &Raw| match (r.mark.as_ref(), mark.created) {
        (
            Some(Mark {
                created: Some(c), ..
            }),
            Some(m),
        ) => *c >= m,
        (Some(m2), _) => match (numeric_id(m2), numeric_id(&mark)) {
            (Some(a), Some(b)) => a > b,
            _ => true,
        },
        _ => true,
    };
    keep_newest(read.into_iter().filter(after).collect())
}

/// A Redfish severity (`Severity`, `MessageSeverity`: OK, Warning, Critical) as ours.
pub fn severity(s: &str) -> LogSeverity {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" | "fatal" | "error" => LogSeverity::Critical,
        "warning" | "warn" | "caution" => LogSeverity::Warning,
        _ => LogSeverity::Info,
    }
}

fn opt_str<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!("{key} is not a string: {}", short(other))),
    }
}

fn short(v: &Value) -> String {
    v.to_string().chars().take(60).collect()
}

/// The message of an entry: `Message`, else `MessageId(args…)`, else its `Name`.
fn message_of(v: &Value) -> Result<String, String> {
    if let Some(m) = opt_str(v, "Message")?.filter(|m| !m.trim().is_empty()) {
        return Ok(m.trim().to_string());
    }
    let args: Vec<String> = match v.get("MessageArgs") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    if let Some(id) = opt_str(v, "MessageId")? {
        return Ok(if args.is_empty() {
            id.to_string()
        } else {
            format!("{id}({})", args.join(", "))
        });
    }
    Ok(opt_str(v, "Name")?.unwrap_or_default().to_string())
}

/// Maps a LogEntry (or an Event record) to a [`HardwareLogEntry`]; an entry whose properties
/// have the wrong types is an error, not a guess.
pub fn map_entry(
    v: &Value,
    server_id: &str,
    log_id: &str,
    observed_at: i64,
) -> Result<HardwareLogEntry, String> {
    if !v.is_object() {
        return Err(format!("entry is not an object: {}", short(v)));
    }
    let entry_id = match opt_str(v, "Id")? {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => odata_id(v)
            .map(|u| last_segment(&u).to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("entry without an Id: {}", short(v)))?,
    };
    let what = |e: String| format!("entry {entry_id}: {e}");
    let created = opt_str(v, "Created")
        .map_err(what)?
        .and_then(parse_time)
        .unwrap_or(observed_at);
    let sev = match opt_str(v, "Severity").map_err(what)? {
        Some(s) => severity(s),
        None => opt_str(v, "MessageSeverity")
            .map_err(what)?
            .map(severity)
            .unwrap_or_default(),
    };
    let message = message_of(v).map_err(what)?;
    let message_id = opt_str(v, "MessageId").map_err(what)?.map(str::to_string);
    let origin = v
        .pointer("/Links/OriginOfCondition")
        .or_else(|| v.get("OriginOfCondition"))
        .and_then(odata_id);
    let (sensor_id, component_id) = origin.as_deref().map(origin_ids).unwrap_or_default();
    Ok(HardwareLogEntry {
        server_id: server_id.to_string(),
        log_id: log_id.to_string(),
        entry_id,
        created,
        observed_at,
        severity: sev,
        message,
        message_id,
        component_id,
        sensor_id,
        source: SOURCE.into(),
    })
}

/// The sensor and component an `OriginOfCondition` URI names (rules in the module docs).
pub fn origin_ids(uri: &str) -> (Option<String>, Option<String>) {
    let (path, frag) = match uri.split_once('#') {
        Some((p, f)) => (p, Some(f.trim_start_matches('/'))),
        None => (uri, None),
    };
    let segs: Vec<&str> = path
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let rest = match segs.as_slice() {
        ["redfish", "v1", rest @ ..] => rest,
        _ => return (None, Some(uri.to_string())),
    };
    let frag: Vec<&str> = frag
        .map(|f| f.split('/').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let own = |s: &str| (None, Some(s.to_string()));
    match (rest, frag.as_slice()) {
        (["Chassis", c, "Sensors", s], _) => (Some(format!("redfish.{c}.{s}")), None),
        (["Chassis", c, "Thermal"], ["Fans", i, ..]) => {
            (Some(format!("redfish.{c}.thermal.fan.{i}")), None)
        }
        (["Chassis", c, "Thermal"], ["Temperatures", i, ..]) => {
            (Some(format!("redfish.{c}.thermal.temperature.{i}")), None)
        }
        (["Chassis", c, "Power"], ["Voltages", i, ..]) => {
            (Some(format!("redfish.{c}.power.voltage.{i}")), None)
        }
        (["Chassis", _, "Power"], ["PowerSupplies", ..]) => own(uri),
        (["Chassis", c] | ["Chassis", c, "Thermal" | "Power"], _) => own(&format!("chassis:{c}")),
        (["Chassis", c, "PowerSubsystem", "PowerSupplies", p], _) => own(&format!("psu:{c}/{p}")),
        (["Managers", m], _) => own(&format!("bmc:{m}")),
        (["Systems", _], _) => (None, None),
        (["Systems", _, "Processors", p], _) => own(&format!("cpu:{p}")),
        (["Systems", _, "Memory", m], _) => own(&format!("dimm:{m}")),
        (["Systems", _, "EthernetInterfaces", e], _) => own(&format!("nic:{e}")),
        (["Systems" | "Chassis", _, "Storage", s, "Controllers", c], _) => {
            own(&format!("storage:{s}/{c}"))
        }
        (["Chassis", _, "NetworkAdapters", n], _) => own(&format!("nic-adapter:{n}")),
        (["Systems" | "Chassis", _, "PCIeDevices", p], _) => own(&format!("pci:{p}")),
        _ => own(uri),
    }
}
