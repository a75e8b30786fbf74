"""File output of the studies: coffea's native format, a ROOT file for fits, JSON.

``hists.coffea`` (``coffea.util.save``: lz4-compressed cloudpickle) keeps the processor output
as it is; ``hists.root`` (uproot) holds per class the 1D projection on every axis of the score
histograms, the score against every other axis, the sliced masses and the image sums; the ROOT
export follows the histograms' axes, so a new axis needs no edit here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..axes import CHANNEL, CLASS, SCORE
from .hists import sliced_mass

if TYPE_CHECKING:  # pragma: no cover
    from hist import Hist

__all__ = ["save_hists", "load_hists", "write_root", "write_json", "json_default"]


def save_hists(output: Any, path: str | Path) -> None:
    """The processor output in coffea's native format (``coffea.util.save``)."""
    from coffea.util import save

    save(output, str(path))


def load_hists(path: str | Path) -> Any:
    """Read what :func:`save_hists` wrote (``coffea.util.load``: a pickle, so only files you trust)."""
    from coffea.util import load

    return load(str(path))


def _to_weight_hist(h: Hist) -> Hist:
    """A copy with Weight storage (uproot writes those); unweighted counts get Poisson variances."""
    import hist

    v: Any = h.view(flow=True)
    out = hist.Hist(*h.axes, storage=hist.storage.Weight())
    ov: Any = out.view(flow=True)
    if v.dtype.names:
        ov["value"][...] = v["value"]
        ov["variance"][...] = v["variance"]
    else:
        ov["value"][...] = v
        ov["variance"][...] = v
    return out


def _safe(s: Any) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in str(s))


def write_root(merged: dict[str, Any], path: str | Path, templates: dict[str, Any] | None = None) -> list[str]:
    """1D/2D histograms per class for fits, with uproot.

    Per model and class ``{model}/{class}/``: ``{axis}`` for every axis of the score histogram,
    ``score_vs_{axis}`` for every axis but ``score``, ``msd_pass`` / ``msd_fail`` (score ≥ 0.8 /
    < 0.2); per image ``images/{key}/{class}_ch{k}_sum``; and ``cutflow``. ``templates``
    (:func:`~coffea_jetimg.studies.templates.make_templates`) are written as they are named,
    ``{region}/{process}[_{syst}Up|Down]`` one directory deep, for combine and cabinetry.

    Returns
    -------
    list of str
        The names written.
    """
    import uproot

    names: list[str] = []
    with uproot.recreate(str(path)) as f:
        for model, h in (merged.get("score") or {}).items():
            axes = [ax.name for ax in h.axes if ax.name != CLASS]
            sm = sliced_mass(h)
            for c in h.axes[CLASS]:
                base = f"{_safe(model)}/{_safe(c)}"
                sub = h[{CLASS: c}]
                objs = [(a, (a,)) for a in axes] + [(f"{SCORE}_vs_{a}", (SCORE, a)) for a in axes if a != SCORE]
                for key, proj in objs:
                    f[f"{base}/{key}"] = _to_weight_hist(sub.project(*proj))
                    names.append(f"{base}/{key}")
                for key in ("pass", "fail"):
                    f[f"{base}/msd_{key}"] = (np.asarray(sm[c][key], np.float64), sm["edges"])
                    names.append(f"{base}/msd_{key}")
        for key, h in (merged.get("image") or {}).items():
            for c in h.axes[CLASS]:
                for ch in range(len(h.axes[CHANNEL])):
                    name = f"images/{_safe(key)}/{_safe(c)}_ch{ch}_sum"
                    f[name] = _to_weight_hist(h[{CLASS: c, CHANNEL: ch}])
                    names.append(name)
        for name, h in (templates or {}).items():
            f[name] = h
            names.append(name)
        cf = merged.get("cutflow") or {}
        if cf:
            vals = np.array([float(v) for v in cf.values()])
            f["cutflow"] = (vals, np.arange(len(vals) + 1, dtype=np.float64))
            names.append("cutflow")
    return names


def json_default(o: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays as Python numbers and lists."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def write_json(obj: Any, path: str | Path) -> None:
    """Indented JSON with numpy values converted (:func:`json_default`)."""
    Path(path).write_text(json.dumps(obj, indent=2, default=json_default) + "\n")
