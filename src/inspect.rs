//! `hashpyc inspect`: describe pyc files — magic and Python version, mode, source hash or
//! timestamp (and whether importlib would take it for the source when that is found),
//! body size, embedded path.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::marshal::{self, CodeLayout, MarshalError};
use crate::pyc::{self, HashVariant, Header, Kind, Magic};
use crate::target::{self, KNOWN};
use crate::{Error, ExitStatus};

#[derive(Debug, Serialize)]
struct Description {
    /// `pyc`: each JSON object names its kind first, as every command's JSON does.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(serialize_with = "crate::report::json_path")]
    pyc: PathBuf,
    /// None (JSON null) for what the file does not have: no header, no flags, no body.
    magic: Option<String>,
    python: Option<String>,
    /// `python` is the line of a development or pre-release magic number, not a release's.
    #[serde(skip)]
    pre_release: bool,
    /// The magic number is a Python's before 3.7 (PEP 552): no `python` line to name.
    #[serde(skip)]
    before_pep552: bool,
    /// Named for another interpreter's tag than its magic number's (`m.cpython-311.pyc`
    /// holding a 3.12 pyc): `matches_source` is then false, whatever the source.
    #[serde(skip)]
    tag_mismatch: bool,
    mode: Option<String>,
    hash: Option<String>,
    mtime: Option<u32>,
    source_size: Option<u32>,
    #[serde(serialize_with = "crate::report::json_opt_path")]
    source: Option<PathBuf>,
    matches_source: Option<bool>,
    /// Why `source`, which exists, could not be read (is a directory, not a regular file,
    /// permission denied): `matches_source` is then null.
    source_error: Option<String>,
    /// A timestamp pyc's source: the mtime and size importlib compares with the pyc's.
    #[serde(skip)]
    source_stamp: Option<(u32, u32)>,
    body_bytes: Option<usize>,
    /// Of `body_bytes`, those after the code object (CPython ignores them; py_compile
    /// writes none): None when the body is not read as a code object.
    trailing_bytes: Option<usize>,
    #[serde(serialize_with = "crate::report::json_opt_path")]
    embedded_path: Option<PathBuf>,
    error: Option<String>,
}

/// Where the source of a pyc would be: under the pycache `prefix` (`--pycache-prefix`, the
/// configuration's `pycache-prefix` or `PYTHONPYCACHEPREFIX`) when there is one and it
/// holds the pyc, `<prefix>/<dir>/<stem>.<tag>[.opt-N].pyc` → `/<dir>/<stem>.py`, as
/// `importlib.util.source_from_cache` reads it; `__pycache__/<stem>.<tag>[.opt-N].pyc` →
/// `<stem>.py` beside `__pycache__` (another tool's name, pytest's
/// `test_a.cpython-311-pytest-8.3.4.pyc`, → `test_a.py`: see [`split_cached_name`]);
/// `<name>.pyc` elsewhere → `<name>.py`.
pub fn source_for(pyc_path: &Path, prefix: Option<&Path>) -> Option<PathBuf> {
    let name = pyc_path.file_name()?.as_bytes();
    let base = name.strip_suffix(b".pyc")?;
    let parent = pyc_path.parent()?;
    let tagged_stem = || {
        let mut src = split_cached_name(name)?.0.to_vec();
        src.extend_from_slice(b".py");
        Some(std::ffi::OsString::from_vec(src))
    };
    if let Some(prefix) = prefix
        && let Ok(cwd) = std::env::current_dir()
        && let Ok(mirrored) = crate::layout::absolute(parent, &cwd)
            .strip_prefix(crate::layout::absolute(prefix, &cwd))
            .map(Path::to_path_buf)
        && let Some(src) = tagged_stem()
    {
        return Some(Path::new("/").join(mirrored).join(src));
    }
    if parent.file_name().is_some_and(|n| n == "__pycache__") {
        Some(parent.parent()?.join(tagged_stem()?))
    } else if parent.components().all(|c| c == std::path::Component::CurDir)
        && let Ok(cwd) = std::env::current_dir()
        && cwd.file_name().is_some_and(|n| n == "__pycache__")
        && let Some(src) = tagged_stem()
    {
        // Named from inside `__pycache__` (`cd pkg/__pycache__; hashpyc inspect
        // m.cpython-312.pyc`, or `./m.cpython-312.pyc`): its source is `../m.py`, as the
        // absolute path would say (`source_from_cache` refuses a name without its directory).
        Some(parent.join("..").join(src))
    } else {
        let mut src = base.to_vec();
        src.extend_from_slice(b".py");
        Some(parent.join(std::ffi::OsStr::from_bytes(&src)))
    }
}

/// A `__pycache__` pyc name as (stem, tag, level), the tag not empty: the stem its source's,
/// as `check --stray` takes it ([`crate::layout::pyc_source`]): `<stem>.<tag>[.opt-N].pyc` as
/// `cache_from_source` names a pyc, another tool's (pytest's
/// `test_a.cpython-311-pytest-8.3.4.pyc`) up to the first dot.
fn split_cached_name(name: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    crate::layout::pyc_source(name, |_| false)
        .filter(|(_, tag, ..)| !tag.is_empty())
        .map(|(stem, tag, level, _)| (stem, tag, level))
}

impl Description {
    /// Nothing described yet: every field null.
    fn empty(path: &Path) -> Description {
        Description {
            kind: "pyc",
            pyc: path.to_path_buf(),
            magic: None,
            python: None,
            pre_release: false,
            before_pep552: false,
            tag_mismatch: false,
            mode: None,
            hash: None,
            mtime: None,
            source_size: None,
            source: None,
            matches_source: None,
            source_error: None,
            source_stamp: None,
            body_bytes: None,
            trailing_bytes: None,
            embedded_path: None,
            error: None,
        }
    }
}

/// `source`: the source the pyc was looked up from (`inspect m.py`), else it is derived
/// from the pyc's own path (`source_for`, under `prefix` too).
fn describe(path: &Path, source: Option<&Path>, prefix: Option<&Path>) -> Description {
    let mut d = Description::empty(path);
    // The header first: what is not a pyc of a known Python is told by it, however large
    // the file (nothing past it is read).
    let mut data = Vec::new();
    let read = crate::io::open_regular(path)
        .and_then(|mut f| crate::io::read_up_to(&mut f, &mut data, pyc::HEADER_LEN).map(|ended| (f, ended)));
    let (mut file, mut ended) = match read {
        Ok(read) => read,
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            d.error = Some("is a directory, not a pyc file".into());
            return d;
        }
        Err(e) => {
            // A link to nothing, or a loop: said so, not "no such file".
            d.error = Some(match crate::write::broken_link(path) {
                Some(broken) => format!("is {broken}"),
                None => crate::io::io_reason(&e),
            });
            return d;
        }
    };
    let Some(h) = Header::parse(&data) else {
        let size = crate::report::plural(data.len(), "byte", "bytes");
        d.error = Some(format!("not a pyc file: only {size}, shorter than a pyc header"));
        return d;
    };
    if !h.magic.is_well_formed() {
        d.error = Some(format!(
            "not a pyc file: it does not start with a magic number (found bytes {})",
            pyc::hex(&h.magic.0)
        ));
        return d;
    }
    d.magic = Some(h.magic.to_string());
    let Some(minor) = target::version_of_magic(h.magic) else {
        // Before 3.7 (PEP 552) a header had no flags field: what follows the magic is not
        // a mode, so nothing past the magic is described.
        let n = h.magic.number();
        d.before_pep552 = target::before_pep552(h.magic);
        d.error = Some(if d.before_pep552 {
            format!("a pyc of a Python older than 3.7 (magic number {n}), which hashpyc does not support")
        } else {
            let (first, last) = (KNOWN[0].minor, KNOWN[KNOWN.len() - 1].minor);
            format!(
                "unknown magic number {n}: not a pyc of CPython {}.{} to {}.{}",
                first.0, first.1, last.0, last.1
            )
        });
        return d;
    };
    d.python = Some(format!("{}.{}", minor.0, minor.1));
    if !target::is_release_magic(h.magic) {
        d.pre_release = true;
        // What a development or pre-release build wrote: every release of its line refuses
        // it (`bad magic number`), as the build after it does. Described all the same.
        let release = KNOWN.iter().find(|k| k.minor == minor).map_or(0, |k| k.magic_number);
        d.error = Some(format!(
            "a pyc for {} (magic {}), not for a {}.{} release (magic {release}), whose import refuses \
             it (bad magic number)",
            target::python_of_magic(h.magic, minor),
            h.magic.number(),
            minor.0,
            minor.1
        ));
    }
    // importlib looks a pyc up by its interpreter's tag: one named for another CPython
    // than its magic number's is refused by that interpreter (bad magic number), whatever
    // its source holds.
    let named_for = path.file_name().and_then(|n| split_cached_name(n.as_bytes())).and_then(|(_, tag, _)| {
        let digits = tag.strip_prefix(b"cpython-")?;
        let digits = &digits[..digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len())];
        (digits != format!("{}{}", minor.0, minor.1).as_bytes())
            .then(|| String::from_utf8_lossy(tag).into_owned())
    });
    let size = file.metadata().map_or(0, |m| m.len());
    let minor = Some(minor);
    match h.kind() {
        Err(why) => {
            // importlib refuses such a pyc ("invalid flags"); `error` says why.
            d.mode = Some("invalid".into());
            d.error = Some(format!("not a valid pyc: {why} (flags {})", h.flags));
        }
        Ok(Kind::Timestamp { mtime, size }) => {
            d.mode = Some("timestamp".into());
            d.mtime = Some(mtime);
            d.source_size = Some(size);
            // As importlib judges it: the source's mtime and size, not its bytes.
            if let Some((src, found)) = found_source(path, source, prefix) {
                match found {
                    Ok(m) => {
                        let now = pyc::timestamp_fields(m.mtime(), m.mtime_nsec(), m.len());
                        d.matches_source = Some(now == (mtime, size));
                        d.source_stamp = Some(now);
                    }
                    Err(why) => d.source_error = Some(why),
                }
                d.source = Some(src);
            }
        }
        Ok(Kind::Hash { mode, hash }) => {
            d.mode = Some(match mode {
                pyc::HashMode::Checked => "checked-hash".into(),
                pyc::HashMode::Unchecked => "unchecked-hash".into(),
            });
            d.hash = Some(pyc::hex(&hash));
            if let Some((src, found)) = found_source(path, source, prefix) {
                let mut bytes = Vec::new();
                let read = found.and_then(|_| {
                    crate::io::read_source_into(&src, &mut bytes).map_err(|e| crate::io::io_reason(&e))
                });
                match read {
                    Ok(()) => {
                        d.matches_source =
                            Some(hash == pyc::source_hash(variant_for(h.magic, minor), h.magic, &bytes));
                    }
                    Err(why) => d.source_error = Some(why),
                }
                d.source = Some(src);
            }
        }
    }
    if let Some(tag) = named_for {
        d.tag_mismatch = true;
        d.matches_source = d.matches_source.map(|_| false);
        d.error.get_or_insert(format!(
            "named for `{tag}` but a pyc of {}: the interpreter whose tag that is refuses it (bad magic number)",
            d.python.as_deref().map_or(String::new(), |p| format!("Python {p}"))
        ));
    }
    if let Some((a, b)) = minor {
        let layout = CodeLayout::for_version(a, b);
        // The body is read as far as its code object goes (a body that is not one is told
        // by its first bytes), doubling: the bytes after it are counted, not read.
        let mut want = pyc::HEADER_LEN + (1 << 20);
        let (name, code) = loop {
            if !ended && let Err(e) = crate::io::read_up_to(&mut file, &mut data, want).map(|e| ended = e) {
                d.error.get_or_insert(format!("body: {}", crate::io::io_reason(&e)));
                return d;
            }
            let body = &data[pyc::HEADER_LEN..];
            let name = marshal::code_filename(body, layout).map(|n| n.to_vec());
            // The body must start with a whole code object, or the import fails; what
            // follows it, CPython ignores.
            let code = (d.error.is_none() && name.is_ok()).then(|| marshal::code_body(body, layout));
            let short = matches!(name, Err(MarshalError::Truncated))
                || matches!(code, Some(Err(MarshalError::Truncated)));
            if ended || !short {
                break (name, code.map(|c| c.map(|c| c.trailing)));
            }
            want = want.saturating_mul(2);
        };
        // Past what was read, the file's size says how many bytes follow.
        let body_len = if ended { data.len() } else { data.len().max(size as usize) } - pyc::HEADER_LEN;
        d.body_bytes = Some(body_len);
        match name {
            Ok(name) => {
                d.embedded_path =
                    Some(PathBuf::from(std::ffi::OsString::from_vec(marshal::path_from_filename(&name))));
            }
            Err(e) => {
                d.error.get_or_insert(format!("body: {e}"));
            }
        }
        match code {
            Some(Ok(trailing)) => {
                d.trailing_bytes = Some(trailing + body_len - (data.len() - pyc::HEADER_LEN))
            }
            Some(Err(e)) => d.error = Some(format!("body: {e}")),
            None => {}
        }
    }
    d
}

/// The source to judge the pyc at `path` against, when something is there: `source` when
/// the pyc was looked up from it, else the one its path names (`source_for`); with its
/// metadata when it is a regular file, else why it cannot be read as a source.
fn found_source(
    path: &Path,
    source: Option<&Path>,
    prefix: Option<&Path>,
) -> Option<(PathBuf, Result<std::fs::Metadata, String>)> {
    let src = source.map(Path::to_path_buf).or_else(|| source_for(path, prefix))?;
    let found = match std::fs::metadata(&src) {
        Ok(m) if m.is_file() => Ok(m),
        Ok(m) if m.is_dir() => Err("is a directory".to_string()),
        Ok(_) => Err("not a regular file".to_string()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            return None;
        }
        Err(e) => Err(crate::io::io_reason(&e)),
    };
    Some((src, found))
}

/// What follows a source hash or stamp of a pyc named for another interpreter than its
/// magic number's (see its error), whatever the source.
fn refused(source: &Path) -> String {
    format!(" (not taken for {}: named for another interpreter)", crate::report::ticked(source))
}

/// What follows a source hash or stamp when it was not compared: `(source not found)`, or
/// why the source that is there could not be read.
fn not_compared(d: &Description) -> String {
    match (&d.source, &d.source_error) {
        (Some(s), Some(why)) => format!(" (source {} could not be read: {why})", crate::report::ticked(s)),
        _ => " (source not found)".to_string(),
    }
}

fn variant_for(magic: Magic, minor: Option<(u8, u8)>) -> HashVariant {
    match minor {
        Some(m) if m < (3, 11) => HashVariant::Sip24,
        Some(_) => HashVariant::Sip13,
        None => KNOWN.last().map_or(HashVariant::Sip13, |k| {
            if magic.number() > k.magic_number { HashVariant::Sip13 } else { k.hash }
        }),
    }
}

/// Whether `path` names a Python source rather than a pyc: the name decides (`.py`), unless
/// the file is a pyc named `x.py`, which no source can be mistaken for: a magic number
/// (bytes 2–3 `\r\n`, which a CRLF source can also have) followed by a flags field with a
/// NUL byte (every flags value has three; `compile()` refuses a source holding one).
fn is_source(path: &Path) -> bool {
    if !path.as_os_str().as_bytes().ends_with(b".py") || !path.is_file() {
        return false;
    }
    let mut head = Vec::new();
    match crate::io::open_nonblocking(path).and_then(|mut f| crate::io::read_up_to(&mut f, &mut head, 8)) {
        Ok(_) => {
            !(head.len() == 8
                && Magic([head[0], head[1], head[2], head[3]]).is_well_formed()
                && head[4..].contains(&0))
        }
        Err(_) => true,
    }
}

/// The pycs of source `src` that exist: `__pycache__/<stem>.<tag>[.opt-N].pyc` for any
/// interpreter tag and level, the same names under the pycache `prefix` when there is one
/// (the directory CPython's `sys.pycache_prefix` gives), then `<src>c` (the legacy layout).
fn pycs_of_source(src: &Path, prefix: Option<&Path>) -> Vec<PathBuf> {
    let name = src.file_name().map_or(&[][..], |n| n.as_bytes());
    let stem = &name[..name.len() - b".py".len()];
    let dir = src.parent().unwrap_or(Path::new(""));
    let mut dirs = vec![dir.join("__pycache__")];
    if let Some(prefix) = prefix
        && let Ok(cwd) = std::env::current_dir()
    {
        let abs_dir = crate::layout::absolute(dir, &cwd);
        let rel = abs_dir.strip_prefix("/").unwrap_or(&abs_dir).to_path_buf();
        // The prefix as given, as `importlib.util.cache_from_source` joins it.
        dirs.push(prefix.join(rel));
    }
    let mut found = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        let mut here: Vec<(TagOrder, u8, PathBuf)> = Vec::new();
        let names: Vec<std::ffi::OsString> = entries.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
        for n in &names {
            if let Some((s, tag, opt)) = split_cached_name(n.as_bytes())
                && s == stem
            {
                here.push((tag_order(tag), opt, d.join(n)));
            }
        }
        // By interpreter tag, its version as a number (`cpython-39` before `cpython-310`),
        // then level (`m.cpython-312.pyc` before its `.opt-1.pyc`).
        here.sort();
        found.extend(here.into_iter().map(|(_, _, p)| p));
    }
    let mut legacy = src.as_os_str().as_bytes().to_vec();
    legacy.push(b'c');
    let legacy = PathBuf::from(std::ffi::OsString::from_vec(legacy));
    if legacy.is_file() {
        found.push(legacy);
    }
    found
}

/// A tag's place among tags: its implementation name (`cpython-`), its version as numbers
/// (`39` is 3.9, `310` 3.10), then what follows (`cpython-313t`).
type TagOrder = (Vec<u8>, u32, u32, Vec<u8>);

fn tag_order(tag: &[u8]) -> TagOrder {
    let name = tag.iter().position(u8::is_ascii_digit).unwrap_or(tag.len());
    let digits = tag[name..].iter().take_while(|b| b.is_ascii_digit()).count();
    let number = |d: &[u8]| std::str::from_utf8(d).ok().and_then(|d| d.parse().ok()).unwrap_or(0);
    let (major, minor) = match digits {
        0 => (0, 0),
        1 => (number(&tag[name..name + 1]), 0),
        _ => (number(&tag[name..name + 1]), number(&tag[name + 1..name + digits])),
    };
    (tag[..name].to_vec(), major, minor, tag[name + digits..].to_vec())
}

/// What `inspect` describes for an argument: the pyc itself, or for a `.py` source its
/// pycs (an error entry when it has none). `prefix`: the pycache prefix and what set it.
fn described(f: &Path, prefix: Option<&(PathBuf, String)>) -> Vec<Description> {
    let dir = prefix.map(|(p, _)| p.as_path());
    if !is_source(f) {
        return vec![describe(f, None, dir)];
    }
    let pycs = pycs_of_source(f, dir);
    if pycs.is_empty() {
        let mut d = Description::empty(f);
        d.error = Some(format!(
            "not a pyc file but a Python source, and no pyc of it was found (looked in `__pycache__/`{}, \
             and for {} beside it)",
            prefix.map_or(String::new(), |(p, from)| format!(
                " and under {} (set by {from})",
                crate::report::ticked(p)
            )),
            f.file_name().map_or(String::new(), |n| {
                let mut legacy = n.to_os_string();
                legacy.push("c");
                crate::report::ticked(Path::new(&legacy)).to_string()
            })
        ));
        return vec![d];
    }
    pycs.iter().map(|p| describe(p, Some(f), dir)).collect()
}

/// Describe `files` on stdout. The text is data, as `check`'s findings: never coloured,
/// whatever `--color` says (it is for messages on stderr). `prefix`: the pycache prefix
/// and what set it (`--pycache-prefix`, a configuration key, `PYTHONPYCACHEPREFIX`).
pub fn inspect(
    files: &[PathBuf],
    json: bool,
    prefix: Option<&(PathBuf, String)>,
) -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::Success;
    let mut out = std::io::stdout().lock();
    // Once stdout is closed (`| head`), the files are still examined, unwritten, until one is
    // not a valid pyc: the exit status does not depend on the reader.
    let mut open = true;
    for d in files.iter().flat_map(|f| described(f, prefix)) {
        // Ctrl-C ends a long listing at once, as `check`'s and `compile`'s (nothing more is
        // printed, `error: interrupted`, 130).
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        if d.error.is_some() {
            status = ExitStatus::Findings;
        }
        if !open {
            if status == ExitStatus::Findings {
                break;
            }
            continue;
        }
        let text = if json {
            serde_json::to_string(&d).expect("serializable")
        } else {
            let mut lines = vec![crate::report::shown(&d.pyc).into_owned()];
            if let Some(magic) = &d.magic {
                let python = match &d.python {
                    Some(p) if d.pre_release => format!("CPython {p} development or pre-release"),
                    Some(p) => format!("CPython {p}"),
                    None if d.before_pep552 => "a Python older than 3.7".to_string(),
                    None => "unknown Python version".to_string(),
                };
                lines.push(format!("  magic        {magic} ({python})"));
            }
            if let Some(mode) = &d.mode {
                lines.push(format!("  mode         {mode}"));
            }
            if let Some(h) = &d.hash {
                let verdict = match (d.matches_source, &d.source) {
                    (Some(false), Some(s)) if d.tag_mismatch => refused(s),
                    (Some(true), Some(s)) => format!(" (matches {})", crate::report::ticked(s)),
                    // Never compared by the import: the stale code runs.
                    (Some(false), Some(s)) if d.mode.as_deref() == Some("unchecked-hash") => format!(
                        " (does NOT match {}; importlib does not check an unchecked-hash pyc, so \
                         this old code runs)",
                        crate::report::ticked(s)
                    ),
                    (Some(false), Some(s)) => format!(" (does NOT match {})", crate::report::ticked(s)),
                    _ => not_compared(&d),
                };
                lines.push(format!("  source hash  {h}{verdict}"));
            }
            if let (Some(m), Some(s)) = (d.mtime, d.source_size) {
                let verdict = match (d.matches_source, &d.source, d.source_stamp) {
                    (Some(false), Some(src), _) if d.tag_mismatch => refused(src),
                    (Some(true), Some(src), _) => format!(" (matches {})", crate::report::ticked(src)),
                    (Some(false), Some(src), Some((now_m, now_s))) => format!(
                        " (does NOT match {}: mtime {now_m}, size {now_s})",
                        crate::report::ticked(src)
                    ),
                    _ => not_compared(&d),
                };
                lines.push(format!("  source mtime {m} (seconds), size {s}{verdict}"));
            }
            if let Some(n) = d.body_bytes {
                lines.push(format!("  body         {}", crate::report::plural(n, "byte", "bytes")));
            }
            if let Some(n) = d.trailing_bytes.filter(|&n| n > 0) {
                lines.push(format!(
                    "  trailing     {} (CPython ignores them; py_compile writes none)",
                    crate::plan::trailing_bytes(n as u64)
                ));
            }
            if let Some(p) = &d.embedded_path {
                lines.push(format!("  co_filename  {}", crate::report::shown(p)));
            }
            if let Some(e) = &d.error {
                lines.push(format!("  error: {e}"));
            }
            lines.join("\n")
        };
        open = crate::report::out_line(&mut out, text)?;
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_pycs() {
        assert_eq!(
            source_for(Path::new("a/__pycache__/m.cpython-312.pyc"), None),
            Some(PathBuf::from("a/m.py"))
        );
        assert_eq!(
            source_for(Path::new("a/__pycache__/m.x.cpython-312.opt-2.pyc"), None),
            Some(PathBuf::from("a/m.x.py"))
        );
        assert_eq!(
            source_for(Path::new("a/__pycache__/test_a.cpython-311-pytest-8.3.4.pyc"), None),
            Some(PathBuf::from("a/test_a.py"))
        );
        assert_eq!(source_for(Path::new("a/m.pyc"), None), Some(PathBuf::from("a/m.py")));
        assert_eq!(source_for(Path::new("a/m.txt"), None), None);
    }

    #[test]
    fn tags_by_version() {
        let mut tags = ["cpython-315", "cpython-39", "pypy39", "cpython-310", "cpython-37", "cpython-313t"];
        tags.sort_by_key(|t| tag_order(t.as_bytes()));
        assert_eq!(
            tags,
            ["cpython-37", "cpython-39", "cpython-310", "cpython-313t", "cpython-315", "pypy39"]
        );
    }
}
