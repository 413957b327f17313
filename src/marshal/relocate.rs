//! The marshal *rewriter*: given the body a pristine worker produced for a source compiled
//! with embedded path OLD, the bytes the same worker would have produced with path NEW, or
//! a refusal saying why that cannot be guaranteed. It owns every rule that makes such a
//! rewrite exact (which string object `co_filename` is, how marshal writes it, when the
//! path could have shaped anything else) and refuses whenever one does not hold: the
//! caller then compiles, so a refusal costs time and a wrong byte is never an option.
//!
//! Why replacing one string is enough (CPython 3.7–3.15, sources read in `Python/marshal.c`,
//! `Objects/codeobject.c`, `Objects/unicodeobject.c`, `Python/compile.c`):
//! - `compile()` turns the path into one str (`PyUnicode_FSDecoder`, the caller's own
//!   object when it passes a str) and every code object of that compile gets that same
//!   object as `co_filename` (`c_filename`, passed to each `makecode` /
//!   `_PyAssemble_MakeCodeObject`). Marshal therefore writes it once, with FLAG_REF when it
//!   is shared, and every later `co_filename` is a TYPE_REF to it; references count
//!   FLAG_REF'd objects, so changing that one string's bytes and length moves no index.
//! - Marshal picks the string's type from its content: ASCII and under 256 characters
//!   `z`, longer ASCII `a`, anything else `u` (UTF-8 with `surrogatepass`), each with an
//!   interned variant (`Z`, `A`, `t`) when the object is interned.
//! - Whether `co_filename` is interned depends on the version, not on its content:
//!   3.13+ interns it in `init_code` (`_PyUnicode_InternMortal`), 3.7–3.12 never do. The
//!   exceptions are strings CPython keeps as shared singletons (the empty string and
//!   single latin-1 characters, interned or not by whatever ran before): refused.
//! - FLAG_REF depends on the object's reference count at dump time: the code objects that
//!   share it and the caller's own reference (hashpyc's worker holds the path in a local,
//!   as `py_compile` does), never on its content. On 3.11+ an interned string is always
//!   flagged.
//! - The path shapes nothing else in the body: it reaches the compiler only for error
//!   messages and warnings. The exception is an equal string elsewhere in the body (a
//!   constant or name equal to OLD or NEW could be, or become, the same object), so any
//!   such body is refused.
//!
//! The integration test `relocate` checks this on hundreds of real files per interpreter.

use thiserror::Error;

use super::{CodeLayout, FLAG_REF, MarshalError, StrUse};

/// Marshal's limit on a string's length (`W_SIZE`).
const MAX_STR: usize = 0x7FFF_FFFF;

/// What relocation must know about the CPython that wrote a body: its code object layout
/// and whether it interns `co_filename`. Only versions whose rules were checked exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    layout: CodeLayout,
    interned: bool,
}

impl Rules {
    /// The rules for CPython `major.minor`; a version the rules were not checked on (before
    /// 3.7 or after 3.15) is refused, since its compiler may embed the path differently.
    pub fn for_version(major: u8, minor: u8) -> Result<Rules, RelocateError> {
        match (major, minor) {
            (3, 7..=15) => Ok(Rules { layout: CodeLayout::for_version(major, minor), interned: minor >= 13 }),
            _ => Err(RelocateError::UnsupportedVersion { major, minor }),
        }
    }

    pub fn layout(self) -> CodeLayout {
        self.layout
    }
}

/// Why a body cannot be relocated (or stored path-independently).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RelocateError {
    #[error("relocation is not validated on CPython {major}.{minor}")]
    UnsupportedVersion { major: u8, minor: u8 },
    #[error("unreadable marshal data")]
    Marshal(#[from] MarshalError),
    #[error("marshal data is not a code object")]
    NotCode,
    #[error("code objects disagree on `co_filename`")]
    FilenamesDisagree,
    #[error("`co_filename` is not the given path")]
    WrongFilename,
    #[error("the path also occurs as another string")]
    OldElsewhere,
    #[error("the new path already occurs as another string")]
    NewElsewhere,
    #[error("`co_filename` is not one shared string")]
    NotShared,
    #[error("`co_filename` is written as type {0:#04x}, not as this interpreter writes it")]
    UnexpectedType(u8),
    #[error("a path under two characters can be a shared singleton string")]
    TooShort,
    #[error("the path is not a string CPython can embed")]
    InvalidPath,
    #[error("the new path is too long for marshal")]
    TooLong,
}

/// Rewrite every code object's `co_filename` from `old` to `new`, both as marshal holds
/// them (`filename_bytes` of a POSIX path), or say why the result could differ from a
/// compile at `new`. `body` must come from a compile whose caller held the path string
/// while dumping (hashpyc's worker, `py_compile`).
///
/// When `old == new` the body is returned unchanged once it parses and every
/// `co_filename` is `old`: a compile at the same path is the same compile, so the other
/// checks are skipped.
pub fn relocate(body: &[u8], rules: Rules, old: &[u8], new: &[u8]) -> Result<Vec<u8>, RelocateError> {
    let uses = read(body, rules, old)?;
    if old == new {
        return Ok(body.to_vec());
    }
    let at = movable(body, rules, old, &uses)?;
    let chars = check_path(new)?;
    if new.len() > MAX_STR {
        return Err(RelocateError::TooLong);
    }
    if uses.iter().any(|u| &body[u.start..u.end] == new) {
        return Err(RelocateError::NewElsewhere);
    }
    let code = type_for(new, chars, rules.interned) | (at.code & FLAG_REF);
    let mut out = Vec::with_capacity(body.len() - (at.end - at.head) + new.len() + 5);
    out.extend_from_slice(&body[..at.head]);
    out.push(code);
    if code & !FLAG_REF == b'Z' || code & !FLAG_REF == b'z' {
        // `type_for` chose a short form, so `new` is ASCII and under 256 bytes.
        out.push(new.len() as u8);
    } else {
        out.extend_from_slice(&(new.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(new);
    out.extend_from_slice(&body[at.end..]);
    Ok(out)
}

/// Whether `body`, compiled with embedded path `filename`, can be relocated to other
/// paths: its path occurs only as `co_filename`, as the one shared string marshal writes
/// for it. A cache can store such a body path-independently; `relocate` may still refuse
/// a particular destination.
pub fn relocatable(body: &[u8], rules: Rules, filename: &[u8]) -> Result<(), RelocateError> {
    let uses = read(body, rules, filename)?;
    movable(body, rules, filename, &uses).map(|_| ())
}

/// Parse the whole body and check that every `co_filename` is `old`.
fn read(body: &[u8], rules: Rules, old: &[u8]) -> Result<Vec<StrUse>, RelocateError> {
    let uses = super::string_uses(body, rules.layout)?;
    if body.first().map(|c| c & !FLAG_REF) != Some(b'c') {
        return Err(RelocateError::NotCode);
    }
    let mut names = uses.iter().filter(|u| u.filename).map(|u| &body[u.start..u.end]);
    let first = names.next().ok_or(RelocateError::NotCode)?;
    if names.any(|n| n != first) {
        return Err(RelocateError::FilenamesDisagree);
    }
    if first != old {
        return Err(RelocateError::WrongFilename);
    }
    Ok(uses)
}

/// The old side: `old` occurs only as `co_filename`, written once in the form this
/// interpreter writes it. Returns that occurrence.
fn movable(body: &[u8], rules: Rules, old: &[u8], uses: &[StrUse]) -> Result<StrUse, RelocateError> {
    let chars = check_path(old)?;
    let mut inline = None;
    for u in uses.iter().filter(|u| &body[u.start..u.end] == old) {
        if !u.filename {
            return Err(RelocateError::OldElsewhere);
        }
        if u.inline() {
            if inline.is_some() {
                return Err(RelocateError::NotShared);
            }
            inline = Some(*u);
        }
    }
    // `read` found a `co_filename` equal to `old`, and a reference follows what it refers to.
    let at = inline.ok_or(RelocateError::NotShared)?;
    let flagged = at.code & FLAG_REF != 0;
    if at.code & !FLAG_REF != type_for(old, chars, rules.interned) || (rules.interned && !flagged) {
        return Err(RelocateError::UnexpectedType(at.code));
    }
    Ok(at)
}

/// The marshal type of a str with these UTF-8 bytes (`w_complex_object`).
fn type_for(bytes: &[u8], chars: usize, interned: bool) -> u8 {
    match (bytes.is_ascii(), chars < 256, interned) {
        (true, true, false) => b'z',
        (true, true, true) => b'Z',
        (true, false, false) => b'a',
        (true, false, true) => b'A',
        (false, _, false) => b'u',
        (false, _, true) => b't',
    }
}

/// The number of characters of the str whose `surrogatepass` UTF-8 is `bytes`, if it is a
/// path CPython can embed (no NUL) of at least two characters.
fn check_path(bytes: &[u8]) -> Result<usize, RelocateError> {
    let chars = str_chars(bytes).ok_or(RelocateError::InvalidPath)?;
    if bytes.contains(&0) {
        return Err(RelocateError::InvalidPath);
    }
    if chars < 2 {
        return Err(RelocateError::TooShort);
    }
    Ok(chars)
}

/// Characters in `bytes` read as UTF-8 that may encode surrogates (what `surrogatepass`
/// writes, and how `marshal.loads` decodes `u` and `t` strings), or `None` when no str
/// encodes to these bytes.
pub(crate) fn str_chars(bytes: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut chars = 0;
    while i < bytes.len() {
        let lead = bytes[i];
        // The allowed range of the second byte, and the sequence length.
        let (second, len) = match lead {
            0x00..=0x7F => ((0, 0), 1),
            0xC2..=0xDF => ((0x80, 0xBF), 2),
            0xE0 => ((0xA0, 0xBF), 3),
            0xE1..=0xEF => ((0x80, 0xBF), 3),
            0xF0 => ((0x90, 0xBF), 4),
            0xF1..=0xF3 => ((0x80, 0xBF), 4),
            0xF4 => ((0x80, 0x8F), 4),
            _ => return None,
        };
        let seq = bytes.get(i..i + len)?;
        if len > 1 && !(second.0..=second.1).contains(&seq[1]) {
            return None;
        }
        if seq.iter().skip(2).any(|b| !(0x80..=0xBF).contains(b)) {
            return None;
        }
        i += len;
        chars += 1;
    }
    Some(chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marshal::{code_filename, filename_bytes, scan};

    // marshal.dumps(compile(SRC, path, "exec", dont_inherit=True)) with `path` held in a
    // local, path = "/src/m.py" and b"/d\xff\xc3\xa9/m.py" decoded with surrogateescape,
    // SRC = nested functions, a class, a comprehension and a lambda; CPython 3.8.18 and
    // 3.13.0.
    const PY38_ASCII: &[u8] = include_bytes!("testdata/py38-ascii.marshal");
    const PY38_NONASCII: &[u8] = include_bytes!("testdata/py38-nonascii.marshal");
    const PY313_ASCII: &[u8] = include_bytes!("testdata/py313-ascii.marshal");
    const PY313_NONASCII: &[u8] = include_bytes!("testdata/py313-nonascii.marshal");
    const ASCII: &[u8] = b"/src/m.py";
    const NONASCII: &[u8] = b"/d\xff\xc3\xa9/m.py";

    fn rules(minor: u8) -> Rules {
        Rules::for_version(3, minor).unwrap()
    }

    #[test]
    fn matches_cpython_both_ways() {
        let nonascii = filename_bytes(NONASCII);
        for (minor, a, b) in [(8, PY38_ASCII, PY38_NONASCII), (13, PY313_ASCII, PY313_NONASCII)] {
            assert_eq!(relocate(a, rules(minor), ASCII, &nonascii).as_deref(), Ok(b), "3.{minor}");
            assert_eq!(relocate(b, rules(minor), &nonascii, ASCII).as_deref(), Ok(a), "3.{minor}");
            assert_eq!(relocatable(a, rules(minor), ASCII), Ok(()));
        }
    }

    #[test]
    fn output_reads_back_with_the_new_name() {
        let long = [b"/".as_slice(), &[b'x'; 300], b"/m.py"].concat();
        for new in [&b"/a/b.py"[..], &long, "/é/m.py".as_bytes()] {
            for (minor, body) in [(8, PY38_ASCII), (13, PY313_ASCII)] {
                let out = relocate(body, rules(minor), ASCII, new).unwrap();
                assert_eq!(code_filename(&out, rules(minor).layout()), Ok(new));
                assert!(scan(&out, rules(minor).layout()).is_ok());
                assert_eq!(relocate(&out, rules(minor), new, ASCII).as_deref(), Ok(body));
            }
        }
    }

    #[test]
    fn same_path_is_the_same_body() {
        assert_eq!(relocate(PY38_ASCII, rules(8), ASCII, ASCII).as_deref(), Ok(PY38_ASCII));
        assert_eq!(relocate(PY38_ASCII, rules(8), b"/x.py", b"/x.py"), Err(RelocateError::WrongFilename));
    }

    #[test]
    fn refusals() {
        use RelocateError::*;
        let r = rules(8);
        assert_eq!(relocate(PY38_ASCII, r, b"/other.py", b"/b.py"), Err(WrongFilename));
        // The lambda returns the constant 'm' and the code holds names f, g, x, C, i, y.
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"C"), Err(TooShort));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"__module__"), Err(NewElsewhere));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"<lambda>"), Err(NewElsewhere));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b""), Err(TooShort));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"/a\xff.py"), Err(InvalidPath));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"/a\0.py"), Err(InvalidPath));
        assert_eq!(relocate(PY38_ASCII, r, ASCII, b"/a\xed\xb3\xbf.py").map(|_| ()), Ok(()));
        // The wrong interning rule for the version, the wrong layout, a version not checked.
        assert_eq!(relocate(PY313_ASCII, rules(12), ASCII, b"/b.py"), Err(UnexpectedType(0xda)));
        assert!(relocate(PY313_ASCII, rules(8), ASCII, b"/b.py").is_err());
        assert_eq!(Rules::for_version(3, 16), Err(UnsupportedVersion { major: 3, minor: 16 }));
        assert_eq!(Rules::for_version(3, 6), Err(UnsupportedVersion { major: 3, minor: 6 }));
        // Trailing bytes, truncation, a body that is not a code object.
        let mut trailing = PY38_ASCII.to_vec();
        trailing.push(b'N');
        assert_eq!(relocate(&trailing, r, ASCII, b"/b.py"), Err(Marshal(MarshalError::Trailing(1))));
        assert_eq!(relocate(&PY38_ASCII[..100], r, ASCII, b"/b.py"), Err(Marshal(MarshalError::Truncated)));
        assert_eq!(relocate(b"\xfa\x05/a.py", r, b"/a.py", b"/b.py"), Err(NotCode));
    }

    /// A code object with empty code and these constants (a whole tuple), names (items of
    /// a tuple) and filename (a whole object), in `layout`.
    fn code(layout: CodeLayout, consts: &[u8], names: &[&[u8]], filename: &[u8]) -> Vec<u8> {
        let mut v = b"c".to_vec();
        v.extend_from_slice(&vec![0; 4 * layout.ints()]);
        v.extend_from_slice(b"s\x00\x00\x00\x00");
        v.extend_from_slice(consts);
        v.extend_from_slice(&[b')', names.len() as u8]);
        v.extend(names.concat());
        // Local names and kinds (3.11+: a tuple and bytes, as CPython loads them), or
        // varnames, freevars and cellvars.
        if layout == CodeLayout::Py311 {
            v.extend_from_slice(b")\x00s\x00\x00\x00\x00");
        } else {
            v.extend(b")\x00".repeat(3));
        }
        v.extend_from_slice(filename);
        v.extend_from_slice(b"z\x01f");
        if layout == CodeLayout::Py311 {
            v.extend_from_slice(b"z\x01f");
        }
        v.extend_from_slice(b"\x01\x00\x00\x00s\x00\x00\x00\x00");
        if layout == CodeLayout::Py311 {
            v.extend_from_slice(b"s\x00\x00\x00\x00");
        }
        v
    }

    const SLOT0: &[u8] = b"r\x00\x00\x00\x00";

    #[test]
    fn built_bodies() {
        use RelocateError::*;
        let (l, r) = (CodeLayout::Py38, rules(8));
        let none = b")\x00".as_slice();
        // One shared filename: the nested code object writes it, the outer one refers to it.
        let shared = |name: &[u8]| {
            let inner = code(l, none, &[], name);
            code(l, &[b")\x01".as_slice(), &inner].concat(), &[], SLOT0)
        };
        let long = [b"/".as_slice(), &[b'x'; 300]].concat();
        let long_z = [b"\xe1".as_slice(), &301u32.to_le_bytes(), &long].concat();
        assert_eq!(relocate(&shared(b"\xfa\x05/a.py"), r, b"/a.py", &long), Ok(shared(&long_z)));
        assert_eq!(relocate(&shared(&long_z), r, &long, b"/a.py"), Ok(shared(b"\xfa\x05/a.py")));
        // Unshared (refcount 1 at dump) stays unflagged on 3.7-3.12.
        let lone = |name: &[u8]| code(l, none, &[], name);
        assert_eq!(relocate(&lone(b"z\x05/a.py"), r, b"/a.py", b"/bb.py"), Ok(lone(b"z\x06/bb.py")));
        // Interned and unflagged is not what 3.13+ writes; plain is not either.
        let l13 = CodeLayout::Py311;
        assert_eq!(
            relocate(&code(l13, none, &[], b"Z\x05/a.py"), rules(13), b"/a.py", b"/b.py"),
            Err(UnexpectedType(b'Z'))
        );
        assert_eq!(
            relocate(&code(l13, none, &[], b"\xfa\x05/a.py"), rules(13), b"/a.py", b"/b.py"),
            Err(UnexpectedType(0xfa))
        );
        assert_eq!(
            relocate(&code(l13, none, &[], b"\xda\x05/a.py"), rules(13), b"/a.py", b"/\xc3\xa9.py"),
            Ok(code(l13, none, &[], b"\xf4\x06\x00\x00\x00/\xc3\xa9.py"))
        );
        // A type that does not fit the content: short ASCII written as `a`.
        assert_eq!(
            relocate(&lone(b"a\x05\x00\x00\x00/a.py"), r, b"/a.py", b"/b.py"),
            Err(UnexpectedType(b'a'))
        );

        // The filename's object is also a constant.
        let as_const = code(l, b")\x01\xfa\x05/a.py", &[], SLOT0);
        assert_eq!(code_filename(&as_const, l), Ok(&b"/a.py"[..]));
        assert_eq!(relocate(&as_const, r, b"/a.py", b"/b.py"), Err(OldElsewhere));
        assert_eq!(relocatable(&as_const, r, b"/a.py"), Err(OldElsewhere));
        // An equal constant that is a separate object.
        let equal = code(l, b")\x01z\x05/a.py", &[], b"\xfa\x05/a.py");
        assert_eq!(relocate(&equal, r, b"/a.py", b"/b.py"), Err(OldElsewhere));
        // A reference to the filename's slot used as a name.
        let inner = code(l, none, &[], b"\xfa\x05/a.py");
        let named = code(l, &[b")\x01".as_slice(), &inner].concat(), &[SLOT0], SLOT0);
        assert_eq!(relocate(&named, r, b"/a.py", b"/b.py"), Err(OldElsewhere));
        // A string equal to the new path, as a constant or a name.
        let other = code(l, b")\x01z\x05/c.py", &[b"z\x03abc"], b"\xfa\x05/a.py");
        assert_eq!(relocate(&other, r, b"/a.py", b"/c.py"), Err(NewElsewhere));
        assert_eq!(relocate(&other, r, b"/a.py", b"abc"), Err(NewElsewhere));
        assert_eq!(
            relocate(&other, r, b"/a.py", b"/d.py"),
            Ok(code(l, b")\x01z\x05/c.py", &[b"z\x03abc"], b"\xfa\x05/d.py"))
        );
        // Two code objects with their own filename objects.
        let twice = code(l, &[b")\x01".as_slice(), &inner].concat(), &[], b"\xfa\x05/a.py");
        assert_eq!(relocate(&twice, r, b"/a.py", b"/b.py"), Err(NotShared));
        // Two code objects with different filenames.
        let differ = code(l, &[b")\x01".as_slice(), &inner].concat(), &[], b"\xfa\x05/x.py");
        assert_eq!(relocate(&differ, r, b"/a.py", b"/b.py"), Err(FilenamesDisagree));
        // A filename that is not a string.
        assert_eq!(
            relocate(&code(l, none, &[], b"N"), r, b"/a.py", b"/b.py"),
            Err(Marshal(MarshalError::FilenameNotString))
        );
    }

    #[test]
    fn str_chars_follows_surrogatepass() {
        assert_eq!(str_chars(b"ab"), Some(2));
        assert_eq!(str_chars("é€😀".as_bytes()), Some(3));
        assert_eq!(str_chars(b"\xed\xb3\xbf"), Some(1)); // lone surrogate U+DCFF
        assert_eq!(str_chars(b"\xc0\x80"), None); // overlong
        assert_eq!(str_chars(b"\xe0\x80\x80"), None);
        assert_eq!(str_chars(b"\xf4\x90\x80\x80"), None); // beyond U+10FFFF
        assert_eq!(str_chars(b"\xe2\x82"), None); // truncated
        assert_eq!(str_chars(b"\xff"), None);
    }
}
