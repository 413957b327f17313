//! Background uploads to the remote tier: a compile never waits for the network (nor for
//! compressing what goes over it: the upload threads encode the entries). Stores are
//! queued (bounded: when the queue is full an upload is dropped and counted, since a cache
//! may miss but a build must not slow down) and sent by a pool of threads, many at once;
//! the end of a build waits for them, bounded, and reports what did not finish. An entry
//! is sent once per run: identical sources give identical keys, and concurrent PUTs of
//! one key are both wasted traffic and a race some servers handle badly.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};

use super::entry::{self, Compression, Key, Payload};
use super::{Remote, Sent};

/// Queued uploads (entries are a few KiB: tens of MiB at most).
const QUEUE: usize = 16 * 1024;

struct Job {
    key: Key,
    payload: Payload,
    unless_present: bool,
    /// The pycs it stands for, counted as stores.
    weight: u64,
}

pub struct Uploader {
    remote: Arc<Remote>,
    /// Threads sending uploads ([`super::remote::upload_threads`]).
    pub threads: usize,
    tx: Mutex<Option<Sender<Job>>>,
    /// Queued or running.
    pending: Arc<AtomicUsize>,
    /// Not sent, and why.
    unsent: Arc<Unsent>,
    /// Keys queued in this run, with the kind of payload (a body, a failure, the marker).
    queued: Mutex<std::collections::HashSet<(Key, std::mem::Discriminant<Payload>)>>,
}

/// How the uploads ended.
pub struct UploadReport {
    /// From the end of the compile to the last upload (or the limit).
    pub waited: Duration,
    /// Still queued or running when the wait ended.
    pub abandoned: usize,
    /// The wait ended on an interrupt.
    pub interrupted: bool,
    /// Not sent: the server holds a usable entry.
    pub present: u64,
    /// Not sent: the same entry was queued earlier in this run (identical sources).
    pub duplicates: u64,
    /// Not sent: the queue was full.
    pub dropped: u64,
    /// Not sent: larger than a lookup accepts.
    pub too_large: u64,
    /// Not sent: the server throttled it (HTTP 429/503) through all its attempts.
    pub throttled: u64,
    /// Refused by the server for its size (HTTP 413).
    pub refused: u64,
    /// Not sent (or failed) because the remote was switched off, or its uploads stopped
    /// (refused the credentials lookups were answered with): those skipped, and those
    /// still queued when the wait ended.
    pub off: u64,
}

/// The uploads not sent, by reason.
#[derive(Default)]
struct Unsent {
    present: AtomicU64,
    duplicates: AtomicU64,
    dropped: AtomicU64,
    too_large: AtomicU64,
    /// Not sent, or failed, once the remote was switched off or its uploads stopped (the
    /// one that failed included).
    off: AtomicU64,
}

impl Uploader {
    pub fn start(remote: Arc<Remote>) -> Uploader {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        let unsent = Arc::new(Unsent::default());
        let threads = super::remote::upload_threads();
        for i in 0..threads {
            let (rx, r, pending, unsent) =
                (rx.clone(), Arc::clone(&remote), Arc::clone(&pending), Arc::clone(&unsent));
            let spawned = std::thread::Builder::new().name(format!("hashpyc-upload-{i}")).spawn(move || {
                for job in rx {
                    if r.uploading() && !crate::interrupt::requested() {
                        upload(&r, &job, &unsent);
                    } else if !r.uploading() {
                        unsent.off.fetch_add(1, Ordering::Relaxed);
                    }
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            });
            if spawned.is_err() && i == 0 {
                // No thread at all: uploads are simply not made.
                remote.off.store(true, Ordering::Relaxed);
            }
        }
        Uploader { remote, threads, tx: Mutex::new(Some(tx)), pending, unsent, queued: Mutex::default() }
    }

    /// Queue an upload.
    pub fn push(&self, key: Key, payload: Payload, unless_present: bool, weight: u64) {
        if !self.queued.lock().expect("upload lock").insert((key, std::mem::discriminant(&payload))) {
            self.unsent.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let guard = self.tx.lock().expect("upload lock");
        let Some(tx) = guard.as_ref() else { return };
        self.pending.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Job { key, payload, unless_present, weight }) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                self.unsent.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// No more uploads; wait at most `limit` for the queued ones — and not at all once
    /// the remote is switched off (or its uploads stopped, refused the credentials lookups
    /// were answered with): what is queued will not be sent, and a request in
    /// flight to a failed server only waits for its timeout (its warning says enough) —
    /// nor once the run is interrupted: what is left is dropped.
    pub fn finish(&self, limit: Duration) -> UploadReport {
        drop(self.tx.lock().expect("upload lock").take());
        let start = Instant::now();
        let interrupted = crate::interrupt::requested;
        while self.pending.load(Ordering::SeqCst) > 0
            && start.elapsed() < limit
            && self.remote.uploading()
            && !interrupted()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        UploadReport {
            interrupted: interrupted(),
            waited: start.elapsed(),
            abandoned: if self.remote.uploading() { self.pending.load(Ordering::SeqCst) } else { 0 },
            present: self.unsent.present.load(Ordering::Relaxed),
            duplicates: self.unsent.duplicates.load(Ordering::Relaxed),
            dropped: self.unsent.dropped.load(Ordering::Relaxed),
            too_large: self.unsent.too_large.load(Ordering::Relaxed),
            throttled: self.remote.throttled_uploads.load(Ordering::Relaxed),
            refused: self.remote.refused_uploads.load(Ordering::Relaxed),
            off: if self.remote.uploading() {
                0
            } else {
                self.unsent.off.load(Ordering::Relaxed) + self.pending.load(Ordering::SeqCst) as u64
            },
        }
    }
}

fn upload(remote: &Remote, job: &Job, unsent: &Unsent) {
    let found_damaged = || remote.found_damaged.lock().expect("cache lock").contains(&job.key);
    if job.unless_present && !found_damaged() {
        // What is there is read and checked, as the local tier does: a damaged entry (a
        // path-dependent marker, say) is replaced, not taken for one already there.
        match remote.get_before_put(&job.key) {
            Sent::Answered(Some(data)) => match entry::decode(&job.key, &data) {
                Ok(_) => {
                    unsent.present.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                // No room to decode it now: not damage; uploaded as if missing.
                Err(entry::Damage::Busy) => {}
                Err(d) => {
                    remote.damaged(&job.key, &d);
                    if !remote.usable() {
                        return;
                    }
                }
            },
            // Answered, its body left unread for want of room: as if missing, as above.
            Sent::Answered(None) | Sent::Busy => {}
            Sent::Failed | Sent::Unsent | Sent::Refused => {
                unsent.off.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Sent::Throttled | Sent::TooLarge => return,
        }
    }
    let data = entry::encode(&job.key, &job.payload, Compression::Zstd);
    if data.len() as u64 > super::remote::MAX_ENTRY {
        // Lookups would refuse it as too large.
        unsent.too_large.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match remote.put(&job.key, &data) {
        Sent::Answered(_) => {
            remote.counts.stores.fetch_add(job.weight, Ordering::Relaxed);
        }
        Sent::Failed | Sent::Unsent | Sent::Refused => {
            unsent.off.fetch_add(1, Ordering::Relaxed);
        }
        Sent::Throttled | Sent::Busy | Sent::TooLarge => {}
    }
}
