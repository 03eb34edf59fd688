//! The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro body.

/// Why bytes are not a Confluent-framed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than the 5 header bytes.
    #[error("record too short for the Confluent header: {0} bytes")]
    TooShort(usize),
    /// The first byte is not the magic 0.
    #[error("unknown magic byte {0} (expected 0)")]
    BadMagic(u8),
}

/// Frames an Avro body with its schema id.
pub fn frame(schema_id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Splits a framed record into its schema id and Avro body.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < 5 {
        return Err(WireError::TooShort(bytes.len()));
    }
    if bytes[0] != 0 {
        return Err(WireError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let f = frame(7, b"abc");
        assert_eq!(unframe(&f), Ok((7, &b"abc"[..])));
        assert_eq!(unframe(b"\0\0"), Err(WireError::TooShort(2)));
        assert_eq!(unframe(b"\x01\0\0\0\x01x"), Err(WireError::BadMagic(1)));
    }
}
