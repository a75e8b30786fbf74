"""Fit demo: tagger templates with a JES variation, fitted with pyhf to pseudo-data of known content.

    python analysis/fit_demo.py --config analysis/configs/fit_demo.toml --results analysis/results/fit_demo

1. Samples (resumable, under analysis/data/fit_demo/): training top/QCD files, MC top ("ttbar",
   the signal) and QCD files for the templates, and pseudo-data: independent top and QCD files
   mixed in one dataset.
2. A DeepTop CNN trained on the training files (coffea_jetimg.train.train_model).
3. `coffea-jetimg run` over the MC with `--syst jes=DELTA --lumi L --template-wp WP`: the templates
   `{pass,fail}/{ttbar,qcd}` and `..._jesUp/Down` in its hists.root, normalised to xsec × L / Σw.
   The ttbar xsec is set to data_top / mu_injected: the pseudo-data hold mu_injected times the
   signal the MC predict.
4. The pseudo-data through the same processor with their jets scaled by 1 + theta_injected × DELTA
   (a JetScale variation whose Up slice is taken as the observation: the "true" jet energy scale of
   these pseudo-data differs from the MC's by theta_injected standard deviations): `data_obs`.
5. `coffea_jetimg.fit`: a HistFactory model (mu on ttbar, a free QCD normalisation, the JES shape
   nuisance, MC statistical uncertainties), fitted with iminuit; mu and the JES pull compared with
   the injected values; pre/post-fit plot.

Writes to --results: fit_demo.md (the table), fit.json, workspace.json (pyhf JSON), templates.root
(the run's templates plus data_obs), fit.png, run_summary.json, fit_demo.log.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tomllib
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "analysis/configs/fit_demo.toml"))
    ap.add_argument("--results", default=str(ROOT / "analysis/results/fit_demo"))
    ap.add_argument("--data-dir", default=str(ROOT / "analysis/data/fit_demo"))
    args = ap.parse_args(argv)
    cfg = tomllib.loads(Path(args.config).read_text())
    S, T, F = cfg["sample"], cfg["tagger"], cfg["fit"]
    res_dir, data_dir = Path(args.results), Path(args.data_dir)
    res_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    logf = open(res_dir / "fit_demo.log", "w")

    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    sha = _git_sha()  # the code that runs (read once: HEAD may move while the demo runs)
    log(f"fit demo at git {sha}, config {args.config}")
    from coffea_jetimg.generate import generate

    files: dict[str, str] = {}
    for key, proc, n, off in (("train_top", "top", S["train_top"], 0), ("train_qcd", "qcd", S["train_qcd"], 1),
                              ("mc_top", "top", S["mc_top"], 20), ("mc_qcd", "qcd", S["mc_qcd"], 21),
                              ("data_top", "top", S["data_top"], 40), ("data_qcd", "qcd", S["data_qcd"], 41)):
        path = data_dir / f"{key}.root"
        if not path.exists():
            t0 = time.perf_counter()
            generate(proc, int(n), int(S["seed"]) + off, str(path), pt_min=500.0, pt_max=700.0,
                     workers=int(S["workers"]), progress=False)
            log(f"generated {n} {proc} events -> {path.name} ({time.perf_counter() - t0:.0f} s)")
        files[key] = str(path)

    # -- the tagger
    art = data_dir / "models" / "cnn"
    if not (art / "spec.json").exists():
        from coffea_jetimg.train import train_model

        t0 = time.perf_counter()
        r = train_model([files["train_top"]], [files["train_qcd"]], output_dir=art, name="cnn",
                        architecture=T["architecture"], image_preset="deeptop", batch_size=64, lr=1e-3,
                        pt_range=(F["pt_min"], F["pt_max"]), abs_eta_max=2.0, label_from="file", signal_truth=1,
                        background_truth=0, class_names=("qcd", "top"), epochs=int(T["epochs"]), seed=int(S["seed"]),
                        device="cpu", progress=False, log=log)
        log(f"trained cnn: test AUC {r['metrics'].get('auc', float('nan')):.3f} ({time.perf_counter() - t0:.0f} s)")
    else:
        log(f"reusing the tagger {art}")

    # -- MC templates through the run CLI
    mu_inj, theta_inj, jes = float(F["mu_injected"]), float(F["theta_injected"]), float(F["jes"])
    xsec = {"ttbar": S["data_top"] / mu_inj, "qcd": float(S["data_qcd"])}
    fileset = {"ttbar": {"files": {files["mc_top"]: "Events"},
                         "metadata": {"label": "top", "xsec": xsec["ttbar"], "is_mc": True, "process": "ttbar"}},
               "qcd": {"files": {files["mc_qcd"]: "Events"},
                       "metadata": {"label": "qcd", "xsec": xsec["qcd"], "is_mc": True, "process": "qcd"}}}
    fs_path = data_dir / "fileset_mc.json"
    fs_path.write_text(json.dumps(fileset, indent=1) + "\n")
    run_dir = data_dir / "run_mc"
    msd_bins = ",".join(str(x) for x in F["msd_bins"])
    cmd = [sys.executable, "-m", "coffea_jetimg.cli", "run", "--fileset", str(fs_path), "--model", str(art),
           "--executor", "dask", "--workers", str(S["workers"]), "--chunksize", "1000",
           "--pt-min", str(F["pt_min"]), "--pt-max", str(F["pt_max"]), "--abs-eta-max", "2.0",
           "--syst", f"jes={jes}", "--lumi", str(F["lumi"]), "--template-wp", str(F["wp"]),
           "--msd-bins", msd_bins, "--score-bins", str(F["score_bins"]), "--no-progress", "--no-plots",
           "-o", str(run_dir)]
    log("$ coffea-jetimg " + " ".join(cmd[3:]))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    log(f"run over the MC: {time.perf_counter() - t0:.0f} s")
    summary = json.loads((run_dir / "summary.json").read_text())
    (res_dir / "run_summary.json").write_text(json.dumps({k: summary[k] for k in ("datasets", "templates")
                                                          if k in summary}, indent=1) + "\n")

    # -- pseudo-data: the same processor, jets scaled by 1 + theta_inj * jes, taken as the observation
    from coffea import processor
    from coffea.nanoevents import PFNanoAODSchema

    from coffea_jetimg.fit import fit_templates, plot_fit, save_workspace, toys
    from coffea_jetimg.processors import JetTaggingProcessor
    from coffea_jetimg.studies.templates import make_templates, read_templates, write_templates
    from coffea_jetimg.systematics import JetScale

    proc = JetTaggingProcessor(str(art), selection={"pt": (F["pt_min"], F["pt_max"]), "abs_eta": 2.0},
                               systematics=[JetScale("inj", shift=theta_inj * jes)], pixel_maps=False,
                               axes={"score_bins": int(F["score_bins"]), "msd": tuple(F["msd_bins"])})
    data_fs = {"pseudodata": {"files": {files["data_top"]: "Events", files["data_qcd"]: "Events"},
                              "metadata": {"label": "qcd", "is_mc": True}}}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = processor.Runner(executor=processor.FuturesExecutor(workers=int(S["workers"]), status=False),
                               schema=PFNanoAODSchema, chunksize=1000)(data_fs, processor_instance=proc,
                                                                         treename="Events")
    log(f"pseudo-data processed: {time.perf_counter() - t0:.0f} s")
    pseudo = make_templates(out, "cnn", observable="msd", wps=[float(F["wp"])],
                            datasets={"pseudodata": {"is_mc": True, "process": "pseudodata"}})
    templates = read_templates(run_dir / "hists.root")
    combined = dict(templates)
    for name, h in pseudo.items():
        if name.endswith("/pseudodata_injUp"):
            region = name.split("/")[0]
            combined[f"{region}/data_obs"] = (np.asarray(h.axes[0].edges), h.values(), h.values())
    import hist as _hist

    to_write = {}
    for name, (edges, v, var) in combined.items():
        h = _hist.Hist(_hist.axis.Variable(edges, name="msd", label="jet mass [GeV]", flow=False),
                       storage=_hist.storage.Weight())
        hv = h.view(flow=False)
        hv["value"], hv["variance"] = v, var
        to_write[name] = h
    write_templates(to_write, res_dir / "templates.root")

    res, ws = fit_templates(res_dir / "templates.root", "ttbar", free_norms=["qcd"])
    log("fit:\n" + res.text())
    save_workspace(ws, res_dir / "workspace.json")
    note = (f"Pythia 8 + parametric detector, anti-kT R=0.8, {F['pt_min']:.0f} < pT < {F['pt_max']:.0f} GeV, "
            "|eta| < 2\n"
            f"MC {S['mc_top']} top + {S['mc_qcd']} QCD events; pseudo-data {S['data_top']} top + {S['data_qcd']} QCD")
    plot_fit(res, res_dir / "fit.png", title=f"pseudo-data: mu={mu_inj}, JES shift {theta_inj:+.1f} sigma",
             xlabel="jet soft-drop mass [GeV]", note=note)
    theta, theta_err = res.pulls()["jes"]
    # the fit's own bias and coverage: toys of the model at the injected values (Poisson main
    # data, auxiliary data from the constraints)
    n_toys = int(F.get("toys", 200))
    t0 = time.perf_counter()
    ty = toys(ws, {"mu": mu_inj, "jes": theta_inj}, n=n_toys, seed=int(S["seed"]))
    pull_mu = (ty["mu"] - mu_inj) / ty["mu_err"]
    pull_th = (ty["jes"] - theta_inj) / ty["jes_err"]
    cover = float(np.mean(np.abs(pull_mu) < 1))
    toy_rec = {"n": n_toys, "converged": int(len(pull_mu)), "mu_mean": float(ty["mu"].mean()),
               "mu_pull_mean": float(pull_mu.mean()), "mu_pull_std": float(pull_mu.std(ddof=1)),
               "theta_pull_mean": float(pull_th.mean()), "theta_pull_std": float(pull_th.std(ddof=1)),
               "mu_coverage_1sigma": cover, "wall_s": time.perf_counter() - t0}
    log(f"toys: {toy_rec}")
    n_data = {r: float(combined[f"{r}/data_obs"][1].sum()) for r in ("pass", "fail")}
    n_pred = {r: {p: float(combined[f"{r}/{p}"][1].sum()) for p in ("ttbar", "qcd")} for r in ("pass", "fail")}
    ok_mu = abs(res.mu - mu_inj) < 2 * res.mu_err
    ok_theta = abs(theta - theta_inj) < 2 * theta_err
    record = {"git": sha, "config": cfg, "mu_injected": mu_inj, "theta_injected": theta_inj,
              "xsec_pb": xsec, **res.summary(), "data_jets": n_data, "prefit_jets": n_pred,
              "mu_within_2sigma": bool(ok_mu), "theta_within_2sigma": bool(ok_theta), "toys": toy_rec}
    (res_dir / "fit.json").write_text(json.dumps(record, indent=1) + "\n")
    norm = res.params.get("norm_qcd", (float("nan"), float("nan")))
    md = [
        "# Fit demo: top-tagger pass/fail jet-mass templates, pyhf fit to pseudo-data", "",
        f"git {sha}; `python analysis/fit_demo.py --config {Path(args.config).name}` "
        "(settings in `analysis/configs/fit_demo.toml`).", "",
        f"MC: {S['mc_top']} top + {S['mc_qcd']} QCD events; pseudo-data: {S['data_top']} top + {S['data_qcd']} QCD "
        f"events (independent seeds), jets scaled by 1 + {theta_inj} × {jes}. "
        f"Selection {F['pt_min']}–{F['pt_max']} GeV, "
        f"|η| < 2; regions at DeepTop score {F['wp']}. Jets in the pseudo-data: pass {n_data['pass']:.0f}, "
        f"fail {n_data['fail']:.0f}.", "",
        "| parameter | injected | fitted |", "|---|---|---|",
        f"| μ (ttbar signal strength) | {mu_inj} | {res.mu:.3f} ± {res.mu_err:.3f} |",
        f"| θ(JES), units of {jes:.0%} | {theta_inj} | {theta:+.3f} ± {theta_err:.3f} |",
        f"| QCD normalisation | 1 (by construction of its xsec) | {norm[0]:.3f} ± {norm[1]:.3f} |", "",
        f"μ within 2σ of the injected value: {ok_mu}; θ within 2σ: {ok_theta}.", "",
        f"The fit itself, on {toy_rec['converged']} of {n_toys} toys of the model at the injected values "
        f"(Poisson main data, auxiliary data drawn from the constraints): mean μ̂ {toy_rec['mu_mean']:.3f}; "
        f"pull (μ̂ − μ)/σ mean "
        f"{toy_rec['mu_pull_mean']:+.2f}, width {toy_rec['mu_pull_std']:.2f}; θ pull mean "
        f"{toy_rec['theta_pull_mean']:+.2f}, width {toy_rec['theta_pull_std']:.2f}; |pull| < 1 in "
        f"{toy_rec['mu_coverage_1sigma']:.0%} of the toys (68 % expected).", "",
        "![pre/post-fit](fit.png)", "",
    ]
    (res_dir / "fit_demo.md").write_text("\n".join(md))
    log(f"wrote {res_dir}/fit_demo.md, fit.json, workspace.json, templates.root, fit.png")
    return 0 if (ok_mu and ok_theta) else 1


if __name__ == "__main__":
    raise SystemExit(main())
