//! The peer side: answers Challenges (CHAP family) or sends and retransmits the
//! Authenticate-Request (PAP), then waits for Success/Failure. With MS-CHAPv2 the
//! peer checks the authenticator's "S=" response (RFC 2759 §5) and fails the link if
//! it is missing or wrong. A retransmitted Challenge (same id and value) is answered
//! with the same Response, and the Response is repeated until Success or Failure
//! arrives, since a lost Success is otherwise never sent again.

use std::collections::VecDeque;

use super::super::queue::pop_or_release;
use std::time::Instant;

use rand::RngCore;

use super::{
    AuthError, Authenticated, Credentials, Method, Outcome, Timers, chap, chap_md5, crypto, mschap,
    mschapv2, pap,
};
use crate::mppe::keys;
use crate::ppp::packet::{self, Packet};

/// What the last Response answered, to check Success against.
#[derive(Debug, Clone)]
struct Answered {
    id: u8,
    challenge: Vec<u8>,
    packet: Vec<u8>,
    v2: Option<mschapv2::Response>,
}

/// The peer machine for one link.
#[derive(Debug)]
pub struct Peer {
    method: Method,
    credentials: Credentials,
    password_hash: [u8; 16],
    timers: Timers,
    pap_id: u8,
    transmits: u32,
    deadline: Option<Instant>,
    answered: Option<Answered>,
    done: bool,
    transmit: VecDeque<Vec<u8>>,
}

impl Peer {
    /// A machine answering with `credentials` using `method`.
    pub fn new(method: Method, credentials: Credentials, timers: Timers) -> Self {
        let password_hash = crypto::nt_password_hash(&credentials.password);
        Peer {
            method,
            credentials,
            password_hash,
            timers,
            pap_id: 0,
            transmits: 0,
            deadline: None,
            answered: None,
            done: false,
            transmit: VecDeque::new(),
        }
    }

    /// The method in use.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Starts: sends PAP's Authenticate-Request, or waits for a Challenge.
    pub fn start(&mut self, now: Instant, rng: &mut dyn RngCore) {
        if self.method == Method::Pap {
            self.pap_id = rng.next_u32() as u8;
            self.send_pap(now);
        } else {
            self.deadline = Some(now + self.timers.wait);
        }
    }

    fn send_pap(&mut self, now: Instant) {
        self.pap_id = self.pap_id.wrapping_add(1);
        let req = pap::Request {
            user: &self.credentials.user,
            password: &self.credentials.password,
        };
        self.transmit
            .push_back(packet::encode(pap::REQUEST, self.pap_id, &req.encode()));
        self.transmits += 1;
        self.deadline = Some(now + self.timers.restart);
    }

    /// The next packet to send, on protocol [`Method::protocol`].
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        pop_or_release(&mut self.transmit)
    }

    /// When [`Peer::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Retransmits PAP's request, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Outcome> {
        match self.deadline {
            Some(d) if d <= now && !self.done => {}
            _ => return None,
        }
        self.deadline = None;
        if self.transmits < self.timers.max_transmits {
            if self.method == Method::Pap {
                self.send_pap(now);
                return None;
            }
            if let Some(a) = &self.answered {
                // Our Response or the Success/Failure got lost: the authenticator
                // answers a repeated Response again (RFC 1994 §4.2).
                self.transmit.push_back(a.packet.clone());
                self.transmits += 1;
                self.deadline = Some(now + self.timers.restart);
                return None;
            }
        }
        self.done = true;
        Some(Err(AuthError::Timeout))
    }

    /// Feeds a packet of the method's protocol; returns the outcome once decided.
    pub fn receive(
        &mut self,
        now: Instant,
        bytes: &[u8],
        rng: &mut dyn RngCore,
    ) -> Option<Outcome> {
        if self.done {
            return None;
        }
        let pkt = Packet::parse(bytes).ok()?;
        let outcome = match (self.method, pkt.code) {
            (Method::Pap, pap::ACK) if pkt.id == self.pap_id => Ok(self.authenticated(None)),
            (Method::Pap, pap::NAK) if pkt.id == self.pap_id => Err(AuthError::Rejected {
                message: String::from_utf8_lossy(pap::parse_message(pkt.data)).into_owned(),
            }),
            (Method::Pap, _) => return None,
            (_, chap::CHALLENGE) => {
                self.answer(now, pkt.id, chap::Value::parse(pkt.data)?.value, rng);
                return None;
            }
            (_, chap::SUCCESS) => self.check_success(pkt.id, pkt.data)?,
            (_, chap::FAILURE) if self.answered.as_ref().is_some_and(|a| a.id == pkt.id) => {
                let message = String::from_utf8_lossy(pkt.data).into_owned();
                Err(AuthError::Rejected { message })
            }
            _ => return None,
        };
        self.done = true;
        self.deadline = None;
        Some(outcome)
    }

    fn answer(&mut self, now: Instant, id: u8, challenge: &[u8], rng: &mut dyn RngCore) {
        if let Some(a) = &self.answered {
            if a.id == id && a.challenge == challenge {
                self.transmit.push_back(a.packet.clone());
                return;
            }
        }
        let user = self.credentials.user.as_slice();
        let (value, v2) = match self.method {
            Method::ChapMd5 => (
                chap_md5::response(id, &self.credentials.password, challenge).to_vec(),
                None,
            ),
            Method::MsChapV1 => {
                let Ok(c) = <[u8; 8]>::try_from(challenge) else {
                    return;
                };
                (
                    mschap::Response::compute(&c, &self.password_hash).encode(),
                    None,
                )
            }
            _ => {
                let Ok(c) = <[u8; 16]>::try_from(challenge) else {
                    return;
                };
                let mut peer_challenge = [0u8; 16];
                rng.fill_bytes(&mut peer_challenge);
                let r = mschapv2::Response::compute(&c, peer_challenge, user, &self.password_hash);
                (r.encode(), Some(r))
            }
        };
        let data = chap::Value {
            value: &value,
            name: user,
        }
        .encode();
        let packet = packet::encode(chap::RESPONSE, id, &data);
        self.transmit.push_back(packet.clone());
        self.answered = Some(Answered {
            id,
            challenge: challenge.to_vec(),
            packet,
            v2,
        });
        self.transmits = 1;
        self.deadline = Some(now + self.timers.restart);
    }

    fn check_success(&self, id: u8, message: &[u8]) -> Option<Outcome> {
        let a = self.answered.as_ref().filter(|a| a.id == id)?;
        let hh = crypto::hash_nt_password_hash(&self.password_hash);
        Some(match self.method {
            Method::MsChapV1 => {
                let challenge: [u8; 8] = a.challenge.as_slice().try_into().ok()?;
                Ok(self.authenticated(Some(keys::mschapv1_start_keys(&hh, &challenge))))
            }
            Method::MsChapV2 => {
                let r = a.v2?;
                let challenge: [u8; 16] = a.challenge.as_slice().try_into().ok()?;
                let expected = r.authenticator_response(
                    &challenge,
                    &self.credentials.user,
                    &self.password_hash,
                );
                match mschapv2::parse_success(message) {
                    Some(got) if crypto::ct_eq(&got, &expected) => Ok(self.authenticated(Some(
                        keys::mschapv2_start_keys(&hh, &r.nt_response, false),
                    ))),
                    _ => Err(AuthError::BadAuthenticatorResponse),
                }
            }
            _ => Ok(self.authenticated(None)),
        })
    }

    fn authenticated(&self, keys: Option<keys::StartKeys>) -> Authenticated {
        Authenticated {
            user: self.credentials.user.clone(),
            method: self.method,
            keys,
        }
    }
}
