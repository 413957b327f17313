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

pub const VERIFY: &str = r#"
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

pub fn pyc_of(tree: &Tree, py: &Python, rel: &str) -> PathBuf {
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

/// `hashpyc compile --python WRAPPER ARGS PATHS` with its own state directory (so what it
/// remembers is this test's), for the tests that count the interpreter's starts.
fn counted_compile(tree: &Tree, state: &Path, wrapper: &Path, args: &[&str], paths: &[&str]) -> harness::Run {
    tree.hashpyc()
        .env("HASHPYC_STATE_DIR", state)
        .args(["compile", "--python"])
        .arg(wrapper)
        .args(args)
        .args(paths)
        .run()
}

per_python!(noop_run_starts_no_python, |py: &Python| {
    let tree = Tree::new();
    fixture(&tree);
    let (wrapper, starts) = tree.counting_python(py);
    let cache = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| counted_compile(&tree, cache.path(), &wrapper, args, &["pkg", "bom.py"]);
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

// Files of the state directory that other users could write (a state directory shared with
// them, or one on a filesystem that keeps no Unix permissions, as vfat, exFAT or a CIFS mount
// with `uid=`, where every file shows so) are not taken, and say so: one warning naming the
// directory, the file and why, and the way out. The run writes them anew, private, so the next
// run starts no Python again and says nothing. As root, files of another user (nobody) too.
per_python!(state_files_others_could_write_are_refused_with_a_warning, |py: &Python| {
    use std::os::unix::fs::PermissionsExt;
    let tree = Tree::new();
    tree.write("m.py", "X = 1\n");
    let (wrapper, starts) = tree.counting_python(py);
    let state = tempfile::tempdir().unwrap();
    let run = || counted_compile(&tree, state.path(), &wrapper, &["-v"], &["m.py"]);
    let files = || {
        let mut out = Vec::new();
        let mut stack = vec![state.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let path = e.unwrap().path();
                if path.is_dir() {
                    stack.push(path.clone())
                }
                out.push(path);
            }
        }
        out
    };
    // A run after a run starts no Python and warns of nothing.
    run().assert_code(0);
    let quiet = run();
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.stderr);
    let before = starts();
    let dir = state.path().display().to_string();
    let warned = |run: &harness::Run, why: &str| {
        let head = format!("warning: the state directory `{dir}` holds files other users could have written");
        assert_eq!(run.stderr.matches(&head).count(), 1, "one warning:\n{}", run.stderr);
        assert!(run.stderr.contains(&format!("(`{dir}/interpreter-")), "the probe named:\n{}", run.stderr);
        assert!(run.stderr.contains(why), "{why}:\n{}", run.stderr);
        assert!(run.stderr.contains("HASHPYC_NO_STATE=1"), "{}", run.stderr);
    };
    // `chmod -R a+w`: each file and directory writable by all.
    for path in files() {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode | 0o022)).unwrap();
    }
    let refused = run();
    refused.assert_code(0);
    warned(&refused, ".json` is writable by other users, mode 622");
    assert!(starts() > before, "the probe not taken was made again:\n{}", refused.stderr);
    let after = starts();
    let healed = run();
    healed.assert_code(0);
    assert!(!healed.stderr.contains("warning"), "written anew, private:\n{}", healed.stderr);
    assert_eq!(starts(), after, "a run after one that wrote the files anew started Python");
    if !harness::is_root() {
        return harness::visible(
            "SKIPPED compile::state_files_others_could_write_are_refused_with_a_warning (files of another \
             user): not root",
        );
    }
    for path in files().iter().filter(|p| p.is_file()) {
        std::os::unix::fs::chown(path, Some(65534), None).unwrap();
    }
    let foreign = run();
    foreign.assert_code(0);
    warned(&foreign, ".json` belongs to uid 65534, not to this user");
    let healed = run();
    assert!(!healed.stderr.contains("warning"), "written anew, this user's:\n{}", healed.stderr);
});

/// A loop device's exFAT filesystem mounted through FUSE with `uid=`: every file and
/// directory on it shows that owner, whoever wrote it. Unmounted and detached when dropped.
struct ExfatMount {
    dir: tempfile::TempDir,
    device: String,
}

impl ExfatMount {
    /// Mounted with `options`; None, said, where that cannot be done (not root, no
    /// `losetup`, `mkfs.exfat` or `mount.exfat-fuse`, no loop device or FUSE).
    fn new(options: &str, test: &str) -> Option<ExfatMount> {
        let skip = |why: &str| harness::visible(&format!("SKIPPED {test}: {why}"));
        if !harness::is_root() {
            skip("needs root to mount a filesystem");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("exfat.img");
        std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
        let ok = |cmd: &mut std::process::Command| cmd.output().ok().filter(|o| o.status.success());
        if ok(std::process::Command::new("mkfs.exfat").arg(&image)).is_none() {
            skip("no mkfs.exfat");
            return None;
        }
        let Some(out) = ok(std::process::Command::new("losetup").args(["-f", "--show"]).arg(&image)) else {
            skip("no loop device (losetup)");
            return None;
        };
        let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let mounted = ExfatMount { dir, device };
        let mnt = mounted.dir.path().join("mnt");
        if ok(std::process::Command::new("mount.exfat-fuse").args(["-o", options, &mounted.device]).arg(&mnt))
            .is_none()
        {
            skip("mount.exfat-fuse cannot mount here");
            return None;
        }
        Some(mounted)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for ExfatMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.path()).status();
        let _ = std::process::Command::new("losetup").args(["-d", &self.device]).status();
    }
}

// The state directory's "belongs to uid N" warning gave no hint where the filesystem ignores
// permissions (exFAT through FUSE or a CIFS mount with `uid=`, where every directory shows the
// owner the mount names), and told the user to set HASHPYC_STATE_DIR "to a writable
// directory", which it was; the warning for a file of it already said so. Now the directory's
// says it too, with the mount option; another user's directory on a filesystem that keeps
// permissions gets no such hint.
#[test]
fn a_state_directory_of_another_user_tells_a_filesystem_without_permissions() {
    let test = "compile::a_state_directory_of_another_user_tells_a_filesystem_without_permissions";
    let Some(py) = harness::any_python(test) else { return };
    let Some(mount) = ExfatMount::new("uid=65534,gid=65534,umask=022", test) else { return };
    let tree = Tree::new();
    tree.write("m.py", "X = 1\n");
    let state = mount.path().join("state");
    std::fs::create_dir(&state).unwrap();
    assert_eq!(std::fs::metadata(&state).unwrap().uid(), 65534, "the mount shows its uid=");
    let check = |state: &Path| tree.hashpyc().env("HASHPYC_STATE_DIR", state).arg("check").python(py).run();
    let run = check(&state);
    run.assert_code(1);
    let want = format!(
        "warning: the state directory `{}` cannot be used (it belongs to uid 65534, not to this user; its \
         filesystem ignores Unix permissions (a file created there with mode 600 shows uid 65534, not this \
         user's))",
        state.display()
    );
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    assert!(run.stderr.contains("mount this one with `uid=` this user's"), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0, "the file that told was removed");
    // Another user's directory where permissions are kept: no filesystem to blame.
    let other = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(other.path(), Some(65534), None).unwrap();
    let run = check(other.path());
    run.assert_code(1);
    assert!(run.stderr.contains("(it belongs to uid 65534, not to this user)"), "{}", run.stderr);
    assert!(!run.stderr.contains("ignores Unix permissions"), "{}", run.stderr);
}

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
    let run = |args: &[&str]| counted_compile(&tree, cache.path(), &wrapper, args, &["good.py", "bad.py"]);
    let first = run(&[]);
    first.assert_code(1);
    let error =
        first.stderr.lines().find(|l| l.starts_with("bad.py:1:")).expect("error reported").to_string();
    let n = starts();
    let second = run(&[]);
    second.assert_code(1);
    assert!(second.stderr.contains(&error), "the same error again:\n{}", second.stderr);
    // One start, the worker confirming the counting launcher's remembered probe (a named
    // interpreter starts none: a_remembered_failure_of_a_named_interpreter_starts_no_python),
    // and nothing compiled: the same run in JSON says the failure is remembered.
    assert_eq!(starts(), n + 1, "Python started but the confirming worker:\n{}", second.stderr);
    let want = format!("Compiled 0 files for CPython {} (1 already fresh, 1 failed)", py.version);
    assert!(second.stderr.contains(&want), "{}", second.stderr);
    tree.remembered_through_launcher(cache.path(), (&wrapper, &starts), &["good.py", "bad.py"])
        .assert_code(1);
    // --force, other levels, or a changed source compile again.
    let n = starts();
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

// A remembered failure of a launcher script whose probe is remembered is reported once a
// worker confirms the probe (the settings it ran with then, as remembered_failures_start_no_python
// counts through such a script); an interpreter named by its own path is no launcher, its
// probe cannot go stale behind its back, and a remembered failure of it starts no Python:
// strace sees no program started but hashpyc itself, with or without a fresh pyc beside.
per_python!(a_remembered_failure_of_a_named_interpreter_starts_no_python, |py: &Python| {
    let test = "compile::a_remembered_failure_of_a_named_interpreter_starts_no_python";
    if !harness::strace_or_skip(test) {
        return;
    }
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("bad.py", "def f(:\n    pass\n");
    let state = tempfile::tempdir().unwrap();
    let log = tree.path("execve.log");
    let run = |strace: bool| {
        let cmd = tree
            .hashpyc()
            .env("HASHPYC_STATE_DIR", state.path())
            .args(["compile", "--format", "json", "--python"])
            .arg(&py.path)
            .args(["good.py", "bad.py"]);
        let log = log.to_str().unwrap();
        if strace {
            cmd.run_by("strace", &["-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", log])
        } else {
            cmd
        }
        .run()
    };
    let first = run(false);
    first.assert_code(1);
    let second = run(true);
    second.assert_code(1);
    let lines = json_lines(&second.stdout);
    let failure =
        lines.iter().find(|l| l["type"] == "failure").unwrap_or_else(|| panic!("{}", second.stdout));
    assert_eq!((&failure["path"], &failure["remembered"]), (&"bad.py".into(), &true.into()), "{failure}");
    let summary = lines.iter().find(|l| l["type"] == "summary").expect("a summary");
    assert_eq!(
        (&summary["compiled"], &summary["fresh"], &summary["failed"]),
        (&0.into(), &1.into(), &1.into())
    );
    // Each program started, by the path it was started by: hashpyc alone.
    let trace = std::fs::read_to_string(&log).unwrap();
    let started: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.split_once("execve(\""))
        .map(|(_, rest)| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(started, [env!("CARGO_BIN_EXE_hashpyc")], "{trace}");
});

// A failure was remembered for the levels compiled together only: after `compile -o 0`
// failed on a source, `compile -o 0 -o 1` started Python to fail again and `compile -n -o 0
// -o 1` listed the file as `compile`, exit 0. The worker now says which level failed, and
// a run whose levels reach it through levels that compiled fails from memory; never one
// whose levels skip it: on 3.7, `if __debug__: break` fails at level 0 only, so `-o 1` is
// compiled, and passes or fails as CPython's own compile at that level does.
per_python!(a_failure_is_remembered_for_the_levels_that_reach_it, |py: &Python| {
    let tree = Tree::new();
    tree.write("bad.py", "def f(:\n    pass\n");
    tree.write("debug.py", "if __debug__:\n    break\n");
    let (wrapper, starts) = tree.counting_python(py);
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str], files: &[&str]| counted_compile(&tree, state.path(), &wrapper, args, files);
    run(&["-o", "0"], &["bad.py", "debug.py"]).assert_code(1);
    let n = starts();
    let dry = run(&["-n", "-o", "0", "-o", "1"], &["bad.py"]);
    dry.assert_code(1);
    assert!(dry.stdout.starts_with("fails    bad.py"), "{}", dry.stdout);
    assert_eq!(starts(), n, "a dry run starts no Python");
    // A failure at level 0 is that of levels 0 and 1: no Python started but the worker
    // confirming the counting launcher's remembered probe, nothing compiled.
    let both = tree.remembered_through_launcher(
        state.path(),
        (&wrapper, &starts),
        &["-o", "0", "-o", "1", "bad.py"],
    );
    both.assert_code(1);
    let failures: Vec<serde_json::Value> =
        json_lines(&both.stdout).into_iter().filter(|l| l["type"] == "failure").collect();
    assert_eq!(failures.len(), 1, "{}", both.stdout);
    assert_eq!((&failures[0]["kind"], &failures[0]["remembered"]), (&"SyntaxError".into(), &true.into()));
    // `check` says the source does not compile where a compile found so (level 0), not of a
    // level no compile reached (it said so of `[opt-1]` too).
    let check = tree
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.path())
        .args(["check", "-o", "0", "-o", "1", "--python"])
        .arg(&wrapper)
        .arg("bad.py")
        .run();
    check.assert_code(1);
    let lines: Vec<&str> = check.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", check.stdout);
    assert!(
        lines[0].starts_with("missing    bad.py  [opt-0]: the source does not compile: SyntaxError"),
        "{}",
        check.stdout
    );
    assert_eq!(lines[1], "missing    bad.py  [opt-1]", "{}", check.stdout);
    // Level 1 alone was never compiled: compiled now, as CPython compiles it.
    let cpython_compiles = |file: &str| {
        let code =
            format!("compile(open('{file}', 'rb').read(), '{file}', 'exec', dont_inherit=True, optimize=1)");
        py.cmd().args(["-c", &code]).current_dir(tree.root()).output().unwrap().status.success()
    };
    for file in ["bad.py", "debug.py"] {
        let n = starts();
        let one = run(&["-o", "1"], &[file]);
        assert!(starts() > n, "{file}: level 1 compiled");
        let compiles = cpython_compiles(file);
        one.assert_code(if compiles { 0 } else { 1 });
        let stem = file.trim_end_matches(".py");
        let opt1 = tree.path(format!("__pycache__/{stem}.cpython-{}{}.opt-1.pyc", py.minor.0, py.minor.1));
        assert_eq!(opt1.is_file(), compiles, "{file}");
    }
});

// The same for files whose names are not UTF-8 (Latin-1 names in old tarballs): their
// failures and warnings are remembered too, so an unchanged tree starts no Python and
// `-W error` fails a warned file whose pyc is fresh.
per_python!(non_utf8_names_are_remembered, min = (3, 8), |py: &Python| {
    use std::os::unix::ffi::OsStrExt;
    let tree = Tree::new();
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    let warned = std::ffi::OsStr::from_bytes(b"w\xff.py");
    tree.write(bad, "def f(:\n    pass\n");
    tree.write(warned, "x = 1\nif x is 1:\n    pass\n");
    let (wrapper, starts) = tree.counting_python(py);
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| counted_compile(&tree, state.path(), &wrapper, args, &["."]);
    let first = run(&[]);
    first.assert_code(1);
    assert!(first.stderr.contains("SyntaxWarning"), "{}", first.stderr);
    // Remembered: no Python started but the worker confirming the counting launcher's
    // remembered probe, nothing compiled (the JSON twins of the text runs say so).
    let n = starts();
    let second = run(&[]);
    second.assert_code(1);
    assert!(second.stderr.contains("SyntaxError"), "the failure again:\n{}", second.stderr);
    assert_eq!(starts(), n + 1, "Python started but the confirming worker:\n{}", second.stderr);
    let json = tree.remembered_through_launcher(state.path(), (&wrapper, &starts), &["."]);
    json.assert_code(1);
    let n = starts();
    let strict = run(&["-W", "error"]);
    strict.assert_code(1);
    assert!(strict.stderr.contains("SyntaxWarning"), "{}", strict.stderr);
    assert!(strict.stderr.contains("2 failed"), "the warned file fails too:\n{}", strict.stderr);
    assert_eq!(starts(), n + 1, "Python started but the confirming worker:\n{}", strict.stderr);
    let json = tree.remembered_through_launcher(state.path(), (&wrapper, &starts), &["-W", "error", "."]);
    json.assert_code(1);
    let failures = json_lines(&json.stdout).into_iter().filter(|l| l["type"] == "failure").count();
    assert_eq!(failures, 2, "the warned file fails too:\n{}", json.stdout);
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

/// What `python -W error` makes of compiling each named file: `null` when it compiles,
/// else `[lineno, message, type]` of what it raises: a SyntaxError made from the warning
/// (3.8+), or on 3.7 the warning itself (no line number).
const W_ERROR_REF: &str = r#"
import sys, json
out = {}
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        source = f.read()
    try:
        compile(source, p, "exec", dont_inherit=True)
        out[p] = None
    except SyntaxError as e:
        out[p] = [e.lineno, e.msg, type(e).__name__]
    except Warning as e:
        out[p] = [None, str(e), type(e).__name__]
print(json.dumps(out))
"#;

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

fn w_error_reference(py: &Python, tree: &Tree, files: &[&str]) -> serde_json::Value {
    w_error_reference_at(py, tree, files, 0)
}

/// The interpreter's flags for an optimization level: what `compile()` then optimizes at.
fn optimize_flags(level: u8) -> &'static [&'static str] {
    match level {
        0 => &[],
        1 => &["-O"],
        _ => &["-OO"],
    }
}

/// [`w_error_reference`] at an optimization level: `python -W error -O` (or `-OO`).
fn w_error_reference_at(py: &Python, tree: &Tree, files: &[&str], level: u8) -> serde_json::Value {
    let out = py
        .cmd()
        .args(["-W", "error"])
        .args(optimize_flags(level))
        .args(["-c", W_ERROR_REF])
        .args(files)
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

const GATE_SOURCES: &[(&str, &str)] = &[
    // SyntaxWarning on every version.
    ("warn_assert.py", "x = 1\nassert (x, 'always true')\n"),
    // DeprecationWarning before 3.12, SyntaxWarning from 3.12: `python -W error` fails both.
    ("warn_escape.py", "x = 1\ny = '\\d'\n"),
    ("ok.py", "def f():\n    return 1\n"),
    ("pkg/ok2.py", "import os\nS = {'a', 'b'}\n"),
];

per_python!(warnings_as_errors_like_python_w_error, |py: &Python| {
    // Its own state directory: the memo is per run, and parallel tests would race on it.
    let state = Tree::new();
    let gated = Tree::new();
    let plain = Tree::new();
    for (rel, text) in GATE_SOURCES {
        gated.write(rel, text);
        plain.write(rel, text);
    }
    let files: Vec<&str> = GATE_SOURCES.iter().map(|(rel, _)| *rel).collect();
    let reference = w_error_reference(py, &gated, &files);
    let failing: Vec<&str> = files.iter().copied().filter(|f| !reference[*f].is_null()).collect();
    assert!(failing.contains(&"warn_assert.py"), "{reference}");

    let run = gated
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .arg("compile")
        .python(py)
        .args(["-W", "error", "--format", "json", "."])
        .run();
    run.assert_code(1);
    assert_eq!(run.stderr, "", "JSON mode prints no text");
    let lines = json_lines(&run.stdout);
    let failures: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "failure").collect();
    let mut failed_paths: Vec<&str> = failures.iter().map(|f| f["path"].as_str().unwrap()).collect();
    failed_paths.dedup();
    let expected: Vec<String> = failing.iter().map(|f| format!("./{f}")).collect();
    assert_eq!(failed_paths, expected, "{}", run.stdout);
    for f in &failures {
        let rel = f["path"].as_str().unwrap().trim_start_matches("./");
        // CPython raises on the first warning: hashpyc reports it (and any later ones).
        assert_eq!(f["warning"], true);
        if !reference[rel][0].is_null() {
            assert_eq!(f["line"], reference[rel][0], "{f}");
        }
        // 3.14+ shortens the invalid-escape message when it raises it as an error.
        let message =
            f["message"].as_str().unwrap().replace(" Such sequences will not work in the future.", "");
        assert_eq!(message, reference[rel][1].as_str().unwrap(), "{f}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["failed"], failing.len());
    assert_eq!(summary["compiled"], files.len() - failing.len());
    // The summary counts what was printed: the warnings are failures here, not warnings.
    let warning_objects = lines.iter().filter(|l| l["type"] == "warning").count();
    assert_eq!(summary["warnings"], warning_objects, "{}", run.stdout);
    // Like `python -W error -m py_compile`: nothing written for a failing file, and the
    // other files' pycs are those of a run without -W error.
    plain.hashpyc().arg("compile").python(py).args(["-q", "."]).run().assert_code(0);
    for rel in &files {
        let ours = pyc_of(&gated, py, rel);
        if failing.contains(rel) {
            assert!(!ours.exists(), "{rel}: no pyc under -W error");
        } else {
            assert_eq!(
                std::fs::read(&ours).unwrap(),
                std::fs::read(pyc_of(&plain, py, rel)).unwrap(),
                "{rel}"
            );
        }
    }
    // Not remembered as a failure: a run without -W error compiles everything ...
    gated
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .arg("compile")
        .python(py)
        .args(["-q", "."])
        .run()
        .assert_code(0);
    for rel in &files {
        assert_eq!(
            std::fs::read(pyc_of(&gated, py, rel)).unwrap(),
            std::fs::read(pyc_of(&plain, py, rel)).unwrap()
        );
    }
    // ... and its fresh pycs do not let a -W error run pass: the warnings are remembered.
    let again = gated
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .arg("compile")
        .python(py)
        .args(["--warnings-as-errors", "."])
        .run();
    again.assert_code(1);
    for rel in &failing {
        assert!(again.stderr.contains(&format!("{rel}:2: ")), "{rel}: {}", again.stderr);
    }
    assert!(again.stderr.contains(&format!("{} failed", failing.len())), "{}", again.stderr);
    // Nor does losing the state directory (a new CI runner, another HASHPYC_STATE_DIR):
    // the fresh sources whose warnings are not remembered are compiled again to learn
    // them, and nothing is written.
    let pycs_now = || -> Vec<(Vec<u8>, std::time::SystemTime)> {
        let read =
            |p: PathBuf| (std::fs::read(&p).unwrap(), std::fs::metadata(&p).unwrap().modified().unwrap());
        files.iter().map(|rel| read(pyc_of(&gated, py, rel))).collect()
    };
    let before = pycs_now();
    let (lost, tools) = (Tree::new(), Tree::new());
    let (wrapper, starts) = tools.counting_python(py);
    let lost_run = counted_compile(&gated, lost.root(), &wrapper, &["-W", "error"], &["."]);
    lost_run.assert_code(1);
    for rel in &failing {
        assert!(lost_run.stderr.contains(&format!("{rel}:2: ")), "{rel}: {}", lost_run.stderr);
    }
    let ok = files.len() - failing.len();
    let want =
        format!("Compiled 0 files for CPython {} ({ok} already fresh, {} failed)", py.version, failing.len());
    assert!(lost_run.stderr.contains(&want), "{}", lost_run.stderr);
    assert!(pycs_now() == before, "a run that only learns warnings writes nothing");
    // What it learned is remembered, the warnings and their absence: no Python next time.
    let started = starts();
    let remembered = counted_compile(&gated, lost.root(), &wrapper, &["-W", "error"], &["."]);
    remembered.assert_code(1);
    assert_eq!(starts(), started, "{}", remembered.stderr);
    assert!(remembered.stderr.contains(&want), "{}", remembered.stderr);
    // Source edited to drop the warnings: passes.
    for rel in &failing {
        gated.write(rel, "x = 1\n");
    }
    gated
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .arg("compile")
        .python(py)
        .args(["-W", "error", "."])
        .run()
        .assert_code(0);
});

// The `-W error` run that learns a file's warnings writes no pyc for it; the next `-W error`
// run fails it from memory as the dry run says, without starting Python, until its source
// changes.
per_python!(remembered_warnings_fail_a_file_without_a_pyc_without_python, |py: &Python| {
    let (tree, state, tools) = (Tree::new(), Tree::new(), Tree::new());
    // A SyntaxWarning from 3.12, a DeprecationWarning before: either fails under -W error.
    tree.write("w.py", "x = \"\\d\"\n");
    let (wrapper, starts) = tools.counting_python(py);
    let json = ["-W", "error", "--format", "json"];
    let failure_of = |run: &harness::Run| -> serde_json::Value {
        let lines = json_lines(&run.stdout);
        let failures: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "failure").collect();
        assert_eq!(failures.len(), 1, "{}", run.stdout);
        failures[0].clone()
    };
    let first = counted_compile(&tree, state.root(), &wrapper, &json, &["w.py"]);
    first.assert_code(1);
    let learned = failure_of(&first);
    assert_eq!((&learned["warning"], &learned["remembered"]), (&true.into(), &false.into()), "{learned}");
    assert!(!pyc_of(&tree, py, "w.py").exists(), "no pyc under -W error");
    let dry =
        counted_compile(&tree, state.root(), &wrapper, &["-n", "-W", "error", "--format", "json"], &["w.py"]);
    let plan = &json_lines(&dry.stdout)[0];
    assert_eq!((&plan["action"], &plan["remembered"]), (&"fails".into(), &true.into()), "{plan}");
    let started = starts();
    let again = counted_compile(&tree, state.root(), &wrapper, &json, &["w.py"]);
    again.assert_code(1);
    assert_eq!(starts(), started, "a remembered failure started Python: {}", again.stdout);
    let remembered = failure_of(&again);
    assert_eq!(remembered["remembered"], true, "{remembered}");
    for field in ["kind", "message", "line", "warning"] {
        assert_eq!(remembered[field], learned[field], "{field}");
    }
    let text = counted_compile(&tree, state.root(), &wrapper, &["-W", "error"], &["w.py"]);
    text.assert_code(1);
    assert_eq!(starts(), started, "{}", text.stderr);
    assert!(
        text.stderr.contains("w.py:1: ") && text.stderr.contains("(remembered; an error under -W error)"),
        "{}",
        text.stderr
    );
    assert!(!pyc_of(&tree, py, "w.py").exists());
    // Another source: compiled again (its warnings are learned anew).
    tree.write("w.py", "x = \"\\d\"\ny = 1\n");
    let changed = counted_compile(&tree, state.root(), &wrapper, &json, &["w.py"]);
    changed.assert_code(1);
    assert!(starts() > started, "a changed source is compiled again");
    assert_eq!(failure_of(&changed)["remembered"], false);
});

/// The warnings CPython's own `compile()` raises for each file before its error (every
/// category, each once, in order): `[[category, line, message], ...]` per file.
const WARNINGS_BEFORE_ERROR_REF: &str = r#"
import json, sys, warnings
out = {}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        source = f.read()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            compile(source, path, "exec", dont_inherit=True)
            raise SystemExit(path + " compiled")
        except SyntaxError:
            pass
    seen = []
    for w in caught:
        item = [w.category.__name__, w.lineno, str(w.message)]
        if item not in seen:
            seen.append(item)
    out[path] = seen
print(json.dumps(out))
"#;

// Warnings raised before a compile error are reported with it, as `python -m py_compile`
// prints them before the error, in text and JSON alike, and again when the failure is
// reported from memory.
per_python!(warnings_before_a_compile_error_are_reported, |py: &Python| {
    let (tree, state) = (Tree::new(), Tree::new());
    let files = ["e.py", "fin.py"];
    tree.write("e.py", "x = \"\\d\"\nassert (x, \"m\")\nbreak\n");
    // A SyntaxWarning from 3.14.
    tree.write("fin.py", "def f():\n    try:\n        pass\n    finally:\n        return 1\nbreak\n");
    let out = py
        .cmd()
        .args(["-c", WARNINGS_BEFORE_ERROR_REF])
        .args(files)
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!reference["e.py"].as_array().unwrap().is_empty(), "{reference}");
    if py.minor >= (3, 14) {
        assert!(!reference["fin.py"].as_array().unwrap().is_empty(), "{reference}");
    }
    // A first run (a state directory of its own) compiles; a run after one remembers.
    let run = |args: &[&str], remembered: bool| {
        let own = Tree::new();
        let dir = if remembered { state.root() } else { own.root() };
        tree.hashpyc().env("HASHPYC_STATE_DIR", dir).arg("compile").python(py).args(args).args(files).run()
    };
    run(&["-q"], true).assert_code(1);
    for remembered in [false, true] {
        let json = run(&["--format", "json"], remembered);
        json.assert_code(1);
        let lines = json_lines(&json.stdout);
        for file in files {
            let failures: Vec<_> =
                lines.iter().filter(|l| l["type"] == "failure" && l["path"] == file).collect();
            assert_eq!(failures.len(), 1, "{}", json.stdout);
            assert_eq!(failures[0]["remembered"], remembered, "{}", json.stdout);
            let got: Vec<serde_json::Value> = lines
                .iter()
                .filter(|l| l["type"] == "warning" && l["path"] == file)
                .map(|l| serde_json::json!([l["kind"], l["line"], l["message"]]))
                .collect();
            assert_eq!(serde_json::Value::from(got), reference[file], "{file}: {}", json.stdout);
        }
        let count = lines.iter().filter(|l| l["type"] == "warning").count();
        assert_eq!(lines.last().unwrap()["warnings"], count, "{}", json.stdout);
        // Text: each warning but deprecations (shown under -v), as Python's default filters.
        for verbose in [false, true] {
            let text = run(if verbose { &["-v"] } else { &[] }, remembered);
            text.assert_code(1);
            for file in files {
                for w in reference[file].as_array().unwrap() {
                    let line =
                        format!("{file}:{}: {}: {}", w[1], w[0].as_str().unwrap(), w[2].as_str().unwrap());
                    let shown = verbose || !w[0].as_str().unwrap().ends_with("DeprecationWarning");
                    assert_eq!(text.stderr.contains(&line), shown, "{line}:\n{}", text.stderr);
                }
            }
        }
    }
});

// A source that does not compile, whose compile raised warnings first: a later run, which
// reports the failure from the state directory without starting Python, shows what the run
// that compiled it showed, in text (-v: deprecations too), JSON and GitHub annotations,
// `remembered` and the time aside; each shows the warnings CPython's own compile() records,
// before the failure, as `python -m py_compile` prints them before the SyntaxError.
per_python!(a_remembered_failure_shows_what_its_compile_showed, |py: &Python| {
    let tree = Tree::new();
    tree.write("e.py", "x = \"\\d\"\nassert (x, \"m\")\nbreak\n");
    let reference = py.run(&["-c", WARNINGS_BEFORE_ERROR_REF, "e.py"], tree.root());
    let reference: serde_json::Value = serde_json::from_str(&reference).unwrap();
    let warned = reference["e.py"].as_array().unwrap().len();
    assert!(warned > 0, "{reference}");
    let normalise = |l: &str| -> String {
        if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str::<serde_json::Value>(l) {
            o.remove("elapsed");
            o.remove("remembered");
            serde_json::Value::Object(o).to_string()
        } else if l.starts_with("Compiled ") {
            l.rsplit_once(" in ").unwrap().0.to_string()
        } else {
            l.to_string()
        }
    };
    for format in ["text", "json", "github"] {
        let state = Tree::new();
        let run = || {
            let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", state.root());
            let run = cmd.args(["compile", "-v", "--format", format]).python(py).arg("e.py").run();
            run.assert_code(1);
            run.stdout.lines().chain(run.stderr.lines()).map(normalise).collect::<Vec<_>>()
        };
        let (first, remembered) = (run(), run());
        assert_eq!(first, remembered, "{format}: the remembered run's output differs");
        let warning = |l: &str| {
            (l.starts_with("e.py:") && l.contains("Warning: "))
                || l.starts_with("::warning ")
                || l.contains(r#""type":"warning""#)
        };
        let failure = |l: &str| {
            (l.starts_with("e.py:") && l.contains("SyntaxError: "))
                || l.starts_with("::error ")
                || l.contains(r#""type":"failure""#)
        };
        let at: Vec<usize> = first.iter().enumerate().filter(|(_, l)| failure(l)).map(|(i, _)| i).collect();
        assert_eq!(at.len(), 1, "{format}: {first:#?}");
        let warnings: Vec<usize> =
            first.iter().enumerate().filter(|(_, l)| warning(l)).map(|(i, _)| i).collect();
        assert_eq!(warnings.len(), warned, "{format}: {reference} {first:#?}");
        assert!(warnings.iter().all(|&w| w < at[0]), "{format}: warnings after the failure: {first:#?}");
    }
});

// A pyc whose header alone is to change (another --invalidation-mode) is rewritten without
// compiling; under -W error that let a warning through. Such a source is compiled unless it
// is remembered to raise none: one that warns fails as under `python -W error`, its pyc left
// as it was, and the others end as a plain checked build writes them, whether the unchecked
// build's state directory (its remembered warnings) is there or lost.
per_python!(header_rewrites_under_warnings_as_errors, |py: &Python| {
    let files: Vec<&str> = GATE_SOURCES.iter().map(|(rel, _)| *rel).collect();
    let (plain, plain_state) = (Tree::new(), Tree::new());
    for (rel, text) in GATE_SOURCES {
        plain.write(rel, text);
    }
    let reference = w_error_reference(py, &plain, &files);
    let failing: Vec<&str> = files.iter().copied().filter(|f| !reference[*f].is_null()).collect();
    assert!(failing.contains(&"warn_assert.py"), "{reference}");
    let build = plain.hashpyc().env("HASHPYC_STATE_DIR", plain_state.root()).arg("compile");
    build.python(py).args(["-q", "."]).run().assert_code(0);
    for keep_state in [true, false] {
        let (tree, state) = (Tree::new(), Tree::new());
        for (rel, text) in GATE_SOURCES {
            tree.write(rel, text);
        }
        let compile = |args: &[&str]| {
            let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile");
            cmd.python(py).args(args).arg(".").run()
        };
        compile(&["--invalidation-mode", "unchecked-hash"]).assert_code(0);
        let unchecked: Vec<Vec<u8>> =
            files.iter().map(|rel| std::fs::read(pyc_of(&tree, py, rel)).unwrap()).collect();
        if !keep_state {
            std::fs::remove_dir_all(state.root()).unwrap();
            std::fs::create_dir_all(state.root()).unwrap();
        }
        let run = compile(&["-W", "error"]);
        run.assert_code(1);
        for (rel, before) in files.iter().zip(&unchecked) {
            let now = std::fs::read(pyc_of(&tree, py, rel)).unwrap();
            if failing.contains(rel) {
                assert!(run.stderr.contains(&format!("./{rel}:2: ")), "{rel} ({keep_state}): {}", run.stderr);
                assert!(now == *before, "{rel} ({keep_state}): a source that warns keeps its pyc");
            } else {
                let want = std::fs::read(pyc_of(&plain, py, rel)).unwrap();
                assert!(now == want, "{rel} ({keep_state}): not the checked pyc of a plain build");
            }
        }
        assert!(run.stderr.contains(&format!("{} failed", failing.len())), "{}", run.stderr);
    }
});

/// Every warning compiling each named file raises at the interpreter's optimization level
/// (run it with [`optimize_flags`]), each once, in the order raised: `[lineno, message,
/// category]`.
const WARNINGS_REF: &str = r#"
import sys, json, warnings
out = {}
for p in sys.argv[1:]:
    with open(p, "rb") as f:
        source = f.read()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile(source, p, "exec", dont_inherit=True)
    seen = []
    for w in caught:
        item = [w.lineno, str(w.message), w.category.__name__]
        if item not in seen:
            seen.append(item)
    out[p] = seen
print(json.dumps(out))
"#;

fn warnings_reference_at(py: &Python, tree: &Tree, files: &[&str], level: u8) -> serde_json::Value {
    let args: Vec<&str> = optimize_flags(level).iter().copied().chain(["-c", WARNINGS_REF]).collect();
    serde_json::from_str(&py.run(&[args.as_slice(), files].concat(), tree.root())).unwrap()
}

/// The warnings a `compile -W error --format json` run failed each file with, as
/// [`warnings_reference_at`] gives them, sorted.
fn failed_warnings(run: &harness::Run) -> std::collections::BTreeMap<String, Vec<serde_json::Value>> {
    let mut out = std::collections::BTreeMap::<String, Vec<serde_json::Value>>::new();
    for l in json_lines(&run.stdout) {
        assert_ne!(l["type"], "warning", "-W error reports warnings as failures: {}", run.stdout);
        if l["type"] == "failure" {
            assert_eq!(l["warning"], true, "{l}");
            let rel = l["path"].as_str().unwrap().trim_start_matches("./").to_string();
            out.entry(rel).or_default().push(serde_json::json!([l["line"], l["message"], l["kind"]]));
        }
    }
    out.values_mut().for_each(|v| v.sort_by_key(|w| w.to_string()));
    out
}

// Warnings can depend on the optimization level: `assert (x, "msg")` warns at level 0 only
// on 3.7-3.9 (every level from 3.10). A `-W error -o L` run over a fresh tree passes or
// fails each file as `python -W error` at level L does, and fails it with that level's
// warnings, whichever levels the runs that wrote the tree compiled, together or one by
// one; with both levels' warnings remembered, it starts no Python. A state directory that
// remembers warnings without their levels (written before levels were recorded) decides
// nothing: the sources are compiled again in memory, as with no state directory.
per_python!(remembered_warnings_are_per_level, |py: &Python| {
    const SOURCES: &[(&str, &str)] = &[
        ("assert.py", "x = 1\nassert (x, 'always true')\n"),
        // 3.8+ also warn about `is` with a literal, at every level.
        ("both.py", "x = 1\nassert (x, 'always true')\ny = x is 1\n"),
    ];
    let files: Vec<&str> = SOURCES.iter().map(|(rel, _)| *rel).collect();
    let tools = Tree::new();
    for (rel, text) in SOURCES {
        tools.write(rel, text);
    }
    let (wrapper, starts) = tools.counting_python(py);
    let failing = |level: u8| w_error_reference_at(py, &tools, &files, level);
    let raised = |level: u8| warnings_reference_at(py, &tools, &files, level);
    let reference = [(failing(0), raised(0)), (failing(1), raised(1))];
    if py.minor < (3, 10) {
        // What makes the levels differ here.
        assert!(reference[1].0["assert.py"].is_null(), "{}", reference[1].0);
    }
    let strict = |tree: &Tree, state: &Path, level: u8| {
        let lvl = level.to_string();
        let args = ["-W", "error", "-o", &lvl, "--format", "json"];
        let run = counted_compile(tree, state, &wrapper, &args, &["."]);
        let (must_fail, warnings) = &reference[usize::from(level)];
        let want: std::collections::BTreeMap<String, Vec<serde_json::Value>> = files
            .iter()
            .filter(|f| !must_fail[**f].is_null())
            .map(|f| {
                let mut w = warnings[*f].as_array().unwrap().clone();
                w.sort_by_key(|w| w.to_string());
                (f.to_string(), w)
            })
            .collect();
        let got = failed_warnings(&run);
        assert_eq!(got, want, "-o {level}: {}", run.stdout);
        for (rel, error) in must_fail.as_object().unwrap().iter().filter(|(_, e)| !e.is_null()) {
            // CPython raises the first warning (3.8+ as a SyntaxError): it is among them.
            let among = got[rel].iter().any(|w| w[1] == error[1] && (error[0].is_null() || w[0] == error[0]));
            assert!(among, "-o {level}: {rel}: CPython raises {error}: {}", run.stdout);
        }
        let summary = json_lines(&run.stdout).pop().unwrap();
        assert_eq!(summary["failed"], want.len(), "-o {level}: {}", run.stdout);
        assert_eq!(summary["fresh"], files.len() - want.len(), "-o {level}: {}", run.stdout);
        run.assert_code(if want.is_empty() { 0 } else { 1 });
    };
    let builds: &[&[&[&str]]] =
        &[&[&["-o", "0", "-o", "1"]], &[&["-o", "0"], &["-o", "1"]], &[&["-o", "1"], &["-o", "0"]]];
    for build in builds {
        let (tree, state) = (Tree::new(), Tree::new());
        for (rel, text) in SOURCES {
            tree.write(rel, text);
        }
        for args in *build {
            counted_compile(&tree, state.root(), &wrapper, args, &["."]).assert_code(0);
        }
        for (k, level) in [1, 0, 1].into_iter().enumerate() {
            let before = starts();
            strict(&tree, state.root(), level);
            // A plain run whose compile raised no warning remembers nothing (only -W
            // error runs remember clean sources): after `-o 1` then `-o 0` on 3.7-3.9,
            // level 1 is unknown until the first -W error -o 1 run learns it.
            if k > 0 || build[0] != ["-o", "1"] {
                assert_eq!(starts(), before, "{build:?} then -o {level}: the warnings are remembered");
            }
        }
    }
    // The memo as hashpyc wrote it before it recorded levels: each source's warnings,
    // without the levels that raised them.
    let (tree, state) = (Tree::new(), Tree::new());
    for (rel, text) in SOURCES {
        tree.write(rel, text);
    }
    counted_compile(&tree, state.root(), &wrapper, &["-o", "0", "-o", "1"], &["."]).assert_code(0);
    let memo = harness::files_with_suffix(state.root(), ".json")
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("failures-"))
        .map(|p| state.path(p))
        .expect("a memo file");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&memo).unwrap()).unwrap();
    for entry in json["warned"].as_object_mut().unwrap().values_mut() {
        let mut warnings: Vec<serde_json::Value> = Vec::new();
        for w in entry["levels"].as_object().unwrap().values().flat_map(|l| l.as_array().unwrap()) {
            if !warnings.contains(w) {
                warnings.push(w.clone());
            }
        }
        *entry = serde_json::json!({ "hash": entry["hash"], "warnings": warnings });
    }
    std::fs::write(&memo, json.to_string()).unwrap();
    for level in [1, 0] {
        let before = starts();
        strict(&tree, state.root(), level);
        assert!(starts() > before, "-o {level}: warnings without levels are compiled again");
    }
});

// `compile -n -W error` says what the `-W error` run would do: a fresh source whose
// warnings are not remembered is compiled in memory only, so it is to be checked for
// warnings, not compiled; one remembered to warn is known to fail. Checked against the real
// run that follows (its -v listing, its summary and whether it starts Python), with the
// state directory lost, as a run without -W error left it, and as a -W error run left it.
per_python!(dry_run_under_warnings_as_errors, |py: &Python| {
    use std::collections::BTreeSet;
    let tree = Tree::new();
    for (rel, text) in GATE_SOURCES {
        tree.write(rel, text);
    }
    let files: Vec<&str> = GATE_SOURCES.iter().map(|(rel, _)| *rel).collect();
    let reference = w_error_reference(py, &tree, &files);
    let failing: BTreeSet<String> =
        files.iter().filter(|f| !reference[**f].is_null()).map(|f| format!("./{f}")).collect();
    assert!(failing.contains("./warn_assert.py"), "{reference}");
    let tools = Tree::new();
    let (wrapper, starts) = tools.counting_python(py);
    let (plain, lost) = (Tree::new(), Tree::new());
    counted_compile(&tree, plain.root(), &wrapper, &["-q"], &["."]).assert_code(0);
    // A source with no pyc: the only file a real run writes.
    tree.write("new.py", "z = 1\n");
    let all: BTreeSet<String> = files.iter().chain(&["new.py"]).map(|f| format!("./{f}")).collect();
    let n_files = |n: usize| format!("{n} file{}", if n == 1 { "" } else { "s" });
    for (state, what) in [(&lost, "lost"), (&plain, "plain"), (&lost, "learned")] {
        let dry = counted_compile(&tree, state.root(), &wrapper, &["-n", "-W", "error"], &["."]);
        let mut listed: std::collections::BTreeMap<&str, BTreeSet<String>> = Default::default();
        for line in dry.stdout.lines() {
            let (verb, rest) = line.split_once(' ').unwrap();
            let path = rest.trim_start().split("  (").next().unwrap();
            listed.entry(verb).or_default().insert(path.to_string());
        }
        let of = |verb: &str| listed.get(verb).cloned().unwrap_or_default();
        let (compile, check, fails, fresh) = (of("compile"), of("check"), of("fails"), of("fresh"));
        let before = starts();
        let real = counted_compile(&tree, state.root(), &wrapper, &["-v", "-W", "error"], &["."]);
        let started = starts() > before;
        let noted = |prefix: &str| -> BTreeSet<String> {
            let lines = real.stderr.lines().filter_map(|l| l.strip_prefix(prefix));
            lines.map(|l| l.split('`').next().unwrap().to_string()).collect()
        };
        let (compiled, learned) = (noted("compiled `"), noted("no warnings in `"));
        let failed: BTreeSet<String> = all
            .iter()
            .filter(|p| real.stderr.lines().any(|l| l.starts_with(&format!("{p}:"))))
            .cloned()
            .collect();
        let context = format!("{what}:\n{}{}\n{}", dry.stdout, dry.stderr, real.stderr);
        assert_eq!(failed, failing, "{context}");
        // Exit status 1 as the real run's when it knows a file fails (see
        // dry_run_exits_as_the_real_run).
        real.assert_code(1);
        assert_eq!(dry.code, Some(i32::from(!fails.is_empty())), "{context}");
        // Listed as the real run goes: written, learned or failed in memory, failed from
        // memory, left alone.
        assert_eq!(compile, compiled, "{context}");
        let checked: BTreeSet<String> =
            learned.union(&failed.difference(&fails).cloned().collect()).cloned().collect();
        assert_eq!(check, checked, "{context}");
        assert!(fails.is_subset(&failed), "{context}");
        let untouched: BTreeSet<String> = all
            .iter()
            .filter(|p| !compiled.contains(*p) && !learned.contains(*p) && !failed.contains(*p))
            .cloned()
            .collect();
        assert_eq!(fresh, untouched, "{context}");
        assert_eq!(started, !compile.is_empty() || !check.is_empty(), "{context}");
        // And counted so.
        let mut parts = vec![format!("{} already fresh", fresh.len())];
        if !check.is_empty() {
            parts.push(format!("{} to check for warnings", n_files(check.len())));
        }
        if !fails.is_empty() {
            parts.push(format!("{} known to fail", fails.len()));
        }
        let would = format!(
            "Would compile {}, rewrite 0 headers for CPython {} ({}); nothing was written",
            n_files(compile.len()),
            py.version,
            parts.join(", ")
        );
        assert!(dry.stderr.contains(&would), "{would}\n{context}");
        let did = format!(
            "Compiled {} for CPython {} ({} already fresh, {} failed)",
            n_files(compiled.len()),
            py.version,
            fresh.len() + learned.len(),
            failed.len()
        );
        assert!(real.stderr.contains(&did), "{did}\n{context}");
        if what == "learned" {
            assert!(check.is_empty() && fails == failing, "all remembered: {context}");
        }
    }
});

// `compile -n` exits as the `compile` that follows it: 1 when a file it lists is known to
// fail (remembered from an earlier run, or under -W error remembered to warn), as the real
// run then fails it; 0 over a tree that compiles. (A file no run has compiled yet cannot
// be known to fail without compiling it, which a dry run does not do.)
per_python!(dry_run_exits_as_the_real_run, |py: &Python| {
    let state = Tree::new();
    let agree = |tree: &Tree, args: &[&str], want: i32, listed: &[&str]| {
        let run = |extra: &[&str]| {
            let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile").python(py);
            cmd.args(extra).args(args).arg(".").run()
        };
        let dry = run(&["-n"]);
        let real = run(&[]);
        let context = format!("{args:?}:\n{}{}\n{}", dry.stdout, dry.stderr, real.stderr);
        assert_eq!(real.code, Some(want), "{context}");
        assert_eq!(dry.code, real.code, "{context}");
        let fails: Vec<&str> = dry.stdout.lines().filter_map(|l| l.strip_prefix("fails    ")).collect();
        let fails: Vec<&str> = fails.iter().map(|l| l.split("  (").next().unwrap()).collect();
        assert_eq!(fails, listed, "{context}");
    };
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("bad.py", "def f(:\n    pass\n");
    tree.write("warns.py", GATE_SOURCES[0].1);
    // A first run learns what fails (and what warns).
    let first = tree
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .args(["compile", "-q"])
        .python(py)
        .arg(".")
        .run();
    first.assert_code(1);
    assert!(first.stderr.contains("bad.py:1:"), "{}", first.stderr);
    agree(&tree, &[], 1, &["./bad.py"]);
    agree(&tree, &["-W", "error"], 1, &["./bad.py", "./warns.py"]);
    tree.write("bad.py", "def f():\n    pass\n");
    agree(&tree, &["-W", "error"], 1, &["./warns.py"]);
    agree(&tree, &[], 0, &[]);
    std::fs::remove_file(tree.path("warns.py")).unwrap();
    agree(&tree, &["-W", "error"], 0, &[]);
    // A tree that compiles, from its first run.
    let clean = Tree::new();
    clean.write("a.py", "x = 1\n");
    clean.write("pkg/b.py", "y = 2\n");
    agree(&clean, &[], 0, &[]);
    agree(&clean, &["-W", "error"], 0, &[]);
    // Remembered warnings fail a file under -W error whatever its pycs: none (the -W error
    // run that learned them wrote none), one of the other mode (a header to rewrite), and
    // with its warnings known at some of the levels only.
    let gate = Tree::new();
    gate.write("w.py", GATE_SOURCES[0].1);
    let compile = |args: &[&str]| {
        let cmd = gate.hashpyc().env("HASHPYC_STATE_DIR", state.root()).args(["compile", "-q"]).python(py);
        cmd.args(args).arg(".").run()
    };
    compile(&["-W", "error"]).assert_code(1);
    assert_eq!(gate.pycs(), Vec::<std::path::PathBuf>::new());
    agree(&gate, &["-W", "error"], 1, &["./w.py"]);
    compile(&["--invalidation-mode", "unchecked-hash"]).assert_code(0);
    assert_eq!(gate.pycs().len(), 1);
    agree(&gate, &["-W", "error"], 1, &["./w.py"]);
    std::fs::remove_dir_all(gate.path("__pycache__")).unwrap();
    agree(&gate, &["-W", "error", "-o", "0", "-o", "1"], 1, &["./w.py"]);
});

// `compile -n --format json`: the dry run's listing as JSON Lines on stdout, a `plan`
// object per line of the text listing (same path, interpreter, verb and reason; `fails`
// with the failure's fields), then a summary of what the run would do, which is what the
// real run that follows then reports having done; nothing on stderr, nothing written.
per_python!(dry_run_as_json, |py: &Python| {
    let state = Tree::new();
    let tree = Tree::new();
    let elsewhere = Tree::new();
    for (rel, text) in [
        ("fresh.py", "x = 1\n"),
        ("changed.py", "y = 2\n"),
        ("unchecked.py", "z = 3\n"),
        ("bad.py", "x = 1\ndef (:\n"),
        ("warns.py", GATE_SOURCES[0].1),
    ] {
        tree.write(rel, text);
    }
    std::os::unix::fs::symlink(elsewhere.write("o.py", "o = 1\n"), tree.path("outside.py")).unwrap();
    let compile = |args: &[&str]| {
        let cmd = tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile").python(py);
        cmd.args(["-o", "0", "-o", "1", "-e", "."]).args(args).arg(".").run()
    };
    compile(&["-q"]).assert_code(1);
    let unchecked =
        tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).args(["compile", "-q", "-o", "0", "-o", "1"]);
    unchecked
        .python(py)
        .args(["--invalidation-mode", "unchecked-hash", "./unchecked.py"])
        .run()
        .assert_code(0);
    tree.write("changed.py", "y = 20\n");
    tree.write("new.py", "n = 1\n");
    let python = format!("{}.{}", py.minor.0, py.minor.1);
    let pycs = || -> Vec<(PathBuf, Vec<u8>)> {
        tree.pycs().into_iter().map(|p| (p.clone(), std::fs::read(tree.path(&p)).unwrap())).collect()
    };
    // Without and with -W error: plain runs list compile, rewrite, fresh, fails and skip;
    // -W error then also check (warnings not remembered) and fails (remembered warnings).
    for extra in [&[][..], &["-W", "error"][..]] {
        let before = pycs();
        let text = compile(&[&["-n"], extra].concat());
        let json = compile(&[&["-n", "--format", "json"], extra].concat());
        let context = format!("{extra:?}:\n{}{}\n{}{}", text.stdout, text.stderr, json.stdout, json.stderr);
        assert_eq!(json.stderr, "", "{context}");
        assert_eq!(json.code, text.code, "{context}");
        assert_eq!(pycs(), before, "a dry run writes nothing: {context}");
        let objects = json_lines(&json.stdout);
        let (summary, plan) = objects.split_last().expect("a summary");
        assert_eq!(summary["type"], "summary", "{context}");
        assert!(plan.iter().all(|o| o["type"] == "plan"), "{context}");
        // The text listing, line for line.
        let listed: Vec<(String, String, String)> = text
            .stdout
            .lines()
            .map(|l| {
                let (verb, rest) = l.split_once(' ').unwrap();
                let (path, reason) = rest.trim_start().split_once("  (").unwrap_or((rest.trim_start(), ""));
                (verb.to_string(), path.to_string(), reason.strip_suffix(')').unwrap_or(reason).to_string())
            })
            .collect();
        let planned: Vec<(String, String, String)> = plan
            .iter()
            .map(|o| {
                let want_python =
                    if o["action"] == "skip" { serde_json::Value::Null } else { python.clone().into() };
                assert_eq!(o["python"], want_python, "{o}");
                let reason = o["reason"].as_str().unwrap_or("").to_string();
                (o["action"].as_str().unwrap().to_string(), o["path"].as_str().unwrap().to_string(), reason)
            })
            .collect();
        assert_eq!(planned, listed, "{context}");
        let verbs: std::collections::BTreeSet<&str> = listed.iter().map(|(v, _, _)| v.as_str()).collect();
        let want: &[&str] = if extra.is_empty() {
            &["compile", "fails", "fresh", "rewrite", "skip"]
        } else {
            &["check", "fails", "skip"]
        };
        assert_eq!(verbs, want.iter().copied().collect(), "{context}");
        // The run it describes.
        let real = compile(&[&["--format", "json"], extra].concat());
        assert_eq!(real.code, json.code, "{context}\n{}", real.stdout);
        let real_objects = json_lines(&real.stdout);
        let did = real_objects.last().unwrap();
        let context = format!("{context}\n{}", real.stdout);
        assert_eq!((&summary["dry_run"], &did["dry_run"]), (&true.into(), &false.into()), "{context}");
        for key in ["from_cache", "from_cache_pycs", "warnings"] {
            assert!(summary[key].is_null(), "{key}: {context}");
        }
        for key in [
            "sources",
            "compiled",
            "compiled_sources",
            "compiled_pycs",
            "rewritten",
            "rewritten_pycs",
            "failed",
            "failed_sources",
            "errors",
            "warnings_as_errors",
            "targets",
        ] {
            assert_eq!(summary[key], did[key], "{key}: {context}");
        }
        // Files checked for warnings end fresh (none of them warns).
        let checked = summary["check_sources"].as_u64().unwrap();
        assert_eq!(checked as usize, listed.iter().filter(|(v, _, _)| v == "check").count(), "{context}");
        assert_eq!(did["fresh"].as_u64(), summary["fresh"].as_u64().map(|n| n + checked), "{context}");
        assert_eq!(did["fresh_pycs"].as_u64(), summary["fresh_pycs"].as_u64().map(|n| n + 2 * checked));
        // Each `fails` carries what the real run's `failure` object says.
        let failures: Vec<&serde_json::Value> =
            real_objects.iter().filter(|o| o["type"] == "failure").collect();
        let fails: Vec<&serde_json::Value> = plan.iter().filter(|o| o["action"] == "fails").collect();
        assert_eq!(fails.len(), failures.len(), "{context}");
        for (f, r) in fails.iter().zip(&failures) {
            for key in ["path", "python", "kind", "message", "line", "warning", "remembered"] {
                assert_eq!(f[key], r[key], "{key}: {context}");
            }
        }
    }
    // `compile -n --format github` lists as the text dry run does (its errors, none here, as
    // annotations) and exits as it does.
    let text = compile(&["-n"]);
    let github = compile(&["-n", "--format", "github"]);
    assert_eq!((github.code, &github.stdout), (text.code, &text.stdout), "{}", github.stderr);
});

// A dry run counts the errors the real run reports, and says them as it does: its summary
// line lacked "N errors" (the JSON summary had them), and a pyc destination that is a
// directory, which the real run cannot write over, was listed "compile" and not counted.
// Its errors come before its summary line, as the real run's (they came after it).
// Here a source that is a FIFO (not a regular file) and a source whose pyc is a directory;
// and what the plan does not read: a source with no pyc that cannot be read (an I/O error,
// which the dry run listed "compile", exit 0) and one whose `__pycache__` is a file, which
// the run cannot create once it has compiled it.
#[test]
fn dry_run_counts_errors_as_the_real_run() {
    let Some(py) = crate::harness::any_python("dry_run_counts_errors_as_the_real_run") else { return };
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("dest.py", "y = 2\n");
    std::os::unix::fs::symlink("/proc/self/mem", tree.path("io.py")).unwrap();
    tree.write("pkg/m.py", "z = 3\n");
    tree.write("pkg/__pycache__", "");
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    std::fs::create_dir_all(tree.path(format!("__pycache__/dest.{tag}.pyc"))).unwrap();
    let fifo = std::ffi::CString::new(tree.path("fifo.py").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let compile = |args: &[&str]| {
        let cmd = tree.hashpyc().args(["compile", "--force"]).python(py).args(args);
        cmd.args(["good.py", "dest.py", "fifo.py", "io.py", "pkg"]).run()
    };
    let errors = |stderr: &str| -> Vec<String> {
        stderr.lines().filter(|l| l.starts_with("error:")).map(str::to_string).collect()
    };
    // Text: the same error lines, the same count in the summary, the same exit status.
    let dry = compile(&["-n"]);
    let real = compile(&[]);
    let context = format!("dry run:\n{}{}\nreal run:\n{}", dry.stdout, dry.stderr, real.stderr);
    real.assert_code(1);
    assert_eq!(dry.code, real.code, "{context}");
    assert_eq!(errors(&dry.stderr).len(), 4, "{context}");
    assert_eq!(errors(&dry.stderr), errors(&real.stderr), "{context}");
    assert!(real.stderr.contains(", 4 errors) in "), "{context}");
    assert!(dry.stderr.contains(", 4 errors); nothing was written"), "{context}");
    // The errors, then the summary line last, in both (the dry run printed its errors after).
    let last = |stderr: &str| stderr.lines().last().unwrap_or_default().to_string();
    assert!(last(&real.stderr).starts_with("Compiled "), "{context}");
    assert!(last(&dry.stderr).starts_with("Would compile "), "{context}");
    assert_eq!(dry.stdout.lines().collect::<Vec<_>>(), ["compile  good.py  (--force)"], "{context}");
    // JSON: the same error objects and count.
    let dry = compile(&["-n", "--format", "json"]);
    let real = compile(&["--format", "json"]);
    let context =
        format!("dry run:\n{}{}\nreal run:\n{}{}", dry.stdout, dry.stderr, real.stdout, real.stderr);
    assert_eq!(dry.code, real.code, "{context}");
    let error_objects = |stdout: &str| -> Vec<serde_json::Value> {
        json_lines(stdout).into_iter().filter(|o| o["type"] == "error").collect()
    };
    assert_eq!(error_objects(&dry.stdout).len(), 4, "{context}");
    assert_eq!(error_objects(&dry.stdout), error_objects(&real.stdout), "{context}");
    let (dry, real) = (json_lines(&dry.stdout), json_lines(&real.stdout));
    let (dry, real) = (dry.last().unwrap(), real.last().unwrap());
    for key in ["errors", "compiled", "compiled_sources", "compiled_pycs"] {
        assert_eq!(dry[key], real[key], "{key}: {context}");
    }
    assert_eq!(dry["errors"], 4, "{context}");
}

// The text dry run's summary line counts the pycs it would link (`--hardlink-dupes`) as
// the run's counts those it linked: here level 0 fresh and level 1 to link again (a
// checked run without --hardlink-dupes rewrote both headers, two files since), which the
// dry run listed `link` and counted only "(1 already fresh)".
#[test]
fn dry_run_counts_links_as_the_real_run() {
    let Some(py) = crate::harness::any_python("dry_run_counts_links_as_the_real_run") else { return };
    let tree = Tree::new();
    tree.write("a.py", "x = 1\n");
    let compile = |args: &[&str]| {
        tree.hashpyc().arg("compile").python(py).args(["-o", "0", "-o", "1"]).args(args).arg(".").run()
    };
    compile(&["-q", "--invalidation-mode", "unchecked-hash", "--hardlink-dupes"]).assert_code(0);
    compile(&["-q"]).assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let (l0, l1) =
        (tree.path(format!("__pycache__/a.{tag}.pyc")), tree.path(format!("__pycache__/a.{tag}.opt-1.pyc")));
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_ne!(inode(&l0), inode(&l1), "the checked run rewrote both levels");
    // Under -W error, with no state saying the source raises no warning, the links are
    // made by a compile: its reason names them (there is no header to rewrite).
    let state = Tree::new();
    let gated = tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile").python(py);
    let gated = gated.args(["-o", "0", "-o", "1", "-n", "-W", "error", "--hardlink-dupes", "."]).run();
    gated.assert_code(0);
    let listed = gated.stdout.lines().next().unwrap_or_default();
    assert!(listed.starts_with("compile  ./a.py  (identical levels to link, "), "{}", gated.stdout);
    assert!(!listed.contains("header"), "{}", gated.stdout);
    let dry = compile(&["-n", "--hardlink-dupes"]);
    let json = compile(&["-n", "--hardlink-dupes", "--format", "json"]);
    let real = compile(&["--hardlink-dupes", "--format", "json"]);
    let context = format!("{}{}\n{}\n{}{}", dry.stdout, dry.stderr, json.stdout, real.stdout, real.stderr);
    assert_eq!((dry.code, json.code, real.code), (Some(0), Some(0), Some(0)), "{context}");
    assert_eq!(inode(&l0), inode(&l1), "the run linked them: {context}");
    assert!(dry.stdout.starts_with("link     ./a.py"), "{context}");
    let (json, real) = (json_lines(&json.stdout), json_lines(&real.stdout));
    let (json, real) = (json.last().unwrap(), real.last().unwrap());
    for key in ["linked", "linked_pycs", "fresh_pycs", "rewritten_pycs", "compiled_pycs"] {
        assert_eq!(json[key], real[key], "{key}: {context}");
    }
    assert_eq!((&real["linked_pycs"], &real["fresh_pycs"]), (&1.into(), &1.into()), "{context}");
    // The text summary: one pyc to link, one fresh.
    let line = dry.stderr.lines().last().unwrap_or_default();
    assert!(line.contains(" rewrite 0 headers, link 1 pyc for "), "{context}");
    assert!(line.ends_with(" (1 already fresh); nothing was written"), "{context}");
}

// A run without --hardlink-dupes leaves the tree a clean build would: levels that a run
// with it made one file are files of their own again, as compileall (which rewrites every
// pyc) leaves them. They were called fresh and kept their links, so an archive of the tree
// (tar's `link to` entries) depended on whether the flag had ever been given. A hard link
// to a file elsewhere (a `cp -al` of the tree) is left alone.
per_python!(no_hardlink_dupes_unlinks_what_a_run_with_it_linked, |py: &Python| {
    let sources = [("a.py", "x = 1\n"), ("b.py", "def f():\n    \"doc\"\n    assert f\n")];
    let (linked, clean) = (Tree::new(), Tree::new());
    for tree in [&linked, &clean] {
        for (name, text) in sources {
            tree.write(name, text);
        }
    }
    let compile = |tree: &Tree, args: &[&str]| {
        tree.hashpyc()
            .arg("compile")
            .python(py)
            .args(["-o", "0", "-o", "1", "-o", "2"])
            .args(args)
            .arg(".")
            .run()
    };
    compile(&linked, &["-q", "--hardlink-dupes"]).assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let levels = |tree: &Tree, stem: &str| {
        ["", ".opt-1", ".opt-2"].map(|s| tree.path(format!("__pycache__/{stem}.{tag}{s}.pyc")))
    };
    let links = |tree: &Tree, stem: &str| levels(tree, stem).map(|p| std::fs::metadata(p).unwrap().nlink());
    assert_eq!(links(&linked, "a"), [3, 3, 3], "a.py's identical levels linked first");
    // A link from outside the tree's pycs to b.py's level 0, as `cp -al` makes.
    let outside = linked.path("b-level0-elsewhere.pyc");
    std::fs::hard_link(&levels(&linked, "b")[0], &outside).unwrap();
    let dry = compile(&linked, &["-n"]);
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("a hard link to another level's pyc, without --hardlink-dupes"),
        "{}{}",
        dry.stdout,
        dry.stderr
    );
    let run = compile(&linked, &["--no-hardlink-dupes"]);
    run.assert_code(0);
    compile(&clean, &["-q"]).assert_code(0);
    let context = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(links(&linked, "a"), [1, 1, 1], "{context}");
    assert_eq!(links(&linked, "b")[0], 2, "the link from elsewhere is kept: {context}");
    for stem in ["a", "b"] {
        for (l, c) in levels(&linked, stem).iter().zip(levels(&clean, stem)) {
            assert_eq!(std::fs::read(l).unwrap(), std::fs::read(&c).unwrap(), "{}", l.display());
        }
    }
    // Then nothing is left to do.
    let again = compile(&linked, &[]);
    assert!(again.stderr.contains("Compiled 0 files"), "{}", again.stderr);
});

// A level linked to the file before it that is already its own file is no link: here
// levels 0 and 2 one file and level 1 a copy, so the run links level 1 alone (level 2 is
// then one file with it). The dry run counted level 2 as a link too, as the level after a
// linked one ("link 2 pycs", 1 fresh, where the run linked 1 and left 2 fresh).
#[test]
fn dry_run_counts_no_link_to_the_same_file() {
    let Some(py) = crate::harness::any_python("dry_run_counts_no_link_to_the_same_file") else { return };
    let tree = Tree::new();
    tree.write("a.py", "x = 1\n");
    let compile = |args: &[&str]| {
        tree.hashpyc()
            .arg("compile")
            .python(py)
            .args(["-o", "0", "-o", "1", "-o", "2", "--hardlink-dupes"])
            .args(args)
            .arg(".")
            .run()
    };
    compile(&["-q"]).assert_code(0);
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let pyc = |suffix: &str| tree.path(format!("__pycache__/a.{tag}{suffix}.pyc"));
    let (l0, l1, l2) = (pyc(""), pyc(".opt-1"), pyc(".opt-2"));
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert!(inode(&l0) == inode(&l1) && inode(&l1) == inode(&l2), "identical levels linked");
    // Break level 1's link: a copy renamed over it.
    let copy = tree.path("__pycache__/copy");
    std::fs::copy(&l1, &copy).unwrap();
    std::fs::rename(&copy, &l1).unwrap();
    assert_ne!(inode(&l0), inode(&l1));
    let dry = compile(&["-n"]);
    let json = compile(&["-n", "--format", "json"]);
    let real = compile(&["--format", "json"]);
    let context = format!("{}{}\n{}\n{}{}", dry.stdout, dry.stderr, json.stdout, real.stdout, real.stderr);
    assert_eq!((dry.code, json.code, real.code), (Some(0), Some(0), Some(0)), "{context}");
    assert!(inode(&l0) == inode(&l1) && inode(&l1) == inode(&l2), "the run linked them: {context}");
    let (json, real) = (json_lines(&json.stdout), json_lines(&real.stdout));
    let (json, real) = (json.last().unwrap(), real.last().unwrap());
    for key in ["linked", "linked_pycs", "fresh_pycs", "rewritten_pycs", "compiled_pycs"] {
        assert_eq!(json[key], real[key], "{key}: {context}");
    }
    assert_eq!((&real["linked_pycs"], &real["fresh_pycs"]), (&1.into(), &2.into()), "{context}");
    let line = dry.stderr.lines().last().unwrap_or_default();
    assert!(line.contains(" rewrite 0 headers, link 1 pyc for "), "{context}");
    assert!(line.ends_with(" (2 already fresh); nothing was written"), "{context}");
}

// Each pyc counts once in the summary, as compiled, fresh, rewritten or linked, and the dry
// run counts as the run: `linked_pycs` (`N linked`) are the pycs only made hard links of an
// identical level. A compile with --hardlink-dupes reported "linked_pycs":0 for pycs it had
// linked, while a header switch reported "3 headers rewritten, 2 linked" for 3 pycs; a
// level 0 rewritten while levels 1 and 2 were linked together linked level 1 alone (the
// link group split) and counted a link the dry run did not.
#[test]
fn linked_pycs_count_each_pyc_once() {
    let Some(py) = crate::harness::any_python("linked_pycs_count_each_pyc_once") else { return };
    let tree = Tree::new();
    // a.py: the same bytes at every level; b.py: other bytes at each level.
    tree.write("a.py", "x = 1\n");
    tree.write("b.py", "def f():\n    \"\"\"Doc.\"\"\"\n    assert f\n");
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let levels = |name: &str| -> Vec<PathBuf> {
        ["", ".opt-1", ".opt-2"]
            .iter()
            .map(|l| tree.path(format!("__pycache__/{name}.{tag}{l}.pyc")))
            .collect()
    };
    let inodes = |name: &str| -> Vec<u64> {
        levels(name).iter().map(|p| std::fs::metadata(p).unwrap().ino()).collect()
    };
    let label = format!("CPython {}", py.version);
    let keys = [
        "compiled_pycs",
        "fresh_pycs",
        "rewritten_pycs",
        "linked_pycs",
        "compiled",
        "fresh",
        "rewritten",
        "linked",
    ];
    // compile -o 0 -o 1 -o 2 with `args`: the dry run (text and JSON), then the run (JSON);
    // `want`: the pycs compiled, fresh, rewritten and linked.
    let run = |args: &[&str], want: [usize; 4]| {
        let compile = |extra: &[&str]| {
            tree.hashpyc()
                .arg("compile")
                .python(py)
                .args(["-o", "0", "-o", "1", "-o", "2"])
                .args(args)
                .args(extra)
                .arg(".")
                .run()
        };
        let dry = compile(&["-n"]);
        let dry_json = compile(&["-n", "--format", "json"]);
        let real = compile(&["--format", "json"]);
        let context = format!(
            "{args:?}\n{}{}\n{}\n{}{}",
            dry.stdout, dry.stderr, dry_json.stdout, real.stdout, real.stderr
        );
        assert_eq!((dry.code, dry_json.code, real.code), (Some(0), Some(0), Some(0)), "{context}");
        let (d, r) = (json_lines(&dry_json.stdout), json_lines(&real.stdout));
        let (d, r) = (d.last().unwrap(), r.last().unwrap());
        for key in keys {
            assert_eq!(d[key], r[key], "{key}: {context}");
        }
        let got: Vec<usize> = keys[..4].iter().map(|k| r[*k].as_u64().unwrap() as usize).collect();
        assert_eq!(got, want, "{context}");
        assert_eq!(want.iter().sum::<usize>(), 6, "each of the 6 pycs counts once");
        // The text line of the dry run and of a run in text, as the counts say.
        let would = dry.stderr.lines().last().unwrap_or_default();
        let links = match want[3] {
            0 => String::new(),
            1 => ", link 1 pyc".to_string(),
            n => format!(", link {n} pycs"),
        };
        let files = match want[0] {
            0 => "0 files".to_string(),
            n => format!("{} files, {n} pycs", n / 3),
        };
        let headers = if want[2] == 1 { "1 header".to_string() } else { format!("{} headers", want[2]) };
        let want_would = format!(
            "Would compile {files}, rewrite {headers}{links} for {label} ({} already fresh); nothing was written",
            want[1]
        );
        assert_eq!(would, want_would, "{context}");
    };
    // The run in text: its summary line without the time.
    let text_run = |args: &[&str]| {
        let r = tree
            .hashpyc()
            .arg("compile")
            .python(py)
            .args(["-o", "0", "-o", "1", "-o", "2"])
            .args(args)
            .arg(".")
            .run();
        r.assert_code(0);
        r.stderr.lines().last().unwrap_or_default().split(" in ").next().unwrap().to_string()
    };
    let hd = ["--hardlink-dupes"];
    let unchecked = ["--invalidation-mode", "unchecked-hash", "--hardlink-dupes"];
    let one_file = |ino: Vec<u64>| ino.iter().all(|i| *i == ino[0]);
    let three_files = |ino: Vec<u64>| ino[0] != ino[1] && ino[1] != ino[2] && ino[0] != ino[2];

    // Compiled, a.py's levels as one file: compiled, not linked.
    run(&hd, [6, 0, 0, 0]);
    assert!(one_file(inodes("a")) && three_files(inodes("b")));
    for p in levels("a").iter().chain(&levels("b")) {
        std::fs::remove_file(p).unwrap();
    }
    assert_eq!(text_run(&hd), format!("Compiled 2 files, 6 pycs for {label} (0 already fresh)"));
    assert!(one_file(inodes("a")));

    // The other hash mode: 6 headers rewritten, a.py's linked again, not counted twice.
    run(&unchecked, [0, 0, 6, 0]);
    assert!(one_file(inodes("a")) && three_files(inodes("b")));
    // Back to checked without --hardlink-dupes (three files for a.py), then the switch again.
    tree.hashpyc()
        .arg("compile")
        .python(py)
        .args(["-o", "0", "-o", "1", "-o", "2"])
        .arg(".")
        .run()
        .assert_code(0);
    assert!(three_files(inodes("a")));
    assert_eq!(
        text_run(&unchecked),
        format!("Compiled 0 files for {label} (0 already fresh, 6 headers rewritten)")
    );
    assert!(one_file(inodes("a")));

    // Level 0 of a.py a file of its own with the other header, levels 1 and 2 one file:
    // one header rewritten, levels 1 and 2 linked to it (both, or the group splits).
    let l0 = &levels("a")[0];
    let mut bytes = std::fs::read(l0).unwrap();
    bytes[4] = 3; // checked
    std::fs::remove_file(l0).unwrap();
    std::fs::write(l0, &bytes).unwrap();
    let ino = inodes("a");
    assert!(ino[0] != ino[1] && ino[1] == ino[2]);
    run(&unchecked, [0, 3, 1, 2]);
    assert!(one_file(inodes("a")), "{:?}", inodes("a"));
    std::fs::remove_file(l0).unwrap();
    std::fs::write(l0, &bytes).unwrap();
    assert_eq!(
        text_run(&unchecked),
        format!("Compiled 0 files for {label} (3 already fresh, 1 header rewritten, 2 linked)")
    );
    assert!(one_file(inodes("a")));

    // Fresh pycs of three files each, linked: only linked.
    for p in levels("a") {
        let b = std::fs::read(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, b).unwrap();
    }
    assert!(three_files(inodes("a")));
    run(&unchecked, [0, 4, 0, 2]);
    assert!(one_file(inodes("a")));
}

// A pyc that is a symbolic link, dangling or not, is refused when the run would write it,
// whether it compiles the source or only rewrites the header, as py_compile refuses it (it
// raises FileExistsError rather than replace a link); the dry run and the run say the same
// error, prefixed with the source as every per-file error, count it and exit 1, and the
// links and what they point to stay as they were. The run replaced a dangling link (exit 0)
// where the dry run refused it, and refused a link it would rewrite, without naming the
// source, where the dry run listed `rewrite` and exited 0. A fresh linked pyc, which
// nothing writes, stays fine; `check` says why compiling will not fix the others.
#[test]
fn symlinked_pycs_are_refused_by_the_dry_run_and_the_run() {
    let Some(py) = crate::harness::any_python("symlinked_pycs_are_refused_by_the_dry_run_and_the_run") else {
        return;
    };
    let tree = Tree::new();
    let elsewhere = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let pyc = |name: &str| format!("__pycache__/{name}.{tag}.pyc");
    tree.write("dangling.py", "x = 1\n");
    tree.write("header.py", "y = 2\n");
    // header.py: compiled unchecked, its pyc moved elsewhere and linked back, so that the
    // default (checked) run has only its header to rewrite.
    let unchecked = ["compile", "-q", "--invalidation-mode", "unchecked-hash"];
    tree.hashpyc().args(unchecked).python(py).arg("header.py").run().assert_code(0);
    let moved = elsewhere.path("header.pyc");
    std::fs::rename(tree.path(pyc("header")), &moved).unwrap();
    let moved_bytes = std::fs::read(&moved).unwrap();
    std::os::unix::fs::symlink(&moved, tree.path(pyc("header"))).unwrap();
    let nowhere = elsewhere.path("nowhere.pyc");
    std::os::unix::fs::symlink(&nowhere, tree.path(pyc("dangling"))).unwrap();
    // What CPython does with them: py_compile refuses both links.
    let refuse = "import py_compile, sys\ntry:\n    py_compile.compile(sys.argv[1], \
                  invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH, doraise=True)\n\
                  except FileExistsError:\n    print('refused')\n";
    for name in ["dangling.py", "header.py"] {
        assert_eq!(py.run(&["-c", refuse, name], tree.root()), "refused\n", "py_compile {name}");
    }
    let links_kept = |context: &str| {
        assert_eq!(std::fs::read_link(tree.path(pyc("header"))).unwrap(), moved, "{context}");
        assert_eq!(std::fs::read_link(tree.path(pyc("dangling"))).unwrap(), nowhere, "{context}");
        assert_eq!(std::fs::read(&moved).unwrap(), moved_bytes, "{context}");
        assert!(!nowhere.exists(), "{context}");
    };
    let want: Vec<String> = ["dangling", "header"]
        .iter()
        .map(|name| {
            let link = pyc(name);
            format!("error: `{name}.py`: `{link}` is a symbolic link; refusing to write through it")
        })
        .collect();
    let compile = |args: &[&str]| {
        let cmd = tree.hashpyc().arg("compile").python(py).args(args);
        cmd.args(["dangling.py", "header.py"]).run()
    };
    let errors = |stderr: &str| -> Vec<String> {
        stderr.lines().filter(|l| l.starts_with("error:")).map(str::to_string).collect()
    };
    // Text: the same errors, counted, the same exit status; nothing listed, nothing written.
    let dry = compile(&["-n"]);
    let context = format!("dry run:\n{}{}", dry.stdout, dry.stderr);
    links_kept(&context);
    let real = compile(&[]);
    let context = format!("{context}\nreal run:\n{}{}", real.stdout, real.stderr);
    links_kept(&context);
    assert_eq!((dry.code, real.code), (Some(1), Some(1)), "{context}");
    assert_eq!(errors(&dry.stderr), want, "{context}");
    assert_eq!(errors(&real.stderr), want, "{context}");
    assert_eq!(dry.stdout, "", "{context}");
    assert!(dry.stderr.contains("(0 already fresh, 2 errors); nothing was written"), "{context}");
    assert!(real.stderr.contains("(0 already fresh, 2 errors) in "), "{context}");
    // JSON: the same error objects and counts.
    let dry = compile(&["-n", "--format", "json"]);
    let real = compile(&["--format", "json"]);
    let context =
        format!("dry run:\n{}{}\nreal run:\n{}{}", dry.stdout, dry.stderr, real.stdout, real.stderr);
    links_kept(&context);
    assert_eq!((dry.code, real.code), (Some(1), Some(1)), "{context}");
    let error_objects = |stdout: &str| -> Vec<(String, String)> {
        let objects = json_lines(stdout).into_iter().filter(|o| o["type"] == "error");
        objects.map(|o| (o["path"].as_str().unwrap().into(), o["message"].as_str().unwrap().into())).collect()
    };
    let want_objects: Vec<(String, String)> = want
        .iter()
        .map(|line| {
            let (path, message) = line["error: `".len()..].split_once("`: ").unwrap();
            (path.to_string(), message.to_string())
        })
        .collect();
    assert_eq!(error_objects(&dry.stdout), want_objects, "{context}");
    assert_eq!(error_objects(&real.stdout), want_objects, "{context}");
    let (dry, real) = (json_lines(&dry.stdout), json_lines(&real.stdout));
    let (dry, real) = (dry.last().unwrap(), real.last().unwrap());
    for key in ["errors", "compiled", "rewritten", "fresh"] {
        assert_eq!(dry[key], real[key], "{key}: {context}");
    }
    assert_eq!(dry["errors"], 2, "{context}");
    // `check` finds both, and says the pyc is a link.
    let check = tree.hashpyc().arg("check").python(py).args(["dangling.py", "header.py"]).run();
    check.assert_code(1);
    let findings: Vec<&str> = check.stdout.lines().collect();
    let why = "the pyc is a symbolic link, which `hashpyc compile` refuses to write through";
    assert_eq!(
        findings,
        [format!("missing    dangling.py: {why}"), format!("unchecked  header.py: {why}")],
        "{}{}",
        check.stdout,
        check.stderr
    );
    // A linked pyc that is fresh is left alone: nothing writes it.
    let fresh = |args: &[&str]| {
        let cmd = tree.hashpyc().args(["compile", "--invalidation-mode", "unchecked-hash"]).python(py);
        cmd.args(args).arg("header.py").run()
    };
    let (dry, real) = (fresh(&["-n"]), fresh(&[]));
    let context =
        format!("dry run:\n{}{}\nreal run:\n{}{}", dry.stdout, dry.stderr, real.stdout, real.stderr);
    assert_eq!((dry.code, real.code), (Some(0), Some(0)), "{context}");
    assert_eq!(dry.stdout, "fresh    header.py\n", "{context}");
    links_kept(&context);
}

// A source CPython cannot decode (a UTF-8 BOM before a latin-1 cookie, an unknown
// encoding) fails with a SyntaxError whose lineno is 0 before 3.14 (and offset 0 or -1):
// JSON says null for a line or column there is not, else what CPython says.
per_python!(undecodable_sources_have_no_line, |py: &Python| {
    let tree = Tree::new();
    tree.write("bom.py", b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = 1\n");
    tree.write("unknown.py", b"# -*- coding: no-such-codec -*-\nx = 1\n");
    let run = tree.hashpyc().arg("compile").python(py).args(["--format", "json", "."]).run();
    run.assert_code(1);
    let lines = json_lines(&run.stdout);
    for name in ["bom.py", "unknown.py"] {
        let reference = py.run(
            &[
                "-c",
                "import sys\ntry:\n compile(open(sys.argv[1],'rb').read(), sys.argv[1], 'exec')\nexcept SyntaxError as e:\n print(e.lineno, e.offset); print(e.msg)",
                name,
            ],
            tree.root(),
        );
        let (position, message) = reference.trim().split_once('\n').expect("a SyntaxError");
        let (line, column) = position.split_once(' ').unwrap();
        let number = |n: &str| n.parse::<i64>().ok().filter(|&n| n > 0);
        let f = lines
            .iter()
            .find(|l| l["path"] == format!("./{name}"))
            .unwrap_or_else(|| panic!("{}", run.stdout));
        assert_eq!(f["type"], "failure");
        assert_eq!(f["message"], message, "{f}");
        assert_eq!(f["line"].as_i64(), number(line), "{name}: CPython says {position}: {f}");
        assert_eq!(f["column"].as_i64(), number(column), "{name}: CPython says {position}: {f}");
    }
});

#[test]
fn warnings_as_errors_with_the_cache() {
    let Some(py) = harness::python_or_skip((3, 12), "compile::warnings_as_errors_with_the_cache") else {
        return;
    };
    let cache = Tree::new();
    let (first, second) = (Tree::new(), Tree::new());
    for (rel, text) in GATE_SOURCES {
        first.write(rel, text);
        second.write(rel, text);
    }
    let dir = cache.path("bytecode");
    // A run without -W error fills the cache; its entries must not let a -W error run pass.
    first.hashpyc().arg("compile").python(py).args(["-q", "--cache"]).arg(&dir).arg(".").run().assert_code(0);
    let run = second
        .hashpyc()
        .arg("compile")
        .python(py)
        .args(["-W", "error", "--format", "json", "--cache"])
        .arg(&dir)
        .arg(".")
        .run();
    run.assert_code(1);
    let lines = json_lines(&run.stdout);
    let summary = lines.last().unwrap();
    assert_eq!(summary["from_cache"], 2, "{}", run.stdout);
    assert_eq!(summary["failed"], 2, "{}", run.stdout);
    assert_eq!(summary["cache"]["local"]["hits"], 4, "{}", run.stdout);
    assert!(
        !pyc_of(&second, py, "warn_assert.py").exists() && !pyc_of(&second, py, "warn_escape.py").exists()
    );
    // A -W error run's compiles fill the cache with their warnings: a plain run hits them.
    let third = Tree::new();
    for (rel, text) in GATE_SOURCES {
        third.write(rel, text);
    }
    let cache2 = cache.path("other");
    second
        .hashpyc()
        .arg("compile")
        .python(py)
        .args(["-q", "-W", "error", "--force", "--cache"])
        .arg(&cache2)
        .arg(".")
        .run();
    let plain = third.hashpyc().arg("compile").python(py).args(["--cache"]).arg(&cache2).arg(".").run();
    plain.assert_code(0);
    assert!(plain.stderr.contains("4 from the cache"), "{}", plain.stderr);
    assert!(plain.stderr.contains("warn_assert.py:2: SyntaxWarning"), "{}", plain.stderr);
}

#[test]
fn json_output_parses_and_agrees_with_python() {
    use std::os::unix::ffi::OsStrExt;
    let Some(py) = harness::python_or_skip((3, 12), "compile::json_output_parses_and_agrees_with_python")
    else {
        return;
    };
    let state = Tree::new();
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("bad.py", "x = 1\ndef (:\n");
    tree.write("warns.py", "x = 1\nassert (x, 'always true')\n");
    tree.write("blocked/m.py", "y = 2\n");
    // A file where the pyc directory should be: a per-file error.
    tree.write("blocked/__pycache__", "");
    let raw = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    tree.write(raw, "def (:\n");
    let compile_json = || {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", state.root())
            .arg("compile")
            .python(py)
            .args(["--format", "json", "."])
            .run()
    };
    let run = compile_json();
    run.assert_code(1);
    assert_eq!(run.stderr, "", "JSON mode prints no text");
    let lines = json_lines(&run.stdout);
    let of = |kind: &str| lines.iter().filter(|l| l["type"] == kind).collect::<Vec<_>>();
    // The failure and the warning say what CPython's own compile() says.
    let out = py
        .cmd()
        .args(["-c", "import sys\ntry:\n compile(open('bad.py','rb').read(),'bad.py','exec')\nexcept SyntaxError as e:\n print(e.lineno, e.offset, e.msg)"])
        .current_dir(tree.root())
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let failures = of("failure");
    assert_eq!(failures.len(), 2, "{}", run.stdout);
    let bad = failures.iter().find(|f| f["path"] == "./bad.py").expect("bad.py failed");
    assert_eq!(format!("{} {} {}", bad["line"], bad["column"], bad["message"].as_str().unwrap()), expected);
    assert_eq!(bad["kind"], "SyntaxError");
    assert_eq!(bad["python"], format!("{}.{}", py.minor.0, py.minor.1));
    let undecodable = failures.iter().find(|f| f["path"].is_object()).expect("non-UTF-8 path");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(undecodable["path"]["bytes"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, b"./caf\xe9.py");
    let warnings = of("warning");
    assert_eq!(warnings.len(), 1, "{}", run.stdout);
    assert_eq!(
        (&warnings[0]["path"], &warnings[0]["kind"], &warnings[0]["line"]),
        (&"./warns.py".into(), &"SyntaxWarning".into(), &2.into())
    );
    let errors = of("error");
    assert_eq!(errors.len(), 1, "{}", run.stdout);
    assert_eq!(errors[0]["path"], "./blocked/m.py");
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (&summary["sources"], &summary["compiled"], &summary["failed"], &summary["errors"]),
        (&5.into(), &2.into(), &2.into(), &1.into())
    );
    assert_eq!(summary["targets"][0]["version"], py.version);
    assert_eq!(summary["targets"][0]["python"], py.path.to_str().unwrap());
    assert!(summary["elapsed"].as_f64().is_some() && summary["cache"].is_null(), "{summary}");
    // A second run: the compiled files are fresh, the failure is remembered.
    let again = compile_json();
    let lines = json_lines(&again.stdout);
    let summary = lines.last().unwrap();
    assert_eq!((&summary["fresh"], &summary["compiled"]), (&2.into(), &0.into()), "{}", again.stdout);
    assert!(lines.iter().any(|l| l["path"] == "./bad.py" && l["remembered"] == true), "{}", again.stdout);
    // A path that does not exist is an error object in both commands (exit status 2), and
    // the summary still ends the output.
    for command in ["compile", "check"] {
        let run = tree
            .hashpyc()
            .env("HASHPYC_STATE_DIR", state.root())
            .arg(command)
            .python(py)
            .args(["--format", "json", "no-such-dir"])
            .run();
        run.assert_code(2);
        let lines = json_lines(&run.stdout);
        let errors: Vec<_> = lines.iter().filter(|l| l["type"] == "error").collect();
        assert_eq!(errors.len(), 1, "{command}: {}", run.stdout);
        assert_eq!(
            (&errors[0]["path"], &errors[0]["python"]),
            (&"no-such-dir".into(), &serde_json::Value::Null)
        );
        assert!(errors[0]["message"].as_str().unwrap().contains("no such file"), "{}", errors[0]);
        let summary = lines.last().unwrap();
        assert_eq!((&summary["type"], &summary["errors"]), (&"summary".into(), &1.into()), "{command}");
    }
    // Text stays the default: nothing on stdout.
    let text =
        tree.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile").python(py).args(["."]).run();
    assert_eq!(text.stdout, "");
    assert!(text.stderr.contains("bad.py:2:5: SyntaxError"), "{}", text.stderr);
}

// CPython 3.7 and 3.8's parser raises a MemoryError without a message for code nested too
// deeply, after writing `s_push: parser stack overflow` to stderr (the line compileall
// shows); hashpyc reported `m.py: MemoryError: ` (JSON `"message":""`). Now the message is
// what CPython wrote.
#[test]
fn parser_stack_overflow_is_named() {
    for minor in [(3, 7), (3, 8)] {
        let Some(py) = harness::python_or_skip(minor, "compile::parser_stack_overflow_is_named") else {
            continue;
        };
        let tree = Tree::new();
        tree.write("m.py", format!("x = {}{}\n", "[".repeat(150), "]".repeat(150)));
        let run = tree.hashpyc().args(["compile", "--format", "json"]).python(py).arg("m.py").run();
        run.assert_code(1);
        let failure: serde_json::Value = run
            .stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["type"] == "failure")
            .unwrap_or_else(|| panic!("{}", run.stdout));
        assert_eq!(
            (failure["kind"].as_str(), failure["message"].as_str()),
            (Some("MemoryError"), Some("s_push: parser stack overflow")),
            "{failure}"
        );
        let run = tree.hashpyc().arg("compile").python(py).arg("m.py").run();
        run.assert_code(1);
        assert!(run.stderr.contains("m.py: MemoryError: s_push: parser stack overflow"), "{}", run.stderr);
        assert!(tree.pycs().is_empty());
    }
}

// The parser's own nesting limit is the same every time for a source and an interpreter
// build where it is a fixed count: 3.7 and 3.8's parser stack (`s_push: parser stack
// overflow`), 3.12 and 3.13's `MAXSTACK` (`Parser stack overflowed - Python source too
// complex to parse`). Its MemoryError was never remembered, so a tree holding such a file
// started Python on every run; now the state directory remembers it, and a second run over
// the unchanged tree starts no Python and reports the same failure. On 3.9 to 3.11 (a
// MemoryError without a message, as when memory runs out) and 3.14+ (the same message also
// from a check of the C stack, which `ulimit -s` sizes) the file is compiled again.
per_python!(a_fixed_parser_limit_is_remembered, |py: &Python| {
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("deep.py", format!("x = {}1\n", "-".repeat(10_000)));
    let (wrapper, starts) = tree.counting_python(py);
    let state = tempfile::tempdir().unwrap();
    let run = || counted_compile(&tree, state.path(), &wrapper, &[], &["good.py", "deep.py"]);
    let first = run();
    first.assert_code(1);
    let error = first.stderr.lines().find(|l| l.starts_with("deep.py: MemoryError: ")).map(str::to_string);
    let error = error.unwrap_or_else(|| panic!("{}", first.stderr));
    let n = starts();
    let second = run();
    second.assert_code(1);
    assert!(second.stderr.contains(&error), "the same failure again:\n{}", second.stderr);
    if matches!(py.minor, (3, 7) | (3, 8) | (3, 12) | (3, 13)) {
        // Remembered: no Python started but the worker confirming the counting launcher's
        // remembered probe, nothing compiled (the JSON twin of the text run).
        assert_eq!(starts(), n + 1, "Python started but the confirming worker:\n{}", second.stderr);
        let json =
            tree.remembered_through_launcher(state.path(), (&wrapper, &starts), &["good.py", "deep.py"]);
        json.assert_code(1);
    } else {
        assert!(starts() > n, "{error}: not told apart from the machine's limits, compiled again");
    }
});

// 3.12's compiler (its AST optimizer and symbol table) limits nesting by a count of C calls
// from the depth the worker compiles at, the same for every compile: `x = ` and 3 000 unary
// minuses raise `RecursionError: maximum recursion depth exceeded during compilation`
// whatever the stack size (`ulimit -s`: not the C stack, which 3.14+ checks). It was never
// remembered, so a tree holding such a file started Python on every run; now the state
// directory remembers it as the parser's fixed limit (a_fixed_parser_limit_is_remembered):
// under each stack size, the second run reports the same failure and starts no Python.
#[test]
fn a_fixed_compiler_limit_is_remembered() {
    let Some(py) = harness::python_or_skip((3, 12), "compile::a_fixed_compiler_limit_is_remembered") else {
        return;
    };
    let tree = Tree::new();
    tree.write("good.py", "x = 1\n");
    tree.write("deep.py", format!("x = {}1\n", "-".repeat(3_000)));
    let (wrapper, starts) = tree.counting_python(py);
    let error = "deep.py: RecursionError: maximum recursion depth exceeded during compilation";
    for stack in ["1024", "8192", "65536"] {
        let state = tempfile::tempdir().unwrap();
        let run = || {
            tree.hashpyc()
                .env("HASHPYC_STATE_DIR", state.path())
                .args(["compile", "--python"])
                .arg(&wrapper)
                .args(["good.py", "deep.py"])
                .ulimit(&format!("-s {stack}"))
                .run()
        };
        let first = run();
        first.assert_code(1);
        assert!(first.stderr.contains(error), "ulimit -s {stack}:\n{}", first.stderr);
        let n = starts();
        let second = run();
        second.assert_code(1);
        assert!(
            second.stderr.contains(error),
            "ulimit -s {stack}: the same failure again:\n{}",
            second.stderr
        );
        // Remembered: no Python started but the worker confirming the counting launcher's
        // remembered probe, nothing compiled (the JSON twin of the text run).
        assert_eq!(
            starts(),
            n + 1,
            "ulimit -s {stack}: Python started but the confirming worker:\n{}",
            second.stderr
        );
        let json = tree
            .hashpyc()
            .env("HASHPYC_STATE_DIR", state.path())
            .args(["compile", "--format", "json", "--python"])
            .arg(&wrapper)
            .args(["good.py", "deep.py"])
            .ulimit(&format!("-s {stack}"))
            .run();
        json.assert_code(1);
        assert_eq!(
            starts(),
            n + 2,
            "ulimit -s {stack}: Python started but the confirming worker:\n{}",
            json.stderr
        );
        let lines = json_lines(&json.stdout);
        let failure =
            lines.iter().find(|l| l["type"] == "failure").unwrap_or_else(|| panic!("{}", json.stdout));
        assert_eq!(
            (&failure["kind"], &failure["remembered"]),
            (&"RecursionError".into(), &true.into()),
            "{failure}"
        );
        let summary = lines.iter().find(|l| l["type"] == "summary").expect("a summary");
        assert_eq!(summary["compiled"], 0, "ulimit -s {stack}: {summary}");
    }
}

/// A working directory whose absolute path is longer than PATH_MAX (reached step by step,
/// as `cd` does): the configuration of a directory above it, itself too deep to name from
/// the root, is read, and the pyc is written, as compileall writes it there.
#[test]
fn a_working_directory_longer_than_path_max() {
    let Some(py) = harness::any_python("compile::a_working_directory_longer_than_path_max") else { return };
    let tree = Tree::new();
    let script = r#"
d=$(printf 'd%.0s' $(seq 250))
for i in $(seq 17); do mkdir "$d" && cd "$d" || exit 9; done
printf 'exclude = ["skipped.py"]\n' > .hashpyc.toml
mkdir "$d" && cd "$d" || exit 9
printf 'x = 1\n' > m.py
printf 'x = 2\n' > skipped.py
"$HP" compile --python "$PY"; echo "compile: $?"
"$HP" check --python "$PY"; echo "check: $?"
ls -a __pycache__
"#;
    // bash: dash's `cd` names the new directory from the root, which fails past PATH_MAX.
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .current_dir(tree.root())
        .env("HP", env!("CARGO_BIN_EXE_hashpyc"))
        .env("PY", &py.path)
        .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
        .env("NO_COLOR", "1")
        .env_remove("HASHPYC_CONFIG")
        .env_remove("HASHPYC_NO_CONFIG")
        .env_remove("PYTHONPYCACHEPREFIX")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pyc = format!("m.cpython-{}{}.pyc", py.minor.0, py.minor.1);
    assert!(stdout.contains("compile: 0\n"), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("check: 0\n"), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The pyc and nothing else: no temporary file left, `skipped.py` excluded.
    assert!(stdout.ends_with(&format!("\n.\n..\n{pyc}\n")), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

// File names at the limits: a name that is not UTF-8 and a pyc name of exactly NAME_MAX
// (255) bytes are written, as py_compile writes them; a pyc name one byte longer is an
// error naming the pyc, and the run goes on.
per_python!(pyc_names_up_to_name_max_are_written, |py: &Python| {
    use std::os::unix::ffi::OsStrExt;
    let tree = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    let stem_len = |pyc_len: usize| pyc_len - ".".len() - tag.len() - ".pyc".len();
    let latin1 = vec![0xe9u8; 80];
    let longest = vec![0xe9u8; stem_len(255)];
    let too_long = "a".repeat(stem_len(256));
    for stem in [&latin1[..], &longest[..], too_long.as_bytes()] {
        let name = std::ffi::OsStr::from_bytes(&[stem, b".py"].concat()).to_os_string();
        tree.write(name, b"x = 1\n");
    }
    let run = tree.hashpyc().args(["compile", "."]).python(py).run();
    run.assert_code(1);
    let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error")).collect();
    let pyc_too_long = format!("./__pycache__/{too_long}.{tag}.pyc");
    assert_eq!(
        errors,
        [format!("error: `./{too_long}.py`: cannot write `{pyc_too_long}`: File name too long")]
    );
    let mut written: Vec<Vec<u8>> = std::fs::read_dir(tree.path("__pycache__"))
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    written.sort();
    let pyc = |stem: &[u8]| [stem, b".", tag.as_bytes(), b".pyc"].concat();
    assert_eq!(written, vec![pyc(&latin1), pyc(&longest)]);
    assert_eq!(pyc(&longest).len(), 255);
    // Both are the pycs a check finds fresh.
    std::fs::remove_file(tree.path(format!("{too_long}.py"))).unwrap();
    let run = tree.hashpyc().args(["check", "."]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("Checked 2 files"), "{}", run.stderr);
});

// A `__pycache__` that is a symbolic link to a directory outside the tree walked was
// followed in silence (as CPython follows it), so a tree could have hashpyc write pycs over
// another directory's. One warning per such directory names the link, its target as
// resolved and the root; a link to a directory inside the root, and the run without a
// `__pycache__` layout (`--pycache-prefix`), say nothing. The pycs are written through the
// link as before, and `check` finds them fresh.
#[test]
fn a_pycache_linked_out_of_the_tree_is_warned_of() {
    let Some(py) = harness::any_python("compile::a_pycache_linked_out_of_the_tree_is_warned_of") else {
        return;
    };
    let tree = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    tree.write("repo/out/m.py", "x = 1\n");
    tree.write("repo/in/m.py", "y = 2\n");
    tree.write("repo/sub/nothing.txt", "");
    std::fs::create_dir_all(tree.path("other/__pycache__")).unwrap();
    std::fs::create_dir_all(tree.path("repo/shared")).unwrap();
    std::os::unix::fs::symlink("../../other/__pycache__", tree.path("repo/out/__pycache__")).unwrap();
    std::os::unix::fs::symlink("../shared", tree.path("repo/in/__pycache__")).unwrap();
    // A linked `__pycache__` of a directory without sources gets no pyc: nothing to say.
    std::os::unix::fs::symlink("../../other/__pycache__", tree.path("repo/sub/__pycache__")).unwrap();
    let run = tree.hashpyc().args(["compile", "repo"]).python(py).run();
    run.assert_code(0);
    let target = std::fs::canonicalize(tree.path("other/__pycache__")).unwrap();
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: `repo/out/__pycache__` is a symbolic link to `{}`, outside `repo`: the pycs of \
             `repo/out` are written there, where whatever imports from that directory runs them",
            target.display()
        )],
        "{}",
        run.stderr
    );
    assert!(tree.path(format!("other/__pycache__/m.{tag}.pyc")).is_file(), "{}", run.stderr);
    assert!(tree.path(format!("repo/shared/m.{tag}.pyc")).is_file(), "{}", run.stderr);
    let check = tree.hashpyc().args(["check", "repo"]).python(py).run();
    check.assert_code(0);
    // Nothing left to write: nothing is written there, nothing said.
    let again = tree.hashpyc().args(["compile", "repo"]).python(py).run();
    again.assert_code(0);
    assert!(!again.stderr.contains("symbolic link"), "{}", again.stderr);
    // From inside the tree, the root is the working directory.
    std::fs::remove_file(tree.path(format!("other/__pycache__/m.{tag}.pyc"))).unwrap();
    let run = harness::Hashpyc::new(&tree.path("repo")).arg("compile").python(py).run();
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "warning: `out/__pycache__` is a symbolic link to `{}`, outside `.`:",
            target.display()
        )),
        "{}",
        run.stderr
    );
    // Pycs under a prefix do not go into `__pycache__`.
    std::fs::remove_file(tree.path(format!("other/__pycache__/m.{tag}.pyc"))).unwrap();
    let prefix = tree.path("prefix");
    if py.minor >= (3, 8) {
        let run =
            tree.hashpyc().arg("compile").python(py).arg("--pycache-prefix").arg(&prefix).arg("repo").run();
        run.assert_code(0);
        assert!(!run.stderr.contains("symbolic link"), "{}", run.stderr);
    }
}

// A file named on the command line whose `__pycache__` is a symbolic link out of the
// working directory, and a symbolic link inside a `--pycache-prefix` tree that leads out of
// it, are warned of as a walked directory's linked `__pycache__` is.
#[test]
fn a_pycache_linked_out_for_a_named_file_or_in_the_prefix_is_warned_of() {
    let test = "compile::a_pycache_linked_out_for_a_named_file_or_in_the_prefix_is_warned_of";
    let Some(py) = harness::any_python(test) else { return };
    let tree = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    tree.write("repo/pkg/m.py", "x = 1\n");
    std::fs::create_dir_all(tree.path("other/__pycache__")).unwrap();
    std::os::unix::fs::symlink("../../other/__pycache__", tree.path("repo/pkg/__pycache__")).unwrap();
    let target = std::fs::canonicalize(tree.path("other/__pycache__")).unwrap();
    let warnings = |run: &harness::Run| -> Vec<String> {
        run.stderr.lines().filter(|l| l.starts_with("warning:")).map(str::to_string).collect()
    };
    let run = harness::Hashpyc::new(&tree.path("repo")).args(["compile", "pkg/m.py"]).python(py).run();
    run.assert_code(0);
    assert_eq!(
        warnings(&run),
        [format!(
            "warning: `pkg/__pycache__` is a symbolic link to `{}`, outside `.`: the pycs of `pkg` are \
             written there, where whatever imports from that directory runs them",
            target.display()
        )],
        "{}",
        run.stderr
    );
    assert!(tree.path(format!("other/__pycache__/m.{tag}.pyc")).is_file(), "{}", run.stderr);
    // From the top, the link stays inside the working directory: nothing to say.
    std::fs::remove_file(tree.path(format!("other/__pycache__/m.{tag}.pyc"))).unwrap();
    let run = tree.hashpyc().args(["compile", "repo/pkg/m.py"]).python(py).run();
    run.assert_code(0);
    assert_eq!(warnings(&run), Vec::<String>::new(), "{}", run.stderr);
    if py.minor < (3, 8) {
        return;
    }
    // The prefix's mirror of `repo/pkg` is a link to a directory outside the prefix.
    let prefix = tree.path("prefix");
    let source_dir = std::fs::canonicalize(tree.path("repo/pkg")).unwrap();
    let mirror = prefix.join(source_dir.strip_prefix("/").unwrap());
    std::fs::create_dir_all(mirror.parent().unwrap()).unwrap();
    std::fs::create_dir(tree.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(tree.path("elsewhere"), &mirror).unwrap();
    let run = tree.hashpyc().arg("compile").python(py).arg("--pycache-prefix").arg(&prefix).arg("repo").run();
    run.assert_code(0);
    assert_eq!(
        warnings(&run),
        [format!(
            "warning: `{}` is a symbolic link to `{}`, outside the pycache prefix `{}`: the pycs of \
             `repo/pkg` are written there, where whatever imports from that directory runs them",
            mirror.display(),
            std::fs::canonicalize(tree.path("elsewhere")).unwrap().display(),
            prefix.display()
        )],
        "{}",
        run.stderr
    );
    assert!(tree.path(format!("elsewhere/m.{tag}.pyc")).is_file(), "{}", run.stderr);
    // A link inside the prefix leading inside it says nothing.
    std::fs::remove_file(&mirror).unwrap();
    std::fs::create_dir(prefix.join("kept")).unwrap();
    std::os::unix::fs::symlink(prefix.join("kept"), &mirror).unwrap();
    let run = tree.hashpyc().arg("compile").python(py).arg("--pycache-prefix").arg(&prefix).arg("repo").run();
    run.assert_code(0);
    assert_eq!(warnings(&run), Vec::<String>::new(), "{}", run.stderr);
    assert!(prefix.join(format!("kept/m.{tag}.pyc")).is_file(), "{}", run.stderr);
}

// `compile -n` fails as the run that follows it does, with the same error: a `__pycache__`
// that is a symbolic link to nothing or a loop (said in words, not mkdir's "File exists"),
// and a pyc name longer than NAME_MAX.
#[test]
fn dry_run_fails_where_the_run_fails_to_write() {
    let Some(py) = harness::any_python("compile::dry_run_fails_where_the_run_fails_to_write") else { return };
    let tree = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    tree.write("dangling/m.py", "x = 1\n");
    std::os::unix::fs::symlink("nowhere", tree.path("dangling/__pycache__")).unwrap();
    tree.write("loop/m.py", "x = 1\n");
    std::os::unix::fs::symlink("__pycache__", tree.path("loop/__pycache__")).unwrap();
    let stem = "a".repeat(256 - ".".len() - tag.len() - ".pyc".len());
    tree.write(format!("long/{stem}.py"), "x = 1\n");
    let want = [
        "error: `dangling/m.py`: cannot create directory `dangling/__pycache__`: a symbolic link to `nowhere`, which does not exist".to_string(),
        format!("error: `long/{stem}.py`: cannot write `long/__pycache__/{stem}.{tag}.pyc`: File name too long"),
        "error: `loop/m.py`: cannot create directory `loop/__pycache__`: a symbolic link loop".to_string(),
    ];
    let errors = |run: &harness::Run| {
        let mut e: Vec<String> =
            run.stderr.lines().filter(|l| l.starts_with("error")).map(String::from).collect();
        e.sort();
        e
    };
    let paths = ["dangling", "loop", "long"];
    let dry = tree.hashpyc().args(["compile", "-n"]).args(paths).python(py).run();
    dry.assert_code(1);
    assert_eq!(errors(&dry), want, "{}", dry.stderr);
    assert!(!dry.stdout.contains("(no pyc)"), "{}", dry.stdout);
    let run = tree.hashpyc().arg("compile").args(paths).python(py).run();
    run.assert_code(1);
    assert_eq!(errors(&run), want, "{}", run.stderr);
}

// A source whose opt-0 pyc name fits NAME_MAX and whose opt-2 one does not: the opt-0 pyc
// is written and counted (and stored in the cache, which serves it next time), the opt-2
// level is the error; the dry run counts as the run.
#[test]
fn a_level_written_before_one_that_fails_is_counted() {
    let Some(py) = harness::any_python("compile::a_level_written_before_one_that_fails_is_counted") else {
        return;
    };
    let tree = Tree::new();
    let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
    // opt-0's name fits, `.opt-2` makes it longer than 255 bytes.
    let stem = "b".repeat(255 - ".".len() - tag.len() - ".pyc".len() - 1);
    tree.write(format!("ln/{stem}.py"), "x = 1\n");
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "compile",
        "--format",
        "json",
        "-o",
        "0",
        "-o",
        "2",
        "--cache",
        cache.path().to_str().unwrap(),
        "ln",
    ];
    let summary = |run: &harness::Run| -> serde_json::Value {
        let last = run.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|_| panic!("{}", run.stdout))
    };
    let dry = tree.hashpyc().args(["compile", "-n"]).args(&args[1..]).python(py).run();
    let run = tree.hashpyc().args(args).python(py).run();
    run.assert_code(1);
    dry.assert_code(1);
    assert!(run.stdout.contains(&format!(".{tag}.opt-2.pyc`: File name too long")), "{}", run.stdout);
    let on_disk = tree.pycs();
    assert_eq!(on_disk, [PathBuf::from(format!("ln/__pycache__/{stem}.{tag}.pyc"))]);
    let (s, d) = (summary(&run), summary(&dry));
    assert_eq!(
        (s["compiled_sources"].as_u64(), s["compiled_pycs"].as_u64(), s["errors"].as_u64()),
        (Some(1), Some(on_disk.len() as u64), Some(1)),
        "{s}"
    );
    for key in ["compiled_sources", "compiled_pycs", "errors"] {
        assert_eq!(d[key], s[key], "{key}: {d}");
    }
    // Stored: the next run writes the same pyc from the cache.
    let pyc = tree.read(&on_disk[0]);
    std::fs::remove_file(tree.path(&on_disk[0])).unwrap();
    let again = tree.hashpyc().args(args).python(py).run();
    again.assert_code(1);
    let a = summary(&again);
    assert_eq!((a["compiled_pycs"].as_u64(), a["from_cache_pycs"].as_u64()), (Some(1), Some(1)), "{a}");
    assert_eq!(tree.read(&on_disk[0]), pyc);
}

// `compile --format github`: a source that does not compile is an `::error` annotation on
// the line and column CPython's own `compile()` reports, with its exception and message; a
// file whose pyc cannot be written is an `::error` on that file; the summary stays text on
// stderr. The same annotations again when the failure is remembered (nothing changed).
per_python!(github_annotations_for_sources_that_do_not_compile, |py: &Python| {
    let tree = Tree::new();
    tree.write("ok.py", "x = 1\n");
    tree.write("bad.py", "x = 1\ndef f(:\n    pass\n");
    tree.write("sub/indent.py", "if True:\nprint(1)\n");
    tree.write("sub/paren.py", "a = (1,\n     2 +)\n");
    tree.write("w/__pycache__", "");
    tree.write("w/m.py", "m = 1\n");
    let bad = ["bad.py", "sub/indent.py", "sub/paren.py"];
    let script = "import sys\n\
                  for p in sys.argv[1:]:\n\
                  \x20   try:\n\
                  \x20       compile(open(p, 'rb').read(), p, 'exec')\n\
                  \x20   except SyntaxError as e:\n\
                  \x20       print('%s\\t%s\\t%s\\t%s\\t%s' % (p, e.lineno, e.offset or 0, type(e).__name__, e.msg))\n";
    let mut args = vec!["-c", script];
    args.extend(bad);
    let cpython = py.run(&args, tree.root());
    let title = format!("hashpyc compile (CPython {}.{})", py.minor.0, py.minor.1);
    let mut want: Vec<String> = cpython
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let col = if f[2] == "0" { String::new() } else { format!(",col={}", f[2]) };
            format!("::error file={},line={}{col},title={title}::{}: {}", f[0], f[1], f[3], f[4])
        })
        .collect();
    assert_eq!(want.len(), bad.len(), "CPython's errors: {cpython}");
    want.push(format!(
        "::error file=w/m.py,title={title}::cannot create directory `w/__pycache__`: a file of that name is there"
    ));
    want.sort();
    for round in ["first", "remembered"] {
        let run = tree.hashpyc().args(["compile", "--format", "github"]).python(py).run();
        run.assert_code(1);
        let mut got: Vec<&str> = run.stdout.lines().collect();
        got.sort();
        assert_eq!(got, want, "{round}: {}", run.stderr);
        assert!(run.stderr.contains("3 failed") && run.stderr.contains("1 error"), "{round}: {}", run.stderr);
        assert!(!run.stderr.contains("::"), "{round}: {}", run.stderr);
    }
    assert!(tree.path(format!("__pycache__/ok.cpython-{}{}.pyc", py.minor.0, py.minor.1)).is_file());
});

// A file's warnings come in the order of their lines, as CPython raises them (the note's
// text put `m.py:10:` before `m.py:2:`), in text and JSON alike.
per_python!(a_files_warnings_come_in_line_order, |py: &Python| {
    let tree = Tree::new();
    let mut source = String::from("a = 1\nb = \"\\d\"\n");
    for i in 3..10 {
        source.push_str(&format!("v{i} = {i}\n"));
    }
    source.push_str("j = \"\\q\"\nassert (j, \"m\")\n");
    tree.write("m.py", &source);
    let reference = py.run(
        &[
            "-c",
            "import sys, warnings\n\
             with open('m.py', 'rb') as f:\n    source = f.read()\n\
             with warnings.catch_warnings(record=True) as caught:\n    \
             warnings.simplefilter('always')\n    \
             compile(source, 'm.py', 'exec', dont_inherit=True)\n\
             for w in caught:\n    print('m.py:%d: %s' % (w.lineno, w.category.__name__))",
        ],
        tree.root(),
    );
    let reference: Vec<&str> = reference.lines().collect();
    assert!(reference.len() >= 2, "{reference:?}");
    let state = Tree::new();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.root());
    let text = hashpyc().args(["compile", "-v", "--force"]).python(py).arg("m.py").run();
    text.assert_code(0);
    let shown: Vec<String> = text
        .stderr
        .lines()
        .filter(|l| l.starts_with("m.py:"))
        .map(|l| l.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(shown, reference, "{}", text.stderr);
    let json = hashpyc().args(["compile", "--force", "--format", "json"]).python(py).arg("m.py").run();
    json.assert_code(0);
    let listed: Vec<String> = json_lines(&json.stdout)
        .iter()
        .filter(|l| l["type"] == "warning")
        .map(|l| format!("m.py:{}: {}", l["line"], l["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, reference, "{}", json.stdout);
});

// A warning CPython attributes to no line of the source: 3.12 and 3.13's constant folder
// warns of `~True` through the caller's frame (the worker's own script, whose line was
// reported as the file's: `m.py:385`), and drops the exception it becomes under
// `python -W error`, so the file compiles there. hashpyc shows it without a line (JSON
// `"line": null`) and fails no file for it under -W error, on the run that compiles and
// the one that remembers; a warning at a line of the source still fails its file.
per_python!(a_warning_at_no_line_of_the_source_fails_nothing_under_w_error, |py: &Python| {
    let sources =
        [("fold.py", "import os\nx = ~True\n"), ("warn_assert.py", "x = 1\nassert (x, 'always true')\n")];
    let tree = Tree::new();
    for (rel, text) in sources {
        tree.write(rel, text);
    }
    let files = sources.map(|(rel, _)| rel);
    let reference = w_error_reference(py, &tree, &files);
    assert!(reference["fold.py"].is_null(), "{reference}");
    assert!(!reference["warn_assert.py"].is_null(), "{reference}");
    // Where CPython's own compile() puts each warning of fold.py: in the file, or not.
    let recorded = py.run(
        &[
            "-c",
            "import warnings\n\
             with open('fold.py', 'rb') as f:\n    source = f.read()\n\
             with warnings.catch_warnings(record=True) as caught:\n    \
             warnings.simplefilter('always')\n    \
             compile(source, 'fold.py', 'exec', dont_inherit=True)\n\
             for w in caught:\n    \
             print('%s|%s|%s' % (w.filename == 'fold.py', w.category.__name__, w.message))",
        ],
        tree.root(),
    );
    let recorded: Vec<(bool, String, String)> = recorded
        .lines()
        .map(|l| {
            let mut parts = l.splitn(3, '|');
            let mut next = || parts.next().unwrap().to_string();
            (next() == "True", next(), next())
        })
        .collect();
    if py.minor == (3, 12) || py.minor == (3, 13) {
        assert!(recorded.iter().any(|(in_file, ..)| !in_file), "{recorded:?}");
    }
    let state = Tree::new();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.root());
    let shown =
        hashpyc().args(["compile", "-v", "--force", "--format", "json"]).python(py).arg("fold.py").run();
    shown.assert_code(0);
    let warnings: Vec<serde_json::Value> =
        json_lines(&shown.stdout).into_iter().filter(|l| l["type"] == "warning").collect();
    assert_eq!(warnings.len(), recorded.len(), "{}", shown.stdout);
    for (w, (in_file, kind, message)) in warnings.iter().zip(&recorded) {
        assert_eq!((w["kind"].as_str().unwrap(), w["message"].as_str().unwrap()), (&**kind, &**message));
        assert_eq!(w["line"].is_null(), !in_file, "{w}");
    }
    let text = hashpyc().args(["compile", "-v", "--force"]).python(py).arg("fold.py").run();
    text.assert_code(0);
    for (_, kind, message) in recorded.iter().filter(|(in_file, ..)| !in_file) {
        assert!(text.stderr.contains(&format!("fold.py: {kind}: {message}")), "{}", text.stderr);
    }
    // -W error: what `python -W error` fails, twice (the second run from memory).
    for _ in 0..2 {
        let run = hashpyc().args(["compile", "-W", "error", "--format", "json"]).python(py).args(files).run();
        run.assert_code(1);
        let failed: Vec<String> = json_lines(&run.stdout)
            .iter()
            .filter(|l| l["type"] == "failure")
            .map(|l| l["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(failed, ["warn_assert.py"], "{}", run.stdout);
        assert!(pyc_of(&tree, py, "fold.py").exists());
    }
    // From the bytecode cache (no state directory: the second tree's fold.py is a hit).
    let cache = Tree::new();
    for hit in [false, true] {
        let fresh = Tree::new();
        for (rel, text) in sources {
            fresh.write(rel, text);
        }
        let cmd = fresh.hashpyc().env("HASHPYC_NO_STATE", "1").args(["compile", "-W", "error"]);
        let run =
            cmd.arg("--cache").arg(cache.root()).python(py).args(["--format", "json"]).args(files).run();
        run.assert_code(1);
        let lines = json_lines(&run.stdout);
        let failed: Vec<&str> =
            lines.iter().filter(|l| l["type"] == "failure").map(|l| l["path"].as_str().unwrap()).collect();
        assert_eq!(failed, ["warn_assert.py"], "{}", run.stdout);
        assert_eq!(lines.last().unwrap()["from_cache"], u64::from(hit), "{}", run.stdout);
    }
    // Beside a warning at a line of the source, which fails the file, it stays a warning.
    tree.write("both.py", "x = ~True\nassert (x, 'always true')\n");
    let run = hashpyc().args(["compile", "-W", "error", "--format", "json"]).python(py).arg("both.py").run();
    run.assert_code(1);
    let lines = json_lines(&run.stdout);
    let failures: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "failure").collect();
    assert!(!failures.is_empty(), "{}", run.stdout);
    assert!(failures.iter().all(|f| f["line"] == 2), "{}", run.stdout);
    let warnings = lines.iter().filter(|l| l["type"] == "warning");
    assert_eq!(warnings.count(), recorded.iter().filter(|(in_file, ..)| !in_file).count(), "{}", run.stdout);
});

// A file that warns and then does not compile (`break` outside a loop after an always-true
// assert, or after an invalid escape): `python -W error` stops at the warning, its error (a
// SyntaxError made from it, 3.8+; on 3.7 the assert's SyntaxWarning itself), and never
// reaches the SyntaxError after it. Under -W error hashpyc fails such a file by its warning,
// as one that only warns, and does not report the failure CPython never reaches there:
// compiled, remembered by the state directory, from the bytecode cache; in JSON, text,
// GitHub annotations and the dry run. Without -W error the warning is a warning and the
// SyntaxError the failure.
per_python!(a_warning_before_a_syntax_error_is_the_failure_under_w_error, |py: &Python| {
    const SOURCES: &[(&str, &str)] = &[
        ("assert_then_break.py", "x = 1\nassert (x, 'always true')\nbreak\n"),
        ("escape_then_break.py", "x = '\\d'\nbreak\n"),
    ];
    let tree = Tree::new();
    for (rel, text) in SOURCES {
        tree.write(rel, text);
    }
    let files: Vec<&str> = SOURCES.iter().map(|(rel, _)| *rel).collect();
    // CPython's own verdicts: with -W error the warning, without it the SyntaxError after it.
    let reference = w_error_reference(py, &tree, &files);
    let out = py.cmd().args(["-c", W_ERROR_REF]).args(&files).current_dir(tree.root()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for rel in &files {
        assert_eq!(plain[rel][1], "'break' outside loop", "{plain}");
        assert_ne!(reference[rel][1], plain[rel][1], "{reference}");
    }
    let failures = |stdout: &str| -> Vec<serde_json::Value> {
        json_lines(stdout).into_iter().filter(|l| l["type"] == "failure").collect()
    };
    let state = Tree::new();
    let hashpyc = || tree.hashpyc().env("HASHPYC_STATE_DIR", state.root());
    // Without -W error: each file's warning, then its failure, CPython's SyntaxError.
    let run = hashpyc().args(["compile", "--format", "json"]).python(py).args(&files).run();
    run.assert_code(1);
    let lines = json_lines(&run.stdout);
    // Per file: the warning raised before the failure (kind, message, line).
    let mut warned = Vec::new();
    for rel in &files {
        let of = |kind: &str| -> Vec<&serde_json::Value> {
            lines.iter().filter(|l| l["type"] == kind && l["path"] == *rel).collect()
        };
        let (warnings, failed) = (of("warning"), of("failure"));
        assert_eq!((warnings.len(), failed.len()), (1, 1), "{}", run.stdout);
        assert_eq!(failed[0]["kind"], "SyntaxError");
        assert_eq!((&failed[0]["line"], &failed[0]["message"]), (&plain[rel][0], &plain[rel][1]));
        let w = warnings[0];
        warned.push((rel.to_string(), w["kind"].clone(), w["message"].clone(), w["line"].clone()));
    }
    // Under -W error the warning is the failure, as CPython says, and nothing else is:
    // compiled (a state directory of its own), then remembered (the first run's).
    let check = |stdout: &str, remembered: bool| {
        let got: Vec<_> = failures(stdout)
            .into_iter()
            .map(|f| {
                assert_eq!(
                    (&f["warning"], &f["remembered"]),
                    (&serde_json::json!(true), &serde_json::json!(remembered)),
                    "{f}"
                );
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["kind"].clone(),
                    f["message"].clone(),
                    f["line"].clone(),
                )
            })
            .collect();
        assert_eq!(got, warned, "{stdout}");
        for (rel, _, message, line) in &got {
            // 3.14+ shortens the invalid-escape message when it raises it as an error.
            let message =
                message.as_str().unwrap().replace(" Such sequences will not work in the future.", "");
            assert_eq!(message, reference[rel][1].as_str().unwrap(), "{stdout}");
            if !reference[rel][0].is_null() {
                assert_eq!(*line, reference[rel][0], "{stdout}");
            }
        }
        assert!(!json_lines(stdout).iter().any(|l| l["type"] == "warning"), "{stdout}");
    };
    let own = Tree::new();
    let args = ["compile", "-W", "error", "--format", "json"];
    let compiled =
        tree.hashpyc().env("HASHPYC_STATE_DIR", own.root()).args(args).python(py).args(&files).run();
    compiled.assert_code(1);
    check(&compiled.stdout, false);
    let remembered = hashpyc().args(args).python(py).args(&files).run();
    remembered.assert_code(1);
    check(&remembered.stdout, true);
    assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
    // Text and GitHub annotations say the same, from memory.
    let text = hashpyc().args(["compile", "-W", "error"]).python(py).args(&files).run();
    text.assert_code(1);
    let github =
        hashpyc().args(["compile", "-W", "error", "--format", "github"]).python(py).args(&files).run();
    github.assert_code(1);
    let dry = hashpyc().args(["compile", "-n", "-W", "error"]).python(py).args(&files).run();
    dry.assert_code(1);
    for (rel, kind, message, line) in &warned {
        let (kind, message) = (kind.as_str().unwrap(), message.as_str().unwrap());
        let want = format!("{rel}:{line}: {kind}: {message} (remembered; an error under -W error)");
        assert!(text.stderr.contains(&want), "{want}\n{}", text.stderr);
        let want = format!(
            "::error file={rel},line={line},title=hashpyc compile (CPython {}.{})::{kind}: {message}",
            py.minor.0, py.minor.1
        );
        assert!(github.stdout.lines().any(|l| l == want), "{want}\n{}", github.stdout);
        let want = format!("{kind} at line {line}: {message}; remembered, an error under -W error");
        assert!(
            dry.stdout
                .lines()
                .any(|l| l.starts_with("fails") && l.contains(rel.as_str()) && l.contains(&want)),
            "{want}\n{}",
            dry.stdout
        );
    }
    for out in [&text.stderr, &github.stdout, &github.stderr, &dry.stdout] {
        assert!(!out.contains("outside loop"), "{out}");
    }
    assert!(!github.stdout.contains("::warning"), "{}", github.stdout);
    // From the bytecode cache, without a state directory: the second run's failures are hits.
    let cache = Tree::new();
    for hit in [false, true] {
        let fresh = Tree::new();
        for (rel, text) in SOURCES {
            fresh.write(rel, text);
        }
        let cmd = fresh.hashpyc().env("HASHPYC_NO_STATE", "1").args(args).arg("--cache").arg(cache.root());
        let run = cmd.python(py).args(&files).run();
        run.assert_code(1);
        check(&run.stdout, false);
        let summary = json_lines(&run.stdout).pop().unwrap();
        assert_eq!(summary["cache"]["local"]["hits"], if hit { files.len() } else { 0 }, "{}", run.stdout);
    }
});

// The state directory's memory of compile failures kept every source it had ever seen: a
// CI host building at a new path each job grew it by the failures of each (13 MB after
// three jobs of 20 000 failing files), and every run read it whole. A save now drops the
// sources that are gone, so the file holds what is there.
#[test]
fn remembered_failures_of_sources_gone_are_dropped() {
    let Some(py) = harness::any_python("compile::remembered_failures_of_sources_gone_are_dropped") else {
        return;
    };
    let (state, work) = (Tree::new(), Tree::new());
    let memo_text = || {
        let memo = harness::files_with_suffix(state.root(), ".json")
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("failures-"))
            .map(|p| state.path(p))
            .expect("a memo file");
        std::fs::read_to_string(memo).unwrap()
    };
    let build = |job: &str| {
        for i in 0..3 {
            work.write(format!("{job}/bad{i}.py"), "def f(:\n");
        }
        let run =
            work.hashpyc().env("HASHPYC_STATE_DIR", state.root()).arg("compile").python(py).arg(job).run();
        run.assert_code(1);
    };
    build("job1");
    assert_eq!(memo_text().matches("bad").count(), 3, "{}", memo_text());
    std::fs::remove_dir_all(work.path("job1")).unwrap();
    build("job2");
    let text = memo_text();
    assert!(!text.contains("job1"), "{text}");
    assert_eq!(text.matches("/job2/bad").count(), 3, "{text}");
    // What is remembered still serves: job2 again starts no Python (its failures known).
    let again = work
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.root())
        .env("HASHPYC_TRACE", "1")
        .arg("compile")
        .python(py)
        .arg("job2")
        .run();
    again.assert_code(1);
    assert!(again.stderr.contains("0 compiles in 0 long-lived children"), "{}", again.stderr);
}

// `hashpyc compile` at a project root with a `.venv` of another Python (uv's `uv venv
// --python 3.12`, with the default target `python3` a 3.11) compiled the venv's
// site-packages for 3.11 and `check` called them fresh, with no word: the venv's interpreter
// never reads them (helper report). A walk that enters an environment (a `pyvenv.cfg`, or a
// `lib/pythonX.Y`, also as the path named) whose version is none of the targets' now gets a
// warning, once per environment, naming it, its version and `--python`/`--exclude`.
#[test]
fn an_environment_of_another_python_is_warned_of() {
    let Some(py) = harness::any_python("compile::an_environment_of_another_python_is_warned_of") else {
        return;
    };
    let tree = Tree::new();
    let (major, minor) = py.minor;
    let other = format!("{major}.{}", minor + 1);
    tree.write("src/m.py", "x = 1\n");
    tree.write(".venv/pyvenv.cfg", format!("home = /usr/bin\nversion_info = {other}.0\n"));
    tree.write(format!(".venv/lib/python{other}/site-packages/dep/__init__.py"), "y = 1\n");
    let want = format!(
        "warning: `.venv` is an environment of Python {other} (`version_info = {other}.0` in \
         `.venv/pyvenv.cfg`), and this run writes pycs for CPython {} only, which its interpreter \
         never reads: give that interpreter (`--python .venv/bin/python`), or exclude the environment \
         (`--exclude .venv/`)",
        py.version
    );
    let run = tree.hashpyc().arg("compile").python(py).run();
    run.assert_code(0);
    assert_eq!(run.stderr.matches(&want).count(), 1, "{}", run.stderr);
    let run = tree.hashpyc().arg("check").python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("and this run checks pycs for CPython"), "{}", run.stderr);
    let site = format!(".venv/lib/python{other}/site-packages");
    let run = tree.hashpyc().args(["check", &site]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("warning: `.venv` is an environment of Python"), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--exclude", ".venv/"]).python(py).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("environment"), "{}", run.stderr);
    // Its own version: no warning; an installation's `lib/pythonX.Y` without `pyvenv.cfg`.
    tree.write(".venv/pyvenv.cfg", format!("version = {major}.{minor}.1\n"));
    tree.write(format!("opt/lib/python{other}/m.py"), "z = 1\n");
    let run = tree.hashpyc().arg("compile").python(py).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("`.venv` is"), "{}", run.stderr);
    let want = format!("warning: `opt` is an environment of Python {other} (its `opt/lib/python{other}`)");
    assert!(run.stderr.contains(&want), "{}", run.stderr);
}

// A venv copied into an image whose base has another Python: its `bin/python` is a link
// that now runs that one. `check --python v/bin/python v/lib` warned that `v` is an
// environment of the venv's version and said to give "that interpreter
// (`--python v/bin/python`)", the one given. When a target is the environment's own
// interpreter, the warning says the environment is broken and how out.
#[test]
fn an_environment_whose_interpreter_runs_another_python_is_broken() {
    let test = "compile::an_environment_whose_interpreter_runs_another_python_is_broken";
    let pythons: Vec<&Python> = harness::pythons().values().filter(|p| p.minor >= (3, 7)).collect();
    let [made, runs, ..] = pythons[..] else {
        return harness::visible(&format!("SKIPPED {test}: needs two CPython versions"));
    };
    let tree = Tree::new();
    made.run(&["-m", "venv", "--without-pip", "v"], tree.root());
    let (major, minor) = made.minor;
    tree.write(format!("v/lib/python{major}.{minor}/site-packages/m.py"), "x = 1\n");
    let venv_python = |py: &Python| {
        let run = tree.hashpyc().args(["check", "--python", "v/bin/python", "v/lib"]).run();
        assert!(run.stderr.contains(&format!("for CPython {}", py.version)), "{}", run.stderr);
        run
    };
    tree.hashpyc().args(["compile", "-q", "--python", "v/bin/python", "v/lib"]).run().assert_code(0);
    let run = venv_python(made);
    run.assert_code(0);
    assert!(!run.stderr.contains("environment"), "{}", run.stderr);
    // The venv's interpreter now runs another version (the base image's).
    std::fs::remove_file(tree.path("v/bin/python")).unwrap();
    std::os::unix::fs::symlink(&runs.path, tree.path("v/bin/python")).unwrap();
    let run = venv_python(runs);
    run.assert_code(1);
    let want = format!(
        "is an environment of Python {major}.{minor} (`version = {}` in `v/pyvenv.cfg`), but its own \
         interpreter `v/bin/python` runs CPython {}: the environment is broken",
        made.version, runs.version
    );
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("or use a base image with Python {major}.{minor}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("give that interpreter"), "{}", run.stderr);
    // Another interpreter given (not the environment's): the warning as before.
    let run = tree.hashpyc().args(["check", "v/lib"]).python(runs).run();
    assert!(run.stderr.contains("give that interpreter (`--python v/bin/python`)"), "{}", run.stderr);
}

// A summary over two interpreters whose counts differ read as one file compiled for both:
// `bad.py` (fails everywhere) and `type X = int` (fails on 3.11 only) gave `Compiled 1 file
// for CPython 3.11.7 and 3.12.1 (0 already fresh, 2 failed)`. Each target's counts are said
// when they differ (here from the pycs on disk), the dry run's alike; equal counts keep the
// plain wording, and JSON keeps its keys.
#[test]
fn a_summary_over_targets_whose_counts_differ_says_each_targets() {
    let test = "compile::a_summary_over_targets_whose_counts_differ_says_each_targets";
    let (Some(py11), Some(py12)) =
        (harness::python_or_skip((3, 11), test), harness::python_or_skip((3, 12), test))
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("bad.py", "def f(:\n");
    tree.write("alias.py", "type X = int\n");
    let run = tree.hashpyc().arg("compile").python(py11).python(py12).arg(".").run();
    run.assert_code(1);
    let written = |tag: &str| harness::files_with_suffix(tree.root(), &format!(".{tag}.pyc")).len();
    let (for11, for12) = (written("cpython-311"), written("cpython-312"));
    assert_eq!((for11, for12), (0, 1), "{}", run.stderr);
    let (v11, v12) = (&py11.version, &py12.version);
    let want = format!(
        "Compiled 0 files for CPython {v11} and {for12} for {v12} (0 already fresh, 2 failed: 2 for {v11} and 1 for \
         {v12})"
    );
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py11).python(py12).arg(".").run();
    let want = format!(
        "Would compile 0 files, rewrite 0 headers for CPython {v11} and {v12} (1 already fresh, 2 known to fail: 2 \
         for {v11} and 1 for {v12})"
    );
    assert!(dry.stderr.contains(&want), "{want}\n{}", dry.stderr);
    // Counts equal for both: as before.
    tree.write("ok.py", "y = 1\n");
    std::fs::remove_file(tree.path("bad.py")).unwrap();
    std::fs::remove_file(tree.path("alias.py")).unwrap();
    let run = tree.hashpyc().arg("compile").python(py11).python(py12).arg(".").run();
    run.assert_code(0);
    let want = format!("Compiled 1 file, 2 pycs for CPython {v11} and {v12} (0 already fresh)");
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    let json = tree.hashpyc().args(["compile", "--format", "json"]).python(py11).python(py12).arg(".").run();
    let summary: serde_json::Value = serde_json::from_str(json.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["compiled"].as_u64(), summary["fresh"].as_u64()), (Some(0), Some(2)), "{summary}");
}
