"""Non-neural baselines: a boosted decision tree and a 2D likelihood-ratio tagger.

They cannot be TorchScript; they have ``fit(X, y)``, ``predict_proba(X) -> (n, n_classes)`` and a
safe ``save(path)`` / ``load(path)`` that never unpickles.

BDT storage choice
------------------
scikit-learn models are normally stored with pickle/joblib, and loading a pickle runs arbitrary
code. :class:`BDTTagger` instead writes the fitted trees of the
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` (per node: feature, threshold,
missing-value direction, children, leaf value) to an ``.npz`` file read with
``allow_pickle=False``, and a loaded tagger evaluates the trees itself in numpy (the same rule as
scikit-learn's predictor: ``x <= threshold`` goes left, NaN follows ``missing_go_to_left``). A
test checks that the loaded tagger reproduces scikit-learn's probabilities. Categorical splits
are not supported by this format (saving such a model raises).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["BDTTagger", "LikelihoodRatioTagger"]

_BDT_FORMAT = "coffea-jetimg-bdt"
_LLH_FORMAT = "coffea-jetimg-llh"
#: the per-node arrays of the stored trees
_TREE_FIELDS = ("feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf", "value")
#: (columns, tree_offsets, baseline, n_per_iter)
_Trees = tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, int]


def _meta_bytes(meta: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _meta_from(arr: np.ndarray) -> dict[str, Any]:
    return json.loads(bytes(np.asarray(arr, dtype=np.uint8)).decode())


def _npz_path(path: str | Path) -> Path:
    """Where ``np.savez(path)`` wrote (it appends ``.npz`` when missing)."""
    return Path(path) if str(path).endswith(".npz") else Path(str(path) + ".npz")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class BDTTagger:
    """Histogram gradient-boosted trees on a feature matrix ``(n_jets, n_features)``.

    Parameters
    ----------
    feature_names : list of str, optional
        Stored with the model (e.g. ``['msoftdrop', 'mass', 'tau2', 'tau3', 'tau21', 'tau32']``).
    **params
        Passed to :class:`sklearn.ensemble.HistGradientBoostingClassifier` (defaults:
        ``max_iter=200, learning_rate=0.1, early_stopping=True, random_state=0``).
    """

    def __init__(self, feature_names: Sequence[str] | None = None, **params: Any) -> None:
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.params = {"max_iter": 200, "learning_rate": 0.1, "early_stopping": True, "random_state": 0, **params}
        self._clf: Any = None
        self._trees: _Trees | None = None  # (columns, tree_offsets, baseline, n_per_iter) after load or fit

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BDTTagger:
        from sklearn.ensemble import HistGradientBoostingClassifier

        self._clf = HistGradientBoostingClassifier(**self.params)
        self._clf.fit(np.asarray(X, dtype=np.float64), np.asarray(y), sample_weight=sample_weight)
        self.classes_ = np.asarray(self._clf.classes_)
        self._trees = self._export()
        return self

    def _export(self) -> _Trees:
        clf = self._clf
        cols: dict[str, list[np.ndarray]] = {k: [] for k in _TREE_FIELDS}
        offsets = [0]
        for per_iter in clf._predictors:
            for pred in per_iter:
                nodes = pred.nodes
                if np.any(nodes["is_categorical"]):
                    raise ValueError("BDTTagger cannot store categorical splits")
                for k in cols:
                    cols[k].append(np.asarray(nodes[k]))
                offsets.append(offsets[-1] + len(nodes))
        columns = {k: np.concatenate(v) for k, v in cols.items()}
        baseline = np.asarray(clf._baseline_prediction, dtype=np.float64).ravel()
        n_per_iter = len(clf._predictors[0]) if clf._predictors else 1
        return columns, np.asarray(offsets, dtype=np.int64), baseline, n_per_iter

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw scores ``(n, n_trees_per_iteration)`` from the stored trees (numpy, no sklearn)."""
        if self._trees is None:
            raise RuntimeError("BDTTagger is not fitted")
        cols, offsets, baseline, k = self._trees
        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        raw = np.tile(baseline, (n, 1)).astype(np.float64)
        rows = np.arange(n)
        for t in range(len(offsets) - 1):
            base = offsets[t]
            node = np.zeros(n, dtype=np.int64)
            while True:
                g = base + node
                leaf = cols["is_leaf"][g].astype(bool)
                if leaf.all():
                    break
                x = X[rows, cols["feature_idx"][g]]
                go_left = np.where(np.isnan(x), cols["missing_go_to_left"][g].astype(bool),
                                   x <= cols["num_threshold"][g])
                nxt = np.where(go_left, cols["left"][g], cols["right"][g])
                node = np.where(leaf, node, nxt)
            raw[:, t % k] += cols["value"][base + node]
        return raw

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``."""
        raw = self.decision_function(X)
        if raw.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.stack([1 - p1, p1], axis=1)
        return _softmax(raw)

    def save(self, path: str | Path) -> Path:
        """Write the trees to ``path`` (``.npz``, read back with ``allow_pickle=False``); returns the file."""
        path = Path(path)
        assert self._trees is not None, "BDTTagger is not fitted"
        cols, offsets, baseline, k = self._trees
        meta = {"format": _BDT_FORMAT, "version": 1, "feature_names": self.feature_names,
                "params": {a: b for a, b in self.params.items()
                           if isinstance(b, (int, float, str, bool, type(None)))},
                "classes": [c.item() if hasattr(c, "item") else c for c in self.classes_], "n_per_iter": int(k)}
        np.savez(path, offsets=offsets, baseline=baseline, meta=_meta_bytes(meta), **cols)  # type: ignore[arg-type]
        return _npz_path(path)

    @classmethod
    def load(cls, path: str | Path) -> BDTTagger:
        """Read what :meth:`save` wrote (no pickle)."""
        with np.load(path, allow_pickle=False) as f:
            meta = _meta_from(f["meta"])
            if meta.get("format") != _BDT_FORMAT:
                raise ValueError(f"{path}: not a {_BDT_FORMAT} file")
            cols = {k: f[k] for k in _TREE_FIELDS}
            obj = cls(meta["feature_names"], **meta["params"])
            obj._trees = (cols, f["offsets"], f["baseline"], int(meta["n_per_iter"]))
            obj.classes_ = np.asarray(meta["classes"])
        return obj


class LikelihoodRatioTagger:
    """The "LLH" tagger: likelihood ratio from 2D histograms of two observables per class.

    The ATLAS quark/gluon study uses (N_track, jet width). ``fit`` fills a normalised 2D histogram
    for each class; the score of class ``c`` is ``p_c(x) / Σ_k p_k(x)`` (equal priors), with a
    small pseudo-count so empty bins give finite ratios. Values outside the edges go to the edge
    bins.

    Parameters
    ----------
    bins : (edges_x, edges_y) or (n_x, n_y)
        Bin edges, or numbers of bins between the 0.5% and 99.5% quantiles of the training data.
    """

    def __init__(self, bins: Sequence[Any] = ((np.arange(-0.5, 80.5, 1.0)), np.linspace(0.0, 0.4, 41)),
                 pseudo_count: float = 0.5, feature_names: Sequence[str] = ("n_track", "width")) -> None:
        self.bins = bins
        self.pseudo_count = float(pseudo_count)
        self.feature_names = list(feature_names)
        self.edges: list[np.ndarray] | None = None
        self.pdfs: np.ndarray | None = None
        self.classes_: np.ndarray | None = None

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LikelihoodRatioTagger:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[1] != 2:
            raise ValueError(f"LikelihoodRatioTagger takes two observables, X of shape (n, 2); got {X.shape}")
        edges = []
        for i, b in enumerate(self.bins):
            if np.ndim(b) == 0:
                lo, hi = np.quantile(X[:, i], [0.005, 0.995])
                edges.append(np.linspace(lo, hi if hi > lo else lo + 1, int(b) + 1))
            else:
                edges.append(np.asarray(b, dtype=np.float64))
        self.edges = edges
        self.classes_ = np.unique(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        pdfs = []
        for c in self.classes_:
            sel = y == c
            h, _, _ = np.histogram2d(self._clip(X[sel, 0], 0), self._clip(X[sel, 1], 1), bins=edges,
                                     weights=w[sel])
            h = h + self.pseudo_count * w[sel].sum() / max(sel.sum(), 1)
            pdfs.append(h / h.sum())
        self.pdfs = np.stack(pdfs)
        return self

    def _clip(self, x: np.ndarray, i: int) -> np.ndarray:
        assert self.edges is not None, "LikelihoodRatioTagger is not fitted"
        e = self.edges[i]
        return np.clip(x, e[0], np.nextafter(e[-1], -np.inf))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``: each class's likelihood over their sum."""
        if self.pdfs is None:
            raise RuntimeError("LikelihoodRatioTagger is not fitted")
        assert self.edges is not None  # fitted with pdfs
        X = np.asarray(X, dtype=np.float64)
        ix = np.clip(np.searchsorted(self.edges[0], self._clip(X[:, 0], 0), side="right") - 1,
                     0, len(self.edges[0]) - 2)
        iy = np.clip(np.searchsorted(self.edges[1], self._clip(X[:, 1], 1), side="right") - 1,
                     0, len(self.edges[1]) - 2)
        p = self.pdfs[:, ix, iy].T
        return p / p.sum(axis=1, keepdims=True)

    def save(self, path: str | Path) -> Path:
        """Write the histograms to ``path`` (``.npz``, no pickle); returns the file."""
        assert self.edges is not None and self.pdfs is not None and self.classes_ is not None, \
            "LikelihoodRatioTagger is not fitted"
        meta = {"format": _LLH_FORMAT, "version": 1, "feature_names": self.feature_names,
                "pseudo_count": self.pseudo_count, "classes": [c.item() for c in self.classes_]}
        np.savez(path, edges_x=self.edges[0], edges_y=self.edges[1], pdfs=self.pdfs, meta=_meta_bytes(meta))
        return _npz_path(path)

    @classmethod
    def load(cls, path: str | Path) -> LikelihoodRatioTagger:
        """Read what :meth:`save` wrote (no pickle)."""
        with np.load(path, allow_pickle=False) as f:
            meta = _meta_from(f["meta"])
            if meta.get("format") != _LLH_FORMAT:
                raise ValueError(f"{path}: not a {_LLH_FORMAT} file")
            obj = cls(bins=(f["edges_x"], f["edges_y"]), pseudo_count=meta["pseudo_count"],
                      feature_names=meta["feature_names"])
            obj.edges = [f["edges_x"], f["edges_y"]]
            obj.pdfs = f["pdfs"]
            obj.classes_ = np.asarray(meta["classes"])
        return obj
