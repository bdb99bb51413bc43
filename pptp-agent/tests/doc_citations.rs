//! Comments cite only files in this repository, and files that still exist.
//!
//! Every Rust file of the workspace and of the BPF crate is read; in its comments, a
//! relative path with a directory (like `tests/tests/interop.rs`) must name a file or
//! directory of the repository, taken from the repository's root, the crate, its
//! `src/` or the commenting file's directory; a document named without a directory
//! must be one of the repository's. `dir/...` stands for a directory the code is
//! given, and absolute paths are the host's: neither is checked.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The repository's top-level directories that hold Rust files.
const CRATES: &[&str] = &["pptp-agent", "pptp-common", "pptp-ebpf", "tests", "xtask"];

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !matches!(&*name, "target" | "corpus" | "artifacts" | "coverage") {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// The words of a comment that name files: a relative path or a file name with one of
/// the extensions below.
fn citations(comment: &str) -> Vec<&str> {
    const EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "txt", "pcap", "c", "h"];
    comment
        .split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)))
        .map(|w| w.trim_end_matches(['.', '/']))
        .filter(|w| !w.starts_with('/'))
        .filter(|w| {
            w.rsplit_once('.').is_some_and(|(stem, ext)| {
                let name = stem.rsplit('/').next().unwrap_or(stem);
                !name.is_empty() && !name.contains('.') && EXTENSIONS.contains(&ext)
            })
        })
        .collect()
}

#[test]
fn comments_cite_files_of_this_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in CRATES {
        walk(&root.join(krate), &mut files);
    }
    let documents: Vec<String> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .chain(["README.md".to_owned()])
        .collect();
    let mut wrong = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
    {
        let rel = file.strip_prefix(root).unwrap();
        let krate = root.join(rel.iter().next().unwrap());
        let text = fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some((_, comment)) = line.split_once("//") else {
                continue;
            };
            for cited in citations(comment) {
                let found = if cited.contains('/') {
                    cited.starts_with("dir/")
                        || [root, &krate, &krate.join("src"), file.parent().unwrap()]
                            .iter()
                            .any(|base| base.join(cited).exists())
                } else {
                    !cited.ends_with(".md") || documents.iter().any(|d| d == cited)
                };
                if !found {
                    wrong.push(format!("{}:{}: {cited}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cited files that are not in the repository:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn citations_are_the_path_like_words() {
    assert_eq!(
        citations(" see `tests/tests/interop.rs` and PEERS.md; a.b.c, v0.14, /etc/x.toml."),
        ["tests/tests/interop.rs", "PEERS.md"]
    );
}
