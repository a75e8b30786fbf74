"""The settings of one training run, in one place: :class:`TrainConfig`.

:func:`~coffea_jetimg.training.fit` and :func:`~coffea_jetimg.training.train_model` take a
:class:`TrainConfig` (or its fields as keyword arguments, which override the config's), the CLI
and ``analysis/top_tagging.py`` build one, and the artifact's spec stores it verbatim under
``spec["training"]["config"]`` (:meth:`TrainConfig.from_dict` reads it back).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Collection

from .._util import JsonSpec
from ..errors import TrainingError
from ..selection import TruthLabel

__all__ = ["TrainConfig", "RESUMABLE_CHANGES"]

#: Fields a resumed run may change: how long it goes on, where it runs, when it stops early.
#: Any other difference from the checkpoint's config is refused, naming the field.
RESUMABLE_CHANGES = frozenset({"epochs", "max_seconds", "device", "patience", "allow_missing_event_ids"})


@dataclass(frozen=True)
class TrainConfig(JsonSpec):
    """Settings of a training run (JSON-able; saved in the artifact spec).

    Network and input (used by :func:`~coffea_jetimg.training.train_model`)
    ---------------------------------------------------------------------
    architecture : str or None
        A name from :data:`coffea_jetimg.models.ARCHITECTURES` (``None``: the model is given).
    model_kwargs : dict
        Passed to :func:`coffea_jetimg.models.build_model` (e.g. ``{"filters": 16}``).
    image_preset, image_spec, image_overrides, n_constituents, features, particle_features, jets :
        The network input (see :func:`~coffea_jetimg.training.make_input_spec`).
    name : str or None
        Model name in the spec (default ``architecture-signal-vs-background``).

    Jets and labels
    ---------------
    pt_range : (float, float) or None
        Keep jets with ``lo <= pt < hi`` (GeV).
    abs_eta_max : float or None
        Keep jets with ``|eta| < abs_eta_max``.
    msd_range : (float or None, float or None) or None
        Keep jets with ``lo <= msoftdrop < hi`` (GeV; ``mass`` for jets without ``msoftdrop``).
    label_from : {'file', 'truth', 'partonFlavour'}
        ``'file'``: signal-file jets are class 1, background-file jets class 0 (with
        ``signal_truth`` / ``background_truth`` required when the jets have a ``truthLabel``);
        ``'truth'``: all files pooled, labelled ``truthLabel == signal_truth``;
        ``'partonFlavour'``: all files pooled, labelled by ``partonFlavour`` (|flavour| 1–5 quark,
        21 gluon; other jets left out), ``class_names`` (default ``('gluon', 'quark')``) two of those.
    signal_truth, background_truth : int or None
    max_jets_per_class : int or None
    class_names : (background name, signal name)
    split : (train, validation, test) fractions, seeded by ``seed``.
    allow_missing_event_ids : bool
        Read NanoAOD/PFNano files without ``run``/``luminosityBlock``/``event`` (coffea refuses
        them by default; see :func:`coffea_jetimg.open_events`).

    Optimisation (used by :func:`~coffea_jetimg.training.fit`)
    ---------------------------------------------------------
    epochs, batch_size, lr, weight_decay : Adam settings.
    seed : int
        Seeds the split, the initialisation, the batch order and the smearing.
    device : str
        ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
    val_fraction : float
        :func:`fit` without ``X_val``: the validation share of ``X``.
    balance : bool
        Weight classes to equal total weight.
    signal_index : int
        The signal class (validation AUC, decorrelation).
    monitor : {'loss', 'auc'}
        What "better" means for kept weights, early stopping and the plateau decay.
    patience : int
        Early stopping after this many epochs without a better ``monitor`` (0: never).
    lr_decay, lr_patience : float, int
        Plateau decay of the rate (``ReduceLROnPlateau``); ``lr_decay = 1``: constant rate.
    swa_start, swa_lr : int or None, float or None
        Stochastic weight averaging from epoch ``swa_start`` (0-based) at the rate ``swa_lr``.
    max_seconds : float or None
        Time budget of the epochs of one call.
    decorrelate : {None, 'adversary', 'disco'}
    lam : float
        λ of the decorrelation term.
    mass_bins, adv_lr, adv_steps, pretrain_adversary_epochs :
        The adversary's target bins, learning rate (default ``lr``), steps per batch and
        pre-training epochs.
    jes_smear : float
        σ of the per-jet JES scale factor of "hardened" training.
    """

    # network and input
    architecture: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    image_preset: str | None = None
    image_spec: dict | None = None
    image_overrides: dict | None = None
    n_constituents: int = 40
    features: tuple[str, ...] | None = None
    particle_features: tuple[str, ...] | None = None
    jets: str = "FatJet"
    name: str | None = None
    # jets and labels
    pt_range: tuple[float, float] | None = None
    abs_eta_max: float | None = 2.0
    msd_range: tuple[float | None, float | None] | None = None
    label_from: str = "file"
    signal_truth: int | None = int(TruthLabel.TOP)
    background_truth: int | None = int(TruthLabel.QCD)
    max_jets_per_class: int | None = None
    class_names: tuple[str, str] = (TruthLabel.QCD.class_name, TruthLabel.TOP.class_name)
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    allow_missing_event_ids: bool = False
    # optimisation
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.15
    balance: bool = True
    signal_index: int = 1
    monitor: str = "loss"
    patience: int = 5
    lr_decay: float = 1.0
    lr_patience: int = 2
    swa_start: int | None = None
    swa_lr: float | None = None
    max_seconds: float | None = None
    # decorrelation and augmentation
    decorrelate: str | None = None
    lam: float = 0.0
    mass_bins: int = 10
    adv_lr: float | None = None
    adv_steps: int = 1
    pretrain_adversary_epochs: int = 1
    jes_smear: float = 0.0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if self.image_spec is not None and not isinstance(self.image_spec, dict):
            put("image_spec", self.image_spec.to_dict())  # a JetImageSpec
        put("model_kwargs", dict(self.model_kwargs or {}))
        if self.features is not None:
            put("features", tuple(self.features))
        if self.particle_features is not None:
            put("particle_features", tuple(self.particle_features))
        if self.pt_range is not None:
            if len(self.pt_range) != 2:
                raise TrainingError(f"pt_range must be (low, high) in GeV, got {self.pt_range!r}")
            put("pt_range", (float(self.pt_range[0]), float(self.pt_range[1])))
        if self.msd_range is not None:
            if len(self.msd_range) != 2:
                raise TrainingError(f"msd_range must be (low, high) in GeV, got {self.msd_range!r}")
            put("msd_range", tuple(None if v is None else float(v) for v in self.msd_range))
        if len(self.class_names) != 2:
            raise TrainingError(f"class_names must be (background, signal), got {self.class_names!r}")
        put("class_names", tuple(self.class_names))
        if len(self.split) != 3 or any(f < 0 for f in self.split) or sum(self.split) <= 0:
            raise TrainingError(f"split fractions must be three non-negative numbers, got {self.split}")
        put("split", tuple(float(f) for f in self.split))
        if self.decorrelate == "none":
            put("decorrelate", None)
        if self.decorrelate not in (None, "adversary", "disco"):
            raise TrainingError(f"decorrelate must be None, 'adversary' or 'disco', got {self.decorrelate!r}")
        if self.label_from not in ("file", "truth", "partonFlavour"):
            raise TrainingError(f"label_from must be 'file', 'truth' or 'partonFlavour', got {self.label_from!r}")
        if self.label_from == "partonFlavour":
            from ..selection import PARTON_FLAVOUR_NAMES

            names = set(PARTON_FLAVOUR_NAMES.values())
            if tuple(self.class_names) == (TruthLabel.QCD.class_name, TruthLabel.TOP.class_name):
                put("class_names", ("gluon", "quark"))  # the default names do not apply: gluon background
            elif not set(self.class_names) <= names:
                raise TrainingError(f"label_from='partonFlavour' labels jets {sorted(names)}; class_names "
                                    f"{tuple(self.class_names)} must be two of them (background, signal)")
        if self.monitor not in ("loss", "auc"):
            raise TrainingError(f"monitor must be 'loss' or 'auc', got {self.monitor!r}")
        if not 0.0 < self.lr_decay <= 1.0:
            raise TrainingError(f"lr_decay must be in (0, 1], got {self.lr_decay!r}")
        if not (isinstance(self.epochs, int) and self.epochs >= 0):
            raise TrainingError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise TrainingError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.swa_start is not None and not (isinstance(self.swa_start, int) and 0 <= self.swa_start < self.epochs):
            raise TrainingError(f"swa_start must be an epoch index in [0, {self.epochs}), got {self.swa_start!r}")
        if self.swa_lr is not None and not self.swa_lr > 0:
            raise TrainingError(f"swa_lr must be > 0, got {self.swa_lr!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise TrainingError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    # -- building -------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of the settings, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def coerce(cls, config: "TrainConfig | dict | None" = None, **overrides: Any) -> "TrainConfig":
        """``config`` (a TrainConfig, a dict of its fields, or None for the defaults) with
        ``overrides`` applied; an unknown name raises TypeError naming it."""
        if config is None:
            config = cls()
        elif isinstance(config, dict):
            config = cls.from_dict(config)
        elif not isinstance(config, cls):
            raise TypeError(f"config must be a TrainConfig or a dict, got {type(config).__name__}")
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise TypeError(f"unknown training setting(s): {', '.join(unknown)} (TrainConfig fields: "
                            f"{', '.join(cls.field_names())})")
        return config.replace(**overrides) if overrides else config

    def differences(self, other: TrainConfig,
                    ignore: Collection[str] = RESUMABLE_CHANGES) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for the fields that differ, less ``ignore``."""
        import json

        a, b = (json.loads(json.dumps(c.to_dict())) for c in (self, other))  # nested tuples as lists
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}
