//! `pptp-agent capture SESSION [-w FILE]`: a pcap of one session's inner IPv4
//! packets, both directions, straight from the XDP and TC programs (there is no
//! `pppN` device to run tcpdump on). The running agent names the session's slot
//! (`stats`); `pptp_agent::dataplane::capture` arms the programs for that slot and
//! reads their ring buffer. The file is classic pcap, link type raw IPv4, which
//! tshark and tcpdump read; without `-w` it goes to standard output (`| tshark -r -`).
//!
//! Stops on Ctrl-C or SIGTERM, after `--count` packets or `--seconds`, or when the
//! session ends. Only packets the data plane forwards are seen: a session on the
//! agent's path (MPPE) is refused.

use std::{
    io::Write,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use clap::Args;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use pptp_agent::{
    api::{Request, client},
    dataplane::capture::Capture,
};
use pptp_common::capture::{RecordHeader, SNAPLEN};

use super::agent::{ApiArgs, PinArgs};

#[derive(Args, Debug)]
pub struct CaptureArgs {
    /// The session's id, as `pptp-agent sessions` shows it.
    session: u64,
    /// Write the pcap to FILE instead of standard output.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
    /// Stop after N packets.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Stop after SECONDS.
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    #[command(flatten)]
    pins: PinArgs,
    #[command(flatten)]
    api: ApiArgs,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::Relaxed);
}

/// How often the agent is asked whether the session is still there.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long the loop sleeps when the ring buffer is empty.
const IDLE: Duration = Duration::from_millis(5);

pub fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let socket = args.api.socket(&args.pins.instance);
    let slot = slot_of(&socket, args.session)?;
    let handler = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { sigaction(signal, &handler) }.context("installing a signal handler")?;
    }
    let mut out: Box<dyn Write> = match &args.write {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    out.write_all(&pcap_header())?;
    out.flush()?;
    let mut capture = Capture::start(&args.pins.pin_dir()?, slot)?;
    let boot = wall_clock_at_boot();
    let started = Instant::now();
    let mut last_check = Instant::now();
    let mut packets = 0u64;
    let why = loop {
        if STOP.load(Ordering::Relaxed) {
            break "stopped";
        }
        if args.count.is_some_and(|n| packets >= n) {
            break "count reached";
        }
        if args
            .seconds
            .is_some_and(|s| started.elapsed().as_secs_f64() >= s)
        {
            break "time is up";
        }
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            if !capture.armed() || slot_of(&socket, args.session).ok() != Some(slot) {
                break "the session ended";
            }
        }
        match capture.next_record() {
            Some((header, data)) => {
                out.write_all(&pcap_record(&header, &data, boot))?;
                packets += 1;
            }
            None => {
                out.flush()?;
                std::thread::sleep(IDLE);
            }
        }
    };
    out.flush()?;
    drop(capture);
    eprintln!(
        "capture of session {}: {packets} packets ({why})",
        args.session
    );
    Ok(())
}

/// The slot of session `id` in the running agent's maps.
fn slot_of(socket: &std::path::Path, id: u64) -> anyhow::Result<u32> {
    let stats = client::call(
        socket,
        &Request::Stats(Default::default()),
        Duration::from_secs(10),
    )?;
    let sessions = stats["sessions"].as_array().cloned().unwrap_or_default();
    let Some(session) = sessions.iter().find(|s| s["id"].as_u64() == Some(id)) else {
        bail!("the agent has no session {id} (see `pptp-agent sessions`)");
    };
    if session["path"] != "xdp" {
        bail!(
            "session {id} is on the agent's path ({}): its packets do not cross the XDP programs, so there is nothing to capture",
            session["mppe"]
                .as_str()
                .map_or("fallback".to_owned(), |m| format!("MPPE {m}"))
        );
    }
    session["dataplane"]["slot"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .with_context(|| format!("session {id} is not in the XDP maps"))
}

/// Classic pcap, microsecond timestamps, link type 101 (raw IP).
fn pcap_header() -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
    h.extend_from_slice(&101u32.to_le_bytes());
    h
}

fn pcap_record(header: &RecordHeader, data: &[u8], boot: Duration) -> Vec<u8> {
    let at = boot + Duration::from_nanos(header.time_ns);
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(&(at.as_secs() as u32).to_le_bytes());
    r.extend_from_slice(&at.subsec_micros().to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&header.len.to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// The wall-clock time of CLOCK_MONOTONIC's zero (the programs' timestamps are
/// `bpf_ktime_get_ns`, on that clock).
fn wall_clock_at_boot() -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let monotonic = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    now.saturating_sub(monotonic)
}
