//! Enhanced GRE (RFC 2637 §4.1): codec and receive-sequence window.
//!
//! PPTP carries PPP frames in GRE version 1: protocol 0x880B, the key field split into
//! payload length and the *receiver's* Call ID, an optional sequence number (present
//! on every packet that carries a payload) and an optional acknowledgment number (the
//! highest sequence number received from the peer). A packet with no sequence number
//! is an ack-only packet and carries no payload.
//!
//! [`GreHeader::parse`] is strict, like the Linux kernel's pptp driver: C, R, s and the
//! recursion bits must be clear, K must be set, flags must be zero, version 1, protocol
//! 0x880B, and the payload length must match the bytes that follow. Every rejection is a
//! [`GreError`]. The flag rule and the fixed part of the header are
//! [`pptp_common::wire::gre`]'s, which the uplink XDP program applies too.
//!
//! [`Sequencer`] is one call's sequence state: it numbers what we send, decides
//! whether a received packet is new (duplicates and old packets are dropped, with
//! 32-bit wrap-around, as the kernel's driver does) and attaches an acknowledgment only
//! when there is something new to acknowledge. Two deliberate details: the first
//! packet of a call is accepted whatever its number (the kernel starts its window at
//! 0xffffffff and so drops a first packet numbered 2^31 or more; the RFC lets a sender
//! start anywhere); and, like the kernel, the verdict is advice the PPP layer may
//! overrule for LCP Echo, which the kernel lets through even when late.

use pptp_common::seq::Judgement;
use pptp_common::wire::gre::{self, FIXED_LEN, Fault};
use thiserror::Error;

/// Longest enhanced GRE header: fixed part, sequence and acknowledgment numbers.
pub const GRE_MAX_HLEN: usize = gre::MAX_LEN;

/// Why a GRE packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum GreError {
    #[error("packet of {have} bytes is shorter than its {need}-byte header")]
    Truncated { need: usize, have: usize },
    #[error("GRE version {0} is not 1 (enhanced GRE)")]
    BadVersion(u8),
    #[error("protocol type {0:#06x} is not 0x880b (PPP)")]
    BadProtocol(u16),
    #[error("key bit (K) is clear")]
    NoKey,
    #[error("checksum, routing, strict-route, recursion or reserved flag bits set: {0:#06x}")]
    BadFlags(u16),
    #[error("packet has neither a sequence nor an acknowledgment number")]
    Empty,
    #[error("ack-only packet (no sequence number) announces a {0}-byte payload")]
    AckOnlyWithPayload(u16),
    #[error("payload length field says {field}, {actual} bytes follow the header")]
    PayloadLength { field: u16, actual: usize },
}

impl From<Fault> for GreError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Version(v) => Self::BadVersion(v),
            Fault::Protocol(p) => Self::BadProtocol(p),
            Fault::NoKey => Self::NoKey,
            Fault::Flags(f) => Self::BadFlags(f),
            Fault::Empty => Self::Empty,
            Fault::AckOnlyWithPayload(len) => Self::AckOnlyWithPayload(len),
        }
    }
}

/// An enhanced GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreHeader {
    /// The receiver's Call ID (low half of the key).
    pub call_id: u16,
    /// Length of the payload that follows the header (high half of the key).
    pub payload_len: u16,
    /// Sequence number; `None` for an ack-only packet.
    pub seq: Option<u32>,
    /// Highest sequence number received from the peer, if acknowledged.
    pub ack: Option<u32>,
}

impl GreHeader {
    /// Length of this header on the wire.
    pub fn header_len(&self) -> usize {
        FIXED_LEN + 4 * usize::from(self.seq.is_some()) + 4 * usize::from(self.ack.is_some())
    }

    /// Parses and validates a GRE packet (the IPv4 payload), returning the header and
    /// the PPP payload.
    pub fn parse(buf: &[u8]) -> Result<(Self, &[u8]), GreError> {
        let fixed = gre::Header(*buf.first_chunk().ok_or(GreError::Truncated {
            need: FIXED_LEN,
            have: buf.len(),
        })?);
        fixed.check().map_err(GreError::from)?;
        let mut rest = &buf[FIXED_LEN..];
        let mut word = |present: bool| -> Result<Option<u32>, GreError> {
            if !present {
                return Ok(None);
            }
            let (w, tail) = rest.split_first_chunk::<4>().ok_or(GreError::Truncated {
                need: buf.len() - rest.len() + 4,
                have: buf.len(),
            })?;
            rest = tail;
            Ok(Some(u32::from_be_bytes(*w)))
        };
        let seq = word(fixed.has_seq())?;
        let ack = word(fixed.has_ack())?;
        let payload_len = fixed.payload_len();
        if rest.len() != usize::from(payload_len) {
            return Err(GreError::PayloadLength {
                field: payload_len,
                actual: rest.len(),
            });
        }
        let header = Self {
            call_id: fixed.call_id(),
            payload_len,
            seq,
            ack,
        };
        Ok((header, rest))
    }

    /// Appends this header to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&gre::fixed(
            self.call_id,
            self.payload_len,
            self.seq.is_some(),
            self.ack.is_some(),
        ));
        for word in [self.seq, self.ack].into_iter().flatten() {
            out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// A whole packet: this header (with `payload_len` set from `payload`) then `payload`.
    /// Returns `None` if the payload is longer than 65535 bytes or if a payload is
    /// given to an ack-only header.
    pub fn encapsulate(mut self, payload: &[u8]) -> Option<Vec<u8>> {
        self.payload_len = u16::try_from(payload.len()).ok()?;
        if self.seq.is_none() && !payload.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.header_len() + payload.len());
        self.emit(&mut out);
        out.extend_from_slice(payload);
        Some(out)
    }
}

/// `a` comes after `b` in 32-bit serial-number arithmetic.
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// What to do with a received data packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// New: deliver it. `lost` counts the sequence numbers skipped since the last one.
    Accept { lost: u32 },
    /// The same sequence number as the last accepted packet.
    Duplicate,
    /// Older than the last accepted packet (reordered or replayed).
    Old,
    /// Too far ahead of the last accepted packet ([`pptp_common::seq`]); kept as the
    /// probe a genuine jump is recognised by.
    TooFar,
}

/// One call's GRE sequence state (RFC 2637 §4.2-4.4, as Linux's pptp driver runs it:
/// no reorder buffer, anything not newer than the last accepted packet is dropped),
/// with the bounded window of [`pptp_common::seq`] that XDP applies too: a packet
/// is judged on arrival and moves the window only once its owner accepts it.
#[derive(Debug, Clone, Default)]
pub struct Sequencer {
    first_tx: u32,
    next_tx: u32,
    highest_rx: Option<u32>,
    probe_rx: Option<u32>,
    acked_rx: Option<u32>,
    highest_ack_from_peer: Option<u32>,
}

impl Sequencer {
    /// A sequencer whose first transmitted packet carries `first_seq`.
    pub fn new(first_seq: u32) -> Self {
        Self {
            first_tx: first_seq,
            next_tx: first_seq,
            ..Self::default()
        }
    }

    /// Judges a received packet's sequence number without moving the window (a
    /// packet too far ahead becomes the probe). The first packet of a call is
    /// always new.
    pub fn judge(&mut self, seq: u32) -> SeqVerdict {
        match pptp_common::seq::judge(self.highest_rx, self.probe_rx, seq) {
            Judgement::New => SeqVerdict::Accept {
                lost: self
                    .highest_rx
                    .map_or(0, |last| seq.wrapping_sub(last).wrapping_sub(1)),
            },
            Judgement::Duplicate => SeqVerdict::Duplicate,
            Judgement::Old => SeqVerdict::Old,
            Judgement::TooFar => {
                self.probe_rx = Some(seq);
                SeqVerdict::TooFar
            }
        }
    }

    /// Records an accepted packet (one [`judge`](Self::judge) found new) as the
    /// number to acknowledge.
    pub fn accept(&mut self, seq: u32) {
        self.highest_rx = Some(seq);
        self.probe_rx = None;
    }

    /// [`judge`](Self::judge), then [`accept`](Self::accept) what may be accepted:
    /// for a receiver that takes every packet the window lets through.
    pub fn on_receive(&mut self, seq: u32) -> SeqVerdict {
        let verdict = self.judge(seq);
        if let SeqVerdict::Accept { .. } = verdict {
            self.accept(seq);
        }
        verdict
    }

    /// Records an acknowledgment number received from the peer; stale ones are ignored.
    pub fn on_ack(&mut self, ack: u32) {
        match self.highest_ack_from_peer {
            Some(prev) if !seq_after(ack, prev) => {}
            _ => self.highest_ack_from_peer = Some(ack),
        }
    }

    /// Handles a received header: its ack (if any), then its sequence number (if any).
    /// Ack-only packets yield `None`.
    pub fn on_header(&mut self, header: &GreHeader) -> Option<SeqVerdict> {
        if let Some(ack) = header.ack {
            self.on_ack(ack);
        }
        header.seq.map(|seq| self.on_receive(seq))
    }

    /// Highest of our sequence numbers the peer has acknowledged.
    pub fn peer_ack(&self) -> Option<u32> {
        self.highest_ack_from_peer
    }

    /// Packets sent and not yet acknowledged by the peer.
    pub fn unacked(&self) -> u32 {
        let oldest_unacked = self
            .highest_ack_from_peer
            .map_or(self.first_tx, |ack| ack.wrapping_add(1));
        self.next_tx.wrapping_sub(oldest_unacked)
    }

    fn take_ack(&mut self) -> Option<u32> {
        let ack = self.highest_rx.filter(|&h| self.acked_rx != Some(h))?;
        self.acked_rx = Some(ack);
        Some(ack)
    }

    /// The header of the next data packet to `peer_call_id`: a fresh sequence number,
    /// and an acknowledgment only when something new has arrived since the last one.
    pub fn data_header(&mut self, peer_call_id: u16, payload_len: u16) -> GreHeader {
        let seq = self.next_tx;
        self.next_tx = self.next_tx.wrapping_add(1);
        GreHeader {
            call_id: peer_call_id,
            payload_len,
            seq: Some(seq),
            ack: self.take_ack(),
        }
    }

    /// An ack-only header if there is something new to acknowledge.
    pub fn ack_only_header(&mut self, peer_call_id: u16) -> Option<GreHeader> {
        let ack = self.take_ack()?;
        Some(GreHeader {
            call_id: peer_call_id,
            payload_len: 0,
            seq: None,
            ack: Some(ack),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    fn header_strategy() -> impl Strategy<Value = (GreHeader, Vec<u8>)> {
        (
            any::<u16>(),
            any::<Option<u32>>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_filter_map("needs seq or ack", |(call_id, seq, ack, payload)| {
                let (ack, payload) = match seq {
                    None => (Some(ack), Vec::new()),
                    Some(_) => ((ack % 2 == 0).then_some(ack), payload),
                };
                let h = GreHeader {
                    call_id,
                    payload_len: payload.len() as u16,
                    seq,
                    ack,
                };
                Some((h, payload))
            })
    }

    proptest! {
        #[test]
        fn round_trip((h, payload) in header_strategy()) {
            let bytes = h.encapsulate(&payload).unwrap();
            prop_assert_eq!(bytes.len(), h.header_len() + payload.len());
            let (back, p) = GreHeader::parse(&bytes).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(p, &payload[..]);
            let mut again = Vec::new();
            back.emit(&mut again);
            again.extend_from_slice(p);
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = GreHeader::parse(&bytes);
        }

        /// The agent refuses exactly the headers the uplink XDP program refuses (it
        /// asks `gre::Header::check` of the same eight bytes), for the same reason;
        /// what passes the rule fails only on lengths.
        #[test]
        fn one_flag_rule_with_xdp(fixed in any::<[u8; 8]>(), tail in proptest::collection::vec(any::<u8>(), 0..12)) {
            let bytes = [&fixed[..], &tail].concat();
            match (gre::Header(fixed).check(), GreHeader::parse(&bytes)) {
                (Err(fault), parsed) => prop_assert_eq!(parsed, Err(GreError::from(fault))),
                (Ok(()), Ok(_) | Err(GreError::Truncated { .. } | GreError::PayloadLength { .. })) => {}
                (Ok(()), Err(e)) => prop_assert!(false, "XDP accepts what the agent refuses: {e}"),
            }
        }

        /// What the agent sends starts with the fixed part XDP writes.
        #[test]
        fn one_header_writer_with_xdp((h, payload) in header_strategy()) {
            let bytes = h.encapsulate(&payload).unwrap();
            let fixed = gre::fixed(h.call_id, h.payload_len, h.seq.is_some(), h.ack.is_some());
            prop_assert_eq!(&bytes[..FIXED_LEN], &fixed[..]);
            prop_assert_eq!(gre::Header(fixed).header_len(), h.header_len());
        }

        #[test]
        fn nothing_moves_the_window_but_accept(start in any::<u32>(), seqs in proptest::collection::vec(any::<u32>(), 1..50)) {
            let mut s = Sequencer::default();
            s.on_receive(start);
            for seq in seqs {
                let _ = s.judge(seq);
                prop_assert_eq!(s.judge(start.wrapping_add(1)), SeqVerdict::Accept { lost: 0 });
            }
        }

        #[test]
        fn sequencer_accepts_only_newer(start in any::<u32>(), steps in proptest::collection::vec(-5i32..5, 1..50)) {
            let mut s = Sequencer::default();
            let mut last = start;
            prop_assert_eq!(s.on_receive(start), SeqVerdict::Accept { lost: 0 });
            for d in steps {
                let seq = last.wrapping_add_signed(d);
                let v = s.on_receive(seq);
                match d {
                    0 => prop_assert_eq!(v, SeqVerdict::Duplicate),
                    d if d < 0 => prop_assert_eq!(v, SeqVerdict::Old),
                    d => { prop_assert_eq!(v, SeqVerdict::Accept { lost: d as u32 - 1 }); last = seq; }
                }
            }
        }
    }

    #[test]
    fn parses_capture_packets() {
        // Client to server, call ID 0, seq 0, LCP Configure-Request prefix.
        let pkt = hex!("3001 880b 0004 0000 00000000 ff03c021");
        let (h, p) = GreHeader::parse(&pkt).unwrap();
        assert_eq!(
            h,
            GreHeader {
                call_id: 0,
                payload_len: 4,
                seq: Some(0),
                ack: None
            }
        );
        assert_eq!(p, hex!("ff03c021"));
        // Ack-only.
        let pkt = hex!("2081 880b 0000 1b1b 00000005");
        let (h, p) = GreHeader::parse(&pkt).unwrap();
        assert_eq!((h.seq, h.ack, h.call_id), (None, Some(5), 0x1b1b));
        assert!(p.is_empty());
    }

    #[test]
    fn rejections_carry_reasons() {
        let good = hex!("3081 880b 0001 0007 00000001 00000002 aa");
        assert!(GreHeader::parse(&good).is_ok());
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            GreHeader::parse(&b).unwrap_err()
        };
        assert_eq!(with(1, 0x80), GreError::BadVersion(0));
        assert_eq!(with(1, 0x82), GreError::BadVersion(2));
        assert_eq!(with(3, 0x00), GreError::BadProtocol(0x8800));
        assert_eq!(with(0, 0x10), GreError::NoKey);
        assert_eq!(with(0, 0xb0), GreError::BadFlags(0xb081));
        assert_eq!(with(0, 0x70), GreError::BadFlags(0x7081));
        assert_eq!(with(0, 0x38), GreError::BadFlags(0x3881));
        assert_eq!(with(0, 0x31), GreError::BadFlags(0x3181));
        assert_eq!(with(1, 0x89), GreError::BadFlags(0x3089));
        assert_eq!(
            with(5, 0x02),
            GreError::PayloadLength {
                field: 2,
                actual: 1
            }
        );
        assert_eq!(
            with(5, 0x00),
            GreError::PayloadLength {
                field: 0,
                actual: 1
            }
        );
        assert_eq!(
            GreHeader::parse(&hex!("2001 880b 0000 0007")).unwrap_err(),
            GreError::Empty
        );
        assert_eq!(
            GreHeader::parse(&hex!("2081 880b 0001 0007 00000002 aa")).unwrap_err(),
            GreError::AckOnlyWithPayload(1)
        );
        assert_eq!(
            GreHeader::parse(&good[..14]).unwrap_err(),
            GreError::Truncated { need: 16, have: 14 }
        );
        assert_eq!(
            GreHeader::parse(&good[..7]).unwrap_err(),
            GreError::Truncated { need: 8, have: 7 }
        );
    }

    #[test]
    fn sequence_wraps_around() {
        let mut s = Sequencer::default();
        assert_eq!(s.on_receive(u32::MAX - 1), SeqVerdict::Accept { lost: 0 });
        assert_eq!(s.on_receive(u32::MAX), SeqVerdict::Accept { lost: 0 });
        assert_eq!(s.on_receive(1), SeqVerdict::Accept { lost: 1 });
        assert_eq!(s.on_receive(u32::MAX), SeqVerdict::Old);
        assert_eq!(s.on_receive(1), SeqVerdict::Duplicate);
        assert_eq!(s.on_receive(0x8000_0001), SeqVerdict::Old);
        assert_eq!(s.on_receive(0x8000_0000), SeqVerdict::TooFar);
    }

    #[test]
    fn a_forged_jump_does_not_push_genuine_packets_out() {
        let mut s = Sequencer::default();
        assert_eq!(s.on_receive(7), SeqVerdict::Accept { lost: 0 });
        // One packet 100,000 ahead (a blind injection) is refused...
        assert_eq!(s.on_receive(100_007), SeqVerdict::TooFar);
        // ...and the peer's next packets are still new.
        assert_eq!(s.on_receive(8), SeqVerdict::Accept { lost: 0 });
        assert_eq!(s.on_receive(9), SeqVerdict::Accept { lost: 0 });
        // A genuine jump (a long outage): the packet after the probe is taken.
        assert_eq!(s.on_receive(200_000), SeqVerdict::TooFar);
        assert_eq!(s.on_receive(200_001), SeqVerdict::Accept { lost: 199_991 });
        assert_eq!(s.on_receive(200_002), SeqVerdict::Accept { lost: 0 });
    }

    #[test]
    fn acks_only_when_new() {
        let mut s = Sequencer::new(10);
        assert_eq!(s.unacked(), 0);
        let h = s.data_header(7, 3);
        assert_eq!(s.unacked(), 1);
        assert_eq!((h.seq, h.ack, h.call_id), (Some(10), None, 7));
        assert_eq!(s.ack_only_header(7), None);
        s.on_header(&GreHeader {
            call_id: 1,
            payload_len: 0,
            seq: Some(4),
            ack: Some(10),
        });
        assert_eq!(s.peer_ack(), Some(10));
        assert_eq!(s.unacked(), 0);
        let h = s.data_header(7, 3);
        assert_eq!((h.seq, h.ack), (Some(11), Some(4)));
        assert_eq!(s.unacked(), 1);
        assert_eq!(s.data_header(7, 3).ack, None);
        s.on_receive(5);
        assert_eq!(s.ack_only_header(7).unwrap().ack, Some(5));
        assert_eq!(s.ack_only_header(7), None);
        // A stale ack does not move the peer's acknowledgment back.
        s.on_ack(3);
        assert_eq!(s.peer_ack(), Some(10));
    }

    #[test]
    fn encapsulate_refuses_impossible_packets() {
        let ack_only = GreHeader {
            call_id: 1,
            payload_len: 0,
            seq: None,
            ack: Some(1),
        };
        assert_eq!(ack_only.encapsulate(b"x"), None);
        let data = GreHeader {
            seq: Some(0),
            ..ack_only
        };
        assert_eq!(data.encapsulate(&vec![0; 70_000]), None);
    }
}
