//! Cuts the TCP byte stream of a control connection into control messages.
//!
//! TCP gives no message boundaries: one read may hold half a message, several
//! messages, or the end of one and the start of the next. [`Deframer`] buffers what
//! [`Deframer::push`] gives it and hands out one [`Frame`] per complete message.
//!
//! The header is checked as soon as its bytes are in: a length outside 16..=220 bytes,
//! a wrong PPTP message type or magic cookie, an unknown control message type or a
//! length that is not that type's length means the stream is garbage or out of step,
//! and there is no way to find the next message boundary. That is a [`FramingError`]:
//! the connection must be closed, and the deframer keeps returning the error. A message
//! whose header is sound but whose body is invalid (a non-zero reserved field, an
//! undefined result code, ...) is a [`Frame::Invalid`]: the stream stays in step and
//! the control connection decides what to answer.

use thiserror::Error;

use super::message::{
    HEADER_LEN, Header, MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, Message, MessageType, ParseError,
};

/// The stream cannot be framed any more: close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FramingError {
    #[error("length field {0} is outside {MIN_MESSAGE_LEN}..={MAX_MESSAGE_LEN}")]
    Length(usize),
    #[error("bad message header: {0}")]
    Header(ParseError),
}

/// One message cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A valid message.
    Message(Message),
    /// A well-framed message with an invalid body.
    Invalid(InvalidMessage),
}

/// A well-framed message whose body was rejected: enough of it to answer with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMessage {
    pub kind: MessageType,
    /// The first four body bytes: the Call ID of a call request, an Echo identifier.
    pub head: [u8; 4],
    pub error: ParseError,
}

impl InvalidMessage {
    /// The first body field read as a Call ID.
    pub fn call_id(&self) -> u16 {
        u16::from_be_bytes([self.head[0], self.head[1]])
    }
}

/// Reassembles control messages from TCP reads.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    failed: Option<FramingError>,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= 4096 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet part of a complete message.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the framing
    /// error that ended this stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let avail = &self.buf[self.start..];
        let Some(len) = avail
            .first_chunk::<2>()
            .map(|l| usize::from(u16::from_be_bytes(*l)))
        else {
            return Ok(None);
        };
        if !(MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(self.fail(FramingError::Length(len)));
        }
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = match Header::parse(avail) {
            Ok(h) => h,
            Err(e) => return Err(self.fail(FramingError::Header(e))),
        };
        let Some(bytes) = avail.get(..len) else {
            return Ok(None);
        };
        let frame = match Message::parse(bytes) {
            Ok(m) => Frame::Message(m),
            Err(error) => Frame::Invalid(InvalidMessage {
                kind: header.kind,
                head: bytes
                    .get(HEADER_LEN..HEADER_LEN + 4)
                    .and_then(|h| h.try_into().ok())
                    .unwrap_or_default(),
                error,
            }),
        };
        self.start += len;
        Ok(Some(frame))
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.failed = Some(e);
        self.buf = Vec::new();
        self.start = 0;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pptp::message::EchoRequest;
    use proptest::prelude::*;

    fn drain(d: &mut Deframer) -> Result<Vec<Frame>, FramingError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    proptest! {
        #[test]
        fn any_split_yields_the_same_messages(
            msgs in proptest::collection::vec(Message::strategy(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_bytes()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut d = Deframer::new();
            let mut got = Vec::new();
            for w in points.windows(2) {
                d.push(&stream[w[0]..w[1]]);
                got.extend(drain(&mut d).unwrap());
            }
            let want: Vec<Frame> = msgs.into_iter().map(Frame::Message).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(d.pending(), 0);
        }

        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
            let mut d = Deframer::new();
            for c in chunks {
                d.push(&c);
                let _ = drain(&mut d);
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let bytes = Message::from(EchoRequest { identifier: 9 }).to_bytes();
        let mut d = Deframer::new();
        for b in &bytes[..15] {
            d.push(&[*b]);
            assert_eq!(d.next_frame(), Ok(None));
        }
        d.push(&bytes[15..]);
        assert_eq!(
            d.next_frame(),
            Ok(Some(Frame::Message(Message::from(EchoRequest {
                identifier: 9
            }))))
        );
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn oversized_length_is_fatal_at_once() {
        let mut d = Deframer::new();
        d.push(&[0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(FramingError::Length(0xffff)));
        // It stays closed, whatever follows.
        d.push(&Message::from(EchoRequest { identifier: 1 }).to_bytes());
        assert_eq!(d.next_frame(), Err(FramingError::Length(0xffff)));
        let mut d = Deframer::new();
        d.push(&[0x00, 0x0b]);
        assert_eq!(d.next_frame(), Err(FramingError::Length(11)));
    }

    #[test]
    fn garbage_header_is_fatal() {
        let mut d = Deframer::new();
        d.push(b"\x00\x10GET / HTTP/1.1\r\n");
        assert_eq!(
            d.next_frame(),
            Err(FramingError::Header(ParseError::NotControl(0x4745)))
        );
        let mut d = Deframer::new();
        let mut b = Message::from(EchoRequest { identifier: 1 }).to_bytes();
        b[1] = 20; // an Echo-Request is 16 bytes, not 20
        d.push(&b);
        assert_eq!(
            d.next_frame(),
            Err(FramingError::Header(ParseError::BadLength {
                kind: MessageType::EchoRequest,
                expected: 16,
                length: 20
            }))
        );
    }

    #[test]
    fn invalid_body_keeps_the_stream_in_step() {
        let mut bad = Message::from(EchoRequest { identifier: 1 }).to_bytes();
        let good = bad.clone();
        bad[10] = 1; // Reserved0
        let mut d = Deframer::new();
        // Reserved0 is in the header, so this one is fatal...
        d.push(&bad);
        assert!(d.next_frame().is_err());
        // ...while a bad body field is not.
        let mut sccrq = Message::from(crate::pptp::message::StopControlConnectionRequest {
            reason: crate::pptp::message::StopReason::None,
            reserved1: crate::pptp::message::Reserved8,
            reserved2: crate::pptp::message::Reserved16,
        })
        .to_bytes();
        sccrq[12] = 9;
        let mut d = Deframer::new();
        d.push(&sccrq);
        d.push(&good);
        assert_eq!(
            d.next_frame(),
            Ok(Some(Frame::Invalid(InvalidMessage {
                kind: MessageType::StopControlConnectionRequest,
                head: [9, 0, 0, 0],
                error: ParseError::BadValue {
                    field: "reason",
                    value: 9
                }
            })))
        );
        assert!(matches!(d.next_frame(), Ok(Some(Frame::Message(_)))));
    }
}
