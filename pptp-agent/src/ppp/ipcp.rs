//! IPCP (RFC 1332) with the Microsoft DNS/NBNS options (RFC 1877), one negotiator for
//! both ends.
//!
//! The server knows the peer's address (from the pool) and its DNS/NBNS servers: it
//! acks a request for exactly those and Naks anything else (a Windows client asks for
//! 0.0.0.0 and four zero servers), and rejects servers it has none of. The client
//! asks for 0.0.0.0 (and DNS if configured), takes the values it is Nak-ed with, and
//! acks whatever address the server claims for itself. IP-Compression-Protocol and the
//! obsolete IP-Addresses option are rejected.

use std::net::Ipv4Addr;

use super::fsm::{Judgement, Negotiator, Verdict};
use super::packet::{self, Opt};

/// IPCP option types.
pub mod opt {
    /// IP-Compression-Protocol (rejected).
    pub const COMPRESSION: u8 = 2;
    /// IP-Address.
    pub const ADDRESS: u8 = 3;
    /// Primary DNS server (RFC 1877).
    pub const PRIMARY_DNS: u8 = 129;
    /// Primary NBNS (WINS) server.
    pub const PRIMARY_NBNS: u8 = 130;
    /// Secondary DNS server.
    pub const SECONDARY_DNS: u8 = 131;
    /// Secondary NBNS server.
    pub const SECONDARY_NBNS: u8 = 132;
}

/// Where the server gets the addresses it assigns (the concentrator's pool).
pub trait AddressPool {
    /// An address for `user`, or `None` when the pool is exhausted.
    fn allocate(&mut self, user: &[u8]) -> Option<Ipv4Addr>;
    /// An address for a peer whose address was decided elsewhere (RADIUS): exactly
    /// `wanted` (Framed-IP-Address) if given, else a free one of the pool `named`
    /// (Framed-Pool) or of the default ranges; `None` if that is in use, the named
    /// pool unknown or nothing free. The default: this pool serves no such peer.
    fn allocate_authorized(
        &mut self,
        wanted: Option<Ipv4Addr>,
        named: Option<&str>,
    ) -> Option<Ipv4Addr> {
        let _ = (wanted, named);
        None
    }
    /// Gives an address back when its link ends.
    fn release(&mut self, address: Ipv4Addr);
}

/// IPCP settings for one end.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpcpConfig {
    /// Our address; `None` asks the peer for one (client).
    pub local: Option<Ipv4Addr>,
    /// The address the peer must use; `None` accepts the peer's own (client).
    pub peer: Option<Ipv4Addr>,
    /// DNS servers we hand out (primary, secondary).
    pub dns: [Option<Ipv4Addr>; 2],
    /// NBNS servers we hand out (primary, secondary).
    pub nbns: [Option<Ipv4Addr>; 2],
    /// Ask the peer for DNS servers (client).
    pub request_dns: bool,
}

/// What IPCP agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcpResult {
    /// Our address.
    pub local: Ipv4Addr,
    /// The peer's address.
    pub peer: Ipv4Addr,
    /// DNS servers we were given (client) or gave (server).
    pub dns: [Option<Ipv4Addr>; 2],
}

/// The IPCP negotiator.
#[derive(Debug)]
pub struct Ipcp {
    config: IpcpConfig,
    // Our request.
    address: Option<Ipv4Addr>,
    dns: [Option<Ipv4Addr>; 2],
    // Outcome.
    acked_local: Option<Ipv4Addr>,
    acked_dns: [Option<Ipv4Addr>; 2],
    peer_address: Option<Ipv4Addr>,
}

fn ip(o: &Opt<'_>) -> Option<Ipv4Addr> {
    o.u32().map(Ipv4Addr::from)
}

impl Ipcp {
    /// A negotiator for `config`.
    pub fn new(config: IpcpConfig) -> Self {
        let mut ipcp = Ipcp {
            config,
            address: None,
            dns: [None; 2],
            acked_local: None,
            acked_dns: [None; 2],
            peer_address: None,
        };
        ipcp.reset();
        ipcp
    }

    /// The addresses agreed, once both requests are acked; `None` if either end has
    /// no usable address.
    pub fn result(&self) -> Option<IpcpResult> {
        let local = self.acked_local.filter(|a| !a.is_unspecified())?;
        let peer = self
            .config
            .peer
            .or(self.peer_address)
            .filter(|a| !a.is_unspecified())?;
        let dns = if self.config.request_dns {
            self.acked_dns
        } else {
            self.config.dns
        };
        Some(IpcpResult { local, peer, dns })
    }

    fn offered(&self, kind: u8) -> Option<Ipv4Addr> {
        match kind {
            opt::ADDRESS => self.config.peer,
            opt::PRIMARY_DNS => self.config.dns[0],
            opt::SECONDARY_DNS => self.config.dns[1],
            opt::PRIMARY_NBNS => self.config.nbns[0],
            opt::SECONDARY_NBNS => self.config.nbns[1],
            _ => None,
        }
    }
}

impl Negotiator for Ipcp {
    fn request(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(a) = self.address {
            packet::push_option(&mut out, opt::ADDRESS, &a.octets());
        }
        for (kind, dns) in [
            (opt::PRIMARY_DNS, self.dns[0]),
            (opt::SECONDARY_DNS, self.dns[1]),
        ] {
            if let Some(d) = dns {
                packet::push_option(&mut out, kind, &d.octets());
            }
        }
        out
    }

    fn judge(&mut self, options: &[Opt<'_>]) -> Verdict {
        self.peer_address = None;
        let mut j = Judgement::default();
        let mut saw_address = false;
        for o in options {
            let (Some(value), true) = (ip(o), matches!(o.kind, opt::ADDRESS | 129..=132)) else {
                j.reject(o);
                continue;
            };
            saw_address |= o.kind == opt::ADDRESS;
            match (o.kind, self.offered(o.kind)) {
                (_, Some(ours)) if ours == value => {}
                (_, Some(ours)) => j.nak(o.kind, &ours.octets()),
                (opt::ADDRESS, None) => self.peer_address = Some(value),
                _ => j.reject(o),
            }
        }
        if let (false, Some(peer)) = (saw_address, self.config.peer) {
            // RFC 1332 §3.3: Nak-ing a missing address asks the peer to use it.
            j.nak(opt::ADDRESS, &peer.octets());
        }
        j.verdict()
    }

    fn acked(&mut self, options: &[Opt<'_>]) {
        for o in options {
            match o.kind {
                opt::ADDRESS => self.acked_local = ip(o),
                opt::PRIMARY_DNS => self.acked_dns[0] = ip(o),
                opt::SECONDARY_DNS => self.acked_dns[1] = ip(o),
                _ => {}
            }
        }
    }

    fn nakked(&mut self, options: &[Opt<'_>]) {
        for o in options {
            match (o.kind, ip(o)) {
                (opt::ADDRESS, Some(a)) if self.config.local.is_none() => self.address = Some(a),
                (opt::PRIMARY_DNS, Some(a)) if self.dns[0].is_some() => self.dns[0] = Some(a),
                (opt::SECONDARY_DNS, Some(a)) if self.dns[1].is_some() => self.dns[1] = Some(a),
                _ => {}
            }
        }
    }

    fn rejected(&mut self, options: &[Opt<'_>]) {
        for o in options {
            match o.kind {
                opt::ADDRESS => self.address = None,
                opt::PRIMARY_DNS => self.dns[0] = None,
                opt::SECONDARY_DNS => self.dns[1] = None,
                _ => {}
            }
        }
    }

    fn reset(&mut self) {
        self.address = Some(self.config.local.unwrap_or(Ipv4Addr::UNSPECIFIED));
        let ask = self.config.request_dns.then_some(Ipv4Addr::UNSPECIFIED);
        self.dns = [ask, ask];
        self.acked_local = None;
        self.acked_dns = [None; 2];
        self.peer_address = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
    const DNS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

    fn server() -> Ipcp {
        Ipcp::new(IpcpConfig {
            local: Some(LOCAL),
            peer: Some(POOL),
            dns: [Some(DNS), None],
            ..IpcpConfig::default()
        })
    }

    #[test]
    fn windows_request_gets_nak_with_values_and_wins_rejected() {
        let mut req = Vec::new();
        for kind in [3, 129, 130, 131, 132] {
            packet::push_option(&mut req, kind, &[0, 0, 0, 0]);
        }
        let mut s = server();
        let Verdict::Reject(rej) = s.judge(&packet::parse_options(&req).unwrap()) else {
            panic!()
        };
        let kinds: Vec<u8> = packet::parse_options(&rej)
            .unwrap()
            .iter()
            .map(|o| o.kind)
            .collect();
        assert_eq!(kinds, [130, 131, 132]);
        let retry = &req[..12];
        let Verdict::Nak(nak) = s.judge(&packet::parse_options(retry).unwrap()) else {
            panic!()
        };
        assert_eq!(nak, [3, 6, 198, 51, 100, 10, 129, 6, 192, 0, 2, 53]);
        assert_eq!(s.judge(&packet::parse_options(&nak).unwrap()), Verdict::Ack);
    }

    #[test]
    fn client_takes_the_nakked_address() {
        let mut c = Ipcp::new(IpcpConfig {
            request_dns: true,
            ..IpcpConfig::default()
        });
        let nak = [3, 6, 198, 51, 100, 10, 129, 6, 192, 0, 2, 53];
        c.nakked(&packet::parse_options(&nak).unwrap());
        c.rejected(&packet::parse_options(&[131, 6, 0, 0, 0, 0]).unwrap());
        let req = c.request();
        assert_eq!(req, nak);
        c.acked(&packet::parse_options(&req).unwrap());
        assert_eq!(
            c.judge(&packet::parse_options(&[3, 6, 198, 51, 100, 1]).unwrap()),
            Verdict::Ack
        );
        let r = c.result().unwrap();
        assert_eq!((r.local, r.peer, r.dns), (POOL, LOCAL, [Some(DNS), None]));
    }

    #[test]
    fn missing_address_is_nakked() {
        let mut s = server();
        assert_eq!(s.judge(&[]), Verdict::Nak(vec![3, 6, 198, 51, 100, 10]));
    }
}
