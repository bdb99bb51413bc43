//! The PPP engine against real pppd sessions (tests/vectors/captures/, pptp-linux
//! client and pptpd server, both pppd 2.4.9): our authenticator verifies pppd's
//! responses and answers exactly as pppd did, our peer answers pppd's challenges
//! exactly as pppd did, our negotiators accept pppd's requests, and the MPPE keys we
//! derive decrypt the first data packet each way into a valid ICMP echo.

mod support;

use std::net::Ipv4Addr;
use std::time::Instant;
use support::captures::{Captured, capture};

use pptp_agent::mppe::KeyStrength;
use pptp_agent::mppe::keys::{self, StartKeys};
use pptp_agent::ppp::auth::{self, Authenticator, Credentials, Method, Peer, Secret, SecretSource};
use pptp_agent::ppp::ccp::{Ccp, MppePolicy};
use pptp_agent::ppp::frame::{Frame, protocol};
use pptp_agent::ppp::fsm::{Negotiator, Verdict, code};
use pptp_agent::ppp::ipcp::{Ipcp, IpcpConfig};
use pptp_agent::ppp::lcp::{AuthRole, Lcp, LcpConfig};
use pptp_agent::ppp::packet::{self, Packet};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

const CLIENT_INNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const SERVER_INNER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PASSWORD: &[u8] = b"pptp-Secret1";

/// The first control packet with this protocol and code, and its sender.
fn find(frames: &[Captured], proto: u16, code: u8) -> (bool, Vec<u8>) {
    frames
        .iter()
        .find_map(|c| {
            let f = Frame::parse(&c.ppp).ok()?;
            let p = Packet::parse(f.info).ok()?;
            (f.protocol == proto && p.code == code).then(|| (c.from_client, f.info.to_vec()))
        })
        .unwrap_or_else(|| panic!("no {proto:#x} code {code}"))
}

/// An RNG replaying fixed bytes (the capture's challenges), then zeros.
struct Replay(Vec<u8>);

impl RngCore for Replay {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for d in dst {
            *d = if self.0.is_empty() {
                0
            } else {
                self.0.remove(0)
            };
        }
    }
}

struct Users;

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        (user == b"pptpuser").then(|| Secret::Password(PASSWORD.to_vec()))
    }
}

fn credentials() -> Credentials {
    Credentials {
        user: b"pptpuser".to_vec(),
        password: PASSWORD.to_vec(),
    }
}

/// Our authenticator, given pppd's challenge and id, verifies pppd's response and
/// replies with the very Success packet pppd sent. Returns the server's keys.
fn authenticator_matches_pppd(frames: &[Captured], method: Method) -> Option<StartKeys> {
    let (_, challenge) = find(frames, protocol::CHAP, 1);
    let (from_client, response) = find(frames, protocol::CHAP, 2);
    let (_, success) = find(frames, protocol::CHAP, 3);
    assert!(from_client);
    let challenge_pkt = Packet::parse(&challenge).unwrap();
    let value = auth::chap::Value::parse(challenge_pkt.data).unwrap();
    let mut script = value.value.to_vec();
    script.extend_from_slice(&[challenge_pkt.id, 0, 0, 0]);
    let now = Instant::now();
    let mut a = Authenticator::new(method, value.name, auth::Timers::default());
    a.start(now, &mut Replay(script));
    assert_eq!(
        a.poll_transmit().unwrap(),
        challenge,
        "our Challenge equals pppd's"
    );
    let outcome = a
        .receive(&response, &Users, &mut StdRng::seed_from_u64(0))
        .unwrap()
        .unwrap();
    assert_eq!(outcome.user, b"pptpuser");
    assert_eq!(
        a.poll_transmit().unwrap(),
        success,
        "our Success equals pppd's"
    );
    outcome.keys
}

/// Our peer, given pppd's challenge (and pppd's peer challenge), answers exactly as
/// pppd did and accepts pppd's Success. Returns the client's keys.
fn peer_matches_pppd(frames: &[Captured], method: Method) -> Option<StartKeys> {
    let (_, challenge) = find(frames, protocol::CHAP, 1);
    let (_, response) = find(frames, protocol::CHAP, 2);
    let (_, success) = find(frames, protocol::CHAP, 3);
    let pppd_value = auth::chap::Value::parse(Packet::parse(&response).unwrap().data).unwrap();
    let peer_challenge = pppd_value.value[..16].to_vec();
    let now = Instant::now();
    let mut p = Peer::new(method, credentials(), auth::Timers::default());
    p.start(now, &mut Replay(vec![]));
    assert!(
        p.receive(now, &challenge, &mut Replay(peer_challenge))
            .is_none()
    );
    assert_eq!(
        p.poll_transmit().unwrap(),
        response,
        "our Response equals pppd's"
    );
    let outcome = p
        .receive(now, &success, &mut Replay(vec![]))
        .unwrap()
        .unwrap();
    outcome.keys
}

/// Linux ppp_mppe stateless mode: the key for coherency count n is the initial
/// session key rekeyed n + 1 times.
fn stateless_key(start: &[u8; 16], strength: KeyStrength, ccount: u16) -> keys::SessionKey {
    let mut key = keys::initial_session_key(start, strength);
    for _ in 0..=ccount {
        key = keys::rekey(start, &key, strength);
    }
    key
}

/// Decrypts the first MPPE packet in one direction; checks it is the expected ICMP echo.
fn decrypt_first(frames: &[Captured], from_client: bool, start: &[u8; 16], strength: KeyStrength) {
    let frame = frames
        .iter()
        .filter(|c| c.from_client == from_client)
        .find_map(|c| {
            Frame::parse(&c.ppp)
                .ok()
                .filter(|f| f.protocol == protocol::COMPRESSED)
                .map(|f| f.info.to_vec())
        })
        .expect("an MPPE packet");
    let header = u16::from_be_bytes([frame[0], frame[1]]);
    assert_eq!(
        header & 0xf000,
        0x9000,
        "A (flushed) and D (encrypted) set, stateless"
    );
    let ccount = header & 0x0fff;
    let mut plain = frame[2..].to_vec();
    keys::rc4_apply(
        stateless_key(start, strength, ccount).as_bytes(),
        &mut plain,
    );
    assert_eq!(plain[..2], [0x00, 0x21], "uncompressed IPv4 protocol");
    let ip = &plain[2..];
    let header = etherparse::Ipv4HeaderSlice::from_slice(ip).expect("an IPv4 header");
    assert_eq!(header.version(), 4);
    assert_eq!(
        header.to_header().calc_header_checksum(),
        header.header_checksum()
    );
    assert_eq!(header.protocol(), etherparse::IpNumber::ICMP);
    let (src, dst, icmp_type) = if from_client {
        (CLIENT_INNER, SERVER_INNER, 8)
    } else {
        (SERVER_INNER, CLIENT_INNER, 0)
    };
    assert_eq!(
        (header.source_addr(), header.destination_addr()),
        (src, dst)
    );
    assert_eq!(
        ip[header.slice().len()],
        icmp_type,
        "ICMP echo request/reply"
    );
    assert_eq!(usize::from(header.total_len()), 84);
}

/// Our server's LCP and CCP negotiators ack what the pppd client asked for, and our
/// IPCP Naks its 0.0.0.0 with the pool address, as pptpd did.
fn negotiators_accept_pppd(frames: &[Captured], method: Method, mppe: Option<KeyStrength>) {
    let mut rng = StdRng::seed_from_u64(1);
    let policy = auth::Policy::new(&[method]);
    let config = LcpConfig {
        mru: 1500,
        pfc: true,
        acfc: true,
        auth: AuthRole::Authenticator(policy),
    };
    let mut lcp = Lcp::new(config, &mut rng);
    for c in frames.iter().filter(|c| c.from_client) {
        let Ok(f) = Frame::parse(&c.ppp) else {
            continue;
        };
        let Ok(p) = Packet::parse(f.info) else {
            continue;
        };
        let negotiated = matches!(f.protocol, protocol::LCP | protocol::CCP | protocol::IPCP);
        if !negotiated || p.code != code::CONFIGURE_REQUEST {
            continue;
        }
        let opts = packet::parse_options(p.data).unwrap();
        match f.protocol {
            protocol::LCP => assert_eq!(lcp.judge(&opts), Verdict::Ack),
            protocol::CCP => {
                let strengths = mppe.map(|s| vec![s]).unwrap_or_default();
                let mode = if mppe.is_some() {
                    pptp_agent::ppp::ccp::MppeMode::Require
                } else {
                    pptp_agent::ppp::ccp::MppeMode::Deny
                };
                let all = [
                    KeyStrength::Bits40,
                    KeyStrength::Bits56,
                    KeyStrength::Bits128,
                ];
                let mut ccp = Ccp::new(
                    MppePolicy {
                        mode,
                        strengths,
                        allow_stateful: false,
                        request_stateful: false,
                    },
                    &all,
                );
                assert_eq!(ccp.judge(&opts), Verdict::Ack);
            }
            protocol::IPCP => {
                let mut ipcp = Ipcp::new(IpcpConfig {
                    local: Some(SERVER_INNER),
                    peer: Some(CLIENT_INNER),
                    ..IpcpConfig::default()
                });
                let expected = if opts.iter().any(|o| o.data == [0, 0, 0, 0]) {
                    Verdict::Nak(vec![3, 6, 198, 51, 100, 10])
                } else {
                    Verdict::Ack
                };
                assert_eq!(ipcp.judge(&opts), expected);
            }
            _ => {}
        }
    }
}

#[test]
fn mschapv2_mppe128() {
    let frames = capture("mschapv2-mppe128.pcap");
    let server = authenticator_matches_pppd(&frames, Method::MsChapV2).unwrap();
    let client = peer_matches_pppd(&frames, Method::MsChapV2).unwrap();
    assert_eq!((server.send, server.recv), (client.recv, client.send));
    decrypt_first(&frames, true, &server.recv, KeyStrength::Bits128);
    decrypt_first(&frames, false, &client.recv, KeyStrength::Bits128);
    negotiators_accept_pppd(&frames, Method::MsChapV2, Some(KeyStrength::Bits128));
}

#[test]
fn mschapv2_mppe40() {
    let frames = capture("mschapv2-mppe40.pcap");
    let server = authenticator_matches_pppd(&frames, Method::MsChapV2).unwrap();
    let client = peer_matches_pppd(&frames, Method::MsChapV2).unwrap();
    decrypt_first(&frames, true, &server.recv, KeyStrength::Bits40);
    decrypt_first(&frames, false, &client.recv, KeyStrength::Bits40);
    negotiators_accept_pppd(&frames, Method::MsChapV2, Some(KeyStrength::Bits40));
}

#[test]
fn mschapv1_mppe128() {
    let frames = capture("mschap-mppe128.pcap");
    let server = authenticator_matches_pppd(&frames, Method::MsChapV1).unwrap();
    let client = peer_matches_pppd(&frames, Method::MsChapV1).unwrap();
    assert_eq!(server, client);
    decrypt_first(&frames, true, &server.recv, KeyStrength::Bits128);
    decrypt_first(&frames, false, &server.send, KeyStrength::Bits128);
    negotiators_accept_pppd(&frames, Method::MsChapV1, Some(KeyStrength::Bits128));
}

#[test]
fn chap_md5() {
    let frames = capture("chap-nomppe.pcap");
    // pppd's 19-byte challenge: our peer's MD5 response matches pppd's.
    peer_matches_pppd_md5(&frames);
    negotiators_accept_pppd(&frames, Method::ChapMd5, None);
}

fn peer_matches_pppd_md5(frames: &[Captured]) {
    let (_, challenge) = find(frames, protocol::CHAP, 1);
    let (_, response) = find(frames, protocol::CHAP, 2);
    let (_, success) = find(frames, protocol::CHAP, 3);
    let now = Instant::now();
    let mut p = Peer::new(Method::ChapMd5, credentials(), auth::Timers::default());
    p.start(now, &mut Replay(vec![]));
    p.receive(now, &challenge, &mut Replay(vec![]));
    assert_eq!(p.poll_transmit().unwrap(), response);
    let outcome = p
        .receive(now, &success, &mut Replay(vec![]))
        .unwrap()
        .unwrap();
    assert_eq!(outcome.keys, None);
}

#[test]
fn pap() {
    let frames = capture("pap-nomppe.pcap");
    let (from_client, request) = find(&frames, protocol::PAP, 1);
    let (_, ack) = find(&frames, protocol::PAP, 2);
    assert!(from_client);
    let now = Instant::now();
    let mut a = Authenticator::new(Method::Pap, b"pptpd", auth::Timers::default());
    a.start(now, &mut Replay(vec![]));
    let outcome = a
        .receive(&request, &Users, &mut Replay(vec![]))
        .unwrap()
        .unwrap();
    assert_eq!(outcome.user, b"pptpuser");
    assert_eq!(
        a.poll_transmit().unwrap(),
        ack,
        "our Authenticate-Ack equals pppd's"
    );
    // Our peer's request carries the same fields as pppd's.
    let mut p = Peer::new(Method::Pap, credentials(), auth::Timers::default());
    p.start(
        now,
        &mut Replay(vec![Packet::parse(&request).unwrap().id.wrapping_sub(1)]),
    );
    let sent = p.poll_transmit().unwrap();
    assert_eq!(sent, request);
    assert!(p.receive(now, &ack, &mut Replay(vec![])).unwrap().is_ok());
    negotiators_accept_pppd(&frames, Method::Pap, None);
}
