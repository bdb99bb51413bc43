//! Authentication (RFC 1661 phase "Authenticate"), both as authenticator and as
//! peer: PAP, CHAP-MD5, MS-CHAPv1 and MS-CHAPv2.
//!
//! - [`policy`]: which methods are allowed, the [`SecretSource`] interface, credentials.
//! - [`authenticator`] and [`peer`]: the two sans-IO machines; each is started once
//!   LCP is open with the method LCP agreed, is fed the method's packets and time, and
//!   ends with an [`Outcome`].
//! - [`pap`], [`chap`], [`chap_md5`], [`mschap`], [`mschapv2`]: packet formats and the
//!   per-method computations; [`crypto`]: the MS-CHAP primitives.
//!
//! MS-CHAP outcomes carry the MPPE start keys (RFC 3079) for CCP to use.

pub mod authenticator;
pub mod chap;
pub mod chap_md5;
pub mod crypto;
pub mod mschap;
pub mod mschapv2;
pub mod pap;
pub mod peer;
pub mod policy;

use std::time::Duration;

pub use authenticator::{Authenticator, Claim, Verdict};
pub use peer::Peer;
pub use policy::{Credentials, Method, Policy, Secret, SecretSource};

use crate::mppe::StartKeys;

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The peer's name (on the authenticator) or our own (on the peer).
    pub user: Vec<u8>,
    /// The method used.
    pub method: Method,
    /// MPPE start keys as seen from this end (MS-CHAP only).
    pub keys: Option<StartKeys>,
}

/// Why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The authenticator refused us (its message, e.g. "E=691 R=0 ... M=...").
    #[error("rejected by the authenticator: {}", crate::escape::Escaped::str(.message))]
    Rejected {
        /// The Failure/Nak message text.
        message: String,
    },
    /// The peer's credentials did not check out.
    #[error("bad credentials for user {:?}", crate::escape::Escaped::str(.user))]
    BadCredentials {
        /// The name the peer sent.
        user: String,
    },
    /// The other side stopped answering.
    #[error("authentication timed out")]
    Timeout,
    /// MS-CHAPv2: the authenticator's "S=" response was missing or wrong.
    #[error("the authenticator failed to prove it knows the password")]
    BadAuthenticatorResponse,
}

/// The end of an authentication exchange.
pub type Outcome = Result<Authenticated, AuthError>;

/// Retransmission and waiting times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Time between retransmissions of a Challenge or Authenticate-Request.
    pub restart: Duration,
    /// Transmissions before giving up.
    pub max_transmits: u32,
    /// How long to wait for the other side to start or finish.
    pub wait: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            restart: Duration::from_secs(3),
            max_transmits: 10,
            wait: Duration::from_secs(30),
        }
    }
}
