//! The PPTP control channel (RFC 2637): message codecs, framing, and the control-connection and call state machines.
//!
//! Layers, bottom up (GRE, the data channel, is [`crate::gre`]):
//! - [`message`]: the fifteen control messages, strict parse and byte-exact emit.
//! - [`framing`]: cuts the TCP stream into messages; garbage ends the stream.
//! - [`call_id`]: local Call ID allocation, never reusing a live ID.
//! - [`event`]: what a control connection and its calls report, are set up with and
//!   count.
//! - [`call`]: the call machines in all four positions, owned by the control connection.
//! - [`control`]: the control connection (both sides, keepalive, handshake and stop),
//!   a sans-IO machine: bytes and time in, bytes, events and deadlines out.
//! - [`shell`]: the thin tokio driver over a `TcpStream`.

pub mod call;
pub mod call_id;
pub mod control;
pub mod event;
pub mod framing;
pub mod message;
pub mod shell;

#[cfg(test)]
mod tests;
