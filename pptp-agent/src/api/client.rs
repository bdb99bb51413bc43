//! The CLI's side of the API: one request, one answer, bounded in time.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use super::Request;

/// Longest answer accepted (a few thousand sessions take a few MB).
const MAX_ANSWER: u64 = 256 << 20;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket: no agent runs there.
    #[error(
        "no agent answers on {} ({cause}); is `pptp-agent serve` running with the same --instance (or --api-socket)?",
        path.display()
    )]
    Unreachable {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The agent answered `{"error": ...}`.
    #[error("the agent refused: {0}")]
    Refused(String),
    /// The exchange broke off or made no sense.
    #[error("talking to the agent on {}: {message}", path.display())]
    Protocol { path: PathBuf, message: String },
}

/// Sends `request` to the agent listening on `path` and returns its answer.
pub fn call(path: &Path, request: &Request, timeout: Duration) -> Result<Value, ClientError> {
    let protocol = |message: String| ClientError::Protocol {
        path: path.to_owned(),
        message,
    };
    let mut stream = UnixStream::connect(path).map_err(|cause| ClientError::Unreachable {
        path: path.to_owned(),
        cause,
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| protocol(e.to_string()))?;
    let mut line = request.to_json().to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| protocol(format!("sending the request: {e}")))?;
    let mut answer = Vec::new();
    BufReader::new(stream.take(MAX_ANSWER))
        .read_until(b'\n', &mut answer)
        .map_err(|e| protocol(format!("reading the answer: {e}")))?;
    if answer.last() != Some(&b'\n') {
        return Err(protocol("the answer was cut short".into()));
    }
    let value: Value = serde_json::from_slice(&answer)
        .map_err(|e| protocol(format!("the answer is not JSON: {e}")))?;
    if let Some(error) = value.get("error") {
        return Err(ClientError::Refused(
            error.as_str().unwrap_or("(no message)").to_owned(),
        ));
    }
    Ok(value)
}
