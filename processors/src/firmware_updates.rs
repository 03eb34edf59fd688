//! The firmware-updates processor: keeps every server's answer to "what can I update, and how
//! urgently" (`firmware.updates`, key SMBIOS UUID) true as the fleet and the catalogs change.
//!
//! A server is matched again when its inventory changes (a new `inventory.latest` record, e.g.
//! after a firmware update) and every server this instance answers for is matched again when a
//! catalog entry is added, changed or removed (`firmware.catalog`). A record is published only
//! when the answer differs from the last one published (the changelog), so a re-read or a
//! restart publishes nothing new.
//!
//! Both inputs are global tables, read whole by every instance: a server's sources (agent,
//! Redfish, IPMI) sit in different partitions of `inventory.latest`, and every server needs the
//! whole catalog. The group's assignment of `inventory.latest` partitions decides which servers
//! an instance answers for when the catalog changes: those with a source in its partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automata_fwcatalog::{
    AppliesTo, CatalogEntry, Criticality, Hashes, InstalledComponent, MatchVerdict, PciId,
    match_component,
};
use automata_log::{ConsumedRecord, Record};
use automata_schemas::SchemaIds;
use automata_schemas::catalog::{FIRMWARE_CATALOG, FIRMWARE_UPDATES, INVENTORY_LATEST};
use automata_schemas::types::{
    FirmwareCatalogEntry, FirmwareUpdateComponent, FirmwareUpdateStatus, InventorySnapshot,
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

/// The latest inventory per server and source, the catalogs, and what was last published.
pub struct FirmwareUpdatesProcessor {
    codec: RecordCodec,
    /// server → `server/source` key → the latest inventory from that source.
    inventories: HashMap<String, BTreeMap<String, InventorySnapshot>>,
    /// server → the `inventory.latest` partitions its sources are in.
    partitions: HashMap<String, BTreeSet<i32>>,
    /// `catalog/entry` → entry.
    catalog: BTreeMap<String, CatalogEntry>,
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

    /// The record to publish for `server` now, if it differs from the last one: `Some(None)`
    /// is a tombstone (no catalog entry applies to it any more).
    fn evaluate(&self, server: &str, now: i64) -> Option<Option<FirmwareUpdateStatus>> {
        let entries: Vec<&CatalogEntry> = self.catalog.values().collect();
        let sources = self.inventories.get(server).map(|s| s.values());
        let matches = match_server(server, sources.into_iter().flatten(), &entries);
        let status = update_statuses(&matches, entries.len(), now).pop();
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
}

fn record_key(r: &ConsumedRecord) -> Option<String> {
    r.record
        .key
        .as_deref()
        .map(|k| String::from_utf8_lossy(k).into_owned())
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
        vec![FIRMWARE_CATALOG, INVENTORY_LATEST]
    }

    fn global(&mut self, r: &ConsumedRecord) {
        let applied = if r.topic == FIRMWARE_CATALOG {
            self.apply_catalog(r)
        } else {
            self.apply_inventory(r).map(|_| ())
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
            match next {
                None => self.published.remove(&server),
                Some(status) => self.published.insert(server, status),
            };
        }
    }
}
