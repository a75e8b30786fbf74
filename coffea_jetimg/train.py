"""Training taggers on ROOT files through the processor's own input code path.

Two levels:

* :func:`fit` trains any torch model on numpy arrays ``X`` (``(n, *input_shape)``) and labels
  ``y`` (``(n,)`` int class indices): seeded, class-balanced, Adam, early stopping on the
  validation loss, tqdm progress with loss and validation AUC, checkpoints and resume,
  optional per-jet JES-scale augmentation and mass decorrelation (adversary or DisCo).
* :func:`train_model` reads signal and background files with
  :func:`coffea_jetimg.open_events` → :func:`coffea_jetimg.constituents` →
  :func:`coffea_jetimg.inputs.build_inputs` (exactly what the processor does with a saved
  model's ``spec["input"]``), selects jets, splits train/val/test (70/15/15), calls
  :func:`fit`, measures the test set, and writes an artifact with
  :func:`coffea_jetimg.artifact.save_artifact` plus training-curve PNGs.

Mass decorrelation
------------------
``decorrelate='adversary'`` (Louppe, Kagan, Cranmer arXiv:1611.01046; Shimmin et al.
arXiv:1703.03507): an adversary network reads the classifier's signal logit and predicts the
bin of the jet (soft-drop) mass of *background* jets (bins are training-set background
quantiles). Updates alternate: the adversary minimises its cross-entropy ``L_adv`` on the
detached classifier output; then the classifier minimises ``L_clf − λ·L_adv`` with the
adversary fixed, so its gradient includes the adversarial term.

``decorrelate='disco'`` (Kasieczka, Shih arXiv:2001.05310): the classifier minimises
``L_clf + λ·dCorr²(score, mass)`` over background jets in each batch, with the (weighted)
distance correlation :func:`distance_correlation`.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import TrainingError

__all__ = [
    "fit", "train_model", "History", "adversary_loss", "mass_bin_edges", "evaluate_scores", "predict", "distance_correlation", "Adversary",
    "split_indices", "balanced_weights", "load_jets", "make_input_spec", "plot_history", "resolve_device",
    "TrainingError",
]


# ----------------------------------------------------------------------------- small helpers

def resolve_device(device: str | None = "auto") -> str:
    """``'auto'`` → ``'cuda'`` when available, else ``'cpu'``; other strings pass through."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {device!r} asked for, but torch sees no CUDA device")
    return str(device)


def split_indices(n: int, fractions=(0.7, 0.15, 0.15), seed: int = 0):
    """Seeded random split of ``range(n)`` into (train, val, test) index arrays."""
    f = np.asarray(fractions, dtype=np.float64)
    if len(f) != 3 or np.any(f < 0) or f.sum() <= 0:
        raise TrainingError(f"split fractions must be three non-negative numbers, got {fractions}")
    f = f / f.sum()
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(f[0] * n))
    n_val = int(round(f[1] * n))
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def balanced_weights(y, n_classes: int | None = None) -> np.ndarray:
    """Per-example weights ``n / (k · n_c)`` so every class carries the same total weight."""
    y = np.asarray(y, dtype=np.int64)
    k = int(n_classes or (y.max() + 1 if len(y) else 1))
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w_class = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return w_class[y]


def distance_correlation(x, y, weights=None):
    """Squared distance correlation dCorr²(x, y) of two 1D torch tensors (Székely et al.).

    0 for independent variables (in the large-sample limit), 1 for a linear relation. With
    ``weights`` (normalised to mean 1 here) as in the DisCo paper. O(n²) memory.
    """
    import torch

    x = x.reshape(-1)
    y = y.reshape(-1).to(x.dtype)
    n = x.shape[0]
    w = torch.ones_like(x) if weights is None else weights.reshape(-1).to(x.dtype)
    w = w * (n / w.sum())
    a = (x.unsqueeze(0) - x.unsqueeze(1)).abs()
    b = (y.unsqueeze(0) - y.unsqueeze(1)).abs()
    a_mean = (a * w).mean(dim=1)
    b_mean = (b * w).mean(dim=1)
    A = a - a_mean.unsqueeze(0) - a_mean.unsqueeze(1) + (a_mean * w).mean()
    B = b - b_mean.unsqueeze(0) - b_mean.unsqueeze(1) + (b_mean * w).mean()
    ww = w.unsqueeze(0) * w.unsqueeze(1)
    ab = (A * B * ww).mean()
    aa = (A * A * ww).mean()
    bb = (B * B * ww).mean()
    return ab / torch.sqrt(aa * bb + 1e-20)


def evaluate_scores(scores, y, weights=None, efficiencies=(0.3, 0.5)) -> dict:
    """Test metrics of a binary tagger.

    Parameters
    ----------
    scores : ndarray (n,)
        Signal score (probability or logit; only the order matters except for accuracy, where
        probabilities are cut at 0.5).
    y : ndarray (n,)
        1 for signal, 0 for background.

    Returns
    -------
    dict
        ``auc``, ``accuracy``, ``inv_eff_bkg_at_0.3``, ``inv_eff_bkg_at_0.5`` (background
        rejection 1/ε_B at those signal efficiencies, linearly interpolated on the ROC curve;
        ``None`` when no background survives, with ``..._lower_bound`` = number of background
        jets), ``n_signal``, ``n_background``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(int)
    out = {"n_signal": int((y == 1).sum()), "n_background": int((y == 0).sum())}
    if out["n_signal"] == 0 or out["n_background"] == 0:
        raise TrainingError("metrics need both signal and background jets in the test set")
    out["auc"] = float(roc_auc_score(y, scores, sample_weight=weights))
    prob = scores if (scores.min() >= 0 and scores.max() <= 1) else 1 / (1 + np.exp(-scores))
    out["accuracy"] = float(np.average((prob > 0.5) == (y == 1), weights=weights))
    fpr, tpr, _ = roc_curve(y, scores, sample_weight=weights)
    for eff in efficiencies:
        eb = float(np.interp(eff, tpr, fpr))
        key = f"inv_eff_bkg_at_{eff:g}"
        if eb > 0:
            out[key] = 1.0 / eb
        else:
            out[key] = None
            out[key + "_lower_bound"] = out["n_background"]
    return out


class Adversary:  # namespace for the factory, keeps torch import lazy
    """``Adversary.build(n_bins)``: an MLP signal-logit → logits over ``n_bins`` mass bins."""

    @staticmethod
    def build(n_bins: int, hidden: int = 64):
        from torch import nn

        return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_bins))


@dataclass
class History:
    """Per-epoch training record (returned by :func:`fit`, stored in the artifact spec)."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_auc: list = field(default_factory=list)
    adv_loss: list = field(default_factory=list)
    decor_penalty: list = field(default_factory=list)
    epoch_time_s: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("inf")
    monitor: str = "loss"
    swa_start: int | None = None
    stopped_early: bool = False
    stopped_on_time: bool = False

    @property
    def best_val_auc(self) -> float:
        """The validation AUC of ``best_epoch`` (NaN before any epoch)."""
        return float(self.val_auc[self.best_epoch]) if self.best_epoch >= 0 else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self) | {"best_val_auc": self.best_val_auc}  # derived, written for readers of the json
        for k in ("best_val_loss", "best_val_auc"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        d = dict(d)
        if d.get("best_val_loss") is None:
            d["best_val_loss"] = float("inf")
        d.pop("best_val_auc", None)  # derived from val_auc and best_epoch
        return cls(**d)


def _signal_logit(logits, signal_index: int):
    """A scalar per example: log p_signal − log(1 − p_signal) from the class logits."""
    import torch

    if logits.shape[1] == 2:
        return logits[:, signal_index] - logits[:, 1 - signal_index]
    logp = torch.log_softmax(logits, dim=1)
    ls = logp[:, signal_index]
    return ls - torch.log1p(-torch.exp(ls).clamp(max=1 - 1e-6))


def mass_bin_edges(mass, n_bins: int) -> np.ndarray:
    """Inner edges of ``n_bins`` quantile bins of ``mass`` (``np.searchsorted`` gives the bin)."""
    return np.unique(np.quantile(np.asarray(mass, dtype=np.float64), np.linspace(0, 1, n_bins + 1))[1:-1])


def adversary_loss(adversary, logits, y, mass_bin, weights, signal_index: int = 1):
    """Weighted cross-entropy of ``adversary`` predicting ``mass_bin`` from the classifier's
    signal logit, over the background examples (``y != signal_index``) of a batch.

    Gradients flow into ``logits`` (hence into the classifier) unless they are detached.
    Returns None when the batch has no background.
    """
    import torch

    bkg = y != signal_index
    if not bool(bkg.any()):
        return None
    s = _signal_logit(logits[bkg], signal_index).unsqueeze(1)
    ce = torch.nn.functional.cross_entropy(adversary(s), mass_bin[bkg], reduction="none")
    return (ce * weights[bkg]).sum() / weights[bkg].sum()


def predict(model, X, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """Softmax probabilities ``(n, n_classes)`` of ``model`` on numpy ``X`` (eval mode, no grad)."""
    import torch

    model = model.to(device).eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            xb = torch.as_tensor(np.asarray(X[i:i + batch_size]), dtype=torch.float32, device=device)
            outs.append(torch.softmax(model(xb), dim=1).cpu().numpy())
    n_classes = outs[0].shape[1] if outs else 2
    return np.concatenate(outs) if outs else np.zeros((0, n_classes), np.float32)


def _state_to_cpu(state: dict) -> dict:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def fit(model, X, y, *, X_val=None, y_val=None, mass=None, sample_weight=None,
        val_fraction: float = 0.15, epochs: int = 20, batch_size: int = 128, lr: float = 1e-3,
        weight_decay: float = 0.0, seed: int = 0, device: str = "auto", patience: int = 5,
        lr_decay: float = 1.0, lr_patience: int = 2, monitor: str = "loss",
        swa_start: int | None = None, swa_lr: float | None = None,
        balance: bool = True, signal_index: int = 1, decorrelate: str | None = None, lam: float = 0.0,
        mass_bins: int = 10, adversary=None, adv_lr: float | None = None, adv_steps: int = 1,
        pretrain_adversary_epochs: int = 1,
        jes_smear: float = 0.0, checkpoint: str | Path | None = None, resume: bool = False,
        max_seconds: float | None = None, progress: bool = True, log=None) -> History:
    """Train ``model`` in place on numpy arrays; the weights of the best validation epoch are kept.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(batch, n_classes)``.
    X : ndarray, float32, shape (n, *input_shape)
    y : ndarray of int, shape (n,)
        Class indices.
    X_val, y_val : ndarray, optional
        Validation set; default: a seeded ``val_fraction`` of ``X``.
    mass : ndarray (n,), optional
        Jet (soft-drop) mass in GeV of the training jets, needed for ``decorrelate``.
    sample_weight : ndarray (n,), optional
        Multiplies the class-balancing weights.
    epochs, batch_size, lr, weight_decay : training settings (Adam).
    patience : int
        Stop after this many epochs without a better validation ``monitor`` (0: never stop early).
    lr_decay, lr_patience : float, int
        Multiply the learning rate by ``lr_decay`` after ``lr_patience`` epochs without a better
        validation ``monitor`` (``torch.optim.lr_scheduler.ReduceLROnPlateau``); 1.0: constant rate.
    monitor : {'loss', 'auc'}
        What "better" means for keeping weights, early stopping and the learning-rate decay: a
        lower validation loss, or a higher validation AUC (signal class vs the rest). The AUC
        suits training with dropout or a decorrelation penalty, whose validation loss can move
        while the ranking of jets does not.
    swa_start, swa_lr : int, float, optional
        Stochastic weight averaging (Izmailov et al., arXiv:1803.05407): from epoch ``swa_start``
        (0-based) on, train at the constant rate ``swa_lr`` (default: the rate in use then) and
        average the weights (and batch-norm buffers) at the end of every epoch, with equal
        weights (``torch.optim.swa_utils.AveragedModel``). From that epoch on, the validation
        figures, the kept weights and early stopping are those of the averaged model, which
        replaces the best plain model; the learning-rate decay stops. The result is one network
        of the same shape, so it exports like any other.
    balance : bool
        Weight classes to equal total weight (train and validation loss).
    signal_index : int
        Which class is signal (for the validation AUC and decorrelation).
    decorrelate : {None, 'adversary', 'disco'}
    lam : float
        λ of ``L_clf − λ L_adv`` (adversary) or ``L_clf + λ dCorr²`` (DisCo).
    mass_bins : int
        Adversary target: quantile bins of the background training mass.
    adversary : torch.nn.Module, optional
        The adversary (signal logit ``(b, 1)`` → ``(b, n_bins)`` logits); default
        :meth:`Adversary.build`. Pass one to inspect it after training.
    jes_smear : float
        σ of a per-jet scale factor ``1 + σ·N(0, 1)`` (clipped to > 0.1) multiplying each training
        input every epoch: a JES shift of constituent 4-vectors for ``lorentz`` inputs (use only
        with inputs linear in the constituent momenta).
    checkpoint : path, optional
        Written after every epoch with ``torch.save`` (state dicts, history; tensors and plain
        types only, read back with ``torch.load(weights_only=True)``).
    resume : bool
        Continue from ``checkpoint`` if it exists.
    max_seconds : float, optional
        A time budget for the epochs of this call: stop before an epoch that would end past
        it (judged by the last epoch's time), keeping the best weights so far
        (``History.stopped_on_time``). For a run that must end by a deadline; resume it later
        from ``checkpoint`` to go on.

    Returns
    -------
    History
    """
    import torch
    from torch import nn

    device = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(X) != len(y):
        raise TrainingError(f"X has {len(X)} rows, y has {len(y)}")
    if decorrelate not in (None, "none", "adversary", "disco"):
        raise TrainingError(f"decorrelate must be None, 'adversary' or 'disco', got {decorrelate!r}")
    if decorrelate == "none":
        decorrelate = None
    if decorrelate and mass is None:
        raise TrainingError("decorrelation needs the jet mass of the training jets (mass=...)")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if X_val is None:
        idx_tr, idx_va, _ = split_indices(len(y), (1 - val_fraction, val_fraction, 0.0), seed)
        X_val, y_val = X[idx_va], y[idx_va]
        w_val = w[idx_va]
        X, y, w = X[idx_tr], y[idx_tr], w[idx_tr]
        mass = mass[idx_tr] if mass is not None else None
    else:
        X_val = np.asarray(X_val, dtype=np.float32)
        y_val = np.asarray(y_val, dtype=np.int64)
        w_val = np.ones(len(y_val))
    with torch.no_grad():
        n_classes = int(model.to("cpu").eval()(torch.as_tensor(X[:2])).shape[1])
    if balance:
        w = w * balanced_weights(y, n_classes)
        w_val = w_val * balanced_weights(y_val, n_classes)
    w = w / w.mean()
    w_val = w_val / max(w_val.mean(), 1e-12)

    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if not 0.0 < lr_decay <= 1.0:
        raise TrainingError(f"lr_decay must be in (0, 1], got {lr_decay!r}")
    if monitor not in ("loss", "auc"):
        raise TrainingError(f"monitor must be 'loss' or 'auc', got {monitor!r}")
    if swa_start is not None and not (isinstance(swa_start, int) and 0 <= swa_start < epochs):
        raise TrainingError(f"swa_start must be an epoch index in [0, {epochs}), got {swa_start!r}")
    if swa_lr is not None and not swa_lr > 0:
        raise TrainingError(f"swa_lr must be > 0, got {swa_lr!r}")
    swa_model = None
    if swa_start is not None:
        from torch.optim.swa_utils import AveragedModel

        swa_model = AveragedModel(model, use_buffers=True)
    sched = None
    if lr_decay < 1.0:
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min" if monitor == "loss" else "max", factor=lr_decay,
                                                           patience=max(int(lr_patience), 0))
    ce = nn.CrossEntropyLoss(reduction="none")

    adv_opt = None
    bin_edges = None
    if decorrelate == "adversary":
        bkg_mass = np.asarray(mass)[y != signal_index]
        bin_edges = mass_bin_edges(bkg_mass, mass_bins)
        torch.manual_seed(seed + 1)
        if adversary is None:
            adversary = Adversary.build(len(bin_edges) + 1)
        adversary = adversary.to(device)
        adv_opt = torch.optim.Adam(adversary.parameters(), lr=adv_lr or lr)
    else:
        adversary = None
    mass_t = torch.as_tensor(np.asarray(mass, dtype=np.float32)) if mass is not None else None
    mass_bin_t = torch.as_tensor(np.searchsorted(bin_edges, np.asarray(mass)), dtype=torch.long) if bin_edges is not None else None

    hist = History(monitor=monitor, swa_start=swa_start)
    best_state = _state_to_cpu(model.state_dict())
    start_epoch = 0
    bad_epochs = 0
    ckpt = Path(checkpoint) if checkpoint else None
    if resume and ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and "scheduler" in state:
            sched.load_state_dict(state["scheduler"])
        best_state = state["best_model"]
        if adversary is not None and "adversary" in state:
            adversary.load_state_dict(state["adversary"])
            adv_opt.load_state_dict(state["adversary_optimizer"])
        hist = History.from_dict(json.loads(state["history_json"]))
        for name, value in (("monitor", monitor), ("swa_start", swa_start)):
            if getattr(hist, name) != value:
                raise TrainingError(f"checkpoint {ckpt} was trained with {name}={getattr(hist, name)!r}; "
                                    f"resume it with that, not {name}={value!r}")
        if swa_model is not None and "swa_model" in state:
            swa_model.load_state_dict(state["swa_model"])
        start_epoch = int(state["epoch"]) + 1
        bad_epochs = int(state["bad_epochs"])
        rng = np.random.default_rng([seed, start_epoch])
        if log:
            log(f"resumed from {ckpt} at epoch {start_epoch}")

    Xt = torch.as_tensor(X)
    yt = torch.as_tensor(y)
    wt = torch.as_tensor(w, dtype=torch.float32)
    n = len(y)

    def _adv_loss(logits, idx):
        return adversary_loss(adversary, logits, yt[idx].to(device), mass_bin_t[idx].to(device),
                              wt[idx].to(device), signal_index)

    def _batches():
        perm = rng.permutation(n)
        for i in range(0, n, batch_size):
            yield torch.as_tensor(perm[i:i + batch_size])

    def _scale(xb):
        if jes_smear <= 0:
            return xb
        f = torch.as_tensor(np.clip(1 + jes_smear * rng.standard_normal(len(xb)), 0.1, None), dtype=torch.float32)
        return xb * f.view(-1, *([1] * (xb.ndim - 1))).to(xb.device)

    # adversary pre-training on the (fixed) initial classifier
    if adversary is not None and start_epoch == 0:
        for _ in range(pretrain_adversary_epochs):
            model.eval()
            for idx in _batches():
                with torch.no_grad():
                    logits = model(Xt[idx].to(device))
                la = _adv_loss(logits, idx)
                if la is not None:
                    adv_opt.zero_grad()
                    la.backward()
                    adv_opt.step()

    bar = None
    try:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch", disable=not progress, leave=True)
    except ImportError:  # pragma: no cover
        pass

    t_start = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        averaging = swa_model is not None and epoch >= swa_start
        if averaging and epoch == swa_start and swa_lr is not None:
            for g in opt.param_groups:
                g["lr"] = swa_lr
        model.train()
        tot = tot_w = tot_adv = tot_pen = 0.0
        n_adv = 0
        for idx in _batches():
            xb = _scale(Xt[idx]).to(device)
            yb = yt[idx].to(device)
            wb = wt[idx].to(device)
            logits = model(xb)
            if adversary is not None:
                # 1) adversary step(s) on the detached classifier output (the adversary's own loss
                #    is what the history records, for any λ)
                logits_d = logits.detach()
                for step in range(adv_steps):
                    la = _adv_loss(logits_d, idx)
                    if la is not None:
                        adv_opt.zero_grad()
                        la.backward()
                        adv_opt.step()
                        if step == adv_steps - 1:
                            tot_adv += la.item()
                            n_adv += 1
            l_clf = (ce(logits, yb) * wb).sum() / wb.sum()
            loss = l_clf
            if adversary is not None and lam != 0:
                # 2) classifier step against the updated, frozen adversary
                for p in adversary.parameters():
                    p.requires_grad_(False)
                la = _adv_loss(logits, idx)
                for p in adversary.parameters():
                    p.requires_grad_(True)
                if la is not None:
                    loss = l_clf - lam * la
            elif decorrelate == "disco":
                bkg = yb != signal_index
                if int(bkg.sum()) > 2:
                    score = torch.softmax(logits, 1)[:, signal_index]
                    pen = distance_correlation(score[bkg], mass_t[idx].to(device)[bkg], wb[bkg])
                    loss = l_clf + lam * pen
                    tot_pen += pen.item()
                    n_adv += 1
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += l_clf.item() * wb.sum().item()
            tot_w += wb.sum().item()
        train_loss = tot / max(tot_w, 1e-12)

        if averaging:
            swa_model.update_parameters(model)
        kept = swa_model.module if averaging else model  # what this epoch's validation judges

        # validation
        probs = predict(kept, X_val, batch_size=max(batch_size, 512), device=device)
        p_true = np.clip(probs[np.arange(len(y_val)), y_val], 1e-7, 1.0)
        val_loss = float(np.sum(-np.log(p_true) * w_val) / np.sum(w_val))
        try:
            val_auc = evaluate_scores(probs[:, signal_index], (y_val == signal_index).astype(int))["auc"]
        except (TrainingError, ValueError):
            val_auc = float("nan")
        hist.train_loss.append(train_loss)
        hist.val_loss.append(val_loss)
        hist.val_auc.append(val_auc)
        hist.adv_loss.append(tot_adv / n_adv if (adversary is not None and n_adv) else None)
        hist.decor_penalty.append(tot_pen / n_adv if (decorrelate == "disco" and n_adv) else None)
        hist.epoch_time_s.append(time.perf_counter() - t0)
        hist.lr.append(float(opt.param_groups[0]["lr"]))  # the rate this epoch trained with
        if averaging and epoch == swa_start:  # the first average replaces the best plain model
            improved = True
        elif monitor == "loss":
            improved = val_loss < hist.best_val_loss - 1e-6
        else:  # a NaN AUC (one class in the validation set) never improves on a finite one
            best = hist.best_val_auc if math.isfinite(hist.best_val_auc) else -math.inf
            improved = hist.best_epoch < 0 or bool(val_auc > best + 1e-6)
        if sched is not None and not averaging:
            sched.step(val_loss if monitor == "loss" else (val_auc if math.isfinite(val_auc) else 0.0))
        if improved:
            hist.best_val_loss = val_loss
            hist.best_epoch = epoch
            best_state = _state_to_cpu(kept.state_dict())
            bad_epochs = 0
        else:
            bad_epochs += 1
        if bar is not None:
            post = {"loss": f"{train_loss:.4f}", "val_loss": f"{val_loss:.4f}", "val_auc": f"{val_auc:.4f}"}
            if hist.adv_loss[-1] is not None:
                post["adv"] = f"{hist.adv_loss[-1]:.3f}"
            bar.set_postfix(post)
            bar.update(1)
        if log:
            avg = ""
            if averaging:
                n_avg = int(swa_model.n_averaged)
                avg = f" (weights averaged over {n_avg} epoch{'s' if n_avg > 1 else ''})"
            log(f"epoch {epoch}: loss {train_loss:.4f} val_loss {val_loss:.4f} val_auc {val_auc:.4f}{avg}")
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "best_model": best_state,
                     "epoch": epoch, "bad_epochs": bad_epochs, "history_json": json.dumps(hist.to_dict())}
            if sched is not None:
                state["scheduler"] = sched.state_dict()
            if averaging:
                state["swa_model"] = swa_model.state_dict()
            if adversary is not None:
                state["adversary"] = adversary.state_dict()
                state["adversary_optimizer"] = adv_opt.state_dict()
            tmp = ckpt.with_name(ckpt.name + ".tmp")
            torch.save(state, tmp)
            tmp.replace(ckpt)
        if patience and bad_epochs >= patience:
            hist.stopped_early = True
            break
        if max_seconds is not None and epoch + 1 < epochs and \
                time.perf_counter() - t_start + hist.epoch_time_s[-1] > max_seconds:
            hist.stopped_on_time = True
            if log:
                log(f"stopping after epoch {epoch}: another epoch would pass the {max_seconds:.0f} s budget")
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return hist


# ----------------------------------------------------------------------------- reading jets

def make_input_spec(architecture: str, *, image_preset: str | None = None, image_spec=None,
                    n_constituents: int = 40, features: Sequence[str] | None = None, jets: str = "FatJet",
                    event_image_spec: dict | None = None, image_overrides: dict | None = None) -> dict:
    """The artifact ``input`` spec for an architecture (``shape`` filled in when known).

    Image models use ``image_spec`` or the preset ``image_preset`` (default: the preset named
    like the architecture, else ``'komiske'``), with the :class:`~coffea_jetimg.images.JetImageSpec`
    fields in ``image_overrides`` replaced (e.g. ``{"channels": ("charged", "neutral"),
    "normalize": "sum_all"}`` for colour images); ``lola`` uses ``n_constituents``; ``fc`` /
    ``maxout`` take images if an image preset/spec is given, else ``features`` if given, else
    4-vectors; the ResNets take event images.
    """
    from .models import input_kind

    kind = input_kind(architecture)
    if kind == "any":
        kind = "image" if (image_preset or image_spec or image_overrides) else ("features" if features else "lorentz")
    if image_overrides and kind != "image":
        raise TrainingError(f"image settings {image_overrides} given, but {architecture} takes {kind} inputs")
    spec = {"kind": kind, "image_spec": None, "n_constituents": None, "features": None,
            "event_image_spec": None, "jets": jets, "shape": None}
    if kind == "image":
        from .images import JetImageSpec

        if image_spec is None:
            from .images import PRESETS

            name = image_preset or (architecture if architecture in PRESETS else "komiske")
            image_spec = JetImageSpec.preset(name)
        elif isinstance(image_spec, dict):
            image_spec = JetImageSpec.from_dict(image_spec)
        if image_overrides:
            try:
                image_spec = JetImageSpec.from_dict({**image_spec.to_dict(), **image_overrides})
            except (TypeError, ValueError) as err:
                raise TrainingError(f"image settings {image_overrides}: {err}") from None
        spec["image_spec"] = image_spec.to_dict()
        npix = image_spec.npix if isinstance(image_spec.npix, (tuple, list)) else (image_spec.npix,) * 2
        spec["shape"] = [len(image_spec.channels), int(npix[0]), int(npix[1])]
    elif kind == "lorentz":
        spec["n_constituents"] = int(n_constituents)
        spec["shape"] = [4, int(n_constituents)]
    elif kind == "features":
        if not features:
            raise TrainingError(f"{architecture} on features needs a list of features")
        spec["features"] = list(features)
        spec["shape"] = [len(features)]
    else:
        spec["event_image_spec"] = event_image_spec
    return spec


def _field(arr, name):
    try:
        return name in arr.fields
    except Exception:
        return False


def load_jets(files, input_spec: dict, *, jets: str = "FatJet", pt_range=None, abs_eta_max: float | None = None,
              truth_label: int | None = None, max_jets: int | None = None, jes_smear: float = 0.0,
              seed: int = 0) -> tuple[np.ndarray, dict]:
    """Network inputs and jet quantities of the selected jets of ``files``.

    Parameters
    ----------
    files : list of str
        ROOT files (generated or real PFNano).
    input_spec : dict
        The artifact ``input`` spec (:func:`make_input_spec`).
    pt_range : (float, float), optional
        Keep jets with ``lo <= pt < hi`` (GeV).
    abs_eta_max : float, optional
        Keep jets with ``|eta| < abs_eta_max``.
    truth_label : int, optional
        Keep only jets with ``truthLabel == truth_label`` when the jets have that field
        (0 QCD, 1 top, 2 W for generated files); ignored (with a warning) otherwise.
    max_jets : int, optional
        Stop after this many jets.
    jes_smear : float
        If > 0, each jet's constituents have pt and mass scaled by ``1 + jes_smear·N(0,1)``
        before the inputs are built (a JES-varied copy for "hardened" training).

    Returns
    -------
    X : ndarray float32 ``(n_jets, *shape)`` (``(n_events, ...)`` for event images)
    info : dict of ndarray
        ``pt``, ``eta``, ``mass``, ``msoftdrop`` (GeV; ``mass`` when absent) and ``truthLabel``
        (-1 when absent) per selected jet, and ``file_index``.
    """
    import awkward as ak

    from ._io import open_events
    from ._constituents import constituents
    from .inputs import build_inputs, constituent_fields

    rng = np.random.default_rng(seed)
    Xs, infos = [], []
    n_total = 0
    warned = False
    for fi, path in enumerate(files):
        # virtual: only the branches the inputs touch are read (eager reads the whole file)
        events = open_events(str(path), mode="virtual")
        if input_spec["kind"] == "event_image":
            X = build_inputs(input_spec, events, jets)
            info = {"pt": np.zeros(len(X)), "eta": np.zeros(len(X)), "mass": np.zeros(len(X)),
                    "msoftdrop": np.zeros(len(X)), "truthLabel": np.full(len(X), -1)}
        else:
            j = events[jets]
            mask = ak.ones_like(j.pt, dtype=bool)
            if pt_range is not None:
                mask = mask & (j.pt >= pt_range[0]) & (j.pt < pt_range[1])
            if abs_eta_max is not None:
                mask = mask & (abs(j.eta) < abs_eta_max)
            if truth_label is not None:
                if _field(j, "truthLabel"):
                    mask = mask & (j.truthLabel == truth_label)
                elif not warned:
                    warnings.warn(f"{path}: jets have no truthLabel; truth requirement {truth_label} not applied")
                    warned = True
            cands = None
            if input_spec["kind"] in ("image", "lorentz"):
                cands = constituents(events, jets, fields=constituent_fields(input_spec))
                if jes_smear > 0:
                    n_per_event = ak.num(cands, axis=1)
                    flat_jets = ak.flatten(cands, axis=1)
                    f = np.clip(1 + jes_smear * rng.standard_normal(len(flat_jets)), 0.1, None)
                    fj = ak.Array(f)
                    flat_jets = ak.with_field(flat_jets, flat_jets.pt * fj, "pt")
                    flat_jets = ak.with_field(flat_jets, flat_jets.mass * fj, "mass")
                    cands = ak.unflatten(flat_jets, n_per_event)
            X = build_inputs(input_spec, events, jets, jet_mask=mask, cands=cands)
            sel = ak.flatten(j[mask])
            mass = ak.to_numpy(sel.mass).astype(np.float64)
            info = {
                "pt": ak.to_numpy(sel.pt).astype(np.float64),
                "eta": ak.to_numpy(sel.eta).astype(np.float64),
                "mass": mass,
                "msoftdrop": ak.to_numpy(sel.msoftdrop).astype(np.float64) if _field(sel, "msoftdrop") else mass,
                "truthLabel": ak.to_numpy(sel.truthLabel).astype(np.int64) if _field(sel, "truthLabel")
                else np.full(len(sel), -1, np.int64),
            }
        info["file_index"] = np.full(len(X), fi, np.int64)
        Xs.append(X)
        infos.append(info)
        n_total += len(X)
        if max_jets is not None and n_total >= max_jets:
            break
    if not Xs:
        raise TrainingError("no input files")
    X = np.concatenate(Xs)
    info = {k: np.concatenate([i[k] for i in infos]) for k in infos[0]}
    if max_jets is not None:
        X = X[:max_jets]
        info = {k: v[:max_jets] for k, v in info.items()}
    return X, info


# ----------------------------------------------------------------------------- plots

def plot_history(history: History, output_dir, name: str = "") -> list[Path]:
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


# ----------------------------------------------------------------------------- from files to an artifact

def train_model(signal_files, background_files, architecture: str, output_dir, *,
                image_preset: str | None = None, image_spec=None, image_overrides: dict | None = None,
                n_constituents: int = 40,
                features: Sequence[str] | None = None, jets: str = "FatJet", pt_range=None,
                abs_eta_max: float | None = 2.0, label_from: str = "file", signal_truth: int | None = 1,
                background_truth: int | None = 0, max_jets_per_class: int | None = None,
                class_names=("qcd", "top"), split=(0.7, 0.15, 0.15), epochs: int = 20, batch_size: int = 128,
                lr: float = 1e-3, seed: int = 0, device: str = "auto", patience: int = 5,
                lr_decay: float = 1.0, lr_patience: int = 2, monitor: str = "loss",
                swa_start: int | None = None, swa_lr: float | None = None,
                decorrelate: str | None = None, lam: float = 0.0, mass_bins: int = 10, jes_smear: float = 0.0,
                resume: bool = False, max_seconds: float | None = None, model_kwargs: dict | None = None,
                name: str | None = None, progress: bool = True, log=print) -> dict:
    """Train a tagger on signal vs background ROOT files and save an artifact.

    Parameters
    ----------
    signal_files, background_files : list of str
    architecture : str
        A name from :data:`coffea_jetimg.models.ARCHITECTURES`.
    output_dir : str or Path
        The artifact directory (``model.ts``, ``model.onnx``, ``spec.json``) with
        ``loss.png``, ``auc.png`` and ``checkpoint.pt`` beside them.
    image_preset, image_spec, image_overrides, n_constituents, features : the input (see
        :func:`make_input_spec`).
    pt_range, abs_eta_max : jet selection (GeV; |η|).
    label_from : {'file', 'truth'}
        ``'file'``: signal-file jets are class 1, background-file jets class 0; with
        ``signal_truth`` / ``background_truth`` set, jets must also carry that ``truthLabel``
        (when the files have one). ``'truth'``: jets of all files are pooled and labelled
        ``truthLabel == signal_truth``.
    max_jets_per_class : int, optional
    class_names : (background name, signal name)
    split : train/val/test fractions (seeded by ``seed``).
    epochs, batch_size, lr, seed, device, patience, lr_decay, lr_patience, monitor, swa_start, swa_lr :
        see :func:`fit`.
    decorrelate, lam, mass_bins : mass decorrelation against the jet soft-drop mass (see module doc).
    jes_smear : float
        "Hardened" training: the training jets' constituents are JES-scaled per jet by
        ``1 + jes_smear·N(0,1)`` (for ``lorentz`` inputs re-drawn every epoch in :func:`fit`; for the
        other kinds a smeared copy is built once through the same input code path).
    resume : bool
        Continue from ``output_dir/checkpoint.pt``.
    max_seconds : float, optional
        Time budget of the epochs (see :func:`fit`); the artifact holds the best weights so far.

    Returns
    -------
    dict
        ``artifact`` (Path), ``metrics`` (test set), ``history``, ``n_jets`` per split,
        ``train_time_s``.
    """
    import torch

    from .artifact import save_artifact
    from .models import build_model

    device = resolve_device(device)
    if label_from not in ("file", "truth"):
        raise TrainingError(f"label_from must be 'file' or 'truth', got {label_from!r}")
    input_spec = make_input_spec(architecture, image_preset=image_preset, image_spec=image_spec,
                                 image_overrides=image_overrides, n_constituents=n_constituents, features=features,
                                 jets=jets)
    kind = input_spec["kind"]
    smear_inputs = jes_smear > 0 and kind != "lorentz"
    sel = dict(jets=jets, pt_range=pt_range, abs_eta_max=abs_eta_max)
    t_read = time.perf_counter()
    if label_from == "file":
        Xs, info_s = load_jets(signal_files, input_spec, truth_label=signal_truth, max_jets=max_jets_per_class, **sel)
        Xb, info_b = load_jets(background_files, input_spec, truth_label=background_truth,
                               max_jets=max_jets_per_class, **sel)
        X = np.concatenate([Xb, Xs])
        y = np.concatenate([np.zeros(len(Xb), np.int64), np.ones(len(Xs), np.int64)])
        info = {k: np.concatenate([info_b[k], info_s[k]]) for k in info_s}
        Xsm = None
        if smear_inputs:
            Xs2, _ = load_jets(signal_files, input_spec, truth_label=signal_truth, max_jets=max_jets_per_class,
                               jes_smear=jes_smear, seed=seed, **sel)
            Xb2, _ = load_jets(background_files, input_spec, truth_label=background_truth,
                               max_jets=max_jets_per_class, jes_smear=jes_smear, seed=seed + 1, **sel)
            Xsm = np.concatenate([Xb2, Xs2])
    else:
        files = list(signal_files) + list(background_files)
        X, info = load_jets(files, input_spec, **sel)
        if np.all(info["truthLabel"] < 0):
            raise TrainingError("label_from='truth' but the jets have no truthLabel field")
        keep = info["truthLabel"] >= 0
        y = (info["truthLabel"] == signal_truth).astype(np.int64)
        Xsm = load_jets(files, input_spec, jes_smear=jes_smear, seed=seed, **sel)[0][keep] if smear_inputs else None
        X, y, info = X[keep], y[keep], {k: v[keep] for k, v in info.items()}
        if max_jets_per_class:
            rng = np.random.default_rng(seed)
            take = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:max_jets_per_class] for c in (0, 1)])
            X, y, info = X[take], y[take], {k: v[take] for k, v in info.items()}
            Xsm = Xsm[take] if Xsm is not None else None
    t_read = time.perf_counter() - t_read
    for c in (0, 1):
        if not np.any(y == c):
            raise TrainingError(f"no {class_names[c]} jets selected (class {c}); check the files and the selection")
    if log:
        log(f"{len(y)} jets ({int((y == 1).sum())} {class_names[1]}, {int((y == 0).sum())} {class_names[0]}), "
            f"inputs {X.shape[1:]} built in {t_read:.1f} s")

    tr, va, te = split_indices(len(y), split, seed)
    if len(va) == 0 or len(te) == 0:
        raise TrainingError(f"too few jets ({len(y)}) for a train/val/test split {split}")
    input_spec["shape"] = list(X.shape[1:])
    torch.manual_seed(seed)
    model = build_model(architecture, X.shape[1:], 2, **(model_kwargs or {}))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    mass = info["msoftdrop"]
    X_train = Xsm[tr] if Xsm is not None else X[tr]
    t0 = time.perf_counter()
    hist = fit(model, X_train, y[tr], X_val=X[va], y_val=y[va], mass=mass[tr], epochs=epochs, batch_size=batch_size,
               lr=lr, seed=seed, device=device, patience=patience, lr_decay=lr_decay, lr_patience=lr_patience, monitor=monitor,
               swa_start=swa_start, swa_lr=swa_lr,
               signal_index=1, decorrelate=decorrelate, lam=lam,
               mass_bins=mass_bins, jes_smear=jes_smear if kind == "lorentz" else 0.0,
               checkpoint=out / "checkpoint.pt", resume=resume, max_seconds=max_seconds, progress=progress)
    train_time = time.perf_counter() - t0
    probs = predict(model, X[te], device=device)
    metrics = evaluate_scores(probs[:, 1], y[te])
    metrics["train_time_s"] = train_time
    if log:
        log(f"test: AUC {metrics['auc']:.4f}, accuracy {metrics['accuracy']:.4f}, "
            f"1/eB(0.3) {metrics['inv_eff_bkg_at_0.3']}, 1/eB(0.5) {metrics['inv_eff_bkg_at_0.5']}")

    spec = {
        "name": name or f"{architecture}-{class_names[1]}-vs-{class_names[0]}",
        "architecture": architecture,
        "input": input_spec,
        "class_names": list(class_names),
        "signal_class": class_names[1],
        "output": "logits",
        "training": {
            "signal_files": [str(f) for f in signal_files], "background_files": [str(f) for f in background_files],
            "selection": {"jets": jets, "pt_range": list(pt_range) if pt_range else None, "abs_eta_max": abs_eta_max,
                          "label_from": label_from, "signal_truth": signal_truth,
                          "background_truth": background_truth, "max_jets_per_class": max_jets_per_class},
            "n_jets": {"train": int(len(tr)), "val": int(len(va)), "test": int(len(te))},
            "split": list(split), "seed": seed, "epochs": epochs, "epochs_run": len(hist.train_loss),
            "batch_size": batch_size, "lr": lr, "optimizer": "Adam", "patience": patience,
            "lr_decay": lr_decay, "lr_patience": lr_patience, "monitor": monitor, "swa_start": swa_start, "swa_lr": swa_lr,
            "class_balancing": "per-class weights n/(k n_c)", "device": device,
            "decorrelate": decorrelate, "lambda": lam, "mass_bins": mass_bins, "decorrelation_mass": "msoftdrop",
            "jes_smear": jes_smear, "model_kwargs": model_kwargs or {}, "history": hist.to_dict(),
            "torch": torch.__version__,
        },
        "metrics": metrics,
    }
    example = torch.as_tensor(X[te[: min(8, len(te))]] if len(te) >= 2 else X[:2])
    with torch.no_grad():
        scale = float(model.cpu().eval()(example).abs().max())
    # float32 re-orderings (TorchScript / ONNX Runtime) differ at ~1e-6 of the logit scale
    save_artifact(out, model.cpu(), spec, example, atol=1e-4 * max(1.0, scale))
    plot_history(hist, out, spec["name"])
    return {"artifact": out, "metrics": metrics, "history": hist, "n_jets": spec["training"]["n_jets"],
            "train_time_s": train_time}
