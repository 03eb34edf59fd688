//! The health processor: judges every thresholded sensor reading and every component status in
//! the inventory, and publishes each change of health with the evidence that caused it
//! (`health.events`) and the latest health (compacted `health.state`, also its changelog).
//!
//! What is judged ("subjects", each one `health.state` key `server_id/component_id`):
//! - a sensor with thresholds (the BMC's, replaced field by field by the operator's
//!   [`ThresholdOverride`]s), tracked as component `sensor:<sensor_id>`. A PSU input-voltage sensor
//!   is judged even without thresholds (0 V is a lost feed);
//! - an inventory component that reports a status (`properties["health"]`, Redfish
//!   `Status.Health` or the agent's SMART verdict) or, on drives, `predicted_failure == "true"`;
//!   tracked under its own component id. When several collectors report the same component, the
//!   worst of their latest verdicts counts. A component missing from a snapshot changes nothing
//!   (the inventory processor reports removals);
//! - a hardware log's problems (`telemetry.logs`: Redfish LogServices and events, IPMI SEL, the
//!   agent's EDAC and kernel log), tracked as `log:<component, else sensor, else log id>`. A
//!   warning or critical entry raises the subject (repeats and milder entries change nothing, so
//!   a storm of correctable errors is one change); a later informational entry about the same
//!   component or sensor clears it, and so does [`HealthConfig::log_hold_secs`] without a new
//!   entry. Entries made longer than the hold before they were read are history, not judged;
//! - the server's TPM identity (`tpm.registrations`), as component `tpm`: critical while an EK
//!   change awaits an operator's approval, a warning when enrollment was rejected;
//! - the server itself (component null, key `server_id/`): the worst of its subjects.
//!
//! Hysteresis: a worse state is entered as soon as a reading crosses its threshold (at or
//! beyond it). A state is left only after [`HealthConfig::clear_after`] consecutive readings
//! back past the threshold by a margin of [`HealthConfig::hysteresis`] × |threshold| (2 % by
//! default: 1.8 °C under a 90 °C threshold), so a sensor hovering around a threshold makes one
//! change, not a storm.
//!
//! Emission: only on change. The first verdict about a subject is its baseline: its state is
//! published, and an event only when the baseline is not OK. A recovery event keeps the
//! classification of the problem that cleared; the OK state has an empty classification.
//! Times are the evidence's own (reading timestamp, snapshot time), so a replay after a crash
//! produces the same records.

use std::collections::{BTreeMap, HashMap};

use automata_log::{ConsumedRecord, Record};
use automata_schemas::catalog::{
    HEALTH_EVENTS, HEALTH_STATE, INVENTORY_SNAPSHOTS, TELEMETRY_LOGS, TELEMETRY_READINGS,
    TPM_REGISTRATIONS,
};
use automata_schemas::types::{
    Component, ComponentKind, Evidence, HardwareLogEntry, Health, HealthEvent, HealthState,
    InventorySnapshot, InventorySource, LogSeverity, SensorKind, TelemetryReading, Thresholds,
    TpmRegistration, TpmStatus,
};
use automata_schemas::{SchemaIds, encode};
use serde::{Deserialize, Serialize};

use crate::codec::RecordCodec;
use crate::runtime::{Processor, Rejection};

/// Prefix of the component id a sensor's health is tracked under (`sensor:<sensor_id>`).
pub const SENSOR_PREFIX: &str = "sensor:";

/// Prefix of the subject a log's problems are tracked under (`log:<component, sensor or log>`).
pub const LOG_PREFIX: &str = "log:";

/// The subject a server's TPM registration is judged under.
pub const TPM_SUBJECT: &str = "tpm";

/// Pseudo-source of an inventory verdict restored without knowing which collector made it.
const RESTORED: &str = "restored";

/// Most non-OK subjects listed in a server roll-up's evidence.
const ROLLUP_EVIDENCE_MAX: usize = 20;

/// Operator thresholds for the sensors a rule matches, replacing the BMC's field by field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ThresholdOverride {
    /// Glob (`*`, `?`) on the sensor name, e.g. `CPU* Temp`; absent matches every name.
    #[serde(default)]
    pub sensor: Option<String>,
    /// Sensor kind (`TEMPERATURE`, `FAN`, …); absent matches every kind.
    #[serde(default)]
    pub kind: Option<SensorKind>,
    /// The thresholds; a field left out keeps the BMC's.
    #[serde(flatten)]
    pub thresholds: Thresholds,
}

impl ThresholdOverride {
    /// Whether the rule applies to `r`, `sensor` being this rule's compiled name glob.
    fn matches(&self, sensor: Option<&glob::Pattern>, r: &TelemetryReading) -> bool {
        self.kind.is_none_or(|k| k == r.kind) && sensor.is_none_or(|g| g.matches(&r.name))
    }
}

/// Compiles a glob (`*`, `?`, `[…]`); one that does not compile matches itself literally.
pub fn compile_glob(pattern: &str) -> glob::Pattern {
    glob::Pattern::new(pattern).unwrap_or_else(|e| {
        tracing::warn!(pattern, error = %e, "not a valid glob; matching it literally");
        glob::Pattern::new(&glob::Pattern::escape(pattern)).unwrap_or_default()
    })
}

/// How readings are judged: operator thresholds, hysteresis and how long a recovery must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Threshold overrides; every matching rule applies, later rules win field by field.
    pub overrides: Vec<ThresholdOverride>,
    /// Margin to leave a state, as a fraction of the threshold's magnitude (default 0.02).
    pub hysteresis: f64,
    /// Consecutive readings past the margin needed to leave a state (default 2).
    pub clear_after: u32,
    /// A problem known only from log entries clears after this long without a new warning or
    /// critical entry about it (default one day); older entries are history, not judged.
    pub log_hold_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            overrides: Vec::new(),
            hysteresis: 0.02,
            clear_after: 2,
            log_hold_secs: 24 * 3600,
        }
    }
}

/// A judgement about one subject.
#[derive(Debug, Clone, PartialEq)]
struct Verdict {
    health: Health,
    classification: String,
    message: String,
    evidence: Vec<Evidence>,
    since: i64,
}

impl Verdict {
    fn from_state(s: &HealthState) -> Self {
        Verdict {
            health: s.health,
            classification: s.classification.clone(),
            message: s.message.clone(),
            evidence: s.evidence.clone(),
            since: s.since,
        }
    }
}

/// A threshold a reading is beyond.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Crossing {
    level: Health,
    upper: bool,
    /// `critical` or `caution`.
    which: &'static str,
    threshold: f64,
    /// Set when the rule is not a plain threshold (fan stopped, PSU input lost).
    special: Option<&'static str>,
}

/// One judged subject: its current verdict and what decides the next one.
#[derive(Debug, Default)]
struct Subject {
    current: Option<Verdict>,
    /// Sensors: the readings of a recovery streak so far, and the level it heads to.
    streak: Vec<Evidence>,
    streak_target: Option<(Health, Option<Crossing>)>,
    last_at: i64,
    /// Inventory: the latest verdict per collector.
    sources: BTreeMap<String, Verdict>,
}

#[derive(Debug, Default)]
struct ServerHealth {
    subjects: HashMap<String, Subject>,
    rollup: Option<Verdict>,
    /// Log subjects that are not OK, with the time of their latest entry (for the hold).
    log_active: BTreeMap<String, i64>,
}

/// Health per sensor, component and server, emitted when it changes.
pub struct HealthProcessor {
    codec: RecordCodec,
    cfg: HealthConfig,
    /// Each override's sensor-name glob, compiled once.
    override_globs: Vec<Option<glob::Pattern>>,
    servers: HashMap<String, ServerHealth>,
    /// Newest snapshot time per `server_id/source`, so that a late snapshot changes nothing.
    snapshot_at: HashMap<String, i64>,
}

/// A change to publish.
struct Change {
    server_id: String,
    component_id: Option<String>,
    previous: Health,
    verdict: Verdict,
    event_classification: String,
}

impl HealthProcessor {
    /// A processor that reads and writes with the registered schema `ids`, judging with `cfg`.
    pub fn new(ids: SchemaIds, cfg: HealthConfig) -> Self {
        let override_globs = cfg
            .overrides
            .iter()
            .map(|o| o.sensor.as_deref().map(compile_glob))
            .collect();
        HealthProcessor {
            codec: RecordCodec::new(ids),
            cfg,
            override_globs,
            servers: HashMap::new(),
            snapshot_at: HashMap::new(),
        }
    }

    /// The health held now for a server (`component_id` `None`) or one of its subjects.
    pub fn health(&self, server_id: &str, component_id: Option<&str>) -> Option<Health> {
        let s = self.servers.get(server_id)?;
        match component_id {
            None => s.rollup.as_ref().map(|v| v.health),
            Some(c) => s.subjects.get(c)?.current.as_ref().map(|v| v.health),
        }
    }

    /// The BMC's thresholds with every matching override applied, if any threshold is left.
    fn thresholds(&self, r: &TelemetryReading) -> Option<Thresholds> {
        let mut t = r.thresholds.clone().unwrap_or_default();
        let rules = self.cfg.overrides.iter().zip(&self.override_globs);
        for (o, _) in rules.filter(|(o, g)| o.matches(g.as_ref(), r)) {
            let ot = &o.thresholds;
            t.lower_critical = ot.lower_critical.or(t.lower_critical);
            t.lower_caution = ot.lower_caution.or(t.lower_caution);
            t.upper_caution = ot.upper_caution.or(t.upper_caution);
            t.upper_critical = ot.upper_critical.or(t.upper_critical);
        }
        let any = t.lower_critical.is_some()
            || t.lower_caution.is_some()
            || t.upper_caution.is_some()
            || t.upper_critical.is_some();
        any.then_some(t)
    }

    fn on_reading(&mut self, t: TelemetryReading) -> Vec<Change> {
        let mut changes = self.expire_logs(&t.server_id, t.timestamp);
        changes.extend(self.judge_reading(t));
        changes
    }

    fn judge_reading(&mut self, t: TelemetryReading) -> Vec<Change> {
        let th = self.thresholds(&t);
        let psu_input = is_psu_input(&t);
        if th.is_none() && !psu_input {
            return Vec::new();
        }
        let th = th.unwrap_or_default();
        let key = format!("{SENSOR_PREFIX}{}", t.sensor_id);
        let frac = self.cfg.hysteresis.max(0.0);
        let clear_after = self.cfg.clear_after.max(1) as usize;
        let entry = crossing(&t, &th, 0.0, psu_input);
        let sticky = crossing(&t, &th, frac, psu_input);
        let entry_level = entry.map_or(Health::Ok, |c| c.level);
        let sticky_level = sticky.map_or(Health::Ok, |c| c.level);

        let server = self.servers.entry(t.server_id.clone()).or_default();
        let subject = server.subjects.entry(key.clone()).or_default();
        if t.timestamp < subject.last_at {
            return Vec::new(); // a late reading changes nothing
        }
        subject.last_at = t.timestamp;
        let previous = subject
            .current
            .as_ref()
            .map_or(Health::Unknown, |v| v.health);
        let next = if subject.current.is_none() || entry_level > previous {
            subject.streak.clear();
            subject.streak_target = None;
            Some(sensor_verdict(
                &t,
                &th,
                entry,
                previous,
                vec![reading_evidence(&t)],
            ))
        } else if sticky_level < previous {
            subject.streak.push(reading_evidence(&t));
            let worst = match subject.streak_target {
                Some((h, c)) if h >= sticky_level => (h, c),
                _ => (sticky_level, sticky),
            };
            subject.streak_target = Some(worst);
            if subject.streak.len() >= clear_after {
                let evidence = std::mem::take(&mut subject.streak);
                subject.streak_target = None;
                Some(sensor_verdict(&t, &th, worst.1, previous, evidence))
            } else {
                None
            }
        } else {
            subject.streak.clear();
            subject.streak_target = None;
            None
        };
        let Some(v) = next else {
            return Vec::new();
        };
        let event_classification = event_class(subject.current.as_ref(), &v);
        subject.current = Some(v.clone());
        let mut changes = vec![Change {
            server_id: t.server_id.clone(),
            component_id: Some(key),
            previous,
            verdict: v,
            event_classification,
        }];
        changes.extend(rollup(&t.server_id, server, t.timestamp));
        changes
    }

    /// Clears the server's log subjects whose latest entry is older than the hold at `now`.
    fn expire_logs(&mut self, server_id: &str, now: i64) -> Vec<Change> {
        let hold = self.log_hold_ms();
        let Some(server) = self.servers.get_mut(server_id) else {
            return Vec::new();
        };
        let expired: Vec<(String, i64)> = server
            .log_active
            .iter()
            .filter(|(_, last)| now - **last > hold)
            .map(|(k, last)| (k.clone(), *last))
            .collect();
        let mut changes = Vec::new();
        for (key, last) in expired {
            server.log_active.remove(&key);
            let Some(subject) = server.subjects.get_mut(&key) else {
                continue;
            };
            let previous = subject
                .current
                .as_ref()
                .map_or(Health::Unknown, |v| v.health);
            let v = Verdict {
                health: Health::Ok,
                classification: String::new(),
                message: format!(
                    "{} has had no warning or critical log entry for {} h",
                    &key[LOG_PREFIX.len()..],
                    hold / 3_600_000
                ),
                evidence: vec![Evidence {
                    kind: "log_entry".into(),
                    detail: format!("latest entry at {last}; hold {} s", hold / 1000),
                    observed_at: now,
                }],
                since: now,
            };
            let event_classification = event_class(subject.current.as_ref(), &v);
            subject.current = Some(v.clone());
            changes.push(Change {
                server_id: server_id.to_string(),
                component_id: Some(key),
                previous,
                verdict: v,
                event_classification,
            });
        }
        if !changes.is_empty() {
            changes.extend(rollup(server_id, server, now));
        }
        changes
    }

    fn log_hold_ms(&self) -> i64 {
        i64::try_from(self.cfg.log_hold_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Judges one log entry: a warning or critical entry sets its subject (never lowers it); an
    /// informational one about the same component or sensor clears it.
    fn on_log(&mut self, e: HardwareLogEntry) -> Vec<Change> {
        let at = e.created.min(e.observed_at);
        let mut changes = self.expire_logs(&e.server_id, e.observed_at);
        if e.observed_at - at > self.log_hold_ms() {
            return changes; // history from before the hold: not a current problem
        }
        let targeted = e.component_id.is_some() || e.sensor_id.is_some();
        let key = format!("{LOG_PREFIX}{}", log_target(&e));
        let server = self.servers.entry(e.server_id.clone()).or_default();
        let subject = server.subjects.entry(key.clone()).or_default();
        if at < subject.last_at {
            return changes; // an older entry than the one judged last changes nothing
        }
        subject.last_at = at;
        let previous = subject
            .current
            .as_ref()
            .map_or(Health::Unknown, |v| v.health);
        let level = match e.severity {
            LogSeverity::Critical => Health::Critical,
            LogSeverity::Warning => Health::Warning,
            LogSeverity::Info => Health::Ok,
        };
        let evidence = vec![Evidence {
            kind: "log_entry".into(),
            detail: format!(
                "{} #{}: {}{} from {}",
                e.log_id,
                e.entry_id,
                e.message,
                e.message_id
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default(),
                e.source
            ),
            observed_at: at,
        }];
        let v = if level > Health::Ok {
            server.log_active.insert(key.clone(), at);
            if level <= previous {
                return changes; // a repeat, or milder than what holds: one change, not a storm
            }
            Verdict {
                health: level,
                classification: classify_log(&e).into(),
                message: e.message.clone(),
                evidence,
                since: at,
            }
        } else if targeted && previous > Health::Ok {
            server.log_active.remove(&key);
            Verdict {
                health: Health::Ok,
                classification: String::new(),
                message: format!("cleared by a later entry: {}", e.message),
                evidence,
                since: at,
            }
        } else {
            return changes;
        };
        let event_classification = event_class(subject.current.as_ref(), &v);
        subject.current = Some(v.clone());
        changes.push(Change {
            server_id: e.server_id.clone(),
            component_id: Some(key),
            previous,
            verdict: v,
            event_classification,
        });
        changes.extend(rollup(&e.server_id, server, at));
        changes
    }

    /// Judges a server's TPM registration: a pending EK change is critical (the machine may not
    /// be the one that was registered), a rejected enrollment a warning.
    fn on_tpm(&mut self, reg: TpmRegistration, at: i64) -> Vec<Change> {
        let (health, classification, message) = match reg.status {
            TpmStatus::Pending => return Vec::new(),
            TpmStatus::Verified => (Health::Ok, "", "TPM identity verified".to_string()),
            TpmStatus::Rejected => (Health::Warning, "tpm-unverified", reg.reason.clone()),
            TpmStatus::EkChangedAwaitingApproval => {
                (Health::Critical, "tpm-ek-changed", reg.reason.clone())
            }
        };
        let server = self.servers.entry(reg.server_id.clone()).or_default();
        let subject = server.subjects.entry(TPM_SUBJECT.to_string()).or_default();
        let previous = subject
            .current
            .as_ref()
            .map_or(Health::Unknown, |v| v.health);
        if subject.current.is_some() && previous == health {
            return Vec::new();
        }
        let v = Verdict {
            health,
            classification: classification.into(),
            message,
            evidence: vec![Evidence {
                kind: "tpm".into(),
                detail: format!(
                    "EK {} ({} certificate){}",
                    reg.ek_fingerprint.get(..16).unwrap_or(&reg.ek_fingerprint),
                    if reg.certificate_status.is_empty() {
                        "unchecked"
                    } else {
                        &reg.certificate_status
                    },
                    reg.previous_ek_fingerprint
                        .as_deref()
                        .map(|p| format!(", replacing {}", p.get(..16).unwrap_or(p)))
                        .unwrap_or_default()
                ),
                observed_at: at,
            }],
            since: at,
        };
        let event_classification = event_class(subject.current.as_ref(), &v);
        subject.current = Some(v.clone());
        let mut changes = vec![Change {
            server_id: reg.server_id.clone(),
            component_id: Some(TPM_SUBJECT.to_string()),
            previous,
            verdict: v,
            event_classification,
        }];
        changes.extend(rollup(&reg.server_id, server, at));
        changes
    }

    fn on_snapshot(&mut self, snap: InventorySnapshot) -> Vec<Change> {
        let source = source_name(snap.source);
        let at_key = format!("{}/{source}", snap.server_id);
        if self
            .snapshot_at
            .get(&at_key)
            .is_some_and(|t| *t > snap.collected_at)
        {
            return Vec::new();
        }
        self.snapshot_at.insert(at_key, snap.collected_at);
        let server = self.servers.entry(snap.server_id.clone()).or_default();
        let mut changes = Vec::new();
        for c in &snap.components {
            let Some(v) = component_verdict(c, source, snap.collected_at) else {
                continue;
            };
            let subject = server.subjects.entry(c.component_id.clone()).or_default();
            subject.sources.remove(RESTORED);
            subject.sources.insert(source.to_string(), v);
            let Some(worst) = worst_of(subject.sources.values()) else {
                continue;
            };
            let previous = subject
                .current
                .as_ref()
                .map_or(Health::Unknown, |v| v.health);
            if subject.current.is_some() && worst.health == previous {
                continue;
            }
            let mut v = worst.clone();
            v.since = snap.collected_at;
            let event_classification = event_class(subject.current.as_ref(), &v);
            subject.current = Some(v.clone());
            changes.push(Change {
                server_id: snap.server_id.clone(),
                component_id: Some(c.component_id.clone()),
                previous,
                verdict: v,
                event_classification,
            });
        }
        if !changes.is_empty() {
            changes.extend(rollup(&snap.server_id, server, snap.collected_at));
        }
        changes
    }

    fn publish(
        &self,
        changes: Vec<Change>,
        out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        if changes.is_empty() {
            return Ok(());
        }
        let (ev_spec, ev_id) = self.codec.spec(HEALTH_EVENTS)?;
        let (st_spec, st_id) = self.codec.spec(HEALTH_STATE)?;
        for c in changes {
            let v = c.verdict;
            let baseline_ok = c.previous == Health::Unknown && v.health == Health::Ok;
            if !baseline_ok {
                let ev = HealthEvent {
                    server_id: c.server_id.clone(),
                    component_id: c.component_id.clone(),
                    previous: c.previous,
                    health: v.health,
                    classification: c.event_classification,
                    message: v.message.clone(),
                    evidence: v.evidence.clone(),
                    raised_at: v.since,
                };
                let bytes = encode(ev_spec, ev_id, &ev)
                    .map_err(|e| Rejection(format!("cannot encode a health event: {e}")))?;
                out.push((
                    HEALTH_EVENTS.to_string(),
                    Record::new(c.server_id.clone(), bytes).with_timestamp(v.since),
                ));
            }
            let key = state_key(&c.server_id, c.component_id.as_deref());
            let st = HealthState {
                server_id: c.server_id,
                component_id: c.component_id,
                health: v.health,
                classification: v.classification,
                message: v.message,
                evidence: v.evidence,
                since: v.since,
            };
            let bytes = encode(st_spec, st_id, &st)
                .map_err(|e| Rejection(format!("cannot encode a health state: {e}")))?;
            out.push((
                HEALTH_STATE.to_string(),
                Record::new(key, bytes).with_timestamp(st.since),
            ));
        }
        Ok(())
    }
}

/// The `health.state` key of a server (`component_id` `None`: `server_id/`) or a subject.
pub fn state_key(server_id: &str, component_id: Option<&str>) -> String {
    format!("{server_id}/{}", component_id.unwrap_or(""))
}

/// The event's classification: a recovery keeps the class of the problem that cleared.
fn event_class(before: Option<&Verdict>, now: &Verdict) -> String {
    match before {
        Some(b) if now.health == Health::Ok && !b.classification.is_empty() => {
            b.classification.clone()
        }
        _ => now.classification.clone(),
    }
}

fn worst_of<'a>(vs: impl Iterator<Item = &'a Verdict>) -> Option<&'a Verdict> {
    let mut best: Option<&Verdict> = None;
    for v in vs {
        if best.is_none_or(|b| v.health > b.health) {
            best = Some(v);
        }
    }
    best
}

/// Recomputes a server's roll-up; a change if its health moved.
fn rollup(server_id: &str, server: &mut ServerHealth, at: i64) -> Option<Change> {
    let mut judged: Vec<(&String, &Verdict)> = server
        .subjects
        .iter()
        .filter_map(|(k, s)| Some((k, s.current.as_ref()?)))
        .collect();
    // Worst first, then by id: a deterministic cause.
    judged.sort_by(|a, b| b.1.health.cmp(&a.1.health).then(a.0.cmp(b.0)));
    let (worst_id, worst) = *judged.first()?;
    let previous = server.rollup.as_ref().map_or(Health::Unknown, |v| v.health);
    if server.rollup.is_some() && worst.health == previous {
        return None;
    }
    let bad: Vec<&(&String, &Verdict)> = judged
        .iter()
        .filter(|(_, v)| v.health > Health::Ok)
        .collect();
    let v = if bad.is_empty() {
        Verdict {
            health: worst.health,
            classification: String::new(),
            message: format!(
                "{server_id}: all {} monitored components are healthy",
                judged.len()
            ),
            evidence: Vec::new(),
            since: at,
        }
    } else {
        let mut evidence: Vec<Evidence> = bad
            .iter()
            .take(ROLLUP_EVIDENCE_MAX)
            .map(|(id, v)| Evidence {
                kind: "status".into(),
                detail: format!("{id}: {:?} ({})", v.health, v.classification),
                observed_at: v.since,
            })
            .collect();
        evidence.extend(worst.evidence.iter().cloned());
        Verdict {
            health: worst.health,
            classification: worst.classification.clone(),
            message: format!(
                "{server_id} is {}: {}{}",
                health_word(worst.health),
                worst.message,
                if bad.len() > 1 {
                    format!(" (and {} more)", bad.len() - 1)
                } else {
                    String::new()
                }
            ),
            evidence,
            since: at,
        }
    };
    let event_classification = event_class(server.rollup.as_ref(), &v);
    tracing::debug!(server_id, cause = %worst_id, health = ?v.health, "server health changed");
    server.rollup = Some(v.clone());
    Some(Change {
        server_id: server_id.to_string(),
        component_id: None,
        previous,
        verdict: v,
        event_classification,
    })
}

fn health_word(h: Health) -> &'static str {
    match h {
        Health::Unknown => "UNKNOWN",
        Health::Ok => "OK",
        Health::Warning => "WARNING",
        Health::Critical => "CRITICAL",
    }
}

/// A voltage sensor on a power supply's input: 0 V there is a lost feed, thresholds or not.
fn is_psu_input(t: &TelemetryReading) -> bool {
    if t.kind != SensorKind::Voltage {
        return false;
    }
    let name = t.name.to_lowercase();
    let comp = t.component_id.as_deref().unwrap_or("").to_lowercase();
    let psu = name.contains("psu")
        || name.contains("power supply")
        || name.contains("powersupply")
        || comp.starts_with("psu");
    psu && (name.contains("input") || name.contains("vin") || name.contains("line"))
}

/// The worst threshold `t` is beyond, with thresholds moved towards normal by `frac` of their
/// magnitude (0 to enter a state; the hysteresis fraction to judge whether it may be left).
fn crossing(r: &TelemetryReading, t: &Thresholds, frac: f64, psu_input: bool) -> Option<Crossing> {
    let v = r.value;
    if !v.is_finite() {
        return None;
    }
    if psu_input && v <= 0.0 {
        return Some(Crossing {
            level: Health::Critical,
            upper: false,
            which: "critical",
            threshold: t.lower_critical.unwrap_or(0.0),
            special: Some("psu-input-lost"),
        });
    }
    if r.kind == SensorKind::Fan && v <= 0.0 && t.lower_critical.is_some() {
        return Some(Crossing {
            level: Health::Critical,
            upper: false,
            which: "critical",
            threshold: t.lower_critical.unwrap_or(0.0),
            special: Some("fan-stopped"),
        });
    }
    let m = |x: f64| x.abs() * frac;
    let up = |x: Option<f64>| x.filter(|x| v >= x - m(*x));
    let down = |x: Option<f64>| x.filter(|x| v <= x + m(*x));
    let make = |level, upper, which, threshold| Crossing {
        level,
        upper,
        which,
        threshold,
        special: None,
    };
    if let Some(x) = up(t.upper_critical) {
        return Some(make(Health::Critical, true, "critical", x));
    }
    if let Some(x) = down(t.lower_critical) {
        return Some(make(Health::Critical, false, "critical", x));
    }
    if let Some(x) = up(t.upper_caution) {
        return Some(make(Health::Warning, true, "caution", x));
    }
    if let Some(x) = down(t.lower_caution) {
        return Some(make(Health::Warning, false, "caution", x));
    }
    None
}

fn unit_label(unit: &str) -> &str {
    match unit {
        "Cel" => "°C",
        u => u,
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    let u = unit_label(unit);
    if unit == "RPM" {
        format!("{v:.0} {u}")
    } else {
        format!("{v:.1} {u}")
    }
}

fn reading_evidence(t: &TelemetryReading) -> Evidence {
    let on = t
        .component_id
        .as_deref()
        .map(|c| format!(" on {c}"))
        .unwrap_or_default();
    Evidence {
        kind: "reading".into(),
        detail: format!(
            "{} (sensor {}{on}) = {} from {}",
            t.name,
            t.sensor_id,
            fmt_value(t.value, &t.unit),
            t.source
        ),
        observed_at: t.timestamp,
    }
}

fn classify(r: &TelemetryReading, c: &Crossing) -> &'static str {
    match (c.special, r.kind, c.upper) {
        (Some("psu-input-lost"), _, _) => "psu-failure",
        (Some(_), _, _) | (None, SensorKind::Fan, false) => "fan-failure",
        (None, SensorKind::Temperature, true) => "overtemperature",
        _ => "sensor-threshold",
    }
}

/// The verdict a sensor moves to, `c` being the threshold it is (still) beyond, if any.
fn sensor_verdict(
    r: &TelemetryReading,
    t: &Thresholds,
    c: Option<Crossing>,
    previous: Health,
    mut evidence: Vec<Evidence>,
) -> Verdict {
    let value = fmt_value(r.value, &r.unit);
    let (health, classification, message) = match c {
        None => {
            let msg = if previous == Health::Unknown {
                format!("{} at {value} is within its thresholds", r.name)
            } else {
                format!("{} at {value} is back within its thresholds", r.name)
            };
            (Health::Ok, String::new(), msg)
        }
        Some(c) => {
            let th = fmt_value(c.threshold, &r.unit);
            let msg = match c.special {
                Some("psu-input-lost") => {
                    format!("{} at {value}: the power supply has lost its input", r.name)
                }
                Some(_) => format!(
                    "{} at {value}: the fan has stopped (lower critical threshold {th})",
                    r.name
                ),
                None if c.level < previous => format!(
                    "{} at {value} is no longer {} but still near its {} threshold {th}",
                    r.name,
                    health_word(previous),
                    c.which
                ),
                None => format!(
                    "{} at {value} is {} its {} threshold {th}",
                    r.name,
                    if c.upper { "above" } else { "below" },
                    c.which
                ),
            };
            (c.level, classify(r, &c).to_string(), msg)
        }
    };
    let bmc = r.thresholds.clone().unwrap_or_default();
    let origin = |ours: Option<f64>, theirs: Option<f64>| {
        if ours == theirs { "BMC" } else { "override" }
    };
    let named = [
        ("upper_critical", t.upper_critical, bmc.upper_critical),
        ("upper_caution", t.upper_caution, bmc.upper_caution),
        ("lower_caution", t.lower_caution, bmc.lower_caution),
        ("lower_critical", t.lower_critical, bmc.lower_critical),
    ];
    for (name, ours, theirs) in named {
        let relevant = match c {
            Some(c) => name == format!("{}_{}", if c.upper { "upper" } else { "lower" }, c.which),
            None => true,
        };
        if let (true, Some(x)) = (relevant, ours) {
            evidence.push(Evidence {
                kind: "threshold".into(),
                detail: format!(
                    "{name} = {} ({})",
                    fmt_value(x, &r.unit),
                    origin(ours, theirs)
                ),
                observed_at: r.timestamp,
            });
        }
    }
    Verdict {
        health,
        classification,
        message,
        evidence,
        since: r.timestamp,
    }
}

/// What a log entry is about: its component, else its sensor, else the log as a whole.
fn log_target(e: &HardwareLogEntry) -> &str {
    e.component_id
        .as_deref()
        .or(e.sensor_id.as_deref())
        .unwrap_or(&e.log_id)
}

/// The class of problem a log entry names, from its registry message id and text.
fn classify_log(e: &HardwareLogEntry) -> &'static str {
    let text = format!(
        "{} {} {}",
        e.message_id.as_deref().unwrap_or(""),
        e.message,
        e.component_id.as_deref().unwrap_or("")
    )
    .to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
    // The part that failed before the part it sits on: "CPUFan1 failed" is a fan, "CPU1 Temp
    // going high" and "DIMM temperature" are heat, not processor or memory errors.
    let hot = has(&["temperature", "thermal", "overheat"])
        || (text.contains("temp") && !text.contains("attempt"));
    if has(&["fan"]) {
        "fan-failure"
    } else if hot {
        "overtemperature"
    } else if has(&["uncorrectable", "ecc", "memory", "dimm", "edac"]) {
        "memory-errors"
    } else if has(&["machine check", "mce", "ierr", "processor", "cpu"]) {
        "cpu-errors"
    } else if has(&[
        "power supply",
        "psu",
        "powersupply",
        "ac lost",
        "input lost",
    ]) {
        "psu-failure"
    } else if has(&["drive", "disk", "nvme", "smart", "i/o error", "storage"]) {
        "disk-failure"
    } else {
        "hardware-log"
    }
}

fn source_name(s: InventorySource) -> &'static str {
    match s {
        InventorySource::Unknown => "unknown",
        InventorySource::Agent => "agent",
        InventorySource::Redfish => "redfish",
        InventorySource::Ipmi => "ipmi",
    }
}

fn parse_health(s: &str) -> Option<Health> {
    match s.trim().to_ascii_lowercase().as_str() {
        "ok" => Some(Health::Ok),
        "warning" => Some(Health::Warning),
        "critical" => Some(Health::Critical),
        _ => None,
    }
}

/// A collector's verdict about a component, if it reported a status or a predicted failure.
fn component_verdict(c: &Component, source: &str, at: i64) -> Option<Verdict> {
    let drive = matches!(c.kind, ComponentKind::Disk | ComponentKind::Nvme);
    let status = c
        .properties
        .get("health")
        .and_then(|raw| Some((raw, parse_health(raw)?)));
    let predicted = drive
        && c.properties
            .get("predicted_failure")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if status.is_none() && !predicted {
        return None;
    }
    let label = format!("{} ({})", c.name, c.component_id);
    let mut evidence = Vec::new();
    let mut verdict = Verdict {
        health: Health::Ok,
        classification: String::new(),
        message: format!("{label} reports OK"),
        evidence: Vec::new(),
        since: at,
    };
    if let Some((raw, h)) = status {
        evidence.push(Evidence {
            kind: "status".into(),
            detail: format!("{source}: Status.Health = {raw}"),
            observed_at: at,
        });
        if h != Health::Ok {
            let class = match c.kind {
                ComponentKind::Psu => "psu-failure",
                ComponentKind::Dimm => "memory-errors",
                ComponentKind::Fan => "fan-failure",
                ComponentKind::Disk | ComponentKind::Nvme if source == "agent" => "disk-failure",
                _ if source == "agent" => "agent-reported",
                _ => "bmc-reported",
            };
            verdict.health = h;
            verdict.classification = class.into();
            verdict.message = format!("{label} reports {} health via {source}", health_word(h));
        }
    }
    if predicted {
        evidence.push(Evidence {
            kind: "status".into(),
            detail: format!("{source}: FailurePredicted = true"),
            observed_at: at,
        });
        if verdict.health < Health::Warning {
            verdict.health = Health::Warning;
            verdict.classification = "disk-predicted-failure".into();
            verdict.message = format!("{label} predicts its own failure ({source})");
        }
    }
    verdict.evidence = evidence;
    Some(verdict)
}

impl Processor for HealthProcessor {
    fn name(&self) -> &'static str {
        "health"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![
            TELEMETRY_READINGS,
            INVENTORY_SNAPSHOTS,
            TELEMETRY_LOGS,
            TPM_REGISTRATIONS,
        ]
    }

    fn changelog(&self) -> Option<&'static str> {
        Some(HEALTH_STATE)
    }

    fn restore(&mut self, r: &ConsumedRecord) {
        let Some(key) = r
            .record
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
        else {
            return;
        };
        if r.record.value.is_none() {
            let Some((server, comp)) = key.split_once('/') else {
                return;
            };
            if let Some(s) = self.servers.get_mut(server) {
                if comp.is_empty() {
                    s.rollup = None;
                } else {
                    s.subjects.remove(comp);
                }
            }
            return;
        }
        let st: HealthState = match self.codec.decode(HEALTH_STATE, r) {
            Ok(s) => s,
            Err(Rejection(e)) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable health.state record");
                return;
            }
        };
        let v = Verdict::from_state(&st);
        let server = self.servers.entry(st.server_id.clone()).or_default();
        let Some(comp) = st.component_id.filter(|c| !c.is_empty()) else {
            server.rollup = Some(v);
            return;
        };
        let subject = server.subjects.entry(comp.clone()).or_default();
        subject.streak.clear();
        subject.streak_target = None;
        subject.sources.clear();
        if comp.starts_with(LOG_PREFIX) {
            if v.health > Health::Ok {
                server.log_active.insert(comp.clone(), v.since);
            } else {
                server.log_active.remove(&comp);
            }
            subject.last_at = v.since;
        } else if !comp.starts_with(SENSOR_PREFIX) {
            // The collectors behind the verdict, as its status evidence names them.
            for e in v.evidence.iter().filter(|e| e.kind == "status") {
                if let Some((src, _)) = e.detail.split_once(": ") {
                    subject.sources.insert(src.to_string(), v.clone());
                }
            }
            if subject.sources.is_empty() {
                subject.sources.insert(RESTORED.to_string(), v.clone());
            }
        }
        subject.current = Some(v);
    }

    fn process(
        &mut self,
        r: &ConsumedRecord,
        out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        // Checked before any state changes, so a record is either applied and published or not.
        self.codec.spec(HEALTH_EVENTS)?;
        self.codec.spec(HEALTH_STATE)?;
        let changes = match r.topic.as_str() {
            TELEMETRY_READINGS => {
                let t: TelemetryReading = self.codec.decode(TELEMETRY_READINGS, r)?;
                self.on_reading(t)
            }
            INVENTORY_SNAPSHOTS => {
                let s: InventorySnapshot = self.codec.decode(INVENTORY_SNAPSHOTS, r)?;
                self.on_snapshot(s)
            }
            TELEMETRY_LOGS => {
                let e: HardwareLogEntry = self.codec.decode(TELEMETRY_LOGS, r)?;
                self.on_log(e)
            }
            TPM_REGISTRATIONS => {
                let reg: TpmRegistration = self.codec.decode(TPM_REGISTRATIONS, r)?;
                let at = reg
                    .attempted_at
                    .or(r.record.timestamp_ms)
                    .unwrap_or_default();
                self.on_tpm(reg, at)
            }
            other => return Err(Rejection(format!("unexpected topic {other}"))),
        };
        self.publish(changes, out)
    }
}
