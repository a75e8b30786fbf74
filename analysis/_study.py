"""What the real-jet studies share: the ``coffea-jetimg`` steps (generate, train, run) as resumable
child processes, and the numbers and plots they take from the processor's merged histograms.

``qg_real_jets.py`` (AK4 quark/gluon beside ``Jet_qgl``) and ``ak8_real_jets.py`` (AK8 top
tagging beside ``FatJet_deepTag_TvsQCD``) are each a config and a few lines around these.
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
from typing import Any, Sequence

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load_config(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def git_sha() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=ROOT).stdout.strip()


def setup(name: str, doc: str | None, argv: list[str] | None) -> tuple[dict, Path, Path, Path]:
    """The command line every study has (``--config``, ``--data-dir``, ``--results``, ``--fresh``):
    ``(config, data folder, results folder, log file)``, folders made (emptied with ``--fresh``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=HERE / "configs" / f"{name}.toml")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data" / name)
    ap.add_argument("--results", type=Path, default=HERE / "results" / name)
    ap.add_argument("--fresh", action="store_true", help="regenerate, retrain and rerun")
    args = ap.parse_args(argv)
    data, res = args.data_dir, args.results
    if args.fresh:
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(res, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    res.mkdir(parents=True, exist_ok=True)
    return load_config(args.config), data, res, res / f"{name}.log"


def provenance(name: str, argv: list[str] | None, cfg: dict, spec: dict, timings: dict) -> dict:
    """The summary fields every study records: command, git SHA, date, machine, settings, training."""
    train, metrics = spec.get("training", {}), spec.get("metrics") or {}
    return {"command": f"python analysis/{name}.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "git_sha": git_sha(), "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {platform.python_version()}", "config": cfg,
            "selection": cfg["selection"], "timings": timings,
            "training": {"n_jets": train.get("n_jets"), "epochs_run": train.get("epochs_run"),
                         "test_auc": metrics.get("auc"), "train_time_s": metrics.get("train_time_s")}}


def run_real(cfg: dict, art: Path, runs: Path, log: Path, timings: dict, extra: Sequence[Any] = (),
             metadata: dict | None = None) -> Path:
    """:func:`run` over the ``[real] file`` (dataset ``cms_qcd_2017ul``) with its ``[real] stored`` taggers."""
    real_file = real_path(cfg)
    stored = [a for s in cfg["real"]["stored"] for a in ("--stored", s)]
    fileset = {"cms_qcd_2017ul": {"files": {str(real_file): "Events"}, **({"metadata": metadata} if metadata else {})}}
    return run(cfg, fileset, art, runs / "real", log, timings, [*extra, *stored])


def real_path(cfg: dict) -> Path:
    """The ``[real] file``, relative to the repository root."""
    return (ROOT / cfg["real"]["file"]).resolve()


def cli(args: Sequence[Any], log: Path) -> None:
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


def generate(cfg: dict, data: Path, log: Path, timings: dict) -> dict[str, dict[str, Path]]:
    """``{"train"|"holdout": {process: file}}`` from ``[sample]`` (files reused when present);
    ``train_events`` / ``holdout_events`` are one number or a table of one per process."""
    s = cfg["sample"]
    out: dict[str, dict[str, Path]] = {"train": {}, "holdout": {}}
    for part, sizes, seed in (("train", s["train_events"], s["seed_train"]),
                              ("holdout", s["holdout_events"], s["seed_holdout"])):
        for proc in s["processes"]:
            n = sizes[proc] if isinstance(sizes, dict) else sizes  # one size, or one per process
            path = data / f"{proc}_{part}_s{seed}_n{n}.root"
            if not path.exists():
                t0 = time.time()
                cli(["generate", "--process", proc, "--events", n, "--seed", seed, "--pt-min", s["generator_pt"][0],
                     "--pt-max", s["generator_pt"][1], *s.get("generate_extra", []), "--workers", s["workers"],
                     "--no-progress", "-o", path], log)
                timings[f"generate_{proc}_{part}_s"] = round(time.time() - t0, 1)
            out[part][proc] = path
    return out


def selection_args(cfg: dict, msd: Sequence[float] | None = None) -> list[Any]:
    """The jet selection flags of ``train`` and ``run``: ``[selection]``, with its soft-drop mass
    window ``msd`` (or the ``msd`` given here) when there is one."""
    sel = cfg["selection"]
    msd = msd if msd is not None else sel.get("msd")
    return ["--jets", sel["jets"], "--pt-min", sel["pt"][0], "--pt-max", sel["pt"][1], "--abs-eta-max",
            sel["abs_eta"], *(["--msd-min", msd[0], "--msd-max", msd[1]] if msd else [])]


def train(cfg: dict, labels: Sequence[Any], art: Path, log: Path, timings: dict, model: str | None = None,
          extra: Sequence[Any] = (), msd: Sequence[float] | None = None) -> dict:
    """``coffea-jetimg train`` with ``labels`` (``--signal ... --background ... --label-from ...``)
    and the ``[training]`` settings (``model`` and ``extra`` flags, e.g. ``--name``, override or add
    to them; ``msd`` replaces the selection's mass window); reused when ``art/spec.json`` exists."""
    if not (art / "spec.json").exists():
        t = cfg["training"]
        t0 = time.time()
        cli(["train", *labels, "--model", model or t["model"], *selection_args(cfg, msd), "--epochs", t["epochs"],
             "--patience", t["patience"], "--batch-size", t["batch_size"], "--max-minutes", t["max_minutes"],
             "--seed", t["seed"], *extra, "--no-progress", "-o", art], log)
        timings[f"train_{art.name}_s" if model else "train_s"] = round(time.time() - t0, 1)
    return json.loads((art / "spec.json").read_text())


def run(cfg: dict, fileset: dict, art: Path | Sequence[Path], out: Path, log: Path, timings: dict,
        extra: Sequence[Any], msd: Sequence[float] | None = None) -> Path:
    """``coffea-jetimg run`` on Dask (``[sample] workers``) over ``fileset`` with the model(s)
    ``art`` (``msd`` replaces the selection's mass window); reused when done."""
    arts = [art] if isinstance(art, (str, Path)) else list(art)
    if not (out / "hists.coffea").exists():
        out.mkdir(parents=True, exist_ok=True)
        fs = out / "fileset.json"
        fs.write_text(json.dumps(fileset, indent=1))
        t0 = time.time()
        cli(["run", "--fileset", fs, *[a for m in arts for a in ("--model", m)], *selection_args(cfg, msd),
             "--pt-bins", ",".join(f"{e:g}" for e in cfg["selection"]["pt_bins"]), "--executor", "dask",
             "--workers", cfg["sample"]["workers"], "--no-plots", "--no-progress", *extra, "-o", out], log)
        timings[f"run_{out.name}_s"] = round(time.time() - t0, 1)
    return out / "hists.coffea"


def sample_classes(out: dict, name: str, take: dict[str, str]) -> Any:
    """A score histogram whose class ``c`` holds only the jets of class ``c`` in dataset ``take[c]``
    (the processor's report merges datasets: a signal sample's jets of the background class would
    join the background sample's, another background than the one trained against)."""
    first = out[next(iter(take.values()))]["score"][name]
    h = first.copy()
    h.reset()
    for c, ds in take.items():
        src = out[ds]["score"][name]
        h.view(flow=True)[h.axes["class"].index(c)] = src.view(flow=True)[src.axes["class"].index(c)]
    return h


def figures(h: Any, signal: str, background: Sequence[str], n_boot: int, eff_s: float, seed: int = 0) -> dict:
    """AUC and 1/ε_B at ``eff_s`` of one score histogram, inclusive and per pT bin, with
    Poisson-bootstrap intervals of its counts (:func:`coffea_jetimg.metrics.bootstrap_counts`)."""
    from coffea_jetimg import metrics
    from coffea_jetimg.studies import score_counts

    edges = h.axes["score"].edges

    def one(pt_bin: int | None) -> dict:
        s, vs = score_counts(h, [signal], pt_bin)
        b, vb = score_counts(h, list(background), pt_bin)
        res: dict = {"n_signal": float(s.sum()), "n_background": float(b.sum())}
        if s.sum() <= 0 or b.sum() <= 0:
            return {**res, "reason": "no signal or no background jets"}
        roc = metrics.roc_from_counts(s, b, edges, vs, vb)
        _, auc_i = metrics.bootstrap_counts(lambda a, c: metrics.auc(metrics.roc_from_counts(a, c, edges)),
                                            s, b, vs, vb, n_boot=n_boot, seed=seed)
        _, rej_i = metrics.bootstrap_counts(
            lambda a, c: metrics.rejection_at(metrics.roc_from_counts(a, c, edges), eff_s), s, b, vs, vb,
            n_boot=n_boot, seed=seed)
        wp = metrics.working_point(roc, eff_s)
        return {**res, "auc": metrics.auc(roc), "auc_68": list(auc_i), "rejection": wp.rejection,
                "rejection_68": list(rej_i), "eff_b": 1 / wp.rejection if wp.rejection > 0 else math.nan}

    out: dict = {"signal": signal, "background": list(background), "inclusive": one(None), "pt_bins": []}
    pt = h.axes["pt"].edges
    for k in range(len(pt) - 1):
        out["pt_bins"].append({"pt": [float(pt[k]), float(pt[k + 1])], **one(k)})
    return out


def fmt_row(d: dict) -> str:
    """``AUC [68 %] | 1/ε_B [68 %] | n_S / n_B`` of :func:`figures`' entries."""
    if "auc" not in d:
        return f"– ({d.get('reason')}) | | {d['n_signal']:.0f} / {d['n_background']:.0f}"
    lo, hi = d["auc_68"]
    rlo, rhi = d["rejection_68"]
    return (f"{d['auc']:.3f} [{lo:.3f}, {hi:.3f}] | {d['rejection']:.2f} [{rlo:.2f}, {rhi:.2f}] | "
            f"{d['n_signal']:.0f} / {d['n_background']:.0f}")


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def plot_rocs(curves: dict[str, tuple[Any, str]], signal: str, background: Sequence[str], path: Path, title: str,
              xlabel: str, ylabel: str, ylim: tuple[float, float] = (1, 100)) -> None:
    """1/ε_B against ε_S of several score histograms, ``{label: (hist, line style)}``."""
    from coffea_jetimg.studies import score_roc

    p = plt()
    fig, ax = p.subplots(figsize=(7.5, 6.5))
    for label, (h, style) in curves.items():
        r = score_roc(h, signal, list(background))
        ok = (r.eff_b > 0) & (r.eff_s > 0)
        ax.plot(r.eff_s[ok], r.rejection[ok], style, lw=2, label=label)
    e = np.linspace(0.01, 1, 50)
    ax.plot(e, 1 / e, ":", color="grey", label="random")
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    p.close(fig)


def finish(fig: Any, axes: Sequence[Any], title: str, path: Path) -> None:
    """Label, title and save a figure of density panels."""
    for ax in axes:
        ax.set_ylabel("Normalised jets")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt().close(fig)


def normalised(h: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """Score density of ``classes`` (per unit score), its error, and the number of jets."""
    from coffea_jetimg.studies import score_counts

    v, var = score_counts(h, list(classes))
    n = float(v.sum())
    w = np.diff(h.axes["score"].edges)
    if n <= 0:
        return np.zeros_like(v), np.zeros_like(v), 0.0
    return v / n / w, np.sqrt(var) / n / w, n


def publish(name: str, res: Path, summary: dict, write_markdown: Any, runs: Path, run_names: Sequence[str]) -> None:
    """The end of every study: ``res/NAME.json`` and ``res/NAME.md`` (``write_markdown(summary, path)``),
    the runs' ``summary.json`` and ``hists.coffea`` copied beside them, and the table printed."""
    (res / f"{name}.json").write_text(json.dumps(summary, indent=1, default=float))
    write_markdown(summary, res / f"{name}.md")
    copy_runs(runs, res, run_names)
    print((res / f"{name}.md").read_text())


def copy_runs(runs: Path, res: Path, names: Sequence[str]) -> None:
    for sub in names:
        (res / sub).mkdir(exist_ok=True)
        for f in ("summary.json", "hists.coffea"):
            shutil.copy(runs / sub / f, res / sub / f)
