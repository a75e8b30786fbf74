"""Plots of the studies (matplotlib Agg + mplhep style).

Each ``plot_*`` function writes one PNG and returns what it drew (the numbers, labels and
texts), so that tests can check the figure's content without reading pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics
from ..axes import CLASS_NOTES, PT
from .hists import score_roc, sliced_mass

if TYPE_CHECKING:  # pragma: no cover
    from hist import Hist

__all__ = [
    "class_label",
    "plot_roc",
    "plot_sliced_mass",
    "plot_image",
    "plot_confusion",
    "plot_decorrelation",
    "decorrelation_points",
]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        import mplhep as hep

        hep.style.use("CMS")
    except Exception:  # pragma: no cover - style is cosmetic
        pass
    return plt


def _label(ax: Any, text: str = "Simulation") -> None:
    # not hep.cms.label: these are not CMS results (generated samples, or our taggers on CMS files)
    ax.text(0.0, 1.01, "coffea-jetimg", transform=ax.transAxes, ha="left", va="bottom",
            fontsize=18, fontweight="bold")
    ax.text(0.42, 1.01, text, transform=ax.transAxes, ha="left", va="bottom", fontsize=15, style="italic")


def _save(fig: Any, path: str | Path) -> None:
    plt = _plt()
    fig.savefig(str(path), dpi=100, bbox_inches="tight")
    plt.close(fig)


def class_label(c: str, signal: str | None = None, background: Sequence[str] = (),
                datasets: Sequence[str] | None = None) -> str:
    """Legend text of a truth class: its role for the model, or what it is when the model has no such class.

    ``'w (not a model class: hadronic W contained in the jet, not a whole top; in dataset top)'``.
    """
    if c == signal:
        return f"{c} (signal)"
    if c in background:
        return f"{c} (background)"
    note = CLASS_NOTES.get(c)
    src = f"in dataset{'s' if len(datasets) > 1 else ''} {', '.join(datasets)}" if datasets else None
    parts = "; ".join(p for p in (note, src) if p)
    return f"{c} (not a model class{': ' + parts if parts else ''})"


def plot_roc(h_score: Hist, name: str, sig: str, bkg: Sequence[str], path: str | Path,
             working_points: Sequence[float] = (0.3, 0.5)) -> dict[str, dict[Any, Any]]:
    """1/ε_B against ε_S, inclusive and per pT bin; the inclusive curve's working points marked.

    The marks are :func:`coffea_jetimg.metrics.working_point` at ``working_points`` (the
    summary's R30 / R50), with their 68 % intervals.

    Returns ``{curve label: {"eff_s", "rejection", "auc"}}`` of the curves drawn, and
    ``"working_points": {eff_s: rejection}`` of the marks.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 7))
    edges = h_score.axes[PT].edges
    curves: list[tuple[str, int | None]] = [("inclusive", None)]
    curves += [(f"{edges[k]:.0f}-{edges[k + 1]:.0f} GeV", k) for k in range(len(edges) - 1)]
    drawn: dict[str, dict[Any, Any]] = {}
    for label, k in curves:
        r = score_roc(h_score, sig, bkg, pt_bin=k)
        if r.n_s <= 0 or r.n_b <= 0:
            continue
        ok = (r.eff_b > 0) & (r.eff_s > 0)
        a = metrics.auc(r)
        ax.errorbar(r.eff_s[ok], r.rejection[ok], xerr=r.err_s[ok], yerr=r.rejection_err[ok],
                    label=f"{label} (AUC {a:.3f})", lw=2 if k is None else 1, capsize=0,
                    marker="" if k is None else ".")
        drawn[label] = {"eff_s": r.eff_s[ok], "rejection": r.rejection[ok], "auc": np.float64(a)}
        if k is None:
            marks: dict[float, float] = {}
            for eff in working_points:
                wp = metrics.working_point(r, eff)
                if math.isfinite(wp.rejection):
                    lo, hi = wp.interval
                    yerr = [[wp.rejection - lo], [hi - wp.rejection]] if math.isfinite(hi) else None
                    ax.errorbar([eff], [wp.rejection], yerr=yerr, fmt="*", ms=14, color="black", capsize=3,
                                zorder=5, label=f"1/εB at εS={eff:g}: {wp.rejection:.3g}")
                marks[eff] = wp.rejection
            drawn["working_points"] = marks
    ax.set_yscale("log")
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$" + f" ({sig})")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$" + f" ({'+'.join(bkg)})")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=11, title=name, title_fontsize=12)
    _label(ax)
    _save(fig, path)
    return drawn


def plot_sliced_mass(h_score: Hist, name: str, path: str | Path, low: float = 0.2, high: float = 0.8,
                     signal: str | None = None, background: Sequence[str] = (),
                     datasets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Normalised mass distributions per class: all jets, failing (score < low), passing (>= high).

    The x label is the ``msd`` axis label (soft-drop mass, or plain jet mass where the jets
    have no soft-drop mass); classes the model was not trained on are named as what they are.

    Returns ``{"xlabel", "legend": [texts], "curves": {legend text: normalised counts}}``.
    """
    plt = _plt()
    sm = sliced_mass(h_score, low, high)
    edges, xlabel = sm["edges"], sm["label"]
    lo, hi = sm["low"], sm["high"]
    fig, ax = plt.subplots(figsize=(8, 7))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    curves: dict[str, np.ndarray] = {}
    classes = [c for c in sm if c not in ("edges", "label", "low", "high")]
    for i, c in enumerate(classes):
        d = sm[c]
        if d["all"].sum() <= 0:
            continue
        colour = colours[i % len(colours)]  # one colour per truth class, one line style per slice
        cl = class_label(c, signal, background, (datasets or {}).get(c) if signal is not None else None)
        for key, ls in (("all", "-"), ("fail", ":"), ("pass", "--")):
            tot = d[key].sum()
            if tot > 0:
                # the class's role or description once, on its "all" curve
                text = {"all": f"{cl}, all", "fail": f"{c}, score<{lo:g}", "pass": f"{c}, score≥{hi:g}"}[key]
                text += f" ({tot:.0f} jets)"
                ax.stairs(d[key] / tot, edges, ls=ls, color=colour, lw=2 if key == "all" else 1.5, label=text)
                curves[text] = d[key] / tot
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Fraction of jets")
    ax.legend(fontsize=10, title=name, title_fontsize=12, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    _label(ax)
    _save(fig, path)
    return {"xlabel": xlabel, "legend": list(curves), "curves": curves}


def plot_image(img: Any, title: str, path: str | Path, cmap: str = "viridis", log: bool = False,
               vmin: float | None = None, vmax: float | None = None, jet_axes: bool = True,
               colorbar_label: str | None = None) -> dict[str, Any]:
    """Draw one image channel (or an RGB image).

    ``jet_axes``: ``img`` is (η, φ) as made by ``jet_images``; it is drawn with η across and φ up,
    so that "12 o'clock" of the rotation is up on the page.

    Returns ``{"title", "colorbar_label", "data"}`` (the array drawn).
    """
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
    im = ax.imshow(data, origin="lower", cmap=cmap, norm=norm, vmin=None if log else vmin,
                   vmax=None if log else vmax)
    cb = fig.colorbar(im, ax=ax)
    if colorbar_label:
        cb.set_label(colorbar_label, fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel(r"$\eta'$ pixel" if jet_axes else "pixel column")
    ax.set_ylabel(r"$\phi'$ pixel" if jet_axes else "pixel row")
    _save(fig, path)
    return {"title": title, "colorbar_label": colorbar_label, "data": data}


def plot_confusion(truth: Sequence[str], pred: Sequence[Any], m: np.ndarray, title: str,
                   path: str | Path) -> dict[str, Any]:
    """Row-normalised confusion matrix; returns ``{"title", "matrix"}``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(pred)), [str(p) for p in pred])
    ax.set_yticks(range(len(truth)), list(truth))
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=12)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=13)
    fig.colorbar(im, ax=ax, label="fraction of the truth class")
    _save(fig, path)
    return {"title": title, "matrix": np.asarray(m)}


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def decorrelation_points(summary: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The points of :func:`plot_decorrelation`: per model the summary's working point at ε_S = 0.5.

    Returns
    -------
    points : dict
        ``{model: {"rejection", "interval", "lower_limit", "inv_jsd"}}``: ``rejection`` is the
        table's interpolated 1/ε_B (for ``inf`` the lower limit, with ``lower_limit`` set).
    message : str or None
        Why there is no point at all ("no signal jets", ...), else None.
    """
    points: dict[str, dict[str, Any]] = {}
    reasons: list[Any] = []
    for name, res in (summary.get("models") or {}).items():
        d: Any = res.get("decorrelation") or {}
        r, ij = d.get("rejection"), d.get("inv_jsd")
        if d.get("reason") or "error" in res:
            reasons.append(d.get("reason") or res.get("error"))
            continue
        limit = d.get("rejection_lower_limit")
        if r == "inf" and _finite_number(limit):
            r = float(limit)
        elif not _finite_number(r):
            reasons.append(f"{name}: rejection undefined")
            continue
        if not (_finite_number(ij) and ij > 0 and r > 0):
            reasons.append(f"{name}: JSD undefined")
            continue
        iv = d.get("rejection_interval") or [None, None]
        points[name] = {"rejection": float(r), "interval": iv, "lower_limit": limit if d.get("rejection") == "inf"
                        else None, "inv_jsd": float(ij), "inv_jsd_interval": d.get("inv_jsd_interval")}
    message = None
    if not points:
        uniq = list(dict.fromkeys(str(x) for x in reasons))
        message = "; ".join(uniq) if uniq else "no models"
    return points, message


def plot_decorrelation(summary: dict[str, Any], path: str | Path, eff_s: float = 0.5,
                       groups: dict[str, Sequence[str]] | None = None, title: str | None = None) -> dict[str, Any]:
    """1/JSD against 1/ε_B at ε_S = ``eff_s``, one point per model, with the rejection's interval.

    The rejection is the summary's (the tables'): interpolated at exactly ``eff_s``. A model with
    no background passing is drawn at its lower limit with a right-pointing marker. Up and right is better.
    Without any point the frame says why (e.g. "no signal jets"). ``groups`` (``{label: [model,
    ...]}``, e.g. one decorrelation method at several λ) joins their points by a line, in order;
    a point's ``inv_jsd_interval`` (:func:`~coffea_jetimg.studies.decorrelation` with
    ``n_boot``) is drawn as a vertical bar.

    Returns ``{"points": decorrelation_points(...)[0], "message": str or None}``.
    """
    plt = _plt()
    from matplotlib.ticker import FuncFormatter

    points, message = decorrelation_points(summary)
    fig, ax = plt.subplots(figsize=(8, 7))
    # labels alternate above / below in order of 1/JSD: neighbouring models often sit close together
    rank = {n: k for k, n in enumerate(sorted(points, key=lambda n: -points[n]["inv_jsd"]))}
    for label, members in (groups or {}).items():
        pts = [points[m] for m in members if m in points]
        if len(pts) > 1:
            ax.plot([p["rejection"] for p in pts], [p["inv_jsd"] for p in pts], "-", color="grey", alpha=0.6, lw=1.5)
            ax.annotate(label, (pts[-1]["rejection"], pts[-1]["inv_jsd"]), textcoords="offset points",
                        xytext=(-10, 14), fontsize=12, color="grey", fontweight="bold")
    for name, p in points.items():
        r, ij = p["rejection"], p["inv_jsd"]
        text = name
        if p["lower_limit"] is not None:
            ax.scatter([r], [ij], s=120, marker=">")
            text = f"{name} (1/εB > {r:.0f})"
        else:
            lo, hi = p["interval"]
            xerr = yerr = None
            if _finite_number(lo) and _finite_number(hi):
                xerr = [[max(r - lo, 0.0)], [max(hi - r, 0.0)]]
            jlo, jhi = p.get("inv_jsd_interval") or (None, None)
            if _finite_number(jlo) and _finite_number(jhi):
                yerr = [[max(ij - jlo, 0.0)], [max(jhi - ij, 0.0)]]
            ax.errorbar([r], [ij], xerr=xerr, yerr=yerr, fmt="o", ms=8, capsize=3)
        ax.annotate(text, (r, ij), textcoords="offset points", xytext=(6, 6 if rank[name] % 2 == 0 else -18),
                    fontsize=12)
    ax.set_xlabel(r"Background rejection $1/\varepsilon_B$ at $\varepsilon_S$ = " + f"{eff_s:g}")
    ax.set_ylabel("1 / JSD (background mass, pass vs fail)")
    if points:
        xs = [p["rejection"] for p in points.values()]
        xs += [v for p in points.values() for v in p["interval"] if _finite_number(v) and v > 0]
        ys = [p["inv_jsd"] for p in points.values()]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 2)
        ax.set_ylim(min(ys) / 2, max(ys) * 2)
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(plain)
            # label the 2x and 5x minor ticks too: a decade rarely fits on these axes
            axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
        ax.text(0.02, 0.02, "bars: 68% intervals", transform=ax.transAxes, fontsize=10)
        if title:
            ax.set_title(title, fontsize=10, pad=26)  # above the experiment label
    else:
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=16, wrap=True)
        ax.set_xticks([])
        ax.set_yticks([])
    _label(ax)
    _save(fig, path)
    return {"points": points, "message": message}
