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

/// What the plan needs to know.
pub struct PlanOptions<'a> {
    pub targets: &'a [Arc<Target>],
    /// Optimization levels, ascending, deduplicated.
    pub levels: &'a [u8],
    /// Where pycs go, per target (a pycache prefix only applies to 3.8+).
    pub layouts: &'a [Layout],
    pub mode: HashMode,
    pub force: bool,
    pub embed: &'a Embed,
    pub cwd: &'a Path,
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
        found: String,
    },
    /// The header is fine but the body cannot be read as marshal data.
    UnreadableBody(String),
    /// The pyc could not be read (permissions, I/O error).
    UnreadablePyc(String),
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
    /// Rewrite these levels' headers to the requested mode; the rest are fresh.
    Rewrite(Vec<u8>),
    Compile(Reason),
    /// The same source bytes failed to compile with this interpreter before: report
    /// that again without starting Python.
    KnownFailure(CompileFailure),
}

#[derive(Clone, Debug)]
pub struct TargetPlan {
    /// The pyc path for each level, in `PlanOptions::levels` order.
    pub pycs: Vec<PathBuf>,
    pub action: Action,
}

/// The plan for one source.
#[derive(Clone, Debug)]
pub struct SourcePlan {
    pub source: Source,
    pub size: u64,
    /// The source's `st_mode` (the pyc's mode derives from it).
    pub mode: u32,
    /// The path to embed as `co_filename`.
    pub embedded: PathBuf,
    /// `-s` did not apply to this file.
    pub strip_missed: bool,
    /// One per target, in target order. Empty when `error` is set.
    pub targets: Vec<TargetPlan>,
    /// The source could not be examined (vanished, unreadable…).
    pub error: Option<String>,
}

impl SourcePlan {
    pub fn needs_compile(&self) -> bool {
        self.targets.iter().any(|t| matches!(t.action, Action::Compile(_)))
    }
}

/// The source's bytes and metadata, read once (open, fstat, read).
struct SourceRead {
    bytes: Vec<u8>,
    meta: std::fs::Metadata,
}

fn read_source(path: &Path) -> std::io::Result<SourceRead> {
    let mut f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    f.read_to_end(&mut bytes)?;
    Ok(SourceRead { bytes, meta })
}

/// The plan for one source (called on the walker's threads).
pub fn plan_one(source: Source, opts: &PlanOptions<'_>) -> SourcePlan {
    let embedded = opts.embed.apply(&source.path, source.depth);
    let mut out = SourcePlan {
        size: 0,
        mode: 0o644,
        embedded: embedded.path,
        strip_missed: embedded.strip_missed,
        targets: Vec::new(),
        error: None,
        source,
    };
    let abs_dir = layout::absolute(out.source.path.parent().unwrap_or(Path::new("")), opts.cwd);
    let want_name = marshal::filename_bytes(out.embedded.as_os_str().as_bytes());
    // The source is read at most once, and only when some header makes its hash matter.
    let mut source: Option<std::io::Result<SourceRead>> = None;
    for (i, (target, target_layout)) in opts.targets.iter().zip(opts.layouts).enumerate() {
        let pycs: Vec<PathBuf> = opts
            .levels
            .iter()
            .map(|&lvl| layout::pyc_path(&out.source.path, &abs_dir, &target.cache_tag, lvl, target_layout))
            .collect();
        let mut hash = || match source.get_or_insert_with(|| read_source(&out.source.path)) {
            Ok(read) => Ok(pyc::source_hash(target.hash, target.magic, &read.bytes)),
            Err(e) => Err(io_reason(e)),
        };
        let mut action = if opts.force {
            Action::Compile(Reason::Forced)
        } else {
            decide(target, &pycs, opts.mode, &want_name, &mut hash)
        };
        if let (Action::Compile(_), false, Some(Some(memo))) = (&action, opts.force, opts.memos.get(i)) {
            let abs = layout::absolute(&out.source.path, opts.cwd);
            if memo.knows(&abs)
                && let Ok(h) = hash()
                && let Some(failure) = memo.lookup(&abs, &h, opts.levels)
            {
                action = Action::KnownFailure(failure);
            }
        }
        out.targets.push(TargetPlan { pycs, action });
    }
    // Size and mode: from the read when there was one, else from a stat (compile units
    // need them; a fresh source that was never read needs nothing).
    let meta = match source {
        Some(Ok(read)) => Ok(read.meta),
        Some(Err(e)) => Err(e),
        None => std::fs::metadata(&out.source.path).and_then(|m| {
            if m.is_file() {
                Ok(m)
            } else {
                Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"))
            }
        }),
    };
    match meta {
        Ok(m) => {
            out.size = m.size();
            out.mode = m.mode();
        }
        Err(e) => {
            out.error = Some(io_reason(&e));
            out.targets.clear();
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
            Err(e) => return Action::Compile(Reason::UnreadablePyc(io_reason(&e))),
        };
        // Header and the start of the body in one read: the embedded name usually sits in
        // the first few KiB.
        let mut prefix = vec![0u8; PYC_PREFIX];
        let n = match read_up_to(&mut file, &mut prefix) {
            Ok(n) => n,
            Err(e) => return Action::Compile(Reason::UnreadablePyc(io_reason(&e))),
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
        let at_end = n < PYC_PREFIX;
        if let Err(reason) = check_embedded_name(&mut file, prefix, at_end, target, want_name) {
            return Action::Compile(reason);
        }
    }
    if rewrite.is_empty() { Action::Fresh } else { Action::Rewrite(rewrite) }
}

/// How much of a pyc the plan reads at first.
const PYC_PREFIX: usize = 4096;

/// Compare the pyc's `co_filename` with the one this run would embed. `data` holds the
/// file's first bytes; more are read only if the name lies beyond them.
fn check_embedded_name(
    file: &mut std::fs::File,
    mut data: Vec<u8>,
    mut at_end: bool,
    target: &Target,
    want: &[u8],
) -> Result<(), Reason> {
    let code_layout = CodeLayout::for_version(target.version.0, target.version.1);
    let mut chunk = 4 * PYC_PREFIX;
    loop {
        match marshal::code_filename(&data[pyc::HEADER_LEN..], code_layout) {
            Ok(name) if name == want => return Ok(()),
            Ok(name) => {
                return Err(Reason::EmbeddedPath { found: String::from_utf8_lossy(name).into_owned() });
            }
            Err(marshal::MarshalError::Truncated) if !at_end => {
                let before = data.len();
                file.by_ref()
                    .take(chunk as u64)
                    .read_to_end(&mut data)
                    .map_err(|e| Reason::UnreadablePyc(io_reason(&e)))?;
                at_end = data.len() - before < chunk;
                chunk *= 4;
            }
            Err(e) => return Err(Reason::UnreadableBody(e.to_string())),
        }
    }
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
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
