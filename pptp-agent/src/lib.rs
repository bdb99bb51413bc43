//! pptp-agent: the userspace half of pptp-xdp.
//!
//! Protocol logic is sans-IO (bytes, events and time in; bytes, actions and deadlines
//! out) so that it can be unit-tested, fuzzed and replayed from captures; the tokio
//! layer only moves bytes between sockets and those machines.
//!
//! - [`pptp`] and [`gre`]: the PPTP control channel and enhanced GRE (RFC 2637).
//! - [`ppp`]: LCP, authentication, CCP, IPCP and IPV6CP.
//! - [`mppe`]: MPPE key derivation and cipher (RFC 3078, 3079).
//! - [`demand`]: demand-dial interfaces (when to dial, hang up, queue).
//! - [`engine`]: the concentrator as a sans-IO engine: sessions, the agent's packet
//!   path, RADIUS, demand-dial supervision, operator views.
//! - [`runtime`]: the tokio shell around the engine: sockets, TUN devices, control
//!   connections, RADIUS exchanges.
//! - [`dataplane`]: loading the embedded BPF programs and reading their maps.
//! - [`guard`]: bounds on what one peer can cost (descriptors, unauthenticated
//!   calls, failed logins) and their counters.
//!
//! Dependencies run one way, lowest first: helpers (`escape`, `inet`, `diag`);
//! protocols (`gre`, `pptp`, `ppp`, `mppe`, `dhcp`, `demand`, `auth`, `radius`,
//! `guard`); `engine`; `dataplane` and `runtime`; `config`, which the command line
//! reads and turns into the plain settings the layers below own; `api`; the binary's
//! `cli`. No cycles between modules nor between the files of one module:
//! `pptp-agent/tests/layers.rs` checks both.

pub mod api;
pub mod auth;
pub mod config;
pub mod dataplane;
pub mod demand;
pub mod dhcp;
pub mod diag;
pub mod engine;
pub mod escape;
pub mod gre;
pub mod guard;
pub mod inet;
pub mod mppe;
pub mod ppp;
pub mod pptp;
pub mod radius;
pub mod runtime;
