//! Guessing from a source, before compiling it, whether a long-lived worker could give it
//! other bytes than a pristine one, so that the scheduler sends it straight to a fresh fork
//! instead of compiling it twice (once warm, once fresh) or ending a warm worker for it.
//!
//! Two kinds of files are predicted:
//! - **`\N{…}` escapes and non-ASCII identifiers**: compiling one makes CPython import
//!   `unicodedata` (to look the name up, to NFKC-normalize the identifier), which taints
//!   the long-lived child that did it (it must then be replaced);
//! - **set displays of constants holding a string** (`x in {"a", "b"}`, `for k in {"a"}`,
//!   `{"a", 1, 2}` with three or more constants): CPython 3.12+ turns them into frozenset
//!   constants, whose marshal bytes depend on which equal strings an earlier compile in the
//!   same process interned (`marshal::Scan::container_with_str`).
//!
//! A guess only decides where a file is compiled first, never its bytes: a file predicted
//! wrongly costs one fork, and a file the guess misses is still caught by the scan of its
//! marshal data and recompiled fresh, as before. So this is a rough tokenizer that knows
//! comments, string literals and brackets, not a Python parser.
//!
//! For the second kind, it also guesses whether the worker will be able to *certify* the
//! frozensets (see `worker.py`, `_uncertified`): when every folded display holds only plain
//! string literals and small non-negative integers whose hashes (CPython's, with
//! `PYTHONHASHSEED=0`) fall into distinct slots of the set's table, or whose name-like
//! strings (two or more ASCII letters, digits or `_`) are all identifiers of the file, so
//! interned before any code is generated, in every process, the file is compiled in a
//! long-lived child with a request for a certificate instead of in a fresh fork. The
//! worker checks the compiled constants themselves; a wrong guess here costs a warm
//! compile before the fork, never a byte.

/// What the source suggests; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prediction {
    /// A `\N{` sequence (a named Unicode escape, or text that looks like one), or a
    /// non-ASCII identifier (CPython normalizes those with `unicodedata`).
    pub imports_unicodedata: bool,
    /// A set display that CPython 3.12+ folds into a frozenset constant holding a string.
    pub frozenset_with_str: bool,
    /// Every such display holds only plain literals, whose hashes take distinct slots or
    /// whose name-like strings are all names of the file: the worker will likely certify
    /// the file's frozensets (see the module documentation).
    pub certifiable: bool,
}

/// Predict from the raw source bytes (any encoding CPython accepts: only ASCII matters here).
/// Without `sets` (3.11, where frozensets cannot depend on history) only
/// `imports_unicodedata` is looked for, and set displays are not scanned.
pub fn predict(source: &[u8], sets: bool) -> Prediction {
    let named_escape = memchr::memmem::find(source, b"\\N{").is_some();
    // Most files have neither a non-ASCII byte nor a brace that could open a set of
    // strings: they need no tokenizing (this runs for every file compiled).
    let ascii = source.is_ascii();
    if ascii && !(sets && maybe_set_of_strings(source)) {
        return Prediction {
            imports_unicodedata: named_escape,
            frozenset_with_str: false,
            certifiable: false,
        };
    }
    let mut scanner = Scanner::new(source, ascii);
    let frozenset_with_str = scanner.frozenset_with_str() && sets;
    let mut certifiable = frozenset_with_str && !scanner.uncertifiable;
    if certifiable && !scanner.wanted.is_empty() {
        // Colliding displays are certifiable when their name-like strings are all names
        // of the file: look for them (a second pass, for the few files that need it).
        let mut names = Scanner::new(source, ascii);
        names.found = vec![false; scanner.wanted.len()];
        names.wanted = std::mem::take(&mut scanner.wanted);
        names.frozenset_with_str();
        certifiable = names.found.iter().all(|&f| f);
    }
    Prediction {
        imports_unicodedata: named_escape || scanner.non_ascii_name,
        frozenset_with_str,
        certifiable,
    }
}

/// The name-like strings (two or more ASCII letters, digits or `_`) written as plain
/// literals in the set displays CPython folds into frozenset constants: the strings on
/// which, on 3.13+, whether a long-lived child gives a file the bytes of a pristine one can
/// turn (see `worker.py`, `_ambiguous`). A guess, like everything here: a string missed
/// or wrongly decoded only costs a fork.
pub fn set_strings(source: &[u8]) -> Vec<Vec<u8>> {
    let mut scanner = Scanner::new(source, source.is_ascii());
    scanner.set_strings = Some(Vec::new());
    scanner.frozenset_with_str();
    scanner.set_strings.unwrap_or_default().into_iter().map(<[u8]>::to_vec).collect()
}

/// A hash of every name of the source (a run of ASCII letters, digits and `_` not starting
/// with a digit, two or more bytes long, not a keyword) outside comments and string
/// literals, and of every such word inside an f-string or t-string (whose fields are code):
/// a superset of the identifiers its compile interns for good, to guess whether a string
/// of a later file's set displays was interned by this one ([`word_hash`] of it is then
/// among these). Words of plain string literals are left out: the strings a compile
/// interns for its constants die with its code objects (3.13+). So are keywords: the
/// parser matches them without making a string (compiling `if`, `and`, `class` … leaves
/// none of them interned on 3.13, 3.14 and 3.15), and SQL and lexer keyword tables
/// (`{"and", "or", "select"}`) would otherwise meet them in every earlier file.
pub fn word_hashes(source: &[u8]) -> Vec<u64> {
    let s = source;
    let word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'#' {
            i = memchr::memchr(b'\n', &s[i..]).map_or(s.len(), |n| i + n);
        } else if b == b'\'' || b == b'"' {
            let prefix_start = s[..i].iter().rposition(|c| !c.is_ascii_alphabetic()).map_or(0, |p| p + 1);
            let code = s[prefix_start..i].iter().any(|c| matches!(c, b'f' | b'F' | b't' | b'T'));
            let quote: &[u8] = if s[i..].starts_with(&[b, b, b]) { &s[i..i + 3] } else { &s[i..=i] };
            let mut j = i + quote.len();
            while j < s.len() && !s[j..].starts_with(quote) && !(quote.len() == 1 && s[j] == b'\n') {
                j += if s[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + quote.len()).min(s.len());
            if code {
                for w in s[i..end.min(j)].split(|c| !word_byte(*c)) {
                    if w.len() > 1 && !w[0].is_ascii_digit() && !keyword(w) {
                        out.push(word_hash(w));
                    }
                }
            }
            i = end;
        } else if word_byte(b) {
            let len = s[i..].iter().position(|c| !word_byte(*c)).unwrap_or(s.len() - i);
            let w = &s[i..i + len];
            if len > 1 && !w[0].is_ascii_digit() && !keyword(w) {
                out.push(word_hash(w));
            }
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

/// The hash [`word_hashes`] gives a word (FNV-1a: collisions only cost a fork).
pub fn word_hash(word: &[u8]) -> u64 {
    word.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// At most this many strings of colliding displays are looked for among the file's names
/// (each word of the second pass is compared with all of them).
const MAX_WANTED: usize = 32;

/// Python's keywords: words that are never names (`keyword.kwlist`; [`keyword`] is the
/// test the code uses).
#[cfg(test)]
const KEYWORDS: &str = "False None True and as assert async await break class continue def del elif else \
                        except finally for from global if import in is lambda nonlocal not or pass raise \
                        return try while with yield";

/// Whether `w` is one of Python's keywords, words that are never names (a `match`: this
/// runs for every word of a deferred file; the unit tests check it against the list).
fn keyword(w: &[u8]) -> bool {
    matches!(
        w,
        b"False"
            | b"None"
            | b"True"
            | b"and"
            | b"as"
            | b"assert"
            | b"async"
            | b"await"
            | b"break"
            | b"class"
            | b"continue"
            | b"def"
            | b"del"
            | b"elif"
            | b"else"
            | b"except"
            | b"finally"
            | b"for"
            | b"from"
            | b"global"
            | b"if"
            | b"import"
            | b"in"
            | b"is"
            | b"lambda"
            | b"nonlocal"
            | b"not"
            | b"or"
            | b"pass"
            | b"raise"
            | b"return"
            | b"try"
            | b"while"
            | b"with"
            | b"yield"
    )
}

/// A string `intern_constants` may intern (ASCII letters, digits and `_`) that is no
/// one-character singleton.
fn name_like(s: &[u8]) -> bool {
    s.len() > 1 && s.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// A byte of a name as the scanner reads names: ASCII letters, digits, `_`, and any byte of
/// a non-ASCII character.
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// A byte between tokens that changes nothing (a backslash continues the line).
fn blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\\')
}

/// The shape of a private name after mangling (`_C__x`): made while code is generated,
/// so not interned before it, unlike the file's identifiers.
fn mangled_shape(s: &[u8]) -> bool {
    s.len() > 3
        && s[0] == b'_'
        && s[1] != b'_'
        && s[2..].windows(2).any(|w| w == b"__")
        && !s.ends_with(b"__")
}

/// A quick look for a `{` whose text up to the next brace holds a quote and no `:` outside
/// quotes: a set display with a string could start there (a dict, a dict comprehension, a
/// nested display or an f-string field cannot be one). The scanner decides; this only
/// spares it the files where nothing could match. A brace inside a string or a comment is
/// looked at like any other: that can only send a file to the scanner for nothing, and a
/// set display this misses (a `{` in one of its strings) is still caught after compiling.
fn maybe_set_of_strings(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(open) = memchr::memchr(b'{', &s[from..]).map(|n| from + n) {
        from = open + 1;
        let Some(close) = memchr::memchr2(b'{', b'}', &s[from..]).map(|n| from + n) else {
            return false;
        };
        if s[close] == b'{' {
            continue;
        }
        let (mut quote, mut seen_quote, mut colon, mut k) = (None, false, false, from);
        while k < close {
            match (s[k], quote) {
                (b'\\', Some(_)) => k += 1,
                (q @ (b'\'' | b'"'), None) => {
                    quote = Some(q);
                    seen_quote = true;
                }
                (q, Some(open_q)) if q == open_q => quote = None,
                (b':', None) => {
                    colon = true;
                    break;
                }
                _ => {}
            }
            k += 1;
        }
        if seen_quote && !colon {
            return true;
        }
    }
    false
}

/// One open bracket: for a `{`, what its elements look like so far.
struct Open<'a> {
    kind: u8,
    /// The `{` follows the keyword `in` (a membership test or a `for` target).
    after_in: bool,
    /// Elements finished so far, all constants.
    elements: usize,
    /// The current element: tokens seen, whether they can still form a constant, and
    /// whether they are string literals (adjacent ones concatenate into one constant).
    tokens: usize,
    constant: bool,
    current_str: bool,
    /// Some finished element is a string constant.
    has_str: bool,
    /// A `:` or the keyword `for`/`lambda`/`if` at this level: a dict, a comprehension or an
    /// expression that is no set of constants.
    disqualified: bool,
    /// The finished elements' values, while all are plain literals (`None` after the first
    /// that is not: a prefixed or escaped string, a float, a sign, a concatenation…).
    values: Option<Vec<Literal<'a>>>,
    /// The current element's value, when its one token so far is a plain literal.
    current_value: Option<Literal<'a>>,
}

/// A plain literal of a set display (a string's text is borrowed from the source), enough
/// to compute CPython's hash of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Literal<'a> {
    Str(&'a [u8]),
    Int(u64),
}

impl Literal<'_> {
    /// CPython's `hash()` of the value with `PYTHONHASHSEED=0` (SipHash-1-3 with a zero key
    /// for a string, the value itself for a small integer), as the set's table uses it.
    fn hash(&self) -> u64 {
        match *self {
            Literal::Str([]) => 0,
            // -1 is reserved for errors: CPython turns it into -2.
            Literal::Str(s) => match crate::pyc::siphash13(0, s) {
                u64::MAX => u64::MAX - 1,
                x => x,
            },
            Literal::Int(n) => n,
        }
    }
}

/// Whether the distinct values take distinct home slots (`hash & mask`) in the table
/// CPython builds for them by inserting one after another: 8 slots, grown to the smallest
/// power of two above four times the count whenever the table gets 3/5 full.
fn distinct_homes(values: &[Literal<'_>]) -> bool {
    // Hundreds of words in one display are not rare (stop-word lists, keyword tables).
    let distinct: std::collections::HashSet<&Literal<'_>> = values.iter().collect();
    let mut mask: u64 = 7;
    for fill in 1..=distinct.len() as u64 {
        if fill * 5 >= mask * 3 {
            let min_used = if fill > 50_000 { fill * 2 } else { fill * 4 };
            let mut size = 8;
            while size <= min_used {
                size <<= 1;
            }
            mask = size - 1;
        }
    }
    let mut homes: Vec<u64> = distinct.iter().map(|v| v.hash() & mask).collect();
    homes.sort_unstable();
    homes.windows(2).all(|w| w[0] != w[1])
}

impl Open<'_> {
    /// A comma or the closing bracket ends the current element.
    fn end_element(&mut self) {
        if self.tokens > 0 {
            if self.constant {
                self.elements += 1;
                self.has_str |= self.current_str;
            } else {
                self.disqualified = true;
            }
            match (self.current_value.take(), &mut self.values) {
                (Some(v), Some(values)) => values.push(v),
                _ => self.values = None,
            }
        }
        self.tokens = 0;
        self.constant = true;
        self.current_str = false;
        self.current_value = None;
    }

    /// A set display that CPython folds into a frozenset constant holding a string: all
    /// elements constants, one a string, and either after `in` or three or more of them.
    fn folds(&self) -> bool {
        !self.disqualified && self.has_str && self.elements >= 1 && (self.after_in || self.elements >= 3)
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
    stack: Vec<Open<'a>>,
    /// The previous token was the keyword `in`.
    prev_in: bool,
    /// A name with a non-ASCII character, outside strings and comments.
    non_ascii_name: bool,
    /// A display that folds into a frozenset of strings holds something else than plain
    /// literals, or literals whose hashes collide and that are no names of the file (see
    /// [`Prediction::certifiable`]).
    uncertifiable: bool,
    /// The name-like strings of displays whose hashes collide: certifiable only if each is
    /// an identifier somewhere in the file.
    wanted: Vec<&'a [u8]>,
    /// In a second pass over the file: which of `wanted` were seen as identifiers.
    found: Vec<bool>,
    /// The source is all ASCII: no name can hold a non-ASCII byte.
    ascii: bool,
    /// With `Some`, every name-like plain string of a folding display is collected here
    /// ([`set_strings`]).
    set_strings: Option<Vec<&'a [u8]>>,
}

impl<'a> Scanner<'a> {
    fn new(s: &'a [u8], ascii: bool) -> Self {
        Scanner {
            s,
            i: 0,
            stack: Vec::new(),
            prev_in: false,
            non_ascii_name: false,
            uncertifiable: false,
            wanted: Vec::new(),
            found: Vec::new(),
            ascii,
            set_strings: None,
        }
    }

    /// A folding display closed: whether it can be certified, or what it needs for that.
    fn check_display(&mut self, values: Option<&[Literal<'a>]>) {
        if let (Some(out), Some(values)) = (&mut self.set_strings, values) {
            for v in values {
                if let Literal::Str(text) = *v
                    && name_like(text)
                    && !out.contains(&text)
                {
                    out.push(text);
                }
            }
        }
        let Some(values) = values else {
            self.uncertifiable = true;
            return;
        };
        if distinct_homes(values) {
            return;
        }
        for v in values {
            if let Literal::Str(text) = *v
                && name_like(text)
            {
                if mangled_shape(text) || self.wanted.len() >= MAX_WANTED {
                    // A private name, or so many strings (a long word list) that looking
                    // for each among the file's names is not worth it.
                    self.uncertifiable = true;
                } else if !self.wanted.contains(&text) {
                    self.wanted.push(text);
                }
            }
        }
    }

    /// A word outside strings and comments, in the second pass: a name unless it is a
    /// keyword or a keyword argument (`f(key=…)`, which the parser interns but no code
    /// object lists among its names).
    fn note_name(&mut self, word: &[u8]) {
        let Some(at) = self.wanted.iter().position(|w| *w == word) else { return };
        if keyword(word) {
            return;
        }
        let rest = &self.s[self.i..];
        let next = rest.iter().position(|b| *b != b' ' && *b != b'\t').map(|n| &rest[n..]);
        let keyword_argument = next.is_some_and(|r| r.starts_with(b"=") && !r.starts_with(b"=="))
            && self.stack.last().is_some_and(|o| o.kind == b'(');
        if !keyword_argument {
            self.found[at] = true;
        }
    }

    /// The innermost open bracket when it is a `{`: only those are tracked element by
    /// element (what a `(` or `[` holds never decides anything).
    fn brace_top(&mut self) -> Option<&mut Open<'a>> {
        self.stack.last_mut().filter(|o| o.kind == b'{')
    }

    /// Where no set display is being followed element by element (outside every `{`, or
    /// directly inside a `(`, a `[` or a `{` known to be no set of constants), in the first
    /// pass, only strings, comments, brackets and (in a non-ASCII source) names with
    /// non-ASCII bytes change anything: jump to the next such byte. The bytes skipped are
    /// names, numbers, operators and blanks; the last token among them decides whether a
    /// `{` after them follows the keyword `in`.
    fn skip_untracked(&mut self) {
        const fn table(non_ascii: bool) -> [bool; 256] {
            let mut t = [false; 256];
            let mut b = 0;
            while b < 256 {
                t[b] = matches!(b as u8, b'#' | b'\'' | b'"' | b'(' | b'[' | b'{' | b')' | b']' | b'}')
                    || (non_ascii && b >= 0x80);
                b += 1;
            }
            t
        }
        static ASCII: [bool; 256] = table(false);
        static NON_ASCII: [bool; 256] = table(true);
        let stops = if self.ascii { &ASCII } else { &NON_ASCII };
        let rest = &self.s[self.i..];
        let n = rest.iter().position(|&b| stops[usize::from(b)]).unwrap_or(rest.len());
        let run = &rest[..n];
        if let Some(end) = run.iter().rposition(|&b| !blank(b)) {
            // A token ends here (blanks do not change what the previous one was).
            self.prev_in = run[..=end].ends_with(b"in") && (end < 2 || !word_byte(run[end - 2]));
        }
        self.i += n;
    }

    /// Scan the whole source (a frozenset found does not end the search for names).
    fn frozenset_with_str(&mut self) -> bool {
        let mut found = false;
        while self.i < self.s.len() {
            if self.found.is_empty() && self.stack.last().is_none_or(|o| o.kind != b'{' || o.disqualified) {
                self.skip_untracked();
                if self.i >= self.s.len() {
                    break;
                }
            }
            let c = self.s[self.i];
            match c {
                b'#' => {
                    self.i = memchr::memchr(b'\n', &self.s[self.i..]).map_or(self.s.len(), |n| self.i + n);
                }
                c if blank(c) => {
                    self.i += 1;
                    while self.s.get(self.i).is_some_and(|&b| blank(b)) {
                        self.i += 1;
                    }
                }
                b'\'' | b'"' => {
                    self.string(false, true);
                }
                b'(' | b'[' | b'{' => {
                    self.element_token(false, false, None);
                    self.stack.push(Open {
                        kind: c,
                        after_in: self.prev_in,
                        elements: 0,
                        tokens: 0,
                        constant: true,
                        current_str: false,
                        has_str: false,
                        disqualified: false,
                        values: Some(Vec::new()),
                        current_value: None,
                    });
                    self.prev_in = false;
                    self.i += 1;
                }
                b')' | b']' | b'}' => {
                    self.i += 1;
                    self.prev_in = false;
                    if let Some(mut open) = self.stack.pop()
                        && open.kind == b'{'
                        && c == b'}'
                    {
                        open.end_element();
                        if open.folds() {
                            found = true;
                            self.check_display(open.values.as_deref());
                        }
                    }
                }
                b',' => {
                    self.i += 1;
                    self.prev_in = false;
                    if let Some(top) = self.brace_top() {
                        top.end_element();
                    }
                }
                b':' => {
                    self.i += 1;
                    self.prev_in = false;
                    if let Some(top) = self.brace_top() {
                        top.disqualified = true;
                    }
                }
                b'-' | b'+' => {
                    // A sign before a number keeps an element constant (folded by the AST
                    // optimizer); anywhere else it is an operator.
                    self.i += 1;
                    self.prev_in = false;
                    if let Some(top) = self.brace_top() {
                        if top.tokens > 0 {
                            top.constant = false;
                        }
                        // A signed number is no plain literal.
                        top.values = None;
                    }
                }
                c if c.is_ascii_digit()
                    || (c == b'.' && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit)) =>
                {
                    let start = self.i;
                    let hex = matches!(self.s.get(self.i..self.i + 2), Some(b"0x" | b"0X"));
                    while self.i < self.s.len()
                        && (self.s[self.i].is_ascii_alphanumeric() || matches!(self.s[self.i], b'.' | b'_'))
                    {
                        // An exponent's sign belongs to the number.
                        if matches!(self.s[self.i], b'e' | b'E')
                            && matches!(self.s.get(self.i + 1), Some(b'+' | b'-'))
                            && !hex
                        {
                            self.i += 1;
                        }
                        self.i += 1;
                    }
                    let digits = &self.s[start..self.i];
                    let plain = digits.iter().all(u8::is_ascii_digit)
                        && digits.len() <= 18
                        && (digits.len() == 1 || digits[0] != b'0');
                    let value = plain
                        .then(|| Literal::Int(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))));
                    self.element_token(true, false, value);
                    self.prev_in = false;
                }
                c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                    let start = self.i;
                    let rest = &self.s[start..];
                    self.i += rest.iter().position(|&b| !word_byte(b)).unwrap_or(rest.len());
                    let word = &self.s[start..self.i];
                    self.non_ascii_name |= !word.is_ascii();
                    // A string prefix (r, b, f, u, rb, …) directly before a quote.
                    if word.len() <= 2
                        && word.iter().all(|b| b"rRbBuUfFtT".contains(b))
                        && matches!(self.s.get(self.i), Some(b'\'' | b'"'))
                    {
                        let bytes_or_f = word.iter().any(|b| b"bBfFtT".contains(b));
                        self.string(bytes_or_f, !bytes_or_f);
                        continue;
                    }
                    if !self.found.is_empty() {
                        self.note_name(word);
                    }
                    self.prev_in = word == b"in";
                    if self.brace_top().is_none() {
                        continue;
                    }
                    match word {
                        b"None" | b"True" | b"False" => self.element_token(true, false, None),
                        b"for" | b"lambda" | b"if" | b"async" | b"await" | b"yield" => {
                            if let Some(top) = self.brace_top() {
                                top.disqualified = true;
                            }
                        }
                        _ => self.element_token(false, false, None),
                    }
                }
                _ => {
                    // Operators, `.`, `*`, `@`, `=`, …: not part of a constant.
                    self.i += 1;
                    self.prev_in = false;
                    self.element_token(false, false, None);
                }
            }
        }
        found
    }

    /// Note a token of the current element: `constant` if it is a literal (a string, a
    /// number, a keyword constant), `is_str` if it is a string, `value` if it is a plain
    /// literal (see [`Literal`]).
    fn element_token(&mut self, constant: bool, is_str: bool, value: Option<Literal<'a>>) {
        if let Some(top) = self.brace_top() {
            if top.tokens == 0 {
                top.constant = constant;
                top.current_str = is_str;
                top.current_value = value;
            } else {
                if !(is_str && top.current_str && top.constant) {
                    // Anything after a first token but another string literal (a call, an
                    // operator, an attribute) makes an expression.
                    top.constant = false;
                }
                // Concatenated literals, or an expression: no plain literal.
                top.current_value = None;
            }
            top.tokens += 1;
        }
    }

    /// Skip a string literal (its prefix already read; the quote is at `self.i`).
    /// `plain_prefix`: no prefix, or only `r`/`u` (which change nothing without escapes).
    fn string(&mut self, bytes_or_f: bool, plain_prefix: bool) {
        let q = self.s[self.i];
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let start = self.i;
        let (mut escaped, mut closed) = (false, false);
        // Jump from one byte that matters (the quote, a backslash, a line end for a
        // one-line string) to the next.
        let next = |s: &[u8]| {
            if triple { memchr::memchr2(q, b'\\', s) } else { memchr::memchr3(q, b'\\', b'\n', s) }
        };
        loop {
            let Some(n) = next(self.s.get(self.i..).unwrap_or_default()) else {
                // Unterminated up to the end of the source.
                self.i = self.i.max(self.s.len());
                break;
            };
            self.i += n;
            let c = self.s[self.i];
            if c == b'\\' {
                escaped = true;
                self.i += 2;
                continue;
            }
            if c == q {
                if !triple {
                    closed = true;
                    self.i += 1;
                    break;
                }
                if self.s[self.i..].starts_with(&[q, q, q]) {
                    self.i += 3;
                    break;
                }
            } else {
                // An unterminated string: stop at the line's end, as the tokenizer would.
                break;
            }
            self.i += 1;
        }
        self.prev_in = false;
        // The text between the quotes is the value when nothing can change it: no escape,
        // one line, ASCII (CPython hashes a string's code points, not its UTF-8).
        let s = self.s;
        let value = (plain_prefix && closed && !escaped)
            .then(|| &s[start..self.i - 1])
            .filter(|text| text.is_ascii())
            .map(Literal::Str);
        self.element_token(!bytes_or_f, !bytes_or_f, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folds(src: &str) -> bool {
        predict(src.as_bytes(), true).frozenset_with_str
    }

    #[test]
    fn set_displays_that_fold_into_frozensets_of_strings() {
        assert!(folds("if x in {'a', 'b'}:\n    pass\n"));
        assert!(folds("if x not in {\"a\"}: pass"));
        assert!(folds("for k in {'a', 1}: pass"));
        assert!(folds("S = {'a', 2, 3}"));
        assert!(folds("S = {\n    'a',  # first\n    'b' 'c',\n    -1,\n}\n"));
        assert!(folds("f(x in {r'a', u'b', 1.5e-3})"));
        assert!(folds("if x in (1, {'a', 'b', 'c'}): pass"));
        // Whatever stands between `in` and the brace, and where the test sits (the scan
        // skips over what no set display is being followed in).
        assert!(folds("if x in  \\\n  {'a'}: pass"));
        assert!(folds("f(x in  # why\n  {'a'})"));
        assert!(folds("t = 'a'in{'b'}"));
        assert!(folds("D = {'k': x in {'a'}, 'v': [y for y in z]}"));
        assert!(folds("f(g(1), [h, x in {'a'}])"));
        assert!(folds("é = 1\nif x in {'a'}: pass"));
    }

    #[test]
    fn what_does_not_fold() {
        // Too few elements outside `in`, dicts, comprehensions, names, calls, bytes only.
        assert!(!folds("S = {'a', 'b'}"));
        assert!(!folds("D = {'a': 1, 'b': 2, 'c': 3}"));
        assert!(!folds("S = {x for x in 'abc'}"));
        assert!(!folds("if x in {a, 'b'}: pass"));
        assert!(!folds("if x in {'a'.upper(), 'b'}: pass"));
        assert!(!folds("if x in {b'a', b'b'}: pass"));
        assert!(!folds("if x in {f'{a}', 'b'}: pass"));
        assert!(!folds("if x in {1, 2, 3}: pass"));
        assert!(!folds("S = {*a, 'b', 'c'}"));
        assert!(!folds("S = {'a', 'b', 'c' + d}"));
        // In comments and strings, braces are text.
        assert!(!folds("# if x in {'a', 'b'}\ns = \"in {'a', 'b'}\"\nt = '''\nx in {'a'}\n'''\n"));
        assert!(!folds("s = f\"{x!r} in {{'a', 'b'}}\""));
        // Names ending in `in`, or `in` followed by another token first.
        assert!(!folds("if x in begin {'a'}: pass"));
        assert!(!folds("f(builtin  {'a'})"));
        assert!(!folds("if x in f({'a'}): pass"));
    }

    #[test]
    fn what_imports_unicodedata() {
        let imports = |s: &str| {
            let full = predict(s.as_bytes(), true).imports_unicodedata;
            assert_eq!(
                predict(s.as_bytes(), false),
                Prediction { imports_unicodedata: full, ..Default::default() },
                "{s}"
            );
            full
        };
        assert!(imports(r"s = '\N{BULLET}'"));
        assert!(imports("ñ = 1\n"));
        assert!(imports("def f(x):\n    return x.größe\n"));
        assert!(imports("d = {'a': café}"));
        assert!(!imports(r"s = '\n{BULLET}'"));
        assert!(!imports("s = 'café'  # ñ\nt = '''ü'''\n"));
        assert!(!imports("d = {'é': 1}"));
    }

    #[test]
    fn the_quick_look_passes_what_the_scanner_needs() {
        for src in [
            "if x in {'a', 'b'}: pass",
            "S = {\n    'a',  # first\n    'b',\n    -1,\n}\n",
            "if u in {'http://a', 'https://b'}: pass",
            "D = {'a': 1}\nif x in {'b', 'c'}: pass",
            "S = {'a\\'', 2, 3}",
        ] {
            assert!(maybe_set_of_strings(src.as_bytes()), "{src}");
            assert!(folds(src), "{src}");
        }
        for src in ["D = {'a': 1, 'b': 2}", "s = f'{x}'", "S = {1, 2, 3}", "d = {k: 'v' for k in x}", "{'a'"]
        {
            assert!(!maybe_set_of_strings(src.as_bytes()), "{src}");
        }
    }

    fn certifiable(src: &str) -> bool {
        let p = predict(src.as_bytes(), true);
        assert!(p.frozenset_with_str || !p.certifiable, "{src}");
        p.certifiable
    }

    #[test]
    fn string_hashes_are_cpythons() {
        // hash() of these strings in CPython 3.12, 3.13 and 3.15 with PYTHONHASHSEED=0.
        assert_eq!(Literal::Str(b"abc").hash() as i64, -4594863902769663758);
        assert_eq!(Literal::Str(b"name").hash() as i64, -6269146191053140058);
        assert_eq!(Literal::Str(b"").hash(), 0);
        assert_eq!(Literal::Int(7).hash(), 7);
    }

    #[test]
    fn certifiable_sets_take_distinct_slots() {
        // Home slots in CPython (hash & mask, mask from sys.getsizeof): 'foo' 2, 'spam' 0,
        // 'qux' 2, 1 1, 2 2, 3 3 of 8; 'a'..'e' 0, 14, 18, 19, 25 of 32 (five elements
        // grow the table).
        assert!(certifiable("def f(x):\n    return x in {'foo', 'spam'}\n"));
        assert!(certifiable("for k in {'a', 'b', 'c', 'd', 'e'}: pass"));
        assert!(certifiable("S = {'foo', 1, 3}"));
        assert!(!certifiable("S = {'foo', 2, 3}"));
        assert!(certifiable("if x in {'foo', 'spam', 'foo'}: pass"));
        assert!(!certifiable("if x in {'foo', 'qux'}: pass"));
        // Anything but plain literals: not guessed (only the worker could tell).
        for src in [
            r"if x in {'a\n', 'b'}: pass",
            "if x in {'a' 'b', 'c'}: pass",
            "if x in {-1, 'a'}: pass",
            "if x in {None, 'a'}: pass",
            "if x in {1.5, 'a'}: pass",
            "if x in {b'a', 'c'}: pass",
            "if x in {'''a''', 'c'}: pass",
            "if x in {'caf\u{e9}', 'c'}: pass",
        ] {
            assert!(!certifiable(src), "{src}");
        }
        // One display that cannot be certified is enough.
        assert!(!certifiable("if x in {'foo', 'spam'}: pass\nif y in {'foo', 'qux'}: pass\n"));
    }

    #[test]
    fn colliding_sets_of_the_files_own_names_are_certifiable() {
        // 'foo' and 'qux' share slot 2 of 8: certifiable only when both are names of the
        // file, before or after the display (interned by the parser in every process).
        assert!(certifiable("def foo(): pass\ndef qux(): pass\nif x in {'foo', 'qux'}: pass\n"));
        assert!(certifiable("if x in {'foo', 'qux'}: pass\nfoo = y.qux\n"));
        assert!(!certifiable("def foo(): pass\nif x in {'foo', 'qux'}: pass\n"));
        // Not names: a keyword argument, words in comments and strings, keywords.
        assert!(!certifiable("f(qux=1)\ndef foo(): pass\nif x in {'foo', 'qux'}: pass\n"));
        assert!(certifiable("f(qux == 1)\ndef foo(): pass\nif x in {'foo', 'qux'}: pass\n"));
        assert!(!certifiable("# foo qux\ns = 'foo qux'\nif x in {'foo', 'qux'}: pass\n"));
        // Strings intern_constants never interns decide nothing, colliding or not: '-' and
        // '%' share slot 6 of 8, 'a' (a singleton) and 'g h' slot 3.
        assert!(certifiable("if x in {'-', '%'}: pass\n"));
        assert!(certifiable("if x in {'a', 'g h'}: pass\n"));
        // A mangled private name is made while code is generated: never certifiable.
        assert!(mangled_shape(b"_C__x") && mangled_shape(b"_Cls__name_"));
        // A long word list is not looked for name by name.
        let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
        let list = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(", ");
        let defs: String = words.iter().map(|w| format!("{w} = 1\n")).collect();
        assert!(!certifiable(&format!("{defs}if x in {{{list}}}: pass\n")));
        assert!(
            !mangled_shape(b"__init__")
                && !mangled_shape(b"_x")
                && !mangled_shape(b"__x")
                && !mangled_shape(b"a__b")
        );
    }

    #[test]
    fn never_panics_on_fragments() {
        for s in ["{", "}", "'", "'''", "r'", "in {", "x in {'a',", "1e", "0x1e-", "{-", "\\", "{'a' 'b'"] {
            let _ = predict(s.as_bytes(), true);
        }
    }

    #[test]
    fn set_strings_and_words_never_panic_on_fragments() {
        for s in ["{", "'", "'''", "r'", "x in {'a',", "{'a' 'b'", "f'{", "'\\", "\"", "f\"\"\"{a"] {
            let _ = set_strings(s.as_bytes());
            let _ = word_hashes(s.as_bytes());
        }
    }

    #[test]
    fn the_name_like_strings_of_folding_displays() {
        let strings = |src: &str| -> Vec<String> {
            set_strings(src.as_bytes()).into_iter().map(|s| String::from_utf8(s).unwrap()).collect()
        };
        assert_eq!(strings("if x in {'foo', 'qux', 2, 'a', 'no way'}: pass\n"), ["foo", "qux"]);
        assert_eq!(strings("s = {'ab', 'cd', 'ab'}\nt = ('ef', 'gh')\nd = {'ij': 1}\n"), ["ab", "cd"]);
        // Two strings fold only after `in`; an escaped literal is no plain one.
        assert!(strings("s = {'ab', 'cd'}\nif x in {'e\\x66', 'gh'}: pass\n").is_empty());
    }

    #[test]
    fn keywords_are_the_list() {
        let listed: Vec<&str> = KEYWORDS.split_ascii_whitespace().collect();
        assert_eq!(listed.len(), 35);
        for k in &listed {
            assert!(keyword(k.as_bytes()), "{k}");
            assert!(!keyword(&k.as_bytes()[1..]) || listed.contains(&&k[1..]), "{k}");
        }
        for other in ["match", "case", "type", "_", "print", "self", "Ellipsis", "iff", "ands"] {
            assert!(!keyword(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn words_are_names_and_what_f_strings_hold() {
        let words = |src: &str| -> std::collections::HashSet<u64> {
            word_hashes(src.as_bytes()).into_iter().collect()
        };
        let w = words(
            "import foo_1  # bar\nx = 'baz qux' + b\"quux\" + f'{spam} eggs' + '''ham'''\n_C__y = 12e3\n\
             if match and type: case = f'{not_ in not_}'\n",
        );
        for name in ["foo_1", "spam", "eggs", "_C__y", "match", "type", "case", "not_"] {
            assert!(w.contains(&word_hash(name.as_bytes())), "{name}");
        }
        // Comments, plain strings, numbers, one-letter words and keywords (soft ones are
        // names) are left out.
        for other in ["bar", "baz", "qux", "quux", "ham", "12e3", "e3", "x", "import", "if", "and", "in"] {
            assert!(!w.contains(&word_hash(other.as_bytes())), "{other}");
        }
        // A backslash never ends a string; an unterminated one ends with its line.
        let w = words("a = 'it\\'s quoted' + \"open\nnext_line = 1\n");
        assert!(!w.contains(&word_hash(b"quoted")) && w.contains(&word_hash(b"next_line")));
    }
}
