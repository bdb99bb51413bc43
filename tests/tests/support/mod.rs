//! Shared by the BPF program tests: loading the embedded object with a private
//! bpffs, running frames through BPF_PROG_TEST_RUN, reading counters, and building
//! frames with checksums computed independently of the code under test.
#![allow(dead_code)] // each test binary uses its own subset

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp},
};
use pptp_agent::dataplane::BPF_OBJECT;
use pptp_common::{
    counters::{Counter, GlobalCounter},
    maps,
    police::{Limit, Policer, SessionPolicers},
    rate::Direction,
    session::{
        ClientEntry, Config, EncapSession, NextHop, SESSION_INSTALLED, SESSION_POLICED, Session,
        SessionCounters, SessionEvents, client_index,
    },
    wire::{gre, ipv4},
};
use pptp_tests::bpffs::TempBpffs;

/// The fixtures' addresses: the client's outer address, the concentrator's, the
/// client's tunnel address and the LAN host.
pub const PEER: [u8; 4] = [198, 51, 100, 10];
pub const SERVER: [u8; 4] = [198, 51, 100, 1];
pub const CLIENT: [u8; 4] = [192, 0, 2, 10];
pub const LAN_HOST: [u8; 4] = [203, 0, 113, 10];

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_REDIRECT: u32 = 7;
pub const TC_ACT_SHOT: u32 = 2;

/// The BPF object loaded (programs loaded, not attached) with its maps pinned in
/// a private bpffs.
pub struct Loaded {
    pub ebpf: Ebpf,
    _bpffs: TempBpffs,
}

impl Loaded {
    pub fn new(test: &str) -> Self {
        let bpffs = TempBpffs::for_test(test).expect("a bpffs (needs root)");
        let path = bpffs.path().to_path_buf();
        Self::sharing(bpffs, &path)
    }

    /// Loads the object with its maps pinned in `pins` (reusing maps pinned there).
    pub fn sharing(bpffs: TempBpffs, pins: &std::path::Path) -> Self {
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins)
            .load(BPF_OBJECT)
            .expect("loading the BPF object needs root (CAP_BPF)");
        for name in [maps::PROG_UPLINK, maps::PROG_LAN] {
            let program: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
            program
                .load()
                .unwrap_or_else(|e| panic!("loading {name}: {e:?}"));
        }
        let egress: &mut SchedClassifier = ebpf
            .program_mut(maps::PROG_EGRESS)
            .unwrap()
            .try_into()
            .unwrap();
        egress
            .load()
            .unwrap_or_else(|e| panic!("loading {}: {e:?}", maps::PROG_EGRESS));
        Self {
            ebpf,
            _bpffs: bpffs,
        }
    }

    /// Runs `frame` through the XDP program `program`; returns the verdict and the
    /// output frame.
    pub fn run(&self, program: &str, frame: &[u8]) -> (u32, Vec<u8>) {
        let program: &Xdp = self.ebpf.program(program).unwrap().try_into().unwrap();
        test_run(program, frame)
    }

    /// Runs `packet` through the TC program `program`; returns the verdict and the
    /// output packet. The kernel hands a TC test run its data as it is given (it
    /// takes the first 14 bytes for an Ethernet header and puts them back), so an
    /// IPv4 packet reaches the program as on a TUN device.
    pub fn run_tc(&self, program: &str, packet: &[u8]) -> (u32, Vec<u8>) {
        let program: &SchedClassifier = self.ebpf.program(program).unwrap().try_into().unwrap();
        test_run(program, packet)
    }

    pub fn global(&self) -> Vec<Counter> {
        let map: PerCpuArray<&MapData, Counter> =
            PerCpuArray::try_from(self.ebpf.map(maps::GLOBAL_COUNTERS).unwrap()).unwrap();
        GlobalCounter::ALL
            .iter()
            .map(|c| {
                let mut sum = Counter::default();
                map.get(&c.index(), 0)
                    .unwrap()
                    .iter()
                    .for_each(|v| sum.add(v));
                sum
            })
            .collect()
    }

    /// The session's counters: its record's and its per-CPU events.
    pub fn session_counters(&self, slot: u32) -> SessionCounters {
        let map: PerCpuArray<&MapData, SessionEvents> =
            PerCpuArray::try_from(self.ebpf.map(maps::SESSION_EVENTS).unwrap()).unwrap();
        let mut sum = SessionEvents::default();
        map.get(&slot, 0).unwrap().iter().for_each(|v| sum.add(v));
        SessionCounters::new(&self.seq(slot), &sum)
    }

    /// The record of slot (our call ID) `slot` in `SESSIONS_BY_CALL`.
    pub fn seq(&self, slot: u32) -> Session {
        let map: Array<&MapData, Session> =
            Array::try_from(self.ebpf.map(maps::SESSIONS_BY_CALL).unwrap()).unwrap();
        map.get(&slot, 0).unwrap()
    }

    /// Overwrites the record of slot `slot` (its sequence state, for the tests).
    pub fn set_seq(&mut self, slot: u32, record: Session) {
        let mut map: Array<&mut MapData, Session> =
            Array::try_from(self.ebpf.map_mut(maps::SESSIONS_BY_CALL).unwrap()).unwrap();
        map.set(slot, record, 0).unwrap();
    }

    /// Writes the rate limits of slot `slot` and, as the agent does, sets or
    /// clears [`SESSION_POLICED`] in its record and in its `SESSIONS_BY_CLIENT`
    /// entries (the programs read `SESSION_POLICE` only with the flag).
    pub fn set_police(&mut self, slot: u32, police: SessionPolicers) {
        let policed = police.rx.limit.is_set() || police.tx.limit.is_set();
        let with_flag = |flags: u32| match policed {
            true => flags | SESSION_POLICED,
            false => flags & !SESSION_POLICED,
        };
        let mut map: Array<&mut MapData, SessionPolicers> =
            Array::try_from(self.ebpf.map_mut(maps::SESSION_POLICE).unwrap()).unwrap();
        map.set(slot, police, 0).unwrap();
        let record = self.seq(slot);
        self.set_seq(
            slot,
            Session {
                flags: with_flag(record.flags),
                ..record
            },
        );
        let clients: Vec<([u8; 4], EncapSession)> = {
            let hash: HashMap<&MapData, [u8; 4], EncapSession> =
                HashMap::try_from(self.ebpf.map(maps::SESSIONS_BY_CLIENT).unwrap()).unwrap();
            let index: Array<&MapData, ClientEntry> =
                Array::try_from(self.ebpf.map(maps::CLIENT_INDEX).unwrap()).unwrap();
            let indexed = index
                .iter()
                .map(Result::unwrap)
                .filter(|e| e.session.flags & SESSION_INSTALLED != 0)
                .map(|e| (e.client_addr, e.session));
            hash.iter().map(Result::unwrap).chain(indexed).collect()
        };
        for (client, entry) in clients.into_iter().filter(|(_, e)| e.slot == slot) {
            let entry = EncapSession {
                flags: with_flag(entry.flags),
                ..entry
            };
            self.add_encap(client, entry);
        }
    }

    pub fn police(&self, slot: u32) -> SessionPolicers {
        let map: Array<&MapData, SessionPolicers> =
            Array::try_from(self.ebpf.map(maps::SESSION_POLICE).unwrap()).unwrap();
        map.get(&slot, 0).unwrap()
    }

    pub fn set_config(&mut self, config: Config) {
        let mut map: Array<&mut MapData, Config> =
            Array::try_from(self.ebpf.map_mut(maps::CONFIG).unwrap()).unwrap();
        map.set(0, config, 0).unwrap();
    }

    /// Writes the record of our call ID `call_id` (installed by its flags).
    pub fn add_decap(&mut self, call_id: u16, session: Session) {
        let mut map: Array<&mut MapData, Session> =
            Array::try_from(self.ebpf.map_mut(maps::SESSIONS_BY_CALL).unwrap()).unwrap();
        map.set(u32::from(call_id), session, 0).unwrap();
    }

    /// The `CLIENT_INDEX` entry of `client`'s index.
    pub fn client_index_entry(&self, client: [u8; 4]) -> ClientEntry {
        let index: Array<&MapData, ClientEntry> =
            Array::try_from(self.ebpf.map(maps::CLIENT_INDEX).unwrap()).unwrap();
        index.get(&client_index(client), 0).unwrap()
    }

    /// The session of `client`: in its `CLIENT_INDEX` entry or in the hash.
    pub fn encap_entry(&self, client: [u8; 4]) -> EncapSession {
        if let Some(session) = self.client_index_entry(client).session_of(client) {
            return *session;
        }
        let map: HashMap<&MapData, [u8; 4], EncapSession> =
            HashMap::try_from(self.ebpf.map(maps::SESSIONS_BY_CLIENT).unwrap()).unwrap();
        map.get(&client, 0).unwrap()
    }

    /// Writes the session of `client` as the agent does: into its `CLIENT_INDEX`
    /// entry, or, when another client holds that entry, into the hash with the
    /// entry's overflow mark set.
    pub fn add_encap(&mut self, client: [u8; 4], session: EncapSession) {
        let mut index: Array<&mut MapData, ClientEntry> =
            Array::try_from(self.ebpf.map_mut(maps::CLIENT_INDEX).unwrap()).unwrap();
        let i = client_index(client);
        let entry = index.get(&i, 0).unwrap();
        let held = entry.session.flags & SESSION_INSTALLED != 0;
        if !held || entry.client_addr == client {
            let session = EncapSession {
                flags: session.flags | SESSION_INSTALLED,
                ..session
            };
            let entry = ClientEntry {
                client_addr: client,
                session,
                ..entry
            };
            index.set(i, entry, 0).unwrap();
            return;
        }
        index
            .set(
                i,
                ClientEntry {
                    overflow: 1,
                    ..entry
                },
                0,
            )
            .unwrap();
        let mut map: HashMap<&mut MapData, [u8; 4], EncapSession> =
            HashMap::try_from(self.ebpf.map_mut(maps::SESSIONS_BY_CLIENT).unwrap()).unwrap();
        map.insert(client, session, 0).unwrap();
    }

    pub fn add_next_hop(&mut self, dst: [u8; 4], hop: NextHop) {
        let mut map: HashMap<&mut MapData, [u8; 4], NextHop> =
            HashMap::try_from(self.ebpf.map_mut(maps::NEXT_HOPS).unwrap()).unwrap();
        map.insert(dst, hop, 0).unwrap();
    }
}

/// A policer that passes one packet and drops the next ones: 8 bit/s (a second per
/// byte) and no bucket beyond the first packet, so that the test run's clock,
/// however it moves, refills nothing.
pub fn one_packet_policer() -> Policer {
    Policer {
        limit: Limit {
            depth_ns: 0,
            ..Direction {
                rate: 8,
                ..Direction::default()
            }
            .limit()
        },
        ..Policer::default()
    }
}

/// Runs `frame` through `program` (the TC program [`maps::PROG_EGRESS`] or an XDP
/// program) and checks the verdict and exactly which global counters moved; returns
/// the output.
pub fn check(
    l: &Loaded,
    program: &str,
    what: &str,
    frame: &[u8],
    verdict: u32,
    counters: &[(&str, u64)],
) -> Vec<u8> {
    let before = l.global();
    let (got, out) = if program == maps::PROG_EGRESS {
        l.run_tc(program, frame)
    } else {
        l.run(program, frame)
    };
    assert_eq!(got, verdict, "{what}: verdict");
    assert_eq!(moved(&before, &l.global()), counters, "{what}: counters");
    out
}

/// The fixtures of the encapsulating programs (`pptp_lan`, `pptp_egress`): a
/// fast-path session to [`CLIENT`] and one on the agent's path to
/// [`encap::SLOW_CLIENT`], both to [`PEER`], whose next hop is cached.
pub mod encap {
    use super::*;
    use pptp_common::session::SESSION_FAST;

    pub const SLOW_CLIENT: [u8; 4] = [192, 0, 2, 11];
    pub const PEER_CALL: u16 = 0x2002;
    pub const SLOT: u32 = 3;
    pub const MTU: u16 = 1400;
    pub const UPLINK_HOP: NextHop = NextHop {
        ifindex: 5,
        smac: [0x02, 0, 0, 0, 5, 1],
        dmac: [0x02, 0, 0, 0, 5, 2],
        expires: u64::MAX,
    };

    /// The object loaded for `test` with both sessions; returns the fast one too.
    pub fn loaded(test: &str) -> (Loaded, EncapSession) {
        let mut l = Loaded::new(test);
        let session = EncapSession {
            peer_addr: PEER,
            local_addr: SERVER,
            peer_call_id: PEER_CALL,
            mtu: MTU,
            slot: SLOT,
            flags: SESSION_FAST,
            _pad: 0,
        };
        l.add_encap(CLIENT, session);
        l.add_encap(
            SLOW_CLIENT,
            EncapSession {
                flags: 0,
                slot: 4,
                ..session
            },
        );
        l.add_next_hop(PEER, UPLINK_HOP);
        (l, session)
    }

    /// What the uplink must carry for `inner` (as the program leaves its TTL).
    pub fn encapsulated(inner: &[u8], seq: u32, ack: Option<u32>) -> Vec<u8> {
        super::encapsulated(PEER_CALL, &UPLINK_HOP, inner, seq, ack)
    }
}

/// One BPF_PROG_TEST_RUN of `program` on `data`: the verdict and the output data.
fn test_run<P>(program: &P, data: &[u8]) -> (u32, Vec<u8>)
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; data.len() + 512];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(data);
    opts.data_out = Some(&mut out);
    let result = program.test_run(opts).expect("BPF_PROG_TEST_RUN");
    out.truncate(result.data_size_out as usize);
    (result.return_value, out)
}

/// The change of every global counter between two snapshots, as (name, packets).
pub fn moved(before: &[Counter], after: &[Counter]) -> Vec<(&'static str, u64)> {
    GlobalCounter::ALL
        .iter()
        .zip(before.iter().zip(after))
        .filter(|(_, (b, a))| a.packets != b.packets)
        .map(|(c, (b, a))| (c.name(), a.packets - b.packets))
        .collect()
}

pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// RFC 1071 checksum: `pptp_common::wire`'s, which the programs use too; its unit
/// tests hold it to published vectors.
pub use pptp_common::wire::checksum::checksum;

/// An IPv4 packet with a correct header checksum.
pub struct Ipv4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub proto: u8,
    pub ttl: u8,
    pub ident: u16,
    pub frag: u16,
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Ipv4 {
    pub fn new(src: [u8; 4], dst: [u8; 4], proto: u8, payload: Vec<u8>) -> Self {
        Self {
            src,
            dst,
            proto,
            ttl: 64,
            ident: 0x1234,
            frag: 0,
            options: Vec::new(),
            payload,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        assert_eq!(self.options.len() % 4, 0);
        let repr = ipv4::Repr {
            src: self.src,
            dst: self.dst,
            protocol: self.proto,
            ttl: self.ttl,
            ident: self.ident,
            flags_offset: self.frag,
            payload_len: (self.options.len() + self.payload.len()) as u16,
        };
        let mut h = repr.header().to_vec();
        if !self.options.is_empty() {
            // The writer knows no options: longer header, checksum over them too.
            h[ipv4::field::VER_IHL] = 0x45 + (self.options.len() / 4) as u8;
            h.extend_from_slice(&self.options);
            h[ipv4::field::CHECKSUM].fill(0);
            let c = checksum(&h);
            h[ipv4::field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        }
        h.extend_from_slice(&self.payload);
        h
    }
}

/// An ICMP echo request with `len` bytes of data (checksum correct).
pub fn icmp_echo(len: usize) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    m.extend((0..len).map(|i| i as u8));
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// A TCP segment with the given flags and options and a correct checksum.
pub fn tcp(src: [u8; 4], dst: [u8; 4], flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut seg = vec![0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
    seg.push((((20 + options.len()) / 4) as u8) << 4);
    seg.extend_from_slice(&[flags, 0xff, 0xff, 0, 0, 0, 0]);
    seg.extend_from_slice(options);
    seg.extend_from_slice(payload);
    let c = tcp_checksum(src, dst, &seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    seg
}

/// TCP checksum over the IPv4 pseudo-header (the segment's own field zeroed).
pub fn tcp_checksum(src: [u8; 4], dst: [u8; 4], segment: &[u8]) -> u16 {
    let mut data = src.to_vec();
    data.extend_from_slice(&dst);
    data.extend_from_slice(&[0, 6]);
    data.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    let mut seg = segment.to_vec();
    seg[16] = 0;
    seg[17] = 0;
    data.extend_from_slice(&seg);
    checksum(&data)
}

/// The frame an encapsulating program sends for `inner` to the session whose
/// peer is [`PEER`] (Call ID `peer_call`) from [`SERVER`], through `hop`: outer IPv4
/// (DF, ID 0, TTL 64), enhanced GRE with sequence number `seq` and acknowledgment
/// `ack`, PPP with address and control fields, protocol IPv4.
pub fn encapsulated(
    peer_call: u16,
    hop: &NextHop,
    inner: &[u8],
    seq: u32,
    ack: Option<u32>,
) -> Vec<u8> {
    let ppp = [&[0xff, 0x03, 0x00, 0x21][..], inner].concat();
    let mut outer = Ipv4::new(SERVER, PEER, 47, gre(peer_call, Some(seq), ack, &ppp));
    outer.frag = 0x4000; // DF
    outer.ident = 0; // RFC 6864: an atomic datagram
    ethernet(hop.dmac, hop.smac, 0x0800, &outer.bytes())
}

/// An enhanced GRE packet (RFC 2637 §4.1).
pub fn gre(call_id: u16, seq: Option<u32>, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u16;
    let mut p = gre::fixed(call_id, len, seq.is_some(), ack.is_some()).to_vec();
    if let Some(seq) = seq {
        p.extend_from_slice(&seq.to_be_bytes());
    }
    if let Some(ack) = ack {
        p.extend_from_slice(&ack.to_be_bytes());
    }
    p.extend_from_slice(payload);
    p
}
