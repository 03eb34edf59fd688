//! The pipeline's metric names, label keys and help texts, kept in one place.
//!
//! Every crate records through the `metrics` facade with these constants, so a metric's name,
//! kind, unit and help text are written once and the Prometheus page and the OTLP export agree.
//! Names carry their Prometheus suffix (`_total`, `_bytes`, `_seconds`) themselves: the exporter
//! is run without "recommended naming", so what is written here is exactly what is scraped.

use metrics::Unit;

/// Label keys shared by the metrics below.
pub mod labels {
    /// The topic a record was produced to or consumed from.
    pub const TOPIC: &str = "topic";
    /// The message-log backend (`embedded` or `kafka`).
    pub const BACKEND: &str = "backend";
    /// The partition of a topic, as a decimal string.
    pub const PARTITION: &str = "partition";
    /// The consumer group.
    pub const GROUP: &str = "group";
    /// Why a record could not be decoded or was dead-lettered (a short, bounded token).
    pub const REASON: &str = "reason";
    /// The matched HTTP route template (for example `/api/v1/status`), never the raw path.
    pub const ROUTE: &str = "route";
    /// The HTTP method.
    pub const METHOD: &str = "method";
    /// The HTTP response status code, as a decimal string.
    pub const STATUS: &str = "status";
}

/// Records written to the log. Counter; labels `topic`, `backend`.
pub const RECORDS_PRODUCED: &str = "automata_records_produced_total";
/// Records read from the log. Counter; labels `topic`, `backend`.
pub const RECORDS_CONSUMED: &str = "automata_records_consumed_total";
/// Payload bytes written to the log. Counter; labels `topic`, `backend`.
pub const BYTES_PRODUCED: &str = "automata_produced_bytes_total";
/// Payload bytes read from the log. Counter; labels `topic`, `backend`.
pub const BYTES_CONSUMED: &str = "automata_consumed_bytes_total";
/// Failed produce attempts. Counter; labels `topic`, `backend`.
pub const PRODUCE_ERRORS: &str = "automata_produce_errors_total";
/// Records a consumer group still has to read in one partition. Gauge; labels `topic`, `partition`, `group`.
pub const CONSUMER_LAG: &str = "automata_consumer_lag_records";
/// Records that could not be decoded. Counter; labels `topic`, `reason`.
pub const DECODE_FAILURES: &str = "automata_decode_failures_total";
/// Records sent to a dead-letter topic. Counter; labels `topic`, `reason`.
pub const DEAD_LETTERED: &str = "automata_dead_lettered_records_total";
/// Committed log transactions. Counter; label `backend`.
pub const TRANSACTION_COMMITS: &str = "automata_transaction_commits_total";
/// Aborted log transactions. Counter; label `backend`.
pub const TRANSACTION_ABORTS: &str = "automata_transaction_aborts_total";
/// HTTP requests served by the API. Counter; labels `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "automata_http_requests_total";
/// Time to serve an HTTP request. Histogram in seconds; labels `method`, `route`, `status`.
pub const HTTP_REQUEST_DURATION: &str = "automata_http_request_duration_seconds";

/// The kind of instrument a metric is recorded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing count.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observations.
    Histogram,
}

/// Everything known about one metric: what the Prometheus page's `# HELP` and `# TYPE` say.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// The metric's name (one of the constants in this module).
    pub name: &'static str,
    /// The instrument kind.
    pub kind: MetricKind,
    /// The unit, if any.
    pub unit: Option<Unit>,
    /// The label keys it is recorded with.
    pub labels: &'static [&'static str],
    /// The help text.
    pub help: &'static str,
}

use labels::{BACKEND, GROUP, METHOD, PARTITION, REASON, ROUTE, STATUS, TOPIC};

/// Every metric the pipeline records; [`describe_all`] registers their help texts.
pub const ALL: &[MetricDef] = &[
    MetricDef {
        name: RECORDS_PRODUCED,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[TOPIC, BACKEND],
        help: "Records written to the message log.",
    },
    MetricDef {
        name: RECORDS_CONSUMED,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[TOPIC, BACKEND],
        help: "Records read from the message log.",
    },
    MetricDef {
        name: BYTES_PRODUCED,
        kind: MetricKind::Counter,
        unit: Some(Unit::Bytes),
        labels: &[TOPIC, BACKEND],
        help: "Payload bytes written to the message log.",
    },
    MetricDef {
        name: BYTES_CONSUMED,
        kind: MetricKind::Counter,
        unit: Some(Unit::Bytes),
        labels: &[TOPIC, BACKEND],
        help: "Payload bytes read from the message log.",
    },
    MetricDef {
        name: PRODUCE_ERRORS,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[TOPIC, BACKEND],
        help: "Produce attempts that failed.",
    },
    MetricDef {
        name: CONSUMER_LAG,
        kind: MetricKind::Gauge,
        unit: Some(Unit::Count),
        labels: &[TOPIC, PARTITION, GROUP],
        help: "Records a consumer group has not yet read in a partition.",
    },
    MetricDef {
        name: DECODE_FAILURES,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[TOPIC, REASON],
        help: "Records that could not be decoded.",
    },
    MetricDef {
        name: DEAD_LETTERED,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[TOPIC, REASON],
        help: "Records sent to a dead-letter topic.",
    },
    MetricDef {
        name: TRANSACTION_COMMITS,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[BACKEND],
        help: "Message-log transactions committed.",
    },
    MetricDef {
        name: TRANSACTION_ABORTS,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[BACKEND],
        help: "Message-log transactions aborted.",
    },
    MetricDef {
        name: HTTP_REQUESTS,
        kind: MetricKind::Counter,
        unit: Some(Unit::Count),
        labels: &[METHOD, ROUTE, STATUS],
        help: "HTTP requests served by the API.",
    },
    MetricDef {
        name: HTTP_REQUEST_DURATION,
        kind: MetricKind::Histogram,
        unit: Some(Unit::Seconds),
        labels: &[METHOD, ROUTE, STATUS],
        help: "Time taken to serve an HTTP request.",
    },
];

/// Histogram buckets (seconds) for request latencies: 1 ms to 10 s.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Registers the help text and unit of every metric in [`ALL`] with the installed recorder.
pub fn describe_all() {
    for def in ALL {
        let help = def.help;
        match (def.kind, def.unit) {
            (MetricKind::Counter, Some(unit)) => metrics::describe_counter!(def.name, unit, help),
            (MetricKind::Counter, None) => metrics::describe_counter!(def.name, help),
            (MetricKind::Gauge, Some(unit)) => metrics::describe_gauge!(def.name, unit, help),
            (MetricKind::Gauge, None) => metrics::describe_gauge!(def.name, help),
            (MetricKind::Histogram, Some(unit)) => {
                metrics::describe_histogram!(def.name, unit, help)
            }
            (MetricKind::Histogram, None) => metrics::describe_histogram!(def.name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_prometheus_safe() {
        let mut seen = HashSet::new();
        for def in ALL {
            assert!(seen.insert(def.name), "duplicate metric {}", def.name);
            assert!(
                def.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{} is not a plain Prometheus name",
                def.name
            );
            if def.kind == MetricKind::Counter {
                assert!(def.name.ends_with("_total"), "{} lacks _total", def.name);
            }
            assert!(!def.help.is_empty());
        }
    }
}
