//! Property tests over everything that parses untrusted bytes: the pyc header
//! classifier, the marshal reader and rewriter and the worker reply decoder. They must
//! never panic and never allocate from a length field. CI runs proptest's default case count; set
//! `PROPTEST_CASES=1000000` for a long run.

use proptest::prelude::*;

use crate::marshal::{self, CodeLayout, Rules};
use crate::pool::frame;
use crate::pyc::{self, Accept, HashMode, Magic};

/// `marshal.dumps(compile('def f():\n  return "m.py"\n', 'm.py', 'exec'))`, CPython 3.8.18:
/// a real body to mutate, so the reader's deeper paths are reached.
const SEED_38: &[u8] = b"c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00@\x00\x00\x00s\x0c\x00\x00\x00d\x00d\x01\x84\x00Z\x00d\x02S\x00)\x03c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00C\x00\x00\x00s\x04\x00\x00\x00d\x01S\x00)\x02Nz\x04m.py\xa9\x00r\x00\x00\x00\x00r\x00\x00\x00\x00r\x00\x00\x00\x00\xfa\x04m.py\xda\x01f\x01\x00\x00\x00s\x02\x00\x00\x00\x00\x01r\x02\x00\x00\x00N)\x01r\x02\x00\x00\x00r\x00\x00\x00\x00r\x00\x00\x00\x00r\x00\x00\x00\x00r\x01\x00\x00\x00\xda\x08<module>\x01\x00\x00\x00\xf3\x00\x00\x00\x00";

/// `marshal.dumps(compile("x = 1\n", "m.py", "exec"))`, CPython 3.12.1.
const SEED_312: &[u8] = b"c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xf3\x08\x00\x00\x00\x97\x00d\x00Z\x00y\x01)\x02\xe9\x01\x00\x00\x00N)\x01\xda\x01x\xa9\x00\xf3\x00\x00\x00\x00\xfa\x04m.py\xfa\x08<module>r\x06\x00\x00\x00\x01\x00\x00\x00s\n\x00\x00\x00\xf0\x03\x01\x01\x01\xd8\x04\x05\x81\x01r\x04\x00\x00\x00";

/// Real bodies the rewriter accepts: (body, CPython minor version, its `co_filename`).
/// The 3.8 and 3.13 ones hold nested code objects sharing the filename by reference.
const RELOCATABLE: [(&[u8], u8, &[u8]); 5] = [
    (include_bytes!("marshal/testdata/py38-ascii.marshal"), 8, b"/src/m.py"),
    (include_bytes!("marshal/testdata/py38-nonascii.marshal"), 8, b"/d\xed\xb3\xbf\xc3\xa9/m.py"),
    (include_bytes!("marshal/testdata/py313-ascii.marshal"), 13, b"/src/m.py"),
    (include_bytes!("marshal/testdata/py313-nonascii.marshal"), 13, b"/d\xed\xb3\xbf\xc3\xa9/m.py"),
    (SEED_312, 12, b"m.py"),
];

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutate(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in muts {
        let n = v.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !v.is_empty() {
                    let i = i % n;
                    v[i] ^= b;
                }
            }
            Mutation::Truncate(i) => v.truncate(i % (n + 1)),
            Mutation::Insert(i, bytes) => {
                let i = i % (v.len() + 1);
                v.splice(i..i, bytes.iter().copied());
            }
            Mutation::Remove(i, k) => {
                let i = i % n;
                let end = (i + k).min(v.len());
                if i < end {
                    v.drain(i..end);
                }
            }
        }
    }
    v
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, k)| Mutation::Remove(i, k)),
    ]
}

/// A path as marshal holds it: "/p/" and arbitrary bytes (no NUL), short and over 255
/// bytes, ASCII, UTF-8 and surrogate-escaped. "/p/" keeps it distinct from the seeds' strings.
fn new_path() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1..=255u8, 0..300).prop_map(|tail| {
        let raw = [b"/p/".as_slice(), &tail].concat();
        marshal::filename_bytes(&raw).into_owned()
    })
}

fn any_rules() -> impl Strategy<Value = Rules> {
    (7..=15u8).prop_map(|minor| Rules::for_version(3, minor).expect("validated version"))
}

fn layout() -> impl Strategy<Value = CodeLayout> {
    prop_oneof![Just(CodeLayout::Py37), Just(CodeLayout::Py38), Just(CodeLayout::Py311)]
}

proptest! {
    #[test]
    fn header_classifier_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), number in any::<u16>(), checked in any::<bool>(), any_mode in any::<bool>()) {
        let accept = if any_mode { Accept::AnyHash } else if checked { Accept::Only(HashMode::Checked) } else { Accept::Only(HashMode::Unchecked) };
        let _ = pyc::classify(&bytes, Magic::from_number(number), accept, || [0; 8]);
        if let Some(h) = pyc::Header::parse(&bytes) {
            prop_assert_eq!(&h.to_bytes()[..], &bytes[..16]);
            let _ = h.kind();
        }
    }

    #[test]
    fn marshal_reader_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..512), layout in layout()) {
        let _ = marshal::code_filename(&bytes, layout);
        let _ = marshal::scan(&bytes, layout);
    }

    #[test]
    fn marshal_reader_never_panics_on_mutated_pycs(muts in proptest::collection::vec(mutation(), 1..6), which in any::<bool>(), layout in layout()) {
        let body = mutate(if which { SEED_38 } else { SEED_312 }, &muts);
        let _ = marshal::code_filename(&body, layout);
        let _ = marshal::scan(&body, layout);
    }

    /// `code_body`'s fast path accepts only what the full reader accepts, with the same
    /// `co_filename`; what it declines, the full reader decides.
    #[test]
    fn code_body_agrees_with_the_full_reader(muts in proptest::collection::vec(mutation(), 1..6), which in 0..RELOCATABLE.len() + 1, layout in layout()) {
        let seed = if which == RELOCATABLE.len() { SEED_38 } else { RELOCATABLE[which].0 };
        let body = mutate(seed, &muts);
        prop_assert_eq!(marshal::code_body(&body, layout), marshal::full_code_body(&body, layout));
    }

    #[test]
    fn code_body_agrees_on_noise(tail in proptest::collection::vec(any::<u8>(), 0..512), layout in layout()) {
        // Noise after a code object's type byte and zeroed int fields, so that the walk
        // goes on past them.
        let body = [&b"c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"[..], &tail].concat();
        prop_assert_eq!(marshal::code_body(&body, layout), marshal::full_code_body(&body, layout));
    }

    #[test]
    fn relocate_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..512), rules in any_rules(), old in proptest::collection::vec(any::<u8>(), 0..8), new in proptest::collection::vec(any::<u8>(), 0..8)) {
        let _ = marshal::relocate(&bytes, rules, &old, &new);
        let _ = marshal::relocatable(&bytes, rules, &old);
    }

    /// Whatever mutated body the rewriter accepts, its output names the new path and
    /// relocating it back gives the input byte for byte.
    #[test]
    fn relocate_round_trips_whatever_it_accepts(muts in proptest::collection::vec(mutation(), 1..6), which in 0..RELOCATABLE.len(), rules in any_rules(), new in new_path()) {
        let (seed, _, old) = RELOCATABLE[which];
        let body = mutate(seed, &muts);
        if let Ok(out) = marshal::relocate(&body, rules, old, &new) {
            prop_assert_eq!(marshal::code_filename(&out, rules.layout()), Ok(&new[..]));
            prop_assert_eq!(marshal::relocate(&out, rules, &new, old), Ok(body));
        }
    }

    #[test]
    fn relocate_round_trips_real_bodies(which in 0..RELOCATABLE.len(), new in new_path(), back in new_path()) {
        let (body, minor, old) = RELOCATABLE[which];
        let rules = Rules::for_version(3, minor).expect("validated version");
        prop_assert_eq!(marshal::relocatable(body, rules, old), Ok(()));
        let out = marshal::relocate(body, rules, old, &new).expect("relocatable");
        prop_assert_eq!(marshal::code_filename(&out, rules.layout()), Ok(&new[..]));
        prop_assert!(marshal::scan(&out, rules.layout()).is_ok());
        // Through a second path and back.
        let out2 = marshal::relocate(&out, rules, &new, &back).expect("relocatable");
        prop_assert_eq!(marshal::relocate(&out2, rules, &back, old), Ok(body.to_vec()));
    }

    #[test]
    fn reply_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = frame::decode(&bytes);
    }

    #[test]
    fn reply_decoder_never_panics_on_mutated_replies(muts in proptest::collection::vec(mutation(), 1..6), kind in 0..3usize) {
        let seeds: [&[u8]; 3] = [
            b"H\x01\x02\x03\x04\xa7\x0d\x0d\x0a",
            b"O\x01\x01\x00\x0dSyntaxWarning\x02\x00\x00\x00\x03\x00\x00\x00msg\x02\x00\x00\x00ab",
            b"X\x0bSyntaxError\x03\x00\x00\x00bad\x01\x00\x00\x00\x05\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00x(",
        ];
        let _ = frame::decode(&mutate(seeds[kind], &muts));
    }
}

#[test]
fn seeds_are_valid() {
    assert_eq!(marshal::code_filename(SEED_38, CodeLayout::Py38), Ok(&b"m.py"[..]));
    assert!(marshal::scan(SEED_312, CodeLayout::Py311).is_ok());
    // The fast path of `code_body` takes real bodies (else the agreement tests above would
    // compare the full reader with itself).
    // The nested function's `co_filename` (`\xfa\x04m.py`), not the constant before it.
    assert_eq!(marshal::valid_code_body(SEED_38, CodeLayout::Py38), Some((106, 110)));
    for (body, minor, name) in RELOCATABLE {
        let layout = CodeLayout::for_version(3, minor);
        let (s, e) = marshal::valid_code_body(body, layout).expect("fast path");
        assert_eq!(&body[s..e], name);
    }
}
