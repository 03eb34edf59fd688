//! A minimal PKCS#7/CMS SignedData walker (RFC 2315/5652): just what Authenticode and capsule
//! checks need, keeping raw encodings so signatures can be checked over the bytes as signed.

use thiserror::Error;

use crate::der::{self, INTEGER, OCTET_STRING, SEQUENCE, SET, Tlv};

/// id-signedData.
pub const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
/// SPC_INDIRECT_DATA_OBJID: Authenticode's encapsulated content type.
pub const OID_SPC_INDIRECT_DATA: &str = "1.3.6.1.4.1.311.2.1.4";
/// id-messageDigest signed attribute.
pub const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// id-contentType signed attribute.
pub const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
/// szOID_NESTED_SIGNATURE: further signatures carried as an unsigned attribute.
pub const OID_NESTED_SIGNATURE: &str = "1.3.6.1.4.1.311.2.4.1";

/// Why a blob is not a SignedData we can read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Pkcs7Error {
    /// The DER structure is broken at the named element.
    #[error("PKCS#7 malformed: {0}")]
    Malformed(&'static str),
    /// A ContentInfo of another type.
    #[error("PKCS#7 content type {0} is not signedData")]
    NotSignedData(String),
}

/// One SignedData, with raw certificates and signer infos.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedData {
    /// The encapsulated content type (SPC_INDIRECT_DATA for Authenticode).
    pub content_type: String,
    /// The encapsulated content element, tag and length included; `None` when detached.
    pub content: Option<Vec<u8>>,
    /// DER certificates from the `certificates` bag, in order.
    pub certificates: Vec<Vec<u8>>,
    /// The signers.
    pub signers: Vec<SignerInfo>,
}

/// One SignerInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerInfo {
    /// Issuer Name (DER) of the signer certificate, when identified by issuer and serial.
    pub issuer: Vec<u8>,
    /// Serial number content octets.
    pub serial: Vec<u8>,
    /// Subject key identifier, when the signer is identified that way.
    pub subject_key_id: Option<Vec<u8>>,
    /// Digest algorithm OID.
    pub digest_algorithm: String,
    /// The signed attributes as encoded (with their `[0]` tag); `None` when absent.
    pub signed_attrs: Option<Vec<u8>>,
    /// The messageDigest attribute's value.
    pub message_digest: Option<Vec<u8>>,
    /// Signature algorithm OID.
    pub signature_algorithm: String,
    /// The signature value.
    pub signature: Vec<u8>,
    /// Nested signatures (ContentInfo DER) from the unsigned attributes.
    pub nested: Vec<Vec<u8>>,
}

impl SignerInfo {
    /// The bytes the signature covers: the signed attributes re-tagged as a SET (RFC 5652 5.4).
    pub fn signed_attrs_for_signature(&self) -> Option<Vec<u8>> {
        let mut v = self.signed_attrs.clone()?;
        *v.first_mut()? = SET;
        Some(v)
    }
}

fn m<T>(v: Option<T>, what: &'static str) -> Result<T, Pkcs7Error> {
    v.ok_or(Pkcs7Error::Malformed(what))
}

/// Parses a ContentInfo holding a SignedData (a WIN_CERTIFICATE's `bCertificate`, trailing
/// padding allowed).
pub fn parse_content_info(buf: &[u8]) -> Result<SignedData, Pkcs7Error> {
    let (ci, _) = m(der::expect(buf, SEQUENCE), "ContentInfo")?;
    let (oid, rest) = m(der::read_oid(ci.content), "contentType")?;
    if oid != OID_SIGNED_DATA {
        return Err(Pkcs7Error::NotSignedData(oid));
    }
    let (explicit, _) = m(der::expect(rest, 0xA0), "content [0]")?;
    parse_signed_data(explicit.content)
}

/// Parses a bare SignedData SEQUENCE (EFI_CERT_TYPE_PKCS7 data may omit the ContentInfo).
pub fn parse_signed_data(buf: &[u8]) -> Result<SignedData, Pkcs7Error> {
    let (sd, _) = m(der::expect(buf, SEQUENCE), "SignedData")?;
    let (_version, rest) = m(der::expect(sd.content, INTEGER), "version")?;
    let (_algs, rest) = m(der::expect(rest, SET), "digestAlgorithms")?;
    let (eci, mut rest) = m(der::expect(rest, SEQUENCE), "encapContentInfo")?;
    let (content_type, eci_rest) = m(der::read_oid(eci.content), "eContentType")?;
    let content = match der::read(eci_rest) {
        Some((t, _)) if t.tag == 0xA0 => {
            let (inner, _) = m(der::read(t.content), "eContent")?;
            Some(inner.raw.to_vec())
        }
        _ => None,
    };
    let mut out = SignedData {
        content_type,
        content,
        ..Default::default()
    };
    loop {
        let (t, r) = m(der::read(rest), "SignedData field")?;
        rest = r;
        match t.tag {
            0xA0 => {
                for c in m(der::children(t.content), "certificates")? {
                    // Only plain certificates; attribute or other certificate choices are skipped.
                    if c.tag == SEQUENCE {
                        out.certificates.push(c.raw.to_vec());
                    }
                }
            }
            0xA1 => {}
            SET => {
                for s in m(der::children(t.content), "signerInfos")? {
                    out.signers.push(parse_signer(s)?);
                }
                return Ok(out);
            }
            _ => return Err(Pkcs7Error::Malformed("signerInfos")),
        }
    }
}

fn alg_oid(t: &Tlv<'_>) -> Option<String> {
    if t.tag != SEQUENCE {
        return None;
    }
    der::read_oid(t.content).map(|(o, _)| o)
}

fn parse_signer(s: Tlv<'_>) -> Result<SignerInfo, Pkcs7Error> {
    if s.tag != SEQUENCE {
        return Err(Pkcs7Error::Malformed("SignerInfo"));
    }
    let f = m(der::children(s.content), "SignerInfo fields")?;
    let mut it = f.into_iter();
    let _version = m(it.next(), "SignerInfo version")?;
    let sid = m(it.next(), "sid")?;
    let mut si = SignerInfo::default();
    match sid.tag {
        SEQUENCE => {
            let (issuer, rest) = m(der::expect(sid.content, SEQUENCE), "issuer")?;
            let (serial, _) = m(der::expect(rest, INTEGER), "serial")?;
            si.issuer = issuer.raw.to_vec();
            si.serial = serial.content.to_vec();
        }
        0x80 => si.subject_key_id = Some(sid.content.to_vec()),
        _ => return Err(Pkcs7Error::Malformed("sid")),
    }
    si.digest_algorithm = m(it.next().as_ref().and_then(alg_oid), "digestAlgorithm")?;
    let mut next = m(it.next(), "signatureAlgorithm")?;
    if next.tag == 0xA0 {
        si.signed_attrs = Some(next.raw.to_vec());
        for a in m(der::children(next.content), "signedAttrs")? {
            let (oid, values) = attribute(&a)?;
            if oid == OID_MESSAGE_DIGEST {
                let first = values.first().filter(|v| v.tag == OCTET_STRING);
                si.message_digest = Some(m(first, "messageDigest value")?.content.to_vec());
            }
        }
        next = m(it.next(), "signatureAlgorithm")?;
    }
    si.signature_algorithm = m(alg_oid(&next), "signatureAlgorithm")?;
    let sig = m(it.next().filter(|t| t.tag == OCTET_STRING), "signature")?;
    si.signature = sig.content.to_vec();
    if let Some(u) = it.next().filter(|t| t.tag == 0xA1) {
        for a in m(der::children(u.content), "unsignedAttrs")? {
            let (oid, values) = attribute(&a)?;
            if oid == OID_NESTED_SIGNATURE {
                si.nested.extend(values.iter().map(|v| v.raw.to_vec()));
            }
        }
    }
    Ok(si)
}

fn attribute<'a>(a: &Tlv<'a>) -> Result<(String, Vec<Tlv<'a>>), Pkcs7Error> {
    if a.tag != SEQUENCE {
        return Err(Pkcs7Error::Malformed("Attribute"));
    }
    let (oid, rest) = m(der::read_oid(a.content), "attribute type")?;
    let (set, _) = m(der::expect(rest, SET), "attribute values")?;
    Ok((oid, m(der::children(set.content), "attribute value")?))
}

/// The digest algorithm and image digest inside an SpcIndirectDataContent element.
pub fn spc_indirect_digest(content: &[u8]) -> Option<(String, Vec<u8>)> {
    let (spc, _) = der::expect(content, SEQUENCE)?;
    let (_data, rest) = der::expect(spc.content, SEQUENCE)?;
    let (digest_info, _) = der::expect(rest, SEQUENCE)?;
    let (alg, rest) = der::expect(digest_info.content, SEQUENCE)?;
    let (digest, _) = der::expect(rest, OCTET_STRING)?;
    Some((alg_oid(&alg)?, digest.content.to_vec()))
}

/// The bytes Authenticode's messageDigest covers: the content octets of an element.
pub fn content_octets(element: &[u8]) -> Option<&[u8]> {
    der::read(element).map(|(t, _)| t.content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_content_info(&[]).is_err());
        assert!(parse_content_info(&[0x30, 0x03, 0x06, 0x01, 0x2A]).is_err());
        assert!(matches!(
            parse_content_info(&[0x30, 0x05, 0x06, 0x01, 0x2A, 0xA0, 0x00]),
            Err(Pkcs7Error::NotSignedData(_))
        ));
    }
}
