//! Traffic the guest sends through a tunnel, checked in the guest: ping's answers
//! counted from its summary, and a TCP echo compared byte for byte with `cmp`. Both
//! scripts fail (non-zero status, their output in the error) when a packet goes
//! unanswered or a byte differs.

use std::{net::Ipv4Addr, time::Duration};

use anyhow::{Context as _, ensure};

use super::Guest;

/// ping's "N packets transmitted, M received" line.
#[derive(Debug, PartialEq, Eq)]
pub struct PingSummary {
    pub transmitted: u32,
    pub received: u32,
}

impl PingSummary {
    /// Reads the summary line out of ping's output.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let line = text
            .lines()
            .find(|l| l.contains(" packets transmitted"))
            .with_context(|| format!("no ping summary in {text:?}"))?;
        let number_before = |word: &str| -> anyhow::Result<u32> {
            let at = line
                .find(word)
                .with_context(|| format!("no {word:?} in {line:?}"))?;
            line[..at]
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("no number before {word:?} in {line:?}"))
        };
        Ok(Self {
            transmitted: number_before(" packets transmitted")?,
            received: number_before(" received")?,
        })
    }
}

impl std::fmt::Display for PingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lost = self.transmitted.saturating_sub(self.received);
        write!(
            f,
            "ping {}/{} answered ({}% loss)",
            self.received,
            self.transmitted,
            100 * lost / self.transmitted.max(1)
        )
    }
}

/// Pings `host` `count` times from the guest; fails unless every request is
/// answered (with `-w`, ping itself exits 1 when fewer than `count` replies came).
pub fn ping(guest: &mut Guest, host: Ipv4Addr, count: u32) -> anyhow::Result<PingSummary> {
    let out = guest.run_ok(
        &format!(
            "ping -c {count} -i 0.2 -w {deadline} {host} > /tmp/ping.out || \
             {{ status=$?; cat /tmp/ping.out; exit $status; }}\n\
             grep ' packets transmitted' /tmp/ping.out",
            deadline = count + 5,
        ),
        Duration::from_secs(u64::from(count) + 20),
    )?;
    let summary = PingSummary::parse(&out)?;
    ensure!(
        summary.transmitted == count && summary.received == count,
        "ping: {out}"
    );
    Ok(summary)
}

/// Sends `bytes` random bytes from the guest to the echo server at `host:port` and
/// compares what comes back with `cmp`; returns the time the exchange took.
pub fn tcp_echo(
    guest: &mut Guest,
    host: Ipv4Addr,
    port: u16,
    bytes: usize,
) -> anyhow::Result<Duration> {
    let out = guest.run_ok(
        &format!(
            r#"
head -c {bytes} /dev/urandom > /tmp/data
start=$(date +%s%N)
timeout 120 socat -t 60 -T 60 - TCP:{host}:{port},connect-timeout=10 < /tmp/data > /tmp/back
end=$(date +%s%N)
cmp /tmp/data /tmp/back
echo "tcp_bytes=$(stat -c %s /tmp/back) tcp_ms=$(( (end - start) / 1000000 ))"
"#
        ),
        Duration::from_secs(150),
    )?;
    let field = |name: &str| -> anyhow::Result<u64> {
        out.split_whitespace()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in {out:?}"))
    };
    let echoed = field("tcp_bytes")?;
    ensure!(echoed == bytes as u64, "echoed {echoed} bytes: {out}");
    Ok(Duration::from_millis(field("tcp_ms")?))
}

#[cfg(test)]
mod tests {
    use super::PingSummary;

    #[test]
    fn reads_the_summary_line_of_iputils_ping() {
        let text = "--- 203.0.113.10 ping statistics ---\n\
                    5 packets transmitted, 3 received, 40% packet loss, time 813ms\n";
        let summary = PingSummary::parse(text).unwrap();
        assert_eq!(
            summary,
            PingSummary {
                transmitted: 5,
                received: 3
            }
        );
        assert_eq!(summary.to_string(), "ping 3/5 answered (40% loss)");
        let errors = "5 packets transmitted, 0 received, +5 errors, 100% packet loss\n";
        assert_eq!(PingSummary::parse(errors).unwrap().received, 0);
        assert!(PingSummary::parse("connect: Network is unreachable").is_err());
    }
}
