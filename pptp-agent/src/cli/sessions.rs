//! `pptp-agent sessions`: the running agent's sessions, from its API.

use anyhow::Context as _;
use clap::Args;
use pptp_agent::api::{
    Request,
    view::{SessionView, render_sessions},
};

use super::agent::AgentArgs;

#[derive(Args, Debug)]
pub struct SessionsArgs {
    /// Print the agent's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let answer = args.agent.call(&Request::Sessions)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let sessions: Vec<SessionView> = serde_json::from_value(answer["sessions"].clone())
        .context("the agent's sessions answer has an unexpected shape")?;
    print!("{}", render_sessions(&sessions));
    Ok(())
}
