//! SIGINT, SIGTERM and SIGHUP: remember which arrived, kill every worker process group at
//! once so nothing blocks on Python, and let the pipeline unwind (temporary files are
//! removed as they drop) before exiting 130, 143 or 129. A second signal exits
//! immediately, and so does a run that has not finished unwinding 5 seconds after the
//! first; the temporary files being written then are removed first ([`begin_temp`]). A
//! read that may never end where nothing is written yet (the path list on stdin) is made
//! on a thread of its own, the run waiting on it or on [`requested`]
//! ([`crate::settings::read_stdin_paths`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The signal, stored by the handler itself: a thread held in a blocking call (a lock waited
/// for, a FIFO read) goes on once the handler has run, and must find the run interrupted
/// then, not once the signal thread has woken ([`requested`]).
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// The temporary files being written: a directory handle and the path relative to it; and
/// whether the run is exiting at once (no file may be created any more).
static TEMPS: Mutex<Temps> = Mutex::new(Temps { exiting: false, files: Vec::new() });

struct Temps {
    exiting: bool,
    files: Vec<(std::os::fd::RawFd, std::path::PathBuf)>,
}

/// The signals that end a run: Ctrl-C, what `docker stop` and a CI cancel send, and a
/// terminal or ssh session that closes.
const SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// `error` as the run's messages write it (bold red when coloured): [`set_error_label`].
static ERROR_LABEL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How the run writes `error` (coloured or not), for the `error: interrupted` written here.
pub fn set_error_label(label: String) {
    let _ = ERROR_LABEL.set(label);
}

/// `error: interrupted` and its newline, `error` as [`set_error_label`] said.
fn interrupted_line() -> String {
    format!("{}: interrupted\n", ERROR_LABEL.get().map_or("error", String::as_str))
}

/// How long the run may take to unwind after the first signal before it exits regardless.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Start the signal-handling thread (once, from `run`).
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new(SIGNALS) else {
        return;
    };
    for sig in SIGNALS {
        let _ = signal_hook::flag::register_usize(sig, &ARRIVED, sig as usize);
    }
    std::thread::Builder::new()
        .name("hashpyc-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                    exit_now(sig);
                }
                kill_all();
                // The unwind takes milliseconds; a run still there after GRACE is stuck in
                // a system call (a file on a hung network mount, a device): exit anyway, as
                // a second signal would, rather than make `docker stop` or a CI cancel wait
                // for SIGKILL.
                // (Without a thread for it, a process limit reached, the run just unwinds.)
                let _ = std::thread::Builder::new().spawn(move || {
                    std::thread::sleep(GRACE);
                    exit_now(sig);
                });
            }
        })
        .ok();
}

/// End the run at once after signal `sig`, as an interrupted run ends: `error: interrupted`,
/// exit `128 + sig` (a second signal, or the run still there after [`GRACE`]). From this
/// module's threads, never from a signal handler. The message is one write(2) to stderr,
/// without std's lock of it (the stuck thread may hold it) and only when stderr can take it
/// now (a pipe nobody reads must not keep the run from exiting).
fn exit_now(sig: i32) -> ! {
    let message = interrupted_line();
    let mut err = libc::pollfd { fd: libc::STDERR_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll(2) reads and fills the one pollfd passed; write(2) reads the message only.
    unsafe {
        if libc::poll(&mut err, 1, 0) == 1 && err.revents & libc::POLLOUT != 0 {
            libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
        }
    }
    // Held until the exit: a thread about to create a temporary file waits for it.
    let _temps = remove_temps();
    std::process::exit(128 + sig);
}

/// Remove the temporary files still being written (a pyc of 40 MB takes a while), so that
/// a run ended at once leaves none behind, and keep any more from being made: the lock is
/// returned held. It is otherwise only held to create a file and list it, or to take one off
/// the list; should a stuck thread hold it, the files stay (`check --stray` names them, a
/// later prune of the cache removes its own).
fn remove_temps() -> Option<std::sync::MutexGuard<'static, Temps>> {
    for _ in 0..50 {
        if let Ok(mut temps) = TEMPS.try_lock() {
            temps.exiting = true;
            for (fd, path) in temps.files.iter() {
                // SAFETY: a directory handle still open (its file is being written under it).
                let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(*fd) };
                let _ = rustix::fs::unlinkat(dir, path, rustix::fs::AtFlags::empty());
            }
            return Some(temps);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    None
}

/// Held while a temporary file is created ([`begin_temp`]); [`TempGuard::created`] lists it.
pub struct TempGuard(std::sync::MutexGuard<'static, Temps>);

/// Before creating a temporary file: the list's lock, so that a run ending at once between
/// the creation and the listing cannot miss it. Fails once the run is exiting.
pub fn begin_temp() -> std::io::Result<TempGuard> {
    let temps = TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if temps.exiting {
        return Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"));
    }
    Ok(TempGuard(temps))
}

impl TempGuard {
    /// The file was created at `path` relative to the directory handle `dir` (the working
    /// directory's `AT_FDCWD` will do): removed should the run end at once.
    pub fn created(mut self, dir: std::os::fd::BorrowedFd<'_>, path: &std::path::Path) {
        self.0.files.push((std::os::fd::AsRawFd::as_raw_fd(&dir), path.to_path_buf()));
    }
}

/// The temporary file of [`TempGuard::created`] was renamed or removed.
pub fn temp_gone(dir: std::os::fd::BorrowedFd<'_>, path: &std::path::Path) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let mut temps = TEMPS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = temps.files.iter().position(|(f, p)| *f == fd && p == path) {
        temps.files.swap_remove(i);
    }
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0 || ARRIVED.load(Ordering::SeqCst) != 0
}

/// The exit status for the interrupt that arrived, if any (130 for SIGINT, 143 for SIGTERM,
/// 129 for SIGHUP).
pub fn exit_code() -> Option<i32> {
    match (SIGNAL.load(Ordering::SeqCst), ARRIVED.load(Ordering::SeqCst)) {
        (0, 0) => None,
        (0, sig) => Some(128 + sig as i32),
        (sig, _) => Some(128 + sig),
    }
}

/// Held (shared) while a file is written that must not be left half-written: what
/// [`abandon_unless`] waits for before it ends the run.
static WRITES: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held while writing a file (a pyc, a cache entry) from a thread that an interrupted run
/// may abandon ([`abandon_unless`]).
pub fn writing() -> std::sync::RwLockReadGuard<'static, ()> {
    WRITES.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// After an interrupt: wait a moment for `done` (threads to finish), and if they have not,
/// end the run now, as an interrupted run ends (`error: interrupted`, exit 130 or 143),
/// once no file is being written ([`writing`]): they are waiting on something a signal
/// does not wake (remote lookups on a server that does not answer) and are abandoned.
pub fn abandon_unless(done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        if started.elapsed() >= std::time::Duration::from_millis(200) {
            let _no_writes = WRITES.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), interrupted_line().as_bytes());
            std::process::exit(exit_code().unwrap_or(130));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

pub fn register(pid: u32) {
    WORKERS.lock().expect("worker registry").push(pid);
    // A worker started just as the signal arrived must not survive it.
    if requested() {
        kill_all();
    }
}

pub fn unregister(pid: u32) {
    WORKERS.lock().expect("worker registry").retain(|&p| p != pid);
}

fn kill_all() {
    for &pid in WORKERS.lock().expect("worker registry").iter() {
        // SAFETY: kill(2) on a process group we started; no memory is touched.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// Whether processes orphaned under hashpyc are reparented to it, with nobody else to
/// reap them: it is process 1 (a container started without `--init`) or a child
/// subreaper. Then a killed worker's forks (its zygote's children, a launcher's
/// interpreter) and a launcher's background processes become its zombies, each holding a
/// process under a pids limit until reaped ([`reap_orphans`]).
fn adopts_orphans() -> bool {
    static ADOPTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ADOPTS.get_or_init(|| {
        let mut subreaper: libc::c_int = 0;
        // SAFETY: getpid has no preconditions; PR_GET_CHILD_SUBREAPER writes one int
        // through the pointer given, which lives until the call returns.
        unsafe {
            libc::getpid() == 1
                || (libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut subreaper as *mut libc::c_int) == 0
                    && subreaper != 0)
        }
    })
}

/// Serializes [`reap_orphans`]: a zombie found by one is reaped by it alone, so its pid
/// cannot be freed and taken by a new child of ours before the `waitpid`.
static REAPING: Mutex<()> = Mutex::new(());

/// Reap the zombies of processes hashpyc adopted (see [`adopts_orphans`]; nothing to do
/// otherwise), never the exit status of a child that a `std::process::Child` waits for:
/// every process hashpyc starts (a worker's zygote, a probe) leads a process group of its
/// own, so a zombie child of ours in another process group than its own is an adopted
/// orphan (a killed zygote's fork is in the zygote's group, a launcher's child in the
/// launcher's). Found in /proc (its `stat`: state, parent, process group); a /proc of
/// another pid namespace shows none.
pub fn reap_orphans() {
    if !adopts_orphans() {
        return;
    }
    let _one = REAPING.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: getpid has no preconditions.
    let own = unsafe { libc::getpid() };
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid pgrp …`, comm holding any byte but the last `)`.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(ppid), Some(pgrp)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if state == "Z" && ppid.parse() == Ok(own) && pgrp.parse() != Ok(pid) {
            // SAFETY: waitpid of one zombie child of ours that no `Child` owns; the status
            // is not needed.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
    }
}

/// After the process group `pgid` (a worker or a probe and what it started) was killed
/// and its leader reaped: where hashpyc adopts what the group's other processes leave
/// (see [`adopts_orphans`]), wait a moment for them to end and reap them, so that none is
/// left a zombie holding a process under a pids limit.
pub fn reap_group(pgid: u32) {
    if !adopts_orphans() {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
    loop {
        reap_orphans();
        // SAFETY: signal 0 to a process group: only whether any process of it is left
        // (a zombie not yet reaped counts).
        let left = unsafe { libc::kill(-(pgid as i32), 0) } == 0;
        if !left || std::time::Instant::now() >= until {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
