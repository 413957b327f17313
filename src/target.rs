//! The target interpreter: what it is (version, magic, cache tag, SipHash variant, how its
//! py_compile marshals the top-level code object), found by probing it once, with the
//! result cached on disk keyed by the interpreter file's identity so that a run over an
//! unchanged tree starts no Python at all. Also the built-in table behind `check --target`.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::pyc::{self, HashVariant, Magic};

/// Bumped whenever the probe or the cached record changes meaning.
const PROBE_VERSION: u32 = 4;
/// Hashed by the probe with `importlib.util.source_hash` to tell the SipHash variants apart.
const PROBE_SOURCE: &[u8] = b"hashpyc probe\n";

/// What the probe runs (`-s -S -c`), given an empty directory for its py_compile as its
/// argument where one could be made. Not `-E`: the probe starts as the workers do, no
/// `PYTHON*` variable of hashpyc's own environment reaching it, but those a launcher sets
/// (`PYTHONNODEBUGRANGES`, `PYTHONHOME`) taking effect, so that it sees what they will.
const PROBE_SCRIPT: &str = include_str!("probe.py");

/// Everything hashpyc needs to know about one target interpreter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The interpreter as the user named it (resolved on PATH).
    pub executable: PathBuf,
    pub version: (u8, u8, u8),
    pub hexversion: u32,
    pub magic: Magic,
    pub cache_tag: String,
    pub hash: HashVariant,
    pub marshal_version: u8,
    /// Whether py_compile's output has marshal's FLAG_REF on the top-level code object.
    pub flag_ref_top: bool,
    /// A free-threaded (no-GIL) build.
    pub gil_disabled: bool,
    /// `sys.version`: the full version with build date and compiler (a patch release or
    /// a rebuild may change the compiler without changing the magic number).
    #[serde(default)]
    pub sys_version: String,
    /// `sys.abiflags` (`t` for free-threaded builds, `d` for debug builds).
    #[serde(default)]
    pub abiflags: String,
    /// The settings it runs with (as a launcher may start it) that change its pycs or which
    /// of them it imports.
    #[serde(default)]
    pub settings: RunSettings,
    /// A stable name for this interpreter file (see `memo_id`), for its memories in the
    /// state directory; `None` when it cannot be identified.
    #[serde(skip)]
    pub identity: Option<String>,
    /// Remembered from an earlier run for a launcher (a script, a version manager's
    /// binary), whose key cannot see all that chooses the interpreter it now runs: a run
    /// confirms it with a worker's hello before it serves a cache hit or stores anything
    /// (see `compile::confirm_targets`).
    #[serde(skip)]
    pub unconfirmed: bool,
    /// The files the probe found to be the interpreter (its executable, its libpython),
    /// remembered with their identity beside the probe (see `CacheRecord`).
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// Settings an interpreter runs with, as its probe found them, that change the pycs it
/// writes or which of them it imports: a launcher script may start it with `-X
/// no_debug_ranges`, `-O` or their variables, which hashpyc's own environment never gives
/// it (see [`python_command`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Code objects without column positions (`-X no_debug_ranges`, `PYTHONNODEBUGRANGES`;
    /// 3.11+): its pycs differ from the interpreter's without the setting.
    pub no_debug_ranges: bool,
    /// The limit on the digits of an integer literal, when not CPython's default of 4 300
    /// (`-X int_max_str_digits`, `PYTHONINTMAXSTRDIGITS`; 0 is none): a literal fails to
    /// compile under one limit and compiles under another.
    pub int_max_str_digits: Option<i64>,
    /// `sys.flags.optimize` (`-O`, `PYTHONOPTIMIZE`): the level of the pycs it imports.
    pub optimize: u8,
    /// `sys.pycache_prefix` (`-X pycache_prefix`, `PYTHONPYCACHEPREFIX`; 3.8+): where it
    /// looks for pycs instead of `__pycache__`.
    pub pycache_prefix: Option<PathBuf>,
}

impl RunSettings {
    /// The settings that change what its compiles give (not only which pycs it imports),
    /// as `-X` would spell them: part of the interpreter's identity for the bytecode
    /// cache's key and the check that two targets share pycs.
    pub fn compiling(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.no_debug_ranges {
            out.push("no_debug_ranges".to_string());
        }
        if let Some(n) = self.int_max_str_digits {
            out.push(format!("int_max_str_digits={n}"));
        }
        out
    }
}

/// How the pool keeps compiled bytes independent of history (see `pool`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// A fresh fork of the pristine zygote for every file.
    ForkEach,
    /// Long-lived children forked from the zygote, replaced after any compile that
    /// changed interpreter-wide state; with `refork_suspects`, files whose bytes could
    /// depend on strings interned by earlier compiles are compiled again in a fresh fork.
    LongLived { refork_suspects: bool },
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::ForkEach => "a fresh fork per file",
            Isolation::LongLived { refork_suspects: false } => "long-lived workers",
            Isolation::LongLived { refork_suspects: true } => {
                "long-lived workers, history-sensitive files again in a fresh fork"
            }
        })
    }
}

/// "CPython 3.12.1", "CPython 3.11.7 and 3.12.1", "CPython 3.11.7, 3.12.1 and 3.13.0".
pub fn targets_label(targets: &[std::sync::Arc<Target>]) -> String {
    let versions: Vec<String> = targets.iter().map(|t| t.short_version()).collect();
    let joined = match versions.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    format!("CPython {joined}")
}

impl Target {
    /// Whether `other` describes the same build, whatever the settings it runs with: what
    /// the plan took from a probe (its cache tag, magic, version) and every other part of
    /// it a worker's hello is compared with.
    pub fn same_build(&self, other: &Target) -> bool {
        let plain = |t: &Target| Target { settings: RunSettings::default(), unconfirmed: false, ..t.clone() };
        plain(self) == plain(other)
    }

    /// The name its memories in the state directory (`memo`) go by: its `identity`, and
    /// the settings it runs with that change what its compiles give
    /// ([`RunSettings::compiling`]), so that a failure remembered under one int-digits
    /// limit is not reported for a launcher of the same interpreter that sets another.
    /// CPython's defaults add nothing (the name memories had before settings were part of
    /// it); `None` when the interpreter cannot be identified.
    pub fn memo_identity(&self) -> Option<String> {
        let id = self.identity.as_deref()?;
        let settings = self.settings.compiling();
        if settings.is_empty() {
            return Some(id.to_string());
        }
        use std::hash::{Hash, Hasher};
        let mut h = siphasher::sip::SipHasher13::new();
        settings.hash(&mut h);
        Some(format!("{id}-{:016x}", h.finish()))
    }

    /// Whether this target comes from the built-in table (`check --target`), not a probe.
    pub fn from_table(&self) -> bool {
        self.hexversion == 0
    }

    /// `3.12.1`, or `3.12` for a target from the built-in table.
    pub fn short_version(&self) -> String {
        if self.from_table() {
            format!("{}.{}", self.version.0, self.version.1)
        } else {
            self.version_string()
        }
    }

    /// `{"version": "3.12.1", "python": "/usr/bin/python3.12"}`, as `--format json` names
    /// a target (compile's summary's `targets`, `-v`'s target notices); one from the
    /// built-in table has no interpreter and no patch level: `{"version": "3.12", "python":
    /// null}`, as check's summary names it.
    pub fn json(&self) -> serde_json::Value {
        if self.from_table() {
            return serde_json::json!({ "version": self.short_version(), "python": null });
        }
        serde_json::json!({ "version": self.version_string(), "python": crate::report::JsonPath(&self.executable) })
    }

    pub fn version_string(&self) -> String {
        let (a, b, c) = self.version;
        format!("{a}.{b}.{c}")
    }

    pub fn minor(&self) -> (u8, u8) {
        (self.version.0, self.version.1)
    }

    /// The isolation validated for this version by the shuffle tests (see DESIGN notes in
    /// the README): 3.7–3.10 intern strings per process in ways no check can see, so every
    /// file gets a fresh fork; 3.11 long-lived children are exact once tainted children are
    /// replaced; 3.12+ also need frozenset constants holding strings recompiled fresh.
    /// Versions newer than validated, and free-threaded builds, get the safe path.
    pub fn isolation(&self) -> Isolation {
        if let Some(forced) = crate::env::choice(crate::env::ISOLATION) {
            match forced.as_str() {
                "fork" => return Isolation::ForkEach,
                "long-lived" => {
                    return Isolation::LongLived { refork_suspects: true };
                }
                _ => {}
            }
        }
        if self.gil_disabled {
            return Isolation::ForkEach;
        }
        match self.minor() {
            (3, 11) => Isolation::LongLived { refork_suspects: false },
            (3, 12..=15) => Isolation::LongLived { refork_suspects: true },
            _ => Isolation::ForkEach,
        }
    }
}

#[derive(Debug, Error)]
pub enum TargetError {
    #[error("Python interpreter {} not found on PATH", crate::report::ticked(.0))]
    NotFound(PathBuf),
    #[error("Python interpreter {} does not exist", crate::report::ticked(.0))]
    Missing(PathBuf),
    #[error(
        "Python interpreter {} is a symbolic link to {}, which does not exist (a virtual environment whose base interpreter was removed or moved?)",
        crate::report::ticked(path),
        crate::report::ticked(target)
    )]
    Dangling { path: PathBuf, target: PathBuf },
    #[error("cannot access Python interpreter {}: {reason}", crate::report::ticked(path))]
    Inaccessible { path: PathBuf, reason: String },
    #[error("{} is not an executable file", crate::report::ticked(.0))]
    NotExecutable(PathBuf),
    #[error("failed to run {}: {reason}", crate::report::ticked(path))]
    Spawn { path: PathBuf, reason: String },
    /// A thread to read the probe's output could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(String),
    #[error("{} does not look like Python: {detail}", crate::report::ticked(path))]
    NotPython { path: PathBuf, detail: String },
    #[error("{} failed to start Python: {detail}", crate::report::ticked(path))]
    ProbeFailed { path: PathBuf, detail: String },
    #[error(
        "{} printed `{line}` on stdout before Python started (a wrapper script that prints?): \
         a launcher must not write to stdout, which carries hashpyc's exchanges with the interpreter",
        crate::report::ticked(path)
    )]
    LauncherPrinted { path: PathBuf, line: String },
    #[error(
        "{} is Python {version}; hashpyc needs CPython 3.7 or newer (PEP 552)",
        crate::report::ticked(path)
    )]
    TooOld { path: PathBuf, version: String },
    #[error(
        "{} is {implementation}, not CPython; its bytecode format is its own",
        crate::report::ticked(path)
    )]
    NotCPython { path: PathBuf, implementation: String },
    #[error("{} did not answer the probe within {secs} s", crate::report::ticked(path))]
    Timeout { path: PathBuf, secs: u64 },
    /// SIGINT or SIGTERM arrived while the interpreter was probed.
    #[error("interrupted")]
    Interrupted,
    #[error(
        "{} hashes sources with neither SipHash-1-3 nor SipHash-2-4 (got {got})",
        crate::report::ticked(path)
    )]
    UnknownHash { path: PathBuf, got: String },
    #[error(
        "unknown Python version `{spec}` for --target: the built-in table knows {known}; use --python to probe a newer interpreter"
    )]
    UnknownVersion { spec: String, known: String },
    #[error(
        "--target {spec}: hashpyc needs CPython 3.7 or newer (PEP 552: earlier versions have no hash-based pycs); the built-in table knows {known}"
    )]
    TargetTooOld { spec: String, known: String },
    #[error(
        "invalid --target `{spec}`: expected a version X.Y, e.g. `--target {example}`; the built-in table knows {known}"
    )]
    NotMinorVersion { spec: String, example: String, known: String },
    #[error("`{0}` asks for Python {0}; hashpyc needs CPython 3.7 or newer (PEP 552)")]
    RequestTooOld(String),
    #[error("no Python {request} found on PATH{}{}", tried_list(.names, .tried), installed_list(.installed))]
    NoSuchVersion { request: String, names: Vec<String>, tried: Vec<String>, installed: Vec<Installed> },
}

/// An interpreter of the version asked for that a version manager installed but did not
/// put on PATH (pyenv's `versions/3.12.1` while another version is selected).
#[derive(Debug)]
pub struct Installed {
    manager: &'static str,
    version: String,
    exe: PathBuf,
}

fn installed_list(installed: &[Installed]) -> String {
    if installed.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n  installed, but not on PATH (give one with --python, or select it):");
    for i in installed {
        let select = match i.manager {
            "pyenv" => format!(": `pyenv shell {}`", i.version),
            "asdf" => format!(": `asdf shell python {}`", i.version),
            "mise" => format!(": `mise shell python@{}`", i.version),
            _ => String::new(),
        };
        out.push_str(&format!(
            "\n    {} ({} {}{select})",
            crate::report::ticked(&i.exe),
            i.manager,
            i.version
        ));
    }
    out
}

/// The interpreters of `request`'s version that pyenv, asdf, mise or uv installed, newest
/// first, found by their directories' names (`3.12.1`, uv's `cpython-3.12.1-linux-…`) and
/// the executable in each (`bin/python3.12`); nothing is started. Only for the error of a
/// version not found on PATH: hashpyc does not pick one of them itself, which would run
/// an interpreter the environment did not select.
fn installed_elsewhere(request: &VersionRequest) -> Vec<Installed> {
    if request.parts.len() < 2 {
        return Vec::new();
    }
    let places = ManagerDirs::from_env(&|var| std::env::var_os(var)).installs();
    let exe_name = format!("python{}.{}{}", request.parts[0], request.parts[1], request.abi_suffix());
    let mut found: Vec<(Vec<u32>, Installed)> = Vec::new();
    for (manager, dir) in places {
        let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // uv's `cpython-3.12.1-linux-x86_64-gnu` (`cpython-3.13.1+freethreaded-…`).
            let version = match manager {
                "uv" => match name.strip_prefix("cpython-").and_then(|r| r.split('-').next()) {
                    Some(v) => v.replace("+freethreaded", "t").replace("+debug", "d"),
                    None => continue,
                },
                _ => name.clone(),
            };
            let numbers = version.trim_end_matches(['t', 'd']);
            let Some(parts) = numbers.split('.').map(|n| n.parse::<u32>().ok()).collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let wanted = request.parts.iter().zip(&parts).all(|(w, h)| u32::from(*w) == *h)
                && parts.len() >= request.parts.len()
                && version[numbers.len()..] == *request.abi_suffix();
            let exe = entry.path().join("bin").join(&exe_name);
            if wanted && is_executable_file(&exe) {
                found.push((parts, Installed { manager, version, exe }));
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, i)| i).collect()
}

/// Where pyenv, asdf, mise and uv keep what they install, from their variables, else
/// their defaults under the home directory: the one source of the directories listed for
/// the error of a version not found ([`installed_elsewhere`]) and of those a launcher's
/// probe is keyed by ([`launcher_context`]). A variable set empty is unset (`PYENV_ROOT=`
/// is `~/.pyenv`, as pyenv and asdf read theirs; `XDG_DATA_HOME=` as the XDG base
/// directory specification says), never a directory relative to where hashpyc runs.
struct ManagerDirs {
    /// pyenv's root: its `version` file (`pyenv global`) and `versions/`.
    pyenv_root: Option<PathBuf>,
    asdf_data: Option<PathBuf>,
    mise_data: Option<PathBuf>,
    /// uv's directory of Python installs.
    uv_python: Option<PathBuf>,
}

impl ManagerDirs {
    fn from_env(var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> ManagerDirs {
        let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home = set("HOME");
        let set_or = |name: &str, under: &str| set(name).or_else(|| home.as_ref().map(|h| h.join(under)));
        ManagerDirs {
            pyenv_root: set_or("PYENV_ROOT", ".pyenv"),
            asdf_data: set_or("ASDF_DATA_DIR", ".asdf"),
            mise_data: set_or("MISE_DATA_DIR", ".local/share/mise"),
            uv_python: set("UV_PYTHON_INSTALL_DIR")
                .or_else(|| set("XDG_DATA_HOME").map(|x| x.join("uv/python")))
                .or_else(|| home.as_ref().map(|h| h.join(".local/share/uv/python"))),
        }
    }

    /// Each manager's directory of Python installs, by its name.
    fn installs(&self) -> [(&'static str, Option<PathBuf>); 4] {
        [
            ("pyenv", self.pyenv_root.as_ref().map(|r| r.join("versions"))),
            ("asdf", self.asdf_data.as_ref().map(|d| d.join("installs/python"))),
            ("mise", self.mise_data.as_ref().map(|d| d.join("installs/python"))),
            ("uv", self.uv_python.clone()),
        ]
    }
}

fn tried_list(names: &[String], tried: &[String]) -> String {
    if tried.is_empty() {
        let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        return format!(" (looked for {})", names.join(", "));
    }
    let mut out = String::from(":");
    for t in tried {
        out.push_str("\n    ");
        out.push_str(t);
    }
    out
}

/// A `--python` value that asks for a version rather than naming a file, as uv takes it:
/// `3`, `3.12`, `3.12.1`, `3.13t` for a free-threaded build and `3.14d` for a debug build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRequest {
    parts: Vec<u8>,
    free_threaded: bool,
    /// A debug build (`python3.14d`), found by its name: its pycs are the release build's
    /// (the same magic number and code), so what it is probed to be is its version and GIL.
    debug: bool,
}

/// The implementation prefixes of uv's requests for CPython (`cpython@3.12`, `cpython3.12`,
/// `cp312`), longest first, matched without regard to case.
const CPYTHON_PREFIXES: [&str; 4] = ["cpython@", "cpython-", "cpython", "cp"];

/// `text` without a CPython prefix of uv's, if it has one (and something after it).
fn without_cpython(text: &str) -> Option<&str> {
    CPYTHON_PREFIXES.iter().find_map(|p| {
        let head = text.get(..p.len())?;
        (head.eq_ignore_ascii_case(p) && text.len() > p.len()).then(|| &text[p.len()..])
    })
}

/// Why an interpreter request is refused before anything is looked for, if it is: a form
/// of uv's that names no one version (a range, `>=3.12`), a key of uv's downloads, or
/// whitespace around a name (no interpreter's name has it; uv refuses it too). A path
/// (holding `/`) is taken as written.
pub fn refused_request(text: &str) -> Option<String> {
    const TAKEN: &str = "give one version (`3.12`, `3.12.1`, `312`, `cpython@3.12`, `3.13t`, `3.14d`, \
                         `3.14+debug`, `3.14td`), a name on PATH (`python3.12`) or a path";
    if text.contains('/') {
        return None;
    }
    if !text.is_empty() && text.trim().is_empty() {
        return Some("an interpreter name of only whitespace".into());
    }
    if text.trim() != text {
        return Some(format!(
            "`{text}` has whitespace around it, which no interpreter's name has: write `{}`",
            text.trim()
        ));
    }
    let rest = without_cpython(text).unwrap_or(text);
    let rest = rest.strip_prefix('@').unwrap_or(rest);
    if rest.starts_with(['~', '!']) || text.contains(['>', '<', '=', ',']) {
        return Some(format!(
            "`{text}` is a version range, which hashpyc does not take: it compiles for each interpreter \
             given, so {TAKEN}"
        ));
    }
    if let Some(after) = without_cpython(text)
        && after.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '@')
        && after.split('-').nth(1).is_some_and(|os| !os.is_empty())
    {
        return Some(format!(
            "`{text}` is the key of one of uv's downloads, which hashpyc does not fetch: {TAKEN}"
        ));
    }
    None
}

impl VersionRequest {
    /// A version as uv takes it, for CPython: `3`, `3.12`, `3.12.1`, `3.13t` (free-threaded),
    /// `312` (3.12), each also after `cpython`, `cpython@`, `cpython-` or `cp` (`cp312`),
    /// `3.13+freethreaded` / `3.13+gil` for `3.13t` / `3.13`, and uv's debug variants:
    /// `3.14d` or `3.14+debug`, `3.14td` or `3.14+freethreaded+debug`, `3.14+gil+debug`.
    /// None for anything else (a name or a path).
    pub fn parse(name: &OsStr) -> Option<VersionRequest> {
        let text = name.to_str()?;
        let text = without_cpython(text).unwrap_or(text);
        // (free-threaded, debug) as a `+` variant gives them.
        let (text, variant) = match text.split_once('+') {
            Some((v, "freethreaded")) => (v, Some((true, false))),
            Some((v, "gil")) => (v, Some((false, false))),
            Some((v, "debug" | "gil+debug")) => (v, Some((false, true))),
            Some((v, "freethreaded+debug")) => (v, Some((true, true))),
            Some(_) => return None,
            None => (text, None),
        };
        let suffixed = [("td", (true, true)), ("t", (true, false)), ("d", (false, true))]
            .into_iter()
            .find_map(|(suffix, flags)| Some((text.strip_suffix(suffix)?, flags)));
        let (numbers, (free_threaded, debug)) = match (suffixed, variant) {
            (Some(found), None) => found,
            (Some(_), Some(_)) => return None,
            (None, v) => (text, v.unwrap_or((false, false))),
        };
        // `312` is 3.12, as uv reads it (and `cp312` spells it).
        let dotless = numbers.len() >= 2 && numbers.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<u8> = if dotless {
            vec![numbers[..1].parse().ok()?, numbers[1..].parse().ok()?]
        } else {
            numbers.split('.').map(|n| n.parse().ok()).collect::<Option<_>>()?
        };
        // `3t`, `3d` and `3.13.1t` are no spelling uv or CPython uses.
        // Python 2 is recognised, to be refused by name rather than looked for as a file.
        let variant = free_threaded || debug;
        let usable = (parts[0] == 2 || parts[0] == 3)
            && match parts.len() {
                1 => !variant,
                2 => true,
                3 => !variant,
                _ => false,
            };
        usable.then_some(VersionRequest { parts, free_threaded, debug })
    }

    /// More than a major version (`3.12`, `312`, `3.12.1`; not `3`).
    pub fn names_a_minor(&self) -> bool {
        self.parts.len() > 1
    }

    /// The file names to look for on PATH, most specific first.
    fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.parts.len() >= 2 {
            names.push(format!("python{}.{}{}", self.parts[0], self.parts[1], self.abi_suffix()));
        }
        if !self.free_threaded && !self.debug {
            names.push("python3".to_string());
            names.push("python".to_string());
        }
        names
    }

    fn matches(&self, t: &Target) -> bool {
        let version = [t.version.0, t.version.1, t.version.2];
        self.parts.iter().zip(version).all(|(want, have)| *want == have)
            && t.gil_disabled == self.free_threaded
    }

    /// CPython's ABI flags for the build asked for, as its executable's name ends
    /// (`python3.14td`).
    fn abi_suffix(&self) -> &'static str {
        match (self.free_threaded, self.debug) {
            (true, true) => "td",
            (true, false) => "t",
            (false, true) => "d",
            (false, false) => "",
        }
    }
}

impl std::fmt::Display for VersionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let numbers: Vec<String> = self.parts.iter().map(u8::to_string).collect();
        write!(f, "{}{}", numbers.join("."), self.abi_suffix())
    }
}

/// The first interpreter on PATH that is the requested version: `python3.12`, then
/// `python3` and `python`, each in PATH order, probed (through the cache) until one fits.
/// One that fails to start (a pyenv shim for a version not selected) is passed over and
/// named in the error should none fit.
pub fn find_version(
    request: &VersionRequest,
    timeout: Duration,
    cache_dir: Option<&Path>,
) -> Result<Target, TargetError> {
    if request.parts.len() > 1 && request.parts[..2] < [3, 7][..] || request.parts == [2] {
        return Err(TargetError::RequestTooOld(request.to_string()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut tried = Vec::new();
    for name in request.names() {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(&name);
            if !is_executable_file(&candidate) {
                continue;
            }
            // One directory reached twice (`/bin` a link to `/usr/bin`) is probed once; but
            // a venv's `python` links to the base interpreter and is an interpreter of its
            // own (its sys.prefix), so the file itself is not resolved.
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            let candidate = std::path::absolute(dir.join(&name)).unwrap_or(candidate);
            if seen.contains(&candidate) {
                continue;
            }
            seen.push(candidate.clone());
            match probe(&candidate, timeout, cache_dir) {
                Ok(t) if request.matches(&t) => return Ok(t),
                Err(TargetError::Interrupted) => return Err(TargetError::Interrupted),
                Ok(t) => {
                    let (a, b, c) = t.version;
                    let ft = if t.gil_disabled { " (free-threaded)" } else { "" };
                    tried.push(format!("{} is {a}.{b}.{c}{ft}", crate::report::ticked(&candidate)));
                }
                Err(e) => {
                    // The reason and the first line the interpreter printed, if any.
                    let text = e.to_string();
                    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
                    let mut line = lines.next().unwrap_or_default().to_string();
                    if let Some(said) = lines.next() {
                        line = format!("{line} {said}");
                    }
                    tried.push(line);
                }
            }
        }
    }
    let installed = installed_elsewhere(request);
    Err(TargetError::NoSuchVersion { request: request.to_string(), names: request.names(), tried, installed })
}

/// The `--python` value: a path when it holds a `/`, else a name looked up on PATH. The
/// result is absolute (so it means the same in every process we start) but symlinks are
/// kept: a venv's `python` is a symlink whose own path matters.
pub fn resolve_executable(name: &OsStr) -> Result<PathBuf, TargetError> {
    let as_path = Path::new(name);
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    if as_path.as_os_str().as_encoded_bytes().contains(&b'/') {
        return Ok(absolute(as_path.to_path_buf()));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(as_path);
        if is_executable_file(&candidate) {
            return Ok(absolute(candidate));
        }
    }
    Err(TargetError::NotFound(PathBuf::from(name)))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The variables [`python_command`] keeps from Python: the shared cache's credentials.
const SECRETS: &[&str] = &[
    "HASHPYC_CACHE_TOKEN",
    "HASHPYC_CACHE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// A command that runs `exe` isolated from the environment except for what we set:
/// no PYTHON* variable survives, and PYTHONHASHSEED is fixed to 0 (`-I`/`-E` would drop
/// it too, which is why they are not used for workers). `PYTHON` itself, which CPython
/// does not read, is kept for a launcher script (`exec "$PYTHON" "$@"`).
/// The credentials of the shared cache (and a cache URL, which may hold a password) are
/// not passed on either: a compile never needs them, and a launcher script or a venv's
/// wrapper would see them.
pub fn python_command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    for (key, _) in std::env::vars_os() {
        let name = key.as_encoded_bytes();
        if (name.starts_with(b"PYTHON") && key != "PYTHON") || SECRETS.iter().any(|s| name == s.as_bytes()) {
            cmd.env_remove(&key);
        }
    }
    cmd.env("PYTHONHASHSEED", "0");
    cmd
}

/// Probe `exe`, using the on-disk cache when the interpreter file is unchanged.
pub fn probe(exe: &Path, timeout: Duration, cache_dir: Option<&Path>) -> Result<Target, TargetError> {
    let meta = std::fs::metadata(exe).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => match std::fs::read_link(exe) {
            // The final link of a chain that ends nowhere, as `ls -l` shows it.
            Ok(_) => TargetError::Dangling { path: exe.to_path_buf(), target: last_link_target(exe) },
            Err(_) => TargetError::Missing(exe.to_path_buf()),
        },
        _ => TargetError::Inaccessible { path: exe.to_path_buf(), reason: crate::io::io_reason(&e) },
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(TargetError::NotExecutable(exe.to_path_buf()));
    }
    let key = cache_key(exe);
    let cache_file = cache_dir.zip(key.as_ref()).map(|(dir, key)| dir.join(cache_name(&key_id(key))));
    let identity = key.as_ref().map(memo_id);
    if let Some(file) = &cache_file
        && let Some(target) = read_cache(file, key.as_ref().expect("key exists with file"), exe)
    {
        let unconfirmed = key.as_ref().is_some_and(|k| k.launcher_context.is_some());
        return Ok(Target { identity, unconfirmed, ..target });
    }
    let target = run_probe(exe, timeout)?;
    let stamps: Option<Vec<FileStamp>> = target.files.iter().map(|f| FileStamp::of(f)).collect();
    // One that cannot be identified is probed again next time.
    let (Some(key), Some(stamps)) = (key, stamps) else {
        return Ok(Target { identity, ..target });
    };
    if !key.remembers(&stamps) {
        // A launcher hashpyc does not know (a compiled one, neither a script nor a version
        // manager's) runs whatever its own settings choose, which no key can see: it is
        // probed on every run, and its remembered failures go by the interpreter it ran.
        let ran = vec![("runs".to_string(), serde_json::to_string(&stamps).unwrap_or_default())];
        let ran = CacheKey { launcher_context: Some(ran), ..key };
        return Ok(Target { identity: Some(key_id(&ran)), ..target });
    }
    if let Some(file) = cache_file {
        write_cache(&file, &key, &target, stamps);
    }
    Ok(Target { identity, ..target })
}

/// Where the chain of symbolic links from `link` ends: the first target that does not
/// exist, resolved against its link's directory.
fn last_link_target(link: &Path) -> PathBuf {
    let mut at = link.to_path_buf();
    for _ in 0..40 {
        match std::fs::read_link(&at) {
            Ok(next) => at = at.parent().map_or(next.clone(), |dir| dir.join(&next)),
            Err(_) => break,
        }
    }
    at
}

/// Forget a cached probe (when a worker's handshake contradicts it).
pub fn forget(exe: &Path, cache_dir: Option<&Path>) {
    if let (Some(dir), Some(key)) = (cache_dir, cache_key(exe)) {
        let _ = std::fs::remove_file(dir.join(cache_name(&key_id(&key))));
    }
}

fn run_probe(exe: &Path, timeout: Duration) -> Result<Target, TargetError> {
    // A directory for the probe's py_compile, so that it need not import tempfile, removed
    // when this returns; where none can be made, the probe makes (and removes) its own. No
    // `-` before the random letters: a launcher script may tell the probe from a worker by
    // `-B`.
    let scratch = tempfile::Builder::new().prefix("hashpyc-probe.").tempdir().ok();
    let mut cmd = python_command(exe);
    cmd.args(["-s", "-S", "-c", PROBE_SCRIPT]);
    if let Some(dir) = &scratch {
        cmd.arg(dir.path());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, as a worker's: an interrupt kills the launcher and what
        // it started (`crate::interrupt`), and the probe ends at once.
        .process_group(0);
    // A process or memory limit with no room (a container's pids limit filled by processes
    // about to end) is waited out as the workers wait (pauses of about 3 s in all), and only
    // then is the run's error.
    let mut pauses = 0;
    let mut room = |e: &std::io::Error| -> Result<bool, TargetError> {
        if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM)) {
            return Ok(false);
        }
        match crate::pool::schedule::limit_pause(pauses, crate::interrupt::requested) {
            Some(true) => {
                pauses += 1;
                Ok(true)
            }
            Some(false) => Err(TargetError::Interrupted),
            None => Ok(false),
        }
    };
    let (mut child, out_reader, err_reader) = loop {
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) if room(&e)? => continue,
            Err(e) => {
                return Err(TargetError::Spawn {
                    path: exe.to_path_buf(),
                    reason: crate::io::start_reason(&e),
                });
            }
        };
        crate::interrupt::register(child.id());
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let readers =
            Reader::start(stdout, 1 << 20).and_then(|out| Ok((out, Reader::start(stderr, 1 << 16)?)));
        match readers {
            Ok((out, err)) => break (child, out, err),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                crate::interrupt::unregister(child.id());
                if !room(&e)? {
                    return Err(TargetError::Thread(crate::io::start_reason(&e)));
                }
            }
        }
    };
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            // One killed by the interrupt (its group is) was interrupted, not failed.
            Ok(Some(_)) if crate::interrupt::requested() => break Err(TargetError::Interrupted),
            Ok(Some(status)) => break Ok(status),
            // A probe takes 20-50 ms: polled finely, its end is not waited for.
            Ok(None) if start.elapsed() < timeout && !crate::interrupt::requested() => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ if crate::interrupt::requested() => break Err(TargetError::Interrupted),
            _ => break Err(TargetError::Timeout { path: exe.to_path_buf(), secs: timeout.as_secs() }),
        }
    };
    if status.is_err() {
        // The whole group: a launcher's children (`sleep 300 &`) go with it.
        // SAFETY: kill(2) of the process group this probe was started in.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.wait();
        crate::interrupt::reap_group(child.id());
    }
    crate::interrupt::unregister(child.id());
    let status = status?;
    // The probe printed everything before it exited; a process a launcher left in the
    // background (`sleep 40 &`) may hold the pipes open long after: wait a moment for
    // the end of its output, then take what was read.
    let until = Instant::now() + Duration::from_millis(500);
    while !(out_reader.done() && err_reader.done()) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (out, err) = (out_reader.take(), err_reader.take());
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    if !status.success() && !out.lines().any(|l| l == "end") {
        // A launcher that could not start an interpreter (a pyenv shim for a version that
        // is not activated, a broken venv): say what it did and keep its whole message.
        use std::os::unix::process::ExitStatusExt;
        let how = match (status.code(), status.signal()) {
            (Some(code), _) => format!("it exited with status {code}"),
            (None, Some(sig)) => format!("it was killed by signal {sig}"),
            _ => "it failed".to_string(),
        };
        let mut detail = with_output(how, &err, &out);
        if let Some(hint) = unpassed_location_hint(exe) {
            detail.push('\n');
            detail.push_str(&hint);
        }
        return Err(TargetError::ProbeFailed { path: exe.to_path_buf(), detail });
    }
    parse_probe(exe, &out, &err)
}

/// For an interpreter that failed to start while hashpyc's own environment sets
/// `PYTHONHOME` or `PYTHONPATH` (a binary copied away from its standard library needs
/// them): [`python_command`] passes neither, which CPython's path-configuration dump does
/// not say, so this says it and what to do instead.
fn unpassed_location_hint(exe: &Path) -> Option<String> {
    let set: Vec<&str> = ["PYTHONHOME", "PYTHONPATH"]
        .into_iter()
        .filter(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        .collect();
    let (first, _) = set.split_first()?;
    Some(format!(
        "hashpyc does not pass {} to the interpreters it starts (no `PYTHON*` variable of its \
         environment reaches them, so that none changes the pycs): give --python a wrapper script \
         that sets {} and execs the interpreter (`{first}=DIR exec {} \"$@\"`)",
        set.join(" or "),
        if set.len() > 1 { "them" } else { "it" },
        crate::report::shell_path(exe),
    ))
}

/// A thread reading a pipe (up to `limit` bytes) into a buffer that can be taken before the
/// pipe ends.
struct Reader {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Reader {
    fn start(mut pipe: impl Read + Send + 'static, limit: usize) -> std::io::Result<Reader> {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&buf);
        let thread = std::thread::Builder::new().name("hashpyc-probe-pipe".into()).spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                let n = match pipe.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let mut buf = sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if n == 0 || buf.len() >= limit {
                    break;
                }
                let room = limit - buf.len();
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        })?;
        Ok(Reader { buf, thread })
    }

    fn done(&self) -> bool {
        self.thread.is_finished()
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// How much of what an interpreter printed a message shows: a launcher may print without
/// end (`exec cat /dev/zero`), and a line of its output has no bound of its own.
const SHOWN_OUTPUT_BYTES: usize = 4096;

/// `line` with control characters escaped as a finding's are ([`crate::report::printable`]:
/// an escape sequence a launcher prints must not clear or retitle the terminal), cut to at
/// most `budget` bytes as shown, and how many bytes of `line` were left out.
fn shown_output(line: &str, budget: usize) -> (String, usize) {
    let mut shown = String::new();
    let mut buf = [0u8; 4];
    for (at, c) in line.char_indices() {
        let part = crate::report::printable(c.encode_utf8(&mut buf));
        if shown.len() + part.len() > budget {
            return (shown, line.len() - at);
        }
        shown.push_str(&part);
    }
    (shown, 0)
}

/// `how`, then what the command printed (stderr first), indented, at most 60 lines and
/// [`SHOWN_OUTPUT_BYTES`], control characters escaped.
fn with_output(how: String, err: &str, out: &str) -> String {
    let lines: Vec<&str> = err.lines().chain(out.lines()).collect();
    let first = lines.iter().position(|l| !l.trim().is_empty());
    let last = lines.iter().rposition(|l| !l.trim().is_empty());
    let (Some(first), Some(last)) = (first, last) else {
        return format!("{how} and printed nothing");
    };
    let shown = &lines[first..=last];
    let mut text = format!("{how} and printed:");
    let mut budget = SHOWN_OUTPUT_BYTES;
    let mut lines_shown = 0;
    for l in shown.iter().take(60) {
        let l = l.trim_end();
        let (part, left_out) = shown_output(l, budget);
        text.push_str("\n    ");
        budget -= part.len();
        text.push_str(&part);
        lines_shown += 1;
        if left_out > 0 {
            text.push_str(&format!(" … ({left_out} more bytes)"));
            break;
        }
    }
    if shown.len() > lines_shown {
        text.push_str(&format!("\n    … ({} more lines)", shown.len() - lines_shown));
    }
    text
}

fn parse_probe(exe: &Path, out: &str, err: &str) -> Result<Target, TargetError> {
    let not_python = |detail: String| TargetError::NotPython { path: exe.to_path_buf(), detail };
    let mut lines = out.lines();
    let answered = out.lines().any(|l| l == "end");
    if answered && let Some(at) = out.find("hashpyc-probe\n").filter(|&at| at > 0) {
        // The interpreter answered, after a launcher's own output: the workers' stdout
        // would carry it where their hello must be, so it is refused here as it would be
        // there, naming what the launcher printed.
        let junk = &out.as_bytes()[..at];
        let first = junk.split(|&b| b == b'\n').find(|l| !l.trim_ascii().is_empty()).unwrap_or(junk);
        return Err(TargetError::LauncherPrinted {
            path: exe.to_path_buf(),
            line: crate::pool::printed(first),
        });
    }
    if lines.next() != Some("hashpyc-probe") || !answered {
        let said: Vec<&str> = err.lines().chain(out.lines()).filter(|l| !l.trim().is_empty()).collect();
        return Err(not_python(match said.as_slice() {
            [] => "the probe printed nothing".to_string(),
            [line] => {
                let (part, left_out) = shown_output(line.trim(), SHOWN_OUTPUT_BYTES);
                let more = if left_out > 0 { format!(" … ({left_out} more bytes)") } else { String::new() };
                format!("the probe failed, it printed `{part}`{more}")
            }
            _ => with_output("the probe failed".to_string(), err, out),
        }));
    }
    let field = |name: &str| {
        out.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).map(str::to_string)
    };
    let required = |name: &str| field(name).ok_or_else(|| not_python(format!("the probe gave no `{name}`")));
    let implementation = required("implementation")?;
    let version = required("version")?;
    let mut parts = version.split('.').map(|p| p.parse::<u8>());
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(micro))) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(not_python(format!("unreadable version `{version}`")));
    };
    if (major, minor) < (3, 7) {
        return Err(TargetError::TooOld { path: exe.to_path_buf(), version });
    }
    if implementation != "cpython" {
        return Err(TargetError::NotCPython { path: exe.to_path_buf(), implementation });
    }
    let magic_hex = required("magic")?;
    let magic = parse_hex(&magic_hex)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(Magic)
        .ok_or_else(|| not_python(format!("unreadable magic `{magic_hex}`")))?;
    let probe_hash = required("probe_hash")?;
    let hash = HashVariant::ALL
        .into_iter()
        .find(|&v| pyc::hex(&pyc::source_hash(v, magic, PROBE_SOURCE)) == probe_hash)
        .ok_or_else(|| TargetError::UnknownHash { path: exe.to_path_buf(), got: probe_hash.clone() })?;
    let flag_ref_top = match field("flag_ref_top").as_deref() {
        Some("1") => true,
        Some("0") => false,
        // py_compile could not run (no writable temporary directory): use what every
        // CPython we measured does.
        _ => (major, minor) < (3, 15),
    };
    Ok(Target {
        executable: exe.to_path_buf(),
        version: (major, minor, micro),
        hexversion: required("hexversion")?
            .parse()
            .map_err(|_| not_python("unreadable hexversion".into()))?,
        magic,
        cache_tag: required("cache_tag")?,
        hash,
        marshal_version: required("marshal_version")?.parse().unwrap_or(0),
        flag_ref_top,
        gil_disabled: field("gil_disabled").as_deref() == Some("1"),
        sys_version: field("sys_version").unwrap_or_default(),
        abiflags: field("abiflags").unwrap_or_default(),
        settings: RunSettings {
            no_debug_ranges: field("debug_ranges").as_deref() == Some("0"),
            int_max_str_digits: field("int_max_str_digits").and_then(|n| n.parse().ok()),
            optimize: field("optimize").and_then(|n| n.parse().ok()).unwrap_or(0),
            pycache_prefix: field("pycache_prefix").and_then(|h| parse_hex(&h)).map(|b| {
                use std::os::unix::ffi::OsStringExt;
                PathBuf::from(OsString::from_vec(b))
            }),
        },
        identity: None,
        unconfirmed: false,
        files: out.lines().filter_map(|l| l.strip_prefix("file=")).map(PathBuf::from).collect(),
    })
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// What identifies an interpreter for the probe cache: its resolved file's identity and,
/// for a launcher script (pyenv, asdf and mise shims, wrappers) or a version manager's
/// binary (mise's shims are links to it), the settings that choose the interpreter it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct CacheKey {
    probe_version: u32,
    given: PathBuf,
    /// The file named, links resolved.
    file: FileStamp,
    launcher_context: Option<Vec<(String, String)>>,
    /// The dynamic loader's settings that can swap the files an interpreter maps (another
    /// libpython found first on `LD_LIBRARY_PATH`, another patch release of it), which the
    /// stamps of the files found by an earlier probe cannot see: those set and not empty.
    loader: Vec<(String, String)>,
}

impl CacheKey {
    /// Whether a probe that found the interpreter to be `files` can be remembered under this
    /// key: the file named is a launcher keyed by its settings (a script, a version
    /// manager's binary), or it is itself the interpreter that ran (one of `files`, by
    /// device and inode: a venv's `python` links to it, a `--copies` venv's is it). Any
    /// other file ran another one: a launcher whose choice the key cannot see.
    fn remembers(&self, files: &[FileStamp]) -> bool {
        self.launcher_context.is_some()
            || files.iter().any(|f| (f.dev, f.ino) == (self.file.dev, self.file.ino))
    }
}

/// The names of version managers' own binaries, to which their shims may be links (mise's
/// are links to `mise`; `rtx` is its former name): a launcher keyed by their settings, as
/// a script is.
const MANAGER_BINARIES: &[&str] = &["mise", "rtx", "asdf", "pyenv"];

fn cache_key(exe: &Path) -> Option<CacheKey> {
    let canonical = std::fs::canonicalize(exe).ok()?;
    let file = FileStamp::of(&canonical)?;
    let is_script = std::fs::File::open(&canonical)
        .and_then(|mut f| {
            let mut head = [0u8; 2];
            f.read_exact(&mut head).map(|_| head == *b"#!")
        })
        .unwrap_or(false);
    let is_manager =
        canonical.file_name().and_then(OsStr::to_str).is_some_and(|n| MANAGER_BINARIES.contains(&n));
    Some(CacheKey {
        probe_version: PROBE_VERSION,
        given: exe.to_path_buf(),
        file,
        launcher_context: (is_script || is_manager).then(launcher_context),
        loader: ["LD_LIBRARY_PATH", "LD_PRELOAD"]
            .into_iter()
            .filter_map(|var| {
                let v = std::env::var_os(var).filter(|v| !v.is_empty())?;
                Some((var.to_string(), v.to_string_lossy().into_owned()))
            })
            .collect(),
    })
}

/// Version-manager settings that decide which interpreter a shim runs.
fn launcher_context() -> Vec<(String, String)> {
    let mut ctx = Vec::new();
    for var in [
        // What a launcher script of one's own runs (`exec "$PYTHON" "$@"`).
        "PYTHON",
        "PYENV_VERSION",
        "PYENV_ROOT",
        "ASDF_PYTHON_VERSION",
        "MISE_PYTHON_VERSION",
        "MISE_ENV",
        "VIRTUAL_ENV",
    ] {
        if let Some(v) = std::env::var_os(var) {
            ctx.push((var.to_string(), v.to_string_lossy().into_owned()));
        }
    }
    let mut add = |path: PathBuf| {
        if let Ok(text) = std::fs::read_to_string(&path) {
            ctx.push((path.display().to_string(), text));
        }
    };
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            // `.miserc.toml` may choose the environment (`env = [...]`), as MISE_ENV does.
            for name in [".python-version", ".tool-versions", ".miserc.toml", ".config/miserc.toml"] {
                add(dir.join(name));
            }
            // mise's project files, each in its places (mise's *Configuration*): `mise.toml`,
            // `mise.local.toml` and the environments' `mise.<env>.toml` and
            // `mise.<env>.local.toml`, also as dotfiles, `mise/config.toml`,
            // `.mise/config.toml`, `.config/mise.toml`, `.config/mise/config.toml` (with their
            // environments' and local variants), and the fragments of `.mise/conf.d` and
            // `.config/mise/conf.d`. Every environment's: one may be chosen by a file.
            for (sub, prefix) in [
                ("", "mise."),
                ("", ".mise."),
                ("mise", "config."),
                (".mise", "config."),
                (".config", "mise."),
                (".config/mise", "config."),
                (".mise/conf.d", ""),
                (".config/mise/conf.d", ""),
            ] {
                mise_files(&dir.join(sub), prefix).into_iter().for_each(&mut add);
            }
        }
    }
    let managers = ManagerDirs::from_env(&|var| std::env::var_os(var));
    let root = managers.pyenv_root.as_ref();
    if let Some(text) = root.and_then(|r| std::fs::read_to_string(r.join("version")).ok()) {
        ctx.push(("pyenv global".to_string(), text));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
    // mise's global configuration (`mise use -g python@3.13`).
    let mise_config = std::env::var_os("MISE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|x| PathBuf::from(x).join("mise")))
        .or_else(|| home.as_ref().map(|h| h.join(".config/mise")));
    let mise_global = std::env::var_os("MISE_GLOBAL_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| mise_config.as_ref().map(|d| d.join("config.toml")));
    if let Some(text) = mise_global.as_ref().and_then(|f| std::fs::read_to_string(f).ok()) {
        ctx.push(("mise global".to_string(), text));
    }
    // The rest of mise's global and system directories: their `conf.d` fragments, the
    // environments' and local `config.<…>.toml` beside `config.toml`, and `miserc.toml`.
    let mise_system = ["MISE_SYSTEM_CONFIG_DIR", "MISE_SYSTEM_DIR"]
        .into_iter()
        .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()))
        .map_or_else(|| PathBuf::from("/etc/mise"), PathBuf::from);
    let mise_global_dir =
        std::env::var_os("MISE_GLOBAL_CONFIG_FILE").is_none().then_some(mise_config).flatten();
    for dir in mise_global_dir.into_iter().chain([mise_system]) {
        let mut files = mise_files(&dir.join("conf.d"), "");
        files.extend(mise_files(&dir, "config."));
        files.push(dir.join("miserc.toml"));
        for file in files {
            if let Ok(text) = std::fs::read_to_string(&file) {
                ctx.push((file.display().to_string(), text));
            }
        }
    }
    // What a prefix version (`pyenv global 3.11`, `python 3.11` in .tool-versions) resolves
    // against: the versions installed, so that installing 3.11.8 beside 3.11.7 probes again.
    // The directories of pyenv's, asdf's and mise's installs (not uv's).
    let [pyenv, asdf, mise, _uv] = managers.installs();
    let installed = [("pyenv versions", pyenv.1), ("asdf installs", asdf.1), ("mise installs", mise.1)];
    for (what, dir) in installed {
        if let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) {
            let mut names: Vec<String> =
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            ctx.push((what.to_string(), names.join("\n")));
        }
    }
    ctx
}

/// The files of mise's configuration in `dir` whose names start with `prefix` and end
/// with `.toml` (not hidden ones, which mise skips in `conf.d`), in name order.
fn mise_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(prefix) && n.ends_with(".toml") && (!prefix.is_empty() || !n.starts_with('.'))
        })
        .collect();
    names.sort();
    names.into_iter().map(|n| dir.join(n)).collect()
}

/// A stable name for a cache key: the interpreter's `identity`.
fn key_id(key: &CacheKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = siphasher::sip::SipHasher13::new();
    serde_json::to_string(key).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The interpreter's `identity`, for the memories of what its compiles gave (`memo`):
/// its key without the name it was given, so that every name of one interpreter file
/// (`python3`, a link to `python3.12`, a venv's `python`) shares them, as they compile
/// alike; a launcher script, which may choose the interpreter by the name it is run as,
/// keeps its name.
fn memo_id(key: &CacheKey) -> String {
    if key.launcher_context.is_some() {
        return key_id(key);
    }
    key_id(&CacheKey { given: PathBuf::new(), ..key.clone() })
}

fn cache_name(id: &str) -> String {
    format!("interpreter-{id}.json")
}

/// A file that is the interpreter, as the probe found it: a remembered probe holds only
/// while each is unchanged (replaced, rebuilt or touched: a libpython swapped under an
/// unchanged executable, an executable behind an unchanged launcher script).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct CacheRecord {
    key: CacheKey,
    target: Target,
    files: Vec<FileStamp>,
}

fn read_cache(file: &Path, key: &CacheKey, exe: &Path) -> Option<Target> {
    let text = crate::io::read_own(file)?;
    let record: CacheRecord = serde_json::from_slice(&text).ok()?;
    let unchanged = record.files.iter().all(|f| FileStamp::of(&f.path).as_ref() == Some(f));
    (record.key == *key && unchanged && key.remembers(&record.files)).then(|| Target {
        executable: exe.to_path_buf(),
        files: record.files.into_iter().map(|f| f.path).collect(),
        ..record.target
    })
}

fn write_cache(file: &Path, key: &CacheKey, target: &Target, files: Vec<FileStamp>) {
    let record = CacheRecord { key: key.clone(), target: target.clone(), files };
    let Ok(text) = serde_json::to_string_pretty(&record) else {
        return;
    };
    // Atomic, like every file hashpyc writes, and private (see `read_own`); a failure (a
    // full disk) only costs a probe next time, and is warned of once at the run's end.
    if let Err(e) = crate::write::write_atomic(file, &[text.as_bytes()], 0o600, Default::default()) {
        state_write_failed(StateLost::Probes, &e);
    }
}

/// What a failed write into the state directory lost, in the order the warning names them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum StateLost {
    Probes,
    Failures,
    VerifiedPycs,
}

/// The writes into the state directory that failed in this run (a full disk after the
/// check before the run passed): what each lost, and the first reason.
static STATE_WRITE_FAILURES: std::sync::Mutex<(Vec<StateLost>, Option<String>)> =
    std::sync::Mutex::new((Vec::new(), None));

/// Record that a write into the state directory failed, for [`state_write_warning`].
pub fn state_write_failed(lost: StateLost, e: &dyn std::error::Error) {
    let mut failures = STATE_WRITE_FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    if !failures.0.contains(&lost) {
        failures.0.push(lost);
    }
    failures.1.get_or_insert_with(|| crate::pool::schedule::error_chain(e));
}

/// The one warning of a run whose writes into the state directory failed (however many
/// files and of whatever kinds), shown as the other state directory warnings are
/// (`HASHPYC_STATE_DIR` set, or `-v`), and not for a directory already reported unusable
/// before the run; None when every write succeeded.
pub fn state_write_warning(verbose: bool) -> Option<String> {
    let (mut lost, reason) =
        std::mem::take(&mut *STATE_WRITE_FAILURES.lock().unwrap_or_else(|e| e.into_inner()));
    let reason = reason?;
    let dir = state_dir().filter(|_| state_dir_set() || verbose)?;
    if state_dir_problem(&dir).is_some() {
        return None;
    }
    lost.sort_unstable();
    let names: Vec<&str> = lost
        .iter()
        .map(|l| match l {
            StateLost::Probes => "the interpreter probes",
            StateLost::Failures => "the compile failures and warnings",
            StateLost::VerifiedPycs => "the pycs found good",
        })
        .collect();
    let names = match names.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => return None,
    };
    Some(format!(
        "the state directory {} cannot be written ({reason}): {names} of this run are not remembered; set \
         HASHPYC_STATE_DIR to a writable directory, or HASHPYC_NO_STATE=1 to do without one",
        crate::report::ticked(&dir)
    ))
}

/// The files of the state directory not taken this run (`io::read_own`): their paths, and
/// the first with its reason.
type Refused = (Vec<PathBuf>, Option<(PathBuf, crate::io::Untrusted)>);
static STATE_REFUSED: std::sync::Mutex<Refused> = std::sync::Mutex::new((Vec::new(), None));

/// Record that the file `path` of the state directory was not taken, for
/// [`state_refused_warning`].
pub fn state_file_refused(path: &Path, why: crate::io::Untrusted) {
    let mut refused = STATE_REFUSED.lock().unwrap_or_else(|e| e.into_inner());
    if !refused.0.iter().any(|p| p == path) {
        refused.0.push(path.to_path_buf());
    }
    refused.1.get_or_insert_with(|| (path.to_path_buf(), why));
}

/// The one warning of a run that found files of the state directory others could have
/// written, and so did not take them (however many): on a filesystem that keeps no Unix
/// permissions (a file created there to tell shows it), so that every run starts Python
/// again and reads every pyc whole while the files are written again each time, that and
/// the way out; else the files found (made writable, or left by another user), which this
/// run wrote again where it needed them. A warning with or without `-v`: nothing else
/// says why a run that should start no Python does, every time. None when none was refused.
pub fn state_refused_warning() -> Option<String> {
    let (paths, first) = std::mem::take(&mut *STATE_REFUSED.lock().unwrap_or_else(|e| e.into_inner()));
    let (file, why) = first?;
    let dir = state_dir()?;
    let files = match paths.len() {
        0 | 1 => format!("{} {why}", crate::report::ticked(&file)),
        n => format!("{} {why}; {n} files in all", crate::report::ticked(&file)),
    };
    Some(match crate::write::IgnoredPermissions::of(&dir) {
        Some(ignored) => format!(
            "the state directory {} cannot be trusted: {}, so none of its files is taken, as any user could \
             have written them, and every run starts Python again and reads every pyc whole; set \
             HASHPYC_STATE_DIR to a directory on a filesystem with Unix permissions, mount this one with {}, or \
             set HASHPYC_NO_STATE=1 to do without one",
            crate::report::ticked(&dir),
            ignored.finding(),
            ignored.mount_options()
        ),
        None => format!(
            "the state directory {} holds files other users could have written, which were not taken \
             ({files}): what they remembered is learnt again and written anew, readable by this user only; if \
             the state directory is shared with other users, set HASHPYC_STATE_DIR to one of your own, or \
             HASHPYC_NO_STATE=1 to do without one",
            crate::report::ticked(&dir)
        ),
    })
}

/// hashpyc's state directory: interpreter probes and remembered compile failures (not the
/// bytecode cache, which is `--cache`). `$HASHPYC_STATE_DIR`, else
/// `$XDG_CACHE_HOME/hashpyc`, else `~/.cache/hashpyc`. `None`
/// when `HASHPYC_NO_STATE` (or `HASHPYC_NO_CACHE`) is on, or no home is known.
pub fn state_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if crate::env::is_on(crate::env::NO_STATE) || crate::env::is_on(crate::env::NO_CACHE) {
        return None;
    }
    if let Some(dir) = set("HASHPYC_STATE_DIR") {
        // Set where no shell expands `~` (a Dockerfile's ENV), as HASHPYC_CACHE is. With no
        // home directory known, none (`compile` and `check` warn of it).
        return crate::layout::expand_home(Path::new(&dir)).ok();
    }
    // A relative one is invalid and to be ignored (the XDG Base Directory specification):
    // it put the state in whatever directory the run was in, the tree checked included.
    if let Some(dir) = set("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Some(PathBuf::from(dir).join("hashpyc"));
    }
    // `~/.cache`, with `~` as a shell finds it: HOME, else the password database; none when
    // that home directory does not exist (sbuild and pbuilder point HOME at a directory that
    // does not exist, so that a build writing there shows): never created, home and all.
    crate::layout::home_dir().filter(|h| h.is_dir()).map(|h| h.join(".cache").join("hashpyc"))
}

/// Whether `HASHPYC_STATE_DIR` names the state directory (set and not empty): its problems
/// are warnings, the default location's only under `-v`.
pub fn state_dir_set() -> bool {
    std::env::var_os("HASHPYC_STATE_DIR").is_some_and(|v| !v.is_empty())
}

/// The state directory when it is this user's (see [`foreign`]): the one whose probes and
/// remembered failures a run reads and writes. One that cannot be written is still read
/// (a state directory an image's build filled, in `docker run --read-only`).
pub fn own_state_dir() -> Option<PathBuf> {
    state_dir().filter(|d| foreign(d).is_none())
}

/// Why `dir` is not this user's to keep state in, or None when it is (or does not exist
/// yet, or is root's): another user's directory (a `sudo` that kept `HOME`, a `HASHPYC_STATE_DIR` in
/// someone else's tree), or one reached through a symbolic link another user made. That
/// user could move what a run as root writes there anywhere, and what a run would read
/// back there is not taken anyway (`io::read_own`).
fn foreign(dir: &Path) -> Option<String> {
    if let Some(uid) = crate::io::link_of_another_user(dir) {
        return Some(format!("it is a symbolic link of uid {uid}, not of this user"));
    }
    foreign_owner(dir).map(|uid| format!("it belongs to uid {uid}, not to this user"))
}

/// The owner of `dir` when that is another user than this one and root (root's directory
/// is no other user's: root may do anything anyway).
pub fn foreign_owner(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let meta = std::fs::metadata(dir).ok()?;
    (meta.uid() != me && meta.uid() != 0).then_some(meta.uid())
}

/// Why the state directory `dir` cannot be used, or None when it can: it is created when
/// missing (as the first probe would create it), and must be a directory hashpyc may
/// write in. Probes and remembered failures written to an unusable one are dropped.
pub fn state_dir_problem(dir: &Path) -> Option<String> {
    let reason = |e: &std::io::Error| {
        let r = crate::io::io_reason(e);
        let mut c = r.chars();
        c.next().map(|f| f.to_lowercase().chain(c).collect()).unwrap_or(r)
    };
    if let Some(owner) = foreign(dir) {
        return Some(owner);
    }
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Some("not a directory".into()),
        Ok(_) => {
            use std::os::unix::ffi::OsStrExt;
            let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
            // SAFETY: access reads the NUL-terminated path only.
            let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
            (!ok).then(|| reason(&std::io::Error::last_os_error()))
        }
        // Missing, or a parent cannot be searched or is no directory.
        Err(_) => std::fs::create_dir_all(dir).err().map(|e| format!("cannot create it: {}", reason(&e))),
    }
}

/// A release of CPython as the built-in table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownVersion {
    pub minor: (u8, u8),
    pub magic_number: u16,
    pub hash: HashVariant,
}

/// Magic numbers of each CPython release line (final releases; pre-releases differ),
/// each checked against a real interpreter of that version by the integration tests.
pub const KNOWN: &[KnownVersion] = &[
    KnownVersion { minor: (3, 7), magic_number: 3394, hash: HashVariant::Sip24 },
    KnownVersion { minor: (3, 8), magic_number: 3413, hash: HashVariant::Sip24 },
    KnownVersion { minor: (3, 9), magic_number: 3425, hash: HashVariant::Sip24 },
    KnownVersion { minor: (3, 10), magic_number: 3439, hash: HashVariant::Sip24 },
    KnownVersion { minor: (3, 11), magic_number: 3495, hash: HashVariant::Sip13 },
    KnownVersion { minor: (3, 12), magic_number: 3531, hash: HashVariant::Sip13 },
    KnownVersion { minor: (3, 13), magic_number: 3571, hash: HashVariant::Sip13 },
    KnownVersion { minor: (3, 14), magic_number: 3627, hash: HashVariant::Sip13 },
    KnownVersion { minor: (3, 15), magic_number: 3666, hash: HashVariant::Sip13 },
];

/// The magic numbers a CPython release line used over its life, for naming the version of
/// a pyc. Ranges per `importlib/_bootstrap_external.py`'s history; finals are in `KNOWN`.
pub fn version_of_magic(magic: Magic) -> Option<(u8, u8)> {
    if !magic.is_well_formed() {
        return None;
    }
    if let Some(k) = KNOWN.iter().find(|k| k.magic_number == magic.number()) {
        return Some(k.minor);
    }
    let n = magic.number();
    // Development and pre-release magics: each line's range ends at its final magic.
    let mut prev = 3379; // 3.6's final
    for k in KNOWN {
        if n > prev && n < k.magic_number {
            return Some(k.minor);
        }
        prev = k.magic_number;
    }
    None
}

/// Whether `magic` is the magic number of a CPython release (`KNOWN`), not one a
/// development or pre-release build of its line used: a release's import refuses those
/// (`bad magic number`), though `version_of_magic` names their line.
pub fn is_release_magic(magic: Magic) -> bool {
    magic.is_well_formed() && KNOWN.iter().any(|k| k.magic_number == magic.number())
}

/// The Python a pyc with `magic` (of CPython line `a.b`) is for: `Python 3.11`, or for a
/// magic number no release has, `a development or pre-release version of Python 3.11`.
pub fn python_of_magic(magic: Magic, (a, b): (u8, u8)) -> String {
    if is_release_magic(magic) {
        format!("Python {a}.{b}")
    } else {
        format!("a development or pre-release version of Python {a}.{b}")
    }
}

/// Why a pyc of `magic`, which is not `target`'s, is not for it, naming both: another
/// line's (`a pyc for Python 3.12, not 3.11`), or of the target's own line (a pre-release's,
/// or a release's for a pre-release target), where the version alone would not say what
/// differs and the magic numbers do (`a pyc for a development or pre-release version of
/// Python 3.11 (magic 3494), not the target's magic 3495`). What `check` and `compile -n`
/// say of it, the version named as `inspect` names it ([`python_of_magic`]).
pub fn other_magic(magic: Magic, target: &Target) -> String {
    let (x, y) = (target.version.0, target.version.1);
    match version_of_magic(magic) {
        Some((a, b)) if (a, b) == (x, y) => format!(
            "a pyc for {} (magic {}), not the target's magic {}",
            python_of_magic(magic, (a, b)),
            magic.number(),
            target.magic.number()
        ),
        // X.Y: magic numbers are per minor version (and `--target` has no patch level).
        Some(line) => format!("a pyc for {}, not {x}.{y}", python_of_magic(magic, line)),
        None if before_pep552(magic) => {
            format!("a pyc of a Python older than 3.7 (magic {}), not {x}.{y}", magic.number())
        }
        None => format!("unknown magic {magic}"),
    }
}

/// Whether `magic` is one of a Python before 3.7 (PEP 552): 2.x's and 3.0–3.6's magic
/// numbers. Its header holds a modification time and a size where PEP 552 put the flags.
pub fn before_pep552(magic: Magic) -> bool {
    let n = magic.number();
    (3000..=3379).contains(&n) || (20121..=62211).contains(&n)
}

/// The versions `KNOWN` covers, for messages: "CPython 3.7 to 3.15".
fn known_range() -> String {
    match (KNOWN.first(), KNOWN.last()) {
        (Some(first), Some(last)) => {
            format!("CPython {}.{} to {}.{}", first.minor.0, first.minor.1, last.minor.0, last.minor.1)
        }
        _ => "no CPython version".to_string(),
    }
}

/// A target from the built-in table, for `check --target X.Y`.
pub fn known_target(spec: &str) -> Result<Target, TargetError> {
    let unknown = || TargetError::UnknownVersion { spec: spec.to_string(), known: known_range() };
    // Only X.Y: a pyc depends on the minor version alone (`3.12.1` is `--target 3.12`).
    let numbers: Vec<Option<u8>> = spec.split('.').map(|n| n.parse().ok()).collect();
    let minor: (u8, u8) = match numbers[..] {
        [Some(major), Some(minor)] => (major, minor),
        [Some(major), Some(minor), ..] => {
            return Err(TargetError::NotMinorVersion {
                spec: spec.to_string(),
                example: format!("{major}.{minor}"),
                known: known_range(),
            });
        }
        _ => {
            let newest = KNOWN.iter().map(|k| k.minor).max().unwrap_or((3, 7));
            return Err(TargetError::NotMinorVersion {
                spec: spec.to_string(),
                example: format!("{}.{}", newest.0, newest.1),
                known: known_range(),
            });
        }
    };
    if KNOWN.first().is_some_and(|oldest| minor < oldest.minor) {
        return Err(TargetError::TargetTooOld { spec: spec.to_string(), known: known_range() });
    }
    let k = KNOWN.iter().find(|k| k.minor == minor).ok_or_else(unknown)?;
    Ok(Target {
        executable: PathBuf::from(format!("(built-in table: CPython {spec})")),
        version: (minor.0, minor.1, 0),
        hexversion: 0,
        magic: Magic::from_number(k.magic_number),
        cache_tag: format!("cpython-{}{}", minor.0, minor.1),
        hash: k.hash,
        marshal_version: 0,
        flag_ref_top: true,
        gil_disabled: false,
        sys_version: String::new(),
        abiflags: String::new(),
        settings: RunSettings::default(),
        identity: None,
        unconfirmed: false,
        files: Vec::new(),
    })
}

/// Names for `--python` values in messages.
pub fn display_name(name: &OsString) -> String {
    name.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_table_is_ordered_and_keyed_by_variant() {
        for pair in KNOWN.windows(2) {
            assert!(pair[0].minor < pair[1].minor && pair[0].magic_number < pair[1].magic_number);
        }
        for k in KNOWN {
            let want = if k.minor >= (3, 11) { HashVariant::Sip13 } else { HashVariant::Sip24 };
            assert_eq!(k.hash, want, "{:?}", k.minor);
        }
    }

    #[test]
    fn magic_to_version() {
        assert_eq!(version_of_magic(Magic::from_number(3495)), Some((3, 11)));
        assert_eq!(version_of_magic(Magic::from_number(3490)), Some((3, 11)));
        assert!(is_release_magic(Magic::from_number(3495)) && !is_release_magic(Magic::from_number(3494)));
        assert_eq!(version_of_magic(Magic::from_number(3000)), None);
        assert_eq!(version_of_magic(Magic([0xa7, 0x0d, 0, 0])), None);
    }

    #[test]
    fn known_target_rejects_unknown() {
        assert!(known_target("3.12").is_ok());
        assert!(matches!(known_target("3.16"), Err(TargetError::UnknownVersion { .. })));
        assert!(matches!(known_target("3.6"), Err(TargetError::TargetTooOld { .. })));
        assert!(matches!(known_target("3"), Err(TargetError::NotMinorVersion { .. })));
        assert!(
            matches!(known_target("3.12.1"), Err(TargetError::NotMinorVersion { example, .. }) if example == "3.12")
        );
    }

    #[test]
    fn version_requests() {
        let parse = |s: &str| VersionRequest::parse(OsStr::new(s)).map(|r| r.to_string());
        for ok in ["3", "3.12", "3.12.1", "3.13t", "3.7", "3.14d", "3.14td"] {
            assert_eq!(parse(ok).as_deref(), Some(ok));
        }
        // uv's other spellings of one CPython version.
        for (spelled, ok) in [
            ("312", "3.12"),
            ("cp312", "3.12"),
            ("cpython3.12", "3.12"),
            ("cpython@3.12", "3.12"),
            ("CPython@3.12.1", "3.12.1"),
            ("cpython-3.12", "3.12"),
            ("cp313t", "3.13t"),
            ("3.13+freethreaded", "3.13t"),
            ("3.13+gil", "3.13"),
            ("3.14+debug", "3.14d"),
            ("cpython-3.14+debug", "3.14d"),
            ("cp314d", "3.14d"),
            ("3.14+gil+debug", "3.14d"),
            ("3.14+freethreaded+debug", "3.14td"),
        ] {
            assert_eq!(parse(spelled).as_deref(), Some(ok), "{spelled}");
        }
        for refused in [
            ">=3.12",
            "cpython>=3.12,<3.13",
            "==3.12",
            "3.12 ",
            " 3.12",
            "  ",
            "cpython-3.12.3-linux-x86_64-gnu",
        ] {
            assert!(refused_request(refused).is_some(), "{refused}");
        }
        for taken in ["3.12", "312", "cpython@3.12", "cpython-3.12", "python3.12", "./a b ", "cpython"] {
            assert_eq!(refused_request(taken), None, "{taken}");
        }
        // Names and paths stay names and paths; Python 2 and spellings uv does not take.
        for not in [
            "python3.12",
            "./3.12",
            "3t",
            "3.13.1t",
            "4.0",
            "3.",
            "3.x",
            "",
            "3.12.1.1",
            "3d",
            "3.14.1d",
            "3.14d+debug",
        ] {
            assert_eq!(parse(not), None, "{not}");
        }
        let names = |s: &str| VersionRequest::parse(OsStr::new(s)).unwrap().names();
        assert_eq!(names("3.12.1"), ["python3.12", "python3", "python"]);
        assert_eq!(names("3"), ["python3", "python"]);
        assert_eq!(names("3.13t"), ["python3.13t"]);
        assert_eq!(names("3.14d"), ["python3.14d"]);
        assert_eq!(names("3.14+freethreaded+debug"), ["python3.14td"]);
        // Versions hashpyc cannot target are refused before PATH is searched.
        for old in ["2", "2.7", "2.7.18", "3.6", "3.6.15"] {
            let request = VersionRequest::parse(OsStr::new(old)).unwrap();
            let err = find_version(&request, Duration::from_secs(1), None).err().unwrap();
            assert_eq!(
                err.to_string(),
                format!("`{old}` asks for Python {old}; hashpyc needs CPython 3.7 or newer (PEP 552)")
            );
        }
    }

    /// The range in `--target`'s errors follows the table: adding a version to `KNOWN` must
    /// not leave the message naming the old newest one.
    #[test]
    fn target_errors_name_the_table_range() {
        let (first, last) = (KNOWN[0].minor, KNOWN[KNOWN.len() - 1].minor);
        let range = format!("CPython {}.{} to {}.{}", first.0, first.1, last.0, last.1);
        let past = format!("{}.{}", last.0, last.1 + 1);
        for spec in [past.as_str(), "3", "3.12.1"] {
            let message = known_target(spec).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains(&range), "{spec}: {message}");
        }
    }

    #[test]
    fn probe_output_parsing() {
        let exe = Path::new("/x/python");
        let py27 = "hashpyc-probe\nimplementation=cpython\nversion=2.7.18\nhexversion=34017264\nend\n";
        assert!(matches!(parse_probe(exe, py27, ""), Err(TargetError::TooOld { .. })));
        let pypy = "hashpyc-probe\nimplementation=pypy\nversion=3.10.14\nhexversion=1\nend\n";
        assert!(matches!(parse_probe(exe, pypy, ""), Err(TargetError::NotCPython { .. })));
        let junk = "hello\n";
        assert!(matches!(parse_probe(exe, junk, ""), Err(TargetError::NotPython { .. })));
        // A launcher's line before the probe's answer is named, not the whole answer shown.
        let banner = format!("\n activating\t...\n{}", py27.replace("2.7.18", "3.12.1"));
        assert!(matches!(
            parse_probe(exe, &banner, ""),
            Err(TargetError::LauncherPrinted { line, .. }) if line == " activating\\t..."
        ));
    }

    /// An interpreter newer than the built-in table (a 3.16 pre-release, magic 3700 here)
    /// works through its probe: its magic and hash variant come from the probe, and it is
    /// compiled the safe way (a fresh fork per file) until validated.
    #[test]
    fn future_version_works_through_the_probe() {
        let exe = Path::new("/x/python3.16");
        let magic = Magic::from_number(3700);
        assert_eq!(version_of_magic(magic), None);
        let hash = pyc::hex(&pyc::source_hash(HashVariant::Sip13, magic, PROBE_SOURCE));
        let out = format!(
            "hashpyc-probe\nimplementation=cpython\nversion=3.16.0\nhexversion=51380384\n\
             magic={}\ncache_tag=cpython-316\nprobe_hash={hash}\nmarshal_version=6\n\
             flag_ref_top=0\ngil_disabled=0\nend\n",
            pyc::hex(&magic.0)
        );
        let t = parse_probe(exe, &out, "").expect("a 3.16 probe is accepted");
        assert_eq!((t.minor(), t.magic, t.hash), ((3, 16), magic, HashVariant::Sip13));
        assert_eq!(t.cache_tag, "cpython-316");
        assert!(!t.flag_ref_top);
        if crate::env::choice(crate::env::ISOLATION).is_none() {
            assert_eq!(t.isolation(), Isolation::ForkEach);
        }
        // A probe hash that neither variant gives is refused rather than guessed.
        let bad = out.replace(&hash, "0000000000000000");
        assert!(matches!(parse_probe(exe, &bad, ""), Err(TargetError::UnknownHash { .. })));
    }

    /// A version manager's variable set empty (`PYENV_ROOT=`) is unset: its directory is
    /// the default under the home directory, for the error's list and a launcher's key
    /// alike, never one relative to the working directory.
    #[test]
    fn an_empty_manager_variable_is_unset() {
        let dirs = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let env = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into());
            ManagerDirs::from_env(&env).installs().map(|(m, d)| (m, d.unwrap_or_default()))
        };
        let defaults = [
            ("pyenv", PathBuf::from("/h/.pyenv/versions")),
            ("asdf", PathBuf::from("/h/.asdf/installs/python")),
            ("mise", PathBuf::from("/h/.local/share/mise/installs/python")),
            ("uv", PathBuf::from("/h/.local/share/uv/python")),
        ];
        assert_eq!(dirs(&[("HOME", "/h")]), defaults);
        let empty = [
            ("HOME", "/h"),
            ("PYENV_ROOT", ""),
            ("ASDF_DATA_DIR", ""),
            ("MISE_DATA_DIR", ""),
            ("UV_PYTHON_INSTALL_DIR", ""),
            ("XDG_DATA_HOME", ""),
        ];
        assert_eq!(dirs(&empty), defaults);
        let set = [
            ("HOME", "/h"),
            ("PYENV_ROOT", "/p"),
            ("ASDF_DATA_DIR", "/a"),
            ("MISE_DATA_DIR", "/m"),
            ("XDG_DATA_HOME", "/x"),
        ];
        assert_eq!(
            dirs(&set),
            [
                ("pyenv", PathBuf::from("/p/versions")),
                ("asdf", PathBuf::from("/a/installs/python")),
                ("mise", PathBuf::from("/m/installs/python")),
                ("uv", PathBuf::from("/x/uv/python")),
            ]
        );
        // No home directory and nothing set: none, not a relative `.pyenv`.
        assert!(dirs(&[("HOME", "")]).iter().all(|(_, d)| d.as_os_str().is_empty()));
    }
}
