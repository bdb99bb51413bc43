//! MPPE throughput on one core: encrypt + decrypt of 1400-byte packets in each
//! mode and strength, beside the baseline: the product's own RC4
//! ([`Rc4State`], the cipher the encryptor and decryptor run) over the same bytes
//! (the 2-byte protocol field and the payload, twice: once to encrypt, once to
//! decrypt), keyed once, keystream only. Prints MB/s (payload bytes through encrypt
//! and decrypt), packets/s and the ratio to that baseline: medians of [`ROUNDS`]
//! rounds, each measuring the baseline and every mode in turn.
//!
//! Before measuring, it checks that the baseline is the work the product does: the
//! first packet each encryptor sends must equal the baseline's RC4 over the same
//! bytes with the key RFC 3078 gives that packet; otherwise the run fails.
//!
//! `cargo bench -p pptp-agent --bench mppe` (a few seconds; `MPPE_BENCH_MS` sets
//! the time per measurement, 400 ms by default).

use std::hint::black_box;
use std::time::{Duration, Instant};

use pptp_agent::mppe::cipher::{ENCRYPT_HEADROOM, HEADER_LEN, Rc4State};
use pptp_agent::mppe::keys::{initial_session_key, rekey};
use pptp_agent::mppe::{Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig};

const PACKET: usize = 1400;
/// Bytes RC4 runs over per packet and pass: the protocol field and the payload.
const CIPHERED: usize = 2 + PACKET;
const START: [u8; 16] = [0x5a; 16];
const PROTOCOL: u16 = 0x0021;
/// Rounds of every measurement; the report gives medians.
const ROUNDS: usize = 3;
/// The modes measured: (stateless, strength).
const MODES: [(bool, KeyStrength); 4] = [
    (false, KeyStrength::Bits40),
    (false, KeyStrength::Bits128),
    (true, KeyStrength::Bits40),
    (true, KeyStrength::Bits128),
];

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

/// The first packet an encryptor of `config` sends, against the baseline's RC4
/// over the same bytes: stateful mode keeps the initial session key for it,
/// stateless mode changes the key first (RFC 3078 §7.1, §7.3).
fn check_baseline(strength: KeyStrength, stateless: bool) -> Result<(), String> {
    let config = MppeConfig::new(strength, stateless);
    let mut wire = vec![0x45u8; ENCRYPT_HEADROOM + PACKET];
    Encryptor::new(START, config)
        .encrypt(PROTOCOL, &mut wire)
        .map_err(|e| e.to_string())?;
    let mut key = initial_session_key(&START, strength);
    if stateless {
        key = rekey(&START, &key, strength);
    }
    let mut expected = PROTOCOL.to_be_bytes().to_vec();
    expected.extend_from_slice(&[0x45; PACKET]);
    Rc4State::new(&key).apply(&mut expected);
    if wire[HEADER_LEN..] != expected[..] {
        let at = wire[HEADER_LEN..]
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "MPPE {strength:?} {}: the first packet's ciphertext differs from the product's RC4 over the same bytes (first difference at byte {at} of {CIPHERED}): the baseline does not measure the work the product does",
            if stateless { "stateless" } else { "stateful" },
        ));
    }
    Ok(())
}

fn main() {
    let ms = std::env::var("MPPE_BENCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let budget = Duration::from_millis(ms);

    for (stateless, strength) in MODES {
        if let Err(e) = check_baseline(strength, stateless) {
            eprintln!("bench mppe: {e}");
            std::process::exit(1);
        }
    }

    let mut key = initial_session_key(&START, KeyStrength::Bits128);
    let rekeys = rate(budget, || {
        key = rekey(&START, black_box(&key), KeyStrength::Bits128);
    });
    println!(
        "one key change (SHA-1 + RC4 key schedule), 128-bit: {:.2} us",
        1e6 / rekeys
    );

    let mut baseline = Vec::new();
    let mut modes: Vec<Vec<f64>> = vec![Vec::new(); MODES.len()];
    for _ in 0..ROUNDS {
        baseline.push(baseline_rate(budget));
        for (rates, &(stateless, strength)) in modes.iter_mut().zip(&MODES) {
            rates.push(mppe_rate(budget, strength, stateless));
        }
    }
    let raw = median(baseline);
    println!(
        "baseline: the product's RC4 (Rc4State), 2 passes of {CIPHERED} bytes: {:8.1} MB/s {:10.0} pkts/s (median of {ROUNDS})",
        mb(raw),
        raw
    );
    for (rates, &(stateless, strength)) in modes.into_iter().zip(&MODES) {
        let pps = median(rates);
        let mode = if stateless { "stateless" } else { "stateful" };
        println!(
            "MPPE {mode:9} {strength:?}: encrypt+decrypt {:8.1} MB/s {:10.0} pkts/s, {:.2}x the baseline",
            mb(pps),
            pps,
            pps / raw
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Packets/s of the baseline: two passes of the product's RC4 over the bytes of one
/// packet.
fn baseline_rate(budget: Duration) -> f64 {
    let mut buf = vec![0x45u8; CIPHERED];
    let mut rc4 = Rc4State::new(&initial_session_key(&START, KeyStrength::Bits128));
    rate(budget, || {
        // Two passes, as encrypt + decrypt do.
        rc4.apply(black_box(&mut buf));
        rc4.apply(black_box(&mut buf));
    })
}

/// Packets/s of encrypt + decrypt in one mode.
fn mppe_rate(budget: Duration, strength: KeyStrength, stateless: bool) -> f64 {
    let now = std::time::Instant::now();
    let config = MppeConfig::new(strength, stateless);
    let mut enc = Encryptor::new(START, config);
    let mut dec = Decryptor::new(START, config);
    let mut wire = vec![0u8; ENCRYPT_HEADROOM + PACKET];
    rate(budget, || {
        wire[ENCRYPT_HEADROOM..].fill(0x45);
        enc.encrypt(PROTOCOL, black_box(&mut wire)).unwrap();
        match dec.decrypt(now, black_box(&mut wire)) {
            Ok(Decrypted::Packet(p)) => {
                black_box(p.payload);
            }
            other => panic!("{other:?}"),
        }
    })
}
