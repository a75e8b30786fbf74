"""Several named per-constituent inputs with weaver-style transforms, for networks trained
elsewhere (a weaver-core ParticleNet, a collaborator's model, an ONNX file).

The ``input`` block reads like the ``inputs`` section of a weaver data config::

    {"kind": "weaver", "n_constituents": 100, "order": "pt",
     "inputs": {
        "pf_points":   {"vars": [["part_deta", null], ["part_dphi", null]]},
        "pf_features": {"vars": [["part_pt_log", 1.7, 0.7], ["part_e_log", 2.0, 0.7],
                                 ["part_logptrel", -4.7, 0.7], ["part_deltaR", 0.2, 4.0],
                                 ["part_charge", null]]},
        "pf_mask":     {"vars": [["part_mask", null]]}}}

``inputs`` names the network's inputs in the order it takes them (TorchScript: its positional
arguments; ONNX: its input names). Each input is ``(n_jets, len(vars), length)``, ``length``
defaulting to ``n_constituents``; the constituents are pT-ordered (``order: "pt"``, descending,
stable) or kept in the file's order (``"stored"``), truncated after the first ``length``.

Each variable is ``name`` or ``[name, subtract, multiply, clip_min, clip_max, pad_value]``, as in
weaver: a real constituent's value becomes ``clip((x - subtract) * multiply, clip_min, clip_max)``
when ``subtract`` is a number (``multiply`` defaults to 1, the clip bounds to -5 and 5, weaver's
defaults; ``null`` bounds do not clip), and stays ``x`` when ``subtract`` is null or absent
(normalised to ``[name, null, null, null, null, pad_value]``); padding slots hold ``pad_value``
(default 0). The normalised block spells every variable out in full. Names (:data:`VARIABLES`)
are the features :func:`coffea_jetimg.lorentz.constituent_features` computes, under their own
names (``deta``, ``log_pt``, ...) or weaver's (``part_deta``, ``part_pt_log``, ...), and ``mask``
/ ``part_mask`` (1 for a constituent, 0 for padding). The jet axis is the direction of the
constituents' 4-vector sum.

The built tensor is the named arrays packed into one float32 row per jet (``input.shape`` =
``[sum of len(vars) × length]``, see :mod:`coffea_jetimg.model_inputs`); the tagger splits it back
into the named inputs for the network.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputsError
from ..model_inputs import describe_layout, input_layout, packed_size
from ._base import ConstituentInput, register

if TYPE_CHECKING:  # pragma: no cover
    from .plan import BuildContext

__all__ = ["WeaverInput", "VARIABLES", "ORDERS", "weaver_transform"]

#: weaver's names of the ParticleNet / JetClass variables → the name in lorentz.FEATURES (or 'mask')
_WEAVER_NAMES = {
    "part_deta": "deta", "part_dphi": "dphi", "part_pt_log": "log_pt", "part_e_log": "log_e",
    "part_logptrel": "log_pt_rel", "part_logerel": "log_e_rel", "part_deltaR": "dr", "part_charge": "charge",
    "part_pt": "pt", "part_energy": "e", "part_eta": "eta", "part_phi": "phi", "part_mask": "mask",
}
#: orders of the constituents
ORDERS = ("pt", "stored")
_DEFAULTS = (None, 1.0, -5.0, 5.0, 0.0)  # subtract, multiply, clip_min, clip_max, pad_value (weaver's)
_INPUT_KEYS = ("vars", "length", "pad_mode")


def _variables() -> dict[str, str]:
    from ..lorentz import FEATURES

    return {**{f: f for f in FEATURES}, "mask": "mask", **_WEAVER_NAMES}


#: every variable name → what it is computed as (a :data:`coffea_jetimg.lorentz.FEATURES` name or ``mask``)
VARIABLES: dict[str, str] = _variables()


def _number(v: Any, where: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise InputsError(f"{where}: expected a number or null, got {v!r}")
    return float(v)


def _normalise_var(var: Any, where: str) -> list[Any]:
    """``name`` or ``[name, subtract, multiply, clip_min, clip_max, pad_value]`` → the full list."""
    if isinstance(var, str):
        var = [var]
    if not isinstance(var, (list, tuple)) or not var or not isinstance(var[0], str) or len(var) > 6:
        raise InputsError(f"{where}: a variable is NAME or [NAME, subtract, multiply, clip_min, clip_max, pad_value], "
                          f"got {var!r}")
    name = var[0]
    if name not in VARIABLES:
        raise InputsError(f"{where}: unknown variable {name!r}; valid names: {', '.join(VARIABLES)}")
    given = [_number(v, f"{where} ({name}, {label})") for v, label in
             zip(var[1:], ("subtract", "multiply", "clip_min", "clip_max", "pad_value"))]
    sub, mul, lo, hi, pad = [*given, *_DEFAULTS[len(given):]]
    if sub is None:  # no transform (weaver ignores multiply and clip then): say so rather than ignore them
        if mul not in (None, 1.0) or lo not in (None, -5.0) or hi not in (None, 5.0):
            raise InputsError(f"{where} ({name}): multiply / clip_min / clip_max act only with a subtract value "
                              "(as in weaver); give subtract 0 to scale or clip without shifting")
        return [name, None, None, None, None, 0.0 if pad is None else pad]
    if mul is None:
        mul = 1.0
    if lo is not None and hi is not None and lo > hi:
        raise InputsError(f"{where} ({name}): clip_min {lo} > clip_max {hi}")
    return [name, sub, mul, lo, hi, 0.0 if pad is None else pad]


def weaver_transform(x: np.ndarray, mask: np.ndarray, var: list[Any]) -> np.ndarray:
    """One variable's values ``x`` ``(n, N)`` transformed as weaver does: real entries (``mask``)
    ``clip((x - subtract) * multiply, clip_min, clip_max)`` when ``subtract`` is set, padding
    ``pad_value``; float32."""
    _, sub, mul, lo, hi, pad = var
    x = np.asarray(x, np.float32)
    if sub is not None:
        x = (x - np.float32(sub)) * np.float32(mul)
        if lo is not None or hi is not None:
            x = np.clip(x, None if lo is None else np.float32(lo), None if hi is None else np.float32(hi))
    return np.where(mask, x, np.float32(pad)).astype(np.float32, copy=False)


@register
class WeaverInput(ConstituentInput):
    """``{"kind": "weaver", "n_constituents": N, "order": "pt", "inputs": {name: {"vars": [...]}}}``
    (see the module docstring)."""

    kind = "weaver"
    KEYS = {"n_constituents": None, "order": None, "inputs": None}

    @classmethod
    def validate(cls, block: dict[str, Any]) -> None:
        """Check the block and spell it out: every variable in full, ``order``, ``shape``."""
        inputs = block.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise InputsError("input kind 'weaver' needs 'inputs': an object of the model's input names "
                              "(in the order it takes them) → {\"vars\": [...]}")
        n = block.get("n_constituents")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputsError(f"input.n_constituents must be a positive integer, got {n!r}")
        order = block.get("order") or "pt"
        if order not in ORDERS:
            raise InputsError(f"input.order {order!r}: choose from {', '.join(ORDERS)}")
        out: dict[str, dict[str, Any]] = {}
        for name, sub in inputs.items():
            where = f"input.inputs.{name}"
            if not isinstance(sub, dict):
                raise InputsError(f"{where}: expected an object with 'vars', got {sub!r}")
            unknown = [k for k in sub if k not in _INPUT_KEYS]
            if unknown:
                raise InputsError(f"{where}: unknown key(s) {unknown}; an input has {', '.join(_INPUT_KEYS)}")
            if sub.get("pad_mode", "constant") != "constant":
                raise InputsError(f"{where}.pad_mode {sub['pad_mode']!r}: only 'constant' padding is supported")
            vs = sub.get("vars")
            if not isinstance(vs, (list, tuple)) or not vs:
                raise InputsError(f"{where}.vars: a non-empty list of variables is needed")
            length = sub.get("length") or n
            if length is None:
                raise InputsError(f"{where}: no 'length' and no input.n_constituents: how many constituents?")
            if isinstance(length, bool) or not isinstance(length, int) or length < 1:
                raise InputsError(f"{where}.length must be a positive integer, got {length!r}")
            out[str(name)] = {"vars": [_normalise_var(v, f"{where}.vars[{i}]") for i, v in enumerate(vs)],
                              "length": int(length)}
        block["inputs"] = out
        block["order"] = order
        block["n_constituents"] = n or max(b["length"] for b in out.values())
        layout = input_layout(block)
        assert layout is not None
        size = packed_size(layout)
        if block.get("shape") is not None and list(block["shape"]) != [size]:
            raise InputsError(f"input.shape {block['shape']} does not match the packed inputs [{size}] "
                              f"({describe_layout(layout)}); leave 'shape' out, it is filled in")
        block["shape"] = [size]

    @property
    def key(self) -> str:
        # the inputs' order is the model's argument order: it is part of the key (json sorts keys)
        keep = {k: self.spec.get(k) for k in ("kind", "jets", "n_constituents", "order")}
        keep["inputs"] = [[name, b] for name, b in self.spec["inputs"].items()]
        return json.dumps(keep, sort_keys=True, default=str)

    @property
    def layout(self) -> list[tuple[str, tuple[int, ...]]]:
        layout = input_layout(self.spec)
        assert layout is not None
        return layout

    def describe(self) -> str:
        return f"weaver inputs {describe_layout(self.layout)}"

    def _features(self) -> tuple[str, ...]:
        feats = [VARIABLES[v[0]] for b in self.spec["inputs"].values() for v in b["vars"]]
        return tuple(dict.fromkeys(f for f in feats if f != "mask"))

    def constituent_fields(self) -> tuple[str, ...]:
        return ("charge",) if "charge" in self._features() else ()

    def build(self, ctx: BuildContext) -> np.ndarray:
        from ..lorentz import constituent_features

        inputs = self.spec["inputs"]
        n_max = max(int(b["length"]) for b in inputs.values())
        feats = self._features()
        x, mask = constituent_features(ctx.cands(), n_constituents=n_max, features=feats or ("pt",),
                                       sort=self.spec["order"] == "pt", return_mask=True)
        col = {f: i for i, f in enumerate(feats)}
        n = len(x)
        parts = []
        for block in inputs.values():
            length = int(block["length"])
            m = mask[:, :length]
            rows = [weaver_transform(m if VARIABLES[v[0]] == "mask" else x[:, col[VARIABLES[v[0]]], :length], m, v)
                    for v in block["vars"]]
            parts.append(np.stack(rows, axis=1).reshape(n, -1))
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
