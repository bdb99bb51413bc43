//! The calling side: open a control connection to a server, place a call, run PPP
//! over it as the authenticating peer.
//!
//! [`place_call`] places one call and hands it to a hub: an outgoing call as PNS
//! (what Windows and pptp-linux clients do), or an incoming call as PAC, the way an
//! ISP's remote access switch opens a compulsory tunnel to a PNS on behalf of a dial-up
//! user (RFC 2637 §1.2; Incoming-Call-Request/Reply/Connected). The concentrator's
//! demand-dial interfaces use it with their own hub; [`dial`] (`pptp-agent dial`) runs
//! it with a hub of its own that brings up a TUN device with the negotiated address
//! and the configured routes.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot, watch},
};

use crate::{
    engine::{CallSpec, Engine, EngineConfig, Mode, SessionEvent},
    ppp::{
        auth::{Credentials, Policy},
        ccp::MppePolicy,
        link::{ClientConfig, EchoConfig, LinkConfig, Role},
    },
    pptp::{
        call_id::SharedCallIds,
        control::{ControlConfig, ControlConnection, Event},
        shell::{self, CallClears, Pass, ShellLimits},
    },
};

pub use super::call_orders::CallKind;

use super::{
    call_orders::CallOrders,
    gre_socket::GreSocket,
    hub::{self, CallUp, ControlCommand, Devices, Hub, HubCommand, HubParts, SessionNotify},
    network::{ClientDevice, TunNetwork},
};

/// PPTP's control port.
pub const PPTP_PORT: u16 = 1723;

/// One call to place.
#[derive(Clone)]
pub struct CallTarget {
    /// The server's address, or a host name resolved at each call.
    pub server: String,
    pub kind: CallKind,
    pub control: ControlConfig,
    /// Give up if the control connection cannot be opened within this time.
    pub connect_timeout: Duration,
    /// The PPP link to run over the call (we authenticate ourselves).
    pub client: ClientConfig,
    pub mru: u16,
    pub mppe: MppePolicy,
    pub echo: Option<EchoConfig>,
}

impl CallTarget {
    fn link_config(&self) -> LinkConfig {
        let mut config = LinkConfig::new(Role::Client(self.client.clone()));
        config.mru = self.mru;
        config.mppe = self.mppe.clone();
        config.echo = self.echo;
        config
    }
}

/// Resolves `host` (an address or a name) to the IPv4 address PPTP reaches it at.
pub async fn resolve(host: &str) -> anyhow::Result<Ipv4Addr> {
    if let Ok(addr) = host.parse() {
        return Ok(addr);
    }
    tokio::net::lookup_host((host, PPTP_PORT))
        .await
        .with_context(|| format!("resolving {host}"))?
        .find_map(|a| match a {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        })
        .with_context(|| format!("{host} has no IPv4 address"))
}

/// Places one call to `target` and hands it to `hub` (bound to demand-dial interface
/// `router`, if any; session events go to `notify`), its Call ID drawn from
/// `call_ids` (the concentrator's, so that it never collides with a call it
/// answered from the same peer). Returns when the control
/// connection is closed: the call went down (the hub clears it when its link ends, and
/// the connection is then stopped), or it never came up.
pub async fn place_call(
    target: &CallTarget,
    hub: mpsc::Sender<HubCommand>,
    router: Option<usize>,
    notify: Option<SessionNotify>,
    call_ids: SharedCallIds,
) -> anyhow::Result<()> {
    let orders = CallOrders::one(target.kind, notify);
    let (_commands, receiver) = mpsc::channel::<ControlCommand>(1);
    carry_calls(target, hub, router, &orders, receiver, call_ids).await?;
    anyhow::ensure!(
        orders.came_up() > 0,
        "the call to {} did not come up",
        target.server
    );
    Ok(())
}

/// Opens a control connection to `target` and places on it the calls `orders`
/// holds and those ordered later through `commands` ([`CallOrders::order`]),
/// handing each to `hub` (bound to demand-dial interface `router`, if any) as it
/// comes up, their Call IDs drawn from `call_ids`. A call that goes down leaves the
/// others alone; once [`CallOrders::last`] has come and the last call is down, the
/// connection is stopped. Returns when the control connection is closed.
pub async fn carry_calls(
    target: &CallTarget,
    hub: mpsc::Sender<HubCommand>,
    router: Option<usize>,
    orders: &CallOrders,
    commands: mpsc::Receiver<ControlCommand>,
    call_ids: SharedCallIds,
) -> anyhow::Result<()> {
    let server_addr = resolve(&target.server).await?;
    let server = SocketAddrV4::new(server_addr, PPTP_PORT);
    let stream = tokio::time::timeout(target.connect_timeout, TcpStream::connect(server))
        .await
        .with_context(|| {
            format!(
                "no answer from {server} within {:?}",
                target.connect_timeout
            )
        })?
        .with_context(|| format!("connecting to {server}"))?;
    let SocketAddr::V4(local) = stream.local_addr()? else {
        bail!("PPTP runs over IPv4");
    };
    let conn =
        ControlConnection::originate_with_pool(target.control.clone(), call_ids, Instant::now());
    let clears = Arc::new(CallClears::default());
    let channels = shell::Channels {
        commands,
        clears: &clears,
        out: &hub,
    };
    shell::drive(stream, conn, channels, ShellLimits::default(), |conn, event, now| match event {
        Event::Established(peer) => {
            tracing::info!(server = %server, host = %peer.host_name, kind = ?target.kind, "control connection established");
            orders.place_queued(conn, now);
            None
        }
        Event::CallUp(info) => {
            let peer_call_id = info.peer_call_id?;
            let notify = orders.up(info.local_call_id)?;
            let (installed, acted_on) = oneshot::channel();
            let up = HubCommand::CallUp(Box::new(CallUp {
                call: CallSpec {
                    peer_addr: server_addr,
                    local_addr: *local.ip(),
                    local_call_id: info.local_call_id,
                    peer_call_id,
                },
                link: target.link_config(),
                control: clears.clone(),
                notify,
                router,
                installed,
            }));
            Some(Pass::then_write(up, acted_on))
        }
        Event::CallDown { local_call_id, reason, .. } => {
            tracing::info!(local_call_id, ?reason, "call down");
            // A call that never came up drops its notify here.
            orders.down(conn, local_call_id, now);
            Some(Pass::on(HubCommand::CallDown((server_addr, local_call_id))))
        }
        Event::Closed(reason) => {
            tracing::info!(?reason, "control connection closed");
            None
        }
        _ => None,
    })
    .await;
    orders.abandon();
    Ok(())
}

/// How to dial.
pub struct DialSettings {
    pub server: Ipv4Addr,
    /// Outgoing (PNS) or incoming (PAC) call.
    pub kind: CallKind,
    pub credentials: Credentials,
    pub auth: Policy,
    pub mppe: MppePolicy,
    pub mru: u16,
    /// Name of the TUN device to create.
    pub tun_name: String,
    /// Routes to put on the device once the link is up (`a.b.c.d/n`).
    pub routes: Vec<String>,
    pub control: ControlConfig,
    /// Give up if the control connection cannot be opened within this time.
    pub connect_timeout: Duration,
    /// Give up if the call is up but no GRE comes within this time.
    pub gre_wait: Duration,
}

/// Dials, reports session events on `events` (an event that finds the channel full
/// is dropped: give it room for an Up and a Down), and hangs up (LCP Terminate,
/// Call-Clear-Request, Stop-Control-Connection-Request) when `hangup` turns true.
/// Returns when the control connection is closed.
pub async fn dial(
    settings: DialSettings,
    events: mpsc::Sender<SessionEvent>,
    mut hangup: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    let device = Arc::new(Mutex::new(None));
    let network = TunNetwork {
        concentrator: None,
        routers: Vec::new(),
        client: Some(ClientDevice {
            name: settings.tun_name.clone(),
            routes: settings.routes.clone(),
            current: device.clone(),
        }),
    };
    let mut config = EngineConfig::new(Mode::Client);
    config.gre_wait = settings.gre_wait;
    let engine = Engine::new(config, None, Box::new(network), Instant::now());
    let parts = HubParts {
        gre,
        devices: Devices {
            concentrator: None,
            routers: Vec::new(),
            client: device,
            probe: None,
        },
        radius: None,
        dialer: None,
    };
    let hub = Hub::new(engine, parts);
    let (hub_tx, hub_rx) = hub::channel();
    let hub_task = tokio::spawn(hub.run(hub_rx));
    let hub_for_hangup = hub_tx.clone();
    let hangup_task = tokio::spawn(async move {
        if hangup.changed().await.is_ok() {
            // Closing the hub terminates the link and clears the call; the call's
            // end then stops the control connection.
            let (done, wait) = oneshot::channel();
            if hub_for_hangup
                .send(HubCommand::Shutdown(done))
                .await
                .is_ok()
            {
                let _ = wait.await;
            }
        }
    });
    let target = CallTarget {
        server: settings.server.to_string(),
        kind: settings.kind,
        control: settings.control.clone(),
        connect_timeout: settings.connect_timeout,
        client: ClientConfig {
            credentials: settings.credentials.clone(),
            auth: settings.auth.clone(),
            request_dns: true,
        },
        mru: settings.mru,
        mppe: settings.mppe.clone(),
        echo: Some(EchoConfig::DEFAULT),
    };
    let placed = place_call(
        &target,
        hub_tx.clone(),
        None,
        Some(Box::new(move |event| {
            let _ = events.try_send(event);
        })),
        SharedCallIds::default(),
    )
    .await;

    hangup_task.abort();
    let (done, wait) = oneshot::channel();
    if hub_tx.send(HubCommand::Shutdown(done)).await.is_ok() {
        let _ = wait.await;
    }
    let _ = hub_task.await;
    placed
}
