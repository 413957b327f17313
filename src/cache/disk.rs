//! The local tier: one file per entry under `DIR/v1/<2 hex>/<rest of the key in hex>`
//! (sccache's fan-out), written atomically (temporary file in the same directory, then
//! rename) so a reader sees a whole entry or none; recency is the file's mtime, refreshed
//! by hits (only when something may be more recent: see [`DiskTier::get`]); pruning deletes the least recently used first.
//!
//! Shared between processes and users: every operation tolerates another process creating,
//! replacing or deleting any file at any moment (a vanished entry is a miss). When `DIR` is
//! group-writable, new directories and entries are made group-writable too, whatever the
//! umask, so a team can share one directory (`chgrp team DIR && chmod 2775 DIR`).

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::entry::{Key, MAX_ENTRY};

/// The entries' directory under the cache root (bumped with the entry format).
const ENTRIES: &str = "v1";
/// Hits refresh an entry's mtime when it is older than this.
const REFRESH_AFTER: Duration = Duration::from_secs(3600);
/// Temporary files older than this were left by a crash: pruning removes them.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The cache directory tag's name, and hashpyc's own files at the top of a cache.
const TAG: &str = "CACHEDIR.TAG";
const OWN_FILES: [&str; 5] = [TAG, "stats.json", "stats.id", "stats.lock", "prune.lock"];
/// How hashpyc's temporary files are named (then 6 random letters or digits).
const TEMP_PREFIX: &str = ".tmp-";
/// An entry's key in hex: the fan-out directory's 2 characters, then the file's name.
const KEY_HEX: usize = 2 * std::mem::size_of::<Key>();

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hashpyc (its bytecode cache).\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

pub struct DiskTier {
    root: PathBuf,
    entries: PathBuf,
    /// `DIR` is group-writable: share new files and directories with the group.
    group: AtomicBool,
    /// Fan-out directories known to exist.
    made: Vec<AtomicBool>,
    /// `DIR` did not exist when the cache was opened: it is made (and tagged) by the first
    /// store ([`DiskTier::put`]), so that a run that stores nothing (nothing to compile,
    /// every file fresh) leaves no directory behind. Under its lock until then.
    pending: Mutex<bool>,
    unmade: AtomicBool,
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Entries removed, and the bytes they took.
    pub removed: usize,
    pub freed: u64,
    /// Entries left, and the bytes they take.
    pub left: usize,
    pub size: u64,
    /// The first entry that could not be removed (it is counted as left), and why.
    pub error: Option<ItemError>,
    /// The run was interrupted ([`crate::interrupt`]): the entries not removed yet are left.
    pub interrupted: bool,
    /// [`DiskTier::prune_over`] measured the entries within its limit: nothing was removed.
    pub within: bool,
}

/// Mark an entry used now (best effort): both its times set to "now" by the kernel (a null
/// `times`, as `touch` does), which any user who may write the file may do. In a cache a
/// group shares (entries `0664`), another member's hit marks an entry it does not own,
/// where setting an explicit time, or the modification time alone, is the owner's alone
/// (EPERM), and the entries the group used most were pruned first.
fn mark_used(file: &std::fs::File) {
    // SAFETY: a valid descriptor; a null `times` sets both to the current time.
    unsafe { libc::futimens(std::os::fd::AsRawFd::as_raw_fd(file), std::ptr::null()) };
}

/// What [`DiskTier::clean`] did.
#[derive(Debug, Default)]
pub struct Cleaned {
    /// Entries removed, and the bytes they (and the temporary files removed) took.
    pub removed: usize,
    pub freed: u64,
    /// Interrupted ([`crate::interrupt`]) before every entry was removed, or before the
    /// tidy-up after them (emptied directories, statistics) was done: the entries left and
    /// the bytes they take (the statistics and directories not removed yet are left too).
    pub interrupted: bool,
    pub left: usize,
    pub size: u64,
}

/// One entry file, for pruning and statistics.
#[derive(Clone, Debug)]
pub struct EntryFile {
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
}

impl DiskTier {
    /// Open (creating it when missing) the cache at `root`. A directory that holds other
    /// files and no tag of hashpyc's is refused: hashpyc would otherwise tag it as a cache
    /// (which backup tools then skip) and its pruning would share the directory with data
    /// that is not its own.
    pub fn open(root: &Path) -> std::io::Result<DiskTier> {
        if std::fs::metadata(root).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            && dangling(root).is_none()
        {
            // Made by the first store. What would keep it from being made is said now, as
            // when it was made here: the directory above it that may not be written.
            creatable(root)?;
            return Ok(DiskTier::new(root, false, true));
        }
        if let Err(e) = std::fs::create_dir_all(root) {
            // A file in its place, or a link to nothing, fails with "File exists": say what
            // is wrong, as `existing` does.
            return Err(if std::fs::metadata(root).is_ok_and(|m| !m.is_dir()) {
                not_a_directory()
            } else {
                dangling(root).unwrap_or_else(|| file_above(root, e))
            });
        }
        let group = std::fs::metadata(root)?.permissions().mode() & 0o020 != 0;
        match classify(root)? {
            // Tagged, or a tag in flight (another build's temporary file) or lost with a
            // crash: tag it (again), atomically.
            Kind::Cache if std::fs::symlink_metadata(root.join(TAG)).is_ok() => {}
            Kind::Cache | Kind::Unused => {
                // Best effort: a read-only cache still serves hits.
                let _ = write_atomic(root, &root.join(TAG), CACHEDIR_TAG.as_bytes(), group);
            }
            Kind::Foreign => return Err(foreign()),
        }
        if let Some(e) = linked(&root.join(ENTRIES)) {
            return Err(e);
        }
        Ok(DiskTier::new(root, group, false))
    }

    fn new(root: &Path, group: bool, unmade: bool) -> DiskTier {
        DiskTier {
            root: root.to_path_buf(),
            entries: root.join(ENTRIES),
            group: AtomicBool::new(group),
            made: (0..256).map(|_| AtomicBool::new(false)).collect(),
            pending: Mutex::new(unmade),
            unmade: AtomicBool::new(unmade),
        }
    }

    /// Whether the directory is still to be made by a first store (nothing was stored):
    /// nothing is to be recorded in it either (statistics, pruning).
    pub fn unmade(&self) -> bool {
        self.unmade.load(Ordering::Acquire)
    }

    /// Make the directory that did not exist when the cache was opened, and tag it, once.
    fn make_root(&self) -> std::io::Result<()> {
        if !self.unmade() {
            return Ok(());
        }
        let mut pending = self.pending.lock().expect("cache lock");
        if *pending {
            std::fs::create_dir_all(&self.root).map_err(|e| file_above(&self.root, e))?;
            let group = std::fs::metadata(&self.root)?.permissions().mode() & 0o020 != 0;
            self.group.store(group, Ordering::Relaxed);
            // Another build may have made it meanwhile: tagged as `open` tags it.
            match classify(&self.root)? {
                Kind::Cache if std::fs::symlink_metadata(self.root.join(TAG)).is_ok() => {}
                Kind::Cache | Kind::Unused => {
                    let _ = write_atomic(&self.root, &self.root.join(TAG), CACHEDIR_TAG.as_bytes(), group);
                }
                Kind::Foreign => return Err(foreign()),
            }
            if let Some(e) = linked(&self.entries) {
                return Err(e);
            }
            *pending = false;
            self.unmade.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Who besides this user may write the cache, when that is someone it should not
    /// take code from without a word: every user (the directory, or its entries'
    /// directory, writable by all), or, for a run as root, the user who owns either (a
    /// cache another user left in `/tmp`). A group sharing a cache is no finding.
    pub fn untrusted_writers(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        // A link another user made decides where the cache is, whoever owns what it leads
        // to (root's own directory, given its CACHEDIR.TAG and entries).
        if let Some(uid) = crate::io::link_of_another_user(&self.root) {
            return Some(format!(
                "{} is a symbolic link of uid {uid}, who decides where it leads",
                crate::report::ticked(&self.root)
            ));
        }
        [&self.root, &self.entries].into_iter().find_map(|dir| {
            let meta = std::fs::metadata(dir).ok()?;
            if meta.mode() & 0o002 != 0 {
                Some(format!("{} is writable by every user", crate::report::ticked(dir)))
            } else if me == 0 && meta.uid() != 0 {
                Some(format!(
                    "{} belongs to uid {}, and this run is root's",
                    crate::report::ticked(dir),
                    meta.uid()
                ))
            } else {
                None
            }
        })
    }

    /// Open an existing directory as a cache without creating anything (management
    /// commands, a read-only cache); callers ask [`DiskTier::looks_like_cache`] or
    /// [`DiskTier::is_foreign`] before touching it.
    pub fn existing(root: &Path) -> std::io::Result<DiskTier> {
        let meta =
            std::fs::metadata(root).map_err(|e| dangling(root).unwrap_or_else(|| file_above(root, e)))?;
        if !meta.is_dir() {
            return Err(not_a_directory());
        }
        Ok(DiskTier::new(root, meta.permissions().mode() & 0o020 != 0, false))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Why `v1/` cannot be used when it is a symbolic link (someone else made it; it may
    /// lead out of the cache) or not a directory (a file a damaged restore left): nothing
    /// is read, stored, counted or removed through it.
    pub fn linked_entries(&self) -> Option<std::io::Error> {
        linked(&self.entries)
    }

    /// Ok when `v1/` is missing or a directory; else an error of `v1/`'s, naming it.
    fn real_entries(&self) -> Result<(), ItemError> {
        match self.linked_entries() {
            Some(source) => Err(ItemError { verb: "use", path: self.entries.clone(), source }),
            None => Ok(()),
        }
    }

    /// Whether no entry is stored at all (no fan-out directory holds a file): lookups
    /// cannot hit. A directory that cannot be read (permission denied) is an error naming
    /// it, never an empty cache (lookups may still find entries there), as in [`DiskTier::scan`].
    pub fn is_empty(&self) -> Result<bool, ItemError> {
        self.real_entries()?;
        let fans = match std::fs::read_dir(&self.entries) {
            Ok(fans) => fans,
            Err(e) if gone(&e) => return Ok(true),
            Err(e) => return Err(unreadable(&self.entries, e)),
        };
        for fan in fans {
            let fan = fan.map_err(|e| unreadable(&self.entries, e))?;
            if !fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match std::fs::read_dir(fan.path()) {
                Ok(mut files) => {
                    if files.next().is_some() {
                        return Ok(false);
                    }
                }
                Err(e) if gone(&e) => {}
                Err(e) => return Err(unreadable(&fan.path(), e)),
            }
        }
        Ok(true)
    }

    /// Why `root` cannot be read (permission denied), if it cannot: `looks_like_cache`,
    /// `is_unused` and `is_foreign` are all false then.
    pub fn unreadable(&self) -> Option<std::io::Error> {
        classify(&self.root).err()
    }

    /// Whether `root` holds a hashpyc cache: hashpyc's tag, or entries and nothing else
    /// (an empty directory is not one: see [`DiskTier::is_unused`]).
    pub fn looks_like_cache(&self) -> bool {
        classify(&self.root).is_ok_and(|k| k == Kind::Cache)
    }

    /// Whether `root` is an empty directory, which the first build makes a cache (the
    /// management commands take it for an empty cache).
    pub fn is_unused(&self) -> bool {
        classify(&self.root).is_ok_and(|k| k == Kind::Unused)
    }

    /// Whether `root` holds files that are not hashpyc's and no tag of hashpyc's.
    pub fn is_foreign(&self) -> bool {
        classify(&self.root).is_ok_and(|k| k == Kind::Foreign)
    }

    /// Where the entry for `key` is (for messages).
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.path_of(key)
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        let hex = crate::pyc::hex(key);
        self.entries.join(&hex[..2]).join(&hex[2..])
    }

    /// The stored bytes for `key`: [`Read::Missing`] when there is no such entry,
    /// [`Read::Damaged`] when something else than an entry hashpyc could have written is
    /// there (never read: see [`read_bounded`]). `refresh`: mark an entry found as used
    /// now when it was last marked before that time (the start of the last build mostly
    /// new to the cache: it may have stored entries more recent than this one) or more
    /// than an hour ago; None in a read-only run, which keeps the pruning order.
    /// A fan-out directory that is a symbolic link (or anything but a directory) makes
    /// whatever it leads to damage: never a hit, never refreshed.
    pub fn get(&self, key: &Key, refresh: Option<SystemTime>) -> std::io::Result<Read> {
        let (found, file) = read_bounded(&self.path_of(key), MAX_ENTRY)?;
        if !matches!(found, Read::Missing) && !self.fan_is_real(key) {
            return Ok(Read::Damaged(
                "an entry under a directory of the cache that is a symbolic link".into(),
            ));
        }
        // Recency for LRU pruning; a read-only cache simply keeps its order.
        if let (Some(file), Some(before)) = (file, refresh)
            && let Ok(meta) = file.metadata()
            && let Ok(modified) = meta.modified()
            && (modified < before || modified.elapsed().is_ok_and(|age| age > REFRESH_AFTER))
        {
            mark_used(&file);
        }
        Ok(found)
    }

    /// hashpyc's own file `name` at the top of the cache (the statistics), if it is a
    /// regular file of at most `max` bytes.
    pub fn read_own_file(&self, name: &str, max: u64) -> Option<Vec<u8>> {
        self.read_own_file_meta(name, max).map(|(data, _)| data)
    }

    /// [`DiskTier::read_own_file`], with the file's metadata as read (its identity).
    pub fn read_own_file_meta(&self, name: &str, max: u64) -> Option<(Vec<u8>, std::fs::Metadata)> {
        match read_bounded(&self.root.join(name), max) {
            Ok((Read::Entry(data), Some(file))) => Some((data, file.metadata().ok()?)),
            _ => None,
        }
    }

    /// Whether an entry exists for `key` (a regular file, never through a symbolic link).
    pub fn contains(&self, key: &Key) -> bool {
        self.fan_is_real(key) && std::fs::symlink_metadata(self.path_of(key)).is_ok_and(|m| m.is_file())
    }

    /// Store `data` for `key`, atomically; returns the bytes the cache grew by on disk: the
    /// new entry's, less those of the entry it replaced (`--force`, another build storing
    /// the same key), so that the size recorded for pruning follows the real one.
    /// Nothing is stored through a fan-out directory or a `v1/` that is a symbolic link
    /// (someone else made it; it may lead out of the cache), checked at every store: an
    /// error of the entry's, naming the link.
    pub fn put(&self, key: &Key, data: &[u8]) -> std::io::Result<u64> {
        self.make_root()?;
        let path = self.path_of(key);
        let replaced =
            std::fs::symlink_metadata(&path).ok().filter(|m| m.is_file()).map_or(0, |m| m.blocks() * 512);
        let dir = path.parent().expect("fan-out directory");
        let slot = &self.made[usize::from(key[0])];
        let mut make = !slot.load(Ordering::Relaxed);
        let mut tries = 0;
        loop {
            // At every store, not only when the directories are made, `v1/` and the fan-out
            // directory are opened refusing a symbolic link (O_NOFOLLOW), and the entry is
            // written and renamed relative to the fan-out directory's handle: a link put in
            // their place mid-run is never written through, even one put there between a
            // check and the write.
            let stored = (if make { self.make_dir(&self.entries) } else { Ok(()) })
                .and_then(|()| open_real_dir(rustix::fs::CWD, &self.entries, &self.entries))
                .and_then(|v1| {
                    let fan = dir.file_name().expect("fan-out directory");
                    if make {
                        self.make_dir_at(v1.as_fd(), fan)?;
                    }
                    open_real_dir(v1.as_fd(), fan.as_ref(), dir)
                })
                .and_then(|fan| {
                    write_atomic_at(fan.as_fd(), &path, data, self.group.load(Ordering::Relaxed))
                });
            match stored {
                // Another process (clean, prune) removed the directories meanwhile: again,
                // a few times (a failure left is the entry's own, see `whole_cache`).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => {
                    tries += 1;
                    make = true;
                }
                other => {
                    if make && other.is_ok() {
                        slot.store(true, Ordering::Relaxed);
                    }
                    return other.map(|on_disk| on_disk.saturating_sub(replaced));
                }
            }
        }
    }

    /// Replace hashpyc's own file `name` at the top of the cache (the statistics)
    /// atomically, shared with the group as entries are; the metadata of the file now in
    /// place (its inode, and its change time after the rename).
    pub fn write_own_file(&self, name: &str, data: &[u8]) -> std::io::Result<std::fs::Metadata> {
        write_atomic_meta(&self.root, &self.root.join(name), data, self.group.load(Ordering::Relaxed))
    }

    /// Remove the entry for `key` (a damaged one), ignoring a concurrent removal; a
    /// directory in its place only when it is empty (never what it holds).
    pub fn remove(&self, key: &Key) {
        // Never through a fan-out directory that is a symbolic link.
        if !self.fan_is_real(key) {
            return;
        }
        let path = self.path_of(key);
        if std::fs::remove_file(&path).is_err() {
            let _ = std::fs::remove_dir(&path);
        }
    }

    /// Whether the fan-out directory of `key`, and `v1/` above it, are directories, not
    /// symbolic links to one.
    fn fan_is_real(&self, key: &Key) -> bool {
        let path = self.path_of(key);
        let real = |dir: &Path| std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
        real(&self.entries) && real(path.parent().expect("fan-out directory"))
    }

    /// [`DiskTier::make_dir`] of `name` in the directory `at`.
    fn make_dir_at(&self, at: BorrowedFd<'_>, name: &std::ffi::OsStr) -> std::io::Result<()> {
        match rustix::fs::mkdirat(at, name, rustix::fs::Mode::from_raw_mode(0o777)) {
            Ok(()) => {
                if self.group.load(Ordering::Relaxed) {
                    // setgid so the group is inherited, as on the root.
                    let mode = rustix::fs::Mode::from_raw_mode(0o2775);
                    let _ = rustix::fs::chmodat(at, name, mode, rustix::fs::AtFlags::empty());
                }
                Ok(())
            }
            Err(rustix::io::Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn make_dir(&self, dir: &Path) -> std::io::Result<()> {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                if self.group.load(Ordering::Relaxed) {
                    // setgid so the group is inherited, as on the root.
                    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2775));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every entry file (and, separately, temporary files left by crashes). A directory
    /// that cannot be read (permission denied) is an error naming it, never an empty cache;
    /// one another process removed meanwhile (a concurrent `clean`) holds nothing.
    pub fn scan(&self) -> Result<(Vec<EntryFile>, Vec<EntryFile>), ItemError> {
        let mut entries = Vec::new();
        let mut temps = root_temps(&self.root);
        // A symbolic link in place of `v1/` is not followed: an error naming it, so that
        // nothing it leads to is counted, pruned or removed.
        self.real_entries()?;
        let top = match std::fs::read_dir(&self.entries) {
            Ok(top) => top,
            Err(e) if gone(&e) => return Ok((entries, temps)),
            Err(e) => return Err(unreadable(&self.entries, e)),
        };
        for fan in top {
            let fan = fan.map_err(|e| unreadable(&self.entries, e))?;
            // A symbolic link (to a directory elsewhere) is not followed: what it leads to
            // is never counted, pruned or removed.
            if !is_hex(fan.file_name().as_encoded_bytes(), 2) || !fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let files = match std::fs::read_dir(fan.path()) {
                Ok(files) => files,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(unreadable(&fan.path(), e)),
            };
            for f in files.filter_map(Result::ok) {
                let name = f.file_name();
                let name = name.as_encoded_bytes();
                let temp = name.starts_with(b".tmp-");
                if !temp && !is_hex(name, KEY_HEX - 2) {
                    // Not a file hashpyc wrote: never counted, pruned or removed.
                    continue;
                }
                // A file another process removed meanwhile is gone; one that cannot be
                // looked at (a fan-out directory that may be listed, not entered) makes the
                // measured size wrong: an error naming it, never a smaller size.
                let meta = match f.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(unreadable(&f.path(), e)),
                };
                if !meta.is_file() {
                    continue;
                }
                let file = EntryFile {
                    path: f.path(),
                    size: meta.blocks() * 512,
                    mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                };
                if temp {
                    temps.push(file);
                } else {
                    entries.push(file);
                }
            }
        }
        Ok((entries, temps))
    }

    /// Keep the most recently used entries that fit in `max` bytes on disk, deleting the
    /// others; also temporary files a crash left. Entries are taken newest first, and one
    /// that does not fit in what is left of `max` is deleted while older, smaller ones may
    /// still fit (so a single entry larger than the limit never empties the cache). Only
    /// what was actually removed is counted: an entry that could not be (a read-only disk)
    /// is left, and the first such error returned with the counts. An interrupt stops the
    /// removals: what is left is counted as left.
    pub fn prune(&self, max: u64) -> Result<Pruned, ItemError> {
        self.prune_over(None, max)
    }

    /// [`DiskTier::prune`] when the entries, measured, take more than `limit`; else nothing
    /// is removed and `Pruned::within` says so (the recorded size that led here was too
    /// high: builds that started on a cache without statistics each add their stores to a
    /// size that the first to finish measured with the others' entries in it).
    pub fn prune_over(&self, limit: Option<u64>, max: u64) -> Result<Pruned, ItemError> {
        let (mut entries, temps) = self.scan()?;
        if let Some(limit) = limit {
            let size: u64 = entries.iter().map(|e| e.size).sum();
            if size <= limit {
                return Ok(Pruned { left: entries.len(), size, within: true, ..Pruned::default() });
            }
        }
        for t in temps {
            if t.mtime.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                let _ = std::fs::remove_file(&t.path);
            }
        }
        let mut p = Pruned::default();
        entries.sort_by_key(|e| std::cmp::Reverse(e.mtime));
        let mut room = max;
        for e in &entries {
            if e.size <= room {
                room -= e.size;
            } else if crate::interrupt::requested() {
                p.interrupted = true;
            } else {
                match std::fs::remove_file(&e.path) {
                    Ok(()) => {
                        p.removed += 1;
                        p.freed += e.size;
                        continue;
                    }
                    // Another process removed it already: neither removed here nor left.
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        p.error.get_or_insert(ItemError { verb: "remove", path: e.path.clone(), source });
                    }
                }
            }
            p.left += 1;
            p.size += e.size;
        }
        Ok(p)
    }

    /// Mark the entry for `key` as used now (best effort), for the pruning that follows.
    pub fn touch(&self, key: &Key) {
        if self.fan_is_real(key)
            && let Ok(f) = open_entry(&self.path_of(key))
            && f.metadata().is_ok_and(|m| m.is_file())
        {
            mark_used(&f);
        }
    }

    /// Remove every entry and the statistics, never anything else in the directory
    /// (a file of another name under `v1/` stays, and so do the directories holding it).
    /// Temporary files are removed only when a crash left them (older than an hour, as
    /// pruning does): a younger one is a store in flight in a build sharing the directory.
    /// Under `prune.lock`, waited for, as `cache prune`: one after the other. An interrupt
    /// stops the removals between entries, leaving the rest and the statistics, and so
    /// does one during the tidy-up after them: between directories, and before the
    /// statistics are removed (also once their lock, waited for, is taken).
    pub fn clean(&self) -> Result<Cleaned, ItemError> {
        // A directory where hashpyc keeps its statistics or locks is not hashpyc's: refused
        // before anything is removed, and left as it is.
        for name in ["stats.json", "stats.id", "stats.lock", "prune.lock"] {
            let path = self.root.join(name);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                let source = std::io::Error::other(
                    "it is a directory, which hashpyc never makes there; nothing was removed (remove it yourself)",
                );
                return Err(ItemError { verb: "use", path, source });
            }
        }
        let remove = || {
            let (entries, mut temps) = self.scan()?;
            temps.retain(|t| t.mtime.elapsed().is_ok_and(|age| age > STALE_TEMP));
            let mut c = Cleaned::default();
            for (i, e) in entries.iter().chain(&temps).enumerate() {
                if crate::interrupt::requested() {
                    let left = entries.get(i..).unwrap_or_default();
                    (c.interrupted, c.left, c.size) = (true, left.len(), left.iter().map(|e| e.size).sum());
                    break;
                }
                match std::fs::remove_file(&e.path) {
                    // Another process (a build's prune) removed it already.
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ItemError { verb: "remove", path: e.path.clone(), source });
                    }
                    _ => {}
                }
                c.removed += usize::from(i < entries.len());
                c.freed += e.size;
            }
            Ok(c)
        };
        let c = self.locked("prune.lock", true, remove).unwrap_or_else(remove)?;
        if c.interrupted {
            return Ok(c);
        }
        // Every entry is gone: an interrupt from here on leaves what is not removed yet, all
        // of which a build recreates and a later clean removes.
        let stopped = |mut c: Cleaned| {
            c.interrupted = true;
            Ok(c)
        };
        // The fan-out directories and `v1` go when nothing else is left in them; a
        // concurrent build recreates what it needs.
        if let Ok(fans) = std::fs::read_dir(&self.entries) {
            for fan in fans.filter_map(Result::ok) {
                if crate::interrupt::requested() {
                    return stopped(c);
                }
                if is_hex(fan.file_name().as_encoded_bytes(), 2) {
                    let _ = std::fs::remove_dir(fan.path());
                }
            }
            let _ = std::fs::remove_dir(&self.entries);
        }
        // Under the statistics' lock, as builds add to them: never between a build's read
        // and write. The lock files stay: unlinking one a process holds would let the next
        // lock a new file beside it. An interrupt, also one while the lock was waited for,
        // leaves the statistics.
        let clear = || {
            if crate::interrupt::requested() {
                return Ok(false);
            }
            for path in ["stats.json", "stats.id"].map(|name| self.root.join(name)) {
                match std::fs::remove_file(&path) {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ItemError { verb: "remove", path, source });
                    }
                    _ => {}
                }
            }
            Ok(true)
        };
        if !self.locked("stats.lock", true, clear).unwrap_or_else(clear)? {
            return stopped(c);
        }
        Ok(c)
    }

    /// Run `f` holding an exclusive lock on `DIR/<name>` (created when missing); `None` when
    /// `wait` is false and another process holds it, or the lock cannot be taken.
    pub fn locked<T>(&self, name: &str, wait: bool, f: impl FnOnce() -> T) -> Option<T> {
        self.lock(name, wait, f).ok().flatten()
    }

    /// [`DiskTier::locked`], saying why the lock could not be taken (a directory in the
    /// lock file's place, no permission), naming the file.
    pub fn lock<T>(&self, name: &str, wait: bool, f: impl FnOnce() -> T) -> Result<Option<T>, ItemError> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.root.join(name);
        // Non-blocking: a FIFO in its place fails at once instead of waiting for a reader.
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .create(write)
                .truncate(false)
                .read(!write)
                .write(write)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(&path)
        };
        // flock(2) needs no write access: a lock file restored read-only (a CI cache
        // archived with mode 0444) is locked through a read-only descriptor.
        let file = match open(true) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(false).map_err(|_| e),
            opened => opened,
        }
        .map_err(|source| ItemError { verb: "lock", path: path.clone(), source })?;
        if self.group.load(Ordering::Relaxed) {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o664));
        }
        let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(ItemError { verb: "lock", path, source });
        }
        let out = f();
        drop(file);
        Ok(Some(out))
    }
}

/// A file or directory of the cache that could not be read or removed, and why.
#[derive(Debug)]
pub struct ItemError {
    /// `read`, `remove`, `lock`, `write`, `use`.
    pub verb: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// `source`, from reading `path`, a directory of the cache.
fn unreadable(path: &Path, source: std::io::Error) -> ItemError {
    ItemError { verb: "read", path: path.to_path_buf(), source }
}

/// Whether a directory of the cache is gone (another process, a concurrent `clean`,
/// removed it): it holds nothing.
fn gone(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

/// What is found where an entry should be.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Entry(Vec<u8>),
    Missing,
    /// Something hashpyc never writes there, not read: `a directory`, `a FIFO`, `a symbolic
    /// link`, … or a file larger than any entry (a damaged entry).
    Damaged(String),
}

/// Open an entry (or hashpyc's own file) for reading: without following a symbolic link
/// (hashpyc renames regular files into place, never links) and without blocking (a FIFO
/// with no writer would wait for ever).
fn open_entry(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)
}

/// The bytes of the regular file at `path` if it holds at most `max` (and the open file,
/// for its times). Anything else is [`Read::Damaged`] and never read: a directory, a FIFO,
/// a device, a socket, a symbolic link (to `/dev/zero`, say), or a file larger than `max`
/// (sparse or not, it would be read whole into memory).
fn read_bounded(path: &Path, max: u64) -> std::io::Result<(Read, Option<std::fs::File>)> {
    use std::io::Read as _;
    let file = match open_entry(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Read::Missing, None)),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok((Read::Damaged("a symbolic link".into()), None));
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Ok((Read::Damaged(what.into()), None));
    }
    if meta.len() > max {
        return Ok((Read::Damaged(format!("{} bytes, larger than any entry", meta.len())), None));
    }
    // Bounded even should the file grow meanwhile (hashpyc never appends to one).
    let mut data = Vec::with_capacity(meta.len() as usize + 1);
    (&file).take(max + 1).read_to_end(&mut data)?;
    if data.len() as u64 > max {
        return Ok((Read::Damaged("larger than any entry".into()), None));
    }
    Ok((Read::Entry(data), Some(file)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// hashpyc's tag (the first line every cache directory tag has, then hashpyc's
    /// comment), or nothing but hashpyc's own files and entry directories.
    Cache,
    /// Empty: made a cache on first use.
    Unused,
    /// Anything else: another program's cache, a project directory, a mistyped path.
    Foreign,
}

fn classify(root: &Path) -> std::io::Result<Kind> {
    let signature = CACHEDIR_TAG.lines().next().expect("the tag's first line").as_bytes();
    if matches!(read_bounded(&root.join(TAG), 64 << 10), Ok((Read::Entry(tag), _))
        if tag.starts_with(signature) && tag.windows(b"by hashpyc".len()).any(|w| w == b"by hashpyc"))
    {
        return Ok(Kind::Cache);
    }
    let mut own = false;
    for item in std::fs::read_dir(root)? {
        let item = item?;
        let name = item.file_name();
        let name = name.as_encoded_bytes();
        let ours = if name == ENTRIES.as_bytes() {
            entries_only(&item.path())
        } else {
            // A temporary file of hashpyc's naming: the tag or the statistics being
            // written by another process, or a crash's leftover.
            (name != TAG.as_bytes() && OWN_FILES.iter().any(|f| f.as_bytes() == name))
                || (is_temp_name(name) && item.file_type().is_ok_and(|t| t.is_file()))
        };
        if !ours {
            return Ok(Kind::Foreign);
        }
        own = true;
    }
    Ok(if own { Kind::Cache } else { Kind::Unused })
}

/// Whether `dir` (a cache's `v1`) holds only fan-out directories of entry files.
fn entries_only(dir: &Path) -> bool {
    let Ok(fans) = std::fs::read_dir(dir) else { return false };
    fans.filter_map(Result::ok).all(|fan| {
        is_hex(fan.file_name().as_encoded_bytes(), 2)
            && std::fs::read_dir(fan.path()).is_ok_and(|files| {
                files.filter_map(Result::ok).all(|f| {
                    let name = f.file_name();
                    let name = name.as_encoded_bytes();
                    name.starts_with(b".tmp-") || is_hex(name, KEY_HEX - 2)
                })
            })
    })
}

/// The name [`write_atomic`] gives a temporary file: `.tmp-` and 6 letters or digits.
fn is_temp_name(name: &[u8]) -> bool {
    name.len() == TEMP_PREFIX.len() + 6
        && name.starts_with(TEMP_PREFIX.as_bytes())
        && name[TEMP_PREFIX.len()..].iter().all(u8::is_ascii_alphanumeric)
}

/// The temporary files [`write_atomic`] made at the top of the cache (the tag, the
/// statistics): in flight in another process, or left by a crash.
fn root_temps(root: &Path) -> Vec<EntryFile> {
    let Ok(items) = std::fs::read_dir(root) else { return Vec::new() };
    items
        .filter_map(Result::ok)
        .filter(|i| is_temp_name(i.file_name().as_encoded_bytes()))
        .filter_map(|i| {
            let meta = i.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some(EntryFile {
                path: i.path(),
                size: meta.blocks() * 512,
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// `len` lowercase hexadecimal digits.
fn is_hex(name: &[u8], len: usize) -> bool {
    name.len() == len && name.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a failed store means the cache as a whole takes no entries (no permission, a
/// read-only filesystem, no space, a quota reached): stores stop for the run. Any other
/// failure (a directory in an entry's place, a directory another process removed again) is
/// the entry's own: the others are still stored. Told by the error's kind, not its OS error
/// number: the temporary file's error comes wrapped (with its path) by `tempfile`, which
/// keeps the kind (EACCES and EPERM, EROFS, ENOSPC, EDQUOT) but no raw OS error.
pub fn whole_cache(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{PermissionDenied, QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem | StorageFull | QuotaExceeded)
}

pub fn foreign() -> std::io::Error {
    std::io::Error::other(
        "the directory holds files that are not hashpyc's and no CACHEDIR.TAG written by hashpyc; \
         name a new or empty directory (or one hashpyc made)",
    )
}

/// The reason a file (or anything but a directory) cannot be the cache.
fn not_a_directory() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory")
}

/// Why `root`, a symbolic link to nothing, cannot be the cache: no build can make the
/// directory (where the system says "File exists", or "No such file" as if one could).
fn dangling(root: &Path) -> Option<std::io::Error> {
    let target = std::fs::read_link(root).ok()?;
    std::fs::metadata(root).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound).then(|| {
        std::io::Error::other(format!(
            "it is a symbolic link to {}, which does not exist",
            crate::report::ticked(&target)
        ))
    })
}

/// Whether `root`, which does not exist, can be made: the nearest directory above it that
/// exists may be written (a file above it is `file_above`'s error, a read-only filesystem
/// or a directory of another user's the system's), as `create_dir_all` would find.
fn creatable(root: &Path) -> std::io::Result<()> {
    let base = std::env::current_dir().unwrap_or_default();
    let absolute = base.join(root);
    let Some(above) = absolute.ancestors().skip(1).find(|a| std::fs::symlink_metadata(a).is_ok()) else {
        return Ok(());
    };
    match std::fs::metadata(above) {
        Ok(m) if m.is_dir() => {
            rustix::fs::access(above, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK)
                .map_err(std::io::Error::from)
        }
        Ok(_) => Err(file_above(root, std::io::Error::from_raw_os_error(libc::ENOTDIR))),
        // A dangling link above it: as making it would fail.
        Err(e) => Err(file_above(root, e)),
    }
}

/// `e`, from making or reading `root`, naming the file that stands where a directory above
/// it should be (`--cache afile/sub`: "`afile` is not a directory", where the system says
/// only "Not a directory").
fn file_above(root: &Path, e: std::io::Error) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::NotADirectory {
        return e;
    }
    match root.ancestors().skip(1).find(|a| std::fs::metadata(a).is_ok_and(|m| !m.is_dir())) {
        Some(file) => std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", crate::report::ticked(file)),
        ),
        None => e,
    }
}

/// Why `dir` (the cache's `v1/`) cannot be used, if it is a symbolic link (it may lead out
/// of the cache, where hashpyc would read, write, count and remove files) or anything else
/// but a directory (a file a damaged restore left): never an empty cache.
fn linked(dir: &Path) -> Option<std::io::Error> {
    let Ok(target) = std::fs::read_link(dir) else {
        let meta = std::fs::symlink_metadata(dir).ok().filter(|m| !m.is_dir())?;
        let what = if meta.is_file() { "a file" } else { "not a directory" };
        return Some(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!(
                "{} is {what}, where hashpyc keeps a directory of entries; nothing is read, stored or removed there (remove it)",
                crate::report::ticked(dir)
            ),
        ));
    };
    Some(std::io::Error::other(format!(
        "{} is a symbolic link (to {}), where hashpyc makes a directory; nothing is read, stored or removed through it (remove it)",
        crate::report::ticked(dir),
        crate::report::ticked(&target)
    )))
}

/// Ok when `dir` (a fan-out directory) is a directory, not a symbolic link to one.
fn real_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.is_symlink() => Err(std::io::Error::other(format!(
            "{} is a symbolic link, where hashpyc makes a directory; nothing is stored through it (remove it)",
            crate::report::ticked(dir)
        ))),
        Ok(_) => Err(not_a_directory()),
        Err(e) => Err(e),
    }
}

/// Write `data` to `path` through a temporary file in `dir`, then rename; returns the
/// bytes the file takes on disk (what pruning counts).
/// The directory `name` in `at` (which is `path`), opened refusing a symbolic link in its
/// place (`O_NOFOLLOW`): such a link, or anything but a directory, is the error
/// [`linked`] or [`real_dir`] gives (`v1/` or a fan-out directory).
fn open_real_dir(at: BorrowedFd<'_>, name: &Path, path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::OFlags;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(at, name, flags, rustix::fs::Mode::empty()).map_err(|e| {
        let e = std::io::Error::from(e);
        if e.kind() == std::io::ErrorKind::NotFound {
            return e;
        }
        match path.file_name() {
            Some(n) if n == ENTRIES => linked(path).unwrap_or(e),
            _ => real_dir(path).err().unwrap_or(e),
        }
    })
}

/// [`write_atomic`] of the entry `path` in the directory `dir` (its handle): a temporary
/// file there, renamed to the entry's name, both relative to `dir`.
fn write_atomic_at(dir: BorrowedFd<'_>, path: &Path, data: &[u8], group: bool) -> std::io::Result<u64> {
    use rustix::fs::{AtFlags, Mode, OFlags};
    let mode = if group { 0o664 } else { 0o644 };
    let name = path.file_name().expect("an entry's name");
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let (temp, fd) = loop {
        let temp = format!("{TEMP_PREFIX}{}", crate::write::random_name());
        let listed = crate::interrupt::begin_temp()?;
        match rustix::fs::openat(dir, temp.as_str(), flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => {
                listed.created(dir, Path::new(&temp));
                break (temp, fd);
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut file = std::fs::File::from(fd);
    let written = file
        .write_all(data)
        // The umask may have taken the group's write bit: restore it.
        .and_then(
            |()| if group { file.set_permissions(std::fs::Permissions::from_mode(mode)) } else { Ok(()) },
        )
        .and_then(|()| Ok(rustix::fs::renameat(dir, temp.as_str(), dir, name)?));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir, temp.as_str(), AtFlags::empty());
        crate::interrupt::temp_gone(dir, Path::new(&temp));
        return Err(e);
    }
    crate::interrupt::temp_gone(dir, Path::new(&temp));
    Ok(file.metadata().map_or(data.len() as u64, |m| m.blocks() * 512))
}

fn write_atomic(dir: &Path, path: &Path, data: &[u8], group: bool) -> std::io::Result<u64> {
    write_atomic_meta(dir, path, data, group).map(|m| m.blocks() * 512)
}

/// [`write_atomic`], returning the metadata of the file renamed into place (taken from its
/// descriptor after the rename).
fn write_atomic_meta(
    dir: &Path,
    path: &Path,
    data: &[u8],
    group: bool,
) -> std::io::Result<std::fs::Metadata> {
    let mode = if group { 0o664 } else { 0o644 };
    let listed = crate::interrupt::begin_temp()?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    let temp = tmp.path().to_path_buf();
    listed.created(rustix::fs::CWD, &temp);
    let written = tmp
        .as_file_mut()
        .write_all(data)
        // The umask may have taken the group's write bit: restore it.
        .and_then(|()| {
            if group { tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode)) } else { Ok(()) }
        })
        .and_then(|()| tmp.persist(path).map_err(|e| e.error));
    crate::interrupt::temp_gone(rustix::fs::CWD, &temp);
    written?.metadata()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_reads_and_prunes_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path()).unwrap();
        assert!(tier.looks_like_cache());
        let keys: Vec<Key> = (0..10u8).map(|i| [i; 32]).collect();
        for (i, k) in keys.iter().enumerate() {
            tier.put(k, &vec![i as u8; 10_000]).unwrap();
            let f = std::fs::File::options().write(true).open(tier.path_of(k)).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(86_400 * (20 - i as u64))).unwrap();
        }
        assert_eq!(tier.get(&keys[3], Some(SystemTime::UNIX_EPOCH)).unwrap(), Read::Entry(vec![3u8; 10_000]));
        assert_eq!(tier.get(&[99; 32], Some(SystemTime::UNIX_EPOCH)).unwrap(), Read::Missing);
        // The hit on entry 3 made it the most recently used.
        let size = tier.scan().unwrap().0[0].size;
        let p = tier.prune(size * 5).unwrap();
        assert_eq!((p.removed, p.left), (5, 5));
        for (i, k) in keys.iter().enumerate() {
            let kept = tier.contains(k);
            assert_eq!(kept, i == 3 || i >= 6, "entry {i}");
        }
        let count = tier.clean().unwrap().removed;
        assert_eq!(count, 5);
        assert_eq!(tier.get(&keys[9], Some(SystemTime::UNIX_EPOCH)).unwrap(), Read::Missing);
        assert!(dir.path().join("CACHEDIR.TAG").is_file(), "clean keeps what is not an entry");
        tier.put(&keys[1], b"again").unwrap();
        assert_eq!(tier.get(&keys[1], Some(SystemTime::UNIX_EPOCH)).unwrap(), Read::Entry(b"again".to_vec()));
    }

    #[test]
    fn pruning_keeps_the_newest_entries_that_fit() {
        // The most recently written entry is larger than the limit by itself (a big module
        // compiled last): it goes, and the newest entries that fit stay.
        let dir = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(dir.path()).unwrap();
        let keys: Vec<Key> = (0..11u8).map(|i| [i; 32]).collect();
        for (i, k) in keys.iter().enumerate() {
            let len = if i == 10 { 200_000 } else { 10_000 };
            tier.put(k, &vec![i as u8; len]).unwrap();
            let f = std::fs::File::options().write(true).open(tier.path_of(k)).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(60 * (20 - i as u64))).unwrap();
        }
        let size = |k: &Key| std::fs::metadata(tier.path_of(k)).unwrap().blocks() * 512;
        let (small, big) = (size(&keys[0]), size(&keys[10]));
        assert!(big > small * 6);
        let p = tier.prune(small * 6 - 1).unwrap();
        assert_eq!((p.removed, p.left, p.size), (6, 5, small * 5));
        assert_eq!(p.freed, small * 5 + big);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(tier.contains(k), (5..10).contains(&i), "entry {i}");
        }
    }

    #[test]
    fn files_that_are_not_hashpycs_are_never_touched() {
        // A project directory with a `v1/` of its own, as a mistyped `--cache` would name.
        let project = tempfile::tempdir().unwrap();
        let root = project.path();
        for (path, text) in
            [("v1/users/models.py", "x = 1"), ("v1/__init__.py", ""), ("v1/ab/views.py", "y = 2")]
        {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let err = DiskTier::open(root).err().expect("a directory of other files is refused");
        assert!(err.to_string().contains("not hashpyc's"), "{err}");
        assert!(!root.join(TAG).exists(), "no tag is written into it");
        let tier = DiskTier::existing(root).unwrap();
        assert!(tier.is_foreign() && !tier.looks_like_cache() && !tier.is_unused());
        // Another program's cache directory tag is not hashpyc's.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join(TAG), "Signature: 8a477f597d28d172789f06886806bc55\n# uv\n")
            .unwrap();
        assert!(DiskTier::open(other.path()).is_err());
        // An empty directory becomes a cache; one holding only entries is one.
        let empty = tempfile::tempdir().unwrap();
        let unused = DiskTier::existing(empty.path()).unwrap();
        assert!(!unused.looks_like_cache() && unused.is_unused() && !unused.is_foreign());
        let tier = DiskTier::open(empty.path()).unwrap();
        tier.put(&[7; 32], b"entry").unwrap();
        std::fs::remove_file(empty.path().join(TAG)).unwrap();
        assert!(DiskTier::existing(empty.path()).unwrap().looks_like_cache());
        // In a real cache, files of other names (even under v1/) are neither counted nor
        // pruned nor cleaned, and the directories holding them stay.
        let cache = tempfile::tempdir().unwrap();
        let tier = DiskTier::open(cache.path()).unwrap();
        tier.put(&[1; 32], &[1; 5000]).unwrap();
        tier.put(&[2; 32], &[2; 5000]).unwrap();
        let foreign = ["v1/notes.txt", "v1/zz/foreign", "v1/01/backup.tar", "v1/01/0101", "README.txt"];
        for f in foreign {
            std::fs::create_dir_all(cache.path().join(f).parent().unwrap()).unwrap();
            std::fs::write(cache.path().join(f), "mine").unwrap();
        }
        assert_eq!(tier.scan().unwrap().0.len(), 2);
        assert_eq!(tier.prune(0).unwrap().removed, 2);
        tier.put(&[3; 32], b"three").unwrap();
        assert_eq!(tier.clean().unwrap().removed, 1);
        for f in foreign {
            assert!(cache.path().join(f).is_file(), "{f} survived prune and clean");
        }
        assert!(!tier.contains(&[3; 32]));
        assert!(tier.looks_like_cache(), "the tag stays");
    }

    // A link put in place of a fan-out directory, or of `v1/`, after this process stored
    // into it: the next store there is refused naming the link, and nothing is written
    // where it leads. Only the first store into a directory looked before (the second
    // store went through the link).
    #[test]
    fn links_made_after_a_store_are_never_written_through() {
        for linked_dir in ["v1/05", "v1"] {
            let cache = tempfile::tempdir().unwrap();
            let elsewhere = tempfile::tempdir().unwrap();
            let tier = DiskTier::open(cache.path()).unwrap();
            tier.put(&[5; 32], b"first").unwrap();
            let real = cache.path().join(linked_dir);
            std::fs::rename(&real, cache.path().join("moved")).unwrap();
            // Where `v1/` leads, a fan-out directory for the key waits.
            std::fs::create_dir(elsewhere.path().join("05")).unwrap();
            std::os::unix::fs::symlink(elsewhere.path(), &real).unwrap();
            let mut second = [5; 32];
            second[1] = 6;
            let e = tier.put(&second, b"second").expect_err(linked_dir).to_string();
            let said = format!("`{}` is a symbolic link", real.display());
            assert!(e.contains(&said), "{linked_dir}: {e}");
            let written: Vec<_> = walkdir(elsewhere.path());
            assert!(written.is_empty(), "{linked_dir}: written through the link: {written:?}");
        }
    }

    /// Every file under `dir`.
    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() { found.extend(walkdir(&path)) } else { found.push(path) }
        }
        found
    }
}
