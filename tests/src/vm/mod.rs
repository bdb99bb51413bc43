//! Real third-party peers in a VM: Debian's kernel, pppd, pptp-linux and pptpd under
//! qemu, on the lab's WAN, driven by the host ([`Guest::run`]).
//!
//! - [`image`]: the boot files, built from Debian packages and cached per recipe.
//! - [`guest`]: booting the VM into a lab and running commands in it.
//! - [`traffic`]: ping and a TCP echo from the guest, checked in the guest.

pub mod guest;
pub mod image;
pub mod traffic;

pub use guest::{GUEST_WAN, Guest, GuestOutput};
pub use image::Image;
