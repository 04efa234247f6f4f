"""Safe loading of served model files (spec features-and-models.md §2.4, §3.10).

Pure Python, no Django: the import command, the upload view and the prediction
worker all call this module.

Accepted formats:

* ``xgboost_json`` / ``xgboost_ubj`` — XGBoost's own model formats.  The file is
  decoded and checked in Python first, because XGBoost's native reader trusts the
  lengths and node indices it reads and crashes the whole process (segfault) on a
  truncated or tampered file.  XGBoost then loads the checked document.
* ``skops`` — scikit-learn forests, loaded with an explicit list of trusted types
  (stricter than skops' defaults, which trust every scikit-learn estimator).
* ``pickle`` — joblib/pickle, which runs arbitrary code while loading; only with
  ``trust_pickle=True``.

Every failure is a :class:`ModelLoadError` with a message an operator can act on.
"""

from __future__ import annotations

import inspect
import io
import json
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Sequence

import numpy as np

from inference import native
from inference.ml_imports import forest_classes as _forest_classes
from inference.ml_imports import skops_io as _skops_io
from inference.ml_imports import tree_classes as _tree_classes
from inference.ml_imports import xgboost as _xgboost

FORMAT_XGBOOST_JSON = "xgboost_json"
FORMAT_XGBOOST_UBJ = "xgboost_ubj"
FORMAT_SKOPS = "skops"
FORMAT_PICKLE = "pickle"
MODEL_FORMATS = (FORMAT_XGBOOST_JSON, FORMAT_XGBOOST_UBJ, FORMAT_SKOPS, FORMAT_PICKLE)

MODEL_TYPE_XGBOOST = "xgboost"
MODEL_TYPE_RANDOM_FOREST = "random_forest"

PICKLE_NOT_TRUSTED_MESSAGE = (
    "pickle/joblib files are only accepted from the configured training service or with --trust-pickle"
)

# Everything a fitted RandomForestClassifier / ExtraTreesClassifier consists of
# (checked with skops.io.get_untrusted_types and the file's schema.json).  No other
# estimator and no functions: a skops file naming anything else is refused.
TRUSTED_SKOPS_TYPES = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._tree.Tree",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "numpy.ndarray",
    "numpy.int64",
    "numpy.float64",
    "numpy.random.mtrand.RandomState",  # a forest built with random_state=RandomState(...)
)
# How skops rebuilds each node; function, method, reduce and partial nodes never occur in a forest.
_SKOPS_NODE_LOADERS = frozenset(
    {
        "ObjectNode",
        "DictNode",
        "ListNode",
        "TupleNode",
        "JsonNode",
        "TypeNode",
        "NdArrayNode",
        "TreeNode",
        "RandomStateNode",
        "CachedNode",
    }
)


_PICKLE_EXTENSIONS = {".pkl", ".pickle", ".joblib"}
_EXTENSION_FORMATS = {
    ".json": FORMAT_XGBOOST_JSON,
    ".ubj": FORMAT_XGBOOST_UBJ,
    ".skops": FORMAT_SKOPS,
    **{extension: FORMAT_PICKLE for extension in _PICKLE_EXTENSIONS},
}


class ModelLoadError(Exception):
    """A model file cannot be served; the message says why."""


@dataclass
class LoadedModel:
    estimator: object  # an xgboost.Booster or a scikit-learn forest
    model_type: str  # MODEL_TYPE_XGBOOST | MODEL_TYPE_RANDOM_FOREST
    n_features: int
    feature_names: list[str] | None
    fmt: str  # format of the file it was loaded from
    legacy_tree_values_converted: bool = False  # a scikit-learn < 1.4 forest was repaired (see below)
    trees: tuple = field(default=(), repr=False)  # a forest's fitted sklearn Tree objects, in forest order
    # where the compiled walk finds those trees' nodes (None: scikit-learn walks them)
    forest_layout: native.ForestLayout | None = field(default=None, repr=False)
    # What XGBClassifier.predict uses: the trees up to the best iteration of early stopping, else all ((0, 0)).
    iteration_range: tuple[int, int] = (0, 0)

    def predict_proba_positive(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class-1 probabilities (float64) and 0/1 predictions (int64) for every row of X (§3.10)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected a 2-D array with {self.n_features} columns, got shape {X.shape}")
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        if self.model_type == MODEL_TYPE_XGBOOST:
            # XGBClassifier.predict_proba(X)[:, 1] is this very call's result (its class-0 column is 1 - p); the
            # Booster serves it without XGBoost's scikit-learn layer. The sigmoid is computed in float32; the
            # original server widened that value.
            probabilities = self.estimator.inplace_predict(
                X, iteration_range=self.iteration_range, predict_type="value", missing=np.nan, validate_features=True,
            ).astype(np.float32).astype(np.float64)
        else:
            probabilities = forest_probabilities(self.trees, X, layout=self.forest_layout)
        # Ties go to class 0 for both model types, so 1 iff p > 0.5 (strict).
        return probabilities, (probabilities > 0.5).astype(np.int64)

    def feature_importances(self) -> np.ndarray | None:
        """The estimator's feature_importances_ (XGBClassifier's: each feature's total gain, normalised to sum 1)."""
        if self.model_type != MODEL_TYPE_XGBOOST:
            return getattr(self.estimator, "feature_importances_", None)
        score = self.estimator.get_score(importance_type="gain")
        names = self.estimator.feature_names or [f"f{i}" for i in range(self.estimator.num_features())]
        values = np.array([score.get(name, 0.0) for name in names], dtype=np.float32)
        total = values.sum()
        return values if total == 0 else values / total


def forest_probabilities(trees: Sequence, X: np.ndarray, *, layout: native.ForestLayout | None = None) -> np.ndarray:
    """A forest's class-1 probabilities: the arithmetic of scikit-learn's forest predict_proba, on the fitted trees.

    Each tree compares float32(x) with its thresholds and gives its leaf's class-1 fraction (`Tree.predict`, what
    DecisionTreeClassifier.predict_proba returns without its per-call checks, which cost ~50 µs per tree, i.e.
    10 ms per 200-tree model and batch whatever its size); the fractions are added in tree order and divided once.
    Always in tree order: with n_jobs > 1 scikit-learn adds the trees in whatever order its threads finish.
    `trees` must have been checked by the loader (features, classes, node arrays). Given the trees' `layout`
    (inference.native.forest_layout), the compiled walk (csrc/forest.c) does the same in one call for all trees.
    """
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    total = np.zeros(len(X32), dtype=np.float64)
    if layout is not None and native.forest_leaf_sums is not None:
        native.forest_leaf_sums(
            X32.ctypes.data, X32.shape[0], X32.shape[1], layout.node_addresses.ctypes.data,
            layout.value_addresses.ctypes.data, len(layout.node_addresses), layout.node_size, *layout.offsets,
            layout.value_stride, layout.value_at, total.ctypes.data,
        )
    else:
        for tree in trees:
            total += tree.predict(X32)[:, 1]
    return total / len(trees)


def detect_format(data: bytes, filename: str | None = None) -> str:
    """The model format of `data`, from its first bytes; the file extension only breaks ties."""
    if data.startswith(b"PK\x03\x04"):
        return FORMAT_SKOPS  # a zip archive with schema.json
    if data.startswith(b"\x80"):
        return FORMAT_PICKLE  # pickle protocol 2+ (what joblib.dump writes)
    text = data.lstrip(b" \t\r\n")
    if text.startswith(b"{"):
        # Both XGBoost formats open an object with "{".  A JSON key then starts with a quote,
        # a UBJSON key with the type marker of its length.
        after_brace = text[1:].lstrip(b" \t\r\n")[:1]
        if after_brace in (b'"', b"}"):
            return FORMAT_XGBOOST_JSON
        if after_brace and after_brace in b"iUIlL":
            return FORMAT_XGBOOST_UBJ
    extension = PurePath(filename).suffix.lower() if filename else ""
    if extension in _EXTENSION_FORMATS:
        return _EXTENSION_FORMATS[extension]  # e.g. a compressed joblib file
    raise ModelLoadError(
        f"unrecognised model file{f' {filename!r}' if filename else ''}: expected XGBoost JSON/UBJ, "
        "a skops archive or a pickle/joblib file"
    )


def load_model(data: bytes, *, fmt: str, trust_pickle: bool = False) -> LoadedModel:
    """Load and check a model file; refuses anything §3.10 cannot serve exactly."""
    if fmt not in MODEL_FORMATS:
        raise ModelLoadError(f"unknown model format {fmt!r}; expected one of {', '.join(MODEL_FORMATS)}")
    if fmt == FORMAT_PICKLE and not trust_pickle:
        raise ModelLoadError(PICKLE_NOT_TRUSTED_MESSAGE)
    data = bytes(data)
    if not data:
        raise ModelLoadError("the model file is empty")  # XGBoost aborts the process on an empty buffer
    with _reading(fmt):
        if fmt == FORMAT_XGBOOST_JSON:
            return _load_xgboost_document(json.loads(data), fmt)
        if fmt == FORMAT_XGBOOST_UBJ:
            return _load_xgboost_document(_UBJSONDecoder(data).decode(), fmt)
        if fmt == FORMAT_SKOPS:
            return _load_forest(_load_skops(data), fmt)
        import joblib  # here, not at the top: 14 MB that only a trusted pickle needs

        return _load_unpickled(joblib.load(io.BytesIO(data)))


def validate_against_metadata(loaded: LoadedModel, *, features: list[str], model_type: str | None = None) -> None:
    """Refuse a model that does not fit its record (§2.1 `features`, §3.4 feature selection)."""
    if model_type is not None and model_type != loaded.model_type:
        raise ModelLoadError(
            f"the record says model_type {model_type!r} but the file holds a {loaded.model_type} model"
        )
    # §3.4 path B serves the first n_features listed names; a list shorter than the model
    # would make the server invent columns, which never happens for training-service models.
    if loaded.n_features > len(features):
        raise ModelLoadError(
            f"the model expects {loaded.n_features} features but its record lists only {len(features)}"
        )
    if loaded.feature_names is not None and loaded.feature_names != list(features):
        position = next(
            (i for i, (a, b) in enumerate(zip(loaded.feature_names, features)) if a != b),
            min(len(loaded.feature_names), len(features)),
        )
        raise ModelLoadError(
            f"the model's {len(loaded.feature_names)} feature names differ from the record's {len(features)} "
            f"features (first difference at position {position})"
        )


def export_portable(loaded: LoadedModel) -> tuple[bytes, str]:
    """The model in a format that loads without trust (e.g. to store a once-trusted pickle safely)."""
    if loaded.model_type == MODEL_TYPE_XGBOOST:
        return bytes(loaded.estimator.save_raw("json")), FORMAT_XGBOOST_JSON
    return _skops_io().dumps(loaded.estimator), FORMAT_SKOPS


@contextmanager
def _reading(fmt: str):
    """Turn whatever a parser raises on corrupt input into a ModelLoadError."""
    try:
        yield
    except ModelLoadError:
        raise
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [""])[0][:300]  # XGBoost appends stack traces
        raise ModelLoadError(f"cannot read the {fmt} model file ({type(exc).__name__}: {detail})") from exc


def _load_unpickled(obj: object) -> LoadedModel:
    xgboost = _xgboost()
    if isinstance(obj, xgboost.XGBClassifier):
        obj = obj.get_booster()
    if isinstance(obj, xgboost.Booster):
        # Re-load through the checked path, so an unpickled booster is served like a JSON file.
        return _load_xgboost_document(json.loads(bytes(obj.save_raw("json"))), FORMAT_PICKLE)
    if type(obj) in _forest_classes():
        return _load_forest(obj, FORMAT_PICKLE)
    raise ModelLoadError(
        f"{type(obj).__module__}.{type(obj).__qualname__} cannot be served: expected an xgboost.XGBClassifier "
        "or a scikit-learn RandomForestClassifier/ExtraTreesClassifier"
    )


# --- XGBoost ---------------------------------------------------------------------------

# Per-node arrays of a saved tree; all must have num_nodes entries.
_XGBOOST_NODE_ARRAYS = (
    "left_children",
    "right_children",
    "parents",
    "split_indices",
    "split_conditions",
    "default_left",
    "base_weights",
    "loss_changes",
    "sum_hessian",
)
_XGBOOST_CATEGORY_ARRAYS = ("categories", "categories_nodes", "categories_segments", "categories_sizes")
_XGBOOST_DELETED_SPLIT_INDEX = 2**31 - 1  # split index of a pruned (unreferenced) node


def _load_xgboost_document(document: dict, fmt: str) -> LoadedModel:
    n_features = _check_xgboost_document(document)
    names = document["learner"].get("feature_names") or []
    booster = _xgboost().Booster()
    # XGBoost parses exactly the document checked above (re-encoded as JSON, which is lossless
    # for its float32 values), never the original bytes.  A str would be taken as a path.
    booster.load_model(bytearray(json.dumps(document).encode()))
    del document  # the decoded document takes several times the file's size; the booster holds the model
    try:
        iteration_range = (0, booster.best_iteration + 1)  # as XGBClassifier.predict chooses it
    except AttributeError:
        iteration_range = (0, 0)
    return LoadedModel(booster, MODEL_TYPE_XGBOOST, n_features, [str(name) for name in names] or None, fmt,
                       iteration_range=iteration_range)


def _check_xgboost_document(document: dict) -> int:
    """Refuse what is not a binary tree classifier or could crash XGBoost; returns the feature count."""
    learner = document["learner"]
    objective = learner["objective"]["name"]
    if objective != "binary:logistic":
        raise ModelLoadError(f"XGBoost objective {objective!r} cannot be served; only binary:logistic classifiers")
    params = learner["learner_model_param"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
        raise ModelLoadError("the XGBoost model is not a binary single-target classifier")
    n_features = int(params["num_feature"])
    if n_features < 1:
        raise ModelLoadError("the XGBoost model has no features")
    for key in ("feature_names", "feature_types"):
        if len(learner.get(key) or []) not in (0, n_features):
            raise ModelLoadError(f"XGBoost {key} has {len(learner[key])} entries for {n_features} features")

    booster = learner["gradient_booster"]
    if booster["name"] == "gbtree":
        model = booster["model"]
    elif booster["name"] == "dart":
        model = booster["gbtree"]["model"]
    else:
        raise ModelLoadError(f"XGBoost booster {booster['name']!r} is not supported (only gbtree and dart)")
    trees = model["trees"]
    n_trees = len(trees)
    if int(model["gbtree_model_param"]["num_trees"]) != n_trees or list(model["tree_info"]) != [0] * n_trees:
        raise ModelLoadError("the XGBoost tree list is inconsistent (num_trees / tree_info)")
    if booster["name"] == "dart" and len(booster["weight_drop"]) != n_trees:
        raise ModelLoadError("the XGBoost dart weights do not match the trees")
    indptr = model.get("iteration_indptr")
    if indptr is not None and (indptr[0] != 0 or indptr[-1] != n_trees or np.any(np.diff(indptr) < 0)):
        raise ModelLoadError("the XGBoost iteration index is inconsistent with its trees")
    for number, tree in enumerate(trees):
        _check_xgboost_tree(tree, n_features, f"XGBoost tree {number}")
    return n_features


def _check_xgboost_tree(tree: dict, n_features: int, label: str) -> None:
    n_nodes = int(tree["tree_param"]["num_nodes"])
    for key in _XGBOOST_NODE_ARRAYS + (("split_type",) if "split_type" in tree else ()):
        if len(tree[key]) != n_nodes:
            raise ModelLoadError(f"{label}: {key} has {len(tree[key])} entries for {n_nodes} nodes")
    if any(tree.get("split_type") or []) or any(tree.get(key) for key in _XGBOOST_CATEGORY_ARRAYS):
        raise ModelLoadError(f"{label}: categorical splits are not supported")
    left, right, parents, split_features = (
        _int_array(tree[key], label) for key in ("left_children", "right_children", "parents", "split_indices")
    )
    _check_tree_topology(left, right, split_features, n_features, label)
    # XGBoost reads the parent links while loading, so they must agree with the child links
    # (pruned nodes keep a stale, but in-range, parent).
    inner = np.flatnonzero(left != -1)
    if np.any(parents[left[inner]] != inner) or np.any(parents[right[inner]] != inner):
        raise ModelLoadError(f"{label}: parent links do not match the child links")
    if n_nodes > 1 and (parents[1:].min() < 0 or parents[1:].max() >= n_nodes):
        raise ModelLoadError(f"{label}: parent index out of range")
    leaf_features = split_features[left == -1]
    if np.any(((leaf_features < 0) | (leaf_features >= n_features)) & (leaf_features != _XGBOOST_DELETED_SPLIT_INDEX)):
        raise ModelLoadError(f"{label}: leaf split index out of range")


def _int_array(values: list, label: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ModelLoadError(f"{label}: expected a list of integers")
    return array.astype(np.int64)


class _UBJSONDecoder:
    """Decodes UBJSON (the subset XGBoost writes), checking every length against the buffer."""

    _NUMBER_TYPES = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}
    _INTEGER_MARKERS = b"iUIlL"
    _MAX_DEPTH = 64  # XGBoost models nest about 8 deep

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def decode(self) -> object:
        value = self._value(self._marker(), depth=0)
        if self.pos != len(self.data):
            raise ModelLoadError(f"the UBJ model file has {len(self.data) - self.pos} stray bytes at its end")
        return value

    def _take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ModelLoadError(f"the UBJ model file is truncated or corrupt (near byte {self.pos})")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def _marker(self) -> bytes:
        return self._take(1)

    def _number(self, marker: bytes) -> int | float:
        dtype = np.dtype(self._NUMBER_TYPES[marker])
        return np.frombuffer(self._take(dtype.itemsize), dtype)[0].item()

    def _count(self) -> int:
        marker = self._marker()
        if marker not in self._INTEGER_MARKERS:
            raise ModelLoadError(f"the UBJ model file is corrupt (expected a length near byte {self.pos})")
        count = self._number(marker)
        if count < 0:
            raise ModelLoadError(f"the UBJ model file is corrupt (negative length near byte {self.pos})")
        return count

    def _value(self, marker: bytes, depth: int) -> object:
        if depth > self._MAX_DEPTH:
            raise ModelLoadError("the UBJ model file nests too deeply")
        if marker in self._NUMBER_TYPES:
            return self._number(marker)
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker == b"S":
            return self._take(self._count()).decode("utf-8")
        if marker == b"{":
            members = {}
            while self.data[self.pos : self.pos + 1] != b"}":
                key = self._take(self._count()).decode("utf-8")  # keys carry no "S" marker
                members[key] = self._value(self._marker(), depth + 1)
            self.pos += 1
            return members
        if marker == b"[":
            return self._array(depth)
        raise ModelLoadError(f"the UBJ model file is corrupt (unexpected {marker!r} at byte {self.pos - 1})")

    def _array(self, depth: int) -> list:
        marker = self._marker()
        if marker == b"$":  # typed array: element type, then "#" and the count
            element = self._marker()
            if element not in self._NUMBER_TYPES or self._marker() != b"#":
                raise ModelLoadError(f"the UBJ model file is corrupt (bad typed array near byte {self.pos})")
            dtype = np.dtype(self._NUMBER_TYPES[element])
            return np.frombuffer(self._take(self._count() * dtype.itemsize), dtype).tolist()
        if marker == b"#":  # counted array of tagged values
            return [self._value(self._marker(), depth + 1) for _ in range(self._count())]
        items = []
        while marker != b"]":
            items.append(self._value(marker, depth + 1))
            marker = self._marker()
        return items


# --- scikit-learn forests ------------------------------------------------------------------


def _load_skops(data: bytes) -> object:
    untrusted = _untrusted_skops_types(data)
    if untrusted:
        raise ModelLoadError(
            f"the skops file contains untrusted types: {', '.join(sorted(untrusted))} "
            "(only RandomForestClassifier/ExtraTreesClassifier models are accepted)"
        )
    return _skops_io().loads(data, trusted=list(TRUSTED_SKOPS_TYPES))


def _untrusted_skops_types(data: bytes) -> set[str]:
    """Every type in the file that is not in TRUSTED_SKOPS_TYPES.

    skops.io.get_untrusted_types is not enough: it leaves out the types skops trusts by
    default, which include every scikit-learn estimator.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    untrusted = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            if "__loader__" in node or "__module__" in node:
                loader = node.get("__loader__")
                type_name = f"{node.get('__module__')}.{node.get('__class__')}"
                if loader not in _SKOPS_NODE_LOADERS:
                    untrusted.add(f"{type_name} (via {loader})")
                elif loader != "CachedNode" and type_name not in TRUSTED_SKOPS_TYPES:
                    untrusted.add(type_name)  # a CachedNode repeats an object already listed
            pending.extend(node.values())
    return untrusted


def _load_forest(forest: object, fmt: str) -> LoadedModel:
    if type(forest) not in _forest_classes():
        raise ModelLoadError(
            f"{type(forest).__module__}.{type(forest).__qualname__} cannot be served: expected a "
            "RandomForestClassifier or ExtraTreesClassifier"
        )
    if forest.n_outputs_ != 1 or not np.array_equal(forest.classes_, [0, 1]):
        raise ModelLoadError(f"the forest must be a binary classifier with classes [0, 1], not {forest.classes_!r}")
    n_features = int(forest.n_features_in_)
    if not forest.estimators_:
        raise ModelLoadError("the forest has no trees")
    for number, estimator in enumerate(forest.estimators_):
        label = f"forest tree {number}"
        if type(estimator) not in _tree_classes():
            raise ModelLoadError(f"{label} is a {type(estimator).__qualname__}, not a decision tree")
        tree = estimator.tree_
        if tree.n_features != n_features or tree.n_outputs != 1 or list(tree.n_classes) != [2]:
            raise ModelLoadError(f"{label} does not match the forest (features, outputs or classes)")
        _check_tree_topology(tree.children_left, tree.children_right, tree.feature, n_features, label)
        if tree.value.shape != (tree.node_count, 1, 2) or not np.all(np.isfinite(tree.value) & (tree.value >= 0)):
            raise ModelLoadError(f"{label} has invalid node values")
    for estimator in (forest, *forest.estimators_):
        _fill_missing_parameters(estimator)
    converted = _convert_legacy_tree_values(forest)
    names = getattr(forest, "feature_names_in_", None)
    trees = tuple(estimator.tree_ for estimator in forest.estimators_)
    return LoadedModel(
        forest,
        MODEL_TYPE_RANDOM_FOREST,
        n_features,
        None if names is None else [str(name) for name in names],
        fmt,
        legacy_tree_values_converted=converted,
        trees=trees,
        forest_layout=native.forest_layout(trees),
    )


def _fill_missing_parameters(estimator) -> None:
    """Give an estimator from an older scikit-learn the parameters added since, at their
    defaults (e.g. monotonic_cst, new in 1.4), so repr() and get_params() work on it."""
    for name, parameter in inspect.signature(type(estimator)).parameters.items():
        if not hasattr(estimator, name) and parameter.default is not inspect.Parameter.empty:
            setattr(estimator, name, parameter.default)


def _convert_legacy_tree_values(forest) -> bool:
    """Repair forests pickled by scikit-learn < 1.4; returns whether any tree was converted.

    Up to 1.3 `tree_.value` held weighted class counts and predict_proba divided by their
    sum; since 1.4 it holds per-node fractions and predict_proba returns them as they are.
    Unpickling does not convert, so an old forest silently predicts garbage (spec §2.4).
    Fractions sum to 1 at every node, counts do not (the root holds all training samples),
    so counts are detected per tree and divided by their per-node sum — c1 / (c0 + c1), the
    old predict_proba arithmetic.
    """
    converted = False
    for estimator in forest.estimators_:
        tree = estimator.tree_
        totals = tree.value.sum(axis=-1, keepdims=True)
        if np.allclose(totals, 1.0, rtol=0.0, atol=1e-9):
            continue
        if np.any(totals <= 0):
            raise ModelLoadError("a legacy forest has a node without samples; its probabilities cannot be recovered")
        # Rebuilt through the pickle state rather than written through the tree_.value view,
        # which is an implementation detail (it happens to be writable in 1.9.1).
        state = tree.__getstate__()
        state["values"] = np.ascontiguousarray(tree.value / totals)
        tree.__setstate__(state)
        if not np.allclose(tree.value.sum(axis=-1), 1.0, rtol=0.0, atol=1e-9):
            raise ModelLoadError("could not convert a legacy (scikit-learn < 1.4) forest; refusing to serve it")
        converted = True
    return converted


def _check_tree_topology(
    left: np.ndarray, right: np.ndarray, split_features: np.ndarray, n_features: int, label: str
) -> None:
    """Node 0 is the root; leaves have left == right == -1; every inner node has two in-range
    children, no node is anyone's child twice (so walking down from the root ends at a leaf),
    and splits use existing features.  Native tree code indexes with these unchecked."""
    left, right, split_features = (np.asarray(a, dtype=np.int64) for a in (left, right, split_features))
    n_nodes = len(left)
    if n_nodes == 0 or len(right) != n_nodes or len(split_features) != n_nodes:
        raise ModelLoadError(f"{label}: node arrays are empty or of different lengths")
    leaves = left == -1
    if not np.array_equal(leaves, right == -1):
        raise ModelLoadError(f"{label}: a node has only one child")
    children = np.concatenate([left[~leaves], right[~leaves]])
    if children.size and (children.min() < 1 or children.max() >= n_nodes):
        raise ModelLoadError(f"{label}: child index out of range")
    if np.unique(children).size != children.size:
        raise ModelLoadError(f"{label}: a node is the child of more than one split")
    inner_features = split_features[~leaves]
    if inner_features.size and (inner_features.min() < 0 or inner_features.max() >= n_features):
        raise ModelLoadError(f"{label}: split on a feature outside 0..{n_features - 1}")
