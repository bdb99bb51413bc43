//! Where the data plane's maps are pinned: `<root>/<instance>/` on a bpffs mount.
//!
//! Many machines do not mount bpffs at `/sys/fs/bpf`; the agent mounts it when the
//! root is not already a bpffs. Several agents on one host (the lab runs two) use
//! different instance names.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// `f_type` of a bpffs mount (the kernel's `BPF_FS_MAGIC`).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Default bpffs mount point.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf";
/// Default instance name (sub-directory of the bpffs root).
pub const DEFAULT_INSTANCE: &str = "pptp-xdp";

/// A directory on bpffs holding one agent's pinned maps.
#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
    dir: PathBuf,
}

impl PinDir {
    /// The pin directory for `instance` under the bpffs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>, instance: &str) -> anyhow::Result<Self> {
        if instance.is_empty() || instance.contains('/') || instance.starts_with('.') {
            bail!("invalid instance name {instance:?}: use a plain directory name");
        }
        let root = root.into();
        let dir = root.join(instance);
        Ok(Self { root, dir })
    }

    /// The directory the maps are pinned in.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Path of the pinned object `name`.
    pub fn object(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Makes sure the root is a bpffs (mounting one if it is not) and that the
    /// instance directory exists.
    pub fn prepare(&self) -> anyhow::Result<()> {
        if !is_bpffs(&self.root)? {
            std::fs::create_dir_all(&self.root)
                .with_context(|| format!("creating {}", self.root.display()))?;
            nix::mount::mount(
                Some("bpf"),
                &self.root,
                Some("bpf"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .with_context(|| {
                format!(
                    "{} is not a bpffs and mounting one there failed (needs root)",
                    self.root.display()
                )
            })?;
            tracing::info!(root = %self.root.display(), "mounted bpffs");
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))
    }

    /// Removes the instance directory and everything pinned in it.
    pub fn remove(&self) -> anyhow::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.dir.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `path` is the root of a bpffs mount. A missing path is not.
pub fn is_bpffs(path: &Path) -> anyhow::Result<bool> {
    match nix::sys::statfs::statfs(path) {
        Ok(fs) => Ok(fs.filesystem_type().0 == BPF_FS_MAGIC),
        Err(nix::errno::Errno::ENOENT) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("statfs {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_cannot_escape_the_root() {
        for bad in ["", "a/b", "..", ".hidden"] {
            assert!(PinDir::new("/sys/fs/bpf", bad).is_err(), "{bad:?} accepted");
        }
        let pins = PinDir::new("/sys/fs/bpf", "edge1").unwrap();
        assert_eq!(pins.object("X"), Path::new("/sys/fs/bpf/edge1/X"));
    }

    #[test]
    fn a_plain_directory_is_not_bpffs() {
        assert!(!is_bpffs(Path::new("/")).unwrap());
        assert!(!is_bpffs(Path::new("/nonexistent/pptp-xdp")).unwrap());
    }
}
