//! Link-level tests: complete handshakes between our server and our client for every
//! authentication method and MPPE policy, and the edge cases that must end in a
//! defined state within bounded (virtual) time.

use std::time::Duration;

use super::auth::{AuthError, Method};
use super::ccp::{MppeMode, MppePolicy};
use super::frame::{self, Frame, Framing, protocol};
use super::fsm::code;
use super::lcp;
use super::link::{DownReason, Event, LinkConfig, Phase};
use super::packet::{self, Packet};
use super::pair::*;
use crate::mppe::KeyStrength;

const METHODS: [Method; 4] = [
    Method::Pap,
    Method::ChapMd5,
    Method::MsChapV1,
    Method::MsChapV2,
];

fn keyed(method: Method) -> Vec<KeyStrength> {
    match method {
        Method::MsChapV2 => vec![
            KeyStrength::Bits40,
            KeyStrength::Bits56,
            KeyStrength::Bits128,
        ],
        Method::MsChapV1 => vec![KeyStrength::Bits128],
        _ => vec![],
    }
}

fn available(policy: &MppePolicy, method: Method) -> Vec<KeyStrength> {
    if policy.mode == MppeMode::Deny {
        return vec![];
    }
    keyed(method)
        .into_iter()
        .filter(|s| policy.strengths.contains(s))
        .collect()
}

fn policies() -> Vec<MppePolicy> {
    let mut out = Vec::new();
    for mode in [MppeMode::Require, MppeMode::Prefer, MppeMode::Deny] {
        for strengths in [
            vec![KeyStrength::Bits128],
            vec![KeyStrength::Bits40],
            vec![
                KeyStrength::Bits40,
                KeyStrength::Bits56,
                KeyStrength::Bits128,
            ],
        ] {
            out.push(MppePolicy {
                mode,
                strengths,
                allow_stateful: false,
                request_stateful: false,
            });
        }
    }
    out
}

#[test]
fn every_method_and_mppe_policy_combination() {
    let mut runs = 0;
    for method in METHODS {
        for sp in policies() {
            for cp in policies() {
                let mut server = server_config(&[method], OneAddress::default());
                server.mppe = sp.clone();
                let mut client = client_config(&[method], PASSWORD);
                client.mppe = cp.clone();
                let mut pair = Pair::links(server, client);
                pair.open();
                pair.drive_to_settled();
                runs += 1;
                let ctx = format!("{method:?} server {sp:?} client {cp:?}");
                let (s, c) = (available(&sp, method), available(&cp, method));
                let common: Vec<_> = s.iter().filter(|x| c.contains(x)).copied().collect();
                let required = sp.mode == MppeMode::Require || cp.mode == MppeMode::Require;
                if common.is_empty() && required {
                    let reasons = [down(&pair.server_events), down(&pair.client_events)];
                    assert!(
                        reasons.contains(&Some(&DownReason::MppeRequired)),
                        "{ctx}: {reasons:?}"
                    );
                    continue;
                }
                let (su, cu) = (up(&pair.server_events), up(&pair.client_events));
                let (Some(su), Some(cu)) = (su, cu) else {
                    panic!("{ctx}: not up")
                };
                assert_eq!((su.local_ip, su.peer_ip), (SERVER_IP, POOL_IP), "{ctx}");
                assert_eq!((cu.local_ip, cu.peer_ip), (POOL_IP, SERVER_IP), "{ctx}");
                assert_eq!(cu.dns, [Some(DNS), None], "{ctx}");
                assert_eq!(
                    su.framing,
                    Framing {
                        acfc: true,
                        pfc: true
                    }
                );
                match common.iter().max() {
                    None => assert!(su.mppe.is_none() && cu.mppe.is_none(), "{ctx}"),
                    Some(&strongest) => {
                        let (sm, cm) = (su.mppe.as_ref().unwrap(), cu.mppe.as_ref().unwrap());
                        assert_eq!(sm.params, cm.params, "{ctx}");
                        assert_eq!(sm.params.strength, strongest, "{ctx}");
                        assert!(sm.params.stateless);
                        assert_eq!(
                            (sm.keys.send, sm.keys.recv),
                            (cm.keys.recv, cm.keys.send),
                            "{ctx}"
                        );
                    }
                }
                let auth = Event::AuthSucceeded {
                    user: USER.to_vec(),
                };
                assert!(pair.server_events.contains(&auth) && pair.client_events.contains(&auth));
            }
        }
    }
    assert_eq!(runs, 4 * 9 * 9);
}

#[test]
fn handshake_survives_loss() {
    for method in METHODS {
        let mut server = server_config(&[method], OneAddress::default());
        server.mppe.mode = MppeMode::Prefer;
        let mut client = client_config(&[method], PASSWORD);
        client.mppe.mode = MppeMode::Prefer;
        let mut pair = Pair::links(server, client);
        // Drop a pseudo-random quarter of the frames (a fixed period can lock onto the
        // retransmission cycle and starve one frame forever).
        let mut state = 0x2545_f491_u32;
        pair.fault = Some(Box::new(move |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            !state.is_multiple_of(4)
        }));
        pair.open();
        pair.drive_to_settled();
        assert!(
            up(&pair.server_events).is_some() && up(&pair.client_events).is_some(),
            "{method:?} {:?} {:?}",
            pair.server_events,
            pair.client_events
        );
    }
}

#[test]
fn wrong_password_fails_with_the_method_failure_message() {
    for method in METHODS {
        let mut pair = Pair::links(
            server_config(&[method], OneAddress::default()),
            client_config(&[method], b"wrong"),
        );
        pair.open();
        pair.drive_to_settled();
        let bad = DownReason::AuthFailed(AuthError::BadCredentials {
            user: "pptpuser".into(),
        });
        assert_eq!(down(&pair.server_events), Some(&bad), "{method:?}");
        let Some(DownReason::AuthFailed(AuthError::Rejected { message })) =
            down(&pair.client_events)
        else {
            panic!("{method:?}: {:?}", pair.client_events)
        };
        if method == Method::MsChapV2 {
            assert!(message.starts_with("E=691 R=0 C="), "{message}");
            assert!(message.contains(" V=3 M="), "{message}");
            assert_eq!(message.len(), "E=691 R=0 C= V=3 M=Access denied".len() + 32);
        }
    }
}

#[test]
fn client_verifies_the_mschapv2_authenticator_response() {
    let mut pair = Pair::links(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client_config(&[Method::MsChapV2], PASSWORD),
    );
    // Flip one hex digit of "S=..." in the Success packet.
    pair.fault = Some(Box::new(|side, f| {
        if let (Side::Server, Ok(fr)) = (side, Frame::parse(f)) {
            if fr.protocol == protocol::CHAP && fr.info.first() == Some(&3) {
                let at = f.len() - fr.info.len() + 4 + 2;
                f[at] = if f[at] == b'0' { b'1' } else { b'0' };
            }
        }
        true
    }));
    pair.open();
    pair.drive_to_settled();
    assert_eq!(
        down(&pair.client_events),
        Some(&DownReason::AuthFailed(AuthError::BadAuthenticatorResponse))
    );
    assert!(up(&pair.client_events).is_none());
}

#[test]
fn client_picks_a_method_by_refusing_the_others() {
    let all = [
        Method::MsChapV2,
        Method::MsChapV1,
        Method::ChapMd5,
        Method::Pap,
    ];
    for only in METHODS {
        let mut server = server_config(&all, OneAddress::default());
        server.mppe.mode = MppeMode::Prefer;
        let mut client = client_config(&[only], PASSWORD);
        client.mppe.mode = MppeMode::Prefer;
        let mut pair = Pair::links(server, client);
        pair.open();
        pair.drive_to_settled();
        assert!(up(&pair.server_events).is_some(), "{only:?}");
        assert_eq!(
            up(&pair.client_events).unwrap().mppe.is_some(),
            only.has_mppe_keys()
        );
    }
    // No method in common.
    let mut pair = Pair::links(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client_config(&[Method::Pap], PASSWORD),
    );
    pair.open();
    pair.drive_to_settled();
    assert_eq!(down(&pair.server_events), Some(&DownReason::NoCommonAuth));
}

#[test]
fn peer_rejecting_authentication_is_refused() {
    let mut pair = Pair::links(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client_config(&[], PASSWORD),
    );
    pair.open();
    pair.drive_until(Duration::from_secs(60), |p| {
        down(&p.server_events).is_some()
    });
    assert_eq!(down(&pair.server_events), Some(&DownReason::AuthRefused));
    assert!(pair.elapsed() < Duration::from_secs(1));
}

/// A scripted peer: answers Configure-Requests of any protocol with `answer`.
fn script(mut answer: impl FnMut(u16, Packet<'_>) -> Vec<Vec<u8>> + 'static) -> Remote {
    Remote::Script(Box::new(move |bytes| {
        let Ok(f) = Frame::parse(bytes) else {
            return vec![];
        };
        let Ok(p) = Packet::parse(f.info) else {
            return vec![];
        };
        answer(f.protocol, p)
            .into_iter()
            .map(|pkt| frame::encode(Framing::default(), f.protocol, &pkt))
            .collect()
    }))
}

fn run_server_against(remote: Remote) -> Pair {
    let mut pair = Pair::new(
        link(server_config(&[Method::MsChapV2], OneAddress::default()), 1),
        remote,
    );
    pair.open();
    pair.drive_until(Duration::from_secs(600), |p| {
        down(&p.server_events).is_some()
    });
    pair
}

#[test]
fn silent_peer_times_out() {
    let pair = run_server_against(script(|_, _| vec![]));
    assert_eq!(down(&pair.server_events), Some(&DownReason::Timeout));
    // Max-Configure (10) requests, 3 s apart.
    assert_eq!(pair.elapsed(), Duration::from_secs(30));
    assert_eq!(pair.transcript.len(), 10);
    assert_eq!(pair.server.phase(), Phase::Dead);
}

/// Naks every option of every Configure-Request with a different value.
fn nak_everything() -> Remote {
    script(|_, p| {
        let mut naks = Vec::new();
        if p.code != code::CONFIGURE_REQUEST {
            return vec![];
        }
        for o in packet::parse_options(p.data).unwrap() {
            let data: Vec<u8> = o.data.iter().map(|b| b.wrapping_add(1)).collect();
            packet::push_option(&mut naks, o.kind, &data);
        }
        vec![packet::encode(code::CONFIGURE_NAK, p.id, &naks)]
    })
}

#[test]
fn peer_that_naks_everything_is_given_up() {
    // With authentication the nonsense method suggested ends it at once.
    let pair = run_server_against(nak_everything());
    assert_eq!(down(&pair.server_events), Some(&DownReason::NoCommonAuth));
    assert!(
        pair.elapsed() <= Duration::from_secs(6),
        "{:?}",
        pair.elapsed()
    );
    // Without authentication the Nak loop bound does.
    let mut pair = Pair::new(
        link(server_config(&[], OneAddress::default()), 1),
        nak_everything(),
    );
    pair.open();
    pair.drive_until(Duration::from_secs(600), |p| {
        down(&p.server_events).is_some()
    });
    assert_eq!(
        down(&pair.server_events),
        Some(&DownReason::NegotiationFailed)
    );
    assert!(
        pair.elapsed() <= Duration::from_secs(6),
        "{:?}",
        pair.elapsed()
    );
}

#[test]
fn configure_request_loop_is_bounded() {
    // Acks every request and immediately asks again, forever: the link opens, then
    // the peer renegotiates; we close instead of looping.
    let pair = run_server_against(script(|proto, p| match (proto, p.code) {
        (protocol::LCP, code::CONFIGURE_REQUEST) => vec![
            packet::encode(code::CONFIGURE_ACK, p.id, p.data),
            packet::encode(code::CONFIGURE_REQUEST, p.id.wrapping_add(100), &[]),
        ],
        _ => vec![],
    }));
    assert!(down(&pair.server_events).is_some());
    assert!(
        pair.elapsed() <= Duration::from_secs(40),
        "{:?}",
        pair.elapsed()
    );

    // Never acks ours, keeps sending requests: bounded by the restart counter.
    let pair = run_server_against(script(|proto, p| match (proto, p.code) {
        (protocol::LCP, code::CONFIGURE_REQUEST) => {
            vec![packet::encode(
                code::CONFIGURE_REQUEST,
                p.id,
                &[5, 6, 0, 0, 0, 9],
            )]
        }
        _ => vec![],
    }));
    assert!(down(&pair.server_events).is_some());
    assert!(
        pair.elapsed() <= Duration::from_secs(40),
        "{:?}",
        pair.elapsed()
    );
}

#[test]
fn looped_back_link_is_detected() {
    // The server's own frames come back to it.
    let mut server = link(server_config(&[Method::MsChapV2], OneAddress::default()), 9);
    let now = std::time::Instant::now();
    server.open(now);
    let mut reason = None;
    for _ in 0..1000 {
        let frames: Vec<_> = std::iter::from_fn(|| server.poll_transmit()).collect();
        for f in frames {
            server.handle_frame(now, &f);
        }
        if let Some(Event::Down(r)) = std::iter::from_fn(|| server.poll_event()).last() {
            reason = Some(r);
            break;
        }
        if let Some(t) = server.poll_timeout() {
            server.handle_timeout(t);
        }
    }
    assert_eq!(reason, Some(DownReason::LoopedBack));
}

fn up_pair(server: LinkConfig, client: LinkConfig) -> Pair {
    let mut pair = Pair::links(server, client);
    pair.open();
    pair.drive_to_settled();
    assert!(up(&pair.server_events).is_some() && up(&pair.client_events).is_some());
    pair
}

fn mschapv2_pair() -> Pair {
    up_pair(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client_config(&[Method::MsChapV2], PASSWORD),
    )
}

#[test]
fn unknown_protocol_is_protocol_rejected_and_the_link_stays_up() {
    let mut pair = mschapv2_pair();
    let now = pair.now;
    let bogus = frame::encode(Framing::default(), 0x8031, &[1, 1, 0, 4]);
    assert_eq!(pair.server.handle_frame(now, &bogus), None);
    let reply = pair.server.poll_transmit().unwrap();
    let f = Frame::parse(&reply).unwrap();
    let p = Packet::parse(f.info).unwrap();
    assert_eq!(
        (f.protocol, p.code),
        (protocol::LCP, lcp::code::PROTOCOL_REJECT)
    );
    assert_eq!(p.data, [0x80, 0x31, 1, 1, 0, 4]);
    assert_eq!(pair.server.phase(), Phase::Network);
    assert!(down(&pair.server_events).is_none());
}

#[test]
fn ipv6cp_runs_when_enabled_and_is_rejected_otherwise() {
    let mut server = server_config(&[Method::MsChapV2], OneAddress::default());
    server.ipv6 = true;
    let mut client = client_config(&[Method::MsChapV2], PASSWORD);
    client.ipv6 = true;
    let mut pair = up_pair(server, client);
    pair.drive_until(Duration::from_secs(10), |p| {
        p.client_events
            .iter()
            .any(|e| matches!(e, Event::Ipv6Up { .. }))
    });
    let ids = |ev: &[Event]| {
        ev.iter().find_map(|e| match e {
            Event::Ipv6Up { local_id, peer_id } => Some((*local_id, *peer_id)),
            _ => None,
        })
    };
    let (sl, sp) = ids(&pair.server_events).unwrap();
    assert_eq!(ids(&pair.client_events), Some((sp, sl)));

    // Server without IPv6: the client's IPV6CP is Protocol-Rejected, IPv4 stays up.
    let mut client = client_config(&[Method::MsChapV2], PASSWORD);
    client.ipv6 = true;
    let mut pair = up_pair(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client,
    );
    pair.drive_until(Duration::from_secs(60), |_| false);
    assert!(down(&pair.client_events).is_none() && down(&pair.server_events).is_none());
}

#[test]
fn ccp_protocol_reject_with_prefer_and_require() {
    for (mode, expect_up) in [(MppeMode::Prefer, true), (MppeMode::Require, false)] {
        let mut server = server_config(&[Method::MsChapV2], OneAddress::default());
        server.mppe.mode = mode;
        let mut client = client_config(&[Method::MsChapV2], PASSWORD);
        client.mppe.mode = MppeMode::Prefer;
        let mut pair = Pair::links(server, client);
        // The server's CCP never reaches the client, and what the client sends on CCP
        // arrives as a Protocol-Reject of CCP, as from a peer without CCP.
        pair.fault = Some(Box::new(|side, f| {
            let Ok(fr) = Frame::parse(f) else { return true };
            match (side, fr.protocol) {
                (Side::Server, protocol::CCP) => false,
                (Side::Client, protocol::CCP) => {
                    let mut data = protocol::CCP.to_be_bytes().to_vec();
                    data.extend_from_slice(fr.info);
                    *f = frame::encode(
                        Framing::default(),
                        protocol::LCP,
                        &packet::encode(8, 200, &data),
                    );
                    true
                }
                _ => true,
            }
        }));
        pair.open();
        pair.drive_until(Duration::from_secs(60), |p| {
            up(&p.server_events).is_some() || down(&p.server_events).is_some()
        });
        assert_eq!(up(&pair.server_events).is_some(), expect_up, "{mode:?}");
        if expect_up {
            assert!(up(&pair.server_events).unwrap().mppe.is_none());
        } else {
            assert_eq!(down(&pair.server_events), Some(&DownReason::MppeRequired));
        }
    }
}

#[test]
fn active_peer_never_trips_dead_peer_detection() {
    let mut pair = mschapv2_pair();
    // Ten minutes of virtual time with both ends answering echoes.
    pair.drive_until(Duration::from_secs(600), |p| {
        down(&p.server_events).is_some()
    });
    assert!(down(&pair.server_events).is_none() && down(&pair.client_events).is_none());
    let echoes = pair.transcript.iter().filter(|(_, f)| {
        Frame::parse(f).is_ok_and(|fr| fr.protocol == protocol::LCP && fr.info.first() == Some(&9))
    });
    assert!(echoes.count() >= 10);
}

#[test]
fn data_traffic_postpones_echo() {
    let mut pair = mschapv2_pair();
    let start = pair.now;
    let transcript_before = pair.transcript.len();
    // The data plane reports activity every 10 s: no Echo-Request is ever needed.
    for i in 1..=30 {
        let now = start + Duration::from_secs(10 * i);
        pair.server.note_peer_activity(now);
        pair.server.handle_timeout(now);
        assert!(pair.server.poll_transmit().is_none());
    }
    assert_eq!(pair.transcript.len(), transcript_before);
}

#[test]
fn silent_peer_after_up_is_declared_dead() {
    let mut pair = mschapv2_pair();
    pair.fault = Some(Box::new(|side, _| side == Side::Server));
    pair.drive_until(Duration::from_secs(600), |p| {
        down(&p.server_events).is_some()
    });
    assert_eq!(down(&pair.server_events), Some(&DownReason::EchoTimeout));
    // 30-45 s of silence (the link's echo wait), 3 unanswered echoes 30 s apart,
    // then 2 Terminate-Requests.
    assert!(
        pair.elapsed() <= Duration::from_secs(145),
        "{:?}",
        pair.elapsed()
    );
}

#[test]
fn echo_reply_fits_the_peer_mru() {
    let mut client = client_config(&[Method::MsChapV2], PASSWORD);
    client.mru = 500;
    let mut pair = up_pair(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client,
    );
    let now = pair.now;
    let mut data = 0u32.to_be_bytes().to_vec();
    data.extend_from_slice(&[0xaa; 1500]);
    let req = frame::encode(
        Framing::default(),
        protocol::LCP,
        &packet::encode(9, 77, &data),
    );
    pair.server.handle_frame(now, &req);
    let reply = pair.server.poll_transmit().unwrap();
    let f = Frame::parse(&reply).unwrap();
    assert_eq!(f.info.len(), 500);
    assert_eq!(Packet::parse(f.info).unwrap().code, 10);
}

#[test]
fn identification_and_time_remaining_are_ignored() {
    let mut pair = mschapv2_pair();
    let now = pair.now;
    for code in [12u8, 13, 11] {
        let pkt = frame::encode(
            Framing::default(),
            protocol::LCP,
            &packet::encode(code, 5, b"\0\0\0\0MSRASV5.20"),
        );
        pair.server.handle_frame(now, &pkt);
        assert!(pair.server.poll_transmit().is_none());
    }
    assert_eq!(pair.server.phase(), Phase::Network);
}

#[test]
fn data_frames_pass_only_when_open() {
    let mut pair = mschapv2_pair();
    let now = pair.now;
    let ip = frame::encode(
        Framing {
            acfc: true,
            pfc: true,
        },
        protocol::COMPRESSED,
        &[0x90, 0x00, 1, 2],
    );
    let got = pair.server.handle_frame(now, &ip).unwrap();
    assert_eq!(
        (got.protocol, got.info),
        (protocol::COMPRESSED, &[0x90, 0x00, 1, 2][..])
    );
    // With MPPE agreed, plain IPv4 is dropped.
    let plain = frame::encode(
        Framing {
            acfc: true,
            pfc: true,
        },
        protocol::IPV4,
        &[0x45],
    );
    assert_eq!(pair.server.handle_frame(now, &plain), None);
    // Before the link is up nothing passes.
    let mut fresh = link(server_config(&[Method::MsChapV2], OneAddress::default()), 3);
    fresh.open(now);
    assert_eq!(fresh.handle_frame(now, &ip), None);
}

#[test]
fn close_and_peer_terminate_release_the_address() {
    let pool = OneAddress::default();
    let mut pair = up_pair(
        server_config(&[Method::MsChapV2], pool.clone()),
        client_config(&[Method::MsChapV2], PASSWORD),
    );
    let now = pair.now;
    pair.client_link().close(now);
    pair.drive_until(Duration::from_secs(30), |p| {
        down(&p.server_events).is_some() && down(&p.client_events).is_some()
    });
    assert_eq!(down(&pair.client_events), Some(&DownReason::Closed));
    assert_eq!(down(&pair.server_events), Some(&DownReason::PeerTerminated));
    assert_eq!(*pool.released.lock().unwrap(), [POOL_IP]);

    let pool = OneAddress::default();
    let mut pair = up_pair(
        server_config(&[Method::MsChapV2], pool.clone()),
        client_config(&[Method::MsChapV2], PASSWORD),
    );
    let now = pair.now;
    pair.server.lower_down(now);
    assert_eq!(
        pair.server.poll_event(),
        Some(Event::Down(DownReason::LowerLayerDown))
    );
    assert_eq!(*pool.released.lock().unwrap(), [POOL_IP]);
}

#[test]
fn exhausted_pool_ends_the_link() {
    let pool = OneAddress::default();
    *pool.taken.lock().unwrap() = true;
    let mut pair = Pair::links(
        server_config(&[Method::MsChapV2], pool),
        client_config(&[Method::MsChapV2], PASSWORD),
    );
    pair.open();
    pair.drive_to_settled();
    assert_eq!(down(&pair.server_events), Some(&DownReason::NoAddress));
}

#[test]
fn ccp_reset_request_is_acked() {
    let mut pair = mschapv2_pair();
    let now = pair.now;
    pair.client_link().send_ccp_reset_request(now);
    pair.drive_until(Duration::from_secs(1), |p| {
        p.client_events.contains(&Event::CcpResetAcked)
    });
    assert!(pair.server_events.contains(&Event::CcpResetRequested));
    assert!(pair.client_events.contains(&Event::CcpResetAcked));
}

#[test]
fn code_reject_fits_the_peer_mru() {
    let mut client = client_config(&[Method::MsChapV2], PASSWORD);
    client.mru = 300;
    let mut pair = up_pair(
        server_config(&[Method::MsChapV2], OneAddress::default()),
        client,
    );
    let now = pair.now;
    let unknown = frame::encode(
        Framing::default(),
        protocol::IPCP,
        &packet::encode(99, 1, &[0; 1000]),
    );
    pair.server.handle_frame(now, &unknown);
    let reply = pair.server.poll_transmit().unwrap();
    let f = Frame::parse(&reply).unwrap();
    assert_eq!(
        (f.protocol, f.info[0], f.info.len()),
        (protocol::IPCP, code::CODE_REJECT, 300)
    );
}

#[test]
fn external_verifier_judges_claims() {
    use super::auth::{SecretSource, Verdict};
    use super::link::{Role, Verifier};
    for (accept, method) in [
        (true, Method::MsChapV2),
        (true, Method::Pap),
        (false, Method::MsChapV1),
    ] {
        let mut server = server_config(&[method], OneAddress::default());
        server.mppe.mode = MppeMode::Prefer;
        if let Role::Server(s) = &mut server.role {
            s.verifier = Verifier::External;
        }
        let mut client = client_config(&[method], PASSWORD);
        client.mppe.mode = MppeMode::Prefer;
        let mut pair = Pair::links(server, client);
        pair.open();
        let asked = |p: &Pair| {
            p.server_events
                .iter()
                .any(|e| matches!(e, Event::VerifyRequest(..)))
        };
        assert!(pair.drive_until(Duration::from_secs(10), asked));
        let Some(Event::VerifyRequest(ticket, claim)) = pair.server_events.pop() else {
            panic!()
        };
        assert_eq!((claim.method, claim.user.as_slice()), (method, USER));
        // The RADIUS stand-in: local secrets, or a flat refusal.
        let verdict = if accept {
            claim.verify(Users.secret(&claim.user))
        } else {
            Verdict::Reject
        };
        let now = pair.now;
        pair.server.verified(now, ticket, verdict);
        pair.drive_to_settled();
        assert_eq!(up(&pair.client_events).is_some(), accept, "{method:?}");
        assert_eq!(
            up(&pair.client_events).is_some_and(|u| u.mppe.is_some()),
            accept && method.has_mppe_keys()
        );
        if !accept {
            assert!(matches!(
                down(&pair.client_events),
                Some(DownReason::AuthFailed(AuthError::Rejected { .. }))
            ));
        }
    }
}

#[test]
fn lost_success_is_recovered_by_the_repeated_response() {
    for method in [Method::ChapMd5, Method::MsChapV1, Method::MsChapV2] {
        let mut server = server_config(&[method], OneAddress::default());
        server.mppe.mode = MppeMode::Prefer;
        let mut client = client_config(&[method], PASSWORD);
        client.mppe.mode = MppeMode::Prefer;
        let mut pair = Pair::links(server, client);
        let mut dropped = false;
        pair.fault = Some(Box::new(move |side, f| {
            let success = Frame::parse(f)
                .is_ok_and(|fr| fr.protocol == protocol::CHAP && fr.info.first() == Some(&3));
            if side == Side::Server && success && !dropped {
                dropped = true;
                return false;
            }
            true
        }));
        pair.open();
        pair.drive_to_settled();
        assert!(
            up(&pair.client_events).is_some(),
            "{method:?}: {:?}",
            pair.client_events
        );
    }
}

/// With MPPE, neither end sends IPCP before its CCP is open: pppd keeps IPCP Closed
/// until then and answers an early Configure-Request with Terminate-Ack, which cost
/// 3 s per MPPE session against pppd (the interop VM measured it).
#[test]
fn ipcp_waits_for_ccp_when_mppe_is_negotiated() {
    let pair = mschapv2_pair();
    assert!(up(&pair.server_events).unwrap().mppe.is_some());
    let decoded: Vec<(Side, u16, u8)> = pair
        .transcript
        .iter()
        .filter_map(|(side, bytes)| {
            let f = Frame::parse(bytes).ok()?;
            Some((*side, f.protocol, Packet::parse(f.info).ok()?.code))
        })
        .collect();
    for side in [Side::Server, Side::Client] {
        let first_ipcp = decoded
            .iter()
            .position(|&(s, p, _)| s == side && p == protocol::IPCP)
            .expect("IPCP ran");
        let acks_before = |from: Side| {
            decoded[..first_ipcp]
                .iter()
                .any(|&(s, p, c)| s == from && p == protocol::CCP && c == code::CONFIGURE_ACK)
        };
        assert!(
            acks_before(Side::Server) && acks_before(Side::Client),
            "{side:?} sent IPCP before CCP was open: {decoded:?}"
        );
    }
    assert!(
        !decoded
            .iter()
            .any(|&(_, p, c)| p == protocol::IPCP && c == code::TERMINATE_ACK),
        "no IPCP Terminate-Ack: {decoded:?}"
    );
}

#[test]
fn a_passive_server_speaks_after_the_client_and_comes_up_without_waiting() {
    let mut server = server_config(&[Method::MsChapV2], OneAddress::default());
    server.passive = Some(Duration::from_millis(500));
    let mut pair = Pair::links(server, client_config(&[Method::MsChapV2], PASSWORD));
    pair.open();
    assert!(
        pair.server.poll_transmit().is_none(),
        "nothing before the client's first packet"
    );
    pair.drive_to_settled();
    assert!(up(&pair.server_events).is_some() && up(&pair.client_events).is_some());
    assert_eq!(pair.transcript[0].0, Side::Client, "the client spoke first");
    assert!(
        pair.elapsed() < Duration::from_millis(500),
        "no timer waited: {:?}",
        pair.elapsed()
    );
}

#[test]
fn a_passive_server_speaks_first_when_the_client_waits() {
    let mut server = server_config(&[Method::ChapMd5], OneAddress::default());
    server.passive = Some(Duration::from_millis(500));
    let mut pair = Pair::new(
        link(server, 1),
        Remote::Script(Box::new(|_frame: &[u8]| Vec::new())),
    );
    pair.open();
    let spoke = pair.drive_until(Duration::from_secs(1), |p| !p.transcript.is_empty());
    assert!(spoke, "the server's Configure-Request went out");
    assert_eq!(pair.transcript[0].0, Side::Server);
    assert_eq!(pair.elapsed(), Duration::from_millis(500));
    let frame = Frame::parse(&pair.transcript[0].1).unwrap();
    assert_eq!(frame.protocol, protocol::LCP);
    assert_eq!(frame.info[0], code::CONFIGURE_REQUEST);
}

#[test]
fn a_verdict_answers_only_the_claim_it_was_asked_for() {
    use super::auth::{Credentials, Policy, SecretSource};
    use super::link::{ClientConfig, Role, Verifier};
    // alice's claim waits for RADIUS; meanwhile LCP restarts and mallory (wrong
    // password) claims. alice's Accept must not let mallory in.
    let mut server = server_config(&[Method::Pap], OneAddress::default());
    if let Role::Server(s) = &mut server.role {
        s.verifier = Verifier::External;
    }
    let mut pair = Pair::links(server, client_config(&[Method::Pap], PASSWORD));
    pair.open();
    let asked = |p: &Pair| {
        p.server_events
            .iter()
            .any(|e| matches!(e, Event::VerifyRequest(..)))
    };
    assert!(pair.drive_until(Duration::from_secs(10), asked));
    let Some(Event::VerifyRequest(alice_ticket, alice)) = pair.server_events.pop() else {
        panic!("no claim")
    };
    let alice_verdict = alice.verify(Users.secret(&alice.user));

    let mallory = LinkConfig::new(Role::Client(ClientConfig {
        credentials: Credentials {
            user: b"mallory".to_vec(),
            password: b"guess".to_vec(),
        },
        auth: Policy::new(&[Method::Pap]),
        request_dns: true,
    }));
    pair.client = Remote::Link(Box::new(link(mallory, 3)));
    let now = pair.now;
    pair.client_link().open(now);
    assert!(pair.drive_until(Duration::from_secs(10), asked));
    let Some(Event::VerifyRequest(mallory_ticket, second)) = pair.server_events.pop() else {
        panic!("no second claim")
    };
    assert_eq!(second.user, b"mallory");

    let now = pair.now;
    assert!(
        !pair.server.verified(now, alice_ticket, alice_verdict),
        "a verdict for alice's claim decided mallory's"
    );
    // The verdict quoting mallory's own ticket decides mallory's claim.
    let verdict = second.verify(Users.secret(&second.user));
    assert!(pair.server.verified(now, mallory_ticket, verdict));
    pair.drive_to_settled();
    let authenticated: Vec<&[u8]> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            Event::AuthSucceeded { user } => Some(user.as_slice()),
            _ => None,
        })
        .collect();
    assert!(
        authenticated.is_empty(),
        "authenticated {:?}",
        authenticated
            .iter()
            .map(|u| String::from_utf8_lossy(u))
            .collect::<Vec<_>>()
    );
    assert!(up(&pair.client_events).is_none());
    assert!(matches!(
        down(&pair.client_events),
        Some(DownReason::AuthFailed(AuthError::Rejected { .. }))
    ));
}
