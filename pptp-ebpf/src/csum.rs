//! Internet checksums (RFC 1071) and their incremental update (RFC 1624), on
//! 16-bit values as read big-endian from the header.

/// Checksum of a 20-byte IPv4 header (its checksum field must be zero).
#[inline(always)]
pub fn ipv4_header(header: &[u8; 20]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 20 {
        sum += u16::from_be_bytes([header[i], header[i + 1]]) as u32;
        i += 2;
    }
    !fold(sum)
}

/// The checksum after one 16-bit word of the covered data changes from `old` to
/// `new` (RFC 1624, eqn. 3).
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    !fold(!check as u32 + !old as u32 + new as u32)
}

#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
