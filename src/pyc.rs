//! The pyc header: magic numbers, flags, the PEP 552 source hash and the classification of
//! an existing pyc against what a target interpreter expects.
//!
//! Everything here is pure (no I/O), so it can be unit-tested against vectors taken from
//! real interpreters and fuzzed.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0–3 | magic: u16 + `\r\n` |
//! | 4–7 | flags: 0 timestamp, 1 unchecked hash, 3 checked hash |
//! | 8–15 | hash pyc: SipHash of the source; timestamp pyc: mtime u32 + size u32 |
//! | 16– | `marshal.dumps(code)` |

use std::fmt;
use std::hash::Hasher;

use siphasher::sip::{SipHasher13, SipHasher24};

/// Length of a PEP 552 header.
pub const HEADER_LEN: usize = 16;

/// Flag bit: the pyc is hash-based.
pub const FLAG_HASH_BASED: u32 = 0b01;
/// Flag bit: a hash-based pyc is checked against its source on import.
pub const FLAG_CHECK_SOURCE: u32 = 0b10;

/// The four magic bytes that open every pyc of one bytecode version.
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Magic(pub [u8; 4]);

impl Magic {
    /// The magic for a magic number (the u16 that CPython bumps with each bytecode change).
    pub fn from_number(number: u16) -> Self {
        let [a, b] = number.to_le_bytes();
        Magic([a, b, b'\r', b'\n'])
    }

    /// The u16 magic number.
    pub fn number(self) -> u16 {
        u16::from_le_bytes([self.0[0], self.0[1]])
    }

    /// Whether the last two bytes are `\r\n`, as in every CPython 3 magic.
    pub fn is_well_formed(self) -> bool {
        self.0[2] == b'\r' && self.0[3] == b'\n'
    }

    /// The SipHash key k0: the four magic bytes read as a little-endian u32.
    pub fn hash_key(self) -> u64 {
        u64::from(u32::from_le_bytes(self.0))
    }
}

impl fmt::Debug for Magic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Magic({})", hex(&self.0))
    }
}

impl fmt::Display for Magic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

/// Which SipHash `importlib.util.source_hash` uses: 2-4 up to 3.10, 1-3 from 3.11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum HashVariant {
    #[serde(rename = "siphash-2-4")]
    Sip24,
    #[serde(rename = "siphash-1-3")]
    Sip13,
}

impl HashVariant {
    pub const ALL: [HashVariant; 2] = [HashVariant::Sip13, HashVariant::Sip24];
}

impl fmt::Display for HashVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashVariant::Sip24 => "SipHash-2-4",
            HashVariant::Sip13 => "SipHash-1-3",
        })
    }
}

/// The 8-byte source hash stored in a hash-based pyc.
pub type SourceHash = [u8; 8];

/// `importlib.util.source_hash(source)` for an interpreter with this magic and variant:
/// SipHash over the raw bytes, k0 = the magic as a little-endian u32, k1 = 0, stored LE.
pub fn source_hash(variant: HashVariant, magic: Magic, source: &[u8]) -> SourceHash {
    let key = magic.hash_key();
    let value = match variant {
        HashVariant::Sip13 => siphash13(key, source),
        HashVariant::Sip24 => {
            let mut h = SipHasher24::new_with_keys(key, 0);
            h.write(source);
            h.finish()
        }
    };
    value.to_le_bytes()
}

/// SipHash-1-3 with k0 = `key` and k1 = 0, CPython's keyed hash (3.11+): behind
/// `importlib.util.source_hash`, and with key 0 behind `hash()` of a non-empty str under
/// `PYTHONHASHSEED=0`.
pub fn siphash13(key: u64, data: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(key, 0);
    h.write(data);
    h.finish()
}

/// How a hash-based pyc is validated on import.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashMode {
    /// Re-validated against the source on every import (flags = 3).
    Checked,
    /// Trusted without looking at the source (flags = 1).
    Unchecked,
}

impl HashMode {
    pub fn flags(self) -> u32 {
        match self {
            HashMode::Checked => FLAG_HASH_BASED | FLAG_CHECK_SOURCE,
            HashMode::Unchecked => FLAG_HASH_BASED,
        }
    }
}

/// A decoded 16-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: Magic,
    pub flags: u32,
    pub field: [u8; 8],
}

/// What kind of pyc a header describes, as importlib reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Flags without the hash bit (importlib ignores the check bit then).
    Timestamp {
        mtime: u32,
        size: u32,
    },
    Hash {
        mode: HashMode,
        hash: SourceHash,
    },
}

/// Why importlib would refuse a pyc outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invalid {
    /// Fewer than 16 bytes.
    Short,
    /// Magic of another interpreter version, or not a pyc at all.
    Magic,
    /// Flag bits other than the two PEP 552 defines.
    Flags,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invalid::Short => "shorter than a 16-byte header",
            Invalid::Magic => "magic number of another Python version",
            Invalid::Flags => "unknown flag bits",
        })
    }
}

impl Header {
    /// Parse the first 16 bytes; `None` when there are fewer.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: Magic([b[0], b[1], b[2], b[3]]),
            flags: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            field: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
        })
    }

    /// A hash-based header.
    pub fn hashed(magic: Magic, mode: HashMode, hash: SourceHash) -> Header {
        Header { magic, flags: mode.flags(), field: hash }
    }

    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.magic.0);
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..].copy_from_slice(&self.field);
        out
    }

    /// The kind importlib would see, or why it would reject the flags.
    pub fn kind(self) -> Result<Kind, Invalid> {
        if self.flags & !(FLAG_HASH_BASED | FLAG_CHECK_SOURCE) != 0 {
            return Err(Invalid::Flags);
        }
        if self.flags & FLAG_HASH_BASED == 0 {
            let f = self.field;
            return Ok(Kind::Timestamp {
                mtime: u32::from_le_bytes([f[0], f[1], f[2], f[3]]),
                size: u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
            });
        }
        let mode = if self.flags & FLAG_CHECK_SOURCE != 0 { HashMode::Checked } else { HashMode::Unchecked };
        Ok(Kind::Hash { mode, hash: self.field })
    }
}

/// What the caller accepts as an up-to-date pyc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Only this hash mode.
    Only(HashMode),
    /// Either hash mode.
    AnyHash,
}

impl Accept {
    fn allows(self, mode: HashMode) -> bool {
        match self {
            Accept::Only(m) => m == mode,
            Accept::AnyHash => true,
        }
    }
}

/// The state of one pyc relative to its source and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Hash-based, right magic, hash matches, mode accepted.
    Fresh,
    /// Hash matches but the mode is not the accepted one: only the flags need rewriting.
    WrongMode(HashMode),
    /// Hash-based with the right magic but another source hash.
    Stale,
    /// A timestamp pyc: never trusted.
    Timestamp,
    /// Importlib would reject it.
    Invalid(Invalid),
}

/// Classify a pyc's leading bytes. `source_hash` is computed lazily: it is only needed
/// when the header is hash-based with the expected magic.
pub fn classify(
    pyc: &[u8],
    magic: Magic,
    accept: Accept,
    source_hash: impl FnOnce() -> SourceHash,
) -> Status {
    let Some(header) = Header::parse(pyc) else {
        return Status::Invalid(Invalid::Short);
    };
    if header.magic != magic {
        return Status::Invalid(Invalid::Magic);
    }
    match header.kind() {
        Err(why) => Status::Invalid(why),
        Ok(Kind::Timestamp { .. }) => Status::Timestamp,
        Ok(Kind::Hash { mode, hash }) => {
            if hash != source_hash() {
                Status::Stale
            } else if accept.allows(mode) {
                Status::Fresh
            } else {
                Status::WrongMode(mode)
            }
        }
    }
}

/// The `(mtime, size)` a timestamp pyc must hold for importlib to accept it for a source
/// whose `stat` gives `sec`, `nsec` and `size`, as `SourceLoader.get_code` and
/// `_validate_timestamp_pyc` compute them: `int()` of the float `st_mtime` (CPython builds
/// it as `sec + nsec * 1e-9`, which rounds a time less than about 120 ns before the next
/// second up to it) truncated towards zero, and the size, each cut to its low 32 bits
/// (`& 0xFFFFFFFF`).
pub fn timestamp_fields(sec: i64, nsec: i64, size: u64) -> (u32, u32) {
    let st_mtime = sec as f64 + nsec as f64 * 1e-9;
    // Two's complement low bits, as Python's `&` gives them for a negative time.
    (st_mtime.trunc() as i64 as u32, size as u32)
}

/// Lower-case hex of a byte string.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// `importlib.util.source_hash` printed by each real interpreter (see DESIGN.md and
    /// the probe in the integration tests, which re-checks every interpreter it finds).
    const VECTORS: &[(&str, HashVariant, &str, &str, &str, &str)] = &[
        // magic, variant, b"", b"abcdefgh", b"print('hello world')\n", b"threshold = 1\n"
        (
            "420d0d0a",
            HashVariant::Sip24,
            "85ee0caabd83b6a7",
            "4c1c3e8345b33d02",
            "19d220d9247b59d1",
            "f2a35a57f8ac5b3f",
        ),
        (
            "550d0d0a",
            HashVariant::Sip24,
            "81e4881b3643e8e9",
            "1ccec927de48c3ec",
            "d727fa9348f132c0",
            "d808761d1620bf9a",
        ),
        (
            "610d0d0a",
            HashVariant::Sip24,
            "ac0bb7c83e5b1c5f",
            "08acb926c79b8040",
            "d3d1c5017b39ab41",
            "5d3e8ff63cff3ae4",
        ),
        (
            "6f0d0d0a",
            HashVariant::Sip24,
            "8cc0cd2525e7fd27",
            "f3dc82f1450cade2",
            "87a3094fc5bae7df",
            "40be10e1997f98d6",
        ),
        (
            "a70d0d0a",
            HashVariant::Sip13,
            "738d9cd5d5e87f73",
            "a705b39c25edd8a5",
            "ce56bff1990d12e2",
            "028f346223a130a2",
        ),
        (
            "cb0d0d0a",
            HashVariant::Sip13,
            "baf18eedc9387a25",
            "8a99407cdd8ad4fc",
            "dc4531514d1535b3",
            "09d4eaa1a3e55a36",
        ),
        (
            "f30d0d0a",
            HashVariant::Sip13,
            "27ec6d312f93b814",
            "688580b078b36f08",
            "63db907b3d3f79b6",
            "aae409be20ab7178",
        ),
        (
            "2b0e0d0a",
            HashVariant::Sip13,
            "61f5b7cb653a6aa4",
            "77f83f2bcc25edda",
            "03f9948284034a20",
            "e81103e304af9886",
        ),
        (
            "520e0d0a",
            HashVariant::Sip13,
            "4a3c34e72b7ffc07",
            "5cd5b63b0688a970",
            "b55eaa8b9d98b8cb",
            "e60caad2269a0930",
        ),
    ];

    #[test]
    fn source_hash_matches_cpython_vectors() {
        for &(magic, variant, empty, abc, hello, threshold) in VECTORS {
            let m = Magic(unhex(magic).try_into().unwrap());
            let inputs: [&[u8]; 4] = [b"", b"abcdefgh", b"print('hello world')\n", b"threshold = 1\n"];
            for (input, want) in inputs.iter().zip([empty, abc, hello, threshold]) {
                assert_eq!(hex(&source_hash(variant, m, input)), want, "{magic} {input:?}");
            }
            // The other variant must not collide, or the probe could not tell them apart.
            let other = if variant == HashVariant::Sip13 { HashVariant::Sip24 } else { HashVariant::Sip13 };
            assert_ne!(hex(&source_hash(other, m, b"abcdefgh")), abc);
        }
    }

    #[test]
    fn magic_round_trip() {
        let m = Magic::from_number(3495);
        assert_eq!(m.0, [0xa7, 0x0d, 0x0d, 0x0a]);
        assert_eq!(m.number(), 3495);
        assert!(m.is_well_formed());
        assert_eq!(m.hash_key(), 0x0a0d_0da7);
    }

    #[test]
    fn header_round_trip_and_kinds() {
        let m = Magic::from_number(3531);
        let h = Header::hashed(m, HashMode::Checked, [1, 2, 3, 4, 5, 6, 7, 8]);
        let bytes = h.to_bytes();
        assert_eq!(&bytes[4..8], &[3, 0, 0, 0]);
        assert_eq!(Header::parse(&bytes), Some(h));
        assert_eq!(h.kind(), Ok(Kind::Hash { mode: HashMode::Checked, hash: [1, 2, 3, 4, 5, 6, 7, 8] }));
        let mut ts = bytes;
        ts[4] = 0;
        assert!(matches!(Header::parse(&ts).unwrap().kind(), Ok(Kind::Timestamp { .. })));
        // importlib treats "check source" without "hash based" as a timestamp pyc.
        ts[4] = 2;
        assert!(matches!(Header::parse(&ts).unwrap().kind(), Ok(Kind::Timestamp { .. })));
        ts[4] = 4;
        assert_eq!(Header::parse(&ts).unwrap().kind(), Err(Invalid::Flags));
        ts[4] = 0;
        ts[7] = 0x80;
        assert_eq!(Header::parse(&ts).unwrap().kind(), Err(Invalid::Flags));
        assert_eq!(Header::parse(&bytes[..15]), None);
    }

    #[test]
    fn timestamp_fields_as_importlib() {
        // int(os.stat(p).st_mtime) of CPython for these stat results.
        assert_eq!(timestamp_fields(1_700_000_000, 0, 6), (1_700_000_000, 6));
        assert_eq!(timestamp_fields(1_700_000_000, 500_000_000, 6), (1_700_000_000, 6));
        assert_eq!(timestamp_fields(1_700_000_000, 999_999_999, 6), (1_700_000_001, 6));
        assert_eq!(timestamp_fields(-2, 500_000_000, 6), (u32::MAX, 6));
        assert_eq!(timestamp_fields(1_700_000_000 + (1 << 32), 0, (1 << 32) + 6), (1_700_000_000, 6));
    }

    #[test]
    fn classify_covers_every_status() {
        let m = Magic::from_number(3495);
        let src = b"x = 1\n";
        let good = source_hash(HashVariant::Sip13, m, src);
        let checked = Header::hashed(m, HashMode::Checked, good).to_bytes();
        let unchecked = Header::hashed(m, HashMode::Unchecked, good).to_bytes();
        let hash = || good;
        let checked_only = Accept::Only(HashMode::Checked);
        assert_eq!(classify(&checked, m, checked_only, hash), Status::Fresh);
        assert_eq!(classify(&unchecked, m, checked_only, hash), Status::WrongMode(HashMode::Unchecked));
        assert_eq!(classify(&unchecked, m, Accept::AnyHash, hash), Status::Fresh);
        assert_eq!(classify(&checked, m, checked_only, || [0; 8]), Status::Stale);
        assert_eq!(
            classify(&checked, Magic::from_number(3531), checked_only, hash),
            Status::Invalid(Invalid::Magic)
        );
        assert_eq!(classify(&checked[..10], m, checked_only, hash), Status::Invalid(Invalid::Short));
        let mut ts = checked;
        ts[4] = 0;
        assert_eq!(classify(&ts, m, checked_only, || unreachable!()), Status::Timestamp);
    }
}
