//! `rate` in `[auth]` (the default) and `[users.NAME]`: a rate limit in the
//! Mikrotik-Rate-Limit format (`pptp_common::rate`), e.g. `"10M/20M"`: 10 Mbit/s
//! from the client, 20 Mbit/s to it.

use pptp_common::rate::RateLimit;
use toml::Spanned;

use super::check::Checker;

/// The rate at `key`, reported through `c` if it does not parse; absent: none.
pub(super) fn check(c: &mut Checker, v: &Option<Spanned<String>>, key: &str) -> RateLimit {
    let Some(v) = v else {
        return RateLimit::default();
    };
    match RateLimit::parse(v.get_ref()) {
        Ok(rate) => rate,
        Err(e) => {
            c.err(
                v.span(),
                key,
                format!(
                    "{:?}: {e} (e.g. \"10M/20M\": from the client/to it, bits per second)",
                    v.get_ref()
                ),
            );
            RateLimit::default()
        }
    }
}
