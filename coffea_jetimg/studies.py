"""From histograms to numbers and plots: ROC, AUC, R30/R50, sliced mass, JSD, Pearson maps.

Everything here works on the output of
:class:`coffea_jetimg.processors.JetTaggingProcessor` (``{dataset: {...}}``), or on single
``hist`` objects; no events are read. :func:`run_studies` writes PNG plots (matplotlib Agg +
mplhep), a ROOT file of 1D/2D histograms per class (for fits), the histograms in coffea's
native format (``coffea.util.save``: lz4-compressed cloudpickle) and a JSON summary.

Conventions
-----------
Signal efficiency ε_S and background efficiency ε_B of the cut ``score >= t``, for ``t`` at
the score-bin edges; background rejection = 1/ε_B. Binomial uncertainties
σ(ε) = sqrt(ε(1-ε)/N) with N the (unweighted) number of jets of the class.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

__all__ = [
    "merge_datasets",
    "roc_curve",
    "auc",
    "rejection_at",
    "jsd",
    "sliced_mass",
    "decorrelation",
    "pearson_map",
    "average_images",
    "confusion_matrix",
    "summarize",
    "run_studies",
    "pick_classes",
]


# ----------------------------------------------------------------------------------- merging

def _storage_fields(view):
    return view.dtype.names or ()


def _class_axis_index(h) -> int:
    names = [ax.name for ax in h.axes]
    return names.index("class")


def merge_class_hists(hists):
    """Sum hists whose only difference is the categories of their ``class`` axis."""
    import hist

    hists = [h for h in hists if h is not None]
    if not hists:
        return None
    ci = _class_axis_index(hists[0])
    cats: list[str] = []
    for h in hists:
        for c in h.axes[ci]:
            if c not in cats:
                cats.append(c)
    proto = hists[0]
    axes = [hist.axis.StrCategory(cats, name="class", label=proto.axes[ci].label) if i == ci else ax
            for i, ax in enumerate(proto.axes)]
    out = hist.Hist(*axes, storage=proto.storage_type())
    nv = out.view(flow=True)
    for h in hists:
        sv = h.view(flow=True)
        for i, c in enumerate(h.axes[ci]):
            j = cats.index(c)
            dst = (slice(None),) * ci + (j,)
            src = (slice(None),) * ci + (i,)
            fields = _storage_fields(sv)
            if fields:
                for f in fields:
                    nv[f][dst] += sv[f][src]
            else:
                nv[dst] += sv[src]
    return out


def merge_datasets(output: dict) -> dict:
    """Combine ``{dataset: {...}}`` into one ``{...}`` with the union of truth classes.

    Cutflows are summed key by key; ``{name: hist}`` dicts are merged per name.
    """
    datasets = [v for v in output.values() if isinstance(v, dict)]
    if not datasets:
        return {}
    merged: dict = {}
    keys = []
    for d in datasets:
        keys += [k for k in d if k not in keys]
    for k in keys:
        vals = [d[k] for d in datasets if k in d]
        if k == "cutflow":
            cf: dict = {}
            for v in vals:
                for a, b in v.items():
                    cf[a] = cf.get(a, 0) + int(b)
            merged[k] = cf
        elif isinstance(vals[0], dict):
            names = []
            for v in vals:
                names += [n for n in v if n not in names]
            merged[k] = {n: merge_class_hists([v.get(n) for v in vals]) for n in names}
        else:
            merged[k] = merge_class_hists(vals)
    return merged


# ----------------------------------------------------------------------------------- ROC

def pick_classes(categories, signal: str, class_names=None, background=None):
    """Resolve signal and background class names among ``categories`` (case-insensitive)."""
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
    bkg = []
    for b in background:
        if b.lower() not in low:
            raise KeyError(f"background class {b!r} not among the histogram's classes {cats}")
        bkg.append(low[b.lower()])
    return sig, bkg


def _score_counts(h_score, classes, pt_bin=None) -> np.ndarray:
    """Counts per score bin (no flow) summed over ``classes`` and all other axes (with flow)."""
    h = h_score
    names = [ax.name for ax in h.axes]
    view = h.view(flow=True)
    if view.dtype.names:
        view = view["value"]
    view = np.asarray(view, dtype=np.float64)
    ci = names.index("class")
    si = names.index("score")
    idx = [h.axes[ci].index(c) for c in classes]
    sel = np.take(view, idx, axis=ci).sum(axis=ci, keepdims=True)
    if pt_bin is not None and "pt" in names:
        pi = names.index("pt")
        off = 1 if h.axes["pt"].traits.underflow else 0
        sel = np.take(sel, [pt_bin + off], axis=pi)
    # score axis: strip flow bins if any
    s_ax = h.axes[si]
    lo = 1 if s_ax.traits.underflow else 0
    sel = np.take(sel, np.arange(lo, lo + len(s_ax)), axis=si)
    other = tuple(i for i in range(sel.ndim) if i != si)
    return sel.sum(axis=other)


def efficiencies(counts: np.ndarray):
    """ε(t_k) = fraction of entries in score bins >= k, for k = 0..n (ε(0) = 1, ε(n) = 0)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    tail = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])
    eff = tail / total if total > 0 else np.full(len(tail), np.nan)
    err = np.sqrt(np.clip(eff * (1 - eff), 0, None) / total) if total > 0 else np.full(len(tail), np.nan)
    return eff, err, total


def roc_curve(sig_counts, bkg_counts) -> dict:
    """ROC from per-bin score counts of signal and background.

    Returns
    -------
    dict with ``eff_s``, ``eff_b``, ``err_s``, ``err_b`` (arrays over thresholds at the bin edges,
    from the lowest (ε = 1) to above the highest (ε = 0)), ``rejection`` = 1/ε_B (inf where
    ε_B = 0), ``rejection_err``, ``n_s``, ``n_b``.
    """
    es, ss, ns = efficiencies(sig_counts)
    eb, sb, nb = efficiencies(bkg_counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        rej = np.where(eb > 0, 1.0 / eb, np.inf)
        rej_err = np.where(eb > 0, sb / eb**2, np.nan)
    return {"eff_s": es, "eff_b": eb, "err_s": ss, "err_b": sb, "rejection": rej, "rejection_err": rej_err,
            "n_s": ns, "n_b": nb}


def auc(eff_s, eff_b) -> float:
    """Area under ε_S(ε_B) (1 = perfect, 0.5 = no separation); trapezoids between thresholds."""
    es = np.asarray(eff_s, dtype=np.float64)
    eb = np.asarray(eff_b, dtype=np.float64)
    if not (np.all(np.isfinite(es)) and np.all(np.isfinite(eb))):
        return float("nan")
    order = np.lexsort((es, eb))
    x, y = eb[order], es[order]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def rejection_at(eff_s, eff_b, target: float) -> float:
    """Background rejection 1/ε_B at signal efficiency ``target`` (linear interpolation of ε_B)."""
    es = np.asarray(eff_s, dtype=np.float64)
    eb = np.asarray(eff_b, dtype=np.float64)
    if not np.all(np.isfinite(es)) or len(es) < 2:
        return float("nan")
    # best working point per signal efficiency: the smallest ε_B among thresholds with equal ε_S
    u, inv = np.unique(es, return_inverse=True)
    best = np.full(len(u), np.inf)
    np.minimum.at(best, inv, eb)
    e_b = float(np.interp(target, u, best))
    return float("inf") if e_b <= 0 else 1.0 / e_b


# ------------------------------------------------------------------------- mass and JSD

def jsd(p, q, base: float = 2.0) -> float:
    """Jensen-Shannon divergence of two histograms (normalised here); 0 for identical shapes.

    In bits by default, so 0 ≤ JSD ≤ 1.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return max(0.0, 0.5 * (kl(p, m) + kl(q, m)) / math.log(base))


def _project(h, keep: list[str], classes=None, score_range=None):
    """Sum ``h`` over all axes but ``keep`` (flow included), restricted to classes/score bins."""
    names = [ax.name for ax in h.axes]
    view = h.view(flow=True)
    if view.dtype.names:
        view = view["value"]
    v = np.asarray(view, dtype=np.float64)
    if classes is not None:
        ci = names.index("class")
        v = np.take(v, [h.axes[ci].index(c) for c in classes], axis=ci).sum(axis=ci, keepdims=True)
    if score_range is not None:
        si = names.index("score")
        ax = h.axes[si]
        edges = ax.edges
        lo, hi = score_range
        bins = [i for i in range(len(ax)) if edges[i] >= (lo if lo is not None else -np.inf) - 1e-12
                and edges[i + 1] <= (hi if hi is not None else np.inf) + 1e-12]
        off = 1 if ax.traits.underflow else 0
        v = np.take(v, [b + off for b in bins], axis=si).sum(axis=si, keepdims=True) if bins else \
            np.zeros_like(np.take(v, [0], axis=si))
    out_axes = [names.index(k) for k in keep]
    other = tuple(i for i in range(v.ndim) if i not in out_axes)
    v = v.sum(axis=other)
    # strip flow bins of the kept axes for plotting
    for pos, k in enumerate(keep):
        ax = h.axes[k]
        lo = 1 if getattr(ax.traits, "underflow", False) else 0
        v = np.take(v, np.arange(lo, lo + len(ax)), axis=pos)
    return v


def sliced_mass(h_score, low: float = 0.2, high: float = 0.8) -> dict:
    """Soft-drop mass per class: all jets, score < ``low``, score > ``high``.

    Returns ``{"edges": ndarray, class: {"all": counts, "fail": counts, "pass": counts}}``.
    """
    out = {"edges": h_score.axes["msd"].edges}
    for c in h_score.axes["class"]:
        out[c] = {
            "all": _project(h_score, ["msd"], classes=[c]),
            "fail": _project(h_score, ["msd"], classes=[c], score_range=(None, low)),
            "pass": _project(h_score, ["msd"], classes=[c], score_range=(high, None)),
        }
    return out


def decorrelation(h_score, signal: str, background, target_eff_s: float = 0.5) -> dict:
    """Mass-decorrelation figure of merit at the cut giving ε_S closest to ``target_eff_s``.

    Returns ``{"threshold", "eff_s", "eff_b", "rejection", "jsd", "inv_jsd"}``, with JSD between
    the normalised background soft-drop-mass distributions passing and failing the cut.
    """
    sig = _score_counts(h_score, [signal])
    bkg = _score_counts(h_score, list(background))
    es, _, _ = efficiencies(sig)
    eb, _, _ = efficiencies(bkg)
    if not np.all(np.isfinite(es)):
        return {"threshold": None, "eff_s": None, "eff_b": None, "rejection": None, "jsd": None, "inv_jsd": None}
    k = int(np.argmin(np.abs(es[:-1] - target_eff_s)))
    t = float(h_score.axes["score"].edges[k])
    passing = _project(h_score, ["msd"], classes=list(background), score_range=(t, None))
    failing = _project(h_score, ["msd"], classes=list(background), score_range=(None, t))
    d = jsd(passing, failing)
    return {"threshold": t, "eff_s": float(es[k]), "eff_b": float(eb[k]),
            "rejection": float("inf") if eb[k] <= 0 else float(1 / eb[k]), "jsd": d,
            "inv_jsd": (float("inf") if d == 0 else (1.0 / d if np.isfinite(d) else None))}


# ----------------------------------------------------------------------------- pixel maps

def pearson_map(n, sum_x, sum_x2, sum_y, sum_y2, sum_xy) -> np.ndarray:
    """Per-pixel Pearson correlation from merged moments (NaN where a variance is 0).

    ``n``, ``sum_y``, ``sum_y2`` are scalars (or broadcastable); the ``x`` moments are maps.
    """
    n = np.asarray(n, dtype=np.float64)
    sx, sx2, sy, sy2, sxy = (np.asarray(a, dtype=np.float64) for a in (sum_x, sum_x2, sum_y, sum_y2, sum_xy))
    cov = n * sxy - sx * sy
    vx = n * sx2 - sx**2
    vy = n * sy2 - sy**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cov / np.sqrt(vx * vy)
    r = np.where((vx > 1e-12 * np.maximum(n * sx2, 1e-300)) & (vy > 0), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def _hist_value_var(h):
    v = h.view(flow=False)
    if v.dtype.names and "variance" in v.dtype.names:
        return np.asarray(v["value"], dtype=np.float64), np.asarray(v["variance"], dtype=np.float64)
    return np.asarray(v, dtype=np.float64), None


def _class_count(h_njets, c) -> float:
    v = h_njets.view(flow=True)
    idx = h_njets.axes["class"].index(c)
    return float(np.asarray(v, dtype=np.float64)[idx].sum())


def average_images(h_image, h_njets) -> dict:
    """``{class: (C, H, W) mean image}`` = Σx / n."""
    out = {}
    vals, _ = _hist_value_var(h_image)
    for i, c in enumerate(h_image.axes["class"]):
        n = _class_count(h_njets, c)
        out[c] = vals[i] / n if n > 0 else np.full(vals[i].shape, np.nan)
    return out


def pearson_maps(h_image, h_xy, h_moments, h_njets, classes=None) -> np.ndarray:
    """Pearson map ``(C, H, W)`` of pixel intensity vs score over the jets of ``classes`` (all by default)."""
    x, x2 = _hist_value_var(h_image)
    xy, _ = _hist_value_var(h_xy)
    m = h_moments.view(flow=True)
    cats = list(h_image.axes["class"])
    classes = cats if classes is None else classes
    idx = [cats.index(c) for c in classes]
    mi = [h_moments.axes["class"].index(c) for c in classes]
    n = sum(_class_count(h_njets, c) for c in classes)
    sy = float(np.asarray(m["value"])[mi].sum())
    sy2 = float(np.asarray(m["variance"])[mi].sum())
    return pearson_map(n, x[idx].sum(0), x2[idx].sum(0), sy, sy2, xy[idx].sum(0))


def confusion_matrix(h_pred, normalize: bool = True):
    """``(truth classes, predicted classes, matrix)``; rows normalised to 1 when ``normalize``."""
    v = np.asarray(h_pred.view(flow=False), dtype=np.float64)
    truth = list(h_pred.axes["class"])
    pred = list(h_pred.axes["predicted"].metadata.get("class_names", range(v.shape[1]))) \
        if isinstance(h_pred.axes["predicted"].metadata, dict) else list(range(v.shape[1]))
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            v = v / v.sum(axis=1, keepdims=True)
    return truth, pred, v


# ----------------------------------------------------------------------------- summary

def _model_meta(h_score) -> dict:
    md = h_score.axes["score"].metadata
    return md if isinstance(md, dict) else {}


def _num(x):
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def summarize(merged: dict, signal: str | None = None, background=None) -> dict:
    """Numbers per model: AUC, R30, R50 (inclusive and per pT bin), decorrelation, cutflow."""
    out = {"cutflow": merged.get("cutflow", {}), "models": {}}
    for name, h in (merged.get("score") or {}).items():
        meta = _model_meta(h)
        sig_name = signal or meta.get("signal_class")
        try:
            sig, bkg = pick_classes(h.axes["class"], sig_name, meta.get("class_names"), background)
        except KeyError as err:
            out["models"][name] = {"error": str(err).strip("'\"")}
            continue
        s_counts, b_counts = _score_counts(h, [sig]), _score_counts(h, bkg)
        roc = roc_curve(s_counts, b_counts)
        res = {"signal": sig, "background": bkg, "n_signal": roc["n_s"], "n_background": roc["n_b"],
               "auc": _num(auc(roc["eff_s"], roc["eff_b"])),
               "R30": _num(rejection_at(roc["eff_s"], roc["eff_b"], 0.3)),
               "R50": _num(rejection_at(roc["eff_s"], roc["eff_b"], 0.5)),
               "pt_bins": []}
        edges = h.axes["pt"].edges
        for k in range(len(edges) - 1):
            r = roc_curve(_score_counts(h, [sig], pt_bin=k), _score_counts(h, bkg, pt_bin=k))
            if r["n_s"] == 0 or r["n_b"] == 0:
                continue
            res["pt_bins"].append({"pt": [float(edges[k]), float(edges[k + 1])], "n_signal": r["n_s"],
                                   "n_background": r["n_b"], "auc": _num(auc(r["eff_s"], r["eff_b"])),
                                   "R30": _num(rejection_at(r["eff_s"], r["eff_b"], 0.3)),
                                   "R50": _num(rejection_at(r["eff_s"], r["eff_b"], 0.5))})
        dec = decorrelation(h, sig, bkg, 0.5)
        res["decorrelation"] = {k: _num(v) if not isinstance(v, str) else v for k, v in dec.items()}
        out["models"][name] = res
    return out


# ----------------------------------------------------------------------------- plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        import mplhep as hep

        hep.style.use("CMS")
    except Exception:  # pragma: no cover - style is cosmetic
        pass
    return plt


def _label(ax, text="Simulation"):
    # not hep.cms.label: these are not CMS results (generated samples, or our taggers on CMS files)
    ax.text(0.0, 1.01, "coffea-jetimg", transform=ax.transAxes, ha="left", va="bottom",
            fontsize=18, fontweight="bold")
    ax.text(0.42, 1.01, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=15, style="italic")


def plot_roc(h_score, name, sig, bkg, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 7))
    edges = h_score.axes["pt"].edges
    curves = [("inclusive", None)] + [(f"{edges[k]:.0f}-{edges[k + 1]:.0f} GeV", k) for k in range(len(edges) - 1)]
    for label, k in curves:
        r = roc_curve(_score_counts(h_score, [sig], pt_bin=k), _score_counts(h_score, bkg, pt_bin=k))
        if r["n_s"] == 0 or r["n_b"] == 0:
            continue
        ok = (r["eff_b"] > 0) & (r["eff_s"] > 0)
        a = auc(r["eff_s"], r["eff_b"])
        ax.errorbar(r["eff_s"][ok], r["rejection"][ok], xerr=r["err_s"][ok], yerr=r["rejection_err"][ok],
                    label=f"{label} (AUC {a:.3f})", lw=2 if k is None else 1, capsize=0, marker="" if k is None else ".")
    ax.set_yscale("log")
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$" + f" ({sig})")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$" + f" ({'+'.join(bkg)})")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=11, title=name, title_fontsize=12)
    _label(ax)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_sliced_mass(h_score, name, path, low=0.2, high=0.8):
    plt = _plt()
    sm = sliced_mass(h_score, low, high)
    edges = sm.pop("edges")
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (c, d) in enumerate(sm.items()):
        if d["all"].sum() <= 0:
            continue
        colour = colours[i % len(colours)]  # one colour per truth class, one line style per slice
        for key, ls in (("all", "-"), ("fail", ":"), ("pass", "--")):
            tot = d[key].sum()
            if tot > 0:
                lab = {"all": "all", "fail": f"score<{low}", "pass": f"score>{high}"}[key]
                ax.stairs(d[key] / tot, edges, ls=ls, color=colour, lw=2 if key == "all" else 1.5,
                          label=f"{c}, {lab} ({tot:.0f} jets)")
    ax.set_xlabel("Soft-drop mass [GeV]")
    ax.set_ylabel("Fraction of jets")
    ax.legend(fontsize=11, title=name, title_fontsize=12)
    _label(ax)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_image(img, title, path, cmap="viridis", log=False, vmin=None, vmax=None, jet_axes=True):
    """Draw one image channel. ``jet_axes``: ``img`` is (η, φ) as made by ``jet_images``; it is
    drawn with η across and φ up, so that "12 o'clock" of the rotation is up on the page."""
    plt = _plt()
    from matplotlib.colors import LogNorm

    fig, ax = plt.subplots(figsize=(7, 6))
    data = np.asarray(img, dtype=np.float64)
    if jet_axes:
        data = data.T
    norm = None
    if log:
        pos = data[data > 0]
        norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if pos.size else None
    im = ax.imshow(data, origin="lower", cmap=cmap, norm=norm, vmin=None if log else vmin, vmax=None if log else vmax)
    fig.colorbar(im, ax=ax)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(r"$\eta'$ pixel" if jet_axes else "pixel column")
    ax.set_ylabel(r"$\phi'$ pixel" if jet_axes else "pixel row")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(truth, pred, m, title, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(pred)), [str(p) for p in pred])
    ax.set_yticks(range(len(truth)), truth)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=12)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=13)
    fig.colorbar(im, ax=ax)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_decorrelation(summary, path):
    """1/JSD against 1/ε_B at ε_S = 0.5, one point per model (as in the decorrelation papers:
    up and right is better). Log axes with plain tick labels, padded around the points."""
    plt = _plt()
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(8, 7))
    xs, ys = [], []
    for name, res in summary["models"].items():
        d = res.get("decorrelation") or {}
        r, ij = d.get("rejection"), d.get("inv_jsd")
        if isinstance(r, (int, float)) and isinstance(ij, (int, float)) and r > 0 and ij > 0 and np.isfinite(r * ij):
            ax.scatter([r], [ij], s=80, label=name)
            ax.annotate(name, (r, ij), textcoords="offset points", xytext=(6, 6), fontsize=12)
            xs.append(r)
            ys.append(ij)
    ax.set_xlabel(r"Background rejection $1/\varepsilon_B$ at $\varepsilon_S$ = 0.5")
    ax.set_ylabel("1 / JSD (background mass, pass vs fail)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if xs:
        ax.set_xlim(min(xs) / 2, max(xs) * 2)
        ax.set_ylim(min(ys) / 2, max(ys) * 2)
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        # label the 2x and 5x minor ticks too: a decade rarely fits on these axes
        axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    ax.legend(fontsize=11)
    _label(ax)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


# ----------------------------------------------------------------------------- files

def _to_double_hist(h):
    """A copy with Double/Weight storage (uproot writes those)."""
    import hist

    v = h.view(flow=True)
    if v.dtype.names:
        out = hist.Hist(*h.axes, storage=hist.storage.Weight())
        out.view(flow=True)["value"][...] = v["value"]
        out.view(flow=True)["variance"][...] = v["variance"]
    else:
        out = hist.Hist(*h.axes, storage=hist.storage.Weight())
        out.view(flow=True)["value"][...] = v
        out.view(flow=True)["variance"][...] = v  # Poisson counts
    return out


def _per_class(h, c, axes):
    """``h`` at class ``c``, projected on ``axes`` (Weight storage)."""
    sub = h[{"class": c}]
    return _to_double_hist(sub.project(*axes))


def write_root(merged: dict, path) -> list[str]:
    """1D/2D histograms per class for fits, with uproot. Returns the names written."""
    import uproot

    names = []

    def safe(s):
        return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in str(s))

    with uproot.recreate(str(path)) as f:
        for model, h in (merged.get("score") or {}).items():
            for c in h.axes["class"]:
                base = f"{safe(model)}/{safe(c)}"
                for key, axes in (("score", ("score",)), ("msd", ("msd",)), ("pt", ("pt",)), ("npv", ("npv",)),
                                  ("score_vs_msd", ("score", "msd")), ("score_vs_pt", ("score", "pt"))):
                    f[f"{base}/{key}"] = _per_class(h, c, axes)
                    names.append(f"{base}/{key}")
                sm = sliced_mass(h)
                for key in ("pass", "fail"):
                    f[f"{base}/msd_{key}"] = (np.asarray(sm[c][key], np.float64), sm["edges"])
                    names.append(f"{base}/msd_{key}")
        for key, h in (merged.get("image") or {}).items():
            n_ch = len(h.axes["channel"])
            for c in h.axes["class"]:
                for ch in range(n_ch):
                    sub = h[{"class": c, "channel": ch}]
                    f[f"images/{safe(key)}/{safe(c)}_ch{ch}_sum"] = _to_double_hist(sub)
                    names.append(f"images/{safe(key)}/{safe(c)}_ch{ch}_sum")
        cf = merged.get("cutflow") or {}
        if cf:
            vals = np.array([float(v) for v in cf.values()])
            f["cutflow"] = (vals, np.arange(len(vals) + 1, dtype=np.float64))
            names.append("cutflow")
    return names


def save_hists(output, path) -> None:
    """The processor output in coffea's native format (``coffea.util.save``)."""
    from coffea.util import save

    save(output, str(path))


def load_hists(path):
    from coffea.util import load

    return load(str(path))


def run_studies(output: dict, outdir, signal: str | None = None, background=None, model_info: dict | None = None,
                extra_summary: dict | None = None, make_plots: bool = True) -> dict:
    """Write every study of a :class:`JetTaggingProcessor` output to ``outdir``.

    Writes ``hists.coffea``, ``hists.root``, ``summary.json`` and PNGs under ``plots/``.
    Returns the summary.
    """
    outdir = Path(outdir)
    plots = outdir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    save_hists(output, outdir / "hists.coffea")
    merged = merge_datasets(output)
    summary = summarize(merged, signal, background)
    summary["datasets"] = {ds: {"cutflow": v.get("cutflow", {})} for ds, v in output.items() if isinstance(v, dict)}
    if model_info:
        summary["model_info"] = model_info
    if extra_summary:
        summary.update(extra_summary)
    files = []
    if make_plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, h in (merged.get("score") or {}).items():
                res = summary["models"].get(name, {})
                if "signal" in res and res["n_signal"] > 0 and res["n_background"] > 0:
                    p = plots / f"roc_{name}.png"
                    plot_roc(h, name, res["signal"], res["background"], p)
                    files.append(p)
                p = plots / f"sliced_mass_{name}.png"
                plot_sliced_mass(h, name, p)
                files.append(p)
                if name in (merged.get("predicted") or {}):
                    t, pr, m = confusion_matrix(merged["predicted"][name])
                    p = plots / f"confusion_{name}.png"
                    plot_confusion(t, pr, m, f"{name}: predicted vs truth", p)
                    files.append(p)
            if summary["models"]:
                p = plots / "decorrelation.png"
                plot_decorrelation(summary, p)
                files.append(p)
            njets = merged.get("njets")
            for key, h in (merged.get("image") or {}).items():
                if njets is None:
                    break
                for c, img in average_images(h, njets).items():
                    if np.all(~np.isfinite(img)):
                        continue
                    for ch in range(img.shape[0]):
                        p = plots / f"average_{key}_{c}_ch{ch}.png"
                        plot_image(img[ch], f"average image {key}, {c}, channel {ch}", p, log=True)
                        files.append(p)
            for model, hxy in (merged.get("pixel_xy") or {}).items():
                info = (model_info or {}).get(model, {})
                key = info.get("image") or next(iter(merged.get("image") or {}), None)
                if key is None or key not in merged["image"]:
                    continue
                r = pearson_maps(merged["image"][key], hxy, merged["score_moments"][model], njets)
                for ch in range(r.shape[0]):
                    p = plots / f"pearson_{model}_ch{ch}.png"
                    plot_image(r[ch], f"Pearson r(pixel, score), {model}", p, cmap="RdBu_r", vmin=-1, vmax=1)
                    files.append(p)
    summary["root_objects"] = write_root(merged, outdir / "hists.root")
    summary["plots"] = [str(p.relative_to(outdir)) for p in files]
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def save_event_outputs(output: dict, outdir, extra_summary: dict | None = None) -> dict:
    """Outputs of :class:`EventImageProcessor`: hists, average images, confusion matrix, summary."""
    outdir = Path(outdir)
    plots = outdir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    save_hists(output, outdir / "hists.coffea")
    merged = merge_datasets(output)
    summary = {"cutflow": merged.get("cutflow", {}),
               "datasets": {ds: {"cutflow": v.get("cutflow", {})} for ds, v in output.items()}}
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ink, nev = merged.get("ink"), merged.get("nevents")
        if ink is not None and nev is not None:
            vals, _ = _hist_value_var(ink)
            for i, c in enumerate(ink.axes["class"]):
                n = _class_count(nev, c)
                if n > 0:
                    p = plots / f"average_event_image_{c}.png"
                    avg = np.clip(1.0 - vals[i] / n, 0, 1).transpose(1, 2, 0)
                    plot_image(avg, f"average event image, {c} (n={n:.0f})", p, jet_axes=False)
                    files.append(p)
        if merged.get("predicted") is not None:
            t, pr, m = confusion_matrix(merged["predicted"])
            summary["confusion"] = {"truth": t, "predicted": [str(x) for x in pr], "matrix": m.tolist()}
            p = plots / "confusion_event_classifier.png"
            plot_confusion(t, pr, m, "event classifier", p)
            files.append(p)
    if extra_summary:
        summary.update(extra_summary)
    summary["plots"] = [str(p.relative_to(outdir)) for p in files]
    (outdir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary
