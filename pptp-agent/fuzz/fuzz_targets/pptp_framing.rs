//! Fuzzes the PPTP control channel: the message codec (whatever parses re-encodes
//! byte-identical), the deframer under arbitrary read splits, and a control connection
//! on each side fed the same bytes, answering every call request, with time moving on.
//! Everything we send in response must itself be a valid message.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pptp_agent::pptp::control::{ControlConfig, ControlConnection, Event};
use pptp_agent::pptp::framing::Deframer;
use pptp_agent::pptp::message::{GeneralError, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        assert_eq!(m.to_bytes(), data);
    }
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split).max(1);

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
        conn.handle_eof(t0);
    }
});
