//! The frames the generator sends: enhanced GRE from the sessions' peers for
//! decapsulation, plain IPv4 to the clients for encapsulation and kernel forwarding.

use std::net::Ipv4Addr;

use pptp_common::wire::{
    gre, ipv4,
    ppp::{self, protocol},
};
use pptp_tests::bench_lab::{addr, link};

use crate::{Direction, Plane, session};

fn ethernet(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 packet carrying `payload`, with a correct header checksum.
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let header = ipv4::Repr::new(src.octets(), dst.octets(), proto, payload.len() as u16);
    [&header.header()[..], payload].concat()
}

/// A UDP datagram (checksum 0: none) in an IPv4 packet of `size` bytes.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let udp_len = (size - 20) as u16;
    let mut udp = vec![0x9c, 0x40, 0x23, 0x29];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(udp_len as usize, 0xa5);
    ipv4_packet(src, dst, ipv4::PROTO_UDP, &udp)
}

/// What the generator sends for session `i` in `direction` to data plane `plane`.
pub fn frame(direction: Direction, plane: Plane, i: usize, size: usize) -> Vec<u8> {
    let s = session(i);
    match (direction, plane) {
        (Direction::Decap, Plane::Kernel) => ethernet(
            link::UPLINK_MAC,
            link::WAN_MAC,
            &udp_packet(s.client, addr::LAN_HOST, size),
        ),
        (Direction::Decap, _) => {
            let inner = udp_packet(s.client, addr::LAN_HOST, size);
            let ppp = ppp::Header::uncompressed(protocol::IPV4);
            let payload_len = (ppp.len() + inner.len()) as u16;
            let mut gre = gre::fixed(s.call_id, payload_len, true, false).to_vec();
            gre.extend_from_slice(&[0, 0, 0, 0]); // sequence number: the generator's
            gre.extend_from_slice(&ppp);
            gre.extend_from_slice(&inner);
            ethernet(
                link::UPLINK_MAC,
                link::WAN_MAC,
                &ipv4_packet(s.peer, addr::UPLINK, ipv4::PROTO_GRE, &gre),
            )
        }
        (Direction::Encap, _) => ethernet(
            link::LAN_MAC,
            link::HOST_MAC,
            &udp_packet(addr::LAN_HOST, s.client, size),
        ),
    }
}
