//! The dynamic authorization server (RFC 5176): the UDP loop around the sans-IO
//! `radius/dae.rs`. It checks each datagram there and in a
//! [`ReplayCache`], asks the hub which sessions it names (the engine finds them
//! through its indexes), ends them or changes their
//! timeouts through [`HubCommand`]s and answers. What it drops is counted
//! ([`GuardStats`]) and logged once per interval.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::{Instant, SystemTime},
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot, watch},
};

use super::hub::HubCommand;
use crate::{
    engine::Selector,
    guard::{GuardStats, ratelog::LogEvery},
    radius::{
        DaeConfig,
        auth::Authorization,
        dae::{Dropped, Request, answer, error_cause, read_request},
        packet::{self, code},
        replay::{Admission, Refused, ReplayCache},
    },
};

/// Serves Disconnect-Request and CoA-Request on `socket` (bound to
/// `config.listen`) until `shutdown`.
pub async fn serve(
    socket: UdpSocket,
    config: DaeConfig,
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
                GuardStats::count(counter(&e, &stats));
                if let Some(count) = dropped.hit(now) {
                    tracing::warn!(%from, error = %e, count, "dynamic authorization requests dropped (count: since the last such line)");
                }
                continue;
            }
        };
        let error = act(&request, &hub).await;
        tracing::info!(%from, code = request.packet.code, target = ?request.target, ?error, "dynamic authorization");
        let answer = answer(&request, error);
        let _ = socket.send_to(&answer, from).await;
        replay.answered(from.ip(), &request.packet, answer);
    }
}

/// Carries a request out; the Error-Cause for a NAK.
async fn act(request: &Request, hub: &mpsc::Sender<HubCommand>) -> Option<u32> {
    if request.target.is_empty() {
        return Some(error_cause::MISSING_ATTRIBUTE);
    }
    let (tx, rx) = oneshot::channel();
    hub.send(HubCommand::Named(request.target.clone(), tx))
        .await
        .ok()?;
    let ids = rx.await.ok()?;
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
            let update = Box::new(Authorization::from_packet(&request.packet));
            hub.send(HubCommand::Reauthorize(id, update, tx))
                .await
                .ok()?;
            let _ = rx.await;
        }
    }
    None
}

/// The counter of a drop's reason.
fn counter<'a>(dropped: &Dropped, stats: &'a GuardStats) -> &'a AtomicU64 {
    match dropped {
        Dropped::UnknownClient(_) => &stats.dae_unknown_client,
        Dropped::Bad(_) | Dropped::NotARequest(_) => &stats.dae_bad_packet,
        Dropped::Replay(Refused::NoEventTimestamp) => &stats.dae_no_event_timestamp,
        Dropped::Replay(Refused::StaleEventTimestamp { .. }) => &stats.dae_stale_event_timestamp,
        Dropped::Replay(Refused::CacheFull) => &stats.dae_replay_cache_full,
    }
}
