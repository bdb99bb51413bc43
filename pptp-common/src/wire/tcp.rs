//! The parts of the TCP header (RFC 9293 §3.1) the LAN XDP program reads to clamp
//! the MSS option of a SYN, and the checksum arithmetic of that clamp.

use super::{checksum, get16};

pub mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// Data offset in 32-bit words (high nibble).
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const CHECKSUM: Field = 16..18;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Flags: synchronize.
pub const FLAG_SYN: u8 = 0x02;
/// Option kinds.
pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
/// Length of the MSS option.
pub const OPT_MSS_LEN: u8 = 4;
/// IPv4 header + TCP header without options: what the MSS leaves out of the MTU.
pub const TCP_IPV4_HEADERS: u16 = 40;

/// The first [`HEADER_LEN`] bytes of a TCP header, as read from a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header(pub [u8; HEADER_LEN]);

impl Header {
    /// The header's length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.0[field::DATA_OFFSET] >> 4) as usize) * 4
    }

    #[inline(always)]
    pub fn is_syn(&self) -> bool {
        self.0[field::FLAGS] & FLAG_SYN != 0
    }

    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        get16(&self.0, field::CHECKSUM)
    }
}

/// The TCP checksum after the value of an MSS option at `offset` bytes into the
/// header changes from `old` to `new`. The checksum sums 16-bit words at even
/// offsets of the segment: at an odd offset the value's bytes fall into two words,
/// where they weigh as the byte-swapped value (RFC 1071 §2(B)).
#[inline(always)]
pub fn mss_checksum(check: u16, offset: usize, old: u16, new: u16) -> u16 {
    if offset.is_multiple_of(2) {
        checksum::replace16(check, old, new)
    } else {
        checksum::replace16(check, old.swap_bytes(), new.swap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::{pseudo_header, sum16};

    /// A SYN 192.0.2.10:40000 -> 203.0.113.10:80 whose options put the MSS option
    /// (value 1460) at `offset` into the header, its checksum valid.
    fn syn(offset: usize) -> [u8; 28] {
        let mut seg = [0u8; 28];
        seg[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        seg[field::DATA_OFFSET] = 7 << 4;
        seg[field::FLAGS] = FLAG_SYN;
        seg[20..28].fill(OPT_NOP);
        seg[offset..offset + 4].copy_from_slice(&[OPT_MSS, OPT_MSS_LEN, 0x05, 0xb4]);
        let acc = pseudo_header([192, 0, 2, 10], [203, 0, 113, 10], 6, 28);
        let check = !crate::wire::checksum::fold(sum16(acc, &seg));
        seg[16..18].copy_from_slice(&check.to_be_bytes());
        seg
    }

    #[test]
    fn a_clamped_mss_keeps_the_checksum_valid_at_any_offset() {
        let acc = pseudo_header([192, 0, 2, 10], [203, 0, 113, 10], 6, 28);
        for offset in 20..=24 {
            let mut seg = syn(offset);
            let header = Header(*seg.first_chunk().unwrap());
            assert!(header.is_syn() && header.header_len() == 28);
            assert!(crate::wire::checksum::verifies(acc, &seg));
            let check = mss_checksum(header.checksum(), offset, 1460, 1360);
            seg[offset + 2..offset + 4].copy_from_slice(&1360u16.to_be_bytes());
            seg[16..18].copy_from_slice(&check.to_be_bytes());
            assert!(
                crate::wire::checksum::verifies(acc, &seg),
                "MSS at offset {offset}"
            );
        }
    }
}
