"""Callbacks of the training loop: what happens around each epoch, one concern each.

The loop (:func:`~coffea_jetimg.training.fit`) trains the batches of an epoch, validates
``state.judged`` (the network this epoch is judged by), decides ``state.improved`` from the
monitored figure, keeps the best weights, and calls the callbacks' hooks in the order given:

=====================  =========================================================================
hook                   called
=====================  =========================================================================
``on_setup``           once, after the optimiser is made (create schedulers, averaged models)
``on_resume``          once, after ``on_setup`` (a checkpoint restores the run)
``on_fit_start``       once, before the first epoch of this call
``on_epoch_start``     before the batches of an epoch
``on_epoch_trained``   after the batches, before validation (may set ``state.judged``)
``on_validated``       after the history has the epoch and ``state.improved`` is decided
``on_epoch_end``       after the best weights are kept (log, save, stop: set ``state.stop``)
``on_fit_end``         once, after the last epoch
=====================  =========================================================================

A callback that holds state for a resumed run adds it to the checkpoint (``state_dict``) and
reads it back (``load_state_dict``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from .loop import TrainState

__all__ = [
    "Callback", "StochasticWeightAveraging", "PlateauDecay", "EarlyStopping", "TimeBudget", "Checkpoint",
    "ProgressBar", "EpochLog",
]


class Callback:
    """Base class: every hook does nothing."""

    def on_setup(self, state: TrainState) -> None: ...

    def on_resume(self, state: TrainState) -> None: ...

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_epoch_trained(self, state: TrainState) -> None: ...

    def on_validated(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self, state: TrainState) -> dict[str, Any]:
        """Entries this callback adds to the checkpoint."""
        return {}

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Read back what :meth:`state_dict` wrote (the entries may be absent)."""


class StochasticWeightAveraging(Callback):
    """Average the weights (and batch-norm buffers) of every epoch from ``start`` on.

    From epoch ``start`` (0-based) the optimiser runs at the constant rate ``lr`` (default: the
    rate in use then) and ``torch.optim.swa_utils.AveragedModel`` adds the end-of-epoch weights
    with equal weights (Izmailov et al., arXiv:1803.05407). The averaged network is what the
    epoch is judged by; its first epoch replaces the best plain model; ``state.averaging``
    tells :class:`PlateauDecay` to stop.
    """

    def __init__(self, start: int, lr: float | None = None) -> None:
        self.start, self.lr = start, lr
        self.model: Any = None  # the AveragedModel, made in on_setup

    def on_setup(self, state: TrainState) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.model = AveragedModel(state.model, use_buffers=True)

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        if "swa_model" in ckpt:
            self.model.load_state_dict(ckpt["swa_model"])

    def on_epoch_start(self, state: TrainState) -> None:
        state.averaging = state.epoch >= self.start
        if state.averaging and state.epoch == self.start and self.lr is not None:
            for g in state.optimizer.param_groups:
                g["lr"] = self.lr

    def on_epoch_trained(self, state: TrainState) -> None:
        if state.averaging:
            self.model.update_parameters(state.model)
            state.judged = self.model.module
            state.n_averaged = int(self.model.n_averaged)

    def on_validated(self, state: TrainState) -> None:
        if state.averaging and state.epoch == self.start:  # the first average replaces the best plain model
            state.improved = True

    def state_dict(self, state: TrainState) -> dict[str, Any]:
        return {"swa_model": self.model.state_dict()} if state.averaging else {}


class PlateauDecay(Callback):
    """Multiply the rate by ``factor`` after ``patience`` epochs without a better monitored
    figure (``torch.optim.lr_scheduler.ReduceLROnPlateau``); idle while weights are averaged."""

    def __init__(self, factor: float, patience: int, monitor: str = "loss") -> None:
        self.factor, self.patience, self.monitor = factor, max(int(patience), 0), monitor
        self.scheduler: Any = None  # the ReduceLROnPlateau, made in on_setup

    def on_setup(self, state: TrainState) -> None:
        import torch

        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            state.optimizer, mode="min" if self.monitor == "loss" else "max", factor=self.factor,
            patience=self.patience)

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        if "scheduler" in ckpt:
            self.scheduler.load_state_dict(ckpt["scheduler"])

    def on_validated(self, state: TrainState) -> None:
        if state.averaging:
            return
        h = state.history
        if self.monitor == "loss":
            self.scheduler.step(h.val_objective[-1])
        else:
            auc = h.val_auc[-1]
            self.scheduler.step(auc if math.isfinite(auc) else 0.0)

    def state_dict(self, state: TrainState) -> dict[str, Any]:
        return {"scheduler": self.scheduler.state_dict()}


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs without a better monitored figure (0: never)."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState) -> None:
        if self.patience and state.bad_epochs >= self.patience:
            state.history.stopped_early = True
            state.stop = True


class TimeBudget(Callback):
    """Stop before an epoch that would end past ``max_seconds`` of this call's epochs (judged
    by the last epoch's time), keeping the best weights (``History.stopped_on_time``)."""

    def __init__(self, max_seconds: float, log: Callable[[str], Any] | None = None) -> None:
        self.max_seconds, self.log = max_seconds, log
        self.t_start: float | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.t_start = time.perf_counter()

    def on_epoch_end(self, state: TrainState) -> None:
        if state.stop or state.epoch + 1 >= state.config.epochs:
            return
        assert self.t_start is not None, "on_fit_start sets t_start"
        if time.perf_counter() - self.t_start + state.history.epoch_time_s[-1] > self.max_seconds:
            state.history.stopped_on_time = True
            state.stop = True
            if self.log:
                self.log(f"stopping after epoch {state.epoch}: another epoch would pass the "
                         f"{self.max_seconds:.0f} s budget")


class Checkpoint(Callback):
    """Write the run to ``path`` after every epoch; with ``resume``, go on from it.

    The checkpoint holds the network, optimiser, best weights, history, the other callbacks'
    and the decorrelation's state, and the run's identity (config, data fingerprint, input
    files): resuming with other settings or other jets is refused, naming what changed
    (:func:`~coffea_jetimg.training.checkpoint.check_identity`).
    """

    def __init__(self, path: str | Path, resume: bool = False, data: dict | None = None, files: dict | None = None,
                 log: Callable[[str], Any] | None = None) -> None:
        self.path = Path(path)
        self.resume, self.data, self.files, self.log = resume, data, files, log

    def on_resume(self, state: TrainState) -> None:
        from .checkpoint import check_identity, read_checkpoint
        from .history import History

        if not (self.resume and self.path.is_file()):
            return
        ckpt = read_checkpoint(self.path, map_location=state.device)
        check_identity(self.path, ckpt, state.config, data=self.data, files=self.files)
        try:
            state.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            lines = [ln.strip() for ln in str(err).splitlines()[1:4] if ln.strip()]
            raise _mismatch(self.path, lines) from None
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.best_state = ckpt["best_model"]
        for cb in state.callbacks:
            if cb is not self:
                cb.load_state_dict(ckpt)
        if state.decorrelation is not None:
            state.decorrelation.load_state_dict(ckpt)
        state.history = History.from_dict(json.loads(ckpt["history_json"]))
        state.start_epoch = int(ckpt["epoch"]) + 1
        state.bad_epochs = int(ckpt["bad_epochs"])
        state.resumed = True
        if self.log:
            self.log(f"resumed from {self.path} at epoch {state.start_epoch}")

    def on_epoch_end(self, state: TrainState) -> None:
        from .checkpoint import write_checkpoint

        ckpt = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(),
                "best_model": state.best_state, "epoch": state.epoch, "bad_epochs": state.bad_epochs,
                "history_json": json.dumps(state.history.to_dict()), "config_json": state.config.to_json()}
        if self.data is not None:
            ckpt["data_json"] = json.dumps(self.data)
        if self.files is not None:
            ckpt["files_json"] = json.dumps(self.files)
        for cb in state.callbacks:
            if cb is not self:
                ckpt.update(cb.state_dict(state))
        if state.decorrelation is not None:
            ckpt.update(state.decorrelation.state_dict())
        write_checkpoint(self.path, ckpt)


def _mismatch(path: Path, lines: list[str]) -> Exception:
    from ..errors import TrainingError

    return TrainingError(f"checkpoint {path} holds a network of another architecture or size than this model "
                         f"({'; '.join(lines) or 'the state dicts differ'}); resume with the architecture and model "
                         f"settings it was trained with, or start a new run in another folder")


class ProgressBar(Callback):
    """A tqdm bar over the epochs, with the epoch's losses and validation AUC."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover
            return
        self.bar = tqdm(total=state.config.epochs, initial=state.start_epoch, desc="training", unit="epoch",
                        disable=not self.enabled, leave=True)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.bar is None:
            return
        h = state.history
        post = {"loss": f"{h.train_loss[-1]:.4f}", "val_loss": f"{h.val_loss[-1]:.4f}",
                "val_auc": f"{h.val_auc[-1]:.4f}"}
        if h.adv_loss[-1] is not None:
            post["adv"] = f"{h.adv_loss[-1]:.3f}"
        self.bar.set_postfix(post)
        self.bar.update(1)

    def on_fit_end(self, state: TrainState) -> None:
        if self.bar is not None:
            self.bar.close()


class EpochLog(Callback):
    """One line per epoch to ``log``: losses, validation AUC and the averaging in progress."""

    def __init__(self, log: Callable[[str], Any]) -> None:
        self.log = log

    def on_epoch_end(self, state: TrainState) -> None:
        h = state.history
        avg = ""
        if state.averaging:
            n = state.n_averaged
            avg = f" (weights averaged over {n} epoch{'s' if n > 1 else ''})"
        self.log(f"epoch {state.epoch}: loss {h.train_loss[-1]:.4f} val_loss {h.val_loss[-1]:.4f} "
                 f"val_auc {h.val_auc[-1]:.4f}{avg}")
