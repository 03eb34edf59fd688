//! Encoding typed records to Confluent-framed Avro and back, without ever panicking on input.

use apache_avro::from_value;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::{Serialize, de::DeserializeOwned};

use crate::catalog::TopicSpec;
use crate::wire::{WireError, frame, unframe};

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The topic has no Avro schema.
    #[error("topic {0} carries no Avro schema")]
    NotAvro(String),
    /// Not in the wire format.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Written with a schema id this process does not know.
    #[error("unknown schema id {found} (this process reads id {expected})")]
    UnknownSchemaId {
        /// Id in the record.
        found: u32,
        /// Id we know.
        expected: u32,
    },
    /// The Avro body does not match the schema, or the value does not match the type.
    #[error("avro: {0}")]
    Avro(String),
}

fn avro_err(e: impl std::fmt::Display) -> CodecError {
    CodecError::Avro(e.to_string())
}

/// Encodes `value` as a `topic` record written with schema `schema_id`.
pub fn encode<T: Serialize>(
    topic: &TopicSpec,
    schema_id: u32,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    let schema = topic
        .schema()
        .ok_or_else(|| CodecError::NotAvro(topic.name.into()))?;
    // Serialises straight from serde into Avro: no intermediate `Value`.
    let body = GenericDatumWriter::builder(schema)
        .build()
        .map_err(avro_err)?
        .write_ser_to_vec(value)
        .map_err(avro_err)?;
    Ok(frame(schema_id, &body))
}

/// Decodes a `topic` record written with schema `schema_id` into `T`.
pub fn decode<T: DeserializeOwned>(
    topic: &TopicSpec,
    schema_id: u32,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let schema = topic
        .schema()
        .ok_or_else(|| CodecError::NotAvro(topic.name.into()))?;
    let (id, mut body) = unframe(bytes)?;
    if id != schema_id {
        return Err(CodecError::UnknownSchemaId {
            found: id,
            expected: schema_id,
        });
    }
    let v = GenericDatumReader::builder(schema)
        .build()
        .map_err(avro_err)?
        .read_value(&mut body)
        .map_err(avro_err)?;
    if !body.is_empty() {
        return Err(CodecError::Avro(format!(
            "{} trailing bytes after the record",
            body.len()
        )));
    }
    from_value(&v).map_err(avro_err)
}
