//! `hashpyc compile`: walk → plan → (header rewrites in Rust) → pool → write → report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::embed::Embed;
use crate::layout::{self, Layout};
use crate::memo::Memo;
use crate::plan::{self, Action, PlanOptions, PycPaths, SourcePlan};
use crate::pool::WorkerSpec;
use crate::pool::schedule::{self, Schedule, UnitResult};
use crate::pyc::{self, HashMode, Header};
use crate::report::{self, Reporter, Style};
use crate::target::Target;
use crate::walk::{self, WalkOptions};
use crate::{Error, ExitStatus, Verbosity};

/// Resolved options of one compile run.
pub struct CompileSettings {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    pub targets: Vec<Arc<Target>>,
    /// Per target.
    pub layouts: Vec<Layout>,
    pub levels: Vec<u8>,
    pub mode: HashMode,
    pub force: bool,
    pub embed: Embed,
    pub jobs: usize,
    pub timeout: Option<Duration>,
    pub dry_run: bool,
    pub hardlink_dupes: bool,
    /// Cross-check long-lived results against fresh forks (tests; `HASHPYC_VERIFY=1`).
    pub verify: bool,
}

/// Counts for the summary (units are source × target pairs).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub sources: usize,
    pub compiled: usize,
    pub fresh: usize,
    pub rewritten: usize,
    pub failed: usize,
    pub errors: usize,
    pub vanished: usize,
    pub usage_errors: usize,
}

impl Summary {
    pub fn exit_status(&self) -> ExitStatus {
        if self.usage_errors > 0 {
            ExitStatus::Error
        } else if self.failed > 0 || self.errors > 0 {
            ExitStatus::Findings
        } else {
            ExitStatus::Success
        }
    }
}

/// A message tied to a path, printed in path order after the run.
struct Note {
    path: PathBuf,
    order: u8,
    text: String,
}

/// Run a compile; messages go to stderr, the dry-run listing to stdout.
pub fn compile(
    s: &CompileSettings,
    verbosity: Verbosity,
    style: Style,
    reporter: &dyn Reporter,
) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut spans = report::Spans::start();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let cache = crate::target::cache_dir();
    let mut memos: Vec<Option<Memo>> =
        s.targets.iter().map(|t| Some(Memo::load(cache.as_deref()?, t.identity.as_deref()?))).collect();
    let paths = PycPaths { targets: &s.targets, layouts: &s.layouts, levels: &s.levels, cwd: &cwd };
    let opts = PlanOptions { paths, mode: s.mode, force: s.force, embed: &s.embed, memos: &memos };
    // Walk and plan in one pass, on the walker's threads. Only sources with something to
    // do (or to report) are kept, so a no-op run over a huge tree stays small.
    let kept = std::sync::Mutex::new(Vec::new());
    let fresh_units = AtomicUsize::new(0);
    let seen = AtomicUsize::new(0);
    let walked = walk::walk_each(&s.roots, &s.walk, &|source| {
        seen.fetch_add(1, Ordering::Relaxed);
        let p = plan::plan_one(source, &opts);
        if !s.dry_run && p.error.is_none() && p.actions.iter().all(|a| *a == Action::Fresh) {
            fresh_units.fetch_add(p.actions.len(), Ordering::Relaxed);
        } else {
            kept.lock().expect("plan lock").push(p);
        }
    });
    let mut plans = kept.into_inner().expect("plan lock");
    plans.sort_by(|a, b| a.path.cmp(&b.path));
    spans.mark("walk+plan");
    let mut summary =
        Summary { sources: seen.into_inner(), fresh: fresh_units.into_inner(), ..Summary::default() };
    let mut notes: Vec<Note> = Vec::new();
    for e in &walked.errors {
        let label = if e.is_notice() {
            style.warning()
        } else if e.is_usage() {
            summary.usage_errors += 1;
            style.error()
        } else {
            summary.errors += 1;
            style.error()
        };
        notes.push(Note {
            path: e.path().map(Path::to_path_buf).unwrap_or_default(),
            order: 0,
            text: format!("{label}: {e}"),
        });
    }

    if s.dry_run {
        print_dry_run(&plans, &s.targets, &walked.skipped_symlinks, s.mode);
        for p in plans.iter().filter(|p| p.error.is_some()) {
            summary.errors += 1;
            notes.push(Note {
                path: p.path.to_path_buf(),
                order: 0,
                text: format!(
                    "{}: `{}`: {}",
                    style.error(),
                    p.path.display(),
                    p.error.as_deref().unwrap_or("")
                ),
            });
        }
        print_notes(notes);
        return Ok(summary);
    }

    for p in &plans {
        if let Some(err) = &p.error {
            if err.starts_with("no such file") {
                summary.vanished += 1;
                if verbosity.quiet < 2 {
                    notes.push(Note {
                        path: p.path.to_path_buf(),
                        order: 0,
                        text: format!("note: `{}` vanished during the run; skipped", p.path.display()),
                    });
                }
            } else {
                summary.errors += 1;
                notes.push(Note {
                    path: p.path.to_path_buf(),
                    order: 0,
                    text: format!("{}: `{}`: {err}", style.error(), p.path.display()),
                });
            }
            continue;
        }
        if p.strip_missed && verbosity.quiet < 2 && p.needs_compile() {
            let strip = s.embed.strip.as_deref().unwrap_or(Path::new(""));
            notes.push(Note {
                path: p.path.to_path_buf(),
                order: 1,
                text: format!(
                    "{}: `{}` does not start with --strip-prefix `{}`; its path is embedded unchanged",
                    style.warning(),
                    p.path.display(),
                    strip.display()
                ),
            });
        }
        for (t, action) in p.actions.iter().enumerate() {
            match action {
                Action::Fresh => summary.fresh += 1,
                Action::KnownFailure(f) => {
                    summary.failed += 1;
                    let source = std::fs::read(&p.path).ok();
                    let suffix = target_suffix(&s.targets, t);
                    notes.push(Note {
                        path: p.path.to_path_buf(),
                        order: 0,
                        text: format!(
                            "{}{suffix}",
                            report::format_failure(&p.path, f.as_ref(), source.as_deref())
                        ),
                    });
                }
                _ => {}
            }
        }
    }

    // Header rewrites: Rust only.
    let rewrites: Vec<(usize, usize)> = plans
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.actions
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Action::Rewrite(_)))
                .map(move |(t, _)| (i, t))
        })
        .collect();
    let rewrite_results: Vec<(usize, usize, Result<(), String>)> = rewrites
        .par_iter()
        .map(|&(i, t)| (i, t, rewrite_headers(&plans[i], t, &opts.paths, s.mode)))
        .collect();
    for (i, _t, r) in rewrite_results {
        match r {
            Ok(()) => summary.rewritten += 1,
            Err(e) => {
                summary.errors += 1;
                notes.push(Note {
                    path: plans[i].path.to_path_buf(),
                    order: 0,
                    text: format!("{}: {e}", style.error()),
                });
            }
        }
    }

    // Compilation.
    let units = plans
        .iter()
        .map(|p| p.actions.iter().filter(|a| matches!(a, Action::Compile(_))).count())
        .sum::<usize>();
    let specs: Vec<WorkerSpec> =
        s.targets.iter().map(|t| WorkerSpec::new(Arc::clone(t), s.timeout)).collect();
    spans.mark("rewrite");
    reporter.start(units as u64, "Compiling");
    let (results, fatal) = schedule::run(
        &Schedule {
            plans: &plans,
            specs: &specs,
            paths: &opts.paths,
            mode: s.mode,
            hardlink_dupes: s.hardlink_dupes,
            jobs: s.jobs,
            verify: s.verify,
        },
        reporter,
    );
    reporter.finish();
    spans.mark("compile");
    spans.note(|| crate::pool::STATS.summary());

    for (i, t, r) in results {
        let plan = &plans[i];
        let path = &plan.path;
        let suffix = target_suffix(&s.targets, t);
        match r {
            UnitResult::Compiled { warnings } => {
                summary.compiled += 1;
                if let Some(memo) = &mut memos[t] {
                    memo.record_success(&layout::absolute(path, &cwd));
                }
                if verbosity.verbose > 0
                    && let Action::Compile(reason) = &plan.actions[t]
                {
                    notes.push(Note {
                        path: path.to_path_buf(),
                        order: 2,
                        text: format!("compiled `{}` ({reason}){suffix}", path.display()),
                    });
                }
                let shown: Vec<_> = warnings
                    .iter()
                    .filter(|w| verbosity.verbose > 0 || report::warning_shown_by_default(w))
                    .collect();
                if !shown.is_empty() && verbosity.quiet < 2 {
                    let source = std::fs::read(path).ok();
                    let mut seen = Vec::new();
                    for w in shown {
                        if seen.contains(&w) {
                            continue;
                        }
                        seen.push(w);
                        notes.push(Note {
                            path: path.to_path_buf(),
                            order: 1,
                            text: format!("{}{suffix}", report::format_warning(path, w, source.as_deref())),
                        });
                    }
                }
            }
            UnitResult::Failed(f, hash) => {
                summary.failed += 1;
                if let Some(memo) = &mut memos[t] {
                    memo.record_failure(layout::absolute(path, &cwd), &hash, &s.levels, &f);
                }
                let source = std::fs::read(path).ok();
                notes.push(Note {
                    path: path.to_path_buf(),
                    order: 0,
                    text: format!("{}{suffix}", report::format_failure(path, &f, source.as_deref())),
                });
            }
            UnitResult::Error(e) => {
                summary.errors += 1;
                notes.push(Note {
                    path: path.to_path_buf(),
                    order: 0,
                    text: format!("{}: `{}`: {e}{suffix}", style.error(), path.display()),
                });
            }
            UnitResult::Vanished => {
                summary.vanished += 1;
                if verbosity.quiet < 2 {
                    notes.push(Note {
                        path: path.to_path_buf(),
                        order: 0,
                        text: format!("note: `{}` vanished during the run; skipped", path.display()),
                    });
                }
            }
        }
    }
    for memo in memos.into_iter().flatten() {
        memo.save();
    }
    // Identical messages from several targets are printed once.
    notes.sort_by(|a, b| a.path.cmp(&b.path).then(a.order.cmp(&b.order)));
    notes.dedup_by(|a, b| a.text == b.text);
    print_notes(notes);
    spans.mark("report");
    spans.print();

    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    if let Some(fatal) = fatal {
        return Err(Error::Workers {
            python: crate::pool::describe(&s.targets[fatal.target]),
            failure: fatal.failure,
        });
    }
    if verbosity.quiet == 0 {
        report::eprint_line(&summary_line(&summary, s.targets.len(), started.elapsed(), style));
    }
    Ok(summary)
}

fn print_notes(notes: Vec<Note>) {
    let mut err = std::io::stderr().lock();
    for n in notes {
        let _ = writeln!(err, "{}", n.text);
    }
}

/// `Compiled 1180 files (10421 already fresh, 17 failed) in 2.31s`.
pub fn summary_line(s: &Summary, targets: usize, elapsed: Duration, style: Style) -> String {
    let mut parts = vec![format!("{} already fresh", s.fresh)];
    if s.rewritten > 0 {
        parts.push(report::plural(s.rewritten, "header rewritten", "headers rewritten"));
    }
    if s.failed > 0 {
        parts.push(format!("{} failed", s.failed));
    }
    if s.errors > 0 {
        parts.push(report::plural(s.errors, "error", "errors"));
    }
    if s.vanished > 0 {
        parts.push(format!("{} vanished", s.vanished));
    }
    let what = report::plural(s.compiled, "file", "files");
    let interpreters = if targets > 1 { format!(" for {targets} interpreters") } else { String::new() };
    format!(
        "{} {what}{interpreters} ({}) in {}",
        style.bold("Compiled"),
        parts.join(", "),
        report::format_duration(elapsed)
    )
}

/// Rewrite the flags of the levels whose pyc has the other hash mode.
/// ` [CPython X.Y]` after a per-file message when a run has several targets.
fn target_suffix(targets: &[Arc<Target>], t: usize) -> String {
    if targets.len() > 1 { format!(" [CPython {}]", targets[t].version_string()) } else { String::new() }
}

fn rewrite_headers(plan: &SourcePlan, t: usize, paths: &PycPaths<'_>, mode: HashMode) -> Result<(), String> {
    let Action::Rewrite(levels) = &plan.actions[t] else {
        return Ok(());
    };
    let target = &paths.targets[t];
    let pycs = paths.of(&plan.path, t);
    for &i in levels {
        let path = &pycs[usize::from(i)];
        let data = std::fs::read(path)
            .map_err(|e| format!("cannot read `{}`: {}", path.display(), plan::io_reason(&e)))?;
        let header = Header::parse(&data).filter(|h| h.magic == target.magic && h.kind().is_ok());
        let Some(header) = header else {
            return Err(format!("`{}` changed during the run; run again", path.display()));
        };
        let new = Header { flags: mode.flags(), ..header }.to_bytes();
        crate::write::write_atomic(
            path,
            &[&new, &data[pyc::HEADER_LEN..]],
            crate::write::pyc_mode(plan.mode),
            crate::write::Known::default(),
        )
        .map_err(|e| schedule::error_chain(&e))?;
    }
    Ok(())
}

fn print_dry_run(plans: &[SourcePlan], targets: &[Arc<Target>], skipped: &[PathBuf], mode: HashMode) {
    let many = targets.len() > 1;
    let mut out = std::io::stdout().lock();
    let mut lines = Vec::new();
    for p in plans {
        if p.error.is_some() {
            continue;
        }
        for (t, action) in p.actions.iter().enumerate() {
            let label = if many { format!("  [{}]", targets[t].version_string()) } else { String::new() };
            let line = match action {
                Action::Fresh => format!("fresh    {}{label}", p.path.display()),
                Action::Rewrite(_) => {
                    let other = if mode == HashMode::Checked { "unchecked" } else { "checked" };
                    format!("rewrite  {}{label}  ({other} → {} header)", p.path.display(), mode_name(mode))
                }
                Action::Compile(reason) => {
                    format!("compile  {}{label}  ({reason})", p.path.display())
                }
                Action::KnownFailure(f) => {
                    format!("fails    {}{label}  ({}: {}, remembered)", p.path.display(), f.kind, f.message)
                }
            };
            lines.push((p.path.clone(), line));
        }
    }
    for s in skipped {
        lines.push((
            s.clone().into_boxed_path(),
            format!("skip     {}  (symlink outside --limit-symlinks)", s.display()),
        ));
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, l) in lines {
        if writeln!(out, "{l}").is_err() {
            return;
        }
    }
}

fn mode_name(mode: HashMode) -> &'static str {
    match mode {
        HashMode::Checked => "checked",
        HashMode::Unchecked => "unchecked",
    }
}
