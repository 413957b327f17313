//! What ships beside the binary: the wheel, the examples, the Docker example's RUN steps
//! outside Docker, the CLI's finish, and the README's promises about them.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, Tree};
use crate::precommit::{skip_offline, venv_with};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn wheel_builds_installs_and_runs() {
    let test = "shipping::wheel_builds_installs_and_runs";
    let Some(py) = harness::python_or_skip((3, 11), test) else { return };
    let work = Tree::new();
    let Some(build_venv) = venv_with(py, &work.path("build"), &["maturin>=1.9,<2"]) else {
        return skip_offline(test, "cannot install maturin from PyPI");
    };
    let dist = work.path("dist");
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("maturin-target");
    let out = Command::new(build_venv.join("bin/maturin"))
        .args(["build", "--release", "--out"])
        .arg(&dist)
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(out.status.success(), "maturin build: {}", String::from_utf8_lossy(&out.stderr));
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"));
    let wheel = wheel.expect("a wheel was built");

    let run_venv = work.path("run/venv");
    assert!(py.cmd().args(["-m", "venv"]).arg(&run_venv).status().unwrap().success());
    let pip = Command::new(run_venv.join("bin/pip"))
        .args(["install", "-q", "--no-index", "--disable-pip-version-check"])
        .arg(&wheel)
        .output()
        .unwrap();
    assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    let exe = run_venv.join("bin/hashpyc");
    let version = Command::new(&exe).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("hashpyc {}", env!("CARGO_PKG_VERSION"))
    );
    work.write("proj/m.py", "x = 1\n");
    let out = Command::new(&exe)
        .args(["compile", "--python"])
        .arg(&py.path)
        .arg(work.path("proj"))
        .env("HASHPYC_STATE_DIR", work.path("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(harness::files_with_suffix(&work.path("proj"), ".pyc").len(), 1);
}

#[test]
fn stale_rules_demo_shows_both_columns() {
    let test = "shipping::stale_rules_demo";
    let Some(py) = harness::python_or_skip((3, 11), test) else { return };
    // After the Quick start hashpyc is not on PATH: the demo falls back to this checkout's
    // release build, and says so. (Under `cargo test` without --release that build may
    // not exist, so the binary under test is named instead.)
    let release = repo().join("target/release/hashpyc");
    let mut cmd = Command::new(repo().join("examples/stale-rules/demo.sh"));
    cmd.arg("--assert")
        .env("PYTHON", &py.path)
        .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
        .env("PATH", "/usr/bin:/bin")
        .env_remove("HASHPYC");
    let fallback = Path::new(env!("CARGO_BIN_EXE_hashpyc")) == release;
    if !fallback {
        cmd.env("HASHPYC", env!("CARGO_BIN_EXE_hashpyc"));
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    if fallback {
        assert!(text.contains("hashpyc is not on PATH; using this checkout's"), "{text}");
    }
    assert!(text.contains("(stale)") && text.contains(", 0 with hashpyc"), "{text}");
    harness::visible(&format!("stale-rules demo: {}", text.lines().last().unwrap_or_default()));
}

#[test]
fn docker_example_steps_outside_docker() {
    let test = "shipping::docker_example_steps_outside_docker";
    let Some(py) = harness::python_or_skip((3, 11), test) else { return };
    // The scripts call `python3`; give them this interpreter under that name.
    let bin = Tree::new();
    std::os::unix::fs::symlink(&py.path, bin.path("python3")).unwrap();
    let path = format!("{}:{}", bin.root().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(repo().join("examples/docker/run-outside-docker.sh"))
        .env("PATH", path)
        .env("HASHPYC", env!("CARGO_BIN_EXE_hashpyc"))
        .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success()
        && text.contains("pip")
        && (text.contains("connection") || text.contains("resolve"))
    {
        return skip_offline(test, "cannot install the example's dependencies from PyPI");
    }
    assert!(out.status.success(), "{text}");
    assert!(text.contains("loaded from their pycs") && text.contains("every value current"), "{text}");
}

#[test]
fn readme_shows_the_dockerfile_ci_builds() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let dockerfile = std::fs::read_to_string(repo().join("examples/docker/Dockerfile.copy-from")).unwrap();
    assert!(
        readme.contains(&dockerfile),
        "the README's Dockerfile snippet must be examples/docker/Dockerfile.copy-from"
    );
    for cmd in ["cargo run --release -- compile <dir>", "cargo test --release"] {
        assert!(readme.contains(cmd), "{cmd}");
    }
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    assert!(ci.contains("\ncargo test --release\n"), ".ci/run runs the README's test command");
}

#[test]
fn cli_finish() {
    let tree = Tree::new();
    let version = tree.hashpyc().arg("--version").run();
    version.assert_code(0);
    assert_eq!(version.stdout.trim(), format!("hashpyc {}", env!("CARGO_PKG_VERSION")));
    for shell in ["bash", "zsh", "fish"] {
        let c = tree.hashpyc().args(["completions", shell]).run();
        c.assert_code(0);
        assert!(c.stdout.contains("hashpyc") && c.stdout.contains("invalidation-mode"), "{shell}");
    }
    let help = tree.hashpyc().args(["compile", "--help"]).run();
    help.assert_code(0);
    for flag in [
        "--force",
        "--invalidation-mode",
        "--jobs",
        "--timeout",
        "--ddir",
        "--strip-prefix",
        "--exclude",
        "--dry-run",
    ] {
        assert!(help.stdout.contains(flag), "{flag} documented");
    }
    assert!(help.stdout.contains("Exit status"), "{}", help.stdout);
    // Colour only when asked, never with NO_COLOR.
    tree.write("bad.py", "def (:\n");
    let colored = tree
        .hashpyc()
        .env_remove("NO_COLOR")
        .args(["check", "--color", "always", "--target", "3.12", "nothere.py"])
        .run();
    assert!(colored.stderr.contains("\x1b["), "{:?}", colored.stderr);
    let plain = tree.hashpyc().args(["check", "--color", "auto", "--target", "3.12", "nothere.py"]).run();
    assert!(!plain.stderr.contains("\x1b["), "{:?}", plain.stderr);
    // A version the table does not know is named plainly.
    let unknown = tree.hashpyc().args(["check", "--target", "3.16", "."]).run();
    unknown.assert_code(2);
    assert!(unknown.stderr.contains("unknown Python version `3.16`"), "{}", unknown.stderr);
}
