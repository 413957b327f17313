import sys
# Run in the caller's directory (so that a launcher picks the interpreter by directory, as
# for the workers), but never import from it: `-c` puts "" first, and a project's own
# `random.py` or `types.py` would shadow what tempfile and py_compile import below.
if sys.path and sys.path[0] == "":
    del sys.path[0]
w = sys.stdout.write
impl = getattr(getattr(sys, "implementation", None), "name", "unknown")
w("hashpyc-probe\n")
w("implementation=%s\n" % impl)
w("version=%d.%d.%d\n" % tuple(sys.version_info[:3]))
w("hexversion=%d\n" % sys.hexversion)
w("sys_version=%s\n" % sys.version.replace("\n", " "))
w("abiflags=%s\n" % getattr(sys, "abiflags", ""))
# The files that really are the interpreter: its executable and the libpython it mapped
# (a launcher script's key cannot see them change).
import os
try:
    w("file=%s\n" % os.readlink("/proc/self/exe"))
    with open("/proc/self/maps") as f:
        for path in sorted(set(l.split(None, 5)[-1].strip() for l in f if "/libpython" in l)):
            w("file=%s\n" % path)
except Exception:
    if sys.executable:
        w("file=%s\n" % os.path.realpath(sys.executable))
# The settings the interpreter runs with that change what it compiles or which pycs it
# imports, as a launcher may give them (`-X no_debug_ranges`, `-O`, PYTHONNODEBUGRANGES):
# the probe starts as the workers do, so it sees what they will.
if sys.version_info >= (3, 11):
    # No column positions (co_positions gives None for them).
    pos = list(compile("x", "<probe>", "eval").co_positions())
    w("debug_ranges=%d\n" % (1 if any(p[3] is not None for p in pos) else 0))
if hasattr(sys, "get_int_max_str_digits"):
    limit = sys.get_int_max_str_digits()
    if limit != getattr(sys.int_info, "default_max_str_digits", 4300):
        w("int_max_str_digits=%d\n" % limit)
w("optimize=%d\n" % sys.flags.optimize)
if getattr(sys, "pycache_prefix", None):
    w("pycache_prefix=%s\n" % os.fsencode(sys.pycache_prefix).hex())
if impl == "cpython" and sys.version_info >= (3, 7):
    import importlib.util, marshal
    # py_compile imports traceback only to word its own errors, and from 3.13 that import
    # (with _colorize, dataclasses, inspect) takes longer than the rest of the probe: a
    # stand-in while py_compile is imported, which "x = 1" never makes fail. Should the
    # stand-in break the import, py_compile is imported again with the real module.
    if "traceback" not in sys.modules:
        sys.modules["traceback"] = type(sys)("traceback")
        try:
            import py_compile
        except Exception:
            sys.modules.pop("py_compile", None)
        finally:
            del sys.modules["traceback"]
    import py_compile
    w("magic=%s\n" % importlib.util.MAGIC_NUMBER.hex())
    w("cache_tag=%s\n" % sys.implementation.cache_tag)
    w("probe_hash=%s\n" % importlib.util.source_hash(b"hashpyc probe\n").hex())
    w("marshal_version=%d\n" % marshal.version)
    # A free-threaded build's ABI flags hold "t" (PEP 703), as sysconfig's Py_GIL_DISABLED
    # says; sysconfig itself (and the threading it imports from 3.13) took a fifth of the
    # probe's time.
    w("gil_disabled=%d\n" % (1 if "t" in getattr(sys, "abiflags", "") else 0))
    try:
        # The empty directory hashpyc made for the probe and removes after it (argv[1]);
        # without one, a directory of our own (tempfile and shutil take a while to import).
        own = len(sys.argv) < 2
        if own:
            import tempfile
            d = tempfile.mkdtemp()
        else:
            d = sys.argv[1]
        try:
            src = os.path.join(d, "probe.py")
            with open(src, "wb") as f:
                f.write(b"x = 1\n")
            out = py_compile.compile(src, os.path.join(d, "probe.pyc"), doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
            with open(out, "rb") as f:
                w("flag_ref_top=%d\n" % (1 if f.read()[16] & 0x80 else 0))
        finally:
            if own:
                import shutil
                shutil.rmtree(d, ignore_errors=True)
    except Exception as e:
        w("calibration_error=%s\n" % str(e).replace("\n", " "))
w("end\n")
