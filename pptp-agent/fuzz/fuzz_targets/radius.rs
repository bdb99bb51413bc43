//! Fuzzes the RADIUS codec and everything that reads what a RADIUS server or a
//! dynamic-authorization client sends: parsing never panics and what parses
//! re-encodes to the same attributes (Message-Authenticator aside); response and
//! request verification, vendor attributes, key decryption, the verdict for each
//! method, the authorization (MikroTik's rate limit and quota included: a seed has
//! them), Disconnect/CoA reading, the client transaction and the matching of answers
//! to exchanges in flight take any bytes. The first byte chooses whether the rest is taken as is or first signed
//! as a valid response (so the fuzzer reaches the verdict code without forging MD5).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_agent::{
    ppp::auth::{Claim, Method},
    radius::{
        auth::{self, Authorization},
        client::{Health, RequireMessageAuthenticator, Server, Timing, Transaction},
        dae,
        exchanges::{Exchanges, Limits, Request},
        packet::{self, Packet},
    },
};

const SECRET: &[u8] = b"fuzz-secret";
const REQUEST_AUTH: [u8; 16] = [7; 16];

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let signed;
    let bytes = if mode & 1 == 1 {
        // Sign the parsed packet as a response to REQUEST_AUTH.
        let Ok(p) = Packet::parse(rest) else { return };
        match p.encode(SECRET, Some(&REQUEST_AUTH)) {
            Ok(b) => {
                signed = b;
                &signed[..]
            }
            Err(_) => return,
        }
    } else {
        rest
    };
    if let Ok(p) = Packet::parse(bytes) {
        // Encoding computes Message-Authenticator (and adds one to an
        // Access-Request): every other attribute comes back as it was.
        let without_ma = |p: &Packet| -> Vec<(u8, Vec<u8>)> {
            p.attributes
                .iter()
                .filter(|(t, _)| *t != packet::attr::MESSAGE_AUTHENTICATOR)
                .cloned()
                .collect()
        };
        if let Ok(again) = p.encode(SECRET, Some(&REQUEST_AUTH)) {
            assert_eq!(without_ma(&Packet::parse(&again).unwrap()), without_ma(&p));
        }
        for kind in [1u8, 2, 11, 12, 16, 17, 25, 26] {
            if let Some(v) = p.vendor(311, kind) {
                let _ = packet::decrypt_salted_key(v, SECRET, &REQUEST_AUTH);
                let _ = packet::unhide(v, SECRET, &REQUEST_AUTH);
            }
        }
        let _ = Authorization::from_packet(&p);
    }
    if let Ok(p) = Packet::verify_response(bytes, &REQUEST_AUTH, SECRET, mode & 2 == 2) {
        for (method, challenge, response) in [
            (Method::Pap, vec![], b"pw".to_vec()),
            (Method::ChapMd5, vec![1; 16], vec![2; 16]),
            (Method::MsChapV1, vec![3; 8], vec![4; 49]),
            (Method::MsChapV2, vec![5; 16], vec![6; 49]),
        ] {
            let claim = Claim {
                method,
                user: b"u".to_vec(),
                challenge,
                response,
                id: 1,
            };
            let _ = auth::judge(&claim, &p, &REQUEST_AUTH, SECRET);
        }
    }
    let clients = [(IpAddr::from([127, 0, 0, 1]), SECRET.to_vec())];
    if let Ok(r) = dae::read_request(bytes, clients[0].0, &clients, mode & 2 == 2) {
        let _ = dae::answer(&r, None);
    }
    let servers = [Server {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 1812)),
        secret: SECRET.to_vec(),
    }];
    let mut request = Packet::new(
        packet::code::ACCESS_REQUEST,
        bytes.get(1).copied().unwrap_or(0),
        REQUEST_AUTH,
    );
    request.push(packet::attr::USER_NAME, "u");
    let timing = Timing {
        timeout: Duration::from_secs(1),
        retries: 0,
        dead_time: Duration::ZERO,
        require_message_authenticator: if mode & 2 == 2 {
            RequireMessageAuthenticator::Always
        } else {
            RequireMessageAuthenticator::Auto
        },
    };
    let mut t = Transaction::in_order(
        &servers,
        vec![request.encode(SECRET, None).unwrap()],
        vec![0],
        timing,
    );
    let now = Instant::now();
    let _ = t.poll_transmit(now);
    let _ = t.handle_response(0, bytes);

    // The same request in flight over the shared sockets (identifier 0, the first
    // handed out): the datagram is matched, then verified.
    let mut exchanges = Exchanges::new(Limits {
        sockets: 1,
        hold: Duration::from_secs(1),
        max_waiting: 1,
    });
    exchanges.submit(
        Request {
            servers: servers.to_vec().into(),
            health: Health::default(),
            timing,
            encode: Box::new(|id| {
                let mut r = Packet::new(packet::code::ACCESS_REQUEST, id, REQUEST_AUTH);
                r.push(packet::attr::USER_NAME, "u");
                Some(vec![r.encode(SECRET, None).ok()?])
            }),
            token: (),
        },
        now,
    );
    let _ = exchanges.poll_transmit(now);
    let _ = exchanges.handle_datagram(0, servers[0].addr, bytes, now);
    let _ = exchanges.poll_done();
});
