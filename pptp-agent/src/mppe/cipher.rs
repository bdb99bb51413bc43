//! The MPPE cipher (RFC 3078): per-packet RC4 with a 12-bit coherency count, the
//! flushed (A) and encrypted (D) bits, stateless mode (a new key for every packet)
//! and stateful mode (one RC4 stream, a new key every 256 packets and after a CCP
//! Reset-Request).
//!
//! Sans-IO and allocation-free: an [`Encryptor`] and a [`Decryptor`] per direction
//! work in place on buffers the caller owns; the RC4 state and the session key live
//! inside them and are rekeyed in place (RFC 3078 §7.3, [`keys::rekey`]).
//!
//! # Wire format
//!
//! The MPPE packet is the information field of a PPP frame with protocol 0x00FD:
//!
//! ```text
//! +-+-+-+-+-------+---------------+------------------------------------+
//! |A|B|C|D| ccount (12 bits)      | RC4( protocol (2 bytes) | payload ) |
//! +-+-+-+-+-------+---------------+------------------------------------+
//! ```
//!
//! A (0x80 in the first byte) is "flushed": the sender reinitialised its RC4 state
//! with a new key for this packet. D (0x10) is "encrypted". B and C belong to MPPC
//! compression, which this implementation never negotiates: C set is refused, B is
//! ignored. The encrypted plaintext begins with the PPP protocol of the carried
//! packet. Linux (ppp_mppe) and Windows put it uncompressed (`00 21` for IPv4), and
//! [`Encryptor`] does the same; [`Decryptor`] also accepts the 1-byte PFC form (an odd
//! first byte), as Linux does, and always reports the protocol as a `u16`.
//!
//! # Key schedule (as Linux ppp_mppe, which the reference captures come from)
//!
//! Each direction starts from [`keys::initial_session_key`] with the coherency count
//! at 4095, so the first packet carries count 0.
//!
//! - Stateless: before every packet the key is changed once per count advanced and
//!   the RC4 state is reinitialised; so the packet with count `n` uses the initial key
//!   rekeyed `n + 1` times (modulo the 4096 wrap), and every packet has A set.
//! - Stateful: one RC4 stream runs across packets. The sender rekeys (and sets A)
//!   on each "flag" packet, whose count's low byte is 0xFF, and on the first packet
//!   after a CCP Reset-Request ([`Encryptor::reset`]). The first packet of a link
//!   uses the initial key and does not set A (Linux, contrary to RFC 3078 §3.1).
//!
//! # Loss
//!
//! - Stateless: a packet may jump ahead: the receiver rekeys once per skipped count,
//!   up to [`MppeConfig::max_jump`] counts (2048, half the count space, as Linux).
//!   Counts behind the last one (late or reordered packets) and the same count again
//!   are refused without changing any state, as is a packet whose decrypted protocol
//!   field is not a valid PPP protocol (the state is rolled back; this catches about
//!   a quarter of random garbage). A forged or corrupt packet that passes can only
//!   move the count forward: packets in between are then refused as late, and later
//!   ones decrypt again, since the key follows the count.
//! - Stateful: a count other than the next one means loss; [`Decryptor::decrypt`]
//!   answers [`Decrypted::SendResetRequest`] once and then refuses every packet
//!   ([`MppeError::AwaitingFlush`]) until one with A set arrives; it then rekeys once
//!   per flag packet missed and once for the flushed packet, and decrypts it. If
//!   that key does not decrypt the protocol field to `00 xx`, the key without that
//!   last change (FreeBSD-style senders only restart RC4 on a Reset-Request) and up
//!   to [`RESYNC_EXTRA_KEYS`] further keys are tried: a Linux sender rekeys once per
//!   Reset-Request it answers, so a lost flushed packet would otherwise leave the
//!   receiver one key behind for good (Linux's receiver does not recover from
//!   that). Reordered packets are losses in stateful mode.
//! - Either mode: a gap of 4096 packets or more cannot be seen in a 12-bit count;
//!   the receiver is then a multiple of 4096 keys behind and cannot recover (as in
//!   Linux). Only about a quarter of such packets fail the protocol check; the rest
//!   come out as garbage for the network layer to drop, and LCP echo or the user
//!   ends the link.

use std::time::Instant;

use pptp_common::wire::ppp;

use super::keys::{self, KeyStrength, SessionKey};

/// Bytes MPPE adds in front of the encrypted protocol field (the A/B/C/D bits and
/// the coherency count).
pub const HEADER_LEN: usize = 2;

/// Headroom [`Encryptor::encrypt`] needs in front of the payload: the MPPE header
/// and the 2-byte protocol field.
pub const ENCRYPT_HEADROOM: usize = HEADER_LEN + 2;

/// Number of distinct coherency counts (12 bits).
pub const CCOUNT_SPACE: u16 = 4096;

const CCOUNT_MASK: u16 = CCOUNT_SPACE - 1;

/// Linux's stateless window: a count up to half the count space ahead is accepted.
pub const DEFAULT_MAX_JUMP: u16 = CCOUNT_SPACE / 2;

/// Key changes a stateless receiver may spend on skipped counts, beyond the one
/// every packet costs: the bucket holds two full jumps and refills at
/// [`SKIP_REFILL_PER_SEC`]. A forged packet whose count jumps far ahead costs up to
/// [`DEFAULT_MAX_JUMP`] key changes (one SHA-1 each) whether or not it then
/// decrypts, and a rolled-back one can be sent again; without a budget a flood of
/// them keeps the agent's packet path busy. Genuine traffic spends from it only
/// when packets are lost.
pub const SKIP_BUDGET: u32 = 2 * DEFAULT_MAX_JUMP as u32;

/// How fast the [`SKIP_BUDGET`] refills, in key changes per second.
pub const SKIP_REFILL_PER_SEC: u32 = 4096;

/// The A/B/C/D bits, in the first header byte.
pub mod bits {
    /// A: flushed (the RC4 state was reinitialised with a new key).
    pub const FLUSHED: u8 = 0x80;
    /// B: MPPC "packet at front of history"; ignored.
    pub const AT_FRONT: u8 = 0x40;
    /// C: MPPC compressed; never negotiated, refused.
    pub const COMPRESSED: u8 = 0x20;
    /// D: encrypted.
    pub const ENCRYPTED: u8 = 0x10;
}

/// What CCP agreed for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeConfig {
    /// 40-, 56- or 128-bit keys.
    pub strength: KeyStrength,
    /// Stateless mode (RFC 3078 "H" bit): a new key for every packet.
    pub stateless: bool,
    /// Stateless receive only: the largest forward jump of the coherency count that
    /// is accepted (each skipped count costs one rekey: one SHA-1 and two RC4 key
    /// schedules). Larger jumps, up to half the count space, are refused as
    /// [`MppeError::TooFarAhead`]. Clamped to 1..=2048; [`DEFAULT_MAX_JUMP`] is 2048.
    pub max_jump: u16,
}

impl MppeConfig {
    /// A configuration with Linux's window ([`DEFAULT_MAX_JUMP`]).
    pub fn new(strength: KeyStrength, stateless: bool) -> Self {
        Self {
            strength,
            stateless,
            max_jump: DEFAULT_MAX_JUMP,
        }
    }
}

/// The 2-byte MPPE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeHeader {
    /// The four flag bits A/B/C/D in the high nibble (see [`bits`]).
    pub bits: u8,
    /// The 12-bit coherency count.
    pub ccount: u16,
}

impl MppeHeader {
    /// Reads the header at the start of an MPPE packet.
    pub fn parse(packet: &[u8]) -> Result<Self, MppeError> {
        match packet {
            [hi, lo, ..] => Ok(Self {
                bits: hi & 0xf0,
                ccount: u16::from_be_bytes([hi & 0x0f, *lo]),
            }),
            _ => Err(MppeError::TooShort { len: packet.len() }),
        }
    }

    /// The wire form.
    pub fn to_bytes(self) -> [u8; 2] {
        let [hi, lo] = (self.ccount & CCOUNT_MASK).to_be_bytes();
        [(self.bits & 0xf0) | hi, lo]
    }

    /// A: the RC4 state was reinitialised with a new key.
    pub fn flushed(self) -> bool {
        self.bits & bits::FLUSHED != 0
    }

    /// D: the packet is encrypted.
    pub fn encrypted(self) -> bool {
        self.bits & bits::ENCRYPTED != 0
    }
}

/// Why a packet was not encrypted or decrypted. Every variant means "drop this
/// packet"; none of them needs an answer to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MppeError {
    /// Shorter than the header and a 1-byte protocol (or a 2-byte protocol whose
    /// first byte is even).
    #[error("MPPE packet too short ({len} bytes)")]
    TooShort {
        /// Length of the MPPE packet (header included).
        len: usize,
    },
    /// The caller's buffer has no room for the header and the protocol field.
    #[error("encrypt buffer of {len} bytes has no room for the {ENCRYPT_HEADROOM}-byte headroom")]
    NoHeadroom {
        /// Length of the buffer.
        len: usize,
    },
    /// D is clear: MPPE was negotiated, so every packet must be encrypted.
    #[error("MPPE packet without the encrypted (D) bit")]
    NotEncrypted,
    /// C is set: MPPC compression was not negotiated.
    #[error("MPPE packet with the compressed (C) bit; MPPC is not negotiated")]
    Compressed,
    /// Stateless mode, A clear: every stateless packet must be flushed.
    #[error("stateless MPPE packet {ccount} without the flushed (A) bit")]
    NotFlushed {
        /// The packet's coherency count.
        ccount: u16,
    },
    /// Stateful mode, a flag packet (count's low byte 0xFF) without A.
    #[error("stateful MPPE flag packet {ccount} without the flushed (A) bit")]
    FlagNotFlushed {
        /// The packet's coherency count.
        ccount: u16,
    },
    /// Stateless mode, the count of the last packet accepted, again.
    #[error("duplicate MPPE coherency count {ccount}")]
    Duplicate {
        /// The packet's coherency count.
        ccount: u16,
    },
    /// A count behind the last accepted one (a late packet): stateless mode, or a
    /// flushed packet from before the loss in stateful discard mode.
    #[error("late MPPE packet: count {ccount}, last accepted {last}")]
    Late {
        /// The packet's coherency count.
        ccount: u16,
        /// The last count accepted.
        last: u16,
    },
    /// Stateless mode, a count further ahead than [`MppeConfig::max_jump`].
    #[error("MPPE count {ccount} is too far ahead of {last}")]
    TooFarAhead {
        /// The packet's coherency count.
        ccount: u16,
        /// The last count accepted.
        last: u16,
    },
    /// Stateless mode, a jump whose skipped counts the [`SKIP_BUDGET`] cannot pay
    /// for now.
    #[error("MPPE count {ccount} skips more counts after {last} than the rekey budget allows now")]
    SkipBudget {
        /// The packet's coherency count.
        ccount: u16,
        /// The last count accepted.
        last: u16,
    },
    /// Stateful mode, after a loss or an invalid protocol field: waiting for a
    /// packet with A set.
    #[error("stateful MPPE: packet {ccount} discarded until a flushed packet arrives")]
    AwaitingFlush {
        /// The packet's coherency count.
        ccount: u16,
    },
    /// Stateless mode: the decrypted protocol field is not a valid PPP protocol
    /// (wrong key, or a corrupt or forged packet); nothing changed. (In stateful
    /// mode the stream is then out of step, and the answer is
    /// [`Decrypted::SendResetRequest`] instead.)
    #[error("decrypted MPPE packet {ccount} has an invalid PPP protocol field")]
    BadProtocol {
        /// The packet's coherency count.
        ccount: u16,
    },
}

/// An RC4 state, rekeyed in place. RC4 is small enough to write out: a plain byte
/// loop, without the `rc4` crate's per-byte block dispatch, and a key schedule that
/// reuses the state's memory. Public for the benchmarks, whose baseline is this
/// RC4 over the same bytes (`benches/mppe.rs`, `tests/benches/fallback.rs`).
#[derive(Clone)]
pub struct Rc4State {
    s: [u8; 256],
    i: u8,
    j: u8,
}

impl Rc4State {
    /// The state after the key schedule of `key`.
    pub fn new(key: &SessionKey) -> Self {
        let mut state = Self {
            s: [0; 256],
            i: 0,
            j: 0,
        };
        state.rekey(key.as_bytes());
        state
    }

    /// The key schedule, in place.
    fn rekey(&mut self, key: &[u8]) {
        for (i, x) in self.s.iter_mut().enumerate() {
            *x = i as u8;
        }
        if key.is_empty() {
            return;
        }
        let mut j = 0u8;
        for i in 0..256 {
            j = j.wrapping_add(self.s[i]).wrapping_add(key[i % key.len()]);
            self.s.swap(i, usize::from(j));
        }
        self.i = 0;
        self.j = 0;
    }

    /// XORs the next `data.len()` bytes of keystream into `data`.
    pub fn apply(&mut self, data: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in data {
            i = i.wrapping_add(1);
            let si = s[usize::from(i)];
            j = j.wrapping_add(si);
            let sj = s[usize::from(j)];
            s[usize::from(i)] = sj;
            s[usize::from(j)] = si;
            *b ^= s[usize::from(si.wrapping_add(sj))];
        }
        self.i = i;
        self.j = j;
    }
}

/// Session key, RC4 state and count shared by both ends.
struct KeyState {
    start: [u8; 16],
    strength: KeyStrength,
    key: SessionKey,
    rc4: Rc4State,
    /// Key changes computed so far (each one SHA-1 and, with a restart, an RC4 key
    /// schedule): the work a peer can make us do.
    changes: u64,
}

impl KeyState {
    fn new(start: [u8; 16], strength: KeyStrength) -> Self {
        let key = keys::initial_session_key(&start, strength);
        let rc4 = Rc4State::new(&key);
        Self {
            start,
            strength,
            key,
            rc4,
            changes: 0,
        }
    }

    /// One key change (without touching the RC4 state).
    fn advance(&mut self) {
        self.key = keys::rekey(&self.start, &self.key, self.strength);
        self.changes += 1;
    }

    /// Restarts RC4 with the current key.
    fn restart(&mut self) {
        self.rc4.rekey(self.key.as_bytes());
    }
}

impl std::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyState")
            .field("strength", &self.strength)
            .finish_non_exhaustive()
    }
}

/// The sending half of MPPE on one link.
#[derive(Debug)]
pub struct Encryptor {
    state: KeyState,
    stateless: bool,
    /// The last count sent (4095 before the first packet).
    ccount: u16,
    /// A CCP Reset-Request arrived: rekey and set A on the next packet.
    flush_pending: bool,
}

impl Encryptor {
    /// An encryptor from this end's send start key (MasterSendKey).
    pub fn new(start_key: [u8; 16], config: MppeConfig) -> Self {
        Self {
            state: KeyState::new(start_key, config.strength),
            stateless: config.stateless,
            ccount: CCOUNT_MASK,
            flush_pending: false,
        }
    }

    /// Encrypts one packet in place. `buf` is `[4 bytes of headroom][payload]`; on
    /// return it is the MPPE packet: the 2-byte header, then RC4 over the protocol
    /// (2 bytes, uncompressed, as Linux and Windows send it) and the payload. The
    /// caller sends it as the information field of a PPP frame with protocol 0x00FD.
    /// Fails only if `buf` is shorter than [`ENCRYPT_HEADROOM`].
    pub fn encrypt(&mut self, protocol: u16, buf: &mut [u8]) -> Result<MppeHeader, MppeError> {
        if buf.len() < ENCRYPT_HEADROOM {
            return Err(MppeError::NoHeadroom { len: buf.len() });
        }
        self.ccount = (self.ccount + 1) & CCOUNT_MASK;
        let mut bits = bits::ENCRYPTED;
        if self.stateless || self.ccount & 0xff == 0xff || self.flush_pending {
            self.state.advance();
            self.state.restart();
            self.flush_pending = false;
            bits |= bits::FLUSHED;
        }
        let header = MppeHeader {
            bits,
            ccount: self.ccount,
        };
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        buf[HEADER_LEN..ENCRYPT_HEADROOM].copy_from_slice(&protocol.to_be_bytes());
        self.state.rc4.apply(&mut buf[HEADER_LEN..]);
        Ok(header)
    }

    /// The peer sent a CCP Reset-Request: the next packet gets a new key and A
    /// (stateful mode). The caller answers with a Reset-Ack. Harmless when stateless.
    pub fn reset(&mut self) {
        if !self.stateless {
            self.flush_pending = true;
        }
    }

    /// The count of the last packet sent (4095 before the first).
    pub fn ccount(&self) -> u16 {
        self.ccount
    }
}

/// A decrypted packet: the PPP protocol and the payload after it, inside the
/// caller's buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Plaintext<'a> {
    /// The PPP protocol (normalised: a 1-byte PFC field comes back as `0x00XX`).
    pub protocol: u16,
    /// The packet's coherency count.
    pub ccount: u16,
    /// The payload after the protocol field (for 0x0021, the IPv4 packet).
    pub payload: &'a mut [u8],
}

/// What the caller does with a packet [`Decryptor::decrypt`] accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Decrypted<'a> {
    /// Deliver the plaintext.
    Packet(Plaintext<'a>),
    /// Stateful mode: packets were lost (or the stream went out of step), this
    /// packet is dropped; send a CCP Reset-Request (and retransmit it on the CCP
    /// timer while [`Decryptor::is_discarding`]). Packets are refused with
    /// [`MppeError::AwaitingFlush`] until the peer sends one with A set.
    SendResetRequest {
        /// The count of the packet dropped.
        ccount: u16,
        /// Counts missed before it (0 when the count was right but the decrypted
        /// protocol field was invalid: the stream is out of step).
        lost: u16,
    },
}

/// The receiving half of MPPE on one link.
#[derive(Debug)]
pub struct Decryptor {
    state: KeyState,
    stateless: bool,
    max_jump: u16,
    /// The last count accepted (4095 before the first packet); in stateful discard
    /// mode, the first count missed.
    ccount: u16,
    /// Stateful: lost sync, waiting for a flushed packet.
    discard: bool,
    /// Stateless: what skipped counts may still cost.
    skips: SkipBudget,
}

/// A token bucket of key changes for skipped counts ([`SKIP_BUDGET`]).
#[derive(Debug)]
struct SkipBudget {
    tokens: u32,
    refilled: Option<Instant>,
}

impl SkipBudget {
    fn full() -> Self {
        Self {
            tokens: SKIP_BUDGET,
            refilled: None,
        }
    }

    /// Takes `n` tokens if there are that many (after refilling up to `now`).
    fn take(&mut self, now: Instant, n: u32) -> bool {
        let last = *self.refilled.get_or_insert(now);
        let earned =
            now.saturating_duration_since(last).as_secs_f64() * f64::from(SKIP_REFILL_PER_SEC);
        if earned >= 1.0 {
            self.tokens = (f64::from(self.tokens) + earned).min(f64::from(SKIP_BUDGET)) as u32;
            self.refilled = Some(now);
        }
        let ok = n <= self.tokens;
        if ok {
            self.tokens -= n;
        }
        ok
    }
}

impl Decryptor {
    /// A decryptor from this end's receive start key (MasterReceiveKey).
    pub fn new(start_key: [u8; 16], config: MppeConfig) -> Self {
        Self {
            state: KeyState::new(start_key, config.strength),
            stateless: config.stateless,
            max_jump: config.max_jump.clamp(1, DEFAULT_MAX_JUMP),
            ccount: CCOUNT_MASK,
            discard: false,
            skips: SkipBudget::full(),
        }
    }

    /// Stateful mode: lost sync, waiting for a packet with A set.
    pub fn is_discarding(&self) -> bool {
        self.discard
    }

    /// The last count accepted (4095 before the first packet).
    pub fn ccount(&self) -> u16 {
        self.ccount
    }

    /// Key changes computed so far, kept or rolled back.
    pub fn key_changes(&self) -> u64 {
        self.state.changes
    }

    /// Decrypts one MPPE packet (the information field of a 0x00FD frame: header
    /// and ciphertext) in place. Never panics. On `Err` the packet is dropped and
    /// the decryptor's state is unchanged (in either mode), but for the
    /// [`SKIP_BUDGET`] a stateless jump spent; `now` refills that budget.
    pub fn decrypt<'a>(
        &mut self,
        now: Instant,
        packet: &'a mut [u8],
    ) -> Result<Decrypted<'a>, MppeError> {
        let header = MppeHeader::parse(packet)?;
        if packet.len() < HEADER_LEN + 1 {
            return Err(MppeError::TooShort { len: packet.len() });
        }
        if !header.encrypted() {
            return Err(MppeError::NotEncrypted);
        }
        if header.bits & bits::COMPRESSED != 0 {
            return Err(MppeError::Compressed);
        }
        let body = &mut packet[HEADER_LEN..];
        if self.stateless {
            self.decrypt_stateless(now, header, body)
                .map(Decrypted::Packet)
        } else {
            self.decrypt_stateful(header, body)
        }
    }

    fn decrypt_stateless<'a>(
        &mut self,
        now: Instant,
        header: MppeHeader,
        body: &'a mut [u8],
    ) -> Result<Plaintext<'a>, MppeError> {
        let ccount = header.ccount;
        if !header.flushed() {
            return Err(MppeError::NotFlushed { ccount });
        }
        let last = self.ccount;
        let jump = ccount.wrapping_sub(last) & CCOUNT_MASK;
        if jump == 0 {
            return Err(MppeError::Duplicate { ccount });
        }
        if jump > DEFAULT_MAX_JUMP {
            return Err(MppeError::Late { ccount, last });
        }
        if jump > self.max_jump {
            return Err(MppeError::TooFarAhead { ccount, last });
        }
        if !self.skips.take(now, u32::from(jump - 1)) {
            return Err(MppeError::SkipBudget { ccount, last });
        }
        let saved = self.state.key.clone();
        for _ in 0..jump {
            self.state.advance();
        }
        self.state.restart();
        match open(&mut self.state.rc4, ccount, body) {
            Ok(p) => {
                self.ccount = ccount;
                Ok(p)
            }
            Err(e) => {
                self.state.key = saved;
                Err(e)
            }
        }
    }

    fn decrypt_stateful<'a>(
        &mut self,
        header: MppeHeader,
        body: &'a mut [u8],
    ) -> Result<Decrypted<'a>, MppeError> {
        let ccount = header.ccount;
        let flushed = header.flushed();
        if ccount & 0xff == 0xff && !flushed {
            return Err(MppeError::FlagNotFlushed { ccount });
        }
        if !self.discard {
            let expected = (self.ccount + 1) & CCOUNT_MASK;
            if ccount != expected {
                // Loss (or reordering, which a stateful stream cannot survive
                // either). `self.ccount` becomes the first count missed.
                self.ccount = expected;
                self.discard = true;
                return Ok(Decrypted::SendResetRequest {
                    ccount,
                    lost: ccount.wrapping_sub(expected) & CCOUNT_MASK,
                });
            }
            self.ccount = ccount;
            if flushed {
                self.change_key_for_flushed(ccount, body);
            }
        } else if !flushed {
            return Err(MppeError::AwaitingFlush { ccount });
        } else {
            let ahead = ccount.wrapping_sub(self.ccount) & CCOUNT_MASK;
            if ahead > DEFAULT_MAX_JUMP {
                // A flushed packet from before the loss, arriving late.
                return Err(MppeError::Late {
                    ccount,
                    last: self.ccount.wrapping_sub(1) & CCOUNT_MASK,
                });
            }
            // One key change per flag packet missed: the sender rekeyed on each
            // count ending in 0xFF from the first count missed up to this one;
            // then one for this flushed packet.
            while ccount & !0xff != self.ccount & !0xff {
                self.state.advance();
                self.ccount = (self.ccount + 256) & CCOUNT_MASK;
            }
            self.change_key_for_flushed(ccount, body);
            self.discard = false;
            self.ccount = ccount;
        }
        match open(&mut self.state.rc4, ccount, body) {
            Ok(p) => Ok(Decrypted::Packet(p)),
            Err(_) => {
                // An invalid protocol field (or no room for one): the stream is
                // out of step. As after a loss, with this count consumed.
                self.ccount = (ccount + 1) & CCOUNT_MASK;
                self.discard = true;
                Ok(Decrypted::SendResetRequest { ccount, lost: 0 })
            }
        }
    }
}

impl Decryptor {
    /// Stateful mode, a flushed packet (after any catch-up for missed flag
    /// packets): one key change, as Linux ppp_mppe's sender makes, and a fresh RC4
    /// state.
    ///
    /// If that key does not decrypt the protocol field to `00 xx` (odd `xx`, the
    /// uncompressed form Linux and Windows send), two other senders are tried
    /// before keeping Linux's key: one that answers a Reset-Request by restarting
    /// RC4 with its current key, without a key change (FreeBSD ppp's reading of
    /// RFC 3078; not for flag packets, where everyone changes the key); and a
    /// Linux sender that is up to [`RESYNC_EXTRA_KEYS`] keys further on, having
    /// answered earlier Reset-Requests with flushed packets that were lost too.
    /// Without the second, one lost flushed packet would leave the receiver a key
    /// behind for good.
    fn change_key_for_flushed(&mut self, ccount: u16, body: &[u8]) {
        let unchanged = self.state.key.clone();
        self.state.advance();
        if let [a, b, ..] = *body {
            let strict = |key: &SessionKey| {
                let mut head = [a, b];
                Rc4State::new(key).apply(&mut head);
                head[0] == 0 && head[1] & 1 == 1
            };
            if !strict(&self.state.key) {
                if ccount & 0xff != 0xff && strict(&unchanged) {
                    self.state.key = unchanged;
                } else {
                    let mut candidate = self.state.key.clone();
                    for _ in 0..RESYNC_EXTRA_KEYS {
                        candidate = keys::rekey(&self.state.start, &candidate, self.state.strength);
                        if strict(&candidate) {
                            self.state.key = candidate;
                            break;
                        }
                    }
                }
            }
        }
        self.state.restart();
    }
}

/// How many key changes beyond the expected one a stateful flushed packet may
/// be found at (lost flushed packets answering earlier Reset-Requests).
pub const RESYNC_EXTRA_KEYS: usize = 3;

/// Decrypts the protocol field into a scratch copy, checks it, then decrypts the
/// rest in place. On error `body` is untouched.
fn open<'a>(
    rc4: &mut Rc4State,
    ccount: u16,
    body: &'a mut [u8],
) -> Result<Plaintext<'a>, MppeError> {
    let n = body.len().min(2);
    let mut head = [0u8; 2];
    head[..n].copy_from_slice(&body[..n]);
    rc4.apply(&mut head[..n]);
    let field = match ppp::parse_protocol(&head[..n]) {
        Ok(field) => field,
        Err(ppp::Fault::Truncated) => {
            return Err(MppeError::TooShort {
                len: body.len() + HEADER_LEN,
            });
        }
        Err(ppp::Fault::BadProtocol(_)) => return Err(MppeError::BadProtocol { ccount }),
    };
    body[..n].copy_from_slice(&head[..n]);
    rc4.apply(&mut body[n..]);
    Ok(Plaintext {
        protocol: field.protocol,
        ccount,
        payload: &mut body[field.header_len..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex_literal::hex;

    const START: [u8; 16] = hex!("8B7CDC149B993A1BA118CB153F56DCCB");

    #[test]
    fn rfc3079_vector_through_the_cipher() {
        // RFC 3079 §3.5.3: the server's send start key, "test message" under the
        // initial session key. A stateful encryptor uses the initial key for its
        // first packet (count 0, A clear).
        let mut enc = Encryptor::new(START, MppeConfig::new(KeyStrength::Bits128, false));
        let mut buf = [0u8; 4 + 10];
        buf[4..].copy_from_slice(b"st message");
        let header = enc.encrypt(u16::from_be_bytes(*b"te"), &mut buf).unwrap();
        assert_eq!(
            header,
            MppeHeader {
                bits: bits::ENCRYPTED,
                ccount: 0
            }
        );
        assert_eq!(buf[..2], [0x10, 0x00]);
        assert_eq!(buf[2..], hex!("81848317DF68846272FB5ABE"));
    }

    #[test]
    fn rc4_matches_the_rc4_crate() {
        for len in [8usize, 16] {
            let key = keys::new_key_from_sha(&START, &START, len);
            let mut ours = [0x5au8; 1000];
            let mut theirs = ours;
            let mut rc4 = Rc4State::new(&key);
            let (a, b) = ours.split_at_mut(333);
            rc4.apply(a);
            rc4.apply(b);
            keys::rc4_apply(key.as_bytes(), &mut theirs);
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn header_round_trip() {
        let h = MppeHeader::parse(&[0x9f, 0xff]).unwrap();
        assert_eq!(h.ccount, 0xfff);
        assert!(h.flushed() && h.encrypted());
        assert_eq!(h.to_bytes(), [0x9f, 0xff]);
        assert_eq!(
            MppeHeader::parse(&[0x90]),
            Err(MppeError::TooShort { len: 1 })
        );
    }

    #[test]
    fn stateless_first_packet_uses_key_rekeyed_once() {
        let cfg = MppeConfig::new(KeyStrength::Bits128, true);
        let mut enc = Encryptor::new(START, cfg);
        let mut buf = [0u8; 4 + 3];
        buf[4..].copy_from_slice(b"abc");
        let h = enc.encrypt(0x0021, &mut buf).unwrap();
        assert_eq!(h.to_bytes(), [0x90, 0x00]);
        let k0 = keys::rekey(
            &START,
            &keys::initial_session_key(&START, KeyStrength::Bits128),
            KeyStrength::Bits128,
        );
        let mut expect = *b"\x00\x21abc";
        keys::rc4_apply(k0.as_bytes(), &mut expect);
        assert_eq!(buf[2..], expect);
    }

    #[test]
    fn bad_bits_are_refused() {
        let now = std::time::Instant::now();
        let cfg = MppeConfig::new(KeyStrength::Bits128, true);
        let mut dec = Decryptor::new(START, cfg);
        assert_eq!(
            dec.decrypt(now, &mut []),
            Err(MppeError::TooShort { len: 0 })
        );
        assert_eq!(
            dec.decrypt(now, &mut [0x90, 0x00]),
            Err(MppeError::TooShort { len: 2 })
        );
        assert_eq!(
            dec.decrypt(now, &mut [0x80, 0x00, 1]),
            Err(MppeError::NotEncrypted)
        );
        assert_eq!(
            dec.decrypt(now, &mut [0xb0, 0x00, 1]),
            Err(MppeError::Compressed)
        );
        assert_eq!(
            dec.decrypt(now, &mut [0x10, 0x00, 1]),
            Err(MppeError::NotFlushed { ccount: 0 })
        );
        let mut stateful = Decryptor::new(START, MppeConfig::new(KeyStrength::Bits40, false));
        assert_eq!(
            stateful.decrypt(now, &mut [0x10, 0xff, 1]),
            Err(MppeError::FlagNotFlushed { ccount: 0xff })
        );
        assert_eq!(dec.ccount(), CCOUNT_MASK);
    }

    #[test]
    fn pfc_protocol_is_accepted() {
        let now = std::time::Instant::now();
        // Encrypt a 1-byte protocol by hand under the stateless key for count 0.
        let k0 = keys::rekey(
            &START,
            &keys::initial_session_key(&START, KeyStrength::Bits128),
            KeyStrength::Bits128,
        );
        let mut pkt = *b"\x90\x00\x21xyz";
        keys::rc4_apply(k0.as_bytes(), &mut pkt[2..]);
        let mut dec = Decryptor::new(START, MppeConfig::new(KeyStrength::Bits128, true));
        let Decrypted::Packet(p) = dec.decrypt(now, &mut pkt).unwrap() else {
            panic!("plaintext expected");
        };
        assert_eq!(p.protocol, 0x0021);
        assert_eq!(p.payload, b"xyz");
    }

    #[test]
    fn wrong_key_is_rolled_back_when_stateless() {
        let now = std::time::Instant::now();
        let cfg = MppeConfig::new(KeyStrength::Bits128, true);
        let mut enc = Encryptor::new(START, cfg);
        let mut other = Decryptor::new([7; 16], cfg);
        let mut good = Decryptor::new(START, cfg);
        // Find a packet whose protocol decrypts as invalid under the wrong key.
        for i in 0..64u8 {
            let mut buf = [0u8; 4 + 8];
            buf[4..].fill(i);
            enc.encrypt(0x0021, &mut buf).unwrap();
            let mut copy = buf;
            let before = other.ccount();
            if let Err(MppeError::BadProtocol { .. }) = other.decrypt(now, &mut copy) {
                assert_eq!(other.ccount(), before, "state rolled back");
                assert_eq!(buf, copy, "buffer untouched");
            }
            let Decrypted::Packet(p) = good.decrypt(now, &mut buf).unwrap() else {
                panic!("plaintext expected");
            };
            assert_eq!(p.protocol, 0x0021);
            assert_eq!(p.payload, &[i; 8]);
        }
    }

    #[test]
    fn forged_jumps_cost_a_bounded_number_of_key_changes() {
        let now = std::time::Instant::now();
        // A flood of forged stateless packets whose counts jump almost 2048 ahead:
        // each one would cost up to 2048 key changes, and most are rolled back so
        // the same packet can be sent again.
        let cfg = MppeConfig::new(KeyStrength::Bits128, true);
        let mut enc = Encryptor::new(START, cfg);
        let mut dec = Decryptor::new(START, cfg);
        let mut genuine = |dec: &mut Decryptor| {
            let mut buf = [0u8; 4 + 8];
            enc.encrypt(0x0021, &mut buf).unwrap();
            assert!(matches!(
                dec.decrypt(now, &mut buf),
                Ok(Decrypted::Packet(_))
            ));
        };
        genuine(&mut dec);
        let before = dec.key_changes();
        for i in 0..200u16 {
            let ccount = (dec.ccount() + 2047 - i % 16) & CCOUNT_MASK;
            let mut forged = [0x90 | (ccount >> 8) as u8, ccount as u8, 0x5a, 0xa5, 1, 2];
            let _ = dec.decrypt(now, &mut forged);
        }
        let spent = dec.key_changes() - before;
        assert!(
            spent <= 2 * u64::from(DEFAULT_MAX_JUMP),
            "200 forged packets cost {spent} key changes"
        );
    }
}
