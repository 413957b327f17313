//! Plan, in Rust and before any Python runs: for each source and target, is the pyc
//! fresh, does only its header need rewriting (the other hash mode), or must the source
//! be compiled, and why. A source is read (and hashed) only when some pyc's header says
//! the hash decides; a pyc's body is read only to compare its embedded path.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::embed::Embed;
use crate::layout::{self, Layout};
use crate::marshal::{self, CodeLayout};
use crate::memo::Memo;
use crate::pool::CompileFailure;
use crate::pyc::{self, Accept, HashMode, Invalid, SourceHash, Status};
use crate::target::Target;
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
    /// Fresh, but its embedded path is not the one this run would embed.
    EmbeddedPath {
        found: Box<str>,
    },
    /// The header is fine but the body cannot be read as marshal data.
    UnreadableBody(Box<str>),
    /// The pyc could not be read (permissions, I/O error).
    UnreadablePyc(Box<str>),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Forced => f.write_str("--force"),
            Reason::Missing => f.write_str("no pyc"),
            Reason::Timestamp => f.write_str("timestamp pyc"),
            Reason::Stale => f.write_str("source changed"),
            Reason::Invalid(why) => write!(f, "invalid pyc: {why}"),
            Reason::EmbeddedPath { found } => write!(f, "embedded path was `{found}`"),
            Reason::UnreadableBody(e) => write!(f, "unreadable pyc body: {e}"),
            Reason::UnreadablePyc(e) => write!(f, "unreadable pyc: {e}"),
        }
    }
}

/// What to do for one source and one target (all optimization levels together: they are
/// compiled in one request, in ascending order, like compileall).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Fresh,
    /// Rewrite these levels' headers (indexes into the levels) to the requested mode;
    /// the rest are fresh.
    Rewrite(Vec<u8>),
    Compile(Reason),
    /// The same source bytes failed to compile with this interpreter before: report
    /// that again without starting Python.
    KnownFailure(Box<CompileFailure>),
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
    /// `-s` did not apply to this file.
    pub strip_missed: bool,
    /// One per target, in target order. Empty when `error` is set.
    pub actions: Box<[Action]>,
    /// The source could not be examined (vanished, unreadable…).
    pub error: Option<Box<str>>,
}

impl SourcePlan {
    pub fn needs_compile(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Compile(_)))
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
    read: Option<Result<(), String>>,
    last: Option<((pyc::HashVariant, pyc::Magic), SourceHash)>,
}

impl<'a> LazySource<'a> {
    pub(crate) fn new(path: &'a Path, buf: &'a mut Vec<u8>) -> Self {
        LazySource { path, buf, read: None, last: None }
    }

    /// The source's hash for `target`, or why the source could not be read.
    pub(crate) fn hash(&mut self, target: &Target) -> Result<SourceHash, String> {
        let (path, buf) = (self.path, &mut *self.buf);
        self.read.get_or_insert_with(|| read_source_into(path, buf).map_err(|e| io_reason(&e))).clone()?;
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
    pub(crate) fn error(&self) -> Option<&str> {
        self.read.as_ref().and_then(|r| r.as_ref().err()).map(String::as_str)
    }
}

/// Read a source into `buf` (cleared first).
pub(crate) fn read_source_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    // Walked entries are regular files; O_NONBLOCK keeps a FIFO that appeared since from
    // blocking the run.
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    read_to_end_direct(&f, buf)
}

/// Append everything left in `file` to `buf`, reading straight into its spare capacity.
/// Unlike `Read::read_to_end` on a `File`, this asks for no size hint (an `fstat` and an
/// `lseek` per call, a fifth of the syscalls of a no-op run) and does not cap the first
/// reads at 8 KiB: with a reused buffer a source takes one read plus the end-of-file read.
/// An error (including `WouldBlock` on a non-blocking pipe) keeps what was read before it.
pub(crate) fn read_to_end_direct(file: &std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(buf.capacity().max(16 * 1024));
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: read(2) writes at most `spare.len()` bytes into the spare capacity, which
        // belongs to `buf`; the length grows only by the count it reports written.
        let n = unsafe { libc::read(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        match n {
            0 => return Ok(()),
            // SAFETY: the first `n` spare bytes were just initialised by read(2).
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The plan for one source (called on the walker's threads).
pub fn plan_one(source: Source, opts: &PlanOptions<'_>) -> SourcePlan {
    let embedded = opts.embed.apply(&source.path, source.depth);
    let mut out = SourcePlan {
        size: 0,
        mode: 0o644,
        embedded: (embedded.path != source.path).then(|| embedded.path.into_boxed_path()),
        strip_missed: embedded.strip_missed,
        actions: Box::new([]),
        error: None,
        path: source.path.into_boxed_path(),
    };
    let want_name = marshal::filename_bytes(out.embedded().as_os_str().as_bytes());
    let path = &out.path;
    let (actions, error) = SOURCE_BUF.with_borrow_mut(|buf| {
        let mut actions = Vec::with_capacity(opts.paths.targets.len());
        let mut source = LazySource::new(path, buf);
        for (t, target) in opts.paths.targets.iter().enumerate() {
            let pycs = opts.paths.of(path, t);
            let mut hash = || source.hash(target);
            let mut action = if opts.force {
                Action::Compile(Reason::Forced)
            } else {
                decide(target, &pycs, opts.mode, &want_name, &mut hash)
            };
            if let (Action::Compile(_), false, Some(Some(memo))) = (&action, opts.force, opts.memos.get(t))
                && !memo.is_empty()
            {
                let abs = layout::absolute(path, opts.paths.cwd);
                if memo.knows(&abs)
                    && let Ok(h) = hash()
                    && let Some(failure) = memo.lookup(&abs, &h, opts.paths.levels)
                {
                    action = Action::KnownFailure(Box::new(failure));
                }
            }
            actions.push(action);
        }
        let result = match source.error() {
            Some(e) => (Vec::new(), Some(e.into())),
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
                out.error = Some("not a regular file".into());
                out.actions = Box::new([]);
            }
            Err(e) => {
                out.error = Some(io_reason(&e).into());
                out.actions = Box::new([]);
            }
        }
    }
    out
}

/// The action for one target across all levels; `hash` yields the source hash (once).
fn decide(
    target: &Target,
    pycs: &[PathBuf],
    mode: HashMode,
    want_name: &[u8],
    mut hash: impl FnMut() -> Result<SourceHash, String>,
) -> Action {
    let mut rewrite = Vec::new();
    let mut source_hash: Option<SourceHash> = None;
    for (i, pyc_path) in pycs.iter().enumerate() {
        let mut file = match std::fs::File::open(pyc_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Action::Compile(Reason::Missing);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Action::Compile(Reason::Missing);
            }
            Err(e) => return Action::Compile(Reason::UnreadablePyc(io_reason(&e).into())),
        };
        // Header and the start of the body in one read: the embedded name usually sits in
        // the first few KiB.
        let mut prefix = vec![0u8; PYC_PREFIX];
        let n = match read_at_least(&mut file, &mut prefix, pyc::HEADER_LEN) {
            Ok(n) => n,
            Err(e) => return Action::Compile(Reason::UnreadablePyc(io_reason(&e).into())),
        };
        prefix.truncate(n);
        let mut hash_error = None;
        let status = pyc::classify(&prefix, target.magic, Accept::Only(mode), || {
            *source_hash.get_or_insert_with(|| match hash() {
                Ok(h) => h,
                Err(e) => {
                    hash_error = Some(e);
                    [0; 8]
                }
            })
        });
        if hash_error.is_some() {
            // The source became unreadable; the caller reports it.
            return Action::Compile(Reason::Stale);
        }
        match status {
            Status::Fresh => {}
            Status::WrongMode(_) => rewrite.push(i as u8),
            Status::Stale => return Action::Compile(Reason::Stale),
            Status::Timestamp => return Action::Compile(Reason::Timestamp),
            Status::Invalid(why) => return Action::Compile(Reason::Invalid(why)),
        }
        if let Err(reason) = check_embedded_name(&mut file, prefix, target, want_name) {
            return Action::Compile(reason);
        }
    }
    if rewrite.is_empty() { Action::Fresh } else { Action::Rewrite(rewrite) }
}

/// How much of a pyc the plan reads at first.
const PYC_PREFIX: usize = 4096;

/// Compare the pyc's `co_filename` with the one this run would embed. `data` holds the
/// file's first bytes; more are read only if the name lies beyond them (a short first read
/// is not proof of the end).
fn check_embedded_name(
    file: &mut std::fs::File,
    mut data: Vec<u8>,
    target: &Target,
    want: &[u8],
) -> Result<(), Reason> {
    let code_layout = CodeLayout::for_version(target.version.0, target.version.1);
    let mut chunk = 4 * PYC_PREFIX;
    let mut at_end = false;
    loop {
        match marshal::code_filename(&data[pyc::HEADER_LEN..], code_layout) {
            Ok(name) if name == want => return Ok(()),
            Ok(name) => {
                return Err(Reason::EmbeddedPath { found: String::from_utf8_lossy(name).into() });
            }
            Err(marshal::MarshalError::Truncated) if !at_end => {
                let before = data.len();
                file.by_ref()
                    .take(chunk as u64)
                    .read_to_end(&mut data)
                    .map_err(|e| Reason::UnreadablePyc(io_reason(&e).into()))?;
                at_end = data.len() - before < chunk;
                chunk *= 4;
            }
            Err(e) => return Err(Reason::UnreadableBody(e.to_string().into())),
        }
    }
}

/// Read into `buf` until it holds at least `min` bytes or the file ends (one read for
/// almost every pyc: no extra read to see the end of a small file).
pub(crate) fn read_at_least(file: &mut std::fs::File, buf: &mut [u8], min: usize) -> std::io::Result<usize> {
    let mut n = 0;
    while n < min.min(buf.len()) {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A short, lower-case description of an I/O error, without the "(os error N)" tail.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file (it vanished during the run)".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
