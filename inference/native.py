"""The inference core's compiled loops (csrc/*.c): pandas' compensated rolling sums (window_sums.c, for the feature
engine) and the walk of a forest's trees (forest.c, for scoring). `make` builds them into `_native.so` beside this
module with the system's C compiler (`native.main()`). Where it is not built (no compiler; or older than a source),
`window_sums` and `forest_leaf_sums` are None and their callers run the same arithmetic in numpy and scikit-learn,
with the same results, slower."""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np

SOURCES = tuple(sorted((Path(__file__).parent / "csrc").glob("*.c")))
LIBRARY = Path(__file__).with_name("_native.so")
# IEEE double arithmetic as numpy does it: no fused multiply-adds (the default on aarch64) and no -ffast-math.
COMPILER_FLAGS = ("-O2", "-ffp-contract=off", "-fPIC", "-shared")

logger = logging.getLogger(__name__)


def build(target: Path = LIBRARY) -> None:
    """Compile the library with $CC (default cc); the new file replaces the old one atomically, so a running process
    keeps the one it loaded."""
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        subprocess.run([os.environ.get("CC", "cc"), *COMPILER_FLAGS, "-o", str(partial), *map(str, SOURCES)],
                       check=True)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def load(path: Path) -> SimpleNamespace:
    """The library's functions, with their argument types."""
    library = ctypes.CDLL(str(path))
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    window_sums = library.window_sums
    window_sums.argtypes = [pointer, size, size, size, pointer, pointer, size, pointer, pointer, size, pointer, size,
                            pointer, pointer, pointer]
    forest_leaf_sums = library.forest_leaf_sums
    forest_leaf_sums.argtypes = [pointer, size, size, pointer, pointer, size, *[size] * 8, pointer]
    for function in (window_sums, forest_leaf_sums):
        function.restype = None
    return SimpleNamespace(window_sums=window_sums, forest_leaf_sums=forest_leaf_sums)


def _load_built() -> SimpleNamespace | None:
    try:
        if LIBRARY.stat().st_mtime < max(source.stat().st_mtime for source in SOURCES):
            logger.warning("%s is older than its sources: the compiled loops run in numpy until `make` rebuilds it",
                           LIBRARY)
            return None
        return load(LIBRARY)
    except OSError:
        logger.info("%s is not built: the compiled loops run in numpy", LIBRARY)
        return None


_built = _load_built()
window_sums = _built and _built.window_sums
forest_leaf_sums = _built and _built.forest_leaf_sums


@dataclass(frozen=True)
class ForestLayout:
    """Where forest.c finds a forest's fitted nodes: each tree's node and value addresses, and one node record's
    layout. It holds the arrays it points into, so they live as long as it does."""

    node_addresses: np.ndarray
    value_addresses: np.ndarray
    node_size: int
    offsets: tuple[int, int, int, int, int]  # left child, right child, feature, threshold, missing goes left
    value_stride: int
    value_at: int
    arrays: tuple

    # Addresses are this process's: a copy shares them (the arrays they point into live on in it), pickling refuses.
    def __copy__(self) -> ForestLayout:
        return self

    def __deepcopy__(self, memo) -> ForestLayout:
        return self

    def __reduce__(self):
        raise TypeError("a ForestLayout holds this process's addresses: call forest_layout() on the unpickled trees")


def forest_layout(trees: Sequence) -> ForestLayout | None:
    """The layout of fitted scikit-learn trees (`Tree` objects, checked by the loader), read off their node arrays,
    which are views of one record per node; None if they are laid out in any other way than forest.c expects."""
    node_addresses, value_addresses, arrays, layouts = [], [], [], set()
    for tree in trees:
        fields = (tree.children_left, tree.children_right, tree.feature, tree.threshold, tree.missing_go_to_left)
        kinds = tuple(array.dtype.str for array in fields)
        strides = {array.strides[0] for array in fields}
        value = tree.value
        if (kinds != (np.dtype(np.int64).str,) * 3 + (np.dtype(np.float64).str, np.dtype(np.uint8).str)
                or len(strides) != 1 or value.dtype != np.float64 or not value.flags.c_contiguous
                or value.shape[1:] != (1, 2)):
            return None
        start = fields[0].ctypes.data
        offsets = tuple(array.ctypes.data - start for array in fields)
        node_size = strides.pop()
        if any(not 0 <= offset < node_size for offset in offsets):
            return None
        layouts.add((node_size, offsets))
        node_addresses.append(start)
        value_addresses.append(value.ctypes.data)
        arrays.append((fields, value))
    if len(layouts) != 1:
        return None
    (node_size, offsets), = layouts
    return ForestLayout(np.array(node_addresses, dtype=np.int64), np.array(value_addresses, dtype=np.int64),
                        node_size, offsets, value_stride=2, value_at=1, arrays=tuple(arrays))


def main() -> None:
    """`make`'s entry: build, or say in one line why not and exit non-zero."""
    try:
        build()
    except (OSError, subprocess.CalledProcessError) as error:
        sys.exit(f"the compiled loops were not built ({error}); numpy and scikit-learn compute the same instead")
