//! SQL over fleet history: the engine, the operator tables and `POST /api/v1/sql`.

pub mod engine;
pub mod functions;
pub mod views;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::ipc::writer::StreamWriter;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use engine::{SqlConfig, SqlEngine, SqlError, session_config};

use crate::error::{ApiError, ApiJson, ErrorBody};

/// The media type of an Arrow IPC stream answer.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match &e {
            SqlError::Query(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.to_string())
            }
            SqlError::Memory { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "query_too_large", e.to_string())
            }
            SqlError::Timeout(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "query_timeout", e.to_string())
            }
            SqlError::Unavailable(_) => ApiError::unavailable(e.to_string()),
        }
    }
}

/// `POST /api/v1/sql` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SqlRequest {
    /// One SQL query (read-only).
    #[schema(example = "SELECT server_id, bios_version FROM servers")]
    pub query: String,
}

/// One column of an answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SqlColumn {
    /// Name.
    pub name: String,
    /// Arrow type, as Arrow prints it.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// A JSON answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SqlAnswer {
    /// The columns, in order.
    pub columns: Vec<SqlColumn>,
    /// One object per row, keyed by column name.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Value>,
    /// Rows returned.
    pub row_count: usize,
    /// True when the answer was cut at the JSON row limit (ask for Arrow to get everything).
    pub truncated: bool,
}

/// One operator table.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SqlTable {
    /// Name in SQL.
    pub name: String,
    /// What it holds.
    pub about: String,
    /// Topics it is made from.
    pub topics: Vec<String>,
}

/// `GET /api/v1/sql/tables`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SqlTables {
    /// The operator tables (the raw per-topic tables are in schema `raw`).
    pub tables: Vec<SqlTable>,
}

fn columns(schema: &SchemaRef) -> Vec<SqlColumn> {
    schema
        .fields()
        .iter()
        .map(|f| SqlColumn {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
        })
        .collect()
}

/// Rows as JSON objects (Arrow's own JSON writer: timestamps as RFC 3339, maps as objects).
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, String> {
    let mut w = deltalake::arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.finish().map_err(|e| e.to_string())?;
    let bytes = w.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

fn wants_arrow(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(ARROW_STREAM))
}

#[utoipa::path(post, path = "/api/v1/sql", tag = "sql", operation_id = "run_sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The answer: JSON, or an Arrow IPC stream when `Accept: application/vnd.apache.arrow.stream`", body = SqlAnswer),
        (status = 400, description = "The query is wrong or needs more memory than allowed (the planner's message)", body = ErrorBody),
        (status = 408, description = "The query ran past the time limit", body = ErrorBody),
        (status = 503, description = "History storage or the log is not readable", body = ErrorBody)))]
async fn run_sql(
    State(engine): State<Arc<SqlEngine>>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SqlRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    if wants_arrow(&headers) {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_secs(engine.config().timeout_secs);
        let stream = engine.stream(&req.query).await?;
        return arrow_response(stream, deadline);
    }
    let (schema, batches, truncated) = engine
        .query(&req.query, Some(engine.config().max_json_rows))
        .await?;
    let rows = rows_json(&batches).map_err(ApiError::internal)?;
    metrics::histogram!("automata_sql_query_seconds").record(started.elapsed().as_secs_f64());
    Ok(ApiJson(SqlAnswer {
        columns: columns(&schema),
        row_count: rows.len(),
        rows,
        truncated,
    })
    .into_response())
}

/// What the Arrow body stream holds between chunks.
enum ArrowBody {
    Running(
        deltalake::datafusion::execution::SendableRecordBatchStream,
        Box<StreamWriter<Vec<u8>>>,
    ),
    Done,
}

/// Streams record batches as an Arrow IPC stream until `deadline`. An error mid-way ends the
/// body with an error, so the client sees a broken stream, never a silently short answer.
fn arrow_response(
    stream: deltalake::datafusion::execution::SendableRecordBatchStream,
    deadline: tokio::time::Instant,
) -> Result<Response, ApiError> {
    let schema = stream.schema();
    let mut w = StreamWriter::try_new(Vec::new(), &schema)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let header = bytes::Bytes::from(std::mem::take(w.get_mut()));
    let rest = futures::stream::unfold(
        ArrowBody::Running(stream, Box::new(w)),
        move |st| async move {
            let ArrowBody::Running(mut s, mut w) = st else {
                return None;
            };
            let fail = |e: String| Some((Err(std::io::Error::other(e)), ArrowBody::Done));
            match tokio::time::timeout_at(deadline, s.next()).await {
                Err(_) => fail("the query ran past its time limit and was cancelled".into()),
                Ok(Some(Err(e))) => fail(e.to_string()),
                Ok(Some(Ok(batch))) => match w.write(&batch) {
                    Ok(()) => {
                        let chunk = bytes::Bytes::from(std::mem::take(w.get_mut()));
                        Some((Ok(chunk), ArrowBody::Running(s, w)))
                    }
                    Err(e) => fail(e.to_string()),
                },
                Ok(None) => match w.finish() {
                    Ok(()) => {
                        let chunk = bytes::Bytes::from(std::mem::take(w.get_mut()));
                        Some((Ok(chunk), ArrowBody::Done))
                    }
                    Err(e) => fail(e.to_string()),
                },
            }
        },
    );
    let body = futures::stream::once(async move { Ok::<_, std::io::Error>(header) }).chain(rest);
    Response::builder()
        .header(header::CONTENT_TYPE, ARROW_STREAM)
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/sql/tables", tag = "sql", operation_id = "list_sql_tables",
    responses((status = 200, description = "The tables SQL can read", body = SqlTables)))]
async fn list_tables() -> ApiJson<SqlTables> {
    ApiJson(SqlTables {
        tables: views::VIEWS
            .iter()
            .map(|v| SqlTable {
                name: v.name.to_string(),
                about: v.about.to_string(),
                topics: v.topics.iter().map(|t| t.to_string()).collect(),
            })
            .collect(),
    })
}

/// The SQL routes over `engine`.
pub fn routes(engine: Arc<SqlEngine>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(run_sql))
        .routes(routes!(list_tables))
        .with_state(engine)
}
