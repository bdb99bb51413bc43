//! Dynamic authorization (RFC 5176): Disconnect-Request ends sessions,
//! CoA-Request changes their Session-Timeout, Idle-Timeout and interim interval.
//!
//! [`read_request`] is the sans-IO half: it takes a datagram from a source address,
//! accepts it only from a configured client with a valid Request Authenticator and
//! Message-Authenticator (required unless the configuration says otherwise; checked
//! when present), and says which sessions it names ([`Target`]); a
//! [`ReplayCache`](super::replay::ReplayCache) then requires a recent Event-Timestamp
//! and turns duplicates away; [`answer`] builds the ACK or NAK. [`serve`] is the UDP
//! loop that asks the hub for its sessions, acts through [`HubCommand`]s and answers.
//! What it drops is counted ([`GuardStats`]) and logged once per interval.

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, atomic::AtomicU64},
    time::{Instant, SystemTime},
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot, watch},
};

use super::{
    DaeConfig, Radius,
    auth::Authorization,
    packet::{self, Packet, attr, code},
    replay::{Admission, Refused, ReplayCache},
};
use crate::{
    engine::{Selector, SessionId, SessionInfo},
    guard::{GuardStats, ratelog::LogEvery},
    runtime::hub::HubCommand,
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

    /// The ids of the sessions named (`session_of` maps an Acct-Session-Id to ours).
    pub fn select(
        &self,
        sessions: &[SessionInfo],
        session_of: impl Fn(&[u8]) -> Option<u64>,
    ) -> Vec<SessionId> {
        if self.is_empty() {
            return Vec::new();
        }
        let wanted_id = self.acct_session_id.as_deref().map(session_of);
        sessions
            .iter()
            .filter(|s| wanted_id.is_none_or(|id| id == Some(s.id.get())))
            .filter(|s| {
                self.user
                    .as_ref()
                    .is_none_or(|u| s.user.as_ref() == Some(u))
            })
            .filter(|s| self.address.is_none_or(|a| s.client == Some(a)))
            .map(|s| s.id)
            .collect()
    }
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

impl Dropped {
    /// The counter of this reason.
    pub fn counter<'a>(&self, stats: &'a GuardStats) -> &'a AtomicU64 {
        match self {
            Dropped::UnknownClient(_) => &stats.dae_unknown_client,
            Dropped::Bad(_) | Dropped::NotARequest(_) => &stats.dae_bad_packet,
            Dropped::Replay(Refused::NoEventTimestamp) => &stats.dae_no_event_timestamp,
            Dropped::Replay(Refused::StaleEventTimestamp { .. }) => {
                &stats.dae_stale_event_timestamp
            }
            Dropped::Replay(Refused::CacheFull) => &stats.dae_replay_cache_full,
        }
    }
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

/// Serves Disconnect-Request and CoA-Request on `socket` (bound to
/// `config.listen`) until `shutdown`.
pub async fn serve(
    socket: UdpSocket,
    config: DaeConfig,
    radius: Radius,
    hub: mpsc::Sender<HubCommand>,
    stats: Arc<GuardStats>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    tracing::info!(listen = %config.listen, "accepting RADIUS Disconnect and CoA requests");
    let mut buf = vec![0u8; packet::MAX_LEN];
    let mut replay = ReplayCache::new(config.window, config.require_event_timestamp);
    let mut dropped = LogEvery::default();
    let mut duplicates = LogEvery::default();
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(received) => received,
                Err(e) => {
                    tracing::warn!(error = %e, "dynamic authorization socket");
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let now = Instant::now();
        let checked = read_request(
            &buf[..n],
            from.ip(),
            &config.clients,
            config.require_message_authenticator,
        )
        .and_then(|r| {
            let admission = replay.admit(from.ip(), &r.packet, SystemTime::now(), now)?;
            Ok((r, admission))
        });
        let request = match checked {
            Ok((r, Admission::Fresh)) => r,
            Ok((_, Admission::Duplicate(answer))) => {
                GuardStats::count(&stats.dae_duplicates);
                if let Some(count) = duplicates.hit(now) {
                    tracing::warn!(%from, count, "dynamic authorization request seen before (replayed or retransmitted): answered again, not carried out");
                }
                if let Some(answer) = answer {
                    let _ = socket.send_to(&answer, from).await;
                }
                continue;
            }
            Err(e) => {
                GuardStats::count(e.counter(&stats));
                if let Some(count) = dropped.hit(now) {
                    tracing::warn!(%from, error = %e, count, "dynamic authorization requests dropped (count: since the last such line)");
                }
                continue;
            }
        };
        let error = act(&request, &radius, &hub).await;
        tracing::info!(%from, code = request.packet.code, target = ?request.target, ?error, "dynamic authorization");
        let answer = answer(&request, error);
        let _ = socket.send_to(&answer, from).await;
        replay.answered(from.ip(), &request.packet, answer);
    }
}

/// Carries a request out; the Error-Cause for a NAK.
async fn act(request: &Request, radius: &Radius, hub: &mpsc::Sender<HubCommand>) -> Option<u32> {
    if request.target.is_empty() {
        return Some(error_cause::MISSING_ATTRIBUTE);
    }
    let (tx, rx) = oneshot::channel();
    hub.send(HubCommand::Sessions(tx)).await.ok()?;
    let sessions = rx.await.ok()?;
    let ids = request.target.select(&sessions, |s| radius.session_of(s));
    if ids.is_empty() {
        return Some(error_cause::SESSION_CONTEXT_NOT_FOUND);
    }
    for id in ids {
        if request.packet.code == code::DISCONNECT_REQUEST {
            let (tx, rx) = oneshot::channel();
            hub.send(HubCommand::Kill(Selector::Id(id), tx))
                .await
                .ok()?;
            let _ = rx.await;
        } else {
            let (tx, rx) = oneshot::channel();
            let update = Authorization::from_packet(&request.packet);
            hub.send(HubCommand::Reauthorize(id, update, tx))
                .await
                .ok()?;
            let _ = rx.await;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{DataPath, SessionState};

    fn info(id: u64, user: &str, client: [u8; 4]) -> SessionInfo {
        SessionInfo {
            id: SessionId::from_number(id),
            user: Some(user.into()),
            peer: Ipv4Addr::new(198, 51, 100, 2),
            local_call_id: 1,
            peer_call_id: 2,
            client: Some(client.into()),
            state: SessionState::Up,
            path: DataPath::Xdp,
            mppe: None,
            interface: None,
            uptime_secs: 0,
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
        }
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
            info(1, "alice", [192, 0, 2, 10]),
            info(2, "alice", [192, 0, 2, 11]),
            info(3, "bob", [192, 0, 2, 10]),
        ];
        let ids = |ids: &[u64]| -> Vec<SessionId> {
            ids.iter().copied().map(SessionId::from_number).collect()
        };
        assert_eq!(r.target.select(&sessions, |_| None), ids(&[1]));
        let by_session = Target {
            acct_session_id: Some(b"x".to_vec()),
            ..Target::default()
        };
        assert_eq!(by_session.select(&sessions, |_| Some(3)), ids(&[3]));
        assert_eq!(
            Target::default().select(&sessions, |_| None),
            ids(&[]),
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
