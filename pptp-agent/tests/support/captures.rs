//! The real pptp-linux <-> pptpd captures in `tests/vectors/captures` (see their
//! README): the PPP frames they carry in enhanced GRE, in order, read with the
//! agent's own GRE parser.

use std::{fs::File, net::Ipv4Addr, path::PathBuf};

use etherparse::{IpNumber, NetSlice, SlicedPacket};
use pptp_agent::gre::GreHeader;

/// The client VM's outer address in every capture.
pub const CLIENT_OUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// One PPP frame carried in GRE, and whether the client sent it.
pub struct Captured {
    pub from_client: bool,
    pub ppp: Vec<u8>,
}

/// The PPP frames of capture `name` (ack-only GRE packets carry none and are skipped).
pub fn capture(name: &str) -> Vec<Captured> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/captures")
        .join(name);
    let mut reader = pcap_file::pcap::PcapReader::new(File::open(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let Ok(sliced) = SlicedPacket::from_ethernet(&pkt.data) else {
            continue;
        };
        let Some(NetSlice::Ipv4(ip)) = sliced.net else {
            continue;
        };
        if ip.header().protocol() != IpNumber::GRE {
            continue;
        }
        let (_, payload) =
            GreHeader::parse(ip.payload().payload).expect("enhanced GRE in the capture");
        if payload.is_empty() {
            continue;
        }
        out.push(Captured {
            from_client: ip.header().source_addr() == CLIENT_OUTER,
            ppp: payload.to_vec(),
        });
    }
    out
}
