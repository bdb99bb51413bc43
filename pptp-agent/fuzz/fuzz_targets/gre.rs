//! Fuzzes the enhanced GRE codec: whatever parses re-encodes byte-identical, and its
//! sequence and acknowledgment numbers go through the receive window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pptp_agent::gre::{GreHeader, Sequencer};

fuzz_target!(|data: &[u8]| {
    let mut window = Sequencer::default();
    for packet in data.split(|&b| b == 0x7e) {
        if let Ok((header, payload)) = GreHeader::parse(packet) {
            let mut again = Vec::new();
            header.emit(&mut again);
            again.extend_from_slice(payload);
            assert_eq!(again, packet);
            window.on_header(&header);
            let _ = window.data_header(header.call_id, header.payload_len);
            let _ = window.ack_only_header(header.call_id);
        }
    }
});
