//! MPPE key derivation (RFC 3079, RFC 3078 §7): the start ("master session") keys
//! from an MS-CHAPv2 or MS-CHAPv1 exchange, the initial session key, the rekeying
//! step, and the 40/56-bit weakening.
//!
//! The cipher (RC4 per packet, coherency counts, stateful/stateless rekeying
//! schedule) is not here; it only needs [`initial_session_key`] and [`rekey`].
//! Linux's ppp_mppe, which the reference captures come from, uses the initial key
//! as is and rekeys before every packet in stateless mode; RFC 3079 §3.5.3's vector
//! matches the initial key.

use rc4::{KeyInit, StreamCipher, consts::U8, consts::U16};
use sha1::{Digest, Sha1};

/// The encryption strengths of RFC 3078.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyStrength {
    /// 40-bit (8-byte key, first 3 bytes fixed to D1 26 9E).
    Bits40,
    /// 56-bit (8-byte key, first byte fixed to D1).
    Bits56,
    /// 128-bit (16-byte key).
    Bits128,
}

impl KeyStrength {
    /// The RC4 key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            KeyStrength::Bits40 | KeyStrength::Bits56 => 8,
            KeyStrength::Bits128 => 16,
        }
    }

    /// Overwrites the fixed bytes of a 40- or 56-bit key (RFC 3079 §3.3).
    pub fn weaken(self, key: &mut [u8]) {
        let fixed: &[u8] = match self {
            KeyStrength::Bits40 => &[0xd1, 0x26, 0x9e],
            KeyStrength::Bits56 => &[0xd1],
            KeyStrength::Bits128 => &[],
        };
        key[..fixed.len()].copy_from_slice(fixed);
    }
}

/// An RC4 session key of 8 or 16 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    bytes: [u8; 16],
    len: usize,
}

impl SessionKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

/// The two start keys of one link end, as seen from that end.
#[derive(Clone, PartialEq, Eq)]
pub struct StartKeys {
    /// MasterSendKey: start key for what this end sends.
    pub send: [u8; 16],
    /// MasterReceiveKey: start key for what this end receives.
    pub recv: [u8; 16],
}

impl std::fmt::Debug for StartKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartKeys(..)")
    }
}

const SHS_PAD1: [u8; 40] = [0; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];
const MAGIC_MASTER: &[u8] = b"This is the MPPE Master Key";
const MAGIC_CLIENT_SEND: &[u8] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
const MAGIC_CLIENT_RECV: &[u8] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

/// GetMasterKey (RFC 3079 §3.4).
pub fn master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(nt_response)
        .chain_update(MAGIC_MASTER)
        .finalize();
    digest[..16].try_into().expect("16 bytes")
}

/// GetAsymmetricStartKey (RFC 3079 §3.4), full 16 bytes (40/56-bit use the first 8).
pub fn asymmetric_start_key(master: &[u8; 16], is_send: bool, is_server: bool) -> [u8; 16] {
    let magic = if is_send == is_server {
        MAGIC_CLIENT_RECV
    } else {
        MAGIC_CLIENT_SEND
    };
    let digest = Sha1::new()
        .chain_update(master)
        .chain_update(SHS_PAD1)
        .chain_update(magic)
        .chain_update(SHS_PAD2)
        .finalize();
    digest[..16].try_into().expect("16 bytes")
}

/// Start keys from an MS-CHAPv2 exchange (RFC 3079 §3).
pub fn mschapv2_start_keys(
    password_hash_hash: &[u8; 16],
    nt_response: &[u8; 24],
    is_server: bool,
) -> StartKeys {
    let master = master_key(password_hash_hash, nt_response);
    StartKeys {
        send: asymmetric_start_key(&master, true, is_server),
        recv: asymmetric_start_key(&master, false, is_server),
    }
}

/// Start key from an MS-CHAPv1 exchange, 128-bit (RFC 3079 §2.4 GetStartKey): the
/// same in both directions. (40/56-bit MS-CHAPv1 keys need the LAN Manager hash,
/// which this engine, like Linux pppd, does not use.)
pub fn mschapv1_start_keys(password_hash_hash: &[u8; 16], challenge: &[u8; 8]) -> StartKeys {
    let digest = Sha1::new()
        .chain_update(password_hash_hash)
        .chain_update(password_hash_hash)
        .chain_update(challenge)
        .finalize();
    let key: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    StartKeys {
        send: key,
        recv: key,
    }
}

/// GetNewKeyFromSHA (RFC 3079 §3.3) over the first `key_len` bytes of each key.
pub fn new_key_from_sha(start: &[u8], session: &[u8], key_len: usize) -> SessionKey {
    let digest = Sha1::new()
        .chain_update(&start[..key_len])
        .chain_update(SHS_PAD1)
        .chain_update(&session[..key_len])
        .chain_update(SHS_PAD2)
        .finalize();
    let mut bytes = [0u8; 16];
    bytes[..key_len].copy_from_slice(&digest[..key_len]);
    SessionKey {
        bytes,
        len: key_len,
    }
}

/// The first session key: GetNewKeyFromSHA(start, start), weakened for 40/56-bit.
pub fn initial_session_key(start: &[u8; 16], strength: KeyStrength) -> SessionKey {
    let mut key = new_key_from_sha(start, start, strength.key_len());
    strength.weaken(&mut key.bytes[..key.len]);
    key
}

/// One key change (RFC 3078 §7.3): interim = GetNewKeyFromSHA(start, current), the
/// new key is interim RC4-encrypted with itself, then weakened.
pub fn rekey(start: &[u8; 16], current: &SessionKey, strength: KeyStrength) -> SessionKey {
    let mut key = new_key_from_sha(start, current.as_bytes(), strength.key_len());
    let interim = key.clone();
    rc4_apply(interim.as_bytes(), &mut key.bytes[..key.len]);
    strength.weaken(&mut key.bytes[..key.len]);
    key
}

/// RC4-encrypts (or decrypts) `data` in place with a fresh 8- or 16-byte key.
pub fn rc4_apply(key: &[u8], data: &mut [u8]) {
    match key.len() {
        8 => rc4::Rc4::<U8>::new_from_slice(key)
            .expect("8-byte key")
            .apply_keystream(data),
        16 => rc4::Rc4::<U16>::new_from_slice(key)
            .expect("16-byte key")
            .apply_keystream(data),
        n => unreachable!("MPPE keys are 8 or 16 bytes, not {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppp::auth::crypto;
    use hex_literal::hex;

    const NT_RESPONSE: [u8; 24] = hex!("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF");

    fn hash_hash() -> [u8; 16] {
        crypto::hash_nt_password_hash(&crypto::nt_password_hash(b"clientPass"))
    }

    #[test]
    fn rfc3079_vectors() {
        let master = master_key(&hash_hash(), &NT_RESPONSE);
        assert_eq!(master, hex!("FDECE3717A8C838CB388E527AE3CDD31"));
        let server = mschapv2_start_keys(&hash_hash(), &NT_RESPONSE, true);
        let client = mschapv2_start_keys(&hash_hash(), &NT_RESPONSE, false);
        assert_eq!(server.send, hex!("8B7CDC149B993A1BA118CB153F56DCCB"));
        assert_eq!(server.recv, hex!("D5F0E9521E3EA9589645E86051C82226"));
        assert_eq!((client.send, client.recv), (server.recv, server.send));
        let session = initial_session_key(&server.send, KeyStrength::Bits128);
        assert_eq!(session.as_bytes(), hex!("405CB2247A7956E6E211007AE27B22D4"));
        let mut msg = *b"test message";
        rc4_apply(session.as_bytes(), &mut msg);
        assert_eq!(msg, hex!("81848317DF68846272FB5ABE"));
    }

    #[test]
    fn capture_vector_mschapv2_128() {
        // tests/vectors/captures/README.md, mschapv2-mppe128.pcap worked vector.
        let hh = hex!("b24e2ddbd637ba4869bff58adeccd849");
        let nt = hex!("68a6d83aee8f160d7f477f9f00040a3b7384c66de9d35614");
        assert_eq!(
            master_key(&hh, &nt),
            hex!("7f5f9413b2715069d02b1277233d3440")
        );
        let client = mschapv2_start_keys(&hh, &nt, false);
        assert_eq!(client.send, hex!("88376151ceff5d41f7833d33c8497299"));
        assert_eq!(client.recv, hex!("86fbc7ef67c2ebefa1b0c31ab03969b8"));
        let initial = initial_session_key(&client.send, KeyStrength::Bits128);
        assert_eq!(initial.as_bytes(), hex!("6c1ca10ed88eb09534c3b68e9c096795"));
        let k0 = rekey(&client.send, &initial, KeyStrength::Bits128);
        assert_eq!(k0.as_bytes(), hex!("42abd9d31230d6e4984b06ed5de8b651"));
        let initial = initial_session_key(&client.recv, KeyStrength::Bits128);
        assert_eq!(initial.as_bytes(), hex!("092b2b7e60bb823e7c92fd50c2b962b1"));
        let k0 = rekey(&client.recv, &initial, KeyStrength::Bits128);
        assert_eq!(k0.as_bytes(), hex!("9abb7269489862b829131e6274018ce3"));
    }

    /// RFC 3079 §3.5.1 and §3.5.2: the 40- and 56-bit initial session keys from
    /// the same start key as §3.5.3 (of which they use the first 8 bytes).
    #[test]
    fn weak_keys_match_rfc_3079() {
        let start = hex!("8B7CDC149B993A1BA118CB153F56DCCB");
        let k40 = initial_session_key(&start, KeyStrength::Bits40);
        assert_eq!(k40.as_bytes(), hex!("D1269EC49FA62E3E"), "SendSessionKey40");
        let k56 = initial_session_key(&start, KeyStrength::Bits56);
        assert_eq!(k56.as_bytes(), hex!("D15C00C49FA62E3E"), "SendSessionKey56");
    }
}
