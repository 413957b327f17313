//! `hashpyc inspect`: describe pyc files — magic and Python version, mode, source hash
//! (and whether it matches the source when that is found), body size, embedded path.

use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::marshal::{self, CodeLayout};
use crate::pyc::{self, HashVariant, Header, Kind, Magic};
use crate::report::Style;
use crate::target::{self, KNOWN};
use crate::{Error, ExitStatus};

#[derive(Debug, Serialize)]
struct Description {
    #[serde(serialize_with = "crate::report::json_path")]
    pyc: PathBuf,
    /// None (JSON null) for what the file does not have: no header, no flags, no body.
    magic: Option<String>,
    python: Option<String>,
    mode: Option<String>,
    hash: Option<String>,
    mtime: Option<u32>,
    source_size: Option<u32>,
    #[serde(serialize_with = "crate::report::json_opt_path")]
    source: Option<PathBuf>,
    matches_source: Option<bool>,
    body_bytes: Option<usize>,
    /// Of `body_bytes`, those after the code object (CPython ignores them; py_compile
    /// writes none): None when the body is not read as a code object.
    trailing_bytes: Option<usize>,
    #[serde(serialize_with = "crate::report::json_opt_path")]
    embedded_path: Option<PathBuf>,
    error: Option<String>,
}

/// Where the source of a pyc would be: `__pycache__/<stem>.<tag>[.opt-N].pyc` →
/// `<stem>.py` beside `__pycache__`; `<name>.pyc` elsewhere → `<name>.py`.
pub fn source_for(pyc_path: &Path) -> Option<PathBuf> {
    let name = pyc_path.file_name()?.as_bytes();
    let base = name.strip_suffix(b".pyc")?;
    let parent = pyc_path.parent()?;
    if parent.file_name().is_some_and(|n| n == "__pycache__") {
        let base = base.strip_suffix(b".opt-1").or_else(|| base.strip_suffix(b".opt-2")).unwrap_or(base);
        let dot = base.iter().rposition(|&b| b == b'.')?;
        let mut src = base[..dot].to_vec();
        src.extend_from_slice(b".py");
        Some(parent.parent()?.join(std::ffi::OsStr::from_bytes(&src)))
    } else {
        let mut src = base.to_vec();
        src.extend_from_slice(b".py");
        Some(parent.join(std::ffi::OsStr::from_bytes(&src)))
    }
}

fn describe(path: &Path) -> Description {
    let mut d = Description {
        pyc: path.to_path_buf(),
        magic: None,
        python: None,
        mode: None,
        hash: None,
        mtime: None,
        source_size: None,
        source: None,
        matches_source: None,
        body_bytes: None,
        trailing_bytes: None,
        embedded_path: None,
        error: None,
    };
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            d.error = Some("is a directory, not a pyc file".into());
            return d;
        }
        Err(e) => {
            d.error = Some(crate::io::io_reason(&e));
            return d;
        }
    };
    let Some(h) = Header::parse(&data) else {
        d.error = Some(format!("not a pyc file: only {} bytes, shorter than a pyc header", data.len()));
        return d;
    };
    if !h.magic.is_well_formed() {
        d.error = Some(format!(
            "not a pyc file: it does not start with a magic number (found bytes {})",
            pyc::hex(&h.magic.0)
        ));
        return d;
    }
    d.magic = Some(h.magic.to_string());
    let Some(minor) = target::version_of_magic(h.magic) else {
        // Before 3.7 (PEP 552) a header had no flags field: what follows the magic is not
        // a mode, so nothing past the magic is described.
        let n = h.magic.number();
        d.error = Some(if (3000..=3379).contains(&n) || (20121..=62211).contains(&n) {
            format!("a pyc of a Python older than 3.7 (magic number {n}), which hashpyc does not support")
        } else {
            let (first, last) = (KNOWN[0].minor, KNOWN[KNOWN.len() - 1].minor);
            format!(
                "unknown magic number {n}: not a pyc of CPython {}.{} to {}.{}",
                first.0, first.1, last.0, last.1
            )
        });
        return d;
    };
    d.python = Some(format!("{}.{}", minor.0, minor.1));
    d.body_bytes = Some(data.len() - pyc::HEADER_LEN);
    let minor = Some(minor);
    match h.kind() {
        Err(why) => {
            // importlib refuses such a pyc ("invalid flags").
            d.mode = Some(format!("invalid ({why})"));
            d.error = Some(format!("not a valid pyc: {why}"));
        }
        Ok(Kind::Timestamp { mtime, size }) => {
            d.mode = Some("timestamp".into());
            d.mtime = Some(mtime);
            d.source_size = Some(size);
        }
        Ok(Kind::Hash { mode, hash }) => {
            d.mode = Some(match mode {
                pyc::HashMode::Checked => "checked-hash".into(),
                pyc::HashMode::Unchecked => "unchecked-hash".into(),
            });
            d.hash = Some(pyc::hex(&hash));
            if let Some(src) = source_for(path).filter(|p| p.is_file()) {
                if let Ok(bytes) = std::fs::read(&src) {
                    d.matches_source =
                        Some(hash == pyc::source_hash(variant_for(h.magic, minor), h.magic, &bytes));
                }
                d.source = Some(src);
            }
        }
    }
    if let Some((a, b)) = minor {
        let body = &data[pyc::HEADER_LEN..];
        match marshal::code_filename(body, CodeLayout::for_version(a, b)) {
            Ok(name) => {
                d.embedded_path =
                    Some(PathBuf::from(std::ffi::OsString::from_vec(marshal::path_from_filename(name))));
            }
            Err(e) => {
                d.error.get_or_insert(format!("body: {e}"));
            }
        }
        // The body must start with a whole code object, or the import fails; what follows
        // it, CPython ignores.
        if d.error.is_none() {
            match marshal::code_body(body, CodeLayout::for_version(a, b)) {
                Ok(code) => d.trailing_bytes = Some(code.trailing),
                Err(e) => d.error = Some(format!("body: {e}")),
            }
        }
    }
    d
}

fn variant_for(magic: Magic, minor: Option<(u8, u8)>) -> HashVariant {
    match minor {
        Some(m) if m < (3, 11) => HashVariant::Sip24,
        Some(_) => HashVariant::Sip13,
        None => KNOWN.last().map_or(HashVariant::Sip13, |k| {
            if magic.number() > k.magic_number { HashVariant::Sip13 } else { k.hash }
        }),
    }
}

pub fn inspect(files: &[PathBuf], json: bool, style: Style) -> Result<ExitStatus, Error> {
    let mut status = ExitStatus::Success;
    let mut out = std::io::stdout().lock();
    for f in files {
        let d = describe(f);
        if d.error.is_some() {
            status = ExitStatus::Findings;
        }
        let text = if json {
            serde_json::to_string(&d).expect("serializable")
        } else {
            let mut lines = vec![style.bold(&d.pyc.display().to_string())];
            if let Some(magic) = &d.magic {
                let python = d
                    .python
                    .as_deref()
                    .map_or("unknown Python version".to_string(), |p| format!("CPython {p}"));
                lines.push(format!("  magic        {magic} ({python})"));
            }
            if let Some(mode) = &d.mode {
                lines.push(format!("  mode         {mode}"));
            }
            if let Some(h) = &d.hash {
                let verdict = match (d.matches_source, &d.source) {
                    (Some(true), Some(s)) => format!(" (matches `{}`)", s.display()),
                    (Some(false), Some(s)) => format!(" (does NOT match `{}`)", s.display()),
                    _ => " (source not found)".to_string(),
                };
                lines.push(format!("  source hash  {h}{verdict}"));
            }
            if let (Some(m), Some(s)) = (d.mtime, d.source_size) {
                lines.push(format!("  source mtime {m} (seconds), size {s}"));
            }
            if let Some(n) = d.body_bytes {
                lines.push(format!("  body         {n} bytes"));
            }
            if let Some(n) = d.trailing_bytes.filter(|&n| n > 0) {
                lines.push(format!(
                    "  trailing     {} (CPython ignores them; py_compile writes none)",
                    crate::plan::trailing_bytes(n)
                ));
            }
            if let Some(p) = &d.embedded_path {
                lines.push(format!("  co_filename  {}", p.display()));
            }
            if let Some(e) = &d.error {
                lines.push(format!("  {}: {e}", style.error()));
            }
            lines.join("\n")
        };
        if writeln!(out, "{text}").is_err() {
            break;
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_of_pycs() {
        assert_eq!(source_for(Path::new("a/__pycache__/m.cpython-312.pyc")), Some(PathBuf::from("a/m.py")));
        assert_eq!(
            source_for(Path::new("a/__pycache__/m.x.cpython-312.opt-2.pyc")),
            Some(PathBuf::from("a/m.x.py"))
        );
        assert_eq!(source_for(Path::new("a/m.pyc")), Some(PathBuf::from("a/m.py")));
        assert_eq!(source_for(Path::new("a/m.txt")), None);
    }
}
