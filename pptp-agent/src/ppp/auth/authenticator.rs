//! The authenticator side: challenges the peer (CHAP family) or waits for its
//! Authenticate-Request (PAP), has the answer judged, and replies Success/Failure.
//!
//! Judging is a separate step so that it can happen elsewhere: the peer's answer
//! becomes a [`Claim`]; [`Claim::verify`] judges it against a locally known
//! [`Secret`] (the chap-secrets file), while a RADIUS client can take the claim's
//! challenge and response to its server and come back with a [`Verdict`] (carrying
//! the MS-CHAPv2 authenticator response and the MPPE keys it was sent).
//! [`Authenticator::receive`] does both steps at once for a [`SecretSource`].
//!
//! A retransmitted Response gets the same reply again (RFC 1994 §4.2); the Challenge
//! is retransmitted until answered or Max reached. An unknown user gets the same
//! Failure as a wrong password. MS-CHAPv2 failures say "E=691 R=0 C=... V=3 M=..."
//! (no retry: like pppd, the peer must start a new call).

use std::collections::VecDeque;

use super::super::queue::pop_or_release;
use std::time::Instant;

use rand::RngCore;

use super::{
    AuthError, Authenticated, Method, Outcome, Secret, SecretSource, Timers, chap, chap_md5,
    crypto, mschap, mschapv2, pap,
};
use crate::mppe::keys::{self, StartKeys};
use crate::ppp::packet::{self, Packet};

/// What the peer presented, to be judged.
#[derive(Clone, PartialEq, Eq)]
pub struct Claim {
    /// The method.
    pub method: Method,
    /// The name the peer gave.
    pub user: Vec<u8>,
    /// Our challenge (empty for PAP).
    pub challenge: Vec<u8>,
    /// The Response value (CHAP family) or the password (PAP).
    pub response: Vec<u8>,
    /// The packet identifier (CHAP-MD5 hashes it).
    pub id: u8,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("method", &self.method)
            .field("user", &String::from_utf8_lossy(&self.user))
            .finish_non_exhaustive()
    }
}

/// The judgement on a [`Claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Accept {
        /// MS-CHAPv2: the 20 bytes for "S=" (required for that method).
        authenticator_response: Option<[u8; 20]>,
        /// MS-CHAP: MPPE start keys seen from the authenticator.
        keys: Option<StartKeys>,
    },
    /// Refused.
    Reject,
}

impl Claim {
    /// Judges the claim against the user's secret (`None`: unknown user).
    pub fn verify(&self, secret: Option<Secret>) -> Verdict {
        let Some(secret) = secret else {
            return Verdict::Reject;
        };
        let accept = |authenticator_response, keys| Verdict::Accept {
            authenticator_response,
            keys,
        };
        match self.method {
            Method::Pap => {
                let ok = match secret {
                    Secret::Password(p) => crypto::ct_eq(&self.response, &p),
                    Secret::NtHash(h) => {
                        crypto::ct_eq(&crypto::nt_password_hash(&self.response), &h)
                    }
                };
                if ok {
                    accept(None, None)
                } else {
                    Verdict::Reject
                }
            }
            Method::ChapMd5 => match secret {
                Secret::Password(p)
                    if crypto::ct_eq(
                        &self.response,
                        &chap_md5::response(self.id, &p, &self.challenge),
                    ) =>
                {
                    accept(None, None)
                }
                _ => Verdict::Reject,
            },
            Method::MsChapV1 => {
                let (Ok(challenge), Some(resp)) = (
                    <[u8; 8]>::try_from(self.challenge.as_slice()),
                    mschap::Response::parse(&self.response),
                ) else {
                    return Verdict::Reject;
                };
                let hash = secret.nt_hash();
                let expected = mschap::Response::compute(&challenge, &hash);
                if !(resp.use_nt && crypto::ct_eq(&resp.nt_response, &expected.nt_response)) {
                    return Verdict::Reject;
                }
                let hh = crypto::hash_nt_password_hash(&hash);
                accept(None, Some(keys::mschapv1_start_keys(&hh, &challenge)))
            }
            Method::MsChapV2 => {
                let (Ok(challenge), Some(resp)) = (
                    <[u8; 16]>::try_from(self.challenge.as_slice()),
                    mschapv2::Response::parse(&self.response),
                ) else {
                    return Verdict::Reject;
                };
                let hash = secret.nt_hash();
                let expected =
                    mschapv2::Response::compute(&challenge, resp.peer_challenge, &self.user, &hash);
                if !crypto::ct_eq(&resp.nt_response, &expected.nt_response) {
                    return Verdict::Reject;
                }
                let auth = resp.authenticator_response(&challenge, &self.user, &hash);
                let hh = crypto::hash_nt_password_hash(&hash);
                accept(
                    Some(auth),
                    Some(keys::mschapv2_start_keys(&hh, &resp.nt_response, true)),
                )
            }
        }
    }
}

/// The authenticator machine for one link.
#[derive(Debug)]
pub struct Authenticator {
    method: Method,
    name: Vec<u8>,
    timers: Timers,
    id: u8,
    challenge: Vec<u8>,
    transmits: u32,
    deadline: Option<Instant>,
    /// A claim is out for judgement.
    pending: bool,
    /// The Success/Failure code and message already sent, repeated for a
    /// retransmitted Response (or PAP Authenticate-Request, which changes its id).
    reply: Option<(u8, Vec<u8>)>,
    transmit: VecDeque<Vec<u8>>,
}

impl Authenticator {
    /// A machine for `method`, naming itself `name` in CHAP Challenges.
    pub fn new(method: Method, name: &[u8], timers: Timers) -> Self {
        Authenticator {
            method,
            name: name.to_vec(),
            timers,
            id: 0,
            challenge: Vec::new(),
            transmits: 0,
            deadline: None,
            pending: false,
            reply: None,
            transmit: VecDeque::new(),
        }
    }

    /// The method in use.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Starts: sends the first Challenge, or waits for PAP's request.
    pub fn start(&mut self, now: Instant, rng: &mut dyn RngCore) {
        if self.method == Method::Pap {
            self.deadline = Some(now + self.timers.wait);
            return;
        }
        let len = match self.method {
            Method::MsChapV1 => mschap::CHALLENGE_LEN,
            Method::MsChapV2 => mschapv2::CHALLENGE_LEN,
            _ => chap_md5::CHALLENGE_LEN,
        };
        self.challenge = vec![0; len];
        rng.fill_bytes(&mut self.challenge);
        self.id = rng.next_u32() as u8;
        self.send_challenge(now);
    }

    fn send_challenge(&mut self, now: Instant) {
        let data = chap::Value {
            value: &self.challenge,
            name: &self.name,
        }
        .encode();
        self.transmit
            .push_back(packet::encode(chap::CHALLENGE, self.id, &data));
        self.transmits += 1;
        self.deadline = Some(now + self.timers.restart);
    }

    /// The next packet to send, on protocol [`Method::protocol`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        pop_or_release(&mut self.transmit)
    }

    /// When [`Authenticator::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Retransmits the Challenge, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Outcome> {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return None,
        }
        self.deadline = None;
        if self.method != Method::Pap && self.transmits < self.timers.max_transmits {
            self.send_challenge(now);
            return None;
        }
        Some(Err(AuthError::Timeout))
    }

    /// Feeds a packet of the method's protocol and judges it with `secrets`;
    /// returns the outcome once decided.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        secrets: &dyn SecretSource,
        rng: &mut dyn RngCore,
    ) -> Option<Outcome> {
        let claim = self.receive_claim(bytes)?;
        let verdict = claim.verify(secrets.secret(&claim.user));
        Some(self.complete(&claim, verdict, rng))
    }

    /// Feeds a packet of the method's protocol; returns the peer's claim when one
    /// arrives, which must then be judged and passed to [`Authenticator::complete`].
    /// Retransmitted answers are dealt with here.
    pub fn receive_claim(&mut self, bytes: &[u8]) -> Option<Claim> {
        let pkt = Packet::parse(bytes).ok()?;
        let is_request = match self.method {
            Method::Pap => pkt.code == pap::REQUEST,
            _ => pkt.code == chap::RESPONSE && pkt.id == self.id,
        };
        if !is_request || self.pending {
            return None;
        }
        if let Some((code, message)) = &self.reply {
            self.transmit
                .push_back(packet::encode(*code, pkt.id, message));
            return None;
        }
        let (user, response) = match self.method {
            Method::Pap => {
                let req = pap::Request::parse(pkt.data)?;
                (req.user.to_vec(), req.password.to_vec())
            }
            _ => {
                let value = chap::Value::parse(pkt.data)?;
                (value.name.to_vec(), value.value.to_vec())
            }
        };
        self.id = pkt.id;
        self.pending = true;
        self.deadline = None;
        Some(Claim {
            method: self.method,
            user,
            challenge: self.challenge.clone(),
            response,
            id: pkt.id,
        })
    }

    /// Replies to the peer with the judgement on its claim and ends the exchange.
    pub fn complete(&mut self, claim: &Claim, verdict: Verdict, rng: &mut dyn RngCore) -> Outcome {
        const GRANTED: &str = "Access granted";
        self.pending = false;
        let pap = self.method == Method::Pap;
        let (code, message, outcome) = match verdict {
            Verdict::Accept {
                authenticator_response,
                keys,
            } => {
                let message = match (self.method, authenticator_response) {
                    (Method::Pap, _) => Some(pap::encode_message(b"Login ok")),
                    (Method::MsChapV2, Some(auth)) => {
                        Some(mschapv2::success_message(&auth, GRANTED))
                    }
                    (Method::MsChapV2, None) => None,
                    _ => Some(GRANTED.into()),
                };
                match message {
                    Some(m) => {
                        let ok = Authenticated {
                            user: claim.user.clone(),
                            method: self.method,
                            keys,
                        };
                        (if pap { pap::ACK } else { chap::SUCCESS }, m, Ok(ok))
                    }
                    None => self.failure(claim, rng),
                }
            }
            Verdict::Reject => self.failure(claim, rng),
        };
        self.transmit
            .push_back(packet::encode(code, claim.id, &message));
        self.reply = Some((code, message));
        outcome
    }

    fn failure(&self, claim: &Claim, rng: &mut dyn RngCore) -> (u8, Vec<u8>, Outcome) {
        let message = match self.method {
            Method::Pap => pap::encode_message(b"Login incorrect"),
            Method::ChapMd5 => b"Access denied".to_vec(),
            Method::MsChapV1 => mschap::failure_message().to_vec(),
            Method::MsChapV2 => {
                let mut next = [0u8; 16];
                rng.fill_bytes(&mut next);
                mschapv2::failure_message(691, &next, "Access denied")
            }
        };
        let code = if self.method == Method::Pap {
            pap::NAK
        } else {
            chap::FAILURE
        };
        let user = String::from_utf8_lossy(&claim.user).into_owned();
        (code, message, Err(AuthError::BadCredentials { user }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppp::auth::crypto::nt_password_hash;
    use rand::SeedableRng;

    fn claim(method: Method, challenge: &[u8], response: Vec<u8>) -> Claim {
        Claim {
            method,
            user: b"pptpuser".to_vec(),
            challenge: challenge.to_vec(),
            response,
            id: 7,
        }
    }

    #[test]
    fn nt_hash_secrets_serve_mschap_and_pap_but_not_chap_md5() {
        let hash = Secret::NtHash(nt_password_hash(b"pptp-Secret1"));
        let c16 = [5u8; 16];
        let v2 = mschapv2::Response::compute(
            &c16,
            [9; 16],
            b"pptpuser",
            &nt_password_hash(b"pptp-Secret1"),
        );
        let accepted = |v: &Verdict| matches!(v, Verdict::Accept { .. });
        assert!(accepted(
            &claim(Method::MsChapV2, &c16, v2.encode()).verify(Some(hash.clone()))
        ));
        assert!(accepted(
            &claim(Method::Pap, &[], b"pptp-Secret1".to_vec()).verify(Some(hash.clone()))
        ));
        let md5 = chap_md5::response(7, b"pptp-Secret1", &c16).to_vec();
        assert_eq!(
            claim(Method::ChapMd5, &c16, md5.clone()).verify(Some(hash)),
            Verdict::Reject
        );
        let password = Secret::Password(b"pptp-Secret1".to_vec());
        assert!(accepted(
            &claim(Method::ChapMd5, &c16, md5).verify(Some(password))
        ));
    }

    #[test]
    fn malformed_and_unknown_claims_are_rejected() {
        let password = Some(Secret::Password(b"x".to_vec()));
        assert_eq!(
            claim(Method::MsChapV2, &[1; 16], vec![0; 48]).verify(password.clone()),
            Verdict::Reject
        );
        assert_eq!(
            claim(Method::MsChapV1, &[1; 3], vec![0; 49]).verify(password),
            Verdict::Reject
        );
        assert_eq!(
            claim(Method::Pap, &[], b"x".to_vec()).verify(None),
            Verdict::Reject
        );
    }

    #[test]
    fn retransmitted_response_gets_the_same_reply() {
        let now = Instant::now();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut a = Authenticator::new(Method::ChapMd5, b"pptpd", Timers::default());
        a.start(now, &mut rng);
        let challenge = a.poll_transmit().unwrap();
        let pkt = Packet::parse(&challenge).unwrap();
        let value = chap::Value::parse(pkt.data).unwrap();
        let response = chap_md5::response(pkt.id, b"pptp-Secret1", value.value);
        let data = chap::Value {
            value: &response,
            name: b"pptpuser",
        }
        .encode();
        let bytes = packet::encode(chap::RESPONSE, pkt.id, &data);
        struct One;
        impl SecretSource for One {
            fn secret(&self, _: &[u8]) -> Option<Secret> {
                Some(Secret::Password(b"pptp-Secret1".to_vec()))
            }
        }
        assert!(a.receive(&bytes, &One, &mut rng).unwrap().is_ok());
        let first = a.poll_transmit().unwrap();
        assert_eq!(a.receive(&bytes, &One, &mut rng), None);
        assert_eq!(a.poll_transmit().unwrap(), first);
    }
}
