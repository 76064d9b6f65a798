"""Build a generated model with the system C compiler, cached by the hash of what went into it.

The shared object lands in the cache folder ($APCHECK_NATIVE_CACHE, else
$XDG_CACHE_HOME/apcheck/native, else ~/.cache/apcheck/native) under the
SHA-256 of the generated source, the core's sources, the compiler's version
and the flags; it is written to a temporary name and renamed, so concurrent
runs never see half a file.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS = ["-O2", "-shared", "-fPIC", "-pthread", "-w", "-fno-strict-aliasing"]
COMPILE_TIMEOUT = 600.0


class NativeUnavailable(Exception):
    """The native core cannot run here (no compiler, a failed build) or not this model."""


def cache_dir() -> str:
    where = os.environ.get("APCHECK_NATIVE_CACHE")
    if not where:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "apcheck", "native")
    return where


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise NativeUnavailable("no C compiler found (install gcc, or set CC)")
    return cc


@lru_cache(maxsize=None)
def _compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise NativeUnavailable(f"the C compiler {cc} does not run: {err}")


def _core_text() -> str:
    out = []
    for name in ("core.h", "core.c", "partition.c"):
        with open(os.path.join(HERE, name)) as f:
            out.append(f.read())
    return "\n".join(out)


def build(source: str) -> tuple[ctypes.CDLL, float]:
    """The loaded shared object of this generated source (built once, then from the cache), and the
    seconds the build took (0.0 from the cache)."""
    built = 0.0
    cc = compiler()
    key = hashlib.sha256("\0".join([source, _core_text(), _compiler_version(cc), " ".join(FLAGS)]).encode())
    folder = cache_dir()
    path = os.path.join(folder, f"model-{key.hexdigest()[:32]}.so")
    if not os.path.exists(path):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise NativeUnavailable(f"cannot create the build cache {folder}: {err}")
        with tempfile.TemporaryDirectory(prefix="apcheck-native-") as work:
            src = os.path.join(work, "model.c")
            with open(src, "w") as f:
                f.write(source)
            out = os.path.join(work, "model.so")
            started = time.monotonic()
            try:
                done = subprocess.run([cc, *FLAGS, "-I", HERE, "-o", out, src], capture_output=True, text=True,
                                      timeout=COMPILE_TIMEOUT)
            except (OSError, subprocess.SubprocessError) as err:
                raise NativeUnavailable(f"the C compiler failed to run: {err}")
            if done.returncode != 0:
                first = "\n".join(done.stderr.strip().splitlines()[:12])
                raise NativeUnavailable(f"building the native core failed ({cc}):\n{first}")
            built = time.monotonic() - started
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".model-", suffix=".so")
            os.close(fd)
            shutil.copyfile(out, tmp)
            os.replace(tmp, path)
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        raise NativeUnavailable(f"cannot load the native core {path}: {err}")
    _declare(lib)
    return lib, built


def _declare(lib: ctypes.CDLL) -> None:
    P, I64, U64, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_int
    I64P, U64P = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_uint64)
    sig = {
        "ap_new": (P, [U64, I64, I, I, I, I, I, I, U64]),
        "ap_cycle_state": (I64, [P]),
        "ap_error": (I, [P]),
        "ap_run": (I, [P, U64]),
        "ap_stats": (None, [P, U64P]),
        "ap_state": (None, [P, U64, I64P]),
        "ap_parent": (I64, [P, U64]),
        "ap_depth": (I64, [P, U64]),
        "ap_inv_first": (I64, [P, I]),
        "ap_cov_first": (I64, [P, I]),
        "ap_defect": (None, [P, I, I64P]),
        "ap_completion": (None, [P, I, I64P]),
        "ap_edges": (I64, [P, I64P]),
        "ap_canon": (I64, [P, I64P, I64P]),
        "ap_find_stuck": (I, [P, I64P]),
        "ap_can_move": (U64, [P, U64]),
        "ap_coverage": (None, [P, U64P]),
        "ap_free": (None, [P]),
        # a partition of the distributed search (partition.c)
        "ap_part_new": (P, [I, I, I, I, I, I, U64]),
        "ap_part_initial": (I, [P]),
        "ap_part_expand": (I, [P, U64, U64]),
        "ap_part_outbox": (U64, [P, I, ctypes.POINTER(U64P)]),
        "ap_part_clear": (None, [P]),
        "ap_part_insert": (I64, [P, ctypes.c_char_p, U64, I, I64]),
        "ap_part_found": (None, [P, U64P]),
        "ap_part_parent": (I64, [P, U64, ctypes.POINTER(I)]),
        "ap_part_owner": (I, [P, I64P, I64P, I]),
        "ap_part_stuck_init": (I, [P, I]),
        "ap_part_stuck_round": (I64, [P]),
        "ap_part_stuck_apply": (None, [P, ctypes.c_char_p, U64]),
        "ap_part_stuck_first": (None, [P, I64P]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
