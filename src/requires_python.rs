//! The project's `requires-python` (`[project]` of its `pyproject.toml`, PEP 621), read
//! once per run of `compile` and `check` to warn when a target interpreter is a version the
//! project does not support: pycs for a Python it will never run on. The project's file is
//! the `pyproject.toml` that `--config` names, else the nearest with a `[project]` table from
//! the working directory upwards, as uv finds a project. The specifier is PEP 440's, parsed
//! by `pep440_rs` (the code uv uses); one it cannot parse is said under `-v` and checks
//! nothing.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pep440_rs::{Version, VersionSpecifiers};

use crate::config::Origin;
use crate::target::Target;

/// A project's `requires-python`, parsed.
#[derive(Debug, Clone)]
pub struct RequiresPython {
    /// The `pyproject.toml`, as shown in messages.
    pub file: PathBuf,
    /// The line of the `requires-python` key.
    pub line: usize,
    /// The value as written.
    pub text: String,
    specifiers: VersionSpecifiers,
}

impl RequiresPython {
    /// Parse `text`, the value of `requires-python` at `line` of `file`: the error is
    /// pep440_rs's reason (the first line of its message, without the copy of the value
    /// and the carets under it).
    pub fn parse(file: PathBuf, line: usize, text: &str) -> Result<RequiresPython, String> {
        let specifiers = VersionSpecifiers::from_str(text).map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            let first = first.strip_prefix("Failed to parse version: ").unwrap_or(first);
            first.strip_suffix(':').unwrap_or(first).to_string()
        })?;
        Ok(RequiresPython { file, line, text: text.to_string(), specifiers })
    }

    /// Whether the project allows `target`: its version (`3.11.7`); for a target of the
    /// built-in table (`check --target 3.11`, no patch level known), any `3.11.N`.
    pub fn allows(&self, target: &Target) -> bool {
        let (major, minor, micro) = target.version;
        if target.from_table() {
            self.allows_minor(major, minor)
        } else {
            self.specifiers.contains(&Version::new([u64::from(major), u64::from(minor), u64::from(micro)]))
        }
    }

    /// Whether some patch release of `major.minor` is allowed (`~=3.10.2` allows 3.10).
    fn allows_minor(&self, major: u8, minor: u8) -> bool {
        (0..100u64)
            .any(|micro| self.specifiers.contains(&Version::new([u64::from(major), u64::from(minor), micro])))
    }

    /// The version to suggest instead of `(major, minor)`: the nearest minor version the
    /// project allows, newer ones first, from 3.7 (hashpyc's oldest) on.
    fn suggestion(&self, (major, minor): (u8, u8)) -> Option<(u8, u8)> {
        let newer = (minor..=minor.saturating_add(30)).map(|m| (major, m));
        let older = (0..minor).rev().map(|m| (major, m)).filter(|v| *v >= (3, 7));
        newer.chain(older).find(|&(a, b)| self.allows_minor(a, b))
    }
}

/// The project's `requires-python`: `Ok(None)` when there is no project or it says none,
/// `Err` with the line `-v` shows when it cannot be read or parsed. `config` is the file
/// `--config` named (used when it is a `pyproject.toml`); `cwd` the working directory.
pub fn find(config: Option<&Path>, cwd: &Path) -> Result<Option<RequiresPython>, String> {
    let named = config.filter(|p| p.file_name().is_some_and(|n| n == "pyproject.toml"));
    let candidates: Vec<PathBuf> = match named {
        Some(p) => vec![p.to_path_buf()],
        None => cwd.ancestors().map(|d| d.join("pyproject.toml")).collect(),
    };
    for path in candidates {
        let Ok(bytes) = crate::io::read_regular(&path) else { continue };
        let shown = match path.strip_prefix(cwd) {
            Ok(rel) if named.is_none() => rel.to_path_buf(),
            _ => path.clone(),
        };
        let file = crate::report::ticked(&shown).to_string();
        let not_checked = |why: String| format!("requires-python not checked: {file} {why}");
        let Ok(text) = String::from_utf8(bytes) else {
            return Err(not_checked("is not UTF-8".into()));
        };
        let doc = match toml::de::DeTable::parse(&text) {
            Ok(doc) => doc,
            Err(e) => {
                let at = e.span().map_or(1, |s| crate::config::line_of(&text, s.start));
                return Err(not_checked(format!("line {at}: invalid TOML")));
            }
        };
        let Some(project) = doc.get_ref().get("project").and_then(|p| p.get_ref().as_table()) else {
            // Not a project (a workspace root, another tool's settings): look further up.
            continue;
        };
        let Some(value) = project.get("requires-python") else { return Ok(None) };
        let line = crate::config::line_of(&text, value.span().start);
        let Some(spec) = value.get_ref().as_str() else {
            return Err(not_checked(format!("line {line}: `requires-python` is not a string")));
        };
        return RequiresPython::parse(shown, line, spec).map(Some).map_err(|reason| {
            not_checked(format!(
                "line {line}: `requires-python = {spec:?}` is not a PEP 440 specifier ({reason})"
            ))
        });
    }
    Ok(None)
}

/// One warning for the targets the project does not allow, if any: `verb` is what the run
/// does to pycs (`writes`, `checks`), `python_from` where the interpreters came from when
/// not from `--python`, `defaulted` whether none was named (the default `python3`).
pub fn warning(
    rp: &RequiresPython,
    targets: &[Arc<Target>],
    python_from: Option<&Origin>,
    defaulted: bool,
    verb: &str,
) -> Option<String> {
    let excluded: Vec<Arc<Target>> = targets.iter().filter(|t| !rp.allows(t)).cloned().collect();
    let first = excluded.first()?;
    let flag = if first.from_table() { "--target" } else { "--python" };
    let instead = rp
        .suggestion(first.minor())
        .map_or_else(|| format!("`{flag} X.Y`"), |(major, minor)| format!("`{flag} {major}.{minor}`"));
    let key = match python_from {
        Some(origin @ Origin::Key { .. }) => format!(", or change {}", origin.written("python")),
        Some(Origin::Env(var)) => format!(", or change {var}"),
        None if defaulted => ", or set the `python` key of the configuration".to_string(),
        None => String::new(),
    };
    let allowed = if excluded.len() == 1 { "a version it excludes" } else { "versions it excludes" };
    Some(format!(
        "{} line {}: the project requires Python `{}` (`requires-python`), and this run {verb} pycs for \
         {}, {allowed}: give an interpreter it allows ({instead}{key})",
        crate::report::ticked(&rp.file),
        rp.line,
        rp.text,
        crate::target::targets_label(&excluded),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rp(text: &str) -> RequiresPython {
        RequiresPython::parse("pyproject.toml".into(), 3, text).unwrap()
    }

    fn target(version: (u8, u8, u8), table: bool) -> Target {
        let mut t = crate::target::known_target(&format!("{}.{}", version.0, version.1)).unwrap();
        if !table {
            t.version = version;
            t.hexversion = 1;
        }
        t
    }

    #[test]
    fn the_subset_that_matters() {
        let cases: &[(&str, (u8, u8, u8), bool)] = &[
            (">=3.12", (3, 11, 7), false),
            (">=3.12", (3, 12, 0), true),
            ("~=3.10", (3, 9, 18), false),
            ("~=3.10", (3, 13, 1), true),
            ("~=3.10.2", (3, 10, 1), false),
            ("~=3.10.2", (3, 11, 0), false),
            ("<3.13,>=3.9", (3, 13, 0), false),
            ("<3.13,>=3.9", (3, 12, 1), true),
            (" >= 3.9 , < 3.13 ", (3, 8, 18), false),
            ("!=3.11.*", (3, 11, 7), false),
            ("!=3.11.*", (3, 12, 1), true),
            ("==3.11.*", (3, 11, 7), true),
            ("==3.11.*", (3, 12, 1), false),
            ("<=3.11", (3, 11, 7), false),
            ("<=3.11", (3, 11, 0), true),
            (">3.11", (3, 11, 7), true),
            ("<3.12", (3, 11, 7), true),
            ("==3.11.7", (3, 11, 7), true),
            ("", (3, 7, 16), true),
        ];
        for &(spec, version, allowed) in cases {
            assert_eq!(rp(spec).allows(&target(version, false)), allowed, "{spec} {version:?}");
        }
    }

    #[test]
    fn a_target_of_the_table_is_any_patch_release() {
        assert!(rp(">=3.11.5").allows(&target((3, 11, 0), true)));
        assert!(!rp("!=3.11.*").allows(&target((3, 11, 0), true)));
        assert!(!rp("<=3.10.99,>=3.12").allows(&target((3, 11, 0), true)));
    }

    #[test]
    fn unparseable() {
        for spec in [">=3.12.*", "3.12", "~=3", ">=three", "python>=3.8"] {
            let reason = RequiresPython::parse("p".into(), 1, spec).unwrap_err();
            assert!(!reason.is_empty() && !reason.contains('\n'), "{spec}: {reason}");
        }
        assert_eq!(
            RequiresPython::parse("p".into(), 1, ">=3.12.*").unwrap_err(),
            "Operator >= cannot be used with a wildcard version specifier"
        );
    }

    #[test]
    fn suggests_the_nearest_version_allowed() {
        assert_eq!(rp(">=3.12").suggestion((3, 11)), Some((3, 12)));
        assert_eq!(rp("<3.13,>=3.9").suggestion((3, 13)), Some((3, 12)));
        assert_eq!(rp("!=3.11.*").suggestion((3, 11)), Some((3, 12)));
        assert_eq!(rp("~=3.10.2").suggestion((3, 9)), Some((3, 10)));
        assert_eq!(rp("<3.7").suggestion((3, 11)), None);
    }

    #[test]
    fn one_warning_for_the_targets_excluded() {
        let targets: Vec<Arc<Target>> =
            [(3, 10, 1), (3, 11, 7), (3, 12, 1)].into_iter().map(|v| Arc::new(target(v, false))).collect();
        let w = warning(&rp(">=3.12"), &targets, None, true, "writes").unwrap();
        assert_eq!(
            w,
            "`pyproject.toml` line 3: the project requires Python `>=3.12` (`requires-python`), and this run \
             writes pycs for CPython 3.10.1 and 3.11.7, versions it excludes: give an interpreter it allows \
             (`--python 3.12`, or set the `python` key of the configuration)"
        );
        assert_eq!(warning(&rp(">=3.10"), &targets, None, false, "writes"), None);
        let env = Origin::Env("HASHPYC_PYTHON");
        let w = warning(&rp("<3.12"), &targets, Some(&env), false, "checks").unwrap();
        assert!(w.ends_with("CPython 3.12.1, a version it excludes: give an interpreter it allows (`--python 3.11`, or change HASHPYC_PYTHON)"), "{w}");
    }
}
