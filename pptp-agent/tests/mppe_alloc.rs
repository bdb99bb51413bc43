//! The MPPE per-packet path allocates nothing: a counting global allocator sees
//! no allocation across thousands of encrypt/decrypt calls in every mode,
//! including stateless jumps, refusals, stateful loss and resynchronisation.

mod support;

use pptp_agent::mppe::cipher::ENCRYPT_HEADROOM;
use pptp_agent::mppe::{Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig};
use support::alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_packet() {
    let now = std::time::Instant::now();
    for stateless in [true, false] {
        for strength in [
            KeyStrength::Bits40,
            KeyStrength::Bits56,
            KeyStrength::Bits128,
        ] {
            let config = MppeConfig::new(strength, stateless);
            let mut enc = Encryptor::new([1; 16], config);
            let mut dec = Decryptor::new([1; 16], config);
            let mut buf = [0u8; ENCRYPT_HEADROOM + 1400];
            let mut old = [0u8; ENCRYPT_HEADROOM + 1400];
            let before = allocations();
            let mut delivered = 0;
            for i in 0..5000u32 {
                buf[ENCRYPT_HEADROOM..].fill(i as u8);
                enc.encrypt(0x0021, &mut buf).unwrap();
                if i % 50 == 7 {
                    continue; // lost
                }
                if i % 50 == 20 {
                    enc.reset(); // the peer's Reset-Request reaches us
                }
                if i % 50 == 1 {
                    old = buf; // replayed later
                }
                if let Ok(Decrypted::Packet(p)) = dec.decrypt(now, &mut buf) {
                    assert_eq!(p.payload[0], i as u8);
                    delivered += 1;
                }
                if i % 50 == 30 && stateless {
                    // Refused as late (stateful would lose sync, tested elsewhere).
                    assert!(dec.decrypt(now, &mut old).is_err());
                }
            }
            let after = allocations();
            assert_eq!(after, before, "{strength:?} stateless={stateless}");
            // Stateless loses one packet in 50; stateful also the 13 after it,
            // up to the flushed packet answering the reset (fewer when a flag
            // packet resynchronises first).
            if stateless {
                assert_eq!(delivered, 4900);
            } else {
                assert!((3600..3700).contains(&delivered), "{delivered}");
            }
        }
    }
}
