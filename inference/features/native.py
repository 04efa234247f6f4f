"""The compiled window sums (window_sums.c): `make` builds `_window_sums.so` beside the source with the system's C
compiler (`native.main()`). Where it is not built (no compiler; or older than its source), `window_sums` is None and
the feature engine runs the same loop in numpy, with the same results, several times slower."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("window_sums.c")
LIBRARY = Path(__file__).with_name("_window_sums.so")
# IEEE double arithmetic as numpy does it: no fused multiply-adds (the default on aarch64) and no -ffast-math.
COMPILER_FLAGS = ("-O2", "-ffp-contract=off", "-fPIC", "-shared")

logger = logging.getLogger(__name__)


def build(target: Path = LIBRARY) -> None:
    """Compile the library with $CC (default cc); the new file replaces the old one atomically, so a running process
    keeps the one it loaded."""
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        subprocess.run([os.environ.get("CC", "cc"), *COMPILER_FLAGS, "-o", str(partial), str(SOURCE)], check=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def load(path: Path):
    """The library's `window_sums` function with its argument types."""
    function = ctypes.CDLL(str(path)).window_sums
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    function.argtypes = [pointer, size, size, size, pointer, pointer, size, pointer, pointer, size, pointer, size,
                         pointer, pointer, pointer]
    function.restype = None
    return function


def _load_built():
    try:
        if LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
            logger.warning("%s is older than its source: rolling sums run in numpy until `make` rebuilds it", LIBRARY)
            return None
        return load(LIBRARY)
    except OSError:
        logger.info("%s is not built: rolling sums run in numpy", LIBRARY)
        return None


window_sums = _load_built()


def main() -> None:
    """`make`'s entry: build, or say in one line why not and exit non-zero."""
    try:
        build()
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"the compiled rolling sums were not built ({error}); the feature engine uses numpy instead")
