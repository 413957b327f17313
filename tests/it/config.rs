//! `[tool.hashpyc]` and `hashpyc.toml`: compile and check driven by one configuration file
//! agree file for file; flags and environment variables override it; discovery upwards,
//! `--config`, `--no-config`; every bad configuration is a one-line error naming the file,
//! the key and the line (exit 2); the shipped JSON schema is the one the types generate.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::harness::{self, Python, Tree};
use crate::per_python;

/// The schema's copy in the wheel's data directory (`[tool.maturin] data`).
pub const WHEEL_SCHEMA: &str = "docs/wheel-data/data/share/hashpyc/hashpyc.schema.json";

/// `hashpyc.schema.json` at the top of the repository, and its copy in the wheel's data
/// directory (installed as `<prefix>/share/hashpyc/hashpyc.schema.json`), are what `Options`
/// generates. `HASHPYC_UPDATE_SCHEMA=1 cargo test --release config::schema` rewrites both.
#[test]
fn schema_is_up_to_date() {
    let generated = hashpyc::config::json_schema();
    let mut shipped = String::new();
    for file in ["hashpyc.schema.json", WHEEL_SCHEMA] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if std::env::var_os("HASHPYC_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &generated).expect("write schema");
        }
        shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "{file} differs from what the configuration types generate; \
             run `HASHPYC_UPDATE_SCHEMA=1 cargo test --release config::schema` and commit it"
        );
    }
    // Every key the README's example table uses is one the schema knows.
    let schema: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    for key in
        ["python", "optimize", "exclude", "invalidation-mode", "pycache-prefix", "cache", "cache-max-size"]
    {
        assert!(schema["properties"].get(key).is_some(), "schema lacks `{key}`");
    }
}

/// The README's example table, as its Configuration section shows it.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("\n## Configuration\n").expect("a Configuration section")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    section[start..start + section[start..].find("```").unwrap()].to_string()
}

/// The README's example table is a valid configuration, and sets what it says.
#[test]
fn readme_example_parses() {
    let table = readme_example();
    let options = hashpyc::config::parse(&table, true, "README.md").unwrap().expect("a [tool.hashpyc] table");
    assert_eq!(options.optimize.map(|l| l.iter().map(|l| l.0).collect::<Vec<_>>()), Some(vec![0, 2]));
    assert!(options.exclude.is_some() && options.cache.is_some() && options.cache_max_size.is_some());
}

/// The README's `exclude-regex` key (compileall's `-x`, searched in the path as the run
/// spells it) skips its deliberately broken fixtures however a run spells their paths: a
/// bare `check` and `compile` (`fixtures/f.py`), `check .` (`./fixtures/f.py`), the hook's
/// `compile --force-exclude fixtures/f.py`, and the same from a subdirectory, where
/// `tests/fixtures/g.py` is `fixtures/g.py`. compileall's `-x` with the same expression
/// skips them too.
#[test]
fn readme_exclude_regex_skips_fixtures_however_spelled() {
    let Some(py) = harness::pythons().values().next_back() else {
        harness::visible(
            "SKIPPED config::readme_exclude_regex_skips_fixtures_however_spelled: no CPython found",
        );
        return;
    };
    let table = readme_example();
    let line = table.lines().find(|l| l.starts_with("exclude-regex")).expect("an exclude-regex key");
    let options = hashpyc::config::parse(&table, true, "README.md").unwrap().unwrap();
    let regex = options.exclude_regex.expect("the example sets exclude-regex").0;
    let tree = Tree::new();
    tree.write("pyproject.toml", format!("[tool.hashpyc]\n{line}\n"));
    tree.write("ok.py", "X = 1\n");
    tree.write("fixtures/f.py", "def (:\n");
    tree.write("tests/t.py", "Y = 2\n");
    tree.write("tests/fixtures/g.py", "def (:\n");
    let run = |cwd: &str, command: &str, args: &[&str]| {
        harness::Hashpyc::new(&tree.path(cwd)).arg(command).python(py).args(args).run()
    };
    // The fixtures are there to be found: without the configuration, they fail.
    let unconfigured = run("", "check", &["--no-config", "."]);
    unconfigured.assert_code(1);
    assert!(
        unconfigured.stdout.contains("./fixtures/f.py")
            && unconfigured.stdout.contains("./tests/fixtures/g.py"),
        "{}",
        unconfigured.stdout
    );
    for (cwd, fixture) in [("", "fixtures/f.py"), ("tests", "fixtures/g.py")] {
        for spelled in [&[][..], &["."]] {
            let compile = run(cwd, "compile", spelled);
            compile.assert_code(0);
            let check = run(cwd, "check", spelled);
            check.assert_code(0);
            assert!(!check.stdout.contains("fixtures"), "check {spelled:?} in `{cwd}`: {}", check.stdout);
        }
        // As the shipped pre-commit hook runs: the changed files named one by one.
        let hook = run(cwd, "compile", &["--force-exclude", fixture]);
        hook.assert_code(0);
        assert!(hook.stderr.contains("1 named path excluded by --force-exclude"), "{}", hook.stderr);
        let hook = run(cwd, "check", &["--force-exclude", fixture]);
        hook.assert_code(0);
    }
    assert!(!tree.path("fixtures/__pycache__").exists() && !tree.path("tests/fixtures/__pycache__").exists());
    // compileall's -x, with the same expression, skips the same files.
    for (cwd, args) in
        [("", &["."][..]), ("", &["fixtures/f.py"]), ("tests", &["."]), ("tests", &["fixtures/g.py"])]
    {
        let status = py
            .cmd()
            .args(["-m", "compileall", "-q", "-x", &regex])
            .args(args)
            .current_dir(tree.path(cwd))
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "compileall -x {regex} {args:?} in `{cwd}`");
    }
}

/// A small project: a package, tests, generated code, a hidden directory.
fn project(tree: &Tree, root: &str) {
    tree.write(format!("{root}/pkg/__init__.py"), "");
    tree.write(format!("{root}/pkg/core.py"), "\"\"\"Doc.\"\"\"\ndef f(x):\n    assert x\n    return x\n");
    tree.write(format!("{root}/pkg/sub/deep.py"), "X = (1, 'a')\n");
    tree.write(format!("{root}/pkg/gen/api_pb2.py"), "Y = 2\n");
    tree.write(format!("{root}/pkg/gen/keep.py"), "Z = 3\n");
    tree.write(format!("{root}/tests/test_core.py"), "def test():\n    assert 1\n");
    tree.write(format!("{root}/.tox/junk.py"), "J = 1\n");
}

/// Every `.py` under `root`, absolute, that `keep` accepts.
fn sources(root: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    harness::files_with_suffix(root, ".py")
        .into_iter()
        .filter(|rel| keep(&rel.to_string_lossy()))
        .map(|rel| root.join(rel))
        .collect()
}

/// Where CPython itself looks for the pycs of `srcs` at `levels`, with
/// `PYTHONPYCACHEPREFIX=prefix` when given (importlib.util.cache_from_source).
fn expected_pycs(py: &Python, srcs: &[PathBuf], levels: &[u8], prefix: Option<&Path>) -> BTreeSet<PathBuf> {
    let mut cmd = py.cmd();
    // -B: this process must not write pycs of its own (into the prefix above all).
    cmd.arg("-B");
    if let Some(p) = prefix {
        cmd.env("PYTHONPYCACHEPREFIX", p);
    }
    let script = "import sys, importlib.util as u\nfor line in sys.stdin.read().splitlines():\n    \
                  src, opt = line.rsplit(' ', 1)\n    print(u.cache_from_source(src, optimization='' if opt == '0' else opt))\n";
    let input: String =
        srcs.iter().flat_map(|s| levels.iter().map(move |l| format!("{} {l}\n", s.display()))).collect();
    use std::io::Write;
    let mut child = cmd
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().lines().map(PathBuf::from).collect()
}

/// Every pyc file under `dir`, absolute.
fn pycs_under(dir: &Path) -> BTreeSet<PathBuf> {
    harness::files_with_suffix(dir, ".pyc").into_iter().map(|r| dir.join(r)).collect()
}

/// `check --all --format json` objects of type `finding`: (pyc, outcome).
fn check_findings(stdout: &str) -> Vec<(PathBuf, String)> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["type"] == "finding")
        .map(|v| (PathBuf::from(v["pyc"].as_str().unwrap()), v["outcome"].as_str().unwrap().to_string()))
        .collect()
}

fn summary(stdout: &str) -> serde_json::Value {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["type"] == "summary")
        .expect("a summary line")
}

// One pyproject.toml drives both commands: what compile writes is exactly what CPython
// looks for, and exactly what check verifies; another configuration makes check fail.
per_python!(compile_and_check_agree, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    project(&tree, "proj");
    let proj = tree.path("proj");
    tree.write(
        "proj/pyproject.toml",
        format!(
            "[project]\nname = \"demo\"\n\n[tool.ruff]\nline-length = 100\n\n[tool.hashpyc]\n\
             python = [\"{}\"]\noptimize = [0, 2]\nexclude = [\"tests/\", \"*_pb2.py\"]\n\
             skip-hidden = true\npycache-prefix = \"build/pycache\"\n",
            py.path.display()
        ),
    );
    let prefix = proj.join("build/pycache");
    let run = harness::Hashpyc::new(&proj).args(["compile", "-v"]).run();
    run.assert_code(0);
    assert!(run.stderr.contains("configuration: pyproject.toml ([tool.hashpyc])"), "{}", run.stderr);

    let srcs =
        sources(&proj, &|p| !p.starts_with("tests/") && !p.ends_with("_pb2.py") && !p.starts_with(".tox"));
    assert_eq!(srcs.len(), 4, "{srcs:?}");
    let written = pycs_under(&proj);
    assert_eq!(written, expected_pycs(py, &srcs, &[0, 2], Some(&prefix)));
    assert!(written.iter().all(|p| p.starts_with(&prefix)));

    // check, from the same file, accepts exactly those pycs.
    let run = harness::Hashpyc::new(&proj).args(["check", "--all", "--format", "json"]).run();
    run.assert_code(0);
    let found = check_findings(&run.stdout);
    assert!(found.iter().all(|(_, o)| o == "ok"), "{found:?}");
    let checked: BTreeSet<PathBuf> = found.iter().map(|(p, _)| proj.join(p)).collect();
    assert_eq!(checked, written);
    let s = summary(&run.stdout);
    assert_eq!((s["sources"].as_u64(), s["ok"].as_u64()), (Some(4), Some(8)), "{s}");

    // A source the file excludes is one check does not ask for either: no finding for it.
    assert!(!found.iter().any(|(p, _)| p.to_string_lossy().contains("test_core")));

    // Another configuration (one more level, the tests no longer excluded): check finds
    // the pycs compile did not write, and only those.
    tree.write(
        "proj/hashpyc.toml",
        format!(
            "python = [\"{}\"]\noptimize = [0, 1, 2]\nexclude = [\"*_pb2.py\"]\nskip-hidden = true\n\
             pycache-prefix = \"build/pycache\"\n",
            py.path.display()
        ),
    );
    let run = harness::Hashpyc::new(&proj).args(["check", "--format", "json", "-v"]).run();
    run.assert_code(1);
    // In JSON mode, -v's line is a notice on stdout.
    assert!(run.stdout.contains(r#""message":"configuration: hashpyc.toml"}"#), "{}", run.stdout);
    let missing: BTreeSet<PathBuf> = check_findings(&run.stdout)
        .into_iter()
        .inspect(|(_, o)| assert_eq!(o, "missing"))
        .map(|(p, _)| proj.join(p))
        .collect();
    let srcs6 = sources(&proj, &|p| !p.ends_with("_pb2.py") && !p.starts_with(".tox"));
    let wanted = expected_pycs(py, &srcs6, &[0, 1, 2], Some(&prefix));
    assert_eq!(missing, wanted.difference(&written).cloned().collect());
    // Level 1 of the 5 sources, and levels 0 and 2 of the test no longer excluded.
    assert_eq!(missing.len(), 5 + 2);
});

// invalidation-mode in the file: compile writes unchecked pycs and check, with no --mode,
// accepts them; `--mode checked` on the command line overrides and reports each one.
per_python!(invalidation_mode_is_shared, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    project(&tree, "p");
    let p = tree.path("p");
    tree.write("p/.hashpyc.toml", "invalidation-mode = \"unchecked-hash\"\nexclude = [\".tox/\"]\n");
    tree.write("p/pyproject.toml", "[tool.hashpyc]\noptimize = [1]\n");
    let compile = harness::Hashpyc::new(&p).arg("compile").python(py).run();
    compile.assert_code(0);
    // .hashpyc.toml won over pyproject.toml: level 0 only.
    let n = 6;
    assert_eq!(tree.pycs().iter().filter(|p| !p.to_string_lossy().contains(".opt-")).count(), n);
    harness::Hashpyc::new(&p).arg("check").python(py).run().assert_code(0);
    let strict =
        harness::Hashpyc::new(&p).args(["check", "--mode", "checked", "--format", "json"]).python(py).run();
    strict.assert_code(1);
    let found = check_findings(&strict.stdout);
    assert_eq!(found.len(), n);
    assert!(found.iter().all(|(_, o)| o == "unchecked"), "{found:?}");
});

// A configuration's `exclude = ["pkg/"]` skipped `outside/pkg` of `hashpyc compile
// /elsewhere/outside` run from the file's directory: a path outside that directory, which
// the file does not describe. Its globs now apply only below its directory, as ruff's
// project-relative excludes; the command line's `--exclude` still applies to any path.
#[test]
fn config_excludes_apply_only_inside_its_directory() {
    let Some(py) = harness::any_python("config::config_excludes_apply_only_inside_its_directory") else {
        return;
    };
    let tree = Tree::new();
    tree.write("proj/pyproject.toml", "[tool.hashpyc]\nexclude = [\"pkg/\"]\n");
    tree.write("proj/pkg/a.py", "A = 1\n");
    tree.write("proj/b.py", "B = 1\n");
    tree.write("outside/pkg/c.py", "C = 1\n");
    tree.write("outside/d.py", "D = 1\n");
    let proj = tree.path("proj");
    let outside = tree.path("outside");
    let run = harness::Hashpyc::new(&proj).arg("compile").python(py).args([Path::new("."), &outside]).run();
    run.assert_code(0);
    let rel: BTreeSet<String> = tree.pycs().iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let want: BTreeSet<String> = ["proj/__pycache__/b", "outside/pkg/__pycache__/c", "outside/__pycache__/d"]
        .iter()
        .map(|p| format!("{p}.{tag}.pyc"))
        .collect();
    assert_eq!(rel, want, "{}", run.stderr);
    // `check` with the same paths, and spelled relative to the working directory (`..`),
    // selects the same files.
    let check = harness::Hashpyc::new(&proj).arg("check").python(py).args([Path::new("."), &outside]).run();
    check.assert_code(0);
    assert!(check.stderr.contains("Checked 3 files"), "{}", check.stderr);
    let dots =
        harness::Hashpyc::new(&proj).args(["compile", "-n"]).python(py).args([".", "../outside"]).run();
    dots.assert_code(0);
    assert!(dots.stdout.contains("../outside/pkg/c.py"), "{}", dots.stdout);
    // `--exclude` on the command line applies to the path outside too.
    let flag =
        harness::Hashpyc::new(&proj).args(["check", "--exclude", "pkg/"]).python(py).arg(&outside).run();
    flag.assert_code(0);
    assert!(flag.stderr.contains("Checked 1 file"), "{}", flag.stderr);
}

// Flags and environment variables override the file; --no-config and HASHPYC_NO_CONFIG
// ignore it; --config and HASHPYC_CONFIG name one.
per_python!(precedence, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("a.py", "A = 1\n");
    tree.write(
        "pyproject.toml",
        "[tool.hashpyc]\npython = [\"bin/no-such-python\"]\noptimize = [2]\nlegacy = true\n",
    );
    let levels =
        || -> BTreeSet<String> { tree.pycs().iter().map(|p| p.to_string_lossy().into_owned()).collect() };
    // The file's interpreter is a path relative to the file, and does not exist.
    let bad = tree.hashpyc().arg("compile").run();
    bad.assert_code(2);
    assert!(bad.stderr.contains("no-such-python"), "{}", bad.stderr);
    // HASHPYC_PYTHON (environment) beats the file; the file's other keys still apply.
    tree.hashpyc().arg("compile").env("HASHPYC_PYTHON", &py.path).run().assert_code(0);
    assert_eq!(levels(), BTreeSet::from(["a.pyc".to_string()]), "legacy pyc of level 2 expected");
    std::fs::remove_file(tree.path("a.pyc")).unwrap();
    // -o and --pycache-prefix on the command line beat optimize and legacy.
    tree.hashpyc().args(["compile", "-o", "1", "--pycache-prefix", "pp"]).python(py).run().assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let prefixed = expected_pycs(py, &[tree.path("a.py")], &[1], Some(&tree.path("pp")));
    assert_eq!(pycs_under(tree.root()), prefixed);
    assert!(prefixed.iter().all(|p| p.to_string_lossy().ends_with(&format!("a.{tag}.opt-1.pyc"))));
    std::fs::remove_dir_all(tree.path("pp")).unwrap();
    // --no-config and HASHPYC_NO_CONFIG: the defaults (level 0 in __pycache__).
    let none = tree.hashpyc().args(["compile", "--no-config", "-v"]).python(py).run();
    none.assert_code(0);
    assert!(none.stderr.contains("configuration: none (--no-config)"), "{}", none.stderr);
    assert_eq!(levels(), BTreeSet::from([format!("__pycache__/a.{tag}.pyc")]));
    tree.hashpyc().arg("check").env("HASHPYC_NO_CONFIG", "1").python(py).run().assert_code(0);
    // --config names a file elsewhere (its relative paths are relative to it).
    tree.write("cfg/ci.toml", "optimize = [2]\npycache-prefix = \"out\"\n");
    let named = tree.hashpyc().args(["compile", "-v", "--config", "cfg/ci.toml"]).python(py).run();
    named.assert_code(0);
    assert!(named.stderr.contains("configuration: cfg/ci.toml\n"), "{}", named.stderr);
    assert_eq!(
        pycs_under(&tree.path("cfg/out")),
        expected_pycs(py, &[tree.path("a.py")], &[2], Some(&tree.path("cfg/out")))
    );
    tree.hashpyc().arg("check").env("HASHPYC_CONFIG", "cfg/ci.toml").python(py).run().assert_code(0);
    // A --config that cannot be read is an error, not a silent fallback.
    let missing = tree.hashpyc().args(["check", "--config", "nope.toml"]).python(py).run();
    missing.assert_code(2);
    assert_eq!(missing.stderr, "error: cannot read configuration file `nope.toml`: no such file\n");
});

// Discovery goes upwards from the working directory, passing over a pyproject.toml with no
// [tool.hashpyc]; the file's relative paths and anchored globs stay relative to it.
per_python!(discovery_upwards, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    project(&tree, "proj");
    tree.write(
        "proj/pyproject.toml",
        "[tool.hashpyc]\noptimize = [1]\nexclude = [\"/pkg/gen/\"]\ncache = \".cache/hashpyc\"\n",
    );
    // A sub-package with its own pyproject.toml, for another tool only.
    tree.write("proj/pkg/pyproject.toml", "[project]\nname = \"inner\"\n[tool.black]\nline-length = 88\n");
    let pkg = tree.path("proj/pkg");
    let run = harness::Hashpyc::new(&pkg).args(["compile", "-v", "."]).python(py).run();
    run.assert_code(0);
    let used = tree.path("proj/pyproject.toml");
    assert!(
        run.stderr.contains(&format!("configuration: {} ([tool.hashpyc])\n", used.display())),
        "{}",
        run.stderr
    );
    let srcs = sources(&pkg, &|p| !p.starts_with("gen/"));
    assert_eq!(srcs.len(), 3);
    assert_eq!(pycs_under(&pkg), expected_pycs(py, &srcs, &[1], None));
    // The cache is where the file says, not under the working directory.
    assert!(tree.path("proj/.cache/hashpyc").is_dir());
    assert!(!pkg.join(".cache").exists());
    // Without a configuration anywhere above: says so.
    let bare = Tree::new();
    bare.write("m.py", "M = 1\n");
    let run = bare.hashpyc().args(["check", "-v"]).python(py).run();
    assert!(run.stderr.contains("configuration: none (no .hashpyc.toml"), "{}", run.stderr);
});

// `-v` names the configuration used; with `--format json` that is a `notice` object on
// stdout (the first object, `path` null), as everything about the run is there, and stderr
// stays empty: for `compile` (and its dry run) and `check`, whether a file was found, named,
// disabled or absent; the message is the text mode's line.
per_python!(verbose_json_names_the_configuration_on_stdout, |py: &Python| {
    let tree = Tree::new();
    tree.write("proj/pyproject.toml", "[tool.hashpyc]\noptimize = [1]\n");
    tree.write("proj/m.py", "M = 1\n");
    tree.write("proj/ci.toml", "optimize = [0]\n");
    tree.write("bare/n.py", "N = 1\n");
    let proj = tree.path("proj");
    let bare = tree.path("bare");
    for (cwd, extra) in [
        (&proj, &[][..]),
        (&proj, &["--config", "ci.toml"][..]),
        (&proj, &["--no-config"][..]),
        (&bare, &[][..]),
    ] {
        for command in [&["compile"][..], &["compile", "-n"][..], &["check"][..]] {
            let run = |format: &[&str]| {
                let cmd = harness::Hashpyc::new(cwd).args(command).arg("-v").args(format).args(extra);
                cmd.python(py).arg(".").run()
            };
            let text = run(&[]);
            let json = run(&["--format", "json"]);
            let context = format!(
                "{command:?} {extra:?}:\n{}{}\n{}{}",
                text.stdout, text.stderr, json.stdout, json.stderr
            );
            assert_eq!(json.stderr, "", "{context}");
            assert_eq!(json.code, text.code, "{context}");
            let described = text.stderr.lines().find(|l| l.starts_with("configuration: ")).expect(&context);
            let first: serde_json::Value =
                serde_json::from_str(json.stdout.lines().next().expect(&context)).unwrap();
            let want =
                serde_json::json!({"type": "notice", "path": null, "python": null, "message": described});
            assert_eq!(first, want, "{context}");
            let notices = json.stdout.lines().filter(|l| l.contains("\"configuration: ")).count();
            assert_eq!(notices, 1, "{context}");
        }
    }
});

// `compile -v` printed `setting: SSL_CERT_FILE=…`, `SSL_CERT_DIR=…` and the proxies without
// any shared cache, which alone reads them. They are now said only when a shared cache is
// in use (`--cache-url`, not turned off by `--no-cache`).
#[test]
fn verbose_names_the_network_variables_only_with_a_shared_cache() {
    let Some(py) =
        harness::any_python("config::verbose_names_the_network_variables_only_with_a_shared_cache")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let network =
        ["setting: SSL_CERT_FILE=/etc/ca.pem", "setting: SSL_CERT_DIR=/etc/certs", "setting: HTTPS_PROXY="];
    let settings = |extra: &[&str]| {
        let run = tree
            .hashpyc()
            .args(["compile", "-v", "-n", "--no-config"])
            .args(extra)
            .env("SSL_CERT_FILE", "/etc/ca.pem")
            .env("SSL_CERT_DIR", "/etc/certs")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("NO_PROXY", "127.0.0.1")
            .env("HASHPYC_TIMEOUT", "7")
            .python(py)
            .arg("m.py")
            .run();
        run.assert_code(0);
        let lines: Vec<String> =
            run.stderr.lines().filter(|l| l.starts_with("setting: ")).map(String::from).collect();
        assert!(lines.contains(&"setting: HASHPYC_TIMEOUT=7 (--timeout)".to_string()), "{}", run.stderr);
        network.iter().map(|n| lines.iter().any(|l| l.starts_with(n))).collect::<Vec<bool>>()
    };
    assert_eq!(settings(&[]), [false; 3]);
    assert_eq!(settings(&["--cache", "c"]), [false; 3]);
    assert_eq!(settings(&["--cache-url", "http://127.0.0.1:9/c", "--no-cache"]), [false; 3]);
    assert_eq!(settings(&["--cache-url", "http://127.0.0.1:9/c"]), [true; 3]);
}

// `-v` says where each setting came from: every key of the file with its value, and whether
// it applies, was replaced by a flag or an environment variable, or is not used by the
// command; every environment variable that stands for a flag, as set; a URL's password
// never. Without `-v`, none of it.
per_python!(verbose_says_where_each_setting_came_from, |py: &Python| {
    let tree = Tree::new();
    tree.write(
        "pyproject.toml",
        "[tool.hashpyc]\njobs = 1\nmax-depth = 3\nexclude = [\"tests/\"]\ntimeout = 5\nstray = true\n\
         cache-url = \"http://user:s3cret@127.0.0.1:9/bucket\"\n",
    );
    tree.write("pkg/a.py", "A = 1\n");
    tree.write("pkg/sub/b.py", "B = 1\n");
    let compile = |extra: &[&str]| {
        tree.hashpyc()
            .args(["compile", "-n", "--no-cache"])
            .args(extra)
            .env("HASHPYC_TIMEOUT", "7")
            .python(py)
            .arg("pkg")
            .run()
    };
    let run = compile(&["-v", "-l"]);
    run.assert_code(0);
    let settings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("setting: ")).collect();
    let file = "from `pyproject.toml` line";
    for want in [
        format!("setting: `jobs = 1` {file} 2"),
        format!("setting: `max-depth = 3` {file} 3 (replaced by --no-recursion on the command line)"),
        format!("setting: `exclude = [\"tests/\"]` {file} 4"),
        format!("setting: `timeout = 5` {file} 5 (replaced by HASHPYC_TIMEOUT)"),
        format!("setting: `stray = true` {file} 6 (not used by `compile`)"),
        format!(
            "setting: `cache-url = \"http://127.0.0.1:9/bucket\"` {file} 7 (replaced by --no-cache on the command line)"
        ),
        "setting: HASHPYC_TIMEOUT=7 (--timeout)".to_string(),
    ] {
        assert!(settings.contains(&want.as_str()), "{want}\n{}", run.stderr);
    }
    // What it says is what happened: -l took pkg's own file only.
    assert!(run.stdout.contains("pkg/a.py") && !run.stdout.contains("b.py"), "{}", run.stdout);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
    // Without -v: nothing of it.
    let quiet = compile(&[]);
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains("setting: "), "{}", quiet.stderr);
    // check, in JSON: the same lines as notices on stdout; compile's keys are not used
    // (but `jobs`, which bounds its threads).
    let run =
        tree.hashpyc().args(["check", "-v", "--format", "json", "pkg"]).env("HASHPYC_PYTHON", &py.path).run();
    assert_eq!(run.stderr, "");
    let notices: Vec<String> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| {
            v["type"] == "notice" && v["message"].as_str().is_some_and(|m| m.starts_with("setting: "))
        })
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    for want in [
        format!("setting: `jobs = 1` {file} 2"),
        format!("setting: `max-depth = 3` {file} 3"),
        format!("setting: `stray = true` {file} 6"),
        format!("setting: `cache-url = \"http://127.0.0.1:9/bucket\"` {file} 7 (not used by `check`)"),
        format!("setting: HASHPYC_PYTHON={} (--python)", py.path.display()),
    ] {
        assert!(notices.contains(&want), "{want}\n{notices:#?}");
    }
    assert!(!run.stdout.contains("s3cret"), "{}", run.stdout);
});

// `-v` lists a variable that a flag (or the other variable) overrode as replaced, never as
// in effect: `HASHPYC_PYTHON` beside `check --target` (an interpreter that does not exist,
// and the run goes on without it), `HASHPYC_NO_CONFIG` beside `--config`, `HASHPYC_CONFIG`
// beside `--no-config`, `HASHPYC_CACHE_READ_ONLY` beside `--no-cache-read-only`.
#[test]
fn verbose_says_which_variables_a_flag_replaced() {
    let test = "config::verbose_says_which_variables_a_flag_replaced";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("ci.toml", "stray = true\n");
    let settings = |run: &harness::Run| -> Vec<String> {
        run.stderr.lines().filter(|l| l.starts_with("setting: HASHPYC_")).map(str::to_string).collect()
    };
    let run = tree
        .hashpyc()
        .env("HASHPYC_PYTHON", "no-such-python3")
        .args(["check", "-v", "--target", "3.12", "m.py"])
        .run();
    run.assert_code(1);
    assert!(
        settings(&run).contains(
            &"setting: HASHPYC_PYTHON=no-such-python3 (--python; replaced by --target on the command line)"
                .to_string()
        ),
        "{}",
        run.stderr
    );
    let run = tree
        .hashpyc()
        .env("HASHPYC_NO_CONFIG", "1")
        .args(["check", "-v", "--config", "ci.toml", "--target", "3.12", "m.py"])
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("configuration: ci.toml\n"), "{}", run.stderr);
    assert!(
        settings(&run).contains(
            &"setting: HASHPYC_NO_CONFIG=1 (--no-config; replaced by --config on the command line)"
                .to_string()
        ),
        "{}",
        run.stderr
    );
    let run = tree
        .hashpyc()
        .env("HASHPYC_CONFIG", "ci.toml")
        .args(["check", "-v", "--no-config", "--target", "3.12", "m.py"])
        .run();
    run.assert_code(1);
    assert!(run.stderr.contains("configuration: none (--no-config)\n"), "{}", run.stderr);
    assert!(
        settings(&run).contains(
            &"setting: HASHPYC_CONFIG=ci.toml (--config; replaced by --no-config on the command line)"
                .to_string()
        ),
        "{}",
        run.stderr
    );
    let run = tree
        .hashpyc()
        .env("HASHPYC_CACHE_READ_ONLY", "1")
        .args(["compile", "-v", "--no-config", "--cache", "c", "--no-cache-read-only"])
        .python(py)
        .arg("m.py")
        .run();
    run.assert_code(0);
    assert!(
        settings(&run).contains(
            &"setting: HASHPYC_CACHE_READ_ONLY=1 (--cache-read-only; replaced by --no-cache-read-only on the \
              command line)"
                .to_string()
        ),
        "{}",
        run.stderr
    );
    // What it says is what happened: the cache stored the pyc.
    let stats = tree.hashpyc().args(["cache", "stats", "--format", "json", "--cache", "c"]).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["entries"].as_u64(), Some(1), "{v}");
    // A variable its own flag overrode went unsaid (clap reads the flag, never the
    // variable): a forgotten HASHPYC_PYTHON or HASHPYC_CONFIG is what `-v` should show.
    let run = tree
        .hashpyc()
        .env("HASHPYC_PYTHON", "no-such-python3")
        .env("HASHPYC_CONFIG", "nowhere.toml")
        .args(["compile", "-v", "--config", "ci.toml"])
        .python(py)
        .arg("m.py")
        .run();
    run.assert_code(0);
    for want in [
        "setting: HASHPYC_PYTHON=no-such-python3 (--python; replaced by --python on the command line)",
        "setting: HASHPYC_CONFIG=nowhere.toml (--config; replaced by --config on the command line)",
    ] {
        assert!(settings(&run).contains(&want.to_string()), "{want}\n{}", run.stderr);
    }
    // PYTHONPYCACHEPREFIX was listed as in effect where --pycache-prefix or the legacy
    // layout decided where the pycs went.
    for (args, by) in [
        (&["--pycache-prefix", "pp"][..], "--pycache-prefix on the command line"),
        (&["-b"], "-b on the command line"),
    ] {
        let run = tree
            .hashpyc()
            .env("PYTHONPYCACHEPREFIX", "elsewhere")
            .args(["check", "-v", "--no-config", "--target", "3.12"])
            .args(args)
            .arg("m.py")
            .run();
        let want = format!("setting: PYTHONPYCACHEPREFIX=elsewhere (replaced by {by})");
        assert!(run.stderr.lines().any(|l| l == want), "{want}\n{}", run.stderr);
    }
    tree.write("legacy.toml", "legacy = true\n");
    let run = tree
        .hashpyc()
        .env("PYTHONPYCACHEPREFIX", "elsewhere")
        .args(["check", "-v", "--config", "legacy.toml", "--target", "3.12", "m.py"])
        .run();
    let want = "setting: PYTHONPYCACHEPREFIX=elsewhere (replaced by `legacy = true` in `legacy.toml` line 1)";
    assert!(run.stderr.lines().any(|l| l == want), "{want}\n{}", run.stderr);
    let run = tree.hashpyc().env("PYTHONPYCACHEPREFIX", "elsewhere").args(["check", "-v", "--no-config"]);
    let run = run.args(["--target", "3.12", "m.py"]).run();
    assert!(run.stderr.lines().any(|l| l == "setting: PYTHONPYCACHEPREFIX=elsewhere"), "{}", run.stderr);
}

// The error of a compile that ran out of its time said "(see --timeout)" wherever the limit
// was set; it names the file's key and line, or the variable, that set it.
#[test]
fn a_timeout_names_where_it_was_set() {
    let Some(py) = harness::any_python("config::a_timeout_names_where_it_was_set") else { return };
    let tree = Tree::new();
    // Slow to compile on every version: long enough for a 0.001 s limit.
    let body: String =
        (0..3000).map(|i| format!("def f{i}(a):\n    return [a * {i} for _ in a if a]\n")).collect();
    tree.write("slow.py", &body);
    for (setup, env, want) in [
        (Some("timeout = 0.001\n"), None, "(see `timeout = 0.001` in `hashpyc.toml` line 1)"),
        (None, Some("0.001"), "(see HASHPYC_TIMEOUT)"),
        (None, None, "(see --timeout)"),
    ] {
        std::fs::remove_file(tree.path("hashpyc.toml")).ok();
        if let Some(text) = setup {
            tree.write("hashpyc.toml", text);
        }
        let mut h = tree.hashpyc().arg("compile");
        if let Some(v) = env {
            h = h.env("HASHPYC_TIMEOUT", v);
        }
        if setup.is_none() && env.is_none() {
            h = h.args(["--timeout", "0.001"]);
        }
        let run = h.python(py).arg("slow.py").run();
        run.assert_code(1);
        let line = format!("error: `slow.py`: timed out after 0.001 s in the Python worker {want}");
        assert!(run.stderr.lines().any(|l| l == line), "{line}\n{}", run.stderr);
    }
}

// `-v` shows each value on one line, a line break or other control character escaped as
// paths are (`"a\nb"`): a key of the file (which TOML would write as a multi-line string),
// a variable standing for a flag and the other variables.
#[test]
fn verbose_shows_each_value_on_one_line() {
    let test = "config::verbose_shows_each_value_on_one_line";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("hashpyc.toml", "exclude = [\"a\\nb/\", \"tests/\"]\nstray = true\n");
    let run = tree
        .hashpyc()
        .env("HASHPYC_PYTHON", "no\nsuch")
        .env("NO_COLOR", "1\r\n2")
        .args(["check", "-v", "--target", "3.12", "m.py"])
        .run();
    run.assert_code(1);
    for want in [
        "setting: `exclude = [\"a\\nb/\", \"tests/\"]` from `hashpyc.toml` line 1",
        "setting: `stray = true` from `hashpyc.toml` line 2",
        "setting: HASHPYC_PYTHON=\"no\\nsuch\" (--python; replaced by --target on the command line)",
        "setting: NO_COLOR=\"1\\r\\n2\"",
    ] {
        assert!(run.stderr.lines().any(|l| l == want), "{want}\n{}", run.stderr);
    }
    let run = tree
        .hashpyc()
        .env("HASHPYC_CACHE", "c\nd")
        .args(["compile", "-v", "--no-config"])
        .python(py)
        .arg("m.py")
        .run();
    run.assert_code(0);
    assert!(run.stderr.lines().any(|l| l == "setting: HASHPYC_CACHE=\"c\\nd\" (--cache)"), "{}", run.stderr);
    assert!(!run.stderr.lines().any(|l| l == "d\" (--cache)" || l == "d (--cache)"), "{}", run.stderr);
}

// Every key set to `true` in the file has a `--no-…` flag that undoes it for one run (and
// the later of a flag and its negation wins, as with ruff's `--fix`/`--no-fix`).
per_python!(negations_undo_the_file, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("elsewhere/b.py", "B = 2\n");
    std::os::unix::fs::symlink(tree.path("elsewhere"), tree.path("src/linked")).unwrap();
    tree.write(
        "hashpyc.toml",
        "legacy = true\nfollow = true\noptimize = [1, 2]\nhardlink-dupes = true\ncache = \"c\"\n\
         cache-read-only = true\nstray = true\n",
    );
    let names = || -> BTreeSet<String> {
        pycs_under(tree.root())
            .iter()
            .map(|p| p.strip_prefix(tree.root()).unwrap().display().to_string())
            .collect()
    };
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    // The file as it is sets a legacy layout and two levels, which it refuses (one
    // `<source>c` per source holds one level); with one level: legacy pycs, the linked
    // directory followed (its pyc lands in the link's target), and no cache entries
    // (read-only).
    let refused = tree.hashpyc().args(["compile", "src"]).python(py).run();
    refused.assert_code(2);
    assert!(refused.stderr.contains("`optimize` in `hashpyc.toml` line 3 gives 2"), "{}", refused.stderr);
    tree.hashpyc().args(["compile", "-o", "2", "--no-hardlink-dupes", "src"]).python(py).run().assert_code(0);
    assert_eq!(names(), BTreeSet::from(["src/a.pyc".to_string(), "elsewhere/b.pyc".to_string()]));
    assert!(!tree.path("c").exists(), "a read-only cache stores nothing");
    for p in pycs_under(tree.root()) {
        std::fs::remove_file(p).unwrap();
    }
    // Each negation undoes its key.
    let run = tree
        .hashpyc()
        .args(["compile", "--no-legacy", "--no-follow", "--no-hardlink-dupes", "--no-cache-read-only", "src"])
        .python(py)
        .run();
    run.assert_code(0);
    let want: BTreeSet<String> =
        [1, 2].iter().map(|l| format!("src/__pycache__/a.{tag}.opt-{l}.pyc")).collect();
    assert_eq!(names(), want);
    use std::os::unix::fs::MetadataExt;
    for p in &want {
        assert_eq!(std::fs::metadata(tree.path(p)).unwrap().nlink(), 1, "{p} is hard-linked");
    }
    assert!(tree.path("c").is_dir(), "the cache stores once read-only is undone");
    // The environment variable is undone by the flag, and on the command line the later
    // of the two flags wins.
    std::fs::remove_dir_all(tree.path("c")).unwrap();
    let args = ["compile", "--no-config", "--force", "--cache", "c", "src"];
    tree.hashpyc()
        .args(args)
        .arg("--no-cache-read-only")
        .env("HASHPYC_CACHE_READ_ONLY", "1")
        .python(py)
        .run()
        .assert_code(0);
    assert!(tree.path("c").is_dir());
    std::fs::remove_dir_all(tree.path("c")).unwrap();
    tree.hashpyc()
        .args(args)
        .args(["--no-cache-read-only", "--cache-read-only"])
        .python(py)
        .run()
        .assert_code(0);
    assert!(!tree.path("c").exists());
    // check: `stray = true` reports a pyc whose source is gone; --no-stray does not.
    tree.write(format!("src/__pycache__/gone.{tag}.opt-1.pyc"), b"x");
    let stray = tree.hashpyc().args(["check", "--no-legacy", "--no-follow", "src"]).python(py).run();
    stray.assert_code(1);
    assert!(stray.stdout.contains("gone."), "{}", stray.stdout);
    let quiet =
        tree.hashpyc().args(["check", "--no-legacy", "--no-follow", "--no-stray", "src"]).python(py).run();
    quiet.assert_code(0);
    assert!(!quiet.stdout.contains("gone."), "{}", quiet.stdout);
});

// `hashpyc cache stats|prune|clean` use the file's `cache` when no --cache is given.
per_python!(cache_commands_read_the_file, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("proj/a.py", "A = 1\n");
    tree.write("proj/pyproject.toml", "[tool.hashpyc]\ncache = \"../shared-cache\"\n");
    let proj = tree.path("proj");
    harness::Hashpyc::new(&proj).args(["compile", "."]).python(py).run().assert_code(0);
    let stats = harness::Hashpyc::new(&proj).args(["cache", "stats", "--format", "json"]).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["entries"].as_u64(), Some(1), "{v}");
    // --cache beats the file (a directory not there yet is an empty cache, with a note);
    // without either there is nothing to name.
    let other = harness::Hashpyc::new(&proj).args(["cache", "stats", "--cache", "nowhere"]).run();
    other.assert_code(0);
    assert!(other.stderr.contains("`nowhere` does not exist yet"), "{}", other.stderr);
    assert!(other.stdout.contains("entries      0"), "{}", other.stdout);
    let none = harness::Hashpyc::new(&proj)
        .args(["cache", "clean", "--no-config"])
        .env_remove("HASHPYC_CACHE")
        .env_remove("HASHPYC_CACHE_URL")
        .run();
    none.assert_code(2);
    assert_eq!(
        none.stderr,
        "error: no cache directory: give --cache DIR, set HASHPYC_CACHE, or set `cache` in the configuration file\n"
    );
    // A shared cache alone (a CI fleet's setup) is named, with why it is not enough.
    let not_managed = "(`hashpyc cache` manages a local cache directory only, not the shared cache";
    tree.write("remote-only/hashpyc.toml", "jobs = 2\ncache-url = \"s3://ci-cache/hashpyc\"\n");
    let shared = harness::Hashpyc::new(&tree.path("remote-only"))
        .args(["cache", "stats"])
        .env_remove("HASHPYC_CACHE")
        .env_remove("HASHPYC_CACHE_URL")
        .run();
    shared.assert_code(2);
    assert!(
        shared.stderr.starts_with(
            "error: no cache directory: give --cache DIR, set HASHPYC_CACHE, or set `cache` in `"
        ) && shared.stderr.contains(&format!("{not_managed} `cache-url` in `"))
            && shared
                .stderr
                .contains("hashpyc.toml` line 2 names: its entries expire by the server's rules)\n"),
        "{}",
        shared.stderr
    );
    let shared = harness::Hashpyc::new(&proj)
        .args(["cache", "prune", "--max-size", "1MB", "--no-config"])
        .env_remove("HASHPYC_CACHE")
        .env("HASHPYC_CACHE_URL", "s3://ci-cache/hashpyc")
        .run();
    shared.assert_code(2);
    assert!(shared.stderr.contains(&format!("{not_managed} HASHPYC_CACHE_URL names")), "{}", shared.stderr);
    // The flag gets the same explanation (clap's `unexpected argument '--cache-url' found`
    // with a tip for `--cache` before), whatever else is given.
    for args in [
        &["cache", "stats", "--cache-url", "s3://ci-cache/hashpyc"][..],
        &["cache", "prune", "--max-size", "1MB", "--cache-url=http://127.0.0.1:9/c"],
        &["cache", "clean", "--cache", "nowhere", "--cache-url", "s3://ci-cache/hashpyc"],
    ] {
        let flag = harness::Hashpyc::new(&proj).args(args).run();
        flag.assert_code(2);
        assert_eq!(
            flag.stderr,
            "error: unexpected argument '--cache-url' (`hashpyc cache` manages a local cache directory \
             only, not the shared cache --cache-url names: its entries expire by the server's rules); \
             give --cache DIR, set HASHPYC_CACHE, or set `cache` in the configuration file\n",
            "{args:?}"
        );
    }
    harness::Hashpyc::new(&proj).args(["cache", "clean"]).run().assert_code(0);
    let stats = harness::Hashpyc::new(&proj).args(["cache", "stats", "--format", "json"]).run();
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["entries"].as_u64(), Some(0), "{v}");
});

// `~` in the file's paths and in `HASHPYC_CACHE` (a Dockerfile's `ENV`, a CI file: no
// shell expands them) is the home directory, as in a shell, never a directory named `~`
// inside the project (which would end up in an image layer).
per_python!(home_in_paths_is_expanded, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    let home = tree.path("home");
    std::fs::create_dir_all(&home).unwrap();
    tree.write("proj/a.py", "A = 1\n");
    tree.write("proj/pyproject.toml", "[tool.hashpyc]\ncache = \"~/.cache/from-file\"\n");
    let proj = tree.path("proj");
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = harness::Hashpyc::new(&proj).env("HOME", &home).args(args).env_remove("HASHPYC_CACHE");
        if let Some(v) = env {
            cmd = cmd.env("HASHPYC_CACHE", v);
        }
        cmd.run()
    };
    let compile = harness::Hashpyc::new(&proj)
        .env("HOME", &home)
        .env_remove("HASHPYC_CACHE")
        .args(["compile", "--force"])
        .python(py)
        .arg(".")
        .run();
    compile.assert_code(0);
    assert!(home.join(".cache/from-file/CACHEDIR.TAG").is_file(), "{}", compile.stderr);
    harness::Hashpyc::new(&proj)
        .env("HOME", &home)
        .env("HASHPYC_CACHE", "~/.cache/from-env")
        .args(["compile", "--force"])
        .python(py)
        .arg(".")
        .run()
        .assert_code(0);
    assert!(home.join(".cache/from-env/CACHEDIR.TAG").is_file());
    let stats = run(&["cache", "stats", "--format", "json"], Some("~/.cache/from-env"));
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["entries"].as_u64(), Some(1), "{v}");
    assert!(!proj.join("~").exists(), "no directory named `~` in the project");
});

// `~/` in `HASHPYC_STATE_DIR` is the home directory too, as in `HASHPYC_CACHE`: `check`
// records its interpreter probe there, never in a directory named `~` in the project.
#[test]
fn home_in_the_state_directory_is_expanded() {
    let test = "config::home_in_the_state_directory_is_expanded";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    let home = tree.path("home");
    std::fs::create_dir_all(&home).unwrap();
    tree.write("proj/m.py", "M = 1\n");
    let run = harness::Hashpyc::new(&tree.path("proj"))
        .env("HOME", &home)
        .env("HASHPYC_STATE_DIR", "~/.cache/state")
        .args(["check", "--no-config"])
        .python(py)
        .arg("m.py")
        .run();
    run.assert_code(1);
    assert!(!tree.path("proj/~").exists(), "no directory named `~` in the project: {}", run.stderr);
    let state = std::fs::read_dir(home.join(".cache/state")).map(|d| d.count()).unwrap_or(0);
    assert!(state > 0, "nothing recorded in ~/.cache/state: {}", run.stderr);
}

/// The home directory of the user running the tests in the password database, as a
/// shell's `~` finds it without `HOME`.
fn passwd_home() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 1 << 16];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill; `buf` outlives the
    // call and pw_dir then points into it, at a NUL-terminated string.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::getuid(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc != 0 || found.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pw.pw_dir).to_bytes();
        (!dir.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(dir)))
    }
}

// Without `HOME` (`env -u HOME`, a service manager), a leading `~/` is the home directory
// of the password database, as a shell reads it, never a directory named `~` in the
// project: for the file's paths and for `HASHPYC_CACHE`. (`check` only: nothing written.)
#[test]
fn home_without_home_is_the_password_databases() {
    let test = "config::home_without_home_is_the_password_databases";
    // A pycache prefix needs 3.8+.
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let Some(home) = passwd_home() else {
        harness::visible(&format!("SKIPPED {test}: no home directory in the password database"));
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("hashpyc.toml", "pycache-prefix = \"~/hashpyc-test-no-such-prefix\"\n");
    let run =
        tree.hashpyc().env_remove("HOME").args(["check", "--format", "json"]).python(py).arg("m.py").run();
    run.assert_code(1);
    let finding: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    let pyc = PathBuf::from(finding["pyc"].as_str().unwrap());
    assert!(
        pyc.starts_with(home.join("hashpyc-test-no-such-prefix")),
        "{pyc:?} not in {home:?}: {}",
        run.stdout
    );
    // HASHPYC_CACHE, as `cache stats` shows it (a directory that does not exist is empty).
    let stats = tree
        .hashpyc()
        .env_remove("HOME")
        .env("HASHPYC_CACHE", "~/hashpyc-test-no-such-cache")
        .args(["cache", "stats", "--format", "json"])
        .run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["cache"].as_str().map(PathBuf::from), Some(home.join("hashpyc-test-no-such-cache")), "{v}");
    assert!(!tree.path("~").exists(), "no directory named `~` in the project");
    assert!(!home.join("hashpyc-test-no-such-cache").exists());
}

// With no home directory known (no `HOME`, a user with no entry in the password database,
// as in a container run with `--user 4242`), a leading `~/` is an error naming the key or
// the variable, never a directory named `~` in the working directory: the file's `cache`
// and `pycache-prefix`, `HASHPYC_CACHE` for `compile` and `cache stats`; `HASHPYC_STATE_DIR`
// is a warning, as any state directory that cannot be used, and the run goes on without it.
#[test]
fn home_unknown_is_an_error_not_a_directory_named_tilde() {
    use std::os::unix::fs::PermissionsExt;
    let test = "config::home_unknown_is_an_error_not_a_directory_named_tilde";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || std::process::Command::new("setpriv").arg("--version").output().is_err()
    {
        harness::visible(&format!(
            "SKIPPED {test}: needs root and setpriv to run as a user with no passwd entry"
        ));
        return;
    }
    let tree = Tree::new();
    std::fs::set_permissions(tree.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    tree.write("m.py", "M = 1\n");
    let unknown = "starts with `~`, but the home directory is unknown: HOME is not set and the user has no \
                   entry in the password database";
    let run = |env: &[(&str, &str)], args: &[&str]| -> harness::Run {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=4242", "--regid=4242", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .args(args)
            .current_dir(tree.root())
            .env_remove("HOME")
            .env_remove("HASHPYC_STATE_DIR")
            .env_remove("HASHPYC_CACHE")
            .env_remove("HASHPYC_CONFIG")
            .env_remove("HASHPYC_NO_CONFIG")
            .env_remove("HASHPYC_PYTHON")
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        harness::run_command(&mut cmd)
    };
    let no_state = [("HASHPYC_NO_STATE", "1")];
    tree.write("hashpyc.toml", "optimize = 0\ncache = \"~/bytecode\"\n");
    let r = run(&no_state, &["compile", "--python", "no-such-python3", "m.py"]);
    r.assert_code(2);
    assert_eq!(
        r.stderr,
        format!("error: `hashpyc.toml` line 2: invalid value for `cache`: `~/bytecode` {unknown}\n")
    );
    let r = run(&no_state, &["cache", "stats"]);
    r.assert_code(2);
    assert_eq!(
        r.stderr,
        format!("error: `hashpyc.toml` line 2: invalid value for `cache`: `~/bytecode` {unknown}\n")
    );
    tree.write("hashpyc.toml", "pycache-prefix = \"~\"\n");
    let r = run(&no_state, &["check", "--target", "3.12", "m.py"]);
    r.assert_code(2);
    assert_eq!(
        r.stderr,
        format!("error: `hashpyc.toml` line 1: invalid value for `pycache-prefix`: `~` {unknown}\n")
    );
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    for args in [&["compile", "--python", "no-such-python3", "m.py"][..], &["cache", "stats"]] {
        let r = run(&[("HASHPYC_NO_STATE", "1"), ("HASHPYC_CACHE", "~/bytecode")], args);
        r.assert_code(2);
        assert_eq!(r.stderr, format!("error: invalid HASHPYC_CACHE: `~/bytecode` {unknown}\n"), "{args:?}");
    }
    let r = run(&[("HASHPYC_STATE_DIR", "~/state")], &["check", "--target", "3.12", "m.py"]);
    r.assert_code(1);
    assert!(
        r.stderr.starts_with(&format!(
            "warning: the state directory `~/state` cannot be used (`~/state` {unknown}): interpreter probes"
        )),
        "{}",
        r.stderr
    );
    assert!(!tree.path("~").exists(), "a directory named `~` in the working directory");
}

// With HOME (and XDG_CACHE_HOME, HASHPYC_STATE_DIR) unset, the default state directory was
// silently off, every run starting Python again: `~/.cache/hashpyc` looked at HOME only.
// Now `~` is found as for a leading `~/` (HOME, else the password database), and when no
// home is known, `-v` warns that the state directory cannot be used, as the README says.
#[test]
fn the_default_state_dir_without_home_is_under_the_passwd_home() {
    use std::os::unix::fs::PermissionsExt;
    let test = "config::the_default_state_dir_without_home_is_under_the_passwd_home";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        || std::process::Command::new("setpriv").arg("--version").output().is_err()
    {
        harness::visible(&format!("SKIPPED {test}: needs root and setpriv to run as another user"));
        return;
    }
    let tree = Tree::new();
    std::fs::set_permissions(tree.root(), std::fs::Permissions::from_mode(0o777)).unwrap();
    tree.write("m.py", "M = 1\n");
    let run = |uid: &str| -> harness::Run {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .args(["check", "-v", "--no-config", "--target", "3.12", "m.py"])
            .current_dir(tree.root())
            .env_remove("HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("HASHPYC_STATE_DIR")
            .env_remove("HASHPYC_NO_STATE")
            .env_remove("HASHPYC_NO_CACHE")
            .env_remove("HASHPYC_CONFIG")
            .env("NO_COLOR", "1");
        harness::run_command(&mut cmd)
    };
    // No entry in the password database: no home at all.
    let r = run("4242");
    r.assert_code(1);
    assert!(
        r.stderr.contains(
            "warning: the state directory `~/.cache/hashpyc` cannot be used (the home directory is unknown: \
             neither XDG_CACHE_HOME nor HOME is set and the user has no entry in the password database): \
             interpreter probes"
        ),
        "{}",
        r.stderr
    );
    // `nobody`'s entry names a home that does not exist (`/nonexistent`): no state
    // directory at all, said under -v only, and nothing created there (as under a
    // packager's HOME).
    let entry = std::process::Command::new("getent").args(["passwd", "65534"]).output().unwrap();
    let home = String::from_utf8_lossy(&entry.stdout).trim().split(':').nth(5).unwrap_or("").to_string();
    if home.is_empty() || std::path::Path::new(&home).exists() {
        harness::visible(&format!(
            "SKIPPED {test} (passwd home): uid 65534's home `{home}` exists or is unknown"
        ));
        return;
    }
    let r = run("65534");
    r.assert_code(1);
    let want = format!(
        "warning: the state directory `{home}/.cache/hashpyc` cannot be used (the home directory `{home}` does not exist, and is not made)"
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(!std::path::Path::new(&home).exists(), "{home} was created: {}", r.stderr);
}

// An empty variable is an unset one (`ENV HASHPYC_CACHE=` in a Dockerfile): every variable
// that stands in for a flag, set to "", changes nothing — for compile, check and the cache
// commands — where clap alone would refuse the empty value.
per_python!(empty_variables_are_unset, min = (3, 11), |py: &Python| {
    let names = hashpyc::cli::flag_env_vars();
    assert!(names.len() >= 10 && names.iter().any(|n| n == "HASHPYC_CACHE"), "{names:?}");
    let tree = Tree::new();
    tree.write("pkg/a.py", "A = 1\n");
    tree.write("pyproject.toml", "[tool.hashpyc]\noptimize = [1]\ncache = \"c\"\n");
    let with_empty =
        |cmd: harness::Hashpyc| names.iter().fold(cmd, |cmd, n| cmd.env(n.to_str().unwrap(), ""));
    let run = with_empty(tree.hashpyc()).args(["compile", "pkg"]).python(py).run();
    run.assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    assert_eq!(
        pycs_under(tree.root()),
        BTreeSet::from([tree.path(format!("pkg/__pycache__/a.{tag}.opt-1.pyc"))]),
        "the file's settings apply"
    );
    with_empty(tree.hashpyc()).args(["check", "pkg"]).python(py).run().assert_code(0);
    let stats = with_empty(tree.hashpyc()).args(["cache", "stats", "--format", "json"]).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["entries"].as_u64(), Some(1), "{v}");
});

/// Write `content` as `name` in a fresh tree and run `hashpyc ARGS` there: the stderr.
fn bad(name: &str, content: &str, args: &[&str]) -> String {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write(name, content);
    let run = tree.hashpyc().args(args).run();
    run.assert_code(2);
    assert!(run.stdout.is_empty());
    run.stderr
}

// An error in a list written over several lines named the key's line (`exclude = [` on
// line 2 for a `42` on line 4). Now each list-valued key's element is named at its own line
// and column.
#[test]
fn an_element_of_a_list_is_named_at_its_line() {
    let Some(py) = harness::any_python("an_element_of_a_list_is_named_at_its_line") else { return };
    let cases: &[(&str, &str, &str)] = &[
        (
            "pyproject.toml",
            "[tool.hashpyc]\nexclude = [\n  \"a/\",\n  42,\n]\n",
            "`pyproject.toml` line 4, column 3: invalid value for `exclude` in [tool.hashpyc]: invalid type: integer `42`, expected a string",
        ),
        (
            "hashpyc.toml",
            "exclude = [\n  \"a/\",\n    \"b/[c\",\n]\n",
            "`hashpyc.toml` line 3, column 5: invalid value for `exclude` in the top level: invalid glob `b/[c`: unclosed character class; missing ']'",
        ),
        (
            "hashpyc.toml",
            "optimize = [\n  0,\n  1,\n  5,\n]\n",
            "`hashpyc.toml` line 4, column 3: invalid value for `optimize` in the top level: optimization level 5 is not 0, 1 or 2",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\npython = [\n  \"3.12\",\n  3.13,\n]\n",
            "`pyproject.toml` line 4, column 3: invalid value for `python` in [tool.hashpyc]: invalid type: floating point `3.13`, expected a string (a version is a string: write it quoted, `\"3.13\"`)",
        ),
        (
            "hashpyc.toml",
            "python = [\n  \"3.12\",\n  \"\",\n]\n",
            "`hashpyc.toml` line 3, column 3: invalid value for `python` in the top level: an empty interpreter name",
        ),
        (
            "hashpyc.toml",
            "python = [\n  \"3.12\",\n  \">=3.12\",\n]\n",
            "`hashpyc.toml` line 3, column 3: invalid value for `python` in the top level: ",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\nexclude = [\n  \"a/\",\n  1979-05-27,\n]\n",
            "`pyproject.toml` line 4, column 3: invalid value for `exclude` in [tool.hashpyc]: invalid type: date `1979-05-27`, expected a string",
        ),
    ];
    for (i, (name, content, want)) in cases.iter().enumerate() {
        let tree = Tree::new();
        tree.write("m.py", "X = 1\n");
        tree.write(name, content);
        let cmd = if i % 2 == 0 { "compile" } else { "check" };
        let run = tree.hashpyc().arg(cmd).python(py).run();
        run.assert_code(2);
        assert!(run.stderr.starts_with(&format!("error: {want}")), "case {i}: {content}\n{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(tree.pycs().is_empty(), "case {i}");
    }
}

// An interpreter a list names that is not found was reported at the `python` key's line
// (`pyproject.toml` line 2 for the element on line 4): the lookup's error took the key's
// origin. It names the element's line and column now, as the other errors about one element
// of a list do; a single-line list's element gets its column too.
#[test]
fn an_interpreter_not_found_is_named_at_its_element() {
    let Some(py) = harness::any_python("an_interpreter_not_found_is_named_at_its_element") else { return };
    let found = serde_json::to_string(&py.path.to_str().expect("a UTF-8 path")).unwrap();
    let not_found = "invalid value for `python`: Python interpreter `no-such-python3` not found on PATH";
    // (`python = [` is 10 characters: the first element is at column 11.)
    let second = 11 + found.chars().count() + 2;
    let cases = [
        (
            "pyproject.toml",
            format!("[tool.hashpyc]\npython = [\n  {found},\n  \"no-such-python3\",\n]\n"),
            format!("`pyproject.toml` line 4, column 3: {not_found}"),
        ),
        (
            "hashpyc.toml",
            format!("optimize = 0\npython = [{found}, \"no-such-python3\"]\n"),
            format!("`hashpyc.toml` line 2, column {second}: {not_found}"),
        ),
    ];
    for (i, (name, content, want)) in cases.iter().enumerate() {
        let cmd = if i % 2 == 0 { "compile" } else { "check" };
        let stderr = bad(name, content, &[cmd]);
        assert_eq!(stderr, format!("error: {want}\n"), "{content}");
    }
}

// Every bad configuration is one line naming the file, the key and the line; exit 2, before
// any interpreter is looked for.
#[test]
fn bad_configurations() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "pyproject.toml",
            "[project]\nname = \"x\"\n\n[tool.hashpyc]\npython = [\"python3\"]\noptimise = [2]\n",
            "`pyproject.toml` line 6: unknown key `optimise` in [tool.hashpyc] (did you mean `optimize`?)",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\noptimize = 3\n",
            "`pyproject.toml` line 2: invalid value for `optimize` in [tool.hashpyc]: optimization level 3 is not 0, 1 or 2",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\n# levels\noptimize = [0, 5]\n",
            "`pyproject.toml` line 3, column 16: invalid value for `optimize` in [tool.hashpyc]: optimization level 5 is not 0, 1 or 2",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\nlegacy = \"yes\"\n",
            "`pyproject.toml` line 2: invalid value for `legacy` in [tool.hashpyc]: invalid type: string \"yes\", expected a boolean",
        ),
        (
            "hashpyc.toml",
            "optimize = [0]\nexclude = [\"build/\", \"a/[b\"]\n",
            "`hashpyc.toml` line 2, column 22: invalid value for `exclude` in the top level: invalid glob `a/[b`: unclosed character class; missing ']'",
        ),
        (
            ".hashpyc.toml",
            "exclude-regex = \"(\"\n",
            "`.hashpyc.toml` line 1: invalid value for `exclude-regex` in the top level: invalid regular expression `(`: unclosed group",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\ninvalidation-mode = \"timestamp\"\n",
            "`pyproject.toml` line 2: invalid value for `invalidation-mode` in [tool.hashpyc]: unknown variant `timestamp`, expected `checked-hash` or `unchecked-hash` (timestamp pycs go stale when a source changes twice within one second at the same size, and Python then silently runs the old code. Use checked-hash (the default) or, for images whose sources never change, unchecked-hash)",
        ),
        // A version written as a TOML number: as written (3.10, not the float's 3.1).
        (
            "pyproject.toml",
            "[tool.hashpyc]\npython = 3.10\n",
            "`pyproject.toml` line 2: invalid value for `python` in [tool.hashpyc]: invalid type: floating point `3.1`, expected a string (a version is a string: write it quoted, `\"3.10\"`)",
        ),
        (
            "hashpyc.toml",
            "python = [\"3.12\", 3.13]\n",
            "`hashpyc.toml` line 1, column 19: invalid value for `python` in the top level: invalid type: floating point `3.13`, expected a string (a version is a string: write it quoted, `\"3.13\"`)",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\ncache-max-size = \"lots\"\n",
            "`pyproject.toml` line 2: invalid value for `cache-max-size` in [tool.hashpyc]: `lots` is not a size like 500MB or 1GiB: invalid digit found in string",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\nmax-depth = -1\n",
            "`pyproject.toml` line 2: invalid value for `max-depth` in [tool.hashpyc]: invalid value: integer `-1`, expected a whole number, 0 or more",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\nlegacy = true\n\npycache-prefix = \"x\"\n",
            "`pyproject.toml` line 4: `pycache-prefix` cannot be combined with `legacy` (as the flags cannot)",
        ),
        (
            "hashpyc.toml",
            "max-depth = 2\nno-recursion = true\n",
            "`hashpyc.toml` line 1: `max-depth` cannot be combined with `no-recursion` (as the flags cannot)",
        ),
        (
            "hashpyc.toml",
            "[tool.hashpyc]\noptimize = [2]\n",
            "`hashpyc.toml` line 1: unknown key `tool` in the top level (outside pyproject.toml the keys of [tool.hashpyc] go at the top level, without a header)",
        ),
        (
            "pyproject.toml",
            "tool.hashpyc = 3\n",
            "`pyproject.toml` line 1: `tool.hashpyc` must be a table, like [tool.hashpyc]",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\ncache = \"\"\n",
            "`pyproject.toml` line 2: invalid value for `cache` in [tool.hashpyc]: an empty path (leave the key out for no cache)",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\ncache-max-size = \"\"\n",
            "`pyproject.toml` line 2: invalid value for `cache-max-size` in [tool.hashpyc]: an empty size (leave the key out for the default, 2GiB)",
        ),
        (
            "hashpyc.toml",
            "python = []\n",
            "`hashpyc.toml` line 1: invalid value for `python` in the top level: an empty list (leave the key out for `python3`)",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\noptimize = [1]\npycache-prefix = \"\"\n",
            "`pyproject.toml` line 3: invalid value for `pycache-prefix` in [tool.hashpyc]: an empty path",
        ),
        (
            "pyproject.toml",
            "[tool.hashpyc]\njobs = 5000\n",
            "`pyproject.toml` line 2: invalid value for `jobs` in [tool.hashpyc]: 5000 workers is more than the 1024 hashpyc starts at most (0 means one per CPU)",
        ),
    ];
    for (i, (name, content, want)) in cases.iter().enumerate() {
        let cmd: &[&str] = if i % 2 == 0 { &["compile"] } else { &["check"] };
        assert_eq!(bad(name, content, cmd), format!("error: {want}\n"), "case {i}: {content}");
    }
    // A TOML syntax error names the file, the line and the column (the message is toml's own).
    let syntax = bad("pyproject.toml", "[tool.hashpyc]\noptimize = [0, 2\nlegacy = true\n", &["compile"]);
    assert!(syntax.starts_with("error: `pyproject.toml` line "), "{syntax}");
    assert!(syntax.contains("invalid TOML"), "{syntax}");
    assert_eq!(syntax.lines().count(), 1, "{syntax}");
    let line: usize =
        syntax["error: `pyproject.toml` line ".len()..].split([',', ':']).next().unwrap().parse().unwrap();
    assert!((2..=3).contains(&line), "{syntax}");
    // --config names the file as given.
    let tree = Tree::new();
    tree.write("conf/ci.toml", "jobs = \"four\"\n");
    let run = tree.hashpyc().args(["check", "--config", "conf/ci.toml"]).run();
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: `conf/ci.toml` line 1: invalid value for `jobs` in the top level: invalid type: string \"four\", expected a whole number, 0 or more\n"
    );
    // --no-config skips even a broken file.
    tree.write("pyproject.toml", "[tool.hashpyc]\noptimise = [1]\n");
    let run = tree.hashpyc().args(["check", "--no-config", "--target", "3.12", "."]).run();
    assert_ne!(run.code, Some(2), "{}", run.stderr);
    // An interpreter the file names that is not there is reported at its key; the same
    // name given as a flag is reported as the flag's.
    for cmd in ["compile", "check"] {
        assert_eq!(
            bad(
                "pyproject.toml",
                "[project]\nname = \"x\"\n\n[tool.hashpyc]\npython = \"no-such-python3\"\n",
                &[cmd]
            ),
            "error: `pyproject.toml` line 5: invalid value for `python`: Python interpreter `no-such-python3` not found on PATH\n"
        );
    }
    assert_eq!(
        bad("hashpyc.toml", "optimize = 2\npython = [\"./venv/bin/python\"]\n", &["compile"])
            .split(" does not exist")
            .next()
            .unwrap()
            .split("Python interpreter `")
            .next()
            .unwrap(),
        "error: `hashpyc.toml` line 2, column 11: invalid value for `python`: "
    );
    // So are a directory for limit-symlinks that is not there and a cache URL of a kind
    // hashpyc does not speak.
    let tree = Tree::new();
    tree.write("hashpyc.toml", "optimize = 1\nlimit-symlinks = \"no/such/dir\"\n");
    let run = tree.hashpyc().args(["check", "--python", "no-such-python3"]).run();
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: `hashpyc.toml` line 2: invalid value for `limit-symlinks`: `{}`: no such file\n",
            tree.path("no/such/dir").display()
        )
    );
    assert_eq!(
        bad("pyproject.toml", "[tool.hashpyc]\n\ncache-url = \"ftp://host/x\"\n", &["compile"]),
        "error: `pyproject.toml` line 3: invalid value for `cache-url`: unsupported cache URL `ftp://host/x`: \
         expected s3://BUCKET/PREFIX, http://HOST/PREFIX or https://HOST/PREFIX\n"
    );
    assert_eq!(
        bad("hashpyc.toml", "python = \"python3\"\n", &["compile", "--python", "no-such-python3"]),
        "error: Python interpreter `no-such-python3` not found on PATH\n"
    );
}

// A TOML date or time (`exclude = [1979-05-27]`, `python = 2024-01-01`) is a wrong type
// for every key, named as written: never read as the string it looks like (a glob
// `1979-05-27`, an interpreter named so), whether alone, in a list or for a key that takes
// one string.
#[test]
fn dates_and_times_are_not_strings() {
    assert_eq!(
        bad("hashpyc.toml", "optimize = 0\nexclude = [\"tests/\", 1979-05-27]\n", &["compile"]),
        "error: `hashpyc.toml` line 2, column 22: invalid value for `exclude` in the top level: invalid type: date \
         `1979-05-27`, expected a string\n"
    );
    assert_eq!(
        bad("pyproject.toml", "[tool.hashpyc]\npython = 2024-01-01\n", &["check"]),
        "error: `pyproject.toml` line 2: invalid value for `python` in [tool.hashpyc]: invalid type: date \
         `2024-01-01`, expected a string\n"
    );
    assert_eq!(
        bad("hashpyc.toml", "cache = 07:32:00\n", &["compile"]),
        "error: `hashpyc.toml` line 1: invalid value for `cache` in the top level: invalid type: time \
         `07:32:00`, expected path string\n"
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hashpyc.schema.json")).unwrap(),
    )
    .unwrap();
    let mut accepted = Vec::new();
    for key in schema["properties"].as_object().unwrap().keys() {
        for date in ["1979-05-27", "07:32:00", "1979-05-27T07:32:00", "1979-05-27T07:32:00Z"] {
            for value in [date.to_string(), format!("[{date}]")] {
                let text = format!("{key} = {value}\n");
                match hashpyc::config::parse(&text, false, "hashpyc.toml") {
                    Err(e) if e.to_string().contains(&format!("`{date}`")) => {}
                    // A list for a key that takes one value is refused as a list.
                    Err(e) if value.starts_with('[') && e.to_string().contains("invalid type: sequence") => {}
                    // An enum: toml's own "wanted string or table" for anything but a string.
                    Err(e) if key == "invalidation-mode" && e.to_string().contains("wanted string") => {}
                    other => accepted.push(format!("{text:?}: {other:?}")),
                }
            }
        }
    }
    assert!(accepted.is_empty(), "dates not refused as such:\n{}", accepted.join("\n"));
}

// Keys a user may reach for to name what to compile: the paths (`paths`, `src`, …) are
// given on the command line, and hashpyc has no `include` (not "did you mean `exclude`",
// its opposite).
#[test]
fn keys_for_the_paths_say_where_paths_go() {
    for key in ["paths", "src", "files"] {
        assert_eq!(
            bad("hashpyc.toml", &format!("{key} = [\"src\"]\n"), &["compile"]),
            format!(
                "error: `hashpyc.toml` line 1: unknown key `{key}` in the top level (the paths describe one \
                 run, not the tree: give them on the command line, where none means the current directory)\n"
            )
        );
    }
    assert_eq!(
        bad("pyproject.toml", "[tool.hashpyc]\ninclude = [\"src/\"]\n", &["check"]),
        "error: `pyproject.toml` line 2: unknown key `include` in [tool.hashpyc] (hashpyc has no `include`: \
         it takes every `.py` file under the paths given on the command line, where none means the current \
         directory; `exclude` skips some of them)\n"
    );
}

// A key given twice is invalid TOML: the error names the key, the file and the line of the
// second (and its column).
#[test]
fn a_duplicate_key_is_named() {
    assert_eq!(
        bad("pyproject.toml", "[tool.hashpyc]\nexclude = [\"a/\"]\n\nexclude = [\"b/\"]\n", &["check"]),
        "error: `pyproject.toml` line 4, column 1: invalid TOML: duplicate key `exclude`\n"
    );
    assert_eq!(
        bad("hashpyc.toml", "optimize = 1\njobs = 2\noptimize = 2\n", &["compile"]),
        "error: `hashpyc.toml` line 3, column 1: invalid TOML: duplicate key `optimize`\n"
    );
    // A syntax error names its column too, in characters, as uv and ruff do (it gave the
    // line alone).
    assert_eq!(
        bad("hashpyc.toml", "jobs = 3\nexclude = \"é\" \"b\"\n", &["compile"]),
        "error: `hashpyc.toml` line 2, column 15: invalid TOML: unexpected key or value, expected newline, `#`\n"
    );
}

// A number too large for its key named Rust's types (`… as i128`) or none at all (a bare
// `floating-point number overflowed`).
#[test]
fn numbers_too_large_are_said_in_toml_words() {
    assert_eq!(
        bad("hashpyc.toml", "jobs = 99999999999999999999\n", &["compile"]),
        "error: `hashpyc.toml` line 1: invalid value for `jobs` in the top level: invalid type: integer \
         `99999999999999999999`, expected a whole number, 0 or more\n"
    );
    assert_eq!(
        bad("hashpyc.toml", "max-depth = 1e400\n", &["check"]),
        "error: `hashpyc.toml` line 1: invalid value for `max-depth` in the top level: a number too large\n"
    );
}

// Flags for two alternatives of one setting are an error naming both, as `-b` with
// `--pycache-prefix` is, whichever comes first (the keys are, in `bad_configurations`).
#[test]
fn contradictory_flags_are_errors() {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    for cmd in ["compile", "check"] {
        for (args, a, b) in [
            (&["-l", "--max-depth", "3"][..], "--no-recursion", "--max-depth <N>"),
            (&["--max-depth", "3", "-l"][..], "--no-recursion", "--max-depth <N>"),
            (&["-b", "--pycache-prefix", "p"][..], "--legacy", "--pycache-prefix <DIR>"),
        ] {
            let run = tree.hashpyc().args([cmd, "--no-config"]).args(args).arg(".").run();
            run.assert_code(2);
            let first = run.stderr.lines().next().unwrap_or_default();
            assert!(
                first.contains(&format!("'{a}'")) && first.contains(&format!("'{b}'")),
                "{cmd} {args:?}: {}",
                run.stderr
            );
            assert!(first.contains("cannot be used with"), "{cmd} {args:?}: {}", run.stderr);
        }
    }
}

// An error caused by a value from the configuration file or an environment variable names
// that key (with the file and line) or that variable, not only the flag it stands for;
// the same value given as the flag keeps the flag's wording.
#[test]
fn errors_name_where_the_value_came_from() {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let compile = |config: Option<&str>, args: &[&str]| {
        std::fs::remove_file(tree.path("pyproject.toml")).ok();
        if let Some(text) = config {
            tree.write("pyproject.toml", text);
        }
        let run = tree.hashpyc().arg("compile").args(args).arg("m.py").run();
        run.assert_code(2);
        run.stderr
    };
    let hardlink = "[project]\nname = \"x\"\n[tool.hashpyc]\nhardlink-dupes = true\n";
    let first = compile(Some(hardlink), &[]);
    assert!(
        first.starts_with(
            "error: `hardlink-dupes = true` in `pyproject.toml` line 4 needs at least two different optimization levels"
        ),
        "{first}"
    );
    assert!(first.contains("--no-hardlink-dupes"), "{first}");
    let levels = compile(Some("[tool.hashpyc]\noptimize = 1\n"), &["--hardlink-dupes"]);
    assert!(
        levels.starts_with(
            "error: --hardlink-dupes needs at least two different optimization levels, and `optimize` in \
             `pyproject.toml` line 2 gives one"
        ),
        "{levels}"
    );
    let flag = compile(None, &["--hardlink-dupes"]);
    assert!(
        flag.starts_with("error: --hardlink-dupes needs at least two different optimization levels"),
        "{flag}"
    );
    // A level given twice is one level (the message said "two" to a user who gave two).
    let twice = compile(None, &["--hardlink-dupes", "-o", "0", "-o", "0"]);
    assert!(
        twice.starts_with("error: --hardlink-dupes needs at least two different optimization levels"),
        "{twice}"
    );

    // Every variable standing for a flag: clap parses some, hashpyc the others.
    let clap_parsed: &[(&str, &str, &str)] = &[
        ("HASHPYC_TIMEOUT", "-1", "--timeout"),
        ("HASHPYC_JOBS", "many", "--jobs"),
        ("HASHPYC_CACHE_MAX_SIZE", "lots", "--cache-max-size"),
        ("HASHPYC_COLOR", "sometimes", "--color"),
        ("HASHPYC_NO_CONFIG", "maybe", "--no-config"),
        ("HASHPYC_CACHE_READ_ONLY", "maybe", "--cache-read-only"),
        ("HASHPYC_NO_CACHE", "maybe", "--no-cache"),
    ];
    let checked_later: &[(&str, &str, &str)] = &[
        (
            "HASHPYC_PYTHON",
            "no-such-python3",
            "error: invalid HASHPYC_PYTHON: Python interpreter `no-such-python3` not found on PATH\n",
        ),
        (
            "HASHPYC_CACHE_URL",
            "ftp://host/x",
            "error: invalid HASHPYC_CACHE_URL: unsupported cache URL `ftp://host/x`",
        ),
        (
            "HASHPYC_CONFIG",
            "nope.toml",
            "error: cannot read configuration file `nope.toml` (named by HASHPYC_CONFIG): no such file\n",
        ),
    ];
    // HASHPYC_CACHE names a directory that any path may be (errors name the directory).
    let mut covered: Vec<&str> = clap_parsed.iter().chain(checked_later).map(|c| c.0).collect();
    covered.push("HASHPYC_CACHE");
    covered.sort_unstable();
    let all = hashpyc::cli::flag_env_vars();
    assert_eq!(covered, all.iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>());
    for (var, value, flag) in clap_parsed {
        let run = tree.hashpyc().env(var, value).args(["compile", "-n", "--no-progress", "m.py"]).run();
        run.assert_code(2);
        let first = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: invalid value '{value}' for {var} ")),
            "{var}: {}",
            run.stderr
        );
        assert!(first.contains(&format!("'{flag}")), "{var}: {}", run.stderr);
        // The same value as the flag is the flag's error (the boolean flags take no value).
        if value == &"maybe" {
            continue;
        }
        let run = tree.hashpyc().args(["compile", &format!("{flag}={value}"), "m.py"]).run();
        run.assert_code(2);
        assert!(
            run.stderr.starts_with(&format!("error: invalid value '{value}' for '{flag}")),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(var), "{}", run.stderr);
    }
    // A flag given on the command line replaces its variable, which is then not read.
    let run = tree
        .hashpyc()
        .env("HASHPYC_JOBS", "many")
        .args(["compile", "-j", "1", "--python", "no-such-python3", "m.py"])
        .run();
    run.assert_code(2);
    assert_eq!(run.stderr, "error: Python interpreter `no-such-python3` not found on PATH\n");
    for (var, value, want) in checked_later {
        // `check` has no cache.
        let cmds: &[&str] = if *var == "HASHPYC_CACHE_URL" { &["compile"] } else { &["compile", "check"] };
        for cmd in cmds {
            let run = tree.hashpyc().env(var, value).args([cmd, "m.py"]).run();
            run.assert_code(2);
            assert!(run.stderr.starts_with(want), "{cmd} {var}: {}", run.stderr);
        }
    }
}

// A timeout longer than a day, from the key, its variable or the flag, is an error naming
// where it came from (exit 2, nothing written), never a panic (1e20 seconds is no deadline
// a clock can hold); a day itself is taken, and the run compiles.
#[test]
fn a_timeout_beyond_a_day_is_refused_where_it_came_from() {
    let test = "config::a_timeout_beyond_a_day_is_refused_where_it_came_from";
    let Some(py) = harness::any_python(test) else { return };
    let range = "is not a number of seconds from 0 (never) to 86400 (a day)";
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    for value in ["1e20", "86401"] {
        tree.write("hashpyc.toml", format!("optimize = 1\ntimeout = {value}\n"));
        for cmd in ["compile", "check"] {
            let run = tree.hashpyc().arg(cmd).python(py).arg("m.py").run();
            run.assert_code(2);
            assert!(
                run.stderr.starts_with(
                    "error: `hashpyc.toml` line 2: invalid value for `timeout` in the top level: "
                ) && run.stderr.ends_with(&format!(" {range}\n")),
                "{cmd} timeout = {value}: {}",
                run.stderr
            );
        }
    }
    for value in ["1e19", "86401"] {
        // From the variable, then from the flag.
        for (env, flag, source) in
            [(Some(value), None, "HASHPYC_TIMEOUT "), (None, Some(value), "'--timeout <SECS>'")]
        {
            let mut cmd = tree.hashpyc().args(["compile", "-f", "--no-config"]);
            if let Some(v) = env {
                cmd = cmd.env("HASHPYC_TIMEOUT", v);
            }
            if let Some(v) = flag {
                cmd = cmd.args(["--timeout", v]);
            }
            let run = cmd.python(py).arg("m.py").run();
            run.assert_code(2);
            let first = run.stderr.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("error: invalid value '{value}' for {source}"))
                    && first.ends_with(&format!("`{value}` {range}")),
                "{}",
                run.stderr
            );
        }
    }
    assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
    // A day, from each of the three, is a timeout like any other.
    tree.write("hashpyc.toml", "timeout = 86400\n");
    tree.hashpyc().args(["compile", "-f"]).python(py).arg("m.py").run().assert_code(0);
    let day = |cmd: harness::Hashpyc, args: &[&str]| {
        cmd.args(["compile", "-f", "--no-config"]).args(args).python(py).arg("m.py").run()
    };
    day(tree.hashpyc().env("HASHPYC_TIMEOUT", "86400"), &[]).assert_code(0);
    day(tree.hashpyc(), &["--timeout", "86400"]).assert_code(0);
    assert_eq!(tree.pycs().len(), 1, "{:?}", tree.pycs());
}

// `--config FILE` on the command line beats `HASHPYC_NO_CONFIG=1`, and `--no-config` beats
// `HASHPYC_CONFIG`, as a flag beats its variable; of the two flags the later wins. (The
// file named does not exist: whether it was read shows in the error.)
#[test]
fn the_command_line_beats_the_config_variables() {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let unread = "error: cannot read configuration file `nope.toml`: no such file\n";
    let no_python = "error: Python interpreter `no-such-python3` not found on PATH\n";
    type Case<'a> = (Option<(&'a str, &'a str)>, &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (Some(("HASHPYC_NO_CONFIG", "1")), &["--config", "nope.toml"], unread),
        (Some(("HASHPYC_CONFIG", "nope.toml")), &["--no-config"], no_python),
        (None, &["--no-config", "--config", "nope.toml"], unread),
        (None, &["--config", "nope.toml", "--no-config"], no_python),
    ];
    for (env, args, want) in cases {
        for cmd in ["compile", "check"] {
            let mut run = tree.hashpyc().arg(cmd).args(*args);
            if let Some((k, v)) = env {
                run = run.env(k, v);
            }
            let run = run.args(["--python", "no-such-python3", "m.py"]).run();
            run.assert_code(2);
            assert_eq!(run.stderr, *want, "{cmd} {env:?} {args:?}");
        }
    }
}

// A configuration file named (`--config`, `HASHPYC_CONFIG`) that is missing or invalid was
// not read by `cache stats`, `clean` and `prune --max-size` given `--cache` (exit 0, not a
// word), while `compile`, `check`, `inspect` and a `prune` without `--max-size` refused it.
// A file named is now always read, its error reported as theirs are (exit 2).
#[test]
fn the_cache_commands_read_a_named_configuration_file() {
    let tree = Tree::new();
    tree.write("bad.toml", "jobz = 1\n");
    let unread = "error: cannot read configuration file `nope.toml`: no such file\n";
    let by_var =
        "error: cannot read configuration file `nope.toml` (named by HASHPYC_CONFIG): no such file\n";
    let invalid = "error: `bad.toml` line 1: unknown key `jobz` in the top level (did you mean `jobs`?)\n";
    for command in [&["stats"][..], &["clean"], &["prune", "--max-size", "1G"], &["prune"]] {
        let cache = |config: Option<&str>| {
            let run = tree.hashpyc().arg("cache").args(command).args(["--cache", "cc"]);
            match config {
                Some(file) => run.args(["--config", file]).run(),
                None => run.env("HASHPYC_CONFIG", "nope.toml").run(),
            }
        };
        for (run, want) in
            [(cache(Some("nope.toml")), unread), (cache(Some("bad.toml")), invalid), (cache(None), by_var)]
        {
            run.assert_code(2);
            assert_eq!(run.stderr, want, "{command:?}");
            assert_eq!(run.stdout, "", "{command:?}");
        }
        // `--no-config` after it still wins, as for compile: nothing is read then.
        let run = tree.hashpyc().arg("cache").args(command).args([
            "--cache",
            "cc",
            "--config",
            "nope.toml",
            "--no-config",
        ]);
        run.run().assert_code(0);
    }
    assert!(!tree.path("cc").exists());
}

// The boolean variables that stand for no flag (HASHPYC_NO_CACHE, HASHPYC_NO_STATE,
// HASHPYC_TRACE, HASHPYC_VERIFY) read a value as those of the boolean flags do
// (HASHPYC_NO_CONFIG, HASHPYC_CACHE_READ_ONLY): `false` and `0` are off, `1` and `yes` on,
// and `banana` is an error naming the variable and the value (exit 2, nothing written) for
// each command that reads it. `HASHPYC_NO_CACHE=false` ran without the cache and without
// the state directory, `HASHPYC_TRACE=0` traced, `HASHPYC_VERIFY=yes` did not verify.
#[test]
fn boolean_variables_read_as_the_flags_do() {
    let Some(py) = harness::pythons().values().next_back() else {
        harness::visible("SKIPPED config::boolean_variables_read_as_the_flags_do: no CPython found");
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("n.py", "N = 2\n");
    let (state, cache) = (tree.path("state"), tree.path("cache"));
    let fresh = || {
        for d in [&state, &cache] {
            let _ = std::fs::remove_dir_all(d);
        }
    };
    let has_files = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
    let compile = |var: &str, value: &str| {
        fresh();
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", &state)
            .env(var, value)
            .args(["compile", "-f", "-j1", "--no-progress", "--cache"])
            .arg(&cache)
            .python(py)
            .args(["m.py", "n.py"])
            .run()
    };
    let check = |var: &str, value: &str| {
        fresh();
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", &state)
            .env(var, value)
            .arg("check")
            .python(py)
            .arg("m.py")
            .run()
    };
    let refused = |run: &harness::Run, var: &str| {
        run.assert_code(2);
        // HASHPYC_NO_CACHE stands for --no-cache, and says so as clap's flag variables do.
        let stands_for = if var == "HASHPYC_NO_CACHE" { " (which stands for '--no-cache')" } else { "" };
        assert_eq!(
            run.stderr.lines().next(),
            Some(
                format!("error: invalid value 'banana' for {var}{stands_for}: value was not a boolean")
                    .as_str()
            ),
            "{}",
            run.stderr
        );
        assert!(!state.exists() && !cache.exists(), "{var}=banana wrote nothing");
    };
    // The boolean flags' own variables, for the words.
    for var in ["HASHPYC_NO_CONFIG", "HASHPYC_CACHE_READ_ONLY"] {
        for value in ["false", "0", "1", "yes"] {
            compile(var, value).assert_code(0);
        }
        let run = compile(var, "banana");
        run.assert_code(2);
        assert!(
            run.stderr.starts_with(&format!("error: invalid value 'banana' for {var} (which stands for '--")),
            "{}",
            run.stderr
        );
    }

    for var in ["HASHPYC_NO_CACHE", "HASHPYC_NO_STATE"] {
        for (value, on) in [("false", false), ("0", false), ("1", true), ("yes", true), ("FALSE", false)] {
            let run = compile(var, value);
            run.assert_code(0);
            assert_eq!(has_files(&state), !on, "compile {var}={value}: the state directory\n{}", run.stderr);
            let cached = var == "HASHPYC_NO_STATE" || !on;
            assert_eq!(has_files(&cache), cached, "compile {var}={value}: the cache\n{}", run.stderr);
            // `check` probes the interpreter into the state directory too.
            let run = check(var, value);
            run.assert_code(0);
            assert_eq!(has_files(&state), !on, "check {var}={value}: the state directory\n{}", run.stderr);
        }
        refused(&compile(var, "banana"), var);
        refused(&check(var, "banana"), var);
    }

    for (value, on) in [("false", false), ("0", false), ("1", true), ("yes", true)] {
        let run = compile("HASHPYC_TRACE", value);
        run.assert_code(0);
        assert_eq!(run.stderr.contains("trace: "), on, "HASHPYC_TRACE={value}: {}", run.stderr);
        // Verifying compiles each file again in a fresh fork, which the trace counts.
        let run = tree
            .hashpyc()
            .env("HASHPYC_TRACE", "1")
            .env("HASHPYC_VERIFY", value)
            .args(["compile", "-f", "-j1", "--no-progress"])
            .python(py)
            .args(["m.py", "n.py"])
            .run();
        run.assert_code(0);
        let forks = harness::trace_number(&run.stderr, " fresh forks");
        assert_eq!(forks, if on { 2 } else { 0 }, "HASHPYC_VERIFY={value}: {}", run.stderr);
    }
    refused(&compile("HASHPYC_TRACE", "banana"), "HASHPYC_TRACE");
    refused(&compile("HASHPYC_VERIFY", "banana"), "HASHPYC_VERIFY");
}

// The variables that take a word (HASHPYC_ISOLATION: `fork` or `long-lived`;
// HASHPYC_DEFERRED: `fork`) refuse any other value, naming the variable, the value and the
// words (exit 2, nothing written); an empty value is unset. They took every other value,
// a typo such as `forks` included, as unset without a word.
#[test]
fn choice_variables_refuse_unknown_words() {
    let Some(py) = harness::any_python("config::choice_variables_refuse_unknown_words") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("n.py", "N = 2\n");
    let compile = |var: &str, value: &str| {
        let _ = std::fs::remove_dir_all(tree.path("__pycache__"));
        tree.hashpyc()
            .env("HASHPYC_TRACE", "1")
            .env(var, value)
            .args(["compile", "-j1", "--no-progress"])
            .python(py)
            .args(["m.py", "n.py"])
            .run()
    };
    let forks = |var: &str, value: &str| {
        let run = compile(var, value);
        run.assert_code(0);
        harness::trace_number(&run.stderr, " fresh forks")
    };
    // Their words do what the README says: a fresh fork per file, or none.
    assert_eq!(forks("HASHPYC_ISOLATION", "fork"), 2, "{}", py.label());
    assert_eq!(forks("HASHPYC_ISOLATION", "long-lived"), 0, "{}", py.label());
    forks("HASHPYC_DEFERRED", "fork");
    let default = forks("HASHPYC_ISOLATION", "");
    assert_eq!(default, if py.minor >= (3, 11) { 0 } else { 2 }, "{}", py.label());
    for (var, value, words) in [
        ("HASHPYC_ISOLATION", "forks", "'fork' or 'long-lived'"),
        ("HASHPYC_ISOLATION", "FORK", "'fork' or 'long-lived'"),
        ("HASHPYC_DEFERRED", "yes", "'fork'"),
    ] {
        let run = compile(var, value);
        run.assert_code(2);
        assert_eq!(
            run.stderr,
            format!("error: invalid value '{value}' for {var}: expected {words}\n"),
            "{var}={value}"
        );
        assert!(!tree.path("__pycache__").exists(), "{var}={value} wrote nothing");
    }
}

// A pycache prefix with a 3.7 target (3.7 has no `sys.pycache_prefix`), each setting named
// where it was written.
#[test]
fn pycache_prefix_for_37_names_both_settings() {
    let Some(py) = harness::python_or_skip((3, 7), "config::pycache_prefix_for_37_names_both_settings")
    else {
        return;
    };
    assert!(!py.cmd().args(["-c", "import sys; sys.pycache_prefix"]).output().unwrap().status.success());
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    tree.write("hashpyc.toml", format!("pycache-prefix = \"pp\"\npython = \"{}\"\n", py.path.display()));
    let run = tree.hashpyc().args(["compile", "m.py"]).run();
    run.assert_code(2);
    assert!(
        run.stderr
            .starts_with("error: `pycache-prefix` in `hashpyc.toml` line 1 needs Python 3.8 or newer; `"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("` (from `python` in `hashpyc.toml` line 2) is 3.7."), "{}", run.stderr);
    let run = tree
        .hashpyc()
        .env("HASHPYC_PYTHON", &py.path)
        .args(["check", "--no-config", "--pycache-prefix", "pp", "m.py"])
        .run();
    run.assert_code(2);
    assert!(run.stderr.starts_with("error: --pycache-prefix needs Python 3.8 or newer; `"), "{}", run.stderr);
    assert!(run.stderr.contains("` (from HASHPYC_PYTHON) is 3.7."), "{}", run.stderr);
}

// `legacy = true` with two interpreters (one `<source>c` per source holds one version):
// the error names the key with its file and line, as the interpreters are named where they
// were given, and the flag that undoes it; it named `legacy = true` generically, also when
// the layout came from `-b`. Nothing is written.
#[test]
fn legacy_with_two_interpreters_names_the_key() {
    let mut found = harness::pythons().values().filter(|p| p.minor >= (3, 7));
    let (Some(a), Some(b)) = (found.next(), found.next()) else {
        return harness::visible(
            "SKIPPED config::legacy_with_two_interpreters_names_the_key: fewer than two CPython 3.7+ versions",
        );
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let two = |run: harness::Hashpyc| run.arg("--python").arg(&a.path).arg("--python").arg(&b.path);
    let refused = |run: harness::Run| {
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(!tree.path("m.pyc").exists() && !tree.path("__pycache__").exists());
        run.stderr
    };
    let from_key = "a legacy layout (`legacy = true` in `hashpyc.toml` line 2) writes one `<source>c` per \
                    source, so it takes one interpreter; give one of them, or --no-legacy for this run\n";
    tree.write("hashpyc.toml", "# Layout\nlegacy = true\n");
    for command in [&["compile", "-n"][..], &["compile"], &["check"]] {
        let stderr = refused(two(tree.hashpyc().args(command)).arg("m.py").run());
        assert!(stderr.starts_with("error: `"), "{command:?}: {stderr}");
        assert!(stderr.ends_with(from_key), "{command:?}: {stderr}");
        assert!(stderr.contains(&format!("(CPython {}) and `", a.version)), "{command:?}: {stderr}");
    }
    // The interpreters from the file too: both keys named.
    tree.write(
        "hashpyc.toml",
        format!("# Layout\nlegacy = true\npython = [\"{}\", \"{}\"]\n", a.path.display(), b.path.display()),
    );
    let stderr = refused(tree.hashpyc().args(["compile", "-n", "m.py"]).run());
    assert!(stderr.starts_with("error: `hashpyc.toml` line 3: invalid value for `python`: `"), "{stderr}");
    assert!(stderr.ends_with(from_key), "{stderr}");
    // `--no-legacy` undoes the key, as the error says.
    tree.hashpyc().args(["compile", "-n", "--no-legacy", "m.py"]).run().assert_code(0);
    // `-b` on the command line is named as the flag.
    let stderr = refused(two(tree.hashpyc().args(["compile", "-n", "--no-config", "-b"])).arg("m.py").run());
    assert!(
        stderr.ends_with(
            "a legacy layout (`-b`/`--legacy`) writes one `<source>c` per source, so it takes one \
             interpreter; give one of them\n"
        ),
        "{stderr}"
    );
}

// `-b` with two levels: one `<source>c` per source cannot hold both, and the levels used
// to overwrite each other's pyc (`Compiled 1 file, 2 pycs` with one on disk; with
// `--hardlink-dupes`, a stray `.m.pyc.XXXXXX.lnk` beside the source after each run). It is
// refused like two interpreters, naming where the layout and the levels came from, and
// nothing is written.
#[test]
fn legacy_with_two_levels_names_where_each_came_from() {
    let Some(py) = harness::any_python("config::legacy_with_two_levels_names_where_each_came_from") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let refused = |run: harness::Run| {
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        let names: Vec<_> = std::fs::read_dir(tree.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| n == "m.py" || n == "hashpyc.toml"), "nothing written: {names:?}");
        run.stderr
    };
    let from_flags = "error: a legacy layout (`-b`/`--legacy`) writes one `<source>c` per source, so it takes \
                      one optimization level; `-o 0 -o 1` gives 2: give one of them\n";
    for command in [&["compile", "-n"][..], &["compile"], &["compile", "--hardlink-dupes"], &["check"]] {
        let run = tree.hashpyc().args(command).args(["--no-config", "-b", "-o", "1", "-o", "0"]).python(py);
        assert_eq!(refused(run.arg("m.py").run()), from_flags, "{command:?}");
    }
    tree.write("hashpyc.toml", "# Layout\nlegacy = true\noptimize = [0, 2]\n");
    let stderr = refused(tree.hashpyc().args(["compile", "m.py"]).python(py).run());
    assert_eq!(
        stderr,
        "error: a legacy layout (`legacy = true` in `hashpyc.toml` line 2) writes one `<source>c` per source, \
         so it takes one optimization level; `optimize` in `hashpyc.toml` line 3 gives 2: give one of them, \
         or --no-legacy for this run\n"
    );
    // One level is what the layout holds; `--no-legacy` undoes the key, as the error says.
    tree.hashpyc().args(["compile", "-q", "-o", "1", "m.py"]).python(py).run().assert_code(0);
    assert!(tree.path("m.pyc").is_file());
    std::fs::remove_file(tree.path("m.pyc")).unwrap();
    tree.hashpyc().args(["compile", "-q", "--no-legacy", "m.py"]).python(py).run().assert_code(0);
    assert!(!tree.path("m.pyc").exists());
}

// An anchored glob (`/pkg/`) is relative to the working directory on the command line and
// to the file's directory in the file, so a command-line pattern means the same with or
// without a configuration file (as ruff anchors them).
per_python!(anchored_excludes_keep_their_base, min = (3, 13), |py: &Python| {
    let tree = Tree::new();
    tree.write("top/pkg/a.py", "A = 1\n");
    tree.write("top/sub/pkg/a.py", "A = 2\n");
    tree.write("top/sub/x.py", "X = 1\n");
    tree.write("top/hashpyc.toml", "exclude = [\"/pkg/\"]\n");
    let would = |cwd: &str, args: &[&str]| -> BTreeSet<String> {
        let run = harness::Hashpyc::new(&tree.path(cwd)).args(["compile", "-n"]).python(py).args(args).run();
        run.assert_code(0);
        run.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("compile  "))
            .map(|l| l.split("  ").next().unwrap().to_string())
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // The file's glob is anchored at top/: nothing under top/sub matches it.
    assert_eq!(would("top/sub", &["."]), set(&["./pkg/a.py", "./x.py"]));
    assert_eq!(would("top", &["."]), set(&["./sub/pkg/a.py", "./sub/x.py"]));
    // A command-line glob is anchored at the working directory, file or no file.
    for config in [&[][..], &["--no-config"][..]] {
        let mut args = config.to_vec();
        args.extend(["--exclude", "/pkg/", "."]);
        assert_eq!(would("top/sub", &args), set(&["./x.py"]), "{config:?}");
        let mut args = config.to_vec();
        args.extend(["--exclude", "/pkg/", "sub"]);
        assert_eq!(would("top", &args), set(&["sub/pkg/a.py", "sub/x.py"]), "{config:?}");
    }
});

// The file's anchored globs (`/sub/docs/`) and `force-exclude` skip the same files however
// the file and the paths are named: found by discovery, named as `../pyproject.toml` by
// `--config` or `HASHPYC_CONFIG`, named through a symlinked directory (the shell's `$PWD`
// there), or with the paths given absolute through that symlink.
#[test]
fn excludes_hold_however_the_file_and_paths_are_named() {
    let test = "config::excludes_hold_however_the_file_and_paths_are_named";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("proj/sub/docs/d.py", "D = 1\n");
    tree.write("proj/sub/m.py", "M = 1\n");
    tree.write("proj/pyproject.toml", "[tool.hashpyc]\nexclude = [\"/sub/docs/\"]\n");
    std::os::unix::fs::symlink("proj", tree.path("lnk")).unwrap();
    let (lnk, lnk_config) = (tree.path("lnk"), tree.path("lnk/pyproject.toml"));
    let would = |cwd: &str, env: Option<&str>, args: &[&OsStr]| -> Vec<String> {
        let mut cmd = harness::Hashpyc::new(&tree.path(cwd)).args(["compile", "-n"]).python(py);
        if let Some(config) = env {
            cmd = cmd.env("HASHPYC_CONFIG", config);
        }
        let run = cmd.args(args).run();
        run.assert_code(0);
        let mut names: Vec<String> = run
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("compile  "))
            .map(|l| l.split("  ").next().unwrap().to_string())
            .collect();
        names.sort();
        names
    };
    let os = |s: &'static str| OsStr::new(s);
    assert_eq!(would("proj/sub", None, &[]), ["m.py"], "discovered");
    assert_eq!(would("proj/sub", None, &[os("--config"), os("../pyproject.toml")]), ["m.py"], "--config ..");
    assert_eq!(would("proj/sub", Some("../pyproject.toml"), &[]), ["m.py"], "HASHPYC_CONFIG=..");
    assert_eq!(
        would("lnk", None, &[os("--config"), lnk_config.as_os_str(), os("sub")]),
        ["sub/m.py"],
        "--config through the symlink"
    );
    let abs_sub = lnk.join("sub");
    assert_eq!(
        would("proj", None, &[abs_sub.as_os_str()]),
        [abs_sub.join("m.py").display().to_string()],
        "a path through the symlink"
    );
    // force-exclude skips a named file the globs cover, however named.
    let forced: &[&[&OsStr]] = &[
        &[os("--config"), os("../pyproject.toml"), os("docs/d.py"), os("m.py")],
        &[os("--config"), lnk_config.as_os_str(), os("docs/d.py"), os("m.py")],
    ];
    for args in forced {
        let mut args = args.to_vec();
        args.insert(0, os("--force-exclude"));
        assert_eq!(would("proj/sub", None, &args), ["m.py"], "{args:?}");
    }
    let abs_d = lnk.join("sub/docs/d.py");
    assert_eq!(would("proj", None, &[os("--force-exclude"), abs_d.as_os_str()]), Vec::<String>::new());
    // check agrees: the excluded file's missing pyc is no finding.
    harness::Hashpyc::new(&tree.path("proj/sub")).arg("compile").python(py).run().assert_code(0);
    let check = harness::Hashpyc::new(&tree.path("proj/sub"))
        .args(["check", "--config", "../pyproject.toml"])
        .python(py)
        .run();
    check.assert_code(0);
}

// `--force-exclude` selects of the files named exactly what the walk selects of them when
// a `!GLOB` would take back something below an excluded directory. It asked a named file's
// own match first, so `exclude = ["gen/", "!gen/keep.py"]` kept a named `gen/keep.py`
// (compiled, a SyntaxError; `check` found it missing) that the walk, never entering `gen/`,
// skips, as git does; now an excluded directory on the way down excludes everything below
// it, for `compile` and `check`, from the file's `exclude` and from `--exclude` flags.
#[test]
fn force_exclude_selects_named_files_as_the_walk_does() {
    let Some(py) = harness::any_python("config::force_exclude_selects_named_files_as_the_walk_does") else {
        return;
    };
    let tree = Tree::new();
    let files =
        ["gen/keep.py", "gen/drop.py", "gen/sub/s.py", "m.py", "a/fixtures/x.py", "q/gen/n.py", "q/o.py"];
    for f in files {
        tree.write(f, "X = 1\n");
    }
    let excludes: &[&[&str]] = &[
        &["gen/", "!gen/keep.py"],
        &["gen", "!gen/keep.py"],
        &["!gen/keep.py", "gen/"],
        &["fixtures/", "!a/fixtures/x.py"],
        &["q/", "!q/gen/"],
        // Taken back before the walk gets there: selected both ways.
        &["gen/*", "!gen/keep.py", "!gen/sub/"],
        &["*.py", "!m.py", "!n.py"],
    ];
    // The files a run names: `compile -n`'s `compile  PATH  (no pyc)` lines, `check`'s
    // `missing  PATH` lines (no pyc was written).
    let selected = |args: &[&str]| -> BTreeSet<String> {
        let compile = tree.hashpyc().args(["compile", "-n"]).python(py).args(args).run();
        compile.assert_code(0);
        let compiled: BTreeSet<String> = compile
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("compile  "))
            .map(|l| l.split("  ").next().unwrap().to_string())
            .collect();
        let check = tree.hashpyc().arg("check").python(py).args(args).run();
        let missing: BTreeSet<String> = check
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("missing"))
            .map(|l| l.trim_start().split(':').next().unwrap().to_string())
            .collect();
        check.assert_code(if missing.is_empty() { 0 } else { 1 });
        assert_eq!(compiled, missing, "compile and check select alike with {args:?}");
        compiled
    };
    for &globs in excludes {
        let quoted: Vec<String> = globs.iter().map(|g| format!("{g:?}")).collect();
        tree.write("hashpyc.toml", format!("exclude = [{}]\n", quoted.join(", ")));
        let walked = selected(&[]);
        let mut named = vec!["--force-exclude", "--"];
        named.extend(files);
        assert_eq!(selected(&named), walked, "named files with exclude = {globs:?}");
        // The same globs as flags, no file.
        let mut flags = vec!["--no-config"];
        for &g in globs {
            flags.extend(["--exclude", g]);
        }
        assert_eq!(selected(&flags), walked, "walked with --exclude {globs:?}");
        flags.extend(["--force-exclude", "--"]);
        flags.extend(files);
        assert_eq!(selected(&flags), walked, "named files with --exclude {globs:?}");
    }
    // The tester's case, by name: the walk never enters `gen/`.
    tree.write("hashpyc.toml", "exclude = [\"gen/\", \"!gen/keep.py\"]\n");
    let walked = selected(&[]);
    assert!(!walked.contains("gen/keep.py") && walked.contains("m.py"), "{walked:?}");
}

// A `pyproject.toml` on the way up that is not valid TOML and never mentions hashpyc belongs
// to another tool: discovery passes over it with a warning naming it and the reason, as uv
// does ("Failed to parse `pyproject.toml` during settings discovery"), and the file above
// applies (here `optimize = 2`: the pycs are where CPython looks for `.opt-2.pyc`). One that
// mentions hashpyc may hold the table: still an error, exit 2.
#[test]
fn malformed_pyproject_of_another_tool_is_passed_over() {
    let test = "config::malformed_pyproject_of_another_tool_is_passed_over";
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let tree = Tree::new();
    tree.write("proj/hashpyc.toml", format!("python = \"{}\"\noptimize = 2\n", py.path.display()));
    // What black's users write by mistake: `tomllib` refuses it too.
    let broken = "[tool.black\nline-length = 88\n";
    assert!(
        !py.cmd()
            .args(["-c", "import sys, tomllib; tomllib.loads(sys.argv[1])", broken])
            .output()
            .unwrap()
            .status
            .success()
    );
    tree.write("proj/app/pyproject.toml", broken);
    tree.write("proj/app/m.py", "M = 1\n");
    let app = tree.path("proj/app");
    let run = harness::Hashpyc::new(&app).args(["compile", "-v", "."]).run();
    run.assert_code(0);
    let warning = "warning: `pyproject.toml` line 1, column 12: invalid TOML: unclosed table, expected `]`; passed over (it does not mention hashpyc)\n";
    assert!(run.stderr.starts_with(warning), "{}", run.stderr);
    let top = tree.path("proj/hashpyc.toml");
    assert!(run.stderr.contains(&format!("configuration: {}\n", top.display())), "{}", run.stderr);
    assert_eq!(pycs_under(&app), expected_pycs(py, &[app.join("m.py")], &[2], None));
    // check agrees, and in JSON the warning is a notice on stdout, stderr empty.
    let run = harness::Hashpyc::new(&app).args(["check", "--format", "json", "."]).run();
    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    let first: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["type"], "notice", "{}", run.stdout);
    assert_eq!(first["message"].as_str().map(|m| format!("warning: {m}\n")).as_deref(), Some(warning));
    assert_eq!(summary(&run.stdout)["ok"], 1, "{}", run.stdout);
    // -qq silences the warning, as compile's other warnings.
    let run = harness::Hashpyc::new(&app).args(["check", "-qq", "."]).run();
    run.assert_code(0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // A broken file that mentions hashpyc may be meant for it: an error, as before.
    tree.write("proj/app/pyproject.toml", "[tool.hashpyc\noptimize = 1\n");
    let run = harness::Hashpyc::new(&app).args(["check", "."]).run();
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: `pyproject.toml` line 1, column 14: invalid TOML: unclosed table, expected `]`\n"
    );
}

// Another tool's `pyproject.toml` that is not UTF-8 (a Latin-1 comment) is not valid TOML:
// passed over with the warning, naming the line, as a malformed one is, and the file above
// applies; one that mentions hashpyc, and a `hashpyc.toml`, are an error naming the line
// (exit 2), as TOML's other errors are.
#[test]
fn a_pyproject_not_in_utf8_is_passed_over_as_invalid_toml() {
    let test = "config::a_pyproject_not_in_utf8_is_passed_over_as_invalid_toml";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("proj/hashpyc.toml", "optimize = 2\n");
    tree.write("proj/app/pyproject.toml", b"[tool.black]\n# auteur: Ren\xe9\nline-length = 88\n");
    tree.write("proj/app/m.py", "M = 1\n");
    let app = tree.path("proj/app");
    let run = harness::Hashpyc::new(&app).args(["compile", "-v"]).python(py).arg(".").run();
    run.assert_code(0);
    let warning = "warning: `pyproject.toml` line 2: invalid TOML: not UTF-8; passed over (it does not mention hashpyc)\n";
    assert!(run.stderr.starts_with(warning), "{}", run.stderr);
    let top = tree.path("proj/hashpyc.toml");
    assert!(run.stderr.contains(&format!("configuration: {}\n", top.display())), "{}", run.stderr);
    assert_eq!(pycs_under(&app), expected_pycs(py, &[app.join("m.py")], &[2], None));
    let run = harness::Hashpyc::new(&app).args(["check"]).python(py).arg(".").run();
    run.assert_code(0);
    assert!(run.stderr.starts_with(warning), "{}", run.stderr);
    // Meant for hashpyc, or named by --config: an error at the line.
    tree.write("proj/app/pyproject.toml", b"[tool.hashpyc]\n\n# Ren\xe9\noptimize = 1\n");
    let mentioned = "error: `pyproject.toml` line 3: invalid TOML: not UTF-8\n";
    let run = harness::Hashpyc::new(&app).args(["check"]).python(py).arg(".").run();
    run.assert_code(2);
    assert_eq!(run.stderr, mentioned);
    let run = harness::Hashpyc::new(&app).args(["check", "--config", "pyproject.toml"]).python(py).run();
    run.assert_code(2);
    assert_eq!(run.stderr, mentioned);
    std::fs::remove_file(tree.path("proj/app/pyproject.toml")).unwrap();
    tree.write("proj/app/hashpyc.toml", b"# \xe9\n");
    let run = harness::Hashpyc::new(&app).args(["compile"]).python(py).arg(".").run();
    run.assert_code(2);
    assert_eq!(run.stderr, "error: `hashpyc.toml` line 1: invalid TOML: not UTF-8\n");
}

// A configuration file found on the way up that is not a regular file (a FIFO, a link to
// `/dev/zero`) is an error naming it and the reason (exit 2), never read: not a run that
// hangs or reads until the memory is gone.
#[test]
fn a_discovered_file_that_is_not_regular_is_named() {
    let tree = Tree::new();
    tree.write("proj/hashpyc.toml", "optimize = 2\n");
    tree.write("proj/app/m.py", "M = 1\n");
    let app = tree.path("proj/app");
    let status = std::process::Command::new("mkfifo").arg(app.join("pyproject.toml")).status().unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/zero", app.join("hashpyc.toml")).unwrap();
    for name in ["hashpyc.toml", "pyproject.toml"] {
        for cmd in ["compile", "check"] {
            let run = harness::Hashpyc::new(&app)
                .args([cmd, "--python", "no-such-python3", "."])
                .bounded(1_500_000, 60)
                .run();
            run.assert_code(2);
            assert_eq!(
                run.stderr,
                format!("error: cannot read configuration file `{name}`: not a regular file\n"),
                "{cmd}"
            );
        }
        std::fs::remove_file(app.join(name)).unwrap();
    }
    // A link to nothing (a shared configuration not checked out) is named, not passed over
    // for the file above (`optimize = 2` applied silently).
    std::os::unix::fs::symlink("../../shared/hashpyc.toml", app.join("hashpyc.toml")).unwrap();
    for cmd in ["compile", "check"] {
        let run = harness::Hashpyc::new(&app).args([cmd, "--python", "no-such-python3", "."]).run();
        run.assert_code(2);
        assert_eq!(
            run.stderr,
            "error: configuration file `hashpyc.toml` is a symbolic link to `../../shared/hashpyc.toml`, which does not exist\n",
            "{cmd}"
        );
    }
}

// A file named by `--config` or `HASHPYC_CONFIG` was read whole, whatever it was:
// `--config /dev/zero` read until the kernel killed the run. At most 16 MiB is read now; a
// device that gives more is an error naming it (exit 2), and `/dev/null` is an empty
// configuration, as before.
#[test]
fn a_named_file_that_does_not_end_is_refused() {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let message = |by: &str| {
        format!(
            "error: cannot read configuration file `/dev/zero`{by}: a character device giving more than 16 MiB, \
             which no configuration file is\n"
        )
    };
    let check = ["check", "--config", "/dev/zero", "--python", "no-such-python3", "."];
    let compile = ["compile", "--python", "no-such-python3", "."];
    let runs = [
        (harness::Hashpyc::new(tree.root()).args(check), ""),
        (
            harness::Hashpyc::new(tree.root()).env("HASHPYC_CONFIG", "/dev/zero").args(compile),
            " (named by HASHPYC_CONFIG)",
        ),
    ];
    for (run, by) in runs {
        let run = run.bounded(1_500_000, 60).run();
        run.assert_code(2);
        assert_eq!(run.stderr, message(by));
    }
    let run = harness::Hashpyc::new(tree.root())
        .args(["check", "--config", "/dev/null", "--python", "no-such-python3", "."])
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("`no-such-python3` not found"), "{}", run.stderr);
}

// A directory named like a configuration file (or a link to one) in the working
// directory is passed over, as the README says: the file above applies.
#[test]
fn a_directory_named_like_a_configuration_file_is_passed_over() {
    let Some(py) = harness::any_python("config::a_directory_named_like_a_configuration_file_is_passed_over")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("proj/hashpyc.toml", "optimize = 2\n");
    tree.write("proj/app/m.py", "M = 1\n");
    std::fs::create_dir(tree.path("proj/elsewhere")).unwrap();
    let app = tree.path("proj/app");
    for name in [".hashpyc.toml", "hashpyc.toml", "pyproject.toml", "link"] {
        let made = if name == "link" {
            std::os::unix::fs::symlink("../elsewhere", app.join("pyproject.toml")).unwrap();
            app.join("pyproject.toml")
        } else {
            std::fs::create_dir(app.join(name)).unwrap();
            app.join(name)
        };
        for cmd in ["compile", "check"] {
            let run = harness::Hashpyc::new(&app).args([cmd, "-v", "m.py"]).python(py).run();
            run.assert_code(0);
            let used = format!("configuration: {}\n", tree.path("proj/hashpyc.toml").display());
            assert!(run.stderr.contains(&used), "{name} {cmd}: {}", run.stderr);
        }
        assert_eq!(harness::files_with_suffix(&app, ".pyc").len(), 1, "{name}");
        let pyc = harness::files_with_suffix(&app, ".pyc").remove(0);
        assert!(pyc.to_string_lossy().ends_with(".opt-2.pyc"), "{name}: {}", pyc.display());
        if name == "link" {
            std::fs::remove_file(&made).unwrap();
        } else {
            std::fs::remove_dir(&made).unwrap();
        }
    }
}

/// Whether `schema` accepts `v`, for the keywords `hashpyc.schema.json` uses (`type`,
/// `anyOf`, `oneOf`, `allOf`, `not`, `const`, `minimum`, `maximum`, `minLength`, `pattern`,
/// `minItems`, `items`, `properties`, `additionalProperties`, `required`); a keyword it
/// does not know fails the test rather than passing silently.
fn schema_accepts(schema: &serde_json::Value, v: &serde_json::Value) -> bool {
    use serde_json::Value;
    let map = schema.as_object().expect("a schema object");
    let mut ok = true;
    for (keyword, arg) in map {
        ok &= match keyword.as_str() {
            "description" | "title" | "examples" | "format" | "$schema" => true,
            "anyOf" => arg.as_array().unwrap().iter().any(|s| schema_accepts(s, v)),
            "allOf" => arg.as_array().unwrap().iter().all(|s| schema_accepts(s, v)),
            "not" => !schema_accepts(arg, v),
            "oneOf" => arg.as_array().unwrap().iter().filter(|s| schema_accepts(s, v)).count() == 1,
            "const" => arg == v,
            "type" => {
                let types: Vec<&str> = match arg {
                    Value::String(t) => vec![t.as_str()],
                    other => other.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect(),
                };
                types.iter().any(|t| match *t {
                    "string" => v.is_string(),
                    "integer" => v.is_i64() || v.is_u64(),
                    "number" => v.is_number(),
                    "boolean" => v.is_boolean(),
                    "array" => v.is_array(),
                    "object" => v.is_object(),
                    other => panic!("schema type {other}"),
                })
            }
            "minimum" => v.as_f64().is_none_or(|n| n >= arg.as_f64().unwrap()),
            "maximum" => v.as_f64().is_none_or(|n| n <= arg.as_f64().unwrap()),
            "minLength" => v.as_str().is_none_or(|s| s.chars().count() as u64 >= arg.as_u64().unwrap()),
            "pattern" => {
                v.as_str().is_none_or(|s| regex::Regex::new(arg.as_str().unwrap()).unwrap().is_match(s))
            }
            "minItems" => v.as_array().is_none_or(|a| a.len() as u64 >= arg.as_u64().unwrap()),
            "properties" => v
                .as_object()
                .is_none_or(|o| o.iter().all(|(k, x)| arg.get(k).is_none_or(|s| schema_accepts(s, x)))),
            "additionalProperties" => v.as_object().is_none_or(|o| {
                arg.as_bool() != Some(false) || o.keys().all(|k| map["properties"].get(k).is_some())
            }),
            "required" => v
                .as_object()
                .is_none_or(|o| arg.as_array().unwrap().iter().all(|k| o.contains_key(k.as_str().unwrap()))),
            "items" => v.as_array().is_none_or(|a| a.iter().all(|i| schema_accepts(arg, i))),
            other => panic!("schema keyword {other} not understood by this test"),
        };
    }
    ok
}

// The shipped schema agrees with what the binary's parser accepts, key by key, for values a
// first configuration writes by mistake: empty strings and lists, wrong types, numbers out
// of range. (An editor that flags nothing while hashpyc refuses the file, or the reverse,
// sends the user back and forth.) Strings with a syntax of their own (a size, a glob, a
// regular expression) are checked by the parser alone; the schema only gives examples.
// Then every pair of keys, each with a value it takes alone, as a whole table: the pairs
// the parser refuses (`legacy` with `pycache-prefix`…) the schema refuses too.
#[test]
fn schema_agrees_with_the_parser() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hashpyc.schema.json")).unwrap(),
    )
    .unwrap();
    let candidates = [
        "\"\"",
        "\" \"",
        "\"x\"",
        "\"checked-hash\"",
        "\"1GiB\"",
        "0",
        "-1",
        "2",
        "3",
        "1024",
        "1025",
        "86401",
        "1.5",
        "true",
        "[]",
        "[\"\"]",
        "[\"x\"]",
        "[0]",
        "[5]",
        "[true]",
    ];
    let mut disagree = Vec::new();
    for (key, key_schema) in schema["properties"].as_object().unwrap() {
        for raw in candidates {
            if key == "cache-max-size" && raw.starts_with('"') && !matches!(raw, "\"\"" | "\"1GiB\"") {
                continue; // the size syntax (parse_size's) is not in the schema
            }
            let text = format!("{key} = {raw}\n");
            let parsed = hashpyc::config::parse(&text, false, "hashpyc.toml");
            let value: toml::Value =
                toml::from_str::<toml::Table>(&text).unwrap().remove(key.as_str()).unwrap();
            let json = serde_json::to_value(&value).unwrap();
            let by_schema = schema_accepts(key_schema, &json);
            if parsed.is_ok() != by_schema {
                disagree.push(format!("{text:?}: parser {}, schema {by_schema}", parsed.is_ok()));
            }
        }
    }
    assert!(disagree.is_empty(), "hashpyc.schema.json and the parser disagree:\n{}", disagree.join("\n"));
    // Each key's first candidate that both take alone (`true` for a boolean).
    let keys: Vec<(&String, &str)> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(|key| {
            let raw = ["true", "\"x\"", "\"checked-hash\"", "\"1GiB\"", "1", "[\"x\"]", "[0]"]
                .into_iter()
                .find(|raw| {
                    hashpyc::config::parse(&format!("{key} = {raw}\n"), false, "hashpyc.toml").is_ok()
                })
                .unwrap_or_else(|| panic!("no candidate for `{key}`"));
            (key, raw)
        })
        .collect();
    let mut refused = Vec::new();
    for (i, (a, va)) in keys.iter().enumerate() {
        for (b, vb) in &keys[i + 1..] {
            let text = format!("{a} = {va}\n{b} = {vb}\n");
            let parsed = hashpyc::config::parse(&text, false, "hashpyc.toml");
            let json = serde_json::to_value(toml::from_str::<toml::Table>(&text).unwrap()).unwrap();
            let by_schema = schema_accepts(&schema, &json);
            if parsed.is_ok() != by_schema {
                disagree.push(format!("{text:?}: parser {}, schema {by_schema}", parsed.is_ok()));
            }
            if parsed.is_err() {
                let mut pair = [a.as_str(), b.as_str()];
                pair.sort();
                refused.push(pair.join("+"));
            }
        }
    }
    // A boolean of a pair set to false goes with the other key, in both.
    for text in ["legacy = false\npycache-prefix = \"x\"\n", "no-recursion = false\nmax-depth = 1\n"] {
        let json = serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap();
        let parsed = hashpyc::config::parse(text, false, "hashpyc.toml");
        assert!(parsed.is_ok() && schema_accepts(&schema, &json), "{text:?}: {parsed:?}");
    }
    // The pairs the flags refuse are among those found (the test sees them).
    for pair in
        ["legacy+pycache-prefix", "ddir+strip-prefix", "ddir+prepend-prefix", "max-depth+no-recursion"]
    {
        assert!(refused.iter().any(|r| r == pair), "`{pair}` not refused: {refused:?}");
    }
    assert!(disagree.is_empty(), "hashpyc.schema.json and the parser disagree:\n{}", disagree.join("\n"));
}

// A key named like a flag of `compile` or `check` that has no key (a negation such as
// `no-legacy`, or `--format`, which describes one run) is refused with a hint naming that
// flag, never "did you mean `legacy`" (the opposite) or nothing; the flags come from the CLI
// definition, the keys from the schema.
#[test]
fn keys_named_like_flags_get_a_hint() {
    use clap::CommandFactory;
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("hashpyc.schema.json")).unwrap(),
    )
    .unwrap();
    let keys = schema["properties"].as_object().unwrap();
    let cli = hashpyc::cli::Cli::command();
    let mut flags = BTreeSet::new();
    for sub in ["compile", "check"] {
        let cmd = cli.find_subcommand(sub).unwrap();
        flags.extend(cmd.get_arguments().filter_map(|a| a.get_long()).map(str::to_string));
    }
    assert!(flags.contains("no-legacy") && flags.contains("format"), "{flags:?}");
    let mut wrong = Vec::new();
    for flag in
        flags.iter().filter(|f| !keys.contains_key(f.as_str()) && !matches!(f.as_str(), "help" | "version"))
    {
        let err = match hashpyc::config::parse(&format!("{flag} = true\n"), false, "hashpyc.toml") {
            Ok(_) => panic!("`{flag}` accepted as a key"),
            Err(e) => e.to_string(),
        };
        let names_flag = err.contains(&format!("`--{flag}`"));
        // A suggested key is one that exists.
        let suggested =
            err.split("did you mean `").nth(1).map(|s| s.split([' ', '`']).next().unwrap().to_string());
        if !names_flag || suggested.is_some_and(|k| !keys.contains_key(&k)) {
            wrong.push(err);
        }
    }
    assert!(wrong.is_empty(), "keys named like flags:\n{}", wrong.join("\n"));
}

/// Under `--force-exclude`, a path named with `..` is matched as the same file named without
/// it: `..` resolved as the kernel does, what follows the last `..` as spelled, links kept.
/// `packages/../lnk/bad.py` (`lnk` → `packages/p03`, excluded) was matched with `lnk`
/// resolved and excluded, while `lnk/bad.py` is matched as spelled and compiled; and
/// `lnk/../p03/bad.py` is `packages/p03/bad.py`, excluded.
#[test]
fn force_exclude_matches_a_path_with_dotdot_as_without() {
    let Some(py) = harness::any_python("config::force_exclude_matches_a_path_with_dotdot_as_without") else {
        return;
    };
    let tree = Tree::new();
    tree.write("pyproject.toml", "[tool.hashpyc]\nexclude = [\"/packages/p03/\"]\n");
    tree.write("packages/p03/bad.py", "def (:\n");
    std::os::unix::fs::symlink("packages/p03", tree.path("lnk")).unwrap();
    let compile = |path: &str| tree.hashpyc().args(["compile", "--force-exclude"]).python(py).arg(path).run();
    for path in ["lnk/bad.py", "packages/../lnk/bad.py", "./packages/../lnk/bad.py"] {
        let run = compile(path);
        run.assert_code(1);
        assert!(run.stderr.contains(&format!("{path}:1:5: SyntaxError")), "{path}: {}", run.stderr);
    }
    for path in ["packages/p03/bad.py", "lnk/../p03/bad.py", "packages/p03/../p03/bad.py"] {
        let run = compile(path);
        run.assert_code(0);
        assert!(run.stderr.contains("1 named path excluded by --force-exclude"), "{path}: {}", run.stderr);
    }
    assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
}

/// An `exclude` glob matches a path spelled through a symlink and `..` as it matches the
/// directory it leads to: `<link>/../libs`, where `<link>` (outside the tree) is `svc`,
/// is `libs`; `..` was resolved by text first (the link's own parent), so the glob was
/// matched against another directory and `libs/z.py` compiled.
#[test]
fn exclude_resolves_symlinks_before_dotdot() {
    let Some(py) = harness::any_python("config::exclude_resolves_symlinks_before_dotdot") else { return };
    let tree = Tree::new();
    tree.write("pyproject.toml", "[tool.hashpyc]\nexclude = [\"/libs/z.py\"]\n");
    tree.write("libs/z.py", "z = 1\n");
    tree.write("libs/keep.py", "k = 1\n");
    tree.write("svc/s.py", "s = 1\n");
    let outside = Tree::new();
    std::os::unix::fs::symlink(tree.path("svc"), outside.path("link")).unwrap();
    let through = format!("{}/link/../libs", outside.root().display());
    assert!(Path::new(&through).join("z.py").is_file());
    for (spelled, want) in [("libs", "libs/keep.py"), (through.as_str(), "link/../libs/keep.py")] {
        let run = tree.hashpyc().args(["compile", "-n"]).python(py).arg(spelled).run();
        run.assert_code(0);
        let listed: Vec<&str> =
            run.stdout.lines().chain(run.stderr.lines()).filter(|l| l.contains(".py")).collect();
        assert!(listed.len() == 1 && listed[0].contains(want), "{spelled}: {listed:?}");
    }
}

// A configuration's `ddir` with the pre-commit hook: `ddir` is compileall's `-d`, which
// replaces the directory of each path given, so the hook's named `pkg/__init__.py`
// embedded `/app/__init__.py` where a bare run embeds `/app/pkg/__init__.py`, silently,
// each run rewriting the other's pycs (the README said a bare run and the hook find each
// other's pycs fresh). A warning now says so and names the `prepend-prefix` that embeds
// the same path both ways; none for `-d` on the command line (compileall's own use) nor
// for a file named without a directory; the embedded paths are CPython's `co_filename`.
#[test]
fn ddir_from_a_file_with_named_files_is_said() {
    let Some(py) = harness::any_python("config::ddir_from_a_file_with_named_files_is_said") else { return };
    let tree = Tree::new();
    tree.write("pkg/__init__.py", "");
    tree.write("top.py", "");
    tree.write("pyproject.toml", "[tool.hashpyc]\nddir = \"/app\"\n");
    let filename = |rel: &str| {
        let code = format!(
            "import marshal, importlib.util as u; print(marshal.loads(open(u.cache_from_source('{rel}'), 'rb').read()[16:]).co_filename)"
        );
        py.run(&["-c", &code], tree.root()).trim().to_string()
    };
    let warning = "warning: `ddir = \"/app\"` in `pyproject.toml` line 2 embeds `/app/__init__.py` for the named \
                   file `pkg/__init__.py` (as compileall's -d, the directory of each path given), where a walk of \
                   this directory embeds `/app/pkg/__init__.py`: files named by a hook and a bare `hashpyc compile` \
                   rewrite each other's pycs. `prepend-prefix = \"/app\"` embeds the second both ways\n";
    let hook = tree.hashpyc().args(["compile", "-q", "--force-exclude", "pkg/__init__.py"]).python(py).run();
    hook.assert_code(0);
    assert_eq!(hook.stderr, warning);
    assert_eq!(filename("pkg/__init__.py"), "/app/__init__.py");
    let check = tree.hashpyc().args(["check", "--format", "json", "pkg/__init__.py"]).python(py).run();
    let notices: Vec<serde_json::Value> = harness::notices(&check.stdout);
    assert_eq!(notices.len(), 1, "{}", check.stdout);
    assert_eq!(notices[0]["message"], warning.trim_start_matches("warning: ").trim_end(), "{}", check.stdout);
    // A bare run walks: no warning, the path below the tree.
    let bare = tree.hashpyc().args(["compile", "-q"]).python(py).run();
    bare.assert_code(0);
    assert_eq!(bare.stderr, "");
    assert_eq!(filename("pkg/__init__.py"), "/app/pkg/__init__.py");
    // Named without a directory, or `-d` given on the command line: as compileall, unsaid.
    for args in [&["top.py"][..], &["--ddir", "/srv", "pkg/__init__.py"]] {
        let run = tree.hashpyc().args(["compile", "-q"]).args(args).python(py).run();
        run.assert_code(0);
        assert_eq!(run.stderr, "", "{args:?}");
    }
    assert_eq!(filename("pkg/__init__.py"), "/srv/__init__.py");
    // What the warning advises: the hook and a bare run embed one path.
    tree.write("pyproject.toml", "[tool.hashpyc]\nprepend-prefix = \"/app\"\n");
    let hook = tree.hashpyc().args(["compile", "-q", "--force-exclude", "pkg/__init__.py"]).python(py).run();
    hook.assert_code(0);
    assert_eq!(hook.stderr, "");
    assert_eq!(filename("pkg/__init__.py"), "/app/pkg/__init__.py");
    tree.hashpyc().args(["check"]).python(py).run().assert_code(0);
}

// A configuration file names the interpreter to run: one that another user left above the
// working directory (`/tmp/.hashpyc.toml` for every run under `/tmp`), or in a directory
// anyone can write to, is passed over with a warning; one in the working directory itself,
// one root owns and one named by `--config` are used.
#[test]
fn a_configuration_another_user_left_above_is_passed_over() {
    let test = "config::a_configuration_another_user_left_above_is_passed_over";
    let Some(py) = harness::any_python(test) else { return };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        harness::visible(&format!("SKIPPED {test}: needs root to give a file to another user"));
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tree = Tree::new();
    let marker = tree.path("ran");
    let launcher = tree.write(
        "launcher",
        format!("#!/bin/sh\necho ran >> '{}'\nexec '{}' \"$@\"\n", marker.display(), py.path.display()),
    );
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = tree.write("top/.hashpyc.toml", format!("python = [\"{}\"]\n", launcher.display()));
    tree.write("top/proj/m.py", "x = 1\n");
    let chown = |uid: u32| std::os::unix::fs::chown(&config, Some(uid), None).unwrap();
    let chmod = |mode: u32| {
        std::fs::set_permissions(tree.path("top"), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let check = |dir: &str, args: &[&str]| {
        let _ = std::fs::remove_file(&marker);
        // No state directory: a remembered probe would not start the launcher again.
        let run =
            harness::Hashpyc::new(&tree.path(dir)).env("HASHPYC_NO_STATE", "1").arg("check").args(args).run();
        (run, marker.exists())
    };
    chown(4242);
    chmod(0o755);
    let (run, ran) = check("top/proj", &[]);
    assert!(!ran, "the launcher ran: {}", run.stderr);
    let said = "belongs to uid 4242, above the working directory; passed over, since a configuration names the \
                interpreter hashpyc runs (give it with --config to use it)";
    assert!(run.stderr.contains(&format!("warning: `{}` {said}", config.display())), "{}", run.stderr);
    // Above it in a git checkout (a container job as root on the runner's workspace, `cd
    // src` first): the project's own file, used.
    std::fs::create_dir(tree.path("top/.git")).unwrap();
    let (run, ran) = check("top/proj", &[]);
    assert!(ran, "{}", run.stderr);
    assert!(!run.stderr.contains("passed over"), "{}", run.stderr);
    std::fs::remove_dir(tree.path("top/.git")).unwrap();
    // In the working directory: used.
    let (run, ran) = check("top", &[]);
    assert!(ran, "{}", run.stderr);
    assert!(!run.stderr.contains("passed over"), "{}", run.stderr);
    // ... unless anyone can write to that directory, a `.git` there or not.
    chmod(0o1777);
    std::fs::create_dir(tree.path("top/.git")).unwrap();
    let (run, ran) = check("top", &[]);
    assert!(!ran, "{}", run.stderr);
    assert!(run.stderr.contains("in a directory anyone can write to; passed over"), "{}", run.stderr);
    std::fs::remove_dir(tree.path("top/.git")).unwrap();
    // Named: used, wherever it is.
    let (run, ran) = check("top/proj", &["--config", "../.hashpyc.toml"]);
    assert!(ran, "{}", run.stderr);
    // Root's own, or the user's own: used.
    chown(0);
    let (run, ran) = check("top/proj", &[]);
    assert!(ran, "{}", run.stderr);
    assert!(!run.stderr.contains("passed over"), "{}", run.stderr);
    chmod(0o755);
}

// A bare run (no path named) from a directory the file's `exclude` covers walked it: from
// `tests/`, `exclude = ["/tests/"]` let `compile` compile `t.py` and `check` call its pyc
// missing, although a run from the top skips `tests/` and the README promises that a run
// from a subdirectory selects what a run from the top does below it (only a directory
// named, even `.`, is walked anyway); under `force-exclude = true` the implied `.` was
// counted as "1 named path excluded by --force-exclude", no path or flag being given. Now
// the implied directory follows the rules a run from the top applies to it (`exclude`,
// `skip-hidden`, below too), and the empty selection says which rule, set where: `compile`
// warns (exit 0), `check` fails (exit 1), as for any empty selection; `.` named still walks.
#[test]
fn a_bare_run_in_an_excluded_directory_selects_nothing() {
    let test = "config::a_bare_run_in_an_excluded_directory_selects_nothing";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("pyproject.toml", "[tool.hashpyc]\nexclude = [\"/tests/\"]\n");
    tree.write("src/pkg/__init__.py", "");
    tree.write("tests/t.py", "T = 1\n");
    tree.write("tests/unit/u.py", "U = 1\n");
    tree.write(".tools/x.py", "X = 1\n");
    let run = |cwd: &str, args: &[&str]| harness::Hashpyc::new(&tree.path(cwd)).args(args).python(py).run();
    let listed = |r: &harness::Run| -> Vec<String> {
        r.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("compile  "))
            .map(|l| l.split("  ").next().unwrap().into())
            .collect()
    };
    let top = run(".", &["compile", "-n"]);
    top.assert_code(0);
    assert_eq!(listed(&top), [".tools/x.py", "src/pkg/__init__.py"], "{}", top.stderr);
    let rule = "`exclude = [\"/tests/\"]` in `";
    for cwd in ["tests", "tests/unit"] {
        let compile = run(cwd, &["compile", "-n"]);
        compile.assert_code(0);
        assert!(listed(&compile).is_empty(), "{cwd}: {}", compile.stdout);
        assert!(
            compile.stderr.contains(
                "warning: no Python sources to compile under `.` (the working directory is in `tests` under `"
            ),
            "{cwd}: {}",
            compile.stderr
        );
        assert!(
            compile.stderr.contains(rule) && compile.stderr.contains("pyproject.toml` line 2 excludes"),
            "{}",
            compile.stderr
        );
        assert!(
            compile.stderr.contains("name it (`hashpyc compile .`) to compile it anyway"),
            "{}",
            compile.stderr
        );
        let check = run(cwd, &["check"]);
        check.assert_code(1);
        assert!(check.stdout.is_empty(), "{cwd}: {}", check.stdout);
        assert!(
            check
                .stderr
                .contains("error: no Python sources to check under `.` (the working directory is in `tests`"),
            "{}",
            check.stderr
        );
    }
    // Named, `.` is walked as before.
    let named = run("tests", &["compile", "-n", "."]);
    named.assert_code(0);
    assert_eq!(listed(&named), ["./t.py", "./unit/u.py"]);
    // force-exclude: nothing was named, so nothing is counted as a named path excluded.
    tree.write("pyproject.toml", "[tool.hashpyc]\nexclude = [\"/tests/\"]\nforce-exclude = true\n");
    let check = run("tests", &["check"]);
    check.assert_code(1);
    assert!(!check.stderr.contains("named path"), "{}", check.stderr);
    assert!(check.stderr.contains(rule), "{}", check.stderr);
    // skip-hidden, as the walk from the top skips `.tools/`.
    tree.write("pyproject.toml", "[tool.hashpyc]\nskip-hidden = true\n");
    let hidden = run(".tools", &["compile", "-n"]);
    hidden.assert_code(0);
    assert!(listed(&hidden).is_empty(), "{}", hidden.stdout);
    assert!(hidden.stderr.contains("which `skip-hidden = true` in `"), "{}", hidden.stderr);
    assert_eq!(listed(&run(".tools", &["compile", "-n", "--hidden"])), ["x.py"]);
}

// Warnings and summaries named a flag for a value from the file: `strip-prefix` warned as
// `--strip-prefix '/some/dir' does not match…`, `max-depth = 0` as `--max-depth 0 takes no
// file…`, `force-exclude = true` was counted `excluded by --force-exclude`, and a `cache`
// that is a file was a warning naming no key (`compile -n` said nothing; `cache stats` gave
// it with a `Caused by:` line). Each now names the key, its file and line; the dry run warns
// as the run does, and `cache stats` says it on one line.
#[test]
fn values_from_the_file_are_named_where_they_were_set() {
    let test = "config::values_from_the_file_are_named_where_they_were_set";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("pkg/m.py", "M = 1\n");
    let run = |file: &str, args: &[&str]| {
        tree.write("hashpyc.toml", file);
        tree.hashpyc().args(args).python(py).run()
    };
    let r = run("strip-prefix = \"/some/dir\"\n", &["compile", "-n"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("warning: `strip-prefix = \"/some/dir\"` in `hashpyc.toml` line 1 does not match the start of 1 source path"),
        "{}",
        r.stderr
    );
    let r = run("max-depth = 0\n", &["check"]);
    r.assert_code(1);
    assert!(
        r.stderr.contains("(`max-depth = 0` in `hashpyc.toml` line 1 takes no file inside a directory; `max-depth = 1` takes its own files"),
        "{}",
        r.stderr
    );
    let r = run("\nforce-exclude = true\nexclude = [\"/pkg/\"]\n", &["check", "pkg/m.py"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("1 named path excluded by `force-exclude = true` in `hashpyc.toml` line 2"),
        "{}",
        r.stderr
    );
    // The rules that skip files: the summary named their flags, never given.
    tree.write("pkg/.h.py", "H = 1\n");
    tree.write("pkg/ign.py", "I = 1\n");
    tree.write("pkg/.ignore", "ign.py\n");
    tree.write("out/o.py", "O = 1\n");
    std::os::unix::fs::symlink("../out/o.py", tree.path("pkg/l.py")).unwrap();
    let rules =
        "respect-gitignore = true\nskip-hidden = true\nlimit-symlinks = \"pkg\"\nexclude-regex = \"nope\"\n";
    let r = run(rules, &["check", "pkg"]);
    let both = format!("{}{}", r.stdout, r.stderr);
    for want in [
        "1 file by `respect-gitignore = true` in `hashpyc.toml` line 1",
        "1 file by `skip-hidden = true` in `hashpyc.toml` line 2",
        "1 file by `limit-symlinks = \"pkg\"` in `hashpyc.toml` line 3",
    ] {
        assert!(both.contains(want), "{want}: {both}");
    }
    assert!(!both.contains("by --"), "{both}");
    tree.write("pkg/nope.py", "N = 1\n");
    let r = run(rules, &["check", "pkg/nope.py"]);
    let both = format!("{}{}", r.stdout, r.stderr);
    assert!(
        both.contains("1 named path excluded by `exclude-regex = \"nope\"` in `hashpyc.toml` line 4"),
        "{both}"
    );
    let warning = "warning: cannot use `";
    let r = run("cache = \"hashpyc.toml\"\n", &["compile", "-n"]);
    r.assert_code(0);
    assert!(r.stderr.contains(warning), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "hashpyc.toml` as the bytecode cache: not a directory (set by `cache` in `hashpyc.toml` line 1); the run would compile without it"
        ),
        "{}",
        r.stderr
    );
    let r = run("cache = \"hashpyc.toml\"\n", &["compile"]);
    r.assert_code(0);
    assert!(
        r.stderr.contains("as the bytecode cache: not a directory (set by `cache` in `hashpyc.toml` line 1); compiling without it"),
        "{}",
        r.stderr
    );
    // The cache commands name where the directory was set too, as compile does.
    for command in ["stats", "prune", "clean"] {
        let run = tree.hashpyc().args(["cache", command]).run();
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("as the bytecode cache: not a directory (set by `cache` in `hashpyc.toml` line 1)"),
            "{command}: {}",
            run.stderr
        );
    }
    let run = tree.hashpyc().env("HASHPYC_CACHE", "hashpyc.toml").args(["cache", "stats"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("as the bytecode cache: not a directory (set by HASHPYC_CACHE)"),
        "{}",
        run.stderr
    );
    let run = tree.hashpyc().args(["cache", "stats", "--cache", "hashpyc.toml"]).run();
    run.assert_code(2);
    assert!(!run.stderr.contains("set by"), "{}", run.stderr);
}

// Keys a uv user writes got no hint or the wrong one: `cache-dir` (uv's) was asked "did you
// mean `cache-url`?", `cache-token` "did you mean `cache`?", `state-dir` nothing. Each now
// points to where that setting is: `cache`, HASHPYC_CACHE_TOKEN, HASHPYC_STATE_DIR.
#[test]
fn keys_of_uv_get_a_hint() {
    for (key, hint) in [
        ("cache-dir", "(did you mean `cache`? `cache-dir` is uv's name"),
        ("cache-token", "bearer token comes from the environment, HASHPYC_CACHE_TOKEN"),
        ("state-dir", "is set in the environment, HASHPYC_STATE_DIR, not in the file"),
    ] {
        let err = bad("hashpyc.toml", &format!("{key} = \"x\"\n"), &["check"]);
        assert!(err.starts_with(&format!("error: `hashpyc.toml` line 1: unknown key `{key}`")), "{err}");
        assert!(err.contains(hint), "{err}");
        assert!(!err.contains("cache-url"), "{err}");
    }
}

// Keys a ruff user writes got no hint: `extend-exclude` and `target-version` were unknown
// keys with no pointer (helper report), while uv's `cache-dir` had one. Each now names
// hashpyc's key, `exclude` and `python`; ruff's `extend-include` gets `include`'s hint.
#[test]
fn keys_of_ruff_get_a_hint() {
    for (key, hint) in [
        ("extend-exclude", "(did you mean `exclude`? `extend-exclude` is ruff's name"),
        ("target-version", "(did you mean `python`? `target-version` is ruff's name"),
        ("extend-include", "hashpyc has no `include`"),
    ] {
        let err = bad("hashpyc.toml", &format!("{key} = \"x\"\n"), &["check"]);
        assert!(err.starts_with(&format!("error: `hashpyc.toml` line 1: unknown key `{key}`")), "{err}");
        assert!(err.contains(hint), "{err}");
    }
}

// `python = "312"`, `"cpython3.12"`, `"cpython@3.12"` (versions as uv takes them) were looked
// up as names on PATH ("Python interpreter `312` not found on PATH"), a range (`>=3.12`)
// too, and `"3.12 "` or `"  "` as interpreters of that name. The spellings of one version
// now find it, in the file, `--python` and HASHPYC_PYTHON; a range, a download key of uv's
// and whitespace around a name are errors saying so, at the key or the flag (exit 2).
#[test]
fn interpreter_requests_as_uv_takes_them() {
    let test = "config::interpreter_requests_as_uv_takes_them";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let (major, minor) = py.minor;
    std::fs::create_dir(tree.path("bin")).unwrap();
    std::os::unix::fs::symlink(&py.path, tree.path(format!("bin/python{major}.{minor}"))).unwrap();
    let path = tree.path("bin");
    let found = format!("for CPython {}", py.version);
    for spelled in [
        format!("{major}{minor}"),
        format!("cpython{major}.{minor}"),
        format!("cpython@{major}.{minor}"),
        format!("cpython-{major}.{minor}"),
        format!("cp{major}{minor}"),
    ] {
        tree.write("hashpyc.toml", format!("python = \"{spelled}\"\n"));
        let r = tree.hashpyc().env("PATH", &path).args(["compile", "-n"]).run();
        r.assert_code(0);
        assert!(r.stderr.contains(&found), "{spelled}: {}", r.stderr);
        let r = tree
            .hashpyc()
            .env("PATH", &path)
            .args(["compile", "-n", "--no-config", "--python", &spelled])
            .run();
        r.assert_code(0);
        assert!(r.stderr.contains(&found), "--python {spelled}: {}", r.stderr);
    }
    for (spelled, reason) in [
        (">=3.12", "`>=3.12` is a version range, which hashpyc does not take"),
        ("cpython>=3.12,<3.13", "is a version range"),
        ("3.12 ", "`3.12 ` has whitespace around it, which no interpreter's name has: write `3.12`"),
        ("  ", "an interpreter name of only whitespace"),
        ("cpython-3.12.3-linux-x86_64-gnu", "is the key of one of uv's downloads"),
    ] {
        tree.write("hashpyc.toml", format!("\npython = \"{spelled}\"\n"));
        let r = tree.hashpyc().env("PATH", &path).args(["check"]).run();
        r.assert_code(2);
        let at = "error: `hashpyc.toml` line 2: invalid value for `python` in the top level: ";
        assert!(r.stderr.starts_with(at) && r.stderr.contains(reason), "{spelled}: {}", r.stderr);
        let r = tree.hashpyc().env("PATH", &path).args(["check", "--no-config", "--python", spelled]).run();
        r.assert_code(2);
        assert!(
            r.stderr.contains("for '--python <PATH|VERSION>'") && r.stderr.contains(reason),
            "{}",
            r.stderr
        );
        let r = tree
            .hashpyc()
            .env("PATH", &path)
            .env("HASHPYC_PYTHON", spelled)
            .args(["check", "--no-config"])
            .run();
        r.assert_code(2);
        assert!(r.stderr.contains("for HASHPYC_PYTHON") && r.stderr.contains(reason), "{}", r.stderr);
    }
}

// uv's debug-build requests, `3.14d`, `3.14+debug`, `cpython-3.14+debug`, were looked up as
// names on PATH ("Python interpreter `3.14d` not found on PATH") although `python3.14d` was
// there. They now find `python3.14d` on PATH, as `3.13t` finds `python3.13t`, from the
// flag, HASHPYC_PYTHON and the `python` key alike, and never a plain `python3.14`.
#[test]
fn debug_build_requests_find_their_interpreter() {
    let test = "config::debug_build_requests_find_their_interpreter";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let (major, minor) = py.minor;
    std::fs::create_dir_all(tree.path("bin/d")).unwrap();
    std::fs::create_dir_all(tree.path("bin/plain")).unwrap();
    // A debug build's name; its pycs are the release build's, so the interpreter found
    // harness's serves.
    let debug = tree.path(format!("bin/d/python{major}.{minor}d"));
    std::os::unix::fs::symlink(&py.path, &debug).unwrap();
    std::os::unix::fs::symlink(&py.path, tree.path(format!("bin/plain/python{major}.{minor}"))).unwrap();
    let path = tree.path("bin/d");
    let found = format!("for CPython {}", py.version);
    for spelled in [
        format!("{major}.{minor}d"),
        format!("{major}.{minor}+debug"),
        format!("cpython-{major}.{minor}+debug"),
        format!("cpython@{major}.{minor}d"),
        format!("cp{major}{minor}d"),
    ] {
        let r = tree.hashpyc().env("PATH", &path).args(["compile", "-n", "--python", &spelled]).run();
        r.assert_code(0);
        assert!(r.stderr.contains(&found), "--python {spelled}: {}", r.stderr);
        let r =
            tree.hashpyc().env("PATH", &path).env("HASHPYC_PYTHON", &spelled).args(["compile", "-n"]).run();
        r.assert_code(0);
        assert!(r.stderr.contains(&found), "HASHPYC_PYTHON={spelled}: {}", r.stderr);
        tree.write("hashpyc.toml", format!("python = \"{spelled}\"\n"));
        let r = tree.hashpyc().env("PATH", &path).args(["compile", "-n"]).run();
        std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
        r.assert_code(0);
        assert!(r.stderr.contains(&found), "python = {spelled}: {}", r.stderr);
    }
    // It is used: the pycs are written and check finds them.
    let spelled = format!("{major}.{minor}d");
    tree.hashpyc().env("PATH", &path).args(["compile", "--python", &spelled]).run().assert_code(0);
    assert_eq!(tree.pycs().len(), 1);
    tree.hashpyc().env("PATH", &path).args(["check", "--python", &spelled]).run().assert_code(0);
    // A plain `python3.X` is not a debug build's name.
    let r = tree.hashpyc().env("PATH", tree.path("bin/plain")).args(["check", "--python", &spelled]).run();
    r.assert_code(2);
    let want = format!("error: no Python {spelled} found on PATH (looked for `python{major}.{minor}d`)");
    assert!(r.stderr.starts_with(&want), "{}", r.stderr);
}

// The debug-build requests (`3.14d`, `3.14+debug`, `3.14td`) were taken but never shown:
// `--help` of `--python` and the refusal of a range ("give one version (…)") named `3.13t`
// as the only variant. Both now name the debug spellings too.
#[test]
fn debug_build_requests_are_named_in_help_and_refusals() {
    let tree = Tree::new();
    for command in ["compile", "check"] {
        let r = tree.hashpyc().args([command, "--help"]).run();
        r.assert_code(0);
        for spelled in ["`3.13t`", "`3.14d`", "`3.14+debug`", "`3.14td`", "`python3.14d`"] {
            assert!(r.stdout.contains(spelled), "{command} --help lacks {spelled}: {}", r.stdout);
        }
        let r = tree.hashpyc().args([command, "--no-config", "--python", ">=3.14"]).run();
        r.assert_code(2);
        let want = "so give one version (`3.12`, `3.12.1`, `312`, `cpython@3.12`, `3.13t`, `3.14d`, \
                    `3.14+debug`, `3.14td`), a name on PATH (`python3.12`) or a path";
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
}

// A pyproject.toml whose table is `[tool.HashPyc]`, `[tool.hash-pyc]` or `[tool.hashpyc_]`
// was passed over in silence (only `-v` said "configuration: none"), its settings never
// applied. Discovery now warns, naming the file and the line; `--config` naming such a file
// says the same in its error.
#[test]
fn a_misspelled_table_is_warned_of() {
    let test = "config::a_misspelled_table_is_warned_of";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    for name in ["HashPyc", "hash-pyc", "hashpyc_", "Hash_Pyc"] {
        tree.write("pyproject.toml", format!("[project]\nname = \"x\"\n\n[tool.{name}]\noptimize = 2\n"));
        let r = tree.hashpyc().args(["compile", "-n"]).python(py).run();
        r.assert_code(0);
        assert!(
            r.stderr.starts_with(&format!(
                "warning: `pyproject.toml` line 4: [tool.{name}] is not hashpyc's table, whose name is `hashpyc` exactly ([tool.hashpyc]); its settings are not used\n"
            )),
            "{name}: {}",
            r.stderr
        );
        let r = tree.hashpyc().args(["check", "--config", "pyproject.toml"]).python(py).run();
        r.assert_code(2);
        assert!(
            r.stderr.contains(&format!("line 4 has [tool.{name}]: the name is `hashpyc`, exactly")),
            "{}",
            r.stderr
        );
    }
    // Another tool's table is no near miss.
    tree.write("pyproject.toml", "[tool.ruff]\nline-length = 1\n[tool.hashpyc-extras]\nx = 1\n");
    let r = tree.hashpyc().args(["compile", "-n"]).python(py).run();
    r.assert_code(0);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

// Many `exclude` globs of every shape exclude what each would: a file matching a glob at
// any depth (`**/gen_N*_pb2.py`, a thousand of them, each ending in `.py`), a directory
// glob (`gdir_N/`, at any depth), an anchored glob (`/top_N.py`, at the top only), a glob
// with a `/` matching at any depth (`**/sub/s_N.py`) and a later `!` taking some back.
// (These were matched by `ignore`'s gitignore matcher, which tries the expression of each
// glob ending in `.py` one after the other on every `.py` path: 3 000 of them made a check
// of 11 400 files 25 times slower. They are now matched in a few sets, each searched once
// per path; this guards what is excluded, not the time, which the tests never measure.)
#[test]
fn many_exclude_globs_of_mixed_shapes_exclude_what_each_would() {
    let Some(py) = harness::any_python("config::many_exclude_globs_of_mixed_shapes_exclude_what_each_would")
    else {
        return;
    };
    let tree = Tree::new();
    let mut globs: Vec<String> = (1..=1000).map(|n| format!("**/gen_{n}*_pb2.py")).collect();
    globs.extend((0..300).map(|n| format!("gdir_{n}/")));
    globs.extend((0..300).map(|n| format!("/top_{n}.py")));
    globs.extend((0..300).map(|n| format!("**/sub/s_{n}.py")));
    globs.push("!**/gen_2*_pb2.py".into());
    let list: Vec<String> = globs.iter().map(|g| format!("\"{g}\"")).collect();
    tree.write("pyproject.toml", format!("[tool.hashpyc]\nexclude = [\n{}\n]\n", list.join(",\n")));
    let mut all = BTreeSet::new();
    for k in (0..3000).step_by(7) {
        all.insert(format!("a/gen_{k}_x_pb2.py"));
        all.insert(format!("a/b/gen_{k}_pb2.pyc.py"));
    }
    for k in (0..600).step_by(11) {
        all.insert(format!("gdir_{k}/m.py"));
        all.insert(format!("x/gdir_{k}/y/m.py"));
        all.insert(format!("x/gdir_{k}.py"));
        all.insert(format!("top_{k}.py"));
        all.insert(format!("x/top_{k}.py"));
        all.insert(format!("sub/s_{k}.py"));
        all.insert(format!("x/sub/s_{k}.py"));
        all.insert(format!("x/sub/y/s_{k}.py"));
    }
    for f in &all {
        tree.write(f, "X = 1\n");
    }
    // The README's rules, one glob shape at a time.
    fn number<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
        name.strip_prefix(prefix).and_then(|r| r.split(['_', '.', '/']).next())
    }
    let excluded = |f: &str| {
        let name = f.rsplit('/').next().unwrap();
        if let Some(k) = number(name, "gen_")
            && name.ends_with("_pb2.py")
        {
            // `gen_N*`: the digits start with some N of 1..=1000, unless taken back.
            return !k.starts_with('2') && (1..=1000).any(|n| k.starts_with(&n.to_string()));
        }
        let under_gdir = f
            .split('/')
            .rev()
            .skip(1)
            .any(|d| number(d, "gdir_").is_some_and(|k| k.parse::<u32>().unwrap() < 300));
        let top = !f.contains('/') && number(name, "top_").is_some_and(|k| k.parse::<u32>().unwrap() < 300);
        let sub = f.ends_with(&format!("sub/{name}"))
            && number(name, "s_").is_some_and(|k| k.parse::<u32>().unwrap() < 300);
        under_gdir || top || sub
    };
    let expected: Vec<String> =
        all.iter().filter(|f| !excluded(f)).map(|f| format!("missing    {f}")).collect();
    assert!(expected.len() > 100 && expected.len() + 100 < all.len(), "{} of {}", expected.len(), all.len());
    let run = tree.hashpyc().args(["check", "-q"]).python(py).run();
    run.assert_code(1);
    let mut found: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    found.sort();
    assert_eq!(found, expected, "{}", run.stderr);
}

// `inspect` read only PYTHONPYCACHEPREFIX, never the configuration's `pycache-prefix`: with
// `pycache-prefix = "pfx"` in `hashpyc.toml`, `check` found `src/m.py`'s pyc fresh under the
// prefix while `inspect src/m.py` said no pyc of it was found (exit 1), and a pyc under the
// prefix was not matched with its source. It now looks where `check` does (`--pycache-prefix`,
// the file's key, the variable; `legacy = true` replaces them), says what set the prefix
// when nothing is found there, and `--no-config` leaves the file out.
per_python!(inspect_looks_under_the_configurations_pycache_prefix, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/m.py", "x = 1\n");
    tree.write("hashpyc.toml", "pycache-prefix = \"pfx\"\n");
    tree.hashpyc().args(["compile", "-q", "src"]).python(py).run().assert_code(0);
    tree.hashpyc().args(["check", "src"]).python(py).run().assert_code(0);
    let described = |args: &[&str]| {
        let r = tree.hashpyc().args(["inspect", "--json"]).args(args).run();
        r.assert_code(0);
        let found: Vec<serde_json::Value> =
            r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(found.len(), 1, "{}", r.stdout);
        assert_eq!(found[0]["matches_source"], true, "{}", r.stdout);
        found[0]["pyc"].as_str().unwrap().to_string()
    };
    let pyc = described(&["src/m.py"]);
    assert!(pyc.contains("/pfx/") && !pyc.contains("__pycache__"), "{pyc}");
    // The pyc named itself is matched with its source through the key too.
    assert_eq!(described(&[&pyc]), pyc);
    let r = tree.hashpyc().args(["inspect", "--no-config", "src/m.py"]).run();
    r.assert_code(1);
    assert!(
        r.stdout.contains("no pyc of it was found (looked in `__pycache__/`, and for `m.pyc` beside it)"),
        "{}",
        r.stdout
    );
    tree.write("src/n.py", "y = 1\n");
    let r = tree.hashpyc().args(["inspect", "src/n.py"]).run();
    r.assert_code(1);
    assert!(
        r.stdout
            .contains("pfx` (set by `pycache-prefix` in `hashpyc.toml` line 1), and for `n.pyc` beside it)"),
        "{}",
        r.stdout
    );
    // `legacy = true` replaces the variable as it does for `check`; `--pycache-prefix` both.
    tree.write("hashpyc.toml", "legacy = true\n");
    let r = tree.hashpyc().args(["inspect", "src/m.py"]).env("PYTHONPYCACHEPREFIX", "pfx").run();
    r.assert_code(1);
    let given = described(&["--pycache-prefix", "pfx", "src/m.py"]);
    assert_eq!(given, pyc);
});

// inspect showed a pyc under a relative pycache prefix by another path than check: for
// `--pycache-prefix pfx` or `PYTHONPYCACHEPREFIX=pfx` it printed `pfx/<cwd>/src/m….pyc`, as
// given, where check's messages and `--json` `pyc` (and compile's errors) print the prefix
// made absolute, as for the `pycache-prefix` key. inspect now prints the path check prints
// for each of the three settings, in its text and its JSON.
per_python!(inspect_shows_a_prefixed_pyc_as_check_does, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/m.py", "x = 1\n");
    let settings: [(&str, &[&str], Option<&str>); 3] = [
        ("the key", &[], None),
        ("the flag", &["--no-config", "--pycache-prefix", "pfx"], None),
        ("the variable", &["--no-config"], Some("pfx")),
    ];
    tree.write("hashpyc.toml", "pycache-prefix = \"pfx\"\n");
    tree.hashpyc().args(["compile", "-q", "src"]).python(py).run().assert_code(0);
    // Stale, so that check names the pyc in a finding.
    tree.write("src/m.py", "x = 2\n");
    for (setting, flags, variable) in settings {
        let with = |h: harness::Hashpyc| match variable {
            Some(v) => h.env("PYTHONPYCACHEPREFIX", v),
            None => h,
        };
        let r = with(tree.hashpyc()).args(["check", "--json"]).args(flags).arg("src").python(py).run();
        r.assert_code(1);
        let finding: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
        let checked = finding["pyc"].as_str().unwrap().to_string();
        assert!(checked.contains("/pfx/") && checked.starts_with('/'), "{setting}: {}", r.stdout);
        let r = with(tree.hashpyc()).args(["inspect", "--json"]).args(flags).arg("src/m.py").run();
        r.assert_code(0);
        let described: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(described["pyc"], checked.as_str(), "{setting}: {}", r.stdout);
        let r = with(tree.hashpyc()).args(["inspect"]).args(flags).arg("src/m.py").run();
        r.assert_code(0);
        assert_eq!(r.stdout.lines().next(), Some(checked.as_str()), "{setting}: {}", r.stdout);
    }
});

// A project whose `pyproject.toml` says `requires-python = ">=3.12"` was compiled for a 3.11
// with no word: pycs for a Python the project does not support. A target the specifier
// excludes now gets one warning per run (compile and check) naming the file, the
// specifier, the version and `--python`; a version it includes none, an unparseable
// specifier a `-v` line only, and `-qq` hides it as other warnings. The exit status stays.
per_python!(requires_python_excluding_the_target_is_warned_of, |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let (major, minor) = py.minor;
    let next = format!("{major}.{}", minor + 1);
    let project = |spec: &str| {
        tree.write("pyproject.toml", format!("[project]\nname = \"p\"\nrequires-python = \"{spec}\"\n"));
    };
    let warned = |spec: &str, verb: &str| {
        format!(
            "warning: `pyproject.toml` line 3: the project requires Python `{spec}` (`requires-python`), and \
             this run {verb} pycs for CPython {}, a version it excludes: give an interpreter it allows",
            py.version
        )
    };
    let excluding = [
        format!(">={next}"),
        format!("~={next}"),
        format!("!={major}.{minor}.*"),
        format!("<{major}.{minor},>=3.0"),
        format!("=={major}.{minor}.{}", u32::MAX),
    ];
    for spec in &excluding {
        project(spec);
        let run = tree.hashpyc().arg("compile").python(py).run();
        run.assert_code(0);
        assert_eq!(run.stderr.matches(&warned(spec, "writes")).count(), 1, "{spec}: {}", run.stderr);
        let run = tree.hashpyc().arg("check").python(py).run();
        run.assert_code(0);
        assert_eq!(run.stderr.matches(&warned(spec, "checks")).count(), 1, "{spec}: {}", run.stderr);
        let run = tree.hashpyc().args(["-qq", "compile", "-f"]).python(py).run();
        run.assert_code(0);
        assert!(!run.stderr.contains("requires-python"), "{spec}: {}", run.stderr);
    }
    // The version to give instead, and the key that named the interpreter.
    project(&format!(">={next}"));
    let run = tree.hashpyc().arg("compile").python(py).run();
    assert!(run.stderr.contains(&format!("allows (`--python {next}`)\n")), "{}", run.stderr);
    tree.write(
        "pyproject.toml",
        format!(
            "[project]\nname = \"p\"\nrequires-python = \">={next}\"\n\n[tool.hashpyc]\npython = [\"{}\"]\n",
            py.path.display()
        ),
    );
    let run = tree.hashpyc().arg("compile").run();
    run.assert_code(0);
    let key = format!("allows (`--python {next}`, or change `python` in `pyproject.toml` line 6)\n");
    assert!(run.stderr.contains(&key), "{}", run.stderr);
    // In JSON, a notice like the others; from a subdirectory, the project above.
    let run = tree.hashpyc().args(["compile", "--format", "json"]).run();
    run.assert_code(0);
    let notices: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["message"].as_str().is_some_and(|m| m.contains("(`requires-python`)")))
        .collect();
    assert_eq!(notices.len(), 1, "{}", run.stdout);
    tree.write("sub/n.py", "y = 1\n");
    let run = harness::Hashpyc::new(&tree.path("sub")).arg("compile").run();
    run.assert_code(0);
    assert!(run.stderr.contains("pyproject.toml` line 3: the project requires Python"), "{}", run.stderr);

    let including = [
        format!(">={major}.{minor}"),
        format!("~={major}.{minor}"),
        format!("=={major}.{minor}.*"),
        format!("!={next}.*, >=3.0, <{next}"),
        format!("<={}", py.version),
        String::new(),
    ];
    for spec in &including {
        project(spec);
        let run = tree.hashpyc().args(["compile", "-v"]).python(py).run();
        run.assert_code(0);
        assert!(!run.stderr.contains("requires-python"), "{spec}: {}", run.stderr);
    }
    // Not PEP 440: said under -v, not warned of.
    let bad = format!(">={next}.*");
    project(&bad);
    let run = tree.hashpyc().arg("compile").python(py).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("requires"), "{}", run.stderr);
    let run = tree.hashpyc().args(["compile", "-v"]).python(py).run();
    run.assert_code(0);
    let said = format!(
        "requires-python not checked: `pyproject.toml` line 3: `requires-python = \"{bad}\"` is not a PEP 440 \
         specifier (Operator >= cannot be used with a wildcard version specifier)\n"
    );
    assert_eq!(run.stderr.matches(&said).count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
});
