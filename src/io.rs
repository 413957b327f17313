//! Small I/O helpers shared by the stages: reading sources and pipes with as few system
//! calls as possible, and short, lower-case descriptions of I/O errors for messages.

use std::io::Read;
use std::path::Path;

/// Read a source into `buf` (cleared first).
pub fn read_source_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    // Walked entries are regular files; O_NONBLOCK keeps a FIFO that appeared since from
    // blocking the run.
    let f = open_nonblocking(path)?;
    read_to_end_direct(&f, buf)
}

/// [`read_source_into`], and the source's `st_mode` (its pycs' mode derives from it).
pub fn read_source_mode_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    buf.clear();
    let f = open_nonblocking(path)?;
    let mode = f.metadata()?.mode();
    read_to_end_direct(&f, buf)?;
    Ok(mode)
}

/// Open the directory of the source `path` (`O_PATH`), to read the source and write its
/// pycs relative to it ([`read_source_at`], `write::Base`): both then are that directory's,
/// whatever a symbolic link on the way is switched to meanwhile (a deploy's `current`).
pub fn open_dir_of(path: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    Ok(rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// [`read_source_into`] of the source `path` in the directory `dir` ([`open_dir_of`]).
pub fn read_source_at(
    dir: std::os::fd::BorrowedFd<'_>,
    path: &Path,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    buf.clear();
    let name = path.file_name().unwrap_or(path.as_os_str());
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let f = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => return Err(not_regular_if_special(e.into(), path)),
    };
    read_to_end_direct(&f, buf)
}

/// Open `path` for reading without ever blocking: a FIFO (or a device) where a pyc or a
/// source should be must not hang the run, as opening a FIFO with no writer does.
/// A socket cannot be opened at all (ENXIO, "No such device or address"), nor can a
/// device without a driver: either is [`not_regular`], as a FIFO is once opened.
pub fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| not_regular_if_special(e, path))
}

/// `e`, an error opening `path`, or [`not_regular`] for a socket or a device without a driver.
fn not_regular_if_special(e: std::io::Error, path: &Path) -> std::io::Error {
    let special = || std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if e.raw_os_error() == Some(libc::ENXIO) && special() { not_regular() } else { e }
}

/// The error for a path that is not a regular file (a FIFO, a socket, a device).
pub fn not_regular() -> std::io::Error {
    std::io::Error::other("not a regular file")
}

/// Open the regular file `path` for reading, without blocking: a directory is
/// `IsADirectory` (as `cat` says it), anything else not regular [`not_regular`] (one
/// `fstat`).
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(std::io::ErrorKind::IsADirectory.into());
    }
    if !meta.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// Append to `buf` from `file` until `buf` holds `len` bytes or the file ends, never
/// more: whether the file ended. What was read before an error is kept; memory that
/// cannot be had is an `OutOfMemory` error, not an abort.
pub fn read_up_to(file: &mut std::fs::File, buf: &mut Vec<u8>, len: usize) -> std::io::Result<bool> {
    let start = buf.len();
    if len <= start {
        return Ok(false);
    }
    buf.try_reserve(len - start).map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
    buf.resize(len, 0);
    let mut n = start;
    let ended = loop {
        if n == len {
            break false;
        }
        match file.read(&mut buf[n..]) {
            Ok(0) => break true,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(n);
                return Err(e);
            }
        }
    };
    buf.truncate(n);
    Ok(ended)
}

/// Read the whole regular file `path` into `buf` (cleared first). Anything else is
/// [`not_regular`], found without blocking and without reading a device's endless data:
/// the type is checked (one `fstat`) only when a read did not end the usual way, i.e. the
/// file was empty, a read would have blocked, or it outgrew the buffer.
pub fn read_regular_into(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    read_regular_up_to(path, buf, usize::MAX).map(drop)
}

/// [`read_regular_into`], stopping once `buf` holds `limit` bytes: the file, for reading
/// on, and whether it ended.
pub fn read_regular_up_to(
    path: &Path,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<(std::fs::File, bool)> {
    buf.clear();
    let file = open_nonblocking(path)?;
    let ended = read_regular_from(&file, buf, limit)?;
    Ok((file, ended))
}

/// [`read_regular`] of `rel` in the directory `dir` (`rustix::fs::CWD`: as spelled).
pub fn read_regular_at(dir: std::os::fd::BorrowedFd<'_>, rel: &Path) -> std::io::Result<Vec<u8>> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match rustix::fs::openat(dir, rel, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        // A socket, or a device without a driver (see [`open_nonblocking`]).
        Err(rustix::io::Errno::NXIO) => return Err(not_regular()),
        Err(e) => return Err(e.into()),
    };
    let mut buf = Vec::new();
    read_regular_from(&file, &mut buf, usize::MAX)?;
    Ok(buf)
}

/// [`read_regular_up_to`] of the open `file`: whether it ended.
fn read_regular_from(file: &std::fs::File, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<bool> {
    let mut checked = false;
    read_loop(file, buf, limit, || {
        if !checked {
            checked = true;
            if !file.metadata()?.is_file() {
                return Err(not_regular());
            }
        }
        Ok(())
    })
}

/// [`read_regular_into`] into a new buffer.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    read_regular_into(path, &mut buf)?;
    Ok(buf)
}

/// Append everything left in `file` to `buf`, reading straight into its spare capacity.
/// Unlike `Read::read_to_end` on a `File`, this asks for no size hint (an `fstat` and an
/// `lseek` per call, a fifth of the syscalls of a no-op run) and does not cap the first
/// reads at 8 KiB: with a reused buffer a source takes one read plus the end-of-file read.
/// An error (including `WouldBlock` on a non-blocking pipe) keeps what was read before it.
pub fn read_to_end_direct(file: &std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    read_loop(file, buf, usize::MAX, || Ok(())).map(drop)
}

/// [`read_to_end_direct`], stopping once `buf` holds `limit` bytes: whether the file ended.
pub fn read_up_to_direct(file: &std::fs::File, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<bool> {
    read_loop(file, buf, limit, || Ok(()))
}

/// [`read_to_end_direct`]'s loop, up to `limit` bytes in `buf`: whether the file ended.
/// `unusual` is asked before the buffer grows, at an end of file with nothing read, and
/// when a read would block, and may fail the read. Memory that cannot be had is an
/// `OutOfMemory` error, not an abort.
fn read_loop(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    limit: usize,
    mut unusual: impl FnMut() -> std::io::Result<()>,
) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        if buf.len() >= limit {
            return Ok(false);
        }
        if buf.capacity() - buf.len() < 4096 {
            unusual()?;
            let more = buf.capacity().max(16 * 1024).min(limit - buf.len());
            buf.try_reserve(more).map_err(|_| std::io::Error::from(std::io::ErrorKind::OutOfMemory))?;
        }
        let left = limit - buf.len();
        let spare = buf.spare_capacity_mut();
        let room = spare.len().min(left);
        // SAFETY: read(2) writes at most `room` bytes into the spare capacity, which
        // belongs to `buf`; the length grows only by the count it reports written.
        let n = unsafe { libc::read(file.as_raw_fd(), spare.as_mut_ptr().cast(), room) };
        match n {
            0 => {
                if buf.is_empty() {
                    unusual()?;
                }
                return Ok(true);
            }
            // SAFETY: the first `n` spare bytes were just initialised by read(2).
            n if n > 0 => unsafe { buf.set_len(buf.len() + n as usize) },
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    unusual()?;
                }
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Read into `buf` until it holds at least `min` bytes or the file ends (one read for
/// almost every pyc: no extra read to see the end of a small file).
pub fn read_at_least(file: &mut std::fs::File, buf: &mut [u8], min: usize) -> std::io::Result<usize> {
    let mut n = 0;
    while n < min.min(buf.len()) {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Raise the soft open-file limit (`ulimit -n`) to the hard one, never lowering it, as
/// cargo does: workers take a few descriptors each. The workers inherit it, which changes
/// nothing for CPython (it never goes through every possible descriptor).
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read or fill the one struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The soft open-file limit (`ulimit -n`), if there is one.
pub fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit fills the one struct passed.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Why a thread or a process could not be started, in words, with the limit that usually
/// causes it: `Resource temporarily unavailable (the process limit, `ulimit -u` or a
/// container's pids limit, or the memory limit, `ulimit -v`?)`. Never an `(os error N)`.
pub fn start_reason(e: &std::io::Error) -> String {
    let limit = match e.raw_os_error() {
        Some(libc::EAGAIN) => {
            " (the process limit, `ulimit -u` or a container's pids limit, or the memory limit, `ulimit -v`?)"
        }
        Some(libc::ENOMEM) => " (the memory limit, `ulimit -v`?)",
        Some(libc::EMFILE) => " (the open-file limit, `ulimit -n`?)",
        _ => "",
    };
    format!("{}{limit}", io_reason(e))
}

/// A short, lower-case description of an I/O error, without the "(os error N)" tail.
/// Whether reading a path the walk found failed because it is gone since: no such file
/// (`NotFound`), or a directory of its path replaced by something else (`NotADirectory`),
/// as the walker takes a directory that went so. Told by the error's kind, never its words.
pub fn is_gone(kind: std::io::ErrorKind) -> bool {
    matches!(kind, std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        // As the walk and `inspect` say it (`Too many levels of symbolic links`).
        _ if e.raw_os_error() == Some(libc::ELOOP) => "a symbolic link loop".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// The owner of the symbolic link at `path` when it is a link that neither this user nor
/// root made: that user decides where it leads (a state directory, a cache), whoever owns
/// what it leads to.
pub(crate) fn link_of_another_user(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let link = std::fs::symlink_metadata(path).ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    (link.file_type().is_symlink() && link.uid() != me && link.uid() != 0).then(|| link.uid())
}

/// Why a file of the state directory is not taken ([`read_own`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Untrusted {
    /// Others may write it: its permission bits.
    Writable { mode: u32 },
    /// Another user's: that uid.
    Owner { uid: u32 },
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Untrusted::Writable { mode } => write!(f, "is writable by other users, mode {:o}", mode & 0o7777),
            Untrusted::Owner { uid } => write!(f, "belongs to uid {uid}, not to this user"),
        }
    }
}

/// The bytes of the file at `path` when this user owns it and nobody else may write it: a
/// file of the state directory vouches for a pyc's body (`verified`), an interpreter's
/// magic number and hash (its probe) or a source's failure, so one another user could
/// have written (a shared `HASHPYC_STATE_DIR`, a home another user can write) is not taken.
/// Such a refusal is recorded for the run's one warning (`target::state_refused_warning`):
/// on a filesystem that keeps no Unix permissions every file is refused, every run.
pub(crate) fn read_own(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::MetadataExt;
    let file = open_nonblocking(path).ok()?;
    let meta = file.metadata().ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() {
        return None;
    }
    let why = if meta.uid() != me {
        Some(Untrusted::Owner { uid: meta.uid() })
    } else if meta.mode() & 0o022 != 0 {
        Some(Untrusted::Writable { mode: meta.mode() })
    } else {
        None
    };
    if let Some(why) = why {
        crate::target::state_file_refused(path, why);
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    read_to_end_direct(&file, &mut bytes).ok()?;
    Some(bytes)
}
