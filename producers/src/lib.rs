//! Producers: collectors that stream inventory, telemetry and firmware events into the log.
//!
//! Today: this host's own telemetry and a minimal inventory, so a fresh `serve` shows real data.
//! The BMC collectors (Redfish, IPMI) and the in-band agent build on the same pattern: sample,
//! encode against the registered schema, send keyed by server id.

pub mod bmc;
pub mod findings;
pub mod host;

use automata_log::LogError;
use automata_schemas::CodecError;

/// Why a collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The log refused the records for good.
    #[error("collector {collector}: {source}")]
    Log {
        /// Collector name.
        collector: &'static str,
        /// Why.
        #[source]
        source: LogError,
    },
    /// A record could not be encoded (a bug: the schema and the type disagree).
    #[error("collector {collector}: {source}")]
    Encode {
        /// Collector name.
        collector: &'static str,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// The schema registry has no id for a topic this collector writes.
    #[error("no registered schema for topic {0}")]
    NoSchema(&'static str),
}
