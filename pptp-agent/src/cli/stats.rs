//! `pptp-agent stats`.

use clap::Args;
use pptp_agent::dataplane::counters::GlobalCounters;
use pptp_common::maps::GLOBAL_COUNTERS;

use super::PinArgs;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pins: PinArgs,
}

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let pins = args.pins.pin_dir()?;
    let counters = GlobalCounters::read_pinned(&pins.object(GLOBAL_COUNTERS))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&counters)?);
    } else {
        print!("{}", counters.render_table());
    }
    Ok(())
}
