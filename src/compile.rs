//! `hashpyc compile`, as stage functions: walk+plan → triage (plan errors, remembered
//! failures) → header rewrites and links in Rust → pool (Python workers, writing as they
//! go) → record results → report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::embed::Embed;
use crate::layout::Layout;
use crate::memo::Memo;
use crate::plan::{self, Action, PlanOptions, PycPaths, Reason, SourcePlan};
use crate::pool::WorkerSpec;
use crate::pool::schedule::{self, Schedule, UnitResult};
use crate::pyc::{self, HashMode, Header};
use crate::report::{self, Reporter, Style};
use crate::target::Target;
use crate::walk::{self, WalkOptions, Walked};
use crate::{Error, ExitStatus, Verbosity};

/// Resolved options of one compile run.
#[derive(Clone)]
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
    /// Where the timeout was set (see `WorkerSpec::timeout_from`).
    pub timeout_from: String,
    pub dry_run: bool,
    pub hardlink_dupes: bool,
    /// Cross-check long-lived results against fresh forks (tests; `HASHPYC_VERIFY=1`).
    pub verify: bool,
    /// The bytecode cache, when one is used.
    pub cache: Option<crate::cache::CacheSettings>,
    /// `-W error`: a file whose compile raises a warning fails and gets no pyc.
    pub warnings_as_errors: bool,
    /// `--format json`: JSON Lines on stdout instead of messages on stderr.
    pub json: bool,
    /// `--format github`: failures, warnings and per-file errors as GitHub Actions
    /// annotations on stdout; the rest as in text.
    pub github: bool,
    /// In JSON mode, the `pyproject.toml` files discovery passed over and, under `-v`, where
    /// the configuration came from (`configuration: …`), printed as `notice` objects (text
    /// mode printed them on stderr when the file was loaded).
    pub described: Vec<String>,
    /// Warnings about the paths named (`settings::ddir_named_warning`,
    /// `settings::nested_config_warning`).
    pub named_warnings: Vec<String>,
}

/// Counts for the summary. Units are source × target pairs (the JSON summary's historical
/// keys); the text line counts files (sources) and pycs (one per target and level).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub sources: usize,
    /// Sources brought up to date for at least one target.
    pub compiled_sources: usize,
    /// pycs written by those units (compiled or from the cache).
    pub compiled_pycs: usize,
    /// Of those, written from the bytecode cache.
    pub from_cache_pycs: usize,
    /// pycs left as they were, already fresh (or linked again by a compile to the
    /// identical level it wrote before them: the dry run cannot know those).
    pub fresh_pycs: usize,
    /// pycs whose header alone was rewritten (linked again to an identical level where
    /// they were), and pycs only made hard links of an identical level (`--hardlink-dupes`):
    /// each pyc counts in one of compiled, fresh, rewritten and linked; one compiled as a
    /// link to an identical level counts as compiled.
    pub rewritten_pycs: usize,
    pub linked_pycs: usize,
    /// The sources that failed, for any target (by plan index; walk-time fresh sources
    /// never fail).
    pub failed_sources: std::collections::BTreeSet<usize>,
    /// Units brought up to date: compiled, or written from the cache.
    pub compiled: usize,
    /// Of those, written from the bytecode cache.
    pub from_cache: usize,
    pub fresh: usize,
    pub rewritten: usize,
    pub linked: usize,
    pub failed: usize,
    /// Warnings reported as warnings (once per source and target); under `-W error` they
    /// are failures and counted in `failed`, not here.
    pub warnings: usize,
    pub errors: usize,
    /// pycs not written because the disk had no room left ([`crate::write::no_room`]), the
    /// one whose write found none included: said in one error, counted once in `errors`.
    pub not_written: usize,
    /// Sources gone since the walk found them, each once whatever the targets.
    pub vanished: std::collections::HashSet<PathBuf>,
    pub usage_errors: usize,
    pub skipped: walk::Skipped,
    /// Where the rules that skipped files were set, when a configuration file set them.
    pub skipped_by: walk::RuleOrigins,
    /// Per target (by index, grown as counted): its units compiled (or written from the
    /// cache) and failed, for a summary line that says which target they were for when
    /// targets' counts differ.
    pub by_target: Vec<TargetCounts>,
}

/// One target's share of the units: sources compiled for it, and sources that failed for it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TargetCounts {
    pub compiled: usize,
    pub failed: usize,
}

impl Summary {
    /// Count a unit compiled (or written from the cache) for target `t`.
    fn compiled_for(&mut self, t: usize) {
        self.compiled += 1;
        self.target_mut(t).compiled += 1;
    }

    /// Count a unit failed for target `t`.
    fn failed_for(&mut self, t: usize) {
        self.failed += 1;
        self.target_mut(t).failed += 1;
    }

    fn target_mut(&mut self, t: usize) -> &mut TargetCounts {
        if self.by_target.len() <= t {
            self.by_target.resize(t + 1, TargetCounts::default());
        }
        &mut self.by_target[t]
    }

    /// Each target's counts, when they differ between targets (None: one target, or the
    /// same counts for each, which the plain wording states exactly).
    fn differing_targets(&self, n: usize) -> Option<Vec<TargetCounts>> {
        let counts: Vec<TargetCounts> =
            (0..n).map(|t| self.by_target.get(t).copied().unwrap_or_default()).collect();
        (n > 1 && counts.iter().any(|c| *c != counts[0])).then_some(counts)
    }
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

/// A message tied to a path, printed in path order after the run. Identical messages for
/// several targets are printed once, with the targets listed on their first line.
struct Note {
    path: PathBuf,
    order: u8,
    text: String,
    /// The targets it concerns (empty: not target-specific).
    targets: Vec<usize>,
    /// What `--format json` prints for it (None: nothing).
    event: Option<Event>,
    /// Printed before the path's other notes of its order: a warning the compile raised
    /// before it failed, shown before the failure as `python -m py_compile` shows it.
    first: bool,
}

impl Note {
    /// The line a warning's note is about (0 for other notes).
    fn line(&self) -> u64 {
        let line = self.event.as_ref().and_then(|e| e.fields.get("line"));
        line.and_then(serde_json::Value::as_u64).unwrap_or(0)
    }
}

/// A note as `--format json` prints it: `type`, then `path` and `python`, then `fields`.
struct Event {
    kind: &'static str,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    fn new(kind: &'static str, fields: serde_json::Value) -> Event {
        let serde_json::Value::Object(fields) = fields else { unreachable!("events are objects") };
        Event { kind, fields }
    }

    /// A per-file or run error (`message` without the `error:` label).
    fn error(message: impl Into<String>) -> Event {
        Event::new("error", serde_json::json!({ "message": message.into() }))
    }

    /// Something worth knowing that is no error (a dangling symlink, a vanished file).
    fn notice(message: impl Into<String>) -> Event {
        Event::new("notice", serde_json::json!({ "message": message.into() }))
    }

    /// `-v`'s line about a target, with the target as the summary's `targets` name it.
    fn target(t: &Target) -> Event {
        let mut e = Event::notice(target_line(t));
        e.fields.insert("target".into(), t.json());
        e
    }

    /// A source that does not compile; `remembered`: reported from the failure memo.
    /// Positions are 1-based: CPython's 0 (a source it cannot decode, whose error has no
    /// line) is null, as is its -1.
    fn failure(f: &crate::pool::CompileFailure, remembered: bool) -> Event {
        let at = |n: Option<u32>| n.filter(|&n| n > 0);
        Event::new(
            "failure",
            serde_json::json!({
                "kind": f.kind,
                "message": f.message,
                "line": at(f.line),
                "column": at(f.offset),
                "end_line": at(f.end_line),
                "end_column": at(f.end_offset),
                "text": (!f.text.is_empty()).then_some(&f.text),
                "warning": false,
                "remembered": remembered,
            }),
        )
    }

    /// A warning the compile raised: a `warning`, or under `-W error` a `failure`.
    fn warning(w: &crate::pool::Warning, as_error: bool, remembered: bool) -> Event {
        let mut e = Event::new(
            if as_error { "failure" } else { "warning" },
            serde_json::json!({ "kind": w.category, "message": w.message, "line": w.in_source().then_some(w.line) }),
        );
        if as_error {
            e.fields.insert("warning".into(), true.into());
            e.fields.insert("remembered".into(), remembered.into());
        }
        e
    }
}

/// The notes of a run.
struct Notes {
    notes: Vec<Note>,
    /// Printed after the others: a warning their lines explain.
    last: Vec<Note>,
    quiet: u8,
    /// `--format json`: every note that has an event is printed, whatever `-q`.
    json: bool,
    /// `--format github`: the failures, warnings and errors of files as annotations.
    github: bool,
}

impl Notes {
    fn add(&mut self, path: &Path, order: u8, target: Option<usize>, text: String, event: Option<Event>) {
        self.notes.push(Note {
            path: path.to_path_buf(),
            order,
            text,
            targets: target.into_iter().collect(),
            event,
            first: false,
        });
    }

    /// A warning about the whole run: on stderr at once in text mode, a `notice` object in
    /// JSON.
    fn warning(&mut self, message: String, style: Style) {
        if self.json {
            self.add(Path::new(""), 0, None, String::new(), Some(Event::notice(message)));
        } else {
            report::eprint_line(&format!("{}: {message}", style.warning()));
        }
    }

    /// A warning about the whole run that the notes explain (an empty selection after a
    /// warning about each named path): printed after them.
    fn warning_last(&mut self, message: String, style: Style) {
        let text = if self.json { String::new() } else { format!("{}: {message}", style.warning()) };
        let event = Event::notice(message);
        self.last.push(Note {
            path: PathBuf::new(),
            order: 0,
            text,
            targets: Vec::new(),
            event: Some(event),
            first: false,
        });
    }

    /// A note shown unless `-qq`.
    fn notice(&mut self, path: &Path, order: u8, target: Option<usize>, text: String, event: Event) {
        if self.quiet < 2 || self.json {
            self.add(path, order, target, text, Some(event));
        }
    }

    /// Print the notes: on stderr, or as JSON Lines on stdout, which may fail
    /// ([`report::written`]).
    fn print(mut self, targets: &[Arc<Target>]) -> Result<(), Error> {
        // A file's warnings in the order of their lines, as CPython shows them (the text
        // alone would put line 10 before line 2).
        let by_line = |a: &Note, b: &Note| {
            a.path
                .cmp(&b.path)
                .then(a.order.cmp(&b.order))
                .then(b.first.cmp(&a.first))
                .then(a.line().cmp(&b.line()))
        };
        self.notes.sort_by(|a, b| by_line(a, b).then(a.text.cmp(&b.text)));
        // On one line, the targets in the order given (`--python 3.9 --python 3.13`: 3.9's
        // failure first, though 3.13's column comes first in the text), as `check` lists
        // them; after merging a text's targets in text mode, so that one text for several
        // targets stays one line. Stable: the text still orders a target's own notes.
        let by_target =
            |a: &Note, b: &Note| by_line(a, b).then(a.targets.iter().min().cmp(&b.targets.iter().min()));
        let last = std::mem::take(&mut self.last);
        if self.json {
            self.notes.sort_by(by_target);
            self.notes.extend(last);
            return print_events(self.notes, targets);
        }
        let mut merged: Vec<Note> = Vec::with_capacity(self.notes.len());
        for n in self.notes {
            match merged.last_mut() {
                Some(last)
                    if last.path == n.path
                        && last.order == n.order
                        && last.first == n.first
                        && last.text == n.text =>
                {
                    last.targets.extend(n.targets);
                }
                _ => merged.push(n),
            }
        }
        merged.sort_by(by_target);
        merged.extend(last);
        if self.github {
            // A file's failure, warning or error is an annotation on stdout (one per target,
            // named in its title); the other notes stay on stderr.
            let mut out = std::io::stdout().lock();
            let mut rest = Vec::with_capacity(merged.len());
            for n in merged {
                match github_annotations(&n, targets) {
                    Some(lines) => {
                        for line in lines {
                            if !report::out_line(&mut out, line)? {
                                return Ok(());
                            }
                        }
                    }
                    None => rest.push(n),
                }
            }
            merged = rest;
        }
        let mut err = std::io::stderr().lock();
        for mut n in merged {
            if targets.len() > 1 && !n.targets.is_empty() {
                n.targets.sort_unstable();
                n.targets.dedup();
                let which: Vec<Arc<Target>> = n.targets.iter().map(|&t| Arc::clone(&targets[t])).collect();
                let suffix = format!(" [{}]", crate::target::targets_label(&which));
                let at = n.text.find('\n').unwrap_or(n.text.len());
                n.text.insert_str(at, &suffix);
            }
            report::stderr_line(&mut err, &n.text);
        }
        Ok(())
    }
}

/// `--format github`: a file's failure, warning or error as workflow commands, one per target
/// (`::error file=bad.py,line=2,col=7,title=hashpyc compile (CPython 3.12)::SyntaxError: …`,
/// escaped as `check`'s); None for any other note.
fn github_annotations(n: &Note, targets: &[Arc<Target>]) -> Option<Vec<String>> {
    let event = n.event.as_ref().filter(|_| !n.path.as_os_str().is_empty())?;
    let level = match event.kind {
        "failure" | "error" => "error",
        "warning" => "warning",
        _ => return None,
    };
    let field = |k: &str| event.fields.get(k).and_then(serde_json::Value::as_u64).filter(|&n| n > 0);
    let mut place = String::new();
    if let Some(line) = field("line") {
        place.push_str(&format!(",line={line}"));
        if let Some(col) = field("column") {
            place.push_str(&format!(",col={col}"));
        }
    }
    let text = |k: &str| event.fields.get(k).and_then(serde_json::Value::as_str).unwrap_or_default();
    let message = match text("kind") {
        "" => text("message").to_string(),
        kind => format!("{kind}: {}", text("message")),
    };
    let mut which: Vec<usize> = n.targets.clone();
    which.sort_unstable();
    which.dedup();
    let titles: Vec<String> = if which.is_empty() {
        vec!["hashpyc compile".to_string()]
    } else {
        which
            .iter()
            .map(|&t| format!("hashpyc compile (CPython {}.{})", targets[t].version.0, targets[t].version.1))
            .collect()
    };
    Some(
        titles
            .iter()
            .map(|title| crate::check::workflow_command(level, Some((&n.path, &place)), title, &message))
            .collect(),
    )
}

/// The notes as JSON Lines on stdout: one object per note and target.
fn print_events(notes: Vec<Note>, targets: &[Arc<Target>]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    for n in notes {
        let Some(event) = n.event else { continue };
        let pythons: Vec<Option<String>> = if n.targets.is_empty() {
            vec![None]
        } else {
            n.targets
                .iter()
                .map(|&t| Some(format!("{}.{}", targets[t].version.0, targets[t].version.1)))
                .collect()
        };
        for python in pythons {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), event.kind.into());
            let path = (!n.path.as_os_str().is_empty())
                .then(|| serde_json::to_value(report::JsonPath(&n.path)).expect("paths serialize"));
            obj.insert("path".into(), path.into());
            obj.insert("python".into(), python.into());
            obj.extend(event.fields.clone());
            if !report::out_line(&mut out, serde_json::Value::Object(obj))? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The final `--format json` object. `dry_run`: in a dry run, the number of files to check
/// for warnings; its counts are what the run would do, and what it cannot know without
/// compiling (pycs from the cache, warnings) is null.
fn summary_json(
    s: &Summary,
    targets: &[Arc<Target>],
    elapsed: Duration,
    cache: Option<&crate::cache::Cache>,
    warnings_as_errors: bool,
    dry_run: Option<usize>,
) -> serde_json::Value {
    let unknown_in_dry_run = |n: usize| dry_run.is_none().then_some(n);
    let targets: Vec<serde_json::Value> = targets.iter().map(|t| t.json()).collect();
    let cache = cache.map(|c| {
        let tiers: serde_json::Map<String, serde_json::Value> = c
            .tier_totals()
            .into_iter()
            .map(|(name, t)| {
                let mut counts = serde_json::to_value(t).expect("counts serialize");
                if let (serde_json::Value::Object(counts), true) = (&mut counts, name == "remote") {
                    counts.extend(c.remote_outcome());
                }
                (name.to_string(), counts)
            })
            .collect();
        serde_json::Value::Object(tiers)
    });
    let mut json = serde_json::json!({
        "type": "summary",
        "dry_run": dry_run.is_some(),
        "sources": s.sources,
        "compiled": s.compiled,
        "compiled_sources": s.compiled_sources,
        "compiled_pycs": s.compiled_pycs,
        "from_cache": unknown_in_dry_run(s.from_cache),
        "from_cache_pycs": unknown_in_dry_run(s.from_cache_pycs),
        "fresh": s.fresh,
        "fresh_pycs": s.fresh_pycs,
        "rewritten": s.rewritten,
        "rewritten_pycs": s.rewritten_pycs,
        "linked": s.linked,
        "linked_pycs": s.linked_pycs,
        "failed": s.failed,
        "failed_sources": s.failed_sources.len(),
        "warnings": unknown_in_dry_run(s.warnings),
        "errors": s.errors + s.usage_errors,
        "vanished": s.vanished.len(),
        "skipped_ignored": s.skipped.ignored,
        "skipped_hidden": s.skipped.hidden,
        "skipped_ignored_dirs": s.skipped.ignored_dirs,
        "skipped_hidden_dirs": s.skipped.hidden_dirs,
        "force_excluded": s.skipped.force_excluded,
        "regex_excluded": s.skipped.regex_excluded,
        "skipped_not_py": s.skipped.not_py,
        "skipped_no_module_name": s.skipped.no_module_name,
        "skipped_limit_symlinks": s.skipped.limit_symlinks,
        "skipped_links_to_nothing": s.skipped.links_to_nothing(),
        "warnings_as_errors": warnings_as_errors,
        "targets": targets,
        "elapsed": report::json_seconds(elapsed),
        "cache": cache,
    });
    if let (Some(check), serde_json::Value::Object(map)) = (dry_run, &mut json) {
        map.insert("check_sources".into(), check.into());
    }
    json
}

/// `-v`'s line about a target: `check`'s, and how the workers run.
pub fn target_line(t: &Target) -> String {
    format!("{}, {}", crate::target_line(t), t.isolation())
}

/// What walking and planning found.
struct Planned {
    /// Sources with something to do or report, sorted by path.
    plans: Vec<SourcePlan>,
    walked: Walked,
    sources: usize,
    /// Fresh (source, target) units not kept in `plans`.
    fresh_units: usize,
    /// Sources `-s` or `-p` did not apply to, and the first of them.
    missed: crate::embed::Misses,
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
    let cache = crate::target::own_state_dir();
    crate::verified::open(cache.as_deref(), s.targets.iter().map(|t| t.magic));
    let mut memos: Vec<Option<Memo>> = s
        .targets
        .iter()
        .map(|t| Some(Memo::load(cache.as_deref()?, &t.memo_identity()?, (t.version.0, t.version.1))))
        .collect();
    if s.warnings_as_errors {
        memos.iter_mut().flatten().for_each(Memo::load_clean);
    }
    let paths = PycPaths { targets: &s.targets, layouts: &s.layouts, levels: &s.levels, cwd: &cwd };
    let opts = PlanOptions {
        paths,
        mode: s.mode,
        force: s.force,
        embed: &s.embed,
        memos: &memos,
        hardlink_dupes: s.hardlink_dupes,
        warnings_as_errors: s.warnings_as_errors,
    };
    let planned = walk_and_plan(s, &opts);
    spans.mark("walk+plan");
    let mut notes =
        Notes { notes: Vec::new(), last: Vec::new(), quiet: verbosity.quiet, json: s.json, github: s.github };
    for described in &s.described {
        notes.add(Path::new(""), 0, None, String::new(), Some(Event::notice(described.clone())));
    }
    // Text mode printed these on stderr before the run (lib.rs).
    if s.json && verbosity.verbose > 0 {
        for (t, target) in s.targets.iter().enumerate() {
            notes.add(Path::new(""), 0, Some(t), String::new(), Some(Event::target(target)));
        }
    }
    let mut summary = Summary {
        sources: planned.sources,
        fresh: planned.fresh_units,
        fresh_pycs: planned.fresh_units * s.levels.len(),
        skipped: planned.walked.skipped,
        skipped_by: s.walk.skipped_by.clone(),
        ..Summary::default()
    };
    walk_notes(&planned.walked, &mut summary, &mut notes, style);
    if verbosity.verbose > 0
        && let Some(line) = crate::verified::verbose_line()
    {
        notes.add(Path::new(""), 0, None, line.clone(), Some(Event::notice(line)));
    }
    crate::verified::save();
    // An interrupted walk planned part of the tree: nothing of it is reported, nor compiled.
    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    // A selection with no source compiles nothing: say so, as ruff does (the exit status
    // stays 0, as compileall's), so that a path naming the wrong directory or rules that hide
    // the whole tree do not pass unnoticed. Not for an empty list on stdin (a hook with no
    // files) or paths every one of which an exclude (`--force-exclude`, `-x`) skipped on
    // purpose or is no `.py` file.
    if summary.sources == 0
        && summary.errors + summary.usage_errors == 0
        && !s.roots.is_empty()
        && summary.skipped.named() < s.roots.len()
        && (verbosity.quiet < 2 || s.json)
    {
        let message = report::no_sources(
            "compile",
            &s.roots,
            summary.skipped.describe_empty(&s.walk.skipped_by),
            &s.walk,
        );
        notes.warning_last(message, style);
    }
    // A `__pycache__` linked out of the tree: only where pycs go into `__pycache__`, and
    // for the directories whose pycs this run writes.
    let mut pycache_links = Vec::new();
    if s.layouts.iter().any(|l| matches!(l, Layout::Pycache)) && !planned.walked.pycache_symlinks.is_empty() {
        let dirs: std::collections::HashSet<&Path> =
            planned.plans.iter().filter_map(|p| p.path.parent()).collect();
        let writes = |dir: &Path| dirs.contains(dir);
        pycache_links = walk::pycache_link_warnings(&planned.walked.pycache_symlinks, &writes);
    }
    // A link inside a `--pycache-prefix` tree leading out of it, on the way to the
    // directories this run writes pycs into.
    for (t, layout) in s.layouts.iter().enumerate() {
        let Layout::Prefix(prefix) = layout else { continue };
        if s.layouts[..t].contains(layout) {
            continue;
        }
        let mut dirs: Vec<(PathBuf, &Path)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for plan in &planned.plans {
            let Some(source_dir) = plan.path.parent() else { continue };
            if seen.insert(source_dir)
                && let Some(pyc) = opts.paths.of(&plan.path, t).into_iter().next()
                && let Some(dir) = pyc.parent()
            {
                dirs.push((dir.to_path_buf(), source_dir));
            }
        }
        pycache_links.extend(walk::prefix_link_warnings(prefix, &dirs));
    }
    // Said once the interpreters' settings are known: a launcher's remembered probe is
    // confirmed first where the run starts Python (`confirm_targets`), and a stale one's
    // settings are not the run's.
    let run_warnings: Vec<String> = s
        .named_warnings
        .iter()
        .cloned()
        .chain(pycache_links)
        .chain(walk::environment_warnings(&planned.walked.environments, &s.targets, "writes"))
        .chain(planned.missed.messages(&s.embed))
        .collect();
    if s.dry_run {
        warn_run(s, &run_warnings, &mut notes, style, verbosity);
    }
    let mut plans = planned.plans;

    // A cache directory the run could not use (a file in its place) is said as the run
    // would say it: the dry run opens nothing.
    if s.dry_run
        && let Some(settings) = &s.cache
        && let Some(dir) = &settings.dir
        && std::fs::metadata(dir).is_ok_and(|m| !m.is_dir())
        && (verbosity.quiet < 2 || s.json)
    {
        let e = crate::cache::CacheError::Open {
            path: dir.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        };
        notes.warning(unusable_cache(&e, settings, "the run would compile without it"), style);
    }
    if s.dry_run {
        let check = dry_run(
            s,
            &plans,
            &planned.walked,
            (&memos, &opts.paths),
            &cwd,
            &mut summary,
            &mut notes,
            style,
        )?;
        // As a real run: a dry run reads the state directory too.
        if let Some(w) = crate::target::state_refused_warning() {
            notes.add(Path::new(""), 0, None, format!("{}: {w}", style.warning()), Some(Event::notice(w)));
        }
        // The errors first, then the summary line, as a real run prints them.
        notes.print(&s.targets)?;
        if !s.json && verbosity.quiet == 0 {
            report::eprint_line(&dry_run_summary_line(&summary, check, &s.targets, style));
        }
        if s.json {
            let json = summary_json(
                &summary,
                &s.targets,
                started.elapsed(),
                None,
                s.warnings_as_errors,
                Some(check),
            );
            report::out_line(&mut std::io::stdout().lock(), json)?;
        }
        return Ok(summary);
    }

    // A failure remembered for a launcher whose probe is remembered too (a script, whose
    // key cannot see the flags it takes from a variable) is the failure of the settings it
    // ran with then: it is reported once a worker's hello confirms them, and a launcher
    // probed again with other settings (another int-digits limit) has its sources looked up
    // in the memory of those (see `Target::memo_identity`), the others compiled.
    let early = plans.iter().any(|p| {
        p.actions
            .iter()
            .zip(&s.targets)
            .any(|(a, t)| t.unconfirmed && matches!(a, Action::KnownFailure { .. }))
    });
    let confirmed_early = match early.then(|| confirm_targets(s, &worker_specs(s), 1)) {
        Some(Err(e)) => return Err(confirm_failed(s, e, &run_warnings, notes, (style, verbosity))),
        Some(Ok(confirmed)) => Some(confirmed),
        None => None,
    };
    let settings_early;
    let (s, confirmed_early) = match confirmed_early {
        Some((confirmed, reprobed)) => {
            let s = match reprobed_settings(s, reprobed, &mut notes, verbosity) {
                Some((now, again)) => {
                    settings_early = now;
                    for t in again {
                        let target = &settings_early.targets[t];
                        memos[t] = cache
                            .as_deref()
                            .zip(target.memo_identity())
                            .map(|(dir, id)| Memo::load(dir, &id, (target.version.0, target.version.1)));
                        forget_remembered(&mut plans, t, memos[t].as_ref(), &settings_early.levels, &cwd);
                    }
                    &settings_early
                }
                None => s,
            };
            (s, Some(confirmed))
        }
        None => (s, None),
    };
    let paths = PycPaths { targets: &s.targets, layouts: &s.layouts, levels: &s.levels, cwd: &cwd };
    triage(s, &mut plans, (&memos, &paths), &cwd, &mut summary, &mut notes, (style, verbosity));
    rewrite_stage(s, &mut plans, &paths, &mut summary, &mut notes, style, verbosity);
    spans.mark("rewrite");

    let specs = worker_specs(s);
    let units = plans.iter().filter(|p| p.actions.iter().any(|a| a.is_compile())).count();
    let confirmation = match confirmed_early {
        Some(confirmed) => Ok((confirmed, Vec::new())),
        None => confirm_targets(s, &specs, units),
    };
    let (confirmed, reprobed) = match confirmation {
        Ok(confirmed) => confirmed,
        Err(e) => return Err(confirm_failed(s, e, &run_warnings, notes, (style, verbosity))),
    };
    // A launcher whose settings changed since its probe was probed again: the run goes on
    // with what it runs now (its cache key, its warnings), saying so under `-v`.
    let settings_now;
    let (s, specs) = match reprobed_settings(s, reprobed, &mut notes, verbosity) {
        Some((now, _)) => {
            settings_now = now;
            let specs: Vec<WorkerSpec> = specs
                .iter()
                .zip(&settings_now.targets)
                .map(|(spec, t)| WorkerSpec { target: Arc::clone(t), ..spec.clone() })
                .collect();
            (&settings_now, specs)
        }
        None => (s, specs),
    };
    warn_run(s, &run_warnings, &mut notes, style, verbosity);
    let cache = match &s.cache {
        Some(settings) => {
            let scripts: Vec<&str> = specs.iter().map(|w| &*w.script).collect();
            match crate::cache::Cache::open(settings.clone(), &s.targets, &scripts) {
                Ok(c) => Some(c),
                // Read-only, a directory that does not exist yet is an empty cache.
                Err(e) if e.missing_read_only(settings.read_only) => {
                    if verbosity.verbose > 0 {
                        let line =
                            crate::cache::absent_line(settings.dir.as_deref().unwrap_or(Path::new("")));
                        notes.add(Path::new(""), 0, None, line.clone(), Some(Event::notice(line)));
                    }
                    None
                }
                Err(e) => {
                    // A cache that cannot be used never fails a build.
                    let message = unusable_cache(&e, settings, "compiling without it");
                    notes.warning(message, style);
                    None
                }
            }
        }
        None => None,
    };
    if let Some(cache) = &cache {
        store_remembered_failures(s, &plans, cache);
    }
    // The limit applies to the workers started: said once one is (a build the cache serves
    // whole starts none, whatever the limit).
    let workers = slot_workers(s);
    let (jobs, fewer, no_room) = match descriptor_jobs(s.jobs.min(units), workers, cache_fds(cache.as_ref()))
    {
        Ok(_) => (s.jobs, None, None),
        Err((limit, most)) if most > 0 => (most, Some((limit, most)), None),
        Err((limit, _)) => (1, None, Some(limit)),
    };
    let (results, fatal) =
        compile_stage(s, (jobs, no_room), &plans, &paths, &specs, confirmed, cache.as_ref(), reporter);
    if let Some((limit, most)) = fewer
        && crate::pool::STATS.workers.load(Ordering::Relaxed) > 0
    {
        let message = format!(
            "the open-file limit (`ulimit -n`: {limit}) allows at most {}; using {most}",
            report::plural(most, "worker", "workers")
        );
        notes.warning(message, style);
    }
    // Workers a process or memory limit left no room for (a container's pids limit): the
    // run went on with the others, said once (with room for none, `fatal` says why).
    if let Some(fewer) = crate::pool::FEWER.lock().expect("fewer lock").take()
        && fatal.is_none()
        && crate::pool::STATS.workers.load(Ordering::Relaxed) > 0
    {
        let message = format!(
            "could start only {} of {} Python workers, going on with {}: {}",
            fewer.running, fewer.planned, fewer.running, fewer.reason
        );
        notes.warning(message, style);
    }
    spans.mark("compile");
    spans.note(|| crate::pool::STATS.summary());
    if let Some(cache) = &cache {
        let (warnings, info) = cache.finish(verbosity.verbose > 0);
        spans.mark("cache uploads");
        for w in warnings {
            notes.add(Path::new(""), 0, None, format!("{}: {w}", style.warning()), Some(Event::notice(w)));
        }
        for i in info {
            notes.add(Path::new(""), 0, None, i.clone(), Some(Event::notice(i)));
        }
    }
    summary.not_written += unstarted_pycs(&plans, &results);
    record_results(s, &plans, results, &mut memos, &cwd, &mut summary, &mut notes, style, verbosity);
    no_room_error(&mut summary, &mut notes, style);
    // A state directory that passed the check before the run and then failed a write (a
    // full disk): one warning, as for one that cannot be used at all (which was warned of
    // before the run, and is not again).
    for memo in memos.into_iter().flatten() {
        if let Some(e) = memo.save() {
            crate::target::state_write_failed(crate::target::StateLost::Failures, &e);
        }
    }
    let refused = crate::target::state_refused_warning();
    for w in crate::target::state_write_warning(verbosity.verbose > 0).into_iter().chain(refused) {
        notes.add(Path::new(""), 0, None, format!("{}: {w}", style.warning()), Some(Event::notice(w)));
    }
    let printed = notes.print(&s.targets);
    spans.mark("report");
    spans.print();

    if crate::interrupt::requested() {
        return Err(Error::Interrupted);
    }
    if let Some(fatal) = fatal {
        return Err(workers_failed(s, fatal.target, fatal.failure));
    }
    printed?;
    if s.json {
        let json =
            summary_json(&summary, &s.targets, started.elapsed(), cache.as_ref(), s.warnings_as_errors, None);
        report::out_line(&mut std::io::stdout().lock(), json)?;
    } else if verbosity.quiet == 0 {
        report::eprint_line(&summary_line(&summary, &s.targets, started.elapsed(), style));
    }
    Ok(summary)
}

/// The workers to start for each target of `s`.
fn worker_specs(s: &CompileSettings) -> Vec<WorkerSpec> {
    s.targets
        .iter()
        .map(|t| WorkerSpec {
            timeout_from: s.timeout_from.clone(),
            ..WorkerSpec::new(Arc::clone(t), s.timeout)
        })
        .collect()
}

/// The run's error `e` when its targets could not be confirmed ([`confirm_targets`]): what
/// the walk and the plan found (dangling links, unreadable directories) is said before it,
/// as when workers fail later (the error to report, even when stdout fails too); the
/// interpreters' settings too, but not those of a probe the error says is stale.
fn confirm_failed(
    s: &CompileSettings,
    e: Error,
    run_warnings: &[String],
    mut notes: Notes,
    (style, verbosity): (Style, Verbosity),
) -> Error {
    if !matches!(&e, Error::Workers { failure: crate::pool::WorkerFailure::Changed { .. }, .. }) {
        warn_run(s, run_warnings, &mut notes, style, verbosity);
    }
    let _ = notes.print(&s.targets);
    e
}

/// The run's settings with the targets [`confirm_targets`] probed again in place of the
/// stale ones, and which targets those are; each said under `-v`. None when none was.
fn reprobed_settings(
    s: &CompileSettings,
    reprobed: Vec<Option<(Arc<Target>, String)>>,
    notes: &mut Notes,
    verbosity: Verbosity,
) -> Option<(CompileSettings, Vec<usize>)> {
    if reprobed.iter().all(Option::is_none) {
        return None;
    }
    let mut targets = s.targets.clone();
    let mut again = Vec::new();
    for (t, line) in reprobed.into_iter().enumerate() {
        let Some((target, line)) = line else { continue };
        targets[t] = target;
        again.push(t);
        if verbosity.verbose > 0 {
            notes.add(Path::new(""), 0, Some(t), line.clone(), Some(Event::notice(line)));
        }
    }
    Some((CompileSettings { targets, ..s.clone() }, again))
}

/// Target `t`'s failures remembered under the settings it was probed with before: each is
/// the compile it stands for again, or the failure `memo` (of its settings now) remembers.
fn forget_remembered(plans: &mut [SourcePlan], t: usize, memo: Option<&Memo>, levels: &[u8], cwd: &Path) {
    for p in plans.iter_mut() {
        let Some(action) = p.actions.get_mut(t) else { continue };
        let Action::KnownFailure { hash, .. } = action else { continue };
        let hash = *hash;
        let compile = std::mem::replace(action, Action::Fresh).unremembered();
        *action = match memo {
            Some(memo) => compile.or_remembered(memo, &crate::memo::key(&p.path, cwd), hash, levels),
            None => compile,
        };
    }
}

/// The run's error when target `t`'s workers failed with `failure`. A probe remembered that
/// describes another interpreter than the one that runs now (a launcher script whose
/// target changed) is forgotten, so that the next run probes again.
fn workers_failed(s: &CompileSettings, t: usize, failure: crate::pool::WorkerFailure) -> Error {
    if let crate::pool::WorkerFailure::Thread(reason) = failure {
        return Error::Thread(reason);
    }
    if let crate::pool::WorkerFailure::NoRoom(_) = failure {
        return Error::Usage(failure.to_string());
    }
    if matches!(failure, crate::pool::WorkerFailure::Changed { .. }) {
        crate::target::forget(&s.targets[t].executable, crate::target::own_state_dir().as_deref());
    }
    Error::Workers { python: crate::pool::describe(&s.targets[t]), failure }
}

/// The warnings about the whole run: the interpreters' own settings (a launcher's flags),
/// then `run_warnings` (the paths named, environments, `-s`/`-p` that missed), unless `-qq`.
fn warn_run(
    s: &CompileSettings,
    run_warnings: &[String],
    notes: &mut Notes,
    style: Style,
    verbosity: Verbosity,
) {
    if verbosity.quiet >= 2 && !s.json {
        return;
    }
    let settings =
        crate::settings::interpreter_settings_warnings(&s.targets, &s.layouts, &s.levels, "compile");
    for message in settings.into_iter().chain(run_warnings.iter().cloned()) {
        notes.warning(message, style);
    }
}

/// Per target, the worker that confirmed its probe, and a probe made again with the line
/// that says why (see [`confirm_targets`]).
type Confirmed = (Vec<Option<crate::pool::Worker>>, Vec<Option<(Arc<Target>, String)>>);

/// Before a run starts Python to compile (and before a bytecode cache serves a hit or
/// stores anything), each target whose probe was remembered for a launcher (a script or a
/// version manager's binary, whose key cannot see which interpreter it now runs, nor the
/// flags it takes from a variable) is confirmed by a worker's hello, which compares
/// everything the cache's key takes from the probe: a cached build starts no other Python,
/// and its hits would otherwise be served, and its failures stored, under a stale identity.
/// Only in a run with `units` to compile or take from the cache; the workers that
/// confirmed, per target, are the pool's first ones (a build with misses starts no more
/// Python than it would anyway). A hello that differs from the probe in the launcher's
/// settings alone (column positions, the int-digits limit, the optimization level, the
/// pycache prefix: the same build, as the plan took it) makes the probe again on the spot
/// and the run goes on with it, confirmed by another worker; one that differs from that
/// probe too, or in the build, stops the run (the probe forgotten).
/// A worker that a process or memory limit keeps from starting (a container's pids limit)
/// is tried again as the pool's last slot tries its own: the workers already confirmed
/// end first (their processes are room for it; the pool starts others), then after
/// pauses; only then is the limit the run's error, as with no worker at all.
fn confirm_targets(s: &CompileSettings, specs: &[WorkerSpec], units: usize) -> Result<Confirmed, Error> {
    let mut confirmed: Vec<Option<crate::pool::Worker>> = Vec::new();
    let mut reprobed = Vec::new();
    let mut pauses = 0;
    for (t, spec) in specs.iter().enumerate() {
        if !(spec.target.unconfirmed && units > 0) {
            confirmed.push(None);
            reprobed.push(None);
            continue;
        }
        let mut spec = std::borrow::Cow::Borrowed(spec);
        let mut again = None;
        let worker = loop {
            match crate::pool::Worker::spawn(&spec) {
                Ok(worker) => break worker,
                Err(crate::pool::WorkerFailure::Interrupted) => return Err(Error::Interrupted),
                Err(failure) if failure.limit_reason().is_some() => {
                    if confirmed.iter().any(Option::is_some) {
                        confirmed.iter_mut().for_each(|w| *w = None);
                        continue;
                    }
                    match crate::pool::schedule::limit_pause(pauses, crate::interrupt::requested) {
                        Some(true) => pauses += 1,
                        Some(false) => return Err(Error::Interrupted),
                        None => return Err(workers_failed(s, t, failure)),
                    }
                }
                Err(failure) if again.is_none() && failure.settings_changed() => {
                    let fresh = probe_again(s, &spec.target)?;
                    if !fresh.same_build(&spec.target) {
                        return Err(workers_failed(s, t, failure));
                    }
                    let line = format!(
                        "{}: its settings changed since it was probed ({}); probed it again",
                        crate::report::ticked(&spec.target.executable),
                        failure.changed_setting().unwrap_or_default(),
                    );
                    let fresh = Arc::new(fresh);
                    again = Some((Arc::clone(&fresh), line));
                    spec = std::borrow::Cow::Owned(WorkerSpec { target: fresh, ..spec.into_owned() });
                }
                Err(failure) => return Err(workers_failed(s, t, failure)),
            }
        };
        confirmed.push(Some(worker));
        reprobed.push(again);
    }
    Ok((confirmed, reprobed))
}

/// Probe `target`'s interpreter again, its remembered probe forgotten first (a launcher
/// whose settings changed since).
fn probe_again(s: &CompileSettings, target: &Target) -> Result<Target, Error> {
    let state = crate::target::own_state_dir();
    crate::target::forget(&target.executable, state.as_deref());
    let timeout = crate::settings::probe_timeout(s.timeout);
    crate::target::probe(&target.executable, timeout, state.as_deref()).map_err(|e| match e {
        crate::target::TargetError::Interrupted => Error::Interrupted,
        e => e.into(),
    })
}

/// Walk and plan in one pass, on the walker's threads. Only sources with something to do
/// (or to report) are kept, so a no-op run over a huge tree stays small.
fn walk_and_plan(s: &CompileSettings, opts: &PlanOptions<'_>) -> Planned {
    let kept = std::sync::Mutex::new(Vec::new());
    let fresh_units = AtomicUsize::new(0);
    let seen = AtomicUsize::new(0);
    let missed = crate::embed::Missed::default();
    // Under -W error, fresh pycs of sources remembered to compile with warnings are kept
    // for triage, which fails them.
    let warned = s.warnings_as_errors && opts.memos.iter().flatten().any(Memo::has_warned);
    let walked = walk::walk_each(&s.roots, &s.walk, &|source| {
        seen.fetch_add(1, Ordering::Relaxed);
        let p = plan::plan_one(source, opts);
        let warned = warned && {
            let abs = crate::memo::key(&p.path, opts.paths.cwd);
            opts.memos.iter().flatten().any(|m| m.knows_warned(&abs))
        };
        missed.add(&p.path, (p.strip_missed, p.strip_whole, p.prepend_missed));
        if !s.dry_run && !warned && p.error.is_none() && p.actions.iter().all(|a| *a == Action::Fresh) {
            fresh_units.fetch_add(p.actions.len(), Ordering::Relaxed);
        } else {
            kept.lock().expect("plan lock").push(p);
        }
    });
    let mut plans = kept.into_inner().expect("plan lock");
    plans.sort_by(|a, b| a.path.cmp(&b.path));
    Planned {
        plans,
        walked,
        sources: seen.into_inner(),
        fresh_units: fresh_units.into_inner(),
        missed: missed.into_inner(),
    }
}

fn walk_notes(walked: &Walked, summary: &mut Summary, notes: &mut Notes, style: Style) {
    for e in &walked.errors {
        if e.is_vanished() {
            // A directory gone since the walk listed it: no unit to count.
            vanished_note(e.path().unwrap_or(Path::new("")), notes);
            continue;
        }
        if e.is_note() {
            // A directory link to an ancestor (`--follow`): every file is taken elsewhere.
            let path = e.path().unwrap_or(Path::new(""));
            notes.notice(path, 0, None, format!("note: {e}"), Event::notice(e.to_string()));
            continue;
        }
        let label = if e.is_notice() {
            style.warning()
        } else if e.is_usage() {
            summary.usage_errors += 1;
            style.error()
        } else {
            summary.errors += 1;
            style.error()
        };
        let path = e.path().unwrap_or(Path::new(""));
        if e.is_notice() {
            // A per-file warning (a dangling `.py` symlink, a loop): not under -qq.
            notes.notice(path, 0, None, format!("{label}: {e}"), Event::notice(e.to_string()));
        } else {
            notes.add(path, 0, None, format!("{label}: {e}"), Some(Event::error(e.to_string())));
        }
    }
}

/// Sources that could not be planned, and remembered failures, are reported now.
fn triage(
    s: &CompileSettings,
    plans: &mut [SourcePlan],
    (memos, paths): (&[Option<Memo>], &PycPaths<'_>),
    cwd: &Path,
    summary: &mut Summary,
    notes: &mut Notes,
    (style, verbosity): (Style, Verbosity),
) {
    // The pyc directories found fit to write in, each looked at once (see compile_obstacle).
    let mut fine = std::collections::HashSet::new();
    for (i, p) in plans.iter_mut().enumerate() {
        if let Some(err) = &p.error {
            plan_error(&p.path, err, summary, notes, style);
            continue;
        }
        let mut source = None;
        // Under -W error, a unit whose source bytes are remembered to warn at the levels it
        // compiles fails without a compile, as the dry run says: left fresh (nothing written).
        let mut failed = Vec::new();
        let mut refused = Vec::new();
        for (t, action) in p.actions.iter().enumerate() {
            let remembered = match action {
                Action::Fresh if s.warnings_as_errors => {
                    remembered_warnings(s, memos, cwd, (&*p, t, &s.levels), &mut source)
                }
                // `--force` compiles for real, whatever is remembered.
                Action::Compile { prefix, .. } if s.warnings_as_errors && !s.force => {
                    let compiled = &s.levels[..usize::from(*prefix)];
                    remembered_warnings(s, memos, cwd, (&*p, t, compiled), &mut source)
                }
                _ => None,
            };
            if let Some(warnings) = remembered {
                summary.failed_for(t);
                summary.failed_sources.insert(i);
                failed.push(t);
                let source = source.as_ref().and_then(|s| s.as_deref());
                warnings_as_errors(&p.path, t, &warnings.iter().collect::<Vec<_>>(), source, true, notes);
                continue;
            }
            match action {
                Action::Fresh => {
                    summary.fresh += 1;
                    summary.fresh_pycs += s.levels.len();
                }
                // Compiled only to learn its warnings: counted when the result says.
                Action::Compile { reason: Reason::UnknownWarnings, .. } => {}
                Action::Compile { write, .. } => {
                    // A pyc directory that cannot be created or written to (a read-only
                    // tree, a `__pycache__` another user owns) fails the unit before its
                    // compile, as the dry run finds it: compiling 1 903 files to write none
                    // took as long as a build. Only the first pyc's obstacle is taken here;
                    // the source is read by the compile, and here only once the directory is
                    // found wanting: what stops reading it is said first, as the compile and
                    // the dry run say it.
                    let pycs = paths.of(&p.path, t);
                    if let Some(Obstacle::Error(_, 0)) =
                        compile_obstacle(&p.path, &pycs, write, &mut Some(Ok(())), &mut fine)
                    {
                        match compile_obstacle(&p.path, &pycs, write, &mut None, &mut fine) {
                            Some(Obstacle::Vanished) => vanished(&p.path, summary, notes),
                            Some(Obstacle::Error(error, _)) => {
                                // The levels it was not to write are fresh, left alone.
                                summary.fresh_pycs += s.levels.len() - write.len();
                                unit_error(&p.path, t, error.clone(), summary, notes, style);
                                refused.push((t, error));
                            }
                            // Writable by now (changed between the two looks): compiled.
                            None => summary.fresh_pycs += s.levels.len() - write.len(),
                        }
                        continue;
                    }
                    // The levels a compile does not write are fresh and left alone.
                    summary.fresh_pycs += s.levels.len() - write.len();
                }
                Action::KnownFailure { failure: f, .. } => {
                    summary.failed_for(t);
                    summary.failed_sources.insert(i);
                    let source = source.get_or_insert_with(|| crate::io::read_regular(&p.path).ok());
                    // With the warnings raised before it failed, remembered with the failure.
                    show_failure(s, verbosity, (&p.path, t, true), f, source.as_deref(), summary, notes);
                }
                Action::Rewrite { .. } => {}
                Action::Refused { error } => unit_error(&p.path, t, error.to_string(), summary, notes, style),
            }
        }
        if !failed.is_empty() || !refused.is_empty() {
            let mut actions = p.actions.to_vec();
            for t in failed {
                actions[t] = Action::Fresh;
            }
            for (t, error) in refused {
                actions[t] = Action::Refused { error: error.into() };
            }
            p.actions = actions.into_boxed_slice();
        }
    }
}

/// A source the plan could not read: gone since the walk found it (a notice, as when it
/// vanishes before its compile), else an error. The real run and the dry run both say it.
fn plan_error(path: &Path, err: &plan::PlanError, summary: &mut Summary, notes: &mut Notes, style: Style) {
    if err.is_vanished() {
        vanished(path, summary, notes);
    } else {
        let err = &err.reason;
        summary.errors += 1;
        notes.add(
            path,
            0,
            None,
            format!("{}: {}: {err}", style.error(), report::ticked(path)),
            Some(Event::error(err.to_string())),
        );
    }
}

/// A (source, target) unit that could not be done (its pyc not written): an error. The
/// real run and the dry run both say it.
fn unit_error(path: &Path, t: usize, e: String, summary: &mut Summary, notes: &mut Notes, style: Style) {
    summary.errors += 1;
    let text = format!("{}: {}: {e}", style.error(), report::ticked(path));
    notes.add(path, 0, Some(t), text, Some(Event::error(e)));
}

/// A source gone since the walk found it: a notice, counted as vanished.
fn vanished(path: &Path, summary: &mut Summary, notes: &mut Notes) {
    // Once per source: each target finds it gone.
    if summary.vanished.insert(path.to_path_buf()) {
        vanished_note(path, notes);
    }
}

/// A file or directory gone since the walk found it.
fn vanished_note(path: &Path, notes: &mut Notes) {
    notes.notice(
        path,
        0,
        None,
        format!("note: {} vanished during the run; skipped", report::ticked(path)),
        Event::notice("vanished during the run; skipped"),
    );
}

/// Under `-W error`, the warnings that fail `p` for target `t` compiled (or fresh) at
/// `levels`: those remembered of its source bytes at those of `levels` where they are known
/// (None: it raised none there, or its warnings are not remembered). The source is read
/// (into `source`, once for all targets) only when some warnings of it are remembered.
fn remembered_warnings(
    s: &CompileSettings,
    memos: &[Option<Memo>],
    cwd: &Path,
    (p, t, levels): (&SourcePlan, usize, &[u8]),
    source: &mut Option<Option<Vec<u8>>>,
) -> Option<Vec<crate::pool::Warning>> {
    let abs = crate::memo::key(&p.path, cwd);
    let memo = memos[t].as_ref().filter(|m| m.knows_warned(&abs))?;
    let src = source.get_or_insert_with(|| crate::io::read_regular(&p.path).ok()).as_deref()?;
    let target = &s.targets[t];
    let mut warnings = memo.some_warnings(&abs, &pyc::source_hash(target.hash, target.magic, src), levels);
    warnings.retain(crate::pool::Warning::in_source);
    (!warnings.is_empty()).then_some(warnings)
}

/// Failures from the source reported from the state directory's memory reach the bytecode
/// cache too (where it lacks them), still without starting Python: a cache added after the compile that
/// failed, or emptied since, would else never learn them, and every machine sharing it
/// would compile those files again. A source changed since it was planned is left out.
fn store_remembered_failures(s: &CompileSettings, plans: &[SourcePlan], cache: &crate::cache::Cache) {
    for p in plans.iter().filter(|p| p.error.is_none()) {
        let mut source = None;
        for (t, action) in p.actions.iter().enumerate() {
            let Action::KnownFailure { failure, prefix, hash, .. } = action else { continue };
            // A fixed nesting limit (the parser's, 3.12's compiler's) is remembered per
            // interpreter build, never cached (`CompileFailure::same_every_time`).
            if !failure.from_source() {
                continue;
            }
            let read = || {
                let mut buf = Vec::new();
                crate::io::read_source_into(&p.path, &mut buf).ok().map(|()| buf)
            };
            let Some(bytes) = source.get_or_insert_with(read) else { break };
            let target = &s.targets[t];
            if pyc::source_hash(target.hash, target.magic, bytes) != *hash {
                continue;
            }
            let filename = crate::marshal::filename_bytes(p.embedded().as_os_str().as_encoded_bytes());
            let levels = &s.levels[..usize::from(*prefix)];
            cache.store_remembered_failure(t, levels, bytes, &filename, failure.as_ref().clone());
        }
    }
}

/// Header rewrites and hard links: Rust only, in parallel. A unit whose source or pyc
/// changed since the plan becomes a compile of every level (`Reason::Stale`), left to the
/// compile stage: it compiles the bytes it reads, as a normal compile does.
fn rewrite_stage(
    s: &CompileSettings,
    plans: &mut [SourcePlan],
    paths: &PycPaths<'_>,
    summary: &mut Summary,
    notes: &mut Notes,
    style: Style,
    verbosity: Verbosity,
) {
    let units: Vec<(usize, usize)> = plans
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.actions
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Action::Rewrite { .. }))
                .map(move |(t, _)| (i, t))
        })
        .collect();
    let rewrite = |&(i, t): &(usize, usize)| {
        let mut done = Rewritten::default();
        let r = rewrite_unit(&plans[i], t, paths, (s.mode, s.hardlink_dupes), &mut done);
        (i, t, r.map(|()| done.linked.clone()).map_err(|e| (e, done)))
    };
    type Done = Result<Vec<u8>, (RewriteFailure, Rewritten)>;
    let results: Vec<(usize, usize, Done)> = if crate::rayon_ready() {
        units.par_iter().map(rewrite).collect()
    } else {
        units.iter().map(rewrite).collect()
    };
    for (i, t, r) in results {
        if matches!(r, Err((RewriteFailure::Changed, _))) {
            plans[i].actions[t] = Action::compile_all(Reason::Stale, s.levels.len());
            continue;
        }
        let path = &plans[i].path;
        match (r, &plans[i].actions[t]) {
            (Ok(linked), Action::Rewrite { headers, .. }) => {
                if headers.is_empty() {
                    summary.linked += 1;
                } else {
                    summary.rewritten += 1;
                }
                let touched = crate::plan::rewritten_levels(headers, &linked).len();
                // Each pyc counts once: a rewritten level linked again is a rewrite.
                let linked = linked.iter().filter(|l| !headers.contains(l)).count();
                summary.rewritten_pycs += headers.len();
                summary.linked_pycs += linked;
                summary.fresh_pycs += s.levels.len() - touched;
                if verbosity.verbose > 0 {
                    let mut done = Vec::new(); // (order, text): rewrites before links
                    if !headers.is_empty() {
                        let (from, to) = match s.mode {
                            HashMode::Checked => ("unchecked", "checked"),
                            HashMode::Unchecked => ("checked", "unchecked"),
                        };
                        let what = report::plural(headers.len(), "header", "headers");
                        done.push((2, format!("rewrote {what}"), format!("({from} → {to})")));
                    }
                    if linked > 0 {
                        let what = report::plural(linked, "pyc", "pycs");
                        done.push((3, format!("linked {what}"), "(identical levels)".to_string()));
                    }
                    // In JSON the path is the object's own: "rewrote 1 header (…)".
                    for (order, what, why) in done {
                        let text = format!("{what} of {} {why}", report::ticked(path));
                        notes.add(path, order, Some(t), text, Some(Event::notice(format!("{what} {why}"))));
                    }
                }
            }
            (Ok(_), _) => summary.rewritten += 1,
            (Err((RewriteFailure::Vanished, _)), _) => vanished(path, summary, notes),
            // Compiled instead (above).
            (Err((RewriteFailure::Changed, _)), _) => {}
            // Each pyc counts once, as the run left it: the headers rewritten and the links
            // made before the failure count, and so do the levels it did not get to whose
            // pycs were fresh (a link not made leaves a fresh pyc); the level it failed at,
            // and the headers it did not rewrite, are the file's error.
            (Err((RewriteFailure::Error(e), done)), Action::Rewrite { headers, .. }) => {
                let linked = done.linked.iter().filter(|l| !headers.contains(l)).count();
                summary.rewritten_pycs += done.headers;
                summary.linked_pycs += linked;
                summary.fresh_pycs += (0..s.levels.len() as u8)
                    .filter(|l| !headers.contains(l) && !done.linked.contains(l) && done.at != Some(*l))
                    .count();
                unit_error(path, t, e, summary, notes, style);
            }
            (Err((RewriteFailure::Error(e), _)), _) => unit_error(path, t, e, summary, notes, style),
            // Said once for the run (`no_room_error`), as the headers not rewritten.
            (Err((RewriteFailure::NoRoom, done)), Action::Rewrite { headers, .. }) => {
                let linked = done.linked.iter().filter(|l| !headers.contains(l)).count();
                summary.rewritten_pycs += done.headers;
                summary.linked_pycs += linked;
                summary.not_written += headers.len().saturating_sub(done.headers);
                summary.fresh_pycs += (0..s.levels.len() as u8)
                    .filter(|l| !headers.contains(l) && !done.linked.contains(l))
                    .count();
            }
            (Err((RewriteFailure::NoRoom, _)), _) => summary.not_written += 1,
        }
    }
}

/// Descriptors a run holds besides its worker slots and cache lookup and upload threads: 6 at
/// most as `strace` counts them (cold and warm builds of 553 stdlib files, `-j1` and `-j2`,
/// without a cache, with a local one, with a remote tier): the 3 standard streams, and the
/// local cache's directory, the fan-out directory and the entry (or stats file) its store
/// thread writes; 16 with a margin. Per cache lookup thread
/// ([`LOOKUP_FDS`]) and upload thread (one connection each). Per slot at most (as `strace`
/// counts them on a tree of small files, where a worker starts while a group is held): the
/// directories of the sources read
/// and not yet written (`Slot::read_from`: a group of up to `GROUP_FILES`, 8, the next unit
/// read ahead included, as it is read only while the group has fewer), and then either the
/// 6 a worker holds only while it starts (the child's ends of its stdin, stdout and stderr
/// pipes and of the control pipe, and the standard library's exec-status socket pair) or
/// the one source or pyc open: the slot does one at a time. Each of its workers holds four
/// (stdin, stdout, stderr, control).
const BASE_FDS: u64 = 16;
const SLOT_FDS: u64 = schedule::GROUP_FILES as u64 + 6;
const WORKER_FDS: u64 = 4;
/// A cache lookup thread holds the source's directory, then the source or a cache entry,
/// and with a remote tier the connection it keeps open between lookups.
const LOOKUP_FDS: u64 = 3;

/// What a run with `cache` holds for it besides [`BASE_FDS`]: its upload threads'
/// connections, and one lookup thread (there is always one).
fn cache_fds(cache: Option<&crate::cache::Cache>) -> u64 {
    cache.map_or(0, |c| LOOKUP_FDS + c.upload_threads() as u64)
}

/// The workers of one slot: one per target, two with `HASHPYC_VERIFY`.
fn slot_workers(s: &CompileSettings) -> usize {
    s.targets.len() * (1 + usize::from(s.verify))
}

/// The descriptors a slot of `workers` workers holds at most.
fn slot_fds(workers: usize) -> u64 {
    SLOT_FDS + WORKER_FDS * workers as u64
}

/// `jobs` slots (as many as the units to compile at most) of `workers` workers each, if
/// the open-file limit has room for them besides `reserved` (the cache's, [`cache_fds`]);
/// else the limit and how many slots it has room for.
fn descriptor_jobs(jobs: usize, workers: usize, reserved: u64) -> Result<usize, (u64, usize)> {
    let Some(limit) = crate::io::open_file_limit() else { return Ok(jobs) };
    let per_slot = slot_fds(workers);
    let most = usize::try_from(limit.saturating_sub(BASE_FDS + reserved) / per_slot).unwrap_or(usize::MAX);
    if jobs <= most { Ok(jobs) } else { Err((limit, most)) }
}

/// Cache lookup threads: `wanted`, or as many as the open-file limit has room for beside
/// `jobs` slots of `workers` workers and the cache's upload threads, at least one.
fn lookup_threads(wanted: usize, (jobs, workers): (usize, usize), cache: &crate::cache::Cache) -> usize {
    let Some(limit) = crate::io::open_file_limit() else { return wanted };
    let slots = jobs as u64 * slot_fds(workers);
    let room = limit.saturating_sub(BASE_FDS + slots + cache.upload_threads() as u64) / LOOKUP_FDS;
    usize::try_from(room).unwrap_or(usize::MAX).clamp(1, wanted.max(1))
}

/// Everything the plan wants compiled: from the cache when there is one (hits written by
/// the cache stage), the rest by the pool, both at once; the pool writes each result as
/// it arrives and stores it in the cache.
#[allow(clippy::too_many_arguments)]
fn compile_stage(
    s: &CompileSettings,
    (jobs, no_room): (usize, Option<u64>),
    plans: &[SourcePlan],
    paths: &PycPaths<'_>,
    specs: &[WorkerSpec],
    // Per target, the worker that confirmed its probe (`confirm_targets`), for the pool.
    started: Vec<Option<crate::pool::Worker>>,
    cache: Option<&crate::cache::Cache>,
    reporter: &dyn Reporter,
) -> (schedule::Results, Option<schedule::Fatal>) {
    let units: Vec<(usize, Vec<usize>)> = plans
        .iter()
        .enumerate()
        // A source the plan could not read has no actions (triage reported it).
        .map(|(i, p)| {
            (
                i,
                p.actions
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.is_compile())
                    .map(|(t, _)| t)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let expected = units.len();
    let weight =
        |(src, t): &(usize, Vec<usize>)| t.len() as u64 * crate::report::unit_weight(plans[*src].size);
    reporter.start(
        units.iter().map(|(_, t)| t.len() as u64).sum(),
        units.iter().map(weight).sum(),
        "Compiling",
    );
    let queue = schedule::Queue::new();
    let schedule = Schedule {
        plans,
        specs,
        paths,
        mode: s.mode,
        hardlink_dupes: s.hardlink_dupes,
        jobs,
        verify: s.verify,
        cache,
        warnings_as_errors: s.warnings_as_errors,
        started: started.into_iter().map(std::sync::Mutex::new).collect(),
        no_room,
    };
    let (mut results, fatal) = match cache {
        // `--force` compiles for real and replaces the cache's entries with what it
        // compiled; an empty cache has nothing to look up.
        Some(cache) if !s.force && !cache.is_empty() => std::thread::scope(|scope| {
            let lookups =
                std::thread::Builder::new().name("hashpyc-lookups".into()).spawn_scoped(scope, || {
                    let l = crate::cache::stage::Lookups {
                        plans,
                        paths,
                        mode: s.mode,
                        hardlink_dupes: s.hardlink_dupes,
                        cache,
                        threads: lookup_threads(
                            if cache.has_remote() {
                                crate::cache::remote::LOOKUPS
                            } else {
                                s.jobs.min(crate::settings::default_jobs()).max(2)
                            },
                            (jobs, slot_workers(s)),
                            cache,
                        ),
                        warnings_as_errors: s.warnings_as_errors,
                    };
                    let hits = crate::cache::stage::run(&l, units, &queue, reporter);
                    queue.close();
                    hits
                });
            let lookups = match lookups {
                Ok(l) => l,
                Err(e) => {
                    let failure = crate::pool::WorkerFailure::Thread(crate::io::start_reason(&e));
                    return (Vec::new(), Some(schedule::Fatal { target: 0, failure }));
                }
            };
            let (results, fatal) = schedule::run(&schedule, &queue, expected, reporter);
            if crate::interrupt::requested() {
                // Lookups waiting on a remote that does not answer do not hold the run.
                crate::interrupt::abandon_unless(|| lookups.is_finished());
            }
            let hits = lookups.join().expect("cache lookups");
            // Their pycs, which no tier was asked for: each tier's `late`.
            let late = queue
                .unlooked_sources()
                .into_iter()
                .flat_map(|i| &plans[i].actions)
                .map(|a| match a {
                    Action::Compile { prefix, .. } => u64::from(*prefix),
                    _ => 0,
                })
                .sum();
            cache.note_unlooked(queue.taken_from_backlog(), late);
            (results.into_iter().chain(hits).collect::<Vec<_>>(), fatal)
        }),
        _ => {
            for (i, targets) in units {
                queue.push(i, targets, plans[i].size);
            }
            queue.close();
            let (results, fatal) = schedule::run(&schedule, &queue, expected, reporter);
            if let Some(cache) = cache
                && !s.force
            {
                // An empty cache: every pyc compiled is a miss, as if looked up; not those
                // an interrupt or a fatal error left uncompiled.
                let compiled = results.iter().filter(|(_, _, r)| {
                    matches!(
                        r,
                        UnitResult::Compiled { .. }
                            | UnitResult::WarningsAsErrors { .. }
                            | UnitResult::Failed(..)
                            | UnitResult::PartlyWritten { .. }
                            | UnitResult::NoRoom { .. }
                    )
                });
                cache.note_misses(
                    compiled
                        .map(|(i, t, _)| match &plans[*i].actions[*t] {
                            Action::Compile { prefix, .. } => u64::from(*prefix),
                            _ => 0,
                        })
                        .sum(),
                );
            }
            (results, fatal)
        }
    };
    reporter.finish();
    results.sort_by_key(|(i, t, _)| (*i, *t));
    (results, fatal)
}

#[allow(clippy::too_many_arguments)]
fn record_results(
    s: &CompileSettings,
    plans: &[SourcePlan],
    results: schedule::Results,
    memos: &mut [Option<Memo>],
    cwd: &Path,
    summary: &mut Summary,
    notes: &mut Notes,
    style: Style,
    verbosity: Verbosity,
) {
    let mut last_compiled = None;
    for (i, t, r) in results {
        let plan = &plans[i];
        let path = &plan.path;
        match r {
            UnitResult::Compiled { ref warnings } | UnitResult::Cached { ref warnings } => {
                let cached = matches!(r, UnitResult::Cached { .. });
                // Compiled only to learn its warnings (-W error), none raised: fresh.
                let learned =
                    matches!(&plan.actions[t], Action::Compile { reason: Reason::UnknownWarnings, .. });
                if learned {
                    summary.fresh += 1;
                    summary.fresh_pycs += s.levels.len();
                } else {
                    summary.compiled_for(t);
                    summary.from_cache += usize::from(cached);
                    // Results come sorted by source: each source counts once.
                    if last_compiled.replace(i) != Some(i) {
                        summary.compiled_sources += 1;
                    }
                    if let Action::Compile { write, .. } = &plan.actions[t] {
                        summary.compiled_pycs += write.len();
                        if cached {
                            summary.from_cache_pycs += write.len();
                        }
                    }
                }
                if let Some(memo) = &mut memos[t] {
                    memo.record_success(&crate::memo::key(path, cwd));
                }
                remember_warnings(s, t, &plan.actions[t], path, warnings, &mut memos[t], cwd);
                if verbosity.verbose > 0
                    && let Action::Compile { reason, .. } = &plan.actions[t]
                {
                    let how = match (learned, cached) {
                        (true, _) => "no warnings in",
                        (false, true) => "written from the cache",
                        (false, false) => "compiled",
                    };
                    // In JSON the path is the object's own: "compiled (no pyc)".
                    let event = Event::notice(format!("{} ({reason})", how.trim_end_matches(" in")));
                    let text = format!("{how} {} ({reason})", report::ticked(path));
                    notes.add(path, 2, Some(t), text, Some(event));
                }
                show_warnings(s, verbosity, (path, t, false), warnings, None, summary, notes);
            }
            UnitResult::WarningsAsErrors { ref warnings } => {
                // Not remembered as a failure: without -W error the file compiles. A
                // remembered failure of other source bytes is obsolete all the same.
                summary.failed_for(t);
                summary.failed_sources.insert(i);
                if let Some(memo) = &mut memos[t] {
                    memo.record_success(&crate::memo::key(path, cwd));
                }
                remember_warnings(s, t, &plan.actions[t], path, warnings, &mut memos[t], cwd);
                let source = crate::io::read_regular(path).ok();
                // A warning at no line of the source fails nothing (`Warning::in_source`):
                // shown as a warning beside the ones that fail the file.
                let (errors, others): (Vec<_>, Vec<_>) =
                    warnings.iter().cloned().partition(crate::pool::Warning::in_source);
                warnings_as_errors(
                    path,
                    t,
                    &distinct_warnings(errors.iter()),
                    source.as_deref(),
                    false,
                    notes,
                );
                show_warnings(s, verbosity, (path, t, false), &others, source.as_deref(), summary, notes);
            }
            UnitResult::Failed(f, hash) => {
                summary.failed_for(t);
                summary.failed_sources.insert(i);
                if let (Some(memo), Action::Compile { prefix, .. }) = (&mut memos[t], &plan.actions[t]) {
                    let levels = &s.levels[..usize::from(*prefix)];
                    memo.record_failure(crate::memo::key(path, cwd), &hash, levels, &f);
                }
                let source = crate::io::read_regular(path).ok();
                show_failure(s, verbosity, (path, t, false), &f, source.as_deref(), summary, notes);
            }
            UnitResult::Error(e) => unit_error(path, t, e, summary, notes, style),
            // The pycs written before the level that failed are on disk: counted as
            // written, the source once; the unit is the error.
            UnitResult::PartlyWritten { written, cached, error } => {
                summary.compiled_pycs += written;
                if cached {
                    summary.from_cache_pycs += written;
                }
                if last_compiled.replace(i) != Some(i) {
                    summary.compiled_sources += 1;
                }
                unit_error(path, t, error, summary, notes, style);
            }
            UnitResult::NoRoom { written, cached } => {
                summary.compiled_pycs += written;
                if cached {
                    summary.from_cache_pycs += written;
                }
                if written > 0 && last_compiled.replace(i) != Some(i) {
                    summary.compiled_sources += 1;
                }
                if let Action::Compile { write, .. } = &plan.actions[t] {
                    summary.not_written += write.len().saturating_sub(written);
                }
            }
            UnitResult::Vanished => vanished(path, summary, notes),
        }
    }
}

/// Once a write found no room left on the disk, the run started no more (see
/// [`crate::write::no_room`]): the pycs of the units the compile stage did not get to,
/// which are not written either (none when no write found the disk full).
fn unstarted_pycs(plans: &[SourcePlan], results: &schedule::Results) -> usize {
    if crate::write::no_room().is_none() {
        return 0;
    }
    let done: std::collections::HashSet<(usize, usize)> = results.iter().map(|(i, t, _)| (*i, *t)).collect();
    let mut unstarted = 0;
    for (i, plan) in plans.iter().enumerate() {
        for (t, action) in plan.actions.iter().enumerate() {
            if let Action::Compile { write, .. } = action
                && !done.contains(&(i, t))
            {
                unstarted += write.len();
            }
        }
    }
    unstarted
}

/// The one error of a run whose writes found no room left on the disk: the pyc whose write
/// found none, and how many more were not written ([`Summary::not_written`]).
fn no_room_error(summary: &mut Summary, notes: &mut Notes, style: Style) {
    let Some(no_room) = crate::write::no_room() else { return };
    summary.errors += 1;
    let more = summary.not_written.saturating_sub(1);
    let rest = match more {
        0 => String::new(),
        1 => ": 1 more pyc was not written".to_string(),
        n => format!(": {n} more pycs were not written"),
    };
    let text =
        format!("{}: {} writing {}{rest}", style.error(), no_room.reason(), report::ticked(&no_room.path));
    // In JSON the path is the object's own.
    let message = format!("{}{rest}", no_room.reason());
    notes.add(&no_room.path, 0, None, text, Some(Event::error(message)));
}

/// A source that does not compile (`remembered`: from the failure memo), with the warnings
/// its compile raised before it failed. Under `-W error` the first of those is the error
/// `python -W error` stops at, so the file fails as one that only warns does: its warnings
/// in the source are its failures, and the failure after them, which CPython never reaches
/// there, is not reported.
fn show_failure(
    s: &CompileSettings,
    verbosity: Verbosity,
    (path, t, remembered): (&Path, usize, bool),
    f: &crate::pool::CompileFailure,
    source: Option<&[u8]>,
    summary: &mut Summary,
    notes: &mut Notes,
) {
    let failing = failing_warnings(s, f);
    if failing.is_empty() {
        show_warnings(s, verbosity, (path, t, true), &f.warnings, source, summary, notes);
        let text = report::format_failure(path, f, source);
        notes.add(path, 0, Some(t), text, Some(Event::failure(f, remembered)));
    } else {
        // A warning at no line of the source fails nothing: a warning still.
        let other: Vec<_> = f.warnings.iter().filter(|w| !w.in_source()).cloned().collect();
        show_warnings(s, verbosity, (path, t, true), &other, source, summary, notes);
        warnings_as_errors(path, t, &failing, source, remembered, notes);
    }
}

/// The dry run's reason and event for a file remembered to fail by its `warnings` under
/// `-W error` (the first named, and how many more).
fn failing_plan(warnings: &[&crate::pool::Warning]) -> (String, Event) {
    let w = warnings[0];
    let more = match warnings.len() - 1 {
        0 => String::new(),
        n => format!(", and {n} more"),
    };
    let why = format!("{} at line {}: {}{more}", w.category, w.line, w.message);
    (format!("{why}; remembered, an error under -W error"), Event::warning(w, true, true))
}

/// Under `-W error`, the warnings that fail a source whose compile raised them and then
/// failed: those in the source, each once (empty without `-W error`).
fn failing_warnings<'a>(
    s: &CompileSettings,
    f: &'a crate::pool::CompileFailure,
) -> Vec<&'a crate::pool::Warning> {
    if !s.warnings_as_errors {
        return Vec::new();
    }
    distinct_warnings(f.warnings.iter().filter(|w| w.in_source()))
}

/// Warnings that fail a source under `-W error`, as failures (`remembered`: from memory).
fn warnings_as_errors(
    path: &Path,
    t: usize,
    warnings: &[&crate::pool::Warning],
    source: Option<&[u8]>,
    remembered: bool,
    notes: &mut Notes,
) {
    let why = if remembered {
        " (remembered; an error under -W error)"
    } else {
        " (an error under -W error: no pyc written)"
    };
    for w in warnings {
        let mut text = report::format_warning(path, w, source);
        let at = text.find('\n').unwrap_or(text.len());
        text.insert_str(at, why);
        notes.add(path, 0, Some(t), text, Some(Event::warning(w, true, remembered)));
    }
}

/// The warnings of a compile, each once, shown as warnings: every one in JSON (with its
/// category), in text all but deprecations unless -v, as Python's default filters do; none
/// under -qq. Also those raised before a compile failed (`failed`; `source`: the source, if
/// read), shown before the failure, as CPython shows them, in the run that compiled it and
/// when the failure is remembered alike.
fn show_warnings(
    s: &CompileSettings,
    verbosity: Verbosity,
    (path, t, failed): (&Path, usize, bool),
    warnings: &[crate::pool::Warning],
    source: Option<&[u8]>,
    summary: &mut Summary,
    notes: &mut Notes,
) {
    let shown = distinct_warnings(
        warnings.iter().filter(|w| s.json || verbosity.verbose > 0 || report::warning_shown_by_default(w)),
    );
    summary.warnings += shown.len();
    if !shown.is_empty() && (verbosity.quiet < 2 || s.json) {
        let read = source.is_none().then(|| crate::io::read_regular(path).ok()).flatten();
        for w in shown {
            let text = report::format_warning(path, w, source.or(read.as_deref()));
            let event = Some(Event::warning(w, false, false));
            if failed {
                // With the failure (order 0), before it.
                notes.add(path, 0, Some(t), text, event);
                notes.notes.last_mut().expect("just added").first = true;
            } else {
                notes.add(path, 1, Some(t), text, event);
            }
        }
    }
}

/// Remember (or forget) the warnings a source compiled with at the levels compiled, for
/// later `-W error` runs over its fresh pycs.
fn remember_warnings(
    s: &CompileSettings,
    t: usize,
    action: &Action,
    path: &Path,
    warnings: &[crate::pool::Warning],
    memo: &mut Option<Memo>,
    cwd: &Path,
) {
    let (Some(memo), Action::Compile { prefix, .. }) = (memo, action) else { return };
    let levels = &s.levels[..usize::from(*prefix)];
    let abs = crate::memo::key(path, cwd);
    // A -W error run remembers that it raised none, for its fresh pycs next time; other
    // runs read the source only when there are warnings to remember or forget.
    let warned = !warnings.is_empty() || memo.knows_warned(&abs);
    let clean = warnings.is_empty() && memo.tracks_clean();
    if !warned && !clean {
        return;
    }
    // The source as compiled; if it changed since, the hash will not match next time.
    let Ok(source) = crate::io::read_regular(path) else { return };
    let target = &s.targets[t];
    let hash = pyc::source_hash(target.hash, target.magic, &source);
    if warned {
        memo.record_warnings(abs.clone(), &hash, levels, warnings);
    }
    if clean {
        memo.record_clean(abs, &hash, levels);
    }
}

/// Each level's compile raises the same warnings: each once.
fn distinct_warnings<'a>(
    warnings: impl Iterator<Item = &'a crate::pool::Warning>,
) -> Vec<&'a crate::pool::Warning> {
    let mut shown: Vec<&crate::pool::Warning> = Vec::new();
    for w in warnings {
        if !shown.iter().any(|s| s.same_as(w)) {
            shown.push(w);
        }
    }
    shown
}

/// `Compiled 1180 files for CPython 3.12.1 (10421 already fresh, 17 failed) in 2.31s`; with
/// several targets or levels, `Compiled 3 files, 6 pycs for CPython 3.12.1 and 3.13.0 (…)`
/// as `check` counts. The counts in parentheses are pycs, but `failed`: files.
pub fn summary_line(s: &Summary, targets: &[Arc<Target>], elapsed: Duration, style: Style) -> String {
    let mut parts = Vec::new();
    if s.from_cache_pycs > 0 {
        parts.push(format!("{} from the cache", s.from_cache_pycs));
    }
    parts.push(format!("{} already fresh", s.fresh_pycs));
    if s.rewritten_pycs > 0 {
        parts.push(report::plural(s.rewritten_pycs, "header rewritten", "headers rewritten"));
    }
    if s.linked_pycs > 0 {
        parts.push(format!("{} linked", s.linked_pycs));
    }
    let differing = s.differing_targets(targets.len());
    if !s.failed_sources.is_empty() {
        parts.push(format!(
            "{} failed{}",
            s.failed_sources.len(),
            failed_by_target(differing.as_deref(), targets)
        ));
    }
    push_errors_and_skipped(&mut parts, s);
    format!(
        "{} {} ({}) in {}",
        style.bold("Compiled"),
        compiled_for_targets(s, differing.as_deref(), targets),
        parts.join(", "),
        report::format_duration(elapsed)
    )
}

/// `3 files for CPython 3.12.1 and 3.13.0`, or `compiled_by_target`'s words.
fn compiled_for_targets(s: &Summary, differing: Option<&[TargetCounts]>, targets: &[Arc<Target>]) -> String {
    compiled_by_target(s, differing, targets).unwrap_or_else(|| {
        format!(
            "{} for {}",
            files_and_pycs(s.compiled_sources, s.compiled_pycs),
            crate::target::targets_label(targets)
        )
    })
}

/// When the targets' counts of files compiled differ, each target's: `0 files for CPython
/// 3.11.7 and 1 for 3.12.1` (files: sources compiled for that target), then the pycs
/// written when they are not one per file (`, 6 pycs`). A file compiled for one target of
/// two is not read as compiled for both.
fn compiled_by_target(
    s: &Summary,
    differing: Option<&[TargetCounts]>,
    targets: &[Arc<Target>],
) -> Option<String> {
    let counts = differing.filter(|c| c.iter().any(|t| t.compiled != c[0].compiled))?;
    let files: Vec<usize> = counts.iter().map(|c| c.compiled).collect();
    let mut what = per_target(&files, targets, ("file", "files"));
    if s.compiled_pycs != files.iter().sum::<usize>() {
        what.push_str(&format!(", {}", report::plural(s.compiled_pycs, "pyc", "pycs")));
    }
    Some(what)
}

/// `: 2 for 3.11.7 and 1 for 3.12.1` after the count of files failed, when the targets'
/// counts of failures differ; else nothing (each failed for every target).
fn failed_by_target(differing: Option<&[TargetCounts]>, targets: &[Arc<Target>]) -> String {
    match differing.filter(|c| c.iter().any(|t| t.failed != c[0].failed)) {
        Some(counts) => {
            let failed: Vec<usize> = counts.iter().map(|c| c.failed).collect();
            format!(": {}", per_target(&failed, targets, ("", "")).replacen("CPython ", "", 1))
        }
        None => String::new(),
    }
}

/// `0 files for CPython 3.11.7 and 1 for 3.12.1`: the first count with its noun (`one`,
/// `many`; none when empty) and `CPython`, the others bare, joined as targets are.
fn per_target(counts: &[usize], targets: &[Arc<Target>], (one, many): (&str, &str)) -> String {
    let items: Vec<String> = counts
        .iter()
        .zip(targets)
        .enumerate()
        .map(|(i, (n, t))| match i {
            0 if !one.is_empty() => {
                format!("{} for CPython {}", report::plural(*n, one, many), t.short_version())
            }
            0 => format!("{n} for CPython {}", t.short_version()),
            _ => format!("{n} for {}", t.short_version()),
        })
        .collect();
    match items.as_slice() {
        [rest @ .., last] if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.join(""),
    }
}

/// `3 files`, or `3 files, 6 pycs` when they differ (several targets or levels), as `check`
/// says it.
fn files_and_pycs(files: usize, pycs: usize) -> String {
    if pycs == files {
        report::plural(files, "file", "files")
    } else {
        format!("{}, {}", report::plural(files, "file", "files"), report::plural(pycs, "pyc", "pycs"))
    }
}

/// Why a header rewrite stopped: its source gone since the walk (a notice), the source or
/// a pyc changed since the plan (the unit is compiled instead), or an error.
enum RewriteFailure {
    Vanished,
    Changed,
    /// No room left on the disk ([`crate::write::no_room`]).
    NoRoom,
    Error(String),
}

impl From<String> for RewriteFailure {
    fn from(e: String) -> Self {
        RewriteFailure::Error(e)
    }
}

/// Rewrite the flags of the levels whose pyc has the other hash mode, then link identical
/// levels (`--hardlink-dupes`: the plan's `links`, and rewritten levels), remaking links a
/// rewrite broke; `done` says what was done (all of it, or up to the failure). As a
/// compile's pycs are (`write::Base`), the
/// pycs are read and written through a handle on the source's directory, and a header is
/// rewritten only when the source read through it now hashes as that pyc says: a pyc
/// lands where its source is, whatever a directory link on the way is switched to meanwhile.
/// A source edited since the plan, or a pyc replaced or removed meanwhile, is
/// `RewriteFailure::Changed`: the caller compiles the unit, as a run that planned it then
/// would have, from the bytes its compile reads.
fn rewrite_unit(
    plan: &SourcePlan,
    t: usize,
    paths: &PycPaths<'_>,
    (mode, hardlink_dupes): (HashMode, bool),
    done: &mut Rewritten,
) -> Result<(), RewriteFailure> {
    let Action::Rewrite { headers, links } = &plan.actions[t] else {
        return Ok(());
    };
    let target = &paths.targets[t];
    let pycs = paths.of(&plan.path, t);
    let gone_or = |e: std::io::Error| {
        if crate::io::is_gone(e.kind()) {
            RewriteFailure::Vanished
        } else {
            RewriteFailure::Error(format!("cannot read the source: {}", crate::io::io_reason(&e)))
        }
    };
    let dir = crate::io::open_dir_of(&plan.path).map_err(gone_or)?;
    let base = Some(crate::write::Base::new(
        std::os::fd::AsFd::as_fd(&dir),
        plan.path.parent().unwrap_or(Path::new("")),
    ));
    let read = |path: &Path| crate::write::read_regular_in(base, path);
    let mut source_hash = None;
    for &i in headers {
        done.at = Some(i);
        let path = &pycs[usize::from(i)];
        let data = match read(path) {
            Ok(data) => data,
            Err(e) if crate::io::is_gone(e.kind()) => return Err(RewriteFailure::Changed),
            Err(e) => {
                let reason = crate::io::io_reason(&e);
                return Err(format!("cannot read {}: {reason}", report::ticked(path)).into());
            }
        };
        let header = Header::parse(&data).filter(|h| h.magic == target.magic);
        let Some((header, Ok(pyc::Kind::Hash { hash, .. }))) = header.map(|h| (h, h.kind())) else {
            return Err(RewriteFailure::Changed);
        };
        let source = match source_hash {
            Some(h) => h,
            None => {
                let mut buf =
                    Vec::with_capacity(usize::try_from(plan.size).unwrap_or(0).saturating_add(4096));
                crate::io::read_source_at(std::os::fd::AsFd::as_fd(&dir), &plan.path, &mut buf)
                    .map_err(gone_or)?;
                *source_hash.insert(pyc::source_hash(target.hash, target.magic, &buf))
            }
        };
        if hash != source {
            return Err(RewriteFailure::Changed);
        }
        let new = Header { flags: mode.flags(), ..header }.to_bytes();
        crate::write::write_atomic_in(
            base,
            path,
            &[&new, &data[pyc::HEADER_LEN..]],
            crate::write::pyc_mode(plan.mode),
            // The plan refused a symlink or a non-regular file here (Action::Refused).
            crate::write::Known { checked: true, ..Default::default() },
        )
        .map_err(|e| rewrite_failure(&e))?;
        done.headers += 1;
    }
    if hardlink_dupes {
        for i in 1..pycs.len() {
            let touched = links.contains(&(i as u8))
                || headers.contains(&(i as u8))
                || headers.contains(&(i as u8 - 1));
            if !touched || crate::write::same_file_in(base, &pycs[i - 1], &pycs[i]) {
                continue;
            }
            let same = matches!((read(&pycs[i - 1]), read(&pycs[i])), (Ok(a), Ok(b)) if a == b);
            if same {
                done.at = Some(i as u8);
                crate::write::hardlink_atomic_in(base, &pycs[i - 1], &pycs[i])
                    .map_err(|e| rewrite_failure(&e))?;
                done.linked.push(i as u8);
            }
        }
    }
    done.at = None;
    Ok(())
}

/// A rewrite's write failed with `e`: for want of room, or an error in words.
fn rewrite_failure(e: &crate::write::WriteError) -> RewriteFailure {
    if e.no_room() { RewriteFailure::NoRoom } else { RewriteFailure::Error(schedule::error_chain(e)) }
}

/// What [`rewrite_unit`] did: the headers rewritten (the first of the plan's), the levels
/// linked, and the level it was at when it stopped (None once done, or before any).
#[derive(Default)]
struct Rewritten {
    headers: usize,
    linked: Vec<u8>,
    at: Option<u8>,
}

/// One line of the dry run's listing: `verb     path  (reason)` in text, a `plan` object in
/// JSON (`fails` carries the failure's fields, as the real run's `failure` object has them).
struct PlanLine {
    path: Box<Path>,
    /// The target it concerns (None: not target-specific, as a skipped symlink).
    target: Option<usize>,
    verb: &'static str,
    reason: Option<String>,
    failure: Option<Event>,
}

/// `--dry-run`: the listing on stdout (with `--format json`, `plan` objects, with the
/// summary object the caller prints after them); its count on stderr is
/// `dry_run_summary_line`, printed by the caller after the errors; nothing written. Both tell what a real run
/// would do: under `-W error`, a fresh pyc whose source is remembered to warn fails, and one
/// whose warnings are not remembered is compiled in memory to learn them, which writes
/// nothing, so it is not counted as a compile. The summary counts what the run would do,
/// and the files known to fail as failed, so that the dry run exits as the real run will
/// (1), as far as it can know without compiling. Returns the number of files to check for
/// warnings.
#[allow(clippy::too_many_arguments)]
fn dry_run(
    s: &CompileSettings,
    plans: &[SourcePlan],
    walked: &Walked,
    (memos, paths): (&[Option<Memo>], &PycPaths<'_>),
    cwd: &Path,
    summary: &mut Summary,
    notes: &mut Notes,
    style: Style,
) -> Result<usize, Error> {
    // Counted as the summary of a real run: files and pycs to compile, headers (pycs) to
    // rewrite, pycs already fresh, files known to fail; and files to check for warnings.
    let mut check = 0;
    let levels = s.levels.len();
    let mut lines = Vec::new();
    let mut fine = std::collections::HashSet::new();
    for (i, p) in plans.iter().enumerate() {
        if let Some(err) = &p.error {
            plan_error(&p.path, err, summary, notes, style);
            continue;
        }
        let (mut compiles, mut checks, mut failing) = (false, false, false);
        let (mut source, mut read) = (None, None);
        for (t, a) in p.actions.iter().enumerate() {
            // Under -W error, warnings remembered of these source bytes at the levels the run
            // compiles (or finds fresh) fail the file, whatever the pycs are.
            let remembered = match a {
                Action::Fresh if s.warnings_as_errors => {
                    remembered_warnings(s, memos, cwd, (p, t, &s.levels), &mut source)
                }
                // `--force` compiles for real, whatever is remembered.
                Action::Compile { prefix, .. } if s.warnings_as_errors && !s.force => {
                    let compiled = &s.levels[..usize::from(*prefix)];
                    remembered_warnings(s, memos, cwd, (p, t, compiled), &mut source)
                }
                _ => None,
            };
            // What would stop the run's compile that the plan did not look at: a source it
            // cannot read, a pyc directory it cannot create. Reported as the run does.
            if let (Action::Compile { write, .. }, None) = (a, &remembered)
                && let Some(obstacle) =
                    compile_obstacle(&p.path, &paths.of(&p.path, t), write, &mut read, &mut fine)
            {
                match obstacle {
                    Obstacle::Vanished => vanished(&p.path, summary, notes),
                    Obstacle::Error(e, written) => {
                        // The levels the run writes before the one that fails count, as the run
                        // counts them, and so do those it is not to write (fresh).
                        summary.compiled_pycs += written;
                        summary.fresh_pycs += levels - write.len();
                        compiles |= written > 0;
                        unit_error(&p.path, t, e, summary, notes, style);
                    }
                }
                continue;
            }
            // A pyc directory the user may not write in: the run's first header rewrite, else
            // its first link, fails there; reported and counted as the run does (the levels
            // it does not get to are fresh, the one it fails at is the file's error).
            if let (Action::Rewrite { headers, links }, None) = (a, &remembered)
                && let Some((e, at)) = rewrite_obstacle(&paths.of(&p.path, t), headers, links, &mut fine)
            {
                summary.fresh_pycs += (0..levels as u8).filter(|l| !headers.contains(l) && *l != at).count();
                unit_error(&p.path, t, e, summary, notes, style);
                continue;
            }
            let (verb, reason, failure) = match (a, remembered) {
                (_, Some(warnings)) => {
                    failing = true;
                    summary.failed_for(t);
                    let (reason, event) = failing_plan(&warnings.iter().collect::<Vec<_>>());
                    ("fails", Some(reason), Some(event))
                }
                (Action::Fresh, None) => {
                    summary.fresh += 1;
                    summary.fresh_pycs += levels;
                    ("fresh", None, None)
                }
                (Action::Rewrite { headers, links }, None) => {
                    summary.rewritten_pycs += headers.len();
                    summary.linked_pycs += links.len();
                    summary.fresh_pycs += levels - crate::plan::rewritten_levels(headers, links).len();
                    if headers.is_empty() {
                        summary.linked += 1;
                        ("link", Some("identical levels, --hardlink-dupes".to_string()), None)
                    } else {
                        summary.rewritten += 1;
                        let other = if s.mode == HashMode::Checked { "unchecked" } else { "checked" };
                        ("rewrite", Some(format!("{other} → {} header", mode_name(s.mode))), None)
                    }
                }
                // Compiled in memory for its warnings: a real run writes nothing for it, and
                // counts its pycs fresh, or the file failed, once it knows.
                (Action::Compile { reason: reason @ Reason::UnknownWarnings, .. }, None) => {
                    checks = true;
                    ("check", Some(reason.to_string()), None)
                }
                (Action::Compile { reason, write, .. }, None) => {
                    compiles = true;
                    summary.compiled_for(t);
                    summary.compiled_pycs += write.len();
                    summary.fresh_pycs += levels - write.len();
                    ("compile", Some(reason.to_string()), None)
                }
                (Action::KnownFailure { failure: f, .. }, None) => {
                    failing = true;
                    summary.failed_for(t);
                    // Under -W error, by the warnings raised before it failed, as the run.
                    let (reason, event) = match failing_warnings(s, f) {
                        warnings if warnings.is_empty() => {
                            (format!("{}: {}, remembered", f.kind, f.message), Event::failure(f, true))
                        }
                        warnings => failing_plan(&warnings),
                    };
                    ("fails", Some(reason), Some(event))
                }
                // A pyc the real run refuses to write over (a directory, a symlink): its
                // error, as the real run reports it.
                (Action::Refused { error }, None) => {
                    unit_error(&p.path, t, error.to_string(), summary, notes, style);
                    continue;
                }
            };
            lines.push(PlanLine { path: p.path.clone(), target: Some(t), verb, reason, failure });
        }
        summary.compiled_sources += usize::from(compiles);
        check += usize::from(checks);
        if failing {
            summary.failed_sources.insert(i);
        }
    }
    for skipped in &walked.skipped_symlinks {
        lines.push(PlanLine {
            path: skipped.clone().into_boxed_path(),
            target: None,
            verb: "skip",
            reason: Some("symlink outside --limit-symlinks".into()),
            failure: None,
        });
    }
    if s.json {
        // In path order with the run's other objects.
        for l in lines {
            let mut event = Event::new("plan", serde_json::json!({ "action": l.verb, "reason": l.reason }));
            if let Some(failure) = l.failure {
                event.fields.extend(failure.fields);
            }
            notes.add(&l.path, 1, l.target, String::new(), Some(event));
        }
        return Ok(check);
    }
    lines.sort_by(|a, b| a.path.cmp(&b.path));
    let many = s.targets.len() > 1;
    let mut out = std::io::stdout().lock();
    for l in lines {
        let label = match l.target {
            Some(t) if many => format!("  [{}]", s.targets[t].version_string()),
            _ => String::new(),
        };
        let reason = l.reason.map(|r| format!("  ({r})")).unwrap_or_default();
        if !report::out_line(
            &mut out,
            format_args!("{:<8} {}{label}{reason}", l.verb, report::shown(&l.path)),
        )? {
            break;
        }
    }
    drop(out);
    Ok(check)
}

/// Why the run could not do a compile unit the plan found nothing against.
enum Obstacle {
    /// The source is gone (a notice, as in the run).
    Vanished,
    /// The run's error, and how many of the levels to write the run writes before it fails
    /// (a pyc name too long only at `opt-2`).
    Error(String, usize),
}

/// What would stop the run's compile of `source` writing the levels `write` of `pycs`, as
/// the run would say it: the source cannot be read (the run reads it before compiling; read
/// here once per source, into `read`, for every target), or a pyc's directory is not one
/// (the run cannot create it once compiled), cannot be created (a read-only file system, no
/// write permission, a path too long) or written in. Nothing is created.
fn compile_obstacle(
    source: &Path,
    pycs: &[PathBuf],
    write: &[u8],
    read: &mut Option<Result<(), (std::io::ErrorKind, String)>>,
    fine: &mut std::collections::HashSet<PathBuf>,
) -> Option<Obstacle> {
    let readable = read.get_or_insert_with(|| {
        let mut buf = Vec::new();
        let r = crate::io::read_source_into(source, &mut buf);
        r.map_err(|e| (e.kind(), format!("cannot read the source: {}", crate::io::io_reason(&e))))
    });
    match readable {
        Err((kind, _)) if crate::io::is_gone(*kind) => return Some(Obstacle::Vanished),
        Err((_, e)) => return Some(Obstacle::Error(e.clone(), 0)),
        Ok(()) => {}
    }
    for (written, pyc) in write.iter().map(|&l| &pycs[usize::from(l)]).enumerate() {
        let dir = match pyc.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => continue,
        };
        // The directory first, once per directory of the run (`fine`: those that showed
        // none), then the pyc's name: the temporary file's path over PATH_MAX, or a name
        // longer than NAME_MAX to rename it to.
        let write_error = |source| {
            let e = crate::write::WriteError::Write { path: pyc.to_path_buf(), source };
            Some(Obstacle::Error(schedule::error_chain(&e), written))
        };
        match if fine.contains(dir) { None } else { dir_obstacle(dir) } {
            Some(DirObstacle::NotWritable(source)) => return write_error(source),
            Some(DirObstacle::Create(source)) => {
                let e = crate::write::WriteError::CreateDir { path: dir.to_path_buf(), source };
                return Some(Obstacle::Error(schedule::error_chain(&e), written));
            }
            None => {
                fine.insert(dir.to_path_buf());
            }
        }
        use std::os::unix::ffi::OsStrExt;
        if pyc.file_name().is_some_and(|n| n.as_bytes().len() > crate::write::NAME_MAX)
            || crate::write::path_too_long(pyc)
        {
            return write_error(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
    }
    None
}

/// What would stop the run's header rewrites and links of one unit (the levels `headers`,
/// then `links`, of `pycs`): the directory of the first it makes is not one files can be
/// created in (the rewrite writes a new file and renames it, the link makes one): the
/// run's error for it, and the level it fails at. Nothing is written; a directory is looked
/// at once per run (`fine`: those that showed nothing).
fn rewrite_obstacle(
    pycs: &[PathBuf],
    headers: &[u8],
    links: &[u8],
    fine: &mut std::collections::HashSet<PathBuf>,
) -> Option<(String, u8)> {
    let (&at, link) = match (headers.first(), links.first()) {
        (Some(h), _) => (h, false),
        (None, Some(l)) if *l > 0 => (l, true),
        _ => return None,
    };
    let path = pycs.get(usize::from(at))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if fine.contains(dir) {
        return None;
    }
    let source = match dir_obstacle(dir) {
        Some(DirObstacle::NotWritable(e) | DirObstacle::Create(e)) => e,
        None => {
            fine.insert(dir.to_path_buf());
            return None;
        }
    };
    let e = if link {
        let existing = pycs[usize::from(at) - 1].clone();
        crate::write::WriteError::Link { path: path.clone(), existing, source }
    } else {
        crate::write::WriteError::Write { path: path.clone(), source }
    };
    Some((schedule::error_chain(&e), at))
}

/// What stops a pyc being written in `dir`, as the run meets it.
pub enum DirObstacle {
    /// It is there and no file can be created in it (a read-only file system, no write
    /// permission): the pyc's write fails.
    NotWritable(std::io::Error),
    /// It is not a directory (a file, a symbolic link to nothing or a loop, under a file),
    /// or not there and cannot be created (see [`uncreatable`]): `create_dir_all` fails.
    Create(std::io::Error),
}

/// Why no pyc could be written in `dir`, as `create_dir_all` and the write would fail
/// there; `None` when nothing says so without trying. Nothing is created.
pub fn dir_obstacle(dir: &Path) -> Option<DirObstacle> {
    let source = match std::fs::metadata(dir) {
        // The reason is `access`'s, read before anything else can change `errno`.
        Ok(m) if m.is_dir() => {
            return (!writable(dir)).then(|| DirObstacle::NotWritable(std::io::Error::last_os_error()));
        }
        Ok(_) => {
            crate::write::in_the_way(dir).unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EEXIST))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => e,
        Err(e) => match crate::write::broken_link(dir) {
            Some(e) => e,
            // `mkdir` fails as `stat` did: a path longer than PATH_MAX, a directory
            // above that cannot be searched.
            None if e.kind() != std::io::ErrorKind::NotFound => e,
            None => uncreatable(dir)?,
        },
    };
    Some(DirObstacle::Create(source))
}

/// Whether files can be created in `dir` (`access(2)` with `W_OK | X_OK`: a read-only file
/// system, an immutable directory (`chattr +i`, also for root), no write or search
/// permission fails, with the reason in `errno`).
fn writable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return true };
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Why `create_dir_all` cannot create `dir`, which does not exist: the nearest directory
/// above it that exists is not [`writable`] (a `__pycache__` in a read-only tree, a
/// `--pycache-prefix` mirror under a directory the user cannot write in).
fn uncreatable(dir: &Path) -> Option<std::io::Error> {
    for above in dir.ancestors().skip(1) {
        let above = if above.as_os_str().is_empty() { Path::new(".") } else { above };
        match std::fs::metadata(above) {
            Ok(m) if m.is_dir() => return (!writable(above)).then(std::io::Error::last_os_error),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => return None,
        }
    }
    None
}

/// The dry run's summary line, counting what the run would do as the run's summary line
/// counts what it did; printed after the errors, as the run's.
/// The end of the run's summary line and the dry run's alike: errors, sources that
/// vanished, what the selection skipped.
fn push_errors_and_skipped(parts: &mut Vec<String>, s: &Summary) {
    if s.errors + s.usage_errors > 0 {
        parts.push(report::plural(s.errors + s.usage_errors, "error", "errors"));
    }
    if !s.vanished.is_empty() {
        parts.push(format!("{} vanished", s.vanished.len()));
    }
    if let Some(skipped) = s.skipped.describe(&s.skipped_by) {
        parts.push(skipped);
    }
}

/// Why the cache cannot be used, and where its directory was set when not by `--cache`.
/// The warning of a cache that cannot be used: why, `then` (what the run does without it),
/// and a hint where the directory is another user's.
fn unusable_cache(
    e: &crate::cache::CacheError,
    settings: &crate::cache::CacheSettings,
    then: &str,
) -> String {
    let described = crate::cache::described(e, settings.dir_from.as_deref());
    // A directory of another user's (a cache mount of root's) that cannot be written.
    let owner = match e {
        crate::cache::CacheError::Open { path, source }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            crate::cache::owner_hint(path)
        }
        _ => None,
    };
    match owner {
        Some(hint) => format!("{described}; {then}; {hint}"),
        None => format!("{described}; {then}"),
    }
}

fn dry_run_summary_line(summary: &Summary, check: usize, targets: &[Arc<Target>], style: Style) -> String {
    let mut parts = vec![format!("{} already fresh", summary.fresh_pycs)];
    if check > 0 {
        parts.push(report::plural(check, "file to check for warnings", "files to check for warnings"));
    }
    let differing = summary.differing_targets(targets.len());
    if !summary.failed_sources.is_empty() {
        let by_target = failed_by_target(differing.as_deref(), targets);
        parts.push(format!("{} known to fail{by_target}", summary.failed_sources.len()));
    }
    push_errors_and_skipped(&mut parts, summary);
    // Pycs to link (`--hardlink-dupes`), as the run's line says "N linked".
    let links = match summary.linked_pycs {
        0 => String::new(),
        n => format!(", link {}", report::plural(n, "pyc", "pycs")),
    };
    let rewrite = report::plural(summary.rewritten_pycs, "header", "headers");
    // Per target, the files to compile name the targets; the headers and links are totals.
    let what = match compiled_by_target(summary, differing.as_deref(), targets) {
        Some(per_target) => format!("{per_target}, rewrite {rewrite}{links}"),
        None => format!(
            "{}, rewrite {rewrite}{links} for {}",
            files_and_pycs(summary.compiled_sources, summary.compiled_pycs),
            crate::target::targets_label(targets)
        ),
    };
    format!("{} compile {what} ({}); nothing was written", style.bold("Would"), parts.join(", "))
}

fn mode_name(mode: HashMode) -> &'static str {
    match mode {
        HashMode::Checked => "checked",
        HashMode::Unchecked => "unchecked",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind::{InvalidFilename, NotADirectory, NotFound, PermissionDenied};

    // A source gone since the walk found it (a notice, counted vanished) is told from an
    // error by the plan error's kind, never by its words: another error whose reason begins
    // as a missing file's does is an error.
    #[test]
    fn a_plan_error_is_vanished_by_its_kind_not_its_words() {
        let classify = |kind, reason: &str| {
            let mut summary = Summary::default();
            let mut notes =
                Notes { notes: Vec::new(), last: Vec::new(), quiet: 0, json: false, github: false };
            let err = plan::PlanError { kind, reason: reason.into() };
            plan_error(Path::new("m.py"), &err, &mut summary, &mut notes, Style { color: false });
            (summary.vanished.len(), summary.errors)
        };
        assert_eq!(classify(Some(NotFound), "cannot read the source: no such file"), (1, 0));
        // A directory of its path replaced by a file since the walk: gone, as the walker says.
        assert_eq!(classify(Some(NotADirectory), "cannot read the source: not a directory"), (1, 0));
        assert_eq!(classify(Some(InvalidFilename), "no such file: its name is too long"), (0, 1));
        assert_eq!(classify(Some(PermissionDenied), "no such file may be read here"), (0, 1));
        assert_eq!(classify(None, "no such file"), (0, 1));
    }
}
