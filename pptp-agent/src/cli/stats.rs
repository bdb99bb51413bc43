//! `pptp-agent stats`.

use clap::Args;
use pptp_agent::dataplane::report::Report;

use super::PinArgs;

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pins: PinArgs,
}

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let report = Report::read(&args.pins.pin_dir()?)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
