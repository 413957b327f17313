//! Hash a source file as CPython X.Y's `importlib.util.source_hash` does (the value a
//! checked pyc must carry), using the library and its built-in table of versions:
//!
//!     cargo run --example source_hash -- 3.12 path/to/module.py

use hashpyc::{pyc, target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(version), Some(path)) = (args.next(), args.next()) else {
        return Err("usage: source_hash X.Y FILE.py".into());
    };
    let python = target::known_target(&version)?;
    let source = std::fs::read(&path)?;
    let hash = pyc::source_hash(python.hash, python.magic, &source);
    println!("{}  {path}  ({} keyed by magic {})", pyc::hex(&hash), python.hash, python.magic);
    Ok(())
}
