//! The datagrams of [`Exchanges`]: a fixed set of UDP sockets, one reader task per
//! socket and one timer task, nothing else. Every socket is bound once (when the
//! first exchange is made) and kept; sends never wait (the sockets are non-blocking:
//! a datagram the kernel cannot take now is lost like any other, and the exchange's
//! retransmission covers it). Answers that are not taken are counted in the agent's guard counters
//! (`radius_unmatched`, `radius_late`, `radius_unverified`), requests refused because
//! too many wait in `radius_queue_full`.

use std::{
    io,
    net::Ipv4Addr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    net::UdpSocket,
    sync::{Notify, oneshot},
};

use super::{
    client::{Health, Outcome, Server, Timing},
    exchanges::{Encode, Exchanges, Limits, Received, Refused, Request, Submitted},
    packet,
};
use crate::guard::stats::GuardStats;

type Done = oneshot::Sender<Result<Outcome, Refused>>;

/// The sockets and the exchanges over them (cheap to clone).
#[derive(Clone)]
pub struct Transport {
    shared: Arc<Shared>,
}

struct Shared {
    exchanges: Mutex<Exchanges<Done>>,
    sockets: Vec<UdpSocket>,
    /// Tells the timer task that the next deadline may have moved.
    wake: Notify,
    stats: Arc<GuardStats>,
}

impl Transport {
    /// Binds `limits.sockets` UDP sockets and starts their tasks (in the current
    /// tokio runtime; they run as long as it does).
    pub fn bind(limits: Limits, stats: Arc<GuardStats>) -> io::Result<Self> {
        let sockets = (0..limits.sockets.max(1))
            .map(|_| {
                let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                s.set_nonblocking(true)?;
                UdpSocket::from_std(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            exchanges: Mutex::new(Exchanges::new(limits)),
            sockets,
            wake: Notify::new(),
            stats,
        });
        for socket in 0..shared.sockets.len() {
            tokio::spawn(read(shared.clone(), socket));
        }
        tokio::spawn(timers(shared.clone()));
        Ok(Transport { shared })
    }

    /// Carries out one request to `servers` (encoded by `encode` once it has an
    /// identifier) and records in `health` which servers were silent.
    pub async fn exchange(
        &self,
        servers: &Arc<[Server]>,
        timing: Timing,
        health: &Mutex<Health>,
        encode: Encode,
    ) -> Result<Outcome, Refused> {
        let (tx, rx) = oneshot::channel();
        let request = Request {
            servers: servers.clone(),
            health: health.lock().expect("health lock").clone(),
            timing,
            encode,
            token: tx,
        };
        let submitted = self.shared.locked(|x, now| x.submit(request, now));
        if submitted == Submitted::Full {
            GuardStats::count(&self.shared.stats.radius_queue_full);
        }
        self.shared.wake.notify_one();
        // Without a result only when the runtime is going away: as if unanswered.
        let result = rx.await.unwrap_or(Ok(Outcome {
            answer: None,
            silent: Vec::new(),
        }));
        if let Ok(outcome) = &result {
            for &i in &outcome.silent {
                tracing::warn!(server = %servers[i].addr, "RADIUS server did not answer: failing over");
            }
            let first_signed = health.lock().expect("health lock").record(
                outcome,
                timing.dead_time,
                Instant::now(),
            );
            if let (true, Some((i, _))) = (first_signed, &outcome.answer) {
                tracing::info!(server = %servers[*i].addr, mode = ?timing.require_message_authenticator, "RADIUS server sends Message-Authenticator");
            }
        }
        result
    }
}

impl Shared {
    /// Runs `f` on the exchanges, then sends what is due and hands out results.
    fn locked<R>(&self, f: impl FnOnce(&mut Exchanges<Done>, Instant) -> R) -> R {
        let now = Instant::now();
        let mut x = self.exchanges.lock().expect("exchanges lock");
        let r = f(&mut x, now);
        while let Some(t) = x.poll_transmit(now) {
            // Straight to the non-blocking socket: tokio's `try_send_to` refuses
            // (WouldBlock) until its reactor has seen the socket writable, which
            // loses the first datagram of every freshly bound socket.
            let socket = socket2::SockRef::from(&self.sockets[t.socket]);
            if let Err(e) = socket.send_to(&t.bytes, &t.to.into()) {
                tracing::debug!(error = %e, server = %t.to, "RADIUS send");
            }
        }
        while let Some((done, result)) = x.poll_done() {
            // The asker may have gone (its session ended): nothing to tell.
            let _ = done.send(result);
        }
        r
    }
}

/// Hands every datagram of socket `socket` to the exchanges.
async fn read(shared: Arc<Shared>, socket: usize) {
    let mut buf = vec![0u8; packet::MAX_LEN];
    loop {
        let (n, from) = match shared.sockets[socket].recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "RADIUS receive");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let received = shared.locked(|x, now| x.handle_datagram(socket, from, &buf[..n], now));
        let counter = match received {
            Received::Answer => {
                shared.wake.notify_one();
                continue;
            }
            Received::Unverified => &shared.stats.radius_unverified,
            Received::Late => &shared.stats.radius_late,
            Received::Unmatched => &shared.stats.radius_unmatched,
        };
        GuardStats::count(counter);
        tracing::debug!(%from, ?received, "RADIUS: dropped a datagram that answers no request");
    }
}

/// Retransmits, fails over and gives up on time.
async fn timers(shared: Arc<Shared>) {
    loop {
        shared.locked(|x, now| x.handle_timeout(now));
        // Read after `locked` has sent what was due: sending sets the new deadlines.
        let next = shared
            .exchanges
            .lock()
            .expect("exchanges lock")
            .poll_timeout();
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => {}
                    () = shared.wake.notified() => {}
                }
            }
            None => shared.wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::{
        client::RequireMessageAuthenticator,
        packet::{Packet, attr, code},
    };

    /// A loopback server that answers every Accounting-Request twice; one exchange
    /// with a single try must be answered, so the very first datagram of a freshly
    /// bound socket must leave; the second copy of each answer is for no exchange
    /// (answered at its first send, its identifier was freed) and is counted.
    #[test]
    fn the_first_datagram_of_a_fresh_socket_is_sent_and_answered() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let servers: Arc<[Server]> = vec![Server {
                addr: server.local_addr().unwrap(),
                secret: b"s".to_vec(),
            }]
            .into();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                for _ in 0..10 {
                    let (n, from) = server.recv_from(&mut buf).await.unwrap();
                    let auth: [u8; 16] = buf[4..20].try_into().unwrap();
                    let answer = Packet::new(code::ACCOUNTING_RESPONSE, buf[1], [0; 16])
                        .encode(b"s", Some(&auth))
                        .unwrap();
                    assert!(n >= 20);
                    server.send_to(&answer, from).await.unwrap();
                    server.send_to(&answer, from).await.unwrap();
                }
            });
            let limits = Limits {
                sockets: 2,
                hold: Duration::from_secs(1),
                max_waiting: 4,
            };
            let stats = Arc::new(GuardStats::default());
            let transport = Transport::bind(limits, stats.clone()).unwrap();
            let timing = Timing {
                timeout: Duration::from_secs(2),
                retries: 0,
                dead_time: Duration::from_secs(30),
                require_message_authenticator: RequireMessageAuthenticator::Auto,
            };
            let health = Mutex::new(Health::default());
            // Two exchanges: the first datagram of each of the two sockets.
            for _ in 0..2 {
                let encode: Encode = Box::new(|id| {
                    let mut p = Packet::new(code::ACCOUNTING_REQUEST, id, [0; 16]);
                    p.push(attr::USER_NAME, "alice");
                    Some(vec![p.encode(b"s", None).ok()?])
                });
                let outcome = transport
                    .exchange(&servers, timing, &health, encode)
                    .await
                    .unwrap();
                assert!(outcome.answer.is_some(), "not answered: {outcome:?}");
            }
            let unmatched = || {
                stats
                    .radius_unmatched
                    .load(std::sync::atomic::Ordering::Relaxed)
            };
            for _ in 0..50 {
                if unmatched() >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(
                unmatched(),
                2,
                "one copy of each answer was for no exchange"
            );
            let late = stats.radius_late.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(
                late, 0,
                "nothing was held: each exchange was answered at once"
            );
        });
    }
}
