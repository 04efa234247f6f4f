"""The machine-learning libraries the model loader needs, imported on first use.

scikit-learn (with the scipy and pandas it imports: ~120 MB of a process's memory), skops and XGBoost are imported
when the first model of their kind loads: a process that never loads a model never pays for them, and a serve-only
process (the listener, `serve_only`) imports them without what serving does not use.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

_SERVE_ONLY = False


def serve_only() -> None:
    """For a process that only serves models (the listener): import XGBoost, when its first model loads, without
    its scikit-learn layer, and scikit-learn and skops without pandas and pytest. XGBoost imports scikit-learn and
    pandas whenever they are installed, scikit-learn imports pandas, and skops' list of trusted types imports
    scikit-learn's testing helpers and with them pytest; a Booster or a fitted tree predicting on numpy arrays uses
    none of them (~95 MB less resident memory while only XGBoost models are served, ~65 MB less with forests).
    Training, drift and the web keep the whole libraries: call this before anything imports them, and only in a
    process that never trains."""
    global _SERVE_ONLY
    _SERVE_ONLY = True


@contextmanager
def _importing_without(*optional: str):
    """In a serve-only process: while importing, the `optional` modules (not yet imported) look uninstalled."""
    hidden = [name for name in optional if _SERVE_ONLY and name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))  # None: `import name` raises ImportError
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def xgboost():
    with _importing_without("sklearn", "pandas"):
        import xgboost  # on first use, see the module docstring
    return xgboost


def skops_io():
    with _importing_without("pandas", "pytest"):
        import skops.io  # on first use, see the module docstring
    return skops.io


def forest_classes() -> tuple:
    with _importing_without("pandas", "pytest"):
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier  # on first use, see above
    return RandomForestClassifier, ExtraTreesClassifier


def tree_classes() -> tuple:
    with _importing_without("pandas", "pytest"):
        from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier  # on first use, see above
    return DecisionTreeClassifier, ExtraTreeClassifier
