//! Micro-benchmarks of the Rust-side work (criterion): source hashing throughput over real
//! `.py` files with both SipHash variants, the scheduler's guess about each source
//! (`pool::predict`, compared with hashing the same bytes), header classification, and the
//! plan step over a generated tree of fresh pycs.
//!
//!     cargo bench --bench micro
//!
//! The `.py` files come from the standard library of `python3` on PATH (or
//! `HASHPYC_BENCH_PYTHON`); without one, a synthetic corpus is used.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use hashpyc::embed::Embed;
use hashpyc::layout::Layout;
use hashpyc::plan::{PlanOptions, PycPaths};
use hashpyc::pyc::{self, Accept, HashMode, HashVariant, Header, Magic};
use hashpyc::target;
use hashpyc::walk::Source;

/// Up to 2 000 real sources, largest first removed of outliers.
fn corpus() -> Vec<Vec<u8>> {
    let python = std::env::var("HASHPYC_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let stdlib = std::process::Command::new(&python)
        .args(["-I", "-c", "import sysconfig; print(sysconfig.get_paths()['stdlib'])"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut files = Vec::new();
    if let Some(dir) = stdlib.filter(|d| d.is_dir()) {
        collect(&dir, &mut files);
    }
    if files.is_empty() {
        // Synthetic: module-like text of varied sizes.
        return (0..2000)
            .map(|i| format!("def f{i}(x):\n    return x * {i}\n").repeat(1 + i % 97).into_bytes())
            .collect();
    }
    files.truncate(2000);
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if out.len() >= 2000 {
            return;
        }
        if p.is_dir() && !p.ends_with("__pycache__") {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "py") {
            out.push(p);
        }
    }
}

fn hashing(c: &mut Criterion) {
    let sources = corpus();
    let bytes: u64 = sources.iter().map(|s| s.len() as u64).sum();
    let magic = Magic::from_number(3531);
    let mut g = c.benchmark_group("source_hash");
    g.throughput(Throughput::Bytes(bytes));
    for variant in [HashVariant::Sip13, HashVariant::Sip24] {
        g.bench_function(format!("{variant}"), |b| {
            b.iter(|| sources.iter().map(|s| pyc::source_hash(variant, magic, s)[0] as u64).sum::<u64>())
        });
    }
    g.finish();
}

fn prediction(c: &mut Criterion) {
    let sources = corpus();
    let bytes: u64 = sources.iter().map(|s| s.len() as u64).sum();
    let mut g = c.benchmark_group("predict");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("predict", |b| {
        b.iter(|| {
            sources
                .iter()
                .map(|s| hashpyc::pool::predict::predict(s, true))
                .filter(|p| p.frozenset_with_str || p.imports_unicodedata)
                .count()
        })
    });
    g.finish();
}

fn classification(c: &mut Criterion) {
    let sources = corpus();
    let magic = Magic::from_number(3531);
    let headers: Vec<[u8; 16]> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mode = if i % 3 == 0 { HashMode::Unchecked } else { HashMode::Checked };
            Header::hashed(magic, mode, pyc::source_hash(HashVariant::Sip13, magic, s)).to_bytes()
        })
        .collect();
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(headers.len() as u64));
    g.bench_function("headers (hash precomputed)", |b| {
        b.iter(|| {
            headers
                .iter()
                .filter(|h| {
                    pyc::classify(&h[..], magic, Accept::Only(HashMode::Checked), || {
                        h[8..16].try_into().unwrap()
                    }) == pyc::Status::Fresh
                })
                .count()
        })
    });
    g.finish();
}

/// A tree of `n` sources with fresh checked pycs, built without Python: the pyc bodies are
/// real marshal data of a module (captured from CPython 3.12.1) with the embedded name
/// patched in, as the plan reads `co_filename`.
fn fresh_tree(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let t = target::known_target("3.12").unwrap();
    let mut paths = Vec::new();
    for i in 0..n {
        let rel = PathBuf::from(format!("pkg{}/mod{i}.py", i % 50));
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap().join("__pycache__")).unwrap();
        let source = format!("x = {i}\n").repeat(1 + i % 200);
        std::fs::write(&path, &source).unwrap();
        let name = path.to_str().unwrap().as_bytes();
        // marshal.dumps(compile("x = 1\n", NAME, "exec")) on CPython 3.12.1, with NAME
        // spliced in (short ASCII string, so one length byte).
        let mut body: Vec<u8> = b"c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf3\x08\x00\x00\x00\x97\x00d\x00Z\x00y\x01)\x02\xe9\x01\x00\x00\x00N)\x01\xda\x01x\xa9\x00\xf3\x00\x00\x00\x00\xfa".to_vec();
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(b"\xfa\x08<module>r\x06\x00\x00\x00\x01\x00\x00\x00s\n\x00\x00\x00\xf0\x03\x01\x01\x01\xd8\x04\x05\x81\x01r\x04\x00\x00\x00");
        let header =
            Header::hashed(t.magic, HashMode::Checked, pyc::source_hash(t.hash, t.magic, source.as_bytes()));
        let pyc_path = path.parent().unwrap().join(format!("__pycache__/mod{i}.cpython-312.pyc"));
        std::fs::write(pyc_path, [&header.to_bytes()[..], &body].concat()).unwrap();
        paths.push(path);
    }
    (dir, paths)
}

fn planning(c: &mut Criterion) {
    let (dir, paths) = fresh_tree(2000);
    let targets = vec![Arc::new(target::known_target("3.12").unwrap())];
    let layouts = vec![Layout::Pycache];
    let levels = [0u8];
    let cwd = dir.path().to_path_buf();
    let embed = Embed::default();
    let opts = PlanOptions {
        paths: PycPaths { targets: &targets, layouts: &layouts, levels: &levels, cwd: &cwd },
        mode: HashMode::Checked,
        force: false,
        embed: &embed,
        memos: &[],
        hardlink_dupes: false,
        warnings_as_errors: false,
    };
    let fresh = |p: &PathBuf| {
        let plan = hashpyc::plan::plan_one(Source { path: p.clone(), explicit: false, depth: 2 }, &opts);
        !plan.needs_compile()
            && plan.error.is_none()
            && plan.actions.iter().all(|a| *a == hashpyc::plan::Action::Fresh)
    };
    assert!(
        paths.iter().all(fresh),
        "the generated tree must be fresh, or the bench measures something else"
    );
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(paths.len() as u64));
    g.bench_function("fresh tree, one thread", |b| b.iter(|| paths.iter().filter(|p| fresh(p)).count()));
    g.finish();
}

criterion_group!(benches, hashing, prediction, classification, planning);
criterion_main!(benches);
