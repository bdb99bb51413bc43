//! Call ID allocation (RFC 2637 §1.3: each side picks its own Call IDs).
//!
//! Our Call ID is the key the peer puts in every GRE packet it sends us, and the data
//! plane looks sessions up by (peer address, Call ID). An ID must therefore never be
//! handed out twice while it is live. It is also what a blind attacker must guess to
//! inject GRE into a session (besides the client's address), so IDs are drawn at
//! random, never in sequence: a few random draws, then (in a nearly full space) a scan
//! from a random point. A freed ID comes back no sooner than any other (one chance in
//! the free space per allocation), so stray GRE of a call that just ended rarely lands
//! in a new call of the same peer.
//!
//! [`CallIdAllocator`] covers the whole space 1..=65535 (0 is never handed out: pptpd
//! uses it for every call, so it is the ID least likely to be unambiguous in logs and
//! captures). It is a bitmap in 64 blocks of 1024 IDs, each block allocated only while
//! one of its IDs is live, so an idle allocator costs under a kilobyte and a full one
//! 8 KiB, and an allocation looks at no more than 65 blocks. One allocator can serve a
//! single control connection or, through [`SharedCallIds`], many: the concentrator
//! shares one among all its connections, because the data plane's lookup key is
//! (peer address, Call ID) and many clients behind one NAT share an address. With
//! IDs drawn per connection, 700 connections from one address would almost surely
//! hold two calls with the same ID (1 - e^(-700²/(2·65535)) ≈ 98%).

use std::sync::{Arc, Mutex, PoisonError};

use rand::{Rng as _, SeedableRng as _, rngs::StdRng};

/// Something that hands out and takes back local Call IDs.
pub trait CallIdPool {
    /// A Call ID that is not live, or `None` if all 65535 are.
    fn allocate(&mut self) -> Option<u16>;
    /// Returns a Call ID handed out by [`allocate`](Self::allocate). Releasing an ID
    /// that is not live does nothing.
    fn release(&mut self, id: u16);
}

const BLOCK_BITS: usize = 1024;
/// Random draws before a scan: with 50,000 of 65,535 IDs live, all 32 miss about
/// once in 6,000 allocations.
const RANDOM_DRAWS: usize = 32;
const BLOCKS: usize = 65536 / BLOCK_BITS;
const WORDS: usize = BLOCK_BITS / 64;

/// Hands out Call IDs 1..=65535 at random, never one that is live.
#[derive(Debug, Clone)]
pub struct CallIdAllocator {
    blocks: Vec<Option<Box<[u64; WORDS]>>>,
    used: [u16; BLOCKS],
    live: usize,
    rng: StdRng,
}

impl Default for CallIdAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl CallIdAllocator {
    /// Usable IDs: every 16-bit value but 0.
    pub const CAPACITY: usize = 65535;

    /// An allocator drawing from the operating system's randomness.
    pub fn new() -> Self {
        Self::with_rng(StdRng::from_os_rng())
    }

    /// An allocator whose draws follow `seed` (tests).
    pub fn seeded(seed: u64) -> Self {
        Self::with_rng(StdRng::seed_from_u64(seed))
    }

    fn with_rng(rng: StdRng) -> Self {
        Self {
            blocks: vec![None; BLOCKS],
            used: [0; BLOCKS],
            live: 0,
            rng,
        }
    }

    /// Number of live IDs.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Whether `id` is live.
    pub fn is_live(&self, id: u16) -> bool {
        let (b, w, bit) = split(id);
        self.blocks[b]
            .as_ref()
            .is_some_and(|words| words[w] & (1 << bit) != 0)
    }

    fn claim(&mut self, id: u16) {
        let (b, w, bit) = split(id);
        let words = self.blocks[b].get_or_insert_with(|| Box::new([0; WORDS]));
        words[w] |= 1 << bit;
        self.used[b] += 1;
        self.live += 1;
    }

    /// First free ID in block `b` at or after in-block offset `from`.
    fn free_in_block(&self, b: usize, from: usize) -> Option<u16> {
        let first_id = b * BLOCK_BITS;
        let Some(words) = &self.blocks[b] else {
            return Some((first_id + from) as u16);
        };
        (from / 64..WORDS).find_map(|w| {
            let mut free = !words[w];
            if w == from / 64 {
                free &= u64::MAX << (from % 64);
            }
            (free != 0).then(|| (first_id + w * 64 + free.trailing_zeros() as usize) as u16)
        })
    }
}

fn split(id: u16) -> (usize, usize, usize) {
    let id = usize::from(id);
    (id / BLOCK_BITS, id % BLOCK_BITS / 64, id % 64)
}

impl CallIdPool for CallIdAllocator {
    fn allocate(&mut self) -> Option<u16> {
        if self.live == Self::CAPACITY {
            return None;
        }
        for _ in 0..RANDOM_DRAWS {
            let id = self.rng.random_range(1..=u16::MAX);
            if !self.is_live(id) {
                self.claim(id);
                return Some(id);
            }
        }
        let cursor = usize::from(self.rng.random_range(1..=u16::MAX));
        let first_block = cursor / BLOCK_BITS;
        // A nearly full space: the random point's block from there on, every other
        // block from its start, then that block again from its start.
        let id = (0..=BLOCKS).find_map(|step| {
            let b = (first_block + step) % BLOCKS;
            let from = match step {
                0 => cursor % BLOCK_BITS,
                _ => usize::from(b == 0),
            };
            if usize::from(self.used[b]) == BLOCK_BITS {
                return None;
            }
            self.free_in_block(b, from)
        })?;
        self.claim(id);
        Some(id)
    }

    fn release(&mut self, id: u16) {
        if !self.is_live(id) {
            return;
        }
        let (b, w, bit) = split(id);
        if let Some(words) = &mut self.blocks[b] {
            words[w] &= !(1 << bit);
        }
        self.used[b] -= 1;
        self.live -= 1;
        if self.used[b] == 0 {
            self.blocks[b] = None;
        }
    }
}

/// A [`CallIdAllocator`] shared by several control connections (for example, every
/// connection from one peer address). Cloning shares the same allocator.
#[derive(Debug, Clone, Default)]
pub struct SharedCallIds(Arc<Mutex<CallIdAllocator>>);

impl SharedCallIds {
    pub fn new(allocator: CallIdAllocator) -> Self {
        Self(Arc::new(Mutex::new(allocator)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut CallIdAllocator) -> T) -> T {
        // The allocator's state stays consistent even if a holder panicked.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Number of live IDs.
    pub fn live(&self) -> usize {
        self.with(|a| a.live())
    }
}

impl CallIdPool for SharedCallIds {
    fn allocate(&mut self) -> Option<u16> {
        self.with(|a| a.allocate())
    }
    fn release(&mut self, id: u16) {
        self.with(|a| a.release(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn fills_all_65535_ids_without_repeats_and_never_0() {
        let mut a = CallIdAllocator::seeded(40_000);
        let mut seen = HashSet::new();
        for _ in 0..CallIdAllocator::CAPACITY {
            let id = a.allocate().unwrap();
            assert_ne!(id, 0);
            assert!(seen.insert(id), "{id} handed out twice");
        }
        assert_eq!(a.allocate(), None);
        assert_eq!(a.live(), 65535);
        a.release(1234);
        assert_eq!(a.allocate(), Some(1234));
        assert_eq!(a.allocate(), None);
    }

    #[test]
    fn ids_do_not_follow_each_other() {
        // Sequential IDs let a blind attacker who saw one call's ID guess the next.
        let mut a = CallIdAllocator::new();
        let ids: Vec<u16> = (0..64).map(|_| a.allocate().unwrap()).collect();
        let successors = ids
            .windows(2)
            .filter(|w| w[1] == w[0].wrapping_add(1))
            .count();
        assert!(
            successors <= 2,
            "{successors} of 63 IDs followed the one before: {ids:?}"
        );
        let spread = ids.iter().max().unwrap() - ids.iter().min().unwrap();
        assert!(spread > 30_000, "64 IDs all within {spread} of each other");
    }

    #[test]
    fn releasing_unknown_ids_is_harmless() {
        let mut a = CallIdAllocator::seeded(5);
        a.release(5);
        a.release(0);
        assert_eq!(a.live(), 0);
        let id = a.allocate().unwrap();
        a.release(id);
        a.release(id);
        assert_eq!(a.live(), 0);
        assert!(a.blocks.iter().all(Option::is_none));
    }

    #[test]
    fn shared_between_connections() {
        let shared = SharedCallIds::new(CallIdAllocator::seeded(100));
        let mut c1 = shared.clone();
        let mut c2 = shared.clone();
        let first = c1.allocate().unwrap();
        assert_ne!(c2.allocate(), Some(first));
        assert_eq!(shared.live(), 2);
        c1.release(first);
        assert_eq!(shared.live(), 1);
    }

    proptest! {
        #[test]
        fn never_hands_out_a_live_id(start in any::<u16>(), ops in proptest::collection::vec(any::<Option<prop::sample::Index>>(), 1..400)) {
            let mut a = CallIdAllocator::seeded(u64::from(start));
            let mut live: Vec<u16> = Vec::new();
            for op in ops {
                match op {
                    None => {
                        let id = a.allocate().unwrap();
                        prop_assert!(id != 0 && !live.contains(&id));
                        live.push(id);
                    }
                    Some(i) if !live.is_empty() => {
                        let id = live.swap_remove(i.index(live.len()));
                        a.release(id);
                    }
                    Some(_) => {}
                }
                prop_assert_eq!(a.live(), live.len());
            }
        }
    }
}
