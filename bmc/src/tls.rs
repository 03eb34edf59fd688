//! How a BMC's TLS certificate is checked. BMCs mostly ship self-signed certificates, so besides
//! the usual CA verification an operator can pin one certificate by its SHA-256 fingerprint (read
//! once with [`probe_fingerprint`] and confirmed), or, for one named BMC only, turn checking off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::BmcError;

/// The certificate check for one BMC.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum TlsPolicy {
    /// Verify the chain against the system's roots and the host name.
    #[default]
    Verify,
    /// Verify against this CA only (PEM), for sites that run their own BMC CA.
    Ca {
        /// The CA certificate(s), PEM.
        pem: String,
    },
    /// Accept exactly the certificate with this SHA-256 fingerprint (hex, lowercase).
    Pin {
        /// Fingerprint of the DER certificate.
        sha256: String,
    },
    /// No check at all: only when the operator asked for it for this BMC.
    Insecure,
}

impl TlsPolicy {
    /// A pin from a fingerprint as `openssl x509 -fingerprint -sha256` prints it, or plain hex.
    pub fn pin(fingerprint: &str) -> Result<Self, BmcError> {
        Ok(TlsPolicy::Pin {
            sha256: hex::encode(parse_fingerprint(fingerprint)?),
        })
    }

    /// One word for listings.
    pub fn describe(&self) -> String {
        match self {
            TlsPolicy::Verify => "verify".into(),
            TlsPolicy::Ca { .. } => "verify (own CA)".into(),
            TlsPolicy::Pin { sha256 } => {
                format!("pinned sha256:{}…", &sha256[..sha256.len().min(16)])
            }
            TlsPolicy::Insecure => "NOT VERIFIED".into(),
        }
    }
}

/// Parses `sha256:AB:CD:…`, `AB:CD:…` or plain hex into 32 bytes.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], BmcError> {
    let t = s.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .or_else(|| t.strip_prefix("sha256 Fingerprint="))
        .unwrap_or(t);
    let hexits: String = t.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&hexits).map_err(|e| BmcError::Client(format!("fingerprint: {e}")))?;
    bytes
        .try_into()
        .map_err(|_| BmcError::Client("a SHA-256 fingerprint has 32 bytes (64 hex digits)".into()))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Adds the policy's TLS settings to a reqwest client builder.
pub(crate) fn apply(
    builder: reqwest::ClientBuilder,
    policy: &TlsPolicy,
) -> Result<reqwest::ClientBuilder, BmcError> {
    Ok(match policy {
        TlsPolicy::Verify => builder,
        TlsPolicy::Ca { pem } => {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| BmcError::Client(format!("CA certificate: {e}")))?;
            builder.tls_certs_only(certs)
        }
        TlsPolicy::Pin { sha256 } => {
            let pin = parse_fingerprint(sha256)?;
            builder.tls_backend_preconfigured(config(Arc::new(Pinned {
                pin,
                seen: None,
                provider: provider(),
            }))?)
        }
        TlsPolicy::Insecure => builder.tls_danger_accept_invalid_certs(true),
    })
}

fn config(verifier: Arc<dyn ServerCertVerifier>) -> Result<rustls::ClientConfig, BmcError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| BmcError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Reads the SHA-256 fingerprint of the certificate a BMC presents, sending nothing but a
/// handshake and an unauthenticated GET of the service root. For trust on first use: the operator
/// confirms the fingerprint, and it becomes the BMC's pin.
pub async fn probe_fingerprint(base: &url::Url, timeout: Duration) -> Result<String, BmcError> {
    let seen = Arc::new(Mutex::new(None));
    let verifier = Arc::new(Pinned {
        pin: [0; 32],
        seen: Some(seen.clone()),
        provider: provider(),
    });
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(config(verifier)?)
        .timeout(timeout)
        .build()
        .map_err(|e| BmcError::Client(e.to_string()))?;
    let url = base
        .join("/redfish/v1/")
        .map_err(|e| BmcError::Client(e.to_string()))?;
    let sent = client.get(url.clone()).send().await;
    let fp = seen.lock().map(|g| *g).unwrap_or(None);
    match (fp, sent) {
        (Some(fp), _) => Ok(hex::encode(fp)),
        (None, Err(e)) => Err(BmcError::Connect {
            url: url.to_string(),
            reason: crate::redfish::error_chain(&e),
        }),
        (None, Ok(_)) => Err(BmcError::Certificate {
            url: url.to_string(),
            reason: "no certificate was presented (is it https?)".into(),
        }),
    }
}

/// Accepts the one certificate whose DER hashes to `pin`; in probe mode (`seen`), records the
/// fingerprint of whatever is presented and accepts it (nothing secret is sent on that client).
#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    seen: Option<Arc<Mutex<Option<[u8; 32]>>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Some(seen) = &self.seen {
            if let Ok(mut g) = seen.lock() {
                *g = Some(got);
            }
            return Ok(ServerCertVerified::assertion());
        }
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate sha256 {} is not the pinned {}",
                hex::encode(got),
                hex::encode(self.pin)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
