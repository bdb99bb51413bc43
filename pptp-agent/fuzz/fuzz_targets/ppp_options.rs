//! Every option parser: LCP, CCP, IPCP and IPV6CP negotiators judge, and take as
//! Ack/Nak/Reject, arbitrary option lists. The first byte picks the negotiator.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pptp_agent::mppe::KeyStrength;
use pptp_agent::ppp::auth::{Method, Policy};
use pptp_agent::ppp::ccp::{Ccp, MppeMode, MppePolicy};
use pptp_agent::ppp::fsm::Negotiator;
use pptp_agent::ppp::ipcp::{Ipcp, IpcpConfig};
use pptp_agent::ppp::ipv6cp::Ipv6cp;
use pptp_agent::ppp::lcp::{AuthRole, Lcp, LcpConfig};
use pptp_agent::ppp::packet;
use pptp_agent::ppp::rand::SeedableRng;
use pptp_agent::ppp::rand::rngs::StdRng;

fn exercise(n: &mut dyn Negotiator, data: &[u8]) {
    let Ok(opts) = packet::parse_options(data) else {
        return;
    };
    n.judge(&opts);
    n.nakked(&opts);
    n.request();
    n.rejected(&opts);
    n.acked(&opts);
    n.request();
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, data)) = input.split_first() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(u64::from(which));
    let all = [
        KeyStrength::Bits40,
        KeyStrength::Bits56,
        KeyStrength::Bits128,
    ];
    let methods = Policy::new(&[Method::MsChapV2, Method::Pap]);
    match which % 6 {
        0 | 1 => {
            let auth = if which % 6 == 0 {
                AuthRole::Authenticator(methods)
            } else {
                AuthRole::Peer(methods)
            };
            let mut lcp = Lcp::new(
                LcpConfig {
                    mru: 1400,
                    pfc: true,
                    acfc: true,
                    auth,
                },
                &mut rng,
            );
            exercise(&mut lcp, data);
        }
        2 | 3 => {
            let mode = if which % 6 == 2 {
                MppeMode::Require
            } else {
                MppeMode::Prefer
            };
            let policy = MppePolicy {
                mode,
                strengths: all.to_vec(),
                allow_stateful: which & 0x80 != 0,
                request_stateful: which & 0x40 != 0,
            };
            exercise(&mut Ccp::new(policy, &all), data);
        }
        4 => {
            let server = IpcpConfig {
                local: Some([198, 51, 100, 1].into()),
                peer: Some([198, 51, 100, 10].into()),
                dns: [Some([192, 0, 2, 53].into()), None],
                ..IpcpConfig::default()
            };
            let config = if which & 0x80 != 0 {
                server
            } else {
                IpcpConfig {
                    request_dns: true,
                    ..IpcpConfig::default()
                }
            };
            let mut ipcp = Ipcp::new(config);
            exercise(&mut ipcp, data);
            let _ = ipcp.result();
        }
        _ => {
            let mut v6 = Ipv6cp::new(&mut rng);
            exercise(&mut v6, data);
            let _ = v6.identifiers();
        }
    }
});
