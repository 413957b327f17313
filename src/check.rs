//! `hashpyc check`: does every source have the pyc `compile` would write for it, as named
//! (the interpreter's magic and flags, the source's hash, the path as named embedded)? Pure Rust (walk + pyc header + SipHash + a structural walk of
//! the marshal body), in parallel; the findings are data on stdout (text, JSON Lines or
//! GitHub annotations), sorted by path.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cli::Format;
use crate::io::io_reason;
use crate::layout::tag_python;
use crate::marshal;
use crate::plan::PycPaths;
use crate::pyc::{self, Accept, HashMode, Header, Invalid, Kind, Status};
use crate::report::{self, Style};
use crate::settings::CheckSettings;
use crate::target::Target;
use crate::{Error, ExitStatus, Verbosity};

/// One source's verdict for one target and optimization level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Missing,
    Stale,
    Timestamp,
    /// Hash-based but unchecked where checked is required.
    Unchecked,
    /// Hash-based and checked where unchecked is required.
    Checked,
    Invalid,
    /// The source or the pyc could not be read.
    Unreadable,
    /// A pyc in `__pycache__` whose source is gone (`--stray`).
    Stray,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::Missing,
        Outcome::Stale,
        Outcome::Timestamp,
        Outcome::Unchecked,
        Outcome::Checked,
        Outcome::Invalid,
        Outcome::Unreadable,
        Outcome::Stray,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Missing => "missing",
            Outcome::Stale => "stale",
            Outcome::Timestamp => "timestamp",
            Outcome::Unchecked => "unchecked",
            Outcome::Checked => "checked",
            Outcome::Invalid => "invalid",
            Outcome::Unreadable => "unreadable",
            Outcome::Stray => "stray",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Outcome::Ok => "up to date",
            Outcome::Missing => "no pyc",
            Outcome::Stale => "the pyc was compiled from other source bytes",
            Outcome::Timestamp => "timestamp-based pyc (can go stale unnoticed)",
            Outcome::Unchecked => "unchecked hash-based pyc; checked required",
            Outcome::Checked => "checked hash-based pyc; unchecked required",
            Outcome::Invalid => "the interpreter would reject this pyc",
            Outcome::Unreadable => "could not be read",
            Outcome::Stray => "pyc whose source is gone",
        }
    }
}

/// Header fields as JSON shows them.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HeaderView {
    pub magic: String,
    pub flags: Option<u32>,
    pub hash: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(serialize_with = "report::json_path")]
    pub path: PathBuf,
    #[serde(serialize_with = "report::json_path")]
    pub pyc: PathBuf,
    pub outcome: Outcome,
    /// `X.Y`; for a stray of an interpreter not checked, what its tag or magic number
    /// names, "" (JSON null) when neither names a version.
    #[serde(serialize_with = "empty_as_null")]
    pub python: String,
    /// A stray of another implementation than CPython: its tag (`pypy39`).
    #[serde(skip)]
    pub implementation: Option<String>,
    /// The target's place among those given (`--python A --python B`: A's findings first),
    /// after them for a stray of an interpreter not checked.
    #[serde(skip)]
    pub target: usize,
    pub optimization: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub expected: Option<HeaderView>,
    pub found: Option<HeaderView>,
    /// Stale for its embedded path only: the path found and the one expected.
    #[serde(skip)]
    pub embedded: Option<(PathBuf, PathBuf)>,
    /// Missing because the source does not compile (remembered by the state directory):
    /// `Some(line)` of the error, when CPython gave one.
    #[serde(skip)]
    pub source_fails: Option<Option<u32>>,
    /// The pyc is a symbolic link (dangling or not), which `compile` refuses to write over.
    #[serde(skip)]
    pub symlink: bool,
    /// The pyc path is neither a regular file nor a symbolic link (a directory, a FIFO),
    /// which `compile` refuses to replace.
    #[serde(skip)]
    pub not_regular: bool,
    /// Unreadable for its source, which `compile` cannot read either.
    #[serde(skip)]
    pub source_unreadable: bool,
    /// Missing because a directory of its path is something else (a `__pycache__` that is
    /// a file, or a symbolic link to nothing or a loop), which `compile` does not replace:
    /// that path.
    #[serde(skip)]
    pub not_a_dir: Option<PathBuf>,
    /// Unreadable for its pyc: the kind of the error reading it, by which the advice is
    /// chosen (never by the detail's words).
    #[serde(skip)]
    pub pyc_error: Option<std::io::ErrorKind>,
}

fn empty_as_null<S: serde::Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    if s.is_empty() { ser.serialize_none() } else { ser.serialize_str(s) }
}

impl Finding {
    /// The interpreter as messages name it: `CPython 3.12`; for a stray of another
    /// implementation its tag (`pypy39`), of no known version `unknown Python`.
    fn interpreter(&self) -> String {
        match (&self.implementation, self.python.as_str()) {
            (Some(tag), _) => tag.clone(),
            (None, "") => "unknown Python".to_string(),
            (None, v) => format!("CPython {v}"),
        }
    }
}

/// Check everything; print findings; return the exit status.
pub fn check(s: &CheckSettings, verbosity: Verbosity, style: Style) -> Result<ExitStatus, Error> {
    let started = Instant::now();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let many = s.targets.len() > 1;
    crate::verified::open(crate::target::own_state_dir().as_deref(), s.targets.iter().map(|t| t.magic));
    // Check on the walker's threads; keep only what will be printed, count the rest.
    let kept = std::sync::Mutex::new(Vec::new());
    let ok = AtomicUsize::new(0);
    let sources = AtomicUsize::new(0);
    let missed = crate::embed::Missed::default();
    let vanished = std::sync::Mutex::new(Vec::new());
    let mut walked = crate::walk::walk_each(&s.roots, &s.walk, &|src| {
        let embedded = s.embed.apply(&src.path, src.depth);
        missed.add(&src.path, (embedded.strip_missed, embedded.strip_whole, embedded.prepend_missed));
        let (n_ok, found) = check_source(&src.path, &embedded.path, s, &cwd);
        // A source removed since the walk listed it (its pyc missing, or the source
        // unreadable): a note, as `compile` says of such a file, not a finding.
        if found.iter().any(|f| matches!(f.outcome, Outcome::Missing | Outcome::Unreadable))
            && std::fs::symlink_metadata(&src.path).is_err_and(|e| crate::io::is_gone(e.kind()))
        {
            vanished.lock().expect("check lock").push(src.path.clone());
            return;
        }
        sources.fetch_add(1, Ordering::Relaxed);
        ok.fetch_add(n_ok, Ordering::Relaxed);
        if !found.is_empty() {
            kept.lock().expect("check lock").extend(found);
        }
    });
    let mut findings = kept.into_inner().expect("check lock");
    crate::verified::save();
    // An interrupted walk checked part of the tree: no findings, no summary (main.rs says
    // `error: interrupted`); so for one interrupted from here to the last finding printed.
    let interrupted = || if crate::interrupt::requested() { Err(Error::Interrupted) } else { Ok(()) };
    interrupted()?;
    let mut vanished = vanished.into_inner().expect("check lock");
    vanished.sort();
    walked.errors.extend(vanished.into_iter().map(crate::walk::WalkError::Vanished));
    if s.stray {
        findings.extend(strays(&walked.pycache_files, &walked.pycache_links, &s.targets));
        findings.extend(legacy_strays(&walked.legacy_pycs, &s.targets));
        findings.extend(prefix_strays(s, &walked.dirs, &cwd, &mut walked.errors));
        interrupted()?;
    }
    // A source's findings in the order the targets were given, as the summary lists them.
    findings.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then(a.target.cmp(&b.target))
            .then(a.optimization.cmp(&b.optimization))
            .then(a.python.cmp(&b.python))
    });
    explain_remembered_failures(&mut findings, &s.targets, &cwd);

    let mut counts = std::collections::BTreeMap::new();
    for f in findings.iter().filter(|f| f.outcome != Outcome::Ok) {
        *counts.entry(f.outcome.name()).or_insert(0usize) += 1;
    }
    counts.insert("ok", ok.into_inner());
    let problems = findings.iter().filter(|f| f.outcome != Outcome::Ok).count();
    let usage_errors = walked.errors.iter().filter(|e| e.is_usage()).count();
    let errors = walked.errors.iter().filter(|e| !e.is_notice()).count();
    // JSON mode says everything about the run on stdout, as `compile --format json` does:
    // stderr is left to operational errors (an interpreter that cannot be probed, bad
    // arguments), which end the run before any of this.
    let json = s.format == Format::Json;
    // What the text output says on stderr about the run, as JSON objects shaped as compile's:
    // first, under -v, where the configuration came from.
    let mut events: Vec<serde_json::Value> =
        s.described.iter().map(|d| run_event("notice", None, d.clone())).collect();
    // Then the targets (text mode printed them on stderr before the run: lib.rs).
    if verbosity.verbose > 0 {
        for t in &s.targets {
            let mut event = run_event("notice", None, crate::target_line(t));
            // As compile's: the target's `X.Y`, then the target.
            event["python"] = format!("{}.{}", t.version.0, t.version.1).into();
            event["target"] = t.json();
            events.push(event);
        }
    }
    let verified = (verbosity.verbose > 0).then(crate::verified::verbose_line).flatten();
    events.extend(verified.iter().map(|v| run_event("notice", None, v.clone())));
    // A state directory that passed the check before the run and then failed a write (a
    // full disk): one warning, as compile's.
    let state_warnings: Vec<String> = crate::target::state_write_warning(verbosity.verbose > 0)
        .into_iter()
        .chain(crate::target::state_refused_warning())
        .collect();
    events.extend(state_warnings.iter().map(|w| run_event("notice", None, w.clone())));
    events.extend(
        walked
            .errors
            .iter()
            .map(|e| run_event(if e.is_notice() { "notice" } else { "error" }, e.path(), e.to_string())),
    );
    if !json {
        if let Some(v) = &verified {
            report::eprint_line(v);
        }
        if verbosity.quiet < 2 {
            for w in &state_warnings {
                report::eprint_line(&format!("{}: {w}", style.warning()));
            }
        }
        for e in &walked.errors {
            // Notes and per-file warnings (a dangling `.py` symlink, a loop), as compile's:
            // shown unless -qq; errors always.
            if (e.is_note() || e.is_notice()) && verbosity.quiet > 1 {
                continue;
            }
            let label = if e.is_note() {
                "note".to_string()
            } else if e.is_notice() {
                style.warning()
            } else {
                style.error()
            };
            report::eprint_line(&format!("{label}: {e}"));
        }
    }
    // As `compile` warns of them: a file's `ddir` with files named in directories, and the
    // paths `-s` does not apply to (expected unchanged), and those `-p` changes nothing of.
    let missed = missed.into_inner().messages(&s.embed);
    let environments = crate::walk::environment_warnings(&walked.environments, &s.targets, "checks");
    for message in s.named_warnings.iter().cloned().chain(environments).chain(missed) {
        if json {
            events.push(run_event("notice", None, message));
        } else if verbosity.quiet < 2 {
            report::eprint_line(&format!("{}: {message}", style.warning()));
        }
    }
    let sources = sources.into_inner();
    // An empty selection proves nothing: a typo in a path, or ignore rules that hid the
    // tree, must not pass a CI job.
    // Every path a hook named was excluded on purpose (`--force-exclude`, `-x`) or is no
    // `.py` file, or an empty path list on stdin named none (`git diff --name-only '*.py'`
    // in a change without Python, as compile takes it): nothing was meant to be checked,
    // which is no finding.
    let stdin_empty = s.roots.is_empty();
    let all_excluded = sources == 0 && walked.skipped.named() == s.roots.len();
    // (A source removed during the run is a note of its own.)
    let vanished = walked.errors.iter().filter(|e| e.is_vanished()).count();
    // A named path that could not be read at all (a name too long) has its own error.
    let roots_failed = !s.roots.is_empty()
        && s.roots
            .iter()
            .all(|r| walked.errors.iter().any(|e| !e.is_notice() && e.path() == Some(r.as_path())));
    let nothing = sources == 0 && usage_errors == 0 && !all_excluded && vanished == 0 && !roots_failed;
    // `--format github`: the run's errors are annotations too (on stderr as in text), so a
    // job that fails for them says why where its findings would be.
    let mut annotations: Vec<String> = Vec::new();
    if s.format == Format::Github {
        for e in walked.errors.iter().filter(|e| !e.is_note() && !e.is_notice()) {
            annotations.push(github_error(e.path(), &e.to_string()));
        }
    }
    if nothing {
        let msg =
            report::no_sources("check", &s.roots, walked.skipped.describe_empty(&s.walk.skipped_by), &s.walk);
        if json {
            events.push(run_event("error", None, msg));
        } else {
            report::eprint_line(&format!("{}: {msg}", style.error()));
            if s.format == Format::Github {
                annotations.push(github_error(None, &msg));
            }
        }
    }
    // Every hint that applies, each about other findings of a mixed tree (3.9 pycs missing
    // in one directory, timestamp pycs in another): one does not hide the others.
    let hints: Vec<String> = [
        wrong_version_hint(&findings, &s.targets),
        layout_hint(&findings, counts["ok"], s),
        prefix_hint(&findings, s),
        level_hint(&findings, counts["ok"], s),
        spelling_hint(&findings, &cwd, &s.embed, &s.roots, &|dir: &Path| config_flag(dir, &cwd, s)),
        timestamp_hint(&findings, s.accept, s.compile_unchecked),
        mode_hint(&findings, s.compile_unchecked),
    ]
    .into_iter()
    .flatten()
    .collect();
    if json {
        for hint in &hints {
            events.push(run_event("notice", None, hint.clone()));
        }
    }

    let mut out = std::io::stdout().lock();
    // The level is said unless the run checks level 0 only: `[opt-1]` where PYTHONOPTIMIZE or
    // a file's `optimize` chose level 1 alone (a missing `m.cpython-312.opt-1.pyc` beside
    // the `m.cpython-312.pyc` compile wrote reads as "never compiled" otherwise).
    let show_level = s.levels != [0];
    let pycs: usize = counts.iter().filter(|(k, _)| **k != "stray").map(|(_, v)| v).sum();
    let status = if usage_errors > 0 {
        ExitStatus::Error
    } else if problems > 0 || errors > 0 || nothing {
        ExitStatus::Findings
    } else {
        ExitStatus::Success
    };
    if json {
        for e in &events {
            interrupted()?;
            if !report::out_line(&mut out, e)? {
                return Ok(status);
            }
        }
    }
    for line in annotations {
        if !report::out_line(&mut out, line)? {
            return Ok(status);
        }
    }
    for f in findings.iter().filter(|f| s.all || f.outcome != Outcome::Ok) {
        interrupted()?;
        let line = match s.format {
            Format::Text => {
                let mut extra = Vec::new();
                if many {
                    extra.push(f.interpreter());
                }
                if show_level {
                    extra.push(format!("opt-{}", f.optimization));
                }
                let extra = if extra.is_empty() { String::new() } else { format!("  [{}]", extra.join(" ")) };
                let shown = if f.outcome == Outcome::Stray { &f.pyc } else { &f.path };
                // The reason is the finding (a CI log must say why a pyc is invalid).
                let why = match &f.detail {
                    Some(d) => format!(": {}", report::printable(d)),
                    None => String::new(),
                };
                format!("{:<10} {}{extra}{why}", f.outcome.name(), report::shown(shown))
            }
            Format::Json => serde_json::to_string(f).expect("findings serialize"),
            Format::Github => github_annotation(f, s.accept, s.compile_unchecked),
        };
        if !report::out_line(&mut out, line)? {
            // stdout closed (e.g. `| head`): stop quietly, like ripgrep.
            return Ok(status);
        }
    }
    if json {
        let mut summary = serde_json::Map::new();
        summary.insert("type".into(), "summary".into());
        summary.insert("sources".into(), sources.into());
        summary.insert("pycs".into(), pycs.into());
        for o in Outcome::ALL {
            summary.insert(o.name().into(), counts.get(o.name()).copied().unwrap_or(0).into());
        }
        // The error of a check with nothing to check is an `error` object too.
        summary.insert("errors".into(), (errors + usize::from(nothing)).into());
        summary.insert("skipped_ignored".into(), walked.skipped.ignored.into());
        summary.insert("skipped_hidden".into(), walked.skipped.hidden.into());
        summary.insert("skipped_ignored_dirs".into(), walked.skipped.ignored_dirs.into());
        summary.insert("skipped_hidden_dirs".into(), walked.skipped.hidden_dirs.into());
        summary.insert("force_excluded".into(), walked.skipped.force_excluded.into());
        summary.insert("regex_excluded".into(), walked.skipped.regex_excluded.into());
        summary.insert("skipped_not_py".into(), walked.skipped.not_py.into());
        summary.insert("skipped_no_module_name".into(), walked.skipped.no_module_name.into());
        summary.insert("skipped_limit_symlinks".into(), walked.skipped.limit_symlinks.into());
        summary.insert("skipped_links_to_nothing".into(), walked.skipped.links_to_nothing().into());
        let targets: Vec<serde_json::Value> = s.targets.iter().map(|t| t.short_version().into()).collect();
        summary.insert("targets".into(), targets.into());
        summary.insert("elapsed".into(), report::json_seconds(started.elapsed()).into());
        report::out_line(&mut out, serde_json::Value::Object(summary))?;
    }
    drop(out);
    interrupted()?;
    if json {
        return Ok(status);
    }
    if verbosity.quiet < 2 {
        // In text (a hook's output), when no hint above names its remedy: the `compile`
        // that fixes what compiling alone fixes, as `--format github`'s annotations say it.
        let fix = (s.format == Format::Text && hints.is_empty()).then(|| fix_hint(&findings, s)).flatten();
        for hint in hints.iter().chain(&fix) {
            report::eprint_line(&format!("hint: {hint}"));
        }
    }
    if verbosity.quiet == 0 {
        let mut parts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| **o != Outcome::Ok)
            .filter_map(|o| counts.get(o.name()).map(|n| format!("{n} {}", o.name())))
            .collect();
        if errors > 0 {
            parts.push(report::plural(errors, "error", "errors"));
        }
        if nothing {
            parts.push("nothing checked".into());
        } else if stdin_empty {
            parts.push("the path list on stdin is empty".into());
        } else if parts.is_empty() && !all_excluded {
            // (Every named path excluded: the count of those says what happened.)
            parts.push("all fresh".into());
        }
        if let Some(skipped) = walked.skipped.describe(&s.walk.skipped_by) {
            parts.push(skipped);
        }
        let ok = counts.get("ok").copied().unwrap_or(0);
        let what = if pycs == sources || nothing {
            report::plural(sources, "file", "files")
        } else {
            format!("{}, {}", report::plural(sources, "file", "files"), report::plural(pycs, "pyc", "pycs"))
        };
        report::eprint_line(&format!(
            "{} {what} for {} ({} ok, {}) in {}",
            style.bold("Checked"),
            crate::target::targets_label(&s.targets),
            ok,
            parts.join(", "),
            report::format_duration(started.elapsed())
        ));
    }
    Ok(status)
}

/// An `error` or `notice` object of `--format json` about a path given or the run (`path`
/// null), shaped as compile's: `type`, `path`, `python` (null), `message`.
fn run_event(kind: &str, path: Option<&Path>, message: String) -> serde_json::Value {
    let path = path.map(|p| serde_json::to_value(report::JsonPath(p)).expect("paths serialize"));
    let mut obj = serde_json::Map::new();
    obj.insert("type".into(), kind.into());
    obj.insert("path".into(), path.into());
    obj.insert("python".into(), serde_json::Value::Null);
    obj.insert("message".into(), message.into());
    serde_json::Value::Object(obj)
}

/// When pycs are missing but pycs of another interpreter sit where they would be, the
/// wrong `--python` (or `--target`) was probably given: say which versions are there.
/// When every stale pyc is stale for its embedded path alone, each embedding another
/// spelling of the path this run expects (`./src/m.py`, or the absolute path, for
/// `src/m.py`), the tree was compiled under another name: the commonest way to get there
/// (`hashpyc compile .`, then `hashpyc check src`), and one the reason line alone does not
/// explain. Pycs embedding their source's absolute path (CPython's import rewrote them)
/// get their hint whatever the other findings: beside them, with two targets, the other
/// target's pyc of the same edited source is stale by its source.
/// A missing pyc whose source `compile` found not to compile (remembered in the state
/// directory, for these source bytes) says so: "missing" alone sends a user looking for
/// a step that did not run. So does a stale pyc of other source bytes, left by a compile
/// before the source stopped compiling for this target (3.12 syntax in a tree also
/// compiled for 3.9): compiling again cannot fix it, the source can. Reads no source and
/// starts no Python: the expected hash is already computed.
fn explain_remembered_failures(findings: &mut [Finding], targets: &[Arc<Target>], cwd: &Path) {
    let explained = |f: &Finding| match f.outcome {
        Outcome::Missing => f.detail.is_none() || f.symlink,
        Outcome::Stale => f.detail.is_none() && f.embedded.is_none(),
        _ => false,
    };
    if !findings.iter().any(explained) {
        return;
    }
    let Some(state) = crate::target::own_state_dir() else { return };
    let memos: Vec<(String, crate::memo::Memo)> = targets
        .iter()
        .filter_map(|t| {
            let id = t.memo_identity()?;
            let memo = crate::memo::Memo::load(&state, &id, (t.version.0, t.version.1));
            Some((format!("{}.{}", t.version.0, t.version.1), memo))
        })
        .collect();
    // A source that fails is what `compile` reports, before a pyc that is a symlink.
    for f in findings.iter_mut().filter(|f| explained(f)) {
        let Some(hex) = f.expected.as_ref().and_then(|e| e.hash.as_deref()) else { continue };
        let Some((_, memo)) = memos.iter().find(|(python, _)| *python == f.python) else { continue };
        let abs = crate::memo::key(&f.path, cwd);
        if let Some(failure) = memo.failure_of(&abs, hex, f.optimization) {
            // CPython's line 0 (a source it cannot decode) is no line, as in `compile`'s JSON.
            let line = failure.line.filter(|&l| l > 0);
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            f.detail = Some(format!(
                "the source does not compile: {}: {}{at}, as `hashpyc compile` found",
                failure.kind, failure.message
            ));
            f.source_fails = Some(line);
            f.symlink = false;
        } else if let Some((failed, failure)) = memo.stopped_before(&abs, hex, f.optimization) {
            // A later level of the same compile: never reached, its pyc never written.
            let line = failure.line.filter(|&l| l > 0);
            f.detail = Some(format!(
                "not compiled: `hashpyc compile` stopped at opt-{failed}, where the source does not \
                 compile ({})",
                failure.kind
            ));
            f.source_fails = Some(line);
            f.symlink = false;
        }
    }
}

/// Timestamp pycs (what pip, uv's `--compile-bytecode`, `python -m compileall` and imports
/// write) are the usual
/// reason a first check fails; say what replaces them.
fn timestamp_hint(findings: &[Finding], accept: Accept, compile_unchecked: bool) -> Option<String> {
    let n = findings.iter().filter(|f| f.outcome == Outcome::Timestamp).count();
    let unchecked = accept == Accept::Only(HashMode::Unchecked);
    (n > 0).then(|| {
        format!(
            "{} timestamp-based, as pip, uv, `python -m compileall` and imports write them: {} with the same paths and options replaces {}",
            report::plural(n, "pyc is", "pycs are"),
            compile_command(accept, compile_unchecked),
            match (n, unchecked) {
                (1, false) => "it with a checked-hash pyc",
                (1, true) => "it with an unchecked-hash pyc",
                (_, false) => "them with checked-hash pycs",
                (_, true) => "them with unchecked-hash pycs",
            }
        )
    })
}

/// The `compile` that writes the pycs `accept` wants: `hashpyc compile` writes checked-hash
/// pycs unless told otherwise (or configured: naming the flag is right either way).
/// With `compile_unchecked` (the configuration's `invalidation-mode = "unchecked-hash"`),
/// the plain `compile` writes unchecked-hash pycs: checked-hash ones need the flag.
fn compile_command(accept: Accept, compile_unchecked: bool) -> &'static str {
    match accept {
        Accept::Only(HashMode::Unchecked) => "`hashpyc compile --invalidation-mode unchecked-hash`",
        Accept::Only(HashMode::Checked) if compile_unchecked => {
            "`hashpyc compile --invalidation-mode checked-hash`"
        }
        _ => "`hashpyc compile`",
    }
}

/// Whether running `compile` alone fixes a finding: a pyc missing, stale, timestamp-based,
/// of the other hash kind or invalid, which `compile` can write (`--format github` says
/// "run `hashpyc compile` to fix" of each such one, and how else to fix the others).
fn compile_fixes(f: &Finding) -> bool {
    use std::io::ErrorKind::{InvalidFilename, PermissionDenied};
    matches!(
        f.outcome,
        Outcome::Missing
            | Outcome::Stale
            | Outcome::Timestamp
            | Outcome::Unchecked
            | Outcome::Checked
            | Outcome::Invalid
    ) && f.source_fails.is_none()
        && !f.symlink
        && !f.not_regular
        && f.not_a_dir.is_none()
        && !matches!(f.pyc_error, Some(InvalidFilename | PermissionDenied))
        && !f.source_unreadable
        && f.detail.as_deref() != Some(TEMP_STRAY)
        && unwritable_dir(f).is_none()
}

/// The `compile` that fixes the findings compiling alone fixes (see [`compile_fixes`]): the
/// paths named on the command line when they are few and need no quoting (else "with
/// the same paths"; `-` for a list on stdin), and "with the same options" when an option
/// `compile` takes too was given.
fn fix_hint(findings: &[Finding], s: &CheckSettings) -> Option<String> {
    if !findings.iter().any(compile_fixes) {
        return None;
    }
    let command = compile_command(s.accept, s.compile_unchecked);
    let command = command.trim_end_matches('`');
    let paths = &s.named_paths;
    let plain = |p: &std::ffi::OsString| {
        let b = p.as_bytes();
        !b.is_empty()
            && !b.starts_with(b"-")
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_-./+,:@%=".contains(c))
    };
    let stdin = paths.iter().any(|p| p == "-");
    let listed = paths.iter().map(|p| p.len() + 1).sum::<usize>() <= 60 && paths.iter().all(plain);
    let mut same = Vec::new();
    let args = if stdin {
        same.push("paths on stdin");
        " -".to_string()
    } else if listed {
        paths.iter().map(|p| format!(" {}", p.to_string_lossy())).collect()
    } else {
        same.push("paths");
        String::new()
    };
    if s.compile_options_given {
        same.insert(0, "options");
    }
    let with = if same.is_empty() { String::new() } else { format!(" with the same {}", same.join(" and ")) };
    // `check --target 3.12` probes nothing; `compile` needs an interpreter of that version
    // (a bare `hashpyc compile` would write python3's pycs).
    let pythons: String = s
        .targets
        .iter()
        .filter(|t| t.from_table())
        .map(|t| format!(" --python {}", t.short_version()))
        .collect();
    Some(format!("run {command}{pythons}{args}`{with} to fix"))
}

/// Hash-based pycs of the other kind than `--mode` accepts: the `--mode` that accepts them,
/// and the `compile` that rewrites their headers (their bodies are the same).
fn mode_hint(findings: &[Finding], compile_unchecked: bool) -> Option<String> {
    let count = |o: Outcome| findings.iter().filter(|f| f.outcome == o).count();
    let (unchecked, checked) = (count(Outcome::Unchecked), count(Outcome::Checked));
    let (n, is, them) = match unchecked.max(checked) {
        0 => return None,
        1 => (1, "pyc is", "it"),
        n => (n, "pycs are", "them"),
    };
    Some(if unchecked > 0 {
        format!(
            "{n} {is} unchecked-hash, as `compile --invalidation-mode unchecked-hash` writes them: `check --mode unchecked` (or `--mode any`) accepts {them}; {} with the same paths and options rewrites {} as checked-hash",
            compile_command(Accept::Only(HashMode::Checked), compile_unchecked),
            if n == 1 { "its header" } else { "their headers" }
        )
    } else {
        format!(
            "{n} {is} checked-hash where `--mode unchecked` wants unchecked-hash: `check --mode any` accepts {them}; `hashpyc compile --invalidation-mode unchecked-hash` with the same paths and options rewrites {}",
            if n == 1 { "its header" } else { "their headers" }
        )
    })
}

/// When no pyc of the layout this run expects is there at all (every pyc missing) but
/// sources among them have pycs of the other layout: legacy pycs (`m.pyc` beside `m.py`,
/// as `compileall -b` writes them) where `__pycache__` was expected, or under `-b` pycs in
/// `__pycache__` (as `compileall`, pip, uv and imports write them). Not when some pyc of the
/// expected layout is there: imports write `__pycache__` pycs beside a `-b` tree.
fn layout_hint(findings: &[Finding], ok: usize, s: &CheckSettings) -> Option<String> {
    use crate::layout::Layout;
    let mut missing = findings.iter().filter(|f| f.outcome != Outcome::Stray).peekable();
    missing.peek()?;
    if ok > 0 || !missing.clone().all(|f| f.outcome == Outcome::Missing) {
        return None;
    }
    let legacy = if s.layouts.iter().all(|l| *l == Layout::Legacy) {
        true
    } else if s.layouts.iter().all(|l| *l == Layout::Pycache) {
        false
    } else {
        return None;
    };
    let n_missing = missing.clone().count();
    // The sources with a pyc of the other layout, and one such pyc.
    let mut sources = std::collections::BTreeSet::new();
    let mut example: Option<PathBuf> = None;
    // Per source directory, its `__pycache__`'s pycs by (module, tag): the first name of
    // each, listed once (a directory of 20,000 sources is not scanned 20,000 times).
    type ByModule = std::collections::HashMap<(Vec<u8>, Vec<u8>), std::ffi::OsString>;
    let mut listed = std::collections::HashMap::<&Path, ByModule>::new();
    for f in missing {
        if sources.contains(&f.path) {
            continue;
        }
        let other = if legacy {
            // `dir/__pycache__/<stem>.<any tag>[.opt-N].pyc`, `<stem>` as `cache_from_source`
            // splits the name.
            let name = f.path.file_name().map_or(&[][..], |n| n.as_bytes());
            let stem = name.iter().rposition(|&b| b == b'.').map_or(name, |i| &name[..i]);
            let dir = f.path.parent().unwrap_or(Path::new(""));
            let names = listed.entry(dir).or_insert_with(|| {
                let mut by = ByModule::new();
                for name in names_in(&dir.join("__pycache__")) {
                    let Some((s, t, _)) = crate::layout::cache_name_parts(name.as_bytes()) else { continue };
                    let first = by.entry((s.to_vec(), t.to_vec())).or_insert_with(|| name.clone());
                    if name < *first {
                        *first = name;
                    }
                }
                by
            });
            // Of the target's own tag: another version's pycs are no sign of `--no-legacy`.
            let tag = s.targets.get(f.target).map_or("", |t| t.cache_tag.as_str()).as_bytes();
            names.get(&(stem.to_vec(), tag.to_vec())).map(|n| dir.join("__pycache__").join(n))
        } else {
            let mut pyc = f.path.as_os_str().to_owned();
            pyc.push("c");
            // Of the target's magic: a `m.pyc` of 2.7 or another version is no sign of `-b`.
            let magic = s.targets.get(f.target).map(|t| t.magic.0);
            let of_target = |p: &PathBuf| {
                let mut head = [0u8; 4];
                std::fs::File::open(p)
                    .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut head))
                    .is_ok()
                    && Some(head) == magic
            };
            Some(PathBuf::from(pyc)).filter(|p| p.is_file() && of_target(p))
        };
        if let Some(pyc) = other {
            example.get_or_insert(pyc);
            sources.insert(&f.path);
        }
    }
    let example = example?;
    let n = sources.len();
    let have = if n == 1 { "has" } else { "have" };
    Some(if legacy {
        let drop = match &s.legacy_from {
            Some(origin) => {
                format!("`--no-legacy` ({} sets the legacy layout)", origin.written("legacy = true"))
            }
            None => "no `-b`".to_string(),
        };
        format!(
            "{} missing, but {} {have} pycs in `__pycache__` ({}), as `compileall`, pip, uv \
             and imports write them: to check those, run `hashpyc check` with {drop}",
            report::plural(n_missing, "legacy pyc (`-b`) is", "legacy pycs (`-b`) are"),
            report::plural(n, "source", "sources"),
            report::ticked(&example),
        )
    } else {
        format!(
            "{} missing from `__pycache__`, but {} {have} a legacy pyc beside {} ({}), as \
             `compileall -b` writes them: to check those, run `hashpyc check` with `-b` (`--legacy`)",
            report::plural(n_missing, "pyc is", "pycs are"),
            report::plural(n, "source", "sources"),
            if n == 1 { "it" } else { "them" },
            report::ticked(&example),
        )
    })
}

/// The names in `dir`, listed once, for the hints; a directory that cannot be listed holds
/// none.
fn names_in(dir: &Path) -> impl Iterator<Item = std::ffi::OsString> {
    std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok).map(|e| e.file_name())
}

/// Directory listings for the hints: each directory read once, its names in a set, so
/// that a hint about N missing pycs costs one listing per directory and N lookups.
#[derive(Default)]
struct Listings(std::collections::HashMap<PathBuf, std::collections::HashSet<std::ffi::OsString>>);

impl Listings {
    /// Whether `dir` (`""`: the working directory) holds an entry named `name`; a
    /// directory that cannot be listed holds none.
    fn has(&mut self, dir: &Path, name: &std::ffi::OsStr) -> bool {
        self.0
            .entry(dir.to_path_buf())
            .or_insert_with(|| {
                names_in(if dir.as_os_str().is_empty() { Path::new(".") } else { dir }).collect()
            })
            .contains(name)
    }
}

/// When nine in ten or more of the pycs missing under a pycache prefix are in
/// `__pycache__` beside their sources (the tree was compiled without the prefix, which
/// came to this run from `PYTHONPYCACHEPREFIX`, `--pycache-prefix` or a file's
/// `pycache-prefix`): say where the prefix came from, where the pyc was expected, and how
/// to check without it. The other way round (pycs under a prefix, checked without one) has
/// no hint: nothing names the prefix the compile was given.
fn prefix_hint(findings: &[Finding], s: &CheckSettings) -> Option<String> {
    use crate::layout::Layout;
    let under_prefix = |f: &&Finding| {
        f.outcome == Outcome::Missing
            && f.source_fails.is_none()
            && matches!(s.layouts.get(f.target), Some(Layout::Prefix(_)))
    };
    let missing: Vec<&Finding> = findings.iter().filter(under_prefix).collect();
    let mut listings = Listings::default();
    let mut example: Option<(PathBuf, &Finding)> = None;
    let mut there = 0;
    for f in &missing {
        let Some(name) = f.pyc.file_name() else { continue };
        let pycache = f.path.parent().unwrap_or(Path::new("")).join("__pycache__");
        if listings.has(&pycache, name) {
            there += 1;
            example.get_or_insert_with(|| (pycache.join(name), f));
        }
    }
    let (found, f) = example?;
    if there * 10 < missing.len() * 9 {
        return None;
    }
    let Some(Layout::Prefix(prefix)) = s.layouts.get(f.target) else { return None };
    let (from, without) = match &s.pycache_prefix_from {
        Some(o @ crate::config::Origin::Env(var)) => (
            format!("set by {} in the environment", o.written("")),
            format!("with {var} unset (`env -u {var} hashpyc check`)"),
        ),
        Some(o) => (
            format!("set by {}", o.written("pycache-prefix")),
            "without that setting (or with `--no-config`)".to_string(),
        ),
        None => ("given by `--pycache-prefix`".to_string(), "without `--pycache-prefix`".to_string()),
    };
    Some(format!(
        "{} missing under the pycache prefix {} ({from}), but {} in `__pycache__` ({}, \
         expected at {}), as a compile without the prefix writes them: to check those, run \
         `hashpyc check` {without}, or `hashpyc compile` with the prefix to write {} there",
        report::plural(missing.len(), "pyc is", "pycs are"),
        report::ticked(prefix),
        if there == 1 { "1 is".to_string() } else { format!("{there} are") },
        report::ticked(&found),
        report::ticked(&f.pyc),
        if missing.len() == 1 { "it" } else { "them" },
    ))
}

/// When no pyc of the levels this run checks is there at all (every pyc missing) but
/// sources among them have pycs of the same interpreter at another level: the levels came
/// from somewhere the user may not have looked (`PYTHONOPTIMIZE=1` in CI's environment, a
/// file's `optimize`), and the compile that wrote the tree used others.
fn level_hint(findings: &[Finding], ok: usize, s: &CheckSettings) -> Option<String> {
    use crate::layout::Layout;
    let missing: Vec<&Finding> = findings.iter().filter(|f| f.outcome != Outcome::Stray).collect();
    if missing.is_empty()
        || ok > 0
        || !missing.iter().all(|f| f.outcome == Outcome::Missing && f.source_fails.is_none())
    {
        return None;
    }
    let others: Vec<u8> = (0..=2).filter(|l| !s.levels.contains(l)).collect();
    let mut found: std::collections::BTreeSet<u8> = std::collections::BTreeSet::new();
    let mut example: Option<PathBuf> = None;
    let mut sources = std::collections::BTreeSet::new();
    let mut listings = Listings::default();
    for f in &missing {
        // Legacy pycs (`m.pyc`) hold no level.
        if matches!(s.layouts.get(f.target), Some(Layout::Legacy) | None) {
            continue;
        }
        let (Some(dir), Some(name)) = (f.pyc.parent(), f.pyc.file_name()) else { continue };
        let Some((stem, tag, _)) = crate::layout::cache_name_parts(name.as_bytes()) else { continue };
        let Ok(tag) = std::str::from_utf8(tag) else { continue };
        let mut module = stem.to_vec();
        module.extend_from_slice(b".py");
        for &l in &others {
            let other = crate::layout::cache_file_name(&module, tag, l);
            let other = std::ffi::OsStr::from_bytes(&other);
            if listings.has(dir, other) {
                found.insert(l);
                sources.insert(&f.path);
                example.get_or_insert_with(|| dir.join(other));
            }
        }
    }
    let example = example?;
    let list = |levels: &[u8]| levels.iter().map(u8::to_string).collect::<Vec<_>>().join(" and ");
    let found: Vec<u8> = found.into_iter().collect();
    let (checked, there) = (list(&s.levels), list(&found));
    let from = match &s.optimize_from {
        Some(o @ crate::config::Origin::Key { .. }) => format!(" (set by {})", o.written("optimize")),
        Some(o) => format!(" (set by {} in the environment)", o.written("")),
        None => String::new(),
    };
    let levels = |n: usize| if n == 1 { "level" } else { "levels" };
    let flags: Vec<String> = found.iter().map(|l| format!("-o {l}")).collect();
    let n = sources.len();
    Some(format!(
        "{} missing at optimization {} {checked}{from}, but {} {} pycs of {} {there} ({}): to \
         check those, run `hashpyc check {}`",
        report::plural(missing.len(), "pyc is", "pycs are"),
        levels(s.levels.len()),
        report::plural(n, "source", "sources"),
        if n == 1 { "has" } else { "have" },
        levels(found.len()),
        report::ticked(&example),
        flags.join(" "),
    ))
}

/// The directory from which relative `found` names the file `want` names here: an
/// ancestor of `cwd` as `../..` (the tree was compiled from there: `hashpyc compile` at the
/// top embeds `src/m.py`, `hashpyc check` in `src` expects `m.py`), else the directory
/// whose path the file's ends in `found` under (`hashpyc compile venv/lib` in `/opt`,
/// `hashpyc check /opt/venv/lib` elsewhere): relative when below `cwd` and `want` is,
/// else absolute.
fn spelled_from(found: &Path, want: &Path, cwd: &Path) -> Option<PathBuf> {
    if found.is_absolute() {
        return None;
    }
    let target = crate::layout::absolute(want, cwd);
    let mut up = PathBuf::new();
    for dir in cwd.ancestors().skip(1) {
        up.push("..");
        if crate::layout::absolute(found, dir) == target {
            return Some(up);
        }
    }
    let mut dir = target.clone();
    for _ in found.components() {
        if !dir.pop() {
            return None;
        }
    }
    if crate::layout::absolute(found, &dir) != target {
        return None;
    }
    // Below the working directory, the tree named relative: as spelled from here.
    match dir.strip_prefix(crate::layout::absolute(Path::new("."), cwd)) {
        Ok(below) if !below.as_os_str().is_empty() && want.is_relative() => Some(below.to_path_buf()),
        _ => Some(dir),
    }
}

/// The directories in which `found` and `want` differ, their common end taken away
/// (`v/lib` and `v/lib64` for `v/lib/python3.12/m.py` and `v/lib64/python3.12/m.py`);
/// `None` when not even their file names are the same.
fn differing_dirs(found: &Path, want: &Path) -> Option<(PathBuf, PathBuf)> {
    let (mut a, mut b): (Vec<_>, Vec<_>) = (found.components().collect(), want.components().collect());
    let mut common = 0;
    while let (Some(x), Some(y)) = (a.last(), b.last())
        && x == y
        && !matches!(x, std::path::Component::ParentDir | std::path::Component::RootDir)
    {
        a.pop();
        b.pop();
        common += 1;
    }
    (common > 0).then(|| (a.into_iter().collect(), b.into_iter().collect()))
}

/// One stale pyc stale for its embedded path alone: the path found, the one expected,
/// whether they are the same path spelled otherwise (`./src/m.py`, the absolute path, for
/// `src/m.py`), the directories spelled through a symbolic link where they are
/// another path to the same file (`v/lib` for `v/lib64`, a link to it), and the source's
/// path as walked.
type Spelled<'a> = (&'a PathBuf, &'a PathBuf, bool, Option<(PathBuf, PathBuf)>, &'a PathBuf);

/// The directory the compile that wrote `found` ran in, as [`spelled_from`], the
/// embedded-path options in effect taken into account: a working directory changes the
/// path as walked, not a prepend prefix joined to it (`/app/src/m.py` is not `src/m.py`
/// spelled from `/app`), so with `-p` both paths are compared without it, and with `-d`
/// or `-s` (which replace or remove the walked path's directories) no directory is told.
fn compiled_from(found: &Path, want: &Path, cwd: &Path, embed: &crate::embed::Embed) -> Option<PathBuf> {
    if embed.ddir.is_some() || embed.strip.is_some() {
        return None;
    }
    match &embed.prepend {
        Some(p) => spelled_from(found.strip_prefix(p).ok()?, want.strip_prefix(p).ok()?, cwd),
        None => spelled_from(found, want, cwd),
    }
}

/// How a pyc stale for its embedded path alone differs by the embedded-path options: the
/// path as walked where `-d`, `-s` or `-p` is in effect (written without them), or another
/// prepend prefix joined to the same remainder (`3.12/src/m.py` where `src/m.py` or
/// `/app/src/m.py` is expected).
#[derive(PartialEq)]
enum Written {
    Without,
    Prefix(PathBuf),
}

fn written_with(walked: &Path, found: &Path, want: &Path, embed: &crate::embed::Embed) -> Option<Written> {
    if found == walked && !embed.is_identity() {
        return Some(Written::Without);
    }
    if embed.ddir.is_some() {
        return None;
    }
    // What the prefix was joined to: the expected path without this run's prefix.
    let rest = match &embed.prepend {
        Some(p) => want.strip_prefix(p).ok()?,
        None => want,
    };
    if rest.as_os_str().is_empty() || rest.is_absolute() {
        return None;
    }
    let n = found.components().count().checked_sub(rest.components().count())?;
    let prefix: PathBuf = found.components().take(n).collect();
    (found.ends_with(rest) && n > 0).then_some(Written::Prefix(prefix))
}

/// The hint for stale pycs all [`written_with`] alike.
fn embed_hint(spelled: &[&Spelled], embed: &crate::embed::Embed) -> Option<String> {
    let (found, want, .., walked) = spelled.first()?;
    let how = written_with(walked, found, want, embed)?;
    if spelled[1..].iter().any(|(f, w, .., p)| written_with(p, f, w, embed).as_ref() != Some(&how)) {
        return None;
    }
    let n = spelled.len();
    let stale = report::plural(n, "stale pyc", "stale pycs");
    let (s, its, it) = if n == 1 { ("s", "its", "it") } else { ("", "their", "them") };
    let (found, want) = (report::ticked(found), report::ticked(want));
    let names = embed.names();
    let (ours, that) = (names.join(" and "), if names.len() == 1 { "that" } else { "those" });
    Some(match how {
        Written::Without => format!(
            "{stale} embed{s} {its} source path as walked ({found} for {want}): the compile \
             that wrote {it} ran without {ours}, which this check applies: `hashpyc compile` \
             rewrites {it} with {that}, or check without {that} if the pycs are as meant"
        ),
        Written::Prefix(prefix) => {
            let (named, prefix) = (report::ticked(&prefix), report::shell_path(&prefix));
            let here = if embed.prepend.is_some() { ours } else { "no prepend prefix".to_string() };
            format!(
                "{stale} embed{s} {its} source path with the prepend prefix {named} ({found} \
                 for {want}), where this check applies {here}: the compile that wrote {it} was \
                 given `-p {prefix}`; `hashpyc check --prepend-prefix {prefix}` checks {it} as \
                 written, `hashpyc compile` rewrites {it} with {here}"
            )
        }
    })
}

/// The paths a compile named to write pycs embedding `found` for the sources walked as
/// `walked` (`venv/lib` for `venv/lib/x/m.py` where `/opt/venv/lib` was named here and
/// walked `/opt/venv/lib/x/m.py`), each once, in the order of `spelled`: the command that
/// checks those pycs as written names them. `None` when a path's end is not the walked
/// path's below its root, or when there are more than three (a path list of a hook).
fn named_when_compiled(spelled: &[&Spelled], roots: &[PathBuf]) -> Option<Vec<PathBuf>> {
    let mut named: Vec<PathBuf> = Vec::new();
    for (found, _, _, _, walked) in spelled {
        // The part of the walked path below the root it was walked from (the default `.`
        // walks `src/m.py`, a `.` given walks `./src/m.py`).
        let rest = roots.iter().find_map(|r| match walked.strip_prefix(r) {
            Ok(rest) => Some(rest),
            Err(_) if r == Path::new(".") && walked.is_relative() => Some(walked.as_path()),
            Err(_) => None,
        })?;
        let n = found.components().count().checked_sub(rest.components().count())?;
        if !found.ends_with(rest) {
            return None;
        }
        let root: PathBuf = found.components().take(n).collect();
        if !named.contains(&root) {
            named.push(root);
        }
    }
    (!named.is_empty() && named.len() <= 3).then_some(named)
}

/// `hashpyc check` of the paths [`named_when_compiled`] (none: the current directory).
fn check_command(named: &[PathBuf]) -> String {
    let mut command = "hashpyc check".to_string();
    for path in named.iter().filter(|p| !p.as_os_str().is_empty()) {
        command.push(' ');
        command.push_str(&report::shell_path(path));
    }
    command
}

/// `cd DIR`, DIR shell-quoted (as [`report::shell_path`]) so that the line can be pasted
/// whatever its name holds; a relative one that starts with `-` as `./-…`, which `cd` would
/// take for an option.
fn cd_command(dir: &Path) -> String {
    let dir = if dir.as_os_str().as_encoded_bytes().starts_with(b"-") {
        Path::new(".").join(dir)
    } else {
        dir.to_path_buf()
    };
    format!("cd {}", report::shell_path(&dir))
}

/// What a `hashpyc check` suggested for running in `dir` needs so that it reads the
/// configuration this run read: ` --config FILE` (relative to `dir` when below it) when
/// discovery from `dir` would find another file or none, ` --no-config` when this run read
/// none and discovery from `dir` would find one; else nothing. A per-service `hashpyc.toml`
/// (`python = ["3.12"]`) below a top-level `pyproject.toml` (`["3.11"]`) would otherwise
/// send the user to a run that checks another interpreter's pycs.
fn config_flag(dir: &Path, cwd: &Path, s: &CheckSettings) -> String {
    let dir = crate::layout::absolute(dir, cwd);
    // `Err`: a file there that cannot be read, which the suggested run would fail on unless
    // told which file to read (or none).
    let found = match crate::config::load(None, "--config", false, &dir, &mut Vec::new()) {
        Ok(crate::config::Source::File(c)) => Ok(Some(crate::layout::absolute(&c.path, &dir))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    };
    let same = |a: &Path, b: &Path| {
        a == b
            || std::fs::canonicalize(a).ok().zip(std::fs::canonicalize(b).ok()).is_some_and(|(a, b)| a == b)
    };
    match (&s.config_in_effect, &found) {
        (Some(used), Ok(Some(there))) if same(used, there) => String::new(),
        (Some(used), _) => {
            // Relative to `dir` when below it (`..` resolved: `svc/..` is the top).
            let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            let named =
                real(used).strip_prefix(real(&dir)).map(Path::to_path_buf).unwrap_or_else(|_| used.clone());
            format!(" --config {}", report::shell_path(&named))
        }
        (None, Ok(None)) => String::new(),
        (None, _) => " --no-config".to_string(),
    }
}

fn spelling_hint(
    findings: &[Finding],
    cwd: &Path,
    embed: &crate::embed::Embed,
    roots: &[PathBuf],
    config_flag: &dyn Fn(&Path) -> String,
) -> Option<String> {
    // The stale pycs whose embedded path alone is wrong; and whether each embeds its
    // source's absolute path: what CPython's import writes when it rewrites a pyc whose
    // source changed (its path is the `sys.path` entry's, absolute), though no compile
    // ran. A pyc stale by its source (another target's, beside one the import rewrote) has
    // its own reason and takes no hint away from these.
    // Another path to the same file (a directory reached through a symbolic link) is told
    // by the directories the two paths differ in, each resolved once (however many pycs
    // are under it).
    let mut canonical = std::collections::HashMap::<PathBuf, Option<PathBuf>>::new();
    let mut resolve = |dir: &Path| {
        canonical
            .entry(crate::layout::absolute(dir, cwd))
            .or_insert_with_key(|abs| std::fs::canonicalize(abs).ok())
            .clone()
    };
    let spelled: Vec<Spelled> = findings
        .iter()
        .filter(|f| f.outcome == Outcome::Stale)
        .filter_map(|f| Some((f, f.embedded.as_ref()?)))
        .map(|(f, (found, want))| {
            let same = crate::layout::absolute(found, cwd) == crate::layout::absolute(want, cwd);
            let linked = if same {
                None
            } else {
                differing_dirs(found, want).filter(|(a, b)| {
                    let a = resolve(a);
                    a.is_some() && a == resolve(b)
                })
            };
            (found, want, same, linked, &f.path)
        })
        .collect();
    // Pycs the import rewrote: said of them, whatever the other findings.
    let rewritten: Vec<_> = spelled.iter().filter(|s| s.2 && s.0.is_absolute()).collect();
    if let Some((found, want, ..)) = rewritten.first() {
        let n = rewritten.len();
        let stale = report::plural(n, "stale pyc", "stale pycs");
        let (s, its, it) = if n == 1 { ("s", "its", "it") } else { ("", "their", "them") };
        let (found, want) = (report::ticked(found), report::ticked(want));
        // A compile given the absolute path wrote them if every stale pyc is one of these:
        // checking the tree by that path (which writes nothing) is then the other way out.
        let all = rewritten.len() == findings.iter().filter(|f| f.outcome == Outcome::Stale).count();
        let as_written = match named_when_compiled(&rewritten, roots).filter(|_| all && embed.is_identity()) {
            Some(named) => format!("`{}` checks {it} as written, ", check_command(&named)),
            None => String::new(),
        };
        return Some(format!(
            "{stale} embed{s} another spelling of {its} source path ({found} for {want}): the \
             absolute path, which CPython's import writes when it rewrites a pyc whose source \
             changed (as does a compile given the absolute path); {as_written}`hashpyc compile` \
             as named here writes {it} again"
        ));
    }
    // Pycs written through a symbolic link to a directory of the tree (a venv compiled as
    // `v`, which walks `v/lib`, checked as `v/lib64`): said of them, whatever the other
    // findings, as those are the same files.
    let linked: Vec<_> = spelled.iter().filter_map(|s| Some((s.0, s.1, s.3.as_ref()?))).collect();
    if let Some((found, want, (through, named))) = linked.first() {
        let n = linked.len();
        let stale = report::plural(n, "stale pyc", "stale pycs");
        let (s, its, it) = if n == 1 { ("s", "its", "it") } else { ("", "their", "them") };
        let dir =
            |d: &Path| report::ticked(if d.as_os_str().is_empty() { Path::new(".") } else { d }).to_string();
        return Some(format!(
            "{stale} embed{s} {its} source path through another name of a directory ({} for \
             {}): {} and {} are one directory, through a symbolic link, and the compile (or \
             the import) that wrote {it} named it {}: check the tree as {}, or run `hashpyc \
             compile` on it as named here to rewrite {it}",
            report::ticked(found),
            report::ticked(want),
            dir(through),
            dir(named),
            dir(through),
            dir(through),
        ));
    }
    // The tree compiled under another name: only when every stale pyc is stale for its
    // embedded path alone (a source edited since is not explained by a name).
    if spelled.len() != findings.iter().filter(|f| f.outcome == Outcome::Stale).count() {
        return None;
    }
    let (example_found, example_want, ..) = spelled.first()?;
    // Stale pycs compiled from one directory above this one, if all are.
    // A pyc whose path differs by its spelling alone (`m.py` for `./m.py`) was not compiled
    // from there: with such pycs beside them, the generic hint below.
    // Else, stale pycs all written without the embedded-path options in effect, or with
    // another prepend prefix: said so.
    let mut above: Option<PathBuf> = None;
    for (found, want, ..) in spelled.iter().filter(|s| !s.2) {
        match compiled_from(found, want, cwd, embed) {
            Some(from) if above.get_or_insert_with(|| from.clone()) == &from => {}
            _ => return embed_hint(&spelled.iter().filter(|s| !s.2).collect::<Vec<_>>(), embed),
        }
    }
    if spelled.iter().any(|s| s.2) {
        above = None;
    }
    let n = spelled.len();
    let stale = report::plural(n, "stale pyc", "stale pycs");
    let (s, its, it) = if n == 1 { ("s", "its", "it") } else { ("", "their", "them") };
    let (found, want) = (report::ticked(example_found), report::ticked(example_want));
    // The read-only way out first (an image's tree, a CI cache): check the tree as the
    // compile named it, which writes nothing.
    let named = if embed.is_identity() {
        named_when_compiled(&spelled.iter().collect::<Vec<_>>(), roots)
    } else {
        None
    };
    if let Some(dir) = above {
        let flag = config_flag(&dir);
        // One line to paste, the directory shell-quoted as the paths are.
        let cd = cd_command(&dir);
        let dir = report::ticked(&dir);
        let check = match &named {
            Some(named) => format!("`{cd} && {}{flag}`", check_command(named)),
            None => format!("`{cd} && hashpyc check{flag}`"),
        };
        return Some(format!(
            "{stale} embed{s} {its} source path as spelled from {dir} ({found} for {want}), \
             where the compile that wrote {it} ran: {check} checks {it} as written (writing \
             nothing), or `hashpyc compile` here rewrites {it}",
        ));
    }
    let check = match &named {
        Some(named) => format!(" (`{}`)", check_command(named)),
        None => String::new(),
    };
    Some(format!(
        "{stale} embed{s} another spelling of {its} source path ({found} for {want}): name \
         the tree as the compile that wrote {it} did{check}, or `hashpyc compile` it as named \
         here to rewrite {it}"
    ))
}

/// The detail of a pyc that could not be read: its path (the source's is the finding's;
/// not a path over the kernel's limit),
/// and, when permission was denied by a directory the user cannot search (a root-owned
/// `__pycache__` of mode 0700, checked as another user), that directory.
fn unreadable_pyc(pyc: &Path, e: &std::io::Error) -> String {
    // A path over the kernel's limit is not worth repeating (its advice says so).
    if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
        return format!("pyc: {}", io_reason(e));
    }
    let mut detail = format!("pyc {}: {}", report::ticked(pyc), io_reason(e));
    if e.kind() == std::io::ErrorKind::PermissionDenied
        && let Some(dir) = pyc.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes())
        // SAFETY: `c` is a NUL-terminated path; access reads it and nothing else.
        && unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0
    {
        detail.push_str(&format!(" (its directory {} cannot be searched)", report::ticked(dir)));
    }
    detail
}

/// The CPython version a cache tag names (`cpython-312`: 3.12).
fn tag_version(tag: &str) -> Option<(u32, u32)> {
    let (major, minor) = tag.strip_prefix("cpython-")?.split_at_checked(1)?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn wrong_version_hint(findings: &[Finding], targets: &[Arc<Target>]) -> Option<String> {
    // The missing pycs, by directory and module name: only a pyc of another version for
    // one of those same modules says "wrong interpreter" (not a file that fails to compile
    // beside others compiled for both, nor unrelated pycs in the same directory), at the
    // same optimization level (not every level the other version was compiled at).
    // A pyc missing because its source does not compile for this version (remembered by the
    // state directory) is no sign of the wrong interpreter: new syntax compiled by another.
    let missing_pyc = |f: &&Finding| f.outcome == Outcome::Missing && f.source_fails.is_none();
    let mut wanted = std::collections::BTreeMap::<&Path, std::collections::BTreeSet<(&[u8], u8)>>::new();
    for f in findings.iter().filter(missing_pyc) {
        if let (Some(dir), Some(name)) = (f.pyc.parent(), f.pyc.file_name())
            && let Some((stem, _, level)) = pyc_parts(name.as_bytes())
        {
            wanted.entry(dir).or_default().insert((stem, level));
        }
    }
    let ours: Vec<&str> = targets.iter().map(|t| t.cache_tag.as_str()).collect();
    // Named: only the targets whose pycs are missing, not those whose pycs are all there.
    let lacking: Vec<Arc<Target>> = targets
        .iter()
        .enumerate()
        .filter(|(i, _)| findings.iter().filter(missing_pyc).any(|f| f.target == *i))
        .map(|(_, t)| Arc::clone(t))
        .collect();
    let lacking_tags: Vec<&str> = lacking.iter().map(|t| t.cache_tag.as_str()).collect();
    let mut foreign = std::collections::BTreeMap::<String, usize>::new();
    // By tag, the modules with a pyc of that tag: with none of ours (missing here), and
    // with one of ours too (this interpreter compiled them: one that is missing beside
    // them, without state to say why, is more likely a source it does not compile).
    let mut modules = std::collections::BTreeMap::<String, (usize, usize)>::new();
    // Every directory with a missing pyc, each listed once.
    for (dir, stems) in wanted {
        let names: Vec<_> = names_in(dir).collect();
        let parts: Vec<(&[u8], &str, u8)> = names.iter().filter_map(|n| pyc_parts(n.as_bytes())).collect();
        // The modules a target whose pycs are missing compiled (another target's pycs
        // beside them say nothing about this one).
        let have_ours: std::collections::BTreeSet<&[u8]> =
            parts.iter().filter(|(_, tag, _)| lacking_tags.contains(tag)).map(|(stem, ..)| *stem).collect();
        let missing_stems: std::collections::HashSet<&[u8]> = stems.iter().map(|(s, _)| *s).collect();
        let missing_here = |stem: &[u8]| missing_stems.contains(stem);
        let mut seen = std::collections::BTreeSet::new();
        for &(stem, tag, level) in &parts {
            // A Python before 3.7 is no interpreter to suggest: hashpyc refuses it.
            if ours.contains(&tag) || tag_version(tag).is_some_and(|v| v < (3, 7)) {
                continue;
            }
            if stems.contains(&(stem, level)) {
                *foreign.entry(tag.to_string()).or_default() += 1;
            }
            if seen.insert((stem, tag)) && (missing_here(stem) || have_ours.contains(stem)) {
                let m = modules.entry(tag.to_string()).or_default();
                if have_ours.contains(stem) {
                    m.1 += 1;
                } else {
                    m.0 += 1;
                }
            }
        }
    }
    // "Wrong interpreter" only where this one's pycs are missing for nine in ten or more of
    // the modules that have the other's (never for one new-syntax module among many).
    foreign.retain(|tag, _| modules.get(tag).is_some_and(|&(only, both)| only > 0 && only >= 9 * both));
    let (tag, n) = foreign.iter().max_by_key(|(_, n)| **n)?;
    let missing = findings.iter().filter(missing_pyc).count();
    let version = tag_version(tag).map(|(major, minor)| format!("{major}.{minor}"));
    // Checked against the built-in table (`--target`): suggest the same flag.
    let table =
        targets.iter().all(|t| t.executable.as_os_str().as_encoded_bytes().starts_with(b"(built-in table"));
    // `--target` checks without an interpreter, so it works where `python3.X` is not on
    // PATH (a pyenv version not activated).
    let suggestion = match (&version, table) {
        (Some(v), true) => format!("`--target {v}`"),
        (Some(v), false) => format!("`--python python{v}` (or `--target {v}`, which needs no interpreter)"),
        (None, _) => "`another interpreter`".into(),
    };
    let others = if foreign.len() > 1 {
        format!(
            " (and pycs of {})",
            foreign.keys().filter(|k| *k != tag).cloned().collect::<Vec<_>>().join(", ")
        )
    } else {
        String::new()
    };
    Some(format!(
        "{} missing for {}, but {} there{others}: did you mean {suggestion}?",
        report::plural(missing, "pyc is", "pycs are"),
        crate::target::targets_label(&lacking),
        if *n == 1 { format!("1 {tag} pyc is") } else { format!("{n} {tag} pycs are") },
    ))
}

/// The module name, cache tag and optimization level of a `__pycache__` file name:
/// `mod.cpython-311.pyc` gives `mod`, `cpython-311` and 0, `mod.cpython-311.opt-1.pyc` 1.
fn pyc_parts(name: &[u8]) -> Option<(&[u8], &str, u8)> {
    let (stem, tag, level) = crate::layout::cache_name_parts(name)?;
    let tag = std::str::from_utf8(tag).ok()?;
    tag.contains('-').then_some((stem, tag, level))
}

fn header_view(h: &Header) -> HeaderView {
    // Before 3.7 the word after the magic is a modification time (odd or not), no flags.
    if crate::target::before_pep552(h.magic) {
        return HeaderView { magic: h.magic.to_string(), flags: None, hash: None };
    }
    let (flags, hash) = match h.kind() {
        Ok(Kind::Hash { hash, .. }) => (Some(h.flags), Some(pyc::hex(&hash))),
        _ => (Some(h.flags), None),
    };
    HeaderView { magic: h.magic.to_string(), flags, hash }
}

/// Every target and level of one source: the number that are ok, and the findings to
/// print (all of them with `--all`). A Finding is only built when it will be printed.
/// `embedded` is the path the pycs must embed (`co_filename`), as `compile` derives it.
fn check_source(path: &Path, embedded: &Path, s: &CheckSettings, cwd: &Path) -> (usize, Vec<Finding>) {
    let paths = PycPaths { targets: &s.targets, layouts: &s.layouts, levels: &s.levels, cwd };
    let name = marshal::filename_bytes(embedded.as_os_str().as_bytes());
    let want = Want { name: &name, path: embedded, hash: crate::verified::name_hash(&name) };
    let mut ok = 0;
    let mut out = Vec::new();
    crate::plan::SOURCE_BUF.with_borrow_mut(|buf| {
        // With the source's mode: a fresh pyc more readable than its source is `stale`.
        let mut source = crate::plan::LazySource::with_mode(path, buf);
        for (t, target) in s.targets.iter().enumerate() {
            for (i, pyc_path) in paths.of(path, t).into_iter().enumerate() {
                let mut pyc_error = None;
                let mut pyc_mode = 0;
                let (outcome, found, detail, embedded) = crate::plan::PYC_BUF.with_borrow_mut(|data| {
                    let read = crate::plan::read_pyc_into(&pyc_path, data, target.magic, want.hash).map(
                        |(read, meta)| {
                            pyc_mode = meta.mode;
                            read
                        },
                    );
                    let (outcome, detail, embedded) = match read {
                        Err(e)
                            if e.kind() == std::io::ErrorKind::NotFound
                                || e.kind() == std::io::ErrorKind::NotADirectory =>
                        {
                            // A source that cannot be read is `unreadable`, with the reason
                            // `compile` gives, whether or not its pyc is there. A pyc whose
                            // name is over NAME_MAX is not found when its directory is missing
                            // (the directory is looked up first), yet no compile writes it:
                            // named as when the directory is there (ENAMETOOLONG).
                            match source.hash(target) {
                                Ok(_)
                                    if e.kind() == std::io::ErrorKind::NotFound
                                        && pyc_path
                                            .file_name()
                                            .is_some_and(|n| n.as_bytes().len() > crate::write::NAME_MAX) =>
                                {
                                    let e = std::io::Error::from_raw_os_error(libc::ENAMETOOLONG);
                                    pyc_error = Some(e.kind());
                                    (Outcome::Unreadable, Some(format!("pyc: {}", io_reason(&e))), None)
                                }
                                Ok(_) => (Outcome::Missing, None, None),
                                Err(e) => (Outcome::Unreadable, Some(format!("source: {e}")), None),
                            }
                        }
                        // A pyc denied under a directory that cannot be searched has a source
                        // that cannot be read either: that is the finding, as `compile` says.
                        Err(e) => match (e.kind() == std::io::ErrorKind::PermissionDenied)
                            .then(|| source.hash(target).err())
                            .flatten()
                        {
                            Some(why) => (Outcome::Unreadable, Some(format!("source: {why}")), None),
                            None => {
                                pyc_error = Some(e.kind());
                                (Outcome::Unreadable, Some(unreadable_pyc(&pyc_path, &e)), None)
                            }
                        },
                        Ok(read) => {
                            classify_pyc(data, read, target, s.accept, &want, &mut || source.hash(target))
                        }
                    };
                    let found = match outcome {
                        Outcome::Unreadable | Outcome::Missing => None,
                        _ => Header::parse(data).map(|h| header_view(&h)),
                    };
                    (outcome, found, detail, embedded)
                });
                // Fresh, but readable by users who may not read its source (made private
                // since): `compile` writes it again with the source's mode.
                let (outcome, detail) = match source.mode().and_then(|m| crate::plan::exposed(pyc_mode, m)) {
                    Some(exposed) if outcome == Outcome::Ok => (Outcome::Stale, Some(exposed.to_string())),
                    _ => (outcome, detail),
                };
                if outcome == Outcome::Ok {
                    ok += 1;
                    if !s.all {
                        continue;
                    }
                }
                // What `compile` would write there it refuses to write over a symbolic link
                // (see `plan::refusal`): the finding says so, since compiling will not fix it.
                let kind = (outcome != Outcome::Ok)
                    .then(|| std::fs::symlink_metadata(&pyc_path).ok().map(|m| m.file_type()))
                    .flatten();
                let symlink = kind.is_some_and(|t| t.is_symlink());
                let not_regular = kind.is_some_and(|t| !t.is_symlink() && !t.is_file());
                let source_unreadable = outcome == Outcome::Unreadable
                    && detail.as_deref().is_some_and(|d| d.starts_with("source: "));
                // A `__pycache__` that is a dangling symbolic link or a loop: named as `compile`
                // names it (which cannot create the directory there either).
                let broken = matches!(outcome, Outcome::Missing | Outcome::Unreadable)
                    .then(|| {
                        let dir = pyc_path.parent().filter(|p| !p.as_os_str().is_empty())?;
                        crate::write::broken_link(dir).map(|why| (dir.to_path_buf(), why.to_string()))
                    })
                    .flatten();
                let not_a_dir = match &broken {
                    Some((dir, _)) => Some(dir.clone()),
                    None => (outcome == Outcome::Missing).then(|| not_a_directory(&pyc_path)).flatten(),
                };
                let detail = match (detail, symlink, &not_a_dir) {
                    _ if let Some((dir, why)) = &broken => Some(format!("{} is {why}", report::ticked(dir))),
                    (None, false, Some(dir)) => Some(format!("{} is not a directory", report::ticked(dir))),
                    (d, false, _) => d,
                    (None, true, _) => Some(SYMLINK_DETAIL.to_string()),
                    (Some(d), true, _) => Some(format!("{d}; {SYMLINK_DETAIL}")),
                };
                let expected = (outcome != Outcome::Unreadable).then(|| HeaderView {
                    magic: target.magic.to_string(),
                    flags: match s.accept {
                        Accept::Only(m) => Some(m.flags()),
                        Accept::AnyHash => None,
                    },
                    hash: source.hash(target).ok().map(|h| pyc::hex(&h)),
                });
                out.push(Finding {
                    kind: "finding",
                    path: path.to_path_buf(),
                    pyc: pyc_path,
                    outcome,
                    python: format!("{}.{}", target.version.0, target.version.1),
                    implementation: None,
                    target: t,
                    optimization: s.levels[i],
                    detail,
                    expected,
                    found,
                    embedded,
                    source_fails: None,
                    symlink,
                    not_regular,
                    source_unreadable,
                    not_a_dir,
                    pyc_error,
                });
            }
        }
    });
    (ok, out)
}

/// For a missing pyc: the directory of its path that is something else (a `__pycache__`
/// that is a file), where `compile` cannot create the pyc; one `stat` when its directory is
/// there.
fn not_a_directory(pyc_path: &Path) -> Option<PathBuf> {
    let parent = pyc_path.parent().filter(|p| !p.as_os_str().is_empty())?;
    if std::fs::metadata(parent).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    let mut dirs: Vec<&Path> = parent.ancestors().filter(|p| !p.as_os_str().is_empty()).collect();
    dirs.reverse();
    dirs.into_iter().find(|d| std::fs::metadata(d).is_ok_and(|m| !m.is_dir())).map(Path::to_path_buf)
}

/// A finding's reason when its pyc is a symbolic link.
const SYMLINK_DETAIL: &str = "the pyc is a symbolic link, which `hashpyc compile` refuses to write through";

fn describe_magic(head: &[u8], target: &Target) -> String {
    match Header::parse(head) {
        Some(h) => crate::target::other_magic(h.magic, target),
        None => Invalid::Short.to_string(),
    }
}

/// The embedded path a pyc must hold: as marshal stores it, and as shown.
struct Want<'a> {
    name: &'a [u8],
    path: &'a Path,
    /// [`crate::verified::name_hash`] of `name`.
    hash: u64,
}

/// One pyc's outcome, and why when it is invalid, unreadable, or stale for its embedded
/// path or its trailing bytes. A pyc whose header would be accepted must also have a body
/// that loads: a code object (a truncated or garbage body fails the import), whose
/// `co_filename` is the path `compile` would embed and after which nothing follows (else
/// `compile` recompiles it).
fn classify_pyc(
    data: &[u8],
    read: crate::verified::PycRead,
    target: &Target,
    accept: Accept,
    want: &Want<'_>,
    get_hash: &mut impl FnMut() -> Result<pyc::SourceHash, String>,
) -> (Outcome, Option<String>, Option<(PathBuf, PathBuf)>) {
    let mut hash_err = None;
    let status = pyc::classify(data, target.magic, accept, || match get_hash() {
        Ok(h) => h,
        Err(e) => {
            hash_err = Some(e);
            [0; 8]
        }
    });
    if let Some(e) = hash_err {
        return (Outcome::Unreadable, Some(format!("source: {e}")), None);
    }
    let outcome = match status {
        Status::Fresh => Outcome::Ok,
        Status::Stale => return (Outcome::Stale, None, None),
        Status::Timestamp => return (Outcome::Timestamp, None, None),
        Status::WrongMode(HashMode::Unchecked) => Outcome::Unchecked,
        Status::WrongMode(HashMode::Checked) => Outcome::Checked,
        Status::Invalid(Invalid::Magic) => {
            return (Outcome::Invalid, Some(describe_magic(data, target)), None);
        }
        // Which bits, as importlib says (`invalid flags 4`).
        Status::Invalid(Invalid::Flags) if let Some(h) = Header::parse(data) => {
            return (Outcome::Invalid, Some(format!("{} (flags {})", Invalid::Flags, h.flags)), None);
        }
        Status::Invalid(why) => return (Outcome::Invalid, Some(why.to_string()), None),
    };
    // An earlier run found this very file's body good, with this embedded path.
    let crate::verified::PycRead::Whole(stamp, unread) = read else { return (outcome, None, None) };
    let body = match marshal::code_body(&data[pyc::HEADER_LEN..], crate::plan::target_layout(target)) {
        Ok(body) => body,
        Err(e) => return (Outcome::Invalid, Some(format!("body: {e}")), None),
    };
    // Bytes after the code object: CPython loads the pyc (marshal.loads ignores them), so
    // it is not invalid, but it is not what `compile` writes, which rewrites it: stale.
    let trailing = body.trailing as u64 + unread;
    let trailing = (trailing > 0).then(|| crate::plan::trailing_bytes(trailing));
    if body.filename == want.name {
        return match trailing {
            Some(detail) => (Outcome::Stale, Some(detail), None),
            None => {
                if let Some(stamp) = stamp {
                    crate::verified::record(target.magic, stamp);
                }
                (outcome, None, None)
            }
        };
    }
    let found = PathBuf::from(std::ffi::OsString::from_vec(marshal::path_from_filename(body.filename)));
    let mut detail =
        format!("embedded path is {}, expected {}", report::ticked(&found), report::ticked(want.path));
    match trailing {
        Some(t) => {
            // Naming the tree as it was compiled would not make it ok: no spelling hint.
            detail.push_str(&format!("; {t}"));
            (Outcome::Stale, Some(detail), None)
        }
        None => (Outcome::Stale, Some(detail), Some((found, want.path.to_path_buf()))),
    }
}

/// Whether `source` is gone (None when it is there): absent, a symbolic link that leads
/// nowhere, or something else than a regular file (a directory, a FIFO), which no import
/// reads either (then why, as the finding's detail).
fn source_gone(source: &Path) -> Option<Option<String>> {
    let Ok(own) = std::fs::symlink_metadata(source) else { return Some(None) };
    let linked = own.file_type().is_symlink();
    if linked && let Some(broken) = crate::write::broken_link(source) {
        return Some(Some(format!("{} is {broken}", report::ticked(source))));
    }
    // A stat that fails otherwise (EACCES, EIO) proves nothing: the source is there.
    let meta = if linked { std::fs::metadata(source).ok()? } else { own };
    if meta.is_file() {
        return None;
    }
    let what = if meta.is_dir() { "a directory" } else { crate::walk::special_kind(meta.file_type()) };
    let linked = if linked { "a symbolic link to " } else { "" };
    Some(Some(format!("{} is {linked}{what}", report::ticked(source))))
}

/// Why a pyc whose source `source` is gone may look as if it had one: a file of the same
/// name in another Unicode normalization form is there (`café.py` in NFD, as a copy from
/// macOS writes it, beside a pyc named in NFC), which is another name to CPython, so it
/// never reads this pyc for it.
fn look_alike(source: &Path) -> Option<String> {
    let other = crate::walk::normalized_exists(source)?;
    Some(format!(
        "{} is there, the same name in another Unicode form ({} there, {} in this pyc's name), which CPython \
         takes for another name: it never reads this pyc for it",
        report::ticked(&other),
        crate::walk::unicode_form(&other),
        crate::walk::unicode_form(source),
    ))
}

/// A stray finding for `pyc_path`, whose source `dir/<stem>.py` is gone (None when it
/// exists, or when `dir/<other>.py` does).
fn stray(
    pyc_path: &Path,
    dir: &Path,
    (stem, other): (&[u8], Option<&[u8]>),
    tag: &[u8],
    level: u8,
    targets: &[Arc<Target>],
) -> Option<Finding> {
    let source = dir.join(source_name(stem));
    let detail = source_gone(&source)?.or_else(|| look_alike(&source));
    if other.is_some_and(|o| source_gone(&dir.join(source_name(o))).is_none()) {
        return None;
    }
    let target = targets.iter().position(|t| t.cache_tag.as_bytes() == tag);
    Some(stray_finding(source, pyc_path.to_path_buf(), (tag, target, targets), level, detail))
}

/// A `stray` finding: `pyc`, whose source `source` is gone (`detail`: why, when there is
/// more to say), named with interpreter tag `tag` (empty for none), for target `target`
/// among `targets` (None for none: then for the Python its tag, or else its magic number,
/// names); `found` is its header.
fn stray_finding(
    source: PathBuf,
    pyc: PathBuf,
    (tag, target, targets): (&[u8], Option<usize>, &[Arc<Target>]),
    optimization: u8,
    detail: Option<String>,
) -> Finding {
    let header = read_header(&pyc);
    let (python, implementation) = match target {
        Some(i) => (format!("{}.{}", targets[i].version.0, targets[i].version.1), None),
        None => tag_python(tag)
            .or_else(|| {
                let (a, b) = crate::target::version_of_magic(header.as_ref()?.magic)?;
                Some((format!("{a}.{b}"), None))
            })
            .unwrap_or_default(),
    };
    Finding {
        kind: "finding",
        path: source,
        pyc,
        outcome: Outcome::Stray,
        python,
        implementation,
        target: target.unwrap_or(targets.len()),
        optimization,
        detail,
        expected: None,
        found: header.as_ref().map(header_view),
        embedded: None,
        source_fails: None,
        symlink: false,
        not_regular: false,
        source_unreadable: false,
        not_a_dir: None,
        pyc_error: None,
    }
}

/// The header of the file `pyc`, when it is a regular file of 16 bytes or more.
fn read_header(pyc: &Path) -> Option<Header> {
    let mut head = Vec::new();
    let mut file = crate::io::open_regular(pyc).ok()?;
    crate::io::read_up_to(&mut file, &mut head, pyc::HEADER_LEN).ok()?;
    Header::parse(&head)
}

/// The index of the target whose magic number begins the file `pyc`, if any.
fn target_by_magic(pyc: &Path, targets: &[Arc<Target>]) -> Option<usize> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = crate::io::open_nonblocking(pyc).and_then(|mut f| f.read_exact(&mut magic));
    read.ok().and_then(|()| targets.iter().position(|t| t.magic.0 == magic))
}

/// Why a stray in a `__pycache__` that is a symbolic link may not be one.
const SHARED_STRAY: &str =
    "which other directories may share: the pyc may be the source's of one not checked";

/// Why a temporary file of a pyc is a stray.
const TEMP_STRAY: &str =
    "temporary file of a write that did not finish (a run was killed, or one is writing it now)";

/// A stray finding for `temp` when it is a temporary file of a pyc (named as
/// [`crate::write::temp_target`] tells), whose source would be in `dir`: a write killed
/// before its rename left it, whether or not the source exists. Only a report: a run
/// writing it at this moment is not disturbed.
fn temp_stray(temp: &Path, dir: &Path, targets: &[Arc<Target>]) -> Option<Finding> {
    let pyc_name = crate::write::temp_target(temp.file_name()?.as_bytes())?;
    // `m.cpython-312.pyc`, or a legacy `m.pyc`.
    let (stem, tag, level) = crate::layout::cache_name_parts(pyc_name).unwrap_or((
        pyc_name.strip_suffix(b".pyc").unwrap_or(pyc_name),
        b"",
        0,
    ));
    let mut source_name = stem.to_vec();
    source_name.extend_from_slice(b".py");
    let target =
        targets.iter().position(|t| t.cache_tag.as_bytes() == tag).or_else(|| target_by_magic(temp, targets));
    Some(stray_finding(
        dir.join(std::ffi::OsStr::from_bytes(&source_name)),
        temp.to_path_buf(),
        (tag, target, targets),
        level,
        Some(TEMP_STRAY.into()),
    ))
}

/// `<stem>.py`, a source's file name.
fn source_name(stem: &[u8]) -> std::ffi::OsString {
    let mut name = stem.to_vec();
    name.extend_from_slice(b".py");
    std::ffi::OsString::from_vec(name)
}

/// The source a pyc named `name` belongs to (see [`crate::layout::pyc_source`]), the
/// checked interpreters' tags being `compile`'s.
fn pycache_source<'a>(name: &'a [u8], targets: &[Arc<Target>]) -> Option<crate::layout::PycSource<'a>> {
    crate::layout::pyc_source(name, |tag| targets.iter().any(|t| t.cache_tag.as_bytes() == tag))
}

/// pycs in `__pycache__` whose `<stem>.py` no longer exists beside the directory, and
/// temporary files of pycs there. A
/// `__pycache__` that is a symbolic link may be shared by several directories (`linked`:
/// those of the walk whose `__pycache__` is one): a pyc in it is stray only when none of
/// the directories of this walk sharing it (by identity) holds its source; the finding
/// says the directory is shared, as one not walked may hold it.
fn strays(pycs: &[PathBuf], linked: &[PathBuf], targets: &[Arc<Target>]) -> Vec<Finding> {
    let mut sharing: std::collections::HashMap<(u64, u64), Vec<&Path>> = Default::default();
    for dir in linked {
        if let Some(id) = crate::walk::dir_id(&dir.join("__pycache__")) {
            sharing.entry(id).or_default().push(dir);
        }
    }
    let mut out = Vec::new();
    for pyc_path in pycs {
        let Some(name) = pyc_path.file_name().map(|n| n.as_bytes()) else {
            continue;
        };
        let Some(dir) = pyc_path.parent().and_then(Path::parent) else {
            continue;
        };
        if let Some(f) = temp_stray(pyc_path, dir, targets) {
            out.push(f);
            continue;
        }
        let Some((stem, tag, level, other)) = pycache_source(name, targets) else {
            continue;
        };
        let Some(mut finding) = stray(pyc_path, dir, (stem, other), tag, level, targets) else { continue };
        let pycache = pyc_path.parent().unwrap_or(Path::new(""));
        if std::fs::symlink_metadata(pycache).is_ok_and(|m| m.file_type().is_symlink()) {
            let others = crate::walk::dir_id(pycache).and_then(|id| sharing.get(&id));
            let there = |d: &Path| {
                [Some(stem), other]
                    .into_iter()
                    .flatten()
                    .any(|s| source_gone(&d.join(source_name(s))).is_none())
            };
            if others.is_some_and(|o| o.iter().any(|d| *d != dir && there(d))) {
                continue;
            }
            let shared = format!("{} is a symbolic link, {SHARED_STRAY}", report::ticked(pycache));
            finding.detail = Some(finding.detail.map_or(shared.clone(), |d| format!("{d}; {shared}")));
        }
        out.push(finding);
    }
    out
}

/// pycs in a `--pycache-prefix` tree whose source is gone: only in the mirrors of the
/// directories walked (`dirs`: the tree may hold pycs of any directory on the machine),
/// as `__pycache__` directories are searched in the tree itself, so that the selection
/// rules (`--exclude`, ignore files, `--skip-hidden`, `--max-depth`, `-l`) give the same
/// strays with or without a prefix; and below them, in the mirrors of directories since
/// deleted that the walk would enter. Any interpreter's or tool's pyc whose source is gone,
/// as in `__pycache__` ([`pycache_source`]: a prefix is shared by every interpreter that
/// uses it); a pyc is reported once, however many roots reach it.
fn prefix_strays(
    s: &CheckSettings,
    dirs: &[(PathBuf, usize)],
    cwd: &Path,
    errors: &mut Vec<crate::walk::WalkError>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (mut prefixes, mut seen) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    // A directory's pycs are searched when its sources are walked (as `walk` lists a
    // `__pycache__`).
    let searched = |depth: usize| s.walk.max_depth.is_none_or(|m| depth < m);
    let mut gone_rules = crate::walk::GoneDirRules::new(&s.walk);
    for layout in &s.layouts {
        let crate::layout::Layout::Prefix(prefix) = layout else { continue };
        if !prefixes.insert(prefix) {
            continue;
        }
        for (dir, depth) in dirs.iter().filter(|(_, depth)| searched(*depth)) {
            let abs = crate::layout::absolute(dir, cwd);
            let mirror = prefix.join(abs.strip_prefix("/").unwrap_or(&abs));
            // (directory in the mirror, the same directory as the sources are spelled, depth)
            let mut stack = vec![(mirror, dir.clone(), *depth)];
            while let Some((dir, source_dir, depth)) = stack.pop() {
                // A mirror directory that cannot be listed hides its strays: an error
                // naming it (none for one that does not exist: nothing to list).
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) => {
                        errors.extend(crate::walk::unlistable(&dir, e).filter(|_| seen.insert(dir.clone())));
                        continue;
                    }
                };
                for e in entries.filter_map(Result::ok) {
                    let path = e.path();
                    let Ok(kind) = e.file_type() else { continue };
                    if kind.is_dir() {
                        // A directory that exists is searched from its own entry in `dirs`
                        // if the walk entered it; one since deleted, if the walk would.
                        let source = source_dir.join(e.file_name());
                        if searched(depth + 1)
                            && std::fs::symlink_metadata(&source).is_err()
                            && gone_rules.would_walk(&source)
                        {
                            stack.push((path, source, depth + 1));
                        }
                        continue;
                    }
                    let name = e.file_name();
                    if let Some(f) = temp_stray(&path, &source_dir, &s.targets) {
                        if seen.insert(path.clone()) {
                            out.push(f);
                        }
                        continue;
                    }
                    // Any interpreter's or tool's pyc, as in `__pycache__` (see `strays`).
                    let Some((stem, tag, level, other)) = pycache_source(name.as_bytes(), &s.targets) else {
                        continue;
                    };
                    if !seen.insert(path.clone()) {
                        continue;
                    }
                    out.extend(stray(&path, &source_dir, (stem, other), tag, level, &s.targets));
                }
            }
        }
    }
    out
}

/// `--legacy` pycs (`X.pyc` beside where `X.py` would be) with no source: Python imports
/// such a file as a sourceless module, so a stale one runs old code. Only pycs whose magic
/// number is a checked interpreter's count (other `.pyc` files are not this run's).
fn legacy_strays(pycs: &[PathBuf], targets: &[Arc<Target>]) -> Vec<Finding> {
    let mut out = Vec::new();
    for pyc_path in pycs {
        if let Some(f) = temp_stray(pyc_path, pyc_path.parent().unwrap_or(Path::new("")), targets) {
            out.push(f);
            continue;
        }
        let mut source = pyc_path.as_os_str().to_owned();
        let Some(stem) = source.as_bytes().strip_suffix(b"c") else { continue };
        source = std::ffi::OsStr::from_bytes(stem).to_owned();
        let source = PathBuf::from(source);
        let Some(detail) = source_gone(&source) else { continue };
        let Some(index) = target_by_magic(pyc_path, targets) else { continue };
        out.push(stray_finding(source, pyc_path.clone(), (b"", Some(index), targets), 0, detail));
    }
    out
}

/// A workflow command's message as GitHub reads it (`%`, CR and LF encoded); any other
/// character a terminal or a log view would act on (an escape sequence a source's string
/// holds, a bidi override in a name) written as [`report::printable`] writes it.
pub(crate) fn escape_data(s: &str) -> String {
    let s = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    report::printable(&s).into_owned()
}

/// A workflow command's property (`file`, `title`) as GitHub reads it: `%`, CR, LF, `:` and
/// `,` encoded, and so, in the same encoding (`%1B`), is any other character
/// [`report::printable`] escapes (an escape sequence or a bidi override in a file's name):
/// one escape for the whole value, never a `\u{1b}` among `%3A`s.
pub(crate) fn escape_property(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '\r' | '\n' | ':' | ',') || (c != '\t' && report::escaped(c)) {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A GitHub Actions workflow command.
/// The directory of a finding's pyc, when `compile` could not write a pyc there: what it
/// would do there (`write in`, `create`) and why.
fn unwritable_dir(f: &Finding) -> Option<(&Path, &'static str, String)> {
    use crate::compile::DirObstacle;
    if f.outcome == Outcome::Ok {
        return None;
    }
    let dir = f.pyc.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match crate::compile::dir_obstacle(dir)? {
        DirObstacle::NotWritable(e) => Some((dir, "write in", crate::io::io_reason(&e))),
        DirObstacle::Create(e) => Some((dir, "create", crate::io::io_reason(&e))),
    }
}

/// `--format github`: an error of the run (a path it cannot walk, a path that does not
/// exist, nothing to check) as a workflow command, on the path when there is one.
fn github_error(path: Option<&Path>, message: &str) -> String {
    workflow_command("error", path.map(|p| (p, "")), "hashpyc check", message)
}

fn github_annotation(f: &Finding, accept: Accept, compile_unchecked: bool) -> String {
    let level = if f.outcome == Outcome::Ok { "notice" } else { "error" };
    let file = if f.outcome == Outcome::Stray { &f.pyc } else { &f.path };
    // A temporary file's detail says what it is.
    // A stale pyc without a detail is one of other source bytes (an embedded path or bytes
    // after the code object are its detail): said as that alone.
    let explain = match (f.outcome, f.detail.as_deref()) {
        (_, Some(TEMP_STRAY)) => "left behind",
        (Outcome::Stale, None) => "the pyc was compiled from other source bytes",
        // Its detail: the source does not compile now.
        (Outcome::Stale, Some(_)) if f.source_fails.is_some() => {
            "the pyc was compiled from other source bytes"
        }
        (Outcome::Stale, Some(_)) => "the pyc is not what `hashpyc compile` writes",
        _ => f.outcome.explain(),
    };
    let mut msg = format!("{}: {explain} ({})", f.outcome.name(), report::ticked(&f.pyc));
    if let Some(d) = &f.detail {
        msg.push_str(&format!(": {d}"));
    }
    // A source that does not compile is fixed in the source, not by compiling again; the
    // annotation goes on the line CPython named.
    // Under `--mode unchecked`, the compile that fixes it names the mode (see `mode_hint`).
    let compile = compile_command(accept, compile_unchecked);
    let mut line = String::new();
    if let Some(at) = f.source_fails {
        msg.push_str(&format!(" - fix the source, then run {compile}"));
        if let Some(n) = at.filter(|&n| n > 0) {
            line = format!(",line={n}");
        }
    } else if f.symlink {
        msg.push_str(&format!(" - replace the symbolic link by a file, or remove it, then run {compile}"));
    } else if f.not_regular {
        // `compile` refuses to replace what is not a regular file: compiling alone fails.
        msg.push_str(&format!(
            " - remove it (`hashpyc compile` does not replace what is not a regular file), then run {compile}"
        ));
    } else if let Some(dir) = &f.not_a_dir {
        msg.push_str(&format!(
            " - remove {} (`hashpyc compile` does not replace what is not a directory), then run {compile}",
            report::ticked(dir)
        ));
    } else if f.pyc_error == Some(std::io::ErrorKind::InvalidFilename) {
        // ENAMETOOLONG: the pyc's name (the source's stem and the tag) is over NAME_MAX, or
        // its path over PATH_MAX: no compile writes it.
        let name_too_long = f.pyc.file_name().is_some_and(|n| n.as_bytes().len() > crate::write::NAME_MAX);
        msg.push_str(if name_too_long {
            " - shorten the source's name (its pyc's name is longer than the file system allows; `hashpyc compile` cannot write it either)"
        } else {
            " - shorten the path (the pyc's path is longer than the 4096 bytes the kernel takes; `hashpyc compile` cannot write it either)"
        });
    } else if f.pyc_error == Some(std::io::ErrorKind::PermissionDenied) {
        msg.push_str(&format!(
            " - check the permissions of {} and its directory (`hashpyc compile` cannot read or replace it either), then run {compile}",
            report::ticked(&f.pyc)
        ));
    } else if f.source_unreadable {
        msg.push_str(&format!(
            " - make the source readable (`hashpyc compile` cannot read it either), then run {compile}"
        ));
    } else if f.outcome == Outcome::Unchecked {
        msg.push_str(&format!(
            " - run {compile} to fix (`check --mode unchecked` or `--mode any` accepts it)"
        ));
    } else if f.outcome == Outcome::Checked {
        msg.push_str(&format!(" - run {compile} to fix (`check --mode any` accepts it)"));
    } else if f.detail.as_deref() == Some(TEMP_STRAY) {
        msg.push_str(" - delete it once no run is writing there");
    } else if f.outcome == Outcome::Stray && f.detail.as_deref().is_some_and(|d| d.contains(SHARED_STRAY)) {
        msg.push_str(" - delete it, unless a directory sharing that `__pycache__` holds its source");
    } else if f.outcome == Outcome::Stray {
        // No compile removes it.
        msg.push_str(" - delete it (or restore its source)");
    } else if let Some((dir, verb, why)) = unwritable_dir(f) {
        // A `__pycache__` another user owns, a read-only tree: compiling alone fails.
        msg.push_str(&format!(
            " - `hashpyc compile` cannot {verb} {} either ({why}): check the permissions there, or how the \
             tree is mounted, then run {compile}",
            report::ticked(dir)
        ));
    } else if f.outcome != Outcome::Ok {
        msg.push_str(&format!(" - run {compile} to fix"));
    }
    workflow_command(level, Some((file, &line)), &format!("hashpyc check ({})", f.interpreter()), &msg)
}

/// A GitHub Actions workflow command: `::error file=m.py,line=2,title=…::message`, the file
/// (with its `,line=…` properties) when there is one, escaped as GitHub reads them.
pub fn workflow_command(level: &str, file: Option<(&Path, &str)>, title: &str, message: &str) -> String {
    let file = file
        .map(|(path, place)| {
            let path = in_workspace(path);
            format!("file={}{place},", escape_property(&path.display().to_string()))
        })
        .unwrap_or_default();
    format!("::{level} {file}title={}::{}", escape_property(title), escape_data(message))
}

/// A path as GitHub places an annotation's `file`: relative to the repository's checkout
/// (`GITHUB_WORKSPACE`), not to the working directory, which a monorepo's job sets to a
/// service's directory (`working-directory: services/api`, where its configuration is
/// found). A path outside the checkout, or without `GITHUB_WORKSPACE`, is left as it is.
fn in_workspace(path: &Path) -> std::borrow::Cow<'_, Path> {
    static BASES: std::sync::OnceLock<Option<(PathBuf, PathBuf, Option<PathBuf>)>> =
        std::sync::OnceLock::new();
    let bases = BASES.get_or_init(|| {
        let workspace = PathBuf::from(std::env::var_os("GITHUB_WORKSPACE").filter(|w| !w.is_empty())?);
        let cwd = std::env::current_dir().ok()?;
        let real = std::fs::canonicalize(&workspace).ok();
        workspace.is_absolute().then_some((workspace, cwd, real))
    });
    let Some((workspace, cwd, real)) = bases else { return path.into() };
    let abs = crate::walk::lexically_absolute(path, cwd);
    if let Ok(rel) = abs.strip_prefix(workspace) {
        return rel.to_path_buf().into();
    }
    // The checkout reached through a link (or the working directory through one).
    if let (Some(real), Some(dir), Some(name)) = (real, abs.parent(), abs.file_name())
        && let Ok(dir) = std::fs::canonicalize(dir)
        && let Ok(rel) = dir.strip_prefix(real)
    {
        return rel.join(name).into();
    }
    path.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyc_tags() {
        let pyc_tag = |name: &'static [u8]| pyc_parts(name).map(|(_, tag, _)| tag);
        assert_eq!(pyc_tag(b"m.cpython-311.pyc"), Some("cpython-311"));
        assert_eq!(pyc_tag(b"m.x.cpython-313.opt-2.pyc"), Some("cpython-313"));
        assert_eq!(pyc_tag(b"m.pyc"), None);
        assert_eq!(pyc_tag(b"m.py"), None);
    }

    #[test]
    fn github_escapes() {
        assert_eq!(escape_property("a,b:c%\n"), "a%2Cb%3Ac%25%0A");
        assert_eq!(escape_property("a\u{1b}[31m\u{202e}\r.py"), "a%1B[31m%E2%80%AE%0D.py");
        assert_eq!(escape_property("tab\tname"), "tab\tname");
        assert_eq!(escape_data("a,b:c"), "a,b:c");
    }
}
