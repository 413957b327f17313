//! Running the compile units over `jobs` slots. Each slot is a thread owning one worker
//! per target; units are taken largest first (a big file last would leave the other
//! slots idle). A unit is one source for the targets that need it: the source is read
//! once, hashed per target, sent to each target's worker, and its pycs written right
//! away by the slot. Files compiled in a long-lived child as they are go to it in groups
//! of small ones, one write out and one back (see [`GROUP_FILES`]).
//!
//! Determinism: with `Isolation::LongLived`, a child whose compile changed the
//! interpreter for good (imported a module, interned a non-ASCII identifier) is replaced,
//! and with `refork_suspects` a result that could depend on strings interned by earlier
//! compiles is deferred and recompiled in a fresh fork once the long-lived phase drains.
//! On 3.13+ the deferred files are compiled instead in long-lived children of their own,
//! a file first in a child (pristine) or certified there by probing which of its set
//! strings are interned (see `worker.py`, `_ambiguous`): a child serves several deferred
//! files where each used to cost a fork, and a file whose set strings an earlier file of
//! the child has as words goes first in a new child.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::frame::Job;
use super::{Outcome, Worker, WorkerFailure, WorkerSpec, predict};
use crate::marshal::{self, CodeLayout};
use crate::plan::{Action, SourcePlan};
use crate::pyc::{self, HashMode, Header};
use crate::report::Reporter;
use crate::target::Isolation;
use crate::write;

/// The failure kind `HASHPYC_VERIFY` reports (never stored in the cache).
const VERIFY_FAILED: &str = "hashpyc internal error";

/// What happened to one source for one target.
#[derive(Debug, Clone)]
pub enum UnitResult {
    Compiled {
        warnings: Vec<super::Warning>,
    },
    /// Written from the bytecode cache.
    Cached {
        warnings: Vec<super::Warning>,
    },
    /// Compiled, but the compile raised warnings and `-W error` makes them errors: nothing
    /// was written (the result was still stored in the cache, which keeps the warnings).
    WarningsAsErrors {
        warnings: Vec<super::Warning>,
    },
    /// The source (whose hash for this target is given) does not compile.
    Failed(Box<super::CompileFailure>, pyc::SourceHash),
    /// The source could not be read, a pyc not written, or the worker failed.
    Error(String),
    /// Compiled (or found in the cache), and a level's pyc could not be written after
    /// `written` pycs of the levels before it were: those count, the error is the unit's.
    PartlyWritten {
        written: usize,
        cached: bool,
        error: String,
    },
    /// The source vanished between the walk and the read.
    Vanished,
    /// Compiled (or found in the cache), and its pycs from the level of `written` on not
    /// written: there was no room left on the disk ([`write::no_room`], said once for the run).
    NoRoom {
        written: usize,
        cached: bool,
    },
}

/// Why a unit's pycs were not all written.
#[derive(Debug)]
pub enum Unwritten {
    /// The source went away meanwhile ([`write::WriteError::source_gone`]).
    Gone,
    /// No room left on the disk ([`write::no_room`]).
    NoRoom,
    /// Any other error, in words.
    Error(String),
}

impl Unwritten {
    /// Why writing the pycs of `source` failed with `e`.
    pub fn of(e: &write::WriteError, source: &Path) -> Unwritten {
        if e.source_gone(source) {
            Unwritten::Gone
        } else if e.no_room() {
            Unwritten::NoRoom
        } else {
            Unwritten::Error(error_chain(e))
        }
    }
}

/// Results keyed by (source index, target index).
pub type Results = Vec<(usize, usize, UnitResult)>;

/// A run-stopping failure: no worker can be started, or workers keep dying.
#[derive(Debug, Clone)]
pub struct Fatal {
    pub target: usize,
    pub failure: WorkerFailure,
}

pub struct Schedule<'a> {
    pub plans: &'a [SourcePlan],
    pub specs: &'a [WorkerSpec],
    pub paths: &'a crate::plan::PycPaths<'a>,
    pub mode: HashMode,
    pub hardlink_dupes: bool,
    pub jobs: usize,
    /// Cross-check every long-lived result against a fresh fork (`HASHPYC_VERIFY=1`).
    pub verify: bool,
    /// Where results are stored for reuse.
    pub cache: Option<&'a crate::cache::Cache>,
    /// `-W error`: a compile that raised warnings writes nothing.
    pub warnings_as_errors: bool,
    /// Per target, a worker started before the pool (the one whose hello confirmed a
    /// launcher's remembered probe, see `compile::confirm_targets`): the first slot that
    /// needs a worker of that target takes it instead of starting one.
    pub started: Vec<Mutex<Option<Worker>>>,
    /// The open-file limit, when it leaves no room for a worker: a slot that needs one
    /// stops the run with [`WorkerFailure::NoRoom`] instead of starting it.
    pub no_room: Option<u64>,
}

impl Schedule<'_> {
    /// Start a worker for `spec`, or take `started`, when the open-file limit leaves room.
    fn spawn(
        &self,
        spec: &crate::pool::WorkerSpec,
        started: Option<Worker>,
    ) -> Result<Worker, WorkerFailure> {
        if let Some(limit) = self.no_room {
            return Err(WorkerFailure::NoRoom(limit));
        }
        super::STATS.workers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        started.map_or_else(|| Worker::spawn(spec), Ok)
    }
}

/// The units waiting for a worker, largest source first (a big file last would leave the
/// other slots idle). Fed by the caller, all at once or as cache lookups miss, until it is
/// closed; slots block on it while it is open and empty.
pub struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Units still waiting for a cache lookup, which idle slots may take when lookups
    /// stall (see [`Backlog`]).
    backlog: std::sync::OnceLock<std::sync::Arc<Backlog>>,
}

/// The units the cache stage has yet to look up, largest first, claimed one at a time by
/// the lookup threads — or by a slot that has nothing to compile while no lookup has
/// finished for [`Backlog::STALLED`]: a remote that does not answer (until its timeout
/// switches it off) or answers very slowly must leave the compile slots idle no longer
/// than that. With a working remote lookups finish every few milliseconds and slots never
/// take from here, so a build whose every file is on the server still compiles nothing.
pub struct Backlog {
    units: Vec<(usize, Vec<usize>)>,
    next: AtomicUsize,
    start: std::time::Instant,
    /// When a lookup last finished (or the stage started), in ms since `start`.
    progress_ms: std::sync::atomic::AtomicU64,
    /// Units slots took while lookups stalled.
    taken_by_slots: AtomicUsize,
    /// Their sources: compiled without a lookup, their entries stored only where none is.
    unlooked: Mutex<std::collections::HashSet<usize>>,
}

impl Backlog {
    /// How long lookups may make no progress before idle slots compile without them.
    pub const STALLED: std::time::Duration = std::time::Duration::from_millis(500);

    pub fn new(units: Vec<(usize, Vec<usize>)>) -> Backlog {
        Backlog {
            units,
            next: AtomicUsize::new(0),
            start: std::time::Instant::now(),
            progress_ms: std::sync::atomic::AtomicU64::new(0),
            taken_by_slots: AtomicUsize::new(0),
            unlooked: Mutex::default(),
        }
    }

    /// The next unit nobody has taken yet.
    pub fn claim(&self) -> Option<&(usize, Vec<usize>)> {
        self.units.get(self.next.fetch_add(1, Ordering::SeqCst))
    }

    /// A lookup finished.
    pub fn progress(&self) {
        self.progress_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn stalled(&self) -> bool {
        let since = self.start.elapsed().as_millis() as u64;
        since.saturating_sub(self.progress_ms.load(Ordering::Relaxed)) >= Self::STALLED.as_millis() as u64
            && self.next.load(Ordering::SeqCst) < self.units.len()
    }
}

#[derive(Default)]
struct QueueState {
    heap: std::collections::BinaryHeap<(u64, std::cmp::Reverse<usize>, Vec<usize>)>,
    closed: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue::new()
    }
}

impl Queue {
    pub fn new() -> Queue {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            backlog: std::sync::OnceLock::new(),
        }
    }

    /// Queue source `src` (an index into the plans) for `targets`, with its size.
    pub fn push(&self, src: usize, targets: Vec<usize>, size: u64) {
        let mut st = self.state.lock().expect("queue lock");
        st.heap.push((priority(src, size), std::cmp::Reverse(src), targets));
        drop(st);
        self.ready.notify_one();
    }

    /// Let idle slots take units from `backlog` when its lookups stall.
    pub fn set_backlog(&self, backlog: std::sync::Arc<Backlog>) {
        let _ = self.backlog.set(backlog);
    }

    /// How many units idle slots took from the backlog while its lookups stalled.
    pub fn taken_from_backlog(&self) -> usize {
        self.backlog.get().map_or(0, |b| b.taken_by_slots.load(Ordering::Relaxed))
    }

    /// The sources idle slots took from the backlog (compiled without a lookup).
    pub fn unlooked_sources(&self) -> Vec<usize> {
        self.backlog
            .get()
            .map_or_else(Vec::new, |b| b.unlooked.lock().expect("queue lock").iter().copied().collect())
    }

    /// Whether source `src` was taken from the backlog by a slot: compiled without a lookup.
    fn unlooked(&self, src: usize) -> bool {
        self.backlog.get().is_some_and(|b| b.unlooked.lock().expect("queue lock").contains(&src))
    }

    /// Nothing more will be pushed.
    pub fn close(&self) {
        self.state.lock().expect("queue lock").closed = true;
        self.ready.notify_all();
    }

    /// The next unit, waiting while the queue is open and empty; None once it is closed
    /// and drained, or when `stop` is set.
    fn pop(&self, stop: &AtomicBool) -> Option<(usize, Vec<usize>)> {
        let mut st = self.state.lock().expect("queue lock");
        loop {
            // A disk with no room left: no unit is started whose pycs could not be written.
            if stop.load(Ordering::SeqCst) || crate::interrupt::requested() || write::no_room().is_some() {
                return None;
            }
            if let Some((_, std::cmp::Reverse(src), targets)) = st.heap.pop() {
                return Some((src, targets));
            }
            if st.closed {
                return None;
            }
            if let Some(backlog) = self.backlog.get()
                && backlog.stalled()
                && let Some((src, targets)) = backlog.claim()
            {
                backlog.taken_by_slots.fetch_add(1, Ordering::Relaxed);
                backlog.unlooked.lock().expect("queue lock").insert(*src);
                return Some((*src, targets.clone()));
            }
            let wait = if self.backlog.get().is_some() { 50 } else { 200 };
            st = self.ready.wait_timeout(st, std::time::Duration::from_millis(wait)).expect("queue lock").0;
        }
    }

    /// The next unit, if one is waiting now, more than `keep` others wait behind it, and
    /// `fits` accepts its source index.
    fn try_pop(&self, keep: usize, fits: impl Fn(usize) -> bool) -> Option<(usize, Vec<usize>)> {
        let mut st = self.state.lock().expect("queue lock");
        match st.heap.peek() {
            Some((_, std::cmp::Reverse(src), _)) if st.heap.len() > keep && fits(*src) => {}
            _ => return None,
        }
        st.heap.pop().map(|(_, std::cmp::Reverse(src), targets)| (src, targets))
    }

    /// Wake every waiting slot (a stop was requested).
    fn wake(&self) {
        self.ready.notify_all();
    }
}

/// The order in which queued units are compiled: largest first, or as `HASHPYC_ORDER`
/// (`reverse`, `shuffle:SEED`) says, so that tests can show the bytes do not depend on it.
fn priority(src: usize, size: u64) -> u64 {
    static ORDER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    match ORDER.get_or_init(|| std::env::var("HASHPYC_ORDER").ok()).as_deref() {
        Some("reverse") => u64::MAX - size,
        Some(spec) if spec.starts_with("shuffle:") => {
            // splitmix64 of (seed, source index): reproducible for a seed.
            let seed = spec["shuffle:".len()..].parse::<u64>().unwrap_or(0);
            let mut z = seed ^ (src as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        _ => size,
    }
}

struct Shared<'a> {
    s: &'a Schedule<'a>,
    queue: &'a Queue,
    results: Mutex<Results>,
    /// Deferred units, how many slots are still in phase 1, and how many slots are
    /// compiling a deferred unit (which a slot that retires may hand back: see
    /// [`Slot::limited`]).
    deferred: Mutex<(DeferredQueue, usize, usize)>,
    deferred_cv: Condvar,
    births: Mutex<Vec<Births>>,
    fatal: Mutex<Option<Fatal>>,
    stop: AtomicBool,
    /// Per target, its units in a row lost to dying workers; reset by any success of that
    /// target's (another target's successes say nothing of this one's workers).
    crash_streak: Vec<AtomicUsize>,
    /// Slots started and not retired (see [`Slot::limited`]), and slots that could not be
    /// started or retired, for a process or memory limit whose first reason is `limit`.
    running: AtomicUsize,
    lost: AtomicUsize,
    limit: Mutex<Option<String>>,
    reporter: &'a dyn Reporter,
}

/// Compile the units `queue` hands out (at most `expected` of them) until it is closed and
/// drained; returns per-unit results, or the fatal failure that stopped the run.
pub fn run(
    s: &Schedule<'_>,
    queue: &Queue,
    expected: usize,
    reporter: &dyn Reporter,
) -> (Results, Option<Fatal>) {
    let slots = s.jobs.clamp(1, expected.max(1));
    let shared = Shared {
        s,
        queue,
        results: Mutex::new(Vec::new()),
        deferred: Mutex::new((DeferredQueue::default(), slots, 0)),
        deferred_cv: Condvar::new(),
        births: Mutex::new((0..s.specs.len()).map(|_| Births::default()).collect()),
        fatal: Mutex::new(None),
        stop: AtomicBool::new(false),
        crash_streak: (0..s.specs.len()).map(|_| AtomicUsize::new(0)).collect(),
        running: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        limit: Mutex::new(None),
        reporter,
    };
    *super::FEWER.lock().expect("fewer lock") = None;
    if expected > 0 {
        std::thread::scope(|scope| {
            let mut pauses = 0;
            let mut i = 0;
            while i < slots {
                let shared = &shared;
                let spawned = std::thread::Builder::new()
                    .name(format!("hashpyc-slot-{i}"))
                    .spawn_scoped(scope, move || Slot::new(shared).run());
                match spawned {
                    // No slot runs yet: as the last slot running does for its worker (see
                    // `Slot::limited`), the first one is tried again after pauses (room
                    // comes back as processes end), the workers that confirmed launchers'
                    // probes ended first (see `compile::confirm_targets`): their processes
                    // are room for it, and slots start their own.
                    Err(_) if i == 0 && limit_pause(pauses, crate::interrupt::requested) == Some(true) => {
                        pauses += 1;
                        for started in &s.started {
                            drop(started.lock().expect("started lock").take());
                        }
                        continue;
                    }
                    // Counted once started, never before: a slot that hands its unit back
                    // must leave one running that takes it (see `Slot::limited`).
                    Ok(_) => {
                        shared.running.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        // A process or memory limit: the slots that started do the work,
                        // none stops the run. Those that did not are never in phase 1.
                        let reason = crate::io::start_reason(&e);
                        shared.limit.lock().expect("limit lock").get_or_insert(reason.clone());
                        shared.lost.fetch_add(slots - i, Ordering::SeqCst);
                        let mut d = shared.deferred.lock().expect("deferred lock");
                        d.1 -= slots - i;
                        shared.deferred_cv.notify_all();
                        if i == 0 {
                            let failure = WorkerFailure::Thread(reason);
                            *shared.fatal.lock().expect("fatal lock") = Some(Fatal { target: 0, failure });
                        }
                        break;
                    }
                }
                i += 1;
            }
        });
    }
    let fatal = shared.fatal.into_inner().expect("fatal lock");
    let lost = shared.lost.into_inner();
    if let Some(reason) = shared.limit.into_inner().expect("limit lock")
        && lost > 0
        && fatal.is_none()
    {
        let fewer = super::Fewer { planned: slots, running: slots - lost, reason };
        *super::FEWER.lock().expect("fewer lock") = Some(fewer);
    }
    (shared.results.into_inner().expect("results lock"), fatal)
}

/// Read a source whose size the plan saw (one allocation, no extra stat), as the plan does,
/// through a handle on its directory, returned for writing its pycs there.
fn read_source(path: &Path, size_hint: u64) -> std::io::Result<(Vec<u8>, std::os::fd::OwnedFd)> {
    let mut buf = Vec::with_capacity(usize::try_from(size_hint).unwrap_or(0).saturating_add(4096));
    let dir = crate::io::open_dir_of(path)?;
    crate::io::read_source_at(std::os::fd::AsFd::as_fd(&dir), path, &mut buf)?;
    Ok((buf, dir))
}

/// The request that compiles source `src` for target `t` as the plan says (no
/// certificate asked); None when the plan compiles nothing there.
fn job<'j>(s: &'j Schedule<'j>, src: usize, t: usize, source: &'j [u8]) -> Option<Job<'j>> {
    let plan = &s.plans[src];
    let Action::Compile { prefix, .. } = &plan.actions[t] else { return None };
    Some(Job {
        levels: &s.paths.levels[..usize::from(*prefix)],
        filename: plan.embedded().as_os_str().as_encoded_bytes(),
        source,
        certify: false,
        probe: false,
    })
}

/// Where a long-lived target first compiles a source in phase 1, by the guess about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// In the long-lived child, as it is.
    Warm,
    /// In the long-lived child, with a request for a certificate for its frozensets: they
    /// look certifiable; without one it goes to phase 2.
    Certify,
    /// Straight to phase 2: it would taint a long-lived child, or its bytes could depend on
    /// the child's history. Better than a warm compile first, which would be redone.
    Deferred,
}

/// The route of `source` for a long-lived target (`refork_suspects`: 3.12+), guessing
/// about the source at most once per kind of guess: 3.11 needs no look at set displays; a
/// guess made without one is made again for a target that needs it, and one made with
/// them serves every target. Only where a file is compiled depends on the guess.
fn route(source: &[u8], refork_suspects: bool, guess: &mut Option<(bool, predict::Prediction)>) -> Route {
    let g = match *guess {
        Some((sets, g)) if sets || !refork_suspects => g,
        _ => {
            let g = predict::predict(source, refork_suspects);
            *guess = Some((refork_suspects, g));
            g
        }
    };
    if refork_suspects && g.certifiable && !g.imports_unicodedata {
        Route::Certify
    } else if g.imports_unicodedata || (refork_suspects && g.frozenset_with_str) {
        Route::Deferred
    } else {
        Route::Warm
    }
}

/// A unit deferred to phase 2: a source for one target, with the strings of its set
/// displays and their [`predict::word_hash`]es, and the hashes of its words, when the
/// target batches deferred files.
struct Deferred {
    src: usize,
    t: usize,
    /// Predicted to import `unicodedata`, which ends any long-lived child: a fresh fork.
    fork: bool,
    strings: Vec<Vec<u8>>,
    hashes: Vec<u64>,
    /// [`predict::word_hashes`] of the source, sorted, without repeats.
    words: Vec<u64>,
    /// How many queued deferred files of the same target have a set string among this
    /// file's words (compiled before them in a child, it would send them to a new one),
    /// and how many have one of this file's set strings among their words.
    blocks: usize,
    blocked_by: usize,
}

impl Deferred {
    /// Whether compiling `self` in a child would make `later` (same target) conflict there.
    fn blocks(&self, later: &Deferred) -> bool {
        later.hashes.iter().any(|h| self.words.binary_search(h).is_ok())
    }
}

/// The deferred units waiting for phase 2.
#[derive(Default)]
struct DeferredQueue {
    units: VecDeque<Deferred>,
}

impl DeferredQueue {
    fn push(&mut self, mut unit: Deferred) {
        for q in self.units.iter_mut().filter(|q| q.t == unit.t && !q.fork && !unit.fork) {
            if unit.blocks(q) {
                unit.blocks += 1;
                q.blocked_by += 1;
            }
            if q.blocks(&unit) {
                q.blocks += 1;
                unit.blocked_by += 1;
            }
        }
        self.units.push_back(unit);
    }

    fn remove(&mut self, i: usize) -> Option<Deferred> {
        let unit = self.units.remove(i)?;
        for q in self.units.iter_mut().filter(|q| q.t == unit.t && !q.fork && !unit.fork) {
            if unit.blocks(q) {
                q.blocked_by -= 1;
            }
            if q.blocks(&unit) {
                q.blocks -= 1;
            }
        }
        Some(unit)
    }

    /// Which unit to take next, given which ones the running child can take without a
    /// conflict (`fits`): of those, the one whose words would send the fewest queued
    /// files to a new child; with none, the one the most queued files would send to a new
    /// child (it goes first in one, where nothing can); the first in the queue on a tie.
    /// The choice decides how many children compile the deferred files, never a byte.
    fn next(&self, fits: impl Fn(&Deferred) -> bool) -> Option<usize> {
        let fitting = self.units.iter().enumerate().filter(|(_, u)| !u.fork && fits(u));
        if let Some((i, _)) = fitting.min_by_key(|(i, u)| (u.blocks, *i)) {
            return Some(i);
        }
        let batchable = self.units.iter().enumerate().filter(|(_, u)| !u.fork && !u.hashes.is_empty());
        match batchable.max_by_key(|(i, u)| (u.blocked_by, std::cmp::Reverse(*i))) {
            Some((i, u)) if u.blocked_by > 0 => Some(i),
            _ => (!self.units.is_empty()).then_some(0),
        }
    }
}

/// The long-lived child compiling a slot's deferred files for one target in phase 2.
#[derive(Default)]
struct Batch {
    /// Which child (see [`Worker::child`]; 0: none yet).
    generation: u64,
    /// Hashes of the words of the files it compiled ([`predict::word_hashes`]).
    words: std::collections::HashSet<u64>,
    /// The [`predict::word_hash`]es of the strings the last new child was asked to probe
    /// at its birth, until it answers.
    sent: Vec<u64>,
}

impl Batch {
    /// Whether one of the set strings `hashes` stand for is a word of a file this child
    /// compiled.
    fn conflicts(&self, hashes: &[u64]) -> bool {
        hashes.iter().any(|h| self.words.contains(h))
    }
}

/// Per target, what the births of batch children found (the same in every pristine fork
/// of the target's zygotes), as [`predict::word_hash`]es: the strings probed, and those
/// of them interned (words a later file's set strings may meet without a conflict).
#[derive(Default)]
struct Births {
    probed: std::collections::HashSet<u64>,
    interned: std::collections::HashSet<u64>,
}

struct Slot<'a> {
    sh: &'a Shared<'a>,
    /// Per target: the long-lived child that compiles deferred files in phase 2.
    batch: Vec<Batch>,
    /// Directories this slot has created or seen, so each is checked once.
    dirs: std::collections::HashSet<std::path::PathBuf>,
    /// Per source read and not yet done with, the directory it was read from: its pycs are
    /// written there (`write::Base`).
    read_from: std::cell::RefCell<std::collections::HashMap<usize, std::os::fd::OwnedFd>>,
    workers: Vec<Option<Worker>>,
    /// Second zygotes for `verify`, so checking a result never ends the long-lived child
    /// whose history is under test.
    verifiers: Vec<Option<Worker>>,
    /// Retired: a process or memory limit left no room for its worker (see [`Slot::limited`]).
    retired: bool,
    /// Pauses taken for a limit since the last compile that went through.
    pauses: usize,
}

/// At most how many files, and about how many bytes of source, a slot sends to a long-lived
/// child in one group; only files of at most `GROUP_FILE_BYTES` are grouped (a larger one's
/// compile dwarfs a round trip), and only while more than `GROUP_FILES` units per slot are
/// still queued, so that the slots stay balanced at the end of the queue and a small tree
/// (a pre-commit run's ten files) is shared out file by file as before.
pub(crate) const GROUP_FILES: usize = 8;
const GROUP_BYTES: usize = 128 * 1024;
const GROUP_FILE_BYTES: u64 = 32 * 1024;

/// A unit taken from the queue: source index, targets, and once read, its source and the
/// guess about it.
type Taken = (usize, Vec<usize>, Option<Vec<u8>>, Option<(bool, predict::Prediction)>);

/// A unit of a group: source index, source, guess.
type Grouped = (usize, Vec<u8>, Option<(bool, predict::Prediction)>);

enum Step {
    Done(UnitResult),
    Deferred,
    /// A process or memory limit left no room for this slot's worker: the slot retires,
    /// handing the unit back (see [`Slot::limited`]).
    Retire,
}

/// What a slot does when a process or memory limit kept its worker from starting or
/// forking (see [`Slot::limited`]).
enum Limited {
    /// Try again: the last slot running, after a pause.
    Again,
    /// Hand the unit back and retire: other slots go on.
    Retire,
    /// The run stops (the failure is its fatal error), or was interrupted.
    Stop,
}

/// The pauses of the last slot running before each new try at a worker that a process or
/// memory limit kept from starting or forking: room may come back as processes end (its
/// own zygote's child, another program's).
pub(crate) const LIMIT_PAUSES_MS: [u64; 6] = [50, 100, 200, 400, 800, 1600];

/// Take pause `n` of [`LIMIT_PAUSES_MS`] before trying again at what a process or memory
/// limit kept from starting: Some(true) once it is over, Some(false) as soon as `stopped`
/// (an interrupt, the run stopping), None when every pause was taken (the limit's failure
/// is then the run's error).
pub(crate) fn limit_pause(n: usize, stopped: impl Fn() -> bool) -> Option<bool> {
    let &ms = LIMIT_PAUSES_MS.get(n)?;
    let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        if stopped() {
            return Some(false);
        }
        std::thread::sleep(left.min(std::time::Duration::from_millis(20)));
    }
    Some(true)
}

impl<'a> Slot<'a> {
    fn new(sh: &'a Shared<'a>) -> Self {
        let none = || (0..sh.s.specs.len()).map(|_| None).collect();
        let batch = (0..sh.s.specs.len()).map(|_| Default::default()).collect();
        Slot {
            sh,
            batch,
            dirs: Default::default(),
            read_from: Default::default(),
            workers: none(),
            verifiers: none(),
            retired: false,
            pauses: 0,
        }
    }

    fn run(mut self) {
        // Phase 1: the queue, largest first. Files bound for a long-lived child as they
        // are (see `Slot::plain`) go to it in groups: one write there, one reply back (see
        // `worker.py`, `_child_loop`), instead of a round trip and two task switches each.
        let mut next: Option<Taken> = None;
        loop {
            let (src, targets, source, mut guess) = match next.take() {
                Some(taken) => taken,
                None => match self.sh.queue.pop(&self.sh.stop) {
                    Some((src, targets)) => (src, targets, None, None),
                    None => break,
                },
            };
            if self.stopped() {
                break;
            }
            let Some(source) = source.or_else(|| self.read_unit(src, &targets)) else { continue };
            let small = |src: usize| self.sh.s.plans[src].size <= GROUP_FILE_BYTES;
            if !small(src) || !self.plain(src, &targets, &source, &mut guess) {
                self.unit_read(src, &targets, false, &source, &mut guess);
                if self.retired {
                    break;
                }
                continue;
            }
            let keep = GROUP_FILES * self.sh.s.jobs;
            let mut bytes = source.len();
            let mut group = vec![(src, source, guess)];
            while group.len() < GROUP_FILES
                && bytes < GROUP_BYTES
                && let Some((more, more_targets)) = self.sh.queue.try_pop(keep, small)
            {
                let Some(more_source) = self.read_unit(more, &more_targets) else { continue };
                let mut more_guess = None;
                if more_targets != targets || !self.plain(more, &more_targets, &more_source, &mut more_guess)
                {
                    next = Some((more, more_targets, Some(more_source), more_guess));
                    break;
                }
                bytes += more_source.len();
                group.push((more, more_source, more_guess));
            }
            if group.len() > 1 {
                for &t in &targets {
                    self.send_group(t, &group);
                }
            }
            let mut group = group.into_iter();
            for (src, source, mut guess) in group.by_ref() {
                self.unit_read(src, &targets, false, &source, &mut guess);
                if self.retired {
                    break;
                }
            }
            if self.retired {
                // The rest of the group, and the unit read after it, go back too.
                for (src, _, _) in group {
                    self.hand_back(src, &targets);
                }
                break;
            }
        }
        if self.retired
            && let Some((src, targets, _, _)) = next.take()
        {
            self.hand_back(src, &targets);
        }
        // End long-lived children: phase 2 forks from pristine zygotes only.
        for w in self.workers.iter_mut().flatten() {
            let _ = w.end_child();
        }
        {
            let mut d = self.sh.deferred.lock().expect("deferred lock");
            d.1 -= 1;
            self.sh.deferred_cv.notify_all();
        }
        if self.retired {
            return;
        }
        // Phase 2: deferred units, in fresh forks (3.13+: fresh long-lived children), until
        // every slot has left phase 1.
        loop {
            let item = {
                let mut d = self.sh.deferred.lock().expect("deferred lock");
                loop {
                    if self.stopped() {
                        break None;
                    }
                    // Preferably a deferred file the running child can take without a
                    // conflict (see batch_unit and DeferredQueue::next).
                    if let Some(item) = d.0.next(|u| self.fits(u.t, &u.hashes)).and_then(|i| d.0.remove(i)) {
                        d.2 += 1;
                        break Some(item);
                    }
                    // Done once no slot is in phase 1 nor compiling a deferred unit, which
                    // a slot that retires hands back (see `limited`).
                    if d.1 == 0 && d.2 == 0 {
                        break None;
                    }
                    d = self.sh.deferred_cv.wait(d).expect("deferred lock");
                }
            };
            let Some(unit) = item else { break };
            if self.batches(unit.t) && !unit.fork {
                self.batch_unit(unit);
            } else {
                self.unit(unit.src, &[unit.t], true);
            }
            let mut d = self.sh.deferred.lock().expect("deferred lock");
            d.2 -= 1;
            self.sh.deferred_cv.notify_all();
            if self.retired {
                return;
            }
        }
    }

    fn stopped(&self) -> bool {
        self.sh.stop.load(Ordering::SeqCst) || crate::interrupt::requested() || write::no_room().is_some()
    }

    /// Whether target `t`'s deferred files go to long-lived children of their own in
    /// phase 2 (3.13+, where probing is exact; `HASHPYC_DEFERRED=fork` keeps fresh forks).
    fn batches(&self, t: usize) -> bool {
        static FORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let target = &self.sh.s.specs[t].target;
        matches!(target.isolation(), Isolation::LongLived { refork_suspects: true })
            && target.minor() >= (3, 13)
            && !*FORK.get_or_init(|| crate::env::choice(crate::env::DEFERRED).is_some_and(|v| v == "fork"))
    }

    /// Whether the long-lived child compiling target `t`'s deferred files runs and none of
    /// the strings `hashes` stand for is a word of a file it compiled.
    fn fits(&self, t: usize, hashes: &[u64]) -> bool {
        let batch = &self.batch[t];
        self.workers[t].as_ref().and_then(Worker::child) == Some(batch.generation)
            && batch.generation != 0
            && !batch.conflicts(hashes)
    }

    /// Read a unit's source, or record why it cannot be read for each target.
    fn read_unit(&self, src: usize, targets: &[usize]) -> Option<Vec<u8>> {
        let plan = &self.sh.s.plans[src];
        match read_source(&plan.path, plan.size) {
            Ok((b, dir)) => {
                self.read_from.borrow_mut().insert(src, dir);
                Some(b)
            }
            Err(e) => {
                let r = if crate::io::is_gone(e.kind()) {
                    UnitResult::Vanished
                } else {
                    UnitResult::Error(format!("cannot read the source: {}", crate::io::io_reason(&e)))
                };
                for &t in targets {
                    self.record(src, t, r.clone());
                }
                None
            }
        }
    }

    /// A deferred file, in phase 2, in the long-lived child that compiles this slot's
    /// deferred files for target `t`: first in a new child when one of its set strings is
    /// a word of a file that child compiled (its bytes could then differ from a pristine
    /// fork's), else certified by probing; a file the child cannot certify goes first in a
    /// new one. A new child first probes the set strings of this file and of the deferred
    /// files still queued (what a pristine fork has interned of them).
    fn batch_unit(&mut self, unit: Deferred) {
        let (src, t) = (unit.src, unit.t);
        let Some(source) = self.read_unit(src, &[t]) else { return };
        if !self.live_worker(t) {
            if self.retired {
                self.hand_back(src, &[t]);
            }
            self.read_from.borrow_mut().remove(&src);
            return;
        }
        let worker = self.workers[t].as_mut().expect("a worker was just started");
        let batch = &mut self.batch[t];
        let child = worker.child();
        if child.is_some() && (child != Some(batch.generation) || batch.conflicts(&unit.hashes)) {
            // Ending a child fails only with the worker: compile_for replaces it.
            let _ = worker.end_child();
        }
        if worker.child().is_none() {
            // What the new child probes: the strings of this file and of the deferred files
            // still queued, less those an earlier birth found not interned.
            let queued = self.sh.deferred.lock().expect("deferred lock");
            let births = self.sh.births.lock().expect("births lock");
            let known = &births[t];
            let (mut words, mut seen) = (Vec::new(), std::collections::HashSet::new());
            batch.sent.clear();
            let candidates = std::iter::once(&unit).chain(queued.0.units.iter().filter(|q| q.t == t));
            for (w, &h) in candidates.flat_map(|q| q.strings.iter().zip(&q.hashes)) {
                if (!known.probed.contains(&h) || known.interned.contains(&h)) && seen.insert(h) {
                    batch.sent.push(h);
                    words.extend_from_slice(w);
                    words.push(0);
                }
            }
            drop((queued, births));
            worker.set_birth_words(words);
        }
        super::STATS.batched.fetch_add(1, Ordering::Relaxed);
        let mut step = None;
        for attempt in 0..3 {
            // A file the child could not certify, first in a new child; should even that
            // be suspect (a wrong top-level FLAG_REF bit), in a fresh fork.
            if attempt == 1
                && let Some(w) = self.workers[t].as_mut()
            {
                let _ = w.end_child();
            }
            step = self.compile_for(src, t, &source, attempt == 2, true, &mut None);
            if !matches!(step, Some(Step::Deferred)) {
                break;
            }
        }
        let worker = self.workers[t].as_mut();
        let child = worker.as_ref().and_then(|w| w.child());
        let birth = worker.and_then(Worker::take_birth);
        let batch = &mut self.batch[t];
        let mut births = self.sh.births.lock().expect("births lock");
        let known = &mut births[t];
        if let Some(interned) = birth {
            known.probed.extend(batch.sent.drain(..));
            known
                .interned
                .extend(interned.split(|&b| b == 0).filter(|w| !w.is_empty()).map(predict::word_hash));
        }
        if child != Some(batch.generation) {
            batch.words.clear();
            batch.generation = child.unwrap_or(0);
        }
        // Words a pristine fork has interned too are no conflict.
        batch.words.extend(unit.words.into_iter().filter(|h| !known.interned.contains(h)));
        drop(births);
        self.read_from.borrow_mut().remove(&src);
        match step {
            Some(Step::Done(r)) => self.record(src, t, r),
            Some(Step::Retire) => self.hand_back(src, &[t]),
            Some(Step::Deferred) => self.record(
                src,
                t,
                UnitResult::Error("internal error: a fresh fork's result was deferred".into()),
            ),
            None => {}
        }
    }

    /// One source for some targets: read once, compile per target, write.
    fn unit(&mut self, src: usize, targets: &[usize], fresh: bool) {
        let Some(source) = self.read_unit(src, targets) else { return };
        self.unit_read(src, targets, fresh, &source, &mut None);
    }

    /// [`Slot::unit`] with the source read. It is guessed about at most once (per kind of
    /// guess: with or without set displays).
    fn unit_read(
        &mut self,
        src: usize,
        targets: &[usize],
        fresh: bool,
        source: &[u8],
        guess: &mut Option<(bool, predict::Prediction)>,
    ) {
        self.compile_targets(src, targets, fresh, source, guess);
        self.read_from.borrow_mut().remove(&src);
    }

    /// [`Slot::unit_read`]'s compiles.
    fn compile_targets(
        &mut self,
        src: usize,
        targets: &[usize],
        fresh: bool,
        source: &[u8],
        guess: &mut Option<(bool, predict::Prediction)>,
    ) {
        for (i, &t) in targets.iter().enumerate() {
            match self.compile_for(src, t, source, fresh, false, guess) {
                Some(Step::Done(r)) => self.record(src, t, r),
                Some(Step::Retire) => {
                    self.hand_back(src, &targets[i..]);
                    return;
                }
                Some(Step::Deferred) => {
                    let batches = self.batches(t);
                    let strings = if batches { predict::set_strings(source) } else { Vec::new() };
                    let hashes = strings.iter().map(|w| predict::word_hash(w)).collect();
                    let mut words = if batches { predict::word_hashes(source) } else { Vec::new() };
                    words.sort_unstable();
                    words.dedup();
                    let fork = guess.is_some_and(|(_, g)| g.imports_unicodedata);
                    let unit = Deferred { src, t, fork, strings, hashes, words, blocks: 0, blocked_by: 0 };
                    let mut d = self.sh.deferred.lock().expect("deferred lock");
                    d.0.push(unit);
                    self.sh.deferred_cv.notify_one();
                }
                None => return,
            }
        }
    }

    /// Whether unit `src` will be compiled in each of its targets' long-lived children as it
    /// is ([`Route::Warm`]).
    fn plain(
        &self,
        src: usize,
        targets: &[usize],
        source: &[u8],
        guess: &mut Option<(bool, predict::Prediction)>,
    ) -> bool {
        let s = self.sh.s;
        targets.iter().all(|&t| {
            matches!(s.specs[t].target.isolation(), Isolation::LongLived { refork_suspects }
                if matches!(&s.plans[src].actions[t], Action::Compile { .. })
                    && route(source, refork_suspects, guess) == Route::Warm)
        })
    }

    /// Send a group of plain units (see [`Slot::plain`]) for target `t` ahead of their turn.
    fn send_group(&mut self, t: usize, group: &[Grouped]) {
        let s = self.sh.s;
        let (jobs, tags): (Vec<Job<'_>>, Vec<usize>) =
            group.iter().filter_map(|(src, source, _)| Some((job(s, *src, t, source)?, *src))).unzip();
        let Ok(worker) = self.worker(t) else { return };
        if worker.send_group(&jobs, &tags).is_err() {
            self.drop_worker(t);
        }
    }

    fn record(&self, src: usize, target: usize, r: UnitResult) {
        let plan = &self.sh.s.plans[src];
        self.sh.reporter.advance(&plan.path, crate::report::unit_weight(plan.size));
        self.sh.results.lock().expect("results lock").push((src, target, r));
    }

    /// `None` when the run is stopping (interrupt or fatal error). `batch`: a deferred
    /// file in phase 2, in a long-lived child ([`Slot::batch_unit`]): no guess, a request
    /// for a certificate that probing may earn, and `Step::Deferred` when it is not earned.
    fn compile_for(
        &mut self,
        src: usize,
        t: usize,
        source: &[u8],
        fresh: bool,
        batch: bool,
        guess: &mut Option<(bool, predict::Prediction)>,
    ) -> Option<Step> {
        let s = self.sh.s;
        let plan = &s.plans[src];
        let spec = &s.specs[t];
        let isolation = spec.target.isolation();
        let filename = plan.embedded().as_os_str().as_encoded_bytes();
        let Some(mut job) = job(s, src, t, source) else {
            return Some(Step::Done(UnitResult::Error("internal error: nothing to compile".into())));
        };
        (job.certify, job.probe) = (batch, batch);
        if let Isolation::LongLived { refork_suspects } = isolation
            && !fresh
            && !batch
        {
            match route(source, refork_suspects, guess) {
                Route::Warm => {}
                Route::Certify => {
                    job.certify = true;
                    super::STATS.certify_tried.fetch_add(1, Ordering::Relaxed);
                }
                Route::Deferred => {
                    super::STATS.predicted.fetch_add(1, Ordering::Relaxed);
                    return Some(Step::Deferred);
                }
            }
        }
        // Sent in a group (see `Slot::run`): the child replies to the group at once, so a
        // timeout waiting for this file's reply may be another file's; it is compiled again
        // alone before it is reported.
        let grouped = self.workers[t].as_ref().is_some_and(|w| w.is_ahead(src));
        let mut attempts = 0;
        let (outcome, deferred) = loop {
            attempts += 1;
            let worker = match self.worker(t) {
                Ok(w) => w,
                Err(f) if f.limit_reason().is_some() => match self.limited(t, f) {
                    Limited::Again => {
                        attempts -= 1;
                        continue;
                    }
                    Limited::Retire => return Some(Step::Retire),
                    Limited::Stop => return None,
                },
                Err(f) => {
                    self.fail(t, f);
                    return None;
                }
            };
            let result = match isolation {
                Isolation::ForkEach => worker.compile_fresh(&job).map(|o| (o, false)),
                _ if fresh => worker.compile_fresh(&job).map(|o| (o, false)),
                Isolation::LongLived { refork_suspects } => {
                    let code_layout = CodeLayout::for_version(spec.target.version.0, spec.target.version.1);
                    worker.compile_long_tagged(&job, src).and_then(|(outcome, info)| {
                        let (taint, suspect) = match &outcome {
                            Outcome::Compiled { bodies, .. } => {
                                let scans: Vec<_> =
                                    bodies.iter().map(|b| marshal::scan(b, code_layout)).collect();
                                // Unreadable output: trust nothing about this child.
                                let unreadable = scans.iter().any(Result::is_err);
                                // One-character latin-1 strings are interned singletons
                                // from start-up on 3.13+ (see `marshal::Scan`).
                                let singletons = spec.target.minor() >= (3, 13);
                                let taint = info.modules_changed
                                    || unreadable
                                    || scans.iter().flatten().any(|s| {
                                        if singletons {
                                            s.interned_non_latin1_char
                                        } else {
                                            s.interned_non_ascii
                                        }
                                    });
                                let with_str = scans.iter().flatten().any(|s| s.container_with_str);
                                let certified = info.certified && !unreadable;
                                if certified && with_str {
                                    if !batch {
                                        super::STATS.certified.fetch_add(1, Ordering::Relaxed);
                                    } else if !info.first_in_child {
                                        super::STATS.probed.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                // The top-level code object's FLAG_REF bit must be
                                // py_compile's: a worker that certifies keeps the object
                                // alive while marshalling it (see `worker.py`), and should
                                // that ever show, only a fresh fork gives the right bytes.
                                let wrong_top = bodies.iter().any(|b| {
                                    b.first().is_some_and(|&t| (t & 0x80 != 0) != spec.target.flag_ref_top)
                                });
                                // The levels compiled after another compile, whose bytes
                                // could depend on it: all of them, or (first in the child)
                                // those after the first, which follow the file's own first
                                // level in this process.
                                let later = scans.get(usize::from(info.first_in_child)..).unwrap_or(&[]);
                                let suspect = wrong_top
                                    || (refork_suspects
                                        && (later.iter().any(Result::is_err)
                                            || (!certified
                                                && later.iter().flatten().any(|s| s.container_with_str))));
                                (taint, suspect)
                            }
                            // A failed compile may have imported a codec: start afresh.
                            Outcome::Failed(_) => (true, false),
                        };
                        if taint {
                            super::STATS.tainted.fetch_add(1, Ordering::Relaxed);
                            worker.end_child()?;
                        }
                        if suspect {
                            super::STATS.suspects.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((outcome, suspect))
                    })
                }
            };
            match result {
                Ok(r) => {
                    self.pauses = 0;
                    break r;
                }
                Err(WorkerFailure::Interrupted) => return None,
                Err(WorkerFailure::TimedOut(_)) => {
                    self.drop_worker(t);
                    if grouped && attempts < 2 {
                        continue;
                    }
                    let secs = spec.timeout.map_or(0.0, |d| d.as_secs_f64());
                    return Some(Step::Done(UnitResult::Error(format!(
                        "timed out after {secs} s in the Python worker (see {})",
                        spec.timeout_from
                    ))));
                }
                // No process to compile in (a fork failed for a process or memory limit):
                // the slot retires, or as the last one waits for room (see `limited`).
                Err(f) if f.limit_reason().is_some() => match self.limited(t, f) {
                    Limited::Again => {
                        attempts -= 1;
                        continue;
                    }
                    Limited::Retire => return Some(Step::Retire),
                    Limited::Stop => return None,
                },
                // Another interpreter than the one probed: the run stops (exit 2).
                Err(f @ WorkerFailure::Changed { .. }) => {
                    self.fail(t, f);
                    return None;
                }
                Err(f) => {
                    self.drop_worker(t);
                    if attempts < 2 {
                        continue;
                    }
                    let streak = self.sh.crash_streak[t].fetch_add(1, Ordering::SeqCst) + 1;
                    if streak >= (2 * s.jobs).max(4) {
                        // A file can crash a working interpreter (3.7-3.9 on a sum of 300 000
                        // terms), several in a row when they are the largest: only an
                        // interpreter that cannot compile a file of nothing stops the run.
                        if !self.compiles_nothing(t) {
                            self.fail(t, WorkerFailure::Died(format!("workers keep dying; the last: {f}")));
                            return None;
                        }
                        self.sh.crash_streak[t].store(0, Ordering::SeqCst);
                    }
                    return Some(Step::Done(UnitResult::Error(format!(
                        "{f} (twice; the file was retried once)"
                    ))));
                }
            }
        };
        self.sh.crash_streak[t].store(0, Ordering::SeqCst);
        if deferred {
            return Some(Step::Deferred);
        }
        let (outcome, verified) = if s.verify && !fresh && isolation != Isolation::ForkEach {
            let checked = loop {
                match self.verify(t, &job, outcome.clone()) {
                    Ok(checked) => break checked,
                    Err(WorkerFailure::Interrupted) => return None,
                    // No process to compile in, as above.
                    Err(f) if f.limit_reason().is_some() => match self.limited(t, f) {
                        Limited::Again => continue,
                        Limited::Retire => return Some(Step::Retire),
                        Limited::Stop => return None,
                    },
                    Err(f @ WorkerFailure::Changed { .. }) => {
                        self.fail(t, f);
                        return None;
                    }
                    // The check could not be made: the file is an error saying why, as a
                    // file whose worker keeps failing is (the next file starts another
                    // verifier).
                    Err(f) => {
                        self.verifiers[t] = None;
                        return Some(Step::Done(UnitResult::Error(format!(
                            "HASHPYC_VERIFY could not compile it again in a fresh fork: {f}"
                        ))));
                    }
                }
            };
            let ok = !matches!(&checked, Outcome::Failed(f) if f.kind == VERIFY_FAILED);
            (checked, ok)
        } else {
            (outcome, true)
        };
        let store = |result| {
            if let Some(cache) = s.cache
                && verified
            {
                let filename = marshal::filename_bytes(filename);
                if self.sh.queue.unlooked(src) {
                    // Not looked up: the tiers may well hold it (a slow remote).
                    cache.store_unless_present(t, job.levels, source, &filename, result);
                } else {
                    cache.store(t, job.levels, source, &filename, result);
                }
            }
        };
        Some(Step::Done(match outcome {
            Outcome::Failed(f) => {
                let target = &spec.target;
                // A failure of the moment (out of memory) is not the file's.
                if f.from_source() {
                    store(Err(f.clone()));
                }
                UnitResult::Failed(Box::new(f), pyc::source_hash(target.hash, target.magic, source))
            }
            Outcome::Compiled { warnings, bodies }
                if s.warnings_as_errors && warnings.iter().any(super::Warning::in_source) =>
            {
                store(Ok((bodies, warnings.clone())));
                UnitResult::WarningsAsErrors { warnings }
            }
            Outcome::Compiled { warnings, bodies } => match self.write(src, t, source, &bodies) {
                Ok(()) => {
                    store(Ok((bodies, warnings.clone())));
                    UnitResult::Compiled { warnings }
                }
                // The source's directory removed meanwhile: gone, as the walk says it.
                Err((_, Unwritten::Gone)) => UnitResult::Vanished,
                Err((0, Unwritten::Error(e))) => UnitResult::Error(e),
                // Compiled all the same: stored, as the cache may have room.
                Err((written, Unwritten::NoRoom)) => {
                    store(Ok((bodies, warnings)));
                    UnitResult::NoRoom { written, cached: false }
                }
                // Levels on disk: stored, as they are the cache's to serve next time.
                Err((written, Unwritten::Error(error))) => {
                    store(Ok((bodies, warnings)));
                    UnitResult::PartlyWritten { written, cached: false, error }
                }
            },
        }))
    }

    /// Whether target `t`'s interpreter compiles an empty file in a fresh fork: after many
    /// files in a row that crashed it, whether the files or the interpreter are at fault.
    fn compiles_nothing(&mut self, t: usize) -> bool {
        let job = Job { levels: &[0], filename: b"<hashpyc>", source: b"", certify: false, probe: false };
        match self.worker(t) {
            Ok(w) => matches!(w.compile_fresh(&job), Ok(Outcome::Compiled { .. })),
            Err(_) => false,
        }
    }

    /// Recompile in a fresh fork of another zygote and insist on the same bytes.
    fn verify(&mut self, t: usize, job: &Job<'_>, outcome: Outcome) -> Result<Outcome, WorkerFailure> {
        let verifier = match &mut self.verifiers[t] {
            Some(verifier) => verifier,
            none => none.insert(self.sh.s.spawn(&self.sh.s.specs[t], None)?),
        };
        let reference = verifier.compile_fresh(job)?;
        if reference == outcome {
            Ok(outcome)
        } else {
            Ok(Outcome::Failed(super::CompileFailure {
                kind: VERIFY_FAILED.into(),
                message: "a long-lived worker produced other bytes than a fresh one (HASHPYC_VERIFY)".into(),
                line: None,
                offset: None,
                end_line: None,
                end_offset: None,
                text: String::new(),
                warnings: Vec::new(),
                failed_level: None,
            }))
        }
    }

    /// Write the levels the plan asks for (the compiled prefix's others are fresh). Why
    /// not, if so, after the pycs written.
    fn write(
        &mut self,
        src: usize,
        t: usize,
        source: &[u8],
        bodies: &[Vec<u8>],
    ) -> Result<(), (usize, Unwritten)> {
        let s = self.sh.s;
        let plan = &s.plans[src];
        let target = &s.specs[t].target;
        let Action::Compile { write: wanted, .. } = &plan.actions[t] else {
            return Ok(());
        };
        let header =
            Header::hashed(target.magic, s.mode, pyc::source_hash(target.hash, target.magic, source))
                .to_bytes();
        let read_from = self.read_from.borrow();
        let dir = plan.path.parent().unwrap_or(Path::new(""));
        let base = read_from.get(&src).map(|fd| write::Base::new(std::os::fd::AsFd::as_fd(fd), dir));
        write::write_unit(
            base,
            &s.paths.of(&plan.path, t),
            &header,
            bodies,
            wanted,
            write::pyc_mode(plan.mode),
            s.hardlink_dupes,
            &mut self.dirs,
        )
        .map_err(|(written, e)| (written, Unwritten::of(&e, &plan.path)))
    }

    /// Whether target `t`'s worker runs, started if need be ([`Slot::worker`]): false when
    /// the slot retired for a process or memory limit, or the run stops.
    fn live_worker(&mut self, t: usize) -> bool {
        loop {
            match self.worker(t).map(|_| ()) {
                Ok(()) => return true,
                Err(f) if f.limit_reason().is_some() => match self.limited(t, f) {
                    Limited::Again => {}
                    Limited::Retire | Limited::Stop => return false,
                },
                Err(f) => {
                    self.fail(t, f);
                    return false;
                }
            }
        }
    }

    /// A process or memory limit (a container's pids limit, `ulimit -u`, `ulimit -v`) kept
    /// target `t`'s worker from starting or forking the process a compile runs in. While
    /// other slots run, this one retires: its workers end (their processes are room for
    /// the others' forks) and the units it holds go back to the others (see
    /// [`Slot::hand_back`]), so that the run goes on with the workers there is room for
    /// (warned of once it is over, see [`super::FEWER`]). The last slot running tries
    /// again after a pause, a few times (room comes back as processes end), and only then
    /// is the failure the run's error, as a run with no worker at all cannot compile.
    fn limited(&mut self, t: usize, failure: WorkerFailure) -> Limited {
        let reason = failure.limit_reason().unwrap_or_default().to_string();
        self.workers[t] = None;
        self.verifiers[t] = None;
        self.sh.limit.lock().expect("limit lock").get_or_insert(reason);
        let others = self
            .sh
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| if r > 1 { Some(r - 1) } else { None });
        if others.is_ok() {
            self.sh.lost.fetch_add(1, Ordering::SeqCst);
            self.retired = true;
            self.workers.iter_mut().chain(self.verifiers.iter_mut()).for_each(|w| *w = None);
            return Limited::Retire;
        }
        let pause = limit_pause(self.pauses, || self.stopped());
        self.pauses += 1;
        match pause {
            Some(true) => Limited::Again,
            Some(false) => Limited::Stop,
            None => {
                self.fail(t, failure);
                Limited::Stop
            }
        }
    }

    /// Hand source `src`'s units for `targets` back to the slots that go on as this one
    /// retires: as deferred units compiled in fresh forks, whose bytes are any worker's
    /// (see the module's comment), pushed before this slot leaves phase 1 or its deferred
    /// unit, so that a slot still running takes them (a slot leaves phase 2 only once no
    /// slot is in phase 1 nor compiling a deferred unit).
    fn hand_back(&self, src: usize, targets: &[usize]) {
        let mut d = self.sh.deferred.lock().expect("deferred lock");
        for &t in targets {
            let (strings, hashes, words) = (Vec::new(), Vec::new(), Vec::new());
            d.0.push(Deferred { src, t, fork: true, strings, hashes, words, blocks: 0, blocked_by: 0 });
        }
        self.sh.deferred_cv.notify_all();
    }

    fn worker(&mut self, t: usize) -> Result<&mut Worker, WorkerFailure> {
        if self.workers[t].is_none() {
            let spec = &self.sh.s.specs[t];
            let started = self.sh.s.started.get(t).and_then(|w| w.lock().expect("started lock").take());
            let w = match self.sh.s.spawn(spec, started) {
                Ok(w) => w,
                // One more try: a transient failure (fork limits) should not end the run.
                Err(WorkerFailure::Died(_) | WorkerFailure::Protocol(_)) => Worker::spawn(spec)?,
                Err(e) => return Err(e),
            };
            self.workers[t] = Some(w);
        }
        Ok(self.workers[t].as_mut().expect("just set"))
    }

    fn drop_worker(&mut self, t: usize) {
        self.workers[t] = None;
    }

    fn fail(&self, target: usize, failure: WorkerFailure) {
        if !matches!(failure, WorkerFailure::Interrupted) {
            let mut fatal = self.sh.fatal.lock().expect("fatal lock");
            fatal.get_or_insert(Fatal { target, failure });
        }
        self.sh.stop.store(true, Ordering::SeqCst);
        self.sh.deferred_cv.notify_all();
        self.sh.queue.wake();
    }
}

/// An error with its causes, in one line: `cannot write `x`: permission denied`, a system
/// error's reason in the words every other message uses (`crate::io::io_reason`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = match c.downcast_ref::<std::io::Error>() {
            // A system error; one of ours (`a symbolic link loop`) says it already.
            Some(io) if io.raw_os_error().is_some() => crate::io::io_reason(io),
            Some(_) => c.to_string(),
            None => c.to_string(),
        };
        let text = match text.find(" (os error") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        s.push_str(": ");
        s.push_str(&text);
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(src: usize, strings: &[&str], words: &[&str]) -> Deferred {
        let hashes = strings.iter().map(|s| predict::word_hash(s.as_bytes())).collect();
        let mut words: Vec<u64> = words.iter().map(|w| predict::word_hash(w.as_bytes())).collect();
        words.sort_unstable();
        words.dedup();
        let strings = strings.iter().map(|s| s.as_bytes().to_vec()).collect();
        Deferred { src, t: 0, fork: false, strings, hashes, words, blocks: 0, blocked_by: 0 }
    }

    fn counts(q: &DeferredQueue) -> Vec<(usize, usize, usize)> {
        q.units.iter().map(|u| (u.src, u.blocks, u.blocked_by)).collect()
    }

    #[test]
    fn the_deferred_queue_keeps_its_counts_and_chooses_as_documented() {
        let mut q = DeferredQueue::default();
        // 0 uses `foo` (1's set string); 1 and 2 use nothing the others hold; 3 uses `k0`
        // and `foo`, so it would send 1 and 2 to a new child.
        q.push(unit(0, &["k0"], &["foo"]));
        q.push(unit(1, &["foo"], &[]));
        q.push(unit(2, &["foo", "bar"], &[]));
        q.push(unit(3, &["baz"], &["k0", "foo"]));
        assert_eq!(counts(&q), [(0, 2, 1), (1, 0, 2), (2, 0, 2), (3, 3, 0)]);
        // No child yet: first in a new one, the file the most others would block (1, the
        // first of the tie with 2).
        assert_eq!(q.next(|_| false), Some(1));
        // A child that takes anything: the one that blocks fewest (1 again: blocks none).
        assert_eq!(q.next(|_| true), Some(1));
        // A child that takes only 0 and 3: 0 blocks fewer.
        assert_eq!(q.next(|u| u.src == 0 || u.src == 3), Some(0));
        let taken = q.remove(1).unwrap();
        assert_eq!(taken.src, 1);
        assert_eq!(counts(&q), [(0, 1, 1), (2, 0, 2), (3, 2, 0)]);
        q.remove(0);
        assert_eq!(counts(&q), [(2, 0, 1), (3, 1, 0)]);
        // A fork unit is never chosen for a child, nor counted.
        let mut fork = unit(4, &["foo"], &["k0"]);
        fork.fork = true;
        q.push(fork);
        assert_eq!(counts(&q), [(2, 0, 1), (3, 1, 0), (4, 0, 0)]);
        assert_eq!(q.next(|_| true), Some(0));
        q.remove(0);
        q.remove(0);
        // Only the fork unit left: the first in the queue (it gets a fresh fork).
        assert_eq!(q.next(|_| false), Some(0));
        q.remove(0);
        assert_eq!(q.next(|_| true), None);
    }
}
