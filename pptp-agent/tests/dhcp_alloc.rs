//! The DHCPINFORM responder allocates nothing per packet: a counting global allocator
//! sees no allocation across thousands of answered, ignored and refused packets once the
//! reply buffer has `MAX_REPLY_LEN` capacity.

mod dhcp_support;
mod support;

use dhcp_support::*;
use pptp_agent::dhcp::{DhcpInformResponder, MAX_REPLY_LEN};
use support::alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_packet() {
    let r = DhcpInformResponder::new(config()).unwrap();
    let inform = windows_inform();
    let mut big = windows_options(8);
    big.extend_from_slice(&[57, 2, 0xff, 0xff]);
    let big = ipv4_udp(CLIENT, SERVER, 68, 67, &bootrequest(CLIENT, &big), true);
    let mut damaged = inform.clone();
    damaged[300] ^= 1;
    let other = ipv4_udp(
        CLIENT,
        SERVER,
        68,
        67,
        &bootrequest(CLIENT, &windows_options(3)),
        true,
    );
    let mut reply = Vec::with_capacity(MAX_REPLY_LEN);
    let before = allocations();
    let mut answered = 0;
    for _ in 0..5000 {
        for p in [&inform, &big, &damaged, &other] {
            if let Ok(Some(_)) = r.respond(p, &mut reply) {
                answered += 1;
            }
        }
    }
    let after = allocations();
    assert_eq!(answered, 10_000);
    assert_eq!(after - before, 0, "allocations on the per-packet path");
}
