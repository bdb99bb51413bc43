//! Rate limits and quotas on the agent's path, on the virtual clock: where a
//! session's limit comes from (the configuration's user entry, its default, RADIUS
//! over both), what it lets through each way, a CoA that changes it on a live
//! session; a Mikrotik-Total-Limit (from the Access-Accept or a CoA) that ends the
//! session, and the cause its accounting Stop carries; a reload of the
//! configuration's rates, which changes the live sessions whose limit did not come
//! from RADIUS.

use pptp_common::rate::RateLimit;

use super::*;
use crate::{
    engine::{AaaSettings, AgentCounter, RatePolicy},
    ppp::auth::Verdict,
    radius::{
        acct::{Status, TerminateCause},
        auth::Authorization,
    },
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

fn rate(s: &str) -> RateLimit {
    RateLimit::parse(s).unwrap()
}

/// A concentrator whose RADIUS accepts `password = user name` and answers with
/// `authorization`; `rates` from the configuration.
fn world(rates: RatePolicy, authorization: Option<Authorization>) -> World {
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.rates = rates;
    let radius = authorization.is_some();
    config.aaa = AaaSettings {
        radius,
        accounting: radius,
        interim: None,
    };
    let mut w = World::new(config, 8);
    if let Some(authorization) = authorization {
        w.judge = Some(Box::new(move |claim: &Claim| {
            let verdict = claim.verify(Some(Secret::Password(claim.user.clone())));
            let accepted = matches!(verdict, Verdict::Accept { .. });
            Authorized {
                verdict,
                grant: crate::ppp::link::AddressGrant::Any,
                authorization: accepted.then(|| authorization.clone()),
            }
        }));
    }
    w
}

fn up(w: &mut World, user: &str) -> (usize, SessionId) {
    let verifier = if w.judge.is_some() {
        Verifier::External
    } else {
        Verifier::Secrets(Box::new(Users(&["alice", "bob"])))
    };
    let p = w.call_in(
        Ipv4Addr::new(198, 51, 100, 10),
        client_link(user, user),
        verifier,
    );
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[p].is_up()));
    (p, w.session_of(p).unwrap())
}

/// For `secs` seconds, 1000-byte packets every 10 ms each way (800 kbit/s
/// offered); the packets that passed (from the client, to it).
fn flood(w: &mut World, p: usize, secs: u64) -> (usize, usize) {
    let from = sized(CLIENT, LAN_HOST, 1000);
    let to = sized(LAN_HOST, CLIENT, 1000);
    let received = w.peers[p].received.len();
    let mut delivered = 0;
    for _ in 0..secs * 100 {
        if matches!(w.peer_sends(p, &from), Delivery::Deliver { .. }) {
            delivered += 1;
        }
        w.kernel_sends(Device::Concentrator, &to);
        w.run(Duration::from_millis(10));
    }
    (delivered, w.peers[p].received.len() - received)
}

fn shown_rate(w: &World, id: SessionId) -> Option<String> {
    let sessions = w.engine.sessions(w.now);
    sessions.into_iter().find(|s| s.id == id).unwrap().rate
}

#[test]
fn the_users_rate_limits_each_way_and_counts_its_drops() {
    let rates = RatePolicy {
        default: rate("1M"),
        users: [("alice".to_owned(), rate("80k/160k"))].into(),
    };
    let mut w = world(rates, None);
    let (p, id) = up(&mut w, "alice");
    assert_eq!(shown_rate(&w, id).as_deref(), Some("80k/160k"));
    let (rx, tx) = flood(&mut w, p, 10);
    // 10 kB/s and 20 kB/s for 10 s, plus a full bucket (half a second) at the
    // start and the packet that finds it full.
    assert!((105..=107).contains(&rx), "from the client: {rx} packets");
    assert!((210..=212).contains(&tx), "to the client: {tx} packets");
    let info = w.engine.sessions(w.now).remove(0);
    assert_eq!(
        (info.policed_rx, info.policed_tx),
        (1000 - rx as u64, 1000 - tx as u64)
    );
    assert_eq!(
        w.engine.stats().get(AgentCounter::Policed),
        2000 - (rx + tx) as u64
    );
}

#[test]
fn the_default_applies_to_users_without_a_rate_and_zero_is_none() {
    let rates = RatePolicy {
        default: rate("80k"),
        users: [("bob".to_owned(), rate("0"))].into(),
    };
    let mut w = world(rates, None);
    let (p, id) = up(&mut w, "alice");
    assert_eq!(shown_rate(&w, id).as_deref(), Some("80k/80k"));
    let (rx, tx) = flood(&mut w, p, 2);
    assert!(rx <= 27 && tx <= 27, "{rx} {tx}");

    let mut w = world(
        RatePolicy {
            default: rate("80k"),
            users: [("bob".to_owned(), rate("0"))].into(),
        },
        None,
    );
    let (p, id) = up(&mut w, "bob");
    assert_eq!(shown_rate(&w, id), None);
    assert_eq!(flood(&mut w, p, 2), (200, 200), "bob's 0 is no limit");
}

#[test]
fn radius_rate_limit_overrides_the_configuration() {
    let rates = RatePolicy {
        default: rate("8M"),
        users: [("alice".to_owned(), rate("8M"))].into(),
    };
    let accept = Authorization {
        rate_limit: Some(rate("80k/160k")),
        ..Authorization::default()
    };
    let mut w = world(rates, Some(accept));
    let (p, id) = up(&mut w, "alice");
    assert_eq!(shown_rate(&w, id).as_deref(), Some("80k/160k"));
    let (rx, tx) = flood(&mut w, p, 5);
    assert!(
        (55..=57).contains(&rx) && (110..=112).contains(&tx),
        "{rx} {tx}"
    );
    // A reload of the configuration's rates leaves the Access-Accept's alone.
    let reloaded = RatePolicy {
        default: rate("1M"),
        users: [("alice".to_owned(), rate("1M"))].into(),
    };
    assert_eq!(w.engine.set_rate_policy(reloaded), 0);
    assert_eq!(shown_rate(&w, id).as_deref(), Some("80k/160k"));
}

#[test]
fn a_coa_changes_the_rate_of_a_live_session_at_once() {
    let accept = Authorization {
        rate_limit: Some(rate("80k")),
        ..Authorization::default()
    };
    let mut w = world(RatePolicy::default(), Some(accept));
    let (p, id) = up(&mut w, "alice");
    let (rx, tx) = flood(&mut w, p, 3);
    assert!(rx <= 37 && tx <= 37, "before: {rx} {tx}");

    let coa = Authorization {
        rate_limit: Some(rate("160k")),
        ..Authorization::default()
    };
    assert!(w.engine.reauthorize(w.now, id, &coa));
    assert_eq!(shown_rate(&w, id).as_deref(), Some("160k/160k"));
    // The first second after the CoA already runs at the new rate (20 kB/s; the
    // bucket, empty under the flood, stays empty: a CoA does not fill it).
    let (rx, tx) = flood(&mut w, p, 1);
    assert!(
        (19..=21).contains(&rx) && (19..=21).contains(&tx),
        "after: {rx} {tx}"
    );

    // A CoA without the attribute leaves the rate alone.
    let timeout_only = Authorization {
        idle_timeout: Some(Duration::from_secs(3600)),
        ..Authorization::default()
    };
    assert!(w.engine.reauthorize(w.now, id, &timeout_only));
    assert_eq!(shown_rate(&w, id).as_deref(), Some("160k/160k"));
}

fn stop_of(w: &World, id: SessionId) -> Option<&crate::radius::acct::Record> {
    w.records
        .iter()
        .find(|(s, r)| *s == id && r.status == Status::Stop)
        .map(|(_, r)| r)
}

#[test]
fn a_total_limit_ends_the_session_as_its_session_timeout() {
    let accept = Authorization {
        total_limit: Some(50_000),
        ..Authorization::default()
    };
    let mut w = world(RatePolicy::default(), Some(accept));
    let (p, id) = up(&mut w, "alice");
    let start = w.now;
    // 2000 octets every 10 ms: the quota is used after 250 ms, checked each second.
    flood(&mut w, p, 3);
    let stop = stop_of(&w, id).expect("the quota ended the session");
    assert_eq!(stop.cause, Some(TerminateCause::SessionTimeout));
    let octets = stop.counters.input_octets + stop.counters.output_octets;
    assert!(
        (50_000..=50_000 + 2000 * 100).contains(&octets),
        "ended within a second of the quota: {octets} octets"
    );
    assert!(
        stop.session_time <= Duration::from_secs(2),
        "{:?}",
        stop.session_time
    );
    assert!(w.peers[p].cleared);
    assert!(w.now - start >= Duration::from_secs(1));
}

#[test]
fn a_coa_quota_below_what_was_used_ends_the_session_at_once() {
    let mut w = world(RatePolicy::default(), Some(Authorization::default()));
    let (p, id) = up(&mut w, "alice");
    flood(&mut w, p, 1);
    assert!(stop_of(&w, id).is_none(), "no quota yet");
    let coa = Authorization {
        total_limit: Some(1000),
        ..Authorization::default()
    };
    assert!(w.engine.reauthorize(w.now, id, &coa));
    let at = w.now;
    assert!(w.run_until(Duration::from_secs(10), |w| w.sessions() == 0));
    assert!(w.now - at < Duration::from_secs(4), "{:?}", w.now - at);
    assert_eq!(
        stop_of(&w, id).and_then(|r| r.cause),
        Some(TerminateCause::SessionTimeout)
    );
}

#[test]
fn a_reload_changes_the_configured_rates_of_live_sessions_but_not_radius_ones() {
    let rates = RatePolicy {
        default: rate("80k"),
        users: [("alice".to_owned(), rate("80k"))].into(),
    };
    // RADIUS accepts everyone, without a Mikrotik-Rate-Limit.
    let mut w = world(rates, Some(Authorization::default()));
    let (p, alice) = up(&mut w, "alice");
    let (_, bob) = up(&mut w, "bob");
    let (_, carol) = up(&mut w, "carol");
    let coa = Authorization {
        rate_limit: Some(rate("800k")),
        ..Authorization::default()
    };
    assert!(w.engine.reauthorize(w.now, carol, &coa));
    let (rx, tx) = flood(&mut w, p, 3);
    assert!(rx <= 37 && tx <= 37, "before: {rx} {tx}");

    let reloaded = RatePolicy {
        default: rate("40k"),
        users: [("alice".to_owned(), rate("160k"))].into(),
    };
    assert_eq!(w.engine.set_rate_policy(reloaded), 2, "alice and bob");
    assert_eq!(shown_rate(&w, alice).as_deref(), Some("160k/160k"));
    assert_eq!(shown_rate(&w, bob).as_deref(), Some("40k/40k"));
    assert_eq!(
        shown_rate(&w, carol).as_deref(),
        Some("800k/800k"),
        "the CoA's rate stays"
    );
    // At once: the first second after the reload runs at 20 kB/s.
    let (rx, tx) = flood(&mut w, p, 1);
    assert!(
        (19..=21).contains(&rx) && (19..=21).contains(&tx),
        "after: {rx} {tx}"
    );
    // A new session takes the new default.
    let (_, dave) = up(&mut w, "dave");
    assert_eq!(shown_rate(&w, dave).as_deref(), Some("40k/40k"));
}
