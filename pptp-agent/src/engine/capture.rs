//! `pptp-agent capture` of a session on the agent's path (MPPE, fallback, no XDP):
//! the engine tees the inner IPv4 packets of the armed session, both directions,
//! into the buffer kept here ([`Captures`]), which the runtime drains (the
//! engine's `take_captured`, in `operator.rs`) and streams to the `capture` client
//! over the API socket. A session on the data plane's path is
//! captured by the BPF programs instead (`crate::dataplane::capture`): its packets
//! do not come here.
//!
//! Bounds: one capture at a time; the buffer holds at most [`CaptureLimits`]
//! packets and bytes (each packet cut to `pptp_common::capture::SNAPLEN`), and
//! what does not fit is dropped and counted (per capture, and in the agent's
//! `capture_dropped` counter), never queued. A capture that nobody
//! drains for [`CaptureLimits::lease`] is disarmed (its reader is gone), and one
//! whose session ends is disarmed with it, so a later session is never captured.

use std::time::{Duration, Instant};

use pptp_common::capture::{FROM_CLIENT, SNAPLEN, TO_CLIENT};

use super::table::SessionId;

/// How much a capture may hold before its reader takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureLimits {
    /// Packets held at most.
    pub packets: usize,
    /// Bytes of packets held at most.
    pub bytes: usize,
    /// A capture not drained for this long is disarmed.
    pub lease: Duration,
}

impl Default for CaptureLimits {
    fn default() -> Self {
        Self {
            packets: 2048,
            bytes: 1 << 20,
            lease: Duration::from_secs(10),
        }
    }
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub at: Instant,
    /// `pptp_common::capture::FROM_CLIENT` or `TO_CLIENT`.
    pub direction: u32,
    /// The packet's length.
    pub len: u32,
    /// Its first `SNAPLEN` bytes.
    pub data: Vec<u8>,
}

/// What a drain of the buffer gives.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CapturedBatch {
    pub packets: Vec<Captured>,
    /// Packets dropped so far because the buffer was full.
    pub dropped: u64,
    /// False once the capture ended (its session went, or it was stopped or
    /// lapsed): nothing more will come.
    pub armed: bool,
}

/// Why a capture cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("the agent has no session {0}")]
    NoSession(SessionId),
    #[error(
        "session {0} is on the data plane's path: its packets do not reach the agent (capture it from the XDP maps)"
    )]
    FastPath(SessionId),
    #[error("another capture is running (session {0}); one at a time")]
    Busy(SessionId),
}

/// The capture running, if any, and how many were started.
#[derive(Debug, Default)]
pub struct Captures {
    tap: Option<Tap>,
    started: u64,
}

/// The armed capture.
#[derive(Debug)]
struct Tap {
    /// Told apart from a later capture of the same session.
    number: u64,
    session: SessionId,
    limits: CaptureLimits,
    held: Vec<Captured>,
    bytes: usize,
    dropped: u64,
    last_read: Instant,
    /// The session ended: what is held is the last of it.
    ended: bool,
}

impl Captures {
    /// Arms a capture of session `id` (the caller checked that it exists and is on
    /// the agent's path); answers its number.
    pub fn start(
        &mut self,
        id: SessionId,
        limits: CaptureLimits,
        now: Instant,
    ) -> Result<u64, CaptureError> {
        self.lapse(now);
        if let Some(tap) = self.tap.as_ref().filter(|t| !t.ended) {
            return Err(CaptureError::Busy(tap.session));
        }
        self.started += 1;
        self.tap = Some(Tap {
            number: self.started,
            session: id,
            limits,
            held: Vec::new(),
            bytes: 0,
            dropped: 0,
            last_read: now,
            ended: false,
        });
        tracing::info!(session = %id, capture = self.started, "capture started");
        Ok(self.started)
    }

    /// Takes what capture `number` holds; `armed` false once it has ended (the
    /// packets its session moved last come with that answer).
    pub fn take(&mut self, number: u64, now: Instant) -> CapturedBatch {
        self.lapse(now);
        let Some(tap) = self.tap.as_mut().filter(|t| t.number == number) else {
            return CapturedBatch::default();
        };
        tap.last_read = now;
        tap.bytes = 0;
        let batch = CapturedBatch {
            packets: std::mem::take(&mut tap.held),
            dropped: tap.dropped,
            armed: !tap.ended,
        };
        if tap.ended {
            self.end("the session ended");
        }
        batch
    }

    /// Ends capture `number` (its reader went away).
    pub fn stop(&mut self, number: u64) {
        if self.tap.as_ref().is_some_and(|t| t.number == number) {
            self.end("stopped");
        }
    }

    /// Copies `packet`, which went `direction` on session `id`, if that session is
    /// captured; true if it is but the buffer is full (the copy is dropped).
    pub fn tee(&mut self, id: SessionId, direction: u32, packet: &[u8], now: Instant) -> bool {
        let Some(tap) = &mut self.tap else {
            return false;
        };
        if tap.session != id || tap.ended {
            return false;
        }
        if now.saturating_duration_since(tap.last_read) > tap.limits.lease {
            self.end("not read");
            return false;
        }
        let data = &packet[..packet.len().min(SNAPLEN)];
        if tap.held.len() >= tap.limits.packets || tap.bytes + data.len() > tap.limits.bytes {
            tap.dropped += 1;
            return true;
        }
        debug_assert!(direction == FROM_CLIENT || direction == TO_CLIENT);
        tap.bytes += data.len();
        tap.held.push(Captured {
            at: now,
            direction,
            len: packet.len() as u32,
            data: data.to_vec(),
        });
        false
    }

    /// The session `id` is gone: a capture of it takes nothing more, and ends
    /// once its reader has what it holds.
    pub fn session_gone(&mut self, id: SessionId) {
        if let Some(tap) = self.tap.as_mut().filter(|t| t.session == id) {
            tap.ended = true;
        }
    }

    fn lapse(&mut self, now: Instant) {
        if self
            .tap
            .as_ref()
            .is_some_and(|t| now.saturating_duration_since(t.last_read) > t.limits.lease)
        {
            self.end("not read");
        }
    }

    fn end(&mut self, why: &str) {
        if let Some(tap) = self.tap.take() {
            tracing::info!(session = %tap.session, capture = tap.number, dropped = tap.dropped, why, "capture ended");
        }
    }
}
