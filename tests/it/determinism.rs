//! The bytes of a pyc are those of compiling its source alone in a pristine worker,
//! whatever `-j`, the order of compilation, or which files earlier runs compiled.

use std::path::{Path, PathBuf};

use crate::harness::{self, Python, Tree};
use crate::per_python;

const A: &[u8] = b"import foo\n";
const B: &[u8] = b"a = {\"foo\", 2, 3}\ndef f():\n    return {\"foo\", 2, 3}\n";

/// What a naive long-lived process does: compile a.py, then b.py, in one interpreter.
const NAIVE: &str = r#"
import marshal, sys
a, b = open("a.py", "rb").read(), open("b.py", "rb").read()
alone = marshal.dumps(compile(b, "b.py", "exec", dont_inherit=True))
marshal.dumps(compile(a, "a.py", "exec", dont_inherit=True))
after = marshal.dumps(compile(b, "b.py", "exec", dont_inherit=True))
print("same" if alone == after else "differs")
"#;

/// What [`NAIVE`] prints for `a` then `b`: `same` or `differs`.
fn naive(py: &Python, a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> String {
    let tree = Tree::new();
    tree.write("a.py", a);
    tree.write("b.py", b);
    py.run(&["-S", "-s", "-c", NAIVE], tree.root()).trim().to_string()
}

per_python!(minimal_reproducer, |py: &Python| {
    // a.py then b.py in one long-lived worker (-j1, smallest first)...
    let both = Tree::new();
    both.write("a.py", A);
    both.write("b.py", B);
    both.hashpyc()
        .env("HASHPYC_ORDER", "reverse")
        .args(["compile", "-q", "-j1"])
        .python(py)
        .args(["a.py", "b.py"])
        .run()
        .assert_code(0);
    // ...must give b.py the bytes it gets alone.
    let alone = Tree::new();
    alone.write("b.py", B);
    alone.hashpyc().args(["compile", "-q"]).python(py).arg("b.py").run().assert_code(0);
    let pyc = format!("__pycache__/b.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    assert_eq!(both.read(&pyc), alone.read(&pyc), "{}: b.py depends on a.py", py.label());

    // The reproducer is real on 3.12+: a naive process gives b.py other bytes.
    let naive = py.run(&["-S", "-s", "-c", NAIVE], both.root());
    if py.minor >= (3, 12) {
        assert_eq!(naive.trim(), "differs", "{}: the reproducer no longer reproduces", py.label());
    }
});

/// Build `lib`'s sources in a fresh copy, with extra arguments and environment; returns
/// the tree.
fn build(py: &Python, sources: &[PathBuf], lib: &Path, setup: &dyn Fn(&Tree) -> Vec<harness::Run>) -> Tree {
    let tree = Tree::new();
    for rel in sources {
        let dst = tree.path(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(lib.join(rel), &dst).unwrap();
    }
    for run in setup(&tree) {
        assert!(run.code == Some(0) || run.code == Some(1), "{}: {run:?}", py.label());
        assert!(!run.stderr.contains("internal error"), "{}", run.stderr);
    }
    tree
}

/// The stdlib's sources (no site-packages): every file with `HASHPYC_FULL_TESTS=1`, else
/// every third one, the third changing with the version (a third of the CI time; the whole
/// stdlib of every version passes too).
fn stdlib_sources(py: &Python) -> (PathBuf, Vec<PathBuf>) {
    let lib = harness::stdlib_dir(py);
    let all: Vec<PathBuf> = harness::files_with_suffix(&lib, ".py")
        .into_iter()
        .filter(|p| {
            !p.starts_with("site-packages")
                && !p.starts_with("dist-packages")
                && !p.components().any(|c| c.as_os_str() == "__pycache__")
                && std::fs::metadata(lib.join(p)).is_ok_and(|m| m.is_file())
        })
        .collect();
    assert!(all.len() > 500, "{}: only {} stdlib sources", py.label(), all.len());
    let sources =
        all.into_iter().enumerate().filter(|(i, _)| harness::in_sample(py, *i, 3)).map(|(_, p)| p).collect();
    (lib, sources)
}

per_python!(stdlib_in_any_order_job_count_and_history, |py: &Python| {
    let (lib, sources) = stdlib_sources(py);
    let compile = |t: &Tree, jobs: &str, order: Option<&str>, paths: Option<&[PathBuf]>| {
        let mut cmd = t.hashpyc().args(["compile", "-q", "-j", jobs]).python(py);
        if let Some(o) = order {
            cmd = cmd.env("HASHPYC_ORDER", o);
        }
        match paths {
            Some(list) => {
                let mut input = Vec::new();
                for p in list {
                    input.extend_from_slice(p.as_os_str().as_encoded_bytes());
                    input.push(0);
                }
                cmd.args(["--null", "-"]).stdin(input).run()
            }
            None => cmd.arg(".").run(),
        }
    };
    let dotted = |keep: usize| -> Vec<PathBuf> {
        sources
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == keep)
            .map(|(_, p)| Path::new(".").join(p))
            .collect()
    };
    let (first, second) = (dotted(0), dotted(1));

    // The reference: every file in a fresh fork of the pristine zygote.
    let reference = build(py, &sources, &lib, &|t| {
        vec![t.hashpyc().env("HASHPYC_ISOLATION", "fork").args(["compile", "-q"]).python(py).arg(".").run()]
    });
    // Three builds cover job counts 1-4, forward, reversed and shuffled orders, and
    // workers whose history is the other half of the tree (or none).
    let variants: Vec<(&str, Tree)> = vec![
        ("default", build(py, &sources, &lib, &|t| vec![compile(t, "2", None, None)])),
        (
            "-j1 reversed: odd files first, then all",
            build(py, &sources, &lib, &|t| {
                vec![compile(t, "1", Some("reverse"), Some(&second)), compile(t, "2", Some("reverse"), None)]
            }),
        ),
        (
            "-j4 shuffled: even files first, then all",
            build(py, &sources, &lib, &|t| {
                vec![
                    compile(t, "4", Some("shuffle:7"), Some(&first)),
                    compile(t, "3", Some("shuffle:3"), None),
                ]
            }),
        ),
    ];
    let n = reference.pycs().len();
    assert!(n * 100 > sources.len() * 95, "{}: {n} pycs for {} sources", py.label(), sources.len());
    for (name, tree) in &variants {
        let diff = harness::diff_pycs(reference.root(), tree.root());
        assert!(
            diff.is_empty(),
            "{}: {name} differs from fresh-fork compiles in {} of {n} files: {:?}",
            py.label(),
            diff.len(),
            &diff[..diff.len().min(20)]
        );
    }
    harness::visible(&format!(
        "determinism {}: {n} pycs identical across {} builds and the fresh-fork reference",
        py.label(),
        variants.len()
    ));
});

/// Compile each listed file alone in a fresh fork of a bare `python -I -S` (no site,
/// no py_compile imported); argv[1] says whether py_compile's top-level code object
/// carries marshal's FLAG_REF (the code object held in two names) or not.
const BARE: &str = r#"
import marshal, posix, sys
items = sys.stdin.buffer.read().split(b"\n")
for rec in items:
    if not rec:
        continue
    src, out = rec.split(b"\0")
    pid = posix.fork()
    if pid == 0:
        f = open(src, "rb"); data = f.read(); f.close()
        if sys.argv[1] == "1":
            code = compile(data, src.decode("utf-8", "surrogateescape"), "exec", dont_inherit=True)
            keep = [code]
            body = marshal.dumps(code)
        else:
            body = marshal.dumps(compile(data, src.decode("utf-8", "surrogateescape"), "exec", dont_inherit=True))
        f = open(out, "wb"); f.write(body); f.close()
        posix._exit(0)
    posix.waitpid(pid, 0)
"#;

per_python!(stdlib_matches_py_compile, min = (3, 11), |py: &Python| {
    let (lib, sources) = stdlib_sources(py);
    let tree =
        build(py, &sources, &lib, &|t| vec![t.hashpyc().args(["compile", "-q"]).python(py).arg(".").run()]);
    let dotted: Vec<PathBuf> = sources.iter().map(|p| Path::new(".").join(p)).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &dotted, None);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let mut compared = 0;
    let mut differing = Vec::new();
    for (src, reference) in dotted.iter().zip(&refs) {
        let Some(reference) = reference else { continue };
        let stem = src.file_stem().unwrap().to_string_lossy();
        let ours = tree.path(src.parent().unwrap().join("__pycache__").join(format!("{stem}.{tag}.pyc")));
        let ours = std::fs::read(&ours).unwrap_or_else(|_| panic!("no pyc for {}", src.display()));
        compared += 1;
        if ours != *reference {
            differing.push((src.clone(), ours));
        }
    }
    // Each difference must be explained: the same bytes come out of a bare interpreter,
    // so they are due to what the py_compile process itself imported.
    let out_dir = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    for (i, (src, _)) in differing.iter().enumerate() {
        input.extend_from_slice(src.as_os_str().as_encoded_bytes());
        input.push(0);
        input.extend_from_slice(out_dir.path().join(i.to_string()).as_os_str().as_encoded_bytes());
        input.push(b'\n');
    }
    let mut cmd = py.cmd();
    let flag_ref = refs.iter().flatten().next().is_some_and(|r| r[16] & 0x80 != 0);
    cmd.args(["-I", "-S", "-c", BARE, if flag_ref { "1" } else { "0" }]).current_dir(tree.root());
    crate::compile::run_with_stdin(cmd, &input);
    let mut unexplained = Vec::new();
    for (i, (src, ours)) in differing.iter().enumerate() {
        let bare = std::fs::read(out_dir.path().join(i.to_string())).unwrap();
        if bare != ours[16..] {
            unexplained.push(src.clone());
        }
    }
    // And each is a module the py_compile process had imported itself: compiling a module
    // that the compiling process has loaded changes its bytes (DESIGN.md, section 3).
    let loaded =
        py.run(&["-I", "-c", "import sys, py_compile; print(' '.join(sorted(sys.modules)))"], tree.root());
    let loaded: Vec<&str> = loaded.split_whitespace().collect();
    let module_of = |p: &Path| {
        let s = p.strip_prefix(".").unwrap_or(p).with_extension("");
        let s = s.to_string_lossy().replace('/', ".");
        s.strip_suffix(".__init__").map(str::to_string).unwrap_or(s)
    };
    let not_loaded: Vec<String> =
        differing.iter().map(|(p, _)| module_of(p)).filter(|m| !loaded.contains(&m.as_str())).collect();
    let list: Vec<String> = differing.iter().map(|(p, _)| p.display().to_string()).collect();
    harness::visible(&format!(
        "py_compile identity {}: {} of {compared} files equal py_compile's in a fresh `python -I`; the others are \
         modules that process imported itself, and equal a compile in a bare `python -I -S`: {list:?}",
        py.label(),
        compared - differing.len(),
    ));
    assert!(
        unexplained.is_empty(),
        "{}: unexplained differences from py_compile: {unexplained:?}",
        py.label()
    );
    assert!(
        not_loaded.is_empty(),
        "{}: differ from py_compile but were not imported by it: {not_loaded:?}",
        py.label()
    );
    assert!(differing.len() <= 5, "{}: more than a few files differ from py_compile: {list:?}", py.label());
});

/// The `HASHPYC_TRACE` counts of a run: (children ended after a compile that changed them,
/// fresh forks predicted from the source, suspects recompiled after a warm compile).
fn trace_counts(stderr: &str) -> (u64, u64, u64) {
    (
        harness::trace_number(stderr, "ended after a compile that changed them"),
        harness::trace_number(stderr, "predicted from the source"),
        harness::trace_number(stderr, "suspects recompiled"),
    )
}

/// Compile `files` in a new tree with one worker, smallest file first, `HASHPYC_TRACE` and
/// `env` set: the tree and the trace.
fn traced_build(py: &Python, files: &[(&str, &[u8])], env: &[(&str, &str)]) -> (Tree, String) {
    let tree = Tree::new();
    for (name, body) in files {
        tree.write(name, body);
    }
    let mut cmd = tree.hashpyc().env("HASHPYC_TRACE", "1").env("HASHPYC_ORDER", "reverse");
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let run = cmd.args(["compile", "-q", "-j1"]).python(py).arg(".").run();
    run.assert_code(0);
    (tree, run.stderr)
}

// A long-lived child that certified one file's frozensets compiles the next file as a
// pristine worker would. Certification used to read the marshal data back, and
// marshal.loads interns (3.13+: immortalizes) every string the data mark interned: a
// qualname like `with_tp_del.<locals>.C`, which a pristine compile interns, then came
// out of the next file holding it not interned (type `z` instead of `Z`, and no back
// reference). Found on CPython 3.13's stdlib: test_gc.py, then test_finalization.py.
per_python!(certifying_leaves_no_trace_in_the_child, min = (3, 12), |py: &Python| {
    const A: &[u8] = b"def with_tp_del(cls):\n    class C(object):\n        pass\n    return C\n\n\
                       def f(x):\n    return x in {\"spam\", \"eggs\"}\n";
    // Padded to be the larger file: traced_build compiles the smaller a.py first.
    const B: &[u8] = b"def with_tp_del(cls):\n    class C(object):\n        pass\n    return C\n\
                       # padding, so that this file is compiled second........................\n";
    let (both, trace) = traced_build(py, &[("a.py", A), ("b.py", B)], &[]);
    let (alone, _) = traced_build(py, &[("b.py", B)], &[("HASHPYC_ISOLATION", "fork")]);
    let pyc = format!("__pycache__/b.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    assert_eq!(both.read(&pyc), alone.read(&pyc), "{}: b.py depends on a.py's certification", py.label());
    // The case only exists where a.py is certified in the child, as it is on every 3.12+.
    assert!(
        trace.contains("certified in long-lived children for 1 of 1 files tried"),
        "{}: a.py was not certified in the long-lived child: {trace}",
        py.label()
    );
});

per_python!(predicted_files_skip_the_warm_compile, min = (3, 11), |py: &Python| {
    // Files whose compile would taint a long-lived child (`\N{…}` and a non-ASCII name
    // import unicodedata) or
    // whose bytes depend on history (a set of strings folded into a frozenset on 3.12+)
    // go straight to a fresh fork; their bytes are those of the fresh-fork reference.
    // The sets of b.py and c.py cannot be certified (2 and 'foo', 'qux' and 'foo' share
    // a home slot of an 8-slot table under PYTHONHASHSEED=0; see
    // `certified_frozensets_stay_warm`), so they are predicted.
    let files: &[(&str, &[u8])] = &[
        ("a.py", A),
        ("b.py", B),
        ("c.py", b"if x in {'foo', 'qux'}:\n    pass\n"),
        ("d.py", b"s = '\\N{BULLET} foo'\n"),
        ("e.py", b"def foo(spam):\n    return spam\n"),
        ("f.py", b"t = ('foo', 'spam')\n"),
        ("g.py", "se\u{f1}al = 1\n".as_bytes()),
    ];
    let (reference, _) = traced_build(py, files, &[("HASHPYC_ISOLATION", "fork")]);
    let (tree, stderr) = traced_build(py, files, &[]);
    let diff = harness::diff_pycs(reference.root(), tree.root());
    assert!(diff.is_empty(), "{}: differs from fresh-fork compiles: {diff:?}", py.label());
    let (ended, predicted, suspects) = trace_counts(&stderr);
    let expected = if py.minor >= (3, 12) { 4 } else { 2 };
    assert_eq!(predicted, expected, "{}: files predicted: {stderr}", py.label());
    assert_eq!((ended, suspects), (0, 0), "{}: no child ended, no warm compile redone: {stderr}", py.label());
});

per_python!(certified_frozensets_stay_warm, min = (3, 12), |py: &Python| {
    // Sets of strings whose elements take distinct slots of their table, each set once in
    // its module, cannot change with history: a long-lived child certifies them and no
    // fork is needed, even after a compile that interned every one of their strings.
    // (Home slots in CPython with PYTHONHASHSEED=0: 'foo' 2, 'spam' 0 of 8; 'a'..'e' 0,
    // 14, 18, 19, 25 of 32; 'ham' 6, 'eggs' 2, 1 1 of 8.) s.py's set also takes distinct
    // slots, so it is tried warm, but two code objects share it: no certificate, and it
    // is compiled again in a fresh fork.
    let files: &[(&str, &[u8])] = &[
        ("a.py", b"import foo, spam, ham, eggs\nfoo.spam = eggs\n"),
        ("c.py", b"def f(x):\n    return x in {'foo', 'spam'}\n"),
        ("s.py", b"a = {'foo', 1, 3}\ndef f():\n    return {'foo', 1, 3}\n"),
        ("d.py", b"def g(y):\n    for k in {'a', 'b', 'c', 'd', 'e'}:\n        y(k)\n    return y in {'ham', 'eggs', 1}\n"),
    ];
    assert_certified(py, files, (0, 0, 1), "2 of 3");
});

/// Compiled warm after each other, `files` give the fresh-fork reference's bytes, with these
/// trace counts (see `trace_counts`) and "frozensets certified ... for `certified` files
/// tried"; and `HASHPYC_VERIFY` (every long-lived result, certified ones included, against a
/// fresh fork) finds nothing.
fn assert_certified(py: &Python, files: &[(&str, &[u8])], counts: (u64, u64, u64), certified: &str) {
    let (_, stderr, _) = deferred_build(py, files);
    assert_eq!(trace_counts(&stderr), counts, "{}: {stderr}", py.label());
    let line = format!("frozensets certified in long-lived children for {certified} files tried");
    assert!(stderr.contains(&line), "{}: {stderr}", py.label());
    assert_verified(py, files);
}

per_python!(latin1_characters_keep_the_worker_on_3_13, min = (3, 13), |py: &Python| {
    // On 3.13+ a one-character latin-1 string is a static singleton, interned from
    // start-up, so marshal writes it as interned (`t`; before 3.13 it is a plain `u`):
    // compiling one changes nothing a later compile sees, and the long-lived child goes on.
    let a = "s = 'é'\nt = ['ÿ', 'µ', 'é']\n";
    let b = "t = 'é'\ndef f(x):\n    return x in ('ÿ', 'µ')\n";
    // CPython itself: not even a frozenset of those strings (whose bytes do depend on
    // earlier interning, see `minimal_reproducer`) changes.
    let naive = naive(py, a, format!("s = {{'é', 'ÿ', 1}}\n{b}"));
    assert_eq!(naive, "same", "{}: a latin-1 character changed a later compile", py.label());
    let tree = Tree::new();
    tree.write("a.py", a);
    tree.write("b.py", b);
    let run = tree
        .hashpyc()
        .env("HASHPYC_TRACE", "1")
        .env("HASHPYC_ORDER", "reverse")
        .args(["compile", "-q", "-j1"])
        .python(py)
        .args(["a.py", "b.py"])
        .run();
    run.assert_code(0);
    let (ended, _, _) = trace_counts(&run.stderr);
    let reference = Tree::new();
    reference.write("a.py", a);
    reference.write("b.py", b);
    reference
        .hashpyc()
        .env("HASHPYC_ISOLATION", "fork")
        .args(["compile", "-q"])
        .python(py)
        .args(["a.py", "b.py"])
        .run()
        .assert_code(0);
    let diff = harness::diff_pycs(reference.root(), tree.root());
    assert!(diff.is_empty(), "{}: differs from fresh-fork compiles: {diff:?}", py.label());
    assert_eq!(ended, 0, "{}: the child was replaced: {}", py.label(), run.stderr);
});

/// `body`, then a comment line making the file `size` bytes long (files are compiled
/// smallest first in `traced_build`).
fn padded(body: &str, size: usize) -> String {
    format!("{body}{}\n", "#".repeat(size.saturating_sub(body.len())))
}

/// `files` compiled as [`traced_build`] does: the bytes must be the fresh-fork reference's,
/// which is returned with the trace and its counts of deferred files in long-lived
/// children of their own, of files certified by probing and of long-lived children.
fn deferred_build(py: &Python, files: &[(&str, &[u8])]) -> (Tree, String, (u64, u64, u64)) {
    let (reference, _) = traced_build(py, files, &[("HASHPYC_ISOLATION", "fork")]);
    let (tree, stderr) = traced_build(py, files, &[]);
    let diff = harness::diff_pycs(reference.root(), tree.root());
    assert!(diff.is_empty(), "{}: differs from fresh-fork compiles: {diff:?}", py.label());
    let batched = harness::trace_number(&stderr, "deferred files in long-lived children of their own");
    let probed = harness::trace_number(&stderr, "certified by probing");
    let children = harness::trace_number(&stderr, "long-lived children (");
    (reference, stderr, (batched, probed, children))
}

/// `files` under `HASHPYC_VERIFY` (every long-lived result against a fresh fork): nothing
/// found.
fn assert_verified(py: &Python, files: &[(&str, &[u8])]) {
    let (_, stderr) = traced_build(py, files, &[("HASHPYC_VERIFY", "1")]);
    assert!(!stderr.contains("internal error"), "{}: {stderr}", py.label());
}

per_python!(deferred_files_share_children_of_their_own, min = (3, 12), |py: &Python| {
    // Files whose frozensets no long-lived child can certify are deferred; on 3.13+ they
    // are then compiled in long-lived children of their own, each file first in a child
    // (pristine) or certified there by probing which of its set strings are interned
    // (see `worker.py`, `_ambiguous`). Smallest first, with -j1 (home slots under
    // PYTHONHASHSEED=0: 'foo', 'qux' and 2 slot 2 of 8, 'k0' and 'k5' slot 6):
    // - x.py opens a child; y.py and v.py follow it there, certified (the strings x.py's
    //   constants interned died with them);
    // - v.py interns `_C__x` for good (the mangled name of `C.__x`), a word that is
    //   nowhere in its source, so nothing predicts that w.py, whose shared set holds it,
    //   cannot follow: the child's probe finds the string and w.py opens a new child;
    // - p.py follows w.py; q.py's set strings are names in p.py (and p.py's in q.py, so no
    //   order of the two avoids it, see `deferred_files_are_ordered_to_share_children`):
    //   q.py opens a third child straight away, with no probe.
    // Compiled after v.py (p.py) in one process, w.py (q.py) would get other bytes: the
    // naive check below shows it. The bytes are the fresh-fork reference's, and
    // HASHPYC_VERIFY finds nothing. 3.12 keeps fresh forks (interning is immortal there,
    // so probing would change what it probes).
    let files = [
        ("a.py", "import os\n".to_string()),
        ("x.py", padded("if y in {'foo', 'qux'}:\n    pass\n", 60)),
        ("y.py", padded("def g(x):\n    return x in {'qux', 'foo', 2}\n", 80)),
        (
            "v.py",
            padded("class C:\n    def __x(self):\n        pass\nif y in {'foo', 'qux'}:\n    pass\n", 100),
        ),
        ("w.py", padded("a = {'_C__x', 'qux', 2}\ndef f():\n    return {'_C__x', 'qux', 2}\n", 120)),
        ("p.py", padded("import foo, qux\nif y in {'k0', 'k5'}:\n    pass\n", 140)),
        (
            "q.py",
            padded("import k0, k5\na = {'foo', 'qux', 2}\ndef f():\n    return {'foo', 'qux', 2}\n", 160),
        ),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_bytes())).collect();
    let (reference, stderr, (batched, probed, children)) = deferred_build(py, &files);
    let (_, predicted, suspects) = trace_counts(&stderr);
    assert_eq!(predicted, 6, "{}: {stderr}", py.label());
    if py.minor >= (3, 13) {
        assert_eq!((batched, probed, suspects, children), (6, 3, 1, 4), "{}: {stderr}", py.label());
        assert_eq!(harness::trace_number(&stderr, "fresh forks"), 0, "{}: {stderr}", py.label());
    } else {
        assert_eq!((batched, probed, suspects), (0, 0, 0), "{}: {stderr}", py.label());
        assert_eq!(harness::trace_number(&stderr, "fresh forks"), 6, "{}: {stderr}", py.label());
    }
    assert_verified(py, &files);
    // HASHPYC_DEFERRED=fork: the deferred files in fresh forks, as on 3.12.
    let (forked, stderr) = traced_build(py, &files, &[("HASHPYC_DEFERRED", "fork")]);
    assert_eq!(harness::trace_number(&stderr, "fresh forks"), 6, "{}: {stderr}", py.label());
    assert!(harness::diff_pycs(reference.root(), forked.root()).is_empty(), "{}", py.label());
    // What the children had to avoid: w.py after v.py, q.py after p.py in one process.
    for (first, second) in [(3, 4), (5, 6)] {
        let out = naive(py, files[first].1, files[second].1);
        assert_eq!(out, "differs", "{}: {} after {}", py.label(), files[second].0, files[first].0);
    }
});

per_python!(deferred_files_are_ordered_to_share_children, min = (3, 13), |py: &Python| {
    // Which deferred file a batch child takes next decides how many children there are,
    // never a byte. Smallest first, with -j1 ('foo' and 'qux', 'k0' and 'k5' share a home
    // slot under PYTHONHASHSEED=0; k.py and q.py share one set between two code objects):
    // - x.py opens the child. k.py's set strings are keywords, which x.py uses: the parser
    //   interns no keyword, so they are no conflict, and k.py is certified there by probing;
    // - p.py's names are q.py's set strings, not the other way round: q.py goes before p.py
    //   and both follow in the same child, where q.py after p.py would need a new one.
    // One child for the four deferred files (and one for a.py), three certified by probing;
    // the bytes are the fresh-fork reference's, and in one process q.py after p.py would
    // get other bytes (the naive check).
    let files = [
        ("a.py", "import os\n".to_string()),
        ("x.py", padded("if y and z or w in {'foo', 'qux'}:\n    pass\n", 60)),
        ("k.py", padded("a = {'and', 'or', 2}\ndef f():\n    return {'and', 'or', 2}\n", 80)),
        ("p.py", padded("import foo, qux\nif y in {'k0', 'k5'}:\n    pass\n", 100)),
        ("q.py", padded("a = {'foo', 'qux', 2}\ndef f():\n    return {'foo', 'qux', 2}\n", 120)),
    ];
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_bytes())).collect();
    let (_, stderr, counts) = deferred_build(py, &files);
    assert_eq!(counts, (4, 3, 2), "{}: {stderr}", py.label());
    assert_verified(py, &files);
    assert_eq!(naive(py, files[3].1, files[4].1), "differs", "{}: q.py after p.py", py.label());
});

per_python!(colliding_sets_of_the_files_own_names_stay_warm, min = (3, 12), |py: &Python| {
    // A set whose name-like strings are all names of its module cannot change with
    // history, colliding or shared: the parser interns every identifier before any code
    // is generated, in every process, so intern_constants rebuilds the set alike
    // everywhere. ('foo', 'qux' and 2 share slot 2 of 8 under PYTHONHASHSEED=0; '-' and
    // '%' slot 6, strings intern_constants never interns.) n.py and o.py are certified in
    // the long-lived child after a.py interned every name; p.py, whose 'qux' is no name of
    // its own, goes to a fresh fork.
    let files: &[(&str, &[u8])] = &[
        ("a.py", b"import foo, qux\n"),
        (
            "n.py",
            b"def foo():\n    pass\ndef qux():\n    pass\na = {'foo', 'qux', 2}\ndef f():\n    return {'foo', 'qux', 2}\n",
        ),
        ("o.py", b"def f(x):\n    return x in {'-', '%'}\ndef g(x):\n    return x in {'-', '%', 'foo qux'}\n"),
        ("p.py", b"def foo():\n    pass\na = {'foo', 'qux', 2}\ndef f():\n    return {'foo', 'qux', 2}\n"),
    ];
    assert_certified(py, files, (0, 1, 0), "2 of 2");
    // The names are what keep n.py's bytes still: without its functions foo and qux, its
    // shared set splits when compiled after a.py in one process.
    let shared = b"a = {'foo', 'qux', 2}\ndef f():\n    return {'foo', 'qux', 2}\n";
    assert_eq!(naive(py, files[0].1, shared), "differs", "{}", py.label());
});

/// A set display of non-name strings shared by two functions: on 3.12 a level compiled
/// after the file's level 0 in the same process rebuilds the frozenset, one copy per
/// function (cpython#129724), where that level alone shares one.
const LEVELS: &[u8] = b"def f(x): \"zzwwa zzwwb\"; assert x, \"zzwwa\"; return x in {\"zzwwa\",\"zzwwb\",\"zzwwc\",\"zzwwd\"}\n\
                        def g(x): return x in {\"zzwwa\",\"zzwwb\",\"zzwwc\",\"zzwwd\"}\n";

/// What `py_compile.compile(src, optimize=level, invalidation_mode=CHECKED_HASH)` writes
/// in a fresh `python -I`, for each of `sources` (relative to `cwd`).
fn py_compile_level(py: &Python, cwd: &Path, sources: &[PathBuf], level: u8) -> Vec<Option<Vec<u8>>> {
    let out = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        input.extend_from_slice(s.as_os_str().as_encoded_bytes());
        input.push(0);
        input.extend_from_slice(out.path().join(i.to_string()).as_os_str().as_encoded_bytes());
        input.extend_from_slice(b"\0\n");
    }
    let mut cmd = py.cmd();
    cmd.args(["-I", "-c", harness::PY_COMPILE_REF, &level.to_string()]).current_dir(cwd);
    crate::compile::run_with_stdin(cmd, &input);
    (0..sources.len()).map(|i| std::fs::read(out.path().join(i.to_string())).ok()).collect()
}

// Every level's bytes are those of that level compiled alone in a pristine worker,
// whatever other levels the run asks for or finds fresh. A worker used to compile a
// file's levels one after another in one process (the fresh fork too): on 3.12 level 0
// interned the set's strings for good, so `-o 0 -o 1` wrote another opt-1 pyc than
// `-o 1` (380 bytes against 360 for `LEVELS`).
per_python!(each_level_as_if_compiled_alone, |py: &Python| {
    let (lib, stdlib) = stdlib_sources(py);
    let sample: Vec<PathBuf> =
        stdlib.into_iter().enumerate().filter(|(i, _)| i % 12 == 0).map(|(_, p)| p).collect();
    let tree_with = |runs: &[&[&str]], env: &[(&str, &str)]| {
        build(py, &sample, &lib, &|t| {
            t.write("lv/m.py", LEVELS);
            runs.iter()
                .map(|levels| {
                    let mut cmd = t.hashpyc().args(["compile", "-q", "--no-cache"]).python(py);
                    for (k, v) in env {
                        cmd = cmd.env(k, v);
                    }
                    for l in *levels {
                        cmd = cmd.args(["-o", l]);
                    }
                    cmd.arg(".").run()
                })
                .collect()
        })
    };
    let histories = [
        ("`-o 1`, then `-o 0 -o 1`", tree_with(&[&["1"], &["0", "1"]], &[])),
        ("`-o 0 -o 1` at once", tree_with(&[&["0", "1"]], &[])),
        (
            "`-o 2 -o 1 -o 0`, reverse file order",
            tree_with(&[&["2", "1", "0"]], &[("HASHPYC_ORDER", "reverse")]),
        ),
    ];
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let mut files: Vec<PathBuf> = sample.iter().map(|p| Path::new(".").join(p)).collect();
    files.push(PathBuf::from("./lv/m.py"));
    for level in 0..=2u8 {
        // The reference: that level alone, every file in a fresh fork.
        let alone = tree_with(&[&[&level.to_string()]], &[("HASHPYC_ISOLATION", "fork")]);
        let suffix = if level == 0 { String::new() } else { format!(".opt-{level}") };
        let mut compared = 0;
        for src in &files {
            let stem = src.file_stem().unwrap().to_string_lossy();
            let pyc = src.parent().unwrap().join("__pycache__").join(format!("{stem}.{tag}{suffix}.pyc"));
            let Ok(reference) = std::fs::read(alone.path(&pyc)) else { continue };
            compared += 1;
            for (name, tree) in &histories {
                if level == 2 && !name.contains("-o 2") {
                    continue;
                }
                let ours = std::fs::read(tree.path(&pyc))
                    .unwrap_or_else(|e| panic!("{name}: {}: {e}", pyc.display()));
                assert!(
                    ours == reference,
                    "{}: {name}: {} differs from level {level} compiled alone ({} against {} bytes)",
                    py.label(),
                    pyc.display(),
                    ours.len(),
                    reference.len()
                );
            }
        }
        assert!(compared > 10, "{}: only {compared} files compared at level {level}", py.label());
        // And alone is py_compile's with optimize=level (3.11+; see the Determinism section
        // for before): checked on the file whose levels differ on 3.12.
        if py.minor >= (3, 11) {
            let pyc = format!("lv/__pycache__/m.{tag}{suffix}.pyc");
            let refs = py_compile_level(py, alone.root(), &[PathBuf::from("./lv/m.py")], level);
            let reference = refs[0].as_ref().expect("py_compile compiled lv/m.py");
            assert!(alone.read(&pyc) == *reference, "{}: {pyc} differs from py_compile's", py.label());
        }
    }
});
