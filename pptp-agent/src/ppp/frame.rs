//! PPP framing on a sync link (PPTP's GRE payload, RFC 2637 §4.4): no HDLC flags, no
//! escaping, no FCS; the Address/Control bytes `ff 03` and the protocol field may be
//! compressed once LCP negotiated ACFC and PFC (RFC 1661 §6.5, §6.6).
//!
//! Receiving is liberal: `ff 03` is accepted and stripped whether or not ACFC was
//! negotiated, and a one-byte protocol is accepted whenever it is odd (the PFC rule),
//! because real peers start compressing as soon as they acked the option.
//! Sending is exact: LCP always goes out with `ff 03` and a two-byte protocol; other
//! protocols drop `ff 03` when the peer accepted our ACFC and use one byte when the
//! peer accepted our PFC and the protocol's high byte is zero (0x00ff excepted).
//! Both directions are [`pptp_common::wire::ppp`]'s codec, which the XDP programs
//! and the engine's packet path use too.

use pptp_common::wire::ppp::{self, Fault, Header};
pub use pptp_common::wire::ppp::{Framing, protocol};
use thiserror::Error;

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

impl From<Fault> for FrameError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Truncated => Self::Truncated,
            Fault::BadProtocol(protocol) => Self::BadProtocol(protocol),
        }
    }
}

impl<'a> Frame<'a> {
    /// Parses a frame, accepting either header form.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, FrameError> {
        let header = ppp::parse(bytes)?;
        Ok(Frame {
            protocol: header.protocol,
            info: &bytes[header.header_len..],
        })
    }
}

/// Encodes a frame for sending with the negotiated compressions.
pub fn encode(framing: Framing, protocol: u16, info: &[u8]) -> Vec<u8> {
    let header = Header::new(framing, protocol);
    [header.as_bytes(), info].concat()
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

    /// The agent's frames are the shared codec's (what XDP parses and writes), for
    /// every valid protocol and every framing.
    #[test]
    fn one_codec_with_xdp() {
        let valid = (0..=u16::MAX).filter(|p| p & 0x0001 == 1 && p & 0x0100 == 0);
        for protocol in valid {
            for (acfc, pfc) in [(false, false), (true, false), (false, true), (true, true)] {
                let framing = Framing { acfc, pfc };
                let bytes = encode(framing, protocol, b"xyz");
                let header = Header::new(framing, protocol);
                assert_eq!(&bytes[..bytes.len() - 3], header.as_bytes());
                let parsed = ppp::parse(&bytes).unwrap();
                assert_eq!(parsed.protocol, protocol);
                assert_eq!(
                    Frame::parse(&bytes),
                    Ok(Frame {
                        protocol,
                        info: &bytes[parsed.header_len..]
                    })
                );
            }
        }
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
