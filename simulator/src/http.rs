//! The Redfish HTTP face of one simulated BMC: authentication, methods, headers, errors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::bmc::{Bmc, MULTIPART_PUSH, Reply, Responsiveness};
use crate::events::SSE_URI;
use crate::mockup::ROOT;

/// Largest JSON body accepted.
const JSON_LIMIT: usize = 1024 * 1024;
/// Largest firmware image accepted in a push.
const IMAGE_LIMIT: usize = 512 * 1024 * 1024;

/// The router of one BMC.
pub fn router(bmc: Arc<Bmc>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(IMAGE_LIMIT))
        .with_state(bmc)
}

async fn handle(State(bmc): State<Arc<Bmc>>, req: Request) -> Response {
    match bmc.responsiveness() {
        Responsiveness::Normal => {}
        Responsiveness::Slow(d) => tokio::time::sleep(d).await,
        Responsiveness::Hung => {
            // A hung BMC accepts the connection and never answers; the client's timeout ends it.
            while bmc.responsiveness() == Responsiveness::Hung {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    let method = req.method().clone();
    let path = normalise(req.uri().path());
    let skip = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| {
            kv.strip_prefix("$skip=")
                .or_else(|| kv.strip_prefix("%24skip="))
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    // What a client may read before it has a session: the service root and its metadata.
    if method == Method::GET || method == Method::HEAD {
        match path.as_str() {
            "/redfish" => {
                bmc.count_request();
                return respond(
                    Reply {
                        status: 200,
                        headers: vec![],
                        body: Some(json!({"v1": "/redfish/v1/"})),
                    },
                    false,
                );
            }
            ROOT | "/redfish/v1/odata" => {
                bmc.count_request();
                return get(&bmc, &path, skip, false);
            }
            "/redfish/v1/$metadata" => {
                bmc.count_request();
                return match &bmc.metadata() {
                    Some(xml) => (
                        [
                            (header::CONTENT_TYPE, "application/xml"),
                            (header::HeaderName::from_static("odata-version"), "4.0"),
                        ],
                        xml.clone(),
                    )
                        .into_response(),
                    None => respond(
                        Reply::error(404, "ResourceMissingAtURI", "No $metadata."),
                        false,
                    ),
                };
            }
            _ => {}
        }
    }
    if method == Method::POST && path == "/redfish/v1/SessionService/Sessions" {
        bmc.count_request();
        return match json_body(req).await {
            Ok(body) => respond(bmc.create_session(&body), false),
            Err(r) => respond(r, false),
        };
    }
    if !authorised(&bmc, req.headers()) {
        return respond(
            Reply::error(
                401,
                "NoValidSession",
                "Authentication is required: a session token or basic credentials.",
            )
            .with_challenge(),
            false,
        );
    }
    if method == Method::GET && path == SSE_URI {
        return sse(&bmc, req.headers());
    }
    let reply = match method {
        Method::GET | Method::HEAD => return get(&bmc, &path, skip, method == Method::HEAD),
        Method::PATCH => match json_body(req).await {
            Ok(body) => bmc.patch(&path, &body),
            Err(r) => r,
        },
        Method::POST if path == MULTIPART_PUSH => multipart_push(&bmc, req).await,
        Method::POST if Some(path.as_str()) == http_push_uri(&bmc).as_deref() => {
            match to_bytes(req.into_body(), IMAGE_LIMIT).await {
                Ok(image) => bmc.push_update(&json!({}), "image", &image),
                Err(e) => Reply::error(
                    413,
                    "PayloadTooLarge",
                    format!("The image could not be read: {e}"),
                ),
            }
        }
        Method::POST => match json_body(req).await {
            Ok(body) => bmc.action(&path, &body),
            Err(r) => r,
        },
        Method::DELETE => bmc.delete(&path),
        _ => Reply::error(
            405,
            "OperationNotAllowed",
            format!("{method} is not allowed here."),
        ),
    };
    respond(reply, false)
}

/// `GET EventService/SSE`: the BMC's events as a Server-Sent Events stream, resumed after
/// `Last-Event-ID` when the client sends one.
fn sse(bmc: &Bmc, headers: &HeaderMap) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = Body::from_stream(bmc.events().stream(last, bmc.stopping()));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("odata-version", HeaderValue::from_static("4.0"));
    resp
}

fn http_push_uri(bmc: &Bmc) -> Option<String> {
    bmc.get("/redfish/v1/UpdateService")
        .and_then(|v| v.get("HttpPushUri").and_then(Value::as_str).map(normalise))
}

/// One page of a collection: `page` members from `skip`, with the link to the next page.
fn paginate(v: &mut Value, path: &str, skip: usize, page: usize) {
    let Some(Value::Array(members)) = v.get_mut("Members") else {
        return;
    };
    if page == 0 || (members.len() <= page && skip == 0) {
        return;
    }
    let total = members.len();
    let rest: Vec<Value> = members.drain(..).skip(skip).take(page).collect();
    *members = rest;
    v["Members@odata.count"] = json!(total);
    if skip + page < total {
        v["Members@odata.nextLink"] = json!(format!("{path}?$skip={}", skip + page));
    }
}

fn get(bmc: &Bmc, path: &str, skip: usize, head: bool) -> Response {
    if let Some(id) = path.strip_prefix("/redfish/v1/TaskService/TaskMonitors/") {
        return respond(bmc.task_monitor(id), head);
    }
    if let Some(mut v) = bmc.get(path) {
        paginate(&mut v, path, skip, bmc.page_size());
        // Allow only where the schema allows more than reading (the validator checks it).
        let allow = match crate::mockup::type_name(&v) {
            Some("ComputerSystem" | "Chassis" | "Manager" | "ManagerAccount") => {
                Some("GET, HEAD, PATCH")
            }
            Some("SessionCollection") => Some("GET, HEAD, POST"),
            Some("Session") => Some("GET, HEAD, DELETE"),
            _ => None,
        };
        return respond(
            Reply {
                status: 200,
                headers: allow
                    .map(|a| ("Allow", a.to_string()))
                    .into_iter()
                    .collect(),
                body: Some(v),
            },
            head,
        );
    }
    if let Some(bytes) = bmc.file(path) {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            bytes.as_ref().clone(),
        )
            .into_response();
    }
    respond(
        Reply::error(
            404,
            "ResourceMissingAtURI",
            format!("{path} does not exist."),
        ),
        head,
    )
}

/// `/redfish/v1/` and `/redfish/v1` are one resource; so are `…/Systems/` and `…/Systems`.
fn normalise(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

fn authorised(bmc: &Bmc, headers: &HeaderMap) -> bool {
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return bmc.check_token(token);
    }
    bmc.count_request();
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(b64) = auth
        .strip_prefix("Basic ")
        .or_else(|| auth.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return false;
    };
    let Some((user, pass)) = text.split_once(':') else {
        return false;
    };
    bmc.credentials_ok(user, pass)
}

async fn json_body(req: Request) -> Result<Value, Reply> {
    let bytes = to_bytes(req.into_body(), JSON_LIMIT).await.map_err(|e| {
        Reply::error(
            413,
            "PayloadTooLarge",
            format!("The body could not be read: {e}"),
        )
    })?;
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Reply::error(
            400,
            "MalformedJSON",
            format!("The body is not valid JSON: {e}"),
        )
    })
}

async fn multipart_push(bmc: &Bmc, req: Request) -> Reply {
    let mut form = match Multipart::from_request(req, &()).await {
        Ok(m) => m,
        Err(e) => {
            return Reply::error(
                400,
                "MalformedJSON",
                format!("Expected a multipart/form-data body: {e}"),
            );
        }
    };
    let mut params = json!({});
    let mut image: Option<(String, bytes::Bytes)> = None;
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Reply::error(
                    400,
                    "MalformedJSON",
                    format!("The multipart body is malformed: {e}"),
                );
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().unwrap_or("image").to_string();
        let data = match field.bytes().await {
            Ok(d) => d,
            Err(e) => {
                return Reply::error(
                    400,
                    "MalformedJSON",
                    format!("The part {name} could not be read: {e}"),
                );
            }
        };
        match name.as_str() {
            "UpdateParameters" => match serde_json::from_slice(&data) {
                Ok(v) => params = v,
                Err(e) => {
                    return Reply::error(
                        400,
                        "MalformedJSON",
                        format!("UpdateParameters is not valid JSON: {e}"),
                    );
                }
            },
            "UpdateFile" => image = Some((file_name, data)),
            _ => {}
        }
    }
    match image {
        Some((name, data)) => bmc.push_update(&params, &name, &data),
        None => Reply::error(
            400,
            "ActionParameterMissing",
            "The UpdateFile part is required.",
        ),
    }
}

impl Reply {
    fn with_challenge(mut self) -> Self {
        self.headers.push((
            "WWW-Authenticate",
            "Basic realm=\"Metal Automata simulated BMC\"".into(),
        ));
        self
    }
}

fn respond(r: Reply, head: bool) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match &r.body {
        Some(v) => serde_json::to_vec(v).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut resp = if head || r.body.is_none() {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(body.clone()))
    };
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("odata-version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if r.body.is_some() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if status == StatusCode::OK {
            let digest = sha2::Sha256::digest(&body);
            if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..8]))) {
                h.insert(header::ETAG, v);
            }
        }
    }
    for (k, v) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    resp
}
