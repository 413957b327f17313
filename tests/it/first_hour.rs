//! What a new user hit in the first hour (issue 13), each replayed against the real binary
//! and real interpreters: ignore files that hid installed code from `compile` and `check`,
//! panics on non-UTF-8 paths, NUL-separated lists without `--null`, empty selections that
//! "passed", `inspect` of things that are not pycs, unnamed interpreters, per-level
//! recompiles, launcher failures, repeated warnings and duplicated errors; and, found since,
//! modules named like the standard library's in the working directory, and `--python 3.12` taken
//! as a file name where uv takes a version.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compile::pyc_of;
use crate::harness::{self, Hashpyc, Python, Tree, notices};
use crate::per_python;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Every pyc under `root` with its bytes and modification time.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>, i64, i64)> {
    harness::files_with_suffix(root, ".pyc")
        .into_iter()
        .map(|rel| {
            let p = root.join(&rel);
            let m = std::fs::metadata(&p).unwrap();
            (rel, std::fs::read(&p).unwrap(), m.mtime(), m.mtime_nsec())
        })
        .collect()
}

fn tag(py: &Python) -> String {
    format!("cpython-{}{}", py.minor.0, py.minor.1)
}

// 1. The CI examples' exact steps in a git checkout with a venv (3.13+ venvs write a
//    `.gitignore` holding `*`): every source of the venv is compiled, `check` covers the
//    same files, and importing afterwards writes no pyc at all.
per_python!(ci_steps_in_a_git_checkout_with_a_venv, |py: &Python| {
    let repo = Tree::new();
    git(repo.root(), &["init", "-q"]);
    repo.write("src/app/__init__.py", "");
    repo.write("src/app/main.py", "import json\n\ndef main():\n    return json.dumps({'ok': True})\n");
    repo.write("requirements.txt", "");
    repo.write(".gitignore", "__pycache__/\n.venv/\n");
    // `python -m venv .venv && .venv/bin/pip install --no-compile -r requirements.txt`
    let venv = py.cmd().args(["-m", "venv", ".venv"]).current_dir(repo.root()).output().unwrap();
    let with_pip = venv.status.success();
    let mut imports = "import app.main, pip._internal.cli.main".to_string();
    if with_pip {
        let pip = Command::new(repo.path(".venv/bin/pip"))
            .args([
                "install",
                "-q",
                "--no-compile",
                "--disable-pip-version-check",
                "--no-index",
                "-r",
                "requirements.txt",
            ])
            .current_dir(repo.root())
            .output()
            .unwrap();
        assert!(pip.status.success(), "{}", String::from_utf8_lossy(&pip.stderr));
    } else {
        // Debian's interpreters come without ensurepip: a venv without pip, and a copy
        // of the stdlib's `email` package installed in it instead.
        harness::visible(&format!("note: {} has no ensurepip; the venv gets a copied package", py.label()));
        let _ = std::fs::remove_dir_all(repo.path(".venv"));
        let venv = py
            .cmd()
            .args(["-m", "venv", "--without-pip", ".venv"])
            .current_dir(repo.root())
            .output()
            .unwrap();
        assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
        let pythonx = std::fs::read_dir(repo.path(".venv/lib")).unwrap().next().unwrap().unwrap();
        let site = pythonx.path().join("site-packages");
        let copied =
            harness::copy_py_tree(&harness::stdlib_dir(py).join("email"), &site.join("email_copy"), &|_| {
                false
            });
        assert!(copied > 10);
        imports = "import app.main, email_copy.utils, email_copy.message".to_string();
    }
    // CPython 3.13+ venvs ignore themselves with a `.gitignore` holding `*`; older ones get
    // the same file here, so that every version replays the scenario.
    let own = repo.path(".venv/.gitignore");
    if py.minor >= (3, 13) {
        let text = std::fs::read_to_string(&own).unwrap_or_default();
        assert!(text.contains('*'), "CPython 3.13+ venvs ignore themselves: {text:?}");
    } else {
        std::fs::write(&own, "*\n").unwrap();
    }
    let lib = repo.path(".venv/lib");
    let sources = harness::files_with_suffix(&lib, ".py").len() + 2;
    assert!(sources > 30, "the venv holds a package ({sources} sources)");

    let compile = repo.hashpyc().args(["compile", "--python", ".venv/bin/python", "src", ".venv/lib"]).run();
    compile.assert_code(0);
    let checked = |args: &[&str]| repo.hashpyc().arg("check").args(args).run();
    let github = checked(&["--python", ".venv/bin/python", "--format", "github", "src", ".venv/lib"]);
    github.assert_code(0);
    assert!(
        github.stderr.contains(&format!("Checked {sources} files for CPython {}", py.version)),
        "check covers every source ({sources}):\n{}",
        github.stderr
    );
    assert!(!github.stderr.contains("skipped"), "{}", github.stderr);

    // The working-tree opt-ins skip the venv and say so, in both commands.
    let narrowed = checked(&["--python", ".venv/bin/python", "--respect-gitignore", "src", ".venv/lib"]);
    narrowed.assert_code(0);
    // The venv's ignored directories are counted, not entered (`.venv/lib/python3.X`).
    let dirs = std::fs::read_dir(&lib).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(dirs, 1);
    assert!(narrowed.stderr.contains("skipped 1 directory by --respect-gitignore)"), "{}", narrowed.stderr);

    // An import after the build writes nothing: every pyc it needs is there and valid.
    let before = snapshot(repo.root());
    let mut import = Command::new(repo.path(".venv/bin/python"));
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"PYTHON") {
            import.env_remove(k);
        }
    }
    let out = import
        .args(["-c", &format!("import sys; sys.path.insert(0, 'src'); {imports}; print(app.main.main())")])
        .current_dir(repo.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(before, snapshot(repo.root()), "importing wrote or changed pycs");
    assert!(
        before
            .iter()
            .any(|(p, _, _, _)| p.starts_with(".venv/lib") && p.to_string_lossy().contains(&tag(py))),
        "the venv's pycs are ours"
    );
});

// 1b. A repository `.gitignore` with the common Python template's `lib/` and `build/` must
//     not hide `numpy/lib` or `pip/_internal/operations/build` from a compile of a venv.
per_python!(repository_ignore_rules_do_not_hide_installed_code, min = (3, 8), |py: &Python| {
    let repo = Tree::new();
    git(repo.root(), &["init", "-q"]);
    repo.write(".gitignore", "lib/\nbuild/\n.hidden/\n");
    let site = "venv/lib/site-packages";
    for rel in ["numpy/lib/npyio.py", "pip/_internal/operations/build/wheel.py", "plain.py", ".hidden/h.py"] {
        repo.write(format!("{site}/{rel}"), "x = 1\n");
    }
    repo.hashpyc().arg("compile").python(py).arg("venv/lib").run().assert_code(0);
    let check = repo.hashpyc().arg("check").python(py).arg("venv/lib").run();
    check.assert_code(0);
    assert!(check.stderr.contains("Checked 4 files"), "{}", check.stderr);
    for rel in ["numpy/lib/__pycache__/npyio", "pip/_internal/operations/build/__pycache__/wheel"] {
        let pyc = repo.path(format!("{site}/{rel}.{}.pyc", tag(py)));
        assert!(pyc.is_file(), "{} was compiled", pyc.display());
    }
    // Opting in skips and counts them; check agrees with compile file for file.
    let both = ["--respect-gitignore", "--skip-hidden"];
    let compile = repo.hashpyc().arg("compile").args(both).args(["-f"]).python(py).arg("venv/lib").run();
    compile.assert_code(0);
    assert!(compile.stderr.contains("Compiled 1 file"), "{}", compile.stderr);
    assert!(
        compile.stderr.contains("skipped 2 directories by --respect-gitignore, 1 directory by --skip-hidden"),
        "{}",
        compile.stderr
    );
    let check =
        repo.hashpyc().arg("check").args(both).args(["--format", "json"]).python(py).arg("venv/lib").run();
    check.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(check.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["sources"].as_u64(), summary["skipped_ignored_dirs"].as_u64()), (Some(1), Some(2)));
    assert_eq!(summary["skipped_hidden_dirs"].as_u64(), Some(1));
    // Directories are counted as such: no file was skipped on its own.
    assert_eq!((summary["skipped_ignored"].as_u64(), summary["skipped_hidden"].as_u64()), (Some(0), Some(0)));
    // The hidden aliases of the old flags mean the default.
    let old =
        repo.hashpyc().args(["check", "--respect-gitignore", "--no-ignore"]).python(py).arg("venv/lib").run();
    assert!(old.stderr.contains("Checked 4 files"), "{}", old.stderr);
});

// 2. JSON output never panics on a path that is not UTF-8, and keeps it losslessly.
per_python!(json_output_keeps_non_utf8_paths, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.py");
    std::fs::write(tree.root().join(name), "x = 1\n").unwrap();
    tree.write("ok.py", "y = 2\n");
    let decode = |v: &serde_json::Value| -> Vec<u8> {
        use base64::Engine;
        match v {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            serde_json::Value::Object(o) => base64::engine::general_purpose::STANDARD
                .decode(o["bytes"].as_str().expect("bytes"))
                .expect("base64"),
            other => panic!("unexpected path {other}"),
        }
    };
    let missing = tree.hashpyc().args(["check", "--format", "json", "--all"]).python(py).arg(".").run();
    missing.assert_code(1);
    let mut paths = Vec::new();
    for line in missing.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON Lines");
        if v["type"] == "finding" {
            paths.push(decode(&v["path"]));
            if v["path"].is_object() {
                let pyc = decode(&v["pyc"]);
                assert!(pyc.ends_with(format!(".{}.pyc", tag(py)).as_bytes()) && pyc.contains(&0xe9), "{v}");
            }
        }
    }
    assert!(paths.contains(&b"./caf\xe9.py".to_vec()), "{paths:?}");
    assert!(paths.contains(&b"./ok.py".to_vec()), "UTF-8 paths stay strings: {paths:?}");
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    let all = tree.hashpyc().args(["check", "--format", "json", "--all"]).python(py).arg(".").run();
    all.assert_code(0);
    let mut pyc_name = b"__pycache__/caf\xe9.".to_vec();
    pyc_name.extend_from_slice(tag(py).as_bytes());
    pyc_name.extend_from_slice(b".pyc");
    let pyc = tree.root().join(std::ffi::OsStr::from_bytes(&pyc_name));
    for args in [&["inspect", "--format", "json"][..], &["inspect", "--json"][..]] {
        let run = tree.hashpyc().args(args).arg(&pyc).run();
        run.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
        assert_eq!(decode(&v["pyc"]), pyc.as_os_str().as_bytes());
        assert_eq!(decode(&v["embedded_path"]), b"./caf\xe9.py");
        assert_eq!(decode(&v["source"]), tree.root().join(name).as_os_str().as_bytes());
    }
});

// Format characters (Unicode category Cf) in names are escaped as control characters are:
// a bidi override (U+202E, U+2067: Trojan Source), a zero-width space and a BOM were
// printed raw, so `evil\u{202e}gnp.py` showed as `evilyp.png`. JSON keeps them exact.
#[test]
fn format_characters_in_names_are_escaped() {
    let Some(py) = harness::any_python("first_hour::format_characters_in_names_are_escaped") else {
        return;
    };
    let tree = Tree::new();
    let names =
        ["evil\u{202e}gnp.py", "rtl\u{2067}x.py", "zw\u{200b}sp.py", "\u{feff}bom.py", "soft\u{ad}hy.py"];
    for name in names {
        tree.write(name, "x = 1\n");
    }
    let raw = |out: &str| {
        out.chars().any(|c| ['\u{202e}', '\u{2067}', '\u{200b}', '\u{feff}', '\u{ad}'].contains(&c))
    };
    let check = tree.hashpyc().arg("check").python(py).arg(".").run();
    check.assert_code(1);
    let json = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg(".").run();
    json.assert_code(1);
    let compile = tree.hashpyc().args(["compile", "-v"]).python(py).arg(".").run();
    compile.assert_code(0);
    for name in names {
        let escaped = format!("{:?}", format!("./{name}"));
        let finding = |l: &str| l.starts_with("missing ") && l.ends_with(&format!(" {escaped}"));
        assert!(check.stdout.lines().any(finding), "{escaped}\n{check:?}");
        // Quoted once, in its own quotes (as any name that needs escaping).
        assert!(compile.stderr.contains(&format!("compiled {escaped} ")), "{escaped}\n{compile:?}");
    }
    assert!(!raw(&check.stdout) && !raw(&check.stderr) && !raw(&compile.stderr), "{check:?}\n{compile:?}");
    for name in names {
        assert!(json.stdout.contains(&format!("\"./{name}\"")), "{name:?}\n{}", json.stdout);
    }
}

// File names with a newline, a carriage return, a tab or a terminal escape (and one that is
// not UTF-8) are shown quoted and escaped in the text outputs, as Rust's `{:?}` writes them
// (`"./new\nline.py"`), so every output stays one line per file and no name forges a line;
// names that need none of it are shown as they are, and JSON keeps every name exact. The
// files are compiled by the real interpreter, which reads back the exact names.
per_python!(control_characters_in_names_stay_on_one_line, |py: &Python| {
    let tree = Tree::new();
    let good: [&[u8]; 6] =
        [b"new\nline.py", b"cr\rname.py", b"tab\tname.py", b"esc\x1b[31mred.py", b"caf\xe9.py", b"plain.py"];
    let bad: &[u8] = b"bad\nfile.py";
    for name in good {
        tree.write(std::ffi::OsStr::from_bytes(name), "x = 1\n");
    }
    tree.write(std::ffi::OsStr::from_bytes(bad), "def (:\n");
    let walked = |name: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(&[b"./", name].concat()));
    let shown = |name: &[u8]| {
        let path = walked(name);
        match path.to_str() {
            Some(s) if name != b"plain.py" => {
                assert!(s.chars().any(char::is_control), "{s:?}");
                format!("{path:?}")
            }
            Some(s) => s.to_string(),
            None => format!("{path:?}"),
        }
    };
    let all: Vec<&[u8]> = good.iter().copied().chain([bad]).collect();
    let context = |run: &harness::Run| format!("{}\n{}", run.stdout, run.stderr);

    let compiled = tree.hashpyc().args(["compile", "-v"]).python(py).arg(".").run();
    compiled.assert_code(1);
    let lines: Vec<&str> = compiled.stderr.lines().collect();
    for name in good {
        // Amid words, a name is quoted once: escaped in its quotes, else in backticks.
        let shown = shown(name);
        let quoted = if shown.starts_with('"') { shown } else { format!("`{shown}`") };
        let want = format!("compiled {quoted} (no pyc)");
        assert!(lines.contains(&want.as_str()), "{want}\n{}", context(&compiled));
    }
    assert!(lines.iter().any(|l| l.starts_with(&format!("{}:1:", shown(bad)))), "{}", context(&compiled));
    // CPython reads each pyc back with the exact name embedded.
    let mut names = Vec::new();
    for name in good {
        names.extend_from_slice(&[b"./", name, b"\0"].concat());
    }
    let script = "import importlib.util, marshal, os, sys\n\
        for raw in sys.stdin.buffer.read().split(b'\\0')[:-1]:\n\
        \x20   src = os.fsdecode(raw)\n\
        \x20   data = open(importlib.util.cache_from_source(src), 'rb').read()\n\
        \x20   print(marshal.loads(data[16:]).co_filename == src and data[4:8] == b'\\x03\\0\\0\\0')\n";
    let mut child = py
        .cmd()
        .args(["-I", "-c", script])
        .current_dir(tree.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &names).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "True\n".repeat(good.len()));

    // The dry run and check: one line per file, each naming it as shown.
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg(".").run();
    dry.assert_code(1);
    assert_eq!(dry.stdout.lines().count(), all.len(), "{}", context(&dry));
    for name in good {
        let want = format!("fresh    {}", shown(name));
        assert!(dry.stdout.lines().any(|l| l == want), "{want}\n{}", context(&dry));
    }
    let fails = format!("fails    {}  (SyntaxError: ", shown(bad));
    assert!(dry.stdout.lines().any(|l| l.starts_with(&fails)), "{}", context(&dry));
    let check = tree.hashpyc().args(["check", "--all"]).python(py).arg(".").run();
    check.assert_code(1);
    assert_eq!(check.stdout.lines().count(), all.len(), "{}", context(&check));
    for name in good {
        let want = format!("ok         {}", shown(name));
        assert!(check.stdout.lines().any(|l| l == want), "{want}\n{}", context(&check));
    }
    let missing = format!("missing    {}: the source does not compile", shown(bad));
    assert!(check.stdout.lines().any(|l| l.starts_with(&missing)), "{}", context(&check));
    // GitHub annotations: one line, the file property in GitHub's own escaping (decoded by
    // the runner to the exact name).
    let github = tree.hashpyc().args(["check", "--format", "github"]).python(py).arg(".").run();
    github.assert_code(1);
    assert_eq!(github.stdout.lines().count(), 1, "{}", context(&github));
    assert!(github.stdout.starts_with("::error file=./bad%0Afile.py,"), "{}", context(&github));
    // Any other character the text escapes is in that escaping too: `%1B`, where the file
    // property held the text's `\u{1b}` among GitHub's `%0A`s.
    tree.write(std::ffi::OsStr::from_bytes(b"esc\x1b[31mred.py"), "x = 2\n");
    let github = tree.hashpyc().args(["check", "--format", "github"]).python(py).arg(".").run();
    github.assert_code(1);
    assert_eq!(github.stdout.lines().count(), 2, "{}", context(&github));
    assert!(github.stdout.contains(" file=./esc%1B[31mred.py,"), "{}", context(&github));
    assert!(!github.stdout.contains('\x1b'), "{}", context(&github));
    // JSON: exact names.
    let json = tree.hashpyc().args(["check", "--all", "--format", "json"]).python(py).arg(".").run();
    let mut paths: Vec<Vec<u8>> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "finding")
        .map(|v| match &v["path"] {
            serde_json::Value::String(s) => s.as_bytes().to_vec(),
            other => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.decode(other["bytes"].as_str().unwrap()).unwrap()
            }
        })
        .collect();
    let mut want: Vec<Vec<u8>> = all.iter().map(|n| walked(n).as_os_str().as_bytes().to_vec()).collect();
    paths.sort();
    want.sort();
    assert_eq!(paths, want, "{}", json.stdout);
});

// 3. A NUL-separated list without `--null` is one short error naming `--null`.
#[test]
fn nul_separated_list_without_null() {
    let tree = Tree::new();
    tree.write("a.py", "x = 1\n");
    let list = "a.py\0".repeat(10_000);
    for args in [&["check", "--target", "3.12", "-"][..], &["compile", "-"][..]] {
        let run = tree.hashpyc().args(args).stdin(list.clone()).run();
        run.assert_code(2);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.len() < 300 && run.stderr.contains("--null"), "{}", run.stderr);
    }
}

// A file that fails on two targets with different messages listed them by column (3.13's
// `print "x"` error at column 1 before 3.9's at column 7) whatever the order of
// `--python`; `check` follows that order. Now failures on one line follow the targets as
// given, in text, JSON and GitHub output; one message for both stays one line.
#[test]
fn failures_follow_the_targets_as_given() {
    let test = "first_hour::failures_follow_the_targets_as_given";
    let (Some(old), Some(new)) =
        (harness::python_or_skip((3, 9), test), harness::python_or_skip((3, 13), test))
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("a.py", "print \"x\"\n");
    tree.write("b.py", "x = 1 +\n");
    for (first, second) in [(old, new), (new, old)] {
        let label = |py: &Python| format!("[CPython {}]", py.version);
        let text = tree.hashpyc().arg("compile").python(first).python(second).arg(".").run();
        text.assert_code(1);
        let lines: Vec<&str> = text.stderr.lines().filter(|l| l.starts_with("./")).collect();
        assert_eq!(lines.len(), 3, "{}", text.stderr);
        assert!(lines[0].starts_with("./a.py:") && lines[0].ends_with(&label(first)), "{}", text.stderr);
        assert!(lines[1].starts_with("./a.py:") && lines[1].ends_with(&label(second)), "{}", text.stderr);
        let both = format!("[CPython {} and {}]", first.version, second.version);
        assert!(lines[2].starts_with("./b.py:") && lines[2].ends_with(&both), "{}", text.stderr);
        for format in ["json", "github"] {
            let run = tree
                .hashpyc()
                .args(["compile", "--format", format])
                .python(first)
                .python(second)
                .arg("a.py")
                .run();
            run.assert_code(1);
            let versions: Vec<String> = if format == "json" {
                run.stdout
                    .lines()
                    .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                    .filter(|v| v["type"] == "failure")
                    .map(|v| v["python"].as_str().unwrap().to_string())
                    .collect()
            } else {
                run.stdout.lines().filter(|l| l.starts_with("::error")).map(str::to_string).collect()
            };
            assert_eq!(versions.len(), 2, "{format}: {}", run.stdout);
            let minor = |py: &Python| format!("{}.{}", py.minor.0, py.minor.1);
            assert!(
                versions[0].contains(&minor(first)) && versions[1].contains(&minor(second)),
                "{format}: {versions:?}"
            );
        }
    }
}

// `--null` without `-` (`git ls-files -z | hashpyc check --null`, the `-` forgotten) walked
// the whole current directory, silently, instead of the list piped in: an error naming
// `-`, exit 2, and nothing compiled or checked. Its example command line is the command's
// own (`compile`'s error showed `hashpyc check --null -`).
#[test]
fn null_without_dash_is_an_error() {
    let tree = Tree::new();
    tree.write("a.py", "x = 1\n");
    tree.write("b.py", "y = 1\n");
    for args in [
        &["check", "--target", "3.12", "--null"][..],
        &["compile", "-0"],
        &["compile", "--null", "b.py"],
        &["inspect", "--null", "b.py"],
    ] {
        let run = tree.hashpyc().args(args).stdin(b"a.py\0".to_vec()).run();
        run.assert_code(2);
        assert_eq!(
            run.stderr,
            format!(
                "error: --null (-0) separates the paths read from stdin, which only `-` reads: add `-` \
                 (`git ls-files -z '*.py' | hashpyc {} --null -`)\n",
                args[0]
            ),
            "{args:?}"
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
    }
    // With `-` the list is read, and only it.
    let py = harness::any_python("null_without_dash_is_an_error");
    if let Some(py) = py {
        let run =
            tree.hashpyc().args(["compile", "-q", "--null", "-"]).python(py).stdin(b"a.py\0".to_vec()).run();
        run.assert_code(0);
        assert_eq!(tree.pycs().len(), 1, "{:?}", tree.pycs());
    }
}

// Run in a working directory that was removed (`mkdir gone; cd gone; rmdir ../gone`), a
// bare `compile` walked `.`, which lists nothing there, and said `warning: no Python
// sources to compile under `.``, exit 0 (`check`: no sources, exit 1). Both now fail
// naming why, exit 2; so does a relative path named (an absolute one is still compiled).
#[test]
fn a_removed_working_directory_is_an_error() {
    let Some(py) = harness::any_python("first_hour::a_removed_working_directory_is_an_error") else { return };
    let tree = Tree::new();
    tree.write("abs/m.py", "m = 1\n");
    let run_in_removed = |args: &[&str]| {
        std::fs::create_dir(tree.path("gone")).unwrap();
        // The shell enters the directory, removes it, and runs hashpyc in it.
        let mut cmd = Command::new("sh");
        cmd.current_dir(tree.root())
            .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
            .env("NO_COLOR", "1")
            .arg("-c")
            .arg("cd gone && rmdir ../gone && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .args(args);
        harness::run_command(&mut cmd)
    };
    let python = py.path.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["compile", "--python", python], "."),
        (&["check", "--target", "3.12"], "."),
        (&["compile", "--python", python, "src"], "src"),
        (&["check", "--target", "3.12", "."], "."),
    ];
    for (args, named) in cases {
        let run = run_in_removed(args);
        run.assert_code(2);
        assert_eq!(
            run.stderr,
            format!("error: cannot read `{named}`: the current directory was removed\n"),
            "{args:?}"
        );
        assert_eq!(run.stdout, "", "{args:?}");
    }
    let abs = tree.path("abs");
    let run = run_in_removed(&["compile", "-q", "--python", python, abs.to_str().unwrap()]);
    run.assert_code(0);
    assert_eq!(tree.pycs().len(), 1, "{:?}", tree.pycs());
}

// A named path under a file (`m.py/x.py`, ENOTDIR where a missing one is ENOENT) was a
// per-file error, exit 1 (`error: `m.py/x.py`: Not a directory`). It does not exist, as any
// missing path: an error saying so, exit 2, for `compile` and `check` alike.
#[test]
fn a_path_under_a_file_does_not_exist() {
    let Some(py) = harness::any_python("first_hour::a_path_under_a_file_does_not_exist") else { return };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    for cmd in ["compile", "check"] {
        for args in [&["m.py/x.py"][..], &["m.py/x.py", "m.py"][..]] {
            let run = tree.hashpyc().arg(cmd).python(py).args(args).run();
            run.assert_code(2);
            let want = "error: `m.py/x.py`: no such file or directory\n";
            assert!(run.stderr.starts_with(want), "{cmd} {args:?}: {}", run.stderr);
        }
    }
    let json = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("m.py/x.py").run();
    json.assert_code(2);
    let first: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!((&first["type"], &first["path"]), (&"error".into(), &"m.py/x.py".into()), "{}", json.stdout);
}

// 4. Checking nothing is a finding; a summary never says "all fresh" after an error.
#[test]
fn check_over_nothing_fails() {
    let tree = Tree::new();
    std::fs::create_dir(tree.path("empty")).unwrap();
    let run = tree.hashpyc().args(["check", "--target", "3.12", "empty"]).run();
    run.assert_code(1);
    assert!(run.stderr.contains("no Python sources to check under `empty`"), "{}", run.stderr);
    assert!(!run.stderr.contains("all fresh"), "{}", run.stderr);
    let run = tree.hashpyc().args(["check", "--target", "3.12", "no-such-dir"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("no such file or directory") && !run.stderr.contains("all fresh"),
        "{}",
        run.stderr
    );
    tree.write("real.py", "x = 1\n");
    let run = tree.hashpyc().args(["check", "--target", "3.12", "no-such-dir", "real.py"]).run();
    run.assert_code(2);
    assert!(run.stderr.contains("1 missing, 1 error") && !run.stderr.contains("all fresh"), "{}", run.stderr);
    // `--max-depth 0` (fd's and ripgrep's meaning) takes nothing inside a directory: says so,
    // and which depth takes its own files.
    std::fs::create_dir_all(tree.path("flat")).unwrap();
    tree.write("flat/f.py", "x = 1\n");
    let run = tree.hashpyc().args(["check", "--target", "3.12", "--max-depth", "0", "flat"]).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "no Python sources to check under `flat` (--max-depth 0 takes no file inside a directory; \
             --max-depth 1 takes its own files, as compileall -l does)"
        ),
        "{}",
        run.stderr
    );
    let run = tree.hashpyc().args(["check", "--target", "3.12", "--max-depth", "1", "flat"]).run();
    assert!(!run.stderr.contains("--max-depth 0"), "{}", run.stderr);
    // Everything under the path hidden by an opt-in: says so.
    tree.write("proj/.hidden/h.py", "x = 1\n");
    let run = tree.hashpyc().args(["check", "--target", "3.12", "--skip-hidden", "proj"]).run();
    run.assert_code(1);
    assert!(run.stderr.contains("skipped 1 directory by --skip-hidden"), "{}", run.stderr);
}

// `HASHPYC_CACHE_DIR`, which a uv user may set for the bytecode cache (as `UV_CACHE_DIR`),
// is no hashpyc setting: `compile` and `check` say so and name the two that exist, and
// nothing is written there (it used to move hashpyc's state directory, silently).
per_python!(hashpyc_cache_dir_is_named_as_no_setting, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "x = 1\n");
    let dir = tree.path("cachedir");
    // (A home that exists: under one that does not, there is no state directory at all.)
    std::fs::create_dir(tree.path("home")).unwrap();
    let warned = |stderr: &str| {
        stderr.contains("warning: HASHPYC_CACHE_DIR is not a hashpyc setting and was ignored")
            && stderr.contains("HASHPYC_CACHE (or --cache DIR)")
            && stderr.contains("HASHPYC_STATE_DIR")
    };
    let run = tree
        .hashpyc()
        .env_remove("HASHPYC_STATE_DIR")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", tree.path("home"))
        .env("HASHPYC_CACHE_DIR", &dir)
        .args(["compile"])
        .python(py)
        .arg("src")
        .run();
    run.assert_code(0);
    assert!(warned(&run.stderr), "{}: {}", py.label(), run.stderr);
    assert!(!dir.exists(), "{}: HASHPYC_CACHE_DIR was used", py.label());
    assert!(tree.path("home/.cache/hashpyc").is_dir(), "{}: the state directory moved", py.label());
    let run = tree.hashpyc().env("HASHPYC_CACHE_DIR", &dir).args(["check"]).python(py).arg("src").run();
    run.assert_code(0);
    assert!(warned(&run.stderr), "{}: {}", py.label(), run.stderr);
});

// A source made private after it was compiled (`chmod 600 conf.py`, as a packager's
// `dh_fixperms` or `%attr` does): its pyc kept mode 644, readable by every user, and the run
// called it fresh; compileall rewrites it with the source's mode, as py_compile derives it.
// It is written again now, with every level; a pyc less readable than its source (a
// fallback to the source for others, no leak) is left.
#[test]
fn a_pyc_is_never_more_readable_than_its_source() {
    use std::os::unix::fs::PermissionsExt;
    let Some(py) = crate::harness::any_python("a_pyc_is_never_more_readable_than_its_source") else { return };
    let tree = Tree::new();
    let source = tree.write("conf.py", "SECRET = 1\n");
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).unwrap();
    let compile =
        || tree.hashpyc().args(["compile", "-v", "-o", "0", "-o", "1"]).python(py).arg("conf.py").run();
    compile().assert_code(0);
    let pycs = tree.pycs();
    assert_eq!(pycs.len(), 2);
    let mode =
        |p: &std::path::Path| std::fs::metadata(tree.root().join(p)).unwrap().permissions().mode() & 0o777;
    assert!(pycs.iter().all(|p| mode(p) & 0o044 != 0), "{pycs:?}");
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o600)).unwrap();
    // `check` finds it too (it called it ok), each level, and says why.
    let check = || tree.hashpyc().args(["check", "-o", "0", "-o", "1"]).python(py).arg("conf.py").run();
    let run = check();
    run.assert_code(1);
    for level in ["[opt-0]", "[opt-1]"] {
        let stale = format!(
            "stale      conf.py  {level}: the pyc's mode 644 lets others read what its source's 600 does not"
        );
        assert!(run.stdout.contains(&stale), "{}: {}", py.label(), run.stdout);
    }
    let run = compile();
    run.assert_code(0);
    assert!(run.stderr.contains("lets others read what its source's 600 does not"), "{}", run.stderr);
    check().assert_code(0);
    assert!(pycs.iter().all(|p| mode(p) == 0o600), "{:?}", pycs.iter().map(|p| mode(p)).collect::<Vec<_>>());
    assert!(compile().stderr.contains("(2 already fresh)"));
    // Readable again: the private pycs are left as they are, and are ok.
    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(compile().stderr.contains("(2 already fresh)"));
    check().assert_code(0);
}

// A packager's build runs with HOME pointing at a directory that does not exist (sbuild,
// pbuilder), so that anything writing there shows: `compile` and even `check` created it,
// home directory and all, for their state. The default state directory under a home that
// does not exist is none: nothing is created, and the run goes on as without state.
#[test]
fn a_home_that_does_not_exist_is_not_created() {
    let Some(py) = crate::harness::any_python("a_home_that_does_not_exist_is_not_created") else { return };
    let tree = Tree::new();
    tree.write("src/a.py", "x = 1\n");
    let home = tree.path("nonexistent/home");
    for cmd in ["compile", "check"] {
        let run = tree
            .hashpyc()
            .env("HOME", &home)
            .env_remove("HASHPYC_STATE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .arg(cmd)
            .python(py)
            .arg("src")
            .run();
        run.assert_code(0);
        assert!(!tree.path("nonexistent").exists(), "{cmd} created the home directory: {}", run.stderr);
        assert!(!run.stderr.contains("warning"), "{cmd}: {}", run.stderr);
    }
}

// A state directory that cannot be used (a regular file, or under one) lost every probe and
// remembered failure silently, so every run started Python again: `compile` and `check`
// warn once, naming it, the reason and what is lost (a notice in JSON), and the run goes
// on; `HASHPYC_NO_STATE=1`, a choice, says nothing.
#[test]
fn an_unusable_state_dir_is_reported() {
    let Some(py) = crate::harness::any_python("an_unusable_state_dir_is_reported") else { return };
    let tree = Tree::new();
    tree.write("src/a.py", "x = 1\n");
    tree.write("src/bad.py", "def (:\n");
    let file = tree.write("state", "not a directory\n");
    let run = |state: &Path, args: &[&str]| {
        tree.hashpyc().env("HASHPYC_STATE_DIR", state).args(args).python(py).arg("src").run()
    };
    let lines = |text: &str, needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    for (state, reason) in
        [(file.clone(), "not a directory"), (file.join("sub"), "cannot create it: not a directory")]
    {
        let head = format!("warning: the state directory `{}` cannot be used ({reason}): ", state.display());
        let compile = run(&state, &["compile"]);
        compile.assert_code(1);
        assert_eq!(lines(&compile.stderr, "state directory"), 1, "{}", compile.stderr);
        assert!(
            compile.stderr.contains(&format!(
                "{head}compile failures, interpreter probes and the pycs found good are not remembered"
            )),
            "{}",
            compile.stderr
        );
        let check = run(&state, &["check"]);
        check.assert_code(1);
        assert_eq!(lines(&check.stderr, "state directory"), 1, "{}", check.stderr);
        assert!(
            check
                .stderr
                .contains(&format!("{head}interpreter probes and the pycs found good are not remembered")),
            "{}",
            check.stderr
        );
        for cmd in ["compile", "check"] {
            let json = run(&state, &[cmd, "--format", "json"]);
            assert_eq!(json.stderr, "", "{cmd}");
            let notices =
                json.stdout.lines().filter(|l| l.contains("\"notice\"") && l.contains(reason)).count();
            assert_eq!(notices, 1, "{cmd}: {}", json.stdout);
        }
    }
    assert!(file.is_file(), "the file was left alone");
    // The default location (here under XDG_CACHE_HOME, a file) is often read-only on
    // purpose (`docker run --read-only`): said under -v only.
    let default = |args: &[&str]| {
        let cmd = tree.hashpyc().env_remove("HASHPYC_STATE_DIR").env("XDG_CACHE_HOME", &file);
        cmd.args(args).python(py).arg("src").run()
    };
    for cmd in ["compile", "check"] {
        let plain = default(&[cmd]);
        assert!(!plain.stderr.contains("state directory"), "{cmd}: {}", plain.stderr);
        let verbose = default(&[cmd, "-v"]);
        let head = format!(
            "the state directory `{}` cannot be used (cannot create it: not a directory)",
            file.join("hashpyc").display()
        );
        assert_eq!(lines(&verbose.stderr, &head), 1, "{cmd}: {}", verbose.stderr);
    }
    // A relative XDG_CACHE_HOME is ignored, as the XDG Base Directory specification says
    // (it put a `relative/hashpyc` into the tree `check` ran in): `~/.cache/hashpyc`.
    // (A home that exists: under one that does not, there is no state directory at all.)
    let home = tree.path("home");
    std::fs::create_dir(&home).unwrap();
    let relative = tree.hashpyc().env_remove("HASHPYC_STATE_DIR").env("XDG_CACHE_HOME", "relative");
    let relative = relative.env("HOME", &home).args(["check"]).python(py).arg("src").run();
    assert!(!tree.path("relative").exists(), "{}", relative.stderr);
    assert!(home.join(".cache/hashpyc").is_dir(), "{}", relative.stderr);
    // Off on purpose, or a usable directory: nothing to say.
    let off = tree.hashpyc().env("HASHPYC_STATE_DIR", &file).env("HASHPYC_NO_STATE", "1");
    let off = off.args(["compile"]).python(py).arg("src").run();
    off.assert_code(1);
    let fine = tree.hashpyc().args(["compile"]).python(py).arg("src").run();
    fine.assert_code(1);
    for run in [&off, &fine] {
        assert!(!run.stderr.contains("state directory"), "{}", run.stderr);
    }
}

// 5. `inspect` of something that is not a pyc is an error that says so.
per_python!(inspect_refuses_what_is_not_a_pyc, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "import os\nprint(os.sep)\n");
    tree.write("garbage.pyc", [0x12u8; 64]);
    for (file, want) in
        [("m.py", "not a pyc file"), ("garbage.pyc", "not a pyc file"), ("never-existed.pyc", "no such file")]
    {
        let run = tree.hashpyc().args(["inspect", file]).run();
        run.assert_code(1);
        assert!(run.stdout.contains(want), "{file}: {}", run.stdout);
        assert!(
            !run.stdout.contains("vanished") && !run.stdout.contains("magic  "),
            "{file}: {}",
            run.stdout
        );
    }
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("m.py").run().assert_code(0);
    let pyc = format!("__pycache__/m.{}.pyc", tag(py));
    tree.hashpyc().args(["inspect", &pyc]).run().assert_code(0);
    // A pyc cut short inside its body is not a usable pyc either.
    let data = tree.read(&pyc);
    tree.write("cut.pyc", &data[..data.len() - 3]);
    let cut = tree.hashpyc().args(["inspect", "cut.pyc"]).run();
    cut.assert_code(1);
    assert!(cut.stdout.contains("body"), "{}", cut.stdout);
});

// `inspect` read the whole file before looking at its header: a 2 GiB file of zeros took
// 2 GB of memory (a run under a memory limit aborted). It reads the header, and of a pyc's
// body only as far as its code object goes; the size of what follows is the file's.
#[test]
fn inspect_reads_no_more_than_it_needs() {
    let Some(py) = harness::any_python("first_hour::inspect_reads_no_more_than_it_needs") else { return };
    let tree = Tree::new();
    tree.write("m.py", "A = 1\n");
    tree.hashpyc().args(["compile", "-q", "-b"]).python(py).arg("m.py").run().assert_code(0);
    let pyc = tree.read("m.pyc");
    let body = pyc.len() - 16;
    const HUGE: u64 = 2 << 30;
    // Sparse files far larger than the memory the runs may use: zeros, a pyc header then
    // zeros, a whole pyc then zeros.
    for (name, head) in [("zeros.pyc", &[][..]), ("header.pyc", &pyc[..16]), ("tail.pyc", &pyc[..])] {
        tree.write(name, head);
        std::fs::OpenOptions::new().write(true).open(tree.path(name)).unwrap().set_len(HUGE).unwrap();
    }
    let inspect = |name: &str| tree.hashpyc().args(["inspect", "--json", name]).bounded(256_000, 60).run();
    let field = |run: &harness::Run, k: &str| {
        let v: serde_json::Value =
            serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
        v[k].clone()
    };
    // The limit leaves room for a run: the pyc itself is described.
    let whole = inspect("m.pyc");
    whole.assert_code(0);
    assert_eq!(field(&whole, "body_bytes"), body, "{whole:?}");
    let zeros = inspect("zeros.pyc");
    zeros.assert_code(1);
    assert!(
        field(&zeros, "error")
            .as_str()
            .unwrap()
            .starts_with("not a pyc file: it does not start with a magic number"),
        "{zeros:?}"
    );
    let header = inspect("header.pyc");
    header.assert_code(1);
    assert_eq!(field(&header, "body_bytes"), HUGE - 16, "{header:?}");
    assert_eq!(field(&header, "error"), "body: unknown marshal type 0x00", "{header:?}");
    // Bytes after the code object are counted, not read (CPython ignores them).
    let tail = inspect("tail.pyc");
    tail.assert_code(0);
    assert_eq!(field(&tail, "body_bytes"), HUGE - 16, "{tail:?}");
    assert_eq!(field(&tail, "trailing_bytes"), HUGE - pyc.len() as u64, "{tail:?}");
    assert_eq!(field(&tail, "embedded_path"), "m.py", "{tail:?}");
}

// `inspect` of a directory said "not a regular file", as of a FIFO; it says what it is, as
// `cat` does, named as a pyc, as a source or as found for one (a FIFO keeps its wording).
#[test]
fn inspect_says_a_directory_is_one() {
    let tree = Tree::new();
    for dir in ["pkg", "d.pyc", "d.py", "__pycache__/m.cpython-312.pyc"] {
        std::fs::create_dir_all(tree.path(dir)).unwrap();
    }
    tree.write("m.py", "A = 1\n");
    for (arg, described) in
        [("pkg", "pkg"), ("d.pyc", "d.pyc"), ("d.py", "d.py"), ("m.py", "__pycache__/m.cpython-312.pyc")]
    {
        let run = tree.hashpyc().args(["inspect", arg]).run();
        run.assert_code(1);
        assert_eq!(
            run.stdout,
            format!("{described}\n  error: is a directory, not a pyc file\n"),
            "{arg}: {run:?}"
        );
        let json = tree.hashpyc().args(["inspect", "--json", arg]).run();
        json.assert_code(1);
        let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
        assert_eq!(v["error"], "is a directory, not a pyc file", "{arg}: {json:?}");
    }
}

// 6. Summaries name the interpreter; pycs of another version get a hint.
per_python!(summaries_name_the_interpreter, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let run = tree.hashpyc().arg("compile").python(py).arg(".").run();
    run.assert_code(0);
    assert!(run.stderr.contains(&format!("for CPython {} (", py.version)), "{}", run.stderr);
    let check = tree.hashpyc().arg("check").python(py).arg(".").run();
    assert!(
        check.stderr.contains(&format!("Checked 1 file for CPython {} (", py.version)),
        "{}",
        check.stderr
    );
    let table =
        tree.hashpyc().args(["check", "--target", &format!("{}.{}", py.minor.0, py.minor.1), "."]).run();
    assert!(
        table.stderr.contains(&format!("for CPython {}.{} (", py.minor.0, py.minor.1)),
        "{}",
        table.stderr
    );
    let Some(other) = harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 7)) else {
        return harness::visible("SKIPPED summaries_name_the_interpreter (hint): needs a second CPython");
    };
    let wrong = tree.hashpyc().arg("check").python(other).arg(".").run();
    wrong.assert_code(1);
    let want = format!(
        "hint: 1 pyc is missing for CPython {}, but 1 {} pyc is there: did you mean `--python python{}.{}` \
         (or `--target {}.{}`, which needs no interpreter)?",
        other.version,
        tag(py),
        py.minor.0,
        py.minor.1,
        py.minor.0,
        py.minor.1
    );
    assert!(wrong.stderr.contains(&want), "{}", wrong.stderr);
    // Under `--target` the hint names the same flag.
    let by_table = format!("{}.{}", other.minor.0, other.minor.1);
    let wrong = tree.hashpyc().args(["check", "--target", &by_table, "."]).run();
    wrong.assert_code(1);
    let want = format!("did you mean `--target {}.{}`?", py.minor.0, py.minor.1);
    assert!(wrong.stderr.contains(&want), "{}", wrong.stderr);
    // No hint when the pyc missing for `other` is that of a file that fails to compile
    // (its pycs of other versions are those of other modules, not of it).
    tree.hashpyc().arg("compile").python(other).arg(".").run().assert_code(0);
    tree.write("bad.py", "def f(:\n");
    let run = tree.hashpyc().arg("check").python(other).arg(".").run();
    run.assert_code(1);
    assert!(!harness::has_other_hint(&run.stderr), "{}", run.stderr);
});

// A pyc missing for CPython 3.11 because its source is 3.12 syntax (`type X = int`), beside
// a module compiled by both, is no sign of the wrong interpreter: check said `hint: 1 pyc is
// missing for CPython 3.11…, but 1 cpython-312 pyc is there: did you mean --python
// python3.12?`, with the state directory saying the source does not compile and without.
// A tree compiled by 3.12 alone still gets the hint.
#[test]
fn no_wrong_interpreter_hint_for_a_source_this_version_cannot_compile() {
    let test = "first_hour::no_wrong_interpreter_hint_for_a_source_this_version_cannot_compile";
    let (Some(py11), Some(py12)) = (harness::pythons().get(&(3, 11)), harness::pythons().get(&(3, 12)))
    else {
        return harness::visible(&format!("SKIPPED {test}: needs CPython 3.11 and 3.12"));
    };
    let tree = Tree::new();
    tree.write("h1/new.py", "type X = int\n");
    tree.write("h1/ok.py", "x = 1\n");
    tree.write("h2/m.py", "y = 1\n");
    tree.hashpyc().arg("compile").python(py12).args(["h1", "h2"]).run().assert_code(0);
    tree.hashpyc().arg("compile").python(py11).arg("h1").run().assert_code(1);
    for no_state in [false, true] {
        let check = |dir: &str| {
            let b = tree.hashpyc().arg("check").python(py11).arg(dir);
            let b = if no_state { b.env("HASHPYC_NO_STATE", "1") } else { b };
            let run = b.run();
            run.assert_code(1);
            run
        };
        let h1 = check("h1");
        assert!(
            h1.stdout.lines().any(|l| l.starts_with("missing") && l.contains(" h1/new.py")),
            "no state: {no_state}: {h1:?}"
        );
        assert!(!harness::has_other_hint(&h1.stderr), "no state: {no_state}: {h1:?}");
        let h2 = check("h2");
        let want = "but 1 cpython-312 pyc is there: did you mean `--python python3.12` (or `--target 3.12`, which \
                    needs no interpreter)?";
        assert!(h2.stderr.contains(want), "no state: {no_state}: {h2:?}");
    }
}

// The wrong-interpreter hint named every target checked (`missing for CPython 3.13.0 and
// 3.9.18`, though 3.13's pycs were all there) and counted the other version's pycs at every
// level compiled (6, where 2 exist at the level checked). Now it names only the targets
// whose pycs are missing and counts the other version's pycs at the levels missing.
#[test]
fn wrong_version_hint_names_only_the_targets_missing() {
    let test = "first_hour::wrong_version_hint_names_only_the_targets_missing";
    let (Some(py313), Some(py312), Some(py39)) = (
        harness::python_or_skip((3, 13), test),
        harness::python_or_skip((3, 12), test),
        harness::python_or_skip((3, 9), test),
    ) else {
        return;
    };
    let tree = Tree::new();
    tree.write("p/a.py", "A = 1\n");
    tree.write("p/b.py", "B = 1\n");
    let compiled = tree
        .hashpyc()
        .args(["compile", "-o", "0", "-o", "1", "-o", "2"])
        .python(py313)
        .python(py312)
        .arg("p")
        .run();
    compiled.assert_code(0);
    let check = tree.hashpyc().args(["check", "-o", "0"]).python(py313).python(py39).arg("p").run();
    check.assert_code(1);
    let want = format!(
        "hint: 2 pycs are missing for CPython {}, but 2 cpython-312 pycs are there: did you mean `--python python3.12` \
         (or `--target 3.12`, which needs no interpreter)?\n",
        py39.version
    );
    assert!(check.stderr.contains(&want), "{}", check.stderr);
}

// 7. Adding a level writes only that level; adding --hardlink-dupes links without -f;
//    check counts sources and pycs separately.
per_python!(levels_are_planned_one_by_one, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/a.py", "def f(x):\n    assert x\n    return 1\n");
    tree.write("pkg/b.py", "X = 1\n");
    tree.hashpyc().args(["compile", "-q", "-o", "0"]).python(py).arg("pkg").run().assert_code(0);
    let level0 = |name: &str| tree.path(format!("pkg/__pycache__/{name}.{}.pyc", tag(py)));
    let level1 = |name: &str| tree.path(format!("pkg/__pycache__/{name}.{}.opt-1.pyc", tag(py)));
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let before = (inode(&level0("a")), inode(&level0("b")));
    let run = tree.hashpyc().args(["compile", "-o", "0", "-o", "1"]).python(py).arg("pkg").run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 2 files"), "{}", run.stderr);
    assert_eq!((inode(&level0("a")), inode(&level0("b"))), before, "level-0 pycs were rewritten");
    // Byte for byte what a from-scratch two-level build writes.
    let scratch = Tree::new();
    scratch.write("pkg/a.py", "def f(x):\n    assert x\n    return 1\n");
    scratch.write("pkg/b.py", "X = 1\n");
    let cwd_rel =
        |t: &Tree| t.hashpyc().args(["compile", "-q", "-o", "0", "-o", "1"]).python(py).arg("pkg").run();
    cwd_rel(&scratch).assert_code(0);
    assert_eq!(harness::diff_pycs(tree.root(), scratch.root()), Vec::<PathBuf>::new());

    // --hardlink-dupes later, without -f: b's two levels are identical and get linked.
    let run = tree
        .hashpyc()
        .args(["compile", "-v", "-o", "0", "-o", "1", "--hardlink-dupes"])
        .python(py)
        .arg("pkg")
        .run();
    run.assert_code(0);
    assert!(run.stderr.contains("Compiled 0 files") && run.stderr.contains("1 linked"), "{}", run.stderr);
    assert!(run.stderr.contains("linked 1 pyc of `pkg/b.py` (identical levels)"), "{}", run.stderr);
    assert_eq!(inode(&level0("b")), inode(&level1("b")), "identical levels are one file");
    assert_ne!(inode(&level0("a")), inode(&level1("a")), "different levels stay apart");
    let again = tree
        .hashpyc()
        .args(["compile", "-o", "0", "-o", "1", "--hardlink-dupes"])
        .python(py)
        .arg("pkg")
        .run();
    assert!(
        again.stderr.contains("Compiled 0 files") && !again.stderr.contains("linked"),
        "{}",
        again.stderr
    );

    let check = tree.hashpyc().args(["check", "-o", "0", "-o", "1", "-o", "2"]).python(py).arg("pkg").run();
    check.assert_code(1);
    assert!(check.stderr.contains("Checked 2 files, 6 pycs for"), "{}", check.stderr);
    assert!(check.stderr.contains("(4 ok, 2 missing)"), "{}", check.stderr);
});

// 8. A launcher that cannot start Python: what it did, and its whole message.
#[test]
fn launcher_failures_keep_the_whole_message() {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let shim = tree.write_executable(
        "shims/python3.9",
        "#!/bin/sh\necho 'pyenv: python3.9: command not found' >&2\necho >&2\n\
         echo \"The \\`python3.9' command exists in these Python versions:\" >&2\necho '  3.9.18' >&2\nexit 127\n",
    );
    let run = tree.hashpyc().arg("compile").arg("--python").arg(&shim).arg("m.py").run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("failed to start Python: it exited with status 127 and printed:"),
        "{}",
        run.stderr
    );
    for line in ["pyenv: python3.9: command not found", "command exists in these Python versions:", "3.9.18"]
    {
        assert!(run.stderr.contains(line), "{line}: {}", run.stderr);
    }
    assert!(!run.stderr.contains("does not look like Python"), "{}", run.stderr);
}

// 9. `-s` that does not apply: one warning per run, with a count.
per_python!(strip_prefix_miss_warns_once, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    for i in 0..30 {
        tree.write(format!("pkg/m{i}.py"), format!("x = {i}\n"));
    }
    for _ in 0..2 {
        let run = tree.hashpyc().args(["compile", "-s", "/elsewhere"]).python(py).arg("pkg").run();
        run.assert_code(0);
        let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings.len(), 1, "{}", run.stderr);
        assert!(warnings[0].contains("30 source paths"), "{}", run.stderr);
    }
});

// 10. One mistake, one report: a syntax error under two interpreters is printed once with
//     both named on its first line.
per_python!(one_failure_reported_once_for_several_targets, min = (3, 10), |py: &Python| {
    let Some(other) = harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 10)) else {
        return harness::visible("SKIPPED one_failure_reported_once: needs a second CPython 3.10+");
    };
    let tree = Tree::new();
    tree.write("bad.py", "x = (\n");
    let run = tree.hashpyc().arg("compile").python(py).python(other).arg("bad.py").run();
    run.assert_code(1);
    let headers: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("bad.py:")).collect();
    assert_eq!(headers.len(), 1, "{}", run.stderr);
    assert!(headers[0].contains(&py.version) && headers[0].contains(&other.version), "{}", run.stderr);
    assert!(
        !run.stderr.lines().any(|l| l.trim_start().starts_with('^') && l.contains("CPython")),
        "{}",
        run.stderr
    );
    // Remembered failures are reported the same way, without starting Python.
    let again = tree.hashpyc().arg("compile").python(py).python(other).arg("bad.py").run();
    again.assert_code(1);
    assert_eq!(again.stderr.lines().filter(|l| l.starts_with("bad.py:")).count(), 1, "{}", again.stderr);
});

// 12. Workers carry a short, recognisable command line.
per_python!(worker_command_line_is_short, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let record = tree.path("cmdline");
    let worker = harness::worker_script().replacen(
        "def _compile(req):\n",
        &format!(
            "def _compile(req):\n    open({:?}, 'wb').write(open('/proc/self/cmdline', 'rb').read())\n",
            record.to_str().unwrap()
        ),
        1,
    );
    let script = tree.write("fake/worker.py", worker);
    tree.hashpyc()
        .env("HASHPYC_WORKER_SCRIPT", &script)
        .arg("compile")
        .python(py)
        .arg("m.py")
        .run()
        .assert_code(0);
    let cmdline = std::fs::read(&record).unwrap();
    assert!(cmdline.len() < 400, "{} bytes: {}", cmdline.len(), String::from_utf8_lossy(&cmdline));
    assert!(
        String::from_utf8_lossy(&cmdline).contains("#hashpyc-worker"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
});

// 13. Help that matches what each command does.
#[test]
fn help_matches_each_command() {
    let tree = Tree::new();
    let help = |args: &[&str]| {
        let run = tree.hashpyc().args(args).arg("--help").run();
        run.assert_code(0);
        run.stdout
    };
    let check = help(&["check"]);
    for outcome in
        ["ok", "missing", "stale", "timestamp", "unchecked", "checked", "invalid", "unreadable", "stray"]
    {
        assert!(
            check.contains(&format!("{outcome} (")) || check.contains(&format!("{outcome};")),
            "{outcome}: {check}"
        );
    }
    // (`--force` alone on its line: `--force-exclude` is check's too. `--no-progress`, which
    // the pre-commit hook passes, is shown: first_hour::output_flags_work_before_and_after_every_command.)
    for absent in ["--dry-run", "--force\n", "write a", "Write a"] {
        assert!(!check.contains(absent), "check --help mentions {absent}");
    }
    let inspect = help(&["inspect"]);
    // (`-q`, `-v` and `--color` are every command's.)
    for absent in ["--no-progress", "--python"] {
        assert!(!inspect.contains(absent), "inspect --help mentions {absent}");
    }
    assert!(inspect.contains("--format"), "{inspect}");
    let completions = help(&["completions"]);
    for absent in ["--quiet", "--verbose", "--color", "--no-progress"] {
        assert!(!completions.contains(absent), "completions --help mentions {absent}");
    }
    let compile = help(&["compile"]);
    assert!(compile.contains("0 means one per CPU"), "{compile}");
    for h in [&check, &compile] {
        assert!(h.contains("2 operational error") && h.contains("1 findings"), "{h}");
        assert!(!h.contains("I/O\nfailure)") && !h.contains("I/O failure)"), "{h}");
    }
}

// `-h` was barely shorter than `--help` (`compile -h` 242 lines, `--help` 334): most flags
// gave their whole paragraph in both. As in ripgrep, fd and uv, `-h` is now a summary, one
// sentence per option and command, ending by saying what `--help` adds; `--help` (and the
// man pages) keep the whole text.
#[test]
fn short_help_is_a_summary() {
    let tree = Tree::new();
    // The entries of a help text (options, arguments, commands): each with its description,
    // wrapped lines joined, clap's `[env: …]`, `[default: …]`, `[possible values: …]` left out.
    let entries = |text: &str| {
        let mut out: Vec<(String, String)> = Vec::new();
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            if line.trim().is_empty() || indent == 0 {
                continue;
            }
            if indent <= 6 {
                let body = line.trim_start();
                let (name, desc) = body.split_once("  ").unwrap_or((body, ""));
                out.push((name.to_string(), desc.trim().to_string()));
            } else if let Some(last) = out.last_mut() {
                last.1 = format!("{} {}", last.1, line.trim()).trim().to_string();
            }
        }
        out.into_iter()
            .map(|(name, desc)| (name, desc.split(" [env: ").next().unwrap().to_string()))
            .map(|(name, desc)| (name, desc.split(" [default: ").next().unwrap().to_string()))
            .map(|(name, desc)| (name, desc.split(" [possible values: ").next().unwrap().to_string()))
            .collect::<Vec<_>>()
    };
    let commands = harness::COMMANDS;
    for command in commands {
        let name = format!("hashpyc {}", command.join(" "));
        let short = tree.hashpyc().args(*command).arg("-h").run();
        short.assert_code(0);
        let long = tree.hashpyc().args(*command).arg("--help").run();
        long.assert_code(0);
        let short_entries = entries(&short.stdout);
        assert!(short_entries.len() >= 2, "{name} -h: {}", short.stdout);
        for (entry, desc) in &short_entries {
            assert!(desc.chars().count() <= 100, "{name} -h: {entry} takes more than a line: {desc}");
        }
        let end = short.stdout.trim_end().lines().last().unwrap_or_default();
        assert!(
            end.contains("'--help'") || end.contains("COMMAND --help"),
            "{name} -h does not end saying what --help adds: {}",
            short.stdout
        );
        assert!(short.stdout.contains("(see more with '--help')"), "{name} -h: {}", short.stdout);
        // `--help` says more of some entry than `-h` does, and keeps its whole text.
        let long_entries = entries(&long.stdout);
        let longer = long_entries.iter().filter(|(entry, desc)| {
            short_entries.iter().any(|(e, d)| e == entry && desc.len() > d.len() + 20)
        });
        // (or of the command itself: `completions`' text on loading the script)
        let about = |text: &str| text.split("\nUsage:").next().unwrap_or_default().len();
        assert!(
            longer.count() >= 1 || about(&long.stdout) > about(&short.stdout) + 20,
            "{name} --help says no more than -h:\n{}\n{}",
            short.stdout,
            long.stdout
        );
        assert!(long.stdout.len() > short.stdout.len() * 3 / 2, "{name}:\n{}\n{}", short.stdout, long.stdout);
    }
    // The whole text of an option and of the exit status, in `--help` only.
    let short = tree.hashpyc().args(["compile", "-h"]).run().stdout;
    let long = tree.hashpyc().args(["compile", "--help"]).run().stdout;
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    for whole in ["0 means one per CPU", "130 interrupted (SIGINT)", "hides the progress bar and the summary"]
    {
        assert!(words(&long).contains(whole), "compile --help lacks {whole}: {long}");
        assert!(!words(&short).contains(whole), "compile -h has {whole}: {short}");
    }
}

// A staged file named like an option (`-n.py`, as pre-commit and git pass it) gave clap's
// `unexpected argument '-.' found` (`-n`, then `-.`), naming neither the file nor `--`; and
// `compile a.py -x.py` took `-x.py` as `-x .py`, an --exclude-regex that skipped `a.py`,
// with exit status 0. Now both name the word, say it is a file here, and give the command
// with the file after `--`.
#[test]
fn file_named_like_an_option_is_named() {
    let Some(py) = harness::any_python("file_named_like_an_option_is_named") else { return };
    let tree = Tree::new();
    for name in ["-n.py", "-x.py", "a.py"] {
        tree.write(name, "X = 1\n");
    }
    let refused: &[(&[&str], &str)] = &[
        (&["compile", "-n.py"], "`hashpyc compile -- -n.py`"),
        (&["check", "-n.py"], "`hashpyc check -- -n.py`"),
        (&["compile", "-q", "-n.py", "a.py"], "`hashpyc compile -q a.py -- -n.py`"),
        (&["compile", "a.py", "-x.py"], "`hashpyc compile a.py -- -x.py`"),
        (&["check", "a.py", "-x.py"], "`hashpyc check a.py -- -x.py`"),
    ];
    for (args, fixed) in refused {
        let run = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).args(*args).run();
        run.assert_code(2);
        let word = args.iter().find(|a| a.starts_with('-') && a.ends_with(".py")).unwrap();
        assert!(run.stderr.starts_with(&format!("error: `{word}` ")), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("is a file in the current directory"), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(fixed), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(tree.pycs().is_empty(), "{args:?} wrote {:?}", tree.pycs());
    }
    // A name with a line break: clap's reason, which quotes it raw, is not cut inside the
    // name (it was: `(read as options: unexpected argument '-)`), its character escaped.
    tree.write("-n\nl.py", "X = 1\n");
    let broken = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).args(["compile", "-n\nl.py"]).run();
    broken.assert_code(2);
    assert_eq!(broken.stderr.lines().count(), 1, "{}", broken.stderr);
    assert!(
        broken.stderr.contains(r"(read as options: unexpected argument '-\n' found)"),
        "{}",
        broken.stderr
    );
    std::fs::remove_file(tree.path("-n\nl.py")).expect("rm");
    // `-x .py` written apart is the option, as meant.
    let apart = tree.hashpyc().args(["check", "a.py", "-x", ".py"]).python(py).run();
    assert!(!apart.stderr.contains("is a file"), "{}", apart.stderr);
    // Not a file here, but a file's name: named, with the way out.
    let absent = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).args(["compile", "-f.pyc"]).run();
    absent.assert_code(2);
    assert!(
        absent.stderr.starts_with("error: `-f.pyc` is not an option of `hashpyc compile`"),
        "{}",
        absent.stderr
    );
    assert!(!absent.stderr.contains("is a file"), "{}", absent.stderr);
    assert!(absent.stderr.contains("`hashpyc compile -- -f.pyc`"), "{}", absent.stderr);
    // A mistyped flag keeps clap's message.
    let typo = tree.hashpyc().args(["compile", "--forse"]).python(py).run();
    typo.assert_code(2);
    assert!(typo.stderr.contains("unexpected argument '--forse'"), "{}", typo.stderr);
    // The command given writes the pycs py_compile writes.
    let run = tree.hashpyc().args(["compile"]).python(py).args(["a.py", "--", "-n.py", "-x.py"]).run();
    run.assert_code(0);
    let sources: Vec<PathBuf> = ["-n.py", "-x.py", "a.py"].iter().map(PathBuf::from).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, None);
    for (source, want) in sources.iter().zip(refs) {
        let pyc = pyc_of(&tree, py, &source.to_string_lossy());
        assert_eq!(std::fs::read(&pyc).ok(), want, "{}", pyc.display());
    }
}

/// The command in backticks after `marker` in `stderr`.
fn suggested<'a>(stderr: &'a str, marker: &str) -> &'a str {
    let after =
        &stderr[stderr.find(marker).unwrap_or_else(|| panic!("no {marker:?} in {stderr}")) + marker.len()..];
    let start = after.find('`').expect("a command in backticks") + 1;
    &after[start..start + after[start..].find('`').expect("its closing backtick")]
}

/// The pyc of `source` (a name in the tree's top directory) under `py`, by its bytes.
fn top_pyc(tree: &Tree, py: &Python, source: &[u8]) -> PathBuf {
    let stem = &source[..source.len() - 3];
    let mut name = stem.to_vec();
    name.extend_from_slice(format!(".cpython-{}{}.pyc", py.minor.0, py.minor.1).as_bytes());
    tree.path("__pycache__").join(OsStr::from_bytes(&name))
}

// The commands hints suggest named a file as Rust escapes it (`"caf\xE9.py"`), or raw
// (`hashpyc check my $dir`), or lost its bytes (`-n\u{fffd}.py` for a name that is not
// UTF-8): a name with a space, a `$`, a quote or such a byte gave a command that could not
// be pasted. Each is now quoted for a shell, and each command taken from stderr, run by a
// shell, does what it says.
#[test]
fn suggested_commands_run_as_pasted() {
    // The spelling hint is given from CPython 3.8 on (as in spelling_hint_from_a_subdirectory).
    let Some(py) = harness::pythons().values().find(|p| p.minor >= (3, 8)) else {
        harness::visible("SKIPPED suggested_commands_run_as_pasted: no CPython 3.8+");
        return;
    };
    let tree = Tree::new();
    // A file named like an option, given before `--`: the command with it after `--`.
    let names: [(&[u8], &str); 2] = [(b"-n $x'y \"z\".py", "sh"), (b"-n\xff $x.py", "bash")];
    for (name, shell) in names {
        tree.write(OsStr::from_bytes(name), "X = 1\n");
        let run =
            tree.hashpyc().env("HASHPYC_PYTHON", &py.path).arg("compile").arg(OsStr::from_bytes(name)).run();
        run.assert_code(2);
        let command = suggested(&run.stderr, "which ends the options: ");
        assert!(!command.contains('\u{fffd}'), "{command}");
        assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
        let pasted = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).pasted(shell, command).run();
        pasted.assert_code(0);
        let source = PathBuf::from(OsStr::from_bytes(name));
        let want = harness::py_compile_refs(py, tree.root(), &[source], None).remove(0);
        let pyc = top_pyc(&tree, py, name);
        assert_eq!(std::fs::read(&pyc).ok(), want, "{command}: {}", pyc.display());
        std::fs::remove_dir_all(tree.path("__pycache__")).unwrap();
        std::fs::remove_file(tree.path(OsStr::from_bytes(name))).unwrap();
    }
    // A tree compiled from the top, checked from a subdirectory: the command that checks it
    // as written, from the top.
    tree.write("my $dir 'x'/a.py", "A = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    let run = Hashpyc::new(&tree.path("my $dir 'x'")).arg("check").python(py).run();
    run.assert_code(1);
    let command = suggested(&run.stderr, "where the compile that wrote it ran: ");
    assert_eq!(command, r#"cd .. && hashpyc check 'my $dir '\''x'\'''"#, "{}", run.stderr);
    let pasted =
        Hashpyc::new(&tree.path("my $dir 'x'")).env("HASHPYC_PYTHON", &py.path).pasted("sh", command).run();
    pasted.assert_code(0);
    assert!(pasted.stderr.contains("Checked 1 file"), "{}", pasted.stderr);
    // The hint's directory was a backticked name ("`hashpyc check pkg` in `top dir 'q'`"),
    // which `cd` cannot take pasted (helper report): compiled in a directory whose name
    // holds a space and a quote, checked from above it, the line to paste is one command,
    // the directory shell-quoted, and it checks the pycs as written.
    tree.write("top dir 'q'/pkg/b.py", "B = 1\n");
    Hashpyc::new(&tree.path("top dir 'q'"))
        .args(["compile", "-q"])
        .python(py)
        .arg("pkg")
        .run()
        .assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).arg("top dir 'q'/pkg").run();
    run.assert_code(1);
    let command = suggested(&run.stderr, "where the compile that wrote it ran: ");
    assert_eq!(command, r#"cd 'top dir '\''q'\''' && hashpyc check pkg"#, "{}", run.stderr);
    let pasted = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).pasted("sh", command).run();
    pasted.assert_code(0);
    assert!(pasted.stderr.contains("Checked 1 file"), "{}", pasted.stderr);
    // A named source gone with its legacy pyc beside it: the command that lists that pyc.
    tree.write("it's \"here\"/m.py", "M = 1\n");
    tree.hashpyc().args(["compile", "-q", "-b"]).python(py).arg("it's \"here\"").run().assert_code(0);
    std::fs::remove_file(tree.path("it's \"here\"/m.py")).unwrap();
    let run = tree.hashpyc().args(["check"]).python(py).arg("it's \"here\"/m.py").run();
    run.assert_code(2);
    let command = suggested(&run.stderr, "which Python imports in its place (");
    let pasted = tree.hashpyc().env("HASHPYC_PYTHON", &py.path).pasted("sh", command).run();
    pasted.assert_code(1);
    assert!(pasted.stdout.contains("stray      it's \"here\"/m.pyc"), "{command}: {}", pasted.stdout);
}

// `hashpyc --help` said exit status 2 for "a path that does not exist", but `inspect
// nothere.pyc` exits 1 (a file it cannot describe, as the README's `inspect` output says),
// and `inspect --help` said nothing of its exit status (helper report). Now the top-level
// help states inspect's codes and `inspect --help` has its own exit-status paragraph.
#[test]
fn inspect_exit_status_is_in_the_help() {
    let tree = Tree::new();
    tree.hashpyc().args(["inspect", "nothere.pyc"]).run().assert_code(1);
    let exit_status = |args: &[&str]| {
        let run = tree.hashpyc().args(args).arg("--help").run();
        run.assert_code(0);
        let part = run.stdout.split("Exit status:").nth(1).unwrap_or_else(|| panic!("{}", run.stdout));
        part.split("\n\n").next().unwrap().replace('\n', " ")
    };
    let top = exit_status(&[]);
    assert!(top.contains("`inspect`: a file that is not a valid pyc or does not exist"), "{top}");
    assert!(top.contains("for `compile` and `check`, a path that does not exist"), "{top}");
    let inspect = exit_status(&["inspect"]);
    assert!(inspect.contains("1 a file that is not a valid pyc, does not exist"), "{inspect}");
    assert!(!inspect.contains("a path that does not exist"), "{inspect}");
}

// `-q`, `-v` and `--color` were refused by `inspect` (but for `--color`) and by the `cache`
// commands, and before the subcommand (`hashpyc -q compile`: unexpected argument), where uv
// takes them (`uv -q cache dir`); `check --no-progress`, which the pre-commit hook passes,
// was hidden from `check --help`; `-vv` did what `-v` does, unsaid (helper report). Now
// every command takes the three on either side of its name, `-q` silences the cache
// commands' notes and `Removed …` lines, and the help shows `check --no-progress` and says
// that a repeated `-v` adds nothing.
#[test]
fn output_flags_work_before_and_after_every_command() {
    let Some(py) = harness::any_python("first_hour::output_flags_work_before_and_after_every_command") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    // No state directory: a second `check -v` would read the pycs the first found good only
    // up to their header, and say so.
    let run = |args: &[&str]| tree.hashpyc().env("HASHPYC_NO_STATE", "1").args(args).run();
    let pyarg = py.path.to_str().unwrap();
    // Before the subcommand, as after it.
    let quiet = run(&["-q", "compile", "--python", pyarg, "m.py"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "", "-q before compile hides the summary");
    assert!(tree.path(format!("__pycache__/m.{}.pyc", tag(py))).exists());
    let after = run(&["check", "-v", "--color", "never", "--python", pyarg, "m.py"]);
    let before = run(&["-v", "--color", "never", "check", "--python", pyarg, "m.py"]);
    after.assert_code(0);
    before.assert_code(0);
    assert_eq!(before.stderr, after.stderr);
    assert!(before.stderr.lines().count() > 1, "{}", before.stderr);
    run(&["-q", "-v", "check", "m.py"]).assert_code(2);
    // inspect: its data whatever -q and -v.
    let plain = run(&["inspect", "m.py"]);
    plain.assert_code(0);
    for args in [
        &["inspect", "-q", "m.py"][..],
        &["-v", "inspect", "m.py"],
        &["-q", "inspect", "--color", "never", "m.py"],
    ] {
        let r = run(args);
        r.assert_code(0);
        assert_eq!(r.stdout, plain.stdout, "{args:?}");
    }
    // The cache commands: -q hides the notes and the `Removed …` lines, never the statistics.
    let cache = tree.path("cache");
    let cache = cache.to_str().unwrap();
    run(&["compile", "-q", "--python", pyarg, "-f", "--cache", cache, "m.py"]).assert_code(0);
    let stats = run(&["cache", "stats", "--cache", cache]);
    stats.assert_code(0);
    for args in [
        &["-q", "cache", "stats", "--cache", cache][..],
        &["cache", "stats", "-v", "--color", "never", "--cache", cache],
    ] {
        let r = run(args);
        r.assert_code(0);
        assert_eq!(r.stdout, stats.stdout, "{args:?}");
    }
    for sub in ["prune", "clean"] {
        let said = run(&["cache", sub, "--cache", cache]);
        said.assert_code(0);
        assert!(said.stderr.contains("Removed "), "{}", said.stderr);
        let quiet = run(&["cache", sub, "-q", "--cache", cache]);
        quiet.assert_code(0);
        assert_eq!(quiet.stderr, "", "cache {sub} -q");
    }
    let gone = tree.path("gone");
    let note = run(&["cache", "clean", "--cache", gone.to_str().unwrap()]);
    assert!(note.stderr.starts_with("note: "), "{}", note.stderr);
    let quiet = run(&["-q", "cache", "clean", "--cache", gone.to_str().unwrap()]);
    quiet.assert_code(0);
    assert_eq!(quiet.stderr, "");
    // The help.
    let help = |args: &[&str]| {
        let r = tree.hashpyc().args(args).arg("--help").run();
        r.assert_code(0);
        r.stdout.replace('\n', " ").split_whitespace().collect::<Vec<_>>().join(" ")
    };
    assert!(
        help(&["check"]).contains("--no-progress Accepted as `compile` takes it"),
        "{}",
        help(&["check"])
    );
    for command in ["compile", "check", "inspect"] {
        assert!(help(&[command]).contains("A repeated `-v` adds nothing"), "{}", help(&[command]));
    }
}

per_python!(verbose_and_dry_run_speak_plainly, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let v = tree.hashpyc().args(["compile", "-v"]).python(py).arg(".").run();
    v.assert_code(0);
    assert!(!v.stderr.contains('{') && v.stderr.contains("long-lived workers"), "{}", v.stderr);
    tree.write("n.py", "y = 2\n");
    let dry = tree.hashpyc().args(["compile", "-n"]).python(py).arg(".").run();
    dry.assert_code(0);
    assert!(
        dry.stderr.contains(&format!(
            "Would compile 1 file, rewrite 0 headers for CPython {} (1 already fresh)",
            py.version
        )),
        "{}",
        dry.stderr
    );
    assert!(!tree.path(format!("__pycache__/n.{}.pyc", tag(py))).exists());
    // -j 0 is one worker per CPU, not an error.
    tree.hashpyc().args(["compile", "-q", "-j", "0"]).python(py).arg(".").run().assert_code(0);
});

// A project whose top directory holds modules named like the standard library's
// (`random.py`, `types.py`, an `importlib/` package), compiled from that directory: asking
// the interpreter what it is must not import them (the probe's `-c` put the working
// directory first on sys.path, `tempfile` imported `random` from it, and every run failed
// with "failed to start Python" until its answer was cached). A fresh state directory
// makes both commands probe.
per_python!(stdlib_names_in_the_working_directory, |py: &Python| {
    let tree = Tree::new();
    let names = [
        "random.py",
        "bisect.py",
        "tempfile.py",
        "shutil.py",
        "types.py",
        "enum.py",
        "functools.py",
        "warnings.py",
        "weakref.py",
        "py_compile.py",
        "sysconfig.py",
        "importlib/__init__.py",
        "importlib/util.py",
        "collections/__init__.py",
    ];
    for name in names {
        tree.write(name, "raise ImportError('imported from the working directory')\n");
    }
    let state = tempfile::tempdir().unwrap();
    let compile = tree
        .hashpyc()
        .env("HASHPYC_STATE_DIR", state.path())
        .args(["compile", "-q"])
        .python(py)
        .arg(".")
        .run();
    compile.assert_code(0);
    let state = tempfile::tempdir().unwrap();
    tree.hashpyc()
        .env("HASHPYC_STATE_DIR", state.path())
        .arg("check")
        .python(py)
        .arg(".")
        .run()
        .assert_code(0);
    let sources: Vec<PathBuf> = names.iter().map(|n| Path::new(".").join(n)).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, None);
    for (name, reference) in names.iter().zip(&refs) {
        same_as_py_compile(py, &std::fs::read(pyc_of(&tree, py, name)).unwrap(), reference, name);
    }
});

/// Byte identity with py_compile's pyc on 3.11+; before 3.11 py_compile's process may set
/// marshal's FLAG_REF where a worker does not (see tests/it/compile.rs), so the header and
/// the length must agree there.
fn same_as_py_compile(py: &Python, ours: &[u8], reference: &Option<Vec<u8>>, name: &str) {
    let reference = reference.as_ref().expect("py_compile compiled it");
    if py.minor >= (3, 11) {
        assert_eq!(ours, &reference[..], "{name}: differs from py_compile's pyc");
    } else {
        assert_eq!((&ours[..16], ours.len()), (&reference[..16], reference.len()), "{name}");
    }
}

// Nested roots (`compile src .`, `. src`, an absolute and a relative spelling, a symlink
// to a directory and the directory): a file
// reached under two spellings was compiled twice, by two workers at once, and its pyc kept
// whichever embedded path was renamed into place last; every later run found the other
// spelling's path and compiled it again, and `check --stray` saw each pyc twice. Each
// file is now compiled once, under the spelling of the first root given that reaches it.
per_python!(nested_roots_compile_each_file_once, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/pkg/__init__.py", "");
    tree.write("src/pkg/a.py", "x = 1\n");
    tree.write("top.py", "y = 2\n");
    let pyc = pyc_of(&tree, py, "src/pkg/a.py");
    let embedded = || {
        let out = tree.hashpyc().arg("inspect").arg(&pyc).run();
        out.assert_code(0);
        let line = out.stdout.lines().find_map(|l| l.trim().strip_prefix("co_filename").map(str::trim));
        line.unwrap_or_else(|| panic!("no co_filename in {}", out.stdout)).to_string()
    };
    let compile = |roots: &[&str]| {
        let run = tree.hashpyc().args(["compile", "-v", "-j4"]).python(py).args(roots).run();
        run.assert_code(0);
        run.stderr
    };
    let absolute = tree.path("src").to_str().unwrap().to_string();
    std::os::unix::fs::symlink("src", tree.path("alias")).unwrap();
    let cases = [
        (vec!["src", "."], "src/pkg/a.py", 3),
        (vec![".", "src"], "./src/pkg/a.py", 2),
        (vec![absolute.as_str(), "src/pkg/a.py", "."], &*format!("{absolute}/pkg/a.py"), 2),
        (vec!["./src/pkg/a.py", "src", "."], "./src/pkg/a.py", 2),
        (vec!["alias", "src", "."], "alias/pkg/a.py", 2),
    ];
    for (roots, spelling, compiled) in cases {
        let first = compile(&roots);
        let fresh = 3 - compiled;
        let summary = format!("Compiled {compiled} files for CPython {} ({fresh} already fresh)", py.version);
        assert!(first.contains(&summary), "{roots:?}: {first}");
        assert_eq!(first.matches("compiled `").count(), compiled, "{roots:?}: each file once: {first}");
        assert_eq!(embedded(), spelling, "{roots:?}");
        let again = compile(&roots);
        assert!(again.contains("Compiled 0 files"), "{roots:?}: a second run is a no-op: {again}");
        let check = tree.hashpyc().args(["check", "--stray"]).python(py).args(&roots).run();
        check.assert_code(0);
        assert!(check.stderr.contains("Checked 3 files"), "{roots:?}: {}", check.stderr);
    }
});

/// The `.py` files a dry run of `args` would compile, relative to `tree`, sorted.
fn would_compile(tree: &Tree, cwd: &Path, py: &Python, args: &[&str]) -> Vec<String> {
    let run = harness::Hashpyc::new(cwd).args(["compile", "-n"]).python(py).args(args).run();
    run.assert_code(0);
    let mut out: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("compile  "))
        .map(|l| {
            let path = l.split("  (").next().unwrap().trim_start_matches("./");
            let abs = cwd.join(path);
            abs.strip_prefix(tree.root()).unwrap().to_str().unwrap().to_string()
        })
        .collect();
    out.sort();
    out
}

// Excludes as a hook and a subdirectory meet them: `--force-exclude` (or the key) applies
// the configuration's excludes to named paths (files, stdin lists, `.` inside an excluded
// directory); an empty exclude is an error, not an empty build; and `!GLOB` takes back
// what an earlier glob skipped exactly as git decides for the same lines.
// A path with no Python source under it compiles nothing, exit 0 as with compileall, and
// says so (a wrong directory must not look like a build); not for an empty list on stdin.
per_python!(an_empty_selection_is_named, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("empty/README.txt", "no code\n");
    tree.write("hidden/.venv/m.py", "x = 1\n");
    let compileall =
        py.cmd().args(["-m", "compileall", "-q", "empty"]).current_dir(tree.root()).status().unwrap();
    assert_eq!(compileall.code(), Some(0), "compileall's exit status for a directory without sources");
    let run = tree.hashpyc().arg("compile").python(py).arg("empty").run();
    run.assert_code(0);
    assert!(run.stderr.contains("warning: no Python sources to compile under `empty`"), "{}", run.stderr);
    let hidden = tree.hashpyc().args(["compile", "--skip-hidden"]).python(py).arg("hidden").run();
    hidden.assert_code(0);
    assert!(
        hidden
            .stderr
            .contains("no Python sources to compile under `hidden` (skipped 1 directory by --skip-hidden)"),
        "{}",
        hidden.stderr
    );
    let json = tree.hashpyc().args(["compile", "--format", "json"]).python(py).arg("empty").run();
    json.assert_code(0);
    assert!(json.stderr.is_empty(), "{}", json.stderr);
    let notice: serde_json::Value = serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(notice["type"], "notice");
    assert_eq!(notice["message"], "no Python sources to compile under `empty`");
    // -qq, an empty list on stdin, and a tree with sources: no such warning.
    let quiet = tree.hashpyc().args(["compile", "-qq"]).python(py).arg("empty").run();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    let stdin = tree.hashpyc().arg("compile").python(py).arg("-").stdin(Vec::new()).run();
    stdin.assert_code(0);
    assert!(!stdin.stderr.contains("no Python sources"), "{}", stdin.stderr);
    let some = tree.hashpyc().arg("compile").python(py).arg("hidden").run();
    some.assert_code(0);
    assert!(!some.stderr.contains("no Python sources"), "{}", some.stderr);
});

per_python!(excludes_apply_to_named_paths_as_asked, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    let config = "[tool.hashpyc]\nexclude = [\"tests/fixtures/\", \"/docs/\"]\n";
    tree.write("pyproject.toml", config);
    tree.write("src/a.py", "X = 1\n");
    tree.write("tests/fixtures/broken.py", "def f(:\n");
    tree.write("docs/conf.py", "Y = 2\n");
    let compile = |cwd: &Path, args: &[&str], stdin: &str| {
        harness::Hashpyc::new(cwd).arg("compile").python(py).args(args).stdin(stdin).run()
    };
    // Named one by one, as pre-commit does: by default a named file is always taken.
    compile(tree.root(), &["src/a.py", "tests/fixtures/broken.py"], "").assert_code(1);
    assert!(pyc_of(&tree, py, "src/a.py").is_file());
    let forced = compile(tree.root(), &["--force-exclude", "src/a.py", "tests/fixtures/broken.py"], "");
    forced.assert_code(0);
    assert!(forced.stderr.contains("1 named path excluded by --force-exclude"), "{}", forced.stderr);
    let listed =
        compile(tree.root(), &["--force-exclude", "-"], "src/a.py\ntests/fixtures/broken.py\ndocs/conf.py\n");
    listed.assert_code(0);
    assert!(listed.stderr.contains("2 named paths excluded"), "{}", listed.stderr);
    compile(&tree.path("docs"), &["--force-exclude", "."], "").assert_code(0);
    assert!(!tree.path("docs/__pycache__").exists() && !tree.path("tests/fixtures/__pycache__").exists());
    let check = harness::Hashpyc::new(tree.root())
        .args(["check", "--force-exclude"])
        .python(py)
        .arg("tests/fixtures/broken.py")
        .run();
    check.assert_code(0);
    // Nothing was checked: the summary does not call it fresh.
    assert!(
        check.stderr.contains("1 named path excluded by --force-exclude")
            && !check.stderr.contains("all fresh"),
        "{}",
        check.stderr
    );
    // The key, and the flag that turns it off.
    tree.write("pyproject.toml", format!("{config}force-exclude = true\n"));
    compile(tree.root(), &["tests/fixtures/broken.py"], "").assert_code(0);
    compile(tree.root(), &["--no-force-exclude", "tests/fixtures/broken.py"], "").assert_code(1);
    // Empty excludes skip nothing silently: they are refused.
    for args in [&["--exclude", ""][..], &["--exclude", "!"], &["--exclude-regex", ""], &["-x", ""]] {
        let run = compile(tree.root(), &[args, &["."]].concat(), "");
        run.assert_code(2);
        assert!(run.stderr.contains("would skip everything"), "{args:?}: {}", run.stderr);
    }
    for key in ["exclude = \"\"", "exclude = [\"tests/\", \"\"]", "exclude-regex = \"\""] {
        tree.write("pyproject.toml", format!("[tool.hashpyc]\n{key}\n"));
        let run = compile(tree.root(), &["."], "");
        run.assert_code(2);
        assert!(
            run.stderr.contains("pyproject.toml") && run.stderr.contains("would skip everything"),
            "{}",
            run.stderr
        );
    }

    // Negation: git is the reference for the same lines in a `.gitignore`.
    let neg = Tree::new();
    let lines = ["tests/", "!a/tests/", "gen_*.py", "!gen_keep.py", "/top_*.py", "deep/**/x.py"];
    let files = [
        "tests/m.py",
        "a/tests/m.py",
        "b/tests/m.py",
        "gen_x.py",
        "gen_keep.py",
        "sub/gen_y.py",
        "sub/gen_keep.py",
        "plain.py",
        "top_1.py",
        "sub/top_2.py",
        "deep/x.py",
        "deep/q/r/x.py",
        "deep/y.py",
    ];
    for f in files {
        neg.write(f, "Z = 3\n");
    }
    neg.write(".gitignore", lines.join("\n") + "\n");
    git(neg.root(), &["init", "-q"]);
    let check_ignore = Command::new("git")
        .args(["check-ignore", "--stdin"])
        .current_dir(neg.root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(files.join("\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("git check-ignore");
    let ignored = String::from_utf8(check_ignore.stdout).unwrap();
    let mut kept: Vec<String> =
        files.iter().filter(|f| !ignored.lines().any(|l| l == **f)).map(|f| f.to_string()).collect();
    kept.sort();
    assert!(kept.len() > 3 && kept.len() < files.len(), "git keeps {kept:?}");
    let args: Vec<String> = lines.iter().flat_map(|l| ["--exclude".to_string(), l.to_string()]).collect();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.push(".");
    assert_eq!(would_compile(&neg, neg.root(), py, &all), kept);
});

// `hashpyc check a.py -x.py`, no file `-x.py` being there, is clap's `-x .py`: a.py was
// skipped, the run said only `1 named path excluded by --exclude-regex` and exited 0, never
// showing the expression. Each named file the regex skips is now a warning naming it and
// the expression; the counts name the flag with its value, as the error of a directory
// whose every file was excluded does. Named files excluded stay no finding (a hook naming
// only such files passes); a directory so emptied stays `check`'s empty selection, exit 1.
// `find . -name '*.py' -print0 | hashpyc compile --null - -x RE` gave one warning per file
// the expression skipped (compileall's `-i` says nothing), which only `-qq` hid, with the
// useful warnings. Now one warning per run: the count, the expression, the first three
// files named and how many more; one file is still named as itself (`-x.py`, above).
#[test]
fn named_files_the_regex_excludes_are_one_warning() {
    let Some(py) = harness::any_python("first_hour::named_files_the_regex_excludes_are_one_warning") else {
        return;
    };
    let tree = Tree::new();
    let mut list = Vec::new();
    for name in ["t1.py", "t2.py", "t3.py", "keep.py", "t4.py", "t5.py"] {
        tree.write(name, "X = 1\n");
        list.extend_from_slice(format!("./{name}\0").as_bytes());
    }
    for cmd in ["compile", "check"] {
        let run =
            tree.hashpyc().args([cmd, "--null", "-", "-x", "t[0-9]"]).stdin(list.clone()).python(py).run();
        run.assert_code(0);
        let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        let want = "warning: 5 named files excluded by --exclude-regex `t[0-9]` (which applies to named \
                    files too, as compileall's -x does); skipped: `./t1.py`, `./t2.py`, `./t3.py` and 2 more";
        assert_eq!(warnings, [want], "{cmd}: {}", run.stderr);
        assert!(
            run.stderr.contains("5 named paths excluded by --exclude-regex `t[0-9]`"),
            "{cmd}: {}",
            run.stderr
        );
    }
    assert_eq!(tree.pycs().len(), 1, "{:?}", tree.pycs());
    // Two: both named, no "more".
    let run = tree.hashpyc().args(["check", "-x", "t[12]", "t1.py", "t2.py", "./keep.py"]).python(py).run();
    run.assert_code(0);
    assert!(run.stderr.contains("skipped: `t1.py`, `t2.py`\n"), "{}", run.stderr);
}

#[test]
fn a_named_file_the_regex_excludes_is_said_to_be() {
    let Some(py) = harness::any_python("first_hour::a_named_file_the_regex_excludes_is_said_to_be") else {
        return;
    };
    let tree = Tree::new();
    tree.write("a.py", "A = 1\n");
    tree.write("b.py", "B = 1\n");
    let warned = "warning: `a.py`: named, but excluded by --exclude-regex `.py`";
    for cmd in ["check", "compile"] {
        let run = tree.hashpyc().args([cmd, "a.py", "-x.py"]).python(py).run();
        run.assert_code(0);
        assert!(run.stderr.contains(warned), "{cmd}: {}", run.stderr);
        assert!(
            run.stderr.contains("1 named path excluded by --exclude-regex `.py`"),
            "{cmd}: {}",
            run.stderr
        );
        assert!(tree.pycs().is_empty(), "{cmd}");
    }
    let run = tree.hashpyc().args(["check", "--format", "json", "a.py", "-x.py"]).python(py).run();
    run.assert_code(0);
    assert!(run.stdout.contains(r#""type":"notice","path":"a.py""#), "{}", run.stdout);
    let run = tree.hashpyc().args(["check", ".", "-x.py"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains(
            "error: no Python sources to check under `.` (2 files excluded by --exclude-regex `.py`)"
        ),
        "{}",
        run.stderr
    );
    // Not named, not warned of: the walk's files the regex skips are counted only when
    // nothing is left.
    let run = tree.hashpyc().args(["compile", ".", "-x", "b"]).python(py).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

// `-x` applies to the files named on the command line or stdin too, as compileall's does
// (`python -m compileall -x sub src/pkg/sub/b.py` compiles nothing): the file is skipped,
// and counted as the other named paths skipped are, in the text and JSON summaries of
// `compile`, its dry run and `check`; naming only such files is no finding and no empty
// selection, as for `--force-exclude`.
per_python!(exclude_regex_skips_named_files_and_counts_them, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/m.py", "X = 1\n");
    tree.write("src/pkg/sub/b.py", "Y = 2\n");
    let named = ["src/m.py", "src/pkg/sub/b.py"];
    let compileall = |files: &[&str]| {
        let status = py
            .cmd()
            .args(["-m", "compileall", "-q", "-x", "sub"])
            .args(files)
            .current_dir(tree.root())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(0), "compileall -x sub {files:?}");
        let written = tree.pycs();
        std::fs::remove_dir_all(tree.path("src/__pycache__")).ok();
        written
    };
    assert!(compileall(&named[1..]).is_empty());
    let theirs = compileall(&named);
    let run = |command: &str, args: &[&str], stdin: &str| {
        tree.hashpyc().arg(command).python(py).args(["-x", "sub"]).args(args).stdin(stdin).run()
    };
    let counted = "1 named path excluded by --exclude-regex `sub`";
    let summary = |run: &harness::Run| -> serde_json::Value {
        serde_json::from_str(run.stdout.lines().last().expect("a summary")).unwrap()
    };
    let counts = |v: &serde_json::Value| (v["sources"].as_u64(), v["regex_excluded"].as_u64());

    // The dry run and the run: m.py only, b.py counted.
    let dry = run("compile", &[&["-n"][..], &named].concat(), "");
    dry.assert_code(0);
    assert_eq!(dry.stdout.lines().count(), 1, "{}", dry.stdout);
    assert!(dry.stdout.contains("src/m.py") && dry.stderr.contains(counted), "{}{}", dry.stdout, dry.stderr);
    let dry = run("compile", &[&["-n", "--format", "json"][..], &named].concat(), "");
    dry.assert_code(0);
    assert_eq!(counts(&summary(&dry)), (Some(1), Some(1)), "{}", dry.stdout);
    let compiled = run("compile", &named, "");
    compiled.assert_code(0);
    assert!(compiled.stderr.contains(counted), "{}", compiled.stderr);
    assert_eq!(tree.pycs(), theirs, "the pycs compileall -x sub writes");
    let json = run("compile", &[&["--format", "json"][..], &named].concat(), "");
    json.assert_code(0);
    assert_eq!(counts(&summary(&json)), (Some(1), Some(1)), "{}", json.stdout);

    // check: the same selection, in text and JSON.
    let check = run("check", &["-"], &(named.join("\n") + "\n"));
    check.assert_code(0);
    assert!(check.stderr.contains(&format!("(1 ok, all fresh, {counted})")), "{}", check.stderr);
    let check = run("check", &[&["--format", "json"][..], &named].concat(), "");
    check.assert_code(0);
    assert_eq!(counts(&summary(&check)), (Some(1), Some(1)), "{}", check.stdout);

    // Only excluded files named (a hook's list): nothing to do, which is no finding and no
    // empty selection.
    let check = run("check", &["-"], "src/pkg/sub/b.py\n");
    check.assert_code(0);
    assert!(
        check.stderr.contains(counted)
            && !check.stderr.contains("no Python sources")
            && !check.stderr.contains("all fresh"),
        "{}",
        check.stderr
    );
    // Each named file skipped is a warning naming the expression (a notice in JSON), which
    // changes no exit status.
    let warned = "warning: `src/pkg/sub/b.py`: named, but excluded by --exclude-regex `sub`";
    assert!(check.stderr.contains(warned), "{}", check.stderr);
    let check = run("check", &["--format", "json", "src/pkg/sub/b.py"], "");
    check.assert_code(0);
    assert_eq!(check.stdout.lines().count(), 2, "the notice and the summary: {}", check.stdout);
    assert_eq!(counts(&summary(&check)), (Some(0), Some(1)), "{}", check.stdout);
    for args in [&["src/pkg/sub/b.py"][..], &["-n", "src/pkg/sub/b.py"]] {
        let compile = run("compile", args, "");
        compile.assert_code(0);
        assert!(
            compile.stderr.contains(counted)
                && compile.stderr.contains(warned)
                && !compile.stderr.contains("no Python sources"),
            "{}",
            compile.stderr
        );
        let json = run("compile", &[&["--format", "json"][..], args].concat(), "");
        json.assert_code(0);
        assert_eq!(json.stdout.lines().count(), 2, "the notice and the summary: {}", json.stdout);
        assert_eq!(counts(&summary(&json)), (Some(0), Some(1)), "{}", json.stdout);
    }
    assert!(!tree.path("src/pkg/sub/__pycache__").exists());
});

// The pre-commit hook names `src/a.py`; a bare `hashpyc compile` in the same checkout
// used to walk `.` and embed `./src/a.py`, so each recompiled what the other wrote, on
// every run. With no path given, paths are spelled as the hook, ripgrep and fd spell
// them (`src/a.py`), and the two agree; `.` given explicitly keeps compileall's spelling.
per_python!(bare_compile_and_hook_agree, |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "def f():\n    return 'a'\n");
    tree.write("src/pkg/b.py", "B = {'x', 'y'}\n");
    let compile = |args: &[&str]| {
        let run = tree.hashpyc().args(["compile", "--format", "json"]).python(py).args(args).run();
        run.assert_code(0);
        let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
        (summary["compiled"].as_u64().unwrap(), summary["fresh"].as_u64().unwrap())
    };
    assert_eq!(compile(&["src/a.py", "src/pkg/b.py"]), (2, 0), "the hook's run");
    assert_eq!(compile(&[]), (0, 2), "a bare compile finds the hook's pycs fresh");
    assert_eq!(compile(&["src/a.py"]), (0, 1), "and the hook finds the bare compile's");
    assert_eq!(compile(&["--force"]), (2, 0));
    assert_eq!(compile(&["src/pkg/b.py", "src/a.py"]), (0, 2));
    let names = ["src/a.py", "src/pkg/b.py"];
    let sources: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
    let refs = harness::py_compile_refs(py, tree.root(), &sources, None);
    for (name, reference) in names.iter().zip(&refs) {
        same_as_py_compile(py, &std::fs::read(pyc_of(&tree, py, name)).unwrap(), reference, name);
    }
    // `check` and `check --stray` without a path speak of the same files.
    let check = tree.hashpyc().args(["check", "--all", "--stray"]).python(py).run();
    check.assert_code(0);
    assert_eq!(check.stdout, "ok         src/a.py\nok         src/pkg/b.py\n");
    // `.` named explicitly embeds `./src/a.py`, as `python -m compileall .` does.
    assert_eq!(compile(&["."]), (2, 0));
    let refs = harness::py_compile_refs(py, tree.root(), &[PathBuf::from("./src/a.py")], None);
    same_as_py_compile(py, &std::fs::read(pyc_of(&tree, py, "src/a.py")).unwrap(), &refs[0], "./src/a.py");
});

// `--python 3.12` (as uv takes it) is a version, found on PATH: the first `python3.12`,
// `python3` or `python` that is that version, passing over one that fails to start (a
// pyenv shim for a version not selected), and an error listing what was found otherwise.
per_python!(python_version_requests_search_path, |py: &Python| {
    let tree = Tree::new();
    tree.write("app/m.py", "def f():\n    return 'x'\n");
    let (major, minor) = py.minor;
    let exact = py.version.clone();
    let bins = tempfile::tempdir().unwrap();
    let name = format!("python{major}.{minor}");
    let shim = bins.path().join("shim");
    std::fs::create_dir(&shim).unwrap();
    let shim_exe = shim.join(&name);
    std::fs::write(&shim_exe, format!("#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n"))
        .unwrap();
    std::fs::set_permissions(&shim_exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let real = bins.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&py.path, real.join(&name)).unwrap();
    let path = std::env::join_paths([&shim, &real]).unwrap();

    let compile = tree
        .hashpyc()
        .env("PATH", &path)
        .args(["compile", "--python", &format!("{major}.{minor}"), "app"])
        .run();
    compile.assert_code(0);
    assert!(compile.stderr.contains(&format!("for CPython {exact} ")), "{}", compile.stderr);
    let refs = harness::py_compile_refs(py, tree.root(), &[PathBuf::from("app/m.py")], None);
    same_as_py_compile(py, &std::fs::read(pyc_of(&tree, py, "app/m.py")).unwrap(), &refs[0], "app/m.py");
    tree.hashpyc().env("PATH", &path).args(["check", "--python", &exact, "app"]).run().assert_code(0);

    // A patch release that is not there: every interpreter tried is named, with why.
    let (a, b, c) = {
        let v: Vec<u32> = exact.split('.').map(|n| n.parse().unwrap()).collect();
        (v[0], v[1], v[2])
    };
    let missing = format!("{a}.{b}.{}", c + 1);
    let run = tree.hashpyc().env("PATH", &path).args(["check", "--python", &missing, "app"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(&format!("error: no Python {missing} found on PATH:\n")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("pyenv: {name}: command not found")), "{}", run.stderr);
    let found = format!("`{}` is {exact}\n", real.join(&name).display());
    assert!(run.stderr.contains(&found), "{}", run.stderr);

    // `python3` serves `--python X.Y` when it is that version.
    let only_python3 = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&py.path, only_python3.path().join("python3")).unwrap();
    tree.hashpyc()
        .env("PATH", only_python3.path())
        .args(["check", "--python", &format!("{major}.{minor}"), "app"])
        .run()
        .assert_code(0);

    // A version hashpyc cannot target is refused as such, not looked for as a file.
    for old in ["2.7", "3.6"] {
        let run = tree.hashpyc().env("PATH", &path).args(["check", "--python", old, "app"]).run();
        run.assert_code(2);
        let want =
            format!("error: `{old}` asks for Python {old}; hashpyc needs CPython 3.7 or newer (PEP 552)\n");
        assert_eq!(run.stderr, want);
    }

    // Nothing of that name at all.
    let run = tree.hashpyc().env("PATH", &shim).args(["check", "--python", "3.99", "app"]).run();
    run.assert_code(2);
    assert!(
        run.stderr.starts_with(
            "error: no Python 3.99 found on PATH (looked for `python3.99`, `python3`, `python`)"
        ),
        "{}",
        run.stderr
    );
});

// `--python 3.12` when pyenv (asdf, mise, uv) installed a 3.12 but selected another
// version: the error names the installed interpreter and how to select it, and the path it
// gives compiles. hashpyc does not pick it itself: the environment did not select it.
per_python!(a_version_installed_but_not_selected_is_named, |py: &Python| {
    let tree = Tree::new();
    tree.write("app/m.py", "def f():\n    return 'x'\n");
    let (major, minor) = py.minor;
    let exact = py.version.clone();
    let name = format!("python{major}.{minor}");
    let root = tempfile::tempdir().unwrap();
    let installed = root.path().join("pyenv/versions").join(&exact).join("bin");
    std::fs::create_dir_all(&installed).unwrap();
    std::os::unix::fs::symlink(&py.path, installed.join(&name)).unwrap();
    // Another minor version installed beside it is not offered.
    let other = root.path().join(format!("pyenv/versions/{major}.{}.0/bin", minor + 1));
    std::fs::create_dir_all(&other).unwrap();
    std::os::unix::fs::symlink(&py.path, other.join(format!("python{major}.{}", minor + 1))).unwrap();
    // PATH holds only pyenv's shim for that name, which fails as a shim of a version not
    // selected does.
    let shim = root.path().join("shims");
    std::fs::create_dir(&shim).unwrap();
    let shim_exe = shim.join(&name);
    std::fs::write(&shim_exe, format!("#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n"))
        .unwrap();
    std::fs::set_permissions(&shim_exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |request: &str| {
        tree.hashpyc()
            .env("PATH", &shim)
            .env("HOME", root.path())
            .env("PYENV_ROOT", root.path().join("pyenv"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("UV_PYTHON_INSTALL_DIR")
            .env_remove("ASDF_DATA_DIR")
            .env_remove("MISE_DATA_DIR")
            .args(["compile", "--python", request, "app"])
            .run()
    };
    let exe = installed.join(&name);
    let offered = format!(
        "\n  installed, but not on PATH (give one with --python, or select it):\n    `{}` (pyenv {exact}: `pyenv shell {exact}`)\n",
        exe.display()
    );
    for request in [format!("{major}.{minor}"), exact.clone()] {
        let failed = run(&request);
        failed.assert_code(2);
        assert!(
            failed.stderr.starts_with(&format!("error: no Python {request} found on PATH:\n")),
            "{}",
            failed.stderr
        );
        assert!(failed.stderr.ends_with(&offered), "{}", failed.stderr);
        assert!(!failed.stderr.contains(&format!("{major}.{}.0", minor + 1)), "{}", failed.stderr);
    }
    // Nothing installed of a version that is not there: no such list.
    let none = run(&format!("{major}.{minor}.999"));
    none.assert_code(2);
    assert!(!none.stderr.contains("installed, but not on PATH"), "{}", none.stderr);

    // The path offered is an interpreter of that version: given, it compiles as CPython does.
    tree.hashpyc().env("PATH", &shim).args(["compile", "--python"]).arg(&exe).arg("app").run().assert_code(0);
    let refs = harness::py_compile_refs(py, tree.root(), &[PathBuf::from("app/m.py")], None);
    same_as_py_compile(py, &std::fs::read(pyc_of(&tree, py, "app/m.py")).unwrap(), &refs[0], "app/m.py");
});

// `check --format github` on a pyc missing because its source does not compile: the
// annotation sits on the line of CPython's error and says to fix the source (compiling
// again cannot help); other findings still say to run `hashpyc compile`.
per_python!(github_annotation_of_a_source_that_does_not_compile, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("bad.py", "import os\n\nx = (\n");
    tree.write("ok.py", "x = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).args(["bad.py", "ok.py"]).run().assert_code(1);
    tree.write("new.py", "y = 2\n");
    // CPython's own line for the error.
    let line = py.run(
        &["-c", "try:\n compile(open('bad.py','rb').read(),'bad.py','exec')\nexcept SyntaxError as e:\n print(e.lineno)"],
        tree.root(),
    );
    let line = line.trim();
    let run = tree
        .hashpyc()
        .args(["check", "--format", "github"])
        .python(py)
        .args(["bad.py", "new.py", "ok.py"])
        .run();
    run.assert_code(1);
    let bad = run.stdout.lines().find(|l| l.contains("file=bad.py")).expect(&run.stdout);
    assert!(bad.starts_with(&format!("::error file=bad.py,line={line},title=")), "{bad}");
    assert!(bad.contains("fix the source") && !bad.contains("to fix"), "{bad}");
    let new = run.stdout.lines().find(|l| l.contains("file=new.py")).expect(&run.stdout);
    assert!(
        new.starts_with("::error file=new.py,title=") && new.ends_with("run `hashpyc compile` to fix"),
        "{new}"
    );
    assert!(!run.stdout.contains("file=ok.py"), "{}", run.stdout);
});

// An empty value on the command line is an error, as the same key left empty in the
// configuration is (`--python ''` used to be looked up on PATH as a program named ``,
// `--cache-url ''` silently meant no shared cache); an empty variable still counts as unset.
#[test]
fn empty_flag_values_are_refused() {
    let Some(py) = harness::any_python("empty_flag_values_are_refused") else { return };
    let tree = Tree::new();
    tree.write("a.py", "x = 1\n");
    for (args, key) in [
        (&["compile", "--python", ""][..], "--python <PATH|VERSION>"),
        (&["check", "--python="][..], "--python <PATH|VERSION>"),
        (&["compile", "--cache-url", ""][..], "--cache-url <URL>"),
    ] {
        let run = tree.hashpyc().args(args).arg("a.py").run();
        run.assert_code(2);
        assert!(
            run.stderr.starts_with(&format!("error: invalid value '' for '{key}': an empty ")),
            "{args:?}: {}",
            run.stderr
        );
    }
    tree.write("hashpyc.toml", "cache-url = \"\"\n");
    let run = tree.hashpyc().args(["compile", "a.py"]).python(py).run();
    run.assert_code(2);
    assert!(run.stderr.contains("an empty URL"), "{}", run.stderr);
    // Only whitespace, which is removed around a URL, is an empty URL too (it said
    // "unsupported cache URL ``"), from the flag, its variable and the key.
    tree.write("hashpyc.toml", "cache-url = \" \\n\"\n");
    let run = tree.hashpyc().args(["compile", "a.py"]).python(py).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("invalid value for `cache-url`") && run.stderr.contains("an empty URL"),
        "{}",
        run.stderr
    );
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    let run = tree.hashpyc().args(["compile", "--cache-url", " \t", "a.py"]).python(py).run();
    run.assert_code(2);
    assert!(
        run.stderr.starts_with("error: invalid value ' \t' for '--cache-url <URL>': an empty URL"),
        "{}",
        run.stderr
    );
    let run = tree.hashpyc().args(["compile", "a.py"]).python(py).env("HASHPYC_CACHE_URL", "  \n").run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("for HASHPYC_CACHE_URL") && run.stderr.contains("an empty URL"),
        "{}",
        run.stderr
    );
    // `python3` on PATH is the default interpreter when HASHPYC_PYTHON is empty.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&py.path, bin.path().join("python3")).unwrap();
    tree.hashpyc()
        .env("PATH", bin.path())
        .env("HASHPYC_PYTHON", "")
        .env("HASHPYC_CACHE_URL", "")
        .args(["compile", "-q", "a.py"])
        .run()
        .assert_code(0);
}

// Two targets whose pycs are the same files: the same build twice (a launcher script like
// a pyenv shim and the interpreter behind it; `--target X.Y` twice) is one target, counted
// once; two interpreters with `--legacy` (one `m.pyc` per source) are refused instead of
// overwriting each other's pycs on every run.
per_python!(targets_sharing_pycs, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("app/m.py", "x = 1\n");
    let shim =
        tree.write_executable("bin/python-shim", format!("#!/bin/sh\nexec '{}' \"$@\"\n", py.path.display()));
    let run = tree.hashpyc().args(["compile"]).python(py).arg("--python").arg(&shim).arg("app").run();
    run.assert_code(0);
    assert!(
        run.stderr.starts_with(&format!("Compiled 1 file for CPython {} (0 already fresh)", py.version)),
        "{}",
        run.stderr
    );
    let check = tree.hashpyc().args(["check"]).arg("--python").arg(&shim).python(py).arg("app").run();
    check.assert_code(0);
    assert!(
        check.stderr.starts_with(&format!("Checked 1 file for CPython {} (1 ok, all fresh)", py.version)),
        "{}",
        check.stderr
    );
    let v = format!("{}.{}", py.minor.0, py.minor.1);
    std::fs::remove_dir_all(tree.path("app/__pycache__")).unwrap();
    let check = tree.hashpyc().args(["check", "--target", &v, "--target", &v, "app"]).run();
    check.assert_code(1);
    assert_eq!(check.stdout, "missing    app/m.py\n");
    // The fix names an interpreter of that version: `--target` probes none.
    let fix = format!("hint: run `hashpyc compile --python {v} app` to fix\n");
    assert!(
        check.stderr.starts_with(&format!("{fix}Checked 1 file for CPython {v} (0 ok, 1 missing)")),
        "{}",
        check.stderr
    );

    let Some(other) = harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 7)) else {
        return harness::visible("SKIPPED targets_sharing_pycs (legacy): needs a second CPython 3.7+");
    };
    let run = tree.hashpyc().args(["compile", "-b"]).python(py).python(other).arg("app").run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("writes one `<source>c` per source, so it takes one interpreter"),
        "{}",
        run.stderr
    );
    assert!(!tree.path("app/m.pyc").exists());
    let run = tree
        .hashpyc()
        .args([
            "check",
            "-b",
            "--target",
            &v,
            "--target",
            &format!("{}.{}", other.minor.0, other.minor.1),
            "app",
        ])
        .run();
    run.assert_code(2);
    tree.hashpyc()
        .args(["compile", "-q", "-b"])
        .python(py)
        .arg("--python")
        .arg(&shim)
        .arg("app")
        .run()
        .assert_code(0);
    tree.hashpyc().args(["check", "-b", "--target", &v, "app"]).run().assert_code(0);
});

// `inspect` of a pyc under PYTHONPYCACHEPREFIX finds its source where CPython's
// `importlib.util.source_from_cache` does (it said "source not found", though `inspect` of
// the source found that pyc).
per_python!(inspect_finds_the_source_of_a_prefix_pyc, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/m.py", "x = 1\n");
    tree.hashpyc()
        .args(["compile", "-q"])
        .env("PYTHONPYCACHEPREFIX", "pfx")
        .python(py)
        .arg("pkg")
        .run()
        .assert_code(0);
    let pycs = harness::files_with_suffix(&tree.path("pfx"), ".pyc");
    assert_eq!(pycs.len(), 1, "{pycs:?}");
    let pyc = Path::new("pfx").join(&pycs[0]);
    let out = py
        .cmd()
        .env("PYTHONPYCACHEPREFIX", "pfx")
        .args(["-c", "import importlib.util as u, sys; print(u.source_from_cache(sys.argv[1]))"])
        .arg(&pyc)
        .current_dir(tree.root())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cpython = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let run = tree.hashpyc().args(["inspect", "--json"]).arg(&pyc).env("PYTHONPYCACHEPREFIX", "pfx").run();
    run.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(v["source"], cpython.as_str(), "{}", run.stdout);
    assert_eq!(v["matches_source"], true, "{}", run.stdout);
    // Without the prefix in the environment the pyc is just a file in some directory.
    let run = tree.hashpyc().args(["inspect", "--json"]).arg(&pyc).run();
    run.assert_code(0);
    assert!(run.stdout.contains("\"source\":null"), "{}", run.stdout);
});

// A monorepo's service with a configuration of its own (`svc/hashpyc.toml`) below the
// project's (`pyproject.toml`, other settings), compiled from the top with `--config
// svc/hashpyc.toml` and checked in `svc`: the hint's command, run in `..` as it says, reads
// the service's file (`--config svc/hashpyc.toml`), where it used to read the project's and
// check other pycs (here optimization level 2's, all missing). Without a file in effect but
// one found there, `--no-config`; with the same file found there, no flag.
per_python!(spelling_hint_names_the_configuration_it_needs_there, |py: &Python| {
    let tree = Tree::new();
    tree.write("pyproject.toml", "[tool.hashpyc]\noptimize = [2]\n");
    tree.write("svc/hashpyc.toml", "optimize = [0]\n");
    tree.write("svc/src/m.py", "M = 1\n");
    tree.hashpyc()
        .args(["compile", "-q", "--config", "svc/hashpyc.toml"])
        .python(py)
        .arg("svc")
        .run()
        .assert_code(0);
    let run = Hashpyc::new(&tree.path("svc")).arg("check").python(py).run();
    run.assert_code(1);
    let command = "`cd .. && hashpyc check svc --config svc/hashpyc.toml` checks it as written";
    assert!(run.stderr.contains(command), "{}", run.stderr);
    // Run verbatim where the check ran (through the shell, as pasted): fresh. Without the
    // flag, the project's file sends it to other pycs.
    let pasted = command.split('`').nth(1).unwrap();
    Hashpyc::new(&tree.path("svc")).env("HASHPYC_PYTHON", &py.path).pasted("sh", pasted).run().assert_code(0);
    tree.hashpyc().args(["check"]).python(py).arg("svc").run().assert_code(1);

    // No file in effect (`--no-config` in `svc`), the project's found in `..`: `--no-config`.
    let run = Hashpyc::new(&tree.path("svc")).args(["check", "--no-config", "-o", "0"]).python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("`cd .. && hashpyc check svc --no-config`"), "{}", run.stderr);

    // The project's own file in effect in `svc` and found in `..`: no flag.
    std::fs::remove_file(tree.path("svc/hashpyc.toml")).unwrap();
    tree.write("pyproject.toml", "[tool.hashpyc]\noptimize = [0]\n");
    let run = Hashpyc::new(&tree.path("svc")).arg("check").python(py).run();
    run.assert_code(1);
    assert!(run.stderr.contains("`cd .. && hashpyc check svc` checks it as written"), "{}", run.stderr);
});

// `hashpyc compile` at the top of a project, then `hashpyc check` in a subdirectory: every
// pyc is stale for its embedded path alone (`src/a.py` where `a.py` is expected), which
// the reason lines show one by one; a hint says from where the tree was compiled. A real
// difference (an edited source) among them gets none.
per_python!(spelling_hint_from_a_subdirectory, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("src/pkg/b.py", "B = 2\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    let check = |dir: &str| Hashpyc::new(&tree.path(dir)).arg("check").python(py).run();
    let run = check("src");
    run.assert_code(1);
    assert_eq!(run.stdout.lines().filter(|l| l.starts_with("stale")).count(), 2, "{}", run.stdout);
    let hint = "hint: 2 stale pycs embed their source path as spelled from `..` (`src/a.py` for `a.py`)";
    assert!(run.stderr.contains(hint), "{}", run.stderr);
    // The read-only way out first: the command that checks the pycs as written.
    assert!(
        run.stderr.contains("ran: `cd .. && hashpyc check src` checks them as written"),
        "{}",
        run.stderr
    );
    let run = check("src/pkg");
    run.assert_code(1);
    assert!(run.stderr.contains("as spelled from `../..` (`src/pkg/b.py` for `b.py`)"), "{}", run.stderr);
    // A tree compiled in a directory (`venv/lib` in `/opt`, as a Dockerfile's WORKDIR does)
    // checked from elsewhere: named absolute, the hint names that directory absolute; named
    // relative from above it, relative (it gave no hint: the directory is no ancestor).
    let top = tree.root().canonicalize().unwrap();
    let run = Hashpyc::new(Path::new("/")).arg("check").python(py).arg(top.join("src")).run();
    run.assert_code(1);
    let want =
        format!("as spelled from `{}` (`src/a.py` for `{}`)", top.display(), top.join("src/a.py").display());
    assert!(
        run.stderr.contains(&want),
        "{want}
{}",
        run.stderr
    );
    // The command it gives passes, there, writing nothing (an image's read-only tree).
    let command = format!("`cd {} && hashpyc check src` checks them as written", top.display());
    assert!(run.stderr.contains(&command), "{command}\n{}", run.stderr);
    Hashpyc::new(&top).args(["check", "src"]).python(py).run().assert_code(0);
    let outer = tree.path("outer");
    std::fs::create_dir_all(outer.join("proj")).unwrap();
    std::fs::rename(tree.path("src"), outer.join("proj/src")).unwrap();
    let run = Hashpyc::new(&outer).arg("check").python(py).arg("proj/src").run();
    run.assert_code(1);
    assert!(run.stderr.contains("as spelled from `proj` (`src/a.py` for `proj/src/a.py`)"), "{}", run.stderr);
    std::fs::rename(outer.join("proj/src"), tree.path("src")).unwrap();
    // From the top, as compiled: fresh.
    tree.hashpyc().arg("check").python(py).run().assert_code(0);
    tree.write("src/a.py", "A = 3\n");
    let run = check("src");
    run.assert_code(1);
    assert!(!harness::has_other_hint(&run.stderr), "{}", run.stderr);
    // One pyc compiled from `src`, one from the top as `src/pkg/b.py`, checked from the top as
    // `./src/…`: the second was not compiled from `src`, and the hint does not say so.
    tree.hashpyc().args(["compile", "-q", "-f"]).python(py).run().assert_code(0);
    Hashpyc::new(&tree.path("src")).args(["compile", "-q", "-f"]).python(py).arg("a.py").run().assert_code(0);
    let run = tree.hashpyc().arg("check").python(py).arg(".").run();
    run.assert_code(1);
    assert_eq!(run.stdout.lines().filter(|l| l.starts_with("stale")).count(), 2, "{}", run.stdout);
    assert!(!run.stderr.contains("spelled from"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: 2 stale pycs embed another spelling of their source path"),
        "{}",
        run.stderr
    );
});

// A monorepo's CI job runs in a service's directory (`working-directory: services/api`,
// where its configuration is found); GitHub places an annotation's `file` relative to the
// checkout (`GITHUB_WORKSPACE`), so the path is given from there, for `compile` and `check`,
// a file of the service and one of a library beside it alike. Without the variable, as
// named.
per_python!(github_annotations_are_placed_from_the_workspace, min = (3, 8), |py: &Python| {
    let repo = Tree::new();
    repo.write("services/api/src/bad.py", "def f(:\n    pass\n");
    repo.write("libs/shared/util.py", "X = 1\n");
    let service = repo.path("services/api");
    let run = |cmd: &str, workspace: Option<&Path>| {
        let mut h = Hashpyc::new(&service).args([cmd, "--format", "github"]).python(py);
        h = match workspace {
            Some(w) => h.env("GITHUB_WORKSPACE", w),
            None => h.env_remove("GITHUB_WORKSPACE"),
        };
        h.args(["src", "../../libs/shared"]).run()
    };
    let compiled = run("compile", Some(repo.root()));
    compiled.assert_code(1);
    assert!(compiled.stdout.contains("::error file=services/api/src/bad.py,line=1,"), "{}", compiled.stdout);
    repo.write("libs/shared/util.py", "X = 2\n");
    let checked = run("check", Some(repo.root()));
    checked.assert_code(1);
    assert!(checked.stdout.contains("::error file=services/api/src/bad.py,"), "{}", checked.stdout);
    assert!(checked.stdout.contains("::error file=libs/shared/util.py,"), "{}", checked.stdout);
    // The checkout reached through a symbolic link.
    let link = repo.path("link-to-repo");
    std::os::unix::fs::symlink(repo.root(), &link).unwrap();
    let linked = run("check", Some(&link));
    assert!(linked.stdout.contains("::error file=libs/shared/util.py,"), "{}", linked.stdout);
    let plain = run("check", None);
    assert!(plain.stdout.contains("::error file=src/bad.py,"), "{}", plain.stdout);
    assert!(plain.stdout.contains("::error file=../../libs/shared/util.py,"), "{}", plain.stdout);
});

// Exclude globs are relative to the configuration file's directory (or the working
// directory); a leading `./`, as hashpyc itself spells paths under `compile .` and as ruff
// accepts, matched nothing, silently. It is dropped now; a glob reaching above with `../`,
// which can never match, is refused with the reason.
per_python!(exclude_globs_with_a_leading_dot_slash_apply, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("tests/fixtures/bad.py", "def f(:\n");
    tree.write("pkg/m.py", "X = 1\n");
    tree.write("hashpyc.toml", "exclude = [\"./tests/fixtures/\"]\n");
    let named =
        tree.hashpyc().args(["compile", "--force-exclude"]).python(py).arg("tests/fixtures/bad.py").run();
    named.assert_code(0);
    assert!(named.stderr.contains("1 named path excluded by --force-exclude"), "{}", named.stderr);
    tree.hashpyc().args(["compile", "-q"]).python(py).arg(".").run().assert_code(0);
    assert!(!tree.path("tests/fixtures/__pycache__").exists());
    let flag = tree
        .hashpyc()
        .args(["compile", "--no-config", "--exclude", "./tests/fixtures/", "-f"])
        .python(py)
        .run();
    flag.assert_code(0);
    assert!(flag.stderr.contains("Compiled 1 file"), "{}", flag.stderr);
    let above = tree.hashpyc().args(["compile", "--no-config", "--exclude", "../x/tests"]).python(py).run();
    above.assert_code(2);
    assert!(
        above.stderr.contains("`../x/tests` reaches above the directory globs are relative to"),
        "{}",
        above.stderr
    );
    tree.write("hashpyc.toml", "exclude = [\"../tests\"]\n");
    let in_file = tree.hashpyc().args(["compile"]).python(py).run();
    in_file.assert_code(2);
    assert!(in_file.stderr.contains("`hashpyc.toml` line 1"), "{}", in_file.stderr);
    assert!(in_file.stderr.contains("`../tests` reaches above"), "{}", in_file.stderr);
});

// Settings a run does not use, in files it would not otherwise mention: a `[tool.hashpyc]`
// table beside the `hashpyc.toml` that overrides it whole (uv warns of `[tool.uv]` beside
// `uv.toml` alike), and a service's own configuration below the directory a pre-commit hook
// runs in, for the files named there. Neither applies, and each is said.
per_python!(configuration_a_run_does_not_use_is_said, min = (3, 8), |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/m.py", "X = 1\n");
    tree.write("pyproject.toml", "[project]\nname = \"x\"\n\n[tool.hashpyc]\nexclude = [\"pkg/\"]\n");
    tree.write("hashpyc.toml", "optimize = 1\n");
    let both = tree.hashpyc().arg("compile").python(py).run();
    both.assert_code(0);
    assert!(
        both.stderr.contains(
            "warning: `pyproject.toml` is beside `hashpyc.toml`, which takes precedence: its [tool.hashpyc] table is not used"
        ),
        "{}",
        both.stderr
    );
    // A pyproject.toml without the table is another tool's: nothing said.
    tree.write("pyproject.toml", "[project]\nname = \"x\"\n");
    let quiet = tree.hashpyc().arg("compile").python(py).run();
    assert!(!quiet.stderr.contains("warning"), "{}", quiet.stderr);
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();

    tree.write("services/worker/hashpyc.toml", "exclude = [\"tests/fixtures/\"]\n");
    tree.write("services/worker/src/a.py", "A = 1\n");
    tree.write("services/worker/src/sub/b.py", "B = 1\n");
    tree.write("services/worker/tests/fixtures/bad.py", "def f(:\n");
    tree.write("services/api/c.py", "C = 1\n");
    let files =
        ["services/worker/src/a.py", "services/worker/src/sub/b.py", "services/worker/tests/fixtures/bad.py"];
    // The working directory itself named first, and a path outside it: neither hides the rest.
    let outside = Tree::new();
    outside.write("o.py", "O = 1\n");
    let hook = tree
        .hashpyc()
        .args(["compile", "--force-exclude", "."])
        .arg(outside.path("o.py"))
        .python(py)
        .args(files)
        .arg("services/api/c.py")
        .run();
    hook.assert_code(1);
    assert!(
        hook.stderr.contains(
            "warning: `services/worker/hashpyc.toml` is not used for the 3 paths named under `services/worker`: a run uses one configuration"
        ),
        "{}",
        hook.stderr
    );
    // Given with --config, or run from there: used, nothing to say.
    let given = tree
        .hashpyc()
        .args(["compile", "--force-exclude", "--config", "services/worker/hashpyc.toml"])
        .python(py)
        .args(files)
        .run();
    given.assert_code(0);
    assert!(!given.stderr.contains("is not used"), "{}", given.stderr);
    let there = Hashpyc::new(&tree.path("services/worker"))
        .args(["compile", "--force-exclude"])
        .python(py)
        .args(["src/a.py", "tests/fixtures/bad.py"])
        .run();
    there.assert_code(0);
    assert!(!there.stderr.contains("is not used"), "{}", there.stderr);
});

// `-s` that does not apply (compileall's 3.13 rule: whole leading components) is warned
// about; the warning said the paths were "embedded unchanged" though `-p` still applies.
// The embedded path is CPython's. (A trailing `/`, which compileall 3.13+ reads as an empty
// last component, is no longer a cause: see options::strip_prefix_with_a_trailing_slash.)
per_python!(strip_prefix_warning_says_what_is_embedded, min = (3, 9), |py: &Python| {
    let tree = Tree::new();
    tree.write("dd/pkg/a.py", "x = 1\n");
    let run = tree.hashpyc().args(["compile", "-s", "d", "-p", "/srv"]).python(py).arg("dd").run();
    run.assert_code(0);
    assert!(
        run.stderr.contains("--strip-prefix `d` does not match the start of 1 source path"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("its path is embedded with only --prepend-prefix `/srv` applied"),
        "{}",
        run.stderr
    );
    let pyc = pyc_of(&tree, py, "dd/pkg/a.py");
    let ours = std::fs::read(&pyc).unwrap();
    // The 3.13 rule hashpyc follows on every version is compileall's from 3.13 on.
    if py.minor >= (3, 13) {
        std::fs::remove_file(&pyc).unwrap();
        py.run(
            &["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "-s", "d", "-p", "/srv", "dd"],
            tree.root(),
        );
        assert!(std::fs::read(&pyc).unwrap() == ours, "{}: compileall embeds another path", py.label());
    }
    let inspect = tree.hashpyc().arg("inspect").arg(&pyc).run();
    assert!(inspect.stdout.contains("co_filename  /srv/dd/pkg/a.py"), "{}", inspect.stdout);
    // Without -p, the paths are unchanged, as said.
    let run = tree.hashpyc().args(["compile", "-s", "d"]).python(py).arg("dd").run();
    assert!(run.stderr.contains("its path is embedded unchanged"), "{}", run.stderr);
});

// Shell completion offers the values of `--invalidation-mode` (it offered file names:
// the flag took any string, to refuse `timestamp` with its reason, which it still does).
#[test]
fn completion_offers_invalidation_modes() {
    let tree = Tree::new();
    tree.write("some-file.py", "x = 1\n");
    let script = tree.hashpyc().args(["completions", "bash"]).run();
    script.assert_code(0);
    tree.write("hashpyc.bash", &script.stdout);
    let complete = |words: &str| {
        let snippet = format!(
            "source ./hashpyc.bash; COMP_WORDS=({words} ''); COMP_CWORD=${{#COMP_WORDS[@]}}; \
             COMP_CWORD=$((COMP_CWORD - 1)); COMP_LINE=\"{words} \"; COMP_POINT=${{#COMP_LINE}}; \
             _hashpyc hashpyc '' \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\""
        );
        let out =
            Command::new("bash").args(["--norc", "-c", &snippet]).current_dir(tree.root()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(complete("hashpyc check --mode"), "checked unchecked any");
    assert_eq!(complete("hashpyc compile --invalidation-mode"), "checked-hash unchecked-hash");
    // `--target` offers the built-in table's versions (it offered file names).
    let known: Vec<String> =
        hashpyc::target::KNOWN.iter().map(|k| format!("{}.{}", k.minor.0, k.minor.1)).collect();
    assert_eq!(known.first().map(String::as_str), Some("3.7"));
    assert_eq!(complete("hashpyc check --target"), known.join(" "));
    // fish and zsh print a description beside each candidate: a flag's first sentence,
    // not the paragraph of `--help` (fish printed `--python`'s 600 characters).
    for shell in ["fish", "zsh"] {
        let script = tree.hashpyc().args(["completions", shell]).run();
        script.assert_code(0);
        let python = script.stdout.lines().find(|l| l.contains("python") && l.contains("Target interpreter"));
        let python = python.unwrap_or_else(|| panic!("{shell}: no --python line"));
        assert!(!python.contains("looked up on PATH"), "{shell}: {python}");
        assert!(
            !script.stdout.contains("walking each directory once ("),
            "{shell}: --follow's aside is kept"
        );
    }
    let help = tree.hashpyc().args(["check", "--help"]).run();
    assert!(help.stdout.contains("looked up on PATH"), "--help keeps the whole text: {}", help.stdout);
    let run = tree.hashpyc().args(["compile", "--invalidation-mode", "timestamp", "some-file.py"]).run();
    run.assert_code(2);
    assert!(run.stderr.contains("timestamp is not offered"), "{}", run.stderr);
}

// A source gone between the walk and the plan is a notice ("vanished during the run;
// skipped", exit 0), as one gone before its compile (faults::a_file_that_vanishes_is_a_notice);
// the compile stage indexed the empty plan of such a source and panicked (exit 101).
#[test]
fn a_source_gone_before_its_plan_is_a_notice() {
    let Some(py) = crate::harness::any_python("a_source_gone_before_its_plan_is_a_notice") else { return };
    let tree = Tree::new();
    tree.write("src/sub/b.py", "b = 1\n");
    let run = harness::run_while_z_vanishes(&tree, py, &["compile"]);
    run.assert_code(0);
    assert!(run.stderr.contains("note: `src/z.py` vanished during the run; skipped"), "{}", run.stderr);
    assert!(run.stderr.contains("Compiled 1 file") && run.stderr.contains("1 vanished"), "{}", run.stderr);
    assert!(tree.path(format!("src/sub/__pycache__/b.{}.pyc", tag(py))).exists());
}

// The dry run said of such a source what the real run says (a notice, counted vanished,
// exit 0); it counted it an error and exited 1.
#[test]
fn dry_run_classifies_a_vanished_source_as_the_run_does() {
    let Some(py) = crate::harness::any_python("dry_run_classifies_a_vanished_source_as_the_run_does") else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/sub/b.py", "b = 1\n");
    let about_z = |run: &harness::Run| -> (Vec<serde_json::Value>, serde_json::Value) {
        let objects: Vec<serde_json::Value> =
            run.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
        let z: Vec<serde_json::Value> = objects
            .iter()
            .filter(|o| o["path"] == "src/z.py")
            .map(|o| serde_json::json!({ "type": o["type"], "message": o["message"] }))
            .collect();
        let summary = objects.last().expect("a summary").clone();
        (z, serde_json::json!({ "vanished": summary["vanished"], "errors": summary["errors"] }))
    };
    let real = harness::run_while_z_vanishes(&tree, py, &["compile", "--format", "json", "--force"]);
    let dry = harness::run_while_z_vanishes(&tree, py, &["compile", "--format", "json", "--dry-run"]);
    let both = format!("dry run:\n{}{}\nreal run:\n{}{}", dry.stdout, dry.stderr, real.stdout, real.stderr);
    assert_eq!(dry.code, real.code, "{both}");
    assert_eq!(about_z(&dry), about_z(&real), "{both}");
    assert_eq!(about_z(&real).1, serde_json::json!({ "vanished": 1, "errors": 0 }), "{both}");
    // In text, the same note and count.
    let real = harness::run_while_z_vanishes(&tree, py, &["compile", "--force"]);
    let dry = harness::run_while_z_vanishes(&tree, py, &["compile", "--dry-run"]);
    assert_eq!(dry.code, real.code, "dry run:\n{}\nreal run:\n{}", dry.stderr, real.stderr);
    for run in [&real, &dry] {
        assert!(run.stderr.contains("note: `src/z.py` vanished during the run; skipped"), "{}", run.stderr);
        assert!(run.stderr.contains("1 vanished"), "{}", run.stderr);
    }
}

// A source whose directory is replaced by a file between the walk and the plan is gone as
// one removed is (a notice, counted vanished, exit 0), as the walker says of a directory
// that went so; reading it fails with "Not a directory", which compile's plan and check
// took for an error (exit 1). `src/sub` is listed when the walk reads its `.ignore` (a
// FIFO), so the walk finds nothing more there; `src/sub/z.py`, a named root nested in
// `src`, is planned (or checked) after the walk ends.
#[test]
fn a_source_whose_directory_became_a_file_is_a_notice() {
    let Some(py) = crate::harness::any_python("a_source_whose_directory_became_a_file_is_a_notice") else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/b.py", "b = 1\n");
    tree.hashpyc().args(["compile", "-q", "src/b.py"]).python(py).run().assert_code(0);
    let run = |args: &[&str]| {
        tree.write("src/sub/z.py", "z = 1\n");
        let run = tree.hashpyc().args(args).python(py).args(["--respect-gitignore", "src/sub/z.py", "src"]);
        harness::run_paused_at_fifo(run, &tree.path("src/sub/.ignore"), || {
            std::fs::remove_dir_all(tree.path("src/sub")).unwrap();
            std::fs::write(tree.path("src/sub"), "not a directory\n").unwrap();
        })
    };
    let undo = || std::fs::remove_file(tree.path("src/sub")).unwrap();
    for args in [&["compile"][..], &["compile", "--dry-run"], &["compile", "--force"], &["check"]] {
        let out = run(args);
        undo();
        out.assert_code(0);
        assert!(
            out.stderr.contains("note: `src/sub/z.py` vanished during the run; skipped"),
            "{args:?}: {out:?}"
        );
        assert!(
            !out.stderr.contains("Not a directory") && !out.stderr.contains("not a directory"),
            "{args:?}: {out:?}"
        );
        if args[0] == "compile" {
            assert!(out.stderr.contains("1 vanished"), "{args:?}: {out:?}");
        }
    }
    let json = run(&["compile", "--format", "json"]);
    undo();
    json.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(json.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((summary["vanished"].as_u64(), summary["errors"].as_u64()), (Some(1), Some(0)), "{json:?}");
}

// Counters say "1 miss", "1 store", "1 hit" as cargo and ruff count (they said "1 misses",
// "1 stores"): `compile -v`'s tier line and `cache stats`, after a real build of one file
// into an empty cache, then one from it; and `inspect` of a one-byte pyc.
#[test]
fn counts_of_one_are_singular() {
    let Some(py) = crate::harness::any_python("counts_of_one_are_singular") else { return };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    let cache = tree.path("bytecode");
    let first = tree.hashpyc().args(["compile", "-v", "--cache"]).arg(&cache).python(py).arg("m.py").run();
    first.assert_code(0);
    let line = first
        .stderr
        .lines()
        .find(|l| l.starts_with("cache local "))
        .unwrap_or_else(|| panic!("{}", first.stderr));
    assert!(line.ends_with(": 0 hits, 1 miss, 1 store, 0 damaged, 0 errors, 0 timeouts"), "{line}");
    std::fs::remove_dir_all(tree.path("__pycache__")).unwrap();
    let again = tree.hashpyc().args(["compile", "-v", "--cache"]).arg(&cache).python(py).arg("m.py").run();
    again.assert_code(0);
    assert!(again.stderr.contains(": 1 hit, 0 misses, 0 stores,"), "{}", again.stderr);
    let stats = tree.hashpyc().args(["cache", "stats", "--cache"]).arg(&cache).run();
    stats.assert_code(0);
    assert!(
        stats
            .stdout
            .contains("local        1 hit, 1 miss (50% hits), 1 store, 0 damaged, 0 errors, 0 timeouts"),
        "{}",
        stats.stdout
    );
    tree.write("one.pyc", "x");
    let inspect = tree.hashpyc().args(["inspect", "one.pyc"]).run();
    assert!(
        inspect.stdout.contains("only 1 byte,") || inspect.stderr.contains("only 1 byte,"),
        "{inspect:?}"
    );
}

/// `X.Y.Z` and `sys.executable` as the interpreter reports them.
fn version_and_executable(py: &Python, cwd: &Path) -> (String, String) {
    let out =
        py.run(&["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)"], cwd);
    let mut lines = out.lines();
    (lines.next().unwrap().to_string(), lines.next().unwrap().to_string())
}

// Under -v --format json, every line -v adds in text is an object on stdout and stderr stays
// empty: the `target: …` lines (with the target as the summary names it), the files compiled,
// the cache's counts. They were left out (only the configuration line was an object).
#[test]
fn verbose_json_lines_are_objects() {
    let pys: Vec<&Python> = harness::pythons().values().filter(|p| p.minor >= (3, 7)).take(2).collect();
    let Some(&first) = pys.first() else {
        return harness::visible("SKIPPED verbose_json_lines_are_objects: no CPython 3.7+");
    };
    let trees = [Tree::new(), Tree::new()];
    for tree in &trees {
        tree.write("a.py", "a = 1\n");
        tree.write("pkg/b.py", "b = 2\n");
    }
    // The same run in text and in JSON, on twin trees: one line of text, one object.
    let compile = |tree: &Tree, json: bool| {
        let mut run = tree.hashpyc().args(["compile", "-v", "--cache", "c"]).python(first);
        if json {
            run = run.args(["--format", "json"]);
        }
        let run = run.arg(".").run();
        run.assert_code(0);
        run
    };
    let text = compile(&trees[0], false);
    let json = compile(&trees[1], true);
    assert_eq!(json.stderr, "", "{}", json.stdout);
    let root = |tree: &Tree, s: &str| s.replace(&tree.root().display().to_string(), "ROOT");
    let mut from_text: Vec<String> =
        text.stderr.lines().filter(|l| !l.starts_with("Compiled ")).map(|l| root(&trees[0], l)).collect();
    let mut from_json: Vec<String> = notices(&json.stdout)
        .iter()
        .map(|n| {
            let message = n["message"].as_str().unwrap();
            let line = match n["path"].as_str() {
                // A file's line names it in text: "compiled `a.py` (no pyc)".
                Some(path) => {
                    let (what, why) = message.split_once(" (").unwrap();
                    format!("{what} `{path}` ({why}")
                }
                None => message.to_string(),
            };
            root(&trees[1], &line)
        })
        .collect();
    from_text.sort();
    from_json.sort();
    assert_eq!(from_json, from_text, "text:\n{}\nJSON:\n{}", text.stderr, json.stdout);
    assert!(from_json.iter().any(|l| l.starts_with("cache local ")), "{}", json.stdout);
    assert!(from_json.iter().any(|l| l == "compiled `./pkg/b.py` (no pyc)"), "{}", json.stdout);

    // The target objects name each interpreter as it reports itself, for compile and check.
    let tree = &trees[1];
    for command in [&["compile", "--force"][..], &["check"]] {
        let mut run = tree.hashpyc().arg(command[0]).args(&command[1..]).args(["-v", "--format", "json"]);
        for py in &pys {
            run = run.python(py);
        }
        let run = run.arg(".").run();
        run.assert_code(0);
        assert_eq!(run.stderr, "", "{command:?}: {}", run.stdout);
        let targets: Vec<serde_json::Value> = notices(&run.stdout)
            .into_iter()
            .filter(|n| n["message"].as_str().unwrap().starts_with("target: "))
            .map(|n| n["target"].clone())
            .collect();
        let expected: Vec<serde_json::Value> = pys
            .iter()
            .map(|py| {
                let (version, executable) = version_and_executable(py, tree.root());
                serde_json::json!({ "version": version, "python": executable })
            })
            .collect();
        assert_eq!(targets, expected, "{command:?}: {}", run.stdout);
    }
}

// Operational messages show paths as file names in results are shown (report::shown, as
// Rust's `{:?}` writes a path), so a newline in a cache directory, a configuration file's
// directory or an interpreter's path cannot forge a line: they were printed raw.
#[test]
fn operational_paths_stay_on_one_line() {
    let Some(py) = crate::harness::any_python("operational_paths_stay_on_one_line") else { return };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    // Each name's second line, which must never start a line of output.
    let forged = |out: &str, tail: &str| out.lines().any(|l| l.starts_with(tail));
    // The end of a quoted path, relative or made absolute: `ca\nche"` (in its quotes alone,
    // never in backticks too).
    let quoted_end = |p: &str| format!("{:?}", Path::new(p))[1..].to_string();
    let once =
        |out: &str, p: &str| out.contains(&quoted_end(p)) && !out.contains(&format!("{}`", quoted_end(p)));

    // The cache directory: compile -v's tier line, cache stats, cache clean.
    let cache = "ca\nche";
    let run = tree.hashpyc().args(["compile", "-v", "--cache", cache]).python(py).arg("m.py").run();
    run.assert_code(0);
    assert!(run.stderr.contains(&format!("{}: ", quoted_end(cache))), "{}", run.stderr);
    assert!(once(&run.stderr, cache), "{}", run.stderr);
    assert!(!forged(&run.stderr, "che"), "{}", run.stderr);
    let stats = tree.hashpyc().args(["cache", "stats", "--cache", cache]).run();
    stats.assert_code(0);
    assert!(once(&stats.stdout, cache), "{}", stats.stdout);
    assert!(!forged(&stats.stdout, "che"), "{}", stats.stdout);
    let clean = tree.hashpyc().args(["cache", "clean", "--cache", cache]).run();
    clean.assert_code(0);
    assert!(once(&clean.stderr, cache) && !forged(&clean.stderr, "che"), "{}", clean.stderr);

    // A configuration file in a directory whose name holds a newline: -v's line, its errors.
    let config = "con\nf/hashpyc.toml";
    tree.write(config, "jobs = 1\n");
    let run = tree.hashpyc().args(["compile", "-v", "--config", config]).python(py).arg("m.py").run();
    run.assert_code(0);
    assert!(run.stderr.contains(&format!("configuration: {:?}\n", Path::new(config))), "{}", run.stderr);
    assert!(!forged(&run.stderr, "f/hashpyc.toml"), "{}", run.stderr);
    tree.write(config, "optimize = [7]\n");
    let run = tree.hashpyc().args(["compile", "--config", config]).python(py).arg("m.py").run();
    run.assert_code(2);
    assert!(once(&run.stderr, config) && !forged(&run.stderr, "f/hashpyc.toml"), "{}", run.stderr);

    // An interpreter reached through a symlink whose name holds a newline: -v's target line;
    // one that does not exist: the error.
    let link = "bin/py\nthon3";
    std::fs::create_dir_all(tree.path("bin")).unwrap();
    std::os::unix::fs::symlink(&py.path, tree.path(link)).unwrap();
    let run = tree.hashpyc().args(["compile", "-v", "--force", "--python", link, "m.py"]).run();
    run.assert_code(0);
    assert!(once(&run.stderr, link), "{}", run.stderr);
    assert!(!forged(&run.stderr, "thon3"), "{}", run.stderr);
    let missing = "bin/no\nsuch";
    let run = tree.hashpyc().args(["compile", "--python", missing, "m.py"]).run();
    run.assert_code(2);
    assert!(once(&run.stderr, missing) && !forged(&run.stderr, "such"), "{}", run.stderr);
    // A name looked up on PATH that is not UTF-8 keeps its bytes (it became U+FFFD).
    let run = tree
        .hashpyc()
        .arg("compile")
        .arg("--python")
        .arg(OsStr::from_bytes(b"py\xff\nthon"))
        .arg("m.py")
        .run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("interpreter \"py\\xFF\\nthon\" not found on PATH")
            && !forged(&run.stderr, "thon"),
        "{}",
        run.stderr
    );

    // The `--strip-prefix` warning printed the name raw: a newline split the warning, a byte
    // not UTF-8 became U+FFFD.
    for dir in [&b"s\nd"[..], b"s\xffd"] {
        let dir = Path::new(OsStr::from_bytes(dir));
        tree.write(dir.join("m.py"), "x = 1\n");
        let strip = dir.join("x");
        let run = tree.hashpyc().args(["compile", "-n", "-s"]).arg(&strip).python(py).arg(dir).run();
        run.assert_code(0);
        let warning =
            run.stderr.lines().find(|l| l.starts_with("warning: --strip-prefix")).unwrap_or_default();
        assert!(warning.contains(&format!("--strip-prefix {strip:?} does not match")), "{}", run.stderr);
        assert!(!forged(&run.stderr, "d/x") && !run.stderr.contains('\u{fffd}'), "{}", run.stderr);
    }

    // A variable's value in its error.
    let run = tree.hashpyc().args(["check", "m.py"]).env("HASHPYC_NO_CACHE", "x\ny").python(py).run();
    run.assert_code(2);
    assert!(
        run.stderr.contains("value \"x\\ny\" for HASHPYC_NO_CACHE") && !forged(&run.stderr, "y\""),
        "{}",
        run.stderr
    );
}

// A name that is not UTF-8 was quoted twice in messages: the escaped form of the text
// outputs, in the backticks a message puts around a path (error: `"\xFF"`: no such file or
// directory). Amid words a name is now quoted once: escaped in its own quotes as Rust's
// `{:?}` writes a path, else in backticks as before. Errors, warnings, `-v` lines, check's
// findings and `--format github` annotations, each beside the same message for a UTF-8 name.
#[test]
fn names_not_utf8_are_quoted_once_in_messages() {
    let Some(py) = harness::any_python("first_hour::names_not_utf8_are_quoted_once_in_messages") else {
        return;
    };
    let tree = Tree::new();
    let name = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
    let debug = |b: &[u8]| format!("{:?}", name(b));
    tree.write(name(b"caf\xe9.py"), "x = 1\n");
    for dir in [&b"d\xff"[..], b"u"] {
        tree.write(name(&[dir, b"/m.py"].concat()), "x = 1\n");
        tree.write(name(&[dir, b"/__pycache__"].concat()), "not a directory\n");
    }
    let fifo = tree.path(name(b"f\xff.py"));
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let twice = |out: &str, b: &[u8]| out.contains(&format!("`{}`", debug(b)));

    // Errors: a named path that does not exist.
    let run = tree.hashpyc().args(["compile"]).python(py).arg(name(b"gone\xff.py")).arg("gone.py").run();
    run.assert_code(2);
    let want = format!("error: {}: no such file or directory\n", debug(b"gone\xff.py"));
    assert!(run.stderr.contains(&want), "{want}\n{}", run.stderr);
    assert!(run.stderr.contains("error: `gone.py`: no such file or directory\n"), "{}", run.stderr);
    assert!(!twice(&run.stderr, b"gone\xff.py"), "{}", run.stderr);

    // A warning, a `-v` line and a per-file error of a compile.
    let run = tree.hashpyc().args(["compile", "-v"]).python(py).arg(".").run();
    let warning = format!("warning: {}: not a regular file (a FIFO); skipped\n", debug(b"./f\xff.py"));
    assert!(run.stderr.contains(&warning), "{warning}\n{}", run.stderr);
    let verbose = format!("compiled {} (no pyc)\n", debug(b"./caf\xe9.py"));
    assert!(run.stderr.contains(&verbose), "{verbose}\n{}", run.stderr);
    for (dir, shown) in [(&b"./d\xff"[..], None), (b"./u", Some(("`./u/m.py`", "`./u/__pycache__`")))] {
        let (source, pycache) = match shown {
            Some((s, p)) => (s.to_string(), p.to_string()),
            None => (debug(&[dir, b"/m.py"].concat()), debug(&[dir, b"/__pycache__"].concat())),
        };
        let error = format!("error: {source}: cannot create directory {pycache}: ");
        assert!(run.stderr.contains(&error), "{error}\n{}", run.stderr);
    }
    for b in [&b"./f\xff.py"[..], b"./caf\xe9.py", b"./d\xff/m.py", b"./d\xff/__pycache__"] {
        assert!(!twice(&run.stderr, b), "{}", run.stderr);
    }

    // check's findings: the path at the start of the line as it was, the one in the
    // detail quoted once.
    let run = tree.hashpyc().args(["check"]).python(py).arg(".").run();
    run.assert_code(1);
    let finding = format!(
        "missing    {}: {} is not a directory\n",
        debug(b"./d\xff/m.py"),
        debug(b"./d\xff/__pycache__")
    );
    assert!(run.stdout.contains(&finding), "{finding}\n{}", run.stdout);
    assert!(
        run.stdout.contains("missing    ./u/m.py: `./u/__pycache__` is not a directory\n"),
        "{}",
        run.stdout
    );
    assert!(!twice(&run.stdout, b"./d\xff/__pycache__"), "{}", run.stdout);

    // `--format github`: the message names the pyc (where CPython puts it) and the
    // directory in the way once.
    let script = "import importlib.util, os, sys\n\
        sys.stdout.buffer.write(os.fsencode(importlib.util.cache_from_source(os.fsdecode(b'./d\\xff/m.py'))))";
    let out = py.cmd().args(["-I", "-c", script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = tree.hashpyc().args(["check", "--format", "github"]).python(py).arg(".").run();
    run.assert_code(1);
    let line = run.stdout.lines().find(|l| l.contains("d\u{fffd}")).unwrap_or_default();
    let pyc = format!("missing: no pyc ({}): ", debug(&out.stdout));
    let remove = format!(" - remove {} (", debug(b"./d\xff/__pycache__"));
    assert!(line.contains(&pyc) && line.contains(&remove), "{pyc}\n{remove}\n{}", run.stdout);
    assert!(!twice(line, &out.stdout) && !twice(line, b"./d\xff/__pycache__"), "{}", run.stdout);
    let utf8 = run.stdout.lines().find(|l| l.contains("file=./u/m.py,")).unwrap_or_default();
    assert!(utf8.contains(" - remove `./u/__pycache__` ("), "{}", run.stdout);
}

// `hashpyc compile pkg/*` named a `mod.pyi` stub and a `py.typed` marker beside `mod.py`:
// each was compiled as a source, the stub into `mod.py`'s own pyc (`__pycache__/mod.<tag>.pyc`)
// and the marker into `py.<tag>.pyc`, so the pyc held the stub's code after every other
// run and `check` alternated between ok and stale. compileall compiles a named file only
// when its name ends in `.py`; so does hashpyc now, counting the others in the summary.
per_python!(named_files_not_ending_in_py_are_skipped, |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/__init__.py", "");
    tree.write("pkg/mod.py", "def f(x):\n    return x + 1\n");
    tree.write("pkg/mod.pyi", "def f(x: int) -> int: ...\n");
    tree.write("pkg/py.typed", "");
    tree.write("setup.cfg", "[metadata]\nname = demo\n");
    // The stub named after the source and before it: the order must not matter.
    let lists: [&[&str]; 2] = [
        &["pkg/mod.py", "pkg/mod.pyi", "pkg/py.typed", "setup.cfg", "pkg/__init__.py"],
        &["setup.cfg", "pkg/py.typed", "pkg/mod.pyi", "pkg/__init__.py", "pkg/mod.py"],
    ];
    for names in lists {
        let run = tree
            .hashpyc()
            .args(["compile", "--invalidation-mode", "unchecked-hash"])
            .python(py)
            .args(names)
            .run();
        run.assert_code(0);
        assert!(run.stderr.contains("3 named files not ending in .py skipped"), "{}", run.stderr);
        // Only the two sources' pycs, and mod's is mod.py's, byte for byte as py_compile's.
        let mut written: Vec<String> = tree.pycs().iter().map(|p| p.to_string_lossy().into_owned()).collect();
        written.sort();
        let tag = tag(py);
        assert_eq!(
            written,
            [format!("pkg/__pycache__/__init__.{tag}.pyc"), format!("pkg/__pycache__/mod.{tag}.pyc")]
        );
        let ours = std::fs::read(pyc_of(&tree, py, "pkg/mod.py")).unwrap();
        let refs = harness::py_compile_refs(py, tree.root(), &[PathBuf::from("pkg/mod.py")], None);
        let reference = refs[0].as_ref().expect("py_compile compiled it");
        // The source hash (an unchecked pyc's too) and the body: mod.py's, as py_compile
        // writes them (before 3.11 the length, see same_as_py_compile).
        assert_eq!(ours[8..16], reference[8..16], "mod's pyc is not mod.py's");
        if py.minor >= (3, 11) {
            assert_eq!(ours[16..], reference[16..], "mod's pyc is not mod.py's");
        } else {
            assert_eq!(ours.len(), reference.len());
        }
        // And the interpreter runs mod.py's code from it (an unchecked pyc is never
        // compared with the source).
        let out = Command::new(&py.path)
            .current_dir(tree.root())
            .args(["-c", "import pkg.mod; print(pkg.mod.f(1))"])
            .env_remove("PYTHONDONTWRITEBYTECODE")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n", "{}", String::from_utf8_lossy(&out.stderr));
    }
    // check over the same list, and over a stdin list as `git ls-files` writes it: all ok,
    // the others counted.
    let names = lists[0];
    let run = tree
        .hashpyc()
        .args(["check", "--mode", "unchecked", "--format", "json"])
        .python(py)
        .args(names)
        .run();
    run.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (summary["sources"].as_u64(), summary["skipped_not_py"].as_u64()),
        (Some(2), Some(3)),
        "{summary}"
    );
    let stdin = names.join("\n") + "\n";
    let run = tree.hashpyc().args(["check", "--mode", "unchecked", "-"]).python(py).stdin(stdin).run();
    run.assert_code(0);
    assert!(
        run.stderr.contains("(2 ok, all fresh, 3 named files not ending in .py skipped)"),
        "{}",
        run.stderr
    );
    // Naming only such files (a hook given a README) checks nothing, which is no finding.
    let run = tree.hashpyc().args(["check"]).python(py).args(["pkg/py.typed", "setup.cfg"]).run();
    run.assert_code(0);
});

// A source named exactly `.py` maps to `__pycache__/py.<tag>.pyc`, `py.py`'s pyc (CPython's
// cache_from_source), yet has no module name and is never imported. hashpyc compiled both
// into that one pyc in parallel, the winner random, and `check` always called `py.py`
// stale. Now `.py` is never compiled, counted in the summary, and a warning when named.
per_python!(a_file_named_dot_py_is_never_compiled, |py: &Python| {
    let tree = Tree::new();
    tree.write("pkg/.py", "which = 'dot'\n");
    tree.write("pkg/py.py", "which = 'py'\n");
    let run = tree.hashpyc().args(["compile"]).python(py).arg("pkg").run();
    run.assert_code(0);
    assert!(run.stderr.contains("1 file named `.py` skipped (no module name)"), "{}", run.stderr);
    let written: Vec<PathBuf> = tree.pycs();
    assert_eq!(written, [PathBuf::from(format!("pkg/__pycache__/py.{}.pyc", tag(py)))]);
    let ours = std::fs::read(pyc_of(&tree, py, "pkg/py.py")).unwrap();
    let refs = harness::py_compile_refs(py, tree.root(), &[PathBuf::from("pkg/py.py")], None);
    let reference = refs[0].as_ref().expect("py_compile compiled it");
    assert_eq!(ours[8..16], reference[8..16], "the pyc is not py.py's");
    if py.minor >= (3, 11) {
        assert_eq!(ours[16..], reference[16..], "the pyc is not py.py's");
    } else {
        assert_eq!(ours.len(), reference.len());
    }
    // `check` expects no pyc for `.py`: the tree is fresh, and the file counted.
    let run = tree.hashpyc().args(["check", "--format", "json"]).python(py).arg("pkg").run();
    run.assert_code(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (summary["sources"].as_u64(), summary["skipped_no_module_name"].as_u64()),
        (Some(1), Some(1)),
        "{summary}"
    );
    // Named, it is a warning, and a run naming only it has nothing to do.
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().arg(cmd).python(py).arg("pkg/.py").run();
        run.assert_code(0);
        assert!(
            run.stderr.contains("warning: `pkg/.py`: a file named `.py` has no module name"),
            "{cmd}: {}",
            run.stderr
        );
    }
    assert_eq!(tree.pycs().len(), 1);
});

// A file named on the command line and also reached through its directory is one file,
// judged as named: a `.py` named beside its directory was counted twice as no module name,
// and under `--skip-hidden` once more as hidden (as was a hidden file named, though it was
// compiled). Walked only, a `.py` is hidden under `--skip-hidden` (the README's order: the
// hidden rule before the `.py` one). Text and JSON summaries, of compile and check, agree.
#[test]
fn a_file_named_and_walked_is_counted_once() {
    let Some(py) = harness::any_python("first_hour::a_file_named_and_walked_is_counted_once") else { return };
    let tree = Tree::new();
    tree.write("pkg/.py", "x = 1\n");
    tree.write("pkg/.named.py", "y = 2\n");
    tree.write("pkg/.other.py", "z = 3\n");
    tree.write("pkg/m.py", "w = 4\n");
    let cases: [(&[&str], &str, u64, u64); 4] = [
        (&["pkg/.py", "pkg"], "1 file named `.py` skipped (no module name))", 0, 1),
        (&["pkg/.py", "./pkg/.py", "pkg"], "1 file named `.py` skipped (no module name))", 0, 1),
        (
            &["--skip-hidden", "pkg/.py", "pkg/.named.py", "pkg"],
            "skipped 1 file by --skip-hidden, 1 file named `.py` skipped (no module name))",
            1,
            1,
        ),
        (&["--skip-hidden", "pkg"], "skipped 3 files by --skip-hidden)", 3, 0),
    ];
    for (args, text, hidden, nameless) in cases {
        for cmd in ["compile", "check"] {
            let run = tree.hashpyc().arg(cmd).python(py).args(args).run();
            run.assert_code(0);
            assert!(run.stderr.contains(text), "{cmd} {args:?}: {}", run.stderr);
            let warnings = run.stderr.matches("a file named `.py` has no module name").count();
            assert_eq!(warnings, usize::from(args.contains(&"pkg/.py")), "{cmd} {args:?}: {}", run.stderr);
            let run = tree.hashpyc().arg(cmd).args(["--format", "json"]).python(py).args(args).run();
            run.assert_code(0);
            let summary: serde_json::Value =
                serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
            assert_eq!(
                (summary["skipped_hidden"].as_u64(), summary["skipped_no_module_name"].as_u64()),
                (Some(hidden), Some(nameless)),
                "{cmd} {args:?}: {summary}"
            );
        }
    }
}

/// Run `cmd` to its end, killing it after 60 s (so that a hang fails the test instead of
/// stalling the suite): its exit status (None when killed) and stderr.
fn run_bounded(mut cmd: Command) -> (Option<i32>, String) {
    use std::process::Stdio;
    harness::guard_network(&mut cmd);
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            // SAFETY: our own child, still running after 60 s.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

// A FIFO where a pyc should be (`mkfifo __pycache__/a.cpython-311.pyc`): `check`, `compile
// -n`, `compile` and `inspect` opened it to read it and waited forever for a writer, and
// SIGTERM did not end them. Each now reports it as not a regular file and ends, as a FIFO
// named as a source is.
per_python!(a_fifo_where_a_pyc_should_be_is_reported, |py: &Python| {
    let tree = Tree::new();
    tree.write("a.py", "A = 1\n");
    let pyc = pyc_of(&tree, py, "a.py");
    std::fs::create_dir_all(pyc.parent().unwrap()).unwrap();
    let fifo = std::ffi::CString::new(pyc.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let rel = pyc.strip_prefix(tree.root()).unwrap().to_string_lossy().into_owned();
    let hashpyc = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashpyc"));
        cmd.current_dir(tree.root()).env("HASHPYC_STATE_DIR", harness::shared_cache_dir()).args(args);
        cmd
    };
    let py_path = py.path.to_string_lossy().into_owned();
    for (args, code, says) in [
        (
            vec!["check", "--python", &py_path, "a.py"],
            1,
            format!("unreadable a.py: pyc `{rel}`: not a regular file"),
        ),
        (
            vec!["compile", "-n", "--python", &py_path, "a.py"],
            1,
            format!("`{rel}` exists and is not a regular file"),
        ),
        (
            vec!["compile", "--python", &py_path, "a.py"],
            1,
            format!("`{rel}` exists and is not a regular file"),
        ),
        (vec!["inspect", &rel], 1, "error: not a regular file".to_string()),
        (vec!["inspect", "a.py"], 1, "error: not a regular file".to_string()),
    ] {
        let (got, out) = run_bounded(hashpyc(&args));
        assert_eq!(got, Some(code), "{args:?}: {out}");
        assert!(out.contains(&says), "{args:?}: {says}\n{out}");
    }
    // Still a FIFO: nothing was written through it or over it.
    assert!(std::fs::symlink_metadata(&pyc).unwrap().file_type().is_fifo());
});

// `compile` says `--invalidation-mode unchecked-hash`, `check` says `--mode unchecked`; each
// took only its own spelling, and clap's tip for the other (`use '-- --invalidation-mode'`)
// made the flag a path. Each takes the other's spelling now, flag and values.
#[test]
fn compile_and_check_take_each_others_mode_spelling() {
    let Some(py) = crate::harness::any_python("compile_and_check_take_each_others_mode_spelling") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    tree.hashpyc().args(["compile", "--mode", "unchecked"]).python(py).run().assert_code(0);
    // CPython's own reading of the flags field: unchecked-hash is 0b01.
    let pyc = tree.pycs().pop().unwrap();
    assert_eq!(std::fs::read(tree.path(&pyc)).unwrap()[4], 1, "{}", pyc.display());
    tree.hashpyc().args(["check", "--invalidation-mode", "unchecked-hash"]).python(py).run().assert_code(0);
    tree.hashpyc().args(["check", "--invalidation-mode", "checked-hash"]).python(py).run().assert_code(1);
    tree.hashpyc().args(["check", "--mode", "unchecked"]).python(py).run().assert_code(0);
}

// compileall's `-o -1` (the interpreter's level) got clap's tip `use '-- -1'`, which then
// failed for a missing value; it is said what it is here: leaving `-o` out.
#[test]
fn optimize_minus_one_is_explained() {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    for args in [&["-o", "-1"][..], &["--optimize=-1"]] {
        let run = tree.hashpyc().arg("compile").args(args).arg("m.py").run();
        run.assert_code(2);
        assert!(
            run.stderr.contains("-1 is compileall's \"the interpreter's level\": leave out -o"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("tip:"), "{}", run.stderr);
    }
    let run = tree.hashpyc().args(["check", "-o", "3"]).run();
    run.assert_code(2);
    assert!(run.stderr.contains("`3` is not an optimization level: 0, 1 or 2"), "{}", run.stderr);
    assert!(tree.pycs().is_empty());
}

// Variables that change what compileall writes or refuses never reach the workers (they
// start with no `PYTHON*` variable but hashpyc's): `PYTHONWARNINGS=error` (a CI guard
// against invalid escapes) and `PYTHONNODEBUGRANGES` were dropped silently. `compile` says
// so and what to use; the pycs are those of a run without them, as said.
per_python!(python_variables_the_workers_do_not_get_are_said, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    tree.write("m.py", "def f(x):\n    return x.y + 1\n");
    let compileall = |nodebug: bool| {
        let mut cmd = Command::new(&py.path);
        cmd.args(["-m", "compileall", "-q", "--invalidation-mode", "checked-hash", "m.py"])
            .current_dir(tree.root());
        if nodebug {
            cmd.env("PYTHONNODEBUGRANGES", "1");
        }
        assert!(cmd.status().unwrap().success());
        let pyc = tree.pycs().pop().unwrap();
        let bytes = std::fs::read(tree.path(&pyc)).unwrap();
        std::fs::remove_file(tree.path(&pyc)).unwrap();
        bytes
    };
    let (without, nodebug) = (compileall(false), compileall(true));
    assert_ne!(without, nodebug, "compileall under PYTHONNODEBUGRANGES leaves out the column table");
    let run = tree.hashpyc().args(["compile"]).python(py).env("PYTHONNODEBUGRANGES", "1").run();
    run.assert_code(0);
    assert!(
        run.stderr.contains("warning: PYTHONNODEBUGRANGES is not passed to the interpreters"),
        "{}",
        run.stderr
    );
    let pyc = tree.pycs().pop().unwrap();
    assert_eq!(std::fs::read(tree.path(&pyc)).unwrap(), without, "the pycs are those of a run without it");
    for (value, said) in [("error", true), ("default,error::DeprecationWarning", true), ("ignore", false)] {
        let run = tree.hashpyc().args(["compile", "-f"]).python(py).env("PYTHONWARNINGS", value).run();
        run.assert_code(0);
        let warning = format!("warning: PYTHONWARNINGS={value} is not passed");
        assert_eq!(run.stderr.contains(&warning), said, "{value}: {}", run.stderr);
        if said {
            assert!(run.stderr.contains("`-W error`"), "{}", run.stderr);
        }
    }
    // `check` compiles nothing: nothing to say.
    let run = tree.hashpyc().args(["check"]).python(py).env("PYTHONWARNINGS", "error").run();
    run.assert_code(0);
    assert!(!run.stderr.contains("PYTHONWARNINGS"), "{}", run.stderr);
});

// Each line on stderr was written in pieces (unbuffered stderr and `writeln!`: the text,
// then the newline; `error: ` apart from its message), and BuildKit's summary of a failed
// `docker build`, which takes lines from whole writes, showed `Compiled 0 files … (1 error)`
// without the error naming the path, or a message without its `error: `. Each line (a
// message and the lines under it) is one write now: a path that does not exist, a source
// that does not compile, an interpreter that does not exist.
#[test]
fn each_stderr_line_is_one_write() {
    let test = "first_hour::each_stderr_line_is_one_write";
    let Some(py) = harness::any_python(test) else { return };
    if !harness::strace_or_skip(test) {
        return;
    }
    let tree = Tree::new();
    tree.write("src/bad.py", "def f(:\n    pass\n");
    tree.write("src/ok.py", "X = 1\n");
    let runs: [&[&str]; 3] = [
        &["compile", "--python", py.path.to_str().unwrap(), "src", "nope"],
        &["check", "--python", py.path.to_str().unwrap(), "src/ok.py", "nope"],
        &["compile", "--python", "/nonexistent/python9", "src"],
    ];
    for args in runs {
        let log = tree.path("strace.log");
        let out = Command::new("strace")
            .args(["-f", "-qq", "-xx", "-s", "65536", "-e", "trace=write,writev", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_hashpyc"))
            .args(args)
            .current_dir(tree.root())
            .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
            .env("HASHPYC_NO_CONFIG", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        // `PID write(2, "\x65\x72…", N) = N`: what was written to fd 2, call by call.
        let log = std::fs::read_to_string(&log).unwrap();
        let writes: Vec<Vec<u8>> = log
            .lines()
            .filter_map(|l| l.split_once(" write(2, \"").map(|(_, rest)| rest))
            .map(|rest| {
                let hex = &rest[..rest.find('"').unwrap()];
                hex.split("\\x").skip(1).map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
            })
            .collect();
        let joined: Vec<u8> = writes.concat();
        assert_eq!(joined, out.stderr, "{args:?}: strace saw other writes to stderr: {log}");
        for w in &writes {
            assert!(
                w.ends_with(b"\n"),
                "{args:?}: a write without its newline: {:?}",
                String::from_utf8_lossy(w)
            );
        }
        assert!(writes.iter().all(|w| !w.starts_with(b"\n")), "{args:?}: {stderr}");
    }
}

// A state directory another user may write (a shared `HASHPYC_STATE_DIR`, a home another
// user can write): its pycs found good were already ignored unless this user's own and
// writable by nobody else, but an interpreter's probe and the remembered failures were
// taken whoever wrote them, so a forged failure stopped a good source from compiling
// (its message printed as CPython's) and a forged probe's hash made `compile` write pycs
// CPython finds stale and `check` call them fresh. Both are taken under the same rule now
// (a file others may write is passed over), and the failures are written `0600` as the
// others are.
#[test]
fn state_files_others_may_write_are_not_taken() {
    use std::os::unix::fs::PermissionsExt;
    let Some(py) = harness::any_python("first_hour::state_files_others_may_write_are_not_taken") else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/bad.py", "def f(:\n    pass\n");
    tree.write("src/good.py", "X = 1\n");
    let state = tree.path("state");
    let compile =
        || tree.hashpyc().env("HASHPYC_STATE_DIR", &state).args(["compile"]).python(py).arg("src").run();
    compile().assert_code(1);
    let good_pyc = pyc_of(&tree, py, "src/good.py");
    let hash = &std::fs::read(&good_pyc).unwrap()[8..16];
    let named = |prefix: &str| -> Vec<PathBuf> {
        std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix))
            .collect()
    };
    let [failures] = &named("failures-")[..] else { panic!("{:?}", named("")) };
    assert_eq!(std::fs::metadata(failures).unwrap().permissions().mode() & 0o777, 0o600);
    // The forged failure: good.py's hash, under good.py's path.
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(failures).unwrap()).unwrap();
    let entries = json["entries"].as_object_mut().unwrap();
    let (bad_key, bad) = entries.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
    let mut forged = bad.clone();
    forged["hash"] = hash.iter().map(|b| format!("{b:02x}")).collect::<String>().into();
    forged["message"] = "forged by another user".into();
    entries.insert(bad_key.replace("bad.py", "good.py"), forged);
    std::fs::write(failures, serde_json::to_vec(&json).unwrap()).unwrap();
    std::fs::set_permissions(failures, std::fs::Permissions::from_mode(0o666)).unwrap();
    let good_bytes = std::fs::read(&good_pyc).unwrap();
    std::fs::remove_file(&good_pyc).unwrap();
    let run = compile();
    run.assert_code(1);
    assert!(!run.stderr.contains("forged"), "{}", run.stderr);
    assert!(run.stderr.contains("src/bad.py:1"), "{}", run.stderr);
    assert_eq!(std::fs::read(&good_pyc).unwrap(), good_bytes, "{}", run.stderr);
    // The forged probe: the other SipHash variant.
    for probe in named("interpreter-") {
        let text = std::fs::read_to_string(&probe).unwrap();
        let swapped = if text.contains("siphash-1-3") {
            text.replace("siphash-1-3", "siphash-2-4")
        } else {
            text.replace("siphash-2-4", "siphash-1-3")
        };
        assert_ne!(swapped, text);
        std::fs::write(&probe, swapped).unwrap();
        std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    std::fs::remove_file(&good_pyc).unwrap();
    compile().assert_code(1);
    assert_eq!(std::fs::read(&good_pyc).unwrap(), good_bytes);
    let run =
        tree.hashpyc().env("HASHPYC_STATE_DIR", &state).args(["check"]).python(py).arg("src/good.py").run();
    run.assert_code(0);
}

// A state directory that belongs to another user (a `sudo` that kept `HOME`, a
// `HASHPYC_STATE_DIR` in someone else's tree), or is reached through a symbolic link another
// user made, was written into all the same: a run as root left its probes and failures
// where that user could move them, or wrote them wherever the user's link pointed. Neither
// is used now (a warning names the owner), and nothing is written there.
#[test]
fn a_state_directory_of_another_user_is_not_used() {
    let Some(py) = harness::any_python("first_hour::a_state_directory_of_another_user_is_not_used") else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        harness::visible("SKIPPED first_hour::a_state_directory_of_another_user_is_not_used: not root");
        return;
    }
    let tree = Tree::new();
    tree.write("src/good.py", "X = 1\n");
    let theirs = tree.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
    // Root's own directory, reached through the other user's link.
    let target = tree.path("root-owned");
    std::fs::create_dir(&target).unwrap();
    let link = tree.path("their-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
    for (state, reason) in [
        (&theirs, "it belongs to uid 4242, not to this user"),
        (&link, "it is a symbolic link of uid 4242, not of this user"),
    ] {
        let run =
            tree.hashpyc().env("HASHPYC_STATE_DIR", state).args(["compile"]).python(py).arg("src").run();
        run.assert_code(0);
        assert!(
            run.stderr.contains(&format!(
                "warning: the state directory `{}` cannot be used ({reason})",
                state.display()
            )),
            "{}",
            run.stderr
        );
        let run = tree.hashpyc().env("HASHPYC_STATE_DIR", state).args(["check"]).python(py).arg("src").run();
        run.assert_code(0);
        assert!(run.stderr.contains(reason), "{}", run.stderr);
        for dir in [&theirs, &target] {
            let left: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert!(left.is_empty(), "{}: {left:?}", dir.display());
        }
    }
    assert!(pyc_of(&tree, py, "src/good.py").is_file());
}

// What a source holds reached the terminal raw: a string with an escape sequence on the
// line of a syntax error (its excerpt), in an invalid escape's SyntaxWarning (`'\<ESC>'`),
// in `check`'s detail of a remembered failure, and in `--format github` messages and
// `file=`, so a hostile pull request could retitle or clear the terminal or the CI log's
// view. Each such character is written as an escape (`\u{1b}`), the caret still under the
// place CPython names.
per_python!(control_characters_of_a_source_are_escaped, min = (3, 12), |py: &Python| {
    let tree = Tree::new();
    tree.write("t.py", "x = \"\x1b]0;pwned\x07\x1b[2J\" +\n");
    tree.write("w.py", "x = \"\\\x1b]0;t\x07\"\n");
    tree.write("e\x1b[31m.py", "X = 1\n");
    let raw = |s: &str| s.contains('\x1b') || s.contains('\x07');
    let run = tree.hashpyc().args(["compile"]).python(py).arg(".").run();
    run.assert_code(1);
    assert!(!raw(&run.stderr), "{}: {:?}", py.label(), run.stderr);
    let excerpt = "    x = \"\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\" +\n";
    assert!(run.stderr.contains(excerpt), "{}: {}", py.label(), run.stderr);
    // The caret under the end of the line, as CPython places it: after the escapes too.
    let caret = run.stderr.lines().skip_while(|l| !excerpt.starts_with(l)).nth(1).unwrap();
    assert_eq!(caret.find('^'), Some(excerpt.trim_end().len()), "{}: {}", py.label(), run.stderr);
    // (3.14 words it `"\<ESC>" is an invalid escape sequence`.)
    assert!(run.stderr.contains("SyntaxWarning: ") && run.stderr.contains("\\\\u{1b}"), "{}", run.stderr);
    for cmd in ["compile", "check"] {
        let run = tree.hashpyc().args([cmd, "--format", "github"]).python(py).arg(".").run();
        assert!(!raw(&run.stdout) && !raw(&run.stderr), "{}: {cmd}: {run:?}", py.label());
    }
    let run = tree.hashpyc().args(["check"]).python(py).arg(".").run();
    run.assert_code(1);
    assert!(!raw(&run.stdout) && !raw(&run.stderr), "{}: {run:?}", py.label());
});

// The shared cache's credentials reached the Python processes (a security review dumped
// `os.environ` from a worker): a launcher script or a venv's wrapper saw
// `HASHPYC_CACHE_TOKEN` and `AWS_SECRET_ACCESS_KEY`, which no compile needs. They are kept
// from the interpreter now, as the PYTHON* variables are.
#[test]
fn credentials_are_kept_from_the_interpreter() {
    use std::os::unix::fs::PermissionsExt;
    let Some(py) = harness::any_python("first_hour::credentials_are_kept_from_the_interpreter") else {
        return;
    };
    let tree = Tree::new();
    tree.write("m.py", "X = 1\n");
    let seen = tree.path("seen");
    let launcher = tree.write(
        "launcher",
        format!("#!/bin/sh\nenv >> '{}'\nexec '{}' \"$@\"\n", seen.display(), py.path.display()),
    );
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = tree
        .hashpyc()
        .env("HASHPYC_NO_STATE", "1")
        .env("HASHPYC_CACHE_TOKEN", "token-secret")
        .env("AWS_ACCESS_KEY_ID", "key-id-secret")
        .env("AWS_SECRET_ACCESS_KEY", "key-secret")
        .env("AWS_SESSION_TOKEN", "session-secret")
        .env("HASHPYC_HARMLESS", "kept")
        .args(["compile", "--python"])
        .arg(&launcher)
        .arg("m.py")
        .run();
    run.assert_code(0);
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("HASHPYC_HARMLESS=kept"), "{seen}");
    assert!(!seen.contains("secret"), "{seen}");
}

// An empty selection says why (the README: "as any empty selection does"), but one that
// `--exclude`, `-x` or the `exclude` key made empty said nothing more than "no Python
// sources to check under `src`": the files and directories the walk's excludes passed
// over are now counted in that message (only there: summaries leave them out, as the
// README says), naming the key where a configuration file set it.
#[test]
fn an_empty_selection_names_the_excludes_that_emptied_it() {
    let Some(py) = harness::any_python("first_hour::an_empty_selection_names_the_excludes_that_emptied_it")
    else {
        return;
    };
    let tree = Tree::new();
    tree.write("src/a.py", "A = 1\n");
    tree.write("src/sub/b.py", "B = 1\n");
    tree.write("rx/r.py", "R = 1\n");
    let run = tree.hashpyc().args(["check", "--exclude", "*.py", "src"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("error: no Python sources to check under `src` (2 files excluded by --exclude `*.py`)"),
        "{}",
        run.stderr
    );
    let run =
        tree.hashpyc().args(["check", "--exclude", "sub/", "--exclude", "a.py", "src"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("(1 file and 1 directory excluded by --exclude `sub/` --exclude `a.py`)"),
        "{}",
        run.stderr
    );
    let run = tree.hashpyc().args(["compile", "-n", "-x", "rx/", "rx"]).python(py).run();
    run.assert_code(0);
    assert!(
        run.stderr.contains(
            "warning: no Python sources to compile under `rx` (1 file excluded by --exclude-regex `rx/`)"
        ),
        "{}",
        run.stderr
    );
    tree.write("hashpyc.toml", "exclude = [\"*.py\"]\n");
    let run = tree.hashpyc().args(["check", "src"]).python(py).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("(2 files excluded by `exclude = [\"*.py\"]` in `hashpyc.toml` line 1)"),
        "{}",
        run.stderr
    );
    // Summaries still leave them out: a selection that is not empty says nothing of them.
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    let run = tree.hashpyc().args(["compile", "--exclude", "sub/", "src"]).python(py).run();
    run.assert_code(0);
    assert!(
        !run.stderr.contains("excluded") && !run.stdout.contains("excluded"),
        "{}{}",
        run.stdout,
        run.stderr
    );
}

// An interpreter that needs PYTHONHOME (a binary copied away from its standard library)
// failed under hashpyc with CPython's path-configuration dump ("Failed to import
// encodings", exit 2) and no word that hashpyc does not pass PYTHONHOME to the
// interpreters it starts. The probe's failure now says so and what to do (a wrapper script
// that sets it and execs the interpreter), which works; without PYTHONHOME in hashpyc's
// environment that line is not added.
#[test]
fn an_interpreter_that_needs_pythonhome_is_told_to_get_a_wrapper() {
    let tree = Tree::new();
    tree.write("m.py", "x = 1\n");
    std::fs::create_dir_all(tree.path("bin")).unwrap();
    // A CPython whose executable, copied alone, starts with PYTHONHOME set to its prefix
    // and not without (a build whose compiled-in prefix exists finds its library anyway).
    let found = harness::pythons().values().filter(|p| p.minor >= (3, 7)).find_map(|py| {
        let real = std::fs::canonicalize(&py.path).ok()?;
        let home = py.run(&["-c", "import sys; print(sys.base_prefix)"], tree.root()).trim().to_string();
        let copy = tree.path(format!("bin/{}", real.file_name()?.to_string_lossy()));
        std::fs::copy(&real, &copy).ok()?;
        let starts = |with_home: bool| {
            let mut cmd = Python { path: copy.clone(), ..py.clone() }.cmd();
            if with_home {
                cmd.env("PYTHONHOME", &home);
            }
            cmd.args(["-c", "import encodings"]).output().is_ok_and(|o| o.status.success())
        };
        if starts(true) && !starts(false) {
            Some((copy, home))
        } else {
            let _ = std::fs::remove_file(&copy);
            None
        }
    });
    let Some((copy, home)) = found else {
        harness::visible(
            "SKIPPED an_interpreter_that_needs_pythonhome_is_told_to_get_a_wrapper: no CPython whose copied executable needs PYTHONHOME",
        );
        return;
    };
    let run =
        tree.hashpyc().args(["compile", "--python"]).arg(&copy).arg("m.py").env("PYTHONHOME", &home).run();
    run.assert_code(2);
    assert!(run.stderr.contains("failed to start Python: it exited with status"), "{}", run.stderr);
    let hint = format!(
        "hashpyc does not pass PYTHONHOME to the interpreters it starts (no `PYTHON*` variable of its \
         environment reaches them, so that none changes the pycs): give --python a wrapper script that \
         sets it and execs the interpreter (`PYTHONHOME=DIR exec {} \"$@\"`)",
        copy.display()
    );
    assert!(run.stderr.lines().any(|l| l == hint), "{}", run.stderr);
    assert!(tree.pycs().is_empty());
    // Both variables, both named.
    let run = tree
        .hashpyc()
        .args(["compile", "--python"])
        .arg(&copy)
        .arg("m.py")
        .env("PYTHONHOME", &home)
        .env("PYTHONPATH", tree.root())
        .run();
    run.assert_code(2);
    assert!(run.stderr.contains("does not pass PYTHONHOME or PYTHONPATH to"), "{}", run.stderr);
    assert!(run.stderr.contains("that sets them and execs"), "{}", run.stderr);
    // Without them, the failure is CPython's alone.
    let run =
        tree.hashpyc().args(["compile", "--python"]).arg(&copy).arg("m.py").env_remove("PYTHONHOME").run();
    run.assert_code(2);
    assert!(!run.stderr.contains("does not pass"), "{}", run.stderr);
    // The wrapper the hint describes starts it.
    let wrapper = tree.write_executable(
        "bin/py",
        format!("#!/bin/sh\nPYTHONHOME='{home}' exec '{}' \"$@\"\n", copy.display()),
    );
    let run =
        tree.hashpyc().args(["compile", "--python"]).arg(&wrapper).arg("m.py").env_remove("PYTHONHOME").run();
    run.assert_code(0);
    assert_eq!(tree.pycs().len(), 1);
}

// A file copied from macOS has its name in Unicode NFD (`cafe` + U+0301), and the user types
// it in NFC (`caf` + U+00E9): other bytes, so another name to Linux and to CPython. `check`
// said only "no such file or directory" while `ls` showed the file. Now the error names the
// file that exists and both forms; the name as spelled there compiles as py_compile does.
#[test]
fn a_name_in_another_unicode_form_is_named() {
    let Some(py) = harness::any_python("a_name_in_another_unicode_form_is_named") else { return };
    let tree = Tree::new();
    let (nfc, nfd) = ("caf\u{e9}.py", "cafe\u{301}.py");
    tree.write(nfd, "X = 1\n");
    tree.write("pkge\u{301}/m.py", "Y = 2\n");
    for (command, typed, there) in [
        ("check", nfc.to_string(), nfd.to_string()),
        ("compile", nfc.to_string(), nfd.to_string()),
        ("check", "pkg\u{e9}/m.py".to_string(), "pkge\u{301}/m.py".to_string()),
        ("check", "pkg\u{e9}".to_string(), "pkge\u{301}".to_string()),
    ] {
        let run = tree.hashpyc().args([command]).python(py).arg(&typed).run();
        run.assert_code(2);
        assert_eq!(
            run.stderr.lines().next().unwrap_or_default(),
            format!(
                "error: `{typed}`: no such file or directory; `{there}` exists, the same name in another Unicode form \
                 (NFC here, NFD there, as copies from macOS can write names), which this filesystem and Python take \
                 for another name: name it as it is spelled there (a shell glob or completion does), or rename it"
            ),
            "{command} {typed}"
        );
        assert!(tree.pycs().is_empty(), "{:?}", tree.pycs());
    }
    // A name that exists in no form is said as before.
    let absent = tree.hashpyc().args(["check"]).python(py).arg("caf\u{e8}.py").run();
    absent.assert_code(2);
    assert_eq!(absent.stderr.lines().next(), Some("error: `caf\u{e8}.py`: no such file or directory"));
    // Named as spelled there, it compiles as py_compile compiles it, and checks fresh.
    tree.hashpyc().args(["compile"]).python(py).arg(nfd).run().assert_code(0);
    let want = harness::py_compile_refs(py, tree.root(), &[PathBuf::from(nfd)], None).remove(0);
    assert_eq!(std::fs::read(pyc_of(&tree, py, nfd)).ok(), want);
    tree.hashpyc().args(["check"]).python(py).arg(nfd).run().assert_code(0);
}

// The same copy from macOS the other way round: the source's name in NFD, its pyc renamed
// to NFC (as a copy can do). `check --stray` listed `missing café.py` and `stray
// __pycache__/café.cpython-311.pyc`, two lines that read as the same name, and said no
// more. The stray now names the source there and both forms; CPython, which looks the pyc
// up by the source name's own bytes, indeed does not use it.
#[test]
fn a_stray_named_in_another_unicode_form_says_so() {
    let Some(py) = harness::any_python("a_stray_named_in_another_unicode_form_says_so") else { return };
    let tree = Tree::new();
    let nfd = "cafe\u{301}.py";
    tree.write(nfd, "X = 1\n");
    tree.hashpyc().args(["compile", "-q"]).python(py).run().assert_code(0);
    let pyc = pyc_of(&tree, py, nfd);
    let nfc_pyc =
        pyc.with_file_name(pyc.file_name().unwrap().to_str().unwrap().replace("e\u{301}", "\u{e9}"));
    assert_ne!(pyc, nfc_pyc);
    std::fs::rename(&pyc, &nfc_pyc).expect("rename");
    let run = tree.hashpyc().args(["check", "--stray"]).python(py).run();
    run.assert_code(1);
    let shown_pyc = nfc_pyc.strip_prefix(tree.root()).unwrap().display().to_string();
    assert_eq!(
        run.stdout,
        format!(
            "missing    {nfd}\nstray      {shown_pyc}: `{nfd}` is there, the same name in another Unicode form (NFD \
             there, NFC in this pyc's name), which CPython takes for another name: it never reads this pyc for it\n"
        ),
        "{}",
        run.stderr
    );
    // CPython's import of the module by its name on disk compiles it afresh: the NFC pyc is
    // not the one it looks for.
    let imported = Command::new(&py.path)
        .current_dir(tree.root())
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .args(["-c", "import importlib, sys; m = importlib.import_module(sys.argv[1]); print(m.__cached__)"])
        .arg("cafe\u{301}")
        .output()
        .expect("python");
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    assert_eq!(String::from_utf8_lossy(&imported.stdout).trim(), pyc.display().to_string());
    assert!(pyc.exists(), "CPython wrote no pyc under the source's own name");
}
