//! SIGINT and SIGTERM: remember which arrived, kill every worker process group at once
//! so nothing blocks on Python, and let the pipeline unwind (temporary files are removed
//! as they drop) before exiting 130 or 143. A second signal exits immediately.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static WORKERS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

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
