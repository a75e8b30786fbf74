"""From files (or arrays) to a saved artifact: :func:`train_model` and :func:`train_on_arrays`.

:func:`train_model` reads signal and background files through the processor's input code path
(:func:`~coffea_jetimg.training.load_labelled`), splits the jets train/val/test with the
config's seed, and hands the arrays to :func:`train_on_arrays`, which builds the network,
trains it with :func:`~coffea_jetimg.training.fit`, measures the test set, and writes the
artifact (:func:`coffea_jetimg.artifact.save_artifact`) with its training curves. Analyses
that build their own arrays (``analysis/top_tagging.py``: several inputs of the same jets, one
split for all models) call :func:`train_on_arrays` directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import TrainingError
from .config import TrainConfig

__all__ = ["train_model", "train_on_arrays", "CHECKPOINT"]

#: The checkpoint's name in the artifact folder.
CHECKPOINT = "checkpoint.pt"


def _fit_config(config: TrainConfig, input_spec: dict) -> TrainConfig:
    """The settings :func:`fit` runs with: JES smearing is redrawn per epoch only for inputs that
    allow it (4-vectors); the other kinds get a smeared copy built once, through the input code path."""
    from ..inputs import input_from_spec

    if config.jes_smear == 0 or input_from_spec(input_spec).smear_per_epoch:
        return config
    return config.replace(jes_smear=0.0)


def train_on_arrays(config: TrainConfig, X: np.ndarray, y: np.ndarray, splits: Sequence[np.ndarray],
                    output_dir: str | Path, input_spec: dict, *, mass: np.ndarray | None = None,
                    X_train: np.ndarray | None = None, checkpoint: str | Path | None = None, resume: bool = False,
                    progress: bool = True, log: Callable[[str], Any] | None = None,
                    fit_log: Callable[[str], Any] | None = None, training_info: dict | None = None,
                    files: dict | None = None) -> dict[str, Any]:
    """Train ``config.architecture`` on prepared arrays and save the artifact in ``output_dir``.

    Parameters
    ----------
    config : TrainConfig
        Needs ``architecture``; stored verbatim in ``spec["training"]["config"]``.
    X, y : ndarray
        Inputs ``(n, *shape)`` and labels (1 signal, 0 background).
    splits : (train, val, test) index arrays into ``X``
    output_dir : path
        The artifact folder (``model.ts``, ``model.onnx``, ``spec.json``, ``loss.png``, ``auc.png``).
    input_spec : dict
        The artifact ``input`` spec of ``X`` (its ``shape`` is set from ``X``).
    mass : ndarray, optional
        Jet masses (GeV) for decorrelation.
    X_train : ndarray, optional
        Replaces ``X`` for the training jets (a JES-smeared copy).
    checkpoint : path, optional
        Default ``output_dir/checkpoint.pt``.
    resume : bool
        Go on from ``checkpoint`` (refused when the settings, data or network differ).
    log : callable, optional
        Summary lines (test figures, time budget).
    fit_log : callable, optional
        Per-epoch lines of :func:`fit`.
    training_info : dict, optional
        Added to ``spec["training"]`` (e.g. the input files).
    files : dict, optional
        Identity of the input files for the checkpoint (:func:`~coffea_jetimg.training.checkpoint.file_identity`).

    Returns
    -------
    dict
        ``artifact`` (Path), ``metrics`` (test set), ``history``, ``n_jets`` per split,
        ``train_time_s``, ``model`` (the trained torch module, on CPU), ``test_scores``
        (signal probability of the test jets).

    Raises
    ------
    TrainingError
        Before any training, when a part of the split lacks a class ("too few jets").
    """
    import torch

    from ..artifact import save_artifact
    from ..models import build_model
    from .data import check_split
    from .evaluate import evaluate_scores, plot_history
    from .loop import fit, predict, resolve_device
    from .provenance import versions

    if config.architecture is None:
        raise TrainingError("TrainConfig.architecture is not set: which network to train?")
    device = resolve_device(config.device)
    tr, va, te = splits
    cn = config.class_names
    check_split(y, (tr, va, te), cn, config.split)
    input_spec = {**input_spec, "shape": list(X.shape[1:])}
    torch.manual_seed(config.seed)
    model = build_model(config.architecture, X.shape[1:], 2, **config.model_kwargs)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    Xt = X_train if X_train is not None else X
    t0 = time.perf_counter()
    hist = fit(model, Xt[tr], y[tr], _fit_config(config, input_spec), X_val=X[va], y_val=y[va],
               mass=mass[tr] if mass is not None else None, mass_val=mass[va] if mass is not None else None,
               checkpoint=checkpoint or out / CHECKPOINT,
               resume=resume, progress=progress, log=fit_log, files=files)
    train_time = time.perf_counter() - t0
    if hist.stopped_on_time and log:
        log(f"stopped after epoch {hist.epochs_run - 1} on the time budget ({config.max_seconds:.0f} s); "
            f"resume to go on")
    probs = predict(model, X[te], device=device)
    metrics = evaluate_scores(probs[:, 1], y[te])
    metrics["train_time_s"] = train_time
    if log:
        log(f"test: AUC {metrics['auc']:.4f}, accuracy {metrics['accuracy']:.4f}, "
            f"1/eB(0.3) {metrics['inv_eff_bkg_at_0.3']}, 1/eB(0.5) {metrics['inv_eff_bkg_at_0.5']}")
    n_jets = {"train": int(len(tr)), "val": int(len(va)), "test": int(len(te))}
    spec: dict[str, Any] = {
        "name": config.name or f"{config.architecture}-{cn[1]}-vs-{cn[0]}",
        "architecture": config.architecture,
        "input": input_spec,
        "class_names": list(cn),
        "signal_class": cn[1],
        "output": "logits",
        "training": {
            "config": config.to_dict(),
            **(training_info or {}),
            "n_jets": n_jets,
            "epochs_run": hist.epochs_run,
            "device": device,
            "optimizer": "Adam",
            "class_balancing": "per-class weights n/(k n_c)" if config.balance else None,
            "decorrelation_mass": "msoftdrop" if config.decorrelate else None,
            "history": hist.to_dict(),
            "versions": versions(),
        },
        "metrics": metrics,
    }
    example = torch.as_tensor(X[te[: min(8, len(te))]] if len(te) >= 2 else X[:2])
    with torch.no_grad():
        scale = float(model.cpu().eval()(example).abs().max())
    # float32 re-orderings (TorchScript / ONNX Runtime) differ at ~1e-6 of the logit scale
    save_artifact(out, model.cpu(), spec, example, atol=1e-4 * max(1.0, scale))
    plot_history(hist, out, spec["name"])
    return {"artifact": out, "metrics": metrics, "history": hist, "n_jets": n_jets, "train_time_s": train_time,
            "model": model, "test_scores": probs[:, 1]}


def train_model(signal_files: Sequence[Any], background_files: Sequence[Any], architecture: str | None = None,
                output_dir: str | Path | None = None, config: TrainConfig | dict | None = None, *,
                resume: bool = False, progress: bool = True, log: Callable[[str], Any] | None = print,
                **settings: Any) -> dict[str, Any]:
    """Train a tagger on signal vs background ROOT files and save an artifact.

    Parameters
    ----------
    signal_files, background_files : list of str
    architecture : str, optional
        A name from :data:`coffea_jetimg.models.ARCHITECTURES` (overrides ``config.architecture``).
    output_dir : str or Path
        The artifact directory (``model.ts``, ``model.onnx``, ``spec.json``) with
        ``loss.png``, ``auc.png`` and ``checkpoint.pt`` beside them.
    config : TrainConfig or dict, optional
        Input, selection, labels, split and optimisation (see :class:`TrainConfig`).
    **settings
        :class:`TrainConfig` fields overriding ``config``.
    resume : bool
        Continue from ``output_dir/checkpoint.pt``: refused before any file is read when the
        checkpoint was written with another config (seed, architecture, ...) or other input
        files, naming what changed.
    progress : bool
        A tqdm bar over the epochs.
    log : callable, optional
        Summary lines (jets read, resume, test figures).

    Returns
    -------
    dict
        See :func:`train_on_arrays`.
    """
    from .checkpoint import check_identity, file_identity, read_checkpoint
    from .data import load_labelled, make_input_spec, split_indices, warn_on_samples

    if output_dir is None:
        raise TrainingError("train_model needs an output_dir for the artifact")
    if architecture is not None:
        settings["architecture"] = architecture
    c = TrainConfig.coerce(config, **settings)
    if c.architecture is None:
        raise TrainingError("no architecture given (architecture=... or TrainConfig.architecture)")
    from .loop import resolve_device

    resolve_device(c.device)  # a CUDA device that is not there: refused before reading
    input_spec = make_input_spec(c.architecture, image_preset=c.image_preset, image_spec=c.image_spec,
                                 image_overrides=c.image_overrides, n_constituents=c.n_constituents,
                                 features=c.features, jets=c.jets, particle_features=c.particle_features)
    out = Path(output_dir)
    ckpt = out / CHECKPOINT
    files = {"signal_files": file_identity(signal_files), "background_files": file_identity(background_files)}
    if resume and ckpt.is_file():  # refuse other settings or files before reading any jets
        state = read_checkpoint(ckpt)
        check_identity(ckpt, state, _fit_config(c, input_spec), files=files)
        if log:
            log(f"resuming from {ckpt}: {int(state['epoch']) + 1} epoch(s) done, going on to {c.epochs}")
    t_read = time.perf_counter()
    X, y, info, X_smeared = load_labelled(signal_files, background_files, input_spec, c)
    t_read = time.perf_counter() - t_read
    cn = c.class_names
    for k in (0, 1):
        if not np.any(y == k):
            raise TrainingError(f"no {cn[k]} jets selected (class {k}); check the files and the selection")
    warn_on_samples(signal_files, background_files, y, cn, c.label_from)
    if log:
        log(f"{len(y)} jets ({int((y == 1).sum())} {cn[1]}, {int((y == 0).sum())} {cn[0]}), "
            f"inputs {X.shape[1:]} built in {t_read:.1f} s")
    tr, va, te = split_indices(len(y), c.split, c.seed)
    info_files = {"signal_files": [str(f) for f in signal_files],
                  "background_files": [str(f) for f in background_files]}
    return train_on_arrays(c, X, y, (tr, va, te), out, input_spec, mass=info["msoftdrop"],
                           X_train=X_smeared, checkpoint=ckpt, resume=resume, progress=progress, log=log,
                           training_info=info_files, files=files)
