//! Discovery: which `.py` files a run covers, found with `ignore`'s parallel walker and
//! returned in sorted path order whatever the thread timing.
//!
//! Rules, as compileall's: names ending exactly in `.py`; never inside `__pycache__`;
//! symlinked directories not followed unless asked; hidden entries and git-ignored files
//! included. `.gitignore`/`.ignore` rules and hidden-entry skipping are opt-ins for
//! working trees, and whatever they skip is counted without being entered: the `.py` files
//! and the directories of each directory walked that the walk did not take. A `.py`
//! file named explicitly is taken unless `--exclude-regex` matches it (compileall's `-x`
//! applies to named files too) or `--force-exclude` applies the excludes to it; a named
//! file whose name does not end in `.py` is skipped, as compileall skips it (a stub `m.pyi`
//! named beside `m.py` would otherwise be compiled into `m.py`'s pyc). Each named path
//! skipped is counted.

use std::ffi::{OsStr, OsString};
use std::io::BufRead;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::{WalkBuilder, WalkState};
use rayon::prelude::*;
use thiserror::Error;

/// Where each rule that skips files was set, when a configuration file set it, as written
/// (`` `skip-hidden = true` in `hashpyc.toml` line 2``): the summary's counts name it
/// rather than a flag that was never given. The excludes given by flags are named with
/// their values (``--exclude-regex `.py` ``, ``--exclude `a/` --exclude `b/` ``).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleOrigins {
    pub respect_gitignore: Option<String>,
    pub skip_hidden: Option<String>,
    pub limit_symlinks: Option<String>,
    pub exclude_regex: Option<String>,
    pub force_exclude: Option<String>,
    pub exclude: Option<String>,
}

/// What to walk and how.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Respect `.gitignore` (in git repositories), `.ignore` and git's exclude files.
    pub respect_ignore: bool,
    /// Skip hidden files and directories.
    pub skip_hidden: bool,
    pub exclude_globs: Vec<String>,
    /// The directory `exclude_globs` are relative to, when not the current directory (a
    /// configuration file's).
    pub exclude_base: Option<PathBuf>,
    /// Matched against [`regex_subject`], the path as compileall's `-x` sees it.
    pub exclude_regex: Option<regex::Regex>,
    /// Apply the excludes to the roots themselves (`--force-exclude`).
    pub force_exclude: bool,
    /// No path was given: the one root is the working directory, implied, and paths are
    /// spelled without `./` (`src/m.py`), as ripgrep and fd spell them then, and as
    /// pre-commit and `git ls-files` name files; `.` given explicitly keeps compileall's
    /// `./src/m.py`.
    pub implicit_root: bool,
    /// Why the implied working directory is not walked, when a run from the directory of
    /// the configuration file would not enter it (an `exclude`, the ignore files of
    /// `respect-gitignore`, `skip-hidden`): the rule and where it was set. Only with
    /// `implicit_root`.
    pub implicit_root_excluded: Option<String>,
    pub max_depth: Option<usize>,
    /// Where `max_depth` came from when a configuration file set it (`` `max-depth = 0` in
    /// `hashpyc.toml` line 1``), for the messages about it.
    pub max_depth_by: Option<String>,
    /// Where the rules that skip files were set, when a configuration file set them, for
    /// the summary's counts.
    pub skipped_by: RuleOrigins,
    pub follow: bool,
    /// With `follow`, under a pycache prefix (every target's layout): each spelling of a
    /// directory is its own place, as its pycs are (`PREFIX/…/app/common/` and
    /// `PREFIX/…/shared/common/`), so a directory reached directly and through links is
    /// walked under each spelling, not once; a link to a directory on its own path as
    /// spelled is still not followed, so every spelling is finite.
    pub by_spelling: bool,
    /// Skip symlinks that resolve outside this (canonical) directory.
    pub limit_symlinks: Option<PathBuf>,
    /// Also collect pycs in `__pycache__` directories (for `check --stray`).
    pub collect_pycache: bool,
    /// Also collect `*.pyc` files beside the sources (`check --stray --legacy`).
    pub collect_legacy: bool,
    /// Also collect the directories walked (`check --stray` with a pycache prefix).
    pub collect_dirs: bool,
    pub threads: usize,
}

/// One source file to process.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    /// The path as walked (joined onto the argument as given).
    pub path: PathBuf,
    /// Named on the command line or stdin rather than found by walking.
    pub explicit: bool,
    /// Components below the walk root (1 for a file named directly).
    pub depth: usize,
}

/// A problem with one path; the walk goes on.
#[derive(Debug, Error)]
pub enum WalkError {
    #[error("{}: no such file or directory", crate::report::ticked(.0))]
    NotFound(PathBuf),
    /// A named path that does not exist while its name without the whitespace around it
    /// does (`  src/o.py  ` in a path list): the name is kept as given, but said so.
    #[error("{}: no such file or directory ({}; {} exists)", crate::report::ticked(.0), around(.0), crate::report::ticked(.1))]
    NotFoundSpaced(PathBuf, PathBuf),
    /// A named path that does not exist, spelled as git quotes a name with bytes outside
    /// ASCII (or a `"`, a `\`, a control character) unless `core.quotepath` is off, as
    /// `git diff --name-only` without `-z` writes it (`"pkg/\303\274n.py"`): said so, with
    /// the name unquoted when that exists.
    #[error(
        "{}: no such file or directory (the name is quoted as git quotes names without `-z`: list them with \
         `-z` and read them with `--null -`{})",
        crate::report::ticked(.0),
        unquoted_exists(.1)
    )]
    NotFoundQuoted(PathBuf, Option<PathBuf>),
    /// A named `.py` file that does not exist (deleted, renamed: `git mv mod.py mod2.py`)
    /// with a legacy pyc beside it (`mod.pyc`, as `-b` writes it), which CPython imports in
    /// its place while no source is there: said, with how to find such pycs.
    #[error(
        "{}: no such file or directory, but {} is there, which Python imports in its place \
         (`hashpyc check --stray --legacy {}` lists such pycs): delete it unless the module is meant to stay importable",
        crate::report::ticked(.0),
        crate::report::ticked(.1),
        crate::report::shell_path(.1.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")))
    )]
    NotFoundBesidePyc(PathBuf, PathBuf),
    /// A named path that does not exist while the same name in another Unicode
    /// normalization form does (`café.py` typed in NFC, copied from macOS in NFD): the two
    /// look alike but are other bytes, so other names to Linux and to CPython; said so, with
    /// the form of each.
    #[error(
        "{}: no such file or directory; {} exists, the same name in another Unicode form ({} here, {} there, as \
         copies from macOS can write names), which this filesystem and Python take for another name: name it as it \
         is spelled there (a shell glob or completion does), or rename it",
        crate::report::ticked(.0),
        crate::report::ticked(.1),
        unicode_form(.0),
        unicode_form(.1)
    )]
    NotFoundNormalized(PathBuf, PathBuf),
    #[error("{}: dangling symbolic link", crate::report::ticked(.0))]
    Dangling(PathBuf),
    /// A directory link to one of its own ancestors (`--follow`; `pkg/up` → `..`, `X11` →
    /// `.`): not followed, its files are walked under the ancestor's spelling. A note naming
    /// the link, its target as written (as `ls -l` shows it) and the ancestor as walked
    /// when that is spelled otherwise.
    #[error(
        "{}: symbolic link to {}, a directory containing it{}; not followed (its files are walked there)",
        crate::report::ticked(.0),
        crate::report::ticked(.2),
        loop_ancestor(.1, .2)
    )]
    Loop(PathBuf, PathBuf, PathBuf),
    /// A `.py` link that never resolves (`a.py` → `b.py` → `a.py`): like a dangling one,
    /// there is no source behind it.
    #[error("{}: symbolic link loop", crate::report::ticked(.0))]
    LinkLoop(PathBuf),
    /// Listed by the walk, gone (or no longer a directory) when it was read.
    #[error("{} vanished during the run; skipped", crate::report::ticked(.0))]
    Vanished(PathBuf),
    #[error("{}: not a regular file", crate::report::ticked(.0))]
    NotRegular(PathBuf),
    /// A `.py` found by the walk that is no file (a FIFO, a socket, a device, or a link to
    /// one): like a dangling link, no source to take; a warning, as one named is an error.
    #[error("{}: not a regular file ({}); skipped", crate::report::ticked(.0), .1)]
    Special(PathBuf, &'static str),
    #[error("{}: {}", crate::report::ticked(path), crate::io::io_reason(source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `__pycache__` (or a directory of a `--pycache-prefix` mirror) that `check --stray`
    /// cannot list: its stray pycs cannot be known, so the run is not "all fresh".
    #[error(
        "cannot list {} to look for stray pycs: {}",
        crate::report::ticked(path),
        crate::io::io_reason(source)
    )]
    Unlistable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
    /// A line of an ignore file that could not be read (`--respect-gitignore`): a warning
    /// naming the file and the line, as the rules it held are not applied.
    #[error("{0}")]
    IgnoreFile(String),
    /// A file named exactly `.py` named on the command line or stdin: it has no module
    /// name, so Python never imports it, and its pyc would be `py.py`'s. A warning.
    #[error(
        "{}: a file named `.py` has no module name, so Python never imports it (its pyc would be `py.py`'s); skipped",
        crate::report::ticked(.0)
    )]
    NoModuleName(PathBuf),
    /// The files named on the command line or stdin that `--exclude-regex` matches, without
    /// `--force-exclude` (in the order named): skipped, as compileall's `-x` skips them, with
    /// one warning per run naming the expression (and where it was set) and the first few
    /// files, which a name read as an option (`-x.py`) gave.
    #[error("{}", regex_excluded_message(.0, .1))]
    RegexExcluded(Vec<PathBuf>, String),
}

/// How many named files [`WalkError::RegexExcluded`] names before "and N more".
const REGEX_EXCLUDED_SHOWN: usize = 3;

/// The warning of the files named that `--exclude-regex` skipped: one file named as itself;
/// of several, the count and the first few (a path list from `find` may name thousands).
fn regex_excluded_message(paths: &[PathBuf], rule: &str) -> String {
    let why =
        format!("excluded by {rule} (which applies to named files too, as compileall's -x does); skipped");
    match paths {
        [one] => format!("{}: named, but {why}", crate::report::ticked(one)),
        _ => {
            let shown: Vec<String> = paths
                .iter()
                .take(REGEX_EXCLUDED_SHOWN)
                .map(|p| crate::report::ticked(p).to_string())
                .collect();
            let more = paths.len().saturating_sub(REGEX_EXCLUDED_SHOWN);
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            format!("{} named files {why}: {}{more}", paths.len(), shown.join(", "))
        }
    }
}

impl WalkError {
    pub fn path(&self) -> Option<&Path> {
        match self {
            WalkError::NotFound(p)
            | WalkError::NotFoundSpaced(p, _)
            | WalkError::NotFoundQuoted(p, _)
            | WalkError::NotFoundBesidePyc(p, _)
            | WalkError::NotFoundNormalized(p, _)
            | WalkError::Dangling(p)
            | WalkError::Loop(p, ..)
            | WalkError::LinkLoop(p)
            | WalkError::Vanished(p)
            | WalkError::NotRegular(p)
            | WalkError::NoModuleName(p)
            | WalkError::Special(p, _) => Some(p),
            WalkError::RegexExcluded(paths, _) => paths.first().map(PathBuf::as_path),
            WalkError::Io { path, .. } | WalkError::Unlistable { path, .. } => Some(path),
            WalkError::Other(_) | WalkError::IgnoreFile(_) => None,
        }
    }

    /// `./src/m.py` becomes `src/m.py` (see [`WalkOptions::implicit_root`]).
    fn strip_dot(&mut self) {
        if let WalkError::NotFound(p)
        | WalkError::NotFoundSpaced(p, _)
        | WalkError::NotFoundQuoted(p, _)
        | WalkError::NotFoundBesidePyc(p, _)
        | WalkError::NotFoundNormalized(p, _)
        | WalkError::Dangling(p)
        | WalkError::Loop(p, ..)
        | WalkError::LinkLoop(p)
        | WalkError::Vanished(p)
        | WalkError::NotRegular(p)
        | WalkError::NoModuleName(p)
        | WalkError::Special(p, _)
        | WalkError::Io { path: p, .. }
        | WalkError::Unlistable { path: p, .. } = self
        {
            strip_dot(p);
        }
        if let WalkError::RegexExcluded(paths, _) = self {
            paths.iter_mut().for_each(strip_dot);
        }
        if let WalkError::Loop(_, ancestor, _) = self {
            strip_dot(ancestor);
        }
    }

    /// A missing argument is a usage error (exit 2); the rest are per-file problems.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            WalkError::NotFound(_)
                | WalkError::NotFoundSpaced(..)
                | WalkError::NotFoundQuoted(..)
                | WalkError::NotFoundBesidePyc(..)
                | WalkError::NotFoundNormalized(..)
        )
    }

    /// A dangling symlink, or one that loops, is reported but fails nothing: there is no
    /// source to compile (compileall skips them silently); nor does a directory that
    /// vanished during the run, as a file that vanishes does not, nor a directory link to
    /// an ancestor under `--follow`, whose files are all taken under the other spelling.
    pub fn is_notice(&self) -> bool {
        matches!(
            self,
            WalkError::Dangling(_)
                | WalkError::LinkLoop(_)
                | WalkError::Special(..)
                | WalkError::Vanished(_)
                | WalkError::Loop(..)
                | WalkError::IgnoreFile(_)
                | WalkError::NoModuleName(_)
                | WalkError::RegexExcluded(..)
        )
    }

    /// A notice that is no warning: something that changed under the run, not in the tree.
    pub fn is_vanished(&self) -> bool {
        matches!(self, WalkError::Vanished(_))
    }

    /// A notice that is no warning (`note:`, shown unless `-qq`): a path that vanished, or
    /// a directory link to an ancestor, which misses no file.
    pub fn is_note(&self) -> bool {
        matches!(self, WalkError::Vanished(_) | WalkError::Loop(..))
    }
}

/// A file named exactly `.py`: CPython's `cache_from_source` maps it to `py.<tag>.pyc`,
/// the pyc of `py.py` beside it, yet no import ever reads it (it has no module name), so
/// it is never compiled (compileall compiles it, and a `py.py` compiled after it
/// overwrites that pyc), nor does `check` expect a pyc for it.
fn no_module_name(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == ".py")
}

/// What a file that is neither a regular file nor a directory is, in words.
pub(crate) fn special_kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "neither a file nor a directory"
    }
}

/// What a symlink that cannot be resolved is: a loop or dangling.
fn unresolved_link(path: PathBuf, e: &std::io::Error) -> WalkError {
    if e.raw_os_error() == Some(libc::ELOOP) { WalkError::LinkLoop(path) } else { WalkError::Dangling(path) }
}

/// The result of a walk.
#[derive(Debug, Default)]
pub struct Walked {
    pub sources: Vec<Source>,
    pub errors: Vec<WalkError>,
    /// pyc files, and temporary files of pycs, found in `__pycache__` directories (only
    /// with `collect_pycache`).
    pub pycache_files: Vec<PathBuf>,
    /// The directories walked whose `__pycache__`, holding pycs, is a symbolic link (only
    /// with `collect_pycache`): several directories may share it.
    pub pycache_links: Vec<PathBuf>,
    /// Each directory walked whose `__pycache__` is a symbolic link, with the root given
    /// that the walk reached it from (told by the walk's own entry: no system call is made
    /// for a `__pycache__` that is no link), for [`pycache_link_warnings`].
    pub pycache_symlinks: Vec<(PathBuf, PathBuf)>,
    /// `*.pyc` files, and temporary files of pycs, found beside the sources (only with
    /// `collect_legacy`).
    pub legacy_pycs: Vec<PathBuf>,
    /// The directories walked and their depths (only with `collect_dirs`), sorted.
    pub dirs: Vec<(PathBuf, usize)>,
    /// Paths skipped by `--limit-symlinks`, for `--dry-run` and `-v`.
    pub skipped_symlinks: Vec<PathBuf>,
    /// `.py` files and directories the opt-in rules skipped, and named paths
    /// `--force-exclude` skipped.
    pub skipped: Skipped,
    /// The entries of the directories walked, and what the walk took or failed on, for
    /// counting what the opt-in rules skipped (only with `--respect-gitignore` or
    /// `--skip-hidden`).
    listed: Vec<Listed>,
    taken: std::collections::HashSet<PathBuf>,
    /// The files named `.py` the walk of directories found (counted once each, whatever
    /// the spellings that reach them).
    nameless: Vec<PathBuf>,
    /// The Python environments the walk entered, as their directories are spelled: each
    /// directory holding a `pyvenv.cfg` (no version), and the directory above each
    /// `lib/pythonX.Y` (its version), for [`environment_warnings`]. Told by names the walk
    /// lists anyway: nothing is read until the walk is over.
    pub environments: Vec<(PathBuf, Option<(u8, u8)>)>,
}

/// The warnings for the directories whose `__pycache__` is a symbolic link leading out of
/// the root the walk reached them from (`links`, [`Walked::pycache_symlinks`]), among those
/// `writes` says pycs are written into this run: CPython follows such a link, and so does
/// `compile`, so a tree can have the pycs of its sources written over another directory's
/// (whose imports then run them, unchecked-hash pycs unverified). A link inside the root,
/// or one that leads nowhere (said elsewhere), is not warned of. Costs a `realpath` per
/// such link, and nothing for a tree without one.
pub fn pycache_link_warnings(links: &[(PathBuf, PathBuf)], writes: &dyn Fn(&Path) -> bool) -> Vec<String> {
    let mut roots: std::collections::HashMap<&Path, Option<PathBuf>> = std::collections::HashMap::new();
    let mut said = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (dir, root) in links {
        if !seen.insert(dir) || !writes(dir) {
            continue;
        }
        // A file named in the working directory: `__pycache__` of `.`.
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
        let pycache = dir.join("__pycache__");
        let Ok(target) = std::fs::canonicalize(&pycache) else { continue };
        let real_root = roots.entry(root).or_insert_with(|| std::fs::canonicalize(root).ok());
        let Some(real_root) = real_root else { continue };
        if target.starts_with(&*real_root) {
            continue;
        }
        let shown_root = if root.as_os_str() == "." { Path::new(".") } else { root.as_path() };
        said.push(format!(
            "{} is a symbolic link to {}, outside {}: the pycs of {} are written there, where \
             whatever imports from that directory runs them",
            crate::report::ticked(&pycache),
            crate::report::ticked(&target),
            crate::report::ticked(shown_root),
            crate::report::ticked(dir),
        ));
    }
    said.sort();
    said
}

/// The warnings for the symbolic links inside the `--pycache-prefix` tree `prefix` that
/// lead out of it, on the way to the directories pycs are written into this run (`dirs`:
/// each such directory under `prefix`, with the source directory whose pycs go there), as
/// [`pycache_link_warnings`] says them for a `__pycache__`. Each component below `prefix`
/// is looked at once (an `lstat`; a `realpath` per link); a component that does not exist
/// yet ends the look (hashpyc makes directories, not links).
pub fn prefix_link_warnings(prefix: &Path, dirs: &[(PathBuf, &Path)]) -> Vec<String> {
    let Ok(real_prefix) = std::fs::canonicalize(prefix) else { return Vec::new() };
    let mut looked = std::collections::HashSet::new();
    let mut said = Vec::new();
    for (dir, source_dir) in dirs {
        let Ok(below) = dir.strip_prefix(prefix) else { continue };
        let mut path = prefix.to_path_buf();
        for component in below.components() {
            path.push(component);
            if !looked.insert(path.clone()) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else { break };
            if !meta.file_type().is_symlink() {
                continue;
            }
            let Ok(target) = std::fs::canonicalize(&path) else { break };
            if target.starts_with(&real_prefix) {
                continue;
            }
            let source_dir = if source_dir.as_os_str().is_empty() { Path::new(".") } else { source_dir };
            said.push(format!(
                "{} is a symbolic link to {}, outside the pycache prefix {}: the pycs of {} are \
                 written there, where whatever imports from that directory runs them",
                crate::report::ticked(&path),
                crate::report::ticked(&target),
                crate::report::ticked(prefix),
                crate::report::ticked(source_dir),
            ));
            break;
        }
    }
    said.sort();
    said
}

/// An entry of a directory walked (spelled as the walker spells it), and whether it is a
/// directory.
#[derive(Debug)]
struct Listed {
    path: PathBuf,
    is_dir: bool,
}

/// How many `.py` files and directories each opt-in rule skipped. A directory skipped is
/// never entered: the files under it are not counted (a large ignored `.venv` costs
/// nothing, and a hung mount inside it cannot hang the run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// `.py` files skipped by ignore files (`--respect-gitignore`).
    pub ignored: usize,
    /// Directories skipped by ignore files.
    pub ignored_dirs: usize,
    /// Hidden `.py` files skipped (`--skip-hidden`; with both rules, a hidden entry counts
    /// here).
    pub hidden: usize,
    /// Hidden directories skipped.
    pub hidden_dirs: usize,
    /// Paths named on the command line or stdin that `--force-exclude` skipped.
    pub force_excluded: usize,
    /// Files named on the command line or stdin that `--exclude-regex` skipped without
    /// `--force-exclude` (compileall's `-x` applies to named files too).
    pub regex_excluded: usize,
    /// Files named on the command line or stdin whose name does not end in `.py`.
    pub not_py: usize,
    /// `.py` files, walked or named, that are symbolic links resolving outside
    /// `--limit-symlinks`.
    pub limit_symlinks: usize,
    /// Files named exactly `.py`, walked or named: no module name, never imported, and
    /// their pyc would be `py.py`'s (see [`no_module_name`]).
    pub no_module_name: usize,
    /// Of those, the ones named on the command line or stdin.
    no_module_name_named: usize,
    /// Named paths that are symbolic links leading nowhere (dangling, or a loop): each a
    /// warning of its own.
    broken_named: usize,
    /// `.py` symbolic links leading nowhere that the walk of directories found: each a
    /// warning of its own, and skipped as a named one is.
    broken: usize,
    /// The directories named under which the walk found such a link: when no source is
    /// found at all, each is a path skipped, as a named link to nothing is.
    broken_roots: usize,
    /// Named paths dropped as named again (see [`walk`]).
    repeated: usize,
    /// `.py` files and directories the walk passed over by an `exclude` glob, and `.py`
    /// files by `--exclude-regex`: not counted in summaries (the README says so), only
    /// said when nothing was selected, as the reason.
    pub walk_excluded: usize,
    pub walk_excluded_dirs: usize,
    pub walk_regex_excluded: usize,
}

/// `12 files and 1 directory`, `3 directories`: what a rule skipped.
fn files_and_dirs(files: usize, dirs: usize) -> String {
    let mut what = Vec::new();
    if files > 0 {
        what.push(crate::report::plural(files, "file", "files"));
    }
    if dirs > 0 {
        what.push(crate::report::plural(dirs, "directory", "directories"));
    }
    what.join(" and ")
}

impl Skipped {
    /// `.py` symbolic links leading nowhere (dangling, or a loop), named or walked: each
    /// skipped with its warning.
    pub fn links_to_nothing(&self) -> usize {
        self.broken_named + self.broken
    }

    /// `skipped 12 files and 1 directory by --respect-gitignore, 3 directories by
    /// --skip-hidden, 1 file by --limit-symlinks`, or None.
    /// `by` names where a configuration file set a rule, else the flag is named.
    pub fn describe(&self, by: &RuleOrigins) -> Option<String> {
        let named =
            |origin: &Option<String>, flag: &'static str| origin.clone().unwrap_or_else(|| flag.into());
        let mut parts = Vec::new();
        if self.ignored + self.ignored_dirs > 0 {
            let rule = named(&by.respect_gitignore, "--respect-gitignore");
            parts.push(format!("{} by {rule}", files_and_dirs(self.ignored, self.ignored_dirs)));
        }
        if self.hidden + self.hidden_dirs > 0 {
            let rule = named(&by.skip_hidden, "--skip-hidden");
            parts.push(format!("{} by {rule}", files_and_dirs(self.hidden, self.hidden_dirs)));
        }
        if self.limit_symlinks > 0 {
            let rule = named(&by.limit_symlinks, "--limit-symlinks");
            parts.push(format!("{} by {rule}", files_and_dirs(self.limit_symlinks, 0)));
        }
        let mut out: Vec<String> =
            (!parts.is_empty()).then(|| format!("skipped {}", parts.join(", "))).into_iter().collect();
        if self.force_excluded > 0 {
            let paths = crate::report::plural(self.force_excluded, "named path", "named paths");
            let rule = named(&by.force_exclude, "--force-exclude");
            out.push(format!("{paths} excluded by {rule}"));
        }
        if self.regex_excluded > 0 {
            let paths = crate::report::plural(self.regex_excluded, "named path", "named paths");
            let rule = named(&by.exclude_regex, "--exclude-regex");
            out.push(format!("{paths} excluded by {rule}"));
        }
        if self.not_py > 0 {
            let named = crate::report::plural(self.not_py, "named file", "named files");
            out.push(format!("{named} not ending in .py skipped"));
        }
        if self.no_module_name > 0 {
            let files = crate::report::plural(self.no_module_name, "file", "files");
            out.push(format!("{files} named `.py` skipped (no module name)"));
        }
        if self.broken_named > 0 {
            let named = crate::report::plural(self.broken_named, "named link", "named links");
            out.push(format!("{named} to nothing skipped"));
        }
        if self.broken > 0 {
            out.push(format!("{} to nothing skipped", crate::report::plural(self.broken, "link", "links")));
        }
        (!out.is_empty()).then(|| out.join(", "))
    }

    /// [`Skipped::describe`], and what the walk's excludes passed over (left out of
    /// summaries): why a selection came out empty.
    pub fn describe_empty(&self, by: &RuleOrigins) -> Option<String> {
        let mut parts: Vec<String> = self.describe(by).into_iter().collect();
        if self.walk_excluded + self.walk_excluded_dirs > 0 {
            let rule = by.exclude.clone().unwrap_or_else(|| "--exclude".into());
            parts.push(format!(
                "{} excluded by {rule}",
                files_and_dirs(self.walk_excluded, self.walk_excluded_dirs)
            ));
        }
        if self.walk_regex_excluded > 0 {
            let rule = by.exclude_regex.clone().unwrap_or_else(|| "--exclude-regex".into());
            parts.push(format!("{} excluded by {rule}", files_and_dirs(self.walk_regex_excluded, 0)));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// The paths named on the command line or stdin that were skipped: on purpose (by an
    /// exclude, or as no `.py` file or one named `.py`), as a symbolic link that leads
    /// nowhere (a warning), or as named again after one of those; and, for a run that
    /// found no source, the directories named whose walk found `.py` links leading nowhere
    /// (each a warning): the same links, named or walked, make the same run.
    pub fn named(&self) -> usize {
        self.force_excluded
            + self.regex_excluded
            + self.not_py
            + self.no_module_name_named
            + self.broken_named
            + self.broken_roots
            + self.repeated
    }
}

/// Why a path list could not be read.
#[derive(Debug, Error)]
pub enum PathListError {
    #[error("failed to read the path list from stdin")]
    Io(#[source] std::io::Error),
    #[error(
        "the path list on stdin contains NUL bytes: add --null (-0) to read NUL-separated paths, as `find -print0` and `git ls-files -z` write them"
    )]
    NulWithoutNull,
}

/// Read a path list from stdin: newline- or NUL-separated; empty entries are dropped. A
/// NUL byte in a newline-separated list means `--null` was forgotten.
pub fn read_path_list(input: impl BufRead, nul: bool) -> Result<Vec<OsString>, PathListError> {
    let sep = if nul { b'\0' } else { b'\n' };
    let mut out = Vec::new();
    for item in input.split(sep) {
        let mut item = item.map_err(PathListError::Io)?;
        if !nul && item.contains(&0) {
            return Err(PathListError::NulWithoutNull);
        }
        if !nul && item.last() == Some(&b'\r') {
            item.pop();
        }
        if !item.is_empty() {
            out.push(OsString::from_vec(item));
        }
    }
    Ok(out)
}

/// Whether the whitespace around `name` holds a line break: a list written one name per
/// line (`git ls-files` without `-z`) read with `--null`, the only way a name gets one.
fn line_break(name: &Path) -> bool {
    let b = name.as_os_str().as_bytes();
    let inner = b.trim_ascii();
    let (start, end) = b.split_at(b.len() - b.trim_ascii_start().len());
    let end = &end[inner.len()..];
    start.iter().chain(end).any(|&c| c == b'\n' || c == b'\r')
}

/// What is around `name` that [`not_found`] took away, in words.
fn around(name: &Path) -> &'static str {
    if line_break(name) {
        "the name has a line break at its start or end, which `--null` keeps as part of it: a \
         list of one name per line is read without `--null`"
    } else {
        "the name has leading or trailing spaces, which are part of it"
    }
}

/// `./src/m.py` becomes `src/m.py` (`.` itself stays).
fn strip_dot(p: &mut PathBuf) {
    if let Ok(rest) = p.strip_prefix(".")
        && !rest.as_os_str().is_empty()
    {
        *p = rest.to_path_buf();
    }
}

/// `; `NAME` exists` for the unquoted name of [`WalkError::NotFoundQuoted`] that does.
fn unquoted_exists(name: &Option<PathBuf>) -> String {
    name.as_ref().map(|n| format!("; {} exists", crate::report::ticked(n))).unwrap_or_default()
}

/// A named path that does not exist: [`WalkError::NotFoundSpaced`] when its name without
/// the whitespace around it names something that does (compileall's `-i` strips it; here a
/// name may really hold spaces, so it is only said); [`WalkError::NotFoundBesidePyc`] for a
/// `.py` name with a legacy pyc beside it; [`WalkError::NotFoundQuoted`] when it
/// is quoted as git quotes names (a path list from `git diff --name-only` without `-z`, or
/// its output split by the shell), whether or not the name unquoted exists (a deleted
/// file's name is listed too).
fn not_found(root: &Path) -> WalkError {
    let name = root.as_os_str().as_bytes();
    let trimmed = name.trim_ascii();
    if !trimmed.is_empty() && trimmed.len() < name.len() {
        let trimmed = PathBuf::from(OsStr::from_bytes(trimmed));
        if std::fs::symlink_metadata(&trimmed).is_ok() {
            return WalkError::NotFoundSpaced(root.to_path_buf(), trimmed);
        }
    }
    if name.ends_with(b".py") {
        let mut pyc = name.to_vec();
        pyc.push(b'c');
        let pyc = PathBuf::from(OsString::from_vec(pyc));
        if std::fs::metadata(&pyc).is_ok_and(|m| m.is_file()) {
            return WalkError::NotFoundBesidePyc(root.to_path_buf(), pyc);
        }
    }
    if let Some(unquoted) = git_unquoted(name) {
        let unquoted = PathBuf::from(OsString::from_vec(unquoted));
        let exists = std::fs::symlink_metadata(&unquoted).is_ok();
        return WalkError::NotFoundQuoted(root.to_path_buf(), exists.then_some(unquoted));
    }
    if let Some(other) = normalized_exists(root) {
        return WalkError::NotFoundNormalized(root.to_path_buf(), other);
    }
    WalkError::NotFound(root.to_path_buf())
}

/// The path that exists whose components are those of `path` up to Unicode normalization
/// (NFC and NFD, or any mix, compared in NFC), when `path` does not exist and has a
/// character outside ASCII; `None` when none does, or more than one directory entry could
/// be meant.
pub(crate) fn normalized_exists(path: &Path) -> Option<PathBuf> {
    use unicode_normalization::UnicodeNormalization;
    if path.as_os_str().as_bytes().is_ascii() {
        return None;
    }
    let nfc = |name: &OsStr| name.to_str().map(|s| s.nfc().collect::<String>());
    let mut found = PathBuf::new();
    for component in path.components() {
        let Component::Normal(name) = component else {
            found.push(component);
            continue;
        };
        let here = found.join(name);
        if std::fs::symlink_metadata(&here).is_ok() {
            found = here;
            continue;
        }
        let want = nfc(name)?;
        let dir = if found.as_os_str().is_empty() { Path::new(".") } else { &found };
        let mut matches = std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|e| nfc(e).as_deref() == Some(want.as_str()));
        let entry = matches.next()?;
        if matches.next().is_some() {
            return None;
        }
        found.push(entry);
    }
    (found.as_os_str() != path.as_os_str()).then_some(found)
}

/// `NFC`, `NFD`, or `mixed`: the Unicode normalization form `path`'s name is in.
pub(crate) fn unicode_form(path: &Path) -> &'static str {
    use unicode_normalization::{is_nfc, is_nfd};
    match path.to_str() {
        Some(s) if is_nfc(s) => "NFC",
        Some(s) if is_nfd(s) => "NFD",
        _ => "mixed",
    }
}

/// `name` unquoted, when it is quoted as git quotes a path (`quote_c_style`): between
/// double quotes, with at least one backslash escape (`\"`, `\\`, `\a`, `\b`, `\t`, `\n`,
/// `\v`, `\f`, `\r`, or three octal digits for a byte) and no other escape nor a `"`
/// inside. `None` for any other name.
fn git_unquoted(name: &[u8]) -> Option<Vec<u8>> {
    let inner = name.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        return None;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter().copied();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => return None,
            b'\\' => out.push(match bytes.next()? {
                b'a' => 7,
                b'b' => 8,
                b't' => b'\t',
                b'n' => b'\n',
                b'v' => 11,
                b'f' => 12,
                b'r' => b'\r',
                c @ (b'"' | b'\\') => c,
                c @ b'0'..=b'3' => {
                    let mut byte = c - b'0';
                    for _ in 0..2 {
                        match bytes.next()? {
                            d @ b'0'..=b'7' => byte = byte * 8 + (d - b'0'),
                            _ => return None,
                        }
                    }
                    byte
                }
                _ => return None,
            }),
            b => out.push(b),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Walk `roots` (files and directories) and return every source, sorted by path.
pub fn walk(roots: &[PathBuf], opts: &WalkOptions) -> Walked {
    let found = Mutex::new(Vec::new());
    let mut walked = walk_each(roots, opts, &|s| found.lock().expect("walk lock").push(s));
    walked.sources = found.into_inner().expect("walk lock");
    walked.sources.sort();
    walked
}

/// Walk `roots` and hand each source to `visit`, from the walker's threads and in no
/// particular order (callers sort what they keep). The result's `sources` is empty; its
/// errors and other lists are sorted. A file reached under several spellings (nested
/// roots, symlinked directories) is visited once, under the spelling of the first root
/// given that reaches it (with [`WalkOptions::by_spelling`], once per absolute path as
/// spelled). Once the run is interrupted ([`crate::interrupt`]) no source is
/// visited and the walk stops: the caller ends the run as interrupted.
pub fn walk_each(roots: &[PathBuf], opts: &WalkOptions, visit: &(dyn Fn(Source) + Sync)) -> Walked {
    walk_filtered(roots, opts, &|source| {
        if !crate::interrupt::requested() {
            visit(source)
        }
    })
}

/// What the opt-in rules skipped: the entries listed in the directories walked that the
/// walk neither took nor failed on, `.py` files and directories, less what the other rules
/// skip (`__pycache__`, `--exclude`, `--exclude-regex`) and what `named` says was named on
/// the command line (judged as named: taken, or skipped and counted as such). A hidden one
/// counts as hidden (with both rules too), any other as ignored.
fn count_skipped(
    listed: &[Listed],
    taken: &std::collections::HashSet<PathBuf>,
    opts: &WalkOptions,
    mut named: impl FnMut(&Path) -> bool,
) -> Skipped {
    let excludes = Excludes::new(opts).ok().flatten();
    let mut skipped = Skipped::default();
    for l in listed {
        let Some(name) = l.path.file_name() else { continue };
        if taken.contains(&l.path)
            || name == "__pycache__"
            || excludes.as_ref().is_some_and(|x| x.skips(&l.path, l.is_dir))
            || named(&l.path)
        {
            continue;
        }
        let shown = if opts.implicit_root { l.path.strip_prefix(".").unwrap_or(&l.path) } else { &l.path };
        let hidden = opts.skip_hidden && name.as_bytes().starts_with(b".");
        if l.is_dir {
            *(if hidden { &mut skipped.hidden_dirs } else { &mut skipped.ignored_dirs }) += 1;
        } else if name.as_bytes().ends_with(b".py") && !excluded_by_regex(shown, opts) {
            *(if hidden { &mut skipped.hidden } else { &mut skipped.ignored }) += 1;
        }
    }
    skipped
}

/// The entries of `dir` (as the walker spells it), for [`count_skipped`]: a directory is
/// one the walk would enter (a symlink to one only with `--follow`).
fn list_entries(dir: &Path, follow: bool) -> Vec<Listed> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let t = e.file_type().ok()?;
            let path = dir.join(e.file_name());
            let is_dir = t.is_dir()
                || (follow
                    && t.is_symlink()
                    && !e.file_name().as_bytes().ends_with(b".py")
                    && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()));
            Some(Listed { path, is_dir })
        })
        .collect()
}

fn walk_filtered(roots: &[PathBuf], opts: &WalkOptions, visit: &(dyn Fn(Source) + Sync)) -> Walked {
    let mut walked = Walked::default();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    // Every root walked, files and directories, in the order given.
    let mut walked_roots = Vec::new();
    // The files named exactly `.py` named (see [`no_module_name`]).
    let mut named_nameless = Vec::new();
    let mut regex_excluded = Vec::new();
    let forced = match opts.force_exclude.then(|| Excludes::new(opts)) {
        Some(Ok(x)) => x,
        Some(Err(e)) => {
            walked.errors.push(e);
            None
        }
        None => None,
    };
    // A path named again (`yes . | hashpyc check -`), or a directory named again under
    // another spelling (`src`, `./src/`, a link to it): walked once, under the first
    // spelling, which is the one every file would take anyway (see below).
    let mut named = std::collections::HashSet::new();
    let mut named_dirs = std::collections::HashSet::new();
    let mut named_spellings = std::collections::HashSet::new();
    let cwd = if opts.by_spelling { std::env::current_dir().unwrap_or_default() } else { PathBuf::new() };
    for root in roots {
        if crate::interrupt::requested() {
            break;
        }
        // The implied `.` that a run from the top would not enter: nothing is walked (as
        // the caller says, with the rule), and nothing was named.
        if opts.implicit_root && opts.implicit_root_excluded.is_some() {
            continue;
        }
        if !named.insert(RootSpellings::trimmed(root.as_os_str().as_bytes())) {
            walked.skipped.repeated += 1;
            continue;
        }
        // What the path leads to, links followed: stated once for every decision below.
        let target = std::fs::metadata(root);
        let target_is_dir = target.as_ref().is_ok_and(|m| m.is_dir());

        // compileall compiles a named file only when its name ends in `.py`: a stub, a
        // `py.typed` marker or a `setup.cfg` named with it (`pkg/*`, `git ls-files`) has
        // no pyc, and would otherwise be compiled into the pyc of its `.py` namesake. (A
        // path that does not exist is still an error, whatever its name.)
        if !root.as_os_str().as_bytes().ends_with(b".py") && target.is_ok() && !target_is_dir {
            walked.skipped.not_py += 1;
            continue;
        }
        if opts.force_exclude {
            let is_dir = target_is_dir;
            if forced.as_ref().is_some_and(|x| x.skips_root(root, is_dir))
                || (!is_dir && excluded_by_regex(root, opts))
            {
                walked.skipped.force_excluded += 1;
                continue;
            }
        }
        match std::fs::symlink_metadata(root) {
            // (`m.py/x.py`, under a file, does not exist either: ENOTDIR.)
            Err(e)
                if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) =>
            {
                walked.errors.push(not_found(root))
            }
            Err(e) => walked.errors.push(WalkError::Io { path: root.clone(), source: e }),
            Ok(meta) => {
                let is_dir = if meta.file_type().is_symlink() {
                    match &target {
                        Ok(_) => target_is_dir,
                        Err(e) => {
                            walked.skipped.broken_named += 1;
                            walked.errors.push(unresolved_link(root.clone(), e));
                            continue;
                        }
                    }
                } else {
                    meta.is_dir()
                };
                if is_dir {
                    use std::os::unix::fs::MetadataExt;
                    // (Each spelling its own place: one named again under another
                    // spelling of the same path, `src` and `./src/`, is walked once.)
                    let again = match &target {
                        _ if opts.by_spelling => !named_spellings.insert(crate::layout::absolute(root, &cwd)),
                        Ok(m) => !named_dirs.insert((m.dev(), m.ino())),
                        Err(_) => false,
                    };
                    if again {
                        walked.skipped.repeated += 1;
                        continue;
                    }
                    walked_roots.push(root.clone());
                    dirs.push(root.clone());
                } else if !target.as_ref().is_ok_and(|m| m.is_file()) {
                    walked.errors.push(WalkError::NotRegular(root.clone()));
                } else if excluded_by_regex(root, opts) {
                    // compileall's -x applies to named files too: said once, naming the
                    // expression and the first files (`check a.py -x.py` reads `-x.py` as
                    // `-x .py`), after the loop.
                    walked.skipped.regex_excluded += 1;
                    regex_excluded.push(root.clone());
                } else if no_module_name(root) {
                    walked.skipped.no_module_name_named += 1;
                    named_nameless.push(root.clone());
                } else if meta.file_type().is_symlink()
                    && let Some(limit) = &opts.limit_symlinks
                    && !inside_limit(root, limit)
                {
                    walked.skipped_symlinks.push(root.clone());
                } else {
                    walked_roots.push(root.clone());
                    files.push(root.clone());
                }
            }
        }
    }
    // The `__pycache__` of a named file's directory, when a symbolic link, as the walk of a
    // directory records one (an `lstat` per directory of the files named): its root is the
    // working directory the file is named from, or, for a file outside it, its directory.
    let mut named_parents = std::collections::HashSet::new();
    for file in &files {
        let dir = file.parent().unwrap_or(Path::new(""));
        if named_parents.insert(dir)
            && std::fs::symlink_metadata(dir.join("__pycache__")).is_ok_and(|m| m.file_type().is_symlink())
        {
            let below_cwd = dir.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            let root = if below_cwd || dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            walked.pycache_symlinks.push((dir.to_path_buf(), root.to_path_buf()));
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut places = Places { cwd: &cwd, dirs: Default::default() };
    if opts.follow || nested_roots(&files, &dirs, &mut places) {
        // Nested roots (`src` and `.`, `./src` and `src/m.py`, a relative and an absolute
        // spelling, a symlinked directory and its target) reach files under two spellings,
        // and each spelling is a different embedded path for the same pyc; so can symlinks
        // followed inside one root. Each file is visited once, under the spelling of the
        // first root given that reaches it (then the one without symlinks, then the
        // smallest), decided from the paths after the walk, never by which walker thread
        // got there first.
        let found = Mutex::new(Vec::new());
        let collect = |s: Source| found.lock().expect("walk lock").push(s);
        for path in files {
            collect(Source { path, explicit: true, depth: 1 });
        }
        if !dirs.is_empty() {
            walk_dirs(&dirs, opts, &mut walked, &collect);
        }
        let spellings = RootSpellings::new(&walked_roots);
        // Under a pycache prefix with `--follow`, a source and a directory are one per
        // spelling (each has pycs of its own); a pyc, a skipped entry, one per file.
        let by = opts.by_spelling;
        let sources =
            first_spellings(found.into_inner().expect("walk lock"), |s| &s.path, &spellings, &mut places, by);
        let pycs = std::mem::take(&mut walked.pycache_files);
        walked.pycache_files = first_spellings(pycs, |p| p, &spellings, &mut places, false);
        let dirs = std::mem::take(&mut walked.dirs);
        walked.dirs = first_spellings(dirs, |d| &d.0, &spellings, &mut places, by);
        let listed = std::mem::take(&mut walked.listed);
        walked.listed = first_spellings(listed, |l| &l.path, &spellings, &mut places, false);
        let nameless = std::mem::take(&mut walked.nameless);
        walked.nameless = first_spellings(nameless, |p| p, &spellings, &mut places, false);
        // On as many threads as the walk's (`--jobs`), not the global pool's one per CPU.
        let pool =
            (opts.threads > 1).then(|| rayon::ThreadPoolBuilder::new().num_threads(opts.threads).build());
        match pool {
            Some(Ok(pool)) => pool.install(|| sources.into_par_iter().for_each(visit)),
            _ => sources.into_iter().for_each(visit),
        }
    } else {
        // No root holds another (nor is any given twice) and no link is followed: every
        // file is reached once, so it is planned as the walk finds it.
        for path in files {
            visit(Source { path, explicit: true, depth: 1 });
        }
        if !dirs.is_empty() {
            walk_dirs(&dirs, opts, &mut walked, visit);
        }
    }
    if !regex_excluded.is_empty() {
        let rule = opts.skipped_by.exclude_regex.clone().unwrap_or_else(|| "--exclude-regex".into());
        walked.errors.push(WalkError::RegexExcluded(regex_excluded, rule));
    }
    // A path named on the command line is judged as named, whatever the rules for walked
    // entries say (named, a hidden or ignored file is taken, and a `.py` is a warning): when
    // a directory walked reaches it too, under any spelling, the walk does not count it
    // again. A `.py` named twice is one file, counted and warned of once.
    let mut named_places: std::collections::HashSet<PathBuf> = Default::default();
    for root in &named_nameless {
        if named_places.insert(places.file(root).0) {
            walked.skipped.no_module_name += 1;
            walked.errors.push(WalkError::NoModuleName(root.clone()));
        }
    }
    let counting = opts.respect_ignore || opts.skip_hidden;
    if counting || !walked.nameless.is_empty() {
        named_places.extend(roots.iter().map(|r| places.file(r).0));
    }
    let mut named = |p: &Path| !named_places.is_empty() && named_places.contains(&places.file(p).0);
    walked.nameless.retain(|p| !named(p));
    walked.skipped.no_module_name += walked.nameless.len();
    // The `.py` links to nothing the walk of directories found, and the directories that
    // hold them (with the implied `.`, whose paths are spelled without it, the one root).
    let broken: Vec<&Path> = walked
        .errors
        .iter()
        .filter(|e| matches!(e, WalkError::Dangling(_) | WalkError::LinkLoop(_)))
        .filter_map(WalkError::path)
        .filter(|p| !roots.iter().any(|r| r == p))
        .collect();
    walked.skipped.broken = broken.len();
    walked.skipped.broken_roots =
        dirs.iter().filter(|d| broken.iter().any(|p| opts.implicit_root || p.starts_with(d))).count();
    walked.pycache_files.sort();
    walked.legacy_pycs.sort();
    walked.dirs.sort();
    walked.errors.sort_by(|a, b| a.path().cmp(&b.path()));
    walked.skipped_symlinks.sort();
    walked.skipped_symlinks.dedup();
    walked.skipped.limit_symlinks = walked.skipped_symlinks.len();
    if counting {
        // (The named paths skipped were counted above.)
        let counted = count_skipped(&walked.listed, &walked.taken, opts, named);
        walked.skipped.ignored = counted.ignored;
        walked.skipped.ignored_dirs = counted.ignored_dirs;
        walked.skipped.hidden = counted.hidden;
        walked.skipped.hidden_dirs = counted.hidden_dirs;
    }
    walked
}

/// Where a path's pyc goes, one identity per file whatever its spelling: the canonical path
/// of its directory (symlinks resolved; lexically absolute when it cannot be resolved) and
/// its name. Directories are resolved once each, from their parent's place: one `lstat`
/// per directory, not a `readlink` per component of every path.
struct Places<'a> {
    cwd: &'a Path,
    dirs: std::collections::HashMap<PathBuf, (PathBuf, bool)>,
}

impl Places<'_> {
    /// A directory's identity, and whether it is spelled without symlinks.
    fn dir(&mut self, dir: &Path) -> (PathBuf, bool) {
        if let Some(known) = self.dirs.get(dir) {
            return known.clone();
        }
        let place = match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name))
                if !std::fs::symlink_metadata(self.cwd.join(dir))
                    .is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                let (up, direct) = self.dir(parent);
                (up.join(name), direct)
            }
            _ => self.resolved(dir),
        };
        self.dirs.insert(dir.to_path_buf(), place.clone());
        place
    }

    /// The start of a path (`/`, `.`, the working directory, `..`) or a symlink, resolved
    /// whole.
    fn resolved(&self, dir: &Path) -> (PathBuf, bool) {
        let lexical = lexically_absolute(dir, self.cwd);
        match std::fs::canonicalize(self.cwd.join(dir)) {
            Ok(real) => {
                let direct = real == lexical;
                (real, direct)
            }
            Err(_) => (lexical, true),
        }
    }

    fn file(&mut self, path: &Path) -> (PathBuf, bool) {
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => {
                let (dir, direct) = self.dir(parent);
                (dir.join(name), direct)
            }
            _ => self.dir(path),
        }
    }
}

/// Whether one root holds another or the same file twice (through `.`, `..`, absolute
/// spellings or symlinked directories): only directories hold other roots, so each root's
/// ancestors are looked up among the directories (a list of thousands of files from stdin
/// stays linear).
fn nested_roots(files: &[PathBuf], dirs: &[PathBuf], places: &mut Places<'_>) -> bool {
    let dir_places: Vec<PathBuf> = dirs.iter().map(|d| places.dir(d).0).collect();
    let holders: std::collections::HashSet<PathBuf> = dir_places.iter().cloned().collect();
    if holders.len() < dir_places.len() {
        return true;
    }
    let mut seen = std::collections::HashSet::new();
    dir_places.iter().any(|d| d.ancestors().skip(1).any(|up| holders.contains(up)))
        || files.iter().any(|f| {
            let place = places.file(f).0;
            place.ancestors().skip(1).any(|up| holders.contains(up)) || !seen.insert(place)
        })
}

/// The roots as spelled, for finding the first one a walked path was reached from: the
/// walker joins names onto a root exactly as given, so such a path starts with the root's
/// bytes and a `/` (`./src/m.py` comes from `.`, never from `src`, though `Path` compares
/// `./src` and `src` equal component by component).
struct RootSpellings<'a> {
    first: std::collections::HashMap<&'a [u8], usize>,
}

impl<'a> RootSpellings<'a> {
    fn new(roots: &'a [PathBuf]) -> Self {
        let mut first = std::collections::HashMap::new();
        for (i, r) in roots.iter().enumerate() {
            first.entry(Self::trimmed(r.as_os_str().as_bytes())).or_insert(i);
        }
        RootSpellings { first }
    }

    /// `src/` is spelled `src` once the walker has joined a name onto it.
    fn trimmed(b: &[u8]) -> &[u8] {
        if b.len() > 1 { b.strip_suffix(b"/").unwrap_or(b) } else { b }
    }

    /// The index of the first root `path` is spelled under (itself, or a root, `/` and
    /// more), or `usize::MAX`.
    fn rank(&self, path: &Path) -> usize {
        let b = path.as_os_str().as_bytes();
        let whole = self.first.get(Self::trimmed(b)).copied();
        let prefixes = b.iter().enumerate().filter(|&(_, &c)| c == b'/').map(|(k, _)| &b[..k.max(1)]);
        prefixes.filter_map(|p| self.first.get(p).copied()).chain(whole).min().unwrap_or(usize::MAX)
    }
}

/// One item per file, whatever the spelling (see [`Places`]): of the items with the same
/// place, the one spelled under the first root, then one spelled without symlinks, then
/// the smallest path in bytes. With `by_spelling`, one per absolute path as spelled (what
/// a pycache prefix mirrors: `src/m.py` and `./src/m.py` are one, a link's spelling is
/// another).
fn first_spellings<T>(
    items: Vec<T>,
    path: impl Fn(&T) -> &PathBuf,
    spellings: &RootSpellings<'_>,
    places: &mut Places<'_>,
    by_spelling: bool,
) -> Vec<T> {
    let mut keyed: Vec<(PathBuf, usize, bool, T)> = items
        .into_iter()
        .map(|t| {
            let (place, direct) = if by_spelling {
                (crate::layout::absolute(path(&t), places.cwd), true)
            } else {
                places.file(path(&t))
            };
            (place, spellings.rank(path(&t)), !direct, t)
        })
        .collect();
    keyed.sort_by(|a, b| {
        let (x, y) = (path(&a.3).as_os_str().as_bytes(), path(&b.3).as_os_str().as_bytes());
        (&a.0, a.1, a.2, x).cmp(&(&b.0, b.1, b.2, y))
    });
    keyed.dedup_by(|later, first| later.0 == first.0);
    keyed.into_iter().map(|(_, _, _, t)| t).collect()
}

fn excluded_by_regex(path: &Path, opts: &WalkOptions) -> bool {
    opts.exclude_regex.as_ref().is_some_and(|re| re.is_match(&regex_subject(path.as_os_str().as_bytes())))
}

/// The first of the 128 characters [`regex_subject`] puts for the bytes 0x80–0xFF that are
/// not UTF-8: U+10DC80, in a private-use plane, as Python's surrogateescape puts U+DC80.
const ESCAPED_BYTE_BASE: u32 = 0x10_DC00;

/// `name` as the text compileall's `-x` searches: Python decodes a file name with
/// surrogateescape, each byte that is not UTF-8 one lone surrogate (U+DC80 + byte - 0x80),
/// which `.`, `[^/]` and `\S` match and `\w` does not. A Rust string holds no surrogate,
/// so each such byte becomes one private-use character (U+10DC80 + byte - 0x80) that
/// matches the same classes; a name that is UTF-8 is searched as it is.
pub fn regex_subject(name: &[u8]) -> std::borrow::Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(name) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(name.len() * 2);
    for chunk in name.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            out.push(char::from_u32(ESCAPED_BYTE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `path` against `cwd` with `.` and `..` resolved lexically, for matching globs that are
/// relative to another directory.
pub(crate) fn lexically_absolute(path: &Path, cwd: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The `--exclude` globs as the lines of a `.gitignore` at `base` (so `!GLOB` takes back
/// what an earlier line skipped), matched against paths made lexically absolute. The base
/// is canonical (a configuration file named as `../pyproject.toml` or through a symlink),
/// and so is the directory of a path that is not under it as spelled (a root reached
/// through a symlink, such as the shell's `$PWD/sub` in a linked directory), once per
/// directory: both sides name the same directory the same way.
/// An exclude glob as the gitignore matcher takes it: anchored at the directory the globs
/// are relative to, so a leading `./` (as hashpyc's own output spells paths under
/// `compile .`, and as ruff accepts) is dropped; gitignore would match nothing with it. A
/// glob reaching above that directory (`../x`) could never match anything walked and is
/// refused, as is an empty one.
pub fn anchored_glob(g: &str) -> Result<String, String> {
    let (not, mut rest) = match g.strip_prefix('!') {
        Some(r) => ("!", r),
        None => ("", g),
    };
    while let Some(r) = rest.strip_prefix("./") {
        rest = r.trim_start_matches('/');
    }
    if rest.is_empty() {
        return Err("an empty glob would skip everything".into());
    }
    if rest == ".." || rest.starts_with("../") {
        return Err(format!(
            "`{g}` reaches above the directory globs are relative to (the configuration file's, or the \
             working directory), where nothing walked can match it: name the path from there, or use \
             --exclude-regex"
        ));
    }
    globset::Glob::new(rest).map_err(|e| format!("invalid glob `{g}`: {}", e.kind()))?;
    Ok(format!("{not}{rest}"))
}

struct Excludes {
    matcher: crate::globs::GlobLines,
    cwd: PathBuf,
    /// A configuration file's globs (its directory the base) apply only below the base,
    /// as ruff's project-relative excludes do: a path outside it is another tree, which
    /// that file does not describe. The command line's (the working directory the base)
    /// apply to any path walked.
    inside_only: bool,
    /// The canonical path of each directory outside the base as spelled (none when it
    /// cannot be resolved).
    canonical: Mutex<std::collections::HashMap<PathBuf, Option<PathBuf>>>,
}

impl Excludes {
    fn new(opts: &WalkOptions) -> Result<Option<Excludes>, WalkError> {
        if opts.exclude_globs.is_empty() {
            return Ok(None);
        }
        let cwd = std::env::current_dir().unwrap_or_default();
        let base = opts.exclude_base.as_deref().unwrap_or(&cwd);
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| lexically_absolute(base, &cwd));
        let matcher = crate::globs::GlobLines::new(&base, &opts.exclude_globs)
            .map_err(|e| WalkError::Other(format!("invalid --exclude glob: {e}")))?;
        let inside_only = opts.exclude_base.is_some();
        Ok(Some(Excludes { matcher, cwd, inside_only, canonical: Default::default() }))
    }

    /// `path` under the base: absolute, with `..` resolved as the kernel resolves it (the
    /// part up to the last `..` with its links followed: `link/..` is the parent of where
    /// `link` leads) and the rest as spelled, as a path without `..` is (its links kept:
    /// `packages/../lnk/m.py` is `lnk/m.py`); when that is not under the base, its
    /// directory's canonical path and its name; `Err` (lexically absolute) when neither is.
    fn in_base(&self, path: &Path) -> Result<PathBuf, PathBuf> {
        let base = self.matcher.path();
        let lock = || self.canonical.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // The canonical path of `dir`, once per directory (none when it cannot be resolved).
        let canonical = |dir: &Path| {
            let known = lock().get(dir).cloned();
            known.unwrap_or_else(|| {
                let real = std::fs::canonicalize(dir).ok();
                lock().insert(dir.to_path_buf(), real.clone());
                real
            })
        };
        let parts: Vec<_> = path.components().collect();
        let last_up = parts.iter().rposition(|c| *c == std::path::Component::ParentDir);
        let resolved = last_up.and_then(|i| {
            let up: PathBuf = parts[..=i].iter().collect();
            let rest: PathBuf = parts[i + 1..].iter().collect();
            Some(lexically_absolute(&rest, &canonical(&self.cwd.join(up))?))
        });
        // (A path that cannot be resolved, such as a directory since deleted, by text.)
        let abs = resolved.unwrap_or_else(|| lexically_absolute(path, &self.cwd));
        if abs.starts_with(base) {
            return Ok(abs);
        }
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else { return Err(abs) };
        match canonical(dir) {
            Some(real) if real.starts_with(base) => Ok(real.join(name)),
            _ => Err(abs),
        }
    }

    /// Whether the walker skips `path` (its parents were walked into).
    fn skips(&self, path: &Path, is_dir: bool) -> bool {
        let path = match self.in_base(path) {
            Ok(inside) => inside,
            Err(_) if self.inside_only => return false,
            Err(abs) => abs,
        };
        self.matcher.matched(&path, is_dir).is_ignore()
    }

    /// Whether a root is excluded (`--force-exclude`): exactly when a walk from the base
    /// would not select it, a directory on the way down excluded (nothing below it taken
    /// back) or the root itself.
    fn skips_root(&self, path: &Path, is_dir: bool) -> bool {
        self.in_base(path).is_ok_and(|p| self.matcher.matched_from_root(&p, is_dir).is_ignore())
    }
}

/// Whether the walk would enter a directory that does not exist (any more) below one it
/// walked: the rules the walker applies to a directory (`--exclude`, `--skip-hidden`, the
/// ignore files of `--respect-gitignore`), for the pycs a pycache prefix keeps of a source
/// directory since deleted (`check --stray`). The ignore files are read as the `ignore`
/// crate reads them, once per directory: each directory's `.ignore`, nearest first, then
/// `.gitignore` up to the repository's root (where `.git` is, a directory or a file) and its
/// `info/exclude` (see `git_common_dir`), then the global excludes file, the first match
/// deciding; a whitelist beats the hidden rule.
pub struct GoneDirRules<'a> {
    opts: &'a WalkOptions,
    excludes: Option<Excludes>,
    cwd: PathBuf,
    levels: std::collections::HashMap<PathBuf, IgnoreLevel>,
    global: Option<Gitignore>,
}

/// One directory's ignore files.
struct IgnoreLevel {
    ignore: Gitignore,
    gitignore: Gitignore,
    exclude: Gitignore,
    has_git: bool,
}

impl IgnoreLevel {
    fn read(dir: &Path) -> IgnoreLevel {
        let file = |path: PathBuf| {
            let mut b = GitignoreBuilder::new(dir);
            // A missing or unreadable file, or a bad line, is no rule (as for the walker).
            let _ = b.add(path);
            b.build().unwrap_or_else(|_| Gitignore::empty())
        };
        let git = dir.join(".git");
        // `.git` may be a file (a linked worktree, a submodule): it marks the repository's
        // root all the same.
        let git_type = git.metadata().ok().map(|m| m.file_type());
        IgnoreLevel {
            ignore: file(dir.join(".ignore")),
            gitignore: file(dir.join(".gitignore")),
            exclude: git_common_dir(&git, git_type.is_some_and(|t| t.is_file()))
                .map_or_else(Gitignore::empty, |common| file(common.join("info/exclude"))),
            has_git: git_type.is_some() || dir.join(".jj").exists(),
        }
    }
}

/// The directory whose `info/exclude` the walk reads for a directory holding `.git`, as the
/// `ignore` crate finds it (`resolve_git_commondir`): `.git` itself unless it is a file;
/// for a file (`gitdir: DIR`, as a linked worktree and a submodule have), the common
/// directory that `DIR/commondir` names (a linked worktree's: its main repository's
/// `.git`), relative to `DIR` when it starts with `.`; none when the file says no
/// `gitdir: ` or `DIR` has no `commondir` (a submodule's). Paths are taken as written, a
/// relative `DIR` against the working directory, as the crate takes them.
fn git_common_dir(git: &Path, is_file: bool) -> Option<PathBuf> {
    if !is_file {
        return Some(git.to_path_buf());
    }
    let first_line =
        |path: &Path| std::io::BufReader::new(std::fs::File::open(path).ok()?).lines().next()?.ok();
    let git_dir = PathBuf::from(first_line(git)?.strip_prefix("gitdir: ")?);
    let common = first_line(&git_dir.join("commondir"))?;
    Some(if common.starts_with('.') { git_dir.join(common) } else { PathBuf::from(common) })
}

/// Ignore (true), whitelisted (false), or no rule.
fn verdict<T>(m: ignore::Match<T>) -> Option<bool> {
    if m.is_ignore() {
        Some(true)
    } else if m.is_whitelist() {
        Some(false)
    } else {
        None
    }
}

impl<'a> GoneDirRules<'a> {
    pub fn new(opts: &'a WalkOptions) -> Self {
        GoneDirRules {
            opts,
            // A bad glob was reported by the walk.
            excludes: Excludes::new(opts).ok().flatten(),
            cwd: std::env::current_dir().unwrap_or_default(),
            levels: Default::default(),
            global: None,
        }
    }

    /// Whether the walk would enter `dir` (spelled as the walk spells paths) if it existed.
    pub fn would_walk(&mut self, dir: &Path) -> bool {
        if self.excludes.as_ref().is_some_and(|x| x.skips(dir, true)) {
            return false;
        }
        let ignored = if self.opts.respect_ignore { self.ignored(dir) } else { None };
        let hidden = self.opts.skip_hidden && dir.file_name().is_some_and(|n| n.as_bytes().starts_with(b"."));
        match ignored {
            Some(ignore) => !ignore,
            None => !hidden,
        }
    }

    fn ignored(&mut self, dir: &Path) -> Option<bool> {
        let abs = lexically_absolute(dir, &self.cwd);
        let parents: Vec<&Path> = abs.ancestors().skip(1).collect();
        for p in &parents {
            if !self.levels.contains_key(*p) {
                self.levels.insert(p.to_path_buf(), IgnoreLevel::read(p));
            }
        }
        let level = |p: &Path| &self.levels[p];
        let any_git = parents.iter().any(|p| level(p).has_git);
        let (mut ignore, mut git, mut exclude, mut saw_git) = (None, None, None, false);
        for p in &parents {
            let l = level(p);
            ignore = ignore.or_else(|| verdict(l.ignore.matched(&abs, true)));
            if any_git && !saw_git {
                git = git.or_else(|| verdict(l.gitignore.matched(&abs, true)));
                exclude = exclude.or_else(|| verdict(l.exclude.matched(&abs, true)));
            }
            saw_git |= l.has_git;
        }
        let global = if any_git {
            verdict(self.global.get_or_insert_with(|| Gitignore::global().0).matched(&abs, true))
        } else {
            None
        };
        ignore.or(git).or(exclude).or(global)
    }
}

/// The rule that keeps a walk out of a directory (see [`implicit_root_skipped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirRule {
    /// An `--exclude` glob (a configuration file's `exclude`).
    Exclude,
    /// The ignore files (`--respect-gitignore`).
    Ignored,
    /// `--skip-hidden`.
    Hidden,
}

/// Whether a walk of `top` (the configuration file's directory) would stay out of the
/// working directory, which lies below it: the first directory on the way down that a rule
/// skips (`top/tests` for `exclude = ["/tests/"]` run in `top/tests/unit`) and the rule, as
/// the walker decides for a directory below a root, relative to `top` (`tests`). None when the working directory is not
/// strictly below `top`. For a bare run, whose implied `.` is no path named: a run from a
/// subdirectory selects what a run from the top does below it.
pub fn implicit_root_skipped(opts: &WalkOptions, top: &Path) -> Option<(DirRule, PathBuf)> {
    if opts.exclude_globs.is_empty() && !opts.respect_ignore && !opts.skip_hidden {
        return None;
    }
    let cwd = std::fs::canonicalize(std::env::current_dir().ok()?).ok()?;
    let top = std::fs::canonicalize(top).ok()?;
    let below = cwd.strip_prefix(&top).ok()?;
    let excludes = Excludes::new(opts).ok().flatten();
    let mut rules = GoneDirRules::new(opts);
    let mut dir = top.clone();
    for part in below.components() {
        dir.push(part);
        let rel = || dir.strip_prefix(&top).unwrap_or(&dir).to_path_buf();
        if excludes.as_ref().is_some_and(|x| x.skips(&dir, true)) {
            return Some((DirRule::Exclude, rel()));
        }
        let hidden = opts.skip_hidden && dir.file_name().is_some_and(|n| n.as_bytes().starts_with(b"."));
        match if opts.respect_ignore { rules.ignored(&dir) } else { None } {
            Some(true) => return Some((DirRule::Ignored, rel())),
            None if hidden => return Some((DirRule::Hidden, rel())),
            _ => {}
        }
    }
    None
}

/// A directory's identity (device and inode), links followed; `""` is the working
/// directory.
pub(crate) fn dir_id(path: &Path) -> Option<(u64, u64)> {
    crate::write::file_id(if path.as_os_str().is_empty() { Path::new(".") } else { path })
}

/// Whether `path` resolves strictly inside `limit` (`-e`/`--limit-symlinks`), as
/// compileall's `limit in resolved.parents`: the limit itself is outside.
fn inside_limit(path: &Path, limit: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|t| t.starts_with(limit) && t != *limit)
}

/// What a walk under `--follow` shares with its walker threads: the directories walked or
/// being walked (by identity), the directory links it met (not entered: each is decided
/// after the walk), and the entries it left for those reasons (taken, for counting what
/// the opt-in rules skipped).
#[derive(Default)]
struct Followed {
    ids: Mutex<std::collections::HashSet<(u64, u64)>>,
    /// Each link met and its depth below the walk's roots.
    links: Mutex<Vec<(PathBuf, usize)>>,
    left: Mutex<Vec<PathBuf>>,
}

/// Walk `dirs`, following directory links (`--follow`) without ever entering a directory
/// twice: the roots are walked first, links not entered, so every directory reachable
/// without a link is walked under that spelling; then each link met, fewest links first,
/// then in the order of the roots and of their paths, is walked as a root of its own if
/// its directory was not walked yet (entering no directory walked before), and so on with
/// the links met there. A link to a directory walked is not followed: the files are
/// walked under the other spelling; one that leads to a directory containing it as
/// spelled (`pkg/up` → `..`) is a note, once per link. Each directory is read once, so
/// a mesh of packages linking to each other costs what the packages do. With
/// `by_spelling` (a pycache prefix), every link met is walked under its own spelling,
/// each round's together, except one to a directory on its own path as spelled (the
/// note): a spelling never holds a directory twice, so the walk ends.
fn walk_dirs(dirs: &[PathBuf], opts: &WalkOptions, walked: &mut Walked, visit: &(dyn Fn(Source) + Sync)) {
    if !opts.follow {
        return walk_tree(dirs, 0, opts, walked, visit, None);
    }
    use std::sync::Arc;
    let followed = Arc::new(Followed::default());
    for d in dirs {
        followed.ids.lock().expect("walk lock").extend(dir_id(d));
    }
    walk_tree(dirs, 0, opts, walked, visit, Some((followed.clone(), false)));
    let spellings = RootSpellings::new(dirs);
    let cwd = std::env::current_dir().unwrap_or_default();
    // Each link once, by where it is (its directory's identity and its name); under a
    // pycache prefix (`by_spelling`), once per spelling, and noted once per link.
    let mut seen = std::collections::HashSet::new();
    let mut spelled = std::collections::HashSet::new();
    let mut noted = std::collections::HashSet::new();
    let mut batch: std::collections::BTreeMap<usize, Vec<PathBuf>> = Default::default();
    let mut round = std::mem::take(&mut *followed.links.lock().expect("walk lock"));
    while !round.is_empty() && !crate::interrupt::requested() {
        round.sort_by(|a, b| {
            (spellings.rank(&a.0), a.0.as_os_str().as_bytes())
                .cmp(&(spellings.rank(&b.0), b.0.as_os_str().as_bytes()))
        });
        let mut next = Vec::new();
        for (link, depth) in round {
            let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else { continue };
            let Some(target) = dir_id(&link) else { continue };
            let here = (dir_id(parent), name.to_os_string());
            let first = seen.insert(here.clone());
            // Under a pycache prefix every spelling is walked, but none through a link to
            // a directory on its own path as spelled: each spelling holds a directory at
            // most once, so there are finitely many.
            let new =
                if opts.by_spelling { spelled.insert(crate::layout::absolute(&link, &cwd)) } else { first };
            if !new {
                continue;
            }
            // (Walked once, only a link to a directory walked can lead to an ancestor.)
            if opts.by_spelling || followed.ids.lock().expect("walk lock").contains(&target) {
                let ancestor = parent
                    .ancestors()
                    .filter(|a| !a.as_os_str().is_empty())
                    .find(|a| dir_id(a) == Some(target));
                if let Some(ancestor) = ancestor {
                    if noted.insert(here) {
                        let written = std::fs::read_link(&link).unwrap_or_else(|_| ancestor.to_path_buf());
                        let mut e = WalkError::Loop(link.clone(), ancestor.to_path_buf(), written);
                        if opts.implicit_root {
                            e.strip_dot();
                        }
                        walked.errors.push(e);
                    }
                    continue;
                }
                if !opts.by_spelling {
                    continue;
                }
            }
            if opts.by_spelling {
                // (Decided without the walk: the round's spellings are walked together,
                // one walk per depth, as a walk per link costs a walker's start each.)
                batch.entry(depth).or_default().push(link);
                continue;
            }
            followed.ids.lock().expect("walk lock").insert(target);
            walk_tree(
                std::slice::from_ref(&link),
                depth,
                opts,
                walked,
                visit,
                Some((followed.clone(), true)),
            );
            next.append(&mut followed.links.lock().expect("walk lock"));
        }
        for (depth, links) in std::mem::take(&mut batch) {
            walk_tree(&links, depth, opts, walked, visit, Some((followed.clone(), false)));
            next.append(&mut followed.links.lock().expect("walk lock"));
        }
        round = next;
    }
    if opts.respect_ignore || opts.skip_hidden {
        walked.taken.extend(std::mem::take(&mut *followed.left.lock().expect("walk lock")));
    }
}

/// One walk of `dirs` (found `depth` components below the roots given); with `follow`,
/// directory links are met, not entered, and with its flag a directory walked before is
/// not entered (see [`walk_dirs`]).
fn walk_tree(
    dirs: &[PathBuf],
    depth: usize,
    opts: &WalkOptions,
    walked: &mut Walked,
    visit: &(dyn Fn(Source) + Sync),
    follow: Option<(std::sync::Arc<Followed>, bool)>,
) {
    let offset = depth;
    let mut builder = WalkBuilder::new(&dirs[0]);
    for d in &dirs[1..] {
        builder.add(d);
    }
    builder
        .standard_filters(false)
        .hidden(opts.skip_hidden)
        .ignore(opts.respect_ignore)
        .git_ignore(opts.respect_ignore)
        .git_global(opts.respect_ignore)
        .git_exclude(opts.respect_ignore)
        .parents(opts.respect_ignore)
        .follow_links(opts.follow)
        .max_depth(opts.max_depth.map(|m| m.saturating_sub(offset)))
        .threads(opts.threads.max(1));
    // Globs from the command line are matched relative to the current directory, like
    // ripgrep's --glob; those of a configuration file relative to its directory.
    let excludes = match Excludes::new(opts) {
        Ok(x) => x,
        Err(e) => {
            walked.errors.push(e);
            None
        }
    };
    let implicit_root = opts.implicit_root;
    // A walk that starts inside an environment (`.venv/lib/python3.12/site-packages`).
    walked.environments.extend(dirs.iter().filter_map(|d| {
        let comps: Vec<_> = d.components().collect();
        let at = comps.windows(2).rposition(|w| {
            lib_version(w[1].as_os_str()).is_some()
                && matches!(w[0].as_os_str().as_bytes(), b"lib" | b"lib64")
        })?;
        Some((comps[..at].iter().collect(), lib_version(comps[at + 1].as_os_str())))
    }));
    // What the excludes pass over: `.py` files and directories by a glob, `.py` files by
    // the regex (said only when nothing is selected).
    let passed_over = std::sync::Arc::new([AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0)]);
    let passed = std::sync::Arc::clone(&passed_over);
    // What the opt-in rules skip is counted from the entries of each directory walked.
    let counting = opts.respect_ignore || opts.skip_hidden;
    let max_depth = opts.max_depth;
    let follow_filter = follow.clone();
    let pycache_symlinks = std::sync::Arc::new(Mutex::new(Vec::new()));
    let linked_pycaches = std::sync::Arc::clone(&pycache_symlinks);
    builder.filter_entry(move |e| {
        // Never a source directory: its pycs are listed from its parent's entry.
        if e.file_name() == "__pycache__" {
            if e.path_is_symlink()
                && let (Some(dir), Some(root)) = (e.path().parent(), e.path().ancestors().nth(e.depth()))
            {
                linked_pycaches.lock().expect("walk lock").push((dir.to_path_buf(), root.to_path_buf()));
            }
            return false;
        }
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        if e.depth() == 0 {
            return true;
        }
        if excludes.as_ref().is_some_and(|x| x.skips(e.path(), is_dir)) {
            if is_dir {
                passed[1].fetch_add(1, Ordering::Relaxed);
            } else if e.file_name().as_bytes().ends_with(b".py") {
                passed[0].fetch_add(1, Ordering::Relaxed);
            }
            return false;
        }
        if let Some((followed, prune)) = &follow_filter
            && is_dir
        {
            let lock = |m: &Mutex<Vec<PathBuf>>| m.lock().expect("walk lock").push(e.path().to_path_buf());
            if e.path_is_symlink() {
                followed.links.lock().expect("walk lock").push((e.path().to_path_buf(), offset + e.depth()));
                lock(&followed.left);
                return false;
            }
            // Recorded once its entries are read (below the depth limit).
            let read = max_depth.is_none_or(|m| offset + e.depth() < m);
            if let Some(id) = dir_id(e.path()) {
                let mut ids = followed.ids.lock().expect("walk lock");
                if *prune && ids.contains(&id) {
                    drop(ids);
                    lock(&followed.left);
                    return false;
                }
                if read {
                    ids.insert(id);
                }
            }
        }
        true
    });

    let found = Mutex::new(Walked::default());
    let visitor = |entry: Result<ignore::DirEntry, ignore::Error>| -> WalkState {
        // An interrupted run reads no further entry.
        if crate::interrupt::requested() {
            return WalkState::Quit;
        }
        let found = &found;
        let entry = match entry {
            Ok(e) => e,
            Err(err) => {
                let err = convert_error(err);
                if counting && let Some(p) = err.path() {
                    // (Not skipped: reported, or a link that leads nowhere.)
                    found.lock().expect("walk lock").taken.insert(p.to_path_buf());
                }
                // A link to a directory containing it, as the walker sees one: decided
                // with every other link met (a note, once per link).
                if let (Some((followed, _)), WalkError::Loop(link, ..)) = (&follow, &err) {
                    followed.links.lock().expect("walk lock").push((link.clone(), 0));
                    return WalkState::Continue;
                }
                if let Some(mut e) = classify(err, opts) {
                    if implicit_root {
                        e.strip_dot();
                    }
                    found.lock().expect("walk lock").errors.push(e);
                }
                return WalkState::Continue;
            }
        };
        let path =
            if implicit_root { entry.path().strip_prefix(".").unwrap_or(entry.path()) } else { entry.path() };
        if counting {
            found.lock().expect("walk lock").taken.insert(entry.path().to_path_buf());
        }

        let Some(ft) = entry.file_type() else {
            return WalkState::Continue;
        };
        if ft.is_dir() || (entry.depth() == 0 && path.is_dir()) {
            if counting && opts.max_depth.is_none_or(|m| offset + entry.depth() < m) {
                let listed = list_entries(entry.path(), opts.follow);
                for l in listed.iter().filter(|l| opts.respect_ignore && !l.is_dir) {
                    if matches!(l.path.file_name().map(OsStr::as_bytes), Some(b".gitignore" | b".ignore"))
                        && let Some(w) = ignore_file_warning(&l.path, &path.join(l.path.file_name().unwrap()))
                    {
                        found.lock().expect("walk lock").errors.push(w);
                    }
                }
                found.lock().expect("walk lock").listed.extend(listed);
            }
            // The pycs of a directory whose sources are walked: those in its
            // `__pycache__` and, with `--legacy`, the `X.pyc` files beside the
            // sources. The selection rules pick sources, not pycs: a `.gitignore`
            // naturally lists `__pycache__/` and `*.pyc`, and must not hide them.
            if opts.collect_dirs {
                found.lock().expect("walk lock").dirs.push((path.to_path_buf(), offset + entry.depth()));
            }
            // An environment's `lib/pythonX.Y`: the directory above `lib` is the environment.
            if let Some(version) = path.file_name().and_then(lib_version)
                && let Some(lib) = path.parent()
                && matches!(lib.file_name().map(OsStr::as_bytes), Some(b"lib" | b"lib64"))
            {
                let env = lib.parent().unwrap_or(Path::new("")).to_path_buf();
                found.lock().expect("walk lock").environments.push((env, Some(version)));
            }
            if opts.max_depth.is_none_or(|m| offset + entry.depth() < m) {
                if opts.collect_pycache {
                    let pycache = path.join("__pycache__");
                    let pycs = match list_pycs(&pycache, false) {
                        Ok(pycs) => pycs,
                        Err(e) => {
                            if let Some(e) = unlistable(&pycache, e) {
                                found.lock().expect("walk lock").errors.push(e);
                            }
                            Vec::new()
                        }
                    };
                    let linked = !pycs.is_empty()
                        && std::fs::symlink_metadata(&pycache).is_ok_and(|m| m.file_type().is_symlink());
                    let mut found = found.lock().expect("walk lock");
                    found.pycache_files.extend(pycs);
                    if linked {
                        found.pycache_links.push(path.to_path_buf());
                    }
                }
                if opts.collect_legacy {
                    // (A directory that cannot be listed is the walk's own error.)
                    let pycs = list_pycs(path, true).unwrap_or_default();
                    found.lock().expect("walk lock").legacy_pycs.extend(pycs);
                }
            }
            return WalkState::Continue;
        }
        if !entry.file_name().as_bytes().ends_with(b".py") {
            if entry.file_name() == "pyvenv.cfg" {
                let env = path.parent().unwrap_or(Path::new("")).to_path_buf();
                found.lock().expect("walk lock").environments.push((env, None));
            }
            return WalkState::Continue;
        }
        if excluded_by_regex(path, opts) {
            passed_over[2].fetch_add(1, Ordering::Relaxed);
            return WalkState::Continue;
        }
        if no_module_name(path) {
            found.lock().expect("walk lock").nameless.push(path.to_path_buf());
            return WalkState::Continue;
        }
        if entry.path_is_symlink() {
            match std::fs::metadata(path) {
                Err(e) => {
                    found.lock().expect("walk lock").errors.push(unresolved_link(path.to_path_buf(), &e));
                    return WalkState::Continue;
                }
                // A link to a directory is not followed, as compileall does not.
                Ok(m) if m.is_dir() => return WalkState::Continue,
                Ok(m) if !m.is_file() => {
                    let e = WalkError::Special(path.to_path_buf(), special_kind(m.file_type()));
                    found.lock().expect("walk lock").errors.push(e);
                    return WalkState::Continue;
                }
                Ok(_) => {}
            }
            // (Strictly inside, as compileall's `limit in resolved.parents`.)
            if let Some(limit) = &opts.limit_symlinks
                && !inside_limit(path, limit)
            {
                found.lock().expect("walk lock").skipped_symlinks.push(path.to_path_buf());
                return WalkState::Continue;
            }
        } else if !ft.is_file() {
            let e = WalkError::Special(path.to_path_buf(), special_kind(ft));
            found.lock().expect("walk lock").errors.push(e);
            return WalkState::Continue;
        }
        visit(Source { path: path.to_path_buf(), explicit: false, depth: offset + entry.depth() });
        WalkState::Continue
    };
    // The parallel walker cannot report a thread it could not start: it panics, or waits
    // for ever for it. Where a process or memory limit (`ulimit -u`, `ulimit -v`) leaves
    // too few threads, the tree is walked on this one, the same entries in another order.
    if crate::threads_available(opts.threads.max(1)) {
        builder.build_parallel().run(|| Box::new(&visitor));
    } else {
        for entry in builder.build() {
            if matches!(visitor(entry), WalkState::Quit) {
                break;
            }
        }
    }
    let found = found.into_inner().expect("walk lock");
    walked.errors.extend(found.errors);
    walked.pycache_files.extend(found.pycache_files);
    walked.pycache_links.extend(found.pycache_links);
    let linked = std::mem::take(&mut *pycache_symlinks.lock().expect("walk lock"));
    walked.pycache_symlinks.extend(linked.into_iter().map(|(dir, root)| {
        let dir =
            if implicit_root { dir.strip_prefix(".").map_or(dir.clone(), Path::to_path_buf) } else { dir };
        (dir, root)
    }));
    walked.legacy_pycs.extend(found.legacy_pycs);
    walked.dirs.extend(found.dirs);
    walked.skipped_symlinks.extend(found.skipped_symlinks);
    walked.nameless.extend(found.nameless);
    walked.environments.extend(found.environments);
    walked.listed.extend(found.listed);
    walked.taken.extend(found.taken);
    walked.skipped.walk_excluded += passed_over[0].load(Ordering::Relaxed);
    walked.skipped.walk_excluded_dirs += passed_over[1].load(Ordering::Relaxed);
    walked.skipped.walk_regex_excluded += passed_over[2].load(Ordering::Relaxed);
}

/// The version a directory named as an installation's library is for: `python3.12`,
/// `python3.13t`.
fn lib_version(name: &OsStr) -> Option<(u8, u8)> {
    let rest = name.to_str()?.strip_prefix("python")?;
    let rest = rest.strip_suffix('t').unwrap_or(rest);
    let (major, minor) = rest.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The version a `pyvenv.cfg` records (`version_info = 3.12.1`, as uv and virtualenv write
/// it; `version = 3.12.1`, as `python -m venv` does), and the line saying it.
fn pyvenv_version(cfg: &Path) -> Option<((u8, u8), String)> {
    let text = std::fs::read_to_string(cfg).ok()?;
    text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if !matches!(key.trim(), "version_info" | "version") {
            return None;
        }
        let mut parts = value.trim().split('.');
        let version = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        Some((version, format!("{} = {}", key.trim(), value.trim())))
    })
}

/// A warning for each environment the walk entered (once however many ways it was
/// entered) whose Python is none of the targets': `hashpyc compile` at a project root
/// compiles `.venv` for `python3`, whose pycs the venv's own interpreter never reads. The
/// version is its `pyvenv.cfg`'s, else its `lib/pythonX.Y`'s; `verb` is what the run does
/// to pycs (`writes`, `checks`).
pub fn environment_warnings(
    environments: &[(PathBuf, Option<(u8, u8)>)],
    targets: &[std::sync::Arc<crate::target::Target>],
    verb: &str,
) -> Vec<String> {
    let mut by_dir = std::collections::BTreeMap::<&Path, Option<(u8, u8)>>::new();
    for (dir, lib) in environments {
        let known = by_dir.entry(dir).or_default();
        *known = known.or(*lib);
    }
    let mut out = Vec::new();
    for (dir, lib) in by_dir {
        let shown = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let cfg = shown.join("pyvenv.cfg");
        let (version, why) = match (pyvenv_version(&cfg), lib) {
            (Some((v, line)), _) => (v, format!("`{line}` in {}", crate::report::ticked(&cfg))),
            (None, Some(v)) => (
                v,
                format!("its {}", crate::report::ticked(&shown.join(format!("lib/python{}.{}", v.0, v.1)))),
            ),
            (None, None) => continue,
        };
        if targets.iter().any(|t| t.minor() == version) {
            continue;
        }
        let mut excluded = shown.as_os_str().to_owned();
        excluded.push("/");
        let (named, env) = (crate::report::ticked(shown), crate::report::shell_word(&excluded));
        // A target that is this environment's own interpreter (`--python v/bin/python`)
        // running another version: the environment is broken (a venv copied into an image
        // whose base has another Python, its `bin/python` a link that now runs that one),
        // and giving that interpreter, which the run already does, cannot help.
        if let Some(t) = targets.iter().find(|t| runs_in(&t.executable, shown)) {
            out.push(format!(
                "{named} is an environment of Python {}.{} ({why}), but its own interpreter {} \
                 runs CPython {}.{}.{}: the environment is broken (its interpreter was replaced, as \
                 when a venv is copied onto a base image with another Python); recreate it with \
                 the Python it should run, or use a base image with Python {}.{}",
                version.0,
                version.1,
                // As under the environment named here (the target is resolved).
                crate::report::ticked(&shown.join("bin").join(t.executable.file_name().unwrap_or_default())),
                t.version.0,
                t.version.1,
                t.version.2,
                version.0,
                version.1,
            ));
            continue;
        }
        out.push(format!(
            "{named} is an environment of Python {}.{} ({why}), and this run {verb} pycs for {} only, \
             which its interpreter never reads: give that interpreter (`--python {}`), or exclude the \
             environment (`--exclude {env}`)",
            version.0,
            version.1,
            crate::target::targets_label(targets),
            crate::report::shell_path(&shown.join("bin/python")),
        ));
    }
    out
}

/// Whether `executable` (a target as named) is in environment `env`'s `bin` directory:
/// the environment's own interpreter, whatever it now runs (the interpreter itself may be
/// a link elsewhere, so only the directory is resolved).
fn runs_in(executable: &Path, env: &Path) -> bool {
    let Some(dir) = executable.parent() else { return false };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    match (std::fs::canonicalize(dir), std::fs::canonicalize(env.join("bin"))) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The entries named `*.pyc` in `dir` (only regular files with `files_only`), and the
/// temporary files of pycs a write left there (`.m.cpython-312.pyc.a1B2c3.tmp`, see
/// [`crate::write::temp_target`]), spelled under `dir` as given (`""` for the implied
/// working directory), or why it cannot be listed.
fn list_pycs(dir: &Path, files_only: bool) -> std::io::Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?;
    let pyc_or_temp = |name: &[u8]| {
        name.ends_with(b".pyc") || crate::write::temp_target(name).is_some_and(|t| t.ends_with(b".pyc"))
    };
    Ok(rd
        .filter_map(Result::ok)
        .filter(|e| pyc_or_temp(e.file_name().as_bytes()))
        .filter(|e| !files_only || e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| dir.join(e.file_name()))
        .collect())
}

/// The error of a directory of pycs (a `__pycache__`, a directory of a prefix's mirror)
/// that `check --stray` could not list, or None when there is nothing to list: no such
/// directory, not a directory, or a symbolic link that leads nowhere (each `check`'s
/// finding for the pycs that belong there). One whose own parent cannot be searched is not
/// seen at all (its sources are `unreadable`, or the parent is the walk's error).
pub fn unlistable(dir: &Path, e: std::io::Error) -> Option<WalkError> {
    let nothing = matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
        || e.raw_os_error() == Some(libc::ELOOP);
    (!nothing && std::fs::symlink_metadata(dir).is_ok())
        .then(|| WalkError::Unlistable { path: dir.to_path_buf(), source: e })
}

/// What the walker's error means, or None for nothing worth saying. With `--follow` the
/// walker stats every link and fails on one that is dangling or loops: as without
/// `--follow`, a warning for a link that would be selected and nothing for any other. A
/// path the walker listed and then found gone (or no longer a directory) when it read it
/// changed under the run: a note, as for a file that vanishes before its compile.
fn classify(e: WalkError, opts: &WalkOptions) -> Option<WalkError> {
    match e {
        WalkError::Io { path, source }
            if (source.kind() == std::io::ErrorKind::NotFound
                || source.raw_os_error() == Some(libc::ELOOP))
                && std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            let selected = path.as_os_str().as_bytes().ends_with(b".py") && !excluded_by_regex(&path, opts);
            selected.then(|| unresolved_link(path, &source))
        }
        WalkError::Io { path, source }
            if !path.as_os_str().is_empty()
                && matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
        {
            Some(WalkError::Vanished(path))
        }
        e => Some(e),
    }
}

/// A warning for an ignore file of a directory walked (`--respect-gitignore`) holding a
/// line that is not UTF-8: the `ignore` crate stops reading the file there, silently
/// (it drops I/O errors of ignore files), so that line's rules and all after it are not
/// applied. Only regular files are read (a FIFO would block).
fn ignore_file_warning(path: &Path, shown: &Path) -> Option<WalkError> {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let text = std::fs::read(path).ok()?;
    let line = text.split(|&b| b == b'\n').position(|l| std::str::from_utf8(l).is_err())? + 1;
    Some(WalkError::IgnoreFile(format!(
        "{}: line {line} is not UTF-8: its rules and those of every line after it are not applied",
        crate::report::ticked(shown)
    )))
}

/// For [`WalkError::Loop`]: the ancestor a link leads to, as walked, when the link's
/// target is written otherwise (`pkg/up` → `..`: ` (`.`)`), else nothing.
fn loop_ancestor(ancestor: &Path, written: &Path) -> String {
    if ancestor == written { String::new() } else { format!(" ({})", crate::report::ticked(ancestor)) }
}

fn convert_error(err: ignore::Error) -> WalkError {
    match err {
        ignore::Error::WithPath { path, err } => match *err {
            ignore::Error::WithDepth { err, .. } => convert_error(ignore::Error::WithPath { path, err }),
            ignore::Error::Io(source) => WalkError::Io { path, source },
            ignore::Error::Loop { ancestor, child } => WalkError::Loop(child, ancestor.clone(), ancestor),
            other => WalkError::Other(format!("{}: {}", crate::report::ticked(&path), ignore_text(&other))),
        },
        ignore::Error::WithDepth { err, .. } => convert_error(*err),
        ignore::Error::Loop { ancestor, child } => WalkError::Loop(child, ancestor.clone(), ancestor),
        ignore::Error::Io(source) => WalkError::Io { path: PathBuf::new(), source },
        other => WalkError::Other(ignore_text(&other)),
    }
}

/// The walker's error on one line, its paths shown as every message shows them and its
/// I/O errors as [`crate::io::io_reason`] words them (no "(os error N)").
fn ignore_text(err: &ignore::Error) -> String {
    match err {
        ignore::Error::Io(e) => crate::io::io_reason(e),
        ignore::Error::WithPath { path, err } => {
            format!("{}: {}", crate::report::ticked(path), ignore_text(err))
        }
        ignore::Error::WithDepth { err, .. } => ignore_text(err),
        ignore::Error::WithLineNumber { line, err } => format!("line {line}: {}", ignore_text(err)),
        ignore::Error::Partial(errs) => errs.iter().map(ignore_text).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Names as `git diff --name-only` (without `-z`) quotes them, unquoted; any other name
    // is no git-quoted one.
    #[test]
    fn git_quoted_names() {
        let unq = |n: &[u8]| git_unquoted(n);
        assert_eq!(unq(br#""pkg/\303\274n\303\257.py""#).unwrap(), "pkg/ünï.py".as_bytes());
        assert_eq!(unq(br#""a\"b\\c\td.py""#).unwrap(), b"a\"b\\c\td.py");
        assert_eq!(unq(br#""\377.py""#).unwrap(), b"\xff.py");
        for other in [
            &br#""plain.py""#[..],
            b"\"a\\",
            br#""a\q.py""#,
            br#""a\30.py""#,
            br#""a"b\n.py""#,
            b"a\\n.py",
            b"\"",
        ] {
            assert_eq!(unq(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn path_lists() {
        let got = read_path_list(&b"a.py\r\nb c.py\n\nd.py"[..], false).unwrap();
        assert_eq!(got, ["a.py", "b c.py", "d.py"].map(OsString::from));
        let got = read_path_list(&b"a\nb.py\0c.py\0"[..], true).unwrap();
        assert_eq!(got, ["a\nb.py", "c.py"].map(OsString::from));
        assert!(matches!(read_path_list(&b"a.py\0b.py\0"[..], false), Err(PathListError::NulWithoutNull)));
    }

    #[test]
    fn nested_roots_give_each_file_once_under_the_first_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["src/pkg/a.py", "src/b.py", "c.py", "src/pkg/__pycache__/a.cpython-311.pyc"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x = 1\n").unwrap();
        }
        let spelled = |p: PathBuf| p.as_os_str().as_bytes().to_vec();
        let dotted = PathBuf::from(format!("{}/./src/pkg/a.py", root.display()));
        let opts = WalkOptions { threads: 4, collect_pycache: true, ..Default::default() };
        // Walked many times: the spelling must never depend on the walker threads.
        for _ in 0..20 {
            let w = walk(&[root.join("src"), dotted.clone(), root.join("src/"), root.to_path_buf()], &opts);
            let got: Vec<_> = w.sources.into_iter().map(|s| spelled(s.path)).collect();
            let want = [root.join("c.py"), root.join("src/b.py"), root.join("src/pkg/a.py")].map(spelled);
            assert_eq!(got, want);
            assert_eq!(
                w.pycache_files.into_iter().map(spelled).collect::<Vec<_>>(),
                [spelled(root.join("src/pkg/__pycache__/a.cpython-311.pyc"))]
            );
            // The named file first: its own spelling, the rest from the next root.
            let w = walk(&[dotted.clone(), root.to_path_buf()], &opts);
            let got: Vec<_> = w.sources.into_iter().map(|s| spelled(s.path)).collect();
            let want = [spelled(root.join("c.py")), spelled(root.join("src/b.py")), spelled(dotted.clone())];
            assert_eq!(got, want);
        }
        let roots = ["src", ".", "src/", "/", "/abs/dir", "src/pkg/a.py"].map(PathBuf::from);
        let spellings = RootSpellings::new(&roots);
        for (path, rank) in [
            ("src/pkg/a.py", 0),
            ("./src/a.py", 1),
            ("srcx/a.py", usize::MAX),
            ("/a.py", 3),
            ("/abs/dir/x.py", 3),
            ("/abs/dirx.py", 3),
        ] {
            assert_eq!(spellings.rank(Path::new(path)), rank, "{path}");
        }
        assert_eq!(RootSpellings::new(&roots[4..]).rank(Path::new("/abs/dir/x.py")), 0);
        // Paths that do not exist are compared lexically.
        let cwd = Path::new("/nonexistent/w");
        let nested = |files: &[&str], dirs: &[&str]| {
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
            nested_roots(&files, &dirs, &mut Places { cwd, dirs: Default::default() })
        };
        assert!(nested(&[], &["src", "."]));
        assert!(nested(&[], &["src", "./src/"]));
        assert!(nested(&["./a.py", "a.py"], &[]));
        assert!(nested(&["src/m.py"], &["/nonexistent/w/src"]));
        assert!(!nested(&["setup.py"], &["src", "tests"]));
        assert!(!nested(&["src/a.py", "src/b.py"], &[]));
    }

    #[test]
    fn symlinked_directories_are_one_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = &std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::fs::write(root.join("real/sub/x.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("lib")).unwrap();
        let spelled = |w: Walked| w.sources.into_iter().map(|s| s.path).collect::<Vec<_>>();
        let opts = WalkOptions { threads: 4, ..Default::default() };
        for _ in 0..10 {
            // Both given: the first root's spelling.
            assert_eq!(
                spelled(walk(&[root.join("lib"), root.join("real")], &opts)),
                [root.join("lib/sub/x.py")]
            );
            assert_eq!(
                spelled(walk(&[root.join("real"), root.join("lib")], &opts)),
                [root.join("real/sub/x.py")]
            );
            assert_eq!(
                spelled(walk(&[root.join("lib/sub/x.py"), root.join("real")], &opts)),
                [root.join("lib/sub/x.py")]
            );
            // Followed inside one root: the spelling without symlinks.
            let follow = WalkOptions { follow: true, ..opts.clone() };
            assert_eq!(spelled(walk(&[root.to_path_buf()], &follow)), [root.join("real/sub/x.py")]);
        }
    }

    /// `GoneDirRules` reads the exclude file the walker reads for each kind of `.git`: a
    /// directory; a file naming a linked worktree's git directory, whose `commondir` is
    /// relative or absolute (the rule is in the common directory only); a submodule's git
    /// directory (no `commondir`; the rule is in its own `info/exclude`); a file naming
    /// none. Each compared with the walk of the same directory, there.
    #[test]
    fn gone_dir_rules_read_the_exclude_file_the_walk_reads() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &Path, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let main = dir.path().join("main/.git");
        write(&main.join("info/exclude"), "x/\n");
        let absolute = main.display().to_string();
        // (`.git` is a file, its git directory, that directory's `commondir`)
        let cases = [
            (false, "", None),
            (true, "worktrees/wt1", Some("../..")),
            (true, "worktrees/wt2", Some(absolute.as_str())),
            (true, "modules/sub", None),
            (true, "", None),
        ];
        let opts = WalkOptions { respect_ignore: true, threads: 1, ..Default::default() };
        let mut verdicts = Vec::new();
        for (i, (is_file, git_dir, common)) in cases.into_iter().enumerate() {
            let root = dir.path().join(format!("case{i}"));
            write(&root.join("x/a.py"), "");
            if !is_file {
                write(&root.join(".git/info/exclude"), "x/\n");
            } else if git_dir.is_empty() {
                write(&root.join(".git"), "not a gitdir line\n");
            } else {
                // As git writes it, the git directory's absolute path.
                let git_dir = main.join(git_dir);
                write(&root.join(".git"), &format!("gitdir: {}\n", git_dir.display()));
                write(&git_dir.join("HEAD"), "ref: refs/heads/main\n");
                match common {
                    Some(c) => write(&git_dir.join("commondir"), &format!("{c}\n")),
                    None => write(&git_dir.join("info/exclude"), "x/\n"),
                }
            }
            let walked = walk(std::slice::from_ref(&root), &opts);
            let entered = walked.sources.iter().any(|s| s.path.ends_with("x/a.py"));
            let case = (is_file, git_dir, common);
            assert_eq!(GoneDirRules::new(&opts).would_walk(&root.join("x")), entered, "{case:?}");
            verdicts.push(entered);
        }
        // Both outcomes are tested.
        assert!(verdicts.contains(&true) && verdicts.contains(&false), "{verdicts:?}");
    }

    #[test]
    fn walk_sorts_filters_and_keeps_explicit_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["b.py", "a.py", "x.pyi", "sub/c.py", "__pycache__/d.py", ".hidden/e.py", "notpy.txt"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x = 1\n").unwrap();
        }
        let opts = WalkOptions { threads: 2, ..Default::default() };
        let serial = WalkOptions { threads: 1, ..Default::default() };
        let w = walk(&[root.to_path_buf(), root.join("notpy.txt")], &opts);
        let names: Vec<_> = w.sources.iter().map(|s| s.path.strip_prefix(root).unwrap().to_owned()).collect();
        // A named file not ending in `.py` is skipped and counted, as compileall skips it.
        assert_eq!(names, [".hidden/e.py", "a.py", "b.py", "sub/c.py"].map(PathBuf::from));
        assert_eq!(w.skipped.not_py, 1);
        let named = walk(&[root.join("a.py"), root.join("x.pyi")], &opts);
        assert!(named.sources.iter().all(|s| s.explicit) && named.sources.len() == 1, "{:?}", named.sources);
        assert_eq!(walk(&[root.to_path_buf()], &serial).sources, walk(&[root.to_path_buf()], &opts).sources);
        assert!(w.sources.iter().any(|s| s.path.ends_with(".hidden/e.py")), "hidden entries by default");
        let skip = WalkOptions { skip_hidden: true, threads: 2, ..Default::default() };
        let w = walk(&[root.to_path_buf()], &skip);
        assert!(!w.sources.iter().any(|s| s.path.ends_with(".hidden/e.py")));
        assert_eq!(w.skipped, Skipped { hidden_dirs: 1, ..Skipped::default() });
        let w = walk(&[root.join("missing")], &opts);
        assert!(matches!(w.errors[..], [WalkError::NotFound(_)]));
    }
}
