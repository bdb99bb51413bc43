//! The tokio shell around a [`ControlConnection`]: it moves bytes between a TCP
//! stream and the machine, sleeps until the machine's next deadline, and does nothing
//! else. All protocol decisions stay in the sans-IO machine.
//!
//! The owner reacts to [`Event`]s in `on_event`, which gets the machine itself (so it
//! can answer a [`Event::CallRequested`] at once), and reaches the connection from
//! other tasks by sending [`Command`]s (place or clear a call, stop). When the machine
//! reports [`Event::Closed`], the shell writes what is left to send and shuts the
//! stream down.

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::call_id::CallIdPool;
use super::control::{ControlConnection, Event};

/// Something to do to the connection, from another task.
pub type Command<P> = Box<dyn FnOnce(&mut ControlConnection<P>, Instant) + Send>;

/// Runs `conn` over `stream` until the connection closes. A failed read or write
/// counts as the peer closing TCP.
pub async fn drive<P: CallIdPool>(
    mut stream: TcpStream,
    mut conn: ControlConnection<P>,
    mut commands: mpsc::Receiver<Command<P>>,
    mut on_event: impl FnMut(&mut ControlConnection<P>, Event, Instant),
) {
    let mut buf = vec![0u8; 4096];
    loop {
        // Events may queue messages (accepting a call) and a failed write queues
        // events, so go on until both queues are empty.
        loop {
            let mut busy = false;
            while let Some(e) = conn.poll_event() {
                busy = true;
                on_event(&mut conn, e, Instant::now());
            }
            while let Some(bytes) = conn.poll_transmit() {
                busy = true;
                if stream.write_all(&bytes).await.is_err() {
                    conn.handle_eof();
                }
            }
            if !busy {
                break;
            }
        }
        if conn.is_closed() {
            // The peer may already be gone (pptp-linux closes right after its
            // Call-Clear-Request); a failed shutdown changes nothing.
            let _ = stream.shutdown().await;
            return;
        }
        let deadline = conn.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => conn.handle_eof(),
                Ok(n) => conn.handle_input(&buf[..n], Instant::now()),
            },
            Some(command) = commands.recv() => command(&mut conn, Instant::now()),
            () = sleep_until(deadline) => conn.handle_timeout(Instant::now()),
        }
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
