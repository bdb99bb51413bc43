//! The MS-CHAP computations shared by version 1 (RFC 2433) and version 2 (RFC 2759):
//! the NT password hash, DES challenge-response, and the v2 challenge hash and
//! authenticator response. Primitives come from RustCrypto (md4, des, sha1).

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use md4::{Digest, Md4};
use sha1::Sha1;

/// NtPasswordHash (RFC 2759 §8.3): MD4 of the password in UTF-16LE. The password is
/// taken as UTF-8; bytes that are not UTF-8 are widened one by one (Latin-1).
pub fn nt_password_hash(password: &[u8]) -> [u8; 16] {
    let mut unicode = Vec::with_capacity(password.len() * 2);
    match std::str::from_utf8(password) {
        Ok(s) => s
            .encode_utf16()
            .for_each(|u| unicode.extend_from_slice(&u.to_le_bytes())),
        Err(_) => password
            .iter()
            .for_each(|&b| unicode.extend_from_slice(&[b, 0])),
    }
    Md4::digest(&unicode).into()
}

/// HashNtPasswordHash (RFC 2759 §8.4): MD4 of the NT hash.
pub fn hash_nt_password_hash(hash: &[u8; 16]) -> [u8; 16] {
    Md4::digest(hash).into()
}

/// ChallengeResponse (RFC 2759 §8.5): the 8-byte challenge DES-encrypted under three
/// 7-byte keys cut from the zero-padded 21-byte hash.
pub fn challenge_response(challenge: &[u8; 8], hash: &[u8; 16]) -> [u8; 24] {
    let mut z = [0u8; 21];
    z[..16].copy_from_slice(hash);
    let mut out = [0u8; 24];
    for (i, chunk) in out.chunks_exact_mut(8).enumerate() {
        let key: [u8; 7] = z[i * 7..i * 7 + 7].try_into().expect("7 bytes");
        chunk.copy_from_slice(&des_encrypt(&key, challenge));
    }
    out
}

/// DesEncrypt (RFC 2759 §8.6): spreads 56 key bits over 8 bytes (parity bits unused).
fn des_encrypt(key7: &[u8; 7], clear: &[u8; 8]) -> [u8; 8] {
    let bits = key7.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut key = [0u8; 8];
    for (i, k) in key.iter_mut().enumerate() {
        *k = (((bits >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    let cipher = Des::new_from_slice(&key).expect("8-byte DES key");
    let mut block = GenericArray::clone_from_slice(clear);
    cipher.encrypt_block(&mut block);
    block.into()
}

/// The user name as MS-CHAPv2 hashes it: any "DOMAIN\" prefix removed (RFC 2759 §8.2).
pub fn strip_domain(user: &[u8]) -> &[u8] {
    match user.iter().rposition(|&b| b == b'\\') {
        Some(i) => &user[i + 1..],
        None => user,
    }
}

/// ChallengeHash (RFC 2759 §8.2).
pub fn challenge_hash(
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 8] {
    let digest = Sha1::new()
        .chain_update(peer_challenge)
        .chain_update(auth_challenge)
        .chain_update(strip_domain(user))
        .finalize();
    digest[..8].try_into().expect("8 bytes")
}

/// GenerateNTResponse (RFC 2759 §8.1).
pub fn generate_nt_response(
    auth_challenge: &[u8; 16],
    peer_challenge: &[u8; 16],
    user: &[u8],
    password_hash: &[u8; 16],
) -> [u8; 24] {
    let challenge = challenge_hash(peer_challenge, auth_challenge, user);
    challenge_response(&challenge, password_hash)
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7): the 20 bytes behind "S=".
pub fn generate_authenticator_response(
    password_hash: &[u8; 16],
    nt_response: &[u8; 24],
    peer_challenge: &[u8; 16],
    auth_challenge: &[u8; 16],
    user: &[u8],
) -> [u8; 20] {
    const MAGIC1: &[u8] = b"Magic server to client signing constant";
    const MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
    let hash_hash = hash_nt_password_hash(password_hash);
    let digest = Sha1::new()
        .chain_update(hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC1)
        .finalize();
    let challenge = challenge_hash(peer_challenge, auth_challenge, user);
    Sha1::new()
        .chain_update(digest)
        .chain_update(challenge)
        .chain_update(MAGIC2)
        .finalize()
        .into()
}

/// "S=" followed by 40 uppercase hex digits (RFC 2759 §5).
pub fn authenticator_response_string(response: &[u8; 20]) -> String {
    format!("S={}", hex_upper(response))
}

/// Uppercase hex of `bytes`.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Constant-time equality for secrets of the same length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    // RFC 2759 §9.2, as recorded in tests/vectors/README.md.
    const AUTH_CHALLENGE: [u8; 16] = hex!("5B5D7C7D7B3F2F3E3C2C602132262628");
    const PEER_CHALLENGE: [u8; 16] = hex!("21402324255E262A28295F2B3A337C7E");

    #[test]
    fn rfc2759_vectors() {
        let hash = nt_password_hash(b"clientPass");
        assert_eq!(hash, hex!("44EBBA8D5312B8D611474411F56989AE"));
        assert_eq!(
            hash_nt_password_hash(&hash),
            hex!("41C00C584BD2D91C4017A2A12FA59F3F")
        );
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTH_CHALLENGE, b"User"),
            hex!("D02E4386BCE91226")
        );
        let nt = generate_nt_response(&AUTH_CHALLENGE, &PEER_CHALLENGE, b"User", &hash);
        assert_eq!(nt, hex!("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"));
        let auth =
            generate_authenticator_response(&hash, &nt, &PEER_CHALLENGE, &AUTH_CHALLENGE, b"User");
        assert_eq!(
            authenticator_response_string(&auth),
            "S=407A5589115FD0D6209F510FE9C04566932CDA56"
        );
    }

    #[test]
    fn domain_is_not_hashed() {
        assert_eq!(strip_domain(b"CORP\\User"), b"User");
        assert_eq!(
            challenge_hash(&PEER_CHALLENGE, &AUTH_CHALLENGE, b"CORP\\User"),
            hex!("D02E4386BCE91226")
        );
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
