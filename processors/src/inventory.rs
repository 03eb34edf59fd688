//! The inventory processor: keeps the latest inventory per server and source (compacted topic
//! `inventory.latest`, also its changelog) and emits a `inventory.changes` event per difference
//! between consecutive snapshots: component added, removed, firmware changed from → to, and
//! identity changes (serial, model, part number).
//!
//! The first snapshot of a server is its baseline: no events. A snapshot that could not read a
//! part of the server (its `errors` are not empty) never reports that part's components as
//! removed: a kind with no component in such a snapshot keeps its previous components.

use std::collections::{BTreeMap, HashMap};

use automata_log::{ConsumedRecord, Record};
use automata_schemas::catalog::{INVENTORY_CHANGES, INVENTORY_LATEST, INVENTORY_SNAPSHOTS};
use automata_schemas::types::{ChangeKind, Component, ComponentChange, InventorySnapshot};
use automata_schemas::{SchemaIds, decode, encode};

use crate::codec::RecordCodec;
use crate::runtime::{Processor, Rejection};

/// Latest inventory per `server_id/source`, and the changes between snapshots.
pub struct InventoryProcessor {
    codec: RecordCodec,
    latest: HashMap<String, InventorySnapshot>,
}

/// The key of a snapshot in `inventory.latest`.
pub fn latest_key(s: &InventorySnapshot) -> String {
    let src = serde_json::to_value(s.source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_else(|| "unknown".into());
    format!("{}/{src}", s.server_id)
}

impl InventoryProcessor {
    /// A processor that reads and writes with the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        InventoryProcessor {
            codec: RecordCodec::new(ids),
            latest: HashMap::new(),
        }
    }
}

/// The changes from `before` to `after` (both of one server and source), and `after` completed
/// with the components of parts it could not read.
pub fn diff(before: &InventorySnapshot, after: &mut InventorySnapshot) -> Vec<ComponentChange> {
    let at = after.collected_at;
    let sid = after.server_id.clone();
    let old: BTreeMap<&str, &Component> = before
        .components
        .iter()
        .map(|c| (c.component_id.as_str(), c))
        .collect();
    let new: BTreeMap<String, Component> = after
        .components
        .iter()
        .map(|c| (c.component_id.clone(), c.clone()))
        .collect();
    let mut changes = Vec::new();
    let change = |c: &Component,
                  change: ChangeKind,
                  before: Option<String>,
                  after: Option<String>| ComponentChange {
        server_id: sid.clone(),
        component_id: c.component_id.clone(),
        kind: c.kind,
        change,
        before,
        after,
        detected_at: at,
    };
    let partial = !after.errors.is_empty();
    let mut carried = Vec::new();
    for (id, o) in &old {
        match new.get(*id) {
            None if partial && !new.values().any(|n| n.kind == o.kind) => {
                carried.push((*o).clone())
            }
            None => changes.push(change(o, ChangeKind::Removed, Some(summary(o)), None)),
            Some(n) => {
                if o.firmware_version != n.firmware_version {
                    changes.push(change(
                        n,
                        ChangeKind::FirmwareChanged,
                        o.firmware_version.clone(),
                        n.firmware_version.clone(),
                    ));
                }
                for (what, a, b) in [
                    ("serial", &o.serial, &n.serial),
                    ("model", &o.model, &n.model),
                    ("part_number", &o.part_number, &n.part_number),
                ] {
                    if a != b && a.is_some() && b.is_some() {
                        changes.push(change(
                            n,
                            ChangeKind::PropertyChanged,
                            a.as_ref().map(|v| format!("{what}={v}")),
                            b.as_ref().map(|v| format!("{what}={v}")),
                        ));
                    }
                }
            }
        }
    }
    for (id, n) in &new {
        if !old.contains_key(id.as_str()) {
            changes.push(change(n, ChangeKind::Added, None, Some(summary(n))));
        }
    }
    after.components.extend(carried);
    changes
}

/// One line about a component for an added/removed event.
fn summary(c: &Component) -> String {
    let mut parts = vec![c.name.clone()];
    parts.extend(c.model.clone());
    if let Some(s) = &c.serial {
        parts.push(format!("serial {s}"));
    }
    if let Some(f) = &c.firmware_version {
        parts.push(format!("firmware {f}"));
    }
    parts.join(", ")
}

impl Processor for InventoryProcessor {
    fn name(&self) -> &'static str {
        "inventory"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![INVENTORY_SNAPSHOTS]
    }

    fn changelog(&self) -> Option<&'static str> {
        Some(INVENTORY_LATEST)
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
        let Some(value) = r.record.value.as_deref() else {
            self.latest.remove(&key);
            return;
        };
        let Ok((spec, id)) = self.codec.spec(INVENTORY_LATEST) else {
            return;
        };
        match decode::<InventorySnapshot>(spec, id, value) {
            Ok(s) => {
                self.latest.insert(key, s);
            }
            Err(e) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable inventory.latest record")
            }
        }
    }

    fn process(
        &mut self,
        r: &ConsumedRecord,
        out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        let (in_spec, in_id) = self.codec.spec(INVENTORY_SNAPSHOTS)?;
        let value = r
            .record
            .value
            .as_deref()
            .ok_or_else(|| Rejection("record has no value".into()))?;
        let mut snap: InventorySnapshot = decode(in_spec, in_id, value)
            .map_err(|e| Rejection(format!("cannot decode inventory snapshot: {e}")))?;
        let key = latest_key(&snap);
        let changes = match self.latest.get(&key) {
            Some(prev) if prev.collected_at > snap.collected_at => {
                // An older snapshot arriving late changes nothing.
                return Ok(());
            }
            Some(prev) => diff(prev, &mut snap),
            None => Vec::new(),
        };
        let (ch_spec, ch_id) = self.codec.spec(INVENTORY_CHANGES)?;
        for c in &changes {
            let bytes = encode(ch_spec, ch_id, c)
                .map_err(|e| Rejection(format!("cannot encode a change: {e}")))?;
            out.push((
                INVENTORY_CHANGES.to_string(),
                Record::new(c.server_id.clone(), bytes).with_timestamp(c.detected_at),
            ));
        }
        let (l_spec, l_id) = self.codec.spec(INVENTORY_LATEST)?;
        let bytes = encode(l_spec, l_id, &snap)
            .map_err(|e| Rejection(format!("cannot encode the inventory: {e}")))?;
        out.push((
            INVENTORY_LATEST.to_string(),
            Record::new(key.clone(), bytes).with_timestamp(snap.collected_at),
        ));
        self.latest.insert(key, snap);
        Ok(())
    }
}
