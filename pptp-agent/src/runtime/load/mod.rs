//! The load generator behind `pptp-agent load-test`: many client sessions from one
//! process against a concentrator, each proving with an ICMP echo that it carries
//! traffic, then hung up. The scale test and the benchmarks use it to establish
//! hundreds to tens of thousands of sessions without a process, a TUN device or a
//! raw socket per session (strongSwan's load-tester plays the same part).
//!
//! Two kinds of load: voluntary clients (PNS role, Outgoing-Call-Request), one
//! control connection per call as Windows and pptp-linux place them; or, with
//! [`LoadSettings::incoming`], access switches (PAC role, Incoming-Call-Request,
//! RFC 2637 §1.2) carrying `calls_per_connection` calls on each control connection.
//! Sessions are handed out to the connections in turn, so every connection sets
//! up calls from the start; at most `concurrency` set-ups are in flight in all.
//!
//! Every session's PPP link runs in one [`Hub`] in [`TunMode::Probe`]: one raw GRE
//! socket for all, and the IPv4 packets the sessions receive come back here, with
//! the session each arrived on, instead of going to a device. The traffic check and
//! the report's arithmetic are in [`echo`] and [`report`].

mod echo;
mod report;

use std::{
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::{
    engine::{Engine, EngineConfig, Mode, Selector, SessionEvent},
    ppp::{
        auth::{Credentials, Policy},
        ccp::MppePolicy,
        link::{ClientConfig, EchoConfig},
    },
    pptp::{call_id::SharedCallIds, control::ControlConfig},
};

pub use echo::{ECHO_ROUNDS, echo_id, echo_reply_to, echo_request};
pub use report::{LoadReport, SetupRate, percentile};

use super::{
    call_orders::CallOrders,
    client::{CallKind, CallTarget, carry_calls, place_call},
    gre_socket::GreSocket,
    hub::{self, Devices, Hub, HubCommand, HubParts, SessionNotify},
    network::TunNetwork,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// The concentrator.
    pub server: Ipv4Addr,
    /// Sessions to establish.
    pub sessions: u32,
    /// Setups in flight at once.
    pub concurrency: u32,
    /// Incoming calls (PAC role), this many on each control connection; `None`:
    /// outgoing calls (PNS role), one control connection each.
    pub incoming: Option<u32>,
    pub credentials: Credentials,
    pub auth: Policy,
    pub mppe: MppePolicy,
    pub mru: u16,
    /// Where every session sends ICMP echo requests once up; `None`: no traffic
    /// check.
    pub ping: Option<Ipv4Addr>,
    /// A session not up within this time counts as failed.
    pub setup_timeout: Duration,
    /// How long every session stays up after the traffic check.
    pub hold: Duration,
    /// After the hold, every session that came up is checked again (with `ping`).
    pub recheck: bool,
}

impl LoadSettings {
    /// Control connections the sessions need.
    pub fn connections(&self) -> u32 {
        match self.incoming {
            Some(per) => self.sessions.div_ceil(per.max(1)),
            None => self.sessions,
        }
    }
}

/// A session's events: one Up (again after an IPCP renegotiation) and one Down.
const SESSION_EVENTS: usize = 4;
/// Time every session has to end after the hang-up.
const HANGUP_WAIT: Duration = Duration::from_secs(60);
/// Logged (info) once every session is up or failed, before the traffic check
/// ends and the hold begins.
pub const SETUP_OVER: &str = "every session is up or has failed";
/// How often unanswered echo requests are looked at.
const ECHO_TICK: Duration = Duration::from_millis(100);

/// What a session or connection task tells the coordinator.
enum Outcome {
    Up {
        index: u32,
        address: Ipv4Addr,
        setup: Duration,
        at: Instant,
    },
    Failed {
        reason: String,
    },
    ConnectionFailed {
        reason: String,
    },
    Down,
}

/// Establishes the sessions, checks traffic on each, holds them, hangs them up.
pub async fn run(settings: LoadSettings) -> anyhow::Result<LoadReport> {
    let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    // Room for every session's echo reply at once.
    let (probe_tx, mut probe_rx) = mpsc::channel(settings.sessions.max(1) as usize);
    let engine = Engine::new(
        EngineConfig::new(Mode::Probe),
        None,
        Box::new(TunNetwork {
            concentrator: None,
            routers: Vec::new(),
            client: None,
        }),
        Instant::now(),
    );
    let parts = HubParts {
        gre,
        devices: Devices {
            concentrator: None,
            routers: Vec::new(),
            client: Arc::default(),
            probe: Some(probe_tx),
        },
        radius: None,
        dialer: None,
    };
    let hub = Hub::new(engine, parts);
    let (hub_tx, hub_rx) = hub::channel();
    let hub_task = tokio::spawn(hub.run(hub_rx));

    let settings = Arc::new(settings);
    // At most two outcomes per session (up and down, or failed) and one per
    // connection: never full.
    let (outcomes_tx, mut outcomes) =
        mpsc::channel(2 * settings.sessions as usize + settings.connections() as usize + 1);
    let started = Instant::now();
    let spawned = tokio::spawn(spawn_sessions(
        settings.clone(),
        hub_tx.clone(),
        outcomes_tx,
    ));

    let mut report = LoadReport {
        attempted: settings.sessions,
        connections: settings.connections(),
        ..LoadReport::default()
    };
    let mut setups = Vec::new();
    let mut ups = Vec::new();
    let mut last_up = started;
    let mut echoes = settings.ping.map(echo::Echoes::new);
    let mut tick = tokio::time::interval(ECHO_TICK);
    // Set-up and traffic check: until every session is up or failed, and every up
    // one answered or out of echo requests.
    let mut announced = false;
    loop {
        let setting_up = report.established + report.failed < settings.sessions;
        if !setting_up && !announced {
            // Benchmarks read the concentrator's memory from this line on.
            tracing::info!(
                established = report.established,
                failed = report.failed,
                "{SETUP_OVER}"
            );
            announced = true;
        }
        let now = Instant::now();
        if !setting_up && echoes.as_ref().is_none_or(|e| e.settled(now)) {
            break;
        }
        tokio::select! {
            outcome = outcomes.recv(), if setting_up => match outcome {
                Some(Outcome::Up { index, address, setup, at }) => {
                    report.established += 1;
                    setups.push(setup);
                    ups.push(at - started);
                    last_up = at;
                    if let Some(echoes) = &mut echoes {
                        let _ = hub_tx.send(HubCommand::Send(echoes.up(index, address, at))).await;
                    }
                }
                Some(Outcome::Failed { reason }) => {
                    report.failed += 1;
                    *report.failures.entry(reason).or_default() += 1;
                }
                Some(Outcome::ConnectionFailed { reason }) => {
                    *report.connection_failures.entry(reason).or_default() += 1;
                }
                Some(Outcome::Down) => report.flaps += 1,
                None => break,
            },
            Some((via, packet)) = probe_rx.recv() => {
                if let Some(echoes) = &mut echoes {
                    echoes.received(via, &packet, Instant::now());
                }
            }
            _ = tick.tick() => {
                if let Some(echoes) = &mut echoes {
                    for packet in echoes.due(Instant::now()) {
                        let _ = hub_tx.send(HubCommand::Send(packet)).await;
                    }
                }
            }
        }
    }
    report.setup_seconds = (last_up - started).as_secs_f64();
    if report.setup_seconds > 0.0 {
        report.sessions_per_second = f64::from(report.established) / report.setup_seconds;
    }
    let rate = SetupRate::of(&ups);
    (
        report.setup_rate_min,
        report.setup_rate_avg,
        report.setup_rate_max,
    ) = (rate.min, rate.avg, rate.max);
    setups.sort();
    report.setup_ms_p50 = report::ms(percentile(&setups, 50.0));
    report.setup_ms_p99 = report::ms(percentile(&setups, 99.0));
    report.setup_ms_max = report::ms(setups.last().copied());
    if let Some(echoes) = &mut echoes {
        echoes.first_packet.sort();
        report.first_packet_ms_p50 = report::ms(percentile(&echoes.first_packet, 50.0));
        report.first_packet_ms_p99 = report::ms(percentile(&echoes.first_packet, 99.0));
        report.echo_answered = echoes.answered();
        report.echo_unanswered = report.established - echoes.answered();
        report.echo_misdelivered = echoes.misdelivered;
    }
    // Held: sessions that go down meanwhile flap.
    let hold_end = tokio::time::Instant::now() + settings.hold;
    loop {
        tokio::select! {
            Some(outcome) = outcomes.recv() => if let Outcome::Down = outcome { report.flaps += 1 },
            () = tokio::time::sleep_until(hold_end) => break,
        }
    }
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Down = outcome {
            report.flaps += 1;
        }
    }
    if settings.recheck
        && let Some(first) = &echoes
    {
        let (mut again, requests) = first.again(Instant::now());
        for packet in requests {
            let _ = hub_tx.send(HubCommand::Send(packet)).await;
        }
        while !again.settled(Instant::now()) {
            tokio::select! {
                Some(outcome) = outcomes.recv() => if let Outcome::Down = outcome { report.flaps += 1 },
                Some((via, packet)) = probe_rx.recv() => again.received(via, &packet, Instant::now()),
                _ = tick.tick() => for packet in again.due(Instant::now()) {
                    let _ = hub_tx.send(HubCommand::Send(packet)).await;
                },
            }
        }
        report.recheck_answered = Some(again.answered());
        report.recheck_unanswered =
            Some(report.echo_answered + report.echo_unanswered - again.answered());
        report.echo_misdelivered += again.misdelivered;
    }

    // Hang up: LCP Terminate-Request, then each call is cleared and each control
    // connection stopped after its last call.
    let hangup = Instant::now();
    let (reply, killed) = oneshot::channel();
    let _ = hub_tx.send(HubCommand::Kill(Selector::All, reply)).await;
    let _ = killed.await;
    let mut tasks = spawned.await.context("the session spawner")?;
    let deadline = tokio::time::Instant::now() + HANGUP_WAIT;
    let still_up = report.established - report.flaps.min(report.established);
    let mut last_down = hangup;
    loop {
        if report.hung_up >= still_up {
            break;
        }
        tokio::select! {
            Some(outcome) = outcomes.recv() => if let Outcome::Down = outcome {
                report.hung_up += 1;
                last_down = Instant::now();
            },
            joined = tasks.join_next() => if joined.is_none() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Down = outcome {
            report.hung_up += 1;
            last_down = Instant::now();
        }
    }
    report.hangup_seconds = (last_down - hangup).as_secs_f64();
    // The control connections' Stop exchanges, bounded like the rest.
    let _ = tokio::time::timeout_at(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let (done, wait) = oneshot::channel();
    if hub_tx.send(HubCommand::Shutdown(done)).await.is_ok() {
        let _ = wait.await;
    }
    let _ = hub_task.await;
    Ok(report)
}

/// Starts every session (and, for incoming calls, every control connection) as
/// set-up permits allow; returns the tasks.
async fn spawn_sessions(
    settings: Arc<LoadSettings>,
    hub: mpsc::Sender<HubCommand>,
    outcomes: mpsc::Sender<Outcome>,
) -> tokio::task::JoinSet<()> {
    let mut tasks = tokio::task::JoinSet::new();
    // One Call ID space for every connection: the hub tells sessions apart by
    // (server address, our Call ID).
    let call_ids = SharedCallIds::default();
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1) as usize));
    let connections = settings.connections();
    // Incoming calls: each connection's orders and the sender of its commands.
    let mut lines: Vec<(CallOrders, mpsc::Sender<hub::ControlCommand>)> = Vec::new();
    for index in 0..settings.sessions {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let started = Instant::now();
        let (events_tx, events) = mpsc::channel(SESSION_EVENTS);
        let notify: SessionNotify = Box::new(move |event| {
            let _ = events_tx.try_send(event);
        });
        let watch = watch(
            index,
            started,
            settings.clone(),
            events,
            outcomes.clone(),
            permit,
        );
        if settings.incoming.is_none() {
            tasks.spawn(session(
                settings.clone(),
                call_ids.clone(),
                hub.clone(),
                outcomes.clone(),
                notify,
                watch,
            ));
            continue;
        }
        // Sessions go to the connections in turn.
        let line = (index % connections) as usize;
        if line == lines.len() {
            let orders = CallOrders::new(CallKind::Incoming);
            let (commands, receiver) = mpsc::channel(64);
            let (target, hub, outcomes, ids) = (
                call_target(&settings),
                hub.clone(),
                outcomes.clone(),
                call_ids.clone(),
            );
            let task_orders = orders.clone();
            tasks.spawn(async move {
                if let Err(e) = carry_calls(&target, hub, None, &task_orders, receiver, ids).await {
                    let _ = outcomes.try_send(Outcome::ConnectionFailed {
                        reason: format!("{e:#}"),
                    });
                }
            });
            lines.push((orders, commands));
        }
        let (orders, commands) = &lines[line];
        // The watcher reports a call that ends unplaced or before PPP itself
        // (refused, or its control connection failed: counted there too).
        tasks.spawn(async move {
            let _ = watch.await;
        });
        // A connection that is gone drops the order, and with it the notify: the
        // watcher sees the call end before PPP.
        let _ = commands.send(orders.order(notify)).await;
        if index + connections >= settings.sessions {
            let _ = commands.send(orders.last()).await;
        }
    }
    tasks
}

/// One outgoing call on its own control connection: [`place_call`] (connection,
/// call, the link in the hub), watched by `watch`.
async fn session(
    settings: Arc<LoadSettings>,
    call_ids: SharedCallIds,
    hub: mpsc::Sender<HubCommand>,
    outcomes: mpsc::Sender<Outcome>,
    notify: SessionNotify,
    watch: impl std::future::Future<Output = Watched>,
) {
    let target = call_target(&settings);
    let call = place_call(&target, hub, None, Some(notify), call_ids);
    let failed = |reason: String| {
        let _ = outcomes.try_send(Outcome::Failed { reason });
    };
    // A call that never reached PPP fails with the connection's own error.
    let closed = |placed: anyhow::Result<()>| match placed {
        Err(e) => failed(format!("{e:#}")),
        Ok(()) => failed("the call ended before PPP came up".into()),
    };
    tokio::pin!(call);
    tokio::pin!(watch);
    tokio::select! {
        placed = &mut call => {
            // The control connection ended first (refused call, closed TCP): the
            // watcher reports what it saw, bounded by the setup timeout.
            let watched = tokio::time::timeout(settings.setup_timeout, &mut watch).await;
            if let Ok(Watched::Closed) = watched {
                closed(placed);
            }
        }
        watched = &mut watch => match watched {
            // The hub cleared the call, which stops the control connection.
            Watched::Ended => {
                let _ = call.await;
            }
            // Given the setup timeout to end, then dropped (closing its TCP).
            Watched::Failed => {
                let _ = tokio::time::timeout(settings.setup_timeout, call).await;
            }
            Watched::Closed => closed(call.await),
        },
    }
}

/// How a session's watcher ended.
enum Watched {
    /// It came up, then ended.
    Ended,
    /// It failed (reported).
    Failed,
    /// Its call ended before any PPP event (not reported yet).
    Closed,
}

/// Follows session `index`'s events: reports Up (with its set-up time since
/// `started`), Down, or why it failed; gives back its set-up permit once it is up
/// or failed.
async fn watch(
    index: u32,
    started: Instant,
    settings: Arc<LoadSettings>,
    mut events: mpsc::Receiver<SessionEvent>,
    outcomes: mpsc::Sender<Outcome>,
    permit: OwnedSemaphorePermit,
) -> Watched {
    let failed = |reason: &str| {
        let _ = outcomes.try_send(Outcome::Failed {
            reason: reason.to_owned(),
        });
    };
    let mut permit = Some(permit);
    let mut up = false;
    let deadline = tokio::time::Instant::now() + settings.setup_timeout;
    loop {
        let event = if up {
            events.recv().await
        } else {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(event) => event,
                Err(_) => {
                    failed("not up within the setup timeout");
                    permit.take();
                    return Watched::Failed;
                }
            }
        };
        match event {
            Some(SessionEvent::Up(link_up)) => {
                if !up {
                    up = true;
                    permit.take();
                    let _ = outcomes.try_send(Outcome::Up {
                        index,
                        address: link_up.local_ip,
                        setup: started.elapsed(),
                        at: Instant::now(),
                    });
                }
            }
            // Counted by the engine; the link's own timeout decides.
            Some(SessionEvent::NoGre { .. }) => {}
            Some(SessionEvent::Down(_)) if up => {
                let _ = outcomes.try_send(Outcome::Down);
                return Watched::Ended;
            }
            Some(SessionEvent::Down(reason)) => {
                failed(&format!("PPP: {reason}"));
                return Watched::Failed;
            }
            None if up => return Watched::Ended,
            None if settings.incoming.is_some() => {
                failed("the call ended before PPP came up");
                return Watched::Closed;
            }
            None => return Watched::Closed,
        }
    }
}

/// The call every session places, as the configured user.
fn call_target(settings: &LoadSettings) -> CallTarget {
    CallTarget {
        server: settings.server.to_string(),
        kind: if settings.incoming.is_some() {
            CallKind::Incoming
        } else {
            CallKind::Outgoing
        },
        control: ControlConfig::default(),
        connect_timeout: settings.setup_timeout,
        client: ClientConfig {
            credentials: settings.credentials.clone(),
            auth: settings.auth.clone(),
            request_dns: false,
        },
        mru: settings.mru,
        mppe: settings.mppe.clone(),
        echo: Some(EchoConfig::DEFAULT),
    }
}
