"""Models with several named inputs (``points``, ``features``, ``mask``): their layout, read from
an artifact's ``input`` block, and the packing of their arrays into one.

A network trained elsewhere (a weaver-core ParticleNet, a collaborator's model, an ONNX file)
often takes several named tensors, ``(n, 2, N)`` points, ``(n, F, N)`` features and ``(n, 1, N)``
a mask. Its ``input`` block lists them under ``inputs`` (name → ``{"vars": [...], "length": N}``,
in the order the network takes them; see :mod:`coffea_jetimg.inputs.weaver`). Everything between
the input plan and the network (micro-batches, the non-finite check, pickling to Dask workers)
handles one float32 array per model, so those inputs travel *packed*: each jet's named arrays
flattened and concatenated into one row of ``input.shape = [sum of rows × length]``. The
:class:`~coffea_jetimg.inference.Tagger` splits a batch back into the named arrays right before
the network (TorchScript: ``module(*arrays)`` in spec order; ONNX: by input name; Triton: one
named request input each).

This module imports only numpy and the standard library (the Triton server imports it).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["input_layout", "packed_size", "split_inputs", "pack_inputs", "describe_layout"]

#: one named input: (name, per-item shape)
Layout = Sequence[tuple[str, tuple[int, ...]]]


def input_layout(input_spec: Mapping[str, Any]) -> list[tuple[str, tuple[int, ...]]] | None:
    """The named inputs of an ``input`` block, ``[(name, (rows, length)), ...]`` in the order the
    network takes them; ``None`` for a single-input block (every kind but ``weaver``)."""
    blocks = input_spec.get("inputs")
    if not blocks:
        return None
    default = input_spec.get("n_constituents")
    out: list[tuple[str, tuple[int, ...]]] = []
    for name, block in blocks.items():
        length = block.get("length") or default
        out.append((str(name), (len(block.get("vars") or ()), int(length or 0))))
    return out


def packed_size(layout: Layout) -> int:
    """Values per item of the packed array."""
    return int(sum(int(np.prod(shape)) for _, shape in layout))


def describe_layout(layout: Layout) -> str:
    """``pf_points [2, 100], pf_features [7, 100], pf_mask [1, 100]``."""
    return ", ".join(f"{name} {list(shape)}" for name, shape in layout)


def split_inputs(layout: Layout, x: np.ndarray) -> list[np.ndarray]:
    """The named arrays (C-contiguous float32 ``(n, *shape)`` each, in layout order) of a packed
    ``(n, packed_size)`` array."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != packed_size(layout):
        raise ValueError(f"packed inputs have shape {list(x.shape[1:])}, expected [{packed_size(layout)}] "
                         f"({describe_layout(layout)})")
    out, i = [], 0
    for _, shape in layout:
        size = int(np.prod(shape))
        out.append(np.ascontiguousarray(x[:, i:i + size]).reshape(len(x), *shape))
        i += size
    return out


def pack_inputs(layout: Layout, named: Mapping[str, Any], where: str = "inputs") -> np.ndarray:
    """One ``(n, packed_size)`` float32 array from named arrays ``{name: (n, *shape)}``.

    Raises ``ValueError`` naming a missing or unknown input, or one of the wrong shape."""
    names = [name for name, _ in layout]
    missing = [n for n in names if n not in named]
    extra = [n for n in named if n not in names]
    if missing or extra:
        raise ValueError(f"{where}: the model takes the named inputs {names}; "
                         + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
                         + (f"unknown {extra}" if extra else ""))
    arrays = [np.asarray(named[n], dtype=np.float32) for n in names]
    n = len(arrays[0]) if arrays else 0
    for (name, shape), a in zip(layout, arrays):
        if a.ndim < 1 or len(a) != n or tuple(a.shape[1:]) != tuple(shape):
            raise ValueError(f"{where}: input {name!r} has shape {list(a.shape)}, expected [{n}, "
                             f"{', '.join(str(s) for s in shape)}]")
    if not arrays:
        return np.zeros((0, 0), np.float32)
    return np.ascontiguousarray(np.concatenate([a.reshape(n, -1) for a in arrays], axis=1))
