//! iperf3 between a lab client and the LAN host: a one-shot server on the LAN host
//! and the client command towards it, for the tests and benchmarks that measure
//! throughput through a tunnel.

use std::{process::Command, time::Duration};

use crate::{
    agents,
    demo::wait_for,
    lab::{Lab, addr},
};

/// The port the LAN host's iperf3 server listens on.
pub const PORT: u16 = 5201;

/// Starts a one-shot iperf3 server (`-s -1`) on the LAN host and waits until it
/// listens; its pid, for `lab.stop`.
pub fn serve_once(lab: &mut Lab) -> anyhow::Result<u32> {
    let mut server = Command::new("iperf3");
    server.stdout(std::process::Stdio::null()).args([
        "-s",
        "-1",
        "-B",
        &addr::LAN_HOST.to_string(),
        "-p",
        &PORT.to_string(),
    ]);
    let lan = lab.lan_ns();
    let pid = lab.spawn(&lan, server)?;
    wait_for(Duration::from_secs(10), || agents::listening(&lan, PORT))?;
    Ok(pid)
}

/// An iperf3 client towards that server; the caller adds the test's options.
pub fn client() -> Command {
    let mut client = Command::new("iperf3");
    client.args(["-c", &addr::LAN_HOST.to_string(), "-p", &PORT.to_string()]);
    client
}
