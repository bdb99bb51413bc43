//! The concentrator's control side: accept TCP 1723, run each control connection in
//! its own task, accept the calls peers ask for (as PAC for outgoing calls, as PNS
//! for incoming ones) and hand each established call to the hub.
//!
//! A call goes to the hub, which installs it in the data plane, before its reply
//! reaches the peer ([`shell::Pass::then_write`]): for an outgoing call when we
//! answer Outgoing-Call-Reply Connected, for an incoming call when we answer
//! Incoming-Call-Reply, not at Incoming-Call-Connected. A PAC sends its first LCP
//! frame right after Incoming-Call-Connected; had the hub learnt of the call only
//! from that message, the frame could reach XDP first and be dropped as for no call
//! it knows, and LCP would wait out its 3-second restart.
//!
//! The [`Guards`] are applied here: the descriptor budget and connections per source
//! address when a connection is accepted (accept() errors never end a listener),
//! calls waiting for authentication per connection and per source address and the
//! login back-off of a source address when a call is requested, the back-off of a
//! user name when its credentials are looked up. Each call's session events pass
//! through a small task of its own ([`follow_session`]) that ends the call's wait
//! for authentication and records failed logins.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr, SocketAddrV4},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot, watch},
};

use crate::{
    engine::{CallSpec, SessionEvent},
    guard::{
        Guards, Log,
        backoff::LoginGuard,
        fds,
        limits::LiveLimits,
        pending::{CallRefused, ConnectionCalls, PendingCall},
    },
    ppp::{
        auth::{AuthError, Policy, Secret, SecretSource},
        ccp::MppePolicy,
        link::{DownReason, EchoConfig, LinkConfig, Role, ServerConfig, Verifier},
    },
    pptp::{
        call::CallRequest,
        call_id::SharedCallIds,
        control::{ControlConfig, ControlConnection, Event},
        message::{GeneralError, StopReason},
        shell::{self, CallClears, Pass, ShellLimits},
    },
};

use super::{
    hub::{CallUp, ControlCommand, HubCommand, SessionNotify},
    pool::PoolHandle,
};

/// What every call's PPP link is built from.
pub struct ServerSettings {
    /// Our CHAP name.
    pub name: String,
    /// Authentication methods, most preferred first.
    pub auth: Policy,
    /// Our address inside the tunnels.
    pub local_ip: std::net::Ipv4Addr,
    pub dns: [Option<std::net::Ipv4Addr>; 2],
    pub nbns: [Option<std::net::Ipv4Addr>; 2],
    /// Where client addresses come from.
    pub pool: Arc<dyn PoolHandle>,
    pub secrets: Arc<dyn SecretSource + Send + Sync>,
    pub mppe: MppePolicy,
    /// The MRU we ask for.
    pub mru: u16,
    /// LCP dead-peer detection.
    pub echo: Option<EchoConfig>,
    pub control: ControlConfig,
    /// Sessions in all, control connections per source address and the handshake
    /// timeout (sessions per user are the hub's: the user is known after
    /// authentication). SIGHUP replaces them.
    pub limits: LiveLimits,
    /// Credentials are judged by RADIUS through the hub, not by `secrets`.
    pub radius_auth: bool,
}

impl ServerSettings {
    /// The link of a call from `peer`, whose claims `logins` may refuse.
    fn link_config(&self, logins: &LoginGuard, peer: IpAddr) -> LinkConfig {
        let mut config = LinkConfig::new(Role::Server(ServerConfig {
            name: self.name.clone().into_bytes(),
            auth: self.auth.clone(),
            local_ip: self.local_ip,
            dns: self.dns,
            nbns: self.nbns,
            verifier: if self.radius_auth {
                Verifier::External
            } else {
                Verifier::Secrets(Box::new(SharedSecrets {
                    secrets: self.secrets.clone(),
                    logins: logins.clone(),
                    peer,
                }))
            },
            pool: self.pool.handle(),
        }));
        config.mru = self.mru;
        config.echo = self.echo;
        config.mppe = self.mppe.clone();
        config.passive = Some(PASSIVE_OPEN);
        config
    }
}

/// How long an answered call's LCP waits for the client's first Configure-Request
/// before sending ours (clients normally speak within milliseconds of reading the
/// Call-Reply; one that waits for us loses this much).
const PASSIVE_OPEN: std::time::Duration = std::time::Duration::from_millis(500);

/// The secrets a call's link judges claims with; a user name or address backing off
/// after failed logins gets none (the claim fails without being judged).
struct SharedSecrets {
    secrets: Arc<dyn SecretSource + Send + Sync>,
    logins: LoginGuard,
    peer: IpAddr,
}

impl SecretSource for SharedSecrets {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        if self.logins.refuses_login(user, self.peer, Instant::now()) {
            return None;
        }
        self.secrets.secret(user)
    }
}

/// What every control connection of one concentrator shares, whichever address it
/// was accepted on: the limits' counts, the guards and one Call ID space (sessions
/// are told apart by peer address and our Call ID, and many clients share an
/// address behind a NAT). Clones share.
#[derive(Clone)]
pub struct Shared {
    guards: Guards,
    /// Calls accepted and not yet down (`max_sessions`).
    calls: Arc<AtomicU32>,
    call_ids: SharedCallIds,
}

impl Shared {
    pub fn new(guards: Guards) -> Self {
        Self {
            guards,
            calls: Arc::default(),
            call_ids: SharedCallIds::default(),
        }
    }

    /// The Call IDs of every call of the concentrator (demand-dial calls it
    /// places draw from them too).
    pub fn call_ids(&self) -> SharedCallIds {
        self.call_ids.clone()
    }

    pub fn guards(&self) -> &Guards {
        &self.guards
    }

    /// The same, with `guards` (a descriptor budget known once everything is open).
    pub fn with_guards(mut self, guards: Guards) -> Self {
        self.guards = guards;
        self
    }
}

/// Accepts control connections on `listener` until `shutdown` turns true; each
/// connection then sends Stop-Control-Connection-Request and ends. Several
/// listeners of one concentrator get clones of one [`Shared`].
pub async fn serve(
    listener: TcpListener,
    settings: Arc<ServerSettings>,
    shared: Shared,
    hub: mpsc::Sender<HubCommand>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    let guards = shared.guards.clone();
    loop {
        // Connections that ended leave their results here until taken.
        while connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        if let Some(count) = guards.refused(&guards.stats.accept_errors, Log::Accept) {
                            tracing::warn!(error = %e, count, "accepting a control connection failed; the listener goes on (count: refusals and errors since the last such line)");
                        }
                        if fds::is_resource_error(&e) {
                            tokio::time::sleep(fds::ACCEPT_PAUSE).await;
                        }
                        continue;
                    }
                };
                let Some(fd) = guards.fds.take() else {
                    if let Some(count) = guards.refused(&guards.stats.connections_over_fd_budget, Log::Connection) {
                        tracing::warn!(%peer, budget = guards.fds.capacity(), count, "refused: the descriptor budget for control connections is spent (count: refusals since the last such line)");
                    }
                    continue;
                };
                let caps = settings.limits.get().for_peer(peer.ip());
                let Some(slot) = guards.connections.take(peer.ip(), caps.connections_per_source) else {
                    if let Some(count) = guards.refused(&guards.stats.connections_per_source, Log::Connection) {
                        tracing::warn!(%peer, count, "refused: too many control connections from this address (count: refusals since the last such line)");
                    }
                    continue;
                };
                connections.spawn(connection(stream, peer, settings.clone(), shared.clone(), hub.clone(), shutdown.clone(), (slot, fd)));
            }
            // Finished connections are reaped as they end: each one's task would
            // otherwise stay allocated in the set until shutdown (about 2 KiB per
            // connection that has come and gone).
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// What a control connection holds against the guards until it ends: its place in
/// its source address's count and in the descriptor budget.
type ConnectionSlots = (crate::guard::pending::Held, fds::FdHeld);

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<ServerSettings>,
    shared: Shared,
    hub: mpsc::Sender<HubCommand>,
    mut shutdown: watch::Receiver<bool>,
    _slots: ConnectionSlots,
) {
    let Shared {
        calls,
        call_ids,
        guards,
    } = shared;
    let (SocketAddr::V4(peer), Ok(SocketAddr::V4(local))) = (peer, stream.local_addr()) else {
        return; // IPv6 control connections: PPTP carries GRE over IPv4 only.
    };
    tracing::info!(%peer, "control connection");
    let conn =
        ControlConnection::answer_with_pool(settings.control.clone(), call_ids, Instant::now());
    let (commands, receiver) = mpsc::channel::<ControlCommand>(64);
    let stopper = commands.clone();
    let stop_on_shutdown = tokio::spawn(async move {
        if shutdown.changed().await.is_ok() {
            let _ = stopper
                .send(Box::new(
                    |conn: &mut ControlConnection<SharedCallIds>, now| {
                        conn.stop(StopReason::StopLocalShutdown, now)
                    },
                ))
                .await;
        }
    });
    let (came_up, first_session) = watch::channel(false);
    let came_up = Arc::new(came_up);
    let watchdog = tokio::spawn(handshake_watchdog(
        peer,
        settings.limits.get().handshake_timeout,
        first_session,
        commands.clone(),
    ));
    let clears = Arc::new(CallClears::default());
    let channels = shell::Channels {
        commands: receiver,
        clears: &clears,
        out: &hub,
    };
    let mut accepted = HashSet::new();
    let source = IpAddr::V4(*peer.ip());
    let unauthenticated = ConnectionCalls::default();
    // Calls accepted whose link has not started yet (an incoming call waits for
    // Incoming-Call-Connected): their places among the calls waiting for
    // authentication.
    let mut waiting: HashMap<u16, PendingCall> = HashMap::new();
    // Incoming calls handed to the hub at Incoming-Call-Reply: their
    // Incoming-Call-Connected has nothing more to hand on.
    let mut handed_early: HashSet<u16> = HashSet::new();
    let hub_call_up =
        |local_call_id: u16, peer_call_id: u16, pending: Option<PendingCall>| -> Pass<HubCommand> {
            let (installed, acted_on) = oneshot::channel();
            let up = HubCommand::CallUp(Box::new(CallUp {
                call: CallSpec {
                    peer_addr: *peer.ip(),
                    local_addr: *local.ip(),
                    local_call_id,
                    peer_call_id,
                },
                router: None,
                link: settings.link_config(&guards.logins, source),
                control: clears.clone(),
                notify: Some(follow_session(
                    pending,
                    came_up.clone(),
                    guards.logins.clone(),
                    source,
                )),
                installed,
            }));
            Pass::then_write(up, acted_on)
        };
    shell::drive(
        stream,
        conn,
        channels,
        ShellLimits::default(),
        |conn, event, now| match event {
            Event::CallRequested {
                local_call_id,
                request,
            } => {
                // Outgoing: a client (PNS) asks us, the PAC, to place a call. Incoming: a
                // PAC (an ISP's access switch) hands us, the PNS, a user's call.
                let (kind, incoming_from) = match &request {
                    CallRequest::Outgoing(_) => ("outgoing", None),
                    CallRequest::Incoming(icrq) => ("incoming", Some(icrq.call_id)),
                };
                let limits = settings.limits.get();
                if guards.logins.refuses_calls_from(source, Instant::now()) {
                    let _ = conn.refuse_call(local_call_id, GeneralError::NoResource);
                    return None;
                }
                let pending =
                    match guards
                        .pending
                        .admit(&unauthenticated, source, limits.for_peer(source))
                    {
                        Ok(pending) => pending,
                        Err(refused) => {
                            let counter = match refused {
                                CallRefused::PerConnection(_) => {
                                    &guards.stats.calls_unauthenticated_per_connection
                                }
                                CallRefused::PerSource(_) => {
                                    &guards.stats.calls_unauthenticated_per_source
                                }
                            };
                            if let Some(count) = guards.refused(counter, Log::Call) {
                                tracing::warn!(%peer, reason = %refused, count, "call refused (count: refusals since the last such line)");
                            }
                            let _ = conn.refuse_call(local_call_id, GeneralError::NoResource);
                            return None;
                        }
                    };
                let max = limits.max_sessions;
                let taken = calls.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < max).then_some(n + 1)
                });
                if taken.is_err() {
                    tracing::warn!(%peer, max, "call refused: the concentrator is full");
                    let _ = conn.refuse_call(local_call_id, GeneralError::NoResource);
                } else if let Err(e) = conn.accept_call(local_call_id, now) {
                    calls.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(%peer, error = %e, "cannot accept call");
                } else {
                    tracing::info!(%peer, local_call_id, kind, "call accepted");
                    accepted.insert(local_call_id);
                    if let Some(peer_call_id) = incoming_from {
                        // The Incoming-Call-Reply just queued waits for the hub.
                        handed_early.insert(local_call_id);
                        return Some(hub_call_up(local_call_id, peer_call_id, Some(pending)));
                    }
                    waiting.insert(local_call_id, pending);
                }
                None
            }
            Event::CallUp(info) => {
                if handed_early.remove(&info.local_call_id) {
                    return None;
                }
                let peer_call_id = info.peer_call_id?;
                let pending = waiting.remove(&info.local_call_id);
                Some(hub_call_up(info.local_call_id, peer_call_id, pending))
            }
            Event::CallDown {
                local_call_id,
                reason,
                ..
            } => {
                tracing::info!(%peer, local_call_id, ?reason, "call down");
                waiting.remove(&local_call_id);
                handed_early.remove(&local_call_id);
                if accepted.remove(&local_call_id) {
                    calls.fetch_sub(1, Ordering::SeqCst);
                }
                Some(Pass::on(HubCommand::CallDown((*peer.ip(), local_call_id))))
            }
            Event::Closed(reason) => {
                tracing::info!(%peer, ?reason, "control connection closed");
                None
            }
            _ => None,
        },
    )
    .await;
    stop_on_shutdown.abort();
    watchdog.abort();
}

/// What becomes of one call's session, told on the hub's task: it holds the call's
/// place among those waiting for authentication (`waiting`) until the session is
/// up or gone, tells `logins` how its authentication went, and the connection's
/// watchdog (`came_up`) that a session came up.
fn follow_session(
    mut waiting: Option<PendingCall>,
    came_up: Arc<watch::Sender<bool>>,
    logins: LoginGuard,
    source: IpAddr,
) -> SessionNotify {
    Box::new(move |event| match &event {
        SessionEvent::Up(_) => {
            drop(waiting.take());
            logins.succeeded(source);
            came_up.send_replace(true);
        }
        SessionEvent::Down(reason) => {
            drop(waiting.take());
            if let DownReason::AuthFailed(AuthError::BadCredentials { user }) = reason {
                logins.failed(user, source, Instant::now());
            }
        }
        // Counted and logged by the engine; the link's own timeout decides.
        SessionEvent::NoGre { .. } => {}
    })
}

/// Stops a control connection that has not brought a session up (authenticated, an
/// address negotiated) within `timeout` of its TCP connect: a peer that connects and
/// idles, or stalls its PPP negotiation, does not hold a connection slot for ever.
async fn handshake_watchdog(
    peer: SocketAddrV4,
    timeout: Duration,
    mut came_up: watch::Receiver<bool>,
    control: mpsc::Sender<ControlCommand>,
) {
    let first_up = async {
        if came_up.wait_for(|up| *up).await.is_err() {
            std::future::pending::<()>().await
        }
    };
    if tokio::time::timeout(timeout, first_up).await.is_err() {
        tracing::warn!(%peer, ?timeout, "no session up within the handshake timeout: stopping the control connection");
        let _ = control
            .send(Box::new(
                |conn: &mut ControlConnection<SharedCallIds>, now| conn.stop(StopReason::None, now),
            ))
            .await;
    }
}
