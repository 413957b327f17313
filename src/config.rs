//! Configuration files: `[tool.hashpyc]` in `pyproject.toml`, or the top-level keys of a
//! `hashpyc.toml` / `.hashpyc.toml`, found as uv finds its own: from the working
//! directory upwards (once per run, not per file as ruff does), checking `.hashpyc.toml`, `hashpyc.toml` and then `pyproject.toml` in
//! each directory; a `pyproject.toml` without a `[tool.hashpyc]` table is passed over, and
//! the first file with hashpyc settings wins. This module only finds, parses and validates
//! ([`Options`], whose JSON schema is generated from these types and shipped as
//! `hashpyc.schema.json`); `settings` merges the options under the command line. Every
//! error names the file, the key and the line, on one line, as `Error::Usage` (exit 2).

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use crate::Error;

/// The file names looked for in each directory, in order (ruff's order).
pub const FILE_NAMES: [&str; 3] = [".hashpyc.toml", "hashpyc.toml", "pyproject.toml"];

/// The settings of `[tool.hashpyc]`: everything that decides which pycs a tree should
/// have, shared by `hashpyc compile` and `hashpyc check`. Each key is named like the long
/// command-line flag it stands for; a flag given on the command line (or its environment
/// variable) overrides the key. Relative paths are resolved against the directory of the
/// file that sets them.
#[derive(Debug, Default, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "hashpyc configuration")]
pub struct Options {
    /// Target interpreters (`--python`): paths, names looked up on PATH or versions, e.g.
    /// `["3.12", ".venv/bin/python"]` (one may be written without the brackets). A
    /// value containing `/` is a path, relative to this file's directory; default
    /// `["python3"]`.
    pub python: Option<OneOrMany<String>>,

    /// Optimization levels (`--optimize`): 0 (`.pyc`), 1 (`.opt-1.pyc`), 2 (`.opt-2.pyc`);
    /// default `[0]`; a single level may be written without the brackets.
    pub optimize: Option<OneOrMany<OptLevel>>,

    /// How the pycs are validated on import (`--invalidation-mode`); `check` then accepts
    /// that kind only unless `--mode` says otherwise. Default `checked-hash`.
    pub invalidation_mode: Option<InvalidationMode>,

    /// pycs live in a tree under this directory (`--pycache-prefix`), relative to this
    /// file's directory. Takes precedence over `PYTHONPYCACHEPREFIX`.
    pub pycache_prefix: Option<PathBuf>,

    /// pycs are `<source>c` beside each source (`--legacy`, compileall's `-b`).
    pub legacy: Option<bool>,

    /// Hard-link the identical pycs of one source across optimization levels
    /// (`--hardlink-dupes`; `compile` only).
    pub hardlink_dupes: Option<bool>,

    /// Directory embedded as each source's directory (`--ddir`, compileall's `-d`). Used
    /// verbatim: it names a place at run time, not on this machine.
    pub ddir: Option<PathBuf>,

    /// Leading directory removed from embedded paths (`--strip-prefix`, compileall's
    /// `-s`), matched verbatim against the paths as walked.
    pub strip_prefix: Option<PathBuf>,

    /// Directory prepended to embedded paths (`--prepend-prefix`, compileall's `-p`), used
    /// verbatim.
    pub prepend_prefix: Option<PathBuf>,

    /// Gitignore-style globs of files and directories to skip (`--exclude`), matched
    /// relative to this file's directory, e.g. `["tests/", "*_pb2.py"]`.
    pub exclude: Option<OneOrMany<ExcludeGlob>>,

    /// Skip files whose path as walked matches this regular expression (`--exclude-regex`).
    pub exclude_regex: Option<ExcludeRegex>,

    /// Apply `exclude` and `exclude-regex` to paths named on the command line too
    /// (`--force-exclude`; `--no-force-exclude` overrides it), for pre-commit hooks.
    pub force_exclude: Option<bool>,

    /// Skip what `.gitignore`, `.ignore` and git's exclude files ignore
    /// (`--respect-gitignore`; `--no-ignore` overrides it).
    pub respect_gitignore: Option<bool>,

    /// Skip hidden files and directories (`--skip-hidden`; `--hidden` overrides it).
    pub skip_hidden: Option<bool>,

    /// Descend at most this many directory levels below each path (`--max-depth`).
    pub max_depth: Option<usize>,

    /// Do not descend into subdirectories (`--no-recursion`, the same as `max-depth = 1`;
    /// cannot be combined with `max-depth`).
    pub no_recursion: Option<bool>,

    /// Follow symbolic links to directories (`--follow`).
    pub follow: Option<bool>,

    /// Skip source files that are symbolic links whose target resolves outside this
    /// directory (`--limit-symlinks`), relative to this file's directory. Links to
    /// directories are not checked (with `follow = true` they are walked).
    pub limit_symlinks: Option<PathBuf>,

    /// Number of Python worker processes, 0 for one per CPU, at most 1024 (`--jobs`); for
    /// `check`, the threads that walk the tree and hash the sources.
    pub jobs: Option<Jobs>,

    /// Give up on a file after this many seconds in a worker, 0 for never, at most 86400
    /// (a day) (`--timeout`; `compile` only).
    pub timeout: Option<Seconds>,

    /// Also report pycs in `__pycache__` whose source is gone (`--stray`; `check` only).
    pub stray: Option<bool>,

    /// The bytecode cache directory (`--cache`), relative to this file's directory.
    pub cache: Option<PathBuf>,

    /// A shared cache on a server (`--cache-url`): `s3://BUCKET/PREFIX` or
    /// `http(s)://HOST/PREFIX`. Keep credentials out of this file (use the environment).
    pub cache_url: Option<String>,

    /// Use the cache's entries but never store any (`--cache-read-only`).
    pub cache_read_only: Option<bool>,

    /// Size limit of the cache directory (`--cache-max-size`): a size such as `"500MB"` or
    /// `"1GiB"`, or a number of bytes.
    pub cache_max_size: Option<Size>,

    /// The line of each key in the file, for errors found after parsing (empty values,
    /// conflicting keys, an interpreter that does not exist).
    #[serde(skip)]
    #[schemars(skip)]
    pub key_lines: std::collections::BTreeMap<String, usize>,

    /// Each key's value as written (TOML, on one line), for `-v`.
    #[serde(skip)]
    #[schemars(skip)]
    pub key_values: std::collections::BTreeMap<String, String>,

    /// Where each element of a list-valued key is (`line 4, column 3`), for errors about
    /// one element.
    #[serde(skip)]
    #[schemars(skip)]
    pub element_places: std::collections::BTreeMap<String, Vec<String>>,
}

/// A JSON schema written out, inlined where the type is used.
macro_rules! inline_schema {
    ($ty:ident, $schema:tt) => {
        impl JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// A list that may also be written as its only element (`python = "python3.12"` for
/// `python = ["python3.12"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> std::ops::Deref for OneOrMany<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Buffered so that the element's own error (a bad level, a bad glob) is the one
        // reported, not serde's generic "did not match any variant".
        let value = toml::Value::deserialize(d)?;
        let result = match value {
            // The element's index leads the message, for `parse` to name its line.
            toml::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| not_a_date(item).map_err(|e| format!("{ELEMENT}{i}{ELEMENT}{e}")))
                .collect::<Result<_, _>>()
                .map(OneOrMany),
            other => not_a_date(other).map(|one| OneOrMany(vec![one])).map_err(|e| e.to_string()),
        };
        result.map_err(serde::de::Error::custom)
    }
}

/// Around the index of the element of a list whose error a message is (`\u{1}2\u{1}invalid
/// type: …`), which [`parse`] replaces with the element's line and column.
const ELEMENT: char = '\u{1}';

/// The index of the list element an error message is about, and the message without it.
fn element_of(message: &str) -> Option<(usize, &str)> {
    let rest = message.strip_prefix(ELEMENT)?;
    let (index, rest) = rest.split_once(ELEMENT)?;
    Some((index.parse().ok()?, rest))
}

/// Where each element of each list-valued key is (`line 4, column 3`), by key, for the
/// errors about one element of a list written over several lines.
fn element_places(text: &str, table: &toml::de::DeTable) -> std::collections::BTreeMap<String, Vec<String>> {
    table
        .iter()
        .filter_map(|(k, v)| match v.get_ref() {
            toml::de::DeValue::Array(items) => Some((
                k.get_ref().to_string(),
                items.iter().map(|item| line_column(text, item.span().start)).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// An element of a [`OneOrMany`]: a TOML date or time is refused as the type it is (a
/// buffered `toml::Value` would hand it over as a string, so `exclude = [1979-05-27]`
/// would be taken as the glob `1979-05-27`).
fn not_a_date<'de, T: Deserialize<'de>>(value: toml::Value) -> Result<T, toml::de::Error> {
    match value {
        toml::Value::Datetime(d) => T::deserialize(DateValue(d)),
        other => T::deserialize(other),
    }
}

/// `date `1979-05-27``, `time `07:32:00`` or `date-time `…``, for an error.
fn date_shown(d: &toml::value::Datetime) -> String {
    let kind = match (d.date.is_some(), d.time.is_some()) {
        (true, false) => "date",
        (false, true) => "time",
        _ => "date-time",
    };
    format!("{kind} `{d}`")
}

/// A TOML date or time that every type refuses, naming it: "invalid type: date
/// `1979-05-27`, expected a string".
struct DateValue(toml::value::Datetime);

impl<'de> Deserializer<'de> for DateValue {
    type Error = toml::de::Error;
    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let shown = date_shown(&self.0);
        Err(serde::de::Error::invalid_type(serde::de::Unexpected::Other(&shown), &visitor))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }
    fn json_schema(g: &mut SchemaGenerator) -> Schema {
        let one = g.subschema_for::<T>();
        json_schema!({"anyOf": [one, {"type": "array", "items": one}]})
    }
}

/// An optimization level: 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptLevel(pub u8);

impl<'de> Deserialize<'de> for OptLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        match u8::try_from(n) {
            Ok(l) if l <= 2 => Ok(OptLevel(l)),
            _ => Err(serde::de::Error::custom(format!("optimization level {n} is not 0, 1 or 2"))),
        }
    }
}

inline_schema!(OptLevel, {"type": "integer", "minimum": 0, "maximum": 2});

/// The hash-based invalidation modes hashpyc writes (`timestamp` is refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[schemars(inline)]
pub enum InvalidationMode {
    /// Re-validated against the source on import.
    CheckedHash,
    /// Trusted as is on import.
    UncheckedHash,
}

impl InvalidationMode {
    /// The value of `--invalidation-mode` with the same meaning.
    pub fn flag_value(self) -> &'static str {
        match self {
            InvalidationMode::CheckedHash => "checked-hash",
            InvalidationMode::UncheckedHash => "unchecked-hash",
        }
    }
}

/// A gitignore-style glob, checked when the file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeGlob(pub String);

impl<'de> Deserialize<'de> for ExcludeGlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let g = String::deserialize(d)?;
        // As `--exclude` (a leading `!` accepted, `./` dropped).
        crate::walk::anchored_glob(&g).map_err(serde::de::Error::custom)?;
        Ok(ExcludeGlob(g))
    }
}

inline_schema!(ExcludeGlob, {"type": "string"});

/// A regular expression, checked when the file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludeRegex(pub String);

impl<'de> Deserialize<'de> for ExcludeRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let re = String::deserialize(d)?;
        if re.is_empty() {
            return Err(serde::de::Error::custom("an empty expression would skip everything"));
        }
        regex::Regex::new(&re).map_err(|e| {
            let last = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            let first = last.trim_start_matches("error: ").to_string();
            serde::de::Error::custom(format!("invalid regular expression `{re}`: {first}"))
        })?;
        Ok(ExcludeRegex(re))
    }
}

inline_schema!(ExcludeRegex, {"type": "string", "format": "regex"});

/// A number of seconds, 0 to [`crate::cli::MAX_TIMEOUT`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = f64::deserialize(d)?;
        if crate::cli::timeout_in_range(s) {
            Ok(Seconds(s))
        } else {
            Err(serde::de::Error::custom(format!("{s} {}", crate::cli::TIMEOUT_RANGE)))
        }
    }
}

inline_schema!(Seconds, {"type": "number", "minimum": 0, "maximum": 86400});

/// A number of workers, 0 (one per CPU) to [`crate::cli::MAX_JOBS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jobs(pub usize);

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(d)?;
        crate::cli::check_jobs(n).map(Jobs).map_err(serde::de::Error::custom)
    }
}

inline_schema!(Jobs, {"type": "integer", "minimum": 0, "maximum": 1024});

/// A size in bytes, written as `--cache-max-size` takes it (`"500MB"`) or as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as \"500MB\" or \"1GiB\", or a number of bytes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v).map(Size).map_err(|_| E::custom(format!("{v} is not a size")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Ok(Size(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                if v.trim().is_empty() {
                    return Err(E::custom(format!(
                        "an empty size (leave the key out for the default, {})",
                        crate::cli::DEFAULT_CACHE_MAX_SIZE
                    )));
                }
                crate::cli::parse_size_arg(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

inline_schema!(Size, {"type": ["string", "integer"], "minimum": 0, "examples": ["500MB", "1GiB"]});

/// `pyproject.toml`, of which only `[tool.hashpyc]` is read.
#[derive(Deserialize)]
struct Pyproject {
    tool: Option<Tool>,
}

#[derive(Deserialize)]
struct Tool {
    hashpyc: Option<Options>,
}

/// A configuration file that was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file, as found (absolute when discovered).
    pub path: PathBuf,
    /// Its directory, against which relative paths in it are resolved.
    pub dir: PathBuf,
    /// Whether the settings are `[tool.hashpyc]` of a `pyproject.toml`.
    pub in_pyproject: bool,
    pub options: Options,
}

impl Config {
    /// `pyproject.toml ([tool.hashpyc])` or `hashpyc.toml`, for `-v`.
    pub fn describe(&self) -> String {
        if self.in_pyproject {
            format!("{} ([tool.hashpyc])", crate::report::shown(&self.path))
        } else {
            crate::report::shown(&self.path).into_owned()
        }
    }

    /// `` `pyproject.toml` line 3`` for a key of this file, to start an error message.
    pub fn locate(&self, key: &str) -> String {
        match self.options.key_lines.get(key) {
            Some(line) => format!("{} line {line}", crate::report::ticked(&self.path)),
            None => crate::report::ticked(&self.path).to_string(),
        }
    }

    /// `` `pyproject.toml` line 5, column 3`` for the element `index` of a list-valued key
    /// ([`Config::locate`] of the key when its value is no list).
    pub fn locate_element(&self, key: &str, index: usize) -> String {
        match self.options.element_places.get(key).and_then(|p| p.get(index)) {
            Some(place) => format!("{} {place}", crate::report::ticked(&self.path)),
            None => self.locate(key),
        }
    }

    /// `path`, the value of `key`, made absolute against the file's directory (a leading
    /// `~/` the home directory: an error at the key when none is known).
    pub fn resolve(&self, key: &'static str, path: &Path) -> Result<PathBuf, Error> {
        let path =
            crate::layout::expand_home(path).map_err(|reason| Origin::key(self, key).invalid(reason))?;
        Ok(crate::layout::absolute(&path, &self.dir))
    }
}

/// Where a setting's value came from when not from its flag on the command line, so that
/// an error about it names what the user wrote: a key of a configuration file or the
/// environment variable standing for the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A key of a file: `at` is what [`Config::locate`] said (`` `pyproject.toml` line 3``).
    Key { key: &'static str, at: String },
    /// An environment variable (`HASHPYC_PYTHON`).
    Env(&'static str),
}

impl Origin {
    /// The origin of `key` in `c`.
    pub fn key(c: &Config, key: &'static str) -> Origin {
        Origin::Key { key, at: c.locate(key) }
    }

    /// The origin of the element `index` of the list-valued `key` in `c`: its line and
    /// column.
    pub fn element(c: &Config, key: &'static str, index: usize) -> Origin {
        Origin::Key { key, at: c.locate_element(key, index) }
    }

    /// An error about the value itself: `` `pyproject.toml` line 3: invalid value for
    /// `python`: … `` or `invalid HASHPYC_PYTHON: …`.
    pub fn invalid(&self, reason: impl std::fmt::Display) -> Error {
        match self {
            Origin::Key { key, at } => Error::Usage(format!("{at}: invalid value for `{key}`: {reason}")),
            Origin::Env(var) => Error::Usage(format!("invalid {var}: {reason}")),
        }
    }

    /// The setting as the user wrote it, to start a sentence about how it combines with
    /// another: `` `hardlink-dupes = true` in `pyproject.toml` line 3`` (`written` is the
    /// key and its value) or `HASHPYC_PYTHON`.
    pub fn written(&self, written: &str) -> String {
        match self {
            Origin::Key { at, .. } => format!("`{written}` in {at}"),
            Origin::Env(var) => (*var).to_string(),
        }
    }
}

/// An error about a value: at its origin when it did not come from the flag, else the
/// flag's own wording (`flag_error`).
pub fn at_origin(
    from: Option<&Origin>,
    reason: impl std::fmt::Display,
    flag_error: impl FnOnce() -> Error,
) -> Error {
    match from {
        Some(o) => o.invalid(reason),
        None => flag_error(),
    }
}

/// Where the configuration of a run came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A file, named by `--config` or discovered.
    File(Box<Config>),
    /// None found from `start` upwards.
    NotFound { start: PathBuf },
    /// `--no-config`.
    Disabled,
}

impl Source {
    pub fn config(&self) -> Option<&Config> {
        match self {
            Source::File(c) => Some(c),
            _ => None,
        }
    }

    /// One line for `-v`.
    pub fn describe(&self) -> String {
        match self {
            Source::File(c) => format!("configuration: {}", c.describe()),
            Source::NotFound { start } => format!(
                "configuration: none (no .hashpyc.toml, hashpyc.toml or pyproject.toml with [tool.hashpyc] in {} or above)",
                crate::report::shown(start)
            ),
            Source::Disabled => "configuration: none (--no-config)".to_string(),
        }
    }
}

/// Load the configuration for a run: `explicit` (`--config`) if given, else the first file
/// with hashpyc settings from `start` (the working directory) upwards. `named_by` is what named `explicit`
/// (`--config` or `HASHPYC_CONFIG`), for its errors. A discovered `pyproject.toml` that is
/// not valid TOML and does not mention hashpyc belongs to another tool: it is passed over,
/// as uv passes over one during settings discovery, and `passed_over` gets a warning
/// naming it and the reason.
pub fn load(
    explicit: Option<&Path>,
    named_by: &str,
    disabled: bool,
    start: &Path,
    passed_over: &mut Vec<String>,
) -> Result<Source, Error> {
    if disabled {
        return Ok(Source::Disabled);
    }
    if let Some(path) = explicit {
        let bytes = read_named(path).map_err(|e| {
            let by = if named_by == "--config" { String::new() } else { format!(" (named by {named_by})") };
            Error::Usage(format!(
                "cannot read configuration file {}{by}: {}",
                crate::report::ticked(path),
                crate::io::io_reason(&e)
            ))
        })?;
        let text = utf8(bytes, path).map_err(|(e, _)| e)?;
        let is_pyproject = path.file_name().is_some_and(|n| n == "pyproject.toml");
        let options = parse(&text, is_pyproject, path)?;
        let options = match options {
            Some(o) => o,
            None => {
                let near = near_miss_table(&text)
                    .map(|(name, line)| {
                        format!("; line {line} has [tool.{name}]: the name is `hashpyc`, exactly")
                    })
                    .unwrap_or_default();
                return Err(Error::Usage(format!(
                    "{} has no [tool.hashpyc] table (named by {named_by}){near}",
                    crate::report::ticked(path)
                )));
            }
        };
        let abs = crate::layout::absolute(path, start);
        let dir = abs.parent().map(Path::to_path_buf).unwrap_or_else(|| start.to_path_buf());
        return Ok(Source::File(Box::new(Config {
            path: path.to_path_buf(),
            dir,
            in_pyproject: is_pyproject,
            options,
        })));
    }
    for (up, dir) in start.ancestors().enumerate() {
        for name in FILE_NAMES {
            let path = dir.join(name);
            // Regular files only, read without blocking: a FIFO of that name would hang the
            // run and a link to a device (`/dev/zero`) fill the memory.
            let mut read = crate::io::read_regular(&path);
            // Under a working directory too deep to name from the root (over PATH_MAX), the
            // file is reached from the working directory (`start`) with `..`, as CPython would.
            let mut reached = path.clone();
            if matches!(&read, Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG)) {
                reached = std::iter::repeat_n(Path::new(".."), up).collect::<PathBuf>().join(name);
                read = crate::io::read_regular(&reached);
            }
            let bytes = match read {
                Ok(b) => b,
                // A link of that name to nothing (a shared configuration not checked out, a
                // moved target) would silently leave the choice to a file further up.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::read_link(&reached) {
                    Ok(to) => {
                        return Err(Error::Usage(format!(
                            "configuration file {} is a symbolic link to {}, which does not exist",
                            crate::report::ticked(&display_path(&path, start)),
                            crate::report::ticked(&to)
                        )));
                    }
                    Err(_) => continue,
                },
                // A directory of that name (or a link to one) is not a configuration file:
                // the read finds it not regular, so ask what it is.
                Err(e)
                    if e.kind() == std::io::ErrorKind::IsADirectory
                        || std::fs::metadata(&reached).is_ok_and(|m| m.is_dir()) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "cannot read configuration file {}: {}",
                        crate::report::ticked(&display_path(&path, start)),
                        crate::io::io_reason(&e)
                    )));
                }
            };
            let is_pyproject = name == "pyproject.toml";
            let shown = display_path(&path, start);
            let text = match utf8(bytes, &shown) {
                Ok(text) => text,
                // Not UTF-8 is not TOML: another tool's file unless it mentions hashpyc.
                Err((e, bytes)) if is_pyproject && !bytes.windows(7).any(|w| w == b"hashpyc") => {
                    passed_over.push(format!("{e}; passed over (it does not mention hashpyc)"));
                    continue;
                }
                Err((e, _)) => return Err(e),
            };
            if is_pyproject
                && !text.contains("hashpyc")
                && let Err(e) = toml::de::DeTable::parse(&text)
            {
                let at = e.span().map_or_else(|| "line 1".to_string(), |s| line_column(&text, s.start));
                passed_over.push(format!(
                    "{} {at}: invalid TOML: {}; passed over (it does not mention hashpyc)",
                    crate::report::ticked(&shown),
                    invalid_toml(&text, &e)
                ));
                continue;
            }
            let parsed = parse(&text, is_pyproject, &shown)?;
            // A table meant for hashpyc under another spelling would otherwise be passed
            // over in silence, its settings never applied.
            if parsed.is_none()
                && let Some((name, line)) = near_miss_table(&text)
            {
                passed_over.push(format!(
                    "{} line {line}: [tool.{name}] is not hashpyc's table, whose name is `hashpyc` \
                     exactly ([tool.hashpyc]); its settings are not used",
                    crate::report::ticked(&shown)
                ));
            }
            if let Some(options) = parsed {
                // Anyone could have left it there (`/tmp/.hashpyc.toml` for every run under
                // `/tmp`), and a configuration names the interpreter to run and the server
                // to send bytecode to.
                if let Some(why) = untrusted(&reached, dir, up) {
                    passed_over.push(format!(
                        "{} {why}; passed over, since a configuration names the interpreter hashpyc \
                         runs (give it with --config to use it)",
                        crate::report::ticked(&shown)
                    ));
                    continue;
                }
                passed_over.extend(hidden_beside(dir, name, &shown));
                return Ok(Source::File(Box::new(Config {
                    path: shown,
                    dir: dir.to_path_buf(),
                    in_pyproject: is_pyproject,
                    options,
                })));
            }
        }
    }
    Ok(Source::NotFound { start: start.to_path_buf() })
}

/// A `[tool.X]` table of a `pyproject.toml` whose name is `hashpyc` but for case, `-` and
/// `_` (`[tool.HashPyc]`, `[tool.hash-pyc]`), as written, and its line.
fn near_miss_table(text: &str) -> Option<(String, usize)> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let tool = doc.get_ref().get("tool")?;
    let tool = tool.get_ref().as_table()?;
    tool.iter().find_map(|(k, _)| {
        let name = k.get_ref();
        let bare: String =
            name.chars().filter(|c| !matches!(c, '-' | '_')).flat_map(char::to_lowercase).collect();
        (bare == "hashpyc" && name != "hashpyc").then(|| {
            let shown = if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                name.to_string()
            } else {
                format!("{name:?}")
            };
            (shown, line_of(text, k.span().start))
        })
    })
}

/// The most a configuration file named by `--config` may hold (uv's and ruff's are a few
/// KiB): a device (`/dev/zero`) or a runaway pipe would otherwise fill the memory.
const NAMED_LIMIT: u64 = 16 << 20;

/// A configuration file named by `--config` or `HASHPYC_CONFIG`, of at most [`NAMED_LIMIT`]
/// bytes: a regular file, a pipe (`--config <(…)`) or a character device (`/dev/null`, an
/// empty configuration); a block device is refused before it is read.
fn read_named(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    // (A socket cannot be opened: ENXIO, `No such device or address`.)
    let file = std::fs::File::open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_block_device() {
        return Err(std::io::Error::other("not a regular file (a block device)"));
    }
    let mut bytes = Vec::new();
    file.take(NAMED_LIMIT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > NAMED_LIMIT {
        let what = if kind.is_file() {
            "larger than"
        } else if kind.is_char_device() {
            "a character device giving more than"
        } else {
            "a pipe giving more than"
        };
        return Err(std::io::Error::other(format!(
            "{what} {} MiB, which no configuration file is",
            NAMED_LIMIT >> 20
        )));
    }
    Ok(bytes)
}

/// The configuration file discovery would take in `dir` alone, if any (a `pyproject.toml`
/// only with a `[tool.hashpyc]` table), as `dir/NAME`.
pub fn settings_file_in(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|path| match crate::io::read_regular(path) {
        Ok(bytes) if path.ends_with("pyproject.toml") => has_hashpyc_table(&bytes),
        Ok(_) => true,
        Err(_) => false,
    })
}

fn has_hashpyc_table(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("hashpyc")
        && toml::from_str::<toml::Table>(&text)
            .is_ok_and(|t| t.get("tool").and_then(|t| t.get("hashpyc")).is_some())
}

/// Settings in the same directory that the file found (`used`, shown as `shown`) hides: a
/// `hashpyc.toml` beside `.hashpyc.toml`, or a `pyproject.toml` whose `[tool.hashpyc]` a
/// `hashpyc.toml` beside it overrides whole (as uv warns of `[tool.uv]` beside `uv.toml`):
/// none of their keys apply, and nothing else would say so.
fn hidden_beside(dir: &Path, used: &str, shown: &Path) -> Vec<String> {
    let later = FILE_NAMES.iter().skip_while(|n| **n != used).skip(1);
    let mut warnings = Vec::new();
    for name in later {
        let path = dir.join(name);
        let Ok(bytes) = crate::io::read_regular(&path) else { continue };
        let hides = *name != "pyproject.toml" || has_hashpyc_table(&bytes);
        if hides {
            let what =
                if *name == "pyproject.toml" { "its [tool.hashpyc] table is" } else { "its settings are" };
            let other = shown.with_file_name(name);
            warnings.push(format!(
                "{} is beside {}, which takes precedence: {what} not used (merge them into one file)",
                crate::report::ticked(&other),
                crate::report::ticked(shown),
            ));
        }
    }
    warnings
}

/// Why a discovered configuration file is not to be trusted, if it is not: it belongs to
/// another user (neither the one running hashpyc nor root) and sits above the working
/// directory or in a directory anyone may write to (`/tmp`). A file in the working
/// directory itself, or in a git checkout holding it, is trusted whoever owns it, as a
/// project checked out or copied by another user (`COPY --chown` in a Dockerfile, a CI
/// container job on the runner's workspace) is run where it lies.
fn untrusted(file: &Path, dir: &Path, up: usize) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(file).ok()?.uid();
    // SAFETY: geteuid(2) cannot fail and has no side effects.
    let me = unsafe { libc::geteuid() };
    if owner == me || owner == 0 {
        return None;
    }
    let open = |d: &Path| std::fs::metadata(d).is_ok_and(|m| m.mode() & 0o002 != 0);
    let owner_name = crate::layout::passwd_field(owner, |pw| pw.pw_name)
        .map_or(format!("uid {owner}"), |n| format!("{} (uid {owner})", n.to_string_lossy()));
    if open(dir) {
        return Some(format!("belongs to {owner_name}, in a directory anyone can write to"));
    }
    // Part of a checkout the working directory is in (a `.git` in its directory or above,
    // short of a directory anyone can write to): the project's own file, as a container
    // job running as root finds the runner's checkout (`cd src && hashpyc check`).
    let checkout =
        dir.ancestors().take_while(|d| !open(d)).any(|d| d.join(".git").symlink_metadata().is_ok());
    (up > 0 && !checkout).then(|| format!("belongs to {owner_name}, above the working directory"))
}

/// A configuration file's bytes as text. Not UTF-8 (which TOML requires) is invalid TOML,
/// at the line of the first byte that is not; the error comes with the bytes.
fn utf8(bytes: Vec<u8>, file: &Path) -> Result<String, (Error, Vec<u8>)> {
    String::from_utf8(bytes).map_err(|e| {
        let file = crate::report::ticked(file);
        let line = line_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        (Error::Usage(format!("{file} line {line}: invalid TOML: not UTF-8")), e.into_bytes())
    })
}

/// A discovered file as shown in messages: relative when it is in the working directory.
fn display_path(path: &Path, start: &Path) -> PathBuf {
    match path.strip_prefix(start) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// Parse a configuration file's text: `Ok(None)` for a `pyproject.toml` without a
/// `[tool.hashpyc]` table. `file` is the name used in error messages.
/// The settings' values as TOML on one line each (`["tests/", "*_pb2.py"]`), by key.
fn key_values(text: &str, is_pyproject: bool) -> std::collections::BTreeMap<String, String> {
    let Ok(doc) = toml::from_str::<toml::Table>(text) else { return Default::default() };
    let table = if is_pyproject {
        doc.get("tool").and_then(|t| t.get("hashpyc")).and_then(|t| t.as_table()).cloned()
    } else {
        Some(doc)
    };
    table.into_iter().flatten().map(|(k, v)| (k, value_on_one_line(&v))).collect()
}

/// A value as TOML writes it, except that a string holding a line break or another control
/// character is escaped as paths are shown ([`crate::report::shown`]: `"a\nb"`), where TOML
/// would write a multi-line string.
fn value_on_one_line(v: &toml::Value) -> String {
    let escaped =
        |v: &toml::Value| v.as_str().is_some_and(|s| crate::report::shown(Path::new(s)).starts_with('"'));
    match v {
        toml::Value::String(s) if escaped(v) => crate::report::shown(Path::new(s)).into_owned(),
        toml::Value::Array(items) if items.iter().any(escaped) => {
            format!("[{}]", items.iter().map(value_on_one_line).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

pub fn parse(text: &str, is_pyproject: bool, file: impl AsRef<Path>) -> Result<Option<Options>, Error> {
    let file = crate::report::ticked(file.as_ref());
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        let at = e.span().map_or_else(|| "line 1".to_string(), |s| line_column(text, s.start));
        Error::Usage(format!("{file} {at}: invalid TOML: {}", invalid_toml(text, &e)))
    })?;
    let table_name = if is_pyproject { "[tool.hashpyc]" } else { "the top level" };
    // The table holding the settings, for naming the key of an error.
    let table = if is_pyproject {
        let Some(tool) = doc.get_ref().get("tool") else { return Ok(None) };
        let Some(tool) = tool.get_ref().as_table() else {
            return Err(Error::Usage(format!(
                "{file} line {}: `tool` must be a table",
                line_of(text, tool.span().start)
            )));
        };
        let Some(hashpyc) = tool.get("hashpyc") else { return Ok(None) };
        let Some(table) = hashpyc.get_ref().as_table() else {
            return Err(Error::Usage(format!(
                "{file} line {}: `tool.hashpyc` must be a table, like [tool.hashpyc]",
                line_of(text, hashpyc.span().start)
            )));
        };
        table
    } else {
        doc.get_ref()
    };
    let result = if is_pyproject {
        toml::from_str::<Pyproject>(text).map(|p| p.tool.and_then(|t| t.hashpyc).unwrap_or_default())
    } else {
        toml::from_str::<Options>(text)
    };
    let err = match result {
        Ok(mut options) => {
            options.key_lines =
                table.iter().map(|(k, _)| (k.get_ref().to_string(), line_of(text, k.span().start))).collect();
            options.key_values = key_values(text, is_pyproject);
            options.element_places = element_places(text, table);
            check_empty(&options, file, table_name)?;
            check_conflicts(&options, file)?;
            return Ok(Some(options));
        }
        Err(e) => e,
    };
    let span = err.span().unwrap_or(0..0);
    let mut line = line_of(text, span.start).to_string();
    let mut message = one_line(err.message());
    // An element of a list: its own line and column, not the key's line.
    if let Some((index, rest)) = element_of(&message) {
        let place = key_at(table, &span)
            .and_then(|key| element_places(text, table).remove(&key)?.into_iter().nth(index));
        if let Some(place) = place {
            line = place.strip_prefix("line ").unwrap_or(&place).to_string();
        }
        message = rest.to_string();
    }
    if let Some(unknown) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next()) {
        let hint = if unknown == "tool" && !is_pyproject {
            " (outside pyproject.toml the keys of [tool.hashpyc] go at the top level, without a header)"
                .to_string()
        } else if let Some(hint) = flag_hint(unknown) {
            format!(" ({hint})")
        } else {
            suggest(unknown, &expected_keys(&message))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default()
        };
        return Err(Error::Usage(format!(
            "{file} line {line}: unknown key `{unknown}` in {table_name}{hint}"
        )));
    }
    // A date or time given for a key read as a string or number reaches serde as the table
    // toml's deserializer makes of it ("invalid type: map"): name it as written.
    let date = table.iter().find_map(|(k, v)| match v.get_ref() {
        toml::de::DeValue::Datetime(d) if k.span().start <= span.start && span.start < v.span().end => {
            Some(date_shown(d))
        }
        _ => None,
    });
    let message = match date {
        Some(date) => message.replace("invalid type: map", &format!("invalid type: {date}")),
        None => message,
    };
    match key_at(table, &span) {
        Some(key) => Err(Error::Usage(format!(
            "{file} line {line}: invalid value for `{key}` in {table_name}: {}{}",
            toml_words(&message),
            value_hint(&key, &message, text.get(span.clone()).unwrap_or("").trim())
        ))),
        None => Err(Error::Usage(format!("{file} line {line}: {}", toml_words(&message)))),
    }
}

/// What to write instead, for the two mistakes a first configuration makes: a version
/// written as a TOML number (`python = 3.12`, a float, which also drops zeros: 3.10 is
/// 3.1), and `invalidation-mode = "timestamp"` (refused, with the flag's reason).
fn value_hint(key: &str, message: &str, raw: &str) -> String {
    if key == "python"
        && (message.contains("invalid type: floating point") || message.contains("invalid type: integer"))
    {
        // The value as written (3.10, not the float's 3.1) when the span holds just it, else
        // (an element of a list) as the message gives it.
        let parsed = message.split(['`']).nth(1).unwrap_or("3.12");
        let written = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            raw
        } else {
            parsed
        };
        return format!(" (a version is a string: write it quoted, `\"{written}\"`)");
    }
    if key == "invalidation-mode" && message.contains("unknown variant `timestamp`") {
        return format!(" ({})", crate::settings::TIMESTAMP_REFUSED);
    }
    String::new()
}

/// Values the types accept but no setting can mean: an empty path or URL (the flags refuse
/// an empty value too; `cache = ""` would make the project directory the cache) and an
/// empty list of interpreters or levels.
fn check_empty(options: &Options, file: crate::report::Quoted<'_>, table_name: &str) -> Result<(), Error> {
    let empty_path = |p: &Option<PathBuf>| p.as_ref().is_some_and(|p| p.as_os_str().is_empty());
    let checks: [(&str, bool, &str); 9] = [
        (
            "python",
            options.python.as_ref().is_some_and(|p| p.is_empty()),
            "an empty list (leave the key out for `python3`)",
        ),
        (
            "optimize",
            options.optimize.as_ref().is_some_and(|o| o.is_empty()),
            "an empty list (leave the key out for level 0)",
        ),
        ("pycache-prefix", empty_path(&options.pycache_prefix), "an empty path"),
        ("ddir", empty_path(&options.ddir), "an empty path"),
        ("strip-prefix", empty_path(&options.strip_prefix), "an empty path"),
        ("prepend-prefix", empty_path(&options.prepend_prefix), "an empty path"),
        ("limit-symlinks", empty_path(&options.limit_symlinks), "an empty path"),
        ("cache", empty_path(&options.cache), "an empty path (leave the key out for no cache)"),
        (
            "cache-url",
            options.cache_url.as_ref().is_some_and(|u| u.trim().is_empty()),
            "an empty URL (leave the key out for no shared cache)",
        ),
    ];
    // The element's line and column when the value is a list, else the key's line.
    let place = |key: &str, index: usize| {
        options
            .element_places
            .get(key)
            .and_then(|p| p.get(index))
            .cloned()
            .unwrap_or_else(|| format!("line {}", options.key_lines.get(key).copied().unwrap_or(1)))
    };
    // A request of uv's that names no one version, or whitespace around a name.
    if let Some((index, reason)) = options.python.as_ref().and_then(|p| {
        p.iter().enumerate().find_map(|(i, p)| crate::target::refused_request(p).map(|r| (i, r)))
    }) {
        let at = place("python", index);
        return Err(Error::Usage(format!(
            "{file} {at}: invalid value for `python` in {table_name}: {reason}"
        )));
    }
    if let Some(index) = options.python.as_ref().and_then(|p| p.iter().position(String::is_empty)) {
        let at = place("python", index);
        return Err(Error::Usage(format!(
            "{file} {at}: invalid value for `python` in {table_name}: an empty interpreter name"
        )));
    }
    for (key, bad, what) in checks {
        if bad {
            let line = options.key_lines.get(key).copied().unwrap_or(1);
            return Err(Error::Usage(format!(
                "{file} line {line}: invalid value for `{key}` in {table_name}: {what}"
            )));
        }
    }
    Ok(())
}

/// Keys that mean opposite things for one setting (the flags conflict too). `json_schema`
/// states these pairs too.
fn check_conflicts(options: &Options, file: crate::report::Quoted<'_>) -> Result<(), Error> {
    let set = |key: &str| options.key_lines.get(key).copied();
    let pairs: [(&str, bool, &str, bool); 4] = [
        ("legacy", options.legacy == Some(true), "pycache-prefix", options.pycache_prefix.is_some()),
        ("ddir", options.ddir.is_some(), "strip-prefix", options.strip_prefix.is_some()),
        ("ddir", options.ddir.is_some(), "prepend-prefix", options.prepend_prefix.is_some()),
        ("no-recursion", options.no_recursion == Some(true), "max-depth", options.max_depth.is_some()),
    ];
    for (a, a_set, b, b_set) in pairs {
        if a_set && b_set {
            let line = set(b).or(set(a)).unwrap_or(1);
            return Err(Error::Usage(format!(
                "{file} line {line}: `{b}` cannot be combined with `{a}` (as the flags cannot)"
            )));
        }
    }
    Ok(())
}

/// The key of `table` whose key or value holds `span`.
fn key_at(table: &toml::de::DeTable, span: &Range<usize>) -> Option<String> {
    table.iter().find_map(|(k, v)| {
        let within = |r: Range<usize>| r.start <= span.start && span.start < r.end.max(r.start + 1);
        (within(k.span()) || within(v.span())).then(|| k.get_ref().to_string())
    })
}

/// The keys serde lists after "expected one of" in an unknown-field message.
fn expected_keys(message: &str) -> Vec<String> {
    message
        .split_once("expected one of")
        .map(|(_, rest)| rest.split('`').skip(1).step_by(2).map(str::to_string).collect())
        .unwrap_or_default()
}

/// What to write for a key named like a flag that has no key: a negation is its key set to
/// `false` (`no-legacy`: `legacy = false`; not `did you mean legacy`, its opposite), and
/// what describes one run rather than the tree stays on the command line.
fn flag_hint(unknown: &str) -> Option<String> {
    const NEGATABLE: [&str; 6] =
        ["legacy", "follow", "hardlink-dupes", "cache-read-only", "stray", "force-exclude"];
    let negated = match unknown {
        "hidden" => Some("skip-hidden"),
        "no-ignore" => Some("respect-gitignore"),
        k => k.strip_prefix("no-").filter(|k| NEGATABLE.contains(k)),
    };
    if let Some(key) = negated {
        return Some(format!("did you mean `{key} = false`? `--{unknown}` is the flag for one run"));
    }
    match unknown {
        "mode" => Some("did you mean `invalidation-mode`? `--mode` of `check` follows it".into()),
        // uv's names for its own cache and credentials, which a uv user writes first.
        "cache-dir" | "cache-directory" | "cache-path" => Some(format!(
            "did you mean `cache`? `{unknown}` is uv's name; hashpyc's bytecode cache directory is `cache`"
        )),
        "cache-token" | "token" | "cache-password" | "password" | "cache-credentials" | "credentials" => Some(
            "credentials never go in the file: the shared cache's bearer token comes from the environment, \
             HASHPYC_CACHE_TOKEN, and S3's from the AWS variables or profile"
                .into(),
        ),
        "state-dir" | "state" | "state-directory" => Some(
            "hashpyc's own state directory, of interpreter probes and remembered failures, is set in the \
             environment, HASHPYC_STATE_DIR, not in the file; the bytecode cache is `cache`"
                .into(),
        ),
        "no-cache" => Some(
            "leave out `cache` and `cache-url` for no cache; `--no-cache` is the flag for one run".into(),
        ),
        "paths" | "path" | "files" | "src" | "sources" | "source" => Some(
            "the paths describe one run, not the tree: give them on the command line, where none means \
             the current directory"
                .into(),
        ),
        // ruff's names, which a ruff user writes first.
        "extend-exclude" => Some(
            "did you mean `exclude`? `extend-exclude` is ruff's name; hashpyc has no default excludes \
             to extend, so its one list is `exclude`"
                .into(),
        ),
        "target-version" | "target-versions" => Some(
            "did you mean `python`? `target-version` is ruff's name; hashpyc compiles for the interpreters \
             `python` names (`python = \"3.12\"`, a name on PATH or a path), or `--target 3.12` on the \
             command line"
                .into(),
        ),
        "include" | "extend-include" => Some(
            "hashpyc has no `include`: it takes every `.py` file under the paths given on the command \
             line, where none means the current directory; `exclude` skips some of them"
                .into(),
        ),
        "all" | "color" | "config" | "dry-run" | "force" | "format" | "json" | "no-config"
        | "no-progress" | "null" | "quiet" | "verbose" | "target" | "warnings-as-errors" => {
            Some(format!("`--{unknown}` describes one run, not the tree: give it on the command line"))
        }
        _ => None,
    }
}

/// The closest known key, when one is close enough to be a typo.
fn suggest(unknown: &str, keys: &[String]) -> Option<String> {
    keys.iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

/// serde's data-model words as TOML users know them.
fn toml_words(message: &str) -> String {
    message
        .replace("a sequence", "an array")
        .replace("type: map", "type: table")
        .replace("a map", "a table")
        .replace("struct Options", "a table")
        .replace("expected usize", "expected a whole number, 0 or more")
        .replace("expected i64", "expected an integer")
        .replace("expected f64", "expected a number")
        // A whole number past 64 bits, a float past f64 (`jobs = 99999999999999999999`,
        // `max-depth = 1e400`): serde's and toml's words name Rust's types.
        .replace(" as i128", "")
        .replace("floating-point number overflowed", "a number too large")
}

/// `line L, column C` (1-based, the column in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let column = text.get(start..at).map_or(1, |s| s.chars().count() + 1);
    format!("line {}, column {column}", line_of(text, at))
}

/// A TOML syntax error's message, on one line; a key given twice is named (toml's message
/// is only "duplicate key", at the second).
fn invalid_toml(text: &str, e: &toml::de::Error) -> String {
    let message = one_line(e.message());
    let key =
        e.span().and_then(|s| text.get(s)).map(str::trim).filter(|k| !k.is_empty() && !k.contains('\n'));
    match key {
        Some(key) if message == "duplicate key" => format!("duplicate key `{key}`"),
        _ => message,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The 1-based line of byte offset `at`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    line_of_bytes(text.as_bytes(), at)
}

fn line_of_bytes(bytes: &[u8], at: usize) -> usize {
    bytes[..at.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The JSON schema of [`Options`], as shipped in `hashpyc.schema.json` (with a trailing
/// newline).
pub fn json_schema() -> String {
    let schema =
        schemars::generate::SchemaSettings::draft07().into_generator().into_root_schema_for::<Options>();
    let mut value = schema.to_value();
    drop_null(&mut value);
    // What `check_empty` refuses, so that an editor flags it too: an empty string for any
    // key (no key takes one), an empty list of interpreters or levels (`exclude = []` is
    // fine: nothing excluded).
    non_empty_strings(&mut value);
    for key in ["python", "optimize"] {
        if let Some(serde_json::Value::Array(alternatives)) = value["properties"][key].get_mut("anyOf") {
            for alt in alternatives.iter_mut().filter(|a| a["type"] == "array") {
                alt["minItems"] = 1.into();
            }
        }
    }
    // What `target::refused_request` refuses in an interpreter's name: whitespace around
    // it, a range (`>=3.12`); a value holding `/` is a path, taken as written.
    let python = serde_json::Value::from("^[^<>=,~!\\s]([^<>=,]*[^<>=,\\s])?$|/");
    if let Some(serde_json::Value::Array(alternatives)) = value["properties"]["python"].get_mut("anyOf") {
        for alt in alternatives.iter_mut() {
            if alt["type"] == "string" {
                alt["pattern"] = python.clone();
            } else if alt["type"] == "array" {
                alt["items"]["pattern"] = python.clone();
            }
        }
    }
    // `check_empty` refuses a URL of only whitespace (as `--cache-url` does).
    value["properties"]["cache-url"]["pattern"] = "\\S".into();
    // The pairs `check_conflicts` refuses: both keys set (`legacy` and `no-recursion` only
    // when true). draft-07 has no `dependentSchemas`: `not` of both `required`.
    let conflicts = [
        ("legacy", true, "pycache-prefix"),
        ("ddir", false, "strip-prefix"),
        ("ddir", false, "prepend-prefix"),
        ("no-recursion", true, "max-depth"),
    ];
    value["allOf"] = conflicts
        .iter()
        .map(|&(a, only_true, b)| {
            let mut both = serde_json::json!({"required": [a, b]});
            if only_true {
                both["properties"][a] = serde_json::json!({"const": true});
            }
            serde_json::json!({ "not": both })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&value).expect("a schema serializes");
    s.push('\n');
    s
}

/// `minLength: 1` on every schema that allows a string.
fn non_empty_strings(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let string = match map.get("type") {
                Some(Value::String(t)) => t == "string",
                Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
                _ => false,
            };
            if string && !map.contains_key("const") {
                map.insert("minLength".into(), 1.into());
            }
            map.values_mut().for_each(non_empty_strings);
        }
        Value::Array(items) => items.iter_mut().for_each(non_empty_strings),
        _ => {}
    }
}

/// TOML has no null: an absent key is how a setting is left unset, so the `null` that
/// schemars allows for every `Option` is taken out.
fn drop_null(v: &mut serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = v else {
        if let Value::Array(items) = v {
            items.iter_mut().for_each(drop_null);
        }
        return;
    };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            map.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(alts)) = map.get_mut("anyOf") {
        alts.retain(|a| a.get("type").is_none_or(|t| t != "null"));
        if alts.len() == 1
            && let Value::Object(only) = alts.remove(0)
        {
            map.remove("anyOf");
            for (k, val) in only {
                map.entry(k).or_insert(val);
            }
        }
    }
    map.values_mut().for_each(drop_null);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, pyproject: bool) -> String {
        parse(text, pyproject, "f.toml").unwrap_err().to_string()
    }

    #[test]
    fn valid_table() {
        let o = parse(
            "[project]\nname='x'\n[tool.hashpyc]\noptimize = [0, 2]\nexclude = ['tests/']\ncache-max-size = '1GiB'\n",
            true,
            "p",
        )
        .unwrap()
        .unwrap();
        assert_eq!(o.optimize.as_deref(), Some(&vec![OptLevel(0), OptLevel(2)]));
        assert_eq!(o.cache_max_size, Some(Size(1 << 30)));
        assert_eq!(o.exclude.as_deref(), Some(&vec![ExcludeGlob("tests/".into())]));
    }

    #[test]
    fn pyproject_without_table_is_none() {
        assert_eq!(parse("[project]\nname = 'x'\n[tool.ruff]\nline-length = 1\n", true, "p").unwrap(), None);
        assert_eq!(parse("", true, "p").unwrap(), None);
        // hashpyc.toml always counts, even empty.
        assert_eq!(parse("", false, "p").unwrap(), Some(Options::default()));
    }

    #[test]
    fn errors_name_file_key_and_line() {
        assert_eq!(
            err("[tool.hashpyc]\npython = ['python3']\noptimise = [2]\n", true),
            "`f.toml` line 3: unknown key `optimise` in [tool.hashpyc] (did you mean `optimize`?)"
        );
        assert_eq!(
            err("\noptimize = [0,\n 5]\n", false),
            "`f.toml` line 3, column 2: invalid value for `optimize` in the top level: optimization level 5 is not 0, 1 or 2"
        );
        let e = err("[tool.hashpyc]\n\nlegacy = 'yes'\n", true);
        assert!(e.starts_with("`f.toml` line 3: invalid value for `legacy` in [tool.hashpyc]: "), "{e}");
        let e = err("[tool.hashpyc]\noptimize = 'two'\n", true);
        assert!(e.starts_with("`f.toml` line 2: invalid value for `optimize`"), "{e}");
        assert!(e.contains("expected an integer"), "{e}");
        let e = err("a = 1\nb = [\n", false);
        assert!(e.starts_with("`f.toml` line "), "{e}");
        assert!(e.contains("invalid TOML"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        for bad in [
            "[tool.hashpyc]\nexclude = ['a/**/[b']\n",
            "[tool.hashpyc]\nexclude-regex = '('\n",
            "[tool.hashpyc]\ninvalidation-mode = 'timestamp'\n",
            "[tool.hashpyc]\ncache-max-size = 'lots'\n",
            "[tool.hashpyc]\ntimeout = -1\n",
            "[tool.hashpyc]\nlegacy = true\npycache-prefix = 'x'\n",
            "tool.hashpyc = 3\n",
            "[tool.hashpyc]\nmax-depth = -1\n",
            "[tool.hashpyc]\npython = 3\n",
            "[tool.hashpyc]\n[tool.hashpyc.optimize]\n",
        ] {
            let e = err(bad, true);
            eprintln!("{e}");
            assert!(e.starts_with("`f.toml` line "), "{e}");
        }
    }

    #[test]
    fn a_list_may_be_its_only_element() {
        let o = parse("[tool.hashpyc]\npython = 'python3.12'\noptimize = 2\nexclude = 'tests/'\n", true, "p")
            .unwrap()
            .unwrap();
        assert_eq!(o.python.as_deref(), Some(&vec!["python3.12".to_string()]));
        assert_eq!(o.optimize.as_deref(), Some(&vec![OptLevel(2)]));
        assert_eq!(o.exclude.as_deref(), Some(&vec![ExcludeGlob("tests/".into())]));
    }

    #[test]
    fn json_schema_has_every_key() {
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let props = schema["properties"].as_object().unwrap();
        assert!(props.contains_key("invalidation-mode") && props.contains_key("cache-max-size"));
        assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false));
    }
}
