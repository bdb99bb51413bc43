//! The PPP header on PPTP's sync link (RFC 2637 §4.4, RFC 1661 §6.5-6.6): the
//! Address and Control bytes `ff 03`, absent once the peer accepted ACFC, then the
//! protocol, one byte once the peer accepted PFC and the protocol allows it. The one
//! codec of the uplink XDP program (parse), the encapsulating programs (the header
//! they write), the agent's framing (`pptp-agent/src/ppp/frame.rs`) and the engine's
//! packet path (`pptp-agent/src/engine/session.rs`).
//!
//! Parsing is liberal: `ff 03` is skipped whether or not ACFC was negotiated, and an
//! odd first byte is a one-byte protocol (the PFC rule), because real peers compress
//! as soon as they acked the option. Building is exact: LCP always goes with `ff 03`
//! and two bytes (RFC 1661 §6.6); another protocol drops `ff 03` under ACFC and takes
//! one byte under PFC when its high byte is zero, except 0x00ff ("reserved,
//! compression inefficient"): one `ff` byte would read as the Address field.

/// PPP protocol numbers the concentrator knows (RFC 1700 assigned numbers).
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

/// The Address byte (all stations).
pub const ADDRESS: u8 = 0xff;
/// The Control byte (unnumbered information).
pub const CONTROL: u8 = 0x03;
/// Length of the longest header: Address, Control, two-byte protocol.
pub const MAX_HEADER_LEN: usize = 4;

/// Which header compressions to apply when sending (what the peer acked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framing {
    /// Leave out `ff 03` (Address-and-Control-Field-Compression acked by the peer).
    pub acfc: bool,
    /// One-byte protocol field when possible (Protocol-Field-Compression acked by the peer).
    pub pfc: bool,
}

impl Framing {
    /// No compression: the header every peer accepts.
    pub const NONE: Self = Self {
        acfc: false,
        pfc: false,
    };
}

/// The header to send a `protocol` frame with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Header {
    #[inline(always)]
    pub const fn new(framing: Framing, protocol: u16) -> Self {
        let is_lcp = protocol == protocol::LCP;
        let address = is_lcp || !framing.acfc;
        let short = !is_lcp && framing.pfc && protocol < 0xff;
        let [hi, lo] = protocol.to_be_bytes();
        let (bytes, len) = match (address, short) {
            (true, false) => ([ADDRESS, CONTROL, hi, lo], 4),
            (true, true) => ([ADDRESS, CONTROL, lo, 0], 3),
            (false, false) => ([hi, lo, 0, 0], 2),
            (false, true) => ([lo, 0, 0, 0], 1),
        };
        Self { bytes, len }
    }

    /// The uncompressed header's four bytes (what the encapsulating programs write:
    /// every peer accepts it, whatever it negotiated).
    #[inline(always)]
    pub const fn uncompressed(protocol: u16) -> [u8; MAX_HEADER_LEN] {
        Self::new(Framing::NONE, protocol).bytes
    }

    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// What [`parse`] read from the start of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The protocol field, expanded to 16 bits.
    pub protocol: u16,
    /// Where the information field starts.
    pub header_len: usize,
}

/// Why the start of a frame is no PPP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fewer bytes than a protocol field.
    Truncated,
    /// Not a valid protocol number (low byte even, so not the last byte of the field).
    BadProtocol(u16),
}

/// Reads the header at the start of `bytes` (either form, see the module docs).
#[inline(always)]
pub fn parse(bytes: &[u8]) -> Result<Parsed, Fault> {
    let (address_len, rest) = match bytes {
        [ADDRESS, CONTROL, rest @ ..] => (2, rest),
        _ => (0, bytes),
    };
    let protocol = parse_protocol(rest)?;
    Ok(Parsed {
        protocol: protocol.protocol,
        header_len: address_len + protocol.header_len,
    })
}

/// Reads a protocol field alone (one byte if odd, the PFC form, else two): what
/// follows the Address and Control bytes, or starts the plaintext of an MPPE packet
/// (RFC 3078 §3).
#[inline(always)]
pub fn parse_protocol(bytes: &[u8]) -> Result<Parsed, Fault> {
    match bytes {
        [first, ..] if first & 1 == 1 => Ok(Parsed {
            protocol: *first as u16,
            header_len: 1,
        }),
        [hi, lo, ..] if lo & 1 == 1 => Ok(Parsed {
            protocol: u16::from_be_bytes([*hi, *lo]),
            header_len: 2,
        }),
        [hi, lo, ..] => Err(Fault::BadProtocol(u16::from_be_bytes([*hi, *lo]))),
        _ => Err(Fault::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMINGS: [Framing; 4] = [
        Framing::NONE,
        Framing {
            acfc: true,
            pfc: false,
        },
        Framing {
            acfc: false,
            pfc: true,
        },
        Framing {
            acfc: true,
            pfc: true,
        },
    ];

    /// Every number RFC 1661 §2 allows in the protocol field: low byte odd, high
    /// byte even.
    fn valid_protocols() -> impl Iterator<Item = u16> {
        (0..=u16::MAX).filter(|p| p & 0x0001 == 1 && p & 0x0100 == 0)
    }

    #[test]
    fn parses_every_header_form() {
        let forms: [&[u8]; 4] = [
            &[0xff, 0x03, 0x00, 0x21],
            &[0x00, 0x21],
            &[0xff, 0x03, 0x21],
            &[0x21],
        ];
        for form in forms {
            let parsed = parse(form).unwrap();
            assert_eq!((parsed.protocol, parsed.header_len), (0x0021, form.len()));
        }
        assert_eq!(
            parse(&[0xff, 0x05]).unwrap().protocol,
            0x00ff,
            "ff without 03"
        );
    }

    #[test]
    fn a_protocol_field_alone() {
        let read = |bytes: &[u8]| parse_protocol(bytes).map(|p| (p.protocol, p.header_len));
        assert_eq!(read(&[0x21, 0x45]), Ok((0x0021, 1)));
        assert_eq!(read(&[0x00, 0x21]), Ok((0x0021, 2)));
        assert_eq!(
            read(&[0xff, 0x03]),
            Ok((0x00ff, 1)),
            "no Address field here"
        );
        assert_eq!(read(&[0x00]), Err(Fault::Truncated));
        assert_eq!(read(&[]), Err(Fault::Truncated));
        assert_eq!(read(&[0x00, 0x20]), Err(Fault::BadProtocol(0x0020)));
    }

    #[test]
    fn rejects_what_is_no_header() {
        assert_eq!(parse(&[]), Err(Fault::Truncated));
        assert_eq!(parse(&[0xff, 0x03]), Err(Fault::Truncated));
        assert_eq!(parse(&[0x02]), Err(Fault::Truncated));
        assert_eq!(parse(&[0xc0, 0x20]), Err(Fault::BadProtocol(0xc020)));
    }

    #[test]
    fn builds_as_the_captures_show() {
        let both = FRAMINGS[3];
        let h = |f, p| Header::new(f, p).as_bytes().to_vec();
        assert_eq!(h(both, protocol::LCP), [0xff, 0x03, 0xc0, 0x21]);
        assert_eq!(h(both, protocol::CHAP), [0xc2, 0x23]);
        assert_eq!(h(both, protocol::COMPRESSED), [0xfd]);
        assert_eq!(h(FRAMINGS[1], protocol::IPV4), [0x00, 0x21]);
        assert_eq!(h(FRAMINGS[2], protocol::IPV4), [0xff, 0x03, 0x21]);
        assert_eq!(h(Framing::NONE, protocol::IPV4), [0xff, 0x03, 0x00, 0x21]);
        assert_eq!(
            Header::uncompressed(protocol::IPV4),
            [0xff, 0x03, 0x00, 0x21]
        );
        // Found by fuzzing: 0x00ff must stay two bytes or it reads as the address.
        assert_eq!(h(both, 0x00ff), [0x00, 0xff]);
    }

    /// What a header is built as, it parses as: for every valid protocol and every
    /// framing, read from the whole frame (the agent) or from the four bytes the
    /// uplink XDP program reads.
    #[test]
    fn every_header_parses_back_as_built() {
        let info = [0x45, 0x00, 0x00, 0x14];
        for framing in FRAMINGS {
            for protocol in valid_protocols() {
                let header = Header::new(framing, protocol);
                let bytes = header.as_bytes();
                let mut frame = [0; MAX_HEADER_LEN + 4];
                frame[..bytes.len()].copy_from_slice(bytes);
                frame[bytes.len()..bytes.len() + 4].copy_from_slice(&info);
                let expected = Ok(Parsed {
                    protocol,
                    header_len: bytes.len(),
                });
                assert_eq!(
                    parse(&frame[..bytes.len() + 4]),
                    expected,
                    "{framing:?} {protocol:#06x}"
                );
                let window: [u8; 4] = *frame.first_chunk().unwrap();
                assert_eq!(
                    parse(&window),
                    expected,
                    "{framing:?} {protocol:#06x}, XDP's window"
                );
                assert_eq!(
                    parse(bytes),
                    expected,
                    "{framing:?} {protocol:#06x}, header alone"
                );
            }
        }
    }
}
