//! TCP MSS clamping: a SYN whose MSS option would make segments larger than the
//! tunnel carries gets the option lowered (and the TCP checksum updated), so that
//! TCP never depends on fragmentation or on ICMP reaching the sender.

use crate::{
    csum,
    packet::{Bytes, be16},
};

const TCP_SYN: u8 = 0x02;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
/// Bound on the options walked (40 bytes of options hold at most 40 NOPs, but an
/// MSS option sits first in every stack we know; 12 steps cover NOP padding).
const MAX_OPTION_STEPS: usize = 12;

/// Lowers the MSS option of a TCP SYN at `tcp` (offset of the TCP header) to
/// `max_mss`. Returns true if the packet was changed.
#[inline(always)]
pub fn clamp<B: Bytes>(pkt: &B, tcp: usize, max_mss: u16) -> bool {
    let Some(header) = pkt.read::<20>(tcp) else {
        return false;
    };
    let data_offset = ((header[12] >> 4) as usize) * 4;
    if header[13] & TCP_SYN == 0 || data_offset <= 20 {
        return false;
    }
    let mut offset = 20;
    for _ in 0..MAX_OPTION_STEPS {
        if offset + 4 > data_offset || offset > 56 {
            return false;
        }
        let Some(option) = pkt.read::<4>(tcp + offset) else {
            return false;
        };
        match option[0] {
            OPT_END => return false,
            OPT_NOP => offset += 1,
            OPT_MSS if option[1] == 4 => {
                let mss = be16(&option, 2);
                if mss <= max_mss {
                    return false;
                }
                // The checksum sums 16-bit words at even offsets of the segment: at
                // an odd offset the value's bytes fall into two words, where they
                // weigh as the byte-swapped value (RFC 1071 §2(B)).
                let (old, new) = if offset % 2 == 0 {
                    (mss, max_mss)
                } else {
                    (mss.swap_bytes(), max_mss.swap_bytes())
                };
                let check = csum::replace16(be16(&header, 16), old, new);
                let [hi, lo] = max_mss.to_be_bytes();
                let [c0, c1] = check.to_be_bytes();
                return pkt.write(tcp + offset, &[OPT_MSS, 4, hi, lo]).is_some()
                    && pkt.write(tcp + 16, &[c0, c1]).is_some();
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
