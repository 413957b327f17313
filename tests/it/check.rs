//! `hashpyc check`, header rewrites in `compile`, file lists on stdin, and `inspect`,
//! on trees holding pycs written by CPython itself in every mode.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::{self, Hashpyc, Python, Tree};
use crate::per_python;

/// py_compile a file in the given mode ("TIMESTAMP", "CHECKED_HASH", "UNCHECKED_HASH").
fn py_compile(py: &Python, tree: &Tree, src: &str, mode: &str) {
    py.run(
        &[
            "-I",
            "-c",
            &format!(
                "import py_compile; py_compile.compile({src:?}, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.{mode})"
            ),
        ],
        tree.root(),
    );
}

fn pyc(py: &Python, stem: &str) -> String {
    format!("__pycache__/{stem}.cpython-{}{}.pyc", py.minor.0, py.minor.1)
}

/// One tree with every outcome; returns the expected outcome per source.
/// Every pyc is written for the path `check .` walks (`./ok.py`): the embedded path is
/// compared too.
fn every_case(py: &Python, other: Option<&Python>) -> (Tree, BTreeMap<&'static str, &'static str>) {
    let tree = Tree::new();
    for name in ["ok", "missing", "stale", "timestamp", "unchecked", "short", "flags", "foreign"] {
        tree.write(format!("{name}.py"), format!("name = {name:?}\n"));
    }
    tree.hashpyc()
        .args(["compile", "-q"])
        .python(py)
        .args(["./ok.py", "./stale.py", "./short.py", "./flags.py", "./foreign.py"])
        .run()
        .assert_code(0);
    tree.write("stale.py", "name = 'changed'\n");
    py_compile(py, &tree, "./timestamp.py", "TIMESTAMP");
    py_compile(py, &tree, "./unchecked.py", "UNCHECKED_HASH");
    let short = tree.path(pyc(py, "short"));
    std::fs::write(&short, &std::fs::read(&short).unwrap()[..10]).unwrap();
    let flags = tree.path(pyc(py, "flags"));
    let mut data = std::fs::read(&flags).unwrap();
    data[4] = 7;
    std::fs::write(&flags, data).unwrap();
    // A pyc of another Python version at this version's path.
    if let Some(other) = other {
        let t2 = Tree::new();
        t2.write("foreign.py", "name = 'foreign'\n");
        t2.hashpyc().args(["compile", "-q"]).python(other).arg("foreign.py").run().assert_code(0);
        std::fs::copy(t2.path(pyc(other, "foreign")), tree.path(pyc(py, "foreign"))).unwrap();
    } else {
        let p = tree.path(pyc(py, "foreign"));
        let mut data = std::fs::read(&p).unwrap();
        data[0] ^= 0x55;
        std::fs::write(&p, data).unwrap();
    }
    // A pyc whose source is gone.
    tree.write("gone.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("gone.py").run().assert_code(0);
    std::fs::remove_file(tree.path("gone.py")).unwrap();
    let expected = BTreeMap::from([
        ("ok.py", "ok"),
        ("missing.py", "missing"),
        ("stale.py", "stale"),
        ("timestamp.py", "timestamp"),
        ("unchecked.py", "unchecked"),
        ("short.py", "invalid"),
        ("flags.py", "invalid"),
        ("foreign.py", "invalid"),
    ]);
    (tree, expected)
}

fn other_python(py: &Python) -> Option<&'static Python> {
    crate::harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 7))
}

per_python!(check_reports_each_outcome, |py: &Python| {
    let (tree, expected) = every_case(py, other_python(py));
    let run = tree.hashpyc().args(["check", "--all", "--stray"]).python(py).arg(".").run();
    run.assert_code(1);
    let mut got = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    for line in run.stdout.lines() {
        let (outcome, rest) = line.split_once(' ').unwrap();
        let (path, reason) = rest.trim().split_once(": ").map_or((rest.trim(), None), |(p, r)| (p, Some(r)));
        let path = path.trim_start_matches("./").to_string();
        got.insert(path.clone(), outcome.to_string());
        reasons.insert(path, reason.map(str::to_string));
    }
    for (src, outcome) in &expected {
        assert_eq!(got.get(*src).map(String::as_str), Some(*outcome), "{src}\n{}", run.stdout);
    }
    // Without -v too, an invalid pyc's line says why (JSON's `detail`); other lines do not.
    let json = tree.hashpyc().args(["check", "--all", "--format", "json"]).python(py).arg(".").run();
    for line in json.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "finding" && v["outcome"] != "stray" {
            let path = v["path"].as_str().unwrap().trim_start_matches("./");
            assert_eq!(reasons[path].as_deref(), v["detail"].as_str(), "{path}: {}", run.stdout);
            assert_eq!(v["detail"].is_string(), v["outcome"] == "invalid", "{v}");
        }
    }
    let stray = format!("./{}", pyc(py, "gone"));
    assert!(run.stdout.contains(&format!("stray      {stray}")), "{}", run.stdout);
    let want = format!("Checked 8 files for CPython {} (1 ok", py.version);
    assert!(run.stderr.contains(&want), "{}", run.stderr);

    // The built-in table gives the same verdicts without running Python.
    let table = tree
        .hashpyc()
        .args(["check", "--all", "--target", &format!("{}.{}", py.minor.0, py.minor.1), "."])
        .run();
    let without_stray: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with("stray")).collect();
    assert_eq!(table.stdout.lines().collect::<Vec<_>>(), without_stray);
    // `--target` beats an interpreter from the environment (a job's or an image's
    // `HASHPYC_PYTHON`), even one that does not exist; with `--python` it is refused.
    let version = format!("{}.{}", py.minor.0, py.minor.1);
    let env = tree
        .hashpyc()
        .args(["check", "--all", "--target", &version, "."])
        .env("HASHPYC_PYTHON", "no-such-python3")
        .run();
    assert_eq!(env.stdout, table.stdout, "{}", env.stderr);
    let both = tree.hashpyc().args(["check", "--target", &version]).python(py).arg(".").run();
    both.assert_code(2);
    assert!(
        both.stderr.contains("'--target <X.Y>' cannot be used with '--python <PATH>'"),
        "{}",
        both.stderr
    );

    // --mode any accepts unchecked pycs; --mode unchecked flags checked ones.
    let any = tree.hashpyc().args(["check", "--mode", "any"]).python(py).arg("./unchecked.py").run();
    any.assert_code(0);
    let unchecked = tree.hashpyc().args(["check", "--mode", "unchecked"]).python(py).arg("./ok.py").run();
    unchecked.assert_code(1);
    assert!(unchecked.stdout.starts_with("checked    ./ok.py"), "{}", unchecked.stdout);

    // After a compile, everything is fresh and check exits 0.
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let clean = tree.hashpyc().arg("check").python(py).arg(".").run();
    clean.assert_code(0);
    assert_eq!(clean.stdout, "");
});

per_python!(check_json_and_github_formats, |py: &Python| {
    let (tree, expected) = every_case(py, None);
    let run = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg(".").run();
    run.assert_code(1);
    let objects: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let (summary, rest) = objects.split_last().unwrap();
    assert_eq!(summary["type"], "summary");
    // The hints come first, as notices: every one that applies (6ad0ba8), the timestamp
    // pyc's, then the unchecked pyc's (`every_case` has one of each).
    let (notices, findings): (Vec<_>, Vec<_>) = rest.iter().partition(|o| o["type"] == "notice");
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices[0]["message"].as_str().unwrap().starts_with("1 pyc is timestamp-based"),
        "{}",
        notices[0]
    );
    assert!(notices[1]["message"].as_str().unwrap().starts_with("1 pyc is unchecked-hash"), "{}", notices[1]);
    // Every object leads with its type, as the README's schema shows, so `head -c` and
    // grep-based consumers can tell them apart.
    for line in run.stdout.lines() {
        assert!(line.starts_with(r#"{"type":""#), "{line}");
    }
    assert_eq!(summary["sources"], 8);
    assert_eq!(summary["ok"], 1);
    assert_eq!(summary["invalid"], 3);
    assert_eq!(findings.len(), expected.len() - 1);
    for f in findings {
        assert_eq!(f["type"], "finding");
        let path = f["path"].as_str().unwrap().trim_start_matches("./");
        assert_eq!(f["outcome"], expected[path], "{f}");
        assert_eq!(f["python"], format!("{}.{}", py.minor.0, py.minor.1));
        assert!(f["pyc"].as_str().unwrap().contains("__pycache__"));
        assert!(f["expected"]["magic"].is_string());
        if path == "stale.py" {
            assert_ne!(f["expected"]["hash"], f["found"]["hash"]);
            assert_eq!(f["found"]["flags"], 3);
        }
        if path == "missing.py" {
            assert!(f["found"].is_null());
        }
    }
    // With --all, an ok finding has its `expected` too (null only for `unreadable`, as the
    // README says): the header found, and the hash CPython computes for the source.
    let all = tree.hashpyc().args(["check", "--all", "--format", "json"]).python(py).arg(".").run();
    let ok: Vec<serde_json::Value> = all
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|o| o["outcome"] == "ok")
        .collect();
    assert_eq!(ok.len(), 1, "{}", all.stdout);
    let source = ok[0]["path"].as_str().unwrap();
    let cpython_hash = py
        .cmd()
        .current_dir(tree.root())
        .args(["-c", "import importlib.util, sys; print(importlib.util.source_hash(open(sys.argv[1], 'rb').read()).hex())"])
        .arg(source)
        .output()
        .unwrap();
    let cpython_hash = String::from_utf8_lossy(&cpython_hash.stdout).trim().to_string();
    assert_eq!(ok[0]["expected"]["hash"], cpython_hash.as_str(), "{}", ok[0]);
    assert_eq!(ok[0]["expected"], ok[0]["found"], "{}", ok[0]);
    let gh = tree.hashpyc().args(["check", "--format", "github"]).python(py).arg(".").run();
    gh.assert_code(1);
    assert_eq!(gh.stdout.lines().count(), expected.len() - 1);
    for line in gh.stdout.lines() {
        assert!(line.starts_with("::error file=./"), "{line}");
        assert!(line.contains(",title=hashpyc check (CPython "), "{line}");
    }
});

per_python!(compile_rewrites_headers_without_python, |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "def f():\n    return 1\n");
    py_compile(py, &tree, "m.py", "UNCHECKED_HASH");
    // py_compile embeds the path as given; so does hashpyc.
    let before = tree.read(pyc(py, "m"));
    assert_eq!(&before[4..8], b"\x01\0\0\0");
    let run = tree.hashpyc().args(["compile", "--python", "/nonexistent/python"]).arg("m.py").run();
    run.assert_code(2); // the probe needs the interpreter once
    let first = tree.hashpyc().arg("compile").python(py).arg("m.py").run();
    first.assert_code(0);
    assert!(first.stderr.contains("1 header rewritten"), "{}", first.stderr);
    let after = tree.read(pyc(py, "m"));
    assert_eq!(&after[4..8], b"\x03\0\0\0");
    assert_eq!(after[8..], before[8..], "only the flags changed");
    let back = tree
        .hashpyc()
        .args(["compile", "-v", "--invalidation-mode", "unchecked-hash"])
        .python(py)
        .arg("m.py")
        .run();
    back.assert_code(0);
    assert_eq!(tree.read(pyc(py, "m")), before);
    // -v lists a header rewrite as it lists a compile.
    assert!(back.stderr.contains("rewrote 1 header of `m.py` (checked → unchecked)"), "{}", back.stderr);
    assert!(!back.stderr.contains("compiled `"), "{}", back.stderr);
    // A timestamp pyc is never trusted: it is recompiled.
    py_compile(py, &tree, "m.py", "TIMESTAMP");
    let ts = tree.hashpyc().args(["compile", "-v"]).python(py).arg("m.py").run();
    ts.assert_code(0);
    assert!(ts.stderr.contains("timestamp pyc"), "{}", ts.stderr);
    assert_eq!(&tree.read(pyc(py, "m"))[4..8], b"\x03\0\0\0");
});

per_python!(paths_from_stdin, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("a.py", "a = 1\n");
    tree.write("dir with space/b.py", "b = 2\n");
    tree.write("new\nline.py", "c = 3\n");
    tree.write("skipped.py", "d = 4\n");
    let nl =
        tree.hashpyc().args(["compile", "-q"]).python(py).arg("-").stdin("a.py\ndir with space/b.py\n").run();
    nl.assert_code(0);
    assert_eq!(tree.pycs().len(), 2);
    let nul = tree
        .hashpyc()
        .args(["compile", "-q", "--null"])
        .python(py)
        .arg("-")
        .stdin(b"new\nline.py\0".to_vec())
        .run();
    nul.assert_code(0);
    assert_eq!(tree.pycs().len(), 3);
    let check = tree
        .hashpyc()
        .args(["check", "-0"])
        .python(py)
        .arg("-")
        .stdin(b"a.py\0new\nline.py\0skipped.py\0".to_vec())
        .run();
    check.assert_code(1);
    assert_eq!(check.stdout.trim(), "missing    skipped.py");
    // An empty list (`git diff -z --name-only '*.py' | hashpyc check --null -` in a change
    // without Python) names nothing to check, as a list of no `.py` file: no finding, as
    // compile takes it.
    for args in [&["check"][..], &["check", "--null"], &["check", "--force-exclude"], &["compile"]] {
        let run = tree.hashpyc().args(args).python(py).arg("-").stdin(Vec::new()).run();
        run.assert_code(0);
        assert!(!run.stderr.contains("error") && !run.stderr.contains("no Python sources"), "{}", run.stderr);
        if args[0] == "check" {
            assert!(run.stderr.contains("(0 ok, the path list on stdin is empty)"), "{}", run.stderr);
        }
    }
    let json = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("-").stdin(Vec::new()).run();
    json.assert_code(0);
    let objects: Vec<serde_json::Value> =
        json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(objects.len(), 1, "{}", json.stdout);
    assert_eq!((&objects[0]["type"], &objects[0]["sources"]), (&"summary".into(), &0.into()));
});

per_python!(inspect_describes_pycs, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let p = pyc(py, "m");
    let run = tree.hashpyc().arg("inspect").arg(&p).run();
    run.assert_code(0);
    let want = format!("CPython {}.{}", py.minor.0, py.minor.1);
    assert!(run.stdout.contains(&want) && run.stdout.contains("checked-hash"), "{}", run.stdout);
    assert!(run.stdout.contains("(matches `m.py`)"), "{}", run.stdout);
    assert!(run.stdout.contains("co_filename  m.py"), "{}", run.stdout);
    // Data on stdout is never coloured, even with --color always (it is for stderr), error
    // lines included.
    let colored = tree.hashpyc().args(["inspect", "--color", "always"]).arg(&p).arg("nothing.pyc").run();
    colored.assert_code(1);
    assert!(colored.stdout.contains("co_filename  m.py") && colored.stdout.contains("  error: "));
    assert!(!colored.stdout.contains('\x1b'), "{:?}", colored.stdout);
    // The exit status does not depend on stdout staying open (`| head -1`): a file after
    // the first one written is still examined.
    for args in [&["inspect"][..], &["inspect", "--json"][..]] {
        let closed = tree.hashpyc().args(args).arg(&p).arg("nothing.pyc").run_stdout_closed();
        closed.assert_code(1);
        let fine = tree.hashpyc().args(args).arg(&p).arg(&p).run_stdout_closed();
        fine.assert_code(0);
    }
    tree.write("m.py", "x = 2\n");
    let json = tree.hashpyc().args(["inspect", "--json"]).arg(&p).run();
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["matches_source"], false);
    assert_eq!(v["mode"], "checked-hash");
    assert_eq!(v["python"], format!("{}.{}", py.minor.0, py.minor.1));
});

// `--json` worked for `inspect` only: `check --json`, `compile --json` and `cache stats
// --json` failed with exit 2, "unexpected argument '--json'" and clap's tip to pass it as a
// value (helper report). It is `--format json` on each now, also given with it; with
// another `--format` a usage error names both.
#[test]
fn json_is_format_json_on_every_command_that_has_it() {
    let Some(py) = harness::any_python("check::json_is_format_json_on_every_command_that_has_it") else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/m.py", "x = 1\n");
    let cache = tree.path("cache").display().to_string();
    let commands: [&[&str]; 3] =
        [&["compile", "src"], &["check", "src"], &["cache", "stats", "--cache", &cache]];
    for command in commands {
        let (sub, rest) = command.split_at(if command[0] == "cache" { 2 } else { 1 });
        let run = |flags: &[&str]| {
            let mut h = tree.hashpyc().args(sub).args(flags).args(rest);
            if command[0] != "cache" {
                h = h.python(py);
            }
            h.run()
        };
        let want = run(&["--format", "json"]);
        want.assert_code(0);
        for flags in [&["--json"][..], &["--json", "--format", "json"][..]] {
            let got = run(flags);
            got.assert_code(0);
            let last: serde_json::Value =
                serde_json::from_str(got.stdout.lines().last().unwrap_or("")).expect("JSON");
            let wanted: serde_json::Value =
                serde_json::from_str(want.stdout.lines().last().unwrap()).unwrap();
            let keys = |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&last), keys(&wanted), "{command:?} {flags:?}: {}", got.stdout);
        }
        let other = if command[0] == "cache" { "text" } else { "github" };
        for flags in [&["--json", "--format", other][..], &["--format", other, "--json"][..]] {
            let run = run(flags);
            run.assert_code(2);
            assert_eq!(run.stdout, "", "{command:?} {flags:?}");
            let error =
                format!("error: `--json` means `--format json`; it cannot be used with `--format {other}`");
            assert!(run.stderr.contains(&error), "{command:?} {flags:?}: {}", run.stderr);
        }
    }
}

// `inspect --format json`'s objects and `cache stats --format json`'s had no `type`, which
// every other JSON object of hashpyc starts with, and `check`'s summary no `elapsed`, which
// `compile`'s has (helper report). Each now has them, added before or after the keys it had,
// none renamed or removed: a consumer of the old keys reads the same values.
#[test]
fn every_json_object_names_its_type_and_summaries_their_elapsed() {
    let Some(py) = harness::any_python("check::every_json_object_names_its_type_and_summaries_their_elapsed")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let cache = tree.path("cache").display().to_string();
    let run = |args: &[&str], python: bool| {
        let mut h = tree.hashpyc().args(args).args(["--format", "json"]);
        if python {
            h = h.python(py);
        }
        let run = h.run();
        run.assert_code(0);
        run.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
            .collect::<Vec<_>>()
    };
    let keys = |v: &serde_json::Value| v.as_object().expect("an object").keys().cloned().collect::<Vec<_>>();
    let compile = run(&["compile", "--cache", &cache, "m.py"], true);
    let check = run(&["check", "m.py"], true);
    let inspect = run(&["inspect", &pyc(py, "m")], false);
    let stats = run(&["cache", "stats", "--cache", &cache], false);
    for (objects, kind) in [(&compile, "summary"), (&check, "summary"), (&inspect, "pyc"), (&stats, "cache")]
    {
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert_eq!(keys(&objects[0])[0], "type", "{objects:?}");
        assert_eq!(objects[0]["type"], kind, "{objects:?}");
    }
    // The keys each had, in their order, after `type`.
    let inspect_keys = [
        "pyc",
        "magic",
        "python",
        "mode",
        "hash",
        "mtime",
        "source_size",
        "source",
        "matches_source",
        "source_error",
        "body_bytes",
        "trailing_bytes",
        "embedded_path",
        "error",
    ];
    assert_eq!(keys(&inspect[0])[1..], inspect_keys);
    assert_eq!(inspect[0]["pyc"], pyc(py, "m"));
    assert_eq!(inspect[0]["matches_source"], true);
    let stats_keys = ["cache", "exists", "entries", "bytes", "temporary_files", "since", "runs", "tiers"];
    assert_eq!(keys(&stats[0])[1..], stats_keys);
    assert_eq!(stats[0]["entries"], 1, "{}", stats[0]);
    // `elapsed` in seconds to the millisecond, in both summaries, after `targets`.
    for summary in [&compile[0], &check[0]] {
        let elapsed = summary["elapsed"].as_f64().unwrap_or_else(|| panic!("no elapsed: {summary}"));
        assert!((0.0..60.0).contains(&elapsed), "{summary}");
        assert_eq!((elapsed * 1000.0).round() / 1000.0, elapsed, "{summary}");
        let k = keys(summary);
        assert_eq!(
            k.iter().position(|k| k == "elapsed"),
            k.iter().position(|k| k == "targets").map(|t| t + 1)
        );
    }
    assert_eq!(check[0]["ok"], 1);
    assert_eq!(check[0]["targets"][0], py.version);
}

// `inspect -` took `-` for a file (`-  error: no such file`, exit 1) where `compile` and
// `check` read a path list from stdin. It now reads the files from stdin as they do (one
// per line, or NUL-separated with `--null`; `-` read once however often given), and
// describes them as when named.
#[test]
fn inspect_reads_its_files_from_stdin() {
    let Some(py) = harness::any_python("check::inspect_reads_its_files_from_stdin") else {
        return;
    };
    let tree = Tree::new();
    tree.write("pkg/a.py", "a = 1\n");
    tree.write("pkg/b.py", "b = 2\n");
    tree.hashpyc().args(["compile", "-q", "pkg"]).python(py).run().assert_code(0);
    let named = tree.hashpyc().args(["inspect", "pkg/a.py", "pkg/b.py"]).run();
    named.assert_code(0);
    assert!(named.stdout.contains("(matches `pkg/b.py`)"), "{}", named.stdout);
    let lines = tree.hashpyc().args(["inspect", "-"]).stdin("pkg/a.py\npkg/b.py\n").run();
    lines.assert_code(0);
    assert_eq!(lines.stdout, named.stdout);
    let nul = tree.hashpyc().args(["inspect", "--null", "-", "-"]).stdin("pkg/a.py\0pkg/b.py\0").run();
    nul.assert_code(0);
    assert_eq!(nul.stdout, named.stdout);
    // Mixed with names on the command line, in their order.
    let mixed = tree.hashpyc().args(["inspect", "pkg/a.py", "-"]).stdin("pkg/b.py\n").run();
    assert_eq!(mixed.stdout, named.stdout);
    // A file of the list that is not there is said as when named (exit 1).
    let missing = tree.hashpyc().args(["inspect", "-"]).stdin("pkg/nope.pyc\n").run();
    missing.assert_code(1);
    assert!(missing.stdout.starts_with("pkg/nope.pyc\n"), "{}", missing.stdout);
    // An empty list describes nothing.
    let empty = tree.hashpyc().args(["inspect", "-"]).stdin("").run();
    empty.assert_code(0);
    assert_eq!(empty.stdout, "");
}

// `--json` is `--format json`: given together (an alias plus a script's `--format json`) they
// agree and the output is JSON, as with either alone; only `--format text` contradicts it.
#[test]
fn inspect_json_and_format_json_together_agree() {
    let Some(py) = harness::any_python("check::inspect_json_and_format_json_together_agree") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let p = pyc(py, "m");
    let alone = tree.hashpyc().args(["inspect", "--format", "json"]).arg(&p).run();
    alone.assert_code(0);
    let want: serde_json::Value = serde_json::from_str(alone.stdout.trim()).expect("JSON");
    assert_eq!(want["mode"], "checked-hash", "{want}");
    for args in [&["--format", "json", "--json"][..], &["--json", "--format", "json"][..], &["--json"][..]] {
        let run = tree.hashpyc().arg("inspect").args(args).arg(&p).run();
        run.assert_code(0);
        let got: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
        assert_eq!(got, want, "{args:?}");
    }
    for args in [&["--format", "text", "--json"][..], &["--json", "--format", "text"][..]] {
        let run = tree.hashpyc().arg("inspect").args(args).arg(&p).run();
        run.assert_code(2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(
            run.stderr.contains("`--json` means `--format json`; it cannot be used with `--format text`"),
            "{}",
            run.stderr
        );
    }
}

// uv's `--compile-bytecode` (`uv pip install`, `uv sync`) writes timestamp pycs, as pip does:
// the hint names it. A wheel made here, installed by uv offline, without dependencies.
#[test]
fn timestamp_hint_names_uv_for_the_pycs_uv_writes() {
    let test = "check::timestamp_hint_names_uv_for_the_pycs_uv_writes";
    let Some(uv) = harness::uv(test) else { return };
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let tree = Tree::new();
    py.run(
        &[
            "-c",
            "import zipfile\n\
             with zipfile.ZipFile('demo-0.1-py3-none-any.whl', 'w') as z:\n\
             \x20   z.writestr('demo/__init__.py', 'x = 1\\n')\n\
             \x20   z.writestr('demo-0.1.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: demo\\nVersion: 0.1\\n')\n\
             \x20   z.writestr('demo-0.1.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
             \x20   z.writestr('demo-0.1.dist-info/RECORD', '')\n",
        ],
        tree.root(),
    );
    let mut install = std::process::Command::new(&uv);
    for (k, _) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"UV_") {
            install.env_remove(k);
        }
    }
    install
        .args(["pip", "install", "--offline", "--no-deps", "--compile-bytecode", "--python"])
        .arg(&py.path)
        .args(["--target", "site", "./demo-0.1-py3-none-any.whl"])
        .env("UV_CACHE_DIR", tree.path("uv-cache"))
        .env("UV_NO_CONFIG", "1")
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(tree.root());
    let installed = harness::run_command(&mut install);
    installed.assert_code(0);
    let inspect = tree.hashpyc().args(["inspect", "--json", "site/demo/__init__.py"]).run();
    inspect.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(inspect.stdout.trim()).expect("JSON");
    assert_eq!(v["mode"], "timestamp", "uv wrote a timestamp pyc: {v}");
    let run = tree.hashpyc().arg("check").python(py).arg("site").run();
    run.assert_code(1);
    assert_eq!(run.stdout, "timestamp  site/demo/__init__.py\n", "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "hint: 1 pyc is timestamp-based, as pip, uv, `python -m compileall` and imports write them: `hashpyc compile` with the same paths and options replaces it with a checked-hash pyc\n"
        ),
        "{}",
        run.stderr
    );
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("site").run().assert_code(0);
    tree.hashpyc().arg("check").python(py).arg("site").run().assert_code(0);
}

// `inspect m.py` describes the pycs of that source which exist, where CPython itself would
// look for them (importlib.util.cache_from_source, with and without a pycache prefix) and
// the legacy `m.pyc`, each checked against that source. One under a relative prefix is
// shown by its absolute path, as `check` shows it (`inspect_shows_a_prefixed_pyc_as_check_does`).
per_python!(inspect_of_a_source_describes_its_pycs, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    let none = tree.hashpyc().args(["inspect", "pkg/m.py"]).run();
    none.assert_code(1);
    assert!(none.stdout.contains("not a pyc file but a Python source"), "{}", none.stdout);
    for args in [&["-o", "0", "-o", "2"][..], &["-b"], &["--pycache-prefix", "pfx"]] {
        tree.hashpyc().args(["compile", "-q"]).args(args).python(py).arg("pkg/m.py").run().assert_code(0);
    }
    let names = py.run(
        &[
            "-X",
            "pycache_prefix=pfx",
            "-c",
            "import importlib.util as u, os, sys\n\
             p, sys.pycache_prefix = sys.pycache_prefix, None\n\
             names = [u.cache_from_source('pkg/m.py', optimization=o) for o in ('', 2)]\n\
             sys.pycache_prefix = p\n\
             print('\\n'.join(names + [os.path.abspath(u.cache_from_source('pkg/m.py')), 'pkg/m.pyc']))",
        ],
        tree.root(),
    );
    let want: Vec<&str> = names.lines().collect();
    let described = |edit: &str| {
        let run =
            tree.hashpyc().args(["inspect", "--json", "pkg/m.py"]).env("PYTHONPYCACHEPREFIX", "pfx").run();
        run.assert_code(0);
        let found: Vec<serde_json::Value> =
            run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let pycs: Vec<&str> = found.iter().map(|v| v["pyc"].as_str().unwrap()).collect();
        assert_eq!(pycs, want, "{edit}");
        found.iter().map(|v| v["matches_source"].as_bool().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(described("as compiled"), vec![true; 4]);
    tree.write("pkg/m.py", "x = 2\n");
    assert_eq!(described("source edited"), vec![false; 4]);
    // Without the prefix variable, the prefix pyc is not looked for.
    let run = tree.hashpyc().args(["inspect", "pkg/m.py"]).env_remove("PYTHONPYCACHEPREFIX").run();
    run.assert_code(0);
    assert!(!run.stdout.contains("pfx"), "{}", run.stdout);
});

// A `.py` named to `inspect` is a source whatever its first bytes: a CRLF source has a
// magic number's `\r\n` at bytes 2–3 and was described as a pyc ("not a pyc file: only 11
// bytes", "magic 23200d0a"). A pyc named `x.py` (a NUL in its flags, which no source
// holds) is still described as a pyc.
#[test]
fn inspect_of_a_crlf_source_describes_its_pycs() {
    let Some(py) = harness::any_python("check::inspect_of_a_crlf_source_describes_its_pycs") else { return };
    let tree = Tree::new();
    tree.write("m.py", "\r\n\r\nx = 1\r\n");
    tree.write("u.py", "# \r\n\"\"\"doc long enough to pass 16 bytes\"\"\"\r\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let run = tree.hashpyc().args(["inspect", "m.py"]).run();
    run.assert_code(0);
    assert!(run.stdout.starts_with(&format!("{}\n", pyc(py, "m"))), "{}", run.stdout);
    assert!(run.stdout.contains("(matches `m.py`)"), "{}", run.stdout);
    let none = tree.hashpyc().args(["inspect", "--json", "u.py"]).run();
    none.assert_code(1);
    let v: serde_json::Value = serde_json::from_str(none.stdout.trim()).unwrap();
    assert!(v["magic"].is_null(), "{v}");
    assert!(v["error"].as_str().unwrap().contains("not a pyc file but a Python source"), "{v}");
    tree.write("copy.py", tree.read(pyc(py, "m")));
    let copy = tree.hashpyc().args(["inspect", "--json", "copy.py"]).run();
    copy.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(copy.stdout.trim()).unwrap();
    assert_eq!((&v["pyc"], &v["mode"]), (&"copy.py".into(), &"checked-hash".into()), "{v}");
}

// `inspect m.py` lists its pycs by interpreter version (`cpython-39` before `cpython-310`,
// as sorted text put it after `cpython-315`).
#[test]
fn inspect_of_a_source_lists_versions_in_order() {
    let pythons: Vec<&Python> = harness::pythons().values().filter(|p| p.minor >= (3, 7)).collect();
    if !pythons.iter().any(|p| p.minor < (3, 10)) || !pythons.iter().any(|p| p.minor >= (3, 10)) {
        harness::visible(
            "SKIPPED check::inspect_of_a_source_lists_versions_in_order: a CPython before and after 3.10 are needed",
        );
        return;
    }
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    for py in &pythons {
        tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    }
    let run = tree.hashpyc().args(["inspect", "--json", "m.py"]).run();
    run.assert_code(0);
    let listed: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["python"].as_str().unwrap().to_string()
        })
        .collect();
    // `pythons()` is keyed by (major, minor): in version order.
    let want: Vec<String> = pythons.iter().map(|p| format!("{}.{}", p.minor.0, p.minor.1)).collect();
    assert_eq!(listed, want, "{}", run.stdout);
}

// `inspect` of a link to nothing said only "no such file"; its JSON `mode` for unknown flag
// bits was free text ("invalid (unknown flag bits)"), now `invalid` with the reason in
// `error`; and a source whose name is quoted got a stray `c` after the quote in "looked
// for `"a\u{2028}b.py"c` beside it".
#[test]
fn inspect_says_what_a_file_is() {
    let Some(py) = harness::any_python("check::inspect_says_what_a_file_is") else { return };
    let tree = Tree::new();
    std::os::unix::fs::symlink("nowhere.pyc", tree.path("dangling.pyc")).unwrap();
    let run = tree.hashpyc().args(["inspect", "dangling.pyc"]).run();
    run.assert_code(1);
    assert!(run.stdout.contains("symbolic link to `nowhere.pyc`, which does not exist"), "{}", run.stdout);
    tree.write("m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let mut bytes = tree.read(pyc(py, "m"));
    bytes[4] = 7;
    tree.write("flags.pyc", &bytes);
    let json = tree.hashpyc().args(["inspect", "--json", "flags.pyc"]).run();
    json.assert_code(1);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["mode"], "invalid", "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown flag bits"), "{v}");
    tree.write("a\u{2028}b.py", "y = 1\n");
    let run = tree.hashpyc().args(["inspect", "a\u{2028}b.py"]).run();
    run.assert_code(1);
    assert!(run.stdout.contains("for \"a\\u{2028}b.pyc\" beside it)"), "{}", run.stdout);
}

/// `check --all --format json` of `tree` (exit status 1 asserted) and its findings by path
/// (without a leading `./`): the outcome and the detail.
fn findings_of_check_all(
    py: &Python,
    tree: &Tree,
) -> (crate::harness::Run, BTreeMap<String, (String, serde_json::Value)>) {
    let run = tree.hashpyc().args(["check", "--all", "--format", "json"]).python(py).arg(".").run();
    run.assert_code(1);
    let mut got = BTreeMap::new();
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] == "finding" {
            let path = v["path"].as_str().unwrap().trim_start_matches("./").to_string();
            got.insert(path, (v["outcome"].as_str().unwrap().to_string(), v["detail"].clone()));
        }
    }
    (run, got)
}

/// Whether this interpreter imports module `name` from `tree` (its pyc, or the pyc alone
/// when the source is gone), and what it said when it did not.
fn imports(py: &Python, tree: &Tree, name: &str) -> Result<(), String> {
    let out = py.cmd().args(["-c", &format!("import {name}")]).current_dir(tree.root()).output().unwrap();
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

per_python!(check_reads_the_whole_body, |py: &Python| {
    let tree = Tree::new();
    for name in ["intact", "header_only", "garbage", "cut", "trailing"] {
        tree.write(
            format!("{name}.py"),
            format!("def f():\n    return {name:?}\n\nclass C:\n    x = (1, 2.5, 'é')\n"),
        );
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let header = tree.read(pyc(py, "intact"))[..16].to_vec();
    let edit = |name: &str, f: &dyn Fn(Vec<u8>) -> Vec<u8>| {
        let p = tree.path(pyc(py, name));
        std::fs::write(&p, f(std::fs::read(&p).unwrap())).unwrap();
    };
    edit("header_only", &|d| d[..16].to_vec());
    edit("garbage", &|d| [&d[..16], &b"\x00garbage"[..]].concat());
    edit("cut", &|d| d[..d.len() - 3].to_vec());
    edit("trailing", &|d| [&d[..], &b"N"[..]].concat());
    assert_eq!(tree.read(pyc(py, "intact"))[..16], header[..]);
    // The interpreter refuses the pycs whose body is not one whole code object (and, since
    // the header says the source matches, does not fall back to compiling the source).
    imports(py, &tree, "intact").unwrap();
    for name in ["header_only", "garbage", "cut"] {
        let err = imports(py, &tree, name).expect_err(name);
        assert!(err.contains("EOFError") || err.contains("bad marshal data"), "{name}: {err}");
    }
    let (run, got) = findings_of_check_all(py, &tree);
    assert_eq!(got["intact.py"].0, "ok", "{}", run.stdout);
    for name in ["header_only", "garbage", "cut"] {
        let (outcome, detail) = &got[&format!("{name}.py")];
        assert_eq!(outcome, "invalid", "{name}: {}", run.stdout);
        assert!(detail.as_str().is_some_and(|d| d.starts_with("body: ")), "{name}: {detail}");
    }
    // Extra bytes after the code object: CPython loads it (see trailing_bytes_are_stale),
    // but it is not what hashpyc writes.
    imports(py, &tree, "trailing").unwrap();
    assert_eq!(got["trailing.py"], ("stale".into(), "1 byte after the code object".into()), "{}", run.stdout);
    // Text output names the reason, with or without -v; -v also names the target as
    // compile -v does.
    let text = tree.hashpyc().arg("check").python(py).arg("garbage.py").run();
    text.assert_code(1);
    assert!(text.stdout.starts_with("invalid    garbage.py: body: "), "{}", text.stdout);
    let verbose = tree.hashpyc().args(["check", "-v"]).python(py).arg("garbage.py").run();
    assert_eq!(verbose.stdout, text.stdout);
    let compiled = tree.hashpyc().args(["compile", "-v", "-n"]).python(py).arg("garbage.py").run();
    let target_line = |stderr: &str| stderr.lines().find(|l| l.starts_with("target: ")).map(str::to_string);
    let compile_target = target_line(&compiled.stderr).unwrap_or_else(|| panic!("{}", compiled.stderr));
    let check_target = target_line(&verbose.stderr).unwrap_or_else(|| panic!("{}", verbose.stderr));
    assert!(compile_target.starts_with(&format!("{check_target}, ")), "{check_target}\n{compile_target}");
    assert!(check_target.contains(&py.version) && check_target.contains("magic "), "{check_target}");
    // compile agrees: it rewrites exactly those, and then every pyc imports and checks ok.
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg(".").run();
    dry.assert_code(0);
    let recompiled: Vec<&str> = dry.stdout.lines().filter(|l| l.starts_with("compile ")).collect();
    assert_eq!(recompiled.len(), 4, "{}", dry.stdout);
    assert!(dry.stdout.contains("fresh    ./intact.py"), "{}", dry.stdout);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    tree.hashpyc().arg("check").python(py).arg(".").run().assert_code(0);
    for name in ["header_only", "garbage", "cut", "trailing"] {
        imports(py, &tree, name).unwrap();
    }
});

// Bytes that `marshal.loads` refuses past their sizes passed the body walk, so `check` said
// `ok` and a cache entry so damaged (its checksum made to match) was written as a pyc that
// fails to import: a `u` string that is not UTF-8, a long integer's digit of 2**15 or
// more, a long whose last digit is 0, a NULL (`0`) inside a tuple. Each is now invalid,
// in CPython's words; a surrogate (which `marshal` decodes with `surrogatepass`) is not.
// Every pyc written by hashpyc, then edited in place; CPython's import is the judge.
per_python!(marshal_data_that_loads_refuses_is_invalid, |py: &Python| {
    // (module, source, bytes of the body to replace, replacement, CPython's error, detail)
    type Case<'a> = (&'a str, &'a str, &'a [u8], &'a [u8], &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            "utf8",
            "S = 'h\u{e9}llo'\n",
            "h\u{e9}llo".as_bytes(),
            b"h\xff\xa9llo",
            "UnicodeDecodeError",
            "string not UTF-8",
        ),
        // 2**40: three 15-bit digits, 0, 0 and 1024.
        (
            "digit",
            "L = 1099511627776\n",
            b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x04",
            b"\x03\x00\x00\x00\x00\x80\x00\x00\x00\x04",
            "digit out of range in long",
            "digit out of range in long",
        ),
        (
            "unnormalized",
            "L = 1099511627776\n",
            b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x04",
            b"\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            "unnormalized long data",
            "unnormalized long data",
        ),
        (
            "null",
            "T = (None, None, None, None, None)\n",
            b"\x05NNNNN",
            b"\x05NN0NN",
            "NULL object in marshal data",
            "NULL object",
        ),
    ];
    let tree = Tree::new();
    for (name, source, ..) in &cases {
        tree.write(format!("{name}.py"), source);
    }
    // A lone surrogate: written by marshal as UTF-8 would were it allowed, read back so.
    tree.write("surrogate.py", "S = '\\ud800'\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    for (name, _, from, to, ..) in &cases {
        let file = pyc(py, name);
        let data = tree.read(&file);
        let at =
            data.windows(from.len()).position(|w| w == *from).unwrap_or_else(|| panic!("{name}: {data:?}"));
        assert_eq!(data.windows(from.len()).filter(|w| w == from).count(), 1, "{name}");
        let mut edited = data.clone();
        edited[at..at + from.len()].copy_from_slice(to);
        tree.write(&file, edited);
    }
    imports(py, &tree, "surrogate").unwrap();
    let (run, got) = findings_of_check_all(py, &tree);
    assert_eq!(got["surrogate.py"].0, "ok", "{}", run.stdout);
    for (name, _, _, _, error, detail) in &cases {
        // CPython refuses the pyc (its header matches the source: no fallback to it).
        let err = imports(py, &tree, name).expect_err(name);
        assert!(err.contains(error), "{name}: {err}");
        assert_eq!(
            got[&format!("{name}.py")],
            ("invalid".to_string(), format!("body: bad marshal data ({detail})").into()),
            "{name}: {}",
            run.stdout
        );
    }
    // compile writes them anew, as py_compile would.
    let compiled = tree.hashpyc().args(["compile", "-v"]).python(py).arg(".").run();
    compiled.assert_code(0);
    for (name, ..) in &cases {
        assert!(compiled.stderr.contains(&format!("compiled `./{name}.py`")), "{name}: {}", compiled.stderr);
        imports(py, &tree, name).unwrap();
    }
    tree.hashpyc().arg("check").python(py).arg(".").run().assert_code(0);
});

// `check` and `compile` read a pyc whole before judging it: a 2 GiB file where a pyc
// should be took 2 GB of memory (a run under a memory limit aborted). Of a large file they
// read no more than says what it is: its header, and its body as far as its code object
// goes; the bytes after it are counted, not read.
#[test]
fn huge_pycs_are_read_no_further_than_needed() {
    let Some(py) = harness::any_python("check::huge_pycs_are_read_no_further_than_needed") else { return };
    let tree = Tree::new();
    for name in ["intact", "zeros", "header", "tail"] {
        tree.write(format!("{name}.py"), format!("A = {name:?}\n"));
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let sizes: BTreeMap<&str, usize> =
        ["zeros", "header", "tail"].into_iter().map(|n| (n, tree.read(pyc(py, n)).len())).collect();
    const HUGE: u64 = 2 << 30;
    // Sparse files far larger than the memory the runs may use: zeros, the pyc's header
    // then zeros, the whole pyc then zeros.
    for (name, keep) in [("zeros", 0), ("header", 16), ("tail", sizes["tail"])] {
        let p = tree.path(pyc(py, name));
        let head = std::fs::read(&p).unwrap()[..keep].to_vec();
        std::fs::write(&p, head).unwrap();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(HUGE).unwrap();
    }
    let run =
        tree.hashpyc().args(["check", "--format", "json"]).python(py).arg(".").bounded(256_000, 120).run();
    run.assert_code(1);
    let mut got = BTreeMap::new();
    for line in run.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        if v["type"] == "finding" {
            let path = v["path"].as_str().unwrap().trim_start_matches("./").to_string();
            got.insert(path, (v["outcome"].as_str().unwrap().to_string(), v["detail"].clone()));
        }
    }
    assert_eq!(got.len(), 3, "{run:?}");
    assert_eq!(got["zeros.py"].0, "invalid", "{run:?}");
    assert!(got["zeros.py"].1.as_str().unwrap().contains("magic"), "{run:?}");
    assert_eq!(got["header.py"], ("invalid".into(), "body: unknown marshal type 0x00".into()), "{run:?}");
    let trailing = format!("{} bytes after the code object", HUGE - sizes["tail"] as u64);
    assert_eq!(got["tail.py"], ("stale".into(), trailing.clone().into()), "{run:?}");
    // compile says the same and writes them anew, under the same limit.
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg(".").bounded(256_000, 120).run();
    dry.assert_code(0);
    assert!(dry.stdout.contains(&format!("compile  ./tail.py  ({trailing})")), "{dry:?}");
    let compiled = tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").bounded(256_000, 120).run();
    compiled.assert_code(0);
    for (name, size) in sizes {
        assert_eq!(tree.read(pyc(py, name)).len(), size, "{name}");
        imports(py, &tree, name).unwrap();
    }
    tree.hashpyc().arg("check").python(py).arg(".").run().assert_code(0);
}

/// The marshal body of a pyc re-dumped by CPython with marshal version 2, which writes no
/// references, so every object stands alone; and the offsets of the top code object's
/// first five parts (`co_code` first).
fn body_without_refs(py: &Python, tree: &Tree, pyc: &str) -> (Vec<u8>, Vec<usize>) {
    let script = "import io, marshal, sys\n\
        co = marshal.loads(open(sys.argv[1], 'rb').read()[16:])\n\
        body = marshal.dumps(co, 2)\n\
        f = io.BytesIO(body)\n\
        f.seek(1 + 4 * int(sys.argv[2]))\n\
        offsets = []\n\
        for _ in range(5):\n    offsets.append(f.tell())\n    marshal.load(f)\n\
        print(body.hex())\n\
        print(' '.join(map(str, offsets)))\n";
    let ints = match py.minor {
        (3, 7) => 5,
        (3, 8..=10) => 6,
        _ => 5,
    };
    let out = py.run(&["-c", script, pyc, &ints.to_string()], tree.root());
    let mut lines = out.lines();
    let hex = lines.next().unwrap();
    let body = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let offsets = lines.next().unwrap().split(' ').map(|n| n.parse().unwrap()).collect();
    (body, offsets)
}

per_python!(check_refuses_code_objects_cpython_refuses, |py: &Python| {
    // Each case sets values CPython's code-object constructor refuses when unmarshalling
    // (3.7: PyCode_New; 3.8-3.10: PyCode_NewWithPosOnlyArgs; 3.11+: _PyCode_Validate), in
    // the module's code object; marshal's structure stays whole.
    let (py37, py311) = (py.minor == (3, 7), py.minor >= (3, 11));
    // The ints after the type byte: argcount, [posonlyargcount], kwonlyargcount, [nlocals],
    // stacksize, flags.
    let names: &'static [&'static str] = match (py37, py311) {
        (true, _) => &["argcount", "kwonlyargcount", "nlocals", "stacksize", "flags"],
        (_, false) => &["argcount", "posonlyargcount", "kwonlyargcount", "nlocals", "stacksize", "flags"],
        (_, true) => &["argcount", "posonlyargcount", "kwonlyargcount", "stacksize", "flags"],
    };
    let set = move |body: &mut Vec<u8>, name: &str, f: &dyn Fn(i32) -> i32| {
        let at = 1 + 4 * names.iter().position(|n| *n == name).unwrap();
        let old = i32::from_le_bytes(body[at..at + 4].try_into().unwrap());
        body[at..at + 4].copy_from_slice(&f(old).to_le_bytes());
    };
    // A bytes object at `at` (`s`, length, payload) with one more byte at its end.
    fn grow(body: &mut Vec<u8>, at: usize, byte: u8) {
        assert_eq!(body[at], b's');
        let n = u32::from_le_bytes(body[at + 1..at + 5].try_into().unwrap());
        body[at + 1..at + 5].copy_from_slice(&(n + 1).to_le_bytes());
        body.insert(at + 5 + n as usize, byte);
    }
    type Edit = Box<dyn Fn(&mut Vec<u8>, &[usize])>;
    let mut cases: Vec<(&str, Edit)> = vec![
        ("argcount_negative", Box::new(move |b, _| set(b, "argcount", &|_| -1))),
        ("kwonlyargcount_negative", Box::new(move |b, _| set(b, "kwonlyargcount", &|_| -1))),
        // More arguments than local names: one argument, or `*args`, in a module.
        ("varnames_too_small_args", Box::new(move |b, _| set(b, "argcount", &|n| n + 1))),
        ("varnames_too_small_star", Box::new(move |b, _| set(b, "flags", &|f| f | 0x04))),
    ];
    if !py311 {
        cases.push(("nlocals_negative", Box::new(move |b, _| set(b, "nlocals", &|_| -1))));
    }
    if !py37 {
        cases.push(("posonlyargcount_negative", Box::new(move |b, _| set(b, "posonlyargcount", &|_| -1))));
        cases.push(("argcount_below_posonly", Box::new(move |b, _| set(b, "posonlyargcount", &|_| 1))));
        cases.push(("stacksize_negative", Box::new(move |b, _| set(b, "stacksize", &|_| -1))));
        cases.push(("flags_negative", Box::new(move |b, _| set(b, "flags", &|_| -1))));
    }
    if py311 {
        // 3.7-3.10 load an odd `co_code` (their check is an assert).
        cases.push(("code_odd", Box::new(move |b, at| grow(b, at[0], 0))));
        // One more local kind (CO_FAST_LOCAL) than local names.
        cases.push(("kinds_longer_than_names", Box::new(move |b, at| grow(b, at[4], 0x20))));
    }
    let tree = Tree::new();
    let source = "def f(a, b=2, *c, d, **e):\n    x = a\n    return x\n\nclass C:\n    y = (1, 2.5, 'é')\n";
    tree.write("intact.py", source);
    for (name, _) in &cases {
        tree.write(format!("{name}.py"), source);
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    // The control: the body as CPython re-dumps it without references loads and checks ok.
    for name in std::iter::once("intact").chain(cases.iter().map(|c| c.0)) {
        let file = pyc(py, name);
        let header = tree.read(&file)[..16].to_vec();
        let (mut body, at) = body_without_refs(py, &tree, &file);
        if let Some((_, edit)) = cases.iter().find(|c| c.0 == name) {
            edit(&mut body, &at);
        }
        tree.write(&file, [header, body].concat());
    }
    imports(py, &tree, "intact").unwrap();
    let (run, got) = findings_of_check_all(py, &tree);
    assert_eq!(got["intact.py"].0, "ok", "{}", run.stdout);
    for (name, _) in &cases {
        // CPython itself refuses the pyc (and, the header matching the source, does not
        // fall back to compiling it).
        let err = imports(py, &tree, name).expect_err(name);
        assert!(err.contains("SystemError") || err.contains("ValueError"), "{name}: {err}");
        let (outcome, detail) = &got[&format!("{name}.py")];
        assert_eq!(outcome, "invalid", "{name}: {}", run.stdout);
        let detail = detail.as_str().unwrap_or_default();
        assert!(detail.starts_with("body: code object CPython refuses: "), "{name}: {detail}");
        let text = tree.hashpyc().arg("check").python(py).arg(format!("{name}.py")).run();
        text.assert_code(1);
        assert_eq!(text.stdout, format!("invalid    {name}.py: {detail}\n"));
    }
    // compile rewrites exactly those; then everything checks ok and imports.
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg(".").run();
    dry.assert_code(0);
    let recompiled = dry.stdout.lines().filter(|l| l.starts_with("compile ")).count();
    assert_eq!(recompiled, cases.len(), "{}", dry.stdout);
    assert!(dry.stdout.contains("fresh    ./intact.py"), "{}", dry.stdout);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    tree.hashpyc().arg("check").python(py).arg(".").run().assert_code(0);
    for (name, _) in &cases {
        imports(py, &tree, name).unwrap();
    }
});

per_python!(inspect_refuses_what_is_not_a_valid_pyc, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "def f():\n    return 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let good = tree.read(pyc(py, "m"));
    let body = &good[16..];
    let with = |head: &[u8], body: &[u8]| [head, body].concat();
    // A 3.6 pyc: magic 3379, then mtime and size, no flags field.
    let old = with(&[0x33, 0x0d, 0x0d, 0x0a, 1, 0, 0, 0, 6, 0, 0, 0], body);
    let cases: [(&str, Vec<u8>); 6] = [
        ("good", good.clone()),
        ("py36", old),
        ("no_magic", with(b"\0\0\r\n\x03\0\0\0aaaaaaaa", body)),
        ("flags", with(&[&good[..4], b"\x07\0\0\0", &good[8..16]].concat(), body)),
        ("empty_body", good[..16].to_vec()),
        ("garbage", with(&good[..16], b"\x00garbage")),
    ];
    // Sourceless pycs, which the interpreter imports as they are.
    for (name, bytes) in &cases {
        tree.write(format!("lone/{name}.pyc"), bytes);
    }
    for (name, _) in &cases {
        let imported =
            py.cmd().args(["-c", &format!("import {name}")]).current_dir(tree.path("lone")).output().unwrap();
        assert_eq!(
            imported.status.success(),
            *name == "good",
            "{name}: {}",
            String::from_utf8_lossy(&imported.stderr)
        );
        let run = tree.hashpyc().args(["inspect", "--json"]).arg(format!("lone/{name}.pyc")).run();
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        if *name == "good" {
            run.assert_code(0);
            assert!(v["error"].is_null(), "{v}");
        } else {
            run.assert_code(1);
            assert!(v["error"].is_string(), "{name}: {v}");
        }
    }
    let old = tree.hashpyc().arg("inspect").arg("lone/py36.pyc").run();
    assert!(old.stdout.contains("older than 3.7") && !old.stdout.contains("mode"), "{}", old.stdout);
    // A field the file has no value for is null, never "" or 0: no magic or body in a file
    // shorter than a header or one that does not exist; before 3.7 nothing past the magic
    // (the header is 12 bytes there: what follows is not a 3.7+ header or body).
    tree.write("lone/short.pyc", &good[..10]);
    let run = tree
        .hashpyc()
        .args(["inspect", "--json", "lone/nothing.pyc", "lone/short.pyc", "lone/py36.pyc"])
        .run();
    run.assert_code(1);
    let objects: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for v in &objects[..2] {
        for key in ["magic", "mode", "body_bytes", "python", "hash"] {
            assert!(v[key].is_null(), "{key}: {v}");
        }
    }
    assert_eq!(objects[2]["magic"], "330d0d0a");
    assert!(objects[2]["mode"].is_null() && objects[2]["body_bytes"].is_null(), "{}", objects[2]);
});

/// A tree with `m.py` and its pyc, compiled by `py`, whose magic number is then set to the
/// release's minus one (a development or pre-release version of the same line): the tree,
/// the release's magic number and the pyc's bytes.
fn pre_release_pyc(py: &Python) -> (Tree, u16, Vec<u8>) {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let release: u16 = py
        .run(
            &["-c", "import importlib.util as u; print(int.from_bytes(u.MAGIC_NUMBER[:2], 'little'))"],
            tree.root(),
        )
        .trim()
        .parse()
        .unwrap();
    let mut bytes = tree.read(pyc(py, "m"));
    bytes[..2].copy_from_slice(&(release - 1).to_le_bytes());
    tree.write(pyc(py, "m"), &bytes);
    (tree, release, bytes)
}

// A pyc with a development or pre-release magic number of the target's own line (3.11's
// 3494 beside its release's 3495) was "a pyc for Python 3.11, not 3.11" in `check`, and
// `inspect` called it a CPython 3.11 pyc (exit 0), though a release refuses it ("bad magic
// number"). Both now say it is a development or pre-release version's, with the magic
// numbers; `inspect` exits 1.
#[test]
fn a_pre_release_magic_number_is_named_as_one() {
    let Some(py) = harness::any_python("check::a_pre_release_magic_number_is_named_as_one") else { return };
    let (tree, release, bytes) = pre_release_pyc(py);
    tree.write("lone/m.pyc", &bytes);
    // The oracle: the interpreter refuses it.
    let imported = py.cmd().args(["-c", "import m"]).current_dir(tree.path("lone")).output().unwrap();
    assert!(!imported.status.success(), "imported");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("bad magic number"));
    let version = format!("{}.{}", py.minor.0, py.minor.1);
    let run = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("m.py").run();
    run.assert_code(1);
    let v: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["outcome"], "invalid", "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("development or pre-release version of Python {version}")), "{detail}");
    assert!(detail.contains(&(release - 1).to_string()) && detail.contains(&release.to_string()), "{detail}");
    assert!(!detail.contains(&format!("not {version}")), "{detail}");
    for pyc_path in [pyc(py, "m"), "lone/m.pyc".to_string()] {
        let json = tree.hashpyc().args(["inspect", "--json"]).arg(&pyc_path).run();
        json.assert_code(1);
        let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
        assert_eq!(v["python"], version.as_str(), "{v}");
        assert!(v["error"].as_str().unwrap().contains("development or pre-release"), "{v}");
        let text = tree.hashpyc().arg("inspect").arg(&pyc_path).run();
        text.assert_code(1);
        assert!(
            text.stdout.contains(&format!("(CPython {version} development or pre-release)")),
            "{}",
            text.stdout
        );
    }
}

// `compile -n` said of the same pyc only `invalid pyc: magic number of another Python
// version`, though its line is the target's; it now names it as `check` does (a development
// or pre-release version of the target's line, both magic numbers), in text and JSON.
#[test]
fn dry_run_names_a_pre_release_magic_number_as_check_does() {
    let Some(py) = harness::any_python("check::dry_run_names_a_pre_release_magic_number_as_check_does")
    else {
        return;
    };
    let (tree, release, _) = pre_release_pyc(py);
    let version = format!("{}.{}", py.minor.0, py.minor.1);
    let check = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("m.py").run();
    let v: serde_json::Value = serde_json::from_str(check.stdout.lines().next().unwrap()).unwrap();
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("development or pre-release version of Python {version}")), "{detail}");
    assert!(
        detail.contains(&format!("(magic {})", release - 1)) && detail.contains(&release.to_string()),
        "{detail}"
    );
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg("m.py").run();
    dry.assert_code(0);
    assert!(dry.stdout.contains(&format!("(invalid pyc: {detail})")), "{detail}\n{dry:?}");
    let json = tree.hashpyc().args(["compile", "-n", "--format", "json"]).python(py).arg("m.py").run();
    let plan: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(plan["reason"], format!("invalid pyc: {detail}"), "{json:?}");
    // The pyc is compiled again, as before.
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    tree.hashpyc().args(["check"]).python(py).arg("m.py").run().assert_code(0);
}

// A 3.12 pyc named `b.cpython-311.pyc` "matched" its source in `inspect` (exit 0), though
// 3.11's import refuses it (bad magic number): the tag its name holds is another version's
// than its magic number's. It is now an error, and `matches_source` is false.
#[test]
fn inspect_of_a_pyc_named_for_another_version() {
    let test = "check::inspect_of_a_pyc_named_for_another_version";
    let (Some(py12), Some(py11)) =
        (harness::python_or_skip((3, 12), test), harness::python_or_skip((3, 11), test))
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("b.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py12).arg("b.py").run().assert_code(0);
    let named = pyc(py11, "b");
    std::fs::rename(tree.path(pyc(py12, "b")), tree.path(&named)).unwrap();
    // The oracle: 3.11's importlib classifies the pyc it finds for `b.py`.
    let verdict = py11.run(
        &[
            "-c",
            "import importlib._bootstrap_external as e, importlib.util as u\n\
             data = open(u.cache_from_source('b.py'), 'rb').read()\n\
             try:\n    e._classify_pyc(data, 'b', {})\n    print('taken')\n\
             except ImportError as x:\n    print(x)",
        ],
        tree.root(),
    );
    assert!(verdict.contains("bad magic number"), "{verdict}");
    for arg in [&named, "b.py"] {
        let json = tree.hashpyc().args(["inspect", "--json", arg]).run();
        json.assert_code(1);
        let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
        assert_eq!((&v["python"], &v["matches_source"]), (&"3.12".into(), &false.into()), "{v}");
        assert!(v["error"].as_str().unwrap().contains("cpython-311"), "{v}");
        let text = tree.hashpyc().arg("inspect").arg(arg).run();
        text.assert_code(1);
        assert!(!text.stdout.contains("(matches"), "{}", text.stdout);
    }
}

// Strays of interpreters not checked said `"python":"cpython-39"` (the tag, where the
// README promises `X.Y`) and `"found":null` though the pyc has a header; GitHub titled
// them `(CPython cpython-39)` and gave no advice. Now `python` is the `X.Y` the tag names,
// `found` the header, the title names the interpreter (a PyPy tag as it is) and the
// annotation ends with what fixes it.
#[test]
fn strays_of_other_interpreters_say_what_they_are() {
    let test = "check::strays_of_other_interpreters_say_what_they_are";
    let Some(py) = harness::any_python(test) else { return };
    let Some(other) = other_python(py) else {
        harness::visible(&format!("SKIPPED {test}: a second CPython is needed"));
        return;
    };
    let tree = Tree::new();
    tree.write("gone.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(other).arg("gone.py").run().assert_code(0);
    std::fs::remove_file(tree.path("gone.py")).unwrap();
    let bytes = tree.read(pyc(other, "gone"));
    tree.write("__pycache__/gone.pypy39.pyc", &bytes);
    let version = format!("{}.{}", other.minor.0, other.minor.1);
    let magic: String = bytes[..4].iter().map(|b| format!("{b:02x}")).collect();
    let tagged = other.run(&["-c", "import sys; print(sys.implementation.cache_tag)"], tree.root());
    assert_eq!(format!("cpython-{}{}", other.minor.0, other.minor.1), tagged.trim());
    let json = tree.hashpyc().args(["check", "--stray", "--format", "json"]).python(py).arg(".").run();
    json.assert_code(1);
    let strays: BTreeMap<String, serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["outcome"] == "stray")
        .map(|v| (v["pyc"].as_str().unwrap().trim_start_matches("./").to_string(), v))
        .collect();
    assert_eq!(strays.len(), 2, "{}", json.stdout);
    for (name, python) in
        [(pyc(other, "gone"), version.as_str()), ("__pycache__/gone.pypy39.pyc".into(), "3.9")]
    {
        let v = &strays[&name];
        assert_eq!(v["python"], python, "{v}");
        assert_eq!(v["found"]["magic"], magic.as_str(), "{v}");
        assert_eq!(v["found"]["flags"], 3, "{v}");
    }
    let gh = tree.hashpyc().args(["check", "--stray", "--format", "github"]).python(py).arg(".").run();
    gh.assert_code(1);
    // The run's own error first (no source is left to check), then the strays.
    let mut lines: Vec<&str> = gh.stdout.lines().collect();
    assert_eq!(
        lines.remove(0),
        "::error title=hashpyc check::no Python sources to check under `.`",
        "{}",
        gh.stdout
    );
    assert_eq!(lines.len(), 2, "{}", gh.stdout);
    assert!(
        lines.iter().any(|l| l.contains(&format!("title=hashpyc check (CPython {version})::"))),
        "{}",
        gh.stdout
    );
    assert!(lines.iter().any(|l| l.contains("title=hashpyc check (pypy39)::")), "{}", gh.stdout);
    for line in lines {
        assert!(line.ends_with(" - delete it (or restore its source)"), "{line}");
    }
}

// pytest writes its rewritten-assert pycs as `__pycache__/test_a.cpython-311-pytest-8.3.4.pyc`;
// `check --stray` split the name at its last dot and reported it stray (exit 1) with a
// source `test_a.cpython-311-pytest-8.3.py` that never existed. CPython takes the module
// name up to the first dot: such a pyc is `test_a.py`'s, not stray while it exists, and
// stray under that source's name once it is gone; `compile` leaves it as it is.
#[test]
fn pytest_pycs_belong_to_their_source() {
    let Some(py) = harness::any_python("check::pytest_pycs_belong_to_their_source") else { return };
    let tree = Tree::new();
    let name =
        |stem: &str| format!("__pycache__/{stem}.cpython-{}{}-pytest-8.3.4.pyc", py.minor.0, py.minor.1);
    tree.write("test_a.py", "def test_a():\n    assert 1 + 1 == 2\n");
    tree.write("test_gone.py", "def test_b():\n    assert 2 == 2\n");
    for stem in ["test_a", "test_gone"] {
        let code = format!("import py_compile; py_compile.compile('{stem}.py', cfile='{}')", name(stem));
        py.run(&["-c", &code], tree.root());
    }
    std::fs::remove_file(tree.path("test_gone.py")).unwrap();
    let before = (tree.read(name("test_a")), tree.read(name("test_gone")));
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    assert_eq!((tree.read(name("test_a")), tree.read(name("test_gone"))), before);
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).run();
    run.assert_code(1);
    assert_eq!(run.stdout, format!("stray      {}\n", name("test_gone")), "{run:?}");
    let json = tree.hashpyc().args(["check", "--stray", "--format", "json"]).python(py).run();
    let strays: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["outcome"] == "stray")
        .collect();
    assert_eq!(strays.len(), 1, "{}", json.stdout);
    assert_eq!(strays[0]["path"], "test_gone.py", "{}", json.stdout);
    assert_eq!(strays[0]["python"], format!("{}.{}", py.minor.0, py.minor.1), "{}", json.stdout);
    // Its source back (and compiled): nothing is stray.
    tree.write("test_gone.py", "def test_b():\n    assert 2 == 2\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    tree.hashpyc().args(["check", "--stray"]).python(py).run().assert_code(0);
}

// `inspect` took the source of pytest's `__pycache__/test_a.cpython-311-pytest-8.3.4.pyc`
// as its name up to the last dot, `test_a.cpython-311-pytest-8.3.py`: "source not found"
// (JSON `source` null) though `test_a.py` is there, and `inspect test_a.py` said no pyc of
// it exists. It names the source as `check --stray` does (up to the first dot): the pyc is
// compared with `test_a.py`, and listed among that source's pycs.
#[test]
fn inspect_names_the_source_of_a_pytest_pyc() {
    let Some(py) = harness::any_python("check::inspect_names_the_source_of_a_pytest_pyc") else { return };
    let tree = Tree::new();
    let name = format!("__pycache__/test_a.cpython-{}{}-pytest-8.3.4.pyc", py.minor.0, py.minor.1);
    tree.write("test_a.py", "def test_a():\n    assert 1 + 1 == 2\n");
    let code = format!("import py_compile; py_compile.compile('test_a.py', cfile='{name}')");
    py.run(&["-c", &code], tree.root());
    let describe = |arg: &str| {
        let run = tree.hashpyc().args(["inspect", "--json", arg]).run();
        run.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!((&v["pyc"], &v["source"]), (&name.as_str().into(), &"test_a.py".into()), "{arg}: {v}");
        assert_eq!(v["matches_source"], true, "{arg}: {v}");
    };
    describe(&name);
    describe("test_a.py");
    let text = tree.hashpyc().args(["inspect", &name]).run();
    text.assert_code(0);
    assert!(text.stdout.contains("(matches `test_a.py`)"), "{}", text.stdout);
    // Edited, it no longer matches (the pyc is a timestamp one: the stamp is compared).
    tree.write("test_a.py", "def test_a():\n    assert 2 + 2 == 4\n# longer\n");
    let run = tree.hashpyc().args(["inspect", "--json", &name]).run();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!((&v["source"], &v["matches_source"]), (&"test_a.py".into(), &false.into()), "{v}");
}

// `inspect m.cpython-312.pyc` run inside `__pycache__` said `(source not found)` (JSON
// `source` null) though `../m.py` is there: the name has no `__pycache__` directory to
// take away. It is compared with `../m.py`, as its absolute path says; so is
// `./m.cpython-312.pyc`. Compiled by CPython's py_compile.
#[test]
fn inspect_inside_pycache_finds_the_source() {
    let Some(py) = harness::any_python("check::inspect_inside_pycache_finds_the_source") else { return };
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    py.run(&["-m", "py_compile", "pkg/m.py"], tree.root());
    let name = format!("m.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    let inside = tree.path("pkg/__pycache__");
    for arg in [name.clone(), format!("./{name}")] {
        let run = Hashpyc::new(&inside).args(["inspect", "--json", &arg]).run();
        run.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        let source = if arg.starts_with("./") { "./../m.py" } else { "../m.py" };
        assert_eq!((&v["source"], &v["matches_source"]), (&source.into(), &true.into()), "{arg}: {v}");
    }
    // Edited, it no longer matches.
    tree.write("pkg/m.py", "x = 2  # longer\n");
    let run = Hashpyc::new(&inside).args(["inspect", &name]).run();
    assert!(run.stdout.contains("(does NOT match `../m.py`"), "{}", run.stdout);
}

// A run killed between creating a pyc's temporary file and renaming it over the pyc leaves
// `.m.cpython-312.pyc.a1B2c3.tmp` in `__pycache__` (`.m.pyc.….tmp` beside a legacy pyc);
// `check --stray` did not report it. It names it, whether or not its source exists, with
// why it is there; without `--stray` nothing changes.
#[test]
fn stray_temporary_files_are_found() {
    let Some(py) = harness::any_python("check::stray_temporary_files_are_found") else { return };
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    tree.write("legacy/l.py", "y = 2\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("pkg").run().assert_code(0);
    tree.hashpyc().args(["compile", "-q", "-b"]).python(py).arg("legacy").run().assert_code(0);
    // Cut short mid-write, and killed right after creating it (empty).
    let temp = format!("pkg/{}", pyc(py, ".m").replace(".pyc", ".pyc.Ab3dE9.tmp"));
    tree.write(&temp, &tree.read(format!("pkg/{}", pyc(py, "m")))[..10]);
    tree.write("legacy/.l.pyc.x7Yz01.tmp", b"");
    let why = "temporary file of a write that did not finish (a run was killed, or one is writing it now)";
    for (layout, dir, temp) in
        [(None, "pkg", temp.as_str()), (Some("-b"), "legacy", "legacy/.l.pyc.x7Yz01.tmp")]
    {
        let check = |stray: bool| {
            let mut args = vec!["check"];
            args.extend(layout);
            args.extend(stray.then_some("--stray"));
            tree.hashpyc().args(args).python(py).arg(dir).run()
        };
        let plain = check(false);
        plain.assert_code(0);
        assert_eq!(plain.stdout, "", "{plain:?}");
        let run = check(true);
        run.assert_code(1);
        assert_eq!(run.stdout, format!("stray      {temp}: {why}\n"), "{run:?}");
        assert!(run.stderr.contains("1 stray"), "{run:?}");
    }
    // Only a report: the temporary files are left alone.
    assert!(tree.path(&temp).exists() && tree.path("legacy/.l.pyc.x7Yz01.tmp").exists());
}

// The temporary file of a pyc whose name is too long to take whole (over 243 bytes: 12 go
// to `.`, `.a1B2c3.tmp`) had its name cut at the end, `.pyc` and part of the tag lost, so
// `check --stray` did not report what a killed run left of it. A run killed at its rename
// (strace injects SIGKILL there) leaves one; it is reported.
#[test]
fn a_long_pyc_names_temporary_file_is_stray() {
    let test = "check::a_long_pyc_names_temporary_file_is_stray";
    let Some(py) = harness::any_python(test) else { return };
    if !harness::strace_or_skip(test) {
        return;
    }
    let tree = Tree::new();
    // A pyc name of 250 bytes, the longest cut being 255 (NAME_MAX).
    for total in [250, 255] {
        let stem = "m".repeat(total - pyc(py, "").len() + "__pycache__/".len());
        let source = format!("{stem}.py");
        assert_eq!(pyc(py, &stem).len() - "__pycache__/".len(), total);
        let dir = format!("d{total}");
        tree.write(format!("{dir}/{source}"), "x = 1\n");
        // (The probe is remembered first: the pyc's rename is the run's first.)
        tree.hashpyc().args(["compile", "-q"]).python(py).arg(&dir).run().assert_code(0);
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2"])
            .args(["-e", "inject=rename,renameat,renameat2:signal=KILL"])
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .args(["compile", "--force", "--python"])
            .arg(&py.path)
            .arg(&dir)
            .current_dir(tree.root())
            .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
            .env("HASHPYC_SETTLE_SECONDS", "1000000000")
            .env("HASHPYC_NO_CONFIG", "1")
            .output()
            .unwrap();
        // (strace dies of the signal its tracee died of.)
        let killed = std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(libc::SIGKILL)
            || out.status.code() == Some(128 + libc::SIGKILL);
        assert!(killed, "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
        let left: Vec<String> = std::fs::read_dir(tree.path(format!("{dir}/__pycache__")))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].len() <= 255, "{}", left[0]);
        let run = tree.hashpyc().args(["check", "--stray"]).python(py).arg(&dir).run();
        run.assert_code(1);
        assert_eq!(
            run.stdout,
            format!(
                "stray      {dir}/__pycache__/{}: temporary file of a write that did not finish (a run was killed, or one is writing it now)\n",
                left[0]
            ),
            "{run:?}"
        );
    }
}

// `--legacy` pycs whose source is gone: Python imports `gone.pyc` as a sourceless module,
// so a stale one runs old code; `check --stray` must name it as it names a stray in
// `__pycache__`. A `.pyc` of another interpreter beside the sources is not this check's.
per_python!(legacy_strays_are_found, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.write("gone.py", "STALE = True\n");
    tree.hashpyc().args(["compile", "-q", "-b"]).python(py).arg(".").run().assert_code(0);
    std::fs::remove_file(tree.path("gone.py")).unwrap();
    let other = crate::harness::pythons().values().find(|o| o.minor != py.minor);
    if let Some(other) = other {
        tree.write("foreign.py", "y = 2\n");
        other.run(&["-c", "import py_compile; py_compile.compile('foreign.py', 'foreign.pyc')"], tree.root());
        std::fs::remove_file(tree.path("foreign.py")).unwrap();
    }
    // What Python does with it: the stale module imports.
    assert_eq!(py.run(&["-c", "import gone; print(gone.STALE)"], tree.root()).trim(), "True");
    let run = tree.hashpyc().args(["check", "-b", "--stray"]).python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout, "stray      ./gone.pyc\n", "{}", run.stderr);
    let clean = tree.hashpyc().args(["check", "-b"]).python(py).arg(".").run();
    clean.assert_code(0);
});

/// The pycs `check --stray` reports (their paths, sorted).
fn strays_of(run: &crate::harness::Run) -> Vec<String> {
    let mut out: Vec<String> =
        run.stdout.lines().filter_map(|l| l.strip_prefix("stray      ")).map(str::to_string).collect();
    out.sort();
    out
}

// The selection rules pick sources and the directories walked for them, not pycs: a
// repository's .gitignore lists `__pycache__/` and `*.py[cod]` as a matter of course, and
// must not hide from `check --stray --respect-gitignore` the pycs CPython wrote for sources
// since deleted, in `__pycache__` or (`--legacy`) beside the sources.
per_python!(ignore_files_do_not_hide_strays, |py: &Python| {
    let tree = Tree::new();
    std::fs::create_dir(tree.path(".git")).unwrap();
    tree.write(".gitignore", "__pycache__/\n*.py[cod]\n");
    for rel in ["a.py", "gone.py", "pkg/b.py", "pkg/gone2.py"] {
        tree.write(rel, "x = 1\n");
    }
    for extra in [&[][..], &["-b"][..]] {
        let mut args = vec!["-m", "compileall", "-q", "--invalidation-mode", "checked-hash"];
        args.extend_from_slice(extra);
        args.push(".");
        py.run(&args, tree.root());
    }
    std::fs::remove_file(tree.path("gone.py")).unwrap();
    std::fs::remove_file(tree.path("pkg/gone2.py")).unwrap();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let in_pycache = [format!("./__pycache__/gone.{tag}.pyc"), format!("./pkg/__pycache__/gone2.{tag}.pyc")];
    let legacy = ["./gone.pyc".to_string(), "./pkg/gone2.pyc".to_string()];
    let mut both: Vec<String> = in_pycache.iter().chain(&legacy).cloned().collect();
    both.sort();
    for (layout, want) in [(&[][..], in_pycache.to_vec()), (&["-b"][..], both)] {
        for rules in [&[][..], &["--respect-gitignore"][..]] {
            let run =
                tree.hashpyc().args(["check", "--stray"]).args(layout).args(rules).python(py).arg(".").run();
            assert_eq!(strays_of(&run), want, "{layout:?} {rules:?}\n{}{}", run.stdout, run.stderr);
        }
    }
});

/// The findings of `check` and the sources `compile -n` would compile, as `(path, verdict)`
/// with `./` trimmed: `check`'s outcome, `compile` for what the dry run recompiles.
fn check_and_dry_run(tree: &Tree, py: &Python, args: &[&str]) -> (crate::harness::Run, Vec<String>) {
    let check = tree.hashpyc().args(["check", "-v"]).args(args).python(py).run();
    let dry = tree.hashpyc().args(["compile", "-n"]).args(args).python(py).run();
    dry.assert_code(0);
    let compiled = dry
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("compile  "))
        .map(|l| l.split("  (").next().unwrap().to_string())
        .collect();
    (check, compiled)
}

fn not_ok(run: &crate::harness::Run) -> Vec<String> {
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string())
        .collect()
}

// pycs that CPython wrote with another embedded path (`compileall -d`, `-s`/`-p`,
// py_compile's `dfile`) are recompiled by `compile` unless it is asked for the same path:
// `check` says so too (stale, naming both paths), and takes the same flags and keys.
per_python!(check_compares_the_embedded_path_as_compile_does, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "def f():\n    return 1\n");
    tree.write("src/pkg/m.py", "class C:\n    x = 2\n");
    let compileall = |extra: &[&str]| {
        let mut args = vec!["-I", "-m", "compileall", "-q", "--invalidation-mode", "checked-hash"];
        args.extend_from_slice(extra);
        args.push("src");
        py.run(&args, tree.root());
    };
    compileall(&["-d", "/app"]);
    let (check, compile) = check_and_dry_run(&tree, py, &["src"]);
    check.assert_code(1);
    assert_eq!(not_ok(&check), compile, "{}", check.stdout);
    assert_eq!(compile, ["src/a.py", "src/pkg/m.py"]);
    assert!(
        check
            .stdout
            .contains("stale      src/pkg/m.py: embedded path is `/app/pkg/m.py`, expected `src/pkg/m.py`"),
        "{}",
        check.stdout
    );
    // Asked for CPython's path, both find every pyc fresh.
    let (check, compile) = check_and_dry_run(&tree, py, &["-d", "/app", "src"]);
    check.assert_code(0);
    assert!(compile.is_empty() && check.stdout.is_empty(), "{compile:?} {}", check.stdout);
    let (check, compile) = check_and_dry_run(&tree, py, &["--ddir", "/srv", "src"]);
    check.assert_code(1);
    assert_eq!(not_ok(&check), compile);
    assert!(check.stdout.contains("embedded path is `/app/a.py`, expected `/srv/a.py`"), "{}", check.stdout);
    // The configuration's `ddir`, and a flag that replaces it.
    tree.write("hashpyc.toml", "ddir = \"/app\"\n");
    let (check, compile) = check_and_dry_run(&tree, py, &["src"]);
    check.assert_code(0);
    assert!(compile.is_empty());
    let (check, compile) = check_and_dry_run(&tree, py, &["-s", "src", "src"]);
    check.assert_code(1);
    assert_eq!(not_ok(&check), compile);
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    let both = tree.hashpyc().args(["check", "-d", "/app", "-p", "/x"]).python(py).arg("src").run();
    both.assert_code(2);
    assert!(both.stderr.contains("cannot be used with"), "{}", both.stderr);

    // `-s`/`-p`: compileall's own (3.9+), else py_compile's `dfile` with the same result.
    if py.minor >= (3, 9) {
        compileall(&["-f", "-s", "src", "-p", "/opt"]);
    } else {
        for (src, dfile) in [("src/a.py", "/opt/a.py"), ("src/pkg/m.py", "/opt/pkg/m.py")] {
            let code = format!(
                "import py_compile as p; p.compile({src:?}, dfile={dfile:?}, doraise=True, \
                 invalidation_mode=p.PycInvalidationMode.CHECKED_HASH)"
            );
            py.run(&["-I", "-c", &code], tree.root());
        }
    }
    let (check, compile) = check_and_dry_run(&tree, py, &["-s", "src", "-p", "/opt", "src"]);
    check.assert_code(0);
    assert!(compile.is_empty() && check.stdout.is_empty(), "{compile:?} {}", check.stdout);
    let (check, compile) = check_and_dry_run(&tree, py, &["-d", "/app", "src"]);
    check.assert_code(1);
    assert_eq!(not_ok(&check), compile);
    assert!(check.stdout.contains("embedded path is `/opt/a.py`, expected `/app/a.py`"), "{}", check.stdout);
    // A prefix that does not apply: warned about as `compile` does, paths expected as walked.
    let miss = tree.hashpyc().args(["check", "-s", "lib"]).python(py).arg("src").run();
    miss.assert_code(1);
    assert!(
        miss.stderr.contains("--strip-prefix `lib` does not match the start of 2 source paths"),
        "{}",
        miss.stderr
    );
});

// `--stray` with a pycache prefix: the tree CPython itself writes (`-X pycache_prefix`)
// holds the pycs of every directory compiled on the machine; only the mirror of the
// directories checked is searched, for any interpreter's tag (as in `__pycache__`), as
// deep as the walk.
per_python!(prefix_strays_are_found, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    let prefix = Tree::new();
    for rel in ["app/m.py", "app/gone.py", "app/sub/gone2.py", "other/gone3.py"] {
        tree.write(rel, "x = 1\n");
    }
    let prefix_opt = format!("pycache_prefix={}", prefix.root().display());
    for dir in ["app", "other"] {
        py.run(
            &["-X", &prefix_opt, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", dir],
            tree.root(),
        );
    }
    for rel in ["app/gone.py", "app/sub/gone2.py", "other/gone3.py"] {
        std::fs::remove_file(tree.path(rel)).unwrap();
    }
    // Where CPython put the pycs (below the working directory as getcwd() spells it) is
    // where hashpyc looks for them.
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let mirror = |rel: &str| {
        let abs = std::fs::canonicalize(tree.root()).unwrap().join(rel);
        prefix.root().join(abs.strip_prefix("/").unwrap())
    };
    let gone = mirror(&format!("app/gone.{tag}.pyc"));
    let gone2 = mirror(&format!("app/sub/gone2.{tag}.pyc"));
    assert!(gone.is_file() && gone2.is_file() && mirror(&format!("other/gone3.{tag}.pyc")).is_file());
    // A pyc of an interpreter not checked whose source is gone is stray too, as it is in
    // `__pycache__` (it was left out).
    let other_tag = if py.minor == (3, 12) { "cpython-313" } else { "cpython-312" };
    let gone_other = mirror(&format!("app/gone.{other_tag}.pyc"));
    std::fs::copy(&gone, &gone_other).unwrap();
    let sorted = |paths: &[&std::path::PathBuf]| {
        let mut out: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        out.sort();
        out
    };
    let check = |args: &[&str]| {
        tree.hashpyc()
            .args(["check", "--stray", "--pycache-prefix"])
            .arg(prefix.root())
            .args(args)
            .python(py)
            .run()
    };
    let run = check(&["app"]);
    run.assert_code(1);
    let want = sorted(&[&gone, &gone2, &gone_other]);
    assert_eq!(strays_of(&run), want, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.stdout);
    let json = check(&["--format", "json", "app"]);
    let first: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["path"], "app/gone.py", "{first}");
    // As deep as the walk goes.
    let shallow = check(&["-l", "app"]);
    assert_eq!(strays_of(&shallow), sorted(&[&gone, &gone_other]), "{}{}", shallow.stdout, shallow.stderr);
    // Through PYTHONPYCACHEPREFIX too, as CPython honours it.
    let env = tree
        .hashpyc()
        .args(["check", "--stray"])
        .env("PYTHONPYCACHEPREFIX", prefix.root())
        .python(py)
        .arg("app")
        .run();
    assert_eq!(strays_of(&env), want, "{}{}", env.stdout, env.stderr);
    // Without --stray, the app's one pyc is fine.
    let plain =
        tree.hashpyc().args(["check", "--pycache-prefix"]).arg(prefix.root()).python(py).arg("app").run();
    plain.assert_code(0);
});

// Under a pycache prefix, `check --stray` searched the mirror for the checked interpreters'
// tags only: another CPython's pyc, or pytest's (`test_a.cpython-311-pytest-8.3.4.pyc`),
// whose source was deleted was not reported there, while in `__pycache__` it is. Both
// layouts now give the same strays: every pyc whose source is gone, whoever wrote it, and
// none whose source exists. A `.gitignore` rule naming a deleted source
// (`--respect-gitignore`) hides none of its pycs in either layout (a rule selects files
// that are there).
#[test]
fn prefix_strays_are_any_interpreters_as_in_pycache() {
    let test = "check::prefix_strays_are_any_interpreters_as_in_pycache";
    // `--pycache-prefix` needs 3.8+.
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let Some(other) = other_python(py) else {
        harness::visible(&format!("SKIPPED {test}: a second CPython is needed"));
        return;
    };
    let prefix = Tree::new();
    // The pyc names of `stem` (another CPython's, pytest's under `py`'s tag), and the sources
    // deleted: their pycs are the strays, in either layout.
    let names = |stem: &str| {
        [
            format!("{stem}.cpython-{}{}.pyc", other.minor.0, other.minor.1),
            format!("{stem}.cpython-{}{}-pytest-8.3.4.pyc", py.minor.0, py.minor.1),
        ]
    };
    let gone = ["test_gone", "ignored_gone"];
    // The tree, with `py`'s pycs by `compile` and the others by py_compile, into
    // `__pycache__` or (`dir`: the mirror of the tree) under the prefix; then the sources
    // in `gone` deleted. Returns the tree and where the stray pycs are.
    let layout = |prefixed: bool| {
        let tree = Tree::new();
        std::fs::create_dir(tree.path(".git")).unwrap();
        tree.write(".gitignore", "ignored_gone.py\n");
        let dir = if prefixed {
            prefix.root().join(std::fs::canonicalize(tree.root()).unwrap().strip_prefix("/").unwrap())
        } else {
            tree.path("__pycache__")
        };
        std::fs::create_dir_all(&dir).unwrap();
        for stem in ["test_a"].iter().chain(&gone) {
            tree.write(format!("{stem}.py"), "def test_x():\n    assert 1 + 1 == 2\n");
            let [theirs, pytest] = names(stem);
            for (python, name) in [(other, theirs), (py, pytest)] {
                let cfile = dir.join(name);
                let code = format!(
                    "import py_compile; py_compile.compile('{stem}.py', cfile={:?})",
                    cfile.to_str().unwrap()
                );
                python.run(&["-c", &code], tree.root());
            }
        }
        let mut compile = tree.hashpyc().args(["compile", "-q", "--no-ignore"]).python(py);
        if prefixed {
            compile = compile.arg("--pycache-prefix").arg(prefix.root());
        }
        compile.run().assert_code(0);
        for stem in gone {
            std::fs::remove_file(tree.path(format!("{stem}.py"))).unwrap();
        }
        let mut want: Vec<String> = gone
            .iter()
            .flat_map(|stem| {
                let mut all = names(stem).to_vec();
                all.push(format!("{stem}.cpython-{}{}.pyc", py.minor.0, py.minor.1));
                all
            })
            .map(|n| if prefixed { dir.join(n).display().to_string() } else { format!("__pycache__/{n}") })
            .collect();
        want.sort();
        (tree, want)
    };
    for prefixed in [false, true] {
        let (tree, want) = layout(prefixed);
        for rules in [&[][..], &["--respect-gitignore"][..]] {
            let mut check = tree.hashpyc().args(["check", "--stray"]).args(rules).python(py);
            if prefixed {
                check = check.arg("--pycache-prefix").arg(prefix.root());
            }
            let run = check.run();
            run.assert_code(1);
            assert_eq!(strays_of(&run), want, "prefix: {prefixed}, {rules:?}\n{}{}", run.stdout, run.stderr);
        }
    }
}

// `check --stray` finds the same strays in the prefix tree CPython writes (`-X
// pycache_prefix`) as in `__pycache__` directories, whatever the selection rules: the pyc
// of a deleted source in a directory that `--exclude`, `.gitignore` or `--skip-hidden`
// keeps the walk out of is reported in neither layout, and one in a directory walked is
// reported in both, whatever its own name (`check` applies no rule to the name of a source
// that is gone). In the prefix tree, the mirror of a directory deleted whole is searched
// as that directory would be if it were there, empty.
per_python!(prefix_strays_follow_the_selection_rules, min = (3, 8), |py: &Python| {
    let keep = ["keep.py", "sub/keep.py", "excluded/keep.py", "ignored/keep.py", ".hidden/keep.py"];
    let gone = [
        "gone.py",
        "gone_excluded.py",
        "gone_ignored.py",
        ".gone_hidden.py",
        "sub/gone.py",
        "excluded/gone.py",
        "ignored/gone.py",
        ".hidden/gone.py",
    ];
    let deleted =
        ["deleted/gone.py", "deleted_excluded/gone.py", "deleted_ignored/gone.py", ".deleted/gone.py"];
    let prefix = Tree::new();
    let prefix_opt = format!("pycache_prefix={}", prefix.root().display());
    // The same sources in two trees, compiled by CPython into `__pycache__` and under a
    // prefix; then the sources of `gone` and the directories of `deleted` are removed.
    let layout = |x: &[&str]| {
        let tree = Tree::new();
        std::fs::create_dir(tree.path(".git")).unwrap();
        tree.write(".gitignore", "__pycache__/\ngone_ignored.py\nignored/\ndeleted_ignored/\n");
        for rel in keep.iter().chain(&gone).chain(&deleted) {
            tree.write(rel, "x = 1\n");
        }
        let mut args = x.to_vec();
        args.extend(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "."]);
        py.run(&args, tree.root());
        for rel in gone {
            std::fs::remove_file(tree.path(rel)).unwrap();
        }
        for rel in deleted {
            std::fs::remove_dir_all(tree.path(rel).parent().unwrap()).unwrap();
        }
        tree
    };
    let in_tree = layout(&[]);
    let prefixed = layout(&["-X", &prefix_opt]);
    assert!(in_tree.path("__pycache__").is_dir() && !prefixed.path("__pycache__").exists());
    // The sources of the strays reported, `./` trimmed.
    let strays = |tree: &Tree, args: &[&str]| {
        let run = tree
            .hashpyc()
            .args(["check", "--stray", "--format", "json"])
            .args(args)
            .python(py)
            .arg(".")
            .run();
        stray_sources(&run.stdout)
    };
    let with_prefix = |rules: &[&str]| {
        let mut args = vec!["--pycache-prefix", prefix.root().to_str().unwrap()];
        args.extend_from_slice(rules);
        strays(&prefixed, &args)
    };
    let sorted = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let all_rules = [
        "--exclude",
        "excluded/",
        "--exclude",
        "deleted_excluded",
        "--exclude",
        "gone_excluded.py",
        "--respect-gitignore",
        "--skip-hidden",
    ];
    let cases: [(&[&str], Option<Vec<String>>); 6] = [
        (&[], Some(sorted(&gone))),
        (&all_rules[..6], None),
        (&["--respect-gitignore"], None),
        (&["--skip-hidden"], None),
        (&["-l"], None),
        (
            &all_rules,
            Some(sorted(&[
                "gone.py",
                "gone_excluded.py",
                "gone_ignored.py",
                ".gone_hidden.py",
                "sub/gone.py",
            ])),
        ),
    ];
    for (rules, want) in cases {
        let ours = strays(&in_tree, rules);
        if let Some(want) = want {
            assert_eq!(ours, want, "{rules:?}");
        }
        // The prefix tree gives the same, and in the deleted directories what the walk
        // finds when they are there (empty).
        let found = with_prefix(rules);
        let (in_deleted, rest): (Vec<String>, Vec<String>) = found
            .into_iter()
            .partition(|p| deleted.iter().any(|d| p.starts_with(d.split('/').next().unwrap())));
        assert_eq!(rest, ours, "{rules:?}");
        for rel in deleted {
            std::fs::create_dir(prefixed.path(rel).parent().unwrap()).unwrap();
        }
        let there: Vec<String> = with_prefix(rules)
            .into_iter()
            .filter(|p| deleted.iter().any(|d| p.starts_with(d.split('/').next().unwrap())))
            .collect();
        for rel in deleted {
            std::fs::remove_dir(prefixed.path(rel).parent().unwrap()).unwrap();
        }
        assert_eq!(in_deleted, there, "{rules:?}");
        if rules.is_empty() {
            assert_eq!(in_deleted, sorted(&deleted));
        } else if rules == all_rules {
            assert_eq!(in_deleted, ["deleted/gone.py"]);
        }
    }
});

fn git(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_COMMON_DIR")
        .output()
        .expect("git")
}

fn git_ok(dir: &std::path::Path, args: &[&str]) {
    let out = git(dir, args);
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

// Under a pycache prefix, `check --stray --respect-gitignore` reads the exclude file of a
// linked worktree and of a submodule (whose `.git` is a file, `gitdir: …`) as the walk
// does: a worktree's rules are its main repository's `.git/info/exclude` (the common
// directory), a submodule's own `info/exclude` is not read (its git directory has no
// `commondir`); the `.gitignore` of the worktree's root applies and that of the directory
// above it (the main working tree, the superproject) does not. Each tree is built twice,
// compiled by CPython into `__pycache__` and under a prefix; then the sources are deleted,
// and in the prefix layout their directories too (in `__pycache__` the directory stays,
// holding its pycs). Both layouts give the same strays, and the prefix layout the same
// with the deleted directories there and empty (the walk itself deciding); for the
// worktree, what git itself does not ignore (`git check-ignore`).
per_python!(prefix_strays_read_the_exclude_file_of_worktrees_and_submodules, min = (3, 8), |py: &Python| {
    let keep = ["keep.py", "ex/keep.py"];
    let gone = [
        "gone.py",
        "ex/gone.py",
        "deleted/gone.py",
        "deleted_ex/gone.py",
        "deleted_gi/gone.py",
        "above/gone.py",
    ];
    let deleted = ["deleted", "deleted_ex", "deleted_gi", "above"];
    let prefix = Tree::new();
    let prefix_opt = format!("pycache_prefix={}", prefix.root().display());
    // A repository with one commit in `repo`, and the tree checked: its linked worktree
    // `repo/wt`, or the submodule `sup/sub` of a superproject `sup`. Returns the tree
    // checked and the paths of `gone` that git ignores there.
    let layout = |tree: &Tree, submodule: bool, x: &[&str]| {
        let repo = tree.path("repo");
        std::fs::create_dir(&repo).unwrap();
        git_ok(&repo, &["init", "-q"]);
        tree.write("repo/README", "");
        git_ok(&repo, &["add", "README"]);
        git_ok(&repo, &["commit", "-q", "-m", "init"]);
        let (root, exclude) = if submodule {
            let sup = tree.path("sup");
            std::fs::create_dir(&sup).unwrap();
            git_ok(&sup, &["init", "-q"]);
            let url = repo.to_str().unwrap();
            git_ok(&sup, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "sub"]);
            (sup.join("sub"), sup.join(".git/modules/sub/info/exclude"))
        } else {
            git_ok(&repo, &["worktree", "add", "-q", "wt"]);
            (repo.join("wt"), repo.join(".git/info/exclude"))
        };
        assert!(root.join(".git").is_file(), "{}", root.display());
        std::fs::create_dir_all(exclude.parent().unwrap()).unwrap();
        std::fs::write(&exclude, "ex/\ndeleted_ex/\n").unwrap();
        std::fs::write(root.join(".gitignore"), "__pycache__/\ndeleted_gi/\n").unwrap();
        std::fs::write(root.parent().unwrap().join(".gitignore"), "above/\n").unwrap();
        for rel in keep.iter().chain(&gone) {
            tree.write(root.join(rel), "x = 1\n");
        }
        let mut args = x.to_vec();
        args.extend(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "."]);
        py.run(&args, &root);
        let mut ignored: Vec<String> =
            String::from_utf8(git(&root, &[&["check-ignore"][..], &gone].concat()).stdout)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
        ignored.sort();
        for rel in gone {
            std::fs::remove_file(root.join(rel)).unwrap();
        }
        if !x.is_empty() {
            for dir in deleted {
                std::fs::remove_dir_all(root.join(dir)).unwrap();
            }
        }
        (root, ignored)
    };
    // The sources of the strays reported.
    let strays = |root: &std::path::Path, args: &[&str]| {
        let run = crate::harness::Hashpyc::new(root)
            .args(["check", "--stray", "--respect-gitignore", "--format", "json"])
            .args(args)
            .python(py)
            .arg(".")
            .run();
        stray_sources(&run.stdout)
    };
    let prefix_args = ["--pycache-prefix", prefix.root().to_str().unwrap()];
    for submodule in [false, true] {
        let (a, b) = (Tree::new(), Tree::new());
        let (in_tree, ignored) = layout(&a, submodule, &[]);
        let (prefixed, _) = layout(&b, submodule, &["-X", &prefix_opt]);
        assert!(in_tree.join("deleted_ex/__pycache__").is_dir() && !prefixed.join("deleted_ex").exists());
        let ours = strays(&in_tree, &[]);
        if !submodule {
            // The rules are live: git ignores the directories listed in its main
            // repository's exclude file and in the worktree's `.gitignore`, not the one above.
            assert_eq!(ignored, ["deleted_ex/gone.py", "deleted_gi/gone.py", "ex/gone.py"]);
            let mut want: Vec<String> =
                gone.iter().map(|g| g.to_string()).filter(|g| !ignored.contains(g)).collect();
            want.sort();
            assert_eq!(ours, want);
        }
        assert_eq!(strays(&prefixed, &prefix_args), ours, "submodule: {submodule}");
        for dir in deleted {
            std::fs::create_dir(prefixed.join(dir)).unwrap();
        }
        assert_eq!(strays(&prefixed, &prefix_args), ours, "submodule: {submodule}, directories there");
    }
});

// `--respect-gitignore` reads git's exclude files as git (and ripgrep) do: the repository's
// `.git/info/exclude` and the global excludes file, the one `core.excludesFile` names in
// `~/.gitconfig`, else `$XDG_CONFIG_HOME/git/ignore`, else `~/.config/git/ignore`. For each
// home (a fake HOME, and XDG_CONFIG_HOME set or not), `check` skips exactly what
// `git check-ignore` says git ignores there, and compile writes no pyc for those.
#[test]
fn respect_gitignore_reads_the_global_excludes_file_and_info_exclude() {
    let Some(py) =
        harness::any_python("check::respect_gitignore_reads_the_global_excludes_file_and_info_exclude")
    else {
        return;
    };
    let names = ["keep.py", "by_config.py", "by_xdg.py", "by_home_config.py", "by_info.py"];
    // (what the home holds, whether XDG_CONFIG_HOME is set, the file git should ignore
    // through it besides `by_info.py`)
    type Home<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Home, bool, &str); 4] = [
        (
            &[(".gitconfig", "[core]\n\texcludesFile = EXCLUDES\n"), ("excludes", "by_config.py\n")],
            false,
            "by_config.py",
        ),
        (&[("xdg/git/ignore", "by_xdg.py\n")], true, "by_xdg.py"),
        (&[(".config/git/ignore", "by_home_config.py\n")], false, "by_home_config.py"),
        // `core.excludesFile` wins over the default file.
        (
            &[
                (".gitconfig", "[core]\n\texcludesFile = EXCLUDES\n"),
                ("excludes", "by_config.py\n"),
                ("xdg/git/ignore", "by_xdg.py\n"),
            ],
            true,
            "by_config.py",
        ),
    ];
    for (files, xdg, ignored_by_home) in cases {
        let tree = Tree::new();
        let home = tree.path("home");
        for (rel, text) in files {
            tree.write(home.join(rel), text.replace("EXCLUDES", home.join("excludes").to_str().unwrap()));
        }
        let repo = tree.path("repo");
        std::fs::create_dir(&repo).unwrap();
        let with_home = |cmd: &mut std::process::Command| {
            cmd.env("HOME", &home).env("GIT_CONFIG_NOSYSTEM", "1").env_remove("GIT_CONFIG_GLOBAL");
            if xdg {
                cmd.env("XDG_CONFIG_HOME", home.join("xdg"));
            } else {
                cmd.env_remove("XDG_CONFIG_HOME");
            }
            for k in ["GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE", "GIT_COMMON_DIR"] {
                cmd.env_remove(k);
            }
        };
        let mut init = std::process::Command::new("git");
        init.args(["init", "-q"]).current_dir(&repo);
        with_home(&mut init);
        harness::run_command(&mut init).assert_code(0);
        std::fs::write(repo.join(".git/info/exclude"), "by_info.py\n").unwrap();
        for name in names {
            tree.write(repo.join(name), "x = 1\n");
        }
        let mut check_ignore = std::process::Command::new("git");
        check_ignore.arg("check-ignore").args(names).current_dir(&repo);
        with_home(&mut check_ignore);
        let git_says = harness::run_command(&mut check_ignore);
        let mut ignored: Vec<&str> = git_says.stdout.lines().collect();
        ignored.sort();
        let mut want_ignored = vec!["by_info.py", ignored_by_home];
        want_ignored.sort();
        assert_eq!(ignored, want_ignored, "git's own verdict, files {files:?}, XDG_CONFIG_HOME set: {xdg}");
        let hashpyc = || {
            let h = harness::Hashpyc::new(&repo).env("HOME", &home).env("GIT_CONFIG_NOSYSTEM", "1");
            if xdg { h.env("XDG_CONFIG_HOME", home.join("xdg")) } else { h.env_remove("XDG_CONFIG_HOME") }
        };
        let run = hashpyc().args(["check", "--respect-gitignore", "--format", "json"]).python(py).run();
        run.assert_code(1);
        let mut checked: Vec<String> = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "finding")
            .map(|v| v["path"].as_str().unwrap().to_string())
            .collect();
        checked.sort();
        let mut want: Vec<String> =
            names.iter().filter(|n| !ignored.contains(n)).map(|n| n.to_string()).collect();
        want.sort();
        assert_eq!(checked, want, "files {files:?}, XDG_CONFIG_HOME set: {xdg}: {}", run.stdout);
        hashpyc().args(["compile", "-q", "--respect-gitignore"]).python(py).run().assert_code(0);
        for name in names {
            let pyc = repo.join(pyc(py, name.trim_end_matches(".py")));
            assert_eq!(
                pyc.exists(),
                !ignored.contains(&name),
                "{name}, files {files:?}, XDG_CONFIG_HOME set: {xdg}"
            );
        }
    }
}

// A root named on the command line that is a symbolic link to a directory elsewhere is
// walked as its target, whose ignore files apply (its own and its parents' `.gitignore`, its
// repository's `.git/info/exclude`), not those of the directory holding the link: what the
// ignore crate's WalkBuilder, and so ripgrep and fd, do (it resolves the root before reading
// the parents' rules), with `--follow` or without (a root is always entered). `a/link` ->
// `b/pkg`, two repositories each ignoring a file of `b/pkg` by `.gitignore` and by
// `info/exclude`: the files skipped are those `git check-ignore` ignores in `b/pkg`.
#[test]
fn a_linked_root_gets_the_ignore_files_of_its_target() {
    let Some(py) = harness::any_python("check::a_linked_root_gets_the_ignore_files_of_its_target") else {
        return;
    };
    let tree = Tree::new();
    let names = ["keep.py", "a_ign.py", "a_ex.py", "b_ign.py", "b_ex.py"];
    let home = tree.path("home");
    std::fs::create_dir(&home).unwrap();
    for repo in ["a", "b"] {
        std::fs::create_dir(tree.path(repo)).unwrap();
        let mut init = std::process::Command::new("git");
        init.args(["init", "-q"])
            .current_dir(tree.path(repo))
            .env("HOME", &home)
            .env("GIT_CONFIG_NOSYSTEM", "1");
        harness::run_command(&mut init).assert_code(0);
        tree.write(format!("{repo}/.gitignore"), format!("{repo}_ign.py\n"));
        tree.write(format!("{repo}/.git/info/exclude"), format!("{repo}_ex.py\n"));
    }
    for name in names {
        tree.write(format!("b/pkg/{name}"), "x = 1\n");
    }
    std::os::unix::fs::symlink("../b/pkg", tree.path("a/link")).unwrap();
    let mut check_ignore = std::process::Command::new("git");
    check_ignore
        .arg("check-ignore")
        .args(names)
        .current_dir(tree.path("b/pkg"))
        .env("HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("XDG_CONFIG_HOME");
    let git_says = harness::run_command(&mut check_ignore);
    let mut ignored: Vec<&str> = git_says.stdout.lines().collect();
    ignored.sort();
    assert_eq!(ignored, ["b_ex.py", "b_ign.py"], "git's own verdict in the target");
    let hashpyc =
        || tree.hashpyc().env("HOME", &home).env("GIT_CONFIG_NOSYSTEM", "1").env_remove("XDG_CONFIG_HOME");
    for follow in [&[][..], &["--follow"][..]] {
        for root in ["a/link", "a/link/"] {
            let run = hashpyc()
                .args(["check", "--respect-gitignore", "--format", "json"])
                .args(follow)
                .python(py)
                .arg(root)
                .run();
            run.assert_code(1);
            let mut checked: Vec<String> = run
                .stdout
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v["type"] == "finding")
                .map(|v| v["path"].as_str().unwrap().to_string())
                .collect();
            checked.sort();
            let mut want: Vec<String> =
                names.iter().filter(|n| !ignored.contains(n)).map(|n| format!("a/link/{n}")).collect();
            want.sort();
            assert_eq!(checked, want, "{follow:?} {root}: {}", run.stdout);
        }
    }
    hashpyc()
        .args(["compile", "-q", "--respect-gitignore", "--follow"])
        .python(py)
        .arg("a/link")
        .run()
        .assert_code(0);
    for name in names {
        let pyc = tree.path("b/pkg").join(pyc(py, name.trim_end_matches(".py")));
        assert_eq!(pyc.exists(), !ignored.contains(&name), "{name}");
    }
}

// `--target` takes X.Y: the full version an interpreter reports (`python --version`) is
// refused with the X.Y of its `sys.version_info` as the example, which then works.
per_python!(target_wants_the_minor_version, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "M = 1\n");
    let full = py.run(&["-c", "import platform; print(platform.python_version())"], tree.root());
    let minor = py.run(&["-c", "import sys; print('%d.%d' % sys.version_info[:2])"], tree.root());
    let (full, minor) = (full.trim(), minor.trim());
    let run = tree.hashpyc().args(["check", "--target", full, "m.py"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(&format!(
            "error: invalid --target `{full}`: expected a version X.Y, e.g. `--target {minor}`; the built-in table knows CPython 3.7 to "
        )),
        "{}",
        run.stderr
    );
    // X.Y itself is taken (the pyc is missing: exit 1, not a usage error).
    tree.hashpyc().args(["check", "--target", minor, "m.py"]).run().assert_code(1);
    for bad in ["3", "three.twelve"] {
        let run = tree.hashpyc().args(["check", "--target", bad, "m.py"]).run();
        run.assert_code(2);
        assert!(run.stderr.contains("expected a version X.Y, e.g. `--target 3."), "{}", run.stderr);
    }
});

// A tree compiled under another name (`compile .` then `check src`, or by an absolute
// path) is stale for its embedded paths alone, which the reason lines show one by one: a
// hint says what happened. A real difference (CPython's `compileall -d`) gets none.
per_python!(spelling_hint_for_embedded_paths, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("src/b.py", "B = 2\n");
    let check = |arg: &str| tree.hashpyc().arg("check").python(py).arg(arg).run();
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let run = check("src");
    run.assert_code(1);
    let hint = "hint: 2 stale pycs embed another spelling of their source path (`./src/a.py` for `src/a.py`)";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    assert!(
        run.stderr.contains("as the compile that wrote them did (`hashpyc check ./src`)"),
        "{}",
        run.stderr
    );
    // Named as it was compiled: fresh, and no hint.
    let same = check("./src");
    same.assert_code(0);
    assert!(!harness::has_other_hint(&same.stderr), "{}", same.stderr);
    // CPython's compileall given the absolute path embeds it: the same hint.
    let abs = std::fs::canonicalize(tree.path("src")).unwrap();
    let abs = abs.to_str().unwrap();
    py.run(&["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", abs], tree.root());
    let run = check("src");
    run.assert_code(1);
    let hint = format!("another spelling of their source path (`{abs}/a.py` for `src/a.py`)");
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    // Named by that path (as an image's health check would): the command given passes.
    let command = format!("`hashpyc check {abs}` checks them as written");
    assert!(run.stderr.contains(&command), "{}", run.stderr);
    check(abs).assert_code(0);
    // Another path altogether (-d): stale with its reason, no hint.
    py.run(
        &["-m", "compileall", "-q", "-f", "--invalidation-mode", "checked-hash", "-d", "/app", "src"],
        tree.root(),
    );
    let run = check("src");
    run.assert_code(1);
    assert!(run.stdout.contains("embedded path is `/app/a.py`"), "{}", run.stdout);
    assert!(!harness::has_other_hint(&run.stderr), "{}", run.stderr);
});

/// Import `pkg.m` (whose source says `X = 2`) from `src` with `py`, as a user's process
/// does, so that CPython rewrites its pyc; the canonical `src`.
fn import_m_with(py: &Python, tree: &Tree) -> std::path::PathBuf {
    let src = std::fs::canonicalize(tree.path("src")).unwrap();
    let out = py
        .cmd()
        .env("PYTHONPATH", &src)
        .args(["-c", "import pkg.m; print(pkg.m.X)"])
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n", "{}", String::from_utf8_lossy(&out.stderr));
    src
}

/// `check`'s hint for one pyc CPython's import rewrote with the absolute path `abs`.
fn rewrote_hint(abs: &Path) -> String {
    format!(
        "hint: 1 stale pyc embeds another spelling of its source path (`{}` for `src/pkg/m.py`): the \
         absolute path, which CPython's import writes when it rewrites a pyc whose source changed",
        abs.display()
    )
}

// A module of a tree compiled by hashpyc, edited and then imported by CPython (writing pycs,
// its source on `sys.path` by its absolute path): CPython rewrites the stale checked pyc,
// embedding that absolute path. `check` is right to call it stale, but its hint said to
// "name the tree as the compile that wrote it did", though no compile wrote it; now it
// names CPython's import and says `hashpyc compile` writes it again.
per_python!(spelling_hint_for_pycs_cpython_rewrote, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/pkg/__init__.py", "");
    tree.write("src/pkg/m.py", "X = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    let pyc = crate::compile::pyc_of(&tree, py, "src/pkg/m.py");
    let before = std::fs::read(&pyc).unwrap();
    tree.write("src/pkg/m.py", "X = 2\n");
    let src = import_m_with(py, &tree);
    assert!(std::fs::read(&pyc).unwrap() != before, "CPython did not rewrite the pyc");
    let run = tree.hashpyc().arg("check").python(py).run();
    run.assert_code(1);
    let abs = src.join("pkg/m.py");
    let reason = format!("src/pkg/m.py: embedded path is `{}`, expected `src/pkg/m.py`", abs.display());
    assert!(run.stdout.contains(&reason), "{}", run.stdout);
    let hint = rewrote_hint(&abs);
    assert!(run.stderr.contains(&hint), "{}", run.stderr);
    assert!(!run.stderr.contains("name the tree as the compile"), "{}", run.stderr);
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    tree.hashpyc().arg("check").python(py).run().assert_code(0);
});

// The same with two targets, as the pre-commit example sets them: the import by CPython
// 3.12 rewrites its pyc only, so 3.13's pyc of that source is stale by its source. That
// finding took the hint away from the pyc the import rewrote; now the hint is given for
// it, counting it alone, and the other stale pyc keeps its own line.
#[test]
fn spelling_hint_for_a_pyc_cpython_rewrote_beside_another_targets() {
    let test = "check::spelling_hint_for_a_pyc_cpython_rewrote_beside_another_targets";
    let (Some(py12), Some(py13)) =
        (crate::harness::python_or_skip((3, 12), test), crate::harness::python_or_skip((3, 13), test))
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/pkg/__init__.py", "");
    tree.write("src/pkg/m.py", "X = 1\n");
    tree.write("src/pkg/n.py", "Y = 1\n");
    let both = |args: &[&str]| tree.hashpyc().args(args).python(py12).python(py13).run();
    both(&["compile", "-q"]).assert_code(0);
    tree.write("src/pkg/m.py", "X = 2\n");
    let src = import_m_with(py12, &tree);
    let abs = src.join("pkg/m.py");
    let hint = rewrote_hint(&abs);
    for args in [&["check"][..], &["check", "src"]] {
        let run = both(args);
        run.assert_code(1);
        let reason = format!(
            "src/pkg/m.py  [CPython 3.12]: embedded path is `{}`, expected `src/pkg/m.py`",
            abs.display()
        );
        assert!(run.stdout.contains(&reason), "{}", run.stdout);
        assert!(run.stdout.contains("stale      src/pkg/m.py  [CPython 3.13]\n"), "{}", run.stdout);
        assert!(run.stderr.contains(&hint), "{args:?}: {}", run.stderr);
    }
    // A source edited since, with no pyc rewritten: no spelling hint.
    both(&["compile", "-q"]).assert_code(0);
    tree.write("src/pkg/n.py", "Y = 2\n");
    let run = both(&["check"]);
    run.assert_code(1);
    assert!(!run.stderr.contains("spelling"), "{}", run.stderr);
}

// Pycs compiled without the `prepend-prefix` a configuration sets since (or with another
// `-p`) were said to embed their path "as spelled from `/app`, where the compile that wrote
// it ran: run `hashpyc check` from there" (`check -p 3.12 src`: "spelled from `3.12`"): the
// prefix was taken for a working directory (helper report). Now the hint says the pycs were
// written without the prefix, or with another one, and what to run; the working-directory
// hint stays for a tree compiled elsewhere with the same prefix.
#[test]
fn spelling_hint_tells_a_prepend_prefix_from_a_working_directory() {
    let Some(py) =
        crate::harness::any_python("check::spelling_hint_tells_a_prepend_prefix_from_a_working_directory")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/pkg/m.py", "x = 1\n");
    tree.write("pyproject.toml", "[project]\nname = \"a\"\n[tool.hashpyc]\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    tree.write("pyproject.toml", "[project]\nname = \"a\"\n[tool.hashpyc]\nprepend-prefix = \"/app\"\n");
    let run = tree.hashpyc().arg("check").python(py).run();
    run.assert_code(1);
    let hint = "hint: 1 stale pyc embeds its source path as walked (`src/pkg/m.py` for \
                `/app/src/pkg/m.py`): the compile that wrote it ran without `prepend-prefix = \"/app\"` \
                in `pyproject.toml` line 4, which this check applies: `hashpyc compile` rewrites it \
                with that, or check without that if the pycs are as meant";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    assert!(!run.stderr.contains("spelled from"), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--no-config", "-p", "3.12", "src"]).python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("ran without --prepend-prefix `3.12`"), "{}", run.stderr);
    assert!(!run.stderr.contains("spelled from"), "{}", run.stderr);
    // Written with `-p 3.12`: checked with the file's `/app`, and with no prefix.
    tree.hashpyc().args(["compile", "-q", "--no-config", "-p", "3.12"]).python(py).run().assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).run();
    run.assert_code(1);
    let hint = "hint: 1 stale pyc embeds its source path with the prepend prefix `3.12` \
                (`3.12/src/pkg/m.py` for `/app/src/pkg/m.py`), where this check applies \
                `prepend-prefix = \"/app\"` in `pyproject.toml` line 4: the compile that wrote it \
                was given `-p 3.12`; `hashpyc check --prepend-prefix 3.12` checks it as written";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--no-config"]).python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("where this check applies no prepend prefix"), "{}", run.stderr);
    tree.hashpyc().args(["check", "--no-config", "-p", "3.12"]).python(py).run().assert_code(0);
    // The same prefix, compiled from `src`: that is a working directory.
    Hashpyc::new(&tree.path("src"))
        .args(["compile", "-q", "--no-config", "-p", "/app"])
        .python(py)
        .run()
        .assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("as spelled from `src` (`/app/pkg/m.py` for `/app/src/pkg/m.py`)"),
        "{}",
        run.stderr
    );
}

/// Every line of `stdout` as JSON (panics on a line that is not), and the last one's type.
fn json_objects(command: &str, run: &crate::harness::Run) -> Vec<serde_json::Value> {
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {l:?}")))
        .collect()
}

// `--format json` puts everything about the run on stdout in both commands: findings,
// per-file errors, notices (a dangling symlink, `-s` that does not apply, check's hints),
// a path that does not exist, an empty selection, and the summary. stderr is left to
// what ends the run before it starts (a usage error from clap, an interpreter that cannot
// be probed), the same in both.
#[test]
fn json_mode_leaves_stderr_to_operational_errors() {
    let Some(py) = crate::harness::pythons().values().next_back() else {
        crate::harness::visible(
            "SKIPPED check::json_mode_leaves_stderr_to_operational_errors: no CPython found",
        );
        return;
    };
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("src/b.py", "B = 2\n");
    tree.write("empty/README", "no sources here\n");
    let run = |command: &str, args: &[&str]| {
        tree.hashpyc().arg(command).args(["--format", "json"]).python(py).args(args).run()
    };
    // Each situation: check first (it changes nothing), then compile (which may repair it).
    let both = |what: &str, args: &[&str], codes: (i32, i32)| {
        let mut out = Vec::new();
        for (command, code) in [("check", codes.0), ("compile", codes.1)] {
            let r = run(command, args);
            assert_eq!(r.code, Some(code), "{what}: {command} exit status\n{}\n{}", r.stdout, r.stderr);
            assert_eq!(r.stderr, "", "{what}: {command} printed on stderr in JSON mode");
            let objects = json_objects(command, &r);
            assert_eq!(
                objects.last().map(|o| o["type"].clone()),
                Some("summary".into()),
                "{what}: {command}"
            );
            // The summary counts the `error` objects (check's empty selection was one, not
            // counted).
            let errors = objects.iter().filter(|o| o["type"] == "error").count();
            assert_eq!(objects.last().unwrap()["errors"], errors, "{what}: {command}: {objects:?}");
            out.push(objects);
        }
        out
    };
    let pyc = |stem: &str| format!("src/__pycache__/{stem}.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("src").run().assert_code(0);
    both("a clean tree", &["src"], (0, 0));

    std::fs::remove_file(tree.path(pyc("a"))).unwrap();
    let short = tree.path(pyc("b"));
    std::fs::write(&short, &tree.read(pyc("b"))[..10]).unwrap();
    let found = both("a missing and an invalid pyc", &["src"], (1, 0));
    let outcomes: Vec<_> = found[0].iter().filter_map(|o| o["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["missing", "invalid"], "{:?}", found[0]);

    // A directory where a pyc should be: check cannot read it, compile cannot write it.
    std::fs::remove_file(tree.path(pyc("a"))).unwrap();
    std::fs::create_dir(tree.path(pyc("a"))).unwrap();
    let found = both("an unreadable pyc", &["src"], (1, 1));
    assert!(found[0].iter().any(|o| o["outcome"] == "unreadable"), "{:?}", found[0]);
    assert!(found[1].iter().any(|o| o["type"] == "error" && o["path"] == "src/a.py"), "{:?}", found[1]);
    std::fs::remove_dir(tree.path(pyc("a"))).unwrap();

    let found = both("a path that does not exist", &["src", "no-such-dir"], (2, 2));
    for objects in &found {
        assert_eq!(objects[0]["type"], "error", "{objects:?}");
        assert_eq!(objects[0]["path"], "no-such-dir", "{objects:?}");
    }
    // Nothing to check is a finding of check's (an error object); compile has nothing to do.
    let found = both("an empty selection", &["empty"], (1, 0));
    assert!(
        found[0][0]["message"].as_str().unwrap().starts_with("no Python sources to check"),
        "{:?}",
        found[0]
    );
    std::os::unix::fs::symlink("nowhere.py", tree.path("src/dangling.py")).unwrap();
    let found = both("a dangling symlink", &["src"], (0, 0));
    for objects in &found {
        assert_eq!((&objects[0]["type"], &objects[0]["path"]), (&"notice".into(), &"src/dangling.py".into()));
        // Counted, as text counts it (`1 link to nothing skipped`).
        assert_eq!(objects.last().unwrap()["skipped_links_to_nothing"], 1, "{objects:?}");
    }
    std::fs::remove_file(tree.path("src/dangling.py")).unwrap();
    // `-s` that applies to no path: a notice in both.
    let found = both("-s that does not apply", &["-s", "lib", "src"], (0, 0));
    for objects in &found {
        assert!(objects[0]["message"].as_str().unwrap().contains("--strip-prefix `lib` does not match"));
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("src").run().assert_code(0);
    // check's hint (the tree compiled under another name) is a notice too.
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("./src").run().assert_code(0);
    let check = run("check", &["src"]);
    check.assert_code(1);
    assert_eq!(check.stderr, "");
    let notice = json_objects("check", &check).into_iter().find(|o| o["type"] == "notice").expect("a hint");
    assert!(
        notice["message"].as_str().unwrap().contains("another spelling of their source path"),
        "{notice}"
    );
    let text = tree.hashpyc().arg("check").python(py).arg("src").run();
    assert!(
        text.stderr.contains(&format!("hint: {}", notice["message"].as_str().unwrap())),
        "{}",
        text.stderr
    );

    // What ends a run before it starts is on stderr in both, and stdout is empty.
    let operational: [(&[&str], &str); 2] = [
        (&["--python", "/nonexistent/python"], "error: Python interpreter `/nonexistent/python`"),
        (&["--no-such-flag"], "error: unexpected argument '--no-such-flag'"),
    ];
    for command in ["check", "compile"] {
        for (args, error) in operational {
            let r = tree.hashpyc().arg(command).args(["--format", "json"]).args(args).arg("src").run();
            r.assert_code(2);
            assert_eq!(r.stdout, "", "{command}");
            assert!(r.stderr.starts_with(error), "{command}: {}", r.stderr);
        }
    }
}

/// A pyc that CPython imports although bytes follow its code object: importlib reads the
/// body with `marshal.loads`, which ignores what follows the object it reads.
const TRAILING_REF: &str = r#"
import importlib.util as u, importlib._bootstrap_external as b, os, sys
source = open("m.py", "rb").read()
# Another module's code under a header whose hash is m.py's: what runs says which was used.
code = compile(b"print('ran the code in the pyc')\n", "m.py", "exec", dont_inherit=True)
data = b._code_to_hash_pyc(code, u.source_hash(source), True) + sys.argv[1].encode()
pyc = u.cache_from_source("m.py")
os.makedirs(os.path.dirname(pyc), exist_ok=True)
open(pyc, "wb").write(data)
"#;

// A checked pyc with the right hash and bytes after its code object: CPython imports it
// and runs its code, leaving the file as it is, so `check` does not call it invalid; but
// py_compile never writes such a file, so it is stale (naming the bytes), `compile`
// rewrites it as py_compile writes it (in either mode: never a header rewrite that keeps
// them), and `inspect` counts them.
per_python!(trailing_bytes_are_stale, |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "print('ran the source')\n");
    let extra = "N-trailing";
    py.run(&["-I", "-c", TRAILING_REF, extra], tree.root());
    let p = pyc(py, "m");
    let crafted = tree.read(&p);
    let ran = py.cmd().args(["-c", "import m"]).current_dir(tree.root()).output().unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran the code in the pyc\n");
    assert_eq!(tree.read(&p), crafted, "CPython kept the pyc as it was");

    // py_compile's own pyc, with the same bytes appended.
    let reference = |mode: &str| {
        py_compile(py, &tree, "m.py", mode);
        tree.read(&p)
    };
    let unchecked = reference("UNCHECKED_HASH");
    let checked = reference("CHECKED_HASH");
    std::fs::write(tree.path(&p), [&checked[..], extra.as_bytes()].concat()).unwrap();
    let ran = py.cmd().args(["-c", "import m"]).current_dir(tree.root()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "ran the source\n");
    let want = format!("{} bytes after the code object", extra.len());
    let check = tree.hashpyc().arg("check").python(py).arg("m.py").run();
    check.assert_code(1);
    assert_eq!(check.stdout, format!("stale      m.py: {want}\n"), "{}", check.stderr);
    let json = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("m.py").run();
    let finding: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&finding["outcome"], &finding["detail"]),
        (&"stale".into(), &want.clone().into()),
        "{finding}"
    );
    // inspect: no error (CPython uses it), the extra bytes counted.
    let inspect = tree.hashpyc().arg("inspect").arg(&p).run();
    inspect.assert_code(0);
    assert!(inspect.stdout.contains(&format!("  trailing     {want} (")), "{}", inspect.stdout);
    let described = tree.hashpyc().args(["inspect", "--json"]).arg(&p).run();
    described.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(described.stdout.trim()).unwrap();
    assert_eq!((&v["trailing_bytes"], &v["error"]), (&extra.len().into(), &serde_json::Value::Null), "{v}");
    assert_eq!(v["body_bytes"], checked.len() - 16 + extra.len(), "{v}");

    // compile recompiles it, saying why, into py_compile's bytes; in the other mode too.
    let compiled = tree.hashpyc().args(["compile", "-v"]).python(py).arg("m.py").run();
    compiled.assert_code(0);
    assert!(compiled.stderr.contains(&format!("compiled `m.py` ({want})")), "{}", compiled.stderr);
    assert_eq!(tree.read(&p), checked);
    tree.hashpyc().arg("check").python(py).arg("m.py").run().assert_code(0);
    let fresh = tree.hashpyc().args(["inspect", "--json"]).arg(&p).run();
    assert_eq!(serde_json::from_str::<serde_json::Value>(fresh.stdout.trim()).unwrap()["trailing_bytes"], 0);
    std::fs::write(tree.path(&p), [&checked[..], extra.as_bytes()].concat()).unwrap();
    let other = tree.hashpyc().args(["compile", "-q", "--invalidation-mode", "unchecked-hash"]).python(py);
    other.arg("m.py").run().assert_code(0);
    assert_eq!(tree.read(&p), unchecked);
});

// The remembered "does not compile" was lost when the source was spelled otherwise than
// `compile` saw it (`../proj/bad.py` from another directory, a linked directory: the memo
// was keyed by the lexical path) or the interpreter named otherwise (a link to it: the memo
// was keyed by the name given). Now any spelling of either finds it, in `check` as in
// `compile` ("remembered": true, no Python started for the source).
#[test]
fn remembered_failures_survive_other_spellings() {
    let Some(py) = harness::any_python("check::remembered_failures_survive_other_spellings") else { return };
    let tree = Tree::new();
    tree.write("proj/bad.py", "X = 1\ndef f(:\n    pass\n");
    tree.write("other/.keep", "");
    std::os::unix::fs::symlink("proj", tree.path("linked")).unwrap();
    std::os::unix::fs::symlink(&py.path, tree.path("python-alias")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let hashpyc = |dir: &str| Hashpyc::new(&tree.path(dir)).env("HASHPYC_STATE_DIR", state.path());
    hashpyc("proj").args(["compile", "-q"]).python(py).arg("bad.py").run().assert_code(1);
    let spellings: [(&str, &Path, &str); 3] = [
        ("other", &py.path, "../proj/bad.py"),
        (".", &py.path, "linked/bad.py"),
        ("proj", &tree.path("python-alias"), "bad.py"),
    ];
    for (dir, python, source) in spellings {
        let check = hashpyc(dir).arg("check").arg("--python").arg(python).arg(source).run();
        check.assert_code(1);
        assert!(
            check
                .stdout
                .starts_with(&format!("missing    {source}: the source does not compile: SyntaxError")),
            "{dir} {source}: {}",
            check.stdout
        );
        let compile =
            hashpyc(dir).args(["compile", "--format", "json"]).arg("--python").arg(python).arg(source).run();
        compile.assert_code(1);
        let failure: serde_json::Value = compile
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .find(|v: &serde_json::Value| v["type"] == "failure")
            .unwrap_or_else(|| panic!("{}", compile.stdout));
        assert_eq!(failure["remembered"], true, "{dir} {source}: {failure}");
    }
}

// A pyc left from before its source stopped compiling (3.12 syntax in a tree compiled for
// 3.9 too: `compile` fails for that target and leaves the old pyc, as compileall does) is
// stale by its source, and compiling again cannot fix it: `check` names CPython's error as
// it does for a missing pyc, and the GitHub annotation says to fix the source.
per_python!(check_explains_a_stale_pyc_whose_source_no_longer_compiles, |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "X = 1\n");
    let state = tempfile::tempdir().unwrap();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.path());
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    tree.write("m.py", "X = 1\ndef f(:\n    pass\n");
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(1);
    let cpython = py.run(
        &[
            "-c",
            "try:\n    compile(open('m.py', 'rb').read(), 'm.py', 'exec')\nexcept SyntaxError as e:\n    print('%s: %s (line %d)' % (type(e).__name__, e.msg, e.lineno))",
        ],
        tree.root(),
    );
    let run = hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(
        run.stdout,
        format!(
            "stale      ./m.py: the source does not compile: {}, as `hashpyc compile` found\n",
            cpython.trim()
        ),
        "{}",
        run.stderr
    );
    let github = hashpyc().args(["check", "--format", "github"]).python(py).arg(".").run();
    github.assert_code(1);
    let line =
        github.stdout.lines().find(|l| l.starts_with("::error file=./m.py,line=2,")).unwrap_or_else(|| {
            panic!("no annotation on line 2: {}", github.stdout);
        });
    assert!(line.contains("stale: the pyc was compiled from other source bytes"), "{line}");
    assert!(line.contains(" - fix the source, then run `hashpyc compile`"), "{line}");
    assert!(!line.contains("to fix"), "{line}");
    // Without the memory of that compile, the plain finding.
    let elsewhere = tempfile::tempdir().unwrap();
    let fresh =
        tree.hashpyc().env("HASHPYC_STATE_DIR", elsewhere.path()).arg("check").python(py).arg(".").run();
    assert_eq!(fresh.stdout, "stale      ./m.py\n");
});

// A source that does not compile at opt-0 under `-o 0 -o 1`: its opt-0 pyc was said
// missing with the reason, its opt-1 pyc plainly missing (`compile` stops at the level that
// fails, so nothing was remembered of opt-1), and the hint said to run `compile` to fix,
// which fixes nothing. Each level now says why; the hint comes only with a finding that
// compiling fixes.
per_python!(check_says_why_a_level_after_a_failure_is_missing, |py: &Python| {
    let tree = Tree::new();
    tree.write("good.py", "X = 1\n");
    tree.write("bad.py", "X = 1\ndef f(:\n    pass\n");
    let state = tempfile::tempdir().unwrap();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.path());
    hashpyc().args(["compile", "-q", "-o", "0", "-o", "1"]).python(py).arg(".").run().assert_code(1);
    let cpython = py.run(
        &[
            "-c",
            "try:\n    compile(open('bad.py', 'rb').read(), 'bad.py', 'exec')\nexcept SyntaxError as e:\n    print('%s: %s (line %d)' % (type(e).__name__, e.msg, e.lineno))",
        ],
        tree.root(),
    );
    let want = format!(
        "missing    ./bad.py  [opt-0]: the source does not compile: {}, as `hashpyc compile` found\n\
         missing    ./bad.py  [opt-1]: not compiled: `hashpyc compile` stopped at opt-0, where the \
         source does not compile (SyntaxError)\n",
        cpython.trim()
    );
    let run = hashpyc().args(["check", "-o", "0", "-o", "1"]).python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout, want, "{}", run.stderr);
    assert!(!run.stderr.contains("to fix"), "{}", run.stderr);
    // The annotation of the level never reached says to fix the source, at its line.
    let github =
        hashpyc().args(["check", "--format", "github", "-o", "0", "-o", "1"]).python(py).arg(".").run();
    let opt1 =
        github.stdout.lines().find(|l| l.contains("[opt-1]") || l.contains("opt-1.pyc")).unwrap_or_default();
    assert!(opt1.contains(",line=2") && opt1.contains("fix the source"), "{}", github.stdout);
    // A finding that compiling fixes beside it: the hint again.
    tree.write("good.py", "X = 2\n");
    let run = hashpyc().args(["check", "-o", "0", "-o", "1"]).python(py).arg(".").run();
    run.assert_code(1);
    assert!(run.stderr.contains("with the same options to fix"), "{}", run.stderr);
    // Asked for opt-1 alone: the compile that failed never reached it either.
    let run = hashpyc().args(["check", "-o", "1"]).python(py).arg("bad.py").run();
    run.assert_code(1);
    assert!(
        run.stdout
            .starts_with("missing    bad.py  [opt-1]: not compiled: `hashpyc compile` stopped at opt-0"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("to fix"), "{}", run.stderr);
});

// A pyc that is missing because its source does not compile says so, with CPython's own
// error (remembered by `compile`, no Python started by `check`), as long as the source
// bytes are those `compile` saw; and a tree of timestamp pycs (what CPython's compileall
// writes by default) gets a hint naming `hashpyc compile`, which then makes it pass.
per_python!(check_explains_missing_and_timestamp_pycs, |py: &Python| {
    let tree = Tree::new();
    tree.write("good.py", "X = 1\n");
    tree.write("bad.py", "X = 1\ndef f(:\n    pass\n");
    let state = tempfile::tempdir().unwrap();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.path());
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(1);
    let cpython = py.run(
        &[
            "-c",
            "try:\n    compile(open('bad.py', 'rb').read(), 'bad.py', 'exec')\nexcept SyntaxError as e:\n    print('%s: %s (line %d)' % (type(e).__name__, e.msg, e.lineno))",
        ],
        tree.root(),
    );
    let explained = format!(
        "missing    ./bad.py: the source does not compile: {}, as `hashpyc compile` found\n",
        cpython.trim()
    );
    let run = hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout, explained, "{}", run.stderr);
    let json = hashpyc().args(["check", "--format", "json"]).python(py).arg(".").run();
    let finding: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(finding["detail"], explained.trim_end().split_once(": ").unwrap().1, "{finding}");
    // Other source bytes, or no state directory: nothing is known, plain `missing`.
    tree.write("bad.py", "X = 2\ndef f(:\n    pass\n");
    let edited = hashpyc().arg("check").python(py).arg(".").run();
    assert_eq!(edited.stdout, "missing    ./bad.py\n");
    let elsewhere = tempfile::tempdir().unwrap();
    let fresh_state =
        tree.hashpyc().env("HASHPYC_STATE_DIR", elsewhere.path()).arg("check").python(py).arg(".").run();
    assert_eq!(fresh_state.stdout, "missing    ./bad.py\n");

    // CPython's compileall writes timestamp pycs.
    std::fs::remove_file(tree.path("bad.py")).unwrap();
    tree.write("other.py", "Y = 2\n");
    std::fs::remove_dir_all(tree.path("__pycache__")).unwrap();
    py.run(&["-m", "compileall", "-q", "."], tree.root());
    let run = hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout, "timestamp  ./good.py\ntimestamp  ./other.py\n");
    assert!(
        run.stderr.contains(
            "hint: 2 pycs are timestamp-based, as pip, uv, `python -m compileall` and imports write them: `hashpyc compile` with the same paths and options replaces them with checked-hash pycs\n"
        ),
        "{}",
        run.stderr
    );
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    hashpyc().arg("check").python(py).arg(".").run().assert_code(0);

    // Hash-based pycs of the other kind: the hint names the `--mode` that accepts them and
    // the compile that rewrites their headers, and both do what it says.
    let mode_hint = |run: &crate::harness::Run, kind: &str, flags: &[&str]| {
        let hint = run.stderr.lines().find_map(|l| l.strip_prefix("hint: ")).unwrap_or_else(|| {
            panic!("no hint for {kind} pycs: {}", run.stderr);
        });
        assert!(hint.starts_with(&format!("2 pycs are {kind}-hash")), "{hint}");
        for flag in flags {
            assert!(hint.contains(flag), "{flag}: {hint}");
        }
    };
    hashpyc()
        .args(["compile", "-q", "--invalidation-mode", "unchecked-hash"])
        .python(py)
        .arg(".")
        .run()
        .assert_code(0);
    let run = hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout, "unchecked  ./good.py\nunchecked  ./other.py\n");
    mode_hint(&run, "unchecked", &["`check --mode unchecked`", "`--mode any`", "`hashpyc compile`"]);
    for mode in ["unchecked", "any"] {
        hashpyc().args(["check", "--mode", mode]).python(py).arg(".").run().assert_code(0);
    }
    let json = hashpyc().args(["check", "--format", "json"]).python(py).arg(".").run();
    assert!(
        json.stdout.contains(r#""type":"notice""#) && json.stdout.contains("unchecked-hash"),
        "{}",
        json.stdout
    );
    let checked = hashpyc().args(["check", "--mode", "unchecked"]).python(py).arg(".");
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let run = checked.run();
    run.assert_code(1);
    assert_eq!(run.stdout, "checked    ./good.py\nchecked    ./other.py\n");
    mode_hint(
        &run,
        "checked",
        &["`check --mode any`", "`hashpyc compile --invalidation-mode unchecked-hash`"],
    );
    hashpyc().args(["check", "--mode", "any"]).python(py).arg(".").run().assert_code(0);
    hashpyc()
        .args(["compile", "-q", "--invalidation-mode", "unchecked-hash"])
        .python(py)
        .arg(".")
        .run()
        .assert_code(0);
    hashpyc().args(["check", "--mode", "unchecked"]).python(py).arg(".").run().assert_code(0);
});

/// With `invalidation-mode = "unchecked-hash"` in the configuration, a plain `compile` writes
/// unchecked-hash pycs, yet `check --mode checked` advised it (`hashpyc compile` rewrites
/// its header as checked-hash; GitHub: run `hashpyc compile` to fix), which changes nothing.
/// Now the advice names `--invalidation-mode checked-hash`, and doing what it says fixes it.
#[test]
fn checked_advice_under_an_unchecked_configuration_names_the_flag() {
    let Some(py) =
        crate::harness::any_python("check::checked_advice_under_an_unchecked_configuration_names_the_flag")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("hashpyc.toml", "invalidation-mode = \"unchecked-hash\"\n");
    tree.write("a.py", "A = 1\n");
    let hashpyc = || tree.hashpyc();
    hashpyc().args(["compile", "-q"]).python(py).arg("a.py").run().assert_code(0);
    let run = hashpyc().args(["check", "--mode", "checked"]).python(py).arg("a.py").run();
    run.assert_code(1);
    let want = "; `hashpyc compile --invalidation-mode checked-hash` with the same paths and options rewrites its header as checked-hash\n";
    assert!(run.stderr.contains(want), "{}", run.stderr);
    let github =
        hashpyc().args(["check", "--mode", "checked", "--format", "github"]).python(py).arg("a.py").run();
    github.assert_code(1);
    assert!(
        github.stdout.contains("run `hashpyc compile --invalidation-mode checked-hash` to fix"),
        "{}",
        github.stdout
    );
    // The plain compile leaves it unchecked; the one advised fixes it.
    hashpyc().args(["compile", "-q"]).python(py).arg("a.py").run().assert_code(0);
    hashpyc().args(["check", "--mode", "checked"]).python(py).arg("a.py").run().assert_code(1);
    hashpyc()
        .args(["compile", "-q", "--invalidation-mode", "checked-hash"])
        .python(py)
        .arg("a.py")
        .run()
        .assert_code(0);
    hashpyc().args(["check", "--mode", "checked"]).python(py).arg("a.py").run().assert_code(0);
}

/// The sources of the strays in `check --format json` output, `./` trimmed, sorted.
fn stray_sources(stdout: &str) -> Vec<String> {
    let mut out: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["outcome"] == "stray")
        .map(|v| v["path"].as_str().unwrap().trim_start_matches("./").to_string())
        .collect();
    out.sort();
    out
}

/// Writes timestamp pycs with CPython itself for one source per case (`cN/m.py`, the
/// source's mtime set first when the case gives one): `compileall` (`__pycache__`),
/// `compileall -b` (`m.pyc`) and from 3.8, `py_compile` under `-X pycache_prefix=pfx`;
/// then changes the source as the case says and prints, per pyc, a line
/// `pyc\tsource\tverdict\tmtime\tsize`: the source as importlib derives it
/// (`source_from_cache`; beside a legacy pyc), whether importlib accepts the pyc for it
/// (`SourceLoader.get_code`'s own steps: `path_stats`, `int(st['mtime'])`,
/// `_validate_timestamp_pyc`), and the mtime and size it compares, as the header holds them.
const TIMESTAMP_CASES: &str = r#"
import importlib._bootstrap_external as be, importlib.util as u, os, subprocess, sys
from importlib.machinery import SourceFileLoader
S = 1700000000
# (mtime in ns to compile at or None, change after compiling)
cases = [(None, None), (None, "touch+1"), (None, "same size"), (None, "other size"),
         (S * 10**9 + 999999999, None), (-1500000000, None), (None, "touch+2**32")]
for i, (at, change) in enumerate(cases):
    d = "c%d" % i
    os.mkdir(d)
    src = os.path.join(d, "m.py")
    with open(src, "w") as f:
        f.write("x = 1\n")
    if at is not None:
        os.utime(src, ns=(at, at))
    run = lambda *a: subprocess.check_call((sys.executable,) + a)
    run("-m", "compileall", "-q", d)
    run("-m", "compileall", "-q", "-b", d)
    if sys.version_info >= (3, 8):
        run("-X", "pycache_prefix=pfx", "-m", "py_compile", src)
    ns = os.stat(src).st_mtime_ns
    if change == "touch+1":
        os.utime(src, ns=(ns + 10**9, ns + 10**9))
    elif change in ("same size", "other size"):
        with open(src, "w") as f:
            f.write("x = 2\n" if change == "same size" else "x = 10\n")
        os.utime(src, ns=(ns, ns))
    elif change == "touch+2**32":
        os.utime(src, ns=(ns + 2**32 * 10**9, ns + 2**32 * 10**9))
    pycs = [(u.cache_from_source(src), u.source_from_cache(u.cache_from_source(src))),
            (src + "c", src)]
    if sys.version_info >= (3, 8):
        sys.pycache_prefix = "pfx"
        pycs.append((u.cache_from_source(src), u.source_from_cache(u.cache_from_source(src))))
        sys.pycache_prefix = None
    for pyc, source in pycs:
        with open(pyc, "rb") as f:
            data = f.read()
        assert data[4:8] == bytes(4), pyc
        st = SourceFileLoader("m", source).path_stats(source)
        mtime, size = int(st["mtime"]), st["size"]
        try:
            be._validate_timestamp_pyc(data, mtime, size, "m", {})
            accepted = 1
        except ImportError:
            accepted = 0
        print("\t".join([pyc, source, str(accepted), str(mtime & 0xFFFFFFFF), str(size & 0xFFFFFFFF)]))
"#;

// `inspect` of a timestamp pyc (what imports, pip and compileall write) finds its source as
// for a hash pyc (beside `__pycache__`, beside a legacy pyc, under PYTHONPYCACHEPREFIX) and
// says whether importlib would take the pyc for it, comparing mtime and size as
// `_validate_timestamp_pyc` does (it showed the stored fields, `source: null`). The
// verdicts are importlib's own, for pycs CPython wrote: touched, edited at the same size
// and mtime (accepted: the weakness of timestamp pycs), an mtime 1 ns before a second
// (CPython's float `st_mtime` rounds it up), before 1970, 2**32 seconds later (masked).
per_python!(inspect_judges_timestamp_pycs_as_importlib, |py: &Python| {
    let tree = Tree::new();
    let out = py
        .cmd()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["-c", TIMESTAMP_CASES])
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cpython: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert_eq!(cpython.len(), 7 * if py.minor >= (3, 8) { 3 } else { 2 });
    // Both verdicts occur, else the comparison proves little.
    for v in ["0", "1"] {
        assert!(cpython.iter().any(|c| c[2] == v), "{cpython:?}");
    }
    let pycs: Vec<&str> = cpython.iter().map(|c| c[0].as_str()).collect();
    let run = tree.hashpyc().args(["inspect", "--json"]).args(&pycs).env("PYTHONPYCACHEPREFIX", "pfx").run();
    run.assert_code(0);
    let text = tree.hashpyc().arg("inspect").args(&pycs).env("PYTHONPYCACHEPREFIX", "pfx").run();
    text.assert_code(0);
    let found: Vec<serde_json::Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(found.len(), cpython.len(), "{}", run.stdout);
    for (v, c) in found.iter().zip(&cpython) {
        let (pyc, source, accepted) = (&c[0], &c[1], c[2] == "1");
        assert_eq!(v["pyc"], pyc.as_str());
        assert_eq!(v["mode"], "timestamp", "{v}");
        assert_eq!(v["source"], source.as_str(), "{v}");
        assert_eq!(v["matches_source"], accepted, "{pyc}: importlib says {c:?}; {v}");
        let verdict = if accepted {
            format!("(matches `{source}`)")
        } else {
            format!("(does NOT match `{source}`: mtime {}, size {})", c[3], c[4])
        };
        let line = format!("{pyc}\n  magic        {}", v["magic"].as_str().unwrap());
        let at = text.stdout.find(&line).unwrap_or_else(|| panic!("{pyc}: {}", text.stdout));
        let block = text.stdout[at..].split("\n  co_filename").next().unwrap();
        assert!(block.contains(&verdict), "{pyc}: want {verdict}\n{block}");
    }
});

// `check` that finds no pyc of the layout it expects but pycs of the other one (the
// `m.pyc` beside `m.py` of `compileall -b` where `__pycache__` is expected, or under `-b`
// the `__pycache__` pycs of plain compileall) reported every file missing with no hint;
// one hint now names the other layout and the flag. None once any pyc of the expected
// layout is there (an import writes `__pycache__` pycs beside a `-b` tree).
per_python!(layout_hint_for_pycs_of_the_other_layout, |py: &Python| {
    let compileall = |tree: &Tree, args: &[&str]| {
        let out = py
            .cmd()
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["-m", "compileall", "-q"])
            .args(args)
            .arg("pkg")
            .current_dir(tree.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let hints = |run: &crate::harness::Run| -> Vec<String> {
        run.stderr.lines().filter(|l| l.starts_with("hint: ")).map(str::to_string).collect()
    };
    let check =
        |tree: &Tree, args: &[&str]| tree.hashpyc().arg("check").args(args).python(py).arg("pkg").run();
    let tree = Tree::new();
    tree.write("pkg/a.py", "A = 1\n");
    tree.write("pkg/b.py", "B = 2\n");
    compileall(&tree, &["-b"]);
    assert_eq!(tree.pycs(), [Path::new("pkg/a.pyc"), Path::new("pkg/b.pyc")]);
    let run = check(&tree, &[]);
    run.assert_code(1);
    let to_legacy = "2 sources have a legacy pyc beside them (`pkg/a.pyc`), as `compileall -b` writes them: \
                     to check those, run `hashpyc check` with `-b` (`--legacy`)";
    assert_eq!(hints(&run), [format!("hint: 2 pycs are missing from `__pycache__`, but {to_legacy}")]);
    let json = check(&tree, &["--format", "json"]);
    let notices: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "notice")
        .collect();
    assert_eq!(notices.len(), 1, "{}", json.stdout);
    assert!(notices[0]["message"].as_str().unwrap().ends_with(to_legacy), "{}", json.stdout);
    // As the hint says, `-b` finds them (timestamp pycs, as compileall writes them).
    let run = check(&tree, &["-b"]);
    assert!(run.stdout.lines().all(|l| l.starts_with("timestamp")), "{}", run.stdout);
    assert!(hints(&run).iter().all(|h| !h.contains("legacy")), "{}", run.stderr);
    // A new source without one: the hint counts the sources that have one.
    tree.write("pkg/c.py", "C = 3\n");
    let run = check(&tree, &[]);
    assert_eq!(hints(&run), [format!("hint: 3 pycs are missing from `__pycache__`, but {to_legacy}")]);
    // An import writes `pkg/__pycache__/a.cpython-3X.pyc`: no layout hint.
    imports(py, &tree, "pkg.a").unwrap();
    let run = check(&tree, &[]);
    assert!(run.stdout.contains("timestamp  pkg/a.py"), "{}", run.stdout);
    assert!(hints(&run).iter().all(|h| !h.contains("legacy")), "{}", run.stderr);

    // The reverse: plain compileall's `__pycache__` pycs, checked with `-b`.
    let tree = Tree::new();
    tree.write("pkg/a.py", "A = 1\n");
    tree.write("pkg/b.py", "B = 2\n");
    compileall(&tree, &[]);
    let a = format!("pkg/{}", pyc(py, "a"));
    assert_eq!(tree.pycs(), [Path::new(&a), Path::new(&format!("pkg/{}", pyc(py, "b")))]);
    let run = check(&tree, &["-b"]);
    run.assert_code(1);
    let to_pycache = format!(
        "hint: 2 legacy pycs (`-b`) are missing, but 2 sources have pycs in `__pycache__` (`{a}`), as \
         `compileall`, pip, uv and imports write them: to check those, run `hashpyc check` with"
    );
    assert_eq!(hints(&run), [format!("{to_pycache} no `-b`")]);
    // `legacy = true` in a configuration: the flag that undoes it, and where it is set.
    tree.write("hashpyc.toml", "legacy = true\n");
    let run = check(&tree, &[]);
    assert_eq!(
        hints(&run),
        [format!(
            "{to_pycache} `--no-legacy` (`legacy = true` in `hashpyc.toml` line 1 sets the legacy layout)"
        )]
    );
    let run = check(&tree, &["--no-legacy"]);
    assert!(run.stdout.lines().all(|l| l.starts_with("timestamp")), "{}", run.stdout);
});

// `check` of a tree compiled at level 0, run with `PYTHONOPTIMIZE=1` (or a file's
// `optimize = 1`), printed `missing    m.py` for every file, its level said nowhere (the
// `[opt-N]` tag came only with two levels or more): the pycs compile wrote looked absent.
// The level is now said whenever the run does not check level 0 alone, and a hint names
// the pycs of the other level, where the level came from and the flag that checks them.
// Compiled by CPython's own compileall (plain, then `-O`), the level as it names it.
per_python!(level_hint_for_pycs_of_another_level, |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/a.py", "A = 1\n");
    tree.write("pkg/b.py", "B = 2\n");
    let compileall = |optimize: bool| {
        let mut cmd = py.cmd();
        if optimize {
            cmd.arg("-O");
        }
        let out = cmd
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "pkg"])
            .current_dir(tree.root())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    compileall(false);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let hints = |run: &crate::harness::Run| -> Vec<String> {
        run.stderr.lines().filter(|l| l.starts_with("hint: ")).map(str::to_string).collect()
    };
    let check = |args: &[&str], env: &[(&str, &str)]| {
        let mut h = tree.hashpyc();
        for (k, v) in env {
            h = h.env(k, v);
        }
        h.arg("check").args(args).python(py).arg("pkg").run()
    };
    let level0 = format!("pkg/__pycache__/a.{tag}.pyc");
    let run = check(&[], &[("PYTHONOPTIMIZE", "1")]);
    run.assert_code(1);
    assert_eq!(run.stdout, "missing    pkg/a.py  [opt-1]\nmissing    pkg/b.py  [opt-1]\n");
    assert_eq!(
        hints(&run),
        [format!(
            "hint: 2 pycs are missing at optimization level 1 (set by PYTHONOPTIMIZE in the environment), \
             but 2 sources have pycs of level 0 (`{level0}`): to check those, run `hashpyc check -o 0`"
        )]
    );
    // As the hint says.
    check(&["-o", "0"], &[("PYTHONOPTIMIZE", "1")]).assert_code(0);
    // A file's `optimize`, two levels: said where it is set.
    tree.write("hashpyc.toml", "optimize = [1, 2]\n");
    let run = check(&[], &[]);
    run.assert_code(1);
    assert_eq!(
        hints(&run),
        [format!(
            "hint: 4 pycs are missing at optimization levels 1 and 2 (set by `optimize` in `hashpyc.toml` \
             line 1), but 2 sources have pycs of level 0 (`{level0}`): to check those, run `hashpyc check -o 0`"
        )]
    );
    std::fs::remove_file(tree.root().join("hashpyc.toml")).unwrap();
    // `-O` pycs beside them, checked at level 2: both other levels, and no hint once one
    // pyc of the level checked is there.
    compileall(true);
    let run = check(&["-o", "2"], &[]);
    run.assert_code(1);
    assert_eq!(
        hints(&run),
        [format!(
            "hint: 2 pycs are missing at optimization level 2, but 2 sources have pycs of levels 0 and 1 \
             (`{level0}`): to check those, run `hashpyc check -o 0 -o 1`"
        )]
    );
    check(&["-o", "0", "-o", "1"], &[]).assert_code(0);
    std::fs::remove_file(tree.root().join(format!("pkg/__pycache__/a.{tag}.opt-1.pyc"))).unwrap();
    let run = check(&["-o", "1"], &[]);
    run.assert_code(1);
    assert_eq!(run.stdout, "missing    pkg/a.py  [opt-1]\n");
    assert!(!harness::has_other_hint(&run.stderr), "{}", run.stderr);
    // Level 0 alone keeps the plain line.
    std::fs::remove_file(tree.root().join(&level0)).unwrap();
    let run = check(&[], &[]);
    assert_eq!(run.stdout, "missing    pkg/a.py\n");
});

// `-v`'s target notices in `--format json` are the same objects from `check` as from
// `compile` but for the message (compile's says how its workers run): `check`'s said
// `python: null` where compile's say the interpreter's `X.Y`. Both against the
// interpreter's own `sys.version_info`.
per_python!(verbose_target_notices_name_the_interpreter, |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let info = py.run(&["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], tree.root());
    let full = info.trim();
    let minor = full.rsplit_once('.').unwrap().0;
    let target_notices = |command: &str| -> Vec<serde_json::Value> {
        let run = tree.hashpyc().args([command, "-v", "--format", "json"]).python(py).arg("m.py").run();
        let notices: Vec<serde_json::Value> =
            json_objects(command, &run).into_iter().filter(|o| !o["target"].is_null()).collect();
        assert_eq!(notices.len(), 1, "{command}: {}{}", run.stdout, run.stderr);
        notices
            .into_iter()
            .map(|mut o| {
                let message = o["message"].as_str().unwrap().to_string();
                assert!(message.starts_with(&format!("target: CPython {full} (")), "{command}: {message}");
                o.as_object_mut().unwrap().remove("message");
                o
            })
            .collect()
    };
    let compile = target_notices("compile");
    let check = target_notices("check");
    assert_eq!(check, compile);
    let keys: Vec<&String> = check[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["type", "path", "python", "target"]);
    assert_eq!(check[0]["type"], "notice");
    assert_eq!(check[0]["python"], minor);
    assert_eq!(check[0]["target"]["version"], full);
    assert!(check[0]["target"]["python"].is_string(), "{}", check[0]);
    // The target is named as the summary's `targets` name it: with `--target X.Y` (the
    // built-in table) that is `X.Y`, and no interpreter runs. It said `X.Y.0` and
    // `"python":"(built-in table: CPython X.Y)"`.
    let summary_and_target = |args: &[&str]| {
        let mut run = tree.hashpyc().args(["check", "-v", "--format", "json"]).args(args);
        if args.is_empty() {
            run = run.python(py);
        }
        let run = run.arg("m.py").run();
        // (A pre-release's magic may be newer than the table's: the pyc is then stale.)
        assert!(matches!(run.code, Some(0 | 1)), "{}{}", run.stdout, run.stderr);
        let objects = json_objects("check", &run);
        let targets: Vec<&serde_json::Value> = objects.iter().filter(|o| !o["target"].is_null()).collect();
        assert_eq!(targets.len(), 1, "{}", run.stdout);
        let summary = objects.iter().find(|o| o["type"] == "summary").expect("a summary");
        (summary["targets"].clone(), targets[0]["target"].clone())
    };
    let (named, target) = summary_and_target(&[]);
    assert_eq!(named, serde_json::json!([target["version"]]));
    let (named, target) = summary_and_target(&["--target", minor]);
    assert_eq!(named, serde_json::json!([minor]));
    assert_eq!(target, serde_json::json!({ "version": minor, "python": null }));
});

// `inspect` of a pyc whose source is there but cannot be read said "(source not found)":
// it says that the source could not be read and why, in text and in JSON (`source` set,
// `source_error` the reason, `matches_source` null); a source that is gone is still "not
// found". A directory and a FIFO in the source's place (a FIFO is not opened: reading it
// would block), and a source without read permission when not running as root.
#[test]
fn inspect_says_why_a_source_could_not_be_read() {
    let Some(py) = crate::harness::any_python("check::inspect_says_why_a_source_could_not_be_read") else {
        return;
    };
    let tree = Tree::new();
    let pyc = |stem: &str| format!("pkg/__pycache__/{stem}.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    let mut cases: Vec<(&str, &str)> = vec![("dir", "is a directory"), ("fifo", "not a regular file")];
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        cases.push(("locked", "permission denied"));
    }
    cases.push(("gone", ""));
    for (stem, _) in &cases {
        tree.write(format!("pkg/{stem}.py"), "x = 1\n");
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("pkg").run().assert_code(0);
    for (stem, _) in &cases {
        let src = tree.path(format!("pkg/{stem}.py"));
        match *stem {
            "dir" => {
                std::fs::remove_file(&src).unwrap();
                std::fs::create_dir(&src).unwrap();
            }
            "fifo" => {
                std::fs::remove_file(&src).unwrap();
                let c = std::ffi::CString::new(src.into_os_string().into_encoded_bytes()).unwrap();
                // SAFETY: mkfifo reads the NUL-terminated path only.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
            }
            "locked" => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o000)).unwrap();
            }
            _ => std::fs::remove_file(&src).unwrap(),
        }
    }
    for (stem, why) in &cases {
        let text = tree.hashpyc().arg("inspect").arg(pyc(stem)).run();
        let json = tree.hashpyc().args(["inspect", "--json"]).arg(pyc(stem)).run();
        let context = format!("{stem}:\n{}{}\n{}{}", text.stdout, text.stderr, json.stdout, json.stderr);
        assert_eq!((text.code, json.code), (Some(0), Some(0)), "{context}");
        let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
        assert!(v["matches_source"].is_null(), "{context}");
        if why.is_empty() {
            assert!(text.stdout.contains(" (source not found)\n"), "{context}");
            assert!(v["source"].is_null() && v["source_error"].is_null(), "{context}");
        } else {
            let said = format!(" (source `pkg/{stem}.py` could not be read: {why})\n");
            assert!(text.stdout.contains(&said), "{context}");
            assert_eq!(v["source"], format!("pkg/{stem}.py"), "{context}");
            assert_eq!(v["source_error"], *why, "{context}");
        }
    }
}

// A pyc whose whole body a run found good is, while the file is unchanged (device, inode,
// size, mtime, ctime), read only up to its header by later runs (`-v` says how many).
// Whatever changes the file, even with its size and mtime put back, or moves the tree
// (same inodes, another embedded path), makes the next run read it whole again: check
// finds it invalid or stale, and compile writes py_compile's bytes. A pyc changed less than
// HASHPYC_SETTLE_SECONDS before a run is never recorded by it, and a damaged memory only
// costs whole reads.
per_python!(unchanged_pycs_are_read_up_to_their_header, |py: &Python| {
    let tree = Tree::new();
    for i in 0..3 {
        tree.write(format!("app/m{i}.py"), format!("def f():\n    return {i}\n"));
    }
    let state = tree.path("state");
    let run = |settle: &str, args: &[&str]| {
        let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", &state).env("HASHPYC_SETTLE_SECONDS", settle);
        cmd.args(args).python(py).arg("app").run()
    };
    let vouched = |stderr: &str| -> usize {
        let line = stderr.lines().find(|l| l.starts_with("verified: "));
        line.map_or(0, |l| l["verified: ".len()..].split(' ').next().unwrap().parse().unwrap())
    };
    for bad in ["soon", "-1", "1.5"] {
        for cmd in ["compile", "check"] {
            let r = run(bad, &[cmd]);
            r.assert_code(2);
            let says = format!("invalid HASHPYC_SETTLE_SECONDS `{bad}`: expected a whole number of seconds");
            assert!(r.stderr.contains(&says), "{cmd}: {}", r.stderr);
        }
    }
    run("1", &["compile", "-q"]).assert_code(0);
    let memory = || {
        std::fs::read_dir(&state)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("verified-"))
            .map(|e| e.path())
            .collect::<Vec<_>>()
    };
    // Not settled for an hour: nothing recorded.
    let r = run("3600", &["check", "-v"]);
    r.assert_code(0);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    assert!(memory().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    // The first run past the settling time reads every pyc whole and records it.
    let r = run("1", &["check", "-v"]);
    r.assert_code(0);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    assert_eq!(memory().len(), 1);
    for args in [&["check", "-v"][..], &["compile", "-v"], &["check", "-v", "--format", "json"]] {
        let r = run("1", args);
        r.assert_code(0);
        let text = if args.contains(&"json") { &r.stdout } else { &r.stderr };
        let notice = text.contains("verified: 3 pycs unchanged since an earlier run found their bodies good");
        assert!(notice, "{args:?}: {text}");
        if !args.contains(&"json") {
            assert_eq!(vouched(&r.stderr), 3, "{args:?}");
        }
    }
    let pyc0 = tree.path(format!("app/{}", pyc(py, "m0")));
    let pyc1 = tree.path(format!("app/{}", pyc(py, "m1")));
    let good0 = std::fs::read(&pyc0).unwrap();
    // Garbage of the same size after the header, mtime put back: the ctime tells.
    let mtime = std::fs::metadata(&pyc0).unwrap().modified().unwrap();
    let mut bad = good0.clone();
    bad[16..].fill(0xee);
    std::fs::write(&pyc0, &bad).unwrap();
    std::fs::File::options().write(true).open(&pyc0).unwrap().set_modified(mtime).unwrap();
    assert_eq!(std::fs::metadata(&pyc0).unwrap().len(), good0.len() as u64);
    let r = run("1", &["check", "-v"]);
    r.assert_code(1);
    assert!(r.stdout.contains("invalid") && r.stdout.contains("m0.py"), "{}", r.stdout);
    assert_eq!(vouched(&r.stderr), 2, "{}", r.stderr);
    // Truncated to its header, mtime put back.
    let good1 = std::fs::read(&pyc1).unwrap();
    let mtime = std::fs::metadata(&pyc1).unwrap().modified().unwrap();
    std::fs::File::options().write(true).open(&pyc1).unwrap().set_len(16).unwrap();
    std::fs::File::options().write(true).open(&pyc1).unwrap().set_modified(mtime).unwrap();
    let r = run("1", &["compile", "-v"]);
    r.assert_code(0);
    assert!(r.stderr.contains("Compiled 2 files"), "{}", r.stderr);
    let refs =
        crate::harness::py_compile_refs(py, tree.root(), &["app/m0.py".into(), "app/m1.py".into()], None);
    for (pyc, (good, reference)) in [&pyc0, &pyc1].into_iter().zip([good0, good1].iter().zip(refs)) {
        let written = std::fs::read(pyc).unwrap();
        assert_eq!(Some(&written), reference.as_ref(), "{}: py_compile's bytes", pyc.display());
        assert_eq!(&written, good);
    }
    // The tree moved: the same inodes and ctimes, another embedded path.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run("1", &["check", "-q"]).assert_code(0);
    let r = run("1", &["check", "-v"]);
    assert_eq!(vouched(&r.stderr), 3, "{}", r.stderr);
    std::fs::rename(tree.path("app"), tree.path("moved")).unwrap();
    let moved = tree.hashpyc().env("HASHPYC_STATE_DIR", &state).env("HASHPYC_SETTLE_SECONDS", "1");
    let r = moved.args(["check", "-v"]).python(py).arg("moved").run();
    r.assert_code(1);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    assert_eq!(r.stdout.matches("embedded path is `app/").count(), 3, "{}", r.stdout);
    // A damaged memory: whole reads, and a good memory written again.
    std::fs::rename(tree.path("moved"), tree.path("app")).unwrap();
    let shards = || shard_files(&memory());
    assert!(!shards().is_empty());
    for file in shards() {
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, bytes).unwrap();
    }
    let r = run("1", &["check", "-v"]);
    r.assert_code(0);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    let r = run("1", &["check", "-v"]);
    assert_eq!(vouched(&r.stderr), 3, "{}", r.stderr);
    // Written readable by their owner only; a memory others could have written is not
    // taken (it is written again, private).
    use std::os::unix::fs::PermissionsExt;
    for file in shards() {
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o077, 0, "{}", file.display());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    }
    let r = run("1", &["check", "-v"]);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    let r = run("1", &["check", "-v"]);
    assert_eq!(vouched(&r.stderr), 3, "{}", r.stderr);
});

/// The files under the `verified-<magic>/` directories given (one level of build
/// directories below them).
fn shard_files(memory: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for dir in memory {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                files.extend(std::fs::read_dir(e.path()).unwrap().flatten().map(|f| f.path()));
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

// Two hashpyc builds used in turn over one state directory (an upgrade rolled out
// machine by machine) erased each other's memory of good pycs: each build overwrote the
// other's `verified-<magic>/` files, so every run after the other build's read every pyc
// whole again (helper report: 0.25-0.39 s became 0.61-0.78 s on 1 903 files). Each build
// now keeps a directory of its own there: what another build wrote (here stand-ins, as
// the files directly in `verified-<magic>/` builds before this layout wrote) is left
// as it is, and only what no build has written for 30 days is removed.
per_python!(another_builds_memory_of_good_pycs_is_left_alone, |py: &Python| {
    let tree = Tree::new();
    for i in 0..40 {
        tree.write(format!("app/m{i}.py"), format!("def f():\n    return {i}\n"));
    }
    let state = tree.path("state");
    let run = |args: &[&str]| {
        let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", &state).env("HASHPYC_SETTLE_SECONDS", "1");
        cmd.args(args).python(py).arg("app").run()
    };
    let vouched = |stderr: &str| -> usize {
        let line = stderr.lines().find(|l| l.starts_with("verified: "));
        line.map_or(0, |l| l["verified: ".len()..].split(' ').next().unwrap().parse().unwrap())
    };
    run(&["compile", "-q"]).assert_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run(&["check", "-q"]).assert_code(0);
    let memory: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("verified-"))
        .map(|e| e.path())
        .collect();
    assert_eq!(memory.len(), 1, "{memory:?}");
    let verified = &memory[0];
    // Forget what this build learnt, so that the next run learns it all again.
    for file in shard_files(&memory) {
        std::fs::remove_file(file).unwrap();
    }
    // Another build's files: every shard name directly in `verified-<magic>/`, a
    // directory of a build in use, one of a build unused for 40 days.
    let other = |i: usize| format!("another build's memory {i}").into_bytes();
    for i in 0..256 {
        std::fs::write(verified.join(format!("{i:02x}.bin")), other(i)).unwrap();
    }
    for dir in ["0123456789abcdef", "fedcba9876543210"] {
        std::fs::create_dir_all(verified.join(dir)).unwrap();
        std::fs::write(verified.join(dir).join("00.bin"), other(0)).unwrap();
    }
    let old = verified.join("fedcba9876543210");
    let touched = std::process::Command::new("touch").args(["-d", "40 days ago"]).arg(&old).status().unwrap();
    assert!(touched.success());
    let r = run(&["check", "-v"]);
    r.assert_code(0);
    assert_eq!(vouched(&r.stderr), 0, "{}", r.stderr);
    for i in 0..256 {
        let file = verified.join(format!("{i:02x}.bin"));
        assert_eq!(std::fs::read(&file).unwrap(), other(i), "{} was overwritten", file.display());
    }
    assert_eq!(std::fs::read(verified.join("0123456789abcdef/00.bin")).unwrap(), other(0));
    assert!(!old.exists(), "a build's directory unused for 40 days is removed");
    // This build's own memory was saved beside them and serves the next run.
    let r = run(&["check", "-v"]);
    r.assert_code(0);
    assert_eq!(vouched(&r.stderr), 40, "{}", r.stderr);
});

// A source that cannot be read is `unreadable`, with the reason `compile` gives, also when
// its pyc is missing: it was `missing` with `expected.hash: null` (the source never read
// for a missing pyc, its error dropped), while `--help` and the README define `unreadable`
// as a source or pyc that could not be read, and `expected` as null only then.
#[test]
fn an_unreadable_source_without_its_pyc_is_unreadable() {
    let Some(py) = crate::harness::any_python("an_unreadable_source_without_its_pyc_is_unreadable") else {
        return;
    };
    let tree = Tree::new();
    // Reading /proc/self/mem from offset 0 fails (EIO): a source nothing can read.
    std::os::unix::fs::symlink("/proc/self/mem", tree.path("x.py")).unwrap();
    tree.write("y.py", "y = 1\n");
    let compile = tree.hashpyc().arg("compile").python(py).run();
    compile.assert_code(1);
    let reason = compile
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("error: `x.py`: cannot read the source: "))
        .unwrap_or_else(|| panic!("{}", compile.stderr))
        .to_string();
    let pycs = tree.pycs();
    assert!(pycs.len() == 1 && pycs[0].to_string_lossy().contains("/y."), "{pycs:?}");
    for format in ["json", "text"] {
        let run = tree.hashpyc().args(["check", "--format", format]).python(py).run();
        run.assert_code(1);
        if format == "text" {
            let line = run.stdout.lines().find(|l| l.contains("x.py")).unwrap();
            assert_eq!(line, format!("unreadable x.py: source: {reason}"), "{}", run.stdout);
            continue;
        }
        let x: serde_json::Value = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .find(|o: &serde_json::Value| o["path"] == "x.py")
            .unwrap();
        assert_eq!(x["outcome"], "unreadable", "{x}");
        assert_eq!(x["detail"], format!("source: {reason}"), "{x}");
        assert_eq!(x["expected"], serde_json::Value::Null, "{x}");
    }
}

// A pyc path that is a Unix socket is "not a regular file", as a FIFO or a device is
// (README, inspect), for `check`, `inspect` and `compile` alike: opening a socket fails
// with ENXIO, which was reported as "No such device or address".
#[test]
fn a_pyc_that_is_a_socket_is_not_a_regular_file() {
    let Some(py) = crate::harness::any_python("check::a_pyc_that_is_a_socket_is_not_a_regular_file") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let pyc = format!("__pycache__/m.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    std::fs::create_dir(tree.path("__pycache__")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(tree.path(&pyc)).unwrap();
    let check = tree.hashpyc().arg("check").python(py).run();
    check.assert_code(1);
    assert!(
        check.stdout.contains(&format!("unreadable m.py: pyc `{pyc}`: not a regular file\n")),
        "{check:?}"
    );
    let github = tree.hashpyc().args(["check", "--format", "github"]).python(py).run();
    assert!(
        github.stdout.contains(&format!(": pyc `{pyc}`: not a regular file - remove it (")),
        "{github:?}"
    );
    let inspect = tree.hashpyc().arg("inspect").arg(&pyc).run();
    assert!(inspect.stdout.contains("  error: not a regular file\n"), "{inspect:?}");
    let compile = tree.hashpyc().arg("compile").python(py).run();
    compile.assert_code(1);
    assert!(compile.stderr.contains("exists and is not a regular file"), "{compile:?}");
}

// A pyc path that is not a regular file (a directory, a FIFO) is `unreadable`, and
// `compile` refuses to replace it: the GitHub annotation's advice must be one that works.
// It said "run `hashpyc compile` to fix", which then fails (`exists and is not a regular
// file`); following the advice given now, removing it, then compiling, makes `check` pass.
#[test]
fn github_advice_for_a_pyc_that_is_not_a_file_works() {
    let Some(py) = crate::harness::any_python("github_advice_for_a_pyc_that_is_not_a_file_works") else {
        return;
    };
    let tree = Tree::new();
    tree.write("u.py", "u = 1\n");
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let pyc = tree.path(format!("__pycache__/u.{tag}.pyc"));
    std::fs::create_dir_all(&pyc).unwrap();
    let compile = tree.hashpyc().arg("compile").python(py).run();
    compile.assert_code(1);
    assert!(compile.stderr.contains("exists and is not a regular file"), "{}", compile.stderr);
    let run = tree.hashpyc().args(["check", "--format", "github"]).python(py).run();
    run.assert_code(1);
    let line = run.stdout.lines().next().unwrap_or_default();
    assert!(line.starts_with("::error file=u.py,") && line.contains("unreadable"), "{}", run.stdout);
    assert!(!line.contains("run `hashpyc compile` to fix"), "{line}");
    assert!(line.ends_with(" - remove it (`hashpyc compile` does not replace what is not a regular file), then run `hashpyc compile`"), "{line}");
    std::fs::remove_dir(&pyc).unwrap();
    tree.hashpyc().arg("compile").python(py).run().assert_code(0);
    tree.hashpyc().args(["check", "--format", "github"]).python(py).run().assert_code(0);
}

// `check --format github` said "run `hashpyc compile` to fix" for every finding, which does
// not fix: under `--mode unchecked` a missing, timestamp or checked pyc (compile writes
// checked-hash pycs unless told otherwise), a source that cannot be read, nor a missing pyc
// whose `__pycache__` is a file (`compile`: cannot create directory). Each annotation now
// gives the advice that fixes it, as the text's hints word it; following it, `check` passes.
#[test]
fn github_advice_fits_each_finding() {
    let Some(py) = crate::harness::any_python("github_advice_fits_each_finding") else {
        return;
    };
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let github_lines = |tree: &Tree, args: &[&str]| {
        let run = tree.hashpyc().args(["check", "--format", "github"]).args(args).python(py).run();
        run.assert_code(1);
        let lines: Vec<String> = run.stdout.lines().map(str::to_string).collect();
        for line in &lines {
            assert!(!line.contains("run `hashpyc compile` to fix"), "{line}");
        }
        lines
    };
    let line_of = |lines: &[String], file: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("::error file={file},")))
            .unwrap_or_else(|| panic!("{file}: {lines:?}"))
            .clone()
    };

    // Under --mode unchecked: a checked pyc, a timestamp pyc, a missing pyc.
    let tree = Tree::new();
    tree.write("c.py", "c = 1\n");
    tree.write("t.py", "t = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("c.py").run().assert_code(0);
    py.run(&["-m", "py_compile", "t.py"], tree.root());
    tree.write("n.py", "n = 1\n");
    let lines = github_lines(&tree, &["--mode", "unchecked"]);
    let fix = " - run `hashpyc compile --invalidation-mode unchecked-hash` to fix";
    assert!(
        line_of(&lines, "c.py").ends_with(&format!("{fix} (`check --mode any` accepts it)")),
        "{lines:?}"
    );
    for file in ["t.py", "n.py"] {
        assert!(line_of(&lines, file).ends_with(fix), "{lines:?}");
    }
    // The text's hint for timestamp pycs names the same compile.
    let text = tree.hashpyc().args(["check", "--mode", "unchecked"]).python(py).run();
    assert!(
        text.stderr.contains("`hashpyc compile --invalidation-mode unchecked-hash` with the same paths and options replaces it with an unchecked-hash pyc"),
        "{}",
        text.stderr
    );
    tree.hashpyc()
        .args(["compile", "-q", "--invalidation-mode", "unchecked-hash"])
        .python(py)
        .run()
        .assert_code(0);
    tree.hashpyc()
        .args(["check", "--format", "github", "--mode", "unchecked"])
        .python(py)
        .run()
        .assert_code(0);

    // A source nothing can read (reading /proc/self/mem from offset 0 fails), and a
    // `__pycache__` that is a file.
    let tree = Tree::new();
    std::os::unix::fs::symlink("/proc/self/mem", tree.path("x.py")).unwrap();
    tree.write("sub/o.py", "o = 1\n");
    tree.write("sub/__pycache__", "");
    let compile = tree.hashpyc().arg("compile").python(py).run();
    compile.assert_code(1);
    assert!(compile.stderr.contains("`sub/__pycache__`"), "{}", compile.stderr);
    let lines = github_lines(&tree, &[]);
    let x = line_of(&lines, "x.py");
    assert!(x.contains("unreadable") && x.ends_with(" - make the source readable (`hashpyc compile` cannot read it either), then run `hashpyc compile`"), "{x}");
    let o = line_of(&lines, "sub/o.py");
    assert!(o.contains(&format!("(`sub/__pycache__/o.{tag}.pyc`): `sub/__pycache__` is not a directory - remove `sub/__pycache__` (`hashpyc compile` does not replace what is not a directory), then run `hashpyc compile`")), "{o}");
    // The text and JSON findings name it too.
    let text = tree.hashpyc().arg("check").python(py).run();
    assert!(
        text.stdout.lines().any(|l| l == "missing    sub/o.py: `sub/__pycache__` is not a directory"),
        "{}",
        text.stdout
    );
    std::fs::remove_file(tree.path("x.py")).unwrap();
    std::fs::remove_file(tree.path("sub/__pycache__")).unwrap();
    tree.hashpyc().arg("compile").python(py).run().assert_code(0);
    tree.hashpyc().args(["check", "--format", "github"]).python(py).run().assert_code(0);
}

// A source's findings were sorted by the interpreter's version as a string: `--python 3.9
// --python 3.13` listed 3.13's first, and 3.10 came before 3.9. They come in the order the
// targets were given, as the summary lists them, in text, JSON and GitHub output, strays
// and `--all`'s ok findings alike.
#[test]
fn findings_follow_the_order_targets_are_given() {
    let pythons: Vec<&Python> = crate::harness::pythons().values().filter(|p| p.minor >= (3, 7)).collect();
    let (Some(low), Some(high)) = (pythons.first().copied(), pythons.last().copied()) else { return };
    if low.minor == high.minor {
        crate::harness::visible(
            "SKIPPED check::findings_follow_the_order_targets_are_given: one CPython only",
        );
        return;
    }
    let tree = Tree::new();
    tree.write("m.py", "m = 1\n");
    tree.write("s.py", "s = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(low).python(high).arg(".").run().assert_code(0);
    std::fs::remove_file(tree.path("s.py")).unwrap();
    tree.write("n.py", "n = 1\n");
    for order in [[low, high], [high, low]] {
        // Each source's findings (m.py ok, n.py missing, s.py stray), in the order given.
        let want: Vec<String> = order.iter().map(|p| format!("{}.{}", p.minor.0, p.minor.1)).collect();
        let want = [want.clone(), want.clone(), want].concat();
        let run = |format: &str| {
            let run = tree
                .hashpyc()
                .args(["check", "--all", "--stray", "--format", format])
                .python(order[0])
                .python(order[1])
                .arg(".")
                .run();
            run.assert_code(1);
            run
        };
        let text = run("text");
        let named: Vec<String> = text
            .stdout
            .lines()
            .map(|l| {
                l.split_once("  [CPython ")
                    .unwrap_or_else(|| panic!("{l}"))
                    .1
                    .trim_end_matches(']')
                    .to_string()
            })
            .collect();
        assert_eq!(named, want, "{}", text.stdout);
        let summary = format!("for CPython {} and {} (", order[0].version, order[1].version);
        assert!(text.stderr.contains(&summary), "{summary}\n{}", text.stderr);
        let json = run("json");
        let objects: Vec<serde_json::Value> =
            json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let named: Vec<String> = objects
            .iter()
            .filter(|o| o["type"] == "finding")
            .map(|o| o["python"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(named, want, "{}", json.stdout);
        let summary = objects.iter().find(|o| o["type"] == "summary").unwrap();
        let targets: Vec<&str> = order.iter().map(|p| p.version.as_str()).collect();
        assert_eq!(summary["targets"], serde_json::json!(targets), "{summary}");
        let github = run("github");
        let named: Vec<String> = github
            .stdout
            .lines()
            .map(|l| l.split_once("(CPython ").unwrap().1.split_once(')').unwrap().0.to_string())
            .collect();
        assert_eq!(named, want, "{}", github.stdout);
    }
}

/// A named path too long to be a file name gets one error, as a path that does not exist
/// does, not also "no Python sources to check under" it; and a source CPython cannot decode
/// (an unknown encoding: its error has no line) is explained with no `(line 0)`, in the
/// text and in the JSON.
#[test]
fn name_too_long_and_unknown_encoding_are_one_line_each() {
    let Some(py) = harness::any_python("check::name_too_long_and_unknown_encoding_are_one_line_each") else {
        return;
    };
    let tree = Tree::new();
    let long = format!("{}.py", "x".repeat(300));
    let run = tree.hashpyc().arg("check").python(py).arg(&long).run();
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors, [format!("error: `{long}`: File name too long")], "{}", run.stderr);
    assert_ne!(run.code, Some(0));

    tree.write("bad.py", "# coding: bogus-enc\nx = 1\n");
    let state = tempfile::tempdir().unwrap();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.path());
    hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(1);
    let run = hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert!(
        run.stdout.starts_with("missing    ./bad.py: the source does not compile: SyntaxError: "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("bogus-enc"), "{}", run.stdout);
    assert!(!run.stdout.contains("(line"), "{}", run.stdout);
    let json = hashpyc().args(["check", "--format", "json"]).python(py).arg(".").run();
    let finding: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    let detail = finding["detail"].as_str().unwrap();
    assert!(detail.contains("bogus-enc") && !detail.contains("(line"), "{finding}");
}

/// A `.py` the walk finds that is no file (a FIFO, a link to a device) is a warning, as a
/// dangling `.py` link is (no exit status, hidden by `-qq`, a `notice` in JSON), in
/// `compile` and `check` alike: not skipped in silence, since named it is an error.
#[test]
fn special_files_found_by_the_walk_are_warnings() {
    let Some(py) = harness::any_python("check::special_files_found_by_the_walk_are_warnings") else { return };
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    let status = std::process::Command::new("mkfifo").arg(tree.path("pkg/fifo.py")).status().unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink("/dev/null", tree.path("pkg/dev.py")).unwrap();
    let want = [
        "warning: `pkg/dev.py`: not a regular file (a character device); skipped",
        "warning: `pkg/fifo.py`: not a regular file (a FIFO); skipped",
    ];
    let warnings = |run: &crate::harness::Run| {
        let mut w: Vec<String> =
            run.stderr.lines().filter(|l| l.starts_with("warning")).map(String::from).collect();
        w.sort();
        w
    };
    let compiled = tree.hashpyc().args(["compile", "pkg"]).python(py).run();
    compiled.assert_code(0);
    assert_eq!(warnings(&compiled), want, "{}", compiled.stderr);
    let checked = tree.hashpyc().args(["check", "pkg"]).python(py).run();
    checked.assert_code(0);
    assert_eq!(warnings(&checked), want, "{}", checked.stderr);
    let quiet = tree.hashpyc().args(["check", "-qq", "pkg"]).python(py).run();
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "");
    let json = tree.hashpyc().args(["check", "--format", "json", "pkg"]).python(py).run();
    let notices =
        json.stdout.lines().filter(|l| l.contains("\"notice\"") && l.contains("not a regular file")).count();
    assert_eq!(notices, 2, "{}", json.stdout);
}

/// A `__pycache__` that is a symbolic link to nothing, or a loop, is named in the finding
/// as `compile` names it (which cannot create the directory there either), and the GitHub
/// advice is to remove it, not to compile again.
#[test]
fn a_broken_pycache_link_is_named() {
    let Some(py) = harness::any_python("check::a_broken_pycache_link_is_named") else { return };
    let tree = Tree::new();
    tree.write("dangling/m.py", "x = 1\n");
    std::os::unix::fs::symlink("nowhere", tree.path("dangling/__pycache__")).unwrap();
    tree.write("loop/m.py", "x = 1\n");
    std::os::unix::fs::symlink("__pycache__", tree.path("loop/__pycache__")).unwrap();
    let run = tree.hashpyc().arg("check").python(py).args(["dangling", "loop"]).run();
    run.assert_code(1);
    let line = |start: &str| run.stdout.lines().find(|l| l.starts_with(start)).map(str::to_string);
    assert_eq!(
        line("missing"),
        Some(
            "missing    dangling/m.py: `dangling/__pycache__` is a symbolic link to `nowhere`, which does not exist"
                .to_string()
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        line("unreadable"),
        Some("unreadable loop/m.py: `loop/__pycache__` is a symbolic link loop".to_string()),
        "{}",
        run.stdout
    );
    let github =
        tree.hashpyc().args(["check", "--format", "github"]).python(py).args(["dangling", "loop"]).run();
    github.assert_code(1);
    for dir in ["dangling/__pycache__", "loop/__pycache__"] {
        assert!(
            github.stdout.lines().any(|l| l.contains(&format!(" - remove `{dir}`"))),
            "advice to remove {dir}:\n{}",
            github.stdout
        );
    }
}

/// A directory named many times (`yes . | hashpyc check -`, a generated path list) is
/// walked once: it was walked once per occurrence (2 000 copies of `.` took seconds and
/// repeated each warning of the walk 2 000 times), and so is a directory named under
/// several spellings (`./`, `sub/..`, a link to it), under the first.
#[test]
fn a_directory_named_many_times_is_walked_once() {
    let Some(py) = harness::any_python("check::a_directory_named_many_times_is_walked_once") else { return };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.write("sub/n.py", "y = 2\n");
    std::os::unix::fs::symlink("nowhere.py", tree.path("sub/gone.py")).unwrap();
    std::os::unix::fs::symlink(".", tree.path("here")).unwrap();
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let lines = |list: String| {
        let run = tree.hashpyc().args(["check", "--all"]).python(py).arg("-").stdin(list).run();
        run.assert_code(0);
        (
            run.stdout.clone(),
            run.stderr.lines().filter(|l| !l.starts_with("Checked")).map(str::to_string).collect::<Vec<_>>(),
        )
    };
    let want = (
        "ok         ./m.py\nok         ./sub/n.py\n".to_string(),
        vec!["warning: `./sub/gone.py`: dangling symbolic link".to_string()],
    );
    assert_eq!(lines(".\n".repeat(2000)), want);
    assert_eq!(lines(".\n./\nsub/..\nhere\n".repeat(500)), want);
}

/// A named `.py` link that leads nowhere (its target built later, or a loop) is a warning
/// that changes no exit status, and a run whose every named path was skipped has nothing
/// to do: `check` exited 1 with `no Python sources to check under api.py`, and `compile`
/// warned of an empty selection before the warning explaining it.
#[test]
fn a_named_link_to_nothing_is_a_skipped_path() {
    let Some(py) = harness::any_python("check::a_named_link_to_nothing_is_a_skipped_path") else { return };
    let tree = Tree::new();
    std::os::unix::fs::symlink("generated/api.py", tree.path("api.py")).unwrap();
    std::os::unix::fs::symlink("loop.py", tree.path("loop.py")).unwrap();
    tree.write("other.pyi", "x = 1\n");
    std::fs::create_dir(tree.path("empty")).unwrap();
    let warnings = |run: &crate::harness::Run| {
        run.stderr.lines().filter(|l| !l.starts_with(['C', ' '])).map(str::to_string).collect::<Vec<_>>()
    };
    let dangling = "warning: `api.py`: dangling symbolic link";
    for list in ["api.py\n", "api.py\nother.pyi\nloop.py\n"] {
        let run = tree.hashpyc().arg("check").python(py).arg("-").stdin(list).run();
        run.assert_code(0);
        assert_eq!(warnings(&run)[0], dangling, "{list:?}: {}", run.stderr);
        assert!(!run.stderr.contains("no Python sources"), "{list:?}: {}", run.stderr);
        let run = tree.hashpyc().arg("compile").python(py).arg("-").stdin(list).run();
        run.assert_code(0);
        assert!(!run.stderr.contains("no Python sources"), "{list:?}: {}", run.stderr);
    }
    // With a directory holding no source, the empty selection is said, after the warning.
    let run = tree.hashpyc().arg("compile").python(py).args(["api.py", "empty"]).run();
    run.assert_code(0);
    assert_eq!(
        warnings(&run),
        [
            dangling,
            "warning: no Python sources to compile under `api.py`, `empty` (1 named link to nothing skipped)"
        ],
        "{}",
        run.stderr
    );
    tree.hashpyc().arg("check").python(py).args(["api.py", "empty"]).run().assert_code(1);
}

/// A `.py` link leading nowhere found by the walk of a directory is skipped as a named one
/// is: `check d`, where `d` held only such links, exited 1 with `no Python sources to
/// check under d` after their warnings, while naming the links exited 0. Each is counted;
/// a directory holding nothing at all is still an empty selection.
#[test]
fn a_walked_link_to_nothing_is_a_skipped_file() {
    let Some(py) = harness::any_python("check::a_walked_link_to_nothing_is_a_skipped_file") else { return };
    let tree = Tree::new();
    std::fs::create_dir(tree.path("d")).unwrap();
    std::os::unix::fs::symlink("generated/api.py", tree.path("d/api.py")).unwrap();
    std::os::unix::fs::symlink("loop.py", tree.path("d/loop.py")).unwrap();
    std::fs::create_dir(tree.path("empty")).unwrap();
    let warnings =
        ["warning: `d/api.py`: dangling symbolic link", "warning: `d/loop.py`: symbolic link loop"];
    for cmd in ["check", "compile"] {
        let run = tree.hashpyc().arg(cmd).python(py).arg("d").run();
        run.assert_code(0);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines[..2], warnings, "{cmd}: {}", run.stderr);
        assert!(lines[2].contains("2 links to nothing skipped"), "{cmd}: {}", run.stderr);
        assert!(!run.stderr.contains("no Python sources"), "{cmd}: {}", run.stderr);
    }
    // The implied `.` alike.
    let run = crate::harness::Hashpyc::new(&tree.path("d")).arg("check").python(py).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("no Python sources"), "{}", run.stderr);
    // A directory with nothing in it beside it is still an empty selection.
    let run = tree.hashpyc().arg("check").python(py).args(["d", "empty"]).run();
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("error: no Python sources to check under `d`, `empty` (2 links to nothing skipped)"),
        "{}",
        run.stderr
    );
    tree.hashpyc().arg("check").python(py).arg("empty").run().assert_code(1);
}

/// The pyc of a `.py` link whose target is gone is stray: no import reads it (`import
/// mod` fails), but `check --stray` took the link for a source.
#[test]
fn the_pyc_of_a_dangling_source_link_is_stray() {
    let Some(py) = harness::any_python("check::the_pyc_of_a_dangling_source_link_is_stray") else { return };
    let tree = Tree::new();
    tree.write("a/impl.py", "x = 1\n");
    std::os::unix::fs::symlink("impl.py", tree.path("a/mod.py")).unwrap();
    tree.write("a/keep.py", "k = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("a").run().assert_code(0);
    std::fs::remove_file(tree.path("a/impl.py")).unwrap();
    assert!(
        py.cmd()
            .args(["-c", "import mod"])
            .current_dir(tree.path("a"))
            .output()
            .unwrap()
            .stderr
            .ends_with(b"No module named 'mod'\n")
    );
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).arg("a").run();
    run.assert_code(1);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            format!("stray      a/__pycache__/impl.{tag}.pyc"),
            format!(
                "stray      a/__pycache__/mod.{tag}.pyc: `a/mod.py` is a symbolic link to `impl.py`, which does not exist"
            ),
        ],
        "{}",
        run.stderr
    );
}

/// The pyc of a `.py` that became a directory or a FIFO is stray: no import reads either
/// (`import wx` fails), but `check --stray` listed neither (helper report), only the new
/// directory's missing pyc.
#[test]
fn the_pyc_of_a_source_that_is_no_longer_a_file_is_stray() {
    let Some(py) = harness::any_python("check::the_pyc_of_a_source_that_is_no_longer_a_file_is_stray") else {
        return;
    };
    let tree = Tree::new();
    tree.write("d/wx.py", "w = 1\n");
    tree.write("d/q.py", "q = 1\n");
    tree.write("d/keep.py", "k = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("d").run().assert_code(0);
    std::fs::remove_file(tree.path("d/wx.py")).unwrap();
    tree.write("d/wx.py/inner.py", "i = 1\n");
    std::fs::remove_file(tree.path("d/q.py")).unwrap();
    let made = std::process::Command::new("mkfifo").arg(tree.path("d/q.py")).status().unwrap();
    assert!(made.success());
    let import = py.cmd().args(["-c", "import wx"]).current_dir(tree.path("d")).output().unwrap();
    assert!(import.stderr.ends_with(b"No module named 'wx'\n"), "{import:?}");
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).arg("d").run();
    run.assert_code(1);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("stray")).collect::<Vec<_>>(),
        [
            format!("stray      d/__pycache__/q.{tag}.pyc: `d/q.py` is a FIFO"),
            format!("stray      d/__pycache__/wx.{tag}.pyc: `d/wx.py` is a directory"),
        ],
        "{}",
        run.stdout
    );
}

/// Two directories sharing one `__pycache__` through symbolic links: each one's pycs were
/// reported stray in the other (exit 1; removing them breaks imports). A pyc is stray only
/// when no directory of the walk sharing the `__pycache__` holds its source; checked alone,
/// the finding says the directory is shared.
#[test]
fn a_shared_pycache_holds_no_strays_of_its_sharers() {
    let Some(py) = harness::any_python("check::a_shared_pycache_holds_no_strays_of_its_sharers") else {
        return;
    };
    let tree = Tree::new();
    tree.write("d1/m.py", "m = 1\n");
    tree.write("d2/o.py", "o = 1\n");
    tree.write("d2/g.py", "g = 1\n");
    std::fs::create_dir(tree.path("store")).unwrap();
    for d in ["d1", "d2"] {
        std::os::unix::fs::symlink("../store", tree.path(format!("{d}/__pycache__"))).unwrap();
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).args(["d1", "d2"]).run().assert_code(0);
    std::fs::remove_file(tree.path("d2/g.py")).unwrap();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let shared = |d: &str| {
        format!(
            "`{d}/__pycache__` is a symbolic link, which other directories may share: the pyc may be the source's of one not checked"
        )
    };
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).args(["d1", "d2"]).run();
    run.assert_code(1);
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [
            format!("stray      d1/__pycache__/g.{tag}.pyc: {}", shared("d1")),
            format!("stray      d2/__pycache__/g.{tag}.pyc: {}", shared("d2"))
        ],
        "{}",
        run.stderr
    );
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).arg("d1").run();
    run.assert_code(1);
    assert!(
        run.stdout.contains(&format!("stray      d1/__pycache__/o.{tag}.pyc: {}", shared("d1"))),
        "{}",
        run.stdout
    );
}

// A mixed tree: pycs of another version where this one's are missing in `a`, timestamp
// pycs (compileall's) in `b`. Each hint is about other findings; both are given, in text
// one line each and in JSON one notice each (before, only the first was).
per_python!(every_hint_that_applies_is_given, min = (3, 7), |py: &Python| {
    let Some(other) = harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 7)) else {
        return harness::visible("SKIPPED every_hint_that_applies_is_given: needs a second CPython");
    };
    let tree = Tree::new();
    tree.write("a/m.py", "x = 1\n");
    tree.write("b/n.py", "y = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(other).arg("a").run().assert_code(0);
    py.run(&["-m", "compileall", "-q", "b"], tree.root());
    let run = tree.hashpyc().arg("check").python(py).args(["a", "b"]).run();
    run.assert_code(1);
    let hints: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("hint: ")).collect();
    assert_eq!(hints.len(), 2, "{}", run.stderr);
    assert!(hints[0].contains("did you mean `--python python"), "{}", run.stderr);
    assert!(hints[1].contains("1 pyc is timestamp-based"), "{}", run.stderr);
    let json = tree.hashpyc().args(["check", "--format", "json"]).python(py).args(["a", "b"]).run();
    json.assert_code(1);
    let notices: Vec<String> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "notice")
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(notices.len(), 2, "{}", json.stdout);
    assert_eq!(notices, hints.iter().map(|h| h.trim_start_matches("hint: ").to_string()).collect::<Vec<_>>());
    // `-qq` hides them all, as it hid the one.
    let quiet = tree.hashpyc().args(["check", "-qq"]).python(py).args(["a", "b"]).run();
    assert!(!quiet.stderr.contains("hint:"), "{}", quiet.stderr);
});

// `check --format github` annotated findings only: a path that cannot be walked or does not
// exist, or nothing to check, failed the job with no annotation (compile's errors are
// annotations). Each is one now, on the path when there is one; stderr says them as before.
#[test]
fn github_annotates_the_runs_errors() {
    let Some(py) = harness::any_python("check::github_annotates_the_runs_errors") else { return };
    let tree = Tree::new();
    tree.write("a/m.py", "x = 1\n");
    std::fs::create_dir(tree.path("empty")).unwrap();
    tree.hashpyc().args(["compile", "-q", "a"]).python(py).run().assert_code(0);
    let run = tree.hashpyc().args(["check", "--format", "github", "a", "nope"]).python(py).run();
    run.assert_code(2);
    assert_eq!(
        run.stdout, "::error file=nope,title=hashpyc check::`nope`: no such file or directory\n",
        "{run:?}"
    );
    assert!(run.stderr.contains("error: `nope`: no such file or directory"), "{run:?}");
    let run = tree.hashpyc().args(["check", "--format", "github", "empty"]).python(py).run();
    run.assert_code(1);
    assert_eq!(
        run.stdout, "::error title=hashpyc check::no Python sources to check under `empty`\n",
        "{run:?}"
    );
    // A stale pyc says which of its causes it is: other source bytes, or its detail (it
    // listed all three for each).
    tree.write("a/m.py", "x = 2\n");
    let run = tree.hashpyc().args(["check", "--format", "github", "a"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("::stale: the pyc was compiled from other source bytes (`a/__pycache__/"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("embeds another path"), "{run:?}");
    tree.hashpyc().args(["compile", "-q", "-d", "/app", "a"]).python(py).run().assert_code(0);
    let run = tree.hashpyc().args(["check", "--format", "github", "a"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("::stale: the pyc is not what `hashpyc compile` writes (`a/__pycache__/"),
        "{run:?}"
    );
    assert!(run.stdout.contains(": embedded path is `/app/m.py`, expected `a/m.py`"), "{run:?}");
    // Text output is unchanged: nothing on stdout.
    let run = tree.hashpyc().args(["check", "empty"]).python(py).run();
    run.assert_code(1);
    assert_eq!(run.stdout, "");
}

// Pycs of a Python before 3.7, and headers importlib refuses, described as CPython would:
// the wrong-interpreter hint suggested `--target 3.6`, which hashpyc refuses, and the
// layout hint `-b` for a 2.7 `m.pyc`, which `-b` then called invalid; `--format json` gave
// a 3.6 pyc's modification time as its flags; `check` said "unknown magic" where `inspect`
// said "older than 3.7"; an unknown flag bit was not named, as importlib names it.
#[test]
fn pycs_before_3_7_and_refused_flags_are_said_as_cpython_would() {
    let Some(py) = harness::any_python("check::pycs_before_3_7_and_refused_flags_are_said_as_cpython_would")
    else {
        return;
    };
    let tree = Tree::new();
    // The headers CPython 3.6 (magic 3379, mtime, size) and 2.7 (magic 62211, mtime) write.
    let py36 = [&[0x33, 0x0d, 0x0d, 0x0a][..], &[1, 0, 0, 0], &[6, 0, 0, 0], &[0xe3; 20]].concat();
    let py27 = [&[0x03, 0xf3, 0x0d, 0x0a][..], &[1, 0, 0, 0], &[0x63; 20]].concat();
    tree.write("a/m.py", "x = 1\n");
    tree.write("a/__pycache__/m.cpython-36.pyc", &py36);
    tree.write("b/m.py", "x = 1\n");
    tree.write("b/m.pyc", &py27);
    let run = tree.hashpyc().args(["check", "a", "b"]).python(py).run();
    run.assert_code(1);
    assert_eq!(run.stdout.lines().filter(|l| l.starts_with("missing")).count(), 2, "{run:?}");
    assert!(!harness::has_other_hint(&run.stderr), "{run:?}");
    // Named as a pyc of this target: invalid, said as inspect says it.
    tree.write(format!("a/{}", pyc(py, "m")), &py36);
    let run = tree.hashpyc().args(["check", "a"]).python(py).run();
    run.assert_code(1);
    let want = format!("a pyc of a Python older than 3.7 (magic 3379), not {}.{}", py.minor.0, py.minor.1);
    assert!(run.stdout.contains(&want), "{run:?}");
    let inspect = tree.hashpyc().args(["inspect", "a/__pycache__/m.cpython-36.pyc"]).run();
    assert!(inspect.stdout.contains("330d0d0a (a Python older than 3.7)"), "{inspect:?}");
    // Its header has no flags: null in JSON, as the hash.
    std::fs::remove_file(tree.path(format!("a/{}", pyc(py, "m")))).unwrap();
    std::fs::remove_file(tree.path("a/m.py")).unwrap();
    let run = tree.hashpyc().args(["check", "--stray", "--format", "json", "a"]).python(py).run();
    let stray: serde_json::Value = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|v: &serde_json::Value| v["outcome"] == "stray")
        .unwrap();
    assert_eq!(stray["found"]["flags"], serde_json::Value::Null, "{stray}");
    assert_eq!(stray["found"]["magic"], "330d0d0a", "{stray}");
    // Flag bits importlib refuses: which, as it says them.
    tree.write("c/m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q", "c"]).python(py).run().assert_code(0);
    let pyc = tree.path(format!("c/{}", pyc(py, "m")));
    let mut bytes = std::fs::read(&pyc).unwrap();
    bytes[4..8].copy_from_slice(&4u32.to_le_bytes());
    std::fs::write(&pyc, &bytes).unwrap();
    // importlib's own judgement (its import then compiles the source instead).
    let classify = "import importlib._bootstrap_external as e, sys\ntry:\n    \
                    e._classify_pyc(open(sys.argv[1], 'rb').read(), 'm', {})\nexcept ImportError as x:\n    print(x)";
    let said = py.run(&["-c", classify, pyc.to_str().unwrap()], tree.root());
    assert_eq!(said.trim(), "invalid flags 4 in 'm'");
    let run = tree.hashpyc().args(["check", "c"]).python(py).run();
    assert!(run.stdout.contains("invalid    c/m.py: unknown flag bits (flags 4)"), "{run:?}");
    let inspect = tree.hashpyc().arg("inspect").arg(&pyc).run();
    assert!(inspect.stdout.contains("not a valid pyc: unknown flag bits (flags 4)"), "{inspect:?}");
    // A source that is a symbolic link loop is said as the walk says it, not as the system.
    tree.write("d/m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q", "d"]).python(py).run().assert_code(0);
    std::os::unix::fs::symlink("loop.py", tree.path("d/loop.py")).unwrap();
    std::fs::copy(
        tree.path(format!("d/{}", self::pyc(py, "m"))),
        tree.path(format!("d/{}", self::pyc(py, "loop"))),
    )
    .unwrap();
    let inspect = tree.hashpyc().arg("inspect").arg(format!("d/{}", self::pyc(py, "loop"))).run();
    assert!(
        inspect.stdout.contains("(source `d/loop.py` could not be read: a symbolic link loop)"),
        "{inspect:?}"
    );
}

// `inspect` of an unchecked-hash pyc whose source changed says that its old code runs:
// importlib never compares it (the import below runs it and prints the old value).
#[test]
fn inspect_says_a_stale_unchecked_pyc_runs() {
    let Some(py) = harness::any_python("check::inspect_says_a_stale_unchecked_pyc_runs") else { return };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.hashpyc()
        .args(["compile", "-q", "--invalidation-mode", "unchecked-hash"])
        .python(py)
        .run()
        .assert_code(0);
    tree.write("m.py", "x = 2\n");
    let import = py.cmd().args(["-c", "import m; print(m.x)"]).current_dir(tree.root()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&import.stdout).trim(), "1", "{import:?}");
    let run = tree.hashpyc().args(["inspect", "m.py"]).run();
    run.assert_code(0);
    assert!(
        run.stdout.contains(
            "does NOT match `m.py`; importlib does not check an unchecked-hash pyc, so this old code runs"
        ),
        "{run:?}"
    );
}

// A CI job with no Python on PATH (the README's `check --target` job) ran `check` without
// `--target` and was told only ``Python interpreter `python3` not found on PATH``; the
// error now names `--target`, the way to check without an interpreter. An interpreter
// named (`--python python3.12`) that is not found is that error alone.
#[test]
fn check_without_an_interpreter_names_target() {
    let tree = Tree::new();
    tree.write("src/m.py", "X = 1\n");
    std::fs::create_dir(tree.path("empty-bin")).unwrap();
    let run = tree.hashpyc().env("PATH", tree.path("empty-bin")).args(["check", "src"]).run();
    run.assert_code(2);
    assert_eq!(
        run.stderr,
        "error: Python interpreter `python3` not found on PATH (`hashpyc check --target X.Y` checks without an interpreter)\n"
    );
    let run = tree
        .hashpyc()
        .env("PATH", tree.path("empty-bin"))
        .args(["check", "--python", "python3.12", "src"])
        .run();
    run.assert_code(2);
    assert_eq!(run.stderr, "error: Python interpreter `python3.12` not found on PATH\n");
}

// The interpreter, level and layout hints looked at the first 2,000 directories only and
// said nothing of it: 2,100 directories compiled for one version gave "but 2000 cpython-3X
// pycs are there" (and "2000 sources have pycs of level 0", "2000 sources have pycs in
// `__pycache__`"); 2,000 never-compiled directories sorting first hid the interpreter hint
// of the 100 compiled after them. Now every directory counts (each listed once).
#[test]
fn hints_count_every_directory() {
    let test = "check::hints_count_every_directory";
    let Some(py) = harness::any_python(test) else { return };
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let other = if py.minor == (3, 13) { "3.12" } else { "3.13" };
    let tree = Tree::new();
    for i in 0..2100 {
        tree.write(format!("d{i:04}/m.py"), format!("X = {i}\n"));
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    let run = tree.hashpyc().args(["check", "--target", other]).run();
    run.assert_code(1);
    let want = format!("hint: 2100 pycs are missing for CPython {other}, but 2100 {tag} pycs are there");
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "-o", "1"]).python(py).run();
    run.assert_code(1);
    let want = "hint: 2100 pycs are missing at optimization level 1, but 2100 sources have pycs of level 0";
    assert!(run.stderr.contains(want), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "-b"]).python(py).run();
    run.assert_code(1);
    let want = "hint: 2100 legacy pycs (`-b`) are missing, but 2100 sources have pycs in `__pycache__`";
    assert!(run.stderr.contains(want), "{}", run.stderr);

    // 2,000 directories never compiled, then 100 compiled for `py`.
    let tree = Tree::new();
    for i in 0..2000 {
        tree.write(format!("a{i:04}/m.py"), format!("X = {i}\n"));
    }
    let compiled: Vec<String> = (0..100).map(|i| format!("z{i:03}")).collect();
    for dir in &compiled {
        tree.write(format!("{dir}/m.py"), "Z = 1\n");
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).args(&compiled).run().assert_code(0);
    let run = tree.hashpyc().args(["check", "--target", other]).run();
    run.assert_code(1);
    let want = format!("hint: 2100 pycs are missing for CPython {other}, but 100 {tag} pycs are there");
    assert!(run.stderr.contains(&want), "{}", run.stderr);
}

// A tree compiled without a pycache prefix, checked with one (`PYTHONPYCACHEPREFIX` set in
// the check step only, or `--pycache-prefix` given to `check` alone): every pyc `missing`,
// no hint, though the same mistake with PYTHONOPTIMIZE or `-b` gets one. Now a hint names
// the prefix, where it came from, one pyc found in `__pycache__` and where it was expected,
// and how to check without it; none when fewer than nine in ten of the missing pycs are
// in `__pycache__`.
per_python!(prefix_hint_for_pycs_in_pycache, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("src/b.py", "B = 2\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("src").run().assert_code(0);
    let prefix = tree.path("pfx");
    let src = std::fs::canonicalize(tree.path("src")).unwrap();
    let expected = prefix.join(src.strip_prefix("/").unwrap()).join(pyc(py, "a").replace("__pycache__/", ""));
    let hint = |from: &str, without: &str| {
        format!(
            "hint: 2 pycs are missing under the pycache prefix `{}` ({from}), but 2 are in `__pycache__` \
             (`src/{}`, expected at `{}`), as a compile without the prefix writes them: to check those, run \
             `hashpyc check` {without}, or `hashpyc compile` with the prefix to write them there\n",
            prefix.display(),
            pyc(py, "a"),
            expected.display()
        )
    };
    let run = tree.hashpyc().arg("check").python(py).arg("src").env("PYTHONPYCACHEPREFIX", &prefix).run();
    run.assert_code(1);
    assert_eq!(run.stdout, "missing    src/a.py\nmissing    src/b.py\n");
    let want = hint(
        "set by PYTHONPYCACHEPREFIX in the environment",
        "with PYTHONPYCACHEPREFIX unset (`env -u PYTHONPYCACHEPREFIX hashpyc check`)",
    );
    assert!(run.stderr.contains(&want), "{}", run.stderr);
    let flag = tree.hashpyc().arg("check").python(py).arg("--pycache-prefix").arg(&prefix).arg("src").run();
    flag.assert_code(1);
    let want = hint("given by `--pycache-prefix`", "without `--pycache-prefix`");
    assert!(flag.stderr.contains(&want), "{}", flag.stderr);
    // A notice in JSON, and the pyc expected is each finding's `pyc`.
    let json = tree
        .hashpyc()
        .args(["check", "--format", "json"])
        .python(py)
        .arg("src")
        .env("PYTHONPYCACHEPREFIX", &prefix)
        .run();
    let notices = harness::notices(&json.stdout);
    assert_eq!(notices.len(), 1, "{}", json.stdout);
    assert!(
        notices[0]["message"].as_str().unwrap().starts_with("2 pycs are missing under"),
        "{}",
        json.stdout
    );
    assert!(json.stdout.contains(&format!("\"pyc\":\"{}\"", expected.display())), "{}", json.stdout);
    // Two sources never compiled beside them: 2 of 4 in `__pycache__`, no hint.
    tree.write("src/c.py", "C = 3\n");
    tree.write("src/d.py", "D = 4\n");
    let run = tree.hashpyc().arg("check").python(py).arg("src").env("PYTHONPYCACHEPREFIX", &prefix).run();
    run.assert_code(1);
    assert!(!harness::has_other_hint(&run.stderr), "{}", run.stderr);
});

// A venv compiled as `v` (the walk enters `v/lib`, not its `lib64 -> lib` link) and
// checked as `v/lib64`: every pyc stale for its embedded path (`v/lib/…` for `v/lib64/…`)
// and no hint, as another spelling through a symbolic link was never recognised; compiled
// as `$PWD/v/lib64` and checked as `$PWD/v/lib`, the hint said CPython's import had
// rewritten the pycs. Now the hint names the two directories, one through a link of the
// other, and the name to check the tree by.
per_python!(spelling_hint_through_a_symbolic_link, |py: &Python| {
    let tree = Tree::new();
    tree.write("v/lib/pkg/__init__.py", "");
    tree.write("v/lib/pkg/m.py", "X = 1\n");
    std::os::unix::fs::symlink("lib", tree.path("v/lib64")).unwrap();
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("v").run().assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).arg("v/lib64").run();
    run.assert_code(1);
    assert!(
        run.stdout.contains("embedded path is `v/lib/pkg/__init__.py`, expected `v/lib64/pkg/__init__.py`"),
        "{}",
        run.stdout
    );
    let hint = "hint: 2 stale pycs embed their source path through another name of a directory \
                (`v/lib/pkg/__init__.py` for `v/lib64/pkg/__init__.py`): `v/lib` and `v/lib64` are one \
                directory, through a symbolic link, and the compile (or the import) that wrote them named \
                it `v/lib`: check the tree as `v/lib`, or run `hashpyc compile` on it as named here to \
                rewrite them\n";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    tree.hashpyc().arg("check").python(py).arg("v/lib").run().assert_code(0);
    // By absolute paths, the other way round: no import rewrote them.
    let v = std::fs::canonicalize(tree.path("v")).unwrap();
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(v.join("lib64")).run().assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).arg(v.join("lib")).run();
    run.assert_code(1);
    let hint = format!(
        "`{0}/lib` are one directory, through a symbolic link, and the compile (or the import) that wrote \
         them named it `{0}/lib64`",
        v.display()
    );
    assert!(run.stderr.contains(&format!("`{}/lib64` and {hint}", v.display())), "{}", run.stderr);
    assert!(!run.stderr.contains("CPython's import writes"), "{}", run.stderr);
});

// A wrapper that starts the interpreter with `-O` or `-X pycache_prefix=DIR`: `compile`
// wrote level 0 pycs into `__pycache__` and `check` said "all fresh" (exit 0), though that
// interpreter imports `.opt-1.pyc` pycs, or looks under the prefix, and so uses none of
// them. Both commands now warn, naming the wrapper, its setting and what to pass; with
// that passed, no warning.
#[test]
fn a_wrappers_optimization_level_and_pycache_prefix_are_warned_of() {
    let Some(py) = harness::python_or_skip(
        (3, 12),
        "check::a_wrappers_optimization_level_and_pycache_prefix_are_warned_of",
    ) else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/m.py", "M = 1\n");
    let exe = py.path.display();
    let opt = tree.write_executable("bin/pyO", format!("#!/bin/sh\nexec '{exe}' -O \"$@\"\n"));
    let prefix =
        tree.write_executable("bin/pyP", format!("#!/bin/sh\nexec '{exe}' -X pycache_prefix=pp \"$@\"\n"));
    let run = |command: &str, python: &Path, extra: &[&str]| {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", tree.path("state"))
            .arg(command)
            .arg("--python")
            .arg(python)
            .args(extra)
            .arg("src")
            .run()
    };
    let level = format!(
        "`{}` runs with optimization level 1 (`-O` or PYTHONOPTIMIZE where it starts), so it imports `.opt-1.pyc` pycs, not the level 0 pycs hashpyc",
        opt.display()
    );
    let compiled = run("compile", &opt, &[]);
    compiled.assert_code(0);
    assert!(
        compiled.stderr.contains(&format!("{level} writes: pass `-o 1` to write those")),
        "{}",
        compiled.stderr
    );
    let checked = run("check", &opt, &[]);
    checked.assert_code(0);
    assert!(
        checked.stderr.contains(&format!("{level} checks: pass `-o 1` to check those")),
        "{}",
        checked.stderr
    );
    for command in ["compile", "check"] {
        let fine = run(command, &opt, &["-o", "1"]);
        fine.assert_code(0);
        assert!(!fine.stderr.contains("runs with"), "{}", fine.stderr);
    }
    let checked = run("check", &prefix, &[]);
    checked.assert_code(0);
    let said = format!(
        "`{}` runs with pycache prefix `pp` (`-X pycache_prefix` or PYTHONPYCACHEPREFIX where it starts), so it looks for pycs under it, not in the `__pycache__` directories where hashpyc checks them: pass `--pycache-prefix pp` to check those",
        prefix.display()
    );
    assert!(checked.stderr.contains(&said), "{}", checked.stderr);
    for command in ["compile", "check"] {
        let fine = run(command, &prefix, &["--pycache-prefix", "pp"]);
        fine.assert_code(0);
        assert!(!fine.stderr.contains("runs with"), "{}", fine.stderr);
    }
}

// `check`'s text output, what a hook prints, never said how to fix a stale or missing pyc
// (`stale pkg/__init__.py`, the summary, exit 1), where `--format github` ends each
// annotation with "run `hashpyc compile` to fix". Now a last hint names the `compile` to
// run: with the paths named when they are few and plain, "with the same paths" otherwise
// or on stdin, "with the same options" when one `compile` takes too was given; none when
// compiling cannot fix the finding (a source that does not compile). The command it names
// makes the check pass.
#[test]
fn text_output_names_the_compile_that_fixes_the_findings() {
    let Some(py) = harness::any_python("check::text_output_names_the_compile_that_fixes_the_findings") else {
        return;
    };
    let tree = Tree::new();
    tree.write("pkg/__init__.py", "x = 1\n");
    tree.write("pkg/m.py", "y = 2\n");
    // The interpreter from the environment: no option on the command line.
    let hashpyc = |args: &[&str]| tree.hashpyc().env("HASHPYC_PYTHON", &py.path).args(args);
    hashpyc(&["compile", "-q"]).run().assert_code(0);
    tree.write("pkg/__init__.py", "x = 2\n");
    let hint = |run: &harness::Run| -> String {
        let hints: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("hint: ")).collect();
        assert!(hints.len() <= 1, "{}", run.stderr);
        hints.first().map(|h| h.to_string()).unwrap_or_default()
    };
    let run = hashpyc(&["check", "pkg/__init__.py"]).run();
    run.assert_code(1);
    assert_eq!(run.stdout, "stale      pkg/__init__.py\n");
    let stderr: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(stderr[0], "hint: run `hashpyc compile pkg/__init__.py` to fix", "{}", run.stderr);
    assert!(stderr[1].starts_with("Checked 1 file for CPython"), "{}", run.stderr);
    for (args, stdin, want) in [
        (&["check"][..], None, "hint: run `hashpyc compile` to fix"),
        (&["check", "pkg"], None, "hint: run `hashpyc compile pkg` to fix"),
        (
            &["check", "-q", "pkg/m.py", "pkg/__init__.py"],
            None,
            "hint: run `hashpyc compile pkg/m.py pkg/__init__.py` to fix",
        ),
        (
            &["check", "-"],
            Some("pkg/__init__.py\n"),
            "hint: run `hashpyc compile -` with the same paths on stdin to fix",
        ),
        (
            &["check", "pkg/__init__.py", "--force-exclude"],
            None,
            "hint: run `hashpyc compile pkg/__init__.py` with the same options to fix",
        ),
        (
            &["check", "--python", py.path.to_str().unwrap(), "-"],
            Some("pkg/__init__.py\n"),
            "hint: run `hashpyc compile -` with the same options and paths on stdin to fix",
        ),
        (&["check", "p k g"], None, ""),
    ] {
        let mut cmd = hashpyc(args);
        if let Some(input) = stdin {
            cmd = cmd.stdin(input);
        }
        let run = cmd.run();
        if want.is_empty() {
            // A path that does not exist: no finding, no hint.
            run.assert_code(2);
        } else {
            run.assert_code(1);
        }
        assert_eq!(hint(&run), want, "{args:?}: {}", run.stderr);
    }
    // Paths that need quoting, or many: "with the same paths".
    tree.write("p k/a.py", "z = 3\n");
    let run = hashpyc(&["check", "p k/a.py", "pkg/__init__.py"]).run();
    assert_eq!(hint(&run), "hint: run `hashpyc compile` with the same paths to fix", "{}", run.stderr);
    // Not in JSON or GitHub output (the annotations say it), nor under -qq.
    for args in
        [&["check", "--json", "pkg"][..], &["check", "--format", "github", "pkg"], &["check", "-qq", "pkg"]]
    {
        let run = hashpyc(args).run();
        run.assert_code(1);
        assert!(
            !run.stderr.contains("to fix") && !run.stdout.contains("hint: run"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A source that does not compile: compiling cannot fix it, and no hint says it does.
    tree.write("pkg/m.py", "def (:\n");
    hashpyc(&["compile", "-q", "pkg/m.py"]).run().assert_code(1);
    let run = hashpyc(&["check", "pkg/m.py"]).run();
    run.assert_code(1);
    assert_eq!(hint(&run), "", "{}", run.stderr);
    // The command named fixes the rest.
    tree.write("pkg/m.py", "y = 2\n");
    hashpyc(&["compile", "-q", "pkg/__init__.py", "pkg/m.py", "p k/a.py"]).run().assert_code(0);
    hashpyc(&["check"]).run().assert_code(0);
}

// A name from `git diff --cached --name-only` without `-z`, which git quotes when it holds
// bytes outside ASCII (`core.quotepath`, on by default: `"pkg/\303\274n\303\257.py"`), was
// an error saying only "no such file or directory". Now the error says the name is quoted
// as git quotes names, to list them with `-z` and read them with `--null -`, and that the
// unquoted name exists; read so, the file is compiled.
#[test]
fn a_name_git_quoted_is_said_to_be() {
    let Some(py) = harness::any_python("check::a_name_git_quoted_is_said_to_be") else { return };
    let tree = Tree::new();
    git_ok(tree.root(), &["init", "-q"]);
    tree.write("pkg/ünï.py", "x = 1\n");
    tree.write("pkg/a\"b.py", "y = 2\n");
    git_ok(tree.root(), &["add", "."]);
    let listed = git(tree.root(), &["-c", "core.quotepath=true", "diff", "--cached", "--name-only"]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert_eq!(listed, "\"pkg/a\\\"b.py\"\n\"pkg/\\303\\274n\\303\\257.py\"\n");
    let hint = "(the name is quoted as git quotes names without `-z`: list them with `-z` and read them with `--null -`";
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().args([cmd, "-"]).python(py).stdin(listed.clone()).run();
        run.assert_code(2);
        for (quoted, name) in [
            (r#""\"pkg/a\\\"b.py\"""#, "pkg/a\"b.py"),
            (r#""\"pkg/\\303\\274n\\303\\257.py\"""#, "pkg/ünï.py"),
        ] {
            // Quoted once, in its own quotes (as any name that needs escaping).
            let want = format!("error: {quoted}: no such file or directory {hint}; `{name}` exists)\n");
            assert!(run.stderr.contains(&want), "{cmd}: want {want}\n{}", run.stderr);
        }
    }
    // A deleted file's name is quoted too: said so, without "exists".
    let run = tree.hashpyc().args(["check", "-"]).python(py).stdin("\"gone/\\303\\274.py\"\n").run();
    run.assert_code(2);
    assert!(run.stderr.contains(&format!("{hint})\n")), "{}", run.stderr);
    // A name merely in quotes is no git-quoted one.
    let run = tree.hashpyc().args(["check", "-"]).python(py).stdin("\"plain.py\"\n").run();
    assert!(run.stderr.contains("no such file or directory\n"), "{}", run.stderr);
    // As the hint says.
    let listed = git(tree.root(), &["diff", "--cached", "--name-only", "-z"]).stdout;
    tree.hashpyc().args(["compile", "-q", "--null", "-"]).python(py).stdin(listed).run().assert_code(0);
    tree.hashpyc().args(["check"]).python(py).run().assert_code(0);
}

// With legacy pycs (`legacy = true`: `mod.pyc` beside `mod.py`), a source renamed or
// deleted (`git mv mod.py mod2.py`) leaves its pyc, which CPython imports in its place
// (`import mod` still works); `check --stray mod.py mod2.py` said only "`mod.py`: no such
// file or directory". Now a named `.py` that does not exist with a pyc beside it says the
// pyc is there and imported in its place, and how to list such pycs; that command lists it.
#[test]
fn a_named_source_gone_with_its_legacy_pyc_beside_it_says_so() {
    let Some(py) = harness::any_python("check::a_named_source_gone_with_its_legacy_pyc_beside_it_says_so")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("hashpyc.toml", "legacy = true\n");
    tree.write("sub/mod.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    assert!(tree.path("sub/mod.pyc").is_file());
    std::fs::rename(tree.path("sub/mod.py"), tree.path("sub/mod2.py")).unwrap();
    let imported =
        py.run(&["-c", "import sys; sys.path.insert(0, 'sub'); import mod; print(mod.x)"], tree.root());
    assert_eq!(imported.trim(), "1", "CPython imports the legacy pyc of the gone source");
    let want = "error: `sub/mod.py`: no such file or directory, but `sub/mod.pyc` is there, which Python imports \
                in its place (`hashpyc check --stray --legacy sub` lists such pycs): delete it unless the module \
                is meant to stay importable\n";
    for args in [
        &["check", "--stray", "sub/mod.py", "sub/mod2.py"][..],
        &["compile", "-q", "sub/mod.py", "sub/mod2.py"],
    ] {
        let run = tree.hashpyc().args(args).python(py).run();
        run.assert_code(2);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
    }
    // Without the configuration the pyc is imported all the same: said all the same.
    let run = tree.hashpyc().args(["check", "--no-config", "sub/mod.py"]).python(py).run();
    assert!(run.stderr.contains(want), "{}", run.stderr);
    // The command it names lists the pyc.
    let run = tree.hashpyc().args(["check", "--stray", "--legacy", "sub"]).python(py).run();
    run.assert_code(1);
    assert!(run.stdout.contains("stray      sub/mod.pyc"), "{}", run.stdout);
    // A missing name with no pyc beside it gets the plain error.
    let run = tree.hashpyc().args(["check", "sub/other.py"]).python(py).run();
    assert!(run.stderr.contains("error: `sub/other.py`: no such file or directory\n"), "{}", run.stderr);
}

// `hashpyc check -j 2 .` was refused (`unexpected argument '-j'`) while `compile -j 2`
// worked, and CI jobs give both the same flags (helper report). `check` now takes `-j N`,
// `HASHPYC_JOBS` and the `jobs` key as `compile` does, bounding its threads; the findings
// are the same whatever N, and a bad value is the error `compile` gives for it.
per_python!(check_takes_jobs_as_compile_does, |py: &Python| {
    let (tree, _) = every_case(py, other_python(py));
    // `.` with a file under it too: nested roots, visited on a pool of their own.
    for roots in [&["."][..], &[".", "./stale.py", "./ok.py"]] {
        let check = |jobs: &[&str]| {
            let run =
                tree.hashpyc().args(["check", "--all", "--stray"]).args(jobs).python(py).args(roots).run();
            run.assert_code(1);
            run
        };
        let plain = check(&[]);
        assert!(plain.stdout.contains("stale      ./stale.py"), "{}", plain.stdout);
        for jobs in [&["-j", "1"][..], &["-j", "2"], &["--jobs", "0"], &["-j2"]] {
            let run = check(jobs);
            assert_eq!(run.stdout, plain.stdout, "{jobs:?} {roots:?}: {}", run.stderr);
        }
        let env = tree
            .hashpyc()
            .env("HASHPYC_JOBS", "1")
            .args(["check", "--all", "--stray"])
            .python(py)
            .args(roots)
            .run();
        assert_eq!(env.stdout, plain.stdout, "{}", env.stderr);
    }
    // The configuration's `jobs` applies to `check` (not "not used by `check`").
    tree.write("hashpyc.toml", "jobs = 1\n");
    let keyed = tree.hashpyc().args(["check", "-v", "--all"]).python(py).arg(".").run();
    keyed.assert_code(1);
    assert!(keyed.stderr.contains("setting: `jobs = 1` from `hashpyc.toml` line 1\n"), "{}", keyed.stderr);
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    // A bad value: the error `compile` gives, naming the flag (or the variable).
    for value in ["many", "1025", "-1"] {
        let first = |cmd: &str, env: bool| {
            let mut h = tree.hashpyc().arg(cmd);
            h = if env { h.env("HASHPYC_JOBS", value) } else { h.arg(format!("--jobs={value}")) };
            let run = h.python(py).arg(".").run();
            run.assert_code(2);
            run.stderr.lines().next().unwrap_or_default().to_string()
        };
        let flag = first("check", false);
        assert!(flag.starts_with(&format!("error: invalid value '{value}' for '--jobs <N>'")), "{flag}");
        assert_eq!(flag, first("compile", false));
        let var = first("check", true);
        assert!(var.starts_with(&format!("error: invalid value '{value}' for HASHPYC_JOBS")), "{var}");
        assert_eq!(var, first("compile", true));
    }
});
