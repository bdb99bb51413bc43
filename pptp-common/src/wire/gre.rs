//! The enhanced GRE header of PPTP (RFC 2637 §4.1) and its one flag rule, applied by
//! the uplink XDP program and by the agent's codec (`pptp-agent/src/gre.rs`) alike:
//! version 1, protocol PPP (0x880B), K set; C, R, s, the recursion bits and the
//! reserved flags clear, as the Linux kernel's pptp driver requires; a sequence or
//! an acknowledgment number present, and no payload without a sequence number (an
//! ack-only packet carries none).
//!
//! The header is the fixed part ([`FIXED_LEN`] bytes: flags, version, protocol,
//! payload length and the receiver's call ID in the key field), then the sequence
//! number if S is set, then the acknowledgment number if A is set.

use super::{get16, put16};

pub mod field {
    use crate::wire::Field;

    /// C, R, K, S, s and the recursion bits.
    pub const FLAGS: usize = 0;
    /// A, the reserved flags and the version.
    pub const FLAGS_VERSION: usize = 1;
    pub const PROTOCOL: Field = 2..4;
    /// High half of the key field.
    pub const PAYLOAD_LEN: Field = 4..6;
    /// Low half of the key field: the receiver's call ID.
    pub const CALL_ID: Field = 6..8;
}

/// Length of the fixed part of the header.
pub const FIXED_LEN: usize = field::CALL_ID.end;
/// Length of the longest header: fixed part, sequence and acknowledgment numbers.
pub const MAX_LEN: usize = FIXED_LEN + 8;

/// Protocol type carried by PPTP: PPP.
pub const PROTO_PPP: u16 = 0x880b;
/// Version number of the enhanced GRE header.
pub const VERSION_ENHANCED: u8 = 1;

/// Checksum present.
pub const FLAG_C: u8 = 0x80;
/// Routing present.
pub const FLAG_R: u8 = 0x40;
/// Key present (must be set for PPTP).
pub const FLAG_K: u8 = 0x20;
/// Sequence number present.
pub const FLAG_S: u8 = 0x10;
/// Strict source route (must be clear for PPTP).
pub const FLAG_STRICT: u8 = 0x08;
/// Recursion control bits (must be zero for PPTP).
pub const RECUR_MASK: u8 = 0x07;
/// Second byte: acknowledgment number present.
pub const FLAG_A: u8 = 0x80;
/// Second byte: flags that must be zero for PPTP.
pub const FLAGS2_MASK: u8 = 0x78;
/// Second byte: version bits.
pub const VERSION_MASK: u8 = 0x07;

/// Why a GRE header breaks the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Not version 1 (enhanced GRE): not PPTP's.
    Version(u8),
    /// A protocol type other than PPP.
    Protocol(u16),
    /// The key bit is clear.
    NoKey,
    /// Checksum, routing, strict-route, recursion or reserved flags set (the first
    /// two bytes).
    Flags(u16),
    /// Neither a sequence nor an acknowledgment number.
    Empty,
    /// No sequence number, yet a payload (its length).
    AckOnlyWithPayload(u16),
}

/// Whether the second byte of a GRE header says version 1 (enhanced GRE).
#[inline(always)]
pub fn is_enhanced(flags_version: u8) -> bool {
    flags_version & VERSION_MASK == VERSION_ENHANCED
}

/// The fixed part of an enhanced GRE header, as read from a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header(pub [u8; FIXED_LEN]);

impl Header {
    #[inline(always)]
    pub fn has_seq(&self) -> bool {
        self.0[field::FLAGS] & FLAG_S != 0
    }

    #[inline(always)]
    pub fn has_ack(&self) -> bool {
        self.0[field::FLAGS_VERSION] & FLAG_A != 0
    }

    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        get16(&self.0, field::PROTOCOL)
    }

    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        get16(&self.0, field::PAYLOAD_LEN)
    }

    #[inline(always)]
    pub fn call_id(&self) -> u16 {
        get16(&self.0, field::CALL_ID)
    }

    /// Length of the whole header: where the payload starts.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        FIXED_LEN + if self.has_seq() { 4 } else { 0 } + if self.has_ack() { 4 } else { 0 }
    }

    /// The flag rule (see the module docs); the faults in this order.
    #[inline(always)]
    pub fn check(&self) -> Result<(), Fault> {
        let flags = self.0[field::FLAGS];
        let flags_version = self.0[field::FLAGS_VERSION];
        if !is_enhanced(flags_version) {
            return Err(Fault::Version(flags_version & VERSION_MASK));
        }
        if self.protocol() != PROTO_PPP {
            return Err(Fault::Protocol(self.protocol()));
        }
        if flags & FLAG_K == 0 {
            return Err(Fault::NoKey);
        }
        let forbidden = FLAG_C | FLAG_R | FLAG_STRICT | RECUR_MASK;
        if flags & forbidden != 0 || flags_version & FLAGS2_MASK != 0 {
            return Err(Fault::Flags(u16::from_be_bytes([flags, flags_version])));
        }
        if !self.has_seq() && !self.has_ack() {
            return Err(Fault::Empty);
        }
        if !self.has_seq() && self.payload_len() != 0 {
            return Err(Fault::AckOnlyWithPayload(self.payload_len()));
        }
        Ok(())
    }
}

/// The fixed part of the header of a packet to `call_id` (the receiver's) with
/// `payload_len` bytes of payload, announcing a sequence and/or an acknowledgment
/// number (the caller writes them after it, in that order).
#[inline(always)]
pub fn fixed(call_id: u16, payload_len: u16, seq: bool, ack: bool) -> [u8; FIXED_LEN] {
    let mut h = [0; FIXED_LEN];
    h[field::FLAGS] = FLAG_K | if seq { FLAG_S } else { 0 };
    h[field::FLAGS_VERSION] = VERSION_ENHANCED | if ack { FLAG_A } else { 0 };
    put16(&mut h, field::PROTOCOL, PROTO_PPP);
    put16(&mut h, field::PAYLOAD_LEN, payload_len);
    put16(&mut h, field::CALL_ID, call_id);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capture_header_reads_as_sent() {
        // A data packet to call ID 0x0102 with a sequence number and 4 bytes of payload.
        let h = Header([0x30, 0x01, 0x88, 0x0b, 0x00, 0x04, 0x01, 0x02]);
        assert_eq!(h.check(), Ok(()));
        assert!(h.has_seq() && !h.has_ack());
        assert_eq!(
            (h.payload_len(), h.call_id(), h.header_len()),
            (4, 0x0102, 12)
        );
        assert_eq!(fixed(0x0102, 4, true, false), h.0);
        assert_eq!(
            fixed(7, 0, false, true),
            [0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7]
        );
        assert_eq!(Header(fixed(7, 0, false, true)).header_len(), 12);
        assert_eq!(Header(fixed(7, 9, true, true)).header_len(), MAX_LEN);
    }

    #[test]
    fn every_fault_in_its_order() {
        let with = |b0: u8, b1: u8, rest: [u8; 6]| {
            let [p0, p1, l0, l1, c0, c1] = rest;
            Header([b0, b1, p0, p1, l0, l1, c0, c1]).check()
        };
        let ppp = [0x88, 0x0b, 0, 4, 0, 7];
        assert_eq!(with(0x30, 0x00, ppp), Err(Fault::Version(0)));
        assert_eq!(with(0x30, 0x82, ppp), Err(Fault::Version(2)));
        assert_eq!(
            with(0x30, 0x01, [0x08, 0x00, 0, 4, 0, 7]),
            Err(Fault::Protocol(0x0800))
        );
        assert_eq!(with(0x10, 0x01, ppp), Err(Fault::NoKey));
        for b0 in [0xb0, 0x70, 0x38, 0x31] {
            assert_eq!(
                with(b0, 0x01, ppp),
                Err(Fault::Flags(u16::from(b0) << 8 | 1))
            );
        }
        assert_eq!(with(0x30, 0x09, ppp), Err(Fault::Flags(0x3009)));
        assert_eq!(with(0x20, 0x01, ppp), Err(Fault::Empty));
        assert_eq!(with(0x20, 0x81, ppp), Err(Fault::AckOnlyWithPayload(4)));
        assert_eq!(with(0x20, 0x81, [0x88, 0x0b, 0, 0, 0, 7]), Ok(()));
        assert_eq!(with(0x30, 0x81, ppp), Ok(()));
    }

    #[test]
    fn what_we_write_passes_the_rule() {
        for (seq, ack) in [(true, false), (true, true), (false, true)] {
            let len = if seq { 1400 } else { 0 };
            let h = Header(fixed(0xbeef, len, seq, ack));
            assert_eq!(h.check(), Ok(()), "seq {seq}, ack {ack}");
            assert_eq!((h.has_seq(), h.has_ack()), (seq, ack));
            assert_eq!((h.call_id(), h.payload_len()), (0xbeef, len));
        }
    }
}
