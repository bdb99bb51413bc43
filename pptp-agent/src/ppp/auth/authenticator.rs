//! The authenticator side: challenges the peer (CHAP family) or waits for its
//! Authenticate-Request (PAP), checks the answer against the [`SecretSource`] and
//! replies Success/Failure. A retransmitted Response gets the same reply again
//! (RFC 1994 §4.2); the Challenge is retransmitted until answered or Max reached.
//! An unknown user gets the same Failure as a wrong password.

use std::collections::VecDeque;
use std::time::Instant;

use rand::RngCore;

use super::{
    AuthError, Authenticated, Method, Outcome, Secret, SecretSource, Timers, chap, chap_md5,
    crypto, mschap, mschapv2, pap,
};
use crate::mppe::keys;
use crate::ppp::packet::{self, Packet};

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
        self.transmit.pop_front()
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

    /// Feeds a packet of the method's protocol; returns the outcome once decided.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        secrets: &dyn SecretSource,
        rng: &mut dyn RngCore,
    ) -> Option<Outcome> {
        let pkt = Packet::parse(bytes).ok()?;
        let is_request = match self.method {
            Method::Pap => pkt.code == pap::REQUEST,
            _ => pkt.code == chap::RESPONSE && pkt.id == self.id,
        };
        if !is_request {
            return None;
        }
        if let Some((code, message)) = &self.reply {
            self.transmit
                .push_back(packet::encode(*code, pkt.id, message));
            return None;
        }
        let (user, verdict) = match self.method {
            Method::Pap => {
                let req = pap::Request::parse(pkt.data)?;
                (req.user.to_vec(), check_pap(&req, secrets.secret(req.user)))
            }
            _ => {
                let value = chap::Value::parse(pkt.data)?;
                let secret = secrets.secret(value.name);
                (
                    value.name.to_vec(),
                    self.check_chap(pkt.id, value, secret, rng),
                )
            }
        };
        let (code, message, outcome) = match verdict {
            Ok((message, keys)) => {
                let code = if self.method == Method::Pap {
                    pap::ACK
                } else {
                    chap::SUCCESS
                };
                (
                    code,
                    message,
                    Ok(Authenticated {
                        user: user.clone(),
                        method: self.method,
                        keys,
                    }),
                )
            }
            Err(message) => {
                let code = if self.method == Method::Pap {
                    pap::NAK
                } else {
                    chap::FAILURE
                };
                let user = String::from_utf8_lossy(&user).into_owned();
                (code, message, Err(AuthError::BadCredentials { user }))
            }
        };
        self.transmit
            .push_back(packet::encode(code, pkt.id, &message));
        self.reply = Some((code, message));
        self.deadline = None;
        Some(outcome)
    }

    /// Checks a CHAP-family Response: Ok(success message, keys) or Err(failure message).
    fn check_chap(
        &self,
        id: u8,
        value: chap::Value<'_>,
        secret: Option<Secret>,
        rng: &mut dyn RngCore,
    ) -> Result<(Vec<u8>, Option<keys::StartKeys>), Vec<u8>> {
        const GRANTED: &str = "Access granted";
        match self.method {
            Method::ChapMd5 => match secret {
                Some(Secret::Password(p))
                    if crypto::ct_eq(value.value, &chap_md5::response(id, &p, &self.challenge)) =>
                {
                    Ok((GRANTED.into(), None))
                }
                _ => Err(b"Access denied".to_vec()),
            },
            Method::MsChapV1 => {
                let challenge: [u8; 8] = self
                    .challenge
                    .as_slice()
                    .try_into()
                    .expect("8-byte challenge");
                match (secret, mschap::Response::parse(value.value)) {
                    (Some(s), Some(resp)) => {
                        let hash = s.nt_hash();
                        let expected = mschap::Response::compute(&challenge, &hash);
                        if resp.use_nt && crypto::ct_eq(&resp.nt_response, &expected.nt_response) {
                            let hh = crypto::hash_nt_password_hash(&hash);
                            Ok((
                                GRANTED.into(),
                                Some(keys::mschapv1_start_keys(&hh, &challenge)),
                            ))
                        } else {
                            Err(mschap::failure_message().to_vec())
                        }
                    }
                    _ => Err(mschap::failure_message().to_vec()),
                }
            }
            Method::MsChapV2 => {
                let challenge: [u8; 16] = self
                    .challenge
                    .as_slice()
                    .try_into()
                    .expect("16-byte challenge");
                let resp = mschapv2::Response::parse(value.value);
                if let (Some(s), Some(resp)) = (secret, resp) {
                    let hash = s.nt_hash();
                    let expected = mschapv2::Response::compute(
                        &challenge,
                        resp.peer_challenge,
                        value.name,
                        &hash,
                    );
                    if crypto::ct_eq(&resp.nt_response, &expected.nt_response) {
                        let auth = resp.authenticator_response(&challenge, value.name, &hash);
                        let hh = crypto::hash_nt_password_hash(&hash);
                        let keys = keys::mschapv2_start_keys(&hh, &resp.nt_response, true);
                        return Ok((mschapv2::success_message(&auth, GRANTED), Some(keys)));
                    }
                }
                let mut next = [0u8; 16];
                rng.fill_bytes(&mut next);
                Err(mschapv2::failure_message(691, &next, "Access denied"))
            }
            Method::Pap => unreachable!("PAP is not a CHAP method"),
        }
    }
}

fn check_pap(
    req: &pap::Request<'_>,
    secret: Option<Secret>,
) -> Result<(Vec<u8>, Option<keys::StartKeys>), Vec<u8>> {
    let ok = match secret {
        Some(Secret::Password(p)) => crypto::ct_eq(req.password, &p),
        Some(Secret::NtHash(h)) => crypto::ct_eq(&crypto::nt_password_hash(req.password), &h),
        None => false,
    };
    if ok {
        Ok((pap::encode_message(b"Login ok"), None))
    } else {
        Err(pap::encode_message(b"Login incorrect"))
    }
}
