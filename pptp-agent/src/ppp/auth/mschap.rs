//! MS-CHAP version 1 (RFC 2433): an 8-byte challenge, a 49-byte response (LM
//! response, NT response, "use NT" flag). Only the NT response is used; like Linux
//! pppd this engine sends an all-zero LM response and never checks one.

use super::crypto;

/// Challenge length (RFC 2433 §2).
pub const CHALLENGE_LEN: usize = 8;
/// Response value length.
pub const RESPONSE_LEN: usize = 49;

/// The NT half of a response and the flag saying it is to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// NT-Response: ChallengeResponse(challenge, NT hash).
    pub nt_response: [u8; 24],
    /// Flags octet: 1 = use the NT response.
    pub use_nt: bool,
}

impl Response {
    /// Computes the response to `challenge` for a password hash.
    pub fn compute(challenge: &[u8; 8], password_hash: &[u8; 16]) -> Self {
        Response {
            nt_response: crypto::challenge_response(challenge, password_hash),
            use_nt: true,
        }
    }

    /// Parses a response value.
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() != RESPONSE_LEN {
            return None;
        }
        Some(Response {
            nt_response: value[24..48].try_into().ok()?,
            use_nt: value[48] == 1,
        })
    }

    /// Encodes the response value (zero LM response).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 24];
        out.extend_from_slice(&self.nt_response);
        out.push(u8::from(self.use_nt));
        out
    }
}

/// The Failure message for a wrong password (RFC 2433 §2.2 format, no retry).
pub fn failure_message() -> &'static [u8] {
    b"E=691 R=0"
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn capture_mschap_v1_response() {
        // mschap-mppe128 capture: challenge 0e269d9c74989fa8, password pptp-Secret1.
        let hash = crypto::nt_password_hash(b"pptp-Secret1");
        let r = Response::compute(&hex!("0e269d9c74989fa8"), &hash);
        assert_eq!(
            r.nt_response,
            hex!("9705d45c423955a7cf1b03f53fef5c8ef9d6531567699653")
        );
        assert_eq!(Response::parse(&r.encode()), Some(r));
        assert_eq!(Response::parse(&[0; 48]), None);
    }
}
