//! An mmap of a `BPF_F_MMAPABLE` array map: the shared memory through which the agent
//! reads and writes the session records (`table.rs`) and the client index
//! (`clients.rs`) while the BPF programs use them. Callers access entries only
//! through atomics (or volatile copies for reading).

use std::{os::fd::AsFd, ptr::NonNull};

use anyhow::{Context as _, ensure};
use aya::maps::MapData;

/// The value area of an array map of `T`, mapped.
pub struct Mapped<T> {
    base: NonNull<T>,
    entries: u32,
}

// SAFETY: plain shared memory; every access goes through atomics or volatile reads.
unsafe impl<T> Send for Mapped<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for Mapped<T> {}

impl<T> Mapped<T> {
    /// Maps the `entries` values of `map` (named `name` in errors), whose value size
    /// must be `size_of::<T>()`, a multiple of 8 (the kernel's stride).
    pub fn map(map: &MapData, entries: u32, name: &str) -> anyhow::Result<Self> {
        ensure!(
            size_of::<T>().is_multiple_of(8),
            "{name}: values of {} bytes",
            size_of::<T>()
        );
        // SAFETY: mapping a BPF array map fd, as the kernel documents for
        // BPF_F_MMAPABLE arrays; the length is the map's value area.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::len(entries),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&map.fd().as_fd()),
                0,
            )
        };
        ensure!(
            ptr != libc::MAP_FAILED,
            "mmap of {name} failed: {}",
            std::io::Error::last_os_error()
        );
        let base = NonNull::new(ptr.cast()).context("mmap returned null")?;
        Ok(Self { base, entries })
    }

    fn len(entries: u32) -> usize {
        entries as usize * size_of::<T>()
    }

    /// Entry `i`; panics if out of range.
    pub fn at(&self, i: u32) -> *mut T {
        assert!(i < self.entries, "entry {i} out of range");
        // SAFETY: in bounds of the mapping (checked above).
        unsafe { self.base.as_ptr().add(i as usize) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), Self::len(self.entries)) };
    }
}
