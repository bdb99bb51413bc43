//! MPPE (RFC 3078) and its key derivation (RFC 3079).
