use std::io::Write;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    let matches = hashpyc::cli::Cli::command().get_matches();
    let cli = hashpyc::cli::Cli::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.format(&mut hashpyc::cli::Cli::command()).exit());
    let code = match hashpyc::run(cli, &matches) {
        Ok(status) => status.code(),
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                let _ = writeln!(stderr, "  Caused by: {cause}");
                source = cause.source();
            }
            2
        }
    };
    std::process::exit(hashpyc::interrupt::exit_code().unwrap_or(code));
}
