//! The cache entry: one self-checking envelope, the same in every tier (after ccache's
//! `CacheEntry`). A reader trusts nothing in it: a wrong magic or format, a key that is not
//! the one asked for, a checksum mismatch, a payload that does not decompress to its
//! declared size or does not parse — each is `Damage`, a miss that is counted and then
//! replaced by the compile's result.
//!
//! Layout (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 0–7 | magic `HPYCACHE` |
//! | 8–9 | format version (1) |
//! | 10 | kind: 1 compiled body, 2 compile failure, 3 path-dependent marker |
//! | 11 | compression: 0 none, 1 zstd |
//! | 12–43 | the entry's key (BLAKE3, 32 bytes) |
//! | 44–47 | payload length, uncompressed |
//! | 48–51 | payload length, as stored |
//! | 52– | payload |
//! | last 32 | BLAKE3 of everything before it |
//!
//! Payloads: a body is the embedded path it was compiled with (`co_filename`, as marshal
//! holds it), the warnings that level's compile raised, and the marshal data; a failure is
//! the embedded path and the failure as JSON; a marker is empty and says "this source's
//! bytes depend on its path: look for the entry keyed by the path too".

use thiserror::Error;

use crate::pool::{CompileFailure, Warning};

pub const MAGIC: [u8; 8] = *b"HPYCACHE";
pub const FORMAT: u16 = 1;
const HEAD: usize = 52;
const SUM: usize = 32;
/// The largest payload an entry may decode to, in every tier: as large as a remote entry
/// may be (`remote::MAX_ENTRY`), when the largest pyc of CPython 3.15's standard library is
/// a few MiB. A small compressed entry declaring or decoding to more (a decompression bomb)
/// is damaged: it is decoded no further than this, and, with the bodies remote lookups are
/// reading, only while those in flight hold less than `remote::MAX_READING` in all.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// No entry is larger (a body of a huge generated module is a few MiB): a larger file where
/// an entry should be is damaged, never read (the local tier; remote tiers, whose answers
/// come from another machine, refuse far less: `remote::MAX_ENTRY`).
pub const MAX_ENTRY: u64 = 512 << 20;

/// A cache key: BLAKE3 of everything the bytes depend on (see `cache::Keys`).
pub type Key = [u8; 32];

/// What an entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// One optimization level's marshal data, compiled with `filename` as `co_filename`.
    Body { filename: Vec<u8>, warnings: Vec<Warning>, body: Vec<u8> },
    /// The source does not compile (messages may hold `filename`).
    Failure { filename: Vec<u8>, failure: CompileFailure },
    /// The body depends on the embedded path: see the entry keyed by the path too.
    PathDependent,
}

/// How payloads are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

/// Why an entry cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Damage {
    #[error("shorter than an entry")]
    Short,
    #[error("not a hashpyc cache entry")]
    Magic,
    #[error("format version {0}, not {FORMAT}")]
    Format(u16),
    #[error("it is the entry of another key")]
    Key,
    #[error("checksum mismatch")]
    Checksum,
    #[error("unknown kind {0}")]
    Kind(u8),
    #[error("unknown compression {0}")]
    Compression(u8),
    #[error("the payload does not decompress to its declared size")]
    Decompress,
    #[error("the payload does not parse")]
    Payload,
    #[error("the payload decodes to more than the {} an entry may hold", super::manage::human_size(MAX_PAYLOAD as u64))]
    TooLarge,
    #[error(
        "decoding it would pass the {} the lookups in flight may hold",
        super::manage::human_size(super::remote::MAX_READING)
    )]
    Busy,
}

impl Payload {
    fn kind(&self) -> u8 {
        match self {
            Payload::Body { .. } => 1,
            Payload::Failure { .. } => 2,
            Payload::PathDependent => 3,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Payload::Body { filename, warnings, body } => {
                put_bytes(&mut out, filename);
                out.extend_from_slice(&(warnings.len().min(u16::MAX as usize) as u16).to_le_bytes());
                for w in warnings.iter().take(u16::MAX as usize) {
                    put_bytes(&mut out, w.category.as_bytes());
                    out.extend_from_slice(&w.line.to_le_bytes());
                    put_bytes(&mut out, w.message.as_bytes());
                }
                out.reserve(body.len() + 4);
                put_bytes(&mut out, body);
            }
            Payload::Failure { filename, failure } => {
                put_bytes(&mut out, filename);
                out.extend_from_slice(&serde_json::to_vec(failure).expect("failures serialize"));
            }
            Payload::PathDependent => {}
        }
        out
    }

    /// The payload `data` holds; a body is moved out of `data`, not copied.
    fn decode(kind: u8, mut data: Vec<u8>) -> Result<Payload, Damage> {
        let all = data.len();
        let mut r = Reader { data: &data };
        let p = match kind {
            1 => {
                let filename = r.bytes()?.to_vec();
                let n = r.u16()?;
                let mut warnings = Vec::with_capacity(usize::from(n).min(64));
                for _ in 0..n {
                    let category = String::from_utf8_lossy(r.bytes()?).into_owned();
                    let line = r.u32()? as i32;
                    let message = String::from_utf8_lossy(r.bytes()?).into_owned();
                    // The level is the entry's own: the caller knows it.
                    warnings.push(Warning { category, line, message, level: 0 });
                }
                let n = r.bytes()?.len();
                if !r.data.is_empty() {
                    return Err(Damage::Payload);
                }
                data.drain(..all - n);
                Payload::Body { filename, warnings, body: data }
            }
            2 => {
                let filename = r.bytes()?.to_vec();
                let failure = serde_json::from_slice(r.data).map_err(|_| Damage::Payload)?;
                Payload::Failure { filename, failure }
            }
            3 if data.is_empty() => Payload::PathDependent,
            3 => return Err(Damage::Payload),
            other => return Err(Damage::Kind(other)),
        };
        Ok(p)
    }
}

/// How many bytes `payload` takes in an entry, uncompressed: what a reader decodes, and
/// refuses past [`MAX_PAYLOAD`] (a body's counted without encoding it).
pub fn payload_len(payload: &Payload) -> usize {
    match payload {
        Payload::Body { filename, warnings, body } => {
            let warnings: usize = warnings
                .iter()
                .take(u16::MAX as usize)
                .map(|w| 4 + w.category.len() + 4 + 4 + w.message.len())
                .sum();
            4 + filename.len() + 2 + warnings + 4 + body.len()
        }
        other => other.encode().len(),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Damage> {
        if self.data.len() < n {
            return Err(Damage::Payload);
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, Damage> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Damage> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Damage> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

thread_local! {
    // One zstd context per thread: making one per entry costs more than compressing it.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// zstd level 1: most of zstd's ratio on marshal data at a fraction of the CPU (see the
/// README's cache section for the measurements).
const ZSTD_LEVEL: i32 = 1;

fn compress(raw: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|c| {
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        c.as_mut()?.compress(raw).ok()
    })
}

/// Decode `stored` (one zstd frame) to the `raw_len` bytes it declares, streaming: never
/// more than that, the buffer growing as data comes (a declared length is not trusted with
/// an allocation) and each growth held in `held`, refused when the lookups in flight would
/// pass their budget.
fn decompress(stored: &[u8], raw_len: usize, held: &mut super::remote::Held) -> Result<Vec<u8>, Damage> {
    use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};
    DECOMPRESSOR.with_borrow_mut(|d| {
        if d.is_none() {
            *d = DCtx::try_create();
        }
        let d = d.as_mut().ok_or(Damage::Decompress)?;
        d.reset(ResetDirective::SessionOnly).map_err(|_| Damage::Decompress)?;
        let mut input = InBuffer::around(stored);
        let mut out: Vec<u8> = Vec::new();
        loop {
            if out.len() == out.capacity() {
                // One byte past the declared size, to see a payload longer than declared.
                let more = (out.capacity() * 2).max(64 << 10).min(raw_len + 1) - out.capacity();
                if more == 0 {
                    return Err(Damage::Decompress);
                }
                if !held.grow(more as u64) {
                    return Err(Damage::Busy);
                }
                out.reserve_exact(more);
            }
            let before = (input.pos(), out.len());
            let left = d
                .decompress_stream(&mut OutBuffer::around_pos(&mut out, before.1), &mut input)
                .map_err(|_| Damage::Decompress)?;
            if left == 0 {
                break;
            }
            // No progress with room to write: the frame is cut short.
            if (input.pos(), out.len()) == before {
                return Err(Damage::Decompress);
            }
        }
        if input.pos() != stored.len() || out.len() != raw_len {
            return Err(Damage::Decompress);
        }
        Ok(out)
    })
}

/// The stored bytes of an entry for `key`.
pub fn encode(key: &Key, payload: &Payload, compression: Compression) -> Vec<u8> {
    let raw = payload.encode();
    let raw_len = raw.len();
    let (code, stored) = match compression {
        Compression::Zstd if !raw.is_empty() => match compress(&raw) {
            Some(z) if z.len() < raw.len() => (1u8, z),
            _ => (0u8, raw),
        },
        _ => (0u8, raw),
    };
    let mut out = Vec::with_capacity(HEAD + stored.len() + SUM);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.push(payload.kind());
    out.push(code);
    out.extend_from_slice(key);
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
    out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    out.extend_from_slice(&stored);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Read and verify the entry stored for `key`. Its payload is decoded to at most
/// [`MAX_PAYLOAD`] bytes, held in the budget of the lookups in flight while it is decoded.
pub fn decode(key: &Key, data: &[u8]) -> Result<Payload, Damage> {
    if data.len() < HEAD + SUM {
        return Err(Damage::Short);
    }
    if data[..8] != MAGIC {
        return Err(Damage::Magic);
    }
    let format = u16::from_le_bytes([data[8], data[9]]);
    if format != FORMAT {
        return Err(Damage::Format(format));
    }
    let (kind, code) = (data[10], data[11]);
    if data[12..44] != key[..] {
        return Err(Damage::Key);
    }
    let raw_len = u32::from_le_bytes([data[44], data[45], data[46], data[47]]) as usize;
    let stored_len = u32::from_le_bytes([data[48], data[49], data[50], data[51]]) as usize;
    if HEAD + stored_len + SUM != data.len() {
        return Err(Damage::Short);
    }
    let (signed, sum) = data.split_at(HEAD + stored_len);
    if blake3::hash(signed).as_bytes()[..] != sum[..] {
        return Err(Damage::Checksum);
    }
    let stored = &signed[HEAD..];
    if !matches!(code, 0 | 1) {
        return Err(Damage::Compression(code));
    }
    if raw_len > MAX_PAYLOAD {
        return Err(Damage::TooLarge);
    }
    let mut held = super::remote::Held::default();
    let raw = match code {
        0 if raw_len == stored_len => {
            if !held.grow(raw_len as u64) {
                return Err(Damage::Busy);
            }
            stored.to_vec()
        }
        0 => return Err(Damage::Decompress),
        _ => decompress(stored, raw_len, &mut held)?,
    };
    Payload::decode(kind, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Payload {
        Payload::Body {
            filename: b"/app/pkg/m.py".to_vec(),
            warnings: vec![Warning {
                category: "SyntaxWarning".into(),
                line: 3,
                message: "\"is\" with 'int' literal".into(),
                level: 0,
            }],
            body: b"\xe3\x00\x00 marshal data ".repeat(40),
        }
    }

    #[test]
    fn round_trips_every_kind_and_compression() {
        let key = [7u8; 32];
        let failure = Payload::Failure {
            filename: b"m.py".to_vec(),
            failure: CompileFailure {
                kind: "SyntaxError".into(),
                message: "invalid syntax".into(),
                line: Some(1),
                offset: Some(4),
                end_line: None,
                end_offset: None,
                text: "x = = 1".into(),
                warnings: Vec::new(),
                failed_level: None,
            },
        };
        for p in [body(), failure, Payload::PathDependent] {
            assert_eq!(payload_len(&p), p.encode().len());
            for c in [Compression::None, Compression::Zstd] {
                let data = encode(&key, &p, c);
                assert_eq!(decode(&key, &data), Ok(p.clone()));
            }
        }
        let z = encode(&key, &body(), Compression::Zstd);
        assert!(z.len() < encode(&key, &body(), Compression::None).len(), "repetitive data compresses");
    }

    /// A payload that decodes to more than it declares, or than an entry may hold, is
    /// damaged, whatever its header says.
    #[test]
    fn bombs_are_not_decoded() {
        let key = [3u8; 32];
        let big =
            Payload::Body { filename: b"/x.py".to_vec(), warnings: vec![], body: vec![0; MAX_PAYLOAD + 1] };
        let bomb = encode(&key, &big, Compression::Zstd);
        assert_eq!(decode(&key, &bomb), Err(Damage::TooLarge));
        // The same frame declaring 1 MiB: decoded no further than that.
        let mut lying = bomb[..bomb.len() - SUM].to_vec();
        lying[44..48].copy_from_slice(&(1u32 << 20).to_le_bytes());
        let sum = blake3::hash(&lying);
        lying.extend_from_slice(sum.as_bytes());
        assert_eq!(decode(&key, &lying), Err(Damage::Decompress));
    }

    #[test]
    fn every_damage_is_detected() {
        let key = [1u8; 32];
        for c in [Compression::None, Compression::Zstd] {
            let good = encode(&key, &body(), c);
            assert_eq!(decode(&[2u8; 32], &good), Err(Damage::Key));
            for cut in [0, 10, HEAD, good.len() - 1] {
                assert!(decode(&key, &good[..cut]).is_err(), "truncated at {cut}");
            }
            for i in 0..good.len() {
                let mut bad = good.clone();
                bad[i] ^= 0x40;
                assert!(decode(&key, &bad).is_err(), "bit flip at {i} went unnoticed");
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(decode(&key, &longer).is_err());
        }
    }
}
