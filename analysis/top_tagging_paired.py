"""Two top_tagging.py runs of different sample sizes, scored on the same jets that neither saw.

``top_tagging.py --jets-per-class N`` takes the first N selected jets of each class from the
generated files, in file order, so the sample of a smaller run (``--reference-jets-per-class
M``, same ``--seed``) is the first M jets of each class of the larger one. This script rebuilds
the larger sample, takes its test split, drops the jets that the smaller run trained or
validated on, and scores every model of both runs on what is left: a paired comparison (the
same QCD jets for every model, so bootstrap intervals of ratios are narrow), with 68% bootstrap
intervals and ratios to a chosen BDT.

It first checks the correspondence: the reference run's BDT, scored on the reference run's own
test split rebuilt here, must give the AUC recorded in that run's top_tagging.json.

    python analysis/top_tagging_paired.py \\
        --artifacts r50k=analysis/results/top_tagging_artifacts \\
                    r100k=analysis/results/top_tagging_100k/top_tagging_artifacts \\
        --reference-json analysis/results/top_tagging.json --bdt r100k:bdt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from top_tagging import _finite, metrics
from top_tagging_holdout import _score, add_ensembles, models_and_inputs


def clean_test_jets(n_per_class: int, ref_per_class: int, seed: int):
    """Indices into the larger run's arrays (signal first, then background, ``n_per_class`` each):
    its test split less the jets of the reference run's train and validation splits."""
    from coffea_jetimg.training import split_indices

    _, _, te = split_indices(2 * n_per_class, (0.7, 0.15, 0.15), seed=seed)
    tr_r, va_r, _ = split_indices(2 * ref_per_class, (0.7, 0.15, 0.15), seed=seed)
    seen = np.concatenate([tr_r, va_r])
    # the reference run's index k: class jet k (signal) or k - M (background); map into the big arrays
    seen_big = np.where(seen < ref_per_class, seen, seen - ref_per_class + n_per_class)
    return np.setdiff1d(te, seen_big, assume_unique=True), te


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jets-per-class", type=int, default=100000, help="the larger run's sample size")
    ap.add_argument("--reference-jets-per-class", type=int, default=50000, help="the smaller run's sample size")
    ap.add_argument("--seed", type=int, default=1, help="the runs' sample seed")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data" / "top_tagging")
    ap.add_argument("--artifacts", nargs="+", required=True, help="LABEL=DIR of each run's artifacts folder")
    ap.add_argument("--reference-json", type=Path, help="the smaller run's top_tagging.json (correspondence check)")
    ap.add_argument("--reference-label", default="r50k", help="label of the smaller run among --artifacts")
    ap.add_argument("--bdt", default="r100k:bdt", help="the model that ratios are taken to")
    ap.add_argument("--ensemble", nargs="*", default=[], metavar="NAME=a+b")
    ap.add_argument("--n-bootstrap", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "top_tagging_paired")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    n, m = args.jets_per_class, args.reference_jets_per_class
    if m >= n:
        ap.error("--reference-jets-per-class must be smaller than --jets-per-class")
    top = sorted(str(p) for p in args.data_dir.glob(f"top_s{args.seed}_r*.root"))
    qcd = sorted(str(p) for p in args.data_dir.glob(f"qcd_s{args.seed}_r*.root"))
    def rnd(p):
        return int(Path(p).stem.rsplit("_r", 1)[1])

    top, qcd = sorted(top, key=rnd), sorted(qcd, key=rnd)
    artifacts = [(a.partition("=")[0], Path(a.partition("=")[2])) for a in args.artifacts]
    models, keys, sig, bkg = models_and_inputs(artifacts, top, qcd, n, n, args.device, log)
    n_s, n_b = len(next(iter(sig.values()))), len(next(iter(bkg.values())))
    if n_s != n or n_b != n:
        raise SystemExit(f"{args.data_dir}: {n_s} top and {n_b} QCD jets, need {n} each (run top_tagging.py first)")
    y = np.concatenate([np.ones(n, np.int8), np.zeros(n, np.int8)])
    data = {k: np.concatenate([sig[k], bkg[k]]) for k in sig}
    idx, te = clean_test_jets(n, m, args.seed)
    log(f"test split of the {n}/class run: {len(te)} jets; not trained or validated on by the {m}/class run: "
        f"{len(idx)} ({int(y[idx].sum())} top, {int((1 - y[idx]).sum())} QCD)")

    check = None
    ref_bdt = f"{args.reference_label}:bdt"
    if args.reference_json and ref_bdt in models:
        from coffea_jetimg import metrics as M
        from coffea_jetimg.training import split_indices

        ref_idx = np.concatenate([np.arange(m), n + np.arange(m)])  # the reference run's arrays
        _, _, te_r = split_indices(2 * m, (0.7, 0.15, 0.15), seed=args.seed)
        X = data[keys[ref_bdt]][ref_idx][te_r]
        auc = M.auc(M.roc_from_scores(_score(models[ref_bdt][0], X, log), y[ref_idx][te_r].astype(bool)))
        recorded = json.loads(args.reference_json.read_text())["results"]["bdt"]["auc"]
        check = {"reference_bdt_auc_rebuilt": auc, "reference_bdt_auc_recorded": recorded}
        log(f"correspondence: {ref_bdt} on the rebuilt test split of the {m}/class run: AUC {auc:.6f} "
            f"(recorded {recorded:.6f})")
        if abs(auc - recorded) > 1e-4:
            raise SystemExit("the rebuilt reference sample is not the one the reference run used")

    scores = {"y": y[idx]}
    for name, (model, _) in models.items():
        scores[name] = _score(model, data[keys[name]][idx], log)
    add_ensembles(scores, args.ensemble)
    if args.bdt not in scores:
        raise SystemExit(f"--bdt {args.bdt!r} is not among the models {sorted(set(scores) - {'y'})}")
    res = metrics(scores, n_boot=args.n_bootstrap, reference=args.bdt)
    args.results.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.results / "top_tagging_paired_scores.npz", **scores)
    summary = {
        "benchmark": "top_tagging.py runs of two sample sizes on the same unseen test jets",
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "jets": {"top": int(scores["y"].sum()), "qcd": int(len(idx) - scores["y"].sum())},
        "ratios_to": args.bdt, "correspondence_check": check, "n_bootstrap": args.n_bootstrap,
        "results": res,
    }
    (args.results / "top_tagging_paired.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
    lines = [
        "# Top taggers of two sample sizes on the same unseen test jets",
        "",
        f"Command: `{summary['command']}`  ",
        (f"Jets: {summary['jets']['top']} top + {summary['jets']['qcd']} QCD from the test split of the "
         f"{n}/class run that the {m}/class run neither trained nor validated on. Ratios to `{args.bdt}`; "
         f"68% bootstrap intervals ({args.n_bootstrap} resamples, paired: the same jets for every model)."),
        "",
        ("| model | AUC | 1/ε_B (ε_S=0.3) [68%] (QCD passing) | ÷ BDT (0.3) [68%] "
         "| 1/ε_B (ε_S=0.5) [68%] | ÷ BDT (0.5) [68%] |"),
        "|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        cells = []
        for eff in (0.3, 0.5):
            lo, hi = r[f"inv_eff_bkg_at_{eff:g}_68cl"]
            rej = f"{r[f'inv_eff_bkg_at_{eff:g}']:.0f} [{lo:.0f}, {hi:.0f}]"
            if eff == 0.3:
                rej += f" ({r['n_background_pass_at_0.3']:g})"
            rt = r.get(f"ratio_to_bdt_at_{eff:g}")
            rlo, rhi = r.get(f"ratio_to_bdt_at_{eff:g}_68cl", (None, None))
            cells += [rej, f"{rt:.2f} [{rlo:.2f}, {rhi:.2f}]" if rt is not None else "–"]
        lines.append(f"| {name} | {r['auc']:.4f} | " + " | ".join(cells) + " |")
    (args.results / "top_tagging_paired.md").write_text("\n".join(lines) + "\n")
    for name, r in res.items():
        log(f"{name}: AUC {r['auc']:.4f}, 1/eB(0.3) {r['inv_eff_bkg_at_0.3']:.0f} "
            f"({r['n_background_pass_at_0.3']:g} QCD)"
            + (f", /BDT {r['ratio_to_bdt_at_0.3']:.2f} {np.round(r['ratio_to_bdt_at_0.3_68cl'], 2).tolist()}"
               if "ratio_to_bdt_at_0.3" in r else ""))
    log(f"wrote {args.results / 'top_tagging_paired.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
