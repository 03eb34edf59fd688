//! Encoding typed records to Confluent-framed Avro and back, without ever panicking on input.

use std::collections::HashMap;
use std::sync::LazyLock;

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

/// One reader and one writer per Avro topic, built once: building one resolves every named type
/// of the schema, which cost more than the record itself when it was done per record.
static CODECS: LazyLock<HashMap<&'static str, Codec>> = LazyLock::new(|| {
    crate::catalog::topics()
        .iter()
        .filter_map(|t| {
            let schema = t.schema()?;
            let reader = GenericDatumReader::builder(schema).build().ok()?;
            let writer = GenericDatumWriter::builder(schema).build().ok()?;
            Some((t.name, Codec { reader, writer }))
        })
        .collect()
});

struct Codec {
    reader: GenericDatumReader<'static>,
    writer: GenericDatumWriter<'static>,
}

fn codec(topic: &TopicSpec) -> Result<&'static Codec, CodecError> {
    CODECS
        .get(topic.name)
        .ok_or_else(|| CodecError::NotAvro(topic.name.into()))
}

fn body(schema_id: u32, bytes: &[u8]) -> Result<&[u8], CodecError> {
    let (id, body) = unframe(bytes)?;
    if id != schema_id {
        return Err(CodecError::UnknownSchemaId {
            found: id,
            expected: schema_id,
        });
    }
    Ok(body)
}

fn no_trailing(rest: &[u8]) -> Result<(), CodecError> {
    if rest.is_empty() {
        Ok(())
    } else {
        Err(CodecError::Avro(format!(
            "{} trailing bytes after the record",
            rest.len()
        )))
    }
}

/// Encodes `value` as a `topic` record written with schema `schema_id`.
pub fn encode<T: Serialize>(
    topic: &TopicSpec,
    schema_id: u32,
    value: &T,
) -> Result<Vec<u8>, CodecError> {
    // Serialises straight from serde into Avro: no intermediate `Value`.
    let body = codec(topic)?
        .writer
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
    let mut rest = body(schema_id, bytes)?;
    let v = codec(topic)?
        .reader
        .read_value(&mut rest)
        .map_err(avro_err)?;
    no_trailing(rest)?;
    from_value(&v).map_err(avro_err)
}
