"""Network inputs rebuilt from an artifact's ``input`` spec: one code path for training and use.

:func:`build_inputs` turns coffea events (or per-jet constituents already made) into the
float32 array a model expects, dispatching on ``input_spec["kind"]``:

``image``        :func:`coffea_jetimg.images.jet_images` with ``JetImageSpec.from_dict(image_spec)``
                 → ``(n_jets, C, H, W)``
``lorentz``      :func:`coffea_jetimg.lorentz.constituent_p4s` → ``(n_jets, 4, n_constituents)``
``features``     jet fields / substructure variables → ``(n_jets, F)``
``event_image``  :func:`coffea_jetimg.event_images.event_images` → ``(n_events, 3, H, W)``

:func:`check_compatible` raises before any work when the events cannot feed the model (e.g. a
constituent-based model on a plain NanoAOD file).
"""

from __future__ import annotations

import json

import awkward as ak
import numpy as np

from ._constituents import ConstituentsError, constituents, detect_layout
from ._util import fields_of as _fields
from .errors import InputsError

__all__ = [
    "build_inputs",
    "check_compatible",
    "constituent_fields",
    "input_key",
    "jet_features",
    "InputsError",
    "needs_constituents",
    "FEATURE_ALIASES",
]


#: Derived feature names → how to compute them from jet fields.
FEATURE_ALIASES = {
    "tau21": ("tau2", "tau1"),
    "tau32": ("tau3", "tau2"),
    "tau31": ("tau3", "tau1"),
    "tau42": ("tau4", "tau2"),
}


def input_key(input_spec: dict) -> str:
    """A stable string key for an input spec: models with equal keys share one input build."""
    keep = {k: v for k, v in input_spec.items() if k not in ("shape",)}
    return json.dumps(keep, sort_keys=True, default=str)


def needs_constituents(input_spec: dict, jet_fields=None) -> bool:
    """Whether the inputs are made from constituents (for features: when the jets lack some)."""
    if input_spec["kind"] in ("image", "lorentz"):
        return True
    if input_spec["kind"] == "features" and jet_fields is not None:
        have = set(jet_fields)
        return any(not all(g in have for g in FEATURE_ALIASES.get(f, (f,))) for f in input_spec["features"])
    return False


def constituent_fields(input_spec: dict) -> tuple[str, ...]:
    """The constituent fields besides pt, eta, phi, mass that the inputs of ``input_spec`` read.

    Pass it (or the union over several models) as :func:`coffea_jetimg.constituents`
    ``fields=``: only those branches are then read and gathered.
    """
    kind = input_spec["kind"]
    if kind == "image":
        from .images import JetImageSpec, constituent_fields as image_fields

        return image_fields(JetImageSpec.from_dict(input_spec["image_spec"]))
    if kind == "features":  # substructure from constituents: n_track counts charged ones
        return ("charge",)
    return ()  # lorentz: 4-vectors; event images use no constituents


def _is_events(x, jets: str) -> bool:
    return jets in _fields(x)


def check_compatible(input_spec: dict, events, jets: str | None = None) -> None:
    """Raise if ``events`` cannot provide the inputs of ``input_spec``; does no work on data.

    Parameters
    ----------
    input_spec : dict
        An artifact's ``spec["input"]``.
    events : ak.Array or dask_awkward.Array
        coffea NanoEvents (only the record fields are inspected).
    jets : str, optional
        Jet collection; defaults to ``input_spec["jets"]`` or ``'FatJet'``.

    Raises
    ------
    ConstituentsError
        For ``image``/``lorentz`` models on events without constituent branches (names them).
    InputsError
        For missing jet collections or feature fields.
    """
    jets = jets or input_spec.get("jets") or "FatJet"
    kind = input_spec["kind"]
    if kind in ("image", "lorentz"):
        detect_layout(events, jets)  # raises ConstituentsError naming the missing branches
    elif kind == "features":
        if not _is_events(events, jets):
            raise InputsError(f"no '{jets}' collection in the events; the model needs {jets} features")
        have = set(_fields(events[jets]))
        missing, from_cands = [], []
        for f in input_spec.get("features") or []:
            need = FEATURE_ALIASES.get(f, (f,))
            if all(n in have for n in need):
                continue
            (from_cands if f in _constituent_features() else missing).append(f)
        if from_cands:
            try:
                detect_layout(events, jets)
            except ConstituentsError as err:
                raise ConstituentsError(f"features {from_cands} are computed from constituents: {err}") from None
        if missing:
            raise InputsError(
                f"the events' {jets} lack the feature(s) {missing} the model needs "
                f"(branches {', '.join(jets + '_' + f for f in missing)})"
            )
    elif kind == "event_image":
        for coll in ("Jet", "MET"):
            if coll not in _fields(events):
                raise InputsError(f"event-image model needs the '{coll}' collection, absent from the events")
    else:
        raise InputsError(f"unknown input kind {kind!r}")


def _constituent_features() -> tuple[str, ...]:
    from .substructure import SUBSTRUCTURE_FEATURES

    return SUBSTRUCTURE_FEATURES


def jet_features(jets_arr, features, cands=None) -> np.ndarray:
    """Per-jet feature matrix.

    Parameters
    ----------
    jets_arr : ak.Array
        Jets, ``n_jets * {fields}`` or ``n_events * var * {fields}`` (flattened).
    features : list of str
        Jet field names (e.g. ``pt`` GeV, ``eta``, ``msoftdrop`` GeV, ``tau1``), ratios
        from :data:`FEATURE_ALIASES` (``tau21`` = τ2/τ1, ``tau32``, ...; 0 where the
        denominator is 0), or, when the jets lack them, observables of
        :func:`coffea_jetimg.substructure.substructure` computed from ``cands``
        (``width``, ``n_track``, ``c2``, ``d2``, ...).
    cands : ak.Array, optional
        Constituents of the same jets (``n_jets * var`` or ``n_events * var * var``).

    Returns
    -------
    ndarray, float32, shape (n_jets, F)
    """
    if jets_arr.ndim > 1:
        jets_arr = ak.flatten(jets_arr, axis=1)
    n = len(jets_arr)
    out = np.zeros((n, len(features)), dtype=np.float32)
    have = set(_fields(jets_arr))
    sub = None
    for i, f in enumerate(features):
        if f in have:
            out[:, i] = ak.to_numpy(ak.fill_none(jets_arr[f], 0)).astype(np.float32)
        elif f in FEATURE_ALIASES and all(n_ in have for n_ in FEATURE_ALIASES[f]):
            num_f, den_f = FEATURE_ALIASES[f]
            num = ak.to_numpy(ak.fill_none(jets_arr[num_f], 0)).astype(np.float64)
            den = ak.to_numpy(ak.fill_none(jets_arr[den_f], 0)).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[:, i] = np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)
        elif cands is not None and f in _constituent_features():
            if sub is None:
                from .substructure import substructure

                sub = substructure(_jets_to_cands(cands))
            out[:, i] = np.asarray(sub[f], dtype=np.float32)
        else:
            raise InputsError(f"jets have no feature '{f}' (fields: {sorted(have)})")
    return out


def _apply_jet_mask(arr, jet_mask):
    if jet_mask is None:
        return arr
    return arr[jet_mask]


def _jets_to_cands(cands):
    """``events → jets → cands`` (3 levels) to ``jets → cands`` (2 levels)."""
    return ak.flatten(cands, axis=1) if cands.ndim == 3 else cands


def _jet_axes(events, jets: str, jet_mask, coordinate: str):
    """The selected jets' stored axes, flat: (eta or rapidity, phi) as float64 numpy arrays."""
    j = ak.flatten(_apply_jet_mask(events[jets], jet_mask), axis=1)  # events → jets to jets
    y = j.rapidity if coordinate == "rapidity" else j.eta  # rapidity: coffea's Lorentz-vector behaviour
    return ak.to_numpy(y).astype(np.float64), ak.to_numpy(j.phi).astype(np.float64)


def build_inputs(input_spec: dict, x, jets: str | None = None, *, jet_mask=None, cands=None) -> np.ndarray:
    """Build the network input of ``input_spec`` for every jet (or event) in ``x``.

    Parameters
    ----------
    input_spec : dict
        An artifact's ``spec["input"]``.
    x : ak.Array
        Eager coffea events (holding ``jets``), per-jet constituents (``n_events * var * var``
        or ``n_jets * var`` records with ``pt``, ``eta``, ``phi``, ``mass``) for
        ``image``/``lorentz``, or jets (``[n_events * var *] {fields}``) for ``features``.
    jets : str, optional
        Jet collection; default ``input_spec["jets"]`` or ``'FatJet'``.
    jet_mask : ak.Array of bool, optional
        ``n_events * var`` selection of jets, applied to events-shaped inputs.
    cands : ak.Array, optional
        Constituents already computed from ``x`` (``n_events * var * var``), to skip that step.

    Returns
    -------
    ndarray, float32
        ``(n_jets, *input_spec["shape"])``; ``(n_events, 3, H, W)`` for ``event_image``.
    """
    jets = jets or input_spec.get("jets") or "FatJet"
    kind = input_spec["kind"]
    if kind == "event_image":
        from .event_images import EventImageSpec, event_images

        spec = input_spec.get("event_image_spec")
        spec = EventImageSpec.from_dict(spec) if spec else EventImageSpec()
        return np.ascontiguousarray(np.asarray(event_images(x, spec), dtype=np.float32))
    if kind == "features":
        is_ev = _is_events(x, jets)
        jets_arr = x[jets] if is_ev else x
        feats = list(input_spec["features"])
        have = set(_fields(jets_arr))
        if cands is None and is_ev and any(
            not all(g in have for g in FEATURE_ALIASES.get(f, (f,))) and f in _constituent_features() for f in feats
        ):
            cands = constituents(x, jets, fields=constituent_fields(input_spec))
        if cands is not None:
            cands = _apply_jet_mask(cands, jet_mask)
        return jet_features(_apply_jet_mask(jets_arr, jet_mask), feats, cands)
    if kind not in ("image", "lorentz"):
        raise InputsError(f"unknown input kind {kind!r}")
    is_ev = _is_events(x, jets)
    if cands is None:
        if is_ev:
            check_compatible(input_spec, x, jets)
            cands = constituents(x, jets, fields=constituent_fields(input_spec))
        else:
            cands = x
    cands = _jets_to_cands(_apply_jet_mask(cands, jet_mask))
    if kind == "image":
        from .images import JetImageSpec, jet_images

        spec = JetImageSpec.from_dict(input_spec["image_spec"])
        axes = {}
        if spec.axis == "jet":
            if not is_ev:
                raise InputsError(f"image_spec axis 'jet' takes the axes of the jets '{jets}': pass the events, "
                                  "not constituents alone")
            axes = dict(zip(("jet_eta", "jet_phi"), _jet_axes(x, jets, jet_mask, spec.coordinate)))
        out = jet_images(cands, spec, **axes)
    else:
        from .lorentz import constituent_p4s

        out = constituent_p4s(cands, n_constituents=int(input_spec["n_constituents"]))
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float32))
    shape = input_spec.get("shape")
    if shape is not None and tuple(out.shape[1:]) != tuple(shape):
        raise InputsError(f"built inputs of shape {out.shape[1:]}, the model expects {tuple(shape)}")
    return out


__all__ += ["ConstituentsError"]
