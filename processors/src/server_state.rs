//! The server-state processor: folds inventory snapshots and telemetry into the latest state of
//! each server, published on the compacted `servers.state` topic (which is also its changelog).

use std::collections::{BTreeSet, HashMap};

use automata_log::{ConsumedRecord, Record};
use automata_schemas::catalog::{INVENTORY_SNAPSHOTS, SERVERS_STATE, TELEMETRY_READINGS};
use automata_schemas::types::{InventorySnapshot, ServerState, TelemetryReading};
use automata_schemas::{SchemaIds, encode};

use crate::codec::RecordCodec;
use crate::runtime::{Processor, Rejection};

/// Latest state per server, emitted at most once per server per batch.
pub struct ServerStateProcessor {
    codec: RecordCodec,
    servers: HashMap<String, ServerState>,
    dirty: BTreeSet<String>,
}

impl ServerStateProcessor {
    /// A processor that reads and writes with the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        ServerStateProcessor {
            codec: RecordCodec::new(ids),
            servers: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// The state held now (for tests and diagnostics).
    pub fn state(&self, server_id: &str) -> Option<&ServerState> {
        self.servers.get(server_id)
    }

    fn entry(&mut self, server_id: &str) -> &mut ServerState {
        self.servers
            .entry(server_id.to_string())
            .or_insert_with(|| ServerState {
                server_id: server_id.to_string(),
                ..Default::default()
            })
    }
}

impl Processor for ServerStateProcessor {
    fn name(&self) -> &'static str {
        "server-state"
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![INVENTORY_SNAPSHOTS, TELEMETRY_READINGS]
    }

    fn changelog(&self) -> Option<&'static str> {
        Some(SERVERS_STATE)
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
            self.servers.remove(&key);
            return;
        }
        match self.codec.decode::<ServerState>(SERVERS_STATE, r) {
            Ok(s) => {
                self.servers.insert(key, s);
            }
            Err(Rejection(e)) => {
                tracing::warn!(offset = r.offset, error = %e, "skipping an unreadable servers.state record")
            }
        }
    }

    fn process(
        &mut self,
        r: &ConsumedRecord,
        _out: &mut Vec<(String, Record)>,
    ) -> Result<(), Rejection> {
        match r.topic.as_str() {
            TELEMETRY_READINGS => {
                let t: TelemetryReading = self.codec.decode(TELEMETRY_READINGS, r)?;
                let s = self.entry(&t.server_id);
                s.last_seen = s.last_seen.max(t.timestamp);
                s.last_telemetry_at = Some(s.last_telemetry_at.unwrap_or(0).max(t.timestamp));
                s.readings_count += 1;
                s.latest_readings.insert(t.sensor_id, t.value);
                let id = t.server_id;
                self.dirty.insert(id);
            }
            INVENTORY_SNAPSHOTS => {
                let inv: InventorySnapshot = self.codec.decode(INVENTORY_SNAPSHOTS, r)?;
                let s = self.entry(&inv.server_id);
                s.last_seen = s.last_seen.max(inv.collected_at);
                s.last_inventory_at = Some(inv.collected_at);
                s.manufacturer = inv.system.manufacturer.clone().or(s.manufacturer.take());
                s.model = inv.system.product.clone().or(s.model.take());
                s.serial = inv.system.serial.clone().or(s.serial.take());
                s.uuid = inv.system.uuid.clone().or(s.uuid.take());
                s.component_count = inv.components.len() as i32;
                s.firmware = inv
                    .components
                    .iter()
                    .filter_map(|c| Some((c.component_id.clone(), c.firmware_version.clone()?)))
                    .collect();
                if let Some(v) = inv.bios.as_ref().and_then(|b| b.version.clone()) {
                    s.firmware.insert("bios".into(), v);
                }
                if let Some(h) = inv
                    .components
                    .iter()
                    .find_map(|c| c.properties.get("hostname"))
                {
                    s.hostname = Some(h.clone());
                }
                if let Some(a) = inv
                    .components
                    .iter()
                    .filter(|c| c.kind == automata_schemas::types::ComponentKind::Bmc)
                    .find_map(|c| c.properties.get("address"))
                {
                    s.bmc_address = Some(a.clone());
                }
                let id = inv.server_id;
                self.dirty.insert(id);
            }
            other => return Err(Rejection(format!("unexpected topic {other}"))),
        }
        Ok(())
    }

    fn end_batch(&mut self, out: &mut Vec<(String, Record)>) {
        let Ok((spec, id)) = self.codec.spec(SERVERS_STATE) else {
            tracing::error!("no registered schema for servers.state: state not published");
            return;
        };
        for server in std::mem::take(&mut self.dirty) {
            let Some(state) = self.servers.get(&server) else {
                continue;
            };
            match encode(spec, id, state) {
                Ok(bytes) => out.push((SERVERS_STATE.to_string(), Record::new(server, bytes))),
                Err(e) => tracing::error!(server, error = %e, "cannot encode server state"),
            }
        }
    }
}
