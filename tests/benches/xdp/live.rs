//! Live-frames rounds: the generator sends for a while and the sinks count what
//! arrives, by kind. Only frames of the kind the data plane must deliver count as
//! throughput, and a single frame of another kind fails the run; so do the data
//! plane's counters when a frame of ours is dropped as malformed, unknown or old, or
//! when more than 1% of them find no next hop.
//!
//! Two ways of measuring a round ([`Mode`]): the whole pipeline on one CPU (CPU time
//! of the generator thread and the CPU's ksoftirqd, which carries every veth's work),
//! and the concentrator alone (threaded NAPI: the concentrator's receiving device
//! has a kernel thread of its own on the other CPU, whose CPU time is exactly what
//! the concentrator spent, divided by the frames that thread took off its ring:
//! frames it could not pass on, when the far end's ring is full, cost it too).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun, TestRunAttrs, TestRunOptions},
};
use pptp_agent::dataplane::{counters::GlobalCounters, xdp::XdpDataplane};
use pptp_tests::{bench_lab::link, sample::median};

use crate::{
    BATCH, Direction, GenConfig, Plane, ROUNDS, TEMPLATE_LEN, burst,
    frames::frame,
    in_ns, installed, napi, pinned_cpu, program,
    sinks::{End, Sinks},
};

/// What a sink counts (`SINK_COUNTERS` of the bench object).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Udp = 1,
    Gre = 2,
    Other = 3,
}

/// Counts by kind: all, UDP, GRE, other.
pub type Kinds = [u64; 4];

impl Kind {
    /// What plane `plane` must deliver in `direction`: decapsulated IPv4 (UDP) or
    /// enhanced GRE; the bare redirect delivers what it is given.
    pub fn expected(direction: Direction, plane: Plane) -> Kind {
        match (direction, plane) {
            (Direction::Decap, Plane::Bare) | (Direction::Encap, Plane::Ours) => Kind::Gre,
            _ => Kind::Udp,
        }
    }
}

/// How a round is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Everything on the pinned CPU; figures are Mpps per core of the pipeline.
    Whole,
    /// The concentrator's NAPI threads on the other CPU; figures are the
    /// concentrator's CPU ns per delivered packet.
    Concentrator,
}

/// A chain's concentrator with threaded NAPI.
pub struct Threaded {
    /// Its namespace.
    pub ns: String,
    /// The NAPI threads of its uplink and its LAN link.
    pub uplink: u32,
    pub lan: u32,
}

/// The concentrators with threaded NAPI, by plane.
pub type NapiThreads = BTreeMap<Plane, Threaded>;

pub struct Case {
    pub direction: Direction,
    pub size: usize,
    pub mode: Mode,
    /// The figure of every round, by plane (see [`Mode`]).
    pub rounds: BTreeMap<Plane, Vec<f64>>,
    /// Million delivered packets per wall-clock second of every round, by plane.
    pub wall_mpps: BTreeMap<Plane, Vec<f64>>,
    /// What arrived at the sinks in the last round, by plane.
    pub kinds: BTreeMap<Plane, Kinds>,
    /// Frames sent and delivered over all rounds, by plane.
    pub sent: BTreeMap<Plane, (u64, u64)>,
    /// How ours' counters moved over the case (warm-up included).
    pub counters: Moved,
}

impl Case {
    pub fn median(&self, plane: Plane) -> f64 {
        median(self.rounds[&plane].iter().copied())
    }
    pub fn wall_median(&self, plane: Plane) -> f64 {
        median(self.wall_mpps[&plane].iter().copied())
    }
}

/// The counters of ours that the checks read, as moved over a case.
#[derive(Default, Debug, Clone, Copy)]
pub struct Moved {
    pub decapsulated: u64,
    pub encapsulated: u64,
    pub no_next_hop: u64,
    pub old_sequence: u64,
    pub unknown_session: u64,
    pub malformed: u64,
}

impl Moved {
    fn between(before: &GlobalCounters, after: &GlobalCounters) -> Self {
        let d = |name: &str| {
            let get = |c: &GlobalCounters| c.get(name).map_or(0, |c| c.packets);
            get(after).saturating_sub(get(before))
        };
        Self {
            decapsulated: d("decapsulated"),
            encapsulated: d("encapsulated"),
            no_next_hop: d("no_next_hop"),
            old_sequence: d("old_sequence"),
            unknown_session: d("unknown_session"),
            malformed: d("malformed"),
        }
    }

    /// Fails when a frame of ours was dropped as old, unknown or malformed, or when
    /// more than 1% found no next hop.
    fn check(&self, what: &str) -> anyhow::Result<()> {
        ensure!(
            self.old_sequence == 0 && self.unknown_session == 0 && self.malformed == 0,
            "{what}: pptp-xdp dropped frames the generator sent correctly: {self:?}"
        );
        let forwarded = self.decapsulated + self.encapsulated + self.no_next_hop;
        ensure!(
            self.no_next_hop * 100 <= forwarded,
            "{what}: {} of {forwarded} frames found no next hop (over 1%)",
            self.no_next_hop
        );
        Ok(())
    }
}

pub fn set_templates(
    bench: &mut Ebpf,
    direction: Direction,
    plane: Plane,
    size: usize,
) -> anyhow::Result<Vec<u8>> {
    let mut templates: Array<&mut MapData, [u64; TEMPLATE_LEN / 8]> =
        Array::try_from(bench.map_mut("GEN_TEMPLATES").context("no GEN_TEMPLATES")?)?;
    for i in 0..installed() {
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
            count: installed() as u32,
            gre_seq: gre_seq.into(),
            burst: burst() as u32,
            _pad: 0,
        },
        0,
    )?;
    Ok(frame(direction, plane, 0, size))
}

/// What one sending round measured.
pub struct Sent {
    /// Frames the generator sent.
    pub sent: u64,
    /// Frames counted by the sink at the far end, by kind.
    pub got: Kinds,
    /// Frames that came back to the sending end (none should).
    pub back: Kinds,
    /// Wall-clock time.
    pub wall: Duration,
    /// CPU time of the pipeline: the generator thread (veth processing runs in its
    /// softirq, charged to it: no IRQ time accounting here) plus the pinned CPU's
    /// ksoftirqd, for softirq work deferred to it.
    pub cpu: Duration,
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

/// Sends `plane`'s frames in `direction` for `duration` (and at most 4,000 calls).
pub fn send(
    bench: &Ebpf,
    sinks: &Sinks,
    (direction, plane): (Direction, Plane),
    sender: &(String, u32),
    frame: &[u8],
    duration: Duration,
) -> anyhow::Result<Sent> {
    let generator = program(bench, "bench_gen")?;
    let (ns, ifindex) = sender;
    let (far, near) = (End::far(direction), End::near(direction));
    // xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let ctx: Vec<u8> = [0, frame.len() as u32, 0, *ifindex, 0, 0]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect();
    let cpu = pinned_cpu();
    let before = (sinks.counts(plane, far)?, sinks.counts(plane, near)?);
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
    // Frames still queued in the receivers' rings reach the sinks before the round
    // is counted (they would otherwise land in the next round, maybe another plane's).
    let after = drained(|| Ok((sinks.counts(plane, far)?, sinks.counts(plane, near)?)))?;
    let soft = ksoftirqd_time(cpu).saturating_sub(soft_before);
    let delta = |a: Kinds, b: Kinds| std::array::from_fn(|i| a[i] - b[i]);
    Ok(Sent {
        sent,
        got: delta(after.0, before.0),
        back: delta(after.1, before.1),
        wall,
        cpu: thread_cpu + soft,
    })
}

/// The sinks' counts once they have stopped moving (six reads 10 ms apart agree;
/// at most [`DRAIN_LIMIT`]).
fn drained<T: PartialEq>(mut counts: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut last = counts()?;
    let mut steady = 0;
    while steady < 6 {
        ensure!(
            started.elapsed() < DRAIN_LIMIT,
            "frames kept arriving at the sinks {DRAIN_LIMIT:?} after the generator stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
        let now = counts()?;
        steady = if now == last { steady + 1 } else { 0 };
        last = now;
    }
    Ok(last)
}

/// How long frames may keep arriving after the generator stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Fails if anything but `expected` arrived at the far end or, unless `warm_up`
/// (frames of the previous case may still land there), anything came back.
fn check_kinds(what: &str, expected: Kind, sent: &Sent, warm_up: bool) -> anyhow::Result<()> {
    let got = &sent.got;
    let wrong = got[0] - got[expected as usize];
    if wrong > 0 {
        bail!(
            "{what}: {wrong} frames of the wrong kind arrived (expected {expected:?}; all {} / UDP {} / GRE {} / other {})",
            got[0],
            got[Kind::Udp as usize],
            got[Kind::Gre as usize],
            got[Kind::Other as usize]
        );
    }
    if !warm_up && sent.back[0] > 0 {
        bail!(
            "{what}: {} frames came back to the sending end (UDP {} / GRE {} / other {})",
            sent.back[0],
            sent.back[Kind::Udp as usize],
            sent.back[Kind::Gre as usize],
            sent.back[Kind::Other as usize]
        );
    }
    Ok(())
}

/// Where each plane's generator sends from, for each direction: (namespace, ifindex).
pub type Senders = BTreeMap<(Direction, Plane), (String, u32)>;

/// [`ROUNDS`] rounds of every plane, interleaved, after a warm-up; in
/// [`Mode::Concentrator`], `napi` names the threads whose CPU time counts.
pub fn measure_case(
    bench: &mut Ebpf,
    sinks: &Sinks,
    senders: &Senders,
    dataplane: &XdpDataplane,
    (direction, size, mode): (Direction, usize, Mode),
    napi: &NapiThreads,
    round: Duration,
) -> anyhow::Result<Case> {
    let mut case = Case {
        direction,
        size,
        mode,
        rounds: BTreeMap::new(),
        wall_mpps: BTreeMap::new(),
        kinds: BTreeMap::new(),
        sent: BTreeMap::new(),
        counters: Moved::default(),
    };
    let counters_before = dataplane.global_counters()?;
    // Warm-up: next hops, neighbour entries, page pools.
    for plane in Plane::ALL {
        let f = set_templates(bench, direction, plane, size)?;
        let warm = send(
            bench,
            sinks,
            (direction, plane),
            &senders[&(direction, plane)],
            &f,
            Duration::from_millis(200),
        )?;
        let what = format!("{direction:?} {size} B warm-up, {}", plane.name());
        check_kinds(&what, Kind::expected(direction, plane), &warm, true)?;
    }
    for r in 0..ROUNDS {
        for plane in Plane::ALL {
            let expected = Kind::expected(direction, plane);
            let f = set_templates(bench, direction, plane, size)?;
            // The concentrator's receiving device: its thread and its frame count.
            let receiving = napi.get(&plane).map(|t| match direction {
                Direction::Decap => (t.ns.as_str(), link::UPLINK, t.uplink),
                Direction::Encap => (t.ns.as_str(), link::LAN, t.lan),
            });
            let napi_before = receiving
                .map(|(ns, dev, thread)| {
                    anyhow::Ok((napi::cpu_time(thread)?, napi::handled(ns, dev)?))
                })
                .transpose()?;
            let measured = send(
                bench,
                sinks,
                (direction, plane),
                &senders[&(direction, plane)],
                &f,
                round,
            )?;
            let what = format!("{direction:?} {size} B round {r}, {}", plane.name());
            check_kinds(&what, expected, &measured, false)?;
            let Sent {
                sent,
                got,
                wall,
                cpu,
                ..
            } = measured;
            let delivered = got[expected as usize];
            let wall_mpps = delivered as f64 / wall.as_secs_f64() / 1e6;
            let figure = match (mode, receiving, napi_before) {
                (Mode::Whole, _, _) => {
                    let mpps = delivered as f64 / cpu.as_secs_f64().max(1e-3) / 1e6;
                    eprintln!(
                        "  {what}: {mpps:6.2} Mpps per core, {wall_mpps:6.2} Mpps wall ({:.0}% of the CPU; {delivered} of {sent} frames arrived)",
                        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
                    );
                    mpps
                }
                (Mode::Concentrator, Some((ns, dev, thread)), Some((cpu_before, before))) => {
                    let spent = napi::cpu_time(thread)? - cpu_before;
                    let handled = napi::handled(ns, dev)? - before;
                    let per_packet = spent.as_nanos() as f64 / handled.max(1) as f64;
                    eprintln!(
                        "  {what}: concentrator {per_packet:6.0} ns per packet ({:.0}% of its CPU; it took {handled} frames, {delivered} of them arrived, of {sent} sent)",
                        100.0 * spent.as_secs_f64() / wall.as_secs_f64(),
                    );
                    per_packet
                }
                (Mode::Concentrator, ..) => bail!("no NAPI thread for {}", plane.name()),
            };
            case.rounds.entry(plane).or_default().push(figure);
            case.wall_mpps.entry(plane).or_default().push(wall_mpps);
            case.kinds.insert(plane, got);
            let total = case.sent.entry(plane).or_default();
            total.0 += sent;
            total.1 += delivered;
        }
    }
    case.counters = Moved::between(&counters_before, &dataplane.global_counters()?);
    case.counters
        .check(&format!("{direction:?} {size} B ({mode:?})"))?;
    Ok(case)
}
