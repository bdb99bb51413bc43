//! The lab: reachability as designed, and teardown that leaves nothing behind, also
//! after a panic and after the owning process died. Needs root.

use std::net::SocketAddrV4;

use pptp_tests::{
    capture::{self, Capture},
    lab::{self, Lab, LabSpec, addr},
    netns,
    traffic::{self, EchoServer},
};

fn namespaces_of(id: &str) -> Vec<String> {
    netns::list()
        .into_iter()
        .filter(|ns| ns.starts_with(&format!("{id}-")))
        .collect()
}

#[test]
fn clients_reach_the_concentrator_and_it_reaches_the_lan() {
    let lab = Lab::up(&LabSpec { clients: 2 }).unwrap();
    assert_eq!(namespaces_of(lab.id()).len(), 5);
    let wan = EchoServer::start(
        &lab.concentrator_ns(),
        SocketAddrV4::new(addr::CONC_WAN, 9000),
    )
    .unwrap();
    for i in 0..2 {
        let sent = traffic::tcp_exchange(&lab.client_ns(i), wan.address(), 1000).unwrap();
        assert_eq!(sent.payload, 1000);
    }
    let lan = EchoServer::start(&lab.lan_ns(), SocketAddrV4::new(addr::LAN_HOST, 9000)).unwrap();
    traffic::tcp_exchange(&lab.concentrator_ns(), lan.address(), 1000).unwrap();
    // No tunnel yet: a client has no route to the LAN.
    assert!(traffic::tcp_exchange(&lab.client_ns(0), lan.address(), 10).is_err());
    drop((wan, lan));
    let id = lab.id().to_owned();
    lab.down().unwrap();
    assert!(namespaces_of(&id).is_empty());
}

#[test]
fn a_panicking_test_still_tears_its_lab_down() {
    let id = std::panic::catch_unwind(|| {
        let mut lab = Lab::up(&LabSpec::default()).unwrap();
        lab.bpffs().unwrap();
        let id = lab.id().to_owned();
        std::panic::panic_any(id);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    assert!(
        namespaces_of(&id).is_empty(),
        "namespaces left: {:?}",
        namespaces_of(&id)
    );
    assert!(!std::path::Path::new(lab::RUN_ROOT).join(&*id).exists());
}

#[test]
fn labs_of_dead_processes_are_removed_as_stale() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    let id = format!("pxl{dead_pid}x0");
    netns::ip(&["netns", "add", &format!("{id}-conc")]).unwrap();
    let removed = lab::down_stale().unwrap();
    assert!(removed.contains(&id), "{removed:?}");
    assert!(namespaces_of(&id).is_empty());
}

/// A capture of the WAN bridge holds every frame sent before it is finished: it
/// ends on its own marker frame, not after a guessed delay. Needs root and dumpcap.
#[test]
fn a_capture_holds_everything_sent_before_its_end_marker() {
    let mut lab = Lab::up(&LabSpec { clients: 1 }).unwrap();
    let file = std::env::temp_dir().join(format!("{}-capture.pcapng", lab.id()));
    let wan = lab.wan_ns();
    let capture = Capture::start(&mut lab, &wan, "br0", &file).unwrap();
    let mut ping = std::process::Command::new("ping");
    ping.args(["-c", "20", "-i", "0.01", "-w", "10"])
        .arg(addr::CONC_WAN.to_string());
    let out = netns::run_in_ns(&lab.client_ns(0), &mut ping).unwrap();
    assert!(out.status.success(), "{out:?}");
    let file = capture.finish(&mut lab).unwrap();
    let requests = capture::matching(&file, "icmp.type == 8").unwrap().len();
    let replies = capture::matching(&file, "icmp.type == 0").unwrap().len();
    let markers = capture::matching(
        &file,
        &format!("eth.type == {:#06x}", capture::MARKER_ETHERTYPE),
    )
    .unwrap()
    .len();
    assert_eq!(
        (requests, replies, markers),
        (20, 20, 1),
        "every echo and the marker in {}",
        file.display()
    );
    let _ = std::fs::remove_file(&file);
}
