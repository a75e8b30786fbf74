"""The demo: top tagging end to end, in a few minutes on 2 cores.

1. Generates top (hadronic ttbar) and QCD dijet samples with Pythia 8 + FastJet + the parametric
   detector (FatJets of pT 500-700 GeV): one pair for training, an independent pair (other seeds)
   for the analysis.
2. Trains a small DeepTop-style CNN on 40x40 jet images and a LoLa/CoLa network on the 30
   hardest constituents, a few epochs each; each is saved as an artifact (TorchScript + ONNX +
   spec.json).
3. Runs the JetTaggingProcessor with both taggers and their ensemble (mean probabilities) over
   the analysis files on a Dask LocalCluster, filling hist histograms (score x truth class x pT x
   soft-drop mass x |eta| x nPV, average images, pixel-score moments, cutflow).
4. Writes histograms (coffea pickle + ROOT), ROC / sliced-mass / decorrelation / average-image /
   Pearson-map PNGs, summary.json and report.md / report.html into the output folder.
"""

from __future__ import annotations

from typing import Any

import argparse
import json
import time
from pathlib import Path

ENSEMBLE = "cnn_lola"  # the demo's ensemble of its taggers

HELP = "generate top/QCD samples, train a CNN and LoLa, run the processor on Dask, write plots and a report"


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--output", default="demo_output", help="folder for everything the demo writes")
    parser.add_argument("--train-events", type=int, default=1500, help="events per class for training")
    parser.add_argument("--test-events", type=int, default=800, help="events per class for the analysis run")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per model")
    parser.add_argument("--workers", type=int, default=2, help="Dask LocalCluster workers (and generation processes)")
    parser.add_argument("--seed", type=int, default=1, help="seed for generation and training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _generate(outdir: Path, args, log) -> dict[str, Path]:
    from .generate import generate

    files = {}
    for split, n, seed_offset in (("train", args.train_events, 0), ("test", args.test_events, 100)):
        for process in ("top", "qcd"):
            path = outdir / "samples" / f"{process}_{split}.root"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                t0 = time.perf_counter()
                generate(process, n, args.seed + seed_offset + (0 if process == "top" else 1), str(path),
                         pt_min=500.0, pt_max=700.0, workers=args.workers, progress=not args.no_progress)
                log(f"generated {n} {process} events -> {path} ({time.perf_counter() - t0:.0f} s)")
            files[f"{process}_{split}"] = path
    return files


def _train(outdir: Path, files: dict, args, log) -> dict[str, dict]:
    from .train import train_model

    common: dict[str, Any] = dict(pt_range=(450.0, 800.0), abs_eta_max=2.0, label_from="file", signal_truth=1,
                  background_truth=0, class_names=("qcd", "top"), epochs=args.epochs, seed=args.seed, device="auto",
                  progress=not args.no_progress, log=log)
    results = {}
    kws: tuple[tuple[str, dict[str, Any]], ...] = (
        ("cnn", dict(architecture="deeptop", image_preset="deeptop", batch_size=64, lr=1e-3)),
        ("lola", dict(architecture="lola", n_constituents=30, batch_size=64, lr=1e-3)),
    )
    for name, kw in kws:
        t0 = time.perf_counter()
        res = train_model([str(files["top_train"])], [str(files["qcd_train"])], output_dir=outdir / "models" / name,
                          name=name, **kw, **common)
        res["wall_s"] = time.perf_counter() - t0
        log(f"trained {name}: test AUC {res['metrics'].get('auc', float('nan')):.3f} in {res['wall_s']:.0f} s")
        results[name] = res
    return results


def _run_processor(outdir: Path, files: dict, models: dict, args) -> dict:
    from . import _run_cli

    fileset = {
        "top": {"files": {str(files["top_test"]): "Events"}, "metadata": {"label": "top"}},
        "qcd": {"files": {str(files["qcd_test"]): "Events"}, "metadata": {"label": "qcd"}},
    }
    fs_path = outdir / "fileset.json"
    fs_path.write_text(json.dumps(fileset, indent=2) + "\n")
    parser = argparse.ArgumentParser()
    _run_cli.add_arguments(parser)
    argv = ["--fileset", str(fs_path), "--executor", "dask", "--workers", str(args.workers),
            "--chunksize", "500", "--signal", "top",
            "--pt-min", "450", "--pt-max", "800", "--abs-eta-max", "2.0", "-o", str(outdir / "analysis")]
    if args.no_progress:
        argv.append("--no-progress")
    for res in models.values():
        argv += ["--model", str(res["artifact"])]
    if len(models) > 1:
        argv += ["--ensemble", f"{ENSEMBLE}={'+'.join(models)}"]
    return _run_cli.run(parser.parse_args(argv))


def _table(summary: dict, models: dict) -> str:
    lines = [
        ("| model | test-set AUC (training) | AUC (processor, hist) | 1/εB at εS=0.3 | 1/εB at εS=0.5 "
         "| 1/JSD at εS=0.5 | train time |"),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [(name, name, f"{res['metrics'].get('auc', float('nan')):.4f}", f"{res['train_time_s']:.0f} s")
            for name, res in models.items()]
    if ENSEMBLE in (summary.get("models") or {}):
        rows.append((ENSEMBLE, f"{ENSEMBLE} (mean of {' + '.join(models)})", "–", "–"))
    for key, label, auc_train, t_train in rows:
        r = (summary.get("models") or {}).get(key, {})
        d = r.get("decorrelation") or {}
        lines.append(
            f"| {label} | {auc_train} | {r.get('auc', float('nan')):.4f} | "
            f"{r.get('R30', float('nan')):.1f} | {r.get('R50', float('nan')):.1f} | "
            f"{d.get('inv_jsd', float('nan')):.2f} | {t_train} |"
        )
    return "\n".join(lines) + "\n"


def main(args) -> int:
    from . import _report_cli

    outdir = Path(args.output).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[demo {time.perf_counter() - t_start:6.0f} s] {msg}", flush=True)

    files = _generate(outdir, args, log)
    models = _train(outdir, files, args, log)
    log("running the JetTaggingProcessor on a Dask LocalCluster")
    summary = _run_processor(outdir, files, models, args)
    table = _table(summary, models)
    (outdir / "summary_table.md").write_text(table)
    rep = argparse.Namespace(outdir=str(outdir / "analysis"), title="coffea-jetimg demo: top tagging")
    _report_cli.main(rep)
    print()
    print(table)
    log(f"done: everything is in {outdir} (open {outdir / 'analysis' / 'report.html'})")
    return 0
