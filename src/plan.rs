//! Plan, in Rust and before any Python runs: for each source and target, is the pyc
//! fresh, does only its header need rewriting (the other hash mode), or must the source
//! be compiled, and why. A source is read (and hashed) only when some pyc's header says
//! the hash decides; a pyc's body is read only to compare its embedded path.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::embed::Embed;
use crate::io::io_reason;
use crate::layout::{self, Layout};
use crate::marshal::{self, CodeLayout};
use crate::memo::Memo;
use crate::pool::CompileFailure;
use crate::pyc::{self, Accept, HashMode, Invalid, SourceHash, Status};
use crate::target::Target;
use crate::verified::PycRead;
use crate::walk::Source;

/// Where the pycs of a source go: everything `layout::pyc_path` needs besides the source.
pub struct PycPaths<'a> {
    pub targets: &'a [Arc<Target>],
    /// Where pycs go, per target (a pycache prefix only applies to 3.8+).
    pub layouts: &'a [Layout],
    /// Optimization levels, ascending, deduplicated.
    pub levels: &'a [u8],
    pub cwd: &'a Path,
}

impl PycPaths<'_> {
    /// The pyc of `source` for target `t` at each level (computed, not stored: a plan
    /// for 100 000 files must stay small).
    pub fn of(&self, source: &Path, t: usize) -> Vec<PathBuf> {
        let layout = &self.layouts[t];
        let abs_dir = match layout {
            Layout::Prefix(_) => layout::absolute(source.parent().unwrap_or(Path::new("")), self.cwd),
            _ => PathBuf::new(),
        };
        let tag = &self.targets[t].cache_tag;
        self.levels.iter().map(|&lvl| layout::pyc_path(source, &abs_dir, tag, lvl, layout)).collect()
    }
}

/// What the plan needs to know.
pub struct PlanOptions<'a> {
    pub paths: PycPaths<'a>,
    pub mode: HashMode,
    pub force: bool,
    pub embed: &'a Embed,
    /// Remembered failures, per target (ignored with `force`).
    pub memos: &'a [Option<Memo>],
    /// `--hardlink-dupes`: identical levels must be one file.
    pub hardlink_dupes: bool,
    /// `-W error`: a fresh pyc whose source's warnings are not remembered is compiled
    /// again (nothing written) to learn them.
    pub warnings_as_errors: bool,
}

/// Why a source must be compiled for a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Forced,
    Missing,
    /// A timestamp pyc: never trusted.
    Timestamp,
    /// Hash-based, but for other source bytes.
    Stale,
    Invalid(Invalid),
    /// The magic number of another Python, or of another build of the target's line: which
    /// ([`crate::target::other_magic`]).
    OtherMagic(Box<str>),
    /// Fresh, but its embedded path is not the one this run would embed.
    EmbeddedPath {
        /// As a message names it ([`crate::report::ticked`]).
        found: Box<str>,
    },
    /// The header is fine but the body cannot be read as marshal data.
    UnreadableBody(Box<str>),
    /// Fresh, but one file with the pyc of a level before it (hard-linked by a run with
    /// `--hardlink-dupes`), in a run without it.
    HardLinked,
    /// Fresh, but bytes follow the code object (CPython ignores them; what `compile`
    /// writes, as py_compile, has none).
    TrailingBytes(u64),
    /// The pyc could not be read (permissions, I/O error).
    UnreadablePyc(Box<str>),
    /// Fresh, but readable by users who may not read its source (a source made private
    /// since it was compiled): the permission bits of the pycs and of the source.
    Exposed {
        pyc: u32,
        source: u32,
    },
    /// Fresh, but under `-W error` its warnings are not remembered (a new or other state
    /// directory): compiled to learn them, and nothing is written.
    UnknownWarnings,
    /// Only the header (or a hard link) needs rewriting, but under `-W error` the source is
    /// not remembered to compile without warnings: compiled, so that a warning fails it
    /// and no pyc is written, as for any other compile.
    HeaderUnderWarningsAsErrors,
    /// As [`Reason::HeaderUnderWarningsAsErrors`], for pycs only to be made hard links of
    /// the identical level before them (`--hardlink-dupes`), no header to rewrite.
    LinksUnderWarningsAsErrors,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Forced => f.write_str("--force"),
            Reason::Missing => f.write_str("no pyc"),
            Reason::Timestamp => f.write_str("timestamp pyc"),
            Reason::Stale => f.write_str("source changed"),
            Reason::Invalid(why) => write!(f, "invalid pyc: {why}"),
            Reason::OtherMagic(why) => write!(f, "invalid pyc: {why}"),
            Reason::EmbeddedPath { found } => write!(f, "embedded path was {found}"),
            Reason::Exposed { pyc, source } => {
                write!(f, "the pyc's mode {pyc:o} lets others read what its source's {source:o} does not")
            }
            Reason::UnreadableBody(e) => write!(f, "unreadable pyc body: {e}"),
            Reason::TrailingBytes(n) => f.write_str(&trailing_bytes(*n)),
            Reason::HardLinked => f.write_str("a hard link to another level's pyc, without --hardlink-dupes"),
            Reason::UnreadablePyc(e) => write!(f, "unreadable pyc: {e}"),
            Reason::UnknownWarnings => {
                f.write_str("fresh, but its warnings are not remembered: compiled for -W error, not written")
            }
            Reason::HeaderUnderWarningsAsErrors => {
                f.write_str("header to rewrite, and no warnings remembered as absent: compiled for -W error")
            }
            Reason::LinksUnderWarningsAsErrors => f.write_str(
                "identical levels to link, and no warnings remembered as absent: compiled for -W error",
            ),
        }
    }
}

/// What to do for one source and one target. Levels are indexes into the run's
/// optimization levels (ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Fresh,
    /// Rust only: rewrite the headers of `headers` to the requested mode, and make each of
    /// `links` a hard link to the level before it (identical bytes once those headers are
    /// rewritten, `--hardlink-dupes`). `links` holds no level of `headers`: a rewritten
    /// level identical to the one before it is linked to it again, and counted rewritten.
    Rewrite {
        headers: Vec<u8>,
        links: Vec<u8>,
    },
    /// Compile the first `prefix` levels in one request, in ascending order (as compileall
    /// does: a level's bytes may depend on the levels compiled before it in the same
    /// process), and write the levels in `write` (missing or wrong ones); the others are
    /// fresh and left alone.
    Compile {
        reason: Reason,
        prefix: u8,
        write: Vec<u8>,
    },
    /// The same source bytes failed to compile with this interpreter before: report
    /// that again without starting Python. `prefix` and `hash`: the levels of the compile
    /// that failed and the source's hash then (to store the failure in the bytecode cache);
    /// `reason` and `write`: the compile it stands for ([`Action::unremembered`]).
    KnownFailure {
        failure: Box<CompileFailure>,
        prefix: u8,
        hash: SourceHash,
        reason: Reason,
        write: Vec<u8>,
    },
    /// A pyc this unit would write is a symbolic link (dangling or not) or something else
    /// than a regular file: refused, as py_compile refuses it, before anything is compiled
    /// or written; `error` says which pyc and why. The dry run and the real run both report
    /// it from here.
    Refused {
        error: Box<str>,
    },
}

impl Action {
    pub fn is_compile(&self) -> bool {
        matches!(self, Action::Compile { .. })
    }

    /// The compile a remembered failure stands for (its interpreter was probed again with
    /// other settings, under which the failure is not known); any other action as it is.
    pub fn unremembered(self) -> Action {
        match self {
            Action::KnownFailure { prefix, reason, write, .. } => Action::Compile { reason, prefix, write },
            other => other,
        }
    }

    /// This compile of the source whose hash is `hash` (its key `abs`), or the failure
    /// `memo` remembers of it at the levels it compiles (see [`Memo::lookup`]).
    pub fn or_remembered(self, memo: &Memo, abs: &Path, hash: SourceHash, levels: &[u8]) -> Action {
        let Action::Compile { reason, prefix, write } = self else { return self };
        match memo.lookup(abs, &hash, &levels[..usize::from(prefix)]) {
            Some(failure) => Action::KnownFailure { failure: Box::new(failure), prefix, hash, reason, write },
            None => Action::Compile { reason, prefix, write },
        }
    }

    /// Compile every level (for `--force`).
    pub fn compile_all(reason: Reason, levels: usize) -> Action {
        Action::Compile { reason, prefix: levels as u8, write: (0..levels as u8).collect() }
    }
}

/// The plan for one source.
#[derive(Clone, Debug)]
pub struct SourcePlan {
    /// The source, as walked.
    pub path: Box<Path>,
    pub size: u64,
    /// The source's `st_mode` (the pyc's mode derives from it).
    pub mode: u32,
    /// The path to embed as `co_filename`, when it is not the source's path.
    embedded: Option<Box<Path>>,
    /// `-s` did not apply to this file (it does not match; it is the whole path); `-p`
    /// changed nothing of its path.
    pub strip_missed: bool,
    pub strip_whole: bool,
    pub prepend_missed: bool,
    /// One per target, in target order. Empty when `error` is set.
    pub actions: Box<[Action]>,
    /// The source could not be examined (vanished, unreadable…).
    pub error: Option<PlanError>,
}

/// Why a source could not be planned: the reason as said, and the I/O error's kind when
/// there was one, by which `compile` tells a source gone since the walk found it
/// (`NotFound`, or `NotADirectory` for a directory of its path replaced by a file: a
/// notice, counted as vanished) from an error, whatever the words.
#[derive(Clone, Debug)]
pub struct PlanError {
    pub kind: Option<std::io::ErrorKind>,
    pub reason: Box<str>,
}

impl PlanError {
    /// The source is gone since the walk found it.
    pub fn is_vanished(&self) -> bool {
        self.kind.is_some_and(crate::io::is_gone)
    }
}

impl SourcePlan {
    pub fn needs_compile(&self) -> bool {
        self.actions.iter().any(Action::is_compile)
    }

    /// The path to embed as `co_filename`.
    pub fn embedded(&self) -> &Path {
        self.embedded.as_deref().unwrap_or(&self.path)
    }
}

thread_local! {
    /// Each walker thread reads sources into one buffer, so big files cost no allocation
    /// (and no mmap/munmap) each.
    pub(crate) static SOURCE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A source read at most once, when some header first makes its hash matter, into the
/// walker thread's buffer (`SOURCE_BUF`); the last hash computed is kept, so several
/// levels of one target hash it once. Shared by the plan and `check`.
pub(crate) struct LazySource<'a> {
    path: &'a Path,
    buf: &'a mut Vec<u8>,
    /// Once read: its `st_mode` when asked for ([`LazySource::with_mode`]), or why it could
    /// not be read.
    read: Option<Result<Option<u32>, (std::io::ErrorKind, String)>>,
    /// Whether the read also takes the source's `st_mode` (`compile`'s plan, not `check`).
    with_mode: bool,
    last: Option<((pyc::HashVariant, pyc::Magic), SourceHash)>,
}

impl<'a> LazySource<'a> {
    pub(crate) fn new(path: &'a Path, buf: &'a mut Vec<u8>) -> Self {
        LazySource { path, buf, read: None, with_mode: false, last: None }
    }

    /// [`LazySource::new`], whose read also takes the source's `st_mode` ([`LazySource::mode`]).
    pub(crate) fn with_mode(path: &'a Path, buf: &'a mut Vec<u8>) -> Self {
        LazySource { with_mode: true, ..LazySource::new(path, buf) }
    }

    /// The source's `st_mode`, when a hash was asked for and it was read (with the mode).
    pub(crate) fn mode(&self) -> Option<u32> {
        self.read.as_ref().and_then(|r| r.as_ref().ok()).copied().flatten()
    }

    /// The source's hash for `target`, or why the source could not be read.
    pub(crate) fn hash(&mut self, target: &Target) -> Result<SourceHash, String> {
        let (path, buf) = (self.path, &mut *self.buf);
        self.read
            .get_or_insert_with(|| {
                let read = if self.with_mode {
                    crate::io::read_source_mode_into(path, buf).map(Some)
                } else {
                    crate::io::read_source_into(path, buf).map(|()| None)
                };
                read.map_err(|e| (e.kind(), io_reason(&e)))
            })
            .clone()
            .map_err(|(_, reason)| reason)?;
        let key = (target.hash, target.magic);
        match self.last {
            Some((k, h)) if k == key => Ok(h),
            _ => {
                let h = pyc::source_hash(target.hash, target.magic, self.buf);
                self.last = Some((key, h));
                Ok(h)
            }
        }
    }

    /// Why the source could not be read, if a hash was asked for and it could not.
    pub(crate) fn error(&self) -> Option<(std::io::ErrorKind, &str)> {
        self.read.as_ref().and_then(|r| r.as_ref().err()).map(|(kind, reason)| (*kind, reason.as_str()))
    }
}

/// A fresh pyc (the permission bits of its levels together, `pyc`) that users may read
/// who may not read its source (`source`, made private since it was compiled): written
/// again with the source's mode by `compile`, `stale` for `check`. A pyc less readable
/// than its source costs others a fallback to the source, not a leak: none.
pub(crate) fn exposed(pyc: u32, source: u32) -> Option<Reason> {
    (pyc & 0o066 & !source != 0).then_some(Reason::Exposed { pyc: pyc & 0o777, source: source & 0o777 })
}

/// How a plan error that is the source's begins, as the worker's read says it.
const SOURCE_UNREADABLE: &str = "cannot read the source: ";

/// A plan error that is the source's: `reason` with [`SOURCE_UNREADABLE`] before it, and
/// the error's `kind` (`NotFound`, `NotADirectory`: a source gone since the walk found it,
/// which `compile` takes for a vanished source, a notice, not an error).
fn source_error(kind: std::io::ErrorKind, reason: &str) -> PlanError {
    PlanError { kind: Some(kind), reason: format!("{SOURCE_UNREADABLE}{reason}").into() }
}

/// The plan for one source (called on the walker's threads).
pub fn plan_one(source: Source, opts: &PlanOptions<'_>) -> SourcePlan {
    let embedded = opts.embed.apply(&source.path, source.depth);
    let mut out = SourcePlan {
        size: 0,
        mode: 0o644,
        embedded: (embedded.path != source.path).then(|| embedded.path.into_boxed_path()),
        strip_missed: embedded.strip_missed,
        strip_whole: embedded.strip_whole,
        prepend_missed: embedded.prepend_missed,
        actions: Box::new([]),
        error: None,
        path: source.path.into_boxed_path(),
    };
    let want_name = marshal::filename_bytes(out.embedded().as_os_str().as_bytes());
    let path = &out.path;
    let (actions, error) = SOURCE_BUF.with_borrow_mut(|buf| {
        let mut actions = Vec::with_capacity(opts.paths.targets.len());
        let mut source = LazySource::with_mode(path, buf);
        for (t, target) in opts.paths.targets.iter().enumerate() {
            let pycs = opts.paths.of(path, t);
            // The permission bits of the pycs found, together.
            let mut modes = 0;
            let mut action = if opts.force {
                Action::compile_all(Reason::Forced, pycs.len())
            } else {
                let hash = || source.hash(target);
                decide(target, &pycs, opts.mode, opts.hardlink_dupes, &want_name, hash, &mut modes)
            };
            // A pyc that others may read though its source (made private since) is not:
            // written again with the source's mode, as py_compile writes it (compileall
            // rewrites every hash-based pyc, so its modes always follow). Read-only, the
            // other way round, costs a fallback to the source, not a leak: left.
            if matches!(action, Action::Fresh | Action::Rewrite { .. })
                && let Some(exposed) = source.mode().and_then(|source| exposed(modes, source))
            {
                action = Action::compile_all(exposed, pycs.len());
            }
            // Under -W error, a fresh pyc needs its source's warnings known (remembered
            // ones fail it later), and a header rewrite, which writes without compiling,
            // needs the source remembered to raise none: else the source is compiled.
            if opts.warnings_as_errors && matches!(action, Action::Fresh | Action::Rewrite { .. }) {
                let abs = crate::memo::key(path, opts.paths.cwd);
                let levels = opts.paths.levels;
                let memo = match (opts.memos.get(t), source.hash(target)) {
                    (Some(Some(memo)), Ok(h)) => Some((memo, h)),
                    _ => None,
                };
                let compile = match &action {
                    Action::Fresh if !memo.is_some_and(|(m, h)| m.warnings_known(&abs, &h, levels)) => {
                        Some((Reason::UnknownWarnings, Vec::new()))
                    }
                    Action::Rewrite { headers, links }
                        if !memo.is_some_and(|(m, h)| m.known_clean(&abs, &h, levels)) =>
                    {
                        let reason = if headers.is_empty() {
                            Reason::LinksUnderWarningsAsErrors
                        } else {
                            Reason::HeaderUnderWarningsAsErrors
                        };
                        Some((reason, rewritten_levels(headers, links)))
                    }
                    _ => None,
                };
                if let Some((reason, write)) = compile {
                    action = Action::Compile { reason, prefix: levels.len() as u8, write };
                }
            }
            if let (Action::Compile { .. }, false, Some(Some(memo))) =
                (&action, opts.force, opts.memos.get(t))
                && !memo.is_empty()
            {
                let abs = crate::memo::key(path, opts.paths.cwd);
                if memo.knows(&abs)
                    && let Ok(h) = source.hash(target)
                {
                    action = action.or_remembered(memo, &abs, h, opts.paths.levels);
                }
            }
            if let Some(error) = refusal(&action, &pycs) {
                action = Action::Refused { error };
            }
            actions.push(action);
        }
        let result = match source.error() {
            Some((kind, reason)) => (Vec::new(), Some(source_error(kind, reason))),
            None => (actions, None),
        };
        if buf.capacity() > 16 << 20 {
            // Do not keep a huge buffer alive for the rest of the run.
            *buf = Vec::new();
        }
        result
    });
    drop(want_name);
    out.actions = actions.into_boxed_slice();
    out.error = error;
    // Size and mode matter only for what will be written.
    if out.error.is_none() && out.actions.iter().any(|a| *a != Action::Fresh) {
        match std::fs::metadata(&out.path) {
            Ok(m) if m.is_file() => {
                out.size = m.size();
                out.mode = m.mode();
            }
            Ok(_) => {
                out.error = Some(PlanError { kind: None, reason: "not a regular file".into() });
                out.actions = Box::new([]);
            }
            Err(e) => {
                out.error = Some(source_error(e.kind(), &io_reason(&e)));
                out.actions = Box::new([]);
            }
        }
    }
    out
}

/// Why the pycs `action` would write cannot be written: the first of them that is a
/// symbolic link (dangling or not: the rename would replace it, and py_compile refuses
/// both) or exists and is not a regular file. A fresh pyc, or one a known failure leaves
/// alone, may be a link: nothing writes it.
fn refusal(action: &Action, pycs: &[PathBuf]) -> Option<Box<str>> {
    let levels = match action {
        Action::Compile { write, .. } => write.clone(),
        Action::Rewrite { headers, links } => rewritten_levels(headers, links),
        Action::Fresh | Action::KnownFailure { .. } | Action::Refused { .. } => return None,
    };
    let refused = levels.iter().find_map(|&l| crate::write::check_destination(&pycs[usize::from(l)]).err());
    refused.map(|e| e.to_string().into())
}

/// The action for one target across all levels; `hash` yields the source hash (once).
fn decide(
    target: &Target,
    pycs: &[PathBuf],
    mode: HashMode,
    hardlink_dupes: bool,
    want_name: &[u8],
    mut hash: impl FnMut() -> Result<SourceHash, String>,
    modes: &mut u32,
) -> Action {
    let mut headers = Vec::new();
    let mut compile: Vec<(u8, Reason)> = Vec::new();
    let mut source_hash: Option<SourceHash> = None;
    let name = crate::verified::name_hash(want_name);
    // The file each level's pyc is, when it has other names too (see below).
    let mut linked: Vec<Option<(u64, u64)>> = vec![None; pycs.len()];
    for (i, pyc_path) in pycs.iter().enumerate() {
        let at = i;
        let i = i as u8;
        let status = level_status(
            target,
            pyc_path,
            mode,
            (want_name, name),
            &mut source_hash,
            &mut hash,
            (modes, &mut linked[at]),
        );
        // Without `--hardlink-dupes`, a fresh level that is one file with a level before it
        // (linked by an earlier run with it) is written again as a file of its own, as a
        // clean build leaves it (and compileall, which rewrites every pyc): an archive of
        // the tree must not depend on whether the flag was ever given. A link to a file
        // elsewhere (`cp -al` of a release) is not the run's business and is left.
        let status = match status {
            Ok(_) if !hardlink_dupes && linked[at].is_some() && linked[..at].contains(&linked[at]) => {
                Err(LevelError::Compile(Reason::HardLinked))
            }
            other => other,
        };
        match status {
            Ok(None) => {}
            Ok(Some(())) => headers.push(i),
            Err(LevelError::SourceUnreadable) => {
                // The caller reports the unreadable source.
                return Action::compile_all(Reason::Stale, pycs.len());
            }
            Err(LevelError::Compile(reason)) => compile.push((i, reason)),
        }
    }
    let last = pycs.len() as u8;
    if let Some((_, reason)) = compile.first() {
        let needs: Vec<u8> = {
            let mut v: Vec<u8> = compile.iter().map(|(i, _)| *i).chain(headers.iter().copied()).collect();
            v.sort_unstable();
            v
        };
        // Levels after the last one written need not be compiled, unless links between
        // identical levels must be remade.
        let prefix = if hardlink_dupes { last } else { needs.last().map_or(last, |&i| i + 1) };
        return Action::Compile { reason: reason.clone(), prefix, write: needs };
    }
    let links: Vec<u8> = if hardlink_dupes {
        // As the run links them (`rewrite_unit`): a fresh level whose bytes equal those of
        // the level before it as the run leaves that level, when the two will not be one
        // file by then. The file each level is once the run is done: a new one (its header
        // rewritten: None), the one the level before it is (linked to it), else its own; a
        // level linked to one that is already its file (levels 0 and 2 one file, 1 linked
        // to 0) is left as it is.
        let mut links = Vec::new();
        let mut after: Vec<Option<(u64, u64)>> = (0..last)
            .map(|i| if headers.contains(&i) { None } else { crate::write::file_id(&pycs[usize::from(i)]) })
            .collect();
        for i in (1..last).filter(|i| !headers.contains(i)) {
            let (a, b) = (&pycs[usize::from(i) - 1], &pycs[usize::from(i)]);
            let rewritten = headers.contains(&(i - 1));
            let (before, own) = (after[usize::from(i) - 1], after[usize::from(i)]);
            if (before.is_none() || before != own) && identical_after_rewrite(a, b, rewritten.then_some(mode))
            {
                links.push(i);
                after[usize::from(i)] = before;
            }
        }
        links
    } else {
        Vec::new()
    };
    if headers.is_empty() && links.is_empty() { Action::Fresh } else { Action::Rewrite { headers, links } }
}

/// Why a level cannot stay as it is.
enum LevelError {
    Compile(Reason),
    SourceUnreadable,
}

/// One level's pyc: fresh (`None`), fresh but of the other hash mode (`Some(())`), or why
/// it must be compiled.
fn level_status(
    target: &Target,
    pyc_path: &Path,
    mode: HashMode,
    (want_name, name): (&[u8], u64),
    source_hash: &mut Option<SourceHash>,
    hash: &mut impl FnMut() -> Result<SourceHash, String>,
    (modes, linked): (&mut u32, &mut Option<(u64, u64)>),
) -> Result<Option<()>, LevelError> {
    let compile = |r| Err(LevelError::Compile(r));
    PYC_BUF.with_borrow_mut(|data| {
        let read = match read_pyc_into(pyc_path, data, target.magic, name) {
            Ok((read, meta)) => {
                *modes |= meta.mode;
                *linked = meta.linked;
                read
            }
            Err(e) if crate::io::is_gone(e.kind()) => {
                return compile(Reason::Missing);
            }
            Err(e) => return compile(Reason::UnreadablePyc(io_reason(&e).into())),
        };
        let mut hash_error = false;
        let status = pyc::classify(data, target.magic, Accept::Only(mode), || {
            *source_hash.get_or_insert_with(|| match hash() {
                Ok(h) => h,
                Err(_) => {
                    hash_error = true;
                    [0; 8]
                }
            })
        });
        if hash_error {
            return Err(LevelError::SourceUnreadable);
        }
        let wrong_mode = match status {
            Status::Fresh => false,
            Status::WrongMode(_) => true,
            Status::Stale => return compile(Reason::Stale),
            Status::Timestamp => return compile(Reason::Timestamp),
            Status::Invalid(Invalid::Magic) if let Some(h) = pyc::Header::parse(data) => {
                return compile(Reason::OtherMagic(crate::target::other_magic(h.magic, target).into()));
            }
            Status::Invalid(why) => return compile(Reason::Invalid(why)),
        };
        let (stamp, unread) = match read {
            PycRead::Header => return Ok(wrong_mode.then_some(())),
            PycRead::Whole(stamp, unread) => (stamp, unread),
        };
        match marshal::code_body(&data[pyc::HEADER_LEN..], target_layout(target)) {
            Ok(body) if body.filename != want_name => {
                let found = std::ffi::OsString::from_vec(marshal::path_from_filename(body.filename));
                compile(Reason::EmbeddedPath {
                    found: crate::report::ticked(Path::new(&found)).to_string().into(),
                })
            }
            // Not what a compile writes: compiled again (the bytes before the extra ones
            // need not be what this run would write either).
            Ok(body) if body.trailing as u64 + unread > 0 => {
                compile(Reason::TrailingBytes(body.trailing as u64 + unread))
            }
            Ok(_) => {
                if let Some(stamp) = stamp {
                    crate::verified::record(target.magic, stamp);
                }
                Ok(wrong_mode.then_some(()))
            }
            Err(e) => compile(Reason::UnreadableBody(e.to_string().into())),
        }
    })
}

thread_local! {
    /// Each walker thread reads whole pycs into one buffer (see `SOURCE_BUF`).
    pub(crate) static PYC_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Read a pyc of `magic` that must embed the name whose hash is `name` into `buf`
/// (cleared first): all of it, since its body is only known good once all of it has been
/// read (see [`marshal::code_body`]), unless an earlier run found this very file good
/// (see [`crate::verified`]).
pub(crate) fn read_pyc_into(
    path: &Path,
    buf: &mut Vec<u8>,
    magic: pyc::Magic,
    name: u64,
) -> std::io::Result<(PycRead, crate::verified::PycMeta)> {
    if buf.capacity() > 16 << 20 {
        // Do not keep the buffer of a huge pyc alive for the rest of the run.
        *buf = Vec::new();
    }
    crate::verified::read_pyc(path, buf, magic, name)
}

/// The levels a header rewrite writes: those rewritten and those linked (a level may be
/// both), ascending; the others are fresh and left alone.
pub(crate) fn rewritten_levels(headers: &[u8], links: &[u8]) -> Vec<u8> {
    let mut levels: Vec<u8> = headers.iter().chain(links).copied().collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

/// `3 bytes after the code object`: why a pyc that CPython loads is still not one
/// `compile` writes (`check`'s detail, `compile`'s reason, `inspect`'s line).
pub(crate) fn trailing_bytes(n: u64) -> String {
    format!("{} after the code object", crate::report::plural(n, "byte", "bytes"))
}

/// The code object layout of a target's pycs.
pub(crate) fn target_layout(target: &Target) -> CodeLayout {
    CodeLayout::for_version(target.version.0, target.version.1)
}

/// Whether the pyc `b` has the bytes of `a` once `a`'s header is rewritten to `rewrite`
/// (the mode, when `a` is among the headers rewritten), as the run compares them: files
/// of one size, compared a block at a time (however large they are).
fn identical_after_rewrite(a: &Path, b: &Path, rewrite: Option<HashMode>) -> bool {
    let (Ok(fa), Ok(fb)) = (crate::io::open_regular(a), crate::io::open_regular(b)) else { return false };
    match (fa.metadata(), fb.metadata()) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {}
        _ => return false,
    }
    const BLOCK: usize = 64 << 10;
    let (mut x, mut y) = (Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK));
    let mut first = true;
    loop {
        x.clear();
        y.clear();
        let (Ok(ended_a), Ok(ended_b)) = (
            crate::io::read_up_to_direct(&fa, &mut x, BLOCK),
            crate::io::read_up_to_direct(&fb, &mut y, BLOCK),
        ) else {
            return false;
        };
        if std::mem::take(&mut first)
            && let Some(mode) = rewrite
            && let Some(header) = pyc::Header::parse(&x)
        {
            x[..pyc::HEADER_LEN].copy_from_slice(&pyc::Header { flags: mode.flags(), ..header }.to_bytes());
        }
        if x != y || ended_a != ended_b {
            return false;
        }
        if ended_a {
            return true;
        }
    }
}
