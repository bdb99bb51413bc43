//! A real PostgreSQL (Debian's `postgresql` package) for the fleet test: a cluster
//! made with `initdb` in the test's directory (trust authentication: the test's
//! own throwaway database), run as the `postgres` user (PostgreSQL refuses root)
//! inside a lab namespace on 127.0.0.1, stopped by PID with the lab; and `psql`.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::{demo::wait_for, lab::Lab, netns};

/// A PostgreSQL server running in a lab namespace.
pub struct Postgres {
    pub pid: u32,
    pub dir: PathBuf,
    pub port: u16,
    pub log: PathBuf,
}

/// The directory of the installed server's programs (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context(
            "PostgreSQL is not installed: run `cargo xtask setup` (Debian package postgresql)",
        )?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("no /usr/lib/postgresql/N/bin/postgres: run `cargo xtask setup`")
}

/// `program` run as the `postgres` user (setpriv execs it: its PID is the program's).
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--init-groups",
        "--",
    ])
    .arg(program);
    cmd
}

impl Postgres {
    /// Makes a cluster under `dir` and starts it in `ns` on 127.0.0.1:`port`;
    /// returns once it answers.
    pub fn start(lab: &mut Lab, ns: &str, dir: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let user = nix::unistd::User::from_name("postgres")?
            .context("no postgres user: reinstall the Debian package postgresql")?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        nix::unistd::chown(dir, Some(user.uid), Some(user.gid))?;
        let data = dir.join("data");
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&out.stderr));
        }
        let log = dir.join("postgres.log");
        let file = std::fs::File::create(&log)?;
        nix::unistd::chown(&log, Some(user.uid), Some(user.gid))?;
        let mut cmd = as_postgres(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "fsync=off", "-c", "max_connections=100"])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let pid = lab.spawn(ns, cmd)?;
        let server = Postgres {
            pid,
            dir: dir.to_owned(),
            port,
            log,
        };
        let ready = wait_for(Duration::from_secs(30), || {
            lab.exited(pid).is_some() || server.psql("postgres", "SELECT 1", &[]).is_ok()
        });
        if ready.is_err() || lab.exited(pid).is_some() {
            bail!(
                "PostgreSQL did not start:\n{}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        }
        Ok(server)
    }

    /// Runs `sql` (a statement, or `@FILE` for a file) in database `db` as the
    /// superuser, with `psql -v` variables `vars`; returns the rows, unaligned,
    /// `|`-separated.
    pub fn psql(&self, db: &str, sql: &str, vars: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut cmd = Command::new(bin_dir()?.join("psql"));
        cmd.arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]);
        for (name, value) in vars {
            cmd.args(["-v", &format!("{name}={value}")]);
        }
        match sql.strip_prefix('@') {
            Some(file) => cmd.args(["-f", file]),
            None => cmd.args(["-c", sql]),
        };
        let out = netns::output(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
