//! A second, independent reader for what we put on the wire: our control machines
//! run sessions in memory (all fifteen control messages, both roles, refusals and
//! error codes), our GRE sequencer frames PPP packets (data, piggybacked acks,
//! ack-only), everything is written to a pcap as Ethernet/IPv4/TCP and IPv4/GRE, and
//! tshark must dissect every frame as PPTP or enhanced GRE with no malformed packet and
//! no expert error, and read back the fields we wrote.
//!
//! The test fails (it does not skip) when tshark is missing.

mod support;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::tshark::tshark;

use etherparse::{IpNumber, PacketBuilder};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use pptp_agent::gre::Sequencer;
use pptp_agent::pptp::call::{IncomingCallParams, LinkAccm, OutgoingCallParams};
use pptp_agent::pptp::control::{ControlConfig, ControlConnection, Event, Roles};
use pptp_agent::pptp::message::{
    GeneralError, Message, MessageType, Reserved16, StopReason, WanErrorNotify,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 2, 0x20];
const SERVER_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 2, 0x10];

/// Frames of one synthetic capture.
struct Capture {
    frames: Vec<Vec<u8>>,
}

/// One TCP connection's sequence numbers, per direction.
struct Tcp {
    client_port: u16,
    client_seq: u32,
    server_seq: u32,
}

impl Capture {
    fn frame(&mut self, from_client: bool, build: impl FnOnce(PacketBuilderArgs) -> Vec<u8>) {
        let args = if from_client {
            (CLIENT_MAC, SERVER_MAC, CLIENT, SERVER)
        } else {
            (SERVER_MAC, CLIENT_MAC, SERVER, CLIENT)
        };
        self.frames.push(build(args));
    }

    fn tcp_open(&mut self, client_port: u16) -> Tcp {
        let mut t = Tcp {
            client_port,
            client_seq: 1000,
            server_seq: 5000,
        };
        self.tcp_segment(&mut t, true, &[], Flags::Syn);
        self.tcp_segment(&mut t, false, &[], Flags::SynAck);
        self.tcp_segment(&mut t, true, &[], Flags::Ack);
        t
    }

    fn tcp_segment(&mut self, t: &mut Tcp, from_client: bool, payload: &[u8], flags: Flags) {
        let (sport, dport, seq, ack) = if from_client {
            (t.client_port, 1723, t.client_seq, t.server_seq)
        } else {
            (1723, t.client_port, t.server_seq, t.client_seq)
        };
        self.frame(from_client, |(smac, dmac, src, dst)| {
            let b = PacketBuilder::ethernet2(smac, dmac)
                .ipv4(src.octets(), dst.octets(), 64)
                .tcp(sport, dport, seq, 64240);
            let b = match flags {
                Flags::Syn => b.syn(),
                Flags::SynAck => b.syn().ack(ack),
                Flags::Ack => b.ack(ack),
                Flags::Data => b.ack(ack).psh(),
            };
            let mut out = Vec::new();
            b.write(&mut out, payload).unwrap();
            out
        });
        let advance = payload.len() as u32 + u32::from(matches!(flags, Flags::Syn | Flags::SynAck));
        if from_client {
            t.client_seq = t.client_seq.wrapping_add(advance);
        } else {
            t.server_seq = t.server_seq.wrapping_add(advance);
        }
    }

    fn gre(&mut self, from_client: bool, packet: &[u8]) {
        self.frame(from_client, |(smac, dmac, src, dst)| {
            let mut out = Vec::new();
            PacketBuilder::ethernet2(smac, dmac)
                .ipv4(src.octets(), dst.octets(), 64)
                .write(&mut out, IpNumber(47), packet)
                .unwrap();
            out
        });
    }

    fn write(&self, path: &PathBuf) {
        let mut w = PcapWriter::new(File::create(path).unwrap()).unwrap();
        for (i, f) in self.frames.iter().enumerate() {
            let ts = Duration::from_millis(1_700_000_000_000 + i as u64);
            w.write_packet(&PcapPacket::new(ts, f.len() as u32, f))
                .unwrap();
        }
    }
}

type PacketBuilderArgs = ([u8; 6], [u8; 6], Ipv4Addr, Ipv4Addr);

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Data,
}

/// Runs a client/server pair over one TCP connection of the capture, recording every
/// message each side sends. `script` acts on the pair once the handshake is done.
struct Session {
    client: ControlConnection,
    server: ControlConnection,
    tcp: Tcp,
    now: Instant,
    sent: Vec<(bool, MessageType)>,
    server_events: Vec<Event>,
}

impl Session {
    fn open(cap: &mut Capture, port: u16, client: ControlConfig) -> Self {
        let now = Instant::now();
        let mut s = Self {
            client: ControlConnection::originate(client, now),
            server: ControlConnection::answer(ControlConfig::default(), now),
            tcp: cap.tcp_open(port),
            now,
            sent: Vec::new(),
            server_events: Vec::new(),
        };
        s.pump(cap);
        s
    }

    /// Moves messages both ways, each in its own TCP segment, until both are quiet.
    /// Requests reaching the server are accepted unless `refuse` says otherwise.
    fn pump(&mut self, cap: &mut Capture) {
        loop {
            let mut moved = false;
            while let Some(b) = self.client.poll_transmit() {
                self.sent
                    .push((true, Message::parse(&b).unwrap().message_type()));
                cap.tcp_segment(&mut self.tcp, true, &b, Flags::Data);
                self.server.handle_input(&b, self.now);
                moved = true;
            }
            while let Some(b) = self.server.poll_transmit() {
                self.sent
                    .push((false, Message::parse(&b).unwrap().message_type()));
                cap.tcp_segment(&mut self.tcp, false, &b, Flags::Data);
                self.client.handle_input(&b, self.now);
                moved = true;
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            while self.client.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
    }

    fn requested(&self) -> u16 {
        self.server_events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::CallRequested { local_call_id, .. } => Some(*local_call_id),
                _ => None,
            })
            .unwrap()
    }
}

#[test]
fn tshark_dissects_our_control_messages_and_gre_cleanly() {
    let mut cap = Capture { frames: Vec::new() };
    let mut expected: Vec<(bool, MessageType)> = Vec::new();

    // Connection 1: a voluntary client (PNS) and our concentrator (PAC).
    let pns = ControlConfig {
        roles: Roles::Pns,
        host_name: "client.example".into(),
        vendor_name: "pptp-xdp test".into(),
        ..ControlConfig::default()
    };
    let mut s = Session::open(&mut cap, 40000, pns);
    // A refused call (General Error / No-Resource), then one that comes up.
    let params = OutgoingCallParams {
        phone_number: "198.51.100.1".into(),
        ..OutgoingCallParams::default()
    };
    s.client.place_outgoing_call(&params, s.now).unwrap();
    s.pump(&mut cap);
    let id = s.requested();
    s.server.refuse_call(id, GeneralError::NoResource).unwrap();
    s.pump(&mut cap);
    let client_call = s.client.place_outgoing_call(&params, s.now).unwrap();
    s.pump(&mut cap);
    let server_call = s.requested();
    s.server.accept_call(server_call, s.now).unwrap();
    s.pump(&mut cap);
    s.client
        .set_link_info(
            client_call,
            LinkAccm {
                send_accm: 0xffff_ffff,
                receive_accm: 0xffff_ffff,
            },
        )
        .unwrap();
    s.server
        .notify_wan_error(
            server_call,
            WanErrorNotify {
                peer_call_id: 0,
                reserved1: Reserved16,
                crc_errors: 1,
                framing_errors: 2,
                hardware_overruns: 3,
                buffer_overruns: 4,
                timeout_errors: 5,
                alignment_errors: 6,
            },
        )
        .unwrap();
    s.pump(&mut cap);

    // GRE both ways, LCP Echo-Requests as the PPP payload.
    let lcp_echo = |id: u8| -> Vec<u8> {
        vec![
            0xff, 0x03, 0xc0, 0x21, 0x09, id, 0x00, 0x08, 0x12, 0x34, 0x56, 0x78,
        ]
    };
    let mut client_seq = Sequencer::new(0);
    let mut server_seq = Sequencer::new(0);
    let mut gre_expected = Vec::new();
    for i in 0..3u8 {
        let h = client_seq.data_header(server_call, 12);
        cap.gre(true, &h.encapsulate(&lcp_echo(i)).unwrap());
        gre_expected.push((server_call, h.seq, h.ack));
        server_seq.on_header(&h);
        let h = server_seq.data_header(client_call, 12);
        cap.gre(false, &h.encapsulate(&lcp_echo(i)).unwrap());
        gre_expected.push((client_call, h.seq, h.ack));
        client_seq.on_header(&h);
    }
    let h = client_seq.ack_only_header(server_call).unwrap();
    cap.gre(true, &h.encapsulate(&[]).unwrap());
    gre_expected.push((server_call, h.seq, h.ack));

    // Keepalive: the client's idle timer fires.
    s.now += Duration::from_secs(60);
    s.client.handle_timeout(s.now);
    s.pump(&mut cap);
    // The client hangs up, then the server stops the connection.
    s.client.clear_call(client_call, s.now).unwrap();
    s.pump(&mut cap);
    s.server.stop(StopReason::StopLocalShutdown, s.now);
    s.pump(&mut cap);
    expected.extend(&s.sent);

    // Connection 2: an ISP's access switch (PAC) places an incoming call on us (PNS).
    let pac = ControlConfig {
        roles: Roles::Pac,
        ..ControlConfig::default()
    };
    let mut s = Session::open(&mut cap, 40001, pac);
    let incoming = IncomingCallParams {
        dialed_number: "5550100".into(),
        dialing_number: "5550199".into(),
        ..IncomingCallParams::default()
    };
    s.client.place_incoming_call(&incoming, s.now).unwrap();
    s.pump(&mut cap);
    let pns_call = s.requested();
    s.server.accept_call(pns_call, s.now).unwrap();
    s.pump(&mut cap);
    s.server.clear_call(pns_call, s.now).unwrap();
    s.pump(&mut cap);
    s.client.stop(StopReason::None, s.now);
    s.pump(&mut cap);
    expected.extend(&s.sent);

    // Every control message type was produced.
    for t in MessageType::ALL {
        assert!(
            expected.iter().any(|(_, k)| k == t),
            "session never sent {t}"
        );
    }

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pptp_tshark_our_output.pcap");
    cap.write(&path);
    let file = path.to_str().unwrap();

    // 1. No malformed packet and no expert info of severity warning (0x600000) or
    //    error (0x800000): our TCP numbering is tidy, so not even TCP analysis warns.
    let bad = tshark(&[
        "-r",
        file,
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 0x600000",
    ]);
    assert!(bad.trim().is_empty(), "tshark reports problems:\n{bad}");
    // The filter does catch problems: a truncated GRE header is reported.
    let mut broken = Capture { frames: Vec::new() };
    broken.gre(true, &[0x30, 0x01, 0x88, 0x0b, 0x00, 0x00]);
    let broken_path = path.with_file_name("pptp_tshark_negative_control.pcap");
    broken.write(&broken_path);
    let caught = tshark(&[
        "-r",
        broken_path.to_str().unwrap(),
        "-Y",
        "_ws.malformed || _ws.expert.severity >= 0x600000",
    ]);
    assert_eq!(caught.lines().count(), 1, "negative control not caught");
    let frames = tshark(&["-r", file]);
    assert_eq!(frames.lines().count(), cap.frames.len());

    // 2. tshark reads back the control message types we sent, in order and direction.
    let fields = tshark(&[
        "-r",
        file,
        "-Y",
        "pptp",
        "-T",
        "fields",
        "-e",
        "ip.src",
        "-e",
        "pptp.control_message_type",
    ]);
    let dissected: Vec<(bool, u16)> = fields
        .lines()
        .map(|l| {
            let (src, t) = l.split_once('\t').unwrap();
            (src == CLIENT.to_string(), t.parse().unwrap())
        })
        .collect();
    let sent: Vec<(bool, u16)> = expected.iter().map(|&(c, t)| (c, t as u16)).collect();
    assert_eq!(dissected, sent);

    // 3. The fields we care about most come back as written.
    let ocrp = tshark(&[
        "-r",
        file,
        "-Y",
        "pptp.control_message_type == 8",
        "-T",
        "fields",
        "-e",
        "pptp.out_result",
        "-e",
        "pptp.error",
    ]);
    assert_eq!(ocrp, "2\t4\n1\t0\n", "refused then connected");
    let icrq = tshark(&[
        "-r",
        file,
        "-Y",
        "pptp.control_message_type == 9",
        "-T",
        "fields",
        "-e",
        "pptp.dialed_number",
        "-e",
        "pptp.dialing_number",
    ]);
    assert_eq!(icrq, "5550100\t5550199\n");

    // 4. GRE: version 1, PPP, our keys, sequence and ack numbers, LCP inside.
    let gre = tshark(&[
        "-r",
        file,
        "-Y",
        "gre",
        "-T",
        "fields",
        "-e",
        "gre.flags.version",
        "-e",
        "gre.proto",
        "-e",
        "gre.key.call_id",
        "-e",
        "gre.sequence_number",
        "-e",
        "gre.ack_number",
        "-e",
        "ppp.protocol",
        "-e",
        "ppp.code",
    ]);
    let want: String = gre_expected
        .iter()
        .map(|&(key, seq, ack)| {
            let opt = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_default();
            let lcp = if seq.is_some() { "0xc021\t9" } else { "\t" };
            format!("1\t0x880b\t{key}\t{}\t{}\t{lcp}\n", opt(seq), opt(ack))
        })
        .collect();
    assert_eq!(gre, want);
}
