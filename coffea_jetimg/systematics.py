"""Event weights and systematic variations of the tagging histograms.

:class:`EventWeights` gives each event its weight: 1 for data, the generator weight (``genWeight``)
for MC, optionally times per-event weight branches the user names (``puWeight``, ...). Negative
weights (NLO samples) are kept as they are: the histograms hold sums of weights, not counts.

A variation is ``nominal`` or ``<name>Up`` / ``<name>Down`` (the names combine and cabinetry expect):

- :class:`JetScale` (jet energy scale): every jet's pT and mass times ``1 ± δ``, with ``δ`` a flat
  relative shift or, from a correctionlib JSON (JSON-POG) file, the uncertainty as a function of the
  jet's η and pT. It moves the pT and mass used for the selection and the binning, and with
  ``inputs=True`` the tagger inputs too (constituents scaled with their jet → new images / 4-vectors
  → new scores: one more network pass per direction).
- :class:`JetResolution` (jet energy resolution): an extra Gaussian smearing ``1 + σ g`` of pT and
  mass (Up), mirrored for Down (``1 - σ g``); ``g`` is drawn per jet from the event number and the
  jet's index, so it does not depend on how the file is chunked.
- :class:`WeightVariation`: a per-event relative weight taken from a generator weight vector
  (``LHEScaleWeight``, ``PSWeight``); :data:`GENERATOR_VARIATIONS` are the usual ones (μR, μF,
  ISR, FSR), the index of each read from the branch's title when it states it.

A jet variation costs a re-selection and a re-binning of the already scored jets (nothing when
``inputs=False``); a weight variation costs one more fill. Both are per-jet columns of the
tagging table (:func:`coffea_jetimg.tagging.jet_table`), filled into the ``score_syst``
histograms of :class:`~coffea_jetimg.processors.JetTaggingProcessor`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import awkward as ak
import numpy as np

from ._util import fields_of
from .errors import JetImgError

__all__ = ["EventWeights", "JetScale", "JetResolution", "WeightVariation", "GENERATOR_VARIATIONS",
           "NOMINAL", "DIRECTIONS", "is_mc", "variation_names", "parse_systematics", "Variation"]

NOMINAL = "nominal"
DIRECTIONS = ("Up", "Down")


class SystematicsError(JetImgError):
    """A systematic variation cannot be made (names the variation and the branch or file)."""


# ------------------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class EventWeights:
    """Per-event weights.

    Parameters
    ----------
    generator : str or None
        The generator-weight branch of MC events (``genWeight``); ``None``: unweighted MC.
    extra : sequence of str
        Further per-event weight branches multiplied in (MC only), e.g. ``("puWeight",)``.
    """

    generator: str | None = "genWeight"
    extra: tuple[str, ...] = ()

    def columns(self, events: Any, is_mc: bool) -> set[tuple[str | None, str]]:
        """The (top-level) branches :meth:`array` reads."""
        if not is_mc:
            return set()
        out: set[tuple[str | None, str]] = {(None, b) for b in self.extra}
        if self.generator and self.generator in fields_of(events):
            out.add((None, self.generator))
        return out

    def array(self, events: Any, is_mc: bool, ones: Any) -> Any:
        """Per-event weights as an (eager or dask) awkward array: ``ones`` (a per-event array of 1.0)
        for data; for MC the generator weight (``ones`` if the file has no such branch) times every
        ``extra`` branch.

        Raises
        ------
        SystematicsError
            An ``extra`` branch is not in the events (names it and the branches that look like weights).
        """
        w = ones
        if not is_mc:
            return w
        have = fields_of(events)
        if self.generator and self.generator in have:
            w = w * events[self.generator]
        for b in self.extra:
            if b not in have:
                hints = [f for f in have if "weight" in f.lower()]
                raise SystematicsError(f"weight branch {b!r} is not in the events; weight-like branches: {hints}")
            w = w * events[b]
        return w

    def of(self, events: Any, is_mc: bool) -> np.ndarray:
        """:meth:`array` of eager events as ``(n_events,)`` float64."""
        return np.asarray(ak.to_numpy(self.array(events, is_mc, np.ones(len(events)))), np.float64)


def is_mc(events: Any, weights: EventWeights | None) -> bool:
    """MC unless the dataset's metadata says ``is_mc: false``; without metadata, MC when the events
    carry the generator-weight branch."""
    meta = getattr(events, "metadata", None) or {}
    if "is_mc" in meta:
        return bool(meta["is_mc"])
    gen = weights.generator if weights is not None else "genWeight"
    return bool(gen) and gen in fields_of(events)


# ---------------------------------------------------------------------------------- variations

@dataclass(frozen=True)
class JetScale:
    """Jet energy scale: pT and mass of every jet times ``1 ± δ``.

    Parameters
    ----------
    name : str
        The variation's name (``jes`` → ``jesUp`` / ``jesDown``).
    shift : float
        Flat relative ``δ`` (used when no ``correction`` is given).
    correction : str, optional
        A correctionlib JSON(.gz) file (JSON-POG); ``key`` names the uncertainty correction in it,
        whose inputs are the jet's η and pT (named ``*eta*`` / ``*pt*``, e.g. ``JetEta``, ``JetPt``).
    key : str, optional
        The correction's name in ``correction``.
    inputs : bool
        Also scale the jet's constituents (pT and mass) before its tagger inputs are built, and
        re-score: the scores follow the variation.

    Notes
    -----
    The JSON-POG uncertainty is evaluated with correctionlib directly: coffea's
    ``CorrectedJetsFactory`` / ``JECStack`` re-apply the whole correction chain (raw factors, L1–L3,
    resolution, per-source uncertainties) and need every level's payload, whereas a variation of
    already corrected NanoAOD jets needs the one uncertainty correction, as a function of η and pT.
    """

    name: str = "jes"
    shift: float = 0.02
    correction: str | None = None
    key: str | None = None
    inputs: bool = False
    kind = "jet"

    def _delta(self, eta: np.ndarray, pt: np.ndarray) -> np.ndarray:
        if self.correction is None:
            return np.full(len(pt), float(self.shift))
        corr = _load_correction(self.correction, self.key, self.name)
        args = []
        for inp in corr.inputs:
            low = inp.name.lower()
            if "eta" in low:
                args.append(eta)
            elif "pt" in low:
                args.append(pt)
            else:
                raise SystematicsError(f"variation {self.name!r}: correction {self.key!r} in {self.correction} needs "
                                       f"input {inp.name!r}; only jet eta and pt inputs are supported")
        return np.asarray(corr.evaluate(*args), np.float64)

    def factors(self, events: Any, jets: str) -> dict[str, np.ndarray]:
        """``{"Up": f, "Down": f}``: per-jet factors on the flattened jets of ``events[jets]``."""
        fj = events[jets]
        pt = np.asarray(ak.to_numpy(ak.flatten(fj.pt, axis=1)), np.float64)
        eta = np.asarray(ak.to_numpy(ak.flatten(fj.eta, axis=1)), np.float64)
        d = self._delta(eta, pt)
        return {"Up": 1.0 + d, "Down": np.maximum(1.0 - d, 0.0)}

    def columns(self, events: Any, jets: str) -> set[tuple[str | None, str]]:
        return {(jets, "pt"), (jets, "eta")}


_CORRECTIONS: dict[tuple[str, str | None], Any] = {}


def _load_correction(path: str, key: str | None, name: str) -> Any:
    if (path, key) in _CORRECTIONS:
        return _CORRECTIONS[(path, key)]
    import correctionlib

    try:
        cset = correctionlib.CorrectionSet.from_file(str(path))
    except Exception as err:  # noqa: BLE001  # any unreadable file: one message naming it
        raise SystematicsError(f"variation {name!r}: cannot read correctionlib file {path}: {err}") from None
    names = list(cset)
    if key is None:
        if len(names) != 1:
            raise SystematicsError(f"variation {name!r}: {path} holds {len(names)} corrections; name one with key= "
                                   f"(e.g. {names[:5]})")
        key = names[0]
    if key not in names:
        close = [n for n in names if "uncertainty" in n.lower() or "total" in n.lower()][:8]
        raise SystematicsError(f"variation {name!r}: no correction {key!r} in {path}; uncertainty-like ones: {close}")
    _CORRECTIONS[(path, key)] = cset[key]
    return cset[key]


@dataclass(frozen=True)
class JetResolution:
    """Jet energy resolution: pT and mass times ``1 + σ g`` (Up) and ``1 - σ g`` (Down), ``g`` a
    standard normal number drawn per jet from (``seed``, event number, jet index).

    Parameters
    ----------
    name : str
        Variation name (``jer``).
    smear : float
        Relative width ``σ`` of the extra smearing.
    seed : int
        Seed mixed with the event number.
    inputs : bool
        As for :class:`JetScale`.
    """

    name: str = "jer"
    smear: float = 0.1
    seed: int = 0
    inputs: bool = False
    kind = "jet"

    def factors(self, events: Any, jets: str) -> dict[str, np.ndarray]:
        fj = events[jets]
        counts = np.asarray(ak.to_numpy(ak.num(fj.pt, axis=1)), np.int64)
        if "event" in fields_of(events):
            evno = np.asarray(ak.to_numpy(events.event), np.uint64)
        else:  # no event numbers: the entry's position (reproducible for one chunking only)
            evno = np.arange(len(counts), dtype=np.uint64)
        idx = np.asarray(ak.to_numpy(ak.flatten(ak.local_index(fj.pt, axis=1), axis=1)), np.uint64)
        key = np.repeat(evno, counts) * np.uint64(1009) + idx
        g = _normal_from_keys(key, self.seed)
        s = float(self.smear) * g
        return {"Up": np.maximum(1.0 + s, 0.0), "Down": np.maximum(1.0 - s, 0.0)}

    def columns(self, events: Any, jets: str) -> set[tuple[str | None, str]]:
        return {(jets, "pt")} | ({(None, "event")} if "event" in fields_of(events) else set())


def _normal_from_keys(keys: np.ndarray, seed: int) -> np.ndarray:
    """Standard normal numbers, one per 64-bit key, a pure function of (key, seed): a splitmix64
    hash → two uniforms → Box–Muller (numpy's generators take one seed per stream, not per element)."""
    with np.errstate(over="ignore"):
        def mix(z: np.ndarray) -> np.ndarray:
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))

        base = keys.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        a = mix(base + np.uint64(0x9E3779B97F4A7C15))
        b = mix(base + np.uint64(0x3C6EF372FE94F82A))
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    u2 = (b >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@dataclass(frozen=True)
class WeightVariation:
    """A generator-weight variation: the event weight times ``branch[up]`` (Up) or
    ``branch[down]`` (Down), relative weights as NanoAOD stores them (``w_var / w_nominal``).

    ``up`` / ``down`` ``None``: the indices of ``name`` (``muR``, ``muF``, ``isr``, ``fsr``) read from
    the branch's title, else NanoAOD's documented order. Events without the branch, or whose vector
    is too short, get relative weight 1, with a warning that counts them.
    """

    name: str
    branch: str
    up: int | None = None
    down: int | None = None
    kind = "weight"

    def indices(self, events: Any) -> tuple[int, int]:
        if self.up is not None and self.down is not None:
            return self.up, self.down
        kind = "ps" if self.branch == "PSWeight" else "scale"
        default = _PS_DEFAULT if kind == "ps" else _SCALE_DEFAULT
        table = _indices_from_title(_doc(events, self.branch), kind) or default
        if self.name not in table:
            raise SystematicsError(f"variation {self.name!r}: give the indices of {self.branch!r} "
                                   f"(NAME={self.branch}:UP:DOWN); known names for it: {sorted(table)}")
        return table[self.name]

    def relative(self, events: Any, where: str = "") -> dict[str, np.ndarray]:
        """``{"Up": r, "Down": r}``: per-event relative weights."""
        n_ev = len(events)
        if self.branch not in fields_of(events):
            warnings.warn(f"{where}: variation {self.name!r}: no {self.branch!r} branch; weight 1 used for "
                          f"all {n_ev} events", RuntimeWarning, stacklevel=2)
            return {d: np.ones(n_ev) for d in DIRECTIONS}
        up, down = self.indices(events)
        arr = events[self.branch]
        n = np.asarray(ak.to_numpy(ak.num(arr, axis=1)), np.int64)
        out = {}
        for d, i in (("Up", up), ("Down", down)):
            ok = n > i
            vals = np.ones(n_ev, np.float64)
            if ok.any():
                vals[ok] = np.asarray(ak.to_numpy(arr[ok][:, i]), np.float64)
            out[d] = vals
        if (n <= max(up, down)).any():
            warnings.warn(f"{where}: variation {self.name!r}: {int((n <= max(up, down)).sum())} of {n_ev} events "
                          f"have no entry {max(up, down)} in {self.branch!r}; weight 1 used for them",
                          RuntimeWarning, stacklevel=2)
        return out

    def columns(self, events: Any, jets: str) -> set[tuple[str | None, str]]:
        return {(None, self.branch)} if self.branch in fields_of(events) else set()


#: ``--syst generator``: the usual scale and parton-shower variations of NanoAOD
GENERATOR_VARIATIONS = (WeightVariation("muR", "LHEScaleWeight"), WeightVariation("muF", "LHEScaleWeight"),
                        WeightVariation("isr", "PSWeight"), WeightVariation("fsr", "PSWeight"))


Variation = JetScale | JetResolution | WeightVariation

# NanoAOD's documented orders (v9 and later), used when a branch's title does not state its own
_SCALE_DEFAULT = {"muR": (7, 1), "muF": (5, 3)}  # [4] nominal; MUR=2 MUF=1 is [7], MUR=0.5 MUF=1 is [1], ...
_PS_DEFAULT = {"isr": (2, 0), "fsr": (3, 1)}  # [0] ISR=0.5, [1] FSR=0.5, [2] ISR=2, [3] FSR=2


def _doc(events: Any, branch: str) -> str:
    lay = events[branch].layout
    for node in (lay, getattr(lay, "content", None)):
        doc = (getattr(node, "parameters", None) or {}).get("__doc__")
        if doc:
            return str(doc)
    return ""


def _indices_from_title(doc: str, kind: str) -> dict[str, tuple[int, int]] | None:
    """Up/down indices stated in a NanoAOD weight branch's title, or ``None``.

    Titles seen: ``[0] is muR=0.50000E+00 muF=0.50000E+00 ; ...`` (LHEScaleWeight),
    ``[1] is MUF="1.0" MUR="0.5" ...`` and ``[0] is ISR=0.5 FSR=1; [1] is ISR=1 FSR=0.5; ...`` (PSWeight).
    """
    num = r'"?([-+0-9.eE]+)"?'
    a, b = ("ISR", "FSR") if kind == "ps" else ("MUR", "MUF")
    found: dict[int, tuple[float, float]] = {}
    for k, body in re.findall(r"\[(\d+)\]\s*is\s*([^;\[]*)", doc):
        va = re.search(rf"\b{a}\s*=\s*{num}", body, re.IGNORECASE)
        vb = re.search(rf"\b{b}\s*=\s*{num}", body, re.IGNORECASE)
        if va and vb:
            try:
                found[int(k)] = (float(va.group(1)), float(vb.group(1)))
            except ValueError:
                continue
    if not found:
        return None
    na, nb = ("isr", "fsr") if kind == "ps" else ("muR", "muF")
    pick = {(2.0, 1.0): (na, 0), (0.5, 1.0): (na, 1), (1.0, 2.0): (nb, 0), (1.0, 0.5): (nb, 1)}
    out: dict[str, list[int]] = {}
    for k, val in found.items():
        key = (round(val[0], 6), round(val[1], 6))
        if key in pick:
            name, pos = pick[key]
            out.setdefault(name, [-1, -1])[pos] = k
    res = {n: (v[0], v[1]) for n, v in out.items() if min(v) >= 0}
    return res or None


def variation_names(variations: Iterable[Variation]) -> list[str]:
    """``["nominal", "<name>Up", "<name>Down", ...]`` in the variations' order."""
    out = [NOMINAL]
    for v in variations:
        out += [f"{v.name}{d}" for d in DIRECTIONS]
    return out


def parse_systematics(texts: Sequence[str]) -> list[Variation]:
    """The ``--syst`` syntax → variations:

    ``jes=0.02`` (flat JES), ``jes=FILE.json.gz:KEY`` (correctionlib), ``jer=0.1`` (extra smearing),
    a ``+inputs`` suffix to propagate a jet variation into the tagger inputs, ``NAME=BRANCH:UP:DOWN``
    for a weight vector, and ``generator`` for the usual LHE-scale/PS variations (added per file).
    """
    out: list[Variation] = []
    names: set[str] = set()
    for text in texts:
        t = text.strip()
        inputs = t.endswith("+inputs")
        if inputs:
            t = t[: -len("+inputs")]
        name, eq, value = t.partition("=")
        if name == "generator" and not eq:
            out += [v for v in GENERATOR_VARIATIONS if v.name not in names]
            names |= {v.name for v in GENERATOR_VARIATIONS}
            continue
        if not eq or not value or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise SystematicsError(f"--syst {text!r}: expected jes=DELTA, jes=FILE:KEY, jer=SIGMA, NAME=BRANCH:UP:DOWN "
                                   "or generator (names: letters, digits, _)")
        if name in names:
            raise SystematicsError(f"--syst {text!r}: variation {name!r} given twice")
        names.add(name)
        parts = value.split(":")
        try:
            if len(parts) == 3:
                out.append(WeightVariation(name, parts[0], int(parts[1]), int(parts[2])))
            elif name.startswith("jer"):
                out.append(JetResolution(name, smear=float(value), inputs=inputs))
            elif len(parts) == 1:
                out.append(JetScale(name, shift=float(value), inputs=inputs))
            else:
                out.append(JetScale(name, correction=":".join(parts[:-1]), key=parts[-1], inputs=inputs))
        except ValueError:
            raise SystematicsError(f"--syst {text!r}: {value!r} is not a number, FILE:KEY or BRANCH:UP:DOWN") from None
    return out
