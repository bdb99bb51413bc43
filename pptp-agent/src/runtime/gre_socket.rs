//! The agent's raw GRE socket (IP protocol 47): every GRE packet the kernel gets and
//! XDP did not consume arrives here (PPP negotiation, MPPE, fallback sessions), and
//! the agent's own GRE packets leave through it.
//!
//! Packets are received in batches (`recvmmsg`) into buffers allocated once.
//!
//! It must be open whenever XDP may pass GRE up: a kernel with no GRE handler and no
//! raw GRE socket answers GRE with ICMP protocol-unreachable, and real peers tear the
//! call down on it.

use std::{io, net::Ipv4Addr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

use crate::inet::Ipv4Packet;

const IPPROTO_GRE: i32 = 47;

/// The receive buffer asked for: room for a burst of about 10,000 small packets
/// (an skb of a 100-byte packet takes about 800 bytes of it), as when every one of
/// thousands of sessions sends at once (the load generator's echo round).
const RECV_BUFFER: usize = 8 << 20;

/// Sets the socket's receive buffer to `bytes`: beyond `net.core.rmem_max` with
/// SO_RCVBUFFORCE when the agent may (CAP_NET_ADMIN), else as far as SO_RCVBUF
/// goes (`rmem_max`, 208 KiB by default: a few hundred packets).
fn set_recv_buffer(socket: &Socket, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid descriptor, and a c_int option value of the size given.
    let forced = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        socket.set_recv_buffer_size(bytes)?;
    }
    let granted = socket.recv_buffer_size()?;
    if granted < bytes {
        tracing::warn!(
            granted,
            asked = bytes,
            "the raw GRE socket's receive buffer is smaller than asked (no CAP_NET_ADMIN; raise net.core.rmem_max): bursts from many sessions at once may be dropped"
        );
    }
    Ok(())
}

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
        set_recv_buffer(&socket, RECV_BUFFER)?;
        // SAFETY: the socket is owned by the AsyncFd for its whole life and its fd
        // never changes.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Self { fd })
    }

    /// Waits for packets and receives up to a batch of them with one `recvmmsg`
    /// call. Returns how many arrived; [`RecvBatch::packet`] reads each.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| batch.recv(fd.get_ref())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends `gre` (header and payload) to `dst`; the kernel adds the IPv4 header.
    pub fn send_to(&self, gre: &[u8], dst: Ipv4Addr) -> io::Result<()> {
        let addr = SockAddr::from(std::net::SocketAddrV4::new(dst, 0));
        self.fd.get_ref().send_to(gre, &addr).map(drop)
    }
}

/// Buffers for one `recvmmsg` call: [`BATCH`] packets of up to [`PACKET_MAX`] bytes,
/// allocated once.
pub struct RecvBatch {
    buffers: Vec<[u8; PACKET_MAX]>,
    lengths: [usize; BATCH],
    truncated: [bool; BATCH],
}

/// Packets per `recvmmsg` call.
pub const BATCH: usize = 32;
/// Largest GRE packet (with its IPv4 header) received whole; longer ones are
/// truncated and refused. Uplinks carry 1500-byte frames; this leaves room for jumbo.
pub const PACKET_MAX: usize = 9216;

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            buffers: vec![[0; PACKET_MAX]; BATCH],
            lengths: [0; BATCH],
            truncated: [false; BATCH],
        }
    }
}

impl RecvBatch {
    fn recv(&mut self, socket: &Socket) -> io::Result<usize> {
        let mut iovecs: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.buffers[i].as_mut_ptr().cast(),
            iov_len: PACKET_MAX,
        });
        // SAFETY: an all-zero mmsghdr is valid; each is pointed at its own iovec.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (header, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers and buffers outlive the call; MSG_DONTWAIT keeps it
        // non-blocking (the socket is non-blocking too).
        let n = unsafe {
            libc::recvmmsg(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, header) in headers.iter().take(n).enumerate() {
            self.lengths[i] = (header.msg_len as usize).min(PACKET_MAX);
            self.truncated[i] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Packet `i` of the last batch: its bytes (the engine decrypts in place) and
    /// where its GRE header lies, or an `InvalidData` error for a truncated packet or
    /// one that is not IPv4.
    pub fn packet_mut(&mut self, i: usize) -> io::Result<(&mut [u8], Received)> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if self.truncated[i] {
            return Err(bad("packet truncated"));
        }
        let bytes = &mut self.buffers[i][..self.lengths[i]];
        let ip = Ipv4Packet::parse(bytes).ok_or_else(|| bad("not an IPv4 packet"))?;
        let received = Received {
            src: ip.source,
            gre_offset: ip.header_len,
            end: ip.len,
        };
        Ok((bytes, received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_hands_out_ipv4_packets_only() {
        let mut batch = RecvBatch::default();
        let p = [
            0x45, 0, 0, 24, 0, 0, 0, 0, 64, 47, 0, 0, 198, 51, 100, 10, 198, 51, 100, 1, 0x30,
            0x01, 0x88, 0x0b,
        ];
        batch.buffers[0][..p.len()].copy_from_slice(&p);
        batch.lengths[0] = p.len();
        let (_, r) = batch.packet_mut(0).unwrap();
        assert_eq!(
            (r.src, r.gre_offset, r.end),
            (Ipv4Addr::new(198, 51, 100, 10), 20, 24)
        );
        batch.lengths[0] = 19;
        assert!(batch.packet_mut(0).is_err());
        batch.lengths[0] = p.len();
        batch.truncated[0] = true;
        assert!(batch.packet_mut(0).is_err());
    }
}
