//! Fuzzes the operator-facing parsers: the chap-secrets file and the TOML
//! configuration. Neither may panic; every diagnostic must point at a line that
//! exists; a parsed secrets file must answer lookups with an entry that matches.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pptp_agent::{auth::chap_secrets::ChapSecrets, config::Config};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    if mode & 1 == 0 {
        // `@file` would read the fuzzer's file system: keep it out.
        let text: Vec<u8> = data
            .iter()
            .map(|&b| if b == b'@' { b'A' } else { b })
            .collect();
        match ChapSecrets::parse(Path::new("/nonexistent/chap-secrets"), &text) {
            Ok(secrets) => {
                for entry in &secrets.entries {
                    assert!(entry.line >= 1 && entry.line <= lines);
                    if let Some(user) = entry.user() {
                        let found = secrets.lookup(user, b"pptp-xdp");
                        if let Some(found) = found {
                            assert!(found.user().is_none_or(|u| u == user));
                        }
                    }
                    for a in [[10, 0, 0, 1], [192, 0, 2, 7], [255, 255, 255, 255]] {
                        let _ = entry.addresses.permits(a.into());
                    }
                }
            }
            Err(errors) => {
                assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    assert!(e.line >= 1 && e.line <= lines, "{e}");
                    let _ = e.to_string();
                }
            }
        }
    } else if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse("/nonexistent/pptp-agent.toml", text) {
            Ok(config) => {
                assert!(!config.tunnel.pools.is_empty());
                assert!(
                    config
                        .tunnel
                        .pools
                        .iter()
                        .all(|p| !p.contains(config.tunnel.local_ip))
                );
            }
            Err(errors) => {
                assert!(!errors.0.is_empty());
                for e in &errors.0 {
                    assert!(e.line <= lines, "{e}");
                    let _ = e.to_string();
                }
            }
        }
    }
});
