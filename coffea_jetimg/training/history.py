"""The per-epoch record of a training run (:class:`History`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch training record (returned by :func:`~coffea_jetimg.training.fit`, stored in
    the artifact spec and in checkpoints)."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    #: validation loss plus the decorrelation term (== val_loss without decorrelation): what
    #: ``monitor='loss'`` compares, so a decorrelated run keeps its best *decorrelated* epoch
    val_objective: list = field(default_factory=list)
    val_auc: list = field(default_factory=list)
    adv_loss: list = field(default_factory=list)
    decor_penalty: list = field(default_factory=list)
    epoch_time_s: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("inf")  # the best epoch's val_objective
    monitor: str = "loss"
    swa_start: int | None = None
    stopped_early: bool = False
    stopped_on_time: bool = False

    @property
    def best_val_auc(self) -> float:
        """The validation AUC of ``best_epoch`` (NaN before any epoch)."""
        return float(self.val_auc[self.best_epoch]) if self.best_epoch >= 0 else float("nan")

    @property
    def epochs_run(self) -> int:
        """Epochs trained so far (resumed runs included)."""
        return len(self.train_loss)

    def to_dict(self) -> dict:
        """JSON-able dict (non-finite bests as None; ``best_val_auc`` added for readers)."""
        d = asdict(self) | {"best_val_auc": self.best_val_auc}  # derived, written for readers of the json
        for k in ("best_val_loss", "best_val_auc"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        if d.get("best_val_loss") is None:
            d["best_val_loss"] = float("inf")
        d.pop("best_val_auc", None)  # derived from val_auc and best_epoch
        return cls(**d)
