//! The MPPE cipher against an independent model of Linux ppp_mppe's key schedule,
//! for every strength and mode, across the 4096 coherency-count wrap and the
//! stateful 256-packet rekeys; and its loss handling: the stateless jump, late,
//! duplicate and out-of-window packets, the stateful Reset-Request/flushed-packet
//! resynchronisation, and injected packets.

use pptp_agent::mppe::cipher::{CCOUNT_SPACE, ENCRYPT_HEADROOM, bits};
use pptp_agent::mppe::keys::{self, SessionKey};
use pptp_agent::mppe::{
    Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig, MppeError, MppeHeader,
};
use rc4::consts::{U8, U16};
use rc4::{KeyInit, Rc4, StreamCipher};

const START: [u8; 16] = [
    0x88, 0x37, 0x61, 0x51, 0xce, 0xff, 0x5d, 0x41, 0xf7, 0x83, 0x3d, 0x33, 0xc8, 0x49, 0x72, 0x99,
];
const STRENGTHS: [KeyStrength; 3] = [
    KeyStrength::Bits40,
    KeyStrength::Bits56,
    KeyStrength::Bits128,
];

/// A plain model of the sender, written from the RFC 3078 / ppp_mppe description:
/// a session key and an RC4 stream, rekeyed before the packet when stateless, on
/// counts ending in 0xFF, or after a reset.
/// A keystream applied in place.
type Stream = Box<dyn FnMut(&mut [u8])>;

struct Model {
    strength: KeyStrength,
    stateless: bool,
    /// Linux changes the key on the flushed packet answering a Reset-Request;
    /// FreeBSD ppp only restarts RC4 with the current key.
    reset_changes_key: bool,
    key: SessionKey,
    rc4: Stream,
    ccount: u16,
}

fn rc4_stream(key: &SessionKey) -> Stream {
    let k = key.as_bytes().to_vec();
    if k.len() == 16 {
        let mut c = Rc4::<U16>::new_from_slice(&k).unwrap();
        Box::new(move |d| c.apply_keystream(d))
    } else {
        let mut c = Rc4::<U8>::new_from_slice(&k).unwrap();
        Box::new(move |d| c.apply_keystream(d))
    }
}

impl Model {
    fn new(strength: KeyStrength, stateless: bool) -> Self {
        let key = keys::initial_session_key(&START, strength);
        Self {
            strength,
            stateless,
            reset_changes_key: true,
            rc4: rc4_stream(&key),
            key,
            ccount: 4095,
        }
    }

    fn send(&mut self, protocol: u16, payload: &[u8], reset: bool) -> Vec<u8> {
        self.ccount = (self.ccount + 1) % 4096;
        let mut bits = 0x10;
        let flag = self.ccount & 0xff == 0xff;
        if self.stateless || flag || (reset && self.reset_changes_key) {
            self.key = keys::rekey(&START, &self.key, self.strength);
        }
        if self.stateless || flag || reset {
            self.rc4 = rc4_stream(&self.key);
            bits |= 0x80;
        }
        let mut plain = protocol.to_be_bytes().to_vec();
        plain.extend_from_slice(payload);
        (self.rc4)(&mut plain);
        let mut out = vec![bits | (self.ccount >> 8) as u8, self.ccount as u8];
        out.extend_from_slice(&plain);
        out
    }
}

/// Mostly short payloads (the debug-build RC4 is slow), every 97th one 1400 bytes.
fn payload(i: usize) -> Vec<u8> {
    let len = if i.is_multiple_of(97) {
        1400
    } else {
        (i * 7) % 90 + 1
    };
    (0..len).map(|j| (i + j) as u8).collect()
}

fn seal(enc: &mut Encryptor, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; ENCRYPT_HEADROOM + payload.len()];
    buf[ENCRYPT_HEADROOM..].copy_from_slice(payload);
    enc.encrypt(protocol, &mut buf).unwrap();
    buf
}

fn expect_plain(dec: &mut Decryptor, mut packet: Vec<u8>, protocol: u16, payload: &[u8]) {
    let now = std::time::Instant::now();
    match dec.decrypt(now, &mut packet) {
        Ok(Decrypted::Packet(p)) => {
            assert_eq!(p.protocol, protocol);
            assert_eq!(p.payload, payload);
        }
        other => panic!("expected plaintext, got {other:?}"),
    }
}

fn pair(strength: KeyStrength, stateless: bool) -> (Encryptor, Decryptor) {
    let cfg = MppeConfig::new(strength, stateless);
    (Encryptor::new(START, cfg), Decryptor::new(START, cfg))
}

#[test]
fn matches_the_model_and_round_trips_across_the_wrap() {
    for strength in STRENGTHS {
        for stateless in [true, false] {
            let (mut enc, mut dec) = pair(strength, stateless);
            let mut model = Model::new(strength, stateless);
            let mut wrapped = false;
            let mut flushed = 0;
            for i in 0..(CCOUNT_SPACE as usize + 600) {
                let protocol = if i % 5 == 0 { 0x0057 } else { 0x0021 };
                let data = payload(i);
                let wire = seal(&mut enc, protocol, &data);
                assert_eq!(
                    wire,
                    model.send(protocol, &data, false),
                    "{strength:?} stateless={stateless} packet {i}"
                );
                let h = MppeHeader::parse(&wire).unwrap();
                assert_eq!(usize::from(h.ccount), i % 4096);
                wrapped |= i > 0 && h.ccount == 0;
                if h.flushed() {
                    flushed += 1;
                }
                expect_plain(&mut dec, wire, protocol, &data);
            }
            assert!(wrapped);
            if stateless {
                assert_eq!(flushed, 4096 + 600);
            } else {
                // Counts 0xff, 0x1ff, ... 0xfff, then 0x0ff, 0x1ff after the wrap.
                assert_eq!(flushed, 16 + 2);
            }
        }
    }
}

#[test]
fn stateless_loss_jumps_to_the_new_count() {
    for strength in STRENGTHS {
        let (mut enc, mut dec) = pair(strength, true);
        for i in 0..10 {
            let wire = seal(&mut enc, 0x0021, &payload(i));
            // Drop packets 3, 4 and 5.
            if !(3..6).contains(&i) {
                expect_plain(&mut dec, wire, 0x0021, &payload(i));
            }
        }
        assert_eq!(dec.ccount(), 9);
    }
}

#[test]
fn stateless_refuses_late_duplicate_and_out_of_window_counts() {
    let now = std::time::Instant::now();
    let (mut enc, mut dec) = pair(KeyStrength::Bits128, true);
    let first = seal(&mut enc, 0x0021, b"first packet");
    let second = seal(&mut enc, 0x0021, b"second packet");
    expect_plain(&mut dec, second.clone(), 0x0021, b"second packet");
    // Reordered: the earlier packet comes after the later one.
    let mut late = first.clone();
    assert_eq!(
        dec.decrypt(now, &mut late),
        Err(MppeError::Late { ccount: 0, last: 1 })
    );
    assert_eq!(late, first, "refused packets are left as they were");
    let mut dup = second.clone();
    assert_eq!(
        dec.decrypt(now, &mut dup),
        Err(MppeError::Duplicate { ccount: 1 })
    );
    // Linux's window: a jump of 2048 is accepted, 2049 is "late".
    let mut packets: Vec<Vec<u8>> = (0..2049)
        .map(|i| seal(&mut enc, 0x0021, &[i as u8; 4]))
        .collect();
    let at_2049 = packets.pop().unwrap(); // count 1 + 2049 = 2050
    let at_2048 = packets.pop().unwrap();
    let mut p = at_2049.clone();
    assert_eq!(
        dec.decrypt(now, &mut p),
        Err(MppeError::Late {
            ccount: 2050,
            last: 1
        })
    );
    expect_plain(&mut dec, at_2048, 0x0021, &[2047u16 as u8; 4]);
    expect_plain(&mut dec, at_2049, 0x0021, &[2048u16 as u8; 4]);
    assert_eq!(dec.ccount(), 2050);

    // A smaller window refuses bigger jumps without losing its place.
    let mut cfg = MppeConfig::new(KeyStrength::Bits40, true);
    cfg.max_jump = 100;
    let mut enc = Encryptor::new(START, cfg);
    let mut dec = Decryptor::new(START, cfg);
    let packets: Vec<Vec<u8>> = (0..102)
        .map(|i| seal(&mut enc, 0x0021, &[i as u8; 9]))
        .collect();
    let mut far = packets[101].clone();
    assert_eq!(
        dec.decrypt(now, &mut far),
        Err(MppeError::TooFarAhead {
            ccount: 101,
            last: 4095
        })
    );
    assert_eq!(dec.ccount(), 4095);
    expect_plain(&mut dec, packets[99].clone(), 0x0021, &[99; 9]);
    expect_plain(&mut dec, packets[101].clone(), 0x0021, &[101; 9]);
}

#[test]
fn stateless_refuses_packets_without_the_flushed_bit() {
    let now = std::time::Instant::now();
    let (mut enc, mut dec) = pair(KeyStrength::Bits128, true);
    let mut wire = seal(&mut enc, 0x0021, b"hello");
    wire[0] &= !bits::FLUSHED;
    assert_eq!(
        dec.decrypt(now, &mut wire),
        Err(MppeError::NotFlushed { ccount: 0 })
    );
}

/// Stateful: the receiver asks for a reset once, discards until the flushed
/// packet, and then decrypts again; `lost` packets are dropped starting at `from`.
fn stateful_loss(strength: KeyStrength, from: usize, lost: usize, lose_flushed_too: bool) {
    let now = std::time::Instant::now();
    let (mut enc, mut dec) = pair(strength, false);
    let mut i = 0;
    while i < from {
        expect_plain(
            &mut dec,
            seal(&mut enc, 0x0021, &payload(i)),
            0x0021,
            &payload(i),
        );
        i += 1;
    }
    for _ in 0..lost {
        seal(&mut enc, 0x0021, &payload(i));
        i += 1;
    }
    // The first packet after the gap: reset request.
    let mut wire = seal(&mut enc, 0x0021, &payload(i));
    let ccount = MppeHeader::parse(&wire).unwrap().ccount;
    let expected_lost = u16::try_from(lost).unwrap();
    if ccount & 0xff == 0xff {
        // A flag packet is flushed: it resynchronises by itself, no request.
        expect_plain(&mut dec, wire, 0x0021, &payload(i));
        return;
    }
    assert_eq!(
        dec.decrypt(now, &mut wire),
        Ok(Decrypted::SendResetRequest {
            ccount,
            lost: expected_lost
        })
    );
    assert!(dec.is_discarding());
    i += 1;
    // Packets in flight before the peer gets the Reset-Request: discarded.
    for _ in 0..3 {
        let mut wire = seal(&mut enc, 0x0021, &payload(i));
        let h = MppeHeader::parse(&wire).unwrap();
        i += 1;
        if h.flushed() {
            // A flag packet on the way resynchronises by itself.
            expect_plain(&mut dec, wire, 0x0021, &payload(i - 1));
            return;
        }
        assert_eq!(
            dec.decrypt(now, &mut wire),
            Err(MppeError::AwaitingFlush { ccount: h.ccount })
        );
    }
    enc.reset();
    let wire = seal(&mut enc, 0x0021, &payload(i));
    assert!(MppeHeader::parse(&wire).unwrap().flushed());
    if lose_flushed_too {
        // The flushed packet is lost too: the next flag packet (at most 256 later)
        // resynchronises.
        i += 1;
        loop {
            let mut wire = seal(&mut enc, 0x0021, &payload(i));
            let h = MppeHeader::parse(&wire).unwrap();
            if h.flushed() {
                assert_eq!(h.ccount & 0xff, 0xff);
                expect_plain(&mut dec, wire, 0x0021, &payload(i));
                break;
            }
            assert_eq!(
                dec.decrypt(now, &mut wire),
                Err(MppeError::AwaitingFlush { ccount: h.ccount })
            );
            i += 1;
        }
    } else {
        expect_plain(&mut dec, wire, 0x0021, &payload(i));
    }
    assert!(!dec.is_discarding());
    i += 1;
    // And the stream stays in step, across the next rekeys.
    for _ in 0..600 {
        expect_plain(
            &mut dec,
            seal(&mut enc, 0x0021, &payload(i)),
            0x0021,
            &payload(i),
        );
        i += 1;
    }
}

#[test]
fn stateful_loss_asks_for_a_reset_and_resynchronises() {
    for strength in STRENGTHS {
        // One packet lost.
        stateful_loss(strength, 10, 1, false);
        // The lost packets include flag packets (0xff and 0x1ff).
        stateful_loss(strength, 200, 400, false);
        // The gap starts on a flag packet; ends just before one.
        stateful_loss(strength, 255, 3, false);
        stateful_loss(strength, 10, 0xfd - 10, false);
        // Across the 4096 wrap.
        stateful_loss(strength, 4000, 200, false);
        // The flushed packet is lost as well.
        stateful_loss(strength, 10, 5, true);
        stateful_loss(strength, 250, 30, true);
    }
}

#[test]
fn stateful_survives_an_injected_packet() {
    let now = std::time::Instant::now();
    let (mut enc, mut dec) = pair(KeyStrength::Bits128, false);
    for i in 0..5 {
        expect_plain(
            &mut dec,
            seal(&mut enc, 0x0021, &payload(i)),
            0x0021,
            &payload(i),
        );
    }
    // A forged packet with the next count consumes keystream (or decrypts to an
    // invalid protocol and is reported at once).
    let mut forged = vec![0x10, 0x05, 0xde, 0xad, 0xbe, 0xef];
    let forged_reported = matches!(
        dec.decrypt(now, &mut forged),
        Ok(Decrypted::SendResetRequest { ccount: 5, lost: 0 })
    );
    // The real packet 5 then cannot decrypt: reset request (or still discarding).
    let mut real = seal(&mut enc, 0x0021, &payload(5));
    let outcome = dec.decrypt(now, &mut real);
    if forged_reported {
        assert_eq!(outcome, Err(MppeError::AwaitingFlush { ccount: 5 }));
    } else {
        assert_eq!(
            outcome,
            Ok(Decrypted::SendResetRequest {
                ccount: 5,
                lost: 4095
            })
        );
    }
    enc.reset();
    expect_plain(
        &mut dec,
        seal(&mut enc, 0x0021, &payload(6)),
        0x0021,
        &payload(6),
    );
    expect_plain(
        &mut dec,
        seal(&mut enc, 0x0021, &payload(7)),
        0x0021,
        &payload(7),
    );
}

#[test]
fn stateful_first_packet_is_not_flushed_and_reset_is_one_shot() {
    let (mut enc, mut dec) = pair(KeyStrength::Bits56, false);
    let wire = seal(&mut enc, 0x0021, b"a");
    assert_eq!(wire[0], bits::ENCRYPTED);
    expect_plain(&mut dec, wire, 0x0021, b"a");
    enc.reset();
    let wire = seal(&mut enc, 0x0021, b"b");
    assert_eq!(wire[0], bits::ENCRYPTED | bits::FLUSHED);
    expect_plain(&mut dec, wire, 0x0021, b"b");
    let wire = seal(&mut enc, 0x0021, b"c");
    assert_eq!(wire[0], bits::ENCRYPTED);
    expect_plain(&mut dec, wire, 0x0021, b"c");
}

#[test]
fn encrypt_needs_headroom() {
    let (mut enc, _) = pair(KeyStrength::Bits128, true);
    assert_eq!(
        enc.encrypt(0x0021, &mut [0; 3]),
        Err(MppeError::NoHeadroom { len: 3 })
    );
    // An empty payload is fine: header and protocol only.
    let mut buf = [0; 4];
    enc.encrypt(0x0021, &mut buf).unwrap();
}

#[test]
fn never_panics_on_arbitrary_bytes() {
    let now = std::time::Instant::now();
    for stateless in [true, false] {
        let (_, mut dec) = pair(KeyStrength::Bits40, stateless);
        let mut x: u32 = 0x1234_5678;
        for len in 0..300usize {
            let mut pkt: Vec<u8> = (0..len % 40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = dec.decrypt(now, &mut pkt);
        }
    }
}

#[test]
fn stateful_resynchronises_with_a_sender_that_only_restarts_rc4_on_reset() {
    let now = std::time::Instant::now();
    for strength in STRENGTHS {
        let mut model = Model::new(strength, false);
        model.reset_changes_key = false;
        let mut dec = Decryptor::new(START, MppeConfig::new(strength, false));
        let mut i = 0;
        let mut next = |model: &mut Model, reset: bool| {
            i += 1;
            let data = payload(i);
            (model.send(0x0021, &data, reset), data)
        };
        for _ in 0..10 {
            let (wire, data) = next(&mut model, false);
            expect_plain(&mut dec, wire, 0x0021, &data);
        }
        // A spontaneous flush (no loss) is followed too.
        let (wire, data) = next(&mut model, true);
        expect_plain(&mut dec, wire, 0x0021, &data);
        // Loss across a flag packet, a reset request, the flushed answer.
        for _ in 0..300 {
            next(&mut model, false);
        }
        let (mut wire, _) = next(&mut model, false);
        assert!(matches!(
            dec.decrypt(now, &mut wire),
            Ok(Decrypted::SendResetRequest { lost: 300, .. })
        ));
        let (wire, data) = next(&mut model, true);
        expect_plain(&mut dec, wire, 0x0021, &data);
        for _ in 0..600 {
            let (wire, data) = next(&mut model, false);
            expect_plain(&mut dec, wire, 0x0021, &data);
        }
    }
}
