//! One request to the session hub and its answer, each within a time limit: the
//! API never waits on a busy hub for longer than that.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::runtime::hub::HubCommand;

/// Sends the command `command` builds and waits for its answer, `timeout` for each.
pub(super) async fn ask<T>(
    hub: &mpsc::Sender<HubCommand>,
    timeout: Duration,
    command: impl FnOnce(oneshot::Sender<T>) -> HubCommand,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    match tokio::time::timeout(timeout, hub.send(command(tx))).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return Err("the session hub has stopped".into()),
        Err(_) => return Err("the session hub did not take the request in time".into()),
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err("the session hub has stopped".into()),
        Err(_) => Err("the session hub did not answer in time".into()),
    }
}
