//! The pppd `chap-secrets` file: who may dial in, with which secret, and which tunnel
//! addresses they may use.
//!
//! Operators of pppd/pptpd already have this file, so it is read the way pppd reads
//! it (`pppd(8)`, AUTHENTICATION), with the differences listed below.
//!
//! ```text
//! # client        server      secret                  addresses
//! alice           *           "correct horse"         *
//! bob             pptp-xdp    nthash:8846F7EAEE8FB117AD06BDD830B7586C  192.0.2.77
//! carol           *           @/etc/ppp/carol.secret  192.0.2.0/25 !192.0.2.5
//! *               *           shared-secret           -
//! ```
//!
//! - One entry per line: `client server secret [addresses...]`. `#` at the start of a
//!   word starts a comment running to the end of the line.
//! - Words are separated by blanks. `"..."` or `'...'` quote blanks and `#`; quoted and
//!   plain parts next to each other make one word. A backslash escapes the next
//!   character, with pppd's sequences: `\n \r \t \b \f \a \v`, `\s` (space), `\\`,
//!   `\"`, `\'`, octal `\ooo`, hex `\xhh`; a backslash before a newline joins lines.
//! - `*` as client or server matches anything. The server column is compared with our
//!   name (`name` in the configuration, default `pptp-xdp`). When several entries
//!   match, the most specific wins: exact client and server, then exact client, then
//!   exact server, then `*` `*` (pppd's order). An entry for another server is ignored.
//! - The secret: `@/path` reads it from a file (the file's first word, read with the
//!   same quoting rules; a relative path is relative to the secrets file's directory).
//!   `nthash:` followed by 32 hex digits is the NT hash (MD4 of the UTF-16LE
//!   password) instead of the password: MS-CHAPv1/v2 work with it, CHAP-MD5 cannot
//!   (accel-ppp's `encrypted=1` stores the same 32 hex digits, without the prefix).
//!   A password that really starts with `nthash:` cannot be written here.
//! - Addresses, checked in order, the first match deciding: `*` any address, `-` none,
//!   `a.b.c.d` one address, `a.b.c.d/n` a subnet, `!` before either excludes it.
//!   Anything not matched is refused. **No address list (three words) allows no
//!   address**, as in pppd (pptpd's "Peer is not authorized to use remote address"):
//!   write `*` to let the pool choose. The first plain address (no `!`, no `/n`) is the
//!   user's static address: the pool hands it to that user and to no one else.
//!
//! Stricter than pppd, so that mistakes show up in `check-config` rather than as
//! refused logins: a line with fewer than three words, an unterminated quote, an
//! empty secret, two entries with the same client and server, host names in the
//! address list, and subnets with host bits set are errors.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use crate::{
    diag::{Diagnostic, Diagnostics},
    ppp::auth::Secret,
};

/// The longest secret accepted (pppd's MAXSECRETLEN; MS-CHAP passwords are at most
/// 256 characters).
pub const MAX_SECRET_LEN: usize = 256;

/// A client or server column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`.
    Any,
    /// This exact name.
    Exact(Vec<u8>),
}

impl Pattern {
    fn parse(word: Vec<u8>) -> Self {
        if word == b"*" {
            Pattern::Any
        } else {
            Pattern::Exact(word)
        }
    }

    fn matches(&self, name: &[u8]) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(n) => n == name,
        }
    }

    fn display(&self) -> String {
        match self {
            Pattern::Any => "*".into(),
            Pattern::Exact(n) => String::from_utf8_lossy(n).into_owned(),
        }
    }
}

/// One rule of an address list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRule {
    /// `false` for `!` rules.
    pub permit: bool,
    /// Network address.
    pub base: Ipv4Addr,
    /// Prefix length (32 for one address).
    pub prefix: u8,
}

impl AddressRule {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    /// Whether `addr` falls in this rule's subnet.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.base)
    }
}

/// The addresses a user may be given: rules checked in order, first match deciding,
/// nothing matched means refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressList {
    /// The rules (`*` is a permit rule for 0.0.0.0/0).
    pub rules: Vec<AddressRule>,
    /// The first plain address: the user's static address.
    pub static_address: Option<Ipv4Addr>,
}

impl AddressList {
    /// A list allowing every address (`*`).
    pub fn any() -> Self {
        AddressList {
            rules: vec![AddressRule {
                permit: true,
                base: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
            }],
            static_address: None,
        }
    }

    /// Whether the user may use `addr`.
    pub fn permits(&self, addr: Ipv4Addr) -> bool {
        self.rules
            .iter()
            .find(|r| r.contains(addr))
            .is_some_and(|r| r.permit)
    }

    /// Whether no address at all is allowed (`-`, or no list).
    pub fn is_none(&self) -> bool {
        !self.rules.iter().any(|r| r.permit)
    }
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based line the entry starts on.
    pub line: usize,
    /// Client (user name) column.
    pub client: Pattern,
    /// Server column.
    pub server: Pattern,
    /// The secret (password or NT hash).
    pub secret: Secret,
    /// Allowed addresses.
    pub addresses: AddressList,
}

impl Entry {
    /// The user name, if the client column is not `*`.
    pub fn user(&self) -> Option<&[u8]> {
        match &self.client {
            Pattern::Exact(n) => Some(n),
            Pattern::Any => None,
        }
    }
}

/// A parsed chap-secrets file.
#[derive(Debug, Clone, Default)]
pub struct ChapSecrets {
    /// Where it was read from.
    pub path: PathBuf,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

impl ChapSecrets {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let text =
            std::fs::read(path).map_err(|e| Diagnostic::file(path, format!("cannot read: {e}")))?;
        Self::parse(path, &text)
    }

    /// Parses the contents of a secrets file read from `path` (used in messages and
    /// to resolve relative `@file` secrets). Reports every bad line.
    pub fn parse(path: &Path, text: &[u8]) -> Result<Self, Diagnostics> {
        let mut errors = Vec::new();
        let lines = match tokenize(text) {
            Ok(lines) => lines,
            Err((line, message)) => {
                return Err(Diagnostic::new(path, line, "syntax", message).into());
            }
        };
        let mut entries: Vec<Entry> = Vec::new();
        for (line, words) in lines {
            match parse_entry(path, line, words) {
                Ok(entry) => {
                    if let Some(first) = entries
                        .iter()
                        .find(|e| e.client == entry.client && e.server == entry.server)
                    {
                        errors.push(Diagnostic::new(
                            path,
                            line,
                            "client",
                            format!(
                                "{} appears twice for server {} (first on line {})",
                                entry.client.display(),
                                entry.server.display(),
                                first.line
                            ),
                        ));
                    } else {
                        entries.push(entry);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(ChapSecrets {
                path: path.to_owned(),
                entries,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// The entry for `user` calling server `server`: the most specific match
    /// (exact client beats exact server beats wildcards), as pppd picks it.
    pub fn lookup(&self, user: &[u8], server: &[u8]) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| e.client.matches(user) && e.server.matches(server))
            .max_by_key(|e| {
                // max_by_key keeps the last of equals; duplicates are rejected at
                // parse time, so equal scores cannot happen for one user and server.
                (matches!(e.client, Pattern::Exact(_)) as u8) * 2
                    + matches!(e.server, Pattern::Exact(_)) as u8
            })
    }

    /// Entries that apply to server `server` (its own and `*`).
    pub fn for_server<'a>(&'a self, server: &'a [u8]) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.server.matches(server))
    }
}

fn parse_entry(
    path: &Path,
    line: usize,
    mut words: Vec<Vec<u8>>,
) -> Result<Entry, Vec<Diagnostic>> {
    if words.len() < 3 {
        return Err(vec![Diagnostic::new(
            path,
            line,
            "entry",
            format!(
                "{} word{}; expected: client server secret [addresses...]",
                words.len(),
                if words.len() == 1 { "" } else { "s" }
            ),
        )]);
    }
    let addresses = words.split_off(3);
    let secret = words.pop().expect("3 words");
    let server = Pattern::parse(words.pop().expect("3 words"));
    let client = Pattern::parse(words.pop().expect("3 words"));
    let mut errors = Vec::new();
    if client == Pattern::Exact(Vec::new()) {
        errors.push(Diagnostic::new(path, line, "client", "empty user name"));
    }
    let secret = match parse_secret(path, secret) {
        Ok(s) => Some(s),
        Err(message) => {
            errors.push(Diagnostic::new(path, line, "secret", message));
            None
        }
    };
    let addresses = match parse_addresses(&addresses) {
        Ok(a) => Some(a),
        Err(message) => {
            errors.push(Diagnostic::new(path, line, "addresses", message));
            None
        }
    };
    match (secret, addresses) {
        (Some(secret), Some(addresses)) if errors.is_empty() => Ok(Entry {
            line,
            client,
            server,
            secret,
            addresses,
        }),
        _ => Err(errors),
    }
}

fn parse_secret(path: &Path, word: Vec<u8>) -> Result<Secret, String> {
    let word = if let Some(file) = word.strip_prefix(b"@") {
        let file = Path::new(std::str::from_utf8(file).map_err(|_| "@file: not UTF-8")?);
        let file = match path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        };
        let text = read_secret_file(&file).map_err(|e| format!("@{}: {e}", file.display()))?;
        let lines = tokenize(&text).map_err(|(l, m)| format!("@{}:{l}: {m}", file.display()))?;
        lines
            .into_iter()
            .next()
            .and_then(|(_, words)| words.into_iter().next())
            .ok_or_else(|| format!("@{}: the file holds no secret", file.display()))?
    } else {
        word
    };
    if let Some(hex) = word.strip_prefix(b"nthash:") {
        return parse_nt_hash(hex)
            .map(Secret::NtHash)
            .ok_or_else(|| "nthash: expects 32 hexadecimal digits".into());
    }
    if word.is_empty() {
        return Err("empty secret".into());
    }
    if word.len() > MAX_SECRET_LEN {
        return Err(format!("longer than {MAX_SECRET_LEN} bytes"));
    }
    Ok(Secret::Password(word))
}

/// Reads an `@file` secret: a regular file, at most 64 KiB (not `/dev/zero`).
fn read_secret_file(file: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const LIMIT: u64 = 64 * 1024;
    let f = std::fs::File::open(file)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = Vec::new();
    f.take(LIMIT + 1).read_to_end(&mut text)?;
    if text.len() as u64 > LIMIT {
        return Err(std::io::Error::other("larger than 64 KiB"));
    }
    Ok(text)
}

/// 32 hex digits (either case) as 16 bytes.
pub fn parse_nt_hash(hex: &[u8]) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn parse_addresses(words: &[Vec<u8>]) -> Result<AddressList, String> {
    let mut list = AddressList::default();
    for word in words {
        let word = std::str::from_utf8(word).map_err(|_| "an address is not UTF-8".to_owned())?;
        match word {
            "-" => break,
            "*" => {
                list.rules.extend(AddressList::any().rules);
                break;
            }
            _ => {}
        }
        let (permit, text) = match word.strip_prefix('!') {
            Some(rest) => (false, rest),
            None => (true, word),
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, n)) => {
                let n: u8 = n
                    .parse()
                    .ok()
                    .filter(|&n| n <= 32)
                    .ok_or_else(|| format!("{word}: the prefix length must be 0 to 32"))?;
                (a, Some(n))
            }
            None => (text, None),
        };
        let base: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("{word}: not an IPv4 address (host names are not supported)"))?;
        let rule = AddressRule {
            permit,
            base,
            prefix: prefix.unwrap_or(32),
        };
        if u32::from(base) & !rule.mask() != 0 {
            return Err(format!("{word}: host bits set (did you mean {}?)", {
                let net = Ipv4Addr::from(u32::from(base) & rule.mask());
                format!("{net}/{}", rule.prefix)
            }));
        }
        if permit && prefix.is_none() && list.static_address.is_none() {
            if base.is_unspecified()
                || base.is_loopback()
                || base.is_multicast()
                || base.is_broadcast()
            {
                return Err(format!("{word}: cannot be a client's address"));
            }
            list.static_address = Some(base);
        }
        list.rules.push(rule);
    }
    Ok(list)
}

/// An entry's words and the 1-based line its first word is on.
pub type Line = (usize, Vec<Vec<u8>>);

/// Splits a secrets file into lines of words as pppd's `getword` reads them; each
/// line is returned with the 1-based number of the line its first word starts on.
/// Lines without words (blank or comments) are skipped.
pub fn tokenize(text: &[u8]) -> Result<Vec<Line>, (usize, String)> {
    let mut lines: Vec<Line> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Whether the next word starts a new entry.
    let mut at_line_start = true;
    while i < text.len() {
        let c = text[i];
        if c == b'\n' {
            line += 1;
            at_line_start = true;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'\\' && text.get(i + 1) == Some(&b'\n') {
            // Continuation between words.
            line += 1;
            i += 2;
            continue;
        }
        if c == b'#' {
            while i < text.len() && text[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        // A word.
        let start_line = line;
        let mut word = Vec::new();
        let mut quote: Option<u8> = None;
        loop {
            let Some(&c) = text.get(i) else {
                if quote.is_some() {
                    return Err((start_line, "unterminated quoted string".into()));
                }
                break;
            };
            if quote.is_none() && c.is_ascii_whitespace() {
                break;
            }
            i += 1;
            match c {
                b'\\' => {
                    let Some(&e) = text.get(i) else {
                        return Err((line, "backslash at the end of the file".into()));
                    };
                    i += 1;
                    match e {
                        b'\n' => line += 1,
                        b'n' => word.push(b'\n'),
                        b'r' => word.push(b'\r'),
                        b't' => word.push(b'\t'),
                        b'b' => word.push(0x08),
                        b'f' => word.push(0x0c),
                        b'a' => word.push(0x07),
                        b'v' => word.push(0x0b),
                        b's' => word.push(b' '),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match text.get(i) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            word.push(v as u8);
                        }
                        b'x' => {
                            let mut v = 0u32;
                            let mut n = 0;
                            while n < 2 {
                                match text.get(i).and_then(|d| (*d as char).to_digit(16)) {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        i += 1;
                                        n += 1;
                                    }
                                    None => break,
                                }
                            }
                            if n == 0 {
                                return Err((line, "\\x without hexadecimal digits".into()));
                            }
                            word.push(v as u8);
                        }
                        other => word.push(other),
                    }
                }
                b'"' | b'\'' if quote.is_none() => quote = Some(c),
                q if quote == Some(q) => quote = None,
                b'\n' => {
                    line += 1;
                    word.push(c);
                }
                _ => word.push(c),
            }
        }
        if at_line_start {
            lines.push((start_line, vec![word]));
            at_line_start = false;
        } else {
            lines.last_mut().expect("a line").1.push(word);
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ChapSecrets, String> {
        ChapSecrets::parse(Path::new("/etc/ppp/chap-secrets"), text.as_bytes())
            .map_err(|e| e.to_string())
    }

    fn words(text: &str) -> Vec<Vec<String>> {
        tokenize(text.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(_, w)| {
                w.into_iter()
                    .map(|w| String::from_utf8(w).unwrap())
                    .collect()
            })
            .collect()
    }

    fn password(s: &str) -> Secret {
        Secret::Password(s.as_bytes().to_vec())
    }

    #[test]
    fn words_comments_quotes_and_escapes() {
        assert_eq!(
            words("a b c # comment\n\n  # whole line\nd\t'e f' \"g h\"\n"),
            vec![vec!["a", "b", "c"], vec!["d", "e f", "g h"]]
        );
        // A # inside a word is literal; quoted # too; quoted and plain parts join.
        assert_eq!(
            words("a#b '#c' x\"y z\"w"),
            vec![vec!["a#b", "#c", "xy zw"]]
        );
        // pppd's escapes.
        assert_eq!(
            words(r#"a\sb c\\d e\"f g\'h \101\x42\x4a"#),
            vec![vec!["a b", "c\\d", "e\"f", "g'h", "ABJ"]]
        );
        assert_eq!(
            tokenize(b"\\n\\r\\t\\b\\f\\a\\v\\q").unwrap()[0].1[0],
            b"\n\r\t\x08\x0c\x07\x0bq"
        );
        // Escapes inside quotes, and quotes of the other kind.
        assert_eq!(words(r#""a\"b 'c'""#), vec![vec!["a\"b 'c'"]]);
        // Backslash-newline continues the entry on the next line.
        assert_eq!(
            words("a b \\\n c d\ne"),
            vec![vec!["a", "b", "c", "d"], vec!["e"]]
        );
        // The empty word.
        assert_eq!(words("a \"\" c"), vec![vec!["a", "", "c"]]);
        // Line numbers of entries.
        let lines = tokenize(b"# c\n\na b c\n'x\ny' z\nw").unwrap();
        assert_eq!(
            lines.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            vec![3, 4, 6]
        );
    }

    #[test]
    fn tokenizer_errors() {
        assert_eq!(
            parse("alice * ok *\nbob * \"unterminated\n").unwrap_err(),
            "/etc/ppp/chap-secrets:2: syntax: unterminated quoted string"
        );
        assert_eq!(
            parse("a b c\\").unwrap_err(),
            "/etc/ppp/chap-secrets:1: syntax: backslash at the end of the file"
        );
        assert_eq!(
            parse("a b \\xzz").unwrap_err(),
            "/etc/ppp/chap-secrets:1: syntax: \\x without hexadecimal digits"
        );
    }

    #[test]
    fn entries_and_most_specific_match() {
        let s = parse(
            "# client server secret addresses\n\
             *      *        any-any   *\n\
             *      pptp-xdp any-ours  *\n\
             alice  *        alice-any *\n\
             alice  pptp-xdp alice-ours *\n\
             bob    *        bob-any   *\n\
             carol  other    carol-other *\n",
        )
        .unwrap();
        let secret = |user: &str, server: &str| {
            s.lookup(user.as_bytes(), server.as_bytes())
                .map(|e| e.secret.clone())
        };
        assert_eq!(secret("alice", "pptp-xdp"), Some(password("alice-ours")));
        assert_eq!(secret("alice", "elsewhere"), Some(password("alice-any")));
        assert_eq!(secret("bob", "pptp-xdp"), Some(password("bob-any")));
        // No entry for carol on our server: the wildcard entries apply.
        assert_eq!(secret("carol", "pptp-xdp"), Some(password("any-ours")));
        assert_eq!(secret("carol", "other"), Some(password("carol-other")));
        assert_eq!(secret("dave", "elsewhere"), Some(password("any-any")));
        assert_eq!(s.lookup(b"alice", b"pptp-xdp").unwrap().line, 5);
        assert_eq!(s.for_server(b"pptp-xdp").count(), 5);

        let exact_only = parse("alice pptp-xdp pw *\n").unwrap();
        assert!(exact_only.lookup(b"alice", b"other").is_none());
        assert!(exact_only.lookup(b"alic", b"pptp-xdp").is_none());
        assert!(exact_only.lookup(b"alice ", b"pptp-xdp").is_none());
    }

    #[test]
    fn entry_errors_name_line_and_field() {
        assert_eq!(
            parse("alice *\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: entry: 2 words; expected: client server secret [addresses...]"
        );
        assert_eq!(
            parse("\n\nalice\n").unwrap_err(),
            "/etc/ppp/chap-secrets:3: entry: 1 word; expected: client server secret [addresses...]"
        );
        assert_eq!(
            parse("alice * pw *\nbob * pw *\nalice * other 10.0.0.1\n").unwrap_err(),
            "/etc/ppp/chap-secrets:3: client: alice appears twice for server * (first on line 1)"
        );
        assert_eq!(
            parse("\"\" * pw *\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: client: empty user name"
        );
        assert_eq!(
            parse("alice * \"\" *\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: secret: empty secret"
        );
        let long = "x".repeat(257);
        assert_eq!(
            parse(&format!("alice * {long} *\n")).unwrap_err(),
            "/etc/ppp/chap-secrets:1: secret: longer than 256 bytes"
        );
        assert!(parse(&format!("alice * {} *\n", "x".repeat(256))).is_ok());
        // Every bad line is reported, not just the first.
        assert_eq!(
            parse("a * nthash:12 *\nb * pw 10.0.0.300\nc * pw 10.0.0.1/33\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: secret: nthash: expects 32 hexadecimal digits\n\
             /etc/ppp/chap-secrets:2: addresses: 10.0.0.300: not an IPv4 address (host names are not supported)\n\
             /etc/ppp/chap-secrets:3: addresses: 10.0.0.1/33: the prefix length must be 0 to 32"
        );
        assert_eq!(
            parse("a * pw 10.0.0.1/24\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: addresses: 10.0.0.1/24: host bits set (did you mean 10.0.0.0/24?)"
        );
        assert_eq!(
            parse("a * pw vpn.example.com\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: addresses: vpn.example.com: not an IPv4 address (host names are not supported)"
        );
        assert_eq!(
            parse("a * pw 127.0.0.1\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: addresses: 127.0.0.1: cannot be a client's address"
        );
        assert_eq!(
            parse("a * pw 10.0.0.1/x\n").unwrap_err(),
            "/etc/ppp/chap-secrets:1: addresses: 10.0.0.1/x: the prefix length must be 0 to 32"
        );
    }

    #[test]
    fn nt_hash_secrets() {
        let s = parse(
            "alice * nthash:8846F7EAEE8FB117AD06BDD830B7586C *\n\
             bob * nthash:8846f7eaee8fb117ad06bdd830b7586c *\n",
        )
        .unwrap();
        // NT hash of "password".
        let h = hex_literal::hex!("8846F7EAEE8FB117AD06BDD830B7586C");
        assert_eq!(s.entries[0].secret, Secret::NtHash(h));
        assert_eq!(s.entries[1].secret, Secret::NtHash(h));
        assert_eq!(Secret::Password(b"password".to_vec()).nt_hash(), h);
        for bad in [
            "nthash:",
            "nthash:8846F7EAEE8FB117AD06BDD830B7586",
            "nthash:8846F7EAEE8FB117AD06BDD830B7586C0",
            "nthash:8846F7EAEE8FB117AD06BDD830B7586G",
            "nthash:+846F7EAEE8FB117AD06BDD830B7586C",
        ] {
            assert_eq!(
                parse(&format!("alice * {bad} *")).unwrap_err(),
                "/etc/ppp/chap-secrets:1: secret: nthash: expects 32 hexadecimal digits",
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_read_from_files() {
        let dir = std::env::temp_dir().join(format!("pptp-chap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("alice.secret"), "\"two words\" ignored\nmore\n").unwrap();
        std::fs::write(dir.join("empty.secret"), "# nothing\n").unwrap();
        std::fs::write(
            dir.join("hash.secret"),
            "nthash:8846F7EAEE8FB117AD06BDD830B7586C\n",
        )
        .unwrap();
        let path = dir.join("chap-secrets");
        let text = format!(
            "alice * @alice.secret *\nbob * @{}/hash.secret *\n",
            dir.display()
        );
        let s = ChapSecrets::parse(&path, text.as_bytes()).unwrap();
        assert_eq!(s.entries[0].secret, password("two words"));
        assert!(matches!(s.entries[1].secret, Secret::NtHash(_)));
        let err = ChapSecrets::parse(&path, b"a * @missing *\nb * @empty.secret *\n")
            .unwrap_err()
            .to_string();
        let d = dir.display();
        assert_eq!(
            err,
            format!(
                "{d}/chap-secrets:1: secret: @{d}/missing: No such file or directory (os error 2)\n\
                 {d}/chap-secrets:2: secret: @{d}/empty.secret: the file holds no secret"
            )
        );
        assert_eq!(
            ChapSecrets::parse(&path, b"a * @/dev/zero *\n")
                .unwrap_err()
                .to_string(),
            format!("{d}/chap-secrets:1: secret: @/dev/zero: not a regular file")
        );
        std::fs::write(dir.join("big.secret"), vec![b'x'; 65 * 1024]).unwrap();
        assert_eq!(
            ChapSecrets::parse(&path, b"a * @big.secret *\n")
                .unwrap_err()
                .to_string(),
            format!("{d}/chap-secrets:1: secret: @{d}/big.secret: larger than 64 KiB")
        );
        std::fs::write(&path, "c * @alice.secret *\n").unwrap();
        assert_eq!(
            ChapSecrets::load(&path).unwrap().entries[0].secret,
            password("two words")
        );
        assert_eq!(
            ChapSecrets::load(&dir.join("nope"))
                .unwrap_err()
                .to_string(),
            format!("{d}/nope: cannot read: No such file or directory (os error 2)")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn address_lists() {
        let s = parse(
            "none3 * pw\n\
             dash * pw - 10.0.0.1\n\
             any * pw *\n\
             one * pw 10.0.0.7\n\
             net * pw !10.0.0.5 10.0.0.0/29 10.0.1.9\n\
             later * pw 10.0.0.0/30 10.0.0.9 * 10.0.0.10\n\
             deny * pw !10.0.0.0/8 *\n",
        )
        .unwrap();
        let list = |user: &str| &s.lookup(user.as_bytes(), b"x").unwrap().addresses;
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();

        // Three words or "-": no address at all (pppd).
        for user in ["none3", "dash"] {
            assert!(list(user).is_none(), "{user}");
            assert!(!list(user).permits(a("10.0.0.1")));
            assert_eq!(list(user).static_address, None);
        }
        assert!(list("any").permits(a("203.0.113.9")));
        assert_eq!(list("any").static_address, None);
        assert!(!list("any").is_none());

        assert_eq!(list("one").static_address, Some(a("10.0.0.7")));
        assert!(list("one").permits(a("10.0.0.7")));
        assert!(!list("one").permits(a("10.0.0.8")));

        // First match decides; the exclusion comes first.
        let net = list("net");
        assert!(!net.permits(a("10.0.0.5")));
        assert!(net.permits(a("10.0.0.6")));
        assert!(!net.permits(a("10.0.0.8")));
        assert!(net.permits(a("10.0.1.9")));
        // The first plain address, not the subnet nor the exclusion.
        assert_eq!(net.static_address, Some(a("10.0.1.9")));

        // "*" ends the list: what follows it is ignored, as in pppd.
        let later = list("later");
        assert_eq!(later.static_address, Some(a("10.0.0.9")));
        assert!(later.permits(a("198.51.100.1")));
        assert_eq!(later.rules.len(), 3);

        let deny = list("deny");
        assert!(!deny.permits(a("10.1.2.3")));
        assert!(deny.permits(a("192.168.1.1")));
    }
}
