//! PPP framing on a sync link (PPTP's GRE payload, RFC 2637 §4.4): no HDLC flags, no
//! escaping, no FCS; the Address/Control bytes `ff 03` and the protocol field may be
//! compressed once LCP negotiated ACFC and PFC (RFC 1661 §6.5, §6.6).
//!
//! Receiving is liberal: `ff 03` is accepted and stripped whether or not ACFC was
//! negotiated, and a one-byte protocol is accepted whenever it is odd (the PFC rule),
//! because real peers start compressing as soon as they acked the option.
//! Sending is exact: LCP always goes out with `ff 03` and a two-byte protocol; other
//! protocols drop `ff 03` when the peer accepted our ACFC and use one byte when the
//! peer accepted our PFC and the protocol's high byte is zero.

use thiserror::Error;

/// PPP protocol numbers this engine knows (RFC 1700 assigned numbers).
pub mod protocol {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0021;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x0057;
    /// Compressed datagram (MPPE/MPPC, RFC 1962/3078).
    pub const COMPRESSED: u16 = 0x00fd;
    /// IP Control Protocol (RFC 1332).
    pub const IPCP: u16 = 0x8021;
    /// IPv6 Control Protocol (RFC 5072).
    pub const IPV6CP: u16 = 0x8057;
    /// Compression Control Protocol (RFC 1962).
    pub const CCP: u16 = 0x80fd;
    /// Link Control Protocol (RFC 1661).
    pub const LCP: u16 = 0xc021;
    /// Password Authentication Protocol (RFC 1334).
    pub const PAP: u16 = 0xc023;
    /// Challenge Handshake Authentication Protocol (RFC 1994, MS-CHAP).
    pub const CHAP: u16 = 0xc223;
}

/// Which header compressions to apply when sending (what the peer acked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    /// Leave out `ff 03` (Address-and-Control-Field-Compression acked by the peer).
    pub acfc: bool,
    /// One-byte protocol field when possible (Protocol-Field-Compression acked by the peer).
    pub pfc: bool,
}

/// A received PPP frame: protocol and information field (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The protocol field, expanded to 16 bits.
    pub protocol: u16,
    /// Everything after the protocol field.
    pub info: &'a [u8],
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Fewer bytes than a protocol field.
    #[error("frame too short")]
    Truncated,
    /// The protocol field is not a valid PPP protocol (low byte must be odd, high byte even).
    #[error("invalid protocol field {0:#06x}")]
    BadProtocol(u16),
}

impl<'a> Frame<'a> {
    /// Parses a frame, accepting either header form.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let rest = match bytes {
            [0xff, 0x03, rest @ ..] => rest,
            _ => bytes,
        };
        match rest {
            [] => Err(FrameError::Truncated),
            [first, tail @ ..] if first & 1 == 1 => Ok(Frame {
                protocol: u16::from(*first),
                info: tail,
            }),
            [hi, lo, tail @ ..] => {
                let protocol = u16::from_be_bytes([*hi, *lo]);
                if lo & 1 == 0 {
                    Err(FrameError::BadProtocol(protocol))
                } else {
                    Ok(Frame {
                        protocol,
                        info: tail,
                    })
                }
            }
            [_] => Err(FrameError::Truncated),
        }
    }
}

/// Encodes a frame for sending with the negotiated compressions.
pub fn encode(framing: Framing, protocol: u16, info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(info.len() + 4);
    let is_lcp = protocol == protocol::LCP;
    if is_lcp || !framing.acfc {
        out.extend_from_slice(&[0xff, 0x03]);
    }
    // 0x00ff is "reserved (compression inefficient)": compressed, it would read as
    // the Address byte.
    if !is_lcp && framing.pfc && protocol < 0xff {
        out.push(protocol as u8);
    } else {
        out.extend_from_slice(&protocol.to_be_bytes());
    }
    out.extend_from_slice(info);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_header_form() {
        let full = [0xff, 0x03, 0x00, 0x21, 0x45];
        let no_ac = [0x00, 0x21, 0x45];
        let pfc = [0x21, 0x45];
        let both = [0xff, 0x03, 0x21, 0x45];
        for bytes in [&full[..], &no_ac, &pfc, &both] {
            assert_eq!(
                Frame::parse(bytes),
                Ok(Frame {
                    protocol: 0x0021,
                    info: &[0x45]
                })
            );
        }
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(Frame::parse(&[]), Err(FrameError::Truncated));
        assert_eq!(Frame::parse(&[0xff, 0x03]), Err(FrameError::Truncated));
        assert_eq!(Frame::parse(&[0x02]), Err(FrameError::Truncated));
        assert_eq!(
            Frame::parse(&[0xc0, 0x20]),
            Err(FrameError::BadProtocol(0xc020))
        );
    }

    #[test]
    fn encodes_as_the_captures_show() {
        let f = Framing {
            acfc: true,
            pfc: true,
        };
        assert_eq!(encode(f, protocol::LCP, &[1]), [0xff, 0x03, 0xc0, 0x21, 1]);
        assert_eq!(encode(f, protocol::CHAP, &[1]), [0xc2, 0x23, 1]);
        assert_eq!(encode(f, protocol::COMPRESSED, &[1]), [0xfd, 1]);
        let none = Framing::default();
        assert_eq!(encode(none, protocol::IPV4, &[]), [0xff, 0x03, 0x00, 0x21]);
        // Found by fuzzing: 0x00ff must stay two bytes or it reads as the address.
        assert_eq!(encode(f, 0x00ff, &[3]), [0x00, 0xff, 3]);
    }

    #[test]
    fn round_trips() {
        for acfc in [false, true] {
            for pfc in [false, true] {
                for proto in [
                    protocol::IPV4,
                    protocol::IPCP,
                    protocol::LCP,
                    protocol::COMPRESSED,
                ] {
                    let bytes = encode(Framing { acfc, pfc }, proto, b"xyz");
                    let frame = Frame::parse(&bytes).unwrap();
                    assert_eq!((frame.protocol, frame.info), (proto, &b"xyz"[..]));
                }
            }
        }
    }
}
