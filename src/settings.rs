//! From clap's raw arguments to validated, resolved settings: paths (stdin lists
//! included), interpreters probed, layouts per target, embedded-path rules.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::Error;
use crate::cli::{
    CacheArgs, CheckArgs, CheckMode, Command, CompileArgs, ConfigArgs, EmbedArgs, InputArgs, LayoutArgs,
    OutputArgs, SelectArgs, TargetArgs,
};
use crate::compile::CompileSettings;
use crate::config::{self, Config, InvalidationMode};
use crate::embed::Embed;
use crate::layout::{self, Layout};
use crate::pyc::{Accept, HashMode};
use crate::target::{self, Target};
use crate::walk::{self, WalkOptions};

/// The default number of workers and walker threads.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Merge the configuration file (`[tool.hashpyc]`) into the arguments of `compile` and
/// `check` (for `inspect`, its pycache prefix; for `cache`, its directory and limit): a key fills in a setting whose flag was given neither on the command line nor
/// by its environment variable (clap's value source tells), so the precedence is flag >
/// environment > file > built-in default. Relative paths are resolved against the file's
/// directory. With `-v`, says which file was used.
pub fn apply_config(command: &mut Command, matches: &ArgMatches) -> Result<(), Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    match command {
        Command::Compile(args) => {
            crate::env::check(crate::env::COMPILE)
                .and_then(|()| crate::env::check_choices(crate::env::COMPILE_CHOICES))
                .and_then(|()| crate::verified::settle_seconds().map(drop))
                .map_err(Error::Usage)?;
            let m = matches.subcommand_matches("compile").expect("compile matches");
            // `--no-cache-read-only` beats the environment variable, and the later of the
            // two flags wins on the command line (clap's `overrides_with` would make the
            // flag conflict with the variable instead).
            if args.cache.no_cache_read_only
                && (m.value_source("cache_read_only") != Some(ValueSource::CommandLine)
                    || m.index_of("no_cache_read_only") > m.index_of("cache_read_only"))
            {
                args.cache.cache_read_only = false;
            }
            if let Some(dir) = &mut args.cache.cache {
                *dir = expand_home_of(m, "cache", dir)?;
            }
            command_line_config_wins(&mut args.config, m);
            args.config.config_from_env = m.value_source("config") == Some(ValueSource::EnvVariable);
            from_env(&mut args.target.python_from, m, "python", "HASHPYC_PYTHON");
            from_env(&mut args.cache.cache_url_from, m, "cache_url", "HASHPYC_CACHE_URL");
            from_env(&mut args.cache.cache_from, m, "cache", "HASHPYC_CACHE");
            let json = args.format == crate::cli::CompileFormat::Json;
            let shown = args
                .cache
                .cache_url
                .as_deref()
                .filter(|_| m.value_source("cache_url") == Some(ValueSource::CommandLine));
            let early = shown.and_then(password_on_command_line);
            let c = load_config(&mut args.config, &args.output, json, &cwd, "compile", early)?;
            if m.value_source("timeout") == Some(ValueSource::EnvVariable) {
                args.timeout_from = Some(config::Origin::Env("HASHPYC_TIMEOUT"));
            }
            if let Some(c) = &c {
                let k = &mut Keys::new(m);
                let o = &c.options;
                apply_target(&mut args.target, k, c, &["python"])?;
                apply_select(&mut args.select, k, c)?;
                apply_layout(&mut args.layout, k, c)?;
                apply_cache(&mut args.cache, k, c)?;
                if k.applies("invalidation-mode", &["invalidation_mode"])
                    && let Some(mode) = o.invalidation_mode
                {
                    args.invalidation_mode = mode.flag_value().to_string();
                }
                set_flag(
                    &mut args.hardlink_dupes,
                    k,
                    "hardlink-dupes",
                    &["hardlink_dupes", "no_hardlink_dupes"],
                    o.hardlink_dupes,
                );
                apply_embed(&mut args.embed, k, c);
                if args.hardlink_dupes && !given(m, "hardlink_dupes") {
                    args.hardlink_dupes_from = Some(config::Origin::key(c, "hardlink-dupes"));
                }
                if k.applies("jobs", &["jobs"])
                    && let Some(j) = o.jobs
                {
                    args.jobs = Some(j.0);
                }
                if k.applies("timeout", &["timeout"])
                    && let Some(t) = o.timeout
                {
                    args.timeout = t.0;
                    args.timeout_from = Some(config::Origin::key(c, "timeout"));
                }
                explain_keys(&mut args.config, &args.output, json, "compile", c, k);
            }
            let mut replaced = config_variables_replaced(m, &args.config);
            if m.value_source("cache_read_only") == Some(ValueSource::EnvVariable)
                && args.cache.no_cache_read_only
                && !args.cache.cache_read_only
            {
                replaced.push(("cache_read_only", "no_cache_read_only"));
            }
            optimize_from_env(&mut args.layout, &mut args.config, &args.output, json)?;
            let by = pycache_prefix_replaced_by(&args.layout);
            // The shared cache's network variables (proxies, certificates) matter only when
            // it is used.
            let remote = args.cache.cache_url.as_deref().is_some_and(|u| !u.is_empty())
                && !args.cache.no_cache
                && !crate::env::is_on(crate::env::NO_CACHE);
            let command = if remote { Reader::Remote } else { Reader::Compile };
            explain_env(&mut args.config, &args.output, json, (command, m), &replaced, by);
            let flag = m.value_source("no_cache") == Some(ValueSource::CommandLine);
            explain_cache_off(&mut args.config, &args.output, json, &args.cache, flag);
        }
        Command::Check(args) => {
            crate::env::check(crate::env::CHECK)
                .and_then(|()| crate::verified::settle_seconds().map(drop))
                .map_err(Error::Usage)?;
            let m = matches.subcommand_matches("check").expect("check matches");
            args.compile_options_given = crate::cli::compile_options_given(m);
            // `--target X.Y` stands in for the interpreters: it cannot go with `--python`,
            // and beats `HASHPYC_PYTHON` as it beats the file's `python` (clap's
            // `conflicts_with` would count the variable as a flag).
            if !args.target_version.is_empty() {
                match m.value_source("python") {
                    Some(ValueSource::CommandLine) => {
                        return Err(Error::Usage(
                            "the argument '--target <X.Y>' cannot be used with '--python <PATH>'".into(),
                        ));
                    }
                    Some(ValueSource::EnvVariable) => args.target.python.clear(),
                    _ => {}
                }
            } else {
                from_env(&mut args.target.python_from, m, "python", "HASHPYC_PYTHON");
            }
            command_line_config_wins(&mut args.config, m);
            args.config.config_from_env = m.value_source("config") == Some(ValueSource::EnvVariable);
            let json = args.format == crate::cli::Format::Json;
            let c = load_config(&mut args.config, &args.output, json, &cwd, "check", None)?;
            if let Some(c) = &c {
                let k = &mut Keys::new(m);
                let o = &c.options;
                // `--target X.Y` stands in for the interpreters: the file's are not probed then.
                apply_target(&mut args.target, k, c, &["target_version", "python"])?;
                apply_select(&mut args.select, k, c)?;
                apply_layout(&mut args.layout, k, c)?;
                apply_embed(&mut args.embed, k, c);
                args.compile_unchecked = o.invalidation_mode == Some(InvalidationMode::UncheckedHash);
                // What `compile` writes is what `check` accepts.
                if k.applies("invalidation-mode", &["mode"])
                    && let Some(mode) = o.invalidation_mode
                {
                    args.mode = match mode {
                        InvalidationMode::CheckedHash => CheckMode::Checked,
                        InvalidationMode::UncheckedHash => CheckMode::Unchecked,
                    };
                }
                set_flag(&mut args.stray, k, "stray", &["stray", "no_stray"], o.stray);
                if k.applies("jobs", &["jobs"])
                    && let Some(j) = o.jobs
                {
                    args.jobs = Some(j.0);
                }
                explain_keys(&mut args.config, &args.output, json, "check", c, k);
            }
            let mut replaced = config_variables_replaced(m, &args.config);
            if !args.target_version.is_empty() && m.value_source("python") == Some(ValueSource::EnvVariable) {
                replaced.push(("python", "target_version"));
            }
            optimize_from_env(&mut args.layout, &mut args.config, &args.output, json)?;
            let by = pycache_prefix_replaced_by(&args.layout);
            explain_env(&mut args.config, &args.output, json, (Reader::Check, m), &replaced, by);
        }
        Command::Inspect(args) => {
            let m = matches.subcommand_matches("inspect").expect("inspect matches");
            command_line_config_wins(&mut args.config, m);
            let named_by = if m.value_source("config") == Some(ValueSource::EnvVariable) {
                "HASHPYC_CONFIG"
            } else {
                "--config"
            };
            let mut passed_over = Vec::new();
            let source = config::load(
                args.config.config.as_deref(),
                named_by,
                args.config.no_config,
                &cwd,
                &mut passed_over,
            );
            let style = crate::report::Style::resolve(args.color.color);
            // `-qq` hides warnings, as for every command.
            for w in passed_over.iter().filter(|_| matches.get_count("quiet") < 2) {
                crate::report::eprint_line(&format!("{}: {w}", style.warning()));
            }
            let c = match source? {
                config::Source::File(c) => Some(c),
                _ => None,
            };
            // Where `check` looks: the flag, else the file's keys (`legacy = true` replaces
            // the prefix and the variable, as `apply_layout` and `layouts` decide), else
            // the variable; made absolute as `layouts` makes it for `check` and `compile`,
            // so that a pyc under it is shown as their messages and `--json` show it
            // (the key's is already, against the file's directory).
            let legacy = c.as_ref().is_some_and(|c| c.options.legacy == Some(true));
            args.prefix = if let Some(p) = &args.pycache_prefix {
                Some((layout::absolute(p, &cwd), "--pycache-prefix".into()))
            } else if legacy {
                None
            } else if let Some(c) = &c
                && let Some(p) = &c.options.pycache_prefix
            {
                let from = config::Origin::key(c, "pycache-prefix").written("pycache-prefix");
                Some((c.resolve("pycache-prefix", p)?, from))
            } else {
                std::env::var_os("PYTHONPYCACHEPREFIX")
                    .filter(|p| !p.is_empty())
                    .map(|p| (layout::absolute(Path::new(&p), &cwd), "PYTHONPYCACHEPREFIX".into()))
            };
        }
        Command::Cache(cmd) => {
            use crate::cli::CacheCommand;
            let m = matches.subcommand_matches("cache").and_then(|m| m.subcommand()).map(|(_, m)| m);
            let (dir, mut limit) = match cmd {
                CacheCommand::Stats { dir, .. } | CacheCommand::Clean { dir } => (dir, None),
                CacheCommand::Prune { dir, max_size, max_size_from } => {
                    (dir, Some((max_size, max_size_from)))
                }
            };
            // `prune` without `--max-size` (or `HASHPYC_CACHE_MAX_SIZE`) prunes to the limit
            // `compile` applies: the file's `cache-max-size`, else the default (below).
            let file_limit = matches!(&limit, Some((None, _)));
            if let Some((Some(_), from)) = &mut limit {
                let env = m.is_some_and(|m| m.value_source("max_size") == Some(ValueSource::EnvVariable));
                **from = if env { "HASHPYC_CACHE_MAX_SIZE" } else { "--max-size" }.into();
            }
            if let Some(m) = m {
                command_line_config_wins(&mut dir.config, m);
            }
            let named = match dir.dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
                Some(d) => Some(match m {
                    Some(m) => expand_home_of(m, "dir", d)?,
                    None => layout::expand_home(d).map_err(Error::Usage)?,
                }),
                None => None,
            };
            if named.is_some() && m.is_some_and(|m| m.value_source("dir") == Some(ValueSource::EnvVariable)) {
                dir.dir_from = Some("HASHPYC_CACHE".into());
            }
            // The file is not needed then, unless one is named (`--config`, `HASHPYC_CONFIG`):
            // a file named is always read, its errors reported, as `compile` does.
            if named.is_some() && !file_limit && dir.config.config.is_none() {
                dir.dir = named;
                return Ok(());
            }
            let from_env = m.is_some_and(|m| m.value_source("config") == Some(ValueSource::EnvVariable));
            let named_by = if from_env { "HASHPYC_CONFIG" } else { "--config" };
            let mut passed_over = Vec::new();
            let source = config::load(
                dir.config.config.as_deref(),
                named_by,
                dir.config.no_config,
                &cwd,
                &mut passed_over,
            );
            // The global `--color` and `-q` (`-qq` hides warnings, as for every command).
            let color = matches.get_one::<crate::cli::ColorChoice>("color").copied();
            let style = crate::report::Style::resolve(color.unwrap_or(crate::cli::ColorChoice::Auto));
            for w in passed_over.iter().filter(|_| matches.get_count("quiet") < 2) {
                crate::report::eprint_line(&format!("{}: {w}", style.warning()));
            }
            let mut file_origin = None;
            let (from_file, file, shared, size) = match source? {
                config::Source::File(c) => (
                    c.options
                        .cache
                        .as_ref()
                        .map(|d| {
                            file_origin = Some(config::Origin::key(&c, "cache").written("cache"));
                            c.resolve("cache", d)
                        })
                        .transpose()?,
                    crate::report::ticked(&c.path).to_string(),
                    c.options
                        .cache_url
                        .is_some()
                        .then(|| format!("`cache-url` in {}", c.locate("cache-url"))),
                    c.options
                        .cache_max_size
                        .map(|s| (s.0, format!("`cache-max-size` in {}", c.locate("cache-max-size")))),
                ),
                _ => (None, "the configuration file".to_string(), None, None),
            };
            if let Some((max_size @ None, from)) = &mut limit {
                let (bytes, origin) = size.unwrap_or_else(|| {
                    let default = crate::cli::parse_size_arg(crate::cli::DEFAULT_CACHE_MAX_SIZE);
                    (
                        default.expect("the default size parses"),
                        "the default, as for `compile --cache`".into(),
                    )
                });
                **max_size = Some(bytes);
                **from = origin;
            }
            if named.is_some() {
                dir.dir = named;
                return Ok(());
            }
            // A shared cache alone is no directory to manage: say so rather than leave the
            // user wondering why the `cache-url` given was not enough.
            let shared = shared.or_else(|| {
                std::env::var_os("HASHPYC_CACHE_URL")
                    .filter(|u| !u.is_empty())
                    .map(|_| "HASHPYC_CACHE_URL".into())
            });
            let shared = shared.map_or(String::new(), |s| {
                format!(
                    " (`hashpyc cache` manages a local cache directory only, not the shared cache {s} names: \
                     its entries expire by the server's rules)"
                )
            });
            dir.dir_from = file_origin;
            dir.dir = Some(from_file.ok_or_else(|| {
                Error::Usage(format!(
                    "no cache directory: give --cache DIR, set HASHPYC_CACHE, or set `cache` in {file}{shared}"
                ))
            })?);
        }
        _ => {}
    }
    Ok(())
}

/// `PYTHONOPTIMIZE` as CPython reads it into `sys.flags.optimize`: unset or empty is no
/// value; an integer (C's `strtol`: leading whitespace and a sign allowed, nothing after
/// the digits) is that level; anything else, or a negative or out-of-range integer, is 1.
pub fn python_optimize(value: &std::ffi::OsStr) -> Option<u64> {
    let v = value.as_encoded_bytes();
    if v.is_empty() {
        return None;
    }
    // C's isspace: `\v` too, which `trim_ascii_start` keeps.
    let start = v.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)).unwrap_or(v.len());
    let v = &v[start..];
    let (negative, digits) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, v),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Some(1);
    }
    let n = std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u64>().ok());
    Some(match n {
        Some(0) => 0,
        Some(n) if !negative && n <= i32::MAX as u64 => n,
        _ => 1,
    })
}

/// The optimization level from `PYTHONOPTIMIZE` when neither `-o` nor the file's
/// `optimize` gives one (as `PYTHONPYCACHEPREFIX` gives the layout when neither
/// `--pycache-prefix` nor the file's key does): the level whose pycs CPython run with that
/// environment imports. Levels above 2 (`.opt-3.pyc`, which hashpyc does not write) are
/// refused. `-v` says where the level came from.
fn optimize_from_env(
    layout: &mut LayoutArgs,
    config: &mut ConfigArgs,
    output: &OutputArgs,
    json: bool,
) -> Result<(), Error> {
    let Some(raw) = std::env::var_os("PYTHONOPTIMIZE") else { return Ok(()) };
    let Some(level) = python_optimize(&raw) else { return Ok(()) };
    let shown = raw.to_string_lossy();
    let verbose = output.verbose > 0 && output.quiet == 0;
    if !layout.optimize.is_empty() {
        if verbose {
            let by = match &layout.optimize_from {
                Some(o) => o.written("optimize"),
                None => "-o on the command line".to_string(),
            };
            say(config, json, format!("setting: PYTHONOPTIMIZE={shown} (replaced by {by})"));
        }
        return Ok(());
    }
    let level = u8::try_from(level).ok().filter(|l| *l <= 2).ok_or_else(|| {
        Error::Usage(format!(
            "PYTHONOPTIMIZE={shown} is optimization level {level}, whose pycs (`.opt-{level}.pyc`) hashpyc \
             does not write: give the level with -o (0, 1 or 2), or set PYTHONOPTIMIZE to 0, 1 or 2"
        ))
    })?;
    layout.optimize = vec![level];
    layout.optimize_from = Some(config::Origin::Env("PYTHONOPTIMIZE"));
    if verbose {
        say(
            config,
            json,
            format!(
                "setting: PYTHONOPTIMIZE={shown} (optimization level {level}, as CPython reads it; -o or \
                 `optimize` replaces it)"
            ),
        );
    }
    Ok(())
}

/// A password in a URL given on the command line, which any user of the machine can read
/// in the process list (`ps`, `/proc/PID/cmdline`) for as long as the run lasts: said, not
/// refused (a CI job's runner may be the machine's only user).
fn password_on_command_line(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The user info ends at the last `@` (see `redact_url`).
    let (user_info, _) = rest.rsplit_once('@')?;
    let (_, password) = user_info.split_once(':')?;
    (!password.is_empty()).then(|| {
        "--cache-url carries a password, which any user of this machine can read in the process list \
         (`ps`) while the run lasts: give the URL in HASHPYC_CACHE_URL instead, or a bearer token in \
         HASHPYC_CACHE_TOKEN"
            .to_string()
    })
}

/// Environment variables a user may well set expecting a setting that has another name:
/// `HASHPYC_CACHE_DIR` (as uv's `UV_CACHE_DIR`) sets nothing; the bytecode cache is
/// `HASHPYC_CACHE`, hashpyc's own state directory `HASHPYC_STATE_DIR`.
fn misnamed_variables() -> Option<String> {
    std::env::var_os("HASHPYC_CACHE_DIR").filter(|v| !v.is_empty()).map(|_| {
        "HASHPYC_CACHE_DIR is not a hashpyc setting and was ignored: the bytecode cache \
         directory is HASHPYC_CACHE (or --cache DIR), hashpyc's own state directory \
         HASHPYC_STATE_DIR"
            .to_string()
    })
}

/// Variables that change what `python -m compileall` writes or refuses, which the workers
/// never see (they start with no `PYTHON*` variable but those hashpyc sets, so that the
/// bytes depend on nothing else): said, not silently dropped, with what to use instead.
/// `PYTHONOPTIMIZE` and `PYTHONPYCACHEPREFIX` are read by hashpyc itself.
fn unpassed_python_variables() -> Vec<String> {
    let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let mut said = Vec::new();
    // `error`, `error::SyntaxWarning`, `default,error::DeprecationWarning`: an entry whose
    // action is `error` (CPython matches a prefix of the action name, as `e` or `err`).
    if let Some(value) = set("PYTHONWARNINGS")
        && value.split(',').any(|entry| {
            let action = entry.split(':').next().unwrap_or_default().trim();
            !action.is_empty() && "error".starts_with(action)
        })
    {
        said.push(format!(
            "PYTHONWARNINGS={value} is not passed to the interpreters hashpyc compiles with: a compile \
             warning (an invalid escape sequence) fails the file with `-W error` (`--warnings-as-errors`), \
             as compileall under PYTHONWARNINGS=error"
        ));
    }
    if set("PYTHONNODEBUGRANGES").is_some() {
        said.push(
            "PYTHONNODEBUGRANGES is not passed to the interpreters hashpyc compiles with: the pycs keep \
             their column positions, as without it (compileall under it writes pycs without them, \
             3.11+)"
                .to_string(),
        );
    }
    if let Some(value) = set("PYTHONINTMAXSTRDIGITS") {
        said.push(format!(
            "PYTHONINTMAXSTRDIGITS={value} is not passed to the interpreters hashpyc compiles with: an \
             integer literal of more than 4 300 digits fails to compile where CPython limits them, as \
             without it"
        ));
    }
    said
}

/// The settings an interpreter runs with that hashpyc does not follow, as a launcher
/// script gives them (`exec python3.13 -O "$@"`, `PYTHONNODEBUGRANGES=1 exec …`), which
/// no variable of hashpyc's own environment does (see [`unpassed_python_variables`]): for
/// `compile`, those that change its pycs (the bytes are still that interpreter's, and the
/// bytecode cache keeps them apart); for both commands, an optimization level or a pycache
/// prefix under which it imports none of the pycs the run writes or checks, with what to
/// pass instead.
pub fn interpreter_settings_warnings(
    targets: &[Arc<Target>],
    layouts: &[Layout],
    levels: &[u8],
    command: &str,
) -> Vec<String> {
    let mut said = Vec::new();
    let (does, to) = if command == "compile" { ("writes", "write") } else { ("checks", "check") };
    for (t, layout) in targets.iter().zip(layouts) {
        let exe = crate::report::ticked(&t.executable);
        let set = &t.settings;
        if command == "compile" && set.no_debug_ranges {
            said.push(format!(
                "{exe} runs without column positions (`-X no_debug_ranges` or PYTHONNODEBUGRANGES where it \
                 starts): the pycs compiled with it have none, as its own py_compile writes them, unlike those \
                 of CPython {} started without that setting",
                t.version_string()
            ));
        }
        if command == "compile"
            && let Some(n) = set.int_max_str_digits
        {
            let limit = if n == 0 { "of any length".to_string() } else { format!("of up to {n} digits") };
            said.push(format!(
                "{exe} runs with int_max_str_digits={n} (`-X int_max_str_digits` or PYTHONINTMAXSTRDIGITS \
                 where it starts): it compiles integer literals {limit}, where CPython without that setting \
                 takes them up to 4 300 digits, so a longer literal compiles with one and fails with the other"
            ));
        }
        let level = set.optimize;
        if level > 0 && !levels.contains(&level) {
            let ours: Vec<String> = levels.iter().map(u8::to_string).collect();
            let ours = match ours.split_last() {
                Some((last, [])) => format!("level {last}"),
                Some((last, rest)) => format!("levels {} and {last}", rest.join(", ")),
                None => String::new(),
            };
            let instead = if level <= 2 {
                format!("pass `-o {level}` to {to} those")
            } else {
                "which hashpyc does not write (levels 0, 1 and 2)".to_string()
            };
            said.push(format!(
                "{exe} runs with optimization level {level} (`-O` or PYTHONOPTIMIZE where it starts), so it \
                 imports `.opt-{level}.pyc` pycs, not the {ours} pycs hashpyc {does}: {instead}"
            ));
        }
        if let Some(prefix) = &set.pycache_prefix
            && t.minor() >= (3, 8)
        {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            let theirs = layout::absolute(prefix, &cwd);
            let ours = match layout {
                Layout::Pycache => Some("in the `__pycache__` directories".to_string()),
                Layout::Prefix(p) if *p != theirs => Some(format!("under {}", crate::report::ticked(p))),
                // A legacy pyc (`<source>c`) is imported without its source, prefix or not.
                Layout::Prefix(_) | Layout::Legacy => None,
            };
            if let Some(ours) = ours {
                let (named, shown) = (crate::report::ticked(prefix), crate::report::shell_path(prefix));
                said.push(format!(
                    "{exe} runs with pycache prefix {named} (`-X pycache_prefix` or PYTHONPYCACHEPREFIX \
                     where it starts), so it looks for pycs under it, not {ours} where hashpyc {does} them: \
                     pass `--pycache-prefix {shown}` to {to} those"
                ));
            }
        }
    }
    said
}

/// The state directory, when it is set (or, under `-v`, defaults) to one that cannot be
/// used: what `command` loses, which would otherwise be lost silently (every run starting
/// Python again). The default location is not worth a warning on every run where the home
/// directory is read-only (`docker run --read-only`, a build user without a home): only
/// `-v` mentions it. `HASHPYC_NO_STATE=1`, a choice, says nothing.
fn unusable_state_dir(command: &str, verbose: bool) -> Option<String> {
    let explicit = target::state_dir_set();
    if !explicit && !verbose {
        return None;
    }
    let lost = if command == "compile" {
        "compile failures, interpreter probes and the pycs found good are not remembered, so every run \
         starts Python again and reads every pyc whole"
    } else {
        "interpreter probes and the pycs found good are not remembered, so every run starts Python again \
         and reads every pyc whole, and a missing pyc is not explained by the compile failure `compile` found"
    };
    let (dir, reason) = match target::state_dir() {
        Some(dir) => {
            let reason = target::state_dir_problem(&dir)?;
            (dir, reason)
        }
        None if crate::env::is_on(crate::env::NO_STATE) || crate::env::is_on(crate::env::NO_CACHE) => {
            return None;
        }
        // Set, but with a `~` no home directory expands.
        None if explicit => {
            let set = PathBuf::from(std::env::var_os("HASHPYC_STATE_DIR").unwrap_or_default());
            (set.clone(), layout::expand_home(&set).err()?)
        }
        // The default, under a home directory that does not exist (a packager's HOME): not
        // made, said under -v only.
        None if let Some(home) = layout::home_dir() => (
            home.join(".cache").join("hashpyc"),
            format!("the home directory {} does not exist, and is not made", crate::report::ticked(&home)),
        ),
        // The default, under a home directory that is unknown (`env -u HOME` as a user with
        // no entry in the password database).
        None => (
            PathBuf::from("~/.cache/hashpyc"),
            "the home directory is unknown: neither XDG_CACHE_HOME nor HOME is set and the user has no entry in \
             the password database"
                .to_string(),
        ),
    };
    // Another user's directory on a filesystem that keeps no Unix permissions (a CIFS or
    // vboxsf mount with `uid=`, FUSE exFAT) shows every directory so: told, as for a refused
    // file (`target::state_refused_warning`), by a file created there and removed at once,
    // when this user may write there at all.
    let ignored = target::foreign_owner(&dir)
        .filter(|_| crate::io::link_of_another_user(&dir).is_none())
        .and_then(|_| crate::write::IgnoredPermissions::of(&dir));
    Some(match ignored {
        Some(i) => format!(
            "the state directory {} cannot be used ({reason}; {}): {lost}; set HASHPYC_STATE_DIR to a \
             directory on a filesystem with Unix permissions, mount this one with {}, or set \
             HASHPYC_NO_STATE=1 to do without one",
            crate::report::ticked(&dir),
            i.finding(),
            i.mount_options()
        ),
        None => format!(
            "the state directory {} cannot be used ({reason}): {lost}; set HASHPYC_STATE_DIR to a \
             writable directory, or HASHPYC_NO_STATE=1 to do without one",
            crate::report::ticked(&dir)
        ),
    })
}

/// The configuration of a run (after warning of the files discovery passed over and saying
/// where it came from under `-v`: on stderr, or in JSON mode kept in `described` for the
/// run's output on stdout).
fn load_config(
    args: &mut ConfigArgs,
    output: &OutputArgs,
    json: bool,
    cwd: &Path,
    command: &str,
    early: Option<String>,
) -> Result<Option<Config>, Error> {
    let named_by = if args.config_from_env { "HASHPYC_CONFIG" } else { "--config" };
    let mut passed_over: Vec<String> = early.into_iter().collect();
    let source = config::load(args.config.as_deref(), named_by, args.no_config, cwd, &mut passed_over);
    passed_over.extend(misnamed_variables());
    if command == "compile" {
        passed_over.extend(unpassed_python_variables());
    }
    passed_over.extend(unusable_state_dir(command, output.verbose > 0 && output.quiet == 0));
    // Warnings first: a file passed over explains an error or an unexpected configuration.
    for w in passed_over {
        if json {
            args.described.push(w);
        } else if output.quiet < 2 {
            let style = crate::report::Style::resolve(output.color.color);
            crate::report::eprint_line(&format!("{}: {w}", style.warning()));
        }
    }
    let source = source?;
    match crate::requires_python::find(args.config.as_deref(), cwd) {
        Ok(found) => args.requires_python = found,
        // Said under -v only: a specifier that cannot be read checks nothing.
        Err(line) if output.verbose > 0 && output.quiet == 0 => {
            if json {
                args.described.push(line);
            } else {
                crate::report::eprint_line(&line);
            }
        }
        Err(_) => {}
    }
    args.discovered =
        matches!(source, config::Source::File(_) | config::Source::NotFound { .. }) && args.config.is_none();
    if output.verbose > 0 && output.quiet == 0 {
        if json {
            args.described.push(source.describe());
        } else {
            crate::report::eprint_line(&source.describe());
        }
    }
    args.in_effect = match &source {
        config::Source::File(c) => Some(crate::layout::absolute(&c.path, cwd)),
        _ => None,
    };
    Ok(match source {
        config::Source::File(c) => Some(*c),
        _ => None,
    })
}

/// Record that `id`'s value came from its environment variable `var`, for its errors.
/// `--config FILE` and `--no-config` as the precedence says: one given on the command line
/// beats the other's environment variable (`HASHPYC_NO_CONFIG=1` does not undo `--config
/// ci.toml`), and of the two on the command line the later wins.
fn command_line_config_wins(args: &mut ConfigArgs, m: &ArgMatches) {
    let on_line = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    let config_wins = match (on_line("config"), on_line("no_config")) {
        (true, true) => m.index_of("config") > m.index_of("no_config"),
        (true, false) => true,
        _ => false,
    };
    if config_wins {
        args.no_config = false;
    } else if args.no_config {
        args.config = None;
    }
}

/// `HASHPYC_CONFIG` or `HASHPYC_NO_CONFIG` set but beaten by the other setting (as
/// [`command_line_config_wins`] decided), with the flag that beat it, for `-v`.
fn config_variables_replaced(m: &ArgMatches, args: &ConfigArgs) -> Vec<(&'static str, &'static str)> {
    let from_env = |id: &str| m.value_source(id) == Some(ValueSource::EnvVariable);
    let mut replaced = Vec::new();
    if from_env("config") && args.config.is_none() {
        replaced.push(("config", "no_config"));
    }
    if from_env("no_config") && !args.no_config && m.value_source("config") == Some(ValueSource::CommandLine)
    {
        replaced.push(("no_config", "config"));
    }
    replaced
}

/// `dir`, the value of flag `id`, with a leading `~/` expanded; with no home directory
/// known, an error naming the variable (`HASHPYC_CACHE`) or the flag that gave it.
fn expand_home_of(m: &ArgMatches, id: &str, dir: &Path) -> Result<PathBuf, Error> {
    layout::expand_home(dir).map_err(|reason| {
        if m.value_source(id) == Some(ValueSource::EnvVariable) {
            Error::Usage(format!("invalid HASHPYC_CACHE: {reason}"))
        } else {
            Error::Usage(format!("invalid value for --cache: {reason}"))
        }
    })
}

fn from_env(origin: &mut Option<config::Origin>, m: &ArgMatches, id: &str, var: &'static str) {
    if m.value_source(id) == Some(ValueSource::EnvVariable) {
        *origin = Some(config::Origin::Env(var));
    }
}

/// Whether `id`'s value came from the command line or its environment variable (as
/// opposed to its default, or nothing).
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// A boolean key fills in its flag unless the flag or one that turns it off (`ids`) was
/// given.
fn set_flag(flag: &mut bool, k: &mut Keys, key: &'static str, ids: &[&'static str], value: Option<bool>) {
    if k.applies(key, ids)
        && let Some(v) = value
    {
        *flag = v;
    }
}

/// What became of each key of the configuration file, for `-v`: the flag (or environment
/// variable) that replaced it, if any. A key the command never asks about is one it does
/// not use.
struct Keys<'a> {
    m: &'a ArgMatches,
    outcome: Vec<(&'static str, Option<&'static str>)>,
}

impl<'a> Keys<'a> {
    fn new(m: &'a ArgMatches) -> Self {
        Keys { m, outcome: Vec::new() }
    }

    /// Whether the file's `key` applies: none of `ids` (its flag, and the flags that
    /// replace or turn it off) came from the command line or the environment.
    fn applies(&mut self, key: &'static str, ids: &[&'static str]) -> bool {
        let by = ids.iter().copied().find(|id| given(self.m, id));
        self.outcome.push((key, by));
        by.is_none()
    }
}

/// `-v`: each key of the configuration file, with its value, and whether it applies, was
/// replaced by a flag or an environment variable, or is not used by this command.
fn explain_keys(args: &mut ConfigArgs, output: &OutputArgs, json: bool, command: &str, c: &Config, k: &Keys) {
    if output.verbose == 0 || output.quiet > 0 {
        return;
    }
    let mut keys: Vec<(&String, &usize)> = c.options.key_lines.iter().collect();
    keys.sort_by_key(|(key, line)| (**line, key.as_str()));
    let file = crate::report::ticked(&c.path);
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    let sub = cli.find_subcommand(command);
    for (key, line) in keys {
        let written = match (key.as_str(), &c.options.cache_url) {
            // A URL may carry a password: never printed.
            ("cache-url", Some(url)) => format!("cache-url = {:?}", crate::cache::remote::redact_url(url)),
            _ => c.options.key_values.get(key).map_or_else(|| key.clone(), |v| format!("{key} = {v}")),
        };
        let status = match k.outcome.iter().find(|(k, _)| *k == key.as_str()) {
            None => format!(" (not used by `{command}`)"),
            Some((_, None)) => String::new(),
            Some((_, Some(id))) => format!(" (replaced by {})", flag_source(k.m, sub, id)),
        };
        say(args, json, format!("setting: `{written}` from {file} line {line}{status}"));
    }
}

/// What decides where pycs go instead of `PYTHONPYCACHEPREFIX`, in words, when something
/// does: the legacy layout or a `--pycache-prefix` (the flag or the file's key).
fn pycache_prefix_replaced_by(layout: &LayoutArgs) -> Option<String> {
    if layout.legacy {
        Some(
            layout
                .legacy_from
                .as_ref()
                .map_or_else(|| "-b on the command line".into(), |o| o.written("legacy = true")),
        )
    } else if layout.pycache_prefix.is_some() {
        Some(
            layout.pycache_prefix_from.as_ref().map_or_else(
                || "--pycache-prefix on the command line".into(),
                |o| o.written("pycache-prefix"),
            ),
        )
    } else {
        None
    }
}

/// `-v`: each environment variable that gave a flag its value, as it was set; one that a
/// flag (or another variable) overrode, as `replaced` says by the flags' ids, says so, and
/// so does one its own flag overrode (`HASHPYC_PYTHON` set, `--python` given), and
/// `PYTHONPYCACHEPREFIX` where `pycache_by` decides where pycs go.
fn explain_env(
    args: &mut ConfigArgs,
    output: &OutputArgs,
    json: bool,
    (reader, m): (Reader, &ArgMatches),
    replaced: &[(&str, &str)],
    pycache_by: Option<String>,
) {
    if output.verbose == 0 || output.quiet > 0 {
        return;
    }
    let cli = <crate::cli::Cli as clap::CommandFactory>::command();
    let Some(sub) = cli.find_subcommand(reader.command()) else { return };
    for arg in sub.get_arguments() {
        let id = arg.get_id().as_str();
        let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else { continue };
        let value = std::env::var_os(var).unwrap_or_default();
        // Set, but the flag itself was given: clap reads the flag and never the variable.
        let own_flag = m.value_source(id) == Some(ValueSource::CommandLine) && !value.is_empty();
        if m.value_source(id) != Some(ValueSource::EnvVariable) && !own_flag {
            continue;
        }
        // A URL may carry a password: never printed.
        let value = if long == "cache-url" {
            crate::cache::remote::redact_url(&value.to_string_lossy()).into()
        } else {
            value
        };
        // On one line, escaped as paths are (`HASHPYC_CACHE="a\nb"`).
        let value = crate::report::shown(Path::new(&value));
        let by = if own_flag {
            format!("; replaced by --{long} on the command line")
        } else {
            replaced
                .iter()
                .find(|(r, _)| *r == id)
                .map_or(String::new(), |(_, by)| format!("; replaced by {}", flag_source(m, Some(sub), by)))
        };
        say(args, json, format!("setting: {}={value} (--{long}{by})", var.to_string_lossy()));
    }
    for (var, read_by) in OTHER_VARIABLES {
        // A flag's variable for this command (`HASHPYC_NO_CACHE` of `compile --no-cache`)
        // was said above.
        if *read_by > reader || sub.get_arguments().any(|a| a.get_env() == Some(var.as_ref())) {
            continue;
        }
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            let value =
                if var.to_ascii_uppercase().ends_with("_PROXY") && !var.eq_ignore_ascii_case("NO_PROXY") {
                    crate::cache::remote::redact_url(&value.to_string_lossy()).into()
                } else {
                    value
                };
            let value = crate::report::shown(Path::new(&value));
            let by = match &pycache_by {
                Some(by) if *var == "PYTHONPYCACHEPREFIX" => format!(" (replaced by {by})"),
                _ => String::new(),
            };
            say(args, json, format!("setting: {var}={value}{by}"));
        }
    }
}

/// `-v`: a cache given (a flag, its variable or a key) but turned off by `--no-cache` or
/// `HASHPYC_NO_CACHE`, which otherwise goes unsaid.
/// `flag`: `--no-cache` was on the command line (`no_cache` is also set by its variable).
fn explain_cache_off(
    args: &mut ConfigArgs,
    output: &OutputArgs,
    json: bool,
    cache: &crate::cli::CacheArgs,
    flag: bool,
) {
    if output.verbose == 0 || output.quiet > 0 {
        return;
    }
    let by = if flag {
        "--no-cache on the command line"
    } else if crate::env::is_on(crate::env::NO_CACHE) {
        "HASHPYC_NO_CACHE"
    } else {
        return;
    };
    let mut given = Vec::new();
    if let Some(dir) = cache.cache.as_ref().filter(|d| !d.as_os_str().is_empty()) {
        given.push(format!("the directory {}", crate::report::ticked(dir)));
    }
    if let Some(url) = cache.cache_url.as_ref().filter(|u| !u.is_empty()) {
        given.push(format!("`{}`", crate::cache::remote::redact_url(url.trim())));
    }
    if !given.is_empty() {
        let verb = if given.len() > 1 { "are" } else { "is" };
        say(args, json, format!("cache: off ({by}): {} {verb} not used", given.join(" and ")));
    }
}

/// Which runs read a variable of [`OTHER_VARIABLES`] (each reads those of the readers before
/// it too), and the run `-v` describes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reader {
    Check,
    Compile,
    /// `compile` with a shared cache in use (`--cache-url`, not turned off).
    Remote,
}

impl Reader {
    fn command(self) -> &'static str {
        match self {
            Reader::Check => "check",
            Reader::Compile | Reader::Remote => "compile",
        }
    }
}

/// Environment variables that change a run without standing for a flag (secrets left out),
/// and the runs that read them.
const OTHER_VARIABLES: &[(&str, Reader)] = &[
    ("PYTHONPYCACHEPREFIX", Reader::Check),
    ("NO_COLOR", Reader::Check),
    ("FORCE_COLOR", Reader::Check),
    ("CLICOLOR_FORCE", Reader::Check),
    ("HASHPYC_NO_CACHE", Reader::Check),
    ("HASHPYC_NO_STATE", Reader::Check),
    ("HASHPYC_STATE_DIR", Reader::Check),
    ("HASHPYC_SETTLE_SECONDS", Reader::Check),
    ("HASHPYC_CACHE_COMPRESSION", Reader::Compile),
    ("HASHPYC_CACHE_TIMEOUT", Reader::Compile),
    ("HASHPYC_CACHE_UPLOAD_WAIT", Reader::Compile),
    ("HASHPYC_ISOLATION", Reader::Compile),
    ("HASHPYC_DEFERRED", Reader::Compile),
    ("HASHPYC_VERIFY", Reader::Compile),
    ("HASHPYC_TRACE", Reader::Compile),
    ("HASHPYC_ORDER", Reader::Compile),
    ("HASHPYC_WORKER_SCRIPT", Reader::Compile),
    // The shared cache's network (a proxy URL's user and password are left out).
    ("ALL_PROXY", Reader::Remote),
    ("all_proxy", Reader::Remote),
    ("HTTPS_PROXY", Reader::Remote),
    ("https_proxy", Reader::Remote),
    ("HTTP_PROXY", Reader::Remote),
    ("http_proxy", Reader::Remote),
    ("NO_PROXY", Reader::Remote),
    ("no_proxy", Reader::Remote),
    ("SSL_CERT_FILE", Reader::Remote),
    ("SSL_CERT_DIR", Reader::Remote),
];

/// `--max-depth on the command line` or `HASHPYC_JOBS`: what gave flag `id` of subcommand
/// `sub` its value.
fn flag_source(m: &ArgMatches, sub: Option<&clap::Command>, id: &str) -> String {
    let arg = sub.and_then(|s| s.get_arguments().find(|a| a.get_id() == id));
    let long = arg.and_then(|a| a.get_long()).map_or_else(|| id.replace('_', "-"), |l| l.to_string());
    match (m.value_source(id), arg.and_then(|a| a.get_env())) {
        (Some(ValueSource::EnvVariable), Some(var)) => var.to_string_lossy().into_owned(),
        _ => format!("--{long} on the command line"),
    }
}

/// One `-v` line: on stderr, or in JSON mode a notice for the run's output.
fn say(args: &mut ConfigArgs, json: bool, line: String) {
    if json {
        args.described.push(line);
    } else {
        crate::report::eprint_line(&line);
    }
}

fn apply_target(t: &mut TargetArgs, k: &mut Keys, c: &Config, ids: &[&'static str]) -> Result<(), Error> {
    if !k.applies("python", ids) {
        return Ok(());
    }
    if let Some(pythons) = &c.options.python {
        // A name is looked up on PATH; a value with a `/` is a path, relative to the file.
        t.python = pythons
            .iter()
            .map(|p| {
                if p.contains('/') {
                    c.resolve("python", Path::new(p)).map(PathBuf::into_os_string)
                } else {
                    Ok(OsString::from(p))
                }
            })
            .collect::<Result<_, _>>()?;
        t.python_from = Some(config::Origin::key(c, "python"));
        t.python_elements = (0..pythons.len()).map(|i| config::Origin::element(c, "python", i)).collect();
    }
    Ok(())
}

fn apply_select(sel: &mut SelectArgs, k: &mut Keys, c: &Config) -> Result<(), Error> {
    let o = &c.options;
    sel.config_dir = Some(c.dir.clone());
    // Each rule as written, where the key decides it.
    let written = |key: &'static str| {
        let value = c.options.key_values.get(key).map_or(String::new(), |v| format!(" = {v}"));
        config::Origin::key(c, key).written(&format!("{key}{value}"))
    };
    if o.exclude.is_some() && !given(k.m, "exclude") {
        sel.exclude_from = Some(written("exclude"));
    }
    if o.respect_gitignore == Some(true) && !given(k.m, "respect_gitignore") && !given(k.m, "no_ignore") {
        sel.respect_gitignore_from = Some(written("respect-gitignore"));
    }
    if o.skip_hidden == Some(true) && !given(k.m, "skip_hidden") && !given(k.m, "hidden") {
        sel.skip_hidden_from = Some(written("skip-hidden"));
    }
    // `--no-ignore` and `--hidden` turn the file's opt-ins off.
    set_flag(
        &mut sel.respect_gitignore,
        k,
        "respect-gitignore",
        &["respect_gitignore", "no_ignore"],
        o.respect_gitignore,
    );
    set_flag(&mut sel.skip_hidden, k, "skip-hidden", &["skip_hidden", "hidden"], o.skip_hidden);
    if k.applies("exclude", &["exclude"])
        && let Some(globs) = &o.exclude
    {
        sel.exclude = globs.iter().map(|g| g.0.clone()).collect();
        sel.exclude_base = Some(c.dir.clone());
    }
    if k.applies("exclude-regex", &["exclude_regex"])
        && let Some(re) = &o.exclude_regex
    {
        sel.exclude_regex = Some(re.0.clone());
        sel.exclude_regex_from = Some(written("exclude-regex"));
    }
    set_flag(
        &mut sel.force_exclude,
        k,
        "force-exclude",
        &["force_exclude", "no_force_exclude"],
        o.force_exclude,
    );
    if sel.force_exclude && o.force_exclude == Some(true) && !given(k.m, "force_exclude") {
        sel.force_exclude_from = Some(config::Origin::key(c, "force-exclude"));
    }
    // `--max-depth` and `-l` are alternatives: a flag for either replaces both keys.
    if k.applies("max-depth", &["max_depth", "no_recursion"]) && o.max_depth.is_some() {
        sel.max_depth = o.max_depth;
        sel.max_depth_from = Some(config::Origin::key(c, "max-depth"));
    }
    set_flag(&mut sel.no_recursion, k, "no-recursion", &["max_depth", "no_recursion"], o.no_recursion);
    set_flag(&mut sel.follow, k, "follow", &["follow", "no_follow"], o.follow);
    if k.applies("limit-symlinks", &["limit_symlinks"])
        && let Some(dir) = &o.limit_symlinks
    {
        sel.limit_symlinks = Some(c.resolve("limit-symlinks", dir)?);
        sel.limit_symlinks_from = Some(config::Origin::key(c, "limit-symlinks"));
        sel.limit_symlinks_written = Some(written("limit-symlinks"));
    }
    Ok(())
}

fn apply_layout(layout: &mut LayoutArgs, k: &mut Keys, c: &Config) -> Result<(), Error> {
    let o = &c.options;
    if k.applies("optimize", &["optimize"])
        && let Some(levels) = &o.optimize
    {
        layout.optimize = levels.iter().map(|l| l.0).collect();
        layout.optimize_from = Some(config::Origin::key(c, "optimize"));
    }
    // `-b` and `--pycache-prefix` are alternatives: a flag for either replaces both keys.
    if k.applies("legacy", &["legacy", "pycache_prefix", "no_legacy"])
        && let Some(legacy) = o.legacy
    {
        layout.legacy = legacy;
        if legacy {
            layout.legacy_from = Some(config::Origin::key(c, "legacy"));
        }
    }
    if k.applies("pycache-prefix", &["legacy", "pycache_prefix"])
        && let Some(prefix) = &o.pycache_prefix
    {
        layout.pycache_prefix = Some(c.resolve("pycache-prefix", prefix)?);
        layout.pycache_prefix_from = Some(config::Origin::key(c, "pycache-prefix"));
    }
    Ok(())
}

/// `ddir`, `strip-prefix` and `prepend-prefix`: `-d` and `-s`/`-p` are alternatives, so a
/// flag for either replaces all three keys.
fn apply_embed(embed: &mut EmbedArgs, k: &mut Keys, c: &Config) {
    let o = &c.options;
    const IDS: &[&str] = &["ddir", "strip_prefix", "prepend_prefix"];
    if k.applies("ddir", IDS) {
        if o.ddir.is_some() {
            embed.ddir_from = Some(config::Origin::key(c, "ddir"));
        }
        embed.ddir = o.ddir.clone().or(embed.ddir.take());
    }
    if k.applies("strip-prefix", IDS) {
        if o.strip_prefix.is_some() {
            embed.strip_prefix_from = Some(config::Origin::key(c, "strip-prefix"));
        }
        embed.strip_prefix = o.strip_prefix.clone().or(embed.strip_prefix.take());
    }
    if k.applies("prepend-prefix", IDS) {
        if o.prepend_prefix.is_some() {
            embed.prepend_prefix_from = Some(config::Origin::key(c, "prepend-prefix"));
        }
        embed.prepend_prefix = o.prepend_prefix.clone().or(embed.prepend_prefix.take());
    }
}

/// A warning when a configuration file's `ddir` meets a file named in a directory (as the
/// pre-commit hook names them): `ddir` is compileall's `-d`, which replaces the directory of
/// each path given, so the named `pkg/__init__.py` embeds `/app/__init__.py` where a walk
/// of the tree embeds `/app/pkg/__init__.py`, and the hook and a bare run rewrite each
/// other's pycs (`check` calls the other's stale). `prepend-prefix` embeds the same path
/// both ways. Not for `-d` on the command line (compileall's own use), nor for a file
/// named without a directory, which both ways embed alike.
fn ddir_named_warning(args: &EmbedArgs, roots: &[PathBuf]) -> Option<String> {
    let (from, ddir) = (args.ddir_from.as_ref()?, args.ddir.as_ref()?);
    let named = roots.iter().find(|r| {
        r.is_relative()
            && r.components().filter(|c| matches!(c, std::path::Component::Normal(_))).count() > 1
            && !r.components().any(|c| c == std::path::Component::ParentDir)
            && std::fs::metadata(r).is_ok_and(|m| !m.is_dir())
    })?;
    let walked: PathBuf =
        named.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
    Some(format!(
        "{} embeds {} for the named file {} (as compileall's -d, the directory of each path \
         given), where a walk of this directory embeds {}: files named by a hook and a bare \
         `hashpyc compile` rewrite each other's pycs. `prepend-prefix = \"{}\"` embeds the \
         second both ways",
        from.written(&format!("ddir = \"{}\"", ddir.display())),
        crate::report::ticked(&ddir.join(named.file_name()?)),
        crate::report::ticked(named),
        crate::report::ticked(&ddir.join(walked)),
        ddir.display(),
    ))
}

/// A warning when the prepend prefix looks like an interpreter (`-p 3.12`, `-p
/// .venv/bin/python`, as uv's `-p` means `--python`): a version request as `--python` takes
/// it (also after `pypy`, `graalpy` or `python`: `pypy3.10`, `python3.12`), a path whose
/// last directory is `bin` and whose name starts with `python`, or an executable file. Only
/// a warning: the prefix is embedded as compileall's `-p` embeds it.
fn prepend_request_warning(args: &EmbedArgs) -> Option<String> {
    let prefix = args.prepend_prefix.as_ref()?;
    let text = prefix.to_str()?;
    let version = || {
        let bare = ["pypy", "graalpy", "python"].iter().find_map(|p| {
            let head = text.get(..p.len())?;
            head.eq_ignore_ascii_case(p).then(|| &text[p.len()..])
        });
        let request = crate::target::VersionRequest::parse(std::ffi::OsStr::new(bare.unwrap_or(text)))?;
        // A bare `3` is as likely a directory's name.
        (bare.is_some() || request.names_a_minor()).then_some(())
    };
    let named_python =
        prefix.file_name().is_some_and(|n| n.to_str().is_some_and(|n| n.starts_with("python")))
            && prefix.parent().and_then(Path::file_name).is_some_and(|d| d == "bin");
    let executable = || {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(prefix).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if version().is_none() && !named_python && !executable() {
        return None;
    }
    let set = match &args.prepend_prefix_from {
        Some(o) => o.written(&format!("prepend-prefix = \"{text}\"")),
        None => format!("-p `{text}`"),
    };
    Some(format!(
        "{set} is a prepend prefix, joined to every embedded path ({}): -p is \
         --prepend-prefix, as in compileall; an interpreter is chosen with --python (`--python \
         {}`)",
        crate::report::ticked(&prefix.join("src/m.py")),
        crate::report::shell_path(prefix),
    ))
}

/// A warning when paths named below the working directory lie under a directory with a
/// configuration file of its own (`services/worker/hashpyc.toml`, named from a monorepo's
/// root as a pre-commit hook names files): one configuration applies to a run, the one
/// discovered from the working directory, so that file's targets and excludes do not
/// apply, which nothing else would say. Only for a discovered configuration (`--config`
/// chose one) and paths named; the directories a walk enters are not searched.
fn nested_config_warning(config: &ConfigArgs, roots: &[PathBuf]) -> Option<String> {
    if !config.discovered {
        return None;
    }
    let cwd = std::env::current_dir().ok()?;
    // Directories strictly below the working directory, from each named path up; for each
    // directory looked at, the file found there or above (an index into `found`).
    let mut memo = std::collections::HashMap::<PathBuf, Option<usize>>::new();
    let mut found: Vec<(PathBuf, usize)> = Vec::new();
    for root in roots {
        // (A path outside the working directory, or the working directory itself, has none.)
        let rel = match root.strip_prefix(&cwd) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) if root.is_absolute() => continue,
            Err(_) => root.clone(),
        };
        if rel.components().any(|c| c == std::path::Component::ParentDir) {
            continue;
        }
        let rel: PathBuf =
            rel.components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
        let start = if std::fs::metadata(&rel).is_ok_and(|m| m.is_dir()) {
            rel.as_path()
        } else {
            let Some(parent) = rel.parent() else { continue };
            parent
        };
        let (mut walked, mut under) = (Vec::new(), None);
        for dir in start.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            if let Some(known) = memo.get(dir) {
                under = *known;
                break;
            }
            walked.push(dir.to_path_buf());
            if let Some(file) = config::settings_file_in(dir) {
                found.push((file, 0));
                under = Some(found.len() - 1);
                break;
            }
        }
        memo.extend(walked.into_iter().map(|d| (d, under)));
        if let Some(i) = under {
            found[i].1 += 1;
        }
    }
    let ((first, n), more) = found.split_first()?;
    let dir = first.parent().unwrap_or(Path::new("."));
    let others = match more.len() {
        0 => String::new(),
        1 => format!(" (nor is {})", crate::report::ticked(&more[0].0)),
        k => format!(" (nor are {k} more such files, {} first)", crate::report::ticked(&more[0].0)),
    };
    Some(format!(
        "{} is not used for the {} named under {}{others}: a run uses one configuration, the \
         one found from the working directory; run from {}, or give that file with --config \
         (one pre-commit hook per directory with its own configuration)",
        crate::report::ticked(first),
        crate::report::plural(*n, "path", "paths"),
        crate::report::ticked(dir),
        crate::report::ticked(dir),
    ))
}

/// How the embedded path (`co_filename`) is derived, for `compile` and `check` alike.
pub fn embed(args: &EmbedArgs) -> Embed {
    Embed {
        ddir: args.ddir.clone(),
        strip: args.strip_prefix.clone(),
        prepend: args.prepend_prefix.clone(),
        strip_from: args.strip_prefix_from.as_ref().map(|o| {
            let value = args.strip_prefix.as_deref().unwrap_or(Path::new(""));
            o.written(&format!("strip-prefix = \"{}\"", value.display()))
        }),
        prepend_from: args.prepend_prefix_from.as_ref().map(|o| {
            let value = args.prepend_prefix.as_deref().unwrap_or(Path::new(""));
            o.written(&format!("prepend-prefix = \"{}\"", value.display()))
        }),
    }
}

fn apply_cache(cache: &mut CacheArgs, k: &mut Keys, c: &Config) -> Result<(), Error> {
    let o = &c.options;
    // `--no-cache` turns off both tiers: the file's are not even looked at.
    if k.applies("cache", &["cache", "no_cache"])
        && let Some(dir) = &o.cache
    {
        cache.cache = Some(c.resolve("cache", dir)?);
        cache.cache_from = Some(config::Origin::key(c, "cache"));
    }
    if k.applies("cache-url", &["cache_url", "no_cache"]) && o.cache_url.is_some() {
        cache.cache_url.clone_from(&o.cache_url);
        cache.cache_url_from = Some(config::Origin::key(c, "cache-url"));
    }
    set_flag(
        &mut cache.cache_read_only,
        k,
        "cache-read-only",
        &["cache_read_only", "no_cache_read_only"],
        o.cache_read_only,
    );
    if k.applies("cache-max-size", &["cache_max_size"])
        && let Some(size) = o.cache_max_size
    {
        cache.cache_max_size = size.0;
    }
    Ok(())
}

/// Paths from arguments, `-` expanded from stdin; `.` when none. `command` is the
/// subcommand (`compile`, `check`), for messages.
pub fn resolve_paths(paths: &[OsString], input: &InputArgs, command: &str) -> Result<Vec<PathBuf>, Error> {
    let mut out = stdin_expanded(paths, input, command)?;
    if out.is_empty() && !paths.iter().any(|p| p == "-") {
        out.push(PathBuf::from("."));
    }
    // A working directory that was removed (`rmdir` of the directory a shell is in) still
    // opens as `.`, but lists nothing: the walk would find no source and `compile` say so
    // with exit status 0. Relative paths name nothing then: an error, naming why.
    if let Some(relative) = out.iter().find(|p| p.is_relative())
        && let Err(e) = std::env::current_dir()
    {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "the current directory was removed".to_string()
        } else {
            format!("the current directory cannot be read ({})", crate::io::io_reason(&e))
        };
        return Err(Error::Usage(format!("cannot read {}: {why}", crate::report::ticked(relative))));
    }
    Ok(out)
}

/// The paths given, `-` (once, however often given) replaced by the path list on stdin:
/// `compile`'s, `check`'s and `inspect`'s (`command`, for messages).
pub fn stdin_expanded(paths: &[OsString], input: &InputArgs, command: &str) -> Result<Vec<PathBuf>, Error> {
    // `--null` only says how the list on stdin is separated: without `-` there is no such
    // list, and a forgotten `-` (`git ls-files -z | hashpyc check --null`) would otherwise
    // walk the whole current directory instead of the files piped in.
    if input.null && !paths.iter().any(|p| p == "-") {
        return Err(Error::Usage(format!(
            "--null (-0) separates the paths read from stdin, which only `-` reads: add `-` \
             (`git ls-files -z '*.py' | hashpyc {command} --null -`)"
        )));
    }
    let mut out = Vec::new();
    let mut stdin_used = false;
    for p in paths {
        if p == "-" {
            if stdin_used {
                continue;
            }
            stdin_used = true;
            out.extend(read_stdin_paths(input.null)?.into_iter().map(PathBuf::from));
        } else {
            out.push(PathBuf::from(p));
        }
    }
    Ok(out)
}

/// The path list on stdin (`-`), read on a thread of its own while this one waits for it or
/// for an interrupt: a signal does not end a read(2) (std reads again after `EINTR`), so a
/// list that never ends (`sleep 30 | hashpyc compile -`, a writer that hangs) would keep
/// the run from ending until the forced exit after Ctrl-C ([`crate::interrupt`]). Nothing
/// is written yet: the run just ends, `error: interrupted`. (Without a thread for it, a
/// process limit reached, the list is read here.)
pub fn read_stdin_paths(null: bool) -> Result<Vec<OsString>, Error> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reader = std::thread::Builder::new().name("hashpyc-stdin".into()).spawn(move || {
        let _ = tx.send(walk::read_path_list(std::io::stdin().lock(), null));
    });
    if reader.is_err() {
        return Ok(walk::read_path_list(std::io::stdin().lock(), null)?);
    }
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(list) => return Ok(list?),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) if crate::interrupt::requested() => {
                return Err(Error::Interrupted);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                let why = std::io::Error::other("the thread reading it ended");
                return Err(walk::PathListError::Io(why).into());
            }
        }
    }
}

pub fn walk_options(sel: &SelectArgs, jobs: usize) -> Result<WalkOptions, Error> {
    let exclude_regex = match &sel.exclude_regex {
        Some(re) => {
            Some(regex::Regex::new(re).map_err(|e| Error::Usage(format!("invalid --exclude-regex: {e}")))?)
        }
        None => None,
    };
    if sel.exclude_regex.as_deref() == Some("") {
        return Err(Error::Usage("--exclude-regex '': an empty expression would skip everything".into()));
    }
    let exclude_globs = sel
        .exclude
        .iter()
        .map(|g| crate::walk::anchored_glob(g).map_err(|why| Error::Usage(format!("--exclude: {why}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // A file is refused: no link resolves inside it, so compileall's `-e FILE` skips every
    // link (even one to that file: the test is a strict parent one), which is never meant.
    let limit_symlinks = match &sel.limit_symlinks {
        Some(dir) => {
            let refuse = |reason: String| {
                let reason = format!("{}: {reason}", crate::report::ticked(dir));
                config::at_origin(sel.limit_symlinks_from.as_ref(), &reason, || {
                    Error::Usage(format!("--limit-symlinks {reason}"))
                })
            };
            let real = std::fs::canonicalize(dir).map_err(|e| refuse(crate::io::io_reason(&e)))?;
            if !real.is_dir() {
                return Err(refuse(
                    "not a directory (links are taken when they resolve inside it; compileall's `-e` given a file takes none)"
                        .into(),
                ));
            }
            Some(real)
        }
        None => None,
    };
    let max_depth = if sel.no_recursion { Some(1) } else { sel.max_depth };
    Ok(WalkOptions {
        max_depth_by: sel.max_depth_from.as_ref().map(|o| match max_depth {
            Some(n) => o.written(&format!("max-depth = {n}")),
            None => o.written("max-depth"),
        }),
        skipped_by: crate::walk::RuleOrigins {
            respect_gitignore: sel.respect_gitignore_from.clone(),
            skip_hidden: sel.skip_hidden_from.clone(),
            limit_symlinks: sel.limit_symlinks_written.clone(),
            // A flag is named with its value (`--exclude-regex `.py``): `-x.py` reads as
            // that, and a message naming the flag alone would not show it.
            exclude_regex: sel.exclude_regex_from.clone().or_else(|| {
                sel.exclude_regex
                    .as_ref()
                    .map(|r| format!("--exclude-regex {}", crate::report::ticked(Path::new(r))))
            }),
            force_exclude: sel.force_exclude_from.as_ref().map(|o| o.written("force-exclude = true")),
            exclude: sel.exclude_from.clone().or_else(|| {
                let globs: Vec<String> = sel
                    .exclude
                    .iter()
                    .map(|g| format!("--exclude {}", crate::report::ticked(Path::new(g))))
                    .collect();
                (!globs.is_empty()).then(|| globs.join(" "))
            }),
        },
        implicit_root_excluded: None,
        respect_ignore: sel.respect_gitignore,
        skip_hidden: sel.skip_hidden,
        exclude_globs,
        exclude_base: sel.exclude_base.clone(),
        exclude_regex,
        force_exclude: sel.force_exclude,
        implicit_root: false,
        max_depth,
        follow: sel.follow,
        by_spelling: false,
        limit_symlinks,
        collect_pycache: false,
        collect_legacy: false,
        collect_dirs: false,
        // Walking is I/O: more threads than CPUs only add contention.
        threads: jobs.min(default_jobs()),
    })
}

/// Whether each spelling of a directory is walked (see [`WalkOptions::by_spelling`]):
/// with `--follow`, when every target's pycs go under a pycache prefix, where each
/// spelling has a mirror of its own. A `__pycache__` (a 3.7 target beside a prefix from
/// the environment) is shared by every spelling, so the directory is walked once.
fn by_spelling(walk: &WalkOptions, layouts: &[Layout]) -> bool {
    walk.follow && !layouts.is_empty() && layouts.iter().all(|l| matches!(l, Layout::Prefix(_)))
}

/// Why a bare run (no path named) walks nothing: its working directory lies under the
/// configuration file's directory, and a run from there would not enter it (README,
/// "Paths": a run from a subdirectory selects what a run from the top does below it). The
/// rule, where it was set, and how to take the directory anyway.
fn implicit_root_excluded(sel: &SelectArgs, walk: &WalkOptions, verb: &str) -> Option<String> {
    let top = sel.config_dir.as_deref()?;
    let (rule, rel) = walk::implicit_root_skipped(walk, top)?;
    let (by, what) = match rule {
        walk::DirRule::Exclude => {
            (sel.exclude_from.clone().unwrap_or_else(|| "--exclude".into()), "excludes")
        }
        walk::DirRule::Ignored => (
            sel.respect_gitignore_from.clone().unwrap_or_else(|| "--respect-gitignore".into()),
            "skips as ignored (an ignore file names it)",
        ),
        walk::DirRule::Hidden => {
            (sel.skip_hidden_from.clone().unwrap_or_else(|| "--skip-hidden".into()), "skips as hidden")
        }
    };
    let anyway = match (rule, sel.force_exclude) {
        (walk::DirRule::Exclude, true) => String::new(),
        _ => format!("; name it (`hashpyc {verb} .`) to {verb} it anyway"),
    };
    Some(format!(
        "the working directory is in {} under {}, which {by} {what}, as a run from there does{anyway}",
        crate::report::ticked(&rel),
        crate::report::ticked(top),
    ))
}

/// The interpreters to target, probed (through the cache).
/// How long an interpreter's probe may take: the run's `--timeout`, at least 10 s, else 60 s.
pub fn probe_timeout(timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or(Duration::from_secs(60)).max(Duration::from_secs(10))
}

pub fn probe_targets(args: &TargetArgs, timeout: Option<Duration>) -> Result<Vec<Arc<Target>>, Error> {
    let names: Vec<OsString> =
        if args.python.is_empty() { vec![OsString::from("python3")] } else { args.python.clone() };
    let cache = target::own_state_dir();
    let mut targets: Vec<Arc<Target>> = Vec::new();
    // An interpreter named by a configuration file is reported at its element (a list's
    // element at its line and column), else at its key.
    let located = |index: usize, e: target::TargetError| -> Error {
        match args.python_elements.get(index).or(args.python_from.as_ref()) {
            // An interrupt is no fault of the interpreter: the run ends as an interrupted one.
            _ if matches!(e, target::TargetError::Interrupted) => Error::Interrupted,
            Some(o) => o.invalid(crate::pool::schedule::error_chain(&e)),
            None => e.into(),
        }
    };
    let timeout = probe_timeout(timeout);
    for (index, name) in names.into_iter().enumerate() {
        let t = match target::VersionRequest::parse(&name) {
            Some(request) => target::find_version(&request, timeout, cache.as_deref()),
            None => target::resolve_executable(&name)
                .and_then(|exe| target::probe(&exe, timeout, cache.as_deref())),
        }
        .map_err(|e| located(index, e))?;
        // The same interpreter twice (a name and its path) is one target.
        if !targets.iter().any(|o| {
            o.magic == t.magic && o.cache_tag == t.cache_tag && same_file(&o.executable, &t.executable)
        }) {
            targets.push(Arc::new(t));
        }
    }
    Ok(targets)
}

/// Two targets whose pycs are the same files (one cache tag, or any two with `--legacy`,
/// which writes one `<source>c` per source): the same build twice (a pyenv shim and the
/// interpreter behind it, a venv's `python` and its base, `--target 3.12` twice) is one
/// target; two different builds would overwrite each other's pycs, the last writer
/// winning, so they are refused.
fn one_target_per_pyc(
    targets: Vec<Arc<Target>>,
    layout: &LayoutArgs,
    python_from: Option<&config::Origin>,
) -> Result<Vec<Arc<Target>>, Error> {
    let legacy = layout.legacy;
    let mut out: Vec<Arc<Target>> = Vec::new();
    for t in targets {
        let Some(o) = out.iter().find(|o| legacy || o.cache_tag == t.cache_tag) else {
            out.push(t);
            continue;
        };
        let same_build = o.magic == t.magic
            && o.hexversion == t.hexversion
            && o.sys_version == t.sys_version
            && o.abiflags == t.abiflags
            && o.gil_disabled == t.gil_disabled
            && o.settings.compiling() == t.settings.compiling();
        if same_build {
            continue;
        }
        let name = |t: &Target| {
            if t.from_table() {
                format!("CPython {}", t.short_version())
            } else {
                format!("{} (CPython {})", crate::report::ticked(&t.executable), t.short_version())
            }
        };
        // The legacy layout named where it was set, as the interpreters are (below).
        let why = if legacy && o.cache_tag != t.cache_tag {
            let (set, off) = match &layout.legacy_from {
                Some(origin) => (origin.written("legacy = true"), ", or --no-legacy for this run"),
                None => ("`-b`/`--legacy`".to_string(), ""),
            };
            format!(
                "a legacy layout ({set}) writes one `<source>c` per source, so it takes one \
                 interpreter; give one of them{off}"
            )
        } else {
            format!("both write `{}` pycs, the same files; give one of them", t.cache_tag)
        };
        let reason = format!("{} and {}: {why}", name(o), name(&t));
        return Err(match python_from {
            Some(origin) => origin.invalid(reason),
            None => Error::Usage(reason),
        });
    }
    Ok(out)
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
/// CPython 3.8+ honours it), else `__pycache__`. `python_from` is where the interpreters
/// came from when not from `--python`, for the error of a prefix with a 3.7.
pub fn layouts(
    args: &LayoutArgs,
    targets: &[Arc<Target>],
    python_from: Option<&config::Origin>,
) -> Result<Vec<Layout>, Error> {
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
                    let prefix = args
                        .pycache_prefix_from
                        .as_ref()
                        .map_or_else(|| "--pycache-prefix".to_string(), |o| o.written("pycache-prefix"));
                    let named =
                        python_from.map(|o| format!(" (from {})", o.written("python"))).unwrap_or_default();
                    return Err(Error::Usage(format!(
                        "{prefix} needs Python 3.8 or newer; {}{named} is {}",
                        crate::report::ticked(&t.executable),
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

/// Why `timestamp` is refused, as a flag and in a configuration file.
pub const TIMESTAMP_REFUSED: &str = "timestamp pycs go stale when a source changes twice within one second at the \
     same size, and Python then silently runs the old code. Use checked-hash (the default) or, for images whose \
     sources never change, unchecked-hash";

pub fn compile_settings(args: &CompileArgs) -> Result<CompileSettings, Error> {
    let mode = match args.invalidation_mode.as_str() {
        "checked-hash" | "checked" => HashMode::Checked,
        "unchecked-hash" | "unchecked" => HashMode::Unchecked,
        "timestamp" => {
            return Err(Error::Usage(format!(
                "--invalidation-mode timestamp is not offered: {TIMESTAMP_REFUSED}"
            )));
        }
        other => {
            return Err(Error::Usage(format!(
                "invalid --invalidation-mode `{other}`: expected `checked-hash` or `unchecked-hash`"
            )));
        }
    };
    let levels = levels(&args.layout);
    if args.hardlink_dupes && levels.len() < 2 {
        return Err(hardlink_needs_levels(args));
    }
    one_level_per_legacy_pyc(&args.layout, &levels)?;
    let timeout = (args.timeout > 0.0).then(|| Duration::from_secs_f64(args.timeout));
    let jobs = match args.jobs {
        None | Some(0) => default_jobs(),
        Some(n) => n,
    };
    let roots = resolve_paths(&args.paths, &args.input, "compile")?;
    let mut walk = walk_options(&args.select, jobs)?;
    walk.implicit_root = args.paths.is_empty();
    if walk.implicit_root {
        walk.implicit_root_excluded = implicit_root_excluded(&args.select, &walk, "compile");
    }
    let targets = probe_targets(&args.target, timeout)?;
    let targets = one_target_per_pyc(targets, &args.layout, args.target.python_from.as_ref())?;
    let layouts = layouts(&args.layout, &targets, args.target.python_from.as_ref())?;
    walk.by_spelling = by_spelling(&walk, &layouts);
    let embed = embed(&args.embed);
    // The interpreters' own settings are warned of by the run (`compile::compile`), after a
    // launcher's remembered probe is confirmed: a stale one's are not the run's.
    let named_warnings = ddir_named_warning(&args.embed, &roots)
        .into_iter()
        .chain(args.config.requires_python.as_ref().and_then(|rp| {
            let (from, defaulted) = (args.target.python_from.as_ref(), args.target.python.is_empty());
            crate::requires_python::warning(rp, &targets, from, defaulted, "writes")
        }))
        .chain(prepend_request_warning(&args.embed))
        .chain(nested_config_warning(&args.config, &roots))
        .collect();
    let verify = crate::env::is_on(crate::env::VERIFY);
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
        timeout_from: args
            .timeout_from
            .as_ref()
            .map_or_else(|| "--timeout".to_string(), |o| o.written(&format!("timeout = {}", args.timeout))),
        dry_run: args.dry_run,
        hardlink_dupes: args.hardlink_dupes,
        verify,
        cache,
        warnings_as_errors: args.warnings_as_errors || args.warnings.is_some(),
        json: args.format == crate::cli::CompileFormat::Json,
        github: args.format == crate::cli::CompileFormat::Github,
        described: args.config.described.clone(),
        named_warnings,
    })
}

/// A legacy layout with more than one level: its one `<source>c` per source would be
/// written once per level, each level overwriting the last (the pyc records no level), so
/// it is refused, in the words of where each setting came from.
fn one_level_per_legacy_pyc(layout: &LayoutArgs, levels: &[u8]) -> Result<(), Error> {
    if !layout.legacy || levels.len() < 2 {
        return Ok(());
    }
    let (set, off) = match &layout.legacy_from {
        Some(origin) => (origin.written("legacy = true"), ", or --no-legacy for this run"),
        None => ("`-b`/`--legacy`".to_string(), ""),
    };
    let given = match &layout.optimize_from {
        Some(o) => o.written("optimize"),
        None => {
            let flags: Vec<String> = levels.iter().map(|l| format!("-o {l}")).collect();
            format!("`{}`", flags.join(" "))
        }
    };
    Err(Error::Usage(format!(
        "a legacy layout ({set}) writes one `<source>c` per source, so it takes one optimization \
         level; {given} gives {}: give one of them{off}",
        levels.len()
    )))
}

/// `--hardlink-dupes` with one level, in the words of where each setting came from.
fn hardlink_needs_levels(args: &CompileArgs) -> Error {
    let (what, off) = match &args.hardlink_dupes_from {
        Some(o) => (o.written("hardlink-dupes = true"), ", or --no-hardlink-dupes for this run"),
        None => ("--hardlink-dupes".to_string(), ""),
    };
    let (given, example) = match &args.layout.optimize_from {
        Some(o @ config::Origin::Key { .. }) => {
            (format!(", and {} gives one", o.written("optimize")), "`optimize = [0, 1]`")
        }
        Some(o) => (format!(", and {} gives one", o.written("optimize")), "-o 0 -o 1"),
        None => (String::new(), "-o 0 -o 1"),
    };
    Error::Usage(format!(
        "{what} needs at least two different optimization levels{given} (e.g. {example}{off})"
    ))
}

/// The bytecode cache, if one is asked for (`HASHPYC_NO_CACHE=1` turns it off like
/// `--no-cache`).
fn cache_settings(args: &crate::cli::CacheArgs) -> Result<Option<crate::cache::CacheSettings>, Error> {
    let off = args.no_cache || crate::env::is_on(crate::env::NO_CACHE);
    let dir = args.cache.as_ref().filter(|d| !d.as_os_str().is_empty());
    let url = args.cache_url.as_ref().filter(|u| !u.is_empty());
    if off || (dir.is_none() && url.is_none()) {
        return Ok(None);
    }
    // The local tier stores entries uncompressed unless asked: compressing costs a cold
    // build more than it saves (README, "Bytecode cache"); remote entries are always zstd.
    // An empty variable is an unset one, as for the flags' (README, "Environment").
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let compression = match var("HASHPYC_CACHE_COMPRESSION").as_deref() {
        Some("none") | None => crate::cache::entry::Compression::None,
        Some("zstd") => crate::cache::entry::Compression::Zstd,
        Some(other) => {
            return Err(Error::Usage(format!(
                "invalid HASHPYC_CACHE_COMPRESSION `{other}`: expected `zstd` or `none`"
            )));
        }
    };
    let seconds = |name: &str, default: Duration| -> Result<Duration, Error> {
        // At most a day: a longer wait is no different, and 1e30 s is no Duration.
        match var(name) {
            None => Ok(default),
            // Whitespace around it removed, as around the URL and the token (a CI secret
            // stored with its final newline).
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "invalid {name} `{v}`: expected a number of seconds, more than 0 and at most 86400 (a day)"
                    ))
                }),
        }
    };
    let timeout = seconds("HASHPYC_CACHE_TIMEOUT", crate::cache::remote::DEFAULT_TIMEOUT)?;
    // Opened here, once for the run: a malformed URL or environment is bad input (exit 2)
    // found before anything is compiled; trouble reaching it never is.
    let remote = match url {
        Some(u) => Some(crate::cache::remote::open(u, timeout).map_err(|e| match e {
            crate::cache::remote::OpenError::Url(e) => {
                config::at_origin(args.cache_url_from.as_ref(), &e, || Error::Usage(e.clone()))
            }
            // Not the file's fault: the variable is named in the message.
            crate::cache::remote::OpenError::Environment(e) => Error::Usage(e),
        })?),
        None => None,
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    Ok(Some(crate::cache::CacheSettings {
        dir: dir.map(|d| layout::absolute(d, &cwd)),
        dir_from: args.cache_from.as_ref().map(|o| o.written("cache")),
        remote,
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
    /// The configuration makes `compile` write unchecked-hash pycs.
    pub compile_unchecked: bool,
    /// The path each pyc should embed, as `compile` derives it.
    pub embed: Embed,
    pub stray: bool,
    pub format: crate::cli::Format,
    pub all: bool,
    /// The `pyproject.toml` files passed over and `-v`'s `configuration: …` line, for JSON
    /// mode's `notice` objects.
    pub described: Vec<String>,
    /// Where `legacy = true` came from when a configuration file set it (the hint for
    /// pycs of the other layout names it).
    pub legacy_from: Option<config::Origin>,
    /// Where the levels came from when not from `-o` (`PYTHONOPTIMIZE`, a file's
    /// `optimize`): the hint for pycs of other levels names it.
    pub optimize_from: Option<config::Origin>,
    /// Where the pycache prefix came from, when one is in effect: `PYTHONPYCACHEPREFIX`
    /// (`Origin::Env`), a file's `pycache-prefix`, or `--pycache-prefix` (`None`). The hint
    /// for pycs in `__pycache__` where the prefix was expected names it.
    pub pycache_prefix_from: Option<config::Origin>,
    /// Warnings about the interpreters' settings (`interpreter_settings_warnings`) and the
    /// paths named (`ddir_named_warning`, `nested_config_warning`).
    pub named_warnings: Vec<String>,
    /// The paths as given on the command line (`-` for stdin), for the hint naming the
    /// `compile` that fixes the findings.
    pub named_paths: Vec<std::ffi::OsString>,
    /// An option `compile` takes too was given on the command line.
    pub compile_options_given: bool,
    /// The configuration file in effect, absolute (none: no file, or `--no-config`): a
    /// command suggested for another directory names it where discovery there would not
    /// find it.
    pub config_in_effect: Option<PathBuf>,
}

/// `check` of a job with no `python3` on PATH (none named): `--target` checks without an
/// interpreter, which the error says.
fn without_an_interpreter(e: Error) -> Error {
    match e {
        Error::Target(target::TargetError::NotFound(_)) => {
            Error::Usage(format!("{e} (`hashpyc check --target X.Y` checks without an interpreter)"))
        }
        e => e,
    }
}

pub fn check_settings(args: &CheckArgs) -> Result<CheckSettings, Error> {
    let jobs = match args.jobs {
        None | Some(0) => default_jobs(),
        Some(n) => n,
    };
    one_level_per_legacy_pyc(&args.layout, &levels(&args.layout))?;
    let roots = resolve_paths(&args.paths, &args.input, "check")?;
    let mut walk = walk_options(&args.select, jobs)?;
    walk.implicit_root = args.paths.is_empty();
    if walk.implicit_root {
        walk.implicit_root_excluded = implicit_root_excluded(&args.select, &walk, "check");
    }
    walk.collect_pycache = args.stray;
    walk.collect_legacy = args.stray && args.layout.legacy;
    let targets = if args.target_version.is_empty() {
        let named = !args.target.python.is_empty();
        probe_targets(&args.target, None).map_err(|e| if named { e } else { without_an_interpreter(e) })?
    } else {
        args.target_version
            .iter()
            .map(|v| target::known_target(v).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?
    };
    let targets = one_target_per_pyc(targets, &args.layout, args.target.python_from.as_ref())?;
    let layouts = layouts(&args.layout, &targets, args.target.python_from.as_ref())?;
    walk.by_spelling = by_spelling(&walk, &layouts);
    // The mirror of each directory walked is searched for prefix strays.
    walk.collect_dirs = args.stray && layouts.iter().any(|l| matches!(l, Layout::Prefix(_)));
    let accept = match args.mode {
        CheckMode::Checked => Accept::Only(HashMode::Checked),
        CheckMode::Unchecked => Accept::Only(HashMode::Unchecked),
        CheckMode::Any => Accept::AnyHash,
    };
    let named_warnings = interpreter_settings_warnings(&targets, &layouts, &levels(&args.layout), "check")
        .into_iter()
        .chain(args.config.requires_python.as_ref().and_then(|rp| {
            // (`--target`'s versions come from the command line alone.)
            let by_python = args.target_version.is_empty();
            let from = args.target.python_from.as_ref().filter(|_| by_python);
            crate::requires_python::warning(
                rp,
                &targets,
                from,
                by_python && args.target.python.is_empty(),
                "checks",
            )
        }))
        .chain(ddir_named_warning(&args.embed, &roots))
        .chain(prepend_request_warning(&args.embed))
        .chain(nested_config_warning(&args.config, &roots))
        .collect();
    Ok(CheckSettings {
        roots,
        walk,
        targets,
        layouts,
        levels: levels(&args.layout),
        accept,
        compile_unchecked: args.compile_unchecked,
        embed: embed(&args.embed),
        named_warnings,
        named_paths: args.paths.clone(),
        compile_options_given: args.compile_options_given,
        config_in_effect: args.config.in_effect.clone(),
        stray: args.stray,
        format: args.format,
        all: args.all,
        described: args.config.described.clone(),
        legacy_from: args.layout.legacy_from.clone(),
        optimize_from: args.layout.optimize_from.clone(),
        pycache_prefix_from: match &args.layout.pycache_prefix {
            Some(_) => args.layout.pycache_prefix_from.clone(),
            None => Some(config::Origin::Env("PYTHONPYCACHEPREFIX")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::python_optimize;

    /// As CPython 3.7–3.15 set `sys.flags.optimize` (checked against each).
    #[test]
    fn python_optimize_reads_as_cpython() {
        let level = |v: &str| python_optimize(std::ffi::OsStr::new(v));
        for (v, want) in [
            ("", None),
            ("0", Some(0)),
            ("-0", Some(0)),
            ("1", Some(1)),
            ("2", Some(2)),
            (" 2", Some(2)),
            ("\x0b\t2", Some(2)),
            ("+2", Some(2)),
            ("3", Some(3)),
            ("2 ", Some(1)),
            ("-1", Some(1)),
            ("abc", Some(1)),
            (" ", Some(1)),
            ("99999999999", Some(1)),
        ] {
            assert_eq!(level(v), want, "PYTHONOPTIMIZE={v:?}");
        }
    }
}
