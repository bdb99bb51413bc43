//! `cargo xtask bench` (`cargo bench -p pptp-tests --bench xdp`): packets per second
//! of the XDP data plane side by side with two baselines measured in the same run,
//! and nanoseconds per packet of each program under BPF_PROG_TEST_RUN.
//!
//! Topology ([`pptp_tests::bench_lab`]): three identical namespace chains
//! `wan end -- concentrator -- LAN end`, one per data plane:
//! - **ours**: the agent's [`XdpDataplane`] with [`installed`] fast sessions installed
//!   through its API, `pptp_uplink` on the uplink, `pptp_lan` on the LAN link;
//! - **(a) bare redirect**: an XDP program that redirects every frame, unparsed, to
//!   the other link (the limit of this machine);
//! - **(b) kernel forwarding**: no XDP at the concentrator; the generator sends the
//!   inner packets, plain IPv4, and the kernel routes them.
//!
//! The generator (`bench_gen` of the bench object) runs with BPF_PROG_TEST_RUN in
//! live-frames mode on the sending end (the wan end for decap, the LAN end for
//! encap) and sends every frame with `XDP_TX` into the concentrator; a per-CPU
//! counting `XDP_DROP` program (`bench_sink`) at the far end counts what arrives
//! (`sinks.rs`: one per end of every chain, each counting apart).
//! The generator rewrites the first 72 bytes of each frame from one template per
//! session, round robin over the sessions in trains of `PPTP_BENCH_BURST` frames per
//! session (1 by default: every frame hits another session, the worst case for the
//! caches; real traffic comes in trains), and gives enhanced GRE frames their
//! session's next sequence number: each session sees strictly increasing sequence
//! numbers and the uplink program's replay check drops nothing (the bench checks the
//! counters afterwards). The three
//! chains get byte-identical frames (same addresses and MAC addresses).
//!
//! Only frames of the kind a data plane must deliver count (decapsulated IPv4 at
//! the LAN end, enhanced GRE at the wan end; the bare redirect delivers what it was
//! given), and one frame of another kind fails the run; so does any frame of ours
//! counted as malformed, unknown or out of sequence, or more than 1% of them finding
//! no next hop (`live.rs`).
//!
//! Two measurements of each case:
//! - **the whole pipeline** on one CPU: the generator thread is pinned and veth
//!   processing runs in the sender's softirq on the sender's CPU; Mpps per core =
//!   packets delivered / CPU time of the generator thread and the CPU's ksoftirqd.
//!   Generator and sink are part of every plane's figure, which pulls the ratios
//!   towards 1;
//! - **the concentrator alone**: threaded NAPI on every veth (`napi.rs`), the
//!   concentrator's NAPI threads on the other CPU, the sinks' beside the generator;
//!   the CPU time of the concentrator's receiving device's thread per frame it took
//!   is what the data plane itself costs: ns per packet of ours, (a) and (b), and
//!   their ratios.
//!
//! Each round runs for [`ROUND`] (bounded in count too); rounds of the three data
//! planes interleave; the report gives medians of [`ROUNDS`] rounds and the ratios to
//! the baselines.
//!
//! Per packet: each program runs on fresh frames, one BPF_PROG_TEST_RUN call per
//! frame (repeat = 1: a repeated run would run the program on its own output), and
//! the median of the reported durations is given next to the empty program's. With
//! `NEXT_HOPS` emptied before every call, the decap and encap figures show what a
//! `bpf_fib_lookup` per packet would cost.
//!
//! Sessions: [`SESSIONS`] (500) by default, `PPTP_BENCH_SESSIONS` (up to
//! [`MAX_BENCH_SESSIONS`]) otherwise, over 60 peer addresses (several calls each, as
//! PACs carry many users' calls). The first 500 clients have addresses in the
//! documentation ranges, the rest in 198.18.0.0/16 ([`addr::client`]). Our call IDs
//! are spread over the 16-bit space ([`session`]), as the concentrator's random
//! allocator spreads them, not packed in one run of neighbouring map entries.
//!
//! Rate limits (`policed.rs`): the decap and encap cases again with a policer on
//! every session, against the same run's figures without.

mod frames;
mod live;
mod napi;
mod policed;
mod profile;
mod report;
mod sinks;
mod timing;

use std::{
    fs::File,
    net::Ipv4Addr,
    os::fd::AsFd as _,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData},
    programs::{Xdp, XdpMode},
};
use nix::sched::{CloneFlags, CpuSet, sched_setaffinity, setns};
use pptp_agent::{
    dataplane::{
        BENCH_OBJECT,
        bpffs::PinDir,
        xdp::{XdpDataplane, XdpOptions},
    },
    engine::kernel::{CallSpec, NetworkSpec, Slot},
};
use pptp_tests::{
    bench_lab::{self, BenchLab, addr, link},
    bpffs::TempBpffs,
    netns,
};

use live::{Mode, NapiThreads, Senders};
use sinks::Sinks;

/// Sessions installed (and templates the generator cycles through) unless
/// `PPTP_BENCH_SESSIONS` says otherwise (see [`sessions`]).
const SESSIONS: usize = 500;
/// Most sessions the bench installs (templates in `bench_gen`, `MAX_TEMPLATES` of
/// `pptp-ebpf/src/bench.rs`).
const MAX_BENCH_SESSIONS: usize = 60_000;
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
const XDP_REDIRECT: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct GenConfig {
    count: u32,
    gre_seq: u32,
    burst: u32,
    _pad: u32,
}
// SAFETY: repr(C), four u32, no padding.
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
    let sessions = sessions_from_env()?;
    INSTALLED.get_or_init(|| sessions);
    let burst = burst_from_env()?;
    BURST.get_or_init(|| burst);
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

    // The generator (and the empty program of the timings); the sinks.
    let mut bench = EbpfLoader::new()
        .load(BENCH_OBJECT)
        .context("loading the bench object")?;
    for name in ["bench_gen", "bench_pass"] {
        program_mut(&mut bench, name)?.load()?;
    }
    let sinks = Sinks::attach(&lab)?;

    // (a): one bare redirect per direction.
    let bare_up = bare_redirect(&bare.concentrator, link::UPLINK, link::LAN)?;
    let bare_lan = bare_redirect(&bare.concentrator, link::LAN, link::UPLINK)?;

    // Ours: the agent's data plane with `sessions` fast sessions.
    let pins = PinDir::new(bpffs.path(), "bench")?;
    let mut dataplane = XdpDataplane::load(pins.clone(), XdpOptions { drop_unknown: true })?;
    // A session's slot is its call ID, and neighbouring sessions' call IDs lie far
    // apart ([`session`]): the generator visits the sessions in order, and records
    // in order would let the CPU prefetch them, which real traffic does not allow.
    let mut slots = Vec::with_capacity(sessions);
    for i in 0..sessions {
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
    let senders: Senders = [ours.clone(), bare, kernel]
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
        "bench: {sessions} sessions installed, traffic in trains of {burst} frame(s) per session, {ROUNDS} rounds of {:.1} s per data plane and case",
        round.as_secs_f64()
    );
    let no_napi = NapiThreads::new();
    let mut table = Vec::new();
    for direction in [Direction::Decap, Direction::Encap] {
        for size in SIZES {
            table.push(live::measure_case(
                &mut bench,
                &sinks,
                &senders,
                &dataplane,
                (direction, size, Mode::Whole),
                &no_napi,
                round,
            )?);
        }
    }

    // With a policer on every session, in the same mode as the table above (before
    // threaded NAPI, and before the per-packet timings, which move the GRE windows
    // past the generator's sequence numbers).
    let mut policed =
        policed::measure_live(&mut bench, &sinks, &senders, &mut dataplane, &slots, round)?;

    let mut profiles = Vec::new();
    if std::env::var_os("PPTP_BENCH_PERF").is_some_and(|v| v != "0") {
        for direction in [Direction::Decap, Direction::Encap] {
            for plane in [Plane::Ours, Plane::Bare] {
                profiles.push(profile::profile(
                    &mut bench,
                    &sinks,
                    &senders,
                    direction,
                    plane,
                    &lab.run_dir(),
                )?);
            }
        }
    }

    // The concentrator alone: its NAPI threads on the other CPU.
    let napi = threaded_napi(&lab)?;
    eprintln!(
        "bench: the concentrators' NAPI threads on CPU {}",
        other_cpu()
    );
    let mut alone = Vec::new();
    for direction in [Direction::Decap, Direction::Encap] {
        for size in SIZES {
            alone.push(live::measure_case(
                &mut bench,
                &sinks,
                &senders,
                &dataplane,
                (direction, size, Mode::Concentrator),
                &napi,
                round,
            )?);
        }
    }

    // The per-packet timings continue every session's window from where it stands.
    let timings = in_ns(&ours.concentrator, || {
        timing::per_packet(&bench, &bare_up, &pins, &windows(&dataplane, &slots))
    })??;

    policed::measure_timings(
        &mut policed,
        &bench,
        &bare_up,
        &mut dataplane,
        &slots,
        &pins,
        &ours.concentrator,
    )?;

    let load_after = load_average();
    report::print(&table, &alone, &timings, &load_before, &load_after);
    policed::print(&table, &timings, &policed);
    profile::print(&profiles);
    eprintln!("bench: done in {:.0} s", started.elapsed().as_secs_f64());

    drop(dataplane);
    drop(bare_up);
    drop(bare_lan);
    drop(sinks);
    drop(bench);
    drop(bpffs);
    lab.down()
}

/// Threaded NAPI on both veths of every chain's concentrator, on [`other_cpu`], and
/// on both sinks, on the generator's CPU; returns the concentrators' threads by
/// plane.
fn threaded_napi(lab: &BenchLab) -> anyhow::Result<NapiThreads> {
    let mut threads = NapiThreads::new();
    for (chain, plane) in lab.chains().iter().zip(Plane::ALL) {
        let up = napi::threaded(&chain.concentrator, link::UPLINK, other_cpu())?;
        let lan = napi::threaded(&chain.concentrator, link::LAN, other_cpu())?;
        napi::threaded(&chain.wan, link::WAN, pinned_cpu())?;
        napi::threaded(&chain.lan, link::HOST, pinned_cpu())?;
        threads.insert(
            plane,
            live::Threaded {
                ns: chain.concentrator.clone(),
                uplink: up,
                lan,
            },
        );
    }
    Ok(threads)
}

/// The highest sequence number accepted so far on each session (by session index).
fn windows(dataplane: &XdpDataplane, slots: &[Slot]) -> Vec<u32> {
    slots
        .iter()
        .map(|slot| dataplane.table().highest_received(slot.0).unwrap_or(0))
        .collect()
}

/// One session's identifiers.
struct Session {
    peer: Ipv4Addr,
    call_id: u16,
    peer_call_id: u16,
    client: Ipv4Addr,
}

/// The number of sessions installed: set once by [`run`] from
/// `PPTP_BENCH_SESSIONS`.
static INSTALLED: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// `PPTP_BENCH_SESSIONS` (1 to [`MAX_BENCH_SESSIONS`]) or [`SESSIONS`].
fn sessions_from_env() -> anyhow::Result<usize> {
    let Some(value) = std::env::var_os("PPTP_BENCH_SESSIONS") else {
        return Ok(SESSIONS);
    };
    match value.to_str().and_then(|v| v.parse().ok()) {
        Some(n) if (1..=MAX_BENCH_SESSIONS).contains(&n) => Ok(n),
        _ => bail!(
            "PPTP_BENCH_SESSIONS={value:?}: the bench installs 1 to {MAX_BENCH_SESSIONS} sessions"
        ),
    }
}

/// The number of sessions installed.
fn installed() -> usize {
    *INSTALLED.get().unwrap_or(&SESSIONS)
}

/// Frames the generator sends per session in a row: set once by [`run`] from
/// `PPTP_BENCH_BURST` (1, the default, is the worst case: every frame another
/// session's; real traffic comes in trains, see `docs/benchmarks.md`).
static BURST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// `PPTP_BENCH_BURST` (1 to 1024) or 1.
fn burst_from_env() -> anyhow::Result<usize> {
    let Some(value) = std::env::var_os("PPTP_BENCH_BURST") else {
        return Ok(1);
    };
    match value.to_str().and_then(|v| v.parse().ok()) {
        Some(n) if (1..=1024).contains(&n) => Ok(n),
        _ => bail!("PPTP_BENCH_BURST={value:?}: 1 to 1024 frames per session in a row"),
    }
}

/// Frames per session in a row.
fn burst() -> usize {
    *BURST.get().unwrap_or(&1)
}

/// Session `i`: our call ID is `(i + 1) * 40503 mod 65536` (an odd multiplier: a
/// permutation of the 16-bit values that never gives 0 for `i < 65535`), so that
/// neighbouring sessions' IDs lie far apart.
fn session(i: usize) -> Session {
    Session {
        peer: addr::peer(i % addr::PEERS),
        call_id: ((i as u32 + 1).wrapping_mul(40_503) & 0xffff) as u16,
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

/// The CPU the concentrators' NAPI threads run on when measured alone.
fn other_cpu() -> usize {
    pinned_cpu().saturating_sub(1)
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
