//! `hashpyc compile` against real interpreters: byte identity with py_compile, pycs that
//! CPython loads without rewriting, the seed incident, the no-op property, `-j`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::harness::{self, Python, Tree};
use crate::per_python;

/// Sources that exercise the tokenizer's corners.
pub fn fixture(tree: &Tree) {
    tree.write("bom.py", b"\xef\xbb\xbfx = 'bom'\n");
    tree.write("crlf.py", b"x = 1\r\ndef f():\r\n    return {'a', 'b'}\r\n");
    tree.write("cr.py", b"x = 1\ry = 2\r");
    tree.write("latin1.py", b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n");
    tree.write("nofinal.py", b"x = 1");
    tree.write("empty.py", b"");
    tree.write("données.py", "s = 'é'\n".as_bytes());
    tree.write("pkg/__init__.py", b"\"\"\"Package docstring.\"\"\"\n");
    tree.write("pkg/sub/__init__.py", b"");
    tree.write(
        "pkg/sub/mod.py",
        b"import os\nSET = frozenset({'os', 'path', 'x'})\n\nclass C:\n    \"\"\"Doc.\"\"\"\n    def m(self, a, *, b=2):\n        assert a\n        return {'os', 'sep'} | {a, b}\n\nasync def g():\n    return [i async for i in h()]\n",
    );
    tree.write("warns.py", b"x = 1\nassert (x, 'always true')\n");
}

const VERIFY: &str = r#"
import sys, marshal, importlib.util
exact = sys.argv[1] == "1"
for line in sys.stdin.read().splitlines():
    ours, ref, src = line.split("\t")
    a = open(ours, "rb").read(); b = open(ref, "rb").read(); s = open(src, "rb").read()
    ok_header = a[:4] == importlib.util.MAGIC_NUMBER and a[4:8] == b"\x03\0\0\0" and a[8:16] == importlib.util.source_hash(s)
    if not ok_header:
        print("BADHEADER " + src)
    elif a == b:
        print("same " + src)
    elif not exact and marshal.loads(a[16:]) == marshal.loads(b[16:]):
        print("equal-code " + src)
    else:
        print("DIFF " + src)
"#;

fn pyc_of(tree: &Tree, py: &Python, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    let stem = p.file_stem().unwrap().to_string_lossy();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    tree.path(p.parent().unwrap().join("__pycache__").join(format!("{stem}.{tag}.pyc")))
}

const FIXTURE_SOURCES: &[&str] = &[
    "./bom.py",
    "./crlf.py",
    "./cr.py",
    "./latin1.py",
    "./nofinal.py",
    "./empty.py",
    "./données.py",
    "./pkg/__init__.py",
    "./pkg/sub/__init__.py",
    "./pkg/sub/mod.py",
    "./warns.py",
];

per_python!(byte_identity_with_py_compile, |py: &Python| {
    let tree = Tree::new();
    fixture(&tree);
    tree.write("bad.py", b"def f(:\n    pass\n");
    let run = tree.hashpyc().arg("compile").python(py).arg(".").run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("./bad.py:1:") && run.stderr.contains("SyntaxError"),
        "syntax error reported with location:\n{}",
        run.stderr
    );
    assert!(run.stderr.contains("def f(:"), "offending line shown:\n{}", run.stderr);
    assert!(run.stderr.contains("./warns.py:2: SyntaxWarning"), "warning shown:\n{}", run.stderr);
    assert!(!pyc_of(&tree, py, "bad.py").exists(), "no pyc for a file that does not compile");

    let sources: Vec<PathBuf> = FIXTURE_SOURCES.iter().map(PathBuf::from).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, None);
    let ref_dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for (i, src) in FIXTURE_SOURCES.iter().enumerate() {
        let ours = pyc_of(&tree, py, src);
        assert!(ours.exists(), "{src}: no pyc at {}", ours.display());
        let ref_path = ref_dir.path().join(format!("{i}.pyc"));
        std::fs::write(&ref_path, refs[i].as_ref().expect("py_compile compiled it")).unwrap();
        lines.push_str(&format!(
            "{}\t{}\t{}\n",
            ours.display(),
            ref_path.display(),
            tree.path(src).display()
        ));
    }
    let exact = py.minor >= (3, 11);
    let mut cmd = py.cmd();
    cmd.args(["-I", "-c", VERIFY, if exact { "1" } else { "0" }]).current_dir(tree.root());
    let out = run_with_stdin(cmd, lines.as_bytes());
    let bad: Vec<&str> =
        out.lines().filter(|l| l.starts_with("DIFF") || l.starts_with("BADHEADER")).collect();
    assert_eq!(out.lines().count(), FIXTURE_SOURCES.len(), "{out}");
    assert!(bad.is_empty(), "{}: differs from py_compile: {bad:?}", py.label());
});

pub fn run_with_stdin(mut cmd: std::process::Command, input: &[u8]) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut sin = child.stdin.take().unwrap();
    let data = input.to_vec();
    std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Import every module of the fixture and report, per pyc, whether CPython used it.
const IMPORT_ALL: &str = r#"
import importlib, sys
sys.path.insert(0, ".")
for name in sys.argv[1:]:
    importlib.import_module(name)
"#;

per_python!(cpython_loads_pycs_without_rewriting, |py: &Python| {
    let tree = Tree::new();
    fixture(&tree);
    tree.hashpyc().arg("compile").python(py).arg(".").run().assert_code(0);
    let before: Vec<(PathBuf, u64, i64, i64)> = tree
        .pycs()
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(tree.path(&p)).unwrap();
            (p, m.ino(), m.mtime(), m.mtime_nsec())
        })
        .collect();
    assert_eq!(before.len(), FIXTURE_SOURCES.len());
    let modules = [
        "bom",
        "crlf",
        "cr",
        "latin1",
        "nofinal",
        "empty",
        "données",
        "pkg",
        "pkg.sub",
        "pkg.sub.mod",
        "warns",
    ];
    // -v prints "code object from '<pyc>'" for each pyc that was used as is; with the
    // writes allowed (PYTHONDONTWRITEBYTECODE unset), any rejected pyc would be rewritten.
    let out = py
        .cmd()
        .args(["-v", "-W", "ignore", "-c", IMPORT_ALL])
        .args(modules)
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    for (p, ino, mtime, nsec) in &before {
        let m = std::fs::metadata(tree.path(p)).unwrap();
        assert_eq!(
            (m.ino(), m.mtime(), m.mtime_nsec()),
            (*ino, *mtime, *nsec),
            "{} was rewritten by CPython",
            p.display()
        );
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            log.lines().any(|l| l.contains("code object from") && l.contains(&name)),
            "{}: CPython did not load {name}:\n{log}",
            py.label()
        );
        assert_eq!(&tree.read(p)[4..8], b"\x03\0\0\0");
    }
});

per_python!(seed_incident_every_value_in_order, |py: &Python| {
    let tree = Tree::new();
    let read_rule = || {
        py.cmd()
            .args(["-c", "import rule; print(rule.threshold)"])
            .current_dir(tree.root())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap()
    };
    // Same size every time (two digits), many writes within each second.
    let mut seen = Vec::new();
    for i in 10..30 {
        tree.write("rule.py", format!("threshold = {i}\n"));
        tree.hashpyc().args(["compile", "-q"]).python(py).arg("rule.py").run().assert_code(0);
        seen.push(read_rule());
    }
    let want: Vec<String> = (10..30).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "hashpyc compile between writes");
    let pyc = harness::files_with_suffix(tree.root(), ".pyc");
    assert_eq!(pyc.len(), 1);
    // Now CPython alone: it must keep the pyc checked-hash and never serve stale code.
    let mut seen = Vec::new();
    for i in 30..50 {
        tree.write("rule.py", format!("threshold = {i}\n"));
        seen.push(read_rule());
        assert_eq!(&tree.read(&pyc[0])[4..8], b"\x03\0\0\0", "CPython kept the pyc checked-hash");
    }
    let want: Vec<String> = (30..50).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "CPython's own import after hashpyc");
});

per_python!(noop_run_starts_no_python, |py: &Python| {
    let tree = Tree::new();
    fixture(&tree);
    let (wrapper, starts) = tree.counting_python(py);
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", cache.path())
            .args(["compile", "--python"])
            .arg(&wrapper)
            .args(args)
            .arg("pkg")
            .arg("bom.py")
            .run()
    };
    run(&[]).assert_code(0);
    let first = starts();
    assert!(first >= 2, "the first run probes and starts workers ({first} starts)");
    let second = run(&[]);
    second.assert_code(0);
    assert_eq!(starts(), first, "a no-op run started Python:\n{}", second.stderr);
    let want = format!("Compiled 0 files for CPython {} (4 already fresh)", py.version);
    assert!(second.stderr.contains(&want), "{}", second.stderr);
    // Touching a source without changing it is still a no-op; changing it is not.
    let src = tree.path("pkg/sub/mod.py");
    let bytes = std::fs::read(&src).unwrap();
    std::fs::write(&src, &bytes).unwrap();
    run(&[]).assert_code(0);
    assert_eq!(starts(), first, "rewriting identical bytes is a no-op");
    std::fs::write(&src, [bytes.as_slice(), b"\nz = 3\n"].concat()).unwrap();
    let third = run(&[]);
    third.assert_code(0);
    let want = format!("Compiled 1 file for CPython {} (3 already fresh)", py.version);
    assert!(third.stderr.contains(&want), "{}", third.stderr);
    assert!(starts() > first);
});

per_python!(jobs_do_not_change_bytes, |py: &Python| {
    let lib = harness::stdlib_dir(py);
    let a = Tree::new();
    let b = Tree::new();
    for t in [&a, &b] {
        for pkg in ["email", "json", "collections", "importlib", "asyncio", "unittest", "xml"] {
            harness::copy_py_tree(&lib.join(pkg), &t.path(pkg), &|_| false);
        }
    }
    a.hashpyc().args(["compile", "-q", "-j1"]).python(py).arg(".").run().assert_code(0);
    b.hashpyc().args(["compile", "-q", "-j4"]).python(py).arg(".").run().assert_code(0);
    assert!(a.pycs().len() > 100, "{} pycs", a.pycs().len());
    assert_eq!(harness::diff_pycs(a.root(), b.root()), Vec::<PathBuf>::new(), "{}", py.label());
});

per_python!(remembered_failures_start_no_python, |py: &Python| {
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("bad.py", "def f(:\n    pass\n");
    let (wrapper, starts) = tree.counting_python(py);
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", cache.path())
            .args(["compile", "--python"])
            .arg(&wrapper)
            .args(args)
            .args(["good.py", "bad.py"])
            .run()
    };
    let first = run(&[]);
    first.assert_code(1);
    let error =
        first.stderr.lines().find(|l| l.starts_with("bad.py:1:")).expect("error reported").to_string();
    let n = starts();
    let second = run(&[]);
    second.assert_code(1);
    assert!(second.stderr.contains(&error), "the same error again:\n{}", second.stderr);
    assert_eq!(starts(), n, "a remembered failure starts no Python");
    // --force, other levels, or a changed source compile again.
    run(&["--force"]).assert_code(1);
    assert!(starts() > n);
    let n = starts();
    run(&["-o", "1"]).assert_code(1);
    assert!(starts() > n);
    tree.write("bad.py", "def f():\n    pass\n");
    let fixed = run(&[]);
    fixed.assert_code(0);
    let want = format!("Compiled 1 file for CPython {} (1 already fresh)", py.version);
    assert!(fixed.stderr.contains(&want), "{}", fixed.stderr);
});

// `--python venv/bin/python` and a relative PATH entry: interpreter paths relative to the
// working directory work (workers run elsewhere, so they must not be resolved there), and
// give the same bytes as the absolute path.
per_python!(relative_interpreter_paths, |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/mod.py", "x = 1\n");
    std::fs::create_dir_all(tree.path("venv/bin")).unwrap();
    std::os::unix::fs::symlink(&py.path, tree.path("venv/bin/python")).unwrap();
    let by_path = tree.hashpyc().args(["compile", "--python", "venv/bin/python", "pkg"]).run();
    by_path.assert_code(0);
    assert!(by_path.stderr.contains("Compiled 1 file"), "{}", by_path.stderr);
    let pyc = tree.pycs().pop().expect("a pyc");
    let relative = tree.read(&pyc);
    tree.hashpyc().args(["check", "--python", "venv/bin/python", "pkg"]).run().assert_code(0);
    let path = format!("venv/bin:{}", std::env::var("PATH").unwrap_or_default());
    tree.hashpyc()
        .env("PATH", path)
        .args(["compile", "--force", "--python", "python", "pkg"])
        .run()
        .assert_code(0);
    assert_eq!(tree.read(&pyc), relative);
    tree.hashpyc().args(["compile", "--force"]).python(py).arg("pkg").run().assert_code(0);
    assert_eq!(tree.read(&pyc), relative, "the absolute path gives the same bytes");
});

// A launcher that picks the interpreter by directory, as pyenv's shims do with
// `.python-version` (asdf and mise likewise): the workers must start the interpreter the
// probe saw, so they run in the caller's directory too.
per_python!(directory_chosen_interpreter, |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/mod.py", "x = 1\n");
    tree.write(".python-version", py.path.to_str().expect("UTF-8 interpreter path"));
    let shim = tree.write_executable(
        "bin/python3",
        "#!/bin/sh\nif [ -f .python-version ]; then exec \"$(cat .python-version)\" \"$@\"; fi\n\
         echo 'no .python-version in this directory' >&2\nexit 127\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let run = tree
        .hashpyc()
        .env("HASHPYC_STATE_DIR", cache.path())
        .args(["compile", "--python"])
        .arg(&shim)
        .arg("pkg")
        .run();
    run.assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    assert!(tree.path(format!("pkg/__pycache__/mod.{tag}.pyc")).is_file(), "{}", run.stderr);
    tree.hashpyc()
        .env("HASHPYC_STATE_DIR", cache.path())
        .args(["check", "--python"])
        .arg(&shim)
        .arg("pkg")
        .run()
        .assert_code(0);
});
