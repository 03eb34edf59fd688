//! The contract between all parts of Metal Automata: an Avro schema for every topic, the
//! Confluent wire format records travel in, typed Rust views of the records, and the schema
//! registry that makes them readable by every Kafka tool.

pub mod catalog;
pub mod codec;
pub mod registry;
pub mod sample;
pub mod types;
pub mod wire;

pub use catalog::{SchemaIds, TopicSpec, topics};
pub use codec::{CodecError, decode, encode};
