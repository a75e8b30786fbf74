"""Jet tagging with saved deep-learning taggers: scores, masses and images into histograms.

A thin, stateless bundle over library functions: the selection (:mod:`coffea_jetimg.selection`),
the input plan (:class:`coffea_jetimg.inputs.InputPlan`: layout detected once, constituents built
once, each distinct input built once for all models), the taggers
(:class:`coffea_jetimg.inference.Tagger`) and one eager/dask bridge
(:func:`coffea_jetimg._bridge.map_partitions`). Per chunk::

    check(events)                    the plan checks every model's input before any read
    table = jet_table(events, ...)   selected jets → one row each: class, JET_VARIABLES, scores,
                                     non-zero pixels (eager: directly; dask: per partition)
    fill(hists, table)               one fill path for eager and dask

Per dataset it fills (all addable, so chunks and datasets merge with coffea's ``accumulate``):

``score[model]``     ``hist``: truth class × score × every :data:`JET_VARIABLES` axis (jet pT [GeV],
                     jet mass [GeV], |η|, n PV); also for each ensemble (mean class probabilities)
``predicted[model]`` truth class × predicted class index (arg-max; names in the axis metadata)
``score_moments[model]`` truth class × pT, Weight storage of weight = score: Σy, Σy²
``image[key]``       truth class × channel × iy × ix, Weight storage of weight = pixel intensity
``pixel_xy[model]``  truth class × channel × iy × ix, Σ x·y (pixel intensity × score)
``njets``            truth class × pT: n, the number of scored jets
``cutflow``          dict of counts (``jets_without_constituents``: selected jets whose
                     constituents the file does not store; they are not scored)

With ``n``, Σx, Σx², Σy, Σy², Σxy the per-pixel Pearson correlation between intensity and score
follows for any number of merged chunks (:func:`coffea_jetimg.metrics.pearson_map`).
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import awkward as ak
import hist
import numpy as np
from coffea import processor

from coffea_jetimg._bridge import fields_of, is_dask, map_partitions
from coffea_jetimg._constituents import constituents
from coffea_jetimg.errors import ConstituentsError, InputsError
from coffea_jetimg.inference import Tagger
from coffea_jetimg.inputs import ImageInput, InputPlan, input_from_spec
from coffea_jetimg.metrics import ensemble_mean
from coffea_jetimg.selection import DEFAULT_SELECTION, OTHER, TRUTH_NAMES, select_jets
from coffea_jetimg import axes as A

__all__ = [
    "JetTaggingProcessor",
    "JetVariable",
    "JET_VARIABLES",
    "select_jets",
    "jet_table",
    "parse_ensembles",
    "TRUTH_NAMES",
    "DEFAULT_SELECTION",
    "DEFAULT_AXES",
]

_SCORE_MAX = np.nextafter(np.float32(1.0), np.float32(0.0))


def _mass_field(jet_fields) -> str:
    return "msoftdrop" if "msoftdrop" in jet_fields else "mass"


def _npv(events, jets, mask, flat):
    if "PV" in fields_of(events) and "npvs" in fields_of(events.PV):
        return ak.flatten(ak.broadcast_arrays(events.PV.npvs, events[jets].pt)[0][mask], axis=1)
    return np.full(len(flat), -1.0)


@dataclass(frozen=True)
class JetVariable:
    """One per-jet variable of the score histograms: its axis, its value and the columns it reads.

    ``binning`` is a list of edges (variable axis) or ``(bins, lo, hi)`` (regular axis);
    ``JetTaggingProcessor(axes={binning_key: ...})`` overrides it. ``value(events, jets, mask,
    flat_jets)`` gives the selected jets' values; ``reads(jet_fields)`` the ``(collection, field)``
    pairs that needs.
    """

    name: str
    binning_key: str
    binning: tuple | list
    label: Callable[[list[str]], str]
    value: Callable
    reads: Callable[[list[str]], set]
    flow: bool = True

    def axis(self, binning, jet_fields) -> hist.axis.AxesMixin:
        if isinstance(binning, tuple):
            return hist.axis.Regular(*binning, name=self.name, label=self.label(jet_fields), flow=self.flow)
        return hist.axis.Variable(binning, name=self.name, label=self.label(jet_fields), flow=self.flow)


#: The per-jet axes of every score histogram, declared once: a new axis is one line here (the
#: table, the fill, the dask columns and the ROOT export follow it).
JET_VARIABLES: tuple[JetVariable, ...] = (
    JetVariable(A.PT, "pt_edges", [200, 300, 400, 500, 600, 700, 800, 1000, 1500, 3000], lambda jf: r"Jet $p_T$ [GeV]",
                lambda ev, j, m, f: f.pt, lambda jf: {"pt"}),
    JetVariable(A.MSD, "msd", (30, 0.0, 300.0), lambda jf: A.mass_label(_mass_field(jf)),
                lambda ev, j, m, f: f[_mass_field(fields_of(f))], lambda jf: {_mass_field(jf)}),
    JetVariable(A.ABS_ETA, "abs_eta_edges", [0.0, 0.8, 1.6, 2.5], lambda jf: r"Jet $|\eta|$",
                lambda ev, j, m, f: abs(f.eta), lambda jf: {"eta"}, flow=False),
    JetVariable(A.NPV, "npv_edges", [0, 15, 25, 35, 50, 100], lambda jf: "Number of primary vertices",
                _npv, lambda jf: {("PV", "npvs")}),
)

#: Histogram binning: score bins, then each :data:`JET_VARIABLES` binning by its key.
DEFAULT_AXES = {"score_bins": 40, **{v.binning_key: v.binning for v in JET_VARIABLES}}


def _np(a, dtype) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.fill_none(a, 0)), dtype=dtype)


def _pixel_records(x: np.ndarray, cls: np.ndarray, scores: dict[str, np.ndarray], rows: np.ndarray, n_rows: int):
    """Non-zero pixels of images ``x`` ``(n, C, H, W)`` of table rows ``rows`` as
    ``n_rows * var * {cls, c, iy, ix, v, y_*}`` (rows without an image get no pixels)."""
    j, c, iy, ix = np.nonzero(x)
    counts = np.zeros(n_rows, np.int64)
    if len(x):
        counts[rows] = np.bincount(j, minlength=len(x))
    r = rows[j] if len(j) else np.zeros(0, np.int64)
    cols = {"cls": cls[r].astype(np.int32), "c": c.astype(np.int32), "iy": iy.astype(np.int32),
            "ix": ix.astype(np.int32), "v": x[j, c, iy, ix].astype(np.float64)}
    for name, s in scores.items():
        cols[f"y_{name}"] = s[r].astype(np.float64)
    return ak.unflatten(ak.zip(cols, depth_limit=1), counts)


def _classes(flat, n, class_names, truth_names, dataset_class) -> np.ndarray:
    """Index into ``class_names`` of each jet: its truth label's name, or the dataset's class."""
    index = {c: i for i, c in enumerate(class_names)}
    other = index.get(OTHER, -1)
    if "truthLabel" not in fields_of(flat):
        return np.full(n, index.get(dataset_class, other), dtype=np.int32)
    codes = _np(flat.truthLabel, np.int64)
    size = max(int(codes.max()) + 1 if n else 1, max(truth_names) + 1)
    lut = np.array([index.get(truth_names.get(k, OTHER), other) for k in range(size)], dtype=np.int32)
    return np.where(codes >= 0, lut[np.clip(codes, 0, size - 1)], other).astype(np.int32)


def _where(events) -> str:
    return (getattr(events, "metadata", None) or {}).get("filename", "input file unknown")


def jet_table(events, *, taggers, jets="FatJet", selection=None, class_names=(), truth_names=None,
              dataset_class=None, image_refs=None, ensembles=None, plan: InputPlan | None = None, mask=None):
    """Select jets, build each distinct input once, score with every tagger; one row per selected jet.

    Parameters
    ----------
    events : ak.Array
        Eager coffea events.
    taggers : dict of str to Tagger
        In the order of the output fields ``s_<name>``/``pred_<name>``.
    jets : str
        Jet collection.
    selection : dict
        Keywords of :func:`select_jets`.
    class_names : sequence of str
        Truth classes; ``cls`` holds the index into it.
    truth_names : dict of int to str, optional
        ``{jets}_truthLabel`` code → class name; used when the jets have ``truthLabel``.
    dataset_class : str, optional
        Class of every jet when the jets have no ``truthLabel``.
    image_refs : dict of str to list of str
        Image input key → the models whose score is correlated with its pixels.
    ensembles : dict of str to list of str, optional
        Ensemble name → member models (mean of the members' class probabilities).
    plan : InputPlan, optional
        The taggers' input plan (made here when not given).
    mask : ``n_events * var`` bool, optional
        The jet selection if already computed.

    Returns
    -------
    ak.Array
        ``n_selected_jets * {cls, scored, <JET_VARIABLES>, s_<model>, pred_<model>, px_<k>}``:
        ``scored`` is False for jets whose constituents the file does not store (their scores
        are NaN and their pixels empty); ``px_<k>`` are the non-zero pixels of image input ``k``.
    """
    selection = DEFAULT_SELECTION if selection is None else selection
    truth_names = TRUTH_NAMES if truth_names is None else truth_names
    plan = plan or InputPlan([t.input_spec for t in taggers.values()], jets=jets)
    fj = events[jets]
    if mask is None:
        mask = select_jets(fj, **selection)
    flat = ak.flatten(fj[mask], axis=1)
    n = len(flat)
    cols: dict[str, np.ndarray] = {"cls": _classes(flat, n, class_names, truth_names, dataset_class)}
    for v in JET_VARIABLES:
        cols[v.name] = _np(v.value(events, jets, mask, flat), np.float64)

    # jets whose constituents the file does not store are not scored (an all-zero image would
    # give every one of them the same score)
    cands, scored_mask = None, mask
    jf = fields_of(fj)
    if plan.needs_constituents(jf):
        cands = constituents(events, jets, fields=plan.constituent_fields(jf), layout=plan.layout(events))
        scored_mask = mask & (ak.num(cands, axis=2) > 0)
    scored = _np(ak.flatten(scored_mask[mask], axis=1), bool) if n else np.zeros(0, bool)
    rows = np.flatnonzero(scored)
    cols["scored"] = scored
    n_missing = n - len(rows)
    if n_missing:
        warnings.warn(f"{_where(events)}: {n_missing} of {n} selected {jets} jets have no stored constituents; "
                      "they are counted in the cutflow (jets_without_constituents) and not scored", RuntimeWarning,
                      stacklevel=2)

    built = plan.build(events, scored_mask, cands=cands) if len(plan) else {}
    probs_of: dict[str, np.ndarray] = {}
    for name, tagger in taggers.items():
        x = built[input_from_spec(tagger.input_spec).key]
        _warn_non_finite(x, events, jets, name)
        probs_of[name] = tagger.predict(x)
    for name, members in (ensembles or {}).items():  # members share class names (checked by the processor)
        probs_of[name] = ensemble_mean([probs_of[m] for m in members])
    scores: dict[str, np.ndarray] = {}
    for name, probs in probs_of.items():
        head = taggers[name] if name in taggers else taggers[ensembles[name][0]]
        s = np.full(n, np.nan)
        s[rows] = np.minimum(probs[:, head.signal_index], _SCORE_MAX)
        scores[name] = s
        pred = np.full(n, -1, np.int32)
        pred[rows] = np.argmax(probs, axis=1) if len(probs) else np.zeros(0, np.int32)
        cols[f"s_{name}"], cols[f"pred_{name}"] = s, pred
    for k, (key, models) in enumerate((image_refs or {}).items()):
        cols[f"px_{k}"] = _pixel_records(built[key], cols["cls"], {m: scores[m] for m in models}, rows, n)
    return ak.zip(cols, depth_limit=1)


def _warn_non_finite(X: np.ndarray, events, jets: str, model: str) -> None:
    """Warn, naming the file, when some jets' network inputs hold NaN or inf: their scores come
    out NaN, and hist files NaN in the overflow bin without a word."""
    if X.size == 0:
        return
    bad = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
    if bad.any():
        warnings.warn(f"{_where(events)}: {int(bad.sum())} of {len(X)} selected {jets} jets have non-finite inputs for "
                      f"model {model!r} (first at jet {int(np.flatnonzero(bad)[0])} of the chunk's selection); "
                      "their scores are NaN and land in the histograms' overflow bins", RuntimeWarning, stacklevel=2)


def parse_ensembles(texts) -> dict[str, list[str]]:
    """``['NAME=A+B', ...]`` (the ``--ensemble`` syntax) → ``{'NAME': ['A', 'B'], ...}``.

    Raises ``ValueError`` naming the text that is not of that form; which models exist is checked
    where they are known (:class:`JetTaggingProcessor`, the holdout study)."""
    out = {}
    for text in texts:
        name, _, members = text.partition("=")
        parts = members.split("+")
        if not name or not all(parts):
            raise ValueError(f"ensemble {text!r}: expected NAME=MODEL+MODEL[+...]")
        out[name] = parts
    return out


class JetTaggingProcessor(processor.ProcessorABC):
    """Score jets with one or more saved taggers and histogram the results.

    Parameters
    ----------
    models : str, Path, or dict of str to (str or Path or Tagger)
        Artifact directories (a single path is named after its spec's ``name``).
    jets : str
        Jet collection (``'FatJet'``).
    selection : dict, optional
        ``pt=(min, max)`` GeV, ``abs_eta=max``, ``msd=(min, max)`` GeV; default
        :data:`DEFAULT_SELECTION`.
    labels : dict of str to str, optional
        Dataset → truth class, for files without ``{jets}_truthLabel`` (otherwise the dataset
        metadata ``{"label": ...}`` is used).
    truth_names : dict of int to str, optional
        ``truthLabel`` code → class; default :data:`TRUTH_NAMES`.
    device, backend, batch_size, num_threads, server :
        Passed to :class:`~coffea_jetimg.inference.Tagger` (``server="grpc://HOST:PORT"``: the
        taggers are served by a Triton server instead of evaluated in the worker).
    axes : dict, optional
        Overrides of :data:`DEFAULT_AXES`.
    pixel_maps : bool
        Fill image sums and the Pearson moments (per-pixel histograms).
    ensembles : dict of str to list of str, optional
        Ensemble name → names of two or more of ``models`` with the same class names and signal
        class; scored by the mean of their class probabilities and histogrammed like a model
        (``score``, ``predicted``, ``score_moments``; no pixel maps).
    """

    def __init__(self, models, jets: str = "FatJet", selection: dict | None = None, labels: dict | None = None,
                 truth_names: dict | None = None, device: str | None = None, backend: str = "torch",
                 batch_size: int = 512, num_threads: int | None = 1, axes: dict | None = None,
                 pixel_maps: bool = True, ensembles: dict | None = None, server: str | None = None):
        if not isinstance(models, dict):
            models = {None: models}
        self.taggers: OrderedDict[str, Tagger] = OrderedDict()
        for name, m in models.items():
            t = m if isinstance(m, Tagger) else Tagger(m, device=device, backend=backend, batch_size=batch_size,
                                                        num_threads=num_threads, server=server)
            name = name or t.name
            if name in self.taggers:
                raise ValueError(f"two models named {name!r}; pass a dict {{name: artifact}} with distinct names")
            if input_from_spec(t.input_spec).level != "jet":
                raise ValueError(f"model {name!r} takes {input_from_spec(t.input_spec).describe()} inputs; "
                                 "use EventImageProcessor")
            self.taggers[name] = t
        if not self.taggers:
            raise ValueError("no models given")
        self.ensembles = self._check_ensembles(ensembles or {})
        self.jets = jets
        self.selection = dict(DEFAULT_SELECTION if selection is None else {**DEFAULT_SELECTION, **selection})
        self.labels = dict(labels or {})
        self.truth_names = dict(TRUTH_NAMES if truth_names is None else truth_names)
        self.axes = {**DEFAULT_AXES, **(axes or {})}
        self.pixel_maps = pixel_maps
        self.plan = InputPlan([t.input_spec for t in self.taggers.values()], jets=jets)
        self._input_models: dict[str, list[str]] = {}
        for name, t in self.taggers.items():
            self._input_models.setdefault(input_from_spec(t.input_spec).key, []).append(name)
        # image inputs whose pixels are histogrammed, and which models' scores go with them:
        # models without an image input are correlated with the first image
        refs: OrderedDict[str, list[str]] = OrderedDict(
            (k, list(ms)) for k, ms in self._input_models.items() if isinstance(self.plan.inputs[k], ImageInput))
        if refs:
            first = next(iter(refs))
            refs[first] += [m for m in self.taggers if m not in sum(refs.values(), [])]
        self.image_refs = refs if pixel_maps else OrderedDict()

    def _check_ensembles(self, ensembles) -> OrderedDict[str, list[str]]:
        out: OrderedDict[str, list[str]] = OrderedDict()
        for name, members in ensembles.items():
            members = [members] if isinstance(members, str) else list(members)
            if name in self.taggers or name in out:
                raise ValueError(f"ensemble {name!r}: the name is already taken by a model")
            if len(members) < 2 or len(set(members)) != len(members):
                raise ValueError(f"ensemble {name!r}: needs two or more distinct models, got {members}")
            unknown = [m for m in members if m not in self.taggers]
            if unknown:
                raise ValueError(f"ensemble {name!r}: unknown models {unknown}; models are {list(self.taggers)}")
            first = self.taggers[members[0]]
            for m in members[1:]:
                t = self.taggers[m]
                if t.class_names != first.class_names or t.signal_class != first.signal_class:
                    raise ValueError(f"ensemble {name!r}: {m!r} has classes {t.class_names} (signal {t.signal_class!r}), "
                                     f"{members[0]!r} {first.class_names} (signal {first.signal_class!r})")
            out[name] = members
        return out

    # -- description ------------------------------------------------------------------------
    def model_info(self) -> dict:
        """Per model: artifact path, classes, signal class, input kind and image key."""
        keys = list(self.image_refs)
        out = {}
        for name, t in self.taggers.items():
            img = next((f"img{k}" for k, key in enumerate(keys) if name in self.image_refs[key]), None)
            inp = input_from_spec(t.input_spec)
            out[name] = {"artifact": str(t.path), "architecture": t.spec.get("architecture"),
                         "class_names": t.class_names, "signal_class": t.signal_class,
                         "input_kind": inp.kind, "input": inp.describe(), "image": img}
        for name, members in self.ensembles.items():
            t = self._head(name)
            out[name] = {"ensemble_of": list(members), "class_names": t.class_names, "signal_class": t.signal_class,
                         "input_kind": "ensemble", "image": None}
        return out

    def scored_names(self) -> list[str]:
        """The models, then the ensembles: every name with ``score``/``predicted`` histograms."""
        return [*self.taggers, *self.ensembles]

    def _head(self, name):
        """The tagger whose class names and signal class a model or ensemble has."""
        return self.taggers[name] if name in self.taggers else self.taggers[self.ensembles[name][0]]

    def classes_for(self, events) -> list[str]:
        """Truth classes of a dataset: the truthLabel names (+ 'other'), or its one label."""
        if self.jets in fields_of(events) and "truthLabel" in fields_of(events[self.jets]):
            return list(dict.fromkeys(list(self.truth_names.values()) + [OTHER]))
        return [self._dataset_class(events)]

    def _dataset_class(self, events) -> str:
        meta = getattr(events, "metadata", None) or {}
        ds = meta.get("dataset")
        return str(self.labels.get(ds, meta.get("label", OTHER)))

    # -- checks -----------------------------------------------------------------------------
    def check(self, events) -> None:
        """Raise before any work if the events cannot feed every model (names the models and branches)."""
        if self.jets not in fields_of(events):
            raise ConstituentsError(f"no '{self.jets}' collection in the events: nothing to tag")
        self.plan.check(events, names=self._input_models)

    # -- histograms -------------------------------------------------------------------------
    def _hists(self, classes, jet_fields, dask: bool):
        if dask:
            import hist.dask as hda

            H = hda.Hist
        else:
            H = hist.Hist
        ax = self.axes
        cls = hist.axis.StrCategory(classes, name=A.CLASS, label="Truth class")
        jet_axes = {v.name: v.axis(ax[v.binning_key], jet_fields) for v in JET_VARIABLES}
        pt_ax = jet_axes[A.PT]
        out = {"score": {}, "predicted": {}, "score_moments": {}, "image": {}, "pixel_xy": {},
               "njets": H(cls, pt_ax, storage=hist.storage.Int64())}
        for name in self.scored_names():
            t = self._head(name)
            score_ax = hist.axis.Regular(ax["score_bins"], 0.0, 1.0, name=A.SCORE, label=f"{name} P({t.signal_class})",
                                         flow=False, metadata={"model": name, "signal_class": t.signal_class,
                                                               "class_names": t.class_names})
            out["score"][name] = H(cls, score_ax, *jet_axes.values(), storage=hist.storage.Int64())
            out["predicted"][name] = H(cls, hist.axis.Integer(0, len(t.class_names), name=A.PREDICTED, flow=False,
                                                              label=f"{name} predicted class",
                                                              metadata={"class_names": t.class_names}),
                                       storage=hist.storage.Int64())
            out["score_moments"][name] = H(cls, pt_ax, storage=hist.storage.Weight())
        for k, (key, models) in enumerate(self.image_refs.items()):
            spec = self.plan.inputs[key].image_spec
            C, (Hh, W) = len(spec.channels), spec.npix
            meta = {"channels": list(spec.channels), "intensity": spec.intensity, "normalize": spec.normalize}
            pix = [hist.axis.Integer(0, C, name=A.CHANNEL, flow=False, metadata=meta),
                   hist.axis.Integer(0, Hh, name=A.IY, label="pixel row", flow=False),
                   hist.axis.Integer(0, W, name=A.IX, label="pixel column", flow=False)]
            out["image"][f"img{k}"] = H(cls, *pix, storage=hist.storage.Weight())
            for m in models:
                out["pixel_xy"][m] = H(cls, *pix, storage=hist.storage.Double())
        return out

    # -- the work ---------------------------------------------------------------------------
    def process(self, events):
        dataset = (getattr(events, "metadata", None) or {}).get("dataset", "unknown")
        self.check(events)  # before reading anything
        dask = is_dask(events)
        classes = self.classes_for(events)
        fj = events[self.jets]
        mask, steps = select_jets(fj, **self.selection, return_steps=True)
        kwargs = self._table_kwargs(classes, self._dataset_class(events))
        table = map_partitions(lambda ev, m: jet_table(ev, mask=m, **kwargs), events, mask,
                               touch=[sorted(self._needed_columns(events)), None], meta=self._empty_table(),
                               label="jet-tagging-table")
        hists = self._hists(classes, fields_of(fj), dask)
        self._fill(hists, table, classes, dask)
        hists["cutflow"] = self._cutflow(fj, steps, table, dask)
        return {dataset: hists}

    def _table_kwargs(self, classes, dataset_class):
        return dict(taggers=self.taggers, jets=self.jets, selection=self.selection, class_names=classes,
                    truth_names=self.truth_names, dataset_class=dataset_class, image_refs=self.image_refs,
                    ensembles=self.ensembles, plan=self.plan)

    def _empty_table(self):
        """The table's type, without running (or loading) any network: the dask meta."""
        cols = {"cls": np.zeros(0, np.int32), "scored": np.zeros(0, bool)}
        cols.update({v.name: np.zeros(0, np.float64) for v in JET_VARIABLES})
        for name in self.scored_names():
            cols[f"s_{name}"] = np.zeros(0, np.float64)
            cols[f"pred_{name}"] = np.zeros(0, np.int32)
        for k, (key, models) in enumerate(self.image_refs.items()):
            cols[f"px_{k}"] = _pixel_records(np.zeros((0, 1, 1, 1), np.float32), np.zeros(0, np.int32),
                                             {m: np.zeros(0) for m in models}, np.zeros(0, np.int64), 0)
        return ak.zip(cols, depth_limit=1)

    def _needed_columns(self, events) -> list[tuple[str | None, str]]:
        """(collection, field) pairs the per-chunk work reads: the selection's, the jet variables',
        the truth label and the input plan's."""
        jf = fields_of(events[self.jets])
        want: set = set()
        for v in JET_VARIABLES:
            for c in v.reads(jf):
                want.add(c if isinstance(c, tuple) else (self.jets, c))
        want |= {(self.jets, f) for f in ("pt", "eta", "truthLabel") if f in jf}
        if self.selection.get("msd") is not None:
            want.add((self.jets, _mass_field(jf)))
        want |= self.plan.columns(events)
        have = fields_of(events)
        want = {(c, f) for c, f in want if c in have and f in fields_of(events[c])}
        return sorted(want, key=lambda x: (x[0] or "", x[1]))

    def _fill(self, h, table, classes, dask):
        """One fill path for eager tables and dask-awkward tables."""
        if dask:
            import dask_awkward as dak

            flatten = dak.flatten
        else:
            flatten = ak.flatten
        scored = table[table.scored]
        pix = {k: flatten(scored[f"px_{k}"], axis=1) for k in range(len(self.image_refs))}
        for i, c in enumerate(classes):
            sel = scored[scored.cls == i]
            h["njets"].fill(c, sel.pt)
            jet_cols = [sel[v.name] for v in JET_VARIABLES]
            for name in self.scored_names():
                h["score"][name].fill(c, sel[f"s_{name}"], *jet_cols)
                h["predicted"][name].fill(c, sel[f"pred_{name}"])
                h["score_moments"][name].fill(c, sel.pt, weight=sel[f"s_{name}"])
            for k, (key, models) in enumerate(self.image_refs.items()):
                p = pix[k][pix[k].cls == i]
                h["image"][f"img{k}"].fill(c, p.c, p.iy, p.ix, weight=p.v)
                for m in models:
                    h["pixel_xy"][m].fill(c, p.c, p.iy, p.ix, weight=p.v * p[f"y_{m}"])
        return h

    def _cutflow(self, fj, steps, table, dask):
        lib = ak
        if dask:
            import dask_awkward as dak

            lib = dak
        out = {"events": lib.num(fj.pt, axis=0), "jets": lib.sum(lib.num(fj.pt, axis=1))}
        last = None
        for name, m in steps:
            out[f"jets_{name}"] = lib.sum(m)
            last = m
        if last is not None:
            out["events_with_selected_jet"] = lib.sum(lib.any(last, axis=1))
        out["jets_without_constituents"] = lib.sum(~table.scored)
        out["jets_scored"] = lib.sum(table.scored)
        if not dask:
            out = {k: int(v) for k, v in out.items()}
        return out

    def postprocess(self, accumulator):
        return accumulator
