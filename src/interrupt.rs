//! SIGINT and SIGTERM: remember which arrived, kill every worker process group at once
//! so nothing blocks on Python, and let the pipeline unwind (temporary files are removed
//! as they drop) before exiting 130 or 143. A second signal exits immediately, and so
//! does a run that has not finished unwinding 5 seconds after the first.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The signal, stored by the handler itself: a thread held in a blocking call (a lock waited
/// for, a FIFO read) goes on once the handler has run, and must find the run interrupted
/// then, not once the signal thread has woken ([`requested`]).
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How long the run may take to unwind after the first signal before it exits regardless.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Start the signal-handling thread (once, from `run`).
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]) else {
        return;
    };
    for sig in [libc::SIGINT, libc::SIGTERM] {
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
    const MESSAGE: &[u8] = b"error: interrupted\n";
    let mut err = libc::pollfd { fd: libc::STDERR_FILENO, events: libc::POLLOUT, revents: 0 };
    // SAFETY: poll(2) reads and fills the one pollfd passed; write(2) reads MESSAGE only.
    unsafe {
        if libc::poll(&mut err, 1, 0) == 1 && err.revents & libc::POLLOUT != 0 {
            libc::write(libc::STDERR_FILENO, MESSAGE.as_ptr().cast(), MESSAGE.len());
        }
    }
    std::process::exit(128 + sig);
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0 || ARRIVED.load(Ordering::SeqCst) != 0
}

/// The exit status for the interrupt that arrived, if any (130 for SIGINT, 143 for SIGTERM).
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
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), b"error: interrupted\n");
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
