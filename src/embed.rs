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
}

/// An embedded path, plus whether `-s` did not apply to it (worth a warning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedded {
    pub path: PathBuf,
    pub strip_missed: bool,
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
            return Embedded { path: ddir.join(below), strip_missed: false };
        }
        let mut out: Option<PathBuf> = None;
        let mut strip_missed = false;
        if let Some(strip) = &self.strip {
            // compileall: str.split(os.sep) on both, compare the leading parts exactly.
            let full: Vec<&[u8]> = path.as_os_str().as_bytes().split(|&b| b == b'/').collect();
            let prefix: Vec<&[u8]> = strip.as_os_str().as_bytes().split(|&b| b == b'/').collect();
            if full.len() >= prefix.len() && full[..prefix.len()] == prefix[..] && full.len() > prefix.len() {
                let rest: PathBuf = full[prefix.len()..].iter().map(|p| OsStr::from_bytes(p)).collect();
                out = Some(rest);
            } else {
                strip_missed = true;
            }
        }
        if let Some(prepend) = &self.prepend {
            out = Some(prepend.join(out.as_deref().unwrap_or(path)));
        }
        Embedded { path: out.unwrap_or_else(|| path.to_path_buf()), strip_missed }
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

/// The one warning of a run in which `-s` did not apply to `count` sources, `example`
/// the first of them in path order: what they embed instead (`-p` still applies, as in
/// compileall 3.13+), why a strip prefix with a trailing `/` never matches, and what the
/// compileall of 3.9–3.12, whose rule differs, embeds for the example.
pub fn strip_missed_message(embed: &Embed, count: usize, example: &Path) -> String {
    let strip = embed.strip.as_deref().unwrap_or(Path::new(""));
    let bytes = strip.as_os_str().as_bytes();
    let slash = match bytes.strip_suffix(b"/") {
        Some(without) if !without.is_empty() && !without.ends_with(b"/") => format!(
            " (split at each `/`, as compileall 3.13+ splits it, the trailing `/` is an empty \
             last component that no path has: give `{}`)",
            crate::report::shown(Path::new(OsStr::from_bytes(without)))
        ),
        _ => String::new(),
    };
    let instead = match &embed.prepend {
        Some(p) => format!("with only --prepend-prefix `{}` applied", crate::report::shown(p)),
        None => "unchanged".to_string(),
    };
    let ours = embed.apply(example, 1).path;
    let before_313 = match embed.compileall_before_313(example) {
        Some(theirs) if theirs != ours => format!(
            ", as by compileall 3.13+ (`{}`); the compileall of 3.9–3.12, which removes each \
             component equal to the one at the same position, embeds `{}` for it",
            crate::report::shown(&ours),
            crate::report::shown(&theirs)
        ),
        _ => ", as by compileall 3.13+".to_string(),
    };
    // One path is named as itself; of several, one is the example.
    let (eg, their) = if count == 1 { ("", "its path is") } else { ("e.g. ", "their paths are") };
    format!(
        "{} does not match the start of {} ({eg}`{}`){slash}; {their} embedded {instead}{before_313}",
        embed
            .strip_from
            .clone()
            .unwrap_or_else(|| format!("--strip-prefix `{}`", crate::report::shown(strip))),
        crate::report::plural(count, "source path", "source paths"),
        crate::report::shown(example)
    )
}

/// Counts the sources `-s` did not apply to, and keeps the first in path order (shared by
/// the walker's threads).
#[derive(Default)]
pub struct StripMissed(std::sync::Mutex<(usize, Option<PathBuf>)>);

impl StripMissed {
    pub fn add(&self, path: &Path) {
        let mut m = self.0.lock().expect("strip lock");
        m.0 += 1;
        if m.1.as_deref().is_none_or(|e| path < e) {
            m.1 = Some(path.to_path_buf());
        }
    }

    /// How many, and the first.
    pub fn into_inner(self) -> (usize, Option<PathBuf>) {
        self.0.into_inner().expect("strip lock")
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
        }
    }

    #[test]
    fn identity() {
        let got = Embed::default().apply(Path::new("./pkg/m.py"), 2);
        assert_eq!(got, Embedded { path: "./pkg/m.py".into(), strip_missed: false });
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
