//! The PPP engine: LCP, authentication, CCP, IPCP and IPV6CP over a sync (HDLC-less) link.

pub mod auth;
pub mod ccp;
pub mod frame;
pub mod fsm;
pub mod ipcp;
pub mod ipv6cp;
pub mod lcp;
pub mod link;
pub mod packet;
#[cfg(test)]
mod pair;
#[cfg(test)]
mod tests;
