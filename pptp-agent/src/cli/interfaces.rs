//! `pptp-agent interfaces`: the running agent's demand-dial interfaces, from its API.

use anyhow::Context as _;
use clap::Args;
use pptp_agent::api::Request;
use serde_json::Value;

use super::agent::AgentArgs;

#[derive(Args, Debug)]
pub struct InterfacesArgs {
    /// Print the agent's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    agent: AgentArgs,
}

pub fn run(args: InterfacesArgs) -> anyhow::Result<()> {
    let answer = args.agent.call(&Request::Interfaces)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let interfaces = answer["interfaces"]
        .as_array()
        .context("the agent's interfaces answer has an unexpected shape")?;
    print!("{}", render(interfaces));
    Ok(())
}

const COLUMNS: [&str; 10] = [
    "name",
    "device",
    "state",
    "session",
    "dials",
    "dial_failures",
    "idle_hangups",
    "queued_packets",
    "queued",
    "dropped_queue_full",
];

/// One `|`-separated row per interface, under a header (as `sessions` prints).
fn render(interfaces: &[Value]) -> String {
    let mut out = COLUMNS.join(" | ") + "\n";
    for i in interfaces {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| match &i[*c] {
                Value::String(s) => pptp_agent::api::view::printable(s),
                Value::Null => "-".to_owned(),
                other => other.to_string(),
            })
            .collect();
        out += &cells.join(" | ");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_interface_with_escaped_names() {
        let rows = serde_json::json!([{
            "name": "DD|NY", "device": "dd0", "state": "up", "session": 3, "dials": 1,
            "dial_failures": 0, "idle_hangups": 0, "queued_packets": 0, "queued": 1,
            "dropped_queue_full": 0,
        }, {
            "name": "DD_SEA", "device": "dd1", "state": "idle", "session": null, "dials": 0,
            "dial_failures": 2, "idle_hangups": 4, "queued_packets": 0, "queued": 0,
            "dropped_queue_full": 5,
        }]);
        let text = render(rows.as_array().unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "DD\\|NY | dd0 | up | 3 | 1 | 0 | 0 | 0 | 1 | 0");
        assert_eq!(lines[2], "DD_SEA | dd1 | idle | - | 0 | 2 | 4 | 0 | 0 | 5");
    }
}
