//! Remembered compile failures, so that a run over an unchanged tree starts no Python even
//! when some sources do not compile (Python 2 test data in site-packages, say): the
//! failure is reported again, from this memory, as long as the source bytes and the
//! interpreter (its probe identity) are the same and the run's optimization levels reach
//! the level that failed through levels that compiled (see [`Memo::lookup`]). A writable
//! bytecode cache that lacks such a failure is given it (`compile`), so that machines
//! sharing the cache do not compile the file either.
//!
//! It also remembers the warnings of sources that compiled with warnings, per optimization
//! level (they can differ: `assert (x, "msg")` warns at level 0 only before 3.10), so that
//! `-W error` fails such a source while its pyc (written by a run without `-W error`) is
//! fresh, still without starting Python, with the warnings of its own levels only; and, in
//! a file of its own that only `-W error` runs read and write, the sources that compiled
//! without any warning. A fresh source known in neither at every level of the run is
//! compiled again under `-W error` (in memory) to learn its warnings, so a lost state
//! directory never lets a run pass that would have failed, nor fails one that would pass.
//!
//! One JSON file per interpreter in the cache directory, keyed by source path ([`key`]),
//! rewritten atomically at the end of a run when something changed, merged with what
//! concurrent runs saved meanwhile (only the paths this run touched are replaced).
//! `--force` ignores it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pool::{CompileFailure, Warning};
use crate::pyc::{self, SourceHash};

const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    hash: String,
    levels: Vec<u8>,
    /// The level that failed (the levels before it in `levels` compiled): a run at other
    /// levels that compiles no level unknown before reaching it fails the same way.
    /// Absent from what was remembered before it was kept: then only the same levels do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failed_at: Option<u8>,
    #[serde(flatten)]
    failure: CompileFailure,
}

impl Entry {
    /// Where in `levels` the level that failed is, when it is known.
    fn failed_index(&self) -> Option<usize> {
        self.failed_at.and_then(|f| self.levels.iter().position(|&l| l == f))
    }
}

/// The warnings a source's compiles raised, per optimization level, for `-W error`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Warned {
    hash: String,
    /// Per level compiled with these source bytes, its warnings: (category, line, message);
    /// a level that raised none has an empty list, a level not compiled no key. An entry
    /// written before levels were recorded has a `warnings` list instead (ignored) and no
    /// levels: its warnings are unknown at every level, never taken as those of a level
    /// that may not raise them.
    #[serde(default)]
    levels: BTreeMap<u8, Vec<(String, i32, String)>>,
}

#[derive(Serialize, Deserialize, Default)]
struct File {
    version: u32,
    hashpyc: String,
    #[serde(with = "path_keys")]
    entries: HashMap<PathBuf, Entry>,
    #[serde(default, with = "path_keys")]
    warned: HashMap<PathBuf, Warned>,
}

/// Sources that compiled without warnings (`clean-<identity>.json`).
#[derive(Serialize, Deserialize, Default)]
struct CleanFile {
    version: u32,
    hashpyc: String,
    #[serde(with = "path_keys")]
    clean: HashMap<PathBuf, Clean>,
}

/// A source's hash, and the optimization levels whose compiles raised no warning.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Clean {
    hash: String,
    levels: Vec<u8>,
}

/// Map keys as JSON strings, losslessly: a path that is not UTF-8 (a file named in
/// Latin-1, say) is `base64:` and its bytes (as is a path that begins so).
mod path_keys {
    use std::collections::HashMap;
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::PathBuf;

    use base64::Engine;
    use serde::de::Error;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    const PREFIX: &str = "base64:";

    pub fn serialize<S: Serializer, V: Serialize>(
        map: &HashMap<PathBuf, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_map(Some(map.len()))?;
        for (path, value) in map {
            let key = match path.to_str() {
                Some(text) if !text.starts_with(PREFIX) => text.to_string(),
                _ => {
                    let bytes = path.as_os_str().as_bytes();
                    format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            out.serialize_entry(&key, value)?;
        }
        out.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<HashMap<PathBuf, V>, D::Error> {
        let raw = HashMap::<String, V>::deserialize(d)?;
        raw.into_iter()
            .map(|(key, value)| {
                let path = match key.strip_prefix(PREFIX) {
                    Some(encoded) => base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map(|bytes| PathBuf::from(OsString::from_vec(bytes)))
                        .map_err(D::Error::custom)?,
                    None => PathBuf::from(key),
                };
                Ok((path, value))
            })
            .collect()
    }
}

/// The failures remembered for one interpreter.
pub struct Memo {
    path: PathBuf,
    /// The interpreter's version (major, minor): which failures are its every time
    /// ([`CompileFailure::same_every_time`]).
    version: (u8, u8),
    file: File,
    /// Paths whose entries this run set or removed.
    touched: HashSet<PathBuf>,
    /// The sources known to compile without warnings, once loaded (`-W error` runs).
    clean: Option<CleanFile>,
    clean_path: PathBuf,
    clean_touched: HashSet<PathBuf>,
}

/// The key a source is remembered by: its absolute path with its directory's symbolic
/// links and `..` resolved (as `realpath` does), so that every spelling of it, from any
/// working directory (`../proj/bad.py`, a linked directory), finds the same entry. The
/// file name itself is kept: a `.py` link is a source of its own, as the import system
/// sees it. A directory that cannot be resolved (gone meanwhile) keeps the lexical form.
/// Each directory is resolved once per run (and thread): a `-W error` run looks up every
/// fresh source, and `realpath` reads each component of the path as a link.
pub fn key(path: &Path, cwd: &Path) -> PathBuf {
    thread_local! {
        static RESOLVED: std::cell::RefCell<HashMap<PathBuf, Option<PathBuf>>> = Default::default();
    }
    let abs = crate::layout::absolute(path, cwd);
    let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else { return abs };
    let resolved = RESOLVED.with_borrow_mut(|known| {
        if let Some(d) = known.get(dir) {
            return d.clone();
        }
        let d = std::fs::canonicalize(dir).ok();
        known.insert(dir.to_path_buf(), d.clone());
        d
    });
    resolved.map_or(abs.clone(), |d| d.join(name))
}

impl Memo {
    /// Load the memo of the interpreter whose probe identity is `identity`, CPython
    /// `version` (an empty one when there is none yet or it is unreadable).
    pub fn load(cache_dir: &Path, identity: &str, version: (u8, u8)) -> Memo {
        let path = cache_dir.join(format!("failures-{identity}.json"));
        let file = read(&path);
        let clean_path = cache_dir.join(format!("clean-{identity}.json"));
        let clean_touched = HashSet::new();
        Memo { path, version, file, touched: HashSet::new(), clean: None, clean_path, clean_touched }
    }

    /// Also load (and from now on keep) the sources known to compile without warnings: a
    /// `-W error` run needs them, others never pay for them.
    pub fn load_clean(&mut self) {
        if self.clean.is_none() {
            self.clean = Some(read_clean(&self.clean_path));
        }
    }

    /// Whether the warnings of `abs` with these source bytes are known at every one of
    /// `levels`: remembered, or remembered to be none (needs [`Memo::load_clean`]).
    pub fn warnings_known(&self, abs: &Path, hash: &SourceHash, levels: &[u8]) -> bool {
        let hex = pyc::hex(hash);
        levels.iter().all(|&l| self.at_level(abs, &hex, l).is_some())
    }

    /// Whether `abs` with these source bytes is remembered to raise no warning at `levels`.
    pub fn known_clean(&self, abs: &Path, hash: &SourceHash, levels: &[u8]) -> bool {
        let hex = pyc::hex(hash);
        levels.iter().all(|&l| self.at_level(abs, &hex, l).is_some_and(<[_]>::is_empty))
    }

    /// The warnings remembered of `abs` with these source bytes at `level` (empty: none),
    /// or None when they are not known. Both files only record what a compile of these
    /// bytes raised, so where both know a level they agree.
    fn at_level(&self, abs: &Path, hex: &str, level: u8) -> Option<&[(String, i32, String)]> {
        let warned = self.file.warned.get(abs).filter(|e| e.hash == hex);
        if let Some(warnings) = warned.and_then(|e| e.levels.get(&level)) {
            return Some(warnings);
        }
        let clean = self.clean.as_ref().and_then(|c| c.clean.get(abs));
        clean.is_some_and(|c| c.hash == hex && c.levels.contains(&level)).then_some(&[][..])
    }

    /// Remember that `abs` with these source bytes compiled without warnings at `levels`
    /// (only once [`Memo::load_clean`] was called).
    pub fn record_clean(&mut self, abs: PathBuf, hash: &SourceHash, levels: &[u8]) {
        let Some(clean) = &mut self.clean else { return };
        let entry = Clean { hash: pyc::hex(hash), levels: levels.to_vec() };
        clean.clean.insert(abs.clone(), entry);
        self.clean_touched.insert(abs);
    }

    /// Whether the clean sources are loaded (a `-W error` run).
    pub fn tracks_clean(&self) -> bool {
        self.clean.is_some()
    }

    /// Whether nothing is remembered (the common case: skip path work entirely).
    pub fn is_empty(&self) -> bool {
        self.file.entries.is_empty()
    }

    /// Whether `abs` may have a remembered failure (cheap: no source read).
    pub fn knows(&self, abs: &Path) -> bool {
        self.file.entries.contains_key(abs)
    }

    /// The remembered failure of `abs`, if its source bytes are unchanged and compiling
    /// `levels` in order fails as the remembered compile did: the same levels, or levels
    /// that reach the one that failed through levels that compiled before it (`-o 0` failed:
    /// so does `-o 0 -o 1`; not `-o 1`, which on 3.7 can compile a source level 0 does not:
    /// `if __debug__: break`). Its warnings are those of `levels` up to the failure, each
    /// with its index among `levels`.
    pub fn lookup(&self, abs: &Path, hash: &SourceHash, levels: &[u8]) -> Option<CompileFailure> {
        let e = self.file.entries.get(abs)?;
        if e.hash != pyc::hex(hash) || !e.failure.same_every_time(self.version) {
            return None;
        }
        if e.levels == levels {
            let failed_level = e.failed_index().and_then(|i| u8::try_from(i).ok());
            return Some(CompileFailure { failed_level, ..e.failure.clone() });
        }
        let i = e.failed_index()?;
        let before = &e.levels[..i];
        let at = levels.iter().position(|&l| l == e.levels[i])?;
        if !levels[..at].iter().all(|l| before.contains(l)) {
            return None;
        }
        let mut f = e.failure.clone();
        f.warnings = std::mem::take(&mut f.warnings)
            .into_iter()
            .filter_map(|mut w| {
                let level = *e.levels.get(usize::from(w.level))?;
                w.level = u8::try_from(levels[..=at].iter().position(|&l| l == level)?).ok()?;
                Some(w)
            })
            .collect();
        f.failed_level = u8::try_from(at).ok();
        Some(f)
    }

    /// The remembered failure of `abs` with the source bytes whose hash is `hex`, when the
    /// compile that failed reached `level` (the level that failed, or one before it, whose
    /// pyc the failure kept from being written; any level it asked for when the level that
    /// failed is not known): what `check` explains a missing pyc of that level with.
    pub fn failure_of(&self, abs: &Path, hex: &str, level: u8) -> Option<&CompileFailure> {
        let e = self.file.entries.get(abs)?;
        let reached = e.failed_index().map_or(&e.levels[..], |i| &e.levels[..=i]);
        (e.hash == hex && e.failure.same_every_time(self.version) && reached.contains(&level))
            .then_some(&e.failure)
    }

    /// The level at which the remembered failure of `abs` (source bytes hashed `hex`)
    /// stopped a compile that asked for `level` after it, with that failure: `compile`
    /// never reached `level`, so nothing tells whether it compiles there.
    pub fn stopped_before(&self, abs: &Path, hex: &str, level: u8) -> Option<(u8, &CompileFailure)> {
        let e = self.file.entries.get(abs)?;
        let i = e.failed_index()?;
        (e.hash == hex && e.failure.same_every_time(self.version) && e.levels[i + 1..].contains(&level))
            .then_some((e.levels[i], &e.failure))
    }

    /// Remember that `abs` with these source bytes fails at `levels`; a failure that is
    /// not the same every time with this interpreter ([`CompileFailure::same_every_time`]:
    /// out of memory, …) is not remembered, and forgets what was.
    pub fn record_failure(&mut self, abs: PathBuf, hash: &SourceHash, levels: &[u8], f: &CompileFailure) {
        if !f.same_every_time(self.version) {
            self.record_success(&abs);
            return;
        }
        let failed_at = f.failed_level.and_then(|i| levels.get(usize::from(i)).copied());
        self.file.entries.insert(
            abs.clone(),
            Entry { hash: pyc::hex(hash), levels: levels.to_vec(), failed_at, failure: f.clone() },
        );
        self.touched.insert(abs);
    }

    /// Whether any source is remembered to have compiled with warnings.
    pub fn has_warned(&self) -> bool {
        !self.file.warned.is_empty()
    }

    /// Whether `abs` may have remembered warnings (cheap: no source read).
    pub fn knows_warned(&self, abs: &Path) -> bool {
        self.file.warned.contains_key(abs)
    }

    /// The warnings `abs` with these source bytes compiled with at `levels`, each once (its
    /// `level` the index in `levels` of the first that raised it), or None when they are
    /// not known at every one of them.
    pub fn warnings(&self, abs: &Path, hash: &SourceHash, levels: &[u8]) -> Option<Vec<Warning>> {
        self.collect_warnings(abs, hash, levels, false)
    }

    /// As [`Memo::warnings`], at those of `levels` where they are known (the others
    /// skipped): warnings that a compile at `levels` raises, though maybe not all of them.
    pub fn some_warnings(&self, abs: &Path, hash: &SourceHash, levels: &[u8]) -> Vec<Warning> {
        self.collect_warnings(abs, hash, levels, true).unwrap_or_default()
    }

    fn collect_warnings(
        &self,
        abs: &Path,
        hash: &SourceHash,
        levels: &[u8],
        skip_unknown: bool,
    ) -> Option<Vec<Warning>> {
        let hex = pyc::hex(hash);
        let mut out: Vec<Warning> = Vec::new();
        for (i, &level) in levels.iter().enumerate() {
            let known = match self.at_level(abs, &hex, level) {
                None if skip_unknown => continue,
                known => known?,
            };
            for (category, line, message) in known {
                let w = Warning {
                    category: category.clone(),
                    line: *line,
                    message: message.clone(),
                    level: i as u8,
                };
                if !out.iter().any(|o| o.same_as(&w)) {
                    out.push(w);
                }
            }
        }
        Some(out)
    }

    /// Remember the warnings of a successful compile of `abs` at `levels` (each warning's
    /// `level` an index into them). What is remembered of these source bytes at other
    /// levels stays; a source that raised none at any level remembered is forgotten.
    pub fn record_warnings(&mut self, abs: PathBuf, hash: &SourceHash, levels: &[u8], warnings: &[Warning]) {
        let hex = pyc::hex(hash);
        let old = self.file.warned.remove(&abs);
        let existed = old.is_some();
        let mut entry =
            old.filter(|e| e.hash == hex).unwrap_or(Warned { hash: hex, levels: BTreeMap::new() });
        for (i, &level) in levels.iter().enumerate() {
            let mut raised: Vec<(String, i32, String)> = Vec::new();
            for w in warnings.iter().filter(|w| usize::from(w.level) == i) {
                let w = (w.category.clone(), w.line, w.message.clone());
                if !raised.contains(&w) {
                    raised.push(w);
                }
            }
            entry.levels.insert(level, raised);
        }
        if entry.levels.values().any(|w| !w.is_empty()) {
            self.file.warned.insert(abs.clone(), entry);
            self.touched.insert(abs);
        } else if existed {
            self.touched.insert(abs);
        }
    }

    pub fn record_success(&mut self, abs: &Path) {
        if self.file.entries.remove(abs).is_some() {
            self.touched.insert(abs.to_path_buf());
        }
    }

    /// Write the memo back if it changed; a failure only costs a compile next time, and is
    /// returned (the first, when both files fail) for the run to warn of once.
    pub fn save(mut self) -> Option<crate::write::WriteError> {
        let mut failed = None;
        if let Some(mut clean) = self.clean.take()
            && !self.clean_touched.is_empty()
        {
            let mut merged = read_clean(&self.clean_path);
            for p in &self.clean_touched {
                if let Some(c) = clean.clean.remove(p) {
                    merged.clean.insert(p.clone(), c);
                }
            }
            prune(&mut merged.clean, &self.clean_touched, MAX_CLEAN);
            (merged.version, merged.hashpyc) = stamp();
            failed = write_json(&self.clean_path, &merged).err();
        }
        if self.touched.is_empty() {
            return failed;
        }
        // What other runs saved since this one loaded stays; this run's paths are its own.
        let mut merged = read(&self.path);
        for p in &self.touched {
            match self.file.entries.remove(p) {
                Some(e) => merged.entries.insert(p.clone(), e),
                None => merged.entries.remove(p),
            };
            match self.file.warned.remove(p) {
                Some(w) => merged.warned.insert(p.clone(), w),
                None => merged.warned.remove(p),
            };
        }
        prune(&mut merged.entries, &self.touched, MAX_ENTRIES);
        prune(&mut merged.warned, &self.touched, MAX_ENTRIES);
        (merged.version, merged.hashpyc) = stamp();
        let last = write_json(&self.path, &merged).err();
        failed.or(last)
    }
}

/// The most failures (and, apart, sources with warnings) a memo file keeps: every run
/// reads the whole file, and a CI host building at a new path each job left 65 000 entries
/// (13 MB, a quarter of a second and 117 MB for a no-op run of two files).
const MAX_ENTRIES: usize = 20_000;
/// The most sources a `-W error` run's file of clean sources keeps (one per source of
/// the trees it checks, so more).
const MAX_CLEAN: usize = 200_000;

/// Drop the entries of sources that are gone (a checkout removed, a build directory
/// renamed), then, above `max`, entries this run did not touch: what is forgotten only
/// costs a compile when it is met again.
fn prune<V>(map: &mut HashMap<PathBuf, V>, keep: &HashSet<PathBuf>, max: usize) {
    map.retain(|path, _| keep.contains(path) || std::fs::symlink_metadata(path).is_ok());
    if map.len() > max {
        let mut others: Vec<PathBuf> = map.keys().filter(|p| !keep.contains(*p)).cloned().collect();
        others.sort_unstable();
        for path in others.into_iter().take(map.len() - max) {
            map.remove(&path);
        }
    }
}

/// The version fields this hashpyc writes, and reads back only from itself.
fn stamp() -> (u32, String) {
    (VERSION, env!("CARGO_PKG_VERSION").to_string())
}

/// A file of the state directory at `path`, or an empty one when it is missing,
/// unreadable or written by another hashpyc version (`version` reads its two fields).
fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path, version: fn(&T) -> (u32, &str)) -> T {
    crate::io::read_own(path)
        .and_then(|t| serde_json::from_slice::<T>(&t).ok())
        .filter(|f| {
            let (v, h) = version(f);
            (v, h) == (VERSION, env!("CARGO_PKG_VERSION"))
        })
        .unwrap_or_default()
}

/// Write a file of the state directory atomically (creating the directory when it is
/// missing); a failure (a full disk) only costs a compile next time.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), crate::write::WriteError> {
    let Ok(text) = serde_json::to_string(value) else { return Ok(()) };
    crate::write::write_atomic(path, &[text.as_bytes()], 0o600, Default::default())
}

/// The memo file at `path`, or an empty one when it is missing, unreadable or of another
/// hashpyc version.
fn read(path: &Path) -> File {
    read_json(path, |f: &File| (f.version, &f.hashpyc))
}

/// The clean sources at `path`, or none when the file is missing, unreadable or of another
/// hashpyc version.
fn read_clean(path: &Path) -> CleanFile {
    read_json(path, |f: &CleanFile| (f.version, &f.hashpyc))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A save drops the entries of sources that are gone, keeps those this run touched,
    /// and above the cap drops untouched entries only.
    #[test]
    fn prune_drops_sources_gone_and_keeps_the_runs_own() {
        let dir = tempfile::tempdir().unwrap();
        let there: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("m{i}.py"))).collect();
        for p in &there {
            std::fs::write(p, "x = 1\n").unwrap();
        }
        let (gone, touched_gone) = (dir.path().join("gone.py"), dir.path().join("failed-now.py"));
        let mut map: HashMap<PathBuf, u8> = there.iter().map(|p| (p.clone(), 0)).collect();
        map.insert(gone.clone(), 0);
        map.insert(touched_gone.clone(), 0);
        let keep: HashSet<PathBuf> = [touched_gone.clone(), there[3].clone()].into_iter().collect();
        prune(&mut map, &keep, 10);
        assert_eq!(map.len(), 5);
        assert!(!map.contains_key(&gone) && map.contains_key(&touched_gone));
        prune(&mut map, &keep, 3);
        assert_eq!(map.len(), 3);
        assert!(map.contains_key(&touched_gone) && map.contains_key(&there[3]));
    }

    /// A directory is resolved once per run: a source's key stays what it was when its
    /// directory was first looked up (the run sees one key per source), and a `-W error`
    /// run does not call `realpath` for every fresh source (1 903 sources, 50 remembered
    /// failures: 10 945 `readlink` calls before, see the commit).
    #[test]
    fn key_resolves_each_directory_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, link) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("l"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let real_a = std::fs::canonicalize(&a).unwrap();
        assert_eq!(key(&link.join("m.py"), dir.path()), real_a.join("m.py"));
        // The link now leads elsewhere: this run keeps the key it gave.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert_eq!(key(&link.join("n.py"), dir.path()), real_a.join("n.py"));
    }

    fn failure() -> CompileFailure {
        CompileFailure {
            kind: "SyntaxError".into(),
            message: "bad".into(),
            line: Some(1),
            offset: Some(2),
            end_line: None,
            end_offset: None,
            text: "x(".into(),
            warnings: Vec::new(),
            failed_level: None,
        }
    }

    /// A failure at one level is the failure of other levels that reach it through levels
    /// that compiled; never of levels that skip it or compile one not known to compile.
    #[test]
    fn a_failure_reaches_the_levels_that_compile_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let warning = |level: u8| Warning {
            category: "SyntaxWarning".into(),
            line: 1,
            message: format!("at {level}"),
            level,
        };
        // Levels 0 and 1 asked; level 0 compiled with a warning, level 1 failed after one.
        let f = CompileFailure { warnings: vec![warning(0), warning(1)], failed_level: Some(1), ..failure() };
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_failure("/a.py".into(), &[1; 8], &[0, 1], &f);
        // Level 0 alone failed, no warning.
        m.record_failure(
            "/b.py".into(),
            &[1; 8],
            &[0],
            &CompileFailure { failed_level: Some(0), ..failure() },
        );
        // Remembered before the level was kept.
        m.record_failure("/c.py".into(), &[1; 8], &[0], &failure());
        m.save();
        let m = Memo::load(dir.path(), "t", (3, 12));
        let a = |levels: &[u8]| m.lookup(Path::new("/a.py"), &[1; 8], levels);
        assert_eq!(a(&[0, 1]), Some(f.clone()));
        // Level 1 alone: its own warning, as index 0.
        let alone = CompileFailure {
            warnings: vec![Warning { level: 0, ..warning(1) }],
            failed_level: Some(0),
            ..failure()
        };
        assert_eq!(a(&[1]), Some(alone));
        assert_eq!(a(&[0, 1, 2]), Some(f.clone()));
        // Level 0 compiled; level 2 was never compiled; 1 then 2 reaches 1 first.
        assert_eq!(a(&[0]), None);
        assert_eq!(a(&[2]), None);
        assert_eq!(a(&[0, 2]), None);
        let b = |levels: &[u8]| m.lookup(Path::new("/b.py"), &[1; 8], levels);
        assert_eq!(b(&[0, 1]), Some(CompileFailure { failed_level: Some(0), ..failure() }));
        assert_eq!(b(&[1]), None);
        assert_eq!(b(&[1, 2]), None);
        // Other source bytes: nothing.
        assert_eq!(m.lookup(Path::new("/b.py"), &[2; 8], &[0, 1]), None);
        let c = |levels: &[u8]| m.lookup(Path::new("/c.py"), &[1; 8], levels);
        assert!(c(&[0]).is_some());
        assert_eq!(c(&[0, 1]), None);
    }

    #[test]
    fn remembers_by_hash_and_levels() {
        let dir = tempfile::tempdir().unwrap();
        let f = failure();
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_failure("/a.py".into(), &[1; 8], &[0], &f);
        m.save();
        let m = Memo::load(dir.path(), "t", (3, 12));
        assert!(m.knows(Path::new("/a.py")));
        assert_eq!(m.lookup(Path::new("/a.py"), &[1; 8], &[0]), Some(f));
        assert_eq!(m.lookup(Path::new("/a.py"), &[2; 8], &[0]), None);
        assert_eq!(m.lookup(Path::new("/a.py"), &[1; 8], &[0, 1]), None);
        let mut m = m;
        m.record_success(Path::new("/a.py"));
        m.save();
        assert!(!Memo::load(dir.path(), "t", (3, 12)).knows(Path::new("/a.py")));
    }

    // A failure that is not the source's (a MemoryError under a memory limit) is not
    // remembered, and forgets the failure remembered before.
    #[test]
    fn failures_of_the_moment_are_not_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let memory = CompileFailure { kind: "MemoryError".into(), ..failure() };
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_failure("/a.py".into(), &[1; 8], &[0], &memory);
        m.record_failure("/b.py".into(), &[1; 8], &[0], &failure());
        m.record_failure("/b.py".into(), &[1; 8], &[0], &memory);
        m.save();
        let m = Memo::load(dir.path(), "t", (3, 12));
        assert!(!m.knows(Path::new("/a.py")) && !m.knows(Path::new("/b.py")));
        for kind in ["SyntaxError", "IndentationError", "TabError", "ValueError"] {
            assert!(CompileFailure { kind: kind.into(), ..failure() }.from_source(), "{kind}");
        }
        for kind in
            ["MemoryError", "RecursionError", "SystemError", "OverflowError", "hashpyc internal error"]
        {
            assert!(!CompileFailure { kind: kind.into(), ..failure() }.from_source(), "{kind}");
        }
    }

    // The parser's nesting limit is remembered, by its exact type and message, where it is a
    // fixed count of the interpreter build (3.7, 3.8, 3.12, 3.13), and 3.12's compiler's
    // (a RecursionError); never stored in the bytecode cache (`from_source`), shared by
    // builds whose limit may differ.
    #[test]
    fn a_fixed_parser_limit_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let limit = |message: &str| CompileFailure {
            kind: "MemoryError".into(),
            message: message.into(),
            line: None,
            offset: None,
            text: String::new(),
            ..failure()
        };
        let s_push = limit("s_push: parser stack overflow");
        let maxstack = limit("Parser stack overflowed - Python source too complex to parse");
        let compiler = CompileFailure {
            kind: "RecursionError".into(),
            ..limit("maximum recursion depth exceeded during compilation")
        };
        for (version, f, kept) in [
            ((3, 7), &s_push, true),
            ((3, 8), &s_push, true),
            ((3, 9), &s_push, false),
            ((3, 12), &maxstack, true),
            ((3, 13), &maxstack, true),
            ((3, 14), &maxstack, false),
            ((3, 8), &maxstack, false),
            ((3, 12), &limit(""), false),
            (
                (3, 8),
                &limit("no message (CPython 3.7 and 3.8's parser raises MemoryError without one)"),
                false,
            ),
            ((3, 12), &CompileFailure { kind: "RecursionError".into(), ..maxstack.clone() }, false),
            ((3, 12), &compiler, true),
            ((3, 11), &compiler, false),
            ((3, 13), &compiler, false),
            ((3, 14), &compiler, false),
            ((3, 12), &CompileFailure { kind: "MemoryError".into(), ..compiler.clone() }, false),
        ] {
            assert!(!f.from_source(), "{f:?}");
            let mut m = Memo::load(dir.path(), "t", version);
            m.record_failure("/a.py".into(), &[1; 8], &[0], f);
            m.save();
            let m = Memo::load(dir.path(), "t", version);
            assert_eq!(
                m.lookup(Path::new("/a.py"), &[1; 8], &[0]).as_ref(),
                kept.then_some(f),
                "{version:?} {f:?}"
            );
        }
    }

    #[test]
    fn concurrent_runs_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        // Sources that are there: a save drops those that are gone (see `prune`).
        let (a_py, b_py, c_py) = (dir.path().join("a.py"), dir.path().join("b.py"), dir.path().join("c.py"));
        for p in [&a_py, &b_py, &c_py] {
            std::fs::write(p, "x = 1\n").unwrap();
        }
        let w = Warning { category: "SyntaxWarning".into(), line: 3, message: "m".into(), level: 0 };
        let mut first = Memo::load(dir.path(), "t", (3, 12));
        first.record_failure(c_py.clone(), &[1; 8], &[0], &failure());
        first.save();
        let mut a = Memo::load(dir.path(), "t", (3, 12));
        let mut b = Memo::load(dir.path(), "t", (3, 12));
        a.record_failure(a_py.clone(), &[1; 8], &[0], &failure());
        b.record_warnings(b_py.clone(), &[2; 8], &[0], &[w]);
        b.record_success(&c_py);
        a.save();
        b.save();
        let m = Memo::load(dir.path(), "t", (3, 12));
        assert!(m.knows(&a_py) && m.knows_warned(&b_py));
        assert!(!m.knows(&c_py), "b's removal is kept");
    }

    #[test]
    fn remembers_warnings_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let w = Warning { category: "SyntaxWarning".into(), line: 3, message: "m".into(), level: 1 };
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_warnings("/a.py".into(), &[1; 8], &[0, 1], &[Warning { level: 0, ..w.clone() }, w.clone()]);
        m.save();
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        assert!(m.has_warned() && m.knows_warned(Path::new("/a.py")) && m.is_empty());
        let a = Path::new("/a.py");
        assert_eq!(
            m.warnings(a, &[1; 8], &[0, 1]),
            Some(vec![Warning { level: 0, ..w.clone() }]),
            "each once"
        );
        assert_eq!(
            m.warnings(a, &[1; 8], &[1]),
            Some(vec![Warning { level: 0, ..w }]),
            "an index into the levels"
        );
        assert_eq!(m.warnings(a, &[2; 8], &[0]), None);
        m.record_warnings("/a.py".into(), &[2; 8], &[0], &[]);
        m.save();
        assert!(!Memo::load(dir.path(), "t", (3, 12)).has_warned());
    }

    #[test]
    fn remembers_warnings_per_level() {
        let dir = tempfile::tempdir().unwrap();
        let a = Path::new("/a.py");
        let w = Warning { category: "SyntaxWarning".into(), line: 2, message: "assert".into(), level: 0 };
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        // Level 0 warns (3.7-3.9's assert warning); level 1, compiled by a later run, not.
        m.record_warnings(a.into(), &[1; 8], &[0], std::slice::from_ref(&w));
        assert_eq!(m.warnings(a, &[1; 8], &[1]), None, "level 1 never compiled");
        // Known in part: what is known still warns.
        assert_eq!(m.some_warnings(a, &[1; 8], &[0, 1]), vec![w.clone()]);
        assert_eq!(m.some_warnings(a, &[1; 8], &[1, 0]), vec![Warning { level: 1, ..w.clone() }]);
        assert_eq!(m.some_warnings(a, &[1; 8], &[1]), vec![]);
        assert!(!m.warnings_known(a, &[1; 8], &[0, 1]) && m.warnings_known(a, &[1; 8], &[0]));
        m.record_warnings(a.into(), &[1; 8], &[1], &[]);
        m.save();
        let m = Memo::load(dir.path(), "t", (3, 12));
        assert_eq!(m.warnings(a, &[1; 8], &[1]), Some(vec![]));
        assert!(m.known_clean(a, &[1; 8], &[1]) && !m.known_clean(a, &[1; 8], &[0, 1]));
        assert_eq!(m.warnings(a, &[1; 8], &[0, 1]), Some(vec![w.clone()]));
        assert_eq!(m.warnings(a, &[1; 8], &[1, 2]), None);
        // Other source bytes: what was remembered of the old ones is gone.
        let mut m = m;
        m.record_warnings(a.into(), &[2; 8], &[2], &[Warning { level: 0, ..w }]);
        assert_eq!(m.warnings(a, &[2; 8], &[1]), None);
        assert!(m.warnings_known(a, &[2; 8], &[2]) && !m.warnings_known(a, &[1; 8], &[0]));
    }

    #[test]
    fn warnings_remembered_without_levels_are_unknown() {
        // As written before levels were recorded: a source's warnings, not which levels
        // raised them (they may be level 0's only).
        let dir = tempfile::tempdir().unwrap();
        let hex = pyc::hex(&[1; 8]);
        let legacy = serde_json::json!({
            "version": VERSION,
            "hashpyc": env!("CARGO_PKG_VERSION"),
            "entries": { "/bad.py": { "hash": hex, "levels": [0], "kind": "SyntaxError", "message": "bad",
                "line": 1, "offset": 2, "end_line": null, "end_offset": null, "text": "x(" } },
            "warned": { "/a.py": { "hash": hex, "warnings": [["SyntaxWarning", 2, "assert"]] } },
        });
        std::fs::write(dir.path().join("failures-t.json"), legacy.to_string()).unwrap();
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.load_clean();
        let a = Path::new("/a.py");
        assert!(m.knows(Path::new("/bad.py")), "the rest of the file is read");
        assert!(!m.warnings_known(a, &[1; 8], &[0]) && !m.warnings_known(a, &[1; 8], &[1]));
        assert!(!m.known_clean(a, &[1; 8], &[1]));
        assert_eq!(m.warnings(a, &[1; 8], &[1]), None);
        // A compile at level 1 that raised one learns that level, and level 0 stays unknown.
        let w = Warning { category: "SyntaxWarning".into(), line: 3, message: "is".into(), level: 0 };
        m.record_warnings(a.into(), &[1; 8], &[1], std::slice::from_ref(&w));
        assert_eq!(m.warnings(a, &[1; 8], &[1]), Some(vec![w]));
        assert!(!m.warnings_known(a, &[1; 8], &[0]));
    }

    #[test]
    fn non_utf8_paths_are_remembered_too() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let f = failure();
        let latin1 = Path::new(std::ffi::OsStr::from_bytes(b"/caf\xe9.py"));
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_failure(latin1.into(), &[1; 8], &[0], &f);
        m.record_failure("/a.py".into(), &[1; 8], &[0], &f);
        let w = Warning { category: "SyntaxWarning".into(), line: 3, message: "m".into(), level: 0 };
        m.record_warnings(Path::new(std::ffi::OsStr::from_bytes(b"/w\xff.py")).into(), &[2; 8], &[0], &[w]);
        m.save();
        let back = Memo::load(dir.path(), "t", (3, 12));
        assert!(back.knows(Path::new("/a.py")));
        assert!(back.lookup(latin1, &[1; 8], &[0]).is_some());
        let warned =
            back.warnings(Path::new(std::ffi::OsStr::from_bytes(b"/w\xff.py")), &[2; 8], &[0]).unwrap();
        assert_eq!(warned[0].line, 3);
        // A UTF-8 name that looks like the encoding is a path like any other.
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        m.record_failure("base64:Zm9v".into(), &[3; 8], &[0], &f);
        m.save();
        assert!(Memo::load(dir.path(), "t", (3, 12)).knows(Path::new("base64:Zm9v")));
    }

    #[test]
    fn remembers_clean_sources_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let w = Warning { category: "SyntaxWarning".into(), line: 3, message: "m".into(), level: 0 };
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        // Not loaded: nothing is recorded, nothing is known.
        m.record_clean("/a.py".into(), &[1; 8], &[0, 1]);
        assert!(!m.warnings_known(Path::new("/a.py"), &[1; 8], &[0]));
        m.load_clean();
        m.record_clean("/a.py".into(), &[1; 8], &[0, 1]);
        m.record_warnings("/w.py".into(), &[2; 8], &[0], &[w]);
        m.save();
        let mut m = Memo::load(dir.path(), "t", (3, 12));
        // Remembered warnings are known without the clean file.
        assert!(m.warnings_known(Path::new("/w.py"), &[2; 8], &[0]));
        assert!(!m.warnings_known(Path::new("/a.py"), &[1; 8], &[0]));
        m.load_clean();
        assert!(m.warnings_known(Path::new("/a.py"), &[1; 8], &[0]));
        assert!(m.warnings_known(Path::new("/a.py"), &[1; 8], &[0, 1]));
        assert!(!m.warnings_known(Path::new("/a.py"), &[1; 8], &[2]), "level 2 never compiled");
        assert!(!m.warnings_known(Path::new("/a.py"), &[3; 8], &[0]), "other source bytes");
        assert!(!m.warnings_known(Path::new("/w.py"), &[4; 8], &[0]));
    }
}
