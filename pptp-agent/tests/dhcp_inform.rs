//! The DHCPINFORM responder against hand-built packets: a Windows request answered with
//! exact bytes, RFC 3442's encoding examples, the option selection rules (request list
//! order, size limit, defaults), everything that is not an INFORM for us left alone, and
//! damaged packets refused with a typed error, never a panic. Replies are checked again
//! with etherparse, an independent IPv4/UDP reader.

mod dhcp_support;

use std::net::Ipv4Addr;

use dhcp_support::*;
use etherparse::{SlicedPacket, TransportSlice};
use hex_literal::hex;
use pptp_agent::dhcp::{
    ConfigError, DhcpError, DhcpInformConfig, DhcpInformResponder, MAX_REPLY_LEN, StaticRoute,
    encode_classless_routes,
};

fn responder() -> DhcpInformResponder {
    DhcpInformResponder::new(config()).unwrap()
}

fn respond(r: &DhcpInformResponder, packet: &[u8]) -> Result<Option<Vec<u8>>, DhcpError> {
    let mut reply = Vec::new();
    r.respond(packet, &mut reply).map(|n| {
        n.map(|n| {
            assert_eq!(n, reply.len());
            reply
        })
    })
}

/// Checks the reply's IPv4 and UDP headers with etherparse and returns the UDP payload.
fn check_headers(reply: &[u8], to: Ipv4Addr) -> Vec<u8> {
    let p = SlicedPacket::from_ip(reply).expect("etherparse reads the reply");
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.source, SERVER.octets());
    assert_eq!(h.destination, to.octets());
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
    assert_eq!(usize::from(h.total_len), reply.len());
    let Some(TransportSlice::Udp(udp)) = &p.transport else {
        panic!("not UDP")
    };
    let uh = udp.to_header();
    assert_eq!((uh.source_port, uh.destination_port), (67, 68));
    let want = uh
        .calc_checksum_ipv4(&h, udp.payload())
        .expect("checksum computable");
    assert_eq!(uh.checksum, want, "UDP checksum");
    udp.payload().to_vec()
}

#[test]
fn windows_inform_gets_exact_ack() {
    let reply = respond(&responder(), &windows_inform()).unwrap().unwrap();
    let expected = [
        // IPv4: 345 bytes, DF, TTL 64, UDP, checksum, 10.99.0.1 -> 10.99.0.2
        &hex!("4500 0159 0000 4000 4011 24cc 0a630001 0a630002")[..],
        // UDP 67 -> 68, length 325, checksum
        &hex!("0043 0044 0145 9837"),
        // op BOOTREPLY, htype 1, hlen 6, hops 0, xid, secs 0, flags 0
        &hex!("02 01 06 00 3903f326 0000 0000"),
        // ciaddr copied, yiaddr 0, siaddr 0, giaddr 0
        &hex!("0a630002 00000000 00000000 00000000"),
        // chaddr copied
        &hex!("525400123456 00000000000000000000"),
        &[0; 64],  // sname
        &[0; 128], // file
        &hex!("63825363"),
        &hex!("35 01 05"),             // DHCPACK
        &hex!("36 04 0a630001"),       // server identifier
        &hex!("3d 07 01525400123456"), // client identifier, echoed (RFC 6842)
        &hex!("01 04 ffffffff"),       // 1: subnet mask
        &hex!("0f 0c"),                // 15: domain name
        b"corp.example",
        &hex!("06 04 0a630035"), // 6: DNS server
        // 121: 10.0.0.0/8 via 10.99.0.1, 192.168.1.0/24 via 10.99.0.1
        &hex!("79 0e 08 0a 0a630001 18 c0a801 0a630001"),
        // 249: the same
        &hex!("f9 0e 08 0a 0a630001 18 c0a801 0a630001"),
        &hex!("ff"),
    ]
    .concat();
    assert_eq!(reply.len(), expected.len());
    assert_eq!(reply, expected);
    check_headers(&reply, CLIENT);
}

#[test]
fn rfc3442_encoding_examples() {
    // RFC 3442 §2's table of destination descriptors, each with router 10.0.0.1.
    let router = Ipv4Addr::new(10, 0, 0, 1);
    let cases: [(Ipv4Addr, u8, &[u8]); 7] = [
        (Ipv4Addr::new(0, 0, 0, 0), 0, &[0]),
        (Ipv4Addr::new(10, 0, 0, 0), 8, &[8, 10]),
        (Ipv4Addr::new(10, 0, 0, 0), 24, &[24, 10, 0, 0]),
        (Ipv4Addr::new(10, 17, 0, 0), 16, &[16, 10, 17]),
        (Ipv4Addr::new(10, 27, 129, 0), 24, &[24, 10, 27, 129]),
        (Ipv4Addr::new(10, 229, 0, 128), 25, &[25, 10, 229, 0, 128]),
        (Ipv4Addr::new(10, 198, 122, 47), 32, &[32, 10, 198, 122, 47]),
    ];
    let mut all = Vec::new();
    let mut want_all = Vec::new();
    for (prefix, len, descriptor) in cases {
        let r = StaticRoute::new(prefix, len, router);
        let mut out = Vec::new();
        r.encode(&mut out);
        let want = [descriptor, &router.octets()].concat();
        assert_eq!(out, want, "{prefix}/{len}");
        assert_eq!(r.encoded_len(), want.len());
        all.push(r);
        want_all.extend_from_slice(&want);
    }
    let mut out = Vec::new();
    encode_classless_routes(&all, &mut out);
    assert_eq!(out, want_all);
    // And 192.168.1.0/24 via 0.0.0.0 (on the link).
    let mut out = Vec::new();
    StaticRoute::new(Ipv4Addr::new(192, 168, 1, 0), 24, Ipv4Addr::UNSPECIFIED).encode(&mut out);
    assert_eq!(out, hex!("18 c0a801 00000000"));
}

#[test]
fn request_list_order_and_selection() {
    let r = responder();
    // Only the domain, then routes before the mask: answered in that order, nothing else.
    let opts = [53, 1, 8, 55, 4, 15, 249, 3, 1];
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &opts), true);
    let reply = respond(&r, &p).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 15, 249, 1]);
    // No request list: mask, DNS, domain, routes once.
    let p = ipv4_udp(
        CLIENT,
        SERVER,
        68,
        67,
        &bootrequest(CLIENT, &[53, 1, 8]),
        true,
    );
    let reply = respond(&r, &p).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 1, 6, 15, 121]);
    // Two request lists concatenate (RFC 3396), duplicates once.
    let opts = [53, 1, 8, 55, 2, 6, 15, 55, 2, 15, 121];
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &opts), true);
    let reply = respond(&r, &p).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 6, 15, 121]);
    // Nothing configured for what is asked: only 53 and 54; short replies padded to 300.
    let empty = DhcpInformResponder::new(DhcpInformConfig {
        server: SERVER,
        domain: None,
        routes: vec![],
        dns: vec![],
        subnet_mask: None,
    })
    .unwrap();
    let reply = respond(&empty, &windows_inform()).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 61]);
    assert_eq!(dhcp_of(&reply).len(), 300);
    check_headers(&reply, CLIENT);
}

/// 28 routes /32: 252 bytes, the longest option.
fn big_config() -> DhcpInformConfig {
    DhcpInformConfig {
        routes: (0..28)
            .map(|i| StaticRoute::new(Ipv4Addr::new(172, 16, 0, i), 32, SERVER))
            .collect(),
        ..config()
    }
}

#[test]
fn size_limit_leaves_out_whole_options() {
    let r = DhcpInformResponder::new(big_config()).unwrap();
    // Default limit (576): 121 fits, 249 (its copy) does not and is left out whole.
    let reply = respond(&r, &windows_inform()).unwrap().unwrap();
    assert!(reply.len() <= 576, "{}", reply.len());
    let opts = options_of(&reply);
    let codes: Vec<u8> = opts.iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 61, 1, 15, 6, 121]);
    assert_eq!(opts[6].1.len(), 252);
    check_headers(&reply, CLIENT);
    // Maximum message size 1500: both.
    let mut o = windows_options(8);
    o.extend_from_slice(&[57, 2, 0x05, 0xdc]);
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &o), true);
    let reply = respond(&r, &p).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 61, 1, 15, 6, 121, 249]);
    assert!(reply.len() <= 1500 && reply.len() <= MAX_REPLY_LEN);
    check_headers(&reply, CLIENT);
    // A configuration exactly at the validation limit: a Windows client still gets one
    // copy of everything, 121 included, in 576 bytes; one byte more is refused.
    let mut c = big_config();
    c.dns = vec![SERVER; 3];
    c.domain = Some("corp.example1".into());
    let edge = DhcpInformResponder::new(c.clone()).unwrap();
    let reply = respond(&edge, &windows_inform()).unwrap().unwrap();
    assert_eq!(reply.len(), 576);
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 61, 1, 15, 6, 121]);
    c.domain = Some("corp.example12".into());
    assert_eq!(
        c.validate(),
        Err(ConfigError::TooMuch {
            len: 300,
            room: 299
        })
    );
    // A client identifier split into many instances (RFC 3396) that cannot fit: not
    // echoed at all rather than cut, and the reply stays within the limit.
    let mut o = vec![53, 1, 8, 55, 2, 15, 121];
    for _ in 0..4 {
        o.extend_from_slice(&[61, 100]);
        o.extend_from_slice(&[7; 100]);
    }
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &o), true);
    let reply = respond(&r, &p).unwrap().unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 15, 121]);
    assert!(reply.len() <= 576);
    // Below the legal minimum: taken as 576.
    let mut o = windows_options(8);
    o.extend_from_slice(&[57, 2, 0x01, 0x00]);
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &o), true);
    let reply = respond(&r, &p).unwrap().unwrap();
    assert!(reply.len() <= 576 && options_of(&reply).iter().any(|o| o.0 == 121));
}

#[test]
fn client_address_ciaddr_else_source() {
    let r = responder();
    // ciaddr 0: answer the source address.
    let p = ipv4_udp(
        CLIENT,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootrequest(Ipv4Addr::UNSPECIFIED, &windows_options(8)),
        true,
    );
    let reply = respond(&r, &p).unwrap().unwrap();
    check_headers(&reply, CLIENT);
    assert_eq!(&dhcp_of(&reply)[12..16], &[0; 4], "ciaddr copied as is");
    // Neither: nowhere to answer.
    let p = ipv4_udp(
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootrequest(Ipv4Addr::UNSPECIFIED, &windows_options(8)),
        true,
    );
    assert_eq!(respond(&r, &p), Err(DhcpError::NoClientAddress));
    // Flags (broadcast bit) and xid copied.
    let mut d = bootrequest(CLIENT, &windows_options(8));
    d[10] = 0x80;
    let reply = respond(&r, &ipv4_udp(CLIENT, SERVER, 68, 67, &d, true))
        .unwrap()
        .unwrap();
    assert_eq!(
        &dhcp_of(&reply)[4..12],
        &[0x39, 0x03, 0xf3, 0x26, 0, 0, 0x80, 0]
    );
}

#[test]
fn not_for_us_is_left_alone() {
    let r = responder();
    let inform = bootrequest(CLIENT, &windows_options(8));
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("IPv6", {
            let mut p = windows_inform();
            p[0] = 0x60;
            p
        }),
        ("TCP", {
            let mut p = windows_inform();
            p[9] = 6;
            p
        }),
        (
            "DNS query",
            ipv4_udp(CLIENT, SERVER, 5353, 53, &[0; 40], true),
        ),
        (
            "to a LAN DHCP server",
            ipv4_udp(CLIENT, Ipv4Addr::new(192, 168, 1, 1), 68, 67, &inform, true),
        ),
        (
            "from port 67",
            ipv4_udp(CLIENT, SERVER, 67, 67, &inform, true),
        ),
        (
            "to port 68",
            ipv4_udp(CLIENT, SERVER, 68, 68, &inform, true),
        ),
        ("fragment", {
            let mut p = windows_inform();
            p[6] = 0x20; // more fragments
            p
        }),
        ("BOOTREPLY", {
            let mut d = inform.clone();
            d[0] = 2;
            ipv4_udp(CLIENT, SERVER, 68, 67, &d, true)
        }),
        ("plain BOOTP", {
            let mut d = inform.clone();
            d[236..240].copy_from_slice(&[0; 4]);
            ipv4_udp(CLIENT, SERVER, 68, 67, &d, true)
        }),
        (
            "BOOTP with RFC 1497 extensions",
            ipv4_udp(
                CLIENT,
                SERVER,
                68,
                67,
                &bootrequest(CLIENT, &[1, 4, 255, 255, 255, 0]),
                true,
            ),
        ),
        ("relayed", {
            let mut d = inform.clone();
            d[24..28].copy_from_slice(&[10, 1, 1, 1]);
            ipv4_udp(CLIENT, SERVER, 68, 67, &d, true)
        }),
        (
            "our own reply",
            respond(&r, &windows_inform()).unwrap().unwrap(),
        ),
    ];
    // Every other DHCP message type.
    for t in [1u8, 2, 3, 4, 5, 6, 7, 9, 13, 255] {
        cases.push((
            "other type",
            ipv4_udp(
                CLIENT,
                Ipv4Addr::BROADCAST,
                68,
                67,
                &bootrequest(CLIENT, &windows_options(t)),
                true,
            ),
        ));
    }
    for (what, p) in cases {
        let mut reply = vec![0xaa; 3];
        assert_eq!(r.respond(&p, &mut reply), Ok(None), "{what}");
        assert_eq!(reply, [0xaa; 3], "{what}: reply buffer untouched");
    }
}

#[test]
fn checksums_verified() {
    let r = responder();
    // A bit flipped in the DHCP payload: the UDP checksum catches it.
    let mut p = windows_inform();
    p[28 + 250] ^= 0x01;
    assert_eq!(respond(&r, &p), Err(DhcpError::UdpChecksum));
    // The same packet with no UDP checksum (0): accepted.
    let p = ipv4_udp(
        CLIENT,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &bootrequest(CLIENT, &windows_options(8)),
        false,
    );
    assert_eq!(&p[26..28], &[0, 0]);
    assert!(respond(&r, &p).unwrap().is_some());
    // A damaged IPv4 header checksum.
    let mut p = windows_inform();
    p[10] ^= 0xff;
    assert_eq!(respond(&r, &p), Err(DhcpError::IpChecksum));
}

#[test]
fn malformed_rejected_without_panic() {
    let r = responder();
    let inform = windows_inform();
    // Every truncation: never answered, never a panic.
    for n in 0..inform.len() {
        let got = respond(&r, &inform[..n]);
        assert!(
            !matches!(got, Ok(Some(_))),
            "answered a {n}-byte truncation"
        );
    }
    // Truncated after the UDP header, lengths fixed up: too short for BOOTP.
    let p = ipv4_udp(CLIENT, SERVER, 68, 67, &inform[28..28 + 100], true);
    assert_eq!(respond(&r, &p), Err(DhcpError::Truncated(100)));
    // IPv4 total length beyond the packet.
    let mut p = inform.clone();
    p.truncate(p.len() - 1);
    assert!(matches!(respond(&r, &p), Err(DhcpError::IpLength { .. })));
    // UDP length beyond the IPv4 payload.
    let mut p = inform.clone();
    p[24..26].copy_from_slice(&1000u16.to_be_bytes());
    assert!(matches!(respond(&r, &p), Err(DhcpError::UdpLength { .. })));
    let bad_options: [(&[u8], DhcpError); 6] = [
        // An option running past the end of the message.
        (
            &[53, 1, 8, 55, 200, 1],
            DhcpError::OptionOverrun { code: 55, at: 243 },
        ),
        // Two message types.
        (&[53, 2, 8, 8], DhcpError::BadOption(53)),
        // A one-byte maximum message size.
        (&[53, 1, 8, 57, 1, 5], DhcpError::BadOption(57)),
        // Overload with an impossible value.
        (&[53, 1, 8, 52, 1, 4], DhcpError::BadOption(52)),
        // Overload given twice.
        (&[53, 1, 8, 52, 1, 1, 52, 1, 1], DhcpError::BadOption(52)),
        // A lone option code with no length byte at the very end.
        (
            &[53, 1, 8, 0, 0, 0],
            DhcpError::OptionOverrun { code: 7, at: 0 },
        ),
    ];
    for (i, (opts, want)) in bad_options.into_iter().enumerate() {
        let mut d = bootrequest(CLIENT, opts);
        if i == 5 {
            // No End and no padding: the area ends with an option code.
            d.truncate(240 + opts.len());
            d.push(7);
            let p = ipv4_udp(CLIENT, SERVER, 68, 67, &d, true);
            assert_eq!(
                respond(&r, &p),
                Err(DhcpError::OptionOverrun {
                    code: 7,
                    at: d.len() - 1
                })
            );
            continue;
        }
        let p = ipv4_udp(CLIENT, SERVER, 68, 67, &d, true);
        assert_eq!(respond(&r, &p), Err(want), "{opts:?}");
    }
    // hlen above 16.
    let mut d = bootrequest(CLIENT, &windows_options(8));
    d[2] = 17;
    assert_eq!(
        respond(&r, &ipv4_udp(CLIENT, SERVER, 68, 67, &d, true)),
        Err(DhcpError::BadHlen(17))
    );
    // Overloaded file field: options read from it, and a bad one there is caught.
    let mut d = bootrequest(CLIENT, &[53, 1, 8, 52, 1, 1]);
    d[108..113].copy_from_slice(&[55, 1, 15, 255, 0]);
    let reply = respond(&r, &ipv4_udp(CLIENT, SERVER, 68, 67, &d, true))
        .unwrap()
        .unwrap();
    let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
    assert_eq!(codes, [53, 54, 15]);
    d[108..110].copy_from_slice(&[55, 200]);
    assert_eq!(
        respond(&r, &ipv4_udp(CLIENT, SERVER, 68, 67, &d, true)),
        Err(DhcpError::OptionOverrun { code: 55, at: 108 })
    );
}

#[test]
fn config_validation() {
    let bad = |f: &dyn Fn(&mut DhcpInformConfig)| {
        let mut c = config();
        f(&mut c);
        c.validate().unwrap_err()
    };
    let gw = SERVER;
    assert_eq!(
        bad(&|c| c
            .routes
            .push(StaticRoute::new(Ipv4Addr::new(10, 1, 0, 0), 33, gw))),
        ConfigError::PrefixTooLong {
            prefix: Ipv4Addr::new(10, 1, 0, 0),
            len: 33
        }
    );
    assert_eq!(
        bad(&|c| c
            .routes
            .push(StaticRoute::new(Ipv4Addr::new(10, 17, 1, 0), 16, gw))),
        ConfigError::HostBitsSet {
            prefix: Ipv4Addr::new(10, 17, 1, 0),
            len: 16,
            network: Ipv4Addr::new(10, 17, 0, 0)
        }
    );
    assert_eq!(
        bad(&|c| c.routes.push(StaticRoute::new(
            Ipv4Addr::new(10, 0, 0, 0),
            8,
            Ipv4Addr::new(1, 2, 3, 4)
        ))),
        ConfigError::DuplicateRoute {
            prefix: Ipv4Addr::new(10, 0, 0, 0),
            len: 8
        }
    );
    for d in [
        "",
        "a..b",
        "-x y",
        "ex\0ample",
        &"a".repeat(64),
        &["abc"; 64].join("."),
    ] {
        let d = d.to_string();
        assert_eq!(
            bad(&|c| c.domain = Some(d.clone())),
            ConfigError::BadDomain(d.clone())
        );
    }
    assert_eq!(
        bad(&|c| c.subnet_mask = Some(Ipv4Addr::new(255, 0, 255, 0))),
        ConfigError::BadMask(Ipv4Addr::new(255, 0, 255, 0))
    );
    assert_eq!(
        bad(&|c| c.server = Ipv4Addr::UNSPECIFIED),
        ConfigError::BadServer(Ipv4Addr::UNSPECIFIED)
    );
    // 32 routes /24: 256 bytes, one more than an option holds (refused, not split).
    assert_eq!(
        bad(&|c| c.routes = (0..32)
            .map(|i| StaticRoute::new(Ipv4Addr::new(10, i, 0, 0), 24, gw))
            .collect()),
        ConfigError::OptionTooLong {
            code: 121,
            len: 256
        }
    );
    assert_eq!(
        bad(&|c| c.dns = vec![gw; 64]),
        ConfigError::OptionTooLong { code: 6, len: 256 }
    );
    // Each option fits, together not in 576 bytes.
    assert!(matches!(
        bad(&|c| {
            *c = big_config();
            c.dns = vec![gw; 10];
        }),
        ConfigError::TooMuch { .. }
    ));
    // The limits themselves are fine.
    big_config().validate().unwrap();
    let mut c = config();
    c.routes
        .push(StaticRoute::new(Ipv4Addr::UNSPECIFIED, 0, gw));
    c.routes
        .push(StaticRoute::new(Ipv4Addr::new(10, 1, 2, 3), 32, gw));
    c.domain = Some("a-b.c_d.example".into());
    c.validate().unwrap();
    assert!(DhcpInformResponder::new(c).is_ok());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the client asks for, in whatever order: 53, 54, its client identifier,
        /// then exactly the requested options we have, in its order, duplicates once.
        #[test]
        fn answers_the_request_list_in_order(
            prl in proptest::collection::vec(any::<u8>(), 1..60),
            cid in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..40)),
            max in proptest::option::of(0u16..2000),
        ) {
            let mut o = vec![53, 1, 8, 55, prl.len() as u8];
            o.extend_from_slice(&prl);
            if let Some(cid) = &cid {
                o.extend_from_slice(&[61, cid.len() as u8]);
                o.extend_from_slice(cid);
            }
            if let Some(max) = max {
                o.extend_from_slice(&[57, 2]);
                o.extend_from_slice(&max.to_be_bytes());
            }
            let p = ipv4_udp(CLIENT, Ipv4Addr::BROADCAST, 68, 67, &bootrequest(CLIENT, &o), true);
            let reply = respond(&responder(), &p).unwrap().unwrap();
            check_headers(&reply, CLIENT);
            let mut want = vec![53, 54];
            if cid.is_some() {
                want.push(61);
            }
            let mut seen = [false; 256];
            for c in prl {
                if !seen[usize::from(c)] && [1, 6, 15, 121, 249].contains(&c) {
                    want.push(c);
                }
                seen[usize::from(c)] = true;
            }
            let got = options_of(&reply);
            let codes: Vec<u8> = got.iter().map(|o| o.0).collect();
            prop_assert_eq!(codes, want);
            if let Some(cid) = cid {
                prop_assert_eq!(&got[2].1, &cid);
            }
        }

        /// Damaged Windows requests: never a panic; any answer is well-formed.
        #[test]
        fn damaged_requests(flips in proptest::collection::vec((0usize..328, any::<u8>()), 1..6)) {
            let mut p = windows_inform();
            for (at, x) in flips {
                p[at] ^= x;
            }
            let r = responder();
            if let Ok(Some(reply)) = respond(&r, &p) {
                check_headers(&reply, Ipv4Addr::from(<[u8; 4]>::try_from(&reply[16..20]).unwrap()));
                let codes: Vec<u8> = options_of(&reply).iter().map(|o| o.0).collect();
                prop_assert_eq!(&codes[..2], &[53, 54]);
            }
        }

        /// Random bytes, raw or wrapped in valid IPv4/UDP to our port: never a panic.
        #[test]
        fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..700), wrap: bool) {
            let p = if wrap {
                ipv4_udp(CLIENT, SERVER, 68, 67, &data, true)
            } else {
                data
            };
            if let Ok(Some(reply)) = respond(&responder(), &p) {
                check_headers(&reply, Ipv4Addr::from(<[u8; 4]>::try_from(&reply[16..20]).unwrap()));
            }
        }
    }
}
