//! What can go wrong talking to a BMC, classified so callers can decide to retry, re-authenticate
//! or give up, and so an operator reads what happened without a stack trace.

/// Why a BMC request failed.
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    /// The address is not a usable BMC URL.
    #[error("invalid BMC address {address:?}: {reason}")]
    Address {
        /// What was given.
        address: String,
        /// Why it is not usable.
        reason: String,
    },
    /// No answer within the timeout.
    #[error("{url}: no answer within {secs:.1} s")]
    Timeout {
        /// The request.
        url: String,
        /// The timeout.
        secs: f64,
    },
    /// The connection failed (refused, reset, DNS, TLS handshake).
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The request.
        url: String,
        /// The transport's message.
        reason: String,
    },
    /// The BMC's certificate is not the pinned one, or does not verify.
    #[error("{url}: TLS certificate rejected: {reason}")]
    Certificate {
        /// The request.
        url: String,
        /// Why.
        reason: String,
    },
    /// The credentials were refused.
    #[error("{url}: authentication failed (HTTP {status}): check the user name and password")]
    Auth {
        /// The request.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The BMC answered with an error status.
    #[error("{url}: HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Http {
        /// The request.
        url: String,
        /// Status code.
        status: u16,
        /// The Redfish error message, when the body carried one.
        message: Option<String>,
    },
    /// The body was not the JSON it should be.
    #[error("{url}: malformed response: {reason}")]
    Malformed {
        /// The request.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The body exceeded the size limit.
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The request.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// A client could not be built (TLS configuration).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// IPMI over LAN failed (session, authentication, timeout).
    #[error(transparent)]
    Ipmi(#[from] crate::ipmi::IpmiError),
}

impl BmcError {
    /// Worth retrying: the BMC may answer next time (timeouts, resets, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            BmcError::Timeout { .. } | BmcError::Connect { .. } => true,
            BmcError::Http { status, .. } => *status == 429 || *status >= 500,
            BmcError::Ipmi(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The HTTP status, if the BMC answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BmcError::Http { status, .. } | BmcError::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }
}
