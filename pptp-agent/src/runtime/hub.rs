//! The hub: the one task that runs the [`Engine`] and moves bytes for it. It reads
//! the raw GRE socket, the concentrator's (or a client's) TUN device, what the
//! kernel routes into demand-dial interfaces' devices and the commands of other
//! tasks ([`HubCommand`]: calls up and down from control connections, the
//! operator's API, dynamic authorization); it hands each to the engine with the
//! time, writes what the engine delivers, and carries out its [`Action`]s (clear a
//! call on its control connection, tell a call's owner, ask RADIUS, account, dial).
//! Everything protocol lives in the engine; nothing here decides.
//!
//! Bounds: the inbox holds [`HUB_QUEUE`] commands (senders wait: a control
//! connection then stops reading its peer); RADIUS requests in flight are at most
//! one per session (the engine cancels the older one); clears reach control
//! connections through their [`CallClears`], which never blocks the hub.

use std::{
    collections::HashMap,
    io,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::{
    sync::{mpsc, oneshot},
    task::{AbortHandle, JoinSet},
};

use crate::{
    engine::{
        Action, AgentStats, CallKey, Delivery, Device, Engine, EngineLoad, InterfaceInfo, OwnerId,
        RatePolicy, Selector, SessionEvent, SessionId, SessionInfo, Target,
        capture::{CaptureError, CaptureLimits, CapturedBatch},
    },
    ppp::link::ClaimTicket,
    pptp::{
        call_id::SharedCallIds,
        shell::{CallClears, Command},
    },
    radius::{Authorized, Radius, auth::Authorization, dae},
};

use super::{
    gre_socket::{GreSocket, RecvBatch},
    tun::Tun,
};

pub use crate::engine::CallUp as EngineCall;

/// A command to a control connection's task. Every control connection allocates
/// its Call IDs from a [`SharedCallIds`]: the concentrator shares one among all its
/// connections, since sessions are told apart by (peer address, Call ID) and many
/// clients can share one address behind a NAT.
pub type ControlCommand = Command<SharedCallIds>;

/// Commands waiting for the hub: senders wait for room (a control connection then
/// stops reading its peer), so a hub that falls behind slows its sources down
/// instead of queueing without bound.
pub const HUB_QUEUE: usize = 1024;

/// The hub's inbox ([`HUB_QUEUE`] commands).
pub fn channel() -> (mpsc::Sender<HubCommand>, mpsc::Receiver<HubCommand>) {
    mpsc::channel(HUB_QUEUE)
}

/// Told what becomes of a session: [`SessionEvent::Up`] when IPCP opens (again,
/// after a renegotiation) and [`SessionEvent::Down`] once. Called on the hub's
/// task: it must not block (a client's bounded channel with room for its one
/// call's events, or a watch).
pub type SessionNotify = Box<dyn FnMut(SessionEvent) + Send>;

/// A call that came up on a control connection.
pub struct CallUp {
    /// The call and its PPP link (the engine's owner is filled in by the hub).
    pub call: crate::engine::CallSpec,
    pub link: crate::ppp::link::LinkConfig,
    /// The demand-dial interface we placed the call for (`None`: we answered it).
    pub router: Option<usize>,
    /// The control connection, to clear the call when the link ends.
    pub control: Arc<CallClears>,
    /// Told when the link comes up and when the session ends.
    pub notify: Option<SessionNotify>,
    /// Fired once the call is in the data plane (or was refused): the control
    /// connection holds the call's reply until then.
    pub installed: oneshot::Sender<()>,
}

/// What the hub is asked to do.
pub enum HubCommand {
    /// Start the PPP link of a call.
    CallUp(Box<CallUp>),
    /// The control connection lost the call.
    CallDown(CallKey),
    /// Close every link (LCP Terminate), clear every call, undo every route and
    /// map entry, then stop.
    Shutdown(oneshot::Sender<()>),
    /// An IPv4 packet to carry as if the TUN device had given it (the load
    /// generator's probes).
    Send(Vec<u8>),
    /// Report every session.
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    /// The sessions a dynamic-authorization request names.
    Named(dae::Target, oneshot::Sender<Vec<SessionId>>),
    /// Hang up the sessions selected; answers how many were selected.
    Kill(Selector, oneshot::Sender<usize>),
    /// Report the agent path's counters.
    Stats(oneshot::Sender<AgentStats>),
    /// Report what the hub holds now.
    Load(oneshot::Sender<EngineLoad>),
    /// Change the timeouts, rate limit or quota of a session (RADIUS CoA); answers
    /// whether it exists.
    Reauthorize(SessionId, Box<Authorization>, oneshot::Sender<bool>),
    /// A call placed by the [`Dialer`] ended (whether or not it came up).
    DialEnded { index: usize, generation: u64 },
    /// Report every demand-dial interface.
    Interfaces(oneshot::Sender<Vec<InterfaceInfo>>),
    /// Start capturing an agent-path session (`pptp-agent capture`); answers the
    /// capture's number.
    CaptureStart(SessionId, oneshot::Sender<Result<u64, CaptureError>>),
    /// Take what a capture holds.
    CaptureTake(u64, oneshot::Sender<CapturedBatch>),
    /// End a capture (its reader went away).
    CaptureStop(u64),
    /// The configuration's rate limits were reloaded (SIGHUP).
    SetRates(RatePolicy),
}

/// Starts a call for demand-dial interface `index` (its `generation`-th); the task
/// must end by sending [`HubCommand::DialEnded`] with both.
pub type Dialer = Box<dyn FnMut(usize, u64) + Send>;

/// The devices the engine's IPv4 meets the kernel through.
pub struct Devices {
    /// The concentrator's shared device.
    pub concentrator: Option<Arc<Tun>>,
    /// Demand-dial interfaces' devices, by index.
    pub routers: Vec<Arc<Tun>>,
    /// A client's device, once its link is up (made by the network half).
    pub client: Arc<Mutex<Option<Arc<Tun>>>>,
    /// The load generator's inbox: IPv4 from sessions, with the session's address.
    /// A full inbox drops the packet (counted in `send_errors`).
    pub probe: Option<mpsc::Sender<(Ipv4Addr, Vec<u8>)>>,
}

/// What the hub needs besides the engine.
pub struct HubParts {
    pub gre: GreSocket,
    pub devices: Devices,
    pub radius: Option<Radius>,
    pub dialer: Option<Dialer>,
}

/// A call's owner, as the hub knows it.
struct Owner {
    clears: Arc<CallClears>,
    notify: Option<SessionNotify>,
}

/// The hub. Build it with [`Hub::new`], run it with [`Hub::run`].
pub struct Hub {
    engine: Engine,
    parts: HubParts,
    owners: HashMap<OwnerId, Owner>,
    next_owner: u64,
    /// Access-Requests in flight (each ends with its verdict), and how to cancel
    /// each session's.
    authentications: JoinSet<(SessionId, ClaimTicket, Authorized)>,
    asking: HashMap<SessionId, AbortHandle>,
    /// Accounting requests in flight (awaited, within a bound, at shutdown).
    accounting: JoinSet<()>,
    /// Who waits for a shutdown to complete.
    closing: Vec<oneshot::Sender<()>>,
}

enum Wake {
    Gre(io::Result<usize>),
    Tun(io::Result<usize>),
    Router(Option<(usize, Vec<u8>)>),
    Command(Option<HubCommand>),
    Authorized(Option<Box<(SessionId, ClaimTicket, Authorized)>>),
    Timer,
}

impl Hub {
    pub fn new(engine: Engine, parts: HubParts) -> Self {
        Self {
            engine,
            parts,
            owners: HashMap::new(),
            next_owner: 0,
            authentications: JoinSet::new(),
            asking: HashMap::new(),
            accounting: JoinSet::new(),
            closing: Vec::new(),
        }
    }

    /// Runs until a shutdown completes or every command sender is gone (then it
    /// shuts down at once).
    pub async fn run(mut self, mut commands: mpsc::Receiver<HubCommand>) {
        let mut batch = RecvBatch::default();
        let mut tun_buf = vec![0u8; 65_536];
        let (_readers, mut from_routers) = start_router_readers(&self.parts.devices.routers);
        let mut has_routers = !self.parts.devices.routers.is_empty();
        self.carry_out().await;
        loop {
            let now = Instant::now();
            if self.engine.shutdown_complete(now) {
                return self.stop(now).await;
            }
            let deadline = self.engine.poll_timeout();
            let tun = self.kernel_device();
            let authenticating = !self.authentications.is_empty();
            let wake = tokio::select! {
                r = self.parts.gre.recv_batch(&mut batch) => Wake::Gre(r),
                r = recv_tun(tun.as_deref(), &mut tun_buf) => Wake::Tun(r),
                r = from_routers.recv(), if has_routers => Wake::Router(r),
                c = commands.recv() => Wake::Command(c),
                Some(r) = self.authentications.join_next(), if authenticating => Wake::Authorized(r.ok().map(Box::new)),
                () = sleep_until(deadline) => Wake::Timer,
            };
            match wake {
                Wake::Gre(Ok(n)) => {
                    // A call's first PPP frame can arrive together with the command
                    // that installs the call (the peer answers our Call-Reply at
                    // once): take the commands first so it is not dropped as unknown.
                    while let Ok(command) = commands.try_recv() {
                        self.on_command(command);
                    }
                    for i in 0..n {
                        self.on_gre(&mut batch, i).await;
                    }
                }
                Wake::Gre(Err(e)) => tracing::warn!(error = %e, "GRE socket"),
                Wake::Tun(Ok(n)) => self.on_ip(Device::Concentrator, &tun_buf[..n]),
                Wake::Tun(Err(e)) => tracing::warn!(error = %e, "TUN device"),
                Wake::Router(Some((index, packet))) => self.on_ip(Device::Router(index), &packet),
                // Every reader ended (their devices failed, logged): stop polling.
                Wake::Router(None) => has_routers = false,
                Wake::Command(Some(command)) => self.on_command(command),
                Wake::Command(None) => {
                    self.engine.begin_shutdown(Instant::now());
                    return self.stop(Instant::now()).await;
                }
                Wake::Authorized(Some(verdict)) => {
                    let (id, ticket, authorized) = *verdict;
                    self.asking.remove(&id);
                    self.engine
                        .handle_verdict(Instant::now(), id, ticket, authorized);
                }
                Wake::Authorized(None) => {}
                Wake::Timer => self.engine.handle_timeout(Instant::now()),
            }
            self.carry_out().await;
        }
    }

    /// The device the loop reads: the concentrator's, or a client's once up.
    fn kernel_device(&self) -> Option<Arc<Tun>> {
        let devices = &self.parts.devices;
        devices.concentrator.clone().or_else(|| {
            devices
                .client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    async fn on_gre(&mut self, batch: &mut RecvBatch, i: usize) {
        let Ok((bytes, received)) = batch.packet_mut(i) else {
            self.engine.count(crate::engine::AgentCounter::MalformedGre);
            return;
        };
        let gre = &mut bytes[received.gre_offset..received.end];
        let Delivery::Deliver { target, packet } =
            self.engine.handle_gre(Instant::now(), received.src, gre)
        else {
            return;
        };
        let packet = &gre[packet];
        let sent = match target {
            Target::Probe(address) => match &self.parts.devices.probe {
                Some(probe) => probe.try_send((address, packet.to_vec())).is_ok(),
                None => false,
            },
            Target::Kernel(device) => match self.device(device) {
                Some(tun) => tun.send(packet).await.is_ok(),
                None => false,
            },
        };
        if !sent {
            self.engine.count(crate::engine::AgentCounter::SendErrors);
        }
    }

    fn device(&self, device: Device) -> Option<Arc<Tun>> {
        let devices = &self.parts.devices;
        match device {
            Device::Concentrator => devices.concentrator.clone(),
            Device::Router(index) => devices.routers.get(index).cloned(),
            Device::Client => devices
                .client
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }

    /// An IPv4 packet for a session (from a device or the load generator).
    fn on_ip(&mut self, device: Device, packet: &[u8]) {
        if let Some((dst, gre)) = self.engine.handle_ip(Instant::now(), device, packet)
            && self.parts.gre.send_to(gre, dst).is_err()
        {
            self.engine.count(crate::engine::AgentCounter::SendErrors);
        }
    }

    fn on_command(&mut self, command: HubCommand) {
        let now = Instant::now();
        match command {
            HubCommand::CallUp(call) => {
                let CallUp {
                    call,
                    link,
                    router,
                    control,
                    notify,
                    installed,
                } = *call;
                let owner = OwnerId(self.next_owner);
                self.next_owner += 1;
                self.owners.insert(
                    owner,
                    Owner {
                        clears: control,
                        notify,
                    },
                );
                self.engine.handle_call_up(
                    now,
                    EngineCall {
                        call,
                        link,
                        owner,
                        router,
                    },
                );
                // The connection may be gone already.
                let _ = installed.send(());
            }
            HubCommand::CallDown(call) => self.engine.handle_call_down(now, call),
            HubCommand::Send(packet) => self.on_ip(Device::Concentrator, &packet),
            HubCommand::Shutdown(done) => {
                self.closing.push(done);
                self.engine.begin_shutdown(now);
            }
            HubCommand::Sessions(reply) => {
                let _ = reply.send(self.engine.sessions(now));
            }
            HubCommand::Named(target, reply) => {
                let radius = self.parts.radius.as_ref();
                let ids = self
                    .engine
                    .sessions_named(&target, |acct| radius?.session_of(acct));
                let _ = reply.send(ids);
            }
            HubCommand::Kill(selector, reply) => {
                let _ = reply.send(self.engine.kill(now, &selector));
            }
            HubCommand::Stats(reply) => {
                let _ = reply.send(self.engine.stats());
            }
            HubCommand::Load(reply) => {
                while self.accounting.try_join_next().is_some() {}
                let load = EngineLoad {
                    accounting: self.accounting.len(),
                    ..self.engine.load()
                };
                let _ = reply.send(load);
            }
            HubCommand::Reauthorize(id, update, reply) => {
                let _ = reply.send(self.engine.reauthorize(now, id, &update));
            }
            HubCommand::DialEnded { index, generation } => {
                self.engine.handle_dial_ended(now, index, generation);
            }
            HubCommand::Interfaces(reply) => {
                let _ = reply.send(self.engine.interfaces());
            }
            HubCommand::CaptureStart(id, reply) => {
                let started = self.engine.start_capture(id, CaptureLimits::default(), now);
                let _ = reply.send(started);
            }
            HubCommand::CaptureTake(number, reply) => {
                let _ = reply.send(self.engine.take_captured(number, now));
            }
            HubCommand::CaptureStop(number) => self.engine.stop_capture(number),
            HubCommand::SetRates(rates) => {
                let changed = self.engine.set_rate_policy(rates);
                tracing::info!(sessions = changed, "rate limits reloaded");
            }
        }
    }

    /// Sends what the engine built and carries out what it asks.
    async fn carry_out(&mut self) {
        loop {
            let mut busy = false;
            while let Some((dst, gre)) = self.engine.poll_transmit() {
                busy = true;
                if self.parts.gre.send_to(&gre, dst).is_err() {
                    self.engine.count(crate::engine::AgentCounter::SendErrors);
                }
            }
            while let Some(action) = self.engine.poll_action() {
                busy = true;
                self.act(action).await;
            }
            if !busy {
                return;
            }
        }
    }

    async fn act(&mut self, action: Action) {
        match action {
            // The engine clears a call exactly once, after the session's last
            // event: the owner's entry goes with it.
            Action::ClearCall {
                owner,
                local_call_id,
            } => {
                if let Some(owner) = self.owners.remove(&owner) {
                    owner.clears.clear(local_call_id);
                }
            }
            Action::Notify { owner, event } => {
                if let Some(notify) = self.owners.get_mut(&owner).and_then(|o| o.notify.as_mut()) {
                    notify(event);
                }
            }
            Action::Authenticate {
                session,
                ticket,
                job,
            } => {
                let Some(radius) = self.parts.radius.clone() else {
                    return;
                };
                let asking = self
                    .authentications
                    .spawn(async move { (session, ticket, radius.authenticate(job).await) });
                if let Some(earlier) = self.asking.insert(session, asking) {
                    earlier.abort();
                }
            }
            Action::CancelAuthentication { session } => {
                if let Some(asking) = self.asking.remove(&session) {
                    asking.abort();
                }
            }
            Action::Account { record, .. } => {
                let Some(radius) = self.parts.radius.clone() else {
                    return;
                };
                while self.accounting.try_join_next().is_some() {}
                self.accounting
                    .spawn(async move { radius.account(record).await });
            }
            // Awaited: nothing else moves until the server has cleared this
            // NAS's old sessions and leases (or none answered). Records in
            // flight go first (Accounting-Off follows the Stops).
            Action::AccountNas { record } => {
                if let Some(radius) = self.parts.radius.clone() {
                    self.accounting_done(&radius).await;
                    radius.account_nas(record).await;
                }
            }
            Action::Dial { router, generation } => match &mut self.parts.dialer {
                Some(dialer) => dialer(router, generation),
                None => self
                    .engine
                    .handle_dial_ended(Instant::now(), router, generation),
            },
        }
    }

    /// Ends what is left, answers who waited, and waits (within a bound) for the
    /// accounting Stops.
    async fn stop(mut self, now: Instant) {
        let dataplane = self.engine.finish(now);
        self.carry_out().await;
        if let Some(dataplane) = dataplane
            && let Err(e) = dataplane.shutdown()
        {
            tracing::error!(error = format!("{e:#}"), "shutting the XDP data plane down");
        }
        for done in self.closing.drain(..) {
            let _ = done.send(());
        }
        if let Some(radius) = self.parts.radius.clone() {
            self.accounting_done(&radius).await;
        }
    }

    /// Waits for the accounting requests in flight, at most as long as one takes
    /// to fail over every server.
    async fn accounting_done(&mut self, radius: &Radius) {
        let t = radius.config().timing;
        let servers = radius.config().acct_servers.len() as u32;
        let bound = t.timeout * (t.retries + 1) * servers.max(1);
        let _ = tokio::time::timeout(bound, async {
            while self.accounting.join_next().await.is_some() {}
        })
        .await;
    }
}

/// The tasks reading demand-dial devices; stopped when dropped.
struct Readers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// One task per demand-dial device, forwarding what the kernel routes into it (one
/// copy per packet into a bounded channel: site-to-site links are few and take the
/// agent's path anyway).
fn start_router_readers(devices: &[Arc<Tun>]) -> (Readers, mpsc::Receiver<(usize, Vec<u8>)>) {
    let (tx, rx) = mpsc::channel(256);
    let readers = devices
        .iter()
        .enumerate()
        .map(|(index, tun)| {
            let tun = tun.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                loop {
                    match tun.recv(&mut buf).await {
                        Ok(n) => {
                            if tx.send((index, buf[..n].to_vec())).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::error!(device = tun.name(), error = %e, "demand-dial device unreadable: interface stopped");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    (Readers(readers), rx)
}

async fn recv_tun(tun: Option<&Tun>, buf: &mut [u8]) -> io::Result<usize> {
    match tun {
        Some(tun) => tun.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
