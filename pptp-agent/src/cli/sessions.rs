//! `pptp-agent sessions`: the running agent's sessions, from its API, filtered,
//! sorted and limited by the agent (`--user`, `--sort`, `--limit`) so that a
//! concentrator with tens of thousands of sessions sends only the rows asked for.

use anyhow::Context as _;
use clap::Args;
use pptp_agent::api::{
    Request,
    query::{SessionQuery, SortKey},
    view::{SessionView, render_sessions},
};

use super::agent::AgentArgs;

/// Which sessions to list (shared with `stats`).
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Only this user's sessions.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Sort by id, user, peer, client (ascending) or uptime, rx_bytes, tx_bytes,
    /// rx_packets, tx_packets (descending: the oldest, the busiest first).
    #[arg(long, value_name = "FIELD", default_value = "id", value_parser = parse_sort)]
    sort: SortKey,
    /// At most N sessions (after filtering and sorting).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
}

fn parse_sort(s: &str) -> Result<SortKey, String> {
    SortKey::named(s).ok_or_else(|| {
        let names: Vec<&str> = SortKey::ALL.iter().map(|(_, n)| *n).collect();
        format!("one of {}", names.join(", "))
    })
}

impl QueryArgs {
    pub fn query(&self) -> SessionQuery {
        SessionQuery {
            user: self.user.clone(),
            sort: self.sort,
            limit: self.limit,
        }
    }
}

#[derive(Args, Debug)]
pub struct SessionsArgs {
    /// Print the agent's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    query: QueryArgs,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(args: SessionsArgs) -> anyhow::Result<()> {
    let answer = args.agent.call(&Request::Sessions(args.query.query()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let sessions: Vec<SessionView> = serde_json::from_value(answer["sessions"].clone())
        .context("the agent's sessions answer has an unexpected shape")?;
    print!("{}", render_sessions(&sessions));
    if let Some(matched) = answer["matched"]
        .as_u64()
        .filter(|m| *m > sessions.len() as u64)
    {
        println!("({} of {matched} matching sessions shown)", sessions.len());
    }
    Ok(())
}
