//! The PPP engine: LCP, authentication, CCP, IPCP and IPV6CP over a sync (HDLC-less) link.
