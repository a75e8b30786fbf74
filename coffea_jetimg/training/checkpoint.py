"""Checkpoints of a training run: written after every epoch, read back to resume.

A checkpoint is a ``torch.save`` of tensors and plain types only (state dicts, the history and
the run's identity as JSON strings), read with ``torch.load(weights_only=True)``: a file that
is not one (a pickle of arbitrary objects, a truncated file, another program's weights) is
refused by name, and never unpickled. The identity (the :class:`TrainConfig`, a fingerprint of
the training data and the input files) lets a resumed run refuse to go on with other settings
or other jets, naming what changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import TrainingError
from .config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["FORMAT", "read_checkpoint", "write_checkpoint", "data_fingerprint", "check_identity", "file_identity"]

#: The ``format`` entry of the package's checkpoints.
FORMAT = "coffea-jetimg-checkpoint"
_REQUIRED = ("model", "optimizer", "best_model", "epoch", "bad_epochs", "history_json")


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The content of a checkpoint written by :func:`write_checkpoint`.

    Raises
    ------
    TrainingError
        Naming the file, when it is not such a checkpoint (it is never unpickled).
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (not a zip), EOFError, ...
        text = str(err).splitlines()[0] if str(err) else ""
        why = type(err).__name__ + (f": {text}" if text and "weights_only" not in str(err) else "")
        raise TrainingError(
            f"{path}: not a checkpoint written by coffea-jetimg ({why}); it is not loaded. Remove it (or choose "
            f"another output folder) to train from the start") from None
    missing = [k for k in _REQUIRED if not (isinstance(state, dict) and k in state)]
    if missing or (isinstance(state, dict) and state.get("format", FORMAT) != FORMAT):
        raise TrainingError(f"{path}: not a checkpoint written by coffea-jetimg (no {', '.join(missing) or 'format'} "
                            f"entry); it is not used. Remove it to train from the start")
    return state


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (a temporary file, then a rename)."""
    import torch

    from .. import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "package_version": __version__, **state}, tmp)
    tmp.replace(path)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def data_fingerprint(X: Any, y: Any, X_val: Any = None, y_val: Any = None, n_rows: int = 64) -> dict[str, Any]:
    """A cheap identity of the training (and validation) data: shapes, class counts, a hash of
    the labels and of ``n_rows`` evenly spaced input rows (so changed jets are noticed without
    hashing gigabytes)."""
    def part(X: Any, y: Any) -> dict[str, Any]:
        X = np.asarray(X)
        y = np.asarray(y)
        rows: Any = np.unique(np.linspace(0, len(X) - 1, min(len(X), n_rows)).astype(np.int64)) if len(X) else []
        return {"shape": list(X.shape), "class_counts": np.bincount(y.astype(np.int64)).tolist() if len(y) else [],
                "labels": _digest(y.astype(np.int64)), "inputs": _digest(X[rows].astype(np.float32))}

    out = {"train": part(X, y)}
    if X_val is not None:
        out["validation"] = part(X_val, y_val)
    return out


def file_identity(files: Iterable[str | os.PathLike[str]]) -> list[list[Any]]:
    """``[[absolute path, size in bytes], ...]`` of input files (size -1 when absent)."""
    out: list[list[Any]] = []
    for f in files:
        p = os.path.abspath(str(f))
        out.append([p, os.path.getsize(p) if os.path.isfile(p) else -1])
    return out


def _describe(value: Any) -> str:
    if isinstance(value, dict) and "shape" in value:
        return f"{value['shape'][0] if value['shape'] else 0} jets, classes {value['class_counts']}"
    return repr(value)


def check_identity(path: str | Path, state: dict, config: TrainConfig, data: dict | None = None,
                   files: dict | None = None) -> None:
    """Refuse to resume ``state`` (read from ``path``) with another config, data or input files.

    Parameters
    ----------
    path : path
        The checkpoint (named in the messages).
    state : dict
        Its content (:func:`read_checkpoint`).
    config : TrainConfig
        The settings of the run that would go on; only :data:`RESUMABLE_CHANGES` may differ.
    data : dict, optional
        :func:`data_fingerprint` of the arrays it would train on.
    files : dict, optional
        ``{"signal_files": file_identity(...), "background_files": ...}`` of the input files.

    Raises
    ------
    TrainingError
        Naming the checkpoint and each setting, file list or data set that changed.
    """
    if "config_json" in state:
        old = TrainConfig.from_dict(json.loads(state["config_json"]))
        diff = old.differences(config, ignore=RESUMABLE_CHANGES)
    else:  # written before configs were stored: the two settings checked then
        from .history import History

        h = History.from_dict(json.loads(state["history_json"]))
        diff = {k: (getattr(h, k), getattr(config, k)) for k in ("monitor", "swa_start")
                if getattr(h, k) != getattr(config, k)}
    if diff:
        raise TrainingError(
            f"checkpoint {path} was trained with {', '.join(f'{k}={a!r}' for k, (a, _) in diff.items())}; "
            f"resume it with that, not {', '.join(f'{k}={b!r}' for k, (_, b) in diff.items())} (only "
            f"{', '.join(sorted(RESUMABLE_CHANGES))} may change on resume; start a new run in another folder "
            f"to change the others)")
    if files is not None and "files_json" in state:
        old_files = json.loads(state["files_json"])
        for key in sorted(set(old_files) | set(files)):
            a, b = old_files.get(key), files.get(key)
            if a != b:
                raise TrainingError(
                    f"checkpoint {path} was trained on other input files: {key} were "
                    f"{[f'{p} ({s} bytes)' for p, s in (a or [])]}, now {[f'{p} ({s} bytes)' for p, s in (b or [])]}; "
                    f"resuming would mix jets of the old and new split (test jets that were trained on)")
    if data is not None and "data_json" in state:
        old_data = json.loads(state["data_json"])
        for key in ("train", "validation"):
            if key in old_data and key in data and old_data[key] != data[key]:
                raise TrainingError(
                    f"checkpoint {path} was trained on other {key} jets ({_describe(old_data[key])}; now "
                    f"{_describe(data[key])}, or the same counts with other inputs or labels); resume it on the "
                    f"same data, or start a new run")
