//! `{"cmd":"capture","id":N}`: the packets of session N, which is on the agent's
//! path, streamed to the `pptp-agent capture` client (a session on the data
//! plane's path is captured from the XDP maps, `crate::dataplane::capture`).
//!
//! The agent answers one JSON line, `{"capture":NUMBER}` or `{"error":"..."}`;
//! after the first, records follow until the capture ends: each a
//! `pptp_common::capture::RecordHeader` (24 bytes, native byte order, `time_ns` on
//! CLOCK_MONOTONIC as the BPF programs write it, `slot` zero) and its `caplen`
//! bytes of the IPv4 packet, the same records the ring buffer holds. The
//! connection closes when the session ends, or when the client goes.
//!
//! Bounds: the engine holds what the client has not taken yet, bounded in packets
//! and bytes (`crate::engine::capture`: the excess is dropped and counted); this
//! task takes one batch at a time, and only when the previous one is written, so
//! a client that stops reading makes nothing grow here. Every write has the API's
//! write timeout (`Limits::write_timeout` in the module above): a client that takes
//! longer loses the capture, which is stopped (and the engine disarms one nobody
//! drains for its lease).

use std::time::{Duration, Instant};

use pptp_common::capture::RecordHeader;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::unix::{ReadHalf, WriteHalf},
    sync::mpsc,
};

use super::ask::ask;
use crate::{
    engine::{
        SessionId,
        capture::{Captured, CapturedBatch},
    },
    runtime::hub::HubCommand,
};

/// How long the task waits before asking the engine again when a batch was
/// small.
const IDLE: Duration = Duration::from_millis(20);
/// A batch this large is followed by the next at once.
const BUSY: usize = 256;

/// The session hub, and how long it may take to answer.
pub(super) type Hub<'a> = (&'a mpsc::Sender<HubCommand>, Duration);

/// Serves one capture on a connection whose request was read; every write to the
/// client within `write_timeout`.
pub(super) async fn serve(
    read: ReadHalf<'_>,
    mut write: WriteHalf<'_>,
    hub: Hub<'_>,
    write_timeout: Duration,
    id: SessionId,
) {
    let started = ask(hub.0, hub.1, |tx| HubCommand::CaptureStart(id, tx))
        .await
        .and_then(|r| r.map_err(|e| e.to_string()));
    let (answer, number) = match started {
        Ok(number) => (json!({ "capture": number }), Some(number)),
        Err(e) => (json!({ "error": e }), None),
    };
    let mut line = answer.to_string();
    line.push('\n');
    let written = write_within(&mut write, line.as_bytes(), write_timeout).await;
    let Some(number) = number else {
        return;
    };
    let why = match written {
        Ok(()) => stream(read, &mut write, hub, write_timeout, number).await,
        Err(why) => why,
    };
    // The engine's answer to a stop is nothing; a full hub still gets the lease.
    let _ = hub.0.try_send(HubCommand::CaptureStop(number));
    tracing::info!(session = %id, capture = number, why, "capture client done");
    let _ = tokio::time::timeout(write_timeout, write.shutdown()).await;
}

/// Streams batches until the capture or the client ends; why it stopped.
async fn stream(
    mut read: ReadHalf<'_>,
    write: &mut WriteHalf<'_>,
    hub: Hub<'_>,
    write_timeout: Duration,
    number: u64,
) -> &'static str {
    let mut bytes = Vec::new();
    loop {
        let batch: CapturedBatch =
            match ask(hub.0, hub.1, |tx| HubCommand::CaptureTake(number, tx)).await {
                Ok(batch) => batch,
                Err(_) => return "the hub is gone",
            };
        if !batch.packets.is_empty() {
            bytes.clear();
            encode(&batch.packets, &mut bytes);
            if let Err(why) = write_within(write, &bytes, write_timeout).await {
                return why;
            }
        }
        if !batch.armed {
            return "the capture ended";
        }
        // A small batch: wait before asking again, so that a slow session does
        // not cost the hub a request per packet (the buffer holds far more than
        // the agent's path carries in that time).
        if batch.packets.len() < BUSY {
            // The client says nothing after its request: anything it sends, or
            // its end, stops the capture.
            let mut probe = [0u8; 1];
            tokio::select! {
                () = tokio::time::sleep(IDLE) => {}
                _ = read.read(&mut probe) => return "the client went away",
            }
        }
    }
}

async fn write_within(
    write: &mut WriteHalf<'_>,
    bytes: &[u8],
    deadline: Duration,
) -> Result<(), &'static str> {
    match tokio::time::timeout(deadline, write.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("the client went away"),
        Err(_) => Err("the client did not read in time"),
    }
}

/// The records of `packets`, their times on CLOCK_MONOTONIC.
fn encode(packets: &[Captured], out: &mut Vec<u8>) {
    let (now, monotonic) = (Instant::now(), monotonic_ns());
    for p in packets {
        let ago = now.saturating_duration_since(p.at).as_nanos() as u64;
        let header = RecordHeader {
            time_ns: monotonic.saturating_sub(ago),
            len: p.len,
            caplen: p.data.len() as u32,
            direction: p.direction,
            slot: 0,
        };
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(&p.data);
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::net::UnixStream;

    use super::*;

    /// A hub whose capture always holds `per_take` full-size packets; counts the
    /// takes and the stops.
    fn flooding_hub(per_take: usize) -> (mpsc::Sender<HubCommand>, Arc<[AtomicUsize; 2]>) {
        let (tx, mut rx) = mpsc::channel(4);
        let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let seen = counts.clone();
        tokio::spawn(async move {
            while let Some(command) = rx.recv().await {
                match command {
                    HubCommand::CaptureStart(_, reply) => {
                        let _ = reply.send(Ok(1));
                    }
                    HubCommand::CaptureTake(_, reply) => {
                        seen[0].fetch_add(1, Ordering::Relaxed);
                        let packet = Captured {
                            at: Instant::now(),
                            direction: 0,
                            len: 1500,
                            data: vec![0x45; 1500],
                        };
                        let _ = reply.send(CapturedBatch {
                            packets: vec![packet; per_take],
                            dropped: 0,
                            armed: true,
                        });
                    }
                    HubCommand::CaptureStop(_) => {
                        seen[1].fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
        (tx, counts)
    }

    /// The stops the hub has seen, once it has taken what was sent (1 s at most).
    async fn stops(counts: &[AtomicUsize; 2]) -> usize {
        for _ in 0..100 {
            if counts[1].load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        counts[1].load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_loses_the_capture_and_nothing_grows() {
        let (hub, counts) = flooding_hub(100);
        let (mut server, client) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let (read, write) = server.split();
        let id = SessionId::from_number(3);
        let write_timeout = Duration::from_millis(300);
        // The client reads nothing, not even the first line.
        tokio::time::timeout(
            Duration::from_secs(5),
            serve(
                read,
                write,
                (&hub, Duration::from_secs(1)),
                write_timeout,
                id,
            ),
        )
        .await
        .expect("the capture gave up on the client");
        let takes = counts[0].load(Ordering::Relaxed);
        assert!(
            started.elapsed() >= write_timeout,
            "it waited out one write"
        );
        // A socket buffer holds a few hundred kB: a few batches of 150 kB, no more.
        assert!((1..=10).contains(&takes), "{takes} batches taken");
        assert_eq!(stops(&counts).await, 1, "the capture stopped");
        drop(client);
    }

    #[tokio::test]
    async fn a_client_that_goes_away_ends_an_idle_capture() {
        let (hub, counts) = flooding_hub(0);
        let (mut server, client) = UnixStream::pair().unwrap();
        let (read, write) = server.split();
        let id = SessionId::from_number(3);
        let closing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(client);
        });
        tokio::time::timeout(
            Duration::from_secs(5),
            serve(
                read,
                write,
                (&hub, Duration::from_secs(1)),
                Duration::from_secs(10),
                id,
            ),
        )
        .await
        .expect("the capture noticed the client's end");
        closing.await.unwrap();
        assert_eq!(stops(&counts).await, 1, "the capture stopped");
    }
}
