//! MS-CHAP version 2 (RFC 2759): the 49-byte Response (Peer-Challenge, reserved,
//! NT-Response, flags), the Success message ("S=<authenticator response> M=...")
//! the peer must verify, and the Failure message ("E=691 R=0 C=... V=3 M=...").

use super::crypto;

/// Challenge length (RFC 2759 §4).
pub const CHALLENGE_LEN: usize = 16;
/// Response value length (RFC 2759 §4).
pub const RESPONSE_LEN: usize = 49;

/// A Response value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// Peer-Challenge.
    pub peer_challenge: [u8; 16],
    /// NT-Response.
    pub nt_response: [u8; 24],
}

impl Response {
    /// Computes the response of `user` with `password_hash` to `auth_challenge`.
    pub fn compute(
        auth_challenge: &[u8; 16],
        peer_challenge: [u8; 16],
        user: &[u8],
        password_hash: &[u8; 16],
    ) -> Self {
        let nt_response =
            crypto::generate_nt_response(auth_challenge, &peer_challenge, user, password_hash);
        Response {
            peer_challenge,
            nt_response,
        }
    }

    /// Parses a response value (reserved and flags octets are not checked).
    pub fn parse(value: &[u8]) -> Option<Self> {
        if value.len() != RESPONSE_LEN {
            return None;
        }
        Some(Response {
            peer_challenge: value[..16].try_into().ok()?,
            nt_response: value[24..48].try_into().ok()?,
        })
    }

    /// Encodes the response value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.peer_challenge.to_vec();
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&self.nt_response);
        out.push(0);
        out
    }

    /// The "S=..." authenticator response for this response.
    pub fn authenticator_response(
        &self,
        auth_challenge: &[u8; 16],
        user: &[u8],
        password_hash: &[u8; 16],
    ) -> [u8; 20] {
        crypto::generate_authenticator_response(
            password_hash,
            &self.nt_response,
            &self.peer_challenge,
            auth_challenge,
            user,
        )
    }
}

/// The Success message: "S=<40 hex> M=<message>".
pub fn success_message(auth_response: &[u8; 20], message: &str) -> Vec<u8> {
    format!(
        "{} M={message}",
        crypto::authenticator_response_string(auth_response)
    )
    .into_bytes()
}

/// The authenticator response a Success message carries, if well formed.
pub fn parse_success(message: &[u8]) -> Option<[u8; 20]> {
    let hex = message.strip_prefix(b"S=")?.get(..40)?;
    let mut out = [0u8; 20];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The Failure message of RFC 2759 §6 (no retry, version 3).
pub fn failure_message(error: u32, next_challenge: &[u8; 16], message: &str) -> Vec<u8> {
    format!(
        "E={error} R=0 C={} V=3 M={message}",
        crypto::hex_upper(next_challenge)
    )
    .into_bytes()
}

/// The fields of a Failure message this engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The error code (691 = authentication failure).
    pub error: Option<u32>,
    /// Whether a retry is allowed.
    pub retry: bool,
    /// The human-readable part after "M=".
    pub message: String,
}

/// Parses a Failure message leniently (any field may be missing).
pub fn parse_failure(message: &[u8]) -> Failure {
    let text = String::from_utf8_lossy(message);
    let (fields, text_part) = match text.find("M=") {
        Some(i) => (&text[..i], text[i + 2..].to_string()),
        None => (&text[..], String::new()),
    };
    let mut failure = Failure {
        error: None,
        retry: false,
        message: text_part,
    };
    for field in fields.split_whitespace() {
        if let Some(e) = field.strip_prefix("E=") {
            failure.error = e.parse().ok();
        } else if let Some(r) = field.strip_prefix("R=") {
            failure.retry = r == "1";
        }
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn capture_response_and_success() {
        // mschapv2-mppe128 capture, tests/vectors/captures/README.md.
        let value = hex!(
            "a5325464d95a1b8087de4a1c26e12c96000000000000000068a6d83aee8f160d7f477f9f00040a3b7384c66de9d3561400"
        );
        let r = Response::parse(&value).unwrap();
        assert_eq!(r.encode(), value);
        let auth = hex!("9c40d409da825867fa66aa0cb2d53177");
        let hash = crypto::nt_password_hash(b"pptp-Secret1");
        assert_eq!(
            Response::compute(&auth, r.peer_challenge, b"pptpuser", &hash),
            r
        );
        let s = r.authenticator_response(&auth, b"pptpuser", &hash);
        let msg = success_message(&s, "Access granted");
        assert_eq!(
            msg,
            b"S=9C6E7380988611437D3555B86C1A032041E53431 M=Access granted"
        );
        assert_eq!(parse_success(&msg), Some(s));
        assert_eq!(parse_success(b"S=12"), None);
        assert_eq!(
            parse_success(b"S=ZZ6E7380988611437D3555B86C1A032041E53431"),
            None
        );
    }

    #[test]
    fn failure_format() {
        let msg = failure_message(691, &[0xab; 16], "Access denied");
        assert_eq!(
            msg,
            b"E=691 R=0 C=ABABABABABABABABABABABABABABABAB V=3 M=Access denied"
        );
        let f = parse_failure(&msg);
        assert_eq!(
            f,
            Failure {
                error: Some(691),
                retry: false,
                message: "Access denied".into()
            }
        );
        assert_eq!(parse_failure(b"\xff").error, None);
    }
}
