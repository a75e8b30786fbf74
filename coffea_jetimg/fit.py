"""A binned profile-likelihood fit of the templates: pyhf's HistFactory, minimised by iminuit.

:func:`build_workspace` makes a HistFactory workspace (pyhf JSON) from the templates that
:func:`coffea_jetimg.studies.templates.make_templates` makes (or that a ``hists.root`` holds):

- one channel per region, one sample per process, ``data_obs`` the observations;
- the signal process scaled by the parameter of interest ``mu`` (a ``normfactor``);
- optionally free normalisations of background processes (``norm_<process>``);
- every ``<process>_<syst>Up``/``Down`` pair a ``histosys`` named ``<syst>`` (shared by the
  processes that have it: one nuisance per source, correlated across regions), pulled with a unit
  Gaussian constraint;
- the MC statistical uncertainty of each bin (Barlow–Beeston lite: ``staterror``) from the variances.

:func:`fit` returns μ̂, its uncertainty and every nuisance parameter's pull; :func:`plot_fit` the
pre- and post-fit distributions. The workspace is plain pyhf JSON (:func:`save_workspace`), so
cabinetry or ``pyhf`` on the command line read it as well. pyhf and iminuit do the statistics; this
module only translates the templates' names into a workspace (cabinetry would ask for a config of
paths first: the templates are already named the way it expects).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import JetImgError
from .studies.templates import DATA_OBS, read_templates

__all__ = ["FitError", "FitResult", "build_workspace", "fit", "fit_templates", "plot_fit", "save_workspace",
           "templates_from_hists", "toys"]

_DIRS = ("Up", "Down")


class FitError(JetImgError):
    """The templates cannot make a fit (names the region, process or variation)."""


Templates = Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # name -> (edges, values, variances)


def templates_from_hists(hists: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``{name: hist}`` (as :func:`~coffea_jetimg.studies.templates.make_templates` returns) →
    ``{name: (edges, values, variances)}``."""
    out = {}
    for name, h in hists.items():
        v: Any = h.view(flow=False)
        out[name] = (np.asarray(h.axes[0].edges), np.asarray(v["value"], np.float64),
                     np.asarray(v["variance"], np.float64))
    return out


def _parse(templates: Templates) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{region: {"data": (edges, v, var) | None, "nominal": {proc: (v, var)}, "syst": {proc: {syst: {dir: v}}}}}``."""
    regions: dict[str, dict[str, Any]] = {}
    systs: list[str] = []
    names = list(templates)
    for name in names:
        region, _, rest = name.rpartition("/")
        if not region:
            raise FitError(f"template {name!r}: expected REGION/PROCESS[_SYSTUp|Down]")
        regions.setdefault(region, {"data": None, "nominal": {}, "syst": {}, "edges": None})
    for name in names:
        region, _, rest = name.rpartition("/")
        r = regions[region]
        edges, v, var = templates[name]
        if r["edges"] is None:
            r["edges"] = np.asarray(edges)
        elif len(r["edges"]) != len(edges) or not np.allclose(r["edges"], edges):
            raise FitError(f"template {name!r}: its binning differs from the other templates of region {region!r}")
        if rest == DATA_OBS:
            r["data"] = np.asarray(v)
            continue
        if "_" in rest and rest.endswith(_DIRS):
            proc, _, syst = rest.rpartition("_")
            if proc in (n.rpartition("/")[2] for n in names if n.startswith(region + "/")):
                d = "Up" if syst.endswith("Up") else "Down"
                sname = syst[: -len(d)]
                r["syst"].setdefault(proc, {}).setdefault(sname, {})[d] = np.asarray(v)
                if sname not in systs:
                    systs.append(sname)
                continue
        r["nominal"][rest] = (np.asarray(v), np.asarray(var))
    for region, r in regions.items():
        if r["data"] is None:
            raise FitError(f"region {region!r} has no {DATA_OBS!r} template: nothing to fit")
        if not r["nominal"]:
            raise FitError(f"region {region!r} has no process templates")
        for proc, ss in r["syst"].items():
            for sname, dirs in ss.items():
                if set(dirs) != set(_DIRS):
                    raise FitError(f"region {region!r}, process {proc!r}: variation {sname!r} has only {sorted(dirs)}")
    return regions, systs


def build_workspace(templates: Templates, signal: str | Sequence[str], free_norms: Sequence[str] = (),
                    stat_errors: bool = True, mu_bounds: tuple[float, float] = (0.0, 50.0),
                    min_mc_events: float = 10.0) -> dict[str, Any]:
    """A pyhf workspace (JSON dict) of the templates; see the module doc.

    Bins where no process predicts anything (nor the data show anything) are left out of the
    channel: a bin with zero prediction has no likelihood. In a bin where a sample's template
    holds fewer than ``min_mc_events`` effective MC events ((Σw)²/Σw²), its
    variations are pruned to the nominal there: their difference is MC noise (the bin's MC
    statistical uncertainty covers it), and a variation that empties such a bin would stop the
    nuisance at the value where that bin's yield reaches zero (see :func:`_histosys_bounds`).

    Raises
    ------
    FitError
        No ``data_obs``, a signal process absent from every region, a variation without both
        directions, templates of one region with different binnings.
    """
    regions, _ = _parse(templates)
    signals = [signal] if isinstance(signal, str) else list(signal)
    procs = {p for r in regions.values() for p in r["nominal"]}
    missing = [s for s in signals if s not in procs]
    if missing:
        raise FitError(f"signal process(es) {missing} not among the templates' processes {sorted(procs)}")
    bad = [b for b in free_norms if b not in procs]
    if bad:
        raise FitError(f"--free-norm {bad}: not among the templates' processes {sorted(procs)}")
    channels, observations = [], []
    for region, r in regions.items():
        total = sum(v for v, _ in r["nominal"].values())
        keep = (total > 0) | (r["data"] > 0)
        keep &= total > 0  # a bin with data but no prediction cannot be fitted either
        if not keep.any():
            raise FitError(f"region {region!r}: every bin has zero prediction")
        samples = []
        for proc, (v, var) in r["nominal"].items():
            mods: list[dict[str, Any]] = []
            if proc in signals:
                mods.append({"name": "mu", "type": "normfactor", "data": None})
            if proc in free_norms:
                mods.append({"name": f"norm_{proc}", "type": "normfactor", "data": None})
            with np.errstate(invalid="ignore", divide="ignore"):
                n_eff = np.where(var > 0, v * v / np.where(var > 0, var, 1.0), 0.0)
            noisy = n_eff < min_mc_events
            for sname, dirs in r["syst"].get(proc, {}).items():
                hi, lo = np.where(noisy, v, dirs["Up"]), np.where(noisy, v, dirs["Down"])
                mods.append({"name": sname, "type": "histosys",
                             "data": {"hi_data": hi[keep].tolist(), "lo_data": lo[keep].tolist()}})
            if stat_errors:
                mods.append({"name": f"staterror_{region}", "type": "staterror",
                             "data": np.sqrt(np.maximum(var[keep], 0.0)).tolist()})
            samples.append({"name": proc, "data": v[keep].tolist(), "modifiers": mods})
        channels.append({"name": region, "samples": samples})
        observations.append({"name": region, "data": r["data"][keep].tolist()})
    params = [{"name": "mu", "bounds": [list(mu_bounds)], "inits": [1.0]}]
    params += [{"name": f"norm_{b}", "bounds": [[0.0, 50.0]], "inits": [1.0]} for b in free_norms]
    params += [{"name": k, "bounds": [list(v)]} for k, v in _histosys_bounds(channels).items()]
    return {"version": "1.0.0", "channels": channels, "observations": observations,
            "measurements": [{"name": "measurement", "config": {"poi": "mu", "parameters": params}}]}


def _histosys_bounds(channels: Sequence[Mapping[str, Any]], limit: float = 5.0) -> dict[str, tuple[float, float]]:
    """Bounds of each histosys parameter that keep every sample's yield non-negative.

    pyhf interpolates a histosys linearly (``code0``) and extrapolates beyond ±1: a template whose
    Up (or Down) is below nominal in a bin reaches zero at θ = nom / (nom − up). Past that the
    expected yield is negative and the Poisson term ``−λ`` grows without limit, which a minimiser
    exploits (μ at its bound, θ at the zero crossing); the bound stops it just before."""
    out: dict[str, list[float]] = {}
    for ch in channels:
        for smp in ch["samples"]:
            nom = np.asarray(smp["data"], np.float64)
            for mod in smp["modifiers"]:
                if mod["type"] != "histosys":
                    continue
                b = out.setdefault(mod["name"], [-limit, limit])
                for key, sign in (("hi_data", 1), ("lo_data", -1)):
                    var = np.asarray(mod["data"][key], np.float64)
                    drop = (var < nom) & (nom > 0)
                    if drop.any():
                        reach = float(np.min(nom[drop] / (nom[drop] - var[drop]))) * 0.999
                        if sign > 0:
                            b[1] = min(b[1], reach)
                        else:
                            b[0] = max(b[0], -reach)
    return {k: (v[0], v[1]) for k, v in out.items()}


def save_workspace(ws: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(ws, indent=1) + "\n")


@dataclass
class FitResult:
    """A maximum-likelihood fit: parameters, uncertainties, pre/post-fit yields."""

    mu: float
    mu_err: float
    params: dict[str, tuple[float, float]]  #: name (``staterror_<region>[i]`` per bin) -> (value, error)
    twice_nll: float
    regions: list[str]
    edges: dict[str, np.ndarray]
    data: dict[str, np.ndarray]
    prefit: dict[str, dict[str, np.ndarray]]   #: region -> process -> yields
    postfit: dict[str, dict[str, np.ndarray]]
    kept: dict[str, np.ndarray] = field(default_factory=dict)  #: region -> bins of the edges in the fit

    def pulls(self) -> dict[str, tuple[float, float]]:
        """Nuisance parameters with a unit-Gaussian constraint (the variations): (θ̂, σ_θ)."""
        return {k: v for k, v in self.params.items()
                if k != "mu" and not k.startswith(("norm_", "staterror_"))}

    def summary(self) -> dict[str, Any]:
        return {"mu": self.mu, "mu_err": self.mu_err, "twice_nll": self.twice_nll,
                "pulls": {k: {"value": v, "error": e} for k, (v, e) in self.pulls().items()},
                "norms": {k: {"value": v, "error": e} for k, (v, e) in self.params.items() if k.startswith("norm_")}}

    def text(self) -> str:
        lines = [f"mu = {self.mu:.3f} +- {self.mu_err:.3f}"]
        for k, (v, e) in self.params.items():
            if k.startswith("norm_"):
                lines.append(f"{k} = {v:.3f} +- {e:.3f}")
        for k, (v, e) in self.pulls().items():
            lines.append(f"theta[{k}] = {v:+.3f} +- {e:.3f}")
        return "\n".join(lines)


def _by_sample(model: Any, pars: np.ndarray) -> np.ndarray:
    return np.asarray(model.main_model.expected_data(pars, return_by_sample=True))


def fit(ws: Mapping[str, Any], templates: Templates | None = None) -> FitResult:
    """Fit the workspace to its observations (pyhf, iminuit); μ̂ with its Hesse uncertainty."""
    import pyhf

    workspace = pyhf.Workspace(dict(ws))
    model = workspace.model()
    data = workspace.data(model)
    init = np.asarray(model.config.suggested_init(), np.float64)
    err: Exception | None = None
    for strategy in (None, 2):  # MIGRAD's default, then its careful strategy (a minimum near a bound)
        pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0, strategy=strategy))
        try:
            best, twice_nll = pyhf.infer.mle.fit(data, model, return_uncertainties=True, return_fitted_val=True)
            break
        except Exception as exc:  # noqa: BLE001  # pyhf raises its own FailedMinimization and others: one message
            err = exc
    else:
        raise FitError(f"the fit did not converge (MIGRAD strategies 1 and 2): {err}") from None
    best = np.asarray(best, np.float64)
    params: dict[str, tuple[float, float]] = {}
    for name in model.config.par_order:
        sl = model.config.par_slice(name)
        vals = best[sl]
        if len(vals) == 1:
            params[name] = (float(vals[0, 0]), float(vals[0, 1]))
        else:
            for i, (v, e) in enumerate(vals):
                params[f"{name}[{i}]"] = (float(v), float(e))
    regions = list(model.config.channels)
    parsed = _parse(templates)[0] if templates is not None else None
    pre, post = _by_sample(model, init), _by_sample(model, best[:, 0])
    obs = np.asarray(data[: model.config.nmaindata])
    samples = list(model.config.samples)
    prefit: dict[str, dict[str, np.ndarray]] = {}
    postfit: dict[str, dict[str, np.ndarray]] = {}
    dat: dict[str, np.ndarray] = {}
    edges: dict[str, np.ndarray] = {}
    kept: dict[str, np.ndarray] = {}
    for ch in regions:
        sl = model.config.channel_slices[ch]
        prefit[ch] = {s: pre[i, sl] for i, s in enumerate(samples) if pre[i, sl].any()}
        postfit[ch] = {s: post[i, sl] for i, s in enumerate(samples) if pre[i, sl].any()}
        dat[ch] = obs[sl]
        if parsed is not None and ch in parsed:  # the bins build_workspace kept (nominal prediction > 0)
            r = parsed[ch]
            tot = np.sum([v for v, _ in r["nominal"].values()], axis=0)
            edges[ch], kept[ch] = np.asarray(r["edges"]), np.flatnonzero(tot > 0)
    mu, mu_err = params["mu"]
    return FitResult(mu=mu, mu_err=mu_err, params=params, twice_nll=float(twice_nll), regions=regions, edges=edges,
                     data=dat, prefit=prefit, postfit=postfit, kept=kept)


def toys(ws: Mapping[str, Any], truth: Mapping[str, float], n: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Fit ``n`` Poisson pseudo-experiments drawn from the model at ``truth`` (parameter name →
    value; the others at their nominal values; auxiliary data drawn from the constraints at
    ``truth`` as well): ``{"mu": μ̂, "mu_err": σ,
    "<nuisance>": θ̂, "<nuisance>_err": σ_θ}`` arrays of the converged fits, for the bias and
    coverage of the fit itself (pulls (μ̂ − μ)/σ should have mean 0 and width 1)."""
    import pyhf

    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(verbose=0))
    model = pyhf.Workspace(dict(ws)).model()
    pars = np.asarray(model.config.suggested_init(), np.float64)
    for name, v in truth.items():
        pars[model.config.par_slice(name)] = v
    # main data Poisson, auxiliary data from the constraints, both at ``truth`` (pyhf's model pdf)
    np.random.seed(seed)  # pyhf's numpy backend samples through scipy.stats, i.e. numpy's global state
    sample = np.asarray(model.make_pdf(pyhf.tensorlib.astensor(pars)).sample((int(n),)), np.float64)
    names = [k for k in model.config.par_order if k == "mu" or not k.startswith("staterror_")]
    out: dict[str, list[float]] = {}
    for data in sample:
        try:
            best = np.asarray(pyhf.infer.mle.fit(data, model, return_uncertainties=True), np.float64)
        except Exception:  # noqa: BLE001  # a toy that does not converge is left out (counted by the caller)
            continue
        for k in names:
            v, e = best[model.config.par_slice(k)][0]
            out.setdefault(k, []).append(float(v))
            out.setdefault(f"{k}_err", []).append(float(e))
    return {k: np.asarray(v) for k, v in out.items()}


def fit_templates(templates: Templates | str | Path, signal: str | Sequence[str], free_norms: Sequence[str] = (),
                  stat_errors: bool = True, min_mc_events: float = 10.0) -> tuple[FitResult, dict[str, Any]]:
    """Read (a path) or take the templates, build the workspace (:func:`build_workspace`), fit:
    ``(result, workspace)``."""
    t = read_templates(templates) if isinstance(templates, (str, Path)) else templates
    ws = build_workspace(t, signal, free_norms=free_norms, stat_errors=stat_errors, min_mc_events=min_mc_events)
    return fit(ws, t), ws


def plot_fit(result: FitResult, path: str | Path, title: str = "", xlabel: str = "observable",
             note: str = "", ylabel: str = "jets / bin") -> Path:
    """Pre-fit (dashed) and post-fit (stacked) yields per region with the data, one panel per
    region; ``note`` (the sample and selection) is written in each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(result.regions)
    fig, axs = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    for ax, ch in zip(axs[0], result.regions):
        nb = len(result.data[ch])
        if ch in result.edges and len(result.kept.get(ch, [])) == nb:
            e = result.edges[ch]
            lo, hi = e[result.kept[ch]], e[result.kept[ch] + 1]
            xl = xlabel
        else:
            lo, hi = np.arange(nb, dtype=float), np.arange(nb, dtype=float) + 1
            xl = "bin"
        x = 0.5 * (lo + hi)
        bottom = np.zeros(nb)
        for s, y in result.postfit[ch].items():
            ax.bar(lo, y, width=hi - lo, bottom=bottom, align="edge", alpha=0.6, label=f"{s} (post-fit)")
            bottom = bottom + y
        pre_tot: Any = np.sum(list(result.prefit[ch].values()), axis=0)
        ax.step(np.r_[lo, hi[-1]], np.r_[pre_tot, pre_tot[-1]], where="post", color="k", ls="--", label="pre-fit total")
        d = result.data[ch]
        ax.errorbar(x, d, yerr=np.sqrt(np.maximum(d, 0)), fmt="o", color="k", ms=3, label="data")
        ax.set_title(f"region {ch}")
        if note:
            ax.text(0.02, 0.98, note, transform=ax.transAxes, fontsize=7, va="top", ha="left")
        ax.set_xlabel(xl)
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.25 * max(float(np.max(d + np.sqrt(np.maximum(d, 0)))), float(np.max(bottom)), 1.0))
        ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.88))
    head = f"mu = {result.mu:.2f} ± {result.mu_err:.2f}"
    pulls = ", ".join(f"θ({k}) = {v:+.2f} ± {e:.2f}" for k, (v, e) in result.pulls().items())
    fig.suptitle(f"{title + ': ' if title else ''}{head}" + (f"; {pulls}" if pulls else ""), fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
