//! The uplink XDP program under BPF_PROG_TEST_RUN: a table of crafted frames, each
//! with the verdict and the one counter it must move (Katran-style fixtures).
//! Needs root (BPF); fails, never skips, without it.

use aya::{
    EbpfLoader,
    maps::{MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp},
};
use pptp_agent::dataplane::BPF_OBJECT;
use pptp_common::{
    counters::{Counter, GlobalCounter},
    maps::{GLOBAL_COUNTERS, PROG_UPLINK},
};
use pptp_tests::bpffs::TempBpffs;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

struct Fixture {
    what: &'static str,
    frame: Vec<u8>,
    verdict: u32,
    class: GlobalCounter,
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An Ethernet + IPv4 frame from 198.51.100.10 to 198.51.100.1.
fn ipv4(proto: u8, payload: &[u8], options: &[u8], frag: u16) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + payload.len()) as u16;
    let mut ip = vec![0x40 | ihl as u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1]);
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0, 198, 51, 100, 10, 198, 51, 100, 1]);
    ip.extend_from_slice(options);
    ip.extend_from_slice(payload);
    ethernet(0x0800, &ip)
}

fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut seg = Vec::new();
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&[0; 8]);
    seg.extend_from_slice(&[0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    seg
}

/// Enhanced GRE with the given first two bytes, call ID 7, sequence 1, 4 bytes of PPP.
fn gre(flags: u8, flags_version: u8) -> Vec<u8> {
    vec![
        flags,
        flags_version,
        0x88,
        0x0b,
        0,
        4,
        0,
        7,
        0,
        0,
        0,
        1,
        0xff,
        0x03,
        0x00,
        0x21,
    ]
}

fn fixtures() -> Vec<Fixture> {
    use GlobalCounter::*;
    let f = |what, frame, verdict, class| Fixture {
        what,
        frame,
        verdict,
        class,
    };
    vec![
        f(
            "enhanced GRE with sequence",
            ipv4(47, &gre(0x30, 0x01), &[], 0),
            XDP_PASS,
            GreEnhanced,
        ),
        f(
            "enhanced GRE ack-only",
            ipv4(
                47,
                &[0x20, 0x81, 0x88, 0x0b, 0, 0, 0, 7, 0, 0, 0, 9],
                &[],
                0,
            ),
            XDP_PASS,
            GreEnhanced,
        ),
        f(
            "enhanced GRE after IPv4 options",
            ipv4(47, &gre(0x30, 0x01), &[1, 1, 1, 0], 0),
            XDP_PASS,
            GreEnhanced,
        ),
        f(
            "TCP to port 1723",
            ipv4(6, &tcp(40000, 1723), &[], 0),
            XDP_PASS,
            PptpControl,
        ),
        f(
            "TCP from port 1723",
            ipv4(6, &tcp(1723, 40000), &[], 0),
            XDP_PASS,
            PptpControl,
        ),
        f(
            "TCP to port 80",
            ipv4(6, &tcp(40000, 80), &[], 0),
            XDP_PASS,
            OtherIpv4,
        ),
        f(
            "UDP",
            ipv4(17, &[0, 53, 0, 53, 0, 8, 0, 0], &[], 0),
            XDP_PASS,
            OtherIpv4,
        ),
        f(
            "GRE version 0 (not PPTP)",
            ipv4(47, &[0, 0, 0x08, 0x00, 0x45, 0], &[], 0),
            XDP_PASS,
            GreOther,
        ),
        f(
            "non-first fragment of GRE",
            ipv4(47, &[0xde, 0xad, 0xbe, 0xef], &[], 0x0010),
            XDP_PASS,
            OtherIpv4,
        ),
        f("ARP", ethernet(0x0806, &[0; 28]), XDP_PASS, NonIpv4),
        f("IPv6", ethernet(0x86dd, &[0x60; 40]), XDP_PASS, NonIpv4),
        f(
            "IPv4 header cut short",
            ethernet(0x0800, &[0x45, 0, 0, 20, 0, 1, 0, 0, 64, 47]),
            XDP_DROP,
            Malformed,
        ),
        f(
            "IHL below 5",
            ipv4(47, &gre(0x30, 0x01), &[], 0)
                .into_iter()
                .enumerate()
                .map(|(i, b)| if i == 14 { 0x44 } else { b })
                .collect(),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE cut after 6 bytes",
            ipv4(47, &gre(0x30, 0x01)[..6], &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "GRE header cut after 3 bytes",
            ipv4(47, &[0x30, 0x01, 0x88], &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "TCP header cut after 3 bytes",
            ipv4(6, &[0x06, 0xbb, 0x9c], &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE with checksum bit",
            ipv4(47, &gre(0xb0, 0x01), &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE without key bit",
            ipv4(47, &gre(0x10, 0x01), &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE with recursion",
            ipv4(47, &gre(0x31, 0x01), &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE with reserved flag",
            ipv4(47, &gre(0x30, 0x41), &[], 0),
            XDP_DROP,
            Malformed,
        ),
        f(
            "enhanced GRE carrying IPv4, not PPP",
            ipv4(
                47,
                &[0x30, 0x01, 0x08, 0x00, 0, 4, 0, 7, 0, 0, 0, 1],
                &[],
                0,
            ),
            XDP_DROP,
            Malformed,
        ),
    ]
}

fn totals(map: &PerCpuArray<&MapData, Counter>) -> Vec<Counter> {
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

#[test]
fn uplink_verdicts_and_counters() {
    let bpffs = TempBpffs::for_test("xdp-classifier").expect("a bpffs (needs root)");
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(bpffs.path())
        .load(BPF_OBJECT)
        .expect("loading the BPF object needs root (CAP_BPF)");
    let program: &mut Xdp = ebpf.program_mut(PROG_UPLINK).unwrap().try_into().unwrap();
    program.load().unwrap();
    let map = PerCpuArray::try_from(ebpf.map(GLOBAL_COUNTERS).unwrap()).unwrap();
    let program: &Xdp = ebpf.program(PROG_UPLINK).unwrap().try_into().unwrap();

    for fixture in fixtures() {
        let before = totals(&map);
        let mut out = vec![0u8; fixture.frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&fixture.frame);
        opts.data_out = Some(&mut out);
        let result = program.test_run(opts).unwrap_or_else(|e: ProgramError| {
            panic!("{}: BPF_PROG_TEST_RUN failed: {e}", fixture.what)
        });
        assert_eq!(
            result.return_value, fixture.verdict,
            "{}: verdict",
            fixture.what
        );
        if fixture.verdict == XDP_PASS {
            assert_eq!(
                &out[..result.data_size_out as usize],
                &fixture.frame[..],
                "{}: the classifier must not change the frame",
                fixture.what
            );
        }
        let after = totals(&map);
        for (class, (b, a)) in GlobalCounter::ALL.iter().zip(before.iter().zip(&after)) {
            let expected = if *class == fixture.class {
                Counter {
                    packets: b.packets + 1,
                    bytes: b.bytes + fixture.frame.len() as u64,
                }
            } else {
                *b
            };
            assert_eq!(*a, expected, "{}: counter {}", fixture.what, class.name());
        }
    }
}
