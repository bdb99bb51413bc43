//! The PPTP control channel (RFC 2637): message codecs, framing, and the control-connection and call state machines.

pub mod message;
pub mod framing;
pub mod call_id;
pub mod control;
pub mod call;
