//! `pptp-agent generate --out DIR` (hidden): the man pages (`man/pptp-agent.1` and
//! one `pptp-agent-SUBCOMMAND.1` per subcommand, by clap_mangen) and the shell
//! completions (`completions/` for bash, zsh and fish, by clap_complete), made from
//! the same clap definitions that parse the command line, so they never drift from
//! it. `cargo xtask package` runs it to put them in the Debian package.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Directory to write `man/` and `completions/` into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Writes the pages and completions of `command` (the whole command line's).
pub fn run(args: GenerateArgs, mut command: clap::Command) -> anyhow::Result<()> {
    command.build();
    let man = args.out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    write_man(&man, "pptp-agent", &command)?;
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_man(&man, &format!("pptp-agent-{}", sub.get_name()), sub)?;
    }
    let completions = args.out.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "pptp-agent", &completions)
            .with_context(|| format!("writing the {shell} completions"))?;
    }
    Ok(())
}

/// One page, named `name` (subcommands' pages are `pptp-agent-NAME(1)`).
fn write_man(dir: &Path, name: &str, command: &clap::Command) -> anyhow::Result<()> {
    let command = command.clone().display_name(name);
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page)?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))
}
