//! Fleet routes: servers (a view fed from the compacted `servers.state` topic), the log's topics
//! and the registered schemas.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use automata_log::{MessageLog, StartFrom};
use automata_schemas::catalog::{INVENTORY_LATEST, SERVERS_STATE, topic, topics};
use automata_schemas::types::{InventorySnapshot, ServerState};
use automata_schemas::{SchemaIds, decode};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiPath, ErrorBody};

/// The latest state of every server, kept current by tailing `servers.state`.
#[derive(Clone)]
pub struct FleetView {
    log: MessageLog,
    ids: SchemaIds,
    servers: Arc<RwLock<BTreeMap<String, ServerState>>>,
    /// server id → source → latest inventory (from `inventory.latest`).
    inventory: Arc<RwLock<BTreeMap<String, BTreeMap<String, InventorySnapshot>>>>,
}

impl FleetView {
    /// Starts tailing `servers.state` from its beginning (it is compacted: one record per server).
    pub fn start(log: MessageLog, ids: SchemaIds, shutdown: CancellationToken) -> Self {
        let view = FleetView {
            log,
            ids,
            servers: Arc::default(),
            inventory: Arc::default(),
        };
        let v = view.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                match v.tail(&shutdown).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "servers view lost the log; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
        });
        view
    }

    async fn tail(&self, shutdown: &CancellationToken) -> Result<(), automata_log::LogError> {
        // A private group per process: every API replica holds the whole view.
        let group = format!("api-view-{}", uuid::Uuid::new_v4().simple());
        let mut c = self.log.consumer(
            &group,
            &[SERVERS_STATE, INVENTORY_LATEST],
            StartFrom::Earliest,
        )?;
        let (Some(state_spec), Some(inv_spec)) = (topic(SERVERS_STATE), topic(INVENTORY_LATEST))
        else {
            return Ok(());
        };
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                b = c.recv_batch(1000, Duration::from_secs(1)) => b?,
            };
            for r in batch {
                let key = r
                    .record
                    .key
                    .as_deref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                if r.topic == INVENTORY_LATEST {
                    let Some((server, source)) = key.rsplit_once('/') else {
                        continue;
                    };
                    let mut inv = self.inventory.write().unwrap_or_else(|e| e.into_inner());
                    let Some(id) = self.ids.get(INVENTORY_LATEST) else {
                        continue;
                    };
                    match r.record.value.as_deref() {
                        None => {
                            if let Some(m) = inv.get_mut(server) {
                                m.remove(source);
                            }
                        }
                        Some(v) => match decode::<InventorySnapshot>(inv_spec, id, v) {
                            Ok(snap) => {
                                inv.entry(server.to_string())
                                    .or_default()
                                    .insert(source.to_string(), snap);
                            }
                            Err(e) => {
                                tracing::debug!(offset = r.offset, error = %e, "unreadable inventory.latest record skipped")
                            }
                        },
                    }
                    continue;
                }
                let Some(id) = self.ids.get(SERVERS_STATE) else {
                    continue;
                };
                let mut servers = self.servers.write().unwrap_or_else(|e| e.into_inner());
                match r.record.value.as_deref() {
                    None => {
                        servers.remove(&key);
                    }
                    Some(v) => match decode::<ServerState>(state_spec, id, v) {
                        Ok(s) => {
                            servers.insert(key, s);
                        }
                        Err(e) => {
                            tracing::debug!(offset = r.offset, error = %e, "unreadable servers.state record skipped")
                        }
                    },
                }
            }
        }
    }
}

/// One component of a server as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentView {
    /// Who reported it: agent, redfish, ipmi.
    pub source: String,
    /// Stable id within the server and source.
    pub component_id: String,
    /// Kind: cpu, dimm, disk, nvme, nic, gpu, pci_device, psu, bmc, bios, …
    pub kind: String,
    /// Name.
    pub name: String,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Serial number.
    pub serial: Option<String>,
    /// Part number.
    pub part_number: Option<String>,
    /// Running firmware version.
    pub firmware_version: Option<String>,
    /// Slot, socket or bay.
    pub location: Option<String>,
    /// Further facts (size, speed, driver, BIOS attributes as `attr.<name>`, …).
    pub properties: BTreeMap<String, String>,
}

/// What one source's last inventory of a server said besides its components.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventorySourceView {
    /// agent, redfish or ipmi.
    pub source: String,
    /// When it was collected (RFC 3339).
    pub collected_at: String,
    /// What could not be read.
    pub errors: Vec<String>,
}

/// One server as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServerView {
    /// Server identity.
    pub server_id: String,
    /// Serial number.
    pub serial: Option<String>,
    /// SMBIOS UUID.
    pub uuid: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// BMC address.
    pub bmc_address: Option<String>,
    /// Manufacturer.
    pub manufacturer: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Power state.
    pub power_state: Option<String>,
    /// Rolled-up health: UNKNOWN, OK, WARNING, CRITICAL.
    pub health: String,
    /// Component id to firmware version.
    pub firmware: BTreeMap<String, String>,
    /// Last time anything was heard (RFC 3339).
    pub last_seen: String,
    /// Last inventory (RFC 3339).
    pub last_inventory_at: Option<String>,
    /// Last telemetry (RFC 3339).
    pub last_telemetry_at: Option<String>,
    /// Components in the last inventory.
    pub component_count: i32,
    /// Readings seen.
    pub readings_count: i64,
    /// Sensor id to latest value.
    pub latest_readings: BTreeMap<String, f64>,
    /// Operator labels.
    pub labels: BTreeMap<String, String>,
    /// Components from the latest inventory of every source (only on `GET /servers/{id}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ComponentView>,
    /// The inventories behind `components` (only on `GET /servers/{id}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inventories: Vec<InventorySourceView>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

impl From<&ServerState> for ServerView {
    fn from(s: &ServerState) -> Self {
        ServerView {
            server_id: s.server_id.clone(),
            serial: s.serial.clone(),
            uuid: s.uuid.clone(),
            hostname: s.hostname.clone(),
            bmc_address: s.bmc_address.clone(),
            manufacturer: s.manufacturer.clone(),
            model: s.model.clone(),
            power_state: s.power_state.clone(),
            health: format!("{:?}", s.health).to_uppercase(),
            firmware: s.firmware.clone().into_iter().collect(),
            last_seen: rfc3339(s.last_seen),
            last_inventory_at: s.last_inventory_at.map(rfc3339),
            last_telemetry_at: s.last_telemetry_at.map(rfc3339),
            component_count: s.component_count,
            readings_count: s.readings_count,
            latest_readings: s.latest_readings.clone().into_iter().collect(),
            labels: s.labels.clone().into_iter().collect(),
            components: Vec::new(),
            inventories: Vec::new(),
        }
    }
}

fn lower<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_lowercase))
        .unwrap_or_default()
}

fn with_inventory(
    mut view: ServerView,
    sources: Option<&BTreeMap<String, InventorySnapshot>>,
) -> ServerView {
    for (source, snap) in sources.into_iter().flatten() {
        view.inventories.push(InventorySourceView {
            source: source.clone(),
            collected_at: rfc3339(snap.collected_at),
            errors: snap.errors.clone(),
        });
        let mut comps: Vec<&automata_schemas::types::Component> = snap.components.iter().collect();
        comps.sort_by(|a, b| {
            (lower(&a.kind), &a.component_id).cmp(&(lower(&b.kind), &b.component_id))
        });
        view.components
            .extend(comps.into_iter().map(|c| ComponentView {
                source: source.clone(),
                component_id: c.component_id.clone(),
                kind: lower(&c.kind),
                name: c.name.clone(),
                manufacturer: c.manufacturer.clone(),
                model: c.model.clone(),
                serial: c.serial.clone(),
                part_number: c.part_number.clone(),
                firmware_version: c.firmware_version.clone(),
                location: c.location.clone(),
                properties: c.properties.clone().into_iter().collect(),
            }));
    }
    view
}

/// `GET /api/v1/servers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    /// Every known server, by id.
    pub servers: Vec<ServerView>,
}

/// One partition of a topic.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: i32,
    /// First retained offset.
    pub low: i64,
    /// Next offset to be written.
    pub high: i64,
}

/// One topic of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// The Avro record it carries, if any.
    pub record: Option<String>,
    /// What the key is.
    pub key: String,
    /// Latest value per key only.
    pub compacted: bool,
    /// Retention in ms (null: forever).
    pub retention_ms: Option<i64>,
    /// Partitions and offsets.
    pub partitions: Vec<PartitionInfo>,
}

/// `GET /api/v1/topics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    /// The pipeline's topics.
    pub topics: Vec<TopicInfo>,
}

/// One topic's registered schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaInfo {
    /// Topic.
    pub topic: String,
    /// Registry subject.
    pub subject: String,
    /// Avro record name.
    pub record: String,
    /// Registry id this service writes with.
    pub id: Option<u32>,
}

/// `GET /api/v1/schemas`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaList {
    /// One entry per Avro topic.
    pub schemas: Vec<SchemaInfo>,
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "fleet", operation_id = "list_servers",
    responses((status = 200, description = "Latest state of every server", body = ServerList),
              (status = 401, description = "Remote caller without a valid token", body = ErrorBody)))]
async fn list_servers(State(view): State<FleetView>) -> Json<ServerList> {
    let servers = view.servers.read().unwrap_or_else(|e| e.into_inner());
    Json(ServerList {
        servers: servers.values().map(ServerView::from).collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "fleet", operation_id = "get_server",
    params(("id" = String, Path, description = "Server id")),
    responses((status = 200, description = "One server's latest state", body = ServerView),
              (status = 404, description = "Unknown server", body = ErrorBody)))]
async fn get_server(
    State(view): State<FleetView>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ServerView>, ApiError> {
    let server = {
        let servers = view.servers.read().unwrap_or_else(|e| e.into_inner());
        servers.get(&id).map(ServerView::from)
    }
    .ok_or_else(|| ApiError::not_found(format!("no server {id:?}")))?;
    let inventory = view.inventory.read().unwrap_or_else(|e| e.into_inner());
    Ok(Json(with_inventory(server, inventory.get(&id))))
}

/// `POST /api/v1/ingest/inventory` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ingested {
    /// The server the snapshot was filed under.
    pub server_id: String,
    /// Components accepted.
    pub components: usize,
}

#[utoipa::path(post, path = "/api/v1/ingest/inventory", tag = "fleet", operation_id = "ingest_inventory",
    request_body(content = Object, description = "An inventory snapshot as `metal-automata agent --once --output json` prints it"),
    responses((status = 202, description = "Published to inventory.snapshots", body = Ingested),
              (status = 400, description = "Not a valid snapshot", body = ErrorBody),
              (status = 503, description = "The log does not take it now", body = ErrorBody)))]
async fn ingest_inventory(
    State(view): State<FleetView>,
    crate::error::ApiJson(snap): crate::error::ApiJson<InventorySnapshot>,
) -> Result<(axum::http::StatusCode, Json<Ingested>), ApiError> {
    if snap.server_id.trim().is_empty() || snap.server_id.len() > 256 {
        return Err(ApiError::bad_request(
            "server_id must be 1 to 256 characters",
        ));
    }
    if snap.components.len() > 20_000 {
        return Err(ApiError::bad_request("more than 20000 components"));
    }
    let spec = topic(automata_schemas::catalog::INVENTORY_SNAPSHOTS)
        .ok_or_else(|| ApiError::internal("no inventory topic"))?;
    let id = view
        .ids
        .get(automata_schemas::catalog::INVENTORY_SNAPSHOTS)
        .ok_or_else(|| ApiError::unavailable("the inventory schema is not registered yet"))?;
    let bytes = automata_schemas::encode(spec, id, &snap)
        .map_err(|e| ApiError::bad_request(format!("not a valid snapshot: {e}")))?;
    let record =
        automata_log::Record::new(snap.server_id.clone(), bytes).with_timestamp(snap.collected_at);
    tokio::time::timeout(
        Duration::from_secs(30),
        view.log
            .send(automata_schemas::catalog::INVENTORY_SNAPSHOTS, record),
    )
    .await
    .map_err(|_| ApiError::unavailable("the message log did not take the snapshot in 30 s"))?
    .map_err(|e| ApiError::unavailable(format!("the message log: {e}")))?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(Ingested {
            server_id: snap.server_id,
            components: snap.components.len(),
        }),
    ))
}

/// `POST /api/v1/ingest/telemetry`: what an agent read since its last report.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryBatch {
    /// Sensor readings (`telemetry.readings`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub readings: Vec<automata_schemas::types::TelemetryReading>,
    /// Hardware log entries (`telemetry.logs`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<automata_schemas::types::HardwareLogEntry>,
}

/// What an ingest accepted.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelemetryIngested {
    /// Readings published.
    pub readings: usize,
    /// Log entries published.
    pub logs: usize,
}

impl FleetView {
    /// Encodes `items` for `topic_name` and appends them, keyed by server id.
    async fn publish_all<T: Serialize>(
        &self,
        topic_name: &'static str,
        items: &[T],
        key: impl Fn(&T) -> (String, i64),
    ) -> Result<(), ApiError> {
        if items.is_empty() {
            return Ok(());
        }
        let spec = topic(topic_name).ok_or_else(|| ApiError::internal("no such topic"))?;
        let id = self
            .ids
            .get(topic_name)
            .ok_or_else(|| ApiError::unavailable(format!("{topic_name} is not registered yet")))?;
        let mut records = Vec::with_capacity(items.len());
        for item in items {
            let bytes = automata_schemas::encode(spec, id, item).map_err(|e| {
                ApiError::bad_request(format!("not a valid {topic_name} record: {e}"))
            })?;
            let (k, at) = key(item);
            records.push(automata_log::Record::new(k, bytes).with_timestamp(at));
        }
        tokio::time::timeout(
            Duration::from_secs(30),
            self.log.send_batch(topic_name, records),
        )
        .await
        .map_err(|_| ApiError::unavailable("the message log did not take the batch in 30 s"))?
        .map_err(|e| ApiError::unavailable(format!("the message log: {e}")))?;
        Ok(())
    }
}

#[utoipa::path(post, path = "/api/v1/ingest/telemetry", tag = "fleet", operation_id = "ingest_telemetry",
    request_body(content = Object, description = "Readings and log entries as the agent collects them"),
    responses((status = 202, description = "Published to telemetry.readings and telemetry.logs", body = TelemetryIngested),
              (status = 400, description = "Not valid records", body = ErrorBody),
              (status = 503, description = "The log does not take them now", body = ErrorBody)))]
async fn ingest_telemetry(
    State(view): State<FleetView>,
    crate::error::ApiJson(batch): crate::error::ApiJson<TelemetryBatch>,
) -> Result<(axum::http::StatusCode, Json<TelemetryIngested>), ApiError> {
    if batch.readings.len() + batch.logs.len() > 100_000 {
        return Err(ApiError::bad_request(
            "more than 100000 records in one batch",
        ));
    }
    let bad_id = |s: &str| s.trim().is_empty() || s.len() > 256;
    if batch.readings.iter().any(|r| bad_id(&r.server_id))
        || batch.logs.iter().any(|l| bad_id(&l.server_id))
    {
        return Err(ApiError::bad_request(
            "every record needs a server_id of 1 to 256 characters",
        ));
    }
    view.publish_all(
        automata_schemas::catalog::TELEMETRY_READINGS,
        &batch.readings,
        |r| (r.server_id.clone(), r.timestamp),
    )
    .await?;
    view.publish_all(
        automata_schemas::catalog::TELEMETRY_LOGS,
        &batch.logs,
        |l| (l.server_id.clone(), l.observed_at),
    )
    .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(TelemetryIngested {
            readings: batch.readings.len(),
            logs: batch.logs.len(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/topics", tag = "fleet", operation_id = "list_topics",
    responses((status = 200, description = "Topics with partitions and offsets", body = TopicList),
              (status = 503, description = "The log does not answer", body = ErrorBody)))]
async fn list_topics(State(view): State<FleetView>) -> Result<Json<TopicList>, ApiError> {
    let mut out = Vec::new();
    for t in topics() {
        let marks = tokio::time::timeout(Duration::from_secs(10), view.log.watermarks(t.name))
            .await
            .map_err(|_| ApiError::unavailable("the message log did not answer in 10 s"))?
            .map_err(|e| ApiError::unavailable(format!("the message log: {e}")))?;
        out.push(TopicInfo {
            name: t.name.to_string(),
            record: t.record.map(str::to_string),
            key: t.key.to_string(),
            compacted: t.compacted,
            retention_ms: t.retention_ms,
            partitions: marks
                .into_iter()
                .map(|m| PartitionInfo {
                    partition: m.partition,
                    low: m.low,
                    high: m.high,
                })
                .collect(),
        });
    }
    Ok(Json(TopicList { topics: out }))
}

#[utoipa::path(get, path = "/api/v1/schemas", tag = "fleet", operation_id = "list_schemas",
    responses((status = 200, description = "Each topic's schema and registry id", body = SchemaList)))]
async fn list_schemas(State(view): State<FleetView>) -> Json<SchemaList> {
    let schemas = topics()
        .iter()
        .filter_map(|t| {
            Some(SchemaInfo {
                topic: t.name.to_string(),
                subject: t.subject(),
                record: t.record?.to_string(),
                id: view.ids.get(t.name),
            })
        })
        .collect();
    Json(SchemaList { schemas })
}

/// The fleet route group, to merge into the API with [`crate::ApiBuilder::merge`].
pub fn routes(view: FleetView) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(list_servers))
        .routes(routes!(get_server))
        .routes(routes!(list_topics))
        .routes(routes!(list_schemas))
        .routes(routes!(ingest_inventory))
        .routes(routes!(ingest_telemetry))
        .with_state(view)
}
