//! The concentrator's control side: accept TCP 1723, run each control connection in
//! its own task, accept the calls peers ask for (as PAC for outgoing calls, as PNS
//! for incoming ones) and hand each established call to the hub.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use anyhow::Context as _;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};

use crate::{
    ppp::{
        auth::{Policy, Secret, SecretSource},
        ccp::MppePolicy,
        link::{EchoConfig, LinkConfig, Role, ServerConfig, Verifier},
    },
    pptp::{
        control::{ControlConfig, ControlConnection, Event},
        message::StopReason,
        shell,
    },
};

use super::{
    hub::{CallUp, ControlCommand, HubCommand},
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
}

impl ServerSettings {
    fn link_config(&self) -> LinkConfig {
        let mut config = LinkConfig::new(Role::Server(ServerConfig {
            name: self.name.clone().into_bytes(),
            auth: self.auth.clone(),
            local_ip: self.local_ip,
            dns: self.dns,
            nbns: self.nbns,
            verifier: Verifier::Secrets(Box::new(SharedSecrets(self.secrets.clone()))),
            pool: self.pool.handle(),
        }));
        config.mru = self.mru;
        config.echo = self.echo;
        config.mppe = self.mppe.clone();
        config
    }
}

struct SharedSecrets(Arc<dyn SecretSource + Send + Sync>);

impl SecretSource for SharedSecrets {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.0.secret(user)
    }
}

/// Accepts control connections on `listener` until `shutdown` turns true; each
/// connection then sends Stop-Control-Connection-Request and ends.
pub async fn serve(
    listener: TcpListener,
    settings: Arc<ServerSettings>,
    hub: mpsc::UnboundedSender<HubCommand>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = accepted.context("accepting a control connection")?;
                connections.spawn(connection(stream, peer, settings.clone(), hub.clone(), shutdown.clone()));
            }
            _ = shutdown.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<ServerSettings>,
    hub: mpsc::UnboundedSender<HubCommand>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (SocketAddr::V4(peer), Ok(SocketAddr::V4(local))) = (peer, stream.local_addr()) else {
        return; // IPv6 control connections: PPTP carries GRE over IPv4 only.
    };
    tracing::info!(%peer, "control connection");
    let conn = ControlConnection::answer(settings.control.clone(), Instant::now());
    let (commands, receiver) = mpsc::channel::<ControlCommand>(64);
    let stopper = commands.clone();
    let stop_on_shutdown = tokio::spawn(async move {
        if shutdown.changed().await.is_ok() {
            let _ = stopper
                .send(Box::new(|conn: &mut ControlConnection, now| {
                    conn.stop(StopReason::StopLocalShutdown, now)
                }))
                .await;
        }
    });
    shell::drive(stream, conn, receiver, |conn, event, now| match event {
        Event::CallRequested { local_call_id, .. } => {
            if let Err(e) = conn.accept_call(local_call_id, now) {
                tracing::warn!(%peer, error = %e, "cannot accept call");
            }
        }
        Event::CallUp(info) => {
            let Some(peer_call_id) = info.peer_call_id else {
                return;
            };
            let _ = hub.send(HubCommand::CallUp(Box::new(CallUp {
                peer_addr: *peer.ip(),
                local_addr: *local.ip(),
                local_call_id: info.local_call_id,
                peer_call_id,
                link: settings.link_config(),
                control: commands.clone(),
                notify: None,
            })));
        }
        Event::CallDown {
            local_call_id,
            reason,
            ..
        } => {
            tracing::info!(%peer, local_call_id, ?reason, "call down");
            let _ = hub.send(HubCommand::CallDown((*peer.ip(), local_call_id)));
        }
        Event::Closed(reason) => tracing::info!(%peer, ?reason, "control connection closed"),
        _ => {}
    })
    .await;
    stop_on_shutdown.abort();
}
