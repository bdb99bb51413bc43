//! The agent's raw GRE socket (IP protocol 47): every GRE packet the kernel gets and
//! XDP did not consume arrives here (PPP negotiation, MPPE, fallback sessions), and
//! the agent's own GRE packets leave through it.
//!
//! It must be open whenever XDP may pass GRE up: a kernel with no GRE handler and no
//! raw GRE socket answers GRE with ICMP protocol-unreachable, and real peers tear the
//! call down on it.

use std::{io, mem::MaybeUninit, net::Ipv4Addr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

const IPPROTO_GRE: i32 = 47;

/// A GRE packet as received: the sender's address and the GRE bytes.
#[derive(Debug)]
pub struct Received {
    pub src: Ipv4Addr,
    /// Offset of the GRE header in the buffer (after the IPv4 header).
    pub gre_offset: usize,
    /// End of the packet in the buffer.
    pub end: usize,
}

/// The raw GRE socket, registered with tokio.
pub struct GreSocket {
    fd: AsyncFd<Socket>,
}

impl GreSocket {
    /// Opens the socket (needs CAP_NET_RAW).
    pub fn open() -> io::Result<Self> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))?;
        socket.set_nonblocking(true)?;
        socket.set_recv_buffer_size(4 << 20)?;
        // SAFETY: the socket is owned by the AsyncFd for its whole life and its fd
        // never changes.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Receives one packet into `buf` (IPv4 header included, as raw sockets deliver
    /// it). Malformed IPv4 framing is reported as `InvalidData`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_into(fd.get_ref(), buf)) {
                Ok(result) => return result.and_then(|n| parse_ipv4(&buf[..n])),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives a packet if one is waiting, without blocking.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<Option<Received>> {
        match recv_into(self.fd.get_ref(), buf) {
            Ok(n) => parse_ipv4(&buf[..n]).map(Some),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `gre` (header and payload) to `dst`; the kernel adds the IPv4 header.
    pub fn send_to(&self, gre: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(gre, &addr).map(drop)
    }
}

fn recv_into(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `recv` only writes initialised bytes into the buffer it is given, and
    // a `[u8]` is valid for any bytes.
    let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
    socket.recv(uninit)
}

fn parse_ipv4(packet: &[u8]) -> io::Result<Received> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return Err(bad("not an IPv4 packet"));
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if ihl < 20 || total < ihl || total > packet.len() {
        return Err(bad("IPv4 header lengths do not fit the packet"));
    }
    Ok(Received {
        src: Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]),
        gre_offset: ihl,
        end: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_framing_is_checked() {
        let mut p = vec![
            0x45, 0, 0, 24, 0, 0, 0, 0, 64, 47, 0, 0, 198, 51, 100, 10, 198, 51, 100, 1,
        ];
        p.extend_from_slice(&[0x30, 0x01, 0x88, 0x0b]);
        let r = parse_ipv4(&p).unwrap();
        assert_eq!(
            (r.src, r.gre_offset, r.end),
            (Ipv4Addr::new(198, 51, 100, 10), 20, 24)
        );
        assert!(parse_ipv4(&p[..19]).is_err());
        let mut long = p.clone();
        long[3] = 200;
        assert!(parse_ipv4(&long).is_err(), "total length beyond the packet");
        let mut v6 = p;
        v6[0] = 0x65;
        assert!(parse_ipv4(&v6).is_err());
    }
}
