//! Fuzzes the MPPE decryptor with raw bytes and with a real encryptor's packets
//! delivered out of order, replayed, lost, corrupted or after resets. It must never
//! panic; in stateless mode every unmodified packet it accepts must decrypt to what
//! was encrypted, unless the sender got a whole count space (4096 packets) or more
//! ahead of the receiver, which no coherency count can tell.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pptp_agent::mppe::cipher::ENCRYPT_HEADROOM;
use pptp_agent::mppe::{Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig};

struct Sent {
    /// How many packets the encryptor had sent before this one.
    index: i64,
    wire: Vec<u8>,
    protocol: u16,
    payload: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let [mode, jump, ops @ ..] = data else {
        return;
    };
    let strength = match mode % 3 {
        0 => KeyStrength::Bits40,
        1 => KeyStrength::Bits56,
        _ => KeyStrength::Bits128,
    };
    let stateless = mode & 0x04 != 0;
    let mut config = MppeConfig::new(strength, stateless);
    config.max_jump = u16::from(*jump) * 8 + 1;
    let start = [*mode; 16];
    let mut enc = Encryptor::new(start, config);
    let mut dec = Decryptor::new(start, config);
    // One instant for the whole input: the rekey budget never refills, so a run
    // depends on its input alone.
    let now = std::time::Instant::now();
    let mut sent: Vec<Sent> = Vec::new();
    // Packets encrypted so far, and the index of the packet whose key the
    // decryptor holds (-1: the initial key).
    let mut sent_total: i64 = 0;
    let mut recv_index: i64 = -1;
    let mut it = ops.iter().copied();
    while let Some(op) = it.next() {
        let arg = it.next().unwrap_or(0);
        match op % 7 {
            // Encrypt a packet (not yet delivered).
            0 => {
                let protocol = if arg & 1 == 0 { 0x0021 } else { 0x0057 };
                let payload: Vec<u8> = (0..arg).collect();
                let mut wire = vec![0; ENCRYPT_HEADROOM];
                wire.extend_from_slice(&payload);
                enc.encrypt(protocol, &mut wire).unwrap();
                if sent.len() == 32 {
                    sent.remove(0);
                }
                sent.push(Sent {
                    index: sent_total,
                    wire,
                    protocol,
                    payload,
                });
                sent_total += 1;
            }
            // Deliver a sent packet as it is (in order, late or replayed).
            1 | 2 => {
                if sent.is_empty() {
                    continue;
                }
                let index = if op % 7 == 1 {
                    sent.len() - 1
                } else {
                    usize::from(arg) % sent.len()
                };
                let s = &sent[index];
                let mut wire = s.wire.clone();
                let behind = s.index - recv_index;
                let before = dec.ccount();
                if let Ok(Decrypted::Packet(p)) = dec.decrypt(now, &mut wire)
                    && stateless
                    && (1..4096).contains(&behind)
                {
                    assert_eq!(p.protocol, s.protocol);
                    assert_eq!(p.payload, &s.payload[..]);
                }
                recv_index += i64::from(dec.ccount().wrapping_sub(before) & 0xfff);
            }
            // Deliver a sent packet with one byte changed.
            3 => {
                if let Some(s) = sent.last() {
                    let mut wire = s.wire.clone();
                    let i = usize::from(arg) % wire.len();
                    wire[i] ^= arg | 1;
                    let before = dec.ccount();
                    let _ = dec.decrypt(now, &mut wire);
                    recv_index += i64::from(dec.ccount().wrapping_sub(before) & 0xfff);
                }
            }
            // The peer asked for a reset.
            4 => enc.reset(),
            // Lose many packets.
            5 => {
                for _ in 0..arg {
                    let mut wire = [0u8; ENCRYPT_HEADROOM + 1];
                    enc.encrypt(0x0021, &mut wire).unwrap();
                    sent_total += 1;
                }
            }
            // Raw bytes from the input.
            _ => {
                let n = usize::from(arg) % 64;
                let mut raw: Vec<u8> = it.by_ref().take(n).collect();
                let before = dec.ccount();
                let _ = dec.decrypt(now, &mut raw);
                recv_index += i64::from(dec.ccount().wrapping_sub(before) & 0xfff);
            }
        }
        let _ = dec.is_discarding();
    }
});
