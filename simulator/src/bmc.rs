//! One simulated BMC: its resource tree (the mockup plus what changed), power, sensors, log,
//! sessions, tasks, firmware and BIOS, and the faults it suffers.
//!
//! Everything here is plain state behind one mutex per BMC; `http` turns requests into calls
//! on it and replies into responses. The fleet's ticker advances each BMC once a second.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::FleetShared;
use crate::events::{EventHub, SSE_URI};
use crate::faults::{FaultKind, FaultSpec, GroundTruth};
use crate::identity::{Identity, mix, unit};
use crate::mockup::{Mockup, ROOT, type_name};
use crate::registry::{self, AttributeRegistry};
use crate::sensors::{self, Binding, Effects, Model, SensorKind};

/// What every BMC built from one mockup shares: the tree and where things are in it.
#[derive(Debug)]
pub struct Layout {
    /// The mockup.
    pub mockup: Arc<Mockup>,
    bindings: Vec<Binding>,
    by_uri: HashMap<String, Vec<usize>>,
    /// Bindings whose threshold crossings go to the log (one per physical sensor).
    logged: Vec<usize>,
    fans: usize,
    systems: Vec<String>,
    managers: Vec<String>,
    chassis: Vec<String>,
    /// The log service the BMC appends to, and its entries collection.
    log: Option<(String, String)>,
    firmware: Vec<String>,
    bios: Option<(String, String)>,
    registry: Option<AttributeRegistry>,
    memory: Vec<String>,
    drives: Vec<String>,
    psus: Vec<String>,
}

const SESSIONS: &str = "/redfish/v1/SessionService/Sessions";
const TASKS: &str = "/redfish/v1/TaskService/Tasks";
const TASK_MONITORS: &str = "/redfish/v1/TaskService/TaskMonitors";
const REGISTRIES: &str = "/redfish/v1/Registries";
/// Where multipart firmware pushes go (`UpdateService.MultipartHttpPushUri`).
pub const MULTIPART_PUSH: &str = "/redfish/v1/UpdateService/upload";
/// The most log entries kept: the log wraps, like a real SEL.
const LOG_CAPACITY: usize = 1000;

impl Layout {
    /// Finds what the simulator drives in `mockup`.
    pub fn new(mockup: Arc<Mockup>) -> Self {
        let bindings = sensors::bind(&mockup);
        let mut by_uri: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, b) in bindings.iter().enumerate() {
            by_uri.entry(b.uri.clone()).or_default().push(i);
        }
        let has_sensor_resources = bindings.iter().any(|b| b.uri.contains("/Sensors/"));
        let logged = bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.upper.0.is_some() || b.upper.1.is_some())
            .filter(|(_, b)| !has_sensor_resources || b.uri.contains("/Sensors/"))
            .map(|(i, _)| i)
            .collect();
        let fans = bindings
            .iter()
            .filter_map(|b| b.fan)
            .max()
            .map_or(0, |m| m + 1);
        let uris = |t: &str| mockup.of_type(t).map(str::to_string).collect::<Vec<_>>();
        let systems = uris("ComputerSystem");
        let log = pick_log(&mockup, &systems);
        let bios = systems.iter().find_map(|s| {
            let b = format!("{s}/Bios");
            let v = mockup.resources.get(&b)?;
            let settings = v
                .pointer("/@Redfish.Settings/SettingsObject/@odata.id")
                .and_then(Value::as_str)
                .unwrap_or(&format!("{b}/Settings"))
                .to_string();
            Some((b, settings))
        });
        let registry = bios.as_ref().and_then(|(b, _)| {
            let v = mockup.resources.get(b)?;
            Some(registry::from_bios(v))
        });
        Layout {
            bindings,
            by_uri,
            logged,
            fans,
            managers: uris("Manager"),
            chassis: uris("Chassis"),
            firmware: uris("SoftwareInventory")
                .into_iter()
                .filter(|u| u.contains("/FirmwareInventory/"))
                .collect(),
            memory: uris("Memory"),
            drives: drives(&mockup),
            psus: uris("PowerSupply"),
            systems,
            log,
            bios,
            registry,
            mockup,
        }
    }
}

/// Disks a fault can hit: Drive resources, and the devices of SimpleStorage resources
/// (`<uri>#/Devices/<n>`) on BMCs that only have those.
fn drives(m: &Mockup) -> Vec<String> {
    let mut out: Vec<String> = m.of_type("Drive").map(str::to_string).collect();
    for uri in m.of_type("SimpleStorage") {
        let n = m.resources[uri]
            .get("Devices")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        out.extend((0..n).map(|i| format!("{uri}#/Devices/{i}")));
    }
    out
}

fn pick_log(m: &Mockup, systems: &[String]) -> Option<(String, String)> {
    let services: Vec<&str> = m.of_type("LogService").collect();
    let score = |u: &str| {
        let v = &m.resources[u];
        let sel =
            v.get("LogEntryType").and_then(Value::as_str) == Some("SEL") || u.ends_with("/SEL");
        (
            sel,
            systems.iter().any(|s| u.starts_with(s.as_str())),
            v.get("Entries").is_some(),
        )
    };
    let best = services.into_iter().max_by_key(|u| score(u))?;
    let entries = m.resources[best]
        .pointer("/Entries/@odata.id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{best}/Entries"));
    Some((best.to_string(), entries))
}

/// A reply to a request, free of any HTTP framework.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn no_content() -> Self {
        Reply {
            status: 204,
            headers: Vec::new(),
            body: None,
        }
    }

    /// A Redfish error: `{"error": {"code", "message", "@Message.ExtendedInfo"}}`.
    pub fn error(status: u16, message_id: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Reply::json(
            status,
            json!({"error": {
                "code": format!("Base.1.15.{message_id}"),
                "message": message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_2.Message",
                    "MessageId": format!("Base.1.15.{message_id}"),
                    "Message": message,
                    "Severity": if status >= 500 { "Critical" } else { "Warning" },
                    "Resolution": "See the message.",
                }]
            }}),
        )
    }

    fn with_header(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.headers.push((k, v.into()));
        self
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    user: String,
    last_used: Instant,
}

#[derive(Debug, Clone, PartialEq)]
enum TaskPhase {
    /// Fetching the image (SimpleUpdate).
    Downloading,
    /// Flashing: from this instant.
    Flashing(Instant),
    Done,
}

#[derive(Debug, Clone)]
struct Task {
    id: String,
    target: String,
    version: Option<String>,
    phase: TaskPhase,
    state: &'static str,
    percent: u8,
    start: String,
    end: Option<String>,
    messages: Vec<Value>,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    truth: u64,
    kind: FaultKind,
    component: String,
    /// The fan or PSU number, for those faults.
    slot: Option<usize>,
    until: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Transition {
    on: bool,
    at: Instant,
    /// A restart: power comes back on this long after it went off.
    then_on: Option<Duration>,
}

/// The mutable state of one BMC.
#[derive(Debug)]
struct State {
    overlay: HashMap<String, Value>,
    removed: HashSet<String>,
    on: bool,
    transition: Option<Transition>,
    model: Model,
    effects: Effects,
    readings: Vec<f64>,
    levels: Vec<u8>,
    faults: Vec<ActiveFault>,
    sessions: HashMap<String, Session>,
    tasks: BTreeMap<u64, Task>,
    next_task: u64,
    log: VecDeque<Value>,
    next_log: u64,
    bios_pending: Map<String, Value>,
    staged: HashMap<String, String>,
    dimm_storm: Option<(String, u32)>,
    requests: u64,
}

/// One simulated BMC.
#[derive(Debug)]
pub struct Bmc {
    /// Its index in the fleet.
    pub index: usize,
    /// Its name, `sim-0001`…
    pub name: String,
    /// Its server's identity.
    pub identity: Identity,
    layout: Arc<Layout>,
    state: Mutex<State>,
    fleet: Arc<FleetShared>,
    /// Every new log entry as an SSE event (kept apart from the state: streams never lock it).
    events: EventHub,
    /// List log entries newest first, as some BMCs (Dell) do.
    log_newest_first: AtomicBool,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Bmc {
    /// BMC `index` of the fleet, built on `layout`.
    pub fn new(index: usize, layout: Arc<Layout>, fleet: Arc<FleetShared>) -> Self {
        let seed = fleet.config.seed;
        let identity = Identity::new(&layout.mockup, seed, index);
        let mut removed = HashSet::new();
        // The mockup's sample sessions are not real sessions: start with none.
        for uri in layout.mockup.resources.keys() {
            if uri.starts_with(SESSIONS) && uri.len() > SESSIONS.len() {
                removed.insert(uri.clone());
            }
        }
        let mut log = VecDeque::new();
        let mut next_log = 1;
        if let Some((_, entries)) = &layout.log {
            for (uri, v) in layout.mockup.resources.range(format!("{entries}/")..) {
                if !uri.starts_with(&format!("{entries}/")) {
                    break;
                }
                if uri[entries.len() + 1..].contains('/') {
                    continue;
                }
                if let Ok(n) = v
                    .get("Id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .parse::<u64>()
                {
                    next_log = next_log.max(n + 1);
                }
                log.push_back(v.clone());
            }
        }
        let n = layout.bindings.len();
        Bmc {
            index,
            name: format!("sim-{:04}", index + 1),
            identity,
            state: Mutex::new(State {
                overlay: HashMap::new(),
                removed,
                on: true,
                transition: None,
                model: Model::new(seed, index),
                effects: Effects::default(),
                readings: layout.bindings.iter().map(|b| b.baseline).collect(),
                levels: vec![0; n],
                faults: Vec::new(),
                sessions: HashMap::new(),
                tasks: BTreeMap::new(),
                next_task: 1,
                log,
                next_log,
                bios_pending: Map::new(),
                staged: HashMap::new(),
                dimm_storm: None,
                requests: 0,
            }),
            layout,
            fleet,
            events: EventHub::default(),
            log_newest_first: AtomicBool::new(false),
        }
    }

    /// The event fan-out behind `EventService/SSE`.
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// Lists log entries newest first (as Dell's iDRAC does) or oldest first (the default).
    pub fn set_log_newest_first(&self, newest_first: bool) {
        self.log_newest_first.store(newest_first, Ordering::Relaxed);
    }

    /// Whether the fleet is stopping (long-lived responses end then).
    pub fn stopping(&self) -> tokio_util::sync::CancellationToken {
        self.fleet.stop.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a simulator bug; the state is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// The resources that carry readings: what a sensor sweep reads.
    pub fn sensor_uris(&self) -> Vec<String> {
        let mut v: Vec<String> = self.layout.by_uri.keys().cloned().collect();
        v.sort();
        v
    }

    /// The mockup this BMC is built from.
    pub fn mockup_name(&self) -> &str {
        &self.layout.mockup.name
    }

    // ---- authentication -------------------------------------------------------------------

    /// Whether a session token is valid (and marks it used).
    pub fn check_token(&self, token: &str) -> bool {
        let timeout = self.session_timeout();
        let mut st = self.lock();
        st.requests += 1;
        match st.sessions.get_mut(token) {
            Some(s) if s.last_used.elapsed() < timeout => {
                s.last_used = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// The fleet's collection page size (0: no paging).
    pub fn page_size(&self) -> usize {
        self.fleet.config.page_size
    }

    /// Whether basic-auth credentials are the fleet's.
    pub fn credentials_ok(&self, user: &str, pass: &str) -> bool {
        self.fleet.config.credentials.check(user, pass)
    }

    /// The CSDL `$metadata` document of the mockup.
    pub fn metadata(&self) -> Option<String> {
        self.layout.mockup.metadata.clone()
    }

    /// Counts a request that needs no session lookup.
    pub fn count_request(&self) {
        self.lock().requests += 1;
    }

    fn session_timeout(&self) -> Duration {
        let secs = self
            .layout
            .mockup
            .resources
            .get("/redfish/v1/SessionService")
            .and_then(|v| v.get("SessionTimeout"))
            .and_then(Value::as_u64)
            .unwrap_or(1800);
        Duration::from_secs(secs.max(30))
    }

    /// `POST SessionService/Sessions`: a session for valid credentials.
    pub fn create_session(&self, body: &Value) -> Reply {
        let user = body.get("UserName").and_then(Value::as_str).unwrap_or("");
        let pass = body.get("Password").and_then(Value::as_str).unwrap_or("");
        if !self.fleet.config.credentials.check(user, pass) {
            return Reply::error(401, "NoValidSession", "Invalid user name or password.");
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        let id = token[..16].to_string();
        let mut st = self.lock();
        st.sessions.insert(
            token.clone(),
            Session {
                id: id.clone(),
                user: user.to_string(),
                last_used: Instant::now(),
            },
        );
        let uri = format!("{SESSIONS}/{id}");
        Reply::json(201, session_json(&uri, &id, user))
            .with_header("X-Auth-Token", token)
            .with_header("Location", uri)
    }

    /// `DELETE` of a session (logout); nothing else can be deleted.
    pub fn delete(&self, uri: &str) -> Reply {
        let Some(id) = uri.strip_prefix(&format!("{SESSIONS}/")) else {
            return Reply::error(405, "OperationNotAllowed", "DELETE is not allowed here.");
        };
        let mut st = self.lock();
        let before = st.sessions.len();
        st.sessions.retain(|_, s| s.id != id);
        if st.sessions.len() == before {
            return Reply::error(
                404,
                "ResourceMissingAtURI",
                format!("{uri} does not exist."),
            );
        }
        Reply::no_content()
    }

    // ---- reading --------------------------------------------------------------------------

    /// The resource at `uri` as this BMC shows it now.
    pub fn get(&self, uri: &str) -> Option<Value> {
        let st = self.lock();
        self.render(&st, uri)
    }

    /// A file resource (a registry shipped as a file), if `uri` names one.
    pub fn file(&self, uri: &str) -> Option<Arc<Vec<u8>>> {
        self.layout.mockup.files.get(uri).cloned()
    }

    fn base<'a>(&'a self, st: &'a State, uri: &str) -> Option<&'a Value> {
        if st.removed.contains(uri) {
            return None;
        }
        st.overlay
            .get(uri)
            .or_else(|| self.layout.mockup.resources.get(uri))
    }

    fn render(&self, st: &State, uri: &str) -> Option<Value> {
        let l = &self.layout;
        let mut v = match self.base(st, uri) {
            Some(v) => v.clone(),
            None => self.generated(st, uri)?,
        };
        self.identity.apply(&mut v);
        if let Some(idx) = l.by_uri.get(uri) {
            for &i in idx {
                let b = &l.bindings[i];
                let r = sensors::round(b.kind, st.readings[i]);
                if let Some(slot) = v.pointer_mut(&b.pointer) {
                    *slot = number(r);
                }
                if let Some(status) = v.pointer_mut(&format!("{}/Status", b.holder))
                    && status.get("State").and_then(Value::as_str) == Some("Enabled")
                {
                    let failed_fan = b.fan.is_some_and(|f| st.effects.failed_fans.contains(&f));
                    let lost_psu = b.psu.is_some_and(|p| st.effects.lost_psus.contains(&p));
                    let health = if failed_fan || lost_psu {
                        "Critical"
                    } else {
                        ["OK", "Warning", "Critical"][usize::from(st.levels[i].min(2))]
                    };
                    status["Health"] = json!(health);
                }
            }
        }
        if let Some((bios, settings)) = &l.bios
            && uri == settings
        {
            // The settings object shows the attributes as they will be after the next reset.
            let mut attrs = self
                .base(st, bios)
                .and_then(|b| b.get("Attributes"))
                .cloned()
                .unwrap_or_else(|| json!({}));
            for (k, val) in &st.bios_pending {
                attrs[k] = val.clone();
            }
            v["Attributes"] = attrs;
        }
        if let Some((service, _)) = &l.log
            && uri == service
        {
            // The simulator writes IPMI-style SEL entries there.
            v["LogEntryType"] = json!("SEL");
            if v.get("DateTime").is_some() {
                v["DateTime"] = json!(now_rfc3339());
            }
        }
        match type_name(&v) {
            Some("ComputerSystem") => {
                v["PowerState"] = json!(power_state(st));
                if st.faults.iter().any(|f| f.kind == FaultKind::DimmErrors)
                    && let Some(s) = v.get_mut("Status")
                {
                    s["Health"] = json!(if st.dimm_storm.is_none() {
                        "Critical"
                    } else {
                        "Warning"
                    });
                }
            }
            Some("Chassis") if v.get("PowerState").is_some() => {
                v["PowerState"] = json!(power_state(st));
            }
            Some("Manager") if v.get("DateTime").is_some() => {
                v["DateTime"] = json!(now_rfc3339());
            }
            Some("UpdateService") => {
                v["MultipartHttpPushUri"] = json!(MULTIPART_PUSH);
            }
            Some("EventService") => {
                v["ServerSentEventUri"] = json!(SSE_URI);
            }
            _ => {}
        }
        if uri == SESSIONS {
            let mut members: Vec<Value> = st
                .sessions
                .values()
                .map(|s| json!({"@odata.id": format!("{SESSIONS}/{}", s.id)}))
                .collect();
            members.sort_by_key(|m| m.to_string());
            set_members(&mut v, members);
        } else if uri == TASKS {
            let mut members = v
                .get("Members")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            members.extend(
                st.tasks
                    .values()
                    .map(|t| json!({"@odata.id": format!("{TASKS}/{}", t.id)})),
            );
            set_members(&mut v, members);
        } else if let Some((_, entries)) = &l.log
            && uri == entries
        {
            // Log entry collections are auto-expanded: members are the entries themselves.
            let mut members: Vec<Value> = st.log.iter().cloned().collect();
            if self.log_newest_first.load(Ordering::Relaxed) {
                members.reverse();
            }
            set_members(&mut v, members);
        } else if uri == REGISTRIES
            && let Some(r) = &l.registry
        {
            let mut members = v
                .get("Members")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            members.push(json!({"@odata.id": format!("{REGISTRIES}/{}", r.id)}));
            set_members(&mut v, members);
        }
        Some(v)
    }

    /// Resources the simulator makes rather than the mockup: sessions, tasks, log entries,
    /// the BIOS attribute registry.
    fn generated(&self, st: &State, uri: &str) -> Option<Value> {
        let l = &self.layout;
        if let Some(id) = uri.strip_prefix(&format!("{SESSIONS}/")) {
            let s = st.sessions.values().find(|s| s.id == id)?;
            return Some(session_json(uri, &s.id, &s.user));
        }
        if let Some(id) = uri.strip_prefix(&format!("{TASKS}/")) {
            let t = st.tasks.values().find(|t| t.id == id)?;
            return Some(task_json(t));
        }
        if let Some((_, entries)) = &l.log
            && let Some(id) = uri.strip_prefix(&format!("{entries}/"))
        {
            return st
                .log
                .iter()
                .find(|e| e.get("Id").and_then(Value::as_str) == Some(id))
                .cloned();
        }
        if let Some(r) = &l.registry {
            let file = format!("{REGISTRIES}/{}", r.id);
            if uri == file {
                return Some(r.file_json(&file));
            }
            if uri == format!("{file}/Registry") {
                return Some(r.registry.clone());
            }
        }
        if let Some((_, settings)) = &l.bios
            && uri == settings
        {
            return Some(json!({
                "@odata.id": settings,
                "@odata.type": "#Bios.v1_2_3.Bios",
                "Id": "Settings",
                "Name": "BIOS Pending Settings",
                "Attributes": {},
            }));
        }
        None
    }

    /// A task monitor: 202 while the task runs, the task when it ended.
    pub fn task_monitor(&self, id: &str) -> Reply {
        let st = self.lock();
        match st.tasks.values().find(|t| t.id == id) {
            None => Reply::error(404, "ResourceMissingAtURI", "No such task monitor."),
            Some(t) if t.phase != TaskPhase::Done => Reply::json(202, task_json(t))
                .with_header("Location", format!("{TASK_MONITORS}/{id}"))
                .with_header("Retry-After", "1"),
            Some(t) => Reply::json(200, task_json(t)),
        }
    }

    // ---- changing -------------------------------------------------------------------------

    fn edit(&self, st: &mut State, uri: &str, f: impl FnOnce(&mut Value)) {
        let base = match st.overlay.get(uri) {
            Some(_) => None,
            None => self.layout.mockup.resources.get(uri).cloned(),
        };
        if let Some(b) = base {
            st.overlay.insert(uri.to_string(), b);
        }
        if let Some(v) = st.overlay.get_mut(uri) {
            f(v);
        }
    }

    /// `PATCH`: the writable properties of systems, chassis, BIOS settings and accounts.
    pub fn patch(&self, uri: &str, body: &Value) -> Reply {
        let Some(patch) = body.as_object() else {
            return Reply::error(400, "MalformedJSON", "The body must be a JSON object.");
        };
        let l = &self.layout;
        if let Some((_, settings)) = &l.bios
            && uri == settings
        {
            return self.patch_bios(patch);
        }
        let mut st = self.lock();
        let Some(current) = self.base(&st, uri).cloned() else {
            return Reply::error(
                404,
                "ResourceMissingAtURI",
                format!("{uri} does not exist."),
            );
        };
        let writable: &[&str] = match type_name(&current) {
            Some("ComputerSystem") => &[
                "AssetTag",
                "Boot",
                "IndicatorLED",
                "LocationIndicatorActive",
                "HostName",
            ],
            Some("Chassis") => &["AssetTag", "IndicatorLED", "LocationIndicatorActive"],
            Some("ManagerAccount") => &["Password", "Enabled", "Locked", "RoleId"],
            Some("Manager") => &["DateTime", "DateTimeLocalOffset"],
            _ => &[],
        };
        if let Some(bad) = patch.keys().find(|k| !writable.contains(&k.as_str())) {
            return Reply::error(
                400,
                "PropertyNotWritable",
                format!("The property {bad} is read only or unknown here."),
            );
        }
        if let Some(boot) = patch.get("Boot").and_then(Value::as_object)
            && let Some(target) = boot.get("BootSourceOverrideTarget").and_then(Value::as_str)
        {
            let allowed = current
                .pointer("/Boot/BootSourceOverrideTarget@Redfish.AllowableValues")
                .and_then(Value::as_array);
            if allowed.is_some_and(|a| !a.iter().any(|x| x == target)) {
                return Reply::error(
                    400,
                    "PropertyValueNotInList",
                    format!("{target} is not an allowed BootSourceOverrideTarget."),
                );
            }
        }
        let patch = patch.clone();
        self.edit(&mut st, uri, |v| merge(v, &Value::Object(patch)));
        Reply::no_content()
    }

    fn patch_bios(&self, patch: &Map<String, Value>) -> Reply {
        let Some(attrs) = patch.get("Attributes").and_then(Value::as_object) else {
            return Reply::error(400, "PropertyMissing", "Attributes is required.");
        };
        if let Some(r) = &self.layout.registry {
            for (k, v) in attrs {
                if let Err(e) = r.check(k, v) {
                    return Reply::error(400, e.0, e.1);
                }
            }
        }
        let mut st = self.lock();
        for (k, v) in attrs {
            st.bios_pending.insert(k.clone(), v.clone());
        }
        Reply::no_content()
    }

    /// `POST` to an action target.
    pub fn action(self: &Arc<Self>, uri: &str, body: &Value) -> Reply {
        let Some((resource, action)) = uri.rsplit_once("/Actions/") else {
            return Reply::error(405, "OperationNotAllowed", "POST is not allowed here.");
        };
        match action {
            "ComputerSystem.Reset" => self.reset_system(resource, body),
            "Manager.Reset" => self.reset_manager(body),
            "UpdateService.SimpleUpdate" => self.simple_update(body),
            "Bios.ResetBios" => {
                let mut st = self.lock();
                if let Some(r) = &self.layout.registry {
                    st.bios_pending = r.defaults();
                }
                Reply::no_content()
            }
            "LogService.ClearLog" => {
                let mut st = self.lock();
                if self.layout.log.as_ref().is_some_and(|(s, _)| s == resource) {
                    st.log.clear();
                    // Record ids start again after a clear, as in an IPMI SEL.
                    st.next_log = 1;
                }
                Reply::no_content()
            }
            _ => Reply::error(
                400,
                "ActionNotSupported",
                format!("The action {action} is not supported by the simulator."),
            ),
        }
    }

    fn reset_system(&self, system: &str, body: &Value) -> Reply {
        let Some(kind) = body.get("ResetType").and_then(Value::as_str) else {
            return Reply::error(400, "ActionParameterMissing", "ResetType is required.");
        };
        let allowed: Vec<String> = self
            .layout
            .mockup
            .resources
            .get(system)
            .and_then(|v| {
                v.pointer("/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues")
            })
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_else(|| {
                [
                    "On",
                    "ForceOff",
                    "GracefulShutdown",
                    "ForceRestart",
                    "GracefulRestart",
                    "PowerCycle",
                ]
                .map(String::from)
                .to_vec()
            });
        if !allowed.iter().any(|a| a == kind) {
            return Reply::error(
                400,
                "ActionParameterValueNotInList",
                format!("ResetType {kind} is not one of {}.", allowed.join(", ")),
            );
        }
        let delay = self.fleet.config.power_delay;
        let now = Instant::now();
        let mut st = self.lock();
        let on = st.transition.map_or(st.on, |t| t.on);
        let t = match kind {
            "On" | "ForceOn" if !on => Some(Transition {
                on: true,
                at: now + delay,
                then_on: None,
            }),
            "ForceOff" if on => Some(Transition {
                on: false,
                at: now + delay / 4,
                then_on: None,
            }),
            "GracefulShutdown" if on => Some(Transition {
                on: false,
                at: now + delay,
                then_on: None,
            }),
            "PushPowerButton" => Some(Transition {
                on: !on,
                at: now + delay,
                then_on: None,
            }),
            "ForceRestart" | "GracefulRestart" | "PowerCycle" => Some(Transition {
                on: false,
                at: now + delay / 4,
                then_on: Some(delay),
            }),
            "Nmi" => {
                self.append_log(
                    &mut st,
                    "Critical",
                    "Critical Interrupt",
                    "Assert",
                    "A diagnostic interrupt (NMI) was sent to the system.",
                    system,
                );
                None
            }
            _ => None,
        };
        if t.is_some() {
            st.transition = t;
            self.append_log(
                &mut st,
                "OK",
                "System ACPI PowerState",
                "Assert",
                &format!("Reset requested: {kind}."),
                system,
            );
        }
        Reply::no_content()
    }

    fn reset_manager(&self, body: &Value) -> Reply {
        let kind = body
            .get("ResetType")
            .and_then(Value::as_str)
            .unwrap_or("GracefulRestart");
        if !["ForceRestart", "GracefulRestart"].contains(&kind) {
            return Reply::error(
                400,
                "ActionParameterValueNotInList",
                format!("ResetType {kind} is not supported."),
            );
        }
        let mut st = self.lock();
        st.sessions.clear();
        // A restarting BMC drops its event streams; clients reconnect.
        self.events.drop_streams();
        let bmc_fw: Vec<String> = st
            .staged
            .keys()
            .filter(|u| activates_with(u) == Activation::Manager)
            .cloned()
            .collect();
        for uri in bmc_fw {
            self.activate(&mut st, &uri);
        }
        let manager = self.layout.managers.first().cloned().unwrap_or_default();
        self.append_log(
            &mut st,
            "OK",
            "Management Subsystem Health",
            "Assert",
            "The BMC restarted.",
            &manager,
        );
        Reply::no_content()
    }

    // ---- firmware ---------------------------------------------------------------------------

    fn simple_update(self: &Arc<Self>, body: &Value) -> Reply {
        let Some(image) = body.get("ImageURI").and_then(Value::as_str) else {
            return Reply::error(400, "ActionParameterMissing", "ImageURI is required.");
        };
        let Ok(url) = reqwest::Url::parse(image) else {
            return Reply::error(
                400,
                "ActionParameterValueFormatError",
                format!("ImageURI {image} is not a URL."),
            );
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Reply::error(
                400,
                "ActionParameterNotSupported",
                "Only HTTP and HTTPS image URIs are supported.",
            );
        }
        let target = match self.target(body, url.path()) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let (id, reply) = self.start_task(&target, TaskPhase::Downloading);
        let bmc = Arc::clone(self);
        let client = self.fleet.http.clone();
        tokio::spawn(async move {
            match download(&client, url.clone()).await {
                Ok(bytes) => bmc.image_ready(id, url.path(), &bytes),
                Err(e) => bmc.task_failed(id, &format!("The image could not be downloaded: {e}")),
            }
        });
        reply
    }

    /// `POST MultipartHttpPushUri` (or `HttpPushUri`): the image is in the request.
    pub fn push_update(&self, params: &Value, file_name: &str, image: &[u8]) -> Reply {
        let target = match self.target(params, file_name) {
            Ok(t) => t,
            Err(r) => return r,
        };
        let (id, reply) = self.start_task(&target, TaskPhase::Downloading);
        self.image_ready(id, file_name, image);
        reply
    }

    /// The firmware inventory entry an update is for: from `Targets`, else guessed from the
    /// image name, else the first updateable one.
    fn target(&self, body: &Value, name: &str) -> Result<String, Reply> {
        let fw = &self.layout.firmware;
        let updateable = |u: &&String| {
            self.layout
                .mockup
                .resources
                .get(*u)
                .and_then(|v| v.get("Updateable"))
                .and_then(Value::as_bool)
                .unwrap_or(true)
        };
        if let Some(targets) = body.get("Targets").and_then(Value::as_array)
            && let Some(t) = targets.first().and_then(Value::as_str)
        {
            if fw.iter().any(|u| u == t) {
                return Ok(t.to_string());
            }
            // A system or manager as the target: its BIOS or BMC firmware.
            let want = if self.layout.managers.iter().any(|m| m == t) {
                "BMC"
            } else {
                "BIOS"
            };
            if let Some(u) = fw.iter().find(|u| u.to_uppercase().contains(want)) {
                return Ok(u.clone());
            }
            return Err(Reply::error(
                400,
                "ActionParameterValueNotInList",
                format!("Target {t} is not an updateable component."),
            ));
        }
        let lower = name.to_lowercase();
        fw.iter()
            .filter(updateable)
            .find(|u| {
                let id = u.rsplit('/').next().unwrap_or("").to_lowercase();
                lower.contains(&id)
            })
            .or_else(|| fw.iter().find(updateable))
            .cloned()
            .ok_or_else(|| {
                Reply::error(
                    400,
                    "ActionNotSupported",
                    "This BMC has no updateable firmware.",
                )
            })
    }

    fn start_task(&self, target: &str, phase: TaskPhase) -> (u64, Reply) {
        let mut st = self.lock();
        let n = st.next_task;
        st.next_task += 1;
        let id = format!("{}", 1000 + n);
        let task = Task {
            id: id.clone(),
            target: target.to_string(),
            version: None,
            phase,
            state: "Running",
            percent: 0,
            start: now_rfc3339(),
            end: None,
            messages: Vec::new(),
        };
        let body = task_json(&task);
        st.tasks.insert(n, task);
        // Keep the task list bounded, like a BMC does.
        while st.tasks.len() > 100 {
            let Some(first) = st.tasks.keys().next().copied() else {
                break;
            };
            st.tasks.remove(&first);
        }
        let reply = Reply::json(202, body)
            .with_header("Location", format!("{TASK_MONITORS}/{id}"))
            .with_header("Retry-After", "1");
        (n, reply)
    }

    fn image_ready(&self, task: u64, name: &str, image: &[u8]) {
        let mut st = self.lock();
        let Some(t) = st.tasks.get(&task) else { return };
        let target = t.target.clone();
        let version = match image_version(name, image) {
            Ok(v) => v,
            Err(e) => {
                drop(st);
                self.task_failed(task, &e);
                return;
            }
        };
        let current = self
            .base(&st, &target)
            .and_then(|v| v.get("Version"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let version = version.unwrap_or_else(|| bump(&current));
        if let Some(t) = st.tasks.get_mut(&task) {
            t.version = Some(version);
            t.phase = TaskPhase::Flashing(Instant::now());
        }
    }

    fn task_failed(&self, task: u64, message: &str) {
        let mut st = self.lock();
        if let Some(t) = st.tasks.get_mut(&task) {
            t.phase = TaskPhase::Done;
            t.state = "Exception";
            t.end = Some(now_rfc3339());
            t.messages
                .push(message_json("Base.1.15.GeneralError", "Critical", message));
        }
    }

    fn activate(&self, st: &mut State, uri: &str) {
        if let Some(version) = st.staged.remove(uri) {
            self.edit(st, uri, |v| {
                v["Version"] = json!(version);
            });
            self.append_log(
                st,
                "OK",
                "Version Change",
                "Assert",
                &format!("Firmware {uri} is now {version}."),
                uri,
            );
        }
    }

    // ---- time -------------------------------------------------------------------------------

    /// Advances the BMC to `elapsed` since the fleet started: power transitions, the sensor
    /// model, threshold crossings, tasks, fault schedules.
    pub fn tick(&self, elapsed: Duration, now: Instant) {
        let mut st = self.lock();
        let l = &self.layout;
        // Power.
        if let Some(t) = st.transition
            && now >= t.at
        {
            let was_on = st.on;
            st.on = t.on;
            st.transition = t.then_on.map(|d| Transition {
                on: true,
                at: t.at + d,
                then_on: None,
            });
            if t.on && !was_on {
                self.boot(&mut st);
            }
            let system = l.systems.first().cloned().unwrap_or_default();
            let msg = if t.on {
                "The system powered on."
            } else {
                "The system powered off."
            };
            self.append_log(
                &mut st,
                "OK",
                "System ACPI PowerState",
                "Assert",
                msg,
                &system,
            );
        }
        // Faults that end.
        let ended: Vec<ActiveFault> = st
            .faults
            .iter()
            .filter(|f| f.until.is_some_and(|u| now >= u))
            .cloned()
            .collect();
        for f in ended {
            self.clear_locked(&mut st, f.truth);
        }
        // The model, one simulated second at a time (after a long gap, the last ten minutes).
        let target = elapsed.as_secs();
        if target > st.model.t + 600 {
            st.model.t = target - 600;
        }
        while st.model.t < target {
            let on = st.on;
            let fx = st.effects.clone();
            st.model.step(on, &fx);
        }
        self.refresh(&mut st);
        let logged: &[usize] = if self.fleet.config.threshold_events {
            &l.logged
        } else {
            &[]
        };
        for &i in logged {
            let b = &l.bindings[i];
            let r = st.readings[i];
            let level = threshold_level(b, r, st.levels[i]);
            if level != st.levels[i] {
                let (sev, code) = match (level > st.levels[i], level) {
                    (true, 2) => ("Critical", "Upper Critical - going high"),
                    (true, _) => ("Warning", "Upper Non-critical - going high"),
                    (false, 1) => ("Warning", "Upper Critical - going low"),
                    (false, _) => ("OK", "Upper Non-critical - going low"),
                };
                let sensor_type = match b.kind {
                    SensorKind::Temperature | SensorKind::Ambient => "Temperature",
                    SensorKind::FanRpm | SensorKind::FanPercent => "Fan",
                    SensorKind::Voltage => "Voltage",
                    SensorKind::Current => "Current",
                    SensorKind::Power | SensorKind::Energy => "Power Supply / Converter",
                    SensorKind::Other => "Other Units-based Sensor",
                };
                let msg = format!("{}: {code}, reading {:.0}.", b.name, r);
                let origin = b.uri.clone();
                self.append_log(&mut st, sev, sensor_type, code, &msg, &origin);
            }
            st.levels[i] = level;
        }
        // Holders without their own log binding (legacy arrays) follow the same levels.
        for (i, b) in l.bindings.iter().enumerate() {
            if !l.logged.contains(&i) {
                st.levels[i] = threshold_level(b, st.readings[i], st.levels[i]);
            }
        }
        // A DIMM error storm: correctable errors, then an uncorrectable one.
        if let Some((dimm, left)) = st.dimm_storm.clone() {
            if left == 0 {
                st.dimm_storm = None;
                self.append_log(
                    &mut st,
                    "Critical",
                    "Memory",
                    "Assert",
                    &format!("Uncorrectable ECC error on {}.", last(&dimm)),
                    &dimm,
                );
                self.edit(&mut st, &dimm, |v| set_health(v, "Critical"));
            } else {
                st.dimm_storm = Some((dimm.clone(), left - 1));
                self.append_log(
                    &mut st,
                    "Warning",
                    "Memory",
                    "Assert",
                    &format!("Correctable ECC error on {}.", last(&dimm)),
                    &dimm,
                );
            }
        }
        // Tasks.
        let secs = self.fleet.config.update_time.as_secs_f64().max(0.1);
        let mut finished = Vec::new();
        for (n, t) in st.tasks.iter_mut() {
            if let TaskPhase::Flashing(since) = t.phase {
                let p = (since.elapsed().as_secs_f64() / secs).min(1.0);
                t.percent = (p * 100.0) as u8;
                if p >= 1.0 {
                    finished.push(*n);
                }
            }
        }
        for n in finished {
            self.finish_update(&mut st, n);
        }
        // Random faults.
        let rates = self.fleet.config.fault_rates.rates.clone();
        drop(st);
        for (kind, rate) in rates {
            let h = mix(
                mix(self.fleet.config.seed, self.index as u64),
                target * 31 + kind as u64,
            );
            if unit(h) < rate / 3600.0 {
                let spec = FaultSpec {
                    server: self.index,
                    kind,
                    at: None,
                    duration: matches!(kind, FaultKind::BmcHang | FaultKind::BmcSlow)
                        .then_some(self.fleet.config.fault_rates.transient),
                    component: None,
                };
                if let Err(e) = self.inject(&spec, "random") {
                    tracing::debug!(bmc = %self.name, error = %e, "random fault not injected");
                }
            }
        }
    }

    /// Recomputes every reading from the model (after a tick, or a fault that changes them).
    fn refresh(&self, st: &mut State) {
        let l = &self.layout;
        let fx = st.effects.clone();
        for (i, b) in l.bindings.iter().enumerate() {
            st.readings[i] = st.model.reading(b, &fx, l.fans);
        }
    }

    fn boot(&self, st: &mut State) {
        // Pending BIOS settings apply at POST; one may not stick.
        let lost: Option<String> = st
            .faults
            .iter()
            .find(|f| f.kind == FaultKind::BiosSettingLost)
            .map(|f| f.component.clone());
        let pending = std::mem::take(&mut st.bios_pending);
        if let Some((bios, _)) = self.layout.bios.clone()
            && !pending.is_empty()
        {
            let mut failed = Vec::new();
            self.edit(st, &bios, |v| {
                for (k, val) in &pending {
                    if lost.as_deref() == Some(k.as_str()) || lost.as_deref() == Some("*") {
                        failed.push(k.clone());
                        continue;
                    }
                    v["Attributes"][k] = val.clone();
                }
                v["@Redfish.Settings"]["Time"] = json!(now_rfc3339());
                v["@Redfish.Settings"]["Messages"] = json!(failed
                    .iter()
                    .map(|k| json!({"MessageId": "Base.1.15.SettingsFailed", "RelatedProperties": [format!("/Attributes/{k}")]}))
                    .collect::<Vec<_>>());
            });
        }
        let bios_fw: Vec<String> = st
            .staged
            .keys()
            .filter(|u| activates_with(u) == Activation::System)
            .cloned()
            .collect();
        for uri in bios_fw {
            self.activate(st, &uri);
        }
    }

    fn finish_update(&self, st: &mut State, n: u64) {
        let Some(t) = st.tasks.get(&n).cloned() else {
            return;
        };
        let fail = st
            .faults
            .iter()
            .find(|f| matches!(f.kind, FaultKind::UpdateFails | FaultKind::UpdateBricks))
            .cloned();
        let (state, messages) = match fail {
            Some(f) => {
                if f.kind == FaultKind::UpdateBricks {
                    self.edit(st, &t.target, |v| {
                        v["Status"] = json!({"State": "UnavailableOffline", "Health": "Critical"});
                    });
                } else {
                    self.clear_locked(st, f.truth);
                }
                self.append_log(
                    st,
                    "Critical",
                    "Version Change",
                    "Assert",
                    &format!("Firmware update of {} failed.", last(&t.target)),
                    &t.target,
                );
                (
                    "Exception",
                    vec![message_json(
                        "Base.1.15.GeneralError",
                        "Critical",
                        "The firmware update failed: the image did not verify after flashing.",
                    )],
                )
            }
            None => {
                let version = t.version.clone().unwrap_or_default();
                // A component left unusable by a failed update works again after a good one.
                let bricked: Vec<u64> = st
                    .faults
                    .iter()
                    .filter(|f| f.kind == FaultKind::UpdateBricks && f.component == t.target)
                    .map(|f| f.truth)
                    .collect();
                for b in bricked {
                    self.clear_locked(st, b);
                }
                self.edit(st, &t.target, |v| {
                    v["Status"] = json!({"State": "Enabled", "Health": "OK"});
                });
                let msg = match activates_with(&t.target) {
                    Activation::Immediate => {
                        st.staged.insert(t.target.clone(), version.clone());
                        self.activate(st, &t.target);
                        format!("{} updated to {version}.", last(&t.target))
                    }
                    Activation::System => {
                        st.staged.insert(t.target.clone(), version.clone());
                        format!(
                            "{} {version} is staged: it activates at the next system reset.",
                            last(&t.target)
                        )
                    }
                    Activation::Manager => {
                        st.staged.insert(t.target.clone(), version.clone());
                        format!(
                            "{} {version} is staged: it activates when the BMC restarts.",
                            last(&t.target)
                        )
                    }
                };
                (
                    "Completed",
                    vec![message_json("Base.1.15.Success", "OK", &msg)],
                )
            }
        };
        if let Some(task) = st.tasks.get_mut(&n) {
            task.phase = TaskPhase::Done;
            task.state = state;
            task.percent = 100;
            task.end = Some(now_rfc3339());
            task.messages = messages;
        }
    }

    // ---- faults -----------------------------------------------------------------------------

    /// Injects a fault now; returns its ground truth.
    pub fn inject(&self, spec: &FaultSpec, source: &str) -> Result<GroundTruth, String> {
        let l = &self.layout;
        let mut st = self.lock();
        let pick = |n: usize, salt: u64| -> usize {
            if n == 0 {
                0
            } else {
                (mix(self.fleet.config.seed, self.index as u64 * 977 + salt) % n as u64) as usize
            }
        };
        let mut slot = None;
        let component = match spec.kind {
            FaultKind::FanFailure => {
                if l.fans == 0 {
                    return Err("this server has no fans".into());
                }
                let i = match &spec.component {
                    Some(c) => c
                        .parse::<usize>()
                        .map_err(|_| format!("fan {c:?}: give the fan's number (0-based)"))?,
                    None => pick(l.fans, 1),
                };
                if i >= l.fans {
                    return Err(format!("fan {i}: this server has {} fans", l.fans));
                }
                st.effects.failed_fans.push(i);
                slot = Some(i);
                let name = l
                    .bindings
                    .iter()
                    .find(|b| b.fan == Some(i))
                    .map_or_else(|| format!("fan {i}"), |b| b.uri.clone());
                self.append_log(
                    &mut st,
                    "Critical",
                    "Fan",
                    "Assert",
                    &format!("Fan {} failed.", last(&name)),
                    &name,
                );
                name
            }
            FaultKind::Overheat => {
                st.effects.ambient_rise = 18.0;
                l.chassis.first().cloned().unwrap_or_default()
            }
            FaultKind::PsuLoss => {
                let n = l.psus.len().max(1);
                let i = match &spec.component {
                    Some(c) => c
                        .parse::<usize>()
                        .map_err(|_| format!("PSU {c:?}: give the PSU's number (0-based)"))?,
                    None => pick(n, 2),
                };
                st.effects.lost_psus.push(i);
                slot = Some(i);
                let uri = l.psus.get(i).cloned().unwrap_or_else(|| format!("PSU {i}"));
                if l.psus.get(i).is_some() {
                    self.edit(&mut st, &uri, |v| set_health(v, "Critical"));
                }
                self.append_log(
                    &mut st,
                    "Critical",
                    "Power Supply / Converter",
                    "Assert",
                    &format!("Power supply {} lost its input.", last(&uri)),
                    &uri,
                );
                uri
            }
            FaultKind::DimmErrors => {
                let uri = choose(&spec.component, &l.memory, pick(l.memory.len(), 3))?;
                self.edit(&mut st, &uri, |v| set_health(v, "Warning"));
                st.dimm_storm = Some((uri.clone(), 20));
                uri
            }
            FaultKind::DiskPredictedFailure => {
                let uri = choose(&spec.component, &l.drives, pick(l.drives.len(), 4))?;
                self.edit_disk(&mut st, &uri, true);
                self.append_log(
                    &mut st,
                    "Warning",
                    "Drive Slot/Bay",
                    "Predictive Failure asserted",
                    &format!("Drive {} predicts its failure.", last(&uri)),
                    &uri,
                );
                uri
            }
            FaultKind::BmcHang | FaultKind::BmcSlow => {
                l.managers.first().cloned().unwrap_or_default()
            }
            FaultKind::UpdateFails | FaultKind::UpdateBricks => {
                choose(&spec.component, &l.firmware, pick(l.firmware.len(), 5))?
            }
            FaultKind::BiosSettingLost => spec.component.clone().unwrap_or_else(|| "*".into()),
        };
        let truth = self.fleet.record(GroundTruth {
            id: 0,
            server: self.index,
            server_id: self.identity.system_uuid.clone(),
            kind: spec.kind,
            component: component.clone(),
            injected_at: now_rfc3339(),
            cleared_at: None,
            source: source.to_string(),
        });
        self.refresh(&mut st);
        st.faults.push(ActiveFault {
            truth: truth.id,
            kind: spec.kind,
            component,
            slot,
            until: spec.duration.map(|d| Instant::now() + d),
        });
        Ok(truth)
    }

    /// Marks a disk (a Drive, or `<SimpleStorage>#/Devices/<n>`) as predicting its failure,
    /// or healthy again.
    fn edit_disk(&self, st: &mut State, disk: &str, failing: bool) {
        let health = if failing { "Warning" } else { "OK" };
        match disk.split_once('#') {
            Some((uri, pointer)) => self.edit(st, uri, |v| {
                if let Some(d) = v.pointer_mut(pointer) {
                    set_health(d, health);
                }
            }),
            None => self.edit(st, disk, |v| {
                v["FailurePredicted"] = json!(failing);
                set_health(v, health);
            }),
        }
    }

    /// Clears an active fault (by its ground-truth id); false if it is not active here.
    pub fn clear(&self, truth: u64) -> bool {
        let mut st = self.lock();
        self.clear_locked(&mut st, truth)
    }

    fn clear_locked(&self, st: &mut State, truth: u64) -> bool {
        let Some(pos) = st.faults.iter().position(|f| f.truth == truth) else {
            return false;
        };
        let f = st.faults.remove(pos);
        match f.kind {
            FaultKind::FanFailure => {
                if let Some(p) = st
                    .effects
                    .failed_fans
                    .iter()
                    .position(|x| Some(*x) == f.slot)
                {
                    st.effects.failed_fans.remove(p);
                }
            }
            FaultKind::Overheat => st.effects.ambient_rise = 0.0,
            FaultKind::PsuLoss => {
                if let Some(p) = st.effects.lost_psus.iter().position(|x| Some(*x) == f.slot) {
                    st.effects.lost_psus.remove(p);
                }
                if self.layout.psus.contains(&f.component) {
                    self.edit(st, &f.component, |v| set_health(v, "OK"));
                }
            }
            FaultKind::DimmErrors => {
                st.dimm_storm = None;
                self.edit(st, &f.component, |v| set_health(v, "OK"));
            }
            FaultKind::DiskPredictedFailure => self.edit_disk(st, &f.component, false),
            FaultKind::UpdateBricks => self.edit(st, &f.component, |v| {
                v["Status"] = json!({"State": "Enabled", "Health": "OK"});
            }),
            _ => {}
        }
        self.refresh(st);
        self.fleet.cleared(truth);
        true
    }

    /// How the BMC answers now: normally, slowly, or not at all.
    pub fn responsiveness(&self) -> Responsiveness {
        let st = self.lock();
        if st.faults.iter().any(|f| f.kind == FaultKind::BmcHang) {
            Responsiveness::Hung
        } else if st.faults.iter().any(|f| f.kind == FaultKind::BmcSlow) {
            Responsiveness::Slow(
                Duration::from_secs(3)
                    + Duration::from_millis(mix(self.index as u64, st.requests) % 4000),
            )
        } else {
            Responsiveness::Normal
        }
    }

    fn append_log(
        &self,
        st: &mut State,
        severity: &str,
        sensor_type: &str,
        code: &str,
        message: &str,
        origin: &str,
    ) {
        let Some((_, entries)) = &self.layout.log else {
            return;
        };
        let id = st.next_log;
        st.next_log += 1;
        let mut e = json!({
            "@odata.id": format!("{entries}/{id}"),
            "@odata.type": "#LogEntry.v1_15_0.LogEntry",
            "Id": id.to_string(),
            "Name": format!("Log Entry {id}"),
            "EntryType": "SEL",
            "Severity": severity,
            "Created": now_rfc3339(),
            "EntryCode": code,
            "SensorType": sensor_type,
            "Message": message,
            // SEL entries carry the IPMI event data as their message id (as in DMTF's
            // mockups): the sensor type code, then event bytes.
            "MessageId": format!("0x{:02X}{:04X}", ipmi_sensor_type(sensor_type), id & 0xFFFF),
        });
        if origin.starts_with(ROOT) {
            // The origin without a fragment: a link must name a resource.
            let o = origin.split('#').next().unwrap_or(origin);
            e["Links"] = json!({"OriginOfCondition": {"@odata.id": o}});
        }
        self.events.publish(&e);
        st.log.push_back(e);
        while st.log.len() > LOG_CAPACITY {
            st.log.pop_front();
        }
    }
}

/// The IPMI sensor type code of a Redfish `SensorType` (IPMI 2.0, table 42-3).
fn ipmi_sensor_type(t: &str) -> u8 {
    match t {
        "Temperature" => 0x01,
        "Voltage" => 0x02,
        "Current" => 0x03,
        "Fan" => 0x04,
        "Power Supply / Converter" => 0x08,
        "Memory" => 0x0C,
        "Drive Slot/Bay" => 0x0D,
        "System Event" => 0x12,
        "Critical Interrupt" => 0x13,
        "System ACPI PowerState" => 0x22,
        "Management Subsystem Health" => 0x28,
        "Version Change" => 0x2B,
        _ => 0xC0,
    }
}

/// How a BMC answers requests at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responsiveness {
    /// Promptly.
    Normal,
    /// After this delay.
    Slow(Duration),
    /// Not at all.
    Hung,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Immediate,
    System,
    Manager,
}

fn activates_with(uri: &str) -> Activation {
    let id = last(uri).to_uppercase();
    if id.contains("BMC") || id.contains("MANAGER") {
        Activation::Manager
    } else if id.contains("BIOS") || id.contains("UEFI") {
        Activation::System
    } else {
        Activation::Immediate
    }
}

fn last(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

fn choose(
    component: &Option<String>,
    options: &[String],
    default: usize,
) -> Result<String, String> {
    match component {
        Some(c) => options
            .iter()
            .find(|u| *u == c || last(u) == c)
            .cloned()
            .ok_or_else(|| format!("no component {c:?} here")),
        None => options
            .get(default)
            .cloned()
            .ok_or_else(|| "this server has no such component".into()),
    }
}

fn set_health(v: &mut Value, health: &str) {
    if v.get("Status").is_none() {
        v["Status"] = json!({"State": "Enabled"});
    }
    v["Status"]["Health"] = json!(health);
}

fn threshold_level(b: &Binding, r: f64, prev: u8) -> u8 {
    // Hysteresis: a level is left only 2% (at least one unit) below its threshold.
    let margin = |t: f64| (t.abs() * 0.02).max(1.0);
    let above = |t: Option<f64>, held: bool| {
        t.is_some_and(|t| if held { r > t - margin(t) } else { r >= t })
    };
    if above(b.upper.1, prev >= 2) {
        2
    } else if above(b.upper.0, prev >= 1) {
        1
    } else {
        0
    }
}

fn power_state(st: &State) -> &'static str {
    match (st.on, st.transition) {
        (false, Some(t)) if t.on => "PoweringOn",
        (true, Some(t)) if !t.on => "PoweringOff",
        (true, _) => "On",
        (false, _) => "Off",
    }
}

fn number(r: f64) -> Value {
    if r.fract() == 0.0 && r.abs() < 1e15 {
        json!(r as i64)
    } else {
        json!(r)
    }
}

fn set_members(v: &mut Value, members: Vec<Value>) {
    v["Members@odata.count"] = json!(members.len());
    v["Members"] = Value::Array(members);
}

fn merge(v: &mut Value, patch: &Value) {
    match (v, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, pv) in b {
                match a.get_mut(k) {
                    Some(av) if av.is_object() && pv.is_object() => merge(av, pv),
                    _ => {
                        a.insert(k.clone(), pv.clone());
                    }
                }
            }
        }
        (v, p) => *v = p.clone(),
    }
}

fn session_json(uri: &str, id: &str, user: &str) -> Value {
    json!({
        "@odata.id": uri,
        "@odata.type": "#Session.v1_7_0.Session",
        "Id": id,
        "Name": "User Session",
        "UserName": user,
    })
}

fn task_json(t: &Task) -> Value {
    let mut v = json!({
        "@odata.id": format!("{TASKS}/{}", t.id),
        "@odata.type": "#Task.v1_7_4.Task",
        "Id": t.id,
        "Name": format!("Firmware update of {}", last(&t.target)),
        "TaskState": t.state,
        "TaskStatus": match t.state { "Exception" => "Critical", _ => "OK" },
        "PercentComplete": t.percent,
        "StartTime": t.start,
        "TaskMonitor": format!("{TASK_MONITORS}/{}", t.id),
        "Messages": t.messages,
    });
    if let Some(end) = &t.end {
        v["EndTime"] = json!(end);
    }
    v
}

fn message_json(id: &str, severity: &str, message: &str) -> Value {
    json!({"MessageId": id, "Message": message, "Severity": severity, "MessageSeverity": severity})
}

/// The version an image carries: a `version=` line in a small text image, else a dotted
/// number in its name; `None` if neither (the current version is bumped). An image too short
/// to be firmware is refused.
pub fn image_version(name: &str, image: &[u8]) -> Result<Option<String>, String> {
    if image.len() < 16 {
        return Err(format!(
            "The image is {} bytes: too short to be firmware, refused.",
            image.len()
        ));
    }
    if image.len() <= 64 * 1024
        && let Ok(text) = std::str::from_utf8(image)
        && let Some(v) = text.lines().find_map(|l| l.trim().strip_prefix("version="))
    {
        return Ok(Some(v.trim().to_string()));
    }
    let file = last(name);
    let mut best: Option<String> = None;
    let mut cur = String::new();
    for c in file.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() || (c == '.' && !cur.is_empty()) {
            cur.push(c);
        } else {
            let t = cur.trim_end_matches('.').to_string();
            if t.contains('.') && best.as_ref().is_none_or(|b| t.len() > b.len()) {
                best = Some(t);
            }
            cur.clear();
        }
    }
    Ok(best)
}

/// The next version after `v`: its last number plus one.
fn bump(v: &str) -> String {
    let digits_at = v.rfind(|c: char| c.is_ascii_digit());
    let Some(end) = digits_at.map(|i| i + 1) else {
        return format!("{v}.1");
    };
    let start = v[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let n: u64 = v[start..end].parse().unwrap_or(0);
    format!("{}{}{}", &v[..start], n + 1, &v[end..])
}

async fn download(client: &reqwest::Client, url: reqwest::Url) -> Result<Vec<u8>, String> {
    const CAP: usize = 512 * 1024 * 1024;
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        out.extend_from_slice(&chunk);
        if out.len() > CAP {
            return Err("the image is larger than 512 MiB".into());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_image_or_its_name() {
        assert_eq!(
            image_version("x", b"version=2.1.0\npayload........"),
            Ok(Some("2.1.0".into()))
        );
        assert_eq!(
            image_version("/fw/bios_P79_v1.46.bin", &[0u8; 100]),
            Ok(Some("1.46".into()))
        );
        assert_eq!(image_version("/fw/blob", &[0u8; 100]), Ok(None));
        assert!(image_version("x", b"short").is_err());
        assert_eq!(bump("P79 v1.45"), "P79 v1.46");
        assert_eq!(bump("abc"), "abc.1");
    }
}
