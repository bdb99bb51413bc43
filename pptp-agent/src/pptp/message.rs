//! Codecs for the fifteen PPTP control messages (RFC 2637 §2).
//!
//! Every message is a fixed-size record: a 12-byte header (length, PPTP message type,
//! magic cookie, control message type, reserved) and a body whose layout depends on the
//! control message type. [`Message::parse`] takes exactly one framed message (the
//! [`framing`](super::framing) layer cuts the TCP stream) and checks, in order: the
//! header, the exact length the RFC gives for the type, every reserved field (must be
//! zero), every coded field (result, error, reason, bearer and framing values, capability
//! bits, string lengths) and every string field (no control characters before the
//! terminating NUL). Every rejection is a [`ParseError`] that names the field and maps
//! to the RFC's General Error Code ([`ParseError::general_error`]).
//!
//! The structs keep everything that is on the wire, including bytes after a string's NUL
//! (the RFC only says they SHOULD be zero), so parse followed by emit is byte-identical:
//! the capture-replay test depends on it.
//!
//! Each message is declared once in the `messages!` table below; the macro derives the
//! struct, its wire length, parser, emitter and (in tests) a proptest strategy, so the
//! fifteen codecs cannot drift apart. Unlike smoltcp's `Packet<T>`/`Repr` pairs there
//! is no zero-copy view: control messages are small fixed records read once per call
//! set-up, so owned structs cost nothing and keep the API to one type per message.

use std::fmt;

use thiserror::Error;

/// The magic cookie every control message carries (RFC 2637 §1.4).
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;
/// PPTP Message Type of control messages; 2 (management) is defined but unused.
pub const CONTROL_MESSAGE: u16 = 1;
/// Length of the header shared by all control messages.
pub const HEADER_LEN: usize = 12;
/// Protocol version 1, revision 0: the only version RFC 2637 defines.
pub const PROTOCOL_VERSION: u16 = 0x0100;
/// Length of the longest control message (Incoming-Call-Request).
pub const MAX_MESSAGE_LEN: usize = IncomingCallRequest::LEN;
/// Length of the shortest control message (a bare header plus 4 bytes).
pub const MIN_MESSAGE_LEN: usize = EchoRequest::LEN;

/// Why a control message was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("message needs {need} bytes, only {have} given")]
    Truncated { need: usize, have: usize },
    #[error("PPTP message type {0} is not 1 (control); management messages are not supported")]
    NotControl(u16),
    #[error("magic cookie {0:#010x} is not 0x1a2b3c4d")]
    BadMagic(u32),
    #[error("control message type {0} is not defined by RFC 2637")]
    UnknownType(u16),
    #[error("{kind} must be {expected} bytes long, its length field says {length}")]
    BadLength {
        kind: MessageType,
        expected: usize,
        length: usize,
    },
    #[error("reserved field {field} is {value:#x}, must be zero")]
    ReservedNotZero { field: &'static str, value: u32 },
    #[error("field {field} has the undefined value {value}")]
    BadValue { field: &'static str, value: u32 },
    #[error("string field {field} holds the control character {byte:#04x}")]
    BadString { field: &'static str, byte: u8 },
}

impl ParseError {
    /// The General Error Code (RFC 2637 §2.16) to report this rejection with.
    pub fn general_error(&self) -> GeneralError {
        match self {
            Self::Truncated { .. }
            | Self::NotControl(_)
            | Self::BadMagic(_)
            | Self::UnknownType(_)
            | Self::BadLength { .. } => GeneralError::BadFormat,
            Self::ReservedNotZero { .. } | Self::BadValue { .. } | Self::BadString { .. } => {
                GeneralError::BadValue
            }
        }
    }
}

/// Checked big-endian reads from one message; never panics.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<N>()
            .ok_or(ParseError::Truncated {
                need: N,
                have: self.buf.len(),
            })?;
        self.buf = rest;
        Ok(*head)
    }
}

/// A field of a control message: a fixed number of bytes with its own validation.
trait Field: Sized {
    const LEN: usize;
    fn read(r: &mut Reader<'_>, name: &'static str) -> Result<Self, ParseError>;
    fn write(&self, out: &mut Vec<u8>);
    #[cfg(test)]
    fn strategy() -> proptest::strategy::BoxedStrategy<Self>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const LEN: usize = size_of::<$t>();
            fn read(r: &mut Reader<'_>, _: &'static str) -> Result<Self, ParseError> {
                Ok(<$t>::from_be_bytes(r.take()?))
            }
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }
            #[cfg(test)]
            fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::prelude::*;
                any::<$t>().boxed()
            }
        }
    )*};
}
int_field!(u8, u16, u32);

macro_rules! reserved_field {
    ($($(#[$m:meta])* $name:ident: $t:ty),*) => {$(
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;
        impl Field for $name {
            const LEN: usize = size_of::<$t>();
            fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, ParseError> {
                match <$t>::from_be_bytes(r.take()?) {
                    0 => Ok($name),
                    v => Err(ParseError::ReservedNotZero { field, value: v.into() }),
                }
            }
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&<$t>::to_be_bytes(0));
            }
            #[cfg(test)]
            fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::prelude::*;
                Just($name).boxed()
            }
        }
    )*};
}
reserved_field!(
    /// A one-octet reserved field: sent as zero, rejected unless zero.
    Reserved8: u8,
    /// A two-octet reserved field: sent as zero, rejected unless zero.
    Reserved16: u16
);

/// A fixed-size, NUL-padded text field (host name, vendor, phone numbers, statistics).
///
/// The text is what precedes the first NUL and must hold no control character
/// (0x00-0x1f, 0x7f), so it is safe to log. Bytes after the NUL are kept as received
/// (the RFC says they SHOULD be zero) so that a message re-encodes byte-identically.
#[derive(Clone, PartialEq, Eq)]
pub struct Text<const N: usize>([u8; N]);

impl<const N: usize> Text<N> {
    /// Builds a field from `s`, truncated to `N` bytes and zero-padded.
    /// Control characters are replaced by `?` so the result always validates.
    pub fn new(s: &str) -> Self {
        let mut raw = [0u8; N];
        for (dst, &b) in raw.iter_mut().zip(s.as_bytes()) {
            *dst = if b < 0x20 || b == 0x7f { b'?' } else { b };
        }
        Self(raw)
    }

    /// The bytes before the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(N);
        &self.0[..end]
    }

    /// The text, with invalid UTF-8 replaced.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// The whole field as it is on the wire.
    pub fn raw(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}

impl<const N: usize> Field for Text<N> {
    const LEN: usize = N;
    fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, ParseError> {
        let raw: [u8; N] = r.take()?;
        let text = Self(raw);
        if let Some(&byte) = text.as_bytes().iter().find(|&&b| b < 0x20 || b == 0x7f) {
            return Err(ParseError::BadString { field, byte });
        }
        Ok(text)
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    #[cfg(test)]
    fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        // Printable text, a NUL, then arbitrary bytes (kept for byte-identity).
        (
            proptest::collection::vec(0x20u8..0x7f, 0..=N),
            proptest::collection::vec(any::<u8>(), N),
        )
            .prop_map(|(text, tail)| {
                let mut raw = [0u8; N];
                raw[..text.len()].copy_from_slice(&text);
                if text.len() + 1 < N {
                    raw[text.len() + 1..].copy_from_slice(&tail[text.len() + 1..]);
                }
                Self(raw)
            })
            .boxed()
    }
}

/// Declares a field type whose wire value must be one of a closed set of codes.
macro_rules! code_field {
    ($(#[$m:meta])* $name:ident: $t:ty { $($(#[$vm:meta])* $variant:ident = $value:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($t)]
        pub enum $name { $($(#[$vm])* $variant = $value),* }
        impl $name {
            /// Every defined value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
        }
        impl TryFrom<$t> for $name {
            type Error = $t;
            fn try_from(v: $t) -> Result<Self, $t> {
                match v { $($value => Ok(Self::$variant),)* other => Err(other) }
            }
        }
        impl Field for $name {
            const LEN: usize = size_of::<$t>();
            fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, ParseError> {
                let v = <$t>::from_be_bytes(r.take()?);
                Self::try_from(v).map_err(|v| ParseError::BadValue { field, value: v.into() })
            }
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&(*self as $t).to_be_bytes());
            }
            #[cfg(test)]
            fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::prelude::*;
                proptest::sample::select(Self::ALL).boxed()
            }
        }
    };
}

code_field!(
    /// Start-Control-Connection-Reply result (RFC 2637 §2.2).
    StartResult: u8 {
        Success = 1,
        GeneralError = 2,
        AlreadyExists = 3,
        NotAuthorized = 4,
        VersionNotSupported = 5,
    }
);
code_field!(
    /// Stop-Control-Connection-Request reason (RFC 2637 §2.3).
    StopReason: u8 {
        /// General request to clear the control connection.
        None = 1,
        /// Can't support the peer's version of the protocol.
        StopProtocol = 2,
        /// The requester is being shut down.
        StopLocalShutdown = 3,
    }
);
code_field!(
    /// Result of Stop-Control-Connection-Reply and Echo-Reply (RFC 2637 §2.4, §2.6).
    OkResult: u8 {
        Ok = 1,
        GeneralError = 2,
    }
);
code_field!(
    /// Outgoing-Call-Reply result (RFC 2637 §2.8).
    OutgoingResult: u8 {
        Connected = 1,
        GeneralError = 2,
        NoCarrier = 3,
        Busy = 4,
        NoDialTone = 5,
        TimeOut = 6,
        DoNotAccept = 7,
    }
);
code_field!(
    /// Incoming-Call-Reply result (RFC 2637 §2.10).
    IncomingResult: u8 {
        Connect = 1,
        GeneralError = 2,
        DoNotAccept = 3,
    }
);
code_field!(
    /// Call-Disconnect-Notify result (RFC 2637 §2.13).
    DisconnectResult: u8 {
        LostCarrier = 1,
        GeneralError = 2,
        AdminShutdown = 3,
        /// Disconnected because of a Call-Clear-Request.
        Request = 4,
    }
);
code_field!(
    /// General Error Codes (RFC 2637 §2.16).
    GeneralError: u8 {
        None = 0,
        NotConnected = 1,
        BadFormat = 2,
        BadValue = 3,
        NoResource = 4,
        BadCallId = 5,
        PacError = 6,
    }
);
code_field!(
    /// Bearer type of a call (RFC 2637 §2.7, §2.9).
    BearerType: u32 {
        Analog = 1,
        Digital = 2,
        Either = 3,
    }
);
code_field!(
    /// Framing type of a call (RFC 2637 §2.7, §2.11).
    FramingType: u32 {
        Async = 1,
        Sync = 2,
        Either = 3,
    }
);

/// Declares a 32-bit capability set whose undefined bits must be zero.
macro_rules! caps_field {
    ($(#[$m:meta])* $name:ident { $($(#[$cm:meta])* $cap:ident = $bit:literal),* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name(u32);
        impl $name {
            $($(#[$cm])* pub const $cap: Self = Self($bit);)*
            const DEFINED: u32 = 0 $(| $bit)*;
            /// No capability (pptpd advertises this).
            pub const NONE: Self = Self(0);
            /// Every capability the RFC defines.
            pub const ALL: Self = Self(Self::DEFINED);
            /// Whether every bit of `other` is set in `self`.
            pub fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// The raw bits.
            pub fn bits(self) -> u32 {
                self.0
            }
        }
        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
        impl Field for $name {
            const LEN: usize = 4;
            fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, ParseError> {
                let v = u32::from_be_bytes(r.take()?);
                if v & !Self::DEFINED != 0 {
                    return Err(ParseError::BadValue { field, value: v });
                }
                Ok(Self(v))
            }
            fn write(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0.to_be_bytes());
            }
            #[cfg(test)]
            fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
                use proptest::prelude::*;
                (0..=Self::DEFINED).prop_map(Self).boxed()
            }
        }
    };
}

caps_field!(
    /// Framing capabilities of a PAC or PNS (RFC 2637 §2.1).
    FramingCaps { ASYNC = 1, SYNC = 2 }
);
caps_field!(
    /// Bearer capabilities of a PAC or PNS (RFC 2637 §2.1).
    BearerCaps { ANALOG = 1, DIGITAL = 2 }
);

/// A count of valid digits in a 64-octet number field: at most 64.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NumberLength(u16);

impl NumberLength {
    /// The length of `text` as this field should announce it.
    pub fn of(text: &Text<64>) -> Self {
        // as_bytes() is at most 64 bytes long.
        Self(text.as_bytes().len() as u16)
    }
    pub fn get(self) -> u16 {
        self.0
    }
}

impl Field for NumberLength {
    const LEN: usize = 2;
    fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, ParseError> {
        match u16::from_be_bytes(r.take()?) {
            v @ 0..=64 => Ok(Self(v)),
            v => Err(ParseError::BadValue {
                field,
                value: v.into(),
            }),
        }
    }
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }
    #[cfg(test)]
    fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        (0u16..=64).prop_map(Self).boxed()
    }
}

/// Declares the control messages: one struct each, plus [`MessageType`] and [`Message`].
macro_rules! messages {
    ($(
        $(#[$m:meta])*
        $name:ident = $code:literal, $abbr:literal {
            $($(#[$fm:meta])* $field:ident: $ty:ty,)*
        }
    )*) => {
        $(
            $(#[$m])*
            #[derive(Debug, Clone, PartialEq, Eq)]
            pub struct $name { $($(#[$fm])* pub $field: $ty,)* }

            impl $name {
                /// Total length on the wire, header included.
                pub const LEN: usize = HEADER_LEN $(+ <$ty as Field>::LEN)*;

                fn read_body(r: &mut Reader<'_>) -> Result<Self, ParseError> {
                    Ok(Self { $($field: Field::read(r, stringify!($field))?,)* })
                }

                fn write_body(&self, out: &mut Vec<u8>) {
                    $(Field::write(&self.$field, out);)*
                }

                #[cfg(test)]
                pub(crate) fn strategy() -> impl proptest::strategy::Strategy<Value = Self> {
                    use proptest::strategy::Strategy;
                    ($(<$ty as Field>::strategy(),)*)
                        .prop_map(|($($field,)*)| Self { $($field,)* })
                }
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*

        /// The Control Message Type field (RFC 2637 §1.4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum MessageType { $($name = $code,)* }

        impl MessageType {
            /// Every control message type, in wire order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$name),*];

            /// The exact length of a message of this type.
            pub fn wire_len(self) -> usize {
                match self { $(Self::$name => $name::LEN,)* }
            }

            /// The RFC's abbreviation (SCCRQ, OCRP, ...).
            pub fn abbreviation(self) -> &'static str {
                match self { $(Self::$name => $abbr,)* }
            }
        }

        impl TryFrom<u16> for MessageType {
            type Error = ParseError;
            fn try_from(v: u16) -> Result<Self, ParseError> {
                match v { $($code => Ok(Self::$name),)* other => Err(ParseError::UnknownType(other)) }
            }
        }

        /// One control message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message { $($name($name),)* }

        impl Message {
            /// The message's type.
            pub fn message_type(&self) -> MessageType {
                match self { $(Self::$name(_) => MessageType::$name,)* }
            }

            fn read_body(kind: MessageType, r: &mut Reader<'_>) -> Result<Self, ParseError> {
                Ok(match kind { $(MessageType::$name => Self::$name($name::read_body(r)?),)* })
            }

            fn write_body(&self, out: &mut Vec<u8>) {
                match self { $(Self::$name(m) => m.write_body(out),)* }
            }

            #[cfg(test)]
            pub(crate) fn strategy() -> impl proptest::strategy::Strategy<Value = Self> {
                use proptest::strategy::Strategy;
                proptest::prop_oneof![$($name::strategy().prop_map(Message::$name),)*]
            }
        }
    };
}

messages! {
    /// Start-Control-Connection-Request (RFC 2637 §2.1).
    StartControlConnectionRequest = 1, "SCCRQ" {
        protocol_version: u16,
        reserved1: Reserved16,
        framing_capabilities: FramingCaps,
        bearer_capabilities: BearerCaps,
        maximum_channels: u16,
        firmware_revision: u16,
        host_name: Text<64>,
        vendor_name: Text<64>,
    }
    /// Start-Control-Connection-Reply (RFC 2637 §2.2).
    StartControlConnectionReply = 2, "SCCRP" {
        protocol_version: u16,
        result: StartResult,
        error: GeneralError,
        framing_capabilities: FramingCaps,
        bearer_capabilities: BearerCaps,
        maximum_channels: u16,
        firmware_revision: u16,
        host_name: Text<64>,
        vendor_name: Text<64>,
    }
    /// Stop-Control-Connection-Request (RFC 2637 §2.3).
    StopControlConnectionRequest = 3, "StopCCRQ" {
        reason: StopReason,
        reserved1: Reserved8,
        reserved2: Reserved16,
    }
    /// Stop-Control-Connection-Reply (RFC 2637 §2.4).
    StopControlConnectionReply = 4, "StopCCRP" {
        result: OkResult,
        error: GeneralError,
        reserved1: Reserved16,
    }
    /// Echo-Request (RFC 2637 §2.5).
    EchoRequest = 5, "ECHORQ" {
        identifier: u32,
    }
    /// Echo-Reply (RFC 2637 §2.6).
    EchoReply = 6, "ECHORP" {
        identifier: u32,
        result: OkResult,
        error: GeneralError,
        reserved1: Reserved16,
    }
    /// Outgoing-Call-Request, PNS to PAC (RFC 2637 §2.7).
    OutgoingCallRequest = 7, "OCRQ" {
        /// The PNS's Call ID.
        call_id: u16,
        call_serial_number: u16,
        minimum_bps: u32,
        maximum_bps: u32,
        bearer_type: BearerType,
        framing_type: FramingType,
        packet_recv_window_size: u16,
        packet_processing_delay: u16,
        phone_number_length: NumberLength,
        reserved1: Reserved16,
        phone_number: Text<64>,
        subaddress: Text<64>,
    }
    /// Outgoing-Call-Reply, PAC to PNS (RFC 2637 §2.8).
    OutgoingCallReply = 8, "OCRP" {
        /// The PAC's Call ID.
        call_id: u16,
        /// The PNS's Call ID, from the request.
        peer_call_id: u16,
        result: OutgoingResult,
        error: GeneralError,
        cause_code: u16,
        connect_speed: u32,
        packet_recv_window_size: u16,
        packet_processing_delay: u16,
        physical_channel_id: u32,
    }
    /// Incoming-Call-Request, PAC to PNS (RFC 2637 §2.9).
    IncomingCallRequest = 9, "ICRQ" {
        /// The PAC's Call ID.
        call_id: u16,
        call_serial_number: u16,
        bearer_type: BearerType,
        physical_channel_id: u32,
        dialed_number_length: NumberLength,
        dialing_number_length: NumberLength,
        dialed_number: Text<64>,
        dialing_number: Text<64>,
        subaddress: Text<64>,
    }
    /// Incoming-Call-Reply, PNS to PAC (RFC 2637 §2.10).
    IncomingCallReply = 10, "ICRP" {
        /// The PNS's Call ID.
        call_id: u16,
        /// The PAC's Call ID, from the request.
        peer_call_id: u16,
        result: IncomingResult,
        error: GeneralError,
        packet_recv_window_size: u16,
        packet_transmit_delay: u16,
        reserved1: Reserved16,
    }
    /// Incoming-Call-Connected, PAC to PNS (RFC 2637 §2.11).
    IncomingCallConnected = 11, "ICCN" {
        /// The PNS's Call ID.
        peer_call_id: u16,
        reserved1: Reserved16,
        connect_speed: u32,
        packet_recv_window_size: u16,
        packet_transmit_delay: u16,
        framing_type: FramingType,
    }
    /// Call-Clear-Request, PNS to PAC (RFC 2637 §2.12).
    CallClearRequest = 12, "CCRQ" {
        /// The PNS's Call ID.
        call_id: u16,
        reserved1: Reserved16,
    }
    /// Call-Disconnect-Notify, PAC to PNS (RFC 2637 §2.13).
    CallDisconnectNotify = 13, "CDN" {
        /// The PAC's Call ID.
        call_id: u16,
        result: DisconnectResult,
        error: GeneralError,
        cause_code: u16,
        reserved1: Reserved16,
        call_statistics: Text<128>,
    }
    /// WAN-Error-Notify, PAC to PNS (RFC 2637 §2.14).
    WanErrorNotify = 14, "WEN" {
        /// The PNS's Call ID.
        peer_call_id: u16,
        reserved1: Reserved16,
        crc_errors: u32,
        framing_errors: u32,
        hardware_overruns: u32,
        buffer_overruns: u32,
        timeout_errors: u32,
        alignment_errors: u32,
    }
    /// Set-Link-Info, PNS to PAC (RFC 2637 §2.15).
    SetLinkInfo = 15, "SLI" {
        /// The PAC's Call ID.
        peer_call_id: u16,
        reserved1: Reserved16,
        send_accm: u32,
        receive_accm: u32,
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// The validated header of a control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The Length field: the whole message, header included.
    pub length: usize,
    pub kind: MessageType,
}

impl Header {
    /// Reads and checks a header: PPTP message type, magic cookie, control message
    /// type, Reserved0, and that the length is the exact length of that type.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader { buf };
        let length = usize::from(u16::from_be_bytes(r.take()?));
        let pptp_type = u16::from_be_bytes(r.take()?);
        if pptp_type != CONTROL_MESSAGE {
            return Err(ParseError::NotControl(pptp_type));
        }
        let magic = u32::from_be_bytes(r.take()?);
        if magic != MAGIC_COOKIE {
            return Err(ParseError::BadMagic(magic));
        }
        let kind = MessageType::try_from(u16::from_be_bytes(r.take()?))?;
        Reserved16::read(&mut r, "reserved0")?;
        if length != kind.wire_len() {
            return Err(ParseError::BadLength {
                kind,
                expected: kind.wire_len(),
                length,
            });
        }
        Ok(Self { length, kind })
    }
}

impl Message {
    /// Parses exactly one control message: `buf` must hold that message and nothing else.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let header = Header::parse(buf)?;
        if buf.len() != header.length {
            return Err(ParseError::Truncated {
                need: header.length,
                have: buf.len(),
            });
        }
        let mut body = Reader {
            buf: &buf[HEADER_LEN..],
        };
        Self::read_body(header.kind, &mut body)
    }

    /// Length of this message on the wire.
    pub fn wire_len(&self) -> usize {
        self.message_type().wire_len()
    }

    /// Appends this message, header included, to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let kind = self.message_type();
        // Every wire length is at most MAX_MESSAGE_LEN (220), so it fits in u16.
        out.extend_from_slice(&(kind.wire_len() as u16).to_be_bytes());
        out.extend_from_slice(&CONTROL_MESSAGE.to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&(kind as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        self.write_body(out);
    }

    /// This message as a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.emit(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lengths_match_rfc_2637() {
        let expected = [
            156, 156, 16, 16, 16, 20, 168, 32, 220, 24, 28, 16, 148, 40, 24,
        ];
        let got: Vec<usize> = MessageType::ALL.iter().map(|t| t.wire_len()).collect();
        assert_eq!(got, expected);
        assert_eq!(MAX_MESSAGE_LEN, 220);
        assert_eq!(MIN_MESSAGE_LEN, 16);
        for (i, t) in MessageType::ALL.iter().enumerate() {
            assert_eq!(*t as u16, i as u16 + 1);
        }
    }

    proptest! {
        #[test]
        fn every_message_round_trips(msg in Message::strategy()) {
            let bytes = msg.to_bytes();
            prop_assert_eq!(bytes.len(), msg.wire_len());
            let back = Message::parse(&bytes).unwrap();
            prop_assert_eq!(&back, &msg);
            prop_assert_eq!(back.to_bytes(), bytes);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Message::parse(&bytes);
        }

        #[test]
        fn any_nonzero_reserved_byte_is_rejected(msg in Message::strategy(), pick in any::<prop::sample::Index>(), v in 1u8..) {
            let mut bytes = msg.to_bytes();
            let reserved = reserved_offsets(msg.message_type());
            let at = reserved[pick.index(reserved.len())];
            bytes[at] = v;
            let err = Message::parse(&bytes).unwrap_err();
            prop_assert!(matches!(err, ParseError::ReservedNotZero { .. }), "{:?}", err);
            prop_assert_eq!(err.general_error(), GeneralError::BadValue);
        }
    }

    /// Byte offsets of every reserved octet of a message type, header included.
    fn reserved_offsets(kind: MessageType) -> Vec<usize> {
        let body: &[usize] = match kind {
            MessageType::StartControlConnectionRequest => &[14, 15],
            MessageType::StopControlConnectionRequest => &[13, 14, 15],
            MessageType::StopControlConnectionReply => &[14, 15],
            MessageType::EchoReply => &[18, 19],
            MessageType::OutgoingCallRequest => &[38, 39],
            MessageType::IncomingCallReply => &[22, 23],
            MessageType::IncomingCallConnected => &[14, 15],
            MessageType::CallClearRequest => &[14, 15],
            MessageType::CallDisconnectNotify => &[18, 19],
            MessageType::WanErrorNotify => &[14, 15],
            MessageType::SetLinkInfo => &[14, 15],
            _ => &[],
        };
        let mut all = vec![10, 11];
        all.extend_from_slice(body);
        all
    }

    fn echo() -> Vec<u8> {
        Message::from(EchoRequest { identifier: 7 }).to_bytes()
    }

    #[test]
    fn header_rejections_carry_reasons() {
        let mut b = echo();
        b[3] = 2;
        assert_eq!(Message::parse(&b), Err(ParseError::NotControl(2)));
        let mut b = echo();
        b[4] = 0;
        assert_eq!(Message::parse(&b), Err(ParseError::BadMagic(0x002B_3C4D)));
        let mut b = echo();
        b[9] = 16;
        assert_eq!(Message::parse(&b), Err(ParseError::UnknownType(16)));
        let mut b = echo();
        b[9] = 0;
        assert_eq!(Message::parse(&b), Err(ParseError::UnknownType(0)));
        let mut b = echo();
        b[1] = 20;
        b.extend_from_slice(&[0; 4]);
        assert_eq!(
            Message::parse(&b),
            Err(ParseError::BadLength {
                kind: MessageType::EchoRequest,
                expected: 16,
                length: 20
            })
        );
        let b = echo();
        assert_eq!(
            Message::parse(&b[..15]),
            Err(ParseError::Truncated { need: 16, have: 15 })
        );
        assert!(matches!(
            Message::parse(&b[..5]),
            Err(ParseError::Truncated { .. })
        ));
        assert_eq!(
            Message::parse(&b[..15]).unwrap_err().general_error(),
            GeneralError::BadFormat
        );
    }

    fn ocrq() -> OutgoingCallRequest {
        OutgoingCallRequest {
            call_id: 1,
            call_serial_number: 0,
            minimum_bps: 2400,
            maximum_bps: 10_000_000,
            bearer_type: BearerType::Either,
            framing_type: FramingType::Either,
            packet_recv_window_size: 3,
            packet_processing_delay: 0,
            phone_number_length: NumberLength::default(),
            reserved1: Reserved16,
            phone_number: Text::default(),
            subaddress: Text::default(),
        }
    }

    #[test]
    fn coded_fields_are_checked() {
        let b = Message::from(ocrq()).to_bytes();
        // bearer type (offset 24..28) = 4
        let mut bad = b.clone();
        bad[27] = 4;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "bearer_type",
                value: 4
            })
        );
        // framing type 0
        let mut bad = b.clone();
        bad[31] = 0;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "framing_type",
                value: 0
            })
        );
        // phone number length 65
        let mut bad = b.clone();
        bad[37] = 65;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "phone_number_length",
                value: 65
            })
        );
        // control character in the phone number
        let mut bad = b.clone();
        bad[40] = b'1';
        bad[41] = 0x1b;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadString {
                field: "phone_number",
                byte: 0x1b
            })
        );
        // after the NUL anything goes, and it is kept
        let mut ok = b.clone();
        ok[41] = 0x1b;
        assert_eq!(Message::parse(&ok).unwrap().to_bytes(), ok);
    }

    #[test]
    fn capability_and_result_codes_are_checked() {
        let sccrp = Message::from(StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result: StartResult::Success,
            error: GeneralError::None,
            framing_capabilities: FramingCaps::NONE,
            bearer_capabilities: BearerCaps::NONE,
            maximum_channels: 1,
            firmware_revision: 1,
            host_name: Text::new("local"),
            vendor_name: Text::new("linux"),
        })
        .to_bytes();
        let mut bad = sccrp.clone();
        bad[14] = 6;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "result",
                value: 6
            })
        );
        let mut bad = sccrp.clone();
        bad[15] = 7;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "error",
                value: 7
            })
        );
        let mut bad = sccrp.clone();
        bad[19] = 4;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "framing_capabilities",
                value: 4
            })
        );
        let mut bad = sccrp;
        bad[20] = 0x80;
        assert_eq!(
            Message::parse(&bad),
            Err(ParseError::BadValue {
                field: "bearer_capabilities",
                value: 0x8000_0000
            })
        );
    }

    #[test]
    fn text_fields() {
        let t = Text::<64>::new("vpn\u{7}.example");
        assert_eq!(t.as_bytes(), b"vpn?.example");
        assert_eq!(NumberLength::of(&t).get(), 12);
        let long = "x".repeat(80);
        assert_eq!(Text::<64>::new(&long).as_bytes().len(), 64);
        assert_eq!(format!("{:?}", Text::<8>::new("ab")), "\"ab\"");
    }
}
