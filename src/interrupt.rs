//! SIGINT and SIGTERM: remember which arrived, kill every worker process group at once
//! so nothing blocks on Python, and let the pipeline unwind (temporary files are removed
//! as they drop) before exiting 130 or 143. A second signal exits immediately, and so
//! does a run that has not finished unwinding 5 seconds after the first.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// How long the run may take to unwind after the first signal before it exits regardless.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Start the signal-handling thread (once, from `run`).
pub fn install() {
    let Ok(mut signals) = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM]) else {
        return;
    };
    std::thread::Builder::new()
        .name("hashpyc-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if SIGNAL.swap(sig, Ordering::SeqCst) != 0 {
                    std::process::exit(128 + sig);
                }
                kill_all();
                // The unwind takes milliseconds; a run still there after GRACE is stuck in
                // a system call (a file on a hung network mount, a device): exit anyway, as
                // a second signal would, rather than make `docker stop` or a CI cancel wait
                // for SIGKILL.
                std::thread::spawn(move || {
                    std::thread::sleep(GRACE);
                    std::process::exit(128 + sig);
                });
            }
        })
        .ok();
}

/// Whether an interrupt arrived.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The exit status for the interrupt that arrived, if any (130 for SIGINT, 143 for SIGTERM).
pub fn exit_code() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(128 + sig),
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
