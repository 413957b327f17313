//! Pycs whose whole body an earlier run found good, so that a run reads only their header.
//!
//! `compile` and `check` never call a truncated or garbage pyc fresh (CPython fails the
//! import on bad marshal data; it does not fall back to the source), so they read every
//! pyc in full and walk its code object: on an unchanged tree most of their time is the
//! kernel copying the pycs' bytes. This memory keeps, per magic number, in the state
//! directory, the file identity and change times of each pyc whose body was found good
//! (a code object, embedding the path a compile would embed, with nothing after it). A
//! pyc with the same filesystem, inode, size, mtime and ctime has the same bytes, as git's
//! index assumes of a work tree: every write, truncation, `utime` or `chmod` moves a ctime
//! to the current time and no system call sets it back, and a new file at the same inode
//! has a new one, so a pyc changed since is read in full again; its header is always read
//! and checked against the source. What the kernel does not record is not seen: a write
//! through a shared mapping into a page already written moves no ctime on Linux (git,
//! make and rsync's quick check share that blind spot). Only filesystems that keep a
//! POSIX change time are trusted (`filesystem_identity`), and only a memory this user
//! alone can write (`read_own`).
//!
//! What a clock tick cannot tell apart is a change in the same tick as the ctime seen. A
//! pyc is therefore recorded only when its ctime is [`settle_seconds`] older than the
//! moment the run opened it (git's "racily clean" entries): a pyc a run just wrote is
//! read in full by the next run too, and recorded then.
//!
//! The files (`verified-<magic>/<build>/`, split by inode into `SHARDS` files, each read
//! only when one of its pycs is looked up) are written atomically at the end of a run
//! that learnt something, merged with what concurrent runs saved meanwhile; entries
//! unused for [`EXPIRE_DAYS`] days are dropped. Each hashpyc build (see `version`) keeps
//! its own directory, so two builds used in turn over one state directory do not erase
//! each other's memory; another build's directory is removed once unwritten for
//! [`EXPIRE_DAYS`] days. A damaged file is ignored: the pycs are only read in full again. `HASHPYC_NO_STATE=1`, or
//! no state directory, turns the memory off.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use siphasher::sip::SipHasher13;

use crate::pyc::{self, Magic};

/// Entries not used by any run for this many days are dropped.
pub const EXPIRE_DAYS: u32 = 30;
/// At most about this many entries are kept (64 bytes each), the most recently used.
const MAX_ENTRIES: usize = 512_000;
/// A pyc whose ctime is less than this many seconds before the run opened it is not
/// recorded (`HASHPYC_SETTLE_SECONDS` changes it): more than the coarsest timestamp
/// granularity of common filesystems (2 s).
const SETTLE_SECONDS: u64 = 3;

const FILE_MAGIC: &[u8; 8] = b"HPYCVRF1";
const ENTRY_LEN: usize = 64;

/// What identifies one state of one pyc, and the path it must embed (hashed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The filesystem's identity (`filesystem_identity`): device number and `f_fsid`.
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    name: u64,
}

impl Stamp {
    /// `fs`: the filesystem's identity (see [`filesystem_identity`]), in place of the bare
    /// device number.
    fn of(meta: &std::fs::Metadata, fs: u64, name: u64) -> Stamp {
        Stamp {
            dev: fs,
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec() as u32),
            ctime: (meta.ctime(), meta.ctime_nsec() as u32),
            name,
        }
    }

    /// Whether the last change is `settle` seconds or more before `now` (nanoseconds
    /// since the epoch): no change in its clock tick can still be to come.
    fn settled(&self, now: i128, settle: u64) -> bool {
        let ctime = i128::from(self.ctime.0) * 1_000_000_000 + i128::from(self.ctime.1);
        ctime + i128::from(settle) * 1_000_000_000 <= now
    }
}

/// The hash of the embedded path a pyc must hold (marshal's bytes of `co_filename`).
pub fn name_hash(name: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(0x6861_7368_7079_6321, 0);
    h.write(name);
    h.finish()
}

/// The memory is split into this many files by inode, each read only when a pyc of it is
/// looked up: a run over a few files (a pre-commit hook) reads a few small files however
/// many pycs other trees have recorded.
const SHARDS: usize = 256;

type Shard = HashMap<(u64, u64), (Stamp, u32)>;

/// The shard of a pyc's entry.
fn shard_of(dev: u64, ino: u64) -> usize {
    ((ino ^ dev.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % SHARDS
}

/// The remembered pycs of one magic number, for one run.
pub struct Verified {
    /// `verified-<magic>/<build>/`, holding `00.bin` to `ff.bin` (see [`build_tag`]).
    dir: PathBuf,
    shards: Vec<OnceLock<Shard>>,
    /// Stamps to save: found good and settled, or known and last used before today.
    learnt: Mutex<Vec<Stamp>>,
    today: u32,
    settle: u64,
    vouched: AtomicUsize,
}

impl Verified {
    fn load(dir: &Path, magic: Magic, settle: u64) -> Verified {
        Verified {
            dir: dir.join(format!("verified-{magic}")).join(build_tag()),
            shards: (0..SHARDS).map(|_| OnceLock::new()).collect(),
            learnt: Mutex::new(Vec::new()),
            today: today(),
            settle,
            vouched: AtomicUsize::new(0),
        }
    }

    fn shard_path(&self, shard: usize) -> PathBuf {
        self.dir.join(format!("{shard:02x}.bin"))
    }

    /// Whether the pyc in this state is known to have a good body embedding this name.
    fn vouches(&self, stamp: &Stamp) -> bool {
        let shard = shard_of(stamp.dev, stamp.ino);
        let known = self.shards[shard].get_or_init(|| read(&self.shard_path(shard)));
        match known.get(&(stamp.dev, stamp.ino)) {
            Some((known, day)) if known == stamp => {
                if *day < self.today {
                    self.learnt.lock().unwrap_or_else(|e| e.into_inner()).push(*stamp);
                }
                self.vouched.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Write back the shards this run learnt something for; a failure only costs full
    /// reads next time.
    fn save(&self) {
        let learnt = std::mem::take(&mut *self.learnt.lock().unwrap_or_else(|e| e.into_inner()));
        let mut by_shard: HashMap<usize, Vec<Stamp>> = HashMap::new();
        for s in learnt {
            by_shard.entry(shard_of(s.dev, s.ino)).or_default().push(s);
        }
        let cutoff = self.today.saturating_sub(EXPIRE_DAYS);
        for (shard, stamps) in by_shard {
            let path = self.shard_path(shard);
            // What other runs saved since this one loaded stays.
            let mut merged = read(&path);
            for s in stamps {
                merged.insert((s.dev, s.ino), (s, self.today));
            }
            merged.retain(|_, (_, day)| *day >= cutoff);
            let mut entries: Vec<(Stamp, u32)> = merged.into_values().collect();
            if entries.len() > MAX_ENTRIES / SHARDS {
                entries.sort_unstable_by_key(|(_, day)| std::cmp::Reverse(*day));
                entries.truncate(MAX_ENTRIES / SHARDS);
            }
            let bytes = encode(&entries);
            // Private, as the interpreter probes are (see `read_own`).
            if let Err(source) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&self.dir) {
                let e = crate::write::WriteError::CreateDir { path: self.dir.clone(), source };
                crate::target::state_write_failed(crate::target::StateLost::VerifiedPycs, &e);
                return;
            }
            let known = crate::write::Known { dir_exists: true, ..Default::default() };
            // A failure (a full disk) only costs full reads next time; warned of once.
            if let Err(e) = crate::write::write_atomic(&path, &[&bytes], 0o600, known) {
                crate::target::state_write_failed(crate::target::StateLost::VerifiedPycs, &e);
            }
        }
        self.drop_unused_builds();
    }

    /// Remove what other hashpyc builds left beside this build's files and have not
    /// written for [`EXPIRE_DAYS`] days (their directories, and the shard files builds
    /// before the per-build directories kept directly in `verified-<magic>/`): a build
    /// still in use (two versions in use side by side during an upgrade) keeps its own.
    fn drop_unused_builds(&self) {
        let (Some(parent), Some(own)) = (self.dir.parent(), self.dir.file_name()) else { return };
        let Ok(entries) = std::fs::read_dir(parent) else { return };
        let horizon = std::time::Duration::from_secs(u64::from(EXPIRE_DAYS) * 86_400);
        for entry in entries.flatten() {
            if entry.file_name() == own {
                continue;
            }
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            let unused = meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > horizon);
            if !unused {
                continue;
            }
            let _ = if meta.is_dir() {
                std::fs::remove_dir_all(entry.path())
            } else {
                std::fs::remove_file(entry.path())
            };
        }
    }
}

/// The directory of this build's files inside `verified-<magic>/`: a hash of
/// [`version`], so that two builds in use side by side (an upgrade rolled out machine by
/// machine over a shared state directory) each keep their memory instead of overwriting
/// the other's on every run.
fn build_tag() -> String {
    format!("{:016x}", checksum(version()))
}

/// How much of a pyc [`read_pyc`] read.
#[derive(Debug)]
pub enum PycRead {
    /// All of it, or of a large file as much as says what it is (see [`read_rest`]), and
    /// the number of bytes after those read (after the code object: trailing bytes); with
    /// a stamp to [`record`] once its body is found good, when the memory is on and the
    /// pyc settled.
    Whole(Option<Stamp>, u64),
    /// Only its header (or less, when it shrank meanwhile): the memory vouches for the
    /// rest.
    Header,
}

static OPEN: OnceLock<Vec<(Magic, Verified)>> = OnceLock::new();

/// Turn the memory on for this run's magic numbers (once per process), when there is a
/// usable state directory (in `docker run --read-only` there is none: then no pyc is
/// stat'ed for a memory that could not be saved).
pub fn open(state_dir: Option<&Path>, magics: impl IntoIterator<Item = Magic>) {
    let Some(dir) = state_dir.filter(|d| crate::target::state_dir_problem(d).is_none()) else { return };
    let settle = settle_seconds().unwrap_or(SETTLE_SECONDS);
    let mut open: Vec<(Magic, Verified)> = Vec::new();
    for magic in magics {
        if !open.iter().any(|(m, _)| *m == magic) {
            open.push((magic, Verified::load(dir, magic, settle)));
        }
    }
    let _ = OPEN.set(open);
}

/// `HASHPYC_SETTLE_SECONDS` (unset or empty: the default), or why its value is refused.
pub fn settle_seconds() -> Result<u64, String> {
    match std::env::var_os("HASHPYC_SETTLE_SECONDS").filter(|v| !v.is_empty()) {
        None => Ok(SETTLE_SECONDS),
        Some(v) => v.to_str().and_then(|t| t.trim().parse::<u64>().ok()).ok_or_else(|| {
            format!(
                "invalid HASHPYC_SETTLE_SECONDS {}: expected a whole number of seconds (default {SETTLE_SECONDS})",
                crate::report::ticked(std::path::Path::new(&v))
            )
        }),
    }
}

fn of(magic: Magic) -> Option<&'static Verified> {
    OPEN.get()?.iter().find(|(m, _)| *m == magic).map(|(_, v)| v)
}

/// Save what this run learnt (at its end).
pub fn save() {
    for (_, v) in OPEN.get().into_iter().flatten() {
        v.save();
    }
}

/// How many pycs this run read only the header of.
pub fn vouched() -> usize {
    OPEN.get().into_iter().flatten().map(|(_, v)| v.vouched.load(Ordering::Relaxed)).sum()
}

/// The `-v` line saying how many pycs this run read only the header of (none: None).
pub fn verbose_line() -> Option<String> {
    let n = vouched();
    (n > 0).then(|| {
        format!(
            "verified: {} unchanged since an earlier run found {} good: {} read only",
            crate::report::plural(n, "pyc", "pycs"),
            if n == 1 { "its body" } else { "their bodies" },
            if n == 1 { "its header" } else { "headers" }
        )
    })
}

/// Remember that the pyc of `stamp` has a good body (from [`PycRead::Whole`]).
pub fn record(magic: Magic, stamp: Stamp) {
    if let Some(v) = of(magic) {
        v.learnt.lock().unwrap_or_else(|e| e.into_inner()).push(stamp);
    }
}

/// What a freshness decision needs of a pyc's metadata besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct PycMeta {
    /// Its permission bits (and type), as `st_mode`.
    pub mode: u32,
    /// Its device and inode when it has more than one name (a hard link), else None.
    pub linked: Option<(u64, u64)>,
}

impl PycMeta {
    fn of(meta: &std::fs::Metadata) -> Self {
        PycMeta { mode: meta.mode(), linked: (meta.nlink() > 1).then(|| (meta.dev(), meta.ino())) }
    }
}

/// Read the pyc at `path` into `buf` (cleared first) for a freshness decision, for
/// `magic`, where it must embed the name whose [`name_hash`] is `name`: only its header
/// when the memory vouches for its body, else as much as [`read_rest`] reads. Anything
/// but a regular file is [`crate::io::not_regular`], as [`crate::io::read_regular_into`]
/// says.
pub fn read_pyc(
    path: &Path,
    buf: &mut Vec<u8>,
    magic: Magic,
    name: u64,
) -> std::io::Result<(PycRead, PycMeta)> {
    let Some(v) = of(magic) else {
        let (mut file, ended) = crate::io::read_regular_up_to(path, buf, FIRST_READ)?;
        let unread = if ended { 0 } else { read_rest(&mut file, buf, magic, None)? };
        let meta = file.metadata().map_or(PycMeta::default(), |m| PycMeta::of(&m));
        return Ok((PycRead::Whole(None, unread), meta));
    };
    buf.clear();
    let now = now_nanos();
    let mut file = crate::io::open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(crate::io::not_regular());
    }
    let mode = PycMeta::of(&meta);
    let Some(fs) = filesystem_identity(&file, meta.dev()) else {
        let unread = read_rest(&mut file, buf, magic, Some(meta.len()))?;
        return Ok((PycRead::Whole(None, unread), mode));
    };
    let stamp = Stamp::of(&meta, fs, name);
    if v.vouches(&stamp) {
        buf.resize(pyc::HEADER_LEN, 0);
        let n = crate::io::read_at_least(&mut file, buf, pyc::HEADER_LEN)?;
        buf.truncate(n);
        return Ok((PycRead::Header, mode));
    }
    let unread = read_rest(&mut file, buf, magic, Some(meta.len()))?;
    Ok((PycRead::Whole(stamp.settled(now, v.settle).then_some(stamp), unread), mode))
}

/// What [`read_rest`] reads of any file first: all of every pyc but the largest.
const FIRST_READ: usize = pyc::HEADER_LEN + (1 << 20);

/// Read on the pyc `file` of `magic` (of `size` bytes, when its metadata was read) into
/// `buf`, which holds what was read of it: all of a file of up to [`FIRST_READ`] bytes;
/// of a larger one, its body as far as its code object goes (doubling reads, as `inspect`
/// reads it), when its header is of `magic`. However large a file of garbage, a truncated
/// pyc or one followed by other bytes, no more of it is read than says so (a whole code
/// object is whole in what was read). The number of bytes after those read.
fn read_rest(
    file: &mut std::fs::File,
    buf: &mut Vec<u8>,
    magic: Magic,
    size: Option<u64>,
) -> std::io::Result<u64> {
    let mut want = FIRST_READ;
    if buf.len() < want && crate::io::read_up_to_direct(file, buf, want)? {
        return Ok(0);
    }
    let size = match size {
        Some(size) => size,
        None => {
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(crate::io::not_regular());
            }
            meta.len()
        }
    };
    // Another magic number says what the file is: its header is enough.
    if let Some((major, minor)) = crate::target::version_of_magic(magic)
        && buf.starts_with(&magic.0)
    {
        let layout = crate::marshal::CodeLayout::for_version(major, minor);
        while let Err(crate::marshal::MarshalError::Truncated) =
            crate::marshal::code_body(&buf[pyc::HEADER_LEN..], layout)
        {
            want = want.saturating_mul(2);
            if crate::io::read_up_to_direct(file, buf, want)? {
                return Ok(0);
            }
        }
    }
    Ok(size.saturating_sub(buf.len() as u64))
}

/// Filesystems whose ctime is a POSIX change time, set by the kernel on every change of a
/// file and never by a program (`statfs` `f_type`): local Linux filesystems, tmpfs,
/// overlayfs (Docker) and NFS (the server's change time). FAT and exFAT keep no change
/// time (their "ctime" is the creation time or the mtime), nor need FUSE filesystems, SMB
/// or 9p report one, and read-only images (squashfs, iso9660, erofs) report the stored
/// mtime: on those, and any filesystem not listed, every pyc is read whole.
const CHANGE_TIME_FILESYSTEMS: &[i64] = &[
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
    0x794C_7630, // overlayfs
    0x2FC1_2FC1, // zfs
    0xF2F5_2010, // f2fs
    0xCA45_1A4E, // bcachefs
    0x5265_4973, // reiserfs
    0x3153_464A, // jfs
    0x6969,      // nfs
    0x00C3_6400, // ceph
];

/// The identity of the filesystem of `file` (on device `dev`) that a pyc's entry is keyed
/// by, or None when that filesystem does not keep change times; asked once per device and
/// thread (one `fstatfs`). The device number alone is reused: a loop device holding
/// another image (whose files `mke2fs -d` gave ctimes in whole seconds and inode numbers by
/// layout) must not find the first image's entries, so the filesystem's `f_fsid` (from its
/// UUID on ext4, xfs and btrfs) is part of it.
fn filesystem_identity(file: &std::fs::File, dev: u64) -> Option<u64> {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<(u64, Option<u64>)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SEEN.with_borrow_mut(|seen| {
        if let Some(&(_, id)) = seen.iter().find(|(d, _)| *d == dev) {
            return id;
        }
        use std::os::fd::AsRawFd;
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: fstatfs fills the struct for an open descriptor, or fails.
        let id = (unsafe { libc::fstatfs(file.as_raw_fd(), st.as_mut_ptr()) } == 0)
            .then(|| {
                // SAFETY: fstatfs returned 0, so the struct is initialised.
                let st = unsafe { st.assume_init() };
                // Magic numbers are 32 bits; where `f_type` is a 32-bit signed type, undo
                // the sign extension.
                #[allow(clippy::unnecessary_cast)]
                let f_type = (st.f_type as i64) & 0xFFFF_FFFF;
                // SAFETY: fsid_t is two C ints (its fields are private in libc).
                let fsid: [libc::c_int; 2] = unsafe { std::mem::transmute(st.f_fsid) };
                CHANGE_TIME_FILESYSTEMS.contains(&f_type).then(|| {
                    use std::hash::Hasher;
                    let mut h = SipHasher13::new_with_keys(dev, f_type as u64);
                    h.write_i32(fsid[0]);
                    h.write_i32(fsid[1]);
                    h.finish()
                })
            })
            .flatten();
        seen.push((dev, id));
        id
    })
}

fn now_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

fn today() -> u32 {
    (now_nanos() / (86_400 * 1_000_000_000)) as u32
}

/// The header's version: entries are only trusted from this very hashpyc.
fn version() -> &'static [u8] {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            // The code that decides a body is good, so that a build whose validation
            // differs (during development the package version does not move) never trusts
            // another's entries.
            use std::hash::Hasher;
            let mut h = SipHasher13::new_with_keys(1, 2);
            for source in [
                &include_bytes!("marshal/valid.rs")[..],
                include_bytes!("marshal/mod.rs"),
                include_bytes!("plan.rs"),
                include_bytes!("check.rs"),
                include_bytes!("verified.rs"),
            ] {
                h.write(source);
            }
            format!("{}+{:016x}", env!("CARGO_PKG_VERSION"), h.finish())
        })
        .as_bytes()
}

fn checksum(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = SipHasher13::new_with_keys(0, 0);
    h.write(bytes);
    h.finish()
}

/// `HPYCVRF1`, the hashpyc version (a length byte and its bytes), the entry count (u64),
/// the entries (64 bytes each, little-endian), a SipHash-1-3 of everything before it.
fn encode(entries: &[(Stamp, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + entries.len() * ENTRY_LEN);
    out.extend_from_slice(FILE_MAGIC);
    out.push(version().len() as u8);
    out.extend_from_slice(version());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (s, day) in entries {
        for v in [s.dev, s.ino, s.size, s.mtime.0 as u64, s.ctime.0 as u64, s.name] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [s.mtime.1, s.ctime.1, *day, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let sum = checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The entries of the file at `path`: none when it is missing, damaged or of another
/// hashpyc version.
fn read(path: &Path) -> HashMap<(u64, u64), (Stamp, u32)> {
    crate::io::read_own(path).and_then(|b| decode(&b)).unwrap_or_default()
}

fn decode(bytes: &[u8]) -> Option<HashMap<(u64, u64), (Stamp, u32)>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if checksum(body).to_le_bytes() != sum {
        return None;
    }
    let rest = body.strip_prefix(FILE_MAGIC)?;
    let (&len, rest) = rest.split_first()?;
    let rest = rest.strip_prefix(version()).filter(|_| usize::from(len) == version().len())?;
    let (count, rest) = rest.split_at_checked(8)?;
    let count = usize::try_from(u64::from_le_bytes(count.try_into().ok()?)).ok()?;
    if rest.len() != count.checked_mul(ENTRY_LEN)? {
        return None;
    }
    let u64_at = |e: &[u8], i: usize| u64::from_le_bytes(e[i * 8..i * 8 + 8].try_into().unwrap());
    let u32_at = |e: &[u8], i: usize| u32::from_le_bytes(e[48 + i * 4..52 + i * 4].try_into().unwrap());
    let mut out = HashMap::with_capacity(count);
    for e in rest.chunks_exact(ENTRY_LEN) {
        let s = Stamp {
            dev: u64_at(e, 0),
            ino: u64_at(e, 1),
            size: u64_at(e, 2),
            mtime: (u64_at(e, 3) as i64, u32_at(e, 0)),
            ctime: (u64_at(e, 4) as i64, u32_at(e, 1)),
            name: u64_at(e, 5),
        };
        out.insert((s.dev, s.ino), (s, u32_at(e, 2)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64) -> Stamp {
        Stamp { dev: 7, ino, size: 100, mtime: (1, 2), ctime: (3, 4), name: 5 }
    }

    #[test]
    fn round_trip_and_damage() {
        let entries = vec![(stamp(1), 20_000), (stamp(2), 20_001)];
        let bytes = encode(&entries);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[&(7, 2)], (stamp(2), 20_001));
        for i in [0, 10, 30, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(decode(&bad).is_none(), "byte {i} flipped");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
        assert!(decode(&[]).is_none());
    }

    #[test]
    fn vouches_only_for_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let magic = Magic::from_number(3495);
        let v = Verified::load(dir.path(), magic, 3);
        v.learnt.lock().unwrap().extend((1..300).map(stamp));
        v.save();
        assert!(std::fs::read_dir(&v.dir).unwrap().count() > 200, "spread over the shards");
        let v = Verified::load(dir.path(), magic, 3);
        assert!(v.vouches(&stamp(1)));
        let changed = [
            Stamp { size: 99, ..stamp(1) },
            Stamp { mtime: (1, 3), ..stamp(1) },
            Stamp { ctime: (3, 5), ..stamp(1) },
            Stamp { name: 6, ..stamp(1) },
            Stamp { dev: 8, ..stamp(1) },
            stamp(1000),
        ];
        for s in changed {
            assert!(!v.vouches(&s), "{s:?}");
        }
        // Another magic number has its own file.
        assert!(!Verified::load(dir.path(), Magic::from_number(3571), 3).vouches(&stamp(1)));
    }

    #[test]
    fn only_filesystems_with_change_times_are_trusted() {
        // This machine's temporary directories (ext4, tmpfs, overlayfs in containers) do.
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("a")).unwrap();
        let dev = f.metadata().unwrap().dev();
        let id = filesystem_identity(&f, dev);
        assert!(id.is_some(), "{}", dir.path().display());
        assert_ne!(id, Some(dev), "the filesystem's identity, not the bare device number");
        // FAT (msdos/vfat), exFAT, FUSE, SMB, 9p, squashfs, iso9660 and erofs are not listed.
        for f_type in
            [0x4d44_i64, 0x2011_BAB0, 0x6573_5546, 0xFE53_4D42, 0x0102_1997, 0x7371_7368, 0x9660, 0xE0F5_E1E2]
        {
            assert!(!CHANGE_TIME_FILESYSTEMS.contains(&f_type), "{f_type:#x}");
        }
    }

    #[test]
    fn settled_needs_the_whole_margin() {
        let s = Stamp { ctime: (100, 500), ..stamp(1) };
        let at = |sec: i128, ns: i128| sec * 1_000_000_000 + ns;
        assert!(!s.settled(at(102, 999_999_999), 3));
        assert!(!s.settled(at(103, 499), 3));
        assert!(s.settled(at(103, 500), 3));
        assert!(s.settled(at(100, 500), 0));
        assert!(!s.settled(at(100, 499), 0), "a ctime in the future never settles");
    }

    #[test]
    fn old_entries_expire_and_used_ones_are_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let magic = Magic::from_number(3495);
        let v = Verified::load(dir.path(), magic, 3);
        let today = v.today;
        // Three pycs of one shard.
        let inos: Vec<u64> = (1..).filter(|&i| shard_of(7, i) == shard_of(7, 1)).take(3).collect();
        let path = v.shard_path(shard_of(7, 1));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let entries = vec![
            (stamp(inos[0]), today - EXPIRE_DAYS - 1),
            (stamp(inos[1]), today - 5),
            (stamp(inos[2]), today),
        ];
        std::fs::write(&path, encode(&entries)).unwrap();
        let v = Verified::load(dir.path(), magic, 3);
        assert!(v.vouches(&stamp(inos[1])), "known, used 5 days ago");
        v.save();
        let back = read(&path);
        assert_eq!(back.get(&(7, inos[1])).map(|e| e.1), Some(today), "renewed");
        assert!(!back.contains_key(&(7, inos[0])), "expired");
        assert!(back.contains_key(&(7, inos[2])));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "one shard written");
    }
}
