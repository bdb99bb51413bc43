//! Builds the BPF programs (`../pptp-ebpf`) and places the object in `OUT_DIR` so that
//! `pptp-agent` embeds it: one binary to deploy.
//!
//! The BPF crate is its own workspace with a pinned nightly (`pptp-ebpf/rust-toolchain.toml`),
//! `-Z build-std=core` and `bpf-linker`. aya-build expects the BPF crate inside this
//! workspace, so this script drives cargo itself. `PPTP_EBPF_OBJECT=<path>` embeds a
//! prebuilt object instead (packaging, cross builds).
//!
//! The same cargo invocation builds the benchmark programs (`pptp-bench`: load
//! generator, sink, bare redirect) into `OUT_DIR/pptp-bench.o`; only the `bench`
//! feature embeds them. With `PPTP_EBPF_OBJECT`, `PPTP_EBPF_BENCH_OBJECT=<path>`
//! names the prebuilt bench object (an empty file stands in when it is not given).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const SETUP_HINT: &str = "run `cargo xtask setup` to install the BPF toolchain";
const BPF_TARGET: &str = "bpfel-unknown-none";

fn main() {
    println!("cargo:rerun-if-env-changed=PPTP_EBPF_OBJECT");
    println!("cargo:rerun-if-env-changed=PPTP_EBPF_BENCH_OBJECT");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let dest = out_dir.join("pptp-ebpf.o");
    let bench_dest = out_dir.join("pptp-bench.o");

    if let Some(prebuilt) = env::var_os("PPTP_EBPF_OBJECT") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        std::fs::copy(&prebuilt, &dest)
            .unwrap_or_else(|e| fail(&format!("PPTP_EBPF_OBJECT={}: {e}", prebuilt.display())));
        match env::var_os("PPTP_EBPF_BENCH_OBJECT") {
            Some(bench) => {
                let bench = PathBuf::from(bench);
                println!("cargo:rerun-if-changed={}", bench.display());
                std::fs::copy(&bench, &bench_dest).unwrap_or_else(|e| {
                    fail(&format!("PPTP_EBPF_BENCH_OBJECT={}: {e}", bench.display()))
                });
            }
            None => std::fs::write(&bench_dest, b"")
                .unwrap_or_else(|e| fail(&format!("writing {}: {e}", bench_dest.display()))),
        }
        return;
    }

    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap();
    let ebpf_dir = workspace.join("pptp-ebpf");
    for watched in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        ".cargo/config.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            ebpf_dir.join(watched).display()
        );
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("pptp-common/src").display()
    );

    let toolchain = pinned_toolchain(&ebpf_dir);
    check_prerequisites(&toolchain);

    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = Command::new("rustup");
    cmd.args(["run", &toolchain, "cargo", "build", "--release", "--locked"])
        .args(["--target", BPF_TARGET, "-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&ebpf_dir);
    // The outer build's compiler settings must not leak into the BPF build (clippy
    // sets a workspace wrapper, coverage tools set RUSTFLAGS, cargo sets RUSTC);
    // the BPF flags come from pptp-ebpf/.cargo/config.toml.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run rustup: {e}")));
    if !status.success() {
        fail(&format!("building the BPF programs failed ({status})"));
    }
    // Both binaries of the BPF crate: the programs and the benchmark programs.
    let release = target_dir.join(BPF_TARGET).join("release");
    for (bin, to) in [("pptp-ebpf", &dest), ("pptp-bench", &bench_dest)] {
        let built = release.join(bin);
        std::fs::copy(&built, to)
            .unwrap_or_else(|e| fail(&format!("copying {}: {e}", built.display())));
    }
}

/// The nightly channel named in `pptp-ebpf/rust-toolchain.toml`.
fn pinned_toolchain(ebpf_dir: &Path) -> String {
    let file = ebpf_dir.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", file.display())));
    text.lines()
        .find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("channel")?
                .trim()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| fail(&format!("no `channel` in {}", file.display())))
}

fn check_prerequisites(toolchain: &str) {
    let sysroot = Command::new("rustup")
        .args(["run", toolchain, "rustc", "--print", "sysroot"])
        .output();
    let sysroot = match sysroot {
        Ok(out) if out.status.success() => {
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        Ok(_) => fail(&format!("the Rust toolchain {toolchain} is not installed")),
        Err(e) => fail(&format!("rustup not found ({e})")),
    };
    if !sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        fail(&format!(
            "the rust-src component of {toolchain} is not installed"
        ));
    }
    let linker_found = env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join("bpf-linker").is_file()))
        .unwrap_or(false);
    if !linker_found {
        fail("bpf-linker is not on PATH");
    }
}

fn fail(what: &str) -> ! {
    panic!(
        "\n\npptp-agent embeds its BPF programs and cannot build them: {what}.\n{SETUP_HINT}.\n\n"
    );
}
