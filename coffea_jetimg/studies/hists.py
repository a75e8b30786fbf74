"""Histogram maths: merging datasets, projections, and the metrics of :mod:`coffea_jetimg.metrics` on hists.

Everything here works on the output of :class:`coffea_jetimg.processors.JetTaggingProcessor`
(``{dataset: {...}}``) or on single ``hist`` objects; no events are read, nothing is drawn.
Histograms may hold counts (Int64/Double storage) or weights (Weight storage: values and
variances); the ROC uses the variances where there are some.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics
from ..axes import CHANNEL, CLASS, MOMENT, MSD, PREDICTED, PT, SCORE

if TYPE_CHECKING:  # pragma: no cover
    from hist import Hist

__all__ = [
    "merge_class_hists",
    "merge_datasets",
    "classes_by_dataset",
    "pick_classes",
    "score_counts",
    "score_roc",
    "project",
    "sliced_mass",
    "decorrelation",
    "mass_at_working_point",
    "average_images",
    "pearson_maps",
    "confusion_matrix",
    "channel_meta",
]


# ----------------------------------------------------------------------------------- merging

def _fields(view: Any) -> tuple[str, ...]:
    return view.dtype.names or ()


def merge_class_hists(hists: Iterable[Any]) -> Hist | None:
    """Sum hists whose only difference is the categories of their ``class`` axis.

    Returns ``None`` when every entry is ``None``.
    """
    import hist

    hs = [h for h in hists if h is not None]
    if not hs:
        return None
    names = [ax.name for ax in hs[0].axes]
    ci = names.index(CLASS)
    cats: list[str] = []
    for h in hs:
        cats += [c for c in h.axes[ci] if c not in cats]
    proto = hs[0]
    axes = [hist.axis.StrCategory(cats, name=CLASS, label=proto.axes[ci].label) if i == ci else ax
            for i, ax in enumerate(proto.axes)]
    out = hist.Hist(*axes, storage=proto.storage_type())
    nv: Any = out.view(flow=True)
    for h in hs:
        sv: Any = h.view(flow=True)
        for i, c in enumerate(h.axes[ci]):
            dst = (slice(None),) * ci + (cats.index(c),)
            src = (slice(None),) * ci + (i,)
            if _fields(sv):
                for f in _fields(sv):
                    nv[f][dst] += sv[f][src]
            else:
                nv[dst] += sv[src]
    return out


def merge_datasets(output: dict[str, Any]) -> dict[str, Any]:
    """Combine ``{dataset: {...}}`` into one ``{...}`` with the union of truth classes.

    Cutflows are summed key by key (counts stay integers, weighted sums floats); ``{name: hist}``
    dicts are merged per name.
    """
    datasets = [v for v in output.values() if isinstance(v, dict)]
    if not datasets:
        return {}
    merged: dict[str, Any] = {}
    keys: list[str] = []
    for d in datasets:
        keys += [k for k in d if k not in keys]
    for k in keys:
        vals = [d[k] for d in datasets if k in d]
        if k == "cutflow":
            cf: dict[str, Any] = {}
            for v in vals:
                for a, b in v.items():
                    cf[a] = cf.get(a, 0) + (float(b) if isinstance(b, float) or a.startswith("sumw") else int(b))
            merged[k] = cf
        elif isinstance(vals[0], dict):
            names: list[str] = []
            for v in vals:
                names += [n for n in v if n not in names]
            merged[k] = {n: merge_class_hists([v.get(n) for v in vals]) for n in names}
        else:
            merged[k] = merge_class_hists(vals)
    return merged


def classes_by_dataset(output: dict[str, Any]) -> dict[str, list[str]]:
    """``{class: [datasets with jets of that class]}`` from the per-dataset ``njets`` hists."""
    out: dict[str, list[str]] = {}
    for ds, d in output.items():
        h = d.get("njets") if isinstance(d, dict) else None
        if h is None:
            continue
        v = _values(h)
        for i, c in enumerate(h.axes[CLASS]):
            if v[i].sum() > 0:
                out.setdefault(c, []).append(str(ds))
    return out


# ----------------------------------------------------------------------------------- classes

def pick_classes(categories: Iterable[str], signal: str | None, class_names: Sequence[str] | None = None,
                 background: str | Sequence[str] | None = None) -> tuple[str, list[str]]:
    """Resolve signal and background class names among ``categories`` (case-insensitive).

    The background defaults to the model's other classes (``class_names``) present, else to
    every other category.

    Raises
    ------
    KeyError
        Naming the class that is not among the categories.
    """
    cats = list(categories)
    low = {c.lower(): c for c in cats}
    sig = low.get(str(signal).lower())
    if sig is None:
        raise KeyError(f"signal class {signal!r} not among the histogram's classes {cats}")
    if background is None:
        named = [low[c.lower()] for c in (class_names or []) if c.lower() in low and c.lower() != sig.lower()]
        background = named or [c for c in cats if c != sig]
    elif isinstance(background, str):
        background = [background]
    bkg: list[str] = []
    for b in background:
        if b.lower() not in low:
            raise KeyError(f"background class {b!r} not among the histogram's classes {cats}")
        bkg.append(low[b.lower()])
    return sig, bkg


# ----------------------------------------------------------------------------------- projections

def _values(h: Hist, field: str = "value") -> np.ndarray:
    """The flow-included view as float64 (``field`` of a Weight storage; the counts otherwise)."""
    v: Any = h.view(flow=True)
    if _fields(v):
        return np.asarray(v[field], dtype=np.float64)
    return np.asarray(v, dtype=np.float64)


def _variances(h: Hist) -> np.ndarray:
    """Variances of the flow-included view (the counts for unweighted storages)."""
    v: Any = h.view(flow=True)
    if "variance" in _fields(v):
        return np.asarray(v["variance"], dtype=np.float64)
    return _values(h)


def _values_noflow(h: Hist) -> np.ndarray:
    """Values without flow bins as float64."""
    v: Any = h.view(flow=False)
    return np.asarray(v["value"] if _fields(v) else v, dtype=np.float64)


def _class_total(h: Hist, c: str) -> float:
    """Content of class ``c`` (all other axes, flow included)."""
    return float(_values(h)[h.axes[CLASS].index(c)].sum())


def _no_flow(ax: Any) -> slice:
    lo = 1 if getattr(ax.traits, "underflow", False) else 0
    return slice(lo, lo + len(ax))


def project(h: Hist, keep: Sequence[str], classes: Sequence[str] | None = None, variances: bool = False,
            pt_bin: int | None = None) -> np.ndarray:
    """Sum ``h`` over all axes but ``keep`` (other axes' flow bins included).

    Parameters
    ----------
    h : hist.Hist
    keep : sequence of str
        Axes kept, in this order, without their flow bins.
    classes : sequence of str, optional
        Sum only these truth classes.
    variances : bool
        Project the variances instead of the values.
    pt_bin : int, optional
        Only this bin of the ``pt`` axis (0-based, flow bins excluded).
    """
    names = [ax.name for ax in h.axes]
    v = _variances(h) if variances else _values(h)
    if classes is not None:
        ci = names.index(CLASS)
        v = np.take(v, [h.axes[CLASS].index(c) for c in classes], axis=ci).sum(axis=ci, keepdims=True)
    if pt_bin is not None:
        pi = names.index(PT)
        off = 1 if h.axes[PT].traits.underflow else 0
        v = np.take(v, [pt_bin + off], axis=pi)
    for k in keep:
        i = names.index(k)
        v = np.take(v, np.arange(len(h.axes[k])) + _no_flow(h.axes[k]).start, axis=i)
    pos = [names.index(k) for k in keep]
    v = v.sum(axis=tuple(i for i in range(v.ndim) if i not in pos))
    # sum keeps the remaining axes in their original order: reorder to ``keep``
    order = sorted(pos)
    return np.moveaxis(v, [order.index(p) for p in pos], list(range(len(pos)))) if len(pos) > 1 else v


def score_counts(h: Hist, classes: Sequence[str], pt_bin: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per score bin (no flow): the sum over ``classes`` and all other axes, and its variance."""
    return (project(h, [SCORE], classes, pt_bin=pt_bin),
            project(h, [SCORE], classes, variances=True, pt_bin=pt_bin))


def score_roc(h: Hist, signal: str, background: Sequence[str], pt_bin: int | None = None) -> metrics.Roc:
    """:func:`coffea_jetimg.metrics.roc_from_counts` of a score histogram (cuts at the score bin edges)."""
    s, vs = score_counts(h, [signal], pt_bin)
    b, vb = score_counts(h, list(background), pt_bin)
    return metrics.roc_from_counts(s, b, h.axes[SCORE].edges, vs, vb)


# ----------------------------------------------------------------------------------- mass

def sliced_mass(h_score: Hist, low: float = 0.2, high: float = 0.8) -> dict[str, Any]:
    """Mass distribution per class: all jets, score < ``low``, score >= ``high`` (cuts at bin edges).

    Returns ``{"edges": ndarray, "label": the msd axis label, class: {"all", "fail", "pass"}}``.
    """
    edges = h_score.axes[SCORE].edges
    k_lo = int(np.argmin(np.abs(edges - low)))
    k_hi = int(np.argmin(np.abs(edges - high)))
    out: dict[str, Any] = {"edges": h_score.axes[MSD].edges, "label": h_score.axes[MSD].label or MSD,
                 "low": float(edges[k_lo]), "high": float(edges[k_hi])}
    for c in h_score.axes[CLASS]:
        sm = project(h_score, [SCORE, MSD], [c])
        t = metrics.passing(sm)
        out[c] = {"all": t[0], "fail": t[0] - t[k_lo], "pass": t[k_hi]}
    return out


def decorrelation(h_score: Hist, signal: str, background: Sequence[str], eff_s: float = 0.5, n_boot: int = 0,
                  seed: int = 0) -> dict[str, Any]:
    """Mass decorrelation at the working point ε_S = ``eff_s`` (the table's interpolated one).

    The background mass distributions passing and failing the working point are interpolated
    between the two bracketing cuts with the same weights as ε_B
    (:meth:`coffea_jetimg.metrics.WorkingPoint.mix`), so the rejection here is the table's.
    With ``n_boot`` > 0 the signal score counts and the background (score × mass) counts are
    Poisson-resampled (:func:`coffea_jetimg.metrics.bootstrap_counts`) for 68 % intervals of the
    rejection and of 1/JSD, both recomputed, working point included, on each resample.

    Returns
    -------
    dict
        ``eff_s``, ``threshold``, ``eff_b``, ``rejection`` (``inf`` when no background passes),
        ``rejection_interval``, ``rejection_lower_limit``, ``jsd`` (pass vs fail, bits),
        ``inv_jsd``; with ``n_boot``: ``rejection_boot_interval``, ``inv_jsd_interval``,
        ``n_boot``; all ``None`` with a ``reason`` ("no signal jets", "no background jets")
        when the working point is undefined.
    """
    roc = score_roc(h_score, signal, background)
    empty: dict[str, Any] = {"eff_s": eff_s, "threshold": None, "eff_b": None, "rejection": None,
                             "rejection_interval": None, "rejection_lower_limit": None, "jsd": None, "inv_jsd": None}
    if roc.n_s <= 0:
        return {**empty, "reason": "no signal jets"}
    if roc.n_b <= 0:
        return {**empty, "reason": "no background jets"}
    edges = h_score.axes[SCORE].edges
    s1, vs1 = score_counts(h_score, [signal])
    b2 = project(h_score, [SCORE, MSD], list(background))

    def at_wp(s: np.ndarray, b: np.ndarray, r: metrics.Roc | None = None) -> tuple[metrics.WorkingPoint, float]:
        wp = metrics.working_point(r or metrics.roc_from_counts(s, b.sum(axis=1), edges), eff_s)
        passing = _passing_at(wp, b)
        return wp, metrics.jsd(passing, b.sum(axis=0) - passing)

    def inverse(d: float) -> float | None:
        return (float("inf") if d == 0 else 1.0 / d) if np.isfinite(d) else None

    wp, d = at_wp(s1, b2, roc)
    out = {"eff_s": eff_s, "threshold": wp.threshold, "eff_b": wp.eff_b, "rejection": wp.rejection,
           "rejection_interval": list(wp.interval), "rejection_lower_limit": wp.lower_limit,
           "jsd": d, "inv_jsd": inverse(d)}
    if n_boot > 0:
        vb2 = project(h_score, [SCORE, MSD], list(background), variances=True)
        shape = b2.shape
        for key, stat in (("rejection_boot_interval", lambda s, b: at_wp(s, b.reshape(shape))[0].rejection),
                          ("inv_jsd_interval", lambda s, b: inverse(at_wp(s, b.reshape(shape))[1]) or np.nan)):
            _, iv = metrics.bootstrap_counts(stat, s1, b2.ravel(), vs1, vb2.ravel(), n_boot=n_boot, seed=seed)
            out[key] = [float(v) for v in iv]
        out["n_boot"] = n_boot
    return out


def _passing_at(wp: metrics.WorkingPoint, score_mass: np.ndarray) -> np.ndarray:
    """Per mass bin, the (score × mass) counts passing ``wp`` (interpolated between its two cuts)."""
    return wp.mix(metrics.passing(score_mass))


def mass_at_working_point(h_score: Hist, signal: str, background: Sequence[str], eff_s: float,
                          classes: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{class: (all, passing)}`` mass counts of ``classes`` at the working point ε_S = ``eff_s``
    of ``signal`` vs ``background`` (the one of :func:`decorrelation`): the sculpting plot's."""
    wp = metrics.working_point(score_roc(h_score, signal, background), eff_s)
    out = {}
    for c in classes:
        b = project(h_score, [SCORE, MSD], [c])
        out[c] = (b.sum(axis=0), _passing_at(wp, b))
    return out


# ----------------------------------------------------------------------------------- pixel maps

def _class_count(h_njets: Hist, c: str) -> float:
    return _class_total(h_njets, c)


def average_images(h_image: Hist, h_njets: Hist) -> dict[str, np.ndarray]:
    """``{class: (C, H, W) mean image}`` = Σx / n (NaN for a class without jets)."""
    vals = _values_noflow(h_image)
    out: dict[str, np.ndarray] = {}
    for i, c in enumerate(h_image.axes[CLASS]):
        n = _class_count(h_njets, c)
        out[c] = vals[i] / n if n > 0 else np.full(vals[i].shape, np.nan)
    return out


def pearson_maps(h_image: Hist, h_xy: Hist, h_moments: Hist, h_njets: Hist,
                 classes: Sequence[str] | None = None, h_x2: Hist | None = None) -> np.ndarray:
    """Pearson map ``(C, H, W)`` of pixel intensity vs score over the jets of ``classes`` (all by
    default), each jet weighted by its event weight.

    ``h_njets`` holds Σw, ``h_image`` Σwx (values), ``h_x2`` Σwx² (without it: the image's
    variances, which are Σw²x², equal when every weight is 1), ``h_xy`` Σwxy, ``h_moments`` Σwy and
    Σwy² per class (a ``moment`` axis; or, in outputs without it, values and variances of Weight
    storage); :func:`coffea_jetimg.metrics.pearson_map` combines them.
    """
    img: Any = h_image.view(flow=False)
    x = np.asarray(img["value"], np.float64)
    x2 = (np.asarray(h_x2.view(flow=False), np.float64) if h_x2 is not None
          else np.asarray(img["variance"], np.float64))
    xy = np.asarray(h_xy.view(flow=False), dtype=np.float64)
    cats = list(h_image.axes[CLASS])
    classes = cats if classes is None else list(classes)
    idx = [cats.index(c) for c in classes]
    mi = [h_moments.axes[CLASS].index(c) for c in classes]
    n = sum(_class_count(h_njets, c) for c in classes)
    if MOMENT in [ax.name for ax in h_moments.axes]:
        mv = np.asarray(h_moments.project(CLASS, MOMENT).view(flow=False), np.float64)  # (class, k=1..2)
        sy, sy2 = float(mv[mi, 0].sum()), float(mv[mi, 1].sum())
    else:
        m: Any = h_moments.view(flow=True)
        sy = float(np.asarray(m["value"])[mi].sum())
        sy2 = float(np.asarray(m["variance"])[mi].sum())
    return metrics.pearson_map(n, x[idx].sum(0), x2[idx].sum(0), sy, sy2, xy[idx].sum(0))


def channel_meta(h_image: Hist) -> dict[str, Any]:
    """The ``channel`` axis metadata (``{"channels", "intensity", "normalize"}``), ``{}`` if none."""
    md = h_image.axes[CHANNEL].metadata
    return dict(md) if isinstance(md, dict) else {}


def confusion_matrix(h_pred: Hist, normalize: bool = True) -> tuple[list[str], list[Any], np.ndarray]:
    """``(truth classes, predicted classes, matrix)``; rows normalised to 1 when ``normalize``."""
    v = np.asarray(h_pred.values(flow=False), dtype=np.float64)  # counts (Weight storage: the sums of weights)
    truth = list(h_pred.axes[CLASS])
    md = h_pred.axes[PREDICTED].metadata
    pred = list(md.get("class_names", range(v.shape[1]))) if isinstance(md, dict) else list(range(v.shape[1]))
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = v / v.sum(axis=1, keepdims=True)
    return truth, pred, v
