//! What a concentrator tells the AAA service about itself, so that many of them can
//! share one (FreeRADIUS with rlm_sqlippool and rlm_sql, say; see docs/fleet.md):
//!
//! - [`AcctSessionIds`]: how sessions are named in Acct-Session-Id, unique across
//!   the fleet and across restarts;
//! - [`NasRecord`]: Accounting-On when the concentrator starts and Accounting-Off
//!   when it stops cleanly (RFC 2866 §5.1, values 7 and 8): the server then closes
//!   every session it still has open for this NAS and frees its address leases
//!   (rlm_sqlippool's `on_clear` and `off_clear` key them on NAS-IP-Address).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{acct, auth::Nas, packet::PacketError};

/// Acct-Session-Ids of one run of the agent. RFC 2866 §5.5 asks for one per
/// session, the same in its Start, Interim-Updates and Stop, and every
/// Accounting-Request carries one. Ours is the NAS-Identifier (else the
/// NAS-IP-Address), the run's start time and a random number (hex), then the
/// session's number (hex): `pptp-1-6932A1F0C3D2E1F0-2A`. Two concentrators differ
/// in their NAS-Identifier (and, were two configured alike, in the random half);
/// two runs of one concentrator in their start time and random half; two sessions
/// of one run in their number. Number 0 is never a session's: it names the NAS's
/// own records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcctSessionIds {
    prefix: String,
}

impl AcctSessionIds {
    /// The ids of a run of NAS `nas` started at `boot` (seconds since the epoch),
    /// with a random `nonce`.
    pub fn new(nas: &Nas, boot: u32, nonce: u32) -> Self {
        let node = nas
            .identifier
            .clone()
            .or_else(|| nas.ip.map(|ip| ip.to_string()))
            .unwrap_or_default();
        Self {
            prefix: format!("{node}-{boot:08X}{nonce:08X}-"),
        }
    }

    /// The ids of a run starting now.
    pub fn starting_now(nas: &Nas) -> Self {
        let boot = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as u32;
        Self::new(nas, boot, rand::random())
    }

    /// The Acct-Session-Id of session number `number`.
    pub fn of(&self, number: u64) -> String {
        format!("{}{number:X}", self.prefix)
    }

    /// The session number in an Acct-Session-Id of this run (`None`: another run's,
    /// another NAS's, or not ours at all).
    pub fn number(&self, id: &[u8]) -> Option<u64> {
        let digits = id.strip_prefix(self.prefix.as_bytes())?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u64::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// The Acct-Session-Id of the NAS's own records.
    pub fn nas(&self) -> String {
        self.of(0)
    }
}

/// Accounting-On or Accounting-Off (Acct-Status-Type 7, 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NasStatus {
    On = 7,
    Off = 8,
}

/// An Accounting-Request about the NAS rather than a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NasRecord {
    pub status: NasStatus,
    /// [`AcctSessionIds::nas`].
    pub session_id: String,
}

impl NasRecord {
    /// The request for one server: the status, the session id, the NAS's
    /// identity and the time (rlm_sql's Accounting-On query closes the sessions
    /// started before Event-Timestamp).
    pub fn encode(&self, id: u8, nas: &Nas, secret: &[u8]) -> Result<Vec<u8>, PacketError> {
        acct::seal(
            acct::request(id, self.status as u32, &self.session_id),
            nas,
            secret,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::radius::packet::{Packet, attr};

    fn nas(identifier: Option<&str>, ip: Option<Ipv4Addr>) -> Nas {
        Nas {
            identifier: identifier.map(str::to_owned),
            ip,
        }
    }

    #[test]
    fn session_ids_name_the_nas_the_run_and_the_session() {
        let one = AcctSessionIds::new(&nas(Some("pptp-1"), None), 0x6932_A1F0, 0xC3D2_E1F0);
        assert_eq!(one.of(0x2A), "pptp-1-6932A1F0C3D2E1F0-2A");
        assert_eq!(one.number(b"pptp-1-6932A1F0C3D2E1F0-2A"), Some(0x2A));
        assert_eq!(one.nas(), "pptp-1-6932A1F0C3D2E1F0-0");

        // Same second, same number: another concentrator, or another run.
        let two = AcctSessionIds::new(&nas(Some("pptp-2"), None), 0x6932_A1F0, 0xC3D2_E1F0);
        let rerun = AcctSessionIds::new(&nas(Some("pptp-1"), None), 0x6932_A1F0, 0x0000_0001);
        assert_ne!(one.of(1), two.of(1));
        assert_ne!(one.of(1), rerun.of(1));
        assert_eq!(one.number(two.of(1).as_bytes()), None);
        assert_eq!(one.number(rerun.of(1).as_bytes()), None);
        for junk in [
            &b"pptp-1-6932A1F0C3D2E1F0-"[..],
            b"pptp-1-6932A1F0C3D2E1F0-+1",
            b"",
        ] {
            assert_eq!(one.number(junk), None, "{junk:?}");
        }

        let by_ip = AcctSessionIds::new(&nas(None, Some(Ipv4Addr::new(192, 0, 2, 1))), 1, 2);
        assert_eq!(by_ip.of(3), "192.0.2.1-0000000100000002-3");
    }

    #[test]
    fn accounting_on_and_off_verify_and_name_the_nas() {
        let nas = nas(Some("pptp-1"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        for (status, value) in [(NasStatus::On, 7), (NasStatus::Off, 8)] {
            let record = NasRecord {
                status,
                session_id: "pptp-1-00000001000000002-0".into(),
            };
            let bytes = record.encode(9, &nas, b"s").unwrap();
            let p = Packet::verify_request(&bytes, b"s", false).unwrap();
            assert_eq!(p.get_u32(attr::ACCT_STATUS_TYPE), Some(value));
            assert_eq!(
                p.get(attr::ACCT_SESSION_ID),
                Some(record.session_id.as_bytes())
            );
            assert_eq!(p.get(attr::NAS_IDENTIFIER), Some(&b"pptp-1"[..]));
            assert_eq!(p.get_u32(attr::NAS_IP_ADDRESS), Some(0xC000_0201));
            assert!(p.get_u32(attr::EVENT_TIMESTAMP).is_some());
            assert_eq!(p.get(attr::USER_NAME), None, "no session's attributes");
        }
    }
}
