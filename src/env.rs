//! The environment variables that turn something on or off without standing for a flag
//! (`HASHPYC_NO_CACHE`, `HASHPYC_NO_STATE`, `HASHPYC_TRACE`, `HASHPYC_VERIFY`). They are
//! read with the parser clap reads the boolean flags' own variables with
//! (`HASHPYC_NO_CONFIG`, `HASHPYC_CACHE_READ_ONLY`), so that a value means the same for
//! every variable: `1`, `true`, `yes`, `on`, `y`, `t` turn one on, `0`, `false`, `no`,
//! `off`, `n`, `f` off, in any case; empty is unset (off). Any other value is refused
//! before a run reads anything ([`check`]), in the words clap uses for the others.

use clap::builder::TypedValueParser;

/// No bytecode cache and no state directory.
pub const NO_CACHE: &str = "HASHPYC_NO_CACHE";
/// No state directory.
pub const NO_STATE: &str = "HASHPYC_NO_STATE";
/// Print where the run's time went (`compile`).
pub const TRACE: &str = "HASHPYC_TRACE";
/// Compile every long-lived result again in a fresh fork (`compile`).
pub const VERIFY: &str = "HASHPYC_VERIFY";

/// The boolean variables `compile` reads.
pub const COMPILE: &[&str] = &[NO_CACHE, NO_STATE, TRACE, VERIFY];
/// The boolean variables `check` reads (through the state directory).
pub const CHECK: &[&str] = &[NO_CACHE, NO_STATE];

/// Whether `value` is one of clap's boolean words for on or off (`1`, `yes`, …; `0`, `no`, …).
pub fn word(value: impl AsRef<std::ffi::OsStr>) -> Option<bool> {
    clap::builder::BoolishValueParser::new()
        .parse_ref(&clap::Command::new("hashpyc"), None, value.as_ref())
        .ok()
}

/// The value of boolean variable `name`: false when it is unset or empty, an error naming
/// the variable and the value when it is not one of clap's boolean words.
pub fn flag(name: &str) -> Result<bool, String> {
    let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else { return Ok(false) };
    word(&value).ok_or_else(|| {
        // A flag's variable is said as clap's errors of the other flags' variables are.
        let stands_for = crate::cli::flag_of_env(name)
            .map_or(String::new(), |flag| format!(" (which stands for '{flag}')"));
        format!(
            "invalid value {} for {name}{stands_for}: value was not a boolean",
            crate::report::single_quoted(std::path::Path::new(&value))
        )
    })
}

/// Whether boolean variable `name` is on. A run has refused an invalid value before
/// reading any ([`check`]); a caller that did not check sees one as on, what these
/// variables meant before they were parsed.
pub fn is_on(name: &str) -> bool {
    flag(name).unwrap_or(true)
}

/// The first invalid value among the boolean variables `names`, as an error.
pub fn check(names: &[&str]) -> Result<(), String> {
    names.iter().try_for_each(|name| flag(name).map(|_| ()))
}

/// Force a worker mode instead of the one validated for the version (`compile`):
/// `fork`, a fresh fork per file, or `long-lived`, long-lived children even where they are
/// not validated (for measuring only).
pub const ISOLATION: &str = "HASHPYC_ISOLATION";
/// `fork`: on 3.13+, the files that need a pristine worker in a fresh fork each instead of
/// probing in long-lived children of their own (`compile`, for comparisons).
pub const DEFERRED: &str = "HASHPYC_DEFERRED";

/// The variables `compile` reads that take one of a few words, and those words.
pub const COMPILE_CHOICES: &[(&str, &[&str])] =
    &[(ISOLATION, &["fork", "long-lived"]), (DEFERRED, &["fork"])];

/// The value of choice variable `name` when it is set and not empty. A run has refused a
/// value that is not one of its words before reading any ([`check_choices`]).
pub fn choice(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first variable of `vars` set to a value that is not one of its words (empty is
/// unset), as an error naming the variable, the value and the words it takes.
pub fn check_choices(vars: &[(&str, &[&str])]) -> Result<(), String> {
    for (name, words) in vars {
        let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else { continue };
        if !value.to_str().is_some_and(|v| words.contains(&v)) {
            let list: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
            return Err(format!(
                "invalid value {} for {name}: expected {}",
                crate::report::single_quoted(std::path::Path::new(&value)),
                list.join(" or ")
            ));
        }
    }
    Ok(())
}
