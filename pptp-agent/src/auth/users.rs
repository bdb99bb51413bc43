//! The user database the concentrator authenticates against: the chap-secrets file
//! seen from our server name, plus per-user dial-in permission from the
//! configuration.
//!
//! **Dial-in permission** works as in Windows RRAS: a user whose permission is
//! `deny` is refused even with the right password, and the client sees the same
//! failure as for a wrong password (Windows error 691). [`UserDb`] implements this by
//! answering `None` from [`SecretSource::secret`] for such users: the authenticator
//! then sends CHAP/PAP Failure without telling the peer why (the log says why).
//!
//! [`Users`] is the handle shared by every session: a [`UserDb`] behind a lock that
//! [`Users::replace`] swaps on SIGHUP. Sessions already up keep running; new
//! authentications and address allocations see the new database.

use std::{
    collections::{BTreeMap, HashSet},
    net::Ipv4Addr,
    sync::{Arc, RwLock},
};

use serde::Deserialize;

use super::chap_secrets::{AddressList, ChapSecrets};
use crate::ppp::auth::{Secret, SecretSource};

/// Whether a user may dial in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DialIn {
    /// The user may connect (with the right secret).
    #[default]
    Allow,
    /// The user is refused, whatever the password.
    Deny,
}

impl DialIn {
    /// `"allow"` or `"deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            DialIn::Allow => "allow",
            DialIn::Deny => "deny",
        }
    }
}

/// Where the pool learns which addresses a user may get.
pub trait UserAddresses {
    /// The addresses `user` may use (its static address among them), or `None` if
    /// the user is unknown.
    fn addresses(&self, user: &[u8]) -> Option<AddressList>;
    /// Whether `addr` is some user's static address (so the pool never hands it to
    /// anyone else).
    fn is_reserved(&self, addr: Ipv4Addr) -> bool;
}

/// The chap-secrets entries for our server name, with dial-in permissions.
#[derive(Debug, Clone, Default)]
pub struct UserDb {
    secrets: ChapSecrets,
    server: Vec<u8>,
    dial_in: BTreeMap<String, DialIn>,
    default_dial_in: DialIn,
    reserved: HashSet<Ipv4Addr>,
}

impl UserDb {
    /// Users of `secrets` calling server `server` (our CHAP name), with per-user
    /// permissions `dial_in` and `default_dial_in` for everyone else.
    pub fn new(
        secrets: ChapSecrets,
        server: &str,
        dial_in: BTreeMap<String, DialIn>,
        default_dial_in: DialIn,
    ) -> Self {
        let reserved = secrets
            .for_server(server.as_bytes())
            .filter_map(|e| e.addresses.static_address)
            .collect();
        UserDb {
            secrets,
            server: server.as_bytes().to_vec(),
            dial_in,
            default_dial_in,
            reserved,
        }
    }

    /// The secrets file.
    pub fn secrets(&self) -> &ChapSecrets {
        &self.secrets
    }

    /// Whether `user` may dial in.
    pub fn dial_in(&self, user: &[u8]) -> DialIn {
        std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.dial_in.get(u).copied())
            .unwrap_or(self.default_dial_in)
    }

    /// Static addresses of the users of our server.
    pub fn static_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.reserved.iter().copied()
    }
}

impl SecretSource for UserDb {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        let entry = self.secrets.lookup(user, &self.server)?;
        if self.dial_in(user) == DialIn::Deny {
            tracing::info!(
                user = %crate::escape::Escaped(user),
                "dial-in permission denied: refusing authentication"
            );
            return None;
        }
        Some(entry.secret.clone())
    }
}

impl UserAddresses for UserDb {
    fn addresses(&self, user: &[u8]) -> Option<AddressList> {
        self.secrets
            .lookup(user, &self.server)
            .map(|e| e.addresses.clone())
    }

    fn is_reserved(&self, addr: Ipv4Addr) -> bool {
        self.reserved.contains(&addr)
    }
}

/// The user database shared by every session and replaced on reload.
#[derive(Debug, Clone, Default)]
pub struct Users(Arc<RwLock<Arc<UserDb>>>);

impl Users {
    /// A handle on `db`.
    pub fn new(db: UserDb) -> Self {
        Users(Arc::new(RwLock::new(Arc::new(db))))
    }

    /// Swaps in a new database (SIGHUP); sessions already up are not touched.
    pub fn replace(&self, db: UserDb) {
        *self.0.write().expect("users lock") = Arc::new(db);
    }

    /// The current database.
    pub fn current(&self) -> Arc<UserDb> {
        self.0.read().expect("users lock").clone()
    }
}

impl SecretSource for Users {
    fn secret(&self, user: &[u8]) -> Option<Secret> {
        self.current().secret(user)
    }
}

impl UserAddresses for Users {
    fn addresses(&self, user: &[u8]) -> Option<AddressList> {
        self.current().addresses(user)
    }

    fn is_reserved(&self, addr: Ipv4Addr) -> bool {
        self.current().is_reserved(addr)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ppp::auth::{Authenticator, Credentials, Method, Peer, Timers};

    fn db(text: &str, dial_in: &[(&str, DialIn)], default: DialIn) -> UserDb {
        let secrets = ChapSecrets::parse(Path::new("s"), text.as_bytes()).unwrap();
        UserDb::new(
            secrets,
            "pptp-xdp",
            dial_in.iter().map(|(u, d)| (u.to_string(), *d)).collect(),
            default,
        )
    }

    const FILE: &str = "alice * alice-pw *\n\
                        bob pptp-xdp bob-pw 10.0.0.7\n\
                        carol other carol-pw 10.0.0.8\n";

    #[test]
    fn secrets_for_our_server_only() {
        let db = db(FILE, &[], DialIn::Allow);
        assert_eq!(
            db.secret(b"alice"),
            Some(Secret::Password(b"alice-pw".to_vec()))
        );
        assert_eq!(
            db.secret(b"bob"),
            Some(Secret::Password(b"bob-pw".to_vec()))
        );
        assert_eq!(
            db.secret(b"carol"),
            None,
            "carol's entry is for another server"
        );
        assert_eq!(db.secret(b"mallory"), None);
        // Only our server's static addresses are reserved.
        assert!(db.is_reserved(Ipv4Addr::new(10, 0, 0, 7)));
        assert!(!db.is_reserved(Ipv4Addr::new(10, 0, 0, 8)));
        assert_eq!(
            db.addresses(b"bob").unwrap().static_address,
            Some(Ipv4Addr::new(10, 0, 0, 7))
        );
        assert!(db.addresses(b"carol").is_none());
    }

    #[test]
    fn denied_dial_in_hides_the_secret() {
        let db = db(FILE, &[("bob", DialIn::Deny)], DialIn::Allow);
        assert_eq!(db.dial_in(b"bob"), DialIn::Deny);
        assert_eq!(
            db.secret(b"bob"),
            None,
            "refused even with the right password"
        );
        assert!(db.secret(b"alice").is_some());

        // Deny by default, allow one user.
        let db2 = super::tests::db(FILE, &[("alice", DialIn::Allow)], DialIn::Deny);
        assert!(db2.secret(b"alice").is_some());
        assert_eq!(db2.secret(b"bob"), None);
        assert_eq!(db2.dial_in(b"\xff"), DialIn::Deny);
    }

    /// Runs a whole MS-CHAPv2 (or PAP) exchange of `user`/`password` against `db`;
    /// returns the peer's view: `Ok` or the authenticator's failure message.
    fn dial(db: &UserDb, method: Method, user: &str, password: &str) -> Result<(), String> {
        use rand::SeedableRng;
        let now = std::time::Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut auth = Authenticator::new(method, b"pptp-xdp", Timers::default());
        let mut peer = Peer::new(
            method,
            Credentials {
                user: user.as_bytes().to_vec(),
                password: password.as_bytes().to_vec(),
            },
            Timers::default(),
        );
        auth.start(now, &mut rng);
        peer.start(now, &mut rng);
        for _ in 0..4 {
            if let Some(p) = auth.poll_transmit() {
                if let Some(outcome) = peer.receive(now, &p, &mut rng) {
                    return outcome.map(|_| ()).map_err(|e| e.to_string());
                }
            }
            if let Some(p) = peer.poll_transmit() {
                let _ = auth.receive(&p, db, &mut rng);
            }
        }
        Err("no outcome".into())
    }

    #[test]
    fn denied_user_fails_authentication_like_a_wrong_password() {
        let allowed = db(FILE, &[], DialIn::Allow);
        let denied = db(FILE, &[("bob", DialIn::Deny)], DialIn::Allow);
        for method in [
            Method::MsChapV2,
            Method::MsChapV1,
            Method::ChapMd5,
            Method::Pap,
        ] {
            assert_eq!(
                dial(&allowed, method, "bob", "bob-pw"),
                Ok(()),
                "{method:?}"
            );
            let refused = dial(&denied, method, "bob", "bob-pw").unwrap_err();
            let wrong = dial(&allowed, method, "bob", "wrong").unwrap_err();
            assert_eq!(
                refused, wrong,
                "{method:?}: indistinguishable from a wrong password"
            );
            if method == Method::MsChapV2 {
                assert!(refused.contains("E=691"), "{refused}");
            }
            assert_eq!(dial(&denied, method, "alice", "alice-pw"), Ok(()));
        }
    }

    #[test]
    fn reload_swaps_the_database() {
        let users = Users::new(db(FILE, &[], DialIn::Allow));
        let clone = users.clone();
        assert!(clone.secret(b"bob").is_some());
        users.replace(db(FILE, &[("bob", DialIn::Deny)], DialIn::Allow));
        assert!(
            clone.secret(b"bob").is_none(),
            "every handle sees the new database"
        );
        assert!(clone.is_reserved(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(
            clone.addresses(b"bob").unwrap().static_address,
            Some(Ipv4Addr::new(10, 0, 0, 7))
        );
    }
}
