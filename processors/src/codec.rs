//! The processors' one way to read and write records: the topic's schema with its registered id,
//! every failure a [`Rejection`] (so the record is dead-lettered with the reason, never a panic).

use automata_log::ConsumedRecord;
use automata_schemas::catalog::{TopicSpec, topic};
use automata_schemas::{SchemaIds, decode, encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runtime::Rejection;

/// Decodes inputs and encodes outputs with the registered schema ids.
#[derive(Debug, Clone)]
pub struct RecordCodec {
    ids: SchemaIds,
}

impl RecordCodec {
    /// A codec over the registered schema `ids`.
    pub fn new(ids: SchemaIds) -> Self {
        RecordCodec { ids }
    }

    /// The topic's contract and its registered schema id.
    pub fn spec(&self, name: &str) -> Result<(&'static TopicSpec, u32), Rejection> {
        let spec = topic(name).ok_or_else(|| Rejection(format!("no topic spec for {name}")))?;
        let id = self
            .ids
            .get(name)
            .ok_or_else(|| Rejection(format!("no registered schema for {name}")))?;
        Ok((spec, id))
    }

    /// The record's value as the topic's record type.
    pub fn decode<T: DeserializeOwned>(
        &self,
        name: &str,
        r: &ConsumedRecord,
    ) -> Result<T, Rejection> {
        let (spec, id) = self.spec(name)?;
        let value = r
            .record
            .value
            .as_deref()
            .ok_or_else(|| Rejection("record has no value".into()))?;
        decode(spec, id, value).map_err(|e| Rejection(format!("cannot decode {name}: {e}")))
    }

    /// `value` in the topic's wire format.
    pub fn encode<T: Serialize>(&self, name: &str, value: &T) -> Result<Vec<u8>, Rejection> {
        let (spec, id) = self.spec(name)?;
        encode(spec, id, value).map_err(|e| Rejection(format!("cannot encode for {name}: {e}")))
    }
}
