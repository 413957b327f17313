//! Test harness: real CPython interpreters (discovered once), temporary trees, and the
//! real `hashpyc` binary.
//!
//! Interpreters come from `HASHPYC_TEST_PYTHONS` (paths separated by `:` or whitespace),
//! else from pyenv's versions, the interpreters `provision-pythons` unpacked
//! (`$HASHPYC_PY_CACHE`, default `~/.cache/hashpyc-pythons`) and `python3.X` on PATH.
//! A version that is missing is reported as SKIPPED on the real stderr (not captured by
//! the test runner); with `HASHPYC_REQUIRE_PYTHONS=3.7,3.8,…` (or `all`) it fails instead.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Every CPython line the tests cover.
pub const VERSIONS: &[(u8, u8)] =
    &[(3, 7), (3, 8), (3, 9), (3, 10), (3, 11), (3, 12), (3, 13), (3, 14), (3, 15)];

#[derive(Debug, Clone)]
pub struct Python {
    pub path: PathBuf,
    pub minor: (u8, u8),
    pub version: String,
}

impl Python {
    pub fn label(&self) -> String {
        format!("CPython {} ({})", self.version, self.path.display())
    }

    /// A command for this interpreter with no PYTHON* variable from the environment, so
    /// that what CPython itself does (write pycs on import…) is what a user gets.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.path);
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"PYTHON") {
                c.env_remove(k);
            }
        }
        c
    }

    /// Run a snippet; panics with its stderr when it fails.
    pub fn run(&self, args: &[&str], cwd: &Path) -> String {
        let out = self.cmd().args(args).current_dir(cwd).output().expect("run python");
        assert!(
            out.status.success(),
            "{} {:?} failed:\n{}",
            self.label(),
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn probe_version(path: &Path) -> Option<(String, String)> {
    let out = Command::new(path)
        .args(["-c", "import sys; print('%d.%d.%d %s' % (tuple(sys.version_info[:3]) + (getattr(getattr(sys, 'implementation', None), 'name', 'cpython'),)))"])
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (version, implementation) = text.split_once(' ')?;
    Some((version.to_string(), implementation.to_string()))
}

fn candidates() -> Vec<PathBuf> {
    if let Ok(list) = std::env::var("HASHPYC_TEST_PYTHONS") {
        return list
            .split(|c: char| c == ':' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    let mut out = Vec::new();
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let pyenv_root = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| {
            Command::new("pyenv")
                .arg("root")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
        .unwrap_or_else(|| home.join(".pyenv"));
    if let Ok(rd) = std::fs::read_dir(pyenv_root.join("versions")) {
        let mut dirs: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            for name in ["python3", "python"] {
                let p = d.join("bin").join(name);
                if p.is_file() {
                    out.push(p);
                    break;
                }
            }
        }
    }
    let cache = std::env::var_os("HASHPYC_PY_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".cache"))
            .join("hashpyc-pythons")
    });
    for &(a, b) in VERSIONS {
        out.push(cache.join(format!("{a}.{b}")).join(format!("usr/bin/python{a}.{b}")));
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        for minor in 7..=16 {
            let p = dir.join(format!("python3.{minor}"));
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

/// All interpreters found, keyed by (major, minor); the first found per version wins.
pub fn pythons() -> &'static BTreeMap<(u8, u8), Python> {
    static FOUND: OnceLock<BTreeMap<(u8, u8), Python>> = OnceLock::new();
    FOUND.get_or_init(|| {
        let mut map = BTreeMap::new();
        for path in candidates() {
            if !path.is_file() {
                continue;
            }
            let Some((version, implementation)) = probe_version(&path) else {
                continue;
            };
            if implementation != "cpython" {
                continue;
            }
            let mut parts = version.split('.').map(|p| p.parse::<u8>().unwrap_or(0));
            let minor = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            map.entry(minor).or_insert(Python { path, minor, version });
        }
        map
    })
}

/// Whether the tests run as root (`id -u`): what only root may do (give a file to another
/// user) is tested then, and skipped visibly otherwise.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Write to the real stderr, past the test runner's capture.
/// Every command line that has a help of its own, the top level first (`hashpyc -h`).
pub const COMMANDS: &[&[&str]] = &[
    &[],
    &["compile"],
    &["check"],
    &["inspect"],
    &["cache"],
    &["cache", "stats"],
    &["cache", "prune"],
    &["cache", "clean"],
    &["completions"],
];

pub fn visible(msg: &str) {
    let mut err = std::io::stderr();
    let _ = err.write_all(format!("{msg}\n").as_bytes());
}

fn required(minor: (u8, u8)) -> bool {
    let Ok(list) = std::env::var("HASHPYC_REQUIRE_PYTHONS") else {
        return false;
    };
    if list == "all" {
        // Every version the suite covers; 2.7 and 3.6 (used to test refusals) stay optional.
        return VERSIONS.contains(&minor);
    }
    list.split(',').any(|v| v.trim() == format!("{}.{}", minor.0, minor.1))
}

/// The interpreter for a version, or a visible skip (a failure when it is required).
pub fn python_or_skip(minor: (u8, u8), test: &str) -> Option<&'static Python> {
    match pythons().get(&minor) {
        Some(p) => Some(p),
        None => {
            let msg = format!("SKIPPED {test}: no CPython {}.{} found", minor.0, minor.1);
            if required(minor) {
                panic!("{msg}, and HASHPYC_REQUIRE_PYTHONS requires it");
            }
            visible(&msg);
            None
        }
    }
}

/// Runs `hashpyc ARGS --respect-gitignore src/z.py src` (ARGS: the subcommand and its
/// flags) while `src/z.py` vanishes between the walk that finds it and the stage that reads
/// it: the two roots nest, so every source is planned (or checked) after the walk ends, and
/// the walk waits on `src/sub/.ignore`, a FIFO, until this thread (the FIFO's writer) has
/// removed `src/z.py` and closed it.
pub fn run_while_z_vanishes(tree: &Tree, py: &Python, args: &[&str]) -> Run {
    tree.write("src/z.py", "z = 1\n");
    let run = tree.hashpyc().args(args).python(py).args(["--respect-gitignore", "src/z.py", "src"]);
    run_paused_at_fifo(run, &tree.path("src/sub/.ignore"), || {
        std::fs::remove_file(tree.path("src/z.py")).unwrap()
    })
}

/// Whether strace runs here (tests that hold a system call with it), or a visible skip
/// naming `test`.
pub fn strace_or_skip(test: &str) -> bool {
    let found = std::process::Command::new("strace").arg("-V").output().is_ok_and(|o| o.status.success());
    if !found {
        visible(&format!("SKIPPED {test}: no strace"));
    }
    found
}

/// Any CPython 3.7+ (for a test of hashpyc itself rather than of a version), or a visible
/// skip naming `test`.
pub fn any_python(test: &str) -> Option<&'static Python> {
    let py = pythons().values().find(|p| p.minor >= (3, 7));
    if py.is_none() {
        visible(&format!("SKIPPED {test}: no CPython 3.7+"));
    }
    py
}

/// uv, for tests of what it writes: `HASHPYC_TEST_UV`, else `uv` on PATH; or a visible skip
/// naming `test`.
pub fn uv(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("HASHPYC_TEST_UV").map(PathBuf::from).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("uv"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        visible(&format!("SKIPPED {test}: no uv (set HASHPYC_TEST_UV or put uv on PATH)"));
    }
    found
}

/// One `#[test]` per CPython version: `per_python!(name, |py: &Python| { … })`, optionally
/// limited to versions from `min`: `per_python!(name, min = (3, 11), |py| …)`.
#[macro_export]
macro_rules! per_python {
    ($name:ident, $body:expr) => {
        $crate::per_python!($name, min = (3, 7), $body);
    };
    ($name:ident, min = $min:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            fn run(minor: (u8, u8)) {
                if minor < $min {
                    return;
                }
                let test = concat!(module_path!(), "::", stringify!($name));
                if let Some(py) = $crate::harness::python_or_skip(minor, test) {
                    let f: &dyn Fn(&$crate::harness::Python) = &$body;
                    f(py);
                }
            }
            #[test]
            fn py37() {
                run((3, 7))
            }
            #[test]
            fn py38() {
                run((3, 8))
            }
            #[test]
            fn py39() {
                run((3, 9))
            }
            #[test]
            fn py310() {
                run((3, 10))
            }
            #[test]
            fn py311() {
                run((3, 11))
            }
            #[test]
            fn py312() {
                run((3, 12))
            }
            #[test]
            fn py313() {
                run((3, 13))
            }
            #[test]
            fn py314() {
                run((3, 14))
            }
            #[test]
            fn py315() {
                run((3, 15))
            }
        }
    };
}

/// A probe cache shared by all tests (probing is what it caches; tests of the cache
/// itself use their own directory).
pub fn shared_cache_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hashpyc-probe-cache");
    std::fs::create_dir_all(&d).expect("cache dir");
    d
}

/// Give `target`, the `CARGO_TARGET_DIR` of a release build of this package from another
/// directory (the wheel built from the sdist, pre-commit's `cargo install`), the compiled
/// dependencies of the build these tests come from, so that only hashpyc itself is
/// compiled there: on a fresh CI machine each of those builds otherwise compiles every
/// dependency again (minutes of both cores, while other tests run). Cargo still decides
/// what is fresh (the units' hashes match only for the same versions, features and
/// profile), and files are copied, never linked, so a rebuild there cannot touch this
/// build. Does nothing when `target` already has a release directory, or when the tests
/// are not a release build.
pub fn seed_cargo_target(target: &Path) {
    let exe = std::env::current_exe().expect("test binary path");
    // target/release/deps/it-…: the profile directory is two levels up.
    let Some(profile) = exe.parent().and_then(Path::parent) else { return };
    let dest = target.join("release");
    if profile.file_name() != Some(OsStr::new("release")) {
        return;
    }
    // Tests running at once seed the same directory: one at a time (the staging name below
    // is per process), and only the first one copies.
    static SEEDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = SEEDING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if dest.exists() {
        return;
    }
    // Filled beside its final name and renamed into place: an interrupted copy is never
    // taken for a finished one.
    let staging = target.join(format!("release.seeding-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let ours = |name: &OsStr| {
        let name = name.to_string_lossy();
        ["hashpyc-", "libhashpyc-", "it-"].iter().any(|p| name.starts_with(p))
    };
    for sub in ["deps", "build", ".fingerprint"] {
        let Ok(entries) = std::fs::read_dir(profile.join(sub)) else { continue };
        let paths: Vec<PathBuf> =
            entries.filter_map(Result::ok).filter(|e| !ours(&e.file_name())).map(|e| e.path()).collect();
        std::fs::create_dir_all(staging.join(sub)).expect("seed directory");
        if paths.is_empty() {
            continue;
        }
        let status = Command::new("cp").arg("-a").arg("-t").arg(staging.join(sub)).args(&paths).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "copying {} into {}",
            profile.join(sub).display(),
            staging.display()
        );
    }
    if std::fs::rename(&staging, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
}

/// A temporary directory holding a tree of files.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        Tree { dir: tempfile::Builder::new().prefix("hashpyc-test-").tempdir().expect("tempdir") }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        p
    }

    /// Write an executable script (mode 755).
    pub fn write_executable(&self, rel: impl AsRef<Path>, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.write(rel, content);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        p
    }

    /// A wrapper around `py` that logs every start, for asserting that a run started no
    /// Python: `(wrapper path, number of starts so far)`.
    pub fn counting_python(&self, py: &Python) -> (PathBuf, impl Fn() -> usize + use<>) {
        let log = self.path("starts.log");
        let wrapper = self.write_executable(
            "bin/python-wrapper",
            format!("#!/bin/sh\necho start >> '{}'\nexec '{}' \"$@\"\n", log.display(), py.path.display()),
        );
        (wrapper, move || std::fs::read_to_string(&log).unwrap_or_default().lines().count())
    }

    /// `hashpyc compile --format json --python WRAPPER ARGS` (`wrapper` from
    /// [`Tree::counting_python`], its probe remembered) with the state directory `state`,
    /// over a tree whose every file to do is a failure that directory remembers: asserts
    /// that the run started one Python, the worker confirming the launcher's remembered probe
    /// before a remembered failure is reported (README: *Target interpreter*), and compiled
    /// nothing (every failure it reports is remembered, its summary counts no compile).
    /// `starts`: the wrapper's count. The run, for the caller's own assertions.
    pub fn remembered_through_launcher(
        &self,
        state: &Path,
        (wrapper, starts): (&Path, &dyn Fn() -> usize),
        args: &[&str],
    ) -> Run {
        let before = starts();
        let run = self
            .hashpyc()
            .env("HASHPYC_STATE_DIR", state)
            .args(["compile", "--format", "json", "--python"])
            .arg(wrapper)
            .args(args)
            .run();
        assert_eq!(starts(), before + 1, "Python started but the confirming worker:\n{}", run.stderr);
        let lines: Vec<serde_json::Value> =
            run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let failures: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "failure").collect();
        assert!(!failures.is_empty(), "no failure reported:\n{}", run.stdout);
        for f in &failures {
            assert_eq!(f["remembered"], true, "compiled, not remembered: {f}");
        }
        let summary = lines.iter().find(|l| l["type"] == "summary").expect("a summary");
        assert_eq!(summary["compiled"], 0, "{summary}");
        run
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        std::fs::read(self.path(rel)).expect("read")
    }

    /// `hashpyc ARGS` run in this tree.
    pub fn hashpyc(&self) -> Hashpyc {
        Hashpyc::new(self.root())
    }

    /// Every file under the tree whose name ends with `.pyc`, relative, sorted.
    pub fn pycs(&self) -> Vec<PathBuf> {
        files_with_suffix(self.root(), ".pyc")
    }
}

pub fn files_with_suffix(root: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(p);
            } else if p.as_os_str().as_bytes().ends_with(suffix.as_bytes()) {
                out.push(p.strip_prefix(root).expect("under root").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `n` small distinct modules `dir/m00.py`, `dir/m01.py`, … in `tree`.
pub fn write_modules(tree: &Tree, dir: &str, n: usize) {
    for i in 0..n {
        tree.write(format!("{dir}/m{i:02}.py"), format!("def f{i}():\n    return {i}\n"));
    }
}

/// The count just before `marker` in a `HASHPYC_TRACE` summary ("12 suspects recompiled").
pub fn trace_number(stderr: &str, marker: &str) -> u64 {
    let at = stderr.find(marker).unwrap_or_else(|| panic!("no `{marker}` in the trace: {stderr}"));
    let head = stderr[..at].trim_end_matches([' ', '(']);
    let digits = &head[head.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
    digits.parse().unwrap_or_else(|_| panic!("no count before `{marker}`: {stderr}"))
}

/// `HASHPYC_FULL_TESTS=1`: the tests that compile a whole stdlib use every file instead
/// of a sample (see [`in_sample`]).
pub fn full_tests() -> bool {
    std::env::var_os("HASHPYC_FULL_TESTS").is_some_and(|v| v == "1")
}

/// Whether the `i`th (in path order) of `py`'s stdlib files is compiled by a stdlib-wide
/// test: every file with `HASHPYC_FULL_TESTS=1`, else one in `every`, the offset moving
/// with the version so that the versions together cover every kind of file.
pub fn in_sample(py: &Python, i: usize, every: usize) -> bool {
    full_tests() || i % every == usize::from(py.minor.1) % every
}

/// Copy `.py` files (only) from `from` to `to`, keeping relative paths.
pub fn copy_py_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> usize {
    let mut n = 0;
    for rel in files_with_suffix(from, ".py") {
        if skip(&rel) || rel.components().any(|c| c.as_os_str() == "__pycache__") {
            continue;
        }
        let src = from.join(&rel);
        if !std::fs::metadata(&src).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&src, &dst).expect("copy");
        n += 1;
    }
    n
}

/// Where an S3 tier sends its requests when a test names no endpoint: a closed loopback
/// port (the discard port), never the default AWS host a missing `AWS_ENDPOINT_URL` means.
pub const CLOSED_ENDPOINT: &str = "http://127.0.0.1:9";

/// The shared cache's URL and token: a developer's own must not reach a test's build.
const CACHE_VARS: &[&str] = &["HASHPYC_CACHE_URL", "HASHPYC_CACHE_TOKEN"];

/// The proxies ureq reads (both spellings): with one, even a loopback cache request goes
/// to the proxy's host (ureq does not bypass it for 127.0.0.1 unless NO_PROXY says so).
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// What the AWS credential chain and endpoint choice of the binary read (src/cache/remote/
/// aws.rs, s3.rs), beyond `AWS_ENDPOINT_URL`.
const AWS_READ: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

/// Keep the `hashpyc` that `cmd` runs (itself, or a script or hook that runs it) away from
/// the default AWS host and the developer's own cache and AWS setup: of [`CACHE_VARS`],
/// [`AWS_READ`] and every `AWS_*` variable of this process, only what the test set on
/// `cmd` reaches it; `AWS_ENDPOINT_URL` is [`CLOSED_ENDPOINT`] unless the test set it, and
/// without a `HOME` of the test's the AWS shared files are paths that do not exist (not
/// the developer's `~/.aws`). Applied when the command is spawned, so a test's
/// `env_remove` of these variables still ends at the closed endpoint. (Tests need not
/// remove them themselves.)
/// The proxies are left to scripts that install packages; [`Hashpyc::run`] removes them.
pub fn guard_network(cmd: &mut Command) {
    let set: std::collections::HashSet<std::ffi::OsString> =
        cmd.get_envs().filter(|(_, v)| v.is_some()).map(|(k, _)| k.to_os_string()).collect();
    let is_set = |k: &str| set.contains(OsStr::new(k));
    let inherited: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("AWS_"))
        .collect();
    for k in CACHE_VARS.iter().chain(AWS_READ).copied().chain(inherited.iter().map(String::as_str)) {
        if !is_set(k) {
            cmd.env_remove(k);
        }
    }
    if !is_set("AWS_ENDPOINT_URL") {
        cmd.env("AWS_ENDPOINT_URL", CLOSED_ENDPOINT);
    }
    if !is_set("HOME") {
        for (k, file) in [("AWS_SHARED_CREDENTIALS_FILE", "credentials"), ("AWS_CONFIG_FILE", "config")] {
            if !is_set(k) {
                cmd.env(k, format!("/nonexistent/hashpyc-tests/.aws/{file}"));
            }
        }
    }
}

/// A `hashpyc` invocation being built; [`guard_network`] applies when it runs.
pub struct Hashpyc {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a command built by hand (another binary, another user, a shell around hashpyc),
/// kept to loopback addresses as every test run is (`guard_network`).
pub fn run_command(cmd: &mut Command) -> Run {
    guard_network(cmd);
    cmd.output().expect("run the command").into()
}

impl Run {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "exit status\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// `cmd` run where `old` would run, with `old`'s changes to the environment.
fn copy_dir_and_env(old: &Command, mut cmd: Command) -> Command {
    if let Some(dir) = old.get_current_dir() {
        cmd.current_dir(dir);
    }
    for (k, v) in old.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd
}

impl Hashpyc {
    pub fn new(cwd: &Path) -> Hashpyc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashpyc"));
        cmd.current_dir(cwd)
            .env("HASHPYC_STATE_DIR", shared_cache_dir())
            // No run records pycs as found good (`src/verified.rs`): whether a later run
            // reads a pyc whole would depend on how long the steps of a test took. The
            // tests of that memory set it themselves.
            .env("HASHPYC_SETTLE_SECONDS", "1000000000")
            .env("NO_COLOR", "1")
            .env_remove("FORCE_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("HASHPYC_PYTHON")
            .env_remove("HASHPYC_JOBS")
            .env_remove("HASHPYC_TIMEOUT")
            .env_remove("HASHPYC_ISOLATION")
            .env_remove("HASHPYC_ORDER")
            .env_remove("HASHPYC_VERIFY")
            .env_remove("HASHPYC_CONFIG")
            .env_remove("HASHPYC_NO_CONFIG")
            .env_remove("PYTHONPYCACHEPREFIX")
            .env_remove("PYTHONOPTIMIZE");
        Hashpyc { cmd, stdin: None }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    pub fn python(self, py: &Python) -> Self {
        self.arg("--python").arg(&py.path)
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    /// Run under `ulimit -v kib`, killed (status 137) after `secs`: a run that would read a
    /// huge file whole aborts (status 134) and one that would block for ever ends, instead of
    /// exhausting the machine or hanging the suite. Call it last, before [`Hashpyc::run`].
    pub fn bounded(self, kib: u64, secs: u64) -> Self {
        self.in_shell(&format!("ulimit -v {kib} && exec timeout -s KILL {secs} \"$@\""))
    }

    /// Run under `sh`'s `ulimit LIMITS` (`-f 200`: in 512-byte blocks in `sh`; `-n 64`).
    /// Call it last, before [`Hashpyc::run`].
    pub fn ulimit(self, limits: &str) -> Self {
        self.in_shell(&format!("ulimit {limits} && exec \"$@\""))
    }

    /// Run as root without the capabilities that let root read and enter any directory
    /// (`setpriv` drops them from the bounding set), so that permissions apply to the run
    /// while it still reaches root's interpreters; false, said, where that cannot be done.
    /// Call it last, before [`Hashpyc::run`].
    pub fn without_root_reads(self, test: &str) -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let drop = ["--bounding-set=-dac_override,-dac_read_search", "--", "true"];
        if !root || !Command::new("setpriv").args(drop).status().is_ok_and(|s| s.success()) {
            visible(&format!("SKIPPED {test}: needs root and setpriv to drop capabilities"));
            return None;
        }
        Some(self.in_shell("exec setpriv --bounding-set=-dac_override,-dac_read_search -- \"$@\""))
    }

    /// The command run by `sh -c SCRIPT`, which gets it as `"$@"`.
    /// Run inside `cgroup` (its pids limit applies to the run and every process and thread
    /// it starts). Call it last, before [`Hashpyc::run`].
    pub fn in_cgroup(self, cgroup: &PidsCgroup) -> Self {
        let procs = cgroup.procs();
        self.in_shell(&format!("echo $$ > '{}' && exec \"$@\"", procs.display()))
    }

    /// Run by `program args…`, a command that runs the rest of its arguments (`unshare
    /// --pid --fork --mount-proc`, under which the run is process 1). Call it last,
    /// before [`Hashpyc::run`].
    pub fn run_by(self, program: &str, args: &[&str]) -> Self {
        let quoted: Vec<String> = std::iter::once(program)
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        self.in_shell(&format!("exec {} \"$@\"", quoted.join(" ")))
    }

    /// `command`, a command line a message of hashpyc suggested (`hashpyc check 'my dir'`),
    /// run by `shell -c` (`sh`, `bash`) as it is when pasted into a terminal, with this
    /// binary first on PATH as `hashpyc`, in this run's directory and environment (its
    /// arguments are dropped): whether the suggestion works as printed.
    pub fn pasted(mut self, shell: &str, command: &str) -> Self {
        let bin = Path::new(env!("CARGO_BIN_EXE_hashpyc")).parent().expect("the binary's directory");
        let mut path = bin.as_os_str().to_owned();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        self.cmd.env("PATH", path);
        let old = &self.cmd;
        let mut cmd = Command::new(shell);
        cmd.arg("-c").arg(command);
        Hashpyc { cmd: copy_dir_and_env(old, cmd), stdin: self.stdin }
    }

    fn in_shell(self, script: &str) -> Self {
        let old = &self.cmd;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg("sh").arg(old.get_program()).args(old.get_args());
        Hashpyc { cmd: copy_dir_and_env(old, cmd), stdin: self.stdin }
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// [`Hashpyc::run`], sending the run the signal `sig` once `when` holds (polled; the
    /// run ending first fails the test).
    pub fn run_signalled(self, sig: i32, when: impl FnMut() -> bool) -> Run {
        self.run_signalled_then(sig, when, || ())
    }

    /// [`Hashpyc::run_signalled`], calling `then` once the signal is sent.
    pub fn run_signalled_then(
        mut self,
        sig: i32,
        mut when: impl FnMut() -> bool,
        then: impl FnOnce(),
    ) -> Run {
        self.cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        guard_network(&mut self.cmd);
        for k in PROXY_VARS {
            if !self.cmd.get_envs().any(|(n, v)| n == OsStr::new(k) && v.is_some()) {
                self.cmd.env_remove(k);
            }
        }
        let mut child = self.cmd.spawn().expect("spawn hashpyc");
        while !when() {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it was signalled");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: signalling our own child, still running (not reaped).
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
        then();
        child.wait_with_output().expect("wait hashpyc").into()
    }

    /// [`Hashpyc::run`] with stdout a pipe whose reading end is closed before the run
    /// starts (`hashpyc … | head` once head has exited): every write to it fails (EPIPE);
    /// `stdout` is empty.
    pub fn run_stdout_closed(mut self) -> Run {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors we pass.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
        // SAFETY: both descriptors were just made and are owned here only.
        let (reader, writer) = unsafe {
            use std::os::fd::FromRawFd;
            (std::os::fd::OwnedFd::from_raw_fd(fds[0]), std::os::fd::OwnedFd::from_raw_fd(fds[1]))
        };
        drop(reader);
        self.cmd.stdout(Stdio::from(writer));
        let mut run = self.run_with_stdout_set();
        run.stdout.clear();
        run
    }

    /// [`Hashpyc::run`] with stdout `/dev/full`: every write to it fails (ENOSPC, as on a
    /// full disk); `stdout` is empty.
    pub fn run_stdout_full(mut self) -> Run {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
        self.cmd.stdout(Stdio::from(full));
        self.run_with_stdout_set()
    }

    pub fn run(mut self) -> Run {
        self.cmd.stdout(Stdio::piped());
        self.run_with_stdout_set()
    }

    fn run_with_stdout_set(mut self) -> Run {
        self.cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        self.cmd.stderr(Stdio::piped());
        guard_network(&mut self.cmd);
        let proxies: Vec<&str> = PROXY_VARS
            .iter()
            .copied()
            .filter(|k| !self.cmd.get_envs().any(|(n, v)| n == OsStr::new(k) && v.is_some()))
            .collect();
        for k in proxies {
            self.cmd.env_remove(k);
        }
        let mut child = self.cmd.spawn().expect("spawn hashpyc");
        if let Some(data) = self.stdin.take() {
            let mut sin = child.stdin.take().expect("stdin");
            std::thread::spawn(move || {
                let _ = sin.write_all(&data);
            });
        }
        child.wait_with_output().expect("wait hashpyc").into()
    }
}

/// Runs `run` with a pause made on purpose: `fifo` (made here, a FIFO named as an ignore
/// file, `.ignore`, in a directory a `--respect-gitignore` walk lists) stops the walk when it
/// reads it, after it has listed that directory; `meanwhile` changes the tree, then the FIFO
/// is closed (an empty ignore file) and the walk goes on. No timing: the writer's open
/// succeeds only once the walk has opened the FIFO, and the walk reads until it is closed.
pub fn run_paused_at_fifo(run: Hashpyc, fifo: &Path, meanwhile: impl FnOnce()) -> Run {
    use std::os::unix::fs::OpenOptionsExt;
    if !fifo.exists() {
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path only.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    }
    let child = std::thread::spawn(move || run.run());
    // Opening the FIFO to write without blocking fails (ENXIO) until the walk opens it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let writer = loop {
        match std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo) {
            Ok(w) => break w,
            Err(_) if std::time::Instant::now() < deadline && !child.is_finished() => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("the walk never read `{}`: {e}", fifo.display()),
        }
    };
    meanwhile();
    drop(writer);
    child.join().unwrap()
}

/// Runs `run`, sending it the signal `sig` while its walk is paused at `fifo` (made here, as
/// [`run_paused_at_fifo`] makes it), then closes the FIFO and the walk goes on: the signal
/// arrives at a known point of the walk, with no timing.
pub fn run_signalled_at_fifo(run: Hashpyc, fifo: &Path, sig: i32) -> Run {
    use std::os::unix::fs::OpenOptionsExt;
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    // Opening the FIFO to write without blocking fails (ENXIO) until the walk opens it.
    let writer = std::cell::RefCell::new(None);
    let open = || std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(fifo);
    run.run_signalled_then(
        sig,
        || open().map(|w| *writer.borrow_mut() = Some(w)).is_ok(),
        || drop(writer.take()),
    )
}

/// A Python helper that writes what `py_compile.compile(src, cfile, dfile,
/// invalidation_mode=CHECKED_HASH)` produces for each `src\0cfile\0dfile\n` record on
/// stdin, each in a fresh fork of a `python -I` process that has imported py_compile (so
/// every file is compiled as in its own fresh process). `optimize` levels are written to
/// `cfile` + `.opt-N`. Prints one line per file: `ok` or the error.
pub const PY_COMPILE_REF: &str = r#"
import os, sys, py_compile
levels = [int(x) for x in sys.argv[1].split(",")]
data = sys.stdin.buffer.read()
for rec in data.split(b"\n"):
    if not rec:
        continue
    src, cfile, dfile = [os.fsdecode(x) for x in rec.split(b"\0")]
    pid = os.fork()
    if pid == 0:
        try:
            for lvl in levels:
                out = cfile if lvl == levels[0] else "%s.opt%d" % (cfile, lvl)
                py_compile.compile(src, out, dfile or None, doraise=True, optimize=lvl,
                                   invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(("ok" if status == 0 else "error") + "\n")
"#;

/// Compile `sources` (relative to `cwd`) with py_compile as references; returns the
/// reference pyc bytes (or None where py_compile failed), in order.
pub fn py_compile_refs(
    py: &Python,
    cwd: &Path,
    sources: &[PathBuf],
    dfiles: Option<&[PathBuf]>,
) -> Vec<Option<Vec<u8>>> {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let mut input = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        input.extend_from_slice(s.as_os_str().as_bytes());
        input.push(0);
        input.extend_from_slice(out_dir.path().join(format!("{i}.pyc")).as_os_str().as_bytes());
        input.push(0);
        if let Some(d) = dfiles {
            input.extend_from_slice(d[i].as_os_str().as_bytes());
        }
        input.push(b'\n');
    }
    let mut child = py
        .cmd()
        .args(["-I", "-c", PY_COMPILE_REF, "0"])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let mut sin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let out = child.wait_with_output().expect("py_compile refs");
    assert!(out.status.success(), "py_compile helper failed: {}", String::from_utf8_lossy(&out.stderr));
    (0..sources.len()).map(|i| std::fs::read(out_dir.path().join(format!("{i}.pyc"))).ok()).collect()
}

/// Compare two directories' pycs: returns the relative paths that differ or exist in
/// only one of them.
pub fn diff_pycs(a: &Path, b: &Path) -> Vec<PathBuf> {
    let left = files_with_suffix(a, ".pyc");
    let right = files_with_suffix(b, ".pyc");
    let mut out: Vec<PathBuf> = Vec::new();
    for p in &left {
        match (std::fs::read(a.join(p)), std::fs::read(b.join(p))) {
            (Ok(x), Ok(y)) if x == y => {}
            _ => out.push(p.clone()),
        }
    }
    out.extend(right.iter().filter(|p| !left.contains(p)).cloned());
    out
}

/// The real worker script, for fault-injection stand-ins (`HASHPYC_WORKER_SCRIPT`).
pub fn worker_script() -> &'static str {
    include_str!("../../src/pool/worker.py")
}

/// The real probe script, run by `target::run_probe` with `-s -S -c`.
pub fn probe_script() -> &'static str {
    include_str!("../../src/probe.py")
}

/// The interpreter's own standard library directory.
pub fn stdlib_dir(py: &Python) -> PathBuf {
    let out = Command::new(&py.path)
        .args(["-I", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .expect("python");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Every stdout line as JSON (panics on one that is not), the `notice` objects.
pub fn notices(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stdout}"))
        })
        .filter(|o| o["type"] == "notice")
        .collect()
}

/// A cgroup of its own with a pids limit, as `docker run --pids-limit` gives a container:
/// on the cgroup v2 hierarchy when it offers the `pids` controller, else on v1's `pids`
/// hierarchy; None where neither can be made (not root, a read-only /sys/fs/cgroup).
/// Removed when dropped (its processes have ended by then).
pub struct PidsCgroup(PathBuf);

impl PidsCgroup {
    /// [`PidsCgroup::new`], or a visible skip of `test` where none can be made.
    pub fn new_or_skip(test: &str) -> Option<PidsCgroup> {
        let cgroup = PidsCgroup::new();
        if cgroup.is_none() {
            visible(&format!("SKIPPED {test}: needs a pids cgroup (root, a writable /sys/fs/cgroup)"));
        }
        cgroup
    }

    pub fn new() -> Option<PidsCgroup> {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mut v2 = None;
        let mut v1 = None;
        for line in mountinfo.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(dash) = fields.iter().position(|f| *f == "-") else { continue };
            let (Some(point), Some(fstype)) = (fields.get(4), fields.get(dash + 1)) else { continue };
            let options = fields.get(dash + 3).copied().unwrap_or("");
            match *fstype {
                "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(point)),
                "cgroup" if v1.is_none() && options.split(',').any(|o| o == "pids") => {
                    v1 = Some(PathBuf::from(point))
                }
                _ => {}
            }
        }
        let name = format!(
            "hashpyc-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let v2 = v2.filter(|root| {
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            controllers.split_whitespace().any(|c| c == "pids")
                && std::fs::write(root.join("cgroup.subtree_control"), "+pids").is_ok()
        });
        for root in [v2, v1].into_iter().flatten() {
            let dir = root.join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                if dir.join("pids.max").exists() {
                    return Some(PidsCgroup(dir));
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        None
    }

    /// Its `cgroup.procs`: a process that writes its pid there moves in (whatever the limit).
    pub fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }

    /// How many processes and threads it holds.
    pub fn current(&self) -> usize {
        std::fs::read_to_string(self.0.join("pids.current"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Allow at most `n` processes and threads in it.
    pub fn set_max(&self, n: usize) {
        std::fs::write(self.0.join("pids.max"), n.to_string()).expect("write pids.max");
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Whether `stderr` holds a `hint:` line other than `check`'s hint naming the `compile` that
/// fixes its findings (``hint: run `hashpyc compile …` to fix``, given when no other hint
/// applies): what a test of another hint's absence means by "no hint".
pub fn has_other_hint(stderr: &str) -> bool {
    stderr.lines().any(|l| l.starts_with("hint:") && !l.starts_with("hint: run `hashpyc compile"))
}
