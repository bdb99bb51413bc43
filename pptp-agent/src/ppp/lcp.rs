//! LCP's options (RFC 1661 §6): MRU, ACCM, Authentication-Protocol, Magic-Number,
//! PFC and ACFC; everything else (Quality-Protocol, Callback 13, MRRU 17, Endpoint
//! Discriminator 19, option 23, ...) is Configure-Rejected, and Windows retries
//! without them.
//!
//! Authentication is chosen here. The authenticator requests the first method of its
//! policy and walks down the list when the peer Naks; a peer acks a method on its own
//! list and Naks any other with its favourite. A peer that rejects the option, or a
//! method list that runs out, is reported through [`Lcp::failure`] for the link to
//! close. Magic-Number collisions (RFC 1661 §6.4) are answered with a fresh number;
//! too many in a row mean a looped-back link.
//!
//! The LCP codes beyond Configure (Protocol-Reject, Echo, Discard, Identification,
//! Time-Remaining) are handled by the link, which owns the echo timer.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::auth::{Method, Policy};
use super::frame::Framing;
use super::fsm::{Judgement, Negotiator, Verdict};
use super::packet::{self, DEFAULT_MRU, Opt};

/// LCP option types used here.
pub mod opt {
    /// Maximum-Receive-Unit.
    pub const MRU: u8 = 1;
    /// Async-Control-Character-Map.
    pub const ACCM: u8 = 2;
    /// Authentication-Protocol.
    pub const AUTH: u8 = 3;
    /// Magic-Number.
    pub const MAGIC: u8 = 5;
    /// Protocol-Field-Compression.
    pub const PFC: u8 = 7;
    /// Address-and-Control-Field-Compression.
    pub const ACFC: u8 = 8;
}

/// LCP codes beyond the automaton's (RFC 1661 §5.7-5.9, RFC 1570).
pub mod code {
    /// Protocol-Reject.
    pub const PROTOCOL_REJECT: u8 = 8;
    /// Echo-Request.
    pub const ECHO_REQUEST: u8 = 9;
    /// Echo-Reply.
    pub const ECHO_REPLY: u8 = 10;
    /// Discard-Request.
    pub const DISCARD_REQUEST: u8 = 11;
    /// Identification (RFC 1570).
    pub const IDENTIFICATION: u8 = 12;
    /// Time-Remaining (RFC 1570).
    pub const TIME_REMAINING: u8 = 13;
}

/// The smallest MRU accepted from a peer.
pub const MIN_MRU: u16 = 128;
/// Magic-Number collisions in a row taken as a looped-back link.
const MAX_MAGIC_COLLISIONS: u32 = 5;

/// Which end of authentication this link plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRole {
    /// We authenticate the peer with one of these methods.
    Authenticator(Policy),
    /// We authenticate ourselves with one of these methods (empty: we refuse to).
    Peer(Policy),
}

/// Why LCP cannot reach a usable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpFailure {
    /// No authentication method both ends accept.
    NoCommonAuth,
    /// The peer refused to authenticate (rejected the option).
    AuthRefused,
    /// Our own Configure-Requests keep coming back: the link is looped back.
    LoopedBack,
}

/// LCP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpConfig {
    /// The MRU we ask for (not sent when it is the default 1500).
    pub mru: u16,
    /// Ask for Protocol-Field-Compression.
    pub pfc: bool,
    /// Ask for Address-and-Control-Field-Compression.
    pub acfc: bool,
    /// Authentication role and methods.
    pub auth: AuthRole,
}

/// The LCP negotiator.
#[derive(Debug)]
pub struct Lcp {
    config: LcpConfig,
    rng: StdRng,
    // Our wishes for the current negotiation.
    mru: Option<u16>,
    magic: u32,
    pfc: bool,
    acfc: bool,
    auth: Option<Method>,
    tried: Vec<Method>,
    // What the peer asked for and we acked.
    peer_mru: u16,
    peer_magic: u32,
    peer_auth: Option<Method>,
    send_framing: Framing,
    // Results.
    collisions: u32,
    failure: Option<LcpFailure>,
}

impl Lcp {
    /// A negotiator; `rng` seeds the magic numbers.
    pub fn new(config: LcpConfig, rng: &mut dyn RngCore) -> Self {
        let mut lcp = Lcp {
            config,
            rng: StdRng::seed_from_u64(rng.next_u64()),
            mru: None,
            magic: 0,
            pfc: false,
            acfc: false,
            auth: None,
            tried: Vec::new(),
            peer_mru: DEFAULT_MRU,
            peer_magic: 0,
            peer_auth: None,
            send_framing: Framing::default(),
            collisions: 0,
            failure: None,
        };
        lcp.reset();
        lcp
    }

    /// The framing to send with (what the peer asked for and we acked).
    pub fn send_framing(&self) -> Framing {
        self.send_framing
    }

    /// The peer's MRU: no frame we send may carry more.
    pub fn peer_mru(&self) -> u16 {
        self.peer_mru
    }

    /// Our magic number (0 when not negotiated).
    pub fn magic(&self) -> u32 {
        self.magic
    }

    /// The authentication method agreed, if any.
    pub fn auth_method(&self) -> Option<Method> {
        match self.config.auth {
            AuthRole::Authenticator(_) => self.auth,
            AuthRole::Peer(_) => self.peer_auth,
        }
    }

    /// A reason this negotiation cannot succeed, once known.
    pub fn failure(&self) -> Option<LcpFailure> {
        self.failure
    }

    fn fresh_magic(&mut self) -> u32 {
        loop {
            let m = self.rng.next_u32();
            if m != 0 && m != self.peer_magic && m != self.magic {
                return m;
            }
        }
    }

    fn next_auth(&mut self) -> Option<Method> {
        let AuthRole::Authenticator(policy) = &self.config.auth else {
            return None;
        };
        policy
            .methods
            .iter()
            .copied()
            .find(|m| !self.tried.contains(m))
    }
}

impl Negotiator for Lcp {
    fn request(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(mru) = self.mru {
            packet::push_option(&mut out, opt::MRU, &mru.to_be_bytes());
        }
        if let Some(method) = self.auth {
            packet::push_option(&mut out, opt::AUTH, &method.option_data());
        }
        packet::push_option(&mut out, opt::MAGIC, &self.magic.to_be_bytes());
        if self.pfc {
            packet::push_option(&mut out, opt::PFC, &[]);
        }
        if self.acfc {
            packet::push_option(&mut out, opt::ACFC, &[]);
        }
        out
    }

    fn judge(&mut self, options: &[Opt<'_>]) -> Verdict {
        self.peer_mru = DEFAULT_MRU;
        self.peer_auth = None;
        self.send_framing = Framing::default();
        let mut j = Judgement::default();
        for o in options {
            match (o.kind, &self.config.auth) {
                (opt::MRU, _) => match o.u16() {
                    Some(mru) if mru >= MIN_MRU => self.peer_mru = mru,
                    Some(_) => j.nak(opt::MRU, &MIN_MRU.to_be_bytes()),
                    None => j.reject(o),
                },
                // A sync link has no control characters: any map is fine.
                (opt::ACCM, _) if o.data.len() == 4 => {}
                (opt::AUTH, AuthRole::Peer(policy)) if !policy.methods.is_empty() => {
                    match Method::from_option_data(o.data) {
                        Some(m) if policy.allows(m) => self.peer_auth = Some(m),
                        _ => j.nak(opt::AUTH, &policy.methods[0].option_data()),
                    }
                }
                (opt::MAGIC, _) => match o.u32() {
                    Some(m) if m != 0 && m == self.magic => {
                        self.collisions += 1;
                        if self.collisions >= MAX_MAGIC_COLLISIONS {
                            self.failure = Some(LcpFailure::LoopedBack);
                        }
                        let fresh = self.fresh_magic();
                        j.nak(opt::MAGIC, &fresh.to_be_bytes());
                    }
                    Some(m) => self.peer_magic = m,
                    None => j.reject(o),
                },
                (opt::PFC, _) if o.data.is_empty() => self.send_framing.pfc = true,
                (opt::ACFC, _) if o.data.is_empty() => self.send_framing.acfc = true,
                _ => j.reject(o),
            }
        }
        j.verdict()
    }

    fn acked(&mut self, _options: &[Opt<'_>]) {
        self.collisions = 0;
    }

    fn nakked(&mut self, options: &[Opt<'_>]) {
        for o in options {
            match o.kind {
                opt::MRU => {
                    self.mru = o
                        .u16()
                        .filter(|&m| (MIN_MRU..=self.config.mru).contains(&m));
                }
                opt::MAGIC => self.magic = self.fresh_magic(),
                opt::AUTH => {
                    if let Some(current) = self.auth {
                        self.tried.push(current);
                    }
                    let suggested = Method::from_option_data(o.data);
                    let allowed = match &self.config.auth {
                        AuthRole::Authenticator(p) => suggested.filter(|m| p.allows(*m)),
                        AuthRole::Peer(_) => None,
                    };
                    self.auth = allowed
                        .filter(|m| !self.tried.contains(m))
                        .or_else(|| self.next_auth());
                    if self.auth.is_none() && self.failure.is_none() {
                        self.failure = Some(LcpFailure::NoCommonAuth);
                    }
                }
                _ => {}
            }
        }
    }

    fn rejected(&mut self, options: &[Opt<'_>]) {
        for o in options {
            match o.kind {
                opt::MRU => self.mru = None,
                opt::MAGIC => self.magic = 0,
                opt::PFC => self.pfc = false,
                opt::ACFC => self.acfc = false,
                opt::AUTH if self.auth.is_some() => {
                    self.failure.get_or_insert(LcpFailure::AuthRefused);
                }
                _ => {}
            }
        }
    }

    fn reset(&mut self) {
        self.mru = (self.config.mru != DEFAULT_MRU).then_some(self.config.mru);
        self.pfc = self.config.pfc;
        self.acfc = self.config.acfc;
        self.tried.clear();
        self.auth = self.next_auth();
        self.magic = self.fresh_magic();
        self.collisions = 0;
        self.failure = None;
    }

    fn knows_code(&self, code: u8) -> bool {
        (code::PROTOCOL_REJECT..=code::TIME_REMAINING).contains(&code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;

    fn lcp(auth: AuthRole) -> Lcp {
        let config = LcpConfig {
            mru: 1400,
            pfc: true,
            acfc: true,
            auth,
        };
        Lcp::new(config, &mut StdRng::seed_from_u64(1))
    }

    fn opts(bytes: &[u8]) -> Vec<Opt<'_>> {
        packet::parse_options(bytes).unwrap()
    }

    #[test]
    fn windows_request_gets_its_extras_rejected() {
        // MRU 1400, magic, PFC, ACFC, Callback (CBCP), MRRU, Endpoint Discriminator, 23.
        let req = [
            1, 4, 0x05, 0x78, 5, 6, 1, 2, 3, 4, 7, 2, 8, 2, 13, 3, 6, 17, 4, 0x06, 0x4e, 19, 3, 0,
            23, 6, 0, 0, 0, 1,
        ];
        let mut l = lcp(AuthRole::Authenticator(Policy::new(&[Method::MsChapV2])));
        let Verdict::Reject(rej) = l.judge(&opts(&req)) else {
            panic!("expected a reject")
        };
        let kinds: Vec<u8> = opts(&rej).iter().map(|o| o.kind).collect();
        assert_eq!(kinds, [13, 17, 19, 23]);
        // Windows retries without them and is acked.
        assert_eq!(l.judge(&opts(&req[..14])), Verdict::Ack);
        assert_eq!(l.peer_mru(), 1400);
        assert_eq!(
            l.send_framing(),
            Framing {
                acfc: true,
                pfc: true
            }
        );
    }

    #[test]
    fn peer_naks_methods_it_refuses() {
        let mut l = lcp(AuthRole::Peer(Policy::new(&[Method::MsChapV2])));
        let pap = [3, 4, 0xc0, 0x23];
        let Verdict::Nak(nak) = l.judge(&opts(&pap)) else {
            panic!()
        };
        assert_eq!(nak, [3, 5, 0xc2, 0x23, 0x81]);
        assert_eq!(l.judge(&opts(&nak)), Verdict::Ack);
        assert_eq!(l.auth_method(), Some(Method::MsChapV2));
    }

    #[test]
    fn authenticator_falls_back_then_gives_up() {
        let mut l = lcp(AuthRole::Authenticator(Policy::new(&[
            Method::MsChapV2,
            Method::Pap,
        ])));
        assert_eq!(l.auth_method(), Some(Method::MsChapV2));
        l.nakked(&opts(&[3, 5, 0xc2, 0x23, 0x05]));
        assert_eq!(l.auth_method(), Some(Method::Pap));
        l.nakked(&opts(&[3, 5, 0xc2, 0x23, 0x05]));
        assert_eq!(l.failure(), Some(LcpFailure::NoCommonAuth));
        l.reset();
        l.rejected(&opts(&[3, 5, 0xc2, 0x23, 0x81]));
        assert_eq!(l.failure(), Some(LcpFailure::AuthRefused));
    }

    #[test]
    fn magic_collision_is_nakked_and_repeated_ones_mean_loopback() {
        let mut l = lcp(AuthRole::Peer(Policy::default()));
        for _ in 0..MAX_MAGIC_COLLISIONS {
            let mut req = Vec::new();
            packet::push_option(&mut req, opt::MAGIC, &l.magic().to_be_bytes());
            assert!(matches!(l.judge(&opts(&req)), Verdict::Nak(_)));
        }
        assert_eq!(l.failure(), Some(LcpFailure::LoopedBack));
    }
}
