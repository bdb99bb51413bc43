//! MPPE (RFC 3078) and its key derivation (RFC 3079).
//!
//! [`keys`] turns an MS-CHAP exchange into the start keys and session keys the
//! cipher uses; the per-packet cipher (coherency count, stateful and stateless
//! rekeying) builds on it.

pub mod cipher;
pub mod keys;

pub use cipher::{Decrypted, Decryptor, Encryptor, MppeConfig, MppeError, MppeHeader, Plaintext};
pub use keys::{KeyStrength, SessionKey, StartKeys};
