//! The whole PPP link (server and client) fed arbitrary frames and time jumps: no
//! panic, and it always either has a deadline or is quiet.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_agent::ppp::auth::{Credentials, Method, Policy, Secret, SecretSource};
use pptp_agent::ppp::ipcp::AddressPool;
use pptp_agent::ppp::link::{ClientConfig, Link, LinkConfig, Role, ServerConfig, Verifier};
use pptp_agent::ppp::rand::SeedableRng;
use pptp_agent::ppp::rand::rngs::StdRng;

struct Users;

impl SecretSource for Users {
    fn secret(&self, _user: &[u8]) -> Option<Secret> {
        Some(Secret::Password(b"pptp-Secret1".to_vec()))
    }
}

struct Pool;

impl AddressPool for Pool {
    fn allocate(&mut self, _user: &[u8]) -> Option<Ipv4Addr> {
        Some(Ipv4Addr::new(198, 51, 100, 10))
    }
    fn release(&mut self, _address: Ipv4Addr) {}
}

fn link(server: bool, seed: u64) -> Link {
    let methods = Policy::new(&[
        Method::MsChapV2,
        Method::MsChapV1,
        Method::ChapMd5,
        Method::Pap,
    ]);
    let role = if server {
        Role::Server(ServerConfig {
            name: b"pptpd".to_vec(),
            auth: methods,
            local_ip: Ipv4Addr::new(198, 51, 100, 1),
            dns: [Some(Ipv4Addr::new(192, 0, 2, 53)), None],
            nbns: [None, None],
            verifier: Verifier::Secrets(Box::new(Users)),
            pool: Box::new(Pool),
        })
    } else {
        Role::Client(ClientConfig {
            credentials: Credentials {
                user: b"pptpuser".to_vec(),
                password: b"pptp-Secret1".to_vec(),
            },
            auth: methods,
            request_dns: true,
        })
    };
    let mut config = LinkConfig::new(role);
    config.ipv6 = seed & 1 == 1;
    Link::new(config, Box::new(StdRng::seed_from_u64(seed)))
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, mut rest)) = input.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut l = link(which & 1 == 0, u64::from(which));
    l.open(now);
    // Records: [len, time step in seconds, frame...].
    while let [len, step, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_secs(u64::from(*step % 8));
        l.handle_timeout(now);
        let _ = l.handle_frame(now, frame);
        while l.poll_transmit().is_some() {}
        while l.poll_event().is_some() {}
        if let Some(t) = l.poll_timeout() {
            assert!(t >= now - Duration::from_secs(8));
        }
    }
    l.close(now);
    l.lower_down(now);
});
