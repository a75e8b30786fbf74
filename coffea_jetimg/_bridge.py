"""The one eager ↔ dask-awkward bridge, and the jagged ↔ flat helpers the kernels' adapters share.

Every array function of the package is written for eager awkward arrays (numpy and numba on flat
buffers). :func:`map_partitions` runs such a function on eager input as it is, and on
dask-awkward input partition by partition, with

- a **meta** from a length-zero run of the same function (the typetracer cannot run numpy or numba
  code), or one given by the caller;
- a **typetracer pass** that touches exactly the columns the function reads (``touch``), so that
  dask-awkward's column optimisation reads only those branches from the file.

This is the pattern of coffea's ``ml_tools.helper.numpy_call_wrapper`` (which coffea writes for
models; here it serves every kernel adapter, the constituents and the processors). Written here
rather than taken from coffea because that class wants a model object and an ``__call__``
protocol, and knows only "touch all inputs"; the adapters need per-column touching and a meta
that is not a length-zero run (a processor's output table, built without loading a network).

:func:`per_jet` is the common case of a function returning per-jet numpy arrays, regrouped into
the ``[events →] jets`` structure of its input; :func:`flat` unpacks jagged constituents into
offsets + flat columns once (``ak.num`` + ``ak.flatten``), the one helper every kernel adapter uses.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import awkward as ak
import numpy as np

from ._util import fields_of, is_dask

__all__ = [
    "map_partitions",
    "per_jet",
    "length_zero",
    "touch_columns",
    "flat",
    "regroup",
    "axis_arrays",
    "dask_axes",
    "fields_of",
    "is_dask",
    "Column",
]

#: A column to touch: a field name, or a path of field names (``("FatJet", "pt")``; ``None`` steps are skipped).
Column = str | tuple[str | None, ...]


def length_zero(a: Any) -> ak.Array:
    """An eager length-zero array with the form (and behaviour) of dask-awkward ``a``'s meta."""
    meta = a._meta
    return ak.Array(meta.layout.form.length_zero_array(), behavior=meta.behavior, attrs=getattr(meta, "attrs", None))


def _get(arr: Any, path: Column) -> Any:
    if isinstance(path, str):
        return arr[path]
    for p in path:
        if p is not None:
            arr = arr[p]
    return arr


def touch_columns(arr: Any, columns: Sequence[Column] | None) -> None:
    """Mark ``columns`` of typetracer ``arr`` as read (``None``: every buffer of ``arr``)."""
    if columns is None:
        ak.typetracer.touch_data(arr)
        return
    for c in columns:
        ak.typetracer.touch_data(_get(arr, c))


def _typetracer(meta: ak.Array) -> ak.Array:
    return ak.Array(meta.layout.to_typetracer(forget_length=True), behavior=meta.behavior)


def map_partitions(fn: Callable[..., Any], *arrays: Any, touch: Sequence[Sequence[Column] | None] | None = None,
                   meta: ak.Array | None = None, label: str = "coffea-jetimg") -> Any:
    """Run ``fn(*arrays)`` on eager awkward input, or on every partition of dask-awkward input.

    Parameters
    ----------
    fn : callable
        ``fn(*eager_arrays) -> ak.Array`` (on dask input its result must be an awkward array; an
        eager caller may return anything).
    *arrays : ak.Array or dask_awkward.Array
        All eager, or all dask-awkward with the same partitions.
    touch : sequence, optional
        One entry per array: the columns of that array ``fn`` reads (field names or paths), or
        ``None`` for all of it. Default: all of every array.
    meta : ak.Array, optional
        Eager length-zero (or any) array of the output's type; default from ``fn`` run on
        length-zero inputs (warnings of that run are not shown: they concern no data).
    label : str
        Name of the dask layer.

    Returns
    -------
    ``fn(*arrays)`` for eager input; a dask-awkward array for dask input.
    """
    if not arrays or not is_dask(arrays[0]):
        return fn(*arrays)
    import dask_awkward as dak

    if touch is None:
        touch = [None] * len(arrays)
    if len(touch) != len(arrays):
        raise ValueError(f"touch has {len(touch)} entries for {len(arrays)} arrays")
    if meta is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the length-zero run only: no data, no user-visible work
            meta = fn(*[length_zero(a) for a in arrays])
    tmeta = _typetracer(meta)

    def _part(*parts: Any) -> Any:
        if ak.backend(*parts) == "typetracer":  # column optimisation: report exactly what is read
            for p, cols in zip(parts, touch):
                touch_columns(p, cols)
            return tmeta
        return fn(*parts)

    return dak.map_partitions(_part, *arrays, label=label, meta=tmeta)


def regroup(x: ak.Array, per_jet_arrays: dict[str, np.ndarray]) -> ak.Array:
    """Per-jet numpy results → an awkward record array in the jet structure of ``x``
    (``n_jets`` flat, or ``n_events * var`` when ``x`` is events → jets → constituents)."""
    rec = ak.zip({k: ak.Array(v) for k, v in per_jet_arrays.items()}, depth_limit=1)
    if x.ndim == 3:
        counts = ak.to_numpy(ak.num(ak.fill_none(x, [], axis=0), axis=1))
        rec = ak.unflatten(rec, counts)
    return rec


def per_jet(fn: Callable[..., dict[str, np.ndarray]], x: Any, *extra: Any, fields: Sequence[str] | None,
            label: str = "per-jet") -> ak.Array:
    """``fn(constituents, *extra) -> {name: (n_jets, ...) ndarray}`` as a record array in the jet
    structure of ``x``, eager or dask (then touching ``fields`` of ``x`` and all of each ``extra``:
    dask-awkward arrays partitioned as ``x``, e.g. the jet axes ``events.FatJet.eta``)."""
    return map_partitions(lambda arr, *more: regroup(arr, fn(arr, *more)), x, *extra,
                          touch=[fields, *([None] * len(extra))], label=label)


def flat(x: Any, fields: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Offsets ``(n_jets + 1,)`` int64 and flat numpy columns of jagged constituents ``x``.

    ``x`` is ``n_jets * var * {...}`` or ``n_events * var * var * {...}``; None candidates are
    dropped, None jets or events count as empty.
    """
    from ._constituents import flat_jet_constituents

    if not isinstance(x, ak.Array):
        x = ak.Array(x)
    if x.ndim not in (2, 3):
        raise ValueError(f"expected jets → constituents or events → jets → constituents, got type {x.type}")
    if x.ndim == 3:
        x = ak.flatten(ak.fill_none(x, [], axis=0), axis=1)
    x = ak.drop_none(x, axis=1)
    return flat_jet_constituents(x, fields)


def axis_arrays(jet_eta: Any, jet_phi: Any, n_jets: int) -> tuple[np.ndarray, np.ndarray]:
    """Jet axes as flat float64 arrays of ``n_jets`` (empty arrays when both are None)."""
    if jet_eta is None and jet_phi is None:
        return np.zeros(0), np.zeros(0)
    if jet_eta is None or jet_phi is None:
        raise ValueError("give both jet_eta and jet_phi, or neither")
    arrs = []
    for a in (jet_eta, jet_phi):
        a = ak.Array(a) if not isinstance(a, np.ndarray) else a
        if isinstance(a, ak.Array):
            if a.ndim == 2:
                a = ak.flatten(a, axis=1)
            a = ak.to_numpy(ak.fill_none(a, 0.0))
        arrs.append(np.ascontiguousarray(a, dtype=np.float64))
    if len(arrs[0]) != n_jets or len(arrs[1]) != n_jets:
        raise ValueError(f"jet_eta/jet_phi have {len(arrs[0])}/{len(arrs[1])} entries for {n_jets} jets")
    return arrs[0], arrs[1]


def dask_axes(x: Any, jet_eta: Any, jet_phi: Any) -> tuple[Any, ...]:
    """The jet axes for dask input ``x``: ``()`` for none, else both, checked to be dask-awkward
    arrays partitioned as ``x`` (e.g. ``events.FatJet.eta`` beside ``constituents(events)``)."""
    if jet_eta is None and jet_phi is None:
        return ()
    if jet_eta is None or jet_phi is None:
        raise ValueError("give both jet_eta and jet_phi, or neither")
    if not (is_dask(jet_eta) and is_dask(jet_phi)):
        raise TypeError("with dask input, jet_eta and jet_phi must be dask-awkward arrays partitioned as the "
                        f"constituents (got {type(jet_eta).__name__}, {type(jet_phi).__name__})")
    if jet_eta.npartitions != x.npartitions or jet_phi.npartitions != x.npartitions:
        raise ValueError(f"jet_eta/jet_phi have {jet_eta.npartitions}/{jet_phi.npartitions} partitions, "
                         f"the constituents {x.npartitions}")
    return (jet_eta, jet_phi)
