//! Dynamic authorization (RFC 5176): Disconnect-Request ends sessions,
//! CoA-Request changes their Session-Timeout, Idle-Timeout and interim interval.
//!
//! Sans-IO: [`read_request`] takes a datagram from a source address, accepts it only
//! from a configured client with a valid Request Authenticator and
//! Message-Authenticator (required unless the configuration says otherwise; checked
//! when present), and says which sessions it names ([`Target`]); a
//! [`ReplayCache`](super::replay::ReplayCache) then requires a recent Event-Timestamp
//! and turns duplicates away; [`answer`] builds the ACK or NAK. The UDP loop that
//! carries requests out is `runtime/dae.rs`.

use std::net::{IpAddr, Ipv4Addr};

use super::{
    packet::{self, Packet, attr, code},
    replay::Refused,
};

/// RFC 5176 §3.6 Error-Cause values used here.
pub mod error_cause {
    pub const MISSING_ATTRIBUTE: u32 = 402;
    pub const UNSUPPORTED_SERVICE: u32 = 405;
    pub const SESSION_CONTEXT_NOT_FOUND: u32 = 503;
}

/// The sessions a request names: every attribute given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub acct_session_id: Option<Vec<u8>>,
    pub user: Option<String>,
    pub address: Option<Ipv4Addr>,
}

impl Target {
    /// Whether the request names anything at all.
    pub fn is_empty(&self) -> bool {
        self.acct_session_id.is_none() && self.user.is_none() && self.address.is_none()
    }

    /// The keys of the sessions named among `sessions` (`session_of` maps an
    /// Acct-Session-Id to our session numbers); naming nothing names no session.
    pub fn select<'a, K>(
        &self,
        sessions: impl IntoIterator<Item = (K, Named<'a>)>,
        session_of: impl Fn(&[u8]) -> Option<u64>,
    ) -> Vec<K> {
        if self.is_empty() {
            return Vec::new();
        }
        let wanted_id = self.acct_session_id.as_deref().map(session_of);
        sessions
            .into_iter()
            .filter(|(_, s)| wanted_id.is_none_or(|id| id == Some(s.number)))
            .filter(|(_, s)| self.user.as_deref().is_none_or(|u| s.user == Some(u)))
            .filter(|(_, s)| self.address.is_none_or(|a| s.client == Some(a)))
            .map(|(key, _)| key)
            .collect()
    }
}

/// What a request can name a session by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named<'a> {
    /// Our session number (what our Acct-Session-Id carries).
    pub number: u64,
    pub user: Option<&'a str>,
    /// The client's address inside the tunnel.
    pub client: Option<Ipv4Addr>,
}

/// A request that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub packet: Packet,
    pub target: Target,
    /// The client's secret, to answer with.
    pub secret: Vec<u8>,
}

/// Why a datagram was dropped without an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("from {0}, not a configured dynamic-authorization client")]
    UnknownClient(IpAddr),
    #[error("{0}")]
    Bad(#[from] packet::PacketError),
    #[error("code {0} is neither Disconnect-Request nor CoA-Request")]
    NotARequest(u8),
    #[error("{0}")]
    Replay(#[from] Refused),
}

/// Checks a datagram from `from` (a Message-Authenticator is required when
/// `require_ma`).
pub fn read_request(
    bytes: &[u8],
    from: IpAddr,
    clients: &[(IpAddr, Vec<u8>)],
    require_ma: bool,
) -> Result<Request, Dropped> {
    let (_, secret) = clients
        .iter()
        .find(|(ip, _)| *ip == from)
        .ok_or(Dropped::UnknownClient(from))?;
    let packet = Packet::verify_request(bytes, secret, require_ma)?;
    if packet.code != code::DISCONNECT_REQUEST && packet.code != code::COA_REQUEST {
        return Err(Dropped::NotARequest(packet.code));
    }
    let target = Target {
        acct_session_id: packet.get(attr::ACCT_SESSION_ID).map(<[u8]>::to_vec),
        user: packet
            .get(attr::USER_NAME)
            .map(|u| String::from_utf8_lossy(u).into_owned()),
        address: packet.get_u32(attr::FRAMED_IP_ADDRESS).map(Ipv4Addr::from),
    };
    Ok(Request {
        packet,
        target,
        secret: secret.clone(),
    })
}

/// The ACK (`error` `None`) or NAK with an Error-Cause for `request`.
pub fn answer(request: &Request, error: Option<u32>) -> Vec<u8> {
    let ack = if request.packet.code == code::DISCONNECT_REQUEST {
        [code::DISCONNECT_ACK, code::DISCONNECT_NAK]
    } else {
        [code::COA_ACK, code::COA_NAK]
    };
    let mut p = Packet::new(
        ack[usize::from(error.is_some())],
        request.packet.id,
        [0; 16],
    );
    if let Some(cause) = error {
        p.push_u32(attr::ERROR_CAUSE, cause);
    }
    if request.packet.get(attr::MESSAGE_AUTHENTICATOR).is_some() {
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
    }
    p.encode(&request.secret, Some(&request.packet.authenticator))
        .expect("an answer of at most two attributes fits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(user: &str, client: [u8; 4]) -> (Option<&str>, Option<Ipv4Addr>) {
        (Some(user), Some(client.into()))
    }

    #[test]
    fn requests_from_clients_with_the_right_secret_name_sessions() {
        let clients = vec![(IpAddr::from([127, 0, 0, 1]), b"dae".to_vec())];
        let mut p = Packet::new(code::DISCONNECT_REQUEST, 9, [0; 16]);
        p.push(attr::USER_NAME, "alice");
        p.push_u32(attr::FRAMED_IP_ADDRESS, 0xc000_020a);
        let bytes = p.encode(b"dae", None).unwrap();
        assert_eq!(
            read_request(&bytes, IpAddr::from([127, 0, 0, 1]), &clients, true),
            Err(Dropped::Bad(packet::PacketError::BadMessageAuthenticator)),
            "no Message-Authenticator: dropped unless the configuration allows it"
        );
        let r = read_request(&bytes, IpAddr::from([127, 0, 0, 1]), &clients, false).unwrap();
        let sessions = [
            (1, named("alice", [192, 0, 2, 10])),
            (2, named("alice", [192, 0, 2, 11])),
            (3, named("bob", [192, 0, 2, 10])),
        ];
        let sessions = || {
            sessions.iter().map(|&(number, (user, client))| {
                let named = Named {
                    number,
                    user,
                    client,
                };
                (number, named)
            })
        };
        assert_eq!(r.target.select(sessions(), |_| None), [1]);
        let by_session = Target {
            acct_session_id: Some(b"x".to_vec()),
            ..Target::default()
        };
        assert_eq!(by_session.select(sessions(), |_| Some(3)), [3]);
        assert_eq!(
            Target::default().select(sessions(), |_| None),
            Vec::<u64>::new(),
            "naming nothing selects nothing"
        );

        let ack = answer(&r, None);
        let parsed = Packet::verify_response(&ack, &r.packet.authenticator, b"dae", false).unwrap();
        assert_eq!((parsed.code, parsed.id), (code::DISCONNECT_ACK, 9));
        let nak = Packet::parse(&answer(&r, Some(error_cause::SESSION_CONTEXT_NOT_FOUND))).unwrap();
        assert_eq!(nak.code, code::DISCONNECT_NAK);
        assert_eq!(nak.get_u32(attr::ERROR_CAUSE), Some(503));

        assert_eq!(
            read_request(&bytes, IpAddr::from([127, 0, 0, 2]), &clients, false),
            Err(Dropped::UnknownClient(IpAddr::from([127, 0, 0, 2])))
        );
        let wrong = vec![(IpAddr::from([127, 0, 0, 1]), b"other".to_vec())];
        assert!(matches!(
            read_request(&bytes, IpAddr::from([127, 0, 0, 1]), &wrong, false),
            Err(Dropped::Bad(_))
        ));
        let acct = Packet::new(code::ACCOUNTING_REQUEST, 1, [0; 16])
            .encode(b"dae", None)
            .unwrap();
        assert_eq!(
            read_request(&acct, IpAddr::from([127, 0, 0, 1]), &clients, false),
            Err(Dropped::NotARequest(4))
        );
    }

    #[test]
    fn a_signed_request_passes_when_message_authenticator_is_required() {
        let clients = vec![(IpAddr::from([127, 0, 0, 1]), b"dae".to_vec())];
        let mut p = Packet::new(code::COA_REQUEST, 3, [0; 16]);
        p.push(attr::USER_NAME, "alice");
        p.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        let bytes = p.encode(b"dae", None).unwrap();
        let r = read_request(&bytes, IpAddr::from([127, 0, 0, 1]), &clients, true).unwrap();
        assert_eq!(r.target.user.as_deref(), Some("alice"));
        let ack = answer(&r, None);
        assert!(Packet::verify_response(&ack, &r.packet.authenticator, b"dae", true).is_ok());
    }
}
