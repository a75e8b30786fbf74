"""A top tagger trained on generated jets, on real CMS QCD AK8 jets: the check before trusting it.

A tagger trained on a fast simulation is applied to a background sample of the full simulation
(or to data) to see whether its background response holds. Here:

1. **Samples**: hadronic tt̄ and QCD dijets (``coffea-jetimg generate --process top / qcd``),
   a training and a held-out set with other seeds.
2. **Training**: ``coffea-jetimg train --model deeptop`` on truth-labelled FatJets (contained top
   vs QCD, ``truthLabel``).
3. **The processor on Dask**: over the held-out generated files, and over the real 2017 UL PFNano
   file (CMS full simulation of QCD multijets) with ``--stored deepTag_TvsQCD`` (CMS's DeepAK8).
4. **From the merged histograms**: top-vs-QCD AUC and 1/ε_B on the generated jets; the working
   point at ε_top = ``eff_s`` on the generated jets and its QCD mistag rate on generated and on
   real QCD jets, with 68 % Poisson intervals; the JSD between the two QCD score shapes; PNGs of
   the score and soft-drop-mass distributions (generated QCD vs real QCD, and DeepAK8 on the real).

    python analysis/ak8_real_jets.py --config analysis/configs/ak8_real_jets.toml
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _study as S  # noqa: E402


def mistag(h_gen: Any, h_real: Any, eff_s: float) -> dict:
    """The working point at ``eff_s`` on generated top jets, and the QCD fraction passing it in the
    generated and the real QCD jets (the same interpolation between the two bracketing cuts)."""
    from coffea_jetimg import metrics
    from coffea_jetimg.studies import score_counts

    edges = h_gen.axes["score"].edges
    s, vs = score_counts(h_gen, ["top"])
    b, vb = score_counts(h_gen, ["qcd"])
    wp = metrics.working_point(metrics.roc_from_counts(s, b, edges, vs, vb), eff_s)
    out: dict = {"eff_s": eff_s, "threshold": wp.threshold}
    for key, h in (("generated_qcd", h_gen), ("real_qcd", h_real)):
        c, _ = score_counts(h, ["qcd"])
        passing = metrics.passing(c)
        n = float(passing[0])
        k = (1 - wp.weight) * passing[wp.index_low] + wp.weight * passing[wp.index_high]
        lo, hi = (float(x[0]) for x in metrics.poisson_interval([k]))
        out[key] = {"n_jets": n, "passing": float(k), "mistag": float(k / n) if n else float("nan"),
                    "mistag_68": [float(lo / n), float(hi / n)] if n else None}
    g, r = out["generated_qcd"], out["real_qcd"]
    out["real_over_generated"] = r["mistag"] / g["mistag"] if g["mistag"] > 0 else float("nan")
    gq, _ = score_counts(h_gen, ["qcd"])
    rq, _ = score_counts(h_real, ["qcd"])
    out["jsd_generated_vs_real_qcd"] = metrics.jsd(gq, rq)
    return out


def plot_distributions(gen: Any, real: Any, real_ref: Any, ref_name: str, path: Path, title: str) -> None:
    from coffea_jetimg.studies import project

    plt = S.plt()
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    edges = gen.axes["score"].edges
    centres = 0.5 * (edges[1:] + edges[:-1])
    for c, colour in (("top", "tab:green"), ("qcd", "tab:grey")):
        v, _, n = S.normalised(gen, [c])
        axes[0].stairs(v, edges, color=colour, lw=2, label=f"{c}, generated held-out ({n:.0f} jets)")
    v, err, n = S.normalised(real, ["qcd"])
    axes[0].errorbar(centres, v, yerr=err, fmt="o", ms=4, color="black", label=f"qcd, CMS 2017 UL ({n:.0f} jets)")
    axes[0].set_xlabel("Our CNN score P(top)")
    axes[0].set_yscale("log")
    v, err, n = S.normalised(real_ref, ["qcd"])
    axes[1].errorbar(centres, v, yerr=err, fmt="o", ms=4, color="black", label=f"qcd, CMS 2017 UL ({n:.0f} jets)")
    axes[1].set_xlabel(f"CMS {ref_name} (FatJet branch)")
    axes[1].set_yscale("log")
    medges = gen.axes["msd"].edges
    mcent = 0.5 * (medges[1:] + medges[:-1])
    for c, colour in (("top", "tab:green"), ("qcd", "tab:grey")):
        m = project(gen, ["msd"], [c])
        if m.sum() > 0:
            axes[2].stairs(m / m.sum(), medges, color=colour, lw=2, label=f"{c}, generated held-out")
    m = project(real, ["msd"], ["qcd"])
    mv = project(real, ["msd"], ["qcd"], variances=True)
    if m.sum() > 0:
        axes[2].errorbar(mcent, m / m.sum(), yerr=np.sqrt(mv) / m.sum(), fmt="o", ms=4, color="black",
                         label="qcd, CMS 2017 UL")
    axes[2].set_xlabel(gen.axes["msd"].label)
    S.finish(fig, axes, title, path)


def write_markdown(summary: dict, path: Path) -> None:
    sel = summary["selection"]
    lines = [
        "# A generated-jet top tagger on real CMS QCD AK8 jets, beside DeepAK8", "",
        f"Command: `{summary['command']}` (git {summary['git_sha']}, {summary['date']}).", "",
        f"Jets: anti-kT R = 0.8 FatJets, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}, "
        "with stored constituents. Generated: contained tops (truthLabel 1) of the tt̄ sample vs every jet of the "
        "QCD-dijet sample, as in training. Real: the file's QCD multijet sample, every jet QCD.",
        f"Training: {summary['training']['n_jets']} jets, {summary['training']['epochs_run']} epochs, "
        f"{summary['training']['train_time_s']:.0f} s of training (CPU, 2 cores).", "",
        "## Top vs QCD on generated held-out jets (from the merged histograms)", "",
        f"| tagger | AUC [68 %] | 1/ε_B at ε_S = {summary['eff_s']:g} [68 %] | top / QCD jets |", "|---|---|---|---|",
    ]
    for tagger, d in summary["generated"].items():
        lines.append(f"| {tagger} | {S.fmt_row(d['inclusive'])} |")
        for b in d["pt_bins"]:
            lines.append(f"| … {b['pt'][0]:g}–{b['pt'][1]:g} GeV | {S.fmt_row(b)} |")
    lines += [
        "", "## QCD mistag rate at working points set on the generated top jets", "",
        "| ε_top (score ≥) | QCD jets | jets | passing | mistag [68 % Poisson] |", "|---|---|---|---|---|",
    ]
    for mt in summary["mistag"]:
        for key, label in (("generated_qcd", "generated (Pythia 8 + parametric detector)"),
                           ("real_qcd", "CMS 2017 UL (full simulation)")):
            d = mt[key]
            lines.append(f"| {mt['eff_s']:g} ({mt['threshold']:.3f}) | {label} | {d['n_jets']:.0f} | "
                         f"{d['passing']:.1f} | {d['mistag']:.4f} [{d['mistag_68'][0]:.4f}, {d['mistag_68'][1]:.4f}] |")
    mt = summary["mistag"][0]
    lines += ["", f"JSD of the generated and real QCD score shapes: {mt['jsd_generated_vs_real_qcd']:.3f} bits.", "",
              "## Reading", "", *summary["notes"], ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    cfg, data, res, log = S.setup("ak8_real_jets", __doc__, argv)
    timings: dict = {}
    files = S.generate(cfg, data, log, timings)
    art = data / "top_artifact"
    spec = S.train(cfg, ["--signal", files["train"]["top"], "--background", files["train"]["qcd"], "--label-from",
                         "file", "--signal-truth", 1, "--background-truth", 0], art, log, timings)
    runs = data / "runs"
    holdout = {p: {"files": {str(f): "Events"}, "metadata": {"label": p}} for p, f in files["holdout"].items()}
    gen_h = S.run(cfg, holdout, art, runs / "generated", log, timings, [])
    real_h = S.run_real(cfg, art, runs, log, timings, metadata={"label": "qcd"})

    from coffea.util import load

    from coffea_jetimg.studies import merge_datasets

    gen_out = load(str(gen_h))
    name = next(iter(gen_out["qcd"]["score"]))
    # as in training: contained tops of the tt̄ sample against the jets of the QCD sample (the tt̄
    # sample's uncontained top jets, truthLabel 0, are not QCD jets and would make another background)
    gen = {name: S.sample_classes(gen_out, name, {"top": "top", "qcd": "qcd"})}
    real = merge_datasets(load(str(real_h)))
    ref = cfg["real"]["stored"][0]
    rep = cfg["report"]
    summary: dict = {
        **S.provenance("ak8_real_jets", argv, cfg, spec, timings),
        "eff_s": rep["eff_s"], "n_bootstrap": rep["n_bootstrap"],
        "generated": {name: S.figures(gen[name], "top", ["qcd"], rep["n_bootstrap"], rep["eff_s"])},
        "mistag": [mistag(gen[name], real["score"][name], e) for e in (rep["eff_s"], *rep.get("loose_eff_s", []))],
        "real_cutflow": real["cutflow"],
    }
    summary["notes"] = [
        f"- At ε_top = {mt['eff_s']:g} (generated) the CNN passes {mt['generated_qcd']['mistag']:.4f} of generated "
        f"QCD jets and {mt['real_qcd']['mistag']:.4f} of the {mt['real_qcd']['n_jets']:.0f} real QCD jets "
        f"({mt['real_qcd']['passing']:.1f} passing; 68 % interval [{mt['real_qcd']['mistag_68'][0]:.4f}, "
        f"{mt['real_qcd']['mistag_68'][1]:.4f}])." for mt in summary["mistag"]] + [
        f"- {ref} on the same real jets is shown for its shape only: the generated files do not carry it, and "
        "the real file has no top jets, so no ROC of CMS's tagger can be made here.",
        "- Differences to expect: parametric detector vs Geant4 + particle flow; no pileup vs the 2017 pileup "
        "profile (no PUPPI or CHS here); Pythia 8 default tune vs CP5; QCD dijets generated in a pT-hat "
        "window vs the file's HT-binned multijets.",
    ]
    sel = cfg["selection"]
    window = f"anti-kT R=0.8, {sel['pt'][0]:g} ≤ pT < {sel['pt'][1]:g} GeV, |η| < {sel['abs_eta']:g}"
    gi = summary["generated"][name]["inclusive"]
    S.plot_rocs({f"our CNN, generated held-out (AUC {gi['auc']:.3f})": (gen[name], "-")}, "top", ["qcd"],
                res / "ak8_real_jets_roc.png", f"Top vs QCD, {window}; truthLabel",
                r"Top-jet efficiency $\varepsilon_S$", r"QCD-jet rejection $1/\varepsilon_B$", (1, 1e4))
    plot_distributions(gen[name], real["score"][name], real["score"][ref], ref, res / "ak8_real_jets_scores.png",
                       f"{window}. Lines: Pythia 8 + parametric detector; points: CMS full simulation (2017 UL QCD)")
    S.publish("ak8_real_jets", res, summary, write_markdown, runs, ("generated", "real"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
