//! The Internet checksum (RFC 1071), for the IPv4, UDP and ICMP headers the agent
//! writes itself (DHCPINFORM answers, the load generator's echo requests).

/// One's-complement sum of `data` as 16-bit big-endian words (odd byte padded),
/// added to `acc`.
pub fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds the carries of a [`sum16`] back into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to write into a header whose checksum field is zero in `data`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(0, &data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn a_header_with_its_checksum_sums_to_all_ones() {
        let mut header = [
            0x45, 0x00, 0x00, 0x54, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0, 0, 192, 0, 2, 10, 203,
            0, 113, 10,
        ];
        let sum = checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(fold(sum16(0, &header)), 0xffff);
        // An odd length pads with a zero byte.
        assert_eq!(fold(sum16(0, &[0xab])), 0xab00);
    }
}
