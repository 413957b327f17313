//! The local tier: one file per entry under `DIR/v1/<2 hex>/<rest of the key in hex>`
//! (sccache's fan-out), written atomically (temporary file in the same directory, then
//! rename) so a reader sees a whole entry or none; recency is the file's mtime, refreshed
//! by hits (at most hourly, to spare writes); pruning deletes the least recently used first.
//!
//! Shared between processes and users: every operation tolerates another process creating,
//! replacing or deleting any file at any moment (a vanished entry is a miss). When `DIR` is
//! group-writable, new directories and entries are made group-writable too, whatever the
//! umask, so a team can share one directory (`chgrp team DIR && chmod 2775 DIR`).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use super::entry::Key;

/// The entries' directory under the cache root (bumped with the entry format).
const ENTRIES: &str = "v1";
/// Hits refresh an entry's mtime when it is older than this.
const REFRESH_AFTER: Duration = Duration::from_secs(3600);
/// Temporary files older than this were left by a crash: pruning removes them.
const STALE_TEMP: Duration = Duration::from_secs(3600);

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by hashpyc (its bytecode cache).\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

pub struct DiskTier {
    root: PathBuf,
    entries: PathBuf,
    /// `DIR` is group-writable: share new files and directories with the group.
    group: bool,
    /// Fan-out directories known to exist.
    made: Vec<AtomicBool>,
}

/// One entry file, for pruning and statistics.
#[derive(Clone, Debug)]
pub struct EntryFile {
    pub path: PathBuf,
    pub size: u64,
    pub mtime: SystemTime,
}

impl DiskTier {
    /// Open (creating it when missing) the cache at `root`.
    pub fn open(root: &Path) -> std::io::Result<DiskTier> {
        std::fs::create_dir_all(root)?;
        let group = std::fs::metadata(root)?.permissions().mode() & 0o020 != 0;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            // Best effort: a read-only cache still serves hits.
            let _ = write_atomic(root, &tag, CACHEDIR_TAG.as_bytes(), group);
        }
        Ok(DiskTier {
            root: root.to_path_buf(),
            entries: root.join(ENTRIES),
            group,
            made: (0..256).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// Open an existing cache without creating anything (management commands).
    pub fn existing(root: &Path) -> std::io::Result<DiskTier> {
        let meta = std::fs::metadata(root)?;
        if !meta.is_dir() {
            return Err(std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"));
        }
        Ok(DiskTier {
            root: root.to_path_buf(),
            entries: root.join(ENTRIES),
            group: meta.permissions().mode() & 0o020 != 0,
            made: (0..256).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether no entry is stored at all (no fan-out directory holds a file): lookups
    /// cannot hit.
    pub fn is_empty(&self) -> bool {
        let Ok(fans) = std::fs::read_dir(&self.entries) else { return true };
        !fans
            .filter_map(Result::ok)
            .any(|fan| std::fs::read_dir(fan.path()).is_ok_and(|mut d| d.next().is_some()))
    }

    /// Whether `root` holds a hashpyc cache (its tag or its entries).
    pub fn looks_like_cache(&self) -> bool {
        self.root.join("CACHEDIR.TAG").is_file() || self.entries.is_dir()
    }

    fn path_of(&self, key: &Key) -> PathBuf {
        let hex = crate::pyc::hex(key);
        self.entries.join(&hex[..2]).join(&hex[2..])
    }

    /// The stored bytes for `key`; `None` when there is no such entry.
    pub fn get(&self, key: &Key) -> std::io::Result<Option<Vec<u8>>> {
        let path = self.path_of(key);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut data = Vec::new();
        crate::io::read_to_end_direct(&file, &mut data)?;
        // Recency for LRU pruning; a read-only cache simply keeps its order.
        if let Ok(meta) = file.metadata()
            && let Ok(modified) = meta.modified()
            && modified.elapsed().is_ok_and(|age| age > REFRESH_AFTER)
        {
            let _ = file.set_modified(SystemTime::now());
        }
        Ok(Some(data))
    }

    /// Whether an entry exists for `key`.
    pub fn contains(&self, key: &Key) -> bool {
        self.path_of(key).is_file()
    }

    /// Store `data` for `key`, atomically; returns the bytes it takes on disk.
    pub fn put(&self, key: &Key, data: &[u8]) -> std::io::Result<u64> {
        let path = self.path_of(key);
        let dir = path.parent().expect("fan-out directory");
        let slot = &self.made[usize::from(key[0])];
        if !slot.load(Ordering::Relaxed) {
            self.make_dir(&self.entries)?;
            self.make_dir(dir)?;
            slot.store(true, Ordering::Relaxed);
        }
        match write_atomic(dir, &path, data, self.group) {
            // Another process (clean, prune) removed the directory meanwhile: once more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.make_dir(&self.entries)?;
                self.make_dir(dir)?;
                write_atomic(dir, &path, data, self.group)
            }
            other => other,
        }
    }

    /// Remove the entry for `key` (a damaged one), ignoring a concurrent removal.
    pub fn remove(&self, key: &Key) {
        let _ = std::fs::remove_file(self.path_of(key));
    }

    fn make_dir(&self, dir: &Path) -> std::io::Result<()> {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                if self.group {
                    // setgid so the group is inherited, as on the root.
                    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o2775));
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every entry file (and, separately, temporary files left by crashes).
    pub fn scan(&self) -> (Vec<EntryFile>, Vec<EntryFile>) {
        let mut entries = Vec::new();
        let mut temps = Vec::new();
        let Ok(top) = std::fs::read_dir(&self.entries) else {
            return (entries, temps);
        };
        for fan in top.filter_map(Result::ok) {
            let Ok(files) = std::fs::read_dir(fan.path()) else { continue };
            for f in files.filter_map(Result::ok) {
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let file = EntryFile {
                    path: f.path(),
                    size: meta.blocks() * 512,
                    mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                };
                if f.file_name().as_encoded_bytes().starts_with(b".tmp-") {
                    temps.push(file);
                } else {
                    entries.push(file);
                }
            }
        }
        (entries, temps)
    }

    /// Delete least recently used entries until the entries take at most `max` bytes on
    /// disk; also temporary files a crash left. Returns (entries removed, bytes freed,
    /// entries left, bytes left).
    pub fn prune(&self, max: u64) -> (usize, u64, usize, u64) {
        let (mut entries, temps) = self.scan();
        for t in temps {
            if t.mtime.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                let _ = std::fs::remove_file(&t.path);
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.size).sum();
        entries.sort_by_key(|e| e.mtime);
        let (mut removed, mut freed) = (0, 0);
        let mut left = entries.len();
        for e in &entries {
            if total <= max {
                break;
            }
            // Another process may have removed it already: it is gone either way.
            let _ = std::fs::remove_file(&e.path);
            total -= e.size;
            freed += e.size;
            removed += 1;
            left -= 1;
        }
        (removed, freed, left, total)
    }

    /// Remove every entry and hashpyc's own files, never anything else in the directory.
    pub fn clean(&self) -> std::io::Result<(usize, u64)> {
        let (entries, temps) = self.scan();
        let count = entries.len();
        let bytes = entries.iter().chain(&temps).map(|e| e.size).sum();
        if self.entries.exists() {
            // Move the entries aside first: concurrent builds see an empty cache at once.
            let trash = self.root.join(format!(".trash-{}", std::process::id()));
            match std::fs::rename(&self.entries, &trash) {
                Ok(()) => std::fs::remove_dir_all(&trash)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        for name in ["stats.json", "stats.lock", "prune.lock"] {
            match std::fs::remove_file(self.root.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok((count, bytes))
    }

    /// Run `f` holding an exclusive lock on `DIR/<name>` (created when missing); `None` when
    /// `wait` is false and another process holds it, or the lock cannot be taken.
    pub fn locked<T>(&self, name: &str, wait: bool, f: impl FnOnce() -> T) -> Option<T> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(name))
            .ok()?;
        if self.group {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o664));
        }
        let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            return None;
        }
        let out = f();
        drop(file);
        Some(out)
    }
}

/// Write `data` to `path` through a temporary file in `dir`, then rename; returns the
/// bytes the file takes on disk (what pruning counts).
fn write_atomic(dir: &Path, path: &Path, data: &[u8], group: bool) -> std::io::Result<u64> {
    let mode = if group { 0o664 } else { 0o644 };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    tmp.as_file_mut().write_all(data)?;
    if group {
        // The umask may have taken the group's write bit: restore it.
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    let file = tmp.persist(path).map_err(|e| e.error)?;
    Ok(file.metadata().map_or(data.len() as u64, |m| m.blocks() * 512))
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
        assert_eq!(tier.get(&keys[3]).unwrap(), Some(vec![3u8; 10_000]));
        assert_eq!(tier.get(&[99; 32]).unwrap(), None);
        // The hit on entry 3 made it the most recently used.
        let size = tier.scan().0[0].size;
        let (removed, _, left, _) = tier.prune(size * 5);
        assert_eq!((removed, left), (5, 5));
        for (i, k) in keys.iter().enumerate() {
            let kept = tier.contains(k);
            assert_eq!(kept, i == 3 || i >= 6, "entry {i}");
        }
        let (count, _) = tier.clean().unwrap();
        assert_eq!(count, 5);
        assert!(tier.get(&keys[9]).unwrap().is_none());
        assert!(dir.path().join("CACHEDIR.TAG").is_file(), "clean keeps what is not an entry");
        tier.put(&keys[1], b"again").unwrap();
        assert_eq!(tier.get(&keys[1]).unwrap().as_deref(), Some(&b"again"[..]));
    }
}
