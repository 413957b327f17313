//! The command line, as clap types only: what each flag means is in its doc comment, which
//! is also its `--help` text. `settings` turns these into validated, resolved options.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status: 0 all good; 1 findings (a source that failed to compile, a per-file error such
as an unreadable source or an unwritable directory, a pyc that `check` finds missing or
stale, nothing to check; `compile -n`: a file it lists is known to fail, or an error the
run will report, as the run will find; `inspect`: a file that is not a valid pyc or does
not exist, a source with no pyc); 2 operational error (bad arguments, no usable
interpreter, workers that keep dying, which stop the run; for `compile` and `check`, a path
that does not exist, after the other paths are compiled or checked); 130 interrupted
(SIGINT); 143 terminated (SIGTERM); 129 hung up (SIGHUP).";

/// `inspect`'s exit status: a file it cannot describe is its finding (1), as a pyc that is
/// not valid is, never a missing path's 2.
const INSPECT_AFTER_HELP: &str = "\
Exit status: 0 every file described (a pyc that does not match its source included); 1 a
file that is not a valid pyc, does not exist or is not a regular file, or a source with no
pyc (the other files are still described); 2 operational error (bad arguments, a
configuration file that cannot be used, a stdout that cannot be written); 130 interrupted
(SIGINT); 143 terminated (SIGTERM); 129 hung up (SIGHUP).";

/// Which commands read a variable of [`ENVIRONMENT`].
pub mod reads {
    pub const COMPILE: u8 = 1;
    pub const CHECK: u8 = 2;
    pub const INSPECT: u8 = 4;
    pub const CACHE: u8 = 8;
    pub const BUILD: u8 = COMPILE | CHECK;
    pub const ALL: u8 = COMPILE | CHECK | INSPECT | CACHE;
}

/// Every environment variable hashpyc reads, the commands that read it, and what it does in
/// one line: the "Environment" part of `hashpyc --help` and the man pages' ENVIRONMENT
/// sections (the README's "Environment" says more of each).
pub const ENVIRONMENT: &[(&str, u8, &str)] = {
    use reads::*;
    &[
        ("HASHPYC_CONFIG", ALL, "the configuration file (`--config`)"),
        ("HASHPYC_NO_CONFIG", ALL, "`1`: ignore configuration files (`--no-config`)"),
        ("HASHPYC_PYTHON", BUILD, "the target interpreter (`--python`)"),
        ("HASHPYC_JOBS", BUILD, "workers per interpreter, `check`'s threads (`--jobs`)"),
        ("HASHPYC_TIMEOUT", COMPILE, "seconds a file may take in a worker (`--timeout`)"),
        ("HASHPYC_COLOR", ALL, "when to use colour (`--color`)"),
        ("NO_COLOR", ALL, "no colour under `--color auto`"),
        ("FORCE_COLOR", ALL, "colour under `--color auto`, even with no terminal (unless NO_COLOR)"),
        ("CLICOLOR_FORCE", ALL, "as FORCE_COLOR, unless `0`"),
        ("HASHPYC_CACHE", COMPILE | CACHE, "the bytecode cache directory (`--cache`)"),
        ("HASHPYC_NO_CACHE", BUILD, "`1`: no bytecode cache (beats `--cache`) and no state directory"),
        ("HASHPYC_CACHE_READ_ONLY", COMPILE, "`1`: use the cache, store nothing (`--cache-read-only`)"),
        (
            "HASHPYC_CACHE_MAX_SIZE",
            COMPILE | CACHE,
            "the cache's size limit (`--cache-max-size`, `prune --max-size`)",
        ),
        ("HASHPYC_CACHE_COMPRESSION", COMPILE, "`zstd`: compress local cache entries (default `none`)"),
        ("HASHPYC_CACHE_URL", COMPILE, "the shared cache on a server (`--cache-url`)"),
        ("HASHPYC_CACHE_TOKEN", COMPILE, "a bearer token for an http(s):// cache URL"),
        ("HASHPYC_CACHE_TIMEOUT", COMPILE, "seconds one remote cache lookup may take (default 2)"),
        ("HASHPYC_CACHE_UPLOAD_WAIT", COMPILE, "seconds a build's end waits for cache uploads (default 10)"),
        ("AWS_*", COMPILE, "an s3:// cache URL's credentials, profile, region and endpoint"),
        (
            "HTTPS_PROXY, HTTP_PROXY",
            COMPILE,
            "the shared cache's proxy (also ALL_PROXY, NO_PROXY, lower case)",
        ),
        ("SSL_CERT_FILE, SSL_CERT_DIR", COMPILE, "CA certificates for an https:// cache URL"),
        ("HASHPYC_STATE_DIR", BUILD, "the state directory (default `$XDG_CACHE_HOME/hashpyc`)"),
        ("HASHPYC_NO_STATE", BUILD, "`1`: no state directory (no probes, failures or good pycs remembered)"),
        (
            "HASHPYC_SETTLE_SECONDS",
            BUILD,
            "seconds a pyc must be unchanged before it is remembered (default 3)",
        ),
        ("HASHPYC_CACHE_DIR", BUILD, "not a setting: warned about (see HASHPYC_CACHE, HASHPYC_STATE_DIR)"),
        ("PYTHONPYCACHEPREFIX", ALL & !CACHE, "where pycs go, for 3.8+ (`--pycache-prefix` wins)"),
        ("PYTHONOPTIMIZE", BUILD, "the optimization level when no `-o` or `optimize` gives one"),
        ("HASHPYC_TRACE", COMPILE, "`1`: print where the run's time went"),
        ("HASHPYC_VERIFY", COMPILE, "`1`: compile again in fresh forks, fail on any difference"),
        ("HASHPYC_ISOLATION", COMPILE, "`fork` or `long-lived`: force a worker mode (for measuring)"),
        ("HASHPYC_DEFERRED", COMPILE, "`fork`: 3.13+ files needing a pristine worker in fresh forks"),
        ("HASHPYC_ORDER", COMPILE, "test hook: `reverse` or `shuffle:SEED` compile order"),
        ("HASHPYC_WORKER_SCRIPT", COMPILE, "test hook: a worker script instead of the built-in one"),
    ]
};

/// The variables of [`ENVIRONMENT`] that `command` (`compile`, `check`, `inspect`, `cache`;
/// `hashpyc`: every command) reads.
pub fn environment(command: &str) -> Vec<(&'static str, &'static str)> {
    let mask = match command {
        "compile" => reads::COMPILE,
        "check" => reads::CHECK,
        "inspect" => reads::INSPECT,
        "cache" => reads::CACHE,
        "hashpyc" => reads::ALL,
        _ => 0,
    };
    ENVIRONMENT.iter().filter(|(_, by, _)| by & mask != 0).map(|(name, _, what)| (*name, *what)).collect()
}

/// `hashpyc --help`'s end: the exit status, then every variable, one line each.
fn top_long_help() -> String {
    let mut text =
        format!("{AFTER_HELP}\n\nEnvironment (an empty value is unset; README, \"Environment\"):\n");
    for (name, what) in environment("hashpyc") {
        text.push_str(&format!("  {name:<28} {what}\n"));
    }
    text.trim_end().to_string()
}

/// The end of `-h`: the exit status in brief and where the rest is. `--help` gives each
/// option's whole text, the exit status in full and (`hashpyc --help`) every variable read.
const SHORT_AFTER_HELP: &str = "\
Exit status: 0 all good, 1 findings, 2 error.
See more with '--help': each option in full, what each exit status means.";
const INSPECT_SHORT_AFTER_HELP: &str = "\
Exit status: 0 every file described, 1 a file it cannot describe, 2 error.
See more with '--help': each option in full, what each exit status means.";
const TOP_SHORT_AFTER_HELP: &str = "\
Exit status: 0 all good, 1 findings, 2 error.
See more with '--help': what each exit status means, every environment variable read; and
with 'hashpyc COMMAND --help', each option of a command in full.";
const PLAIN_SHORT_AFTER_HELP: &str = "See more with '--help': each option in full.";

/// Deterministic, hash-based Python bytecode (PEP 552) for whole trees, and a fast check
/// that a tree's bytecode is fresh.
#[derive(Debug, Parser)]
#[command(name = "hashpyc", version, about, long_about = None, after_help = TOP_SHORT_AFTER_HELP,
          after_long_help = top_long_help())]
// A single-valued flag given twice takes the last value (as ripgrep, fd and uv do: an alias
// or a script's defaults can be overridden by appending); repeatable flags (`-o`,
// `--exclude`, `--python`, `--target`) keep collecting every value.
// `--version` is the top level's only (`hashpyc --version`), as in uv since 0.7: a
// subcommand's would print `hashpyc-compile 0.1.0`, a program that does not exist.
// `-h` is a summary, one line per option (each help's first sentence, as ripgrep, fd and
// uv print it), `--help` the whole text: applied to every command once it is defined.
#[command(max_term_width = 100, args_override_self = true, mut_args = summarize_arg,
          mut_subcommands = summarize)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

/// `-q`, `-v` and `--color` for every command, before the subcommand as after it
/// (`hashpyc -q compile`, as `uv -q cache dir`). `compile` and `check` describe them in
/// their own words ([`OutputArgs`]): the value given on either side reaches both.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print less: `-q` hides notes and summaries (`cache prune` and `cache clean`: what was
    /// removed), `-qq` also warnings; errors and a command's data on stdout (`inspect`,
    /// `cache stats`) are always printed.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose", global = true,
          help_heading = "Output")]
    pub quiet: u8,

    /// Print more (`compile` and `check`: see their help; `inspect` and the `cache` commands
    /// print nothing more). A repeated `-v` adds nothing.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Output")]
    pub verbose: u8,

    /// When to use colour on stderr (never needed to read a message).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "HASHPYC_COLOR", hide_env_values = true, global = true,
          help_heading = "Output")]
    pub color: ColorChoice,
}

/// The global `-q`, `-v` and `--color`, taken by `completions` without a word in its help:
/// a completion script is its whole output, and it has no colour.
#[derive(Debug, Args)]
pub struct HiddenOutputArgs {
    #[arg(short, long, action = clap::ArgAction::Count, hide = true)]
    pub quiet: u8,
    #[arg(short, long, action = clap::ArgAction::Count, hide = true)]
    pub verbose: u8,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "HASHPYC_COLOR", hide_env_values = true, hide = true)]
    pub color: ColorChoice,
}

impl Cli {
    /// The command's `--color` (`HASHPYC_COLOR`); `auto` for those without one.
    pub fn color(&self) -> ColorChoice {
        match &self.command {
            Command::Compile(a) => a.output.color.color,
            Command::Check(a) => a.output.color.color,
            Command::Inspect(a) => a.color.color,
            Command::Cache(_) | Command::Completions { .. } => ColorChoice::Auto,
        }
    }
}

/// `-q`, `-v` and `--color`, for the commands that print a summary.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print less: `-q` hides the progress bar and the summary, `-qq` also per-file warnings
    /// and notes (errors are always printed).
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "verbose", help_heading = "Output")]
    pub quiet: u8,

    /// Print more: where the configuration came from and where each setting came from (a
    /// key of the file, replaced or not used; an environment variable), the interpreters
    /// probed, every file written and why, what the cache did (with `--format json`, each
    /// line a `notice` object on stdout). A repeated `-v` adds nothing.
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,

    #[command(flatten)]
    pub color: ColorArgs,
}

#[derive(Debug, Args)]
pub struct ColorArgs {
    /// When to use colour on stderr (never needed to read a message).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, env = "HASHPYC_COLOR", hide_env_values = true, help_heading = "Output")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal, `TERM` is not `dumb` and `NO_COLOR` is unset, or
    /// when `FORCE_COLOR` or `CLICOLOR_FORCE` (not `0`) is set and `NO_COLOR` is not.
    Auto,
    /// Colour always, even when `NO_COLOR` is set.
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a checked hash-based pyc for every `.py` file under PATHs.
    ///
    /// Sources whose pyc is already fresh (hash-based, right interpreter, source hash and
    /// embedded path matching) are skipped without starting Python; a run over an
    /// unchanged tree starts no Python process at all. Each pyc is written atomically
    /// (temporary file in the same directory, then rename), so a reader never sees a
    /// half-written file. The bytes are those of compiling the file alone in a pristine
    /// interpreter, whatever `-j`, file order or earlier runs.
    ///
    /// Like compileall, every `.py` file under the named paths is compiled, hidden
    /// directories and git-ignored files included; `--respect-gitignore` and
    /// `--skip-hidden` narrow that for working trees.
    ///
    /// Besides the pycs, writes hashpyc's state directory (`HASHPYC_STATE_DIR`, default
    /// `$XDG_CACHE_HOME/hashpyc` or `~/.cache/hashpyc`): interpreter probes, compile
    /// failures and warnings, the pycs found good. `HASHPYC_NO_STATE=1` writes nothing
    /// there; `hashpyc --help` lists every environment variable.
    #[command(after_help = SHORT_AFTER_HELP, after_long_help = AFTER_HELP)]
    Compile(Box<CompileArgs>),

    /// Verify that every `.py` file under PATHs has the pyc `hashpyc compile` would write
    /// for it, named as here: ok means compiling would change nothing, as far as the
    /// header, the embedded path and the body's shape tell. The body is not compiled again
    /// to be compared: a pyc edited in place whose body is still a whole code object is ok,
    /// as CPython would load it (`compile -f` writes it again). The embedded source
    /// path is part of that, so name the tree as the compile did (`venv/lib` from `/opt` is
    /// not `/opt/venv/lib`), though CPython would also import a pyc embedding another
    /// spelling of the path. Writes no pyc and starts no Python to compile (the state
    /// directory remembers interpreter probes and the pycs found good: `HASHPYC_NO_STATE=1`
    /// writes nothing at all).
    ///
    /// One outcome per source, interpreter and optimization level: ok; missing (no pyc);
    /// stale (the pyc's source hash differs, it embeds another path than `compile` would,
    /// see `-d`, or bytes follow its code object, which py_compile never writes);
    /// timestamp (not hash-based); unchecked
    /// (hash-based but not checked, under `--mode checked`); checked (checked where
    /// `--mode unchecked` wants unchecked); invalid (short file, another version's magic,
    /// unknown flag bits, a body that is not a whole code object); unreadable (the source
    /// or the pyc could not be read); and with
    /// `--stray`, stray (a pyc in `__pycache__` whose source is gone). Findings go to
    /// stdout, the summary to stderr (to stdout with `--format json`). Exit status 1 when
    /// there is any finding, and when there is nothing to check: an empty selection
    /// proves nothing (a directory whose every file an exclude skipped included). Files
    /// named that an exclude skipped are no finding (a hook naming only such files
    /// passes); each one `--exclude-regex` skips is a warning.
    ///
    /// `check` selects exactly the files `compile` would, given the same selection flags.
    #[command(after_help = SHORT_AFTER_HELP, after_long_help = AFTER_HELP)]
    Check(Box<CheckArgs>),

    /// Describe pyc files: magic and Python version, mode, source hash (or a timestamp
    /// pyc's source mtime and size) and whether it matches the source, as importlib would
    /// judge it (when the source is found; when it is there but cannot be read, why), body
    /// size, embedded path. A `.py` source stands for the pycs of it that exist. A file
    /// that is not a pyc (or a source without one) is an error (exit status 1).
    #[command(after_help = INSPECT_SHORT_AFTER_HELP, after_long_help = INSPECT_AFTER_HELP)]
    Inspect(InspectArgs),

    /// Manage the bytecode cache (`compile --cache DIR`): stats, prune, clean.
    #[command(subcommand)]
    Cache(CacheCommand),

    /// Print a completion script for SHELL to stdout.
    ///
    /// To load it in every new shell: bash, `eval "$(hashpyc completions bash)"` in
    /// `~/.bashrc`; zsh, `eval "$(hashpyc completions zsh)"` in `~/.zshrc` (after
    /// `compinit`); fish, `hashpyc completions fish > ~/.config/fish/completions/hashpyc.fish`;
    /// elvish, `eval (hashpyc completions elvish | slurp)` in `rc.elv`; PowerShell,
    /// `hashpyc completions powershell | Out-String | Invoke-Expression` in `$PROFILE`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        #[command(flatten)]
        output: HiddenOutputArgs,
    },
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Files and directories to compile (default: the current directory, its files spelled
    /// `src/m.py` as pre-commit names them; `.` given explicitly embeds `./src/m.py`, as
    /// compileall does). `-` reads paths from stdin, one per line (or NUL-separated with
    /// `--null`), spaces around a name kept as part of it. A `.py` file named here is
    /// compiled even when hidden or ignored (unless `--force-exclude` and an exclude matches,
    /// or `-x` matches, as compileall's `-x` skips it); a named file not ending in `.py` (a
    /// `.pyi` stub, `py.typed`) is skipped and counted, as compileall skips it.
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub layout: LayoutArgs,

    /// Recompile every file, even those whose pyc is fresh; with a bytecode cache, its
    /// entries are replaced by what was compiled (not looked up).
    #[arg(short, long, help_heading = "Compilation")]
    pub force: bool,

    /// How the written pycs are validated on import: `checked-hash` (default: re-validated
    /// against the source, so an edited source is never shadowed) or `unchecked-hash`
    /// (trusted as is: fastest start-up, for images whose sources never change).
    /// `timestamp` is refused: it is the failure this tool exists to prevent. A fresh
    /// pyc of the other hash mode only gets its header rewritten.
    #[arg(long, value_name = "MODE", default_value = "checked-hash", help_heading = "Compilation", alias = "mode",
          value_parser = clap::builder::PossibleValuesParser::new([
              clap::builder::PossibleValue::new("checked-hash").alias("checked"),
              clap::builder::PossibleValue::new("unchecked-hash").alias("unchecked"),
              // Accepted here to be refused with the reason (settings), never offered.
              clap::builder::PossibleValue::new("timestamp").hide(true),
          ]))]
    pub invalidation_mode: String,

    /// Python worker processes per target interpreter; 0 means one per CPU (the default,
    /// like compileall's `-j 0`); at most 1024. With several `--python`, a file is sent to
    /// each interpreter's worker at once: N workers of each run side by side. More workers
    /// than CPUs rarely help: compiling is CPU-bound.
    #[arg(short, long, env = "HASHPYC_JOBS", hide_env_values = true, value_name = "N", value_parser = parse_jobs_arg,
          help_heading = "Compilation")]
    pub jobs: Option<usize>,

    /// Give up on a file after SECS seconds in a worker and go on with the rest (0: never;
    /// at most 86400, a day).
    /// Small files go to a worker in groups; one of a group that times out is compiled
    /// again alone before it is given up on, so a hang can take up to twice SECS.
    #[arg(
        long,
        env = "HASHPYC_TIMEOUT", hide_env_values = true,
        default_value_t = 60.0,
        value_name = "SECS",
        value_parser = parse_timeout_arg,
        help_heading = "Compilation"
    )]
    pub timeout: f64,

    /// Where `timeout` was set when a configuration file set it.
    #[arg(skip)]
    pub timeout_from: Option<crate::config::Origin>,

    #[command(flatten)]
    pub embed: EmbedArgs,

    /// Hard-link the pycs of one source that are identical across optimization levels
    /// (needs two or more `-o`), like compileall's `--hardlink-dupes`. Fresh pycs written
    /// by an earlier run are linked too.
    #[arg(long, help_heading = "Layout")]
    pub hardlink_dupes: bool,

    /// Where `hardlink-dupes = true` came from when a configuration file set it.
    #[arg(skip)]
    pub hardlink_dupes_from: Option<crate::config::Origin>,

    /// The default (no hard links); overrides `hardlink-dupes = true` in the configuration.
    #[arg(long, overrides_with = "hardlink_dupes", help_heading = "Layout")]
    pub no_hardlink_dupes: bool,

    /// Print what would be compiled, rewritten, linked or skipped, and why, and a count,
    /// without writing anything or starting Python (beyond probing the interpreter); with
    /// `-W error` also the fresh files that would fail (their warnings remembered) or be
    /// checked for warnings (compiled in memory, nothing written). With `--format json`, as
    /// JSON Lines on stdout (see the README). Reports and counts the errors the run would
    /// (a source that cannot be read, a pyc that is a directory or a symlink, dangling or
    /// not, which the run refuses to write over). Exits as the run would as far as it knows: 1 when a file it
    /// lists fails (remembered) or on such an error, 0 otherwise.
    #[arg(short = 'n', long, help_heading = "Compilation")]
    pub dry_run: bool,

    /// Fail a file whose compile raises any warning (SyntaxWarning; before 3.12 also the
    /// DeprecationWarning of an invalid escape sequence), as `python -W error` does: the
    /// file is reported as failed with the warning, its pycs are not written, exit status 1.
    #[arg(long, help_heading = "Compilation")]
    pub warnings_as_errors: bool,

    /// The same as `--warnings-as-errors`, in Python's spelling (only `error` is accepted).
    #[arg(short = 'W', value_name = "error", value_parser = ["error"], help_heading = "Compilation")]
    pub warnings: Option<String>,

    #[command(flatten)]
    pub cache: CacheArgs,

    /// Output format: `text` (messages and a summary line on stderr), `json` (JSON Lines
    /// on stdout: one object per failure, warning or error, then a summary; with
    /// `--dry-run`, one `plan` object per listed line and a summary of what the run would
    /// do; see the README) or `github` (GitHub Actions annotations on stdout for the
    /// failures, warnings and per-file errors, with CPython's line and column; the rest as
    /// in text).
    #[arg(long, value_enum, default_value_t = CompileFormat::Text, help_heading = "Output",
          default_value_if("json", clap::builder::ArgPredicate::IsPresent, "json"))]
    pub format: CompileFormat,

    /// The same as `--format json` (which it may be given with; another `--format` it may
    /// not).
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Never show a progress bar (it is only shown when stderr is a terminal anyway).
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,
}

/// `-d`, `-s` and `-p`: the path embedded in each pyc (`co_filename`), shared by `compile`
/// (which embeds it) and `check` (which expects what `compile` would embed).
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Directory embedded as the source's directory in each pyc (`co_filename`, shown in
    /// tracebacks when the source is not found), instead of the path as walked. Like
    /// compileall's `-d`. Cannot be combined with `-s`/`-p`. `check` reports a pyc that
    /// embeds another path as stale, as `compile` would recompile it.
    #[arg(short = 'd', long = "ddir", value_name = "DIR", help_heading = "Embedded paths",
          conflicts_with_all = ["strip_prefix", "prepend_prefix"])]
    pub ddir: Option<PathBuf>,

    /// Remove this leading directory from the embedded path (compileall's `-s`, with the
    /// rule of compileall 3.13+ for every target): it must match whole leading components,
    /// else it is ignored (3.9–3.12's compileall removes the components equal to those at the
    /// same position instead); one warning per run counts the files where it does not.
    #[arg(short = 's', long = "strip-prefix", value_name = "DIR", help_heading = "Embedded paths")]
    pub strip_prefix: Option<PathBuf>,

    /// Prepend this directory to the embedded path, after `-s` (compileall's `-p`). As
    /// compileall joins them (`os.path.join`), a path still absolute after `-s` is kept as
    /// it is; one warning per run counts the files where `-p` has no effect.
    #[arg(short = 'p', long = "prepend-prefix", value_name = "DIR", help_heading = "Embedded paths")]
    pub prepend_prefix: Option<PathBuf>,

    /// Where `ddir` was set when a configuration file set it.
    #[arg(skip)]
    pub ddir_from: Option<crate::config::Origin>,

    /// Where `strip-prefix` came from when a configuration file set it, for its warning.
    #[arg(skip)]
    pub strip_prefix_from: Option<crate::config::Origin>,

    /// Where `prepend-prefix` came from when a configuration file set it, for its warning.
    #[arg(skip)]
    pub prepend_prefix_from: Option<crate::config::Origin>,
}

/// `--config` and `--no-config`, shared by `compile`, `check`, `inspect` and `cache`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Read the settings from FILE: a `pyproject.toml` with a `[tool.hashpyc]` table, or a
    /// `hashpyc.toml` (the same keys at the top level). Without it, the first
    /// `.hashpyc.toml`, `hashpyc.toml` or `pyproject.toml` with `[tool.hashpyc]` in the
    /// current directory or above is used. Precedence: a flag on the command line, then its
    /// environment variable, then the configuration file, then the built-in default.
    #[arg(
        long,
        value_name = "FILE",
        env = "HASHPYC_CONFIG",
        hide_env_values = true,
        help_heading = "Configuration"
    )]
    pub config: Option<PathBuf>,

    /// Whether `config` came from `HASHPYC_CONFIG`, for its errors.
    #[arg(skip)]
    pub config_from_env: bool,

    /// What loading the configuration has to say, kept for `--format json` to print as
    /// `notice` objects on stdout (in text mode it goes to stderr when the file is loaded):
    /// the `pyproject.toml` files passed over, then `-v`'s `configuration: …` line.
    #[arg(skip)]
    pub described: Vec<String>,

    /// Set when the configuration was discovered from the working directory (no `--config`,
    /// no `--no-config`): configuration files below it, beside the paths named, are then
    /// not used, and said so (`settings::nested_config_warning`).
    #[arg(skip)]
    pub discovered: bool,

    /// The configuration file the run uses, absolute (none: no file, or `--no-config`), for
    /// a hint that suggests a command to run in another directory, where discovery could
    /// find another file.
    #[arg(skip)]
    pub in_effect: Option<PathBuf>,

    /// The project's `requires-python`, read with the configuration for the warning of
    /// targets it excludes (`crate::requires_python`).
    #[arg(skip)]
    pub requires_python: Option<crate::requires_python::RequiresPython>,

    /// Ignore configuration files: only flags, environment variables and the built-in
    /// defaults apply. With `--config` too, the later of the two on the command line wins.
    #[arg(long, env = "HASHPYC_NO_CONFIG", hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new(),
          default_value_t = false, help_heading = "Configuration")]
    pub no_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompileFormat {
    /// Per-file messages and a summary line on stderr.
    Text,
    /// JSON Lines on stdout (see the README); nothing on stderr but operational errors.
    Json,
    /// GitHub Actions workflow annotations on stdout (`::error file=…,line=…,col=…::…`) for
    /// failures, warnings and per-file errors; other messages and the summary on stderr.
    Github,
}

/// The bytecode cache of `compile` (not to be confused with hashpyc's state directory,
/// which holds interpreter probes and remembered failures; see `HASHPYC_STATE_DIR`).
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Reuse compiled bytecode stored in DIR, and store what is compiled: a file compiled
    /// once, anywhere, is written from DIR next time, byte-identical to a real compile at
    /// its new path. Off unless given: in a Dockerfile RUN step, a cache in the image
    /// layer would be a second copy of every pyc (use a cache mount).
    #[arg(
        long,
        value_name = "DIR",
        env = "HASHPYC_CACHE",
        hide_env_values = true,
        help_heading = "Bytecode cache"
    )]
    pub cache: Option<PathBuf>,

    /// A shared cache on a server, as a second tier after DIR (or alone):
    /// `s3://BUCKET/PREFIX` (credentials as the AWS SDKs find them: `AWS_*` variables,
    /// `AWS_PROFILE` in `~/.aws/credentials` and `~/.aws/config`, container credentials;
    /// region and endpoint from `AWS_*` variables or the profile) or `http(s)://[USER:PASSWORD@]HOST/PREFIX` (GET and PUT, e.g. nginx
    /// WebDAV; a bearer token from `HASHPYC_CACHE_TOKEN`). Transient server errors (HTTP
    /// 500, 502, 503, 504, 429, a reset connection) are retried, briefly. Network trouble
    /// never fails a build: the remote tier is switched off for the run, with one warning.
    #[arg(long, value_name = "URL", env = "HASHPYC_CACHE_URL", hide_env_values = true, value_parser = parse_cache_url_arg,
          help_heading = "Bytecode cache")]
    pub cache_url: Option<String>,

    /// Where `cache-url` came from when not from the flag, for its errors.
    #[arg(skip)]
    pub cache_url_from: Option<crate::config::Origin>,

    /// Where the cache directory came from when not from `--cache` (`HASHPYC_CACHE`, a
    /// file's `cache`), for the warning when it cannot be used.
    #[arg(skip)]
    pub cache_from: Option<crate::config::Origin>,

    /// Do not use the bytecode cache, even if `--cache`, `--cache-url`, their variables or
    /// the configuration name one. Its variable also turns off the state directory, as
    /// `HASHPYC_NO_STATE` does.
    #[arg(long, env = "HASHPYC_NO_CACHE", hide_env_values = true, value_parser = parse_bool_env, default_value_t = false,
          help_heading = "Bytecode cache")]
    pub no_cache: bool,

    /// Use the cache's entries but never store any, in any tier (for untrusted builds, such
    /// as pull requests from forks). A local directory that does not exist is then an empty
    /// cache, not a warning.
    #[arg(long, env = "HASHPYC_CACHE_READ_ONLY", hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new(),
          default_value_t = false, help_heading = "Bytecode cache")]
    pub cache_read_only: bool,

    /// The default (the cache stores what is compiled); overrides `cache-read-only = true`
    /// in the configuration and `HASHPYC_CACHE_READ_ONLY`.
    #[arg(long, help_heading = "Bytecode cache")]
    pub no_cache_read_only: bool,

    /// Size limit of the cache directory, least recently used entries removed first when
    /// it is passed (e.g. `500MB`, `1GiB`; K/M/G are powers of 1000, KiB/MiB/GiB of 1024).
    /// The default holds the bytecode of about ten large environments (README, "Size").
    /// `hashpyc cache prune` without `--max-size` prunes to this limit too.
    #[arg(long, value_name = "SIZE", env = "HASHPYC_CACHE_MAX_SIZE", hide_env_values = true, default_value = DEFAULT_CACHE_MAX_SIZE,
          value_parser = parse_size_arg, help_heading = "Bytecode cache")]
    pub cache_max_size: u64,
}

/// A boolean flag's value from its variable, as [`crate::env::flag`] reads it; a value that
/// is not a boolean is taken as on here and refused by name before the run reads anything
/// ([`crate::env::check`]), as for the variables that stand for no flag.
pub fn parse_bool_env(s: &str) -> Result<bool, std::convert::Infallible> {
    Ok(crate::env::word(s).unwrap_or(true))
}

/// The environment variables that stand in for flags (`HASHPYC_CACHE`, `HASHPYC_JOBS`, …),
/// collected from the command definitions.
pub fn flag_env_vars() -> Vec<std::ffi::OsString> {
    fn collect(cmd: &clap::Command, out: &mut Vec<std::ffi::OsString>) {
        out.extend(cmd.get_arguments().filter_map(|a| a.get_env().map(std::ffi::OsStr::to_os_string)));
        for sub in cmd.get_subcommands() {
            collect(sub, out);
        }
    }
    let mut out = Vec::new();
    collect(&<Cli as clap::CommandFactory>::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

/// The long flag whose variable `var` is (`--no-cache` for `HASHPYC_NO_CACHE`), if any.
pub fn flag_of_env(var: &str) -> Option<String> {
    fn find(cmd: &clap::Command, var: &str) -> Option<String> {
        cmd.get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var))
            .and_then(|a| a.get_long().map(|l| format!("--{l}")))
            .or_else(|| cmd.get_subcommands().find_map(|s| find(s, var)))
    }
    find(&<Cli as clap::CommandFactory>::command(), var)
}

/// clap names only the flag when it rejects a value that came from the flag's environment
/// variable (`invalid value 'x' for '--jobs <N>'` for `HASHPYC_JOBS=x`): when `err` is
/// such a rejection, the message naming the variable. The variable at fault is the one
/// without which `argv` no longer fails this way.
pub fn env_var_error(err: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else { return None };
    let rendered = err.to_string();
    let var = flag_env_vars().into_iter().filter(|v| std::env::var_os(v).is_some()).find(|var| {
        fn without(cmd: clap::Command, var: &std::ffi::OsStr) -> clap::Command {
            cmd.mut_args(|a| if a.get_env() == Some(var) { a.env(None) } else { a })
                .mut_subcommands(|c| without(c, var))
        }
        without(Cli::command(), var)
            .try_get_matches_from(argv)
            .err()
            .is_none_or(|e| e.to_string() != rendered)
    })?;
    let message = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    let message = message.split("\n\nFor more information").next().unwrap_or(message).trim_end();
    Some(message.replacen(
        &format!("'{arg}'"),
        &format!("{} (which stands for '{arg}')", var.to_string_lossy()),
        1,
    ))
}

/// `hashpyc cache stats|prune|clean --cache-url URL`: clap's `unexpected argument
/// '--cache-url' found` with a tip for `--cache` read as a typo; when `err` is that
/// rejection, the message `HASHPYC_CACHE_URL` gets there instead (those commands manage a
/// local cache directory only).
pub fn cache_url_error(err: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if err.kind() != ErrorKind::UnknownArgument || argv.get(1).is_none_or(|a| a != "cache") {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else { return None };
    if arg != "--cache-url" && !arg.starts_with("--cache-url=") {
        return None;
    }
    Some(
        "unexpected argument '--cache-url' (`hashpyc cache` manages a local cache directory only, not \
         the shared cache --cache-url names: its entries expire by the server's rules); give --cache \
         DIR, set HASHPYC_CACHE, or set `cache` in the configuration file"
            .into(),
    )
}

/// A word of the command line that starts with `-` but may be a file name (`-n.py`, which
/// pre-commit and `git ls-files` pass like any other): before `--`, longer than a short
/// flag, not `-` (stdin). Its index in `argv`.
fn dash_words(argv: &[OsString]) -> impl Iterator<Item = (usize, &OsString)> {
    let end = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.iter().enumerate().take(end).skip(1).filter(|(_, a)| {
        let b = a.as_encoded_bytes();
        b.len() > 2 && b[0] == b'-'
    })
}

/// `argv` with word `i` moved after `--` (added when there is none), the command a file
/// name starting with `-` needs.
fn moved_after_dashes(argv: &[OsString], i: usize) -> Vec<OsString> {
    let mut moved: Vec<OsString> = argv.to_vec();
    let word = moved.remove(i);
    if !moved.iter().any(|a| a == "--") {
        moved.push("--".into());
    }
    moved.push(word);
    moved
}

/// `argv` as a shell command line, `hashpyc` first, each word quoted as
/// [`crate::report::shell_word`] quotes it (a name that is not UTF-8 keeps its bytes).
fn shell_words(argv: &[OsString]) -> String {
    let mut words = vec!["hashpyc".to_string()];
    words.extend(argv[1..].iter().map(|a| crate::report::shell_word(a).into_owned()));
    words.join(" ")
}

/// The subcommand `argv` names (`hashpyc compile`, `hashpyc cache stats`).
fn command_path(argv: &[OsString]) -> String {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let mut path = "hashpyc".to_string();
    for word in argv.iter().skip(1) {
        let Some(sub) = word.to_str().and_then(|w| cmd.find_subcommand(w)).cloned() else { continue };
        path = format!("{path} {}", sub.get_name());
        cmd = sub;
    }
    path
}

/// Whether `word` names a file or directory relative to the current directory.
fn exists_here(word: &std::ffi::OsStr) -> bool {
    std::path::Path::new(word).symlink_metadata().is_ok()
}

/// A file name starting with `-` given before `--` (`hashpyc compile -n.py`): clap reads it
/// as a cluster of short flags and rejects a piece of it (`unexpected argument '-.'`), a
/// message that names neither the word nor the way out. When `err` comes from such a word
/// (one without which, given after `--`, `argv` no longer fails this way) that looks like a
/// file name (a `.py`, `.pyc` or a `/` in it) or is a file here, the message naming it and
/// the command that takes it as a file.
pub fn dash_file_error(err: &clap::Error, argv: &[OsString]) -> Option<String> {
    use clap::CommandFactory;
    if !err.use_stderr() {
        return None;
    }
    let rendered = err.to_string();
    let (i, word) = dash_words(argv).find(|(i, _)| {
        Cli::command()
            .try_get_matches_from(moved_after_dashes(argv, *i))
            .err()
            .is_none_or(|e| e.to_string() != rendered)
    })?;
    let text = word.to_string_lossy();
    let here = exists_here(word);
    if !(here || text.ends_with(".py") || text.ends_with(".pyc") || text.contains('/')) {
        return None;
    }
    let command = command_path(argv);
    // Clap's first paragraph, which quotes a character of the word raw (`'-<newline>'` for
    // `-n<newline>l.py`): a control character in it escaped, so that it is one line.
    let reason = rendered.strip_prefix("error: ").unwrap_or(&rendered);
    let reason = reason.split("\n\n").next().unwrap_or(reason).trim_end();
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
        .collect();
    Some(format!(
        "{} is not an option of `{command}` (read as options: {reason}){}; a file name that starts \
         with `-` goes after `--`, which ends the options: `{}`",
        crate::report::ticked(std::path::Path::new(word)),
        if here { ", and is a file in the current directory" } else { "" },
        shell_words(&moved_after_dashes(argv, i)),
    ))
}

/// A file name starting with `-` that clap took as a short option with its value
/// (`hashpyc compile a.py -x.py`: `-x .py`, an `--exclude-regex` that skips every file) while a
/// file of that name is in the current directory, as pre-commit passes a staged file: the
/// error saying so, with the two ways to write what was meant.
pub fn dash_file_taken_as_option(argv: &[OsString]) -> Option<String> {
    use clap::CommandFactory;
    let (i, word) =
        dash_words(argv).find(|(_, w)| !w.as_encoded_bytes().starts_with(b"--") && exists_here(w))?;
    let text = word.to_string_lossy();
    let command = command_path(argv);
    let mut cmd = Cli::command();
    cmd.build();
    let sub = command.split(' ').skip(1).try_fold(&cmd, |c, name| c.find_subcommand(name));
    let short = text.chars().nth(1)?;
    let read_as = match sub.and_then(|c| c.get_arguments().find(|a| a.get_short() == Some(short))) {
        Some(arg) if arg.get_action().takes_values() => {
            let value = &text[1 + short.len_utf8()..];
            let value = value.strip_prefix('=').unwrap_or(value);
            format!("the option `-{short}` with the value `{value}` (write `-{short} {value}` to mean that)")
        }
        _ => "options".to_string(),
    };
    Some(format!(
        "{} is a file in the current directory, but `{command}` read it as {read_as}; a file name \
         that starts with `-` goes after `--`, which ends the options: `{}`",
        crate::report::ticked(std::path::Path::new(word)),
        shell_words(&moved_after_dashes(argv, i)),
    ))
}

/// The most workers `--jobs` starts: each is a Python process of some 10-20 MB, and
/// compiling is CPU-bound, so a value far above the CPU count only costs memory.
pub const MAX_JOBS: usize = 1024;

/// `--jobs N`: 0 (one per CPU) to [`MAX_JOBS`].
pub fn parse_jobs_arg(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|_| format!("`{s}` is not a number of workers"))?;
    check_jobs(n)
}

/// The bound of `--jobs` and the `jobs` key.
pub fn check_jobs(n: usize) -> Result<usize, String> {
    if n > MAX_JOBS {
        return Err(format!(
            "{n} workers is more than the {MAX_JOBS} hashpyc starts at most (0 means one per CPU)"
        ));
    }
    Ok(n)
}

/// The longest `--timeout` (a day, as `HASHPYC_CACHE_TIMEOUT`'s): a longer wait for one
/// file is no different, and 1e20 seconds is no deadline a clock can hold.
pub const MAX_TIMEOUT: f64 = 86_400.0;

/// `--timeout SECS`: a number of seconds from 0 (never) to [`MAX_TIMEOUT`].
pub fn parse_timeout_arg(s: &str) -> Result<f64, String> {
    s.parse::<f64>().ok().filter(|t| timeout_in_range(*t)).ok_or_else(|| format!("`{s}` {TIMEOUT_RANGE}"))
}

/// Whether `--timeout` and the `timeout` key take `t` seconds.
pub fn timeout_in_range(t: f64) -> bool {
    (0.0..=MAX_TIMEOUT).contains(&t)
}

/// What a timeout out of range is not, after the value.
pub const TIMEOUT_RANGE: &str = "is not a number of seconds from 0 (never) to 86400 (a day)";

/// `--python X`: anything but the empty string, refused as the `python` key refuses it (a
/// variable set to the empty string counts as unset and never gets here).
pub fn parse_python_arg(s: OsString) -> Result<OsString, String> {
    if s.is_empty() {
        return Err("an empty interpreter name".into());
    }
    match s.to_str().and_then(crate::target::refused_request) {
        Some(reason) => Err(reason),
        None => Ok(s),
    }
}

/// `--target X.Y`: any text, judged with its reason where the targets are chosen
/// (`settings`); it offers the built-in table's versions to shell completion, which
/// offered file names. (The help names the range itself.)
#[derive(Clone, Copy, Debug)]
pub struct TargetVersionParser;

impl clap::builder::TypedValueParser for TargetVersionParser {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
            crate::target::KNOWN.iter().map(|k| &*format!("{}.{}", k.minor.0, k.minor.1).leak()).collect()
        });
        Some(Box::new(NAMES.iter().map(|&name| clap::builder::PossibleValue::new(name))))
    }
}

/// The command line as shell completion shows it: each flag's and subcommand's first
/// sentence only. fish and zsh print the description beside every candidate, and the
/// whole paragraph that `--help` gives filled the screen.
pub fn for_completion(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| match a.get_help().map(|h| brief(&h.to_string())) {
        Some(short) => a.help(short),
        None => a,
    });
    let cmd = match cmd.get_about().map(|h| brief(&h.to_string())) {
        Some(short) => cmd.about(short),
        None => cmd,
    };
    cmd.mut_subcommands(for_completion)
}

/// `-h`'s line for an option: the first sentence of its help ([`brief`]); the whole text
/// stays `--help`'s (and the man pages').
pub fn summarize_arg(arg: clap::Arg) -> clap::Arg {
    summarize_arg_of("hashpyc", arg)
}

/// `-h`'s line for an option whose first sentence, cut to a line, would lose what it does:
/// the command, the option's id, the line.
const SHORT_HELP: &[(&str, &str, &str)] = &[
    (
        "compile",
        "dry_run",
        "Print what would be compiled, rewritten, linked or skipped, and why, writing nothing",
    ),
    ("compile", "no_cache", "Do not use the bytecode cache, even if one is named"),
    (
        "inspect",
        "pycache_prefix",
        "Look for pycs and sources in the tree under DIR mirroring each source's directory",
    ),
];

/// [`summarize_arg`] for an option of `command`.
fn summarize_arg_of(command: &str, arg: clap::Arg) -> clap::Arg {
    let Some(help) = arg.get_help().map(ToString::to_string) else { return arg };
    let long = arg.get_long_help().map_or_else(|| help.clone(), ToString::to_string);
    let short = SHORT_HELP
        .iter()
        .find(|(c, id, _)| *c == command && arg.get_id() == *id)
        .map_or_else(|| brief(&help), |(_, _, line)| (*line).to_string());
    if short == long {
        return arg;
    }
    arg.help(short).long_help(long)
}

/// A command as `-h` shows it: each option on one line ([`summarize_arg`]), the command's
/// own description cut to its first sentence in the list of commands and at the top of
/// `-h`, and an end saying what `--help` adds; its subcommands alike.
pub fn summarize(cmd: clap::Command) -> clap::Command {
    let name = cmd.get_name().to_string();
    let mut cmd = cmd.mut_args(|a| summarize_arg_of(&name, a)).mut_subcommands(summarize);
    if let Some(about) = cmd.get_about().map(ToString::to_string) {
        let long = cmd.get_long_about().map_or_else(|| about.clone(), ToString::to_string);
        cmd = cmd.about(brief(&about)).long_about(long);
    }
    if cmd.get_after_help().is_none() {
        cmd = cmd.after_help(PLAIN_SHORT_AFTER_HELP);
    }
    cmd
}

/// The first sentence of a help text, without its final period: up to the first `. ` or
/// `; ` outside parentheses and backquotes (`e.g.` and `i.e.` end none); one still longer
/// than a line is cut at its first `: ` there, if any.
pub fn brief(help: &str) -> String {
    let (mut depth, mut quoted, mut colon) = (0usize, false, None);
    let mut end = help.len();
    for (i, c) in help.char_indices() {
        match c {
            '`' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth = depth.saturating_sub(1),
            '.' | ';' | ':' if !quoted && depth == 0 && help[i + 1..].starts_with(char::is_whitespace) => {
                let before = &help[..i];
                if c == ':' {
                    colon.get_or_insert(i);
                } else if !(before.ends_with("e.g") || before.ends_with("i.e")) {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let sentence = match colon {
        Some(at) if help[..end].chars().count() > 100 && at < end => &help[..at],
        _ => help[..end].trim_end_matches('.'),
    };
    if sentence.chars().count() <= 100 {
        return sentence.to_string();
    }
    let short = without_asides(sentence);
    if short.chars().count() <= 100 {
        return short;
    }
    // Still long: up to its last `, ` (outside backquotes and parentheses) that leaves a line.
    let (mut cut, mut depth, mut quoted) = (None, 0usize, false);
    for (i, c) in short.char_indices() {
        match c {
            '`' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted
                && depth == 0
                && short[i + 1..].starts_with(' ')
                && short[..i].chars().count() <= 100 =>
            {
                cut = Some(i)
            }
            _ => {}
        }
    }
    match cut {
        Some(at) => short[..at].to_string(),
        None => short,
    }
}

/// A sentence without its asides in parentheses.
fn without_asides(sentence: &str) -> String {
    let (mut short, mut depth, mut quoted) = (String::new(), 0usize, false);
    for c in sentence.chars() {
        match c {
            '`' if depth == 0 => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                if depth == 1 {
                    short.truncate(short.trim_end().len());
                }
                continue;
            }
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            short.push(c);
        }
    }
    short
}

/// `-o LEVEL`: 0, 1 or 2. compileall's `-o -1`, the interpreter's own level, is what
/// leaving `-o` out does here: said so (clap's tip, `use '-- -1'`, led nowhere).
pub fn parse_level(s: &str) -> Result<u8, String> {
    match s.trim().parse::<i64>() {
        Ok(level @ 0..=2) => Ok(level as u8),
        Ok(-1) => Err("-1 is compileall's \"the interpreter's level\": leave out -o, and hashpyc takes the \
                       level from PYTHONOPTIMIZE as compileall does"
            .into()),
        _ => Err(format!("`{s}` is not an optimization level: 0, 1 or 2")),
    }
}

/// `--exclude GLOB`: text; a glob that is not UTF-8 is refused naming the flag (clap's own
/// refusal names none), with the glob that matches such a name.
pub fn parse_glob_arg(s: OsString) -> Result<String, String> {
    s.into_string().map_err(|s| {
        format!(
            "{} is not UTF-8: a glob is text; `?` matches a byte of a name that is not UTF-8",
            crate::report::ticked(std::path::Path::new(&s))
        )
    })
}

/// `--exclude-regex REGEX`: text, as [`parse_glob_arg`].
pub fn parse_regex_arg(s: OsString) -> Result<String, String> {
    s.into_string().map_err(|s| {
        format!(
            "{} is not UTF-8: a regular expression is text; `.` matches a byte of a name that is not UTF-8",
            crate::report::ticked(std::path::Path::new(&s))
        )
    })
}

/// `--cache-url URL`: anything but the empty string (or only whitespace, which is removed
/// around a URL), refused as the `cache-url` key refuses it.
pub fn parse_cache_url_arg(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("an empty URL (leave --cache-url out for no shared cache)".into())
    } else {
        Ok(s.to_owned())
    }
}

/// The cache's size limit when neither `--cache-max-size` (`cache prune --max-size`),
/// `HASHPYC_CACHE_MAX_SIZE` nor the `cache-max-size` key sets one.
pub const DEFAULT_CACHE_MAX_SIZE: &str = "2GiB";

/// `500MB`, `1GiB`, `1M`: K/M/G decimal, KiB/MiB/GiB binary, as ccache and parse-size read them.
pub fn parse_size_arg(s: &str) -> Result<u64, String> {
    if s.trim().is_empty() {
        return Err("an empty size (leave it out for the default)".into());
    }
    parse_size::parse_size(s).map_err(|e| format!("`{s}` is not a size like 500MB or 1GiB: {e}"))
}

/// `hashpyc cache …`: the bytecode cache directory.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, size on disk, and hits/misses/stores/damaged since counting began.
    ///
    /// Hits, misses and stores count pycs, one per source, interpreter and optimization
    /// level: what a cache entry is keyed on. A file that does not compile counts once per
    /// level; a build into an empty or new cache makes no lookups but counts a miss for
    /// each pyc it compiles; `compile --force` looks nothing up (no hits or misses) and
    /// stores what it compiled. The hit rate is hits / (hits + misses). Damaged, errors
    /// and timeouts count events: entries found damaged, failed reads, writes or requests;
    /// the remote tier's retries, requests sent again after a transient failure. A cache
    /// directory that does not exist yet, or an empty one, is an empty cache (0 entries),
    /// with a note.
    Stats {
        #[command(flatten)]
        dir: CacheDirArg,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = StatsFormat::Text,
              default_value_if("json", clap::builder::ArgPredicate::IsPresent, "json"))]
        format: StatsFormat,
        /// The same as `--format json` (which it may be given with; `--format text` it may
        /// not).
        #[arg(long)]
        json: bool,
    },
    /// Remove least recently used entries until the cache takes at most SIZE (nothing to
    /// do, with a note, when the directory does not exist yet or is empty).
    ///
    /// Without `--max-size`, the limit `compile --cache` applies after a build:
    /// `HASHPYC_CACHE_MAX_SIZE`, else `cache-max-size` in the configuration file, else 2GiB.
    /// The output names the limit and where it came from.
    Prune {
        #[command(flatten)]
        dir: CacheDirArg,
        /// The size to prune to (e.g. `500MB`, `1GiB`, `0`; K/M/G are powers of 1000,
        /// KiB/MiB/GiB of 1024); default: `cache-max-size` in the configuration file, else
        /// 2GiB, as for `compile --cache`.
        #[arg(long, value_name = "SIZE", env = "HASHPYC_CACHE_MAX_SIZE", hide_env_values = true, value_parser = parse_size_arg)]
        max_size: Option<u64>,
        /// Where the limit came from (`--max-size`, `HASHPYC_CACHE_MAX_SIZE`, the file's
        /// key, the default), once [`crate::settings::apply_config`] has resolved it.
        #[arg(skip)]
        max_size_from: String,
    },
    /// Remove every entry and the statistics (never other files in the directory, even under its `v1/`;
    /// nothing to do, with a note, when the directory does not exist yet or is empty).
    Clean {
        #[command(flatten)]
        dir: CacheDirArg,
    },
}

#[derive(Debug, Args)]
pub struct CacheDirArg {
    /// The bytecode cache directory (default: `cache` in the configuration file, as for
    /// `compile`).
    #[arg(long = "cache", value_name = "DIR", env = "HASHPYC_CACHE", hide_env_values = true)]
    pub dir: Option<PathBuf>,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Where the directory was set when not by `--cache` (`HASHPYC_CACHE`, `` `cache` in
    /// `hashpyc.toml` line 1``), for its errors, as `compile` names it.
    #[arg(skip)]
    pub dir_from: Option<String>,
}

impl CacheDirArg {
    /// The directory, once [`crate::settings::apply_config`] has filled it in.
    pub fn path(&self) -> &std::path::Path {
        self.dir.as_deref().expect("cache directory resolved by apply_config")
    }
}

/// `check`'s words for `-q` and `-v` (`OutputArgs` describes compile's: check has no
/// progress bar and writes nothing).
const CHECK_QUIET_HELP: &str = "Print less: `-q` hides the summary, `-qq` also the hints and notes (findings and \
     errors are always printed)";
const CHECK_VERBOSE_HELP: &str = "Print more: where the configuration came from and where each setting came from (a \
     key of the file, replaced or not used; an environment variable), the interpreters probed, how many pycs were \
     read only up to their header (with `--format json`, each line a `notice` object on stdout). A repeated `-v` adds \
     nothing";

#[derive(Debug, Args)]
#[command(mut_arg("quiet", |a| a.help(CHECK_QUIET_HELP)), mut_arg("verbose", |a| a.help(CHECK_VERBOSE_HELP)))]
pub struct CheckArgs {
    /// Files and directories to check (default: the current directory, its files spelled
    /// `src/m.py`); `-` reads paths from stdin, one per line (or NUL-separated with
    /// `--null`), spaces around a name kept as part of it.
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Check against CPython X.Y from the built-in table (3.7–3.15) instead of probing an
    /// interpreter, e.g. in a CI job that has no Python. Repeatable. Cannot be combined
    /// with `--python`; it overrides `HASHPYC_PYTHON` and the configuration's `python`.
    #[arg(long = "target", value_name = "X.Y", help_heading = "Target", value_parser = TargetVersionParser,
          hide_possible_values = true)]
    pub target_version: Vec<String>,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub layout: LayoutArgs,

    #[command(flatten)]
    pub embed: EmbedArgs,

    /// Which pycs count as ok: `checked` (checked hash-based only), `unchecked` (unchecked
    /// hash-based only) or `any` (either hash-based kind). Default: what the configuration's
    /// `invalidation-mode` writes (`unchecked` for `unchecked-hash`), else `checked`.
    #[arg(long, value_enum, default_value_t = CheckMode::Checked, hide_default_value = true,
          help_heading = "Verdicts", alias = "invalidation-mode")]
    pub mode: CheckMode,

    /// The configuration's `invalidation-mode` is `unchecked-hash`: what a plain `compile`
    /// writes (so advice to write checked-hash pycs names the flag).
    #[arg(skip)]
    pub compile_unchecked: bool,

    /// Also report pycs in `__pycache__` directories whose source is gone; with `--legacy`,
    /// also `X.pyc` files of a checked interpreter beside the sources with no `X.py`
    /// (Python imports those as sourceless modules); with `--pycache-prefix` (or
    /// `PYTHONPYCACHEPREFIX`), also the pycs under the prefix's mirror of each directory
    /// walked, and of directories since deleted that the walk would enter (not elsewhere in
    /// the prefix tree), whose source is gone, any interpreter's as in `__pycache__`. The pycs of every
    /// directory walked are searched, in either layout: ignore files that list
    /// `__pycache__/` or `*.pyc` do not hide them, and the selection flags (`--exclude`,
    /// `--respect-gitignore`, `--skip-hidden`, `--max-depth`) give the same strays with or
    /// without a prefix.
    #[arg(long, help_heading = "Verdicts")]
    pub stray: bool,

    /// The default (stray pycs are not reported); overrides `stray = true` in the
    /// configuration.
    #[arg(long, overrides_with = "stray", help_heading = "Verdicts")]
    pub no_stray: bool,

    /// Output format for findings on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text, help_heading = "Output",
          default_value_if("json", clap::builder::ArgPredicate::IsPresent, "json"))]
    pub format: Format,

    /// The same as `--format json` (which it may be given with; another `--format` it may
    /// not).
    #[arg(long, help_heading = "Output")]
    pub json: bool,

    /// Also list the sources that are ok.
    #[arg(long, help_heading = "Output")]
    pub all: bool,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Accepted as `compile` takes it (the `hashpyc-check` pre-commit hook passes it);
    /// `check` never shows a progress bar.
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,

    /// Threads that walk the tree and hash the sources, taken as `compile --jobs` takes its
    /// value (so that one set of flags serves both): 0 means one per CPU (the default); at
    /// most 1024, and never more threads than CPUs. `check` starts no Python workers (its
    /// interpreters are probed one at a time).
    #[arg(short, long, env = "HASHPYC_JOBS", hide_env_values = true, value_name = "N", value_parser = parse_jobs_arg)]
    pub jobs: Option<usize>,

    /// An option `compile` takes too was given on the command line (see
    /// [`compile_options_given`]): the hint naming the `compile` that fixes the findings
    /// says to give it again.
    #[arg(skip)]
    pub compile_options_given: bool,
}

/// Whether `m`, `check`'s matches, holds on the command line an option `compile` takes too
/// (the interpreters, the selection, the layout, the paths embedded, the configuration,
/// `--null`): what `compile` writes for the same paths depends on them.
pub fn compile_options_given(m: &clap::ArgMatches) -> bool {
    let shared = [
        TargetArgs::augment_args,
        SelectArgs::augment_args,
        LayoutArgs::augment_args,
        EmbedArgs::augment_args,
        ConfigArgs::augment_args,
        InputArgs::augment_args,
    ];
    shared.iter().any(|augment| {
        augment(clap::Command::new("check"))
            .get_arguments()
            .any(|a| m.value_source(a.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckMode {
    // compile's names of the modes are taken too, unsaid (`check --invalidation-mode
    // unchecked-hash` beside a compile of that mode).
    #[value(alias = "checked-hash")]
    Checked,
    #[value(alias = "unchecked-hash")]
    Unchecked,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding: `stale  pkg/mod.py` (a name holding a newline or another
    /// control character, or bytes that are not UTF-8, is quoted and escaped:
    /// `"pkg/a\nb.py"`).
    Text,
    /// JSON Lines: one object per finding, error or notice, then a summary object (see the
    /// README); nothing on stderr but operational errors.
    Json,
    /// GitHub Actions workflow annotations (`::error file=…::…`).
    Github,
}

/// `cache stats --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatsFormat {
    /// Labelled lines: entries, size on disk, runs, and the counts of each tier.
    Text,
    /// One JSON object: `type` (`"cache"`), `cache`, `exists` (false for a directory no
    /// build has created yet, counted as empty), `entries`, `bytes`, `temporary_files`,
    /// `since`, `runs`, `tiers`.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    /// A few labelled lines per pyc.
    Text,
    /// JSON Lines: one object per pyc (see the README).
    Json,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// pyc files to describe. A `.py` source stands for every pyc of it that exists: in
    /// `__pycache__/` (any interpreter, any optimization level), under the pycache prefix
    /// when there is one (`--pycache-prefix`, else the configuration's `pycache-prefix`,
    /// else `PYTHONPYCACHEPREFIX`, as for `check`), and `<source>c` beside it (`-b`). `-`
    /// reads paths from stdin, one per line (or NUL-separated with `--null`), as for
    /// `check`.
    #[arg(value_name = "FILE.pyc", required = true)]
    pub files: Vec<OsString>,

    #[command(flatten)]
    pub input: InputArgs,

    /// Look for a source's pycs, and a pyc's source, in the tree under DIR mirroring each
    /// source's absolute directory, as with CPython's `PYTHONPYCACHEPREFIX`. Default: the
    /// configuration's `pycache-prefix` (none when it sets `legacy = true`), else
    /// `PYTHONPYCACHEPREFIX`.
    #[arg(long, value_name = "DIR")]
    pub pycache_prefix: Option<PathBuf>,

    /// The pycache prefix and what set it, once [`crate::settings::apply_config`] has
    /// resolved it: `--pycache-prefix`, the configuration's key, `PYTHONPYCACHEPREFIX`.
    #[arg(skip)]
    pub prefix: Option<(PathBuf, String)>,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = InspectFormat::Text,
          default_value_if("json", clap::builder::ArgPredicate::IsPresent, "json"))]
    pub format: InspectFormat,

    /// The same as `--format json` (which it may be given with; `--format text` it may not).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub color: ColorArgs,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Paths read from stdin (`-`) are separated by NUL bytes, as `git ls-files -z` and
    /// `find -print0` write them. Needs `-` among the paths (an error without it: `compile`
    /// and `check` would otherwise walk the current directory instead of the list).
    #[arg(short = '0', long = "null", help_heading = "Input")]
    pub null: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Target interpreter: a path, a name looked up on PATH, or a version as uv takes it
    /// (`3.12`, `3.12.1`, `312`, `cpython@3.12`; `3.13t` for a free-threaded build, `3.14d`
    /// or `3.14+debug` for a debug build, `3.14td` for both: the first `python3.12`, then
    /// `python3` or `python`, on PATH that is that version, for a variant only `python3.13t`,
    /// `python3.14d`, `python3.14td`; a range, `>=3.12`, is refused). Default: `python3`; the
    /// summary line names the version it found. Repeat for several interpreters in one run
    /// (one walk, one read per source); one build named twice (a launcher and the
    /// interpreter behind it) is one target, and two builds whose pycs are the same files
    /// (one cache tag, or any two with `--legacy`) are refused. CPython 3.7 or newer.
    #[arg(long, value_name = "PATH|VERSION", env = "HASHPYC_PYTHON", hide_env_values = true,
          value_parser = clap::builder::TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), parse_python_arg),
          help_heading = "Target")]
    pub python: Vec<OsString>,

    /// Where `python` came from when not from the flag (`` `pyproject.toml` line 3``,
    /// `HASHPYC_PYTHON`), so that a missing interpreter is reported there.
    #[arg(skip)]
    pub python_from: Option<crate::config::Origin>,
    /// Where each element of the `python` key is, when a configuration file gave it (a
    /// list's element at its line and column), so that an interpreter not found is
    /// reported at its own element.
    #[arg(skip)]
    pub python_elements: Vec<crate::config::Origin>,
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Skip files and directories that `.gitignore` (inside git repositories), `.ignore`
    /// and git's exclude files ignore, as ripgrep does. Off by default: a virtualenv's own
    /// `.gitignore` (`*`) or a repository's `lib/`/`build/` rules must not hide installed
    /// code. The summary counts what it skipped.
    #[arg(long, help_heading = "Selection")]
    pub respect_gitignore: bool,

    /// Skip hidden files and directories (names starting with `.`). Off by default (a
    /// `.venv` under a named path is compiled). The summary counts what it skipped.
    #[arg(long, help_heading = "Selection")]
    pub skip_hidden: bool,

    /// The default (ignore files are not consulted); overrides `--respect-gitignore` and
    /// `respect-gitignore = true` in the configuration.
    #[arg(long, overrides_with = "respect_gitignore", help_heading = "Selection")]
    pub no_ignore: bool,

    /// The default (hidden entries are included); overrides `--skip-hidden` and
    /// `skip-hidden = true` in the configuration.
    #[arg(long, overrides_with = "skip_hidden", help_heading = "Selection")]
    pub hidden: bool,

    /// Skip files and directories matching this gitignore-style glob (repeatable), e.g.
    /// `--exclude 'tests/' --exclude '*_pb2.py'`; as in a `.gitignore`, a later `!GLOB`
    /// takes back what an earlier one skipped. A glob with a `/` (`/pkg/a.py`, `src/gen/`)
    /// is matched relative to the current directory, with or without a configuration file
    /// (the configuration's `exclude` globs relative to the file's directory, as ruff
    /// anchors them). Replaces the configuration's `exclude`.
    #[arg(long, value_name = "GLOB", help_heading = "Selection",
          value_parser = clap::builder::TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), parse_glob_arg))]
    pub exclude: Vec<String>,

    /// Apply `--exclude` and `--exclude-regex` to the paths named on the command line or
    /// stdin too (a directory, or a file, matched with its parent directories), as ruff's
    /// `--force-exclude`: for pre-commit hooks and `git ls-files | hashpyc compile -`, which
    /// name files one by one. By default a named path is taken, as compileall takes it,
    /// unless `--exclude-regex` matches it (compileall's `-x` applies to named files too);
    /// a named file whose name does not end in `.py` is skipped, as compileall skips it.
    /// The summary counts each named path skipped.
    #[arg(long, help_heading = "Selection")]
    pub force_exclude: bool,

    /// The default (named paths are taken, unless `--exclude-regex` matches them); overrides
    /// `force-exclude = true` in the configuration.
    #[arg(long, overrides_with = "force_exclude", help_heading = "Selection")]
    pub no_force_exclude: bool,

    /// The directory the `exclude` globs are relative to: the configuration file's when
    /// they come from it, else the current directory. Not a flag.
    #[arg(skip)]
    pub exclude_base: Option<PathBuf>,

    /// Skip files whose path as walked matches this regular expression (compileall's
    /// `-x`; searched anywhere in the path as this run spells it, relative to the current
    /// directory unless given absolute: `src/m.py` with no PATH and for a file named so,
    /// `./src/m.py` under `.`; so `(^|/)fixtures/`, not `/fixtures/`, skips a top-level
    /// `fixtures` directory in both). Applies to files named on the command line or stdin
    /// too, as compileall's does; the summary counts them.
    #[arg(short = 'x', long, value_name = "REGEX", help_heading = "Selection",
          value_parser = clap::builder::TypedValueParser::try_map(clap::builder::OsStringValueParser::new(), parse_regex_arg))]
    pub exclude_regex: Option<String>,

    /// Do not descend into subdirectories (same as `--max-depth 1`; cannot be combined with
    /// `--max-depth`).
    #[arg(short = 'l', long, conflicts_with = "max_depth", help_heading = "Selection")]
    pub no_recursion: bool,

    /// Descend at most N directory levels below each PATH: 1 takes a directory's own files (as
    /// compileall -l), 0 no file inside it (as fd and ripgrep).
    #[arg(long, value_name = "N", help_heading = "Selection")]
    pub max_depth: Option<usize>,

    /// Follow symbolic links to directories, walking each directory once (a link to a
    /// directory that holds it is reported as a loop; a directory reached both directly and
    /// through a link is compiled once, under the path without the link; under a pycache
    /// prefix, where each path has pycs of its own, once per path). A `.py` link that
    /// dangles or loops is a warning with or without it.
    #[arg(short = 'L', long, help_heading = "Selection")]
    pub follow: bool,

    /// The default (symbolic links to directories are not followed); overrides `follow =
    /// true` in the configuration.
    #[arg(long, overrides_with = "follow", help_heading = "Selection")]
    pub no_follow: bool,

    /// Skip source files that are symbolic links whose target resolves outside DIR, a
    /// directory (compileall's `-e`). Only links to files are checked: with `--follow`, a linked
    /// directory is walked wherever it points, and the files in it that are not links
    /// themselves are taken, as compileall does.
    #[arg(short = 'e', long = "limit-symlinks", value_name = "DIR", help_heading = "Selection")]
    pub limit_symlinks: Option<PathBuf>,

    /// Where `limit-symlinks` came from when a configuration file set it, for its errors.
    #[arg(skip)]
    pub limit_symlinks_from: Option<crate::config::Origin>,

    /// Where `max-depth` (or `no-recursion`) came from when a configuration file set it,
    /// for the messages about it.
    #[arg(skip)]
    pub max_depth_from: Option<crate::config::Origin>,

    /// Where `force-exclude = true` came from when a configuration file set it, for the
    /// summary's count of the paths it skipped.
    #[arg(skip)]
    pub force_exclude_from: Option<crate::config::Origin>,

    /// The directory of the configuration file, and the rules it set as written
    /// (`` `exclude = ["/tests/"]` in `pyproject.toml` line 2``), for a bare run whose
    /// working directory a run from there would not enter.
    #[arg(skip)]
    pub config_dir: Option<PathBuf>,
    #[arg(skip)]
    pub exclude_from: Option<String>,
    #[arg(skip)]
    pub respect_gitignore_from: Option<String>,
    #[arg(skip)]
    pub skip_hidden_from: Option<String>,
    /// `exclude-regex` and `limit-symlinks` as written in the configuration file with
    /// where, when the file set them, for the summary's counts.
    #[arg(skip)]
    pub exclude_regex_from: Option<String>,
    #[arg(skip)]
    pub limit_symlinks_written: Option<String>,
}

#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Optimization level: 0 (default, `.pyc`), 1 (`.opt-1.pyc`, asserts removed) or 2
    /// (`.opt-2.pyc`, docstrings too). Repeat for several. Without it (and without the
    /// configuration's `optimize`), the level CPython takes from `PYTHONOPTIMIZE`, as
    /// compileall does.
    #[arg(short = 'o', long = "optimize", value_name = "LEVEL", help_heading = "Layout",
          value_parser = parse_level, allow_negative_numbers = true)]
    pub optimize: Vec<u8>,

    /// Where `optimize` came from when a configuration file set it.
    #[arg(skip)]
    pub optimize_from: Option<crate::config::Origin>,

    /// pycs live in a tree under DIR mirroring each source's absolute directory, as with
    /// CPython's `PYTHONPYCACHEPREFIX` (which is honoured when this is not given).
    #[arg(long, value_name = "DIR", help_heading = "Layout")]
    pub pycache_prefix: Option<PathBuf>,

    /// Where `pycache-prefix` came from when a configuration file set it.
    #[arg(skip)]
    pub pycache_prefix_from: Option<crate::config::Origin>,

    /// pycs are `<source>c` beside each source instead of in `__pycache__` (compileall's
    /// `-b`). Python only imports such pycs when the source is absent.
    #[arg(short = 'b', long, help_heading = "Layout", conflicts_with = "pycache_prefix")]
    pub legacy: bool,

    /// Where `legacy = true` came from when a configuration file set it.
    #[arg(skip)]
    pub legacy_from: Option<crate::config::Origin>,

    /// The default (pycs in `__pycache__`); overrides `legacy = true` in the configuration.
    #[arg(long, overrides_with = "legacy", help_heading = "Layout")]
    pub no_legacy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// No argument read from the environment shows the variable's value in `-h`, `--help`
    /// or the man pages rendered from these definitions: `HASHPYC_CACHE_URL` may hold a
    /// URL's password, and a help printed in a CI log would show it (clap's
    /// `[env: NAME=value]`). All are hidden alike, so none is forgotten when one is added.
    #[test]
    fn help_shows_no_environment_value() {
        fn visit(cmd: &clap::Command, path: &str, unhidden: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|a| a.get_env().is_some()) {
                if !arg.is_hide_env_values_set() {
                    unhidden.push(format!("{path} --{}", arg.get_long().unwrap_or_default()));
                }
            }
            for sub in cmd.get_subcommands() {
                visit(sub, &format!("{path} {}", sub.get_name()), unhidden);
            }
        }
        let mut unhidden = Vec::new();
        visit(&Cli::command(), "hashpyc", &mut unhidden);
        assert!(unhidden.is_empty(), "these show their variable's value in help: {unhidden:?}");
    }

    /// Completion descriptions are each help's first sentence: fish and zsh show one per
    /// candidate.
    #[test]
    fn completion_descriptions_are_first_sentences() {
        assert_eq!(brief("Verify the tree. Reads files only."), "Verify the tree");
        assert_eq!(
            brief("Check (e.g. a CI job. Or not) this; then that"),
            "Check (e.g. a CI job. Or not) this"
        );
        assert_eq!(brief("Use it, e.g. in CI. More."), "Use it, e.g. in CI");
        assert_eq!(brief("Mode `a. b` here."), "Mode `a. b` here");
        let long = format!("Target interpreter: {}. More", "word ".repeat(30));
        assert_eq!(brief(&long), "Target interpreter");
        assert_eq!(brief("Short: kept whole"), "Short: kept whole");
        let aside = format!("Follow links, each once (a link {}), and more", "to a loop ".repeat(10));
        assert_eq!(brief(&aside), "Follow links, each once, and more");
        // A line at most: cut at its last `, ` that leaves one (not in backquotes).
        let x = ["the ignore files list"; 3].join(" ");
        let clauses = format!("Skip what {x}, as `a, b` do, as ripgrep does. More");
        assert_eq!(brief(&clauses), format!("Skip what {x}, as `a, b` do"));
        assert_eq!(brief("Kept (an aside) when short"), "Kept (an aside) when short");
    }

    /// `--target`'s help is written by hand: it must name the built-in table's range.
    #[test]
    fn target_help_names_the_table_range() {
        let known = crate::target::KNOWN;
        let (first, last) = (known[0].minor, known[known.len() - 1].minor);
        let range = format!("({}.{}–{}.{})", first.0, first.1, last.0, last.1);
        let mut cli = Cli::command();
        let check = cli.find_subcommand_mut("check").expect("check");
        let target = check.get_arguments().find(|a| a.get_long() == Some("target")).expect("--target");
        let help = target.get_long_help().or(target.get_help()).map(|h| h.to_string()).unwrap_or_default();
        assert!(help.contains(&range), "{help}");
    }
}
