//! Every MPPE data packet in the real pppd captures (tests/vectors/captures/,
//! Linux ppp_mppe on both ends, stateless) decrypts, with keys derived from the
//! capture's own MS-CHAPv2 or MS-CHAPv1 exchange, to a valid IPv4 packet: the ten
//! ICMP echo requests from the client and the ten replies from the server; and our
//! encryptor, given those plaintexts, produces pppd's packets byte for byte.

mod support;

use std::net::Ipv4Addr;
use support::captures::{Captured, capture};

use etherparse::{Icmpv4Type, IpNumber, Ipv4Slice};
use pptp_agent::mppe::keys::{self, StartKeys};
use pptp_agent::mppe::{Decrypted, Decryptor, Encryptor, KeyStrength, MppeConfig, MppeHeader};
use pptp_agent::ppp::auth::{chap, crypto};
use pptp_agent::ppp::frame::{Frame, protocol};
use pptp_agent::ppp::packet::Packet;

const CLIENT_INNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SERVER_INNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const USER: &[u8] = b"pptpuser";
const PASSWORD: &[u8] = b"pptp-Secret1";

/// The information field of the first CHAP packet with this code.
fn chap_packet(frames: &[Captured], code: u8) -> Vec<u8> {
    frames
        .iter()
        .find_map(|c| {
            let f = Frame::parse(&c.ppp).ok()?;
            let p = Packet::parse(f.info).ok()?;
            (f.protocol == protocol::CHAP && p.code == code).then(|| p.data.to_vec())
        })
        .unwrap_or_else(|| panic!("no CHAP code {code}"))
}

/// The server's start keys from the capture's MS-CHAPv2 exchange, after checking
/// that the NT-Response in it is the one the password gives.
fn mschapv2_server_keys(frames: &[Captured]) -> StartKeys {
    let challenge = chap_packet(frames, chap::CHALLENGE);
    let response = chap_packet(frames, chap::RESPONSE);
    let auth_challenge: [u8; 16] = chap::Value::parse(&challenge)
        .unwrap()
        .value
        .try_into()
        .unwrap();
    let value = chap::Value::parse(&response).unwrap();
    assert_eq!(value.value.len(), 49);
    assert_eq!(value.name, USER);
    let peer_challenge: [u8; 16] = value.value[..16].try_into().unwrap();
    let nt_response: [u8; 24] = value.value[24..48].try_into().unwrap();
    let hash = crypto::nt_password_hash(PASSWORD);
    assert_eq!(
        crypto::generate_nt_response(&auth_challenge, &peer_challenge, USER, &hash),
        nt_response
    );
    keys::mschapv2_start_keys(&crypto::hash_nt_password_hash(&hash), &nt_response, true)
}

/// The (single) start key from the capture's MS-CHAPv1 exchange.
fn mschapv1_server_keys(frames: &[Captured]) -> StartKeys {
    let challenge = chap_packet(frames, chap::CHALLENGE);
    let response = chap_packet(frames, chap::RESPONSE);
    let challenge: [u8; 8] = chap::Value::parse(&challenge)
        .unwrap()
        .value
        .try_into()
        .unwrap();
    let value = chap::Value::parse(&response).unwrap();
    assert_eq!(value.value.len(), 49);
    let hash = crypto::nt_password_hash(PASSWORD);
    assert_eq!(
        crypto::challenge_response(&challenge, &hash),
        value.value[24..48]
    );
    keys::mschapv1_start_keys(&crypto::hash_nt_password_hash(&hash), &challenge)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    mppe_packets: usize,
    echo_requests: usize,
    echo_replies: usize,
}

/// Decrypts every MPPE packet one end sent with a stateless decryptor, as the
/// other end did, and checks each is a valid IPv4 ICMP echo between the inner
/// addresses.
fn decrypt_direction(
    frames: &[Captured],
    from_client: bool,
    start: [u8; 16],
    strength: KeyStrength,
) -> Tally {
    let mut dec = Decryptor::new(start, MppeConfig::new(strength, true));
    // The sender's twin: re-encrypting each plaintext must give pppd's bytes.
    let mut enc = Encryptor::new(start, MppeConfig::new(strength, true));
    let mut tally = Tally::default();
    let now = std::time::Instant::now();
    let mut next_ccount = 0;
    for c in frames.iter().filter(|c| c.from_client == from_client) {
        let frame = Frame::parse(&c.ppp).unwrap();
        if frame.protocol != protocol::COMPRESSED {
            continue;
        }
        tally.mppe_packets += 1;
        let mut packet = frame.info.to_vec();
        let header = MppeHeader::parse(&packet).unwrap();
        assert_eq!(packet[0] & 0xf0, 0x90, "A and D, stateless");
        assert_eq!(header.ccount, next_ccount, "no loss in the capture");
        next_ccount += 1;
        let Ok(Decrypted::Packet(plain)) = dec.decrypt(now, &mut packet) else {
            panic!("MPPE packet {} did not decrypt", header.ccount);
        };
        assert_eq!(plain.protocol, protocol::IPV4);
        assert_eq!(plain.ccount, header.ccount);
        let mut again = vec![0; 4];
        again.extend_from_slice(plain.payload);
        enc.encrypt(plain.protocol, &mut again).unwrap();
        assert_eq!(again, frame.info, "our encryptor reproduces pppd's packet");
        let ip = Ipv4Slice::from_slice(plain.payload).expect("a whole IPv4 packet");
        let h = ip.header();
        assert_eq!(h.version(), 4);
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "IPv4 header checksum"
        );
        assert_eq!(usize::from(h.total_len()), plain.payload.len());
        assert_eq!(h.total_len(), 84);
        let (src, dst) = if from_client {
            (CLIENT_INNER, SERVER_INNER)
        } else {
            (SERVER_INNER, CLIENT_INNER)
        };
        assert_eq!((h.source_addr(), h.destination_addr()), (src, dst));
        assert_eq!(h.protocol(), IpNumber::ICMP);
        let icmp = etherparse::Icmpv4Slice::from_slice(ip.payload().payload).unwrap();
        let body = ip.payload().payload;
        assert_eq!(
            etherparse::checksum::Sum16BitWords::new()
                .add_slice(body)
                .ones_complement(),
            0,
            "ICMP checksum"
        );
        match icmp.icmp_type() {
            Icmpv4Type::EchoRequest(_) if from_client => tally.echo_requests += 1,
            Icmpv4Type::EchoReply(_) if !from_client => tally.echo_replies += 1,
            other => panic!("unexpected ICMP {other:?}"),
        }
    }
    tally
}

fn check(name: &str, keys: StartKeys, strength: KeyStrength) {
    let frames = capture(name);
    let up = decrypt_direction(&frames, true, keys.recv, strength);
    let down = decrypt_direction(&frames, false, keys.send, strength);
    eprintln!("{name}: client->server {up:?}, server->client {down:?}");
    assert_eq!(
        up,
        Tally {
            mppe_packets: 10,
            echo_requests: 10,
            echo_replies: 0
        }
    );
    assert_eq!(
        down,
        Tally {
            mppe_packets: 10,
            echo_requests: 0,
            echo_replies: 10
        }
    );
}

#[test]
fn mschapv2_mppe128_every_packet() {
    let frames = capture("mschapv2-mppe128.pcap");
    check(
        "mschapv2-mppe128.pcap",
        mschapv2_server_keys(&frames),
        KeyStrength::Bits128,
    );
}

#[test]
fn mschapv2_mppe40_every_packet() {
    let frames = capture("mschapv2-mppe40.pcap");
    check(
        "mschapv2-mppe40.pcap",
        mschapv2_server_keys(&frames),
        KeyStrength::Bits40,
    );
}

#[test]
fn mschapv1_mppe128_every_packet() {
    let frames = capture("mschap-mppe128.pcap");
    check(
        "mschap-mppe128.pcap",
        mschapv1_server_keys(&frames),
        KeyStrength::Bits128,
    );
}

#[test]
fn wrong_password_decrypts_nothing() {
    let now = std::time::Instant::now();
    let frames = capture("mschapv2-mppe128.pcap");
    let keys = keys::mschapv2_start_keys(&[0; 16], &[0; 24], true);
    let mut dec = Decryptor::new(keys.recv, MppeConfig::new(KeyStrength::Bits128, true));
    let valid = frames
        .iter()
        .filter(|c| c.from_client)
        .filter_map(|c| {
            let f = Frame::parse(&c.ppp).ok()?;
            (f.protocol == protocol::COMPRESSED).then(|| f.info.to_vec())
        })
        .filter(|p| {
            let mut p = p.clone();
            matches!(dec.decrypt(now, &mut p), Ok(Decrypted::Packet(x))
                if x.protocol == protocol::IPV4 && Ipv4Slice::from_slice(x.payload).is_ok())
        })
        .count();
    assert_eq!(valid, 0);
}
