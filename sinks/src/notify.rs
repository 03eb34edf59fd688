//! The notifier: carries `health.events` to people, by route. A route picks events by severity
//! (`min_health`) and server group (a glob on `server_id`) and sends each to a generic webhook
//! (JSON POST of the event), a Slack-compatible incoming webhook (`{"text": …}`) and/or e-mail
//! over SMTP (plain or STARTTLS).
//!
//! Per route:
//! - **deduplication**: an event with the same server, component and health as one delivered
//!   less than `dedup_window_secs` before it (by the events' own `raised_at`) is not sent again;
//! - **rate limit**: a token bucket of `rate_per_minute` tokens (the burst), refilled evenly over
//!   a minute. A notification that finds the bucket empty is **dropped and counted**
//!   (`automata_notify_suppressed_total{reason="rate_limited"}`), with one warning per burst: in a
//!   storm the first ones carry the news and the health state shows the rest;
//! - **retries**: connection errors, timeouts, HTTP 5xx/429 and transient SMTP replies are retried
//!   `retries` times with full-jitter exponential backoff from `retry_base_ms`; anything else, or
//!   the last failure, is logged and counted (`automata_notify_failed_total`) and given up.
//!
//! Every attempt has a timeout, so a batch always ends: its offsets are committed after each of
//! its notifications was delivered or given up. Delivery is at least once across a crash (the
//! deduplication memory is not persisted). A new sink group starts from new events; events older
//! than `max_age_secs` (a backlog after an outage) are counted and skipped.
//!
//! Secrets (webhook URLs, which carry tokens, and the SMTP password) are [`Secret`]s: `Debug` and
//! `Serialize` print `***`, and no log line names a URL (reqwest errors are stripped of theirs).

use std::collections::HashMap;
use std::time::Duration;

use automata_log::{ConsumedRecord, StartFrom, TopicPartitionOffset, offsets_to_commit};
use automata_schemas::catalog::{HEALTH_EVENTS, topic};
use automata_schemas::types::{Health, HealthEvent};
use automata_schemas::{SchemaIds, decode};
use futures::StreamExt;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::runtime::{Sink, SinkError};

const SINK: &str = "notify";

/// A configuration value that must never reach a log: `Debug` and `Serialize` print `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Where and how health events are sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// The routes; an event goes to every route that matches it.
    pub routes: Vec<Route>,
    /// Same server, component and health within this window (by `raised_at`): sent once.
    pub dedup_window_secs: u64,
    /// Retries after the first attempt, for transient failures.
    pub retries: u32,
    /// First retry delay; doubles per retry, with full jitter.
    pub retry_base_ms: u64,
    /// Timeout of one attempt (HTTP request or SMTP session).
    pub timeout_secs: u64,
    /// Events raised longer ago than this are skipped (a backlog after an outage).
    pub max_age_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            routes: Vec::new(),
            dedup_window_secs: 600,
            retries: 3,
            retry_base_ms: 500,
            timeout_secs: 10,
            max_age_secs: 3600,
            concurrency: 8,
        }
    }
}

fn default_min_health() -> Health {
    Health::Warning
}
fn default_servers() -> String {
    "*".into()
}
fn yes() -> bool {
    true
}
fn default_rate() -> u32 {
    30
}

/// Which level of health change a route sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// A server's overall health (its roll-up, which names the cause): one page per problem.
    #[default]
    Servers,
    /// Each component's and sensor's own health.
    Components,
    /// Both.
    All,
}

/// One route: which events, and where they go.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    /// Name, for logs and metrics.
    pub name: String,
    /// Least severe health sent (`WARNING` by default).
    #[serde(default = "default_min_health")]
    pub min_health: Health,
    /// Glob (`*`, `?`, `[…]`) on `server_id`: the server group this route serves (`*` by default).
    #[serde(default = "default_servers")]
    pub servers: String,
    /// Which health changes: the server's (one per server problem, by default), its
    /// components' (one per sensor or part), or both.
    #[serde(default)]
    pub scope: Scope,
    /// Also send recoveries (an event to OK from at least `min_health`); on by default.
    #[serde(default = "yes")]
    pub recoveries: bool,
    /// Token bucket: notifications per minute, and the burst (0 = unlimited).
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// Generic webhook: the event as JSON.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// Slack-compatible incoming webhook.
    #[serde(default)]
    pub slack: Option<Secret>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<EmailConfig>,
}

/// An SMTP relay and the addresses of a route's e-mails.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailConfig {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender.
    pub from: String,
    /// SMTP relay host.
    pub smtp_host: String,
    /// SMTP port (587 by default).
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    /// Upgrade to TLS with STARTTLS (required when on, the default); off = plain SMTP.
    #[serde(default = "yes")]
    pub starttls: bool,
    /// SMTP user, if the relay wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP password.
    #[serde(default)]
    pub password: Option<Secret>,
}

fn default_smtp_port() -> u16 {
    587
}

/// Why the notifier cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A route's configuration is wrong.
    #[error("notify route {route}: {message}")]
    Config {
        /// Route name.
        route: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("notify: cannot build the HTTP client: {0}")]
    Http(String),
}

/// A token bucket: `capacity` tokens, refilled at `per_sec`.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        let capacity = f64::from(per_minute);
        Bucket {
            capacity,
            tokens: capacity,
            per_sec: capacity / 60.0,
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        if self.capacity <= 0.0 {
            return true; // unlimited
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Mail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

struct RouteState {
    route: Route,
    bucket: Bucket,
    /// The route's server group, compiled.
    servers: glob::Pattern,
    /// Last delivered `raised_at` per (server, component, health).
    delivered: HashMap<(String, Option<String>, Health), i64>,
    mail: Option<Mail>,
    /// Dropped by the rate limit since the last warning.
    limited: u64,
}

impl RouteState {
    fn wants(&self, e: &HealthEvent) -> bool {
        let min = self.route.min_health;
        let severe = e.health >= min;
        let recovery = self.route.recoveries && e.health == Health::Ok && e.previous >= min;
        let scoped = match self.route.scope {
            Scope::Servers => e.component_id.is_none(),
            Scope::Components => e.component_id.is_some(),
            Scope::All => true,
        };
        (severe || recovery) && scoped && self.servers.matches(&e.server_id)
    }
}

/// Which way a notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Webhook,
    Slack,
    Email,
}

impl Channel {
    fn label(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Slack => "slack",
            Channel::Email => "email",
        }
    }
}

/// One notification to deliver.
struct Job {
    route: String,
    channel: Channel,
    send: Send,
}

enum Send {
    Http {
        url: Secret,
        body: serde_json::Value,
    },
    Mail {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        message: Box<Message>,
    },
}

/// An attempt's failure: worth retrying or not.
enum Failure {
    Transient(String),
    Permanent(String),
}

/// The notification sink for `health.events`.
pub struct NotifySink {
    ids: SchemaIds,
    cfg: NotifyConfig,
    http: reqwest::Client,
    routes: Vec<RouteState>,
}

impl NotifySink {
    /// A notifier decoding with the registered schema `ids`, sending as `cfg` says.
    pub fn new(ids: SchemaIds, cfg: NotifyConfig) -> Result<Self, NotifyError> {
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("metal-automata/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Http(e.without_url().to_string()))?;
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for route in &cfg.routes {
            let err = |message: String| NotifyError::Config {
                route: route.name.clone(),
                message,
            };
            for (what, url) in [("webhook", &route.webhook), ("slack", &route.slack)] {
                if let Some(u) = url {
                    let scheme_ok = reqwest::Url::parse(u.expose())
                        .is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                    if !scheme_ok {
                        return Err(err(format!("{what} is not an http(s) URL")));
                    }
                }
            }
            let mail = match &route.email {
                None => None,
                Some(e) => Some(mailer(e, timeout).map_err(err)?),
            };
            let servers = glob::Pattern::new(&route.servers).map_err(|e| {
                err(format!(
                    "servers {:?} is not a valid glob: {e}",
                    route.servers
                ))
            })?;
            routes.push(RouteState {
                servers,
                route: route.clone(),
                bucket: Bucket::new(route.rate_per_minute),
                delivered: HashMap::new(),
                mail,
                limited: 0,
            });
        }
        Ok(NotifySink {
            ids,
            cfg,
            http,
            routes,
        })
    }

    /// The notifications due for `e`, after routing, deduplication and rate limits.
    fn plan(&mut self, e: &HealthEvent, jobs: &mut Vec<Job>) {
        let window_ms =
            i64::try_from(self.cfg.dedup_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        for rs in &mut self.routes {
            if !rs.wants(e) {
                continue;
            }
            let name = rs.route.name.clone();
            let key = (e.server_id.clone(), e.component_id.clone(), e.health);
            if rs
                .delivered
                .get(&key)
                .is_some_and(|at| (e.raised_at - at).abs() < window_ms)
            {
                metrics::counter!("automata_notify_suppressed_total", "route" => name, "reason" => "duplicate")
                    .increment(1);
                continue;
            }
            if !rs.bucket.take() {
                if rs.limited == 0 {
                    tracing::warn!(route = %name, rate_per_minute = rs.route.rate_per_minute, "notification rate limit reached; dropping the excess");
                }
                rs.limited += 1;
                metrics::counter!("automata_notify_suppressed_total", "route" => name, "reason" => "rate_limited")
                    .increment(1);
                continue;
            }
            if rs.limited > 0 {
                tracing::info!(route = %name, dropped = rs.limited, "notification rate limit over");
                rs.limited = 0;
            }
            rs.delivered.insert(key, e.raised_at);
            if let Some(url) = &rs.route.webhook {
                jobs.push(Job {
                    route: name.clone(),
                    channel: Channel::Webhook,
                    send: Send::Http {
                        url: url.clone(),
                        body: serde_json::to_value(e).unwrap_or(serde_json::Value::Null),
                    },
                });
            }
            if let Some(url) = &rs.route.slack {
                jobs.push(Job {
                    route: name.clone(),
                    channel: Channel::Slack,
                    send: Send::Http {
                        url: url.clone(),
                        body: serde_json::json!({ "text": slack_text(e) }),
                    },
                });
            }
            if let Some(m) = &rs.mail {
                match email(m, e) {
                    Ok(message) => jobs.push(Job {
                        route: name.clone(),
                        channel: Channel::Email,
                        send: Send::Mail {
                            transport: m.transport.clone(),
                            message: Box::new(message),
                        },
                    }),
                    Err(err) => {
                        tracing::error!(route = %name, error = %err, "cannot build the e-mail");
                        metrics::counter!("automata_notify_failed_total", "route" => name, "channel" => "email")
                            .increment(1);
                    }
                }
            }
        }
    }

    /// Delivers one notification, retrying transient failures; true when delivered.
    async fn deliver(&self, job: Job) -> bool {
        let retries = self.cfg.retries;
        let base = Duration::from_millis(self.cfg.retry_base_ms.max(1));
        let mut attempt = 0u32;
        loop {
            let result = match &job.send {
                Send::Http { url, body } => post(&self.http, url, body).await,
                Send::Mail { transport, message } => {
                    match transport.send(message.as_ref().clone()).await {
                        Ok(_) => Ok(()),
                        Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
                        Err(e) => Err(Failure::Transient(e.to_string())),
                    }
                }
            };
            let channel = job.channel.label();
            match result {
                Ok(()) => {
                    metrics::counter!("automata_notify_sent_total", "route" => job.route.clone(), "channel" => channel)
                        .increment(1);
                    return true;
                }
                Err(Failure::Transient(why)) if attempt < retries => {
                    let ceiling = base.saturating_mul(2u32.saturating_pow(attempt));
                    let delay = ceiling.mul_f64(rand::random_range(0.5..=1.0));
                    tracing::debug!(route = %job.route, channel, attempt, error = %why, retry_in = ?delay, "notification failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(Failure::Transient(why) | Failure::Permanent(why)) => {
                    tracing::error!(route = %job.route, channel, attempts = attempt + 1, error = %why, "notification given up");
                    metrics::counter!("automata_notify_failed_total", "route" => job.route.clone(), "channel" => channel)
                        .increment(1);
                    return false;
                }
            }
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &Secret,
    body: &serde_json::Value,
) -> Result<(), Failure> {
    match http.post(url.expose()).json(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                Ok(())
            } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                Err(Failure::Transient(format!("HTTP {status}")))
            } else {
                Err(Failure::Permanent(format!("HTTP {status}")))
            }
        }
        // The URL carries the token: never let it reach a log line.
        Err(e) => {
            let transient = e.is_timeout() || e.is_connect() || e.is_request();
            let why = e.without_url().to_string();
            if transient {
                Err(Failure::Transient(why))
            } else {
                Err(Failure::Permanent(why))
            }
        }
    }
}

fn mailer(e: &EmailConfig, timeout: Duration) -> Result<Mail, String> {
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|err| format!("bad from address: {err}"))?;
    let to =
        e.to.iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|err| format!("bad to address {t}: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
    if to.is_empty() {
        return Err("email has no recipients".into());
    }
    let builder = if e.starttls {
        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.smtp_host)
            .map_err(|err| format!("smtp relay {}: {err}", e.smtp_host))?
    } else {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.smtp_host)
    };
    let mut builder = builder.port(e.smtp_port).timeout(Some(timeout));
    match (&e.username, &e.password) {
        (Some(u), Some(p)) => {
            builder = builder.credentials(Credentials::new(u.clone(), p.expose().to_string()));
        }
        (None, None) => {}
        _ => return Err("username and password go together".into()),
    }
    Ok(Mail {
        transport: builder.build(),
        from,
        to,
    })
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn subject_of(e: &HealthEvent) -> String {
    match &e.component_id {
        Some(c) => format!("{} {c}", e.server_id),
        None => e.server_id.clone(),
    }
}

/// The one line a Slack channel shows for an event.
pub fn slack_text(e: &HealthEvent) -> String {
    let icon = match e.health {
        Health::Critical => ":red_circle:",
        Health::Warning => ":warning:",
        Health::Ok => ":white_check_mark:",
        Health::Unknown => ":grey_question:",
    };
    format!(
        "{icon} *{}* {}: {} (was {}, {})",
        word(e.health),
        subject_of(e),
        e.message,
        word(e.previous),
        e.classification
    )
}

fn email(m: &Mail, e: &HealthEvent) -> Result<Message, lettre::error::Error> {
    let mut body = format!(
        "{}\n\nServer:         {}\nComponent:      {}\nHealth:         {} -> {}\nClassification: {}\nRaised at:      {}\n",
        e.message,
        e.server_id,
        e.component_id.as_deref().unwrap_or("(the server)"),
        word(e.previous),
        word(e.health),
        e.classification,
        when(e.raised_at),
    );
    if !e.evidence.is_empty() {
        body.push_str("\nEvidence:\n");
        for x in &e.evidence {
            body.push_str(&format!(
                "- [{}] {} ({})\n",
                x.kind,
                x.detail,
                when(x.observed_at)
            ));
        }
    }
    let mut b = Message::builder()
        .from(m.from.clone())
        .subject(format!(
            "[metal-automata] {} {}: {}",
            word(e.health),
            subject_of(e),
            e.classification
        ))
        .header(ContentType::TEXT_PLAIN);
    for to in &m.to {
        b = b.to(to.clone());
    }
    b.body(body)
}

fn word(h: Health) -> &'static str {
    match h {
        Health::Unknown => "UNKNOWN",
        Health::Ok => "OK",
        Health::Warning => "WARNING",
        Health::Critical => "CRITICAL",
    }
}

impl Sink for NotifySink {
    fn name(&self) -> &'static str {
        SINK
    }

    fn inputs(&self) -> Vec<&'static str> {
        vec![HEALTH_EVENTS]
    }

    fn start_from(&self) -> StartFrom {
        StartFrom::Latest
    }

    async fn write(
        &mut self,
        batch: &[ConsumedRecord],
    ) -> Result<Vec<TopicPartitionOffset>, SinkError> {
        let (Some(spec), Some(id)) = (topic(HEALTH_EVENTS), self.ids.get(HEALTH_EVENTS)) else {
            return Err(SinkError::Write {
                sink: SINK,
                message: "no registered schema for health.events".into(),
            });
        };
        let oldest = chrono::Utc::now().timestamp_millis()
            - i64::try_from(self.cfg.max_age_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let mut jobs = Vec::new();
        for r in batch {
            let Some(value) = r.record.value.as_deref() else {
                continue;
            };
            let e: HealthEvent = match decode(spec, id, value) {
                Ok(e) => e,
                Err(err) => {
                    metrics::counter!("automata_notify_unreadable_total").increment(1);
                    tracing::debug!(offset = r.offset, error = %err, "unreadable health event skipped");
                    continue;
                }
            };
            if e.raised_at < oldest {
                metrics::counter!("automata_notify_suppressed_total", "route" => "", "reason" => "stale")
                    .increment(1);
                continue;
            }
            self.plan(&e, &mut jobs);
        }
        // In order within a route's channel (a recovery never overtakes its problem), channels
        // and routes side by side.
        let mut lanes: Vec<Vec<Job>> = Vec::new();
        for j in jobs {
            match lanes.iter_mut().find(|l| {
                l.first()
                    .is_some_and(|f| f.route == j.route && f.channel == j.channel)
            }) {
                Some(lane) => lane.push(j),
                None => lanes.push(vec![j]),
            }
        }
        let this = &*self;
        futures::stream::iter(lanes)
            .map(|lane| async move {
                for j in lane {
                    this.deliver(j).await;
                }
            })
            .buffer_unordered(self.cfg.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
        Ok(offsets_to_commit(batch))
    }
}
