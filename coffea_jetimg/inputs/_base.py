"""The base of every network-input kind, and the registry that reads an artifact's ``input`` block.

An input kind is one class (one file in this package), registered with :func:`register`. It knows

- its spec: the keys of the artifact's ``input`` block it uses (``KEYS``), their validation and
  how training makes one (:meth:`InputSpec.make`);
- what it reads: the constituent fields besides the 4-vector (:meth:`InputSpec.constituent_fields`),
  whether it needs constituents at all, the jet or event columns (:meth:`InputSpec.columns`);
- its check, before any work (:meth:`InputSpec.check`), naming the missing branches;
- how to build its tensor from a :class:`~coffea_jetimg.inputs.plan.BuildContext`
  (:meth:`InputSpec.build`), through the numba kernels.

Nothing outside this package tests ``kind`` strings: the artifact, training and the processors
go through :func:`input_from_spec`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .._util import fields_of
from ..errors import InputsError

if TYPE_CHECKING:  # pragma: no cover
    from .plan import BuildContext

__all__ = ["InputSpec", "ConstituentInput", "register", "input_from_spec", "input_kinds", "kind_class",
           "normalise_input",
           "has_collection", "COMMON_KEYS"]

#: Keys every input block has (besides the kind's own ``KEYS``).
COMMON_KEYS: dict[str, Any] = {"jets": "FatJet", "shape": None}

_REGISTRY: dict[str, type[InputSpec]] = {}


def register(cls: type[InputSpec]) -> type[InputSpec]:
    """Class decorator: make ``cls`` the input kind ``cls.kind``."""
    if not getattr(cls, "kind", None):
        raise TypeError(f"{cls.__name__} has no 'kind'")
    _REGISTRY[cls.kind] = cls
    return cls


def input_kinds() -> tuple[str, ...]:
    """The registered input kinds, in registration order."""
    return tuple(_REGISTRY)


def kind_class(kind: str) -> type[InputSpec]:
    """The class of input kind ``kind``."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise InputsError(f"unknown input kind {kind!r}; known kinds: {', '.join(_REGISTRY)}") from None


def _all_keys() -> dict[str, Any]:
    """Every key any registered kind uses, with its default (the normalised ``input`` block of an
    artifact lists them all, as artifacts always did)."""
    out: dict[str, Any] = {}
    for cls in _REGISTRY.values():
        out.update(cls.KEYS)
    out.update(COMMON_KEYS)
    return out


def normalise_input(block: dict[str, Any]) -> dict[str, Any]:
    """An artifact's ``input`` block with defaults filled in and checked by its kind.

    Raises :class:`~coffea_jetimg.errors.InputsError` naming the missing or bad key."""
    if not isinstance(block, dict) or "kind" not in block:
        raise InputsError(f"'input' must be an object with a 'kind' (one of {', '.join(_REGISTRY)})")
    cls = kind_class(block["kind"])
    out = {**_all_keys(), **block}
    cls.validate(out)
    return out


def input_from_spec(spec: dict[str, Any] | InputSpec) -> InputSpec:
    """The typed input of an artifact's ``input`` block (an :class:`InputSpec` passes through)."""
    if isinstance(spec, InputSpec):
        return spec
    block = normalise_input(spec)
    return _REGISTRY[block["kind"]](block)


class InputSpec:
    """One network input: built per jet (``level = 'jet'``) or per event (``'event'``).

    Instances wrap the normalised ``input`` block (:attr:`spec`, a plain JSON-able dict).
    """

    kind: ClassVar[str] = ""
    level: ClassVar[str] = "jet"
    #: the keys of the ``input`` block this kind uses → defaults
    KEYS: ClassVar[dict[str, Any]] = {}
    #: whether training redraws a JES smearing of this input each epoch (4-vectors scale linearly)
    smear_per_epoch: ClassVar[bool] = False

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.jets: str = spec.get("jets") or "FatJet"

    # -- the spec ----------------------------------------------------------------------------
    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        """Raise :class:`InputsError` when ``block`` lacks what this kind needs."""

    @classmethod
    def make(cls, *, jets: str = "FatJet", **settings: Any) -> dict[str, Any]:
        """An ``input`` block of this kind from training settings (``shape`` filled in when
        known); unknown settings are ignored (one call serves every kind)."""
        raise NotImplementedError(f"input kind {cls.kind!r} cannot be made from settings")

    @property
    def shape(self) -> tuple[int, ...] | None:
        s = self.spec.get("shape")
        return None if s is None else tuple(int(v) for v in s)

    @property
    def key(self) -> str:
        """A stable key: inputs with equal keys are built once for all the models that take them."""
        keep = {k: self.spec.get(k) for k in ("kind", "jets", *self.KEYS)}
        return json.dumps(keep, sort_keys=True, default=str)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.spec)

    def describe(self) -> str:
        """A short human description (for logs and the report)."""
        return self.kind

    # -- what it reads -----------------------------------------------------------------------
    def needs_constituents(self, jet_fields: list[str] | None = None) -> bool:
        """Whether the input is made from constituents (``jet_fields``: the jets' fields, for
        kinds that need constituents only for what the jets lack)."""
        return False

    def constituent_fields(self) -> tuple[str, ...]:
        """Constituent fields besides pt, eta, phi, mass that :meth:`build` reads."""
        return ()

    def columns(self, events: Any) -> set[tuple[str, str]]:
        """``(collection, field)`` columns read besides the constituents' (jets' stored axes,
        features, event collections)."""
        return set()

    # -- check and build ---------------------------------------------------------------------
    def check(self, events: Any, jets: str | None = None, layout: str | None = None) -> None:
        """Raise before any work when ``events`` cannot provide this input (names the branches)."""

    def build(self, ctx: BuildContext) -> np.ndarray:
        """The float32 network input ``(n, *shape)`` of the context's selected jets (or events)."""
        raise NotImplementedError

    def check_shape(self, out: np.ndarray) -> np.ndarray:
        out = np.ascontiguousarray(np.asarray(out, dtype=np.float32))
        shape = self.shape
        if shape is not None and tuple(out.shape[1:]) != shape:
            raise InputsError(f"built {self.kind} inputs of shape {out.shape[1:]}, the model expects {shape}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()}, jets={self.jets!r}, shape={self.shape})"


def has_collection(events: Any, name: str) -> bool:
    """Whether ``events`` has a field (collection) ``name``."""
    return name in fields_of(events)


class ConstituentInput(InputSpec):
    """An input built from every selected jet's constituents (images, 4-vectors, particles): it
    needs them whatever the jets store, and its check is that the events have a constituent layout."""

    def needs_constituents(self, jet_fields: list[str] | None = None) -> bool:
        return True

    def check(self, events: Any, jets: str | None = None, layout: str | None = None) -> None:
        if layout is None:
            from .._constituents import detect_layout

            detect_layout(events, jets or self.jets)  # raises naming the missing branches
