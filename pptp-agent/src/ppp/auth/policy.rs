//! What authentication is allowed, and where secrets come from.
//!
//! A [`Policy`] is an ordered list of methods: the authenticator proposes the first
//! and falls back along the list when the peer Naks; the peer accepts only methods
//! on its list and Naks the others with its favourite (which is how a client "picks
//! a method by refusing the others"). An empty list means no authentication.
//! Secrets come through [`SecretSource`], implemented later by the chap-secrets file
//! and RADIUS.

use crate::ppp::frame::protocol;

/// An authentication method and its LCP Authentication-Protocol encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// PAP (RFC 1334): password in clear.
    Pap,
    /// CHAP with MD5 (RFC 1994).
    ChapMd5,
    /// MS-CHAP version 1 (RFC 2433).
    MsChapV1,
    /// MS-CHAP version 2 (RFC 2759).
    MsChapV2,
}

impl Method {
    /// The Authentication-Protocol option data (protocol, then CHAP algorithm).
    pub fn option_data(self) -> Vec<u8> {
        match self {
            Method::Pap => protocol::PAP.to_be_bytes().to_vec(),
            Method::ChapMd5 => [0xc2, 0x23, 0x05].to_vec(),
            Method::MsChapV1 => [0xc2, 0x23, 0x80].to_vec(),
            Method::MsChapV2 => [0xc2, 0x23, 0x81].to_vec(),
        }
    }

    /// Decodes Authentication-Protocol option data.
    pub fn from_option_data(data: &[u8]) -> Option<Method> {
        match data {
            [0xc0, 0x23] => Some(Method::Pap),
            [0xc2, 0x23, 0x05] => Some(Method::ChapMd5),
            [0xc2, 0x23, 0x80] => Some(Method::MsChapV1),
            [0xc2, 0x23, 0x81] => Some(Method::MsChapV2),
            _ => None,
        }
    }

    /// Whether the method yields MPPE keys (RFC 3079).
    pub fn has_mppe_keys(self) -> bool {
        matches!(self, Method::MsChapV1 | Method::MsChapV2)
    }

    /// The PPP protocol carrying this method.
    pub fn protocol(self) -> u16 {
        match self {
            Method::Pap => protocol::PAP,
            _ => protocol::CHAP,
        }
    }
}

/// Allowed methods, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// The methods, in order of preference; empty means no authentication.
    pub methods: Vec<Method>,
}

impl Policy {
    /// A policy allowing exactly these methods in this order.
    pub fn new(methods: &[Method]) -> Self {
        Policy {
            methods: methods.to_vec(),
        }
    }

    /// Whether `method` is allowed.
    pub fn allows(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }
}

/// A user's secret as the store holds it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself (works with every method).
    Password(Vec<u8>),
    /// Only the NT hash (MD4 of UTF-16LE password): MS-CHAP and PAP only.
    NtHash([u8; 16]),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// The NT password hash of this secret.
    pub fn nt_hash(&self) -> [u8; 16] {
        match self {
            Secret::Password(p) => super::crypto::nt_password_hash(p),
            Secret::NtHash(h) => *h,
        }
    }
}

/// Where the authenticator looks up a user's secret.
pub trait SecretSource {
    /// The secret of `user` (the name the peer sent), or `None` if unknown.
    fn secret(&self, user: &[u8]) -> Option<Secret>;
}

/// The peer's own name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name sent to the authenticator.
    pub user: Vec<u8>,
    /// Password.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_data_round_trips() {
        for m in [
            Method::Pap,
            Method::ChapMd5,
            Method::MsChapV1,
            Method::MsChapV2,
        ] {
            assert_eq!(Method::from_option_data(&m.option_data()), Some(m));
        }
        assert_eq!(Method::from_option_data(&[0xc2, 0x27]), None);
    }
}
