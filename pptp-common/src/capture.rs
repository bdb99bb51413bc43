//! Packet capture of one session from the data plane (`pptp-agent capture`): the
//! records the BPF programs put in the `CAPTURE` ring buffer while
//! `CAPTURE_SESSION` names a session, and only then.
//!
//! `CAPTURE_SESSION` is an array of one `u32`: the captured session's slot plus one,
//! zero for none (then the programs do one array lookup and nothing else). A record
//! is a [`Record`]: a [`RecordHeader`] and the first [`SNAPLEN`] bytes of the inner
//! IPv4 packet, in the direction the header says.

/// Bytes of each packet kept (a whole packet up to the usual MTU).
pub const SNAPLEN: usize = 1504;

/// Size of the ring buffer (a power of two number of pages): about 2700 records.
pub const RING_BYTES: u32 = 4 << 20;

/// The packet went from the client to the network (decapsulated).
pub const FROM_CLIENT: u32 = 0;
/// The packet went to the client (encapsulated).
pub const TO_CLIENT: u32 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// `bpf_ktime_get_ns` when the packet was captured (monotonic, since boot).
    pub time_ns: u64,
    /// The packet's length.
    pub len: u32,
    /// Bytes of it in the record (at most [`SNAPLEN`]).
    pub caplen: u32,
    /// [`FROM_CLIENT`] or [`TO_CLIENT`].
    pub direction: u32,
    /// The session's slot.
    pub slot: u32,
}

impl RecordHeader {
    /// The header as it is laid out in a [`Record`] (native byte order): what the
    /// agent streams for a session on its own path (`pptp-agent capture`).
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.time_ns.to_ne_bytes());
        b[8..12].copy_from_slice(&self.len.to_ne_bytes());
        b[12..16].copy_from_slice(&self.caplen.to_ne_bytes());
        b[16..20].copy_from_slice(&self.direction.to_ne_bytes());
        b[20..24].copy_from_slice(&self.slot.to_ne_bytes());
        b
    }
}

/// One record of the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub header: RecordHeader,
    pub data: [u8; SNAPLEN],
}

impl Record {
    /// Reads a record from the ring buffer's bytes; `None` if it is short or its
    /// lengths are not consistent.
    pub fn parse(bytes: &[u8]) -> Option<(RecordHeader, &[u8])> {
        const H: usize = core::mem::size_of::<RecordHeader>();
        let head = bytes.get(..H)?;
        let u32_at =
            |at: usize| u32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut time = [0u8; 8];
        time.copy_from_slice(&head[..8]);
        let header = RecordHeader {
            time_ns: u64::from_ne_bytes(time),
            len: u32_at(8),
            caplen: u32_at(12),
            direction: u32_at(16),
            slot: u32_at(20),
        };
        let caplen = header.caplen as usize;
        if caplen > SNAPLEN || header.caplen > header.len {
            return None;
        }
        Some((header, bytes.get(H..H + caplen)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_back_and_lies_are_refused() {
        let header = RecordHeader {
            time_ns: 7,
            len: 60,
            caplen: 3,
            direction: TO_CLIENT,
            slot: 9,
        };
        let mut bytes = [0u8; core::mem::size_of::<Record>()];
        // SAFETY: RecordHeader is repr(C) plain data, 24 bytes.
        let raw: [u8; 24] = unsafe { core::mem::transmute(header) };
        bytes[..24].copy_from_slice(&raw);
        bytes[24..27].copy_from_slice(&[1, 2, 3]);
        assert_eq!(Record::parse(&bytes), Some((header, &[1u8, 2, 3][..])));
        assert_eq!(header.to_bytes(), raw);
        assert_eq!(Record::parse(&bytes[..20]), None, "short");
        bytes[12] = 100; // caplen above len
        assert_eq!(Record::parse(&bytes), None);
        assert_eq!(core::mem::size_of::<Record>() % 8, 0);
    }
}
