use std::io::Write;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    // A file-size limit (`ulimit -f`) fails a write that would pass it with EFBIG ("File too
    // large"), which is reported for that pyc as any failed write is (its temporary file
    // removed, the old pyc kept, the other files compiled), instead of killing the run
    // mid-write with SIGXFSZ, silent and leaving the temporary file. CPython does the same
    // at start-up, so the workers, which inherit this, behave as they would anyway.
    // SAFETY: nothing else runs yet; SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    hashpyc::io::raise_open_file_limit();
    // An empty variable is an unset one, as with Python's own PYTHON* variables (`ENV
    // HASHPYC_CACHE=` in a Dockerfile, `HASHPYC_JOBS= hashpyc …`): clap would reject it as
    // a missing or invalid value. clap reads a variable when the command is defined, so
    // the command that parses is built after this, not reused from the list's.
    for name in hashpyc::cli::flag_env_vars() {
        if std::env::var_os(&name).is_some_and(|v| v.is_empty()) {
            // SAFETY: nothing else runs yet: no thread reads or writes the environment.
            unsafe { std::env::remove_var(&name) };
        }
    }
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let matches = hashpyc::cli::Cli::command().try_get_matches_from(&argv).unwrap_or_else(|e| {
        // A bad value from an environment variable is reported as the variable's.
        // A file name starting with `-` before `--` (`compile -n.py`) is named, with the way out.
        if let Some(message) = hashpyc::cli::env_var_error(&e, &argv)
            .or_else(|| hashpyc::cli::cache_url_error(&e, &argv))
            .or_else(|| hashpyc::cli::dash_file_error(&e, &argv))
        {
            hashpyc::report::stderr_line(&mut std::io::stderr(), format_args!("error: {message}"));
            std::process::exit(2);
        }
        // `--help` and `--version` go to stdout, whose failures are the tool's other data's
        // (hashpyc::report::written); clap's own `exit` ignores them.
        if !e.use_stderr() {
            if let Err(err) = hashpyc::report::written(e.print().and_then(|()| std::io::stdout().flush())) {
                hashpyc::report::stderr_line(&mut std::io::stderr(), format_args!("error: {err}"));
                std::process::exit(2);
            }
            std::process::exit(e.exit_code());
        }
        e.exit()
    });
    // `compile a.py -x.py` parses (`-x .py`), but `-x.py` is a file here: named, not taken.
    if let Some(message) = hashpyc::cli::dash_file_taken_as_option(&argv) {
        hashpyc::report::stderr_line(&mut std::io::stderr(), format_args!("error: {message}"));
        std::process::exit(2);
    }
    let cli = hashpyc::cli::Cli::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.format(&mut hashpyc::cli::Cli::command()).exit());
    // The run's own errors are coloured as its per-file ones (`error` in bold red), an
    // interrupt's included.
    let style = hashpyc::report::Style::resolve(cli.color());
    hashpyc::interrupt::set_error_label(style.error());
    let code = match hashpyc::run(cli, &matches) {
        Ok(status) => status.code(),
        Err(err) => {
            let mut text = format!("{}: {err}", style.error());
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                text.push_str(&format!("\n  Caused by: {cause}"));
                source = cause.source();
            }
            hashpyc::report::stderr_line(&mut std::io::stderr(), text);
            2
        }
    };
    std::process::exit(hashpyc::interrupt::exit_code().unwrap_or(code));
}
