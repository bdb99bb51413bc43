//! What the sections of the file share while they are validated: [`Checker`], which
//! collects every problem with its line, and the checks and names several sections
//! use (interface names, pool ranges, method and key names).

use std::{net::Ipv4Addr, ops::Range, path::Path};

use toml::Spanned;

use crate::{
    auth::pool::AddressRange,
    diag::{Diagnostic, line_of},
    mppe::KeyStrength,
    ppp::auth::Method,
};

type S<T> = Spanned<T>;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const IFNAMSIZ_MAX: usize = 15;

/// Where a file's problems are collected while it is validated: each with its line.
pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) errors: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn err(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(Diagnostic::new(
            self.path,
            line_of(self.text, span.start),
            key,
            message,
        ));
    }

    pub(super) fn missing(&mut self, key: &str, message: &str) {
        self.errors.push(Diagnostic::new(
            self.path,
            0,
            key,
            format!("missing: {message}"),
        ));
    }

    /// An integer in `range`, or the default.
    pub(super) fn int(
        &mut self,
        value: &Option<S<i64>>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
        default: i64,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.err(
                    v.span(),
                    key,
                    format!(
                        "{} is out of range ({} to {})",
                        v.get_ref(),
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
        }
    }

    pub(super) fn ipv4(&mut self, value: &S<String>, key: &str) -> Option<Ipv4Addr> {
        match value.get_ref().parse::<Ipv4Addr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    value.span(),
                    key,
                    format!("{:?} is not an IPv4 address", value.get_ref()),
                );
                None
            }
        }
    }

    pub(super) fn interface(&mut self, value: &S<String>, key: &str) -> String {
        let name = value.get_ref();
        if name.is_empty() {
            self.err(value.span(), key, "empty interface name");
        } else if name.len() > IFNAMSIZ_MAX {
            self.err(
                value.span(),
                key,
                format!(
                    "{name:?} is longer than {IFNAMSIZ_MAX} bytes (Linux's limit for interface names)"
                ),
            );
        } else if name == "."
            || name == ".."
            || name.contains(['/', ':'])
            || name.contains(char::is_whitespace)
        {
            self.err(
                value.span(),
                key,
                format!("{name:?} is not a valid interface name"),
            );
        }
        name.clone()
    }

    /// A pool range that overlaps none of `taken`, holds no `local_ip` and only
    /// addresses clients can use.
    pub(super) fn range(
        &mut self,
        v: &S<String>,
        key: &str,
        taken: &[AddressRange],
        local_ip: Option<Ipv4Addr>,
    ) -> Option<AddressRange> {
        let range = match parse_range(v.get_ref()) {
            Ok(r) => r,
            Err(m) => {
                self.err(v.span(), key, m);
                return None;
            }
        };
        let problem = if let Some(other) = taken.iter().find(|p| p.overlaps(&range)) {
            format!("{range} overlaps {other}")
        } else if let Some(l) = local_ip.filter(|l| range.contains(*l)) {
            format!("{range} contains the local address {l} (tunnel.local_ip)")
        } else if !unicast(range.first) || !unicast(range.last) {
            format!("{range} includes addresses clients cannot use")
        } else {
            return Some(range);
        };
        self.err(v.span(), key, problem);
        None
    }

    pub(super) fn servers(
        &mut self,
        value: &Option<S<Vec<S<String>>>>,
        key: &str,
    ) -> [Option<Ipv4Addr>; 2] {
        let Some(list) = value else {
            return [None, None];
        };
        if list.get_ref().len() > 2 {
            self.err(
                list.span(),
                key,
                format!(
                    "{} servers given; clients accept at most two (primary, secondary)",
                    list.get_ref().len()
                ),
            );
        }
        let addrs: Vec<Option<Ipv4Addr>> =
            list.get_ref().iter().map(|v| self.ipv4(v, key)).collect();
        [
            addrs.first().copied().flatten(),
            addrs.get(1).copied().flatten(),
        ]
    }
}

pub(super) fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
}

/// Parses a pool: `FIRST-LAST`, `ADDR/N` (without its network and broadcast
/// addresses when N < 31) or one address.
fn parse_range(s: &str) -> Result<AddressRange, String> {
    let bad = |what: &str| format!("{s:?}: {what}; write FIRST-LAST, ADDR/N or one address");
    let ip = |t: &str| {
        t.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| bad("not an address"))
    };
    if let Some((a, b)) = s.split_once('-') {
        let (first, last) = (ip(a)?, ip(b)?);
        if first > last {
            return Err(format!("{s:?} is empty ({first} comes after {last})"));
        }
        Ok(AddressRange { first, last })
    } else if let Some((a, n)) = s.split_once('/') {
        let base = u32::from(ip(a)?);
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n <= 32)
            .ok_or_else(|| bad("the prefix length must be 0 to 32"))?;
        let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
        if base & !mask != 0 {
            return Err(format!(
                "{s:?} has host bits set (did you mean {}/{n}?)",
                Ipv4Addr::from(base & mask)
            ));
        }
        let (first, last) = (base, base | !mask);
        let (first, last) = if n < 31 {
            (first + 1, last - 1)
        } else {
            (first, last)
        };
        Ok(AddressRange {
            first: Ipv4Addr::from(first),
            last: Ipv4Addr::from(last),
        })
    } else {
        let a = ip(s)?;
        Ok(AddressRange { first: a, last: a })
    }
}

pub(super) fn method_name(m: Method) -> &'static str {
    match m {
        Method::MsChapV2 => "mschapv2",
        Method::MsChapV1 => "mschap",
        Method::ChapMd5 => "chap",
        Method::Pap => "pap",
    }
}

pub(super) fn bits(s: KeyStrength) -> u32 {
    match s {
        KeyStrength::Bits40 => 40,
        KeyStrength::Bits56 => 56,
        KeyStrength::Bits128 => 128,
    }
}

/// A user name as it appears in a dotted key: bare if TOML allows it, else quoted.
pub(super) fn quote_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}
