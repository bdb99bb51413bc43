//! The XDP program on the uplink: load it from the embedded object with its maps
//! pinned, attach it, and take it away again on shutdown.

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    programs::{Xdp, XdpMode},
};
use pptp_common::maps::PROG_UPLINK;

use super::{BPF_OBJECT, bpffs::PinDir};

/// The loaded BPF object with the uplink program attached.
pub struct Uplink {
    ebpf: Ebpf,
    pins: PinDir,
    interface: String,
}

impl Uplink {
    /// Loads the BPF object (pinning its maps in `pins`) and attaches the uplink
    /// program to `interface`.
    pub fn attach(interface: &str, pins: PinDir) -> anyhow::Result<Self> {
        pins.prepare()?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(pins.path())
            .load(BPF_OBJECT)
            .context("loading the BPF object (needs root or CAP_BPF + CAP_NET_ADMIN)")?;
        let program: &mut Xdp = ebpf
            .program_mut(PROG_UPLINK)
            .with_context(|| format!("the BPF object has no program {PROG_UPLINK}"))?
            .try_into()?;
        program
            .load()
            .context("the kernel rejected the uplink program")?;
        program
            .attach(interface, XdpMode::default())
            .with_context(|| format!("attaching XDP to {interface}"))?;
        tracing::info!(%interface, pins = %pins.path().display(), "uplink program attached");
        Ok(Self {
            ebpf,
            pins,
            interface: interface.to_owned(),
        })
    }

    /// The loaded object, for reading its maps.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// Detaches the program and removes the pinned maps: nothing is left behind.
    pub fn detach(self) -> anyhow::Result<()> {
        let Self {
            ebpf,
            pins,
            interface,
        } = self;
        drop(ebpf);
        pins.remove()?;
        tracing::info!(%interface, "uplink program detached, pins removed");
        Ok(())
    }
}
