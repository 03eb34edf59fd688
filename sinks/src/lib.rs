//! Sinks: carry topics out of the log into history, metrics and notifications (see [`runtime`]).

pub mod fleet_metrics;
pub mod history;
pub mod notify;
pub mod runtime;

pub use runtime::{Sink, SinkError, run};
