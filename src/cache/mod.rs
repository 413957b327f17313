//! The bytecode cache (`--cache DIR`): a pipeline stage between `plan` and `pool`. Compiled
//! bodies (and failures) are stored under a key that does not depend on where the tree
//! lives, and a hit writes exactly the bytes a pristine compile at the destination path
//! would: the embedded path (`co_filename`) is rewritten in Rust by `marshal::relocate`,
//! which refuses whenever exactness is not certain (the entry is then looked up by path
//! too, or the file compiled).
//!
//! The key is BLAKE3 (never the pyc's SipHash, whose key is public) of: the cache format,
//! the bytecode recipe (a version bumped whenever the way bytes are produced changes, and
//! a hash of the worker script actually used), the interpreter's full identity (`sys.version`
//! with its build, hexversion, magic, cache tag, ABI flags, free-threading, the py_compile
//! calibration, the isolation), the optimization levels compiled up to this one (a level's
//! bytes may depend on those before it in the same request), and the source bytes. One
//! entry per level; checked and unchecked pycs share entries (only the header differs).
//!
//! Storage is a list of tiers walked in order (the local directory, `disk`; remote tiers
//! later); every tier holds the same self-checking envelopes (`entry`). Nothing a tier does
//! can fail a build: errors and damaged entries are misses, counted per tier.

pub mod disk;
pub mod entry;
pub mod manage;
pub mod stage;
pub mod stats;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::marshal;
use crate::pool::{CompileFailure, Warning};
use crate::target::Target;
use disk::DiskTier;
use entry::{Compression, Key, Payload};
pub use stats::{Counters, Totals};

/// Bumped whenever worker isolation or the way bytes are produced changes, so that no
/// entry made the old way is ever served.
pub const RECIPE_VERSION: u32 = 1;

/// The default size limit: see the README ("Cache", size). At about a third of the pycs'
/// size once compressed, 2 GiB holds the bytecode of a few dozen large environments.
pub const DEFAULT_MAX_SIZE: u64 = 2 << 30;

/// How the cache is set up for a run.
#[derive(Clone, Debug)]
pub struct CacheSettings {
    pub dir: PathBuf,
    pub max_size: u64,
    pub read_only: bool,
    pub compression: Compression,
}

#[derive(Debug, Error)]
pub enum CacheError {
    #[error("cannot use `{}` as the bytecode cache", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` does not look like a hashpyc bytecode cache (no CACHEDIR.TAG, no entries); refusing to touch it", .0.display())]
    NotACache(PathBuf),
}

/// What the cache knows about one (source, target, levels).
#[derive(Debug)]
pub enum Found {
    /// Bodies for every requested level, relocated to the destination's embedded path,
    /// and the warnings their compiles raised.
    Hit {
        bodies: Vec<Vec<u8>>,
        warnings: Vec<Warning>,
    },
    /// The source does not compile.
    Failed(CompileFailure),
    Miss,
}

/// The key inputs fixed for a target.
struct TargetKeys {
    prefix: blake3::Hasher,
    /// How to relocate its bodies; None for versions the rewriter has not been validated
    /// on (their entries are keyed by path too).
    rules: Option<marshal::Rules>,
}

/// The cache of one run.
pub struct Cache {
    local: DiskTier,
    settings: CacheSettings,
    pub local_counts: Counters,
    targets: Vec<TargetKeys>,
    /// Storing failed (a full or read-only disk): stop trying, say so once.
    stores_off: AtomicBool,
    store_error: Mutex<Option<String>>,
    bytes_stored: AtomicU64,
    /// Hits relocated from another embedded path, and relocations refused.
    pub relocated: AtomicU64,
    pub refused: AtomicU64,
}

impl Cache {
    /// Open the cache for `targets`, whose workers run `scripts` (one per target).
    pub fn open(
        settings: CacheSettings,
        targets: &[Arc<Target>],
        scripts: &[&str],
    ) -> Result<Cache, CacheError> {
        let local = if settings.read_only {
            DiskTier::existing(&settings.dir)
        } else {
            DiskTier::open(&settings.dir)
        }
        .map_err(|source| CacheError::Open { path: settings.dir.clone(), source })?;
        let targets = targets
            .iter()
            .zip(scripts)
            .map(|(t, script)| TargetKeys {
                prefix: key_prefix(t, script),
                rules: marshal::Rules::for_version(t.version.0, t.version.1).ok(),
            })
            .collect();
        Ok(Cache {
            local,
            settings,
            local_counts: Counters::default(),
            targets,
            stores_off: AtomicBool::new(false),
            store_error: Mutex::new(None),
            bytes_stored: AtomicU64::new(0),
            relocated: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// The keys of each level of a request: level `i`'s key covers the levels up to it.
    fn keys(&self, t: usize, levels: &[u8], source: &[u8]) -> Vec<Key> {
        let digest = blake3::hash(source);
        (0..levels.len())
            .map(|i| {
                let mut h = self.targets[t].prefix.clone();
                h.update(&[i as u8 + 1]);
                h.update(&levels[..=i]);
                h.update(digest.as_bytes());
                *h.finalize().as_bytes()
            })
            .collect()
    }

    /// The key of an entry that is only valid for one embedded path.
    fn path_key(key: &Key, filename: &[u8]) -> Key {
        let mut h = blake3::Hasher::new();
        h.update(b"hashpyc path-dependent\0");
        h.update(key);
        h.update(&(filename.len() as u64).to_le_bytes());
        h.update(filename);
        *h.finalize().as_bytes()
    }

    /// One entry, from the first tier that has a usable one. Damaged entries are counted,
    /// removed and skipped.
    fn get(&self, key: &Key) -> Option<Payload> {
        match self.local.get(key) {
            Ok(Some(data)) => match entry::decode(key, &data) {
                Ok(p) => Some(p),
                Err(_) => {
                    self.local_counts.damaged.fetch_add(1, Ordering::Relaxed);
                    if !self.settings.read_only {
                        self.local.remove(key);
                    }
                    None
                }
            },
            Ok(None) => None,
            Err(_) => {
                self.local_counts.errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn put(&self, key: &Key, payload: &Payload) {
        if self.settings.read_only || self.stores_off.load(Ordering::Relaxed) {
            return;
        }
        let data = entry::encode(key, payload, self.settings.compression);
        match self.local.put(key, &data) {
            Ok(on_disk) => {
                self.local_counts.stores.fetch_add(1, Ordering::Relaxed);
                self.bytes_stored.fetch_add(on_disk, Ordering::Relaxed);
            }
            Err(e) => {
                self.local_counts.errors.fetch_add(1, Ordering::Relaxed);
                self.stores_off.store(true, Ordering::Relaxed);
                self.store_error.lock().expect("cache lock").get_or_insert_with(|| crate::io::io_reason(&e));
            }
        }
    }

    /// Look up a request: source bytes `source` compiled for target `t` at `levels` with
    /// `filename` as the embedded path.
    pub fn lookup(&self, t: usize, levels: &[u8], source: &[u8], filename: &[u8]) -> Found {
        let keys = self.keys(t, levels, source);
        let mut bodies = Vec::with_capacity(levels.len());
        let mut warnings = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let found = match self.get(key) {
                Some(Payload::Body { filename: stored, warnings: w, body }) => {
                    if stored == filename {
                        Some((body, w))
                    } else {
                        let relocated = self.targets[t].rules.ok_or(()).and_then(|rules| {
                            marshal::relocate(&body, rules, &stored, filename).map_err(|_| ())
                        });
                        match relocated {
                            Ok(b) => {
                                self.relocated.fetch_add(1, Ordering::Relaxed);
                                Some((b, w))
                            }
                            Err(_) => {
                                self.refused.fetch_add(1, Ordering::Relaxed);
                                self.get_path_dependent(key, filename)
                            }
                        }
                    }
                }
                Some(Payload::PathDependent) => self.get_path_dependent(key, filename),
                Some(Payload::Failure { filename: stored, mut failure }) => {
                    self.local_counts.hits.fetch_add(1, Ordering::Relaxed);
                    if stored != filename {
                        let (old, new) =
                            (String::from_utf8_lossy(&stored), String::from_utf8_lossy(filename));
                        failure.message = failure.message.replace(old.as_ref(), new.as_ref());
                    }
                    return Found::Failed(failure);
                }
                None => None,
            };
            match found {
                Some((body, w)) => {
                    bodies.push(body);
                    warnings.extend(w.into_iter().map(|w| Warning { level: i as u8, ..w }));
                }
                None => {
                    self.local_counts.misses.fetch_add(1, Ordering::Relaxed);
                    return Found::Miss;
                }
            }
        }
        self.local_counts.hits.fetch_add(1, Ordering::Relaxed);
        Found::Hit { bodies, warnings }
    }

    fn get_path_dependent(&self, key: &Key, filename: &[u8]) -> Option<(Vec<u8>, Vec<Warning>)> {
        match self.get(&Self::path_key(key, filename)) {
            Some(Payload::Body { filename: stored, warnings, body }) if stored == filename => {
                Some((body, warnings))
            }
            _ => None,
        }
    }

    /// Store what a compile produced: per level, its body (by content alone when the body
    /// is relocatable, else by content and path) and its warnings; or the failure.
    pub fn store(
        &self,
        t: usize,
        levels: &[u8],
        source: &[u8],
        filename: &[u8],
        result: Result<(&[Vec<u8>], &[Warning]), &CompileFailure>,
    ) {
        if self.settings.read_only || self.stores_off.load(Ordering::Relaxed) {
            return;
        }
        let keys = self.keys(t, levels, source);
        match result {
            Ok((bodies, warnings)) => {
                for (i, (key, body)) in keys.iter().zip(bodies).enumerate() {
                    let payload = Payload::Body {
                        filename: filename.to_vec(),
                        warnings: warnings.iter().filter(|w| usize::from(w.level) == i).cloned().collect(),
                        body: body.clone(),
                    };
                    let relocatable = self.targets[t]
                        .rules
                        .is_some_and(|r| marshal::relocatable(body, r, filename).is_ok());
                    if relocatable {
                        self.put(key, &payload);
                    } else {
                        self.put(&Self::path_key(key, filename), &payload);
                        if !self.local.contains(key) {
                            self.put(key, &Payload::PathDependent);
                        }
                    }
                }
            }
            Err(failure) => {
                if let Some(key) = keys.last() {
                    self.put(
                        key,
                        &Payload::Failure { filename: filename.to_vec(), failure: failure.clone() },
                    );
                }
            }
        }
    }

    /// End of the run: add this run's counts to the directory's statistics and prune when
    /// the size limit is passed. Returns a warning to print, if any.
    pub fn finish(&self) -> Option<String> {
        let stored = self.bytes_stored.load(Ordering::Relaxed);
        let totals = self.local_counts.totals();
        if !self.settings.read_only {
            let over = stats::record(&self.local, &[("local", totals)], stored, self.settings.max_size);
            if over {
                // Another process pruning already is as good.
                self.local.locked("prune.lock", false, || {
                    let (_, _, _, left) = self.local.prune(self.settings.max_size / 10 * 9);
                    stats::pruned(&self.local, left);
                });
            }
        }
        self.store_error.lock().expect("cache lock").as_ref().map(|e| {
            format!(
                "the bytecode cache `{}` could not store entries ({e}); it was used read-only for the rest of the run",
                self.settings.dir.display()
            )
        })
    }

    /// `-v`: what the cache did this run.
    pub fn describe(&self) -> String {
        let t = self.local_counts.totals();
        format!(
            "cache `{}`: {} hits, {} misses, {} stores, {} damaged, {} errors; {} relocated, {} relocations refused",
            self.settings.dir.display(),
            t.hits,
            t.misses,
            t.stores,
            t.damaged,
            t.errors,
            self.relocated.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }
}

/// The key inputs that are fixed for a target and worker script.
fn key_prefix(t: &Target, script: &str) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"hashpyc bytecode cache");
    field(&entry::FORMAT.to_le_bytes());
    field(&RECIPE_VERSION.to_le_bytes());
    field(blake3::hash(script.as_bytes()).as_bytes());
    field(b"cpython");
    field(t.sys_version.as_bytes());
    field(&t.hexversion.to_le_bytes());
    field(&t.magic.0);
    field(t.cache_tag.as_bytes());
    field(t.abiflags.as_bytes());
    field(&[u8::from(t.gil_disabled), u8::from(t.flag_ref_top), t.marshal_version]);
    field(t.isolation().to_string().as_bytes());
    h
}
