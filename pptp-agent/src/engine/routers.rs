//! The demand-dial interfaces' supervisor: which session each interface's traffic
//! goes to, what its [`DemandDial`](crate::demand::DemandDial) machine asks (dial,
//! hang up), and two calls for one interface.
//!
//! An interface's device has its routes from the start (the runtime makes it); what
//! the kernel routes into it reaches [`Engine::handle_ip`], where the machine says
//! whether to send it on the bound session, queue it or dial. A session is bound to
//! an interface when we placed its call for it, or when the peer authenticates with
//! the interface's name (a calling router); [`keep_new_call`] settles two calls for
//! one interface, make before break: the call that loses keeps carrying traffic
//! until the winner's link is up, and takes what its peer sends for [`LINGER`] more.

use std::time::Instant;

use crate::{
    demand::{Action as DemandAction, Placer, Verdict, keep_new_call},
    ppp::link::LinkUp,
};

use super::{
    Engine, action::Action, kernel::Device, router::LINGER, session::Session, table::SessionId,
    views::InterfaceInfo,
};

impl Engine {
    /// An IPv4 packet the kernel routed into interface `index`'s device: the session
    /// to send it on now, or `None` (queued for the link, or dropped).
    pub(super) fn router_outbound(
        &mut self,
        index: usize,
        packet: &[u8],
        now: Instant,
    ) -> Option<SessionId> {
        let router = self.routers.get_mut(index)?;
        let verdict = router.config.demand.on_outbound(packet, now);
        let session = router.session;
        self.router_actions(index, now);
        match verdict {
            Verdict::Send => session,
            Verdict::Queued | Verdict::Dropped => None,
        }
    }

    /// Binds session `id` to interface `index`, settling a second call for it.
    pub(super) fn bind(&mut self, index: usize, id: SessionId, now: Instant) {
        let Some(new) = self.table.get(id) else {
            return;
        };
        let (placer, local, peer) = (new.placer, new.call.local_addr, new.call.peer_addr);
        let name = self.routers[index].config.name.clone();
        if let Some(old_id) = self.routers[index].session.filter(|s| *s != id)
            && let Some(old) = self.table.get_mut(old_id)
        {
            if keep_new_call(old.placer, placer, local, peer) {
                tracing::info!(interface = %name, ?placer, old = ?old.placer, "two calls for one interface: the new one replaces the old");
                if old.up.is_some() {
                    // The old link carries traffic until the new one is up.
                    if let Some(other) = self.routers[index].next.replace(id) {
                        self.hang_up(other, now);
                    }
                    if let Some(session) = self.table.get_mut(id) {
                        session.router = Some(index);
                    }
                    return;
                }
                old.router = None;
                self.hang_up(old_id, now);
            } else {
                tracing::info!(interface = %name, ?placer, old = ?old.placer, "two calls for one interface: the new one is hung up");
                self.hang_up(id, now);
                return;
            }
        }
        let router = &mut self.routers[index];
        router.session = Some(id);
        router.config.demand.on_connecting();
        if let Some(session) = self.table.get_mut(id) {
            session.router = Some(index);
            tracing::info!(interface = %name, session = %id, ?placer, "call bound to the demand-dial interface");
        }
    }

    /// A router session's link is up: it takes over from the call it replaces, or
    /// sends what waited.
    pub(super) fn router_link_up(&mut self, index: usize, id: SessionId, now: Instant) {
        let router = &mut self.routers[index];
        if router.next == Some(id) {
            router.next = None;
            if let Some(old) = router.session.replace(id) {
                // Packets the peer already sent on the old link still arrive.
                self.lingering.push((now + LINGER, old));
            }
            tracing::info!(interface = %router.config.name, "demand-dial link moved to the new call");
        } else if router.session != Some(id) {
            return;
        }
        let router = &mut self.routers[index];
        let waiting = router.config.demand.on_link_up(now);
        tracing::info!(interface = %router.config.name, queued = waiting.len(), "demand-dial link up");
        for packet in &waiting {
            self.send_ip(id, packet, now);
        }
    }

    /// Session `id`, bound to interface `index`, has ended.
    pub(super) fn router_session_gone(
        &mut self,
        index: usize,
        id: SessionId,
        session: &Session,
        now: Instant,
    ) {
        self.lingering.retain(|(_, s)| *s != id);
        if let Some(up) = &session.up {
            self.router_addresses_gone(index, up);
        }
        let router = &mut self.routers[index];
        if router.next == Some(id) {
            router.next = None;
        }
        if router.session != Some(id) {
            return;
        }
        router.session = None;
        if let Some(next) = router.next.take() {
            // The call that was to replace this one takes over now.
            router.session = Some(next);
            router.config.demand.on_connecting();
        } else {
            // A call the peer placed that failed is not a failure of ours to back
            // off from.
            let was_up = session.up.is_some() || session.placer == Placer::Peer;
            router.config.demand.on_link_down(was_up, now);
        }
        tracing::info!(interface = %router.config.name, state = ?router.config.demand.state(), stats = ?router.config.demand.stats(), "demand-dial link down");
    }

    /// A router session's link addresses leave the interface's device; the
    /// interface's routes (which Linux drops with a device's last address) and the
    /// addresses of the link that carries on are put back.
    fn router_addresses_gone(&mut self, index: usize, up: &LinkUp) {
        let device = Device::Router(index);
        self.network
            .remove_link_addresses(device, up.local_ip, up.peer_ip);
        let router = &self.routers[index];
        for route in &router.config.routes {
            if let Err(e) = self.network.add_route(device, *route) {
                tracing::error!(interface = %router.config.name, %route, error = format!("{e:#}"), "cannot restore the interface's route");
            }
        }
        for id in [router.session, router.next].into_iter().flatten() {
            if let Some(other) = self.table.get(id).and_then(|s| s.up.as_ref()) {
                let _ = self
                    .network
                    .set_link_addresses(device, other.local_ip, other.peer_ip);
            }
        }
    }

    /// Hangs up the replaced calls whose time is over.
    pub(super) fn on_lingering(&mut self, now: Instant) {
        let (due, keep): (Vec<_>, Vec<_>) =
            self.lingering.drain(..).partition(|(at, _)| *at <= now);
        self.lingering = keep;
        for (_, id) in due {
            self.hang_up(id, now);
        }
    }

    /// A call placed for interface `index` (its `generation`-th) has ended, up or
    /// not.
    pub fn handle_dial_ended(&mut self, now: Instant, index: usize, generation: u64) {
        let Some(router) = self.routers.get_mut(index) else {
            return;
        };
        if router.generation == generation
            && router.session.is_none()
            && router.config.demand.state() == crate::demand::State::Dialing
        {
            router.config.demand.on_dial_failed(now);
            tracing::info!(interface = %router.config.name, next = ?router.config.demand.poll_timeout(), "demand-dial call failed");
        }
        self.router_actions(index, now);
    }

    pub(super) fn on_router_timers(&mut self, now: Instant) {
        for index in 0..self.routers.len() {
            if self.routers[index]
                .config
                .demand
                .poll_timeout()
                .is_some_and(|at| at <= now)
            {
                self.routers[index].config.demand.handle_timeout(now);
                self.router_actions(index, now);
            }
        }
    }

    /// Does what interface `index`'s machine asks.
    pub(super) fn router_actions(&mut self, index: usize, now: Instant) {
        while let Some(action) = self.routers[index].config.demand.poll_action() {
            let router = &mut self.routers[index];
            match action {
                DemandAction::Dial => {
                    if self.config.dialing {
                        router.generation += 1;
                        tracing::info!(interface = %router.config.name, "demand-dial: dialing");
                        self.actions.push_back(Action::Dial {
                            router: index,
                            generation: router.generation,
                        });
                    } else {
                        router.config.demand.on_dial_failed(now);
                    }
                }
                DemandAction::HangUp => match router.session {
                    Some(id) => {
                        tracing::info!(interface = %router.config.name, "demand-dial: idle, hanging up");
                        self.hang_up(id, now);
                    }
                    None => router.config.demand.on_link_down(true, now),
                },
            }
        }
    }

    /// Every demand-dial interface, as operators see it.
    pub fn interfaces(&self) -> Vec<InterfaceInfo> {
        self.routers
            .iter()
            .map(|r| {
                let (queued_packets, queued_bytes) = r.config.demand.queued();
                InterfaceInfo {
                    name: r.config.name.clone(),
                    device: r.config.device.clone(),
                    state: r.config.demand.state(),
                    session: r.session.filter(|id| self.table.contains(*id)),
                    queued_packets,
                    queued_bytes,
                    stats: r.config.demand.stats(),
                }
            })
            .collect()
    }
}
