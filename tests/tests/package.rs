//! The Debian package of `cargo xtask package` (`PPTP_AGENT_DEB`; `cargo xtask
//! test` builds one from its agent) installed on this machine with `dpkg -i`: the
//! binary answers `--help`, `check-config` accepts the packaged example
//! configuration (with the packaged example chap-secrets beside it: the example
//! points at /etc/ppp/chap-secrets, which this machine need not have), the unit
//! runs the packaged binary, the man pages and completions are where man and the
//! shells look; `dpkg --purge` removes it all. Needs root. Refuses to run if a
//! `pptp-agent` package is installed already (it would replace it).

use std::{path::Path, process::Command};

const PACKAGE: &str = "pptp-agent";
const EXAMPLES: &str = "/usr/share/doc/pptp-agent/examples";

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).status();
    }
}

#[test]
fn the_package_installs_checks_its_example_and_goes() {
    let deb = std::env::var_os("PPTP_AGENT_DEB").expect(
        "PPTP_AGENT_DEB is not set: build the package with `cargo xtask package --debug` \
         and set PPTP_AGENT_DEB to the .deb it prints (`cargo xtask test` does both)",
    );
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "dpkg -i needs root: run the test as root"
    );
    assert!(
        !installed(),
        "a {PACKAGE} package is installed already: this test would replace it"
    );
    let guard = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());

    let bin = Path::new("/usr/sbin/pptp-agent");
    let help = run(Command::new(bin).arg("--help"));
    let help = String::from_utf8_lossy(&help.stdout);
    for sub in ["serve", "dial", "check-config", "stats"] {
        assert!(help.contains(sub), "--help names {sub}:\n{help}");
    }

    // The example as shipped: everything but the secrets file it names checks.
    let example = Path::new(EXAMPLES).join("pptp-agent.toml");
    let shipped = Command::new(bin)
        .arg("check-config")
        .arg(&example)
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&shipped.stderr).into_owned()
        + &String::from_utf8_lossy(&shipped.stdout);
    assert!(
        errors.contains("/etc/ppp/chap-secrets") || shipped.status.success(),
        "{errors}"
    );
    // With the example secrets beside it, as an operator copies both to /etc.
    let dir = std::env::temp_dir().join(format!("pptp-package-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = std::fs::read_to_string(&example).unwrap();
    assert!(toml.contains("secrets = \"/etc/ppp/chap-secrets\""));
    std::fs::write(
        dir.join("pptp-agent.toml"),
        toml.replace(
            "secrets = \"/etc/ppp/chap-secrets\"",
            "secrets = \"chap-secrets\"",
        ),
    )
    .unwrap();
    std::fs::copy(
        Path::new(EXAMPLES).join("chap-secrets"),
        dir.join("chap-secrets"),
    )
    .unwrap();
    let checked = run(Command::new(bin)
        .arg("check-config")
        .arg(dir.join("pptp-agent.toml")));
    eprintln!(
        "$ pptp-agent check-config (the example)\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);

    let unit = std::fs::read_to_string("/lib/systemd/system/pptp-agent.service").unwrap();
    assert!(
        unit.contains(
            "ExecStart=/usr/sbin/pptp-agent serve --config /etc/pptp-xdp/pptp-agent.toml"
        ),
        "{unit}"
    );
    assert!(!unit.contains("/usr/local/sbin"), "{unit}");
    let page =
        run(Command::new("gzip").args(["-dc", "/usr/share/man/man1/pptp-agent-check-config.1.gz"]));
    assert!(
        String::from_utf8_lossy(&page.stdout).contains(".TH pptp-agent-check-config 1"),
        "a man page of the subcommand"
    );
    for file in [
        "/usr/share/man/man1/pptp-agent.1.gz",
        "/usr/share/man/man1/pptp-agent-serve.1.gz",
        "/usr/share/bash-completion/completions/pptp-agent",
        "/usr/share/zsh/vendor-completions/_pptp-agent",
        "/usr/share/fish/vendor_completions.d/pptp-agent.fish",
    ] {
        assert!(Path::new(file).is_file(), "{file} installed");
    }
    let bash =
        std::fs::read_to_string("/usr/share/bash-completion/completions/pptp-agent").unwrap();
    assert!(
        bash.contains("check-config"),
        "the completion knows the subcommands"
    );

    run(Command::new("dpkg").args(["--purge", PACKAGE]));
    assert!(!installed());
    assert!(!bin.exists(), "dpkg --purge removed the binary");
    assert!(!Path::new(EXAMPLES).exists());
    drop(guard);
}
