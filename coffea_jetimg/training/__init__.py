"""Training taggers on ROOT files through the processor's own input code path.

========================  ===========================================================================
module                    what
========================  ===========================================================================
:mod:`.config`            :class:`TrainConfig`: every setting of a run, saved in the artifact spec
:mod:`.data`              jets from files (:func:`load_jets`, :func:`load_inputs`), split, weights
:mod:`.loop`              :func:`fit`: the epoch loop, :func:`predict`
:mod:`.callbacks`         early stop, plateau decay, weight averaging, checkpoint/resume, time budget
:mod:`.checkpoint`        checkpoint files and the identity checks of a resumed run
:mod:`.decorrelation`     mass decorrelation: adversary, DisCo (distance correlation)
:mod:`.evaluate`          test-set figures (:mod:`coffea_jetimg.metrics`), training curves
:mod:`.pipeline`          :func:`train_model` (files → artifact), :func:`train_on_arrays`
:mod:`.provenance`        versions recorded at save, checked at load
========================  ===========================================================================

Two levels:

* :func:`fit` trains any torch model on numpy arrays ``X`` (``(n, *input_shape)``) and labels
  ``y`` (``(n,)`` int class indices): seeded, class-balanced, Adam, the best validation epoch
  kept, with the callbacks a :class:`TrainConfig` asks for.
* :func:`train_model` reads signal and background files with
  :func:`coffea_jetimg.open_events` → :func:`coffea_jetimg.constituents` →
  :func:`coffea_jetimg.inputs.build_inputs` (exactly what the processor does with a saved
  model's ``spec["input"]``), selects jets with :func:`coffea_jetimg.selection.select_jets`,
  splits train/val/test (70/15/15), calls :func:`fit`, measures the test set, and writes an
  artifact with :func:`coffea_jetimg.artifact.save_artifact` plus training-curve PNGs.
"""

from __future__ import annotations

from ..errors import TrainingError
from .callbacks import (Callback, Checkpoint, EarlyStopping, EpochLog, PlateauDecay, ProgressBar,
                        StochasticWeightAveraging, TimeBudget)
from .config import RESUMABLE_CHANGES, TrainConfig
from .data import (balanced_weights, check_split, load_inputs, load_jets, load_labelled, make_input_spec,
                   split_indices, warn_on_samples)
from .decorrelation import Adversary, adversary_loss, distance_correlation, mass_bin_edges
from .evaluate import evaluate_scores, plot_history
from .history import History
from .loop import TrainState, fit, predict, resolve_device
from .pipeline import train_model, train_on_arrays
from .provenance import check_versions, versions

__all__ = [
    "TrainConfig", "RESUMABLE_CHANGES", "fit", "train_model", "train_on_arrays", "History", "TrainState",
    "Callback", "StochasticWeightAveraging", "PlateauDecay", "EarlyStopping", "TimeBudget", "Checkpoint",
    "ProgressBar", "EpochLog",
    "adversary_loss", "mass_bin_edges", "distance_correlation", "Adversary",
    "evaluate_scores", "predict", "plot_history", "resolve_device",
    "split_indices", "balanced_weights", "load_jets", "load_inputs", "load_labelled", "make_input_spec",
    "check_split", "warn_on_samples", "check_versions", "versions", "TrainingError",
]
