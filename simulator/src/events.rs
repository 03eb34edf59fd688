//! The simulated EventService's Server-Sent Events: every new log entry of a BMC becomes a
//! Redfish `Event` on `/redfish/v1/EventService/SSE`, with increasing SSE ids, a short replay
//! for clients that come back with `Last-Event-ID`, and keep-alive comments.
//!
//! A BMC nobody ever subscribed to pays one atomic load per log entry; requests to other
//! resources never touch any of this.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Where the stream is served (`EventService.ServerSentEventUri`).
pub const SSE_URI: &str = "/redfish/v1/EventService/SSE";
/// How often an idle stream sends a comment, so clients and proxies keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Events kept for replay to a client that reconnects with `Last-Event-ID`.
const REPLAY: usize = 64;
/// Events buffered per subscriber before it counts as too slow (it is then disconnected and
/// catches up by replay).
const BUFFER: usize = 64;

/// One event, formatted once for every subscriber.
#[derive(Debug)]
pub struct Frame {
    /// Its SSE id.
    pub id: u64,
    /// `id: …\ndata: …\n\n`.
    pub text: Bytes,
}

/// A BMC's event fan-out.
#[derive(Debug)]
pub struct EventHub {
    tx: broadcast::Sender<Arc<Frame>>,
    recent: Mutex<VecDeque<Arc<Frame>>>,
    next: AtomicU64,
    kick: Mutex<CancellationToken>,
    /// Whether anyone ever subscribed: until then events are not even formatted.
    wanted: AtomicBool,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            tx: broadcast::channel(BUFFER).0,
            recent: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(1),
            kick: Mutex::new(CancellationToken::new()),
            wanted: AtomicBool::new(false),
        }
    }
}

/// A Redfish `Event` carrying one log entry.
pub fn event_json(id: u64, entry: &Value) -> Value {
    let mut record = json!({
        "MemberId": "0",
        "EventId": id.to_string(),
        "EventType": "Alert",
        "EventTimestamp": entry.get("Created").cloned().unwrap_or(Value::Null),
        "Severity": entry.get("Severity").cloned().unwrap_or(json!("OK")),
        "MessageSeverity": entry.get("Severity").cloned().unwrap_or(json!("OK")),
        "Message": entry.get("Message").cloned().unwrap_or(json!("")),
        "MessageId": entry.get("MessageId").cloned().unwrap_or(json!("")),
        "MessageArgs": [],
    });
    if let Some(o) = entry.pointer("/Links/OriginOfCondition") {
        record["OriginOfCondition"] = o.clone();
    }
    if let Some(u) = entry.get("@odata.id") {
        record["LogEntry"] = json!({"@odata.id": u});
    }
    json!({
        "@odata.type": "#Event.v1_7_0.Event",
        "Id": id.to_string(),
        "Name": "Event Array",
        "Context": "metal-automata-simulator",
        "Events": [record],
    })
}

impl EventHub {
    /// Publishes a new log entry as an event.
    pub fn publish(&self, entry: &Value) {
        if !self.wanted.load(Ordering::Relaxed) {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let data = event_json(id, entry).to_string();
        let frame = Arc::new(Frame {
            id,
            text: Bytes::from(format!("id: {id}\ndata: {data}\n\n")),
        });
        recent.push_back(frame.clone());
        while recent.len() > REPLAY {
            recent.pop_front();
        }
        // No subscriber is not an error: the event is kept for replay only.
        let _ = self.tx.send(frame);
    }

    /// Ends every open stream now (as a BMC restart does); clients reconnect.
    pub fn drop_streams(&self) {
        let mut k = self.kick.lock().unwrap_or_else(|p| p.into_inner());
        k.cancel();
        *k = CancellationToken::new();
    }

    /// A subscriber: the events after `last_id` still held, then the live ones.
    fn subscribe(
        &self,
        last_id: Option<u64>,
    ) -> (
        VecDeque<Arc<Frame>>,
        broadcast::Receiver<Arc<Frame>>,
        CancellationToken,
    ) {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        self.wanted.store(true, Ordering::Relaxed);
        let replay = match last_id {
            Some(l) => recent.iter().filter(|f| f.id > l).cloned().collect(),
            None => VecDeque::new(),
        };
        let rx = self.tx.subscribe();
        drop(recent);
        let kick = self.kick.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (replay, rx, kick)
    }

    /// The body of one SSE response: a greeting comment, the replay, live events and
    /// keep-alives, until the fleet stops, the BMC drops its streams or the client lags.
    pub fn stream(
        &self,
        last_id: Option<u64>,
        stop: CancellationToken,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        let (replay, rx, kick) = self.subscribe(last_id);
        let state = Sub {
            greeted: false,
            replay,
            rx,
            kick,
            stop,
        };
        futures::stream::unfold(state, |mut s| async move {
            let b = s.next().await?;
            Some((Ok(b), s))
        })
    }
}

struct Sub {
    greeted: bool,
    replay: VecDeque<Arc<Frame>>,
    rx: broadcast::Receiver<Arc<Frame>>,
    kick: CancellationToken,
    stop: CancellationToken,
}

impl Sub {
    async fn next(&mut self) -> Option<Bytes> {
        if !self.greeted {
            self.greeted = true;
            return Some(Bytes::from_static(
                b": metal-automata simulated BMC events\n\n",
            ));
        }
        if let Some(f) = self.replay.pop_front() {
            return Some(f.text.clone());
        }
        // Biased: a dropped stream ends before it delivers what was logged after the drop.
        tokio::select! {
            biased;
            _ = self.stop.cancelled() => None,
            _ = self.kick.cancelled() => None,
            _ = tokio::time::sleep(KEEP_ALIVE) => Some(Bytes::from_static(b": keep-alive\n\n")),
            r = self.rx.recv() => match r {
                Ok(f) => Some(f.text.clone()),
                // Too slow, or the BMC is gone: the client reconnects and catches up by replay.
                Err(_) => None,
            },
        }
    }
}
