//! A real FreeRADIUS (Debian's `freeradius` package) for the RADIUS tests: a config
//! directory generated from the installed `/etc/freeradius/3.0` (our clients, users,
//! loopback ports, a minimal virtual server or the test's own, modules the test
//! enables, the detail module writing into the test's directory), run in the
//! foreground inside a lab namespace, stopped by PID;
//! and `radclient` (package `freeradius-utils`) for Disconnect-Request.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{demo::wait_for, lab::Lab, netns};

/// The installed configuration the generated one starts from.
pub const SYSTEM_RADDB: &str = "/etc/freeradius/3.0";

/// What the server is set up with.
pub struct Spec<'a> {
    /// Authentication port on 127.0.0.1 (accounting is the next port).
    pub auth_port: u16,
    /// The secret of the one client, 127.0.0.1.
    pub secret: &'a str,
    /// The users file (`mods-config/files/authorize`).
    pub users: &'a str,
    /// The virtual server (`sites-enabled/default`) instead of this file's, its
    /// listen ports made 127.0.0.1:`auth_port` and the next.
    pub site: Option<&'a str>,
    /// Modules to enable: (name in `mods-enabled`, configuration).
    pub modules: &'a [(&'a str, String)],
}

/// A FreeRADIUS running in a lab namespace.
pub struct FreeRadius {
    pub pid: u32,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// The virtual server: PAP, CHAP and MS-CHAP (with MPPE keys, the mschap module's
/// default) against the users file; accounting into the detail file.
const SITE: &str = r#"
server default {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = AUTH_PORT
    }
    listen {
        type = acct
        ipaddr = 127.0.0.1
        port = ACCT_PORT
    }
    authorize {
        preprocess
        chap
        mschap
        files
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
        Auth-Type CHAP {
            chap
        }
        Auth-Type MS-CHAP {
            mschap
        }
    }
    preacct {
        preprocess
        acct_unique
    }
    accounting {
        detail
    }
    post-auth {
    }
}
"#;

impl FreeRadius {
    /// Generates the configuration under `dir` and starts `freeradius -X` in `ns`;
    /// returns once it answers on its authentication port.
    pub fn start(lab: &mut Lab, ns: &str, dir: &Path, spec: &Spec) -> anyhow::Result<Self> {
        Self::start_with(lab, ns, dir, spec, &["-X"])
    }

    /// As [`FreeRadius::start`], run with `mode` instead of `-X` (single-threaded,
    /// every request logged): `["-f", "-l", "stdout"]` runs its thread pool and logs
    /// only what a production server logs, for benchmarks.
    pub fn start_with(
        lab: &mut Lab,
        ns: &str,
        dir: &Path,
        spec: &Spec,
        mode: &[&str],
    ) -> anyhow::Result<Self> {
        let bin = which("freeradius").context(
            "freeradius is not installed: run `cargo xtask setup` (Debian packages freeradius, freeradius-utils)",
        )?;
        if !Path::new(SYSTEM_RADDB).join("radiusd.conf").exists() {
            bail!("{SYSTEM_RADDB}/radiusd.conf missing: reinstall the Debian package freeradius");
        }
        let raddb = dir.join("raddb");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("log"))?;
        std::fs::create_dir_all(dir.join("run"))?;
        netns::run(Command::new("cp").args(["-rL", SYSTEM_RADDB]).arg(&raddb))?;
        // EAP wants the inner-tunnel server and certificates: not used here.
        for gone in ["mods-enabled/eap", "sites-enabled/inner-tunnel"] {
            let _ = std::fs::remove_file(raddb.join(gone));
        }
        let conf = raddb.join("radiusd.conf");
        let text = std::fs::read_to_string(&conf)?;
        let mut out = String::new();
        for line in text.lines() {
            let t = line.trim_start();
            let replaced = if t.starts_with("logdir =") {
                format!("logdir = {}", dir.join("log").display())
            } else if t.starts_with("raddbdir =") {
                format!("raddbdir = {}", raddb.display())
            } else if t.starts_with("run_dir =") {
                format!("run_dir = {}", dir.join("run").display())
            } else if t.starts_with("user =") || t.starts_with("group =") {
                // Stay root: the test's directory is root's.
                format!("#{line}")
            } else {
                line.to_owned()
            };
            out.push_str(&replaced);
            out.push('\n');
        }
        std::fs::write(&conf, out)?;
        let site = match spec.site {
            Some(site) => site
                .replace("ipaddr = *", "ipaddr = 127.0.0.1")
                .replace("port = 1812", "port = AUTH_PORT")
                .replace("port = 1813", "port = ACCT_PORT"),
            None => SITE.to_owned(),
        };
        std::fs::write(
            raddb.join("sites-enabled/default"),
            site.replace("AUTH_PORT", &spec.auth_port.to_string())
                .replace("ACCT_PORT", &(spec.auth_port + 1).to_string()),
        )?;
        for (name, module) in spec.modules {
            std::fs::write(raddb.join("mods-enabled").join(name), module)?;
        }
        std::fs::write(
            raddb.join("clients.conf"),
            format!(
                "client loopback {{\n    ipaddr = 127.0.0.1\n    secret = {}\n    require_message_authenticator = yes\n}}\n",
                spec.secret
            ),
        )?;
        std::fs::write(raddb.join("mods-config/files/authorize"), spec.users)?;
        let log = dir.join("freeradius.log");
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        cmd.args(mode)
            .arg("-d")
            .arg(&raddb)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let pid = lab.spawn(ns, cmd)?;
        let server = FreeRadius {
            pid,
            dir: dir.to_owned(),
            log,
        };
        let ready = wait_for(Duration::from_secs(20), || {
            lab.exited(pid).is_some() || server.log_text().contains("Ready to process requests")
        });
        if ready.is_err() || lab.exited(pid).is_some() {
            bail!("FreeRADIUS did not start:\n{}", server.log_tail());
        }
        Ok(server)
    }

    /// The accounting records of `user` with status `status` (from the detail file).
    pub fn records(&self, user: &str, status: &str) -> Vec<BTreeMap<String, String>> {
        self.detail_records()
            .into_iter()
            .filter(|r| {
                r.get("User-Name").map(String::as_str) == Some(user)
                    && r.get("Acct-Status-Type").map(String::as_str) == Some(status)
            })
            .collect()
    }

    /// The first record of `user` with status `status`, waiting up to 10 s for it;
    /// panics with the detail file and the log if none comes.
    pub fn wait_record(&self, user: &str, status: &str) -> BTreeMap<String, String> {
        wait_for(Duration::from_secs(10), || {
            !self.records(user, status).is_empty()
        })
        .unwrap_or_else(|_| {
            panic!(
                "no {status} record for {user}:\n{:?}\n{}",
                self.detail_records(),
                self.log_tail()
            )
        });
        self.records(user, status).remove(0)
    }

    /// Its debug log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of its debug log.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Every accounting record of the detail files, in order: attribute name to
    /// value (quotes removed).
    pub fn detail_records(&self) -> Vec<BTreeMap<String, String>> {
        let mut files = Vec::new();
        collect_files(&self.dir.join("log/radacct"), &mut files);
        files.sort();
        let mut records = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            for block in text.split("\n\n") {
                let record: BTreeMap<String, String> = block
                    .lines()
                    .filter_map(|l| l.trim().split_once(" = "))
                    .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
                    .collect();
                if !record.is_empty() {
                    records.push(record);
                }
            }
        }
        records
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// What `radclient` needs besides `attributes` to be heard by the agent's dynamic
/// authorization server: a fresh Event-Timestamp and a Message-Authenticator.
pub fn dae(attributes: &str) -> String {
    format!(
        "{attributes}Event-Timestamp = {}\nMessage-Authenticator = 0x00\n",
        unix_now()
    )
}

pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The number `key` of an accounting record; panics naming it if it is missing.
pub fn num(record: &BTreeMap<String, String>, key: &str) -> u64 {
    record
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing in {record:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} not a number in {record:?}"))
}

/// Sends one request with `radclient` from namespace `ns` (`kind`: "disconnect",
/// "coa", "auth", "acct"); returns its output (the answer's attributes).
pub fn radclient(
    ns: &str,
    server: &str,
    kind: &str,
    secret: &str,
    attributes: &str,
) -> anyhow::Result<String> {
    let bin = which("radclient").context(
        "radclient is not installed: run `cargo xtask setup` (Debian package freeradius-utils)",
    )?;
    let mut cmd = Command::new(bin);
    cmd.args(["-x", "-r", "2", "-t", "3", server, kind, secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    netns::command_in(ns, &mut cmd)?;
    let mut child = cmd.spawn().context("starting radclient")?;
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(attributes.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(text)
}
