"""Report orchestration: the summary numbers per model and every study written to a folder.

:func:`summarize` turns merged histograms into numbers (AUC, 1/ε_B at ε_S = 0.3 and 0.5 with
intervals, per pT bin, mass decorrelation); :func:`run_studies` writes the histograms, the plots
and ``summary.json``. Every rejection comes from :func:`coffea_jetimg.metrics.working_point`, so
the tables and the plots show the same number.

In ``summary.json`` a number that is infinite is the string ``"inf"`` (JSON has no infinity);
an infinite rejection comes with ``…_lower_limit``, printed as "> N" (:func:`format_rejection`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import metrics
from ..axes import CLASS, PT, SCORE
from .templates import dataset_scales, make_templates
from .files import save_hists, write_json, write_root
from .hists import (average_images, channel_meta, classes_by_dataset, confusion_matrix, decorrelation,
                    merge_datasets, pearson_maps, pick_classes, score_roc)
from .hists import _class_count, _class_total, _values_noflow
from .plots import plot_confusion, plot_decorrelation, plot_image, plot_roc, plot_sliced_mass

if TYPE_CHECKING:  # pragma: no cover
    from hist import Hist

__all__ = [
    "WORKING_POINTS",
    "summarize",
    "run_studies",
    "save_event_outputs",
    "format_rejection",
    "image_channel_names",
    "image_colorbar_label",
]

#: Signal efficiencies of the summary's rejections (keys ``R30``, ``R50``).
WORKING_POINTS: tuple[float, ...] = (0.3, 0.5)


def _num(x: Any) -> Any:
    """JSON-safe number: NaN → None, ±inf → "inf"/"-inf"; lists element-wise."""
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return [_num(v) for v in x]
    x = float(x)
    return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def _key(eff: float) -> str:
    return f"R{round(100 * eff):d}"


def _wp_json(wp: metrics.WorkingPoint) -> dict:
    return {"eff_s": wp.eff_s, "eff_b": _num(wp.eff_b), "rejection": _num(wp.rejection),
            "interval": _num(list(wp.interval)), "lower_limit": _num(wp.lower_limit),
            "threshold": _num(wp.threshold)}


def _rejections(roc: metrics.Roc) -> dict:
    """``R30``/``R50`` (+ ``_lower_limit`` when infinite) and ``working_points`` of a ROC."""
    out: dict = {"working_points": {}}
    for eff in WORKING_POINTS:
        wp = metrics.working_point(roc, eff)
        out[_key(eff)] = _num(wp.rejection)
        if wp.lower_limit is not None:
            out[f"{_key(eff)}_lower_limit"] = _num(wp.lower_limit)
        out["working_points"][f"{eff:g}"] = _wp_json(wp)
    return out


def format_rejection(value: Any, lower_limit: Any = None, interval: Sequence | None = None) -> str:
    """Text of a rejection from ``summary.json``: ``'30.7 [27.1, 35.0]'``, ``'> 800'`` or ``'–'``.

    Parameters
    ----------
    value : float, "inf" or None
    lower_limit : float, optional
        Printed as "> N" when ``value`` is infinite (no background jet passing).
    interval : (lo, hi), optional
        Appended in brackets when both bounds are finite numbers.
    """
    if value == "inf" or (isinstance(value, float) and math.isinf(value)):
        return f"> {float(lower_limit):.0f}" if isinstance(lower_limit, (int, float)) else "∞ (no background passing)"
    if not isinstance(value, (int, float)):
        return "–"
    text = f"{value:.4g}"
    if interval and all(isinstance(v, (int, float)) and math.isfinite(v) for v in interval):
        text += f" [{interval[0]:.3g}, {interval[1]:.3g}]"
    return text


def _model_meta(h_score: Hist) -> dict[str, Any]:
    md = h_score.axes[SCORE].metadata
    return md if isinstance(md, dict) else {}


def summarize(merged: dict, signal: str | None = None, background: str | Sequence[str] | None = None) -> dict:
    """Numbers per model: AUC, 1/ε_B at ε_S = 0.3/0.5 (inclusive and per pT bin), decorrelation.

    Parameters
    ----------
    merged : dict
        :func:`~coffea_jetimg.studies.hists.merge_datasets` of the processor output.
    signal, background : optional
        Class names; by default the model's signal class and its other classes.

    Returns
    -------
    dict
        ``{"cutflow", "models": {name: {...}}}``. A model whose signal class has no jets in
        the histograms gets ``n_signal = 0`` and ``reason = "no signal jets"`` (and no
        numbers); one whose classes cannot be resolved gets ``error``.
    """
    out: dict = {"cutflow": merged.get("cutflow", {}), "models": {}}
    for name, h in (merged.get("score") or {}).items():
        meta = _model_meta(h)
        sig_name = signal or meta.get("signal_class")
        cats = list(h.axes[CLASS])
        lower = [c.lower() for c in cats]
        known = [c.lower() for c in meta.get("class_names") or []]
        if sig_name is not None and str(sig_name).lower() not in lower and str(sig_name).lower() in known:
            # the model's signal class has no jets in these histograms (e.g. a background-only run)
            bkg = [c for c in cats if c.lower() in known] or cats
            out["models"][name] = {"signal": str(sig_name), "background": bkg, "n_signal": 0.0,
                                   "n_background": float(sum(_class_total(h, b) for b in bkg)), "auc": None,
                                   "R30": None, "R50": None, "pt_bins": [], "reason": "no signal jets",
                                   "decorrelation": {"eff_s": 0.5, "reason": "no signal jets"}}
            continue
        try:
            sig, bkg = pick_classes(cats, sig_name, meta.get("class_names"), background)
        except KeyError as err:
            out["models"][name] = {"error": str(err).strip("'\"")}
            continue
        roc = score_roc(h, sig, bkg)
        res: dict = {"signal": sig, "background": bkg, "n_signal": roc.n_s, "n_background": roc.n_b,
                     "auc": _num(metrics.auc(roc)), **_rejections(roc), "pt_bins": []}
        if roc.n_s <= 0:
            res["reason"] = "no signal jets"
        elif roc.n_b <= 0:
            res["reason"] = "no background jets"
        edges = h.axes[PT].edges
        for k in range(len(edges) - 1):
            r = score_roc(h, sig, bkg, pt_bin=k)
            if r.n_s <= 0 or r.n_b <= 0:
                continue
            res["pt_bins"].append({"pt": [float(edges[k]), float(edges[k + 1])], "n_signal": r.n_s,
                                   "n_background": r.n_b, "auc": _num(metrics.auc(r)), **_rejections(r)})
        res["decorrelation"] = {k: _num(v) for k, v in decorrelation(h, sig, bkg, 0.5).items()}
        out["models"][name] = res
    return out


# ----------------------------------------------------------------------------- images

_INTENSITY = {"pt": r"$p_T$", "et": r"$E_T$", "e": "$E$"}
_COUNTS = ("count", "charged_count")


def _image_spec(key: str, model_info: dict | None) -> dict:
    """The image spec of image ``key`` from the model info (``image_spec``, or the artifact's spec.json)."""
    for info in (model_info or {}).values():
        if info.get("image") != key or info.get("input_kind") != "image":
            continue
        if isinstance(info.get("image_spec"), dict):
            return info["image_spec"]
        if info.get("artifact"):
            try:
                from ..artifact import load_artifact

                spec = load_artifact(info["artifact"]).input_spec.get("image_spec")
            except Exception:  # noqa: BLE001 - a moved artifact only costs the channel names
                continue
            if isinstance(spec, dict):
                return spec
    return {}


def _image_models(key: str, model_info: dict | None) -> list[str]:
    return [m for m, info in (model_info or {}).items()
            if info.get("image") == key and info.get("input_kind") == "image"]


def image_channel_names(h_image: Hist, key: str, model_info: dict | None = None) -> list[str]:
    """Names of the image's channels: the ``channel`` axis metadata, the models' image spec, else ``channel k``."""
    n = len(h_image.axes["channel"])
    names = channel_meta(h_image).get("channels") or _image_spec(key, model_info).get("channels")
    if isinstance(names, str):
        names = [names]
    if names and len(names) == n:
        return [str(c) for c in names]
    return [f"channel {k}" for k in range(n)]


def image_colorbar_label(h_image: Hist, key: str, channel: str, model_info: dict | None = None) -> str:
    """What an average-image pixel is, from the image spec's ``intensity`` and ``normalize``."""
    spec = {**_image_spec(key, model_info), **channel_meta(h_image)}
    norm, inten = spec.get("normalize"), _INTENSITY.get(spec.get("intensity", "pt"), r"$p_T$")
    what = "constituent count" if channel in _COUNTS else inten
    if norm == "sum":
        return f"Mean {what} fraction per pixel (each channel sums to 1)"
    if norm == "sum_all":
        return f"Mean {what} fraction per pixel (all channels sum to 1)"
    if norm == "max":
        return "Mean pixel value (brightest pixel of each jet = 1)"
    if norm == "none":
        return f"Mean {what} per pixel" + ("" if channel in _COUNTS else " [GeV]")
    return "Mean pixel value (the model's input)"


# ----------------------------------------------------------------------------- orchestration

def run_studies(output: dict, outdir: str | Path, signal: str | None = None,
                background: str | Sequence[str] | None = None, model_info: dict | None = None,
                extra_summary: dict | None = None, make_plots: bool = True,
                templates: dict | None = None) -> dict:
    """Write every study of a :class:`JetTaggingProcessor` output to ``outdir``.

    Writes ``hists.coffea``, ``hists.root``, ``summary.json`` and PNGs under ``plots/``.

    Parameters
    ----------
    output : dict
        ``{dataset: {...}}`` as the processor returns it.
    outdir : path
    signal, background : optional
        Class names (default: each model's own).
    model_info : dict, optional
        :meth:`JetTaggingProcessor.model_info` (image keys, channel names via the artifacts).
    extra_summary : dict, optional
        Merged into the summary.
    make_plots : bool
    templates : dict, optional
        Fit templates to write into ``hists.root``: keywords of
        :func:`~coffea_jetimg.studies.templates.make_templates` (``model``, ``observable``, ``wps``,
        ``lumi``, ``datasets``: the fileset's metadata per dataset).

    Returns
    -------
    dict
        The summary.
    """
    outdir = Path(outdir)
    plots = outdir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    save_hists(output, outdir / "hists.coffea")
    # the taggers' figures (ROC, rejections, plots) are MC truth: data datasets (metadata
    # is_mc false, or no MC events counted) stay out of them when there is MC beside them
    meta_all = (templates or {}).get("datasets") or {}
    is_data = {ds for ds, info in dataset_scales(output, meta_all).items() if not info["is_mc"]}
    mc_only = {ds: v for ds, v in output.items() if ds not in is_data}
    merged = merge_datasets(mc_only if mc_only and is_data else output)
    summary = summarize(merged, signal, background)
    if mc_only and is_data:
        summary["data_datasets"] = sorted(is_data)
    summary["datasets"] = {ds: {"cutflow": v.get("cutflow", {})} for ds, v in output.items() if isinstance(v, dict)}
    tdict = None
    if templates is not None:
        meta = templates.get("datasets") or {}
        for ds, info in dataset_scales(output, meta, templates.get("lumi")).items():
            summary["datasets"].setdefault(ds, {}).update(info)
        tdict = make_templates(output, templates["model"], observable=templates.get("observable", "msd"),
                               wps=templates.get("wps", ()), lumi=templates.get("lumi"), datasets=meta)
        summary["templates"] = {k: templates.get(k) for k in ("model", "observable", "wps", "lumi")}
        summary["templates"]["names"] = list(tdict)
    if model_info:
        summary["model_info"] = model_info
    if extra_summary:
        summary.update(extra_summary)
    files: list[Path] = []
    if make_plots:
        files = _plots(merged, summary, plots, model_info, classes_by_dataset(output))
    summary["root_objects"] = write_root(merged, outdir / "hists.root", templates=tdict)
    summary["plots"] = [str(p.relative_to(outdir)) for p in files]
    write_json(summary, outdir / "summary.json")
    return summary


def _plots(merged: dict, summary: dict, plots: Path, model_info: dict | None, by_dataset: dict) -> list[Path]:
    files: list[Path] = []
    with warnings.catch_warnings():
        # matplotlib/mplhep layout and font chatter only; the package's own warnings are raised before
        warnings.filterwarnings("ignore", module="matplotlib")
        warnings.filterwarnings("ignore", module="mplhep")
        for name, h in (merged.get("score") or {}).items():
            res = summary["models"].get(name, {})
            if "signal" in res and res["n_signal"] > 0 and res["n_background"] > 0:
                p = plots / f"roc_{name}.png"
                plot_roc(h, name, res["signal"], res["background"], p)
                files.append(p)
            p = plots / f"sliced_mass_{name}.png"
            plot_sliced_mass(h, name, p, signal=res.get("signal"), background=res.get("background") or (),
                             datasets=by_dataset)
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
            chans = image_channel_names(h, key, model_info)
            users = _image_models(key, model_info)
            what = f"{'/'.join(users)} input" if users else "jet image"
            for c, img in average_images(h, njets).items():
                if np.all(~np.isfinite(img)):
                    continue
                for ch in range(img.shape[0]):
                    p = plots / f"average_{key}_{c}_ch{ch}.png"
                    plot_image(img[ch], f"Average {what}, {c} jets, channel '{chans[ch]}'", p, log=True,
                               colorbar_label=image_colorbar_label(h, key, chans[ch], model_info))
                    files.append(p)
        for model, hxy in (merged.get("pixel_xy") or {}).items():
            info = (model_info or {}).get(model, {})
            key = info.get("image") or next(iter(merged.get("image") or {}), None)
            if key is None or key not in (merged.get("image") or {}) or njets is None:
                continue
            h_img = merged["image"][key]
            chans = image_channel_names(h_img, key, model_info)
            users = _image_models(key, model_info)
            src = f" ({'/'.join(users)} input)" if users and model not in users else ""
            r = pearson_maps(h_img, hxy, merged["score_moments"][model], njets,
                             h_x2=(merged.get("image_x2") or {}).get(key))
            for ch in range(r.shape[0]):
                p = plots / f"pearson_{model}_ch{ch}.png"
                plot_image(r[ch], f"Pearson r(pixel, {model} score), channel '{chans[ch]}'{src}", p, cmap="RdBu_r",
                           vmin=-1, vmax=1, colorbar_label=f"Pearson r(pixel intensity, {model} score)")
                files.append(p)
    return files


def save_event_outputs(output: dict, outdir: str | Path, extra_summary: dict | None = None) -> dict:
    """Outputs of :class:`EventImageProcessor`: hists, average images, confusion matrix, summary."""
    outdir = Path(outdir)
    plots = outdir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    save_hists(output, outdir / "hists.coffea")
    merged = merge_datasets(output)
    summary: dict = {"cutflow": merged.get("cutflow", {}),
                     "datasets": {ds: {"cutflow": v.get("cutflow", {})} for ds, v in output.items()}}
    files: list[Path] = []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="matplotlib")
        warnings.filterwarnings("ignore", module="mplhep")
        ink, nev = merged.get("ink"), merged.get("nevents")
        if ink is not None and nev is not None:
            vals = _values_noflow(ink)
            for i, c in enumerate(ink.axes[CLASS]):
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
    write_json(summary, outdir / "summary.json")
    return summary
