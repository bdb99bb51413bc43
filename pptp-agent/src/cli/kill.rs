//! `pptp-agent kill`: hang sessions up through the running agent's API.

use anyhow::{Context as _, bail};
use clap::Args;
use pptp_agent::{
    api::Request,
    engine::{Selector, SessionId},
};

use super::agent::AgentArgs;

#[derive(Args, Debug)]
pub struct KillArgs {
    /// A session id (a number, as `sessions` lists it) or a user name (every session
    /// of that user).
    #[arg(
        value_name = "ID|USER",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    target: Option<String>,
    /// Take TARGET as a user name even if it is a number.
    #[arg(long)]
    user: bool,
    /// Hang every session up.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

fn selector(args: &KillArgs) -> Selector {
    match &args.target {
        None => Selector::All,
        Some(target) => match target.parse::<u64>() {
            Ok(id) if !args.user => Selector::Id(SessionId::from_number(id)),
            _ => Selector::User(target.clone()),
        },
    }
}

pub fn run(args: KillArgs) -> anyhow::Result<()> {
    let selector = selector(&args);
    let answer = args.agent.call(&Request::Kill(selector.clone()))?;
    let killed = answer["killed"]
        .as_u64()
        .context("the agent's kill answer has no count")?;
    let what = match &selector {
        Selector::Id(id) => format!("session {id}"),
        Selector::User(user) => format!("user {user:?}"),
        Selector::All => "--all".into(),
    };
    if killed == 0 {
        bail!("no session matches {what}");
    }
    println!(
        "hanging up {killed} session{} ({what})",
        if killed == 1 { "" } else { "s" }
    );
    Ok(())
}
