//! IPV6CP (RFC 5072): negotiates the two 64-bit interface identifiers that form the
//! link-local addresses. Each end proposes a random non-zero identifier; a zero or
//! colliding one from the peer is Nak-ed with a fresh suggestion (§4.1).
//! IPv6-Compression-Protocol and unknown options are rejected.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::fsm::{Judgement, Negotiator, Verdict};
use super::packet::{self, Opt};

/// Interface-Identifier option type.
pub const OPT_INTERFACE_ID: u8 = 1;

/// The IPV6CP negotiator.
#[derive(Debug)]
pub struct Ipv6cp {
    rng: StdRng,
    local: [u8; 8],
    send_id: bool,
    peer: Option<[u8; 8]>,
    acked: bool,
}

impl Ipv6cp {
    /// A negotiator; `rng` seeds the identifiers.
    pub fn new(rng: &mut dyn RngCore) -> Self {
        let mut n = Ipv6cp {
            rng: StdRng::seed_from_u64(rng.next_u64()),
            local: [0; 8],
            send_id: true,
            peer: None,
            acked: false,
        };
        n.reset();
        n
    }

    /// (our identifier, the peer's) once both are agreed.
    pub fn identifiers(&self) -> Option<([u8; 8], [u8; 8])> {
        Some((self.local, self.peer?)).filter(|_| self.acked)
    }

    fn fresh(&mut self, avoid: [u8; 8]) -> [u8; 8] {
        loop {
            let id = self.rng.next_u64().to_be_bytes();
            if id != [0; 8] && id != avoid && id != self.local {
                return id;
            }
        }
    }
}

impl Negotiator for Ipv6cp {
    fn request(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.send_id {
            packet::push_option(&mut out, OPT_INTERFACE_ID, &self.local);
        }
        out
    }

    fn judge(&mut self, options: &[Opt<'_>]) -> Verdict {
        self.peer = None;
        let mut j = Judgement::default();
        for o in options {
            match (o.kind, <[u8; 8]>::try_from(o.data)) {
                (OPT_INTERFACE_ID, Ok(id)) if id == [0; 8] || id == self.local => {
                    let suggestion = self.fresh(id);
                    j.nak(OPT_INTERFACE_ID, &suggestion);
                }
                (OPT_INTERFACE_ID, Ok(id)) => self.peer = Some(id),
                _ => j.reject(o),
            }
        }
        j.verdict()
    }

    fn acked(&mut self, _options: &[Opt<'_>]) {
        self.acked = true;
    }

    fn nakked(&mut self, options: &[Opt<'_>]) {
        for o in options {
            if let (OPT_INTERFACE_ID, Ok(id)) = (o.kind, <[u8; 8]>::try_from(o.data)) {
                self.local = if id == [0; 8] || Some(id) == self.peer {
                    self.fresh(id)
                } else {
                    id
                };
            }
        }
    }

    fn rejected(&mut self, options: &[Opt<'_>]) {
        if options.iter().any(|o| o.kind == OPT_INTERFACE_ID) {
            self.send_id = false;
        }
    }

    fn reset(&mut self) {
        self.local = self.fresh([0; 8]);
        self.send_id = true;
        self.acked = false;
        self.peer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_colliding_identifiers_are_nakked() {
        let mut n = Ipv6cp::new(&mut StdRng::seed_from_u64(3));
        let zero = [1, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            n.judge(&packet::parse_options(&zero).unwrap()),
            Verdict::Nak(_)
        ));
        let mine = n.request();
        assert!(matches!(
            n.judge(&packet::parse_options(&mine).unwrap()),
            Verdict::Nak(_)
        ));
        let other = [1, 10, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(
            n.judge(&packet::parse_options(&other).unwrap()),
            Verdict::Ack
        );
        assert_eq!(n.identifiers(), None);
        n.acked(&[]);
        assert_eq!(n.identifiers().unwrap().1, [0, 0, 0, 0, 0, 0, 0, 9]);
    }
}
