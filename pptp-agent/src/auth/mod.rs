//! Who may dial in: the chap-secrets file, per-user dial-in permission and the
//! addresses each user may get.
//!
//! - [`chap_secrets`]: pppd's `chap-secrets` format (client, server, secret, address
//!   list), with NT-hash secrets (`nthash:<32 hex>`).
//! - [`users`]: [`UserDb`](users::UserDb), the entries for our server name plus
//!   dial-in permissions, as a [`SecretSource`](crate::ppp::auth::SecretSource); and
//!   [`Users`](users::Users), the reloadable handle shared by every session.
//! - [`pool`]: [`UserPool`](pool::UserPool), the address pool that hands users their
//!   static addresses and respects their address lists.

pub mod chap_secrets;
pub mod free_runs;
pub mod pool;
pub mod users;
