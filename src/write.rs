//! Putting pycs on disk: atomically (an exclusive temporary file in the destination
//! directory, then a rename over the old pyc), with py_compile's mode
//! (`(source mode | 0o200) & 0o666`, under the umask), refusing to write through a
//! symlink or over anything that is not a regular file, and hard-linking identical
//! outputs when asked. A reader sees the old pyc or the new one, never a torn file;
//! a failed write (disk full, permissions) leaves the old pyc untouched and no temp file.

use std::io::{IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("{} is a symbolic link; refusing to write through it", crate::report::ticked(.0))]
    Symlink(PathBuf),
    #[error("{} exists and is not a regular file", crate::report::ticked(.0))]
    NotRegular(PathBuf),
    #[error("cannot create directory {}", crate::report::ticked(path))]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", crate::report::ticked(path))]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Making `path` a hard link to `existing` (`--hardlink-dupes`) failed.
    #[error("cannot link {} to {}", crate::report::ticked(path), crate::report::ticked(existing))]
    Link {
        path: PathBuf,
        existing: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not tried: an earlier write of the run found no room left ([`no_room`]).
    #[error("{} not written: {}", crate::report::ticked(.0), no_room().map_or("no room", |r| r.reason()))]
    NoRoom(PathBuf),
}

/// The first write of the run that failed for want of room (`ENOSPC`, `EDQUOT`): the pyc
/// and the error number. From then on the run writes no pyc: every write would fail the
/// same way (thousands of identical errors), and each would first fill what room is left.
static NO_ROOM: std::sync::OnceLock<NoRoom> = std::sync::OnceLock::new();

/// See [`no_room`].
#[derive(Debug)]
pub struct NoRoom {
    /// The pyc whose write found no room.
    pub path: PathBuf,
    errno: i32,
}

impl NoRoom {
    /// Why, in words: `no space left on device` or `disk quota exceeded`.
    pub fn reason(&self) -> &'static str {
        if self.errno == libc::EDQUOT { "disk quota exceeded" } else { "no space left on device" }
    }
}

/// The write that found the disk full (or the quota used up), once one has: the run
/// starts no more writes.
pub fn no_room() -> Option<&'static NoRoom> {
    NO_ROOM.get()
}

/// Whether `e` says there is no room left: no space on the device, or the quota used up.
fn out_of_room(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// `done`, remembering (the first time) that writing `path` found no room.
fn noting_room(done: Result<(), WriteError>, path: &Path) -> Result<(), WriteError> {
    if let Err(
        WriteError::CreateDir { source, .. }
        | WriteError::Write { source, .. }
        | WriteError::Link { source, .. },
    ) = &done
        && let Some(errno) = source.raw_os_error().filter(|_| out_of_room(source))
    {
        let _ = NO_ROOM.set(NoRoom { path: path.to_path_buf(), errno });
    }
    done
}

impl WriteError {
    /// Whether the write failed, or was not tried, for want of room ([`no_room`]).
    pub fn no_room(&self) -> bool {
        match self {
            WriteError::CreateDir { source, .. }
            | WriteError::Write { source, .. }
            | WriteError::Link { source, .. } => out_of_room(source),
            WriteError::NoRoom(_) => true,
            WriteError::Symlink(_) | WriteError::NotRegular(_) => false,
        }
    }

    /// Whether the write failed because the source's directory went away during the run
    /// (`rm -rf pkg`, or `pkg` removed and made again, while its files compile): no such
    /// file where the pyc's directory was to be made or written, and no `source` any more.
    /// A file or directory removed during the run is a note, not an error (as the walk
    /// says it), whatever the step that found it gone.
    pub fn source_gone(&self, source: &Path) -> bool {
        let io = match self {
            WriteError::CreateDir { source, .. }
            | WriteError::Write { source, .. }
            | WriteError::Link { source, .. } => source,
            WriteError::Symlink(_) | WriteError::NotRegular(_) | WriteError::NoRoom(_) => return false,
        };
        crate::io::is_gone(io.kind()) && std::fs::symlink_metadata(source).is_err()
    }
}

/// The mode py_compile gives a pyc: the source's, plus owner write, without execute bits.
pub fn pyc_mode(source_mode: u32) -> u32 {
    (source_mode | 0o200) & 0o666
}

/// The directory a source was read from, as a handle, and the path it was opened by: the
/// pycs under that path are written relative to the handle, into that very directory,
/// whatever a symbolic link on the way (a deploy's `current -> releases/v1`) was switched
/// to since the source was read. Other paths (a `--pycache-prefix` tree) are written by path.
#[derive(Clone, Copy, Debug)]
pub struct Base<'a> {
    fd: BorrowedFd<'a>,
    dir: &'a Path,
}

impl<'a> Base<'a> {
    /// `fd`, the directory opened as `dir` (`""` for the working directory).
    pub fn new(fd: BorrowedFd<'a>, dir: &'a Path) -> Self {
        Base { fd, dir }
    }
}

/// A file for the `*at` system calls: a directory handle and a path relative to it, or
/// the working directory and the path as spelled.
#[derive(Clone, Copy)]
struct Loc<'a> {
    fd: BorrowedFd<'a>,
    rel: &'a Path,
}

/// Where `path` is: relative to `base` when it is under `base`'s directory.
fn loc<'a>(base: Option<Base<'a>>, path: &'a Path) -> Loc<'a> {
    if let Some(b) = base
        && let Ok(rel) = path.strip_prefix(b.dir)
        && !rel.as_os_str().is_empty()
    {
        return Loc { fd: b.fd, rel };
    }
    Loc { fd: rustix::fs::CWD, rel: path }
}

/// Refuse destinations py_compile refuses: symlinks and non-regular files.
pub fn check_destination(path: &Path) -> Result<(), WriteError> {
    check_destination_at(loc(None, path), path)
}

/// [`check_destination`] of `at`, which is `path`.
fn check_destination_at(at: Loc<'_>, path: &Path) -> Result<(), WriteError> {
    use rustix::fs::FileType;
    match rustix::fs::statat(at.fd, at.rel, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode))
    {
        Ok(FileType::Symlink) => Err(WriteError::Symlink(path.to_path_buf())),
        Ok(FileType::RegularFile) | Err(_) => Ok(()),
        Ok(_) => Err(WriteError::NotRegular(path.to_path_buf())),
    }
}

/// `create_dir_all` of `at`: a directory there (a symbolic link to one will do), made with
/// the directories above it that are missing.
fn create_dir_all_at(at: Loc<'_>) -> std::io::Result<()> {
    if at.rel.as_os_str().is_empty() || at.rel == Path::new(".") {
        return Ok(());
    }
    let mkdir = || match rustix::fs::mkdirat(at.fd, at.rel, Mode::from_raw_mode(0o777)) {
        Err(rustix::io::Errno::EXIST)
            if rustix::fs::statat(at.fd, at.rel, AtFlags::empty())
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir()) =>
        {
            Ok(())
        }
        other => other,
    };
    match mkdir() {
        Err(rustix::io::Errno::NOENT) => match at.rel.parent() {
            Some(up) if !up.as_os_str().is_empty() => {
                create_dir_all_at(Loc { fd: at.fd, rel: up })?;
                Ok(mkdir()?)
            }
            _ => Err(rustix::io::Errno::NOENT.into()),
        },
        other => Ok(other?),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Why `dir`, a symbolic link that dangles or loops, is no directory, in words (`mkdir`
/// itself only says "File exists"); `None` if it is not such a link.
pub fn broken_link(dir: &Path) -> Option<std::io::Error> {
    if !std::fs::symlink_metadata(dir).ok()?.file_type().is_symlink() {
        return None;
    }
    let e = std::fs::metadata(dir).err()?;
    let why = if e.raw_os_error() == Some(libc::ELOOP) {
        "a symbolic link loop".to_string()
    } else if e.kind() == std::io::ErrorKind::NotFound {
        let to = std::fs::read_link(dir).ok()?;
        format!("a symbolic link to {}, which does not exist", crate::report::ticked(&to))
    } else {
        return None;
    };
    Some(std::io::Error::new(e.kind(), why))
}

/// Why `dir` cannot be created where something that is not a directory has its name (a
/// regular file `__pycache__`): in words, where `mkdir` says `File exists`, which reads as
/// if all were well. `None` when no such thing is there.
pub fn in_the_way(dir: &Path) -> Option<std::io::Error> {
    let meta = std::fs::metadata(dir).ok().filter(|m| !m.is_dir())?;
    let what = if meta.is_file() { "a file" } else { "something that is not a directory" };
    let linked = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
    let what = if linked { format!("a symbolic link to {what}") } else { what.to_string() };
    Some(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{what} of that name is there")))
}

/// The longest file name (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Whether the write of `path` would fail `File name too long` for its length as a whole:
/// its temporary file's path (the kernel's `PATH_MAX`, the final NUL included), as the
/// path is spelled (a relative path is counted from the working directory, as the kernel
/// counts it).
pub fn path_too_long(path: &Path) -> bool {
    temp_path(path).as_os_str().len() >= libc::PATH_MAX as usize
}

/// The random part of a temporary file's name.
const RANDOM_LEN: usize = 6;

/// `.<name>.<random>.tmp` beside `path`: hidden and traceable to its target, built from the
/// name's bytes as they are (a name that is not UTF-8 keeps its length), with the name cut
/// short so the whole stays within `NAME_MAX` (a pyc name of up to 255 bytes can be written):
/// a pyc's module name is cut, its ending (`.cpython-312.opt-1.pyc`, `.pyc`) kept, so that
/// [`temp_target`] still tells a pyc's temporary file (`check --stray`).
/// Relative to the same directory as `path`, so a relative path is resolved by the kernel as
/// CPython's are, also under a working directory too deep to name from the root.
fn temp_path(path: &Path) -> PathBuf {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    let keep = name.len().min(NAME_MAX - ".".len() - ".".len() - RANDOM_LEN - ".tmp".len());
    // What follows the module name of a pyc, kept whole when the name is cut.
    let ending = match crate::layout::cache_name_parts(name) {
        Some((stem, ..)) => &name[stem.len()..],
        None if name.ends_with(b".pyc") => b".pyc",
        None => b"",
    };
    let ending = if keep < name.len() && ending.len() < keep { ending } else { b"" };
    let mut temp = Vec::with_capacity(NAME_MAX);
    temp.push(b'.');
    temp.extend_from_slice(&name[..keep - ending.len()]);
    temp.extend_from_slice(ending);
    temp.push(b'.');
    temp.extend_from_slice(&random_chars());
    temp.extend_from_slice(b".tmp");
    parent_of(path).join(std::ffi::OsString::from_vec(temp))
}

/// The name (cut short when it was long) that `name` is a temporary file of, when it is
/// named as [`temp_path`] names one: `.m.cpython-312.pyc.a1B2c3.tmp` → `m.cpython-312.pyc`.
pub fn temp_target(name: &[u8]) -> Option<&[u8]> {
    let rest = name.strip_prefix(b".")?.strip_suffix(b".tmp")?;
    let (target, random) = rest.split_at(rest.len().checked_sub(RANDOM_LEN + 1)?);
    let random = random.strip_prefix(b".")?;
    (!target.is_empty() && random.iter().all(u8::is_ascii_alphanumeric)).then_some(target)
}

/// [`random_chars`] as a string (the cache's temporary files).
pub fn random_name() -> String {
    random_chars().iter().map(|&c| char::from(c)).collect()
}

/// `RANDOM_LEN` letters and digits, different at each call (std's randomly keyed hasher, a
/// new key each time): a clash only costs another try.
fn random_chars() -> [u8; RANDOM_LEN] {
    use std::hash::{BuildHasher, Hasher};
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut n = std::collections::hash_map::RandomState::new().build_hasher().finish();
    std::array::from_fn(|_| {
        let c = CHARS[(n % CHARS.len() as u64) as usize];
        n /= CHARS.len() as u64;
        c
    })
}

/// A temporary file being written, removed on drop unless persisted; its path is
/// relative to `fd`.
struct Temp<'a> {
    fd: BorrowedFd<'a>,
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl<'a> Temp<'a> {
    /// A new file beside `at` (`O_CREAT | O_EXCL`, with permission bits `mode` under the
    /// umask), opened for writing.
    fn create(at: Loc<'a>, mode: u32) -> std::io::Result<Temp<'a>> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
        loop {
            let temp = temp_path(at.rel);
            let listed = crate::interrupt::begin_temp()?;
            match rustix::fs::openat(at.fd, &temp, flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => {
                    listed.created(at.fd, &temp);
                    return Ok(Temp { fd: at.fd, path: temp, file: Some(fd.into()) });
                }
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Rename the file over `at`.
    fn persist(mut self, at: Loc<'_>) -> std::io::Result<()> {
        self.file = None;
        rustix::fs::renameat(self.fd, &self.path, at.fd, at.rel)?;
        crate::interrupt::temp_gone(self.fd, &self.path);
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Temp<'_> {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = rustix::fs::unlinkat(self.fd, &self.path, AtFlags::empty());
            crate::interrupt::temp_gone(self.fd, &self.path);
        }
    }
}

/// What the filesystem of a directory shows for a file created there with mode 600 when
/// that is not it: group or other write permission, or another owner. A filesystem that
/// keeps no Unix permissions (vfat and exFAT, also through FUSE; a CIFS or vboxsf mount
/// with `uid=`; some NFS exports) shows every file as its mount options say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IgnoredPermissions {
    /// The permission bits shown, when others may write.
    pub mode: Option<u32>,
    /// The owner shown, when not this user.
    pub uid: Option<u32>,
}

impl IgnoredPermissions {
    /// Create a file with mode 600 in `dir` and remove it at once: what its filesystem
    /// shows instead, or None when it shows that (or the file could not be made).
    pub fn of(dir: &Path) -> Option<IgnoredPermissions> {
        use std::os::unix::fs::MetadataExt;
        let path = dir.join("permissions");
        let tmp = Temp::create(loc(None, &path), 0o600).ok()?;
        let meta = tmp.file.as_ref()?.metadata().ok()?;
        drop(tmp);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        IgnoredPermissions::shown(meta.mode(), meta.uid(), me)
    }

    /// What a file created with mode 600 by `me` shows, as mode `mode` and owner `uid`.
    fn shown(mode: u32, uid: u32, me: u32) -> Option<IgnoredPermissions> {
        let found = IgnoredPermissions {
            mode: (mode & 0o022 != 0).then_some(mode & 0o7777),
            uid: (uid != me).then_some(uid),
        };
        (found.mode.is_some() || found.uid.is_some()).then_some(found)
    }

    /// `its filesystem ignores Unix permissions (a file created there with mode 600 shows
    /// mode 777)`.
    pub fn finding(&self) -> String {
        let shows = match (self.mode, self.uid) {
            (Some(m), Some(u)) => format!("mode {m:o} and uid {u}"),
            (Some(m), None) => format!("mode {m:o}"),
            (None, Some(u)) => format!("uid {u}, not this user's"),
            (None, None) => String::new(),
        };
        format!("its filesystem ignores Unix permissions (a file created there with mode 600 shows {shows})")
    }

    /// The mount options that give files the permissions or owner asked for instead.
    pub fn mount_options(&self) -> &'static str {
        match (self.mode, self.uid) {
            (Some(_), Some(_)) => "`uid=` this user's and `umask=022` (or `fmask=`/`dmask=`)",
            (None, Some(_)) => "`uid=` this user's",
            _ => "`umask=022` (or `fmask=`/`dmask=`, as vfat and exFAT take them)",
        }
    }
}

/// What the caller already knows about the destination, to save system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Known {
    /// The directory exists (created or seen earlier in this run).
    pub dir_exists: bool,
    /// The plan found nothing to refuse at the path (no symlink, nothing but a regular
    /// file: `check_destination`), so it is not looked at again; a symlink appearing since
    /// is replaced by the rename, never written through.
    pub checked: bool,
}

/// Write `parts` (header, body) to `path` atomically with permission bits `mode`
/// (the umask applies, as for py_compile), creating the directory when needed. For the
/// state directory's files: [`no_room`] neither stops nor counts them (another
/// filesystem, maybe; a run says itself when they fail).
pub fn write_atomic(path: &Path, parts: &[&[u8]], mode: u32, known: Known) -> Result<(), WriteError> {
    write_atomic_unchecked(None, path, parts, mode, known)
}

/// [`write_atomic`] of a pyc, relative to `base` when `path` is under its directory: not
/// tried once a write found no room ([`no_room`], [`WriteError::NoRoom`]), and the first
/// that finds none says so.
pub fn write_atomic_in(
    base: Option<Base<'_>>,
    path: &Path,
    parts: &[&[u8]],
    mode: u32,
    known: Known,
) -> Result<(), WriteError> {
    if no_room().is_some() {
        return Err(WriteError::NoRoom(path.to_path_buf()));
    }
    noting_room(write_atomic_unchecked(base, path, parts, mode, known), path)
}

/// [`write_atomic_in`], whatever earlier writes found.
fn write_atomic_unchecked(
    base: Option<Base<'_>>,
    path: &Path,
    parts: &[&[u8]],
    mode: u32,
    known: Known,
) -> Result<(), WriteError> {
    let at = loc(base, path);
    if !known.checked {
        check_destination_at(at, path)?;
    }
    let write_err = |source| WriteError::Write { path: path.to_path_buf(), source };
    // A path the kernel could not take whole fails as it fails written by path (and as
    // `compile -n` says it will), also when written relative to the source's directory.
    if at.fd.as_raw_fd() != rustix::fs::CWD.as_raw_fd() && path_too_long(path) {
        return Err(write_err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG)));
    }
    let dir = parent_of(path);
    let dir_at = Loc { fd: at.fd, rel: parent_of(at.rel) };
    let create_dir = || {
        create_dir_all_at(dir_at).map_err(|source| WriteError::CreateDir {
            path: dir.to_path_buf(),
            source: broken_link(dir).or_else(|| in_the_way(dir)).unwrap_or(source),
        })
    };
    if !known.dir_exists {
        create_dir()?;
    }
    let mut tmp = match Temp::create(at, mode) {
        // Known to exist, but not (or no longer) there: in the directory the source was
        // read from this time, or removed meanwhile.
        Err(e) if known.dir_exists && e.kind() == std::io::ErrorKind::NotFound => {
            create_dir()?;
            Temp::create(at, mode)
        }
        other => other,
    }
    .map_err(write_err)?;
    write_all_vectored(tmp.file.as_mut().expect("open until persisted"), parts).map_err(write_err)?;
    // The temporary file is removed on drop if anything above or the rename fails.
    tmp.persist(at).map_err(write_err)
}

/// All of `parts` in as few system calls as the kernel allows.
fn write_all_vectored(file: &mut std::fs::File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write one compiled unit: the pycs of the levels in `wanted` (indexes into `bodies`, one
/// per level compiled), each `header` + body; with `hardlink_dupes`, a level whose body
/// equals the level before it becomes a hard link to that pyc (also when only the earlier
/// level was rewritten, which broke an old link). The plan checked the pycs of `wanted`
/// (`check_destination`); a level linked besides them is checked here. `dirs` remembers
/// directories known to exist, to save system calls. A level that cannot be written ends
/// the unit with its error and the number of the levels of `wanted` written before it,
/// which are on disk (a pyc name too long only at `opt-2`).
/// `base`: the directory the source was read from (see [`Base`]).
#[allow(clippy::too_many_arguments)]
pub fn write_unit(
    base: Option<Base<'_>>,
    pycs: &[PathBuf],
    header: &[u8],
    bodies: &[Vec<u8>],
    wanted: &[u8],
    mode: u32,
    hardlink_dupes: bool,
    dirs: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), (usize, WriteError)> {
    if wanted.is_empty() {
        // Compiled only to learn its warnings (`-W error`): its pycs are fresh.
        return Ok(());
    }
    let mut written = vec![false; bodies.len()];
    for (i, body) in bodies.iter().enumerate() {
        let duplicate = hardlink_dupes && i > 0 && bodies[i - 1] == *body;
        let relink =
            duplicate && (written[i - 1] || !same_file_at(loc(base, &pycs[i - 1]), loc(base, &pycs[i])));
        if !wanted.contains(&(i as u8)) && !relink {
            continue;
        }
        let path: &Path = &pycs[i];
        let dir = path.parent().unwrap_or(Path::new(""));
        let done = if duplicate {
            hardlink_atomic_in(base, &pycs[i - 1], path)
        } else {
            let known = Known { dir_exists: dirs.contains(dir), checked: true };
            write_atomic_in(base, path, &[header, body], mode, known)
        };
        if let Err(e) = done {
            let before = (0..i).filter(|&l| written[l] && wanted.contains(&(l as u8))).count();
            return Err((before, e));
        }
        written[i] = true;
        if !dirs.contains(dir) {
            dirs.insert(dir.to_path_buf());
        }
    }
    Ok(())
}

/// Make `path` a hard link to `existing`, atomically replacing whatever `path` was.
pub fn hardlink_atomic(existing: &Path, path: &Path) -> Result<(), WriteError> {
    hardlink_atomic_in(None, existing, path)
}

/// [`hardlink_atomic`], relative to `base` when the paths are under its directory.
pub fn hardlink_atomic_in(base: Option<Base<'_>>, existing: &Path, path: &Path) -> Result<(), WriteError> {
    if no_room().is_some() {
        return Err(WriteError::NoRoom(path.to_path_buf()));
    }
    noting_room(hardlink_unchecked(base, existing, path), path)
}

/// [`hardlink_atomic_in`], whatever earlier writes found.
fn hardlink_unchecked(base: Option<Base<'_>>, existing: &Path, path: &Path) -> Result<(), WriteError> {
    let at = loc(base, path);
    check_destination_at(at, path)?;
    let write_err =
        |source| WriteError::Link { path: path.to_path_buf(), existing: existing.to_path_buf(), source };
    // Reserve a unique name, then link to a sibling of it and rename over the target.
    let reserved = Temp::create(at, 0o600).map_err(write_err)?;
    let link = reserved.path.with_extension("lnk");
    let from = loc(base, existing);
    let result = rustix::fs::linkat(from.fd, from.rel, at.fd, &link, AtFlags::empty())
        .and_then(|()| rustix::fs::renameat(at.fd, &link, at.fd, at.rel));
    // Also after a success: a rename onto a link to the same file does nothing (rename(2)),
    // which leaves `link` behind (`existing` and `path` one file, or one name).
    let _ = rustix::fs::unlinkat(at.fd, &link, AtFlags::empty());
    drop(reserved);
    result.map_err(|e| write_err(no_links_here(e.into())))
}

/// A failed link(2) in the words of its likely cause when that is the filesystem: vfat
/// and exFAT (and some FUSE filesystems) have no hard links and refuse one with EPERM,
/// which reads as `permission denied` though no permission is missing (the run's user
/// owns the pyc and its directory, so `fs.protected_hardlinks` is not it); others say
/// EOPNOTSUPP.
fn no_links_here(e: std::io::Error) -> std::io::Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EOPNOTSUPP) => "not permitted",
        _ => return e,
    };
    std::io::Error::other(format!(
        "{why} (a filesystem without hard links, such as vfat or exFAT?): give --no-hardlink-dupes \
         for pycs on it"
    ))
}

/// Whether two files are the same inode (already hard-linked).
pub fn same_file(a: &Path, b: &Path) -> bool {
    same_file_at(loc(None, a), loc(None, b))
}

/// [`same_file`], relative to `base` when the paths are under its directory.
pub fn same_file_in(base: Option<Base<'_>>, a: &Path, b: &Path) -> bool {
    same_file_at(loc(base, a), loc(base, b))
}

/// `io::read_regular` of `path`, relative to `base` when it is under its directory.
pub fn read_regular_in(base: Option<Base<'_>>, path: &Path) -> std::io::Result<Vec<u8>> {
    let at = loc(base, path);
    crate::io::read_regular_at(at.fd, at.rel)
}

fn same_file_at(a: Loc<'_>, b: Loc<'_>) -> bool {
    matches!((file_id_at(a), file_id_at(b)), (Some(x), Some(y)) if x == y)
}

/// The file `path` names (device and inode), if it can be read.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    file_id_at(loc(None, path))
}

fn file_id_at(at: Loc<'_>) -> Option<(u64, u64)> {
    let st = rustix::fs::statat(at.fd, at.rel, AtFlags::empty()).ok()?;
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Some((st.st_dev as u64, u64::from(st.st_ino)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_refused_by_the_filesystem_says_so() {
        let say = |errno| {
            crate::pool::schedule::error_chain(&WriteError::Link {
                path: "p/__pycache__/a.cpython-311.opt-1.pyc".into(),
                existing: "p/__pycache__/a.cpython-311.pyc".into(),
                source: no_links_here(std::io::Error::from_raw_os_error(errno)),
            })
        };
        for errno in [libc::EPERM, libc::EOPNOTSUPP] {
            assert_eq!(
                say(errno),
                "cannot link `p/__pycache__/a.cpython-311.opt-1.pyc` to `p/__pycache__/a.cpython-311.pyc`: \
                 not permitted (a filesystem without hard links, such as vfat or exFAT?): give \
                 --no-hardlink-dupes for pycs on it"
            );
        }
        // Other failures keep their own words.
        assert!(say(libc::EACCES).ends_with(": permission denied"), "{}", say(libc::EACCES));
        assert!(say(libc::ENOSPC).ends_with(": No space left on device"), "{}", say(libc::ENOSPC));
    }
    use std::os::unix::fs::PermissionsExt;

    /// A file created with mode 600 that shows other bits or another owner is told, with
    /// the mount options for what it shows; one that shows 600 (or less, under a umask) is not.
    #[test]
    fn ignored_permissions_are_told() {
        assert_eq!(IgnoredPermissions::shown(0o100600, 1000, 1000), None);
        assert_eq!(IgnoredPermissions::shown(0o100400, 1000, 1000), None);
        // fusefat shows 700: nobody else may write.
        assert_eq!(IgnoredPermissions::shown(0o100700, 0, 0), None);
        let exfat = IgnoredPermissions::shown(0o100777, 0, 0).unwrap();
        assert_eq!(
            exfat.finding(),
            "its filesystem ignores Unix permissions (a file created there with mode 600 shows mode 777)"
        );
        assert!(exfat.mount_options().starts_with("`umask=022`"));
        let cifs = IgnoredPermissions::shown(0o100755, 1000, 0).unwrap();
        assert_eq!(
            cifs.finding(),
            "its filesystem ignores Unix permissions (a file created there with mode 600 shows uid 1000, not this \
             user's)"
        );
        assert_eq!(cifs.mount_options(), "`uid=` this user's");
        let both = IgnoredPermissions::shown(0o100777, 1000, 0).unwrap();
        assert!(both.finding().ends_with("shows mode 777 and uid 1000)"), "{}", both.finding());
    }

    /// A file made in a directory of a filesystem that keeps permissions shows them, and is
    /// removed.
    #[test]
    fn a_directory_that_keeps_permissions_is_no_finding() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(IgnoredPermissions::of(dir.path()), None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn temp_names_are_told() {
        use std::os::unix::ffi::OsStrExt;
        let temp = temp_path(Path::new("d/__pycache__/m.cpython-312.pyc"));
        let name = temp.file_name().unwrap().as_bytes();
        assert_eq!(temp_target(name), Some(&b"m.cpython-312.pyc"[..]));
        // A name too long to take whole keeps its ending, within NAME_MAX.
        for ending in [&b".cpython-312.opt-1.pyc"[..], b".pyc", b".txt"] {
            for stem_len in [200, 255 - ending.len()] {
                let mut pyc = vec![b'm'; stem_len];
                pyc.extend_from_slice(ending);
                let temp = temp_path(Path::new(std::ffi::OsStr::from_bytes(&pyc)));
                let name = temp.file_name().unwrap().as_bytes();
                assert!(name.len() <= NAME_MAX, "{}", name.len());
                let target = temp_target(name).unwrap();
                if pyc.len() + 12 <= NAME_MAX {
                    assert_eq!(target, &pyc[..]);
                } else if ending != b".txt" {
                    assert!(
                        target.ends_with(ending) && name.len() == NAME_MAX,
                        "{}",
                        String::from_utf8_lossy(name)
                    );
                }
            }
        }
        for other in [
            &b"m.cpython-312.pyc"[..],
            b".m.pyc.tmp",
            b".m.pyc.ab-cd1.tmp",
            b"..abcdef.tmp",
            b"m.pyc.abcdef.tmp",
        ] {
            assert_eq!(temp_target(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn modes_follow_py_compile() {
        assert_eq!(pyc_mode(0o100644), 0o644);
        assert_eq!(pyc_mode(0o100444), 0o644);
        assert_eq!(pyc_mode(0o100755), 0o644);
        assert_eq!(pyc_mode(0o100600), 0o600);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("__pycache__/m.cpython-312.pyc");
        write_atomic(&p, &[b"head", b"body"], 0o600, Known::default()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"headbody");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        write_atomic(&p, &[b"new"], 0o644, Known::default()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> =
            std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn refuses_symlinks_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link.pyc");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(write_atomic(&link, &[b"x"], 0o644, Known::default()), Err(WriteError::Symlink(_))));
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        let sub = dir.path().join("d.pyc");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            write_atomic(&sub, &[b"x"], 0o644, Known::default()),
            Err(WriteError::NotRegular(_))
        ));
    }

    #[test]
    fn hardlinks_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pyc");
        let b = dir.path().join("b.pyc");
        write_atomic(&a, &[b"same"], 0o644, Known::default()).unwrap();
        write_atomic(&b, &[b"old"], 0o644, Known::default()).unwrap();
        hardlink_atomic(&a, &b).unwrap();
        assert!(same_file(&a, &b));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        // Linking again, or a file to itself, leaves no temporary link behind.
        hardlink_atomic(&a, &b).unwrap();
        hardlink_atomic(&a, &a).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(std::fs::read(&a).unwrap(), b"same");
    }
}
