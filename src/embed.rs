//! The path embedded in each pyc as `co_filename` (shown in tracebacks when the source
//! is not found): the path as walked, or rewritten by `-d`, `-s` and `-p` with
//! compileall's semantics. Pure byte arithmetic on POSIX paths.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How embedded paths are derived.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Embed {
    /// `-d DIR`: DIR joined with the path below the walked directory (for a file named
    /// on the command line, DIR joined with its file name).
    pub ddir: Option<PathBuf>,
    /// `-s DIR`: removed when it matches whole leading components of the path.
    pub strip: Option<PathBuf>,
    /// `-p DIR`: prepended after stripping (an absolute remainder is kept as is, as
    /// `os.path.join` does).
    pub prepend: Option<PathBuf>,
    /// Where `strip` came from when not from `-s` (`` `strip-prefix = "/x"` in
    /// `hashpyc.toml` line 2``), for its warning.
    pub strip_from: Option<String>,
    /// Where `prepend` came from when not from `-p`, for its warning.
    pub prepend_from: Option<String>,
}

/// An embedded path, plus whether `-s` or `-p` did not apply to it (worth a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedded {
    pub path: PathBuf,
    pub strip_missed: bool,
    /// `-s` is the whole path: removing it would leave no file name (compileall raises a
    /// TypeError), so it is not applied either.
    pub strip_whole: bool,
    /// `-p` changed nothing: what it was joined with is absolute, which `os.path.join`
    /// keeps whole (a `-p` of `/` alone embeds what was meant, and is not counted).
    pub prepend_missed: bool,
}

impl Embed {
    pub fn is_identity(&self) -> bool {
        self.ddir.is_none() && self.strip.is_none() && self.prepend.is_none()
    }

    /// The embedded path for `path`, which lies `depth` components below its walk root
    /// (1 for a file named directly).
    pub fn apply(&self, path: &Path, depth: usize) -> Embedded {
        if let Some(ddir) = &self.ddir {
            let comps: Vec<_> = path.components().collect();
            let below: PathBuf = comps[comps.len().saturating_sub(depth.max(1))..].iter().collect();
            return Embedded {
                path: ddir.join(below),
                strip_missed: false,
                strip_whole: false,
                prepend_missed: false,
            };
        }
        let mut out: Option<PathBuf> = None;
        let (mut strip_missed, mut strip_whole) = (false, false);
        if let Some(strip) = &self.strip {
            // compileall: str.split(os.sep) on both, compare the leading parts exactly; a
            // trailing `/` of `-s` is not a component (`root/` is `root`).
            let full: Vec<&[u8]> = path.as_os_str().as_bytes().split(|&b| b == b'/').collect();
            let prefix: Vec<&[u8]> = without_trailing_slashes(strip).split(|&b| b == b'/').collect();
            if full.len() >= prefix.len() && full[..prefix.len()] == prefix[..] && full.len() > prefix.len() {
                let rest: PathBuf = full[prefix.len()..].iter().map(|p| OsStr::from_bytes(p)).collect();
                out = Some(rest);
            } else if full == prefix {
                strip_whole = true;
            } else {
                strip_missed = true;
            }
        }
        let mut prepend_missed = false;
        if let Some(prepend) = &self.prepend {
            let rest = out.as_deref().unwrap_or(path);
            prepend_missed =
                rest.is_absolute() && !prepend.components().all(|c| c == std::path::Component::RootDir);
            out = Some(prepend.join(rest));
        }
        Embedded {
            path: out.unwrap_or_else(|| path.to_path_buf()),
            strip_missed,
            strip_whole,
            prepend_missed,
        }
    }

    /// How the warnings name `-s` and `-p`: the flag and its value, or the key of the
    /// configuration file that set it.
    fn strip_name(&self) -> String {
        let strip = self.strip.as_deref().unwrap_or(Path::new(""));
        self.strip_from.clone().unwrap_or_else(|| format!("--strip-prefix {}", crate::report::ticked(strip)))
    }

    /// The options in effect, named as the warnings name them (`--ddir `/app``,
    /// `` `prepend-prefix = "/app"` in `pyproject.toml` line 5``), for `check`'s hint.
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(ddir) = &self.ddir {
            names.push(format!("--ddir {}", crate::report::ticked(ddir)));
        }
        if self.strip.is_some() {
            names.push(self.strip_name());
        }
        if self.prepend.is_some() {
            names.push(self.prepend_name());
        }
        names
    }

    fn prepend_name(&self) -> String {
        let prepend = self.prepend.as_deref().unwrap_or(Path::new(""));
        self.prepend_from
            .clone()
            .unwrap_or_else(|| format!("--prepend-prefix {}", crate::report::ticked(prepend)))
    }

    /// What the compileall of CPython 3.9–3.12 embeds for `path` under `-s`/`-p` (not
    /// `-d`), for the warning: both split at `/`, each pair of components at the same
    /// position that are equal removes the first component of that value left in the path
    /// (`list.remove`), and the rest is joined as `os.path.join` joins it (an empty first
    /// component, an absolute path's, is dropped). None when nothing is left (compileall
    /// raises) or without `-s`.
    pub fn compileall_before_313(&self, path: &Path) -> Option<PathBuf> {
        let strip = self.strip.as_ref()?;
        let full: Vec<&[u8]> = path.as_os_str().as_bytes().split(|&b| b == b'/').collect();
        let prefix: Vec<&[u8]> = strip.as_os_str().as_bytes().split(|&b| b == b'/').collect();
        let mut left = full.clone();
        for (s, f) in prefix.iter().zip(&full) {
            if s == f {
                let at = left.iter().position(|p| p == s).expect("a component equal to one of the path's");
                left.remove(at);
            }
        }
        let (first, rest) = left.split_first()?;
        let mut joined = first.to_vec();
        for part in rest {
            if !joined.is_empty() && !joined.ends_with(b"/") {
                joined.push(b'/');
            }
            joined.extend_from_slice(part);
        }
        let dfile = PathBuf::from(OsStr::from_bytes(&joined));
        Some(match &self.prepend {
            Some(p) => p.join(dfile),
            None => dfile,
        })
    }
}

/// `-s DIR`'s bytes without trailing slashes, as every Unix tool reads a directory
/// (`root/` is `root`; compileall 3.13+ reads the slash as an empty last component that no
/// path has, and ignores the prefix); `/` stays `/`.
fn without_trailing_slashes(strip: &Path) -> &[u8] {
    let mut bytes = strip.as_os_str().as_bytes();
    while bytes.len() > 1
        && let Some(without) = bytes.strip_suffix(b"/")
    {
        bytes = without;
    }
    bytes
}

/// The one warning of a run in which `-s` did not apply to `count` sources, `example`
/// the first of them in path order: what they embed instead (`-p` still applies, as in
/// compileall 3.13+, unless the path is absolute), the example's embedded path, and what
/// the compileall of 3.9–3.12, whose rule differs, embeds for the example.
pub fn strip_missed_message(embed: &Embed, count: usize, example: &Path) -> String {
    let ours = embed.apply(example, 1);
    let instead = embedded_without_strip(embed, &ours);
    // One path is named as itself; of several, one is the example.
    let (eg, their) = if count == 1 { ("", "its path is") } else { ("e.g. ", "their paths are") };
    let before_313 = match embed.compileall_before_313(example) {
        Some(theirs) if theirs != ours.path => format!(
            "; the compileall of 3.9–3.12, which removes each component equal to the one at the \
             same position, embeds {} for it",
            crate::report::ticked(&theirs)
        ),
        _ => String::new(),
    };
    format!(
        "{} does not match the start of {} ({eg}{}); {their} embedded {instead}, as by \
         compileall 3.13+ ({}){before_313}",
        embed.strip_name(),
        crate::report::plural(count, "source path", "source paths"),
        crate::report::ticked(example),
        crate::report::ticked(&ours.path),
    )
}

/// How a path `-s` did not apply to is embedded: with `-p` alone, or unchanged.
fn embedded_without_strip(embed: &Embed, ours: &Embedded) -> String {
    match &embed.prepend {
        // `-p` changes no absolute path: not said applied where it was not.
        Some(_) if ours.prepend_missed => {
            format!("unchanged ({} has no effect on an absolute path, see below)", embed.prepend_name())
        }
        Some(_) => format!("with only {} applied", embed.prepend_name()),
        None => "unchanged".to_string(),
    }
}

/// The warning of a run in which `-s` is the whole of `count` source paths (one, but for
/// spellings of it), `example` the first: removing it would leave no file name, which
/// compileall fails on (a TypeError from `os.path.join()`), so it is not applied.
pub fn strip_whole_message(embed: &Embed, count: usize, example: &Path) -> String {
    let ours = embed.apply(example, 1);
    let (eg, their) = if count == 1 { ("", "its path is") } else { ("e.g. ", "their paths are") };
    format!(
        "{} is the whole of {} ({eg}{}), not a directory above it: removing it would leave no \
         file name (compileall fails there, with a TypeError), so it is not applied; {their} \
         embedded {}: {}",
        embed.strip_name(),
        crate::report::plural(count, "source path", "source paths"),
        crate::report::ticked(example),
        embedded_without_strip(embed, &ours),
        crate::report::ticked(&ours.path),
    )
}

/// The one warning of a run in which `-p` changed `count` embedded paths not at all,
/// `example` the first of those sources in path order: `os.path.join` keeps an absolute
/// path whole (compileall's `-p` too), so the staging path `-s`/`-p` are there to replace
/// stays in the pycs. Says what is embedded and what to give instead.
pub fn prepend_missed_message(embed: &Embed, count: usize, example: &Path) -> String {
    let ours = embed.apply(example, 1);
    let (eg, their) = if count == 1 { ("", "its path is") } else { ("e.g. ", "their paths are") };
    let prepend = crate::report::shown(embed.prepend.as_deref().unwrap_or(Path::new(""))).to_string();
    let advice = if embed.strip.is_some() && ours.strip_missed {
        format!(
            "{} did not apply to it (warned above): make it the leading directories to replace, \
             as whole components",
            embed.strip_name()
        )
    } else {
        format!(
            "to replace its leading directories (a staging root), give them with --strip-prefix \
             too (`--strip-prefix DIR --prepend-prefix {prepend}`, DIR whole components), or name \
             the sources relative to that directory"
        )
    };
    format!(
        "{} has no effect on {} ({eg}{}): `os.path.join` keeps an absolute path as it is, as \
         compileall does, so {their} embedded unchanged ({}); {advice}",
        embed.prepend_name(),
        crate::report::plural(count, "source path", "source paths"),
        crate::report::ticked(example),
        crate::report::ticked(&ours.path),
    )
}

/// Counts the sources `-s` did not apply to, and those `-p` changed nothing of, and keeps
/// the first of each in path order (shared by the walker's threads).
#[derive(Default)]
pub struct Missed(std::sync::Mutex<Misses>);

/// How many sources `-s` and `-p` did not apply to, each with the first in path order.
#[derive(Debug, Default)]
pub struct Misses {
    strip: (usize, Option<PathBuf>),
    whole: (usize, Option<PathBuf>),
    prepend: (usize, Option<PathBuf>),
}

impl Missed {
    /// `path`, which `-s` did not match (`strip`), or is the whole of (`whole`), or `-p`
    /// changed nothing of (`prepend`): [`Embedded`]'s flags.
    pub fn add(&self, path: &Path, (strip, whole, prepend): (bool, bool, bool)) {
        if !strip && !whole && !prepend {
            return;
        }
        let mut guard = self.0.lock().expect("missed lock");
        let m = &mut *guard;
        for (missed, (n, first)) in [(strip, &mut m.strip), (whole, &mut m.whole), (prepend, &mut m.prepend)]
        {
            if missed {
                *n += 1;
                if first.as_deref().is_none_or(|e| path < e) {
                    *first = Some(path.to_path_buf());
                }
            }
        }
    }

    pub fn into_inner(self) -> Misses {
        self.0.into_inner().expect("missed lock")
    }
}

impl Misses {
    /// The run's warnings: `-s`'s, then `-p`'s.
    pub fn messages(&self, embed: &Embed) -> Vec<String> {
        let mut out = Vec::new();
        if let (n @ 1.., Some(example)) = &self.strip {
            out.push(strip_missed_message(embed, *n, example));
        }
        if let (n @ 1.., Some(example)) = &self.whole {
            out.push(strip_whole_message(embed, *n, example));
        }
        if let (n @ 1.., Some(example)) = &self.prepend {
            out.push(prepend_missed_message(embed, *n, example));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ddir: Option<&str>, strip: Option<&str>, prepend: Option<&str>) -> Embed {
        Embed {
            ddir: ddir.map(Into::into),
            strip: strip.map(Into::into),
            prepend: prepend.map(Into::into),
            strip_from: None,
            prepend_from: None,
        }
    }

    #[test]
    fn identity() {
        let got = Embed::default().apply(Path::new("./pkg/m.py"), 2);
        let none = Embedded {
            path: "./pkg/m.py".into(),
            strip_missed: false,
            strip_whole: false,
            prepend_missed: false,
        };
        assert_eq!(got, none);
    }

    #[test]
    fn ddir_replaces_the_walk_root() {
        let d = e(Some("/app"), None, None);
        assert_eq!(d.apply(Path::new("build/src/pkg/m.py"), 2).path, Path::new("/app/pkg/m.py"));
        assert_eq!(d.apply(Path::new("build/src/m.py"), 1).path, Path::new("/app/m.py"));
    }

    #[test]
    fn strip_and_prepend_follow_compileall() {
        let sp = e(None, Some("/build/root"), Some("/"));
        assert_eq!(sp.apply(Path::new("/build/root/pkg/m.py"), 2).path, Path::new("/pkg/m.py"));
        // Not a whole-component prefix: ignored (with a warning), -p still applies.
        let miss = sp.apply(Path::new("/build/rootx/m.py"), 1);
        assert!(miss.strip_missed);
        assert_eq!(miss.path, Path::new("/build/rootx/m.py"));
        let s = e(None, Some("build"), None);
        assert_eq!(s.apply(Path::new("build/pkg/m.py"), 2).path, Path::new("pkg/m.py"));
        let p = e(None, None, Some("/opt"));
        assert_eq!(p.apply(Path::new("pkg/m.py"), 2).path, Path::new("/opt/pkg/m.py"));
        // os.path.join keeps an absolute path: -p changed nothing (a `/` alone is no miss).
        let abs = p.apply(Path::new("/stage/pkg/m.py"), 2);
        assert!(abs.prepend_missed && !abs.strip_missed);
        assert_eq!(abs.path, Path::new("/stage/pkg/m.py"));
        assert!(!sp.apply(Path::new("/build/rootx/m.py"), 1).prepend_missed);
        // The whole path: nothing would be left, so not applied, and said so apart.
        let whole = e(None, Some("s/m.py"), Some("/x")).apply(Path::new("s/m.py"), 1);
        assert!(whole.strip_whole && !whole.strip_missed);
        assert_eq!(whole.path, Path::new("/x/s/m.py"));
    }

    #[test]
    fn strip_trailing_slashes_are_not_a_component() {
        for strip in ["/build/root/", "/build/root//"] {
            let got = e(None, Some(strip), Some("/")).apply(Path::new("/build/root/pkg/m.py"), 2);
            assert!(!got.strip_missed, "{strip}");
            assert_eq!(got.path, Path::new("/pkg/m.py"), "{strip}");
        }
        let whole = e(None, Some("s/m.py/"), None).apply(Path::new("s/m.py"), 1);
        assert!(whole.strip_whole && !whole.strip_missed);
        // `/` stays `/` (two empty components), as before.
        assert!(e(None, Some("/"), None).apply(Path::new("/a/m.py"), 1).strip_missed);
    }

    #[test]
    fn compileall_before_313_strips_by_position() {
        let before = |strip: &str, prepend: Option<&str>, path: &str| {
            e(None, Some(strip), prepend).compileall_before_313(Path::new(path))
        };
        assert_eq!(before("src/", None, "src/m.py"), Some("m.py".into()));
        assert_eq!(before("src/pkg", Some("/app"), "src/m.py"), Some("/app/m.py".into()));
        // The first equal component left is removed, not the one at that position.
        assert_eq!(before("b/x/a", None, "a/x/a/m.py"), Some("a/m.py".into()));
        // An absolute path's empty first component left in place is dropped by os.path.join.
        assert_eq!(before("x", None, "/abs/m.py"), Some("abs/m.py".into()));
        assert_eq!(before("src/m.py", None, "src/m.py"), None);
    }
}
