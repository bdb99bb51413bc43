//! Next hops for forwarded packets: `bpf_fib_lookup` answers, cached per destination
//! in `NEXT_HOPS` for `NEXT_HOP_TTL_JIFFIES`. The FIB lookup is about two thirds of a
//! decapsulation's cost when done per packet (`tests/benches/xdp/main.rs`); the cache
//! turns it into one hash lookup, and a per-CPU direct-mapped array of slots in front
//! of it into an array lookup (no hash of a key, no compare loop: the XDP bench
//! measured decap at 0.70x a bare redirect with the hash alone, 0.79x with the slots).
//! A slot copies the cache entry's expiry, so it is never staler than the shared
//! entry; the slots are not pinned, so every load starts empty. Policy routing by
//! source address is not cached per source: one destination, one next hop.

use aya_ebpf::{
    EbpfContext,
    bindings::bpf_fib_lookup as FibParams,
    helpers::{bpf_fib_lookup, bpf_jiffies64},
};
use aya_ebpf::{macros::map, maps::PerCpuArray};
use pptp_common::session::{NEXT_HOP_TTL_JIFFIES, NextHop};

use crate::maps::NEXT_HOPS;

/// A per-CPU copy of one `NEXT_HOPS` entry.
#[repr(C)]
#[derive(Clone, Copy)]
struct HopSlot {
    dst: [u8; 4],
    _pad: u32,
    hop: NextHop,
}

/// Slots per CPU (a power of two).
const SLOTS: u32 = 1024;

#[map(name = "HOP_SLOTS")]
static HOP_SLOTS: PerCpuArray<HopSlot> = PerCpuArray::with_max_entries(SLOTS, 0);

const AF_INET: u8 = 2;
const BPF_FIB_LKUP_RET_SUCCESS: i64 = 0;

/// Where a packet from `src` to `dst` leaves, or `None` when the kernel must decide
/// (no route, neighbour not resolved, needs fragmenting, ...). The lookup is made as
/// for a packet forwarded after arriving on `ifindex` (for TC egress: the session
/// device; an output lookup would pin the route to that device).
///
/// The answer is this CPU's slot, read in place until the program ends: copying it
/// out would split the MAC addresses into bytes held (spilled) across the helper
/// calls that resize the frame, before the Ethernet header is written.
#[inline(always)]
pub fn lookup<C: EbpfContext>(
    ctx: &C,
    ifindex: u32,
    src: [u8; 4],
    dst: [u8; 4],
    tot_len: u16,
) -> Option<&'static NextHop> {
    // SAFETY: helper calls with valid arguments.
    let now = unsafe { bpf_jiffies64() };
    // Fibonacci hashing of the address picks the slot.
    let index = (u32::from_ne_bytes(dst).wrapping_mul(2_654_435_761) >> 22) & (SLOTS - 1);
    let slot = HOP_SLOTS.get_ptr_mut(index)?;
    // SAFETY: this CPU's slot, a map value that lives as long as the program; no
    // other program instance touches it concurrently.
    let slot: &'static mut HopSlot = unsafe { &mut *slot };
    if slot.dst == dst && slot.hop.expires > now {
        return Some(&slot.hop);
    }
    if let Some(cached) = unsafe { NEXT_HOPS.get(dst) }
        && cached.expires > now
    {
        slot.dst = dst;
        slot.hop = *cached;
        return Some(&slot.hop);
    }
    // SAFETY: an all-zero bpf_fib_lookup is a valid (empty) parameter block.
    let mut params: FibParams = unsafe { core::mem::zeroed() };
    params.family = AF_INET;
    params.__bindgen_anon_1.tot_len = tot_len;
    params.ifindex = ifindex;
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    // SAFETY: params is a full bpf_fib_lookup of the size passed.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.as_ptr(),
            &mut params,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    if rc != BPF_FIB_LKUP_RET_SUCCESS {
        return None;
    }
    let hop = NextHop {
        ifindex: params.ifindex,
        smac: params.smac,
        dmac: params.dmac,
        expires: now + NEXT_HOP_TTL_JIFFIES,
    };
    let _ = NEXT_HOPS.insert(dst, hop, 0);
    slot.dst = dst;
    slot.hop = hop;
    Some(&slot.hop)
}
