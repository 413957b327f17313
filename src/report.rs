//! What the user sees: a progress bar on stderr (only on a terminal), per-file errors and
//! warnings in sorted path order, and a one-line summary. The library reports through the
//! `Reporter` trait so tests and benches can pass a silent one.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::pool::{CompileFailure, Warning};

/// Progress events from the pipeline.
pub trait Reporter: Sync {
    /// `total` units of work are about to start, together weighing `weight` (their
    /// sources' bytes).
    fn start(&self, _total: u64, _weight: u64, _what: &str) {}
    /// One unit finished, of `weight` (as counted in `start`).
    fn advance(&self, _path: &Path, _weight: u64) {}
    /// No more units.
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;
impl Reporter for Silent {}

/// An indicatif bar on stderr. Its fill is the sources' bytes done, as compiling time goes
/// with size and the largest files go first (by their count alone it stood at 3% half-way
/// through a build); the bytes are written beside it, so that the bar and its numbers
/// agree, and the count of units after them: `Compiling [====>   ] 4.10 MiB/4.60 MiB
/// (120/1900)`.
pub struct Progress {
    bar: ProgressBar,
    /// Where the bar is drawn once `start` has set it up (stderr; a test's screen).
    shown: std::sync::Mutex<Option<ProgressDrawTarget>>,
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

/// A unit's share of the bar: its source's bytes, at least one (an empty `__init__.py`
/// is work too).
pub fn unit_weight(bytes: u64) -> u64 {
    bytes.max(1)
}

impl Progress {
    /// A bar when stderr is a terminal and progress is wanted, else `None`.
    pub fn new(enabled: bool) -> Option<Progress> {
        if !enabled || !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Progress::drawn_on(ProgressDrawTarget::stderr_with_hz(10)))
    }

    /// A bar drawn on `target` once started.
    fn drawn_on(target: ProgressDrawTarget) -> Progress {
        // Hidden until `start` has set its label, count and length: each of indicatif's
        // setters draws a frame, so the first frames had an empty label, then no count.
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>10} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({prefix})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar,
            shown: std::sync::Mutex::new(Some(target)),
            done: Default::default(),
            total: Default::default(),
        }
    }
}

impl Reporter for Progress {
    fn start(&self, total: u64, weight: u64, what: &str) {
        use std::sync::atomic::Ordering;
        // Nothing to do draws nothing (it drew a full bar reading 0/0): the bar stays hidden.
        if total == 0 {
            return;
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.bar.set_message(what.to_string());
        self.bar.set_prefix(format!("0/{total}"));
        self.bar.set_length(weight.max(1));
        self.bar.set_position(0);
        // The first frame drawn is whole: `Compiling [   ] 0 B/4.60 MiB (0/300)`.
        if let Some(target) = self.shown.lock().expect("progress lock").take() {
            self.bar.set_draw_target(target);
        }
        self.bar.tick();
    }
    fn advance(&self, _path: &Path, weight: u64) {
        use std::sync::atomic::Ordering;
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.set_prefix(format!("{done}/{}", self.total.load(Ordering::Relaxed)));
        self.bar.inc(weight);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Colours for stderr messages (never the only carrier of meaning).
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Resolve `--color` against `NO_COLOR`, `FORCE_COLOR`, `CLICOLOR_FORCE`, the terminal
    /// and `TERM=dumb` (a terminal that shows escapes as text, as ripgrep takes it). An
    /// explicit `always` or `never` decides alone (`--color always` colours despite
    /// `NO_COLOR`, as in ripgrep); under `auto`, `NO_COLOR` (not empty) turns colour off,
    /// else `FORCE_COLOR` (not empty, force-color.org) or `CLICOLOR_FORCE` (neither empty
    /// nor `0`) turns it on where stderr is no terminal, as uv takes them (`NO_COLOR`
    /// first).
    pub fn resolve(choice: crate::cli::ColorChoice) -> Style {
        use crate::cli::ColorChoice;
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto if set("NO_COLOR").is_some() => false,
            ColorChoice::Auto
                if set("FORCE_COLOR").is_some() || set("CLICOLOR_FORCE").is_some_and(|v| v != "0") =>
            {
                true
            }
            ColorChoice::Auto => {
                std::env::var_os("TERM").is_none_or(|t| t != "dumb") && std::io::stderr().is_terminal()
            }
        };
        Style { color }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub fn error(&self) -> String {
        self.paint("1;31", "error")
    }
    pub fn warning(&self) -> String {
        self.paint("1;33", "warning")
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// A path as the text outputs show it, always on one line: as it is when it is UTF-8 with
/// no control character (and does not start with `"`), else quoted and escaped as Rust's
/// `{:?}` writes a path: `"./a\nb.py"`, `"./caf\xE9.py"` — `\n`, `\r`, `\t`, `\\` and `\"`;
/// `\u{1b}` for any other control character, for the line and paragraph separators
/// U+2028 and U+2029 and for format characters (`\u{202e}`, `\u{200b}`, `\u{feff}`); `\xE9` for each byte that is not UTF-8. So no file name can break a
/// line-oriented reader, forge a line of output or lose its bytes, and a name that needs
/// none of this (nearly all) is shown unchanged. JSON keeps paths exact ([`json_path`]).
pub fn shown(path: &Path) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.starts_with('"') && !s.chars().any(escaped) => std::borrow::Cow::Borrowed(s),
        _ => std::borrow::Cow::Owned(quoted(bytes)),
    }
}

/// A path as a message names it amid other words, quoted once: in backticks when
/// [`shown`] gives it as it is (`` `src/m.py` ``), else in the quotes of its escaped form
/// alone (`"caf\xE9.py"`, never `` `"caf\xE9.py"` ``). The quotes say the name is escaped;
/// backticks around an escaped name would read as a name holding `\x`, which one can
/// hold. A message writes `{}` with it, never `` `{}` ``; [`shown`] is for a name
/// that stands alone (a listing line, a `-v` line's value).
pub fn ticked(path: &Path) -> Quoted<'_> {
    Quoted { path, mark: '`' }
}

/// [`ticked`] in single quotes, as clap quotes a value (`'yes'`); an escaped value is in
/// its double quotes alone.
pub fn single_quoted(path: &Path) -> Quoted<'_> {
    Quoted { path, mark: '\'' }
}

/// What [`ticked`] and [`single_quoted`] return: formats without allocating when the
/// name is shown as it is.
#[derive(Clone, Copy)]
pub struct Quoted<'a> {
    path: &'a Path,
    mark: char,
}

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match shown(self.path) {
            std::borrow::Cow::Borrowed(s) => write!(f, "{0}{s}{0}", self.mark),
            std::borrow::Cow::Owned(quoted) => f.write_str(&quoted),
        }
    }
}

/// A name as a word of a command a message suggests (`` `hashpyc check src` ``), quoted
/// for a POSIX shell so that the command can be pasted: as it is when every character is
/// safe unquoted (a letter or digit, `-_./=:,@+%`; not a leading `=`, which zsh expands),
/// so a plain name reads as before; else in single quotes (`'my dir'`, a `'` as `'\''`);
/// and where the name holds a byte that is not UTF-8 or a character [`shown`] escapes (a
/// newline, U+202E), which single quotes would print raw or not at all, in the `$'…'`
/// form with `\xHH` for each such byte (`$'caf\xe9.py'`), which bash, zsh and ksh read
/// (dash 0.5 does not; no POSIX quoting can write such a byte on one line). No suggested
/// command can then break a line of output or lose a byte of a name. (The `shlex` crate
/// quotes `=`, `,` and `%`, which need none, and writes control characters raw.)
pub fn shell_word(word: &std::ffi::OsStr) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    use std::fmt::Write as _;
    let bytes = word.as_encoded_bytes();
    let text = std::str::from_utf8(bytes).ok();
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('=')
            && s.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || "-_./=:,@+%".contains(c)
                    || (!c.is_ascii() && c.is_alphanumeric() && !escaped(c))
            })
    };
    match text {
        Some(s) if plain(s) => Cow::Borrowed(s),
        Some(s) if !s.chars().any(escaped) => Cow::Owned(format!("'{}'", s.replace('\'', "'\\''"))),
        _ => {
            let mut out = String::from("$'");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        '\r' => out.push_str("\\r"),
                        c if escaped(c) => {
                            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            out.push('\'');
            Cow::Owned(out)
        }
    }
}

/// [`shell_word`] of a path.
pub fn shell_path(path: &Path) -> std::borrow::Cow<'_, str> {
    shell_word(path.as_os_str())
}

/// The characters [`shown`] never prints raw: control characters, the line and paragraph
/// separators, and the format characters (general category Cf), which are invisible or
/// reorder the text around them (the bidi overrides U+202E, U+2066–U+2069 of Trojan
/// Source; U+200B, U+FEFF): a name holding one is not what it looks like.
pub(crate) fn escaped(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_format(c)
}

/// Unicode's general category Cf (Unicode 16.0).
fn is_format(c: char) -> bool {
    const CF: &[(char, char)] = &[
        ('\u{ad}', '\u{ad}'),
        ('\u{600}', '\u{605}'),
        ('\u{61c}', '\u{61c}'),
        ('\u{6dd}', '\u{6dd}'),
        ('\u{70f}', '\u{70f}'),
        ('\u{890}', '\u{891}'),
        ('\u{8e2}', '\u{8e2}'),
        ('\u{180e}', '\u{180e}'),
        ('\u{200b}', '\u{200f}'),
        ('\u{202a}', '\u{202e}'),
        ('\u{2060}', '\u{2064}'),
        ('\u{2066}', '\u{206f}'),
        ('\u{feff}', '\u{feff}'),
        ('\u{fff9}', '\u{fffb}'),
        ('\u{110bd}', '\u{110bd}'),
        ('\u{110cd}', '\u{110cd}'),
        ('\u{13430}', '\u{1343f}'),
        ('\u{1bca0}', '\u{1bca3}'),
        ('\u{1d173}', '\u{1d17a}'),
        ('\u{e0001}', '\u{e0001}'),
        ('\u{e0020}', '\u{e007f}'),
    ];
    u32::from(c) >= 0xad && CF.iter().any(|&(a, b)| (a..=b).contains(&c))
}

fn quoted(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if escaped(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
    out.push('"');
    out
}

/// Whether a write of data to stdout went through: `Ok(true)`. A reader that closed it
/// (`| head -1`) ends the output there, with no message, as in ripgrep: `Ok(false)`, and the
/// caller writes no more. Any other failure (a full disk, `> /dev/full`, an I/O error) is
/// the run's error (`cannot write to standard output: No space left on device`, exit 2):
/// what was asked for is not all there.
pub fn written(result: std::io::Result<()>) -> Result<bool, crate::Error> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(crate::Error::Stdout(crate::io::io_reason(&e))),
    }
}

/// `line` and a newline on stdout (`out`, its lock): [`written`].
pub fn out_line(out: &mut impl Write, line: impl std::fmt::Display) -> Result<bool, crate::Error> {
    written(writeln!(out, "{line}"))
}

/// Writes human-readable lines to stderr, ignoring a closed stderr: [`stderr_line`].
pub fn eprint_line(line: &str) {
    stderr_line(&mut std::io::stderr().lock(), line);
}

/// `line` and its newline to stderr (`err`, its lock) in one write: stderr is unbuffered,
/// and `writeln!` would write the text and the newline apart, which a reader that takes
/// lines from whole writes loses (BuildKit's summary of a failed `docker build` drops such
/// a line, or shows it without its `error: `). A closed stderr is ignored.
pub fn stderr_line(err: &mut impl Write, line: impl std::fmt::Display) {
    let mut text = line.to_string();
    text.push('\n');
    let _ = err.write_all(text.as_bytes());
}

/// `text` (a message, a line of a source) with every character [`shown`] never prints raw
/// written as an escape (`\u{1b}`), a tab kept: what a source holds (an escape sequence
/// in a string, a bidi override) must not retitle or clear the terminal, or a CI log's
/// view, or make a line read other than it is.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c != '\t' && escaped(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.chars().map(printable_char).collect())
}

/// One character as [`printable`] writes it.
fn printable_char(c: char) -> String {
    if c != '\t' && escaped(c) { format!("\\u{{{:x}}}", u32::from(c)) } else { c.to_string() }
}

/// `path:line:col: Kind: message`, then the offending line and a caret, from the source
/// bytes when the worker could not give the text.
pub fn format_failure(path: &Path, f: &CompileFailure, source: Option<&[u8]>) -> String {
    let mut out = shown(path).into_owned();
    if let Some(line) = f.line.filter(|&l| l > 0) {
        out.push_str(&format!(":{line}"));
        if let Some(col) = f.offset.filter(|&c| c > 0) {
            out.push_str(&format!(":{col}"));
        }
    }
    out.push_str(&format!(": {}: {}", printable(&f.kind), printable(&f.message)));
    let text = if !f.text.trim().is_empty() {
        Some(f.text.clone())
    } else {
        f.line.zip(source).and_then(|(n, src)| source_line(src, n))
    };
    if let Some(text) = text {
        let trimmed = text.trim_end_matches(['\n', '\r']);
        let indent = trimmed.len() - trimmed.trim_start().len();
        let shown = trimmed.trim_start();
        if !shown.is_empty() {
            let shown = shown.replace('\x0c', "");
            out.push_str(&format!("\n    {}", printable(&shown)));
            if let Some(col) = f.offset.filter(|&c| c > 0) {
                let caret_at = (col as usize).saturating_sub(1).saturating_sub(indent);
                let width = match (f.end_line, f.end_offset) {
                    (Some(el), Some(eo)) if Some(el) == f.line && eo > col => (eo - col) as usize,
                    _ => 1,
                };
                // Under each character as printed: an escape is wider.
                let prefix: String = shown
                    .chars()
                    .take(caret_at)
                    .map(|c| match c {
                        '\t' => "\t".to_string(),
                        c => " ".repeat(printable_char(c).chars().count()),
                    })
                    .collect();
                out.push_str(&format!("\n    {prefix}{}", "^".repeat(width.min(200))));
            }
        }
    }
    out
}

/// `path:line: Category: message` and the source line, like Python's own warnings.
pub fn format_warning(path: &Path, w: &Warning, source: Option<&[u8]>) -> String {
    if !w.in_source() {
        // Attributed to no line of the file: named as Python names a warning without one.
        return format!("{}: {}: {}", shown(path), printable(&w.category), printable(&w.message));
    }
    let mut out =
        format!("{}:{}: {}: {}", shown(path), w.line, printable(&w.category), printable(&w.message));
    if let Some(text) = u32::try_from(w.line).ok().zip(source).and_then(|(n, src)| source_line(src, n)) {
        let t = text.trim();
        if !t.is_empty() {
            out.push_str(&format!("\n    {}", printable(t)));
        }
    }
    out
}

/// Python's default filters hide these categories outside `__main__`; so do we.
pub fn warning_shown_by_default(w: &Warning) -> bool {
    !matches!(
        w.category.as_str(),
        "DeprecationWarning" | "PendingDeprecationWarning" | "ImportWarning" | "ResourceWarning"
    )
}

/// Line `n` (1-based) of a source, decoded leniently.
fn source_line(src: &[u8], n: u32) -> Option<String> {
    let line = src.split(|&b| b == b'\n').nth(n.checked_sub(1)? as usize)?;
    Some(String::from_utf8_lossy(line).into_owned())
}

/// A run's `elapsed` in a JSON summary: seconds, to the millisecond (`0.101`), as
/// `compile`'s and `check`'s summaries give it.
pub fn json_seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `2.31s`, `850ms`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// Where a run's time goes, phase by phase, printed on stderr when `HASHPYC_TRACE` is set
/// (for profiling; see the README's benchmark notes).
pub struct Spans {
    enabled: bool,
    last: std::time::Instant,
    parts: Vec<(&'static str, Duration)>,
    notes: Vec<String>,
}

impl Spans {
    pub fn start() -> Spans {
        Spans {
            enabled: crate::env::is_on(crate::env::TRACE),
            last: std::time::Instant::now(),
            parts: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Extra facts for the trace line (only computed when tracing).
    pub fn note(&mut self, what: impl FnOnce() -> String) {
        if self.enabled {
            self.notes.push(what());
        }
    }

    /// The phase that just ended.
    pub fn mark(&mut self, phase: &'static str) {
        if self.enabled {
            let now = std::time::Instant::now();
            self.parts.push((phase, now - self.last));
            self.last = now;
        }
    }

    pub fn print(&self) {
        if self.enabled {
            let parts: Vec<String> =
                self.parts.iter().map(|(p, d)| format!("{p} {:.1}ms", d.as_secs_f64() * 1000.0)).collect();
            let (own, child) = peak_rss_kib();
            let ((su, ss), (cu, cs)) = cpu_seconds();
            let (fs, fc) = minor_faults();
            let notes: String = self.notes.iter().map(|n| format!("; {n}")).collect();
            eprint_line(&format!(
                "trace: {}; peak memory: hashpyc {:.1} MiB, largest worker {:.1} MiB; \
                 CPU: hashpyc {su:.2} s user + {ss:.2} s system, workers {cu:.2} s + {cs:.2} s; \
                 page faults: hashpyc {fs}, workers {fc}{notes}",
                parts.join(", "),
                own as f64 / 1024.0,
                child as f64 / 1024.0
            ));
        }
    }
}

/// Resource usage of this process (`RUSAGE_SELF`) or of its reaped children.
fn rusage(who: libc::c_int) -> Option<libc::rusage> {
    // SAFETY: getrusage fills the struct we pass; no other memory is touched.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(who, &mut u) == 0).then_some(u)
    }
}

/// (user, system) CPU seconds of this process and of its reaped children.
fn cpu_seconds() -> ((f64, f64), (f64, f64)) {
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let get = |who| rusage(who).map_or((0.0, 0.0), |u| (secs(u.ru_utime), secs(u.ru_stime)));
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

/// Minor page faults of this process and of its reaped children (with `CPU`, where a
/// fresh fork's cost shows: copy-on-write and zero-filled pages).
fn minor_faults() -> (i64, i64) {
    let get = |who| rusage(who).map_or(0, |u| u.ru_minflt);
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

/// Peak resident memory in KiB of this process and of its largest reaped child.
pub fn peak_rss_kib() -> (i64, i64) {
    let get = |who| rusage(who).map_or(0, |u| u.ru_maxrss);
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}

/// A path in JSON output, losslessly: a string when it is UTF-8, else `{"bytes": "<base64
/// of the raw bytes>"}` (as ripgrep's JSON does). For `#[serde(serialize_with)]`.
pub fn json_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    use std::os::unix::ffi::OsStrExt;
    match path.to_str() {
        Some(text) => s.serialize_str(text),
        None => {
            use base64::Engine;
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            let encoded = base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes());
            map.serialize_entry("bytes", &encoded)?;
            map.end()
        }
    }
}

/// A path that serializes as [`json_path`] does (for `serde_json::json!`).
pub struct JsonPath<'a>(pub &'a Path);

impl serde::Serialize for JsonPath<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json_path(self.0, s)
    }
}

/// [`json_path`] for optional paths.
pub fn json_opt_path<S: serde::Serializer>(
    path: &Option<std::path::PathBuf>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => json_path(p, s),
        None => s.serialize_none(),
    }
}

/// "1 file" / "3 files" (and "0 files"), as cargo and ruff count.
pub fn plural<N: std::fmt::Display + PartialEq + From<u8>>(n: N, one: &str, many: &str) -> String {
    let word = if n == N::from(1) { one } else { many };
    format!("{n} {word}")
}

/// "no Python sources to VERB under `a`, `b`" and what the walk skipped: `check`'s error
/// and `compile`'s warning for a selection with no source. With `--max-depth 0` (fd's and
/// ripgrep's meaning: nothing below a directory) and a directory among the roots, says so.
pub fn no_sources(
    verb: &str,
    roots: &[std::path::PathBuf],
    skipped: Option<String>,
    walk: &crate::walk::WalkOptions,
) -> String {
    let under: Vec<String> = roots.iter().map(|r| ticked(r).to_string()).collect();
    let mut msg = format!("no Python sources to {verb} under {}", under.join(", "));
    // Why a bare run walked nothing first: it explains the rest.
    let mut notes: Vec<String> = walk.implicit_root_excluded.iter().cloned().chain(skipped).collect();
    if walk.max_depth == Some(0) && roots.iter().any(|r| r.is_dir()) {
        let (zero, one) = match &walk.max_depth_by {
            Some(by) => (by.as_str(), "`max-depth = 1`"),
            None => ("--max-depth 0", "--max-depth 1"),
        };
        notes.push(format!(
            "{zero} takes no file inside a directory; {one} takes its own files, as compileall -l does"
        ));
    }
    if !notes.is_empty() {
        msg.push_str(&format!(" ({})", notes.join("; ")));
    }
    msg
}

#[cfg(test)]
mod tests {
    /// A name in a suggested command: plain as it is; else quoted so that a shell reads it
    /// back byte for byte (`sh` for the single quotes, bash for `$'…'`), on one line.
    #[test]
    fn shell_words_read_back_as_the_names() {
        use std::os::unix::ffi::OsStrExt;
        let word = |b: &[u8]| super::shell_word(std::ffi::OsStr::from_bytes(b)).into_owned();
        for plain in ["src/m.py", "-n.py", "--exclude=a,b", "caf\u{e9}.py", "v@1+2%:x"] {
            assert_eq!(word(plain.as_bytes()), plain);
        }
        assert_eq!(word(b"my dir"), "'my dir'");
        assert_eq!(word(b"it's"), "'it'\\''s'");
        assert_eq!(word(b""), "''");
        assert_eq!(word(b"=cmd"), "'=cmd'");
        assert_eq!(word(b"caf\xe9.py"), "$'caf\\xe9.py'");
        assert_eq!(word(b"a\nb'\\"), "$'a\\nb\\'\\\\'");
        let names: &[&[u8]] = &[
            b"my dir",
            b"$HOME `id` \"x\" *?[a] {a,b} ~ ! # & ; | < > ( )",
            b"it's",
            b"=cmd",
            b"~user",
            b"caf\xe9.py",
            b"a\nb\tc\rd'\\e",
            "rtl\u{202e}txt \u{2028}".as_bytes(),
            &[0x80, 0xff, b'f', b'f', b'\''],
        ];
        for name in names {
            let quoted = word(name);
            assert!(!quoted.contains(['\n', '\r']), "{quoted}");
            let shell = if quoted.starts_with('$') { "bash" } else { "sh" };
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(format!("printf %s {quoted}"))
                .output()
                .expect("run the shell");
            assert_eq!(out.stdout, *name, "{shell}: {quoted}");
        }
    }

    /// The bar fills by the sources' bytes: the one large file of three, done first as
    /// the largest go first, fills nearly all of it; the count says 1/3.
    #[test]
    fn progress_fills_by_bytes() {
        let p = Progress::drawn_on(ProgressDrawTarget::hidden());
        p.start(3, unit_weight(1000) + unit_weight(0) + unit_weight(1), "Compiling");
        p.advance(Path::new("big.py"), unit_weight(1000));
        assert_eq!((p.bar.position(), p.bar.length()), (1000, Some(1002)));
        assert_eq!(p.bar.prefix(), "1/3");
        p.advance(Path::new("__init__.py"), unit_weight(0));
        p.advance(Path::new("m.py"), unit_weight(1));
        assert_eq!((p.bar.position(), p.bar.prefix()), (1002, "3/3".to_string()));
    }

    /// A terminal 80 columns wide that keeps the lines drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            // (Not the blanks that clear what a longer frame left.)
            if !s.trim().is_empty() {
                self.0.lock().unwrap().push(s.trim_end().to_string());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The bar was nearly full beside `1/3` (it fills by bytes, the count was of files):
    /// what a frame shows beside the bar is what fills it, the bytes, then the count.
    #[test]
    fn progress_numbers_agree_with_the_bar() {
        let screen = Screen::default();
        let p = Progress::drawn_on(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let last = || screen.0.lock().unwrap().last().cloned().unwrap_or_default();
        p.start(3, unit_weight(1000) + unit_weight(0) + unit_weight(1), "Compiling");
        assert_eq!(last(), format!(" Compiling [{}] 0 B/1002 B (0/3)", " ".repeat(30)));
        p.advance(Path::new("big.py"), unit_weight(1000));
        p.bar.tick();
        // 1000 of 1002 bytes: 29 of 30 cells, the bytes beside them say so.
        assert_eq!(last(), format!(" Compiling [{}>] 1000 B/1002 B (1/3)", "=".repeat(29)));
        p.advance(Path::new("__init__.py"), unit_weight(0));
        p.advance(Path::new("m.py"), unit_weight(1));
        p.bar.tick();
        assert_eq!(last(), format!(" Compiling [{}] 1002 B/1002 B (3/3)", "=".repeat(30)));
    }

    use super::*;

    #[test]
    fn failure_format_has_location_line_and_caret() {
        let f = CompileFailure {
            kind: "SyntaxError".into(),
            message: "invalid syntax".into(),
            line: Some(2),
            offset: Some(7),
            end_line: Some(2),
            end_offset: Some(8),
            text: String::new(),
            warnings: Vec::new(),
            failed_level: None,
        };
        let got = format_failure(Path::new("pkg/m.py"), &f, Some(b"x = 1\n  y = = 2\n"));
        assert_eq!(got, "pkg/m.py:2:7: SyntaxError: invalid syntax\n    y = = 2\n        ^");
    }

    #[test]
    fn paths_are_shown_on_one_line() {
        use std::os::unix::ffi::OsStrExt;
        let show = |b: &[u8]| shown(Path::new(std::ffi::OsStr::from_bytes(b))).into_owned();
        // Unchanged: nearly every name, with spaces, backslashes, quotes inside, non-ASCII.
        for plain in ["./pkg/m.py", r"a b\c.py", r#"it's "x".py"#, "caf\u{e9}.py", "e\u{301}.py"] {
            assert_eq!(show(plain.as_bytes()), plain);
        }
        assert_eq!(show(b"./a\nb.py"), r#""./a\nb.py""#);
        assert_eq!(show(b"\r\t\x1b[31m\x7f.py"), r#""\r\t\u{1b}[31m\u{7f}.py""#);
        assert_eq!(show("x\u{85}\u{2028}\u{2029}.py".as_bytes()), r#""x\u{85}\u{2028}\u{2029}.py""#);
        assert_eq!(show(b"caf\xe9\n\\\".py"), r#""caf\xE9\n\\\".py""#);
        // A name that would read as a quoted one is quoted too.
        assert_eq!(show(br#""a\nb.py""#), r#""\"a\\nb.py\"""#);
        // Escaped, a name is written as Rust's own Debug writes it.
        for name in [&b"./a\nb.py"[..], b"\x1b]0;x\x07", b"caf\xe9\n.py", b"\"q\\\"\r"] {
            let path = Path::new(std::ffi::OsStr::from_bytes(name));
            assert_eq!(show(name), format!("{path:?}"));
        }
    }

    #[test]
    fn paths_in_messages_are_quoted_once() {
        use std::os::unix::ffi::OsStrExt;
        let path = |b: &'static [u8]| Path::new(std::ffi::OsStr::from_bytes(b));
        // As it is: in backticks (or single quotes), every character kept.
        for plain in ["./pkg/m.py", r"a b\c.py", r#"it's "x".py"#, "caf\u{e9}.py"] {
            assert_eq!(ticked(Path::new(plain)).to_string(), format!("`{plain}`"));
            assert_eq!(single_quoted(Path::new(plain)).to_string(), format!("'{plain}'"));
        }
        // Escaped: in its own quotes alone, as `shown` writes it, never also in backticks.
        for name in [&b"\xff"[..], b"caf\xe9.py", b"./a\nb.py", b"\x1b]0;x\x07", br#""q.py"#] {
            let escaped = shown(path(name)).into_owned();
            assert!(escaped.starts_with('"') && escaped.ends_with('"'), "{escaped}");
            assert_eq!(ticked(path(name)).to_string(), escaped);
            assert_eq!(single_quoted(path(name)).to_string(), escaped);
        }
        assert_eq!(ticked(path(b"\xff")).to_string(), r#""\xFF""#);
        assert_eq!(
            format!("error: {}: no such file", ticked(path(b"caf\xe9.py"))),
            r#"error: "caf\xE9.py": no such file"#
        );
    }

    #[test]
    fn deprecations_are_hidden_like_python_does() {
        let w = |c: &str| Warning { category: c.into(), line: 1, message: String::new(), level: 0 };
        assert!(warning_shown_by_default(&w("SyntaxWarning")));
        assert!(!warning_shown_by_default(&w("DeprecationWarning")));
    }
}
