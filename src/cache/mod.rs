//! The bytecode cache (`--cache DIR`): a pipeline stage between `plan` and `pool`. Compiled
//! bodies (and failures) are stored under a key that does not depend on where the tree
//! lives, and a hit writes exactly the bytes a pristine compile at the destination path
//! would: the embedded path (`co_filename`) is rewritten in Rust by `marshal::relocate`,
//! which refuses whenever exactness is not certain (the entry is then looked up by path
//! too, or the file compiled).
//!
//! The key is BLAKE3 (never the pyc's SipHash, whose key is public) of: the cache format,
//! the bytecode recipe (a version bumped whenever the way bytes are produced changes, and
//! a hash of the worker script actually used), the interpreter's full identity (`sys.version`
//! with its build, hexversion, magic, cache tag, ABI flags, free-threading, the py_compile
//! calibration, the isolation), the optimization levels compiled up to this one (a level's
//! bytes may depend on those before it in the same request), and the source bytes. One
//! entry per level; checked and unchecked pycs share entries (only the header differs).
//!
//! Storage is a list of tiers walked in order (the local directory, `disk`; remote tiers
//! later); every tier holds the same self-checking envelopes (`entry`). Nothing a tier does
//! can fail a build: errors and damaged entries are misses, counted per tier.

pub mod disk;
pub mod entry;
pub mod manage;
pub mod remote;
pub mod stage;
pub mod stats;
pub mod tier;
mod upload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::marshal;
use crate::pool::{CompileFailure, Warning};
use crate::target::Target;
use disk::DiskTier;
use entry::{Compression, Key, Payload};
pub use stats::{Counters, Totals};
use tier::{Tier, TierError};

/// Bumped whenever worker isolation, the way bytes are produced or what the key covers
/// changes, so that no entry made the old way is ever served (2: each level of a file
/// compiled as if alone; 3: the interpreter's column positions and int-digits limit in
/// the key, so that entries a launcher with `-X no_debug_ranges` or
/// `int_max_str_digits=0` stored under the plain interpreter's key before are not served).
pub const RECIPE_VERSION: u32 = 3;

/// A remote tier that returns this many damaged entries in one run, more than the entries
/// it served whole, is switched off (a server or proxy answering garbage); fewer, or a
/// bucket with some damaged objects among many good ones, stays on, so that a build
/// replaces every damaged entry it finds.
const MAX_REMOTE_DAMAGED: u64 = 10;

/// How the cache is set up for a run.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    /// The local tier (`--cache DIR`).
    pub dir: Option<PathBuf>,
    /// Where `dir` came from when not from `--cache` (`HASHPYC_CACHE`, `` `cache` in
    /// `hashpyc.toml` line 1``), for the warning when it cannot be used.
    pub dir_from: Option<String>,
    /// The remote tier (`--cache-url URL`), opened once for the run when the settings are
    /// resolved (opening reads the AWS profile files and token file).
    pub remote: Option<Arc<dyn Tier>>,
    pub max_size: u64,
    pub read_only: bool,
    pub compression: Compression,
    /// One remote request's time limit.
    pub timeout: Duration,
    /// How long the end of a build waits for uploads still running.
    pub upload_wait: Duration,
}

/// `e` on one line, and, for a directory that cannot be used, where it was set when not by
/// `--cache` (`` (set by `cache` in `hashpyc.toml` line 1)``, `(set by HASHPYC_CACHE)`):
/// `compile`'s warning and the `cache` commands' error alike.
pub fn described(e: &CacheError, set_by: Option<&str>) -> String {
    let chain = crate::pool::schedule::error_chain(e);
    match (e, set_by) {
        (CacheError::Open { .. }, Some(from)) => format!("{chain} (set by {from})"),
        _ => chain,
    }
}

/// Where `dir` (or the nearest directory above it that exists) belongs to another user
/// than the one running and cannot be written by it: whose it is, and what to do. A
/// Docker BuildKit cache mount (`RUN --mount=type=cache,target=DIR`) is root's unless it is
/// given a `uid=`, and a `USER` that is not root then cannot store in it.
pub fn owner_hint(dir: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return None;
    }
    let (at, meta) = dir.ancestors().find_map(|d| std::fs::metadata(d).ok().map(|m| (d, m)))?;
    if meta.uid() == uid || !meta.is_dir() {
        return None;
    }
    let path = std::ffi::CString::new(at.as_os_str().as_bytes()).ok()?;
    // SAFETY: access(2) of a NUL-terminated path that outlives the call.
    if unsafe { libc::access(path.as_ptr(), libc::W_OK) } == 0 {
        return None;
    }
    Some(format!(
        "{} belongs to uid {} and is not writable by uid {uid}, which runs hashpyc (a Docker BuildKit \
         cache mount is root's unless it is given the user's uid: `RUN --mount=type=cache,target={},uid={uid}`); \
         or set HASHPYC_CACHE (or --cache) to a directory uid {uid} can write",
        crate::report::ticked(at),
        meta.uid(),
        crate::report::shown(at),
    ))
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cannot use {} as the bytecode cache", crate::report::ticked(path))]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} does not look like a hashpyc bytecode cache (no CACHEDIR.TAG written by hashpyc, or files that are not hashpyc's); refusing to touch it", crate::report::ticked(.0))]
    NotACache(PathBuf),
    /// A file or directory in the cache that could not be read or removed (`verb`): the
    /// reason in words.
    #[error(
        "cannot {verb} {} in the bytecode cache {}",
        crate::report::ticked(item),
        crate::report::ticked(path)
    )]
    Item {
        path: PathBuf,
        verb: &'static str,
        item: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the cache knows about one (source, target, levels).
#[derive(Debug)]
pub enum Found {
    /// Bodies for every requested level, relocated to the destination's embedded path,
    /// and the warnings their compiles raised.
    Hit {
        bodies: Vec<Vec<u8>>,
        warnings: Vec<Warning>,
    },
    /// The source does not compile.
    Failed(CompileFailure),
    Miss,
}

/// The tier that served an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Served {
    Local,
    Remote,
}

/// The pycs an entry stands for, in the counts: a body one (its level), a failure every
/// level of its request (`levels`), a path-dependent marker none (the body it points to
/// is counted).
fn weight(payload: &Payload, levels: u64) -> u64 {
    match payload {
        Payload::Body { .. } => 1,
        Payload::Failure { .. } => levels,
        Payload::PathDependent => 0,
    }
}

/// The key inputs fixed for a target.
struct TargetKeys {
    prefix: blake3::Hasher,
    /// How to relocate its bodies; None for versions the rewriter has not been validated
    /// on (their entries are keyed by path too).
    rules: Option<marshal::Rules>,
    /// Its code objects' layout, to check a body served at its own path.
    layout: marshal::CodeLayout,
}

/// The local directory and its run counts.
struct Local {
    disk: DiskTier,
    counts: Counters,
    /// Storing failed for the whole directory (a full or read-only disk): stop trying, say
    /// so once.
    stores_off: AtomicBool,
    problem: Mutex<Option<String>>,
    /// Entries that could not be stored for a reason of their own (a directory in an
    /// entry's place), and the first one's path and reason: stores go on.
    entry_failures: AtomicU64,
    entry_problem: Mutex<Option<String>>,
    bytes_stored: AtomicU64,
    /// The first directory of the cache found unreadable (permission denied), and why: the
    /// cache is then neither measured nor pruned (one warning).
    unreadable: Mutex<Option<String>>,
    /// The entries this run used without storing them: those it hit, and those a store
    /// found already there (a remembered failure, a path-dependent marker). As recently
    /// used as those it stores, for pruning (reads refresh an entry's time only when
    /// something may be more recent: see `refresh_before`).
    used: Mutex<Vec<Key>>,
    /// When this run opened the cache, and the recorded start of the last build that
    /// stored at least as many entries as it hit: a hit on an entry marked before that
    /// marks it used now, so that it outlives the entries such a build stored when pruned
    /// (a warm build of a tree already marked since writes nothing).
    started: std::time::SystemTime,
    refresh_before: std::time::SystemTime,
    /// The directory was restored or copied since hashpyc last wrote it (its `stats.json`
    /// is a copy, when the run opened it): what the warning of damaged entries blames.
    restored: bool,
}

impl Local {
    /// Remember `e`, a directory of the cache that cannot be read, for the run's warning
    /// (the first one).
    fn unreadable(&self, e: &disk::ItemError) {
        self.unreadable.lock().expect("cache lock").get_or_insert_with(|| {
            format!(
                "cannot {} {}: {}",
                e.verb,
                crate::report::ticked(&e.path),
                crate::io::io_reason(&e.source)
            )
        });
    }
}

/// A remote tier, switched off for the rest of the run at its first failure (a transient
/// one once its retries are spent).
pub(crate) struct Remote {
    tier: Arc<dyn Tier>,
    counts: Counters,
    /// How lookups, and uploads, are retried.
    lookups: remote::retry::Policy,
    uploads: remote::retry::Policy,
    off: AtomicBool,
    problem: Mutex<Option<String>>,
    /// Per target (by index), whether its lookups stopped on a cold remote: each target
    /// has keys of its own, so entries the remote holds for one interpreter say nothing of
    /// another (none in unit tests opened without targets).
    cold: Vec<Cold>,
    /// Keys whose entries lookups found damaged: their uploads replace them without
    /// reading them again.
    found_damaged: Mutex<std::collections::HashSet<Key>>,
    /// The damage that switched the tier off, when damage did: its warning counts every
    /// damaged entry of the run (lookups in flight then are counted too), as `-v` does.
    off_by_damage: Mutex<Option<String>>,
    /// How many lookups, and uploads (with the GETs before them), may be in flight: less
    /// while the server throttles (see [`Throttle`]).
    lookup_cap: Throttle,
    upload_cap: Throttle,
    /// Requests whose attempts the server throttled (HTTP 429/503) through: lookups
    /// counted as misses, uploads not sent.
    throttled_lookups: AtomicU64,
    throttled_uploads: AtomicU64,
    /// Of the throttled lookups, those the server asked to retry later than a lookup waits
    /// (`retry::LOOKUP_RETRY_AFTER_MAX`): not sent again; and the longest it asked (ms).
    lookups_not_waited: AtomicU64,
    longest_asked_ms: AtomicU64,
    /// The first damaged entry found (its object and damage), for the run's warning.
    damaged_first: Mutex<Option<String>>,
    /// Entries this remote served that decoded whole, counted where damage is told (the
    /// hits are counted later, once a lookup's pycs are handled): what the damaged ones
    /// are weighed against for switching the remote off, so that the decision does not
    /// depend on how far the writing of the pycs lags the lookups.
    whole: AtomicU64,
    /// Uploads the server refused for their size (HTTP 413), and the first refusal.
    refused_uploads: AtomicU64,
    refused_first: Mutex<Option<String>>,
    /// Throttled requests in a row (no request succeeded since) that started when their
    /// cap was already down to one: [`THROTTLED_OFF`] switch the tier off.
    throttled_streak: AtomicU64,
    /// A lookup (or the GET before an upload) was answered: the credentials may read.
    read_answered: AtomicBool,
    /// Uploads stopped for the rest of the run, lookups going on: an upload refused the
    /// credentials (HTTP 401/403) after lookups with them were answered (credentials that
    /// may only read, a job that wants `--cache-read-only`); the first refusal.
    uploads_refused: Mutex<Option<String>>,
    uploads_off: AtomicBool,
    /// What switched the tier off, in a word (`--format json`'s `off_reason`).
    off_reason: Mutex<Option<&'static str>>,
    /// A request was answered in this run: a refused connection since is a server
    /// restarting, given [`OUTAGE_MAX`] (before any answer, it is a failure at once).
    answered: AtomicBool,
    /// Since the first refused connection after the last answer, while there is one.
    refused_since: Mutex<Option<Instant>>,
    /// Lookups counted as misses, and upload attempts refused then sent again, while the
    /// server refused connections (within [`OUTAGE_MAX`]); the longest such time (ms).
    refused_lookups: AtomicU64,
    refused_uploads_retried: AtomicU64,
    longest_outage_ms: AtomicU64,
}

/// How long a server that answered earlier in the run may refuse connections before the
/// tier is switched off: a restart of the cache service (a rolling restart, a few hundred
/// milliseconds to a few seconds of "connection refused"). Meanwhile lookups are misses
/// (their files compiled, the build not held up) and uploads are sent again after short
/// waits ([`OUTAGE_WAITS`]). A server that never answered is switched off at the first
/// refused connection, as fast as ever.
pub(crate) const OUTAGE_MAX: Duration = Duration::from_secs(3);

/// The waits of an upload sent again while the server refuses connections: doubling from
/// the first, up to the last.
const OUTAGE_WAITS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_millis(500));

/// A target's lookups in the remote tier, for [`COLD_REMOTE`].
#[derive(Default)]
struct Cold {
    /// The target's name on the `-v` line of a run with several targets (`CPython 3.13.0`).
    name: Option<String>,
    /// Lookups stopped: the first [`COLD_REMOTE`] all missed (uploads go on).
    off: AtomicBool,
    /// Lookups not made since.
    unasked: AtomicU64,
    /// Lookups that found nothing (whatever the levels), those that took another's answer
    /// included.
    missed: AtomicU64,
    /// A lookup found an entry: the remote is not cold for this target.
    found: AtomicBool,
}

impl Cold {
    /// Count a lookup the server answered with no entry (or one that took such an answer
    /// from another lookup of the same key); the [`COLD_REMOTE`]th with no entry found
    /// stops the lookups.
    fn missed(&self) {
        let misses = self.missed.fetch_add(1, Ordering::Relaxed) + 1;
        if misses >= COLD_REMOTE && !self.found.load(Ordering::Relaxed) {
            self.off.store(true, Ordering::Relaxed);
        }
    }
}

/// Requests in a row, each started alone (its cap down to one) and refused (HTTP 429/503)
/// at every attempt it sent, two at least, that switch a remote tier off: a server that
/// throttles even one request at a time, and its retries.
const THROTTLED_OFF: u64 = 3;

/// A cap on requests of one kind in flight, for a server that throttles (HTTP 429 or 503:
/// S3's `SlowDown`, a rate limit shared by a fleet of runners): halved by a retry the
/// server throttled again (a request its own backoff did not get through), once per round
/// (retries sent before the last halving, a burst throttled together, do not halve it
/// again), raised by one by each attempt that succeeds, from and up to the number of
/// threads (so that against a server that does not throttle nothing waits), never below
/// one. A first attempt throttled and its retry answered leaves the cap as it was: that is
/// a transient throttle's cost, one retry (halving on it shrank the cap to one against a
/// server refusing each request once, and the requests queued behind it were given up).
/// A request holds its slot while it waits to retry, and each retry takes one again under
/// the cap as it is then, so a burst throttled together backs off within its own
/// attempts; retries waiting for room go before requests not yet sent, which would
/// otherwise take the room as it frees and leave the retries to run out of time.
struct Throttle {
    max: usize,
    state: Mutex<Capped>,
    room: std::sync::Condvar,
}

/// The state of a [`Throttle`].
struct Capped {
    cap: usize,
    /// Requests in flight (holding a slot).
    in_flight: usize,
    /// The halvings so far.
    halvings: u64,
    /// Retries waiting for room: no first attempt takes a slot meanwhile.
    retries_waiting: usize,
}

/// A request's slot under a [`Throttle`]: the cap when it was taken, and the halvings then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    cap: usize,
    halvings: u64,
}

/// How an attempt under a [`Throttle`] ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    Succeeded,
    /// A retry throttled again.
    Throttled,
    /// Another failure, or a first attempt throttled.
    Other,
}

impl Throttle {
    fn new(max: usize) -> Throttle {
        Throttle {
            max,
            state: Mutex::new(Capped { cap: max, in_flight: 0, halvings: 0, retries_waiting: 0 }),
            room: std::sync::Condvar::new(),
        }
    }

    /// Wait for room under the cap while `go_on()` holds; the slot taken, or None when the
    /// request is not to be sent.
    #[cfg(test)]
    fn enter(&self, go_on: impl Fn() -> bool) -> Option<Slot> {
        self.enter_until(go_on, None, false)
    }

    /// [`Throttle::enter`], waiting no later than `deadline` (None: no limit); a `retry`
    /// goes before first attempts.
    fn enter_until(&self, go_on: impl Fn() -> bool, deadline: Option<Instant>, retry: bool) -> Option<Slot> {
        let mut state = self.state.lock().expect("throttle lock");
        if retry {
            state.retries_waiting += 1;
        }
        let slot = loop {
            if !go_on() {
                break None;
            }
            if state.in_flight < state.cap && (retry || state.retries_waiting == 0) {
                state.in_flight += 1;
                break Some(Slot { cap: state.cap, halvings: state.halvings });
            }
            let mut wait = Duration::from_millis(50);
            if let Some(deadline) = deadline {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => wait = wait.min(left),
                    _ => break None,
                }
            }
            state = self.room.wait_timeout(state, wait).expect("throttle lock").0;
        };
        if retry {
            state.retries_waiting -= 1;
            if state.retries_waiting == 0 {
                // First attempts waiting behind the retries may go now.
                self.room.notify_all();
            }
        }
        slot
    }

    /// What an attempt sent in `slot` came to: a success raises the cap by one; a retry
    /// throttled again halves it, unless it was sent before the last halving (its burst
    /// lowered it already).
    fn ended(&self, slot: Slot, ended: Ended) {
        let mut state = self.state.lock().expect("throttle lock");
        match ended {
            Ended::Succeeded => state.cap = (state.cap + 1).min(self.max),
            Ended::Throttled if slot.halvings == state.halvings => {
                state.cap = (state.cap / 2).max(1);
                state.halvings += 1;
            }
            Ended::Throttled | Ended::Other => {}
        }
    }

    /// Give `slot` back, then wait for one under the cap as it is now (a retry, before
    /// first attempts), while `go_on()` holds and, with a `deadline`, no later than it.
    fn again(&self, slot: Slot, go_on: impl Fn() -> bool, deadline: Option<Instant>) -> Option<Slot> {
        self.leave(slot);
        self.enter_until(go_on, deadline, true)
    }

    #[cfg(test)]
    fn leave_after(&self, ended: Ended) {
        let slot = self.enter(|| true).expect("room");
        self.ended(slot, ended);
        self.leave(slot);
    }

    /// Halve the cap, as a retry throttled again elsewhere does.
    #[cfg(test)]
    fn halve(&self) {
        let halvings = self.state.lock().expect("throttle lock").halvings;
        self.ended(Slot { cap: 0, halvings }, Ended::Throttled);
    }

    /// The cap and the requests in flight.
    #[cfg(test)]
    fn now(&self) -> (usize, usize) {
        let state = self.state.lock().expect("throttle lock");
        (state.cap, state.in_flight)
    }

    fn leave(&self, _slot: Slot) {
        let mut state = self.state.lock().expect("throttle lock");
        state.in_flight -= 1;
        self.room.notify_all();
    }
}

/// What a request to the remote tier came to.
enum Sent<T> {
    Answered(T),
    /// A failure, which switched the tier off.
    Failed,
    /// Throttled through all its attempts (counted by the caller).
    Throttled,
    /// Answered, but its body not read: the lookups in flight hold the memory budget
    /// ([`TierError::Busy`]); no failure, a miss.
    Busy,
    /// Not sent: the tier is off, or the run interrupted.
    Unsent,
    /// The connection refused by a server that answered earlier, within [`OUTAGE_MAX`]
    /// of the first refusal (a restart): a lookup is a miss, an upload is sent again.
    Refused,
    /// Refused by the server for its size ([`TierError::TooLarge`]): that entry only.
    TooLarge,
}

/// When this many remote lookups of a target have all missed (not one hit), the remote
/// holds nothing for this interpreter and tree: a cold cache (a new interpreter, a new lock
/// file, a fresh bucket). Its other lookups are not made — each would cost a round trip and CPU
/// on both ends for a miss — while every compiled entry is still uploaded. Units are
/// looked up largest first across the whole tree, so these are a cross-section of it; a
/// remote that holds part of the tree answers some of them. Counted per target: with two
/// interpreters, one the remote holds and one it does not, the first's hits say nothing of
/// the second, whose lookups stop as a single cold interpreter's do.
const COLD_REMOTE: u64 = 256;

impl Remote {
    fn usable(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// Whether uploads are still made: the tier is on, and no upload was refused the
    /// credentials lookups were answered with.
    fn uploading(&self) -> bool {
        self.usable() && !self.uploads_off.load(Ordering::Relaxed)
    }

    /// Count a failure; the first one switches the tier off and is remembered for the
    /// warning.
    fn fail(&self, e: &TierError) {
        match e {
            TierError::Timeout(_) => self.counts.timeouts.fetch_add(1, Ordering::Relaxed),
            TierError::Failed(_)
            | TierError::Refused(_)
            | TierError::Transient { .. }
            | TierError::Busy(_)
            | TierError::TooLarge(_)
            | TierError::Denied(_) => self.counts.errors.fetch_add(1, Ordering::Relaxed),
        };
        if !self.off.swap(true, Ordering::Relaxed) {
            self.problem.lock().expect("cache lock").get_or_insert_with(|| e.to_string());
            self.off_reason.lock().expect("cache lock").get_or_insert(match e {
                TierError::Timeout(_) => "timeout",
                TierError::Denied(_) => "credentials",
                _ => "failure",
            });
        }
    }

    /// Count the entry of `key` damaged (`d`), the first one remembered for the warning;
    /// too many switch the tier off.
    fn damaged(&self, key: &Key, d: &entry::Damage) {
        self.damaged_first
            .lock()
            .expect("cache lock")
            .get_or_insert_with(|| format!("`{}/{}`: {d}", self.tier.describe(), tier::entry_path(key)));
        let n = self.counts.damaged.fetch_add(1, Ordering::Relaxed) + 1;
        // Switched off, as a failure does, but counted as the damage it is (not also as
        // an error); the warning counts the damaged entries at the end of the run. A
        // bucket whose damaged objects are a few among many good ones stays on: switched
        // off at the tenth, every build of a fleet lost the rest of its hits and replaced
        // only the few it had found (helper report: 60 damaged among 1 170, every run
        // switched off, 3-6 replaced a run).
        let served = self.whole.load(Ordering::Relaxed);
        if n >= MAX_REMOTE_DAMAGED && n > served && !self.off.swap(true, Ordering::Relaxed) {
            *self.off_by_damage.lock().expect("cache lock") = Some(d.to_string());
            self.off_reason.lock().expect("cache lock").get_or_insert("damaged");
        }
    }

    /// `request` under `policy`: retried after a transient failure while the tier is on.
    fn retrying<T>(
        &self,
        policy: &remote::retry::Policy,
        request: impl FnMut() -> Result<T, TierError>,
    ) -> Result<T, TierError> {
        policy.run(
            request,
            || self.usable() && !crate::interrupt::requested(),
            || {
                self.counts.retries.fetch_add(1, Ordering::Relaxed);
            },
        )
    }

    /// `request` under `cap` and `policy`, each retry waiting for a slot under the cap as it
    /// is then (see [`Throttle`]), within the policy's time limit: no retry starts later
    /// than one time limit after the first attempt did, however long the cap stays full
    /// (one that finds no slot by then is not sent, and the request ends with its last
    /// attempt's answer). The first attempt waits for its slot no longer than one time
    /// limit either: one that finds none by then is not sent, and the request ends
    /// throttled (the server's throttling lowered the cap), without counting towards the
    /// switch-off (no attempt was sent). A failure switches the tier off, unless the server
    /// throttled each attempt sent (HTTP 429/503 without a long `Retry-After`): each retry
    /// throttled again halved the cap (once per round), and the tier is switched off only
    /// by the [`THROTTLED_OFF`]th request in a row started at a cap of one (alone) whose
    /// attempts were all refused, two at least (one whose retry found no room in time was
    /// refused once: it neither counts nor breaks the run of them).
    fn send<T>(
        &self,
        cap: &Throttle,
        policy: &remote::retry::Policy,
        upload: bool,
        mut request: impl FnMut() -> Result<T, TierError>,
    ) -> Sent<T> {
        let go_on = || self.usable() && !crate::interrupt::requested();
        // With every slot held (the cap lowered by throttling, its requests slow to end), a
        // request queued behind them waited as long as they took, one after another.
        let Some(first) = cap.enter_until(go_on, Instant::now().checked_add(policy.budget()), false) else {
            // Off or interrupted: not sent; else no slot within the time limit: throttled.
            return if go_on() { Sent::Throttled } else { Sent::Unsent };
        };
        let deadline = Instant::now().checked_add(policy.budget());
        // The cap the first attempt was sent at: the switch-off counts requests begun
        // alone. Going by the last attempt's cap (a retry sent at a cap since halved to one)
        // switched the remote off under nginx's limit_req in .ci/run
        // (remote::a_rate_limiting_server_gets_fewer_requests_and_stays_on).
        let sent_at = first.cap;
        // The slot held (None once given back without another: the tier went off, or the
        // run was interrupted, or the time limit passed, while a retry waited for one).
        let mut slot = Some(first);
        let mut attempts = 0;
        // The attempts sent (a retry that found no slot in time was not).
        let sent = std::cell::Cell::new(0);
        // The last attempt's transient failure, for a retry that finds no slot in time.
        let mut last: Option<String> = None;
        let mut no_room = false;
        // Throttled only when every attempt was (500, 500, 503 is a failure).
        let throttled = std::cell::Cell::new(true);
        // The last attempt's `Retry-After`, when longer than this kind of request waits.
        let not_waited = std::cell::Cell::new(None);
        let out = self.retrying(policy, || {
            attempts += 1;
            let Some(held) = slot.take() else { return Err(TierError::Failed(String::new())) };
            slot = if attempts > 1 { cap.again(held, go_on, deadline) } else { Some(held) };
            let Some(held) = slot else {
                // No slot within the time limit, the tier still on: the request ends as its
                // last attempt did (throttled, as it then was).
                no_room = go_on();
                let tried = last.take().unwrap_or_default();
                let tried =
                    if attempts > 2 { format!("{tried} (after {} attempts)", attempts - 1) } else { tried };
                return Err(TierError::Failed(tried));
            };
            let out = request();
            sent.set(sent.get() + 1);
            last = match &out {
                Err(TierError::Transient { message, .. }) => Some(message.clone()),
                _ => None,
            };
            let was = matches!(&out, Err(e) if remote::retry::throttled(e));
            throttled.set(throttled.get() && was);
            not_waited.set(match &out {
                Err(TierError::Transient { retry_after: Some(a), .. }) if was && !policy.waits_for(*a) => {
                    Some(*a)
                }
                _ => None,
            });
            // A first attempt throttled leaves the cap: its retry says whether the server
            // still refuses (see [`Throttle`]).
            let ended = match &out {
                Ok(_) => Ended::Succeeded,
                Err(_) if was && attempts > 1 => Ended::Throttled,
                Err(_) => Ended::Other,
            };
            cap.ended(held, ended);
            out
        });
        match slot {
            Some(held) => cap.leave(held),
            None if no_room => {}
            None => return Sent::Unsent,
        }
        // Any answer of the server's (an entry, a miss, a refusal, throttling) says it is up.
        if out.is_ok()
            || (throttled.get() && sent.get() > 0)
            || matches!(out, Err(TierError::Busy(_) | TierError::TooLarge(_) | TierError::Denied(_)))
        {
            self.answered_now();
        }
        match out {
            Ok(v) => {
                self.throttled_streak.store(0, Ordering::Relaxed);
                Sent::Answered(v)
            }
            Err(TierError::Refused(m)) if self.usable() => match self.refused_for() {
                None => {
                    self.fail(&TierError::Refused(m));
                    Sent::Failed
                }
                Some(outage) if outage < OUTAGE_MAX => {
                    self.counts.errors.fetch_add(1, Ordering::Relaxed);
                    Sent::Refused
                }
                Some(outage) => {
                    self.fail(&TierError::Refused(format!(
                        "{m}; it had refused connections for {:.1} s, since it last answered",
                        outage.as_secs_f64()
                    )));
                    Sent::Failed
                }
            },
            Err(TierError::Busy(_)) => Sent::Busy,
            Err(TierError::TooLarge(m)) => {
                self.refused_uploads.fetch_add(1, Ordering::Relaxed);
                self.refused_first.lock().expect("cache lock").get_or_insert(m);
                Sent::TooLarge
            }
            Err(e) if throttled.get() && self.usable() => {
                if let Some(asked) = not_waited.get() {
                    // Not sent again: the server asked for a wait longer than a lookup makes.
                    self.lookups_not_waited.fetch_add(1, Ordering::Relaxed);
                    self.longest_asked_ms.fetch_max(asked.as_millis() as u64, Ordering::Relaxed);
                }
                // Refused at every attempt it sent, and sent again at least once: counted
                // towards the switch-off when begun alone. One refused once, its retry not
                // sent for want of room, says nothing of what the server does with a retry.
                if sent_at == 1
                    && sent.get() >= 2
                    && self.throttled_streak.fetch_add(1, Ordering::Relaxed) + 1 >= THROTTLED_OFF
                {
                    self.off_reason.lock().expect("cache lock").get_or_insert("throttled");
                    self.fail(&TierError::Failed(format!(
                        "{e}; {THROTTLED_OFF} requests in a row, each sent alone, were throttled (HTTP \
                         503/429) at every attempt"
                    )));
                    return Sent::Failed;
                }
                Sent::Throttled
            }
            // Refused the credentials lookups were answered with: they may only read. The
            // uploads stop, the lookups go on (switching the tier off lost them).
            Err(TierError::Denied(m)) if upload && self.read_answered.load(Ordering::Relaxed) => {
                self.counts.errors.fetch_add(1, Ordering::Relaxed);
                self.uploads_refused.lock().expect("cache lock").get_or_insert(m);
                self.uploads_off.store(true, Ordering::Relaxed);
                Sent::Failed
            }
            Err(e) => {
                self.fail(&e);
                Sent::Failed
            }
        }
    }

    /// A request answered: the server is up (again).
    fn answered_now(&self) {
        if !self.answered.load(Ordering::Relaxed) {
            self.answered.store(true, Ordering::Relaxed);
        }
        let mut since = self.refused_since.lock().expect("cache lock");
        if let Some(t) = since.take() {
            self.longest_outage_ms.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// A connection refused: how long the server has refused them since it last answered,
    /// or None when it never answered in this run (a failure at once).
    fn refused_for(&self) -> Option<Duration> {
        if !self.answered.load(Ordering::Relaxed) {
            return None;
        }
        let mut since = self.refused_since.lock().expect("cache lock");
        Some(since.get_or_insert_with(Instant::now).elapsed())
    }

    /// A lookup: None when the tier did not answer (a failure, throttled, or off).
    fn get(&self, key: &Key) -> Option<Option<Vec<u8>>> {
        match self.send(&self.lookup_cap, &self.lookups, false, || self.tier.get(key)) {
            Sent::Answered(found) => {
                self.read_answered.store(true, Ordering::Relaxed);
                Some(found)
            }
            Sent::Throttled => {
                self.throttled_lookups.fetch_add(1, Ordering::Relaxed);
                None
            }
            // The server restarting: a miss, the file compiled (not waited for).
            Sent::Refused => {
                self.refused_lookups.fetch_add(1, Ordering::Relaxed);
                None
            }
            // No room to read it now: a miss, not a sign of a cold remote.
            Sent::Busy | Sent::Failed | Sent::Unsent | Sent::TooLarge => None,
        }
    }

    /// [`Tier::get_before_put`], sent as uploads are.
    fn get_before_put(&self, key: &Key) -> Sent<Option<Vec<u8>>> {
        let sent = self.upload(|| self.tier.get_before_put(key));
        if matches!(sent, Sent::Answered(_)) {
            self.read_answered.store(true, Ordering::Relaxed);
        }
        sent
    }

    /// [`Tier::put`], sent as uploads are.
    fn put(&self, key: &Key, data: &[u8]) -> Sent<u64> {
        self.upload(|| self.tier.put(key, data))
    }

    /// A request of an upload, under the uploads' cap and policy; one throttled through
    /// its attempts is counted (the upload is not sent). One whose connection a server
    /// restarting refused is sent again after a short wait, until the server answers or
    /// has refused connections for [`OUTAGE_MAX`] (then the tier is off); never
    /// [`Sent::Refused`].
    fn upload<T>(&self, mut request: impl FnMut() -> Result<T, TierError>) -> Sent<T> {
        let mut wait = OUTAGE_WAITS.0;
        loop {
            let sent = self.send(&self.upload_cap, &self.uploads, true, &mut request);
            match sent {
                Sent::Throttled => {
                    self.throttled_uploads.fetch_add(1, Ordering::Relaxed);
                }
                Sent::Refused => {
                    let go_on = || self.usable() && !crate::interrupt::requested();
                    let until = Instant::now() + wait;
                    while go_on() && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
                    }
                    if !go_on() {
                        return Sent::Unsent;
                    }
                    self.refused_uploads_retried.fetch_add(1, Ordering::Relaxed);
                    self.counts.retries.fetch_add(1, Ordering::Relaxed);
                    wait = (wait * 2).min(OUTAGE_WAITS.1);
                    continue;
                }
                _ => {}
            }
            return sent;
        }
    }

    /// This run's counts, with the retries the tier made on its own.
    fn totals(&self) -> Totals {
        let mut t = self.counts.totals();
        t.retries += self.tier.retries();
        t
    }
}

/// The tiers and what the run did with them (shared with the store thread).
struct Inner {
    local: Option<Local>,
    /// Why the local tier given could not be used (the remote one is).
    dropped: Option<String>,
    /// Who else may write the local tier ([`DiskTier::untrusted_writers`]), warned of.
    untrusted: Option<String>,
    /// The local directory, read-only and not there: every lookup in it misses (`-v`).
    absent: Option<PathBuf>,
    remote: Option<Arc<Remote>>,
    uploads: Option<upload::Uploader>,
    settings: CacheSettings,
    targets: Vec<TargetKeys>,
    /// Hits relocated from another embedded path, and relocations refused.
    pub relocated: AtomicU64,
    pub refused: AtomicU64,
    /// Units compiled without a lookup because lookups stalled (see `stage`).
    unlooked: AtomicU64,
    /// Compiled entries not stored because no lookup would read them (their payload over
    /// `entry::MAX_PAYLOAD`), and the first one's path and size (`-v`).
    oversized: AtomicU64,
    oversized_first: Mutex<Option<String>>,
    /// Remote lookups in flight, by key: a lookup of a key another one is reading from the
    /// remote tier (identical sources, claimed together) waits for its answer instead of
    /// sending the same GET (see [`Inner::get_remote`]).
    /// And the keys a remote lookup of this run copied to the local tier: a lookup of one
    /// that missed the local tier just before the copy landed reads it there again instead
    /// of sending the GET a second time.
    remote_asking: Mutex<RemoteAsking>,
    /// Entries a lookup found for some levels of a request that then missed another level
    /// (one level's entry refused by the server for its size, say), and the tier that
    /// served each: the compile's store does not send them again (see [`Inner::store`]).
    found_in_missed: Mutex<HashMap<Key, Served>>,
    /// How the uploads ended ([`Inner::finish`]), for `--format json`.
    upload_report: Mutex<Option<upload::UploadReport>>,
}

/// Remote lookups in flight, and the keys copied to the local tier ([`Inner::get_remote`]).
#[derive(Default)]
struct RemoteAsking {
    in_flight: HashMap<Key, Arc<Asking>>,
    copied: std::collections::HashSet<Key>,
}

/// A remote lookup in flight: its outcome once known, for the lookups of the same key that
/// wait for it.
#[derive(Default)]
struct Asking {
    outcome: Mutex<Option<Option<(Payload, Served)>>>,
    /// The server answered that it holds no entry (set before the outcome): each lookup
    /// that takes the answer counts the miss towards [`COLD_REMOTE`], as the GET it would
    /// have sent would have.
    missed: AtomicBool,
    done: std::sync::Condvar,
}

impl Inner {
    fn open(settings: CacheSettings, targets: &[Arc<Target>], scripts: &[&str]) -> Result<Inner, CacheError> {
        let mut dropped = None;
        let mut absent = None;
        let local = match &settings.dir {
            Some(dir) => {
                let disk = if settings.read_only {
                    DiskTier::existing(dir).and_then(|d| match d.linked_entries() {
                        _ if d.is_foreign() => Err(disk::foreign()),
                        Some(e) => Err(e),
                        None => Ok(d),
                    })
                } else {
                    DiskTier::open(dir)
                }
                .map_err(|source| CacheError::Open { path: dir.clone(), source });
                let disk = match disk {
                    Ok(d) => Some(d),
                    // Without a remote tier there is no cache left: the caller says so.
                    Err(e) if settings.remote.is_none() => return Err(e),
                    // Read-only, a directory that does not exist yet (a CI runner whose
                    // cache was never restored) is an empty cache, not a problem.
                    Err(e) if e.missing_read_only(settings.read_only) => {
                        absent = Some(dir.clone());
                        None
                    }
                    // The remote tier does not need the local one.
                    Err(e) => {
                        dropped = Some(format!(
                            "{}; going on without the local tier (the remote one is still used)",
                            crate::pool::schedule::error_chain(&e)
                        ));
                        None
                    }
                };
                disk.map(|disk| {
                    let (recorded, restored) = stats::read_restored(&disk);
                    Local {
                        counts: Counters::default(),
                        stores_off: AtomicBool::new(false),
                        problem: Mutex::new(None),
                        entry_failures: AtomicU64::new(0),
                        entry_problem: Mutex::new(None),
                        bytes_stored: AtomicU64::new(0),
                        unreadable: Mutex::new(None),
                        used: Mutex::new(Vec::new()),
                        started: std::time::SystemTime::now(),
                        refresh_before: std::time::UNIX_EPOCH
                            + std::time::Duration::from_nanos(recorded.generation),
                        restored,
                        disk,
                    }
                })
            }
            None => None,
        };
        let remote = settings.remote.as_ref().map(|tier| {
            Arc::new(Remote {
                tier: Arc::clone(tier),
                counts: Counters::default(),
                lookups: remote::retry::Policy::lookups(settings.timeout),
                uploads: remote::retry::Policy::uploads(remote::upload_timeout(settings.timeout)),
                off: AtomicBool::new(false),
                problem: Mutex::new(None),
                cold: targets
                    .iter()
                    .map(|t| Cold {
                        name: (targets.len() > 1).then(|| format!("CPython {}", t.short_version())),
                        ..Cold::default()
                    })
                    .collect(),
                found_damaged: Mutex::default(),
                off_by_damage: Mutex::default(),
                lookup_cap: Throttle::new(remote::LOOKUPS),
                upload_cap: Throttle::new(remote::UPLOADS),
                throttled_lookups: AtomicU64::new(0),
                throttled_uploads: AtomicU64::new(0),
                lookups_not_waited: AtomicU64::new(0),
                longest_asked_ms: AtomicU64::new(0),
                damaged_first: Mutex::new(None),
                whole: AtomicU64::new(0),
                refused_uploads: AtomicU64::new(0),
                refused_first: Mutex::new(None),
                throttled_streak: AtomicU64::new(0),
                read_answered: AtomicBool::new(false),
                uploads_refused: Mutex::new(None),
                uploads_off: AtomicBool::new(false),
                off_reason: Mutex::new(None),
                answered: AtomicBool::new(false),
                refused_since: Mutex::new(None),
                refused_lookups: AtomicU64::new(0),
                refused_uploads_retried: AtomicU64::new(0),
                longest_outage_ms: AtomicU64::new(0),
            })
        });
        let uploads = match (&remote, settings.read_only) {
            (Some(r), false) => Some(upload::Uploader::start(Arc::clone(r))),
            _ => None,
        };
        let untrusted = local.as_ref().and_then(|l| {
            let who = l.disk.untrusted_writers()?;
            // A filesystem that keeps no Unix permissions (vfat, exFAT, a CIFS mount with
            // `uid=`) shows every cache so, every run: told by a file created in it and removed
            // at once, which a read-only cache is spared.
            let ignored =
                if settings.read_only { None } else { crate::write::IgnoredPermissions::of(l.disk.root()) };
            let fix = ignored.map_or(String::new(), |i| {
                format!(
                    "; {}: put the cache on a filesystem with Unix permissions, or mount this one with {}",
                    i.finding(),
                    i.mount_options()
                )
            });
            Some(format!(
                "bytecode cache: {who}: whoever can write it decides the code its hits put into this build \
                 (see Trust under Bytecode cache in the README){fix}"
            ))
        });
        let targets = targets
            .iter()
            .zip(scripts)
            .map(|(t, script)| TargetKeys {
                prefix: key_prefix(t, script),
                rules: marshal::Rules::for_version(t.version.0, t.version.1).ok(),
                layout: marshal::CodeLayout::for_version(t.version.0, t.version.1),
            })
            .collect();
        Ok(Inner {
            local,
            dropped,
            untrusted,
            absent,
            remote,
            uploads,
            settings,
            targets,
            relocated: AtomicU64::new(0),
            unlooked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            oversized: AtomicU64::new(0),
            oversized_first: Mutex::new(None),
            remote_asking: Mutex::default(),
            found_in_missed: Mutex::default(),
            upload_report: Mutex::default(),
        })
    }

    /// The keys of each level of a request: level `i`'s key covers the levels up to it.
    fn keys(&self, t: usize, levels: &[u8], source: &[u8]) -> Vec<Key> {
        let digest = blake3::hash(source);
        (0..levels.len())
            .map(|i| {
                let mut h = self.targets[t].prefix.clone();
                h.update(&[i as u8 + 1]);
                h.update(&levels[..=i]);
                h.update(digest.as_bytes());
                *h.finalize().as_bytes()
            })
            .collect()
    }

    /// The key of an entry that is only valid for one embedded path.
    fn path_key(key: &Key, filename: &[u8]) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(b"hashpyc path-dependent\0");
        h.update(key);
        h.update(&(filename.len() as u64).to_le_bytes());
        h.update(filename);
        *h.finalize().as_bytes()
    }

    /// One entry, from the first tier that has a usable one: local, then remote (a remote
    /// hit is copied to the local tier, standing for `levels` pycs when it is a failure),
    /// and the tier it came from. Damaged entries and errors are counted, damaged local
    /// ones removed, and skipped; hits and misses are counted by the request (`count`).
    /// `remote_asked`: set when a request went to the remote tier. `t`: the target.
    fn get(&self, t: usize, key: &Key, levels: u64, remote_asked: &mut bool) -> Option<(Payload, Served)> {
        if let Some(found) = self.get_local(key) {
            return Some(found);
        }
        let r = self.remote.as_ref()?;
        if crate::interrupt::requested() {
            return None;
        }
        let cold = r.cold.get(t);
        if let Some(c) = cold.filter(|c| c.off.load(Ordering::Relaxed)) {
            c.unasked.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *remote_asked |= r.usable();
        self.get_remote(r, cold, key, levels)
    }

    /// `key` from the local tier, when it holds a usable entry.
    fn get_local(&self, key: &Key) -> Option<(Payload, Served)> {
        if let Some(l) = &self.local {
            match l.disk.get(key, (!self.settings.read_only).then_some(l.refresh_before)) {
                Ok(disk::Read::Entry(data)) => match entry::decode(key, &data) {
                    Ok(p) => {
                        if !self.settings.read_only {
                            l.used.lock().expect("cache lock").push(*key);
                        }
                        return Some((p, Served::Local));
                    }
                    // No room to decode it now (decompression bombs in flight took the
                    // budget): nothing is known wrong with it, so a plain miss (the file is
                    // compiled), not damage, and the entry is kept.
                    Err(entry::Damage::Busy) => {}
                    Err(_) => {
                        l.counts.damaged.fetch_add(1, Ordering::Relaxed);
                        if !self.settings.read_only {
                            l.disk.remove(key);
                        }
                    }
                },
                // Not an entry at all (a directory, a FIFO, a link, a huge file): never read.
                Ok(disk::Read::Damaged(_)) => {
                    l.counts.damaged.fetch_add(1, Ordering::Relaxed);
                    if !self.settings.read_only {
                        l.disk.remove(key);
                    }
                }
                Ok(disk::Read::Missing) => {}
                Err(_) => {
                    l.counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }

    /// Read `key` from the remote tier, once for the lookups of it in flight at once: the
    /// first sends the GET (and copies a hit to the local tier), the others wait for its
    /// outcome and take it as theirs, as the same GET sent a moment later would have
    /// answered (a miss so taken counts towards [`COLD_REMOTE`] as the GET's does). Once it
    /// is known the key is forgotten: a later lookup finds the local tier's copy, or asks
    /// again.
    fn get_remote(
        &self,
        r: &Remote,
        cold: Option<&Cold>,
        key: &Key,
        levels: u64,
    ) -> Option<(Payload, Served)> {
        let (asking, first) = {
            let mut guard = self.remote_asking.lock().expect("cache lock");
            if guard.copied.contains(key) {
                // Copied to the local tier since this lookup missed it there.
                drop(guard);
                if let Some(found) = self.get_local(key) {
                    return Some(found);
                }
                guard = self.remote_asking.lock().expect("cache lock");
            }
            let map = &mut guard.in_flight;
            match map.get(key) {
                Some(a) => (Arc::clone(a), false),
                None => {
                    let a = Arc::new(Asking::default());
                    map.insert(*key, Arc::clone(&a));
                    (a, true)
                }
            }
        };
        if !first {
            let mut outcome = asking.outcome.lock().expect("cache lock");
            while outcome.is_none() {
                outcome = asking.done.wait(outcome).expect("cache lock");
            }
            if let Some(c) = cold.filter(|_| asking.missed.load(Ordering::Relaxed)) {
                c.missed();
            }
            return outcome.clone().flatten();
        }
        // Known before a waiter can miss it, even if the GET panics.
        struct Forget<'a>(&'a Inner, &'a Key, &'a Asking);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                let mut outcome = self.2.outcome.lock().expect("cache lock");
                outcome.get_or_insert(None);
                self.2.done.notify_all();
                drop(outcome);
                self.0.remote_asking.lock().expect("cache lock").in_flight.remove(self.1);
            }
        }
        let forget = Forget(self, key, &asking);
        let found = self.get_remote_once(r, cold, &asking, key, levels);
        *forget.2.outcome.lock().expect("cache lock") = Some(found.clone());
        drop(forget);
        found
    }

    /// The GET of [`Inner::get_remote`], for the lookups of `asking`.
    fn get_remote_once(
        &self,
        r: &Remote,
        cold: Option<&Cold>,
        asking: &Asking,
        key: &Key,
        levels: u64,
    ) -> Option<(Payload, Served)> {
        let data = match r.get(key) {
            Some(Some(d)) => d,
            // Not answered: a failure, or throttled (not a sign of a cold remote).
            None => return None,
            Some(None) => {
                if r.usable() {
                    asking.missed.store(true, Ordering::Relaxed);
                    if let Some(c) = cold {
                        c.missed();
                    }
                }
                return None;
            }
        };
        match entry::decode(key, &data) {
            Ok(p) => {
                r.whole.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = cold {
                    c.found.store(true, Ordering::Relaxed);
                }
                if let Some(l) = &self.local
                    && self.put_local(l, key, &data, weight(&p, levels))
                {
                    self.remote_asking.lock().expect("cache lock").copied.insert(*key);
                }
                Some((p, Served::Remote))
            }
            // No room to decode it now: a miss, not damage (which would switch the remote
            // off at ten).
            Err(entry::Damage::Busy) => None,
            Err(d) => {
                r.damaged(key, &d);
                r.found_damaged.lock().expect("cache lock").insert(*key);
                None
            }
        }
    }

    /// Count a request's outcome, one per level asked for (a pyc, an entry): a level
    /// served (`served`; when the request missed, the levels found before the one that
    /// missed) is the serving tier's hit; the local tier missed every other level, the remote
    /// tier every other level when it was asked (not when the local tier served them, nor
    /// when its lookups are off).
    fn count(&self, served: &[Option<Served>], remote_asked: bool) {
        let by = |tier: Served| served.iter().filter(|s| **s == Some(tier)).count() as u64;
        let (all, local, remote) = (served.len() as u64, by(Served::Local), by(Served::Remote));
        if let Some(l) = &self.local {
            l.counts.hits.fetch_add(local, Ordering::Relaxed);
            l.counts.misses.fetch_add(all - local, Ordering::Relaxed);
        }
        if let Some(r) = &self.remote {
            r.counts.hits.fetch_add(remote, Ordering::Relaxed);
            if remote_asked {
                r.counts.misses.fetch_add(all - local - remote, Ordering::Relaxed);
            }
        }
    }

    /// Store `data` in the local tier; `weight`: the pycs it stands for (counted as stores).
    /// Whether it was stored.
    fn put_local(&self, l: &Local, key: &Key, data: &[u8], weight: u64) -> bool {
        if self.settings.read_only || l.stores_off.load(Ordering::Relaxed) {
            return false;
        }
        let _writing = crate::interrupt::writing();
        match l.disk.put(key, data) {
            Ok(on_disk) => {
                l.counts.stores.fetch_add(weight, Ordering::Relaxed);
                l.bytes_stored.fetch_add(on_disk, Ordering::Relaxed);
                true
            }
            Err(e) => {
                l.counts.errors.fetch_add(1, Ordering::Relaxed);
                if disk::whole_cache(&e) {
                    l.stores_off.store(true, Ordering::Relaxed);
                    l.problem.lock().expect("cache lock").get_or_insert_with(|| crate::io::io_reason(&e));
                } else {
                    l.entry_failures.fetch_add(1, Ordering::Relaxed);
                    l.entry_problem.lock().expect("cache lock").get_or_insert_with(|| {
                        format!(
                            "{}: {}",
                            crate::report::ticked(&l.disk.entry_path(key)),
                            crate::io::io_reason(&e)
                        )
                    });
                }
                false
            }
        }
    }

    /// Store an entry in every tier, replacing what is there (atomically: a local entry is
    /// renamed into place, an S3 or WebDAV PUT replaces the object whole); `unless_present`:
    /// skip tiers that already hold a usable one (read and checked first: a GET before the
    /// PUT for remote tiers), so that a damaged one is replaced in every tier alike; a
    /// usable local one counts as used by this run. `weight`: the pycs it stands for,
    /// counted as stores.
    fn put(&self, key: &Key, payload: &Payload, unless_present: bool, weight: u64) {
        if self.settings.read_only {
            return;
        }
        if let Some(l) = &self.local {
            if unless_present
                && matches!(l.disk.get(key, Some(l.refresh_before)), Ok(disk::Read::Entry(data)) if entry::decode(key, &data).is_ok())
            {
                l.used.lock().expect("cache lock").push(*key);
            } else {
                let _ =
                    self.put_local(l, key, &entry::encode(key, payload, self.settings.compression), weight);
            }
        }
        if let Some(u) = &self.uploads {
            // Uploads are always compressed (network bytes), by the upload threads.
            u.push(*key, payload.clone(), unless_present, weight);
        }
    }

    /// Look up a request: source bytes `source` compiled for target `t` at `levels` with
    /// `filename` as the embedded path.
    fn lookup(&self, t: usize, levels: &[u8], source: &[u8], filename: &[u8]) -> Found {
        let keys = self.keys(t, levels, source);
        let n = keys.len() as u64;
        let mut bodies = vec![Vec::new(); levels.len()];
        let mut served = vec![None; levels.len()];
        let mut warnings = Vec::new();
        let mut remote_asked = false;
        // The last key first: a failure is stored under it (the key of every level
        // requested), and since a hit needs every key and a miss of any is the request's
        // miss, starting there costs no lookup.
        let last = keys.len().saturating_sub(1);
        for i in std::iter::once(last).chain(0..last).take(keys.len()) {
            let key = &keys[i];
            let found = match self.get(t, key, n, &mut remote_asked) {
                Some((Payload::Body { filename: stored, warnings: w, body }, from)) => {
                    if stored == filename {
                        self.loadable(t, key, &body, from).then_some((body, w, from))
                    } else {
                        let relocated = self.targets[t].rules.ok_or(None).and_then(|rules| {
                            marshal::relocate(&body, rules, &stored, filename).map_err(Some)
                        });
                        match relocated {
                            Ok(b) => {
                                self.relocated.fetch_add(1, Ordering::Relaxed);
                                Some((b, w, from))
                            }
                            // Marshal data importlib cannot load: damaged, not refused.
                            Err(Some(
                                marshal::RelocateError::Marshal(_) | marshal::RelocateError::NotCode,
                            )) => {
                                self.damaged_body(key, from);
                                None
                            }
                            Err(_) => {
                                self.refused.fetch_add(1, Ordering::Relaxed);
                                self.get_path_dependent(t, key, filename, &mut remote_asked)
                            }
                        }
                    }
                }
                Some((Payload::PathDependent, _)) => {
                    self.get_path_dependent(t, key, filename, &mut remote_asked)
                }
                // A failure that is not the source's is never stored; one found is a miss.
                Some((Payload::Failure { failure, .. }, _)) if !failure.from_source() => None,
                // Served as stored at any path: no message of a failure that is stored (a
                // SyntaxError's `msg`, NUL bytes' ValueError) holds the path it was compiled
                // at, on any version covered; text that happens to equal that path (`#
                // coding: m.py` compiled as m.py) is the source's own and stays.
                Some((Payload::Failure { failure, .. }, from)) => {
                    // It stands for every level.
                    self.count(&vec![Some(from); levels.len()], remote_asked);
                    return Found::Failed(failure);
                }
                None => None,
            };
            match found {
                Some((body, w, from)) => {
                    bodies[i] = body;
                    served[i] = Some(from);
                    warnings.extend(w.into_iter().map(|w| Warning { level: i as u8, ..w }));
                }
                None => {
                    // The request is compiled: a miss for every level but those found, which
                    // are their tier's hits (counted misses before, and sent again by the
                    // compile's store: every build re-uploaded the level the server held).
                    let mut found = self.found_in_missed.lock().expect("cache lock");
                    for (key, from) in keys.iter().zip(&served) {
                        if let Some(from) = from {
                            found.insert(*key, *from);
                        }
                    }
                    drop(found);
                    self.count(&served, remote_asked);
                    return Found::Miss;
                }
            }
        }
        self.count(&served, remote_asked);
        // In the order the compile raised them.
        warnings.sort_by_key(|w| w.level);
        Found::Hit { bodies, warnings }
    }

    fn get_path_dependent(
        &self,
        t: usize,
        key: &Key,
        filename: &[u8],
        remote_asked: &mut bool,
    ) -> Option<(Vec<u8>, Vec<Warning>, Served)> {
        let key = Self::path_key(key, filename);
        match self.get(t, &key, 1, remote_asked) {
            Some((Payload::Body { filename: stored, warnings, body }, from)) if stored == filename => {
                self.loadable(t, &key, &body, from).then_some((body, warnings, from))
            }
            _ => None,
        }
    }

    /// Whether `body`, served at the path it was compiled at, is marshal data importlib
    /// can load (read as relocating one is, by the fast walk); else the entry is damaged.
    fn loadable(&self, t: usize, key: &Key, body: &[u8], from: Served) -> bool {
        let ok = marshal::code_body(body, self.targets[t].layout).is_ok();
        if !ok {
            self.damaged_body(key, from);
        }
        ok
    }

    /// Count the entry of `key`, served by `from`, damaged: its body is not loadable marshal
    /// data (its envelope was sound). The local copy is removed, a remote one replaced by
    /// the compile's upload.
    fn damaged_body(&self, key: &Key, from: Served) {
        match (from, &self.remote) {
            (Served::Remote, Some(r)) => {
                // Counted whole when its envelope decoded: it is not.
                r.whole.fetch_sub(1, Ordering::Relaxed);
                r.damaged(key, &entry::Damage::Payload);
                r.found_damaged.lock().expect("cache lock").insert(*key);
            }
            _ => {
                if let Some(l) = &self.local {
                    l.counts.damaged.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // A remote hit was copied to the local tier already.
        if let Some(l) = self.local.as_ref().filter(|_| !self.settings.read_only) {
            l.disk.remove(key);
        }
    }

    /// Store what a compile produced: per level, its body (by content alone when the body
    /// is relocatable, else by content and path) and its warnings; or the failure.
    fn store(&self, job: StoreJob) {
        if self.settings.read_only {
            return;
        }
        let StoreJob { t, keys, filename, result, replace } = job;
        match result {
            Ok((bodies, warnings)) => {
                for (i, (key, body)) in keys.iter().zip(bodies).enumerate() {
                    // Found by the lookup, which missed another level: served by the remote
                    // tier, both tiers hold it (the local one got its copy then); served by
                    // the local one, only where no tier holds it.
                    let found = self.found_in_missed.lock().expect("cache lock").remove(key);
                    if found == Some(Served::Remote) {
                        continue;
                    }
                    let replace = replace && found.is_none();
                    let relocatable = self.targets[t].rules.is_some_and(|r| {
                        quickly_relocatable(&body, &filename)
                            || marshal::relocatable(&body, r, &filename).is_ok()
                    });
                    let payload = Payload::Body {
                        filename: filename.clone(),
                        warnings: warnings.iter().filter(|w| usize::from(w.level) == i).cloned().collect(),
                        body,
                    };
                    // Neither the body nor a marker leading to it.
                    if !self.readable(&payload) {
                        continue;
                    }
                    if relocatable {
                        self.put(key, &payload, !replace, 1);
                    } else {
                        self.put(&Self::path_key(key, &filename), &payload, !replace, 1);
                        // Never replace a body others can relocate with the marker.
                        self.put(key, &Payload::PathDependent, true, 0);
                    }
                }
            }
            // A failure of the moment (out of memory, …) is not the file's: never stored.
            Err(failure) if !failure.from_source() => {}
            Err(failure) => {
                // Under the key of all the levels (which one failed is not known), where
                // `lookup` looks first.
                let payload = Payload::Failure { filename, failure };
                if let Some(key) = keys.last().filter(|_| self.readable(&payload)) {
                    self.put(key, &payload, !replace, keys.len() as u64);
                }
            }
        }
    }

    /// Whether an entry of `payload` would be read by a lookup: one whose payload is over
    /// [`entry::MAX_PAYLOAD`] is refused as damage (a decompression bomb looks the same), so
    /// it is not stored, in any tier, and counted for `-v`.
    fn readable(&self, payload: &Payload) -> bool {
        let len = entry::payload_len(payload);
        if len <= entry::MAX_PAYLOAD {
            return true;
        }
        self.oversized.fetch_add(1, Ordering::Relaxed);
        if let Payload::Body { filename, .. } | Payload::Failure { filename, .. } = payload {
            self.oversized_first.lock().expect("cache lock").get_or_insert_with(|| {
                use std::os::unix::ffi::OsStrExt;
                let name = Path::new(std::ffi::OsStr::from_bytes(filename));
                format!("{}, {}", crate::report::ticked(name), manage::human_size(len as u64))
            });
        }
        false
    }

    /// End of the run: wait (bounded) for uploads, add this run's counts to the local
    /// directory's statistics, prune when the size limit is passed. Returns the warnings to
    /// print and, with `verbose`, what each tier did.
    fn finish(&self, verbose: bool) -> (Vec<String>, Vec<String>) {
        let cleartext = self.remote.as_ref().and_then(|r| r.tier.cleartext());
        let mut warnings: Vec<String> =
            cleartext.into_iter().chain(self.untrusted.iter().chain(&self.dropped).cloned()).collect();
        let mut info = Vec::new();
        let upload = self.uploads.as_ref().map(|u| u.finish(self.settings.upload_wait));
        if let Some(l) = &self.local {
            let mut pruned_note = None;
            // A directory no entry was stored in yet is not made to record that (see
            // `DiskTier::open`).
            if !self.settings.read_only && !l.disk.unmade() {
                let mut runs = vec![("local", l.counts.totals())];
                if let Some(r) = &self.remote {
                    runs.push(("remote", r.totals()));
                }
                let stored = l.bytes_stored.load(Ordering::Relaxed);
                // A build mostly new to the cache (another tree, another interpreter): the
                // entries it stored are more recent than those hit before it started.
                let t = l.counts.totals();
                let generation = (t.stores > 0 && t.stores >= t.hits).then(|| {
                    l.started.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                });
                let (limit, problem) =
                    stats::record(&l.disk, &runs, stored, self.settings.max_size, generation);
                // A directory in place of `stats.json` or `stats.lock` (not hashpyc's); a
                // cache that takes no writes at all is said by the stores when they said it,
                // here otherwise (a run that only hit, or stored nothing).
                let said = l.problem.lock().expect("cache lock").is_some();
                if let Some(e) = problem.filter(|e| !disk::whole_cache(&e.source) || !said) {
                    warnings.push(format!(
                        "the bytecode cache {} kept no statistics this run (cannot {} {}: {}); the size limit is checked by measuring the entries",
                        crate::report::ticked(l.disk.root()),
                        e.verb,
                        crate::report::ticked(&e.path),
                        crate::io::io_reason(&e.source)
                    ));
                }
                let over = match limit {
                    stats::Limit::Passed => true,
                    stats::Limit::Under => false,
                    // Measured (the entries this run stored included), and recorded as the
                    // size the next runs add to.
                    stats::Limit::Unknown => match l.disk.scan() {
                        Ok((entries, _)) => {
                            let size: u64 = entries.iter().map(|e| e.size).sum();
                            stats::pruned(&l.disk, size);
                            size > self.settings.max_size
                        }
                        // An unreadable directory is left unmeasured (a warning says why).
                        Err(e) => {
                            l.unreadable(&e);
                            false
                        }
                    },
                };
                if over {
                    // Another process pruning already is as good.
                    let pruned = l.disk.locked("prune.lock", false, || {
                        for key in l.used.lock().expect("cache lock").iter() {
                            l.disk.touch(key);
                        }
                        // Down to 90%, so that the next builds do not prune again at once.
                        // Nothing is removed when the entries cannot all be read.
                        // Measured first: the recorded size may be more than is there.
                        match l.disk.prune_over(Some(self.settings.max_size), self.settings.max_size / 10 * 9)
                        {
                            Ok(p) => {
                                stats::pruned(&l.disk, p.size);
                                Some(p)
                            }
                            Err(e) => {
                                l.unreadable(&e);
                                None
                            }
                        }
                    });
                    if let Some(Some(disk::Pruned { removed, freed, left, size, within: false, .. })) = pruned
                    {
                        pruned_note = Some(format!(
                            "cache local: over the limit of {}, pruned: removed {} ({}), {} left ({})",
                            manage::human_size(self.settings.max_size),
                            crate::report::plural(removed, "entry", "entries"),
                            manage::human_size(freed),
                            crate::report::plural(left, "entry", "entries"),
                            manage::human_size(size)
                        ));
                    }
                }
            }
            if let Some(p) = l.problem.lock().expect("cache lock").as_ref() {
                let owner = owner_hint(l.disk.root()).map_or(String::new(), |h| format!("; {h}"));
                warnings.push(format!(
                    "the bytecode cache {} could not store entries ({p}); nothing more was stored in it this run{owner}",
                    crate::report::ticked(l.disk.root())
                ));
            }
            if let Some(p) = l.unreadable.lock().expect("cache lock").as_ref() {
                warnings.push(format!(
                    "the bytecode cache {} cannot be read in full ({p}); it is neither measured nor pruned until it can be",
                    crate::report::ticked(l.disk.root())
                ));
            }
            if let Some(p) = l.entry_problem.lock().expect("cache lock").as_ref() {
                let n = l.entry_failures.load(Ordering::Relaxed);
                // Said only as far as it is true: no store may have succeeded at all, or
                // storing may have stopped for the whole cache later on.
                let others = if l.counts.stores.load(Ordering::Relaxed) == 0 {
                    "no entry was stored in it this run"
                } else if l.problem.lock().expect("cache lock").is_some() {
                    "others were stored until storing stopped"
                } else {
                    "the others were stored"
                };
                warnings.push(format!(
                    "the bytecode cache {} could not store {} (the first: {p}); {others}",
                    crate::report::ticked(l.disk.root()),
                    crate::report::plural(n, "entry", "entries"),
                ));
            }
            // One warning for the run, never one per entry. Its cause is said only as far
            // as the cache knows it: a restore or copy when `stats.json` shows one (an archive
            // cut short), else the likely causes, none asserted.
            let damaged = l.counts.damaged.load(Ordering::Relaxed);
            if damaged > 0 {
                let cause = if l.restored {
                    "the cache was restored or copied since hashpyc last wrote it (its `stats.json` is a copy), and the archive or copy it came from may be broken"
                } else {
                    "entries are written whole, so something changed them since: a disk or filesystem fault, another program writing in the cache, or a broken archive restored over it"
                };
                warnings.push(format!(
                    "{} of the bytecode cache {} {} damaged (truncated or altered) and compiled again; {cause}",
                    crate::report::plural(damaged, "entry", "entries"),
                    crate::report::ticked(l.disk.root()),
                    if damaged == 1 { "was" } else { "were" }
                ));
            }
            if verbose {
                info.push(tier_line("local", &crate::report::ticked(l.disk.root()), &l.counts.totals()));
                info.extend(pruned_note);
            }
        }
        if let Some(dir) = self.absent.as_ref().filter(|_| verbose) {
            info.push(absent_line(dir));
        }
        if let Some(r) = &self.remote {
            let damage = r
                .off_by_damage
                .lock()
                .expect("cache lock")
                .as_ref()
                .map(|d| too_damaged(r.counts.damaged.load(Ordering::Relaxed), d));
            let off_by_damage = damage.is_some();
            if let Some(p) = r.problem.lock().expect("cache lock").clone().or(damage) {
                let unsent = upload.as_ref().map_or(0, |u| u.off);
                let unsent = if unsent > 0 && !upload.as_ref().is_some_and(|u| u.interrupted) {
                    format!(" ({} not stored)", crate::report::plural(unsent, "upload was", "uploads were"))
                } else {
                    String::new()
                };
                warnings.push(format!(
                    "remote bytecode cache `{}`: {p}; it was switched off for the rest of this run{unsent}",
                    r.tier.describe()
                ));
            } else if let Some(said) = throttled(r) {
                warnings.push(format!("remote bytecode cache `{}`: {said}", r.tier.describe()));
            }
            // Damage that did not switch the remote off (that warning counts it).
            if let Some(said) = damaged_remote(r, self.settings.read_only).filter(|_| !off_by_damage) {
                warnings.push(format!("remote bytecode cache `{}`: {said}", r.tier.describe()));
            }
            if let Some(m) = r.uploads_refused.lock().expect("cache lock").as_ref() {
                warnings.push(format!(
                    "remote bytecode cache `{}`: {}",
                    r.tier.describe(),
                    read_only_uploads(m, upload.as_ref().filter(|_| r.usable()).map_or(0, |u| u.off))
                ));
            }
            if let Some(first) = r.refused_first.lock().expect("cache lock").as_ref() {
                let n = r.refused_uploads.load(Ordering::Relaxed);
                warnings.push(format!(
                    "remote bytecode cache `{}`: {} refused for {} size ({first}): the server takes \
                     smaller request bodies than these entries (nginx: client_max_body_size); the \
                     other uploads went on",
                    r.tier.describe(),
                    crate::report::plural(n, "upload was", "uploads were"),
                    if n == 1 { "its" } else { "their" },
                ));
            }
            if let Some(u) = &upload
                && u.abandoned > 0
                && u.interrupted
            {
                warnings.push(format!(
                    "remote bytecode cache `{}`: {} dropped: interrupted",
                    r.tier.describe(),
                    crate::report::plural(u.abandoned, "upload was", "uploads were"),
                ));
            } else if let Some(u) = &upload
                && u.abandoned > 0
            {
                warnings.push(format!(
                    "remote bytecode cache `{}`: {} not finish within {} s of the build's end and were dropped",
                    r.tier.describe(),
                    crate::report::plural(u.abandoned, "upload did", "uploads did"),
                    self.settings.upload_wait.as_secs()
                ));
            }
            if verbose {
                let mut line = tier_line("remote", &format_args!("`{}`", r.tier.describe()), &r.totals());
                for c in &r.cold {
                    let unasked = c.unasked.load(Ordering::Relaxed);
                    if unasked > 0 {
                        line.push_str(&cold_remote(c.name.as_deref(), unasked));
                    }
                }
                let throttled = r.throttled_lookups.load(Ordering::Relaxed);
                if throttled > 0 {
                    line.push_str(&format!(
                        "; {} throttled (HTTP 503/429) and counted as misses",
                        crate::report::plural(throttled, "lookup", "lookups")
                    ));
                }
                let (refused, resent) = (
                    r.refused_lookups.load(Ordering::Relaxed),
                    r.refused_uploads_retried.load(Ordering::Relaxed),
                );
                if refused + resent > 0 {
                    let longest = Duration::from_millis(r.longest_outage_ms.load(Ordering::Relaxed));
                    line.push_str(&format!(
                        "; connections refused for {} at most after it had answered (a restart?): {} \
                         counted as misses, {} sent again",
                        crate::report::format_duration(longest),
                        crate::report::plural(refused, "lookup", "lookups"),
                        crate::report::plural(resent, "upload attempt", "upload attempts"),
                    ));
                }
                if let Some(u) = &upload {
                    line.push_str(&format!(
                        "; uploads ended {} after the build",
                        crate::report::format_duration(u.waited)
                    ));
                    let plural = crate::report::plural;
                    for (n, said) in [
                        (u.present, format!("{} already there", u.present)),
                        (u.duplicates, plural(u.duplicates, "duplicate", "duplicates") + " in this run"),
                        (u.dropped, format!("{} not sent: the upload queue was full", u.dropped)),
                        (
                            u.too_large,
                            format!("{} not sent: over {} MiB", u.too_large, remote::MAX_ENTRY >> 20),
                        ),
                        (u.throttled, format!("{} not sent: throttled (HTTP 503/429)", u.throttled)),
                        (u.refused, format!("{} refused by the server for their size (HTTP 413)", u.refused)),
                    ] {
                        if n > 0 {
                            line.push_str(&format!(", {said}"));
                        }
                    }
                }
                info.push(line);
                for note in r.tier.notes() {
                    info.push(format!("cache remote `{}`: {note}", r.tier.describe()));
                }
            }
        }
        if let Some(first) = self.oversized_first.lock().expect("cache lock").as_ref().filter(|_| verbose) {
            info.push(format!(
                "cache: {} not stored: over the {} an entry may hold, which no lookup would read (the first: {first})",
                crate::report::plural(self.oversized.load(Ordering::Relaxed), "entry", "entries"),
                manage::human_size(entry::MAX_PAYLOAD as u64)
            ));
        }
        let unlooked = self.unlooked.load(Ordering::Relaxed);
        if verbose && unlooked > 0 {
            info.push(format!(
                "cache: {} without a lookup while lookups made no progress for {} ms (a slow or unresponsive remote; stored only where no tier held them)",
                crate::report::plural(unlooked, "file compiled", "files compiled"),
                crate::pool::schedule::Backlog::STALLED.as_millis()
            ));
        }
        // Only an entry found can need relocating: with no hit in any tier (an empty cache,
        // `--force`, a remote alone that held nothing), "0 entries relocated" says nothing.
        let (relocated, refused) =
            (self.relocated.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed));
        let hits = self
            .local
            .iter()
            .map(|l| l.counts.totals().hits)
            .chain(self.remote.iter().map(|r| r.totals().hits));
        if verbose && (relocated + refused > 0 || hits.sum::<u64>() > 0) {
            info.push(format!(
                "cache: {} to this run's paths, {} (looked up by path instead)",
                crate::report::plural(relocated, "entry relocated", "entries relocated"),
                crate::report::plural(refused, "relocation refused", "relocations refused")
            ));
        }
        *self.upload_report.lock().expect("cache lock") = upload;
        (warnings, info)
    }
}

/// One compile's result, to be stored by the store thread.
struct StoreJob {
    t: usize,
    keys: Vec<Key>,
    filename: Vec<u8>,
    result: Result<(Vec<Vec<u8>>, Vec<Warning>), CompileFailure>,
    /// Replace what the tiers hold (a compile's result); else store only where no usable
    /// entry is (a failure remembered by the state directory, not compiled again; a file
    /// compiled without a lookup, which the tiers may hold).
    replace: bool,
}

/// The cache of one run: the tiers, and a thread that stores what the workers compile
/// (compressing and writing entries must not hold a worker's feed back).
pub struct Cache {
    inner: Arc<Inner>,
    stores: Mutex<Option<(crossbeam_channel::Sender<StoreJob>, std::thread::JoinHandle<()>)>>,
}

impl Cache {
    /// Open the cache for `targets`, whose workers run `scripts` (one per target).
    pub fn open(
        settings: CacheSettings,
        targets: &[Arc<Target>],
        scripts: &[&str],
    ) -> Result<Cache, CacheError> {
        let inner = Arc::new(Inner::open(settings, targets, scripts)?);
        let stores = if inner.settings.read_only {
            None
        } else {
            let (tx, rx) = crossbeam_channel::bounded::<StoreJob>(4096);
            let worker = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("hashpyc-store".into())
                .spawn(move || {
                    for job in rx {
                        worker.store(job);
                    }
                })
                .ok()
                .map(|handle| (tx, handle))
        };
        Ok(Cache { inner, stores: Mutex::new(stores) })
    }

    /// The threads sending uploads to the remote tier (each keeps a connection open).
    pub fn upload_threads(&self) -> usize {
        self.inner.uploads.as_ref().map_or(0, |u| u.threads)
    }

    /// Whether a tier is remote (lookups then want many threads).
    pub fn has_remote(&self) -> bool {
        self.inner.remote.is_some()
    }

    /// A build with an empty cache (`is_empty`) makes no lookups: its `pycs` would all
    /// have missed, and are counted so.
    pub fn note_misses(&self, pycs: u64) {
        if let Some(l) = &self.inner.local {
            l.counts.misses.fetch_add(pycs, Ordering::Relaxed);
        }
    }

    /// `n` units, `pycs` pycs, were compiled without a lookup, their lookups having
    /// stalled: each tier's `late` (neither hits nor misses).
    pub fn note_unlooked(&self, n: usize, pycs: u64) {
        self.inner.unlooked.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(l) = &self.inner.local {
            l.counts.late.fetch_add(pycs, Ordering::Relaxed);
        }
        if let Some(r) = &self.inner.remote {
            r.counts.late.fetch_add(pycs, Ordering::Relaxed);
        }
    }

    /// What `--format json` adds to the remote tier's counts (after [`Cache::finish`]):
    /// whether it was switched off and why (`off_reason`: `failure`, `timeout`,
    /// `credentials`, `damaged`, `throttled`), whether its uploads stopped (credentials
    /// that may only read), and the uploads not stored, those refused for their size
    /// among them. Empty without a remote tier.
    pub fn remote_outcome(&self) -> serde_json::Map<String, serde_json::Value> {
        let Some(r) = &self.inner.remote else { return serde_json::Map::new() };
        let report = self.inner.upload_report.lock().expect("cache lock");
        let not_stored = report
            .as_ref()
            .map_or(0, |u| u.off + u.dropped + u.too_large + u.throttled + u.refused + u.abandoned as u64);
        let off = !r.usable();
        let reason = off.then(|| r.off_reason.lock().expect("cache lock").unwrap_or("failure"));
        let json = serde_json::json!({
            "switched_off": off,
            "off_reason": reason,
            "uploads_stopped": r.uploads_off.load(Ordering::Relaxed),
            "uploads_not_stored": not_stored,
            "uploads_refused_too_large": r.refused_uploads.load(Ordering::Relaxed),
        });
        match json {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("an object"),
        }
    }

    /// Whether no lookup can hit: no remote tier and no entry in the local one (a cache's
    /// first build skips the lookups, reading no source twice). A local directory that
    /// cannot be read in full is not empty (its entries may still be read): the lookups
    /// are made, and the end of the run warns.
    pub fn is_empty(&self) -> bool {
        self.inner.remote.is_none()
            && self.inner.local.as_ref().is_none_or(|l| match l.disk.is_empty() {
                Ok(empty) => empty,
                Err(e) => {
                    l.unreadable(&e);
                    false
                }
            })
    }

    /// Look up a request: source bytes `source` compiled for target `t` at `levels` with
    /// `filename` as the embedded path (as marshal holds it).
    pub fn lookup(&self, t: usize, levels: &[u8], source: &[u8], filename: &[u8]) -> Found {
        self.inner.lookup(t, levels, source, filename)
    }

    /// Store a compile's result (in the background), replacing in every tier what is
    /// there: the entries were looked up and missed (or were damaged), or `--force` asked
    /// for fresh ones. No existence check is made before an upload.
    pub fn store(
        &self,
        t: usize,
        levels: &[u8],
        source: &[u8],
        filename: &[u8],
        result: Result<(Vec<Vec<u8>>, Vec<Warning>), CompileFailure>,
    ) {
        self.send(t, levels, source, filename, result, true);
    }

    /// Store the result of a compile made without a lookup (lookups stalled: see
    /// `pool::schedule::Backlog`) in each tier that holds no usable entry for it, read and
    /// checked first as [`Cache::store_remembered_failure`] does: a slow remote that holds
    /// it is not sent it again.
    pub fn store_unless_present(
        &self,
        t: usize,
        levels: &[u8],
        source: &[u8],
        filename: &[u8],
        result: Result<(Vec<Vec<u8>>, Vec<Warning>), CompileFailure>,
    ) {
        self.send(t, levels, source, filename, result, false);
    }

    /// Store a failure the state directory remembered (reported without compiling the
    /// source again) in each tier that holds no usable entry for it — a cache added or
    /// emptied since the compile that failed — so that other machines sharing the cache
    /// do not compile the file again either.
    pub fn store_remembered_failure(
        &self,
        t: usize,
        levels: &[u8],
        source: &[u8],
        filename: &[u8],
        failure: CompileFailure,
    ) {
        self.send(t, levels, source, filename, Err(failure), false);
    }

    fn send(
        &self,
        t: usize,
        levels: &[u8],
        source: &[u8],
        filename: &[u8],
        result: Result<(Vec<Vec<u8>>, Vec<Warning>), CompileFailure>,
        replace: bool,
    ) {
        if self.inner.settings.read_only {
            return;
        }
        let keys = self.inner.keys(t, levels, source);
        let job = StoreJob { t, keys, filename: filename.to_vec(), result, replace };
        let guard = self.stores.lock().expect("cache lock");
        match guard.as_ref() {
            Some((tx, _)) => {
                // A full queue waits: entries are never dropped on the floor silently.
                let _ = tx.send(job);
            }
            None => {
                drop(guard);
                self.inner.store(job);
            }
        }
    }

    /// This run's counts per tier (`local`, `remote`), for `compile --format json`.
    pub fn tier_totals(&self) -> Vec<(&'static str, Totals)> {
        let local = self.inner.local.as_ref().map(|l| ("local", l.counts.totals()));
        let remote = self.inner.remote.as_ref().map(|r| ("remote", r.totals()));
        local.into_iter().chain(remote).collect()
    }

    /// End of the run: the last stores, uploads (bounded wait), statistics, pruning.
    /// Returns the warnings to print and, with `verbose`, what each tier did.
    pub fn finish(&self, verbose: bool) -> (Vec<String>, Vec<String>) {
        if let Some((tx, handle)) = self.stores.lock().expect("cache lock").take() {
            drop(tx);
            let _ = handle.join();
        }
        self.inner.finish(verbose)
    }
}

/// `e` with the reason in words, as the other errors say it (`permission denied`, not
/// `Permission denied (os error 13)`).
pub fn in_words(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), crate::io::io_reason(e))
}

/// What `-v` says of a read-only local directory that does not exist.
pub fn absent_line(dir: &Path) -> String {
    format!(
        "cache local {}: does not exist; read-only, so every lookup in it misses",
        crate::report::ticked(dir)
    )
}

impl CacheError {
    /// `e`, in the cache at `path`.
    pub fn item(path: &Path, e: disk::ItemError) -> CacheError {
        CacheError::Item { path: path.to_path_buf(), verb: e.verb, item: e.path, source: in_words(&e.source) }
    }

    /// Whether this is a local directory that does not exist, opened read-only: an empty
    /// cache rather than a problem to warn about.
    pub fn missing_read_only(&self, read_only: bool) -> bool {
        read_only
            && matches!(self, CacheError::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What the server's throttling cost a run whose remote tier stayed on: `12 lookups were
/// throttled (HTTP 503/429) and counted as misses, 3 uploads were not sent`; None when
/// nothing was throttled through.
fn throttled(r: &Remote) -> Option<String> {
    let lookups = r.throttled_lookups.load(Ordering::Relaxed);
    let uploads = r.throttled_uploads.load(Ordering::Relaxed);
    let plural = crate::report::plural;
    let misses = if lookups == 1 { "a miss" } else { "misses" };
    let said = match (lookups, uploads) {
        (0, 0) => return None,
        (n, 0) => format!(
            "{} throttled (HTTP 503/429) and counted as {misses}",
            plural(n, "lookup was", "lookups were")
        ),
        (0, m) => {
            format!("{} throttled (HTTP 503/429) and not sent", plural(m, "upload was", "uploads were"))
        }
        (n, m) => format!(
            "{} throttled (HTTP 503/429) and counted as {misses}, {} not sent",
            plural(n, "lookup was", "lookups were"),
            plural(m, "upload was", "uploads were")
        ),
    };
    let not_waited = r.lookups_not_waited.load(Ordering::Relaxed);
    let asked = Duration::from_millis(r.longest_asked_ms.load(Ordering::Relaxed));
    let asked = if asked.subsec_millis() == 0 {
        format!("{} s", asked.as_secs())
    } else {
        format!("{:.1} s", asked.as_secs_f64())
    };
    let waits = format!(
        "the server asked to retry after {asked}, longer than a lookup waits: the {} compiled instead",
        if not_waited == 1 { "file was" } else { "files were" }
    );
    Some(match not_waited {
        0 => said + " (the server asked for fewer requests at once; the build sent fewer and went on)",
        n if n == lookups && uploads == 0 => format!("{said} ({waits})"),
        n => format!(
            "{said} (the server asked for fewer requests at once; the build sent fewer and went on; \
             for {} {waits})",
            plural(n, "lookup", "lookups")
        ),
    })
}

/// What the run's damaged remote entries come to, when none switched the remote off
/// (`too_damaged` says that): how many, the first one's object and damage, and what was
/// done with them.
fn damaged_remote(r: &Remote, read_only: bool) -> Option<String> {
    let n = r.counts.damaged.load(Ordering::Relaxed);
    let first = r.damaged_first.lock().expect("cache lock").clone()?;
    let (found, files, entries) = match n {
        1 => (format!("1 damaged entry found ({first})"), "its file was", "the entry"),
        n => (format!("{n} damaged entries found (the first: {first})"), "their files were", "the entries"),
    };
    let done = if read_only {
        format!("{entries} left as {} (--cache-read-only)", if n == 1 { "it is" } else { "they are" })
    } else if r.usable() {
        format!("{entries} uploaded again")
    } else {
        format!("{entries} not uploaded again (the remote was switched off)")
    };
    Some(format!(
        "{found}; {files} compiled instead and {done}; a server, proxy or storage that truncates or alters \
         objects does this"
    ))
}

/// What a run says of uploads refused the credentials (`refused`, the first refusal) that
/// lookups were answered with: `unsent` uploads were not stored since.
fn read_only_uploads(refused: &str, unsent: u64) -> String {
    let unsent = if unsent > 0 {
        format!(" ({} not stored)", crate::report::plural(unsent, "upload was", "uploads were"))
    } else {
        String::new()
    };
    // An HTTP cache or S3 server given no credentials says it already.
    let hint = if refused.contains("--cache-read-only") {
        ""
    } else {
        "; a job that may only read wants --cache-read-only"
    };
    format!(
        "{refused}; lookups with the same credentials were answered, so they may only read: uploads \
         stopped for the rest of this run{unsent}, lookups went on{hint}"
    )
}

/// `cache local `DIR`: 12 hits, 1 miss, …` for `-v` (a remote tier's with its retries).
/// `where_` quoted: a [`crate::report::ticked`] directory or a URL in backticks.
fn tier_line(name: &str, where_: &dyn std::fmt::Display, t: &Totals) -> String {
    format!("cache {name} {where_}: {}", t.describe("", name == "remote"))
}

/// Why a remote tier that returned `n` damaged entries in the run was switched off, and
/// the damage of the one that did.
fn too_damaged(n: u64, last: &dyn std::fmt::Display) -> String {
    format!(
        "{} (the remote is switched off at {MAX_REMOTE_DAMAGED} once they outnumber the entries it served \
         whole; the last: {last})",
        crate::report::plural(n, "damaged entry", "damaged entries")
    )
}

/// What the remote tier's `-v` line adds when a target's lookups stopped on a cold remote
/// (the target named when the run has several).
fn cold_remote(target: Option<&str>, unasked: u64) -> String {
    let of = target.map(|t| format!(" for {t}")).unwrap_or_default();
    format!(
        "; the first {COLD_REMOTE} lookups{of} all missed, so {} not made",
        crate::report::plural(unasked, "more was", "more were")
    )
}

/// Whether a body is surely stored by content alone, without reading all of it: its path
/// holds a `/` (so it can be no identifier, which could share the string object) and occurs
/// once in the body (only as the `co_filename` string the other code objects refer to). A
/// wrong guess could only cost a lookup, never a byte: every relocation is checked in full.
fn quickly_relocatable(body: &[u8], filename: &[u8]) -> bool {
    filename.len() > 1
        && filename.contains(&b'/')
        && memchr::memmem::find_iter(body, filename).take(2).count() == 1
}

/// The key inputs that are fixed for a target and worker script.
fn key_prefix(t: &Target, script: &str) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"hashpyc bytecode cache");
    field(&entry::FORMAT.to_le_bytes());
    field(&RECIPE_VERSION.to_le_bytes());
    field(blake3::hash(script.as_bytes()).as_bytes());
    field(b"cpython");
    field(t.sys_version.as_bytes());
    field(&t.hexversion.to_le_bytes());
    field(&t.magic.0);
    field(t.cache_tag.as_bytes());
    field(t.abiflags.as_bytes());
    field(&[u8::from(t.gil_disabled), u8::from(t.flag_ref_top), t.marshal_version]);
    field(t.isolation().to_string().as_bytes());
    // Settings a launcher starts it with that change its bytes (`-X no_debug_ranges`) or
    // what compiles (`-X int_max_str_digits=0`): none for an interpreter started plainly,
    // whose keys are as they were.
    for setting in t.settings.compiling() {
        field(format!("run setting {setting}").as_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_halves_the_cap_and_successes_raise_it() {
        let t = Throttle::new(8);
        let slot = t.enter(|| true).unwrap();
        assert_eq!(slot.cap, 8);
        t.ended(slot, Ended::Throttled);
        t.leave(slot);
        t.leave_after(Ended::Throttled);
        assert_eq!(t.now(), (2, 0));
        t.leave_after(Ended::Throttled);
        t.leave_after(Ended::Throttled);
        let slot = t.enter(|| true).unwrap();
        assert_eq!(slot.cap, 1, "never below one");
        assert_eq!(t.enter(|| false), None, "not sent once the tier is off");
        t.ended(slot, Ended::Succeeded);
        t.leave(slot);
        t.leave_after(Ended::Other);
        assert_eq!(t.now(), (2, 0));
        for _ in 0..20 {
            t.leave_after(Ended::Succeeded);
        }
        assert_eq!(t.now(), (8, 0), "up to the threads, no more");
    }

    // A burst throttled together halves the cap once, not once per request (8 at a cap of
    // 8 would leave one); and a retry waits for room under the cap as it is then: with the
    // cap halved to 4 and the 8 in flight, the first to retry waits until 4 have left. The
    // cap was checked only when a request started, and lowered only once a request was
    // throttled through all its attempts, so a burst retried whole.
    #[test]
    fn a_throttled_burst_halves_the_cap_once_and_its_retries_wait() {
        let t = Throttle::new(8);
        let burst: Vec<Slot> = (0..8).map(|_| t.enter(|| true).unwrap()).collect();
        for slot in &burst {
            t.ended(*slot, Ended::Throttled);
        }
        assert_eq!(t.now(), (4, 8), "halved once for the burst");
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let retry = t.again(burst[0], || asked.fetch_add(1, Ordering::Relaxed) < 3, None);
        assert_eq!(retry, None, "a retry with 7 in flight and a cap of 4 was sent");
        assert_eq!(t.now(), (4, 7));
        for slot in &burst[1..4] {
            t.leave(*slot);
        }
        let retry = t.again(burst[4], || true, None).expect("room");
        assert_eq!(retry, Slot { cap: 4, halvings: 1 });
        // Its throttling halves the cap again: it was sent after the last halving.
        t.ended(retry, Ended::Throttled);
        assert_eq!(t.now(), (2, 4));
    }

    // Counts of one are singular (they said "1 damaged entries", "1 more were not made").
    #[test]
    fn counts_of_one_are_singular() {
        let tail = "(the remote is switched off at 10 once they outnumber the entries it served whole; the last: \
                    bad checksum)";
        assert_eq!(too_damaged(1, &"bad checksum"), format!("1 damaged entry {tail}"));
        assert_eq!(too_damaged(31, &"bad checksum"), format!("31 damaged entries {tail}"));
        assert_eq!(cold_remote(None, 1), "; the first 256 lookups all missed, so 1 more was not made");
        assert_eq!(cold_remote(None, 2), "; the first 256 lookups all missed, so 2 more were not made");
    }

    /// A tier in memory, standing for a remote one.
    #[derive(Default)]
    struct Memory(Mutex<std::collections::HashMap<Key, Vec<u8>>>);

    impl Tier for Memory {
        fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        fn put(&self, key: &Key, data: &[u8]) -> Result<u64, TierError> {
            self.0.lock().unwrap().insert(*key, data.to_vec());
            Ok(data.len() as u64)
        }
        fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
            self.get(key)
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    /// A tier whose lookups fail, each attempt with the next of these HTTP statuses (0: no
    /// entry, answered).
    struct Failing(Mutex<Vec<u16>>, Mutex<Option<Arc<Remote>>>);

    impl Failing {
        fn new(statuses: Vec<u16>) -> Failing {
            Failing(Mutex::new(statuses), Mutex::default())
        }
    }

    impl Tier for Failing {
        fn get(&self, _: &Key) -> Result<Option<Vec<u8>>, TierError> {
            // With a remote set: its lookups' cap halved meanwhile, as by another request.
            if let Some(r) = self.1.lock().unwrap().as_ref() {
                r.lookup_cap.halve();
            }
            let status = self.0.lock().unwrap().remove(0);
            if status == 0 {
                return Ok(None);
            }
            Err(TierError::Transient { message: format!("GET: HTTP {status}"), retry_after: None })
        }
        fn put(&self, _: &Key, data: &[u8]) -> Result<u64, TierError> {
            Ok(data.len() as u64)
        }
        fn get_before_put(&self, key: &Key) -> Result<Option<Vec<u8>>, TierError> {
            self.get(key)
        }
        fn describe(&self) -> String {
            "failing".into()
        }
    }

    // A lookup is throttled (a miss, the tier kept) only when the server throttled every
    // attempt: one whose last attempt met a 503 after two 500s is a failure, which switches
    // the tier off. Only the last attempt decided before.
    #[test]
    fn throttled_means_every_attempt() {
        for (statuses, kept) in
            [(vec![503, 503, 503], true), (vec![500, 500, 503], false), (vec![503, 500, 503], false)]
        {
            let tier = Arc::new(Failing::new(statuses.clone()));
            let settings = CacheSettings {
                dir_from: None,
                dir: None,
                remote: Some(tier.clone() as Arc<dyn Tier>),
                max_size: 1 << 30,
                read_only: true,
                compression: Compression::None,
                timeout: Duration::from_secs(5),
                upload_wait: Duration::from_secs(5),
            };
            let inner = Inner::open(settings, &[], &[]).unwrap();
            assert!(inner.get(0, &[7; 32], 1, &mut false).is_none());
            assert!(tier.0.lock().unwrap().is_empty(), "{statuses:?}: not every attempt was made");
            assert_eq!(inner.remote.as_ref().unwrap().usable(), kept, "{statuses:?}");
        }
    }

    /// A remote tier of `tier` for lookups, with this time limit.
    fn remote_of(tier: Arc<dyn Tier>, timeout: Duration) -> Inner {
        let settings = CacheSettings {
            dir_from: None,
            dir: None,
            remote: Some(tier),
            max_size: 1 << 30,
            read_only: true,
            compression: Compression::None,
            timeout,
            upload_wait: Duration::from_secs(5),
        };
        Inner::open(settings, &[], &[]).unwrap()
    }

    // A retry waits for a slot under the cap no later than one time limit after the first
    // attempt (README: "No retry starts later than one time limit after the first attempt
    // did"): with the cap lowered to one meanwhile (by another request's retry throttled
    // again) and that slot held by another request that does not end, the lookup ends
    // throttled (a miss, the remote on) with the one attempt it made, not counted towards
    // the switch-off (refused once). It waited for the slot for as long as the slot stayed
    // taken.
    #[test]
    fn a_retry_waits_for_a_slot_no_longer_than_the_time_limit() {
        let tier = Arc::new(Failing::new(vec![503; 3]));
        let inner = Arc::new(remote_of(tier.clone(), Duration::from_millis(300)));
        let r = Arc::clone(inner.remote.as_ref().unwrap());
        while r.lookup_cap.now().0 > 2 {
            r.lookup_cap.leave_after(Ended::Throttled);
        }
        *tier.1.lock().unwrap() = Some(Arc::clone(&r));
        // Another request's slot, held until the lookup ends (or, should it never, until
        // the test gives up on it and fails).
        let other = r.lookup_cap.enter(|| true).unwrap();
        let (done, ended) = std::sync::mpsc::channel();
        let lookup = Arc::clone(&inner);
        std::thread::spawn(move || {
            let _ = done.send(lookup.get(0, &[7; 32], 1, &mut false).is_none());
        });
        let result = ended.recv_timeout(Duration::from_secs(60));
        r.lookup_cap.leave(other);
        assert_eq!(result, Ok(true), "the retry waited for a slot past the time limit");
        assert_eq!(tier.0.lock().unwrap().len(), 2, "one attempt, and no retry without a slot");
        assert!(r.usable());
        assert_eq!(r.throttled_lookups.load(Ordering::Relaxed), 1);
        assert_eq!(r.throttled_streak.load(Ordering::Relaxed), 0, "counted towards the switch-off");
        tier.1.lock().unwrap().take();
    }

    // A first attempt throttled leaves the cap as it was (a server refusing each request
    // once is answered on the retry: the cost is one retry); a retry throttled again halves
    // it. Every first attempt throttled halved it (once per round), down to one against a
    // server refusing each request once, so that retries waited behind it and were given up.
    #[test]
    fn only_a_retry_throttled_again_halves_the_cap() {
        let tier = Arc::new(Failing::new(vec![429, 0]));
        let inner = remote_of(tier.clone(), Duration::from_secs(5));
        let r = Arc::clone(inner.remote.as_ref().unwrap());
        assert_eq!(r.get(&[7; 32]), Some(None), "answered (no entry) after one retry");
        assert_eq!(r.lookup_cap.now(), (remote::LOOKUPS, 0), "a first attempt throttled lowered the cap");
        assert_eq!(r.throttled_lookups.load(Ordering::Relaxed), 0);
        // Refused three times: the first retry halves it, and the second, sent after that
        // halving, again.
        *tier.0.lock().unwrap() = vec![429, 503, 429];
        assert_eq!(r.get(&[8; 32]), None, "throttled through");
        assert_eq!(r.lookup_cap.now(), (remote::LOOKUPS / 4, 0));
        assert_eq!(r.throttled_lookups.load(Ordering::Relaxed), 1);
        assert!(r.usable());
    }

    // Retries waiting for room under a lowered cap go before requests not yet sent: these
    // took each slot as it freed, and the retries ran out of time (lookups counted as
    // throttled misses, uploads not sent, against a server answering every retry).
    #[test]
    fn retries_go_before_first_attempts() {
        let t = Arc::new(Throttle::new(2));
        let a = t.enter(|| true).unwrap();
        let b = t.enter(|| true).unwrap();
        t.halve();
        // b retries, and another request waits for its first slot: a holds the only one.
        let (retried, retry) = std::sync::mpsc::channel();
        let (firsted, first) = std::sync::mpsc::channel();
        let (t1, t2) = (Arc::clone(&t), Arc::clone(&t));
        std::thread::spawn(move || {
            let _ = retried.send(t1.again(b, || true, None));
        });
        while t.state.lock().unwrap().retries_waiting == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::spawn(move || {
            let _ = firsted.send(t2.enter(|| true));
        });
        std::thread::sleep(Duration::from_millis(50));
        t.leave(a);
        let got = retry.recv_timeout(Duration::from_secs(60)).expect("the retry got no slot").unwrap();
        assert!(first.recv_timeout(Duration::from_millis(200)).is_err(), "a first attempt took the slot");
        t.leave(got);
        let got = first.recv_timeout(Duration::from_secs(60)).expect("no slot once the retry was done");
        t.leave(got.unwrap());
        assert_eq!(t.now(), (1, 0));
    }

    // A sound entry read while the decoding budget is used up (decompression bombs in
    // flight) is a plain miss in either tier: not damage, not removed, never switching the
    // remote off, served once there is room. It was counted damaged (ten switched the
    // remote off).
    #[test]
    fn a_used_up_decoding_budget_is_a_miss_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let key: Key = [5; 32];
        let payload = Payload::Body {
            filename: b"/app/m.py".to_vec(),
            warnings: vec![],
            body: b"\xe3 code".repeat(100),
        };
        let memory = Arc::new(Memory::default());
        memory.put(&key, &entry::encode(&key, &payload, Compression::Zstd)).unwrap();
        let settings = CacheSettings {
            dir_from: None,
            dir: Some(dir.path().to_path_buf()),
            remote: Some(memory.clone() as Arc<dyn Tier>),
            max_size: 1 << 30,
            read_only: false,
            compression: Compression::None,
            timeout: Duration::from_secs(5),
            upload_wait: Duration::from_secs(5),
        };
        let inner = Inner::open(settings, &[], &[]).unwrap();
        let (l, r) = (inner.local.as_ref().unwrap(), inner.remote.as_ref().unwrap());
        l.disk.put(&key, &entry::encode(&key, &payload, Compression::None)).unwrap();
        remote::FULL.set(true);
        for _ in 0..MAX_REMOTE_DAMAGED {
            assert!(inner.get(0, &key, 1, &mut false).is_none());
        }
        remote::FULL.set(false);
        let damaged = (l.counts.damaged.load(Ordering::Relaxed), r.counts.damaged.load(Ordering::Relaxed));
        assert_eq!(damaged, (0, 0));
        assert!(r.usable() && r.found_damaged.lock().unwrap().is_empty());
        assert!(l.disk.contains(&key), "the local entry was removed");
        assert!(matches!(inner.get(0, &key, 1, &mut false), Some((p, Served::Local)) if p == payload));
        l.disk.remove(&key);
        assert!(matches!(inner.get(0, &key, 1, &mut false), Some((p, Served::Remote)) if p == payload));
    }
}
