//! Transaction signatures (TSIG, RFC 8945) with HMAC-SHA256/384/512: checking a request's
//! signature, signing a response, and the signed stream of a zone transfer, on the bytes of
//! the messages as they go on the wire (ring's HMAC; hickory's TSIG code needs its DNSSEC
//! build and signs no message after a stream's first).

use std::fmt;

use ring::hmac;

use crate::dns::wire::{HEADER_LEN, TsigAt, u16_at, u32_at};

use crate::dns::wire::qtype::TSIG;
/// The class of a TSIG record.
const CLASS_ANY: u16 = 255;
/// Seconds a signature's time may differ from ours (RFC 8945 10: 300 recommended).
pub const FUDGE: u16 = 300;
/// The longest MAC (HMAC-SHA512).
const MAX_MAC: usize = 64;

/// TSIG errors, in the TSIG record's error field (RFC 8945 4.3; the header says NOTAUTH).
pub mod error {
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
}

/// A shared secret, named as both ends know it.
#[derive(Clone)]
pub struct TsigKey {
    /// The key's name in canonical wire form (lowercase, root label included).
    name: Box<[u8]>,
    /// The algorithm's name in canonical wire form (`hmac-sha256.`).
    algorithm: &'static [u8],
    key: hmac::Key,
}

impl fmt::Debug for TsigKey {
    /// The name and algorithm; never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("algorithm", &String::from_utf8_lossy(self.algorithm))
            .finish_non_exhaustive()
    }
}

/// The algorithms offered, by name.
const ALGORITHMS: [(&str, &[u8], hmac::Algorithm); 3] = [
    ("hmac-sha256", b"\x0bhmac-sha256\x00", hmac::HMAC_SHA256),
    ("hmac-sha384", b"\x0bhmac-sha384\x00", hmac::HMAC_SHA384),
    ("hmac-sha512", b"\x0bhmac-sha512\x00", hmac::HMAC_SHA512),
];

impl TsigKey {
    /// A key named `name` (a domain name, `xfr-key` or `xfr-key.example.`), for
    /// `algorithm` (`hmac-sha256`, `hmac-sha384`, `hmac-sha512`), with `secret`.
    pub fn new(name: &str, algorithm: &str, secret: &[u8]) -> Result<Self, String> {
        let Some(&(_, wire, algorithm)) = ALGORITHMS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(algorithm))
        else {
            return Err(format!(
                "algorithm {algorithm:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512"
            ));
        };
        let mut wire_name = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("{name:?} is not a domain name"));
            }
            wire_name.push(label.len() as u8);
            wire_name.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
        wire_name.push(0);
        if wire_name.len() > 255 {
            return Err(format!("{name:?} is longer than 255 octets"));
        }
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Self {
            name: wire_name.into_boxed_slice(),
            algorithm: wire,
            key: hmac::Key::new(algorithm, secret),
        })
    }

    /// The key's name as written in messages.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// Octets of the TSIG record this key signs a response with (no error, no Other Data).
    pub fn response_len(&self) -> usize {
        let mac = self.key.algorithm().digest_algorithm().output_len();
        // Owner, TYPE, CLASS, TTL, RDLENGTH; algorithm, time, fudge, MAC size, MAC, original
        // ID, error, other length.
        self.name.len() + 10 + self.algorithm.len() + 6 + 2 + 2 + mac + 2 + 2 + 2
    }
}

/// A key as configured: `NAME:ALGORITHM:BASE64SECRET` (`--tsig-key`), as `dig -y` and
/// `knotc` write it.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKeySpec {
    pub name: String,
    pub algorithm: String,
    pub secret: Vec<u8>,
}

impl fmt::Debug for TsigKeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:<secret>", self.name, self.algorithm)
    }
}

impl std::str::FromStr for TsigKeySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let mut parts = text.splitn(3, ':');
        let (Some(name), Some(algorithm), Some(secret)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(
                "not NAME:ALGORITHM:BASE64SECRET, e.g. xfr-key:hmac-sha256:c2VjcmV0".into(),
            );
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("the secret is not base64 ({e})"))?;
        let spec = Self {
            name: name.to_owned(),
            algorithm: algorithm.to_owned(),
            secret,
        };
        spec.key()?;
        Ok(spec)
    }
}

impl TsigKeySpec {
    /// The key it describes.
    pub fn key(&self) -> Result<TsigKey, String> {
        TsigKey::new(&self.name, &self.algorithm, &self.secret)
    }
}

/// The fields of a request's TSIG record.
#[derive(Debug, Clone)]
pub struct TsigRecord {
    /// The key's name, canonical (lowercase, uncompressed).
    pub key_name: Vec<u8>,
    /// The algorithm's name, canonical.
    pub algorithm: Vec<u8>,
    pub time: u64,
    pub fudge: u16,
    pub mac: Vec<u8>,
    pub original_id: u16,
    pub error: u16,
    pub other: Vec<u8>,
}

/// A verified request's MAC: the start of its responses' signatures.
#[derive(Clone, Copy)]
pub struct Mac {
    bytes: [u8; MAX_MAC],
    len: usize,
}

impl Mac {
    fn of(bytes: &[u8]) -> Self {
        let mut mac = Self {
            bytes: [0; MAX_MAC],
            len: bytes.len().min(MAX_MAC),
        };
        mac.bytes[..mac.len].copy_from_slice(&bytes[..mac.len]);
        mac
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// How a signed request fared.
pub enum Checked<'k> {
    /// Signed with `key`; `mac`, the request's, starts the responses' signatures.
    Valid { key: &'k TsigKey, mac: Mac },
    /// Not acceptable: answer NOTAUTH with this TSIG error (RFC 8945 5.2). A BADTIME answer
    /// is signed with `key`; BADKEY and BADSIG go unsigned.
    Invalid {
        error: u16,
        record: TsigRecord,
        key: Option<(&'k TsigKey, Mac)>,
    },
}

/// Reads a name at `at` in `msg` (compression pointers followed), lowercased, uncompressed;
/// `None` when it runs past the message, loops, or is longer than the 255 octets a name may
/// have with its root label (RFC 1035 3.1): a response echoes the key name, and must parse.
fn read_name(msg: &[u8], mut at: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut end = None;
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => {
                out.push(0);
                return Some(end.unwrap_or(at + 1));
            }
            1..=63 => {
                let label = msg.get(at + 1..at + 1 + usize::from(len))?;
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                at += 1 + usize::from(len);
            }
            0xC0..=0xFF => {
                let pointer = usize::from(u16_at(msg, at)? & 0x3FFF);
                end.get_or_insert(at + 2);
                at = pointer;
            }
            _ => return None,
        }
        // The root label still to come makes it one octet longer.
        if out.len() >= 255 {
            return None;
        }
    }
    None
}

/// The TSIG record at `at` of `msg`.
pub fn record(msg: &[u8], at: TsigAt) -> Option<TsigRecord> {
    let mut key_name = Vec::new();
    let fixed = read_name(msg, at.range().start, &mut key_name)?;
    let rdata = fixed + 10;
    let mut algorithm = Vec::new();
    let mut p = read_name(msg, rdata, &mut algorithm)?;
    let time = (u64::from(u16_at(msg, p)?) << 32) | u64::from(u32_at(msg, p + 2)?);
    let fudge = u16_at(msg, p + 6)?;
    let mac_len = usize::from(u16_at(msg, p + 8)?);
    let mac = msg.get(p + 10..p + 10 + mac_len)?.to_vec();
    p += 10 + mac_len;
    let original_id = u16_at(msg, p)?;
    let error = u16_at(msg, p + 2)?;
    let other_len = usize::from(u16_at(msg, p + 4)?);
    let other = msg.get(p + 6..p + 6 + other_len)?.to_vec();
    (p + 6 + other_len == at.range().end).then_some(TsigRecord {
        key_name,
        algorithm,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// The TSIG variables (RFC 8945 4.3.3) of a message signed by `key` at `time`.
fn variables(ctx: &mut hmac::Context, key: &TsigKey, time: u64, error: u16, other: &[u8]) {
    ctx.update(&key.name);
    ctx.update(&CLASS_ANY.to_be_bytes());
    ctx.update(&[0, 0, 0, 0]);
    ctx.update(key.algorithm);
    timers(ctx, time, FUDGE);
    ctx.update(&error.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

/// Time Signed (48 bits) and Fudge.
fn timers(ctx: &mut hmac::Context, time: u64, fudge: u16) {
    ctx.update(&time.to_be_bytes()[2..8]);
    ctx.update(&fudge.to_be_bytes());
}

/// Checks the TSIG of `msg` (found at `at`) against `keys` at Unix time `now`.
pub fn check<'k>(keys: &'k [TsigKey], msg: &[u8], at: TsigAt, now: u64) -> Option<Checked<'k>> {
    let record = record(msg, at)?;
    let key = keys
        .iter()
        .find(|k| *k.name == *record.key_name && *k.algorithm == *record.algorithm);
    let Some(key) = key else {
        return Some(Checked::Invalid {
            error: error::BADKEY,
            record,
            key: None,
        });
    };
    // The request as signed: its original ID, ARCOUNT without the TSIG, no TSIG record.
    let arcount = u16_at(msg, 10)?.checked_sub(1)?;
    let mut ctx = hmac::Context::with_key(&key.key);
    ctx.update(&record.original_id.to_be_bytes());
    ctx.update(msg.get(2..10)?);
    ctx.update(&arcount.to_be_bytes());
    ctx.update(msg.get(HEADER_LEN..at.range().start)?);
    ctx.update(&record.key_name);
    ctx.update(&CLASS_ANY.to_be_bytes());
    ctx.update(&[0, 0, 0, 0]);
    ctx.update(&record.algorithm);
    timers(&mut ctx, record.time, record.fudge);
    ctx.update(&record.error.to_be_bytes());
    ctx.update(&(record.other.len() as u16).to_be_bytes());
    ctx.update(&record.other);
    let expected = ctx.sign();
    // A full-length MAC only (no truncation is offered), compared in constant time.
    if !constant_time_eq(expected.as_ref(), &record.mac) {
        return Some(Checked::Invalid {
            error: error::BADSIG,
            record,
            key: None,
        });
    }
    let mac = Mac::of(&record.mac);
    if now.abs_diff(record.time) > u64::from(record.fudge) {
        return Some(Checked::Invalid {
            error: error::BADTIME,
            record,
            key: Some((key, mac)),
        });
    }
    Some(Checked::Valid { key, mac })
}

/// Equality in time independent of where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs the responses to one request: the first with the request's MAC, each later one
/// (a zone transfer's messages) with the one before it (RFC 8945 5.3.1).
pub struct Signer<'k> {
    key: &'k TsigKey,
    previous: Mac,
    first: bool,
    original_id: u16,
}

impl<'k> Signer<'k> {
    pub fn new(key: &'k TsigKey, request_mac: Mac, original_id: u16) -> Self {
        Self {
            key,
            previous: request_mac,
            first: true,
            original_id,
        }
    }

    /// Appends a TSIG record signing `msg` (a complete response) at `now`, and counts it in
    /// ARCOUNT.
    pub fn sign(&mut self, msg: &mut Vec<u8>, now: u64) {
        self.sign_with(msg, now, 0, &[]);
    }

    /// The same with a TSIG error and Other Data (BADTIME: the server's time), the time the
    /// request's when answering BADTIME.
    pub fn sign_with(&mut self, msg: &mut Vec<u8>, time: u64, error: u16, other: &[u8]) {
        let mut ctx = hmac::Context::with_key(&self.key.key);
        ctx.update(&(self.previous.len as u16).to_be_bytes());
        ctx.update(self.previous.as_bytes());
        ctx.update(msg);
        if self.first {
            variables(&mut ctx, self.key, time, error, other);
        } else {
            timers(&mut ctx, time, FUDGE);
        }
        let tag = ctx.sign();
        self.previous = Mac::of(tag.as_ref());
        self.first = false;
        append(
            msg,
            self.key.name(),
            self.key.algorithm,
            time,
            tag.as_ref(),
            self.original_id,
            error,
            other,
        );
    }
}

/// Signs `msg`, a request of ours (a NOTIFY), with `key` at `now`: appends the TSIG record
/// and counts it in ARCOUNT; returns the MAC its response is signed with.
pub fn sign_request(msg: &mut Vec<u8>, key: &TsigKey, now: u64) -> Mac {
    let mut ctx = hmac::Context::with_key(&key.key);
    ctx.update(msg);
    variables(&mut ctx, key, now, 0, &[]);
    let tag = ctx.sign();
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    append(
        msg,
        key.name(),
        key.algorithm,
        now,
        tag.as_ref(),
        id,
        0,
        &[],
    );
    Mac::of(tag.as_ref())
}

/// Appends an unsigned TSIG record carrying `error` (BADKEY, BADSIG) for the request's
/// `record`, and counts it in ARCOUNT.
pub fn append_error(msg: &mut Vec<u8>, record: &TsigRecord, error: u16) {
    append(
        msg,
        &record.key_name,
        &record.algorithm,
        record.time,
        &[],
        record.original_id,
        error,
        &[],
    );
}

/// Writes a TSIG record at the end of `msg` and counts it in ARCOUNT.
#[allow(
    clippy::too_many_arguments,
    reason = "the record's fields, in wire order"
)]
fn append(
    msg: &mut Vec<u8>,
    key_name: &[u8],
    algorithm: &[u8],
    time: u64,
    mac: &[u8],
    original_id: u16,
    error: u16,
    other: &[u8],
) {
    msg.extend_from_slice(key_name);
    msg.extend_from_slice(&TSIG.to_be_bytes());
    msg.extend_from_slice(&CLASS_ANY.to_be_bytes());
    msg.extend_from_slice(&[0, 0, 0, 0]);
    let rdlen = algorithm.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + other.len();
    msg.extend_from_slice(&(rdlen as u16).to_be_bytes());
    msg.extend_from_slice(algorithm);
    msg.extend_from_slice(&time.to_be_bytes()[2..8]);
    msg.extend_from_slice(&FUDGE.to_be_bytes());
    msg.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    msg.extend_from_slice(mac);
    msg.extend_from_slice(&original_id.to_be_bytes());
    msg.extend_from_slice(&error.to_be_bytes());
    msg.extend_from_slice(&(other.len() as u16).to_be_bytes());
    msg.extend_from_slice(other);
    if let Some(count) = msg.get_mut(10..12) {
        let arcount = u16::from_be_bytes([count[0], count[1]]).saturating_add(1);
        count.copy_from_slice(&arcount.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::{self, Parsed, QuestionName};

    const SECRET: &str = "aGVhZGxlc3MtZG5zIHRlc3Qga2V5IDEyMzQ1Njc4OTA=";

    fn key(name: &str) -> TsigKey {
        format!("{name}:hmac-sha256:{SECRET}")
            .parse::<TsigKeySpec>()
            .and_then(|spec| spec.key())
            .expect("a valid key")
    }

    /// An A query for `web-0.demo`, signed with `key` at `time`.
    fn signed_query(key: &TsigKey, time: u64) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x05web-0\x04demo\x00\x00\x01\x00\x01");
        sign_request(&mut msg, key, time);
        msg
    }

    fn tsig_at(msg: &[u8]) -> TsigAt {
        let mut name = QuestionName::new();
        match wire::parse(msg, &mut name) {
            Parsed::Query(q) => q.tsig.expect("the TSIG is found"),
            _ => panic!("the signed query parses"),
        }
    }

    fn error_of(checked: Option<Checked<'_>>) -> Option<u16> {
        match checked.expect("a TSIG record") {
            Checked::Valid { .. } => None,
            Checked::Invalid { error, .. } => Some(error),
        }
    }

    #[test]
    fn a_key_is_read_as_name_algorithm_secret_and_says_what_is_wrong() {
        let spec: TsigKeySpec = format!("Xfr-Key:hmac-sha512:{SECRET}").parse().unwrap();
        assert_eq!(spec.key().unwrap().name(), b"\x07xfr-key\x00");
        for (bad, says) in [
            ("xfr-key:hmac-sha256", "NAME:ALGORITHM:BASE64SECRET"),
            ("xfr-key:hmac-md5:c2VjcmV0", "hmac-md5"),
            ("xfr-key:hmac-sha256:not base64!", "base64"),
        ] {
            let error = bad.parse::<TsigKeySpec>().expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_signature_checks_with_its_key_and_nothing_else() {
        let (ours, theirs) = (key("xfr-key"), key("other-key"));
        let now = 1_800_000_000;
        let msg = signed_query(&ours, now);
        let at = tsig_at(&msg);
        let keys = [ours.clone()];
        assert_eq!(error_of(check(&keys, &msg, at, now)), None);
        assert_eq!(error_of(check(&keys, &msg, at, now + 299)), None);
        assert_eq!(
            error_of(check(&keys, &msg, at, now + 301)),
            Some(error::BADTIME)
        );
        assert_eq!(
            error_of(check(&[theirs], &msg, at, now)),
            Some(error::BADKEY)
        );
        // One bit of the question changed: the MAC no longer matches.
        let mut tampered = msg.clone();
        tampered[14] ^= 0x20;
        assert_eq!(
            error_of(check(&keys, &tampered, at, now)),
            Some(error::BADSIG)
        );
        // The same secret under another name is another key.
        let renamed = signed_query(&key("xfr-key2"), now);
        assert_eq!(
            error_of(check(&keys, &renamed, tsig_at(&renamed), now)),
            Some(error::BADKEY)
        );
    }

    #[test]
    fn a_response_is_signed_over_the_request_mac_and_each_message_over_the_last() {
        let ours = key("xfr-key");
        let now = 1_800_000_000;
        let request = signed_query(&ours, now);
        let keys = [ours.clone()];
        let Some(Checked::Valid { key, mac }) = check(&keys, &request, tsig_at(&request), now)
        else {
            panic!("the request checks");
        };
        let response = |signer: &mut Signer<'_>| {
            let mut msg = vec![0x12, 0x34, 0x84, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
            signer.sign(&mut msg, now);
            msg
        };
        let mut signer = Signer::new(key, mac, 0x1234);
        let (first, second) = (response(&mut signer), response(&mut signer));
        // The same bytes, chained from a different place: different MACs.
        assert_ne!(first, second);
        assert_eq!(u16_at(&first, 10), Some(1), "ARCOUNT counts the TSIG");
        assert_eq!(first.len() - HEADER_LEN, ours.response_len());
        let at = TsigAt {
            start: HEADER_LEN as u16,
            end: first.len() as u16,
        };
        let record = record(&first, at).expect("our TSIG reads back");
        assert_eq!(record.key_name, ours.name());
        assert_eq!((record.time, record.error, record.mac.len()), (now, 0, 32));
    }

    #[test]
    fn a_name_is_at_most_255_octets_with_its_root_label() {
        // 3 labels of 63 and one of 61: 4 + 63 * 3 + 61 = 254 octets, 255 with the root.
        let longest: Vec<u8> = [63u8, 63, 63, 61]
            .iter()
            .flat_map(|&n| std::iter::once(n).chain(std::iter::repeat_n(b'a', usize::from(n))))
            .chain([0])
            .collect();
        assert_eq!(longest.len(), 255);
        let mut out = Vec::new();
        assert_eq!(read_name(&longest, 0, &mut out), Some(255));
        assert_eq!(out.len(), 255);
        // One octet more (the fuzzer's find: a BADKEY answer echoed it, and it did not
        // parse).
        let mut over = longest.clone();
        over[192] = 62;
        over.insert(193, b'a');
        assert_eq!(over.len(), 256);
        assert_eq!(read_name(&over, 0, &mut Vec::new()), None);
    }

    #[test]
    fn a_truncated_or_garbled_tsig_record_is_no_record() {
        let ours = key("xfr-key");
        let msg = signed_query(&ours, 1_800_000_000);
        let at = tsig_at(&msg);
        for cut in 1..(at.end - at.start) {
            let short = TsigAt {
                start: at.start,
                end: at.end - cut,
            };
            assert!(
                record(&msg[..short.range().end], short).is_none(),
                "cut {cut}"
            );
        }
        let mut garbled = msg.clone();
        let owner = at.range().start;
        garbled[owner] = 0xC0; // a pointer to a place past the end
        garbled[owner + 1] = 0xFF;
        assert!(check(&[ours], &garbled, at, 1_800_000_000).is_none());
    }
}
