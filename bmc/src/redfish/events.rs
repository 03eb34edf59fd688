//! Redfish events over Server-Sent Events: the EventService's `ServerSentEventUri`, opened
//! through the BMC's own [`RedfishClient`] (auth, TLS policy, host check) with no `$filter`
//! (every event), parsed, and each `Events[]` record mapped to a [`HardwareLogEntry`]
//! (`log_id` `redfish:events`). When a BMC offers no SSE, or the stream keeps failing, the
//! caller polls logs instead ([`super::logs`]).
//!
//! The parser is our own (a small one, after the WHATWG rules: `data:`/`id:`/`event:`/`retry:`
//! fields, multi-line data, comments, CR/LF/CRLF line ends) because the crates we looked at
//! (`eventsource-stream`) buffer a line without limit; here a line and an event are bounded, and
//! a stream of garbage (an endless line, or lines that are no SSE fields) is an error.

use std::collections::VecDeque;
use std::time::Duration;

use automata_schemas::types::HardwareLogEntry;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::logs::map_entry;
use super::{RedfishClient, SERVICE_ROOT, odata_id};
use crate::BmcError;

/// The `log_id` of entries that arrive as events.
pub const EVENTS_LOG_ID: &str = "redfish:events";

/// Why an event stream failed.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The BMC has no usable `ServerSentEventUri`.
    #[error("the BMC offers no Server-Sent Events stream")]
    NotOffered,
    /// Talking to the BMC failed.
    #[error(transparent)]
    Bmc(#[from] BmcError),
    /// The response is not an event stream.
    #[error("not an event stream (Content-Type {content_type:?})")]
    NotEventStream {
        /// What the BMC said it sent.
        content_type: String,
    },
    /// One line grew past the limit.
    #[error("an event-stream line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// One event's data grew past the limit.
    #[error("an event larger than {limit} bytes")]
    EventTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Too many lines in a row that are no SSE field.
    #[error("{lines} lines in a row that are not Server-Sent Events")]
    Garbage {
        /// How many.
        lines: usize,
    },
    /// Nothing arrived (not even a keep-alive) for too long.
    #[error("the event stream was silent for {secs} s")]
    Idle {
        /// The idle limit.
        secs: u64,
    },
    /// The BMC ended the stream.
    #[error("the BMC closed the event stream")]
    Closed,
    /// The stream could not be (re)opened, time after time.
    #[error("gave up on the event stream after {failures} failures: {last}")]
    GaveUp {
        /// Consecutive failures.
        failures: u32,
        /// The last one.
        last: String,
    },
}

/// Limits and patience for an event stream.
#[derive(Debug, Clone)]
pub struct SseOptions {
    /// Longest line accepted.
    pub max_line: usize,
    /// Largest event (its data) accepted.
    pub max_event: usize,
    /// Lines in a row that are no SSE field before the stream counts as garbage.
    pub max_garbage_lines: usize,
    /// Longest silence (BMCs send keep-alive comments) before reconnecting.
    pub idle_timeout: Duration,
    /// Longest one connection is kept before it is reopened.
    pub lifetime: Duration,
    /// First reconnect delay; doubled per failure, with jitter.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Consecutive failures to open the stream before [`run_sse`] gives up (0: never).
    pub max_failures: u32,
}

impl Default for SseOptions {
    fn default() -> Self {
        SseOptions {
            max_line: 64 << 10,
            max_event: 1 << 20,
            max_garbage_lines: 100,
            idle_timeout: Duration::from_secs(180),
            lifetime: Duration::from_secs(3600),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_failures: 10,
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// Its `id:` (or the last one given before it).
    pub id: Option<String>,
    /// Its `event:` type (`None`: "message").
    pub event: Option<String>,
    /// Its data, lines joined by `\n`.
    pub data: String,
    /// A `retry:` the server asked for, in ms.
    pub retry: Option<u64>,
}

/// An incremental, bounded Server-Sent Events parser: feed it bytes as they arrive.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    last_id: Option<String>,
    retry: Option<u64>,
    garbage: usize,
    started: bool,
    max_line: usize,
    max_event: usize,
    max_garbage: usize,
}

impl SseParser {
    /// A parser with the limits of `opts`.
    pub fn new(opts: &SseOptions) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            data: String::new(),
            has_data: false,
            event: None,
            last_id: None,
            retry: None,
            garbage: 0,
            started: false,
            max_line: opts.max_line.max(16),
            max_event: opts.max_event.max(16),
            max_garbage: opts.max_garbage_lines.max(1),
        }
    }

    /// The last event id seen (sent back as `Last-Event-ID` on reconnect).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.on_line(&line)? {
                        out.push(ev);
                    }
                }
                _ => {
                    if self.line.len() >= self.max_line {
                        return Err(SseError::LineTooLong {
                            limit: self.max_line,
                        });
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn on_line(&mut self, raw: &[u8]) -> Result<Option<SseEvent>, SseError> {
        let mut raw = raw;
        if !self.started {
            self.started = true;
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        if raw.is_empty() {
            return Ok(self.dispatch());
        }
        if raw[0] == b':' {
            self.garbage = 0;
            return Ok(None);
        }
        let line = String::from_utf8_lossy(raw);
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_event {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event,
                    });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_string()),
            "id" => {}
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            "retry" => {}
            _ => {
                self.garbage += 1;
                if self.garbage >= self.max_garbage {
                    return Err(SseError::Garbage {
                        lines: self.garbage,
                    });
                }
                return Ok(None);
            }
        }
        self.garbage = 0;
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            id: self.last_id.clone(),
            event,
            data: std::mem::take(&mut self.data),
            retry: self.retry.take(),
        })
    }
}

/// The stream URI an EventService offers, if it offers one and is enabled.
pub fn supports_sse(event_service: &Value) -> Option<String> {
    if event_service.get("ServiceEnabled").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let uri = event_service.get("ServerSentEventUri")?.as_str()?.trim();
    (!uri.is_empty()).then(|| uri.to_string())
}

/// Reads the service root and EventService: the SSE URI, if the BMC offers one.
pub async fn sse_uri(client: &RedfishClient) -> Result<Option<String>, BmcError> {
    let root = client.get(SERVICE_ROOT).await?;
    let Some(es) = root.get("EventService").and_then(odata_id) else {
        return Ok(None);
    };
    Ok(supports_sse(&client.get(&es).await?))
}

/// The records of one Redfish `Event` (an SSE `data:`) as log entries; a record that cannot
/// be mapped is an error of its own.
pub fn event_entries(
    data: &str,
    sse_id: Option<&str>,
    server_id: &str,
    observed_at: i64,
) -> Vec<Result<HardwareLogEntry, String>> {
    let v: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return vec![Err(format!("event is not JSON: {e}"))],
    };
    let records = match v.get("Events") {
        Some(Value::Array(a)) => a,
        Some(_) => return vec![Err("Events is not an array".into())],
        None => return vec![Err("an event without Events".into())],
    };
    let many = records.len() > 1;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = record_id(r, &v, sse_id, i, many)?;
            let entry = as_log_entry(r, &id)?;
            map_entry(&entry, server_id, EVENTS_LOG_ID, observed_at)
        })
        .collect()
}

fn record_id(
    r: &Value,
    event: &Value,
    sse_id: Option<&str>,
    i: usize,
    many: bool,
) -> Result<String, String> {
    match r.get("EventId") {
        Some(Value::String(s)) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Some(Value::Number(n)) => return Ok(n.to_string()),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => return Err(format!("EventId is not a string: {other}")),
    }
    let base = sse_id
        .map(str::to_string)
        .or_else(|| event.get("Id").and_then(Value::as_str).map(str::to_string))
        .ok_or_else(|| "an event record with no EventId and no SSE id".to_string())?;
    Ok(if many { format!("{base}.{i}") } else { base })
}

/// An `Events[]` record in the shape of a LogEntry, so one mapping serves both.
fn as_log_entry(r: &Value, id: &str) -> Result<Value, String> {
    let Some(obj) = r.as_object() else {
        return Err("an event record that is not an object".into());
    };
    let mut e = Value::Object(obj.clone());
    e["Id"] = json!(id);
    if let Some(t) = r.get("EventTimestamp") {
        e["Created"] = t.clone();
    }
    Ok(e)
}

/// What [`run_sse`] reports to its caller.
#[derive(Debug, Clone, PartialEq)]
pub enum SseMessage {
    /// The stream is open (again): events flow; polling may pause.
    Connected,
    /// A new entry.
    Entry(HardwareLogEntry),
    /// An event that could not be mapped, or a dropped connection (being reopened).
    Problem(String),
}

/// One open event stream.
#[derive(Debug)]
pub struct SseConnection {
    resp: reqwest::Response,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    idle: Duration,
}

/// Opens the stream at `uri` (no `$filter`: every event), resuming after `last_event_id`.
pub async fn connect(
    client: &RedfishClient,
    uri: &str,
    last_event_id: Option<&str>,
    opts: &SseOptions,
) -> Result<SseConnection, SseError> {
    let mut headers = vec![
        ("Accept", "text/event-stream"),
        ("Cache-Control", "no-cache"),
    ];
    if let Some(id) = last_event_id {
        headers.push(("Last-Event-ID", id));
    }
    let resp = client.get_stream(uri, &headers, opts.lifetime).await?;
    let ct = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !ct.to_ascii_lowercase().starts_with("text/event-stream") {
        return Err(SseError::NotEventStream { content_type: ct });
    }
    let mut parser = SseParser::new(opts);
    parser.last_id = last_event_id.map(str::to_string);
    Ok(SseConnection {
        resp,
        parser,
        queue: VecDeque::new(),
        idle: opts.idle_timeout,
    })
}

impl SseConnection {
    /// The next event; an error when the stream ends, stalls or turns to garbage.
    pub async fn next_event(&mut self) -> Result<SseEvent, SseError> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(e);
            }
            let chunk = tokio::time::timeout(self.idle, self.resp.chunk())
                .await
                .map_err(|_| SseError::Idle {
                    secs: self.idle.as_secs(),
                })?;
            match chunk {
                Ok(Some(bytes)) => self.queue.extend(self.parser.push(&bytes)?),
                Ok(None) => return Err(SseError::Closed),
                Err(e) => {
                    return Err(SseError::Bmc(BmcError::Connect {
                        url: self.resp.url().to_string(),
                        reason: super::error_chain(&e),
                    }));
                }
            }
        }
    }

    /// The last event id seen on this connection.
    pub fn last_event_id(&self) -> Option<&str> {
        self.parser.last_event_id()
    }
}

/// Follows the BMC's event stream until `cancel`: reconnects with backoff and `Last-Event-ID`,
/// drops events already delivered, and sends entries to `sender`. Returns an error when the
/// BMC offers no stream or it cannot be opened [`SseOptions::max_failures`] times in a row
/// (the caller then polls logs); `Ok` when cancelled or the receiver is gone.
pub async fn run_sse(
    client: &RedfishClient,
    server_id: &str,
    sender: mpsc::Sender<SseMessage>,
    cancel: CancellationToken,
    opts: &SseOptions,
) -> Result<(), SseError> {
    let uri = tokio::select! {
        _ = cancel.cancelled() => return Ok(()),
        u = sse_uri(client) => u?.ok_or(SseError::NotOffered)?,
    };
    let mut last_id: Option<String> = None;
    let mut delivered: VecDeque<String> = VecDeque::new();
    let mut failures = 0u32;
    loop {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            c = connect(client, &uri, last_id.as_deref(), opts) => c,
        };
        let why = match opened {
            Ok(mut conn) => {
                if sender.send(SseMessage::Connected).await.is_err() {
                    return Ok(());
                }
                let since = std::time::Instant::now();
                let mut events = 0u64;
                let mut state = Follow {
                    delivered: &mut delivered,
                    last_id: &mut last_id,
                    events: &mut events,
                };
                let Some(e) = follow(&mut conn, server_id, &sender, &cancel, &mut state).await
                else {
                    return Ok(());
                };
                // A stream that ends at once, having carried nothing, counts as a failure (a
                // BMC that accepts and hangs up must not be hammered).
                if events > 0 || since.elapsed() >= HEALTHY {
                    failures = 0;
                } else {
                    failures += 1;
                }
                e.to_string()
            }
            Err(e @ (SseError::NotEventStream { .. } | SseError::NotOffered)) => return Err(e),
            Err(SseError::Bmc(e))
                if e.status().is_some_and(|s| s == 404 || s == 405 || s == 501) =>
            {
                return Err(SseError::Bmc(e));
            }
            Err(e) => {
                failures += 1;
                e.to_string()
            }
        };
        if opts.max_failures > 0 && failures >= opts.max_failures {
            return Err(SseError::GaveUp {
                failures,
                last: why,
            });
        }
        if sender
            .send(SseMessage::Problem(format!(
                "event stream {uri}: {why}; reconnecting"
            )))
            .await
            .is_err()
        {
            return Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(backoff(opts, failures)) => {}
        }
    }
}

/// How long a connection must last to count as healthy even if it carried no event.
const HEALTHY: Duration = Duration::from_secs(30);

/// What outlives one connection: records delivered (to drop replays), the last event id, and
/// how many events this connection carried.
struct Follow<'a> {
    delivered: &'a mut VecDeque<String>,
    last_id: &'a mut Option<String>,
    events: &'a mut u64,
}

/// The key that tells a replayed record from a new one (a reused EventId with other content
/// is new).
fn record_key(e: &HardwareLogEntry) -> String {
    format!("{}\u{0}{}\u{0}{}", e.entry_id, e.created, e.message)
}

/// Delivers events of one connection; `None` when the caller is done, else why it ended.
async fn follow(
    conn: &mut SseConnection,
    server_id: &str,
    sender: &mpsc::Sender<SseMessage>,
    cancel: &CancellationToken,
    st: &mut Follow<'_>,
) -> Option<SseError> {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return None,
            e = conn.next_event() => e,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return Some(e),
        };
        *st.events += 1;
        if let Some(id) = conn.last_event_id() {
            *st.last_id = Some(id.to_string());
        }
        let observed = chrono::Utc::now().timestamp_millis();
        for r in event_entries(&ev.data, ev.id.as_deref(), server_id, observed) {
            let msg = match r {
                Ok(e) if st.delivered.contains(&record_key(&e)) => continue,
                Ok(e) => {
                    st.delivered.push_back(record_key(&e));
                    while st.delivered.len() > 1024 {
                        st.delivered.pop_front();
                    }
                    SseMessage::Entry(e)
                }
                Err(why) => SseMessage::Problem(format!("event {:?}: {why}", ev.id)),
            };
            if sender.send(msg).await.is_err() {
                return None;
            }
        }
    }
}

fn backoff(opts: &SseOptions, failures: u32) -> Duration {
    let base = opts
        .backoff_min
        .saturating_mul(1u32 << failures.min(16))
        .min(opts.backoff_max);
    let ms = base.as_millis() as u64;
    Duration::from_millis(ms + rand::random_range(0..=ms / 4 + 1))
}
