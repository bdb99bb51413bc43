//! `cargo xtask bench` (`cargo bench -p pptp-tests --bench xdp`): packets per second
//! of the XDP data plane side by side with two baselines measured in the same run,
//! and nanoseconds per packet of each program under BPF_PROG_TEST_RUN.
//!
//! Topology ([`pptp_tests::bench_lab`]): three identical namespace chains
//! `wan end -- concentrator -- LAN end`, one per data plane:
//! - **ours**: the agent's [`XdpDataplane`] with [`SESSIONS`] fast sessions installed
//!   through its API, `pptp_uplink` on the uplink, `pptp_lan` on the LAN link;
//! - **(a) bare redirect**: an XDP program that redirects every frame, unparsed, to
//!   the other link (the limit of this machine);
//! - **(b) kernel forwarding**: no XDP at the concentrator; the generator sends the
//!   inner packets, plain IPv4, and the kernel routes them.
//!
//! The generator (`bench_gen` of the bench object) runs with BPF_PROG_TEST_RUN in
//! live-frames mode on the sending end (the wan end for decap, the LAN end for
//! encap) and sends every frame with `XDP_TX` into the concentrator; a per-CPU
//! counting `XDP_DROP` program (`bench_sink`) at the far end counts what arrives.
//! The generator rewrites the first 72 bytes of each frame from one template per
//! session (round robin over the sessions, so every frame hits another session) and
//! gives enhanced GRE frames the sequence number `n / sessions + 1`: each session
//! sees strictly increasing sequence numbers and the uplink program's replay check
//! drops nothing (the bench checks the session counters afterwards). The three
//! chains get byte-identical frames (same addresses and MAC addresses).
//!
//! Everything of one measurement runs on one CPU: the generator thread is pinned and
//! veth processing runs in the sender's softirq on the sender's CPU. Each round runs
//! for [`ROUND`] (bounded in count too); rounds of the three data planes interleave;
//! the report gives medians of [`ROUNDS`] rounds and the ratios to the baselines.
//!
//! Per packet: each program runs on fresh frames, one BPF_PROG_TEST_RUN call per
//! frame (repeat = 1: a repeated run would run the program on its own output), and
//! the median of the reported durations is given next to the empty program's. With
//! `NEXT_HOPS` emptied before every call, the decap and encap figures show what a
//! `bpf_fib_lookup` per packet would cost.
//!
//! Sessions: the documentation ranges hold 500 distinct client addresses besides the
//! links, so the bench installs 500 sessions (60 peer addresses, several calls each).

use std::{
    collections::BTreeMap,
    fs::File,
    net::Ipv4Addr,
    os::fd::AsFd as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, PerCpuArray},
    programs::{TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use nix::sched::{CloneFlags, CpuSet, sched_setaffinity, setns};
use pptp_agent::{
    dataplane::{
        BENCH_OBJECT, BPF_OBJECT,
        bpffs::PinDir,
        xdp::{XdpDataplane, XdpOptions},
    },
    engine::kernel::{CallSpec, NetworkSpec},
};
use pptp_common::{
    maps,
    session::NextHop,
    wire::{
        gre, ipv4,
        ppp::{self, protocol},
    },
};
use pptp_tests::{
    bench_lab::{self, BenchLab, Chain, addr, link},
    bpffs::TempBpffs,
    netns,
};

/// Sessions installed (and templates the generator cycles through).
const SESSIONS: usize = 500;
/// Inner packet sizes (IPv4 total length).
const SIZES: [usize; 2] = [64, 1400];
/// Rounds per data plane and case; the report gives their median.
const ROUNDS: usize = 3;
/// Length of a round (`PPTP_BENCH_SECONDS` overrides).
const ROUND: Duration = Duration::from_secs(2);
/// Bytes of each frame the generator rewrites (`TEMPLATE_LEN` of bench.rs).
const TEMPLATE_LEN: usize = 72;
/// Frames per XDP live-frames batch.
const BATCH: u32 = 64;
/// Calls per program in the per-packet timings.
const TIMING_CALLS: usize = 50_000;
/// MTU given to the sessions (largest inner packet the veths carry inside GRE).
const SESSION_MTU: u16 = 1460;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct GenConfig {
    count: u32,
    gre_seq: u32,
}
// SAFETY: repr(C), two u32, no padding.
unsafe impl aya::Pod for GenConfig {}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Direction {
    Decap,
    Encap,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Plane {
    Ours,
    Bare,
    Kernel,
}

impl Plane {
    const ALL: [Plane; 3] = [Plane::Ours, Plane::Bare, Plane::Kernel];
    fn name(self) -> &'static str {
        match self {
            Plane::Ours => "pptp-xdp",
            Plane::Bare => "(a) bare XDP redirect",
            Plane::Kernel => "(b) kernel IPv4 forwarding",
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("bench xdp: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> anyhow::Result<()> {
    let round = std::env::var("PPTP_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(ROUND, Duration::from_secs_f64);
    let started = Instant::now();
    let stale = pptp_tests::lab::down_stale()?;
    if !stale.is_empty() {
        eprintln!("removed labs left by killed runs: {stale:?}");
    }
    if BENCH_OBJECT.is_empty() {
        bail!("pptp-agent was built with a prebuilt BPF object but no PPTP_EBPF_BENCH_OBJECT");
    }
    pin_to_one_cpu()?;
    let load_before = load_average();

    let lab = BenchLab::up(&["o", "a", "b"])?;
    let [ours, bare, kernel] = [0, 1, 2].map(|i| lab.chains()[i].clone());
    let bpffs = TempBpffs::mount(lab.run_dir().join("bpf"))?;

    // The sink on both ends of every chain; the generator.
    let mut bench = EbpfLoader::new()
        .load(BENCH_OBJECT)
        .context("loading the bench object")?;
    for name in ["bench_gen", "bench_sink", "bench_pass"] {
        program_mut(&mut bench, name)?.load()?;
    }
    for chain in [&ours, &bare, &kernel] {
        for (ns, dev) in [(&chain.wan, link::WAN), (&chain.lan, link::HOST)] {
            let sink = program_mut(&mut bench, "bench_sink")?;
            in_ns(ns, || sink.attach(dev, XdpMode::default()))?
                .with_context(|| format!("attaching the sink to {dev} in {ns}"))?;
        }
    }

    // (a): one bare redirect per direction.
    let bare_up = bare_redirect(&bare.concentrator, link::UPLINK, link::LAN)?;
    let bare_lan = bare_redirect(&bare.concentrator, link::LAN, link::UPLINK)?;

    // Ours: the agent's data plane with SESSIONS fast sessions.
    let pins = PinDir::new(bpffs.path(), "bench")?;
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions { drop_unknown: true })?;
    let mut slots = Vec::new();
    for i in 0..SESSIONS {
        let s = session(i);
        let slot = dataplane.install(CallSpec {
            peer_addr: s.peer,
            local_addr: addr::UPLINK,
            local_call_id: s.call_id,
            peer_call_id: s.peer_call_id,
        })?;
        dataplane.set_network(
            slot,
            NetworkSpec {
                client_addr: s.client,
                mtu: SESSION_MTU,
                fast: true,
            },
        )?;
        slots.push(slot);
    }
    in_ns(&ours.concentrator, || {
        dataplane.attach_uplink(link::UPLINK)?;
        dataplane.attach_lan(link::LAN)
    })??;

    let ifindex = |ns: &str, dev: &str| bench_lab::ifindex(ns, dev);
    let senders: BTreeMap<(Direction, Plane), (String, u32)> = [ours.clone(), bare, kernel]
        .iter()
        .zip(Plane::ALL)
        .flat_map(|(chain, plane)| {
            [
                ((Direction::Decap, plane), (chain.wan.clone(), link::WAN)),
                ((Direction::Encap, plane), (chain.lan.clone(), link::HOST)),
            ]
        })
        .map(|(key, (ns, dev))| Ok((key, (ns.clone(), ifindex(&ns, dev)?))))
        .collect::<anyhow::Result<_>>()?;

    eprintln!(
        "bench: {SESSIONS} sessions installed, {ROUNDS} rounds of {:.1} s per data plane and case",
        round.as_secs_f64()
    );
    let mut table = Vec::new();
    for direction in [Direction::Decap, Direction::Encap] {
        for size in SIZES {
            let case = measure_case(&mut bench, &senders, direction, size, round)?;
            table.push(case);
        }
    }

    // Every frame of ours arrived as what it should be; nothing dropped as a replay.
    let global = dataplane.global_counters()?;
    let mut old_seq = 0;
    let mut rx = 0;
    for slot in &slots {
        let c = dataplane.session_counters(*slot)?;
        old_seq += c.drop_old_seq;
        rx += c.rx_packets;
    }

    let mut profiles = Vec::new();
    if std::env::var_os("PPTP_BENCH_PERF").is_some_and(|v| v != "0") {
        for direction in [Direction::Decap, Direction::Encap] {
            for plane in [Plane::Ours, Plane::Bare] {
                profiles.push(profile(
                    &mut bench,
                    &senders,
                    direction,
                    plane,
                    &lab.run_dir(),
                )?);
            }
        }
    }

    let timings = in_ns(&ours.concentrator, || {
        per_packet(&bench, &bare_up, &pins, &ours, rx)
    })??;

    let load_after = load_average();
    print_report(
        &table,
        &timings,
        &global,
        old_seq,
        rx,
        &load_before,
        &load_after,
    );
    print_profiles(&profiles);
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());

    drop(dataplane);
    drop(bare_up);
    drop(bare_lan);
    drop(bench);
    drop(bpffs);
    lab.down()
}

/// One session's identifiers.
struct Session {
    peer: Ipv4Addr,
    call_id: u16,
    peer_call_id: u16,
    client: Ipv4Addr,
}

fn session(i: usize) -> Session {
    Session {
        peer: addr::peer(i % addr::PEERS),
        call_id: 0x1000 + i as u16,
        peer_call_id: 0x4000 + i as u16,
        client: addr::client(i),
    }
}

fn program_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Xdp> {
    Ok(ebpf
        .program_mut(name)
        .with_context(|| format!("no program {name}"))?
        .try_into()?)
}

fn program<'a>(ebpf: &'a Ebpf, name: &str) -> anyhow::Result<&'a Xdp> {
    Ok(ebpf
        .program(name)
        .with_context(|| format!("no program {name}"))?
        .try_into()?)
}

/// Runs `f` on this thread inside namespace `ns`, then returns to the thread's own.
fn in_ns<T>(ns: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    let own = File::open("/proc/thread-self/ns/net")?;
    let target = File::open(netns::path(ns)).with_context(|| format!("opening namespace {ns}"))?;
    setns(target.as_fd(), CloneFlags::CLONE_NEWNET).context("setns")?;
    let result = f();
    setns(own.as_fd(), CloneFlags::CLONE_NEWNET).context("setns back")?;
    Ok(result)
}

/// The CPU the benchmark runs on: the last one (CPU 0 takes more interrupts).
fn pinned_cpu() -> usize {
    // SAFETY: plain sysconf query (not the affinity mask, which pinning narrows).
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    online.max(1) as usize - 1
}

/// The whole pipeline on one CPU.
fn pin_to_one_cpu() -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    set.set(pinned_cpu())?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).context("sched_setaffinity")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A bench object with `bench_redirect` attached to `from`, redirecting to `to`.
fn bare_redirect(ns: &str, from: &str, to: &str) -> anyhow::Result<Ebpf> {
    let mut ebpf = EbpfLoader::new().load(BENCH_OBJECT)?;
    let target = bench_lab::ifindex(ns, to)?;
    let mut redirect: Array<&mut MapData, u32> =
        Array::try_from(ebpf.map_mut("REDIRECT_TO").context("no REDIRECT_TO")?)?;
    redirect.set(0, target, 0)?;
    let program = program_mut(&mut ebpf, "bench_redirect")?;
    program.load()?;
    in_ns(ns, || program.attach(from, XdpMode::default()))??;
    Ok(ebpf)
}

// ---------------------------------------------------------------------------
// Frames

fn ethernet(dst: [u8; 6], src: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut frame = dst.to_vec();
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 packet carrying `payload`, with a correct header checksum.
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let header = ipv4::Repr::new(src.octets(), dst.octets(), proto, payload.len() as u16);
    [&header.header()[..], payload].concat()
}

/// A UDP datagram (checksum 0: none) in an IPv4 packet of `size` bytes.
fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let udp_len = (size - 20) as u16;
    let mut udp = vec![0x9c, 0x40, 0x23, 0x29];
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.resize(udp_len as usize, 0xa5);
    ipv4_packet(src, dst, ipv4::PROTO_UDP, &udp)
}

/// What the generator sends for session `i` in `direction` to data plane `plane`.
fn frame(direction: Direction, plane: Plane, i: usize, size: usize) -> Vec<u8> {
    let s = session(i);
    match (direction, plane) {
        (Direction::Decap, Plane::Kernel) => ethernet(
            link::UPLINK_MAC,
            link::WAN_MAC,
            &udp_packet(s.client, addr::LAN_HOST, size),
        ),
        (Direction::Decap, _) => {
            let inner = udp_packet(s.client, addr::LAN_HOST, size);
            let ppp = ppp::Header::uncompressed(protocol::IPV4);
            let payload_len = (ppp.len() + inner.len()) as u16;
            let mut gre = gre::fixed(s.call_id, payload_len, true, false).to_vec();
            gre.extend_from_slice(&[0, 0, 0, 0]); // sequence number: the generator's
            gre.extend_from_slice(&ppp);
            gre.extend_from_slice(&inner);
            ethernet(
                link::UPLINK_MAC,
                link::WAN_MAC,
                &ipv4_packet(s.peer, addr::UPLINK, ipv4::PROTO_GRE, &gre),
            )
        }
        (Direction::Encap, _) => ethernet(
            link::LAN_MAC,
            link::HOST_MAC,
            &udp_packet(addr::LAN_HOST, s.client, size),
        ),
    }
}

// ---------------------------------------------------------------------------
// Live-frames measurement

struct Case {
    direction: Direction,
    size: usize,
    /// Million packets per CPU-second of every round, by plane.
    mpps: BTreeMap<Plane, Vec<f64>>,
    /// Million packets per wall-clock second of every round, by plane.
    wall_mpps: BTreeMap<Plane, Vec<f64>>,
    /// What arrived at the sink (all, UDP, GRE, other) in the last round, by plane.
    kinds: BTreeMap<Plane, [u64; 4]>,
    /// Frames sent and received over all rounds, by plane.
    sent: BTreeMap<Plane, (u64, u64)>,
}

impl Case {
    fn median(&self, plane: Plane) -> f64 {
        median(&self.mpps[&plane])
    }
    fn wall_median(&self, plane: Plane) -> f64 {
        median(&self.wall_mpps[&plane])
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn set_templates(
    bench: &mut Ebpf,
    direction: Direction,
    plane: Plane,
    size: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut templates: Array<&mut MapData, [u64; TEMPLATE_LEN / 8]> =
        Array::try_from(bench.map_mut("GEN_TEMPLATES").context("no GEN_TEMPLATES")?)?;
    for i in 0..SESSIONS {
        let f = frame(direction, plane, i, size);
        let mut t = [0u64; TEMPLATE_LEN / 8];
        for (word, bytes) in t.iter_mut().zip(f[..TEMPLATE_LEN].chunks_exact(8)) {
            *word = u64::from_ne_bytes(bytes.try_into().unwrap());
        }
        templates.set(i as u32, t, 0)?;
    }
    let gre_seq = matches!(
        (direction, plane),
        (Direction::Decap, Plane::Ours | Plane::Bare)
    );
    let mut config: Array<&mut MapData, GenConfig> =
        Array::try_from(bench.map_mut("GEN_CONFIG").context("no GEN_CONFIG")?)?;
    config.set(
        0,
        GenConfig {
            count: SESSIONS as u32,
            gre_seq: gre_seq.into(),
        },
        0,
    )?;
    Ok(frame(direction, plane, 0, size))
}

fn sink_counts(bench: &Ebpf) -> anyhow::Result<[u64; 4]> {
    let map: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(bench.map("SINK_COUNTERS").context("no SINK_COUNTERS")?)?;
    let mut out = [0u64; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = map.get(&(i as u32), 0)?.iter().sum();
    }
    Ok(out)
}

/// What one sending round measured.
struct Sent {
    /// Frames the generator sent.
    sent: u64,
    /// Frames counted by the sinks, by kind (all, UDP, GRE, other).
    got: [u64; 4],
    /// Wall-clock time.
    wall: Duration,
    /// CPU time of the pipeline: the generator thread (veth processing runs in its
    /// softirq, charged to it: no IRQ time accounting here) plus the pinned CPU's
    /// ksoftirqd, for softirq work deferred to it.
    cpu: Duration,
}

/// This thread's CPU time.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Run time of `ksoftirqd/<cpu>` (first field of its schedstat, in ns).
fn ksoftirqd_time(cpu: usize) -> Duration {
    let name = format!("ksoftirqd/{cpu}");
    let ns = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .and_then(|e| std::fs::read_to_string(e.path().join("schedstat")).ok())
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// Sends frames for `duration` (and at most 4,000 calls).
fn send(
    bench: &Ebpf,
    sender: &(String, u32),
    frame: &[u8],
    duration: Duration,
) -> anyhow::Result<Sent> {
    let generator = program(bench, "bench_gen")?;
    let (ns, ifindex) = sender;
    // xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let ctx: Vec<u8> = [0, frame.len() as u32, 0, *ifindex, 0, 0]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let cpu = pinned_cpu();
    let before = sink_counts(bench)?;
    let soft_before = ksoftirqd_time(cpu);
    let mut sent = 0u64;
    let mut repeat: u32 = 1 << 14;
    let start = Instant::now();
    let thread_cpu = in_ns(ns, || -> anyhow::Result<Duration> {
        let cpu_start = thread_cpu_time();
        for _ in 0..4_000 {
            let mut opts = TestRunOptions::new();
            opts.data_in = Some(frame);
            opts.ctx_in = Some(&ctx);
            opts.repeat = repeat;
            opts.attrs = TestRunAttrs::new().xdp_live_frames(BATCH);
            let t = Instant::now();
            generator
                .test_run(opts)
                .context("BPF_PROG_TEST_RUN of the generator (live frames)")?;
            sent += u64::from(repeat);
            let took = t.elapsed().as_secs_f64().max(1e-6);
            let elapsed = start.elapsed();
            if elapsed >= duration {
                break;
            }
            // About 50 ms per call, never past the end by much.
            let rate = f64::from(repeat) / took;
            let left = (duration - elapsed).as_secs_f64();
            repeat = (rate * left.min(0.05)).clamp(1024.0, (1u32 << 24) as f64) as u32;
        }
        Ok(thread_cpu_time() - cpu_start)
    })??;
    let wall = start.elapsed();
    let soft = ksoftirqd_time(cpu).saturating_sub(soft_before);
    let after = sink_counts(bench)?;
    let mut got = [0u64; 4];
    for i in 0..4 {
        got[i] = after[i] - before[i];
    }
    Ok(Sent {
        sent,
        got,
        wall,
        cpu: thread_cpu + soft,
    })
}

fn measure_case(
    bench: &mut Ebpf,
    senders: &BTreeMap<(Direction, Plane), (String, u32)>,
    direction: Direction,
    size: usize,
    round: Duration,
) -> anyhow::Result<Case> {
    let mut case = Case {
        direction,
        size,
        mpps: BTreeMap::new(),
        wall_mpps: BTreeMap::new(),
        kinds: BTreeMap::new(),
        sent: BTreeMap::new(),
    };
    // Warm-up: next hops, neighbour entries, page pools.
    for plane in Plane::ALL {
        let f = set_templates(bench, direction, plane, size)?;
        send(
            bench,
            &senders[&(direction, plane)],
            &f,
            Duration::from_millis(200),
        )?;
    }
    for r in 0..ROUNDS {
        for plane in Plane::ALL {
            let f = set_templates(bench, direction, plane, size)?;
            let Sent {
                sent,
                got,
                wall,
                cpu,
            } = send(bench, &senders[&(direction, plane)], &f, round)?;
            let mpps = got[0] as f64 / cpu.as_secs_f64().max(1e-3) / 1e6;
            let wall_mpps = got[0] as f64 / wall.as_secs_f64() / 1e6;
            eprintln!(
                "  {direction:?} {size:>4} B round {r}: {:<27} {mpps:6.2} Mpps per core, {wall_mpps:6.2} Mpps wall ({:.0}% of the CPU; {} of {} frames arrived)",
                plane.name(),
                100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
                got[0],
                sent
            );
            case.mpps.entry(plane).or_default().push(mpps);
            case.wall_mpps.entry(plane).or_default().push(wall_mpps);
            case.kinds.insert(plane, got);
            let total = case.sent.entry(plane).or_default();
            total.0 += sent;
            total.1 += got[0];
        }
    }
    Ok(case)
}

/// A profile: CPU ns per packet of the pipeline, and the symbols it spent them in.
struct Profile {
    direction: Direction,
    plane: Plane,
    ns_per_packet: f64,
    /// (share of the samples in percent, symbol), largest first.
    symbols: Vec<(f64, String)>,
}

/// Samples the pinned CPU with `perf record` while `plane` runs `direction` at 64 B;
/// keeps the samples of the benchmark's thread and the CPU's ksoftirqd.
fn profile(
    bench: &mut Ebpf,
    senders: &BTreeMap<(Direction, Plane), (String, u32)>,
    direction: Direction,
    plane: Plane,
    run_dir: &std::path::Path,
) -> anyhow::Result<Profile> {
    let cpu = pinned_cpu();
    std::fs::create_dir_all(run_dir)?;
    let data = run_dir.join(format!("perf-{direction:?}-{plane:?}.data"));
    let frame = set_templates(bench, direction, plane, 64)?;
    let mut perf = std::process::Command::new("perf")
        .args(["record", "-q", "-C", &cpu.to_string(), "-o"])
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting perf record (install linux-perf, or unset PPTP_BENCH_PERF)")?;
    std::thread::sleep(Duration::from_millis(500));
    let sent = send(
        bench,
        &senders[&(direction, plane)],
        &frame,
        Duration::from_secs(3),
    );
    let pid = nix::unistd::Pid::from_raw(perf.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(20);
    while perf.try_wait()?.is_none() {
        if Instant::now() > deadline {
            perf.kill()?;
            perf.wait()?;
            bail!("perf record did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = sent?;
    let comm = std::fs::read_to_string("/proc/thread-self/comm")?;
    let out = netns::output(
        std::process::Command::new("perf")
            .args([
                "report",
                "-q",
                "--stdio",
                "--no-children",
                "--sort",
                "symbol",
            ])
            .args([
                "--percentage",
                "relative",
                "--percent-limit",
                "0.5",
                "--comms",
            ])
            .arg(format!("{},ksoftirqd/{cpu}", comm.trim()))
            .arg("-i")
            .arg(&data),
    )?;
    let symbols = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let share = fields.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            let _kind = fields.next()?;
            let symbol = fields.next()?;
            // BPF programs: bpf_prog_<tag>_<name> -> bpf_prog_<name>
            let symbol = match symbol.strip_prefix("bpf_prog_") {
                Some(rest) => format!("bpf_prog_{}", rest.split_once('_').map_or(rest, |r| r.1)),
                None => symbol.to_owned(),
            };
            Some((share, symbol))
        })
        .collect();
    Ok(Profile {
        direction,
        plane,
        ns_per_packet: sent.cpu.as_nanos() as f64 / sent.got[0].max(1) as f64,
        symbols,
    })
}

/// Prints ours and (a) side by side: ns per packet in each symbol.
fn print_profiles(profiles: &[Profile]) {
    for direction in [Direction::Decap, Direction::Encap] {
        let of = |plane| {
            profiles
                .iter()
                .find(|p| p.direction == direction && p.plane == plane)
        };
        let (Some(ours), Some(bare)) = (of(Plane::Ours), of(Plane::Bare)) else {
            continue;
        };
        println!();
        println!(
            "profile, {direction:?} 64 B (perf record, cpu-clock samples of the pipeline's CPU; CPU ns per packet by symbol, symbols >= 0.5%):"
        );
        println!(
            "  total: pptp-xdp {:.0} ns, (a) bare redirect {:.0} ns",
            ours.ns_per_packet, bare.ns_per_packet
        );
        println!(
            "  {:<40} {:>9} {:>9} {:>8}",
            "symbol", "pptp-xdp", "(a)", "extra"
        );
        let mut names: Vec<&String> = ours.symbols.iter().map(|(_, s)| s).collect();
        for (_, s) in &bare.symbols {
            if !names.contains(&s) {
                names.push(s);
            }
        }
        let ns = |p: &Profile, name: &str| {
            p.symbols
                .iter()
                .find(|(_, s)| s == name)
                .map_or(0.0, |(share, _)| share / 100.0 * p.ns_per_packet)
        };
        let mut rows: Vec<(String, f64, f64)> = names
            .into_iter()
            .map(|n| (n.clone(), ns(ours, n), ns(bare, n)))
            .collect();
        rows.sort_by(|x, y| (y.1 - y.2).total_cmp(&(x.1 - x.2)));
        for (name, o, b) in rows.iter().take(16) {
            println!("  {name:<40} {o:>6.1} ns {b:>6.1} ns {:>+6.1} ns", o - b);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-packet timings under BPF_PROG_TEST_RUN

struct Timing {
    what: String,
    median_ns: u64,
    verdict: u32,
}

/// Median duration of `calls` single runs of `program`, the frame of each call made
/// by `frame(n)`, `before(n)` run (untimed) before each call.
fn time_program(
    program: &Xdp,
    ctx: &[u8],
    calls: usize,
    mut frame: impl FnMut(usize) -> Vec<u8>,
    mut before: impl FnMut(usize) -> anyhow::Result<()>,
) -> anyhow::Result<(u64, u32)> {
    let mut durations = Vec::with_capacity(calls);
    let mut verdict = 0;
    let mut out = vec![0u8; 2048];
    for n in 0..calls {
        let data = frame(n);
        before(n)?;
        let mut ctx = ctx.to_vec();
        ctx[4..8].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&data);
        opts.data_out = Some(&mut out);
        opts.ctx_in = Some(&ctx);
        let result = program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
        durations.push(result.duration.as_nanos() as u64);
        verdict = result.return_value;
    }
    durations.sort_unstable();
    Ok((durations[durations.len() / 2], verdict))
}

/// Duration per run of `repeat` runs of `program` on one frame (the kernel does not
/// restore the frame between runs: each run sees what the previous one left).
fn time_repeat(program: &Xdp, ctx: &[u8], data: &[u8], repeat: u32) -> anyhow::Result<(u64, u32)> {
    let mut ctx = ctx.to_vec();
    ctx[4..8].copy_from_slice(&(data.len() as u32).to_ne_bytes());
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(data);
    opts.ctx_in = Some(&ctx);
    opts.repeat = repeat;
    let result = program.test_run(opts).context("BPF_PROG_TEST_RUN")?;
    Ok((result.duration.as_nanos() as u64, result.return_value))
}

/// Runs inside the "ours" concentrator namespace (the FIB lookups see its routes).
fn per_packet(
    bench: &Ebpf,
    bare_up: &Ebpf,
    pins: &PinDir,
    ours: &Chain,
    seq_base: u64,
) -> anyhow::Result<Vec<Timing>> {
    // The data plane's programs, loaded again with the same pinned maps.
    let mut programs = EbpfLoader::new()
        .default_map_pin_directory(pins.path())
        .load(BPF_OBJECT)?;
    for name in [maps::PROG_UPLINK, maps::PROG_LAN] {
        program_mut(&mut programs, name)?.load()?;
    }
    let mut hops: HashMap<MapData, [u8; 4], NextHop> = HashMap::try_from(Map::LruHashMap(
        MapData::from_pin(pins.object(maps::NEXT_HOPS))?,
    ))?;
    let uplink = nix::net::if_::if_nametoindex(link::UPLINK)?;
    let lan = nix::net::if_::if_nametoindex(link::LAN)?;
    let _ = ours;
    let ctx = |ifindex: u32| -> Vec<u8> {
        [0, 0, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|v: &u32| v.to_ne_bytes())
            .collect()
    };
    // Sequence numbers above anything the live rounds sent.
    let seq0 = seq_base + 1_000_000;
    let decap_frame = |n: usize| {
        let mut f = frame(Direction::Decap, Plane::Ours, n % SESSIONS, 64);
        let seq = (seq0 + n as u64) as u32;
        f[42..46].copy_from_slice(&seq.to_be_bytes());
        f
    };
    let encap_frame = |n: usize| frame(Direction::Encap, Plane::Ours, n % SESSIONS, 64);
    let nothing = |_| Ok(());
    let mut timings = Vec::new();
    let mut push = |what: &str, (median_ns, verdict): (u64, u32)| {
        timings.push(Timing {
            what: what.to_owned(),
            median_ns,
            verdict,
        })
    };

    let empty = program(bench, "bench_pass")?;
    let redirect = program(bare_up, "bench_redirect")?;
    let uplink_prog = program(&programs, maps::PROG_UPLINK)?;
    let lan_prog = program(&programs, maps::PROG_LAN)?;
    push(
        "empty program (XDP_PASS)",
        time_program(empty, &ctx(uplink), TIMING_CALLS, decap_frame, nothing)?,
    );
    push(
        "(a) bare redirect",
        time_program(redirect, &ctx(uplink), TIMING_CALLS, decap_frame, nothing)?,
    );
    push(
        "pptp_uplink decap, next hop cached",
        time_program(
            uplink_prog,
            &ctx(uplink),
            TIMING_CALLS,
            decap_frame,
            nothing,
        )?,
    );
    let seq1 = seq0 + TIMING_CALLS as u64;
    let decap_frame2 = |n: usize| {
        let mut f = frame(Direction::Decap, Plane::Ours, n % SESSIONS, 64);
        let seq = (seq1 + n as u64) as u32;
        f[42..46].copy_from_slice(&seq.to_be_bytes());
        f
    };
    let not_forced = std::cell::Cell::new(0usize);
    push(
        "pptp_uplink decap, bpf_fib_lookup every packet",
        time_program(uplink_prog, &ctx(uplink), TIMING_CALLS, decap_frame2, |n| {
            // The previous call must have looked the next hop up and cached it
            // again; if not, the program has another cache and this figure is not
            // what it says.
            let dst = addr::LAN_HOST.octets();
            if n > 0 && hops.get(&dst, 0).is_err() {
                not_forced.set(not_forced.get() + 1);
            }
            let _ = hops.remove(&dst);
            Ok(())
        })?,
    );
    push(
        "pptp_lan encap, next hop cached",
        time_program(lan_prog, &ctx(lan), TIMING_CALLS, encap_frame, nothing)?,
    );
    push(
        "pptp_lan encap, bpf_fib_lookup every packet",
        time_program(lan_prog, &ctx(lan), TIMING_CALLS, encap_frame, |n| {
            if n > 0
                && hops
                    .get(&session((n - 1) % SESSIONS).peer.octets(), 0)
                    .is_err()
            {
                not_forced.set(not_forced.get() + 1);
            }
            let _ = hops.remove(&session(n % SESSIONS).peer.octets());
            Ok(())
        })?,
    );
    if not_forced.get() > 0 {
        for t in timings
            .iter_mut()
            .filter(|t| t.what.contains("bpf_fib_lookup"))
        {
            t.what = format!("{} (NOT forced: NEXT_HOPS was not refilled)", t.what);
        }
    }
    // The same with repeat = 1e6 on one frame: warm caches, but only the first run
    // of a decap or encap sees the frame it was given.
    let counters = pins.object(maps::GLOBAL_COUNTERS);
    let decapsulated = || -> anyhow::Result<u64> {
        let c = pptp_agent::dataplane::counters::GlobalCounters::read_pinned(&counters)?;
        Ok(c.get("decapsulated").map_or(0, |c| c.packets))
    };
    let one = decap_frame2(TIMING_CALLS);
    let mut repeated = Vec::new();
    for (what, prog) in [
        ("empty program (XDP_PASS)", empty),
        ("(a) bare redirect", redirect),
        ("pptp_uplink on one decap frame", uplink_prog),
    ] {
        let before = decapsulated()?;
        let (ns, verdict) = time_repeat(prog, &ctx(uplink), &one, 1_000_000)?;
        let moved = decapsulated()? - before;
        repeated.push(Timing {
            what: format!("{what}, repeat=1e6 (decapsulated {moved} of 1e6)"),
            median_ns: ns,
            verdict,
        });
    }
    for t in &timings {
        let expected = if t.what.starts_with("empty") {
            XDP_PASS
        } else {
            XDP_REDIRECT
        };
        if t.verdict != expected {
            bail!(
                "per-packet timing of {}: verdict {} (expected {expected}): the measured path is not the one named",
                t.what,
                t.verdict
            );
        }
    }
    let _ = XDP_TX;
    timings.extend(repeated);
    Ok(timings)
}

// ---------------------------------------------------------------------------
// Report

#[allow(clippy::too_many_arguments)]
fn print_report(
    table: &[Case],
    timings: &[Timing],
    global: &pptp_agent::dataplane::counters::GlobalCounters,
    old_seq: u64,
    rx: u64,
    load_before: &str,
    load_after: &str,
) {
    println!();
    println!(
        "pptp-xdp XDP benchmark: {SESSIONS} sessions, medians of {ROUNDS} rounds, whole pipeline (generator, concentrator, sink) on one CPU;"
    );
    println!(
        "Mpps per core = packets at the sink / CPU time of the pipeline (the generator thread and its CPU's ksoftirqd)"
    );
    println!("load average before: {load_before}; after: {load_after}");
    println!();
    println!(
        "| case | pptp-xdp Mpps | (a) bare redirect Mpps | (b) kernel forwarding Mpps | vs (a) | goal | vs (b) | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for case in table {
        let (ours, a, b) = (
            case.median(Plane::Ours),
            case.median(Plane::Bare),
            case.median(Plane::Kernel),
        );
        let (goal_a, goal_b) = match case.direction {
            Direction::Decap => (0.8, 2.5),
            Direction::Encap => (0.7, 2.0),
        };
        let mark = |ratio: f64, goal: f64| {
            if ratio >= goal {
                format!(">= {goal} met")
            } else {
                format!(">= {goal} NOT met")
            }
        };
        println!(
            "| {} {} B inner | {ours:.2} | {a:.2} | {b:.2} | {:.2} | {} | {:.2} | {} |",
            match case.direction {
                Direction::Decap => "decap",
                Direction::Encap => "encap",
            },
            case.size,
            ours / a,
            mark(ours / a, goal_a),
            ours / b,
            mark(ours / b, goal_b)
        );
    }
    println!();
    println!("wall-clock Mpps (depends on what else the CPU runs):");
    for case in table {
        println!(
            "  {:?} {:>4} B: pptp-xdp {:.2}, (a) {:.2}, (b) {:.2}",
            case.direction,
            case.size,
            case.wall_median(Plane::Ours),
            case.wall_median(Plane::Bare),
            case.wall_median(Plane::Kernel)
        );
    }
    println!();
    println!(
        "CPU ns per packet in the pipeline (1000 / Mpps per core) and what pptp-xdp adds over (a):"
    );
    for case in table {
        let ns = |p| 1000.0 / case.median(p);
        println!(
            "  {:?} {:>4} B: pptp-xdp {:.0} ns, (a) {:.0} ns, (b) {:.0} ns; pptp-xdp - (a) = {:.0} ns",
            case.direction,
            case.size,
            ns(Plane::Ours),
            ns(Plane::Bare),
            ns(Plane::Kernel),
            ns(Plane::Ours) - ns(Plane::Bare)
        );
    }
    println!();
    println!(
        "what arrived at the sinks (last round: all / UDP / GRE / other; sent and delivered over all rounds):"
    );
    for case in table {
        for plane in Plane::ALL {
            let k = case.kinds[&plane];
            let (sent, got) = case.sent[&plane];
            println!(
                "  {:?} {:>4} B {:<27} {} / {} / {} / {}; delivered {:.1}% of {sent}",
                case.direction,
                case.size,
                plane.name(),
                k[0],
                k[1],
                k[2],
                k[3],
                100.0 * got as f64 / sent.max(1) as f64
            );
        }
    }
    let count = |name: &str| global.get(name).map_or(0, |c| c.packets);
    println!(
        "pptp-xdp counters: decapsulated {}, encapsulated {}, old_sequence {old_seq} (sessions' rx {rx}), no_next_hop {}, unknown_session {}, malformed {}",
        count("decapsulated"),
        count("encapsulated"),
        count("no_next_hop"),
        count("unknown_session"),
        count("malformed"),
    );
    println!();
    println!(
        "ns per packet under BPF_PROG_TEST_RUN (64 B inner, {TIMING_CALLS} calls of one run each, median; includes the test-run overhead the empty program shows):"
    );
    let empty = timings.first().map_or(0, |t| t.median_ns);
    for t in timings.iter().filter(|t| !t.what.contains("repeat=")) {
        println!(
            "  {:<48} {:>4} ns  ({:>+4} ns over empty)",
            t.what,
            t.median_ns,
            t.median_ns as i64 - empty as i64
        );
    }
    println!("  one frame, repeat=1e6 (warm caches; a decap's later runs see its own output):");
    for t in timings.iter().filter(|t| t.what.contains("repeat=")) {
        println!("    {:<70} {:>4} ns", t.what, t.median_ns);
    }
}
