//! The simulator's own control API (not Redfish): the fleet's endpoints, fault injection and
//! ground truth, request counts.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::bmc::Bmc;
use crate::faults::FaultSpec;
use crate::{Endpoint, FleetShared};

/// What the control API reaches.
#[derive(Clone)]
pub struct Control {
    /// The fleet's shared state (ground truth).
    pub shared: Arc<FleetShared>,
    /// The BMCs.
    pub bmcs: Vec<Arc<Bmc>>,
    /// Their addresses.
    pub endpoints: Vec<Endpoint>,
    /// When the fleet started.
    pub started: Instant,
}

/// The control API's routes under `/simulator/v1`.
pub fn router(c: Control) -> Router {
    Router::new()
        .route("/simulator/v1/fleet", get(fleet))
        .route("/simulator/v1/faults", get(faults).post(inject))
        .route("/simulator/v1/faults/{id}", delete(clear))
        .route("/simulator/v1/stats", get(stats))
        .with_state(Arc::new(c))
}

async fn fleet(State(c): State<Arc<Control>>) -> Json<Value> {
    Json(json!({"bmcs": c.endpoints}))
}

async fn faults(State(c): State<Arc<Control>>) -> Json<Value> {
    Json(json!({"faults": c.shared.ground_truth()}))
}

async fn inject(
    State(c): State<Arc<Control>>,
    Json(spec): Json<FaultSpec>,
) -> (StatusCode, Json<Value>) {
    let Some(bmc) = c.bmcs.get(spec.server) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no server {}", spec.server)})),
        );
    };
    match bmc.inject(&spec, "api") {
        Ok(t) => (StatusCode::CREATED, Json(json!(t))),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))),
    }
}

async fn clear(State(c): State<Arc<Control>>, Path(id): Path<u64>) -> (StatusCode, Json<Value>) {
    let Some(t) = c.shared.ground_truth().into_iter().find(|t| t.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no fault {id}")})),
        );
    };
    match c.bmcs.get(t.server).map(|b| b.clear(id)) {
        Some(true) => (StatusCode::OK, Json(json!({"cleared": id}))),
        _ => (
            StatusCode::CONFLICT,
            Json(json!({"error": format!("fault {id} is not active")})),
        ),
    }
}

async fn stats(State(c): State<Arc<Control>>) -> Json<Value> {
    let requests: u64 = c.bmcs.iter().map(|b| b.requests()).sum();
    let secs = c.started.elapsed().as_secs_f64().max(0.001);
    Json(json!({
        "bmcs": c.bmcs.len(),
        "requests": requests,
        "uptime_secs": secs,
        "requests_per_sec": requests as f64 / secs,
    }))
}
