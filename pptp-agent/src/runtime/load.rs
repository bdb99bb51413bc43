//! The load generator behind `pptp-agent load-test`: many client sessions (PNS role)
//! from one process against a concentrator, each proving with an ICMP echo that it
//! carries traffic, then hung up. The scale test and the sessions benchmark use it to
//! establish hundreds to tens of thousands of sessions without a process, a TUN
//! device or a raw socket per session (strongSwan's load-tester plays the same part).
//!
//! One control connection per call, as Windows and pptp-linux place them. Every
//! session's PPP link runs in one [`Hub`] in [`TunMode::Probe`]: one raw GRE socket
//! for all, and the IPv4 packets the sessions receive come back here, with the
//! session each arrived on, instead of going to a device. Each session's echo
//! requests carry an ICMP identifier of its own ([`echo_id`]); a reply counts for a
//! session only when it carries that identifier and arrived through that session's
//! call: a reply delivered through another call is counted as misdelivered.

use std::{
    collections::{BTreeMap, HashMap},
    net::Ipv4Addr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use pptp_common::wire::ipv4;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::{
    engine::{Engine, EngineConfig, Mode, Selector, SessionEvent},
    inet,
    ppp::{
        auth::{Credentials, Policy},
        ccp::MppePolicy,
        link::{ClientConfig, EchoConfig},
    },
    pptp::{call_id::SharedCallIds, control::ControlConfig},
};

use super::{
    client::{CallKind, CallTarget, place_call},
    gre_socket::GreSocket,
    hub::{self, Devices, Hub, HubCommand, HubParts},
    network::TunNetwork,
};

/// What to generate.
#[derive(Debug, Clone)]
pub struct LoadSettings {
    /// The concentrator.
    pub server: Ipv4Addr,
    /// Sessions to establish (each its own control connection and call).
    pub sessions: u32,
    /// Setups in flight at once.
    pub concurrency: u32,
    pub credentials: Credentials,
    pub auth: Policy,
    pub mppe: MppePolicy,
    pub mru: u16,
    /// Where every session sends an ICMP echo request once all are up; `None`: no
    /// traffic check.
    pub ping: Option<Ipv4Addr>,
    /// A session not up within this time counts as failed.
    pub setup_timeout: Duration,
    /// How long every session stays up after the traffic check.
    pub hold: Duration,
}

/// What happened, for people (`Display`) and programs (JSON).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LoadReport {
    pub attempted: u32,
    pub established: u32,
    pub failed: u32,
    /// Failures by reason.
    pub failures: BTreeMap<String, u32>,
    /// From the first connect to the last session up.
    pub setup_seconds: f64,
    /// `established / setup_seconds`.
    pub sessions_per_second: f64,
    /// Per-session setup time (TCP connect to IPCP up), milliseconds.
    pub setup_ms_p50: f64,
    pub setup_ms_p99: f64,
    pub setup_ms_max: f64,
    /// Sessions whose echo request was answered through the tunnel.
    pub echo_answered: u32,
    /// Up sessions whose echo requests (up to [`ECHO_ROUNDS`]) all went unanswered.
    pub echo_unanswered: u32,
    /// Echo replies that arrived through another session's call than the one they
    /// are addressed to, or with another session's identifier.
    pub echo_misdelivered: u32,
    /// Sessions that ended within the hang-up time after we hung up.
    pub hung_up: u32,
}

/// Echo requests sent to a session that has not been answered yet.
pub const ECHO_ROUNDS: u16 = 5;
/// Time to wait for answers after each round.
const ECHO_WAIT: Duration = Duration::from_secs(2);
/// A session's events: one Up (again after an IPCP renegotiation) and one Down.
const SESSION_EVENTS: usize = 4;
/// Time every session has to end after the hang-up.
const HANGUP_WAIT: Duration = Duration::from_secs(30);

/// The ICMP identifier of session `index`'s echo requests: its index (modulo 65,536;
/// one process has fewer sessions than that, each needing a descriptor).
pub fn echo_id(index: u32) -> u16 {
    index as u16
}

/// What a session task tells the coordinator.
enum Outcome {
    Up {
        index: u32,
        address: Ipv4Addr,
        setup: Duration,
    },
    Failed {
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
    // One Call ID space for every connection: the hub tells sessions apart by
    // (server address, our Call ID).
    let call_ids = SharedCallIds::default();
    // At most two outcomes per session (up and down, or failed): never full.
    let (outcomes_tx, mut outcomes) = mpsc::channel(2 * settings.sessions as usize + 1);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1) as usize));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let spawner = {
        let (settings, hub_tx, outcomes_tx) = (settings.clone(), hub_tx.clone(), outcomes_tx);
        let call_ids = call_ids.clone();
        let permits = permits.clone();
        async move {
            for index in 0..settings.sessions {
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                tasks.spawn(session(
                    index,
                    settings.clone(),
                    call_ids.clone(),
                    hub_tx.clone(),
                    outcomes_tx.clone(),
                    permit,
                ));
            }
            tasks
        }
    };
    let spawned = tokio::spawn(spawner);

    let mut report = LoadReport {
        attempted: settings.sessions,
        ..LoadReport::default()
    };
    let mut setups = Vec::new();
    let mut addresses = HashMap::new();
    let mut last_up = started;
    let mut downs_early = 0u32;
    while report.established + report.failed < settings.sessions {
        match outcomes.recv().await {
            Some(Outcome::Up {
                index,
                address,
                setup,
            }) => {
                report.established += 1;
                setups.push(setup);
                addresses.insert(address, index);
                last_up = Instant::now();
            }
            Some(Outcome::Failed { reason }) => {
                report.failed += 1;
                *report.failures.entry(reason).or_default() += 1;
            }
            Some(Outcome::Down) => downs_early += 1,
            None => break,
        }
    }
    report.setup_seconds = (last_up - started).as_secs_f64();
    if report.setup_seconds > 0.0 {
        report.sessions_per_second = f64::from(report.established) / report.setup_seconds;
    }
    setups.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    report.setup_ms_p50 = ms(setups.get(setups.len() / 2));
    report.setup_ms_p99 = ms(setups.get(setups.len() * 99 / 100));
    report.setup_ms_max = ms(setups.last());

    if let Some(target) = settings.ping {
        let tally = echo_check(&hub_tx, &mut probe_rx, target, &addresses).await;
        report.echo_answered = tally.answered;
        report.echo_unanswered = report.established - tally.answered;
        report.echo_misdelivered = tally.misdelivered;
    }
    tokio::time::sleep(settings.hold).await;

    // Hang up: LCP Terminate-Request, then each call is cleared and each control
    // connection stopped by its task.
    let (reply, killed) = oneshot::channel();
    let _ = hub_tx.send(HubCommand::Kill(Selector::All, reply)).await;
    let _ = killed.await;
    let mut tasks = spawned.await.context("the session spawner")?;
    let deadline = tokio::time::Instant::now() + HANGUP_WAIT;
    let mut ended = downs_early;
    loop {
        tokio::select! {
            Some(outcome) = outcomes.recv() => if let Outcome::Down = outcome { ended += 1 },
            joined = tasks.join_next() => if joined.is_none() { break },
            () = tokio::time::sleep_until(deadline) => break,
        }
    }
    while let Ok(outcome) = outcomes.try_recv() {
        if let Outcome::Down = outcome {
            ended += 1;
        }
    }
    report.hung_up = ended.saturating_sub(downs_early);
    tasks.abort_all();
    let (done, wait) = oneshot::channel();
    if hub_tx.send(HubCommand::Shutdown(done)).await.is_ok() {
        let _ = wait.await;
    }
    let _ = hub_task.await;
    Ok(report)
}

/// One session: [`place_call`] (control connection, call, the link in the hub);
/// reports Up (or why not) and Down.
async fn session(
    index: u32,
    settings: Arc<LoadSettings>,
    call_ids: SharedCallIds,
    hub: mpsc::Sender<HubCommand>,
    outcomes: mpsc::Sender<Outcome>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let started = Instant::now();
    let failed = |reason: &str| {
        let _ = outcomes.try_send(Outcome::Failed {
            reason: reason.to_owned(),
        });
    };
    let target = call_target(&settings);
    let (events_tx, mut events) = mpsc::channel(SESSION_EVENTS);
    let notify = Box::new(move |event| {
        let _ = events_tx.try_send(event);
    });
    let call = place_call(&target, hub, None, Some(notify), call_ids);
    let watch = async {
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
                    up = true;
                    permit.take();
                    let _ = outcomes.try_send(Outcome::Up {
                        index,
                        address: link_up.local_ip,
                        setup: started.elapsed(),
                    });
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
                None => return Watched::Closed,
            }
        }
    };
    // A call that never reached PPP fails with the connection's own error.
    let closed = |placed: anyhow::Result<()>| match placed {
        Err(e) => failed(&format!("{e:#}")),
        Ok(()) => failed("the call ended before PPP came up"),
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

/// The call every session places: outgoing, as the configured user.
fn call_target(settings: &LoadSettings) -> CallTarget {
    CallTarget {
        server: settings.server.to_string(),
        kind: CallKind::Outgoing,
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

/// What the echo check saw.
struct EchoTally {
    /// Sessions answered through their own call.
    answered: u32,
    /// Replies that came through another call or with another session's identifier.
    misdelivered: u32,
}

/// Sends every session an echo request to `target` (from its own address, with its
/// own identifier, through its tunnel) until each is answered or [`ECHO_ROUNDS`] are
/// spent.
async fn echo_check(
    hub: &mpsc::Sender<HubCommand>,
    received: &mut mpsc::Receiver<(Ipv4Addr, Vec<u8>)>,
    target: Ipv4Addr,
    sessions: &HashMap<Ipv4Addr, u32>,
) -> EchoTally {
    let mut waiting: HashMap<Ipv4Addr, u16> = sessions
        .iter()
        .map(|(&address, &index)| (address, echo_id(index)))
        .collect();
    let mut misdelivered = 0;
    for round in 0..ECHO_ROUNDS {
        if waiting.is_empty() {
            break;
        }
        for (&address, &id) in &waiting {
            let _ = hub
                .send(HubCommand::Send(echo_request(address, target, id, round)))
                .await;
        }
        let deadline = tokio::time::Instant::now() + ECHO_WAIT;
        while !waiting.is_empty() {
            let Ok(Some((via, packet))) = tokio::time::timeout_at(deadline, received.recv()).await
            else {
                break;
            };
            let Some((to, id)) = echo_reply_to(&packet, target) else {
                continue;
            };
            let own = sessions.get(&to).map(|&index| echo_id(index));
            if via != to || own != Some(id) {
                misdelivered += 1;
            } else {
                waiting.remove(&to);
            }
        }
    }
    EchoTally {
        answered: (sessions.len() - waiting.len()) as u32,
        misdelivered,
    }
}

/// An IPv4 ICMP echo request from `src` to `dst` with identifier `id`, 56 bytes of
/// data like ping's.
pub fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    const DATA: usize = 56;
    const ICMP: usize = 8 + DATA;
    let mut p = vec![0u8; ipv4::HEADER_LEN + ICMP];
    let header = inet::Ipv4Repr::new(src.octets(), dst.octets(), ipv4::PROTO_ICMP, ICMP as u16);
    p[..ipv4::HEADER_LEN].copy_from_slice(&header.header());
    p[20] = 8; // echo request
    p[24..26].copy_from_slice(&id.to_be_bytes());
    p[26..28].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let icmp_sum = inet::checksum(&p[20..]);
    p[22..24].copy_from_slice(&icmp_sum.to_be_bytes());
    p
}

/// The destination and identifier of an intact echo reply from `from`; `None` for
/// anything else (other protocols or sources, requests, bad checksums).
pub fn echo_reply_to(packet: &[u8], from: Ipv4Addr) -> Option<(Ipv4Addr, u16)> {
    let ip = ipv4::Header(*packet.first_chunk()?);
    let ihl = ip.header_len();
    if !ip.is_ipv4() || packet.len() < ihl + 8 || ip.protocol() != ipv4::PROTO_ICMP {
        return None;
    }
    let icmp = &packet[ihl..];
    let reply = icmp[0] == 0;
    let intact = inet::verifies(0, icmp);
    (Ipv4Addr::from(ip.src()) == from && reply && intact).then(|| {
        (
            Ipv4Addr::from(ip.dst()),
            u16::from_be_bytes([icmp[4], icmp[5]]),
        )
    })
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sessions: {} attempted, {} established, {} failed",
            self.attempted, self.established, self.failed
        )?;
        for (reason, n) in &self.failures {
            writeln!(f, "  {n} failed: {reason}")?;
        }
        writeln!(
            f,
            "setup: {:.1} s for all, {:.0} sessions/s; per session p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.setup_seconds,
            self.sessions_per_second,
            self.setup_ms_p50,
            self.setup_ms_p99,
            self.setup_ms_max
        )?;
        writeln!(
            f,
            "traffic: {} sessions answered an echo through their own call, {} did not; {} replies misdelivered",
            self.echo_answered, self.echo_unanswered, self.echo_misdelivered
        )?;
        write!(f, "hang-up: {} sessions ended", self.hung_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_are_valid_and_replies_are_recognised() {
        let (client, host) = (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(203, 0, 113, 10));
        let request = echo_request(client, host, echo_id(7), 3);
        assert_eq!(request.len(), 84);
        assert!(inet::verifies(0, &request[..20]));
        assert!(inet::verifies(0, &request[20..]));
        // The host's answer: addresses swapped, type 0, checksum adjusted.
        let mut reply = request.clone();
        reply[12..16].copy_from_slice(&host.octets());
        reply[16..20].copy_from_slice(&client.octets());
        reply[20] = 0;
        reply[22..24].copy_from_slice(&[0, 0]);
        let sum = inet::checksum(&reply[20..]);
        reply[22..24].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(echo_reply_to(&reply, host), Some((client, 7)));
        // Not from the target, a request, a damaged reply, a truncated packet.
        assert_eq!(echo_reply_to(&reply, client), None);
        assert_eq!(echo_reply_to(&request, client), None);
        let mut damaged = reply.clone();
        damaged[40] ^= 1;
        assert_eq!(echo_reply_to(&damaged, host), None);
        assert_eq!(echo_reply_to(&reply[..24], host), None);
        assert_eq!(echo_reply_to(&[], host), None);
    }
}
