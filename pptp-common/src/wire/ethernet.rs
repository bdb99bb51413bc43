//! The Ethernet II header (no VLAN tags): what XDP reads to find IPv4 and writes
//! for the next hop.

use super::{Field, put16};

pub mod field {
    use crate::wire::Field;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// The header of a frame from `source` to `destination` carrying `ethertype`.
#[inline(always)]
pub fn header(destination: [u8; 6], source: [u8; 6], ethertype: u16) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    put_mac(&mut header, field::DESTINATION, destination);
    put_mac(&mut header, field::SOURCE, source);
    put16(&mut header, field::ETHERTYPE, ethertype);
    header
}

#[inline(always)]
fn put_mac(header: &mut [u8; HEADER_LEN], field: Field, mac: [u8; 6]) {
    let at = field.start;
    let mut i = 0;
    while i < 6 {
        header[at + i] = mac[i];
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_destination_source_type() {
        assert_eq!(
            header([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1], ETHERTYPE_IPV4),
            [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        );
    }
}
