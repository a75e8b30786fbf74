"""Network inputs rebuilt from an artifact's ``input`` spec: one code path for training and use.

One class per input kind, one file each, in a registry (:func:`input_from_spec` reads an
artifact's ``input`` block through it):

=================  ======================================  =====================================
kind               class (file)                            tensor
=================  ======================================  =====================================
``image``          :class:`ImageInput` (image.py)          ``(n_jets, C, H, W)`` jet images
``lorentz``        :class:`FourVectorInput` (four_vectors)  ``(n_jets, 4, N)`` E, px, py, pz
``particles``      :class:`ParticleInput` (particles.py)   ``(n_jets, F, N)`` per-constituent features
``features``       :class:`FeatureInput` (features.py)     ``(n_jets, F)`` jet / substructure features
``event_image``    :class:`EventImageInput` (event_image)  ``(n_events, 3, H, W)`` event images
``weaver``         :class:`WeaverInput` (weaver.py)        named inputs (points, features, mask),
                                                           weaver-style transforms, packed
=================  ======================================  =====================================

A new kind is one file with a registered :class:`InputSpec` subclass, imported below.
:class:`InputPlan` builds the inputs of several models together, once per chunk (see plan.py).

The functions :func:`build_inputs`, :func:`check_compatible`, :func:`constituent_fields`,
:func:`needs_constituents` and :func:`input_key` take a plain ``input`` dict, for one model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._util import fields_of
from ..errors import ConstituentsError, InputsError
from ._base import InputSpec, input_from_spec, input_kinds, kind_class, normalise_input, register
from .event_image import EventImageInput
from .features import FEATURE_ALIASES, FeatureInput, jet_features
from .four_vectors import FourVectorInput
from .image import ImageInput
from .particles import ParticleInput
from .plan import BuildContext, InputPlan
from .weaver import WeaverInput

__all__ = [
    "InputSpec", "register", "input_from_spec", "input_kinds", "kind_class", "normalise_input",
    "ImageInput", "FourVectorInput", "ParticleInput", "FeatureInput", "EventImageInput", "WeaverInput",
    "InputPlan", "BuildContext",
    "build_inputs", "check_compatible", "constituent_fields", "input_key", "jet_features", "needs_constituents",
    "make_input_spec", "FEATURE_ALIASES", "InputsError", "ConstituentsError",
]


def input_key(input_spec: dict | InputSpec) -> str:
    """A stable string key for an input spec: models with equal keys share one input build."""
    return input_from_spec(input_spec).key


def needs_constituents(input_spec: dict | InputSpec, jet_fields: list[str] | None = None) -> bool:
    """Whether the inputs are made from constituents (for features: when the jets lack some)."""
    return input_from_spec(input_spec).needs_constituents(jet_fields)


def constituent_fields(input_spec: dict | InputSpec) -> tuple[str, ...]:
    """The constituent fields besides pt, eta, phi, mass that the inputs of ``input_spec`` read.

    Pass it (or the union over several models) as :func:`coffea_jetimg.constituents`
    ``fields=``: only those branches are then read and gathered.
    """
    return input_from_spec(input_spec).constituent_fields()


def check_compatible(input_spec: dict | InputSpec, events: Any, jets: str | None = None) -> None:
    """Raise if ``events`` cannot provide the inputs of ``input_spec``; does no work on data.

    Raises
    ------
    ConstituentsError
        For constituent-based inputs on events without constituent branches (names them).
    InputsError
        For missing jet collections or feature fields.
    """
    inp = input_from_spec(input_spec)
    inp.check(events, jets or inp.jets)


def build_inputs(input_spec: dict | InputSpec, x: Any, jets: str | None = None, *, jet_mask: Any = None,
                 cands: Any = None) -> np.ndarray:
    """Build the network input of ``input_spec`` for every jet (or event) in ``x``.

    Parameters
    ----------
    input_spec : dict or InputSpec
        An artifact's ``spec["input"]``.
    x : ak.Array
        Eager coffea events (holding ``jets``); or, for constituent inputs, per-jet constituents
        (``n_events * var * var`` or ``n_jets * var``); or, for ``features``, the jets.
    jets : str, optional
        Jet collection; default ``input_spec["jets"]`` or ``'FatJet'``.
    jet_mask : ak.Array of bool, optional
        ``n_events * var`` selection of jets, applied to events-shaped inputs.
    cands : ak.Array, optional
        Constituents already computed from ``x`` (``n_events * var * var``), to skip that step.

    Returns
    -------
    ndarray, float32 ``(n_jets, *shape)``; ``(n_events, 3, H, W)`` for event images.
    """
    inp = input_from_spec(input_spec)
    jets = jets or inp.jets
    if jets in fields_of(x) or inp.level == "event":
        if inp.level == "jet":
            inp.check(x, jets)
        plan = InputPlan([inp], jets=jets)
        return plan.build(x, jet_mask, cands=cands)[inp.key]
    from .plan import BuildContext

    if inp.needs_constituents(fields_of(x)) and not isinstance(inp, FeatureInput):
        ctx = BuildContext(None, jets, jet_mask, cands=x)
    else:
        ctx = BuildContext(None, jets, jet_mask, cands=cands, jets_array=x)
    return inp.check_shape(inp.build(ctx))


def make_input_spec(architecture: str, *, image_preset: str | None = None, image_spec: Any = None,
                    n_constituents: int = 40, features: Any = None, jets: str = "FatJet",
                    event_image_spec: Any = None, image_overrides: dict | None = None,
                    particle_features: Any = None) -> dict[str, Any]:
    """The artifact ``input`` block for an architecture (``shape`` filled in when known).

    The kind is the model registry's (:func:`coffea_jetimg.models.input_kind`); models that take
    any jet input (``fc``, ``maxout``) take images if image settings are given, else ``features``
    if given, else 4-vectors. Every setting goes to the kind's :meth:`InputSpec.make`.
    """
    from ..models import input_kind

    kind = input_kind(architecture)
    if kind == "any":
        kind = ImageInput.kind if (image_preset or image_spec or image_overrides) else \
            (FeatureInput.kind if features else FourVectorInput.kind)
    if image_overrides and kind != ImageInput.kind:
        raise InputsError(f"image settings {image_overrides} given, but {architecture} takes {kind} inputs")
    block = kind_class(kind).make(
        jets=jets, architecture=architecture, image_preset=image_preset, image_spec=image_spec,
        image_overrides=image_overrides, n_constituents=n_constituents, features=features,
        event_image_spec=event_image_spec, particle_features=particle_features)
    return normalise_input(block)
