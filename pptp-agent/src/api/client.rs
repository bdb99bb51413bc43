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
    let stream = send(path, request, timeout)?;
    let mut answer = Vec::new();
    BufReader::new(stream.take(MAX_ANSWER))
        .read_until(b'\n', &mut answer)
        .map_err(|e| protocol(path, format!("reading the answer: {e}")))?;
    if answer.last() != Some(&b'\n') {
        return Err(protocol(path, "the answer was cut short".into()));
    }
    answer_of(path, &answer)
}

/// A connection to the agent on `path` (reads and writes bounded by `timeout`) that
/// has sent it `request`.
fn send(path: &Path, request: &Request, timeout: Duration) -> Result<UnixStream, ClientError> {
    let mut stream = UnixStream::connect(path).map_err(|cause| ClientError::Unreachable {
        path: path.to_owned(),
        cause,
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| protocol(path, e.to_string()))?;
    let mut line = request.to_json().to_string();
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| protocol(path, format!("sending the request: {e}")))?;
    Ok(stream)
}

/// The agent's answer line as JSON, or what it refused.
fn answer_of(path: &Path, answer: &[u8]) -> Result<Value, ClientError> {
    let value: Value = serde_json::from_slice(answer)
        .map_err(|e| protocol(path, format!("the answer is not JSON: {e}")))?;
    if let Some(error) = value.get("error") {
        return Err(ClientError::Refused(
            error.as_str().unwrap_or("(no message)").to_owned(),
        ));
    }
    Ok(value)
}

fn protocol(path: &Path, message: String) -> ClientError {
    ClientError::Protocol {
        path: path.to_owned(),
        message,
    }
}

/// What [`CaptureStream::next_record`] found.
#[derive(Debug)]
pub enum Captured {
    /// A record: its header and packet bytes.
    Record(pptp_common::capture::RecordHeader, Vec<u8>),
    /// Nothing within the wait.
    Idle,
    /// The agent closed the stream: the capture ended.
    Ended,
}

/// A capture the agent streams (`{"cmd":"capture"}`: a session on its path).
pub struct CaptureStream {
    stream: UnixStream,
    /// Bytes read and not yet made into records.
    held: Vec<u8>,
}

/// Bytes of a record's header on the stream.
const RECORD_HEADER: usize = std::mem::size_of::<pptp_common::capture::RecordHeader>();

impl CaptureStream {
    /// Asks the agent on `path` to capture session `id` (which must be on its path).
    pub fn start(path: &Path, id: u64, timeout: Duration) -> Result<Self, ClientError> {
        let request = Request::Capture(crate::engine::SessionId::from_number(id));
        let mut stream = send(path, &request, timeout)?;
        // The answer line, a byte at a time: the records follow it at once.
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while answer.last() != Some(&b'\n') && answer.len() < 4096 {
            match stream.read(&mut byte) {
                Ok(0) => return Err(protocol(path, "the answer was cut short".into())),
                Ok(_) => answer.push(byte[0]),
                Err(e) => return Err(protocol(path, format!("reading the answer: {e}"))),
            }
        }
        answer_of(path, &answer)?;
        Ok(Self {
            stream,
            held: Vec::new(),
        })
    }

    /// The next record, waiting at most `wait` for it (less if a signal comes).
    pub fn next_record(&mut self, wait: Duration) -> std::io::Result<Captured> {
        loop {
            if let Some(at) = self.held.get(..RECORD_HEADER) {
                let caplen = u32::from_ne_bytes([at[12], at[13], at[14], at[15]]) as usize;
                if caplen > pptp_common::capture::SNAPLEN {
                    return Err(std::io::Error::other(
                        "a record longer than the snap length",
                    ));
                }
                if self.held.len() >= RECORD_HEADER + caplen {
                    let record: Vec<u8> = self.held.drain(..RECORD_HEADER + caplen).collect();
                    let (header, data) = pptp_common::capture::Record::parse(&record)
                        .ok_or_else(|| std::io::Error::other("a malformed record"))?;
                    return Ok(Captured::Record(header, data.to_vec()));
                }
            }
            self.stream.set_read_timeout(Some(wait))?;
            let mut chunk = [0u8; 16 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) if self.held.is_empty() => return Ok(Captured::Ended),
                Ok(0) => return Err(std::io::Error::other("the stream ended inside a record")),
                Ok(n) => self.held.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(Captured::Idle);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
