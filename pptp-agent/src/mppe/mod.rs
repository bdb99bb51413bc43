//! MPPE (RFC 3078) and its key derivation (RFC 3079).
//!
//! [`keys`] turns an MS-CHAP exchange into the start keys and session keys the
//! cipher uses; [`cipher`] is the per-packet cipher built on it (coherency count,
//! A/D bits, stateful and stateless rekeying, loss handling): one [`Encryptor`]
//! and one [`Decryptor`] per link, working in place without allocating.

pub mod cipher;
pub mod keys;

pub use cipher::{Decrypted, Decryptor, Encryptor, MppeConfig, MppeError, MppeHeader, Plaintext};
pub use keys::{KeyStrength, SessionKey, StartKeys};
