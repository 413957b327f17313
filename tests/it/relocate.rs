//! The marshal rewriter against real interpreters: the same sources compiled by `hashpyc
//! compile` at several paths, and every body rewritten by `marshal::relocate` from each
//! path to each other one, must give exactly what the compile at the destination gave, or
//! be refused; only the files that must be refused are.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use hashpyc::marshal::{self, Rules};

use crate::harness::{self, Hashpyc, Python, Tree};
use crate::per_python;

/// How many stdlib files to take (spread evenly over the sorted list), plus up to
/// `NON_ASCII` more whose bytes are not all ASCII.
const SAMPLE: usize = 300;
const NON_ASCII: usize = 20;

/// One copy of the corpus, compiled as `hashpyc compile ARG` in the tree's root, so the
/// embedded names start with ARG. The first place is the origin of the "per destination"
/// counts.
struct Place {
    kind: &'static str,
    /// Where the files are.
    root: PathBuf,
    /// The directory argument, which starts every embedded name.
    arg: PathBuf,
}

fn places(tree: &Tree) -> Vec<Place> {
    let base = tree.root();
    let absolute = |kind, rel: PathBuf| Place { kind, root: base.join(&rel), arg: base.join(&rel) };
    let long: PathBuf = ["l", "o", "n"].iter().map(|c| c.repeat(100)).collect();
    vec![
        absolute("origin", "work/src/project-a".into()),
        absolute("short", "s".into()),
        absolute("long", long),
        absolute("non-ascii", "dé_日本_€".into()),
        absolute("non-utf8", OsStr::from_bytes(b"bad\xff\xfe-\xe9t\xe9").into()),
        Place { kind: "relative", root: base.join("rel"), arg: "rel".into() },
    ]
}

/// The embedded name of `rel` compiled under the directory argument `root` (the path as
/// walked), as marshal holds it.
fn name(root: &Path, rel: &Path) -> Vec<u8> {
    marshal::filename_bytes(root.join(rel).as_os_str().as_bytes()).into_owned()
}

const NESTED: &str = r#"import functools

def outer(a, *args, b=2, **kw):
    c = [x * a for x in args]
    d = {k: v for k, v in kw.items()}
    e = {y for y in c}
    g = (z for z in c)

    def middle():
        nonlocal a
        a += 1

        def inner():
            return a, b, lambda q: q + a

        return inner

    class Local:
        attr = [w for w in range(3)]

        def method(self):
            return super().__repr__()

    return c, d, e, g, middle, Local


@functools.lru_cache()
def decorated(n):
    try:
        return 1 / n
    except ZeroDivisionError as exc:
        raise ValueError("zero") from exc
    finally:
        pass


async def coro(xs):
    async with xs as y:
        return [await v async for v in y]


class Outer:
    """Docstring."""

    class Inner:
        def deep(self):
            return (lambda: (lambda: "m"))()

    value = f"{outer!r:>10}"
    key = frozenset({"a", "b", 1, 2.5})
"#;

const NON_ASCII_SOURCE: &str = "# -*- coding: utf-8 -*-\n\
nom = \"été\"\n\
\n\
def café(x):\n    return [é for é in x]\n\
\n\
class Ünïcode:\n    def méthode(self):\n        return \"日本\", \"\\udcff\"\n";

/// Sources written into every place, with the relative path of each.
fn crafted(origin: &Path, short: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let lit =
        |root: &Path, rel: &str| String::from_utf8(name(root, Path::new(rel))).expect("ASCII test root");
    vec![
        // A constant equal to its own embedded path at the origin.
        (
            "crafted/selfpath.py".into(),
            format!("PATH = {:?}\n", lit(origin, "crafted/selfpath.py")).into_bytes(),
        ),
        // A constant equal to its embedded path at the short place.
        (
            "crafted/newpath.py".into(),
            format!("PATH = {:?}\n", lit(short, "crafted/newpath.py")).into_bytes(),
        ),
        // Strings near the path (its base name, directory, another suffix): not equal to it.
        (
            "crafted/near.py".into(),
            format!(
                "PARTS = ({:?}, {:?}, {:?}, 'near.py')\n",
                lit(origin, "crafted"),
                lit(origin, "crafted/near.pyc"),
                lit(short, "crafted/near.pyc"),
            )
            .into_bytes(),
        ),
        ("crafted/nested.py".into(), NESTED.as_bytes().to_vec()),
        ("crafted/empty.py".into(), Vec::new()),
        ("crafted/nonascii.py".into(), NON_ASCII_SOURCE.as_bytes().to_vec()),
        ("crafted/latin1.py".into(), b"# -*- coding: latin-1 -*-\ns = 'caf\xe9'\n".to_vec()),
    ]
}

/// The relocations that must be refused, as (file, from kind, to kind).
fn must_refuse(file: &Path, from: &str, to: &str) -> bool {
    let hit = |kind: &str| from == kind || to == kind;
    (file == Path::new("crafted/selfpath.py") && hit("origin"))
        || (file == Path::new("crafted/newpath.py") && hit("short"))
}

/// A deterministic sample of the interpreter's own stdlib, relative to its directory.
fn stdlib_sample(py: &Python) -> (PathBuf, Vec<PathBuf>) {
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
    let step = (all.len() / SAMPLE).max(1);
    let mut chosen: BTreeSet<PathBuf> = all.iter().step_by(step).take(SAMPLE).cloned().collect();
    let non_ascii: Vec<PathBuf> = all
        .iter()
        .filter(|p| !chosen.contains(*p) && std::fs::read(lib.join(p)).is_ok_and(|b| !b.is_ascii()))
        .take(NON_ASCII)
        .cloned()
        .collect();
    chosen.extend(non_ascii);
    (lib, chosen.into_iter().collect())
}

/// The pyc bodies under `root`, keyed by source path relative to `root`.
fn bodies(py: &Python, root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let suffix = format!(".cpython-{}{}.pyc", py.minor.0, py.minor.1);
    let mut out = BTreeMap::new();
    for rel in harness::files_with_suffix(root, ".pyc") {
        let file = rel.file_name().expect("name").as_bytes();
        let stem = file.strip_suffix(suffix.as_bytes()).expect("a pyc of this interpreter");
        let dir = rel.parent().and_then(Path::parent).expect("under __pycache__");
        let source = dir.join(OsStr::from_bytes(&[stem, b".py"].concat()));
        let pyc = std::fs::read(root.join(&rel)).expect("read pyc");
        assert!(pyc.len() > 16, "{}: short pyc", rel.display());
        out.insert(source, pyc[16..].to_vec());
    }
    out
}

#[derive(Default)]
struct Count {
    relocated: usize,
    refused: usize,
    mismatched: usize,
}

per_python!(stdlib_relocates_exactly, |py: &Python| {
    let rules = Rules::for_version(py.minor.0, py.minor.1).expect("a validated version");
    let tree = Tree::new();
    let places = places(&tree);
    let (lib, sample) = stdlib_sample(py);
    let mut sources: Vec<(PathBuf, Vec<u8>)> = sample
        .iter()
        .map(|rel| (Path::new("lib").join(rel), std::fs::read(lib.join(rel)).expect("read stdlib source")))
        .collect();
    sources.extend(crafted(&places[0].arg, &places[1].arg));

    let mut compiled: Vec<BTreeMap<PathBuf, Vec<u8>>> = Vec::new();
    for place in &places {
        for (rel, content) in &sources {
            let dst = place.root.join(rel);
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::write(&dst, content).expect("write source");
        }
        let run = tree.hashpyc().args(["compile", "-q"]).python(py).arg(&place.arg).run();
        // Some stdlib files are deliberately invalid: exit 1 (findings) is expected.
        assert!(run.code == Some(0) || run.code == Some(1), "{}: {run:?}", py.label());
        assert!(!run.stderr.contains("internal error"), "{}", run.stderr);
        let got = bodies(py, &place.root);
        for (rel, body) in &got {
            assert_eq!(
                marshal::code_filename(body, rules.layout()),
                Ok(&name(&place.arg, rel)[..]),
                "{}: {} at {}",
                py.label(),
                rel.display(),
                place.kind
            );
        }
        compiled.push(got);
    }
    let files: Vec<&PathBuf> = compiled[0].keys().collect();
    for (place, got) in places.iter().zip(&compiled) {
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            files,
            "{}: other files compiled at {}",
            py.label(),
            place.kind
        );
    }
    assert!(files.len() >= SAMPLE / 2, "{}: only {} files compiled", py.label(), files.len());

    // Store-time check: only the files holding their own path are not relocatable.
    for (place, got) in places.iter().zip(&compiled) {
        for (rel, body) in got {
            let ok = marshal::relocatable(body, rules, &name(&place.arg, rel));
            let expect_ok = !must_refuse(rel, place.kind, "");
            assert_eq!(
                ok.is_ok(),
                expect_ok,
                "{}: relocatable({}) at {}: {ok:?}",
                py.label(),
                rel.display(),
                place.kind
            );
        }
    }

    let mut per_destination: BTreeMap<&str, Count> = BTreeMap::new();
    let mut all = Count::default();
    let mut problems = Vec::new();
    for (x, from) in places.iter().enumerate() {
        for (y, to) in places.iter().enumerate() {
            if x == y {
                continue;
            }
            for rel in &files {
                let body = &compiled[x][*rel];
                let want = &compiled[y][*rel];
                let got = marshal::relocate(body, rules, &name(&from.arg, rel), &name(&to.arg, rel));
                let count = &mut all;
                match &got {
                    Ok(out) if out == want => count.relocated += 1,
                    Ok(out) => {
                        count.mismatched += 1;
                        let at = out.iter().zip(want.iter()).position(|(a, b)| a != b);
                        problems.push(format!(
                            "MISMATCH {} {}->{}: first difference at {at:?}, lengths {} vs {}",
                            rel.display(),
                            from.kind,
                            to.kind,
                            out.len(),
                            want.len()
                        ));
                    }
                    Err(e) => {
                        count.refused += 1;
                        if !must_refuse(rel, from.kind, to.kind) {
                            problems.push(format!(
                                "REFUSED {} {}->{}: {e}",
                                rel.display(),
                                from.kind,
                                to.kind
                            ));
                        }
                    }
                }
                if got.is_ok() && must_refuse(rel, from.kind, to.kind) {
                    problems.push(format!("NOT REFUSED {} {}->{}", rel.display(), from.kind, to.kind));
                }
                if x == 0 {
                    let c = per_destination.entry(to.kind).or_default();
                    match &got {
                        Ok(out) if out == want => c.relocated += 1,
                        Ok(_) => c.mismatched += 1,
                        Err(_) => c.refused += 1,
                    }
                }
            }
        }
    }
    let summary: Vec<String> = per_destination
        .iter()
        .map(|(k, c)| format!("{k} {}/{}/{}", c.relocated, c.refused, c.mismatched))
        .collect();
    harness::visible(&format!(
        "relocate {}: {} files; origin-> (relocated/refused/mismatched) {}; all {} pairs {}/{}/{}",
        py.version,
        files.len(),
        summary.join(", "),
        places.len() * (places.len() - 1),
        all.relocated,
        all.refused,
        all.mismatched
    ));
    assert!(problems.is_empty(), "{}:\n{}", py.label(), problems.join("\n"));
    for (kind, c) in &per_destination {
        assert!(
            c.relocated * 100 >= files.len() * 99,
            "{}: only {} of {} relocated to {kind}",
            py.label(),
            c.relocated,
            files.len()
        );
    }
});

// An embedded path that is also an identifier (a pyc py_compile wrote for a file named
// without `.py`; hashpyc itself compiles only `.py` files): on 3.13+ the interned
// `co_filename` *is* the name's string object, so the body at another path differs by a
// reference, not by a string. Such bodies must be refused.
per_python!(paths_equal_to_names_are_refused, |py: &Python| {
    let rules = Rules::for_version(py.minor.0, py.minor.1).expect("a validated version");
    let tree = Tree::new();
    let source = b"mod_name = 1\nother = 2\n";
    let places = [("a", "mod_name"), ("b", "other"), ("c", "plain.py")];
    let mut bodies = Vec::new();
    for (dir, file) in places {
        tree.write(Path::new(dir).join(file), source);
        if file.ends_with(".py") {
            Hashpyc::new(&tree.path(dir)).args(["compile", "-q"]).python(py).arg(file).run().assert_code(0);
        } else {
            // CPython's own py_compile, in a fresh process, as hashpyc's workers compile.
            let out = py
                .cmd()
                .current_dir(tree.path(dir))
                .args([
                    "-c",
                    "import py_compile, sys; py_compile.compile(sys.argv[1], cfile='__pycache__/x.pyc', \
                     dfile=sys.argv[1], doraise=True, \
                     invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)",
                    file,
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let pyc = harness::files_with_suffix(&tree.path(dir), ".pyc");
        assert_eq!(pyc.len(), 1, "{}: {pyc:?}", py.label());
        let body = std::fs::read(tree.path(dir).join(&pyc[0])).expect("read pyc")[16..].to_vec();
        assert_eq!(marshal::code_filename(&body, rules.layout()), Ok(file.as_bytes()));
        bodies.push(body);
    }
    use marshal::RelocateError::{NewElsewhere, OldElsewhere};
    let go = |x: usize, y: usize| {
        marshal::relocate(&bodies[x], rules, places[x].1.as_bytes(), places[y].1.as_bytes())
    };
    assert_eq!(go(0, 1), Err(OldElsewhere), "{}", py.label());
    assert_eq!(go(1, 0), Err(OldElsewhere), "{}", py.label());
    assert_eq!(go(2, 0), Err(NewElsewhere), "{}", py.label());
    assert_eq!(go(0, 2), Err(OldElsewhere), "{}", py.label());
    assert_eq!(marshal::relocatable(&bodies[0], rules, b"mod_name"), Err(OldElsewhere));
    assert_eq!(marshal::relocatable(&bodies[2], rules, b"plain.py"), Ok(()));
    if py.minor >= (3, 13) {
        // Same length, different bytes: only a reference index moved.
        assert_eq!(bodies[0].len(), bodies[1].len(), "{}", py.label());
        assert_ne!(bodies[0], bodies[1], "{}", py.label());
    }
});
