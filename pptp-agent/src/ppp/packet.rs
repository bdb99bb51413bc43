//! The packet format shared by LCP, the NCPs, PAP and CHAP (RFC 1661 §5): Code,
//! Identifier, Length, Data; and the Type-Length-Value option list carried by the
//! Configure-* packets (RFC 1661 §6).
//!
//! Parsing trusts nothing: the Length field must fit the bytes received (octets past
//! Length are padding and are dropped, RFC 1661 §5), and an option list is either
//! fully well formed or rejected as a whole.

use thiserror::Error;

/// The default MRU (RFC 1661 §6.1): the longest packet a peer takes until LCP agrees
/// on another, so also the bound on what the automaton sends before then.
pub const DEFAULT_MRU: u16 = 1500;

/// Why a packet or option list could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Shorter than the 4-byte header, or than its own Length field.
    #[error("packet truncated")]
    Truncated,
    /// Length field smaller than the header.
    #[error("bad length field")]
    BadLength,
    /// An option whose length is below 2 or past the end of the list.
    #[error("malformed option list")]
    BadOption,
}

/// A control packet (borrowed view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Code (Configure-Request = 1, ...).
    pub code: u8,
    /// Identifier matching requests and replies.
    pub id: u8,
    /// Data after the header, cut to the Length field.
    pub data: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses a packet from a frame's information field.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, PacketError> {
        let [code, id, hi, lo, ..] = *bytes else {
            return Err(PacketError::Truncated);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len < 4 {
            return Err(PacketError::BadLength);
        }
        let data = bytes.get(4..len).ok_or(PacketError::Truncated)?;
        Ok(Packet { code, id, data })
    }

    /// Encodes the packet.
    pub fn to_vec(&self) -> Vec<u8> {
        encode(self.code, self.id, self.data)
    }
}

/// Encodes a control packet; data longer than 65531 bytes is cut (never happens with
/// the sizes this engine builds).
pub fn encode(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let data = &data[..data.len().min(usize::from(u16::MAX) - 4)];
    let mut out = Vec::with_capacity(data.len() + 4);
    out.push(code);
    out.push(id);
    out.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// One configuration option (borrowed view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt<'a> {
    /// Option type.
    pub kind: u8,
    /// Option data (after Type and Length).
    pub data: &'a [u8],
}

impl Opt<'_> {
    /// Appends the option's wire form to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        push_option(out, self.kind, self.data);
    }

    /// The data as a big-endian u16, if it is exactly two bytes.
    pub fn u16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.data.try_into().ok()?))
    }

    /// The data as a big-endian u32, if it is exactly four bytes.
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.try_into().ok()?))
    }
}

/// Appends an option (data cut to 253 bytes so the Length fits one octet).
pub fn push_option(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    let data = &data[..data.len().min(253)];
    out.push(kind);
    out.push(data.len() as u8 + 2);
    out.extend_from_slice(data);
}

/// Parses a whole option list; any malformed option fails the list.
pub fn parse_options(bytes: &[u8]) -> Result<Vec<Opt<'_>>, PacketError> {
    let mut opts = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let [kind, len, ..] = *rest else {
            return Err(PacketError::BadOption);
        };
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            return Err(PacketError::BadOption);
        }
        opts.push(Opt {
            kind,
            data: &rest[2..len],
        });
        rest = &rest[len..];
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip_and_padding() {
        let bytes = encode(1, 7, &[3, 4]);
        assert_eq!(bytes, [1, 7, 0, 6, 3, 4]);
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(
            Packet::parse(&padded).unwrap(),
            Packet {
                code: 1,
                id: 7,
                data: &[3, 4]
            }
        );
        assert_eq!(Packet::parse(&bytes[..5]), Err(PacketError::Truncated));
        assert_eq!(Packet::parse(&[1, 1, 0, 3]), Err(PacketError::BadLength));
        assert_eq!(Packet::parse(&[1, 1, 0]), Err(PacketError::Truncated));
    }

    #[test]
    fn options() {
        let mut list = Vec::new();
        push_option(&mut list, 1, &1400u16.to_be_bytes());
        push_option(&mut list, 7, &[]);
        let opts = parse_options(&list).unwrap();
        assert_eq!(opts.len(), 2);
        assert_eq!(opts[0].u16(), Some(1400));
        assert_eq!(opts[1], Opt { kind: 7, data: &[] });
        assert_eq!(parse_options(&[1, 1]), Err(PacketError::BadOption));
        assert_eq!(parse_options(&[1, 5, 0]), Err(PacketError::BadOption));
        assert_eq!(parse_options(&[1]), Err(PacketError::BadOption));
    }
}
