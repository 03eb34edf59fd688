//! An RMCP+ session over a tokio UDP socket: Open Session, RAKP 1–4, protected IPMI requests
//! with resends, Close Session.

use std::net::SocketAddr;
use std::time::Duration;

use rand::RngCore;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::IpmiError;
use super::wire::{self, CipherSuite, IpmiResponse, Rakp, SessionCrypto, WireError};
use crate::Credentials;

/// NetFn Application.
pub const NETFN_APP: u8 = 0x06;
/// NetFn Storage.
pub const NETFN_STORAGE: u8 = 0x0a;
/// NetFn Sensor/Event.
pub const NETFN_SENSOR: u8 = 0x04;
/// NetFn Group Extension (DCMI, PICMG).
pub const NETFN_GROUP: u8 = 0x2c;

/// RAKP 1 role byte: User privilege (all the inventory commands need) with name-only lookup.
const ROLE_USER_NAME_ONLY: u8 = 0x10 | 0x02;

/// One UDP association with a BMC and the resend policy.
struct Transport {
    sock: UdpSocket,
    address: String,
    timeout: Duration,
    retries: u32,
}

impl Transport {
    /// Sends what `build` makes and waits for a datagram `accept` takes, resending a fresh
    /// `build()` after each `timeout` up to `retries` times. `accept` returns None for datagrams
    /// that are not the answer (stale, forged, other session): they are ignored.
    async fn exchange<T>(
        &self,
        mut build: impl FnMut() -> Result<Vec<u8>, IpmiError>,
        mut accept: impl FnMut(&[u8]) -> Option<Result<T, IpmiError>>,
    ) -> Result<T, IpmiError> {
        let mut buf = vec![0u8; 2048];
        for _ in 0..=self.retries {
            let pkt = build()?;
            self.sock.send(&pkt).await.map_err(|e| self.io(e))?;
            let deadline = Instant::now() + self.timeout;
            loop {
                match tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) => return Err(self.io(e)),
                    Ok(Ok(n)) => {
                        if let Some(r) = accept(buf.get(..n).unwrap_or_default()) {
                            return r;
                        }
                    }
                }
            }
        }
        Err(IpmiError::Timeout {
            address: self.address.clone(),
            secs: self.timeout.as_secs_f64(),
            attempts: self.retries + 1,
        })
    }

    fn io(&self, e: std::io::Error) -> IpmiError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            IpmiError::Unreachable {
                address: self.address.clone(),
            }
        } else {
            IpmiError::Io {
                address: self.address.clone(),
                reason: e.to_string(),
            }
        }
    }

    fn malformed(&self, what: &str, e: WireError) -> IpmiError {
        IpmiError::Malformed {
            address: self.address.clone(),
            reason: format!("{what}: {e}"),
        }
    }
}

/// An active RMCP+ session. Dropping it without [`Session::close`] leaves the BMC to time the
/// session out.
pub(crate) struct Session {
    transport: Transport,
    crypto: SessionCrypto,
    sequence: u32,
    rq_seq: u8,
}

fn random_u32_nonzero() -> u32 {
    loop {
        let v = rand::rng().next_u32();
        if v != 0 {
            return v;
        }
    }
}

impl Session {
    /// Resolves and connects to `address`, then opens a session with the first suite of
    /// [`wire::SUPPORTED_SUITES`] the BMC accepts.
    pub(crate) async fn open(
        address: &str,
        peer: SocketAddr,
        creds: &Credentials,
        timeout: Duration,
        retries: u32,
    ) -> Result<Session, IpmiError> {
        let bind: SocketAddr = if peer.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let io = |e: std::io::Error| IpmiError::Io {
            address: address.to_string(),
            reason: e.to_string(),
        };
        let sock = UdpSocket::bind(bind).await.map_err(io)?;
        sock.connect(peer).await.map_err(io)?;
        let transport = Transport {
            sock,
            address: address.to_string(),
            timeout,
            retries,
        };
        let mut refused = Vec::new();
        for suite in wire::SUPPORTED_SUITES {
            match Self::handshake(&transport, creds, suite).await {
                Ok(crypto) => {
                    tracing::debug!(address, suite = suite.id(), "RMCP+ session open");
                    return Ok(Session {
                        transport,
                        crypto,
                        sequence: 0,
                        rq_seq: 0,
                    });
                }
                Err(IpmiError::SuiteRejected { status, .. }) => {
                    refused.push(format!(
                        "suite {}: {}",
                        suite.id(),
                        wire::rmcp_status_text(status)
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Err(IpmiError::NoCipherSuite {
            address: address.to_string(),
            reason: refused.join("; "),
        })
    }

    async fn handshake(
        t: &Transport,
        creds: &Credentials,
        suite: CipherSuite,
    ) -> Result<SessionCrypto, IpmiError> {
        let console_id = random_u32_nonzero();
        let mut tag = (rand::rng().next_u32() & 0xff) as u8;

        // Open Session.
        let req = wire::open_session_request(tag, 0x02, console_id, suite);
        let opened = t
            .exchange(
                || {
                    Ok(wire::presession_packet(
                        wire::PAYLOAD_OPEN_SESSION_REQUEST,
                        &req,
                    ))
                },
                |pkt| {
                    let (pt, body) = wire::parse_presession(pkt).ok()?;
                    if pt != wire::PAYLOAD_OPEN_SESSION_RESPONSE {
                        return None;
                    }
                    let r = match wire::parse_open_session_response(body) {
                        Ok(r) => r,
                        Err(e) => return Some(Err(t.malformed("Open Session Response", e))),
                    };
                    if r.tag != tag {
                        return None;
                    }
                    Some(Ok(r))
                },
            )
            .await?;
        if opened.status != 0 {
            return Err(if wire::is_suite_rejection(opened.status) {
                IpmiError::SuiteRejected {
                    address: t.address.clone(),
                    status: opened.status,
                }
            } else {
                IpmiError::Session {
                    address: t.address.clone(),
                    reason: format!(
                        "Open Session refused: {} ({:#04x})",
                        wire::rmcp_status_text(opened.status),
                        opened.status
                    ),
                }
            });
        }
        if opened.console_id != console_id
            || opened.managed_id == 0
            || opened.algorithms != suite.algorithms()
        {
            return Err(IpmiError::Session {
                address: t.address.clone(),
                reason: format!(
                    "Open Session Response does not match the proposal (algorithms {:?}, wanted {:?})",
                    opened.algorithms,
                    suite.algorithms()
                ),
            });
        }

        // RAKP 1 / 2.
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let auth = |reason: String| IpmiError::Auth {
            address: t.address.clone(),
            reason,
        };
        let rakp = Rakp::new(
            suite,
            console_id,
            opened.managed_id,
            random,
            ROLE_USER_NAME_ONLY,
            &creds.username,
            creds.password(),
        )
        .map_err(|e| IpmiError::Credentials {
            address: t.address.clone(),
            reason: e.to_string(),
        })?;
        tag = tag.wrapping_add(1);
        let m1 = rakp.rakp1(tag);
        let r2 = t
            .exchange(
                || Ok(wire::presession_packet(wire::PAYLOAD_RAKP1, &m1)),
                |pkt| {
                    let (pt, body) = wire::parse_presession(pkt).ok()?;
                    if pt != wire::PAYLOAD_RAKP2 {
                        return None;
                    }
                    let r = match wire::parse_rakp2(body) {
                        Ok(r) => r,
                        Err(e) => return Some(Err(t.malformed("RAKP 2", e))),
                    };
                    (r.tag == tag).then_some(Ok(r))
                },
            )
            .await?;
        if r2.status != 0 {
            return Err(auth(format!(
                "RAKP 2: {} ({:#04x})",
                wire::rmcp_status_text(r2.status),
                r2.status
            )));
        }
        if r2.console_id != console_id {
            return Err(auth("RAKP 2 names another session".into()));
        }
        if !rakp.verify_rakp2(&r2) {
            // Tell the BMC to drop the half-open session; no answer is expected.
            if let Ok(m3) = rakp.rakp3(tag.wrapping_add(1), 0x0f, &r2) {
                let _ = t
                    .sock
                    .send(&wire::presession_packet(wire::PAYLOAD_RAKP3, &m3))
                    .await;
            }
            return Err(auth(
                "RAKP 2 key exchange code does not verify: wrong password for this user (or the BMC requires a K_G key)".into(),
            ));
        }

        // RAKP 3 / 4.
        tag = tag.wrapping_add(1);
        let m3 = rakp
            .rakp3(tag, 0, &r2)
            .map_err(|e| t.malformed("RAKP 3", e))?;
        let r4 = t
            .exchange(
                || Ok(wire::presession_packet(wire::PAYLOAD_RAKP3, &m3)),
                |pkt| {
                    let (pt, body) = wire::parse_presession(pkt).ok()?;
                    if pt != wire::PAYLOAD_RAKP4 {
                        return None;
                    }
                    let r = match wire::parse_rakp4(body) {
                        Ok(r) => r,
                        Err(e) => return Some(Err(t.malformed("RAKP 4", e))),
                    };
                    (r.tag == tag).then_some(Ok(r))
                },
            )
            .await?;
        if r4.status != 0 {
            return Err(auth(format!(
                "RAKP 4: {} ({:#04x})",
                wire::rmcp_status_text(r4.status),
                r4.status
            )));
        }
        if r4.console_id != console_id {
            return Err(auth("RAKP 4 names another session".into()));
        }
        rakp.finish(&r2, &r4).map_err(|e| {
            auth(format!(
                "RAKP 4 integrity check value does not verify ({e})"
            ))
        })
    }

    /// The BMC's address as the caller gave it (for error messages).
    pub(crate) fn address(&self) -> &str {
        &self.transport.address
    }

    /// A command that must complete with code 0: its response data.
    pub(crate) async fn ok_lun(
        &mut self,
        what: &str,
        netfn: u8,
        lun: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<Vec<u8>, IpmiError> {
        let r = self.command_lun(netfn, lun, cmd, data).await?;
        if r.completion != 0 {
            return Err(IpmiError::Completion {
                address: self.transport.address.clone(),
                what: what.to_string(),
                code: r.completion,
            });
        }
        Ok(r.data)
    }

    /// An error for a response that is not what the command promises.
    pub(crate) fn malformed(&self, reason: String) -> IpmiError {
        IpmiError::Malformed {
            address: self.transport.address.clone(),
            reason,
        }
    }

    /// The negotiated cipher suite.
    pub(crate) fn suite(&self) -> CipherSuite {
        self.crypto.suite()
    }

    /// Sends one IPMI request in the session and returns the response (any completion code).
    pub(crate) async fn command(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<IpmiResponse, IpmiError> {
        self.command_lun(netfn, 0, cmd, data).await
    }

    /// Like [`Session::command`], addressed to one of the BMC's LUNs.
    pub(crate) async fn command_lun(
        &mut self,
        netfn: u8,
        lun: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<IpmiResponse, IpmiError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq = self.rq_seq;
        let msg = wire::ipmi_request_lun(netfn, lun, cmd, rq, data);
        let crypto = &self.crypto;
        let sequence = &mut self.sequence;
        let address = &self.transport.address;
        self.transport
            .exchange(
                || {
                    // A resend gets a new session sequence number (the BMC drops repeats).
                    *sequence = sequence.wrapping_add(1).max(1);
                    let mut iv = [0u8; 16];
                    rand::rng().fill_bytes(&mut iv);
                    crypto
                        .seal(*sequence, &msg, iv)
                        .map_err(|e| IpmiError::Malformed {
                            address: address.clone(),
                            reason: format!("cannot build the request: {e}"),
                        })
                },
                |pkt| {
                    let plain = match crypto.open(pkt) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::debug!(address, error = %e, "ignoring a packet");
                            return None;
                        }
                    };
                    let r = wire::parse_ipmi_response(&plain).ok()?;
                    (r.rq_seq == rq && r.cmd == cmd && r.netfn == netfn + 1).then_some(Ok(r))
                },
            )
            .await
    }

    /// Close Session (App 0x3C) for this session's id.
    pub(crate) async fn close(mut self) -> Result<(), IpmiError> {
        let id = self.crypto.managed_id().to_le_bytes();
        let r = self.command(NETFN_APP, 0x3c, &id).await?;
        if r.completion != 0 {
            return Err(IpmiError::Completion {
                address: self.transport.address.clone(),
                what: "Close Session".into(),
                code: r.completion,
            });
        }
        Ok(())
    }
}
