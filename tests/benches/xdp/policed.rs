//! The price of the rate limits: the same decapsulation and encapsulation with a
//! policer installed on every session, measured in the same run as without.
//!
//! Two limits, high enough that nothing is dropped (the live rounds spread a few
//! Mpps over the installed sessions): a plain rate, and one with MikroTik bursts (the
//! sub-window bookkeeping of `pptp_common::police` on every packet). The live
//! figure is the whole pipeline's, 64 B inner, as in the main table; each is given
//! against (a), the bare redirect of the same rounds, so that the machine's drift
//! between the rounds with and without cancels; the ratio compares those. The
//! per-packet figures are BPF_PROG_TEST_RUN medians.

use pptp_agent::dataplane::{bpffs::PinDir, xdp::XdpDataplane};
use pptp_common::rate::RateLimit;

use crate::{
    Direction, Plane,
    live::{self, Case, Mode, NapiThreads, Senders},
    sinks::Sinks,
    timing::{self, Timing},
};

/// The limits measured (none is the main table's).
pub const LIMITS: [(&str, &str); 2] = [
    ("rate 100G", "100G"),
    ("rate 100G, bursts 200G/100G/16 s", "100G 200G 100G 16"),
];

/// The live cases and per-packet timings of one limit.
pub struct Policed {
    pub name: &'static str,
    pub live: Vec<Case>,
    pub timings: Vec<Timing>,
}

/// Puts `rate` on every session.
fn set_all(
    dataplane: &mut XdpDataplane,
    slots: &[pptp_agent::engine::kernel::Slot],
    rate: &RateLimit,
) -> anyhow::Result<()> {
    for slot in slots {
        dataplane.set_rate(*slot, rate)?;
    }
    Ok(())
}

/// Every limit of [`LIMITS`], measured live (64 B, whole pipeline); the sessions
/// have no limit again afterwards. Right after the main table, in its mode (before
/// threaded NAPI), and before any per-packet timing: those move the sessions' GRE
/// windows far ahead of the generator's sequence numbers.
pub fn measure_live(
    bench: &mut aya::Ebpf,
    sinks: &Sinks,
    senders: &Senders,
    dataplane: &mut XdpDataplane,
    slots: &[pptp_agent::engine::kernel::Slot],
    round: std::time::Duration,
) -> anyhow::Result<Vec<Policed>> {
    let no_napi = NapiThreads::new();
    let mut out = Vec::new();
    for (name, text) in LIMITS {
        set_all(dataplane, slots, &limit(text)?)?;
        let mut live = Vec::new();
        for direction in [Direction::Decap, Direction::Encap] {
            live.push(live::measure_case(
                bench,
                sinks,
                senders,
                dataplane,
                (direction, 64, Mode::Whole),
                &no_napi,
                round,
            )?);
        }
        check_nothing_policed(dataplane, slots, name)?;
        out.push(Policed {
            name,
            live,
            timings: Vec::new(),
        });
    }
    set_all(dataplane, slots, &RateLimit::default())?;
    Ok(out)
}

/// The per-packet timings of every limit, after the main ones; the sessions have no
/// limit afterwards.
#[allow(clippy::too_many_arguments)]
pub fn measure_timings(
    policed: &mut [Policed],
    bench: &aya::Ebpf,
    bare_up: &aya::Ebpf,
    dataplane: &mut XdpDataplane,
    slots: &[pptp_agent::engine::kernel::Slot],
    pins: &PinDir,
    ns: &str,
) -> anyhow::Result<()> {
    for p in policed.iter_mut() {
        let text = LIMITS.iter().find(|(n, _)| *n == p.name).map(|(_, t)| *t);
        set_all(dataplane, slots, &limit(text.unwrap_or_default())?)?;
        // Each timing run continues the windows where the last one left them.
        let windows = crate::windows(dataplane, slots);
        p.timings = crate::in_ns(ns, || timing::per_packet(bench, bare_up, pins, &windows))??;
        check_nothing_policed(dataplane, slots, p.name)?;
    }
    set_all(dataplane, slots, &RateLimit::default())
}

fn limit(text: &str) -> anyhow::Result<RateLimit> {
    RateLimit::parse(text).map_err(|e| anyhow::anyhow!("{text}: {e}"))
}

/// Fails if the limit dropped anything: it must be above what the bench sends.
fn check_nothing_policed(
    dataplane: &XdpDataplane,
    slots: &[pptp_agent::engine::kernel::Slot],
    name: &str,
) -> anyhow::Result<()> {
    let mut policed = 0;
    for slot in slots {
        let c = dataplane.session_counters(*slot)?;
        policed += c.drop_policed_rx + c.drop_policed_tx;
    }
    anyhow::ensure!(
        policed == 0,
        "{name}: {policed} packets policed: the limit is not above what the bench sends"
    );
    Ok(())
}

/// The report: Mpps per core with and without, each against (a), their ratio and
/// the goal (0.9); then ns per packet.
pub fn print(table: &[Case], timings: &[Timing], policed: &[Policed]) {
    println!();
    println!(
        "With a policer on every session (same run; 64 B inner, whole pipeline; each against (a) of its own rounds):"
    );
    println!("| case | limit | no limit: ours/(a) | limit: ours/(a) | limit vs none | goal |");
    println!("|---|---|---|---|---|---|");
    for p in policed {
        for case in &p.live {
            let Some(base) = table
                .iter()
                .find(|c| c.direction == case.direction && c.size == case.size)
            else {
                continue;
            };
            let without = base.median(Plane::Ours) / base.median(Plane::Bare);
            let with = case.median(Plane::Ours) / case.median(Plane::Bare);
            let ratio = with / without;
            println!(
                "| {:?} | {} | {without:.3} | {with:.3} | {ratio:.3} | >= 0.9 {} |",
                case.direction,
                p.name,
                if ratio >= 0.9 { "met" } else { "NOT met" }
            );
        }
    }
    println!("ns per packet under BPF_PROG_TEST_RUN, next hop cached (median), no limit / limit:");
    for p in policed {
        for what in [
            "pptp_uplink decap, next hop cached",
            "pptp_lan encap, next hop cached",
        ] {
            let ns = |list: &[Timing]| list.iter().find(|t| t.what == what).map(|t| t.median_ns);
            if let (Some(none), Some(with)) = (ns(timings), ns(&p.timings)) {
                println!(
                    "  {what:<40} {none:>4} / {with:>4} ns with {} ({:.2}x the packets per second)",
                    p.name,
                    none as f64 / with.max(1) as f64
                );
            }
        }
    }
}
