//! Demand-dial interfaces: a packet dials and waits for the link, two calls for one
//! interface settle on one, and a router that calls again takes its networks over
//! from its stale call.

use ipnet::Ipv4Net;

use super::*;
use crate::{
    demand::{DemandConfig, DemandDial, Mode as DialMode, State},
    engine::RouterConfig,
};

/// New York, the peer router: its outer address is above ours, so its calls win
/// a collision (`demand::keep_new_call`).
const NEW_YORK: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);
/// A host behind New York.
const NY_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 130);
/// Seattle's own host sending through the link.
const SEATTLE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

fn new_york_routes() -> Vec<Ipv4Net> {
    vec!["203.0.113.128/25".parse().unwrap()]
}

/// Seattle: one on-demand interface "newyork" (it dials as "seattle"; New York
/// calls it as "newyork").
fn seattle() -> World {
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.dialing = true;
    let start = Instant::now();
    config.routers = vec![RouterConfig {
        name: "newyork".into(),
        device: "ny0".into(),
        routes: new_york_routes(),
        demand: DemandDial::new(
            DemandConfig {
                mode: DialMode::OnDemand,
                idle_timeout: Some(Duration::from_secs(30)),
                ..DemandConfig::default()
            },
            start,
        ),
    }];
    World::new(config, 8)
}

fn interface_state(w: &World) -> State {
    w.engine.interfaces()[0].state
}

#[test]
fn a_packet_for_the_interface_dials_and_waits_for_the_link() {
    let mut w = seattle();
    let packet = ipv4(SEATTLE_HOST, NY_HOST);
    w.kernel_sends(Device::Router(0), &packet);
    while w.step() {}
    assert_eq!(w.dials, [(0, 1)], "one call placed");
    assert_eq!(interface_state(&w), State::Dialing);
    assert_eq!(w.engine.interfaces()[0].queued_packets, 1);
    let ny = w.dial_out(NEW_YORK, 0, client_link("seattle", "seattle"), &["seattle"]);
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[ny].is_up()));
    assert_eq!(interface_state(&w), State::Up);
    assert_eq!(
        w.peers[ny].received,
        [packet],
        "the packet that dialed went out"
    );
    // Idle for 30 s: hung up, and the interface is idle again.
    assert!(w.run_until(Duration::from_secs(60), |w| w.sessions() == 0));
    assert_eq!(interface_state(&w), State::Idle);
    assert_eq!(w.engine.interfaces()[0].stats.idle_hangups, 1);
}

#[test]
fn two_calls_for_one_interface_settle_on_one() {
    let mut w = seattle();
    let waiting = ipv4(SEATTLE_HOST, Ipv4Addr::new(203, 0, 113, 131));
    w.kernel_sends(Device::Router(0), &waiting);
    while w.step() {}
    // Both routers dial at once: ours to New York, New York's to us.
    let ours = w.dial_out(NEW_YORK, 0, client_link("seattle", "seattle"), &["seattle"]);
    let theirs = w.call_in(
        NEW_YORK,
        client_link("newyork", "newyork"),
        Verifier::Secrets(Box::new(Users(&["newyork"]))),
    );
    w.run(Duration::from_secs(10));
    // The higher outer address (New York's) places the call both keep.
    assert!(w.peers[ours].cleared, "our call lost");
    assert!(w.peers[theirs].is_up() && !w.peers[theirs].cleared);
    let bound = w.engine.interfaces()[0].session;
    assert_eq!(bound, w.session_of(theirs));
    assert_eq!(w.sessions(), 1);
    // What waited for the link, and what follows, go on the call that won.
    let packet = ipv4(SEATTLE_HOST, NY_HOST);
    w.kernel_sends(Device::Router(0), &packet);
    assert_eq!(w.peers[theirs].received, [waiting, packet]);
    assert!(w.peers[ours].received.is_empty());
}

#[test]
fn a_router_that_calls_again_takes_its_networks_over() {
    // Seattle answers New York ("answer" interfaces are user routes).
    let mut config = EngineConfig::new(Mode::Concentrator);
    config.user_routes = [("newyork".to_owned(), new_york_routes())].into();
    let mut w = World::new(config, 8);
    let verifier = || Verifier::Secrets(Box::new(Users(&["newyork"])));
    let stale = w.call_in(NEW_YORK, client_link("newyork", "newyork"), verifier());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[stale].is_up()));
    let routes = |w: &World| w.kernel.lock().unwrap().routes.clone();
    assert!(routes(&w).contains(&("Concentrator".into(), new_york_routes()[0])));
    // New York restarted: its old call is silent, its new one comes up.
    w.peers[stale].silent = true;
    let again = w.call_in(NEW_YORK, client_link("newyork", "newyork"), verifier());
    assert!(w.run_until(Duration::from_secs(10), |w| w.peers[again].is_up()));
    w.run(Duration::from_secs(10));
    assert!(w.peers[stale].cleared, "the stale call was hung up");
    assert_eq!(w.sessions(), 1);
    assert!(routes(&w).contains(&("Concentrator".into(), new_york_routes()[0])));
    // Packets for New York's networks go to the new call.
    let packet = ipv4(SEATTLE_HOST, NY_HOST);
    w.kernel_sends(Device::Concentrator, &packet);
    assert_eq!(w.peers[again].received, [packet]);
}
