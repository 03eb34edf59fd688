//! The firmware-updates processor: keeps every server's answer to "what can I update, and how
//! urgently" (`firmware.updates`, key SMBIOS UUID) true as the fleet and the catalogs change.
//!
//! A server is matched again when its inventory changes (a new `inventory.latest` record, e.g.
//! after a firmware update) and every server this instance answers for is matched again when a
//! catalog entry is added, changed or removed (`firmware.catalog`). A record is published only
//! when the answer differs from the last one published (the changelog), so a re-read or a
//! restart publishes nothing new.
//!
//! The same pass matches what each server runs against the rule pack's advisories
//! (`firmware.advisories`, published by `firmware rules update`): the record lists the advisories
//! that affect it, and every advisory that starts or stops affecting a server is published to
//! `firmware.findings` as a `VULN-<id>` finding (source `inventory`), `open` or `resolved`. So a
//! server updated past the fixed version, or an advisory withdrawn, resolves its findings.
//!
//! All three inputs are global tables, read whole by every instance: a server's sources (agent,
//! Redfish, IPMI) sit in different partitions of `inventory.latest`, and every server needs the
//! whole catalog. The group's assignment of `inventory.latest` partitions decides which servers
//! an instance answers for when the catalog changes: those with a source in its partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automata_fwcatalog::{
    AppliesTo, CatalogEntry, Criticality, Hashes, InstalledComponent, MatchVerdict, PciId,
    match_component,
};
use automata_fwscan::advisory::{Advisory, Subject};
use automata_log::{ConsumedRecord, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{
    FIRMWARE_ADVISORIES, FIRMWARE_CATALOG, FIRMWARE_FINDINGS, FIRMWARE_UPDATES, INVENTORY_LATEST,
};
use automata_schemas::types::{
    FirmwareAdvisory, FirmwareAdvisoryRange, FirmwareCatalogEntry, FirmwareFinding,
    FirmwareUpdateAdvisory, FirmwareUpdateComponent, FirmwareUpdateStatus, InventorySnapshot,
};

use crate::codec::RecordCodec;
use crate::runtime::{Processor, Rejection};

/// One component of one server matched against the catalogs.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentMatch {
    /// SMBIOS UUID.
    pub server: String,
    /// The inventory's component id.
    pub component_id: String,
    /// The component's name.
    pub name: Option<String>,
    /// The running version.
    pub installed: String,
    /// bios, bmc, nic, ...
    pub kind: String,
    /// The catalogs' answer.
    pub verdict: MatchVerdict,
}

/// One `firmware.updates` record per server that any catalog entry applies to, from the
/// matches of its components against `entries` catalog entries at `now`.
pub fn update_statuses(
    matches: &[ComponentMatch],
    entries: usize,
    now: i64,
) -> Vec<FirmwareUpdateStatus> {
    let mut by_server: BTreeMap<&str, FirmwareUpdateStatus> = BTreeMap::new();
    for m in matches {
        let st = by_server
            .entry(m.server.as_str())
            .or_insert_with(|| FirmwareUpdateStatus {
                server_id: m.server.clone(),
                evaluated_at: now,
                catalog_entries: entries as i64,
                updates_available: 0,
                critical_updates: 0,
                components: Vec::new(),
                advisories: Vec::new(),
            });
        let (verdict, latest, criticality, entry_key) = match &m.verdict {
            MatchVerdict::UpdateAvailable {
                latest,
                entry_key,
                criticality,
                ..
            } => {
                st.updates_available += 1;
                if *criticality == Criticality::Critical {
                    st.critical_updates += 1;
                }
                let crit = serde_json::to_value(criticality)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string));
                ("update-available", Some(latest), crit, Some(entry_key))
            }
            MatchVerdict::Current { version, entry_key } => {
                ("current", Some(version), None, Some(entry_key))
            }
            MatchVerdict::NotListed { latest, .. } => ("not-listed", Some(latest), None, None),
            MatchVerdict::NoMatch => continue,
        };
        st.components.push(FirmwareUpdateComponent {
            component_id: m.component_id.clone(),
            kind: m.kind.clone(),
            name: m.name.clone(),
            installed: m.installed.clone(),
            verdict: verdict.into(),
            latest: latest.cloned(),
            criticality,
            entry_key: entry_key.cloned(),
        });
    }
    by_server.into_values().collect()
}

/// A `firmware.catalog` record as the matcher's entry (the inverse of the sync's event).
pub fn catalog_entry(e: &FirmwareCatalogEntry) -> CatalogEntry {
    let mut entry = CatalogEntry::new(&e.catalog, e.entry_id.clone(), e.vendor.clone());
    entry.component_type = e.component_type.clone();
    entry.name = e.name.clone();
    entry.version = e.version.clone();
    entry.release_date = e.release_date.clone();
    entry.criticality = Criticality::from_word(&e.criticality);
    entry.url = e.url.clone();
    entry.size = e.size.and_then(|s| u64::try_from(s).ok());
    entry.hashes = Hashes {
        sha256: e.sha256.clone(),
        sha1: e.sha1.clone(),
        md5: e.md5.clone(),
    };
    entry.reboot = e.reboot;
    entry.applies_to = AppliesTo {
        system_ids: e.system_ids.clone(),
        models: e.models.clone(),
        // A PCI id the sync wrote is well formed; one that is not cannot match anything.
        pci_ids: e
            .pci_ids
            .iter()
            .filter_map(|p| p.parse::<PciId>().ok())
            .collect(),
        guids: e.guids.clone(),
        software_ids: e.software_ids.clone(),
    };
    entry
}

/// The matches of every versioned component of one server's inventories (one per source).
pub fn match_server<'a>(
    server: &str,
    sources: impl IntoIterator<Item = &'a InventorySnapshot>,
    entries: &[&CatalogEntry],
) -> Vec<ComponentMatch> {
    let mut found = Vec::new();
    for snap in sources {
        for c in &snap.components {
            let Some(version) = c.firmware_version.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_lowercase))
                .unwrap_or_default();
            let installed = InstalledComponent {
                kind: kind.clone(),
                model: snap.system.product.clone(),
                system_id: snap.system.sku.clone(),
                software_id: c.properties.get("software_id").cloned(),
                firmware_version: version.to_string(),
                ..Default::default()
            };
            let verdict = match_component(entries.iter().copied(), &installed);
            if verdict == MatchVerdict::NoMatch {
                continue;
            }
            found.push(ComponentMatch {
                server: server.to_string(),
                component_id: c.component_id.clone(),
                name: Some(c.name.clone()),
                installed: installed.firmware_version,
                kind,
                verdict,
            });
        }
    }
    found.sort_by(|a, b| a.component_id.cmp(&b.component_id));
    found
}

/// A `firmware.advisories` record as the scanner's advisory; `None` when withdrawn, or when it
/// does not read as one (a severity the scanner cannot rank: logged). The record is the
/// advisory's own serde shape plus the pack's bookkeeping, so one conversion serves.
pub fn advisory(a: &FirmwareAdvisory) -> Option<Advisory> {
    if a.withdrawn {
        return None;
    }
    serde_json::to_value(a)
        .and_then(serde_json::from_value)
        .map_err(|e| tracing::warn!(advisory = %a.id, error = %e, "advisory ignored"))
        .ok()
}

/// The `firmware.advisories` record of one of a pack's advisories (the inverse of [`advisory`]).
pub fn advisory_record(
    a: &Advisory,
    rule_pack: &str,
    withdrawn: bool,
    now: i64,
) -> FirmwareAdvisory {
    FirmwareAdvisory {
        id: a.id.clone(),
        title: a.title.clone(),
        severity: a.severity.as_str().to_string(),
        vendor: a.vendor.clone(),
        component: a.component.clone(),
        names: a.names.clone(),
        models: a.models.clone(),
        ranges: a
            .ranges
            .iter()
            .map(|r| FirmwareAdvisoryRange {
                introduced: r.introduced.clone(),
                fixed: r.fixed.clone(),
                last_affected: r.last_affected.clone(),
            })
            .collect(),
        references: a.references.clone(),
        rule_pack: rule_pack.to_string(),
        withdrawn,
        published_at: now,
    }
}

/// The advisories that affect what one server runs (every versioned component of every source,
/// and the BIOS), sorted and without repeats (two sources often report the same BIOS).
///
/// A component is judged by the source that saw it last: after an in-band update the agent
/// reports the new version before the BMC's next poll, and the stale copy must not keep an
/// advisory open.
pub fn server_advisories<'a>(
    sources: impl IntoIterator<Item = &'a InventorySnapshot>,
    advisories: &[&Advisory],
) -> Vec<FirmwareUpdateAdvisory> {
    let mut found = BTreeSet::new();
    if advisories.is_empty() {
        return Vec::new();
    }
    let mut sources: Vec<&InventorySnapshot> = sources.into_iter().collect();
    sources.sort_by_key(|s| std::cmp::Reverse(s.collected_at));
    let mut judged: BTreeSet<String> = BTreeSet::new();
    for snap in sources {
        let model = snap.system.product.clone();
        let components = snap.components.iter().filter_map(|c| {
            let version = c.firmware_version.as_deref()?;
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_lowercase));
            Some((
                c.component_id.clone(),
                Subject {
                    vendor: c.manufacturer.clone(),
                    component: kind,
                    name: Some(c.name.clone()),
                    model: model.clone(),
                    version: version.to_string(),
                },
            ))
        });
        let bios = snap.bios.as_ref().and_then(|b| {
            Some((
                "bios".to_string(),
                Subject {
                    vendor: b.vendor.clone(),
                    component: Some("bios".into()),
                    name: Some("BIOS".into()),
                    model: model.clone(),
                    version: b.version.clone()?,
                },
            ))
        });
        for (component_id, subject) in components.chain(bios) {
            if !judged.insert(component_id.clone()) {
                continue;
            }
            for a in advisories.iter().filter(|a| a.affects(&subject)) {
                let version = subject.version.trim();
                let fix = a
                    .ranges
                    .iter()
                    .find(|r| r.contains(version))
                    .and_then(|r| r.fixed.as_deref())
                    .map_or_else(
                        || "no fixed version known".to_string(),
                        |f| format!("fixed in {f}"),
                    );
                let what = [subject.vendor.as_deref(), subject.name.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" ");
                found.insert(FirmwareUpdateAdvisory {
                    id: a.id.clone(),
                    severity: a.severity.as_str().to_string(),
                    title: a.title.clone(),
                    component_id: component_id.clone(),
                    installed: version.to_string(),
                    subject: format!("{}: {what} {version} ({fix})", a.title),
                });
            }
        }
    }
    found.into_iter().collect()
}

/// The `firmware.findings` record of one advisory on one server: `open` while it affects the
/// server, `resolved` once it no longer does.
pub fn advisory_finding(
    server: &str,
    a: &FirmwareUpdateAdvisory,
    rule_pack: &str,
    state: &str,
    now: i64,
) -> FirmwareFinding {
    FirmwareFinding {
        target: server.to_string(),
        target_kind: "server".into(),
        rule_id: format!("VULN-{}", a.id),
        severity: a.severity.clone(),
        source: "inventory".into(),
        subject: a.subject.clone(),
        container_path: Some(format!("component {}", a.component_id)),
        offset: None,
        variable: None,
        cert_subject: None,
        cert_issuer: None,
        cert_sha1: None,
        cert_not_after: None,
        hash: None,
        detail: Some(format!("{} {}", a.id, a.title)),
        rule_pack: rule_pack.to_string(),
        first_seen: now,
        state: state.into(),
    }
}

/// The latest inventory per server and source, the catalogs, and what was last published.
pub struct FirmwareUpdatesProcessor {
    codec: RecordCodec,
    /// server → `server/source` key → the latest inventory from that source.
    inventories: HashMap<String, BTreeMap<String, InventorySnapshot>>,
    /// server → the `inventory.latest` partitions its sources are in.
    partitions: HashMap<String, BTreeSet<i32>>,
    /// `catalog/entry` → entry.
    catalog: BTreeMap<String, CatalogEntry>,
    /// Advisory id → the advisory in force, with the version of the pack that published it.
    advisories: BTreeMap<String, (Advisory, String)>,
    /// server → the last `firmware.updates` record published.
    published: HashMap<String, FirmwareUpdateStatus>,
    /// `inventory.latest` partitions this instance owns.
    owned: BTreeSet<i32>,
    /// Servers to match again at the end of the batch.
    dirty: BTreeSet<String>,
    /// A catalog entry changed: every owned server is to be matched again.
    catalog_changed: bool,
}

impl FirmwareUpdatesProcessor {
    /// A processor that reads and writes with the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        FirmwareUpdatesProcessor {
            codec: RecordCodec::new(ids),
            inventories: HashMap::new(),
            partitions: HashMap::new(),
            catalog: BTreeMap::new(),
            advisories: BTreeMap::new(),
            published: HashMap::new(),
            owned: BTreeSet::new(),
            dirty: BTreeSet::new(),
            catalog_changed: false,
        }
    }

    /// The last record published for `server` (for tests and diagnostics).
    pub fn published(&self, server: &str) -> Option<&FirmwareUpdateStatus> {
        self.published.get(server)
    }

    /// Applies an `inventory.latest` record; the server it is about.
    fn apply_inventory(&mut self, r: &ConsumedRecord) -> Result<Option<String>, Rejection> {
        let Some(key) = record_key(r) else {
            return Ok(None);
        };
        // The key is `server_id/source`; the server id itself may not contain '/'.
        let server = key
            .split_once('/')
            .map_or(key.as_str(), |(s, _)| s)
            .to_string();
        match r.record.value.as_deref() {
            None => {
                if let Some(sources) = self.inventories.get_mut(&server) {
                    sources.remove(&key);
                }
            }
            Some(_) => {
                let snap: InventorySnapshot = self.codec.decode(INVENTORY_LATEST, r)?;
                let sources = self.inventories.entry(server.clone()).or_default();
                if sources
                    .get(&key)
                    .is_some_and(|prev| prev.collected_at > snap.collected_at)
                {
                    return Ok(Some(server));
                }
                sources.insert(key, snap);
            }
        }
        self.partitions
            .entry(server.clone())
            .or_default()
            .insert(r.partition);
        Ok(Some(server))
    }

    /// Applies a `firmware.catalog` record.
    fn apply_catalog(&mut self, r: &ConsumedRecord) -> Result<(), Rejection> {
        let Some(key) = record_key(r) else {
            return Ok(());
        };
        match r.record.value.as_deref() {
            None => {
                self.catalog.remove(&key);
            }
            Some(_) => {
                let e: FirmwareCatalogEntry = self.codec.decode(FIRMWARE_CATALOG, r)?;
                self.catalog.insert(key, catalog_entry(&e));
            }
        }
        self.catalog_changed = true;
        Ok(())
    }

    /// Applies a `firmware.advisories` record.
    fn apply_advisory(&mut self, r: &ConsumedRecord) -> Result<(), Rejection> {
        let Some(key) = record_key(r) else {
            return Ok(());
        };
        let parsed = match r.record.value.as_deref() {
            None => None,
            Some(_) => {
                let a: FirmwareAdvisory = self.codec.decode(FIRMWARE_ADVISORIES, r)?;
                advisory(&a).map(|adv| (adv, a.rule_pack))
            }
        };
        match parsed {
            Some(a) => self.advisories.insert(key, a),
            None => self.advisories.remove(&key),
        };
        self.catalog_changed = true;
        Ok(())
    }

    /// The record to publish for `server` now, if it differs from the last one: `Some(None)`
    /// is a tombstone (no catalog entry and no advisory applies to it any more).
    fn evaluate(&self, server: &str, now: i64) -> Option<Option<FirmwareUpdateStatus>> {
        let entries: Vec<&CatalogEntry> = self.catalog.values().collect();
        let advisories: Vec<&Advisory> = self.advisories.values().map(|(a, _)| a).collect();
        let sources = || {
            self.inventories
                .get(server)
                .into_iter()
                .flat_map(|s| s.values())
        };
        let matches = match_server(server, sources(), &entries);
        let affected = server_advisories(sources(), &advisories);
        let mut status = update_statuses(&matches, entries.len(), now).pop();
        if !affected.is_empty() {
            status
                .get_or_insert_with(|| FirmwareUpdateStatus {
                    server_id: server.to_string(),
                    evaluated_at: now,
                    catalog_entries: entries.len() as i64,
                    updates_available: 0,
                    critical_updates: 0,
                    components: Vec::new(),
                    advisories: Vec::new(),
                })
                .advisories = affected;
        }
        let last = self.published.get(server);
        match (&status, last) {
            (None, None) => None,
            (None, Some(_)) => Some(None),
            (Some(new), Some(old)) if same_answer(new, old) => None,
            (Some(_), _) => Some(status),
        }
    }
}

/// Equal but for when they were evaluated.
fn same_answer(a: &FirmwareUpdateStatus, b: &FirmwareUpdateStatus) -> bool {
    a.catalog_entries == b.catalog_entries
        && a.updates_available == b.updates_available
        && a.critical_updates == b.critical_updates
        && a.components == b.components
        && a.advisories == b.advisories
}

fn record_key(r: &ConsumedRecord) -> Option<String> {
    r.record
        .key
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
}

impl FirmwareUpdatesProcessor {
    /// `VULN-*` findings for what changed between the last record published for `server` and
    /// `next`: an advisory that affects it now is `open`, one that no longer does `resolved`.
    fn advisory_findings(
        &self,
        server: &str,
        next: Option<&FirmwareUpdateStatus>,
        now: i64,
        out: &mut Vec<(String, Record)>,
    ) {
        // A finding is known by its rule and subject: several identical parts (eight drives of
        // one model) share one, and it stays open while any of them is affected.
        fn by_finding(
            s: Option<&FirmwareUpdateStatus>,
        ) -> BTreeMap<(&str, &str), &FirmwareUpdateAdvisory> {
            s.into_iter()
                .flat_map(|s| s.advisories.iter())
                .map(|a| ((a.id.as_str(), a.subject.as_str()), a))
                .collect()
        }
        let before = by_finding(self.published.get(server));
        let after = by_finding(next);
        let pack = |id: &str| {
            self.advisories
                .get(id)
                .map_or("withdrawn", |(_, version)| version.as_str())
                .to_string()
        };
        // Resolved ones first: a reader that folds findings by rule alone ends on what is open.
        let resolved = before
            .iter()
            .filter(|(k, _)| !after.contains_key(*k))
            .map(|(_, a)| (*a, "resolved"));
        let opened = after
            .iter()
            .filter(|(k, a)| {
                before
                    .get(*k)
                    .is_none_or(|b| (&b.severity, &b.title) != (&a.severity, &a.title))
            })
            .map(|(_, a)| (*a, "open"));
        for (a, state) in resolved.chain(opened) {
            let finding = advisory_finding(server, a, &pack(&a.id), state, now);
            match self.codec.encode(FIRMWARE_FINDINGS, &finding) {
                Ok(bytes) => out.push((
                    FIRMWARE_FINDINGS.to_string(),
                    Record::new(server.to_string(), bytes).with_timestamp(now),
                )),
                Err(Rejection(e)) => {
                    tracing::error!(server, error = %e, "cannot encode a firmware finding")
                }
            }
        }
    }
}

impl Processor for FirmwareUpdatesProcessor {
    fn name(&self) -> &'static str {
        "firmware-updates"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![INVENTORY_LATEST]
    }

    fn changelog(&self) -> Option<&'static str> {
        Some(FIRMWARE_UPDATES)
    }

    fn restore(&mut self, r: &ConsumedRecord) {
        let Some(key) = record_key(r) else {
            return;
        };
        if r.record.value.is_none() {
            self.published.remove(&key);
            return;
        }
        match self
            .codec
            .decode::<FirmwareUpdateStatus>(FIRMWARE_UPDATES, r)
        {
            Ok(s) => {
                self.published.insert(key, s);
            }
            Err(Rejection(e)) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable firmware.updates record")
            }
        }
    }

    fn globals(&self) -> Vec<&'static str> {
        vec![FIRMWARE_CATALOG, FIRMWARE_ADVISORIES, INVENTORY_LATEST]
    }

    fn global(&mut self, r: &ConsumedRecord) {
        let applied = match r.topic.as_str() {
            FIRMWARE_CATALOG => self.apply_catalog(r),
            FIRMWARE_ADVISORIES => self.apply_advisory(r),
            _ => self.apply_inventory(r).map(|_| ()),
        };
        if let Err(Rejection(e)) = applied {
            tracing::warn!(topic = %r.topic, offset = r.offset, error = %e, "skipping an unreadable record");
        }
    }

    fn assigned(&mut self, partitions: &[(String, i32)]) {
        self.owned = partitions
            .iter()
            .filter(|(t, _)| t == INVENTORY_LATEST)
            .map(|(_, p)| *p)
            .collect();
        // Servers newly ours may have been matched by another instance against an older catalog.
        self.catalog_changed = true;
    }

    fn process(
        &mut self,
        r: &ConsumedRecord,
        _out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        if let Some(server) = self.apply_inventory(r)? {
            self.dirty.insert(server);
        }
        Ok(())
    }

    fn end_batch(&mut self, out: &mut Vec<(String, Record)>) {
        if self.catalog_changed && !self.owned.is_empty() {
            self.catalog_changed = false;
            let owned = &self.owned;
            self.dirty.extend(
                self.partitions
                    .iter()
                    .filter(|(_, ps)| ps.iter().any(|p| owned.contains(p)))
                    .map(|(s, _)| s.clone()),
            );
            // A server whose every inventory is gone loses its record (any instance may say so).
            let gone = self
                .published
                .keys()
                .filter(|s| !self.partitions.contains_key(*s))
                .cloned();
            self.dirty.extend(gone.collect::<Vec<_>>());
        }
        let now = automata_log::now_ms();
        for server in std::mem::take(&mut self.dirty) {
            let Some(next) = self.evaluate(&server, now) else {
                continue;
            };
            let record = match &next {
                None => Record::tombstone(server.clone()),
                Some(status) => match self.codec.encode(FIRMWARE_UPDATES, status) {
                    Ok(bytes) => Record::new(server.clone(), bytes).with_timestamp(now),
                    Err(Rejection(e)) => {
                        tracing::error!(server, error = %e, "cannot encode firmware.updates");
                        continue;
                    }
                },
            };
            out.push((FIRMWARE_UPDATES.to_string(), record));
            self.advisory_findings(&server, next.as_ref(), now, out);
            match next {
                None => self.published.remove(&server),
                Some(status) => self.published.insert(server, status),
            };
        }
    }
}
