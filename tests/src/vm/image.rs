//! The interop VM's boot files, built from Debian packages by `tests/vm/build-image.sh`
//! and cached outside the clone, under [`CACHE_ROOT`]`/<key>/`, where the key hashes
//! everything the image is made from (the build script, the guest's `/init`, the suite,
//! the mirror and the package list). A clean clone on the same machine reuses the
//! image; a changed recipe or a fresh machine builds it again (a few minutes, once).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};
use sha1::{Digest as _, Sha1};

/// Where built images are kept, one directory per recipe key.
pub const CACHE_ROOT: &str = "/var/cache/pptp-xdp/vm";
/// The Debian release the guest runs.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What the guest needs. `linux-image-amd64` follows Debian's current kernel (old
/// versions leave the mirror); it has the ppp_generic, ppp_mppe, pptp and gre modules.
pub const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "ppp",
    "pptp-linux",
    "pptpd",
    "iproute2",
    "iputils-ping",
    "socat",
    "kmod",
    "busybox",
];

/// A built image.
#[derive(Clone, Debug)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

fn recipe_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vm")
}

/// The cache key of the current recipe.
pub fn key() -> anyhow::Result<String> {
    let mut hash = Sha1::new();
    for file in ["build-image.sh", "init.sh"] {
        let path = recipe_dir().join(file);
        hash.update(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        hash.update([0]);
    }
    for part in [SUITE, MIRROR].iter().chain(PACKAGES) {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

/// The image of the current recipe, built first if the cache lacks it. Images of
/// other recipes are removed once the current one is built.
pub fn ensure() -> anyhow::Result<Image> {
    let dir = Path::new(CACHE_ROOT).join(key()?);
    let image = Image {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.cpio"),
    };
    if image.kernel.is_file() && image.initrd.is_file() {
        return Ok(image);
    }
    for tool in ["debootstrap", "cpio"] {
        ensure!(
            crate::netns::output(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
                .is_ok(),
            "building the interop VM image needs {tool} (run `cargo xtask setup`)"
        );
    }
    std::fs::create_dir_all(CACHE_ROOT).with_context(|| format!("creating {CACHE_ROOT}"))?;
    eprintln!(
        "pptp-tests: building the interop VM image in {} (Debian {SUITE}; a few minutes, once per recipe)",
        dir.display()
    );
    let status = Command::new(recipe_dir().join("build-image.sh"))
        .arg(&dir)
        .arg(recipe_dir().join("init.sh"))
        .args([SUITE, MIRROR])
        .args(PACKAGES)
        .status()
        .context("running tests/vm/build-image.sh")?;
    // A concurrent build may have won the race; its result is as good as ours.
    if !(image.kernel.is_file() && image.initrd.is_file()) {
        bail!("tests/vm/build-image.sh failed ({status})");
    }
    remove_other_images(&dir);
    Ok(image)
}

fn remove_other_images(current: &Path) {
    let Ok(entries) = std::fs::read_dir(CACHE_ROOT) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_build_leftover = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".build."));
        // Builds in progress (ours or another process's) are left alone.
        if path != current && path.is_dir() && !is_build_leftover {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
