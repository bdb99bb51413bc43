//! Fuzzes the PPTP control channel: the message codec (whatever parses re-encodes
//! byte-identical), the deframer under arbitrary read splits, and a control connection
//! on each side fed the same bytes, answering call requests, with time moving on.
//! Everything we send in response must itself be a valid message.
//!
//! The first byte picks the read size and the mode. In raw mode the rest is the TCP
//! stream as is. In assisted mode the rest is cut into message bodies, each behind a
//! valid header for the type its first byte names, so that the fuzzer spends its time
//! on field validation and on the state machines rather than on finding the magic
//! cookie.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_agent::pptp::control::{ControlConfig, ControlConnection, Event};
use pptp_agent::pptp::framing::Deframer;
use pptp_agent::pptp::message::{
    CONTROL_MESSAGE, GeneralError, HEADER_LEN, MAGIC_COOKIE, Message, MessageType,
};

/// Puts a valid header in front of each body: [type selector][body bytes...]...
fn assisted(mut data: &[u8]) -> Vec<u8> {
    let mut stream = Vec::new();
    while let Some((&selector, rest)) = data.split_first() {
        let kind = MessageType::ALL[usize::from(selector) % MessageType::ALL.len()];
        let body_len = kind.wire_len() - HEADER_LEN;
        let (body, tail) = rest.split_at(body_len.min(rest.len()));
        stream.extend_from_slice(&(kind.wire_len() as u16).to_be_bytes());
        stream.extend_from_slice(&CONTROL_MESSAGE.to_be_bytes());
        stream.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        stream.extend_from_slice(&(kind as u16).to_be_bytes());
        stream.extend_from_slice(&[0, 0]);
        stream.extend_from_slice(body);
        stream.resize(stream.len() + body_len - body.len(), 0);
        data = tail;
    }
    stream
}

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        assert_eq!(m.to_bytes(), data);
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stream = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        assisted(rest)
    };
    let chunk = usize::from(mode >> 1).max(1);

    let mut d = Deframer::new();
    for piece in stream.chunks(chunk) {
        d.push(piece);
        while let Ok(Some(_)) = d.next_frame() {}
    }

    let t0 = Instant::now();
    let config = ControlConfig::default;
    for mut conn in [
        ControlConnection::answer(config(), t0),
        ControlConnection::originate(config(), t0),
    ] {
        for (i, piece) in stream.chunks(chunk).enumerate() {
            let now = t0 + Duration::from_secs(7 * i as u64);
            conn.handle_input(piece, now);
            conn.handle_timeout(now);
            while let Some(e) = conn.poll_event() {
                if let Event::CallRequested { local_call_id, .. } = e {
                    let _ = if local_call_id % 2 == 0 {
                        conn.accept_call(local_call_id, now)
                    } else {
                        conn.refuse_call(local_call_id, GeneralError::NoResource)
                    };
                }
            }
            while let Some(out) = conn.poll_transmit() {
                assert!(Message::parse(&out).is_ok());
            }
        }
        conn.handle_eof();
    }
});
