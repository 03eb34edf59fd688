//! A minimal DER/BER TLV reader for the PKCS#7 walker: it keeps the raw bytes of every element,
//! which signature checks need (signed attributes are hashed as encoded), and never panics.

/// Tag of a universal SEQUENCE.
pub(crate) const SEQUENCE: u8 = 0x30;
/// Tag of a universal SET.
pub(crate) const SET: u8 = 0x31;
/// Tag of an OBJECT IDENTIFIER.
pub(crate) const OID: u8 = 0x06;
/// Tag of an OCTET STRING.
pub(crate) const OCTET_STRING: u8 = 0x04;
/// Tag of an INTEGER.
pub(crate) const INTEGER: u8 = 0x02;

/// One element: its tag, the whole encoding and the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet (single-byte tags only; high tag numbers are refused).
    pub(crate) tag: u8,
    /// Tag, length and content as they appear in the input.
    pub(crate) raw: &'a [u8],
    /// The content octets.
    pub(crate) content: &'a [u8],
}

/// Reads one definite-length element from the front of `buf`; returns it and the rest.
pub(crate) fn read(buf: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let tag = *buf.first()?;
    if tag & 0x1F == 0x1F {
        return None;
    }
    let first = *buf.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7F);
        // 0x80 is BER's indefinite length: not used by Authenticode, refused.
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*buf.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let raw = buf.get(..end)?;
    Some((
        Tlv {
            tag,
            raw,
            content: raw.get(hdr..)?,
        },
        buf.get(end..)?,
    ))
}

/// Reads one element that must carry `tag`.
pub(crate) fn expect(buf: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let (t, rest) = read(buf)?;
    (t.tag == tag).then_some((t, rest))
}

/// All elements of a constructed content, in order; `None` if any is malformed.
pub(crate) fn children(content: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (t, r) = read(rest)?;
        out.push(t);
        rest = r;
    }
    Some(out)
}

/// Dotted form of an OBJECT IDENTIFIER's content.
pub(crate) fn oid_string(content: &[u8]) -> Option<String> {
    let first = *content.first()?;
    let mut parts = vec![u64::from(first / 40).min(2), 0];
    parts[1] = u64::from(first) - parts[0] * 40;
    let mut v: u64 = 0;
    for &b in content.get(1..)? {
        v = v.checked_mul(128)? | u64::from(b & 0x7F);
        if b & 0x80 == 0 {
            parts.push(v);
            v = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Reads an OID element and returns it dotted.
pub(crate) fn read_oid(buf: &[u8]) -> Option<(String, &[u8])> {
    let (t, rest) = expect(buf, OID)?;
    Some((oid_string(t.content)?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let (t, rest) = read(&[0x04, 0x02, 1, 2, 9]).expect("short");
        assert_eq!((t.tag, t.content, rest), (4, &[1u8, 2][..], &[9u8][..]));
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(read(&long).map(|(t, _)| t.content.len()), Some(0x80));
        assert!(read(&[0x04, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x04, 0x80, 0, 0]).is_none());
        assert!(read(&[0x04, 0x03, 1]).is_none());
    }

    #[test]
    fn oids() {
        // 1.2.840.113549.1.7.2 (signedData).
        let c = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
        assert_eq!(oid_string(&c).as_deref(), Some("1.2.840.113549.1.7.2"));
    }
}
