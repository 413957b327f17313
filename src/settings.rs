//! From clap's raw arguments to validated, resolved settings: paths (stdin lists
//! included), interpreters probed, layouts per target, embedded-path rules.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::cli::{CheckArgs, CheckMode, CompileArgs, InputArgs, LayoutArgs, SelectArgs, TargetArgs};
use crate::compile::CompileSettings;
use crate::embed::Embed;
use crate::layout::{self, Layout};
use crate::pyc::{Accept, HashMode};
use crate::target::{self, Target};
use crate::walk::{self, WalkOptions};

/// The default number of workers and walker threads.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Paths from arguments, `-` expanded from stdin; `.` when none.
pub fn resolve_paths(paths: &[OsString], input: &InputArgs) -> Result<Vec<PathBuf>, Error> {
    let mut out = Vec::new();
    let mut stdin_used = false;
    for p in paths {
        if p == "-" {
            if stdin_used {
                continue;
            }
            stdin_used = true;
            let stdin = std::io::stdin();
            let list = walk::read_path_list(stdin.lock(), input.null)?;
            out.extend(list.into_iter().map(PathBuf::from));
        } else {
            out.push(PathBuf::from(p));
        }
    }
    if out.is_empty() && !stdin_used {
        out.push(PathBuf::from("."));
    }
    Ok(out)
}

pub fn walk_options(sel: &SelectArgs, jobs: usize) -> Result<WalkOptions, Error> {
    let exclude_regex = match &sel.exclude_regex {
        Some(re) => Some(
            regex::bytes::Regex::new(re)
                .map_err(|e| Error::Usage(format!("invalid --exclude-regex: {e}")))?,
        ),
        None => None,
    };
    for g in &sel.exclude {
        globset::Glob::new(g.trim_start_matches('!'))
            .map_err(|e| Error::Usage(format!("invalid --exclude glob `{g}`: {e}")))?;
    }
    let limit_symlinks = match &sel.limit_symlinks {
        Some(dir) => Some(std::fs::canonicalize(dir).map_err(|e| {
            Error::Usage(format!("--limit-symlinks `{}`: {}", dir.display(), crate::io::io_reason(&e)))
        })?),
        None => None,
    };
    Ok(WalkOptions {
        respect_ignore: sel.respect_gitignore,
        skip_hidden: sel.skip_hidden,
        exclude_globs: sel.exclude.clone(),
        exclude_regex,
        max_depth: if sel.no_recursion { Some(1) } else { sel.max_depth },
        follow: sel.follow,
        limit_symlinks,
        collect_pycache: false,
        threads: jobs,
    })
}

/// The interpreters to target, probed (through the cache).
pub fn probe_targets(args: &TargetArgs, timeout: Option<Duration>) -> Result<Vec<Arc<Target>>, Error> {
    let names: Vec<OsString> =
        if args.python.is_empty() { vec![OsString::from("python3")] } else { args.python.clone() };
    let cache = target::state_dir();
    let mut targets: Vec<Arc<Target>> = Vec::new();
    for name in names {
        let exe = target::resolve_executable(&name)?;
        let t = target::probe(
            &exe,
            timeout.unwrap_or(Duration::from_secs(60)).max(Duration::from_secs(10)),
            cache.as_deref(),
        )?;
        // The same interpreter twice (a name and its path) is one target.
        if !targets.iter().any(|o| {
            o.magic == t.magic && o.cache_tag == t.cache_tag && same_file(&o.executable, &t.executable)
        }) {
            targets.push(Arc::new(t));
        }
    }
    Ok(targets)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Optimization levels: ascending, deduplicated, `[0]` by default.
pub fn levels(layout: &LayoutArgs) -> Vec<u8> {
    let mut l = layout.optimize.clone();
    if l.is_empty() {
        l.push(0);
    }
    l.sort_unstable();
    l.dedup();
    l
}

/// Where pycs go for each target: `-b`, `--pycache-prefix`, `PYTHONPYCACHEPREFIX` (as
/// CPython 3.8+ honours it), else `__pycache__`.
pub fn layouts(args: &LayoutArgs, targets: &[Arc<Target>]) -> Result<Vec<Layout>, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let env_prefix = std::env::var_os("PYTHONPYCACHEPREFIX").filter(|v| !v.is_empty());
    targets
        .iter()
        .map(|t| {
            if args.legacy {
                return Ok(Layout::Legacy);
            }
            let supports_prefix = t.minor() >= (3, 8);
            if let Some(prefix) = &args.pycache_prefix {
                if !supports_prefix {
                    return Err(Error::Usage(format!(
                        "--pycache-prefix needs Python 3.8 or newer; `{}` is {}",
                        t.executable.display(),
                        t.version_string()
                    )));
                }
                return Ok(Layout::Prefix(layout::absolute(prefix, &cwd)));
            }
            match &env_prefix {
                Some(p) if supports_prefix => Ok(Layout::Prefix(layout::absolute(Path::new(p), &cwd))),
                _ => Ok(Layout::Pycache),
            }
        })
        .collect()
}

pub fn compile_settings(args: &CompileArgs) -> Result<CompileSettings, Error> {
    let mode = match args.invalidation_mode.as_str() {
        "checked-hash" | "checked" => HashMode::Checked,
        "unchecked-hash" | "unchecked" => HashMode::Unchecked,
        "timestamp" => {
            return Err(Error::Usage(
                "--invalidation-mode timestamp is not offered: timestamp pycs go stale when a source changes twice within \
                 one second at the same size, and Python then silently runs the old code. Use checked-hash (the default) \
                 or, for images whose sources never change, unchecked-hash"
                    .into(),
            ));
        }
        other => {
            return Err(Error::Usage(format!(
                "invalid --invalidation-mode `{other}`: expected `checked-hash` or `unchecked-hash`"
            )));
        }
    };
    let levels = levels(&args.layout);
    if args.hardlink_dupes && levels.len() < 2 {
        return Err(Error::Usage(
            "--hardlink-dupes needs at least two optimization levels (e.g. -o 0 -o 1)".into(),
        ));
    }
    if !args.timeout.is_finite() || args.timeout < 0.0 {
        return Err(Error::Usage(format!("invalid --timeout {}", args.timeout)));
    }
    let timeout = (args.timeout > 0.0).then(|| Duration::from_secs_f64(args.timeout));
    let jobs = match args.jobs {
        None | Some(0) => default_jobs(),
        Some(n) => n,
    };
    let roots = resolve_paths(&args.paths, &args.input)?;
    let walk = walk_options(&args.select, jobs)?;
    let targets = probe_targets(&args.target, timeout)?;
    let layouts = layouts(&args.layout, &targets)?;
    let embed = Embed {
        ddir: args.ddir.clone(),
        strip: args.strip_prefix.clone(),
        prepend: args.prepend_prefix.clone(),
    };
    let verify = std::env::var_os("HASHPYC_VERIFY").is_some_and(|v| v == OsStr::new("1"));
    let cache = cache_settings(&args.cache)?;
    Ok(CompileSettings {
        roots,
        walk,
        targets,
        layouts,
        levels,
        mode,
        force: args.force,
        embed,
        jobs,
        timeout,
        dry_run: args.dry_run,
        hardlink_dupes: args.hardlink_dupes,
        verify,
        cache,
        warnings_as_errors: args.warnings_as_errors || args.warnings.is_some(),
        json: args.format == crate::cli::CompileFormat::Json,
    })
}

/// The bytecode cache, if one is asked for (`HASHPYC_NO_CACHE=1` turns it off like
/// `--no-cache`).
fn cache_settings(args: &crate::cli::CacheArgs) -> Result<Option<crate::cache::CacheSettings>, Error> {
    let off =
        args.no_cache || std::env::var_os("HASHPYC_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0");
    let dir = args.cache.as_ref().filter(|d| !d.as_os_str().is_empty());
    let url = args.cache_url.as_ref().filter(|u| !u.is_empty());
    if off || (dir.is_none() && url.is_none()) {
        return Ok(None);
    }
    // The local tier stores entries uncompressed unless asked: compressing costs a cold
    // build more than it saves (README, "Bytecode cache"); remote entries are always zstd.
    let compression = match std::env::var("HASHPYC_CACHE_COMPRESSION").as_deref() {
        Ok("none") | Err(_) => crate::cache::entry::Compression::None,
        Ok("zstd") => crate::cache::entry::Compression::Zstd,
        Ok(other) => {
            return Err(Error::Usage(format!(
                "invalid HASHPYC_CACHE_COMPRESSION `{other}`: expected `zstd` or `none`"
            )));
        }
    };
    let seconds = |name: &str, default: Duration| -> Result<Duration, Error> {
        match std::env::var(name) {
            Err(_) => Ok(default),
            Ok(v) => v
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| Error::Usage(format!("invalid {name} `{v}`: expected a number of seconds"))),
        }
    };
    let timeout = seconds("HASHPYC_CACHE_TIMEOUT", crate::cache::remote::DEFAULT_TIMEOUT)?;
    if let Some(u) = url {
        // A malformed URL is bad input (exit 2); trouble reaching it never is.
        crate::cache::remote::open(u, timeout).map_err(Error::Usage)?;
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    Ok(Some(crate::cache::CacheSettings {
        dir: dir.map(|d| layout::absolute(d, &cwd)),
        url: url.cloned(),
        max_size: args.cache_max_size,
        read_only: args.cache_read_only,
        compression,
        timeout,
        upload_wait: seconds("HASHPYC_CACHE_UPLOAD_WAIT", Duration::from_secs(10))?,
    }))
}

/// Resolved options of `check`.
pub struct CheckSettings {
    pub roots: Vec<PathBuf>,
    pub walk: WalkOptions,
    pub targets: Vec<Arc<Target>>,
    pub layouts: Vec<Layout>,
    pub levels: Vec<u8>,
    pub accept: Accept,
    pub stray: bool,
    pub format: crate::cli::Format,
    pub all: bool,
}

pub fn check_settings(args: &CheckArgs) -> Result<CheckSettings, Error> {
    let jobs = default_jobs();
    let roots = resolve_paths(&args.paths, &args.input)?;
    let mut walk = walk_options(&args.select, jobs)?;
    walk.collect_pycache = args.stray;
    let targets = if args.target_version.is_empty() {
        probe_targets(&args.target, None)?
    } else {
        args.target_version
            .iter()
            .map(|v| target::known_target(v).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?
    };
    let layouts = layouts(&args.layout, &targets)?;
    let accept = match args.mode {
        CheckMode::Checked => Accept::Only(HashMode::Checked),
        CheckMode::Unchecked => Accept::Only(HashMode::Unchecked),
        CheckMode::Any => Accept::AnyHash,
    };
    Ok(CheckSettings {
        roots,
        walk,
        targets,
        layouts,
        levels: levels(&args.layout),
        accept,
        stray: args.stray,
        format: args.format,
        all: args.all,
    })
}
