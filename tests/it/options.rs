//! Every compileall option has an equivalent with the same effect on the bytes written:
//! each test runs `python -m compileall --invalidation-mode checked-hash` and hashpyc
//! with equivalent flags on the same tree, one after the other, and compares every output
//! file byte for byte (and hard links by inode). compileall compiles every file in one
//! long-lived process, hashpyc each in a pristine worker (README, Determinism): from 3.11
//! the fixture holds a name compileall's process references before it compiles (`empty`),
//! which before 3.11 gets marshal's FLAG_REF there (its reference count) and not in a
//! pristine worker, so on 3.9 and 3.10 the fixture leaves it out. Otherwise it avoids the
//! constructs whose bytes depend on any process's history (frozenset constants, modules
//! compileall imports itself), so compileall's output is the fresh-process reference.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::compile::pyc_of;
use crate::harness::{self, Python, Tree};
use crate::per_python;

fn fixture(tree: &Tree, py: &Python) {
    tree.write("top.py", "\"\"\"Top.\"\"\"\nimport os\n\ndef f(x):\n    \"\"\"Doc.\"\"\"\n    assert x, 'x'\n    return os.sep\n");
    tree.write("same.py", if py.minor >= (3, 11) { "x = 1\nempty = None\n" } else { "x = 1\n" });
    tree.write("pkg/__init__.py", "");
    tree.write(
        "pkg/mod.py",
        "class C:\n    \"\"\"Doc.\"\"\"\n    def m(self):\n        assert self\n        return [1, 2]\n",
    );
    tree.write("pkg/sub/deep.py", "def g():\n    return (1, 'a')\n");
    tree.write("pkg/tests/test_x.py", "def test():\n    assert 1\n");
}

/// All pyc files under `roots` with their bytes and inode, then removed.
fn take_outputs(roots: &[&Path]) -> BTreeMap<PathBuf, (Vec<u8>, u64)> {
    let mut out = BTreeMap::new();
    for root in roots {
        for rel in harness::files_with_suffix(root, ".pyc") {
            let p = root.join(&rel);
            let ino = std::fs::metadata(&p).unwrap().ino();
            out.insert(p.clone(), (std::fs::read(&p).unwrap(), ino));
        }
    }
    for p in out.keys() {
        std::fs::remove_file(p).unwrap();
    }
    out
}

/// The outputs without their inodes.
fn bytes_of(m: BTreeMap<PathBuf, (Vec<u8>, u64)>) -> BTreeMap<PathBuf, Vec<u8>> {
    m.into_iter().map(|(p, (b, _))| (p, b)).collect()
}

/// Which outputs share an inode (as sets of paths), for comparing hard links.
fn link_groups(outputs: &BTreeMap<PathBuf, (Vec<u8>, u64)>) -> Vec<Vec<PathBuf>> {
    let mut by_ino: BTreeMap<u64, Vec<PathBuf>> = BTreeMap::new();
    for (p, (_, ino)) in outputs {
        by_ino.entry(*ino).or_default().push(p.clone());
    }
    let mut groups: Vec<Vec<PathBuf>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

fn compileall(py: &Python, cwd: &Path, args: &[&str], env: &[(&str, &str)]) {
    let mut cmd = py.cmd();
    cmd.env("PYTHONHASHSEED", "0")
        .args(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash"])
        .args(args)
        .current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "compileall {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run compileall and hashpyc with equivalent arguments on one tree; compare outputs.
fn same_as_compileall(
    py: &Python,
    tree: &Tree,
    compileall_args: &[&str],
    ours: &[&str],
    extra_roots: &[&Path],
) {
    let mut roots = vec![tree.root()];
    roots.extend_from_slice(extra_roots);
    compileall(py, tree.root(), compileall_args, &[]);
    let theirs = take_outputs(&roots);
    assert!(!theirs.is_empty(), "compileall wrote nothing for {compileall_args:?}");
    let run = tree.hashpyc().args(["compile", "-q"]).python(py).args(ours).run();
    assert!(run.code == Some(0), "hashpyc {ours:?}: {run:?}");
    let mine = take_outputs(&roots);
    let names = |m: &BTreeMap<PathBuf, (Vec<u8>, u64)>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&mine),
        names(&theirs),
        "{}: {ours:?} wrote other files than compileall {compileall_args:?}",
        py.label()
    );
    for (p, (bytes, _)) in &theirs {
        assert!(
            mine[p].0 == *bytes,
            "{}: {} differs ({ours:?} vs compileall {compileall_args:?})",
            py.label(),
            p.display()
        );
    }
    assert_eq!(link_groups(&mine), link_groups(&theirs), "{}: hard links differ", py.label());
}

per_python!(optimization_levels_and_hardlinks, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    same_as_compileall(py, &tree, &["-o", "0", "."], &["-o", "0", "."], &[]);
    same_as_compileall(py, &tree, &["-o", "1", "-o", "2", "."], &["-o", "2", "-o", "1", "."], &[]);
    same_as_compileall(
        py,
        &tree,
        &["-o", "0", "-o", "1", "-o", "2", "--hardlink-dupes", "."],
        &["-o", "0", "-o", "1", "-o", "2", "--hardlink-dupes", "."],
        &[],
    );
    let refused = tree.hashpyc().args(["compile", "--hardlink-dupes", "-o", "1"]).python(py).arg(".").run();
    refused.assert_code(2);
    assert!(refused.stderr.contains("at least two different optimization levels"), "{}", refused.stderr);
});

per_python!(embedded_paths, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    let root = tree.root().to_str().unwrap().to_string();
    same_as_compileall(py, &tree, &["-d", "/app", "pkg"], &["-d", "/app", "pkg"], &[]);
    same_as_compileall(py, &tree, &["-d", "/app", "top.py"], &["-d", "/app", "top.py"], &[]);
    same_as_compileall(py, &tree, &["-s", &root, "-p", "/", &root], &["-s", &root, "-p", "/", &root], &[]);
    same_as_compileall(py, &tree, &["-p", "/opt/app", "pkg"], &["-p", "/opt/app", "pkg"], &[]);
    same_as_compileall(py, &tree, &["-s", "pkg", "pkg"], &["-s", "pkg", "pkg"], &[]);
    // A strip prefix that is not a whole leading component is ignored, with a warning.
    let run = tree.hashpyc().args(["compile", "-s", "pk"]).python(py).arg("pkg").run();
    run.assert_code(0);
    assert!(
        run.stderr.contains("--strip-prefix `pk` does not match the start of 4 source paths"),
        "{}",
        run.stderr
    );
    take_outputs(&[tree.root()]);

    // Changing the embedded path recompiles exactly the affected files, without Python
    // when nothing changed.
    let run = |args: &[&str]| tree.hashpyc().arg("compile").python(py).args(args).arg("pkg").run();
    run(&["-d", "/app"]).assert_code(0);
    let summary = |compiled: &str, fresh: usize| {
        format!("Compiled {compiled} for CPython {} ({fresh} already fresh)", py.version)
    };
    let again = run(&["-d", "/app"]);
    assert!(again.stderr.contains(&summary("0 files", 4)), "{}", again.stderr);
    let moved = run(&["-d", "/srv"]);
    assert!(moved.stderr.contains(&summary("4 files", 0)), "{}", moved.stderr);
    let plain = run(&[]);
    assert!(plain.stderr.contains(&summary("4 files", 0)), "{}", plain.stderr);
    // Only the files whose embedded path changes: a new file under the same options.
    tree.write("pkg/new.py", "n = 1\n");
    let one = run(&[]);
    assert!(one.stderr.contains(&summary("1 file", 4)), "{}", one.stderr);
});

// `-p` is compileall's --prepend-prefix, while uv's `-p` is --python: `hashpyc compile -p
// 3.12 src` exited 0 having compiled for `python3` and embedded `3.12/src/pkg/m.py`, with no
// word (helper report). A prefix that looks like an interpreter (a version request as
// --python takes it, `pypy3.10`, a path ending in `bin/python…`, an executable file) is now
// warned of, in compile and check, naming --python; the bytes stay compileall's. A prefix
// such as `/app` (or a bare `3`) gets no warning.
#[test]
fn prepend_prefix_that_looks_like_an_interpreter_is_warned_of() {
    let Some(py) = harness::any_python("options::prepend_prefix_that_looks_like_an_interpreter_is_warned_of")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/pkg/m.py", "x = 1\n");
    let run = tree.hashpyc().args(["compile", "-q", "-p", "3.12", "src"]).python(py).run();
    run.assert_code(0);
    let want = "warning: -p `3.12` is a prepend prefix, joined to every embedded path (`3.12/src/m.py`): \
                -p is --prepend-prefix, as in compileall; an interpreter is chosen with --python \
                (`--python 3.12`)";
    assert!(run.stderr.contains(want), "{}", run.stderr);
    assert_eq!(co_filename(py, &pyc_of(&tree, py, "src/pkg/m.py")), "3.12/src/pkg/m.py");
    let exe = py.path.to_str().unwrap();
    for prefix in ["3.13t", "cpython-3.12", "pypy3.10", ".venv/bin/python", exe] {
        let run = tree.hashpyc().args(["check", "-p", prefix, "src"]).python(py).run();
        run.assert_code(1);
        let want = format!("warning: -p `{prefix}` is a prepend prefix");
        assert!(run.stderr.contains(&want), "{prefix}: {}", run.stderr);
    }
    tree.write("hashpyc.toml", "prepend-prefix = \"3.12\"\n");
    let run = tree.hashpyc().args(["check", "src"]).python(py).run();
    run.assert_code(0);
    let want = "warning: `prepend-prefix = \"3.12\"` in `hashpyc.toml` line 1 is a prepend prefix";
    assert!(run.stderr.contains(want), "{}", run.stderr);
    for prefix in ["/app", "3"] {
        let run = tree.hashpyc().args(["compile", "-p", prefix, "src"]).python(py).run();
        run.assert_code(0);
        assert!(!run.stderr.contains("is a prepend prefix"), "{prefix}: {}", run.stderr);
    }
}

// `-p` has no effect on a path still absolute after `-s` (`os.path.join` keeps it whole, as
// compileall's does): the pycs embedded the staging path `-s`/`-p` are there to remove, with
// no word (`-p /usr /abs/stage/lib`), or with a warning saying it was embedded "with only
// --prepend-prefix `/usr` applied" (`-s /abs/stag -p /usr`, not whole components). A
// warning now counts the paths `-p` changes nothing of and says what is embedded and what to
// give instead; the `-s` warning names the path embedded. The bytes stay compileall's
// (3.13+'s where `-s` does not match).
per_python!(prepend_prefix_on_an_absolute_path_is_warned_of, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    tree.write("stage/lib/pkg/m.py", "x = 1\n");
    let root = tree.root().to_str().unwrap().to_string();
    let (stage, lib) = (format!("{root}/stage"), format!("{root}/stage/lib"));
    let source = format!("{lib}/pkg/m.py");
    let pyc = pyc_of(&tree, py, "stage/lib/pkg/m.py");
    let compile = |args: &[&str]| tree.hashpyc().args(["compile", "-f"]).python(py).args(args).run();
    // -p alone: compileall's bytes, and the warning, from `check` too.
    same_as_compileall(py, &tree, &["-p", "/usr", &lib], &["-p", "/usr", &lib], &[]);
    let run = compile(&["-p", "/usr", &lib]);
    run.assert_code(0);
    assert_eq!(co_filename(py, &pyc), source, "{}", py.label());
    let p_warning = format!(
        "warning: --prepend-prefix `/usr` has no effect on 1 source path (`{source}`): \
         `os.path.join` keeps an absolute path as it is, as compileall does, so its path is \
         embedded unchanged (`{source}`); "
    );
    let advice = "to replace its leading directories (a staging root), give them with --strip-prefix \
                  too (`--strip-prefix DIR --prepend-prefix /usr`, DIR whole components), or name \
                  the sources relative to that directory\n";
    assert!(run.stderr.contains(&format!("{p_warning}{advice}")), "{}", run.stderr);
    let check = tree.hashpyc().args(["check", "-p", "/usr", &lib]).python(py).run();
    check.assert_code(0);
    assert!(check.stderr.contains(&p_warning), "{}", check.stderr);

    // A strip prefix that is not whole components: neither applies.
    let part = format!("{root}/stag");
    let args = ["-s", &part, "-p", "/usr", &lib];
    if py.minor >= (3, 13) {
        same_as_compileall(py, &tree, &args, &args, &[]);
    }
    let run = compile(&args);
    run.assert_code(0);
    assert_eq!(co_filename(py, &pyc), source, "{}", py.label());
    let s_said = format!(
        "; its path is embedded unchanged (--prepend-prefix `/usr` has no effect on an absolute \
         path, see below), as by compileall 3.13+ (`{source}`); the compileall of 3.9–3.12"
    );
    assert!(run.stderr.contains(&s_said), "{}", run.stderr);
    assert!(!run.stderr.contains("applied"), "{}", run.stderr);
    let s_advice = format!(
        "--strip-prefix `{part}` did not apply to it (warned above): make it the leading \
         directories to replace, as whole components\n"
    );
    assert!(run.stderr.contains(&format!("{p_warning}{s_advice}")), "{}", run.stderr);
    // Without the slash both apply, as in compileall, without a warning; `-p /` alone embeds
    // the path meant.
    let args = ["-s", &stage, "-p", "/usr", &lib];
    same_as_compileall(py, &tree, &args, &args, &[]);
    let run = compile(&args);
    assert!(run.code == Some(0) && !run.stderr.contains("warning"), "{}", run.stderr);
    assert_eq!(co_filename(py, &pyc), "/usr/lib/pkg/m.py", "{}", py.label());
    let run = compile(&["-p", "/", &lib]);
    assert!(run.code == Some(0) && !run.stderr.contains("warning"), "{}", run.stderr);
    // Set by a configuration file: the key is named.
    tree.write("hashpyc.toml", "prepend-prefix = \"/usr\"\n");
    let run = compile(&["-n", &lib]);
    let want = "warning: `prepend-prefix = \"/usr\"` in `hashpyc.toml` line 1 has no effect on 1 source path";
    assert!(run.stderr.contains(want), "{}", run.stderr);
});

// A strip prefix that is the whole path of a file named is not applied (nothing would be
// left: compileall fails there with a TypeError), and the warning said it "does not match
// the start of 1 source path" that it does match. It now says why it is not applied, and
// what is embedded.
per_python!(strip_prefix_that_is_the_whole_path_says_so, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    tree.write("t/p/m.py", "x = 1\n");
    let args = ["-s", "t/p/m.py", "-p", "/x", "t/p/m.py"];
    let theirs = py
        .cmd()
        .args(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash"])
        .args(args)
        .current_dir(tree.root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&theirs.stderr);
    assert!(!theirs.status.success() && stderr.contains("TypeError"), "{}: {stderr}", py.label());
    let run = tree.hashpyc().arg("compile").python(py).args(args).run();
    run.assert_code(0);
    let want = "warning: --strip-prefix `t/p/m.py` is the whole of 1 source path (`t/p/m.py`), not a \
                directory above it: removing it would leave no file name (compileall fails there, \
                with a TypeError), so it is not applied; its path is embedded with only \
                --prepend-prefix `/x` applied: `/x/t/p/m.py`\n";
    assert!(run.stderr.contains(want), "{}", run.stderr);
    assert!(!run.stderr.contains("does not match"), "{}", run.stderr);
    assert_eq!(co_filename(py, &pyc_of(&tree, py, "t/p/m.py")), "/x/t/p/m.py", "{}", py.label());
});

/// `co_filename` of a pyc, as the interpreter itself reads it.
fn co_filename(py: &Python, pyc: &Path) -> String {
    let script = "import marshal, sys; print(marshal.loads(open(sys.argv[1], 'rb').read()[16:]).co_filename)";
    py.run(&["-c", script, pyc.to_str().unwrap()], pyc.parent().unwrap()).trim_end().to_string()
}

// A strip prefix that is not whole leading components of a path: hashpyc follows
// compileall 3.13+ on every version (the prefix is ignored there, `-p` still applies),
// byte for byte with that very interpreter's compileall; the compileall of 3.9–3.12
// removes the components equal to those at the same position (`-s src/x` embeds `m.py`),
// which the warning says, with what that compileall embeds. The warning said compileall's
// trailing `/` "matches nothing", untrue up to 3.12 (a trailing `/` is now no component:
// strip_prefix_with_a_trailing_slash).
per_python!(strip_prefix_that_does_not_match, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/m.py", "x = 1\n");
    tree.write("src/pkg/n.py", "y = 2\n");
    let m_pyc = pyc_of(&tree, py, "src/m.py");
    // (flags, the paths missed, what is said of their paths, the 3.13+ path of `src/m.py`,
    // what CPython 3.9–3.12's compileall embeds for it)
    let cases: [(&[&str], usize, &str, &str, &str); 2] = [
        (&["-s", "src/x"], 2, "; their paths are embedded unchanged", "src/m.py", "m.py"),
        (
            &["-s", "src/pkg", "-p", "/app"],
            1,
            "; its path is embedded with only --prepend-prefix `/app` applied",
            "/app/src/m.py",
            "/app/m.py",
        ),
    ];
    for (flags, missed, middle, new_rule, old_rule) in cases {
        let args = [flags, &["src"]].concat();
        compileall(py, tree.root(), &args, &[]);
        let theirs_path = co_filename(py, &m_pyc);
        let theirs = take_outputs(&[tree.root()]);
        let run = tree.hashpyc().arg("compile").python(py).args(&args).run();
        run.assert_code(0);
        let ours_path = co_filename(py, &m_pyc);
        let mine = take_outputs(&[tree.root()]);
        assert_eq!(ours_path, new_rule, "{}: {flags:?}", py.label());
        if py.minor >= (3, 13) {
            assert_eq!(mine.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
            for (p, (bytes, _)) in &theirs {
                assert!(mine[p].0 == *bytes, "{}: {} differs for {flags:?}", py.label(), p.display());
            }
        } else {
            assert_eq!(theirs_path, old_rule, "{}: compileall {flags:?}", py.label());
        }
        let warning = format!(
            "warning: --strip-prefix `{}` does not match the start of {missed} source path{} ({}\
             `src/m.py`){middle}, as by compileall 3.13+ (`{new_rule}`); the compileall of 3.9–3.12, \
             which removes each component equal to the one at the same position, embeds `{old_rule}` \
             for it\n",
            flags[1],
            if missed == 1 { "" } else { "s" },
            // One path is named as itself, not as an example.
            if missed == 1 { "" } else { "e.g. " }
        );
        assert!(run.stderr.contains(&warning), "{}: {flags:?}\n{}\nwant {warning}", py.label(), run.stderr);
    }
});

// A staging root given with a trailing `/` (a Makefile's `$(DESTDIR)/`) left the build root
// in every pyc, exit 0 even under `-W error`: compileall 3.13+ reads the slash as an empty
// last component no path has and ignores `-s` (with a warning), which hashpyc followed on
// every version. A trailing `/` is now no component, for every target: the bytes are those of
// that version's compileall given the prefix without it (which strips on every version;
// py_compile with that `dfile` before 3.9, whose compileall has no `-s`), and `check` agrees.
// A trailing `/` of `-p` and `-d` embeds what compileall embeds (the directory).
per_python!(strip_prefix_with_a_trailing_slash, |py: &Python| {
    let tree = Tree::new();
    let site = "root/usr/lib/site-packages";
    tree.write(format!("{site}/p/__init__.py"), "");
    tree.write(format!("{site}/p/m.py"), "x = 1\n");
    let root = tree.path("root").to_str().unwrap().to_string();
    let lib = tree.path(site).to_str().unwrap().to_string();
    let slashed = format!("{root}/");
    let ours = ["-s", &slashed, "-p", "/", &lib];
    if py.minor >= (3, 9) {
        same_as_compileall(py, &tree, &["-s", &root, "-p", "/", &lib], &ours, &[]);
        let usr = format!("{root}/usr");
        let with_p = ["-s", &format!("{usr}/"), "-p", "/usr/", &lib];
        same_as_compileall(py, &tree, &["-s", &usr, "-p", "/usr/", &lib], &with_p, &[]);
        same_as_compileall(py, &tree, &["-d", "/app/", &lib], &["-d", "/app/", &lib], &[]);
    }
    let run = tree.hashpyc().args(["compile", "-W", "error"]).python(py).args(ours).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}: {}", py.label(), run.stderr);
    let sources: Vec<PathBuf> = ["p/__init__.py", "p/m.py"].iter().map(|m| Path::new(&lib).join(m)).collect();
    let dfiles: Vec<PathBuf> =
        ["p/__init__.py", "p/m.py"].iter().map(|m| Path::new("/usr/lib/site-packages").join(m)).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, Some(&dfiles));
    for (m, want) in ["p/__init__.py", "p/m.py"].iter().zip(refs) {
        let pyc = pyc_of(&tree, py, &format!("{site}/{m}"));
        assert!(std::fs::read(&pyc).ok() == want, "{}: {} is not py_compile's", py.label(), pyc.display());
    }
    assert_eq!(
        co_filename(py, &pyc_of(&tree, py, &format!("{site}/p/m.py"))),
        "/usr/lib/site-packages/p/m.py"
    );
    // `check` with the same flags, and without the slash, finds them fresh; without `-s` stale.
    for strip in [&slashed, &root] {
        let check = tree.hashpyc().args(["check", "-s", strip, "-p", "/"]).python(py).arg(&lib).run();
        check.assert_code(0);
        assert!(!check.stderr.contains("warning"), "{}: {}", py.label(), check.stderr);
    }
    tree.hashpyc().args(["check", "-p", "/"]).python(py).arg(&lib).run().assert_code(1);
});

per_python!(pyc_layouts, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    let root = tree.root().to_str().unwrap().to_string();
    same_as_compileall(py, &tree, &["-b", "."], &["-b", "."], &[]);
    let prefix = Tree::new();
    let p = prefix.root().to_str().unwrap().to_string();
    let mut cmd = py.cmd();
    let out = cmd
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .args([
            "-X",
            &format!("pycache_prefix={p}"),
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            &root,
        ])
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success());
    let theirs = bytes_of(take_outputs(&[tree.root(), prefix.root()]));
    assert!(theirs.keys().all(|k| k.starts_with(prefix.root())), "{:?}", theirs.keys());
    tree.hashpyc().args(["compile", "-q", "--pycache-prefix", &p]).python(py).arg(&root).run().assert_code(0);
    let mine = bytes_of(take_outputs(&[tree.root(), prefix.root()]));
    assert!(mine == theirs, "{:?} vs {:?}", mine.keys(), theirs.keys());
    // PYTHONPYCACHEPREFIX is honoured as CPython would.
    tree.hashpyc()
        .env("PYTHONPYCACHEPREFIX", &p)
        .args(["compile", "-q"])
        .python(py)
        .arg(&root)
        .run()
        .assert_code(0);
    assert!(bytes_of(take_outputs(&[tree.root(), prefix.root()])) == theirs);
    // check finds them there too.
    tree.hashpyc()
        .env("PYTHONPYCACHEPREFIX", &p)
        .args(["compile", "-q"])
        .python(py)
        .arg(&root)
        .run()
        .assert_code(0);
    tree.hashpyc().env("PYTHONPYCACHEPREFIX", &p).arg("check").python(py).arg(&root).run().assert_code(0);
});

/// What py_compile writes for `m.py` at `level` (embedding `m.py`), in a `python -I`.
fn py_compile_at(py: &Python, tree: &Tree, level: u8) -> Vec<u8> {
    use std::io::Write;
    let out = tempfile::tempdir().unwrap();
    let cfile = out.path().join("m.pyc");
    let mut child = py
        .cmd()
        .args(["-I", "-c", harness::PY_COMPILE_REF, &level.to_string()])
        .current_dir(tree.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = b"m.py\0".to_vec();
    input.extend_from_slice(cfile.to_str().unwrap().as_bytes());
    input.extend_from_slice(b"\0\n");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    std::fs::read(&cfile).expect("py_compile's pyc")
}

// PYTHONOPTIMIZE, which CPython (and compileall) take the level from, gives the level when
// no -o does: the pyc written is the one `python -v` run with that environment imports
// ("matches"), with py_compile's bytes at that level; `check` expects it. The workers'
// own compile never sees the variable: `-o 0` under PYTHONOPTIMIZE=2 is level 0's bytes.
per_python!(pythonoptimize_gives_the_level, |py: &Python| {
    let tree = Tree::new();
    tree.write(
        "m.py",
        "\"\"\"Doc.\"\"\"\ndef f(x):\n    \"\"\"Doc.\"\"\"\n    assert x, 'x'\n    return x\n",
    );
    for level in [1u8, 2] {
        let n = level.to_string();
        let _ = std::fs::remove_dir_all(tree.path("__pycache__"));
        let run = tree.hashpyc().env("PYTHONOPTIMIZE", &n).args(["compile", "-v", "m.py"]).python(py).run();
        run.assert_code(0);
        assert!(
            run.stderr.contains(&format!("setting: PYTHONOPTIMIZE={n} (optimization level {level}")),
            "{}",
            run.stderr
        );
        let pycs = tree.pycs();
        assert_eq!(pycs.len(), 1, "{pycs:?}");
        let name = pycs[0].file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(&format!(".opt-{level}.pyc")), "{name}");
        let out = py
            .cmd()
            .env("PYTHONOPTIMIZE", &n)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .args(["-v", "-c", "import m"])
            .current_dir(tree.root())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("{name} matches ")), "CPython did not use {name}:\n{stderr}");
        assert!(tree.read(&pycs[0]) == py_compile_at(py, &tree, level), "{name} is not py_compile's");
        tree.hashpyc().env("PYTHONOPTIMIZE", &n).args(["check", "m.py"]).python(py).run().assert_code(0);
        // Without the variable, level 0 is expected and missing.
        tree.hashpyc().args(["check", "m.py"]).python(py).run().assert_code(1);
    }
    let _ = std::fs::remove_dir_all(tree.path("__pycache__"));
    tree.hashpyc()
        .env("PYTHONOPTIMIZE", "2")
        .args(["compile", "-q", "-o", "0", "m.py"])
        .python(py)
        .run()
        .assert_code(0);
    let pycs = tree.pycs();
    assert!(pycs.len() == 1 && !pycs[0].to_str().unwrap().contains(".opt-"), "{pycs:?}");
    assert!(tree.read(&pycs[0]) == py_compile_at(py, &tree, 0), "-o 0 under PYTHONOPTIMIZE=2");
    // A level hashpyc does not write (CPython would import `.opt-3.pyc`) is refused.
    let run = tree.hashpyc().env("PYTHONOPTIMIZE", "3").args(["check", "m.py"]).python(py).run();
    run.assert_code(2);
    assert!(run.stderr.contains("PYTHONOPTIMIZE=3 is optimization level 3"), "{}", run.stderr);
});

// A `.py` link that `-e` skips (walked or named) was counted nowhere in the summary, where
// the other selection rules' skips are: it is now, in text and JSON, for compile and check.
#[test]
fn limit_symlinks_skips_are_counted() {
    let Some(py) = harness::any_python("options::limit_symlinks_skips_are_counted") else { return };
    let tree = Tree::new();
    tree.write("proj/a.py", "a = 1\n");
    tree.write("real/m.py", "m = 1\n");
    std::os::unix::fs::symlink("../real/m.py", tree.path("proj/l.py")).unwrap();
    for roots in [&["proj"][..], &["proj/a.py", "proj/l.py"]] {
        for command in ["compile", "check"] {
            let run = tree.hashpyc().args([command, "-e", "proj"]).python(py).args(roots).run();
            run.assert_code(0);
            assert!(
                run.stderr.contains("skipped 1 file by --limit-symlinks"),
                "{command} {roots:?}: {}",
                run.stderr
            );
            let json =
                tree.hashpyc().args([command, "-e", "proj", "--format", "json"]).python(py).args(roots).run();
            json.assert_code(0);
            let summary: serde_json::Value =
                serde_json::from_str(json.stdout.lines().last().unwrap()).unwrap();
            assert_eq!(summary["skipped_limit_symlinks"], 1, "{command} {roots:?}: {summary}");
        }
    }
    assert!(!tree.path("real/__pycache__").exists());
}

per_python!(selection, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    same_as_compileall(py, &tree, &["-x", "tests?/", "."], &["-x", "tests?/", "."], &[]);
    same_as_compileall(py, &tree, &["-l", "."], &["-l", "."], &[]);
    same_as_compileall(py, &tree, &["-r", "1", "."], &["--max-depth", "2", "."], &[]);
    // --exclude (gitignore-style globs, no compileall equivalent): excluded files absent.
    tree.hashpyc()
        .args(["compile", "-q", "--exclude", "tests/", "--exclude", "deep.py"])
        .python(py)
        .arg(".")
        .run()
        .assert_code(0);
    let written: Vec<String> = take_outputs(&[tree.root()])
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!written.iter().any(|n| n.starts_with("test_x") || n.starts_with("deep")), "{written:?}");
    assert_eq!(written.len(), 4, "{written:?}");
    // Symlinks: a linked directory is not followed unless --follow; a link to an ancestor
    // is a note (every file under it is compiled under the other spelling).
    let outside = Tree::new();
    outside.write("ext/lib.py", "e = 1\n");
    std::os::unix::fs::symlink(outside.path("ext"), tree.path("linked")).unwrap();
    std::os::unix::fs::symlink(outside.path("ext/lib.py"), tree.path("pkg/alias.py")).unwrap();
    std::os::unix::fs::symlink(tree.path("pkg"), tree.path("pkg/sub/loop")).unwrap();
    same_as_compileall(py, &tree, &["."], &["."], &[]);
    let root = tree.root().to_str().unwrap().to_string();
    same_as_compileall(py, &tree, &["-e", &root, "."], &["-e", &root, "."], &[]);
    let follow = tree.hashpyc().args(["compile", "-q", "--follow"]).python(py).arg(".").run();
    follow.assert_code(0);
    // The link's target as written (here absolute), then the ancestor as walked (3011bd8).
    let want = format!(
        "note: `./pkg/sub/loop`: symbolic link to `{}`, a directory containing it (`./pkg`); not followed",
        tree.path("pkg").display()
    );
    assert!(follow.stderr.starts_with(&want), "{}", follow.stderr);
    assert!(outside.path("ext/__pycache__").is_dir() || tree.path("linked/__pycache__").is_dir());
});

// `-x` matches a name that is not UTF-8 as compileall's does: Python decodes it with
// surrogateescape, a byte that is not UTF-8 one character that `.`, `[^/]` and `\S` match
// and `\w` does not. A glob that is not UTF-8 is refused naming `--exclude`.
per_python!(exclude_regex_matches_names_that_are_not_utf8, min = (3, 9), |py: &Python| {
    use std::os::unix::ffi::OsStrExt;
    let tree = Tree::new();
    let name = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    tree.write("rx/cafe.py", "x = 1\n");
    tree.write(name(b"rx/caf\xe9.py"), "x = 2\n");
    tree.write(name(b"rx/caf\xe9x\xe9.py"), "x = 3\n");
    tree.write("rx/other.py", "x = 4\n");
    for re in
        ["rx/caf[^/]*$", "caf.\\.py", "caf\\w\\.py", "caf\\S\\.py", "(?i)CAF.X.\\.py", "^rx/[a-z]*\\.py$"]
    {
        same_as_compileall(py, &tree, &["-x", re, "rx"], &["-x", re, "rx"], &[]);
    }
    let refused = tree
        .hashpyc()
        .args(["compile", "-q", "--exclude"])
        .arg(name(b"caf\xe9.py"))
        .python(py)
        .arg("rx")
        .run();
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("'--exclude <GLOB>': \"caf\\xE9.py\" is not UTF-8: a glob is text"),
        "{}",
        refused.stderr
    );
    // The glob the message offers skips it.
    tree.hashpyc().args(["compile", "-q", "--exclude", "caf?.py"]).python(py).arg("rx").run().assert_code(0);
    let written: Vec<PathBuf> = take_outputs(&[tree.root()]).into_keys().collect();
    let stems: Vec<Vec<u8>> = written
        .iter()
        .map(|p| p.file_name().unwrap().as_bytes().split(|&b| b == b'.').next().unwrap().to_vec())
        .collect();
    assert_eq!(stems, vec![b"caf\xe9x\xe9".to_vec(), b"other".to_vec()], "{written:?}");
});

// A single-valued flag given twice takes its last value, as compileall's argparse options
// do (`-r`, `-x`, `-d`), while `-o` keeps collecting every level, as compileall's does.
per_python!(repeated_flags_take_the_last_value, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    same_as_compileall(
        py,
        &tree,
        &["-r", "5", "-r", "1", "-x", "top", "-x", "same", "-d", "/a", "-d", "/b", "-o", "1", "-o", "2", "."],
        &[
            "--max-depth",
            "5",
            "--max-depth",
            "2",
            "-x",
            "top",
            "-x",
            "same",
            "-d",
            "/a",
            "-d",
            "/b",
            "-o",
            "1",
            "-o",
            "2",
            "-j",
            "1",
            "-j",
            "2",
            "--timeout",
            "1",
            "--timeout",
            "60",
            ".",
        ],
        &[],
    );
});

per_python!(several_targets_in_one_run, min = (3, 9), |py: &Python| {
    let Some(other) = harness::pythons().values().find(|o| o.minor >= (3, 7) && o.minor != py.minor) else {
        harness::visible("SKIPPED several_targets_in_one_run: needs a second CPython");
        return;
    };
    let tree = Tree::new();
    fixture(&tree, py);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    tree.hashpyc().args(["compile", "-q"]).python(other).arg(".").run().assert_code(0);
    let separate = bytes_of(take_outputs(&[tree.root()]));
    let both = tree.hashpyc().args(["compile"]).python(py).python(other).arg(".").run();
    both.assert_code(0);
    // Files are sources and pycs are what was written, as check counts them.
    let sources = harness::files_with_suffix(tree.root(), ".py").len();
    let pycs = harness::files_with_suffix(tree.root(), ".pyc").len();
    assert_eq!(pycs, 2 * sources);
    let label = format!("CPython {} and {}", py.version, other.version);
    let want = format!("Compiled {sources} files, {pycs} pycs for {label} (0 already fresh)");
    assert!(both.stderr.contains(&want), "{}", both.stderr);
    let check = tree.hashpyc().arg("check").python(py).python(other).arg(".").run();
    check.assert_code(0);
    assert!(
        check.stderr.contains(&format!("Checked {sources} files, {pycs} pycs for {label}")),
        "{}",
        check.stderr
    );
    // Another level: that level's pycs are written, the others counted as fresh; JSON
    // keeps its per-(source, target) counts and adds the file and pyc counts.
    let levels = tree
        .hashpyc()
        .args(["compile", "-o", "0", "-o", "1", "--format", "json"])
        .python(py)
        .python(other)
        .arg(".")
        .run();
    levels.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(levels.stdout.lines().last().unwrap()).unwrap();
    let written = harness::files_with_suffix(tree.root(), ".pyc").len() - pycs;
    assert_eq!(written, pycs, "one more pyc per source and target");
    assert_eq!(
        (&summary["compiled"], &summary["compiled_sources"], &summary["compiled_pycs"]),
        (&(2 * sources).into(), &sources.into(), &written.into()),
        "{summary}"
    );
    assert_eq!((&summary["fresh"], &summary["fresh_pycs"]), (&0.into(), &pycs.into()), "{summary}");
    let again =
        tree.hashpyc().args(["compile", "-o", "0", "-o", "1"]).python(py).python(other).arg(".").run();
    let want = format!("Compiled 0 files for {label} ({} already fresh)", pycs + written);
    assert!(again.stderr.contains(&want), "{}", again.stderr);
    // The pycs of both targets are those of one target at a time.
    take_outputs(&[tree.root()]);
    tree.hashpyc().args(["compile", "-q"]).python(py).python(other).arg(".").run().assert_code(0);
    assert!(bytes_of(take_outputs(&[tree.root()])) == separate);
});

per_python!(dry_run_writes_nothing, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    fixture(&tree, py);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("./top.py").run().assert_code(0);
    tree.write("same.py", "x = 2\n");
    let before = harness::files_with_suffix(tree.root(), ".pyc");
    let run = tree.hashpyc().args(["compile", "--dry-run"]).python(py).arg(".").run();
    run.assert_code(0);
    assert_eq!(harness::files_with_suffix(tree.root(), ".pyc"), before);
    assert!(run.stdout.contains("fresh    ./top.py"), "{}", run.stdout);
    assert!(run.stdout.contains("compile  ./same.py  (no pyc)"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 6, "{}", run.stdout);
});

// `-i FILE` is `- < FILE` with one difference: compileall strips the whitespace around each
// entry, hashpyc keeps it (a name may really hold spaces) and, when such a name does not
// exist but the stripped one does, its error says so; it said only "no such file or
// directory".
per_python!(path_list_entries_keep_their_spaces, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/o.py", "x = 1\n");
    tree.write(" sp.py", "y = 2\n");
    tree.write("list.txt", "  src/o.py  \n");
    let o_pyc = pyc_of(&tree, py, "src/o.py");
    compileall(py, tree.root(), &["-i", "list.txt"], &[]);
    assert!(o_pyc.is_file(), "compileall -i strips the entry");
    std::fs::remove_file(&o_pyc).unwrap();
    let want = "error: `  src/o.py  `: no such file or directory (the name has leading or trailing \
                spaces, which are part of it; `src/o.py` exists)\n";
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().arg(cmd).python(py).arg("-").stdin("  src/o.py  \n").run();
        run.assert_code(2);
        assert!(run.stderr.starts_with(want), "{cmd}: {}", run.stderr);
        assert!(!o_pyc.exists(), "{cmd}: {}", run.stderr);
    }
    // A name that holds spaces is taken as it is; a missing one without a stripped twin
    // gets the plain error.
    let run = tree.hashpyc().arg("compile").python(py).arg("-").stdin(" sp.py\n").run();
    run.assert_code(0);
    assert!(pyc_of(&tree, py, " sp.py").is_file(), "{}", run.stderr);
    let run = tree.hashpyc().arg("compile").python(py).arg("-").stdin(" nope.py \n").run();
    run.assert_code(2);
    assert!(run.stderr.starts_with("error: ` nope.py `: no such file or directory\n"), "{}", run.stderr);
    // Under `--null` a name keeps a newline (a list of one name per line, `git ls-files`
    // without `-z`): said as a line break and what to leave out, not as spaces.
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().args([cmd, "--null", "-"]).python(py).stdin("src/o.py\n").run();
        run.assert_code(2);
        assert!(
            run.stderr.starts_with(
                "error: \"src/o.py\\n\": no such file or directory (the name has a line break at its start \
                 or end, which `--null` keeps as part of it: a list of one name per line is read without \
                 `--null`; `src/o.py` exists)\n"
            ),
            "{cmd}: {}",
            run.stderr
        );
    }
});

#[test]
fn timestamp_mode_is_refused_with_the_reason() {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let run = tree.hashpyc().args(["compile", "--invalidation-mode", "timestamp", "m.py"]).run();
    run.assert_code(2);
    assert!(run.stderr.contains("changes twice within one second"), "{}", run.stderr);
    assert!(run.stderr.contains("checked-hash"), "{}", run.stderr);
}

// A `.py` link that loops (`a.py` → `b.py` → `a.py`) has no source behind it, as a dangling
// one has not: the same warning severity and exit status with and without -L, walked or
// named. It was "dangling symbolic link" without -L and "error: … Too many levels of
// symbolic links (os error 40)", exit 1, with it.
per_python!(py_symlink_loops_warn_with_and_without_follow, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    std::os::unix::fs::symlink("b.py", tree.path("a.py")).unwrap();
    std::os::unix::fs::symlink("a.py", tree.path("b.py")).unwrap();
    std::os::unix::fs::symlink("loop", tree.path("loop")).unwrap();
    for follow in [&[][..], &["-L"][..]] {
        for cmd in ["compile", "check"] {
            for (paths, want) in [
                (
                    &["."][..],
                    &["warning: `./a.py`: symbolic link loop", "warning: `./b.py`: symbolic link loop"][..],
                ),
                (&["./a.py", "./m.py"][..], &["warning: `./a.py`: symbolic link loop"][..]),
            ] {
                let run = tree.hashpyc().arg(cmd).args(follow).python(py).args(paths).run();
                run.assert_code(0);
                let warnings: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with(['C', ' '])).collect();
                assert_eq!(warnings, want, "{cmd} {follow:?} {paths:?}: {}", run.stderr);
            }
        }
    }
    // -qq hides these per-file warnings (errors alone are printed), a dangling link's too,
    // in the dry run alike; JSON still has them.
    std::os::unix::fs::symlink("nowhere.py", tree.path("d.py")).unwrap();
    for args in [&["compile"][..], &["check"][..], &["compile", "-n"][..]] {
        let run = tree.hashpyc().args(args).arg("-qq").python(py).run();
        run.assert_code(0);
        assert_eq!(run.stderr, "", "{args:?}");
        let json = tree.hashpyc().args(args).args(["-qq", "--format", "json"]).python(py).run();
        let notices = json.stdout.lines().filter(|l| l.contains(r#""type":"notice""#)).count();
        assert_eq!(notices, 3, "{args:?}: {}", json.stdout);
    }
});

// With --follow, a directory link to one of its ancestors (`pkg/up` → `..`, `self` → `.`,
// as `X11` → `.` in real trees) misses no file: every file under it is taken under the
// other spelling. It is a note, in every format, changing no exit status and no count; it
// was an error, exit 1 (`Checked 1 file (1 ok, 2 errors)`, JSON `"errors": 2`). A real
// problem found in the same run still decides the exit status.
per_python!(links_to_an_ancestor_are_notes_under_follow, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    tree.write("n.py", "y = 2\n");
    std::os::unix::fs::symlink("..", tree.path("pkg/up")).unwrap();
    std::os::unix::fs::symlink(".", tree.path("self")).unwrap();
    let notes = [
        "note: `pkg/up`: symbolic link to `..`, a directory containing it (`.`); not followed (its files are walked there)",
        "note: `self`: symbolic link to `.`, a directory containing it; not followed (its files are walked there)",
    ];
    let notes_of = |stderr: &str| {
        stderr.lines().filter(|l| !l.starts_with(['C', ' '])).map(str::to_string).collect::<Vec<_>>()
    };
    let run = tree.hashpyc().args(["compile", "--follow"]).python(py).run();
    run.assert_code(0);
    assert_eq!(notes_of(&run.stderr), notes, "{}", run.stderr);
    assert!(run.stderr.contains("Compiled 2 files") && !run.stderr.contains("error"), "{}", run.stderr);
    assert_eq!(tree.pycs().len(), 2, "{:?}", tree.pycs());
    let run = tree.hashpyc().args(["check", "--follow"]).python(py).run();
    run.assert_code(0);
    assert_eq!(notes_of(&run.stderr), notes, "{}", run.stderr);
    assert!(run.stderr.contains("(2 ok, all fresh)"), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--follow", "--format", "github"]).python(py).run();
    run.assert_code(0);
    assert_eq!((run.stdout.as_str(), notes_of(&run.stderr)), ("", notes.map(String::from).to_vec()));
    // -qq hides notes, as it hides a vanished file's.
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().args([cmd, "-qq", "--follow"]).python(py).run();
        run.assert_code(0);
        assert_eq!(run.stderr, "", "{cmd}");
    }
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().args([cmd, "--follow", "--format", "json"]).python(py).run();
        run.assert_code(0);
        let objects: Vec<serde_json::Value> =
            run.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let notices: Vec<(&str, &str)> = objects
            .iter()
            .filter(|o| o["message"].as_str().is_some_and(|m| m.contains("symbolic link")))
            .map(|o| (o["type"].as_str().unwrap(), o["path"].as_str().unwrap()))
            .collect();
        assert_eq!(notices, [("notice", "pkg/up"), ("notice", "self")], "{cmd}: {}", run.stdout);
        assert_eq!(objects.last().unwrap()["errors"], 0, "{cmd}: {}", run.stdout);
    }
    // A stale pyc beside the notes still fails `check`, and a source that does not compile
    // still fails `compile`.
    tree.write("n.py", "y = 3\n");
    let run = tree.hashpyc().args(["check", "--follow"]).python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("(1 ok, 1 stale)"), "{}", run.stderr);
    tree.write("bad.py", "def (\n");
    let run = tree.hashpyc().args(["compile", "--follow"]).python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("(1 already fresh, 1 failed)"), "{}", run.stderr);
    assert!(notes.iter().all(|n| run.stderr.contains(n)), "{}", run.stderr);
});

// `-e FILE`: compileall takes a link only when the limit is a strict parent of what it
// resolves to, so given a file it takes no link, not even one to that file; hashpyc took
// that one and accepted the file silently. A limit that is not a directory is refused
// (flag and configuration key), and nothing is written.
#[test]
fn limit_symlinks_must_be_a_directory() {
    // (compileall has `-e` from 3.9.)
    let Some(py) = harness::python_or_skip((3, 12), "options::limit_symlinks_must_be_a_directory") else {
        return;
    };
    let tree = Tree::new();
    tree.write("a/real.py", "r = 1\n");
    std::fs::create_dir(tree.path("b")).unwrap();
    std::os::unix::fs::symlink("../a/real.py", tree.path("b/link.py")).unwrap();
    // compileall's selection: no pyc.
    py.run(&["-m", "compileall", "-q", "-e", "a/real.py", "b"], tree.root());
    assert_eq!(tree.pycs(), Vec::<PathBuf>::new());
    let reason = "`a/real.py`: not a directory (links are taken when they resolve inside it; compileall's `-e` given a file takes none)";
    for args in [&["-e", "a/real.py"][..], &["--limit-symlinks", "a/real.py", "-n"][..]] {
        let run = tree.hashpyc().arg("compile").args(args).python(py).arg("b").run();
        run.assert_code(2);
        assert_eq!(run.stderr, format!("error: --limit-symlinks {reason}\n"));
    }
    tree.write("hashpyc.toml", "limit-symlinks = \"a/real.py\"\n");
    let run = tree.hashpyc().arg("check").python(py).arg("b").run();
    run.assert_code(2);
    let want = format!("a/real.py`: not a directory {}", reason.split_once(" not a directory ").unwrap().1);
    assert!(
        run.stderr.contains("`hashpyc.toml` line 1: invalid value for `limit-symlinks`: `")
            && run.stderr.contains(&want),
        "{}",
        run.stderr
    );
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    assert_eq!(tree.pycs(), Vec::<PathBuf>::new());
    // A directory keeps the links inside it.
    let run = tree.hashpyc().args(["compile", "-e", "a"]).python(py).arg("b").run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 1 file"), "{}", run.stderr);
}

// With --follow, a directory is walked once, however many links lead to it. The walker
// refused only a link to an ancestor on the path it was walking and the one spelling was
// picked after the walk, so it walked every path through links: 7 packages each linking to
// the 6 others (`p1/deps/p2` → `../../p2`) took seconds and 68 502 notes for 7 files; two
// links per level doubled the work per level, and a link back at the bottom was noted once
// per path reaching it; `pkg/sub2` → `sub` noted `sub`'s link to its parent twice.
#[test]
fn follow_walks_each_directory_once() {
    let Some(py) = harness::any_python("follow_walks_each_directory_once") else { return };
    let notes_of = |stderr: &str| {
        stderr.lines().filter(|l| l.starts_with("note:")).map(str::to_string).collect::<Vec<_>>()
    };
    // The mesh: each package's files once, under the spelling without links; no link
    // leads to a directory containing it, so no note.
    let mesh = Tree::new();
    for i in 1..=7 {
        mesh.write(format!("p{i}/m.py"), format!("v = {i}\n"));
        std::fs::create_dir(mesh.path(format!("p{i}/deps"))).unwrap();
        for j in (1..=7).filter(|&j| j != i) {
            std::os::unix::fs::symlink(format!("../../p{j}"), mesh.path(format!("p{i}/deps/p{j}"))).unwrap();
        }
    }
    let run = mesh.hashpyc().args(["compile", "-L"]).python(py).arg(".").run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 7 files"), "{}", run.stderr);
    assert_eq!(notes_of(&run.stderr), Vec::<String>::new());
    let pycs: Vec<String> = mesh.pycs().iter().map(|p| p.parent().unwrap().display().to_string()).collect();
    assert_eq!(pycs, (1..=7).map(|i| format!("p{i}/__pycache__")).collect::<Vec<_>>());
    let run = mesh.hashpyc().args(["check", "-L", "--all"]).python(py).arg(".").run();
    run.assert_code(0);
    let listed: Vec<&str> = run.stdout.lines().collect();
    let want: Vec<String> = (1..=7).map(|i| format!("ok         ./p{i}/m.py")).collect();
    assert_eq!(listed, want, "{}", run.stderr);
    assert_eq!(notes_of(&run.stderr), Vec::<String>::new());
    // A chain of 13 directories, two links from each to the next, one back to the first
    // at the bottom: each file once, under the first link in sorted order, and the link
    // back noted once.
    let chain = Tree::new();
    for i in 0..=12 {
        chain.write(format!("d{i}/m{i}.py"), format!("v = {i}\n"));
        if i < 12 {
            for name in ["a", "b"] {
                std::os::unix::fs::symlink(format!("../d{}", i + 1), chain.path(format!("d{i}/{name}")))
                    .unwrap();
            }
        }
    }
    std::os::unix::fs::symlink("../d0", chain.path("d12/back")).unwrap();
    let run = chain.hashpyc().args(["check", "-L", "--all"]).python(py).arg("d0").run();
    run.assert_code(1);
    assert!(run.stderr.contains("Checked 13 files"), "{}", run.stderr);
    let deepest = format!("d0/{}", "a/".repeat(12));
    assert!(run.stdout.contains(&format!("missing    {deepest}m12.py\n")), "{}", run.stdout);
    assert_eq!(
        notes_of(&run.stderr),
        [format!(
            "note: `{deepest}back`: symbolic link to `../d0`, a directory containing it (`d0`); not followed (its files are walked there)"
        )]
    );
    // A second spelling of a directory holding a link to its parent: the link noted once.
    let tree = Tree::new();
    tree.write("pkg/sub/m.py", "x = 1\n");
    std::os::unix::fs::symlink("..", tree.path("pkg/sub/up")).unwrap();
    std::os::unix::fs::symlink("sub", tree.path("pkg/sub2")).unwrap();
    let run = tree.hashpyc().args(["compile", "-L"]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 1 file"), "{}", run.stderr);
    assert_eq!(
        notes_of(&run.stderr),
        [
            "note: `pkg/sub/up`: symbolic link to `..`, a directory containing it (`pkg`); not followed (its files are walked there)"
        ]
    );
    // The note names the link's target as written, as `ls -l` shows it (it named the
    // ancestor alone, `symbolic link to `pkg``, for `pkg/up` → `.`), then the ancestor.
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    std::os::unix::fs::symlink(".", tree.path("pkg/up")).unwrap();
    let run = tree.hashpyc().args(["compile", "-L"]).python(py).run();
    run.assert_code(0);
    assert_eq!(
        notes_of(&run.stderr),
        [
            "note: `pkg/up`: symbolic link to `.`, a directory containing it (`pkg`); not followed (its files are walked there)"
        ]
    );
}

/// The mirror of `tree` under a pycache prefix: the prefix, then the tree's absolute path
/// as the working directory spells it (links resolved), as CPython's `cache_from_source`
/// builds it.
fn prefix_mirror(prefix: &Tree, tree: &Tree) -> PathBuf {
    let real = std::fs::canonicalize(tree.root()).unwrap();
    prefix.root().join(real.strip_prefix("/").unwrap())
}

/// The pycs under `dir`, relative, with their bytes.
fn pycs_with_bytes(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    harness::files_with_suffix(dir, ".pyc")
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(dir.join(p)).unwrap()))
        .collect()
}

// With --follow under a pycache prefix, a directory reached directly and through a link
// (`app/common` → `../shared/common`) has a mirror per spelling, and CPython importing
// through the link looks in the link's. Only the spelling without links was written, and
// `check` over the same paths said fresh: every import through the link compiled the
// source again. Each spelling now gets its own pycs, py_compile's for that path (the
// link's path embedded), and `check` reports one missing.
per_python!(follow_under_a_pycache_prefix_writes_each_spelling, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("shared/common/__init__.py", "");
    tree.write("shared/common/h.py", "x = 1\n");
    std::fs::create_dir(tree.path("app")).unwrap();
    std::os::unix::fs::symlink("../shared/common", tree.path("app/common")).unwrap();
    let prefix = Tree::new();
    let mirror = prefix_mirror(&prefix, &tree);
    let hashpyc = |verb: &str, paths: &[&str]| {
        tree.hashpyc().args([verb, "-L", "--pycache-prefix"]).arg(prefix.root()).python(py).args(paths).run()
    };
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let spellings =
        ["app/common/__init__.py", "app/common/h.py", "shared/common/__init__.py", "shared/common/h.py"];
    let pyc = |rel: &str| {
        let p = Path::new(rel);
        mirror
            .join(p.parent().unwrap())
            .join(format!("{}.{tag}.pyc", p.file_stem().unwrap().to_str().unwrap()))
    };
    // The pycs of the spelling without links alone (all a run over both wrote): the
    // link's are missing.
    hashpyc("compile", &["shared"]).assert_code(0);
    let run = hashpyc("check", &["--all", "app", "shared"]);
    run.assert_code(1);
    let listed: Vec<&str> = run.stdout.lines().collect();
    let want: Vec<String> = spellings
        .iter()
        .map(|s| format!("{:<11}{s}", if s.starts_with("app/") { "missing" } else { "ok" }))
        .collect();
    assert_eq!(listed, want, "{}", run.stderr);
    let run = hashpyc("compile", &["app", "shared"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("Compiled 2 files") && run.stderr.contains("(2 already fresh)"),
        "{}",
        run.stderr
    );
    let run = hashpyc("check", &["--all", "app", "shared"]);
    run.assert_code(0);
    let want: Vec<String> = spellings.iter().map(|s| format!("{:<11}{s}", "ok")).collect();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), want, "{}", run.stderr);
    let mut pycs: Vec<PathBuf> =
        spellings.iter().map(|s| pyc(s).strip_prefix(&mirror).unwrap().to_path_buf()).collect();
    pycs.sort();
    assert_eq!(harness::files_with_suffix(&mirror, ".pyc"), pycs);
    // Each pyc is py_compile's for its spelling (on 3.8-3.10 the same code: see
    // compile::byte_identity_with_py_compile), and embeds that spelling's path.
    let sources: Vec<PathBuf> = spellings.iter().map(PathBuf::from).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, None);
    let ref_dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for (i, s) in spellings.iter().enumerate() {
        let ref_path = ref_dir.path().join(format!("{i}.pyc"));
        std::fs::write(&ref_path, refs[i].as_ref().expect("py_compile compiled it")).unwrap();
        lines.push_str(&format!(
            "{}\t{}\t{}\n",
            pyc(s).display(),
            ref_path.display(),
            tree.path(s).display()
        ));
    }
    let exact = py.minor >= (3, 11);
    let mut cmd = py.cmd();
    cmd.args(["-I", "-c", crate::compile::VERIFY, if exact { "1" } else { "0" }]).current_dir(tree.root());
    let out = crate::compile::run_with_stdin(cmd, lines.as_bytes());
    let same = if exact { "same " } else { "" };
    assert!(
        out.lines().count() == 4 && out.lines().all(|l| l.starts_with(same) || l.starts_with("equal-code ")),
        "{}: {out}",
        py.label()
    );
    let embedded = py.run(
        &["-I", "-c", "import marshal, sys\nfor p in sys.argv[1:]:\n    print(marshal.loads(open(p, 'rb').read()[16:]).co_filename)"]
            .into_iter()
            .map(String::from)
            .chain(spellings.iter().map(|s| pyc(s).display().to_string()))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        tree.root(),
    );
    assert_eq!(embedded.lines().collect::<Vec<_>>(), spellings);
    // CPython importing through the link under PYTHONPYCACHEPREFIX finds them: it writes
    // nothing there.
    let before = pycs_with_bytes(&mirror);
    let out = py
        .cmd()
        .args(["-c", "import common.h\nprint(common.h.__spec__.cached)\nprint(common.__spec__.cached)"])
        .env("PYTHONPYCACHEPREFIX", prefix.root())
        .current_dir(tree.path("app"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cached = String::from_utf8(out.stdout).unwrap();
    let want = format!("{}\n{}\n", pyc("app/common/h.py").display(), pyc("app/common/__init__.py").display());
    assert_eq!(cached, want);
    assert_eq!(pycs_with_bytes(&mirror), before, "{}: the import wrote pycs", py.label());
});

// With --follow under a pycache prefix, each spelling is walked, but none through a link to
// a directory on its own path: two links to `lib` (`a/x`, `b/y`) give two more spellings of
// its files, each compiled once, and `lib`'s links back (`lib/back` → `..`, `lib/to_a` →
// `../a`, whose `x` leads to `lib` again) end where they would lead to a directory the
// spelling already passed through, each such link noted once. Only `lib/m.py` and
// `a/n.py` were written. `__pycache__` (one per directory, walked once) and a prefix
// without --follow are as before.
per_python!(follow_under_a_pycache_prefix_stops_at_links_back, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("lib/m.py", "m = 1\n");
    tree.write("a/n.py", "n = 1\n");
    std::fs::create_dir(tree.path("b")).unwrap();
    for (link, to) in [("a/x", "../lib"), ("b/y", "../lib"), ("lib/back", ".."), ("lib/to_a", "../a")] {
        std::os::unix::fs::symlink(to, tree.path(link)).unwrap();
    }
    let notes_of = |stderr: &str| {
        stderr.lines().filter(|l| l.starts_with("note:")).map(str::to_string).collect::<Vec<_>>()
    };
    let note = |link: &str, to: &str, ancestor: &str| {
        format!(
            "note: `{link}`: symbolic link to `{to}`, a directory containing it (`{ancestor}`); not followed (its files are walked there)"
        )
    };
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let pycs_of = |rels: &[&str]| {
        rels.iter()
            .map(|r| {
                let p = Path::new(r);
                p.parent().unwrap().join(format!("{}.{tag}.pyc", p.file_stem().unwrap().to_str().unwrap()))
            })
            .collect::<Vec<_>>()
    };
    let prefix = Tree::new();
    let mirror = prefix_mirror(&prefix, &tree);
    let hashpyc =
        |args: &[&str]| tree.hashpyc().args(args).arg("--pycache-prefix").arg(prefix.root()).python(py).run();
    let spellings = ["a/n.py", "a/x/m.py", "b/y/m.py", "b/y/to_a/n.py", "lib/m.py", "lib/to_a/n.py"];
    let notes =
        [note("a/x/to_a", "../a", "a"), note("lib/back", "..", "."), note("lib/to_a/x", "../lib", "lib")];
    let run = hashpyc(&["compile", "-L"]);
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 6 files"), "{}", run.stderr);
    assert_eq!(notes_of(&run.stderr), notes, "{}", run.stderr);
    assert_eq!(harness::files_with_suffix(&mirror, ".pyc"), pycs_of(&spellings));
    let run = hashpyc(&["check", "-L", "--all"]);
    run.assert_code(0);
    let want: Vec<String> = spellings.iter().map(|s| format!("{:<11}{s}", "ok")).collect();
    assert_eq!(run.stdout.lines().collect::<Vec<_>>(), want, "{}", run.stderr);
    assert_eq!(notes_of(&run.stderr), notes, "{}", run.stderr);
    // Without --follow: the two directories, under the prefix.
    let plain = Tree::new();
    let run = tree.hashpyc().args(["compile", "--pycache-prefix"]).arg(plain.root()).python(py).run();
    run.assert_code(0);
    assert_eq!(notes_of(&run.stderr), Vec::<String>::new());
    assert_eq!(
        harness::files_with_suffix(&prefix_mirror(&plain, &tree), ".pyc"),
        pycs_of(&["a/n.py", "lib/m.py"])
    );
    // In `__pycache__`, each directory walked once, the link to an ancestor noted.
    let run = tree.hashpyc().args(["compile", "-L"]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 2 files"), "{}", run.stderr);
    assert_eq!(notes_of(&run.stderr), [note("lib/back", "..", ".")]);
    let pycache = |r: &str| {
        Path::new(r).parent().unwrap().join("__pycache__").join(pycs_of(&[r])[0].file_name().unwrap())
    };
    assert_eq!(tree.pycs(), [pycache("a/n.py"), pycache("lib/m.py")]);
});

// `--respect-gitignore` and `--skip-hidden` never enter a directory they skip: it is counted
// as a directory, its files are not (they were, by walking every skipped directory in full,
// so a large ignored `node_modules` cost as much as walking it, and a hung mount inside one
// hung the run). Observed with strace: no open of anything under the skipped directories.
#[test]
fn skipped_directories_are_counted_not_entered() {
    let Some(py) = harness::any_python("skipped_directories_are_counted_not_entered") else { return };
    let tree = Tree::new();
    tree.write(".ignore", "node_modules/\nign.py\n");
    for f in ["src/a.py", "ign.py", ".h.py", "node_modules/x/n.py", "node_modules/x/m.py", ".venv/lib/v.py"] {
        tree.write(f, "x = 1\n");
    }
    let both = ["--respect-gitignore", "--skip-hidden"];
    let counts =
        "skipped 1 file and 1 directory by --respect-gitignore, 1 file and 1 directory by --skip-hidden";
    let run = tree.hashpyc().arg("compile").args(both).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 1 file") && run.stderr.contains(counts), "{}", run.stderr);
    for (flag, want) in [
        ("--respect-gitignore", "skipped 1 file and 1 directory by --respect-gitignore)"),
        ("--skip-hidden", "skipped 1 file and 1 directory by --skip-hidden)"),
    ] {
        let run = tree.hashpyc().args(["check", flag]).python(py).run();
        assert!(run.stderr.contains(want), "{flag}: {}", run.stderr);
    }
    let run = tree.hashpyc().arg("check").args(both).args(["--format", "json"]).python(py).run();
    run.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let fields =
        ["sources", "skipped_ignored", "skipped_ignored_dirs", "skipped_hidden", "skipped_hidden_dirs"];
    assert_eq!(fields.map(|f| summary[f].as_u64()), [Some(1); 5], "{summary}");
    let Ok(strace) = std::process::Command::new("strace").arg("-V").output() else {
        harness::visible("SKIPPED part of skipped_directories_are_counted_not_entered: no strace");
        return;
    };
    assert!(strace.status.success());
    for cmd in ["compile", "check"] {
        let log = tree.path("strace.log");
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .arg(cmd)
            .args(both)
            .arg("--python")
            .arg(&py.path)
            .current_dir(tree.root())
            .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
            .env("HASHPYC_NO_CONFIG", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let trace = std::fs::read_to_string(&log).unwrap();
        let entered: Vec<&str> =
            trace.lines().filter(|l| l.contains("node_modules") || l.contains(".venv")).collect();
        assert!(entered.is_empty(), "{cmd}: {entered:#?}");
        assert!(trace.contains("\"./src\""), "{cmd}: the trace shows the walk: {trace}");
    }
}

per_python!(dangling_symlinks_warn_with_and_without_follow, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.write("sub/n.py", "y = 2\n");
    std::os::unix::fs::symlink("nowhere", tree.path("README")).unwrap();
    std::os::unix::fs::symlink("nowhere.py", tree.path("sub/gone.py")).unwrap();
    // The interpreter has nothing to import there either.
    assert!(!py.cmd().args(["-c", "import sub.gone"]).current_dir(tree.root()).status().unwrap().success());
    for follow in [&[][..], &["-L"][..]] {
        for cmd in ["compile", "check"] {
            let run = tree.hashpyc().arg(cmd).args(follow).python(py).arg(".").run();
            run.assert_code(0);
            let warnings: Vec<&str> = run.stderr.lines().filter(|l| !l.starts_with(['C', ' '])).collect();
            assert_eq!(
                warnings,
                ["warning: `./sub/gone.py`: dangling symbolic link"],
                "{cmd} {follow:?}: {}",
                run.stderr
            );
        }
    }
});

// An ignore-file line that is not UTF-8 ends the `ignore` crate's reading of that file,
// silently: the rules after it were dropped with no message (git ignores `s.py` and `t.py`
// here, `--respect-gitignore` only `s.py`). Now a warning names the file and the line, for
// compile and check, in text and JSON, and changes no exit status.
#[test]
fn an_ignore_file_line_that_is_not_utf8_is_named() {
    let Some(py) = harness::any_python("an_ignore_file_line_that_is_not_utf8_is_named") else { return };
    let tree = Tree::new();
    tree.write("sub/.gitignore", b"s.py\nd\xe9\nt.py\n");
    for f in ["sub/s.py", "sub/t.py", "sub/u.py"] {
        tree.write(f, "x = 1\n");
    }
    let warning =
        "`sub/.gitignore`: line 2 is not UTF-8: its rules and those of every line after it are not applied";
    let run = tree.hashpyc().args(["compile", "--respect-gitignore"]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.starts_with(&format!("warning: {warning}\n")), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--respect-gitignore", "--format", "json"]).python(py).run();
    run.assert_code(0);
    let notice: serde_json::Value = serde_json::from_str(run.stdout.lines().next().unwrap()).unwrap();
    assert_eq!((notice["type"].as_str(), notice["message"].as_str()), (Some("notice"), Some(warning)));
    // A file that is UTF-8 says nothing.
    tree.write("sub/.gitignore", "s.py\nt.py\n");
    let run = tree.hashpyc().args(["check", "--respect-gitignore"]).python(py).run();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

// The progress bar on a terminal (faked by util-linux `script`): under --color never no
// colour escape (the bar's message was dim, `ESC[2m`, whatever --color), and the message
// once per redraw (the template showed it twice: `Compiling [==> ] 22/300 Compiling`). Every
// frame drawn has its label and count: the first two had none, then no label
// (`           [      ] 0/300`), as each of indicatif's setters drew one. Beside the bar,
// the bytes it fills by, then the count: `Compiling [==>   ] 3.10 KiB/9.20 KiB (22/300)`.
#[test]
fn progress_bar_is_plain_under_color_never() {
    let Some(py) = crate::harness::any_python("progress_bar_is_plain_under_color_never") else { return };
    if std::process::Command::new("script").arg("--version").output().is_err() {
        crate::harness::visible("SKIPPED options::progress_bar_is_plain_under_color_never: no `script`");
        return;
    }
    let (tree, state) = (Tree::new(), Tree::new());
    crate::harness::write_modules(&tree, "src", 300);
    let line = format!(
        "'{}' compile -j1 --color never --python '{}' src",
        env!("CARGO_BIN_EXE_hashpyc"),
        py.path.display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qc", &line]).arg(tree.path("typescript")).current_dir(tree.root());
    cmd.env("HASHPYC_STATE_DIR", state.root()).env_remove("NO_COLOR").env_remove("HASHPYC_COLOR");
    crate::harness::guard_network(&mut cmd);
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("script");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let typescript = String::from_utf8_lossy(&tree.read("typescript")).into_owned();
    assert!(typescript.contains("Compiling ["), "no bar drawn: {typescript:?}");
    assert!(!typescript.contains("\x1b[2m") && !typescript.contains("\x1b[0m"), "{typescript:?}");
    for redraw in typescript.split('\r') {
        assert!(redraw.matches("Compiling").count() <= 1, "{redraw:?}");
        // A frame: indicatif clears the line (`ESC[2K`) and draws the bar.
        let frame = redraw.replace("\x1b[2K", "");
        if redraw.contains("\x1b[2K") && frame.contains(" [") {
            assert!(frame.contains("Compiling [") && frame.contains("/300"), "{redraw:?}");
            // The bytes the bar fills by, then the count of files (the count alone stood
            // beside a bar filled by bytes, the two disagreeing).
            assert!(frame.contains("B/") && frame.contains("B (") && frame.contains("/300)"), "{redraw:?}");
        }
    }
    // The count of files beside the bar (its fill is their bytes, see report::Progress).
    assert!(typescript.contains("/300"), "{typescript:?}");
    // Nothing to compile draws no bar (it drew one full, reading 0/0).
    std::fs::remove_file(tree.path("typescript")).unwrap();
    let out = cmd.output().expect("script");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let typescript = String::from_utf8_lossy(&tree.read("typescript")).into_owned();
    assert!(!typescript.contains("Compiling [") && !typescript.contains("0/0"), "{typescript:?}");
    assert!(typescript.contains("Compiled 0 files"), "{typescript:?}");
}
