//! `pptp-agent capture SESSION [-w FILE]`: a pcap of one session's inner IPv4
//! packets, both directions (there is no `pppN` device to run tcpdump on). The
//! running agent says which path the session takes (`stats`). On the data plane's,
//! `pptp_agent::dataplane::capture` arms the XDP and TC programs for the session's
//! slot and reads their ring buffer; on the agent's (MPPE, fallback, no XDP) the
//! agent itself streams the packets over the API socket
//! (`pptp_agent::api::client::CaptureStream`). Both give the same records. The file
//! is classic pcap, link type raw IPv4, which tshark and tcpdump read; without `-w`
//! it goes to standard output (`| tshark -r -`).
//!
//! Stops on Ctrl-C or SIGTERM, after `--count` packets or `--seconds`, or when the
//! session ends.

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
    api::{
        Request,
        client::{self, CaptureStream, Captured},
    },
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
/// How long the loop waits for the agent's stream before it looks at the signals,
/// `--seconds` and `--count` again.
const STREAM_WAIT: Duration = Duration::from_millis(100);

/// Where the packets come from.
enum Source {
    /// The XDP programs' ring buffer, for the session in this slot.
    Maps(Box<Capture>, u32),
    /// The agent's stream.
    Agent(CaptureStream),
}

pub fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let socket = args.api.socket(&args.pins.instance);
    let path = path_of(&socket, args.session)?;
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
    let mut source = match path {
        Some(slot) => Source::Maps(Box::new(Capture::start(&args.pins.pin_dir()?, slot)?), slot),
        None => Source::Agent(CaptureStream::start(
            &socket,
            args.session,
            Duration::from_secs(10),
        )?),
    };
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
        let next = match &mut source {
            Source::Maps(capture, slot) => {
                if last_check.elapsed() >= CHECK_EVERY {
                    last_check = Instant::now();
                    if !capture.armed() || path_of(&socket, args.session).ok() != Some(Some(*slot))
                    {
                        break "the session ended";
                    }
                }
                match capture.next_record() {
                    Some((header, data)) => Captured::Record(header, data),
                    None => {
                        out.flush()?;
                        std::thread::sleep(IDLE);
                        Captured::Idle
                    }
                }
            }
            Source::Agent(stream) => match stream
                .next_record(STREAM_WAIT)
                .context("reading the agent's capture")?
            {
                Captured::Idle => {
                    out.flush()?;
                    Captured::Idle
                }
                next => next,
            },
        };
        match next {
            Captured::Record(header, data) => {
                out.write_all(&pcap_record(&header, &data, boot))?;
                packets += 1;
            }
            Captured::Idle => {}
            Captured::Ended => break "the session ended",
        }
    };
    out.flush()?;
    drop(source);
    eprintln!(
        "capture of session {}: {packets} packets ({why})",
        args.session
    );
    Ok(())
}

/// The slot of session `id` in the running agent's maps; `None` if the session is
/// on the agent's path.
fn path_of(socket: &std::path::Path, id: u64) -> anyhow::Result<Option<u32>> {
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
        return Ok(None);
    }
    session["dataplane"]["slot"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .map(Some)
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
