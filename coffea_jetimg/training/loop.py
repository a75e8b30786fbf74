"""The training loop: :func:`fit` trains a torch model on numpy arrays, with callbacks.

Seeded, class-balanced, Adam; the batches of an epoch, then validation of the network the epoch
is judged by, then the callbacks (:mod:`~coffea_jetimg.training.callbacks`): plateau decay of
the rate, stochastic weight averaging, checkpoint and resume, progress, early stopping and a
time budget. Mass decorrelation (:mod:`~coffea_jetimg.training.decorrelation`) adds its term
to each batch's loss. The weights of the best validation epoch are kept.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import TrainingError
from .callbacks import (Callback, Checkpoint, EarlyStopping, EpochLog, PlateauDecay, ProgressBar,
                        StochasticWeightAveraging, TimeBudget)
from .config import TrainConfig
from .history import History

__all__ = ["fit", "predict", "resolve_device", "TrainState", "default_callbacks"]


def resolve_device(device: str | None = "auto") -> str:
    """``'auto'`` → ``'cuda'`` when available, else ``'cpu'``; a device this machine lacks is a
    :class:`~coffea_jetimg.errors.DeviceError` (:func:`coffea_jetimg.inference.check_device`)."""
    from ..inference import check_device

    return check_device(device, what=f"training device {device!r}", instead="device='cpu' or 'auto'")


def predict(model: Any, X: Any, batch_size: int = 512, device: str = "cpu") -> np.ndarray:
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


def _state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


@dataclass
class TrainState:
    """What the loop and its callbacks share during :func:`fit`."""

    config: TrainConfig
    model: Any
    optimizer: Any
    device: str
    callbacks: list[Callback]
    decorrelation: Any = None
    history: History = field(default_factory=History)
    best_state: dict[str, Any] = field(default_factory=dict)
    start_epoch: int = 0
    epoch: int = -1
    bad_epochs: int = 0
    judged: Any = None  #: the network this epoch's validation judges
    improved: bool = False
    averaging: bool = False
    n_averaged: int = 0
    stop: bool = False
    resumed: bool = False


def default_callbacks(config: TrainConfig, *, checkpoint: str | Path | None = None, resume: bool = False,
                      progress: bool = True, log: Callable[[str], Any] | None = None, data: dict | None = None,
                      files: dict | None = None) -> list[Callback]:
    """The callbacks ``config`` asks for, in the order the loop calls them: weight averaging,
    plateau decay, checkpoint, progress bar, epoch log, early stopping, time budget."""
    cbs: list[Callback] = []
    if config.swa_start is not None:
        cbs.append(StochasticWeightAveraging(config.swa_start, config.swa_lr))
    if config.lr_decay < 1.0:
        cbs.append(PlateauDecay(config.lr_decay, config.lr_patience, config.monitor))
    if checkpoint is not None:
        cbs.append(Checkpoint(checkpoint, resume=resume, data=data, files=files, log=log))
    cbs.append(ProgressBar(progress))
    if log:
        cbs.append(EpochLog(log))
    cbs.append(EarlyStopping(config.patience))
    if config.max_seconds is not None:
        cbs.append(TimeBudget(config.max_seconds, log=log))
    return cbs


def fit(model: Any, X: Any, y: Any, config: TrainConfig | dict | None = None, *, X_val: Any = None,
        y_val: Any = None, mass: Any = None, mass_val: Any = None, sample_weight: Any = None, adversary: Any = None,
        checkpoint: str | Path | None = None, resume: bool = False, progress: bool = True,
        log: Callable[[str], Any] | None = None, callbacks: Sequence[Callback] = (), files: dict | None = None,
        **settings: Any) -> History:
    """Train ``model`` in place on numpy arrays; the weights of the best validation epoch are kept.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(batch, n_classes)``.
    X : ndarray, float32, shape (n, *input_shape)
    y : ndarray of int, shape (n,)
        Class indices.
    config : TrainConfig or dict, optional
        The settings (epochs, batch size, rate, monitor, decay, averaging, decorrelation, ...);
        see :class:`~coffea_jetimg.training.TrainConfig`.
    **settings
        :class:`TrainConfig` fields overriding ``config`` (e.g. ``epochs=5, lr=3e-3``).
    X_val, y_val : ndarray, optional
        Validation set; default: a seeded ``config.val_fraction`` of ``X``.
    mass : ndarray (n,), optional
        Jet (soft-drop) mass in GeV of the training jets, needed for ``decorrelate``.
    mass_val : ndarray, optional
        The same of the validation jets (default: the split of ``mass`` when ``X_val`` is not
        given). With it a decorrelated run's kept epoch is the one of the lowest validation loss
        plus decorrelation term (``History.val_objective``), not of the lowest loss alone, which
        would favour the least decorrelated epoch.
    sample_weight : ndarray (n,), optional
        Multiplies the class-balancing weights.
    adversary : torch.nn.Module, optional
        The adversary for ``decorrelate='adversary'`` (signal logit ``(b, 1)`` → ``(b, n_bins)``
        logits); default :meth:`~coffea_jetimg.training.Adversary.build`. Pass one to inspect it.
    checkpoint : path, optional
        Written after every epoch (tensors and plain types only, read back with
        ``torch.load(weights_only=True)``).
    resume : bool
        Continue from ``checkpoint`` if it exists. Refused, naming what changed, when the
        checkpoint was written with other settings (any :class:`TrainConfig` field but
        ``epochs``, ``max_seconds``, ``device``, ``patience``), other data or another network.
    progress : bool
        A tqdm bar over the epochs.
    log : callable, optional
        Receives one line per epoch, and the resume and time-budget messages.
    callbacks : sequence of Callback
        Added after the ones ``config`` asks for (:func:`default_callbacks`).
    files : dict, optional
        Identity of the input files, stored in the checkpoint and checked on resume
        (:func:`~coffea_jetimg.training.checkpoint.file_identity`).

    Returns
    -------
    History

    Raises
    ------
    TrainingError
        Bad settings (named), missing masses for decorrelation, a refused resume.
    """
    import torch
    from torch import nn

    from .checkpoint import data_fingerprint
    from .data import balanced_weights, split_indices
    from .decorrelation import make_decorrelation

    cfg = TrainConfig.coerce(config, **settings)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(X) != len(y):
        raise TrainingError(f"X has {len(X)} rows, y has {len(y)}")
    if cfg.decorrelate and mass is None:
        raise TrainingError("decorrelation needs the jet mass of the training jets (mass=...)")
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if X_val is None:
        idx_tr, idx_va, _ = split_indices(len(y), (1 - cfg.val_fraction, cfg.val_fraction, 0.0), cfg.seed)
        X_val, y_val = X[idx_va], y[idx_va]
        w_val = w[idx_va]
        X, y, w = X[idx_tr], y[idx_tr], w[idx_tr]
        mass_val = mass[idx_va] if mass is not None and mass_val is None else mass_val
        mass = mass[idx_tr] if mass is not None else None
    else:
        X_val = np.asarray(X_val, dtype=np.float32)
        y_val = np.asarray(y_val, dtype=np.int64)
        w_val = np.ones(len(y_val))
    if len(y) == 0 or len(y_val) == 0:
        raise TrainingError(f"too few examples to train: {len(y)} for training, {len(y_val)} for validation")
    with torch.no_grad():
        n_classes = int(model.to("cpu").eval()(torch.as_tensor(X[:2])).shape[1])
    if cfg.balance:
        w = w * balanced_weights(y, n_classes)
        w_val = w_val * balanced_weights(y_val, n_classes)
    w = w / w.mean()
    w_val = w_val / max(w_val.mean(), 1e-12)

    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    data = data_fingerprint(X, y, X_val, y_val) if checkpoint is not None else None
    cbs = default_callbacks(cfg, checkpoint=checkpoint, resume=resume, progress=progress, log=log, data=data,
                            files=files) + list(callbacks)
    st = TrainState(config=cfg, model=model, optimizer=opt, device=device, callbacks=cbs,
                    history=History(monitor=cfg.monitor, swa_start=cfg.swa_start))
    for cb in cbs:
        cb.on_setup(st)
    st.decorrelation = make_decorrelation(cfg, y, mass, w, device, adversary)
    st.best_state = _state_to_cpu(model.state_dict())
    for cb in cbs:
        cb.on_resume(st)
    if st.resumed:
        rng = np.random.default_rng([cfg.seed, st.start_epoch])

    Xt = torch.as_tensor(X)
    yt = torch.as_tensor(y)
    wt = torch.as_tensor(w, dtype=torch.float32)
    n = len(y)
    ce = nn.CrossEntropyLoss(reduction="none")

    def batches() -> Iterator[torch.Tensor]:
        perm = rng.permutation(n)
        for i in range(0, n, cfg.batch_size):
            yield torch.as_tensor(perm[i:i + cfg.batch_size])

    def scale(xb: torch.Tensor) -> torch.Tensor:
        if cfg.jes_smear <= 0:
            return xb
        f = torch.as_tensor(np.clip(1 + cfg.jes_smear * rng.standard_normal(len(xb)), 0.1, None), dtype=torch.float32)
        return xb * f.view(-1, *([1] * (xb.ndim - 1))).to(xb.device)

    decor = st.decorrelation
    if decor is not None and st.start_epoch == 0:
        decor.pretrain(model, batches, Xt, device)
    for cb in cbs:
        cb.on_fit_start(st)

    for epoch in range(st.start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        st.epoch = epoch
        for cb in cbs:
            cb.on_epoch_start(st)
        model.train()
        tot = tot_w = 0.0
        for idx in batches():
            xb = scale(Xt[idx]).to(device)
            yb = yt[idx].to(device)
            wb = wt[idx].to(device)
            logits = model(xb)
            if decor is not None:
                decor.before_step(logits, idx)
            l_clf = (ce(logits, yb) * wb).sum() / wb.sum()
            loss = l_clf if decor is None else decor.classifier_loss(l_clf, logits, yb, wb, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += l_clf.item() * wb.sum().item()
            tot_w += wb.sum().item()
        st.judged = model
        for cb in cbs:
            cb.on_epoch_trained(st)
        _validate(st, tot / max(tot_w, 1e-12), X_val, y_val, w_val, t0, mass_val)
        for cb in cbs:
            cb.on_validated(st)
        if st.improved:
            st.history.best_val_loss = st.history.val_objective[-1]
            st.history.best_epoch = epoch
            st.best_state = _state_to_cpu(st.judged.state_dict())
            st.bad_epochs = 0
        else:
            st.bad_epochs += 1
        for cb in cbs:
            cb.on_epoch_end(st)
        if st.stop:
            break
    for cb in cbs:
        cb.on_fit_end(st)
    model.load_state_dict(st.best_state)
    model.eval()
    return st.history


def _validate(st: TrainState, train_loss: float, X_val: np.ndarray, y_val: np.ndarray, w_val: np.ndarray,
              t0: float, mass_val: Any = None) -> None:
    """Append the epoch's figures to the history and decide ``st.improved`` from the monitor
    (``'loss'``: the validation loss plus, for a decorrelated run with ``mass_val``, its
    decorrelation term on the validation jets)."""
    from .evaluate import evaluate_scores

    cfg, h = st.config, st.history
    probs = predict(st.judged, X_val, batch_size=max(cfg.batch_size, 512), device=st.device)
    p_true = np.clip(probs[np.arange(len(y_val)), y_val], 1e-7, 1.0)
    val_loss = float(np.sum(-np.log(p_true) * w_val) / np.sum(w_val))
    try:
        val_auc = evaluate_scores(probs[:, cfg.signal_index], (y_val == cfg.signal_index).astype(int))["auc"]
    except (TrainingError, ValueError):
        val_auc = float("nan")
    adv, pen = st.decorrelation.epoch_figures() if st.decorrelation is not None else (None, None)
    h.train_loss.append(train_loss)
    objective = val_loss
    if st.decorrelation is not None and mass_val is not None:
        objective += st.decorrelation.validation_penalty(probs, y_val, w_val, np.asarray(mass_val))
    h.val_loss.append(val_loss)
    h.val_objective.append(objective)
    h.val_auc.append(val_auc)
    h.adv_loss.append(adv)
    h.decor_penalty.append(pen)
    h.epoch_time_s.append(time.perf_counter() - t0)
    h.lr.append(float(st.optimizer.param_groups[0]["lr"]))  # the rate this epoch trained with
    if cfg.monitor == "loss":
        st.improved = objective < h.best_val_loss - 1e-6
    else:  # a NaN AUC (one class in the validation set) never improves on a finite one
        best = h.best_val_auc if math.isfinite(h.best_val_auc) else -math.inf
        st.improved = h.best_epoch < 0 or bool(val_auc > best + 1e-6)
