//! `pptp-agent capture`'s side of the pinned maps: name one session's slot in
//! `CAPTURE_SESSION` so that the programs copy its packets into the `CAPTURE` ring
//! buffer (`pptp_common::capture`), read the records, and name none again when done.
//! One capture at a time: a second is refused while the first runs. The agent
//! clears a capture whose session ends ([`super::xdp::XdpDataplane::remove`]), so a
//! slot taken by the next session is not captured.

use anyhow::{Context as _, bail};
use aya::maps::{Array, Map, MapData, RingBuf};
use pptp_common::{
    capture::{Record, RecordHeader},
    maps,
};

use super::bpffs::PinDir;

/// A capture running on one session.
pub struct Capture {
    ring: RingBuf<MapData>,
    session: Array<MapData, u32>,
    slot: u32,
}

impl Capture {
    /// Starts capturing the session in `slot` (records left by an earlier capture
    /// are dropped first).
    pub fn start(pins: &PinDir, slot: u32) -> anyhow::Result<Self> {
        let open = |name: &str| {
            MapData::from_pin(pins.object(name)).with_context(|| {
                format!("opening the pinned map {name} (is the agent running with XDP?)")
            })
        };
        let mut session: Array<MapData, u32> =
            Array::try_from(Map::Array(open(maps::CAPTURE_SESSION)?))?;
        let mut ring = RingBuf::try_from(Map::RingBuf(open(maps::CAPTURE)?))?;
        let current = session.get(&0, 0)?;
        if current != 0 {
            bail!(
                "another capture is running (on slot {}); one at a time",
                current - 1
            );
        }
        while ring.next().is_some() {}
        session.set(0, slot + 1, 0)?;
        Ok(Self {
            ring,
            session,
            slot,
        })
    }

    /// Whether the capture still runs (the agent stops it when the session ends).
    pub fn armed(&self) -> bool {
        self.session.get(&0, 0).is_ok_and(|s| s == self.slot + 1)
    }

    /// The next record, if one is there: its header and packet bytes (records of
    /// another slot, which a capture before this one may have left, are skipped).
    pub fn next_record(&mut self) -> Option<(RecordHeader, Vec<u8>)> {
        loop {
            let item = self.ring.next()?;
            if let Some((header, data)) = Record::parse(&item)
                && header.slot == self.slot
            {
                return Some((header, data.to_vec()));
            }
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.armed() {
            let _ = self.session.set(0, 0, 0);
        }
    }
}
