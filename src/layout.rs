//! Where a pyc goes for a source file: `importlib.util.cache_from_source` in Rust, plus
//! the legacy layout (`<source>c`) and the pycache-prefix layout.
//!
//! Pure path arithmetic on bytes (POSIX paths are bytes, not UTF-8), no I/O.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where pycs are placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `dir/__pycache__/<stem>.<tag>[.opt-N].pyc` (PEP 3147, the default).
    Pycache,
    /// `<prefix>/<absolute source dir without the leading />/<stem>.<tag>[.opt-N].pyc`
    /// (`sys.pycache_prefix`, 3.8+). The prefix is absolute.
    Prefix(PathBuf),
    /// `<source>c`, beside the source (pre-PEP 3147, `compileall -b`).
    Legacy,
}

/// The pyc path for `source` (as walked) under `layout`, for an interpreter whose
/// `sys.implementation.cache_tag` is `tag`, at optimization level `opt` (0, 1 or 2).
///
/// `absolute_dir` is the absolute, lexically normalised directory of the source; only the
/// prefix layout uses it.
pub fn pyc_path(source: &Path, absolute_dir: &Path, tag: &str, opt: u8, layout: &Layout) -> PathBuf {
    if *layout == Layout::Legacy {
        let mut bytes = source.as_os_str().as_bytes().to_vec();
        bytes.push(b'c');
        return PathBuf::from(OsStr::from_bytes(&bytes));
    }
    let name = source.file_name().map_or(&[][..], |n| n.as_bytes());
    let file = cache_file_name(name, tag, opt);
    match layout {
        Layout::Pycache => {
            let dir = source.parent().unwrap_or(Path::new(""));
            dir.join("__pycache__").join(OsStr::from_bytes(&file))
        }
        Layout::Prefix(prefix) => {
            let rel = absolute_dir.strip_prefix("/").unwrap_or(absolute_dir);
            prefix.join(rel).join(OsStr::from_bytes(&file))
        }
        Layout::Legacy => unreachable!("handled above"),
    }
}

/// `<base><sep><tag>[.opt-N].pyc` exactly as `cache_from_source` builds it: the name is
/// split at its last dot; a name without a dot (or one that starts with its only dot)
/// keeps the part after it and loses the separator, as CPython does.
pub fn cache_file_name(name: &[u8], tag: &str, opt: u8) -> Vec<u8> {
    let (base, sep, rest) = match name.iter().rposition(|&b| b == b'.') {
        Some(i) => (&name[..i], &b"."[..], &name[i + 1..]),
        None => (&b""[..], &b""[..], name),
    };
    let mut out = Vec::with_capacity(name.len() + tag.len() + 12);
    out.extend_from_slice(if base.is_empty() { rest } else { base });
    out.extend_from_slice(sep);
    out.extend_from_slice(tag.as_bytes());
    if opt > 0 {
        out.extend_from_slice(format!(".opt-{opt}").as_bytes());
    }
    out.extend_from_slice(b".pyc");
    out
}

/// The module name, cache tag and optimization level of a cache file name, as
/// [`cache_file_name`] builds it: `mod.cpython-311.opt-1.pyc` gives `mod`, `cpython-311`
/// and 1 (the tag may be empty: `mod..pyc`).
pub fn cache_name_parts(name: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    let stem_tag = name.strip_suffix(b".pyc")?;
    let (stem_tag, level) = match stem_tag
        .strip_suffix(b".opt-1")
        .map(|s| (s, 1))
        .or_else(|| stem_tag.strip_suffix(b".opt-2").map(|s| (s, 2)))
    {
        Some(x) => x,
        None => (stem_tag, 0),
    };
    let dot = stem_tag.iter().rposition(|&b| b == b'.')?;
    Some((&stem_tag[..dot], &stem_tag[dot + 1..], level))
}

/// The module name and the rest of a `__pycache__` file name as CPython's
/// `importlib.util.source_from_cache` splits it: the module name is everything before the
/// first dot (module names have none; a leading dot, as in `.hidden.cpython-312.pyc`,
/// belongs to the name), the rest the tag and whatever a tool appends to it:
/// `test_a.cpython-311-pytest-8.3.4.pyc` (pytest's rewritten asserts) gives `test_a` and
/// `cpython-311-pytest-8.3.4`, and the optimization level as [`cache_name_parts`].
pub fn module_name_parts(name: &[u8]) -> Option<(&[u8], &[u8], u8)> {
    let (_, _, level) = cache_name_parts(name)?;
    let stem_tag = name.strip_suffix(b".pyc")?;
    let stem_tag = if level > 0 { &stem_tag[..stem_tag.len() - b".opt-1".len()] } else { stem_tag };
    let dot = stem_tag.iter().skip(1).position(|&b| b == b'.')? + 1;
    Some((&stem_tag[..dot], &stem_tag[dot + 1..], level))
}

/// A pyc's source stem, tag, optimization level and other stem: see [`pyc_source`].
pub type PycSource<'a> = (&'a [u8], &'a [u8], u8, Option<&'a [u8]>);

/// The source a pyc named `name` in `__pycache__` (or a pycache prefix's mirror) belongs
/// to: its stem, its tag and optimization level, and another stem whose source also claims
/// it. CPython's `source_from_cache` takes the module name up to the first dot
/// ([`module_name_parts`]), so a foreign pyc such as pytest's
/// `test_a.cpython-311-pytest-8.3.4.pyc` is `test_a.py`'s (its tag: all after the name). A
/// name in the format `compile` writes, `<stem>.<tag>[.opt-N].pyc`, whose tag is one of
/// `ours` or reads as an interpreter's (`cpython-39`, `pypy310`), is `<stem>.py`'s as
/// `cache_from_source` builds it (`a.b.py`'s `a.b.cpython-312.pyc`), and also claimed by
/// the source up to the first dot.
pub fn pyc_source(name: &[u8], ours: impl Fn(&[u8]) -> bool) -> Option<PycSource<'_>> {
    let (first, rest, level) = module_name_parts(name)?;
    let Some((stem, tag, _)) = cache_name_parts(name).filter(|(stem, tag, _)| {
        stem.len() > first.len()
            && (ours(tag) || tag.first().is_some_and(u8::is_ascii_alphabetic) && tag_python(tag).is_some())
    }) else {
        return Some((first, rest, level, None));
    };
    Some((stem, tag, level, Some(first)))
}

/// The Python an interpreter tag names (`cpython-39`, `pypy310`): its `X.Y`, and the tag
/// itself when it is not CPython's.
pub fn tag_python(tag: &[u8]) -> Option<(String, Option<String>)> {
    let name_len = tag.iter().position(u8::is_ascii_digit)?;
    let digits: Vec<u8> = tag[name_len..].iter().copied().take_while(u8::is_ascii_digit).collect();
    let (major, minor) = digits.split_first().filter(|(_, minor)| !minor.is_empty())?;
    let minor = std::str::from_utf8(minor).ok()?.parse::<u16>().ok()?;
    let python = format!("{}.{minor}", char::from(*major));
    let cpython = tag[..name_len].strip_suffix(b"-").unwrap_or(&tag[..name_len]) == b"cpython";
    Some((python, (!cpython).then(|| String::from_utf8_lossy(tag).into_owned())))
}

/// `~` and `~/…` as the home directory ([`home_dir`]), as a shell would have expanded
/// them: a value from a configuration file or from an environment variable set where no
/// shell runs (a Dockerfile's `ENV`, a CI file) arrives unexpanded. Anything else is
/// unchanged. With no home directory known (no `HOME`, no entry in the password database)
/// it is an error, the reason for the caller to name where the value came from: never a
/// directory named `~` in the working directory.
pub fn expand_home(path: &Path) -> Result<PathBuf, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let rest = match bytes {
        b"~" => Some(&b""[..]),
        _ => bytes.strip_prefix(b"~/"),
    };
    let Some(rest) = rest else { return Ok(path.to_path_buf()) };
    match home_dir() {
        Some(home) => Ok(home.join(std::ffi::OsStr::from_bytes(rest))),
        None => Err(format!(
            "{} starts with `~`, but the home directory is unknown: HOME is not set and the user has no \
             entry in the password database",
            crate::report::ticked(path)
        )),
    }
}

/// The home directory as a shell finds it for `~`: `$HOME`, else (unset or empty, as under
/// `env -u HOME` or a service manager) the user's entry in the password database.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).or_else(passwd_home)
}

/// The home directory of the user running hashpyc in the password database.
fn passwd_home() -> Option<PathBuf> {
    // SAFETY: getuid(2) cannot fail.
    passwd_field(unsafe { libc::getuid() }, |pw| pw.pw_dir).map(PathBuf::from)
}

/// A field of `uid`'s entry in the password database (getpwuid_r), `None` when there is
/// no entry or the field is empty.
pub fn passwd_field(
    uid: libc::uid_t,
    field: fn(&libc::passwd) -> *mut libc::c_char,
) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids) for
        // getpwuid_r to fill.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `buf` outlives the call and its length is passed; getpwuid_r writes the
        // entry's strings there and the entry into `pw`.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        let value = field(&pw);
        if rc != 0 || found.is_null() || value.is_null() {
            return None;
        }
        // SAFETY: the field points at a NUL-terminated string inside `buf`, still alive.
        let value = unsafe { std::ffi::CStr::from_ptr(value) };
        let value = std::ffi::OsStr::from_bytes(value.to_bytes());
        return (!value.is_empty()).then(|| value.to_os_string());
    }
}

/// Lexically absolute form of `path` against `cwd`: `.` components dropped, `..` kept
/// (as `os.path.abspath` would not do, but the import system never sees `..` in the
/// paths it derives from `sys.path` either way).
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    joined.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_file_names_follow_cpython() {
        let f = |n: &str, o| String::from_utf8(cache_file_name(n.as_bytes(), "cpython-312", o)).unwrap();
        assert_eq!(f("mod.py", 0), "mod.cpython-312.pyc");
        assert_eq!(f("mod.py", 1), "mod.cpython-312.opt-1.pyc");
        assert_eq!(f("mod.py", 2), "mod.cpython-312.opt-2.pyc");
        assert_eq!(f("a.b.py", 0), "a.b.cpython-312.pyc");
        // Edge cases checked against importlib.util.cache_from_source:
        assert_eq!(f("script", 0), "scriptcpython-312.pyc");
        assert_eq!(f(".py", 0), "py.cpython-312.pyc");
        assert_eq!(f(".hidden.py", 0), ".hidden.cpython-312.pyc");
    }

    #[test]
    fn module_names_end_at_the_first_dot() {
        let f = |n: &str| module_name_parts(n.as_bytes()).map(|(s, t, l)| (s.to_vec(), t.to_vec(), l));
        let v = |s: &str, t: &str, l| Some((s.as_bytes().to_vec(), t.as_bytes().to_vec(), l));
        assert_eq!(f("test_a.cpython-311-pytest-8.3.4.pyc"), v("test_a", "cpython-311-pytest-8.3.4", 0));
        assert_eq!(f("m.cpython-312.opt-2.pyc"), v("m", "cpython-312", 2));
        assert_eq!(f(".hidden.cpython-312.pyc"), v(".hidden", "cpython-312", 0));
        assert_eq!(f("a.b.cpython-312.pyc"), v("a", "b.cpython-312", 0));
        assert_eq!(f("m.pyc"), None);
    }

    #[test]
    fn pyc_sources_as_check_and_inspect_take_them() {
        let f = |n: &'static str| pyc_source(n.as_bytes(), |t| t == b"ours");
        let b = |s: &'static str| s.as_bytes();
        assert_eq!(
            f("test_a.cpython-311-pytest-8.3.4.pyc"),
            Some((b("test_a"), b("cpython-311-pytest-8.3.4"), 0, None))
        );
        assert_eq!(f("a.b.cpython-312.opt-1.pyc"), Some((b("a.b"), b("cpython-312"), 1, Some(b("a")))));
        assert_eq!(f("a.b.ours.pyc"), Some((b("a.b"), b("ours"), 0, Some(b("a")))));
        assert_eq!(f("a.b.theirs.pyc"), Some((b("a"), b("b.theirs"), 0, None)));
        assert_eq!(f("m.cpython-312.pyc"), Some((b("m"), b("cpython-312"), 0, None)));
        assert_eq!(f("m.pyc"), None);
    }

    #[test]
    fn layouts() {
        let src = Path::new("pkg/sub/mod.py");
        let abs = Path::new("/work/pkg/sub");
        assert_eq!(
            pyc_path(src, abs, "cpython-311", 0, &Layout::Pycache),
            Path::new("pkg/sub/__pycache__/mod.cpython-311.pyc")
        );
        assert_eq!(
            pyc_path(Path::new("mod.py"), abs, "cpython-311", 0, &Layout::Pycache),
            Path::new("__pycache__/mod.cpython-311.pyc")
        );
        assert_eq!(
            pyc_path(src, abs, "cpython-311", 2, &Layout::Prefix("/cache".into())),
            Path::new("/cache/work/pkg/sub/mod.cpython-311.opt-2.pyc")
        );
        assert_eq!(pyc_path(src, abs, "cpython-311", 0, &Layout::Legacy), Path::new("pkg/sub/mod.pyc"));
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else { return };
        let home = PathBuf::from(home);
        assert_eq!(expand_home(Path::new("~/.cache/x")), Ok(home.join(".cache/x")));
        assert_eq!(expand_home(Path::new("~")), Ok(home));
        for same in ["~user/x", "a/~/b", "/abs/~", "~x", "rel"] {
            assert_eq!(expand_home(Path::new(same)), Ok(PathBuf::from(same)));
        }
    }

    #[test]
    fn absolute_drops_dots() {
        assert_eq!(absolute(Path::new("./a/./b"), Path::new("/w")), Path::new("/w/a/b"));
        assert_eq!(absolute(Path::new("/x/y"), Path::new("/w")), Path::new("/x/y"));
    }
}
