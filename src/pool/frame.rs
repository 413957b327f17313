//! The binary protocol between hashpyc and its Python workers (see `worker.py` for the
//! other side): length-prefixed frames, so paths may hold newlines and sources NUL bytes.
//! Decoding is total: a short, oversized or garbled frame is an error, never a panic, and
//! no length field is trusted beyond the bytes actually present.

use thiserror::Error;

/// Largest frame we accept from a worker (a marshal body of a huge source fits easily).
pub const MAX_FRAME: usize = 1 << 30;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("the worker sent an empty frame")]
    Empty,
    #[error("the worker sent a frame of unknown kind {0:#04x}")]
    UnknownKind(u8),
    #[error("the worker sent a truncated {0} frame")]
    Truncated(&'static str),
    #[error("the worker sent {0} trailing bytes")]
    Trailing(usize),
    #[error("the worker announced a frame of {0} bytes")]
    TooLarge(u64),
}

/// A compile-time warning (SyntaxWarning and friends), as the worker caught it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Warning {
    pub category: String,
    /// The line of the source; [`Warning::NO_LINE`] for a warning CPython attributes to no
    /// line of it (see [`Warning::in_source`]).
    pub line: i32,
    pub message: String,
    /// Which of the request's optimization levels raised it (an index into them).
    pub level: u8,
}

impl Warning {
    /// The line of a warning raised outside the source's own lines.
    pub const NO_LINE: i32 = -1;

    /// Whether CPython raised it at a line of the source (the compiler's and tokenizer's
    /// warnings), which `python -W error` turns into a failure of the compile. The one
    /// warning seen otherwise, 3.12 and 3.13's constant folder on `~True`
    /// (DeprecationWarning, through `PyErr_WarnEx`: attributed to the caller's frame), is
    /// dropped by the folder when it becomes an exception: the file compiles
    /// (`python -W error -m py_compile` succeeds), so it fails nothing under `-W error`.
    pub fn in_source(&self) -> bool {
        self.line != Self::NO_LINE
    }

    /// The same warning, whatever level raised it.
    pub fn same_as(&self, other: &Warning) -> bool {
        self.category == other.category && self.line == other.line && self.message == other.message
    }
}

/// A source that did not compile.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompileFailure {
    /// The exception type: SyntaxError, IndentationError, ValueError, …
    pub kind: String,
    pub message: String,
    pub line: Option<u32>,
    pub offset: Option<u32>,
    pub end_line: Option<u32>,
    pub end_offset: Option<u32>,
    pub text: String,
    /// The warnings the compile raised before it failed (each `level` an index into the
    /// levels of the request that failed), reported with the failure and remembered with
    /// it; absent from what was remembered or cached before they were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// Which of the request's levels failed (an index into them; those before it
    /// compiled), as the worker says it; the state directory remembers it beside the
    /// failure (`memo`), the bytecode cache does not (`None` once read back).
    #[serde(skip)]
    pub failed_level: Option<u8>,
}

/// The exception types a compile raises for what the source holds, and only for that:
/// `SyntaxError` and its subclasses (also what CPython raises for undecodable bytes, an
/// unknown or non-text encoding, an integer literal over the digit limit, NUL bytes on
/// 3.12+), and `ValueError` (NUL bytes before 3.12). Any other type (`MemoryError`,
/// `RecursionError`, `SystemError`, hashpyc's own) can depend on the machine, its limits or
/// the moment, even when the source provoked it.
const SOURCE_FAILURES: [&str; 4] = ["SyntaxError", "IndentationError", "TabError", "ValueError"];

/// The failures of a nesting limit that is a fixed count of the interpreter build, by
/// version, type and message. The parser's own: on 3.7 and 3.8 its stack is a fixed array
/// (`s_push: parser stack overflow` on stderr, which the worker makes the message); on 3.12
/// and 3.13 the generated parser counts its depth against `MAXSTACK`. From 3.14 the same
/// message also comes from a check of the real C stack (`ulimit -s`, a thread's size), and
/// on 3.9 to 3.11 the limit raises a `MemoryError` without a message, as memory running
/// out does: neither is told apart from the machine's limits. And 3.12's compiler (its AST
/// optimizer and symbol table: `x = ` and 3 000 unary minuses), which counts against the
/// build's C recursion limit from the depth of C calls at the compile, the same for every
/// compile of the worker: not the C stack (`ulimit -s`), nor `sys.setrecursionlimit` or
/// Python calls, which 3.10 and 3.11's count depends on; 3.13 has no such failure below
/// the parser's limit, and 3.14+ checks the real C stack.
const FIXED_LIMITS: [((u8, u8), &str, &str); 5] = [
    ((3, 7), "MemoryError", "s_push: parser stack overflow"),
    ((3, 8), "MemoryError", "s_push: parser stack overflow"),
    ((3, 12), "MemoryError", "Parser stack overflowed - Python source too complex to parse"),
    ((3, 13), "MemoryError", "Parser stack overflowed - Python source too complex to parse"),
    ((3, 12), "RecursionError", "maximum recursion depth exceeded during compilation"),
];

impl CompileFailure {
    /// Whether the same source bytes fail the same way on every machine with this
    /// interpreter: only such a failure is stored in the bytecode cache or remembered by
    /// the state directory; any other is reported, and the file compiled again next time.
    pub fn from_source(&self) -> bool {
        SOURCE_FAILURES.contains(&self.kind.as_str())
    }

    /// Whether the same source bytes fail the same way every time with this interpreter
    /// build (CPython `version`), whatever the machine's memory or stack: a failure from
    /// the source, or a nesting limit that is a fixed count of the build ([`FIXED_LIMITS`],
    /// exactly its type and message). What the state directory remembers, per interpreter
    /// build; the bytecode cache, shared by builds of one version whose limit may differ (a
    /// WASI build's `MAXSTACK` is smaller), keeps to [`CompileFailure::from_source`].
    pub fn same_every_time(&self, version: (u8, u8)) -> bool {
        self.from_source()
            || FIXED_LIMITS
                .iter()
                .any(|&(v, kind, message)| v == version && self.kind == kind && self.message == message)
    }
}

/// Everything a worker can say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Start-up handshake: what the interpreter is, as far as the bytecode cache's key
    /// takes it from the probe (see `pool::changed`).
    Hello {
        hexversion: u32,
        magic: [u8; 4],
        sys_version: String,
        cache_tag: String,
        abiflags: String,
        marshal_version: u8,
        /// The settings it runs with, as the probe reports them (`target::RunSettings`):
        /// no column positions, the int-digits limit when not the default (-1: the
        /// default), `sys.flags.optimize`, `sys.pycache_prefix`'s bytes (empty: none).
        no_debug_ranges: bool,
        int_max_str_digits: i32,
        optimize: i32,
        pycache_prefix: Vec<u8>,
    },
    /// Marshal data for each requested optimization level.
    Compiled {
        modules_changed: bool,
        /// The request asked for a certificate and the compiled constants earn it: no
        /// string-holding frozenset or slice whose bytes could depend on the child's
        /// history (see `worker.py`, `_uncertified`).
        certified: bool,
        warnings: Vec<Warning>,
        bodies: Vec<Vec<u8>>,
    },
    Failed(CompileFailure),
    /// A long-lived child's answer to the strings it was started with: those interned at
    /// its birth, NUL-separated.
    Birth(Vec<u8>),
    /// A forked child exited normally.
    ChildEnded,
    /// A forked child died (raw wait status).
    ChildDied(i32),
    /// The zygote could not fork the child asked for (errno).
    ForkFailed(i32),
}

/// A request to a worker.
pub enum Request<'a> {
    /// Fork a long-lived child, which first probes which of these NUL-separated strings
    /// are interned (see `worker.py`, `_birth`; empty: none).
    StartChild(&'a [u8]),
    /// End the long-lived child.
    EndChild,
    /// Compile in the long-lived child.
    Compile(&'a Job<'a>),
    /// Compile in a fresh fork of the zygote.
    CompileFresh(&'a Job<'a>),
}

/// What a compile request carries.
pub struct Job<'a> {
    pub levels: &'a [u8],
    /// The path to embed as `co_filename`, as raw bytes (decoded with surrogateescape).
    pub filename: &'a [u8],
    pub source: &'a [u8],
    /// Ask the long-lived child to certify the result (op `K` instead of `C`).
    pub certify: bool,
    /// With `certify`, let it also certify by probing the interned strings (op `P`: 3.13+,
    /// see `worker.py`, `_ambiguous`).
    pub probe: bool,
}

impl Request<'_> {
    /// The frame as slices to write in order (length prefix included): the source is
    /// borrowed, never copied.
    pub fn parts(&self) -> (Vec<u8>, &[u8]) {
        let mut head = Vec::with_capacity(64);
        head.extend_from_slice(&[0; 4]);
        let tail: &[u8] = match self {
            Request::StartChild(words) => {
                head.push(b'L');
                words
            }
            Request::EndChild => {
                head.push(b'E');
                &[]
            }
            Request::Compile(job) | Request::CompileFresh(job) => {
                head.push(match self {
                    Request::Compile(job) if job.certify && job.probe => b'P',
                    Request::Compile(job) if job.certify => b'K',
                    Request::Compile(_) => b'C',
                    _ => b'F',
                });
                head.push(u8::try_from(job.levels.len()).expect("at most three levels"));
                head.extend_from_slice(job.levels);
                head.extend_from_slice(&(job.filename.len() as u32).to_le_bytes());
                head.extend_from_slice(job.filename);
                job.source
            }
        };
        let len = (head.len() - 4 + tail.len()) as u32;
        head[..4].copy_from_slice(&len.to_le_bytes());
        (head, tail)
    }

    /// The whole frame in one buffer (for tests).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let (mut head, tail) = self.parts();
        head.extend_from_slice(tail);
        head
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.data.len() < n {
            return Err(FrameError::Truncated(self.what));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32, FrameError> {
        Ok(self.u32()? as i32)
    }
    /// A count, then each warning: category, line, message, level index.
    fn warnings(&mut self) -> Result<Vec<Warning>, FrameError> {
        let n = self.u16()?;
        let mut warnings = Vec::new();
        for _ in 0..n {
            let category = self.short_str()?;
            let line = self.i32()?;
            let message = self.text()?;
            let level = self.u8()?;
            warnings.push(Warning { category, line, message, level });
        }
        Ok(warnings)
    }
    fn short_str(&mut self) -> Result<String, FrameError> {
        let n = self.u8()?;
        Ok(String::from_utf8_lossy(self.take(usize::from(n))?).into_owned())
    }
    fn text(&mut self) -> Result<String, FrameError> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn done(self) -> Result<(), FrameError> {
        match self.data.len() {
            0 => Ok(()),
            n => Err(FrameError::Trailing(n)),
        }
    }
}

fn position(v: i32) -> Option<u32> {
    u32::try_from(v).ok()
}

/// Decode one frame's payload (without its length prefix).
pub fn decode(payload: &[u8]) -> Result<Message, FrameError> {
    let (&kind, rest) = payload.split_first().ok_or(FrameError::Empty)?;
    match kind {
        b'H' => {
            let mut c = Cursor { data: rest, what: "hello" };
            let hexversion = c.u32()?;
            let m = c.take(4)?;
            let magic = [m[0], m[1], m[2], m[3]];
            let sys_version = c.text()?;
            let cache_tag = c.text()?;
            let abiflags = c.text()?;
            let marshal_version = c.u8()?;
            let no_debug_ranges = c.u8()? != 0;
            let int_max_str_digits = c.i32()?;
            let optimize = c.i32()?;
            let n = c.u32()? as usize;
            let pycache_prefix = c.take(n)?.to_vec();
            c.done()?;
            Ok(Message::Hello {
                hexversion,
                magic,
                sys_version,
                cache_tag,
                abiflags,
                marshal_version,
                no_debug_ranges,
                int_max_str_digits,
                optimize,
                pycache_prefix,
            })
        }
        b'O' => {
            let mut c = Cursor { data: rest, what: "result" };
            let status = c.u8()?;
            let warnings = c.warnings()?;
            let mut bodies = Vec::new();
            while !c.data.is_empty() {
                let n = c.u32()? as usize;
                bodies.push(c.take(n)?.to_vec());
            }
            if bodies.is_empty() {
                return Err(FrameError::Truncated("result"));
            }
            Ok(Message::Compiled {
                modules_changed: status & 1 != 0,
                certified: status & 2 != 0,
                warnings,
                bodies,
            })
        }
        b'X' => {
            let mut c = Cursor { data: rest, what: "error" };
            let kind = c.short_str()?;
            let message = c.text()?;
            let line = position(c.i32()?);
            let offset = position(c.i32()?);
            let end_line = position(c.i32()?);
            let end_offset = position(c.i32()?);
            let text = c.text()?;
            let warnings = c.warnings()?;
            let failed_level = Some(c.u8()?);
            c.done()?;
            Ok(Message::Failed(CompileFailure {
                kind,
                message,
                line,
                offset,
                end_line,
                end_offset,
                text,
                warnings,
                failed_level,
            }))
        }
        b'e' => Cursor { data: rest, what: "end" }.done().map(|_| Message::ChildEnded),
        b'B' => Ok(Message::Birth(rest.to_vec())),
        b'D' => {
            let mut c = Cursor { data: rest, what: "died" };
            let status = c.i32()?;
            c.done()?;
            Ok(Message::ChildDied(status))
        }
        b'N' => {
            let mut c = Cursor { data: rest, what: "fork failed" };
            let errno = c.i32()?;
            c.done()?;
            Ok(Message::ForkFailed(errno))
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind() {
        let hello = b"H\x01\x02\x03\x04\xa7\x0d\x0d\x0a\x03\x00\x00\x003.x\x0b\x00\x00\x00cpython-311\x00\x00\x00\x00\x04\x01\xff\xff\xff\xff\x02\x00\x00\x00\x02\x00\x00\x00/p";
        assert_eq!(
            decode(hello),
            Ok(Message::Hello {
                hexversion: 0x04030201,
                magic: [0xa7, 0x0d, 0x0d, 0x0a],
                sys_version: "3.x".into(),
                cache_tag: "cpython-311".into(),
                abiflags: String::new(),
                marshal_version: 4,
                no_debug_ranges: true,
                int_max_str_digits: -1,
                optimize: 2,
                pycache_prefix: b"/p".to_vec(),
            })
        );
        let ok = b"O\x01\x01\x00\x0dSyntaxWarning\x02\x00\x00\x00\x03\x00\x00\x00msg\x01\x02\x00\x00\x00ab\x00\x00\x00\x00";
        assert_eq!(
            decode(ok),
            Ok(Message::Compiled {
                modules_changed: true,
                certified: false,
                warnings: vec![Warning {
                    category: "SyntaxWarning".into(),
                    line: 2,
                    message: "msg".into(),
                    level: 1
                }],
                bodies: vec![b"ab".to_vec(), Vec::new()],
            })
        );
        let err = b"X\x0bSyntaxError\x03\x00\x00\x00bad\x01\x00\x00\x00\x05\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00x(\x01\x00\x0dSyntaxWarning\x02\x00\x00\x00\x03\x00\x00\x00msg\x00\x01";
        let Ok(Message::Failed(f)) = decode(err) else { panic!() };
        // The level that failed: the second one asked for.
        assert_eq!(f.failed_level, Some(1));
        assert_eq!(
            (f.kind.as_str(), f.line, f.offset, f.end_line, f.text.as_str()),
            ("SyntaxError", Some(1), Some(5), None, "x(")
        );
        let w = Warning { category: "SyntaxWarning".into(), line: 2, message: "msg".into(), level: 0 };
        assert_eq!(f.warnings, vec![w]);
        assert_eq!(decode(b"e"), Ok(Message::ChildEnded));
        assert_eq!(decode(b"Bab\0cd"), Ok(Message::Birth(b"ab\0cd".to_vec())));
        assert_eq!(decode(b"D\x09\x00\x00\x00"), Ok(Message::ChildDied(9)));
        assert_eq!(decode(b"N\x0b\x00\x00\x00"), Ok(Message::ForkFailed(11)));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(b""), Err(FrameError::Empty));
        assert_eq!(decode(b"?"), Err(FrameError::UnknownKind(b'?')));
        assert_eq!(decode(b"H\x01"), Err(FrameError::Truncated("hello")));
        assert_eq!(decode(b"O\x00\x00\x00"), Err(FrameError::Truncated("result")));
        assert_eq!(decode(b"O\x00\x00\x00\xff\xff\xff\x7f"), Err(FrameError::Truncated("result")));
        assert_eq!(decode(b"e!"), Err(FrameError::Trailing(1)));
    }

    #[test]
    fn request_layout() {
        let mut job =
            Job { levels: &[0, 2], filename: b"a\nb.py", source: b"x\0", certify: false, probe: false };
        let frame = Request::CompileFresh(&job).encode();
        assert_eq!(&frame[..4], &(frame.len() as u32 - 4).to_le_bytes());
        assert_eq!(&frame[4..], b"F\x02\x00\x02\x06\x00\x00\x00a\nb.pyx\0");
        assert_eq!(Request::Compile(&job).encode()[4], b'C');
        job.certify = true;
        assert_eq!(Request::Compile(&job).encode()[4], b'K');
        job.probe = true;
        assert_eq!(Request::Compile(&job).encode()[4], b'P');
        assert_eq!(Request::StartChild(b"ab\0cd").encode(), b"\x06\x00\x00\x00Lab\0cd");
        assert_eq!(Request::StartChild(b"").encode(), b"\x01\x00\x00\x00L");
        assert_eq!(
            decode(b"O\x02\x00\x00\x00\x00\x00\x00"),
            Ok(Message::Compiled {
                modules_changed: false,
                certified: true,
                warnings: Vec::new(),
                bodies: vec![Vec::new()],
            })
        );
        assert_eq!(Request::EndChild.encode(), b"\x01\x00\x00\x00E");
    }
}
