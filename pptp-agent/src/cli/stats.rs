//! `pptp-agent stats`: from the running agent's API (sessions with users, uptime and
//! MPPE, the agent path's drops, the XDP counters), or from the pinned maps when no
//! agent answers (said in the output); once, or redrawn with `--watch`.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::Args;
use pptp_agent::{
    api::{
        Request,
        client::{self, ClientError},
        view::{StatsView, render_stats},
    },
    dataplane::report::Report,
};
use serde_json::{Value, json};

use super::{
    agent::{ApiArgs, PinArgs},
    sessions::QueryArgs,
};

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print JSON instead of tables (with --watch, one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Redraw every SECONDS (2 if not given) until Ctrl-C.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2", value_parser = parse_interval)]
    watch: Option<f64>,
    /// With --watch: stop after N frames.
    #[arg(long, value_name = "N", requires = "watch")]
    count: Option<u64>,
    /// The sessions listed (the totals count every session).
    #[command(flatten)]
    query: QueryArgs,
    #[command(flatten)]
    pins: PinArgs,
    #[command(flatten)]
    api: ApiArgs,
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{s}: {e}"))?;
    if !(0.1..=86_400.0).contains(&secs) {
        return Err("the interval must lie between 0.1 and 86400 seconds".into());
    }
    Ok(secs)
}

/// One snapshot: the agent's answer, or the maps' with the reason the agent did not
/// answer.
enum Snapshot {
    Agent(Value),
    Maps { report: Report, why: ClientError },
}

fn snapshot(args: &StatsArgs) -> anyhow::Result<Snapshot> {
    let socket = args.api.socket(&args.pins.instance);
    match client::call(
        &socket,
        &Request::Stats(args.query.query()),
        Duration::from_secs(10),
    ) {
        Ok(value) => Ok(Snapshot::Agent(value)),
        Err(why) => match Report::read(&args.pins.pin_dir()?) {
            Ok(report) => Ok(Snapshot::Maps { report, why }),
            Err(e) => Err(anyhow::anyhow!(
                "{why}\nand the pinned maps cannot be read either: {e:#}"
            )),
        },
    }
}

fn render(args: &StatsArgs, snapshot: Snapshot) -> anyhow::Result<String> {
    let socket = args.api.socket(&args.pins.instance);
    Ok(match (snapshot, args.json) {
        (Snapshot::Agent(mut value), true) => {
            if let Value::Object(fields) = &mut value {
                fields.insert("source".into(), json!("agent"));
                fields.insert("socket".into(), json!(socket));
            }
            to_json(args, &value)?
        }
        (Snapshot::Agent(value), false) => {
            let view: StatsView = serde_json::from_value(value)?;
            format!(
                "source: agent ({})\n{}",
                socket.display(),
                render_stats(&view)
            )
        }
        (Snapshot::Maps { report, why }, true) => {
            let mut value = serde_json::to_value(&report)?;
            if let Value::Object(fields) = &mut value {
                fields.insert("source".into(), json!("maps"));
                fields.insert("agent_error".into(), json!(why.to_string()));
            }
            to_json(args, &value)?
        }
        (Snapshot::Maps { report, why }, false) => format!(
            "source: pinned maps only (no users, uptime, MPPE or agent-path drops): {why}\n\n{}",
            report.render()
        ),
    })
}

fn to_json(args: &StatsArgs, value: &Value) -> anyhow::Result<String> {
    Ok(if args.watch.is_some() {
        format!("{value}\n")
    } else {
        format!("{}\n", serde_json::to_string_pretty(value)?)
    })
}

/// `HH:MM:SS UTC` now.
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02} UTC",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let Some(interval) = args.watch else {
        print!("{}", render(&args, snapshot(&args)?)?);
        return Ok(());
    };
    // Bounded by --count, or by Ctrl-C (SIGINT's default action ends the process;
    // nothing here changes the terminal's modes).
    let clear = std::io::stdout().is_terminal() && !args.json;
    let mut frame = 0u64;
    loop {
        frame += 1;
        let body = snapshot(&args)
            .and_then(|s| render(&args, s))
            .unwrap_or_else(|e| format!("error: {e:#}\n"));
        let mut out = String::new();
        if clear {
            out.push_str("\x1b[H\x1b[2J");
        }
        if !args.json {
            out.push_str(&format!(
                "Every {interval}s: pptp-agent stats (instance {}), frame {frame}, {}\n\n",
                args.pins.instance,
                clock()
            ));
        }
        out.push_str(&body);
        if !clear && !args.json {
            out.push('\n');
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        drop(stdout);
        if args.count.is_some_and(|n| frame >= n) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs_f64(interval));
    }
}
