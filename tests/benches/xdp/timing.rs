//! Per-packet timings of each program under BPF_PROG_TEST_RUN.

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData},
    programs::{TestRun, TestRunOptions, Xdp},
};
use pptp_agent::dataplane::{BPF_OBJECT, bpffs::PinDir};
use pptp_common::{maps, session::NextHop};
use pptp_tests::bench_lab::{addr, link};

use crate::{
    Direction, Plane, TIMING_CALLS, XDP_PASS, XDP_REDIRECT, frames::frame, installed, program,
    program_mut, session,
};

/// One program's timing: the median duration and the verdict it returned.
pub struct Timing {
    pub what: String,
    pub median_ns: u64,
    pub verdict: u32,
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
/// `windows`: the highest sequence number each session has accepted; every decap
/// frame carries its session's next one (one frame per session per round robin, so
/// with 50,000 sessions and [`TIMING_CALLS`] calls each session sees one or two:
/// a jump past the window would be dropped, `pptp_common::seq`).
pub fn per_packet(
    bench: &Ebpf,
    bare_up: &Ebpf,
    pins: &PinDir,
    windows: &[u32],
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
    let ctx = |ifindex: u32| -> Vec<u8> {
        [0, 0, 0, ifindex, 0, 0]
            .iter()
            .flat_map(|v: &u32| v.to_ne_bytes())
            .collect()
    };
    // Frame `n` of the `round`th run over the sessions: its session's next number.
    let per_session = TIMING_CALLS.div_ceil(installed()) + 1;
    let decap_at = |round: usize, n: usize| {
        let i = n % installed();
        let mut f = frame(Direction::Decap, Plane::Ours, i, 64);
        let seq = windows[i].wrapping_add(1 + (round * per_session + n / installed()) as u32);
        f[42..46].copy_from_slice(&seq.to_be_bytes());
        f
    };
    let decap_frame = |n: usize| decap_at(0, n);
    let encap_frame = |n: usize| frame(Direction::Encap, Plane::Ours, n % installed(), 64);
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
    let decap_frame2 = |n: usize| decap_at(1, n);
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
                    .get(&session((n - 1) % installed()).peer.octets(), 0)
                    .is_err()
            {
                not_forced.set(not_forced.get() + 1);
            }
            let _ = hops.remove(&session(n % installed()).peer.octets());
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
    timings.extend(repeated);
    Ok(timings)
}
