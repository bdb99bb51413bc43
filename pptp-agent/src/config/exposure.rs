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
