"""The input plan: made once per chunk from the taggers' inputs, it does each shared step once.

For a chunk it detects the constituent layout once, gathers the union of the constituent fields
once, builds the constituents once (for the selected jets), and each distinct input once (models
whose inputs are equal share one build). On dask it lists the columns all of that reads.

The per-chunk flow of a processor then reads::

    plan = InputPlan(tagger.input for tagger in taggers)      # once, in __init__
    plan.check(events)                                        # before any read
    built = plan.build(events, jet_mask=mask)                 # {input key: (n_jets, ...) float32}
    columns = plan.columns(events)                            # dask: what the chunk reads
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import awkward as ak
import numpy as np

from .._constituents import constituent_columns, constituents, detect_layout
from .._util import fields_of
from ..errors import ConstituentsError, InputsError
from ._base import InputSpec, input_from_spec

__all__ = ["InputPlan", "BuildContext"]


class BuildContext:
    """What the inputs of one chunk are built from; shared steps are computed once, on demand.

    Parameters
    ----------
    events : ak.Array, optional
        Eager coffea events (holding ``jets``), or the events already selected for event-level inputs.
    jets : str
        Jet collection.
    jet_mask : ``n_events * var`` bool, optional
        The jet selection; ``None`` keeps every jet.
    cands : ak.Array, optional
        Constituents already made (``n_events * var * var``, unselected, or ``n_jets * var``
        when no ``events`` are given).
    jets_array : ak.Array, optional
        The jets themselves when no ``events`` are given (features inputs).
    layout, cand_fields :
        The layout detected once and the union of constituent fields of the plan.
    transform_cands : callable, optional
        Applied to the ``n_events * var * var`` constituents once, before any input is built
        (e.g. training's JES smearing).
    """

    def __init__(self, events: Any = None, jets: str = "FatJet", jet_mask: Any = None, *, cands: Any = None,
                 jets_array: Any = None, layout: str | None = None, cand_fields: tuple[str, ...] | None = None,
                 transform_cands: Callable | None = None) -> None:
        self.events = events
        self.jets = jets
        self.jet_mask = jet_mask
        self.layout = layout
        self.cand_fields = cand_fields
        self._cands = cands
        self._jets_array = jets_array
        self._transform = transform_cands
        self._selected_cands: ak.Array | None = None
        self._selected_jets: ak.Array | None = None

    @property
    def has_events(self) -> bool:
        return self.events is not None

    def _require_events(self, what: str) -> Any:
        if self.events is None:
            raise InputsError(f"{what} takes the jets '{self.jets}' of the events: "
                              "pass the events, not constituents alone")
        return self.events

    def selected_jets(self) -> ak.Array:
        """The selected jets, flat (``n_jets * {fields}``)."""
        if self._selected_jets is None:
            if self._jets_array is not None:
                j = self._jets_array
                if self.jet_mask is not None:
                    j = j[self.jet_mask]
            else:
                j = self._require_events("these inputs")[self.jets]
                if self.jet_mask is not None:
                    j = j[self.jet_mask]
            self._selected_jets = ak.flatten(j, axis=1) if j.ndim > 1 else j
        return self._selected_jets

    def jet_fields(self) -> list[str]:
        if self._jets_array is not None:
            return fields_of(self._jets_array)
        return fields_of(self.events[self.jets]) if self.events is not None else []

    def cands(self) -> ak.Array:
        """Constituents of the selected jets, ``n_jets * var * {pt, eta, phi, mass, ...}``."""
        if self._selected_cands is None:
            c = self._cands
            if c is None:
                ev = self._require_events("constituent inputs")
                c = constituents(ev, self.jets, fields=self.cand_fields, layout=self.layout)
            if self._transform is not None:
                c = self._transform(c)
            if self.jet_mask is not None and c.ndim == 3:
                c = c[self.jet_mask]
            self._selected_cands = ak.flatten(c, axis=1) if c.ndim == 3 else c
        return self._selected_cands

    def slice(self, start: int, stop: int, with_cands: bool = True) -> BuildContext:
        """The context of the selected jets ``[start:stop]`` (a micro-batch): constituents and jets
        are made once for the whole chunk and sliced, so a batch builds only its own inputs."""
        sub = BuildContext(self.events, self.jets, None, layout=self.layout, cand_fields=self.cand_fields,
                           jets_array=self._jets_array)
        if with_cands:
            sub._selected_cands = self.cands()[start:stop]
        sub._selected_jets = self.selected_jets()[start:stop]
        return sub

    def scaled(self, factor: np.ndarray, with_cands: bool = True) -> BuildContext:
        """This context with every selected jet's energy scaled by ``factor`` (one per selected
        jet): the jet's pT and masses and its constituents' pT and masses times the factor, η and φ
        kept (a jet-energy-scale variation propagated into the network inputs)."""
        f = ak.Array(np.asarray(factor, np.float64))
        sub = BuildContext(self.events, self.jets, None, layout=self.layout, cand_fields=self.cand_fields,
                           jets_array=self._jets_array)
        if with_cands:
            c = self.cands()
            for name in ("pt", "mass"):
                if name in fields_of(c):
                    c = ak.with_field(c, c[name] * f, name)
            sub._selected_cands = c
        j = self.selected_jets()
        for name in ("pt", "mass", "msoftdrop"):
            if name in fields_of(j):
                j = ak.with_field(j, j[name] * f, name)
        sub._selected_jets = j
        return sub

    def jet_axes(self, coordinate: str = "eta") -> tuple[np.ndarray, np.ndarray]:
        """The selected jets' stored axes, float64: (eta or rapidity, phi)."""
        self._require_events("image_spec axis 'jet'")
        j = self.selected_jets()
        y = j.rapidity if coordinate == "rapidity" else j.eta  # rapidity: coffea's Lorentz-vector behaviour
        return ak.to_numpy(y).astype(np.float64), ak.to_numpy(j.phi).astype(np.float64)


class InputPlan:
    """The distinct inputs of a set of models, built together.

    Parameters
    ----------
    inputs : iterable of InputSpec or dict
        The models' inputs (an artifact's ``input`` blocks), in model order; equal ones are merged.
    jets : str, optional
        Jet collection; default each input's own ``jets``.
    """

    def __init__(self, inputs: Iterable[InputSpec | dict], jets: str | None = None) -> None:
        self.inputs: dict[str, InputSpec] = {}
        for spec in inputs:
            inp = input_from_spec(spec)
            self.inputs.setdefault(inp.key, inp)
        js = {jets or i.jets for i in self.inputs.values() if i.level == "jet"}
        if len(js) > 1:
            raise InputsError(f"the models take jets of different collections {sorted(js)}; one plan serves one")
        self.jets = jets or (js.pop() if js else "FatJet")

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Iterator[InputSpec]:
        return iter(self.inputs.values())

    def needs_constituents(self, jet_fields: list[str] | None) -> bool:
        return any(i.needs_constituents(jet_fields) for i in self)

    def constituent_fields(self, jet_fields: list[str] | None) -> tuple[str, ...]:
        """Union of the constituent fields (besides the 4-vector) of the inputs that need them."""
        out: dict[str, None] = {}
        for i in self:
            if i.needs_constituents(jet_fields):
                out.update(dict.fromkeys(i.constituent_fields()))
        return tuple(out)

    def layout(self, events: Any) -> str | None:
        """The constituent layout when some input needs constituents (raises naming the branches)."""
        jf = fields_of(events[self.jets]) if self.jets in fields_of(events) else []
        return detect_layout(events, self.jets) if self.needs_constituents(jf) else None

    def check(self, events: Any, names: dict[str, list[str]] | None = None) -> str | None:
        """Raise before any work when ``events`` cannot feed every input; returns the layout.

        ``names`` maps input keys to the models that take them, named in the error."""
        layout = None
        for key, inp in self.inputs.items():
            who = f"model(s) {', '.join(repr(n) for n in names[key])} " if names and key in names else ""
            try:
                if layout is None and inp.level == "jet" and self.jets in fields_of(events) and \
                        inp.needs_constituents(fields_of(events[self.jets])):
                    layout = detect_layout(events, self.jets)
                inp.check(events, self.jets, layout=layout)
            except ConstituentsError as err:
                raise ConstituentsError(f"{who}({inp.describe()} input) cannot run on these events: {err}") from None
            except InputsError as err:
                raise InputsError(f"{who}({inp.describe()} input): {err}") from None
        return layout

    def columns(self, events: Any) -> set[tuple[str, str]]:
        """The ``(collection, field)`` columns building the inputs reads (for dask's optimisation)."""
        out: set[tuple[str, str]] = set()
        jf = fields_of(events[self.jets]) if self.jets in fields_of(events) else []
        if self.needs_constituents(jf):
            out |= set(constituent_columns(events, self.jets, self.constituent_fields(jf)))
        for inp in self:
            out |= inp.columns(events)
        return out

    def context(self, events: Any, jet_mask: Any = None, *, cands: Any = None, layout: str | None = None,
                transform_cands: Callable | None = None) -> BuildContext:
        jf = fields_of(events[self.jets]) if self.jets in fields_of(events) else []
        if cands is None and layout is None and self.needs_constituents(jf):
            layout = detect_layout(events, self.jets)
        return BuildContext(events, self.jets, jet_mask, cands=cands, layout=layout,
                            cand_fields=self.constituent_fields(jf), transform_cands=transform_cands)

    def build(self, events: Any, jet_mask: Any = None, *, cands: Any = None, layout: str | None = None,
              transform_cands: Callable | None = None) -> dict[str, np.ndarray]:
        """Every distinct input for the selected jets (or the events): ``{key: float32 array}``."""
        return self.build_context(self.context(events, jet_mask, cands=cands, layout=layout,
                                               transform_cands=transform_cands))

    def build_context(self, ctx: BuildContext) -> dict[str, np.ndarray]:
        """Every distinct input for the jets (or events) of ``ctx``: ``{key: float32 array}``."""
        return {key: inp.check_shape(inp.build(ctx)) for key, inp in self.inputs.items()}

    def build_batches(self, ctx: BuildContext, n: int,
                      batch_size: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """The inputs of the ``n`` selected jets of ``ctx`` in micro-batches of ``batch_size``:
        ``(start, {key: array})`` each, so that the memory held at once is one batch's inputs (a
        chunk of 256×256×3 images would otherwise take gigabytes), not the chunk's."""
        with_cands = bool(ctx.events is not None and self.needs_constituents(ctx.jet_fields()))
        step = max(1, int(batch_size))
        for start in range(0, n, step):
            yield start, self.build_context(ctx.slice(start, min(n, start + step), with_cands))
