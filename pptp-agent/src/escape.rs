//! Strings from the network, made safe to log. A user name, a RADIUS Reply-Message or
//! a peer's failure message is whatever the peer sent: written raw, a newline forges a
//! log line of the attacker's choosing, terminal escapes rewrite what an operator sees,
//! and bidirectional overrides reorder text. (tracing-subscriber escapes ESC and a few
//! other C0 controls, not newlines.)

use std::fmt;

/// `bytes` as text safe in a log line: UTF-8, with invalid bytes as `\xNN`, control
/// characters as `\n`, `\r`, `\t` or `\u{..}`, Unicode characters that hide or reorder
/// text (zero-width, bidirectional controls, line and paragraph separators) as
/// `\u{..}`, and `\` as `\\` (so an escape in the output always comes from us).
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl<'a> Escaped<'a> {
    pub fn str(s: &'a str) -> Self {
        Self(s.as_bytes())
    }
}

/// Characters that change how the text around them is shown.
fn hides_or_reorders(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}'
            | '\u{feff}'
    )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    c if c.is_control() || hides_or_reorders(c) => {
                        write!(f, "{}", c.escape_unicode())?
                    }
                    c => write!(f, "{c}")?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_from_the_network_reaches_a_log_line_raw() {
        let e = |b: &[u8]| Escaped(b).to_string();
        assert_eq!(e(b"alice"), "alice");
        assert_eq!(
            e("J\u{fc}rgen@corp".as_bytes()),
            "J\u{fc}rgen@corp",
            "letters stay"
        );
        assert_eq!(
            e(b"x\nINFO pptp_agent: authenticated user=admin"),
            "x\\nINFO pptp_agent: authenticated user=admin",
            "no forged line"
        );
        assert_eq!(e(b"a\r\tb"), "a\\r\\tb");
        assert_eq!(e(b"\x1b[31mred\x07"), "\\u{1b}[31mred\\u{7}");
        assert_eq!(e("\u{85}".as_bytes()), "\\u{85}", "C1 control (NEL)");
        assert_eq!(e("evil\u{202e}txt.exe".as_bytes()), "evil\\u{202e}txt.exe");
        assert_eq!(e("a\u{2028}b\u{200b}".as_bytes()), "a\\u{2028}b\\u{200b}");
        assert_eq!(e(b"\xff\xfeok"), "\\xff\\xfeok", "invalid UTF-8");
        assert_eq!(
            e(b"a\\nb"),
            "a\\\\nb",
            "a backslash the peer sent is escaped too"
        );
        assert_eq!(format!("{:?}", Escaped::str("a\nb")), "\"a\\nb\"");
        let out = e(&(0u8..=255).collect::<Vec<u8>>());
        assert!(!out.chars().any(|c| c.is_control()), "{out}");
    }
}
