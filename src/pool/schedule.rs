//! Running the compile units over `jobs` slots. Each slot is a thread owning one worker
//! per target; units are taken largest first (a big file last would leave the other
//! slots idle). A unit is one source for the targets that need it: the source is read
//! once, hashed per target, sent to each target's worker, and its pycs written right
//! away by the slot.
//!
//! Determinism: with `Isolation::LongLived`, a child whose compile changed the
//! interpreter for good (imported a module, interned a non-ASCII identifier) is replaced,
//! and with `refork_suspects` a result that could depend on strings interned by earlier
//! compiles is deferred and recompiled in a fresh fork once the long-lived phase drains.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::frame::Job;
use super::{Outcome, Worker, WorkerFailure, WorkerSpec};
use crate::marshal::{self, CodeLayout};
use crate::plan::{Action, SourcePlan};
use crate::pyc::{self, HashMode, Header};
use crate::report::Reporter;
use crate::target::Isolation;
use crate::write;

/// What happened to one source for one target.
#[derive(Debug, Clone)]
pub enum UnitResult {
    Compiled {
        warnings: Vec<super::Warning>,
    },
    /// The source (whose hash for this target is given) does not compile.
    Failed(Box<super::CompileFailure>, pyc::SourceHash),
    /// The source could not be read, a pyc not written, or the worker failed.
    Error(String),
    /// The source vanished between the walk and the read.
    Vanished,
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
}

struct Shared<'a> {
    s: &'a Schedule<'a>,
    order: Vec<usize>,
    next: AtomicUsize,
    results: Mutex<Results>,
    deferred: Mutex<(VecDeque<(usize, usize)>, usize)>,
    deferred_cv: Condvar,
    fatal: Mutex<Option<Fatal>>,
    stop: AtomicBool,
    /// Units in a row lost to dying workers; reset by any success.
    crash_streak: AtomicUsize,
    reporter: &'a dyn Reporter,
}

/// Compile every source whose plan asks for it; returns per-unit results, or the fatal
/// failure that stopped the run.
pub fn run(s: &Schedule<'_>, reporter: &dyn Reporter) -> (Results, Option<Fatal>) {
    let mut order: Vec<usize> = (0..s.plans.len()).filter(|&i| s.plans[i].needs_compile()).collect();
    order.sort_by(|&a, &b| s.plans[b].size.cmp(&s.plans[a].size).then(a.cmp(&b)));
    reorder_for_tests(&mut order);
    let slots = s.jobs.clamp(1, order.len().max(1));
    let shared = Shared {
        s,
        order,
        next: AtomicUsize::new(0),
        results: Mutex::new(Vec::new()),
        deferred: Mutex::new((VecDeque::new(), slots)),
        deferred_cv: Condvar::new(),
        fatal: Mutex::new(None),
        stop: AtomicBool::new(false),
        crash_streak: AtomicUsize::new(0),
        reporter,
    };
    if !shared.order.is_empty() {
        std::thread::scope(|scope| {
            for i in 0..slots {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("hashpyc-slot-{i}"))
                    .spawn_scoped(scope, move || Slot::new(shared).run())
                    .expect("spawn slot thread");
            }
        });
    }
    let fatal = shared.fatal.into_inner().expect("fatal lock");
    (shared.results.into_inner().expect("results lock"), fatal)
}

/// `HASHPYC_ORDER=reverse` or `shuffle:SEED` changes the compile order, so tests can show
/// that the bytes do not depend on it.
fn reorder_for_tests(order: &mut [usize]) {
    let Ok(spec) = std::env::var("HASHPYC_ORDER") else {
        return;
    };
    if spec == "reverse" {
        order.reverse();
    } else if let Some(seed) = spec.strip_prefix("shuffle:").and_then(|s| s.parse::<u64>().ok()) {
        // Fisher-Yates with splitmix64: reproducible for a seed, no dependency needed.
        let mut state = seed;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        for i in (1..order.len()).rev() {
            let j = (next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
}

/// Read a source whose size the plan saw (one allocation, no extra stat), as the plan does.
fn read_source(path: &Path, size_hint: u64) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(usize::try_from(size_hint).unwrap_or(0).saturating_add(4096));
    crate::plan::read_source_into(path, &mut buf)?;
    Ok(buf)
}

struct Slot<'a> {
    sh: &'a Shared<'a>,
    /// Directories this slot has created or seen, so each is checked once.
    dirs: std::collections::HashSet<std::path::PathBuf>,
    workers: Vec<Option<Worker>>,
    /// Second zygotes for `verify`, so checking a result never ends the long-lived child
    /// whose history is under test.
    verifiers: Vec<Option<Worker>>,
}

enum Step {
    Done(UnitResult),
    Deferred,
}

impl<'a> Slot<'a> {
    fn new(sh: &'a Shared<'a>) -> Self {
        let none = || (0..sh.s.specs.len()).map(|_| None).collect();
        Slot { sh, dirs: Default::default(), workers: none(), verifiers: none() }
    }

    fn run(mut self) {
        // Phase 1: the queue, largest first.
        loop {
            if self.stopped() {
                break;
            }
            let i = self.sh.next.fetch_add(1, Ordering::SeqCst);
            let Some(&src) = self.sh.order.get(i) else {
                break;
            };
            let targets: Vec<usize> = (0..self.sh.s.specs.len())
                .filter(|&t| matches!(self.sh.s.plans[src].actions[t], Action::Compile(_)))
                .collect();
            self.unit(src, &targets, false);
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
        // Phase 2: deferred units, in fresh forks, until every slot has left phase 1.
        loop {
            let item = {
                let mut d = self.sh.deferred.lock().expect("deferred lock");
                loop {
                    if self.stopped() {
                        break None;
                    }
                    if let Some(item) = d.0.pop_front() {
                        break Some(item);
                    }
                    if d.1 == 0 {
                        break None;
                    }
                    d = self.sh.deferred_cv.wait(d).expect("deferred lock");
                }
            };
            let Some((src, target)) = item else { break };
            self.unit(src, &[target], true);
        }
    }

    fn stopped(&self) -> bool {
        self.sh.stop.load(Ordering::SeqCst) || crate::interrupt::requested()
    }

    /// One source for some targets: read once, compile per target, write.
    fn unit(&mut self, src: usize, targets: &[usize], fresh: bool) {
        let plan = &self.sh.s.plans[src];
        let source = match read_source(&plan.path, plan.size) {
            Ok(b) => b,
            Err(e) => {
                let r = if e.kind() == std::io::ErrorKind::NotFound {
                    UnitResult::Vanished
                } else {
                    UnitResult::Error(format!("cannot read the source: {}", crate::plan::io_reason(&e)))
                };
                for &t in targets {
                    self.record(src, t, r.clone());
                }
                return;
            }
        };
        for &t in targets {
            match self.compile_for(src, t, &source, fresh) {
                Some(Step::Done(r)) => self.record(src, t, r),
                Some(Step::Deferred) => {
                    let mut d = self.sh.deferred.lock().expect("deferred lock");
                    d.0.push_back((src, t));
                    self.sh.deferred_cv.notify_one();
                }
                None => return,
            }
        }
    }

    fn record(&self, src: usize, target: usize, r: UnitResult) {
        self.sh.reporter.advance(&self.sh.s.plans[src].path);
        self.sh.results.lock().expect("results lock").push((src, target, r));
    }

    /// `None` when the run is stopping (interrupt or fatal error).
    fn compile_for(&mut self, src: usize, t: usize, source: &[u8], fresh: bool) -> Option<Step> {
        let s = self.sh.s;
        let plan = &s.plans[src];
        let spec = &s.specs[t];
        let isolation = spec.target.isolation();
        let filename = plan.embedded().as_os_str().as_encoded_bytes();
        let job = Job { levels: s.paths.levels, filename, source };
        let mut attempts = 0;
        let (outcome, deferred) = loop {
            attempts += 1;
            let worker = match self.worker(t) {
                Ok(w) => w,
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
                    worker.compile_long(&job).and_then(|(outcome, info)| {
                        let (taint, suspect) = match &outcome {
                            Outcome::Compiled { bodies, .. } => {
                                let scans: Vec<_> =
                                    bodies.iter().map(|b| marshal::scan(b, code_layout)).collect();
                                // Unreadable output: trust nothing about this child.
                                let unreadable = scans.iter().any(Result::is_err);
                                let taint = info.modules_changed
                                    || unreadable
                                    || scans.iter().flatten().any(|s| s.interned_non_ascii);
                                let suspect = refork_suspects
                                    && !info.first_in_child
                                    && (unreadable || scans.iter().flatten().any(|s| s.container_with_str));
                                (taint, suspect)
                            }
                            // A failed compile may have imported a codec: start afresh.
                            Outcome::Failed(_) => (true, false),
                        };
                        if taint {
                            worker.end_child()?;
                        }
                        Ok((outcome, suspect))
                    })
                }
            };
            match result {
                Ok(r) => break r,
                Err(WorkerFailure::Interrupted) => return None,
                Err(WorkerFailure::TimedOut(_)) => {
                    self.drop_worker(t);
                    let secs = spec.timeout.map_or(0.0, |d| d.as_secs_f64());
                    return Some(Step::Done(UnitResult::Error(format!(
                        "timed out after {secs} s in the Python worker (see --timeout)"
                    ))));
                }
                Err(f @ WorkerFailure::Changed { .. }) => {
                    self.fail(t, f);
                    return None;
                }
                Err(f) => {
                    self.drop_worker(t);
                    if attempts < 2 {
                        continue;
                    }
                    let streak = self.sh.crash_streak.fetch_add(1, Ordering::SeqCst) + 1;
                    if streak >= (2 * s.jobs).max(4) {
                        self.fail(t, WorkerFailure::Died(format!("workers keep dying; the last: {f}")));
                        return None;
                    }
                    return Some(Step::Done(UnitResult::Error(format!(
                        "{f} (twice; the file was retried once)"
                    ))));
                }
            }
        };
        self.sh.crash_streak.store(0, Ordering::SeqCst);
        if deferred {
            return Some(Step::Deferred);
        }
        let outcome = if s.verify && !fresh && isolation != Isolation::ForkEach {
            self.verify(t, &job, outcome)?
        } else {
            outcome
        };
        Some(Step::Done(match outcome {
            Outcome::Failed(f) => {
                let target = &spec.target;
                UnitResult::Failed(Box::new(f), pyc::source_hash(target.hash, target.magic, source))
            }
            Outcome::Compiled { warnings, bodies } => match self.write(src, t, source, &bodies) {
                Ok(()) => UnitResult::Compiled { warnings },
                Err(e) => UnitResult::Error(e),
            },
        }))
    }

    /// Recompile in a fresh fork of another zygote and insist on the same bytes.
    fn verify(&mut self, t: usize, job: &Job<'_>, outcome: Outcome) -> Option<Outcome> {
        if self.verifiers[t].is_none() {
            self.verifiers[t] = Some(Worker::spawn(&self.sh.s.specs[t]).ok()?);
        }
        let reference = self.verifiers[t].as_mut()?.compile_fresh(job).ok()?;
        if reference == outcome {
            Some(outcome)
        } else {
            Some(Outcome::Failed(super::CompileFailure {
                kind: "hashpyc internal error".into(),
                message: "a long-lived worker produced other bytes than a fresh one (HASHPYC_VERIFY)".into(),
                line: None,
                offset: None,
                end_line: None,
                end_offset: None,
                text: String::new(),
            }))
        }
    }

    fn write(&mut self, src: usize, t: usize, source: &[u8], bodies: &[Vec<u8>]) -> Result<(), String> {
        let s = self.sh.s;
        let plan = &s.plans[src];
        let target = &s.specs[t].target;
        let header =
            Header::hashed(target.magic, s.mode, pyc::source_hash(target.hash, target.magic, source))
                .to_bytes();
        let mode = write::pyc_mode(plan.mode);
        let pycs = &s.paths.of(&plan.path, t);
        let was_missing = plan.actions[t] == Action::Compile(crate::plan::Reason::Missing);
        for (i, body) in bodies.iter().enumerate() {
            let path: &Path = &pycs[i];
            let dir = path.parent().unwrap_or(Path::new(""));
            let linked = s.hardlink_dupes && i > 0 && bodies[i - 1] == *body;
            let r = if linked {
                write::hardlink_atomic(&pycs[i - 1], path)
            } else {
                let known = write::Known { dir_exists: self.dirs.contains(dir), was_missing };
                write::write_atomic(path, &[&header, body], mode, known)
            };
            r.map_err(|e| error_chain(&e))?;
            if !self.dirs.contains(dir) {
                self.dirs.insert(dir.to_path_buf());
            }
        }
        Ok(())
    }

    fn worker(&mut self, t: usize) -> Result<&mut Worker, WorkerFailure> {
        if self.workers[t].is_none() {
            let spec = &self.sh.s.specs[t];
            let w = match Worker::spawn(spec) {
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
    }
}

/// An error with its causes, in one line: `cannot write `x`: Permission denied`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
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
