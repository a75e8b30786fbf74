"""Training data: jets read from ROOT files through the processor's input code path, split and weighted.

:func:`load_inputs` opens each file once (``mode="virtual"``: only the branches used are read),
selects jets with the library's :func:`coffea_jetimg.selection.select_jets` (plus a truth-label
requirement), builds the constituents once and the network inputs of every spec given with
:func:`coffea_jetimg.inputs.build_inputs`, exactly as the processor does with a saved model's
``spec["input"]``. :func:`load_labelled` turns signal and background files into labelled
arrays; :func:`check_split` and :func:`warn_on_samples` say before training when a sample
cannot give a meaningful result.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import TrainingError

if TYPE_CHECKING:  # pragma: no cover
    from .config import TrainConfig

__all__ = [
    "split_indices", "balanced_weights", "make_input_spec", "load_jets", "load_inputs", "load_labelled",
    "check_split", "warn_on_samples", "FEW_JETS",
]

#: Fewer selected jets of a class than this: a warning (the test metrics rest on a handful).
FEW_JETS = 50


#: ``partonFlavour`` of jets whose file has no such field.
NO_FLAVOUR = -999


def split_indices(n: int, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into (train, val, test) index arrays."""
    f = np.asarray(fractions, dtype=np.float64)
    if len(f) != 3 or np.any(f < 0) or f.sum() <= 0:
        raise TrainingError(f"split fractions must be three non-negative numbers, got {fractions}")
    f = f / f.sum()
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(f[0] * n))
    n_val = int(round(f[1] * n))
    return perm[:n_train], perm[n_train:n_train + n_val], perm[n_train + n_val:]


def balanced_weights(y: Any, n_classes: int | None = None) -> np.ndarray:
    """Per-example weights ``n / (k · n_c)`` so every class carries the same total weight."""
    y = np.asarray(y, dtype=np.int64)
    k = int(n_classes or (y.max() + 1 if len(y) else 1))
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w_class = np.where(counts > 0, len(y) / (k * np.maximum(counts, 1)), 0.0)
    return w_class[y]


def make_input_spec(architecture: str, *, image_preset: str | None = None, image_spec: Any = None,
                    n_constituents: int = 40, features: Sequence[str] | None = None, jets: str = "FatJet",
                    event_image_spec: dict | None = None, image_overrides: dict | None = None,
                    particle_features: Sequence[str] | None = None) -> dict:
    """The artifact ``input`` spec for an architecture (``shape`` filled in when known).

    The input kinds' registry makes it (:func:`coffea_jetimg.inputs.make_input_spec`): image
    models use ``image_spec`` or the preset ``image_preset`` (default: the preset named like the
    architecture, else ``'komiske'``) with ``image_overrides`` (e.g. ``{"channels": ("charged",
    "neutral"), "normalize": "sum_all"}`` for colour images); 4-vector and particle models use
    ``n_constituents`` (and ``particle_features``); ``fc`` / ``maxout`` take images if image
    settings are given, else ``features`` if given, else 4-vectors; the ResNets take event images.
    """
    from ..errors import InputsError
    from ..inputs import make_input_spec as make

    try:
        return make(architecture, image_preset=image_preset, image_spec=image_spec, n_constituents=n_constituents,
                    features=features, jets=jets, event_image_spec=event_image_spec, image_overrides=image_overrides,
                    particle_features=particle_features)
    except InputsError as err:
        raise TrainingError(str(err)) from None


def _has(arr: Any, name: str) -> bool:
    from .._util import fields_of

    return name in fields_of(arr)


def _smeared(cands: Any, jes_smear: float, rng: np.random.Generator) -> Any:
    """Each jet's constituents with pt and mass scaled by one factor ``1 + jes_smear·N(0,1)``."""
    import awkward as ak

    n_per_event = ak.num(cands, axis=1)
    flat_jets = ak.flatten(cands, axis=1)
    f = ak.Array(np.clip(1 + jes_smear * rng.standard_normal(len(flat_jets)), 0.1, None))
    flat_jets = ak.with_field(flat_jets, flat_jets.pt * f, "pt")
    flat_jets = ak.with_field(flat_jets, flat_jets.mass * f, "mass")
    return ak.unflatten(flat_jets, n_per_event)


def load_inputs(files: Iterable[Any], input_specs: Mapping[str, dict], *, jets: str = "FatJet",
                pt_range: tuple[float, float] | None = None,
                abs_eta_max: float | None = None, msd_range: tuple[float | None, float | None] | None = None,
                truth_label: int | None = None, max_jets: int | None = None,
                jes_smear: float = 0.0, seed: int = 0,
                allow_missing_event_ids: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Network inputs of several specs, and jet quantities, for the same selected jets of ``files``.

    Each file is opened once and its constituents are built once for all specs (with the union
    of the fields they read).

    Parameters
    ----------
    files : list of str
        ROOT files (generated or real PFNano).
    input_specs : mapping of name → dict
        Artifact ``input`` specs (:func:`make_input_spec`); event-image specs only alone.
    jets : str
        The jet collection.
    pt_range : (float, float), optional
        Keep jets with ``lo <= pt < hi`` (GeV).
    abs_eta_max : float, optional
        Keep jets with ``|eta| < abs_eta_max``.
    msd_range : (float or None, float or None), optional
        Keep jets with ``lo <= msoftdrop < hi`` (GeV; ``mass`` for jets without ``msoftdrop``).
    truth_label : int, optional
        Keep only jets with ``truthLabel == truth_label`` when the jets have that field
        (:class:`coffea_jetimg.selection.TruthLabel` codes for generated files); ignored (with
        a warning naming the file) otherwise.
    max_jets : int, optional
        Stop after this many jets.
    jes_smear : float
        If > 0, each jet's constituents have pt and mass scaled by ``1 + jes_smear·N(0,1)``
        before the inputs are built (a JES-varied copy for "hardened" training), seeded by ``seed``.
    allow_missing_event_ids : bool
        Read files without ``run``/``luminosityBlock``/``event`` (:func:`coffea_jetimg.open_events`).

    Returns
    -------
    X : dict of name → ndarray float32 ``(n_jets, *shape)`` (``(n_events, ...)`` for event images)
    info : dict of ndarray
        ``pt``, ``eta``, ``mass``, ``msoftdrop`` (GeV; ``mass`` when absent), ``truthLabel``
        (-1 when absent) and ``partonFlavour`` (:data:`NO_FLAVOUR` when absent) per selected jet,
        and ``file_index``.
    """
    import awkward as ak

    from .._io import open_events
    from ..inputs import InputPlan, input_from_spec
    from ..selection import select_jets

    specs = dict(input_specs)
    if not specs:
        raise TrainingError("load_inputs needs at least one input spec")
    typed = {k: input_from_spec(s) for k, s in specs.items()}
    event_level = [k for k, i in typed.items() if i.level == "event"]
    if event_level and len(specs) > 1:
        raise TrainingError(f"event-image inputs {event_level} are per event; load them alone, not with "
                            f"{sorted(set(specs) - set(event_level))}")
    plan = InputPlan(typed.values(), jets=jets)  # constituents once per file for every spec
    rng = np.random.default_rng(seed)
    Xs: dict[str, list[np.ndarray]] = {k: [] for k in specs}
    infos: list[dict[str, np.ndarray]] = []
    n_total = 0
    warned = False
    for fi, path in enumerate(files):
        # virtual: only the branches the inputs touch are read (eager reads the whole file)
        events = open_events(str(path), mode="virtual", allow_missing_event_ids=allow_missing_event_ids)
        if event_level:
            (key,) = specs
            X_ev = plan.build(events)[typed[key].key]
            Xs[key].append(X_ev)
            n = len(X_ev)
            info = {"pt": np.zeros(n), "eta": np.zeros(n), "mass": np.zeros(n), "msoftdrop": np.zeros(n),
                    "truthLabel": np.full(n, -1), "partonFlavour": np.full(n, NO_FLAVOUR, np.int64)}
        else:
            j = events[jets]
            mask = select_jets(j, pt=pt_range, abs_eta=abs_eta_max, msd=msd_range)
            if truth_label is not None:
                if _has(j, "truthLabel"):
                    mask = mask & (j.truthLabel == truth_label)
                elif not warned:
                    warnings.warn(f"{path}: jets have no truthLabel; truth requirement {truth_label} not applied",
                                  stacklevel=2)
                    warned = True
            smear: Callable[[Any], Any] | None = (lambda c: _smeared(c, jes_smear, rng)) if jes_smear > 0 else None
            built = plan.build(events, mask, transform_cands=smear)
            for key, inp in typed.items():
                Xs[key].append(built[inp.key])
            sel = ak.flatten(j[mask])
            mass = ak.to_numpy(sel.mass).astype(np.float64)
            n = len(sel)
            info = {
                "pt": ak.to_numpy(sel.pt).astype(np.float64),
                "eta": ak.to_numpy(sel.eta).astype(np.float64),
                "mass": mass,
                "msoftdrop": ak.to_numpy(sel.msoftdrop).astype(np.float64) if _has(sel, "msoftdrop") else mass,
                "truthLabel": ak.to_numpy(sel.truthLabel).astype(np.int64) if _has(sel, "truthLabel")
                else np.full(n, -1, np.int64),
                "partonFlavour": ak.to_numpy(sel.partonFlavour).astype(np.int64) if _has(sel, "partonFlavour")
                else np.full(n, NO_FLAVOUR, np.int64),
            }
        info["file_index"] = np.full(n, fi, np.int64)
        infos.append(info)
        n_total += n
        if max_jets is not None and n_total >= max_jets:
            break
    if not infos:
        raise TrainingError("no input files")
    X = {k: np.concatenate(v) for k, v in Xs.items()}
    info = {k: np.concatenate([i[k] for i in infos]) for k in infos[0]}
    if max_jets is not None:
        X = {k: v[:max_jets] for k, v in X.items()}
        info = {k: v[:max_jets] for k, v in info.items()}
    return X, info


def load_jets(files: Iterable[Any], input_spec: dict, *, jets: str = "FatJet",
              pt_range: tuple[float, float] | None = None, abs_eta_max: float | None = None,
              msd_range: tuple[float | None, float | None] | None = None,
              truth_label: int | None = None, max_jets: int | None = None, jes_smear: float = 0.0,
              seed: int = 0, allow_missing_event_ids: bool = False) -> tuple[np.ndarray, dict]:
    """Network inputs and jet quantities of the selected jets of ``files``, for one input spec.

    :func:`load_inputs` with one spec: returns ``(X, info)`` with ``X`` the float32 inputs
    ``(n_jets, *shape)`` and ``info`` the per-jet ``pt``, ``eta``, ``mass``, ``msoftdrop``,
    ``truthLabel`` and ``file_index``.
    """
    X, info = load_inputs(files, {"x": input_spec}, jets=jets, pt_range=pt_range, abs_eta_max=abs_eta_max,
                          msd_range=msd_range, truth_label=truth_label, max_jets=max_jets, jes_smear=jes_smear,
                          seed=seed, allow_missing_event_ids=allow_missing_event_ids)
    return X["x"], info


def load_labelled(signal_files: Sequence[Any], background_files: Sequence[Any], input_spec: dict,
                  config: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """Labelled training arrays from signal and background files, as ``config`` selects them.

    Returns
    -------
    X : ndarray
        Inputs, background jets first for ``label_from='file'``.
    y : ndarray of int
        1 signal, 0 background.
    info : dict of ndarray
        Per-jet quantities (:func:`load_inputs`).
    X_smeared : ndarray or None
        A JES-smeared copy of ``X`` (``config.jes_smear`` > 0 and inputs whose smearing cannot be
        redrawn per epoch in :func:`~coffea_jetimg.training.fit`: all but 4-vectors).
    """
    c = config
    from ..inputs import input_from_spec

    smear = c.jes_smear > 0 and not input_from_spec(input_spec).smear_per_epoch
    sel: dict[str, Any] = dict(jets=c.jets, pt_range=c.pt_range, abs_eta_max=c.abs_eta_max, msd_range=c.msd_range,
                               allow_missing_event_ids=c.allow_missing_event_ids)
    if c.label_from == "file":
        Xs, info_s = load_jets(signal_files, input_spec, truth_label=c.signal_truth, max_jets=c.max_jets_per_class,
                               **sel)
        Xb, info_b = load_jets(background_files, input_spec, truth_label=c.background_truth,
                               max_jets=c.max_jets_per_class, **sel)
        X = np.concatenate([Xb, Xs])
        y = np.concatenate([np.zeros(len(Xb), np.int64), np.ones(len(Xs), np.int64)])
        info = {k: np.concatenate([info_b[k], info_s[k]]) for k in info_s}
        Xsm = None
        if smear:
            Xs2, _ = load_jets(signal_files, input_spec, truth_label=c.signal_truth, max_jets=c.max_jets_per_class,
                               jes_smear=c.jes_smear, seed=c.seed, **sel)
            Xb2, _ = load_jets(background_files, input_spec, truth_label=c.background_truth,
                               max_jets=c.max_jets_per_class, jes_smear=c.jes_smear, seed=c.seed + 1, **sel)
            Xsm = np.concatenate([Xb2, Xs2])
        return X, y, info, Xsm
    files = list(dict.fromkeys(str(f) for f in [*signal_files, *background_files]))  # pooled: each file once
    X, info = load_jets(files, input_spec, **sel)
    if c.label_from == "partonFlavour":  # quark/gluon from NanoAOD's Jet_partonFlavour; unmatched jets left out
        from ..selection import TRUTH_SOURCES

        if np.all(info["partonFlavour"] == NO_FLAVOUR):
            raise TrainingError(f"label_from='partonFlavour' but the jets ({c.jets}) of {files} have no "
                                "partonFlavour field")
        cls = TRUTH_SOURCES["partonFlavour"].index(info["partonFlavour"], c.class_names)
        keep, y = cls >= 0, np.maximum(cls, 0).astype(np.int64)
    else:
        if np.all(info["truthLabel"] < 0):
            raise TrainingError(f"label_from='truth' but the jets ({c.jets}) of {files} have no truthLabel field")
        keep = info["truthLabel"] >= 0
        y = (info["truthLabel"] == c.signal_truth).astype(np.int64)
    Xsm = load_jets(files, input_spec, jes_smear=c.jes_smear, seed=c.seed, **sel)[0][keep] if smear else None
    X, y, info = X[keep], y[keep], {k: v[keep] for k, v in info.items()}
    if c.max_jets_per_class:
        rng = np.random.default_rng(c.seed)
        take = np.concatenate([rng.permutation(np.flatnonzero(y == k))[:c.max_jets_per_class] for k in (0, 1)])
        X, y, info = X[take], y[take], {k: v[take] for k, v in info.items()}
        Xsm = Xsm[take] if Xsm is not None else None
    return X, y, info, Xsm


def check_split(y: Any, splits: Sequence[np.ndarray], class_names: Sequence[str] = ("qcd", "top"),
                fractions: Sequence[float] | None = None) -> None:
    """Refuse, before any training, a split in which a part lacks a class.

    Parameters
    ----------
    y : ndarray of int
        Labels (0 background, 1 signal).
    splits : (train, val, test) index arrays
    class_names : (background, signal)
    fractions : the split fractions, for the message

    Raises
    ------
    TrainingError
        "too few jets for the split", with the counts per part and class.
    """
    y = np.asarray(y)
    parts = dict(zip(("train", "validation", "test"), splits))
    counts = {p: [int(np.sum(y[idx] == c)) for c in (0, 1)] for p, idx in parts.items()}
    empty = [f"{p} has no {class_names[c]} jets" for p, cnt in counts.items() for c in (0, 1) if cnt[c] == 0]
    if empty:
        shown = ", ".join(f"{p} {cnt[1]} {class_names[1]} + {cnt[0]} {class_names[0]}" for p, cnt in counts.items())
        raise TrainingError(
            f"too few jets ({len(y)}: {int(np.sum(y == 1))} {class_names[1]}, {int(np.sum(y == 0))} "
            f"{class_names[0]}) for a train/val/test split {tuple(fractions) if fractions else ''}: {shown}; "
            f"{'; '.join(empty)}. Select more jets (more files, a wider pT range) before training")


def warn_on_samples(signal_files: Iterable[Any], background_files: Iterable[Any], y: Any,
                    class_names: Sequence[str] = ("qcd", "top"), label_from: str = "file") -> None:
    """Warn when the samples cannot separate anything meaningful: the same file given as
    signal and background, or a class with fewer than :data:`FEW_JETS` selected jets."""
    sig = {os.path.realpath(str(f)) for f in signal_files}
    both = sorted(str(f) for f in background_files if os.path.realpath(str(f)) in sig)
    # only when the file list is the label: the pooled modes (truth, partonFlavour) read each file
    # once and label every jet by its truth field, so one file on both sides is their normal use
    if both and label_from == "file":
        warnings.warn(f"{', '.join(both)}: given as both signal and background file (the same jets can be "
                      "labelled both ways, unless the truth labels tell them apart)", stacklevel=3)
    y = np.asarray(y)
    for c in (1, 0):
        n = int(np.sum(y == c))
        if 0 < n < FEW_JETS:
            warnings.warn(f"only {n} {class_names[c]} jets selected (fewer than {FEW_JETS}): the split leaves a "
                          f"handful for validation and test, and the test metrics mean little", stacklevel=3)
