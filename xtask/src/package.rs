//! `cargo xtask package`: a Debian package of the agent, built with `dpkg-deb` (no
//! debhelper, no cargo-deb: the package is small and this keeps its layout in one
//! place). It holds
//!
//! - `/usr/sbin/pptp-agent` (a release build unless `--debug`);
//! - `/lib/systemd/system/pptp-agent.service`, the unit of
//!   pptp-agent/examples/pptp-agent.service with the binary's packaged path;
//! - the example configuration and chap-secrets in
//!   `/usr/share/doc/pptp-agent/examples/` (nothing in /etc: the service is neither
//!   enabled nor started until the operator has written a configuration);
//! - man pages and bash, zsh and fish completions that `pptp-agent generate` makes
//!   from the clap definitions.
//!
//! Dependencies come from `dpkg-shlibdeps` on the binary. `cargo xtask test` packages
//! its own build and hands the file to tests/tests/package.rs in `PPTP_AGENT_DEB`.

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};
use clap::Args;

use crate::cmd;

#[derive(Args)]
pub struct PackageArgs {
    /// Package a debug build (faster to build; what `cargo xtask test` installs).
    #[arg(long)]
    debug: bool,
}

pub fn run(args: PackageArgs) -> anyhow::Result<()> {
    let agent = cmd::build_agent(!args.debug)?;
    let deb = build(&agent, !args.debug)?;
    println!("{}", deb.display());
    Ok(())
}

/// Packages the agent binary `agent`; returns the `.deb`'s path (under
/// `target/debian/`). A `release` package is xz-compressed (dpkg's default); a
/// debug one fast (gzip -1: xz takes over a minute on a debug binary's 120 MB).
pub fn build(agent: &Path, release: bool) -> anyhow::Result<PathBuf> {
    let version = env!("CARGO_PKG_VERSION");
    let arch = cmd::stdout_of(Command::new("dpkg").arg("--print-architecture"))
        .context("dpkg --print-architecture (a Debian system is needed)")?
        .trim()
        .to_owned();
    let out = cmd::target_dir().join("debian");
    let tree = out.join("pptp-agent");
    if tree.exists() {
        fs::remove_dir_all(&tree)?;
    }
    let examples = cmd::root().join("pptp-agent/examples");

    install(agent, &tree.join("usr/sbin/pptp-agent"), 0o755)?;
    let unit = fs::read_to_string(examples.join("pptp-agent.service"))?
        .replace("/usr/local/sbin/pptp-agent", "/usr/sbin/pptp-agent");
    write(
        &tree.join("lib/systemd/system/pptp-agent.service"),
        &unit,
        0o644,
    )?;
    let doc = tree.join("usr/share/doc/pptp-agent");
    for example in ["pptp-agent.toml", "chap-secrets", "router-seattle.toml"] {
        install(
            &examples.join(example),
            &doc.join("examples").join(example),
            0o644,
        )?;
    }
    write(
        &doc.join("copyright"),
        "pptp-xdp: PPTP concentrator with an XDP data plane.\nLicense: MIT OR Apache-2.0\n",
        0o644,
    )?;

    let generated = out.join("generated");
    if generated.exists() {
        fs::remove_dir_all(&generated)?;
    }
    cmd::run(
        Command::new(agent)
            .arg("generate")
            .arg("--out")
            .arg(&generated),
    )?;
    let man1 = tree.join("usr/share/man/man1");
    fs::create_dir_all(&man1)?;
    for page in fs::read_dir(generated.join("man"))? {
        let page = page?.path();
        let name = page
            .file_name()
            .context("a man page")?
            .to_string_lossy()
            .into_owned();
        let gz = man1.join(format!("{name}.gz"));
        // -n: no name or time stamp, so the package is reproducible.
        let zipped = Command::new("gzip").args(["-9nc"]).arg(&page).output()?;
        ensure!(zipped.status.success(), "gzip {}", page.display());
        write_bytes(&gz, &zipped.stdout, 0o644)?;
    }
    let completions = generated.join("completions");
    for (file, dest) in [
        (
            "pptp-agent.bash",
            "usr/share/bash-completion/completions/pptp-agent",
        ),
        (
            "_pptp-agent",
            "usr/share/zsh/vendor-completions/_pptp-agent",
        ),
        (
            "pptp-agent.fish",
            "usr/share/fish/vendor_completions.d/pptp-agent.fish",
        ),
    ] {
        install(&completions.join(file), &tree.join(dest), 0o644)?;
    }

    let depends = shlib_depends(&out, agent)?;
    let installed_kib = du_kib(&tree)?;
    let control = format!(
        "Package: pptp-agent\n\
         Version: {version}\n\
         Architecture: {arch}\n\
         Maintainer: pptp-xdp developers <pptp-xdp@example.invalid>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Section: net\n\
         Priority: optional\n\
         Homepage: https://example.invalid/pptp-xdp\n\
         Description: PPTP VPN concentrator and calling router with an XDP data plane\n \
         pptp-agent answers and places PPTP calls, runs PPP (MS-CHAPv2, MPPE) and\n \
         forwards sessions in eBPF/XDP, with RADIUS authentication, accounting and\n \
         dynamic authorization. The systemd unit is installed but not enabled:\n \
         write /etc/pptp-xdp/pptp-agent.toml first (examples in\n \
         /usr/share/doc/pptp-agent/examples).\n"
    );
    write(&tree.join("DEBIAN/control"), &control, 0o644)?;

    let deb = out.join(format!("pptp-agent_{version}_{arch}.deb"));
    let mut dpkg_deb = Command::new("dpkg-deb");
    if !release {
        dpkg_deb.args(["-Zgzip", "-z1"]);
    }
    cmd::run(
        dpkg_deb
            .args(["--root-owner-group", "--build"])
            .arg(&tree)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// The `Depends` of the shared libraries `binary` links, from `dpkg-shlibdeps`
/// (which wants a `debian/control` beside it).
fn shlib_depends(out: &Path, binary: &Path) -> anyhow::Result<String> {
    let dir = out.join("shlibdeps");
    write(
        &dir.join("debian/control"),
        "Source: pptp-agent\n\nPackage: pptp-agent\nArchitecture: any\n",
        0o644,
    )?;
    let found = cmd::stdout_of(
        Command::new("dpkg-shlibdeps")
            .current_dir(&dir)
            .arg("-O")
            .arg(binary),
    )
    .context("dpkg-shlibdeps (package dpkg-dev) failed")?;
    found
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .map(str::to_owned)
        .context("dpkg-shlibdeps named no dependencies")
}

/// Kibibytes under `dir` (for Installed-Size).
fn du_kib(dir: &Path) -> anyhow::Result<u64> {
    let out = cmd::stdout_of(Command::new("du").args(["-sk"]).arg(dir)).context("du")?;
    out.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("du's output")
}

fn install(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let bytes = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_bytes(to, &bytes, mode)
}

fn write(to: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    write_bytes(to, text.as_bytes(), mode)
}

fn write_bytes(to: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::create_dir_all(to.parent().context("a file in a directory")?)?;
    let _ = fs::remove_file(to);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(to)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", to.display()))
}
