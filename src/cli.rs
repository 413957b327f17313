//! The command line, as clap types only: what each flag means is in its doc comment, which
//! is also its `--help` text. `settings` turns these into validated, resolved options.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit status: 0 all good, 1 findings (a source that failed to compile, a pyc that `check`
finds missing or stale), 2 operational error (bad arguments, no usable interpreter, I/O
failure), 130 interrupted (SIGINT), 143 terminated (SIGTERM).";

/// Deterministic, hash-based Python bytecode (PEP 552) for whole trees, and a fast check
/// that a tree's bytecode is fresh.
#[derive(Debug, Parser)]
#[command(name = "hashpyc", version, about, long_about = None, after_help = AFTER_HELP)]
#[command(propagate_version = true, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print less: `-q` hides the progress bar and the summary, `-qq` also per-file warnings
    /// (errors are always printed).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub quiet: u8,

    /// Print more: every file written and why, and details of the interpreter probe.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// When to use colour on stderr.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, env = "HASHPYC_COLOR")]
    pub color: ColorChoice,

    /// Never show a progress bar (it is only shown when stderr is a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
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
    #[command(after_help = AFTER_HELP)]
    Compile(CompileArgs),

    /// Verify that every `.py` file under PATHs has a pyc that the target interpreter will
    /// accept and that matches the source. Reads files only; starts no Python to compile.
    ///
    /// One outcome per source: ok, missing, stale (source hash differs), timestamp (not
    /// hash-based), unchecked (hash-based but not checked, under `--mode checked`),
    /// invalid (short file, foreign magic, unknown flag bits). Findings go to stdout, the
    /// summary to stderr; exit status 1 when there is any finding.
    #[command(after_help = AFTER_HELP)]
    Check(CheckArgs),

    /// Describe pyc files: magic and Python version, mode, source hash and whether it
    /// matches the source (when the source is found), body size, embedded path.
    Inspect(InspectArgs),

    /// Print a completion script for SHELL to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// Files and directories to compile (default: the current directory). `-` reads paths
    /// from stdin, one per line (or NUL-separated with `--null`). A file named here is
    /// always compiled, even when hidden, ignored or not named `*.py`.
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub layout: LayoutArgs,

    /// Recompile every file, even those whose pyc is fresh.
    #[arg(short, long, help_heading = "Compilation")]
    pub force: bool,

    /// How the written pycs are validated on import: `checked-hash` (default: re-validated
    /// against the source, so an edited source is never shadowed) or `unchecked-hash`
    /// (trusted as is: fastest start-up, for images whose sources never change).
    /// `timestamp` is refused: it is the failure this tool exists to prevent. A fresh
    /// pyc of the other hash mode only gets its header rewritten.
    #[arg(long, value_name = "MODE", default_value = "checked-hash", help_heading = "Compilation")]
    pub invalidation_mode: String,

    /// Number of Python worker processes (default: the number of CPUs).
    #[arg(short, long, env = "HASHPYC_JOBS", value_name = "N", help_heading = "Compilation")]
    pub jobs: Option<usize>,

    /// Give up on a file after SECS seconds in a worker and go on with the rest (0: never).
    #[arg(
        long,
        env = "HASHPYC_TIMEOUT",
        default_value_t = 60.0,
        value_name = "SECS",
        help_heading = "Compilation"
    )]
    pub timeout: f64,

    /// Directory to embed as the source's directory in each pyc (`co_filename`, shown in
    /// tracebacks when the source is not found), instead of the path as walked. Like
    /// compileall's `-d`. Cannot be combined with `-s`/`-p`.
    #[arg(short = 'd', long = "ddir", value_name = "DIR", help_heading = "Embedded paths",
          conflicts_with_all = ["strip_prefix", "prepend_prefix"])]
    pub ddir: Option<PathBuf>,

    /// Remove this leading directory from the embedded path (compileall's `-s`): it must
    /// match whole leading components; a warning is printed for files where it does not.
    #[arg(short = 's', long = "strip-prefix", value_name = "DIR", help_heading = "Embedded paths")]
    pub strip_prefix: Option<PathBuf>,

    /// Prepend this directory to the embedded path, after `-s` (compileall's `-p`).
    #[arg(short = 'p', long = "prepend-prefix", value_name = "DIR", help_heading = "Embedded paths")]
    pub prepend_prefix: Option<PathBuf>,

    /// Hard-link the pycs of one source that are identical across optimization levels
    /// (needs two or more `-o`), like compileall's `--hardlink-dupes`.
    #[arg(long, help_heading = "Layout")]
    pub hardlink_dupes: bool,

    /// Print what would be compiled, rewritten or skipped, and why, without writing
    /// anything or starting Python (beyond probing the interpreter).
    #[arg(short = 'n', long, help_heading = "Compilation")]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files and directories to check (default: the current directory); `-` reads paths
    /// from stdin.
    #[arg(value_name = "PATH")]
    pub paths: Vec<OsString>,

    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    /// Check against CPython X.Y from the built-in table (3.7–3.15) instead of probing an
    /// interpreter, e.g. in a CI job that has no Python. Repeatable.
    #[arg(long = "target", value_name = "X.Y", help_heading = "Target", conflicts_with = "python")]
    pub target_version: Vec<String>,

    #[command(flatten)]
    pub select: SelectArgs,

    #[command(flatten)]
    pub layout: LayoutArgs,

    /// Which pycs count as ok: `checked` (default: checked hash-based only), `unchecked`
    /// (unchecked hash-based only) or `any` (either hash-based kind).
    #[arg(long, value_enum, default_value_t = CheckMode::Checked)]
    pub mode: CheckMode,

    /// Also report pycs in `__pycache__` directories whose source is gone.
    #[arg(long)]
    pub stray: bool,

    /// Output format for findings on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also list the sources that are ok.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckMode {
    Checked,
    Unchecked,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding: `stale  pkg/mod.py`.
    Text,
    /// JSON Lines: one object per finding, then a summary object (see the README).
    Json,
    /// GitHub Actions workflow annotations (`::error file=…::…`).
    Github,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// pyc files to describe.
    #[arg(value_name = "FILE.pyc", required = true)]
    pub files: Vec<PathBuf>,

    /// Print JSON Lines instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Paths read from stdin (`-`) are separated by NUL bytes, as `git ls-files -z` and
    /// `find -print0` write them.
    #[arg(short = '0', long = "null", help_heading = "Input")]
    pub null: bool,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Target interpreter: a path, or a name looked up on PATH (default: `python3`).
    /// Repeat to write pycs for several interpreters in one run (one walk, one read per
    /// source). CPython 3.7 or newer.
    #[arg(long, value_name = "PATH", env = "HASHPYC_PYTHON", help_heading = "Target")]
    pub python: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Do not respect `.gitignore`, `.ignore` and git's exclude files.
    #[arg(long, help_heading = "Selection")]
    pub no_ignore: bool,

    /// Include hidden files and directories (names starting with `.`).
    #[arg(long, help_heading = "Selection")]
    pub hidden: bool,

    /// Skip files and directories matching this gitignore-style glob (repeatable), e.g.
    /// `--exclude 'tests/' --exclude '*_pb2.py'`.
    #[arg(long, value_name = "GLOB", help_heading = "Selection")]
    pub exclude: Vec<String>,

    /// Skip files whose path as walked matches this regular expression (compileall's
    /// `-x`; searched anywhere in the path).
    #[arg(short = 'x', long, value_name = "REGEX", help_heading = "Selection")]
    pub exclude_regex: Option<String>,

    /// Do not descend into subdirectories (same as `--max-depth 1`).
    #[arg(short = 'l', long, help_heading = "Selection")]
    pub no_recursion: bool,

    /// Descend at most N directory levels below each PATH.
    #[arg(long, value_name = "N", help_heading = "Selection")]
    pub max_depth: Option<usize>,

    /// Follow symbolic links to directories (loops are detected and reported).
    #[arg(short = 'L', long, help_heading = "Selection")]
    pub follow: bool,

    /// Skip symbolic links whose target resolves outside DIR (compileall's `-e`).
    #[arg(short = 'e', long = "limit-symlinks", value_name = "DIR", help_heading = "Selection")]
    pub limit_symlinks: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LayoutArgs {
    /// Optimization level of the pycs: 0 (default, `.pyc`), 1 (`.opt-1.pyc`, asserts
    /// removed) or 2 (`.opt-2.pyc`, docstrings too). Repeat for several.
    #[arg(short = 'o', long = "optimize", value_name = "LEVEL", help_heading = "Layout",
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub optimize: Vec<u8>,

    /// Put pycs in a tree under DIR mirroring each source's absolute directory, as CPython
    /// does with `PYTHONPYCACHEPREFIX` (which is honoured when this is not given).
    #[arg(long, value_name = "DIR", help_heading = "Layout")]
    pub pycache_prefix: Option<PathBuf>,

    /// Write `<source>c` beside each source instead of using `__pycache__` (compileall's
    /// `-b`). Python only imports such pycs when the source is absent.
    #[arg(short = 'b', long, help_heading = "Layout", conflicts_with = "pycache_prefix")]
    pub legacy: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
