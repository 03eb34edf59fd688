//! The agent's side: reads the EK and its certificate, creates an AK under the EK, and answers
//! the service's credential challenge, on a real TPM through tss-esapi (libtss2).

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey, ak, ek};
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{KeyHandle, SessionHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, EncryptedSecret, IdObject, Public, PublicBuffer, SymmetricDefinition,
};
use tss_esapi::traits::Marshall;
use tss_esapi::{Context, TctiNameConf};

use crate::ekcert::trim_der_padding;
use crate::wire::Reader;

/// Where the TCG puts EK certificates (TCG EK Credential Profile 2.0 §2.2.1.4).
const NV_EK_CERT_RSA_2048: u32 = 0x01c0_0002;
const NV_EK_CERT_ECC_P256: u32 = 0x01c0_000a;

/// Tells [`AttestationKey`]s of one [`Tpm`] from another's.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Why talking to the TPM failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The TCTI string is not one libtss2 understands.
    #[error("invalid TCTI '{tcti}': {source}")]
    Tcti {
        /// The TCTI string given.
        tcti: String,
        /// libtss2's reason.
        source: tss_esapi::Error,
    },
    /// No TPM answered on that TCTI (missing device, nothing listening, no permission).
    #[error("cannot open the TPM at '{tcti}': {source}")]
    Open {
        /// The TCTI string given.
        tcti: String,
        /// libtss2's reason.
        source: tss_esapi::Error,
    },
    /// A TPM command failed; for ActivateCredential this is how a challenge that was not made
    /// for this TPM's EK and AK shows.
    #[error("TPM {op} failed: {source}")]
    Command {
        /// The operation that failed.
        op: &'static str,
        /// The TPM's or libtss2's reason.
        source: tss_esapi::Error,
    },
    /// Challenge bytes that are not the TPM2B structures they should be.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The AK was created through another [`Tpm`] handle.
    #[error("this attestation key belongs to another TPM session")]
    ForeignKey,
}

fn cmd(op: &'static str) -> impl FnOnce(tss_esapi::Error) -> DeviceError {
    move |source| DeviceError::Command { op, source }
}

/// Which standard EK template (TCG EK Credential Profile, Annex B) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkKind {
    /// Template L-1: RSA 2048, SHA-256, AES-128-CFB; certificate at NV 0x01c00002.
    Rsa2048,
    /// Template L-2: ECC NIST P-256, SHA-256, AES-128-CFB; certificate at NV 0x01c0000a.
    EccP256,
}

impl EkKind {
    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            Self::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            Self::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        }
    }

    fn cert_index(self) -> u32 {
        match self {
            Self::Rsa2048 => NV_EK_CERT_RSA_2048,
            Self::EccP256 => NV_EK_CERT_ECC_P256,
        }
    }
}

/// What the agent reports about its TPM's endorsement key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorsement {
    /// The template the EK was created from.
    pub kind: EkKind,
    /// The EK public area, a marshalled TPM2B_PUBLIC.
    pub public: Vec<u8>,
    /// The EK certificate (DER) from NV, when the manufacturer provisioned one.
    pub certificate: Option<Vec<u8>>,
    /// TPM_PT_MANUFACTURER as its four ASCII characters, trimmed (e.g. "IFX", "INTC", "IBM").
    pub manufacturer: String,
    /// TPM_PT_FIRMWARE_VERSION_1 and _2, vendor-defined.
    pub firmware_version: (u32, u32),
}

impl Endorsement {
    /// The firmware version as TPM tools print it: four 16-bit parts, "a.b.c.d".
    pub fn firmware_version_string(&self) -> String {
        let (v1, v2) = self.firmware_version;
        format!("{}.{}.{}.{}", v1 >> 16, v1 & 0xffff, v2 >> 16, v2 & 0xffff)
    }
}

/// An attestation key loaded in the TPM.
#[derive(Debug)]
pub struct AttestationKey {
    public: Vec<u8>,
    name: Vec<u8>,
    handle: KeyHandle,
    owner: u64,
}

impl AttestationKey {
    /// The AK public area, a marshalled TPM2B_PUBLIC (what the agent sends).
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The AK's name as the TPM computes it (the service recomputes it from `public`).
    pub fn name(&self) -> &[u8] {
        &self.name
    }
}

/// An open TPM.
pub struct Tpm {
    ctx: Context,
    id: u64,
    ek: Option<(EkKind, KeyHandle)>,
    loaded: Vec<KeyHandle>,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("id", &self.id)
            .field("ek", &self.ek)
            .finish()
    }
}

impl Tpm {
    /// The TCTI to use when none is given: `TPM2TOOLS_TCTI`, then `TCTI`, then the kernel's
    /// resource manager `device:/dev/tpmrm0`.
    pub fn default_tcti() -> String {
        ["TPM2TOOLS_TCTI", "TCTI"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "device:/dev/tpmrm0".into())
    }

    /// Opens the TPM at the default TCTI ([`Tpm::default_tcti`]).
    pub fn open_default() -> Result<Self, DeviceError> {
        Self::open(&Self::default_tcti())
    }

    /// Opens a TPM through a TCTI string, e.g. `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`.
    pub fn open(tcti: &str) -> Result<Self, DeviceError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|source| DeviceError::Tcti {
            tcti: tcti.into(),
            source,
        })?;
        let ctx = Context::new(conf).map_err(|source| DeviceError::Open {
            tcti: tcti.into(),
            source,
        })?;
        Ok(Self {
            ctx,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            ek: None,
            loaded: Vec::new(),
        })
    }

    /// The RSA 2048 EK (template L-1), its certificate and the TPM's identity.
    pub fn endorsement(&mut self) -> Result<Endorsement, DeviceError> {
        self.endorsement_of(EkKind::Rsa2048)
    }

    /// The EK of the given template, which becomes the EK that [`Tpm::create_ak`] and
    /// [`Tpm::activate_credential`] use.
    pub fn endorsement_of(&mut self, kind: EkKind) -> Result<Endorsement, DeviceError> {
        let handle = self.load_ek(kind)?;
        let (public, _, _) = self
            .ctx
            .read_public(handle)
            .map_err(cmd("ReadPublic(EK)"))?;
        Ok(Endorsement {
            kind,
            public: tpm2b_public(public)?,
            certificate: self.ek_certificate(kind)?,
            manufacturer: self.manufacturer()?,
            firmware_version: (
                self.property(PropertyTag::FirmwareVersion1)?,
                self.property(PropertyTag::FirmwareVersion2)?,
            ),
        })
    }

    /// Creates and loads an AK (RSA 2048, restricted signing, RSASSA-SHA256) under the current
    /// EK (the RSA 2048 EK if none was read yet).
    pub fn create_ak(&mut self) -> Result<AttestationKey, DeviceError> {
        let ek = match self.ek {
            Some((_, h)) => h,
            None => self.load_ek(EkKind::Rsa2048)?,
        };
        let created = ak::create_ak(
            &mut self.ctx,
            ek,
            HashingAlgorithm::Sha256,
            SignatureSchemeAlgorithm::RsaSsa,
            None,
            DefaultKey,
        )
        .map_err(cmd("Create(AK)"))?;
        let public = tpm2b_public(created.out_public.clone())?;
        let handle = ak::load_ak(
            &mut self.ctx,
            ek,
            None,
            created.out_private,
            created.out_public,
        )
        .map_err(cmd("Load(AK)"))?;
        self.loaded.push(handle);
        let name = self
            .ctx
            .tr_get_name(handle.into())
            .map_err(cmd("GetName(AK)"))?;
        Ok(AttestationKey {
            public,
            name: name.value().to_vec(),
            handle,
            owner: self.id,
        })
    }

    /// Answers a credential challenge (TPM2_ActivateCredential) with the current EK: returns
    /// the secret, or an error when the challenge was not made for this EK and this AK.
    pub fn activate_credential(
        &mut self,
        ak: &AttestationKey,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, DeviceError> {
        if ak.owner != self.id {
            return Err(DeviceError::ForeignKey);
        }
        let blob = IdObject::try_from(tpm2b_body(credential_blob, "credential blob")?)
            .map_err(|_| DeviceError::Malformed("credential blob (too large)"))?;
        let secret = EncryptedSecret::try_from(tpm2b_body(encrypted_secret, "encrypted secret")?)
            .map_err(|_| DeviceError::Malformed("encrypted secret (too large)"))?;
        let ek = match self.ek {
            Some((_, h)) => h,
            None => self.load_ek(EkKind::Rsa2048)?,
        };

        // The EK's policy (TCG template policy A) is PolicySecret(TPM_RH_ENDORSEMENT): using it
        // needs a policy session that has satisfied that, with the (empty) endorsement auth.
        let session = self
            .ctx
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(cmd("StartAuthSession"))?
            .ok_or(DeviceError::Malformed("policy session (none returned)"))?;
        let result = self.activate_in(session, ak.handle, ek, blob, secret);
        // The TPM may already have closed the session; then there is nothing to flush.
        let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        result
    }

    fn activate_in(
        &mut self,
        session: AuthSession,
        ak: KeyHandle,
        ek: KeyHandle,
        blob: IdObject,
        secret: EncryptedSecret,
    ) -> Result<Vec<u8>, DeviceError> {
        let policy = PolicySession::try_from(session).map_err(cmd("PolicySession"))?;
        self.ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.policy_secret(
                    policy,
                    tss_esapi::handles::AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })
            .map_err(cmd("PolicySecret(endorsement)"))?;
        let digest = self
            .ctx
            .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                ctx.activate_credential(ak, ek, blob, secret)
            })
            .map_err(cmd("ActivateCredential"))?;
        Ok(digest.value().to_vec())
    }

    /// Creates the EK from its template (deterministic: the same key every time) and makes it
    /// the current one, flushing the previous EK.
    fn load_ek(&mut self, kind: EkKind) -> Result<KeyHandle, DeviceError> {
        if let Some((k, h)) = self.ek {
            if k == kind {
                return Ok(h);
            }
            self.flush(h);
            self.ek = None;
        }
        let public = ek::create_ek_public_from_default_template_2(kind.selection(), DefaultKey)
            .map_err(cmd("EK template"))?;
        let handle = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Endorsement, public, None, None, None, None)
            })
            .map_err(cmd("CreatePrimary(EK)"))?
            .key_handle;
        self.loaded.push(handle);
        self.ek = Some((kind, handle));
        Ok(handle)
    }

    /// The EK certificate from its NV index, or `None` when the index is not defined.
    fn ek_certificate(&mut self, kind: EkKind) -> Result<Option<Vec<u8>>, DeviceError> {
        let index = kind.cert_index();
        let (data, _) = self
            .ctx
            .get_capability(CapabilityType::Handles, index, 1)
            .map_err(cmd("GetCapability(handles)"))?;
        let present = matches!(data, CapabilityData::Handles(list)
            if list.iter().any(|h| matches!(h, TpmHandle::NvIndex(i) if u32::from(*i) == index)));
        if !present {
            return Ok(None);
        }
        let bytes = ek::retrieve_ek_pubcert(&mut self.ctx, kind.selection())
            .map_err(cmd("NV_Read(EK certificate)"))?;
        Ok(Some(trim_der_padding(&bytes).to_vec()))
    }

    fn manufacturer(&mut self) -> Result<String, DeviceError> {
        let raw = self.property(PropertyTag::Manufacturer)?;
        Ok(raw
            .to_be_bytes()
            .iter()
            .filter(|b| b.is_ascii_graphic())
            .map(|&b| char::from(b))
            .collect())
    }

    fn property(&mut self, tag: PropertyTag) -> Result<u32, DeviceError> {
        Ok(self
            .ctx
            .get_tpm_property(tag)
            .map_err(cmd("GetCapability(properties)"))?
            .unwrap_or(0))
    }

    fn flush(&mut self, handle: KeyHandle) {
        // Best effort: a handle the TPM no longer has needs no flushing.
        let _ = self.ctx.flush_context(handle.into());
        self.loaded.retain(|h| *h != handle);
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        // Without a resource manager (swtpm, /dev/tpm0) transient objects would outlive us.
        for handle in std::mem::take(&mut self.loaded) {
            let _ = self.ctx.flush_context(handle.into());
        }
    }
}

/// Marshals a public area as TPM2B_PUBLIC.
fn tpm2b_public(public: Public) -> Result<Vec<u8>, DeviceError> {
    PublicBuffer::try_from(public)
        .and_then(|b| b.marshall())
        .map_err(cmd("marshal TPM2B_PUBLIC"))
}

/// The body of a TPM2B whose size must match the bytes exactly.
fn tpm2b_body(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, DeviceError> {
    let mut r = Reader::new(bytes);
    let body = r.tpm2b().map_err(|_| DeviceError::Malformed(what))?;
    r.finish().map_err(|_| DeviceError::Malformed(what))?;
    Ok(body.to_vec())
}
