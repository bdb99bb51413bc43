//! PAP packets (RFC 1334 §2.2): Authenticate-Request carries the peer's name and
//! password in clear; Authenticate-Ack/Nak carry a message.

/// Authenticate-Request.
pub const REQUEST: u8 = 1;
/// Authenticate-Ack.
pub const ACK: u8 = 2;
/// Authenticate-Nak.
pub const NAK: u8 = 3;

/// An Authenticate-Request's fields (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// Peer-ID.
    pub user: &'a [u8],
    /// Password.
    pub password: &'a [u8],
}

impl<'a> Request<'a> {
    /// Parses the data of an Authenticate-Request.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&user_len, rest) = data.split_first()?;
        let user = rest.get(..usize::from(user_len))?;
        let rest = &rest[user.len()..];
        let (&pass_len, rest) = rest.split_first()?;
        let password = rest.get(..usize::from(pass_len))?;
        Some(Request { user, password })
    }

    /// Encodes the data of an Authenticate-Request (fields cut to 255 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let user = &self.user[..self.user.len().min(255)];
        let password = &self.password[..self.password.len().min(255)];
        let mut out = vec![user.len() as u8];
        out.extend_from_slice(user);
        out.push(password.len() as u8);
        out.extend_from_slice(password);
        out
    }
}

/// Encodes the data of an Authenticate-Ack/Nak.
pub fn encode_message(message: &[u8]) -> Vec<u8> {
    let message = &message[..message.len().min(255)];
    let mut out = vec![message.len() as u8];
    out.extend_from_slice(message);
    out
}

/// The message of an Authenticate-Ack/Nak (empty if malformed).
pub fn parse_message(data: &[u8]) -> &[u8] {
    match data.split_first() {
        Some((&len, rest)) => rest.get(..usize::from(len)).unwrap_or(rest),
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let req = Request {
            user: b"pptpuser",
            password: b"pptp-Secret1",
        };
        assert_eq!(Request::parse(&req.encode()), Some(req));
        assert_eq!(Request::parse(&[3, b'a']), None);
        assert_eq!(Request::parse(&[1, b'a']), None);
        assert_eq!(parse_message(&encode_message(b"Login ok")), b"Login ok");
        assert_eq!(parse_message(&[]), b"");
    }
}
