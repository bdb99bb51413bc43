//! The authentication parsers and both authentication machines on arbitrary packets:
//! PAP, CHAP-MD5, MS-CHAPv1 and MS-CHAPv2, authenticator and peer.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use pptp_agent::ppp::auth::{
    self, Authenticator, Credentials, Method, Peer, Secret, SecretSource, chap, mschap, mschapv2,
    pap,
};
use pptp_agent::ppp::rand::SeedableRng;
use pptp_agent::ppp::rand::rngs::StdRng;

struct Users;

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        match user.first() {
            Some(b'p') => Some(Secret::Password(b"pptp-Secret1".to_vec())),
            Some(b'h') => Some(Secret::NtHash([7; 16])),
            _ => None,
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    let _ = pap::Request::parse(data);
    let _ = pap::parse_message(data);
    let _ = chap::Value::parse(data);
    let _ = mschap::Response::parse(data);
    let _ = mschapv2::Response::parse(data);
    let _ = mschapv2::parse_success(data);
    let _ = mschapv2::parse_failure(data);

    let method = [
        Method::Pap,
        Method::ChapMd5,
        Method::MsChapV1,
        Method::MsChapV2,
    ][usize::from(which % 4)];
    let now = Instant::now();
    let mut rng = StdRng::seed_from_u64(u64::from(which));
    // Split the rest into packets at 0xff 0xfe markers.
    let packets: Vec<&[u8]> = data.split(|&b| b == 0xfe).collect();
    let mut a = Authenticator::new(method, b"pptpd", auth::Timers::default());
    a.start(now, &mut rng);
    let creds = Credentials {
        user: b"pptpuser".to_vec(),
        password: b"pptp-Secret1".to_vec(),
    };
    let mut p = Peer::new(method, creds, auth::Timers::default());
    p.start(now, &mut rng);
    for pkt in packets {
        let _ = a.receive(pkt, &Users, &mut rng);
        let _ = p.receive(now, pkt, &mut rng);
        while a.poll_transmit().is_some() || p.poll_transmit().is_some() {}
    }
});
