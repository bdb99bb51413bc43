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

    /// The `N` bytes at `offset`, checked once to lie inside the packet, for several
    /// writes into them ([`Span::write`]); `None` if the packet is too short. Each
    /// [`Bytes::write`] reloads the packet's bounds and compares again (a store to the
    /// packet may, for all LLVM knows, change the context it reads them from).
    #[inline(always)]
    fn span<const N: usize>(&self, offset: usize) -> Option<Span<N>> {
        let at = self.start() + offset;
        if at + N > self.end() {
            return None;
        }
        Some(Span(at))
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

/// `N` bytes of a packet known to lie inside it ([`Bytes::span`]). Valid until the
/// packet is resized (a helper that moves its head or tail).
pub struct Span<const N: usize>(usize);

impl<const N: usize> Span<N> {
    /// Overwrites `M` bytes at `offset` of the span; `None` if they do not fit in it.
    #[inline(always)]
    pub fn write<const M: usize>(&self, offset: usize, bytes: &[u8; M]) -> Option<()> {
        if offset + M > N {
            return None;
        }
        // SAFETY: the span's N bytes were checked to lie inside the packet.
        unsafe { *((self.0 + offset) as *mut [u8; M]) = *bytes };
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
