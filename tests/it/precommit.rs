//! The pre-commit hooks, run by the real `pre-commit` from PyPI in a temporary git
//! repository that uses (a snapshot of) this repository as its hook source.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, Tree};

/// Network-dependent steps skip visibly offline, unless HASHPYC_REQUIRE_NETWORK=1.
pub fn skip_offline(test: &str, why: &str) {
    if std::env::var_os("HASHPYC_REQUIRE_NETWORK").is_some_and(|v| v == "1") {
        panic!("{test}: {why} (HASHPYC_REQUIRE_NETWORK=1)");
    }
    harness::visible(&format!("SKIPPED {test}: {why}"));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=hashpyc test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This repository's working tree (tracked and untracked, not ignored), committed in a
/// fresh repository, so the hooks under test are exactly the code under test.
pub fn snapshot_of_this_repo(into: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = git(root, &["ls-files", "-z", "-co", "--exclude-standard"]);
    for rel in list.split('\0').filter(|s| !s.is_empty()) {
        let src = root.join(rel);
        if !src.is_file() {
            continue;
        }
        let dst = into.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(&src, &dst).unwrap();
    }
    git(into, &["init", "-q"]);
    git(into, &["add", "-A"]);
    git(into, &["commit", "-q", "-m", "snapshot"]);
    git(into, &["rev-parse", "HEAD"]).trim().to_string()
}

/// A venv with `packages` from PyPI, or None (offline).
pub fn venv_with(py: &harness::Python, dir: &Path, packages: &[&str]) -> Option<PathBuf> {
    let venv = dir.join("venv");
    let ok = py.cmd().args(["-m", "venv"]).arg(&venv).status().is_ok_and(|s| s.success());
    assert!(ok, "{}: python -m venv failed", py.label());
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(packages)
        .output()
        .expect("pip");
    if !pip.status.success() {
        harness::visible(&format!(
            "pip install {packages:?} failed:\n{}",
            String::from_utf8_lossy(&pip.stderr)
        ));
        return None;
    }
    Some(venv)
}

/// Run `git commit` in `project` with pre-commit's hook, `path` first on PATH.
fn commit(project: &Path, work: &Tree, path: &str, msg: &str) -> (bool, String) {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pre-commit-cargo-target");
    harness::seed_cargo_target(&target);
    let mut cmd = Command::new("git");
    cmd.args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(["commit", "-q", "-m", msg])
        .current_dir(project)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", work.path("pre-commit-home"))
        .env("CARGO_TARGET_DIR", &target)
        .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
        .env_remove("GIT_DIR");
    // The hook runs hashpyc.
    harness::guard_network(&mut cmd);
    let out = cmd.output().expect("git commit");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

/// A clean commit passes and leaves pycs for every interpreter; a syntax error fails the
/// commit once, its header line naming every interpreter.
fn commit_good_then_bad(project: &Path, work: &Tree, path: &str, pythons: &[&harness::Python]) {
    // Options end with `--` (the hooks' default, the README's advice for `args` of one's
    // own), so a staged file named like a flag is compiled.
    std::fs::write(project.join("-n.py"), "x = 1\n").unwrap();
    git(project, &["add", "-A"]);
    let (ok, text) = commit(project, work, path, "a file named like a flag");
    assert!(ok, "a file named `-n.py` must commit:\n{text}");
    for py in pythons {
        let pyc = format!("__pycache__/-n.cpython-{}{}.pyc", py.minor.0, py.minor.1);
        assert!(project.join(&pyc).is_file(), "the hook compiled -n.py ({pyc}):\n{text}");
    }
    std::fs::write(project.join("ok.py"), "def ok():\n    return 1\n").unwrap();
    git(project, &["add", "-A"]);
    let (ok, text) = commit(project, work, path, "clean");
    assert!(ok, "a clean commit must pass:\n{text}");
    for py in pythons {
        let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
        assert!(
            project.join(format!("__pycache__/ok.{tag}.pyc")).is_file(),
            "the hook compiled ok.py:\n{text}"
        );
    }
    std::fs::write(project.join("bad.py"), "x = (\n").unwrap();
    git(project, &["add", "-A"]);
    let (ok, text) = commit(project, work, path, "broken");
    assert!(!ok, "a syntax error must fail the commit:\n{text}");
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("bad.py:1:")).collect();
    assert_eq!(headers.len(), 1, "one mistake, one report:\n{text}");
    assert!(headers[0].contains("SyntaxError"), "{text}");
    if pythons.len() > 1 {
        for py in pythons {
            assert!(headers[0].contains(&py.version), "{} named on the header line:\n{text}", py.version);
        }
    }
    assert!(text.contains("x = ("), "with the offending line:\n{text}");
    assert_eq!(text.matches("Failed").count(), 1, "one failed hook:\n{text}");
}

/// Two interpreters of 3.10+ (identical messages for the test's syntax error), or one.
fn hook_pythons() -> Vec<&'static harness::Python> {
    let found: Vec<&harness::Python> = harness::pythons().values().filter(|p| p.minor >= (3, 10)).collect();
    let mut out: Vec<&harness::Python> = found.iter().rev().take(2).copied().collect();
    out.reverse();
    out
}

#[test]
fn pre_commit_hooks_from_this_repository() {
    let test = "precommit::pre_commit_hooks_from_this_repository";
    let Some(py) = harness::python_or_skip((3, 11), test) else {
        return;
    };
    let work = Tree::new();
    let Some(venv) = venv_with(py, work.root(), &["pre-commit"]) else {
        return skip_offline(test, "cannot install pre-commit from PyPI");
    };
    let hooks = work.path("hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    let rev = snapshot_of_this_repo(&hooks);

    let project = work.path("project");
    std::fs::create_dir_all(&project).unwrap();
    git(&project, &["init", "-q"]);
    let pythons = hook_pythons();
    let args: Vec<String> = pythons.iter().map(|p| format!("--python, {}", p.path.display())).collect();
    std::fs::write(
        project.join(".pre-commit-config.yaml"),
        format!(
            "repos:\n- repo: {}\n  rev: {rev}\n  hooks:\n  - id: hashpyc\n    args: [{}, --]\n",
            hooks.display(),
            args.join(", ")
        ),
    )
    .unwrap();
    std::fs::write(project.join(".gitignore"), "__pycache__/\n").unwrap();
    let path = format!("{}:{}", venv.join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let install =
        Command::new(venv.join("bin/pre-commit")).arg("install").current_dir(&project).output().unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    commit_good_then_bad(&project, &work, &path, &pythons);
}

/// `examples/pre-commit-config.yaml` exactly as written, with `hashpyc`, `python3.12` and
/// `python3.13` on PATH.
#[test]
fn pre_commit_example_as_written() {
    let test = "precommit::pre_commit_example_as_written";
    let (Some(py312), Some(py313)) =
        (harness::python_or_skip((3, 12), test), harness::python_or_skip((3, 13), test))
    else {
        return;
    };
    let work = Tree::new();
    let Some(venv) = venv_with(py312, work.root(), &["pre-commit"]) else {
        return skip_offline(test, "cannot install pre-commit from PyPI");
    };
    let bin = work.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hashpyc"), bin.join("hashpyc")).unwrap();
    std::os::unix::fs::symlink(&py312.path, bin.join("python3.12")).unwrap();
    std::os::unix::fs::symlink(&py313.path, bin.join("python3.13")).unwrap();
    let project = work.path("project");
    std::fs::create_dir_all(&project).unwrap();
    git(&project, &["init", "-q"]);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pre-commit-config.yaml");
    std::fs::copy(&example, project.join(".pre-commit-config.yaml")).unwrap();
    // The pyproject.toml the example's comment shows, taken from the comment itself.
    let text = std::fs::read_to_string(&example).unwrap();
    let pyproject: String = text
        .lines()
        .skip_while(|l| l.trim() != "#   # pyproject.toml")
        .skip(1)
        .take_while(|l| l.starts_with("#   "))
        .map(|l| format!("{}\n", &l["#   ".len()..]))
        .collect();
    assert!(pyproject.contains("[tool.hashpyc]"), "{pyproject}");
    std::fs::write(project.join("pyproject.toml"), &pyproject).unwrap();
    std::fs::write(project.join(".gitignore"), "__pycache__/\n").unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let install =
        Command::new(venv.join("bin/pre-commit")).arg("install").current_dir(&project).output().unwrap();
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    // A broken file the configuration excludes (as CI's walk skips it) commits cleanly.
    assert!(pyproject.contains("exclude = [\"tests/fixtures/\"]"), "{pyproject}");
    std::fs::create_dir_all(project.join("tests/fixtures")).unwrap();
    std::fs::write(project.join("tests/fixtures/broken.py"), "def f(:\n").unwrap();
    git(&project, &["add", "-A"]);
    let (ok, text) = commit(&project, &work, &path, "an excluded fixture");
    assert!(ok, "an excluded file must not fail the commit:\n{text}");
    assert!(!project.join("tests/fixtures/__pycache__").exists(), "{text}");
    // A file whose name starts with `-`, which pre-commit appends as it is: a file, not a flag.
    commit_good_then_bad(&project, &work, &path, &[py312, py313]);
}
