//! hashpyc: deterministic, checked hash-based Python bytecode (PEP 552) for whole trees.
//!
//! The pipeline, one module per stage: `cli` (clap types) → `settings` (resolved
//! options, interpreters probed by `target`) → `walk` (discovery) → `plan` (fresh,
//! header rewrite or compile, from `pyc` headers and `marshal` bodies) → `pool` (Python
//! workers, `worker.py` beside it) → `write` (atomic writes) → `report`. `check` and
//! `inspect` reuse walk, layout and pyc without starting Python to compile.

pub mod cache;
pub mod check;
pub mod cli;
pub mod compile;
pub mod config;
pub mod embed;
pub mod env;
#[cfg(test)]
mod fuzz;
pub mod globs;
pub mod inspect;
pub mod interrupt;
pub mod io;
pub mod layout;
pub mod marshal;
pub mod memo;
pub mod plan;
pub mod pool;
pub mod pyc;
pub mod report;
pub mod requires_python;
pub mod settings;
pub mod target;
pub mod verified;
pub mod walk;
pub mod write;

use thiserror::Error;

use crate::cli::{Cli, Command};
use std::io::Write;

use crate::report::Style;

/// How a run ended, as an exit status (ripgrep/ruff conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Everything fresh or compiled.
    Success,
    /// Findings: sources that failed to compile, stale pycs under `check`, per-file errors.
    Findings,
    /// Operational error: bad arguments, no usable interpreter.
    Error,
}

impl ExitStatus {
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Findings => 1,
            ExitStatus::Error => 2,
        }
    }
}

/// `-q`/`-v` counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Verbosity {
    pub quiet: u8,
    pub verbose: u8,
}

/// Operational errors: the run could not do its job (exit status 2).
#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Target(#[from] target::TargetError),
    #[error(transparent)]
    PathList(#[from] walk::PathListError),
    /// On one line, its causes after it (`cannot use `x` as the bytecode cache: not a
    /// directory`), as every other error.
    #[error("{}", pool::schedule::error_chain(.0))]
    Cache(cache::CacheError),
    #[error("interrupted")]
    Interrupted,
    /// Data could not be written to stdout, for another reason than a reader that closed
    /// it ([`report::written`]): the reason in words ([`io::io_reason`]).
    #[error("cannot write to standard output: {0}")]
    Stdout(String),
    /// A thread the run cannot do without could not be started (a process or memory
    /// limit): the reason in words ([`io::start_reason`]).
    #[error("cannot start a thread: {0}")]
    Thread(String),
    #[error("cannot compile with {python}")]
    Workers {
        python: String,
        #[source]
        failure: pool::WorkerFailure,
    },
}

impl From<cache::CacheError> for Error {
    fn from(e: cache::CacheError) -> Error {
        Error::Cache(e)
    }
}

/// Whether `n` more threads can be started now: each is started and held until all are,
/// then ended. A process or memory limit (`ulimit -u`, `ulimit -v`) may allow fewer; a
/// walker that cannot report a thread it could not start (it panics, or waits for it for
/// ever) is given its threads only after this says they can be had.
pub(crate) fn threads_available(n: usize) -> bool {
    let before = threads_in_process();
    let (hold, held) = crossbeam_channel::bounded::<()>(0);
    let all = std::thread::scope(|scope| {
        let all = (0..n).all(|_| {
            let held = held.clone();
            std::thread::Builder::new().spawn_scoped(scope, move || while held.recv().is_ok() {}).is_ok()
        });
        drop(hold);
        all
    });
    // A joined thread counts against the process limit until the kernel releases it, a
    // moment later: wait for that (50 ms at most: threads started meanwhile elsewhere in the
    // run count too), so that the threads asked for next find the room found here.
    if all && let Some(before) = before {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        while threads_in_process().is_some_and(|t| t > before) && std::time::Instant::now() < until {
            std::thread::yield_now();
        }
    }
    all
}

/// The number of threads of this process (Linux's `/proc/self/status`).
fn threads_in_process() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:"))?.trim().parse().ok()
}

/// Whether rayon's global pool is there: built on first use, as rayon would, but a pool
/// whose threads cannot be started (a process or memory limit) makes the callers work on
/// their own thread, where rayon would panic at every parallel iterator.
pub(crate) fn rayon_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| match rayon::ThreadPoolBuilder::new().build_global() {
        Ok(()) => true,
        // Already built (no I/O error): ready; threads that could not be started: not.
        Err(e) => std::error::Error::source(&e).is_none(),
    })
}

/// `-v`'s line about a target: `target: CPython 3.12.1 (`…/python3.12`) magic cb0d0d0a tag
/// cpython-312 SipHash-1-3` (compile adds how its workers run).
pub(crate) fn target_line(t: &target::Target) -> String {
    let what = if t.from_table() {
        format!("CPython {} (built-in table)", t.short_version())
    } else {
        pool::describe(t)
    };
    format!("target: {what} magic {} tag {} {}", t.magic, t.cache_tag, t.hash)
}

/// `--json` is the default of `--format` when given (cli): only an explicit other
/// `--format` disagrees with it, a usage error naming both.
fn json_agrees(command: &Command) -> Result<(), Error> {
    use clap::ValueEnum;
    let other = match command {
        Command::Compile(a) if a.json && a.format != cli::CompileFormat::Json => a.format.to_possible_value(),
        Command::Check(a) if a.json && a.format != cli::Format::Json => a.format.to_possible_value(),
        Command::Inspect(a) if a.json && a.format != cli::InspectFormat::Json => a.format.to_possible_value(),
        Command::Cache(cli::CacheCommand::Stats { json: true, format, .. })
            if *format != cli::StatsFormat::Json =>
        {
            format.to_possible_value()
        }
        _ => None,
    };
    match other {
        Some(v) => Err(Error::Usage(format!(
            "`--json` means `--format json`; it cannot be used with `--format {}`",
            v.get_name()
        ))),
        None => Ok(()),
    }
}

/// Run a parsed command line; `matches` are the ones `cli` was built from (they tell which
/// values came from the command line, for merging the configuration file under them).
pub fn run(mut cli: Cli, matches: &clap::ArgMatches) -> Result<ExitStatus, Error> {
    interrupt::install();
    json_agrees(&cli.command)?;
    settings::apply_config(&mut cli.command, matches)?;
    match cli.command {
        Command::Compile(args) => {
            let verbosity = Verbosity { quiet: args.output.quiet, verbose: args.output.verbose };
            let style = Style::resolve(args.output.color.color);
            let settings = settings::compile_settings(&args)?;
            // (In JSON mode, `notice` objects on stdout: compile::compile.)
            if verbosity.verbose > 0 && !settings.json {
                for t in &settings.targets {
                    report::eprint_line(&compile::target_line(t));
                }
            }
            let progress = report::Progress::new(
                verbosity.quiet == 0
                    && verbosity.verbose == 0
                    && !args.no_progress
                    && !settings.dry_run
                    && !settings.json,
            );
            let reporter: &dyn report::Reporter = match &progress {
                Some(p) => p,
                None => &report::Silent,
            };
            let summary = compile::compile(&settings, verbosity, style, reporter)?;
            Ok(summary.exit_status())
        }
        Command::Check(args) => {
            let verbosity = Verbosity { quiet: args.output.quiet, verbose: args.output.verbose };
            let style = Style::resolve(args.output.color.color);
            let settings = settings::check_settings(&args)?;
            // (In JSON mode, `notice` objects on stdout: check::check.)
            if verbosity.verbose > 0 && settings.format != cli::Format::Json {
                for t in &settings.targets {
                    report::eprint_line(&target_line(t));
                }
            }
            check::check(&settings, verbosity, style)
        }
        Command::Inspect(args) => {
            let files = settings::stdin_expanded(&args.files, &args.input, "inspect")?;
            inspect::inspect(&files, args.format == cli::InspectFormat::Json, args.prefix.as_ref())
        }
        Command::Cache(cmd) => cache::manage::run(&cmd, Style::resolve(cli.global.color), cli.global.quiet),
        Command::Completions { shell, .. } => {
            use clap::CommandFactory;
            let mut cmd = cli::for_completion(Cli::command());
            // Into memory first: clap_complete panics on a failed write; a stdout closed
            // early (`| head`) is no error, as for the other commands' data (report::written).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "hashpyc", &mut script);
            let mut out = std::io::stdout().lock();
            report::written(out.write_all(&script).and_then(|()| out.flush()))?;
            Ok(ExitStatus::Success)
        }
    }
}
