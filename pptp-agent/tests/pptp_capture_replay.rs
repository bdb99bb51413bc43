//! Replays the real pptp-linux <-> pptpd sessions of `tests/vectors/captures` through
//! our codecs and machines:
//! - every control message is cut from the TCP streams by our deframer, parsed, and
//!   re-encoded byte-identical;
//! - every GRE packet is parsed and re-encoded byte-identical, and its sequence numbers
//!   pass our receive window (a real, loss-free session drops nothing);
//! - our server (as PAC) answers pptp-linux's control stream the way pptpd did, and our
//!   client (as PNS) accepts pptpd's replies.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;
use pptp_agent::gre::{GreHeader, SeqVerdict, Sequencer};
use pptp_agent::pptp::call::{CallState, OutgoingCallParams};
use pptp_agent::pptp::call_id::CallIdPool;
use pptp_agent::pptp::control::{ControlConfig, ControlConnection, Event, Roles};
use pptp_agent::pptp::framing::{Deframer, Frame};
use pptp_agent::pptp::message::{Message, MessageType, OutgoingResult, StartResult};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);

/// (file, the client's Call ID) from the captures' README.
const CAPTURES: &[(&str, u16)] = &[
    ("mschapv2-mppe128.pcap", 6939),
    ("mschapv2-mppe40.pcap", 48622),
    ("mschap-mppe128.pcap", 12896),
    ("chap-nomppe.pcap", 34987),
    ("pap-nomppe.pcap", 61524),
];

/// What one capture holds, split by direction.
#[derive(Default)]
struct Capture {
    /// The TCP 1723 payload from the client, then from the server, in order.
    control: BTreeMap<Ipv4Addr, Vec<u8>>,
    /// GRE packets (IP payloads) by source address.
    gre: BTreeMap<Ipv4Addr, Vec<Vec<u8>>>,
}

fn load(name: &str) -> Capture {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "vectors",
        "captures",
        name,
    ]
    .iter()
    .collect();
    let mut reader = PcapReader::new(File::open(&path).expect("capture file")).unwrap();
    let mut cap = Capture::default();
    let mut next_seq: BTreeMap<Ipv4Addr, u32> = BTreeMap::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let Ok(sliced) = SlicedPacket::from_ethernet(&pkt.data) else {
            continue;
        };
        let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
            continue;
        };
        let src = ip.header().source_addr();
        match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) if tcp.payload().is_empty() => {}
            Some(TransportSlice::Tcp(tcp)) => {
                assert!(tcp.source_port() == 1723 || tcp.destination_port() == 1723);
                // Keep each byte once, in stream order (no retransmissions expected).
                let seq = tcp.sequence_number();
                let expected = *next_seq.entry(src).or_insert(seq);
                assert_eq!(seq, expected, "{name}: out-of-order TCP segment");
                next_seq.insert(src, seq.wrapping_add(tcp.payload().len() as u32));
                cap.control
                    .entry(src)
                    .or_default()
                    .extend_from_slice(tcp.payload());
            }
            _ if ip.payload().ip_number.0 == 47 => {
                cap.gre
                    .entry(src)
                    .or_default()
                    .push(ip.payload().payload.to_vec());
            }
            _ => {}
        }
    }
    cap
}

fn deframe_all(stream: &[u8]) -> Vec<(Message, Vec<u8>)> {
    let mut d = Deframer::new();
    d.push(stream);
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(frame) = d.next_frame().expect("capture stream frames cleanly") {
        let Frame::Message(m) = frame else {
            panic!("invalid message in a real capture: {frame:?}")
        };
        let raw = stream[offset..offset + m.wire_len()].to_vec();
        offset += m.wire_len();
        out.push((m, raw));
    }
    assert_eq!(d.pending(), 0);
    out
}

#[test]
fn control_messages_reencode_byte_identical() {
    let mut total = 0;
    for &(name, client_call_id) in CAPTURES {
        let cap = load(name);
        let client = deframe_all(&cap.control[&CLIENT]);
        let server = deframe_all(&cap.control[&SERVER]);
        for (m, raw) in client.iter().chain(&server) {
            assert_eq!(&m.to_bytes(), raw, "{name}: {m:?}");
            assert_eq!(Message::parse(raw).as_ref(), Ok(m));
        }
        let kinds = |v: &[(Message, Vec<u8>)]| -> Vec<MessageType> {
            v.iter().map(|(m, _)| m.message_type()).collect()
        };
        assert_eq!(
            kinds(&client),
            [
                MessageType::StartControlConnectionRequest,
                MessageType::OutgoingCallRequest,
                MessageType::CallClearRequest
            ],
            "{name}"
        );
        assert_eq!(
            kinds(&server),
            [
                MessageType::StartControlConnectionReply,
                MessageType::OutgoingCallReply
            ],
            "{name}"
        );
        match (&client[1].0, &server[1].0) {
            (Message::OutgoingCallRequest(rq), Message::OutgoingCallReply(rp)) => {
                assert_eq!(rq.call_id, client_call_id, "{name}");
                assert_eq!(rp.peer_call_id, client_call_id, "{name}");
                assert_eq!(rp.call_id, 0, "{name}: pptpd always uses Call ID 0");
                assert_eq!(rp.result, OutgoingResult::Connected);
                assert_eq!(
                    rp.packet_recv_window_size, rq.packet_recv_window_size,
                    "pptpd echoes the window"
                );
            }
            other => panic!("{other:?}"),
        }
        total += client.len() + server.len();
    }
    assert_eq!(total, 25);
}

#[test]
fn gre_packets_reencode_and_pass_the_receive_window() {
    let mut packets = 0;
    for &(name, client_call_id) in CAPTURES {
        let cap = load(name);
        for (src, expected_key) in [(CLIENT, 0u16), (SERVER, client_call_id)] {
            let mut window = Sequencer::default();
            let list = &cap.gre[&src];
            assert!(list.len() > 10, "{name}: {} GRE packets", list.len());
            for raw in list {
                let (h, payload) = GreHeader::parse(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(h.call_id, expected_key, "{name}");
                let mut again = Vec::new();
                h.emit(&mut again);
                again.extend_from_slice(payload);
                assert_eq!(&again, raw, "{name}");
                if let Some(v) = window.on_header(&h) {
                    assert_eq!(v, SeqVerdict::Accept { lost: 0 }, "{name}: {h:?}");
                }
                packets += 1;
            }
        }
    }
    assert!(packets > 200, "{packets}");
}

#[test]
fn our_server_answers_pptp_linux_like_pptpd() {
    for &(name, client_call_id) in CAPTURES {
        let cap = load(name);
        let now = Instant::now();
        let mut server = ControlConnection::answer(ControlConfig::default(), now);
        let client_stream = &cap.control[&CLIENT];
        // Feed the client's stream in awkward pieces, answering calls as they come.
        let mut replies = Vec::new();
        let mut events = Vec::new();
        for chunk in client_stream.chunks(7) {
            server.handle_input(chunk, now);
            while let Some(e) = server.poll_event() {
                if let Event::CallRequested { local_call_id, .. } = e {
                    server.accept_call(local_call_id, now).unwrap();
                }
                events.push(e);
            }
            while let Some(b) = server.poll_transmit() {
                replies.push(Message::parse(&b).unwrap());
            }
        }
        server.handle_eof();
        while let Some(e) = server.poll_event() {
            events.push(e);
        }
        while let Some(b) = server.poll_transmit() {
            replies.push(Message::parse(&b).unwrap());
        }
        match &replies[..] {
            [
                Message::StartControlConnectionReply(sccrp),
                Message::OutgoingCallReply(ocrp),
                Message::CallDisconnectNotify(cdn),
            ] => {
                assert_eq!(sccrp.result, StartResult::Success);
                assert_eq!(ocrp.result, OutgoingResult::Connected);
                assert_eq!(ocrp.peer_call_id, client_call_id);
                assert_eq!(cdn.call_id, ocrp.call_id);
            }
            other => panic!("{name}: {other:?}"),
        }
        let names: Vec<&str> = events
            .iter()
            .map(|e| match e {
                Event::Established(_) => "established",
                Event::CallRequested { .. } => "requested",
                Event::CallUp(_) => "up",
                Event::CallDown { .. } => "down",
                Event::Closed(_) => "closed",
                _ => "other",
            })
            .collect();
        assert_eq!(
            names,
            ["established", "requested", "up", "down", "closed"],
            "{name}"
        );
        match &events[0] {
            Event::Established(peer) => {
                assert_eq!(peer.host_name, "local");
                assert_eq!(peer.vendor_name, "cananian");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn our_client_accepts_pptpd_replies() {
    for &(name, client_call_id) in CAPTURES {
        let cap = load(name);
        let now = Instant::now();
        let config = ControlConfig {
            roles: Roles::Pns,
            ..ControlConfig::default()
        };
        // Allocate the Call ID pptp-linux used, so pptpd's replies name our call.
        let pool = TheCallId(client_call_id);
        let mut client = ControlConnection::originate_with_pool(config, pool, now);
        let server = deframe_all(&cap.control[&SERVER]);
        client.handle_input(&server[0].1, now);
        assert!(client.is_established(), "{name}");
        let id = client
            .place_outgoing_call(&OutgoingCallParams::default(), now)
            .unwrap();
        assert_eq!(id, client_call_id);
        client.handle_input(&server[1].1, now);
        assert_eq!(client.call_state(id), Some(CallState::Established));
        let info = client.call(id).unwrap();
        assert_eq!(info.peer_call_id, Some(0));
        assert_eq!(info.connect_speed, 10_000_000);
        assert_eq!(client.peer().unwrap().vendor_name, "linux");
    }
}

/// A Call ID pool that hands out one given ID (the one a capture's client used).
struct TheCallId(u16);

impl CallIdPool for TheCallId {
    fn allocate(&mut self) -> Option<u16> {
        Some(self.0)
    }

    fn release(&mut self, _id: u16) {}
}
