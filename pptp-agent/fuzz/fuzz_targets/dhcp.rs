//! Fuzzes the DHCPINFORM responder: never panics, and every reply is a well-formed
//! IPv4/UDP DHCPACK (both checksums verify, lengths agree, within the size limit) that
//! the responder itself does not take for a request. The first byte chooses whether the
//! rest is a whole IPv4 packet, a DHCP message we wrap in valid IPv4/UDP headers (UDP
//! checksum zero or computed), or the options of a DHCPINFORM we build around them, so
//! the fuzzer gets past the checksums and the message type to the option parser and the
//! reply writer without a seed corpus.
#![no_main]

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pptp_agent::dhcp::{DhcpInformConfig, DhcpInformResponder, MAX_REPLY_LEN, StaticRoute};
use pptp_agent::inet::{Ipv4Repr, fold, pseudo_header, sum16, verifies};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

fn responder() -> &'static DhcpInformResponder {
    static R: OnceLock<DhcpInformResponder> = OnceLock::new();
    R.get_or_init(|| {
        let routes = (0..24u8)
            .map(|i| StaticRoute::new(Ipv4Addr::new(10, i, 0, 0), 16, SERVER))
            .chain([StaticRoute::new(Ipv4Addr::UNSPECIFIED, 0, SERVER)])
            .collect();
        DhcpInformResponder::new(DhcpInformConfig {
            server: SERVER,
            domain: Some("corp.example.com".into()),
            routes,
            dns: vec![Ipv4Addr::new(10, 99, 0, 53)],
            subnet_mask: Some(Ipv4Addr::BROADCAST),
        })
        .unwrap()
    })
}

const CLIENT: [u8; 4] = [10, 99, 0, 2];
const BROADCAST: [u8; 4] = [255; 4];

fn wrap(dhcp: &[u8], checksum: bool) -> Vec<u8> {
    let ulen = (8 + dhcp.len()) as u16;
    let ip = Ipv4Repr {
        ttl: 128,
        flags_offset: 0,
        ..Ipv4Repr::new(CLIENT, BROADCAST, 17, ulen)
    };
    let mut p = ip.header().to_vec();
    p.extend_from_slice(&[0, 68, 0, 67]);
    p.extend_from_slice(&ulen.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(dhcp);
    if checksum {
        let s = !fold(sum16(pseudo_header(CLIENT, BROADCAST, 17, ulen), &p[20..]));
        p[26..28].copy_from_slice(&s.to_be_bytes());
    }
    p
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() > 65_000 {
        return;
    }
    let packet = match mode % 4 {
        0 => rest.to_vec(),
        // The rest is the options of a DHCPINFORM (after message type 8).
        3 => {
            let mut dhcp = vec![0u8; 240];
            dhcp[..4].copy_from_slice(&[1, 1, 6, 0]);
            dhcp[12..16].copy_from_slice(&[10, 99, 0, 2]);
            dhcp[236..240].copy_from_slice(&[99, 130, 83, 99]);
            dhcp.extend_from_slice(&[53, 1, 8]);
            dhcp.extend_from_slice(rest);
            wrap(&dhcp, true)
        }
        m => wrap(rest, m == 2),
    };
    let r = responder();
    let mut reply = Vec::with_capacity(MAX_REPLY_LEN);
    if let Ok(Some(len)) = r.respond(&packet, &mut reply) {
        assert_eq!(len, reply.len());
        assert!(len <= MAX_REPLY_LEN);
        assert!(len >= 28 + 300);
        assert!(verifies(0, &reply[..20]), "IPv4 header checksum");
        assert_eq!(usize::from(u16::from_be_bytes([reply[2], reply[3]])), len);
        assert_eq!(
            usize::from(u16::from_be_bytes([reply[24], reply[25]])),
            len - 20
        );
        let acc = pseudo_header(
            SERVER.octets(),
            *reply[16..20].first_chunk().unwrap(),
            17,
            (len - 20) as u16,
        );
        assert!(verifies(acc, &reply[20..]), "UDP checksum");
        assert_eq!(reply[28], 2, "BOOTREPLY");
        assert_eq!(&reply[12..16], &SERVER.octets());
        // Our reply comes from port 67: never a request for us.
        let mut again = Vec::new();
        assert_eq!(r.respond(&reply, &mut again), Ok(None));
    }
});
