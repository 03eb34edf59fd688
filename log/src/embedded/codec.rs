//! On-disk encoding of records in the embedded store.
//!
//! Key: partition (u32, big endian) ++ offset (u64, big endian), so a partition is one ordered
//! range of the topic's keyspace. Value: a small versioned binary frame, decoded defensively:
//! a damaged record is reported as `LogError::Corrupt`, never a panic.

use bytes::Bytes;

use crate::record::{Header, Record};

const FORMAT_V1: u8 = 1;

/// The store key of a record.
pub(crate) fn record_key(partition: i32, offset: i64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&(partition as u32).to_be_bytes());
    k[4..].copy_from_slice(&(offset as u64).to_be_bytes());
    k
}

/// Splits a store key back into (partition, offset).
pub(crate) fn parse_record_key(k: &[u8]) -> Option<(i32, i64)> {
    if k.len() != 12 {
        return None;
    }
    let p = u32::from_be_bytes(k[..4].try_into().ok()?);
    let o = u64::from_be_bytes(k[4..].try_into().ok()?);
    Some((p as i32, o as i64))
}

/// Encodes a record with its (resolved) timestamp.
pub(crate) fn encode(record: &Record, timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 8 + 8 + record.size() + 2 + record.headers.len() * 6);
    out.push(FORMAT_V1);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    put_opt(&mut out, record.key.as_deref());
    put_opt(&mut out, record.value.as_deref());
    out.extend_from_slice(&(record.headers.len().min(u16::MAX as usize) as u16).to_be_bytes());
    for h in record.headers.iter().take(u16::MAX as usize) {
        let name = h.name.as_bytes();
        let name = &name[..name.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&(h.value.len() as u32).to_be_bytes());
        out.extend_from_slice(&h.value);
    }
    out
}

fn put_opt(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// Reads fields from a frame, failing cleanly on short input.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err(format!(
                "truncated: wanted {n} bytes, {} left",
                self.buf.len()
            ));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn opt(&mut self, whole: &Bytes) -> Result<Option<Bytes>, String> {
        let len = i32::from_be_bytes(self.array()?);
        if len < 0 {
            return Ok(None);
        }
        let start = whole.len() - self.buf.len();
        self.take(len as usize)?;
        Ok(Some(whole.slice(start..start + len as usize)))
    }
}

/// Decodes a frame written by [`encode`]; the returned record shares `raw`'s buffer.
pub(crate) fn decode(raw: Bytes) -> Result<Record, String> {
    let mut r = Reader { buf: &raw[..] };
    let [version] = r.array::<1>()?;
    if version != FORMAT_V1 {
        return Err(format!("unknown record format version {version}"));
    }
    let ts = i64::from_be_bytes(r.array()?);
    let key = r.opt(&raw)?;
    let value = r.opt(&raw)?;
    let n = u16::from_be_bytes(r.array()?) as usize;
    let mut headers = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let nl = u16::from_be_bytes(r.array()?) as usize;
        let name = String::from_utf8(r.take(nl)?.to_vec()).map_err(|e| e.to_string())?;
        let vl = u32::from_be_bytes(r.array()?) as usize;
        let start = raw.len() - r.buf.len();
        r.take(vl)?;
        headers.push(Header {
            name,
            value: raw.slice(start..start + vl),
        });
    }
    if !r.buf.is_empty() {
        return Err(format!("{} trailing bytes", r.buf.len()));
    }
    Ok(Record {
        key,
        value,
        headers,
        timestamp_ms: Some(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = Record::new("k", "v").with_header("h", "x");
        let enc = encode(&r, 42);
        let d = decode(Bytes::from(enc)).expect("decodes");
        assert_eq!(d.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(d.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(d.timestamp_ms, Some(42));
        assert_eq!(d.header("h").map(|v| &v[..]), Some(&b"x"[..]));
        let t = decode(Bytes::from(encode(&Record::tombstone("k"), 1))).expect("decodes");
        assert!(t.value.is_none());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let enc = encode(&Record::new("key", "value").with_header("a", "b"), 7);
        for n in 0..enc.len() {
            assert!(
                decode(Bytes::copy_from_slice(&enc[..n])).is_err(),
                "prefix {n}"
            );
        }
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(decode(Bytes::from(bad)).is_err());
    }

    #[test]
    fn keys_sort_by_partition_then_offset() {
        assert!(record_key(0, 5) < record_key(0, 6));
        assert!(record_key(0, i64::MAX) < record_key(1, 0));
        assert_eq!(parse_record_key(&record_key(3, 99)), Some((3, 99)));
    }
}

/// Property tests: whatever bytes the disk holds, decoding returns a record or an error.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(Bytes::from(bytes));
        }

        #[test]
        fn mutated_records_never_panic(
            key in proptest::collection::vec(any::<u8>(), 0..32),
            value in proptest::collection::vec(any::<u8>(), 0..64),
            flip in any::<usize>(),
            to in any::<u8>(),
        ) {
            let r = Record::new(key, value).with_header("h", "v");
            let mut enc = encode(&r, 1);
            let i = flip % enc.len();
            enc[i] = to;
            let _ = decode(Bytes::from(enc));
        }

        #[test]
        fn encode_decode_round_trips(
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
            value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            ts in any::<i64>(),
        ) {
            let r = Record { key: key.map(Bytes::from), value: value.map(Bytes::from), headers: vec![], timestamp_ms: Some(ts) };
            let d = decode(Bytes::from(encode(&r, ts))).expect("round trip");
            prop_assert_eq!(d, r);
        }
    }
}
