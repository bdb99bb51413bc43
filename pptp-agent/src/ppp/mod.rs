//! The PPP engine: LCP, authentication, CCP, IPCP and IPV6CP over a sync (HDLC-less)
//! link, as PPTP carries it in GRE (RFC 2637 §4.4), for both ends of a call.
//!
//! Everything here is sans-IO: machines take bytes, events and `Instant`s and return
//! bytes, events and deadlines; randomness (magic numbers, challenges) is injected.
//!
//! - [`link`]: one PPP link composed from the parts below, with the RFC 1661 phases;
//!   this is what the concentrator and the client drive.
//! - [`fsm`]: the option-negotiation automaton of RFC 1661 §4, written once; [`lcp`],
//!   [`ccp`], [`ipcp`] and [`ipv6cp`] only supply their options through its
//!   [`fsm::Negotiator`] trait.
//! - [`auth`]: PAP, CHAP-MD5, MS-CHAPv1 and MS-CHAPv2, authenticator and peer.
//! - [`frame`] and [`packet`]: the wire formats (framing with ACFC/PFC; Code/Id/Length
//!   packets and option lists). They never panic on any input.
//! - `queue`: the machines' output queues give their memory back once drained.

pub mod auth;
pub mod ccp;
pub mod frame;
pub mod fsm;
pub mod ipcp;
pub mod ipv6cp;
pub mod lcp;
pub mod link;
pub mod packet;
mod queue;

/// The `rand` the engine's injected RNG (`rand::RngCore`) comes from, so callers can
/// build one (e.g. a seeded `StdRng` in tests and fuzz targets) without matching versions.
pub use rand;

#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;
