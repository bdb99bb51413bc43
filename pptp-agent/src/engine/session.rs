//! One session: its call, its PPP link, its GRE sequence state and MPPE cipher, and
//! the packet operations on them, in the style of boringtun's `Tunn`: frames are
//! built into buffers the caller owns, received packets are decrypted in place, and
//! every refusal has a reason. Nothing here sends or receives: the engine decides
//! what goes where ([`super::Engine`]).

use std::{
    ops::Range,
    time::{Duration, Instant},
};

use ipnet::Ipv4Net;
use pptp_common::{
    police::{Limit, State, police},
    rate::RateLimit,
    seq::Judgement,
    wire::ppp,
};

use crate::{
    demand::Placer,
    gre::{GreHeader, SeqVerdict, Sequencer},
    mppe::{Decrypted, Decryptor, Encryptor, MppeConfig, MppeError, cipher::ENCRYPT_HEADROOM},
    ppp::{
        frame::{Framing, protocol},
        link::{Link, LinkUp},
    },
    radius::acct::Counters,
};

use super::{
    accounting::SessionAaa,
    action::OwnerId,
    kernel::{CallSpec, Dataplane, Slot},
    views::{AgentCounter, AgentStats},
};

/// How a session's GRE sequence numbers are kept.
pub enum Sequencing {
    /// By the agent alone (no XDP in front of this session).
    Local(Sequencer),
    /// In the slot shared with the XDP programs, which drop old packets early and
    /// record what they forward themselves.
    Shared(Slot),
}

/// A session's MPPE, one half per direction.
pub struct Cipher {
    encrypt: Encryptor,
    decrypt: Decryptor,
    /// When we last asked the peer for a flush (stateful mode, lost sync).
    last_reset_request: Option<Instant>,
}

/// While stateful MPPE waits for a flushed packet, the Reset-Request (which may be
/// lost too) is sent again at most this often, as packets keep arriving.
const RESET_REQUEST_RETRY: Duration = Duration::from_millis(200);

/// Whether the peer has sent the session any GRE (a firewall that passes TCP 1723
/// but drops IP protocol 47 leaves a call up and its link deaf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerGre {
    /// Nothing yet, and the wait is not over.
    Awaited,
    /// Some arrived.
    Heard,
    /// Nothing within the wait: counted and reported.
    Missing,
}

/// IPv4 packets and bytes a session moved through the agent, and what its rate
/// limit dropped there.
#[derive(Debug, Default, Clone, Copy)]
pub struct AgentCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drop_policed_rx: u64,
    pub drop_policed_tx: u64,
}

/// A session's rate limit and its buckets on the agent's path: the same policer
/// (`pptp_common::police`) the BPF programs run on their copy in the maps, here on
/// plain fields (the engine is one task).
#[derive(Debug, Default, Clone)]
pub struct Policing {
    /// Set once the session is up (an IPCP renegotiation keeps what a CoA set).
    pub started: bool,
    /// The limit came from RADIUS (Access-Accept or CoA): a reload of the
    /// configuration's rates leaves it alone.
    pub from_radius: bool,
    /// The limit and its buckets; `None` when there is none (most sessions: a
    /// pointer instead of the 430 bytes of a limit and its buckets).
    limited: Option<Box<Limited>>,
}

#[derive(Debug, Clone)]
struct Limited {
    /// The limit, as it was given (shown by `sessions`).
    rate: RateLimit,
    rx: Limit,
    tx: Limit,
    rx_state: State,
    tx_state: State,
}

impl Policing {
    /// `rate`, with full buckets.
    pub fn new(rate: RateLimit) -> Self {
        Self {
            started: true,
            from_radius: false,
            limited: rate.is_set().then(|| {
                Box::new(Limited {
                    rate,
                    rx: rate.rx.limit(),
                    tx: rate.tx.limit(),
                    rx_state: State::default(),
                    tx_state: State::default(),
                })
            }),
        }
    }

    /// The limit in force (unset: none).
    pub fn rate(&self) -> RateLimit {
        self.limited.as_ref().map(|l| l.rate).unwrap_or_default()
    }

    /// Puts `rate` in force, the buckets as they are (a CoA neither fills nor
    /// empties them).
    pub fn change(&mut self, rate: RateLimit) {
        let old = self.limited.take();
        *self = Self::new(rate);
        if let (Some(new), Some(old)) = (&mut self.limited, old) {
            new.rx_state = old.rx_state;
            new.tx_state = old.tx_state;
        }
    }

    /// Whether `len` bytes from the client pass at `now` (ns of the engine's clock).
    pub fn rx(&mut self, now: u64, len: usize) -> bool {
        self.limited
            .as_mut()
            .is_none_or(|l| police(&l.rx, &mut l.rx_state, now, len as u32))
    }

    /// Whether `len` bytes to the client pass.
    pub fn tx(&mut self, now: u64, len: usize) -> bool {
        self.limited
            .as_mut()
            .is_none_or(|l| police(&l.tx, &mut l.tx_state, now, len as u32))
    }
}

/// One session.
pub struct Session {
    pub call: CallSpec,
    pub started: Instant,
    pub user: Option<String>,
    pub counters: AgentCounters,
    pub link: Link,
    pub seq: Sequencing,
    pub up: Option<LinkUp>,
    pub framing: Framing,
    /// Boxed: 680 bytes that sessions without MPPE (the XDP path) need not carry.
    pub cipher: Option<Box<Cipher>>,
    /// Told when the call must be cleared and how the session goes.
    pub owner: OwnerId,
    pub aaa: SessionAaa,
    /// Networks behind the peer, routed to the session once it is up.
    pub routes: Vec<Ipv4Net>,
    /// Who placed the call.
    pub placer: Placer,
    /// The demand-dial interface it is bound to.
    pub router: Option<usize>,
    /// Its rate limit on the agent's path.
    pub policing: Policing,
    pub peer_gre: PeerGre,
}

/// Why an IPv4 packet could not be sent on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Larger than a GRE packet can carry.
    TooLong,
    /// The cipher refused (no headroom: a bug, counted).
    Cipher,
}

impl Session {
    pub fn new(call: CallSpec, link: Link, seq: Sequencing, owner: OwnerId, now: Instant) -> Self {
        Self {
            call,
            started: now,
            user: None,
            counters: AgentCounters::default(),
            link,
            seq,
            up: None,
            framing: Framing::default(),
            cipher: None,
            owner,
            aaa: SessionAaa::default(),
            routes: Vec::new(),
            placer: Placer::Peer,
            router: None,
            policing: Policing::default(),
            peer_gre: PeerGre::Awaited,
        }
    }

    /// The link is up: its framing and MPPE keys take effect.
    pub fn link_up(&mut self, up: &LinkUp) {
        self.framing = up.framing;
        self.cipher = up.mppe.as_ref().map(|m| {
            let config = MppeConfig::new(m.params.strength, m.params.stateless);
            Box::new(Cipher {
                encrypt: Encryptor::new(m.keys.send, config),
                decrypt: Decryptor::new(m.keys.recv, config),
                last_reset_request: None,
            })
        });
        self.up = Some(up.clone());
    }

    /// Whether XDP forwards the session's IPv4 (installed, up, no MPPE, no routes).
    pub fn on_fast_path(&self) -> bool {
        matches!(self.seq, Sequencing::Shared(_)) && self.up.is_some() && self.cipher.is_none()
    }

    /// Judges a received header against the window (its ack noted); `None` for an
    /// ack-only packet. The window does not move: [`accept`](Self::accept) does.
    pub fn judge(&mut self, dp: Option<&dyn Dataplane>, header: &GreHeader) -> Option<SeqVerdict> {
        match (&mut self.seq, dp) {
            (Sequencing::Local(seq), _) => {
                if let Some(ack) = header.ack {
                    seq.on_ack(ack);
                }
                header.seq.map(|s| seq.judge(s))
            }
            (Sequencing::Shared(slot), Some(dp)) => header.seq.map(|s| match dp.judge(*slot, s) {
                Judgement::New => SeqVerdict::Accept { lost: 0 },
                Judgement::Duplicate => SeqVerdict::Duplicate,
                Judgement::Old => SeqVerdict::Old,
                Judgement::TooFar => SeqVerdict::TooFar,
            }),
            (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
        }
    }

    /// Moves the receive window to `seq`, a packet the agent took.
    pub fn accept(&mut self, dp: Option<&dyn Dataplane>, seq: u32) {
        match (&mut self.seq, dp) {
            (Sequencing::Local(s), _) => s.accept(seq),
            (Sequencing::Shared(slot), Some(dp)) => dp.accept(*slot, seq),
            (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
        }
    }

    /// The GRE header of the next packet of `len` payload bytes to the peer; `None`
    /// if the payload does not fit a GRE packet.
    fn gre_header(&mut self, dp: Option<&dyn Dataplane>, len: usize) -> Option<GreHeader> {
        let payload_len = u16::try_from(len).ok()?;
        let peer_call_id = self.call.peer_call_id;
        Some(match (&mut self.seq, dp) {
            (Sequencing::Local(seq), _) => seq.data_header(peer_call_id, payload_len),
            (Sequencing::Shared(slot), Some(dp)) => GreHeader {
                call_id: peer_call_id,
                payload_len,
                seq: Some(dp.take_seq(*slot)),
                ack: dp.highest_received(*slot),
            },
            (Sequencing::Shared(_), None) => unreachable!("shared sequencing without XDP"),
        })
    }

    /// One PPP frame to the peer, as a GRE packet appended to `out` (cleared first).
    pub fn frame_to_gre(
        &mut self,
        dp: Option<&dyn Dataplane>,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let header = self.gre_header(dp, frame.len()).ok_or(SendError::TooLong)?;
        out.clear();
        header.emit(out);
        out.extend_from_slice(frame);
        Ok(())
    }

    /// One IPv4 packet to the peer: PPP (and MPPE if negotiated) in GRE, into `out`
    /// (cleared first); counted as sent.
    pub fn ip_to_gre(
        &mut self,
        dp: Option<&dyn Dataplane>,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SendError> {
        let encrypted = self.cipher.is_some();
        let protocol = if encrypted {
            protocol::COMPRESSED
        } else {
            protocol::IPV4
        };
        let ppp = ppp::Header::new(self.framing, protocol);
        let headroom = if encrypted { ENCRYPT_HEADROOM } else { 0 };
        let header = self
            .gre_header(dp, ppp.as_bytes().len() + headroom + packet.len())
            .ok_or(SendError::TooLong)?;
        out.clear();
        header.emit(out);
        out.extend_from_slice(ppp.as_bytes());
        let body = out.len();
        out.resize(body + headroom, 0);
        out.extend_from_slice(packet);
        if let Some(cipher) = &mut self.cipher
            && cipher
                .encrypt
                .encrypt(protocol::IPV4, &mut out[body..])
                .is_err()
        {
            return Err(SendError::Cipher);
        }
        self.counters.tx_packets += 1;
        self.counters.tx_bytes += packet.len() as u64;
        Ok(())
    }

    /// Decrypts an MPPE packet (the information field of a 0x00FD frame) in place;
    /// the IPv4 packet's range in it. Asks the link for a CCP Reset-Request when
    /// stateful MPPE lost sync.
    pub fn decrypt(
        &mut self,
        now: Instant,
        packet: &mut [u8],
        stats: &mut AgentStats,
    ) -> Option<Range<usize>> {
        let Some(cipher) = &mut self.cipher else {
            stats.add(AgentCounter::MppeRefused);
            return None;
        };
        let base = packet.as_ptr() as usize;
        match cipher.decrypt.decrypt(now, packet) {
            Ok(Decrypted::Packet(plain)) if plain.protocol == protocol::IPV4 => {
                let start = plain.payload.as_ptr() as usize - base;
                Some(start..start + plain.payload.len())
            }
            Ok(Decrypted::Packet(_)) => None,
            Ok(Decrypted::SendResetRequest { ccount, lost }) => {
                tracing::info!(peer = %self.call.peer_addr, ccount, lost, "stateful MPPE lost sync: CCP Reset-Request");
                cipher.last_reset_request = Some(now);
                stats.add(AgentCounter::MppeResetsSent);
                self.link.send_ccp_reset_request(now);
                None
            }
            Err(MppeError::AwaitingFlush { .. }) => {
                stats.add(AgentCounter::MppeRefused);
                let due = cipher
                    .last_reset_request
                    .is_none_or(|at| now.duration_since(at) >= RESET_REQUEST_RETRY);
                if due {
                    cipher.last_reset_request = Some(now);
                    stats.add(AgentCounter::MppeResetsSent);
                    self.link.send_ccp_reset_request(now);
                }
                None
            }
            Err(_) => {
                stats.add(AgentCounter::MppeRefused);
                None
            }
        }
    }

    /// The peer asked for a flush (CCP Reset-Request): the next packet rekeys.
    pub fn reset_encryption(&mut self) {
        if let Some(cipher) = &mut self.cipher {
            cipher.encrypt.reset();
        }
    }

    /// IPv4 packets the rate limit dropped (from, to the client), both paths.
    pub fn policed(&self, dp: Option<&dyn Dataplane>) -> (u64, u64) {
        let a = &self.counters;
        let x = match (dp, &self.seq) {
            (Some(dp), Sequencing::Shared(slot)) => dp.counters(*slot).unwrap_or_default(),
            _ => Default::default(),
        };
        (
            a.drop_policed_rx + x.drop_policed_rx,
            a.drop_policed_tx + x.drop_policed_tx,
        )
    }

    /// IPv4 packets and bytes: the agent's path and XDP's added up.
    pub fn totals(&self, dp: Option<&dyn Dataplane>) -> Counters {
        let a = &self.counters;
        let mut c = Counters {
            input_octets: a.rx_bytes,
            input_packets: a.rx_packets,
            output_octets: a.tx_bytes,
            output_packets: a.tx_packets,
        };
        if let (Some(dp), Sequencing::Shared(slot)) = (dp, &self.seq)
            && let Some(x) = dp.counters(*slot)
        {
            c.input_octets += x.rx_bytes;
            c.input_packets += x.rx_packets;
            c.output_octets += x.tx_bytes;
            c.output_packets += x.tx_packets;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppp_headers_follow_the_negotiated_compression() {
        let h = |acfc, pfc, p| {
            ppp::Header::new(Framing { acfc, pfc }, p)
                .as_bytes()
                .to_vec()
        };
        assert_eq!(h(false, false, 0x21), [0xff, 0x03, 0x00, 0x21]);
        assert_eq!(h(true, false, 0x21), [0x00, 0x21]);
        assert_eq!(h(false, true, 0x21), [0xff, 0x03, 0x21]);
        assert_eq!(h(true, true, 0x21), [0x21]);
        assert_eq!(
            h(true, true, 0x8021),
            [0x80, 0x21],
            "PFC only for protocols below 0x100"
        );
        assert_eq!(
            h(true, true, 0x00ff),
            [0x00, 0xff],
            "0x00ff stays two bytes: one 0xff byte reads as the Address field"
        );
    }
}
