//! The RADIUS wire format (RFC 2865 §3, 2866, 5176): packets, attributes, the
//! Request/Response Authenticators, Message-Authenticator (RFC 3579 §3.2), the
//! User-Password hiding of RFC 2865 §5.2 and the salted key encryption of RFC 2548
//! §2.4.2 (MS-MPPE-Send-Key/Recv-Key).
//!
//! Sans-IO and allocation-light: [`Packet::parse`] takes untrusted bytes and never
//! panics (it checks the length field and every attribute's length before use);
//! [`Packet::encode`] writes a packet signed for its kind. Secrets are byte strings.

use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};

/// RFC 2865 §3: the longest packet.
pub const MAX_LEN: usize = 4096;
/// Code, identifier, length, authenticator.
pub const HEADER_LEN: usize = 20;

/// Packet codes.
pub mod code {
    pub const ACCESS_REQUEST: u8 = 1;
    pub const ACCESS_ACCEPT: u8 = 2;
    pub const ACCESS_REJECT: u8 = 3;
    pub const ACCOUNTING_REQUEST: u8 = 4;
    pub const ACCOUNTING_RESPONSE: u8 = 5;
    pub const ACCESS_CHALLENGE: u8 = 11;
    pub const DISCONNECT_REQUEST: u8 = 40;
    pub const DISCONNECT_ACK: u8 = 41;
    pub const DISCONNECT_NAK: u8 = 42;
    pub const COA_REQUEST: u8 = 43;
    pub const COA_ACK: u8 = 44;
    pub const COA_NAK: u8 = 45;
}

/// Attribute types used here (RFC 2865, 2866, 2869, 5176).
pub mod attr {
    pub const USER_NAME: u8 = 1;
    pub const USER_PASSWORD: u8 = 2;
    pub const CHAP_PASSWORD: u8 = 3;
    pub const NAS_IP_ADDRESS: u8 = 4;
    pub const NAS_PORT: u8 = 5;
    pub const SERVICE_TYPE: u8 = 6;
    pub const FRAMED_PROTOCOL: u8 = 7;
    pub const FRAMED_IP_ADDRESS: u8 = 8;
    pub const FRAMED_ROUTE: u8 = 22;
    pub const REPLY_MESSAGE: u8 = 18;
    pub const CLASS: u8 = 25;
    pub const VENDOR_SPECIFIC: u8 = 26;
    pub const SESSION_TIMEOUT: u8 = 27;
    pub const IDLE_TIMEOUT: u8 = 28;
    pub const CALLING_STATION_ID: u8 = 31;
    pub const NAS_IDENTIFIER: u8 = 32;
    pub const ACCT_STATUS_TYPE: u8 = 40;
    pub const ACCT_DELAY_TIME: u8 = 41;
    pub const ACCT_INPUT_OCTETS: u8 = 42;
    pub const ACCT_OUTPUT_OCTETS: u8 = 43;
    pub const ACCT_SESSION_ID: u8 = 44;
    pub const ACCT_AUTHENTIC: u8 = 45;
    pub const ACCT_SESSION_TIME: u8 = 46;
    pub const ACCT_INPUT_PACKETS: u8 = 47;
    pub const ACCT_OUTPUT_PACKETS: u8 = 48;
    pub const ACCT_TERMINATE_CAUSE: u8 = 49;
    pub const ACCT_INPUT_GIGAWORDS: u8 = 52;
    pub const ACCT_OUTPUT_GIGAWORDS: u8 = 53;
    pub const EVENT_TIMESTAMP: u8 = 55;
    pub const CHAP_CHALLENGE: u8 = 60;
    pub const NAS_PORT_TYPE: u8 = 61;
    pub const ACCT_INTERIM_INTERVAL: u8 = 85;
    pub const MESSAGE_AUTHENTICATOR: u8 = 80;
    pub const FRAMED_POOL: u8 = 88;
    pub const ERROR_CAUSE: u8 = 101;
}

/// Microsoft's vendor-specific attributes (RFC 2548), vendor 311.
pub mod ms {
    pub const VENDOR: u32 = 311;
    pub const CHAP_RESPONSE: u8 = 1;
    pub const CHAP_ERROR: u8 = 2;
    pub const MPPE_ENCRYPTION_POLICY: u8 = 7;
    pub const MPPE_ENCRYPTION_TYPES: u8 = 8;
    pub const CHAP_CHALLENGE: u8 = 11;
    pub const CHAP_MPPE_KEYS: u8 = 12;
    pub const MPPE_SEND_KEY: u8 = 16;
    pub const MPPE_RECV_KEY: u8 = 17;
    pub const CHAP2_RESPONSE: u8 = 25;
    pub const CHAP2_SUCCESS: u8 = 26;
}

/// MikroTik's vendor-specific attributes (FreeRADIUS's `dictionary.mikrotik`),
/// vendor 14988: the ones an operator's RADIUS sends for rates and quotas.
pub mod mikrotik {
    pub const VENDOR: u32 = 14988;
    /// A string in the format of `pptp_common::rate`.
    pub const RATE_LIMIT: u8 = 8;
    /// Octets both ways together, modulo 2^32 ...
    pub const TOTAL_LIMIT: u8 = 17;
    /// ... and the number of times it wrapped.
    pub const TOTAL_LIMIT_GIGAWORDS: u8 = 18;
}

/// Why bytes are not a RADIUS packet (or not one we accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("shorter than its header or its length field")]
    Truncated,
    #[error("length field out of range")]
    BadLength,
    #[error("an attribute's length runs past the packet or is below 2")]
    BadAttribute,
    #[error("authenticator does not match (wrong secret or forged)")]
    BadAuthenticator,
    #[error("Message-Authenticator missing or wrong")]
    BadMessageAuthenticator,
    #[error("more attributes than fit a packet")]
    TooLong,
}

/// A packet: header fields and the attributes in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub code: u8,
    pub id: u8,
    /// Request Authenticator (a random one for Access-Request, filled in by
    /// [`Packet::encode`] for other requests) or Response Authenticator.
    pub authenticator: [u8; 16],
    pub attributes: Vec<(u8, Vec<u8>)>,
}

type HmacMd5 = Hmac<Md5>;

impl Packet {
    /// A packet with no attributes.
    pub fn new(code: u8, id: u8, authenticator: [u8; 16]) -> Self {
        Packet {
            code,
            id,
            authenticator,
            attributes: Vec::new(),
        }
    }

    /// Reads a packet; bytes past its length field are ignored (RFC 2865 §3).
    pub fn parse(bytes: &[u8]) -> Result<Packet, PacketError> {
        if bytes.len() < HEADER_LEN {
            return Err(PacketError::Truncated);
        }
        let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if !(HEADER_LEN..=MAX_LEN).contains(&len) {
            return Err(PacketError::BadLength);
        }
        let bytes = bytes.get(..len).ok_or(PacketError::Truncated)?;
        let mut attributes = Vec::new();
        let mut rest = &bytes[HEADER_LEN..];
        while !rest.is_empty() {
            let [t, l, ..] = *rest else {
                return Err(PacketError::BadAttribute);
            };
            let l = usize::from(l);
            if l < 2 || l > rest.len() {
                return Err(PacketError::BadAttribute);
            }
            attributes.push((t, rest[2..l].to_vec()));
            rest = &rest[l..];
        }
        Ok(Packet {
            code: bytes[0],
            id: bytes[1],
            authenticator: bytes[4..20].try_into().expect("16 bytes"),
            attributes,
        })
    }

    /// Adds an attribute (values longer than 253 bytes are the caller's mistake:
    /// they are cut, which [`Packet::encode`] never has to do for what we send).
    pub fn push(&mut self, kind: u8, value: impl Into<Vec<u8>>) -> &mut Self {
        let mut value = value.into();
        value.truncate(253);
        self.attributes.push((kind, value));
        self
    }

    /// Adds a 32-bit integer (or IPv4 address) attribute.
    pub fn push_u32(&mut self, kind: u8, value: u32) -> &mut Self {
        self.push(kind, value.to_be_bytes())
    }

    /// Adds a vendor-specific attribute with one sub-attribute.
    pub fn push_vendor(&mut self, vendor: u32, kind: u8, value: &[u8]) -> &mut Self {
        let mut v = vendor.to_be_bytes().to_vec();
        v.push(kind);
        v.push((value.len() + 2).min(255) as u8);
        v.extend_from_slice(&value[..value.len().min(247)]);
        self.push(attr::VENDOR_SPECIFIC, v)
    }

    /// The first attribute of `kind`.
    pub fn get(&self, kind: u8) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(t, _)| *t == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// Every attribute of `kind`.
    pub fn all(&self, kind: u8) -> impl Iterator<Item = &[u8]> {
        self.attributes
            .iter()
            .filter(move |(t, _)| *t == kind)
            .map(|(_, v)| v.as_slice())
    }

    /// The first 32-bit attribute of `kind`.
    pub fn get_u32(&self, kind: u8) -> Option<u32> {
        self.get(kind)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
    }

    /// The first vendor sub-attribute `vendor`/`kind` (each Vendor-Specific may
    /// hold several, RFC 2865 §5.26).
    pub fn vendor(&self, vendor: u32, kind: u8) -> Option<&[u8]> {
        self.all(attr::VENDOR_SPECIFIC).find_map(|v| {
            let (id, mut subs) = (v.get(..4)?, v.get(4..)?);
            if u32::from_be_bytes(id.try_into().ok()?) != vendor {
                return None;
            }
            while let [t, l, ..] = *subs {
                let l = usize::from(l);
                if l < 2 || l > subs.len() {
                    return None;
                }
                if t == kind {
                    return Some(&subs[2..l]);
                }
                subs = &subs[l..];
            }
            None
        })
    }

    /// The wire bytes, signed as a packet of this code: an Access-Request keeps its
    /// random authenticator and gets a Message-Authenticator; Accounting, Disconnect
    /// and CoA requests get the Request Authenticator of RFC 2866 §3 / RFC 5176 §3.5;
    /// responses (`request` = the authenticator of the request they answer) get the
    /// Response Authenticator, with a Message-Authenticator when they carry one.
    pub fn encode(
        &self,
        secret: &[u8],
        request: Option<&[u8; 16]>,
    ) -> Result<Vec<u8>, PacketError> {
        let mut attributes = self.attributes.clone();
        let has_ma = attributes
            .iter()
            .any(|(t, _)| *t == attr::MESSAGE_AUTHENTICATOR);
        if self.code == code::ACCESS_REQUEST && !has_ma {
            attributes.push((attr::MESSAGE_AUTHENTICATOR, vec![0; 16]));
        }
        let mut out = vec![self.code, self.id, 0, 0];
        out.extend_from_slice(&self.authenticator);
        let mut ma_at = None;
        for (t, v) in &attributes {
            if *t == attr::MESSAGE_AUTHENTICATOR {
                ma_at = Some(out.len() + 2);
                out.extend_from_slice(&[*t, 18]);
                out.extend_from_slice(&[0; 16]);
                continue;
            }
            out.push(*t);
            out.push(u8::try_from(v.len() + 2).map_err(|_| PacketError::TooLong)?);
            out.extend_from_slice(v);
        }
        if out.len() > MAX_LEN {
            return Err(PacketError::TooLong);
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        // The authenticator field while the Message-Authenticator is computed.
        let field: [u8; 16] = match (self.code, request) {
            (code::ACCESS_REQUEST, _) => self.authenticator,
            (_, Some(r)) => *r,
            (_, None) => [0; 16],
        };
        out[4..20].copy_from_slice(&field);
        if let Some(at) = ma_at {
            let mac = hmac_md5(secret, &out);
            out[at..at + 16].copy_from_slice(&mac);
        }
        if self.code != code::ACCESS_REQUEST {
            let auth = md5_of(&[&out, secret]);
            out[4..20].copy_from_slice(&auth);
        }
        Ok(out)
    }

    /// Checks a response (`bytes` as received) against the authenticator of the
    /// request it answers: the Response Authenticator, and the Message-Authenticator
    /// when present (required when `require_ma`).
    pub fn verify_response(
        bytes: &[u8],
        request: &[u8; 16],
        secret: &[u8],
        require_ma: bool,
    ) -> Result<Packet, PacketError> {
        let packet = Packet::parse(bytes)?;
        let bytes = &bytes[..usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))];
        let mut copy = bytes.to_vec();
        copy[4..20].copy_from_slice(request);
        if !crate::ppp::auth::crypto::ct_eq(&md5_of(&[&copy, secret]), &packet.authenticator) {
            return Err(PacketError::BadAuthenticator);
        }
        check_message_authenticator(&mut copy, secret, require_ma)?;
        Ok(packet)
    }

    /// Checks a request that carries a computed Request Authenticator (Accounting,
    /// Disconnect, CoA): the authenticator, and the Message-Authenticator when
    /// present (required when `require_ma`).
    pub fn verify_request(
        bytes: &[u8],
        secret: &[u8],
        require_ma: bool,
    ) -> Result<Packet, PacketError> {
        let packet = Packet::parse(bytes)?;
        let bytes = &bytes[..usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))];
        let mut copy = bytes.to_vec();
        copy[4..20].fill(0);
        if !crate::ppp::auth::crypto::ct_eq(&md5_of(&[&copy, secret]), &packet.authenticator) {
            return Err(PacketError::BadAuthenticator);
        }
        check_message_authenticator(&mut copy, secret, require_ma)?;
        Ok(packet)
    }
}

/// `bytes` with its authenticator field already set as the Message-Authenticator
/// is computed over.
fn check_message_authenticator(
    bytes: &mut [u8],
    secret: &[u8],
    required: bool,
) -> Result<(), PacketError> {
    let mut at = HEADER_LEN;
    let mut found = None;
    while at + 2 <= bytes.len() {
        let l = usize::from(bytes[at + 1]);
        if bytes[at] == attr::MESSAGE_AUTHENTICATOR && l == 18 && at + l <= bytes.len() {
            found = Some(at + 2);
            break;
        }
        at += l.max(2);
    }
    let Some(at) = found else {
        return if required {
            Err(PacketError::BadMessageAuthenticator)
        } else {
            Ok(())
        };
    };
    let received: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
    bytes[at..at + 16].fill(0);
    if crate::ppp::auth::crypto::ct_eq(&hmac_md5(secret, bytes), &received) {
        Ok(())
    } else {
        Err(PacketError::BadMessageAuthenticator)
    }
}

fn md5_of(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = HmacMd5::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// User-Password hiding (RFC 2865 §5.2): the password padded with zeros to a
/// multiple of 16 (at most 128 bytes) and XORed with an MD5 chain over the secret
/// and the Request Authenticator.
pub fn hide_password(password: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Vec<u8> {
    let mut p = password[..password.len().min(128)].to_vec();
    let padded = p.len().div_ceil(16).max(1) * 16;
    p.resize(padded, 0);
    xor_chain(&mut p, secret, &[authenticator], false);
    p
}

/// RFC 2865 §5.2 hiding undone (also RFC 2548 §2.4.1 MS-CHAP-MPPE-Keys): the padded
/// plaintext.
pub fn unhide(hidden: &[u8], secret: &[u8], authenticator: &[u8; 16]) -> Option<Vec<u8>> {
    if hidden.is_empty() || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut p = hidden.to_vec();
    xor_chain(&mut p, secret, &[authenticator], true);
    Some(p)
}

/// RFC 2548 §2.4.2 (MS-MPPE-Send-Key/Recv-Key): a two-byte salt with its high bit
/// set, then the key length byte, the key and padding, hidden with an MD5 chain over
/// the secret, the Request Authenticator and the salt. Returns the key.
pub fn decrypt_salted_key(
    value: &[u8],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Option<Vec<u8>> {
    let (salt, hidden) = (value.get(..2)?, value.get(2..)?);
    if salt[0] & 0x80 == 0 || hidden.is_empty() || !hidden.len().is_multiple_of(16) {
        return None;
    }
    let mut p = hidden.to_vec();
    xor_chain(&mut p, secret, &[authenticator, salt], true);
    let len = usize::from(p[0]);
    p.get(1..1 + len).map(<[u8]>::to_vec)
}

/// The encryption of [`decrypt_salted_key`] (what a RADIUS server does; used by tests
/// and by nothing on the wire here).
pub fn encrypt_salted_key(
    key: &[u8],
    salt: [u8; 2],
    secret: &[u8],
    authenticator: &[u8; 16],
) -> Vec<u8> {
    let mut p = vec![key.len() as u8];
    p.extend_from_slice(key);
    p.resize(p.len().div_ceil(16) * 16, 0);
    xor_chain(&mut p, secret, &[authenticator, &salt], false);
    let mut out = salt.to_vec();
    out.extend_from_slice(&p);
    out
}

/// b(1) = MD5(S + first), c(i) = p(i) xor b(i), b(i+1) = MD5(S + c(i)); in place,
/// forwards (`decrypt` false) or backwards.
fn xor_chain(data: &mut [u8], secret: &[u8], first: &[&[u8]], decrypt: bool) {
    let mut prev: Vec<u8> = first.concat();
    for block in data.chunks_mut(16) {
        let b = md5_of(&[secret, &prev]);
        let cipher = if decrypt { block.to_vec() } else { Vec::new() };
        for (x, k) in block.iter_mut().zip(b) {
            *x ^= k;
        }
        prev = if decrypt { cipher } else { block.to_vec() };
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    /// RFC 2865 §7.1: the Access-Request for "nemo" with password "arctangent" and
    /// secret "xyzzy5461", and its Access-Accept.
    const RFC_REQUEST: [u8; 56] = hex!(
        "01 00 0038 0f403f9473978057bd83d5cb98f4227a"
        "01 06 6e656d6f"
        "02 12 0dbe708d93d413ce3196e43f782a0aee"
        "04 06 c0a80110"
        "05 06 00000003"
    );
    const RFC_ACCEPT: [u8; 38] = hex!(
        "02 00 0026 86fe220e7624ba2a1005f6bf9b55e0b2"
        "06 06 00000001"
        "0f 06 00000000"
        "0e 06 c0a80103"
    );

    #[test]
    fn rfc2865_example_password_and_response_authenticator() {
        let request = Packet::parse(&RFC_REQUEST).unwrap();
        let auth = request.authenticator;
        assert_eq!(request.get(attr::USER_NAME), Some(&b"nemo"[..]));
        assert_eq!(
            hide_password(b"arctangent", b"xyzzy5461", &auth),
            request.get(attr::USER_PASSWORD).unwrap()
        );
        let plain = unhide(
            request.get(attr::USER_PASSWORD).unwrap(),
            b"xyzzy5461",
            &auth,
        )
        .unwrap();
        assert_eq!(&plain[..10], b"arctangent");
        assert!(plain[10..].iter().all(|&b| b == 0));
        // The response verifies with the right secret only.
        let accept = Packet::verify_response(&RFC_ACCEPT, &auth, b"xyzzy5461", false).unwrap();
        assert_eq!(accept.code, code::ACCESS_ACCEPT);
        assert_eq!(accept.get_u32(attr::SERVICE_TYPE), Some(1));
        assert_eq!(
            Packet::verify_response(&RFC_ACCEPT, &auth, b"wrong", false),
            Err(PacketError::BadAuthenticator)
        );
        assert_eq!(
            Packet::verify_response(&RFC_ACCEPT, &auth, b"xyzzy5461", true),
            Err(PacketError::BadMessageAuthenticator),
            "no Message-Authenticator where one is required"
        );
        // Encoding the parsed response again yields the RFC's bytes.
        assert_eq!(
            accept.encode(b"xyzzy5461", Some(&auth)).unwrap(),
            RFC_ACCEPT
        );
    }

    #[test]
    fn requests_and_responses_verify_after_encoding_and_fail_when_altered() {
        let mut req = Packet::new(code::DISCONNECT_REQUEST, 7, [0; 16]);
        req.push(attr::USER_NAME, "alice")
            .push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        let bytes = req.encode(b"s3cret", None).unwrap();
        let parsed = Packet::verify_request(&bytes, b"s3cret", true).unwrap();
        assert_eq!(parsed.get(attr::USER_NAME), Some(&b"alice"[..]));
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(Packet::verify_request(&bad, b"s3cret", false).is_err());
        assert!(Packet::verify_request(&bytes, b"other", false).is_err());

        let mut ack = Packet::new(code::DISCONNECT_ACK, 7, [0; 16]);
        ack.push(attr::MESSAGE_AUTHENTICATOR, vec![0; 16]);
        let out = ack.encode(b"s3cret", Some(&parsed.authenticator)).unwrap();
        Packet::verify_response(&out, &parsed.authenticator, b"s3cret", true).unwrap();

        // An Access-Request always carries a Message-Authenticator, checked like a
        // response's (over the request's own authenticator).
        let mut access = Packet::new(code::ACCESS_REQUEST, 1, [9; 16]);
        access.push(attr::USER_NAME, "bob");
        let out = access.encode(b"k", None).unwrap();
        let mut copy = out.clone();
        check_message_authenticator(&mut copy, b"k", true).unwrap();
        assert_eq!(&out[4..20], &[9; 16]);
    }

    #[test]
    fn salted_keys_round_trip_and_vendor_attributes_are_found() {
        let auth = hex!("0123456789abcdef0123456789abcdef");
        let key = hex!("00112233445566778899aabbccddeeff");
        let enc = encrypt_salted_key(&key, [0x80, 0x01], b"secret", &auth);
        assert_eq!(enc.len(), 2 + 32);
        assert_eq!(decrypt_salted_key(&enc, b"secret", &auth).unwrap(), key);
        assert_ne!(
            decrypt_salted_key(&enc, b"other", &auth).as_deref(),
            Some(&key[..])
        );
        assert_eq!(decrypt_salted_key(&enc[..10], b"secret", &auth), None);
        let mut no_high_bit = enc.clone();
        no_high_bit[0] = 0x01;
        assert_eq!(decrypt_salted_key(&no_high_bit, b"secret", &auth), None);

        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_vendor(9, 1, b"cisco");
        p.push_vendor(ms::VENDOR, ms::MPPE_SEND_KEY, &enc);
        assert_eq!(p.vendor(ms::VENDOR, ms::MPPE_SEND_KEY), Some(&enc[..]));
        assert_eq!(p.vendor(ms::VENDOR, ms::MPPE_RECV_KEY), None);
        let bytes = p.encode(b"s", Some(&[0; 16])).unwrap();
        assert_eq!(Packet::parse(&bytes).unwrap().attributes, p.attributes);
    }

    #[test]
    fn hostile_lengths_are_errors() {
        assert_eq!(Packet::parse(&[1, 0, 0]), Err(PacketError::Truncated));
        let mut p = RFC_REQUEST.to_vec();
        p[3] = 19;
        assert_eq!(Packet::parse(&p), Err(PacketError::BadLength));
        p[3] = 60;
        assert_eq!(Packet::parse(&p), Err(PacketError::Truncated));
        let mut p = RFC_REQUEST.to_vec();
        p[21] = 1; // User-Name length 1
        assert_eq!(Packet::parse(&p), Err(PacketError::BadAttribute));
        let mut p = RFC_REQUEST.to_vec();
        p[51] = 9; // NAS-Port runs past the end
        assert_eq!(Packet::parse(&p), Err(PacketError::BadAttribute));
        // Bytes past the length field are ignored.
        let mut p = RFC_REQUEST.to_vec();
        p.extend_from_slice(&[0xff; 7]);
        assert_eq!(Packet::parse(&p).unwrap().attributes.len(), 4);
    }
}
