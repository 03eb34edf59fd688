//! RMCP+ (IPMI v2.0 LAN) packets: framing, the RAKP key exchange, session integrity (HMAC) and
//! confidentiality (AES-CBC-128), and IPMI LAN messages.
//!
//! Everything here is pure and synchronous so that every parser can be fuzzed; none of them index
//! without a bounds check or unwrap anything read from the network. Section numbers refer to the
//! IPMI v2.0 rev 1.1 specification.
//!
//! Written in-crate rather than taken from crates.io: the one maintained Rust IPMI client with
//! RMCP+ (`ipmi-rs` 0.6) runs on a blocking `std::net::UdpSocket` and `todo!()`s (panics) on the
//! SHA-256 and MD5 algorithms a BMC may negotiate; the crypto itself is RustCrypto's.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

/// RMCP header of an IPMI packet: version 6, reserved, sequence 0xff (no RMCP ACK), class IPMI.
pub const RMCP_HEADER: [u8; 4] = [0x06, 0x00, 0xff, 0x07];
/// Session auth type that marks an IPMI v2.0 (RMCP+) session header.
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;
/// Payload type of an IPMI message (§13.27.3).
pub const PAYLOAD_IPMI: u8 = 0x00;
/// Payload type of an RMCP+ Open Session Request.
pub const PAYLOAD_OPEN_SESSION_REQUEST: u8 = 0x10;
/// Payload type of an RMCP+ Open Session Response.
pub const PAYLOAD_OPEN_SESSION_RESPONSE: u8 = 0x11;
/// Payload type of RAKP Message 1.
pub const PAYLOAD_RAKP1: u8 = 0x12;
/// Payload type of RAKP Message 2.
pub const PAYLOAD_RAKP2: u8 = 0x13;
/// Payload type of RAKP Message 3.
pub const PAYLOAD_RAKP3: u8 = 0x14;
/// Payload type of RAKP Message 4.
pub const PAYLOAD_RAKP4: u8 = 0x15;
/// Software ID of this remote console as an IPMB requester address (§5.5).
pub const REQUESTER_ADDR: u8 = 0x81;
/// IPMB address of the BMC.
pub const BMC_ADDR: u8 = 0x20;
/// Largest payload accepted or built: an RMCP+ packet fits one UDP datagram of a small BMC.
pub const MAX_PAYLOAD: usize = 1024;

const PT_ENCRYPTED: u8 = 0x80;
const PT_AUTHENTICATED: u8 = 0x40;

/// Why bytes from the network are not a valid packet (or a key could not be derived).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("{what}: {got} bytes, need at least {need}")]
    Short {
        /// The structure.
        what: &'static str,
        /// Bytes present.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A field has a value the protocol does not allow here.
    #[error("{0}")]
    Invalid(String),
    /// The integrity code (HMAC) does not verify: corrupted, forged or wrong key.
    #[error("integrity check failed")]
    Integrity,
    /// Decryption failed (length or padding).
    #[error("cannot decrypt: {0}")]
    Decrypt(&'static str),
}

fn need(what: &'static str, b: &[u8], n: usize) -> Result<(), WireError> {
    if b.len() < n {
        Err(WireError::Short {
            what,
            got: b.len(),
            need: n,
        })
    } else {
        Ok(())
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn arr16(b: &[u8], at: usize) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    out.copy_from_slice(b.get(at..at.checked_add(16)?)?);
    Some(out)
}

/// The RMCP+ cipher suites this client negotiates (§22.15.2), in the order it proposes them.
///
/// Suite 0 (no authentication, no integrity, no encryption) is deliberately not supported: it
/// lets anyone who knows a user name in (the "cipher zero" weakness), so a BMC that offers
/// only suite 0 is reported as offering no usable suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128: what every IPMI 2.0 BMC supports.
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128: newer BMCs.
    Suite17,
}

/// The proposal order: suite 3 first (universal), suite 17 when the BMC refuses 3.
pub const SUPPORTED_SUITES: [CipherSuite; 2] = [CipherSuite::Suite3, CipherSuite::Suite17];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashAlg {
    Sha1,
    Sha256,
}

impl CipherSuite {
    /// The suite's number as in Get Channel Cipher Suites and `ipmitool -C`.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }
    /// Authentication, integrity and confidentiality algorithm numbers (§13.28).
    pub fn algorithms(self) -> (u8, u8, u8) {
        match self {
            CipherSuite::Suite3 => (0x01, 0x01, 0x01),
            CipherSuite::Suite17 => (0x03, 0x04, 0x01),
        }
    }
    fn hash(self) -> HashAlg {
        match self {
            CipherSuite::Suite3 => HashAlg::Sha1,
            CipherSuite::Suite17 => HashAlg::Sha256,
        }
    }
    /// Length of the RAKP 2/3 key exchange authentication codes (full HMAC).
    pub fn auth_code_len(self) -> usize {
        match self.hash() {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }
    /// Length of the RAKP 4 integrity check value and of each packet's AuthCode (truncated HMAC).
    pub fn icv_len(self) -> usize {
        match self.hash() {
            HashAlg::Sha1 => 12,
            HashAlg::Sha256 => 16,
        }
    }
}

fn hmac(h: HashAlg, key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<Vec<u8>>, WireError> {
    macro_rules! run {
        ($d:ty) => {{
            let mut m = <Hmac<$d> as Mac>::new_from_slice(key)
                .map_err(|_| WireError::Invalid("HMAC key rejected".into()))?;
            for p in parts {
                m.update(p);
            }
            Ok(Zeroizing::new(m.finalize().into_bytes().to_vec()))
        }};
    }
    match h {
        HashAlg::Sha1 => run!(sha1::Sha1),
        HashAlg::Sha256 => run!(sha2::Sha256),
    }
}

/// Constant-time check that `tag` is the left part of the HMAC of `parts` (never true for an
/// empty tag).
fn hmac_verify(h: HashAlg, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    macro_rules! run {
        ($d:ty) => {{
            match <Hmac<$d> as Mac>::new_from_slice(key) {
                Ok(mut m) => {
                    for p in parts {
                        m.update(p);
                    }
                    m.verify_truncated_left(tag).is_ok()
                }
                Err(_) => false,
            }
        }};
    }
    match h {
        HashAlg::Sha1 => run!(sha1::Sha1),
        HashAlg::Sha256 => run!(sha2::Sha256),
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

/// Frames a payload sent outside a session (Open Session, RAKP): session id and sequence 0.
pub fn presession_packet(payload_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(16 + payload.len());
    p.extend_from_slice(&RMCP_HEADER);
    p.push(AUTH_TYPE_RMCP_PLUS);
    p.push(payload_type & 0x3f);
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(&(payload.len().min(u16::MAX as usize) as u16).to_le_bytes());
    p.extend_from_slice(payload);
    p
}

/// An RMCP+ packet split into its session header fields and payload (still encrypted if it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Payload type, without the encrypted/authenticated bits.
    pub payload_type: u8,
    /// The payload is encrypted.
    pub encrypted: bool,
    /// The packet carries an integrity trailer.
    pub authenticated: bool,
    /// Session id (the receiver's).
    pub session_id: u32,
    /// Session sequence number.
    pub sequence: u32,
    /// The payload bytes.
    pub payload: &'a [u8],
    /// Everything from the auth type byte to the end of the payload (what the HMAC starts on).
    pub session_part: &'a [u8],
    /// Bytes after the payload (integrity pad, pad length, next header, AuthCode).
    pub trailer: &'a [u8],
}

/// Splits a received UDP datagram into an RMCP+ frame. Rejects ASF, IPMI 1.5 and OEM payloads.
pub fn parse_frame(packet: &[u8]) -> Result<Frame<'_>, WireError> {
    need("RMCP+ packet", packet, 16)?;
    let (rmcp, rest) = packet.split_at(4);
    if rmcp[0] != 0x06 || rmcp[3] & 0x1f != 0x07 {
        return Err(WireError::Invalid(format!(
            "not an RMCP IPMI packet (version {:#04x}, class {:#04x})",
            rmcp[0], rmcp[3]
        )));
    }
    if rest[0] != AUTH_TYPE_RMCP_PLUS {
        return Err(WireError::Invalid(format!(
            "not an RMCP+ session (auth type {:#04x})",
            rest[0]
        )));
    }
    let pt = rest[1];
    if pt & 0x3f == 0x02 {
        return Err(WireError::Invalid("OEM payloads are not supported".into()));
    }
    let session_id = u32_at(rest, 2).ok_or(WireError::Short {
        what: "session header",
        got: rest.len(),
        need: 12,
    })?;
    let sequence = u32_at(rest, 6).unwrap_or_default();
    let len = usize::from(u16_at(rest, 10).unwrap_or_default());
    if len > MAX_PAYLOAD {
        return Err(WireError::Invalid(format!(
            "payload length {len} too large"
        )));
    }
    let end = 12 + len;
    need("RMCP+ payload", rest, end)?;
    Ok(Frame {
        payload_type: pt & 0x3f,
        encrypted: pt & PT_ENCRYPTED != 0,
        authenticated: pt & PT_AUTHENTICATED != 0,
        session_id,
        sequence,
        payload: &rest[12..end],
        session_part: &rest[..end],
        trailer: &rest[end..],
    })
}

/// Parses a packet received before the session is active: an unauthenticated payload.
pub fn parse_presession(packet: &[u8]) -> Result<(u8, &[u8]), WireError> {
    let f = parse_frame(packet)?;
    if f.encrypted || f.authenticated {
        return Err(WireError::Invalid(
            "protected payload before the session exists".into(),
        ));
    }
    Ok((f.payload_type, f.payload))
}

// ---------------------------------------------------------------------------------------------
// Open Session (§13.17, §13.18)

/// Builds an RMCP+ Open Session Request proposing one cipher suite.
pub fn open_session_request(
    tag: u8,
    privilege: u8,
    console_id: u32,
    suite: CipherSuite,
) -> Vec<u8> {
    let (a, i, c) = suite.algorithms();
    let mut p = vec![tag, privilege & 0x0f, 0, 0];
    p.extend_from_slice(&console_id.to_le_bytes());
    for (kind, alg) in [(0u8, a), (1, i), (2, c)] {
        p.extend_from_slice(&[kind, 0, 0, 8, alg, 0, 0, 0]);
    }
    p
}

/// A parsed RMCP+ Open Session Response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSessionResponse {
    /// Echo of the request's tag.
    pub tag: u8,
    /// RMCP+ status code (0 = success, see [`rmcp_status_text`]).
    pub status: u8,
    /// Highest privilege the session may reach.
    pub max_privilege: u8,
    /// The remote console's session id, echoed.
    pub console_id: u32,
    /// The BMC's session id (0 on failure).
    pub managed_id: u32,
    /// Negotiated authentication, integrity and confidentiality algorithms (0 on failure).
    pub algorithms: (u8, u8, u8),
}

/// Parses an Open Session Response; a failure status may come with a short body.
pub fn parse_open_session_response(b: &[u8]) -> Result<OpenSessionResponse, WireError> {
    need("Open Session Response", b, 2)?;
    let mut r = OpenSessionResponse {
        tag: b[0],
        status: b[1],
        max_privilege: b.get(2).copied().unwrap_or_default() & 0x0f,
        console_id: u32_at(b, 4).unwrap_or_default(),
        managed_id: 0,
        algorithms: (0, 0, 0),
    };
    if r.status != 0 {
        return Ok(r);
    }
    need("Open Session Response", b, 36)?;
    r.managed_id = u32_at(b, 8).unwrap_or_default();
    let alg = |at: usize, kind: u8| -> Result<u8, WireError> {
        let rec = b.get(at..at + 8).unwrap_or_default();
        match rec {
            [k, _, _, _, alg, ..] if *k == kind => Ok(*alg & 0x3f),
            _ => Err(WireError::Invalid(format!(
                "Open Session Response: algorithm record {kind} malformed"
            ))),
        }
    };
    r.algorithms = (alg(12, 0)?, alg(20, 1)?, alg(28, 2)?);
    Ok(r)
}

/// What an RMCP+ status code (Open Session / RAKP, §13.24) means.
pub fn rmcp_status_text(status: u8) -> &'static str {
    match status {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name (unknown user)",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "unknown status",
    }
}

/// Whether an Open Session failure means "not this cipher suite" (so another may work).
pub fn is_suite_rejection(status: u8) -> bool {
    matches!(status, 0x03..=0x07 | 0x10 | 0x11)
}

// ---------------------------------------------------------------------------------------------
// RAKP (§13.20–13.23)

/// The RAKP handshake's inputs and the derived session keys. Holds the password-derived key
/// (K_UID) and the session keys; `Debug` shows neither, and they are wiped on drop.
pub struct Rakp {
    suite: CipherSuite,
    console_id: u32,
    managed_id: u32,
    console_random: [u8; 16],
    role: u8,
    username: Vec<u8>,
    kuid: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Rakp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rakp")
            .field("suite", &self.suite)
            .field("console_id", &self.console_id)
            .field("managed_id", &self.managed_id)
            .field("role", &self.role)
            .field("username", &String::from_utf8_lossy(&self.username))
            .field("kuid", &"<redacted>")
            .finish()
    }
}

/// A parsed RAKP Message 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    /// Echo of RAKP 1's tag.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: u8,
    /// The remote console's session id, echoed.
    pub console_id: u32,
    /// The BMC's random number R_C.
    pub managed_random: [u8; 16],
    /// The BMC's GUID as sent in the handshake.
    pub managed_guid: [u8; 16],
    /// HMAC_K_UID over the exchange, proving the BMC knows the password.
    pub auth_code: Vec<u8>,
}

/// A parsed RAKP Message 4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp4 {
    /// Echo of RAKP 3's tag.
    pub tag: u8,
    /// RMCP+ status code.
    pub status: u8,
    /// The remote console's session id, echoed.
    pub console_id: u32,
    /// Integrity check value HMAC_SIK(R_M | SID_C | GUID_C), truncated.
    pub icv: Vec<u8>,
}

/// Parses RAKP Message 2 (the auth code is whatever follows the GUID; its length is checked by
/// [`Rakp::verify_rakp2`]).
pub fn parse_rakp2(b: &[u8]) -> Result<Rakp2, WireError> {
    need("RAKP 2", b, 2)?;
    let mut r = Rakp2 {
        tag: b[0],
        status: b[1],
        console_id: u32_at(b, 4).unwrap_or_default(),
        managed_random: [0; 16],
        managed_guid: [0; 16],
        auth_code: Vec::new(),
    };
    if r.status != 0 {
        return Ok(r);
    }
    need("RAKP 2", b, 40)?;
    r.managed_random = arr16(b, 8).unwrap_or_default();
    r.managed_guid = arr16(b, 24).unwrap_or_default();
    r.auth_code = b.get(40..).unwrap_or_default().to_vec();
    Ok(r)
}

/// Parses RAKP Message 4.
pub fn parse_rakp4(b: &[u8]) -> Result<Rakp4, WireError> {
    need("RAKP 4", b, 2)?;
    let mut r = Rakp4 {
        tag: b[0],
        status: b[1],
        console_id: u32_at(b, 4).unwrap_or_default(),
        icv: Vec::new(),
    };
    if r.status != 0 {
        return Ok(r);
    }
    need("RAKP 4", b, 8)?;
    r.icv = b.get(8..).unwrap_or_default().to_vec();
    Ok(r)
}

/// Largest user name RAKP carries.
pub const MAX_USERNAME: usize = 16;
/// Largest IPMI 2.0 password.
pub const MAX_PASSWORD: usize = 20;

impl Rakp {
    /// Starts a handshake for an opened session. `role` is the privilege byte of RAKP 1
    /// (requested privilege plus the name-only-lookup bit). Fails on a user name or password
    /// longer than IPMI allows.
    pub fn new(
        suite: CipherSuite,
        console_id: u32,
        managed_id: u32,
        console_random: [u8; 16],
        role: u8,
        username: &str,
        password: &str,
    ) -> Result<Self, WireError> {
        if username.len() > MAX_USERNAME {
            return Err(WireError::Invalid(format!(
                "user name longer than {MAX_USERNAME} bytes"
            )));
        }
        if password.len() > MAX_PASSWORD {
            return Err(WireError::Invalid(format!(
                "password longer than {MAX_PASSWORD} bytes"
            )));
        }
        // K_UID is the password zero-padded to 20 bytes (HMAC zero-pads keys anyway).
        let mut kuid = Zeroizing::new(vec![0u8; MAX_PASSWORD]);
        kuid[..password.len()].copy_from_slice(password.as_bytes());
        Ok(Rakp {
            suite,
            console_id,
            managed_id,
            console_random,
            role,
            username: username.as_bytes().to_vec(),
            kuid,
        })
    }

    fn user_part(&self) -> [u8; 2] {
        [self.role, self.username.len() as u8]
    }

    /// RAKP Message 1: the console's random number, role and user name.
    pub fn rakp1(&self, tag: u8) -> Vec<u8> {
        let mut p = vec![tag, 0, 0, 0];
        p.extend_from_slice(&self.managed_id.to_le_bytes());
        p.extend_from_slice(&self.console_random);
        p.extend_from_slice(&[self.role, 0, 0, self.username.len() as u8]);
        p.extend_from_slice(&self.username);
        p
    }

    /// Checks RAKP 2's key exchange code: HMAC_K_UID(SID_M | SID_C | R_M | R_C | GUID_C | ROLE_M
    /// | ULENGTH_M | UNAME_M). False means the password is wrong (or the BMC uses a K_G key).
    pub fn verify_rakp2(&self, r: &Rakp2) -> bool {
        r.auth_code.len() == self.suite.auth_code_len()
            && hmac_verify(
                self.suite.hash(),
                &self.kuid,
                &[
                    &self.console_id.to_le_bytes(),
                    &self.managed_id.to_le_bytes(),
                    &self.console_random,
                    &r.managed_random,
                    &r.managed_guid,
                    &self.user_part(),
                    &self.username,
                ],
                &r.auth_code,
            )
    }

    /// RAKP Message 3 with status 0 and HMAC_K_UID(R_C | SID_M | ROLE_M | ULENGTH_M | UNAME_M),
    /// or, with a non-zero status, the refusal that tells the BMC to drop the session.
    pub fn rakp3(&self, tag: u8, status: u8, r2: &Rakp2) -> Result<Vec<u8>, WireError> {
        let mut p = vec![tag, status, 0, 0];
        p.extend_from_slice(&self.managed_id.to_le_bytes());
        if status == 0 {
            let code = hmac(
                self.suite.hash(),
                &self.kuid,
                &[
                    &r2.managed_random,
                    &self.console_id.to_le_bytes(),
                    &self.user_part(),
                    &self.username,
                ],
            )?;
            p.extend_from_slice(&code);
        }
        Ok(p)
    }

    /// Derives the session keys (K_G = K_UID: a BMC key is not supported) and checks RAKP 4's
    /// integrity check value HMAC_SIK(R_M | SID_C | GUID_C).
    pub fn finish(&self, r2: &Rakp2, r4: &Rakp4) -> Result<SessionCrypto, WireError> {
        let h = self.suite.hash();
        let sik = hmac(
            h,
            &self.kuid,
            &[
                &self.console_random,
                &r2.managed_random,
                &self.user_part(),
                &self.username,
            ],
        )?;
        if r4.icv.len() != self.suite.icv_len()
            || !hmac_verify(
                h,
                &sik,
                &[
                    &self.console_random,
                    &self.managed_id.to_le_bytes(),
                    &r2.managed_guid,
                ],
                &r4.icv,
            )
        {
            return Err(WireError::Integrity);
        }
        let n = self.suite.auth_code_len();
        let k1 = hmac(h, &sik, &[&vec![0x01; n]])?;
        let k2 = hmac(h, &sik, &[&vec![0x02; n]])?;
        let mut aes_key = Zeroizing::new([0u8; 16]);
        aes_key.copy_from_slice(k2.get(..16).ok_or(WireError::Invalid("short K2".into()))?);
        Ok(SessionCrypto {
            suite: self.suite,
            console_id: self.console_id,
            managed_id: self.managed_id,
            k1,
            aes_key,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Session packets (§13.28)

/// An active session's keys and ids: seals outgoing and opens incoming IPMI payloads.
/// `Debug` redacts the keys; they are wiped on drop.
pub struct SessionCrypto {
    suite: CipherSuite,
    console_id: u32,
    managed_id: u32,
    k1: Zeroizing<Vec<u8>>,
    aes_key: Zeroizing<[u8; 16]>,
}

impl std::fmt::Debug for SessionCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCrypto")
            .field("suite", &self.suite)
            .field("console_id", &self.console_id)
            .field("managed_id", &self.managed_id)
            .field("k1", &"<redacted>")
            .field("aes_key", &"<redacted>")
            .finish()
    }
}

impl SessionCrypto {
    /// The negotiated cipher suite.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }
    /// The BMC's session id (what Close Session names).
    pub fn managed_id(&self) -> u32 {
        self.managed_id
    }

    /// An encrypted, authenticated IPMI packet: AES-CBC-128 with `iv` (fresh and random per
    /// packet), then the integrity trailer.
    pub fn seal(&self, sequence: u32, payload: &[u8], iv: [u8; 16]) -> Result<Vec<u8>, WireError> {
        // Confidentiality trailer: pad bytes 1, 2, … then the pad length, to a 16-byte multiple.
        let pad = (16 - (payload.len() + 1) % 16) % 16;
        let mut plain = Zeroizing::new(Vec::with_capacity(payload.len() + pad + 1));
        plain.extend_from_slice(payload);
        plain.extend((1..=pad as u8).collect::<Vec<u8>>());
        plain.push(pad as u8);
        let len = plain.len();
        let enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(&self.aes_key[..], &iv)
            .map_err(|_| WireError::Decrypt("bad key or IV length"))?;
        let cipher = enc
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .map_err(|_| WireError::Decrypt("not a block multiple"))?
            .to_vec();
        let body_len = 16 + cipher.len();
        if body_len > MAX_PAYLOAD {
            return Err(WireError::Invalid("request too large".into()));
        }
        let mut p = Vec::with_capacity(4 + 12 + body_len + 20);
        p.extend_from_slice(&RMCP_HEADER);
        p.push(AUTH_TYPE_RMCP_PLUS);
        p.push(PT_ENCRYPTED | PT_AUTHENTICATED | PAYLOAD_IPMI);
        p.extend_from_slice(&self.managed_id.to_le_bytes());
        p.extend_from_slice(&sequence.to_le_bytes());
        p.extend_from_slice(&(body_len as u16).to_le_bytes());
        p.extend_from_slice(&iv);
        p.extend_from_slice(&cipher);
        // Integrity pad: 0xff so that the span from auth type to next header is a 4-multiple.
        let span = p.len() - 4 + 2;
        let ipad = (4 - span % 4) % 4;
        p.extend(std::iter::repeat_n(0xffu8, ipad));
        p.push(ipad as u8);
        p.push(0x07);
        let code = hmac(self.suite.hash(), &self.k1, &[&p[4..]])?;
        p.extend_from_slice(code.get(..self.suite.icv_len()).unwrap_or_default());
        Ok(p)
    }

    /// Checks and decrypts a packet of this session; returns the IPMI message inside. Rejects
    /// anything not both authenticated and encrypted, or addressed to another session.
    pub fn open(&self, packet: &[u8]) -> Result<Zeroizing<Vec<u8>>, WireError> {
        let f = parse_frame(packet)?;
        if f.payload_type != PAYLOAD_IPMI {
            return Err(WireError::Invalid(format!(
                "payload type {:#04x} in session",
                f.payload_type
            )));
        }
        if !f.authenticated || !f.encrypted {
            return Err(WireError::Invalid(
                "unprotected packet in a protected session".into(),
            ));
        }
        if f.session_id != self.console_id {
            return Err(WireError::Invalid(format!(
                "packet for session {:#010x}",
                f.session_id
            )));
        }
        let icv = self.suite.icv_len();
        let t = f.trailer;
        if t.len() < icv + 2 {
            return Err(WireError::Short {
                what: "integrity trailer",
                got: t.len(),
                need: icv + 2,
            });
        }
        let (head, code) = t.split_at(t.len() - icv);
        // head = integrity pad, pad length, next header.
        let pad_len = usize::from(
            head.get(head.len().wrapping_sub(2))
                .copied()
                .unwrap_or(0xff),
        );
        if head.last() != Some(&0x07) || pad_len + 2 != head.len() {
            return Err(WireError::Invalid("malformed integrity trailer".into()));
        }
        let authenticated_len = f.session_part.len() + head.len();
        let covered = packet
            .get(4..4 + authenticated_len)
            .ok_or(WireError::Invalid("truncated".into()))?;
        if !hmac_verify(self.suite.hash(), &self.k1, &[covered], code) {
            return Err(WireError::Integrity);
        }
        let body = f.payload;
        if body.len() < 32 || body.len() % 16 != 0 {
            return Err(WireError::Decrypt(
                "payload is not IV plus whole AES blocks",
            ));
        }
        let (iv, cipher) = body.split_at(16);
        let mut buf = Zeroizing::new(cipher.to_vec());
        let dec = cbc::Decryptor::<aes::Aes128>::new_from_slices(&self.aes_key[..], iv)
            .map_err(|_| WireError::Decrypt("bad key or IV length"))?;
        let plain = dec
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| WireError::Decrypt("not a block multiple"))?;
        let pad = usize::from(plain.last().copied().unwrap_or(0xff));
        if pad > 15 || pad + 1 > plain.len() {
            return Err(WireError::Decrypt("bad confidentiality pad"));
        }
        Ok(Zeroizing::new(plain[..plain.len() - pad - 1].to_vec()))
    }
}

// ---------------------------------------------------------------------------------------------
// IPMI LAN messages (§13.8)

fn checksum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)).wrapping_neg()
}

/// An IPMI request to the BMC as a LAN message (with both checksums).
pub fn ipmi_request(netfn: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    ipmi_request_lun(netfn, 0, cmd, rq_seq, data)
}

/// An IPMI request to one of the BMC's LUNs (sensors may live on LUN 1–3).
pub fn ipmi_request_lun(netfn: u8, lun: u8, cmd: u8, rq_seq: u8, data: &[u8]) -> Vec<u8> {
    let mut m = vec![BMC_ADDR, (netfn << 2) | (lun & 0x03)];
    m.push(checksum(&m));
    let start = m.len();
    m.extend_from_slice(&[REQUESTER_ADDR, (rq_seq & 0x3f) << 2, cmd]);
    m.extend_from_slice(data);
    let c = checksum(&m[start..]);
    m.push(c);
    m
}

/// A parsed IPMI response message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiResponse {
    /// Response NetFn (request NetFn + 1).
    pub netfn: u8,
    /// Command.
    pub cmd: u8,
    /// Echo of the request sequence.
    pub rq_seq: u8,
    /// Completion code (0 = success).
    pub completion: u8,
    /// Response data after the completion code.
    pub data: Vec<u8>,
}

/// Parses an IPMI LAN response message, verifying both checksums.
pub fn parse_ipmi_response(m: &[u8]) -> Result<IpmiResponse, WireError> {
    need("IPMI response", m, 8)?;
    if checksum(&m[..2]) != m[2] {
        return Err(WireError::Invalid("IPMI header checksum mismatch".into()));
    }
    let (body, last) = m[3..].split_at(m.len() - 4);
    if checksum(body) != last[0] {
        return Err(WireError::Invalid("IPMI data checksum mismatch".into()));
    }
    Ok(IpmiResponse {
        netfn: m[1] >> 2,
        rq_seq: m[4] >> 2,
        cmd: m[5],
        completion: m[6],
        data: m.get(7..m.len() - 1).unwrap_or_default().to_vec(),
    })
}

/// What an IPMI completion code means (§5.2).
pub fn completion_text(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x81 => "FRU device busy",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "invalid command for this LUN",
        0xc3 => "timeout while processing",
        0xc4 => "out of space",
        0xc5 => "reservation cancelled or invalid",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return the number of requested bytes",
        0xcb => "requested sensor, data or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for this sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute a duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "not supported in present state",
        0xd6 => "sub-function disabled or unavailable",
        0xff => "unspecified error",
        _ => "device-specific or unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(suite: CipherSuite) -> (SessionCrypto, SessionCrypto) {
        let k1 = Zeroizing::new(vec![0x11; suite.auth_code_len()]);
        let key = Zeroizing::new([0x22; 16]);
        let console = SessionCrypto {
            suite,
            console_id: 0xa0a0_a0a0,
            managed_id: 0x0b0b_0b0b,
            k1: k1.clone(),
            aes_key: key.clone(),
        };
        // The BMC's view: it addresses packets to the console's id.
        let bmc = SessionCrypto {
            suite,
            console_id: 0x0b0b_0b0b,
            managed_id: 0xa0a0_a0a0,
            k1,
            aes_key: key,
        };
        (console, bmc)
    }

    #[test]
    fn seal_open_round_trip_every_length_and_suite() {
        for suite in SUPPORTED_SUITES {
            let (console, bmc) = pair(suite);
            for n in 0..70 {
                let msg: Vec<u8> = (0..n as u8).collect();
                let pkt = bmc.seal(7, &msg, [n as u8; 16]).expect("seal");
                // Integrity span (auth type .. next header) is a multiple of 4.
                assert_eq!((pkt.len() - 4 - suite.icv_len()) % 4, 0);
                assert_eq!(console.open(&pkt).expect("open").as_slice(), msg.as_slice());
                // Not for the BMC's own session id.
                assert!(bmc.open(&pkt).is_err());
                // Any flipped bit fails the integrity check or the framing.
                for i in 4..pkt.len() {
                    let mut bad = pkt.clone();
                    bad[i] ^= 0x01;
                    assert!(console.open(&bad).is_err(), "bit flip at {i} accepted");
                }
            }
        }
    }

    /// The BMC side of RAKP, written out from the specification independently of [`Rakp`].
    #[allow(clippy::too_many_arguments)]
    fn bmc_side<M: Mac + hmac::digest::KeyInit>(
        password: &[u8],
        sid_m: u32,
        sid_c: u32,
        rm: [u8; 16],
        rc: [u8; 16],
        guid: [u8; 16],
        role: u8,
        user: &[u8],
        icv_len: usize,
    ) -> (Vec<u8>, Vec<u8>) {
        let mac = |key: &[u8], data: &[u8]| -> Vec<u8> {
            let mut m = <M as Mac>::new_from_slice(key).expect("key");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        };
        let mut d = Vec::new();
        d.extend_from_slice(&sid_m.to_le_bytes());
        d.extend_from_slice(&sid_c.to_le_bytes());
        d.extend_from_slice(&rm);
        d.extend_from_slice(&rc);
        d.extend_from_slice(&guid);
        d.extend_from_slice(&[role, user.len() as u8]);
        d.extend_from_slice(user);
        let rakp2 = mac(password, &d);
        let mut s = Vec::new();
        s.extend_from_slice(&rm);
        s.extend_from_slice(&rc);
        s.extend_from_slice(&[role, user.len() as u8]);
        s.extend_from_slice(user);
        let sik = mac(password, &s);
        let mut i = Vec::new();
        i.extend_from_slice(&rm);
        i.extend_from_slice(&sid_c.to_le_bytes());
        i.extend_from_slice(&guid);
        let mut icv = mac(&sik, &i);
        icv.truncate(icv_len);
        (rakp2, icv)
    }

    #[test]
    fn rakp_against_an_independent_bmc_side() {
        for suite in SUPPORTED_SUITES {
            let (rm, rc, guid) = ([1u8; 16], [2u8; 16], [3u8; 16]);
            let (code, icv) = match suite {
                CipherSuite::Suite3 => {
                    bmc_side::<Hmac<sha1::Sha1>>(b"secret", 9, 10, rm, rc, guid, 0x12, b"admin", 12)
                }
                CipherSuite::Suite17 => bmc_side::<Hmac<sha2::Sha256>>(
                    b"secret", 9, 10, rm, rc, guid, 0x12, b"admin", 16,
                ),
            };
            let rakp = Rakp::new(suite, 9, 10, rm, 0x12, "admin", "secret").expect("rakp");
            let r2 = Rakp2 {
                tag: 0,
                status: 0,
                console_id: 9,
                managed_random: rc,
                managed_guid: guid,
                auth_code: code,
            };
            assert!(rakp.verify_rakp2(&r2));
            let wrong = Rakp::new(suite, 9, 10, rm, 0x12, "admin", "secreT").expect("rakp");
            assert!(!wrong.verify_rakp2(&r2));
            let r4 = Rakp4 {
                tag: 0,
                status: 0,
                console_id: 9,
                icv,
            };
            let crypto = rakp.finish(&r2, &r4).expect("keys");
            assert!(!format!("{crypto:?}{rakp:?}").contains("secret"));
            let mut bad = r4.clone();
            bad.icv[0] ^= 1;
            assert_eq!(rakp.finish(&r2, &bad).err(), Some(WireError::Integrity));
        }
        assert!(
            Rakp::new(
                CipherSuite::Suite3,
                1,
                2,
                [0; 16],
                0x12,
                "u",
                &"p".repeat(21)
            )
            .is_err()
        );
        assert!(
            Rakp::new(
                CipherSuite::Suite3,
                1,
                2,
                [0; 16],
                0x12,
                &"u".repeat(17),
                "p"
            )
            .is_err()
        );
    }

    #[test]
    fn ipmi_message_round_trip() {
        let req = ipmi_request(0x06, 0x01, 5, &[1, 2]);
        assert_eq!(req[..3], [0x20, 0x18, 0xc8]);
        // Turn it into the response shape: swap addresses, bump NetFn, insert a completion code.
        let mut resp = vec![0x81, 0x1c];
        resp.push(checksum(&resp));
        let start = resp.len();
        resp.extend_from_slice(&[0x20, 5 << 2, 0x01, 0x00, 0xaa]);
        let c = checksum(&resp[start..]);
        resp.push(c);
        let r = parse_ipmi_response(&resp).expect("response");
        assert_eq!((r.netfn, r.cmd, r.rq_seq, r.completion), (0x07, 0x01, 5, 0));
        assert_eq!(r.data, vec![0xaa]);
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (console, bmc) = pair(CipherSuite::Suite3);
            let _ = console.open(&bytes);
            // Also a valid frame with random contents after the header.
            let mut pkt = bmc.seal(1, &bytes, [0; 16]).expect("seal");
            let n = pkt.len();
            for (i, b) in bytes.iter().enumerate() {
                pkt[(i * 7) % n] ^= b;
            }
            let _ = console.open(&pkt);
        }
    }
}
