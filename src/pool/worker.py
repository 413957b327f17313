# hashpyc worker: compiles the source bytes it is sent and returns marshal data.
#
# Runs as `python -S -s [-P] -B -c <bootstrap> <length of this script> <flag>` with
# PYTHONHASHSEED=0 and no other PYTHON* variable (see src/pool/mod.rs): the bootstrap
# reads this script from stdin and runs it, so `ps` shows a short command line. It imports nothing that start-up has not already loaded
# (sys, marshal, posix), never opens a file, and never runs project code.
#
# The first process is a *zygote*: it never compiles. It forks
#   - a long-lived child on b"L", which compiles b"C" requests until b"E" or EOF;
#   - a one-shot child on b"F", which compiles that one request and exits,
# so every one-shot compile starts from the same pristine state.
#
# Frames, both ways: u32 little-endian length, then that many bytes (a long-lived child
# writes the replies to a group of requests together, see _held). Replies and the hello
# go to stdout; the zygote's notes about its children (e, D) go to fd 3, a separate pipe,
# so a child that dies halfway through a reply can never be mistaken for a reply.
# Requests:  L[words] | E | C<req> | K<req> | P<req> | F<req>,
#            req = u8 nlevels, levels, u32 path length, path, source
#            (K: compile in the long-lived child and certify the result, see _uncertified;
#            P: the same, and where that fails, certify by probing, see _ambiguous;
#            words: NUL-separated strings the child probes before its first compile, so
#            that it knows which of them a pristine process has interned, see _birth)
# Replies:   H u32 hexversion, 4 magic bytes, u32 + sys.version, u32 + cache tag,
#              u32 + abiflags, u8 marshal version       (once, at start-up)
#            O u8 status, u16 nwarnings, warnings, (u32 length, marshal data) per level
#              warning = u8 + category, i32 lineno (-1: not a line of the source), u32 + message (UTF-8), u8 level index
#              status bit 0: sys.modules grew (the compile imported a codec or unicodedata)
#              status bit 1: (K, P only) every level's constants are certified
#            X u8 + type, u32 + message, 4 x i32 line/offset/end line/end offset, u32 + text,
#              warnings, u8 index of the level that failed (the levels before it compiled)
#            B words                                (a long-lived child started with words:
#                                                   those interned at its birth, NUL-separated)
# On fd 3:   e        after every forked child that exited with status 0
#            D i32    wait status, after every forked child that did not
#            N i32    errno, when the fork for an L or F request failed (no child)
import sys, marshal, posix

# The worker runs in the caller's directory, so that a launcher which picks the
# interpreter by directory (pyenv's `.python-version`, asdf, mise) starts the one the probe
# saw. It must never import from there: without -P (before 3.11) `-c` puts "" first.
if sys.path and sys.path[0] == "":
    del sys.path[0]

_FLAG_REF_TOP = sys.argv[2] == "1"
_caught = []
# The path being compiled: a warning CPython attributes to another file is not located in
# the source (3.12-3.13's constant folder warns of `~True` through PyErr_WarnEx, so the
# warning names the frame that called compile(): this script), and is sent without a line.
_where = [None]


class _Caught(object):
    # Stands in for warnings.WarningMessage: _warnings builds one per shown warning.
    def __init__(self, message, category, filename, lineno, file=None, line=None, source=None):
        _caught.append((category.__name__, str(message), lineno if filename == _where[0] else None))


def _show(message):
    pass


# Route compile-time warnings into _caught instead of stderr, without importing the
# warnings module: _warnings looks these attributes up on sys.modules["warnings"].
_w = type(sys)("warnings")
_w.filters = [("always", None, Warning, None, 0)]
_w.defaultaction = "always"
_w._onceregistry = {}
_w._filters_mutated = lambda: None
_w.WarningMessage = _Caught
_w._showwarnmsg = _show
sys.modules["warnings"] = _w


def _read(n):
    chunks = []
    while n:
        data = posix.read(0, n)
        if not data:
            return None
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def _frame():
    head = _read(4)
    if head is None:
        return None
    return _read(int.from_bytes(head, "little")) if head != b"\0\0\0\0" else b""


# A long-lived child holds its replies while the next request has already arrived whole
# (hashpyc sends small files in groups, in one write), and then writes them together: one
# wake-up of hashpyc per group instead of one per file. At most 1 MiB is held.
_holding = False
_held = []
_held_size = 0


def _send(*parts, fd=1):
    global _held_size
    size = 0
    for p in parts:
        size += len(p)
    parts = (size.to_bytes(4, "little"),) + parts
    if _holding and fd == 1:
        _held.extend(parts)
        _held_size += size + 4
        return
    _write(fd, parts, size + 4)


def _flush():
    global _held_size
    if _held:
        parts = tuple(_held)
        size = _held_size
        del _held[:]
        _held_size = 0
        _write(1, parts, size)


def _write(fd, parts, size):
    done = posix.writev(fd, parts)
    if done < size:
        # A partial write (a signal): finish the rest plainly.
        view = memoryview(b"".join(parts))[done:]
        while view:
            view = view[posix.write(fd, view):]


_pending = bytearray()


def _frame_buffered():
    # The long-lived child's reader: hashpyc sends it one request or a group of them (in
    # one write) and sends nothing more, an end request included, until every reply has
    # come back, so reading ahead of a frame never takes bytes that belong to anyone else.
    while len(_pending) < 4:
        data = posix.read(0, 1 << 20)
        if not data:
            return None
        _pending.extend(data)
    end = 4 + int.from_bytes(_pending[:4], "little")
    while len(_pending) < end:
        data = posix.read(0, max(1 << 20, end - len(_pending)))
        if not data:
            return None
        _pending.extend(data)
    frame = bytes(_pending[4:end])
    del _pending[:end]
    return frame


def _u32(n):
    return n.to_bytes(4, "little")


def _i32(n):
    return (n if isinstance(n, int) else -1).to_bytes(4, "little", signed=True)


def _text(s):
    b = s.encode("utf-8", "surrogatepass")
    return _u32(len(b)) + b


_CODE = type(compile("", "", "exec"))
_SLOT = 16 if sys.maxsize > 2 ** 32 else 8
_EMPTY_SET = sys.getsizeof(frozenset())


def _containers(value, out):
    # Frozensets and slices among a constant and the tuples and frozensets inside it.
    kind = type(value)
    if kind is frozenset or kind is slice:
        out.append(value)
    if kind is frozenset or kind is tuple:
        for item in value:
            _containers(item, out)


def _forced(items, names):
    # Whether interning decides nothing here: every name-like string of two or more
    # characters among `items` is a name of the module's code, so an identifier the parser
    # interned before any code was generated (or a name start-up interned), in every
    # process; and not a mangled private name (`_C__x`, made while code is generated).
    # Then intern_constants finds each one interned, in this child as in a pristine one,
    # and rebuilds the container alike. Shorter strings are singletons and non-name-like
    # ones are never interned there: they decide nothing either.
    for item in items:
        if _name_like(item) and (item not in names or _mangled(item)):
            return False
    return True


def _uncertified(top):
    # Which containers keep code object `top` from being certified: whether it marshals to what a pristine worker would write, whatever
    # this child compiled before. On 3.12+ history reaches a module's bytes only through
    # intern_constants, which rebuilds a frozenset (3.14+: also a slice) constant when a
    # name-like string in it was interned before: a rebuilt set is filled in the old one's
    # order, which can reorder colliding elements, and a constant several code objects
    # shared becomes one copy each. (Interned strings get FLAG_REF whatever their
    # refcount; whether a string was interned at all does show, in its type byte: see
    # below.) So a result is certified when every frozenset or slice holding a string
    # either has its rebuild decided by the source alone (_forced), or is a frozenset that
    # occurs once among the constants with its elements all in distinct home slots (hash &
    # mask: then every insertion order gives the same table). Read from the compiled code
    # objects themselves, never from the marshal data: marshal.loads interns (3.13+:
    # immortalizes) every string the data mark interned, and such a string, say a qualname
    # like `f.<locals>.C` that a pristine compile interns, then comes out of a later
    # compile in this child not interned (marshal type `z` instead of `Z`): 3.13's
    # test_gc.py then test_finalization.py did.
    # Returns the items of the containers that fail (none: certified), and the names of
    # the module's code.
    found = []
    names = set()
    codes = [top]
    while codes:
        code = codes.pop()
        names.update(code.co_names, code.co_varnames, code.co_cellvars, code.co_freevars)
        names.add(code.co_name)
        for const in code.co_consts:
            if type(const) is _CODE:
                codes.append(const)
            else:
                _containers(const, found)
    counts = {}
    for c in found:
        counts[c] = counts.get(c, 0) + 1
    failing = []
    for c in found:
        items = (c.start, c.stop, c.step) if type(c) is slice else c
        if not any(type(item) is str for item in items) or _forced(items, names):
            continue
        if type(c) is slice or counts[c] > 1 or not _distinct_homes(c):
            failing.append(items)
    return failing, names


# Probing (3.13+ only). There, the strings a compile interns for its constants are mortal:
# they leave the interned table when the code objects holding them die, and so does a
# string sys.intern interned. What a long-lived child's history leaves behind for good is
# the identifiers its parser interned (immortal). So sys.intern on a fresh copy of a string
# tells, without changing anything that lasts, whether an equal string is interned now.
_PROBE = sys.version_info >= (3, 13)
# The strings of the L request's list that were interned when this child was forked: what
# every pristine fork of the zygote has interned too.
_birth = frozenset()


def _present(word):
    # Whether a string equal to `word` (ASCII bytes) is interned now; nothing stays interned.
    s = word.decode("ascii")
    t = sys.intern(s)
    found = t is not s
    del s, t
    return found


def _probe_birth(words):
    global _birth
    if _PROBE:
        _birth = frozenset(
            w for w in words.split(b"\0")
            if len(w) > 1 and w.isascii() and w.replace(b"_", b"a").isalnum() and _present(w)
        )


def _name_like(item):
    return type(item) is str and len(item) > 1 and item.isascii() and item.replace("_", "a").isalnum()


def _mangled(item):
    return item[0] == "_" and item[1] != "_" and "__" in item[2:] and item[-2:] != "__"


def _ambiguous(top):
    # None when `top` is certified (see _uncertified); else the strings on which the
    # rebuild of its uncertified containers turns: the name-like strings in them that are no names of the module (or are mangled
    # names). As ASCII bytes, so that no reference to the constants outlives `top`.
    # intern_constants rebuilds a frozenset (a slice) when one of its name-like strings is
    # replaced by an equal string interned before; for a name of the module that happens
    # alike in every process (see _forced). For the strings returned here it happens alike
    # in this child and in a pristine fork when, at the start of this compile, an equal
    # string was interned in both or in neither: the caller probes each one once the
    # compile's own objects are gone. Absent then, it was absent at the start (what was
    # interned at the start is still alive: the zygote's strings and immortal identifiers
    # of earlier compiles), so in a pristine fork too. Present, it must have been present
    # at this child's birth (_birth), so in a pristine fork too; otherwise an earlier
    # compile interned it and the file goes to a fresh fork.
    failing, names = _uncertified(top)
    if not failing:
        return None
    out = set()
    for items in failing:
        for item in items:
            if _name_like(item) and (item not in names or _mangled(item)):
                out.add(item.encode("ascii"))
    return out


def _distinct_homes(c):
    extra = sys.getsizeof(c) - _EMPTY_SET
    mask = (extra // _SLOT if extra else 8) - 1
    homes = set()
    for item in c:
        home = hash(item) & mask
        if home in homes:
            return False
        homes.add(home)
    return True


def _stderr_of(source, path, level):
    # What compiling writes to the C-level stderr, for an exception without a message:
    # CPython 3.7 and 3.8's parser writes "s_push: parser stack overflow" there, then raises
    # an empty MemoryError. Only on that failure path: the file is compiled again with fd 2
    # on a non-blocking pipe (what does not fit is dropped), then fd 2 is put back.
    try:
        r, w = posix.pipe()
    except OSError:
        return ""
    saved = -1
    try:
        posix.set_blocking(w, False)
        posix.set_blocking(r, False)
        saved = posix.dup(2)
        posix.dup2(w, 2)
        try:
            compile(source, path, "exec", dont_inherit=True, optimize=level)
        except Exception:
            pass
        posix.dup2(saved, 2)
        text = posix.read(r, 4096).decode("utf-8", "replace")
        return "; ".join(line.strip() for line in text.splitlines() if line.strip())
    except OSError:
        return ""
    finally:
        if saved >= 0:
            posix.dup2(saved, 2)
            posix.close(saved)
        posix.close(w)
        posix.close(r)


def _warnings(ends):
    # The caught warnings (emptied), counted, each with the index of the level that raised
    # it: `ends` holds how many were caught once each level compiled; any after the last
    # came from the level that failed.
    warns = []
    index = 0
    for i, (category, message, lineno) in enumerate(_caught[:65535]):
        while index < len(ends) and ends[index] <= i:
            index += 1
        c = category.encode()[:255]
        warns.append(bytes([len(c)]) + c + _i32(lineno) + _text(message) + bytes([index]))
    del _caught[:]
    _where[0] = None
    return len(warns).to_bytes(2, "little") + b"".join(warns)


def _compile(req):
    # req[0] is the op byte.
    nlevels = req[1]
    levels = req[2:2 + nlevels]
    at = 2 + nlevels
    plen = int.from_bytes(req[at:at + 4], "little")
    at += 4
    path = req[at:at + plen].decode("utf-8", "surrogateescape")
    source = memoryview(req)[at + plen:]
    nmods = len(sys.modules)
    del _caught[:]
    _where[0] = path
    bodies = []
    ends = []
    # Certification reads the code objects, so it needs them after marshalling, one level
    # at a time (a code object kept alive keeps its strings interned while the next level
    # compiles).
    probe = req[:1] == b"P" and _PROBE
    certified = req[:1] == b"K" or req[:1] == b"P"
    try:
        for level in levels:
            if _FLAG_REF_TOP or certified:
                # The code object kept past marshalling: held in two names where
                # py_compile's caller holds it (its top-level FLAG_REF bit set), else in
                # one local only, which 3.14+ hands to marshal.dumps as a borrowed
                # reference, so the bit stays clear as in py_compile's pyc (3.15). Should
                # the bit come out other than py_compile's, these bytes are not its: no
                # certificate, and the caller, which checks that bit of every result,
                # compiles the file again in a fresh fork.
                code = compile(source, path, "exec", dont_inherit=True, optimize=level)
                hold = [code] if _FLAG_REF_TOP else None
                body = marshal.dumps(code)
                bodies.append(body)
                ambiguous = ()
                if certified:
                    try:
                        certified = bool(body[0] & 0x80) == _FLAG_REF_TOP
                        found = _ambiguous(code) if certified else None
                        if found is not None:
                            certified = probe
                            ambiguous = found if probe else ()
                    except Exception:
                        certified = False
                del code, hold, body
                for word in ambiguous:
                    if word not in _birth and _present(word):
                        certified = False
                        break
                del ambiguous
            else:
                bodies.append(marshal.dumps(compile(source, path, "exec", dont_inherit=True, optimize=level)))
            ends.append(len(_caught))
    except Exception as e:
        kind = type(e).__name__
        line = getattr(e, "lineno", None)
        offset = getattr(e, "offset", None)
        end_line = getattr(e, "end_lineno", None)
        end_offset = getattr(e, "end_offset", None)
        text = getattr(e, "text", None)
        msg = getattr(e, "msg", None) if isinstance(e, SyntaxError) else None
        if not isinstance(msg, str):
            msg = str(e)
        if not msg:
            msg = _stderr_of(source, path, level) or (
                "no message (CPython 3.7 and 3.8's parser raises MemoryError without one when code "
                "nests too deeply; otherwise memory ran out)"
                if kind == "MemoryError" and sys.version_info < (3, 9) else "no message")
        if not isinstance(text, str):
            text = ""
        k = kind.encode()
        # The warnings raised before the error follow it, as in a result.
        _send(b"X", bytes([len(k)]), k, _text(msg), _i32(line), _i32(offset),
              _i32(end_line), _i32(end_offset), _text(text), _warnings(ends), bytes([len(ends)]))
        return
    status = 1 if len(sys.modules) != nmods else 0
    if certified:
        status |= 2
    out = [b"O" + bytes([status]) + _warnings(ends)]
    for body in bodies:
        out.append(_u32(len(body)))
        out.append(body)
    _send(*out)


def _child_loop():
    global _holding
    _holding = True
    while True:
        req = _frame_buffered()
        if req is None or req[:1] == b"E":
            return
        _compile(req)
        n = len(_pending)
        if n < 4 or n < 4 + int.from_bytes(_pending[:4], "little") or _held_size > 1 << 20 or len(_held) > 256:
            _flush()


def _zygote():
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    # Everything the probe said that the bytecode cache's key takes from it (see
    # `pool::changed`): a launcher may now run another build of the same magic.
    # And the settings it runs with that the probe reports (a launcher's flags may come
    # from a variable its key cannot see): no column positions, read from this script's
    # own code (compiling anything here would intern its strings in the zygote), the
    # int-digits limit when not the default, sys.flags.optimize, sys.pycache_prefix.
    code = _zygote.__code__
    ranges = 1
    if hasattr(code, "co_positions"):
        ranges = 1 if any(p[3] is not None for p in code.co_positions()) else 0
    digits = -1
    if hasattr(sys, "get_int_max_str_digits"):
        digits = sys.get_int_max_str_digits()
        if digits == getattr(sys.int_info, "default_max_str_digits", 4300):
            digits = -1
    prefix = getattr(sys, "pycache_prefix", None) or ""
    prefix = prefix.encode(sys.getfilesystemencoding(), "surrogateescape")
    _send(b"H", _u32(sys.hexversion), magic, _text(sys.version.replace("\n", " ")),
          _text(sys.implementation.cache_tag), _text(getattr(sys, "abiflags", "")),
          bytes((marshal.version, 1 - ranges)), _i32(digits), _i32(sys.flags.optimize),
          _u32(len(prefix)), prefix)
    while True:
        req = _frame()
        if req is None:
            return
        op = req[:1]
        if op != b"L" and op != b"F":
            continue
        try:
            pid = posix.fork()
        except OSError as e:
            # A process limit (ulimit -u) or memory: said in a note, never a traceback.
            req = None
            _send(b"N", _i32(e.errno or 0), fd=3)
            continue
        if pid == 0:
            code = 1
            try:
                if op == b"L":
                    if len(req) > 1:
                        _probe_birth(req[1:])
                        _send(b"B", b"\0".join(sorted(_birth)))
                    req = None
                    _child_loop()
                else:
                    _compile(req)
                code = 0
            except BaseException as e:
                try:
                    sys.stderr.write("hashpyc worker: %r\n" % (e,))
                    sys.stderr.flush()
                except BaseException:
                    pass
            finally:
                posix._exit(code)
        req = None
        status = posix.waitpid(pid, 0)[1]
        if status == 0:
            _send(b"e", fd=3)
        else:
            _send(b"D", _i32(status), fd=3)


_zygote()
