//! RADIUS: authentication (RFC 2865, with the Microsoft attributes of RFC 2548),
//! accounting (RFC 2866) and dynamic authorization (RFC 5176), so that many
//! concentrators share one AAA service.
//!
//! Our own codec and client rather than a crate: the `radius` crate (0.4) has no
//! RFC 2548 attributes nor their key encryption, does not compute
//! Message-Authenticator, and its client neither retransmits nor fails over; nothing
//! else on crates.io is maintained for the job. The protocol parts are sans-IO:
//! - [`packet`]: the wire format, authenticators, password and key encryption;
//! - [`client`]: one exchange with retransmission and fail-over;
//! - [`auth`]: PPP claims to Access-Requests, Access-Accepts to verdicts;
//! - [`acct`]: Accounting-Requests and each session's interim/timeout clock;
//! - [`dae`]: Disconnect-Request and CoA-Request handling;
//! - [`nas`]: Acct-Session-Ids and Accounting-On/Off, what a concentrator in a
//!   fleet tells the AAA service about itself.
//!
//! - [`exchanges`]: every exchange in flight over a fixed set of sockets, each
//!   with its whole identifier space, and answers matched to them;
//!
//! and [`transport`] moves their datagrams (one task per socket). This file holds
//! the configuration and [`Radius`], the handle the session hub uses.

pub mod acct;
pub mod auth;
pub mod client;
pub mod dae;
pub mod exchanges;
pub mod nas;
pub mod packet;
pub mod replay;
pub mod transport;

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::RngCore as _;
use tokio::sync::OnceCell;

use self::{
    acct::Record,
    auth::{AccessRequest, Authorization, Nas},
    client::{Health, Outcome, Server, Timing},
    exchanges::{Encode, Limits, Refused},
    nas::{AcctSessionIds, NasRecord},
    packet::PacketError,
    transport::Transport,
};
use crate::{
    escape::Escaped,
    guard::{backoff::LoginGuard, stats::GuardStats},
    ppp::{
        auth::{Claim, SecretSource, Verdict},
        link::AddressGrant,
    },
};

/// Where users are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UserSource {
    /// The secrets file only.
    #[default]
    File,
    /// RADIUS only.
    Radius,
    /// RADIUS; the secrets file when no RADIUS server answers.
    RadiusThenFile,
}

impl UserSource {
    /// As written in the configuration (`auth.source`).
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::File => "file",
            UserSource::Radius => "radius",
            UserSource::RadiusThenFile => "radius-then-file",
        }
    }
}

/// Dynamic authorization (RFC 5176) server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaeConfig {
    /// Where Disconnect-Request and CoA-Request are accepted.
    pub listen: SocketAddr,
    /// Who may send them, with their secrets.
    pub clients: Vec<(std::net::IpAddr, Vec<u8>)>,
    /// Requests without a valid Message-Authenticator are dropped.
    pub require_message_authenticator: bool,
    /// Requests without an Event-Timestamp within `window` of our clock are dropped.
    pub require_event_timestamp: bool,
    /// How far Event-Timestamp may be from our clock, and how long requests are
    /// remembered to turn duplicates away.
    pub window: Duration,
}

/// The `[radius]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiusConfig {
    /// Authentication servers, in order of preference.
    pub auth_servers: Vec<Server>,
    /// Accounting servers, in order of preference (empty: no accounting).
    pub acct_servers: Vec<Server>,
    pub timing: Timing,
    /// UDP sockets every exchange goes over (each with 256 identifiers per server).
    pub sockets: usize,
    pub nas: Nas,
    /// Interim-Update interval unless the server sends Acct-Interim-Interval.
    pub interim: Option<Duration>,
    pub dae: Option<DaeConfig>,
    /// Named address ranges an Access-Accept can pick with Framed-Pool (besides
    /// `[tunnel] pools`, the pool of everyone else).
    pub pools: std::collections::BTreeMap<String, Vec<crate::auth::pool::AddressRange>>,
}

/// An authentication to run for a session.
#[derive(Debug, Clone)]
pub struct AuthJob {
    pub claim: Claim,
    /// NAS-Port: unique among the concentrator's sessions, the same for the
    /// session's life (the engine's session slot).
    pub port: u32,
    /// The peer's outer address (Calling-Station-Id).
    pub calling_station: Ipv4Addr,
}

/// The answer to an [`AuthJob`].
#[derive(Debug, Clone)]
pub struct Authorized {
    pub verdict: Verdict,
    pub grant: AddressGrant,
    /// `None` when the secrets file judged (fallback) or on rejection.
    pub authorization: Option<Authorization>,
}

/// Requests that may wait for an identifier when every socket's are in flight
/// (more than the sessions the engine holds, each of which waits for one at most,
/// plus the Stops of a shutdown).
pub const MAX_WAITING: usize = 65_536;

/// The hub's handle on RADIUS (cheap to clone).
#[derive(Clone)]
pub struct Radius {
    /// The sockets and exchanges, bound at the first exchange.
    transport: Arc<OnceCell<Transport>>,
    /// Where the transport counts the answers it drops.
    stats: Arc<GuardStats>,
    /// Refuses logins of user names and addresses backing off after failures.
    logins: Option<LoginGuard>,
    config: Arc<RadiusConfig>,
    auth_servers: Arc<[Server]>,
    acct_servers: Arc<[Server]>,
    source: UserSource,
    secrets: Arc<dyn SecretSource + Send + Sync>,
    auth_health: Arc<Mutex<Health>>,
    acct_health: Arc<Mutex<Health>>,
    /// How this run names its sessions in Acct-Session-Id.
    ids: AcctSessionIds,
}

impl Radius {
    /// A handle judging users as `source` says (`secrets`: the secrets file).
    pub fn new(
        config: RadiusConfig,
        source: UserSource,
        secrets: Arc<dyn SecretSource + Send + Sync>,
    ) -> Self {
        Radius {
            ids: AcctSessionIds::starting_now(&config.nas),
            transport: Arc::default(),
            stats: Arc::default(),
            logins: None,
            auth_servers: config.auth_servers.clone().into(),
            acct_servers: config.acct_servers.clone().into(),
            config: Arc::new(config),
            source,
            secrets,
            auth_health: Arc::default(),
            acct_health: Arc::default(),
        }
    }

    /// The same, counting dropped answers in `stats`.
    pub fn with_stats(mut self, stats: Arc<GuardStats>) -> Self {
        self.stats = stats;
        self
    }

    /// The same, refusing (without asking the servers) logins `logins` backs off.
    pub fn with_logins(mut self, logins: LoginGuard) -> Self {
        self.logins = Some(logins);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &RadiusConfig {
        &self.config
    }

    /// Whether RADIUS judges users (otherwise only accounting goes to it).
    pub fn authenticates(&self) -> bool {
        self.source != UserSource::File
    }

    /// Whether accounting records are sent.
    pub fn accounts(&self) -> bool {
        !self.config.acct_servers.is_empty()
    }

    /// How this run names sessions in Acct-Session-Id (the engine writes them).
    pub fn acct_ids(&self) -> &AcctSessionIds {
        &self.ids
    }

    /// The session number in an Acct-Session-Id of this run.
    pub fn session_of(&self, acct_session_id: &[u8]) -> Option<u64> {
        self.ids.number(acct_session_id)
    }

    /// Judges a claim: Access-Request to the servers in turn; with
    /// [`UserSource::RadiusThenFile`], the secrets file when none answers.
    pub async fn authenticate(&self, job: AuthJob) -> Authorized {
        let reject = Authorized {
            verdict: Verdict::Reject,
            grant: AddressGrant::ByUser,
            authorization: None,
        };
        if let Some(logins) = &self.logins
            && logins.refuses_login(&job.claim.user, job.calling_station.into(), Instant::now())
        {
            return reject;
        }
        let mut authenticator = [0u8; 16];
        rand::rng().fill_bytes(&mut authenticator);
        let config = self.config.clone();
        let claim = job.claim.clone();
        let encode: Encode = Box::new(move |id| {
            let request = AccessRequest {
                claim: &claim,
                nas: &config.nas,
                port: job.port,
                calling_station: job.calling_station,
            };
            config
                .auth_servers
                .iter()
                .map(|s| request.encode(id, authenticator, &s.secret).ok())
                .collect()
        });
        let servers = &self.auth_servers;
        let outcome = match self.exchange(servers, &self.auth_health, encode).await {
            Ok(outcome) => outcome,
            Err(Refused::Unencodable) => {
                tracing::warn!("claim does not fit an Access-Request: rejected");
                return reject;
            }
            Err(Refused::QueueFull) => Outcome {
                answer: None,
                silent: Vec::new(),
            },
        };
        let user = Escaped(&job.claim.user);
        match outcome.answer {
            Some((server, response)) => {
                let (verdict, authorization) = auth::judge(
                    &job.claim,
                    &response,
                    &authenticator,
                    &servers[server].secret,
                );
                if let Some(m) = authorization
                    .as_ref()
                    .and_then(|a| a.reply_message.as_ref())
                {
                    tracing::info!(%user, reply_message = %Escaped::str(m), "RADIUS");
                }
                tracing::info!(%user, server = %servers[server].addr, accepted = matches!(verdict, Verdict::Accept { .. }), "RADIUS answered");
                let grant = match authorization.as_ref() {
                    Some(Authorization {
                        address: Some(a), ..
                    }) => AddressGrant::Exactly(*a),
                    Some(Authorization { pool: Some(p), .. }) => AddressGrant::Pool(p.clone()),
                    _ => AddressGrant::Any,
                };
                Authorized {
                    verdict,
                    grant,
                    authorization,
                }
            }
            None if self.source == UserSource::RadiusThenFile => {
                tracing::warn!(%user, "no RADIUS server answered: judged by the secrets file");
                Authorized {
                    verdict: job.claim.verify(self.secrets.secret(&job.claim.user)),
                    grant: AddressGrant::ByUser,
                    authorization: None,
                }
            }
            None => {
                tracing::warn!(%user, "no RADIUS server answered: rejected");
                reject
            }
        }
    }

    /// Sends one accounting record (to the first accounting server that answers).
    pub async fn account(&self, record: Record) {
        let r = record.clone();
        let answered = self
            .send_accounting(move |id, nas, secret| r.encode(id, nas, secret))
            .await;
        match answered {
            None => {
                tracing::warn!(session = %record.session_id, "accounting record too long: not sent");
            }
            Some(false) => {
                tracing::warn!(session = %record.session_id, status = ?record.status, "no accounting server answered: record lost");
            }
            Some(true) => {}
        }
    }

    /// Sends Accounting-On or -Off (to the first accounting server that answers).
    pub async fn account_nas(&self, record: NasRecord) {
        let r = record.clone();
        let answered = self
            .send_accounting(move |id, nas, secret| r.encode(id, nas, secret))
            .await
            == Some(true);
        if answered {
            tracing::info!(status = ?record.status, "accounting server told");
        } else {
            tracing::warn!(status = ?record.status, "no accounting server answered Accounting-{:?}: its view of this NAS's sessions and leases may be stale", record.status);
        }
    }

    /// One Accounting-Request to the accounting servers in turn: whether one
    /// answered (`None`: the request cannot be encoded; no servers: `Some(true)`).
    async fn send_accounting(
        &self,
        encode: impl Fn(u8, &Nas, &[u8]) -> Result<Vec<u8>, PacketError> + Send + 'static,
    ) -> Option<bool> {
        if self.acct_servers.is_empty() {
            return Some(true);
        }
        let config = self.config.clone();
        let encode: Encode = Box::new(move |id| {
            config
                .acct_servers
                .iter()
                .map(|s| encode(id, &config.nas, &s.secret).ok())
                .collect()
        });
        match self
            .exchange(&self.acct_servers, &self.acct_health, encode)
            .await
        {
            Ok(outcome) => Some(outcome.answer.is_some()),
            Err(Refused::Unencodable) => None,
            Err(Refused::QueueFull) => Some(false),
        }
    }

    /// One exchange over the shared sockets (bound on first use).
    async fn exchange(
        &self,
        servers: &Arc<[Server]>,
        health: &Mutex<Health>,
        encode: Encode,
    ) -> Result<Outcome, Refused> {
        let limits = Limits {
            sockets: self.config.sockets,
            // A retransmitted or abandoned request may still be answered up to
            // about one timeout after its last send.
            hold: self.config.timing.timeout,
            max_waiting: MAX_WAITING,
        };
        let transport = self
            .transport
            .get_or_try_init(|| async { Transport::bind(limits, self.stats.clone()) })
            .await;
        match transport {
            Ok(t) => {
                t.exchange(servers, self.config.timing, health, encode)
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "RADIUS: cannot open the UDP sockets");
                Ok(Outcome {
                    answer: None,
                    silent: Vec::new(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppp::auth::{Method, Secret};

    struct OneUser;

    impl SecretSource for OneUser {
        fn secret(&self, user: &[u8]) -> Option<Secret> {
            (user == b"alice").then(|| Secret::Password(b"pw".to_vec()))
        }
    }

    /// A loopback port nobody answers on (bound, then closed).
    fn silent_server() -> Server {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        Server {
            addr: socket.local_addr().unwrap(),
            secret: b"s".to_vec(),
        }
    }

    fn radius(source: UserSource) -> Radius {
        let config = RadiusConfig {
            auth_servers: vec![silent_server()],
            acct_servers: Vec::new(),
            timing: Timing {
                timeout: Duration::from_millis(50),
                retries: 1,
                dead_time: Duration::from_secs(30),
                require_message_authenticator: client::RequireMessageAuthenticator::Auto,
            },
            sockets: 2,
            nas: Nas::default(),
            interim: None,
            dae: None,
            pools: Default::default(),
        };
        Radius::new(config, source, Arc::new(OneUser))
    }

    fn pap(password: &[u8]) -> AuthJob {
        AuthJob {
            claim: Claim {
                method: Method::Pap,
                user: b"alice".to_vec(),
                challenge: Vec::new(),
                response: password.to_vec(),
                id: 1,
            },
            port: 1,
            calling_station: Ipv4Addr::new(198, 51, 100, 2),
        }
    }

    #[test]
    fn no_answer_rejects_or_falls_back_to_the_secrets_file() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let only = radius(UserSource::Radius);
            let started = Instant::now();
            let a = only.authenticate(pap(b"pw")).await;
            assert_eq!(a.verdict, Verdict::Reject);
            // Two waits of 50 ms, each spread by up to 10 %.
            assert!(started.elapsed() >= Duration::from_millis(90), "two tries");

            let fallback = radius(UserSource::RadiusThenFile);
            let a = fallback.authenticate(pap(b"pw")).await;
            assert!(matches!(a.verdict, Verdict::Accept { .. }), "{a:?}");
            assert_eq!((a.grant, a.authorization), (AddressGrant::ByUser, None));
            let a = fallback.authenticate(pap(b"wrong")).await;
            assert_eq!(
                a.verdict,
                Verdict::Reject,
                "the file judges: a wrong password is refused"
            );
        });
    }

    #[test]
    fn acct_session_ids_map_back_to_sessions() {
        let r = radius(UserSource::Radius);
        let id = r.acct_ids().of(0x1234);
        assert_eq!(r.session_of(id.as_bytes()), Some(0x1234));
        let other = radius(UserSource::Radius);
        assert_eq!(
            r.session_of(other.acct_ids().of(0x1234).as_bytes()),
            None,
            "another run"
        );
        assert_eq!(r.session_of(b"junk"), None);
    }
}
