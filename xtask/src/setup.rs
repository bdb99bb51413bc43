//! `cargo xtask setup`: install what the build and the tests need (the pinned
//! nightly, bpf-linker, cargo-fuzz, Debian packages), check the machine
//! (root, BPF, bpffs, namespaces) and name precisely what is missing, then make sure
//! the interop VM image is in the machine's cache (`pptp_tests::vm::image`).
//! Every step is skipped when already done, so running it again costs seconds.

use std::{path::Path, process::Command};

use anyhow::bail;

use crate::cmd::{self, stdout_of, succeeds};

/// The bpf-linker release the BPF build is checked with.
const BPF_LINKER_VERSION: &str = "0.10.0";
/// The cargo-fuzz release that builds and runs the fuzz targets.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Debian packages used by the build, the tests, the demo and the benchmarks.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "network namespaces, veth, bridges (`ip`)"),
    (
        "tshark",
        "independent dissection of what the agent puts on the wire",
    ),
    ("bpftool", "inspecting pinned maps and programs"),
    ("ethtool", "interface offload settings in the lab"),
    ("iputils-ping", "ping through the tunnels"),
    (
        "nftables",
        "packet loss induced in tests (no netem in this kernel)",
    ),
    ("iperf3", "TCP throughput in the demo and benchmarks"),
    (
        "freeradius",
        "the RADIUS server the RADIUS tests run against",
    ),
    (
        "freeradius-utils",
        "radclient: Disconnect and CoA requests in the RADIUS tests",
    ),
    (
        "freeradius-postgresql",
        "rlm_sql's PostgreSQL driver: the fleet test's SQL pool and radacct",
    ),
    (
        "postgresql",
        "the database of the fleet test's FreeRADIUS (rlm_sqlippool, rlm_sql)",
    ),
    ("dpkg-dev", "dpkg-shlibdeps for cargo xtask package"),
    (
        "qemu-system-x86",
        "the interop VM (real pppd, pptp-linux and pptpd peers)",
    ),
    (
        "debootstrap",
        "building the interop VM image from Debian packages",
    ),
    ("cpio", "packing the interop VM image into its initramfs"),
    (
        "systemd",
        "systemd-analyze: the test that verifies the example unit",
    ),
];

pub fn run() -> anyhow::Result<()> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push(
            "root: installing packages, BPF, namespaces and bpffs all need it (run as root)"
                .to_owned(),
        );
        return report(&missing);
    }
    install_nightly()?;
    install_bpf_linker()?;
    install_cargo_fuzz()?;
    install_debian_packages()?;
    check_machine(&mut missing);
    if missing.is_empty() {
        build_vm_image()?;
    }
    report(&missing)
}

/// The interop test's VM image: reused from the machine's cache, built (a few
/// minutes, from Debian packages) when the cache lacks the current recipe.
fn build_vm_image() -> anyhow::Result<()> {
    let image = pptp_tests::vm::image::ensure()?;
    eprintln!("xtask: interop VM image ready ({})", image.initrd.display());
    Ok(())
}

fn install_nightly() -> anyhow::Result<()> {
    const COMPONENTS: [&str; 3] = ["rust-src", "clippy", "rustfmt"];
    let toolchain = cmd::pinned_toolchain()?;
    let installed = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        &toolchain,
    ]))
    .unwrap_or_default();
    let has = |component: &str| {
        installed
            .lines()
            .any(|line| line == component || line.starts_with(&format!("{component}-")))
    };
    if COMPONENTS.iter().all(|c| has(c)) {
        return Ok(());
    }
    cmd::run(Command::new("rustup").args([
        "toolchain",
        "install",
        &toolchain,
        "--profile",
        "minimal",
        "--component",
        &COMPONENTS.join(","),
    ]))
}

fn install_bpf_linker() -> anyhow::Result<()> {
    let version = stdout_of(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    cmd::run(cmd::cargo().args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
    ]))
}

/// cargo-fuzz, which `cargo xtask test` and `cargo xtask fuzz` run the fuzz targets
/// with.
pub fn install_cargo_fuzz() -> anyhow::Result<()> {
    let version = stdout_of(Command::new("cargo-fuzz").arg("--version")).unwrap_or_default();
    if version.split_whitespace().any(|v| v == CARGO_FUZZ_VERSION) {
        return Ok(());
    }
    cmd::run(cmd::cargo().args([
        "install",
        &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
        "--locked",
    ]))
}

fn install_debian_packages() -> anyhow::Result<()> {
    let absent: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            stdout_of(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
                .is_none_or(|status| !status.contains("install ok installed"))
        })
        .collect();
    if absent.is_empty() {
        return Ok(());
    }
    cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&absent)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// What the kernel and the machine must offer; each gap goes into `missing`.
fn check_machine(missing: &mut Vec<String>) {
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        missing.push(
            "kernel BTF (/sys/kernel/btf/vmlinux): a kernel built with CONFIG_DEBUG_INFO_BTF"
                .into(),
        );
    }
    if !succeeds(Command::new("bpftool").args(["prog", "list"])) {
        missing.push("the bpf() syscall: `bpftool prog list` failed (CONFIG_BPF_SYSCALL, or a seccomp/LSM policy forbids it)".into());
    }
    if !Path::new("/proc/self/ns/net").exists() {
        missing.push("network namespaces (CONFIG_NET_NS)".into());
    }
    let probe = format!("pxl-setup-probe-{}", std::process::id());
    if succeeds(Command::new("ip").args(["netns", "add", &probe])) {
        let veth = succeeds(Command::new("ip").args([
            "-n", &probe, "link", "add", "name", "probe0", "type", "veth", "peer", "name", "probe1",
        ]));
        let bridge = succeeds(Command::new("ip").args([
            "-n", &probe, "link", "add", "name", "probe2", "type", "bridge",
        ]));
        let _ = succeeds(Command::new("ip").args(["netns", "del", &probe]));
        if !veth {
            missing.push("veth devices (CONFIG_VETH)".into());
        }
        if !bridge {
            missing.push("bridge devices (CONFIG_BRIDGE)".into());
        }
    } else {
        missing.push("`ip netns add` failed: network namespaces unavailable".into());
    }
    if let Err(e) = pptp_tests::bpffs::TempBpffs::for_test("setup-probe") {
        missing.push(format!("bpffs: {e:#}"));
    }
}

fn report(missing: &[String]) -> anyhow::Result<()> {
    if missing.is_empty() {
        eprintln!(
            "xtask: setup complete: toolchains, packages, root, BPF, BTF and namespaces are all here"
        );
        return Ok(());
    }
    for item in missing {
        eprintln!("xtask: missing: {item}");
    }
    bail!(
        "this machine lacks {} prerequisite(s), listed above",
        missing.len()
    )
}
