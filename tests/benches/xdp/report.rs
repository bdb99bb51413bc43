//! The printed report: the whole pipeline's Mpps per core with the ratios and goals,
//! the concentrator's own ns per packet with its ratios, what arrived at the sinks,
//! how ours' counters moved, and the per-packet timings.

use crate::{
    Direction, Plane, ROUNDS, TIMING_CALLS, burst, installed,
    live::{Case, Kind},
    timing::Timing,
};

fn case_name(case: &Case) -> String {
    let direction = match case.direction {
        Direction::Decap => "decap",
        Direction::Encap => "encap",
    };
    format!("{direction} {} B inner", case.size)
}

pub fn print(
    table: &[Case],
    alone: &[Case],
    timings: &[Timing],
    load_before: &str,
    load_after: &str,
) {
    println!();
    println!(
        "pptp-xdp XDP benchmark: {} sessions, traffic in trains of {} frame(s) per session, medians of {ROUNDS} rounds; only frames of the kind each plane must deliver count",
        installed(),
        burst()
    );
    println!("load average before: {load_before}; after: {load_after}");
    println!();
    println!(
        "Whole pipeline (generator, concentrator, sink) on one CPU: Mpps per core = packets at the sink / CPU time of the pipeline (the generator thread and its CPU's ksoftirqd)"
    );
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
            "| {} | {ours:.2} | {a:.2} | {b:.2} | {:.2} | {} | {:.2} | {} |",
            case_name(case),
            ours / a,
            mark(ours / a, goal_a),
            ours / b,
            mark(ours / b, goal_b)
        );
    }
    println!();
    println!(
        "The concentrator alone (threaded NAPI, its threads on the other CPU from the generator): CPU ns of the concentrator's receiving device per frame it took off its ring; vs = the baseline's ns / pptp-xdp's ns (packets per CPU-second relative to the baseline)"
    );
    println!(
        "| case | pptp-xdp ns | (a) bare redirect ns | (b) kernel forwarding ns | pptp-xdp - (a) | vs (a) | vs (b) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for case in alone {
        let (ours, a, b) = (
            case.median(Plane::Ours),
            case.median(Plane::Bare),
            case.median(Plane::Kernel),
        );
        println!(
            "| {} | {ours:.0} | {a:.0} | {b:.0} | {:+.0} | {:.2} | {:.2} |",
            case_name(case),
            ours - a,
            a / ours,
            b / ours
        );
    }
    println!();
    println!(
        "wall-clock Mpps (depends on what else the CPUs run): whole pipeline / concentrator alone"
    );
    for (whole, split) in table.iter().zip(alone) {
        let wall = |c: &Case, p| c.wall_median(p);
        println!(
            "  {}: pptp-xdp {:.2} / {:.2}, (a) {:.2} / {:.2}, (b) {:.2} / {:.2}",
            case_name(whole),
            wall(whole, Plane::Ours),
            wall(split, Plane::Ours),
            wall(whole, Plane::Bare),
            wall(split, Plane::Bare),
            wall(whole, Plane::Kernel),
            wall(split, Plane::Kernel),
        );
    }
    println!();
    println!(
        "what arrived at the sinks (last round: all / UDP / GRE / other; expected kind delivered over all rounds, of frames sent):"
    );
    for case in table.iter().chain(alone) {
        for plane in Plane::ALL {
            let k = case.kinds[&plane];
            let (sent, got) = case.sent[&plane];
            println!(
                "  {} ({:?}) {:<27} {} / {} / {} / {}; {:?} delivered {:.1}% of {sent}",
                case_name(case),
                case.mode,
                plane.name(),
                k[0],
                k[Kind::Udp as usize],
                k[Kind::Gre as usize],
                k[Kind::Other as usize],
                Kind::expected(case.direction, plane),
                100.0 * got as f64 / sent.max(1) as f64
            );
        }
    }
    println!(
        "pptp-xdp counters moved per case (checked: no old_sequence, unknown_session or malformed; no_next_hop under 1%):"
    );
    for case in table.iter().chain(alone) {
        let c = case.counters;
        println!(
            "  {} ({:?}): decapsulated {}, encapsulated {}, no_next_hop {}, old_sequence {}, unknown_session {}, malformed {}",
            case_name(case),
            case.mode,
            c.decapsulated,
            c.encapsulated,
            c.no_next_hop,
            c.old_sequence,
            c.unknown_session,
            c.malformed
        );
    }
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
