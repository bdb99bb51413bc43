//! Files that hold secrets must be readable by their owner only: chap-secrets holds
//! passwords or NT hashes (both log in as the user), and a configuration file with a
//! `[radius]` section or demand-dial `password`s holds shared secrets. The agent
//! warns (at start, on reload and in `check-config`) when one is readable by group or
//! others; it does not refuse to run, since the operator may have reasons (a
//! dedicated group) that a file mode cannot show.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use super::Diagnostic;

/// A warning if `path` (holding `what`) is readable by group or others.
pub fn check(path: &Path, what: &str) -> Option<Diagnostic> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (false, false) => return None,
        (true, false) => "group",
        (false, true) => "others",
        (true, true) => "group and others",
    };
    Some(Diagnostic::file(
        path,
        format!("readable by {who} (mode {mode:o}): it holds {what}; chmod 600 it"),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::config::Config;

    const WITH_SECRETS: &str = "[tunnel]\nlocal_ip = \"192.0.2.1\"\npools = [\"192.0.2.10-192.0.2.20\"]\n\
                                [auth]\nsecrets = \"chap-secrets\"\n";

    /// A configuration and a secrets file, both 0600 to begin with.
    struct Files(PathBuf);

    impl Files {
        fn new(tag: &str, config: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("pptp-exposure-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("pptp-agent.toml"), config).unwrap();
            std::fs::write(dir.join("chap-secrets"), "alice * pw *\n").unwrap();
            let f = Files(dir);
            f.chmod("pptp-agent.toml", 0o600);
            f.chmod("chap-secrets", 0o600);
            f
        }

        fn chmod(&self, file: &str, mode: u32) {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(self.0.join(file), std::fs::Permissions::from_mode(mode))
                .unwrap();
        }

        fn config(&self) -> PathBuf {
            self.0.join("pptp-agent.toml")
        }

        fn d(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn files_holding_secrets_readable_by_others_are_warned_about() {
        let warnings = |f: &Files| -> Vec<String> {
            let c = Config::load(f.config()).unwrap();
            let (_, warnings) = c.load_users().unwrap();
            warnings.iter().map(|w| w.to_string()).collect()
        };
        let radius = format!(
            "{WITH_SECRETS}[radius]\n[[radius.servers]]\nacct = \"127.0.0.1\"\nsecret = \"s3cret\"\n"
        );
        let f = Files::new("exposed", &radius);
        assert_eq!(warnings(&f), Vec::<String>::new(), "0600: nothing to say");
        f.chmod("chap-secrets", 0o644);
        f.chmod("pptp-agent.toml", 0o640);
        let d = f.d();
        assert_eq!(
            warnings(&f),
            [
                format!(
                    "{d}/chap-secrets: readable by group and others (mode 644): it holds passwords or NT hashes; chmod 600 it"
                ),
                format!(
                    "{d}/pptp-agent.toml: readable by group (mode 640): it holds RADIUS secrets or passwords; chmod 600 it"
                ),
            ]
        );
        // A configuration without secrets may be world-readable.
        let plain = Files::new("plain", WITH_SECRETS);
        plain.chmod("pptp-agent.toml", 0o644);
        assert_eq!(warnings(&plain), Vec::<String>::new());
        // Demand-dial passwords written in the file are secrets too.
        let router = format!(
            "{WITH_SECRETS}[[demand_dial]]\nname = \"DD_B\"\nserver = \"198.51.100.10\"\nuser = \"DD_A\"\npassword = \"pw\"\nroutes = [\"203.0.113.0/24\"]\n"
        );
        let r = Files::new("router", &router);
        r.chmod("pptp-agent.toml", 0o604);
        assert_eq!(
            warnings(&r),
            [format!(
                "{}/pptp-agent.toml: readable by others (mode 604): it holds RADIUS secrets or passwords; chmod 600 it",
                r.d()
            )]
        );
    }
}
