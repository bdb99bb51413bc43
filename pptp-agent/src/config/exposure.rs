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
    use crate::config::{
        Config,
        tests::{Files, WITH_SECRETS},
    };

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
        let f = Files::new("exposed", &radius, "alice * pw *\n");
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
        let plain = Files::new("plain", WITH_SECRETS, "alice * pw *\n");
        plain.chmod("pptp-agent.toml", 0o644);
        assert_eq!(warnings(&plain), Vec::<String>::new());
        // Demand-dial passwords written in the file are secrets too.
        let router = format!(
            "{WITH_SECRETS}[[demand_dial]]\nname = \"DD_B\"\nserver = \"198.51.100.10\"\nuser = \"DD_A\"\npassword = \"pw\"\nroutes = [\"203.0.113.0/24\"]\n"
        );
        let r = Files::new("router", &router, "alice * pw *\n");
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
