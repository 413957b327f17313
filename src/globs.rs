//! The `exclude` globs as the lines of one `.gitignore`, matched all at once.
//!
//! Each line is read as `ignore`'s gitignore matcher reads it (`!` takes back, a trailing
//! `/` matches directories only, a glob without a `/` matches at any depth, a leading `/`
//! or one inside anchors it) and turned into the regular expression `globset` builds for
//! it. The expressions form a few sets, each searched once per path whatever the number of
//! lines: a glob matching at any depth (`**/R`, `R` without `**`, a class or a `/` in an
//! alternative) in the set of the globs of as many components as `R`, matched against as
//! many last components of the path (`gen_1*_pb2.py` against the name alone: the set of
//! `**/R` expressions searched in the whole path builds a new automaton state for each
//! directory and name it meets, slowly with thousands of globs); any other in one set
//! matched against the whole path. (`ignore`'s matcher, through a `GlobSet`, tries the
//! expression of each glob ending in a literal extension one after the other:
//! `**/gen_1*_pb2.py` and thousands like it made a check of 11 400 files 25 times slower.)

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line: what a match of it means.
#[derive(Clone, Copy, Debug)]
struct Line {
    /// `!GLOB`: a match takes the path back.
    whitelist: bool,
    /// `GLOB/`: matches directories only.
    only_dir: bool,
}

/// The expressions of some of the lines, searched in one pass.
#[derive(Debug)]
struct Set {
    /// How many last components of a path the expressions match; 0: the whole path.
    components: usize,
    regexes: regex::bytes::RegexSet,
    /// The line of each expression, in order.
    lines: Vec<usize>,
}

/// Gitignore-style lines relative to `root`, a later matching line deciding.
#[derive(Debug)]
pub struct GlobLines {
    root: PathBuf,
    lines: Vec<Line>,
    sets: Vec<Set>,
}

/// What the lines say of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    None,
    Ignore,
    Whitelist,
}

impl Verdict {
    pub fn is_ignore(self) -> bool {
        self == Verdict::Ignore
    }
}

impl GlobLines {
    /// The lines, relative to `root`; `Err` names the first line that is not a glob.
    pub fn new<S: AsRef<str>>(root: &Path, lines: &[S]) -> Result<GlobLines, String> {
        let root = root.strip_prefix("./").unwrap_or(root).to_path_buf();
        let mut kinds = Vec::new();
        // By components matched: the expressions and their lines.
        let mut groups: std::collections::BTreeMap<usize, (Vec<String>, Vec<usize>)> = Default::default();
        for line in lines {
            if let Some((kind, components, re)) = parse(line.as_ref())? {
                let group = groups.entry(components).or_default();
                group.0.push(re);
                group.1.push(kinds.len());
                kinds.push(kind);
            }
        }
        let mut sets = Vec::new();
        for (components, (regexes, lines)) in groups {
            // As globset builds its sets of expressions (bytes, not UTF-8; `.` takes a
            // newline), with room for a few thousand lines.
            let regexes = regex::bytes::RegexSetBuilder::new(&regexes)
                .dot_matches_new_line(true)
                .size_limit(64 << 20)
                .dfa_size_limit(16 << 20)
                .build()
                .map_err(|e| format!("error parsing the globs: {e}"))?;
            sets.push(Set { components, regexes, lines });
        }
        Ok(GlobLines { root, lines: kinds, sets })
    }

    /// The directory the lines are relative to.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The verdict of the last line matching `path` (under the root, or relative to it),
    /// a directory-only line counting for a directory only.
    pub fn matched(&self, path: &Path, is_dir: bool) -> Verdict {
        if self.sets.is_empty() {
            return Verdict::None;
        }
        self.matched_stripped(self.strip(path), is_dir)
    }

    /// What a walk from the root decides for `path` (under the root, or relative to it):
    /// `Ignore` when a directory on the way down is ignored, as the walk never enters it
    /// and, as in git, no later `!GLOB` can take back a file or directory below it
    /// (`gen/` then `!gen/keep.py` skips `gen/keep.py`); else the verdict on `path`.
    pub fn matched_from_root(&self, path: &Path, is_dir: bool) -> Verdict {
        if self.sets.is_empty() {
            return Verdict::None;
        }
        let path = self.strip(path);
        let mut dir = PathBuf::new();
        let mut parts = path.components().peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                break;
            }
            dir.push(part);
            if matches!(part, std::path::Component::Normal(_))
                && self.matched_stripped(&dir, true).is_ignore()
            {
                return Verdict::Ignore;
            }
        }
        self.matched_stripped(path, is_dir)
    }

    fn matched_stripped(&self, path: &Path, is_dir: bool) -> Verdict {
        let path = path.as_os_str().as_bytes();
        let mut last = None;
        for set in &self.sets {
            let found = set.regexes.matches(last_components(path, set.components));
            let line = found.iter().rev().map(|i| set.lines[i]).find(|&l| !self.lines[l].only_dir || is_dir);
            last = last.max(line);
        }
        match last.map(|l| self.lines[l]) {
            None => Verdict::None,
            Some(l) if l.whitelist => Verdict::Whitelist,
            Some(_) => Verdict::Ignore,
        }
    }

    /// `path` relative to the root (a leading `./` dropped); as given when not under it.
    fn strip<'a>(&self, path: &'a Path) -> &'a Path {
        let path = path.strip_prefix("./").unwrap_or(path);
        if !path.as_os_str().as_bytes().contains(&b'/') {
            // A bare name is already relative.
            return path;
        }
        path.strip_prefix(&self.root).unwrap_or(path)
    }
}

/// What follows the `n`th `/` from the end of `path`, all of it when it has fewer (or
/// when `n` is 0): where `**/R` can match, `R` matching `n - 1` slashes.
fn last_components(path: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return path;
    }
    let mut start = path.len();
    for _ in 0..n {
        match path[..start].iter().rposition(|&b| b == b'/') {
            Some(i) => start = i,
            None => return path,
        }
    }
    &path[start + 1..]
}

/// A line as `ignore`'s `GitignoreBuilder::add_line` reads it: `None` for a comment or a
/// blank line, else what a match means, the number of last components of a path its
/// expression matches (0: the whole path) and the expression of its glob.
fn parse(line: &str) -> Result<Option<(Line, usize, String)>, String> {
    if line.starts_with('#') {
        return Ok(None);
    }
    let mut line = if line.ends_with("\\ ") { line } else { line.trim_end() };
    if line.is_empty() {
        return Ok(None);
    }
    let original = line;
    let mut kind = Line { whitelist: false, only_dir: false };
    let mut absolute = false;
    if line.starts_with("\\!") || line.starts_with("\\#") {
        line = &line[1..];
        absolute = line.starts_with('/');
    } else {
        if let Some(rest) = line.strip_prefix('!') {
            kind.whitelist = true;
            line = rest;
        }
        if let Some(rest) = line.strip_prefix('/') {
            // Anchored: wildcards match no `/`, so the glob matches from the root only.
            line = rest;
            absolute = true;
        }
    }
    if let Some(rest) = line.strip_suffix('/') {
        kind.only_dir = true;
        line = rest.strip_suffix('\\').unwrap_or(rest);
    }
    let mut actual = line.to_string();
    // A glob without a `/` matches at any depth.
    if !absolute && !line.contains('/') && !actual.starts_with("**/") && actual != "**" {
        actual = format!("**/{actual}");
    }
    // `dir/**` matches what is inside, not the directory itself.
    if actual.ends_with("/**") {
        actual.push_str("/*");
    }
    let glob = |g: &str| {
        globset::GlobBuilder::new(g)
            .literal_separator(true)
            .case_insensitive(false)
            .backslash_escape(true)
            .allow_unclosed_class(true)
            .build()
            .map_err(|e| format!("error parsing glob '{original}': {}", e.kind()))
    };
    let whole = glob(&actual)?;
    // `**/R`, where nothing in `R` but its own `/`s (each a component's end: `*` and `?`
    // take none) can match a `/`: a class may, an alternative may hold one, and `**` may
    // take several, so those are matched against the whole path.
    if let Some(rest) = actual.strip_prefix("**/")
        && !rest.contains("**")
        && !rest.contains('[')
        && !(rest.contains('{') && rest.contains('/'))
    {
        let components = 1 + rest.bytes().filter(|&b| b == b'/').count();
        return Ok(Some((kind, components, glob(rest)?.regex().to_string())));
    }
    Ok(Some((kind, 0, whole.regex().to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignore::gitignore::GitignoreBuilder;

    /// The verdicts of `ignore`'s gitignore matcher, which these lines replace; with
    /// `parents`, what a walk from the root reaches for the path.
    fn gitignore(root: &Path, lines: &[&str], path: &Path, is_dir: bool, parents: bool) -> Verdict {
        let mut b = GitignoreBuilder::new(root);
        for l in lines {
            b.add_line(None, l).unwrap();
        }
        let g = b.build().unwrap();
        // The walk enters no ignored directory: any of them on the way down decides.
        if parents {
            let rel = path.strip_prefix(root).unwrap();
            if rel
                .ancestors()
                .skip(1)
                .any(|d| !d.as_os_str().is_empty() && g.matched(root.join(d), true).is_ignore())
            {
                return Verdict::Ignore;
            }
        }
        let m = g.matched(path, is_dir);
        if m.is_ignore() {
            Verdict::Ignore
        } else if m.is_whitelist() {
            Verdict::Whitelist
        } else {
            Verdict::None
        }
    }

    #[test]
    fn verdicts_are_those_of_a_gitignore() {
        let root = Path::new("/src/proj");
        let lines = [
            "tests/",
            "*_pb2.py",
            "/docs/",
            "!keep_pb2.py",
            "pkg/gen/**",
            "**/vendored",
            "# a comment",
            "",
            "a/**/b.py",
            "\\!bang.py",
            "\\#hash.py",
            "sp\\ ",
            "trailing   ",
            "[ab]c?.py",
            "x/*.py",
            "/top.py",
            "deep/dir\\/",
            "{one,two}.py",
            "**/sub/gen_*_pb2.py",
            "!**/sub/gen_9*",
            "**/a/*/b.py",
            "**/[st]/x.py",
            "**/{c,d/e}.py",
            "**//z.py",
            "*/y/",
            "**",
            "!**/",
        ];
        let paths = [
            "tests",
            "a/tests",
            "a/tests/m.py",
            "m_pb2.py",
            "a/b/m_pb2.py",
            "keep_pb2.py",
            "a/keep_pb2.py",
            "docs",
            "a/docs",
            "pkg/gen",
            "pkg/gen/x.py",
            "pkg/gen/x/y.py",
            "vendored",
            "q/vendored",
            "a/b.py",
            "a/x/y/b.py",
            "!bang.py",
            "bang.py",
            "#hash.py",
            "sp ",
            "trailing",
            "ac1.py",
            "x/ac1.py",
            "x/m.py",
            "x/y/m.py",
            "top.py",
            "a/top.py",
            "deep/dir",
            "one.py",
            "t/two.py",
            "m.py",
            "sub/gen_1_pb2.py",
            "q/sub/gen_1_pb2.py",
            "q/sub/gen_9_pb2.py",
            "q/r/sub/gen_1_pb2.py",
            "a/x/b.py",
            "w/a/x/b.py",
            "a/x/y/b.py",
            "s/x.py",
            "q/t/x.py",
            "c.py",
            "q/d/e.py",
            "q//z.py",
            "q/y",
            "q/r/y",
        ];
        // Each prefix of the lines, so that the later lines are not all decided by `**`.
        for n in 0..=lines.len() {
            let ours = GlobLines::new(root, &lines[..n]).unwrap();
            for p in paths {
                for path in [root.join(p), PathBuf::from(p), PathBuf::from("/elsewhere").join(p)] {
                    for is_dir in [false, true] {
                        assert_eq!(
                            ours.matched(&path, is_dir),
                            gitignore(root, &lines[..n], &path, is_dir, false),
                            "{path:?} (dir: {is_dir}) with {:?}",
                            &lines[..n]
                        );
                        if path.starts_with(root) {
                            assert_eq!(
                                ours.matched_from_root(&path, is_dir),
                                gitignore(root, &lines[..n], &path, is_dir, true),
                                "{path:?} (dir: {is_dir}, parents) with {:?}",
                                &lines[..n]
                            );
                        }
                    }
                }
            }
        }
    }

    // A file or directory below an excluded directory is excluded whatever a later `!GLOB`
    // says of it, as `git check-ignore` has it and as the walk, which never enters the
    // directory, selects: `--force-exclude` asked the file's own match first, and
    // `gen/` then `!gen/keep.py` kept a named `gen/keep.py` the walk skips.
    #[test]
    fn nothing_below_an_excluded_directory_is_taken_back() {
        let root = Path::new("/src/proj");
        let cases: &[(&[&str], &str, bool, Verdict)] = &[
            (&["gen/", "!gen/keep.py"], "gen/keep.py", false, Verdict::Ignore),
            (&["gen/", "!gen/keep.py"], "gen/drop.py", false, Verdict::Ignore),
            (&["gen/", "!gen/keep.py"], "m.py", false, Verdict::None),
            (&["gen", "!gen/keep.py"], "gen/keep.py", false, Verdict::Ignore),
            (&["!gen/keep.py", "gen/"], "gen/keep.py", false, Verdict::Ignore),
            (&["fixtures/", "!a/fixtures/x.py"], "a/fixtures/x.py", false, Verdict::Ignore),
            (&["q/", "!q/gen/"], "q/gen/n.py", false, Verdict::Ignore),
            (&["q/", "!q/gen/"], "q/gen", true, Verdict::Ignore),
            // Taken back as a directory before the walk reaches it: entered.
            (&["gen/*", "!gen/keep.py"], "gen/keep.py", false, Verdict::Whitelist),
            (&["gen/*", "!gen/sub/"], "gen/sub/n.py", false, Verdict::None),
            (&["*.py", "!keep.py"], "a/keep.py", false, Verdict::Whitelist),
        ];
        for &(lines, path, is_dir, want) in cases {
            let ours = GlobLines::new(root, lines).unwrap();
            for p in [root.join(path), PathBuf::from(path)] {
                assert_eq!(ours.matched_from_root(&p, is_dir), want, "{p:?} with {lines:?}");
            }
            assert_eq!(gitignore(root, lines, &root.join(path), is_dir, true), want, "{path} with {lines:?}");
        }
    }
}
