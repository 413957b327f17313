//! The cache stage of `compile`: for every unit the plan wants compiled, read the source
//! once, look it up (per target), write the pycs of hits right away, and hand the misses to
//! the pool's queue as they are found, so compiling overlaps with the lookups.

use std::collections::HashSet;
use std::path::PathBuf;

use std::os::fd::AsFd;
use std::sync::Arc;

use super::{Cache, Found};
use crate::plan::{Action, PycPaths, SourcePlan};
use crate::pool::schedule::{Backlog, Queue, Results, UnitResult, Unwritten};
use crate::pyc::{self, HashMode, Header};
use crate::report::Reporter;
use crate::write;

/// What the stage works on.
pub struct Lookups<'a> {
    pub plans: &'a [SourcePlan],
    pub paths: &'a PycPaths<'a>,
    pub mode: HashMode,
    pub hardlink_dupes: bool,
    pub cache: &'a Cache,
    /// Threads doing lookups (more than CPUs pays when a tier is remote).
    pub threads: usize,
    /// `-W error`: a hit whose compile raised warnings writes nothing.
    pub warnings_as_errors: bool,
}

thread_local! {
    static DIRS: std::cell::RefCell<HashSet<PathBuf>> = std::cell::RefCell::new(HashSet::new());
}

/// Look up `units` (source index, targets), largest sources first; hits are written and
/// returned, misses pushed to `queue`. The queue is not closed here. Units are claimed
/// from a [`Backlog`] shared with the queue, so that slots left idle by stalled lookups
/// compile the next units themselves.
pub fn run(
    l: &Lookups<'_>,
    mut units: Vec<(usize, Vec<usize>)>,
    queue: &Queue,
    reporter: &dyn Reporter,
) -> Results {
    units.sort_by(|a, b| l.plans[b.0].size.cmp(&l.plans[a.0].size).then(a.0.cmp(&b.0)));
    let backlog = Arc::new(Backlog::new(units));
    // A local disk does not stall like a network; without a remote, a fully cached tree
    // must never start a compiling worker, however loaded the machine.
    if l.cache.has_remote() {
        queue.set_backlog(Arc::clone(&backlog));
    }
    let work = || {
        let mut found = Vec::new();
        while let Some((src, targets)) = backlog.claim() {
            // A disk with no room left: nothing more is written (its units count as not written).
            if crate::interrupt::requested() || write::no_room().is_some() {
                break;
            }
            let (done, misses) = unit(l, *src, targets);
            backlog.progress();
            for _ in &done {
                reporter.advance(&l.plans[*src].path, crate::report::unit_weight(l.plans[*src].size));
            }
            if !misses.is_empty() {
                queue.push(*src, misses, l.plans[*src].size);
            }
            found.extend(done);
        }
        found
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..l.threads.max(1))
            .filter_map(|i| {
                std::thread::Builder::new().name(format!("hashpyc-lookup-{i}")).spawn_scoped(scope, work).ok()
            })
            .collect();
        // Not a single thread: look up on this one.
        let mut all = if threads.is_empty() { work() } else { Vec::new() };
        for t in threads {
            all.extend(t.join().expect("a lookup thread panicked"));
        }
        all
    })
}

/// One source: its results (hits, known failures, read errors) and the targets that missed.
fn unit(l: &Lookups<'_>, src: usize, targets: &[usize]) -> (Results, Vec<usize>) {
    let plan = &l.plans[src];
    let mut source = Vec::with_capacity(usize::try_from(plan.size).unwrap_or(0) + 4096);
    // Read through a handle on its directory, where its pycs are written (`write::Base`).
    let read = crate::io::open_dir_of(&plan.path)
        .and_then(|dir| crate::io::read_source_at(dir.as_fd(), &plan.path, &mut source).map(|()| dir));
    let dir = match read {
        Ok(dir) => dir,
        Err(e) => {
            let r = if crate::io::is_gone(e.kind()) {
                UnitResult::Vanished
            } else {
                UnitResult::Error(format!("cannot read the source: {}", crate::io::io_reason(&e)))
            };
            return (targets.iter().map(|&t| (src, t, r.clone())).collect(), Vec::new());
        }
    };
    let base = write::Base::new(dir.as_fd(), plan.path.parent().unwrap_or(std::path::Path::new("")));
    let filename = crate::marshal::filename_bytes(plan.embedded().as_os_str().as_encoded_bytes());
    let mut done = Vec::new();
    let mut misses = Vec::new();
    for &t in targets {
        let Action::Compile { prefix, write: wanted, .. } = &plan.actions[t] else {
            continue;
        };
        let levels = &l.paths.levels[..usize::from(*prefix)];
        let target = &l.paths.targets[t];
        let hash = pyc::source_hash(target.hash, target.magic, &source);
        match l.cache.lookup(t, levels, &source, &filename) {
            Found::Miss => misses.push(t),
            Found::Failed(f) => done.push((src, t, UnitResult::Failed(Box::new(f), hash))),
            Found::Hit { warnings, .. }
                if l.warnings_as_errors && warnings.iter().any(crate::pool::Warning::in_source) =>
            {
                done.push((src, t, UnitResult::WarningsAsErrors { warnings }));
            }
            Found::Hit { bodies, warnings } => {
                let header = Header::hashed(target.magic, l.mode, hash).to_bytes();
                let _writing = crate::interrupt::writing();
                let written = DIRS.with_borrow_mut(|dirs| {
                    write::write_unit(
                        Some(base),
                        &l.paths.of(&plan.path, t),
                        &header,
                        &bodies,
                        wanted,
                        write::pyc_mode(plan.mode),
                        l.hardlink_dupes,
                        dirs,
                    )
                });
                let r = match written.map_err(|(n, e)| (n, Unwritten::of(&e, &plan.path))) {
                    Ok(()) => UnitResult::Cached { warnings },
                    Err((_, Unwritten::Gone)) => UnitResult::Vanished,
                    Err((written, Unwritten::NoRoom)) => UnitResult::NoRoom { written, cached: true },
                    Err((0, Unwritten::Error(e))) => UnitResult::Error(e),
                    Err((written, Unwritten::Error(error))) => {
                        UnitResult::PartlyWritten { written, cached: true, error }
                    }
                };
                done.push((src, t, r));
            }
        }
    }
    (done, misses)
}
