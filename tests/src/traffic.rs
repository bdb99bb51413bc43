//! Traffic the tests and the demo send: PPTP control-channel TCP and enhanced GRE.
//!
//! Every generator is bounded in count and time and returns what it sent, measured
//! independently of the program under test (the sender's own socket calls, or the
//! sending namespace's TCP counters), so tests can compare it with the data plane's
//! counters exactly.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use pptp_common::wire::gre;
use socket2::{Domain, Protocol, Socket, Type};

use crate::netns;

/// IP protocol number of GRE.
const IPPROTO_GRE: i32 = 47;
/// Length of the IPv4 header the kernel puts in front of a raw-socket payload.
pub const IPV4_HEADER_LEN: usize = 20;
/// Length of an Ethernet header.
pub const ETH_HEADER_LEN: usize = 14;
/// Bound on any single socket operation of a generator.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What a GRE burst put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreSent {
    pub packets: u64,
    /// Length of each GRE packet (GRE header + PPP frame), without IPv4.
    pub gre_len: usize,
}

impl GreSent {
    /// Bytes of the Ethernet frames carrying the burst.
    pub fn frame_bytes(&self) -> u64 {
        self.packets * (ETH_HEADER_LEN + IPV4_HEADER_LEN + self.gre_len) as u64
    }
}

/// One enhanced GRE packet (RFC 2637 §4.1, key and sequence present) carrying a PPP
/// LCP Echo-Request: a frame a PPTP peer could send.
pub fn enhanced_gre_lcp_echo(call_id: u16, seq: u32) -> Vec<u8> {
    let ppp: [u8; 12] = [
        0xff,
        0x03,
        0xc0,
        0x21, // address, control, protocol LCP
        0x09,
        (seq & 0xff) as u8,
        0x00,
        0x08, // Echo-Request, id, length 8
        0x12,
        0x34,
        0x56,
        0x78, // magic number
    ];
    enhanced_gre(call_id, seq, &ppp)
}

/// Sends `count` enhanced GRE packets from namespace `ns` to `dst` through a raw
/// IP socket (the kernel adds the IPv4 header).
pub fn send_gre(ns: &str, dst: Ipv4Addr, call_id: u16, count: u32) -> anyhow::Result<GreSent> {
    ensure!(
        count <= 1_000_000,
        "refusing to send more than 1,000,000 packets"
    );
    let packets = (0..count).map(move |seq| enhanced_gre_lcp_echo(call_id, seq));
    let gre_len = enhanced_gre_lcp_echo(call_id, 0).len();
    send_gre_packets(ns, dst, packets)?;
    Ok(GreSent {
        packets: u64::from(count),
        gre_len,
    })
}

/// Sends each of `packets` (GRE header and payload) from namespace `ns` to `dst`
/// through a raw IP socket (the kernel adds the IPv4 header, with the namespace's
/// own address as the source).
pub fn send_gre_packets(
    ns: &str,
    dst: Ipv4Addr,
    packets: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> anyhow::Result<()> {
    netns::run_in(ns, move || {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))
            .context("opening a raw GRE socket (needs root)")?;
        socket.set_write_timeout(Some(IO_TIMEOUT))?;
        let to = SocketAddr::V4(SocketAddrV4::new(dst, 0)).into();
        for packet in packets {
            let sent = socket.send_to(&packet, &to).context("sending GRE")?;
            ensure!(
                sent == packet.len(),
                "short raw send: {sent} of {}",
                packet.len()
            );
        }
        Ok(())
    })
}

/// An enhanced GRE packet (key and sequence present) carrying `ppp`, a PPP frame.
pub fn enhanced_gre(call_id: u16, seq: u32, ppp: &[u8]) -> Vec<u8> {
    let mut packet = gre::fixed(call_id, ppp.len() as u16, true, false).to_vec();
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(ppp);
    packet
}

/// A TCP server in a namespace that echoes what each connection sends, until EOF.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    address: SocketAddrV4,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EchoServer {
    /// Listens on `address` inside namespace `ns`.
    pub fn start(ns: &str, address: SocketAddrV4) -> anyhow::Result<Self> {
        let listener = netns::run_in(ns, move || {
            TcpListener::bind(address).with_context(|| format!("binding {address}"))
        })?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = echo(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Ok(Self {
            stop,
            address,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddrV4 {
        self.address
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// What a TCP exchange put on the wire from the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSent {
    /// Segments the client namespace sent (its `Tcp: OutSegs` delta).
    pub segments: u64,
    /// Payload bytes echoed back and verified.
    pub payload: usize,
}

/// From namespace `ns`, connects to `server`, sends `payload` bytes, reads them
/// back, closes, and returns how many TCP segments the namespace sent meanwhile.
/// Only meaningful when nothing else in `ns` speaks TCP.
pub fn tcp_exchange(ns: &str, server: SocketAddrV4, payload: usize) -> anyhow::Result<TcpSent> {
    ensure!(payload <= 64 << 20, "payload above 64 MiB");
    netns::run_in(ns, move || {
        let before = tcp_out_segments()?;
        let mut stream = TcpStream::connect_timeout(&server.into(), IO_TIMEOUT)
            .with_context(|| format!("connecting to {server}"))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let data: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
        let writer = {
            let mut stream = stream.try_clone()?;
            let data = data.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                stream.write_all(&data)?;
                stream.shutdown(std::net::Shutdown::Write)
            })
        };
        let mut echoed = Vec::with_capacity(payload);
        stream
            .read_to_end(&mut echoed)
            .context("reading the echo")?;
        writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
        if echoed != data {
            bail!(
                "echo differs: sent {} bytes, got {}",
                data.len(),
                echoed.len()
            );
        }
        drop(stream);
        // The ACK of the server's FIN leaves with the FIN's processing; give it a moment.
        std::thread::sleep(Duration::from_millis(200));
        let segments = tcp_out_segments()? - before;
        Ok(TcpSent { segments, payload })
    })
}

/// Packets the links of namespace `ns` dropped, received and sent (`/proc/net/dev`'s
/// drop columns, summed over its links): a veth whose XDP receive ring is full drops
/// before any program sees the packet, and TCP sends it again.
pub fn link_drops(ns: &str) -> anyhow::Result<u64> {
    netns::run_in(ns, || {
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev")?;
        parse_link_drops(&dev)
    })
}

fn parse_link_drops(dev: &str) -> anyhow::Result<u64> {
    let mut drops = 0;
    for line in dev.lines().skip(2) {
        let (_, fields) = line
            .split_once(':')
            .context("a /proc/net/dev line without ':'")?;
        let fields: Vec<u64> = fields
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        ensure!(
            fields.len() == 16,
            "/proc/net/dev line of {} fields",
            fields.len()
        );
        drops += fields[3] + fields[11];
    }
    Ok(drops)
}

/// `Tcp: OutSegs` of the calling thread's network namespace.
fn tcp_out_segments() -> anyhow::Result<u64> {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp")?;
    parse_snmp(&snmp, "Tcp", "OutSegs")
}

/// Reads one field of /proc/net/snmp (a header line and a value line per protocol).
fn parse_snmp(snmp: &str, proto: &str, field: &str) -> anyhow::Result<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        bail!("no {proto} lines in /proc/net/snmp");
    };
    let index = names
        .split_whitespace()
        .position(|n| n == field)
        .with_context(|| format!("no {proto} {field} in /proc/net/snmp"))?;
    values
        .split_whitespace()
        .nth(index)
        .context("short snmp line")?
        .parse()
        .context("bad snmp value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_fields_are_found_by_name() {
        let snmp =
            "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm OutSegs InSegs\nTcp: 1 42 7\n";
        assert_eq!(parse_snmp(snmp, "Tcp", "OutSegs").unwrap(), 42);
        assert_eq!(parse_snmp(snmp, "Ip", "DefaultTTL").unwrap(), 64);
        assert!(parse_snmp(snmp, "Udp", "InDatagrams").is_err());
        assert!(parse_snmp(snmp, "Tcp", "Nope").is_err());
    }

    #[test]
    fn link_drops_sum_both_drop_columns_of_every_link() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
lo:    100       2    0    1    0     0          0         0      100       2    0    0    0     0       0          0\n  \
up0: 5000      40    0    7    0     0          0         0     6000      50    0   30    0     0       0          0\n";
        assert_eq!(parse_link_drops(dev).unwrap(), 38);
        assert!(parse_link_drops("h\nh\nup0: 1 2 3\n").is_err());
    }

    #[test]
    fn gre_frames_are_enhanced_gre_with_key_and_sequence() {
        let packet = enhanced_gre_lcp_echo(0x1234, 7);
        assert_eq!(&packet[..4], &[0x30, 0x01, 0x88, 0x0b]);
        assert_eq!(
            u16::from_be_bytes([packet[4], packet[5]]) as usize,
            packet.len() - 12
        );
        assert_eq!(&packet[6..8], &[0x12, 0x34]);
        assert_eq!(&packet[8..12], &7u32.to_be_bytes());
    }
}
