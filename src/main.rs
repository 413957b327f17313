use std::io::Write;

use clap::Parser;

fn main() {
    let cli = hashpyc::cli::Cli::parse();
    let code = match hashpyc::run(cli) {
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
