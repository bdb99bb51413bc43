//! CCP (RFC 1962) with the MPPE/MPPC option (RFC 3078 §2): the only option this
//! engine negotiates. Other compression options are rejected, and so is the MPPC
//! bit: a request asking for MPPC (with MPPE) is Nak-ed with MPPC cleared, one asking
//! for MPPC alone is rejected.
//!
//! Policy ([`MppePolicy`]): `Require` means the link closes unless CCP opens with
//! MPPE; `Prefer` offers MPPE but lets the peer refuse it; `Deny` rejects it. The
//! strengths offered are the policy's, cut to what the authentication produced keys
//! for (MS-CHAPv2: 40/56/128; MS-CHAPv1: 128 only; others: none). Each side's
//! request lists what it accepts; a request with several strengths is Nak-ed with the
//! strongest common one, so both directions end up with one strength. Stateless mode
//! (H bit) is offered unless the policy asks for stateful; stateful is accepted only
//! if the policy allows it. The mode, too, ends up the same both ways: while we want
//! stateful (asked for by the policy, or Nak-ed to us by the peer and allowed), a
//! stateless request from the peer is Nak-ed with stateful. pppd needs that: with
//! `mppe-stateful` it still requests stateless, acks our stateful request, and runs
//! each direction as acked, a mix this engine refuses; Nak-ed, it requests stateful.
//! If the peer Naks our stateful request with stateless, we follow and stop asking.
//!
//! Reset-Request/Reset-Ack (codes 14/15) are handled by the link.

use super::fsm::{Judgement, Negotiator, Verdict};
use super::packet::{self, Opt};
use crate::mppe::{KeyStrength, MppeConfig};

/// The MPPE/MPPC option type.
pub const OPT_MPPE: u8 = 18;

/// CCP codes beyond the automaton's (RFC 1962 §5).
pub mod code {
    /// Reset-Request.
    pub const RESET_REQUEST: u8 = 14;
    /// Reset-Ack.
    pub const RESET_ACK: u8 = 15;
}

/// MPPE option bits (RFC 3078 §2.1), as one big-endian 32-bit word.
pub mod bits {
    /// H: stateless mode.
    pub const STATELESS: u32 = 0x0100_0000;
    /// M: 56-bit.
    pub const M56: u32 = 0x80;
    /// S: 128-bit.
    pub const S128: u32 = 0x40;
    /// L: 40-bit.
    pub const L40: u32 = 0x20;
    /// D: obsolete.
    pub const D: u32 = 0x10;
    /// C: MPPC compression.
    pub const MPPC: u32 = 0x01;
}

/// Whether MPPE is required, offered or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MppeMode {
    /// The link closes unless MPPE is negotiated.
    Require,
    /// MPPE if the peer agrees.
    Prefer,
    /// No MPPE.
    Deny,
}

/// The MPPE policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MppePolicy {
    /// Require, prefer or deny.
    pub mode: MppeMode,
    /// Allowed strengths.
    pub strengths: Vec<KeyStrength>,
    /// Accept stateful mode if the peer insists (stateless is always preferred).
    pub allow_stateful: bool,
    /// Ask for stateful mode ourselves (pppd's `mppe-stateful`); needs `allow_stateful`.
    pub request_stateful: bool,
}

impl Default for MppePolicy {
    fn default() -> Self {
        MppePolicy {
            mode: MppeMode::Require,
            strengths: vec![KeyStrength::Bits128],
            allow_stateful: false,
            request_stateful: false,
        }
    }
}

/// What CCP agreed for MPPE (the same in both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeParams {
    /// Key strength.
    pub strength: KeyStrength,
    /// Stateless mode (rekey on every packet).
    pub stateless: bool,
}

impl From<MppeParams> for MppeConfig {
    fn from(p: MppeParams) -> Self {
        Self::new(p.strength, p.stateless)
    }
}

/// The MPPE outcome of an opened CCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MppeAgreement {
    /// Neither direction encrypts.
    Off,
    /// Both directions encrypt with these parameters.
    On(MppeParams),
    /// Only one direction, or different parameters: unusable.
    Mismatch,
}

fn strength_bit(s: KeyStrength) -> u32 {
    match s {
        KeyStrength::Bits40 => bits::L40,
        KeyStrength::Bits56 => bits::M56,
        KeyStrength::Bits128 => bits::S128,
    }
}

/// The CCP negotiator.
#[derive(Debug)]
pub struct Ccp {
    policy: MppePolicy,
    /// Strengths we can key (policy cut to what authentication gave); strongest last.
    available: Vec<KeyStrength>,
    /// Our current offer (None: empty request).
    offer: Option<u32>,
    /// The mode we want both directions in: stateful (H clear) or stateless.
    want_stateful: bool,
    ours: Option<MppeParams>,
    theirs: Option<MppeParams>,
}

impl Ccp {
    /// A negotiator for `policy` given the strengths the authentication keyed.
    pub fn new(policy: MppePolicy, keyed: &[KeyStrength]) -> Self {
        let mut available: Vec<KeyStrength> = if policy.mode == MppeMode::Deny {
            Vec::new()
        } else {
            policy
                .strengths
                .iter()
                .copied()
                .filter(|s| keyed.contains(s))
                .collect()
        };
        available.sort();
        available.dedup();
        let mut ccp = Ccp {
            policy,
            available,
            offer: None,
            want_stateful: false,
            ours: None,
            theirs: None,
        };
        ccp.reset();
        ccp
    }

    /// The policy's mode.
    pub fn mode(&self) -> MppeMode {
        self.policy.mode
    }

    /// Whether MPPE can be had at all with the keys authentication produced.
    pub fn can_encrypt(&self) -> bool {
        !self.available.is_empty()
    }

    /// What the two acked requests say about MPPE.
    pub fn mppe(&self) -> MppeAgreement {
        match (self.ours, self.theirs) {
            (None, None) => MppeAgreement::Off,
            (Some(a), Some(b)) if a == b => MppeAgreement::On(a),
            _ => MppeAgreement::Mismatch,
        }
    }

    fn all_bits(&self) -> u32 {
        let mode = if self.want_stateful {
            0
        } else {
            bits::STATELESS
        };
        self.available
            .iter()
            .fold(mode, |acc, &s| acc | strength_bit(s))
    }

    fn params(&self, word: u32) -> Option<MppeParams> {
        let strength = self
            .available
            .iter()
            .rev()
            .copied()
            .find(|&s| word & strength_bit(s) != 0)?;
        Some(MppeParams {
            strength,
            stateless: word & bits::STATELESS != 0,
        })
    }
}

impl Negotiator for Ccp {
    fn request(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(word) = self.offer {
            packet::push_option(&mut out, OPT_MPPE, &word.to_be_bytes());
        }
        out
    }

    fn judge(&mut self, options: &[Opt<'_>]) -> Verdict {
        self.theirs = None;
        let mut j = Judgement::default();
        for o in options {
            let word = match (o.kind, o.u32()) {
                (OPT_MPPE, Some(w)) if self.can_encrypt() => w,
                _ => {
                    j.reject(o);
                    continue;
                }
            };
            let stateless =
                !self.want_stateful && (word & bits::STATELESS != 0 || !self.policy.allow_stateful);
            let wanted = match self.params(word) {
                Some(p) => strength_bit(p.strength) | if stateless { bits::STATELESS } else { 0 },
                None if word & !bits::MPPC == 0 => {
                    // MPPC alone: not something we do.
                    j.reject(o);
                    continue;
                }
                None => self.all_bits(),
            };
            if word == wanted {
                self.theirs = self.params(word);
            } else {
                j.nak(OPT_MPPE, &wanted.to_be_bytes());
            }
        }
        j.verdict()
    }

    fn acked(&mut self, options: &[Opt<'_>]) {
        self.ours = options
            .iter()
            .find(|o| o.kind == OPT_MPPE)
            .and_then(|o| self.params(o.u32()?));
    }

    fn nakked(&mut self, options: &[Opt<'_>]) {
        let Some(word) = options
            .iter()
            .find(|o| o.kind == OPT_MPPE)
            .and_then(|o| o.u32())
        else {
            return;
        };
        match self.params(word) {
            Some(p) => {
                let stateless = word & bits::STATELESS != 0 || !self.policy.allow_stateful;
                self.want_stateful = !stateless;
                let h = if stateless { bits::STATELESS } else { 0 };
                self.offer = Some(strength_bit(p.strength) | h);
            }
            // Nothing in common: keep offering ours if required, else give MPPE up.
            None if self.policy.mode == MppeMode::Prefer => self.offer = None,
            None => {}
        }
    }

    fn rejected(&mut self, options: &[Opt<'_>]) {
        if options.iter().any(|o| o.kind == OPT_MPPE) {
            self.offer = None;
        }
    }

    fn reset(&mut self) {
        self.want_stateful = self.policy.request_stateful && self.policy.allow_stateful;
        self.offer = self.can_encrypt().then(|| self.all_bits());
        self.ours = None;
        self.theirs = None;
    }

    fn knows_code(&self, code: u8) -> bool {
        matches!(code, code::RESET_REQUEST | code::RESET_ACK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(word: u32) -> Vec<u8> {
        let mut v = Vec::new();
        packet::push_option(&mut v, OPT_MPPE, &word.to_be_bytes());
        v
    }

    fn judge(ccp: &mut Ccp, word: u32) -> Verdict {
        let bytes = opt(word);
        ccp.judge(&packet::parse_options(&bytes).unwrap())
    }

    const ALL: [KeyStrength; 3] = [
        KeyStrength::Bits40,
        KeyStrength::Bits56,
        KeyStrength::Bits128,
    ];

    #[test]
    fn pppd_request_is_acked() {
        // <mppe +H -M +S -L -D -C>, as in every MPPE capture.
        let mut ccp = Ccp::new(MppePolicy::default(), &ALL);
        assert_eq!(ccp.request(), opt(bits::STATELESS | bits::S128));
        assert_eq!(judge(&mut ccp, bits::STATELESS | bits::S128), Verdict::Ack);
    }

    #[test]
    fn strongest_common_strength_and_no_mppc() {
        let policy = MppePolicy {
            strengths: ALL.to_vec(),
            ..MppePolicy::default()
        };
        let mut ccp = Ccp::new(policy, &ALL);
        let offer = bits::STATELESS | bits::S128 | bits::L40 | bits::MPPC;
        assert_eq!(
            judge(&mut ccp, offer),
            Verdict::Nak(opt(bits::STATELESS | bits::S128))
        );
        assert_eq!(
            judge(&mut ccp, bits::L40),
            Verdict::Nak(opt(bits::STATELESS | bits::L40))
        );
        assert!(matches!(judge(&mut ccp, bits::MPPC), Verdict::Reject(_)));
    }

    #[test]
    fn deny_and_unkeyed_reject() {
        let deny = MppePolicy {
            mode: MppeMode::Deny,
            ..MppePolicy::default()
        };
        let mut ccp = Ccp::new(deny, &ALL);
        assert!(ccp.request().is_empty());
        assert!(matches!(
            judge(&mut ccp, bits::S128 | bits::STATELESS),
            Verdict::Reject(_)
        ));
        // MS-CHAPv1 keys only 128-bit: a 40-bit-only policy has nothing to offer.
        let forty = MppePolicy {
            strengths: vec![KeyStrength::Bits40],
            ..MppePolicy::default()
        };
        assert!(!Ccp::new(forty, &[KeyStrength::Bits128]).can_encrypt());
    }

    #[test]
    fn other_compressors_are_rejected() {
        let mut ccp = Ccp::new(MppePolicy::default(), &ALL);
        // Deflate (26) and BSD-Compress (21).
        let req = [26, 4, 0x78, 0, 21, 3, 0x2f];
        let Verdict::Reject(rej) = ccp.judge(&packet::parse_options(&req).unwrap()) else {
            panic!()
        };
        assert_eq!(rej, req);
    }

    #[test]
    fn stateful_only_when_allowed() {
        let strict = MppePolicy::default();
        let mut ccp = Ccp::new(strict, &ALL);
        assert_eq!(
            judge(&mut ccp, bits::S128),
            Verdict::Nak(opt(bits::STATELESS | bits::S128))
        );
        let lax = MppePolicy {
            allow_stateful: true,
            ..MppePolicy::default()
        };
        let mut ccp = Ccp::new(lax, &ALL);
        assert_eq!(judge(&mut ccp, bits::S128), Verdict::Ack);
        // The peer Naks our stateless offer with stateful: we follow.
        ccp.nakked(&packet::parse_options(&opt(bits::S128)).unwrap());
        assert_eq!(ccp.request(), opt(bits::S128));
        ccp.acked(&packet::parse_options(&opt(bits::S128)).unwrap());
        let expected = MppeParams {
            strength: KeyStrength::Bits128,
            stateless: false,
        };
        assert_eq!(ccp.mppe(), MppeAgreement::On(expected));
    }

    /// pppd with `mppe-stateful` requests stateless and acks our stateful request; it
    /// accepts a Nak to stateful (seen against pppd 2.4.9 in the interop VM, where
    /// acking its stateless request left the two directions in different modes).
    #[test]
    fn a_stateless_request_is_nakked_to_stateful_when_we_ask_for_stateful() {
        let asking = MppePolicy {
            allow_stateful: true,
            request_stateful: true,
            ..MppePolicy::default()
        };
        let mut ccp = Ccp::new(asking, &ALL);
        assert_eq!(ccp.request(), opt(bits::S128));
        assert_eq!(
            judge(&mut ccp, bits::STATELESS | bits::S128),
            Verdict::Nak(opt(bits::S128))
        );
        ccp.acked(&packet::parse_options(&opt(bits::S128)).unwrap());
        assert_eq!(judge(&mut ccp, bits::S128), Verdict::Ack);
        let stateful = MppeParams {
            strength: KeyStrength::Bits128,
            stateless: false,
        };
        assert_eq!(ccp.mppe(), MppeAgreement::On(stateful));

        // A peer that Naks our stateful request with stateless: we follow it, and
        // then accept its stateless request too.
        let mut ccp = Ccp::new(
            MppePolicy {
                allow_stateful: true,
                request_stateful: true,
                ..MppePolicy::default()
            },
            &ALL,
        );
        ccp.nakked(&packet::parse_options(&opt(bits::STATELESS | bits::S128)).unwrap());
        assert_eq!(ccp.request(), opt(bits::STATELESS | bits::S128));
        assert_eq!(judge(&mut ccp, bits::STATELESS | bits::S128), Verdict::Ack);
    }

    #[test]
    fn stateful_is_offered_only_when_requested_and_allowed() {
        let asking = MppePolicy {
            allow_stateful: true,
            request_stateful: true,
            ..MppePolicy::default()
        };
        assert_eq!(Ccp::new(asking, &ALL).request(), opt(bits::S128));
        let not_allowed = MppePolicy {
            request_stateful: true,
            ..MppePolicy::default()
        };
        assert_eq!(
            Ccp::new(not_allowed, &ALL).request(),
            opt(bits::STATELESS | bits::S128),
            "request_stateful without allow_stateful still offers stateless"
        );
    }
}
