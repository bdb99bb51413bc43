//! The receive window of a session's GRE sequence numbers (RFC 2637 §4.3), judged
//! the same way by the uplink XDP program and by the agent, on the same
//! [`Session`](crate::session::Session) for sessions installed in the maps.
//!
//! A packet is judged before anything else is looked at, but the window only moves
//! when the packet is *accepted*: forwarded by XDP, or taken by the agent after its
//! own checks (inner source, decryption). A frame that is dropped later (spoofed
//! inner source, garbage) must not push the genuine packets that follow it out of
//! the window as "old".
//!
//! A packet more than [`MAX_SEQ_JUMP`] ahead of the highest accepted number is not
//! accepted at once: it is remembered as the *probe*, and the next packet that
//! follows the probe closely (within [`MAX_SEQ_JUMP`] after it, before any packet is
//! accepted in between) is taken as a genuine jump, after a long outage for
//! example, which costs the peer one packet. A blind attacker who guessed a call ID
//! and spoofed the client's outer address can therefore no longer end a session
//! with one forged packet; two back-to-back ones still move the window, costing the
//! session the packets up to the forged number (the same as what the kernel's own
//! pptp driver accepts from a single packet).

/// How far ahead of the highest accepted sequence number a packet is accepted
/// without a probe: 4096 packets is more than a peer sends in one round trip
/// at hundreds of thousands of packets per second.
pub const MAX_SEQ_JUMP: u32 = 4096;

/// How a received sequence number stands against the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Newer than anything accepted (or the first): may be accepted.
    New,
    /// The highest accepted number again.
    Duplicate,
    /// Older than the highest accepted number: reordered or replayed.
    Old,
    /// Too far ahead, with no probe it follows: remember it as the probe, drop it.
    TooFar,
}

/// Judges `seq` against the highest accepted number and the probe (`None`: not
/// set). Changes nothing: the caller records with [`Session`] or its own fields.
///
/// [`Session`]: crate::session::Session
#[inline(always)]
pub fn judge(highest: Option<u32>, probe: Option<u32>, seq: u32) -> Judgement {
    let Some(highest) = highest else {
        return Judgement::New;
    };
    let ahead = seq.wrapping_sub(highest) as i32;
    if ahead == 0 {
        return Judgement::Duplicate;
    }
    if ahead < 0 {
        return Judgement::Old;
    }
    if ahead as u32 <= MAX_SEQ_JUMP {
        return Judgement::New;
    }
    match probe {
        Some(probe) if follows(seq, probe) => Judgement::New,
        _ => Judgement::TooFar,
    }
}

/// `seq` comes after `probe`, by at most [`MAX_SEQ_JUMP`].
#[inline(always)]
fn follows(seq: u32, probe: u32) -> bool {
    let ahead = seq.wrapping_sub(probe) as i32;
    ahead > 0 && ahead as u32 <= MAX_SEQ_JUMP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_packet_is_new_whatever_its_number() {
        assert_eq!(judge(None, None, 0x8000_0000), Judgement::New);
        assert_eq!(judge(None, Some(5), 7), Judgement::New);
    }

    #[test]
    fn the_window_is_bounded_ahead_and_closed_behind() {
        let h = Some(u32::MAX - 10);
        assert_eq!(judge(h, None, u32::MAX - 10), Judgement::Duplicate);
        assert_eq!(judge(h, None, u32::MAX - 11), Judgement::Old);
        assert_eq!(judge(h, None, 5), Judgement::New, "wraps around");
        let edge = (u32::MAX - 10).wrapping_add(MAX_SEQ_JUMP);
        assert_eq!(judge(h, None, edge), Judgement::New);
        assert_eq!(judge(h, None, edge.wrapping_add(1)), Judgement::TooFar);
        assert_eq!(judge(Some(0), None, 100_000), Judgement::TooFar);
    }

    #[test]
    fn a_packet_that_follows_the_probe_is_a_genuine_jump() {
        let h = Some(10);
        assert_eq!(judge(h, Some(100_000), 100_001), Judgement::New);
        assert_eq!(
            judge(h, Some(100_000), 100_000 + MAX_SEQ_JUMP),
            Judgement::New
        );
        assert_eq!(judge(h, Some(100_000), 100_000), Judgement::TooFar);
        assert_eq!(judge(h, Some(100_000), 99_999), Judgement::TooFar);
        assert_eq!(
            judge(h, Some(100_000), 100_001 + MAX_SEQ_JUMP),
            Judgement::TooFar
        );
    }
}
