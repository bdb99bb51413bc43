//! TCP MSS clamping: a SYN whose MSS option would make segments larger than the
//! tunnel carries gets the option lowered (and the TCP checksum updated, with the
//! arithmetic of `pptp_common::wire::tcp`), so that TCP never depends on
//! fragmentation or on ICMP reaching the sender.

use pptp_common::wire::{
    get16,
    tcp::{self, OPT_END, OPT_MSS, OPT_MSS_LEN, OPT_NOP},
};

use crate::packet::Bytes;

/// Bound on the options walked (40 bytes of options hold at most 40 NOPs, but an
/// MSS option sits first in every stack we know; 12 steps cover NOP padding).
const MAX_OPTION_STEPS: usize = 12;

/// Lowers the MSS option of a TCP SYN at `at` (offset of the TCP header) to
/// `max_mss`. Returns true if the packet was changed.
#[inline(always)]
pub fn clamp<B: Bytes>(pkt: &B, at: usize, max_mss: u16) -> bool {
    let Some(header) = pkt.read::<{ tcp::HEADER_LEN }>(at) else {
        return false;
    };
    let header = tcp::Header(header);
    let header_len = header.header_len();
    if !header.is_syn() || header_len <= tcp::HEADER_LEN {
        return false;
    }
    let mut offset = tcp::HEADER_LEN;
    for _ in 0..MAX_OPTION_STEPS {
        if offset + 4 > header_len || offset > 56 {
            return false;
        }
        let Some(option) = pkt.read::<4>(at + offset) else {
            return false;
        };
        match option[0] {
            OPT_END => return false,
            OPT_NOP => offset += 1,
            OPT_MSS if option[1] == OPT_MSS_LEN => {
                let mss = get16(&option, 2..4);
                if mss <= max_mss {
                    return false;
                }
                let check = tcp::mss_checksum(header.checksum(), offset, mss, max_mss);
                let [hi, lo] = max_mss.to_be_bytes();
                return pkt
                    .write(at + offset, &[OPT_MSS, OPT_MSS_LEN, hi, lo])
                    .is_some()
                    && pkt
                        .write(at + tcp::field::CHECKSUM.start, &check.to_be_bytes())
                        .is_some();
            }
            _ => {
                let len = option[1] as usize;
                if len < 2 {
                    return false;
                }
                offset += len;
            }
        }
    }
    false
}
