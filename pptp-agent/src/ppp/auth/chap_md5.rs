//! CHAP with MD5 (RFC 1994 §2): Response = MD5(Identifier | secret | Challenge).

use md5::{Digest, Md5};

/// Challenge length this engine sends (RFC 1994 leaves it open; 16 is customary).
pub const CHALLENGE_LEN: usize = 16;

/// The expected Response value.
pub fn response(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    Md5::new()
        .chain_update([id])
        .chain_update(secret)
        .chain_update(challenge)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    #[test]
    fn md5_response() {
        // MD5(00 | "" | "") is MD5 of the single byte 0.
        assert_eq!(
            response(0, b"", b""),
            hex!("93b885adfe0da089cdf634904fd59f71")
        );
    }
}
