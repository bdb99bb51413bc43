//! The agent's packet path: GRE from peers in, IPv4 from the kernel out.
//!
//! Per received GRE packet: find the session by (source address, call ID); judge
//! its sequence number (always: XDP leaves what it hands over unrecorded, and never
//! sees outer fragments); hand the PPP frame to the link; decrypt MPPE in place;
//! check that the IPv4 packet is one and comes from the client (or from a network
//! behind it); police it by the session's upload limit; answer a Windows client's
//! DHCPINFORM; only then move the window and deliver. Per IPv4 packet from the kernel: find the session by destination (the
//! concentrator), take the only one (a client) or the one whose address is the
//! source (the load generator); police it by the session's download limit; encrypt
//! if the session uses MPPE; add PPP and GRE.
//! Both directions work in buffers the caller owns or the engine keeps: no
//! allocation per packet.

use std::{net::Ipv4Addr, time::Instant};

use pptp_common::capture::{FROM_CLIENT, TO_CLIENT};

use crate::{
    gre::{GreHeader, SeqVerdict},
    inet::Ipv4Packet,
    ppp::frame::protocol,
};

use super::{
    AgentCounter, Device, Engine, Mode, SessionId,
    action::{Delivery, Target},
    rates::Way,
    session::PeerGre,
};

/// Why a received data packet was refused.
enum Refusal {
    /// Bytes in an IPv4 frame that are not an IPv4 packet.
    MalformedIp,
    /// An inner source that is not the session's.
    Spoofed,
    /// Refused and counted where it was judged (MPPE, the rate limit).
    Counted,
}

impl Engine {
    /// A GRE packet (header and payload) from `src`; MPPE is decrypted in place.
    pub fn handle_gre(&mut self, now: Instant, src: Ipv4Addr, gre: &mut [u8]) -> Delivery {
        let Ok((header, payload)) = GreHeader::parse(gre) else {
            self.stats.add(AgentCounter::MalformedGre);
            return Delivery::Done;
        };
        let payload = gre.len() - payload.len()..gre.len();
        let Some(id) = self.table.by_call((src, header.call_id)) else {
            self.stats.add(AgentCounter::UnknownSession);
            return Delivery::Done;
        };
        let dp = self.dataplane.as_deref();
        let Some(session) = self.table.get_mut(id) else {
            return Delivery::Done;
        };
        session.peer_gre = PeerGre::Heard;
        match session.judge(dp, &header) {
            Some(SeqVerdict::Duplicate | SeqVerdict::Old) => {
                self.stats.add(AgentCounter::OldSequence);
                return Delivery::Done;
            }
            Some(SeqVerdict::TooFar) => {
                self.stats.add(AgentCounter::SequenceJump);
                return Delivery::Done;
            }
            Some(SeqVerdict::Accept { .. }) | None => {}
        }
        if payload.is_empty() {
            return Delivery::Done;
        }
        let data = session
            .link
            .handle_frame(now, &gre[payload.clone()])
            .map(|frame| {
                let start = frame.info.as_ptr() as usize - gre.as_ptr() as usize;
                (frame.protocol, start..start + frame.info.len())
            });
        // (The link hands over plain IPv4 only on sessions without MPPE.)
        let packet = match data {
            Some((protocol::IPV4, range)) => Ok(range),
            Some((protocol::COMPRESSED, range)) => {
                match session.decrypt(now, &mut gre[range.clone()], &mut self.stats) {
                    Some(inner) => Ok(range.start + inner.start..range.start + inner.end),
                    None => Err(Refusal::Counted),
                }
            }
            _ => Ok(0..0),
        };
        let packet = packet.and_then(|range| {
            if range.is_empty() {
                return Ok(None);
            }
            let ip = Ipv4Packet::parse(&gre[range.clone()]).ok_or(Refusal::MalformedIp)?;
            if !self.source_allowed(id, ip.source) {
                return Err(Refusal::Spoofed);
            }
            Ok(Some(range.start..range.start + ip.len))
        });
        // Over the rate limit: dropped like a refusal (the window does not move, as
        // in XDP).
        let packet = match packet {
            Ok(Some(range)) if !self.police(id, Way::Rx, range.len(), now) => Err(Refusal::Counted),
            packet => packet,
        };
        let dp = self.dataplane.as_deref();
        let Some(session) = self.table.get_mut(id) else {
            return Delivery::Done;
        };
        let delivery = match packet {
            Ok(packet) => {
                if let Some(seq) = header.seq {
                    session.accept(dp, seq);
                }
                packet
            }
            Err(refusal) => {
                match refusal {
                    Refusal::MalformedIp => self.stats.add(AgentCounter::MalformedIp),
                    Refusal::Spoofed => self.stats.add(AgentCounter::SpoofedSource),
                    Refusal::Counted => {}
                }
                None
            }
        };
        let delivery = delivery.and_then(|packet| self.deliver(id, gre, packet, now));
        self.flush(id, now);
        match delivery {
            Some((target, packet)) => Delivery::Deliver { target, packet },
            None => Delivery::Done,
        }
    }

    /// Whether a packet from session `id` may have `src` as its source: the client's
    /// address, or one in the networks behind it (concentrator only; a client takes
    /// what its server sends).
    fn source_allowed(&self, id: SessionId, src: Ipv4Addr) -> bool {
        if self.config.mode != Mode::Concentrator {
            return true;
        }
        let Some(session) = self.table.get(id) else {
            return false;
        };
        let Some(up) = &session.up else {
            return true;
        };
        src == up.peer_ip
            || self.table.prefixes(id).iter().any(|net| net.contains(&src))
            || session
                .router
                .is_some_and(|index| self.routers[index].covers(src))
    }

    /// A received IPv4 packet the session may send: a DHCPINFORM is answered here,
    /// anything else goes to its target.
    fn deliver(
        &mut self,
        id: SessionId,
        buf: &[u8],
        packet: std::ops::Range<usize>,
        now: Instant,
    ) -> Option<(Target, std::ops::Range<usize>)> {
        let bytes = &buf[packet.clone()];
        if self.captures.tee(id, FROM_CLIENT, bytes, now) {
            self.stats.add(AgentCounter::CaptureDropped);
        }
        let session = self.table.get_mut(id)?;
        session.counters.rx_packets += 1;
        session.counters.rx_bytes += bytes.len() as u64;
        if let Some(dhcp) = &self.config.dhcp {
            let mut reply = Vec::new();
            match dhcp.respond(bytes, &mut reply) {
                Ok(Some(len)) => {
                    reply.truncate(len);
                    self.send_ip(id, &reply, now);
                    self.stats.add(AgentCounter::DhcpInformsAnswered);
                    return None;
                }
                Ok(None) => {}
                Err(_) => {
                    self.stats.add(AgentCounter::DhcpMalformed);
                    return None;
                }
            }
        }
        let session = self.table.get(id)?;
        let target = match (session.router, self.config.mode) {
            (Some(index), _) => {
                self.routers[index].on_inbound(now);
                Target::Kernel(Device::Router(index))
            }
            (None, Mode::Concentrator) => Target::Kernel(Device::Concentrator),
            (None, Mode::Client) => Target::Kernel(Device::Client),
            (None, Mode::Probe) => Target::Probe(session.up.as_ref()?.local_ip),
        };
        Some((target, packet))
    }

    /// An IPv4 packet from the kernel through `device` (or from the load generator)
    /// for a session; the GRE packet to send and its destination, built in the
    /// engine's buffer. What a demand-dial interface's device gives may wait for
    /// its link instead (or start a call).
    pub fn handle_ip(
        &mut self,
        now: Instant,
        device: Device,
        packet: &[u8],
    ) -> Option<(Ipv4Addr, &[u8])> {
        let ip = Ipv4Packet::parse(packet)?;
        let packet = &packet[..ip.len];
        let id = match (device, self.config.mode) {
            (Device::Router(index), _) => Some(self.router_outbound(index, packet, now)?),
            (_, Mode::Concentrator) => self.table.route(ip.destination),
            (_, Mode::Client) => self.table.iter().next().map(|(id, _)| id),
            (_, Mode::Probe) => self.table.by_client(ip.source),
        };
        let Some(id) = id.filter(|id| self.table.contains(*id)) else {
            self.stats.add(AgentCounter::NoSessionForDestination);
            return None;
        };
        if !self.police(id, Way::Tx, packet.len(), now) {
            return None;
        }
        self.encapsulate(id, packet, now)
    }

    /// `packet` on session `id`, as a GRE packet in the engine's buffer (and in
    /// its capture, if one runs).
    fn encapsulate(
        &mut self,
        id: SessionId,
        packet: &[u8],
        now: Instant,
    ) -> Option<(Ipv4Addr, &[u8])> {
        let dp = self.dataplane.as_deref();
        let session = self.table.get_mut(id)?;
        match session.ip_to_gre(dp, packet, &mut self.scratch) {
            Ok(()) => {
                let peer = session.call.peer_addr;
                if self.captures.tee(id, TO_CLIENT, packet, now) {
                    self.stats.add(AgentCounter::CaptureDropped);
                }
                Some((peer, &self.scratch))
            }
            Err(_) => {
                self.stats.add(AgentCounter::SendErrors);
                None
            }
        }
    }

    /// Queues `packet` for session `id` (answers the engine makes itself, packets
    /// that waited for a demand-dial link).
    pub(super) fn send_ip(&mut self, id: SessionId, packet: &[u8], now: Instant) {
        if let Some((dst, gre)) = self.encapsulate(id, packet, now) {
            let gre = gre.to_vec();
            self.transmit.push_back((dst, gre));
        }
    }
}
