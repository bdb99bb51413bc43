//! Bounds-checked access to packet bytes, in the form the verifier accepts: every
//! access is preceded by a comparison of `start + offset + size` with `data_end`.
//!
//! Reads are of whole header chunks (`N >= 2` bytes): for a one-byte read at a
//! variable offset LLVM rewrites `p + 1 > end` as `p >= end`, from which the
//! verifier learns no readable range.

/// The start and end of a packet's bytes, as the program context gives them.
pub trait Bytes {
    fn start(&self) -> usize;
    fn end(&self) -> usize;

    /// Length of the packet.
    #[inline(always)]
    fn len(&self) -> usize {
        self.end() - self.start()
    }

    /// Copies `N` bytes at `offset`, or `None` if the packet is too short.
    #[inline(always)]
    fn read<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        let at = self.start() + offset;
        if at + N > self.end() {
            return None;
        }
        // SAFETY: the comparison above proves all N bytes lie inside the packet.
        Some(unsafe { *(at as *const [u8; N]) })
    }

    /// Overwrites `N` bytes at `offset`; `None` if the packet is too short.
    #[inline(always)]
    fn write<const N: usize>(&self, offset: usize, bytes: &[u8; N]) -> Option<()> {
        let at = self.start() + offset;
        if at + N > self.end() {
            return None;
        }
        // SAFETY: the comparison above proves all N bytes lie inside the packet.
        unsafe { *(at as *mut [u8; N]) = *bytes };
        Some(())
    }
}

impl Bytes for aya_ebpf::programs::XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
}
