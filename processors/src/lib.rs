//! Processors: stateful consumers that derive current state and health from the log and put
//! their results on other topics, exactly once (see [`runtime`]).

pub mod codec;
pub mod firmware_updates;
pub mod health;
pub mod inventory;
pub mod runtime;
pub mod server_state;
pub mod tpm;

pub use codec::RecordCodec;
pub use runtime::{Processor, ProcessorError, Rejection, RunnerConfig, run};
