//! Real third-party peers in a VM: Debian's kernel, pppd, pptp-linux and pptpd under
//! qemu, on the lab's WAN, driven by the host ([`Guest::run`]).
//!
//! - [`image`]: the boot files, built from Debian packages and cached per recipe.
//! - [`guest`]: booting the VM into a lab and running commands in it.

pub mod guest;
pub mod image;

pub use guest::{GUEST_WAN, Guest, GuestOutput};
pub use image::Image;
