//! Shared by the tests that play a peer our client would never be (one that
//! floods, never reads, or carries many calls): a raw PPTP control connection.
//! Messages come from the agent's own codec (`pptp_agent::pptp::message`);
//! blocking I/O, so run it in a namespace thread (`pptp_tests::netns::run_in`),
//! every read bounded by a timeout.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddrV4, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use pptp_agent::pptp::{
    framing::{Deframer, Frame},
    message::*,
};

/// One control connection, as its peer.
pub struct RawControl {
    stream: TcpStream,
    deframer: Deframer,
}

/// A Start-Control-Connection-Request naming `host`.
pub fn start_request(host: &str) -> StartControlConnectionRequest {
    StartControlConnectionRequest {
        protocol_version: PROTOCOL_VERSION,
        reserved1: Reserved16,
        framing_capabilities: FramingCaps::ALL,
        bearer_capabilities: BearerCaps::ALL,
        maximum_channels: 0xffff,
        firmware_revision: 1,
        host_name: Text::new(host),
        vendor_name: Text::new("pptp-tests"),
    }
}

impl RawControl {
    /// Connects to `server` (within 5 s).
    pub fn connect(server: SocketAddrV4) -> anyhow::Result<Self> {
        let stream = TcpStream::connect_timeout(&server.into(), Duration::from_secs(5))
            .with_context(|| format!("connecting to {server}"))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Self {
            stream,
            deframer: Deframer::new(),
        })
    }

    /// Sends one message.
    pub fn send(&mut self, message: impl Into<Message>) -> anyhow::Result<()> {
        self.stream
            .write_all(&message.into().to_bytes())
            .context("sending a control message")
    }

    /// The next message, or `None` if none arrives within `timeout`; an error if the
    /// connection ends or sends something unreadable.
    pub fn recv(&mut self, timeout: Duration) -> anyhow::Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            match self.deframer.next_frame() {
                Ok(Some(Frame::Message(m))) => return Ok(Some(m)),
                Ok(Some(Frame::Invalid(m))) => bail!("an invalid {:?} arrived", m.kind),
                Err(e) => bail!("framing: {e}"),
                Ok(None) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the connection was closed"),
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e).context("reading the control connection"),
            }
        }
    }

    /// Starts the control connection: sends the request, waits for the reply.
    pub fn start(&mut self, host: &str) -> anyhow::Result<()> {
        self.send(start_request(host))?;
        match self.recv(Duration::from_secs(5))? {
            Some(Message::StartControlConnectionReply(_)) => Ok(()),
            other => bail!("expected a Start-Control-Connection-Reply, got {other:?}"),
        }
    }

    /// Places `count` incoming calls (we are the PAC: Incoming-Call-Request, then
    /// Incoming-Call-Connected on each reply), with our Call IDs `1..=count`;
    /// returns (the server's Call ID, ours) of each.
    pub fn incoming_calls(&mut self, count: u16) -> anyhow::Result<Vec<(u16, u16)>> {
        for call_id in 1..=count {
            self.send(IncomingCallRequest {
                call_id,
                call_serial_number: call_id,
                bearer_type: BearerType::Either,
                physical_channel_id: 0,
                dialed_number_length: NumberLength::default(),
                dialing_number_length: NumberLength::default(),
                dialed_number: Text::default(),
                dialing_number: Text::default(),
                subaddress: Text::default(),
            })?;
        }
        let mut theirs = Vec::new();
        while theirs.len() < usize::from(count) {
            match self.recv(Duration::from_secs(5))? {
                Some(Message::IncomingCallReply(reply)) => {
                    self.send(IncomingCallConnected {
                        peer_call_id: reply.call_id,
                        reserved1: Reserved16,
                        connect_speed: 10_000_000,
                        packet_recv_window_size: 64,
                        packet_transmit_delay: 0,
                        framing_type: FramingType::Either,
                    })?;
                    theirs.push((reply.call_id, reply.peer_call_id));
                }
                Some(_) => {}
                None => bail!("{} of {count} incoming calls answered", theirs.len()),
            }
        }
        Ok(theirs)
    }
}
