//! A second, independent reader for our DHCPACK: the Windows DHCPINFORM and our
//! replies go into a pcap (raw IPv4), and tshark, with IPv4 and UDP checksum validation
//! on, must dissect every frame as DHCP with no malformed packet and no expert warning,
//! see an ACK from us to the client, and decode our domain and classless static routes
//! (options 121 and 249) to the routes we configured.
//!
//! The test fails (it does not skip) when tshark is missing. The tshark helper is a
//! local copy of the one in `pptp_tshark.rs` (a dozen lines; that file is not ours to
//! refactor).

mod dhcp_support;

mod support;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::tshark::tshark;

use dhcp_support::*;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pptp_agent::dhcp::{DhcpInformConfig, DhcpInformResponder, StaticRoute};

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let header = PcapHeader {
        datalink: DataLink::RAW,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(File::create(path).unwrap(), header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_millis(1_700_000_000_000 + i as u64);
        w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .unwrap();
    }
}

/// tshark with checksum validation on, so a wrong checksum is an expert error.
fn tshark_checked(file: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-r",
        file,
    ];
    args.extend_from_slice(extra);
    tshark(&args)
}

/// Where option `code` starts in a reply (IPv4 + UDP + DHCP).
fn options_start(reply: &[u8], code: u8) -> usize {
    let mut i = 28 + 240;
    while reply[i] != code {
        i += 2 + usize::from(reply[i + 1]);
    }
    i
}

const PROBLEMS: &str = "_ws.malformed || _ws.expert.severity >= 0x600000";

#[test]
fn tshark_dissects_our_dhcpack_cleanly() {
    let mut frames = Vec::new();
    let mut reply = Vec::new();
    // 1, 2: the Windows INFORM and our answer with the example configuration.
    let r = DhcpInformResponder::new(config()).unwrap();
    frames.push(windows_inform());
    r.respond(&frames[0], &mut reply).unwrap().unwrap();
    frames.push(reply.clone());
    // 3, 4: an INFORM allowing 1500 bytes, answered with 121 and 249 of 28 routes each,
    // and RFC 3442's examples among them.
    let mut routes = vec![
        StaticRoute::new(Ipv4Addr::UNSPECIFIED, 0, SERVER),
        StaticRoute::new(Ipv4Addr::new(10, 17, 0, 0), 16, SERVER),
        StaticRoute::new(Ipv4Addr::new(10, 27, 129, 0), 24, SERVER),
        StaticRoute::new(Ipv4Addr::new(10, 229, 0, 128), 25, SERVER),
        StaticRoute::new(Ipv4Addr::new(10, 198, 122, 47), 32, Ipv4Addr::UNSPECIFIED),
    ];
    routes.extend((0..23).map(|i| StaticRoute::new(Ipv4Addr::new(172, 16, i, 0), 24, SERVER)));
    let big = DhcpInformResponder::new(DhcpInformConfig {
        routes: routes.clone(),
        dns: vec![],
        ..config()
    })
    .unwrap();
    let mut o = windows_options(8);
    o.extend_from_slice(&[57, 2, 0x05, 0xdc]);
    frames.push(ipv4_udp(
        CLIENT,
        SERVER,
        68,
        67,
        &bootrequest(CLIENT, &o),
        true,
    ));
    big.respond(&frames[2], &mut reply).unwrap().unwrap();
    frames.push(reply.clone());

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dhcp_tshark_our_output.pcap");
    write_pcap(&path, &frames);
    let file = path.to_str().unwrap();

    // 1. No malformed packet, no expert warning or error (checksums validated).
    let bad = tshark_checked(file, &["-Y", PROBLEMS]);
    assert!(bad.trim().is_empty(), "tshark reports problems:\n{bad}");
    // The filter does catch problems: our reply with a damaged UDP checksum, and one
    // with its route option cut short.
    let mut damaged = frames[1].clone();
    damaged[27] ^= 0x01;
    let mut cut = frames[1].clone();
    let at = options_start(&cut, 121);
    cut.truncate(at + 5);
    let total = cut.len() as u16;
    cut[2..4].copy_from_slice(&total.to_be_bytes());
    let ulen = (cut.len() - 20) as u16;
    cut[24..26].copy_from_slice(&ulen.to_be_bytes());
    cut[26..28].copy_from_slice(&[0, 0]);
    let neg = path.with_file_name("dhcp_tshark_negative_control.pcap");
    write_pcap(&neg, &[damaged, cut]);
    let caught = tshark_checked(neg.to_str().unwrap(), &["-Y", PROBLEMS]);
    assert_eq!(
        caught.lines().count(),
        2,
        "negative control not caught:\n{caught}"
    );

    // 2. Every frame is DHCP: INFORM from the client, ACK from us to the client.
    let fields = tshark_checked(
        file,
        &[
            "-T",
            "fields",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "dhcp.option.dhcp",
            "-e",
            "dhcp.id",
        ],
    );
    let inform = format!("{CLIENT}\t255.255.255.255\t68\t67\t8\t0x3903f326");
    let inform_unicast = format!("{CLIENT}\t{SERVER}\t68\t67\t8\t0x3903f326");
    let ack = format!("{SERVER}\t{CLIENT}\t67\t68\t5\t0x3903f326");
    assert_eq!(
        fields.lines().collect::<Vec<_>>(),
        [&inform, &ack, &inform_unicast, &ack]
    );

    // 3. The verbose dissection says ACK and shows our options decoded.
    let v = tshark_checked(file, &["-V", "-Y", "frame.number == 2"]);
    for want in [
        "Dynamic Host Configuration Protocol (ACK)",
        "Message type: Boot Reply (2)",
        "Option: (53) DHCP Message Type (ACK)",
        "Option: (54) DHCP Server Identifier (10.99.0.1)",
        "Option: (1) Subnet Mask (255.255.255.255)",
        "Option: (15) Domain Name",
        "Domain Name: corp.example",
        "Option: (6) Domain Name Server",
        "Domain Name Server: 10.99.0.53",
        "Option: (121) Classless Static Route",
        "Option: (249) Private/Classless Static Route (Microsoft)",
        "10.0.0.0/8-10.99.0.1",
        "192.168.1.0/24-10.99.0.1",
    ] {
        assert!(v.contains(want), "tshark -V lacks {want:?}:\n{v}");
    }
    assert!(
        !v.contains("Lease Time"),
        "no lease time in an INFORM's ACK"
    );

    // 4. Both route options of the big reply decode to the configured routes, in order.
    let v = tshark_checked(file, &["-V", "-Y", "frame.number == 4"]);
    // tshark prints each route as "prefix/len-router", the default route as "default-router".
    let want: Vec<String> = routes
        .iter()
        .map(|r| match r.len {
            0 => format!("default-{}", r.gateway),
            _ => format!("{}/{}-{}", r.prefix, r.len, r.gateway),
        })
        .collect();
    let decoded: Vec<&str> = v
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.split_once('-').is_some_and(|(dst, gw)| {
                (dst == "default" || dst.contains('/')) && gw.parse::<Ipv4Addr>().is_ok()
            })
        })
        .collect();
    let twice: Vec<&str> = want.iter().chain(&want).map(String::as_str).collect();
    assert_eq!(decoded, twice, "tshark -V:\n{v}");
}
