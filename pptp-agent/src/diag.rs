//! One problem found in a configuration or secrets file, printed the way compilers
//! and editors expect: `file:line: key: message`.

use std::{fmt, path::PathBuf};

/// A problem in a file, with the line and the key (or field) it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// The key (`mppe.bits`) or field (`secret`) concerned, if any.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `line` with `key`.
    pub fn new(
        path: impl Into<PathBuf>,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            path: path.into(),
            line,
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// A problem with the whole file (unreadable, ...).
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            line: 0,
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_file_line_key_message() {
        let d = Diagnostic::new(
            "/etc/x.toml",
            12,
            "mppe.bits",
            "64 is not one of 40, 56, 128",
        );
        assert_eq!(
            d.to_string(),
            "/etc/x.toml:12: mppe.bits: 64 is not one of 40, 56, 128"
        );
        assert_eq!(
            Diagnostic::file("/etc/x.toml", "No such file").to_string(),
            "/etc/x.toml: No such file"
        );
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
