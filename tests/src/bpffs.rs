//! A bpffs mounted for one test or lab, unmounted and removed when dropped.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Context as _;

/// A private bpffs mount.
pub struct TempBpffs {
    path: PathBuf,
}

impl TempBpffs {
    /// Mounts a new bpffs at `path` (created if needed).
    pub fn mount(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        nix::mount::mount(
            Some("bpf"),
            &path,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting bpffs at {} (needs root)", path.display()))?;
        Ok(Self { path })
    }

    /// Mounts a bpffs under /run unique to this process and call.
    pub fn for_test(name: &str) -> anyhow::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self::mount(format!(
            "/run/pptp-xdp-test/{}-{n}-{name}",
            std::process::id()
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBpffs {
    fn drop(&mut self) {
        // MNT_DETACH: an object still open somewhere must not keep the mount busy.
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Memory locked by the maps pinned under `dir` (what bpftool reports as
/// bytes_memlock, summed).
pub fn pinned_map_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let out = crate::netns::output(
            std::process::Command::new("bpftool")
                .args(["-j", "map", "show", "pinned"])
                .arg(&path),
        )
        .with_context(|| format!("bpftool map show pinned {}", path.display()))?;
        let map: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        total += map["bytes_memlock"].as_u64().unwrap_or(0);
    }
    Ok(total)
}
