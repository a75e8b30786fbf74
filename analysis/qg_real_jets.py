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

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _study as S  # noqa: E402



def plot_scores(gen: Any, real: Any, real_qgl: Any, path: Path, title: str) -> None:
    plt = S.plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    edges = gen.axes["score"].edges
    centres = 0.5 * (edges[1:] + edges[:-1])
    colours = {"quark": "tab:blue", "gluon": "tab:red"}
    for c in ("quark", "gluon"):
        g, _, ng = S.normalised(gen, [c])
        axes[0].stairs(g, edges, color=colours[c], lw=2, label=f"{c}, generated held-out ({ng:.0f} jets)")
        for ax, h in ((axes[0], real), (axes[1], real_qgl)):
            v, err, n = S.normalised(h, [c])
            if n > 0:
                ax.errorbar(centres, v, yerr=err, fmt="o", ms=4, color=colours[c],
                            label=f"{c}, CMS 2017 UL QCD ({n:.0f} jets)")
    axes[0].set_xlabel("CNN quark score P(quark)")
    axes[1].set_xlabel("CMS quark/gluon likelihood Jet_qgl (values < 0 in the first bin)")
    S.finish(fig, axes, title, path)


def write_markdown(summary: dict, path: Path) -> None:
    sel = summary["selection"]
    lines = [
        "# Quark/gluon CNN on generated and on real CMS AK4 jets, beside CMS's Jet_qgl", "",
        f"Command: `{summary['command']}` (git {summary['git_sha']}, {summary['date']}).", "",
        f"Jets: anti-kT R = 0.4, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}, "
        "with stored constituents; truth from `Jet_partonFlavour` (|flavour| 1–5 quark, 21 gluon; "
        "unmatched jets not in the ROC).",
        f"Training: {summary['training']['n_jets']} jets (train/val/test), "
        f"{summary['training'].get('epochs_run', '?')} epochs, {summary['training']['train_time_s']:.0f} s of "
        "training (CPU, 2 cores).", "",
        f"Numbers from the processor's merged histograms ({summary['score_bins']} score bins); "
        f"[ ] are 68 % Poisson-bootstrap intervals of the counts ({summary['n_bootstrap']} resamples); "
        f"1/ε_g at ε_q = {summary['eff_q']:g}.", "",
        "| jets | tagger | AUC [68 %] | 1/ε_g [68 %] | quark / gluon jets |", "|---|---|---|---|---|",
    ]
    for key, label in (("generated", "generated held-out (Pythia 8 + parametric detector)"),
                       ("real", "CMS 2017 UL QCD MC (full simulation)")):
        for tagger, d in summary[key].items():
            lines.append(f"| {label} | {tagger} | {S.fmt_row(d['inclusive'])} |")
            for b in d["pt_bins"]:
                lines.append(f"| … {b['pt'][0]:g}–{b['pt'][1]:g} GeV | {tagger} | {S.fmt_row(b)} |")
    lines += ["", "## Reading", "", *summary["notes"], ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    cfg, data, res, log = S.setup("qg_real_jets", __doc__, argv)
    art = data / "qg_artifact"
    timings: dict = {}
    files = S.generate(cfg, data, log, timings)
    train_files = list(files["train"].values())
    # every file on both sides: each jet is labelled by its partonFlavour, not by its sample
    spec = S.train(cfg, ["--signal", *train_files, "--background", *train_files, "--label-from", "partonFlavour"],
                   art, log, timings)
    runs = data / "runs"
    truth = ["--truth", "partonFlavour"]
    gen_h = S.run(cfg, {p: {"files": {str(f): "Events"}} for p, f in files["holdout"].items()}, art,
                  runs / "generated", log, timings, truth)
    real_h = S.run_real(cfg, art, runs, log, timings, truth)

    from coffea.util import load

    from coffea_jetimg.studies import merge_datasets

    gen = merge_datasets(load(str(gen_h)))["score"]
    real = merge_datasets(load(str(real_h)))
    name = next(iter(gen))  # the run names the model after its artifact directory
    rep = cfg["report"]
    summary: dict = {
        **S.provenance("qg_real_jets", argv, cfg, spec, timings),
        "n_bootstrap": rep["n_bootstrap"], "eff_q": rep["eff_q"], "score_bins": len(gen[name].axes["score"]),
        "generated": {name: S.figures(gen[name], "quark", ["gluon"], rep["n_bootstrap"], rep["eff_q"])},
        "real": {t: S.figures(real["score"][t], "quark", ["gluon"], rep["n_bootstrap"], rep["eff_q"])
                 for t in real["score"]},
        "real_cutflow": real["cutflow"],
    }
    g, r = summary["generated"][name]["inclusive"], summary["real"]

    def share(fig: dict) -> float:
        last, inc = fig["pt_bins"][-1], fig["inclusive"]
        return (last["n_signal"] + last["n_background"]) / (inc["n_signal"] + inc["n_background"])

    def hi_bin(fig: dict) -> str:
        lo, hi = fig["pt_bins"][-1]["pt"]
        return f"{lo:g}–{hi:g} GeV"
    import uproot

    with uproot.open(S.real_path(cfg)) as f:
        npv = float(f["Events"]["PV_npvs"].array(library="np").mean())
    notes = [
        f"- Our CNN: AUC {g['auc']:.3f} on generated held-out jets, {r[name]['inclusive']['auc']:.3f} on the real "
        f"jets; CMS's Jet_qgl on the same real jets: {r['qgl']['inclusive']['auc']:.3f} "
        f"({r['qgl']['inclusive']['n_signal']:.0f} quark, {r['qgl']['inclusive']['n_background']:.0f} gluon jets: "
        "the intervals are wide). The two taggers' histograms are filled apart, so they hold no joint "
        "distribution and no paired interval of the difference (a 2D score histogram would give one).",
        f"- Generated held-out vs real jets, our CNN: AUC {g['auc']:.3f} vs {r[name]['inclusive']['auc']:.3f}; "
        f"the pT spectra differ (the top bin, {hi_bin(r[name])}, holds {share(r[name]):.0%} of the real jets and "
        f"{share(summary['generated'][name]):.0%} of the generated ones), and so do the jets' origin (QCD "
        "multijets vs Z+jet) and the detector.",
        f"- Jet_qgl values outside [0, 1] (no likelihood computed), counted in the lowest score bin: "
        f"{real['cutflow'].get('stored_qgl_invalid', 0)} of {real['cutflow'].get('jets_scored', 0)} scored jets.",
        "- Domain shift: the CNN was trained on Pythia 8 with a parametric detector, no pileup and Z+jet "
        "quark/gluon jets; the real jets are CMS full simulation (Geant4, PF reconstruction) of QCD multijets "
        f"with pileup (mean number of PVs {npv:.1f} in the file) and the CMS 2017 tune. Jet_qgl was built on "
        "CMS's own simulation with pileup-robust inputs (multiplicity, pT_D, minor axis).",
        "- Published orientation (not the same jets or detector): Komiske et al. (arXiv:1612.01551) and ATLAS "
        "(ATL-PHYS-PUB-2017-017) find a jet-image CNN matches or beats N_constituents and width and their "
        "likelihood combination on their own simulation, and that it is robust to η and pileup.",
    ]
    summary["notes"] = notes
    sel = cfg["selection"]
    window = f"anti-kT R=0.4, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}"
    S.plot_rocs({f"our CNN, generated Z+jet held-out (AUC {g['auc']:.3f})": (gen[name], "-"),
                 f"our CNN, CMS 2017 UL QCD (AUC {r[name]['inclusive']['auc']:.3f})": (real["score"][name], "--"),
                 f"CMS Jet_qgl, same jets (AUC {r['qgl']['inclusive']['auc']:.3f})": (real["score"]["qgl"], "-.")},
                "quark", ["gluon"], res / "qg_real_jets_roc.png", f"Quark vs gluon, {window}; truth from partonFlavour",
                r"Quark-jet efficiency $\varepsilon_q$", r"Gluon-jet rejection $1/\varepsilon_g$")
    plot_scores(gen[name], real["score"][name], real["score"]["qgl"], res / "qg_real_jets_scores.png",
                f"{window}. Lines: Pythia 8 + parametric detector; points: CMS full simulation (2017 UL QCD)")
    S.publish("qg_real_jets", res, summary, write_markdown, runs, ("generated", "real"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
