//! `pptp-agent check-config FILE`: validates a configuration and the chap-secrets
//! file it names, without starting anything. Prints a summary and exits 0, or
//! prints every problem as `file:line: key: message` and exits 1.

use std::path::PathBuf;

use clap::Args;
use pptp_agent::config::{Config, Diagnostics};

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    /// The configuration file.
    #[arg(value_name = "FILE", default_value = pptp_agent::config::DEFAULT_PATH)]
    file: PathBuf,
}

fn fail(errors: &Diagnostics) -> ! {
    eprintln!("{errors}");
    let n = errors.0.len();
    eprintln!("{n} error{}", if n == 1 { "" } else { "s" });
    std::process::exit(1)
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.file).unwrap_or_else(|e| fail(&e));
    let (users, warnings) = config.load_users().unwrap_or_else(|e| fail(&e));
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    print!("{}", config.summary(&users));
    println!("{}: OK", args.file.display());
    Ok(())
}
