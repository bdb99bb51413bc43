//! Authentication over RADIUS: a PPP [`Claim`] becomes an Access-Request (RFC 2865
//! PAP and CHAP attributes; RFC 2548 MS-CHAP-Challenge with MS-CHAP-Response or
//! MS-CHAP2-Response), and the answer becomes a [`Verdict`] (with MS-CHAP2-Success
//! and the MPPE keys of MS-MPPE-Send-Key/Recv-Key or MS-CHAP-MPPE-Keys) plus the
//! [`Authorization`] the session lives by (address, routes, timeouts, Class, ...).

use std::{net::Ipv4Addr, time::Duration};

use ipnet::Ipv4Net;
use pptp_common::rate::RateLimit;

use super::packet::{self, Packet, attr, code, mikrotik, ms};
use crate::{
    escape::Escaped,
    mppe::keys::{self, StartKeys},
    ppp::auth::{Claim, Method, Verdict},
};

/// Who we are to the RADIUS server (NAS-Identifier, NAS-IP-Address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nas {
    pub identifier: Option<String>,
    pub ip: Option<Ipv4Addr>,
}

impl Nas {
    /// Adds NAS-Identifier and NAS-IP-Address (RFC 2865 requires one of them).
    pub fn add_to(&self, p: &mut Packet) {
        if let Some(id) = &self.identifier {
            p.push(attr::NAS_IDENTIFIER, id.as_bytes());
        }
        if let Some(ip) = self.ip {
            p.push_u32(attr::NAS_IP_ADDRESS, ip.into());
        }
    }
}

/// Values of Service-Type, Framed-Protocol and NAS-Port-Type for a PPTP session.
const SERVICE_FRAMED: u32 = 2;
const FRAMED_PPP: u32 = 1;
const NAS_PORT_VIRTUAL: u32 = 5;

/// The session-independent part of the request: the caller adds nothing else.
pub struct AccessRequest<'a> {
    pub claim: &'a Claim,
    pub nas: &'a Nas,
    /// NAS-Port: the session's call ID.
    pub port: u32,
    /// Calling-Station-Id: the peer's outer address.
    pub calling_station: Ipv4Addr,
}

impl AccessRequest<'_> {
    /// The request for one server (the User-Password is hidden with its secret).
    pub fn encode(
        &self,
        id: u8,
        authenticator: [u8; 16],
        secret: &[u8],
    ) -> Result<Vec<u8>, packet::PacketError> {
        let c = self.claim;
        let mut p = Packet::new(code::ACCESS_REQUEST, id, authenticator);
        p.push(attr::USER_NAME, c.user.clone());
        match c.method {
            Method::Pap => {
                p.push(
                    attr::USER_PASSWORD,
                    packet::hide_password(&c.response, secret, &authenticator),
                );
            }
            Method::ChapMd5 => {
                let mut v = vec![c.id];
                v.extend_from_slice(&c.response);
                p.push(attr::CHAP_PASSWORD, v);
                p.push(attr::CHAP_CHALLENGE, c.challenge.clone());
            }
            Method::MsChapV1 | Method::MsChapV2 => {
                // The CHAP value is (LM-Response or Peer-Challenge+Reserved,
                // NT-Response, Flags); RFC 2548 puts Ident and Flags first.
                let Some((&flags, rest)) = c.response.split_last() else {
                    return Err(packet::PacketError::BadAttribute);
                };
                let mut v = vec![c.id, flags];
                v.extend_from_slice(rest);
                let kind = if c.method == Method::MsChapV1 {
                    ms::CHAP_RESPONSE
                } else {
                    ms::CHAP2_RESPONSE
                };
                p.push_vendor(ms::VENDOR, ms::CHAP_CHALLENGE, &c.challenge);
                p.push_vendor(ms::VENDOR, kind, &v);
            }
        }
        p.push_u32(attr::SERVICE_TYPE, SERVICE_FRAMED);
        p.push_u32(attr::FRAMED_PROTOCOL, FRAMED_PPP);
        p.push_u32(attr::NAS_PORT, self.port);
        p.push_u32(attr::NAS_PORT_TYPE, NAS_PORT_VIRTUAL);
        p.push(attr::CALLING_STATION_ID, self.calling_station.to_string());
        self.nas.add_to(&mut p);
        p.encode(secret, None)
    }
}

/// A Framed-Route (RFC 2865 §5.22): "PREFIX/LEN [GATEWAY [METRICS]]" or a lone
/// address (a /32); the gateway and metrics are ignored (the route always goes into
/// the session). `None` if it is not one.
pub fn parse_framed_route(value: &[u8]) -> Option<Ipv4Net> {
    let text = std::str::from_utf8(value).ok()?;
    let first = text.split_whitespace().next()?;
    let net = match first.split_once('/') {
        Some((p, l)) => Ipv4Net::new(p.parse().ok()?, l.parse().ok()?).ok()?,
        None => Ipv4Net::new(first.parse().ok()?, 32).ok()?,
    };
    Some(net.trunc())
}

/// What an Access-Accept (or a CoA-Request) says about the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorization {
    /// Framed-IP-Address (none, or 255.255.255.254/255: the pool chooses).
    pub address: Option<Ipv4Addr>,
    /// Framed-Pool: the name of a `[radius.pools]` entry (docs/radius.md).
    pub pool: Option<String>,
    /// Framed-Route: networks behind the client.
    pub routes: Vec<Ipv4Net>,
    pub session_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// Acct-Interim-Interval.
    pub interim_interval: Option<Duration>,
    /// Class attributes, echoed in accounting.
    pub class: Vec<Vec<u8>>,
    /// Reply-Message, logged.
    pub reply_message: Option<String>,
    /// Mikrotik-Rate-Limit (one that does not parse is ignored, with a warning).
    pub rate_limit: Option<RateLimit>,
    /// Mikrotik-Total-Limit with its gigawords: octets both ways, after which the
    /// session ends.
    pub total_limit: Option<u64>,
}

impl Authorization {
    /// Reads the attributes of an Access-Accept or CoA-Request.
    pub fn from_packet(p: &Packet) -> Self {
        let secs = |kind| {
            p.get_u32(kind)
                .filter(|&s| s > 0)
                .map(|s| Duration::from_secs(u64::from(s)))
        };
        let address = p
            .get_u32(attr::FRAMED_IP_ADDRESS)
            .map(Ipv4Addr::from)
            .filter(|a| u32::from(*a) < 0xffff_fffe && !a.is_unspecified());
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let reply: Vec<String> = p.all(attr::REPLY_MESSAGE).map(text).collect();
        Authorization {
            address,
            pool: p.get(attr::FRAMED_POOL).map(text),
            routes: p
                .all(attr::FRAMED_ROUTE)
                .filter_map(parse_framed_route)
                .collect(),
            session_timeout: secs(attr::SESSION_TIMEOUT),
            idle_timeout: secs(attr::IDLE_TIMEOUT),
            interim_interval: secs(attr::ACCT_INTERIM_INTERVAL),
            class: p.all(attr::CLASS).map(<[u8]>::to_vec).collect(),
            reply_message: (!reply.is_empty()).then(|| reply.concat()),
            rate_limit: p
                .vendor(mikrotik::VENDOR, mikrotik::RATE_LIMIT)
                .and_then(parse_rate_limit),
            total_limit: total_limit(p),
        }
    }
}

/// A Mikrotik-Rate-Limit value; `None` (warned) if it does not parse.
fn parse_rate_limit(value: &[u8]) -> Option<RateLimit> {
    let text = std::str::from_utf8(value).ok();
    match text.map(RateLimit::parse) {
        Some(Ok(rate)) => Some(rate),
        Some(Err(e)) => {
            tracing::warn!(value = %Escaped(value), error = %e, "Mikrotik-Rate-Limit ignored");
            None
        }
        None => {
            tracing::warn!(value = %Escaped(value), "Mikrotik-Rate-Limit is not text: ignored");
            None
        }
    }
}

/// Mikrotik-Total-Limit (+ gigawords) in octets; `None` when neither is there or
/// both are zero (MikroTik: no limit).
fn total_limit(p: &Packet) -> Option<u64> {
    let word = |kind| {
        p.vendor(mikrotik::VENDOR, kind)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes)
    };
    let low = word(mikrotik::TOTAL_LIMIT);
    let high = word(mikrotik::TOTAL_LIMIT_GIGAWORDS);
    if low.is_none() && high.is_none() {
        return None;
    }
    let octets = (u64::from(high.unwrap_or(0)) << 32) | u64::from(low.unwrap_or(0));
    (octets > 0).then_some(octets)
}

/// The verdict on `claim` from a verified response to its Access-Request
/// (`request_authenticator` and `secret` decrypt the keys): an Access-Accept is an
/// accept only if it carries what the method needs (MS-CHAP2-Success for
/// MS-CHAPv2). MPPE keys absent: the verdict has none, and a link that requires
/// MPPE then fails.
pub fn judge(
    claim: &Claim,
    response: &Packet,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> (Verdict, Option<Authorization>) {
    if response.code != code::ACCESS_ACCEPT {
        return (Verdict::Reject, None);
    }
    let mut authenticator_response = None;
    let mut start_keys = None;
    match claim.method {
        Method::Pap | Method::ChapMd5 => {}
        Method::MsChapV1 => {
            // RFC 2548 §2.4.1: LM key (8), NT key = HashNtPasswordHash (16), padding.
            start_keys = response
                .vendor(ms::VENDOR, ms::CHAP_MPPE_KEYS)
                .and_then(|v| packet::unhide(v, secret, request_authenticator))
                .zip(<[u8; 8]>::try_from(claim.challenge.as_slice()).ok())
                .and_then(|(plain, challenge)| {
                    let hh: [u8; 16] = plain.get(8..24)?.try_into().ok()?;
                    Some(keys::mschapv1_start_keys(&hh, &challenge))
                });
        }
        Method::MsChapV2 => {
            // Ident, then "S=" and 40 hex digits.
            let success = response
                .vendor(ms::VENDOR, ms::CHAP2_SUCCESS)
                .and_then(|v| crate::ppp::auth::mschapv2::parse_success(v.get(1..)?));
            let Some(success) = success else {
                tracing::warn!(
                    "Access-Accept for MS-CHAPv2 without a valid MS-CHAP2-Success: refused"
                );
                return (Verdict::Reject, None);
            };
            authenticator_response = Some(success);
            let key = |kind| {
                let v = response.vendor(ms::VENDOR, kind)?;
                let k = packet::decrypt_salted_key(v, secret, request_authenticator)?;
                <[u8; 16]>::try_from(k.get(..16)?).ok()
            };
            start_keys = key(ms::MPPE_SEND_KEY)
                .zip(key(ms::MPPE_RECV_KEY))
                .map(|(send, recv)| StartKeys { send, recv });
        }
    }
    (
        Verdict::Accept {
            authenticator_response,
            keys: start_keys,
        },
        Some(Authorization::from_packet(response)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppp::auth::{Secret, crypto, mschapv2};

    const SECRET: &[u8] = b"testing123";

    fn claim(method: Method, password: &[u8]) -> Claim {
        let hash = crypto::nt_password_hash(password);
        let (challenge, response) = match method {
            Method::Pap => (Vec::new(), password.to_vec()),
            Method::ChapMd5 => (
                vec![7; 16],
                crate::ppp::auth::chap_md5::response(3, password, &[7; 16]).to_vec(),
            ),
            Method::MsChapV1 => (
                vec![5; 8],
                crate::ppp::auth::mschap::Response::compute(&[5; 8], &hash).encode(),
            ),
            Method::MsChapV2 => (
                vec![9; 16],
                mschapv2::Response::compute(&[9; 16], [4; 16], b"alice", &hash).encode(),
            ),
        };
        Claim {
            method,
            user: b"alice".to_vec(),
            challenge,
            response,
            id: 3,
        }
    }

    /// What a RADIUS server would answer, built from the locally computed verdict.
    fn accept(c: &Claim, auth: &[u8; 16]) -> Packet {
        let local = c.verify(Some(Secret::Password(b"pw".to_vec())));
        let Verdict::Accept {
            authenticator_response,
            keys,
        } = local
        else {
            panic!("{local:?}")
        };
        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_u32(
            attr::FRAMED_IP_ADDRESS,
            u32::from(Ipv4Addr::new(192, 0, 2, 77)),
        );
        p.push(attr::FRAMED_ROUTE, "203.0.113.0/24 0.0.0.0 1");
        p.push_u32(attr::SESSION_TIMEOUT, 3600);
        p.push(attr::CLASS, "gold");
        if let Some(a) = authenticator_response {
            let mut v = vec![c.id];
            v.extend_from_slice(crypto::authenticator_response_string(&a).as_bytes());
            p.push_vendor(ms::VENDOR, ms::CHAP2_SUCCESS, &v);
        }
        if let Some(k) = keys {
            if c.method == Method::MsChapV2 {
                p.push_vendor(
                    ms::VENDOR,
                    ms::MPPE_SEND_KEY,
                    &packet::encrypt_salted_key(&k.send, [0x80, 1], SECRET, auth),
                );
                p.push_vendor(
                    ms::VENDOR,
                    ms::MPPE_RECV_KEY,
                    &packet::encrypt_salted_key(&k.recv, [0x80, 2], SECRET, auth),
                );
            } else {
                let mut plain = vec![0; 8];
                plain.extend_from_slice(&crypto::hash_nt_password_hash(&crypto::nt_password_hash(
                    b"pw",
                )));
                plain.resize(32, 0);
                // Hiding is its own inverse with the same chain input.
                let mut hidden = packet::hide_password(&plain, SECRET, auth);
                hidden.truncate(32);
                p.push_vendor(ms::VENDOR, ms::CHAP_MPPE_KEYS, &hidden);
            }
        }
        p
    }

    #[test]
    fn every_method_round_trips_through_request_and_accept() {
        let nas = Nas {
            identifier: Some("nas1".into()),
            ip: None,
        };
        let auth = [0x42; 16];
        for method in [
            Method::Pap,
            Method::ChapMd5,
            Method::MsChapV1,
            Method::MsChapV2,
        ] {
            let c = claim(method, b"pw");
            let req = AccessRequest {
                claim: &c,
                nas: &nas,
                port: 5,
                calling_station: Ipv4Addr::new(198, 51, 100, 2),
            };
            let bytes = req.encode(9, auth, SECRET).unwrap();
            let p = Packet::parse(&bytes).unwrap();
            assert_eq!(p.get(attr::USER_NAME), Some(&b"alice"[..]));
            assert_eq!(p.get(attr::NAS_IDENTIFIER), Some(&b"nas1"[..]));
            assert!(p.get(attr::MESSAGE_AUTHENTICATOR).is_some(), "{method:?}");
            match method {
                Method::Pap => {
                    let plain =
                        packet::unhide(p.get(attr::USER_PASSWORD).unwrap(), SECRET, &auth).unwrap();
                    assert_eq!(&plain[..2], b"pw");
                }
                Method::ChapMd5 => {
                    assert_eq!(p.get(attr::CHAP_PASSWORD).unwrap()[0], 3);
                    assert_eq!(p.get(attr::CHAP_CHALLENGE), Some(&[7; 16][..]));
                }
                Method::MsChapV1 => {
                    let v = p.vendor(ms::VENDOR, ms::CHAP_RESPONSE).unwrap();
                    assert_eq!((v.len(), v[0], v[1]), (50, 3, 1), "ident, flags = use NT");
                }
                Method::MsChapV2 => {
                    let v = p.vendor(ms::VENDOR, ms::CHAP2_RESPONSE).unwrap();
                    assert_eq!(
                        (v.len(), &v[2..18]),
                        (50, &[4; 16][..]),
                        "peer challenge after ident and flags"
                    );
                }
            }
            let local = c.verify(Some(Secret::Password(b"pw".to_vec())));
            let (verdict, authz) = judge(&c, &accept(&c, &auth), &auth, SECRET);
            assert_eq!(
                verdict, local,
                "{method:?}: the keys decrypted equal the locally derived ones"
            );
            let authz = authz.unwrap();
            assert_eq!(authz.address, Some(Ipv4Addr::new(192, 0, 2, 77)));
            assert_eq!(
                authz.routes,
                vec!["203.0.113.0/24".parse::<Ipv4Net>().unwrap()]
            );
            assert_eq!(authz.session_timeout, Some(Duration::from_secs(3600)));
            assert_eq!(authz.class, vec![b"gold".to_vec()]);
        }
    }

    #[test]
    fn rejects_and_incomplete_accepts_are_rejections() {
        let c = claim(Method::MsChapV2, b"pw");
        let reject = Packet::new(code::ACCESS_REJECT, 1, [0; 16]);
        assert_eq!(judge(&c, &reject, &[0; 16], SECRET).0, Verdict::Reject);
        let bare = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        assert_eq!(
            judge(&c, &bare, &[0; 16], SECRET).0,
            Verdict::Reject,
            "no MS-CHAP2-Success"
        );
        // MS-CHAPv2 accepted without keys: an accept without keys.
        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_vendor(
            ms::VENDOR,
            ms::CHAP2_SUCCESS,
            &[[3u8].as_slice(), format!("S={}", "A".repeat(40)).as_bytes()].concat(),
        );
        assert_eq!(
            judge(&c, &p, &[0; 16], SECRET).0,
            Verdict::Accept {
                authenticator_response: Some([0xaa; 20]),
                keys: None
            }
        );
    }

    #[test]
    fn framed_routes_and_special_addresses() {
        let net = |s: &str| Some(s.parse::<Ipv4Net>().unwrap());
        assert_eq!(
            parse_framed_route(b"10.1.2.3/8 0.0.0.0 1"),
            net("10.0.0.0/8")
        );
        assert_eq!(parse_framed_route(b"192.0.2.9"), net("192.0.2.9/32"));
        assert_eq!(parse_framed_route(b"192.0.2.0/33"), None);
        assert_eq!(parse_framed_route(b"junk"), None);
        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_u32(attr::FRAMED_IP_ADDRESS, 0xffff_fffe);
        assert_eq!(
            Authorization::from_packet(&p).address,
            None,
            "255.255.255.254: the NAS chooses"
        );
    }

    #[test]
    fn mikrotik_rate_and_total_limits() {
        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_vendor(
            mikrotik::VENDOR,
            mikrotik::RATE_LIMIT,
            b"10M/20M 0/0 0/0 8/8",
        );
        p.push_vendor(mikrotik::VENDOR, mikrotik::TOTAL_LIMIT, &5u32.to_be_bytes());
        p.push_vendor(
            mikrotik::VENDOR,
            mikrotik::TOTAL_LIMIT_GIGAWORDS,
            &1u32.to_be_bytes(),
        );
        let a = Authorization::from_packet(&p);
        assert_eq!(
            a.rate_limit
                .map(|r| (r.rx.rate, r.tx.rate, r.tx.burst_time)),
            Some((10_000_000, 20_000_000, 8))
        );
        assert_eq!(a.total_limit, Some((1 << 32) + 5));

        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_vendor(mikrotik::VENDOR, mikrotik::RATE_LIMIT, b"fast please");
        p.push_vendor(mikrotik::VENDOR, mikrotik::TOTAL_LIMIT, &0u32.to_be_bytes());
        // Another vendor's attribute 8 is not MikroTik's.
        p.push_vendor(ms::VENDOR, mikrotik::RATE_LIMIT, b"1M");
        let a = Authorization::from_packet(&p);
        assert_eq!(
            (a.rate_limit, a.total_limit),
            (None, None),
            "unparsable; zero is no limit"
        );

        let mut p = Packet::new(code::ACCESS_ACCEPT, 1, [0; 16]);
        p.push_vendor(
            mikrotik::VENDOR,
            mikrotik::TOTAL_LIMIT_GIGAWORDS,
            &2u32.to_be_bytes(),
        );
        assert_eq!(Authorization::from_packet(&p).total_limit, Some(2 << 32));
    }
}
