"""Fit templates from the tagging histograms: the TH1s combine, cabinetry and pyhf read.

:func:`make_templates` turns the per-dataset output of
:class:`~coffea_jetimg.processors.JetTaggingProcessor` into one 1D histogram per region, process and
systematic variation, named the way combine's ``shapes`` lines and cabinetry's ``RegionPath`` /
``SamplePath`` / ``VariationPath`` expect:

- ``{region}/{process}``: the nominal template (MC datasets of one process summed, each scaled to
  ``xsec × lumi / Σw`` when ``lumi`` and the dataset's ``xsec`` are given);
- ``{region}/{process}_{systematic}Up`` / ``...Down``: a variation (``score_syst``);
- ``{region}/data_obs``: the sum of the data datasets (unscaled, nominal).

Observables: ``msd`` (the jet mass) in regions ``fail`` / ``pass`` at one working point of a
tagger's score (``score < wp`` / ``score ≥ wp``; several working points give ``score0``, ``score1``,
... from low to high score: a score-binned mass), or ``score`` in one region ``all``. Working points
must lie on score-bin edges. Values and variances follow the Weight storage of the histograms
(Σw, Σw²), scaled with the dataset's normalisation; flow bins are left out (a fit uses the
observable's range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..axes import CLASS, MSD, SCORE, SYSTEMATIC

if TYPE_CHECKING:  # pragma: no cover
    from hist import Hist

__all__ = ["make_templates", "write_templates", "read_templates", "template_label", "dataset_scales", "DATA_OBS",
           "OBSERVABLES"]

DATA_OBS = "data_obs"
OBSERVABLES = ("msd", "score")


def dataset_scales(output: Mapping[str, Any], datasets: Mapping[str, Mapping[str, Any]] | None = None,
                   lumi: float | None = None) -> dict[str, dict[str, Any]]:
    """Per dataset: ``process``, ``is_mc``, ``xsec`` (pb), ``sumw`` (Σ generator weights of all its
    events, from the cutflow) and ``scale`` (``xsec × lumi / sumw`` for MC with ``lumi`` and
    ``xsec``; 1 otherwise). ``datasets`` holds the fileset's metadata per dataset (``process``,
    ``is_mc``, ``xsec``); without ``is_mc`` a dataset is MC when its cutflow counted MC events."""
    out: dict[str, dict[str, Any]] = {}
    for ds, d in output.items():
        if not isinstance(d, dict) or "cutflow" not in d:
            continue
        meta = dict((datasets or {}).get(ds, {}))
        cf = d["cutflow"]
        mc = bool(meta["is_mc"]) if "is_mc" in meta else float(cf.get("events_mc", 0)) > 0
        sumw = float(cf.get("sumw", cf.get("events", 0)))
        xsec = meta.get("xsec")
        scale = 1.0
        if mc and lumi is not None and xsec is not None:
            if sumw == 0:
                raise ValueError(f"dataset {ds!r}: the sum of weights is 0, it cannot be normalised to xsec × lumi")
            scale = float(xsec) * float(lumi) / sumw
        out[ds] = {"process": str(meta.get("process", ds)), "is_mc": mc, "xsec": xsec, "sumw": sumw,
                   "sumw2": float(cf.get("sumw2", sumw)), "lumi": lumi if mc else None, "scale": scale}
    return out


def _score_slices(ax: Any, wps: Sequence[float]) -> list[tuple[str, slice]]:
    edges = np.asarray(ax.edges)
    idx = []
    for wp in sorted(float(w) for w in wps):
        hits = np.flatnonzero(np.isclose(edges, wp, rtol=0, atol=1e-9))
        if not len(hits) or hits[0] in (0, len(edges) - 1):
            raise ValueError(f"working point {wp} is not an inner edge of the score bins "
                             f"({len(edges) - 1} bins, edges {np.round(edges, 4).tolist()[:6]}...); "
                             "choose one on an edge or change --score-bins")
        idx.append(int(hits[0]))
    bounds = [0, *idx, len(edges) - 1]
    if len(idx) == 1:
        names = ["fail", "pass"]
    else:
        names = [f"score{i}" for i in range(len(bounds) - 1)]
    return [(n, slice(lo, hi)) for n, lo, hi in zip(names, bounds[:-1], bounds[1:])]


def _regions(h: Hist, observable: str, wps: Sequence[float]) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``[(region, edges, values, variances)]`` of a ``class × score × ... × msd`` hist (summed over
    classes and the other axes; flow bins of the observable left out)."""
    names = [ax.name for ax in h.axes]
    if observable == "score":
        if wps:
            raise ValueError("working points make regions of the mass observable; the score observable has one region")
        p = h.project(SCORE)
        v: Any = p.view(flow=False)
        return [("all", np.asarray(p.axes[0].edges), np.asarray(v["value"]), np.asarray(v["variance"]))]
    if observable != "msd":
        raise ValueError(f"observable {observable!r}: expected one of {list(OBSERVABLES)}")
    if not wps:
        raise ValueError("the msd observable needs a working point (--template-wp) to make pass/fail regions")
    if MSD not in names:
        raise ValueError(f"the histogram has no {MSD!r} axis (axes {names})")
    p2 = h.project(SCORE, MSD)
    v2: Any = p2.view(flow=True)  # score has no flow bins; msd may
    msd_ax = p2.axes[1]
    lo = 1 if getattr(msd_ax.traits, "underflow", False) else 0
    cut = slice(lo, lo + len(msd_ax))
    out = []
    for region, sl in _score_slices(p2.axes[0], wps):
        out.append((region, np.asarray(msd_ax.edges), np.asarray(v2["value"][sl, cut].sum(axis=0)),
                    np.asarray(v2["variance"][sl, cut].sum(axis=0))))
    return out


def make_templates(output: Mapping[str, Any], model: str, *, observable: str = "msd", wps: Sequence[float] = (),
                   lumi: float | None = None, datasets: Mapping[str, Mapping[str, Any]] | None = None,
                   classes: Sequence[str] | None = None) -> dict[str, Hist]:
    """``{name: 1D Weight hist}`` templates of ``model`` (see the module doc for names and regions).

    Parameters
    ----------
    output : dict
        The processor output, ``{dataset: {...}}`` (not merged: each dataset has its own scale).
    model : str
        The tagger whose score defines the regions (or is the observable).
    observable : str
        ``"msd"`` or ``"score"``.
    wps : sequence of float
        Working points on the score (bin edges).
    lumi : float, optional
        Integrated luminosity in pb⁻¹: MC scaled to ``xsec × lumi / Σw``.
    datasets : dict, optional
        Per dataset ``process`` (default: the dataset name), ``is_mc`` and ``xsec`` (pb).
    classes : sequence of str, optional
        Only jets of these truth classes (default: all).
    """
    import hist

    scales = dataset_scales(output, datasets, lumi)
    acc: dict[str, list[Any]] = {}  # name -> [edges, values, variances]
    order: list[str] = []
    for ds, info in scales.items():
        d = output[ds]
        h = (d.get("score_syst") or {}).get(model) if info["is_mc"] else None
        if h is None:
            h = (d.get("score") or {}).get(model)
        if h is None:
            raise ValueError(f"dataset {ds!r} has no score histogram of model {model!r} "
                             f"(models: {sorted((d.get('score') or {}))})")
        if classes is not None:
            keep = [c for c in h.axes[CLASS] if c in set(classes)]
            h = h[{CLASS: keep}] if keep else h[{CLASS: []}]
        axes = [ax.name for ax in h.axes]
        systs = list(h.axes[SYSTEMATIC]) if SYSTEMATIC in axes else ["nominal"]
        for syst in systs:
            hs = h[{SYSTEMATIC: syst}] if SYSTEMATIC in axes else h
            proc = DATA_OBS if not info["is_mc"] else info["process"]
            if not info["is_mc"] and syst != "nominal":
                continue
            for region, edges, val, var in _regions(hs, observable, wps):
                name = f"{region}/{proc}" if syst == "nominal" else f"{region}/{proc}_{syst}"
                s = info["scale"]
                if name not in acc:
                    acc[name] = [edges, np.zeros(len(edges) - 1), np.zeros(len(edges) - 1)]
                    order.append(name)
                acc[name][1] = acc[name][1] + val * s
                acc[name][2] = acc[name][2] + var * s * s
    label = "jet mass [GeV]" if observable == "msd" else f"{model} score"
    out: dict[str, Hist] = {}
    for name in order:
        edges, val, var = acc[name]
        t = hist.Hist(hist.axis.Variable(edges, name=observable, label=label, flow=False),
                      storage=hist.storage.Weight())
        tv: Any = t.view(flow=False)
        tv["value"], tv["variance"] = val, var
        out[name] = t
    return out


def write_templates(templates: Mapping[str, Hist], path: str | Path) -> list[str]:
    """Write the templates as TH1Ds (uproot); returns the names written."""
    import uproot

    with uproot.recreate(str(path)) as f:
        for name, h in templates.items():
            f[name] = h
    return list(templates)


def read_templates(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{name: (edges, values, variances)}`` of the templates in a ROOT file: its TH1s named
    ``region/process`` (one directory deep; a ``hists.root`` of ``run`` also holds deeper
    per-model projections, which are not templates)."""
    import uproot

    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    with uproot.open(str(path)) as f:
        for key, cls in f.classnames(recursive=True, cycle=False).items():
            if not cls.startswith("TH1") or key.count("/") != 1:
                continue
            h = f[key]
            out[key] = (np.asarray(h.axis().edges()), np.asarray(h.values(), np.float64),
                        np.asarray(h.variances(), np.float64))
    return out


def template_label(path: str | Path) -> str:
    """The observable's axis title of the templates in a ROOT file (``""`` if none)."""
    import uproot

    with uproot.open(str(path)) as f:
        for key, cls in f.classnames(recursive=True, cycle=False).items():
            if cls.startswith("TH1") and key.count("/") == 1:
                return str(f[key].axis().member("fTitle") or "")
    return ""
