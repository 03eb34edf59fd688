//! Vendor firmware catalogs (Dell, HPE, Lenovo, LVFS, Supermicro, generic) read into one
//! [`CatalogEntry`] model, synced with conditional GETs and diffed, and matched against
//! installed components.
//!
//! One module per vendor; every parser returns [`CatalogError`] on bad input, never panics.

pub mod dell;
pub mod error;
pub mod generic;
pub mod hpe;
pub mod input;
pub mod lenovo;
pub mod lvfs;
pub mod matching;
pub mod model;
pub mod supermicro;
pub mod sync;
pub mod version;
pub mod xml;

pub use error::{CatalogError, Result};
pub use matching::{InstalledComponent, MatchVerdict, match_component};
pub use model::{AppliesTo, CatalogEntry, Criticality, HashStrength, Hashes, PciId, SignatureRef};
pub use sync::{
    CatalogDiff, CatalogFormat, CatalogSnapshot, CatalogSource, EntryChange, SyncOutcome, sync,
    sync_with,
};
pub use version::compare_versions;
