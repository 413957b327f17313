//! The bytecode cache (`compile --cache DIR`) against real interpreters: relocated builds
//! byte-identical to real compiles at the destination (short, over 255 bytes, non-ASCII),
//! fully cached builds that start no Python even with broken files, damage of every kind
//! never changing a pyc byte or the exit status, concurrent pruning during concurrent
//! builds, entries shared by hash modes, and the management commands.

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, Python, Tree};
use crate::per_python;

/// Every pyc under `root`, relative, with its bytes.
fn pycs(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    harness::files_with_suffix(root, ".pyc")
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(root.join(p)).unwrap()))
        .collect()
}

fn remove_pycs(root: &Path) {
    for p in harness::files_with_suffix(root, ".pyc") {
        std::fs::remove_file(root.join(p)).unwrap();
    }
}

/// The stdlib's sources (no site-packages), copied under `to`: every file with
/// `HASHPYC_FULL_TESTS=1`, else every fifth file in path order, the fifth changing with the
/// version (a fifth of the CI time; the full stdlib was checked on every version when this
/// test was written, see the README; `relocate::stdlib_relocates_exactly` checks the
/// relocation itself on another sample).
fn copy_stdlib(py: &Python, to: &Path) -> usize {
    let index = std::cell::Cell::new(0usize);
    harness::copy_py_tree(&harness::stdlib_dir(py), to, &|p| {
        if p.starts_with("site-packages") || p.starts_with("dist-packages") {
            return true;
        }
        index.set(index.get() + 1);
        !harness::in_sample(py, index.get(), 5)
    })
}

/// `(from_cache, compiled)` in a compile summary: pycs from the cache, files compiled.
fn counts(stderr: &str) -> (usize, usize) {
    let line =
        stderr.lines().find(|l| l.starts_with("Compiled ")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    let compiled = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let from_cache = line
        .split_once(" from the cache")
        .map_or(0, |(head, _)| head.rsplit(['(', ' ']).next().unwrap().parse().unwrap());
    (from_cache, compiled)
}

// The stdlib compiled with the cache at one path, then copied to a shorter path, to a
// path longer than 255 bytes and to a non-ASCII directory: built from the cache with no
// Python started but the one worker confirming the launcher's probe, and compared file by file with a no-cache build at the same path.
per_python!(relocated_stdlib_is_byte_identical, |py: &Python| {
    let work = Tree::new();
    let (python, starts) = work.counting_python(py);
    let cache = work.path("cache");
    let origin = work.path("origin/a-rather-long-directory-name/for-the-first-build/lib");
    let n = copy_stdlib(py, &origin);
    assert!(n > 100, "{}: {n} sources", py.label());
    let real_build = |dir: &Path| {
        harness::Hashpyc::new(work.root()).args(["compile", "-q", "--python"]).arg(&python).arg(dir).run()
    };
    let first = harness::Hashpyc::new(work.root())
        .args(["compile", "--python"])
        .arg(&python)
        .arg("--cache")
        .arg(&cache)
        .arg(&origin)
        .run();
    let status = first.code;
    assert!(matches!(status, Some(0 | 1)), "{}", first.stderr);
    let long = work.path(format!("{}/{}/{}", "L".repeat(90), "o".repeat(90), "ng".repeat(45)));
    let destinations = [work.path("s"), long, work.path("naïve-déjà-vu/lib")];
    assert!(destinations[1].join("x.py").as_os_str().len() > 255);
    for dest in &destinations {
        copy_stdlib(py, dest);
        let before = starts();
        let run = harness::Hashpyc::new(work.root())
            .args(["compile", "--python"])
            .arg(&python)
            .arg("--cache")
            .arg(&cache)
            .arg(dest)
            .run();
        assert_eq!(run.code, status, "{}", run.stderr);
        // One start: the worker that confirms the counting launcher's remembered probe
        // before a hit is served (faults::a_stale_probe_behind_a_launcher_serves_no_cache_hit);
        // nothing is compiled (below: every pyc from the cache).
        assert_eq!(starts(), before + 1, "a fully cached build started Python:\n{}", run.stderr);
        let (from_cache, compiled) = counts(&run.stderr);
        assert_eq!(from_cache, compiled, "{}", run.stderr);
        assert!(from_cache + 20 >= n, "{from_cache} of {n} from the cache:\n{}", run.stderr);
        let cached = pycs(dest);
        remove_pycs(dest);
        let reference = real_build(dest);
        assert_eq!(reference.code, status, "{}", reference.stderr);
        let real = pycs(dest);
        assert_eq!(cached.len(), real.len(), "{}", dest.display());
        let differ: Vec<&PathBuf> =
            cached.iter().zip(&real).filter(|(a, b)| a != b).map(|(a, _)| &a.0).collect();
        assert!(
            differ.is_empty(),
            "{}: {} of {} pycs differ: {differ:?}",
            py.label(),
            differ.len(),
            real.len()
        );
        harness::visible(&format!(
            "cache relocation {}: {} pycs from the cache at {} ({} bytes of path) identical to a real compile",
            py.label(),
            cached.len(),
            dest.file_name().unwrap().to_string_lossy(),
            dest.as_os_str().len()
        ));
    }
});

// A tree whose every file is in the cache starts no Python (but the one worker confirming
// a launcher's remembered probe, as the counting wrapper is), even when some do not
// compile: their errors are reported as without the cache, with the new path. With one
// optimization level and with several (a failure is stored under the key of all of them).
per_python!(cached_failures_start_no_python, min = (3, 8), |py: &Python| {
    for levels in [&[][..], &["-o", "0", "-o", "2"]] {
        let work = Tree::new();
        let (python, starts) = work.counting_python(py);
        let cache = work.path("cache");
        for dir in ["one", "two"] {
            work.write(format!("{dir}/ok.py"), "def f():\n    return 1\n");
            work.write(format!("{dir}/warn.py"), "x = 1\nif x is 1:\n    pass\n");
            work.write(format!("{dir}/bad.py"), "def f(:\n    pass\n");
        }
        let run = |dir: &str, cache_on: bool| {
            let mut cmd = work.hashpyc().arg("compile").arg("--python").arg(&python).args(levels);
            if cache_on {
                cmd = cmd.arg("--cache").arg(&cache);
            }
            cmd.arg(dir).run()
        };
        let first = run("one", true);
        first.assert_code(1);
        let before = starts();
        let second = run("two", true);
        second.assert_code(1);
        // One start: the worker that confirms the counting launcher's remembered probe;
        // nothing is compiled (below: every pyc from the cache).
        assert_eq!(
            starts(),
            before + 1,
            "{levels:?}: a fully cached build started Python:\n{}",
            second.stderr
        );
        assert!(second.stderr.contains("two/bad.py:1:"), "{}", second.stderr);
        // Two files; the pycs from the cache are one per level.
        let (compiled, from_cache) =
            if levels.is_empty() { ("2 files".to_string(), 2) } else { ("2 files, 4 pycs".to_string(), 4) };
        assert!(
            second.stderr.contains(&format!("Compiled {compiled} for"))
                && second.stderr.contains(&format!("({from_cache} from the cache")),
            "{levels:?}: {}",
            second.stderr
        );
        // The same messages as a real compile of `two` gives.
        let cached_messages =
            second.stderr.lines().filter(|l| !l.starts_with("Compiled")).collect::<Vec<_>>().join("\n");
        let cached = pycs(&work.path("two"));
        remove_pycs(&work.path("two"));
        let real = run("two", false);
        real.assert_code(1);
        let real_messages =
            real.stderr.lines().filter(|l| !l.starts_with("Compiled")).collect::<Vec<_>>().join("\n");
        assert_eq!(cached_messages, real_messages);
        assert_eq!(cached, pycs(&work.path("two")));
    }
});

// A build with a cache first starts one worker of a launcher script to confirm its
// remembered probe (faults::a_stale_probe_behind_a_launcher_serves_no_cache_hit); that
// worker was then thrown away, so a build with misses started one Python more than the
// same build without a cache (or through the interpreter named). Now it is the pool's first
// worker: with one job, a build with misses starts as many Pythons as without a cache, into
// an empty cache and into one holding some of its files alike, and its pycs are those of a
// build without a cache; one whose every file is a hit starts that one worker alone.
#[test]
fn the_worker_confirming_a_launcher_compiles() {
    let Some(py) = harness::any_python("cache::the_worker_confirming_a_launcher_compiles") else {
        return;
    };
    let work = Tree::new();
    let (python, starts) = work.counting_python(py);
    let cache = work.path("cache");
    for dir in ["a", "b"] {
        for i in 0..3 {
            work.write(format!("{dir}/m{i}.py"), format!("V = {i}\n"));
        }
    }
    work.write("b/new.py", "NEW = 1\n");
    // The Pythons a build started, and its summary's (from the cache, compiled).
    let build = |dir: &str, cache_on: bool| {
        let mut cmd = work.hashpyc().args(["compile", "-j", "1", "--python"]).arg(&python);
        if cache_on {
            cmd = cmd.arg("--cache").arg(&cache);
        }
        let before = starts();
        let run = cmd.arg(dir).run();
        run.assert_code(0);
        (starts() - before, counts(&run.stderr))
    };
    // The probe, remembered from now on.
    build("a", false);
    remove_pycs(&work.path("a"));
    let (plain, _) = build("a", false);
    assert_eq!(plain, 1, "one job, one worker");
    remove_pycs(&work.path("a"));
    assert_eq!(build("a", true), (plain, (0, 3)), "an empty cache");
    assert_eq!(build("b", true), (plain, (3, 4)), "three hits and a miss");
    let mixed = pycs(&work.path("b"));
    remove_pycs(&work.path("b"));
    assert_eq!(build("b", true), (1, (4, 4)), "every file a hit: the confirming worker alone");
    remove_pycs(&work.path("b"));
    build("b", false);
    assert_eq!(mixed, pycs(&work.path("b")));
}

// A failure remembered by the state directory (a run over an unchanged tree reports it
// without starting Python) is stored in a cache that lacks it: one added after the build
// that failed. Another machine sharing the cache then starts no Python for the file either,
// and reports it as a real compile at its own path does; a run whose cache already holds
// the failure stores nothing. With one optimization level and with several.
#[test]
fn remembered_failures_reach_the_cache() {
    let Some(py) = harness::python_or_skip((3, 12), "cache::remembered_failures_reach_the_cache") else {
        return;
    };
    for levels in [&[][..], &["-o", "0", "-o", "2"]] {
        let work = Tree::new();
        let (python, starts) = work.counting_python(py);
        let cache = work.path("cache");
        for dir in ["a", "elsewhere/b"] {
            work.write(format!("{dir}/bad.py"), "def f(:\n    pass\n");
        }
        let run = |state: &str, dir: &str, extra: &[&str]| {
            work.hashpyc()
                .env("HASHPYC_STATE_DIR", work.path(state))
                .arg("compile")
                .arg("--python")
                .arg(&python)
                .args(levels)
                .args(extra)
                .arg(dir)
                .run()
        };
        let with_cache = ["-v", "--cache", cache.to_str().unwrap()];
        // Machine A fails without a cache, then builds with one: the failure is reported
        // from memory, and stored for every level of the request.
        run("state-a", "a", &[]).assert_code(1);
        let before = starts();
        let remembered = run("state-a", "a", &with_cache);
        remembered.assert_code(1);
        // One start, the worker confirming the counting launcher's remembered probe (a named
        // interpreter starts none: compile::a_remembered_failure_of_a_named_interpreter_starts_no_python);
        // nothing compiled: no hit, no miss (a compile would have looked the file up first).
        assert_eq!(
            starts(),
            before + 1,
            "{levels:?}: Python started but the confirming worker:\n{}",
            remembered.stderr
        );
        assert!(remembered.stderr.contains("a/bad.py:1:"), "{}", remembered.stderr);
        let stored = if levels.is_empty() { 1 } else { 2 };
        assert_eq!(local_counts(&remembered.stderr), (0, 0, stored), "{levels:?}: {}", remembered.stderr);
        assert_eq!(entry_files(&cache).len(), 1, "{levels:?}: {}", remembered.stderr);
        // Once there, it is not stored again.
        let again = run("state-a", "a", &with_cache);
        again.assert_code(1);
        assert_eq!(local_counts(&again.stderr), (0, 0, 0), "{levels:?}: {}", again.stderr);
        // Machine B: its own state directory (its one start is the interpreter's probe).
        let before = starts();
        let b = run("state-b", "elsewhere/b", &with_cache);
        b.assert_code(1);
        assert_eq!(starts(), before + 1, "{levels:?}: B compiled the file:\n{}", b.stderr);
        assert_eq!(local_counts(&b.stderr).0, stored, "{levels:?}: {}", b.stderr);
        let real = run("state-c", "elsewhere/b", &[]);
        real.assert_code(1);
        let messages = |stderr: &str| {
            stderr
                .lines()
                .filter(|l| l.contains("bad.py") || l.starts_with(' '))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(messages(&b.stderr), messages(&real.stderr), "{levels:?}");
        assert!(messages(&b.stderr).contains("elsewhere/b/bad.py:1:"), "{}", b.stderr);
    }
}

// Checked and unchecked pycs share entries; optimization levels and interpreters do not.
per_python!(entries_shared_by_modes_not_by_levels, min = (3, 9), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    work.write("a/m.py", "def f(x):\n    \"\"\"Doc.\"\"\"\n    assert x\n    return 1\n");
    work.write("b/m.py", "def f(x):\n    \"\"\"Doc.\"\"\"\n    assert x\n    return 1\n");
    let run = |dir: &str, extra: &[&str]| {
        work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).args(extra).arg(dir).run()
    };
    run("a", &[]).assert_code(0);
    let unchecked = run("b", &["--invalidation-mode", "unchecked-hash"]);
    unchecked.assert_code(0);
    assert_eq!(counts(&unchecked.stderr), (1, 1), "{}", unchecked.stderr);
    let levels = run("b", &["-o", "0", "-o", "2", "--invalidation-mode", "unchecked-hash"]);
    assert_eq!(counts(&levels.stderr), (0, 1), "level 2 is not in the cache yet: {}", levels.stderr);
    remove_pycs(&work.path("a"));
    let both = run("a", &["-o", "0", "-o", "2"]);
    // One file, both of its pycs from the cache.
    assert_eq!(counts(&both.stderr), (2, 1), "{}", both.stderr);
    // A level-1 build after -o 0 -o 2 is another request ([0, 1]): not a hit for level 1.
    remove_pycs(&work.path("a"));
    let one = run("a", &["-o", "1"]);
    assert_eq!(counts(&one.stderr), (0, 1), "{}", one.stderr);
    let cached = pycs(&work.path("a"));
    remove_pycs(&work.path("a"));
    work.hashpyc().arg("compile").python(py).args(["-q", "-o", "1", "a"]).run().assert_code(0);
    assert_eq!(cached, pycs(&work.path("a")));
    if let Some(other) = harness::pythons().values().find(|o| o.minor != py.minor && o.minor >= (3, 7)) {
        remove_pycs(&work.path("b"));
        let run = work.hashpyc().arg("compile").python(other).arg("--cache").arg(&cache).arg("b").run();
        assert_eq!(counts(&run.stderr), (0, 1), "another interpreter never hits: {}", run.stderr);
    }
});

fn entry_files(cache: &Path) -> Vec<PathBuf> {
    harness::files_with_suffix(&cache.join("v1"), "").into_iter().map(|p| cache.join("v1").join(p)).collect()
}

/// xorshift, for reproducible damage.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.max(1);
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

// Truncations, bit flips, deletions and garbage in the cache directory never change a pyc
// byte or the exit status: damaged entries are misses, counted and replaced.
per_python!(damaged_entries_are_misses, min = (3, 11), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    let lib = harness::stdlib_dir(py);
    let mut n = 0;
    for pkg in ["json", "email", "http"] {
        n += harness::copy_py_tree(&lib.join(pkg), &work.path(format!("src/{pkg}")), &|_| false);
    }
    work.write("src/bad.py", "x = = 1\n");
    let build = |cache_on: bool| {
        let mut cmd = work.hashpyc().arg("compile").python(py);
        if cache_on {
            cmd = cmd.arg("--cache").arg(&cache);
        }
        cmd.arg("src").run()
    };
    build(false).assert_code(1);
    let reference = pycs(&work.path("src"));
    remove_pycs(&work.path("src"));
    build(true).assert_code(1);
    assert_eq!(pycs(&work.path("src")), reference);
    let files = entry_files(&cache);
    assert!(files.len() >= n, "{} entries for {n} sources", files.len());
    let mut next = rng(0x5eed ^ u64::from(py.minor.1));
    for (round, what) in ["truncate", "flip", "delete", "garbage", "empty"].iter().enumerate() {
        for f in &files {
            if !next().is_multiple_of(3) || !f.exists() {
                continue;
            }
            let data = std::fs::read(f).unwrap();
            let damaged = match *what {
                "truncate" => data[..(next() as usize % data.len())].to_vec(),
                "flip" => {
                    let mut d = data.clone();
                    let i = next() as usize % d.len();
                    d[i] ^= 1 << (next() % 8);
                    d
                }
                "delete" => {
                    std::fs::remove_file(f).unwrap();
                    continue;
                }
                "garbage" => (0..data.len()).map(|_| next() as u8).collect(),
                _ => Vec::new(),
            };
            std::fs::write(f, damaged).unwrap();
        }
        // Junk that is no entry at all: a directory and a stray file where entries go.
        std::fs::create_dir_all(cache.join("v1/zz/not-an-entry")).unwrap();
        std::fs::write(cache.join("v1/zz/junk"), b"junk").unwrap();
        remove_pycs(&work.path("src"));
        let run = build(true);
        run.assert_code(1);
        assert_eq!(pycs(&work.path("src")), reference, "round {round} ({what}) changed pyc bytes");
        // Everything damaged was replaced: the next build is all hits.
        remove_pycs(&work.path("src"));
        let again = build(true);
        again.assert_code(1);
        let (from_cache, compiled) = counts(&again.stderr);
        assert_eq!(
            from_cache, compiled,
            "round {round} ({what}): damaged entries were replaced\n{}",
            again.stderr
        );
    }
    let stats = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
    assert!(v["tiers"]["local"]["damaged"].as_u64().unwrap() > 0, "{v}");

    // A read-only cache directory: hits still serve, stores are off, the build succeeds.
    remove_pycs(&work.path("src"));
    for f in entry_files(&cache) {
        if f.exists() && next().is_multiple_of(2) {
            std::fs::remove_file(&f).unwrap();
        }
    }
    let ro = |mode: u32| {
        let mut dirs = vec![cache.clone(), cache.join("v1")];
        dirs.extend(std::fs::read_dir(cache.join("v1")).unwrap().map(|e| e.unwrap().path()));
        for d in dirs {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    ro(0o555);
    // Root ignores permissions; a read-only flag then stands in for the read-only disk.
    let root = unsafe_is_root();
    let run = work
        .hashpyc()
        .arg("compile")
        .python(py)
        .arg("--cache")
        .arg(&cache)
        .args(if root { &["--cache-read-only"][..] } else { &[][..] })
        .arg("src")
        .run();
    ro(0o755);
    run.assert_code(1);
    assert_eq!(pycs(&work.path("src")), reference);
});

/// Every entry of a cache, relative to it, with its bytes.
fn entries(cache: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    entry_files(cache)
        .into_iter()
        .map(|f| (f.strip_prefix(cache).unwrap().to_path_buf(), std::fs::read(f).unwrap()))
        .collect()
}

// `--force` compiles everything and puts what it compiled in the cache, replacing the
// entries already there (a damaged one is otherwise replaced only when a build reads it):
// afterwards the cache holds, byte for byte, what a first build into an empty cache
// stores, and the pycs are those of a real compile.
// A cache directory that did not exist was made (CACHEDIR.TAG, stats.json, stats.lock) by
// every `compile --cache C` that opened it, also by one that stored nothing: a path that
// does not exist (`compile --cache C missing`, exit 2), a tree already fresh. Now it is
// made, and tagged, by the first entry stored; a run that stores nothing, a dry run
// (`compile -n`) and `check` (with `HASHPYC_CACHE` or `cache =` in a configuration) leave
// no directory, and the first run that stores makes a cache the next one hits.
#[test]
fn a_cache_directory_is_made_by_the_first_store_only() {
    let Some(py) = harness::any_python("cache::a_cache_directory_is_made_by_the_first_store_only") else {
        return;
    };
    let tree = Tree::new();
    harness::write_modules(&tree, "src", 3);
    let cache = tree.path("new/cache");
    let compile =
        |args: &[&str]| tree.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).args(args);
    let missing = compile(&["missing"]).run();
    missing.assert_code(2);
    assert!(missing.stderr.contains("`missing`: no such file or directory"), "{}", missing.stderr);
    compile(&["-n", "src"]).run().assert_code(0);
    tree.hashpyc().args(["check"]).python(py).arg("src").env("HASHPYC_CACHE", &cache).run().assert_code(1);
    assert!(!tree.path("new").exists(), "made by a run that stored nothing");
    // Fresh pycs (compiled without a cache): nothing to store.
    tree.hashpyc().args(["compile", "-q"]).python(py).arg("src").run().assert_code(0);
    compile(&["src"]).run().assert_code(0);
    tree.write("hashpyc.toml", format!("cache = {:?}\n", cache.to_str().unwrap()));
    tree.hashpyc().args(["check"]).python(py).arg("src").run().assert_code(0);
    compile(&["-n", "--force", "src"]).run().assert_code(0);
    std::fs::remove_file(tree.path("hashpyc.toml")).unwrap();
    assert!(!tree.path("new").exists(), "made by a run that stored nothing");
    // The first store makes it, tagged, with its statistics; the next build hits.
    compile(&["--force", "src"]).run().assert_code(0);
    assert!(cache.join("CACHEDIR.TAG").is_file() && cache.join("stats.json").is_file());
    assert_eq!(entry_files(&cache).len(), 3);
    remove_pycs(tree.root());
    let hit = compile(&["src"]).run();
    hit.assert_code(0);
    assert!(hit.stderr.contains("(3 from the cache"), "{}", hit.stderr);
}

#[test]
fn force_replaces_cache_entries() {
    let Some(py) = harness::python_or_skip((3, 12), "cache::force_replaces_cache_entries") else { return };
    let work = Tree::new();
    let lib = harness::stdlib_dir(py);
    for pkg in ["json", "email"] {
        harness::copy_py_tree(&lib.join(pkg), &work.path(format!("src/{pkg}")), &|_| false);
    }
    work.write("src/bad.py", "x = = 1\n");
    // Its path is also a constant: stored by path, with a marker under the content key.
    work.write("src/where.py", "WHERE = 'src/where.py'\n");
    // A state directory of its own for each build, so that none skips the file that
    // fails (its failure remembered) and each stores the same entries.
    let builds = std::cell::Cell::new(0);
    let build = |cache: &Path, extra: &[&str]| {
        builds.set(builds.get() + 1);
        work.hashpyc()
            .env("HASHPYC_STATE_DIR", work.path(format!("state-{}", builds.get())))
            .arg("compile")
            .python(py)
            .arg("--cache")
            .arg(cache)
            .args(extra)
            .arg("src")
            .run()
    };
    work.hashpyc().arg("compile").python(py).arg("src").run().assert_code(1);
    let reference = pycs(&work.path("src"));
    remove_pycs(&work.path("src"));
    // What a first build stores.
    build(&work.path("fresh"), &[]).assert_code(1);
    let fresh = entries(&work.path("fresh"));
    assert!(fresh.len() > 20, "{} entries", fresh.len());
    remove_pycs(&work.path("src"));
    let cache = work.path("cache");
    build(&cache, &[]).assert_code(1);
    assert!(entries(&cache) == fresh, "two first builds store the same entries");
    // Damage every entry, each its way.
    let mut next = rng(0xf0ce);
    for (i, f) in entry_files(&cache).iter().enumerate() {
        let mut data = std::fs::read(f).unwrap();
        match i % 3 {
            0 => data.truncate(next() as usize % data.len()),
            1 => {
                let at = next() as usize % data.len();
                data[at] ^= 1 << (next() % 8);
            }
            _ => data.iter_mut().for_each(|b| *b = next() as u8),
        }
        std::fs::write(f, data).unwrap();
    }
    let run = build(&cache, &["--force", "-v"]);
    run.assert_code(1);
    assert!(pycs(&work.path("src")) == reference, "--force wrote other pycs:\n{}", run.stderr);
    let after = entries(&cache);
    let kept: Vec<&PathBuf> = after.iter().filter(|e| !fresh.contains(e)).map(|(p, _)| p).collect();
    assert!(
        kept.is_empty(),
        "--force left {} of {} damaged entries: {kept:?}\n{}",
        kept.len(),
        after.len(),
        run.stderr
    );
    assert_eq!(after.len(), fresh.len(), "{}", run.stderr);
    // No temporary file is left beside them.
    let temps = harness::files_with_suffix(&cache, "")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect::<Vec<_>>();
    assert!(temps.is_empty(), "{temps:?}");
}

/// `(hits, misses, stores)` of the local tier from `compile -v`.
fn local_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr.lines().find(|l| l.starts_with("cache local ")).unwrap_or_else(|| panic!("{stderr}"));
    // `1 hit`, `2 hits`.
    let n = |one: &str, many: &str| -> u64 {
        let (head, _) = [one, many]
            .iter()
            .find_map(|what| line.split_once(&format!(" {what},")))
            .unwrap_or_else(|| panic!("{many}: {line}"));
        head.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (n("hit", "hits"), n("miss", "misses"), n("store", "stores"))
}

// Every statistics counter counts pycs, one per (source, interpreter, optimization level)
// as entries are keyed: a build into a missing or emptied cache misses and stores each pyc
// it compiles (as many as CPython's compileall writes, plus one per level for the file
// that does not compile), a build from the cache hits each, a changed file misses each of
// its levels; `cache stats` adds them up and its hit rate is hits / (hits + misses).
#[test]
fn stats_count_pycs() {
    let Some(py) = harness::python_or_skip((3, 12), "cache::stats_count_pycs") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    harness::write_modules(&work, "src", 7);
    work.write("src/bad.py", "x = = 1\n");
    let levels = ["-o", "0", "-o", "1", "-o", "2"];
    // What CPython writes for this tree at these levels.
    let out = py
        .cmd()
        .args([
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "checked-hash",
            "-o",
            "0",
            "-o",
            "1",
            "-o",
            "2",
        ])
        .arg(work.path("src"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let written = harness::files_with_suffix(&work.path("src"), ".pyc").len() as u64;
    assert_eq!(written, 7 * 3);
    let failed = 3;
    remove_pycs(&work.path("src"));
    // Each build with a state directory of its own, so that the failure is not remembered.
    let builds = std::cell::Cell::new(0);
    let build = || {
        builds.set(builds.get() + 1);
        remove_pycs(&work.path("src"));
        let run = work
            .hashpyc()
            .env("HASHPYC_STATE_DIR", work.path(format!("state-{}", builds.get())))
            .args(["compile", "-v"])
            .python(py)
            .args(levels)
            .arg("--cache")
            .arg(&cache)
            .arg("src")
            .run();
        run.assert_code(1);
        local_counts(&run.stderr)
    };
    let stats = || {
        let run = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
        run.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        let t = &v["tiers"]["local"];
        (t["hits"].as_u64().unwrap(), t["misses"].as_u64().unwrap(), t["stores"].as_u64().unwrap())
    };
    let all = written + failed;
    assert_eq!(build(), (0, all, all), "a build into a missing cache");
    assert_eq!(build(), (all, 0, 0), "a build from the cache");
    work.write("src/m00.py", "changed = True\n");
    assert_eq!(build(), (all - 3, 3, 3), "one file changed");
    assert_eq!(stats(), (2 * all - 3, all + 3, all + 3));
    let text = work.hashpyc().args(["cache", "stats", "--cache"]).arg(&cache).run();
    let rate = 100.0 * (2 * all - 3) as f64 / (3 * all) as f64;
    assert!(text.stdout.contains(&format!("({rate:.0}% hits)")), "{rate}: {}", text.stdout);
    // An emptied cache: misses again.
    work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run().assert_code(0);
    assert_eq!(build(), (0, all, all), "a build into an emptied cache");
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

// A cache directory on a full disk: hits still serve, stores stop after the first failure
// with one warning, and the build writes its pycs and exits as without a cache.
per_python!(full_cache_disk_never_fails_a_build, min = (3, 13), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    std::fs::create_dir(&cache).unwrap();
    // (Mode 755: a tmpfs's root is 1777 by default, a cache every user may write, which a
    // run warns of.)
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=755", "tmpfs"])
        .arg(&cache)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return harness::visible(
            "SKIPPED cache::full_cache_disk: cannot mount a small tmpfs here (needs root)",
        );
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(cache.clone());
    let lib = harness::stdlib_dir(py);
    harness::copy_py_tree(&lib.join("email"), &work.path("src/email"), &|_| false);
    let reference = {
        let run = work.hashpyc().arg("compile").python(py).args(["-q", "src"]).run();
        run.assert_code(0);
        let r = pycs(&work.path("src"));
        remove_pycs(&work.path("src"));
        r
    };
    let run = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run();
    run.assert_code(0);
    assert_eq!(pycs(&work.path("src")), reference);
    let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("No space left on device") || warnings[0].contains("no space"),
        "{}",
        run.stderr
    );
    // What fit is served next time; the rest is compiled; the bytes are the same.
    remove_pycs(&work.path("src"));
    let again = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run();
    again.assert_code(0);
    assert_eq!(pycs(&work.path("src")), reference);
    assert!(counts(&again.stderr).0 > 0, "some entries fit: {}", again.stderr);
});

// `cache prune` on a read-only cache counts only what it removed (nothing) and fails as
// `cache clean` does on the same directory: exit status 2 with the OS error.
per_python!(prune_of_a_read_only_cache_fails, min = (3, 14), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    std::fs::create_dir(&cache).unwrap();
    let root = unsafe_is_root();
    let mounted = root
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&cache)
            .status()
            .is_ok_and(|s| s.success());
    if root && !mounted {
        return harness::visible(
            "SKIPPED cache::prune_of_a_read_only_cache_fails: cannot mount a tmpfs as root here",
        );
    }
    struct Restore(PathBuf, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            if self.1 {
                let _ = Command::new("umount").arg(&self.0).status();
            }
        }
    }
    let _guard = Restore(cache.clone(), mounted);
    for i in 0..6 {
        work.write(format!("src/m{i}.py"), format!("VALUE = {i}\n"));
    }
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let before = entry_files(&cache);
    assert_eq!(before.len(), 6);
    // Read-only: the filesystem as root (who ignores permissions), else the directories.
    let dirs: Vec<PathBuf> =
        std::fs::read_dir(cache.join("v1")).unwrap().map(|e| e.unwrap().path()).collect();
    let set_dirs = |mode: u32| {
        for d in &dirs {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    if mounted {
        assert!(Command::new("mount").args(["-o", "remount,ro"]).arg(&cache).status().unwrap().success());
    } else {
        set_dirs(0o555);
    }
    let prune = work.hashpyc().args(["cache", "prune", "--max-size", "0", "--cache"]).arg(&cache).run();
    let clean = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run();
    if !mounted {
        set_dirs(0o755);
    }
    assert_eq!(entry_files(&cache), before, "nothing was removed");
    clean.assert_code(2);
    prune.assert_code(2);
    assert!(prune.stderr.contains("Removed 0 entries"), "{}", prune.stderr);
    // One line, the reason after the path; the same reason for both.
    let last = clean.stderr.lines().last().unwrap().trim();
    let cause = format!(": {}", last.rsplit_once(": ").unwrap().1);
    assert!(
        last.starts_with("error: ") && prune.stderr.contains(&cause),
        "{}\n{}",
        clean.stderr,
        prune.stderr
    );
});

// Another hashpyc pruning the cache to almost nothing, over and over, while four builds
// run at once: every build writes the same bytes and exits as it would without a cache.
per_python!(concurrent_prune_during_concurrent_builds, min = (3, 12), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    let lib = harness::stdlib_dir(py);
    for i in 0..4 {
        for pkg in ["json", "email", "asyncio"] {
            harness::copy_py_tree(&lib.join(pkg), &work.path(format!("t{i}/{pkg}")), &|_| false);
        }
        work.write(format!("t{i}/bad.py"), "def (:\n");
    }
    // References: each tree compiled without a cache (embedded paths differ per tree).
    let references: Vec<_> = (0..4)
        .map(|i| {
            let dir = format!("t{i}");
            work.hashpyc().arg("compile").python(py).args(["-q", &dir]).run().assert_code(1);
            let r = pycs(&work.path(&dir));
            remove_pycs(&work.path(&dir));
            r
        })
        .collect();
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("t0").run().assert_code(1);
    remove_pycs(&work.path("t0"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (stop, cache, root) = (stop.clone(), cache.clone(), work.root().to_path_buf());
        std::thread::spawn(move || {
            let mut prunes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let run = harness::Hashpyc::new(&root)
                    .args(["cache", "prune", "--max-size", "20K", "--cache"])
                    .arg(&cache)
                    .run();
                assert_eq!(run.code, Some(0), "{}", run.stderr);
                prunes += 1;
            }
            prunes
        })
    };
    let builds: Vec<_> = (0..4)
        .map(|i| {
            let (root, cache, path) = (work.root().to_path_buf(), cache.clone(), py.path.clone());
            std::thread::spawn(move || {
                harness::Hashpyc::new(&root)
                    .args(["compile", "-j", "1", "--cache-max-size", "50K", "--python"])
                    .arg(&path)
                    .arg("--cache")
                    .arg(&cache)
                    .arg(format!("t{i}"))
                    .run()
            })
        })
        .collect();
    for (i, b) in builds.into_iter().enumerate() {
        let run = b.join().unwrap();
        run.assert_code(1);
        let got = pycs(&work.path(format!("t{i}")));
        assert_eq!(got.len(), references[i].len());
        assert!(got == references[i], "build {i} wrote other bytes");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let prunes = pruner.join().unwrap();
    assert!(prunes > 0);
    let left: u64 =
        entry_files(&cache).iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    assert!(left < 400_000, "{left} bytes left after pruning");
});

// stats, prune (least recently used first; hits refresh recency), clean, sizes, the
// automatic limit, and refusing to clean what is not a cache.
per_python!(management_commands, min = (3, 12), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..30 {
        work.write(format!("src/m{i:02}.py"), format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]));
    }
    let cache_cmd = |args: &[&str]| work.hashpyc().arg("cache").args(args).arg("--cache").arg(&cache).run();
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let text = cache_cmd(&["stats"]);
    text.assert_code(0);
    assert!(text.stdout.contains("entries      30") && text.stdout.contains("30 stores"), "{}", text.stdout);
    // Age every entry, then hit five of them: they are now the most recently used.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400 * 30);
    for f in entry_files(&cache) {
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(old).unwrap();
    }
    for i in 0..5 {
        work.write(format!("again/m{i:02}.py"), format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]));
    }
    let hits = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("again").run();
    assert_eq!(counts(&hits.stderr), (5, 5), "{}", hits.stderr);
    let one = std::fs::metadata(&entry_files(&cache)[0]).unwrap().len().div_ceil(4096) * 4096;
    let pruned = cache_cmd(&["prune", "--max-size", &format!("{}", one * 5)]);
    pruned.assert_code(0);
    assert!(pruned.stderr.contains("Removed 25 entries"), "{}", pruned.stderr);
    remove_pycs(&work.path("src"));
    let after = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run();
    assert_eq!(counts(&after.stderr), (5, 30), "the recently hit entries survived: {}", after.stderr);
    let json = cache_cmd(&["stats", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["entries"], 30);
    assert_eq!(v["tiers"]["local"]["hits"], 10);
    for bad in ["lots", "-1", "1XB"] {
        let r = cache_cmd(&["prune", &format!("--max-size={bad}")]);
        r.assert_code(2);
        assert!(r.stderr.contains("is not a size"), "{}", r.stderr);
    }
    for ok in ["500MB", "1GiB", "1M", "0"] {
        cache_cmd(&["prune", "--max-size", ok]).assert_code(0);
    }
    assert!(entry_files(&cache).is_empty(), "--max-size 0 empties the cache");
    // The automatic limit: a build that stores more than --cache-max-size prunes after it.
    remove_pycs(&work.path("src"));
    work.hashpyc()
        .arg("compile")
        .python(py)
        .args(["--cache-max-size", "40K", "--cache"])
        .arg(&cache)
        .arg("src")
        .run()
        .assert_code(0);
    let left: u64 =
        entry_files(&cache).iter().map(|f| std::fs::metadata(f).unwrap().len().div_ceil(4096) * 4096).sum();
    assert!(left <= 40_000, "{left} bytes left over a 40K limit");
    let clean = cache_cmd(&["clean"]);
    clean.assert_code(0);
    assert!(entry_files(&cache).is_empty() && cache.join("CACHEDIR.TAG").exists());
    // Never clean something that is not a cache.
    work.write("precious/data.txt", "keep me");
    let refuse = work.hashpyc().args(["cache", "clean", "--cache"]).arg(work.path("precious")).run();
    refuse.assert_code(2);
    assert!(refuse.stderr.contains("does not look like a hashpyc bytecode cache"), "{}", refuse.stderr);
    assert!(work.path("precious/data.txt").exists());
    // Nor one that merely has a `v1/` (an API package): no command deletes, prunes or tags
    // it, and a build that names it as its cache compiles without one.
    work.write("api/v1/__init__.py", "");
    work.write("api/v1/ab/views.py", "x = 1\n");
    for args in [&["clean"][..], &["prune", "--max-size", "0"], &["stats"]] {
        let r = work.hashpyc().arg("cache").args(args).arg("--cache").arg(work.path("api")).run();
        r.assert_code(2);
        assert!(r.stderr.contains("does not look like a hashpyc bytecode cache"), "{}", r.stderr);
    }
    let build = work
        .hashpyc()
        .arg("compile")
        .python(py)
        .args(["--cache-max-size", "0", "--cache"])
        .arg(work.path("api"))
        .arg("src")
        .run();
    build.assert_code(0);
    assert!(build.stderr.contains("files that are not hashpyc's"), "{}", build.stderr);
    assert!(work.path("api/v1/ab/views.py").is_file() && work.path("api/v1/__init__.py").is_file());
    assert!(!work.path("api/CACHEDIR.TAG").exists());
    let missing = work.hashpyc().args(["cache", "stats"]).env_remove("HASHPYC_CACHE").run();
    missing.assert_code(2);
});

// The automatic limit keeps the entries the build used, its hits as well as what it stored
// (hits refresh an entry's time only hourly), up to the limit; `-v` says what it removed.
per_python!(automatic_prune_keeps_what_the_build_used, min = (3, 13), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    let module = |i: usize| format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]);
    for i in 0..30 {
        work.write(format!("old/m{i:02}.py"), module(i));
    }
    let build = |dir: &str, extra: &[&str]| {
        work.hashpyc()
            .arg("compile")
            .python(py)
            .arg("-v")
            .args(extra)
            .arg("--cache")
            .arg(&cache)
            .arg(dir)
            .run()
    };
    build("old", &[]).assert_code(0);
    // Written half an hour ago: hits do not refresh them.
    let earlier = std::time::SystemTime::now() - std::time::Duration::from_secs(1800);
    for f in entry_files(&cache) {
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(earlier).unwrap();
    }
    // Ten hits and ten new entries, with a limit whose 90% holds twenty entries.
    for i in 0..10 {
        work.write(format!("new/m{i:02}.py"), module(i));
        work.write(format!("new/n{i:02}.py"), module(100 + i));
    }
    let one = std::fs::metadata(&entry_files(&cache)[0]).unwrap().len().div_ceil(4096) * 4096;
    let limit = (one * 41).div_ceil(2 * 9) * 10;
    let run = build("new", &["--cache-max-size", &limit.to_string()]);
    run.assert_code(0);
    assert_eq!(counts(&run.stderr), (10, 20), "{}", run.stderr);
    let left = entry_files(&cache);
    assert_eq!(left.len(), 20, "{}", run.stderr);
    remove_pycs(&work.path("new"));
    let again = build("new", &[]);
    assert_eq!(counts(&again.stderr), (20, 20), "the build's own entries were kept:\n{}", again.stderr);
    let line = run.stderr.lines().find(|l| l.contains("pruned")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(line.contains("removed 20 entries") && line.contains("20 entries left"), "{line}");
});

// A build's hits on entries stored within the hour left no trace (reads refreshed an
// entry's time only when it was over an hour old, and the build marked what it used only
// when it pruned itself), so `cache prune` after building A, then B, then A again from the
// cache evicted A's entries, read last, and kept B's, never read. Now a hit on an entry
// marked before the last build mostly new to the cache (B's) marks it used: A's stay.
#[test]
fn prune_keeps_what_the_last_build_read() {
    let Some(py) = harness::any_python("cache::prune_keeps_what_the_last_build_read") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..50 {
        work.write(format!("A/a{i}.py"), format!("a = {i}\n"));
        work.write(format!("B/b{i}.py"), format!("b = {i}\n"));
    }
    let build = |dir: &str| work.hashpyc().args(["compile", "--cache"]).arg(&cache).python(py).arg(dir).run();
    build("A").assert_code(0);
    let a_entries = entry_files(&cache);
    assert_eq!(a_entries.len(), 50);
    // Stored ten minutes ago, instead of waiting between the builds.
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    for f in &a_entries {
        std::fs::File::options().write(true).open(f).unwrap().set_modified(then).unwrap();
    }
    build("B").assert_code(0);
    let b_entries: Vec<PathBuf> =
        entry_files(&cache).into_iter().filter(|f| !a_entries.contains(f)).collect();
    assert_eq!(b_entries.len(), 50);
    std::fs::remove_dir_all(work.path("A/__pycache__")).unwrap();
    let again = build("A");
    again.assert_code(0);
    assert_eq!(counts(&again.stderr), (50, 50), "{}", again.stderr);
    // Room for A's entries and half the smallest of B's (sizes as pruning counts them).
    let size = |f: &PathBuf| std::fs::metadata(f).unwrap().blocks() * 512;
    let limit = a_entries.iter().map(size).sum::<u64>() + b_entries.iter().map(size).min().unwrap() / 2;
    let prune = work
        .hashpyc()
        .args(["cache", "prune", "--max-size", &limit.to_string(), "--cache"])
        .arg(&cache)
        .run();
    prune.assert_code(0);
    assert!(a_entries.iter().all(|f| f.exists()), "{}", prune.stderr);
    assert!(b_entries.iter().all(|f| !f.exists()), "{}", prune.stderr);
    std::fs::remove_dir_all(work.path("A/__pycache__")).unwrap();
    let last = build("A");
    last.assert_code(0);
    assert_eq!(counts(&last.stderr), (50, 50), "{}", last.stderr);
}

// The automatic limit also keeps what the build found already stored without reading it
// for a pyc: a failure remembered by the state directory (reported without a lookup, then
// stored only where the cache lacks it) and, under `--force`, the path-dependent marker
// stored only where no entry is. Those entries were written before the bodies no build has
// used since, all within the hour (so reads do not refresh them): they stay and the unused
// bodies go, and another machine's build (a fresh state directory) still gets the files
// from the cache, starting no Python but the interpreter's probe.
#[test]
fn automatic_prune_keeps_what_the_build_confirmed() {
    let test = "cache::automatic_prune_keeps_what_the_build_confirmed";
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let module = |i: usize| format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]);
    for force in [false, true] {
        let work = Tree::new();
        let (python, starts) = work.counting_python(py);
        let cache = work.path("cache");
        let build = |state: &str, dir: &str, extra: &[&str]| {
            work.hashpyc()
                .env("HASHPYC_STATE_DIR", work.path(state))
                .args(["compile", "-v", "--python"])
                .arg(&python)
                .args(extra)
                .arg("--cache")
                .arg(&cache)
                .arg(dir)
                .run()
        };
        let status = if force {
            // Its path is also a constant: stored by path, with a marker under the content key.
            work.write("used/where.py", "WHERE = 'used/where.py'\n");
            0
        } else {
            for i in 0..4 {
                work.write(format!("used/bad{i}.py"), format!("def f{i}(:\n    pass\n"));
            }
            1
        };
        for i in 0..10 {
            work.write(format!("unused/m{i:02}.py"), module(i));
        }
        build("state", "used", &[]).assert_code(status);
        let mut used = entry_files(&cache);
        used.sort();
        build("state", "unused", &[]).assert_code(0);
        let unused: Vec<PathBuf> = entry_files(&cache).into_iter().filter(|f| !used.contains(f)).collect();
        assert_eq!((used.len(), unused.len()), (if force { 2 } else { 4 }, 10), "force {force}");
        let now = std::time::SystemTime::now();
        for (files, minutes) in [(&used, 40), (&unused, 30)] {
            for f in files {
                let at = now - std::time::Duration::from_secs(60 * minutes);
                std::fs::File::options().write(true).open(f).unwrap().set_modified(at).unwrap();
            }
        }
        // Room for the used entries and half the smallest unused one (sizes as pruning
        // counts them: blocks on disk).
        let size = |f: &PathBuf| std::fs::metadata(f).unwrap().blocks() * 512;
        let needed: u64 = used.iter().map(size).sum();
        let smallest = unused.iter().map(size).min().unwrap();
        assert!(smallest > 0, "entries take no blocks here");
        let limit = (needed + smallest / 2).div_ceil(9) * 10;
        let mut extra = vec!["--cache-max-size".to_string(), limit.to_string()];
        if force {
            extra.push("--force".into());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let run = build("state", "used", &extra);
        run.assert_code(status);
        assert!(run.stderr.contains("pruned: removed 10 entries"), "force {force}: {}", run.stderr);
        let mut left = entry_files(&cache);
        left.sort();
        assert_eq!(left, used, "force {force}: the entries the build used were pruned:\n{}", run.stderr);
        remove_pycs(&work.path("used"));
        let before = starts();
        let other = build("state-other", "used", &[]);
        other.assert_code(status);
        assert_eq!(starts(), before + 1, "force {force}: a file was compiled:\n{}", other.stderr);
    }
}

// A group-writable cache directory is shared: new entries and directories are writable by
// the group whatever the umask.
per_python!(group_writable_cache_is_shared, min = (3, 13), |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o2775)).unwrap();
    work.write("src/m.py", "x = 1\n");
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let entries = entry_files(&cache);
    assert_eq!(entries.len(), 1);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&entries[0]), 0o664);
    assert_eq!(mode(entries[0].parent().unwrap()) & 0o775, 0o775);
    // The statistics too: another user's build adds to them rather than losing them.
    for own in ["stats.json", "stats.lock"] {
        assert_eq!(mode(&cache.join(own)), mode(&entries[0]), "{own}");
    }
});

// The cache is off by default, and --no-cache / HASHPYC_NO_CACHE turn it off.
per_python!(cache_is_opt_in, min = (3, 12), |py: &Python| {
    let work = Tree::new();
    work.write("src/m.py", "x = 1\n");
    work.hashpyc().arg("compile").python(py).arg("src").run().assert_code(0);
    assert!(!work.path("cache").exists());
    let cache = work.path("cache");
    let off = work
        .hashpyc()
        .arg("compile")
        .python(py)
        .env("HASHPYC_CACHE", &cache)
        .args(["-f", "--no-cache", "src"])
        .run();
    off.assert_code(0);
    assert!(!cache.exists());
    // -v says that a cache given is off, and by what: --no-cache, HASHPYC_NO_CACHE, for a
    // directory from a flag, its variable or a key, and a URL (its password never shown).
    work.write("hashpyc.toml", "cache = \"cache\"\n");
    for (args, env, want) in [
        (
            &["--no-cache", "--cache", "cache"][..],
            None,
            "cache: off (--no-cache on the command line): the directory `",
        ),
        (
            &["--no-cache"][..],
            Some(("HASHPYC_CACHE", "cache")),
            "cache: off (--no-cache on the command line): the directory `",
        ),
        // The variable stands for --no-cache (030eb1c): the key is not applied, as with the
        // flag, and its own line says by what.
        (
            &[][..],
            Some(("HASHPYC_NO_CACHE", "1")),
            "setting: `cache = \"cache\"` from `hashpyc.toml` line 1 (replaced by HASHPYC_NO_CACHE)",
        ),
        (
            &["--cache-url", "http://u:pw-secret@127.0.0.1:9/x"][..],
            Some(("HASHPYC_NO_CACHE", "yes")),
            "cache: off (HASHPYC_NO_CACHE): `http://127.0.0.1:9/x` is not used",
        ),
    ] {
        let mut cmd = work.hashpyc().arg("compile").python(py).args(["-v", "-f"]).args(args);
        if let Some((k, v)) = env {
            cmd = cmd.env(k, v);
        }
        let run = cmd.arg("src").run();
        run.assert_code(0);
        assert!(
            run.stderr.contains(want) && !run.stderr.contains("pw-secret"),
            "{args:?} {env:?}: {}",
            run.stderr
        );
        assert!(!cache.exists(), "{args:?} {env:?}");
    }
    std::fs::remove_file(work.path("hashpyc.toml")).unwrap();
    let env = work.hashpyc().arg("compile").python(py).env("HASHPYC_CACHE", &cache).args(["-f", "src"]).run();
    env.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 1);
    // An unusable cache never fails a build.
    work.write("file-not-dir", "x");
    let bad = work.hashpyc().arg("compile").python(py).args(["-f", "--cache", "file-not-dir", "src"]).run();
    bad.assert_code(0);
    assert!(
        bad.stderr.contains("warning: cannot use") && bad.stderr.contains("compiling without it"),
        "{}",
        bad.stderr
    );
    // A file where a directory above the cache should be is named (the system says only
    // "Not a directory"), by a build and by the cache commands.
    let below =
        work.hashpyc().arg("compile").python(py).args(["-f", "--cache", "file-not-dir/sub", "src"]).run();
    below.assert_code(0);
    assert!(
        below.stderr.contains("file-not-dir` is not a directory; compiling without it"),
        "{}",
        below.stderr
    );
    for cmd in [&["cache", "stats"][..], &["cache", "prune", "--max-size", "1MB"][..]] {
        let run = work.hashpyc().args(cmd).args(["--cache", "file-not-dir/sub/deeper"]).run();
        run.assert_code(2);
        assert!(run.stderr.contains("`file-not-dir` is not a directory"), "{cmd:?}: {}", run.stderr);
    }
});

// The cache's variables that are not a flag's: empty is unset, as for every other variable
// (a CI file's `HASHPYC_CACHE_TIMEOUT: ${{ vars.TIMEOUT }}` with no such value), and a
// value out of range is an error naming it, never a panic (1e30 s is no Duration).
per_python!(cache_variables_empty_or_out_of_range, min = (3, 12), |py: &Python| {
    let work = Tree::new();
    work.write("src/m.py", "x = 1\n");
    let cache = work.path("cache");
    let build = |vars: &[(&str, &str)]| {
        std::fs::remove_dir_all(&cache).ok();
        let mut cmd = work.hashpyc().arg("compile").python(py).args(["-f", "--cache"]).arg(&cache);
        for (k, v) in vars {
            cmd = cmd.env(k, v);
        }
        let run = cmd.arg("src").run();
        (run, entries(&cache))
    };
    let (run, unset) = build(&[]);
    run.assert_code(0);
    assert_eq!(unset.len(), 1);
    let vars = ["HASHPYC_CACHE_COMPRESSION", "HASHPYC_CACHE_TIMEOUT", "HASHPYC_CACHE_UPLOAD_WAIT"];
    for var in vars {
        let (run, empty) = build(&[(var, "")]);
        run.assert_code(0);
        assert!(empty == unset, "{var}= gave other entries: {}", run.stderr);
    }
    let (run, zstd) = build(&[("HASHPYC_CACHE_COMPRESSION", "zstd")]);
    run.assert_code(0);
    assert!(zstd != unset, "HASHPYC_CACHE_COMPRESSION is read");
    for var in &vars[1..] {
        for bad in ["0", "-1", "1e30", "inf", "NaN", "86401", "two"] {
            let (run, _) = build(&[(var, bad)]);
            run.assert_code(2);
            let want = format!(
                "error: invalid {var} `{bad}`: expected a number of seconds, more than 0 and at most 86400 (a day)\n"
            );
            assert_eq!(run.stderr, want);
        }
        let (run, _) = build(&[(var, "86400")]);
        run.assert_code(0);
        // Whitespace around the number is removed, as around the URL and the token; a
        // value of whitespace alone is no number.
        let (run, _) = build(&[(var, " 3\n")]);
        run.assert_code(0);
        let (run, _) = build(&[(var, " ")]);
        run.assert_code(2);
    }
});

/// A checkout for the CI recipes: `src/` and a venv with a package, at `dir`.
fn checkout(py: &Python, dir: &Path) {
    for (rel, text) in [
        ("src/app/__init__.py", ""),
        ("src/app/main.py", "import json\n\ndef main():\n    return json.dumps(1)\n"),
    ] {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let out = py.cmd().args(["-m", "venv", "--without-pip", ".venv"]).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pythonx = std::fs::read_dir(dir.join(".venv/lib")).unwrap().next().unwrap().unwrap().path();
    harness::copy_py_tree(
        &harness::stdlib_dir(py).join("json"),
        &pythonx.join("site-packages/json_copy"),
        &|_| false,
    );
}

// The CI recipes' `hashpyc compile` lines, run as written: a first run fills the cache, the
// cache directory is carried over (as actions/cache and GitLab's cache do), and a second run
// in a checkout at another path writes everything from it, byte-identical to a real compile.
per_python!(ci_recipes_replayed, min = (3, 11), |py: &Python| {
    let bin = Tree::new();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_hashpyc"), bin.path("hashpyc")).unwrap();
    let path = format!("{}:{}", bin.root().display(), std::env::var("PATH").unwrap_or_default());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, prefix, cache_rel) in [
        ("examples/ci/github-actions.yml", "- run: ", "home/.cache/hashpyc-bytecode"),
        ("examples/ci/gitlab-ci.yml", "- ", "project/.hashpyc-bytecode"),
    ] {
        let yaml = std::fs::read_to_string(repo.join(file)).unwrap();
        let line = yaml
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix) && l.contains("hashpyc compile"))
            .unwrap_or_else(|| panic!("{file}: no `hashpyc compile` step"))
            .trim_start_matches(prefix)
            .to_string();
        let gitlab_cache = yaml.contains("HASHPYC_CACHE: \"$CI_PROJECT_DIR/.hashpyc-bytecode\"");
        let runs: Vec<Tree> = (0..2).map(|_| Tree::new()).collect();
        for (i, run) in runs.iter().enumerate() {
            let project = run.path(if i == 0 { "project" } else { "elsewhere/deeper/project" });
            std::fs::create_dir_all(&project).unwrap();
            checkout(py, &project);
            // The repository's pyproject.toml, as the recipe's comment shows it.
            let pyproject: String = yaml
                .lines()
                .skip_while(|l| l.trim() != "#   [tool.hashpyc]")
                .take_while(|l| l.starts_with("#   "))
                .map(|l| format!("{}\n", &l["#   ".len()..]))
                .collect();
            assert!(pyproject.contains("python = "), "{file}: no [tool.hashpyc] in its comment");
            std::fs::write(project.join("pyproject.toml"), pyproject).unwrap();
            if i == 1 {
                // Carry the cache directory over from the first run, to where this run's
                // recipe looks for it.
                let from = runs[0].path(cache_rel);
                let to = if cache_rel.starts_with("home") {
                    run.path(cache_rel)
                } else {
                    project.join(".hashpyc-bytecode")
                };
                std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                assert!(Command::new("cp").arg("-a").arg(&from).arg(&to).status().unwrap().success());
            }
            let mut cmd = Command::new("sh");
            cmd.arg("-c")
                .arg(&line)
                .current_dir(&project)
                .env("PATH", &path)
                .env("HOME", run.path("home"))
                .env("CI_PROJECT_DIR", &project)
                .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
                .env("NO_COLOR", "1")
                .env_remove("HASHPYC_CACHE");
            if gitlab_cache {
                cmd.env("HASHPYC_CACHE", project.join(".hashpyc-bytecode"));
            }
            harness::guard_network(&mut cmd);
            let out = cmd.output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{file} run {i}: {line}\n{stderr}");
            let (from_cache, compiled) = counts(&stderr);
            if i == 0 {
                assert_eq!(from_cache, 0, "{stderr}");
            } else {
                assert_eq!(from_cache, compiled, "{file}: the second run is all from the cache\n{stderr}");
                let cached = pycs(&project);
                remove_pycs(&project);
                let real = harness::Hashpyc::new(&project)
                    .args(["compile", "-q", "--python", ".venv/bin/python", "src", ".venv/lib"])
                    .run();
                real.assert_code(0);
                assert_eq!(cached, pycs(&project), "{file}: cached pycs equal a real compile");
            }
        }
    }
});

// `cache stats --format` describes the statistics, not `inspect`'s pycs: text is labelled
// lines, json is one object (as `cache stats` prints, checked against its own output).
#[test]
fn stats_format_help_describes_stats() {
    let work = Tree::new();
    let help = work.hashpyc().args(["cache", "stats", "--help"]).run();
    help.assert_code(0);
    // Not inspect's words for its own formats.
    assert!(
        !help.stdout.contains("labelled lines per pyc") && !help.stdout.contains("JSON Lines"),
        "{}",
        help.stdout
    );
    let cache = work.path("cache");
    work.write("src/m.py", "x = 1\n");
    let py = harness::pythons().values().next_back().expect("a CPython");
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let json = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    for k in &keys {
        assert!(help.stdout.contains(&format!("`{k}`")), "--help names `{k}`: {}", help.stdout);
    }
}

// A cache directory no build has created yet is an empty cache for the cache commands
// (stats: 0 entries, prune and clean: nothing to do), each with a note and exit 0, and
// nothing created; a file in its place or an unreadable directory stays an error naming
// the path and the reason.
#[test]
fn cache_commands_on_a_missing_directory() {
    let work = Tree::new();
    work.write("file", "not a directory\n");
    let cmd =
        |args: &[&str], dir: &Path| work.hashpyc().arg("cache").args(args).arg("--cache").arg(dir).run();
    for missing in [work.path("nope"), work.path("nope/deeper")] {
        let shown = missing.display().to_string();
        let text = cmd(&["stats"], &missing);
        text.assert_code(0);
        assert!(
            text.stdout.contains("entries      0") && text.stdout.contains("0 B on disk"),
            "{}",
            text.stdout
        );
        assert!(text.stderr.contains(&format!("`{shown}` does not exist yet; 0 entries")), "{}", text.stderr);
        let json = cmd(&["stats", "--format", "json"], &missing);
        json.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
        assert_eq!(
            (v["entries"].as_u64(), v["bytes"].as_u64(), v["exists"].as_bool()),
            (Some(0), Some(0), Some(false))
        );
        for (verb, what) in [("prune", "nothing to prune"), ("clean", "nothing to clean")] {
            let args: &[&str] = if verb == "prune" { &["prune", "--max-size", "0"] } else { &["clean"] };
            let r = cmd(args, &missing);
            r.assert_code(0);
            assert!(r.stderr.contains(&format!("`{shown}` does not exist yet; {what}")), "{}", r.stderr);
        }
        assert!(!work.path("nope").exists(), "no command creates the directory");
    }
    // The control: a cache a build created exists.
    work.write("src/m.py", "x = 1\n");
    let py = harness::pythons().values().next_back().expect("a CPython");
    let cache = work.path("cache");
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let json = cmd(&["stats", "--format", "json"], &cache);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!((v["entries"].as_u64(), v["exists"].as_bool()), (Some(1), Some(true)), "{v}");
    // Real errors stay errors: a file, a path under a file, a directory that cannot be read.
    let mut bad = vec![(work.path("file"), "ot a directory"), (work.path("file/sub"), "ot a directory")];
    let locked = work.path("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if !unsafe_is_root() {
        bad.push((locked.join("cache"), "permission denied"));
    }
    for (path, reason) in &bad {
        for args in [&["stats"][..], &["prune", "--max-size", "0"], &["clean"]] {
            let r = cmd(args, path);
            r.assert_code(2);
            assert!(
                r.stderr.contains(&format!("cannot use `{}` as the bytecode cache", path.display()))
                    && r.stderr.contains(reason),
                "{args:?}: {}",
                r.stderr
            );
        }
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(work.path("file").is_file());
}

// `compile --cache FILE` (a file where the directory should be) says why it goes on without
// the cache as `cache stats` does: it is not a directory (not "File exists", the raw error
// of creating a directory there); read-only alike, and the file is left as it was.
#[test]
fn compile_says_a_file_is_not_a_directory() {
    let work = Tree::new();
    let file = work.write("file", "not a directory\n");
    work.write("src/m.py", "x = 1\n");
    let py = harness::pythons().values().next_back().expect("a CPython");
    let stats = work.hashpyc().args(["cache", "stats", "--cache"]).arg(&file).run();
    stats.assert_code(2);
    // One line, the reason after the path, as every error.
    assert_eq!(stats.stderr.lines().count(), 1, "{}", stats.stderr);
    let reason = stats.stderr.trim().split_once("as the bytecode cache: ").unwrap().1.to_string();
    assert!(reason.contains("not a directory"), "{}", stats.stderr);
    for extra in [&[][..], &["--cache-read-only"]] {
        let build =
            work.hashpyc().arg("compile").python(py).args(extra).arg("--cache").arg(&file).arg("src").run();
        build.assert_code(0);
        let warning =
            format!("cannot use `{}` as the bytecode cache: {reason}; compiling without it", file.display());
        assert!(build.stderr.contains(&warning), "{extra:?}: {}", build.stderr);
        assert!(!build.stderr.contains("File exists"), "{}", build.stderr);
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory\n");
    assert_eq!(pycs(&work.path("src")).len(), 1);
}

// An existing empty directory (a BuildKit cache mount's target before the first build, a
// `mkdir`) is an empty cache for the cache commands, as it is for `compile`: stats shows 0
// entries (`"exists": true`), prune and clean have nothing to do, each with a note and exit
// 0, and nothing is written into it. One file that is not hashpyc's makes it a directory
// the commands refuse, and leave as it was.
#[test]
fn cache_commands_on_an_empty_directory() {
    let work = Tree::new();
    let empty = work.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let cmd =
        |args: &[&str], dir: &Path| work.hashpyc().arg("cache").args(args).arg("--cache").arg(dir).run();
    let shown = empty.display().to_string();
    let text = cmd(&["stats"], &empty);
    text.assert_code(0);
    assert!(text.stdout.contains("entries      0") && text.stdout.contains("0 B on disk"), "{}", text.stdout);
    assert!(text.stderr.contains(&format!("note: `{shown}` is empty; 0 entries")), "{}", text.stderr);
    let json = cmd(&["stats", "--format", "json"], &empty);
    json.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(
        (v["entries"].as_u64(), v["bytes"].as_u64(), v["exists"].as_bool()),
        (Some(0), Some(0), Some(true)),
        "{v}"
    );
    for (args, what) in
        [(&["prune", "--max-size", "0"][..], "nothing to prune"), (&["clean"], "nothing to clean")]
    {
        let r = cmd(args, &empty);
        r.assert_code(0);
        assert!(r.stderr.contains(&format!("note: `{shown}` is empty; {what}")), "{}", r.stderr);
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0, "nothing was written into it");
    // The first build makes it a cache, which the commands then manage.
    work.write("src/m.py", "x = 1\n");
    let py = harness::pythons().values().next_back().expect("a CPython");
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&empty).arg("src").run().assert_code(0);
    let json = cmd(&["stats", "--format", "json"], &empty);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!((v["entries"].as_u64(), v["exists"].as_bool()), (Some(1), Some(true)), "{v}");
    // A directory holding one file of its own is not empty: refused and left alone.
    let other = work.path("other");
    work.write("other/.keep", "");
    for args in [&["stats"][..], &["prune", "--max-size", "0"], &["clean"]] {
        let r = cmd(args, &other);
        r.assert_code(2);
        assert!(r.stderr.contains("does not look like a hashpyc bytecode cache"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(std::fs::read_dir(&other).unwrap().count(), 1);
    assert!(work.path("other/.keep").is_file());
}

/// A project whose cache holds six entries, and the bytes one of them takes on disk.
fn project_with_a_cache(py: &Python) -> (Tree, PathBuf, u64) {
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..6 {
        work.write(format!("src/m{i}.py"), format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]));
    }
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let sizes: Vec<u64> =
        entry_files(&cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).collect();
    assert_eq!(sizes.len(), 6);
    assert!(sizes.iter().all(|s| *s == sizes[0]), "{sizes:?}");
    (work, cache, sizes[0])
}

/// `cache prune` without `--max-size`, from the project, with `env` set.
fn prune_without_a_size(work: &Tree, cache: &Path, env: &[(&str, String)]) -> harness::Run {
    let mut cmd =
        work.hashpyc().args(["cache", "prune", "--cache"]).arg(cache).env_remove("HASHPYC_CACHE_MAX_SIZE");
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd.run()
}

// `cache prune` without `--max-size` prunes to the limit `compile --cache` applies; here
// `HASHPYC_CACHE_MAX_SIZE`, which beats the file's `cache-max-size` and loses to the flag,
// as for compile. The output says which limit it used.
#[test]
fn prune_takes_the_size_from_the_environment() {
    let py = harness::pythons().values().next_back().expect("a CPython");
    let (work, cache, one) = project_with_a_cache(py);
    work.write("pyproject.toml", format!("[tool.hashpyc]\ncache-max-size = {}\n", one * 5));
    let env = [("HASHPYC_CACHE_MAX_SIZE", (one * 4).to_string())];
    let r = prune_without_a_size(&work, &cache, &env);
    r.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 4, "{}", r.stderr);
    assert!(r.stderr.contains("Removed 2 entries"), "{}", r.stderr);
    let limit = format!("limit {:.1} KiB (HASHPYC_CACHE_MAX_SIZE)", (one * 4) as f64 / 1024.0);
    assert!(r.stderr.contains(&limit), "{limit}: {}", r.stderr);
    let flag = work
        .hashpyc()
        .args(["cache", "prune", "--max-size", &(one * 3).to_string(), "--cache"])
        .arg(&cache)
        .env("HASHPYC_CACHE_MAX_SIZE", (one * 4).to_string())
        .run();
    flag.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 3, "{}", flag.stderr);
    assert!(flag.stderr.contains("(--max-size)"), "{}", flag.stderr);
}

// ... the file's `cache-max-size` (found as for compile, with `--cache` given or not), named
// with its line.
#[test]
fn prune_takes_the_size_from_the_configuration() {
    let py = harness::pythons().values().next_back().expect("a CPython");
    let (work, cache, one) = project_with_a_cache(py);
    work.write(
        "pyproject.toml",
        format!("[tool.hashpyc]\ncache = \"cache\"\ncache-max-size = \"{}\"\n", one * 4),
    );
    let r = prune_without_a_size(&work, &cache, &[]);
    r.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 4, "{}", r.stderr);
    let limit = format!("limit {:.1} KiB (`cache-max-size` in `", (one * 4) as f64 / 1024.0);
    assert!(
        r.stderr.contains(&limit) && r.stderr.contains("pyproject.toml` line 3)"),
        "{limit}: {}",
        r.stderr
    );
    // Without `--cache`: the file names the directory too.
    work.write(
        "pyproject.toml",
        format!("[tool.hashpyc]\ncache = \"cache\"\ncache-max-size = {}\n", one * 2),
    );
    let r = work
        .hashpyc()
        .args(["cache", "prune"])
        .env_remove("HASHPYC_CACHE")
        .env_remove("HASHPYC_CACHE_MAX_SIZE")
        .run();
    r.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 2, "{}", r.stderr);
    // `--no-config` leaves the file out: the default keeps them.
    let r = work
        .hashpyc()
        .args(["cache", "prune", "--no-config", "--cache"])
        .arg(&cache)
        .env_remove("HASHPYC_CACHE_MAX_SIZE")
        .run();
    r.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 2, "{}", r.stderr);
    assert!(r.stderr.contains("limit 2.0 GiB (the default"), "{}", r.stderr);
}

// ... else the default, 2GiB, that of `--cache-max-size`: the entries stay, and the output
// says the limit is the default.
#[test]
fn prune_takes_the_default_size() {
    let py = harness::pythons().values().next_back().expect("a CPython");
    let (work, cache, _) = project_with_a_cache(py);
    work.write("hashpyc.toml", "optimize = 0\n");
    let r = prune_without_a_size(&work, &cache, &[]);
    r.assert_code(0);
    assert_eq!(entry_files(&cache).len(), 6, "{}", r.stderr);
    let help = work.hashpyc().args(["compile", "--help"]).run();
    let default = help.stdout.split("--cache-max-size").nth(1).and_then(|s| s.split("[default: ").nth(1));
    let default = default.and_then(|s| s.split(']').next()).unwrap_or_else(|| panic!("{}", help.stdout));
    assert_eq!(default, "2GiB", "the default compile applies");
    assert!(r.stderr.contains("Removed 0 entries (0 B); 6 entries left"), "{}", r.stderr);
    assert!(r.stderr.contains("limit 2.0 GiB (the default, as for `compile --cache`)"), "{}", r.stderr);
}

// A failure that is not the source's — here a MemoryError because the interpreter ran under
// a memory limit (`ulimit -v`, as a starved CI runner) — is reported, but neither stored in
// the cache nor remembered by the state directory: the next build with memory to spare,
// with a fresh state directory and with the same one, compiles the file. A syntax error in
// the same build is stored and served from the cache as before.
per_python!(failures_of_the_moment_are_not_cached, |py: &Python| {
    let work = Tree::new();
    let cache = work.path("cache");
    let mut big = String::from("def f():\n");
    for i in 0..100_000 {
        big.push_str(&format!("    a{} = b{} + {i}\n", i % 50, i % 70));
    }
    work.write("src/big.py", &big);
    work.write("src/bad.py", "x = = 1\n");
    let starved = work.write_executable(
        "bin/starved-python",
        format!("#!/bin/sh\nulimit -v 250000\nexec '{}' \"$@\"\n", py.path.display()),
    );
    let big_pyc = work.path(format!("src/__pycache__/big.cpython-{}{}.pyc", py.minor.0, py.minor.1));
    let run = |python: &Path, state: &str, cache_on: bool| {
        let mut cmd = work.hashpyc().env("HASHPYC_STATE_DIR", work.path(state)).arg("compile").arg("-v");
        if cache_on {
            cmd = cmd.arg("--cache").arg(&cache);
        }
        cmd.arg("--python").arg(python).arg("src").run()
    };
    let starved_run = run(&starved, "state-a", true);
    starved_run.assert_code(1);
    assert!(starved_run.stderr.contains("src/big.py: MemoryError"), "{}", starved_run.stderr);
    assert!(starved_run.stderr.contains("src/bad.py:1:"), "{}", starved_run.stderr);
    // Only the syntax error was stored.
    assert_eq!(local_counts(&starved_run.stderr).2, 1, "{}", starved_run.stderr);
    assert_eq!(entry_files(&cache).len(), 1, "{}", starved_run.stderr);
    // Another machine (its own state directory): the file compiles, the syntax error is a hit.
    let other = run(&py.path, "state-b", true);
    other.assert_code(1);
    assert!(!other.stderr.contains("MemoryError"), "{}", other.stderr);
    assert!(other.stderr.contains("src/bad.py:1:"), "{}", other.stderr);
    assert!(big_pyc.is_file(), "{}", other.stderr);
    assert_eq!(local_counts(&other.stderr).0, 1, "{}", other.stderr);
    // The starved machine itself, memory back: its state directory remembered nothing.
    remove_pycs(&work.path("src"));
    let again = run(&py.path, "state-a", false);
    again.assert_code(1);
    assert!(!again.stderr.contains("MemoryError"), "{}", again.stderr);
    assert!(big_pyc.is_file(), "{}", again.stderr);
});

/// Make a FIFO at `path`.
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `N damaged` in the `cache local` line of `-v`.
fn local_damaged(stderr: &str) -> u64 {
    let line = stderr.lines().find(|l| l.starts_with("cache local ")).unwrap_or_else(|| panic!("{stderr}"));
    let (head, _) = line.split_once(" damaged").unwrap_or_else(|| panic!("{line}"));
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `compile -v --cache CACHE src` in `work`, with a state directory of its own.
fn cached_build(work: &Tree, py: &Python, cache: &Path) -> harness::Hashpyc {
    work.hashpyc()
        .env("HASHPYC_STATE_DIR", work.path("state"))
        .arg("compile")
        .arg("-v")
        .python(py)
        .arg("--cache")
        .arg(cache)
        .arg("src")
}

// What is no entry hashpyc could have written is damaged and never read: a file larger than
// any entry (sparse, 3 GiB: read whole it aborted the run out of memory), a FIFO (opening it
// waited for ever), a symbolic link to /dev/zero (endless), a directory. Each is a miss
// counted as damaged and replaced by the compile's result; a FIFO in place of stats.json blocks neither `compile` nor
// `cache stats`. Every run is bounded in memory and time, so a regression fails, not hangs.
#[test]
fn entries_that_are_not_files_are_damaged_not_read() {
    let Some(py) = harness::any_python("cache::entries_that_are_not_files_are_damaged_not_read") else {
        return;
    };
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..6 {
        work.write(format!("src/m{i}.py"), format!("def f():\n    return {i}\n"));
    }
    let build = || cached_build(&work, py, &cache).bounded(1_500_000, 60).run();
    build().assert_code(0);
    let reference = pycs(&work.path("src"));
    let files = entry_files(&cache);
    assert_eq!(files.len(), 6);
    std::fs::File::options().write(true).open(&files[0]).unwrap().set_len(3 << 30).unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    mkfifo(&files[1]);
    std::fs::remove_file(&files[2]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &files[2]).unwrap();
    std::fs::remove_file(&files[3]).unwrap();
    std::fs::create_dir(&files[3]).unwrap();
    std::fs::remove_file(cache.join("stats.json")).unwrap();
    mkfifo(&cache.join("stats.json"));
    remove_pycs(&work.path("src"));
    let run = build();
    run.assert_code(0);
    assert_eq!(pycs(&work.path("src")), reference);
    assert_eq!(local_damaged(&run.stderr), 4, "{}", run.stderr);
    assert_eq!(local_counts(&run.stderr).0, 2, "{}", run.stderr);
    for f in &files[..4] {
        let meta = std::fs::symlink_metadata(f).unwrap();
        assert!(meta.is_file() && meta.len() < 4096, "{}: {meta:?}", f.display());
    }
    // Replaced: the next build is all hits.
    remove_pycs(&work.path("src"));
    let again = build();
    again.assert_code(0);
    assert_eq!(local_counts(&again.stderr).0, 6, "{}", again.stderr);
    assert_eq!(pycs(&work.path("src")), reference);
    // A FIFO for statistics: `cache stats` neither blocks nor fails.
    std::fs::remove_file(cache.join("stats.json")).unwrap();
    mkfifo(&cache.join("stats.json"));
    let stats = work.hashpyc().args(["cache", "stats", "--cache"]).arg(&cache).bounded(1_500_000, 60).run();
    stats.assert_code(0);
    assert!(stats.stdout.contains("entries      6"), "{}", stats.stdout);
}

// An entry the cache cannot store for a reason of its own — a directory holding a file in
// its place, which is never removed recursively — is one warning naming that entry and the
// reason; the other stores go on: an empty directory in an entry's place (damage, removed)
// and truncated entries are replaced, so the next build hits all but that one. (One such
// entry used to turn off every store of the run, naming only the cache.)
#[test]
fn an_entry_that_cannot_be_stored_stops_no_other_store() {
    let Some(py) = harness::any_python("cache::an_entry_that_cannot_be_stored_stops_no_other_store") else {
        return;
    };
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..8 {
        work.write(format!("src/m{i}.py"), format!("def f{i}():\n    return {i}\n"));
    }
    let build = || cached_build(&work, py, &cache).run();
    build().assert_code(0);
    let reference = pycs(&work.path("src"));
    let files = entry_files(&cache);
    assert_eq!(files.len(), 8);
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::create_dir(&files[0]).unwrap();
    std::fs::write(files[0].join("keep"), "not hashpyc's").unwrap();
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::create_dir(&files[1]).unwrap();
    for f in &files[2..5] {
        std::fs::File::options().write(true).open(f).unwrap().set_len(10).unwrap();
    }
    remove_pycs(&work.path("src"));
    let run = build();
    run.assert_code(0);
    assert_eq!(pycs(&work.path("src")), reference);
    assert_eq!(local_damaged(&run.stderr), 5, "{}", run.stderr);
    // The damage is said once, with its count (`damaged_entries_are_warned_of_once`).
    let (damage, warnings): (Vec<&str>, Vec<&str>) =
        run.stderr.lines().filter(|l| l.starts_with("warning:")).partition(|l| l.contains("were damaged"));
    assert!(damage.len() == 1 && damage[0].starts_with("warning: 5 entries "), "{}", run.stderr);
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    let entry = files[0].strip_prefix(work.root()).unwrap().to_str().unwrap();
    assert!(
        warnings[0].contains("could not store 1 entry")
            && warnings[0].contains(entry)
            && warnings[0].contains("is a directory"),
        "{}",
        run.stderr
    );
    assert!(files[0].join("keep").is_file(), "a directory holding a file is left alone");
    for f in &files[1..] {
        assert!(f.is_file(), "{} replaced: {}", f.display(), run.stderr);
    }
    remove_pycs(&work.path("src"));
    let again = build();
    again.assert_code(0);
    assert_eq!(local_counts(&again.stderr).0, 7, "{}", again.stderr);
    assert_eq!(pycs(&work.path("src")), reference);
}

// `cache clean` beside a build: the build's temporary file of a store in flight (written,
// about to be renamed into place) is left alone, as `cache prune` leaves it; one a crash
// left (over an hour old) is removed with the entries. (clean removed every temporary file
// whatever its age, and the build's store then failed.)
#[test]
fn clean_leaves_stores_in_flight_alone() {
    let Some(py) = harness::any_python("cache::clean_leaves_stores_in_flight_alone") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..3 {
        work.write(format!("src/m{i}.py"), format!("X = {i}\n"));
    }
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    let files = entry_files(&cache);
    assert_eq!(files.len(), 3);
    let fan = files[0].parent().unwrap();
    let in_flight = fan.join(".tmp-inflight");
    let crashed = fan.join(".tmp-crashed");
    std::fs::copy(&files[0], &in_flight).unwrap();
    std::fs::copy(&files[0], &crashed).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&crashed).unwrap().set_modified(old).unwrap();
    let clean = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run();
    clean.assert_code(0);
    assert!(clean.stderr.contains("Removed 3 entries"), "{}", clean.stderr);
    assert!(in_flight.is_file(), "a store in flight was removed");
    assert_eq!(entry_files(&cache), std::slice::from_ref(&in_flight), "only the store in flight is left");
    assert!(!crashed.exists(), "a crash's leftover stays");
    // The build's rename completes its store: the entry serves the next build.
    std::fs::rename(&in_flight, &files[0]).unwrap();
    remove_pycs(&work.path("src"));
    let run = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run();
    run.assert_code(0);
    assert_eq!(counts(&run.stderr), (1, 3), "{}", run.stderr);
}

// `--cache-read-only` modifies nothing in the cache, not even an entry's time: a hit on an
// entry last used two hours ago leaves its mtime (the pruning order) as it was; a run that
// may write refreshes it.
#[test]
fn read_only_hits_keep_entry_times() {
    let Some(py) = harness::any_python("cache::read_only_hits_keep_entry_times") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    work.write("src/a.py", "x = 1\n");
    let build = |extra: &[&str]| {
        remove_pycs(&work.path("src"));
        let run =
            work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).args(extra).arg("src").run();
        run.assert_code(0);
        run
    };
    build(&[]);
    let files = entry_files(&cache);
    assert_eq!(files.len(), 1);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&files[0]).unwrap().set_modified(old).unwrap();
    let mtime = || std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    let ro = build(&["--cache-read-only"]);
    assert_eq!(counts(&ro.stderr), (1, 1), "{}", ro.stderr);
    assert_eq!(mtime(), old, "a read-only run changed an entry's time");
    let rw = build(&[]);
    assert_eq!(counts(&rw.stderr), (1, 1), "{}", rw.stderr);
    assert!(mtime() > old, "a hit refreshes an old entry's time");
}

// A cached failure served at another path says what compiling the file there says: its
// message is not rewritten, even where it contains the path it was compiled at (a file
// `# coding: m.py` compiled as m.py, served as sub/m.py, is still `unknown encoding: m.py`;
// a text substitution made it `unknown encoding: sub/m.py`).
#[test]
fn cached_failure_messages_are_not_rewritten() {
    let Some(py) = harness::any_python("cache::cached_failure_messages_are_not_rewritten") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    for dir in ["one", "two/sub"] {
        work.write(format!("{dir}/m.py"), "# coding: m.py\nx = 1\n");
    }
    let run = |cwd: &str, state: &str, path: &str, cache_on: bool| {
        let mut cmd = harness::Hashpyc::new(&work.path(cwd))
            .env("HASHPYC_STATE_DIR", work.path(state))
            .arg("compile")
            .arg("-v")
            .python(py);
        cmd = if cache_on { cmd.arg("--cache").arg(&cache) } else { cmd.arg("--no-cache") };
        let r = cmd.arg(path).run();
        r.assert_code(1);
        r
    };
    run("one", "state-1", "m.py", true);
    let cached = run("two", "state-2", "sub/m.py", true);
    assert_eq!(local_counts(&cached.stderr).0, 1, "{}", cached.stderr);
    let real = run("two", "state-3", "sub/m.py", false);
    let failure = |stderr: &str| stderr.lines().filter(|l| l.contains("m.py")).collect::<Vec<_>>().join("\n");
    assert_eq!(failure(&cached.stderr), failure(&real.stderr));
    assert!(failure(&cached.stderr).contains("unknown encoding: m.py"), "{}", cached.stderr);
}

// Automatic pruning adds what each build stores to the size `stats.json` recorded, so a
// lost or garbled `stats.json` (removed by hand, left out of a CI cache's restore,
// half-written on a full disk) made it start from 0: a cache over its limit was not pruned
// until it grew by the whole limit again. Now a build that finds it missing, garbled or of
// another format measures the entries, prunes when they are over the limit, and records
// the size measured.
#[test]
fn lost_statistics_are_measured_not_trusted() {
    let test = "cache::lost_statistics_are_measured_not_trusted";
    let Some(py) = harness::python_or_skip((3, 12), test) else { return };
    let size = |cache: &Path| -> u64 {
        entry_files(cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).sum()
    };
    for (how, stats) in [
        ("removed", None),
        ("garbled", Some("{\"format\": 1, \"size_at")),
        ("another format", Some("{\"format\": 99, \"size_at_prune\": 5}")),
    ] {
        let work = Tree::new();
        let cache = work.path("cache");
        for i in 0..20 {
            work.write(format!("big/m{i:02}.py"), format!("VALUE = {i}\nNAMES = {:?}\n", vec!["x"; 200]));
        }
        work.write("small/s.py", "S = 1\n");
        let build = |dir: &str, limit: u64| {
            work.hashpyc()
                .env("HASHPYC_STATE_DIR", work.path("state"))
                .args(["compile", "-v", "--python"])
                .arg(&py.path)
                .arg("--cache")
                .arg(&cache)
                .arg("--cache-max-size")
                .arg(limit.to_string())
                .arg(dir)
                .run()
        };
        build("big", 1 << 30).assert_code(0);
        let full = size(&cache);
        assert!(full > 0 && entry_files(&cache).len() == 20, "{how}");
        let set_stats = || match stats {
            None => std::fs::remove_file(cache.join("stats.json")).unwrap(),
            Some(text) => std::fs::write(cache.join("stats.json"), text).unwrap(),
        };

        // Under the limit: measured and recorded, nothing pruned.
        set_stats();
        let run = build("small", 1 << 30);
        run.assert_code(0);
        assert!(!run.stderr.contains("pruned"), "{how}: {}", run.stderr);
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("stats.json")).unwrap()).unwrap();
        assert_eq!(recorded["size_at_prune"].as_u64(), Some(size(&cache)), "{how}: {recorded}");
        assert_eq!(recorded["bytes_since_prune"].as_u64(), Some(0), "{how}: {recorded}");

        // Over the limit: pruned down, although this build stored next to nothing.
        set_stats();
        std::fs::write(work.path("small/s.py"), "S = 2\n").unwrap();
        let limit = full / 2;
        let run = build("small", limit);
        run.assert_code(0);
        assert!(
            run.stderr.contains("over the limit") && run.stderr.contains("pruned: removed"),
            "{how}: {}",
            run.stderr
        );
        assert!(size(&cache) <= limit, "{how}: {} bytes left, limit {limit}", size(&cache));
    }
}

// Builds that start together on a cache without statistics (a CI matrix's first jobs, the
// README's BuildKit cache mount) each add their stores to the size the first to finish
// measured with the others' entries in it: the recorded size can be far above what is on
// disk. A build that finds the recorded size over the limit now measures the entries
// before removing any: within the limit, nothing is removed, nothing is said, and the
// measured size is recorded. (The race is timing; its outcome, a recorded size too high,
// is written here.)
#[test]
fn a_recorded_size_over_the_limit_is_measured_before_pruning() {
    let test = "cache::a_recorded_size_over_the_limit_is_measured_before_pruning";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    harness::write_modules(&work, "src", 30);
    let build = |limit: u64| {
        work.hashpyc()
            .args(["compile", "-v"])
            .python(py)
            .arg("--cache")
            .arg(&cache)
            .arg("--cache-max-size")
            .arg(limit.to_string())
            .arg("src")
            .run()
    };
    build(1 << 30).assert_code(0);
    let on_disk: u64 = entry_files(&cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).sum();
    let stats_file = cache.join("stats.json");
    let mut recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
    recorded["bytes_since_prune"] = (3 * on_disk).into();
    std::fs::write(&stats_file, recorded.to_string()).unwrap();
    work.write("src/new.py", "NEW = 1\n");
    let run = build(2 * on_disk);
    run.assert_code(0);
    assert!(!run.stderr.contains("pruned") && !run.stderr.contains("over the limit"), "{}", run.stderr);
    assert_eq!(entry_files(&cache).len(), 31, "nothing removed");
    let now_on_disk: u64 =
        entry_files(&cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).sum();
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats_file).unwrap()).unwrap();
    assert_eq!(recorded["size_at_prune"].as_u64(), Some(now_on_disk), "{recorded}");
    assert_eq!(recorded["bytes_since_prune"].as_u64(), Some(0), "{recorded}");
    // Truly over: pruned as before.
    std::fs::write(&stats_file, {
        let mut r = recorded.clone();
        r["bytes_since_prune"] = (3 * on_disk).into();
        r.to_string()
    })
    .unwrap();
    work.write("src/new.py", "NEW = 2\n");
    let run = build(now_on_disk / 2);
    run.assert_code(0);
    assert!(
        run.stderr.contains("over the limit") && run.stderr.contains("pruned: removed"),
        "{}",
        run.stderr
    );
}

// A build into an empty cache counts a miss for each pyc it compiles; an interrupted one
// counted every pyc it had planned (1 903 misses for 526 pycs written), inflating the misses
// and lowering the hit rate of every later `cache stats`.
#[test]
fn an_interrupted_first_build_counts_the_pycs_it_compiled() {
    let test = "cache::an_interrupted_first_build_counts_the_pycs_it_compiled";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    // Sources that take a while, so that the signal lands mid-build.
    let body: String =
        (0..3000).map(|i| format!("def f{i}(a, b):\n    return [a * {i} for _ in b]\n")).collect();
    for i in 0..60 {
        work.write(format!("src/m{i:02}.py"), &body);
    }
    let src = work.path("src");
    let written = || harness::files_with_suffix(&src, ".pyc").len();
    let run = work
        .hashpyc()
        .args(["compile", "-j", "1"])
        .python(py)
        .arg("--cache")
        .arg(&cache)
        .arg("src")
        .run_signalled(libc::SIGINT, || written() >= 2);
    assert_eq!(run.code, Some(130), "{}", run.stderr);
    let pycs = written() as u64;
    assert!(pycs < 60, "the run was interrupted before its end ({pycs} pycs)");
    let stats = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
    let local = &v["tiers"]["local"];
    let (misses, stores) = (local["misses"].as_u64().unwrap(), local["stores"].as_u64().unwrap());
    assert_eq!(misses, stores, "{v}");
    assert!(misses >= pycs && misses < 60, "{misses} misses for {pycs} pycs written: {v}");
}

// Several users share a cache through a group (`chgrp team DIR && chmod 2775 DIR`): a hit
// marks its entry used for the pruning to come. The mark set an explicit time, which only
// the file's owner may do, so another member's hits failed silently (EPERM) and the entries
// the group used most were pruned first. Now the kernel sets both times to "now" (a null
// `times`, as `touch` does), which anyone who may write the entry (the group: entries are
// 0664) may.
#[test]
fn another_group_members_hits_mark_entries_used() {
    let test = "cache::another_group_members_hits_mark_entries_used";
    if !unsafe_is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        harness::visible(&format!("SKIPPED {test}: needs root and setpriv to run as another user"));
        return;
    }
    // An interpreter the other user may run (pyenv's under root's home are not).
    let as_nobody = |args: &[&OsStr]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--groups=4300", "--"]).args(args);
        cmd
    };
    // The tests' interpreters, then each `python3` on PATH (the system's, outside root's home).
    let on_path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("python3"))
        .filter(|p| p.is_file())
        .collect();
    let candidates = harness::pythons().values().map(|p| p.path.clone()).chain(on_path);
    let Some(py) = candidates.into_iter().find(|p| {
        let test_x = [OsStr::new("sh"), OsStr::new("-c"), OsStr::new("test -x \"$0\""), p.as_os_str()];
        as_nobody(&test_x).output().is_ok_and(|o| o.status.success())
    }) else {
        harness::visible(&format!("SKIPPED {test}: no interpreter another user may run"));
        return;
    };
    let work = Tree::new();
    std::fs::set_permissions(work.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = work.path("cache");
    std::fs::create_dir(&cache).unwrap();
    assert!(Command::new("chgrp").arg("4300").arg(&cache).status().unwrap().success());
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o2775)).unwrap();
    harness::write_modules(&work, "mine/src", 5);
    work.hashpyc()
        .args(["compile", "--python"])
        .arg(&py)
        .arg("--cache")
        .arg(&cache)
        .arg("mine/src")
        .run()
        .assert_code(0);
    let entries = entry_files(&cache);
    assert_eq!(entries.len(), 5);
    // Last used three hours ago, by their owner.
    for e in &entries {
        age(e, 3 * 3600);
    }
    // The other user's copy of the same sources, in a tree of theirs.
    harness::write_modules(&work, "theirs/src", 5);
    let bin = work.path("theirs/hashpyc");
    std::fs::copy(env!("CARGO_BIN_EXE_hashpyc"), &bin).unwrap();
    assert!(
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(work.path("theirs"))
            .status()
            .unwrap()
            .success()
    );
    let mut cmd =
        as_nobody(&[bin.as_os_str(), OsStr::new("compile"), OsStr::new("-v"), OsStr::new("--python")]);
    cmd.arg(&py).arg("--cache").arg(&cache).arg("src").current_dir(work.path("theirs"));
    cmd.env("HASHPYC_STATE_DIR", work.path("theirs/state")).env("NO_COLOR", "1").env_remove("HASHPYC_CONFIG");
    let run = harness::run_command(&mut cmd);
    run.assert_code(0);
    assert_eq!(local_counts(&run.stderr).0, 5, "{}", run.stderr);
    for e in &entries {
        let age = std::fs::metadata(e).unwrap().modified().unwrap().elapsed().unwrap();
        assert!(age.as_secs() < 600, "{} last marked {age:?} ago: {}", e.display(), run.stderr);
    }
}

/// Set `path`'s modification time `secs` seconds back./// Set `path`'s modification time `secs` seconds back.
fn age(path: &Path, secs: u64) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(then).unwrap();
}

// A new cache's first build writes CACHEDIR.TAG through a temporary file of hashpyc's
// naming (`.tmp-` and 6 letters or digits) at the top of the directory; a second build or
// a `cache` command seeing the directory then took that file for one that is not
// hashpyc's ("holds files that are not hashpyc's", exit status 2), and for ever when the
// first build was killed then, `cache clean` included. Now such a file is hashpyc's: a
// fresh one (a write in flight) is left alone; one over an hour old (a crash's leftover)
// is counted in `temporary_files` and removed by `prune` and `clean`, as under `v1/`. The
// build tags the directory and stores its entries. A file of another name stays foreign.
#[test]
fn temporary_files_at_the_top_are_hashpycs() {
    let Some(py) = harness::any_python("cache::temporary_files_at_the_top_are_hashpycs") else { return };
    let work = Tree::new();
    work.write("src/m.py", "x = 1\n");
    let cmd =
        |args: &[&str], dir: &Path| work.hashpyc().arg("cache").args(args).arg("--cache").arg(dir).run();
    for aged in [false, true] {
        let cache = work.path(if aged { "aged" } else { "fresh" });
        std::fs::create_dir(&cache).unwrap();
        let temp = cache.join(".tmp-Ab3xY9");
        let make_temp = || {
            std::fs::write(&temp, "Signature: 8a477f597d28d172789f06886806bc55\n").unwrap();
            if aged {
                age(&temp, 2 * 3600);
            }
        };
        make_temp();
        let stats = cmd(&["stats", "--format", "json"], &cache);
        stats.assert_code(0);
        let v: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
        assert_eq!((v["entries"].as_u64(), v["temporary_files"].as_u64()), (Some(0), Some(1)), "{v}");
        cmd(&["prune", "--max-size", "1GiB"], &cache).assert_code(0);
        assert_eq!(temp.exists(), !aged, "prune, aged: {aged}");
        make_temp();
        cmd(&["clean"], &cache).assert_code(0);
        assert_eq!(temp.exists(), !aged, "clean, aged: {aged}");
        make_temp();
        remove_pycs(&work.path("src"));
        let build = work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run();
        build.assert_code(0);
        assert!(!build.stderr.contains("warning"), "aged: {aged}: {}", build.stderr);
        assert_eq!(entry_files(&cache).len(), 1, "aged: {aged}: {}", build.stderr);
        assert!(std::fs::read_to_string(cache.join("CACHEDIR.TAG")).unwrap().contains("by hashpyc"));
    }
    // Another name is not hashpyc's: refused, and left as it was.
    let other = work.path("other");
    work.write("other/.tmp-notes.txt", "mine");
    let r = cmd(&["clean"], &other);
    r.assert_code(2);
    assert!(r.stderr.contains("does not look like a hashpyc bytecode cache"), "{}", r.stderr);
    assert!(other.join(".tmp-notes.txt").is_file());
}

/// `hashpyc cache ARGS --cache DIR`, run in `work` as the unprivileged user nobody
/// (permissions mean nothing to root) from a copy of the binary it may run; None, said,
/// where that cannot be done.
fn nobody<'a>(work: &'a Tree, test: &str) -> Option<impl Fn(&[&str], &Path) -> harness::Run + 'a> {
    if !unsafe_is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        harness::visible(&format!("SKIPPED {test}: needs root and setpriv to run as another user"));
        return None;
    }
    let open =
        |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    open(work.root(), 0o755);
    let bin = work.path("nobody/bin/hashpyc");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_hashpyc"), &bin).unwrap();
    for (p, mode) in [(work.path("nobody"), 0o755), (work.path("nobody/bin"), 0o755), (bin.clone(), 0o755)] {
        open(&p, mode);
    }
    let state = work.path("nobody/state");
    std::fs::create_dir(&state).unwrap();
    open(&state, 0o777);
    Some(move |args: &[&str], dir: &Path| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&bin)
            .arg("cache")
            .args(args)
            .arg("--cache")
            .arg(dir)
            .current_dir(work.root())
            .env("HASHPYC_STATE_DIR", &state)
            .env("NO_COLOR", "1")
            .env_remove("HASHPYC_CONFIG");
        harness::run_command(&mut cmd)
    })
}

/// `work/cache`, holding the entries of two sources `work/src/m0.py` and `m1.py`.
fn cache_of_two_entries(work: &Tree, py: &Python) -> PathBuf {
    let cache = work.path("cache");
    for i in 0..2 {
        work.write(format!("src/m{i}.py"), format!("X = {i}\n"));
    }
    work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    cache
}

// A directory of the cache hashpyc may not read — `v1/`, a fan-out directory under it, the
// cache directory itself — is an error naming it, with the reason in words, from `cache
// stats`, `prune` and `clean` alike (exit status 2), and nothing is removed. The errors
// were swallowed: `stats` showed 0 entries and `prune` "Removed 0 entries", exit status 0;
// an unreadable cache directory was said not to look like a hashpyc cache.
#[test]
fn unreadable_cache_directories_are_errors() {
    let test = "cache::unreadable_cache_directories_are_errors";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    let Some(nobody) = nobody(&work, test) else { return };
    let cache = cache_of_two_entries(&work, py);
    // Readable by everyone, as a cache shared with other users is.
    assert!(Command::new("chmod").arg("-R").arg("a+rX").arg(&cache).status().unwrap().success());
    let stats = nobody(&["stats"], &cache);
    stats.assert_code(0);
    assert!(stats.stdout.contains("entries      2"), "{}", stats.stdout);
    let fan = entry_files(&cache)[0].parent().unwrap().to_path_buf();
    for dir in [cache.join("v1"), fan, cache.clone()] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        for args in [&["stats"][..], &["prune", "--max-size", "0"], &["clean"]] {
            let r = nobody(args, &cache);
            r.assert_code(2);
            assert!(
                r.stderr.contains(&format!("`{}`", dir.display())) && r.stderr.contains("permission denied"),
                "{args:?}: {}",
                r.stderr
            );
            assert!(
                !r.stderr.contains("os error") && !r.stderr.contains("does not look like"),
                "{}",
                r.stderr
            );
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(entry_files(&cache).len(), 2, "nothing was removed");
    }
}

// A build whose cache holds fan-out directories it may enter but not list (mode 0300) hits
// every entry, warns once naming the directory and the reason, and neither measures nor
// prunes the cache, whether the recorded size is over the limit or unknown. The listing's
// failure read as an empty cache: no lookup was made, every file compiled, no word said.
#[test]
fn a_build_names_a_cache_directory_it_cannot_read() {
    let test = "cache::a_build_names_a_cache_directory_it_cannot_read";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    harness::write_modules(&work, "src", 20);
    let cache = work.path("cache");
    let build = |extra: &[&str]| {
        remove_pycs(&work.path("src"));
        let b = work.hashpyc().args(["compile", "-v"]).args(extra).python(py).arg("--cache").arg(&cache);
        b.arg("src").without_root_reads(test).map(|b| b.run())
    };
    let Some(first) = build(&[]) else { return };
    first.assert_code(0);
    let reference = pycs(&work.path("src"));
    let entries = entry_files(&cache);
    let fans: std::collections::BTreeSet<PathBuf> =
        entries.iter().map(|f| f.parent().unwrap().to_path_buf()).collect();
    for fan in &fans {
        std::fs::set_permissions(fan, std::fs::Permissions::from_mode(0o300)).unwrap();
    }
    // Over the limit by the recorded size (the first build's stores), then with no
    // statistics (the size unknown, measured).
    for remove_stats in [false, true] {
        if remove_stats {
            std::fs::remove_file(cache.join("stats.json")).unwrap();
        }
        let run = build(&["--cache-max-size", "1"]).unwrap();
        run.assert_code(0);
        assert_eq!(pycs(&work.path("src")), reference);
        let local = run.stderr.lines().find(|l| l.starts_with("cache local")).unwrap_or_default();
        assert!(local.contains(" 0 misses,") && !local.contains(" 0 hits,"), "{}", run.stderr);
        let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert!(
            warned.len() == 1
                && fans.iter().any(|f| warned[0].contains(&format!("cannot read `{}`", f.display())))
                && warned[0].contains("permission denied")
                && warned[0].contains("neither measured nor pruned"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("pruned: removed"), "{}", run.stderr);
        assert_eq!(entry_files(&cache), entries, "nothing was pruned");
    }
}

// `cache clean` clears the statistics under their lock, as builds add to them, and leaves
// the lock files (hashpyc's own) in place. It unlinked `stats.lock` without taking it: a
// build holding it went on with a file no longer there, the next process locked a new one
// beside it, and cleared statistics came back or a build's counts were lost.
#[test]
fn clean_clears_statistics_under_their_lock() {
    use std::os::fd::AsRawFd;
    let Some(py) = harness::any_python("cache::clean_clears_statistics_under_their_lock") else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    work.write("src/m.py", "x = 1\n");
    let build = || {
        remove_pycs(&work.path("src"));
        work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
    };
    build();
    let lock = cache.join("stats.lock");
    let inode = std::fs::metadata(&lock).unwrap().ino();
    assert!(cache.join("stats.json").is_file());
    // A build adding to the statistics holds their lock: clean removes the entries, then
    // waits for it.
    let held = std::fs::File::options().write(true).open(&lock).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    let clean = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache);
    let clean = std::thread::spawn(move || clean.run());
    while !entry_files(&cache).is_empty() {
        assert!(!clean.is_finished(), "clean ended with entries left");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(!clean.is_finished(), "clean did not wait for the statistics' lock");
    assert!(cache.join("stats.json").is_file(), "the statistics were removed under a build's lock");
    drop(held);
    clean.join().unwrap().assert_code(0);
    assert!(!cache.join("stats.json").exists());
    assert_eq!(std::fs::metadata(&lock).unwrap().ino(), inode, "the lock file was replaced");
    // Counting starts again from the next build.
    build();
    let stats = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
    let v: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
    assert_eq!(v["runs"].as_u64(), Some(1), "{v}");
}

// SIGINT or SIGTERM stops `cache prune` and `cache clean` between entries: each says what it
// removed and what is left, then `error: interrupted` (exit 130 / 143), and the entries not
// removed yet stay (and clean's statistics). Both went on removing every entry, said
// `Removed 6 entries …` and exited 130 without the message. Each waits on `prune.lock`,
// held here, while the signal is sent (its wait seen in /proc/locks: no timing).
#[test]
fn an_interrupt_stops_prune_and_clean() {
    use std::os::fd::AsRawFd;
    let py = harness::pythons().values().next_back().expect("a CPython");
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        for args in [&["prune", "--max-size", "0"][..], &["clean"]] {
            let (work, cache, one) = project_with_a_cache(py);
            let lock = cache.join("prune.lock");
            let held = std::fs::File::options().create(true).truncate(false).write(true).open(&lock).unwrap();
            // SAFETY: flock on a descriptor this test owns.
            assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
            let waiter = format!(":{} ", std::fs::metadata(&lock).unwrap().ino());
            let waits = || {
                let locks = std::fs::read_to_string("/proc/locks").unwrap();
                locks.lines().any(|l| l.contains("->") && l.contains(&waiter))
            };
            let run = work.hashpyc().arg("cache").args(args).arg("--cache").arg(&cache).run_signalled_then(
                sig,
                waits,
                move || drop(held),
            );
            assert_eq!(run.code, Some(code), "{args:?}, signal {sig}: {}", run.stderr);
            assert_eq!(entry_files(&cache).len(), 6, "{args:?}, signal {sig}: {}", run.stderr);
            let left = "Removed 0 entries (0 B)";
            assert!(run.stderr.starts_with(left), "{args:?}, signal {sig}: {}", run.stderr);
            let left = format!("6 entries left ({:.1} KiB)", (one * 6) as f64 / 1024.0);
            assert!(run.stderr.contains(&left), "{left}: {args:?}, signal {sig}: {}", run.stderr);
            assert!(run.stderr.ends_with("\nerror: interrupted\n"), "{args:?}, signal {sig}: {}", run.stderr);
            assert!(cache.join("stats.json").is_file(), "{args:?}, signal {sig}");
        }
    }
}

// An interrupt during `cache clean`'s tidy-up after the entries (the emptied directories,
// the statistics) stops it too: every entry removed, `; 0 entries left (0 B)`, then
// `error: interrupted` (exit 130 / 143), the statistics kept, and the cache usable: `cache
// stats` reads it, a later clean finishes the job, a build fills it again. It went on to
// remove the statistics and exited 130 without the message. The tidy-up waits on
// `stats.lock`, held here as a build adding to the statistics holds it, while the signal is
// sent (its wait seen in /proc/locks: no timing).
#[test]
fn an_interrupt_stops_cleans_tidy_up() {
    use std::os::fd::AsRawFd;
    let py = harness::pythons().values().next_back().expect("a CPython");
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let (work, cache, one) = project_with_a_cache(py);
        let lock = cache.join("stats.lock");
        let held = std::fs::File::options().write(true).open(&lock).unwrap();
        // SAFETY: flock on a descriptor this test owns.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let waiter = format!(":{} ", std::fs::metadata(&lock).unwrap().ino());
        let waits = || {
            let locks = std::fs::read_to_string("/proc/locks").unwrap();
            locks.lines().any(|l| l.contains("->") && l.contains(&waiter))
        };
        let run = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run_signalled_then(
            sig,
            waits,
            move || drop(held),
        );
        assert_eq!(run.code, Some(code), "signal {sig}: {}", run.stderr);
        assert!(entry_files(&cache).is_empty(), "signal {sig}: {}", run.stderr);
        let removed = format!("Removed 6 entries ({:.1} KiB) from ", (one * 6) as f64 / 1024.0);
        assert!(run.stderr.starts_with(&removed), "{removed}: signal {sig}: {}", run.stderr);
        let left = "; 0 entries left (0 B)\nerror: interrupted\n";
        assert!(run.stderr.ends_with(left), "signal {sig}: {}", run.stderr);
        assert!(cache.join("stats.json").is_file(), "signal {sig}: the statistics were removed");
        let stats = || {
            let run =
                work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
            run.assert_code(0);
            serde_json::from_str::<serde_json::Value>(run.stdout.trim()).unwrap()
        };
        let v = stats();
        assert_eq!((v["entries"].as_u64(), v["runs"].as_u64()), (Some(0), Some(1)), "{v}");
        let again = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run();
        again.assert_code(0);
        assert!(again.stderr.starts_with("Removed 0 entries (0 B) from "), "{}", again.stderr);
        assert!(!cache.join("stats.json").exists(), "a later clean removes the statistics");
        assert_eq!(stats()["runs"].as_u64(), Some(0));
        remove_pycs(&work.path("src"));
        work.hashpyc().arg("compile").python(py).arg("--cache").arg(&cache).arg("src").run().assert_code(0);
        assert_eq!(entry_files(&cache).len(), 6);
        let v = stats();
        assert_eq!((v["entries"].as_u64(), v["runs"].as_u64()), (Some(6), Some(1)), "{v}");
    }
}

// An entry stored in place of one of the same key (`--force`, or builds storing the same
// key at once) grows the size recorded for automatic pruning by what the cache grew (here
// nothing), not by the whole entry: `--force` builds of a 2 MiB cache with a 5 MiB limit
// pruned it "over the limit" from the second on, and each recorded the entries again.
#[test]
fn replaced_entries_do_not_grow_the_recorded_size() {
    let Some(py) = harness::any_python("cache::replaced_entries_do_not_grow_the_recorded_size") else {
        return;
    };
    let work = Tree::new();
    let cache = work.path("cache");
    for i in 0..20 {
        work.write(format!("src/m{i:02}.py"), format!("DATA = '{}'\n", format!("{i:02}").repeat(50_000)));
    }
    let build = |extra: &[&str]| {
        let run = work
            .hashpyc()
            .args(["compile", "-v"])
            .args(extra)
            .python(py)
            .arg("--cache")
            .arg(&cache)
            .args(["--cache-max-size", "5MiB", "src"])
            .run();
        run.assert_code(0);
        run
    };
    build(&[]);
    let size: u64 = entry_files(&cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).sum();
    assert!((1 << 20..5 << 20).contains(&size), "{size}");
    for round in 0..3 {
        let run = build(&["-f"]);
        assert!(!run.stderr.contains("over the limit"), "round {round}: {}", run.stderr);
        let recorded: serde_json::Value =
            serde_json::from_slice(&std::fs::read(cache.join("stats.json")).unwrap()).unwrap();
        assert_eq!(recorded["bytes_since_prune"].as_u64(), Some(0), "round {round}: {recorded}");
        assert_eq!(recorded["size_at_prune"].as_u64(), Some(size), "round {round}: {recorded}");
    }
    assert_eq!(entry_files(&cache).len(), 20);
}

// A directory in place of `stats.lock` or `stats.json` (hashpyc makes neither): a build
// warns once, naming it and the reason, and still prunes to the limit by measuring the
// entries; `cache clean` refuses, naming it, before removing anything, and leaves it.
// Builds skipped the statistics and automatic pruning silently, and clean removed every
// entry, then failed "cannot use … as the bytecode cache: Is a directory (os error 21)".
#[test]
fn directories_in_place_of_the_statistics_are_named() {
    let Some(py) =
        harness::python_or_skip((3, 12), "cache::directories_in_place_of_the_statistics_are_named")
    else {
        return;
    };
    for name in ["stats.lock", "stats.json"] {
        let (work, cache, one) = project_with_a_cache(py);
        let file = cache.join(name);
        let _ = std::fs::remove_file(&file);
        std::fs::create_dir(&file).unwrap();
        std::fs::write(file.join("keep"), "not hashpyc's").unwrap();
        remove_pycs(&work.path("src"));
        let run = work
            .hashpyc()
            .args(["compile", "-v"])
            .python(py)
            .arg("--cache")
            .arg(&cache)
            .arg("--cache-max-size")
            .arg((3 * one).to_string())
            .arg("src")
            .run();
        run.assert_code(0);
        let warnings: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert_eq!(warnings.len(), 1, "{name}: {}", run.stderr);
        assert!(
            warnings[0].contains(&format!("`{}`", file.display())) && warnings[0].contains("is a directory"),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("over the limit"), "{name}: {}", run.stderr);
        let left = entry_files(&cache).len();
        assert_eq!(left, 2, "{name}: pruned to 90% of 3 entries: {}", run.stderr);
        let clean = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run();
        clean.assert_code(2);
        assert!(
            clean.stderr.contains(&format!("`{}`", file.display()))
                && clean.stderr.contains("is a directory"),
            "{name}: {}",
            clean.stderr
        );
        assert!(
            !clean.stderr.contains("as the bytecode cache") && !clean.stderr.contains("os error"),
            "{}",
            clean.stderr
        );
        assert_eq!(entry_files(&cache).len(), left, "{name}: nothing was removed");
        assert!(file.join("keep").is_file());
    }
}

// `--cache` naming a symbolic link to a directory that does not exist (a cache volume not
// mounted, a moved target): the `cache` commands and builds say so, naming the target.
// `cache stats` said the directory "does not exist yet; … a build with this cache directory
// creates it", which no build can, and `compile` warned "File exists".
#[test]
fn a_cache_link_to_nothing_is_named() {
    let Some(py) = harness::any_python("cache::a_cache_link_to_nothing_is_named") else { return };
    let work = Tree::new();
    work.write("src/m.py", "x = 1\n");
    let link = work.path("link");
    std::os::unix::fs::symlink("gone/cache", &link).unwrap();
    let said = "it is a symbolic link to `gone/cache`, which does not exist";
    for args in [&["stats"][..], &["prune", "--max-size", "0"], &["clean"]] {
        let r = work.hashpyc().arg("cache").args(args).arg("--cache").arg(&link).run();
        r.assert_code(2);
        assert!(
            r.stderr.contains(&format!("cannot use `{}` as the bytecode cache", link.display()))
                && r.stderr.contains(said),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("does not exist yet"), "{}", r.stderr);
    }
    for extra in [&[][..], &["--cache-read-only"]] {
        let run =
            work.hashpyc().arg("compile").python(py).args(extra).arg("--cache").arg(&link).arg("src").run();
        run.assert_code(0);
        assert!(
            run.stderr.contains(said) && !run.stderr.contains("File exists"),
            "{extra:?}: {}",
            run.stderr
        );
    }
    assert!(!work.path("gone").exists());
    assert_eq!(pycs(&work.path("src")).len(), 1);
}

// An entry `cache prune` or `cache clean` may not remove (a cache shared with another user
// who wrote it) is named, with the reason in words: prune said "cannot remove entries from
// the bytecode cache" caused by "Permission denied (os error 13)", naming no entry.
#[test]
fn entries_that_cannot_be_removed_are_named() {
    let test = "cache::entries_that_cannot_be_removed_are_named";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    let Some(nobody) = nobody(&work, test) else { return };
    let cache = cache_of_two_entries(&work, py);
    assert!(Command::new("chmod").arg("-R").arg("a+rX,go-w").arg(&cache).status().unwrap().success());
    let entries = entry_files(&cache);
    assert_eq!(entries.len(), 2);
    for args in [&["prune", "--max-size", "0"][..], &["clean"]] {
        let r = nobody(args, &cache);
        r.assert_code(2);
        let named = entries.iter().any(|e| r.stderr.contains(&format!("cannot remove `{}`", e.display())));
        assert!(named && r.stderr.contains(": permission denied"), "{args:?}: {}", r.stderr);
        // One error line, its reason on it (prune's summary line before it).
        let errors = r.stderr.lines().filter(|l| l.starts_with("error: ")).count();
        assert!(errors == 1 && !r.stderr.contains("Caused by"), "{}", r.stderr);
        assert!(
            !r.stderr.contains("os error") && !r.stderr.contains("as the bytecode cache"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(entry_files(&cache), entries, "nothing was removed");
}

/// `compile -v` of `src` with `--cache cache` and `extra`, its pycs removed first; exit 0.
fn build_src(work: &Tree, py: &Python, cache: &Path, extra: &[&str]) -> harness::Run {
    remove_pycs(&work.path("src"));
    let run = work
        .hashpyc()
        .args(["compile", "-v"])
        .args(extra)
        .python(py)
        .arg("--cache")
        .arg(cache)
        .arg("src")
        .run();
    run.assert_code(0);
    run
}

/// Every file under `dir` (relative to it) with its inode and bytes, sorted: what must not
/// change through a link the cache does not follow.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64, Vec<u8>)> {
    let mut files: Vec<(PathBuf, u64, Vec<u8>)> = harness::files_with_suffix(dir, "")
        .into_iter()
        .map(|p| {
            let full = dir.join(&p);
            (p, std::fs::metadata(&full).unwrap().ino(), std::fs::read(&full).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A symbolic link in place of a fan-out directory (`C/v1/cd -> /elsewhere`) is never
/// followed: `cache stats` does not count what it leads to, `cache prune` and `cache clean`
/// remove nothing there (entries of 62 hex digits included), and a build stores nothing
/// through it (one warning naming the link), its pycs those of a build without the link.
#[test]
fn a_linked_fan_out_directory_is_not_followed() {
    let Some(py) = harness::any_python("cache::a_linked_fan_out_directory_is_not_followed") else { return };
    let work = Tree::new();
    harness::write_modules(&work, "src", 40);
    let cache = work.path("cache");
    let build = |extra: &[&str]| build_src(&work, py, &cache, extra);
    build(&[]);
    let reference = pycs(&work.path("src"));
    let all = entry_files(&cache).len();
    // The fan-out directory holding the most entries, moved elsewhere, a link in its place.
    let mut fans: Vec<PathBuf> =
        std::fs::read_dir(cache.join("v1")).unwrap().map(|e| e.unwrap().path()).collect();
    fans.sort_by_key(|f| std::fs::read_dir(f).unwrap().count());
    let fan = fans.pop().unwrap();
    let outside = work.path("elsewhere");
    std::fs::rename(&fan, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &fan).unwrap();
    std::fs::write(outside.join("a".repeat(62)), "not the cache's\n").unwrap();
    let there = || files_under(&outside);
    let before = there();
    let moved = before.len() - 1;
    assert!(moved >= 1 && moved < all, "{moved} of {all}");
    let stats = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
    stats.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(stats.stdout.trim()).unwrap();
    assert_eq!(v["entries"].as_u64(), Some((all - moved) as u64), "{v}");
    // A build storing every entry (--force): none through the link, which one warning names.
    let run = build(&["--force"]);
    assert_eq!(pycs(&work.path("src")), reference);
    assert!(there() == before, "an entry was written through the link:\n{}", run.stderr);
    let shown = format!("`{}` is a symbolic link", fan.display());
    let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    assert!(warned.len() == 1 && warned[0].contains(&shown), "{}", run.stderr);
    // A build looking entries up: what the link leads to is no hit (damage, left as it is).
    let run = build(&[]);
    assert_eq!(pycs(&work.path("src")), reference);
    assert!(run.stderr.contains(&format!(" {moved} damaged,")), "{}", run.stderr);
    assert!(there() == before, "{}", run.stderr);
    // Pruning everything and cleaning leave it alone too.
    let prune = work.hashpyc().args(["cache", "prune", "--max-size", "0", "--cache"]).arg(&cache).run();
    prune.assert_code(0);
    assert!(there() == before, "prune removed files through the link: {}", prune.stderr);
    assert!(entry_files(&cache).iter().all(|f| f.starts_with(&fan)), "prune left real entries");
    let clean = work.hashpyc().args(["cache", "clean", "--cache"]).arg(&cache).run();
    clean.assert_code(0);
    assert!(there() == before, "clean removed files through the link: {}", clean.stderr);
}

/// A symbolic link in place of `v1/` itself (`C/v1 -> /elsewhere`, there the cache's own
/// entries) is never followed: a build, read-only or not, reads and stores nothing through
/// it (one warning naming it, its pycs those of a build without a cache), and `cache
/// stats`, `prune --max-size 1` and `clean` refuse it by name (exit status 2), removing
/// nothing. It was followed: builds hit and stored there, prune and clean deleted the files
/// it led to.
#[test]
fn a_linked_entries_directory_is_not_followed() {
    let Some(py) = harness::any_python("cache::a_linked_entries_directory_is_not_followed") else { return };
    let work = Tree::new();
    harness::write_modules(&work, "src", 20);
    let cache = work.path("cache");
    let build = |extra: &[&str]| build_src(&work, py, &cache, extra);
    build(&[]);
    let reference = pycs(&work.path("src"));
    // The entries moved elsewhere, beside a file of the user's, and a link in place of v1.
    let victims = work.path("victims");
    std::fs::rename(cache.join("v1"), &victims).unwrap();
    std::fs::write(victims.join("notes.txt"), "mine\n").unwrap();
    std::os::unix::fs::symlink(&victims, cache.join("v1")).unwrap();
    let there = || files_under(&victims);
    let before = there();
    assert!(before.len() > 20, "{}", before.len());
    let shown = format!("`{}` is a symbolic link", cache.join("v1").display());
    for extra in [&["--force"][..], &[], &["--cache-read-only"]] {
        let run = build(extra);
        assert_eq!(pycs(&work.path("src")), reference, "{extra:?}");
        assert!(there() == before, "{extra:?}: files changed through the link:\n{}", run.stderr);
        let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert!(warned.len() == 1 && run.stderr.contains(&shown), "{extra:?}: {}", run.stderr);
        assert!(!run.stderr.contains("cache local"), "{extra:?}: the link was used: {}", run.stderr);
    }
    for args in [&["stats"][..], &["prune", "--max-size", "1"], &["clean"]] {
        let run = work.hashpyc().arg("cache").args(args).arg("--cache").arg(&cache).run();
        run.assert_code(2);
        assert!(
            run.stderr.contains(&format!("cannot use `{}`", cache.join("v1").display()))
                && run.stderr.contains(&shown),
            "{args:?}: {}",
            run.stderr
        );
        assert!(there() == before, "{args:?} removed files through the link: {}", run.stderr);
    }
}

/// A compiled body over the 64 MiB a lookup decodes (a source holding a 65 MiB bytes
/// literal) is not stored: no lookup would read it. `-v` says so once, naming it, and the
/// next build compiles it again without counting damage. It was stored on every build and
/// found damaged by the next.
#[test]
fn a_payload_no_lookup_would_read_is_not_stored() {
    let Some(py) = harness::any_python("cache::a_payload_no_lookup_would_read_is_not_stored") else { return };
    let work = Tree::new();
    let mut big = b"X = b'".to_vec();
    big.resize(big.len() + (65 << 20), b'a');
    big.extend_from_slice(b"'\n");
    work.write("src/big.py", big);
    work.write("src/small.py", "y = 1\n");
    let cache = work.path("cache");
    let build = || {
        remove_pycs(&work.path("src"));
        let run =
            work.hashpyc().args(["compile", "-v"]).python(py).arg("--cache").arg(&cache).arg("src").run();
        run.assert_code(0);
        run
    };
    let first = build();
    let reference = pycs(&work.path("src"));
    for (run, local) in [
        (&first, "0 hits, 2 misses, 1 store, 0 damaged, 0 errors"),
        (&build(), "1 hit, 1 miss, 0 stores, 0 damaged, 0 errors"),
    ] {
        assert_eq!(pycs(&work.path("src")), reference);
        assert!(run.stderr.contains(&format!(": {local},")), "{}", run.stderr);
        let said: Vec<&str> = run.stderr.lines().filter(|l| l.contains("not stored")).collect();
        assert!(
            said.len() == 1
                && said[0].contains("1 entry not stored: over the 64.0 MiB an entry may hold")
                && said[0].contains("big.py`, 65.0 MiB)"),
            "{}",
            run.stderr
        );
        assert_eq!(entry_files(&cache).len(), 1, "only small.py's entry");
    }
}

/// Cut the marshal data of every body entry in `cache` short (the envelope sound: a cache
/// that stored a truncated compile, or a hostile one); returns how many.
fn truncate_bodies(cache: &Path) -> usize {
    use hashpyc::cache::entry::{self, Compression, Payload};
    let mut n = 0;
    for f in entry_files(cache) {
        let all = f.strip_prefix(cache.join("v1")).unwrap().to_str().unwrap().replace('/', "");
        let key: [u8; 32] = (0..32)
            .map(|i| u8::from_str_radix(&all[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
            .try_into()
            .unwrap();
        if let Ok(Payload::Body { filename, warnings, mut body }) =
            entry::decode(&key, &std::fs::read(&f).unwrap())
        {
            body.truncate(body.len() / 2);
            let cut = Payload::Body { filename, warnings, body };
            std::fs::write(&f, entry::encode(&key, &cut, Compression::None)).unwrap();
            n += 1;
        }
    }
    n
}

/// An entry whose marshal data is cut short is damaged, whether it is served at the path it
/// was compiled at or relocated: a miss, counted, replaced; never a pyc CPython cannot load
/// (`EOFError: marshal data too short`).
#[test]
fn truncated_marshal_data_is_damage() {
    let Some(py) = harness::any_python("cache::truncated_marshal_data_is_damage") else { return };
    let work = Tree::new();
    harness::write_modules(&work, "a/src", 6);
    harness::write_modules(&work, "b/src", 6);
    let cache = work.path("cache");
    let compile = |dir: &str, cached: bool| {
        let src = work.path(format!("{dir}/src"));
        remove_pycs(&src);
        let mut cmd = work
            .hashpyc()
            .env("HASHPYC_STATE_DIR", work.path(format!("state-{dir}")))
            .args(["compile", "-v"])
            .python(py);
        if cached {
            cmd = cmd.arg("--cache").arg(&cache);
        }
        let run = cmd.arg(&src).run();
        run.assert_code(0);
        (run.stderr.clone(), pycs(&src))
    };
    let build = |dir: &str| compile(dir, true);
    compile("a", true);
    for dir in ["a", "b"] {
        // A build without a cache, at that path.
        let (_, reference) = compile(dir, false);
        assert_eq!(truncate_bodies(&cache), 6);
        // At the path they were compiled at (a), and relocated (b).
        let (stderr, got) = build(dir);
        assert!(got == reference, "{dir}: pycs from truncated entries:\n{stderr}");
        assert!(stderr.contains(": 0 hits, 6 misses") && stderr.contains(" 6 damaged,"), "{dir}: {stderr}");
        // Replaced: the next build is served from the cache.
        let (stderr, got) = build(dir);
        assert!(got == reference && stderr.contains(": 6 hits, 0 misses"), "{dir}: {stderr}");
    }
    let run = py.cmd().args(["-c", "import m00"]).current_dir(work.path("a/src")).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// A symbolic link put in place of a fan-out directory while a build stores an entry there,
/// after the directory was looked at (strace holds the run 2 s after the first system call
/// on it that is not its mkdir; the test then moves the directory aside and puts a link to
/// `trap` in its place): nothing is stored through the link, where the entry was written
/// into `trap` by path after the check; it is in the directory that was looked at.
#[test]
fn a_fan_out_directory_switched_to_a_link_mid_store_is_not_written_through() {
    let test = "cache::a_fan_out_directory_switched_to_a_link_mid_store_is_not_written_through";
    let Some(py) = harness::any_python(test) else { return };
    if !harness::strace_or_skip(test) {
        return;
    }
    let tree = Tree::new();
    tree.write("src/m.py", "x = 1\n");
    // The entry's fan-out directory, from a build into another cache (also remembers the probe).
    tree.hashpyc()
        .args(["compile", "-q", "--cache"])
        .arg(tree.path("first"))
        .python(py)
        .arg("src")
        .run()
        .assert_code(0);
    let names = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
    };
    let fans = names(tree.path("first/v1"));
    assert_eq!(fans.len(), 1, "{fans:?}");
    let entry = names(tree.path(format!("first/v1/{}", fans[0])));
    std::fs::remove_dir_all(tree.path("src/__pycache__")).unwrap();
    std::fs::create_dir(tree.path("trap")).unwrap();
    let fan = tree.path(format!("C/v1/{}", fans[0]));
    let log = tree.path("strace.log");
    let mut child = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg("-P")
        .arg(&fan)
        .args(["-e", "trace=%file,%desc", "-e", "inject=%file,%desc:delay_exit=2000000"])
        .arg(env!("CARGO_BIN_EXE_hashpyc"))
        .args(["compile", "--cache", "C", "--python"])
        .arg(&py.path)
        .arg("src")
        .current_dir(tree.root())
        .env("HASHPYC_STATE_DIR", harness::shared_cache_dir())
        .env("HASHPYC_NO_CONFIG", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // strace logs a system call as it enters it, before the delay; signals are logged too.
    let looked_at = |l: &str| l.split_whitespace().nth(1).is_some_and(|c| !c.starts_with(['-', '+', 'm']));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.lines().any(looked_at)) {
        assert!(std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none(), "no store");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::fs::rename(&fan, tree.path("C/aside")).unwrap();
    std::os::unix::fs::symlink(tree.path("trap"), &fan).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let trace = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(names(tree.path("trap")).is_empty(), "stored through the link: {stderr}\n{trace}");
    assert_eq!(names(tree.path("C/aside")), entry, "{stderr}\n{trace}");
    assert!(tree.path("src/__pycache__").is_dir(), "{stderr}");
}

// A cache others may write was used without a word (a security review: a root image
// build took another user's cache in a world-writable directory, and a poisoned entry
// became the build's pyc). The README's Trust paragraph says whoever can write the cache
// decides the code; a run now warns when that is every user (the cache's directory, or
// its entries', writable by all) or, for a run as root, the user owning it. A group's
// cache is no finding.
#[test]
fn a_cache_others_may_write_is_warned_of() {
    let Some(py) = harness::any_python("cache::a_cache_others_may_write_is_warned_of") else { return };
    let tree = Tree::new();
    tree.write("src/m.py", "X = 1\n");
    let cache = tree.path("cache");
    let compile =
        || tree.hashpyc().args(["compile", "--force", "--cache"]).arg(&cache).python(py).arg("src").run();
    let run = compile();
    run.assert_code(0);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // A group's cache.
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o2775)).unwrap();
    let run = compile();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = compile();
    run.assert_code(0);
    let shown = cache.display();
    assert!(
        run.stderr.contains(&format!(
            "warning: bytecode cache: `{shown}` is writable by every user: whoever can write it decides the code its hits put into this build"
        )),
        "{}",
        run.stderr
    );
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        harness::visible("SKIPPED part of cache::a_cache_others_may_write_is_warned_of: not root");
        return;
    }
    std::os::unix::fs::chown(&cache, Some(4242), Some(4242)).unwrap();
    let run = compile();
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "warning: bytecode cache: `{shown}` belongs to uid 4242, and this run is root's"
        )),
        "{}",
        run.stderr
    );
    // Root's own directory, reached through a link another user made.
    std::os::unix::fs::chown(&cache, Some(0), Some(0)).unwrap();
    let link = tree.path("their-link");
    std::os::unix::fs::symlink(&cache, &link).unwrap();
    std::os::unix::fs::lchown(&link, Some(4242), Some(4242)).unwrap();
    let run = tree.hashpyc().args(["compile", "--force", "--cache"]).arg(&link).python(py).arg("src").run();
    run.assert_code(0);
    assert!(
        run.stderr.contains(&format!(
            "warning: bytecode cache: `{}` is a symbolic link of uid 4242, who decides where it leads",
            link.display()
        )),
        "{}",
        run.stderr
    );
    // Root's own link to it is no finding.
    std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
    let run = tree.hashpyc().args(["compile", "--force", "--cache"]).arg(&link).python(py).arg("src").run();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

/// A checked-hash pyc of `tree`'s `src` written by `python`'s own py_compile (run as
/// given: a wrapper script with what it sets), or None where py_compile failed.
fn own_py_compile(python: &Path, tree: &Tree, src: &str) -> Option<Vec<u8>> {
    let out = tree.path("own.pyc");
    let _ = std::fs::remove_file(&out);
    let status = Command::new(python)
        .args(["-c", "import py_compile, sys\npy_compile.compile(sys.argv[1], sys.argv[2], doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)"])
        .arg(src)
        .arg(&out)
        .current_dir(tree.root())
        .env_remove("PYTHONNODEBUGRANGES")
        .env_remove("PYTHONINTMAXSTRDIGITS")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    status.success().then(|| std::fs::read(&out).unwrap())
}

// A wrapper that starts the interpreter with a setting that changes its pycs
// (PYTHONNODEBUGRANGES: no column positions; `-X int_max_str_digits=0`: a 5 000-digit
// literal compiles) shared the bytecode cache's key with the interpreter started plainly:
// its entries were served to the plain one (a pyc without column positions; a pyc for a
// file its own py_compile refuses, exit 0). The probe now learns those settings as the
// interpreter starts, they are part of the key, and compile warns of them naming the
// wrapper; each run's pycs are its own py_compile's, through the cache or not.
per_python!(a_wrappers_settings_keep_its_cache_entries_apart, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    let cache = tree.path("cache");
    let code = "def f(a, b):\n    return a[\"k\"] + b.c.d\n";
    let big = format!("X = {}\n", "1".repeat(5000));
    for dir in ["w", "p"] {
        tree.write(format!("{dir}/tb.py"), code);
        tree.write(format!("{dir}/big.py"), &big);
    }
    let exe = py.path.display();
    let ndr =
        tree.write_executable("bin/ndr", format!("#!/bin/sh\nPYTHONNODEBUGRANGES=1 exec '{exe}' \"$@\"\n"));
    let digits = tree
        .write_executable("bin/digits", format!("#!/bin/sh\nexec '{exe}' -X int_max_str_digits=0 \"$@\"\n"));
    let compile = |python: &Path, dir: &str| {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", tree.path("state"))
            .args(["compile", "--cache"])
            .arg(&cache)
            .arg("--python")
            .arg(python)
            .arg(format!("{dir}/tb.py"))
            .arg(format!("{dir}/big.py"))
            .run()
    };
    let pyc = |dir: &str, stem: &str| {
        let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
        std::fs::read(tree.path(format!("{dir}/__pycache__/{stem}.{tag}.pyc"))).ok()
    };
    for (wrapper, setting) in
        [(&ndr, "runs without column positions"), (&digits, "runs with int_max_str_digits=0")]
    {
        std::fs::remove_dir_all(&cache).ok();
        for dir in ["w", "p"] {
            std::fs::remove_dir_all(tree.path(format!("{dir}/__pycache__"))).ok();
        }
        let through = compile(wrapper, "w");
        let named = format!("`{}` {setting}", wrapper.display());
        assert!(through.stderr.contains(&named), "{named}:\n{}", through.stderr);
        let plain = compile(&py.path, "p");
        assert!(!plain.stderr.contains("from the cache"), "{}", plain.stderr);
        assert!(!plain.stderr.contains("` runs with"), "{}", plain.stderr);
        // Each pyc is the one its interpreter's own py_compile writes, as started.
        for (python, dir) in [(wrapper.as_path(), "w"), (py.path.as_path(), "p")] {
            for stem in ["tb", "big"] {
                let own = own_py_compile(python, &tree, &format!("{dir}/{stem}.py"));
                assert!(own == pyc(dir, stem), "{} {dir}/{stem}.py", python.display());
            }
        }
        assert!(pyc("w", "tb") != pyc("p", "tb") || pyc("w", "big") != pyc("p", "big"), "{setting}");
        if wrapper == &digits {
            plain.assert_code(1);
            assert!(pyc("p", "big").is_none() && pyc("w", "big").is_some());
        }
    }
});

// A launcher whose flags come from a variable its key does not take (`exec python3.X
// $PYFLAGS "$@"`) kept the probe remembered under one value of it: a worker's hello said
// only which build runs, so with the probe of `PYFLAGS='-X no_debug_ranges'` remembered, a
// run with PYFLAGS unset took the cache's entries of that setting (pycs without column
// positions) for its own. The hello then carried the settings the probe reports, and a run
// that found them changed stopped (exit 2) after the stale probe's warning, the run after
// it compiling. Now that run probes the launcher again on the spot and goes on with what it
// runs now: the plain interpreter's own pycs, none of the other setting's entries, no
// warning of the setting it no longer has, and under `-v` one line saying so.
per_python!(a_launchers_flags_from_a_variable_are_confirmed_by_the_hello, min = (3, 11), |py: &Python| {
    let tree = Tree::new();
    let cache = tree.path("cache");
    tree.write("w/tb.py", "def f(a, b):\n    return a[\"k\"] + b.c.d\n");
    let launcher =
        tree.write_executable("bin/py", format!("#!/bin/sh\nexec '{}' $PYFLAGS \"$@\"\n", py.path.display()));
    let compile = |flags: &str, verbose: bool| {
        let _ = std::fs::remove_dir_all(tree.path("w/__pycache__"));
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", tree.path("state"))
            .env("PYFLAGS", flags)
            .args(["compile", "--cache"])
            .arg(&cache)
            .args(verbose.then_some("-v"))
            .arg("--python")
            .arg(&launcher)
            .arg("w")
            .run()
    };
    let pyc = || {
        let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
        std::fs::read(tree.path(format!("w/__pycache__/tb.{tag}.pyc"))).ok()
    };
    let plain = own_py_compile(&py.path, &tree, "w/tb.py");
    let changed = "settings changed since it was probed";
    let warned = "runs without column positions";
    // Entries without column positions, and their probe remembered.
    let first = compile("-X no_debug_ranges", false);
    first.assert_code(0);
    assert!(first.stderr.contains(warned), "{}", first.stderr);
    assert!(pyc().is_some() && pyc() != plain);
    let unset = compile("", true);
    unset.assert_code(0);
    assert_eq!(unset.stderr.matches(changed).count(), 1, "{}", unset.stderr);
    assert!(
        !unset.stderr.contains("from the cache")
            && !unset.stderr.contains(warned)
            && !unset.stderr.contains("error:"),
        "{}",
        unset.stderr
    );
    assert!(pyc() == plain, "{}", unset.stderr);
    // The probe re-made on the spot is remembered: the next run has nothing to say.
    let again = compile("", true);
    again.assert_code(0);
    assert!(again.stderr.contains("from the cache") && !again.stderr.contains(changed), "{}", again.stderr);
    assert!(pyc() == plain, "{}", again.stderr);
    // And back: the plain probe is not taken for the wrapper's settings either; without
    // `-v`, nothing but the setting's own warning says so.
    let back = compile("-X no_debug_ranges", false);
    back.assert_code(0);
    assert!(back.stderr.contains("from the cache") && back.stderr.contains(warned), "{}", back.stderr);
    assert!(!back.stderr.contains(changed) && !back.stderr.contains("error:"), "{}", back.stderr);
    assert!(pyc().is_some() && pyc() != plain);
});

// The run that finds a launcher's settings changed since its probe probes it again and
// compiles as it now runs: each pyc is the one the interpreter's own py_compile writes
// under the new flags, and the cache serves none of the entries stored under the old ones
// (a literal the new int-digits limit refuses is not taken from the plain interpreter's
// entry). The warnings are the new settings', never the old probe's.
per_python!(
    a_launcher_probed_again_on_the_spot_compiles_as_its_new_flags_do,
    min = (3, 11),
    |py: &Python| {
        let tree = Tree::new();
        let cache = tree.path("cache");
        tree.write("w/tb.py", "def f(a, b):\n    return a[\"k\"] + b.c.d\n");
        tree.write("w/digits.py", format!("X = {}\n", "7".repeat(1000)));
        let exe = py.path.display();
        let launcher = tree.write_executable("bin/py", format!("#!/bin/sh\nexec '{exe}' $PYFLAGS \"$@\"\n"));
        // The interpreter as each value of PYFLAGS starts it, for its own py_compile.
        let ndr =
            tree.write_executable("bin/ndr", format!("#!/bin/sh\nexec '{exe}' -X no_debug_ranges \"$@\"\n"));
        let lim = tree.write_executable(
            "bin/lim",
            format!("#!/bin/sh\nexec '{exe}' -X int_max_str_digits=640 \"$@\"\n"),
        );
        let compile = |flags: &str| {
            let _ = std::fs::remove_dir_all(tree.path("w/__pycache__"));
            tree.hashpyc()
                .env("HASHPYC_STATE_DIR", tree.path("state"))
                .env("PYFLAGS", flags)
                .args(["compile", "--cache"])
                .arg(&cache)
                .arg("--python")
                .arg(&launcher)
                .arg("w")
                .run()
        };
        let pyc = |stem: &str| {
            let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
            std::fs::read(tree.path(format!("w/__pycache__/{stem}.{tag}.pyc"))).ok()
        };
        let own = |python: &Path, stem: &str| own_py_compile(python, &tree, &format!("w/{stem}.py"));
        let (columns, level, digits) = (
            "runs without column positions",
            "runs with optimization level 1",
            "runs with int_max_str_digits=640",
        );
        let plain = compile("");
        plain.assert_code(0);
        for stem in ["tb", "digits"] {
            assert!(pyc(stem).is_some() && pyc(stem) == own(&py.path, stem), "{stem}: {}", plain.stderr);
        }
        let no_ranges = compile("-X no_debug_ranges -O");
        no_ranges.assert_code(0);
        let e = &no_ranges.stderr;
        assert!(!e.contains("from the cache") && !e.contains("error"), "{e}");
        assert!(e.contains(columns) && e.contains(level), "{e}");
        for stem in ["tb", "digits"] {
            assert!(pyc(stem).is_some() && pyc(stem) == own(&ndr, stem), "{stem}: {e}");
        }
        assert!(pyc("tb") != own(&py.path, "tb"), "{e}");
        let limited = compile("-X int_max_str_digits=640");
        limited.assert_code(1);
        let e = &limited.stderr;
        assert!(!e.contains("from the cache") && !e.contains("error:"), "{e}");
        assert!(e.contains(digits) && !e.contains(columns) && !e.contains(level), "{e}");
        assert!(e.contains("w/digits.py:1: SyntaxError: Exceeds the limit (640 digits)"), "{e}");
        assert!(own(&lim, "digits").is_none() && pyc("digits").is_none(), "{e}");
        assert!(pyc("tb").is_some() && pyc("tb") == own(&lim, "tb"), "{e}");
    }
);

/// The bytes the entries of the cache take on disk.
fn entries_size(cache: &Path) -> u64 {
    entry_files(cache).iter().map(|f| std::fs::metadata(f).unwrap().blocks() * 512).sum()
}

// An older archive of the cache restored over a newer one (a CI cache saved after one job,
// restored after others had grown the cache) brought back an older stats.json, whose
// recorded size builds trusted: the entries grew past the limit with each restore and were
// never pruned. A stats.json hashpyc did not write in place (a new file, with a new change
// time) is measured once; the counts it holds are kept.
#[test]
fn an_older_archive_restored_over_the_cache_is_measured() {
    let test = "cache::an_older_archive_restored_over_the_cache_is_measured";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    let cache = work.path("cache");
    for t in ["a", "b", "c", "d"] {
        for i in 0..40 {
            work.write(format!("{t}/m{i}.py"), format!("X = {:?}\n", format!("{t}{i}").repeat(1500)));
        }
    }
    let build = |dir: &str, limit: u64| {
        let run = work
            .hashpyc()
            .env("HASHPYC_STATE_DIR", work.path("state"))
            .args(["compile", "-v"])
            .python(py)
            .arg("--cache")
            .arg(&cache)
            .arg("--cache-max-size")
            .arg(limit.to_string())
            .arg(dir)
            .run();
        run.assert_code(0);
        run
    };
    let tar = |args: &[&str]| {
        let status = Command::new("tar").args(args).current_dir(work.root()).status().unwrap();
        assert!(status.success(), "tar {args:?}");
    };
    build("a", 1 << 30);
    let one = entries_size(&cache);
    tar(&["-cf", "old.tar", "cache"]);
    // Room for two directories' entries, not three.
    let limit = one * 5 / 2;
    build("b", limit);
    assert!(entries_size(&cache) <= limit);
    for t in ["c", "d"] {
        tar(&["-xf", "old.tar"]);
        let run = build(t, limit);
        let size = entries_size(&cache);
        assert!(size <= limit, "after {t}: {size} bytes of entries, limit {limit}:\n{}", run.stderr);
        let stats = work.hashpyc().args(["cache", "stats", "--format", "json", "--cache"]).arg(&cache).run();
        stats.assert_code(0);
        let stats: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
        // The restored counts (one run), and this one.
        assert_eq!(stats["runs"], 2, "after {t}: {stats}");
    }
    // The entries kept serve the pycs the build compiled, byte for byte.
    let compiled = pycs(&work.path("d"));
    remove_pycs(&work.path("d"));
    let run = build("d", limit);
    assert!(counts(&run.stderr).0 > 0, "{}", run.stderr);
    assert_eq!(pycs(&work.path("d")), compiled);
}

// `v1` a regular file (a damaged restore: `rm -r cache/v1; echo x > cache/v1`) read as an
// empty cache: `cache stats` said "entries 0" and `cache prune` "Removed 0 entries", exit
// status 0, and a build warned of every entry it could not store ("Not a directory"). Each
// command now names `v1` and the reason: stats, prune and clean exit with status 2, a
// build warns once and compiles without the cache, exit status 0.
#[test]
fn a_file_in_place_of_the_entries_directory_is_named() {
    let test = "cache::a_file_in_place_of_the_entries_directory_is_named";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    harness::write_modules(&work, "src", 8);
    let cache = work.path("cache");
    build_src(&work, py, &cache, &[]);
    let reference = pycs(&work.path("src"));
    std::fs::remove_dir_all(cache.join("v1")).unwrap();
    std::fs::write(cache.join("v1"), "x\n").unwrap();
    let shown = format!("`{}` is a file", cache.join("v1").display());
    for extra in [&[][..], &["--cache-read-only"]] {
        let run = build_src(&work, py, &cache, extra);
        assert_eq!(pycs(&work.path("src")), reference, "{extra:?}");
        let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
        assert!(warned.len() == 1 && warned[0].contains(&shown), "{extra:?}: {}", run.stderr);
        assert!(!run.stderr.contains("could not store"), "{extra:?}: {}", run.stderr);
    }
    for args in [&["stats"][..], &["prune", "--max-size", "1"], &["clean"]] {
        let run = work.hashpyc().arg("cache").args(args).arg("--cache").arg(&cache).run();
        run.assert_code(2);
        assert!(run.stderr.contains(&shown), "{args:?}: {}", run.stderr);
        assert!(
            !run.stdout.contains("entries      0") && !run.stderr.contains("Removed"),
            "{args:?}: {run:?}"
        );
    }
    assert_eq!(std::fs::read(cache.join("v1")).unwrap(), b"x\n", "left as it was");
}

// A truncated restore (every entry cut to 100 bytes) was silent without `-v`: each damaged
// entry was compiled again and replaced, and only `-v`'s counts said so. A build now warns
// once, with the count, never once per entry; the pycs are those the build first compiled.
// The warning blamed "the archive it was restored from" even for a cache never restored
// (helper report): it names a restore only when `stats.json` shows one (a copy of the
// cache), and otherwise the likely causes, none asserted.
#[test]
fn damaged_entries_are_warned_of_once() {
    let test = "cache::damaged_entries_are_warned_of_once";
    let Some(py) = harness::any_python(test) else { return };
    let work = Tree::new();
    harness::write_modules(&work, "src", 12);
    let cache = work.path("cache");
    build_src(&work, py, &cache, &[]);
    let reference = pycs(&work.path("src"));
    let files = entry_files(&cache);
    assert_eq!(files.len(), 12);
    for f in &files {
        std::fs::File::options().write(true).open(f).unwrap().set_len(100).unwrap();
    }
    remove_pycs(&work.path("src"));
    let build = |cache: &Path| {
        let run = work.hashpyc().arg("compile").python(py).arg("--cache").arg(cache).arg("src").run();
        run.assert_code(0);
        run
    };
    // A copy of the damaged cache, as an archive of it restored elsewhere would be.
    let copy = work.path("copy");
    assert!(Command::new("cp").arg("-a").arg(&cache).arg(&copy).status().unwrap().success());
    // Damaged where it was written, never restored: no archive is blamed.
    let run = build(&cache);
    assert_eq!(pycs(&work.path("src")), reference);
    let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    let want = format!(
        "warning: 12 entries of the bytecode cache `{}` were damaged (truncated or altered) and compiled \
         again; entries are written whole, so something changed them since: a disk or filesystem fault, \
         another program writing in the cache, or a broken archive restored over it",
        cache.display()
    );
    assert_eq!(warned, [want.as_str()], "{}", run.stderr);
    // Replaced: the next build hits them all and says nothing.
    remove_pycs(&work.path("src"));
    let run = build(&cache);
    assert_eq!(pycs(&work.path("src")), reference);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    // The copy (as an archive restored): its `stats.json` tells, and the warning says so.
    remove_pycs(&work.path("src"));
    let run = build(&copy);
    assert_eq!(pycs(&work.path("src")), reference);
    let warned: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("warning:")).collect();
    let want = format!(
        "warning: 12 entries of the bytecode cache `{}` were damaged (truncated or altered) and compiled \
         again; the cache was restored or copied since hashpyc last wrote it (its `stats.json` is a copy), \
         and the archive or copy it came from may be broken",
        copy.display()
    );
    assert_eq!(warned, [want.as_str()], "{}", run.stderr);
}

// A launcher whose flags come from a variable (`exec python3.X $PYFLAGS "$@"`): a source
// that failed to compile under one int-digits limit was remembered by the interpreter
// alone, and the run under another limit reported that failure again from memory (exit
// 1) without starting Python, though the interpreter as it now starts compiles it; the
// reverse too (a failure under `-X int_max_str_digits=640` reported by the plain run). A
// failure is now remembered with the settings that change what a compile gives, and one
// of a launcher whose probe is remembered is reported only once a worker's hello confirms
// those settings: each run's pyc is the one its interpreter's own py_compile writes as
// started, and what failed under the limit it was made under still fails there.
per_python!(a_remembered_failure_holds_for_its_int_digits_limit_only, |py: &Python| {
    let test = "a_remembered_failure_holds_for_its_int_digits_limit_only";
    let limits = Command::new(&py.path).args(["-c", "import sys; sys.get_int_max_str_digits"]).output();
    if !limits.is_ok_and(|o| o.status.success()) {
        return harness::visible(&format!("SKIPPED {test}: CPython {} has no int-digits limit", py.version));
    }
    let tree = Tree::new();
    tree.write("a/big.py", format!("X = {}\n", "7".repeat(5000)));
    tree.write("b/mid.py", format!("Y = {}\n", "7".repeat(1000)));
    let exe = py.path.display();
    let launcher = tree.write_executable("bin/py", format!("#!/bin/sh\nexec '{exe}' $PYFLAGS \"$@\"\n"));
    // The interpreter as each value of PYFLAGS starts it, for its own py_compile.
    let unlimited =
        tree.write_executable("bin/unl", format!("#!/bin/sh\nexec '{exe}' -X int_max_str_digits=0 \"$@\"\n"));
    let limited = tree
        .write_executable("bin/lim", format!("#!/bin/sh\nexec '{exe}' -X int_max_str_digits=640 \"$@\"\n"));
    let compile = |flags: &str, dir: &str| {
        tree.hashpyc()
            .env("HASHPYC_STATE_DIR", tree.path("state"))
            .env("PYFLAGS", flags)
            .arg("compile")
            .arg("--python")
            .arg(&launcher)
            .arg(dir)
            .run()
    };
    let pyc = |rel: &str| {
        let (dir, stem) = rel.split_once('/').unwrap();
        let tag = format!("cpython-{}{}", py.minor.0, py.minor.1);
        std::fs::read(tree.path(format!("{dir}/__pycache__/{stem}.{tag}.pyc"))).ok()
    };
    let own = |python: &Path, rel: &str| own_py_compile(python, &tree, &format!("{rel}.py"));
    // Fails under the default limit, and is remembered so.
    // (3.8 and 3.9 give the column too: `a/big.py:1:5: SyntaxError`.)
    let failed = |run: &harness::Run, rel: &str, limit: &str| {
        run.stderr.contains(&format!("{rel}:1:"))
            && run.stderr.contains(&format!("SyntaxError: Exceeds the limit ({limit}"))
    };
    let plain = compile("", "a");
    plain.assert_code(1);
    assert!(failed(&plain, "a/big.py", "4300"), "{}", plain.stderr);
    assert!(own(&py.path, "a/big").is_none() && pyc("a/big").is_none(), "{}", plain.stderr);
    // Without a limit it compiles, to the bytes the unlimited interpreter's py_compile writes.
    let none = compile("-X int_max_str_digits=0", "a");
    none.assert_code(0);
    assert!(pyc("a/big").is_some() && pyc("a/big") == own(&unlimited, "a/big"), "{}", none.stderr);
    // The default limit's failure is still its own.
    std::fs::remove_dir_all(tree.path("a/__pycache__")).unwrap();
    let plain = compile("", "a");
    plain.assert_code(1);
    assert!(failed(&plain, "a/big.py", "4300"), "{}", plain.stderr);
    // The reverse: a failure under a lower limit is not the default limit's.
    let low = compile("-X int_max_str_digits=640", "b");
    low.assert_code(1);
    assert!(failed(&low, "b/mid.py", "640"), "{}", low.stderr);
    assert!(own(&limited, "b/mid").is_none() && pyc("b/mid").is_none(), "{}", low.stderr);
    let plain = compile("", "b");
    plain.assert_code(0);
    assert!(pyc("b/mid").is_some() && pyc("b/mid") == own(&py.path, "b/mid"), "{}", plain.stderr);
});
