//! Counters: per tier for a run (atomics, bumped from any thread), and kept over time in
//! `DIR/stats.json` (added to under a lock at the end of each run), with what automatic
//! pruning needs: the size after the last prune and the bytes stored since.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::disk::{DiskTier, ItemError};

const FILE: &str = "stats.json";
/// The identity of `stats.json` as last written (see [`identity`]).
const ID_FILE: &str = "stats.id";
const FORMAT: u32 = 1;
/// `stats.json` holds a few counters per tier: anything larger is not hashpyc's.
const MAX_FILE: u64 = 1 << 20;

/// One tier's counts in a run.
#[derive(Debug, Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    pub damaged: AtomicU64,
    /// Requests sent again after a transient failure (remote tiers).
    pub retries: AtomicU64,
    /// Pycs compiled without a lookup, lookups having stalled (see
    /// `pool::schedule::Backlog`): neither hits nor misses.
    pub late: AtomicU64,
}

/// Counts as numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub damaged: u64,
    pub retries: u64,
    pub late: u64,
}

impl Counters {
    pub fn totals(&self) -> Totals {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            hits: g(&self.hits),
            misses: g(&self.misses),
            stores: g(&self.stores),
            errors: g(&self.errors),
            timeouts: g(&self.timeouts),
            damaged: g(&self.damaged),
            retries: g(&self.retries),
            late: g(&self.late),
        }
    }
}

impl Totals {
    /// `1 hit, 3 misses, 1 store, 0 damaged, 0 errors, 0 timeouts` (`rate` after the
    /// misses; with `retries`, a remote tier's, `, 2 retries` at the end; then `, 11 late`
    /// when pycs were compiled without a lookup), as `cache stats` and `compile -v` print a
    /// tier's counts.
    pub fn describe(&self, rate: &str, retries: bool) -> String {
        use crate::report::plural;
        format!(
            "{}, {}{rate}, {}, {} damaged, {}, {}{}",
            plural(self.hits, "hit", "hits"),
            plural(self.misses, "miss", "misses"),
            plural(self.stores, "store", "stores"),
            self.damaged,
            plural(self.errors, "error", "errors"),
            plural(self.timeouts, "timeout", "timeouts"),
            if retries { format!(", {}", plural(self.retries, "retry", "retries")) } else { String::new() },
        ) + &if self.late > 0 { format!(", {} late", self.late) } else { String::new() }
    }

    fn add(&mut self, o: &Totals) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.stores += o.stores;
        self.errors += o.errors;
        self.timeouts += o.timeouts;
        self.damaged += o.damaged;
        self.retries += o.retries;
        self.late += o.late;
    }
}

/// What `DIR/stats.json` holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Recorded {
    pub format: u32,
    /// When counting started (Unix seconds).
    pub since: u64,
    /// Compile runs that used the cache.
    pub runs: u64,
    /// Counts per tier (`local`, `remote`) since `since`.
    pub tiers: BTreeMap<String, Totals>,
    /// Entry bytes on disk after the last prune (or scan), and stored since.
    pub size_at_prune: u64,
    pub bytes_since_prune: u64,
    /// When the last build that stored at least as many entries as it hit started (Unix
    /// nanoseconds): a hit on an entry last marked before it marks it used again.
    pub generation: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The recorded statistics (empty when there are none or they do not parse).
pub fn read(tier: &DiskTier) -> Recorded {
    read_in_place(tier).0
}

/// The identity of `stats.json` as hashpyc last wrote it in place: its inode and its
/// change time after the rename, which no one can set. A copy of the file (an archive
/// restored over the cache, a `cp`) is a new inode with a new change time, even where the
/// archive keeps the old modification time.
fn identity(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{} {} {}\n", meta.ino(), meta.ctime(), meta.ctime_nsec())
}

/// [`read`], and whether its `stats.json` was restored or copied since hashpyc last wrote it
/// there: a valid one whose identity is not the one `stats.id` recorded (an archive
/// restored over the cache, a `cp`). False when it is in place, and when there is none to
/// tell by (missing, not hashpyc's or garbled).
pub fn read_restored(tier: &DiskTier) -> (Recorded, bool) {
    let (r, in_place) = read_in_place(tier);
    let restored = r.format == FORMAT && !in_place;
    (r, restored)
}

/// [`read`], and whether `stats.json` is the file hashpyc last wrote there (its identity
/// is the one `stats.id` recorded): when it is not, it was restored or copied from another
/// time, and the size it records says nothing of the entries there now.
fn read_in_place(tier: &DiskTier) -> (Recorded, bool) {
    // Bounded and never blocking: a FIFO or a huge file in its place is no statistics.
    let Some((data, meta)) = tier.read_own_file_meta(FILE, MAX_FILE) else {
        return (Recorded::default(), false);
    };
    let r = serde_json::from_slice::<Recorded>(&data).ok().filter(|r| r.format == FORMAT).unwrap_or_default();
    let in_place = tier.read_own_file(ID_FILE, 256).is_some_and(|id| id == identity(&meta).as_bytes());
    (r, in_place)
}

fn write(tier: &DiskTier, r: &Recorded) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(r).map_err(std::io::Error::other)?;
    // Readable (and, in a group-writable cache, writable) by the other users of the cache.
    let meta = tier.write_own_file(FILE, &text)?;
    // Best effort: without it, the next run measures the entries.
    let _ = tier.write_own_file(ID_FILE, identity(&meta).as_bytes());
    Ok(())
}

/// What the recorded size says of the size limit after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Within it.
    Under,
    /// Passed: prune.
    Passed,
    /// Not known: `stats.json` was missing, not hashpyc's or garbled (removed by hand, left
    /// out of a CI cache's restore, half-written by a full disk), or not the file hashpyc
    /// last wrote (an older archive restored over the cache), so the size since the last
    /// prune is not known either: measure the entries (the counts are kept).
    Unknown,
}

/// Add a run's counts (per tier) and stored bytes; what the size limit now is, and why the
/// statistics could not be kept, if they could not (naming the file): the limit is then
/// [`Limit::Unknown`] when they could not be read either, so that the entries are measured.
pub fn record(
    tier: &DiskTier,
    runs: &[(&str, Totals)],
    stored: u64,
    max_size: u64,
    generation: Option<u64>,
) -> (Limit, Option<ItemError>) {
    let recorded = tier.lock("stats.lock", true, || {
        let (mut r, in_place) = read_in_place(tier);
        let known = r.format == FORMAT;
        if !known {
            r = Recorded { format: FORMAT, since: now(), ..Recorded::default() };
        }
        r.runs += 1;
        for (name, t) in runs {
            r.tiers.entry((*name).to_string()).or_default().add(t);
        }
        r.bytes_since_prune += stored;
        r.generation = r.generation.max(generation.unwrap_or(0));
        let written = write(tier, &r);
        let limit = if !known || !in_place {
            Limit::Unknown
        } else if r.size_at_prune + r.bytes_since_prune > max_size {
            Limit::Passed
        } else {
            Limit::Under
        };
        (limit, written.err())
    });
    match recorded {
        Ok(Some((limit, problem))) => {
            (limit, problem.map(|source| ItemError { verb: "write", path: tier.root().join(FILE), source }))
        }
        Ok(None) => (Limit::Unknown, None),
        Err(e) => (Limit::Unknown, Some(e)),
    }
}

/// After a prune or a scan: the entries now take `size` bytes.
pub fn pruned(tier: &DiskTier, size: u64) {
    tier.locked("stats.lock", true, || {
        let mut r = read(tier);
        if r.format != FORMAT {
            r = Recorded { format: FORMAT, since: now(), ..Recorded::default() };
        }
        r.size_at_prune = size;
        r.bytes_since_prune = 0;
        let _ = write(tier, &r);
    });
}
