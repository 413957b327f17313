//! Classify a pyc against its source for CPython X.Y, as `hashpyc check` does for one
//! file: is it fresh, stale, timestamp-based, or something the interpreter would reject?
//!
//!     cargo run --example classify -- 3.12 module.py __pycache__/module.cpython-312.pyc

use hashpyc::pyc::{self, Accept, HashMode, Status};
use hashpyc::target;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [version, source, pyc_path] = args.as_slice() else {
        return Err("usage: classify X.Y SOURCE.py FILE.pyc".into());
    };
    let python = target::known_target(version)?;
    let data = std::fs::read(pyc_path)?;
    let status = pyc::classify(&data, python.magic, Accept::Only(HashMode::Checked), || {
        let bytes = std::fs::read(source).unwrap_or_default();
        pyc::source_hash(python.hash, python.magic, &bytes)
    });
    let verdict = match status {
        Status::Fresh => "fresh: checked hash-based, matches the source".to_string(),
        Status::WrongMode(mode) => format!("matches the source, but is {mode:?} hash-based"),
        Status::Stale => "stale: compiled from other source bytes".to_string(),
        Status::Timestamp => "timestamp-based: can go stale unnoticed".to_string(),
        Status::Invalid(why) => format!("invalid: {why}"),
    };
    println!("{pyc_path}: {verdict}");
    Ok(())
}
