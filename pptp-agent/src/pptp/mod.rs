//! The PPTP control channel (RFC 2637): message codecs, framing, and the control-connection and call state machines.

pub mod call;
pub mod call_id;
pub mod control;
pub mod framing;
pub mod message;

#[cfg(test)]
mod tests;
