//! MPPE throughput on one core: encrypt + decrypt of 1400-byte packets in each
//! mode and strength, beside plain RC4 over the same bytes (one key schedule,
//! keystream only). Prints MB/s (payload bytes through encrypt and decrypt),
//! packets/s and the ratio to plain RC4 doing the same two passes.
//!
//! `cargo bench -p pptp-agent --bench mppe` (a few seconds; `MPPE_BENCH_MS` sets
//! the time per measurement, 400 ms by default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use pptp_agent::mppe::cipher::ENCRYPT_HEADROOM;
use pptp_agent::mppe::{Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig};
use rc4::consts::U16;
use rc4::{KeyInit, Rc4, StreamCipher};

const PACKET: usize = 1400;
const START: [u8; 16] = [0x5a; 16];

/// Runs `f` (one packet) repeatedly for `budget`; returns packets per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < budget {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn mb(pps: f64) -> f64 {
    pps * PACKET as f64 / 1e6
}

fn main() {
    let now = std::time::Instant::now();
    let ms = std::env::var("MPPE_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let budget = Duration::from_millis(ms);

    let mut buf = vec![0x45u8; PACKET];
    let mut rc4 = Rc4::<U16>::new(&START.into());
    let raw = rate(budget, || {
        // Two passes, as encrypt + decrypt do.
        rc4.apply_keystream(black_box(&mut buf));
        rc4.apply_keystream(black_box(&mut buf));
    });
    println!(
        "plain RC4, 2 passes of {PACKET} bytes: {:8.1} MB/s {:10.0} pkts/s",
        mb(raw),
        raw
    );

    let start16 = START;
    let mut key = pptp_agent::mppe::keys::initial_session_key(&start16, KeyStrength::Bits128);
    let rekeys = rate(budget, || {
        key = pptp_agent::mppe::keys::rekey(&start16, black_box(&key), KeyStrength::Bits128);
    });
    println!(
        "one key change (SHA-1 + RC4 key schedule), 128-bit: {:.2} us",
        1e6 / rekeys
    );

    for stateless in [false, true] {
        for strength in [KeyStrength::Bits40, KeyStrength::Bits128] {
            let config = MppeConfig::new(strength, stateless);
            let mut enc = Encryptor::new(START, config);
            let mut dec = Decryptor::new(START, config);
            let mut wire = vec![0u8; ENCRYPT_HEADROOM + PACKET];
            let pps = rate(budget, || {
                wire[ENCRYPT_HEADROOM..].fill(0x45);
                enc.encrypt(0x0021, black_box(&mut wire)).unwrap();
                match dec.decrypt(now, black_box(&mut wire)) {
                    Ok(Decrypted::Packet(p)) => {
                        black_box(p.payload);
                    }
                    other => panic!("{other:?}"),
                }
            });
            let mode = if stateless { "stateless" } else { "stateful" };
            println!(
                "MPPE {mode:9} {strength:?}: encrypt+decrypt {:8.1} MB/s {:10.0} pkts/s, {:.2}x plain RC4",
                mb(pps),
                pps,
                pps / raw
            );
        }
    }
}
