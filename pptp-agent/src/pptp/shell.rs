//! The tokio shell around a [`ControlConnection`]: it moves bytes between a TCP
//! stream and the machine, sleeps until the machine's next deadline, and does nothing
//! else. All protocol decisions stay in the sans-IO machine.
//!
//! The owner reacts to [`Event`]s in `on_event`, which gets the machine itself (so it
//! can answer a [`Event::CallRequested`] at once) and may return something to pass
//! on to another task (the hub); the shell sends it through a bounded channel and
//! waits for room, so a busy receiver slows this connection down (it stops reading
//! its peer) instead of queueing without bound. What is passed on may also hold the
//! connection's writes until the receiver has acted on it ([`Pass::then_write`]): a
//! call's reply must not reach the peer before the call is in the data plane, or the
//! peer's first GRE packet overtakes it and XDP drops it as for no call it knows. Other tasks reach the connection by
//! sending [`Command`]s (stop), and ask it to clear calls through its [`CallClears`],
//! which never blocks the asker and never loses a call. When the machine reports
//! [`Event::Closed`], the shell writes what is left to send and shuts the stream
//! down.
//!
//! # A peer that stops reading
//!
//! Writing never holds the machine up: what it transmits joins an outbound queue
//! that the stream drains whenever it is writable, while the shell keeps running
//! timers and commands. The queue holds at most [`ShellLimits::outbound_bytes`]; the
//! shell stops reading the peer while the queue is over half of that (a peer that
//! floods Echo-Requests and reads no replies gets no more answers queued), and
//! drops the connection, as if TCP had failed, when the queue would overflow or when
//! queued bytes make no progress for [`ShellLimits::write_timeout`] (the socket's
//! `TCP_USER_TIMEOUT` says the same to the kernel). After the machine closes, what
//! is queued gets the same deadline, then the stream is closed regardless. So one
//! connection costs at most its queue and its socket, for at most the write timeout
//! past the moment its peer stopped reading.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, tcp::OwnedReadHalf};
use tokio::sync::{Notify, mpsc, oneshot};

use super::call_id::CallIdPool;
use super::control::{ControlConnection, Event};

/// How long a connection holds its writes for a receiver to act on what it was
/// passed: the hub takes microseconds; past this the peer gets its answer anyway.
const HOLD_LIMIT: Duration = Duration::from_secs(1);

/// What the owner passes on to another task from `on_event`.
pub struct Pass<O> {
    message: O,
    acted_on: Option<oneshot::Receiver<()>>,
}

impl<O> Pass<O> {
    /// `message`, and the connection goes on at once.
    pub fn on(message: O) -> Self {
        Self {
            message,
            acted_on: None,
        }
    }

    /// `message`, and nothing more is written to the peer until the receiver has
    /// acted on it (sends on, or drops, the other end of `acted_on`), for at most
    /// [`HOLD_LIMIT`]. The connection neither reads nor runs timers meanwhile.
    pub fn then_write(message: O, acted_on: oneshot::Receiver<()>) -> Self {
        Self {
            message,
            acted_on: Some(acted_on),
        }
    }
}

/// Something to do to the connection, from another task.
pub type Command<P> = Box<dyn FnOnce(&mut ControlConnection<P>, Instant) + Send>;

/// Calls other tasks want cleared on one connection: a set (a call asked twice is
/// cleared once), so it holds at most the connection's calls, and asking never
/// waits.
#[derive(Debug, Default)]
pub struct CallClears {
    calls: Mutex<BTreeSet<u16>>,
    wake: Notify,
}

impl CallClears {
    /// Asks the connection to clear our call `local_call_id` (harmless if it is gone).
    pub fn clear(&self, local_call_id: u16) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(local_call_id);
        self.wake.notify_one();
    }

    fn take(&self) -> BTreeSet<u16> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What one connection may hold and how long it may stall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShellLimits {
    /// Bytes waiting to be written to the peer.
    pub outbound_bytes: usize,
    /// How long queued bytes may wait without any of them being written.
    pub write_timeout: Duration,
}

impl Default for ShellLimits {
    /// 64 KiB (over 400 of the largest control messages) and 10 s.
    fn default() -> Self {
        Self {
            outbound_bytes: 64 * 1024,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Bytes for the peer, in order, bounded by [`ShellLimits::outbound_bytes`].
struct Outbound {
    bytes: Vec<u8>,
    /// How much of `bytes` is written already.
    written: usize,
    /// When the queue last made progress (or became non-empty).
    progress: Instant,
}

impl Outbound {
    fn pending(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    fn push(&mut self, data: &[u8], now: Instant) {
        if self.pending().is_empty() {
            self.bytes.clear();
            self.written = 0;
            self.progress = now;
        }
        self.bytes.extend_from_slice(data);
    }

    fn advance(&mut self, n: usize, now: Instant) {
        self.written += n;
        self.progress = now;
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.written = 0;
        } else if self.written > self.bytes.len() / 2 {
            self.bytes.drain(..self.written);
            self.written = 0;
        }
    }
}

/// Where a connection's shell takes its orders from and sends what its owner passes on.
pub struct Channels<'a, P: CallIdPool, O> {
    pub commands: mpsc::Receiver<Command<P>>,
    pub clears: &'a CallClears,
    pub out: &'a mpsc::Sender<O>,
}

/// Runs `conn` over `stream` until the connection closes. A failed read or write,
/// a full outbound queue or a stalled write counts as the peer closing TCP.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its future"
)]
pub fn drive<'a, P: CallIdPool + 'a, O: 'a>(
    stream: TcpStream,
    mut conn: ControlConnection<P>,
    channels: Channels<'a, P, O>,
    limits: ShellLimits,
    mut on_event: impl FnMut(&mut ControlConnection<P>, Event, Instant) -> Option<Pass<O>> + 'a,
) -> impl Future<Output = ()> + 'a {
    // An async block rather than an async fn: its captures are the future's only
    // copy of the arguments (an async fn keeps each argument twice, the machine's
    // 560 bytes among them, in every control connection's task).
    async move {
        let Channels {
            mut commands,
            clears,
            out: pass_on,
        } = channels;
        // The kernel gives up on unacknowledged data after the same time.
        if let Err(e) =
            socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(limits.write_timeout))
        {
            tracing::debug!(error = %e, "TCP_USER_TIMEOUT");
        }
        let (reader, mut writer) = stream.into_split();
        let mut out = Outbound {
            bytes: Vec::new(),
            written: 0,
            progress: Instant::now(),
        };
        // The connection was dropped: what the machine says now (calls down) still
        // reaches the owner, what it sends does not reach the peer.
        let mut dropped = false;
        loop {
            // Events may queue messages (accepting a call), so go on until both queues
            // of the machine are empty.
            loop {
                let mut busy = false;
                while let Some(e) = conn.poll_event() {
                    busy = true;
                    if let Some(pass) = on_event(&mut conn, e, Instant::now()) {
                        // The receiver gone (shutting down) changes nothing here, nor
                        // does one that does not act within the limit.
                        let _ = pass_on.send(pass.message).await;
                        if let Some(acted_on) = pass.acted_on {
                            let _ = tokio::time::timeout(HOLD_LIMIT, acted_on).await;
                        }
                    }
                }
                while let Some(bytes) = conn.poll_transmit() {
                    busy = true;
                    if dropped {
                        continue;
                    }
                    if out.pending().len() + bytes.len() > limits.outbound_bytes {
                        tracing::warn!(
                            queued = out.pending().len(),
                            "the peer does not read: control connection dropped"
                        );
                        dropped = true;
                        conn.handle_eof();
                        continue;
                    }
                    out.push(&bytes, Instant::now());
                }
                if !busy {
                    break;
                }
            }
            if dropped {
                return;
            }
            let now = Instant::now();
            if !out.pending().is_empty() && now >= out.progress + limits.write_timeout {
                if !conn.is_closed() {
                    tracing::warn!(
                        queued = out.pending().len(),
                        timeout = ?limits.write_timeout,
                        "nothing written to the peer within the write timeout: control connection dropped"
                    );
                }
                dropped = true;
                conn.handle_eof();
                continue;
            }
            if conn.is_closed() && out.pending().is_empty() {
                // The peer may already be gone (pptp-linux closes right after its
                // Call-Clear-Request); a failed shutdown changes nothing.
                let _ = writer.shutdown().await;
                return;
            }
            let reading = !conn.is_closed() && out.pending().len() <= limits.outbound_bytes / 2;
            let write_deadline =
                (!out.pending().is_empty()).then_some(out.progress + limits.write_timeout);
            let deadline = [conn.poll_timeout(), write_deadline]
                .into_iter()
                .flatten()
                .min()
                .map(tokio::time::Instant::from_std);
            tokio::select! {
                ready = reader.readable(), if reading => match ready {
                    Err(_) => conn.handle_eof(),
                    Ok(()) => read_now(&reader, &mut conn),
                },
                written = writer.write(out.pending()), if !out.pending().is_empty() => match written {
                    Ok(0) | Err(_) => {
                        dropped = true;
                        conn.handle_eof();
                    }
                    Ok(n) => out.advance(n, Instant::now()),
                },
                Some(command) = commands.recv(), if !conn.is_closed() => command(&mut conn, Instant::now()),
                () = clears.wake.notified(), if !conn.is_closed() => {
                    let now = Instant::now();
                    for call in clears.take() {
                        // A call already gone is no error worth telling.
                        let _ = conn.clear_call(call, now);
                    }
                }
                () = sleep_until(deadline) => conn.handle_timeout(Instant::now()),
            }
        }
    }
}

/// Reads what the socket holds into the machine. The buffer lives on this call's
/// stack only: a connection waiting for input (all but a few of 20,000) holds no
/// read buffer, where one of 4 KiB each was kept for the connection's life.
fn read_now<P: CallIdPool>(reader: &OwnedReadHalf, conn: &mut ControlConnection<P>) {
    let mut buf = [0u8; 4096];
    match reader.try_read(&mut buf) {
        Ok(0) => conn.handle_eof(),
        Ok(n) => conn.handle_input(&buf[..n], Instant::now()),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(_) => conn.handle_eof(),
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
