//! Comments and documents cite only files in this repository, and files that still exist.
//!
//! Every Rust file of the workspace and of the BPF crate is read; in its comments, a
//! relative path with a directory (like `tests/tests/interop.rs`) must name a file or
//! directory of the repository, taken from the repository's root, the crate, its
//! `src/` or the commenting file's directory; a document named without a directory
//! must be one of the repository's. `dir/...` stands for a directory the code is
//! given, and absolute paths are the host's: neither is checked.
//!
//! `README.md` and every Markdown file under `docs/` are read the same way, code blocks
//! included, and more strictly: a path that starts with a top-level directory of the
//! repository (`pptp-agent/src/engine/`, `tests/vectors/captures`) must exist whatever
//! its extension, a file named without a directory (`fsm.rs`) must be the name of one
//! of the repository's files (outside code blocks, whose transcripts name the
//! operator's files, like `bad.toml`), and every relative Markdown link must lead to a
//! file of the repository and, with `#anchor`, to one of its headings.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

/// The repository's top-level directories that hold Rust files.
const CRATES: &[&str] = &["pptp-agent", "pptp-common", "pptp-ebpf", "tests", "xtask"];

/// The top-level directories a document's paths may start with.
const TOP: &[&str] = &[
    "pptp-agent",
    "pptp-common",
    "pptp-ebpf",
    "tests",
    "xtask",
    "docs",
    ".ci",
    ".cargo",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if !matches!(
                &*name,
                "target" | "corpus" | "artifacts" | "coverage" | ".git"
            ) {
                walk(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// `README.md` and the Markdown files under `docs/`.
fn markdown_documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = Vec::new();
    if root.join("docs").is_dir() {
        walk(&root.join("docs"), &mut docs);
    }
    docs.retain(|f| f.extension().is_some_and(|e| e == "md"));
    docs.push(root.join("README.md"));
    docs
}

/// The words of a text that name files: a relative path or a file name with one of
/// the extensions below.
fn citations(comment: &str) -> Vec<&str> {
    const EXTENSIONS: &[&str] = &["rs", "md", "toml", "sh", "txt", "pcap", "c", "h"];
    words(comment)
        .filter(|w| {
            w.rsplit_once('.').is_some_and(|(stem, ext)| {
                let name = stem.rsplit('/').next().unwrap_or(stem);
                !name.is_empty() && !name.contains('.') && EXTENSIONS.contains(&ext)
            })
        })
        .collect()
}

/// The path-like words of a text, trailing dots and slashes cut, absolute paths left out.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "_-./".contains(c)))
        .map(|w| w.trim_end_matches(['.', '/']))
        .filter(|w| !w.is_empty() && !w.starts_with('/'))
}

/// The words of a document that start with a top-level directory of the repository.
fn tree_paths(text: &str) -> Vec<&str> {
    words(text)
        .filter(|w| {
            w.split_once('/')
                .is_some_and(|(top, rest)| TOP.contains(&top) && !rest.is_empty())
        })
        .collect()
}

/// The targets of the inline links `[text](target)` of a line.
fn links(line: &str) -> Vec<&str> {
    line.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &line[at + 2..];
            rest.find(')').map(|end| rest[..end].trim())
        })
        .collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// A document's lines, each with whether it is inside a fenced code block.
fn lines_in_fences(text: &str) -> Vec<(&str, bool)> {
    let mut fenced = false;
    text.lines()
        .map(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                (line, true)
            } else {
                (line, fenced)
            }
        })
        .collect()
}

/// The anchors of a document's headings (`-1`, `-2` for repeated ones, as GitHub does).
fn anchors(text: &str) -> Vec<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    lines_in_fences(text)
        .into_iter()
        .filter(|(_, fenced)| !fenced)
        .filter_map(|(line, _)| {
            let title = line.trim_start_matches('#');
            (line.starts_with('#') && title.starts_with(' ')).then(|| slug(title))
        })
        .map(|anchor| {
            let n = seen.entry(anchor.clone()).or_default();
            *n += 1;
            match *n {
                1 => anchor,
                n => format!("{anchor}-{}", n - 1),
            }
        })
        .collect()
}

#[test]
fn comments_cite_files_of_this_repository() {
    let root = root();
    let mut files = Vec::new();
    for krate in CRATES {
        walk(&root.join(krate), &mut files);
    }
    let documents: Vec<String> = files
        .iter()
        .cloned()
        .chain(markdown_documents(root))
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
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
fn documents_cite_files_and_link_to_headings_of_this_repository() {
    let root = root();
    let mut files = Vec::new();
    walk(root, &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut bases = vec![root.to_path_buf()];
    for krate in CRATES {
        bases.extend([root.join(krate), root.join(krate).join("src")]);
    }
    let mut wrong = Vec::new();
    for doc in markdown_documents(root) {
        let rel = doc.strip_prefix(root).unwrap();
        let dir = doc.parent().unwrap();
        let text = fs::read_to_string(&doc).unwrap();
        for (n, (line, fenced)) in lines_in_fences(&text).into_iter().enumerate() {
            let mut complain =
                |what: &str| wrong.push(format!("{}:{}: {what}", rel.display(), n + 1));
            for cited in citations(line) {
                let found = if cited.contains('/') {
                    bases
                        .iter()
                        .chain([&dir.to_path_buf()])
                        .any(|b| b.join(cited).exists())
                } else {
                    fenced || names.iter().any(|name| name == cited)
                };
                if !found {
                    complain(cited);
                }
            }
            let cited = citations(line);
            for path in tree_paths(line).into_iter().filter(|p| !cited.contains(p)) {
                if !root.join(path).exists() {
                    complain(path);
                }
            }
            if fenced {
                continue;
            }
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let linked = if file.is_empty() {
                    doc.clone()
                } else {
                    dir.join(file)
                };
                if !linked.exists() {
                    complain(&format!("link to {target}: no such file"));
                } else if !anchor.is_empty()
                    && !anchors(&fs::read_to_string(&linked).unwrap_or_default())
                        .iter()
                        .any(|a| a == anchor)
                {
                    complain(&format!("link to {target}: no such heading"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "documents citing what the repository does not hold:\n  {}",
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

#[test]
fn tree_paths_start_with_a_top_level_directory() {
    assert_eq!(
        tree_paths("`pptp-agent/src/engine/` and tests/vectors/captures, not src/x or tests/"),
        ["pptp-agent/src/engine", "tests/vectors/captures"]
    );
}

#[test]
fn links_and_anchors_are_read_as_github_renders_them() {
    assert_eq!(
        links("see [the guide](docs/operating.md#prometheus) and [RFC](https://x.y/z)."),
        ["docs/operating.md#prometheus", "https://x.y/z"]
    );
    assert_eq!(
        anchors(
            "# Many sessions: `load-test` and the scale test\n```sh\n# not a heading\n```\n## Limits\n### Limits\n"
        ),
        [
            "many-sessions-load-test-and-the-scale-test",
            "limits",
            "limits-1"
        ]
    );
}
