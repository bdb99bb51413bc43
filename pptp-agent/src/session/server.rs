//! The concentrator's control side: accept TCP 1723, run each control connection in
//! its own task, accept the calls peers ask for (as PAC for outgoing calls, as PNS
//! for incoming ones) and hand each established call to the hub.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr, SocketAddrV4},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};

use crate::{
    config::LiveLimits,
    ppp::{
        auth::{Policy, Secret, SecretSource},
        ccp::MppePolicy,
        link::{EchoConfig, LinkConfig, Role, ServerConfig, Verifier},
    },
    pptp::{
        call::CallRequest,
        call_id::SharedCallIds,
        control::{ControlConfig, ControlConnection, Event},
        message::{GeneralError, StopReason},
        shell::{self, CallClears, ShellLimits},
    },
};

use super::{
    hub::{CallUp, ControlCommand, HubCommand, SessionEvent},
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
    fn link_config(&self) -> LinkConfig {
        let mut config = LinkConfig::new(Role::Server(ServerConfig {
            name: self.name.clone().into_bytes(),
            auth: self.auth.clone(),
            local_ip: self.local_ip,
            dns: self.dns,
            nbns: self.nbns,
            verifier: if self.radius_auth {
                Verifier::External
            } else {
                Verifier::Secrets(Box::new(SharedSecrets(self.secrets.clone())))
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

struct SharedSecrets(Arc<dyn SecretSource + Send + Sync>);

impl SecretSource for SharedSecrets {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.0.secret(user)
    }
}

/// What every control connection of one concentrator shares, whichever address it
/// was accepted on: the limits' counts and one Call ID space (sessions are told
/// apart by peer address and our Call ID, and many clients share an address
/// behind a NAT). Clones share.
#[derive(Clone, Default)]
pub struct Shared {
    per_source: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// Calls accepted and not yet down (`max_sessions`).
    calls: Arc<AtomicU32>,
    call_ids: SharedCallIds,
}

impl Shared {
    /// The Call IDs of every call of the concentrator (demand-dial calls it
    /// places draw from them too).
    pub fn call_ids(&self) -> SharedCallIds {
        self.call_ids.clone()
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
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted.context("accepting a control connection")?;
                let Some(slot) = SourceSlot::take(&shared.per_source, peer.ip(), settings.limits.get().connections_per_source) else {
                    tracing::warn!(%peer, "refused: too many control connections from this address");
                    continue;
                };
                connections.spawn(connection(stream, peer, settings.clone(), shared.clone(), hub.clone(), shutdown.clone(), slot));
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

/// One control connection counted against its source address; released on drop.
struct SourceSlot {
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    source: IpAddr,
}

impl SourceSlot {
    /// A slot for `source`, or `None` if it already has `limit` connections.
    fn take(
        counts: &Arc<Mutex<HashMap<IpAddr, u32>>>,
        source: IpAddr,
        limit: Option<u32>,
    ) -> Option<Self> {
        let mut map = counts.lock().expect("per-source counts");
        let live = map.entry(source).or_insert(0);
        if limit.is_some_and(|limit| *live >= limit) {
            return None;
        }
        *live += 1;
        Some(Self {
            counts: counts.clone(),
            source,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().expect("per-source counts");
        if let Some(live) = map.get_mut(&self.source) {
            *live -= 1;
            if *live == 0 {
                map.remove(&self.source);
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<ServerSettings>,
    shared: Shared,
    hub: mpsc::Sender<HubCommand>,
    mut shutdown: watch::Receiver<bool>,
    _slot: SourceSlot,
) {
    let Shared {
        calls, call_ids, ..
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
                let kind = match request {
                    CallRequest::Outgoing(_) => "outgoing",
                    CallRequest::Incoming(_) => "incoming",
                };
                let max = settings.limits.get().max_sessions;
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
                }
                None
            }
            Event::CallUp(info) => {
                let peer_call_id = info.peer_call_id?;
                let came_up = came_up.clone();
                Some(HubCommand::CallUp(Box::new(CallUp {
                    peer_addr: *peer.ip(),
                    local_addr: *local.ip(),
                    local_call_id: info.local_call_id,
                    peer_call_id,
                    link: settings.link_config(),
                    control: clears.clone(),
                    notify: Some(Box::new(move |event| {
                        if matches!(event, SessionEvent::Up(_)) {
                            came_up.send_replace(true);
                        }
                    })),
                    router: None,
                })))
            }
            Event::CallDown {
                local_call_id,
                reason,
                ..
            } => {
                tracing::info!(%peer, local_call_id, ?reason, "call down");
                if accepted.remove(&local_call_id) {
                    calls.fetch_sub(1, Ordering::SeqCst);
                }
                Some(HubCommand::CallDown((*peer.ip(), local_call_id)))
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
