//! The frames the generator sends: enhanced GRE from the sessions' peers for
//! decapsulation, plain IPv4 to the clients for encapsulation and kernel forwarding.

use std::net::Ipv4Addr;

use pptp_tests::bench_lab::{addr, link};

use crate::{Direction, Plane, session};

fn ethernet(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 packet of `total` bytes (header included) with a correct header checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = pptp_agent::inet::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A UDP datagram (checksum 0: none) in an IPv4 packet of `size` bytes.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let udp_len = (size - 20) as u16;
    let mut udp = vec![0x9c, 0x40, 0x23, 0x29];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(udp_len as usize, 0xa5);
    ipv4(src, dst, 17, &udp)
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
            let mut gre = vec![0x30, 0x01, 0x88, 0x0b];
            gre.extend_from_slice(&((inner.len() + 4) as u16).to_be_bytes());
            gre.extend_from_slice(&s.call_id.to_be_bytes());
            gre.extend_from_slice(&[0, 0, 0, 0]); // sequence number: the generator's
            gre.extend_from_slice(&[0xff, 0x03, 0x00, 0x21]);
            gre.extend_from_slice(&inner);
            ethernet(
                link::UPLINK_MAC,
                link::WAN_MAC,
                &ipv4(s.peer, addr::UPLINK, 47, &gre),
            )
        }
        (Direction::Encap, _) => ethernet(
            link::LAN_MAC,
            link::HOST_MAC,
            &udp_packet(addr::LAN_HOST, s.client, size),
        ),
    }
}
