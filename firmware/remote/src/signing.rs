//! The remote's own signing identity: an RSA key and a self-signed certificate that operators
//! put into fwupd's metadata trust directory, and detached PKCS#7 signatures made with it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::der::asn1::OctetString;
use x509_cert::der::oid::db::rfc5911::ID_DATA;
use x509_cert::der::oid::db::rfc5912::ID_SHA_256;
use x509_cert::der::{Decode, Encode, EncodePem};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::time::Validity;

use crate::RemoteError;

/// RSA modulus size: what LVFS's own signing certificates use, and fast enough to make once.
const KEY_BITS: usize = 3072;
/// The certificate is the trust anchor operators install once; ten years spares them a rotation
/// that fwupd would not announce (it does not check time for metadata signatures anyway).
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The key file name under the identity directory (PKCS#8 PEM, mode 0600).
pub const KEY_FILE: &str = "lvfs-signing-key.pem";
/// The certificate file name under the identity directory (PEM).
pub const CERT_FILE: &str = "lvfs-signing-cert.pem";

/// The key and certificate that sign the remote's metadata.
#[derive(Clone)]
pub struct SigningIdentity {
    key: RsaPrivateKey,
    cert: Certificate,
    cert_der: Vec<u8>,
}

impl std::fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn crypto(what: &'static str) -> impl Fn(String) -> RemoteError {
    move |detail| RemoteError::Crypto { what, detail }
}

impl SigningIdentity {
    /// Makes a fresh key and a self-signed certificate named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, RemoteError> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, KEY_BITS)
            .map_err(|e| crypto("generating the RSA key")(e.to_string()))?;
        let cert = self_signed(&key, common_name)?;
        Self::from_parts(key, cert)
    }

    fn from_parts(key: RsaPrivateKey, cert: Certificate) -> Result<Self, RemoteError> {
        let cert_der = cert
            .to_der()
            .map_err(|e| crypto("encoding the certificate")(e.to_string()))?;
        Ok(Self {
            key,
            cert,
            cert_der,
        })
    }

    /// Loads the identity from `dir`, making it (key 0600) on first use.
    pub fn load_or_create(dir: &Path, common_name: &str) -> Result<Self, RemoteError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        if key_path.exists() && cert_path.exists() {
            return Self::load(&key_path, &cert_path);
        }
        let id = Self::generate(common_name)?;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let key_pem = id
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| crypto("encoding the key")(e.to_string()))?;
        write_new(&key_path, key_pem.as_bytes(), 0o600)?;
        write_new(&cert_path, id.certificate_pem()?.as_bytes(), 0o644)?;
        tracing::info!(
            target: "audit",
            fingerprint = %id.fingerprint(),
            path = %cert_path.display(),
            "made the firmware remote's signing identity"
        );
        Ok(id)
    }

    /// Loads an identity from its two PEM files.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Self, RemoteError> {
        let key_pem = fs::read_to_string(key_path).map_err(io(key_path))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&key_pem)
            .map_err(|e| crypto("reading the signing key")(e.to_string()))?;
        let cert_pem = fs::read(cert_path).map_err(io(cert_path))?;
        let cert = Certificate::load_pem_chain(&cert_pem)
            .map_err(|e| crypto("reading the signing certificate")(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| crypto("reading the signing certificate")("no certificate".into()))?;
        Self::from_parts(key, cert)
    }

    /// The certificate as PEM, for `/etc/pki/fwupd-metadata/`.
    pub fn certificate_pem(&self) -> Result<String, RemoteError> {
        self.cert
            .to_pem(LineEnding::LF)
            .map_err(|e| crypto("encoding the certificate")(e.to_string()))
    }

    /// The certificate's SHA-256 fingerprint (hex): what logs and the CLI show instead of keys.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(&self.cert_der))
    }

    /// A detached PKCS#7 SignedData over `content`, DER: SHA-256, RSA PKCS#1 v1.5, content-type,
    /// signing-time and message-digest signed attributes, and our certificate embedded (libjcat
    /// needs the certificate in the signature even when it is in the trust directory).
    pub fn sign_detached(&self, content: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let fail = crypto("signing");
        let digest = Sha256::digest(content);
        let eci = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        };
        let sid = SignerIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
            issuer: self.cert.tbs_certificate.issuer.clone(),
            serial_number: self.cert.tbs_certificate.serial_number.clone(),
        });
        let signer = SigningKey::<Sha256>::new(self.key.clone());
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA_256,
            parameters: None,
        };
        let mut info = SignerInfoBuilder::new(&signer, sid, sha256.clone(), &eci, Some(&digest))
            .map_err(|e| fail(e.to_string()))?;
        // fwupd takes the signing time as the metadata's anti-rollback stamp: without it every
        // signature dates from 1970 and no later refresh is accepted.
        cms::builder::create_signing_time_attribute()
            .and_then(|t| info.add_signed_attribute(t).map(|_| ()))
            .map_err(|e| fail(e.to_string()))?;
        let signed: ContentInfo = SignedDataBuilder::new(&eci)
            .add_digest_algorithm(sha256)
            .and_then(|b| b.add_certificate(CertificateChoices::Certificate(self.cert.clone())))
            .and_then(|b| b.add_signer_info::<_, rsa::pkcs1v15::Signature>(info))
            .and_then(|b| b.build())
            .map_err(|e| fail(e.to_string()))?;
        signed.to_der().map_err(|e| fail(e.to_string()))
    }

    /// [`Self::sign_detached`] as PEM (`-----BEGIN PKCS7-----`), the form jcat carries.
    pub fn sign_detached_pem(&self, content: &[u8]) -> Result<String, RemoteError> {
        use base64::Engine;
        let der = self.sign_detached(content)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PKCS7-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PKCS7-----\n");
        Ok(pem)
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// A self-signed certificate that is both the anchor and the signer: CA (path length 0) with
/// digitalSignature and keyCertSign, so GnuTLS accepts it in a trust list and as a signer.
fn self_signed(key: &RsaPrivateKey, common_name: &str) -> Result<Certificate, RemoteError> {
    let fail = crypto("making the certificate");
    let signer = SigningKey::<Sha256>::new(key.clone());
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| fail(e.to_string()))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    let cn = common_name.replace([',', '+', '=', '\\', '"', '<', '>', ';'], " ");
    let subject =
        Name::from_str(&format!("CN={cn},O=Metal Automata")).map_err(|e| fail(e.to_string()))?;
    let mut serial = [0u8; 16];
    rsa::rand_core::RngCore::fill_bytes(&mut rsa::rand_core::OsRng, &mut serial);
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let serial = SerialNumber::new(&serial).map_err(|e| fail(e.to_string()))?;
    let validity = Validity::from_now(VALIDITY).map_err(|e| fail(e.to_string()))?;
    let ski = SubjectKeyIdentifier(
        OctetString::new(sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
            .map_err(|e| fail(e.to_string()))?,
    );
    let mut builder = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        serial,
        validity,
        subject,
        spki,
        &signer,
    )
    .map_err(|e| fail(e.to_string()))?;
    builder
        .add_extension(&BasicConstraints {
            ca: true,
            path_len_constraint: Some(0),
        })
        .and_then(|_| {
            builder.add_extension(&KeyUsage(
                KeyUsages::DigitalSignature | KeyUsages::KeyCertSign,
            ))
        })
        .and_then(|_| builder.add_extension(&ski))
        .map_err(|e| fail(e.to_string()))?;
    builder
        .build::<rsa::pkcs1v15::Signature>()
        .map_err(|e| fail(e.to_string()))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RemoteError {
    let path: PathBuf = path.to_path_buf();
    move |source| RemoteError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a file that must not exist yet, with `mode` on Unix.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RemoteError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(io(path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(path))
}
