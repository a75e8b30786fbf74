"""Test-set figures of a trained tagger and its training curves.

The ROC, AUC and 1/ε_B at ε_S come from :mod:`coffea_jetimg.metrics` (the one computation the
studies and the analysis scripts use too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import TrainingError
from .history import History

__all__ = ["evaluate_scores", "plot_history"]


def evaluate_scores(scores: Any, y: Any, weights: Any = None,
                    efficiencies: Sequence[float] = (0.3, 0.5)) -> dict[str, Any]:
    """Test metrics of a binary tagger.

    Parameters
    ----------
    scores : ndarray (n,)
        Signal score (probability or logit; only the order matters except for accuracy, where
        probabilities are cut at 0.5).
    y : ndarray (n,)
        1 for signal, 0 for background.
    weights : ndarray (n,), optional
        Per-jet weights.
    efficiencies : sequence of float
        Signal efficiencies of the working points.

    Returns
    -------
    dict
        ``auc``, ``accuracy``, ``inv_eff_bkg_at_<ε>`` (background rejection 1/ε_B at those
        signal efficiencies, :func:`coffea_jetimg.metrics.working_point`, interpolated on the
        ROC; ``None`` when no background survives, with ``..._lower_bound`` = number of
        background jets), ``inv_eff_bkg_at_<ε>_interval`` (68 % Poisson interval of the
        passing background), ``n_signal``, ``n_background``.
    """
    from .. import metrics as M

    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(int)
    out: dict[str, Any] = {"n_signal": int((y == 1).sum()), "n_background": int((y == 0).sum())}
    if out["n_signal"] == 0 or out["n_background"] == 0:
        raise TrainingError("metrics need both signal and background jets in the test set")
    roc = M.roc_from_scores(scores, y == 1, weights)
    out["auc"] = M.auc(roc)
    prob = scores if (scores.min() >= 0 and scores.max() <= 1) else 1 / (1 + np.exp(-scores))
    out["accuracy"] = float(np.average((prob > 0.5) == (y == 1), weights=weights))
    for eff in efficiencies:
        wp = M.working_point(roc, eff)
        key = f"inv_eff_bkg_at_{eff:g}"
        if np.isfinite(wp.rejection):
            out[key] = float(wp.rejection)
        else:
            out[key] = None
            out[key + "_lower_bound"] = out["n_background"] if weights is None else wp.lower_limit
        out[key + "_interval"] = [float(v) if np.isfinite(v) else None for v in wp.interval]
    return out


def plot_history(history: History, output_dir: str | Path, name: str = "") -> list[Path]:
    """Write ``loss.png`` (train/val loss, adversary loss) and ``auc.png`` (val AUC) per epoch."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ep = np.arange(1, len(history.train_loss) + 1)
    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, history.train_loss, "o-", label="train")
    ax.plot(ep, history.val_loss, "s-", label="validation")
    adv = [a for a in history.adv_loss if a is not None]
    if adv:
        ax.plot(ep[: len(history.adv_loss)], [a if a is not None else np.nan for a in history.adv_loss], "^--",
                label="adversary (mass bins)")
    if history.best_epoch >= 0:
        ax.axvline(history.best_epoch + 1, color="gray", ls=":", label="best")
    ax.set_xlabel("epoch")
    ax.set_ylabel("weighted cross-entropy")
    ax.set_title(f"{name} loss" if name else "loss")
    ax.legend()
    fig.tight_layout()
    p = out / "loss.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, history.val_auc, "o-", color="C2")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation AUC")
    ax.set_title(f"{name} validation AUC" if name else "validation AUC")
    fig.tight_layout()
    p = out / "auc.png"
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths
