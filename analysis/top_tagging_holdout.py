"""Evaluate the trained top taggers on an independent, larger holdout sample.

``top_tagging.py`` tests on 15% of its sample: at 50k jets per class that is about 7,500 QCD
jets, and at ε_S = 0.3 a rejection near 1000 then rests on fewer than ten QCD jets (±30% or
worse). This script generates a fresh sample with other seeds (same processes, generator,
detector and selection: 550 ≤ pT < 650 GeV, |η| < 2, truth-labelled FatJets), builds each
model's inputs from its artifact's own input spec (the processor's code path:
``open_events`` → ``constituents`` → ``inputs.build_inputs``), scores the saved models
(TorchScript for DeepTop and LoLa, the stored trees for the BDT) and writes

- ``top_tagging_holdout.json``/``.md``: AUC, 1/ε_B at ε_S = 0.3 and 0.5 with the number of QCD
  jets passing (interpolated between the two cuts that bracket ε_S, as everywhere in the package:
  :func:`coffea_jetimg.metrics.working_point`), 68% bootstrap intervals, and each model's
  rejection relative to the BDT's with its bootstrap interval (the models share the QCD jets, so
  the ratio's error is smaller than the errors of its parts added);
- ``top_tagging_holdout_scores.npz``: labels and per-model scores, from which
  ``--scores-from`` recomputes every number without the generator or the models.

Generation stops at ``--top-jets``/``--qcd-jets`` or at the ``--*-budget-s`` time limits,
whichever comes first (whole rounds; a round is one file).

    python analysis/top_tagging_holdout.py --top-jets 20000 --qcd-jets 100000 --workers 16
    python analysis/top_tagging_holdout.py --bdt swa:bdt \\
        --scores-from analysis/results/top_tagging/top_tagging_holdout_scores.npz
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from top_tagging import (
    ABS_ETA_MAX,
    BDT_FEATURES,
    PT_RANGE,
    QCD,
    TOP,
    _finite,
    _round_stats,
    build_dataset,
    metrics,
)


def generate_holdout(process: str, truth: int, n_jets: int, budget_s: float, data_dir: Path, seed: int,
                     workers: int, round_events: int, reuse: bool, log) -> tuple[list[str], float]:
    """Rounds of ``generate`` until ``n_jets`` selected jets, or until the next round would not end
    within ``budget_s``; returns the files. Round sizes do not depend on timing (a pilot of
    50 events per worker, then ``round_events``, the last one trimmed to the jets still wanted),
    so the same seed, workers and number of rounds give the same events."""
    from coffea_jetimg.generate import generate

    data_dir.mkdir(parents=True, exist_ok=True)
    paths, have, rnd, gen_s = [], 0, 0, 0.0
    per_event, per_s = None, None  # selected jets per event; events per second of generate()
    t_start = time.perf_counter()
    while have < n_jets and rnd < 200:
        path = data_dir / f"{process}_h{seed}_r{rnd}.root"
        if not (reuse and path.is_file()):
            n_next = 50 * workers if rnd == 0 else int(min(round_events, (n_jets - have) / per_event * 1.1))
            n_next = max(n_next, workers)
            left = budget_s - (time.perf_counter() - t_start)
            # the rate of a full round (the pilot's is mostly Pythia's start-up) decides on the next
            if rnd > 1 and per_s is not None and n_next / per_s > left:
                log(f"  {process}: stopping before round {rnd} ({n_next} events, ~{n_next / per_s:.0f} s; "
                    f"{left:.0f} s of the budget left)")
                break
            t0 = time.perf_counter()
            generate(process, n_next, seed * 1000 + rnd + (500 if process == "qcd" else 0), str(path),
                     pt_min=PT_RANGE[0], pt_max=PT_RANGE[1], workers=workers, progress=False)
            dt = time.perf_counter() - t0
            gen_s += dt
            per_s = n_next / dt
        got, n_events = _round_stats(str(path), truth)
        per_event = max(got, 1) / n_events
        have += got
        paths.append(str(path))
        log(f"  {process}: round {rnd}: {n_events} events -> {got} jets ({have}/{n_jets}), "
            f"{time.perf_counter() - t_start:.0f} s")
        rnd += 1
    return paths, gen_s


def _models_in(art_dir: Path, label: str | None, device: str) -> dict:
    """The models saved in one artifacts folder: ``{name: (model, input_spec)}``, each model a
    :class:`~coffea_jetimg.inference.Tagger` (or the BDT) with a ``score(X)``."""
    from coffea_jetimg.inference import Tagger
    from coffea_jetimg.models import BDTTagger
    from coffea_jetimg.training import make_input_spec

    found = {}
    for name in ("deeptop", "lola"):
        if (art_dir / name).is_dir():
            t = Tagger(art_dir / name, device=device, batch_size=1024, num_threads=None)
            found[name] = (t, t.input_spec)
    if (art_dir / "bdt.npz").is_file():
        bdt = BDTTagger.load(art_dir / "bdt.npz")
        if list(bdt.feature_names) != BDT_FEATURES:
            raise ValueError(f"{art_dir / 'bdt.npz'}: features {bdt.feature_names}, expected {BDT_FEATURES}")
        found["bdt"] = (bdt, make_input_spec("fc", features=BDT_FEATURES))
    if not found:
        raise FileNotFoundError(f"{art_dir}: no deeptop/, lola/ or bdt.npz (run analysis/top_tagging.py first)")
    return {(f"{label}:{k}" if label else k): v for k, v in found.items()}


def _score(model, X: np.ndarray, log) -> np.ndarray:
    """Signal probability; a tagger whose TorchScript file this torch cannot load (one older than
    the torch that wrote it) is scored from the artifact's ONNX export."""
    from coffea_jetimg.artifact import ArtifactError
    from coffea_jetimg.inference import Tagger

    if not isinstance(model, Tagger):  # the BDT
        return model.predict_proba(X)[:, 1].astype(np.float64)
    try:
        return model.score(X).astype(np.float64)
    except ArtifactError as err:
        if model.artifact.onnx_path is None:
            raise
        log(f"  {model.name}: {err}; scoring the ONNX export instead")
        onnx = Tagger(model.artifact, device=model.device, backend="onnx", batch_size=model.batch_size,
                      num_threads=None)
        return onnx.score(X).astype(np.float64)


def models_and_inputs(artifacts: list[tuple[str | None, Path]], top_files, qcd_files, max_top: int, max_qcd: int,
                      device: str, log):
    """The models of every artifacts folder, the input key of each, and the inputs of each
    distinct key for the top and QCD jets of the files (variants of a model share theirs):
    ``(models, keys, sig, bkg)``, ``sig[key]`` the stacked inputs."""
    from coffea_jetimg.inputs import input_key

    models = {}
    for label, art_dir in artifacts:
        models.update(_models_in(art_dir, label, device))
    keys = {name: input_key(spec) for name, (_, spec) in models.items()}
    specs = {key: models[name][1] for name, key in keys.items()}
    t0 = time.perf_counter()
    sig = build_dataset(top_files, TOP, specs, max_top)
    bkg = build_dataset(qcd_files, QCD, specs, max_qcd)
    n_s, n_b = len(next(iter(sig.values()))), len(next(iter(bkg.values())))
    log(f"inputs built in {time.perf_counter() - t0:.1f} s: {n_s} top, {n_b} QCD jets, {len(specs)} input kinds")
    return models, keys, sig, bkg


def score_models(artifacts: list[tuple[str | None, Path]], top_files, qcd_files, max_top: int, max_qcd: int,
                 device: str, log) -> dict:
    """Labels and the scores of every model of every artifacts folder on the holdout files."""
    models, keys, sig, bkg = models_and_inputs(artifacts, top_files, qcd_files, max_top, max_qcd, device, log)
    n_s, n_b = len(next(iter(sig.values()))), len(next(iter(bkg.values())))
    out = {"y": np.concatenate([np.ones(n_s, np.int8), np.zeros(n_b, np.int8)])}
    for name, (model, _) in models.items():
        X = np.concatenate([sig[keys[name]], bkg[keys[name]]])
        t0 = time.perf_counter()
        out[name] = _score(model, X, log)
        log(f"  {name}: scored {len(X)} jets in {time.perf_counter() - t0:.1f} s")
    return out


def add_ensembles(scores: dict, ensembles: list[str]) -> None:
    """``NAME=a+b+c``: the mean signal probability of models a, b and c, added as NAME."""
    from coffea_jetimg.processors.jet_tagging import parse_ensembles

    models = sorted(set(scores) - {"y"})
    try:
        parsed = parse_ensembles(ensembles)
    except ValueError as err:
        raise SystemExit(f"--{err} (models: {models})") from None
    for name, parts in parsed.items():
        if len(parts) < 2 or any(p not in scores for p in parts):
            raise SystemExit(f"--ensemble {name!r}: needs two or more of the models {models}, got {parts}")
        scores[name] = np.mean([scores[p] for p in parts], axis=0)


def merge_scores(scores: dict, paths) -> list[str]:
    """Add the models of earlier runs' ``top_tagging_holdout_scores.npz`` to ``scores``.

    The artifacts of a model can be gone (they are not kept in git) while its holdout scores
    are: a new model is then compared with it jet for jet, but only on the same holdout jets.
    The generator is reproducible, so a rerun with the same ``--seed``, ``--round-events`` and
    jet counts makes the same sample; the labels must agree jet for jet, else the file is refused.
    A name already present must carry the same scores. Returns the names added.
    """
    added = []
    for path in paths:
        with np.load(path, allow_pickle=False) as f:
            other = {k: f[k] for k in f.files}
        if "y" not in other:
            raise SystemExit(f"--with-scores {path}: no labels 'y' (not a top_tagging_holdout_scores.npz)")
        if not np.array_equal(other["y"], scores["y"]):
            raise SystemExit(f"--with-scores {path}: its labels differ from this run's jet for jet "
                             f"({len(other['y'])} vs {len(scores['y'])} jets): not the same holdout sample")
        for name, values in other.items():
            if name == "y":
                continue
            if name in scores:
                if not np.array_equal(scores[name], values):
                    raise SystemExit(f"--with-scores {path}: model {name!r} is already here with other scores")
                continue
            scores[name] = values
            added.append(name)
    return added


def drop_repeats(scores: dict, keep=()) -> dict:
    """Remove models whose scores equal an earlier model's, jet for jet (the BDT of every
    ``top_tagging.py`` run on the same sample is the same BDT); returns {dropped: first}.
    Names in ``keep`` stay."""
    same_as: dict = {}
    seen: list = []
    for name in [k for k in scores if k != "y"]:
        first = next((o for o in seen if np.array_equal(scores[o], scores[name])), None)
        if first is not None and name not in keep:
            same_as[name] = first
            del scores[name]
        else:
            seen.append(name)
    return same_as


def write_markdown(summary: dict, path: Path) -> None:
    r = summary["results"]
    lines = [
        "# Top taggers on an independent holdout sample",
        "",
        f"Command: `{summary['command']}`  ",
        (f"Holdout: {summary['jets']['top']} top + {summary['jets']['qcd']} QCD jets ({PT_RANGE[0]:.0f} ≤ pT < "
        f"{PT_RANGE[1]:.0f} GeV, |η| < {ABS_ETA_MAX}), generator seeds disjoint from the training sample's. "
        f"Models: the artifacts of `analysis/top_tagging.py`. Intervals: 68% bootstrap ({summary['n_bootstrap']} "
        "resamples)."),
        "",
        ("| model | AUC | 1/ε_B (ε_S=0.3) [QCD jets passing] | 1/ε_B (ε_S=0.5) [passing] "
         "| ÷ BDT at 0.3 | ÷ BDT at 0.5 |"),
        "|---|---|---|---|---|---|",
    ]

    def rej(m, eff):
        lo, hi = m[f"inv_eff_bkg_at_{eff:g}_68cl"]
        return f"{m[f'inv_eff_bkg_at_{eff:g}']:.0f} [{lo:.0f}, {hi:.0f}] ({m[f'n_background_pass_at_{eff:g}']:g})"

    def ratio(m, eff):
        if f"ratio_to_bdt_at_{eff:g}" not in m:
            return "–"
        lo, hi = m[f"ratio_to_bdt_at_{eff:g}_68cl"]
        return f"{m[f'ratio_to_bdt_at_{eff:g}']:.2f} [{lo:.2f}, {hi:.2f}]"

    for name, m in r.items():
        lines.append(f"| {name} | {m['auc']:.4f} | {rej(m, 0.3)} | {rej(m, 0.5)} | {ratio(m, 0.3)} | {ratio(m, 0.5)} |")
    ws = summary.get("with_scores") or {}
    if ws.get("models"):
        lines += ["", f"Scored in earlier runs on the same jets (labels checked jet for jet), from "
                  f"{', '.join(f'`{f}`' for f in ws['files'])}: {', '.join(ws['models'])}."]
    if summary.get("same_scores_as"):
        lines += ["", "Left out, with the same scores as the model named: " + ", ".join(
            f"{a} (= {b})" for a, b in summary["same_scores_as"].items()) + "."]
    paired = [(a, b, r[a]["paired"][b]) for a, b in summary.get("compare", [])]
    if paired:
        lines += ["", "Paired rejection ratios (`--compare`; both models scored on each bootstrap resample):", "",
                  "| comparison | at ε_S = 0.3 | at ε_S = 0.5 |", "|---|---|---|"]

        def cell(v):
            return "–" if v is None else f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"

        for a, b, v in paired:
            lines.append(f"| {a} ÷ {b} | {cell(v['0.3'])} | {cell(v['0.5'])} |")
    path.write_text("\n".join(lines) + "\n")


def plot_rejections(res: dict, path: Path, eff: float = 0.3, bdt: str = "bdt") -> None:
    """1/ε_B at ``eff`` per model with its 68% interval, beside the BDT's (model ``bdt``) band and twice it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res)
    key = f"inv_eff_bkg_at_{eff:g}"
    val = np.array([res[n][key] or np.nan for n in names], dtype=float)
    lo = np.array([(res[n][key + "_68cl"][0] or np.nan) for n in names], dtype=float)
    hi = np.array([(res[n][key + "_68cl"][1] or np.nan) for n in names], dtype=float)
    fig, ax = plt.subplots(figsize=(8.0, 0.45 * len(names) + 1.5))
    y = np.arange(len(names))
    ax.errorbar(val, y, xerr=[val - lo, hi - val], fmt="o", color="k", capsize=3)
    if bdt in res and res[bdt][key] and all(res[bdt][key + "_68cl"]):  # None: no QCD jet passed
        b, (blo, bhi) = res[bdt][key], res[bdt][key + "_68cl"]
        ax.axvspan(blo, bhi, color="tab:blue", alpha=0.2, label=f"BDT {b:.0f} (68%)")
        ax.axvline(2 * b, color="tab:red", ls="--", label=f"2 × BDT = {2 * b:.0f}")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(f"background rejection 1/ε_B at ε_S = {eff:g}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    n_b = next(iter(res.values()))["n_background"]
    ax.set_title(f"holdout: {n_b} QCD jets; points: 68% bootstrap intervals", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top-jets", type=int, default=20000)
    ap.add_argument("--qcd-jets", type=int, default=100000)
    ap.add_argument("--top-budget-s", type=float, default=float("inf"), help="generation time limit for top")
    ap.add_argument("--qcd-budget-s", type=float, default=float("inf"), help="generation time limit for QCD")
    ap.add_argument("--seed", type=int, default=7, help="holdout seed (the training sample of top_tagging.py used 1)")
    ap.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                    help="generator processes (the events depend on it: each worker has its own seed stream)")
    ap.add_argument("--round-events", type=int, default=20000, help="events per generation round (one file each)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data" / "top_tagging_holdout")
    ap.add_argument("--reuse", action="store_true", help="reuse holdout files already in --data-dir")
    ap.add_argument("--artifacts", nargs="+", default=[str(HERE / "results" / "top_tagging_artifacts")],
                    help="artifacts folders of top_tagging.py runs, DIR or LABEL=DIR (models then named LABEL:model)")
    ap.add_argument("--ensemble", nargs="*", default=[], metavar="NAME=a+b",
                    help="also score the mean probability of these models")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--scores-from", type=Path, help="recompute the metrics from a saved scores file")
    ap.add_argument("--with-scores", type=Path, nargs="*", default=[], metavar="NPZ",
                    help="add the models of earlier runs' scores files on the same holdout jets (labels must "
                         "match jet for jet), e.g. to compare with models whose artifacts are gone")
    ap.add_argument("--n-bootstrap", type=int, default=300)
    ap.add_argument("--bdt", default="bdt", help="the model that ratios are taken to (e.g. LABEL:bdt)")
    ap.add_argument("--compare", nargs="*", default=[], metavar="A/B",
                    help="also give the paired rejection ratio of model A to model B (e.g. c32:deeptop/c16:deeptop)")
    args = ap.parse_args(argv)
    if args.seed == 1:
        ap.error("--seed 1 is the training sample's seed; a holdout needs another")
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    args.results.mkdir(parents=True, exist_ok=True)
    scores_path = args.results / "top_tagging_holdout_scores.npz"
    gen_s: dict = {}
    files: dict = {}
    if args.scores_from:
        with np.load(args.scores_from, allow_pickle=False) as f:
            scores = {k: f[k] for k in f.files}
        prev = args.scores_from.with_name("top_tagging_holdout.json")
        machine = json.loads(prev.read_text()).get("machine") if prev.is_file() else None
    else:
        from coffea_jetimg.training import resolve_device

        device = resolve_device(args.device)
        log(f"holdout: up to {args.top_jets} top and {args.qcd_jets} QCD jets, "
            f"{args.workers} workers, seed {args.seed}")
        top_files, gen_s["top"] = generate_holdout("top", TOP, args.top_jets, args.top_budget_s, args.data_dir,
                                                   args.seed, args.workers, args.round_events, args.reuse, log)
        qcd_files, gen_s["qcd"] = generate_holdout("qcd", QCD, args.qcd_jets, args.qcd_budget_s, args.data_dir,
                                                   args.seed, args.workers, args.round_events, args.reuse, log)
        artifacts = [(a.partition("=")[0], Path(a.partition("=")[2])) if "=" in a else (None, Path(a))
                     for a in args.artifacts]
        files = {"top": [Path(f).name for f in top_files], "qcd": [Path(f).name for f in qcd_files]}
        scores = score_models(artifacts, top_files, qcd_files, args.top_jets, args.qcd_jets, device, log)
        np.savez_compressed(scores_path, **scores)
        import torch

        machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                   "torch": torch.__version__, "device": device}
    added = merge_scores(scores, args.with_scores)
    if added:
        log(f"added from {', '.join(map(str, args.with_scores))}: {', '.join(added)}")
    add_ensembles(scores, args.ensemble)
    pairs = []
    for text in args.compare:
        a, sep, b = text.partition("/")
        if not (sep and a and b):
            ap.error(f"--compare {text!r}: expected A/B, two model names")
        pairs.append((a, b))
    same_as = drop_repeats(scores, keep=[args.bdt] + [n for pair in pairs for n in pair])
    for name, first in same_as.items():
        log(f"{name}: the same scores as {first} (e.g. one BDT retrained on the same jets); left out of the tables")
    try:
        res = metrics(scores, n_boot=args.n_bootstrap, reference=args.bdt, pairs=pairs)
    except KeyError as err:
        ap.error(str(err).strip("'\""))
    n_top = int(scores["y"].sum())
    summary = {
        "benchmark": "top taggers of analysis/top_tagging.py on an independent holdout sample",
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "jets": {"top": n_top, "qcd": int(len(scores["y"]) - n_top)},
        "seed": args.seed, "n_bootstrap": args.n_bootstrap,
        "generation_time_s": {k: round(v, 1) for k, v in gen_s.items()},
        "files": files, "workers": None if args.scores_from else args.workers,
        "round_events": None if args.scores_from else args.round_events,
        "machine": machine,
        "compare": pairs,
        "with_scores": {"files": [str(p) for p in args.with_scores], "models": added},
        "same_scores_as": same_as,
        "results": res,
    }
    (args.results / "top_tagging_holdout.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
    write_markdown(summary, args.results / "top_tagging_holdout.md")
    plot_rejections(_finite(res), args.results / "top_tagging_holdout_rejection.png", bdt=args.bdt)
    for name, m in res.items():
        extra = ""
        if "ratio_to_bdt_at_0.3" in m:
            lo, hi = m["ratio_to_bdt_at_0.3_68cl"]
            extra = f", /BDT(0.3) {m['ratio_to_bdt_at_0.3']:.2f} [{lo:.2f}, {hi:.2f}]"
        log(f"{name}: AUC {m['auc']:.4f}, 1/eB(0.3) {m['inv_eff_bkg_at_0.3']:.0f} "
            f"({m['n_background_pass_at_0.3']:g} QCD), 1/eB(0.5) {m['inv_eff_bkg_at_0.5']:.0f}{extra}")
    log(f"wrote {args.results / 'top_tagging_holdout.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
