//! The client side (`pptp-agent dial`): open a control connection to a server, place
//! an outgoing call as PNS, run PPP over it as the authenticating peer, and bring up
//! a TUN device with the negotiated address and the configured routes.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use tokio::{
    net::TcpStream,
    sync::{mpsc, oneshot, watch},
};

use crate::{
    ppp::{
        auth::{Credentials, Policy},
        ccp::MppePolicy,
        link::{ClientConfig, LinkConfig, Role},
    },
    pptp::{
        call::OutgoingCallParams,
        call_id::SharedCallIds,
        control::{ControlConfig, ControlConnection, Event},
        message::StopReason,
        shell,
    },
};

use super::{
    gre_socket::GreSocket,
    hub::{CallUp, ControlCommand, Hub, HubCommand, SessionEvent, TunMode},
};

/// PPTP's control port.
pub const PPTP_PORT: u16 = 1723;

/// How to dial.
pub struct DialSettings {
    pub server: Ipv4Addr,
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
}

/// Dials, reports session events on `events`, and hangs up (LCP Terminate, Call-
/// Clear-Request, Stop-Control-Connection-Request) when `hangup` turns true. Returns
/// when the control connection is closed.
pub async fn dial(
    settings: DialSettings,
    events: mpsc::UnboundedSender<SessionEvent>,
    mut hangup: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let server = SocketAddrV4::new(settings.server, PPTP_PORT);
    let stream = tokio::time::timeout(settings.connect_timeout, TcpStream::connect(server))
        .await
        .with_context(|| {
            format!(
                "no answer from {server} within {:?}",
                settings.connect_timeout
            )
        })?
        .with_context(|| format!("connecting to {server}"))?;
    let SocketAddr::V4(local) = stream.local_addr()? else {
        bail!("PPTP runs over IPv4");
    };
    let gre = GreSocket::open().context("opening the raw GRE socket (needs CAP_NET_RAW)")?;
    let hub = Hub::new(
        gre,
        TunMode::Client {
            name: settings.tun_name.clone(),
            routes: settings.routes.clone(),
        },
        None,
        Default::default(),
    );
    let (hub_tx, hub_rx) = mpsc::unbounded_channel();
    let hub_task = tokio::spawn(hub.run(hub_rx));

    let conn = ControlConnection::originate_with_pool(
        settings.control.clone(),
        SharedCallIds::default(),
        Instant::now(),
    );
    let (commands, receiver) = mpsc::channel::<ControlCommand>(64);
    let hub_for_hangup = hub_tx.clone();
    let hangup_task = tokio::spawn(async move {
        if hangup.changed().await.is_ok() {
            // Closing the hub terminates the link and clears the call; the call's
            // end then stops the control connection.
            let (done, wait) = oneshot::channel();
            if hub_for_hangup.send(HubCommand::Shutdown(done)).is_ok() {
                let _ = wait.await;
            }
        }
    });

    let mut link = Some(settings.link_config());
    shell::drive(stream, conn, receiver, |conn, event, now| match event {
        Event::Established(peer) => {
            tracing::info!(server = %server, host = %peer.host_name, "control connection established");
            if let Err(e) = conn.place_outgoing_call(&OutgoingCallParams::default(), now) {
                tracing::error!(error = %e, "cannot place the call");
                conn.stop(StopReason::None, now);
            }
        }
        Event::CallUp(info) => {
            let (Some(peer_call_id), Some(link)) = (info.peer_call_id, link.take()) else {
                return;
            };
            let _ = hub_tx.send(HubCommand::CallUp(Box::new(CallUp {
                peer_addr: settings.server,
                local_addr: *local.ip(),
                local_call_id: info.local_call_id,
                peer_call_id,
                link,
                control: commands.clone(),
                notify: Some(events.clone()),
            })));
        }
        Event::CallDown { local_call_id, reason, .. } => {
            tracing::info!(local_call_id, ?reason, "call down");
            let _ = hub_tx.send(HubCommand::CallDown((settings.server, local_call_id)));
            conn.stop(StopReason::None, now);
        }
        Event::Closed(reason) => tracing::info!(?reason, "control connection closed"),
        _ => {}
    })
    .await;

    hangup_task.abort();
    let (done, wait) = oneshot::channel();
    if hub_tx.send(HubCommand::Shutdown(done)).is_ok() {
        let _ = wait.await;
    }
    let _ = hub_task.await;
    Ok(())
}

impl DialSettings {
    fn link_config(&self) -> LinkConfig {
        let mut config = LinkConfig::new(Role::Client(ClientConfig {
            credentials: self.credentials.clone(),
            auth: self.auth.clone(),
            request_dns: true,
        }));
        config.mru = self.mru;
        config.mppe = self.mppe.clone();
        config
    }
}
