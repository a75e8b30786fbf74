"""A quark/gluon CNN trained on generated jets, applied to real CMS AK4 jets beside CMS's ``Jet_qgl``.

The study an analyst does before trusting a tagger trained on a fast simulation:

1. **Samples**: Z(→νν)+quark and Z(→νν)+gluon events (``coffea-jetimg generate --process quark /
   gluon``: Pythia 8, the parametric detector, anti-kT R = 0.4 ``Jet`` with their candidates), a
   training set and a held-out set with other seeds.
2. **Training**: ``coffea-jetimg train --model qg`` (3-layer CNN on 16×16 pT images at 0.05×0.05,
   centred on the jet axis, as ATLAS's ATL-PHYS-PUB-2017-017) with quark/gluon labels from
   ``Jet_partonFlavour`` (|flavour| 1–5 quark, 21 gluon; unmatched jets left out).
3. **The processor on Dask**: ``coffea-jetimg run`` over the held-out generated files, and over
   the real 2017 UL PFNano file (CMS full simulation of QCD multijets, inline PFNano layout) with
   ``--stored qgl``: CMS's quark/gluon likelihood filled into the same score histograms, on the
   same jets, truth from the same ``partonFlavour`` definition.
4. **Numbers from the merged histograms**: AUC and gluon rejection 1/ε_g at ε_q = 0.5, with 68 %
   Poisson-bootstrap intervals of the histogram counts (:func:`coffea_jetimg.metrics.bootstrap_counts`),
   per pT bin as well; the jets behind each number; PNGs of the ROC curves and the score
   distributions (generated vs real, per truth class).

    python analysis/qg_real_jets.py --config analysis/configs/qg_real_jets.toml

Resumable: generated files and the trained artifact are reused when present (``--fresh`` redoes
everything). Outputs: ``analysis/results/qg_real_jets/`` (``qg_real_jets.json``/``.md``, the PNGs,
the two runs' ``summary.json`` and ``hists.coffea``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load_config(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def cli(args: list[str], log: Path) -> None:
    """One ``coffea-jetimg`` command in a child process, its output appended to ``log``."""
    cmd = [sys.executable, "-m", "coffea_jetimg.cli", *map(str, args)]
    with open(log, "a") as f:
        f.write(f"\n$ coffea-jetimg {' '.join(map(str, args))}\n")
        f.flush()
        t0 = time.time()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode
        f.write(f"# exit {rc} after {time.time() - t0:.1f} s\n")
    if rc != 0:
        raise SystemExit(f"coffea-jetimg {args[0]} failed (exit {rc}); see {log}")


def generate(cfg: dict, data: Path, log: Path, timings: dict) -> dict[str, list[Path]]:
    s = cfg["sample"]
    out: dict[str, list[Path]] = {"train": [], "holdout": []}
    for part, n, seed in (("train", s["train_events"], s["seed_train"]), ("holdout", s["holdout_events"],
                                                                           s["seed_holdout"])):
        for proc in s["processes"]:
            path = data / f"{proc}_{part}_s{seed}_n{n}.root"
            if not path.exists():
                t0 = time.time()
                cli(["generate", "--process", proc, "--events", n, "--seed", seed, "--pt-min", s["generator_pt"][0],
                     "--pt-max", s["generator_pt"][1], "--workers", s["workers"], "--no-progress", "-o", path], log)
                timings[f"generate_{proc}_{part}_s"] = round(time.time() - t0, 1)
            out[part].append(path)
    return out


def selection_args(cfg: dict) -> list[Any]:
    sel = cfg["selection"]
    return ["--pt-min", sel["pt"][0], "--pt-max", sel["pt"][1], "--abs-eta-max", sel["abs_eta"]]


def train(cfg: dict, files: list[Path], art: Path, log: Path, timings: dict) -> dict:
    if not (art / "spec.json").exists():
        t = cfg["training"]
        t0 = time.time()
        # every file on both sides: each jet is labelled by its partonFlavour, not by its sample
        cli(["train", "--signal", *files, "--background", *files, "--jets", "Jet", "--model", t["model"],
             "--label-from", "partonFlavour", *selection_args(cfg), "--epochs", t["epochs"], "--patience",
             t["patience"], "--batch-size", t["batch_size"], "--max-minutes", t["max_minutes"], "--seed", t["seed"],
             "--no-progress", "-o", art], log)
        timings["train_s"] = round(time.time() - t0, 1)
    return json.loads((art / "spec.json").read_text())


def run(cfg: dict, fileset: dict, art: Path, out: Path, log: Path, timings: dict, extra: list[Any]) -> Path:
    if not (out / "hists.coffea").exists():
        out.mkdir(parents=True, exist_ok=True)
        fs = out / "fileset.json"
        fs.write_text(json.dumps(fileset, indent=1))
        t0 = time.time()
        cli(["run", "--fileset", fs, "--model", art, "--jets", "Jet", *selection_args(cfg), "--truth", "partonFlavour",
             "--pt-bins", ",".join(f"{e:g}" for e in cfg["selection"]["pt_bins"]), "--executor", "dask",
             "--workers", cfg["sample"]["workers"], "--no-plots", "--no-progress", *extra, "-o", out], log)
        timings[f"run_{out.name}_s"] = round(time.time() - t0, 1)
    return out / "hists.coffea"


# ------------------------------------------------------------------------------------ numbers

def figures(h: Any, n_boot: int, eff_q: float, seed: int = 0) -> dict:
    """AUC and 1/ε_g at ε_q of one score histogram (quark signal, gluon background), inclusive and
    per pT bin, with Poisson-bootstrap intervals of its counts."""
    from coffea_jetimg import metrics
    from coffea_jetimg.studies import score_counts

    def one(pt_bin: int | None) -> dict:
        s, vs = score_counts(h, ["quark"], pt_bin)
        b, vb = score_counts(h, ["gluon"], pt_bin)
        edges = h.axes["score"].edges
        roc = metrics.roc_from_counts(s, b, edges, vs, vb)
        res: dict = {"n_quark": float(s.sum()), "n_gluon": float(b.sum())}
        if s.sum() <= 0 or b.sum() <= 0:
            return {**res, "reason": "no quark or no gluon jets"}
        auc_s, auc_i = metrics.bootstrap_counts(lambda a, c: metrics.auc(metrics.roc_from_counts(a, c, edges)),
                                                s, b, vs, vb, n_boot=n_boot, seed=seed)
        rej_s, rej_i = metrics.bootstrap_counts(
            lambda a, c: metrics.rejection_at(metrics.roc_from_counts(a, c, edges), eff_q), s, b, vs, vb,
            n_boot=n_boot, seed=seed)
        wp = metrics.working_point(roc, eff_q)
        return {**res, "auc": metrics.auc(roc), "auc_68": list(auc_i), "rejection": wp.rejection,
                "rejection_68": list(rej_i), "eff_g": 1 / wp.rejection if wp.rejection > 0 else math.nan}

    out = {"inclusive": one(None), "pt_bins": []}
    edges = h.axes["pt"].edges
    for k in range(len(edges) - 1):
        out["pt_bins"].append({"pt": [float(edges[k]), float(edges[k + 1])], **one(k)})
    return out


# ------------------------------------------------------------------------------------ plots

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rocs(curves: dict[str, Any], path: Path, title: str) -> None:
    from coffea_jetimg.studies import score_roc

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    for label, (h, style) in curves.items():
        r = score_roc(h, "quark", ["gluon"])
        ok = (r.eff_b > 0) & (r.eff_s > 0)
        ax.plot(r.eff_s[ok], r.rejection[ok], style, lw=2, label=label)
    ax.plot(np.linspace(0.01, 1, 50), 1 / np.linspace(0.01, 1, 50), ":", color="grey", label="random")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 100)
    ax.set_xlabel(r"Quark-jet efficiency $\varepsilon_q$")
    ax.set_ylabel(r"Gluon-jet rejection $1/\varepsilon_g$")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_scores(gen: Any, real: Any, real_qgl: Any, path: Path, title: str) -> None:
    from coffea_jetimg.studies import score_counts

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    edges = gen.axes["score"].edges
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    colours = {"quark": "tab:blue", "gluon": "tab:red"}
    for c in ("quark", "gluon"):
        g, _ = score_counts(gen, [c])
        axes[0].stairs(g / g.sum() / width, edges, color=colours[c], lw=2,
                       label=f"{c}, generated held-out ({g.sum():.0f} jets)")
        for ax, h, what in ((axes[0], real, "our CNN"), (axes[1], real_qgl, "Jet_qgl")):
            v, var = score_counts(h, [c])
            n = v.sum()
            if n > 0:
                ax.errorbar(centres, v / n / width, yerr=np.sqrt(var) / n / width, fmt="o", ms=4, color=colours[c],
                            label=f"{c}, CMS 2017 UL QCD ({n:.0f} jets)")
    axes[0].set_xlabel("CNN quark score P(quark)")
    axes[1].set_xlabel("CMS quark/gluon likelihood Jet_qgl (values < 0 in the first bin)")
    for ax in axes:
        ax.set_ylabel("Normalised jets")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(d: dict) -> str:
    if "auc" not in d:
        return f"– ({d.get('reason')})"
    lo, hi = d["auc_68"]
    rlo, rhi = d["rejection_68"]
    return (f"{d['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {d['rejection']:.2f} [{rlo:.2f}, {rhi:.2f}] | "
            f"{d['n_quark']:.0f} / {d['n_gluon']:.0f}")


def write_markdown(summary: dict, path: Path) -> None:
    sel = summary["selection"]
    lines = [
        "# Quark/gluon CNN on generated and on real CMS AK4 jets, beside CMS's Jet_qgl", "",
        f"Command: `{summary['command']}` (git {summary['git_sha']}, {summary['date']}).", "",
        f"Jets: anti-kT R = 0.4, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}, "
        "with stored constituents; truth from `Jet_partonFlavour` (|flavour| 1–5 quark, 21 gluon; "
        "unmatched jets not in the ROC).",
        f"Training: {summary['training']['n_jets']} jets (train/val/test), "
        f"{summary['training'].get('epochs_run', '?')} epochs, {summary['timings'].get('train_s', 'reused')} s.", "",
        f"Numbers from the processor's merged histograms ({summary['score_bins']} score bins); "
        f"[ ] are 68 % Poisson-bootstrap intervals of the counts ({summary['n_bootstrap']} resamples); "
        f"1/ε_g at ε_q = {summary['eff_q']:g}.", "",
        "| jets | tagger | AUC [68 %] | 1/ε_g [68 %] | quark / gluon jets |", "|---|---|---|---|---|",
    ]
    for key, label in (("generated", "generated held-out (Pythia 8 + parametric detector)"),
                       ("real", "CMS 2017 UL QCD MC (full simulation)")):
        for tagger, d in summary[key].items():
            lines.append(f"| {label} | {tagger} | {_fmt(d['inclusive'])} |")
            for b in d["pt_bins"]:
                lines.append(f"| … {b['pt'][0]:g}–{b['pt'][1]:g} GeV | {tagger} | {_fmt(b)} |")
    lines += ["", "## Reading", "", *summary["notes"], ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=HERE / "configs" / "qg_real_jets.toml")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data" / "qg_real_jets")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "qg_real_jets")
    ap.add_argument("--fresh", action="store_true", help="regenerate, retrain and rerun")
    args = ap.parse_args(argv)
    cfg = load_config(args.config)
    data, res = args.data_dir, args.results
    art = data / "qg_artifact"
    if args.fresh:
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(res, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    log = res / "qg_real_jets.log"
    timings: dict = {}
    files = generate(cfg, data, log, timings)
    spec = train(cfg, files["train"], art, log, timings)
    runs = data / "runs"
    gen_h = run(cfg, {p.stem.split("_")[0]: {"files": {str(p): "Events"}} for p in files["holdout"]}, art,
                runs / "generated", log, timings, [])
    real_file = (ROOT / cfg["real"]["file"]).resolve()
    stored = [a for s in cfg["real"]["stored"] for a in ("--stored", s)]
    real_h = run(cfg, {"cms_qcd_2017ul": {"files": {str(real_file): "Events"}}}, art, runs / "real", log, timings,
                 stored)

    from coffea.util import load

    from coffea_jetimg.studies import merge_datasets

    gen = merge_datasets(load(str(gen_h)))["score"]
    real = merge_datasets(load(str(real_h)))
    name = next(iter(gen))  # the run names the model after its artifact directory
    rep = cfg["report"]
    summary: dict = {
        "command": "python analysis/qg_real_jets.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "git_sha": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                  cwd=ROOT).stdout.strip(),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.python_version()}",
        "config": cfg, "selection": cfg["selection"], "n_bootstrap": rep["n_bootstrap"], "eff_q": rep["eff_q"],
        "score_bins": len(gen[name].axes["score"]), "timings": timings,
        "training": {"n_jets": spec.get("training", {}).get("n_jets"),
                     "epochs_run": spec.get("training", {}).get("epochs_run"),
                     "test_auc": (spec.get("metrics") or {}).get("auc"), "spec_name": name},
        "generated": {name: figures(gen[name], rep["n_bootstrap"], rep["eff_q"])},
        "real": {t: figures(real["score"][t], rep["n_bootstrap"], rep["eff_q"]) for t in real["score"]},
        "real_cutflow": real["cutflow"],
    }
    g, r = summary["generated"][name]["inclusive"], summary["real"]
    notes = [
        f"- Our CNN: AUC {g['auc']:.3f} on generated held-out jets, {r[name]['inclusive']['auc']:.3f} on the real "
        f"jets; CMS's Jet_qgl on the same real jets: {r['qgl']['inclusive']['auc']:.3f} "
        f"({r['qgl']['inclusive']['n_quark']:.0f} quark, {r['qgl']['inclusive']['n_gluon']:.0f} gluon jets: "
        "the intervals are wide).",
        f"- Jet_qgl values outside [0, 1] (no likelihood computed), counted in the lowest score bin: "
        f"{real['cutflow'].get('stored_qgl_invalid', 0)} of {real['cutflow'].get('jets_scored', 0)} scored jets.",
        "- Domain shift: the CNN was trained on Pythia 8 with a parametric detector, no pileup and Z+jet "
        "quark/gluon jets; the real jets are CMS full simulation (Geant4, PF reconstruction) of QCD multijets "
        f"with pileup (⟨n PV⟩ ≈ 26) and the CMS 2017 tune. Jet_qgl was built on CMS's own simulation with "
        "pileup-robust inputs (multiplicity, pT_D, minor axis).",
        "- Published orientation (not the same jets or detector): Komiske et al. (arXiv:1612.01551) and ATLAS "
        "(ATL-PHYS-PUB-2017-017) find a jet-image CNN matches or beats N_constituents and width and their "
        "likelihood combination on their own simulation, and that it is robust to η and pileup.",
    ]
    summary["notes"] = notes
    (res / "qg_real_jets.json").write_text(json.dumps(summary, indent=1, default=float))
    sel = cfg["selection"]
    window = f"anti-kT R=0.4, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}"
    plot_rocs({f"our CNN, generated Z+jet held-out (AUC {g['auc']:.3f})": (gen[name], "-"),
               f"our CNN, CMS 2017 UL QCD (AUC {r[name]['inclusive']['auc']:.3f})": (real["score"][name], "--"),
               f"CMS Jet_qgl, same jets (AUC {r['qgl']['inclusive']['auc']:.3f})": (real["score"]["qgl"], "-.")},
              res / "qg_real_jets_roc.png", f"Quark vs gluon, {window}; truth from partonFlavour")
    plot_scores(gen[name], real["score"][name], real["score"]["qgl"], res / "qg_real_jets_scores.png",
                f"{window}. Lines: Pythia 8 + parametric detector; points: CMS full simulation (2017 UL QCD)")
    write_markdown(summary, res / "qg_real_jets.md")
    for sub in ("generated", "real"):
        (res / sub).mkdir(exist_ok=True)
        for f in ("summary.json", "hists.coffea"):
            shutil.copy(runs / sub / f, res / sub / f)
    print((res / "qg_real_jets.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
