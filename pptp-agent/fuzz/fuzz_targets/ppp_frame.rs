//! PPP framing and the control-packet/option-list parsers on arbitrary bytes; what
//! parses must re-encode to something that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pptp_agent::ppp::frame::{self, Frame, Framing};
use pptp_agent::ppp::packet::{self, Packet};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = Frame::parse(data) {
        for (acfc, pfc) in [(false, false), (true, true)] {
            let bytes = frame::encode(Framing { acfc, pfc }, f.protocol, f.info);
            assert_eq!(Frame::parse(&bytes), Ok(f));
        }
        if let Ok(p) = Packet::parse(f.info) {
            assert_eq!(Packet::parse(&p.to_vec()), Ok(p));
            if let Ok(opts) = packet::parse_options(p.data) {
                let mut again = Vec::new();
                opts.iter().for_each(|o| o.emit(&mut again));
                assert_eq!(again, p.data);
            }
        }
    }
});
