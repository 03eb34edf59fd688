//! BMC clients for Metal Automata: Redfish, and IPMI over LAN (RMCP+) for BMCs without it.
//!
//! One crate serves both the collectors (inventory, telemetry) and the command executors, so that
//! everything that talks to a BMC shares one behaviour: sessions with a basic-auth fallback,
//! `$expand` and `Members@odata.nextLink` paging, TLS that verifies or pins the BMC's certificate,
//! timeouts, retries with backoff and a per-BMC concurrency limit. Credentials live only in
//! [`Credentials`] (redacted in `Debug`, wiped on drop) and, at rest, in the encrypted
//! [`registry::BmcRegistry`].

pub mod error;
pub mod ipmi;
pub mod redfish;
pub mod registry;
pub mod secret;
pub mod tls;

pub use error::BmcError;
pub use redfish::{ClientOptions, RedfishClient};
pub use registry::Protocol;
pub use secret::Credentials;
pub use tls::TlsPolicy;
