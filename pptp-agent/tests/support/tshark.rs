//! Running tshark, the independent dissector the tests read our bytes with.

use std::process::Command;

/// Runs tshark with `args` and returns its standard output. tshark is required: a
/// test that needs it fails with a message saying how to install it.
pub fn tshark(args: &[&str]) -> String {
    let out = Command::new("tshark").args(args).output().unwrap_or_else(|e| {
        panic!(
            "tshark is required for this test and could not be run ({e}); install it (Debian: apt-get install tshark)"
        )
    });
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
