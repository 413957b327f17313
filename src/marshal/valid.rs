//! The fast path of [`code_body`](super::code_body), for the no-op `check` and `compile`,
//! which read every pyc's whole body: a walk that only decides whether a body is
//! certainly one whole code object, and finds its first `co_filename`. Anything else (an
//! error, a dict, nesting near the depth limit) is left to the full reader, which gives
//! the exact error; the fast path therefore cannot change what is accepted or why
//! something is rejected. A property test holds the two to agreement.
//!
//! What makes it fast: it builds nothing the full reader keeps (string uses, scan facts,
//! string slots: a reference's target is looked up only for `co_filename`), it keeps its
//! two vectors from one body to the next, and scalars and strings, nine objects in ten,
//! are sized from a table with one branch that seldom goes the other way, instead of a
//! branch on each type.

use std::cell::RefCell;

use super::{CODE_FIELD, CodeCheck, CodeLayout, FLAG_REF, KINDS_FIELD, MAX_DEPTH, NAMES_FIELD, shape};

/// How the bytes after a type byte are sized, packed in one word: `FIXED` bytes, plus the
/// next byte masked with `M8`, plus the next four bytes (little-endian) when `LEN32`.
/// Scalars and strings are sized so; `SPECIAL` marks containers, code objects, the rare
/// scalars sized otherwise or whose bytes `marshal.loads` checks (`u` and `t` strings must
/// be UTF-8, a long's digits in range, a text float a number), and unknown types (the
/// NULL `0` among them: no object).
const M8: u32 = 0xFF << 8;
const LEN32: u32 = 1 << 16;
/// The object takes a reference slot (FLAG_REF, and not itself a reference).
const SLOT: u32 = 1 << 17;
/// A reference: the next four bytes index the slots.
const REF: u32 = 1 << 18;
const SPECIAL: u32 = 1 << 19;
/// In a reference slot: the object is a frozenset, slice or code object still being read,
/// which CPython registers only once built, so a reference to it is invalid (bodies of
/// 2 GiB or more are left to the full reader).
const PENDING: u32 = 1 << 31;

const fn entry(code: u8) -> u32 {
    let size = match code & !FLAG_REF {
        b'N' | b'F' | b'T' | b'S' | b'.' => 0,
        b'i' | b'r' => 4,
        b'I' | b'g' => 8,
        b'y' => 16,
        b'z' | b'Z' => 1 | M8,
        b's' | b'a' | b'A' => 4 | LEN32,
        _ => return SPECIAL,
    };
    if code & !FLAG_REF == b'r' {
        size | REF
    } else if code & FLAG_REF != 0 {
        size | SLOT
    } else {
        size
    }
}

static TABLE: [u32; 256] = {
    let mut t = [SPECIAL; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = entry(i as u8);
        i += 1;
    }
    t
};

fn is_str(code: u8) -> bool {
    matches!(code & !FLAG_REF, b't' | b'u' | b'a' | b'A' | b'z' | b'Z')
}

/// The open objects of the walk: parts left to read, when the next event is due, and the
/// values of the innermost code object around it that are still to be checked.
#[derive(Clone, Copy)]
struct Open {
    left: u32,
    event: u32,
    check: CodeCheck,
    /// The reference slot of the object these are the parts of while it is [`PENDING`]
    /// (`u32::MAX`: none), cleared once the object is read.
    slot: u32,
}

/// No event due (sequences; a code object after its last one).
const NO_EVENT: u32 = u32::MAX;

#[derive(Default)]
struct Scratch {
    /// The type-byte offset of each object that took a reference slot (more entries than
    /// slots are allocated: see `slots`).
    refs: Vec<u32>,
    stack: Vec<Open>,
}

thread_local! {
    /// Kept from one body to the next on each thread.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// The span of `co_filename` when `body` is certainly one whole code object; `None` when
/// the full reader must decide.
pub(crate) fn valid_code_body(body: &[u8], layout: CodeLayout) -> Option<(usize, usize)> {
    // Offsets are kept as u32; the top object must be a code object.
    if body.len() >= PENDING as usize || body.first()? & !FLAG_REF != b'c' {
        return None;
    }
    SCRATCH
        .try_with(|s| match s.try_borrow_mut() {
            Ok(mut s) => walk(body, layout, &mut s),
            Err(_) => walk(body, layout, &mut Scratch::default()),
        })
        .ok()
        .flatten()
}

/// The payload of the string whose type byte is at `head`, in a body read whole.
fn str_span(data: &[u8], head: usize) -> (usize, usize) {
    match data[head] & !FLAG_REF {
        b'z' | b'Z' => (head + 2, head + 2 + usize::from(data[head + 1])),
        _ => {
            let n = u32::from_le_bytes([data[head + 1], data[head + 2], data[head + 3], data[head + 4]]);
            (head + 5, head + 5 + n as usize)
        }
    }
}

/// The type byte at `pos` and the next four bytes, zeros past the end of `data` (whose
/// last object may be shorter than five bytes).
#[cold]
fn padded(data: &[u8], pos: usize) -> (u8, u8, u32) {
    let mut q = [0u8; 5];
    for (d, s) in q.iter_mut().zip(&data[pos..]) {
        *d = *s;
    }
    (q[0], q[1], u32::from_le_bytes([q[1], q[2], q[3], q[4]]))
}

fn walk(data: &[u8], layout: CodeLayout, s: &mut Scratch) -> Option<(usize, usize)> {
    let Scratch { refs, stack } = s;
    stack.clear();
    let len = data.len();
    let py311 = layout == CodeLayout::Py311;
    let (named, tables) = if py311 { (2, 2) } else { (1, 1) };
    // A code object's parts: the objects before `co_filename`, `co_filename`, the names,
    // a raw int (`co_firstlineno`), the tables. Events, counted in parts left: before
    // each part whose value the constructor checks (`CodeCheck`), before `co_filename`
    // (it must be a string), and before the tables (skip the raw int).
    let code_parts = layout.objects_before_filename() as u32 + 1 + named + tables;
    let names_event = code_parts - NAMES_FIELD as u32;
    let kinds_event = code_parts - KINDS_FIELD as u32;
    let filename_event = 1 + named + tables;
    let lineno_event = tables;
    let code_ints = 4 * layout.ints() as u64;
    let mut pos = 0usize;
    let mut slots = 0usize;
    let mut first: Option<usize> = None;
    // The object being read: its parts left, and when its next event is due. At first
    // the top object, as the only part of an object around it.
    let (mut left, mut event, mut pending) = (1u32, NO_EVENT, u32::MAX);
    let mut check = CodeCheck::default();
    loop {
        if left == event {
            if event > filename_event {
                // `co_code`, the local names, the local kinds (3.11+).
                let field = (code_parts - event) as usize;
                let found = shape(data, pos, |i| {
                    ((i as usize) < slots && refs[i as usize] & PENDING == 0)
                        .then(|| refs[i as usize] as usize)
                });
                check.field(layout, field, found).ok()?;
                event = match field {
                    CODE_FIELD => names_event,
                    NAMES_FIELD if py311 => kinds_event,
                    _ => filename_event,
                };
            } else if event == filename_event {
                // `co_filename`: a string, or a reference to one.
                let code = *data.get(pos)?;
                let head = if code & !FLAG_REF == b'r' {
                    let d = data.get(pos + 1..pos + 5)?;
                    let i = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
                    if i >= slots || refs[i] & PENDING != 0 {
                        return None;
                    }
                    refs[i] as usize
                } else {
                    pos
                };
                if !is_str(data[head]) {
                    return None;
                }
                // Its span is taken once the whole body has been read.
                first.get_or_insert(head);
                event = lineno_event;
            } else {
                if len - pos < 4 {
                    return None;
                }
                pos += 4;
                event = NO_EVENT;
            }
        }
        // Read one object: its type byte and the next four bytes.
        let head = pos;
        let rest = len - pos;
        let (code, b1, w) = match data.get(pos..pos + 5) {
            Some(d) => (d[0], d[1], u32::from_le_bytes([d[1], d[2], d[3], d[4]])),
            None => padded(data, pos),
        };
        let e = TABLE[usize::from(code)];
        if slots == refs.len() {
            refs.resize(refs.len() * 2 + 256, 0);
        }
        if e & SPECIAL == 0 {
            let m32 = 0u32.wrapping_sub((e >> 16) & 1);
            let size = 1 + u64::from(e & 0xFF) + u64::from(b1 & (e >> 8) as u8) + u64::from(w & m32);
            // A reference out of range, or to an object still being read (`PENDING`).
            let bad_ref = (e & REF != 0) && (w as usize >= slots || refs[w as usize] & PENDING != 0);
            if (size > rest as u64) | bad_ref {
                return None;
            }
            pos += size as usize;
            refs[slots] = head as u32;
            slots += ((e >> 17) & 1) as usize;
        } else {
            let (size, parts, opens) = match code & !FLAG_REF {
                b'(' | b'[' | b'<' | b'>' => (5, w, NO_EVENT),
                b')' => (2, u32::from(b1), NO_EVENT),
                b':' => (1, 3, NO_EVENT),
                b'c' => (1 + code_ints, code_parts, code_parts),
                b'l' => {
                    let size = 5 + 2 * u64::from((w as i32).unsigned_abs());
                    let digits = data.get(pos + 5..pos.checked_add(usize::try_from(size).ok()?)?)?;
                    if super::long_error(w as i32, digits).is_some() {
                        return None;
                    }
                    (size, 0, NO_EVENT)
                }
                b't' | b'u' => {
                    let text = data.get(pos + 5..(pos + 5).checked_add(w as usize)?)?;
                    // Decoded with surrogatepass, as `marshal.loads` decodes them.
                    super::relocate::str_chars(text)?;
                    (5 + u64::from(w), 0, NO_EVENT)
                }
                // Dicts (never in a compiled body), unknown types, the end of the body.
                _ => return None,
            };
            if size > rest as u64 {
                return None;
            }
            let opened = if code & !FLAG_REF == b'c' {
                CodeCheck::new(layout, &data[head + 1..head + size as usize]).ok()?
            } else {
                check
            };
            pos += size as usize;
            let flagged = code & FLAG_REF != 0;
            // CPython registers a frozenset of items, a slice or a code object once built.
            let registered_late = parts > 0 && matches!(code & !FLAG_REF, b'>' | b':' | b'c');
            let opened_slot = if flagged && registered_late { slots as u32 } else { u32::MAX };
            refs[slots] = head as u32 | if opened_slot != u32::MAX { PENDING } else { 0 };
            slots += usize::from(flagged);
            if parts > 0 {
                // Each part takes a byte at least (this also keeps `left` from NO_EVENT),
                // and the full reader refuses objects read more than MAX_DEPTH deep.
                if u64::from(parts) > (len - pos) as u64 || stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Open { left, event, check, slot: pending });
                (left, event, check, pending) = (parts, opens, opened, opened_slot);
                continue;
            }
        }
        // The object is finished: close every object it completes.
        left -= 1;
        while left == 0 {
            if pending != u32::MAX {
                refs[pending as usize] &= !PENDING;
            }
            let Some(parent) = stack.pop() else {
                // The top object is finished: it must end the body.
                if pos != len {
                    return None;
                }
                return first.map(|h| str_span(data, h));
            };
            (left, event, check, pending) = (parent.left - 1, parent.event, parent.check, parent.slot);
        }
    }
}
