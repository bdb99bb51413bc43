//! `pptp-agent check-config FILE`: validates a configuration and the chap-secrets
//! file it names, without starting anything. Prints a summary and exits 0, or
//! prints every problem as `file:line: key: message` and exits 1. Warnings (valid
//! but probably unintended, e.g. a user allowed no address) go to stderr and do not
//! fail the check.

use std::path::{Path, PathBuf};

use clap::Args;
use pptp_agent::config::Config;

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    /// The configuration file.
    #[arg(value_name = "FILE", default_value = pptp_agent::config::DEFAULT_PATH)]
    file: PathBuf,
}

/// What `check-config` prints: (stdout, stderr, exit code).
fn check(file: &Path) -> (String, String, i32) {
    let failed = |errors: pptp_agent::config::Diagnostics| {
        let n = errors.0.len();
        let plural = if n == 1 { "" } else { "s" };
        (String::new(), format!("{errors}\n{n} error{plural}\n"), 1)
    };
    let config = match Config::load(file) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let (users, warnings) = match config.load_users() {
        Ok(u) => u,
        Err(e) => return failed(e),
    };
    let stderr: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
    let stdout = format!("{}{}: OK\n", config.summary(&users), file.display());
    (stdout, stderr, 0)
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let (stdout, stderr, code) = check(&args.file);
    print!("{stdout}");
    eprint!("{stderr}");
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_warnings_and_errors() {
        let dir = std::env::temp_dir().join(format!("pptp-check-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let config = dir.join("pptp-agent.toml");
        std::fs::write(
            &config,
            "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.19\"]\n\
             [auth]\nsecrets = \"chap-secrets\"\n[users.bob]\ndial_in = \"deny\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("chap-secrets"), "alice * pw *\nbob * pw\n").unwrap();
        let secrets_mode = |mode| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.join("chap-secrets"),
                std::fs::Permissions::from_mode(mode),
            )
            .unwrap()
        };
        secrets_mode(0o600);
        let (out, err, code) = check(&config);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!(
                "listen: 0.0.0.0:1723\n\
                 interfaces: uplink none, lan none, tun pptp0\n\
                 tunnel: local 192.0.2.1, pool 192.0.2.10-192.0.2.19 (10 addresses), 0 static\n\
                 users: 2 in {d}/chap-secrets, dial-in default allow, denied: bob\n\
                 auth: mschapv2\n\
                 mppe: deny\n\
                 limits: 1000 sessions, unlimited per user, 10 connections per source, handshake 30 s\n\
                 unauthenticated calls: 4 per connection, 16 per source; 0 peer entries; login back-off after 5 failures, 60 s\n\
                 {d}/pptp-agent.toml: OK\n"
            )
        );
        assert_eq!(
            err,
            format!(
                "warning: {d}/chap-secrets:2: addresses: no address allowed (a line without \
                 addresses, or `-`): IPCP will fail; write `*` to let the pool choose\n"
            )
        );

        secrets_mode(0o644);
        let (_, err, code) = check(&config);
        assert_eq!(code, 0, "a warning does not fail the check");
        assert!(
            err.contains(&format!(
                "warning: {d}/chap-secrets: readable by group and others (mode 644)"
            )),
            "{err}"
        );

        std::fs::write(
            &config,
            "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.0/24\"]\n\
             [mppe]\nbits = [64]\n",
        )
        .unwrap();
        let (out, err, code) = check(&config);
        assert_eq!((out.as_str(), code), ("", 1));
        assert_eq!(
            err,
            format!(
                "{d}/pptp-agent.toml:3: tunnel.pools: 192.0.2.1-192.0.2.254 contains the local \
                 address 192.0.2.1 (tunnel.local_ip)\n\
                 {d}/pptp-agent.toml:5: mppe.bits: 64 is not one of 40, 56, 128\n\
                 2 errors\n"
            )
        );

        std::fs::write(
            &config,
            "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10\"]\n\
             [auth]\nsecrets = \"chap-secrets\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("chap-secrets"), "alice * \"pw\n").unwrap();
        let (_, err, code) = check(&config);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            format!("{d}/chap-secrets:1: syntax: unterminated quoted string\n1 error\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
